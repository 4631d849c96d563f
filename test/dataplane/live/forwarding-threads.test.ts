// The live forwarding tests again with `workers: 2`: two forwarding threads on the ring backend,
// each interface's frames shared between them by PACKET_FANOUT. Every tunnel, both
// re-encapsulations, both translations and the ARP resolution of the receiver go through, and the
// metrics add up across the threads.
process.env.MIP46_TEST_WORKERS = "2";
await import("./forwarding.test.js");
