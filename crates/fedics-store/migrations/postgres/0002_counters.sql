-- Alert counters and list indexes (the same tables, columns and indexes as
-- migrations/sqlite/0002_counters.sql; the triggers call PL/pgSQL functions).
--
-- alert_counters holds the number of alerts per (facility_id, severity, status), kept exact
-- by triggers on alerts, so the dashboard's totals and an unfiltered (or severity / status /
-- facility filtered) alert list are counted without scanning the alerts. A row that drops
-- to zero is deleted, so the table always equals
--   SELECT facility_id, severity, status, COUNT(*) FROM alerts GROUP BY 1, 2, 3.

CREATE TABLE alert_counters (
    facility_id TEXT COLLATE "C" NOT NULL,
    severity    TEXT COLLATE "C" NOT NULL,
    status      TEXT COLLATE "C" NOT NULL,
    n           BIGINT NOT NULL CHECK (n > 0),
    PRIMARY KEY (facility_id, severity, status)
);

-- Counters of the alerts stored before this migration.
INSERT INTO alert_counters (facility_id, severity, status, n)
SELECT facility_id, severity, status, COUNT(*) FROM alerts GROUP BY facility_id, severity, status;

CREATE FUNCTION alert_counters_add(f TEXT, sev TEXT, st TEXT, d BIGINT) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO alert_counters AS c (facility_id, severity, status, n)
    VALUES (f, sev, st, d)
    ON CONFLICT (facility_id, severity, status) DO UPDATE SET n = c.n + excluded.n;
END;
$$;

-- One alert fewer; the row goes when its count would reach zero.
CREATE FUNCTION alert_counters_remove(f TEXT, sev TEXT, st TEXT) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM alert_counters
    WHERE facility_id = f AND severity = sev AND status = st AND n = 1;
    IF NOT FOUND THEN
        UPDATE alert_counters SET n = n - 1
        WHERE facility_id = f AND severity = sev AND status = st;
    END IF;
END;
$$;

CREATE FUNCTION alert_counters_on_insert() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM alert_counters_add(NEW.facility_id, NEW.severity, NEW.status, 1);
    RETURN NULL;
END;
$$;

CREATE FUNCTION alert_counters_on_update() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM alert_counters_remove(OLD.facility_id, OLD.severity, OLD.status);
    PERFORM alert_counters_add(NEW.facility_id, NEW.severity, NEW.status, 1);
    RETURN NULL;
END;
$$;

CREATE FUNCTION alert_counters_on_delete() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM alert_counters_remove(OLD.facility_id, OLD.severity, OLD.status);
    RETURN NULL;
END;
$$;

CREATE TRIGGER alert_counters_insert AFTER INSERT ON alerts
FOR EACH ROW EXECUTE FUNCTION alert_counters_on_insert();

-- The pipeline's upsert sets severity on every merge: only a real change moves a count.
CREATE TRIGGER alert_counters_update AFTER UPDATE OF facility_id, severity, status ON alerts
FOR EACH ROW
WHEN (OLD.facility_id IS DISTINCT FROM NEW.facility_id
    OR OLD.severity IS DISTINCT FROM NEW.severity
    OR OLD.status IS DISTINCT FROM NEW.status)
EXECUTE FUNCTION alert_counters_on_update();

CREATE TRIGGER alert_counters_delete AFTER DELETE ON alerts
FOR EACH ROW EXECUTE FUNCTION alert_counters_on_delete();

-- List order (last_seen DESC, id), alone and behind each equality filter. They replace the
-- single-column indexes they start with.
DROP INDEX idx_alerts_last_seen;
DROP INDEX idx_alerts_severity;
DROP INDEX idx_alerts_status;
DROP INDEX idx_alerts_facility_id;
CREATE INDEX idx_alerts_list ON alerts (last_seen DESC, id);
CREATE INDEX idx_alerts_severity_list ON alerts (severity, last_seen DESC, id);
CREATE INDEX idx_alerts_status_list ON alerts (status, last_seen DESC, id);
CREATE INDEX idx_alerts_facility_list ON alerts (facility_id, last_seen DESC, id);

-- Techniques seen: alerts grouped by (attack_type, facility_id).
CREATE INDEX idx_alerts_attack_type ON alerts (attack_type, facility_id);

-- Newest prediction per current technique.
CREATE INDEX idx_predictions_technique ON predictions (current_technique, timestamp DESC, id DESC);
