// libvirt's qemu hook for mip46: tells the host's agent about the phases of a VM's life that a
// live migration goes through (clients/agent/events.ts is the other end). libvirt runs it as
//   /etc/libvirt/hooks/qemu <domain> <operation> <sub-operation> <extra>
// with the domain XML on stdin, and waits for it. Rules this file keeps:
//  - It always exits 0. For prepare, start and migrate, a non-zero exit makes libvirt abort the
//    operation: an agent that is down or slow must never stop a VM or a migration.
//  - It writes nothing to stdout. For "migrate begin" (and "restore begin") libvirt takes a
//    non-empty stdout as a replacement for the domain XML.
//  - It never calls back into libvirt (libvirt waits for the hook: that would deadlock).
//  - Plain Node, no dependency, no TypeScript: it runs on every VM start and stop, and must start
//    fast. The domain XML is read by a small parser of the three elements it needs rather than
//    by an XML library: the project has none, and one is not worth a dependency here.
import { createConnection } from "node:net";

const PHASE_OF = { "prepare begin": "prepare", "migrate begin": "migrate", "started begin": "started", "release end": "release" };
const SOCKET = process.env.MIP46_AGENT_SOCKET || "/run/mip46/agent.sock";
const REPLY_WITHIN_MS = 2000;

const [domain, operation, subOperation] = process.argv.slice(2);
const phase = PHASE_OF[`${operation} ${subOperation}`];

function done(problem) {
  if (problem) process.stderr.write(`mip46 hook: ${domain} ${operation} ${subOperation}: ${problem}\n`);
  process.exit(0);
}

process.on("uncaughtException", (e) => done(`failed: ${e?.message ?? e}`));
if (!phase || !domain) done();
// One deadline for all of it (stdin, connect, reply): libvirt waits for the hook.
setTimeout(() => done(`no reply from the agent at ${SOCKET} within ${REPLY_WITHIN_MS} ms; ${phase} not confirmed`), REPLY_WITHIN_MS);

const ENTITIES = { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'" };
const decode = (text) => text.replace(/&(amp|lt|gt|quot|apos);|&#(\d+);|&#x([0-9a-f]+);/gi, (_, name, dec, hex) => (name ? ENTITIES[name.toLowerCase()] : String.fromCodePoint(parseInt(dec ?? hex, dec ? 10 : 16))));

/** The value of `attribute` on the first <element ...> in `xml`, or undefined. */
function attributeOf(xml, element, attribute) {
  const tag = new RegExp(`<${element}\\b([^>]*)>`).exec(xml);
  if (!tag) return undefined;
  const value = new RegExp(`(?:^|\\s)${attribute}\\s*=\\s*(?:"([^"]*)"|'([^']*)')`).exec(tag[1]);
  return value ? decode(value[1] ?? value[2]) : undefined;
}

/**
 * Each <interface> of the domain's <devices>: its <mac address>, <target dev> and <source
 * bridge>. Comments and CDATA go first (they may hold anything), and only <devices> is read
 * (<metadata> may hold other applications' elements of any name).
 */
function interfacesOf(xml) {
  const clean = xml.replace(/<!--[\s\S]*?-->/g, "").replace(/<!\[CDATA\[[\s\S]*?\]\]>/g, "");
  const devices = /<devices\b[^>]*>([\s\S]*?)<\/devices>/.exec(clean)?.[1] ?? "";
  const found = [];
  for (const [, body] of devices.matchAll(/<interface(?:\s[^>]*)?(?<!\/)>([\s\S]*?)<\/interface>/g)) {
    const mac = attributeOf(body, "mac", "address");
    if (!mac) continue;
    const dev = attributeOf(body, "target", "dev");
    const bridge = attributeOf(body, "source", "bridge");
    found.push({ mac: mac.toLowerCase(), ...(dev ? { dev } : {}), ...(bridge ? { bridge } : {}) });
  }
  return found;
}

async function readStdin() {
  let text = "";
  process.stdin.setEncoding("utf8");
  for await (const chunk of process.stdin) text += chunk;
  return text;
}

function report(event) {
  const socket = createConnection(SOCKET);
  let reply = "";
  socket.setEncoding("utf8");
  socket.on("connect", () => socket.write(JSON.stringify(event) + "\n"));
  socket.on("error", (e) => done(`no agent at ${SOCKET} (${e.code ?? e.message}); ${phase} not reported`));
  socket.on("data", (chunk) => {
    reply += chunk;
    const end = reply.indexOf("\n");
    if (end < 0) return;
    let answer;
    try {
      answer = JSON.parse(reply.slice(0, end));
    } catch {
      return done(`the agent's reply is not JSON: ${reply.slice(0, 200)}`);
    }
    done(answer.ok === true ? undefined : `the agent refused ${phase}: ${answer.error}`);
  });
  socket.on("end", () => done(`the agent at ${SOCKET} closed the connection without a reply`));
}

report({ phase, domain, interfaces: interfacesOf(await readStdin()) });
