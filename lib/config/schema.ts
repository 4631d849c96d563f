// The one way mip46 reads the shape of a configuration file: a zod schema per file, every object
// strict (an unknown key is refused, so a typo such as `cooldownSecond` never lets a default
// apply unannounced), and every problem reported as `path: reason`, the path in the form the
// files are written in (`segments[1].careOfRange`, `leases.cooldownSeconds`). What a value means
// (addresses, overlapping prefixes, RFC 6052 lengths, names used twice) is checked by each part
// after the shape, with the same message form.
import { readFileSync } from "node:fs";
import { parse as parseYaml } from "yaml";
import { z } from "zod";

/** A configuration value that cannot be used; the message starts with the field's path, `field`. */
export class ConfigFieldError extends Error {
  override name = "ConfigFieldError";
  readonly field: string;
  constructor(message: string, field?: string) {
    super(message);
    this.field = field ?? message.slice(0, Math.max(0, message.indexOf(": ")));
  }
}

export function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** A configuration file's YAML document; a file that cannot be read or is not YAML is `fail(message)`, naming it. */
export function readYamlFile(path: string, fail: (message: string) => Error): unknown {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    throw fail(`${path}: ${(e as Error).message}`);
  }
  try {
    return parseYaml(text);
  } catch (e) {
    throw fail(`${path}: not YAML: ${(e as Error).message}`);
  }
}

/** `segments[1].careOfRange` from zod's ["segments", 1, "careOfRange"], under `root`. */
export function fieldPath(path: readonly PropertyKey[], root = ""): string {
  let text = root;
  for (const p of path) text += typeof p === "number" ? `[${p}]` : text === "" ? String(p) : `.${String(p)}`;
  return text;
}

const NOUNS: Record<string, string> = {
  object: "a mapping", array: "a list", string: "a string", number: "a number", int: "an integer", boolean: "true or false",
};

/** Our reason for an issue no schema gave its own words to. Values are never echoed: a field may hold a key. */
function reason(issue: z.core.$ZodRawIssue): string {
  const noun = "expected" in issue ? NOUNS[String(issue.expected)] ?? String(issue.expected) : "";
  switch (issue.code) {
    case "invalid_type":
      return issue.input === undefined ? `required, ${noun}` : `expected ${noun}`;
    case "too_small":
      return issue.origin === "string" ? "must be a non-empty string" : issue.origin === "array" ? `needs at least ${issue.minimum}` : `must be at least ${issue.minimum}`;
    case "too_big":
      return `must be at most ${issue.maximum}`;
    case "invalid_value":
      return `must be one of ${issue.values.map((v) => String(v)).join(", ")}`;
    case "unrecognized_keys":
      return "unknown key";
    default:
      return "is not valid";
  }
}

/**
 * Checks `value` against `schema` and returns what it gives (defaults filled in). The first
 * problem is thrown as `fail(message, field)`, unknown keys before the rest: a misspelt key is
 * the likelier cause of a "required" one.
 */
export function parseShape<S extends z.ZodType>(schema: S, value: unknown, fail: (message: string, field: string) => Error, root = ""): z.output<S> {
  const r = schema.safeParse(value, { error: reason });
  if (r.success) return r.data;
  const issues = [...r.error.issues].sort((a, b) => Number(b.code === "unrecognized_keys") - Number(a.code === "unrecognized_keys"));
  const issue = issues[0];
  const path = issue.code === "unrecognized_keys" ? [...issue.path, issue.keys[0]] : issue.path;
  const field = fieldPath(path, root) || "configuration";
  throw fail(`${field}: ${issue.message}`, field);
}

type Shape = Record<string, z.ZodType>;

/** An object that refuses any key its shape does not name, listing the ones it knows. */
export function strict<T extends Shape>(shape: T) {
  const known = Object.keys(shape).join(", ");
  return z.strictObject(shape, { error: (issue) => (issue.code === "unrecognized_keys" ? `unknown key (known: ${known})` : undefined) });
}

/** Words of our own for a schema's issues, except "required" (left to `reason`). */
export function say(words: string | ((input: unknown) => string)) {
  return { error: (issue: { input?: unknown }) => (issue.input === undefined ? undefined : typeof words === "string" ? words : words(issue.input)) };
}

/** A non-empty string. */
export function text(what = "a non-empty string") {
  return z.string(say(`must be ${what}`)).min(1, say(`must be ${what}`));
}

/** An integer in min..max; the value is shown (integers are never secrets). */
export function integer(min: number, max: number) {
  const words = { error: (issue: { input?: unknown }) => (issue.input === undefined ? `required, an integer in ${min}..${max}` : `must be an integer in ${min}..${max}, not ${JSON.stringify(issue.input)}`) };
  return z.number(words).int(words).min(min, words).max(max, words);
}

/** A finite number in min..max. */
export function number(min: number, max: number) {
  const words = say(`must be a number from ${min} to ${max}`);
  return z.number(words).min(min, words).max(max, words);
}

/** true or false. */
export function flag() {
  return z.boolean(say("must be true or false"));
}

/** One of a few strings; `words` says what else it may be when it is none. */
export function oneOf<const T extends readonly [string, ...string[]]>(values: T, words?: (input: unknown) => string) {
  return z.enum(values, say(words ?? (() => `must be ${values.slice(0, -1).map((v) => `'${v}'`).join(", ")} or '${values.at(-1)}'`)));
}

/** A list of `item`. */
export function list<T extends z.ZodType>(item: T, words?: string) {
  return z.array(item, words ? say(words) : undefined);
}

export { z };
