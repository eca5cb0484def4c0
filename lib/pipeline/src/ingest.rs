//! The ingest handler: one event source mapping batch (records of several partitions) applied
//! with exactly-once effect.
//!
//! Order of effects, chosen so that a crash between any two leaves a state that a redelivery
//! (same or regrouped batch) completes to the same result:
//! 1. decode and validate (pure; strict mode fails here, before any effect);
//! 2. merge partial aggregates into the accumulator store: fences skip what was applied before,
//!    and closed windows refuse samples, which makes them late (deterministically so on replay);
//! 3. append raw rows (offsets above the raw table's committed map) with the new map;
//! 4. append error rows (invalid, undecodable, late) the same way on the errors table;
//! 5. advance per-partition watermarks (monotonic, so replays are harmless).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use aws_lambda_events::event::kafka::KafkaEvent;
use chrono::{DateTime, Utc};
use healthlake_core::record::ErrorType;
use healthlake_core::time::progress_bound;
use healthlake_lake::{AppendReport, DataFileSink, LakeError, Lakehouse, TableKind, committed_offsets, rows};
use healthlake_state::{AccumulatorStore, PartitionProgress, SampleRef, StoreError};

use crate::Clock;
use crate::config::Settings;
use crate::decoding::BatchDecoder;
use crate::events::{last_offsets, offset_ranges, records_of};
use crate::metrics;
use crate::partials::{accumulator_updates, late_samples, overflowing_samples, refused_row};
use crate::schema_source::{SchemaSource, SchemaSourceError};

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("VALIDATION_STRICT_MODE: {rejected} record(s) rejected, first: {first}")]
    StrictModeRejected { rejected: usize, first: String },
    #[error(transparent)]
    SchemaSource(#[from] SchemaSourceError),
    #[error("accumulator store: {0}")]
    Store(#[from] StoreError),
    #[error("iceberg: {0}")]
    Lake(#[from] LakeError),
}

impl IngestError {
    /// Whether redelivering the batch may succeed. Strict-mode rejections never will; the event
    /// source mapping sends such a batch to its on-failure destination after its retries.
    pub fn is_retryable(&self) -> bool {
        match self {
            IngestError::StrictModeRejected { .. } => false,
            IngestError::SchemaSource(e) => e.is_retryable(),
            IngestError::Store(e) => e.is_retryable(),
            IngestError::Lake(e) => e.is_retryable(),
        }
    }
}

/// What one batch did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IngestReport {
    pub records: usize,
    pub raw_rows_written: u64,
    pub error_rows_written: u64,
    /// Rows not written because the table had already committed their offsets.
    pub raw_rows_skipped: u64,
    pub error_rows_skipped: u64,
    pub errors_by_type: BTreeMap<ErrorType, u64>,
    pub samples_aggregated: usize,
    pub accumulator_items_written: usize,
    pub accumulator_conflicts_retried: usize,
    pub raw_commit: Option<AppendReport>,
    pub errors_commit: Option<AppendReport>,
}

pub struct IngestHandler {
    decoder: BatchDecoder,
    /// `WATERMARK_MAX_OUT_OF_ORDERNESS`: how far past its record timestamp a sample may move
    /// its partition's event time.
    max_out_of_orderness: chrono::Duration,
    lake: Arc<Lakehouse>,
    store: Arc<dyn AccumulatorStore>,
    clock: Clock,
}

impl IngestHandler {
    pub fn new(
        settings: Settings,
        schemas: Box<dyn SchemaSource>,
        lake: Arc<Lakehouse>,
        store: Arc<dyn AccumulatorStore>,
        clock: Clock,
    ) -> Self {
        Self {
            decoder: BatchDecoder::new(&settings, schemas),
            max_out_of_orderness: settings.max_out_of_orderness,
            lake,
            store,
            clock,
        }
    }

    #[tracing::instrument(skip_all, fields(records, offsets))]
    pub async fn handle(&self, event: &KafkaEvent) -> Result<IngestReport, IngestError> {
        let started = Instant::now();
        let records = records_of(event);
        tracing::Span::current().record("records", records.len()).record("offsets", offset_ranges(&records));
        let mut report = IngestReport { records: records.len(), ..IngestReport::default() };
        if records.is_empty() {
            return Ok(report);
        }
        // Before any effect: should this batch fail (an outage, say), its partitions hold the
        // watermark instead of looking idle.
        let batch_offsets = last_offsets(&records);
        self.store.note_received(&batch_offsets).await?;
        let now = (self.clock)();

        // 1. Decode and validate.
        let stage = Instant::now();
        let processed = self.decoder.decode(&records, now).await?;
        metrics::record_stage("decode_validate", stage);

        // 2. Aggregate: pre-combine per (user, type, window) and partition, then merge.
        let stage = Instant::now();
        let updates = accumulator_updates(&processed, |k| k.partition_key());
        metrics::record_stage("partials", stage);
        let stage = Instant::now();
        let merge = self.store.merge(updates).await?;
        metrics::record_stage("merge_partials", stage);
        report.samples_aggregated = merge.samples_applied;
        report.accumulator_items_written = merge.items_written;
        report.accumulator_conflicts_retried = merge.conflicts_retried;
        let late = late_samples(merge.late);
        let overflowing = overflowing_samples(merge.overflowing);

        let mut progress: BTreeMap<String, DateTime<Utc>> = BTreeMap::new();
        let newest_record = processed.iter().map(|p| p.record_time).max();
        let mut newest_event: Option<DateTime<Utc>> = None;
        for p in &processed {
            let Some(newest) = p.raw.iter().map(|raw| raw.start_date).max() else {
                continue;
            };
            newest_event = newest_event.max(Some(newest));
            let bound = progress_bound(newest, p.record_time, self.max_out_of_orderness);
            let entry = progress.entry(p.partition.clone()).or_insert(bound);
            *entry = (*entry).max(bound);
        }

        // 3 + 4. Split into the two tables' rows, above each table's committed offsets.
        // Loaded once per batch: the offsets come from these snapshots and the files are written
        // with these tables' schemas and properties.
        let raw_table = self.lake.table(TableKind::Raw).await?;
        let errors_table = self.lake.table(TableKind::Errors).await?;
        let raw_committed = committed_offsets(&raw_table)?;
        let errors_committed = committed_offsets(&errors_table)?;
        let mut raw_rows = Vec::new();
        let mut error_rows = Vec::new();
        let mut valid_by_type: BTreeMap<String, u64> = BTreeMap::new();
        let mut errors_by_label: BTreeMap<(String, ErrorType), u64> = BTreeMap::new();
        for p in processed {
            for (index, raw) in p.raw.into_iter().enumerate() {
                let sample =
                    SampleRef { partition: p.partition.clone(), offset: raw.kafka.offset, index: index as u32 };
                if let Some(row) = refused_row(&raw, &sample, &late, &overflowing, now) {
                    if above(&errors_committed, &p.partition, row.kafka.offset) {
                        *errors_by_label
                            .entry((row.data_type.clone().unwrap_or_default(), row.error_type))
                            .or_default() += 1;
                        error_rows.push(row);
                    } else {
                        report.error_rows_skipped += 1;
                    }
                } else if above(&raw_committed, &p.partition, raw.kafka.offset) {
                    *valid_by_type.entry(raw.data_type.clone()).or_default() += 1;
                    raw_rows.push(raw);
                } else {
                    report.raw_rows_skipped += 1;
                }
            }
            for row in p.errors {
                if above(&errors_committed, &p.partition, row.kafka.offset) {
                    *errors_by_label.entry((row.data_type.clone().unwrap_or_default(), row.error_type)).or_default() +=
                        1;
                    error_rows.push(row);
                } else {
                    report.error_rows_skipped += 1;
                }
            }
        }
        for ((_, t), n) in &errors_by_label {
            *report.errors_by_type.entry(*t).or_default() += n;
        }
        // The offsets consumed per partition: from the first record this batch adds to the
        // table's map, through the last record of the batch.
        let consumed = |committed: &healthlake_lake::OffsetMap| -> BTreeMap<String, (i64, i64)> {
            let mut map: BTreeMap<String, (i64, i64)> = BTreeMap::new();
            for r in &records {
                let key = r.kafka.partition_key();
                if above(committed, &key, r.kafka.offset) {
                    let entry = map.entry(key).or_insert((r.kafka.offset, r.kafka.offset));
                    entry.0 = entry.0.min(r.kafka.offset);
                    entry.1 = entry.1.max(r.kafka.offset);
                }
            }
            map
        };
        if !raw_rows.is_empty() {
            let consumed = consumed(&raw_committed);
            let stage = Instant::now();
            let sink = DataFileSink::new(&raw_table, &file_prefix("raw", &consumed))?;
            let batch = rows::raw_batch(sink.arrow_schema(), &raw_rows)?;
            let files = sink.write_all(&batch).await?;
            metrics::record_file_write(self.lake.table_name(TableKind::Raw), stage);
            let commit = self.commit(TableKind::Raw, files, &consumed).await?;
            report.raw_rows_written = commit.records;
            report.raw_commit = Some(commit);
        }
        if !error_rows.is_empty() {
            let consumed = consumed(&errors_committed);
            let stage = Instant::now();
            let sink = DataFileSink::new(&errors_table, &file_prefix("errors", &consumed))?;
            let batch = rows::error_batch(sink.arrow_schema(), &error_rows)?;
            let files = sink.write_all(&batch).await?;
            metrics::record_file_write(self.lake.table_name(TableKind::Errors), stage);
            let commit = self.commit(TableKind::Errors, files, &consumed).await?;
            report.error_rows_written = commit.records;
            report.errors_commit = Some(commit);
        }
        metrics::record_validation(&valid_by_type, &errors_by_label);

        // 5. Watermarks: the highest valid event time per partition, over the whole batch (also
        // the rows a redelivery skipped: the crashed first attempt may not have got this far).
        let observations: Vec<PartitionProgress> = progress
            .into_iter()
            .map(|(partition, max_event_time)| PartitionProgress {
                partition,
                max_event_time,
                updated_at: now,
                pending: false,
            })
            .collect();
        self.store.finish_batch(&observations, &batch_offsets).await?;

        metrics::record_batch(&report, &valid_by_type, newest_event, newest_record, now, started);
        tracing::info!(
            records = report.records,
            raw = report.raw_rows_written,
            errors = report.error_rows_written,
            skipped = report.raw_rows_skipped + report.error_rows_skipped,
            "batch applied"
        );
        Ok(report)
    }

    async fn commit(
        &self,
        kind: TableKind,
        files: Vec<iceberg::spec::DataFile>,
        consumed: &BTreeMap<String, (i64, i64)>,
    ) -> Result<AppendReport, LakeError> {
        let started = Instant::now();
        let table = self.lake.table_name(kind).to_string();
        match self.lake.append(kind, files, consumed).await {
            Ok(report) => {
                metrics::record_commit(
                    &table,
                    report.data_files,
                    report.bytes,
                    report.conflicts_retried,
                    started.elapsed().as_secs_f64() * 1e3,
                );
                Ok(report)
            }
            Err(e) => {
                metrics::record_commit_failure(&table, if e.is_retryable() { "retryable" } else { "permanent" });
                Err(e)
            }
        }
    }
}

fn above(committed: &healthlake_lake::OffsetMap, partition: &str, offset: i64) -> bool {
    committed.get(partition).is_none_or(|&c| offset > c)
}

/// A data file name prefix from the Kafka coordinates the files hold, so a file tells which batch
/// wrote it; the sink adds a part unique to each attempt, since overlapping attempts of the same
/// batch must not write the same paths (the offsets in the snapshot summary, not the file
/// names, decide what is committed).
fn file_prefix(table: &str, consumed: &BTreeMap<String, (i64, i64)>) -> String {
    let coordinates: Vec<String> = consumed.iter().map(|(p, (a, b))| format!("{p}:{a}-{b}")).collect();
    let id = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, coordinates.join(",").as_bytes());
    let first = consumed.iter().next().map(|(p, (a, _))| format!("{p}-{a}")).unwrap_or_default();
    format!("{table}-{first}-{}", id.simple())
}
