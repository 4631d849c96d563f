// Stateless IP/ICMP translation (SIIT, RFC 7915) with RFC 6052 prefixes and explicit address
// mappings (RFC 7757). Pure code: packets in, packets out.
export { AddressMapping, AddressMappingError, type AddressMappingConfig, type ExplicitAddressMapping, type Rfc6052Prefix } from "./mapping.js";
export { IPV4_DUMMY_ADDRESS, TranslatorConfigError, type TranslatorConfig } from "./config.js";
export { DROP_REASONS, type DropReason, type TranslateResult } from "./result.js";
export { Translator } from "./translator.js";
