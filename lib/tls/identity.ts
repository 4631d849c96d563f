// Who a certificate says its holder is. mip46 carries the identity in a subjectAltName URI,
// spiffe://mip46/<role>/<id> (the SPIFFE ID form), not in the subject CN: RFC 6125 §1.5 leaves
// the CN for display, and one URI SAN cannot be confused with a DNS name or an address.
// The CN may say the same thing for people reading the certificate; it is never read.

export const TRUST_DOMAIN = "mip46";
export const ROLES = ["host", "worker", "operator", "engine"] as const;
export type Role = (typeof ROLES)[number];

export interface Identity {
  role: Role;
  /** host id, worker id, operator name or engine id. */
  id: string;
}

export class IdentityError extends Error {
  override name = "IdentityError";
}

/** The form control.ts accepts for host and VM ids. */
const ID = /^[A-Za-z0-9][A-Za-z0-9._:@/-]*$/;

export function identityText(i: Identity): string {
  return `${i.role}:${i.id}`;
}

export function spiffeId(i: Identity): string {
  return `spiffe://${TRUST_DOMAIN}/${i.role}/${i.id}`;
}

/** "host:h4" (as lab-certs.sh takes it) to an Identity. */
export function parseIdentityText(text: string): Identity {
  const colon = text.indexOf(":");
  const role = text.slice(0, colon);
  const id = text.slice(colon + 1);
  if (colon < 0 || !(ROLES as readonly string[]).includes(role) || !ID.test(id)) {
    throw new IdentityError(`'${text}' must be ROLE:ID with ROLE one of ${ROLES.join(", ")}`);
  }
  return { role: role as Role, id };
}

/**
 * Splits Node's subjaltname text ("URI:spiffe://..., IP Address:127.0.0.1"). Node quotes a value
 * holding a comma, quote or other special character as a JSON string (since the fix of
 * CVE-2021-44532), so a value cannot pose as a second entry.
 */
export function subjectAltNames(text: string): { type: string; value: string }[] {
  const out: { type: string; value: string }[] = [];
  const entry = /([A-Za-z ]+):("(?:[^"\\]|\\.)*"|[^,]*)(?:, |$)/y;
  let m: RegExpExecArray | null;
  while (entry.lastIndex < text.length && (m = entry.exec(text)) !== null) {
    out.push({ type: m[1], value: m[2].startsWith('"') ? (JSON.parse(m[2]) as string) : m[2] });
  }
  if (entry.lastIndex !== text.length && text !== "") throw new IdentityError(`cannot read the subjectAltName '${text.slice(0, 120)}'`);
  return out;
}

/**
 * The identity in a certificate's subjectAltName: exactly one URI in our trust domain. Two would
 * make the certificate mean two things, so that is refused.
 */
export function identityFromAltNames(subjaltname: string | undefined): Identity {
  const prefix = `spiffe://${TRUST_DOMAIN}/`;
  const ours = subjectAltNames(subjaltname ?? "").filter((n) => n.type === "URI" && n.value.startsWith(prefix));
  if (ours.length === 0) throw new IdentityError(`the certificate has no subjectAltName URI ${prefix}<role>/<id>`);
  if (ours.length > 1) throw new IdentityError(`the certificate has ${ours.length} ${prefix} URIs; it must have one`);
  const rest = ours[0].value.slice(prefix.length);
  const slash = rest.indexOf("/");
  return parseIdentityText(slash < 0 ? rest : `${rest.slice(0, slash)}:${rest.slice(slash + 1)}`);
}
