-- Alert versions: every insert or update of an alert gives it a new version, one more than
-- the last version given out (kept in alert_version_seq), so no two writes of the table share
-- a version. The API keeps each alert's rendered list entry keyed by (id, version)
-- (src/rendered.rs): a cached rendering is current exactly when its version is the row's.
-- The triggers own the column.
--
-- Rows stored before this migration keep version 0: each has had one content since (the
-- first write after this migration gives it a version from the sequence).
CREATE TABLE alert_version_seq (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    n  INTEGER NOT NULL
);
INSERT INTO alert_version_seq (id, n) VALUES (1, 0);

ALTER TABLE alerts ADD COLUMN version INTEGER NOT NULL DEFAULT 0;

-- The update trigger fires for every UPDATE but the triggers' own, which sets the version
-- just given out (so it does not loop, whether or not recursive_triggers is on). An UPDATE
-- that sets the version itself, to anything but the last one given out, is bumped too.
CREATE TRIGGER alerts_version_insert AFTER INSERT ON alerts
BEGIN
    UPDATE alert_version_seq SET n = n + 1 WHERE id = 1;
    UPDATE alerts SET version = (SELECT n FROM alert_version_seq WHERE id = 1)
    WHERE id = NEW.id;
END;

CREATE TRIGGER alerts_version_update AFTER UPDATE ON alerts
WHEN NOT (NEW.version <> OLD.version
          AND NEW.version = (SELECT n FROM alert_version_seq WHERE id = 1))
BEGIN
    UPDATE alert_version_seq SET n = n + 1 WHERE id = 1;
    UPDATE alerts SET version = (SELECT n FROM alert_version_seq WHERE id = 1)
    WHERE id = NEW.id;
END;

-- The alert page reads ids and versions in list order (src/read.rs): the list indexes carry
-- the version, so a page, and the rows an OFFSET skips, come from the index alone.
DROP INDEX idx_alerts_list;
DROP INDEX idx_alerts_severity_list;
DROP INDEX idx_alerts_status_list;
DROP INDEX idx_alerts_facility_list;
CREATE INDEX idx_alerts_list ON alerts (last_seen DESC, id, version);
CREATE INDEX idx_alerts_severity_list ON alerts (severity, last_seen DESC, id, version);
CREATE INDEX idx_alerts_status_list ON alerts (status, last_seen DESC, id, version);
CREATE INDEX idx_alerts_facility_list ON alerts (facility_id, last_seen DESC, id, version);
