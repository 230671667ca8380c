-- 004_settings.sql: system settings (admin only in the control plane), as
-- key -> JSON value.  The one setting the schema itself knows is
-- 'default_plan': the plan name (a JSON string) given to a new tenant when
-- none is chosen.  It must name an existing plan, and that plan can then
-- be neither deleted nor renamed.

SET LOCAL search_path = public;

CREATE TABLE settings (
    key         text PRIMARY KEY CHECK (key ~ '^[a-z][a-z0-9_.]{0,62}$'),
    value       jsonb NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    updated_by  bigint REFERENCES operators (id) ON DELETE SET NULL
);

CREATE TRIGGER settings_set_updated_at
    BEFORE UPDATE ON settings
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();


CREATE FUNCTION settings_check_default_plan() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, public
AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        IF OLD.key = 'default_plan' THEN
            RAISE EXCEPTION 'settings: default_plan cannot be deleted'
                USING ERRCODE = 'check_violation';
        END IF;
        RETURN OLD;
    END IF;

    IF NEW.key = 'default_plan' THEN
        IF jsonb_typeof(NEW.value) IS DISTINCT FROM 'string'
           OR NOT EXISTS (SELECT 1 FROM plans
                          WHERE name = NEW.value #>> '{}')
        THEN
            RAISE EXCEPTION 'settings: default_plan must be the name of an '
                            'existing plan, as a JSON string'
                USING ERRCODE = 'check_violation';
        END IF;
    END IF;

    RETURN NEW;
END
$$;

CREATE TRIGGER settings_check_default_plan
    BEFORE INSERT OR UPDATE OR DELETE ON settings
    FOR EACH ROW EXECUTE FUNCTION settings_check_default_plan();


CREATE FUNCTION plans_protect_default() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, public
AS $$
BEGIN
    IF (TG_OP = 'DELETE' OR NEW.name <> OLD.name)
       AND EXISTS (SELECT 1 FROM settings
                   WHERE key = 'default_plan' AND value #>> '{}' = OLD.name)
    THEN
        RAISE EXCEPTION 'plans: "%" is the default plan (settings '
                        'default_plan); change the setting first', OLD.name
            USING ERRCODE = 'foreign_key_violation';
    END IF;

    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER plans_protect_default
    BEFORE UPDATE OF name OR DELETE ON plans
    FOR EACH ROW EXECUTE FUNCTION plans_protect_default();


INSERT INTO settings (key, value) VALUES ('default_plan', '"free"')
ON CONFLICT (key) DO NOTHING;
