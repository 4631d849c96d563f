// ECN through tunnels, RFC 6040. Codepoints are the low two bits of the IPv4 TOS byte and of the
// IPv6 traffic class (RFC 3168 §5).

export const ECN_NOT_ECT = 0;
export const ECN_ECT1 = 1;
export const ECN_ECT0 = 2;
export const ECN_CE = 3;

/** Result of `decapsulateEcn` for the combination RFC 6040 §4.2 says to drop. */
export const ECN_DROP = -1;

/**
 * RFC 6040 §4.1, normal mode: the outer header gets a copy of the inner ECN field, CE included.
 * (Compatibility mode, outer Not-ECT, is only for ingresses that cannot do §4.2 at the egress;
 * our peers are RFC 6040 egresses, so we never use it.)
 */
export function encapsulateEcn(innerEcn: number): number {
  return innerEcn & 3;
}

// RFC 6040 §4.2, Figure 4: the ECN field leaving the decapsulator, indexed [inner][outer].
// ECN_DROP is "<drop>". Rows and columns are codepoint values 0..3 (Not-ECT, ECT(1), ECT(0), CE).
const EGRESS: readonly (readonly number[])[] = [
  //         outer: Not-ECT      ECT(1)       ECT(0)       CE
  /* Not-ECT */ [ECN_NOT_ECT, ECN_NOT_ECT, ECN_NOT_ECT, ECN_DROP],
  /* ECT(1)  */ [ECN_ECT1, ECN_ECT1, ECN_ECT1, ECN_CE],
  /* ECT(0)  */ [ECN_ECT0, ECN_ECT1, ECN_ECT0, ECN_CE],
  /* CE      */ [ECN_CE, ECN_CE, ECN_CE, ECN_CE],
];

// The cells Figure 4 marks "(!!!)": currently unused combinations the egress SHOULD log.
// Not-ECT inner under ECT(0)/ECT(1)/CE, and CE inner under ECT(1).
const UNEXPECTED: readonly (readonly boolean[])[] = [
  [false, true, true, true],
  [false, false, false, false],
  [false, false, false, false],
  [false, true, false, false],
];

/** RFC 6040 §4.2: the inner ECN field after decapsulation, or ECN_DROP. */
export function decapsulateEcn(innerEcn: number, outerEcn: number): number {
  return EGRESS[innerEcn & 3][outerEcn & 3];
}

/** True for the "(!!!)" combinations of RFC 6040 §4.2 Figure 4. */
export function ecnCombinationUnexpected(innerEcn: number, outerEcn: number): boolean {
  return UNEXPECTED[innerEcn & 3][outerEcn & 3];
}
