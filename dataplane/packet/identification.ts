// The identification counters of the packets we originate or fragment: IPv4's 16-bit
// Identification (RFC 791, RFC 6864 §4) and IPv6's 32-bit Fragment identification (RFC 8200 §4.5).
// A counter from `first`, every `step`th value: the forwarding threads of one worker (workers: N)
// count with first 1..N and step N, so that no two threads hand out the same value (their flows
// may share a source and destination); one thread counts 1, 2, 3, ... as before.
export class IdentificationCounter {
  private next: number;
  private readonly limit: number;

  constructor(bits: 16 | 32, first = 1, private readonly step = 1) {
    const size = 2 ** bits;
    // A whole number of steps, so that the wrap keeps each thread in its own residue class.
    this.limit = size - (size % step);
    this.next = ((first % this.limit) + this.limit) % this.limit;
  }

  take(): number {
    const id = this.next;
    this.next = (id + this.step) % this.limit;
    return id;
  }
}
