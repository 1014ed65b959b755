import { describe, expect, it } from "vitest";
import { runConfig } from "../../src/cli/run.js";
import { ConfigError } from "../../src/config.js";

const DB = ["--database-url", "postgres://cdc@db/opentera"];

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
      expect(result.config.redisUrl).toMatch(/^rediss?:\/\//);
      expect(result.embedded.broker).toBe(false);
    }
  });

  it("refuses, in one line naming the fix, what Redis cannot do", () => {
    expect(refusal([...DB, "--redis-url", "redis://127.0.0.1:6379", "--mqtt-url", "mqtt://127.0.0.1:1883"])).toMatch(/both set: give one of them/);
    expect(refusal([...DB, "--redis-url", "redis://127.0.0.1:6379", "--log-to-mqtt"])).toMatch(/drop --log-to-mqtt/);
    expect(refusal([...DB, "--redis-url", "redis://127.0.0.1:6379", "--signing-key-file", "/nonexistent"])).toMatch(/signing-key-file|drop it with --redis-url/);
    expect(refusal([...DB, "--redis-url", "http://127.0.0.1:6379"])).toMatch(/redis-url/);
    for (const message of [refusal([...DB, "--redis-url", "redis://127.0.0.1:6379", "--mqtt-url", "mqtt://127.0.0.1:1883"])]) expect(message).not.toContain("\n");
  });
});
