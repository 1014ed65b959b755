/**
 * Reads the stream's signing key file (docs/security.md): the file's bytes, less one trailing line
 * break, at least 32 of them, in a file only its owner can read. The key is never logged or put in
 * an error message; only the file's path is.
 */
import { readFileSync, statSync } from "node:fs";
import { ConfigError } from "./errors.js";
import { MIN_SIGNING_KEY_BYTES } from "./messages/signature.js";

/** A key file that cannot be used; the message says why and what to do, never what the key is. */
export class SigningKeyError extends Error {
  override readonly name = "SigningKeyError";
}

export function readSigningKey(path: string): Buffer {
  let mode: number;
  let content: Buffer;
  try {
    mode = statSync(path).mode;
    content = readFileSync(path);
  } catch (error) {
    throw new SigningKeyError(`signing key file ${path} cannot be read (${(error as NodeJS.ErrnoException).code ?? "unreadable"}): create it with "openssl rand -hex 32 > ${path}; chmod 600 ${path}"`);
  }
  if ((mode & 0o077) !== 0) {
    throw new SigningKeyError(`signing key file ${path} can be read by others (mode ${(mode & 0o777).toString(8).padStart(4, "0")}): run "chmod 600 ${path}"`);
  }
  let end = content.length;
  if (end > 0 && content[end - 1] === 0x0a) end--;
  if (end > 0 && content[end - 1] === 0x0d) end--;
  const key = content.subarray(0, end);
  if (key.length < MIN_SIGNING_KEY_BYTES) {
    throw new SigningKeyError(`signing key file ${path} holds ${key.length} bytes, fewer than ${MIN_SIGNING_KEY_BYTES}: create it with "openssl rand -hex 32 > ${path}"`);
  }
  return Buffer.from(key);
}

/** The `signing-key-file` setting's key (the file was checked when the settings were read); undefined when not set. */
export function signingKeyOf(values: { readonly "signing-key-file"?: string | undefined }): Buffer | undefined {
  const path = values["signing-key-file"];
  if (path === undefined) return undefined;
  try {
    return readSigningKey(path);
  } catch (error) {
    // Changed since it was checked a moment ago.
    if (error instanceof SigningKeyError) throw new ConfigError(`setting signing-key-file: ${error.message}`);
    throw error;
  }
}
