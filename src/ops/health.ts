import { createServer, type Server } from "node:http";

export interface HealthState {
  /** Streaming: the replication connection is open and the broker connected. */
  readonly healthy: boolean;
  /** One word for humans and probes: starting, standby, streaming, reconnecting, stopping. */
  readonly state: string;
  readonly figures: () => Record<string, number | string>;
}

/** `GET /healthz`: 200 while streaming, 503 otherwise; the body never holds a URL or secret. */
/**
 * Listens on `host` (127.0.0.1 unless --health-host says otherwise): the figures show positions
 * and states that are nobody else's business, so another host sees them only when asked for.
 */
export function startHealthServer(host: string, port: number, health: () => HealthState, metrics?: () => Promise<string>): Promise<Server> {
  const server = createServer((req, res) => {
    if (req.url === "/healthz" || req.url === "/health") {
      const h = health();
      res.writeHead(h.healthy ? 200 : 503, { "content-type": "application/json" });
      res.end(JSON.stringify({ status: h.state, ...h.figures() }));
    } else if (req.url === "/metrics" && metrics) {
      metrics().then(
        (text) => {
          res.writeHead(200, { "content-type": "text/plain; version=0.0.4" });
          res.end(text);
        },
        () => {
          res.writeHead(500);
          res.end();
        },
      );
    } else {
      res.writeHead(404);
      res.end();
    }
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => resolve(server));
  });
}
