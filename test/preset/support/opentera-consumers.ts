/**
 * OpenTera's two event-driven services, written from the rules in spec/opentera/consumers.md (not
 * from OpenTera's code): each decides from `json.loads(object_value)` and the presence of keys.
 * They record what they do as plain action strings, so two runs can be compared.
 */

/** One DatabaseEvent as a service receives it. */
export interface DbEvent {
  readonly model: string;
  /** 1 create, 2 update, 3 delete. */
  readonly type: number;
  readonly objectValue: string;
}

const CREATE = 1;
const UPDATE = 2;
const DELETE = 3;

/** Python's `obj[key]`: a missing key raises KeyError (the callback fails, nothing else happens). */
class KeyError extends Error {}

function item(obj: Record<string, unknown>, key: string): unknown {
  if (!(key in obj)) throw new KeyError(key);
  return obj[key];
}

/** Python truthiness of a JSON value. */
function truthy(value: unknown): boolean {
  if (value === null || value === undefined || value === false || value === 0 || value === "") return false;
  if (Array.isArray(value)) return value.length > 0;
  if (typeof value === "object") return Object.keys(value as object).length > 0;
  return true;
}

export class ServiceLauncherModule {
  /** The service registry in Redis: service_key → the stored service information. */
  readonly registry = new Map<string, string>();
  deviceTokenKey: unknown = undefined;
  readonly actions: string[] = [];

  handle(event: DbEvent): void {
    if (event.model !== "service" && event.model !== "server_settings") return;
    let obj: Record<string, unknown>;
    try {
      obj = JSON.parse(event.objectValue) as Record<string, unknown>;
    } catch {
      this.actions.push(`${event.model}: JSONDecodeError, skipped`);
      return;
    }
    try {
      if (event.model === "service") this.service(event.type, obj);
      else this.serverSettings(event.type, obj);
    } catch (error) {
      if (!(error instanceof KeyError)) throw error;
      this.actions.push(`${event.model}: KeyError ${error.message}`);
    }
  }

  private service(type: number, obj: Record<string, unknown>): void {
    if (type === CREATE || type === UPDATE) {
      if (!("id_service" in obj)) return;
      const key = String(item(obj, "service_key"));
      if (truthy(item(obj, "service_enabled")) && !("deleted_at" in obj)) {
        this.registry.set(key, JSON.stringify(obj));
        this.actions.push(`service registry: store ${key}`);
      } else {
        this.registry.delete(key);
        this.actions.push(`service registry: remove ${key}`);
      }
    } else if (type === DELETE && "service_key" in obj) {
      const key = String(obj.service_key);
      this.registry.delete(key);
      this.actions.push(`service registry: remove ${key}`);
    }
  }

  private serverSettings(type: number, obj: Record<string, unknown>): void {
    if (type !== CREATE && type !== UPDATE) return;
    if (item(obj, "server_settings_name") !== "TokenEncryptionKey") return;
    this.deviceTokenKey = item(obj, "server_settings_value");
    this.actions.push(`device token key: set ${String(this.deviceTokenKey)}`);
  }
}

const CLIENT_MODELS: Readonly<Record<string, string>> = { user: "user", participant: "participant", device: "device" };

export class UserManagerModule {
  readonly actions: string[] = [];

  handle(event: DbEvent): void {
    const model = CLIENT_MODELS[event.model];
    if (!model) return;
    let obj: Record<string, unknown>;
    try {
      obj = JSON.parse(event.objectValue) as Record<string, unknown>;
    } catch {
      this.actions.push(`${model}: JSONDecodeError, skipped`);
      return;
    }
    try {
      const uuid = String(item(obj, `${model}_uuid`));
      if (event.type === UPDATE) {
        if (item(obj, `${model}_enabled`) === false) this.actions.push(`disconnect ${model} ${uuid} (disabled)`);
        if ("deleted_at" in obj) this.actions.push(`disconnect ${model} ${uuid} (deleted)`);
      } else if (event.type === DELETE) {
        this.actions.push(`disconnect ${model} ${uuid} (deleted row)`);
      }
    } catch (error) {
      if (!(error instanceof KeyError)) throw error;
      this.actions.push(`${model}: KeyError ${error.message}`);
    }
  }
}

/** Runs both services over a stream of events; their actions per model, in order. */
export function actionsOf(events: readonly DbEvent[]): { serviceLauncher: string[]; userManager: string[]; registry: string[]; deviceTokenKey: unknown } {
  const launcher = new ServiceLauncherModule();
  const users = new UserManagerModule();
  for (const event of events) {
    launcher.handle(event);
    users.handle(event);
  }
  return { serviceLauncher: launcher.actions, userManager: users.actions, registry: [...launcher.registry.keys()].sort(), deviceTokenKey: launcher.deviceTokenKey };
}
