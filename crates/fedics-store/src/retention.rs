//! Retention: raw material (flow records, classifications, audit records) is deleted after
//! a configured age; alerts, their sources, their flow ids and predictions are kept.

use chrono::{DateTime, Duration, Utc};

use crate::{Store, StoreError, on_engine, time};

/// How long each kind of record is kept; `None` keeps it forever.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Retention {
    /// Flow records (by `ts_end`). Alerts keep the ids of the flows they cover.
    pub flows: Option<Duration>,
    /// Classifications (by `timestamp`).
    pub classifications: Option<Duration>,
    /// Audit records (by `timestamp`).
    pub audit: Option<Duration>,
}

/// Rows deleted by one [`Store::apply_retention`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct RetentionReport {
    pub flows: u64,
    pub classifications: u64,
    pub audit: u64,
}

impl Store {
    /// Deletes what is older than the retention periods, relative to `now`.
    pub async fn apply_retention(
        &self,
        now: DateTime<Utc>,
        r: &Retention,
    ) -> Result<RetentionReport, StoreError> {
        const OP: &str = "apply_retention";
        let mut report = RetentionReport::default();
        if let Some(age) = r.flows {
            let cutoff = time::fmt(OP, "flows cutoff", now - age)?;
            report.flows = on_engine!(self, |DB, _pool, writer, _begin| {
                sqlx::query("DELETE FROM flows WHERE ts_end < $1")
                    .bind(&cutoff)
                    .execute(writer)
                    .await
                    .map_err(StoreError::sqlx("apply_retention: flows"))?
                    .rows_affected()
            });
        }
        if let Some(age) = r.classifications {
            let cutoff = time::fmt(OP, "classifications cutoff", now - age)?;
            report.classifications = on_engine!(self, |DB, _pool, writer, _begin| {
                sqlx::query("DELETE FROM classifications WHERE timestamp < $1")
                    .bind(&cutoff)
                    .execute(writer)
                    .await
                    .map_err(StoreError::sqlx("apply_retention: classifications"))?
                    .rows_affected()
            });
        }
        if let Some(age) = r.audit {
            report.audit = self.delete_audit_before(now - age).await?;
        }
        Ok(report)
    }
}
