import type { ObjectShape, TableSettings } from "../model/plan.js";

/**
 * What OpenTera itself publishes for one model, written down from OpenTera's models
 * (`to_json(minimal=True)` plus its ignore lists, and `to_json_delete_event`).
 */
export interface OpenTeraModel {
  readonly model: string;
  /** `public.<table>` */
  readonly table: string;
  readonly primaryKey: string;
  /** Columns OpenTera puts in CREATE/UPDATE objects that the row itself holds. */
  readonly published: readonly string[];
  /** Columns of OpenTera's DELETE object beside the primary key (null: OpenTera sends no DELETE). */
  readonly deleteKeys: readonly string[] | null;
  /**
   * Columns OpenTera publishes although they are secrets; the preset withholds them unless a
   * table's own `columns` setting names them.
   */
  readonly secretsOpenTeraLeaks: readonly string[];
  /** Keys OpenTera computes from other tables; a row change cannot carry them. */
  readonly derivedKeys: Readonly<Record<string, string>>;
  /** Keys OpenTera computes from the row itself, which the preset writes too (`user_name`). */
  readonly rowDerivedKeys?: ObjectShape["joined"];
  /** Keys OpenTera removes while NULL or empty (`service_endpoint_*`); `deleted_at` is always one while NULL. */
  readonly omittedWhenEmpty?: readonly string[];
}

const SESSION_TYPE_ID_SERVICE = { session_type_id_service: "t_sessions_types.id_service of the row's id_session_type" };

/** The 18 tables whose changes OpenTera announces as DatabaseEvents. */
export const OPENTERA_MODELS: readonly OpenTeraModel[] = [
  {
    model: "asset",
    table: "t_assets",
    primaryKey: "id_asset",
    published: ["asset_datetime", "asset_expiration_datetime", "asset_name", "asset_service_uuid", "asset_type", "asset_uuid", "deleted_at", "id_asset", "id_device", "id_participant", "id_service", "id_session", "id_user"],
    deleteKeys: ["asset_uuid"],
    secretsOpenTeraLeaks: [],
    derivedKeys: {},
  },
  {
    model: "device",
    table: "t_devices",
    primaryKey: "id_device",
    published: ["deleted_at", "device_enabled", "device_name", "device_uuid", "id_device", "id_device_subtype", "id_device_type"],
    deleteKeys: ["device_uuid"],
    secretsOpenTeraLeaks: [],
    derivedKeys: {},
  },
  {
    model: "participant",
    table: "t_participants",
    primaryKey: "id_participant",
    published: ["deleted_at", "id_participant", "id_participant_group", "id_project", "participant_email", "participant_enabled", "participant_name", "participant_token_enabled", "participant_uuid"],
    deleteKeys: ["participant_uuid"],
    secretsOpenTeraLeaks: [],
    derivedKeys: {},
  },
  {
    model: "participant_group",
    table: "t_participants_groups",
    primaryKey: "id_participant_group",
    published: ["deleted_at", "id_participant_group", "id_project", "participant_group_name"],
    deleteKeys: [],
    secretsOpenTeraLeaks: [],
    derivedKeys: {},
  },
  {
    model: "project",
    table: "t_projects",
    primaryKey: "id_project",
    published: ["deleted_at", "id_project", "id_site", "project_description", "project_enabled", "project_name"],
    deleteKeys: [],
    secretsOpenTeraLeaks: [],
    derivedKeys: {},
  },
  {
    model: "session",
    table: "t_sessions",
    primaryKey: "id_session",
    published: ["deleted_at", "id_creator_device", "id_creator_participant", "id_creator_service", "id_creator_user", "id_session", "id_session_type", "session_duration", "session_name", "session_start_datetime", "session_status", "session_uuid"],
    deleteKeys: ["session_uuid"],
    secretsOpenTeraLeaks: [],
    derivedKeys: {
      session_creator_user: 't_users.user_firstname + " " + user_lastname of id_creator_user',
      session_creator_user_uuid: "t_users.user_uuid of id_creator_user",
      session_creator_device: "t_devices.device_name of id_creator_device",
      session_creator_device_uuid: "t_devices.device_uuid of id_creator_device",
      session_creator_participant: "t_participants.participant_name of id_creator_participant",
      session_creator_participant_uuid: "t_participants.participant_uuid of id_creator_participant",
      session_creator_service: "t_services.service_name of id_creator_service",
      session_creator_service_uuid: "t_services.service_uuid of id_creator_service",
      session_assets_count: "count of the session's t_assets rows not soft-deleted",
      session_tests_count: "count of the session's t_tests rows not soft-deleted",
    },
  },
  {
    model: "session_type",
    table: "t_sessions_types",
    primaryKey: "id_session_type",
    published: ["deleted_at", "id_service", "id_session_type", "session_type_category", "session_type_color", "session_type_name"],
    deleteKeys: ["id_service"],
    secretsOpenTeraLeaks: [],
    derivedKeys: {},
  },
  {
    model: "site",
    table: "t_sites",
    primaryKey: "id_site",
    published: ["deleted_at", "id_site", "site_2fa_required", "site_name"],
    deleteKeys: [],
    secretsOpenTeraLeaks: [],
    derivedKeys: {},
  },
  {
    model: "user",
    table: "t_users",
    primaryKey: "id_user",
    published: ["deleted_at", "id_user", "user_2fa_enabled", "user_enabled", "user_firstname", "user_lastname", "user_superadmin", "user_uuid"],
    deleteKeys: ["user_uuid"],
    secretsOpenTeraLeaks: [],
    derivedKeys: {},
    rowDerivedKeys: [{ key: "user_name", columns: ["user_firstname", "user_lastname"], separator: " " }],
  },
  {
    model: "user_group",
    table: "t_users_groups",
    primaryKey: "id_user_group",
    published: ["deleted_at", "id_user_group", "user_group_name"],
    deleteKeys: [],
    secretsOpenTeraLeaks: [],
    derivedKeys: {},
  },
  {
    model: "test_type",
    table: "t_tests_types",
    primaryKey: "id_test_type",
    published: ["deleted_at", "id_service", "id_test_type", "test_type_description", "test_type_has_json_format", "test_type_has_web_editor", "test_type_has_web_format", "test_type_key", "test_type_name", "test_type_uuid"],
    deleteKeys: ["test_type_uuid"],
    secretsOpenTeraLeaks: [],
    derivedKeys: {},
  },
  {
    model: "test",
    table: "t_tests",
    primaryKey: "id_test",
    published: ["deleted_at", "id_device", "id_participant", "id_service", "id_session", "id_test", "id_test_type", "id_user", "test_datetime", "test_name", "test_status", "test_summary", "test_uuid"],
    deleteKeys: ["test_uuid"],
    secretsOpenTeraLeaks: [],
    derivedKeys: {},
  },
  {
    model: "test_invitation",
    table: "t_tests_invitations",
    primaryKey: "id_test_invitation",
    published: ["deleted_at", "id_device", "id_participant", "id_project", "id_session", "id_test_invitation", "id_test_type", "id_user", "test_invitation_count", "test_invitation_creation_date", "test_invitation_expiration_date", "test_invitation_max_count", "test_invitation_message"],
    deleteKeys: ["test_invitation_key"],
    // A bearer key: whoever has it can answer the test.
    secretsOpenTeraLeaks: ["test_invitation_key"],
    derivedKeys: {},
  },
  {
    model: "service",
    table: "t_services",
    primaryKey: "id_service",
    published: ["deleted_at", "id_service", "service_clientendpoint", "service_default_config", "service_editable_config", "service_enabled", "service_endpoint", "service_endpoint_device", "service_endpoint_participant", "service_endpoint_user", "service_has_assets", "service_has_tests", "service_hostname", "service_key", "service_name", "service_port", "service_system", "service_uuid"],
    deleteKeys: ["service_key"],
    secretsOpenTeraLeaks: [],
    // TeraService.to_json() deletes them when falsy (None or "").
    omittedWhenEmpty: ["service_endpoint_user", "service_endpoint_participant", "service_endpoint_device"],
    derivedKeys: {
      service_roles: "the service's t_services_roles rows (with project, site and service names)",
      service_projects: "the service's t_services_projects rows",
    },
  },
  {
    model: "session_type_site",
    table: "t_sessions_types_sites",
    primaryKey: "id_session_type_site",
    published: ["deleted_at", "id_session_type", "id_session_type_site", "id_site"],
    deleteKeys: [],
    secretsOpenTeraLeaks: [],
    derivedKeys: SESSION_TYPE_ID_SERVICE,
  },
  {
    model: "session_type_service",
    table: "t_sessions_types_services",
    primaryKey: "id_session_type_service",
    published: ["deleted_at", "id_service", "id_session_type", "id_session_type_service"],
    deleteKeys: [],
    secretsOpenTeraLeaks: [],
    derivedKeys: SESSION_TYPE_ID_SERVICE,
  },
  {
    model: "session_type_project",
    table: "t_sessions_types_projects",
    primaryKey: "id_session_type_project",
    published: ["deleted_at", "id_project", "id_session_type", "id_session_type_project"],
    deleteKeys: [],
    secretsOpenTeraLeaks: [],
    derivedKeys: SESSION_TYPE_ID_SERVICE,
  },
  {
    model: "server_settings",
    table: "t_server_settings",
    primaryKey: "id_server_settings",
    published: ["id_server_settings", "server_settings_name"],
    deleteKeys: null,
    // Holds TokenEncryptionKey, ParticipantTokenEncryptionKey and DeviceRegisterKey: the keys that
    // sign every OpenTera token.
    secretsOpenTeraLeaks: ["server_settings_value"],
    derivedKeys: {},
  },
];

/**
 * The preset as configuration: the 18 tables and, per table, its model name, the columns
 * OpenTera publishes (its own secrets left out) and its delete keys. Secrets OpenTera leaks
 * stay in the delete keys so that a table whose `columns` setting names them publishes them on
 * DELETE too, as OpenTera does.
 */
export function openTeraPreset(): { tables: string[]; tableSettings: Record<string, TableSettings> } {
  const tableSettings: Record<string, TableSettings> = {};
  for (const m of OPENTERA_MODELS) {
    tableSettings[`public.${m.table}`] = {
      model: m.model,
      columns: [...m.published],
      deleteKeys: [m.primaryKey, ...(m.deleteKeys ?? [])],
      objectShape: openTeraObjectShape(m),
    };
  }
  return { tables: OPENTERA_MODELS.map((m) => `public.${m.table}`), tableSettings };
}

/**
 * OpenTera's object text: `json.dumps` of its dict (Python's separators, ASCII only),
 * `deleted_at` only while set, the service endpoints only while not empty, `user_name` appended.
 */
export function openTeraObjectShape(m: OpenTeraModel): ObjectShape {
  return {
    json: "python",
    deleteKeysAsListed: true,
    omitWhenNull: m.published.includes("deleted_at") ? ["deleted_at"] : [],
    omitWhenEmpty: m.omittedWhenEmpty ?? [],
    joined: m.rowDerivedKeys ?? [],
  };
}
