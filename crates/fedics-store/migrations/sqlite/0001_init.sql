-- FedICS store, SQLite schema. A PostgreSQL schema gets its own folder (migrations/postgres)
-- and must keep the same tables, columns and conventions.
--
-- Conventions shared by every engine:
--   * ids are TEXT uuids in their hyphenated lowercase form;
--   * timestamps are TEXT in UTC, RFC 3339 with exactly six fractional digits and a `Z`
--     ("2024-05-01T12:00:00.000000Z", always 27 characters), so that text order is time
--     order and MIN/MAX/range filters work on the text;
--   * JSON documents are TEXT;
--   * `*_rev` columns are internal merge keys (see src/write.rs): a replay in any order
--     keeps the row whose key is the greatest, so upserts are order independent.

CREATE TABLE alerts (
    id                     TEXT    PRIMARY KEY NOT NULL,
    -- the seeds' timestamp: when the incident started (= first_seen)
    timestamp              TEXT    NOT NULL,
    facility_id            TEXT    NOT NULL,
    severity               TEXT    NOT NULL CHECK (severity IN ('critical', 'high', 'medium', 'low')),
    -- low 0, medium 1, high 2, critical 3
    severity_rank          INTEGER NOT NULL CHECK (severity_rank BETWEEN 0 AND 3),
    title                  TEXT    NOT NULL,
    description            TEXT    NOT NULL,
    status                 TEXT    NOT NULL CHECK (status IN ('new', 'acknowledged', 'resolved', 'false-positive')),
    -- ATT&CK for ICS technique id
    attack_type            TEXT    NOT NULL,
    attack_name            TEXT    NOT NULL,
    correlation_confidence REAL    NOT NULL,
    correlation_summary    TEXT    NOT NULL,
    context_analysis       TEXT    NOT NULL,
    first_seen             TEXT    NOT NULL,
    last_seen              TEXT    NOT NULL,
    tactic_ids             TEXT    NOT NULL,
    src_ip                 TEXT    NOT NULL,
    dst_ip                 TEXT    NOT NULL,
    flow_count             INTEGER NOT NULL DEFAULT 0,
    model_versions         TEXT    NOT NULL,
    -- merge key of the update that supplied title/description/summary/attack_name:
    -- "<severity_rank>|<last_seen>|<event_id>"
    headline_rev           TEXT    NOT NULL,
    -- merge key of the update that supplied model_versions, tactic_ids, dst_ip, context:
    -- "<last_seen>|<event_id>"
    latest_rev             TEXT    NOT NULL
);

CREATE INDEX idx_alerts_timestamp ON alerts (timestamp);
CREATE INDEX idx_alerts_facility_id ON alerts (facility_id);
CREATE INDEX idx_alerts_severity ON alerts (severity);
CREATE INDEX idx_alerts_status ON alerts (status);
CREATE INDEX idx_alerts_last_seen ON alerts (last_seen);

CREATE TABLE alert_sources (
    -- UUIDv5 of (alert_id, model_name)
    id               TEXT    PRIMARY KEY NOT NULL,
    alert_id         TEXT    NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    layer            INTEGER NOT NULL,
    model_name       TEXT    NOT NULL,
    model_version    TEXT    NOT NULL,
    confidence       REAL    NOT NULL,
    detection_time   TEXT    NOT NULL,
    evidence         TEXT    NOT NULL,
    context_evidence TEXT    NOT NULL,
    -- "<detection_time>|<uuidv5 of the evidence>": the latest evidence wins
    evidence_rev     TEXT    NOT NULL,
    UNIQUE (alert_id, model_name)
);

-- Which flows each alert covers. flow_id does not reference flows: a flow record is only
-- stored when the alert update carried it.
CREATE TABLE alert_flows (
    alert_id TEXT NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    flow_id  TEXT NOT NULL,
    PRIMARY KEY (alert_id, flow_id)
);

CREATE INDEX idx_alert_flows_flow_id ON alert_flows (flow_id);

-- Flow records that belong to alerts (record = the FlowRecord as JSON).
CREATE TABLE flows (
    flow_id     TEXT    PRIMARY KEY NOT NULL,
    facility_id TEXT    NOT NULL,
    ts_start    TEXT    NOT NULL,
    ts_end      TEXT    NOT NULL,
    src_ip      TEXT    NOT NULL,
    dst_ip      TEXT    NOT NULL,
    dst_port    INTEGER NOT NULL,
    -- ground-truth label, when the flow carried one
    label       TEXT,
    record      TEXT    NOT NULL
);

CREATE TABLE classifications (
    -- the classification's event_id
    id                 TEXT PRIMARY KEY NOT NULL,
    flow_id            TEXT NOT NULL,
    facility_id        TEXT NOT NULL,
    timestamp          TEXT NOT NULL,
    technique_id       TEXT NOT NULL,
    technique_name     TEXT NOT NULL,
    confidence         REAL NOT NULL,
    classifier         TEXT NOT NULL,
    classifier_version TEXT NOT NULL,
    evidence           TEXT NOT NULL
);

CREATE INDEX idx_classifications_flow_id ON classifications (flow_id);

CREATE TABLE predictions (
    -- the prediction's event_id
    id                     TEXT    PRIMARY KEY NOT NULL,
    timestamp              TEXT    NOT NULL,
    facility_id            TEXT    NOT NULL,
    current_technique      TEXT    NOT NULL,
    current_technique_name TEXT    NOT NULL,
    -- the alert the prediction was made for. Not an enforced foreign key: predictions and
    -- alerts arrive on different topics, so a prediction may be written before its alert.
    alert_id               TEXT    NOT NULL,
    validated              INTEGER NOT NULL DEFAULT 0 CHECK (validated IN (0, 1)),
    validation_time        TEXT,
    model                  TEXT    NOT NULL,
    observations           INTEGER NOT NULL
);

CREATE INDEX idx_predictions_timestamp ON predictions (timestamp);
CREATE INDEX idx_predictions_alert_id ON predictions (alert_id);

CREATE TABLE predicted_techniques (
    -- UUIDv5 of (prediction_id, rank)
    id             TEXT    PRIMARY KEY NOT NULL,
    prediction_id  TEXT    NOT NULL REFERENCES predictions (id) ON DELETE CASCADE,
    technique_id   TEXT    NOT NULL,
    technique_name TEXT    NOT NULL,
    probability    REAL    NOT NULL,
    rank           INTEGER NOT NULL,
    timeframe      TEXT    NOT NULL
);

CREATE INDEX idx_predicted_techniques_prediction_id ON predicted_techniques (prediction_id);

CREATE TABLE fl_rounds (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    round_number   INTEGER NOT NULL UNIQUE,
    status         TEXT    NOT NULL CHECK (status IN ('in-progress', 'completed', 'failed')),
    phase          TEXT    NOT NULL CHECK (phase IN ('distributing', 'training', 'aggregating', 'complete')),
    start_time     TEXT    NOT NULL,
    end_time       TEXT,
    progress       INTEGER NOT NULL DEFAULT 0 CHECK (progress BETWEEN 0 AND 100),
    epsilon        REAL,
    model_accuracy REAL,
    clients_active INTEGER NOT NULL DEFAULT 0,
    total_clients  INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE fl_clients (
    id            TEXT    PRIMARY KEY NOT NULL,
    round_id      INTEGER NOT NULL REFERENCES fl_rounds (id) ON DELETE CASCADE,
    facility_id   TEXT    NOT NULL,
    name          TEXT    NOT NULL,
    status        TEXT    NOT NULL CHECK (status IN ('active', 'delayed', 'offline')),
    progress      INTEGER NOT NULL DEFAULT 0 CHECK (progress BETWEEN 0 AND 100),
    current_epoch INTEGER NOT NULL DEFAULT 0,
    total_epochs  INTEGER NOT NULL DEFAULT 0,
    loss          REAL,
    accuracy      REAL,
    last_update   TEXT    NOT NULL
);

CREATE INDEX idx_fl_clients_round_id ON fl_clients (round_id);
