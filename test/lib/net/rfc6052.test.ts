import test from "ava";
import { parseIPv6 } from "../../../lib/net/address.js";
import { embedIPv4, extractIPv4, extractIPv4At, RFC6052_LENGTHS } from "../../../lib/net/rfc6052.js";

// RFC 6052 §2.4, Table 1: 192.0.2.33 embedded at each prefix length.
const TABLE_1: [number, string][] = [
  [32, "2001:db8:c000:221::"],
  [40, "2001:db8:1c0:2:21::"],
  [48, "2001:db8:122:c000:2:2100::"],
  [56, "2001:db8:122:3c0:0:221::"],
  [64, "2001:db8:122:344:c0:2:2100:0"],
  [96, "2001:db8:122:344::192.0.2.33"],
];
const IPV4 = Uint8Array.of(192, 0, 2, 33);

test("RFC 6052 §2.4 Table 1: embedIPv4 writes the table's addresses, extractIPv4 and extractIPv4At read 192.0.2.33 back", (t) => {
  for (const [length, text] of TABLE_1) {
    const address = parseIPv6(text, "test").bytes;
    const prefix = new Uint8Array(16);
    prefix.set(address.subarray(0, length >> 3));
    t.deepEqual(embedIPv4(prefix, length, IPV4), address, `/${length}`);
    t.deepEqual(extractIPv4(address, length), IPV4, `/${length}`);
    // At an offset inside a larger buffer, as the translator reads it from a packet.
    const packet = new Uint8Array(40).fill(0xff);
    packet.set(address, 24);
    t.is(extractIPv4At(packet, 24, length), 0xc0000221, `/${length}`);
  }
  t.deepEqual(TABLE_1.map(([l]) => l), [...RFC6052_LENGTHS]);
});

test("extractIPv4At gives an unsigned number for an address with the top bit set", (t) => {
  const address = embedIPv4(parseIPv6("64:ff9b::", "test").bytes, 96, Uint8Array.of(203, 0, 113, 255));
  t.is(extractIPv4At(address, 0, 96), 0xcb0071ff);
});
