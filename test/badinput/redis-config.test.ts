import { describe, expect, it } from "vitest";
import { runConfig } from "../../src/cli/run.js";
import { ConfigError } from "../../src/config.js";
import { makeTestCertificates } from "../security/certs.js";

const DB = ["--database-url", "postgres://cdc@db/opentera"];
const CA_FILE = makeTestCertificates().caCert;

function refusal(argv: string[], env: NodeJS.ProcessEnv = {}): string {
  try {
    runConfig(argv, env);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as Error).message;
  }
  throw new Error(`accepted: ${argv.join(" ")}`);
}

describe("run --redis-url: settings", () => {
  it("takes the URL from the flag or TERA_CDC_REDIS_URL and starts no embedded broker", () => {
    for (const [argv, env] of [[[...DB, "--redis-url", "redis://u:p@127.0.0.1:6379/2"], {}], [DB, { TERA_CDC_REDIS_URL: "rediss://127.0.0.1:6380" }]] as const) {
      const result = runConfig([...argv], env);
      if (result === "help") throw new Error("help");
      expect(result.config.sink.redisUrl).toMatch(/^rediss?:\/\//);
      expect(result.embedded.broker).toBe(false);
    }
    const tls = runConfig([...DB, "--redis-url", "rediss://127.0.0.1:6380", "--redis-ca", CA_FILE]);
    if (tls === "help") throw new Error("help");
    expect(tls.config.sink.redisCa?.toString()).toMatch(/BEGIN CERTIFICATE/);
  });

  it("refuses, in one line naming the fix, what Redis cannot do", () => {
    expect(refusal([...DB, "--redis-url", "redis://127.0.0.1:6379", "--mqtt-url", "mqtt://127.0.0.1:1883"])).toMatch(/both set: give one of them/);
    expect(refusal([...DB, "--redis-url", "redis://127.0.0.1:6379", "--log-to-mqtt"])).toMatch(/drop --log-to-mqtt/);
    expect(refusal([...DB, "--redis-url", "redis://127.0.0.1:6379", "--signing-key-file", "/nonexistent"])).toMatch(/signing-key-file|drop it with --redis-url/);
    expect(refusal([...DB, "--redis-url", "http://127.0.0.1:6379"])).toMatch(/redis-url/);
    // A CA for a plain connection would be silently unused.
    expect(refusal([...DB, "--redis-url", "redis://127.0.0.1:6379", "--redis-ca", CA_FILE])).toMatch(/give a rediss:\/\/ --redis-url, or drop --redis-ca/);
    expect(refusal([...DB, "--mqtt-url", "mqtt://127.0.0.1:1883", "--redis-ca", CA_FILE])).toMatch(/redis-ca/);
    expect(refusal([...DB, "--redis-url", "rediss://127.0.0.1:6380", "--redis-ca", "/nonexistent/ca.pem"])).toMatch(/redis-ca/);
    for (const message of [refusal([...DB, "--redis-url", "redis://127.0.0.1:6379", "--mqtt-url", "mqtt://127.0.0.1:1883"])]) expect(message).not.toContain("\n");
  });
});
