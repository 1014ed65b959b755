import { join } from "node:path";
import { createVerifier, signToken } from "../gateway/auth.js";
import { readRulesFile } from "../gateway/rules.js";
import { GATEWAY_DEFAULTS } from "../gateway/defaults.js";
import { Gateway } from "../gateway/server.js";
import { buildWebAssets } from "../gateway/web.js";
import type { Logger } from "../ops/log.js";
import { choosePort, portCandidates } from "./ports.js";
import type { BrokerIdentity } from "./secrets.js";

/** The access rules of the sample database, shipped as an example for your own (docs/gateway.md). */
export const SAMPLE_RULES_FILE = join(import.meta.dirname, "..", "..", "examples", "gateway-rules.yaml");
/** The development token's claims: an administrator of the sample site and project, for a week. */
const DEVELOPMENT_CLAIMS = { sub: "developer", role: "admin", sites: [1], projects: [1] };
const DEVELOPMENT_TOKEN_LIFETIME = "7d";
const GATEWAY_FALLBACK_PORT = 18080;

export interface EmbeddedGateway {
  readonly port: number;
  /** The live page with the development token and the first model in its fragment (never sent to the server). */
  readonly pageUrl: string;
  stop(): Promise<void>;
}

/**
 * The embedded default's gateway: on 127.0.0.1 only (the port used last time, else 8080, else a
 * fallback or any free port), the sample database's rules, the development secret, the local
 * broker identity, and a snapshot of each model asked for at start so the page opens on the
 * current rows.
 */
export async function startEmbeddedGateway(options: {
  mqttUrl: string;
  broker: BrokerIdentity;
  secret: string;
  moduleName: string;
  savedPort?: number;
  logger: Logger;
}): Promise<EmbeddedGateway> {
  const rules = readRulesFile(SAMPLE_RULES_FILE);
  const models = [...rules.models.keys()];
  const port = await choosePort(portCandidates(options.savedPort, 8080, GATEWAY_FALLBACK_PORT));
  const gateway = new Gateway({
    mqttUrl: options.mqttUrl,
    mqttUsername: options.broker.username,
    mqttPassword: options.broker.password,
    host: "127.0.0.1",
    port,
    verifier: createVerifier({ secret: options.secret }),
    rules,
    models,
    ...GATEWAY_DEFAULTS,
    snapshotOnStart: { moduleName: options.moduleName },
    web: buildWebAssets(),
    logger: options.logger,
  });
  await gateway.start();
  const token = await signToken({ secret: options.secret, claims: DEVELOPMENT_CLAIMS, expiresIn: DEVELOPMENT_TOKEN_LIFETIME });
  return {
    port: gateway.port,
    pageUrl: `http://127.0.0.1:${gateway.port}/#model=${models.includes("device") ? "device" : models[0]}&token=${token}`,
    stop: () => gateway.stop(),
  };
}
