-- Retention deletes flow records and classifications by age (see src/retention.rs).
CREATE INDEX idx_flows_ts_end ON flows (ts_end);
CREATE INDEX idx_classifications_timestamp ON classifications (timestamp);
