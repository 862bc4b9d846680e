-- A read-only group role for Grafana (issue 7). It cannot log in; a town creates its
-- own login in it, with a password it chooses (dashboards/README.md):
--   CREATE ROLE grafana_town LOGIN PASSWORD '…' IN ROLE machikit_grafana;
-- Roles belong to the whole server (shared by several databases and test runs), so the
-- role may exist already. A collector user without CREATEROLE must still be able to
-- migrate: it then gets a NOTICE and an administrator creates the role and re-runs the
-- GRANTs below by hand (dashboards/README.md).
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'machikit_grafana') THEN
        IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = current_user
                       AND (rolcreaterole OR rolsuper)) THEN
            RAISE NOTICE 'machikit_grafana not created: % lacks CREATEROLE', current_user;
            RETURN;
        END IF;
        BEGIN
            CREATE ROLE machikit_grafana NOLOGIN;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;  -- another database on this server created it at the same moment
        END;
    END IF;
    GRANT USAGE ON SCHEMA public TO machikit_grafana;
    -- What the dashboards read. The password hashes in devices stay unreadable:
    -- the grant lists devices' columns one by one.
    GRANT SELECT ON positions, readings, events, device_status, quarantine
        TO machikit_grafana;
    GRANT SELECT (id, town, name, kind, public, label, settings, created_at, revoked_at)
        ON devices TO machikit_grafana;
    -- Tables later migrations create are readable too; one that adds secrets must
    -- REVOKE them explicitly.
    ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO machikit_grafana;
END
$$;
