//! Replay of a batch the event source mapping gave up on and stored in its on-failure
//! destination, applied exactly once to raw, errors and the accumulators.
//!
//! The stream has moved on: the tables' committed offsets are past the batch, and the offset
//! fences of windows that later batches touched are too, while those of other windows are not.
//! Neither can say what the batch did, so replay goes by the records themselves:
//! 1. decode and validate as ingest does (strict mode fails here, before any effect);
//! 2. find the batch's records that raw or errors already hold (lineage columns, as the tables
//!    were before this batch's own replay commits): the stream applied those, they are skipped;
//! 3. merge the others' samples under a fence key of their own (`replay:<topic-partition>:<first>-
//!    <last>`), which a rerun finds set, so the stream's fences are not involved; closed windows
//!    refuse samples, which become late rows, and the report names the windows to backfill;
//! 4. append their raw rows, then their error rows, in snapshots marked with the batch id that
//!    carry the committed offset map forward unchanged. A table holding that mark is not
//!    appended to again.
//!
//! A crash or failure between any two steps leaves a state a rerun completes to the same result:
//! the merge is fenced, and a table's replay commit is all or nothing and found by its mark.
//! Watermarks are left alone: later batches moved them already, and refreshing a partition's
//! progress with old event times could make an idle partition hold the watermark back again.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use aws_lambda_events::event::kafka::KafkaEvent;
use chrono::{DateTime, NaiveDate, Utc};
use healthlake_core::record::{ErrorRecord, ErrorType, RawRecord};
use healthlake_core::{KafkaCoordinates, Window, WindowKind};
use healthlake_lake::{
    AppendReport, DataFileSink, LakeError, Lakehouse, OffsetRange, TableKind, coordinates_present, replay_snapshot,
    rows,
};
use healthlake_state::{AccumulatorStore, SampleRef};
use serde::Serialize;

use crate::Clock;
use crate::config::Settings;
use crate::decoding::{BatchDecoder, Processed};
use crate::events::{last_offsets, records_of};
use crate::ingest::IngestError;
use crate::partials::{accumulator_updates, late_samples, overflowing_samples, refused_row};
use crate::schema_source::SchemaSource;

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("stored batch: {0}")]
    Input(String),
    #[error(transparent)]
    Apply(#[from] IngestError),
}

impl From<LakeError> for ReplayError {
    fn from(e: LakeError) -> Self {
        ReplayError::Apply(e.into())
    }
}

impl ReplayError {
    /// Whether running the replay again may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            ReplayError::Input(_) => false,
            ReplayError::Apply(e) => e.is_retryable(),
        }
    }
}

/// A document of the on-failure destination (Lambda's invocation record for Kafka sources with
/// the event as `payload`), or a bare Kafka event.
#[derive(Debug, Clone)]
pub struct StoredBatch {
    pub event: KafkaEvent,
    /// Why the batch failed, when the document says (`errorType: errorMessage`).
    pub failure: Option<String>,
}

impl StoredBatch {
    pub fn parse(json: &str) -> Result<Self, ReplayError> {
        let input = |e: serde_json::Error| ReplayError::Input(e.to_string());
        let mut document: serde_json::Value = serde_json::from_str(json).map_err(input)?;
        let Some(payload) = document.get_mut("payload").map(serde_json::Value::take) else {
            return Ok(Self { event: serde_json::from_value(document).map_err(input)?, failure: None });
        };
        let context = &document["responseContext"];
        let failure = match (context["functionError"].as_str(), context["errorMessage"].as_str()) {
            (None, None) => None,
            (kind, message) => Some(format!("{}: {}", kind.unwrap_or("error"), message.unwrap_or(""))),
        };
        // Destinations that store the payload as a string hold the event's JSON text.
        let event = match payload {
            serde_json::Value::String(text) => serde_json::from_str(&text).map_err(input)?,
            value => serde_json::from_value(value).map_err(input)?,
        };
        Ok(Self { event, failure })
    }
}

/// The closed windows that refused replayed samples, and the backfill that folds them in.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BackfillHint {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub kinds: Vec<WindowKind>,
    pub windows: Vec<String>,
    pub command: String,
}

impl BackfillHint {
    fn of<'a>(windows: impl Iterator<Item = &'a Window>) -> Option<Self> {
        let windows: BTreeSet<Window> = windows.copied().collect();
        let from = windows.iter().map(|w| w.start_date).min()?;
        let to = windows.iter().map(|w| w.end_date()).max()?;
        let kinds: Vec<WindowKind> = windows.iter().map(|w| w.kind).collect::<BTreeSet<_>>().into_iter().collect();
        let kind_list: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
        let command =
            format!("healthlake backfill --from {from} --to {to} --kind {} --include-late", kind_list.join(","));
        Some(Self { from, to, kinds, windows: windows.iter().map(Window::key).collect(), command })
    }
}

/// What a replay did (or, on a dry run, would do).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplayReport {
    /// `topic-partition:first-last`, comma-separated: marks the replay's snapshots.
    pub batch_id: String,
    pub dry_run: bool,
    pub records: usize,
    /// Records raw or errors held before the replay: the stream applied them.
    pub records_already_applied: usize,
    pub records_replayed: usize,
    /// Samples merged, once per window kind that took them (as in ingest's report).
    pub samples_aggregated: usize,
    /// Rows written (on a dry run: to be written); 0 for a table the replay had committed to.
    pub raw_rows: u64,
    pub error_rows: u64,
    /// The error rows by type (none for a table the replay had committed to).
    pub errors_by_type: BTreeMap<ErrorType, u64>,
    /// Tables a previous run of this replay had already committed to.
    pub tables_already_replayed: Vec<String>,
    /// Set when samples met closed windows (on a dry run: predicted from the close markers).
    pub backfill: Option<BackfillHint>,
}

pub struct ReplayHandler {
    decoder: BatchDecoder,
    lake: Arc<Lakehouse>,
    store: Arc<dyn AccumulatorStore>,
    clock: Clock,
}

/// One table before the replay: the batch's records it held, and whether the replay committed.
struct TableBefore {
    present: BTreeSet<KafkaCoordinates>,
    replayed: bool,
}

impl ReplayHandler {
    pub fn new(
        settings: &Settings,
        schemas: Box<dyn SchemaSource>,
        lake: Arc<Lakehouse>,
        store: Arc<dyn AccumulatorStore>,
        clock: Clock,
    ) -> Self {
        Self { decoder: BatchDecoder::new(settings, schemas), lake, store, clock }
    }

    #[tracing::instrument(skip_all)]
    pub async fn handle(&self, event: &KafkaEvent, dry_run: bool) -> Result<ReplayReport, ReplayError> {
        let records = records_of(event);
        let ranges = offset_ranges(records.iter().map(|r| &r.kafka));
        let mut report =
            ReplayReport { batch_id: batch_id(&ranges), dry_run, records: records.len(), ..Default::default() };
        if records.is_empty() {
            return Ok(report);
        }
        let now = (self.clock)();
        let processed = self.decoder.decode(&records, now).await?;

        let raw = self.before(TableKind::Raw, &ranges, &report.batch_id).await?;
        let errors = self.before(TableKind::Errors, &ranges, &report.batch_id).await?;
        let applied = |k: &KafkaCoordinates| raw.present.contains(k) || errors.present.contains(k);
        let plan: Vec<Processed> =
            records.iter().zip(processed).filter(|(r, _)| !applied(&r.kafka)).map(|(_, p)| p).collect();
        report.records_replayed = plan.len();
        report.records_already_applied = records.len() - plan.len();

        let fence_key = |k: &KafkaCoordinates| replay_fence_key(&ranges, k);
        // A dry run cannot know which merges would overflow (that needs the merge itself); the
        // sanity limits make them all but impossible.
        let (late, overflowing) = if dry_run {
            (self.predicted_late(&plan, &fence_key).await?, BTreeMap::new())
        } else {
            let merge = self.store.merge(accumulator_updates(&plan, fence_key)).await.map_err(IngestError::from)?;
            report.samples_aggregated = merge.samples_applied;
            (late_samples(merge.late), overflowing_samples(merge.overflowing))
        };
        report.backfill = BackfillHint::of(late.values().flatten());
        let (raw_rows, error_rows) = split(plan, &late, &overflowing, &fence_key, now);

        // Raw first, then errors; a table this replay committed to is never appended to again.
        let tables =
            [(TableKind::Raw, &raw, Rows::Raw(&raw_rows)), (TableKind::Errors, &errors, Rows::Errors(&error_rows))];
        for (kind, before, rows) in tables {
            let mut ours = !before.replayed;
            if ours && !dry_run && !rows.is_empty() {
                ours = self.append(kind, &report.batch_id, rows).await?.is_some();
            }
            match (ours, kind) {
                (false, _) => report.tables_already_replayed.push(self.lake.table_name(kind).to_string()),
                (true, TableKind::Raw) => report.raw_rows = rows.len() as u64,
                (true, _) => {
                    report.error_rows = rows.len() as u64;
                    for row in &error_rows {
                        *report.errors_by_type.entry(row.error_type).or_default() += 1;
                    }
                }
            }
        }
        if !dry_run {
            // The batch that failed kept its partitions pending (holding the watermark); it is
            // applied now.
            self.store.note_applied(&last_offsets(&records)).await.map_err(IngestError::from)?;
        }
        tracing::info!(
            replayed = report.records_replayed,
            raw = report.raw_rows,
            errors = report.error_rows,
            "replayed"
        );
        Ok(report)
    }

    /// The batch's records `kind` held before this replay committed to it (if it did).
    async fn before(&self, kind: TableKind, ranges: &[OffsetRange], batch_id: &str) -> Result<TableBefore, LakeError> {
        let table = self.lake.table(kind).await?;
        let Some(own) = replay_snapshot(&table, batch_id) else {
            return Ok(TableBefore { present: coordinates_present(&table, ranges, None).await?, replayed: false });
        };
        let present = match own.parent_snapshot_id() {
            Some(parent) => coordinates_present(&table, ranges, Some(parent)).await?,
            None => BTreeSet::new(),
        };
        Ok(TableBefore { present, replayed: true })
    }

    /// For a dry run: the samples whose windows are behind their kind's close marker.
    async fn predicted_late(
        &self,
        plan: &[Processed],
        fence_key: &impl Fn(&KafkaCoordinates) -> String,
    ) -> Result<BTreeMap<SampleRef, Vec<Window>>, IngestError> {
        let mut markers = BTreeMap::new();
        for kind in WindowKind::ALL {
            markers.insert(kind, self.store.close_marker(kind).await?);
        }
        let mut late: BTreeMap<SampleRef, Vec<Window>> = BTreeMap::new();
        for p in plan {
            for (index, raw) in p.raw.iter().enumerate() {
                let sample =
                    SampleRef { partition: fence_key(&raw.kafka), offset: raw.kafka.offset, index: index as u32 };
                for kind in WindowKind::ALL {
                    let window = Window::containing(kind, raw.start_date);
                    if markers[&kind].is_some_and(|m| window.end() <= m) {
                        late.entry(sample.clone()).or_default().push(window);
                    }
                }
            }
        }
        Ok(late)
    }

    /// Writes the rows and commits them in one snapshot marked with the batch id (`None`: a
    /// concurrent run of the same replay committed first).
    async fn append(&self, kind: TableKind, batch_id: &str, rows: Rows<'_>) -> Result<Option<AppendReport>, LakeError> {
        let table = self.lake.table(kind).await?;
        // Named by the batch: a rerun rewrites its own uncommitted files.
        let id = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, batch_id.as_bytes());
        let sink = DataFileSink::new(&table, &format!("replay-{}-{}", self.lake.table_name(kind), id.simple()))?;
        let batch = match rows {
            Rows::Raw(r) => rows::raw_batch(sink.arrow_schema(), r)?,
            Rows::Errors(r) => rows::error_batch(sink.arrow_schema(), r)?,
        };
        let files = sink.write_all(&batch).await?;
        self.lake.append_replayed(kind, files, batch_id).await
    }
}

#[derive(Clone, Copy)]
enum Rows<'a> {
    Raw(&'a [RawRecord]),
    Errors(&'a [ErrorRecord]),
}

impl Rows<'_> {
    fn len(self) -> usize {
        match self {
            Rows::Raw(r) => r.len(),
            Rows::Errors(r) => r.len(),
        }
    }

    fn is_empty(self) -> bool {
        self.len() == 0
    }
}

/// Per topic-partition, the first and last offset of the records.
fn offset_ranges<'a>(coordinates: impl Iterator<Item = &'a KafkaCoordinates>) -> Vec<OffsetRange> {
    let mut ranges: BTreeMap<(String, i32), (i64, i64)> = BTreeMap::new();
    for c in coordinates {
        let entry = ranges.entry((c.topic.clone(), c.partition)).or_insert((c.offset, c.offset));
        entry.0 = entry.0.min(c.offset);
        entry.1 = entry.1.max(c.offset);
    }
    ranges
        .into_iter()
        .map(|((topic, partition), (first, last))| OffsetRange { topic, partition, first, last })
        .collect()
}

fn range_key(r: &OffsetRange) -> String {
    format!("{}:{}-{}", healthlake_core::record::partition_key(&r.topic, r.partition), r.first, r.last)
}

fn batch_id(ranges: &[OffsetRange]) -> String {
    ranges.iter().map(range_key).collect::<Vec<_>>().join(",")
}

/// The fence a record's samples are merged under: one per topic-partition range of the stored
/// batch, distinct from the stream's `topic-partition` fences.
fn replay_fence_key(ranges: &[OffsetRange], k: &KafkaCoordinates) -> String {
    let range = ranges.iter().find(|r| r.topic == k.topic && r.partition == k.partition).expect("record's own range");
    format!("replay:{}", range_key(range))
}

/// The rows of the replayed records: valid samples to raw, late samples and errors to errors.
fn split(
    plan: Vec<Processed>,
    late: &BTreeMap<SampleRef, Vec<Window>>,
    overflowing: &BTreeMap<SampleRef, Vec<Window>>,
    fence_key: &impl Fn(&KafkaCoordinates) -> String,
    now: DateTime<Utc>,
) -> (Vec<RawRecord>, Vec<ErrorRecord>) {
    let (mut raw_rows, mut error_rows) = (Vec::new(), Vec::new());
    for p in plan {
        for (index, raw) in p.raw.into_iter().enumerate() {
            let sample = SampleRef { partition: fence_key(&raw.kafka), offset: raw.kafka.offset, index: index as u32 };
            match refused_row(&raw, &sample, late, overflowing, now) {
                Some(row) => error_rows.push(row),
                None => raw_rows.push(raw),
            }
        }
        error_rows.extend(p.errors);
    }
    (raw_rows, error_rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_destination_document_and_a_bare_event_both_parse() {
        let event = r#"{"eventSource":"SelfManagedKafka","records":{"t-0":[{"topic":"t","partition":0,"offset":7,
            "timestamp":1700000000000,"timestampType":"CREATE_TIME","value":"e30=","headers":[]}]}}"#;
        let document = format!(
            r#"{{"version":"1.0","requestContext":{{"condition":"RetryAttemptsExhausted"}},
            "responseContext":{{"functionError":"Permanent.IngestError","errorMessage":"VALIDATION_STRICT_MODE: 1"}},
            "KafkaBatchInfo":{{"batchSize":1}},"payload":{event}}}"#
        );
        let stored = StoredBatch::parse(&document).unwrap();
        assert_eq!(stored.failure.as_deref(), Some("Permanent.IngestError: VALIDATION_STRICT_MODE: 1"));
        assert_eq!(records_of(&stored.event)[0].kafka.offset, 7);
        let as_text = document.replace(&format!(r#""payload":{event}"#), &format!(r#""payload":{:?}"#, event));
        assert_eq!(StoredBatch::parse(&as_text).unwrap().event, stored.event);
        let bare = StoredBatch::parse(event).unwrap();
        assert_eq!((bare.event, bare.failure), (stored.event, None));
        assert!(matches!(StoredBatch::parse("[1]"), Err(ReplayError::Input(_))));
    }

    #[test]
    fn the_batch_id_and_fences_name_each_partition_range() {
        let c = |partition, offset| KafkaCoordinates { topic: "t".into(), partition, offset };
        let records = [c(1, 9), c(0, 4), c(0, 2), c(1, 8)];
        let ranges = offset_ranges(records.iter());
        assert_eq!(batch_id(&ranges), "t-0:2-4,t-1:8-9");
        assert_eq!(replay_fence_key(&ranges, &c(1, 8)), "replay:t-1:8-9");
    }
}
