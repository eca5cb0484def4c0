//! The rows healthlake writes: one [`RawRecord`] per valid sample, one [`ErrorRecord`] per
//! rejected sample or undecodable message.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

/// Where a Kafka record came from. Commit identity, file names and offset fences derive from it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct KafkaCoordinates {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

impl KafkaCoordinates {
    /// `topic-partition`, the key of offset maps and fences.
    pub fn partition_key(&self) -> String {
        partition_key(&self.topic, self.partition)
    }
}

/// `topic-partition` as the event source mapping names it.
pub fn partition_key(topic: &str, partition: i32) -> String {
    format!("{topic}-{partition}")
}

/// A row of `health_data_raw`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RawRecord {
    pub device_id: String,
    pub user_id: String,
    pub sample_id: String,
    pub data_type: String,
    pub value: f64,
    pub unit: String,
    pub start_date: DateTime<Utc>,
    pub end_date: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub payload_timestamp: DateTime<Utc>,
    pub processing_time: DateTime<Utc>,
    pub source_bundle: Option<String>,
    pub metadata: Option<BTreeMap<String, String>>,
    pub is_synced: bool,
    pub app_version: String,
    pub ingestion_date: NaiveDate,
    pub kafka: KafkaCoordinates,
}

/// What went wrong with a record; the `error_type` column and a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorType {
    /// Not a Confluent-framed Avro value nor JSON, or Avro that does not decode.
    Deserialization,
    /// The writer schema id is unknown to the schema source.
    UnknownSchema,
    /// The writer schema cannot be resolved to the reader schema.
    IncompatibleSchema,
    /// A payload without samples: kept so that every Kafka record lands somewhere.
    EmptyPayload,
    MissingField,
    NegativeValue,
    OutOfRange,
    InvalidTimestamp,
    EndBeforeStart,
    FutureTimestamp,
    /// A valid sample whose window was already closed when it arrived.
    LateRecord,
}

impl ErrorType {
    pub const ALL: [ErrorType; 11] = [
        ErrorType::Deserialization,
        ErrorType::UnknownSchema,
        ErrorType::IncompatibleSchema,
        ErrorType::EmptyPayload,
        ErrorType::MissingField,
        ErrorType::NegativeValue,
        ErrorType::OutOfRange,
        ErrorType::InvalidTimestamp,
        ErrorType::EndBeforeStart,
        ErrorType::FutureTimestamp,
        ErrorType::LateRecord,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorType::Deserialization => "deserialization",
            ErrorType::UnknownSchema => "unknown_schema",
            ErrorType::IncompatibleSchema => "incompatible_schema",
            ErrorType::EmptyPayload => "empty_payload",
            ErrorType::MissingField => "missing_field",
            ErrorType::NegativeValue => "negative_value",
            ErrorType::OutOfRange => "out_of_range",
            ErrorType::InvalidTimestamp => "invalid_timestamp",
            ErrorType::EndBeforeStart => "end_before_start",
            ErrorType::FutureTimestamp => "future_timestamp",
            ErrorType::LateRecord => "late_record",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == text)
    }

    /// Validation failures, as opposed to decoding failures and late data.
    pub fn is_validation(self) -> bool {
        matches!(
            self,
            ErrorType::MissingField
                | ErrorType::NegativeValue
                | ErrorType::OutOfRange
                | ErrorType::InvalidTimestamp
                | ErrorType::EndBeforeStart
                | ErrorType::FutureTimestamp
                | ErrorType::EmptyPayload
        )
    }
}

impl fmt::Display for ErrorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A row of `health_data_errors`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorRecord {
    /// The original bytes (base64 when not UTF-8) or, for one rejected sample of a decoded
    /// payload, that sample with its payload context as JSON.
    pub raw_payload: String,
    pub error_type: ErrorType,
    pub error_message: String,
    pub error_timestamp: DateTime<Utc>,
    pub user_id: Option<String>,
    pub data_type: Option<String>,
    pub sample_id: Option<String>,
    pub processing_time: DateTime<Utc>,
    pub kafka: KafkaCoordinates,
}

impl ErrorRecord {
    pub fn error_date(&self) -> NaiveDate {
        self.error_timestamp.date_naive()
    }
}

/// The `error_message` of a `late_record` row: names the windows that had closed, so backfill
/// knows which aggregates the sample is missing from (the other kinds' windows took it in).
pub fn late_record_message(start: DateTime<Utc>, closed: &[crate::window::Window]) -> String {
    let keys: std::collections::BTreeSet<String> = closed.iter().map(|w| w.key()).collect();
    format!(
        "event time {start} arrived after its window closed ({}); aggregated into the windows still open",
        keys.into_iter().collect::<Vec<_>>().join(", ")
    )
}

/// The closed windows a [`late_record_message`] names (none for any other text).
pub fn late_record_windows(message: &str) -> Vec<crate::window::Window> {
    let Some(start) = message.find("window closed (") else {
        return vec![];
    };
    let rest = &message[start + "window closed (".len()..];
    let Some(end) = rest.find(')') else {
        return vec![];
    };
    rest[..end].split(", ").filter_map(crate::window::Window::from_key).collect()
}

/// What one Kafka record turned into: each of its samples lands in exactly one of the two lists.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RecordOutcome {
    pub raw: Vec<RawRecord>,
    pub errors: Vec<ErrorRecord>,
}

/// A row of one of the aggregate tables; the window kind decides which table and columns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AggregateRow {
    pub user_id: String,
    pub data_type: String,
    pub window: crate::window::Window,
    pub stats: crate::aggregate::AggregateStats,
    pub updated_at: DateTime<Utc>,
}

#[cfg(test)]
mod late_message_tests {
    use super::*;
    use crate::window::{Window, WindowKind};

    #[test]
    fn late_record_message_names_the_closed_windows_and_parses_back() {
        let at: DateTime<Utc> = "2025-10-06T20:00:00Z".parse().unwrap();
        let closed = [Window::containing(WindowKind::Daily, at), Window::containing(WindowKind::Weekly, at)];
        let message = late_record_message(at, &closed);
        let mut parsed = late_record_windows(&message);
        parsed.sort();
        let mut expected = closed.to_vec();
        expected.sort();
        assert_eq!(parsed, expected);
        assert!(late_record_windows("value out of range").is_empty());
    }
}
