// The MN-HA mobility message authentication option of RFC 4285 §5 on Binding Updates and
// Acknowledgements: signing what we send and checking what we receive. The authenticator itself
// is the codec's `computeMnHaAuthenticator` (first 96 bits of HMAC-SHA1, §5.1).
import { timingSafeEqual } from "node:crypto";
import {
  AUTH_SUBTYPE, MOBILITY_OPTION, authOption, computeMnHaAuthenticator, parseMobilityHeader, type MobilityMessage, type MobilityOptionInput,
} from "../../dataplane/packet/mip6.js";

/** An MN-HA security association (RFC 4285 §5.1): the Mobility SPI and the shared key. */
export interface Mip6SecurityAssociation {
  spi: number;
  key: Uint8Array;
}

/** RFC 4285 §5.1: the authenticator is the first 96 bits of the HMAC-SHA1 output. */
export const MN_HA_AUTHENTICATOR_LENGTH = 12;

/**
 * Builds a Mobility Header with `build(options)`, where the MN-HA authentication option is
 * appended as the last option (RFC 4285 §5: it MUST be the last option), and fills in its
 * authenticator over care-of address | home address | the MH up to the SPI. The checksum is left
 * zero for `buildMobilityPacket` to set; the authenticator takes it as zero anyway (§5.1).
 */
export function signMnHa(
  build: (options: MobilityOptionInput[]) => Uint8Array,
  options: readonly MobilityOptionInput[],
  sa: Mip6SecurityAssociation,
  careOfAddress: Uint8Array,
  homeAddress: Uint8Array,
): Uint8Array {
  const mh = build([...options, authOption(AUTH_SUBTYPE.MN_HA, sa.spi, new Uint8Array(MN_HA_AUTHENTICATOR_LENGTH))]);
  const parsed = parseMobilityHeader(mh, 0);
  const auth = parsed?.options.at(-1);
  if (auth === undefined || auth.type !== MOBILITY_OPTION.AUTH) throw new Error("signMnHa: the built Mobility Header does not end with the authentication option");
  mh.set(computeMnHaAuthenticator(sa.key, careOfAddress, homeAddress, mh, auth.offset), auth.offset + 7);
  return mh;
}

export type MnHaCheck = "ok" | "missing" | "not-last" | "wrong-subtype" | "wrong-spi" | "bad-authenticator";

/**
 * Checks the MN-HA authentication option of the parsed message `mh` in `buf` (RFC 4285 §5).
 * `careOfAddress` and `homeAddress` are the mobile node's, as the sender used them.
 */
export function checkMnHa(buf: Uint8Array, mh: MobilityMessage, sa: Mip6SecurityAssociation, careOfAddress: Uint8Array, homeAddress: Uint8Array): MnHaCheck {
  const at = mh.options.findIndex((o) => o.type === MOBILITY_OPTION.AUTH);
  if (at < 0) return "missing";
  // §5: the MN-HA option is the last option; only padding may follow it.
  if (at !== mh.options.length - 1) return "not-last";
  const auth = mh.options[at];
  if (auth.data[0] !== AUTH_SUBTYPE.MN_HA) return "wrong-subtype";
  if (auth.data.length !== 5 + MN_HA_AUTHENTICATOR_LENGTH) return "bad-authenticator";
  const spi = ((auth.data[1] << 24) | (auth.data[2] << 16) | (auth.data[3] << 8) | auth.data[4]) >>> 0;
  if (spi !== sa.spi >>> 0) return "wrong-spi";
  const message = buf.subarray(mh.offset, mh.offset + mh.length);
  const expected = computeMnHaAuthenticator(sa.key, careOfAddress, homeAddress, message, auth.offset - mh.offset);
  return timingSafeEqual(expected, auth.data.subarray(5)) ? "ok" : "bad-authenticator";
}
