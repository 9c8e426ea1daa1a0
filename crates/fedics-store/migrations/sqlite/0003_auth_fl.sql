-- Users, API keys and the audit log of the API server, and the privacy ledger of the
-- federation. migrations/postgres/0003_auth_fl.sql has the same tables and columns.
-- Conventions as in 0001: ids of users and keys are TEXT uuids, timestamps fixed-width TEXT.

CREATE TABLE users (
    id            TEXT PRIMARY KEY NOT NULL,
    username      TEXT NOT NULL UNIQUE,
    -- a password hash in PHC string format; never the password
    password_hash TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('viewer', 'analyst', 'admin')),
    created_at    TEXT NOT NULL
);

CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY NOT NULL,
    name         TEXT NOT NULL,
    -- the public part of the key, by which a presented key is looked up
    prefix       TEXT NOT NULL UNIQUE,
    -- hash of the secret part; never the secret
    secret_hash  TEXT NOT NULL,
    role         TEXT NOT NULL CHECK (role IN ('viewer', 'analyst', 'admin')),
    created_at   TEXT NOT NULL,
    -- the user name of whoever created the key
    created_by   TEXT NOT NULL,
    revoked_at   TEXT,
    last_used_at TEXT
);

CREATE INDEX idx_api_keys_created_at ON api_keys (created_at, id);

CREATE TABLE audit_log (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    timestamp TEXT    NOT NULL,
    actor     TEXT    NOT NULL,
    role      TEXT    NOT NULL,
    method    TEXT    NOT NULL,
    path      TEXT    NOT NULL,
    target    TEXT,
    -- HTTP status of the response
    status    INTEGER NOT NULL CHECK (status BETWEEN 0 AND 65535),
    -- JSON document
    detail    TEXT    NOT NULL,
    client_ip TEXT
);

CREATE INDEX idx_audit_log_timestamp ON audit_log (timestamp DESC, id DESC);
CREATE INDEX idx_audit_log_actor ON audit_log (actor, timestamp DESC, id DESC);
CREATE INDEX idx_audit_log_target ON audit_log (target, timestamp DESC, id DESC);

-- Differential-privacy spending per federation, round and site. site_id '' is the
-- federation as a whole (NULL would not make the key unique).
CREATE TABLE fl_privacy_ledger (
    federation_id    TEXT    NOT NULL,
    round_number     INTEGER NOT NULL,
    site_id          TEXT    NOT NULL DEFAULT '',
    sampling_rate    REAL    NOT NULL,
    noise_multiplier REAL    NOT NULL,
    clip_norm        REAL    NOT NULL,
    epsilon          REAL    NOT NULL,
    delta            REAL    NOT NULL,
    recorded_at      TEXT    NOT NULL,
    PRIMARY KEY (federation_id, round_number, site_id)
);

-- current_fl_round (newest in-progress round) and the clients of a round by name.
CREATE INDEX idx_fl_rounds_status ON fl_rounds (status, round_number);
CREATE INDEX idx_fl_clients_round_name ON fl_clients (round_id, name, id);
