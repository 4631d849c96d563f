// Type-length-value options placed at their alignment and padded with Pad1/PadN: the layout IPv6
// hop-by-hop and destination options (RFC 8200 §4.2) and Mobility Header options (RFC 6275
// §6.2) share, Pad1 = 0 and PadN = 1 in both registries.

/** One option to build: its data, and its alignment requirement xn+y (default 1n+0). */
export interface AlignedOption {
  type: number;
  data: Uint8Array;
  alignMultiple?: number;
  alignOffset?: number;
}

const PAD1 = 0;
const PADN = 1;

/** Where each option goes when the options start at `start`, and the end padded to 8 octets. */
export function layOutOptions(start: number, options: readonly AlignedOption[]): { places: number[]; end: number } {
  const places: number[] = [];
  let p = start;
  for (const o of options) {
    const x = o.alignMultiple ?? 1;
    const y = o.alignOffset ?? 0;
    while (p % x !== y % x) p++;
    places.push(p);
    p += 2 + o.data.length;
  }
  return { places, end: (p + 7) & ~7 };
}

/** Writes the options at `places` (from layOutOptions) and the padding between and after them. */
export function writeOptions(out: Uint8Array, start: number, options: readonly AlignedOption[], places: readonly number[], end: number): void {
  let q = start;
  options.forEach((o, i) => {
    writePadding(out, q, places[i] - q);
    out[places[i]] = o.type;
    out[places[i] + 1] = o.data.length;
    out.set(o.data, places[i] + 2);
    q = places[i] + 2 + o.data.length;
  });
  writePadding(out, q, end - q);
}

function writePadding(out: Uint8Array, at: number, n: number): void {
  // Pad1 for a single byte, PadN otherwise.
  if (n === 1) out[at] = PAD1;
  else if (n >= 2) { out[at] = PADN; out[at + 1] = n - 2; out.fill(0, at + 2, at + n); }
}
