-- How each federation aggregates and protects its updates, as its aggregator was configured
-- (written by the process that runs the aggregator when it starts; a restart of the same
-- federation id updates the row and keeps started_at). The DP columns are all NULL when
-- client-level DP is off.
CREATE TABLE fl_federations (
    id                  TEXT    PRIMARY KEY NOT NULL,
    strategy            TEXT    NOT NULL,
    strategy_params     TEXT    NOT NULL,
    local_epochs        INTEGER NOT NULL,
    learning_rate       REAL    NOT NULL,
    fraction_fit        REAL    NOT NULL,
    total_sites         INTEGER NOT NULL,
    dp_noise_multiplier REAL,
    dp_clip_norm        REAL,
    dp_mode             TEXT CHECK (dp_mode IN ('central', 'distributed')),
    dp_max_epsilon      REAL,
    dp_delta            REAL,
    started_at          TEXT    NOT NULL,
    updated_at          TEXT    NOT NULL
);

CREATE INDEX idx_fl_federations_updated ON fl_federations (updated_at DESC, id DESC);
