// lib/log.ts: structured JSON lines, with secrets redacted wherever they sit in what is logged.
import test from "ava";
import { createLogger, levelFromEnv } from "../../lib/log.js";

function capture(min: "debug" | "info" = "debug"): { lines: Record<string, unknown>[]; raw: string[]; log: ReturnType<typeof createLogger> } {
  const raw: string[] = [];
  const lines: Record<string, unknown>[] = [];
  const log = createLogger({ service: "test" }, min, (line) => {
    raw.push(line);
    lines.push(JSON.parse(line) as Record<string, unknown>);
  });
  return { lines, raw, log };
}

const KEY_HEX = "00112233445566778899aabbccddeeff";

test("a field named key (any case), keys, secret, token, password is redacted; others are kept", (t) => {
  const { lines, raw, log } = capture();
  log.info("binding", { homeAddress: "192.0.2.1", spi: 256, key: KEY_HEX, Keys: [KEY_HEX], secret: "s3cr3t-value", token: "tok-value", password: "pw-value", passphrase: "pp-value", privateKey: "pk-value" });
  const l = lines[0];
  t.is(l.msg, "binding");
  t.is(l.level, "info");
  t.is(l.service, "test");
  t.is(l.homeAddress, "192.0.2.1");
  t.is(l.spi, 256);
  for (const f of ["key", "Keys", "secret", "token", "password", "passphrase", "privateKey"]) t.is(l[f], "[redacted]", f);
  for (const v of [KEY_HEX, "s3cr3t-value", "tok-value", "pw-value", "pp-value", "pk-value"]) t.false(raw[0].includes(v), v);
  t.is(typeof l.time, "string");
});

test("nested: { sa: { key } } and keys inside arrays of objects are redacted, their siblings kept", (t) => {
  const { lines, raw, log } = capture();
  log.warn("sa", { sa: { spi: 300, algorithm: "hmac-sha256", key: KEY_HEX }, list: [{ homeAddress: "2001:db8:1::50", key: KEY_HEX }] });
  const l = lines[0] as { sa: Record<string, unknown>; list: Record<string, unknown>[] };
  t.deepEqual(l.sa, { spi: 300, algorithm: "hmac-sha256", key: "[redacted]" });
  t.deepEqual(l.list, [{ homeAddress: "2001:db8:1::50", key: "[redacted]" }]);
  t.false(raw[0].includes(KEY_HEX));
});

test("Uint8Array values are redacted whatever their field's name", (t) => {
  const { lines, raw, log } = capture();
  log.info("bytes", { material: Uint8Array.from([0xde, 0xad, 0xbe, 0xef]), nested: { blob: new Uint8Array(4).fill(0x41) } });
  t.is(lines[0].material, "[redacted]");
  t.deepEqual(lines[0].nested, { blob: "[redacted]" });
  // The whole line, field by field: nothing but the redaction marks where the bytes were, in
  // any form (numbers, a hex or base64 text, an object of indices).
  const { time, ...rest } = lines[0];
  t.is(typeof time, "string");
  t.deepEqual(rest, { level: "info", msg: "bytes", service: "test", material: "[redacted]", nested: { blob: "[redacted]" } });
  for (const form of ["deadbeef", "3q2+7w==", "222", "173", "190", "239", "41414141", "QUFBQQ=="]) t.false(raw[0].replace(/"time":"[^"]*"/, "").includes(form), `no '${form}' in the line`);
});

test("fields of a child logger are redacted too; bigint and Error are written readably", (t) => {
  const { lines, raw, log } = capture();
  const child = log.child({ vmId: "v1", token: "child-token" });
  child.error("failed", { revision: 12n, error: new Error("boom") });
  t.is(lines[0].vmId, "v1");
  t.is(lines[0].token, "[redacted]");
  t.false(raw[0].includes("child-token"));
  t.is(lines[0].revision, "12");
  t.deepEqual(lines[0].error, { name: "Error", message: "boom" });
});

test("below the minimum level nothing is written", (t) => {
  const { lines, log } = capture("info");
  log.debug("quiet", { key: KEY_HEX });
  t.is(lines.length, 0);
  log.info("loud");
  t.is(lines.length, 1);
});

// Known gap (reported): Buffer, a Uint8Array, has toJSON(), which JSON.stringify calls before the
// replacer sees the value, so a Buffer under an innocent name is written as its bytes.
test("a Buffer value under any name is redacted", (t) => {
  const { lines, log } = capture();
  log.info("buffer", { material: Buffer.from(KEY_HEX, "hex") });
  t.is(lines[0].material, "[redacted]");
});

test("MIP46_LOG_LEVEL: the four levels and unset are taken; anything else is refused, naming the choices", (t) => {
  t.is(levelFromEnv(undefined), "info");
  t.is(levelFromEnv(""), "info");
  for (const l of ["debug", "info", "warn", "error"] as const) t.is(levelFromEnv(l), l);
  for (const bad of ["verbose", "INFO", "toString", "constructor"]) {
    t.throws(() => levelFromEnv(bad), { message: `MIP46_LOG_LEVEL: '${bad}' is not a log level (debug, info, warn or error)` });
  }
  t.throws(() => createLogger({}, "loud" as never), { message: /not one of debug, info, warn, error/ });
});

test("setLevel on a root logger changes what it and its children write", (t) => {
  const lines: string[] = [];
  const root = createLogger({ component: "x" }, "info", (l) => lines.push(l));
  const child = root.child({ part: "y" });
  child.debug("hidden");
  root.setLevel("debug");
  child.debug("shown");
  root.debug("shown too");
  root.setLevel("warn");
  child.info("hidden again");
  t.deepEqual(lines.map((l) => JSON.parse(l).msg), ["shown", "shown too"]);
  t.is(root.level, "warn");
  t.throws(() => root.setLevel("loud" as never), { message: /not one of debug, info, warn, error/ });
});
