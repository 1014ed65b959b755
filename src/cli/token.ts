import { ConfigError, isMapping, type SettingSpec } from "../config.js";
import { LOCAL_DATA_DIR_SETTING } from "../embedded/local.js";
import { readSecrets } from "../embedded/secrets.js";
import { signToken } from "../gateway/auth.js";
import { flagsOnlyCommand, required } from "./help.js";

export const TOKEN_SETTINGS = [
  { name: "claims", env: "TERA_CDC_TOKEN_CLAIMS", kind: { type: "string" }, help: 'the token\'s claims as a JSON object, e.g. {"sub":"alice","sites":[1]} (what the rules file reads)' },
  { name: "auth-secret", env: "TERA_CDC_GATEWAY_AUTH_SECRET", kind: { type: "string" }, help: "the gateway's HS256 secret (default: the embedded default's development secret in --data-dir)", secret: true },
  { name: "expires-in", env: "TERA_CDC_TOKEN_EXPIRES_IN", kind: { type: "string" }, default: "1h", help: 'how long the token is valid: "30m", "8h", "7d"' },
  { name: "issuer", env: "TERA_CDC_GATEWAY_AUTH_ISSUER", kind: { type: "string" }, help: "iss claim (when the gateway requires one)" },
  { name: "audience", env: "TERA_CDC_GATEWAY_AUTH_AUDIENCE", kind: { type: "string" }, help: "aud claim (when the gateway requires one)" },
  LOCAL_DATA_DIR_SETTING,
] as const satisfies readonly SettingSpec[];

const USAGE = `Usage: tera-cdc token --claims JSON [--auth-secret S] [--expires-in 1h]

Prints an HS256 JWT for tera-cdc gateway, signed with the gateway's secret (--auth-secret or
TERA_CDC_GATEWAY_AUTH_SECRET; without one, the development secret of a running npm start). For
gateways configured with a public key, tokens come from the issuer that holds the private key.`;
const EXAMPLES = [
  `tera-cdc token --claims '{"sub":"alice","sites":[1],"projects":[1]}'`,
  `TERA_CDC_GATEWAY_AUTH_SECRET=... tera-cdc token --claims '{"sub":"42","role":"admin"}' --expires-in 8h`,
];

const SPAN = /^\d+ ?(s|sec|secs|second|seconds|m|min|mins|minute|minutes|h|hr|hrs|hour|hours|d|day|days|w|week|weeks)$/;

export async function tokenCommand(argv: string[]): Promise<number> {
  const v = flagsOnlyCommand("token", TOKEN_SETTINGS, argv, { usage: USAGE, examples: EXAMPLES });
  if (!v) return 0;
  const claimsText = required(TOKEN_SETTINGS, v, "claims");
  let claims: unknown;
  try {
    claims = JSON.parse(claimsText);
  } catch (error) {
    throw new ConfigError(`setting claims is not JSON (${(error as Error).message}): give an object such as '{"sub":"alice","sites":[1]}'`);
  }
  if (!isMapping(claims)) throw new ConfigError(`setting claims is not a JSON object: give one such as '{"sub":"alice","sites":[1]}'`);
  if ("exp" in claims || "iat" in claims) throw new ConfigError("setting claims: leave out exp and iat, token sets them (--expires-in)");
  const expiresIn = v["expires-in"];
  if (!SPAN.test(expiresIn)) throw new ConfigError(`setting expires-in is ${JSON.stringify(expiresIn)}: expected a span such as 30m, 8h or 7d`);
  const secret = v["auth-secret"] ?? readSecrets(v["data-dir"])?.gatewaySecret;
  if (secret === undefined) {
    throw new ConfigError("setting auth-secret is missing: give --auth-secret or TERA_CDC_GATEWAY_AUTH_SECRET (the gateway's), or --data-dir of the embedded default");
  }
  let token: string;
  try {
    token = await signToken({ secret, claims, expiresIn, issuer: v.issuer, audience: v.audience });
  } catch (error) {
    throw new ConfigError(`setting auth-secret: ${(error as Error).message}`);
  }
  process.stdout.write(`${token}\n`);
  return 0;
}
