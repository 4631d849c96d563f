// The packet library in one import. Each module stays importable on its own.
export * from "./checksum.js";
export * from "./ipv4.js";
export * from "./ipv6.js";
export * from "./icmp4.js";
export * from "./icmp6.js";
export * from "./udp.js";
export * from "./tcp.js";
export * from "./ethernet.js";
export * from "./arp.js";
export * from "./nd.js";
export * from "./mip4.js";
export * from "./mip6.js";
export * from "./fragment.js";
export * from "./options.js";
export * from "./buffers.js";
