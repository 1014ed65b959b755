import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startAedes } from "../harness/broker.js";
import { afterAll, beforeAll, expect, it } from "vitest";
import { runCli } from "../harness/cdc.js";
import { freePort } from "../harness/ports.js";
import { exited } from "../harness/processes.js";
import { ConfigError } from "../../src/errors.js";
import { Gateway } from "../../src/gateway/server.js";
import { createLogger } from "../../src/ops/log.js";
import { gatewayOptions, RULES_YAML, SECRET } from "./support.js";

/**
 * Issue 16: the gateway against an MQTT 3.1.1-only broker (aedes, the embedded fallback) logged
 * "Unacceptable protocol version" and then hung without an HTTP listener. It must exit 2 at once,
 * naming the need for MQTT 5, within 20 s.
 */
let aedes: Awaited<ReturnType<typeof startAedes>>;
let url: string;

beforeAll(async () => {
  aedes = await startAedes();
  url = aedes.url;
});

afterAll(async () => {
  await aedes?.close();
});

it("exits 2 within 20 s on a broker that speaks MQTT 3.1.1 only, naming the need for MQTT 5", async () => {
  const dir = mkdtempSync(join(tmpdir(), "tera-cdc-gateway-311-"));
  writeFileSync(join(dir, "rules.yaml"), RULES_YAML);
  const started = Date.now();
  const gateway = runCli(["gateway", "--mqtt-url", url, "--host", "127.0.0.1", "--port", String(await freePort()), "--rules", join(dir, "rules.yaml")], {
    TERA_CDC_GATEWAY_AUTH_SECRET: SECRET,
  });
  // Node's start-up on a busy machine counts too: 20 s in all, as the issue asks.
  const code = await exited(gateway.child, 20_000);
  expect(Date.now() - started).toBeLessThan(20_000);
  expect(code).toBe(2);
  const lastLine = gateway.output().stderr.trim().split("\n").at(-1)!;
  expect(lastLine).toMatch(/^tera-cdc gateway: setting mqtt-url: the broker speaks MQTT 3\.1\.1 only, and the gateway needs MQTT 5/);
}, 30_000);

it("connects to the broker before the live page is bundled: a 3.1.1 broker is refused even while the bundle never finishes", async () => {
  // A bundler that never finishes: before issue 16's fix the connect waited on it.
  const gateway = new Gateway(gatewayOptions(url, { logger: createLogger("silent"), web: new Promise(() => {}) }));
  const started = Date.now();
  await expect(gateway.start()).rejects.toBeInstanceOf(ConfigError);
  expect(Date.now() - started).toBeLessThan(20_000);
  await gateway.stop();
}, 30_000);
