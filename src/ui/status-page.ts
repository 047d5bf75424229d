/**
 * src/ui — the read-only status page at GET /ui: pools, keys (ids and masked values), states
 * with countdowns, usage charts, budgets, forecasts, recent transitions and alerts, pushed to
 * the browser over server-sent events (GET /ui/events). Every asset is served from the package
 * itself (src/ui/assets, uPlot from node_modules): the page works with no internet.
 * May import: src/pool, src/server (poolView).
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import express, { type NextFunction, type Request, type Response, Router } from "express";
import type { Clock } from "../pool/clock.ts";
import { type PoolRegistry, refKey } from "../pool/registry.ts";
import { poolView } from "../server/dispense.ts";
import { EventStreams, eventText } from "./event-streams.ts";
import { systemTimers, type Timers, totalsOf, UsageHistory } from "./history.ts";
import { TransitionLog } from "./transitions.ts";

/** Where the page lives on the port that serves it. */
export const UI_PATH = "/ui";
/** Most event streams open at once (each browser tab holds one). */
export const MAX_STREAMS = 32;
/** How often open streams are checked for a changed snapshot (ms). */
export const PUSH_INTERVAL_MS = 1_000;
/** A comment line keeps idle streams alive through proxies after this many quiet pushes. */
const HEARTBEAT_EVERY = 15;

const ASSETS_DIR = fileURLToPath(new URL("./assets/", import.meta.url));

/** Content Security Policy: the page's own scripts, styles and event stream, nothing else. */
const CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join("; ");

export interface StatusPageOptions {
  registry: PoolRegistry;
  clock: Clock;
  timers?: Timers;
  maxStreams?: number;
}

export interface StatusPage {
  /** Serves /ui, /ui/events and the page's assets; mount it on an express app as it is. */
  router: express.Router;
  /** Ends every event stream and stops the sampler and the pushes (before the server closes). */
  close(): void;
}

/** uPlot's browser build, from node_modules (a runtime dependency): never copied into the repo. */
function vendorFiles(): Record<string, string> {
  const require = createRequire(import.meta.url);
  try {
    return {
      "uplot.min.js": require.resolve("uplot/dist/uPlot.iife.min.js"),
      "uplot.min.css": require.resolve("uplot/dist/uPlot.min.css"),
    };
  } catch {
    return {};
  }
}

export function createStatusPage(options: StatusPageOptions): StatusPage {
  const { registry, clock } = options;
  const timers = options.timers ?? systemTimers;
  const transitions = new TransitionLog();
  const streams = new EventStreams(options.maxStreams ?? MAX_STREAMS);
  const history = new UsageHistory({
    clock,
    timers,
    totals: () => [...registry.values()].map((r) => [refKey(r.ref), totalsOf(poolView(r))] as const),
    // The series of every pool are built only when a page is open to receive them.
    onSample: () => {
      if (streams.size > 0) streams.broadcast(eventText("history", historyData()));
    },
  });
  const unsubscribe = registry.onTransition(transitions.record);

  const historyData = () => ({ at: new Date(clock.now()).toISOString(), pools: history.series() });
  const snapshotBody = () =>
    JSON.stringify({
      pools: [...registry.values()]
        .sort((a, b) => refKey(a.ref).localeCompare(refKey(b.ref)))
        .map((r) => poolView(r)),
      transitions: transitions.entries(),
    });
  /** The snapshot event: `at` (the server's time, for countdowns) joined to the body. */
  const snapshotEvent = (body: string) =>
    `event: snapshot\ndata: {"at":${JSON.stringify(new Date(clock.now()).toISOString())},${body.slice(1)}\n\n`;

  // The push loop runs while a stream is open: each turn sends the snapshot if it changed, and
  // a heartbeat comment after a quiet while.
  let pushing: unknown;
  let lastBody: string | undefined;
  let quiet = 0;
  const turn = () => {
    const body = snapshotBody();
    if (body !== lastBody) {
      lastBody = body;
      quiet = 0;
      streams.broadcast(snapshotEvent(body));
    } else if (++quiet >= HEARTBEAT_EVERY) {
      quiet = 0;
      streams.broadcast(": heartbeat\n\n");
    }
  };
  const stopPushing = () => {
    if (pushing !== undefined) timers.clearInterval(pushing);
    pushing = undefined;
    lastBody = undefined;
  };

  const events = (req: IncomingMessage, res: ServerResponse) => {
    const body = snapshotBody();
    const first = snapshotEvent(body) + eventText("history", historyData());
    if (!streams.open(req, res, first, stopPushing) || pushing !== undefined) return;
    lastBody = body;
    pushing = timers.setInterval(turn, PUSH_INTERVAL_MS);
  };

  history.start();
  const router = Router();
  const ui = Router();
  ui.use((_req, res, next) => {
    res.set({
      "content-security-policy": CSP,
      "x-content-type-options": "nosniff",
      "referrer-policy": "no-referrer",
      "x-frame-options": "DENY",
    });
    next();
  });
  ui.get("/", (req: Request, res: Response, next: NextFunction) => {
    // Relative asset URLs need the trailing slash: /ui -> /ui/.
    if (!req.originalUrl.split("?")[0]?.endsWith("/")) {
      res.redirect(301, `${req.baseUrl}/`);
      return;
    }
    res.sendFile("index.html", { root: ASSETS_DIR, headers: { "cache-control": "no-store" } }, (err) =>
      err ? next(err) : undefined,
    );
  });
  ui.get("/events", events);
  ui.use("/assets", express.static(ASSETS_DIR, { index: false, fallthrough: false, maxAge: "5m" }));
  const vendor = vendorFiles();
  ui.get("/vendor/:file", (req: Request, res: Response, next: NextFunction) => {
    const path = vendor[String(req.params.file)];
    if (!path) {
      next();
      return;
    }
    res.sendFile(path, { maxAge: "1h" }, (err) => (err ? next(err) : undefined));
  });
  ui.use((_req: Request, res: Response) => {
    res.status(404).type("text/plain").send("Not found\n");
  });
  ui.use(
    (err: { status?: number; statusCode?: number }, _req: Request, res: Response, _next: NextFunction) => {
      const status = err.status ?? err.statusCode ?? 500;
      res
        .status(status)
        .type("text/plain")
        .send(status === 404 ? "Not found (is src/ui/assets in this build?)\n" : "Error\n");
    },
  );
  router.use(UI_PATH, ui);

  return {
    router,
    close() {
      unsubscribe();
      history.stop();
      stopPushing();
      streams.close();
    },
  };
}

/**
 * `handler` with the status page in front of it for /ui paths only: the dispenser's hot path
 * (GET .../key) goes straight to it, as before.
 */
export function withStatusPage(
  handler: (req: IncomingMessage, res: ServerResponse) => void,
  page: Pick<StatusPage, "router">,
): (req: IncomingMessage, res: ServerResponse) => void {
  const app = express();
  app.disable("x-powered-by");
  app.set("etag", false);
  app.use(page.router);
  return (req, res) => {
    const url = req.url ?? "";
    if (url === UI_PATH || url.startsWith(`${UI_PATH}/`) || url.startsWith(`${UI_PATH}?`)) app(req, res);
    else handler(req, res);
  };
}
