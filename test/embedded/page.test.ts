import { execFileSync } from "node:child_process";
import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Browser, chromium } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "../harness/cdc.js";
import { waitFor } from "../harness/ports.js";
import { exited } from "../harness/processes.js";

/**
 * Issue 16's "done when": the embedded default (`npm start`, which runs `tera-cdc run` with nothing
 * configured) prints a page URL; opened in Chromium it shows the sample rows of a model at once,
 * and a change made with the printed psql command appears within a second. Mosquitto is installed
 * here, so the broker speaks MQTT 5 and the development gateway starts.
 */
const CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"];
const dataDir = mkdtempSync(join(tmpdir(), "tera-cdc-embedded-page-"));
chmodSync(dataDir, 0o755);
const STEP_MS = 90_000;
const VISIBLE_WITHIN_MS = 1000;

let cli: ReturnType<typeof runCli>;
let browser: Browser;
let banner: { pageUrl: string; psqlChange: string };

beforeAll(async () => {
  cli = runCli(["run", "--data-dir", dataDir], { TERA_CDC_DATABASE_URL: "", TERA_CDC_MQTT_URL: "", TERA_CDC_TABLES: "", TERA_CDC_PRESET: "" });
  banner = await waitFor(
    "the banner with the page URL",
    () => {
      if (cli.child.exitCode !== null) throw new Error(`tera-cdc exited ${cli.child.exitCode}: ${cli.output().stderr.slice(-2000)}`);
      const { stdout } = cli.output();
      const pageUrl = /^ {4}(http:\/\/127\.0\.0\.1:\d+\/#\S+)$/m.exec(stdout)?.[1];
      const psqlChange = /^ {4}(PGPASSFILE=\S+ psql \S+ -c .+)$/m.exec(stdout)?.[1];
      return pageUrl && psqlChange ? { pageUrl, psqlChange } : undefined;
    },
    STEP_MS,
    100,
  );
  browser = await chromium.launch({ executablePath: process.env.TERA_CDC_CHROMIUM ?? "/usr/bin/chromium", args: CHROMIUM_FLAGS });
}, STEP_MS + 30_000);

afterAll(async () => {
  await browser?.close();
  if (cli && cli.child.exitCode === null) {
    cli.child.kill("SIGINT");
    await exited(cli.child, 60_000).catch(() => cli.child.kill("SIGKILL"));
  }
  rmSync(dataDir, { recursive: true, force: true });
}, 70_000);

/** Runs the printed command through a shell, exactly as a user pastes it. */
function paste(command: string): void {
  execFileSync("sh", ["-c", command], { stdio: "pipe" });
}

describe("npm start ends with a live page", () => {
  it("shows the sample rows on load; a change made with the printed psql command appears within a second", async () => {
    const page = await browser.newPage();
    const failed: string[] = [];
    page.on("response", (response) => {
      if (response.status() >= 400) failed.push(`${response.status()} ${response.url()}`);
    });
    await page.goto(banner.pageUrl);
    await page.waitForSelector('#banner[data-state="live"]', { timeout: 30_000 });
    // The sample database's two devices, there without any change having been made.
    await page.waitForFunction('document.querySelectorAll("#rows tbody tr").length === 2', undefined, { timeout: 30_000 });
    const names = await page.locator('#rows td[data-col="device_name"]').allTextContents();
    expect(names.sort()).toEqual(["Beam 1", "Kinect"]);
    expect(failed).toEqual([]);

    paste(banner.psqlChange);
    await page.waitForFunction(`[...document.querySelectorAll('#rows td[data-col="device_name"]')].some((td) => td.textContent === "Kinect 2")`, undefined, {
      timeout: 30_000,
      polling: 5,
    });
    // COMMIT (the event's commit time, from PostgreSQL) to painted in the page (same machine clock).
    await page.waitForFunction("teraLive.applied.some((a) => a.op === 'update' && a.at > 0)", undefined, { timeout: 10_000 });
    const painted = await page.evaluate(() => (globalThis as unknown as { teraLive: { applied: { op: string; at: number; commitTime: string }[] } }).teraLive.applied.filter((a) => a.op === "update"));
    expect(painted).toHaveLength(1);
    const latency = painted[0]!.at - Date.parse(painted[0]!.commitTime);
    process.stdout.write(`npm start page: COMMIT -> painted ${latency} ms\n`);
    expect(latency).toBeLessThanOrEqual(VISIBLE_WITHIN_MS);
  }, 120_000);

  it("switches between the models the token may see, each with its current rows", async () => {
    const page = await browser.newPage();
    await page.goto(banner.pageUrl);
    await page.waitForSelector('#banner[data-state="live"]', { timeout: 30_000 });
    const options = await page.locator("#model-select option").allTextContents();
    expect(options).toEqual(expect.arrayContaining(["device", "site", "project", "participant"]));
    await page.selectOption("#model-select", "site");
    await page.waitForFunction(`document.querySelector('#rows td[data-col="site_name"]')?.textContent === "Site de démo"`, undefined, { timeout: 30_000 });
    expect(await page.locator("#model").textContent()).toBe("site");
    expect(await page.locator('#rows td[data-col="device_name"]').count()).toBe(0);
  }, 60_000);
});
