-- What a DBA runs once to let tera-cdc stream an OpenTera database (or any database: replace the
-- table list). Run as a superuser (or the tables' owner) in the database tera-cdc reads:
--     psql "postgres://postgres@dbhost/opentera" -f sql/prepare-database.sql
-- then give the role a password (psql: \password tera_cdc) and start tera-cdc with
--     tera-cdc run --preset opentera --database-url postgres://tera_cdc:PASSWORD@dbhost/opentera --mqtt-url mqtt://broker:1883
-- Every statement can be run again without harm.

-- 1. Logical decoding. Needs a server restart, so it is only shown here:
--        ALTER SYSTEM SET wal_level = logical;   -- then restart PostgreSQL
--    and enough slots and senders for tera-cdc (one each) beside what already uses them:
--        ALTER SYSTEM SET max_replication_slots = 10;
--        ALTER SYSTEM SET max_wal_senders = 10;
--    SHOW wal_level; must say logical before tera-cdc starts.

-- 2. A role for tera-cdc: it may log in and open replication connections (REPLICATION), and read
--    the published tables (SELECT: tera-cdc reads their columns and keys from the catalog and checks
--    they are readable). It needs no write privilege.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'tera_cdc') THEN
        CREATE ROLE tera_cdc WITH LOGIN REPLICATION;
    END IF;
END
$$;
ALTER ROLE tera_cdc WITH LOGIN REPLICATION;
GRANT USAGE ON SCHEMA public TO tera_cdc;
GRANT SELECT ON
    t_assets, t_devices, t_participants, t_participants_groups, t_projects, t_server_settings, t_services,
    t_sessions, t_sessions_types, t_sessions_types_projects, t_sessions_types_services, t_sessions_types_sites,
    t_sites, t_tests, t_tests_invitations, t_tests_types, t_users, t_users_groups
TO tera_cdc;

-- 2b. A schema the role owns, for snapshot state (tera_cdc.snapshots, created by tera-cdc on first
--     use): snapshots requested at start (--snapshot initial) or over RPC record each chunk there, so
--     a restarted tera-cdc resumes them. Owning one schema is all the write access it needs; it gets
--     no CREATE on the database. (RPC itself needs nothing more: it travels on the broker.)
CREATE SCHEMA IF NOT EXISTS tera_cdc AUTHORIZATION tera_cdc;
ALTER SCHEMA tera_cdc OWNER TO tera_cdc;

-- 3. Replica identity. A DELETE in the WAL carries only the primary key unless the table has
--    REPLICA IDENTITY FULL; OpenTera's DELETE events also carry *_uuid, service_key and id_service,
--    and FULL also gives the values of unchanged TOASTed columns (long texts) on UPDATE. It costs
--    some WAL on UPDATE and DELETE (the whole old row is logged).
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

-- 4. The publication: which tables' changes are decoded for tera-cdc (its default name, --publication).
--    Creating it needs ownership of the tables, so the DBA does it here; tera-cdc creates it itself
--    only when its role may. The publication carries every column: what reaches MQTT is chosen by
--    tera-cdc (--preset opentera withholds OpenTera's secrets).
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = 'tera_cdc') THEN
        CREATE PUBLICATION tera_cdc FOR TABLE
            t_assets, t_devices, t_participants, t_participants_groups, t_projects, t_server_settings, t_services,
            t_sessions, t_sessions_types, t_sessions_types_projects, t_sessions_types_services, t_sessions_types_sites,
            t_sites, t_tests, t_tests_invitations, t_tests_types, t_users, t_users_groups;
    END IF;
END
$$;

-- 5. The replication slot is created by tera-cdc on its first start (--slot, default tera_cdc). A slot
--    keeps WAL until tera-cdc confirms it: if tera-cdc is retired, drop it, or the disk fills up:
--        SELECT pg_drop_replication_slot('tera_cdc');
