-- FedICS store, PostgreSQL schema: the same tables, columns and conventions as
-- migrations/sqlite. Integers are BIGINT and reals DOUBLE PRECISION (what i64/f64 decode
-- from); text is COLLATE "C" so that fixed-width timestamps and merge keys compare
-- bytewise, exactly as SQLite compares them.
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
    id                     TEXT COLLATE "C"    PRIMARY KEY NOT NULL,
    -- the seeds' timestamp: when the incident started (= first_seen)
    timestamp              TEXT COLLATE "C"    NOT NULL,
    facility_id            TEXT COLLATE "C"    NOT NULL,
    severity               TEXT COLLATE "C"    NOT NULL CHECK (severity IN ('critical', 'high', 'medium', 'low')),
    -- low 0, medium 1, high 2, critical 3
    severity_rank          BIGINT NOT NULL CHECK (severity_rank BETWEEN 0 AND 3),
    title                  TEXT COLLATE "C"    NOT NULL,
    description            TEXT COLLATE "C"    NOT NULL,
    status                 TEXT COLLATE "C"    NOT NULL CHECK (status IN ('new', 'acknowledged', 'resolved', 'false-positive')),
    -- ATT&CK for ICS technique id
    attack_type            TEXT COLLATE "C"    NOT NULL,
    attack_name            TEXT COLLATE "C"    NOT NULL,
    correlation_confidence DOUBLE PRECISION    NOT NULL,
    correlation_summary    TEXT COLLATE "C"    NOT NULL,
    context_analysis       TEXT COLLATE "C"    NOT NULL,
    first_seen             TEXT COLLATE "C"    NOT NULL,
    last_seen              TEXT COLLATE "C"    NOT NULL,
    tactic_ids             TEXT COLLATE "C"    NOT NULL,
    src_ip                 TEXT COLLATE "C"    NOT NULL,
    dst_ip                 TEXT COLLATE "C"    NOT NULL,
    flow_count             BIGINT NOT NULL DEFAULT 0,
    model_versions         TEXT COLLATE "C"    NOT NULL,
    -- merge key of the update that supplied title/description/summary/attack_name:
    -- "<severity_rank>|<last_seen>|<event_id>"
    headline_rev           TEXT COLLATE "C"    NOT NULL,
    -- merge key of the update that supplied model_versions, tactic_ids, dst_ip, context:
    -- "<last_seen>|<event_id>"
    latest_rev             TEXT COLLATE "C"    NOT NULL
);

CREATE INDEX idx_alerts_timestamp ON alerts (timestamp);
CREATE INDEX idx_alerts_facility_id ON alerts (facility_id);
CREATE INDEX idx_alerts_severity ON alerts (severity);
CREATE INDEX idx_alerts_status ON alerts (status);
CREATE INDEX idx_alerts_last_seen ON alerts (last_seen);

CREATE TABLE alert_sources (
    -- UUIDv5 of (alert_id, model_name)
    id               TEXT COLLATE "C"    PRIMARY KEY NOT NULL,
    alert_id         TEXT COLLATE "C"    NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    layer            BIGINT NOT NULL,
    model_name       TEXT COLLATE "C"    NOT NULL,
    model_version    TEXT COLLATE "C"    NOT NULL,
    confidence       DOUBLE PRECISION    NOT NULL,
    detection_time   TEXT COLLATE "C"    NOT NULL,
    evidence         TEXT COLLATE "C"    NOT NULL,
    context_evidence TEXT COLLATE "C"    NOT NULL,
    -- "<detection_time>|<uuidv5 of the evidence>": the latest evidence wins
    evidence_rev     TEXT COLLATE "C"    NOT NULL,
    UNIQUE (alert_id, model_name)
);

-- Which flows each alert covers. flow_id does not reference flows: a flow record is only
-- stored when the alert update carried it.
CREATE TABLE alert_flows (
    alert_id TEXT COLLATE "C" NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    flow_id  TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (alert_id, flow_id)
);

CREATE INDEX idx_alert_flows_flow_id ON alert_flows (flow_id);

-- Flow records that belong to alerts (record = the FlowRecord as JSON).
CREATE TABLE flows (
    flow_id     TEXT COLLATE "C"    PRIMARY KEY NOT NULL,
    facility_id TEXT COLLATE "C"    NOT NULL,
    ts_start    TEXT COLLATE "C"    NOT NULL,
    ts_end      TEXT COLLATE "C"    NOT NULL,
    src_ip      TEXT COLLATE "C"    NOT NULL,
    dst_ip      TEXT COLLATE "C"    NOT NULL,
    dst_port    BIGINT NOT NULL,
    -- ground-truth label, when the flow carried one
    label       TEXT COLLATE "C",
    record      TEXT COLLATE "C"    NOT NULL
);

CREATE TABLE classifications (
    -- the classification's event_id
    id                 TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    flow_id            TEXT COLLATE "C" NOT NULL,
    facility_id        TEXT COLLATE "C" NOT NULL,
    timestamp          TEXT COLLATE "C" NOT NULL,
    technique_id       TEXT COLLATE "C" NOT NULL,
    technique_name     TEXT COLLATE "C" NOT NULL,
    confidence         DOUBLE PRECISION NOT NULL,
    classifier         TEXT COLLATE "C" NOT NULL,
    classifier_version TEXT COLLATE "C" NOT NULL,
    evidence           TEXT COLLATE "C" NOT NULL
);

CREATE INDEX idx_classifications_flow_id ON classifications (flow_id);

CREATE TABLE predictions (
    -- the prediction's event_id
    id                     TEXT COLLATE "C"    PRIMARY KEY NOT NULL,
    timestamp              TEXT COLLATE "C"    NOT NULL,
    facility_id            TEXT COLLATE "C"    NOT NULL,
    current_technique      TEXT COLLATE "C"    NOT NULL,
    current_technique_name TEXT COLLATE "C"    NOT NULL,
    -- the alert the prediction was made for. Not an enforced foreign key: predictions and
    -- alerts arrive on different topics, so a prediction may be written before its alert.
    alert_id               TEXT COLLATE "C"    NOT NULL,
    validated              BOOLEAN NOT NULL DEFAULT FALSE,
    validation_time        TEXT COLLATE "C",
    model                  TEXT COLLATE "C"    NOT NULL,
    observations           BIGINT NOT NULL
);

CREATE INDEX idx_predictions_timestamp ON predictions (timestamp);
CREATE INDEX idx_predictions_alert_id ON predictions (alert_id);

CREATE TABLE predicted_techniques (
    -- UUIDv5 of (prediction_id, rank)
    id             TEXT COLLATE "C"    PRIMARY KEY NOT NULL,
    prediction_id  TEXT COLLATE "C"    NOT NULL REFERENCES predictions (id) ON DELETE CASCADE,
    technique_id   TEXT COLLATE "C"    NOT NULL,
    technique_name TEXT COLLATE "C"    NOT NULL,
    probability    DOUBLE PRECISION    NOT NULL,
    rank           BIGINT NOT NULL,
    timeframe      TEXT COLLATE "C"    NOT NULL
);

CREATE INDEX idx_predicted_techniques_prediction_id ON predicted_techniques (prediction_id);

CREATE TABLE fl_rounds (
    id             BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    round_number   BIGINT NOT NULL UNIQUE,
    status         TEXT COLLATE "C"    NOT NULL CHECK (status IN ('in-progress', 'completed', 'failed')),
    phase          TEXT COLLATE "C"    NOT NULL CHECK (phase IN ('distributing', 'training', 'aggregating', 'complete')),
    start_time     TEXT COLLATE "C"    NOT NULL,
    end_time       TEXT COLLATE "C",
    progress       BIGINT NOT NULL DEFAULT 0 CHECK (progress BETWEEN 0 AND 100),
    epsilon        DOUBLE PRECISION,
    model_accuracy DOUBLE PRECISION,
    clients_active BIGINT NOT NULL DEFAULT 0,
    total_clients  BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE fl_clients (
    id            TEXT COLLATE "C"    PRIMARY KEY NOT NULL,
    round_id      BIGINT NOT NULL REFERENCES fl_rounds (id) ON DELETE CASCADE,
    facility_id   TEXT COLLATE "C"    NOT NULL,
    name          TEXT COLLATE "C"    NOT NULL,
    status        TEXT COLLATE "C"    NOT NULL CHECK (status IN ('active', 'delayed', 'offline')),
    progress      BIGINT NOT NULL DEFAULT 0 CHECK (progress BETWEEN 0 AND 100),
    current_epoch BIGINT NOT NULL DEFAULT 0,
    total_epochs  BIGINT NOT NULL DEFAULT 0,
    loss          DOUBLE PRECISION,
    accuracy      DOUBLE PRECISION,
    last_update   TEXT COLLATE "C"    NOT NULL
);

CREATE INDEX idx_fl_clients_round_id ON fl_clients (round_id);
