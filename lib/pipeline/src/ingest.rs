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

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Instant;

use aws_lambda_events::event::kafka::KafkaEvent;
use chrono::{DateTime, Utc};
use healthlake_core::decode::{Decoder, WireValue, frame};
use healthlake_core::record::{ErrorRecord, ErrorType, RawRecord, late_record_message};
use healthlake_core::time::progress_bound;
use healthlake_core::{Validator, Window, WindowKind};
use healthlake_lake::{AppendReport, DataFileSink, LakeError, Lakehouse, TableKind, committed_offsets, rows};
use healthlake_state::{
    AccumulatorKey, AccumulatorStore, AccumulatorUpdate, PartitionContribution, PartitionOffset, PartitionProgress,
    SampleRef, StoreError,
};
use tokio::sync::RwLock;

use crate::Clock;
use crate::config::Settings;
use crate::events::{InputRecord, records_of};
use crate::metrics;
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
    settings: Settings,
    validator: Validator,
    decoder: RwLock<Decoder>,
    schemas: Box<dyn SchemaSource>,
    lake: Arc<Lakehouse>,
    store: Arc<dyn AccumulatorStore>,
    clock: Clock,
}

/// One decoded record: its valid rows and its error rows.
struct Processed {
    raw: Vec<RawRecord>,
    errors: Vec<ErrorRecord>,
    /// The Kafka record's timestamp (processing time when it has none).
    record_time: DateTime<Utc>,
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
            validator: Validator::new(settings.validation.clone()),
            settings,
            decoder: RwLock::new(Decoder::new()),
            schemas,
            lake,
            store,
            clock,
        }
    }

    /// Fetches every writer schema the batch needs and the decoder does not know yet, once.
    async fn resolve_schemas(&self, records: &[InputRecord]) -> Result<(), SchemaSourceError> {
        let needed: BTreeSet<u32> = {
            let decoder = self.decoder.read().await;
            records
                .iter()
                .filter_map(|r| match r.value.as_deref().ok().map(frame) {
                    Some(Ok(WireValue::Avro { schema_id, .. })) if !decoder.knows_schema(schema_id) => Some(schema_id),
                    _ => None,
                })
                .collect()
        };
        for schema_id in needed {
            if let Some(text) = self.schemas.fetch(schema_id).await? {
                self.decoder.write().await.register_writer_schema(schema_id, &text);
                metrics::schema_seen(schema_id);
            }
        }
        Ok(())
    }

    fn process(&self, decoder: &Decoder, record: &InputRecord, now: DateTime<Utc>) -> Processed {
        // Without a broker timestamp (never from the event source mapping) the wall clock is all
        // there is to judge future skew against.
        let record_time = record.timestamp.unwrap_or(now);
        let decoded = match &record.value {
            Err(reason) => Err((ErrorType::Deserialization, reason.clone())),
            Ok(bytes) => decoder.decode(bytes).map_err(|e| (e.error_type(), e.to_string())),
        };
        match decoded {
            Ok(payload) => {
                let outcome = self.validator.process(&payload, &record.kafka, record_time, now);
                Processed { raw: outcome.raw, errors: outcome.errors, record_time }
            }
            Err((error_type, message)) => Processed {
                raw: vec![],
                errors: vec![ErrorRecord {
                    raw_payload: match &record.value {
                        Ok(bytes) => match std::str::from_utf8(bytes) {
                            Ok(text) => text.to_string(),
                            Err(_) => record.encoded_value.clone(),
                        },
                        Err(_) => record.encoded_value.clone(),
                    },
                    error_type,
                    error_message: message,
                    error_timestamp: now,
                    user_id: None,
                    data_type: None,
                    sample_id: None,
                    processing_time: now,
                    kafka: record.kafka.clone(),
                }],
                record_time,
            },
        }
    }

    #[tracing::instrument(skip_all, fields(records))]
    pub async fn handle(&self, event: &KafkaEvent) -> Result<IngestReport, IngestError> {
        let started = Instant::now();
        let records = records_of(event);
        tracing::Span::current().record("records", records.len());
        let mut report = IngestReport { records: records.len(), ..IngestReport::default() };
        if records.is_empty() {
            return Ok(report);
        }
        // Before any effect: should this batch fail (an outage, say), its partitions hold the
        // watermark instead of looking idle.
        let batch_offsets = last_offsets(&records);
        self.store.note_received(&batch_offsets).await?;
        self.resolve_schemas(&records).await?;
        let now = (self.clock)();

        // 1. Decode and validate.
        let processed: Vec<Processed> = {
            let decoder = self.decoder.read().await;
            records.iter().map(|r| self.process(&decoder, r, now)).collect()
        };
        if self.settings.validation.strict_mode
            && let Some(first) = processed.iter().flat_map(|p| &p.errors).next()
        {
            let rejected = processed.iter().filter(|p| !p.errors.is_empty()).count();
            return Err(IngestError::StrictModeRejected {
                rejected,
                first: format!(
                    "{} at {}:{}: {}",
                    first.error_type,
                    first.kafka.partition_key(),
                    first.kafka.offset,
                    first.error_message
                ),
            });
        }

        // 2. Aggregate: pre-combine per (user, type, window) and partition, then merge.
        let mut updates: BTreeMap<AccumulatorKey, BTreeMap<String, PartitionContribution>> = BTreeMap::new();
        for p in &processed {
            for (index, raw) in p.raw.iter().enumerate() {
                let sample =
                    SampleRef { partition: raw.kafka.partition_key(), offset: raw.kafka.offset, index: index as u32 };
                for kind in WindowKind::ALL {
                    let key = AccumulatorKey {
                        user_id: raw.user_id.clone(),
                        data_type: raw.data_type.clone(),
                        window: Window::containing(kind, raw.start_date),
                    };
                    updates.entry(key).or_default().entry(sample.partition.clone()).or_default().add(
                        sample.clone(),
                        raw.start_date,
                        raw.value,
                    );
                }
            }
        }
        let merge = self
            .store
            .merge(updates.into_iter().map(|(key, contributions)| AccumulatorUpdate { key, contributions }).collect())
            .await?;
        report.samples_aggregated = merge.samples_applied;
        report.accumulator_items_written = merge.items_written;
        report.accumulator_conflicts_retried = merge.conflicts_retried;
        let mut late: BTreeMap<SampleRef, Vec<Window>> = BTreeMap::new();
        for (key, sample) in merge.late {
            late.entry(sample).or_default().push(key.window);
        }
        for kind in WindowKind::ALL {
            let n = late.values().filter(|ws| ws.iter().any(|w| w.kind == kind)).count();
            if n > 0 {
                metrics::record_late(kind, n as u64);
            }
        }
        let mut overflowing: BTreeMap<SampleRef, Vec<Window>> = BTreeMap::new();
        for (key, sample) in merge.overflowing {
            overflowing.entry(sample).or_default().push(key.window);
        }

        let mut progress: BTreeMap<String, DateTime<Utc>> = BTreeMap::new();
        for p in &processed {
            for raw in &p.raw {
                let bound = progress_bound(raw.start_date, p.record_time, self.settings.max_out_of_orderness);
                let entry = progress.entry(raw.kafka.partition_key()).or_insert(bound);
                *entry = (*entry).max(bound);
            }
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
                let partition = raw.kafka.partition_key();
                let sample = SampleRef { partition: partition.clone(), offset: raw.kafka.offset, index: index as u32 };
                let refused = match (overflowing.get(&sample), late.get(&sample)) {
                    (Some(windows), _) => Some(overflow_row(raw.clone(), windows, now)),
                    (None, Some(windows)) => Some(late_row(raw.clone(), windows, now)),
                    (None, None) => None,
                };
                if let Some(row) = refused {
                    if above(&errors_committed, &partition, row.kafka.offset) {
                        *errors_by_label
                            .entry((row.data_type.clone().unwrap_or_default(), row.error_type))
                            .or_default() += 1;
                        error_rows.push(row);
                    } else {
                        report.error_rows_skipped += 1;
                    }
                } else if above(&raw_committed, &partition, raw.kafka.offset) {
                    *valid_by_type.entry(raw.data_type.clone()).or_default() += 1;
                    raw_rows.push(raw);
                } else {
                    report.raw_rows_skipped += 1;
                }
            }
            for row in p.errors {
                if above(&errors_committed, &row.kafka.partition_key(), row.kafka.offset) {
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
            let mut sink = DataFileSink::new(&raw_table, &file_prefix("raw", &consumed))?;
            sink.write(&rows::raw_batch(sink.arrow_schema(), &raw_rows)?).await?;
            let files = sink.close().await?;
            let commit = self.commit(TableKind::Raw, files, &consumed).await?;
            report.raw_rows_written = commit.records;
            report.raw_commit = Some(commit);
        }
        if !error_rows.is_empty() {
            let consumed = consumed(&errors_committed);
            let mut sink = DataFileSink::new(&errors_table, &file_prefix("errors", &consumed))?;
            sink.write(&rows::error_batch(sink.arrow_schema(), &error_rows)?).await?;
            let files = sink.close().await?;
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
        self.store.advance_watermarks(&observations).await?;
        self.store.note_applied(&batch_offsets).await?;

        let millis = started.elapsed().as_secs_f64() * 1_000.0;
        for data_type in valid_by_type.keys() {
            ::metrics::histogram!(metrics::PROCESSING_LATENCY, "data_type" => data_type.clone()).record(millis);
        }
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
                metrics::record_commit(&table, report.data_files, report.bytes, started.elapsed().as_secs_f64() * 1e3);
                Ok(report)
            }
            Err(e) => {
                metrics::record_commit_failure(&table, if e.is_retryable() { "retryable" } else { "permanent" });
                Err(e)
            }
        }
    }
}

/// The highest offset of each partition in a batch.
fn last_offsets(records: &[InputRecord]) -> Vec<PartitionOffset> {
    let mut last: BTreeMap<String, i64> = BTreeMap::new();
    for r in records {
        let entry = last.entry(r.kafka.partition_key()).or_insert(r.kafka.offset);
        *entry = (*entry).max(r.kafka.offset);
    }
    last.into_iter().map(|(partition, offset)| PartitionOffset { partition, offset }).collect()
}

fn above(committed: &healthlake_lake::OffsetMap, partition: &str, offset: i64) -> bool {
    committed.get(partition).is_none_or(|&c| offset > c)
}

/// A sample whose window(s) had closed: kept whole in the errors table so backfill can fold it in.
fn late_row(raw: RawRecord, windows: &[Window], now: DateTime<Utc>) -> ErrorRecord {
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

/// A sample whose merge would have made a window's statistics non-finite: an error row, and the
/// windows keep what they had.
fn overflow_row(raw: RawRecord, windows: &[Window], now: DateTime<Utc>) -> ErrorRecord {
    let keys: BTreeSet<String> = windows.iter().map(Window::key).collect();
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
