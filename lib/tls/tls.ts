// Mutual TLS for mip46's gRPC: every process is given the same three PEM files, the CA that signs
// all of the deployment's certificates, its own certificate and its own key. Absent files mean
// plaintext (the lab default); the caller logs that.
import { ChannelCredentials, ServerCredentials } from "@grpc/grpc-js";
import { readFileSync, statSync } from "node:fs";
import { strict, text } from "../config/schema.js";

/** Paths of PEM files. */
export interface TlsFiles {
  ca: string;
  cert: string;
  key: string;
}

export class TlsFileError extends Error {
  override name = "TlsFileError";
}

export interface TlsMaterial {
  ca: Buffer;
  cert: Buffer;
  key: Buffer;
  /** Set when the key file can be read by its group or others: worth a warning, not a refusal. */
  keyReadableByOthers: boolean;
}

/** Reads the three files, naming the one that fails. The key's content never appears in an error. */
export function readTlsFiles(files: TlsFiles): TlsMaterial {
  const read = (what: keyof TlsFiles): Buffer => {
    try {
      return readFileSync(files[what]);
    } catch (e) {
      throw new TlsFileError(`tls.${what}: cannot read ${files[what]}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
  };
  const material = { ca: read("ca"), cert: read("cert"), key: read("key"), keyReadableByOthers: (statSync(files.key).mode & 0o077) !== 0 };
  for (const what of ["ca", "cert"] as const) {
    if (!material[what].includes("-----BEGIN CERTIFICATE-----")) throw new TlsFileError(`tls.${what}: ${files[what]} holds no PEM certificate`);
  }
  if (!/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(material.key.toString("latin1"))) throw new TlsFileError(`tls.key: ${files.key} holds no PEM private key`);
  return material;
}

/**
 * Server side: only clients with a certificate the CA signed get past the handshake
 * (checkClientCertificate), so an unauthenticated call never reaches a handler.
 */
export function serverCredentials(m: TlsMaterial): ServerCredentials {
  return ServerCredentials.createSsl(m.ca, [{ cert_chain: m.cert, private_key: m.key }], true);
}

/**
 * Client side: trusts only the deployment's CA (not the system store), presents our certificate,
 * and checks that the engine's certificate names the address dialled (its IP or DNS SANs).
 */
export function channelCredentials(files: TlsFiles | undefined): ChannelCredentials {
  if (!files) return ChannelCredentials.createInsecure();
  const m = readTlsFiles(files);
  return ChannelCredentials.createSsl(m.ca, m.key, m.cert);
}

/** The `tls` mapping of a configuration file: absent is no TLS; otherwise ca, cert and key are all required. */
export const TLS_FILES = strict({ ca: text("a PEM file path"), cert: text("a PEM file path"), key: text("a PEM file path") });
