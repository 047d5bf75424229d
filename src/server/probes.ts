/**
 * The probes port: /healthz (liveness: the watches are alive), /readyz (readiness: caches
 * synced) and /metrics (Prometheus). Separate from the dispenser port so a NetworkPolicy can
 * keep it private.
 */
import { createServer, type RequestListener, type Server } from "node:http";
import express from "express";
import type { Registry } from "prom-client";

export interface HealthSource {
  health(): { live: boolean; ready: boolean; details: Record<string, unknown> };
}

/** `extra`: more read-only routes on this port (the status page at /ui). */
export function createProbesApp(
  source: HealthSource,
  metrics: Registry,
  extra?: express.Router,
): express.Express {
  const app = express();
  app.disable("x-powered-by");
  if (extra) app.use(extra);
  app.get("/healthz", (_req, res) => {
    const h = source.health();
    res.status(h.live ? 200 : 503).json({ status: h.live ? "ok" : "stale", ...h.details });
  });
  app.get("/readyz", (_req, res) => {
    const h = source.health();
    res.status(h.ready ? 200 : 503).json({ status: h.ready ? "ok" : "not ready", ...h.details });
  });
  app.get("/metrics", async (_req, res) => {
    res.set("Content-Type", metrics.contentType).send(await metrics.metrics());
  });
  return app;
}

/** Starts an HTTP server for `handler` (an express app or a plain request listener). */
export function listen(handler: RequestListener, port: number, host: string): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = createServer(handler);
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve(server);
    });
  });
}
