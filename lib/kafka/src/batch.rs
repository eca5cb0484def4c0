//! How the Kafka event source mapping cuts the stream into invocations, without any I/O: a batch
//! closes when it holds `BatchSize` records, when `MaximumBatchingWindowInSeconds` has passed since
//! its first record, or when the next record would push the invocation payload over 6 MB (that
//! record then opens the next batch). A batch may hold several partitions, each in offset order
//! (the runner's lanes give it one); the offsets to commit after a successful invocation are one
//! past the last record of each partition.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_lambda_events::event::kafka::KafkaEvent;
use chrono::{DateTime, Utc};
use healthlake_pipeline::events::{EventRecord, build_event};

/// The synchronous invocation payload limit of Lambda.
pub const MAX_PAYLOAD_BYTES: usize = 6 * 1024 * 1024;

/// The mapping's batching settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLimits {
    /// `BatchSize`: 1..=10,000 records.
    pub batch_size: usize,
    /// `MaximumBatchingWindowInSeconds`: how long to gather records after the first one.
    pub batching_window: Duration,
    /// The payload cap: 6 MB on Lambda.
    pub max_payload_bytes: usize,
}

impl Default for BatchLimits {
    /// The mapping's defaults for Kafka sources: 100 records, 500 ms.
    fn default() -> Self {
        Self { batch_size: 100, batching_window: Duration::from_millis(500), max_payload_bytes: MAX_PAYLOAD_BYTES }
    }
}

/// One record as consumed from the broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumedRecord {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub timestamp: DateTime<Utc>,
    pub key: Option<Vec<u8>>,
    pub value: Vec<u8>,
}

impl ConsumedRecord {
    /// An upper bound of the bytes this record adds to the event JSON: key and value in base64 plus
    /// the fixed fields (`topic`, `partition`, `offset`, `timestamp`, `timestampType`, `headers`).
    pub fn payload_bytes(&self) -> usize {
        const FIXED: usize = 192;
        base64_len(self.value.len())
            + self.key.as_ref().map_or(0, |k| base64_len(k.len()))
            + 2 * self.topic.len()
            + FIXED
    }
}

fn base64_len(n: usize) -> usize {
    n.div_ceil(3) * 4
}

/// The event envelope (`eventSource`, `bootstrapServers`, braces) counted once per payload.
const ENVELOPE_BYTES: usize = 256;

/// Why a batch was handed to the function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchClosed {
    Full,
    WindowElapsed,
    PayloadCap,
    /// The runner is stopping or the stream is idle: what was gathered goes now.
    Flushed,
}

/// The records gathered for one invocation.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    records: Vec<ConsumedRecord>,
    payload_bytes: usize,
}

/// What offering a record to a batch did.
#[derive(Debug, PartialEq, Eq)]
pub enum Offer {
    /// Taken; the batch may take more.
    Taken,
    /// Taken, and the batch is now full.
    TakenFull,
    /// Not taken: it would push the payload over the cap. It opens the next batch.
    Refused(Box<ConsumedRecord>),
}

impl Batch {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn records(&self) -> &[ConsumedRecord] {
        &self.records
    }

    /// The estimated payload of the event this batch becomes (an upper bound).
    pub fn payload_bytes(&self) -> usize {
        ENVELOPE_BYTES + self.payload_bytes
    }

    /// Offers the next consumed record. A first record is always taken, even one over the cap on
    /// its own: the invocation then fails and the record goes to the on-failure destination, as
    /// on Lambda.
    pub fn offer(&mut self, record: ConsumedRecord, limits: &BatchLimits) -> Offer {
        let bytes = record.payload_bytes();
        if !self.records.is_empty() && self.payload_bytes() + bytes > limits.max_payload_bytes {
            return Offer::Refused(Box::new(record));
        }
        self.payload_bytes += bytes;
        self.records.push(record);
        if self.records.len() >= limits.batch_size.max(1) { Offer::TakenFull } else { Offer::Taken }
    }

    /// The event the function receives.
    pub fn event(&self, bootstrap_servers: &str) -> KafkaEvent {
        let records: Vec<EventRecord<'_>> = self
            .records
            .iter()
            .map(|r| EventRecord {
                topic: &r.topic,
                partition: r.partition,
                offset: r.offset,
                timestamp: r.timestamp,
                key: r.key.as_deref(),
                value: &r.value,
            })
            .collect();
        let mut event = build_event(&records);
        event.bootstrap_servers = Some(bootstrap_servers.to_string());
        event
    }

    /// Per (topic, partition): the next offset to read, to commit once the batch is done.
    pub fn offsets_to_commit(&self) -> BTreeMap<(String, i32), i64> {
        let mut next: BTreeMap<(String, i32), i64> = BTreeMap::new();
        for r in &self.records {
            let entry = next.entry((r.topic.clone(), r.partition)).or_insert(r.offset + 1);
            *entry = (*entry).max(r.offset + 1);
        }
        next
    }

    /// Per `topic-partition`: first and last offset and timestamp, as the on-failure record's
    /// `KafkaBatchInfo.recordsInfo` describes a batch.
    pub fn records_info(&self) -> BTreeMap<String, PartitionRange> {
        let mut info: BTreeMap<String, PartitionRange> = BTreeMap::new();
        for r in &self.records {
            let key = format!("{}-{}", r.topic, r.partition);
            let range = info.entry(key).or_insert(PartitionRange {
                first_record_offset: r.offset,
                first_record_timestamp: r.timestamp,
                last_record_offset: r.offset,
                last_record_timestamp: r.timestamp,
            });
            if r.offset < range.first_record_offset {
                range.first_record_offset = r.offset;
                range.first_record_timestamp = r.timestamp;
            }
            if r.offset > range.last_record_offset {
                range.last_record_offset = r.offset;
                range.last_record_timestamp = r.timestamp;
            }
        }
        info
    }
}

/// The records of one partition in a batch.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PartitionRange {
    pub first_record_offset: i64,
    pub first_record_timestamp: DateTime<Utc>,
    pub last_record_offset: i64,
    pub last_record_timestamp: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(partition: i32, offset: i64, value_len: usize) -> ConsumedRecord {
        ConsumedRecord {
            topic: "health-data-raw".into(),
            partition,
            offset,
            timestamp: DateTime::from_timestamp(1_763_000_000 + offset, 0).unwrap(),
            key: Some(b"user-0001".to_vec()),
            value: vec![7u8; value_len],
        }
    }

    #[test]
    fn a_batch_is_full_at_batch_size() {
        let limits = BatchLimits { batch_size: 3, ..BatchLimits::default() };
        let mut batch = Batch::new();
        assert_eq!(batch.offer(record(0, 0, 10), &limits), Offer::Taken);
        assert_eq!(batch.offer(record(1, 0, 10), &limits), Offer::Taken);
        assert_eq!(batch.offer(record(0, 1, 10), &limits), Offer::TakenFull);
        assert_eq!(batch.len(), 3);
    }

    #[test]
    fn the_record_that_would_pass_the_payload_cap_opens_the_next_batch() {
        let limits = BatchLimits { batch_size: 10_000, max_payload_bytes: 10_000, ..BatchLimits::default() };
        let mut batch = Batch::new();
        let mut refused = None;
        for offset in 0..100 {
            match batch.offer(record(0, offset, 900), &limits) {
                Offer::Refused(r) => {
                    refused = Some(r);
                    break;
                }
                Offer::Taken => {}
                Offer::TakenFull => panic!("not full by count"),
            }
        }
        let refused = refused.expect("the cap refuses a record");
        assert_eq!(refused.offset, batch.len() as i64, "the refused record is the next one in order");
        assert!(batch.payload_bytes() <= limits.max_payload_bytes);
        // The estimate bounds the real event JSON from above.
        let json = serde_json::to_vec(&batch.event("127.0.0.1:9092")).unwrap();
        assert!(json.len() <= batch.payload_bytes(), "{} > estimate {}", json.len(), batch.payload_bytes());
        // A record larger than the cap on its own still opens a batch.
        let mut alone = Batch::new();
        assert_eq!(alone.offer(record(0, 0, 20_000), &limits), Offer::Taken);
    }

    #[test]
    fn offsets_to_commit_are_one_past_the_last_record_of_each_partition() {
        let limits = BatchLimits::default();
        let mut batch = Batch::new();
        for (p, o) in [(0, 5), (1, 9), (0, 6), (2, 0), (1, 10)] {
            batch.offer(record(p, o, 10), &limits);
        }
        let commits: Vec<(i32, i64)> = batch.offsets_to_commit().into_iter().map(|((_, p), o)| (p, o)).collect();
        assert_eq!(commits, vec![(0, 7), (1, 11), (2, 1)]);
        let info = batch.records_info();
        assert_eq!(info["health-data-raw-1"].first_record_offset, 9);
        assert_eq!(info["health-data-raw-1"].last_record_offset, 10);
    }

    #[test]
    fn the_event_holds_every_partition_in_offset_order() {
        let limits = BatchLimits::default();
        let mut batch = Batch::new();
        for (p, o) in [(3, 1), (0, 4), (3, 2), (0, 5)] {
            batch.offer(record(p, o, 4), &limits);
        }
        let event = batch.event("127.0.0.1:9092");
        assert_eq!(event.bootstrap_servers.as_deref(), Some("127.0.0.1:9092"));
        let offsets: Vec<i64> = event.records["health-data-raw-3"].iter().map(|r| r.offset).collect();
        assert_eq!(offsets, vec![1, 2]);
        let read = healthlake_pipeline::events::records_of(&event);
        assert_eq!(read.len(), 4);
        assert_eq!(read[0].value.as_deref().unwrap(), &[7u8; 4]);
    }
}
