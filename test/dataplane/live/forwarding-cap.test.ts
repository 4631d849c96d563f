// The live forwarding tests again, on the `cap` (libpcap) capture backend; forwarding.test.ts
// runs them on the default `ring` backend.
process.env.MIP46_TEST_CAPTURE_BACKEND = "cap";
await import("./forwarding.test.js");
