// The data-plane worker's forwarding pipeline: see README.md.
export { Forwarder, type Emit, type ForwarderOptions, type Intercept, type StationSeen } from "./forwarder.js";
export { ForwarderConfigError, parseForwarderConfig, type ForwarderConfig, type InterfaceConfig, type RouteConfig, type StaticNeighbour, type TranslatorSettings, type TunnelSettings } from "./config.js";
export { FORWARD_ACTIONS, FORWARD_DROP_REASONS, OWN_DROP_REASONS, type ForwardAction, type ForwarderCounters, type InterfaceCounters } from "./counters.js";
export { RuleTableError } from "./rules.js";
export { RuleSlots, type RuleImage } from "./slots.js";
export type { NeighbourStats, NeighbourTimers } from "../neighbour/cache.js";
