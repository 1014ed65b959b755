/**
 * The live page: one model's rows as a table, the current rows first, then updated from the
 * tera-cdc gateway; a menu switches between the models the token may see. It decodes the
 * binary frames with the project's own message code (src/messages, bundled by esbuild when the
 * gateway starts). Protocol: docs/gateway.md.
 */
import { DatabaseEvent_EventType, decodeTeraMessage, unpackAny } from "../src/messages/index.js";

interface Position {
  lsn: string;
  seq: number;
}
interface EventMeta extends Position {
  type: "event";
  model: string;
  op: string;
  commitTime: string;
  table: string;
  leftView?: true;
  /** One of the current rows sent before the live changes (not a change itself). */
  initial?: true;
}
/** What the page shows, for tests and curious users: window.teraLive. */
interface LiveState {
  state: string;
  changes: number;
  position: Position | null;
  /** Each change once it is in the DOM and a frame was painted: key, op, position, commit time, time painted (ms since epoch). */
  applied: { key: string; op: string; lsn: string; seq: number; commitTime: string; at: number }[];
  resyncs: number;
  /** Current rows received on load (and after each model switch or resync). */
  initialRows: number;
  /** Set when the gateway refused the token: the page stops retrying. */
  refused: string | null;
}

const params = new URLSearchParams(location.hash.slice(1) || location.search.slice(1));
const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const banner = $("banner");
const live: LiveState = { state: "idle", changes: 0, position: null, applied: [], resyncs: 0, initialRows: 0, refused: null };
(window as unknown as { teraLive: LiveState }).teraLive = live;

let token = params.get("token") ?? "";
let model = params.get("model") ?? "";
let keyColumns: string[] = [];
const columns: string[] = [];
const rows = new Map<string, HTMLTableRowElement>();
let session: string | null = null;
let pendingMeta: EventMeta | null = null;
let lastCommit = 0;
let retryMs = 500;
let socket: WebSocket | null = null;
/** Position the current rows are valid at (the "rows" frame), taken as ours once subscribed. */
let rowsPosition: Position | null = null;
/**
 * Every row shown changed at or after this position (the "rows" frame's origin, or the first
 * change when the gateway had none): sent on resume, so that another gateway instance behind the
 * same address can resume the page from its position instead of resyncing it.
 */
let origin: Position | null = null;
let rowsOrigin: Position | null = null;
/** A subscribe was sent and its "subscribed" has not come: a resync now is followed by rows. */
let subscribing = false;
let opened = false;
/** Key columns of each model the token may see, from the last hello. */
let lastHelloModels: Record<string, string[]> = {};

function setState(state: string, text: string): void {
  live.state = state;
  banner.dataset.state = state;
  $("state").textContent = text;
}

function showPosition(): void {
  $("position").textContent = live.position ? `position ${live.position.lsn} #${live.position.seq}` : "position –";
  $("count").textContent = `${live.changes} change${live.changes === 1 ? "" : "s"}`;
}

let lastLagMs = 0;
function showLag(): void {
  if (lastCommit === 0) return;
  const ago = Math.round((Date.now() - lastCommit) / 1000);
  $("lag").textContent = `lag ${lastLagMs} ms` + (ago >= 2 ? ` · last change ${ago} s ago` : "");
}
setInterval(showLag, 1000);

function keyOf(object: Record<string, unknown>): string {
  return JSON.stringify(keyColumns.map((c) => object[c] ?? null));
}

function ensureColumns(object: Record<string, unknown>): void {
  let added = false;
  // Key columns first, then the others in the order they arrive.
  for (const name of [...keyColumns.filter((c) => c in object), ...Object.keys(object)]) {
    if (!columns.includes(name)) {
      columns.push(name);
      added = true;
    }
  }
  if (!added) return;
  const head = document.querySelector("#rows thead tr")!;
  head.replaceChildren(...columns.map((c) => Object.assign(document.createElement("th"), { textContent: c })));
  for (const row of rows.values()) {
    while (row.cells.length < columns.length) row.insertCell().dataset.col = columns[row.cells.length - 1];
  }
}

function text(value: unknown): string {
  if (value === null || value === undefined) return "";
  return typeof value === "object" ? JSON.stringify(value) : String(value);
}

function restartAnimation(element: HTMLElement, className: string): void {
  element.classList.remove(className);
  void element.offsetWidth; // so that the same class plays its animation again
  element.classList.add(className);
}

function upsert(object: Record<string, unknown>): string {
  ensureColumns(object);
  const key = keyOf(object);
  let row = rows.get(key);
  if (!row) {
    row = document.createElement("tr");
    row.dataset.key = key;
    for (const c of columns) {
      const cell = row.insertCell();
      cell.dataset.col = c;
      cell.textContent = text(object[c]);
    }
    (document.querySelector("#rows tbody") as HTMLTableSectionElement).append(row);
    rows.set(key, row);
    restartAnimation(row, "new");
    return key;
  }
  columns.forEach((c, i) => {
    if (!(c in object)) return; // unchanged TOAST columns are left out of updates
    const cell = row!.cells[i]!;
    const value = text(object[c]);
    if (cell.textContent !== value) {
      cell.textContent = value;
      restartAnimation(cell, "flash");
    }
  });
  return key;
}

function remove(object: Record<string, unknown>): string {
  const key = keyOf(object);
  rows.get(key)?.remove();
  rows.delete(key);
  return key;
}

function clearTable(): void {
  for (const row of rows.values()) row.remove();
  rows.clear();
}

/** A new model: no columns, no rows. */
function resetTable(): void {
  clearTable();
  columns.length = 0;
  document.querySelector("#rows thead tr")!.replaceChildren();
}

function subscribe(ws: WebSocket, resume: { after?: Position; session?: string; origin?: Position }): void {
  subscribing = true;
  ws.send(JSON.stringify({ type: "subscribe", models: [model], rows: true, ...resume }));
}

function updateEmpty(): void {
  $("empty").hidden = rows.size > 0;
}

function apply(meta: EventMeta, bytes: Uint8Array): void {
  const message = decodeTeraMessage(bytes);
  if (!message.ok || !message.message.message) throw new Error(`undecodable frame: ${message.ok ? "empty" : message.error.message}`);
  const outer = unpackAny(message.message.message);
  if (outer.type !== "TeraEvent") throw new Error(`frame holds ${outer.type}, expected TeraEvent`);
  for (const any of outer.message.events) {
    const inner = unpackAny(any);
    if (inner.type !== "DatabaseEvent" || inner.message.objectType !== model) continue;
    const object = JSON.parse(inner.message.objectValue) as Record<string, unknown>;
    if (meta.initial) {
      // A current row, valid at the "rows" frame's position: shown, not counted as a change.
      const key = upsert(object);
      live.initialRows++;
      updateEmpty();
      const record = { key, op: "initial", lsn: meta.lsn, seq: meta.seq, commitTime: meta.commitTime, at: 0 };
      requestAnimationFrame(() => {
        record.at = Date.now();
        live.applied.push(record);
      });
      continue;
    }
    let key = "";
    if (meta.op === "truncate") clearTable();
    else if (inner.message.type === DatabaseEvent_EventType.DB_DELETE) key = remove(object);
    else key = upsert(object);
    live.changes++;
    const position = { lsn: meta.lsn, seq: meta.seq };
    live.position = position;
    origin ??= position;
    lastCommit = Date.parse(meta.commitTime) || Date.now();
    lastLagMs = Math.max(0, Date.now() - lastCommit);
    showLag();
    updateEmpty();
    showPosition();
    const record = { key, op: meta.leftView ? "left-view" : meta.op, lsn: meta.lsn, seq: meta.seq, commitTime: meta.commitTime, at: 0 };
    // Recorded in the next animation frame: the change has then been laid out and painted.
    requestAnimationFrame(() => {
      record.at = Date.now();
      live.applied.push(record);
    });
  }
}

function connect(): void {
  setState(session ? "reconnecting" : "connecting", session ? "reconnecting…" : "connecting…");
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${scheme}://${location.host}/ws`, ["tera-cdc.v1", `bearer.${token}`]);
  socket = ws;
  ws.binaryType = "arraybuffer";
  opened = false;
  ws.onopen = () => (opened = true);
  ws.onmessage = (message) => {
    if (typeof message.data !== "string") {
      if (pendingMeta) apply(pendingMeta, new Uint8Array(message.data as ArrayBuffer));
      pendingMeta = null;
      return;
    }
    const frame = JSON.parse(message.data) as { type: string } & Record<string, unknown>;
    switch (frame.type) {
      case "hello": {
        const models = frame.models as Record<string, string[]>;
        if (!model) model = Object.keys(models)[0] ?? "";
        showModels(Object.keys(models));
        if (!models[model]) {
          $("notice").textContent = `This token may not see model "${model}" (it may see: ${Object.keys(models).join(", ") || "nothing"}).`;
          setState("error", "not allowed");
          ws.close();
          return;
        }
        keyColumns = models[model]!;
        lastHelloModels = models;
        const previous = session;
        session = frame.session as string;
        const after = previous && live.position ? { after: live.position, session: previous, ...(origin ? { origin } : {}) } : {};
        if (!live.position && frame.position) live.position = frame.position as Position;
        subscribe(ws, after);
        break;
      }
      case "rows":
        // The current rows follow; they replace whatever the page showed.
        clearTable();
        rowsPosition = frame.position as Position | null;
        rowsOrigin = (frame.origin as Position | null | undefined) ?? null;
        if (frame.complete === false) $("notice").textContent = `Current rows not available: ${frame.reason as string}.`;
        else if (typeof frame.partial === "string") $("notice").textContent = `Maybe not every current row: ${frame.partial}.`;
        else $("notice").textContent = "";
        break;
      case "subscribed":
        subscribing = false;
        if (rowsPosition) live.position = rowsPosition;
        // After rows the origin is theirs; after a resume the page keeps what it showed, and its origin.
        if (frame.resumed === null || frame.resumed === undefined) origin = rowsOrigin;
        rowsPosition = null;
        rowsOrigin = null;
        showPosition();
        updateEmpty();
        retryMs = 500;
        setState("live", frame.resumed === null || frame.resumed === undefined ? "live" : `live (resumed, ${frame.resumed} missed changes)`);
        break;
      case "event":
        pendingMeta = frame as unknown as EventMeta;
        break;
      case "position":
        live.position = { lsn: frame.lsn as string, seq: frame.seq as number };
        showPosition();
        break;
      case "resync":
        live.resyncs++;
        origin = null;
        clearTable();
        updateEmpty();
        $("notice").textContent = `Resynced: ${frame.reason as string}.`;
        // Outside a subscribe (whose rows follow anyway), ask for the current rows again.
        if (!subscribing) subscribe(ws, {});
        break;
      case "error":
        $("notice").textContent = `Gateway: ${frame.message as string}`;
        break;
    }
  };
  ws.onclose = (event) => {
    if (socket !== ws) return;
    if (event.code === 4001) {
      setState("expired", "token expired: reload with a new token");
      return;
    }
    if (live.state === "error") return;
    const retry = () => {
      setState("reconnecting", `disconnected (${event.code}${event.reason ? ` ${event.reason}` : ""}); retrying in ${retryMs / 1000} s`);
      setTimeout(connect, retryMs);
      retryMs = Math.min(retryMs * 2, 10_000);
    };
    // A refused upgrade reaches the page only as code 1006: the gateway says why at /auth.
    if (opened) return retry();
    void tokenRefusal().then((reason) => {
      if (reason === null) return retry();
      live.refused = reason;
      setState("error", `token refused: ${reason}`);
      $("notice").textContent = `token refused: ${reason}. Open the page with a valid token (#token=...).`;
    });
  };
}

/** Why the gateway refuses the token, or null when it accepts it (or cannot be asked now). */
async function tokenRefusal(): Promise<string | null> {
  try {
    const response = await fetch("/auth", { headers: { authorization: `Bearer ${token}` }, cache: "no-store" });
    if (response.status !== 401) return null;
    return ((await response.json()) as { reason?: string }).reason ?? "refused";
  } catch {
    return null;
  }
}

/** The models menu: every model the token may see; choosing one shows its current rows. */
function showModels(models: string[]): void {
  const select = $<HTMLSelectElement>("model-select");
  select.replaceChildren(...models.map((m) => Object.assign(document.createElement("option"), { value: m, textContent: m, selected: m === model })));
  select.hidden = models.length < 2;
  select.onchange = () => switchModel(select.value);
}

function switchModel(next: string): void {
  if (next === model || !socket || socket.readyState !== WebSocket.OPEN) return;
  socket.send(JSON.stringify({ type: "unsubscribe", models: [model] }));
  model = next;
  $("model").textContent = model;
  const hash = new URLSearchParams(location.hash.slice(1));
  hash.set("model", model);
  history.replaceState(null, "", `#${hash.toString()}`);
  keyColumns = (lastHelloModels[model] ?? []) as string[];
  resetTable();
  live.initialRows = 0;
  subscribe(socket, {});
}

$("model").textContent = model || "–";
if (!token) {
  const form = $<HTMLFormElement>("login");
  form.hidden = false;
  form.onsubmit = (event) => {
    event.preventDefault();
    token = ($("token-input") as HTMLInputElement).value.trim();
    model = ($("model-input") as HTMLInputElement).value.trim();
    $("model").textContent = model;
    form.hidden = true;
    connect();
  };
} else {
  connect();
}
