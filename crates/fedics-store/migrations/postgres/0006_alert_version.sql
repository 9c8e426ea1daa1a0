-- Alert versions: every insert or update of an alert gives it a new version, drawn from one
-- sequence, so no two writes of the table share a version. The API keeps each alert's
-- rendered list entry keyed by (id, version) (src/rendered.rs): a cached rendering is
-- current exactly when its version is the row's. The trigger owns the column; a value an
-- UPDATE sets is overwritten.
--
-- Rows stored before this migration keep version 0: each has had one content since (the
-- first write after this migration gives it a version from the sequence).
CREATE SEQUENCE alert_version_seq;

ALTER TABLE alerts ADD COLUMN version BIGINT NOT NULL DEFAULT 0;

CREATE FUNCTION alerts_next_version() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.version := nextval('alert_version_seq');
    RETURN NEW;
END;
$$;

CREATE TRIGGER alerts_version BEFORE INSERT OR UPDATE ON alerts
FOR EACH ROW EXECUTE FUNCTION alerts_next_version();

-- The alert page reads ids and versions in list order (src/read.rs): the list indexes carry
-- the version, so a page, and the rows an OFFSET skips, come from the index alone.
DROP INDEX idx_alerts_list;
DROP INDEX idx_alerts_severity_list;
DROP INDEX idx_alerts_status_list;
DROP INDEX idx_alerts_facility_list;
CREATE INDEX idx_alerts_list ON alerts (last_seen DESC, id) INCLUDE (version);
CREATE INDEX idx_alerts_severity_list ON alerts (severity, last_seen DESC, id) INCLUDE (version);
CREATE INDEX idx_alerts_status_list ON alerts (status, last_seen DESC, id) INCLUDE (version);
CREATE INDEX idx_alerts_facility_list ON alerts (facility_id, last_seen DESC, id) INCLUDE (version);
