// The adapter between zod and our configuration errors (lib/config/schema.ts): `path: reason`
// with the path as the file writes it, unknown keys before the rest, values never echoed except
// integers, and the field on the error.
import test from "ava";
import { ConfigFieldError, fieldPath, integer, list, parseShape, strict, text } from "../../../lib/config/schema.js";

const SHAPE = strict({
  name: text(),
  sizes: list(integer(1, 9)).optional(),
  inner: strict({ secret: text("a key in hex") }).optional(),
  items: list(strict({ port: integer(1, 65535) })).default([]),
});
const fail = (message: string, field: string) => new ConfigFieldError(message, field);
const message = (t: { throws: (fn: () => unknown, e: object) => Error | undefined }, v: unknown, root = "") =>
  t.throws(() => parseShape(SHAPE, v, fail, root), { instanceOf: ConfigFieldError })?.message;

test("paths are written as in the file: keys joined by dots, list places in brackets, under an optional root", (t) => {
  t.is(fieldPath(["segments", 1, "careOfRange"]), "segments[1].careOfRange");
  t.is(fieldPath([0, "mac"], "worker.interfaces"), "worker.interfaces[0].mac");
  t.is(fieldPath([], "worker"), "worker");
  t.is(message(t, { name: "a", items: [{ port: 1 }, { port: 0 }] }), "items[1].port: must be an integer in 1..65535, not 0");
  t.is(message(t, { name: "a", sizes: [1, 10] }, "top"), "top.sizes[1]: must be an integer in 1..9, not 10");
});

test("an unknown key is named with the keys known, and reported before a missing one (its likely misspelling)", (t) => {
  t.is(message(t, { nmae: "a" }), "nmae: unknown key (known: name, sizes, inner, items)");
  t.is(message(t, { name: "a", items: [{ prot: 80 }] }), "items[0].prot: unknown key (known: port)");
});

test("required and wrong types say what was expected and never echo a value that is not an integer", (t) => {
  t.is(message(t, {}), "name: required, a string");
  t.is(message(t, { name: "a", inner: { secret: 1234567 } }), "inner.secret: must be a key in hex");
  t.is(message(t, { name: "a", sizes: "1,2" }), "sizes: expected a list");
  t.is(message(t, "name: a"), "configuration: expected a mapping");
  t.is(message(t, 5, "worker"), "worker: expected a mapping");
});

test("the error carries the field's path; a valid document comes back with its defaults", (t) => {
  const e = t.throws(() => parseShape(SHAPE, { name: "" }, fail), { instanceOf: ConfigFieldError });
  t.is(e?.field, "name");
  t.is(e?.message, "name: must be a non-empty string");
  t.is(new ConfigFieldError("a.b[2]: is wrong").field, "a.b[2]", "the field is read from the message when not given");
  t.deepEqual(parseShape(SHAPE, { name: "a" }, fail), { name: "a", items: [] });
});
