/**
 * The probes port: /healthz (liveness: the watches are alive), /readyz (readiness: caches
 * synced) and /metrics (Prometheus). Separate from the dispenser port so a NetworkPolicy can
 * keep it private.
 */
import type { Server } from "node:http";
import express from "express";
import type { Registry } from "prom-client";

export interface HealthSource {
  health(): { live: boolean; ready: boolean; details: Record<string, unknown> };
}

export function createProbesApp(source: HealthSource, metrics: Registry): express.Express {
  const app = express();
  app.disable("x-powered-by");
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

export function listen(app: express.Express, port: number, host: string): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = app.listen(port, host, (err?: Error) => (err ? reject(err) : resolve(server)));
  });
}
