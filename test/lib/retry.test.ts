// The one retry/backoff module (lib/retry.ts): capped exponential windows, full jitter, the
// bounds, the deadline and cancellation. Backoff is pure given its random source; the waits use
// real timers of a few milliseconds.
import test from "ava";
import { seededRandom } from "../../lib/random.js";
import { Backoff, retry, RetryAbortedError, sleep } from "../../lib/retry.js";

test("the backoff window doubles from its base and stops at its cap", (t) => {
  const b = new Backoff({ baseMs: 100, capMs: 1000, random: () => 0 });
  const windows: number[] = [];
  for (let i = 0; i < 8; i++) {
    windows.push(b.window());
    b.next();
  }
  t.deepEqual(windows, [100, 200, 400, 800, 1000, 1000, 1000, 1000]);
  b.reset();
  t.is(b.window(), 100, "reset() starts over from the base");
  for (let i = 0; i < 2000; i++) b.next();
  t.is(b.window(), 1000, "however long the peer stays away, the window is the cap (no overflow)");
});

test("every delay lies in [0, window) and the delays grow with the window (full jitter)", (t) => {
  const random = seededRandom(7);
  const maxima: number[] = [];
  for (let attempt = 0; attempt < 6; attempt++) {
    let max = -1;
    for (let run = 0; run < 300; run++) {
      const b = new Backoff({ baseMs: 50, capMs: 1000, random });
      for (let i = 0; i < attempt; i++) b.next();
      const window = b.window();
      const d = b.next();
      t.true(d >= 0 && d < window && Number.isInteger(d), `attempt ${attempt}: ${d} in [0, ${window})`);
      max = Math.max(max, d);
    }
    maxima.push(max);
  }
  // The largest of 300 draws comes near each window's top: 50, 100, 200, 400, 800, 1000.
  for (const [i, top] of [50, 100, 200, 400, 800, 1000].entries()) t.true(maxima[i] >= top * 0.9, `attempt ${i}: largest delay ${maxima[i]} near ${top}`);
  t.true(maxima.every((m, i) => i === 0 || m > maxima[i - 1]), `the delays grow: ${maxima.join(", ")}`);
});

test("two clients that fail together do not wait the same delays; the same seed replays the same ones", (t) => {
  const delays = (b: Backoff) => Array.from({ length: 8 }, () => b.next());
  const a = delays(new Backoff({ baseMs: 100, capMs: 5000 }));
  const b = delays(new Backoff({ baseMs: 100, capMs: 5000 }));
  t.notDeepEqual(a, b, "Math.random: two workers reconnect at different moments");
  t.true(a.some((d, i) => d !== b[i] && Math.abs(d - b[i]) >= 1));
  t.deepEqual(delays(new Backoff({ baseMs: 100, capMs: 5000, random: seededRandom(3) })), delays(new Backoff({ baseMs: 100, capMs: 5000, random: seededRandom(3) })));
  t.notDeepEqual(delays(new Backoff({ baseMs: 100, capMs: 5000, random: seededRandom(3) })), delays(new Backoff({ baseMs: 100, capMs: 5000, random: seededRandom(4) })));
});

test("a backoff with no positive base, or a cap below it, is refused with a clear error", (t) => {
  t.throws(() => new Backoff({ baseMs: 0, capMs: 10 }), { message: /0 < baseMs <= capMs \(got 0, 10\)/ });
  t.throws(() => new Backoff({ baseMs: 100, capMs: 50 }), { message: /got 100, 50/ });
});

test("retry() repeats a retryable failure until it succeeds, and says so before each wait", async (t) => {
  let calls = 0;
  const told: number[] = [];
  const r = await retry(async (attempt) => {
    calls++;
    if (attempt < 4) throw new Error(`down ${attempt}`);
    return "up";
  }, { baseMs: 1, capMs: 4, retryable: () => true, onRetry: (_e, attempt) => told.push(attempt) });
  t.is(r, "up");
  t.is(calls, 4);
  t.deepEqual(told, [1, 2, 3]);
});

test("retry() throws at once a failure that is not retryable, and the last one when the attempts run out", async (t) => {
  let calls = 0;
  const refused = new Error("refused");
  await t.throwsAsync(retry(async () => { calls++; throw refused; }, { baseMs: 1, capMs: 2, retryable: (e) => e !== refused }), { is: refused });
  t.is(calls, 1);
  calls = 0;
  await t.throwsAsync(retry(async () => { throw new Error(`down ${++calls}`); }, { baseMs: 1, capMs: 2, maxAttempts: 3, retryable: () => true }), { message: "down 3" });
  t.is(calls, 3);
});

test("retry() starts no attempt after its deadline, and its wait ends at the deadline", async (t) => {
  let calls = 0;
  const start = Date.now();
  await t.throwsAsync(retry(async () => { calls++; throw new Error("down"); }, { baseMs: 10_000, capMs: 10_000, random: () => 0.99, deadline: start + 150, retryable: () => true }));
  const took = Date.now() - start;
  t.is(calls, 1, "the one wait of ~9.9 s was cut to the deadline, after which nothing is tried");
  t.true(took >= 140 && took < 2000, `gave up at the deadline (${took} ms)`);
});

test("retry() waits only where waitsAfter says (the failover client: once per round)", async (t) => {
  const waited: number[] = [];
  await t.throwsAsync(retry(async () => { throw new Error("down"); }, {
    baseMs: 2, capMs: 2, random: () => 0.5, maxAttempts: 7, retryable: () => true, waitsAfter: (n) => n % 3 === 0, onRetry: (_e, n, d) => waited.push(d > 0 ? n : -n),
  }));
  t.deepEqual(waited, [-1, -2, 3, -4, -5, 6], "no wait within a round of 3, a wait after each round");
});

test("retry() stops when its signal aborts: during a wait at once, and before any attempt if aborted already", async (t) => {
  const ac = new AbortController();
  let calls = 0;
  const start = Date.now();
  const p = retry(async () => { calls++; throw new Error("down"); }, { baseMs: 60_000, capMs: 60_000, random: () => 0.99, signal: ac.signal, retryable: () => true });
  setTimeout(() => ac.abort(), 30);
  const err = await t.throwsAsync(p, { instanceOf: RetryAbortedError });
  t.true(Date.now() - start < 1000, "the minute-long wait ended with the abort");
  t.is((err?.lastError as Error).message, "down", "the failure it was waiting out is kept");
  t.is(calls, 1, "no attempt after the abort");
  await t.throwsAsync(retry(async () => { calls++; return 1; }, { baseMs: 1, capMs: 1, signal: ac.signal, retryable: () => true }), { instanceOf: RetryAbortedError });
  t.is(calls, 1, "an aborted signal: not even a first attempt");
});

test("sleep() resolves true after its time, false at once on abort", async (t) => {
  t.true(await sleep(5));
  const ac = new AbortController();
  const start = Date.now();
  const p = sleep(60_000, ac.signal);
  ac.abort();
  t.false(await p);
  t.true(Date.now() - start < 1000);
  t.false(await sleep(10, ac.signal), "already aborted");
});
