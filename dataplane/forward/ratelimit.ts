// The rate limit on the ICMP errors this worker originates: the router's (egress.ts), the
// tunnels' (tunnel/errors.ts) and the translator's own (translate/icmpErrors.ts). RFC 4443
// §2.4(f) requires one for ICMPv6 and suggests a token bucket; RFC 1812 §4.3.2.8 recommends one
// for ICMPv4. One bucket per worker, both families; the clock is the forwarder's `now` (ms).

export class TokenBucket {
  private tokens: number;
  private last: number;

  /** `perSecond` tokens come back each second, up to `burst`; the bucket starts full. */
  constructor(readonly perSecond: number, readonly burst: number, now: number) {
    this.tokens = burst;
    this.last = now;
  }

  /** Takes one token at time `now` (ms); false when there is none (the error is not sent). */
  take(now: number): boolean {
    if (now > this.last) {
      this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) * this.perSecond) / 1000);
      this.last = now;
    }
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}
