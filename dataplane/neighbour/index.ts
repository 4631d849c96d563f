// ARP / NDP neighbour cache of the data-plane worker (RFC 826, RFC 4861 §7.3).
export { DEFAULT_NEIGHBOUR_TIMERS, NeighbourCache, type Emit, type NeighbourEntry, type NeighbourHooks, type NeighbourState, type NeighbourStats, type NeighbourTimers } from "./cache.js";
