// Readers for the fields of a YAML configuration, each naming the field in its error. `fail`
// makes the error of the caller's kind (HomeAgentConfigError, AgentConfigError, ...).
export function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

export interface FieldReaders {
  /** A non-empty string. */
  text(v: unknown, field: string): string;
  /** An integer in min..max; `dflt` when absent. */
  integer(v: unknown, field: string, dflt: number, min: number, max: number): number;
}

export function fieldReaders(fail: (message: string) => Error): FieldReaders {
  return {
    text(v, field) {
      if (typeof v !== "string" || v === "") throw fail(`${field}: required, a non-empty string`);
      return v;
    },
    integer(v, field, dflt, min, max) {
      if (v === undefined) return dflt;
      if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) throw fail(`${field}: must be an integer in ${min}..${max}, not ${JSON.stringify(v)}`);
      return v;
    },
  };
}
