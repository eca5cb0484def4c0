//! Which Kafka records a table holds, by its lineage columns (`kafka_topic`, `kafka_partition`,
//! `kafka_offset`): how a replay tells the records the stream applied from those it skipped,
//! whatever the table's committed offset map says.

use std::collections::BTreeSet;

use arrow_array::Array;
use arrow_array::cast::AsArray;
use arrow_array::types::{Int32Type, Int64Type};
use futures::TryStreamExt;
use healthlake_core::KafkaCoordinates;
use iceberg::expr::{Predicate, Reference};
use iceberg::spec::Datum;
use iceberg::table::Table;

use crate::LakeError;

/// Offsets `first..=last` of one topic-partition.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct OffsetRange {
    pub topic: String,
    pub partition: i32,
    pub first: i64,
    pub last: i64,
}

/// The coordinates within `ranges` that rows of `table` carry, as of `snapshot_id` (the current
/// snapshot when `None`). The filter lets the scan skip files by their offset statistics.
pub async fn coordinates_present(
    table: &Table,
    ranges: &[OffsetRange],
    snapshot_id: Option<i64>,
) -> Result<BTreeSet<KafkaCoordinates>, LakeError> {
    let mut present = BTreeSet::new();
    let Some(filter) = ranges.iter().map(range_filter).reduce(Predicate::or) else {
        return Ok(present);
    };
    if table.metadata().current_snapshot().is_none() {
        return Ok(present);
    }
    let mut scan = table.scan().select(["kafka_topic", "kafka_partition", "kafka_offset"]).with_filter(filter);
    if let Some(id) = snapshot_id {
        scan = scan.snapshot_id(id);
    }
    let mut batches = scan.build()?.to_arrow().await?;
    while let Some(batch) = batches.try_next().await? {
        let (topics, partitions, offsets) = (
            batch.column(0).as_string::<i32>(),
            batch.column(1).as_primitive::<Int32Type>(),
            batch.column(2).as_primitive::<Int64Type>(),
        );
        for i in 0..batch.num_rows() {
            if topics.is_null(i) || partitions.is_null(i) || offsets.is_null(i) {
                continue;
            }
            present.insert(KafkaCoordinates {
                topic: topics.value(i).to_string(),
                partition: partitions.value(i),
                offset: offsets.value(i),
            });
        }
    }
    // Row-group filtering is coarse: keep only what the ranges ask for.
    present.retain(|c| {
        ranges
            .iter()
            .any(|r| r.topic == c.topic && r.partition == c.partition && (r.first..=r.last).contains(&c.offset))
    });
    Ok(present)
}

fn range_filter(range: &OffsetRange) -> Predicate {
    Reference::new("kafka_topic")
        .equal_to(Datum::string(&range.topic))
        .and(Reference::new("kafka_partition").equal_to(Datum::int(range.partition)))
        .and(Reference::new("kafka_offset").greater_than_or_equal_to(Datum::long(range.first)))
        .and(Reference::new("kafka_offset").less_than_or_equal_to(Datum::long(range.last)))
}
