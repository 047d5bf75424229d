/**
 * The status page at /ui, in a real browser (Debian's chromium, headless) against a real
 * `keypool serve` of one pool of two keys: it shows the keys masked and their states, turns a
 * key RateLimited without a reload when a report says so through the API and counts down to its
 * recovery, never sends key material, fits a phone's width, and works from the keyboard.
 */
import { mkdir, mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Browser, Locator, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { keyId, maskKey } from "../../src/pool/identity.ts";
import { launchChromium } from "../support/browser.ts";
import { type ServeProcess, startServe } from "../support/serve-process.ts";

const TOKEN = "status-page-token-0123456789abcdef";
const KEY_A = "sk-test-statuspage-aaaaaaaaaaaa0001";
const KEY_B = "sk-test-statuspage-bbbbbbbbbbbb0002";
const POOL = "chat";

let dir: string;
let server: ServeProcess;
let browser: Browser;

/** A `keypool serve` directory: the app's token, and pool `chat` of KEY_A and KEY_B. */
async function serveDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "keypool-status-page-"));
  await mkdir(join(dir, "manifests"));
  await writeFile(join(dir, "tokens.yaml"), `tokens:\n  - {name: app, token: ${TOKEN}, verbs: [use]}\n`);
  await writeFile(
    join(dir, "manifests", "pool.yaml"),
    `apiVersion: v1
kind: Secret
metadata: {name: keys}
stringData: {a: ${KEY_A}, b: ${KEY_B}}
---
apiVersion: keypool.dev/v1alpha1
kind: KeyPool
metadata: {name: ${POOL}}
spec: {provider: openai, keys: [{secretRef: {name: keys}}]}
`,
  );
  return dir;
}

beforeAll(async () => {
  dir = await serveDir();
  server = await startServe(dir);
  browser = await launchChromium();
});

afterAll(async () => {
  await browser?.close();
  await server?.stop();
});

/** The row of key `key` in its pool's keys table. */
const keyRow = (page: Page, key: string): Locator =>
  page.locator(`#pool-default_${POOL}-keys tbody tr`, { hasText: keyId(key) });

/** "in 9 m 58 s" -> 598. */
function seconds(text: string | null): number {
  const parts = /in (?:(\d+) h )?(?:(\d+) m )?(\d+) s/.exec(text ?? "");
  if (!parts) return Number.NaN;
  return Number(parts[1] ?? 0) * 3600 + Number(parts[2] ?? 0) * 60 + Number(parts[3]);
}

/** Errors the page met (script errors, refused by its Content Security Policy, ...). */
const pageErrors = new WeakMap<Page, string[]>();

async function openPage(viewport = { width: 1280, height: 900 }): Promise<Page> {
  const page = await browser.newPage({ viewport });
  const errors: string[] = [];
  pageErrors.set(page, errors);
  page.on("pageerror", (err) => errors.push(err.message));
  page.on("console", (message) => {
    if (message.type() === "error") errors.push(message.text());
  });
  await page.goto(`${server.url}/ui`);
  await keyRow(page, KEY_B).waitFor();
  return page;
}

/** Reads an event stream for `ms` (a window to collect, not a duration under test). */
async function readStream(url: string, ms: number): Promise<string> {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), ms);
  let text = "";
  try {
    const res = await fetch(url, { signal: abort.signal });
    expect(res.headers.get("content-type")).toMatch(/^text\/event-stream/);
    const decoder = new TextDecoder();
    for await (const chunk of res.body as AsyncIterable<Uint8Array>)
      text += decoder.decode(chunk, { stream: true });
  } catch (err) {
    if ((err as Error).name !== "AbortError") throw err;
  } finally {
    clearTimeout(timer);
  }
  return text;
}

describe("the status page", () => {
  it("shows both keys masked and Healthy, then a reported rate limit live, counting down", async () => {
    const page = await openPage();
    for (const key of [KEY_A, KEY_B]) {
      const row = keyRow(page, key);
      await expect.poll(() => row.locator("td").nth(1).textContent()).toBe(maskKey(key));
      await expect.poll(() => row.locator(".state").textContent()).toBe("Healthy");
    }

    const reported = await fetch(`${server.url}/v1/pools/default/${POOL}/report`, {
      method: "POST",
      headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
      body: JSON.stringify({ keyId: keyId(KEY_A), outcome: "rateLimited", retryAfterSeconds: 600 }),
    });
    expect(await reported.json()).toEqual({ keyId: keyId(KEY_A), state: "RateLimited" });

    // No reload: the event stream brings the change.
    const row = keyRow(page, KEY_A);
    await expect.poll(() => row.locator(".state").textContent(), { timeout: 10_000 }).toBe("RateLimited");
    await expect.poll(() => keyRow(page, KEY_B).locator(".state").textContent()).toBe("Healthy");
    const countdown = row.locator("time.countdown");
    const first = seconds(await countdown.textContent());
    expect(first).toBeGreaterThan(0);
    expect(first).toBeLessThanOrEqual(600);
    await expect
      .poll(async () => seconds(await countdown.textContent()), { timeout: 10_000 })
      .toBeLessThan(first);
    // The transition is listed too.
    await expect
      .poll(() => page.locator("#transitions tbody tr", { hasText: keyId(KEY_A) }).textContent())
      .toMatch(/Healthy\s*→\s*RateLimited/);

    expect(pageErrors.get(page)).toEqual([]);
    const screenshot = join(dir, "status-page.png");
    await page.screenshot({ path: screenshot, fullPage: true });
    console.log(`status page screenshot: ${screenshot}`);
    await page.close();
  });

  it("sends no key material: not in the page, its scripts and styles, nor the event stream", async () => {
    const page = await browser.newPage();
    const loaded: string[] = [];
    page.on("request", (request) => {
      if (["script", "stylesheet"].includes(request.resourceType())) loaded.push(request.url());
    });
    await page.goto(`${server.url}/ui`);
    await keyRow(page, KEY_A).waitFor();
    expect(loaded.map((u) => new URL(u).pathname).sort()).toEqual([
      "/ui/assets/page.css",
      "/ui/assets/page.js",
      "/ui/vendor/uplot.min.css",
      "/ui/vendor/uplot.min.js",
    ]);
    // Served by the process itself: nothing from another origin.
    expect(loaded.every((u) => u.startsWith(server.url))).toBe(true);

    const bodies: Record<string, string> = {
      "/ui/": await (await fetch(`${server.url}/ui/`)).text(),
      "the rendered page": await page.content(),
    };
    for (const url of loaded) bodies[url] = await (await fetch(url)).text();
    const stream = await readStream(`${server.url}/ui/events`, 2_000);
    bodies["/ui/events"] = stream;
    expect(stream).toContain("event: snapshot");
    expect(stream).toContain(maskKey(KEY_A));
    for (const [name, body] of Object.entries(bodies)) {
      expect(body.length, name).toBeGreaterThan(0);
      expect(body.includes(KEY_A) || body.includes(KEY_B), `${name} holds a key`).toBe(false);
    }
    await page.close();
  });

  it("shows costs, budgets, forecasts and alerts when the pool view has them", async () => {
    // The view as it is, with the fields a pool view may carry (costs, budget, forecast, alerts).
    const stream = await readStream(`${server.url}/ui/events`, 500);
    const data = /event: snapshot\ndata: (.*)\n/.exec(stream)?.[1] as string;
    const snapshot = JSON.parse(data) as { at: string; pools: Array<Record<string, unknown>> };
    const soon = new Date(Date.parse(snapshot.at) + 3_600_000).toISOString();
    const pool = snapshot.pools[0] as { keyStatuses: Array<Record<string, unknown>> } & Record<
      string,
      unknown
    >;
    Object.assign(pool, {
      costTodayUSD: 1.25,
      costThisMonthUSD: 31.5,
      costByModel: [{ model: "gpt-4o-mini", costTodayUSD: 1.25, costThisMonthUSD: 31.5 }],
      budget: { daily: { limitUSD: 5, spentUSD: 1.25, resetsAt: soon } },
      forecast: { exhaustsAt: soon, limit: "poolDailyBudget", beforeReset: true },
      alerts: [
        {
          keyId: keyId(KEY_B),
          type: "BudgetWarning",
          message: "<b>80%</b> of the daily budget",
          at: snapshot.at,
        },
      ],
    });
    Object.assign(pool.keyStatuses[1] as object, { costTodayUSD: 0.75, reason: "over budget soon" });
    const page = await browser.newPage();
    await page.route("**/ui/events", (route) =>
      route.fulfill({
        status: 200,
        headers: { "content-type": "text/event-stream" },
        body: `retry: 60000\n\nevent: snapshot\ndata: ${JSON.stringify(snapshot)}\n\n`,
      }),
    );
    await page.goto(`${server.url}/ui`);
    const poolRow = page.locator("#pools tbody tr");
    await expect.poll(() => poolRow.textContent()).toContain("$1.25");
    expect(await poolRow.textContent()).toContain("$31.50");
    expect(await poolRow.textContent()).toContain("$1.25 of $5.00");
    expect(await poolRow.textContent()).toMatch(/poolDailyBudget runs out in (59 m|1 h)/);
    const details = page.locator(`#pool-default_${POOL}`);
    expect(await details.locator("meter").getAttribute("value")).toBe("1.25");
    expect(await details.locator("table", { hasText: "gpt-4o-mini" }).textContent()).toContain("$31.50");
    expect(await keyRow(page, KEY_B).textContent()).toContain("over budget soon");
    // Text from the server is shown as text, never as markup.
    expect(await page.locator("#alerts td", { hasText: "daily budget" }).textContent()).toBe(
      "<b>80%</b> of the daily budget",
    );
    await page.close();
  });

  it("fits a 375 px wide screen: the page does not scroll sideways, wide tables scroll in their box", async () => {
    const page = await openPage({ width: 375, height: 812 });
    // Evaluated in the page (as text: this project's TypeScript has no DOM types).
    const widths = await page.evaluate<{ page: number; viewport: number }>(
      "({page: document.documentElement.scrollWidth, viewport: document.documentElement.clientWidth})",
    );
    expect(widths.page).toBeLessThanOrEqual(widths.viewport);
    const keysBox = await page.evaluate<{ overflowX: string; scrolls: boolean }>(`(() => {
      const el = document.getElementById("pool-default_${POOL}-keys");
      return { overflowX: getComputedStyle(el).overflowX, scrolls: el.scrollWidth > el.clientWidth };
    })()`);
    expect(keysBox).toEqual({ overflowX: "auto", scrolls: true });
    await page.close();
  });

  it("works from the keyboard: a skip link first, and Tab reaches the pools table", async () => {
    const page = await openPage();
    await page.keyboard.press("Tab");
    expect(await page.evaluate("document.activeElement?.textContent")).toBe("Skip to content");
    let reached = false;
    for (let i = 0; i < 10 && !reached; i++) {
      await page.keyboard.press("Tab");
      reached = await page.evaluate<boolean>('Boolean(document.activeElement?.closest("#pools"))');
    }
    expect(reached).toBe(true);
    await page.close();
  });

  it("does not hold a graceful shutdown open: SIGTERM ends its event streams and the server exits 0", async () => {
    const own = await startServe(await serveDir());
    const res = await fetch(`${own.url}/ui/events`);
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    expect((await reader.read()).done).toBe(false);
    const exited = own.stop();
    for (;;) if ((await reader.read()).done) break; // the server ended the stream
    expect(await exited).toBe(0);
  });
});
