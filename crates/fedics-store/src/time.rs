//! The stored time format: UTC, RFC 3339, six fractional digits, `Z`; always 27 characters,
//! so text order is time order.

use chrono::{DateTime, Datelike, SecondsFormat, Utc};

use crate::StoreError;

/// Length of every stored timestamp.
pub(crate) const TS_LEN: usize = 27;

/// Formats a time for storage (truncated to microseconds).
pub(crate) fn fmt(
    op: &'static str,
    field: &'static str,
    t: DateTime<Utc>,
) -> Result<String, StoreError> {
    if !(0..=9999).contains(&t.year()) {
        return Err(StoreError::Encode {
            op,
            field,
            message: format!("{t} is outside years 0..=9999"),
        });
    }
    let s = t.to_rfc3339_opts(SecondsFormat::Micros, true);
    debug_assert_eq!(s.len(), TS_LEN, "{s}");
    Ok(s)
}

/// Parses a stored time.
pub(crate) fn parse(
    op: &'static str,
    column: &'static str,
    s: &str,
) -> Result<DateTime<Utc>, StoreError> {
    fedics_core::time::parse(s).map_err(|e| StoreError::decode(op, column, format!("{s:?}: {e}")))
}

/// Truncates a time to what the store keeps (microseconds).
pub fn truncate(t: DateTime<Utc>) -> DateTime<Utc> {
    use chrono::Timelike;
    t.with_nanosecond(t.nanosecond() / 1_000 * 1_000)
        .unwrap_or(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_width_and_ordered() {
        let a = DateTime::parse_from_rfc3339("2024-05-01T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let b = a + chrono::Duration::nanoseconds(1_500);
        let c = a + chrono::Duration::seconds(1);
        let (sa, sb, sc) = (
            fmt("t", "a", a).unwrap(),
            fmt("t", "b", b).unwrap(),
            fmt("t", "c", c).unwrap(),
        );
        assert_eq!(sa, "2024-05-01T12:00:00.000000Z");
        assert_eq!(sb, "2024-05-01T12:00:00.000001Z");
        assert!(sa < sb && sb < sc);
        assert_eq!(parse("t", "b", &sb).unwrap(), truncate(b));
        let far = chrono::NaiveDate::from_ymd_opt(10_000, 1, 1)
            .unwrap()
            .and_hms_opt(0, 0, 0)
            .unwrap()
            .and_utc();
        assert!(fmt("t", "far", far).is_err());
    }
}
