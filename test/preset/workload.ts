/**
 * One INSERT, one UPDATE and one DELETE on each of OpenTera's 18 event tables, in an order the
 * foreign keys accept, each statement its own transaction. Ids from 100 up: the sample data
 * (sql/opentera-sample-data.sql) holds ids 1 and 2, referenced here where a row needs a parent.
 */
const PRIMARY_KEYS: Readonly<Record<string, string>> = {
  t_sites: "id_site",
  t_users_groups: "id_user_group",
  t_users: "id_user",
  t_services: "id_service",
  t_server_settings: "id_server_settings",
  t_projects: "id_project",
  t_participants_groups: "id_participant_group",
  t_participants: "id_participant",
  t_devices: "id_device",
  t_sessions_types: "id_session_type",
  t_sessions_types_sites: "id_session_type_site",
  t_sessions_types_services: "id_session_type_service",
  t_sessions_types_projects: "id_session_type_project",
  t_tests_types: "id_test_type",
  t_sessions: "id_session",
  t_assets: "id_asset",
  t_tests: "id_test",
  t_tests_invitations: "id_test_invitation",
};

export const INSERTS: readonly [table: string, sql: string][] = [
  ["t_sites", "INSERT INTO t_sites (id_site, site_name, site_2fa_required) VALUES (100, 'Site W', false)"],
  ["t_users_groups", "INSERT INTO t_users_groups (id_user_group, user_group_name) VALUES (100, 'Group W')"],
  [
    "t_users",
    `INSERT INTO t_users (id_user, user_username, user_uuid, user_email, user_firstname, user_lastname, user_password, user_enabled,
       user_profile, user_superadmin, user_2fa_enabled, user_2fa_otp_enabled, user_2fa_email_enabled, user_2fa_otp_secret, user_force_password_change)
     VALUES (100, 'w_user', 'a0000000-0000-0000-0000-000000000100', 'w@example.org', 'Wanda', 'Work', 'workload-password-hash', true,
       '{}', false, true, true, false, 'WORKLOADOTPSECRET', false)`,
  ],
  [
    "t_services",
    `INSERT INTO t_services (id_service, service_uuid, service_name, service_key, service_hostname, service_port, service_endpoint,
       service_clientendpoint, service_endpoint_user, service_endpoint_participant, service_endpoint_device, service_enabled, service_system,
       service_editable_config, service_default_config, service_has_assets, service_has_tests)
     VALUES (100, 'a0000000-0000-0000-0000-0000000001f0', 'Service W', 'WorkloadService', 'localhost', 4100, '/w', '/w', '/w/user',
       '/w/participant', '/w/device', true, false, true, '{}', true, true)`,
  ],
  ["t_server_settings", "INSERT INTO t_server_settings (id_server_settings, server_settings_name, server_settings_value) VALUES (100, 'WorkloadKey', 'workload-server-secret')"],
  ["t_projects", "INSERT INTO t_projects (id_project, id_site, project_name, project_enabled, project_description) VALUES (100, 100, 'Project W', true, 'w')"],
  ["t_participants_groups", "INSERT INTO t_participants_groups (id_participant_group, id_project, participant_group_name) VALUES (100, 100, 'PG W')"],
  [
    "t_participants",
    `INSERT INTO t_participants (id_participant, participant_uuid, participant_name, participant_username, participant_email, participant_password,
       participant_token_enabled, participant_token, participant_enabled, participant_login_enabled, id_participant_group, id_project)
     VALUES (100, 'a0000000-0000-0000-0000-0000000002f0', 'Participant W', 'pw', 'pw@example.org', 'workload-participant-hash',
       true, 'workload-participant-token', true, true, 100, 100)`,
  ],
  [
    "t_devices",
    `INSERT INTO t_devices (id_device, device_uuid, device_name, id_device_type, id_device_subtype, device_token, device_certificate,
       device_enabled, device_onlineable, device_config, device_infos, device_notes)
     VALUES (100, 'a0000000-0000-0000-0000-0000000003f0', 'Device W', 1, NULL, 'workload-device-token', 'workload-device-certificate',
       true, true, '{}', '{}', 'notes')`,
  ],
  [
    "t_sessions_types",
    `INSERT INTO t_sessions_types (id_session_type, id_service, session_type_name, session_type_online, session_type_config,
       session_type_color, session_type_category) VALUES (100, 100, 'ST W', true, '{}', '#112233', 1)`,
  ],
  ["t_sessions_types_sites", "INSERT INTO t_sessions_types_sites (id_session_type_site, id_session_type, id_site) VALUES (100, 100, 100)"],
  ["t_sessions_types_services", "INSERT INTO t_sessions_types_services (id_session_type_service, id_session_type, id_service) VALUES (100, 100, 100)"],
  ["t_sessions_types_projects", "INSERT INTO t_sessions_types_projects (id_session_type_project, id_session_type, id_project) VALUES (100, 100, 100)"],
  [
    "t_tests_types",
    `INSERT INTO t_tests_types (id_test_type, id_service, test_type_uuid, test_type_name, test_type_description, test_type_key,
       test_type_has_json_format, test_type_has_web_format, test_type_has_web_editor)
     VALUES (100, 100, 'a0000000-0000-0000-0000-0000000004f0', 'TT W', 'd', 'TTW', true, false, false)`,
  ],
  [
    "t_sessions",
    `INSERT INTO t_sessions (id_session, session_uuid, id_session_type, id_creator_user, session_name, session_start_datetime,
       session_duration, session_status, session_comments, session_parameters)
     VALUES (100, 'a0000000-0000-0000-0000-0000000005f0', 100, 100, 'Session W', '2025-03-01 09:00:00+00', 60, 0, 'c', '{}')`,
  ],
  [
    "t_assets",
    `INSERT INTO t_assets (id_asset, id_session, id_participant, id_service, asset_name, asset_uuid, asset_service_uuid, asset_type, asset_datetime)
     VALUES (100, 100, 100, 100, 'w.mp4', 'a0000000-0000-0000-0000-0000000006f0', 'a0000000-0000-0000-0000-0000000001f0', 'video/mp4', '2025-03-01 09:10:00+00')`,
  ],
  [
    "t_tests",
    `INSERT INTO t_tests (id_test, id_test_type, id_session, id_participant, test_uuid, test_name, test_datetime, test_status, test_summary)
     VALUES (100, 100, 100, 100, 'a0000000-0000-0000-0000-0000000007f0', 'Test W', '2025-03-01 09:20:00+00', 1, '{}')`,
  ],
  [
    "t_tests_invitations",
    `INSERT INTO t_tests_invitations (id_test_invitation, id_test_type, id_participant, id_project, test_invitation_key, test_invitation_max_count,
       test_invitation_count, test_invitation_creation_date, test_invitation_expiration_date, test_invitation_message)
     VALUES (100, 100, 100, 100, 'WORKLOADINVITKEY', 2, 0, '2025-03-01 09:00:00+00', '2025-04-01 09:00:00+00', 'please')`,
  ],
];

/** One UPDATE per table (soft deletes where OpenTera has them, so deleted_at is set). */
export const UPDATES: readonly [table: string, sql: string][] = INSERTS.map(([table]) => {
  const pk = PRIMARY_KEYS[table]!;
  const set = table === "t_server_settings" ? "server_settings_value = 'workload-server-secret-2'" : "deleted_at = now()";
  return [table, `UPDATE ${table} SET ${set}, version_id = version_id + 1 WHERE ${pk} = 100`];
});

/** Children first. */
export const DELETES: readonly [table: string, sql: string][] = [...INSERTS].reverse().map(([table]) => [table, `DELETE FROM ${table} WHERE ${PRIMARY_KEYS[table]} = 100`]);

/** Values the workload writes into secret columns: none may reach the broker under the preset. */
export const SECRET_VALUES = [
  "workload-password-hash",
  "WORKLOADOTPSECRET",
  "workload-server-secret",
  "workload-participant-hash",
  "workload-participant-token",
  "workload-device-token",
  "workload-device-certificate",
  "WORKLOADINVITKEY",
];
