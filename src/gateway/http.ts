import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { Duplex } from "node:stream";
import { type WebSocket, WebSocketServer } from "ws";
import { ConfigError } from "../errors.js";
import type { Logger } from "../ops/log.js";
import { SUBPROTOCOL, type TokenVerifier, tokenOfRequest, tokenRefusal } from "./auth.js";
import { type AccessRules, type Claims, visibleModels } from "./rules.js";
import type { GatewayStats } from "./stats.js";
import type { WebAssets } from "./web.js";

export interface HttpSettings {
  readonly host: string;
  /** 0 picks a free port (what `listen` returns). */
  readonly port: number;
  readonly verifier: TokenVerifier;
  readonly rules: AccessRules;
  /** Models this gateway serves. */
  readonly models: readonly string[];
  readonly logger: Logger;
}

export interface HttpHandlers {
  /** GET /healthz: 200 when healthy, else 503, with the body as JSON. */
  health(): { readonly healthy: boolean; readonly body: object };
  /** A WebSocket at /ws whose token verified. */
  connected(socket: WebSocket, claims: Claims, address: string): void;
}

/**
 * The gateway's HTTP side: the WebSocket upgrade at /ws (a token verified first, a refusal as an
 * HTTP 401 with its reason), GET /healthz, GET /auth (why a token is refused, for the page), and
 * the live page's files.
 */
export class GatewayHttp {
  private readonly server: Server;
  private readonly wss: WebSocketServer;

  constructor(
    private readonly settings: HttpSettings,
    private readonly web: WebAssets | undefined,
    private readonly handlers: HttpHandlers,
    private readonly stats: Pick<GatewayStats, "refusedTokens">,
  ) {
    this.wss = new WebSocketServer({
      noServer: true,
      // Browsers send the token as a second subprotocol; only ours is ever echoed back.
      handleProtocols: (protocols) => (protocols.has(SUBPROTOCOL) ? SUBPROTOCOL : false),
      maxPayload: 64 * 1024,
    });
    this.server = createServer((req, res) => this.serve(req, res));
    this.server.on("upgrade", (req, socket, head) => void this.upgrade(req, socket, head));
  }

  /** Listens; returns the port. A port in use or an address not of this host is a setting error (exit 2). */
  async listen(): Promise<number> {
    const { host, port } = this.settings;
    await new Promise<void>((resolve, reject) => {
      this.server.once("error", (error: Error & { code?: string }) => {
        // The user's to fix (another port, or stop what holds it): exit 2, like any bad setting.
        if (error.code === "EADDRINUSE") reject(new ConfigError(`setting port: ${host}:${port} is already in use: choose another --port or stop what listens there`));
        else if (error.code === "EADDRNOTAVAIL" || error.code === "EACCES") reject(new ConfigError(`setting host/port: cannot listen on ${host}:${port} (${error.code}): give an address of this host and a port you may use`));
        else reject(error);
      });
      this.server.listen(port, host, () => resolve());
    });
    const address = this.server.address();
    return typeof address === "object" && address ? address.port : port;
  }

  async close(): Promise<void> {
    this.wss.close();
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    // Browsers keep idle HTTP connections open; close() alone would wait for them.
    this.server.closeAllConnections();
    await closed;
  }

  private async upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const address = `${req.socket.remoteAddress}:${req.socket.remotePort}`;
    const refuse = (status: number, reason: string) => {
      this.stats.refusedTokens++;
      this.settings.logger.info({ client: address }, `connection refused: ${reason}`);
      socket.end(`HTTP/1.1 ${status} ${status === 401 ? "Unauthorized" : "Not Found"}\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n${reason}\n`);
    };
    if (new URL(req.url ?? "/", "http://gateway").pathname !== "/ws") return refuse(404, "WebSocket endpoint is /ws");
    const token = tokenOfRequest(req.url, req.headers["sec-websocket-protocol"]);
    if (!token) return refuse(401, `no token: pass ?token=<jwt> or the subprotocols ${SUBPROTOCOL}, bearer.<jwt>`);
    let claims: Claims;
    try {
      claims = await this.settings.verifier.verify(token);
    } catch (error) {
      return refuse(401, tokenRefusal(error));
    }
    this.wss.handleUpgrade(req, socket, head, (ws) => this.handlers.connected(ws, claims, address));
  }

  private serve(req: IncomingMessage, res: ServerResponse): void {
    const path = new URL(req.url ?? "/", "http://gateway").pathname;
    if (path === "/healthz") {
      const { healthy, body } = this.handlers.health();
      res.writeHead(healthy ? 200 : 503, { "content-type": "application/json" });
      res.end(JSON.stringify(body));
      return;
    }
    if (path === "/auth") {
      // The page asks here why a token is refused: a browser cannot read a refused upgrade's reason.
      void this.answerAuth(req, res);
      return;
    }
    const asset = this.web?.get(path === "/" ? "/index.html" : path);
    if (req.method === "GET" && asset) {
      res.writeHead(200, { "content-type": asset.contentType, "cache-control": "no-cache" });
      res.end(asset.body);
      return;
    }
    res.writeHead(404, { "content-type": "text/plain" });
    res.end("not found: the live page is at /, the WebSocket at /ws, health at /healthz\n");
  }

  /** GET /auth with `Authorization: Bearer <jwt>`: 200 {"ok":true,"models":[...]} or 401 {"ok":false,"reason":"..."}. */
  private async answerAuth(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const header = req.headers.authorization ?? "";
    const token = /^Bearer (\S+)$/.exec(header)?.[1];
    const reply = (status: number, body: object) => {
      res.writeHead(status, { "content-type": "application/json", "cache-control": "no-store" });
      res.end(JSON.stringify(body));
    };
    if (!token) return reply(401, { ok: false, reason: "no token: send Authorization: Bearer <jwt>" });
    try {
      const claims = await this.settings.verifier.verify(token);
      reply(200, { ok: true, models: visibleModels(this.settings.rules, claims).filter((m) => this.settings.models.includes(m)) });
    } catch (error) {
      reply(401, { ok: false, reason: tokenRefusal(error) });
    }
  }
}
