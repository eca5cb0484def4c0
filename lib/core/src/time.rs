//! Timestamp parsing and the microsecond representation Iceberg stores.

use chrono::{DateTime, Duration, NaiveDateTime, Utc};

/// Parses an ISO 8601 instant as sent by devices.
///
/// RFC 3339 with an offset is the contract; a timestamp without offset is read as UTC because
/// some older app versions drop the trailing `Z`.
pub fn parse_instant(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    if let Ok(ts) = DateTime::parse_from_rfc3339(text) {
        return Some(ts.with_timezone(&Utc));
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(naive) = NaiveDateTime::parse_from_str(text, format) {
            return Some(naive.and_utc());
        }
    }
    None
}

/// Microseconds since the Unix epoch, Iceberg's `timestamptz` unit.
pub fn to_micros(ts: DateTime<Utc>) -> i64 {
    ts.timestamp_micros()
}

/// The inverse of [`to_micros`]; out-of-range values saturate to the epoch.
pub fn from_micros(micros: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(micros).unwrap_or_default()
}

/// How far one sample may move its partition's event-time progress: its start time, but no
/// further than the Kafka record's timestamp plus the allowed out-of-orderness. A device whose
/// clock runs ahead (or a naive local time read as UTC) keeps its valid sample but cannot drag the
/// watermark past what the broker has seen and so close today's windows early.
pub fn progress_bound(
    start: DateTime<Utc>,
    record_time: DateTime<Utc>,
    max_out_of_orderness: Duration,
) -> DateTime<Utc> {
    start.min(record_time + max_out_of_orderness)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_offsets_and_naive_as_utc() {
        let a = parse_instant("2025-11-17T10:30:45.123Z").unwrap();
        let b = parse_instant("2025-11-17T11:30:45.123+01:00").unwrap();
        let c = parse_instant("2025-11-17T10:30:45.123").unwrap();
        assert_eq!(a, b);
        assert_eq!(a, c);
        assert_eq!(from_micros(to_micros(a)), a);
    }

    #[test]
    fn progress_is_bounded_by_the_record_time() {
        let record = parse_instant("2025-11-17T20:00:00Z").unwrap();
        let ooo = Duration::minutes(10);
        // A phone in UTC+9 that drops the `Z`: 9 h ahead.
        let fast = parse_instant("2025-11-18T05:00:00").unwrap();
        assert_eq!(progress_bound(fast, record, ooo), record + ooo);
        let on_time = parse_instant("2025-11-17T19:58:00Z").unwrap();
        assert_eq!(progress_bound(on_time, record, ooo), on_time);
    }

    #[test]
    fn rejects_garbage() {
        assert!(parse_instant("yesterday").is_none());
        assert!(parse_instant("").is_none());
        assert!(parse_instant("2025-13-45T00:00:00Z").is_none());
    }
}
