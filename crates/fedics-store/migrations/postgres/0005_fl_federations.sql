-- How each federation aggregates and protects its updates, as its aggregator was configured
-- (written by the process that runs the aggregator when it starts; a restart of the same
-- federation id updates the row and keeps started_at). The DP columns are all NULL when
-- client-level DP is off.
CREATE TABLE fl_federations (
    id                  TEXT COLLATE "C"    PRIMARY KEY NOT NULL,
    strategy            TEXT COLLATE "C"    NOT NULL,
    strategy_params     TEXT COLLATE "C"    NOT NULL,
    local_epochs        BIGINT NOT NULL,
    learning_rate       DOUBLE PRECISION NOT NULL,
    fraction_fit        DOUBLE PRECISION NOT NULL,
    total_sites         BIGINT NOT NULL,
    dp_noise_multiplier DOUBLE PRECISION,
    dp_clip_norm        DOUBLE PRECISION,
    dp_mode             TEXT COLLATE "C" CHECK (dp_mode IN ('central', 'distributed')),
    dp_max_epsilon      DOUBLE PRECISION,
    dp_delta            DOUBLE PRECISION,
    started_at          TEXT COLLATE "C"    NOT NULL,
    updated_at          TEXT COLLATE "C"    NOT NULL
);

CREATE INDEX idx_fl_federations_updated ON fl_federations (updated_at DESC, id DESC);
