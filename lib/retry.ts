// Retry and backoff, written once for every client that waits out an absent peer: the failover
// client (clients/failover.ts), the agent's calls to the engine (clients/agent/handover.ts), the
// rule-sync client's reconnects (dataplane/sync/client.ts) and the etcd store's conflicting
// transactions (services/store/etcd.ts).
//
// Ours rather than cockatiel (which etcd3 brings in, 3.2.1): cockatiel's RetryPolicy sleeps out its
// whole delay after the AbortSignal fired, so stopping an agent would wait up to the cap; its
// jitter generators call Math.random directly, so a test with a seeded generator would write its
// own anyway; and the failover client's whole-call deadline and "next replica at once, wait only
// after a round" would need a wrapper around its policy. What is left to write is this file.
//
// The delays are exponential, capped, with full jitter: attempt n waits a uniform time in
// [0, min(cap, base * 2^n)). This is the scheme of AWS's "Exponential Backoff And Jitter" (Marc
// Brooker, 2015): clients that failed together spread their retries over the whole window instead
// of coming back in the same millisecond, as every worker did after an engine restart.

export interface BackoffOptions {
  /** The first window (ms); window n is base * 2^n. */
  baseMs: number;
  /** The largest window (ms). */
  capMs: number;
  /** Uniform in [0, 1); Math.random unless a test passes a seeded one (lib/random.ts). */
  random?: () => number;
}

/** A sequence of jittered, growing, capped delays; reset() after a success starts it over. */
export class Backoff {
  private attempt = 0;
  private readonly random: () => number;

  constructor(private readonly o: BackoffOptions) {
    if (!(o.baseMs > 0) || !(o.capMs >= o.baseMs)) throw new Error(`backoff: need 0 < baseMs <= capMs (got ${o.baseMs}, ${o.capMs})`);
    this.random = o.random ?? Math.random;
  }

  /** The upper bound of the next delay (ms), before jitter. */
  window(): number {
    // 2^attempt stops growing past the cap: no overflow to Infinity however long the peer is away.
    return Math.min(this.o.capMs, this.o.baseMs * 2 ** Math.min(this.attempt, 52));
  }

  /** The next delay (ms), and the window after it doubles. */
  next(): number {
    const delay = Math.floor(this.random() * this.window());
    this.attempt++;
    return delay;
  }

  reset(): void {
    this.attempt = 0;
  }
}

/** Resolves true after `ms`, or false at once when `signal` aborts (before or during the wait). */
export function sleep(ms: number, signal?: AbortSignal): Promise<boolean> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve(false);
    const done = (slept: boolean) => () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", aborted);
      resolve(slept);
    };
    const aborted = done(false);
    const timer = setTimeout(done(true), ms);
    signal?.addEventListener("abort", aborted, { once: true });
  });
}

/** Thrown by retry() when its signal aborts: no attempt is made after it. */
export class RetryAbortedError extends Error {
  override readonly name = "RetryAbortedError";
  constructor(readonly lastError?: unknown) {
    super("retry: aborted", { cause: lastError });
  }
}

export interface RetryOptions extends BackoffOptions {
  /** Whether `err`, the failure of attempt `attempt` (1-based), is worth another attempt. */
  retryable(err: unknown, attempt: number): boolean;
  /** Attempts in all, the first included (default: no limit). */
  maxAttempts?: number;
  /** No attempt starts at or after this time (ms, on `now`); the last failure is thrown then. */
  deadline?: number;
  /** Whether to wait before attempt `attempt + 1`; the default waits every time (the failover client waits once per round). */
  waitsAfter?(attempt: number): boolean;
  signal?: AbortSignal;
  /** Told before each wait, e.g. for a log line. */
  onRetry?(err: unknown, attempt: number, delayMs: number): void;
  now?: () => number;
}

/**
 * Calls `call` until it succeeds, a failure is not retryable, the attempts or the deadline run
 * out (the last failure is thrown), or the signal aborts (RetryAbortedError).
 */
export async function retry<T>(call: (attempt: number) => Promise<T>, o: RetryOptions): Promise<T> {
  const now = o.now ?? Date.now;
  const backoff = new Backoff(o);
  for (let attempt = 1; ; attempt++) {
    if (o.signal?.aborted) throw new RetryAbortedError();
    try {
      return await call(attempt);
    } catch (e) {
      if (!o.retryable(e, attempt) || attempt >= (o.maxAttempts ?? Infinity)) throw e;
      if (o.deadline !== undefined && now() >= o.deadline) throw e;
      if (o.waitsAfter?.(attempt) ?? true) {
        const delay = Math.min(backoff.next(), o.deadline === undefined ? Infinity : Math.max(0, o.deadline - now()));
        o.onRetry?.(e, attempt, delay);
        if (!(await sleep(delay, o.signal))) throw new RetryAbortedError(e);
        if (o.deadline !== undefined && now() >= o.deadline) throw e;
      } else o.onRetry?.(e, attempt, 0);
    }
  }
}
