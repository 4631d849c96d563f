// The MN–HA keys both ends of a registration hold (RFC 5944 §3.5.1, RFC 4285 §5.1): the home
// agents (homeagent/config.ts) and the privileged-VM agent that registers VMs on their behalf
// (clients/agent/config.ts) read them from the same YAML format. A key's value never appears in
// an error or a log.
import { readFileSync, statSync } from "node:fs";
import { isAbsolute, join } from "node:path";
import { parse } from "yaml";
import { ConfigFieldError, integer, list, oneOf, parseShape, strict, text, z } from "../lib/config/schema.js";
import { parseAddress } from "../lib/net/address.js";

export class KeyConfigError extends ConfigFieldError {
  override name = "KeyConfigError";
}

const KEY_WORDS = "must be 16 to 64 bytes in hex (the value is not shown)";

export type MobilityProtocolName = "mip4" | "mip6";
export type AuthAlgorithm = "hmac-md5" | "hmac-sha256";

/** The key shared by a home address's mobile node and its home agent. */
export interface MnHaKey {
  homeAddress: string;
  spi: number;
  /** MIPv4 only (RFC 5944 §3.5.1 HMAC-MD5, or HMAC-SHA-256); MIPv6 uses RFC 4285's algorithm. */
  algorithm: AuthAlgorithm;
  key: Uint8Array;
}

const KEY = strict({
  homeAddress: text("an IP address"),
  // RFC 5944 §3.5.1: SPIs 0–255 are reserved. No default: both ends must name the same one.
  spi: integer(256, 0xffffffff),
  algorithm: oneOf(["hmac-md5", "hmac-sha256"], () => "must be hmac-md5 or hmac-sha256").optional(),
  // Never `say` the value: it is the secret.
  key: z.string({ error: KEY_WORDS }).regex(/^([0-9a-fA-F]{2}){16,64}$/, { error: KEY_WORDS }),
});

/** Keys: a YAML list of { homeAddress, spi, algorithm?, key: hex }. */
export function parseKeys(value: unknown, field: string, protocol: MobilityProtocolName | "any"): MnHaKey[] {
  const entries = parseShape(list(KEY, `must be a list of { homeAddress, spi, algorithm, key }`), value, (m, f) => new KeyConfigError(m, f), field);
  const seen = new Set<string>();
  return entries.map((v, i) => {
    const f = `${field}[${i}]`;
    let parsed;
    try {
      parsed = parseAddress(v.homeAddress, `${f}.homeAddress`);
    } catch (e) {
      throw new KeyConfigError((e as Error).message);
    }
    if (protocol !== "any" && (parsed.family === 6) !== (protocol === "mip6")) throw new KeyConfigError(`${f}.homeAddress: must be an IPv${protocol === "mip6" ? 6 : 4} address`);
    if (seen.has(parsed.text)) throw new KeyConfigError(`${f}.homeAddress: ${parsed.text} has two keys`);
    seen.add(parsed.text);
    const algorithm = v.algorithm ?? (parsed.family === 6 ? "hmac-sha256" : "hmac-md5");
    return { homeAddress: parsed.text, spi: v.spi, algorithm, key: Uint8Array.from(Buffer.from(v.key, "hex")) };
  });
}

export function loadKeysFile(path: string, protocol: MobilityProtocolName | "any", field = "homeAgent.keysFile"): MnHaKey[] {
  let raw: string;
  try {
    const st = statSync(path);
    // Keys readable by others are refused, as ssh does with private keys.
    if ((st.mode & 0o077) !== 0) throw new KeyConfigError(`${field}: ${path} is readable by group or others (mode ${(st.mode & 0o777).toString(8)}); chmod 600 it`);
    raw = readFileSync(path, "utf8");
  } catch (e) {
    if (e instanceof KeyConfigError) throw e;
    throw new KeyConfigError(`${field}: ${(e as Error).message}`);
  }
  let value: unknown;
  try {
    value = parse(raw);
  } catch {
    throw new KeyConfigError(`${field}: ${path} is not YAML`);
  }
  return parseKeys(value, `${field}(${path})`, protocol);
}

/**
 * The keys a configuration names: `keysFile` (relative to the configuration's folder) or, for
 * tests, `keys` inline; `field` is where they sit ("homeAgent." or "").
 */
export function configuredKeys(from: { keysFile?: string; keys?: unknown }, baseDir: string, protocol: MobilityProtocolName | "any", field = ""): MnHaKey[] {
  if (from.keysFile !== undefined) return loadKeysFile(isAbsolute(from.keysFile) ? from.keysFile : join(baseDir, from.keysFile), protocol, `${field}keysFile`);
  if (from.keys !== undefined) return parseKeys(from.keys, `${field}keys`, protocol);
  return [];
}
