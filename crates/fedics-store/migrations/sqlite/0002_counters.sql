-- Alert counters and list indexes.
--
-- alert_counters holds the number of alerts per (facility_id, severity, status), kept exact
-- by triggers on alerts, so the dashboard's totals and an unfiltered (or severity / status /
-- facility filtered) alert list are counted without scanning the alerts. A row that drops
-- to zero is deleted, so the table always equals
--   SELECT facility_id, severity, status, COUNT(*) FROM alerts GROUP BY 1, 2, 3.

CREATE TABLE alert_counters (
    facility_id TEXT    NOT NULL,
    severity    TEXT    NOT NULL,
    status      TEXT    NOT NULL,
    n           INTEGER NOT NULL CHECK (n > 0),
    PRIMARY KEY (facility_id, severity, status)
);

-- Counters of the alerts stored before this migration.
INSERT INTO alert_counters (facility_id, severity, status, n)
SELECT facility_id, severity, status, COUNT(*) FROM alerts GROUP BY facility_id, severity, status;

CREATE TRIGGER alert_counters_insert AFTER INSERT ON alerts
BEGIN
    INSERT INTO alert_counters (facility_id, severity, status, n)
    VALUES (NEW.facility_id, NEW.severity, NEW.status, 1)
    ON CONFLICT (facility_id, severity, status) DO UPDATE SET n = n + 1;
END;

-- The pipeline's upsert sets severity on every merge: only a real change moves a count.
CREATE TRIGGER alert_counters_update AFTER UPDATE OF facility_id, severity, status ON alerts
WHEN OLD.facility_id IS NOT NEW.facility_id
    OR OLD.severity IS NOT NEW.severity
    OR OLD.status IS NOT NEW.status
BEGIN
    DELETE FROM alert_counters
    WHERE facility_id = OLD.facility_id AND severity = OLD.severity AND status = OLD.status
        AND n = 1;
    UPDATE alert_counters SET n = n - 1
    WHERE facility_id = OLD.facility_id AND severity = OLD.severity AND status = OLD.status;
    INSERT INTO alert_counters (facility_id, severity, status, n)
    VALUES (NEW.facility_id, NEW.severity, NEW.status, 1)
    ON CONFLICT (facility_id, severity, status) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER alert_counters_delete AFTER DELETE ON alerts
BEGIN
    DELETE FROM alert_counters
    WHERE facility_id = OLD.facility_id AND severity = OLD.severity AND status = OLD.status
        AND n = 1;
    UPDATE alert_counters SET n = n - 1
    WHERE facility_id = OLD.facility_id AND severity = OLD.severity AND status = OLD.status;
END;

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
