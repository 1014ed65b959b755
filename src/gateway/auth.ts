import { createPublicKey, createSecretKey, type KeyObject } from "node:crypto";
import { errors, jwtVerify, type JWTPayload, SignJWT } from "jose";

/** Verifies the JWT a browser presents on connect. */
export interface TokenVerifier {
  verify(token: string): Promise<JWTPayload>;
  readonly algorithms: readonly string[];
}

export interface AuthOptions {
  /** HS256 shared secret, or */
  readonly secret?: string;
  /** a PEM public key (SPKI or certificate): RSA gives RS256, EC P-256 gives ES256. */
  readonly publicKeyPem?: string;
  readonly issuer?: string;
  readonly audience?: string;
  /** Accept tokens without an `exp` claim (they never expire); by default such a token is refused. */
  readonly allowNoExp?: boolean;
}

/** Only these algorithms are accepted; "none" and algorithm confusion (HS256 with a public key) are refused. */
export function createVerifier(options: AuthOptions): TokenVerifier {
  let key: KeyObject;
  let algorithms: string[];
  if (options.secret !== undefined) {
    if (Buffer.byteLength(options.secret) < 32) throw new Error("auth secret is shorter than 32 bytes: use a random secret of at least 32 bytes (HS256)");
    key = createSecretKey(Buffer.from(options.secret));
    algorithms = ["HS256"];
  } else if (options.publicKeyPem !== undefined) {
    try {
      key = createPublicKey(options.publicKeyPem);
    } catch (error) {
      throw new Error(`auth public key is not a PEM public key (${(error as Error).message.split("\n")[0]}): give an SPKI "BEGIN PUBLIC KEY" file`);
    }
    if (key.asymmetricKeyType === "rsa") algorithms = ["RS256"];
    else if (key.asymmetricKeyType === "ec" && key.asymmetricKeyDetails?.namedCurve === "prime256v1") algorithms = ["ES256"];
    else throw new Error(`auth public key is ${key.asymmetricKeyType} ${key.asymmetricKeyDetails?.namedCurve ?? ""}: use an RSA (RS256) or EC P-256 (ES256) key`);
  } else {
    throw new Error("no token key: give --auth-secret or --auth-public-key");
  }
  return {
    algorithms,
    async verify(token: string) {
      const { payload } = await jwtVerify(token, key, {
        algorithms,
        ...(options.issuer ? { issuer: options.issuer } : {}),
        ...(options.audience ? { audience: options.audience } : {}),
        ...(options.allowNoExp ? {} : { requiredClaims: ["exp"] }),
      });
      return payload;
    },
  };
}

/**
 * An HS256 token for the gateway from `claims`, valid for `expiresIn` (jose's spans: "30m", "1h",
 * "7d"), as `tera-cdc token` and the embedded default's development page make them.
 */
export async function signToken(options: { secret: string; claims: Record<string, unknown>; expiresIn: string; issuer?: string; audience?: string }): Promise<string> {
  if (Buffer.byteLength(options.secret) < 32) throw new Error("auth secret is shorter than 32 bytes: use a random secret of at least 32 bytes (HS256)");
  let jwt = new SignJWT(options.claims as JWTPayload).setProtectedHeader({ alg: "HS256", typ: "JWT" }).setIssuedAt().setExpirationTime(options.expiresIn);
  if (options.issuer) jwt = jwt.setIssuer(options.issuer);
  if (options.audience) jwt = jwt.setAudience(options.audience);
  return jwt.sign(createSecretKey(Buffer.from(options.secret)));
}

/** A short reason for a refused token, safe to send back and to log (never the token itself). */
export function tokenRefusal(error: unknown): string {
  if (error instanceof errors.JWTExpired) return "token expired";
  if (error instanceof errors.JWTClaimValidationFailed && error.reason === "missing") return `token has no ${error.claim} claim`;
  if (error instanceof errors.JWTClaimValidationFailed) return `token claim ${error.claim} is not accepted`;
  if (error instanceof errors.JOSEAlgNotAllowed) return "token algorithm not accepted";
  if (error instanceof errors.JWSSignatureVerificationFailed) return "token signature is not valid";
  if (error instanceof errors.JOSEError) return `token refused (${error.code})`;
  return "token refused";
}

/** Subprotocol a browser offers beside the token; the server answers with it. */
export const SUBPROTOCOL = "tera-cdc.v1";
const BEARER_PREFIX = "bearer.";

/**
 * The token of an upgrade request: `?token=` in the URL, or the Sec-WebSocket-Protocol entry
 * `bearer.<jwt>` (browsers cannot set an Authorization header on a WebSocket).
 */
export function tokenOfRequest(url: string | undefined, protocolHeader: string | string[] | undefined): string | undefined {
  const header = Array.isArray(protocolHeader) ? protocolHeader.join(",") : (protocolHeader ?? "");
  for (const entry of header.split(",")) {
    const p = entry.trim();
    if (p.startsWith(BEARER_PREFIX) && p.length > BEARER_PREFIX.length) return p.slice(BEARER_PREFIX.length);
  }
  const query = new URL(url ?? "/", "http://gateway").searchParams.get("token");
  return query || undefined;
}
