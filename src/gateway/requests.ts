import { parseLsn } from "../lsn.js";
import type { Client } from "./client.js";
import type { GatewayEvent } from "./events.js";
import { type ClientRequest, parseClientRequest, positionFrame } from "./frames.js";
import type { InitialRows } from "./initial-rows.js";
import type { ResumeFrom, Resumer } from "./resume.js";
import { type AccessRules, canSeeModel } from "./rules.js";

type Subscribe = Extract<ClientRequest, { type: "subscribe" }>;

/**
 * Answers a client's requests (text frames): unsubscribe, and subscribe: the model checks, the
 * resume or the current rows, then "subscribed" and the newest position.
 */
export class Requests {
  constructor(
    private readonly rules: AccessRules,
    /** Models this gateway serves (subscribed on the broker). */
    private readonly served: readonly string[],
    private readonly resumer: Resumer,
    private readonly initialRows: InitialRows,
    /** The newest event in the ring, for the position frame. */
    private readonly newestInRing: () => GatewayEvent | undefined,
  ) {}

  answer(client: Client, text: string): void {
    const request = parseClientRequest(text);
    if (typeof request === "string") return client.sendError(request);
    if (request.type === "unsubscribe") {
      for (const m of request.models) client.view.models.delete(m);
      client.sendText(JSON.stringify({ type: "unsubscribed", models: request.models }));
      return;
    }
    this.subscribe(client, request);
  }

  private subscribe(client: Client, request: Subscribe): void {
    const view = client.view;
    const denied = request.models.filter((m) => !canSeeModel(this.rules, view.claims, m));
    if (denied.length > 0) return client.sendError(`not allowed to see model ${denied.join(", ")}: the token's claims do not meet its rules`);
    const unknown = request.models.filter((m) => !this.served.includes(m));
    if (unknown.length > 0) return client.sendError(`model ${unknown.join(", ")} is not served by this gateway`);
    let resumed: number | null = null;
    if (request.after) {
      if (client.resumeAsked) return client.sendError("after: a connection resumes once, in its first subscribe with after; reconnect to resume again");
      client.resumeAsked = true;
      let from: ResumeFrom;
      try {
        from = {
          after: { lsn: parseLsn(request.after.lsn), seq: request.after.seq },
          afterText: `${request.after.lsn}/${request.after.seq}`,
          origin: request.origin ? { lsn: parseLsn(request.origin.lsn), seq: request.origin.seq } : undefined,
          session: request.session,
        };
      } catch (error) {
        return client.sendError(`after/origin lsn: ${(error as Error).message}`);
      }
      for (const m of request.models) view.models.add(m);
      const outcome = this.resumer.resume(client, request.models, from);
      if (typeof outcome === "number") resumed = outcome;
      else client.resync(outcome);
    } else {
      for (const m of request.models) view.models.add(m);
    }
    // Not after a resume: the client kept its rows and got what it missed.
    if (request.rows && resumed === null) this.initialRows.send(client, request.models);
    if (!client.open) return;
    client.sendText(JSON.stringify({ type: "subscribed", models: [...view.models], resumed }));
    const position = positionFrame(this.newestInRing());
    if (position && client.skipThrough === null) client.sendText(position);
  }
}
