//! Turning generated records into the deliveries an event source mapping would make: batches
//! holding records of several partitions, in per-partition order, some delivered twice and some
//! redelivered regrouped (a second half plus the next batch's first half).

use aws_lambda_events::event::kafka::KafkaEvent;
use healthlake_core::KafkaCoordinates;
use healthlake_core::generate::ProducedRecord;

use crate::events::{EventRecord, build_event};

/// Records with the offsets the broker gave them, in production order.
pub fn assign_offsets(topic: &str, produced: Vec<ProducedRecord>) -> Vec<(KafkaCoordinates, ProducedRecord)> {
    let mut next: std::collections::HashMap<i32, i64> = std::collections::HashMap::new();
    produced
        .into_iter()
        .map(|r| {
            let offset = next.entry(r.partition).or_insert(0);
            let coords = KafkaCoordinates { topic: topic.to_string(), partition: r.partition, offset: *offset };
            *offset += 1;
            (coords, r)
        })
        .collect()
}

/// How a delivery relates to the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    First,
    Duplicate,
    Regrouped,
}

/// The deliveries, in order. Every `duplicate_every`-th batch is delivered twice and every
/// `regroup_every`-th batch's second half is redelivered together with the next batch's first
/// half (0 disables either).
pub fn deliveries(
    records: &[(KafkaCoordinates, ProducedRecord)],
    batch_size: usize,
    duplicate_every: usize,
    regroup_every: usize,
) -> Vec<(Delivery, KafkaEvent)> {
    let batches: Vec<&[(KafkaCoordinates, ProducedRecord)]> = records.chunks(batch_size.max(1)).collect();
    let event = |slice: &[&(KafkaCoordinates, ProducedRecord)]| {
        let records: Vec<EventRecord<'_>> = slice
            .iter()
            .map(|(c, r)| EventRecord {
                topic: &c.topic,
                partition: c.partition,
                offset: c.offset,
                timestamp: r.timestamp,
                key: Some(r.key.as_bytes()),
                value: &r.value,
            })
            .collect();
        build_event(&records)
    };
    let mut out = Vec::new();
    for (k, batch) in batches.iter().enumerate() {
        let all: Vec<_> = batch.iter().collect();
        out.push((Delivery::First, event(&all)));
        if duplicate_every > 0 && k % duplicate_every == duplicate_every - 1 {
            out.push((Delivery::Duplicate, event(&all)));
        }
        if regroup_every > 0 && k % regroup_every == regroup_every - 1 && k + 1 < batches.len() {
            let next = batches[k + 1];
            let regrouped: Vec<_> = batch[batch.len() / 2..].iter().chain(next[..next.len() / 2].iter()).collect();
            out.push((Delivery::Regrouped, event(&regrouped)));
        }
    }
    out
}
