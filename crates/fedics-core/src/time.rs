//! Timestamps on the wire: RFC 3339 in UTC, `YYYY-MM-DDTHH:MM:SS.ffffffZ` (nine fraction
//! digits when the time has sub-microsecond precision). Written and read by hand on the hot
//! path — every event carries several timestamps and chrono's general formatter and parser
//! were a visible share of the pipeline's time — with chrono's RFC 3339 parser as the
//! fallback for any other valid form (offsets, other precisions), so producers are free.

use chrono::{DateTime, Datelike, NaiveDate, NaiveTime, Timelike, Utc};
use serde::{Deserialize, Deserializer, Serializer};

/// Formats `t` in the wire format.
pub fn format(t: &DateTime<Utc>) -> String {
    let mut buf = [0u8; 32];
    let n = write(t, &mut buf);
    // The buffer holds ASCII digits and separators only.
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

fn digits(buf: &mut [u8], mut v: u32, width: usize) {
    for i in (0..width).rev() {
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
    }
}

fn write(t: &DateTime<Utc>, buf: &mut [u8; 32]) -> usize {
    let year = t.year();
    if !(0..=9999).contains(&year) {
        let s = t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
        let n = s.len().min(32);
        buf[..n].copy_from_slice(&s.as_bytes()[..n]);
        return n;
    }
    digits(&mut buf[0..4], year as u32, 4);
    buf[4] = b'-';
    digits(&mut buf[5..7], t.month(), 2);
    buf[7] = b'-';
    digits(&mut buf[8..10], t.day(), 2);
    buf[10] = b'T';
    digits(&mut buf[11..13], t.hour(), 2);
    buf[13] = b':';
    digits(&mut buf[14..16], t.minute(), 2);
    buf[16] = b':';
    digits(&mut buf[17..19], t.second(), 2);
    buf[19] = b'.';
    let nanos = t.nanosecond() % 1_000_000_000;
    let end = if nanos.is_multiple_of(1000) {
        digits(&mut buf[20..26], nanos / 1000, 6);
        26
    } else {
        digits(&mut buf[20..29], nanos, 9);
        29
    };
    buf[end] = b'Z';
    end + 1
}

fn num(b: &[u8]) -> Option<u32> {
    let mut v: u32 = 0;
    for &c in b {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u32::from(c - b'0');
    }
    Some(v)
}

/// Parses the wire format quickly; `None` for anything else.
fn parse_fast(s: &[u8]) -> Option<DateTime<Utc>> {
    if s.len() < 20
        || s[4] != b'-'
        || s[7] != b'-'
        || s[10] != b'T'
        || s[13] != b':'
        || s[16] != b':'
    {
        return None;
    }
    if *s.last()? != b'Z' {
        return None;
    }
    let frac = &s[19..s.len() - 1];
    let nanos = match frac {
        [] => 0,
        [b'.', d @ ..] if !d.is_empty() && d.len() <= 9 => num(d)? * 10u32.pow(9 - d.len() as u32),
        _ => return None,
    };
    let date = NaiveDate::from_ymd_opt(num(&s[0..4])? as i32, num(&s[5..7])?, num(&s[8..10])?)?;
    let time =
        NaiveTime::from_hms_nano_opt(num(&s[11..13])?, num(&s[14..16])?, num(&s[17..19])?, nanos)?;
    Some(date.and_time(time).and_utc())
}

/// Parses any RFC 3339 timestamp into UTC.
pub fn parse(s: &str) -> Result<DateTime<Utc>, chrono::ParseError> {
    match parse_fast(s.as_bytes()) {
        Some(t) => Ok(t),
        None => DateTime::parse_from_rfc3339(s).map(|t| t.with_timezone(&Utc)),
    }
}

/// `#[serde(with = "crate::time::rfc3339")]` for `DateTime<Utc>` fields.
pub mod rfc3339 {
    use super::*;

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        let mut buf = [0u8; 32];
        let n = write(t, &mut buf);
        match std::str::from_utf8(&buf[..n]) {
            Ok(text) => s.serialize_str(text),
            Err(e) => Err(serde::ser::Error::custom(e)),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        parse(&s).map_err(|e| {
            serde::de::Error::custom(format!("expected an RFC 3339 timestamp, found `{s}`: {e}"))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeDelta;

    #[test]
    fn round_trips_and_matches_chrono() {
        let base = DateTime::<Utc>::from_timestamp(1_767_225_600, 0).unwrap_or_default();
        for t in [
            base,
            base + TimeDelta::microseconds(123_456),
            base + TimeDelta::nanoseconds(123_456_789),
            base + TimeDelta::days(4000) + TimeDelta::microseconds(1),
        ] {
            let s = format(&t);
            assert_eq!(parse(&s), Ok(t), "{s}");
            // chrono reads what we write, and we read what chrono writes.
            assert_eq!(
                DateTime::parse_from_rfc3339(&s).map(|x| x.with_timezone(&Utc)),
                Ok(t)
            );
            let c = t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
            assert_eq!(parse(&c), Ok(t), "{c}");
        }
        assert_eq!(
            format(&(base + TimeDelta::microseconds(5))),
            "2026-01-01T00:00:00.000005Z"
        );
    }

    #[test]
    fn accepts_other_rfc3339_forms_and_rejects_garbage() {
        let t = parse("2026-01-01T02:00:00+02:00").expect("offset form");
        assert_eq!(format(&t), "2026-01-01T00:00:00.000000Z");
        assert!(parse("2026-01-01T00:00:00Z").is_ok());
        for bad in [
            "",
            "2026-13-01T00:00:00Z",
            "2026-01-01 00:00:00",
            "yesterday",
            "2026-01-01T00:00:00.Z",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
