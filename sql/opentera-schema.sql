-- The sample OpenTera schema that `npm start` (the embedded default) loads into its database
-- `opentera`, and that docker-compose.yml mounts into its PostgreSQL.
--
-- It has the tables, columns (in order), types, keys and constraint names of a database created
-- by OpenTera's own metadata.create_all() (introlab/opentera, teraserver/python/opentera/db/models):
-- the 18 tables whose changes OpenTera announces as DatabaseEvents, plus the support tables they
-- reference (t_devices_types, t_devices_subtypes, t_services_projects, t_services_roles).
--
-- Two things differ, both for people typing INSERTs by hand in psql (OpenTera's ORM fills these
-- columns itself, so its own writes behave the same):
--   * primary keys default to nextval() of their sequence, *_uuid columns to gen_random_uuid();
--   * version_id (the ORM's optimistic-lock counter, epoch milliseconds) defaults to now.
-- And, at the end, REPLICA IDENTITY FULL on the 18 tables: see sql/prepare-database.sql.

-- t_devices_types: support table: FK target of t_devices.id_device_type / t_devices_subtypes
CREATE SEQUENCE id_device_type_sequence;
CREATE TABLE t_devices_types (
    version_id bigint NOT NULL DEFAULT (extract(epoch FROM clock_timestamp()) * 1000)::bigint,
    id_device_type integer NOT NULL DEFAULT nextval('id_device_type_sequence'),
    device_type_name varchar NOT NULL,
    device_type_key varchar NOT NULL,
    PRIMARY KEY (id_device_type),
    UNIQUE (device_type_key)
);

-- t_server_settings: model name "server_settings" (emits events)
CREATE SEQUENCE id_server_settings_sequence;
CREATE TABLE t_server_settings (
    version_id bigint NOT NULL DEFAULT (extract(epoch FROM clock_timestamp()) * 1000)::bigint,
    id_server_settings integer NOT NULL DEFAULT nextval('id_server_settings_sequence'),
    server_settings_name varchar NOT NULL,
    server_settings_value varchar NOT NULL,
    PRIMARY KEY (id_server_settings),
    UNIQUE (server_settings_name)
);

-- t_services: model name "service" (emits events)
CREATE SEQUENCE id_service_sequence;
CREATE TABLE t_services (
    version_id bigint NOT NULL DEFAULT (extract(epoch FROM clock_timestamp()) * 1000)::bigint,
    deleted_at timestamp with time zone,
    id_service integer NOT NULL DEFAULT nextval('id_service_sequence'),
    service_uuid varchar(36) NOT NULL DEFAULT gen_random_uuid(),
    service_name varchar NOT NULL,
    service_key varchar NOT NULL,
    service_hostname varchar NOT NULL,
    service_port integer NOT NULL,
    service_endpoint varchar NOT NULL,
    service_clientendpoint varchar NOT NULL,
    service_endpoint_user varchar,
    service_endpoint_participant varchar,
    service_endpoint_device varchar,
    service_enabled boolean NOT NULL,
    service_system boolean NOT NULL,
    service_editable_config boolean NOT NULL,
    service_default_config varchar,
    service_has_assets boolean NOT NULL,
    service_has_tests boolean NOT NULL,
    PRIMARY KEY (id_service),
    UNIQUE (service_uuid),
    UNIQUE (service_key)
);

-- t_sites: model name "site" (emits events)
CREATE SEQUENCE id_site_sequence;
CREATE TABLE t_sites (
    version_id bigint NOT NULL DEFAULT (extract(epoch FROM clock_timestamp()) * 1000)::bigint,
    deleted_at timestamp with time zone,
    id_site integer NOT NULL DEFAULT nextval('id_site_sequence'),
    site_name varchar NOT NULL,
    site_2fa_required boolean NOT NULL,
    PRIMARY KEY (id_site)
);

-- t_users: model name "user" (emits events)
CREATE SEQUENCE id_user_sequence;
CREATE TABLE t_users (
    version_id bigint NOT NULL DEFAULT (extract(epoch FROM clock_timestamp()) * 1000)::bigint,
    deleted_at timestamp with time zone,
    id_user integer NOT NULL DEFAULT nextval('id_user_sequence'),
    user_username varchar(50) NOT NULL,
    user_uuid varchar(36) NOT NULL DEFAULT gen_random_uuid(),
    user_email varchar,
    user_firstname varchar NOT NULL,
    user_lastname varchar NOT NULL,
    user_password varchar NOT NULL,
    user_enabled boolean NOT NULL,
    user_profile varchar NOT NULL,
    user_notes varchar,
    user_lastonline timestamp with time zone,
    user_superadmin boolean NOT NULL,
    user_2fa_enabled boolean NOT NULL,
    user_2fa_otp_enabled boolean NOT NULL,
    user_2fa_email_enabled boolean NOT NULL,
    user_2fa_otp_secret varchar,
    user_force_password_change boolean NOT NULL,
    PRIMARY KEY (id_user),
    UNIQUE (user_username),
    UNIQUE (user_uuid)
);

-- t_users_groups: model name "user_group" (emits events)
CREATE SEQUENCE id_usergroup_sequence;
CREATE TABLE t_users_groups (
    version_id bigint NOT NULL DEFAULT (extract(epoch FROM clock_timestamp()) * 1000)::bigint,
    deleted_at timestamp with time zone,
    id_user_group integer NOT NULL DEFAULT nextval('id_usergroup_sequence'),
    user_group_name varchar NOT NULL,
    PRIMARY KEY (id_user_group)
);

-- t_devices_subtypes: support table: FK target of t_devices.id_device_subtype
CREATE SEQUENCE id_device_subtype_sequence;
CREATE TABLE t_devices_subtypes (
    version_id bigint NOT NULL DEFAULT (extract(epoch FROM clock_timestamp()) * 1000)::bigint,
    id_device_subtype integer NOT NULL DEFAULT nextval('id_device_subtype_sequence'),
    id_device_type integer NOT NULL,
    device_subtype_name varchar NOT NULL,
    PRIMARY KEY (id_device_subtype),
    FOREIGN KEY (id_device_type) REFERENCES t_devices_types (id_device_type) ON DELETE CASCADE
);

-- t_projects: model name "project" (emits events)
CREATE SEQUENCE id_project_sequence;
CREATE TABLE t_projects (
    version_id bigint NOT NULL DEFAULT (extract(epoch FROM clock_timestamp()) * 1000)::bigint,
    deleted_at timestamp with time zone,
    id_project integer NOT NULL DEFAULT nextval('id_project_sequence'),
    id_site integer NOT NULL,
    project_name varchar NOT NULL,
    project_enabled boolean NOT NULL,
    project_description varchar,
    PRIMARY KEY (id_project),
    FOREIGN KEY (id_site) REFERENCES t_sites (id_site) ON DELETE CASCADE
);

-- t_sessions_types: model name "session_type" (emits events)
CREATE SEQUENCE id_session_type_sequence;
CREATE TABLE t_sessions_types (
    version_id bigint NOT NULL DEFAULT (extract(epoch FROM clock_timestamp()) * 1000)::bigint,
    deleted_at timestamp with time zone,
    id_session_type integer NOT NULL DEFAULT nextval('id_session_type_sequence'),
    id_service integer,
    session_type_name varchar NOT NULL,
    session_type_online boolean NOT NULL,
    session_type_config varchar,
    session_type_color varchar(7) NOT NULL,
    session_type_category integer NOT NULL,
    PRIMARY KEY (id_session_type),
    FOREIGN KEY (id_service) REFERENCES t_services (id_service) ON DELETE CASCADE
);

-- t_tests_types: model name "test_type" (emits events)
CREATE SEQUENCE id_test_type_sequence;
CREATE TABLE t_tests_types (
    version_id bigint NOT NULL DEFAULT (extract(epoch FROM clock_timestamp()) * 1000)::bigint,
    deleted_at timestamp with time zone,
    id_test_type integer NOT NULL DEFAULT nextval('id_test_type_sequence'),
    id_service integer NOT NULL,
    test_type_uuid varchar(36) NOT NULL DEFAULT gen_random_uuid(),
    test_type_name varchar NOT NULL,
    test_type_description varchar,
    test_type_key varchar,
    test_type_has_json_format boolean NOT NULL,
    test_type_has_web_format boolean NOT NULL,
    test_type_has_web_editor boolean NOT NULL,
    PRIMARY KEY (id_test_type),
    UNIQUE (test_type_uuid),
    UNIQUE (test_type_key),
    FOREIGN KEY (id_service) REFERENCES t_services (id_service) ON DELETE CASCADE
);

-- t_devices: model name "device" (emits events)
CREATE SEQUENCE id_device_sequence;
CREATE TABLE t_devices (
    version_id bigint NOT NULL DEFAULT (extract(epoch FROM clock_timestamp()) * 1000)::bigint,
    deleted_at timestamp with time zone,
    id_device integer NOT NULL DEFAULT nextval('id_device_sequence'),
    device_uuid varchar(36) NOT NULL DEFAULT gen_random_uuid(),
    device_name varchar NOT NULL,
    id_device_type integer NOT NULL,
    id_device_subtype integer,
    device_token varchar,
    device_certificate varchar,
    device_enabled boolean NOT NULL,
    device_onlineable boolean NOT NULL,
    device_config varchar,
    device_infos varchar,
    device_notes varchar,
    device_lastonline timestamp with time zone,
    PRIMARY KEY (id_device),
    UNIQUE (device_uuid),
    UNIQUE (device_token),
    FOREIGN KEY (id_device_type) REFERENCES t_devices_types (id_device_type) ON DELETE CASCADE,
    FOREIGN KEY (id_device_subtype) REFERENCES t_devices_subtypes (id_device_subtype) ON DELETE SET NULL
);

-- t_participants_groups: model name "participant_group" (emits events)
CREATE SEQUENCE id_participantgroup_sequence;
CREATE TABLE t_participants_groups (
    version_id bigint NOT NULL DEFAULT (extract(epoch FROM clock_timestamp()) * 1000)::bigint,
    deleted_at timestamp with time zone,
    id_participant_group integer NOT NULL DEFAULT nextval('id_participantgroup_sequence'),
    id_project integer NOT NULL,
    participant_group_name varchar NOT NULL,
    PRIMARY KEY (id_participant_group),
    FOREIGN KEY (id_project) REFERENCES t_projects (id_project) ON DELETE CASCADE
);

-- t_services_projects: support table: read to build the service event payload (service_projects list)
CREATE SEQUENCE id_service_project_sequence;
CREATE TABLE t_services_projects (
    version_id bigint NOT NULL DEFAULT (extract(epoch FROM clock_timestamp()) * 1000)::bigint,
    deleted_at timestamp with time zone,
    id_service_project integer NOT NULL DEFAULT nextval('id_service_project_sequence'),
    id_service integer NOT NULL,
    id_project integer NOT NULL,
    PRIMARY KEY (id_service_project),
    FOREIGN KEY (id_service) REFERENCES t_services (id_service) ON DELETE CASCADE,
    FOREIGN KEY (id_project) REFERENCES t_projects (id_project) ON DELETE CASCADE
);

-- t_services_roles: support table: read to build the service event payload (service_roles list)
CREATE SEQUENCE id_service_role_sequence;
CREATE TABLE t_services_roles (
    version_id bigint NOT NULL DEFAULT (extract(epoch FROM clock_timestamp()) * 1000)::bigint,
    deleted_at timestamp with time zone,
    id_service_role integer NOT NULL DEFAULT nextval('id_service_role_sequence'),
    id_service integer NOT NULL,
    id_project integer,
    id_site integer,
    service_role_name varchar(100) NOT NULL,
    PRIMARY KEY (id_service_role),
    FOREIGN KEY (id_service) REFERENCES t_services (id_service) ON DELETE CASCADE,
    FOREIGN KEY (id_project) REFERENCES t_projects (id_project) ON DELETE CASCADE,
    FOREIGN KEY (id_site) REFERENCES t_sites (id_site) ON DELETE CASCADE
);

-- t_sessions_types_projects: model name "session_type_project" (emits events)
CREATE SEQUENCE id_session_type_project_sequence;
CREATE TABLE t_sessions_types_projects (
    version_id bigint NOT NULL DEFAULT (extract(epoch FROM clock_timestamp()) * 1000)::bigint,
    deleted_at timestamp with time zone,
    id_session_type_project integer NOT NULL DEFAULT nextval('id_session_type_project_sequence'),
    id_session_type integer NOT NULL,
    id_project integer NOT NULL,
    PRIMARY KEY (id_session_type_project),
    FOREIGN KEY (id_session_type) REFERENCES t_sessions_types (id_session_type) ON DELETE CASCADE,
    FOREIGN KEY (id_project) REFERENCES t_projects (id_project) ON DELETE CASCADE
);

-- t_sessions_types_services: model name "session_type_service" (emits events)
CREATE SEQUENCE id_session_type_service_sequence;
CREATE TABLE t_sessions_types_services (
    version_id bigint NOT NULL DEFAULT (extract(epoch FROM clock_timestamp()) * 1000)::bigint,
    deleted_at timestamp with time zone,
    id_session_type_service integer NOT NULL DEFAULT nextval('id_session_type_service_sequence'),
    id_session_type integer NOT NULL,
    id_service integer NOT NULL,
    PRIMARY KEY (id_session_type_service),
    FOREIGN KEY (id_session_type) REFERENCES t_sessions_types (id_session_type) ON DELETE CASCADE,
    FOREIGN KEY (id_service) REFERENCES t_services (id_service) ON DELETE CASCADE
);

-- t_sessions_types_sites: model name "session_type_site" (emits events)
CREATE SEQUENCE id_session_type_site_sequence;
CREATE TABLE t_sessions_types_sites (
    version_id bigint NOT NULL DEFAULT (extract(epoch FROM clock_timestamp()) * 1000)::bigint,
    deleted_at timestamp with time zone,
    id_session_type_site integer NOT NULL DEFAULT nextval('id_session_type_site_sequence'),
    id_session_type integer NOT NULL,
    id_site integer NOT NULL,
    PRIMARY KEY (id_session_type_site),
    FOREIGN KEY (id_session_type) REFERENCES t_sessions_types (id_session_type) ON DELETE CASCADE,
    FOREIGN KEY (id_site) REFERENCES t_sites (id_site) ON DELETE CASCADE
);

-- t_participants: model name "participant" (emits events)
CREATE SEQUENCE id_participant_sequence;
CREATE TABLE t_participants (
    version_id bigint NOT NULL DEFAULT (extract(epoch FROM clock_timestamp()) * 1000)::bigint,
    deleted_at timestamp with time zone,
    id_participant integer NOT NULL DEFAULT nextval('id_participant_sequence'),
    participant_uuid varchar(36) NOT NULL DEFAULT gen_random_uuid(),
    participant_name varchar NOT NULL,
    participant_username varchar(50),
    participant_email varchar,
    participant_password varchar,
    participant_token_enabled boolean NOT NULL,
    participant_token varchar,
    participant_lastonline timestamp with time zone,
    participant_enabled boolean NOT NULL,
    participant_login_enabled boolean NOT NULL,
    id_participant_group integer,
    id_project integer NOT NULL,
    PRIMARY KEY (id_participant),
    UNIQUE (participant_uuid),
    UNIQUE (participant_token),
    FOREIGN KEY (id_participant_group) REFERENCES t_participants_groups (id_participant_group) ON DELETE CASCADE,
    FOREIGN KEY (id_project) REFERENCES t_projects (id_project) ON DELETE CASCADE
);

-- t_sessions: model name "session" (emits events)
CREATE SEQUENCE id_session_sequence;
CREATE TABLE t_sessions (
    version_id bigint NOT NULL DEFAULT (extract(epoch FROM clock_timestamp()) * 1000)::bigint,
    deleted_at timestamp with time zone,
    id_session integer NOT NULL DEFAULT nextval('id_session_sequence'),
    session_uuid varchar(36) NOT NULL DEFAULT gen_random_uuid(),
    id_session_type integer NOT NULL,
    id_creator_user integer,
    id_creator_device integer,
    id_creator_participant integer,
    id_creator_service integer,
    session_name varchar NOT NULL,
    session_start_datetime timestamp with time zone NOT NULL,
    session_duration integer NOT NULL,
    session_status integer NOT NULL,
    session_comments varchar,
    session_parameters varchar,
    PRIMARY KEY (id_session),
    UNIQUE (session_uuid),
    FOREIGN KEY (id_session_type) REFERENCES t_sessions_types (id_session_type),
    FOREIGN KEY (id_creator_user) REFERENCES t_users (id_user),
    FOREIGN KEY (id_creator_device) REFERENCES t_devices (id_device),
    FOREIGN KEY (id_creator_participant) REFERENCES t_participants (id_participant),
    FOREIGN KEY (id_creator_service) REFERENCES t_services (id_service) ON DELETE CASCADE
);

-- t_assets: model name "asset" (emits events)
CREATE SEQUENCE id_asset_sequence;
CREATE TABLE t_assets (
    version_id bigint NOT NULL DEFAULT (extract(epoch FROM clock_timestamp()) * 1000)::bigint,
    deleted_at timestamp with time zone,
    id_asset integer NOT NULL DEFAULT nextval('id_asset_sequence'),
    id_session integer NOT NULL,
    id_device integer,
    id_participant integer,
    id_user integer,
    id_service integer,
    asset_name varchar NOT NULL,
    asset_uuid varchar(36) NOT NULL DEFAULT gen_random_uuid(),
    asset_service_uuid varchar(36) NOT NULL,
    asset_type varchar NOT NULL,
    asset_datetime timestamp with time zone,
    asset_expiration_datetime timestamp with time zone,
    PRIMARY KEY (id_asset),
    UNIQUE (asset_uuid),
    FOREIGN KEY (id_session) REFERENCES t_sessions (id_session) ON DELETE CASCADE,
    FOREIGN KEY (id_device) REFERENCES t_devices (id_device),
    FOREIGN KEY (id_participant) REFERENCES t_participants (id_participant),
    FOREIGN KEY (id_user) REFERENCES t_users (id_user),
    FOREIGN KEY (id_service) REFERENCES t_services (id_service),
    FOREIGN KEY (asset_service_uuid) REFERENCES t_services (service_uuid) ON DELETE CASCADE
);

-- t_tests: model name "test" (emits events)
CREATE SEQUENCE id_test_sequence;
CREATE TABLE t_tests (
    version_id bigint NOT NULL DEFAULT (extract(epoch FROM clock_timestamp()) * 1000)::bigint,
    deleted_at timestamp with time zone,
    id_test integer NOT NULL DEFAULT nextval('id_test_sequence'),
    id_test_type integer NOT NULL,
    id_session integer NOT NULL,
    id_device integer,
    id_participant integer,
    id_user integer,
    id_service integer,
    test_uuid varchar(36) NOT NULL DEFAULT gen_random_uuid(),
    test_name varchar NOT NULL,
    test_datetime timestamp with time zone NOT NULL,
    test_status integer NOT NULL,
    test_summary varchar,
    PRIMARY KEY (id_test),
    UNIQUE (test_uuid),
    FOREIGN KEY (id_test_type) REFERENCES t_tests_types (id_test_type),
    FOREIGN KEY (id_session) REFERENCES t_sessions (id_session) ON DELETE CASCADE,
    FOREIGN KEY (id_device) REFERENCES t_devices (id_device),
    FOREIGN KEY (id_participant) REFERENCES t_participants (id_participant),
    FOREIGN KEY (id_user) REFERENCES t_users (id_user),
    FOREIGN KEY (id_service) REFERENCES t_services (id_service)
);

-- t_tests_invitations: model name "test_invitation" (emits events)
CREATE SEQUENCE id_test_invitation_sequence;
CREATE TABLE t_tests_invitations (
    version_id bigint NOT NULL DEFAULT (extract(epoch FROM clock_timestamp()) * 1000)::bigint,
    deleted_at timestamp with time zone,
    id_test_invitation integer NOT NULL DEFAULT nextval('id_test_invitation_sequence'),
    id_test_type integer NOT NULL,
    id_session integer,
    id_user integer,
    id_participant integer,
    id_device integer,
    id_project integer NOT NULL,
    test_invitation_key varchar(16) NOT NULL,
    test_invitation_max_count integer NOT NULL,
    test_invitation_count integer NOT NULL,
    test_invitation_creation_date timestamp with time zone NOT NULL,
    test_invitation_expiration_date timestamp with time zone NOT NULL,
    test_invitation_message varchar,
    PRIMARY KEY (id_test_invitation),
    UNIQUE (test_invitation_key),
    FOREIGN KEY (id_test_type) REFERENCES t_tests_types (id_test_type) ON DELETE CASCADE,
    FOREIGN KEY (id_session) REFERENCES t_sessions (id_session) ON DELETE CASCADE,
    FOREIGN KEY (id_user) REFERENCES t_users (id_user) ON DELETE CASCADE,
    FOREIGN KEY (id_participant) REFERENCES t_participants (id_participant) ON DELETE CASCADE,
    FOREIGN KEY (id_device) REFERENCES t_devices (id_device) ON DELETE CASCADE,
    FOREIGN KEY (id_project) REFERENCES t_projects (id_project) ON DELETE CASCADE
);

-- What `tera-cdc --preset opentera` needs beyond OpenTera's schema: a DELETE in the WAL carries only
-- the primary key unless the table has REPLICA IDENTITY FULL, and OpenTera's DELETE events also carry
-- *_uuid, service_key and id_service; FULL also gives the values of unchanged TOASTed columns on UPDATE.
ALTER TABLE t_assets REPLICA IDENTITY FULL;
ALTER TABLE t_devices REPLICA IDENTITY FULL;
ALTER TABLE t_participants REPLICA IDENTITY FULL;
ALTER TABLE t_participants_groups REPLICA IDENTITY FULL;
ALTER TABLE t_projects REPLICA IDENTITY FULL;
ALTER TABLE t_server_settings REPLICA IDENTITY FULL;
ALTER TABLE t_services REPLICA IDENTITY FULL;
ALTER TABLE t_sessions REPLICA IDENTITY FULL;
ALTER TABLE t_sessions_types REPLICA IDENTITY FULL;
ALTER TABLE t_sessions_types_projects REPLICA IDENTITY FULL;
ALTER TABLE t_sessions_types_services REPLICA IDENTITY FULL;
ALTER TABLE t_sessions_types_sites REPLICA IDENTITY FULL;
ALTER TABLE t_sites REPLICA IDENTITY FULL;
ALTER TABLE t_tests REPLICA IDENTITY FULL;
ALTER TABLE t_tests_invitations REPLICA IDENTITY FULL;
ALTER TABLE t_tests_types REPLICA IDENTITY FULL;
ALTER TABLE t_users REPLICA IDENTITY FULL;
ALTER TABLE t_users_groups REPLICA IDENTITY FULL;
