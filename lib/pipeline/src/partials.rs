//! A batch's valid samples as pre-combined partial aggregates for the accumulator store, and the
//! samples the store refused because their window had closed (late rows); shared by ingest and
//! replay.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use healthlake_core::record::{ErrorRecord, ErrorType, RawRecord, late_record_message};
use healthlake_core::{KafkaCoordinates, Window, WindowKind};
use healthlake_state::{AccumulatorKey, AccumulatorUpdate, PartitionContribution, SampleRef};

use crate::decoding::Processed;
use crate::metrics;

/// The accumulator updates of the valid samples, pre-combined per (user, type, window) and fence
/// key. `fence_key` names the offset fence a record's samples are applied under (the record's
/// topic-partition for ingest).
pub(crate) fn accumulator_updates(
    processed: &[Processed],
    fence_key: impl Fn(&KafkaCoordinates) -> String,
) -> Vec<AccumulatorUpdate> {
    let mut updates: BTreeMap<AccumulatorKey, Vec<(String, PartitionContribution)>> = BTreeMap::new();
    for p in processed {
        // A record's samples share its coordinates: one fence key per record, not per sample.
        let Some(fence) = p.raw.first().map(|raw| fence_key(&raw.kafka)) else {
            continue;
        };
        for (index, raw) in p.raw.iter().enumerate() {
            let sample = SampleRef { partition: fence.clone(), offset: raw.kafka.offset, index: index as u32 };
            for kind in WindowKind::ALL {
                let key = AccumulatorKey {
                    user_id: raw.user_id.clone(),
                    data_type: raw.data_type.clone(),
                    window: Window::containing(kind, raw.start_date),
                };
                let contributions = updates.entry(key).or_default();
                let at = match contributions.iter().position(|(partition, _)| *partition == sample.partition) {
                    Some(at) => at,
                    None => {
                        contributions.push((sample.partition.clone(), PartitionContribution::default()));
                        contributions.len() - 1
                    }
                };
                contributions[at].1.add(sample.clone(), raw.start_date, raw.value);
            }
        }
    }
    updates
        .into_iter()
        .map(|(key, mut contributions)| {
            contributions.sort_by(|a, b| a.0.cmp(&b.0));
            AccumulatorUpdate { key, contributions }
        })
        .collect()
}

/// The closed windows of each late sample, counted in `late_records`.
pub(crate) fn late_samples(refused: Vec<(AccumulatorKey, SampleRef)>) -> BTreeMap<SampleRef, Vec<Window>> {
    counted_by_kind(windows_by_sample(refused), metrics::record_late)
}

/// Records, per window kind, how many samples met a window of that kind.
fn counted_by_kind(
    by_sample: BTreeMap<SampleRef, Vec<Window>>,
    record: fn(WindowKind, u64),
) -> BTreeMap<SampleRef, Vec<Window>> {
    for kind in WindowKind::ALL {
        let n = by_sample.values().filter(|ws| ws.iter().any(|w| w.kind == kind)).count();
        if n > 0 {
            record(kind, n as u64);
        }
    }
    by_sample
}

/// A sample whose window(s) had closed: kept whole in the errors table so backfill can fold it in.
pub(crate) fn late_row(raw: RawRecord, windows: &[Window], now: DateTime<Utc>) -> ErrorRecord {
    ErrorRecord {
        raw_payload: serde_json::to_string(&raw).expect("raw rows serialize"),
        error_type: ErrorType::LateRecord,
        error_message: late_record_message(raw.start_date, windows),
        error_timestamp: now,
        user_id: Some(raw.user_id),
        data_type: Some(raw.data_type),
        sample_id: Some(raw.sample_id),
        processing_time: now,
        kafka: raw.kafka,
    }
}

/// The windows that refused each sample (closed, or whose statistics would not stay finite).
pub(crate) fn windows_by_sample(refused: Vec<(AccumulatorKey, SampleRef)>) -> BTreeMap<SampleRef, Vec<Window>> {
    let mut by_sample: BTreeMap<SampleRef, Vec<Window>> = BTreeMap::new();
    for (key, sample) in refused {
        by_sample.entry(sample).or_default().push(key.window);
    }
    by_sample
}

/// The samples whose merge was refused as non-finite, with their windows; counted as
/// `aggregation_errors` per window kind.
pub(crate) fn overflowing_samples(refused: Vec<(AccumulatorKey, SampleRef)>) -> BTreeMap<SampleRef, Vec<Window>> {
    counted_by_kind(windows_by_sample(refused), metrics::record_aggregation_errors)
}

/// A sample whose merge would have made a window's statistics non-finite: an error row, and the
/// windows keep what they had.
pub(crate) fn overflow_row(raw: RawRecord, windows: &[Window], now: DateTime<Utc>) -> ErrorRecord {
    let keys: std::collections::BTreeSet<String> = windows.iter().map(Window::key).collect();
    ErrorRecord {
        error_type: ErrorType::OutOfRange,
        error_message: format!(
            "value {:e} would make the statistics of {} non-finite; left out of those windows",
            raw.value,
            keys.into_iter().collect::<Vec<_>>().join(", ")
        ),
        ..late_row(raw, windows, now)
    }
}

/// The error row of a sample a merge refused, if it did: overflowing before late, so that a
/// sample lands in one error row whatever the reasons.
pub(crate) fn refused_row(
    raw: &RawRecord,
    sample: &SampleRef,
    late: &BTreeMap<SampleRef, Vec<Window>>,
    overflowing: &BTreeMap<SampleRef, Vec<Window>>,
    now: DateTime<Utc>,
) -> Option<ErrorRecord> {
    match (overflowing.get(sample), late.get(sample)) {
        (Some(windows), _) => Some(overflow_row(raw.clone(), windows, now)),
        (None, Some(windows)) => Some(late_row(raw.clone(), windows, now)),
        (None, None) => None,
    }
}
