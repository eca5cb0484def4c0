//! The event source mapping's Kafka event: reading its records, and building events the way the
//! mapping shapes them (records keyed by `topic-partition`, key and value base64).

use std::collections::HashMap;

use aws_lambda_events::encodings::MillisecondTimestamp;
use aws_lambda_events::event::kafka::{KafkaEvent, KafkaRecord};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, Utc};
use healthlake_core::KafkaCoordinates;
use healthlake_core::record::partition_key;
use healthlake_state::PartitionOffset;

/// One record of an event, with its value decoded from base64.
#[derive(Debug, Clone)]
pub struct InputRecord {
    pub kafka: KafkaCoordinates,
    /// The record's Kafka timestamp (None when the event carries none): event-time progress is
    /// bounded by it and future skew is judged against it.
    pub timestamp: Option<DateTime<Utc>>,
    /// The value bytes, or why they could not be read from the event.
    pub value: Result<Vec<u8>, String>,
    /// The text the event carried for a value that could not be read (empty otherwise: a read
    /// value's text is not kept twice, see [`InputRecord::encoded_value`]).
    unread_value: String,
}

impl InputRecord {
    /// The value as the event carried it (base64), for error rows. A value that was read is
    /// encoded again, which gives the event's text back: the decoder accepts canonical base64
    /// only.
    pub fn encoded_value(&self) -> String {
        match &self.value {
            Ok(bytes) => BASE64.encode(bytes),
            Err(_) => self.unread_value.clone(),
        }
    }
}

/// All records of an event in (topic, partition, offset) order, duplicates within the event
/// removed (the mapping never sends them, but a hand-made event may).
pub fn records_of(event: &KafkaEvent) -> Vec<InputRecord> {
    let mut out: Vec<InputRecord> = Vec::new();
    for (group, records) in &event.records {
        for r in records {
            let topic = r.topic.clone().unwrap_or_else(|| topic_of_group(group, r.partition));
            let value = match &r.value {
                None => Err("record has no value".to_string()),
                Some(v) => BASE64.decode(v).map_err(|e| format!("value is not base64: {e}")),
            };
            let unread_value = if value.is_err() { r.value.clone().unwrap_or_default() } else { String::new() };
            out.push(InputRecord {
                kafka: KafkaCoordinates { topic, partition: r.partition as i32, offset: r.offset },
                // Kafka writes -1 for "no timestamp"; the event then holds the epoch or earlier.
                timestamp: Some(r.timestamp.0).filter(|ts| *ts > DateTime::UNIX_EPOCH),
                value,
                unread_value,
            });
        }
    }
    out.sort_by(|a, b| a.kafka.cmp(&b.kafka));
    out.dedup_by(|a, b| a.kafka == b.kafka);
    out
}

/// The highest offset of each partition in a batch.
pub(crate) fn last_offsets(records: &[InputRecord]) -> Vec<PartitionOffset> {
    let mut last: std::collections::BTreeMap<String, i64> = std::collections::BTreeMap::new();
    for r in records {
        let entry = last.entry(r.kafka.partition_key()).or_insert(r.kafka.offset);
        *entry = (*entry).max(r.kafka.offset);
    }
    last.into_iter().map(|(partition, offset)| PartitionOffset { partition, offset }).collect()
}

/// The offsets a batch carries, per partition, for the logs: `topic-0:120-319 topic-3:7-7`
/// (coordinates only: no keys or values, which hold user ids and health data).
pub(crate) fn offset_ranges(records: &[InputRecord]) -> String {
    let mut ranges: std::collections::BTreeMap<String, (i64, i64)> = std::collections::BTreeMap::new();
    for r in records {
        let entry = ranges.entry(r.kafka.partition_key()).or_insert((r.kafka.offset, r.kafka.offset));
        *entry = (entry.0.min(r.kafka.offset), entry.1.max(r.kafka.offset));
    }
    ranges.iter().map(|(partition, (first, last))| format!("{partition}:{first}-{last}")).collect::<Vec<_>>().join(" ")
}

/// The mapping names groups `topic-partition`; recover the topic when a record omits it.
fn topic_of_group(group: &str, partition: i64) -> String {
    group.strip_suffix(&format!("-{partition}")).unwrap_or(group).to_string()
}

/// A record to put into an event.
#[derive(Debug, Clone)]
pub struct EventRecord<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    pub timestamp: DateTime<Utc>,
    pub key: Option<&'a [u8]>,
    pub value: &'a [u8],
}

/// Builds an event as the self-managed Kafka event source mapping sends it.
pub fn build_event(records: &[EventRecord<'_>]) -> KafkaEvent {
    let mut groups: HashMap<String, Vec<KafkaRecord>> = HashMap::new();
    for r in records {
        let mut record = KafkaRecord::default();
        record.topic = Some(r.topic.to_string());
        record.partition = i64::from(r.partition);
        record.offset = r.offset;
        record.timestamp = MillisecondTimestamp(r.timestamp);
        record.timestamp_type = Some("CREATE_TIME".to_string());
        record.key = r.key.map(|k| BASE64.encode(k));
        record.value = Some(BASE64.encode(r.value));
        groups.entry(partition_key(r.topic, r.partition)).or_default().push(record);
    }
    let mut event = KafkaEvent::default();
    event.event_source = Some("SelfManagedKafka".to_string());
    event.bootstrap_servers = Some("127.0.0.1:9092".to_string());
    event.records = groups;
    event
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_json_round_trips_and_records_come_back_in_order() {
        let ts: DateTime<Utc> = "2025-11-17T10:00:00Z".parse().unwrap();
        let records = [
            EventRecord { topic: "t", partition: 1, offset: 5, timestamp: ts, key: Some(b"u1"), value: b"{}" },
            EventRecord { topic: "t", partition: 0, offset: 9, timestamp: ts, key: None, value: b"\x00\x01" },
            EventRecord { topic: "t", partition: 1, offset: 4, timestamp: ts, key: None, value: b"x" },
        ];
        let event = build_event(&records);
        let json = serde_json::to_string(&event).unwrap();
        assert!(json.contains("\"t-1\"") && json.contains("\"eventSource\":\"SelfManagedKafka\""), "{json}");
        let parsed: KafkaEvent = serde_json::from_str(&json).unwrap();
        assert_eq!(parsed, event);
        let read = records_of(&parsed);
        let coords: Vec<(i32, i64)> = read.iter().map(|r| (r.kafka.partition, r.kafka.offset)).collect();
        assert_eq!(coords, vec![(0, 9), (1, 4), (1, 5)]);
        assert_eq!(read[0].value.as_deref().unwrap(), b"\x00\x01");
        assert_eq!(read[0].timestamp, Some(ts));
        let carried = parsed.records["t-0"][0].value.clone().unwrap();
        assert_eq!(read[0].encoded_value(), carried, "error rows get the event's text back");
    }

    #[test]
    fn bad_base64_is_reported_not_dropped() {
        let json = r#"{"eventSource":"aws:kafka","records":{"t-0":[{"topic":"t","partition":0,"offset":1,
            "timestamp":1700000000000,"timestampType":"CREATE_TIME","key":null,"value":"!!!","headers":[]}]}}"#;
        let event: KafkaEvent = serde_json::from_str(json).unwrap();
        let read = records_of(&event);
        assert_eq!(read.len(), 1);
        assert!(read[0].value.is_err());
        assert_eq!(read[0].encoded_value(), "!!!");
        assert_eq!(read[0].timestamp, Some("2023-11-14T22:13:20Z".parse().unwrap()));
    }

    mod fuzz {
        use std::collections::BTreeSet;

        use proptest::prelude::*;
        use serde_json::{Value, json};

        use super::*;

        /// A record as an event may carry it: Kafka's own ranges for partitions (an i32 on the
        /// wire), whole-millisecond timestamps (see below), anything for the rest, values
        /// base64 or not.
        fn record_json() -> impl Strategy<Value = Value> {
            let timestamp = prop_oneof![
                (0i64..4_102_444_800_000).prop_map(Value::from),
                any::<i64>().prop_map(Value::from),
                Just(Value::from("soon")),
            ];
            let value = prop::option::of(prop_oneof![
                prop::collection::vec(any::<u8>(), 0..64).prop_map(|b| BASE64.encode(b)),
                ".{0,24}",
            ]);
            (
                prop::option::of("[a-z.-]{0,8}"),
                prop_oneof![0i64..4, any::<i32>().prop_map(i64::from)],
                prop_oneof![0i64..8, any::<i64>()],
                timestamp,
                value,
            )
                .prop_map(|(topic, partition, offset, timestamp, value)| {
                    json!({"topic": topic, "partition": partition, "offset": offset, "timestamp": timestamp,
                        "timestampType": "CREATE_TIME", "key": null, "value": value, "headers": []})
                })
        }

        fn event_json() -> impl Strategy<Value = Vec<u8>> {
            prop::collection::btree_map("[a-z]{0,3}-[0-9]{1,2}", prop::collection::vec(record_json(), 0..6), 0..4)
                .prop_map(|groups| {
                    serde_json::to_vec(&json!({"eventSource": "aws:kafka", "records": groups})).expect("serializes")
                })
        }

        /// `records_of` over whatever the runtime managed to parse: every distinct coordinate
        /// once, in order, and each value its bytes or a reason for its error row.
        fn check_records(event: &KafkaEvent) -> Result<(), TestCaseError> {
            let mut distinct = BTreeSet::new();
            let mut sent = std::collections::HashMap::new();
            for (group, records) in &event.records {
                for r in records {
                    let topic = r.topic.clone().unwrap_or_else(|| topic_of_group(group, r.partition));
                    let coordinates = (topic, r.partition as i32, r.offset);
                    sent.entry(coordinates.clone()).or_insert_with(Vec::new).push(r.value.clone());
                    distinct.insert(coordinates);
                }
            }
            let read = records_of(event);
            prop_assert_eq!(read.len(), distinct.len());
            prop_assert!(read.windows(2).all(|w| w[0].kafka < w[1].kafka));
            for r in &read {
                let key = (r.kafka.topic.clone(), r.kafka.partition, r.kafka.offset);
                let values = &sent[&key];
                match &r.value {
                    Ok(bytes) => {
                        prop_assert!(values.iter().flatten().any(|v| BASE64.decode(v).ok().as_ref() == Some(bytes)));
                        // The text error rows keep is the event's own.
                        prop_assert!(values.iter().flatten().any(|v| *v == r.encoded_value()));
                    }
                    Err(reason) => prop_assert!(!reason.is_empty()),
                }
            }
            Ok(())
        }

        proptest! {
            #[test]
            fn any_event_yields_each_record_once_with_its_value_or_a_reason(json in event_json()) {
                // Values the runtime refuses (a timestamp out of range) never reach the handler.
                if let Ok(event) = serde_json::from_slice::<KafkaEvent>(&json) {
                    check_records(&event)?;
                }
            }
        }

        /// aws_lambda_events asserts (panics) on a fractional millisecond timestamp while the
        /// runtime deserializes the event, outside lambda_runtime's panic guard. The mapping
        /// sends whole milliseconds; a hand-made event does not have to. This pins the upstream
        /// behaviour so the day it changes is noticed.
        #[test]
        #[should_panic(expected = "assertion `left == right` failed")]
        fn a_fractional_timestamp_panics_inside_aws_lambda_events() {
            let json = r#"{"eventSource":"aws:kafka","records":{"t-0":[{"topic":"t","partition":0,"offset":1,
                "timestamp":1700000000000.5,"timestampType":"CREATE_TIME","key":null,"value":"","headers":[]}]}}"#;
            let _ = serde_json::from_str::<KafkaEvent>(json);
        }
    }
}
