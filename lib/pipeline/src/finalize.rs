//! The finalize handler: the spec's Flink window semantics over the accumulator store.
//!
//! A window is emitted (upserted into its aggregate table) once the watermark passes its end;
//! while late samples within the allowed lateness change it, each run upserts it again, so the
//! row in place reflects them and no primary key appears twice; once the watermark passes its
//! end plus the lateness, it is closed: the close marker moves first (from then on ingest refuses
//! the window's samples, which become late records), the final row is upserted when it changed,
//! and the items are marked closed.
//!
//! The store's index of open items may lag the items (DynamoDB's GSI is eventually consistent),
//! so it only says which items to look at: what is emitted and closed comes from a strongly
//! consistent read of the items, and an item is closed only at the version emitted. One whose
//! version moved since stays open, and the next round emits and closes it.
//!
//! Idempotent across crashes: an item records the version last emitted, and a rerun upserts
//! whatever changed since, or what a crashed run committed but did not mark (same values, same
//! keys: the upsert replaces them).

use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Duration, Utc};
use healthlake_core::WindowKind;
use healthlake_core::labels::metric_data_type;
use healthlake_core::record::{AggregateRow, partition_key};
use healthlake_lake::{LakeError, Lakehouse, TableKind};
use healthlake_state::{AccumulatorItem, AccumulatorStore, PartitionProgress, StoreError};

use crate::Clock;
use crate::config::Settings;
use crate::metrics;

#[derive(Debug, thiserror::Error)]
pub enum FinalizeError {
    #[error("accumulator store: {0}")]
    Store(#[from] StoreError),
    #[error("iceberg: {0}")]
    Lake(#[from] LakeError),
}

impl FinalizeError {
    pub fn is_retryable(&self) -> bool {
        match self {
            FinalizeError::Store(e) => e.is_retryable(),
            FinalizeError::Lake(e) => e.is_retryable(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct FinalizeReport {
    pub kind: Option<WindowKind>,
    pub watermark: Option<DateTime<Utc>>,
    pub closed_through: Option<DateTime<Utc>>,
    /// Windows upserted into the aggregate table by this run.
    pub windows_emitted: usize,
    /// Of those, windows emitted before whose statistics changed since (late data).
    pub windows_updated: usize,
    /// Existing rows the upsert replaced.
    pub rows_replaced: u64,
    /// Windows closed (final) by this run.
    pub windows_closed: usize,
    /// Windows due to close whose version moved after they were read: left open, emitted again
    /// and closed by the next run.
    pub closes_deferred: usize,
    /// Samples in the windows closed.
    pub records_aggregated: i64,
}

/// Placeholders at the start of time, stamped `now`, for the partitions of
/// `HEALTHLAKE_TOPIC_PARTITIONS` that `progress` does not know yet (none without the setting).
pub fn unseen_partitions(
    progress: &[PartitionProgress],
    settings: &Settings,
    now: DateTime<Utc>,
) -> Vec<PartitionProgress> {
    let Some(partitions) = settings.topic_partitions else { return Vec::new() };
    (0..partitions as i32)
        .map(|p| partition_key(&settings.kafka_topic, p))
        .filter(|key| progress.iter().all(|known| &known.partition != key))
        .map(|partition| PartitionProgress {
            partition,
            max_event_time: DateTime::UNIX_EPOCH,
            updated_at: now,
            pending: false,
        })
        .collect()
}

/// The event-time watermark: the minimum over active partitions of their maximum event time,
/// minus the allowed out-of-orderness. Partitions idle longer than `idle_timeout` (processing
/// time) stop holding it back; if all are idle, none does. A partition with pending records (a
/// batch received and not applied: ingest failing through an outage) is never idle: its backlog
/// must not arrive late.
pub fn watermark(
    progress: &[PartitionProgress],
    now: DateTime<Utc>,
    max_out_of_orderness: Duration,
    idle_timeout: Duration,
) -> Option<DateTime<Utc>> {
    let active: Vec<&PartitionProgress> =
        progress.iter().filter(|p| p.pending || now - p.updated_at <= idle_timeout).collect();
    let low = if active.is_empty() {
        progress.iter().map(|p| p.max_event_time).max()?
    } else {
        active.iter().map(|p| p.max_event_time).min()?
    };
    Some(low - max_out_of_orderness)
}

pub struct FinalizeHandler {
    settings: Settings,
    lake: Arc<Lakehouse>,
    store: Arc<dyn AccumulatorStore>,
    clock: Clock,
}

impl FinalizeHandler {
    pub fn new(settings: Settings, lake: Arc<Lakehouse>, store: Arc<dyn AccumulatorStore>, clock: Clock) -> Self {
        Self { settings, lake, store, clock }
    }

    /// With `HEALTHLAKE_TOPIC_PARTITIONS`, a partition nothing has come from yet gets a progress
    /// item at the start of time, stamped now: it holds the watermark back until real records
    /// move it or it has been idle for the idle timeout (an empty partition must not block
    /// forever). Without this, the first batch's partitions alone would set the watermark and the
    /// other partitions' records would all be late.
    async fn hold_for_unseen_partitions(
        &self,
        progress: &mut Vec<PartitionProgress>,
        now: DateTime<Utc>,
    ) -> Result<(), FinalizeError> {
        let unseen = unseen_partitions(progress, &self.settings, now);
        if !unseen.is_empty() {
            // A conditional max: a real record's progress written meanwhile wins.
            self.store.advance_watermarks(&unseen).await?;
            *progress = self.store.partition_progress().await?;
        }
        Ok(())
    }

    #[tracing::instrument(skip(self), fields(kind = %kind))]
    pub async fn handle(&self, kind: WindowKind) -> Result<FinalizeReport, FinalizeError> {
        let started = Instant::now();
        let now = (self.clock)();
        let mut report = FinalizeReport { kind: Some(kind), ..FinalizeReport::default() };
        let mut progress = self.store.partition_progress().await?;
        self.hold_for_unseen_partitions(&mut progress, now).await?;
        let Some(wm) =
            watermark(&progress, now, self.settings.max_out_of_orderness, self.settings.partition_idle_timeout)
        else {
            return Ok(report);
        };
        report.watermark = Some(wm);
        metrics::record_finalize_lag(kind, wm, now);
        let table_kind = TableKind::Aggregate(kind);
        let marker = self
            .store
            .advance_close_marker(kind, wm - self.settings.allowed_lateness(kind))
            .await?
            .expect("a marker was just written");
        report.closed_through = Some(marker);
        // Every open window the watermark has passed: the ones to (re-)emit and the ones to close.
        let keys = self.store.open_keys(kind, wm).await?;
        if keys.is_empty() {
            return Ok(report);
        }
        let mut items = self.store.read_items(&keys).await?;
        items.retain(|item| !item.closed);
        let due: Vec<&AccumulatorItem> = items.iter().filter(|i| i.changed_since_emitted()).collect();
        let rows: Vec<AggregateRow> = due
            .iter()
            .filter_map(|item| {
                item.state.stats().map(|stats| AggregateRow {
                    user_id: item.key.user_id.clone(),
                    data_type: item.key.data_type.clone(),
                    window: item.key.window,
                    stats,
                    updated_at: now,
                })
            })
            .collect();
        if !rows.is_empty() {
            let commit_started = Instant::now();
            let table_name = self.lake.table_name(table_kind);
            let upsert = self.lake.upsert_aggregates(kind, &rows).await.inspect_err(|e| {
                metrics::record_commit_failure(table_name, if e.is_retryable() { "retryable" } else { "permanent" })
            })?;
            metrics::record_commit(
                table_name,
                upsert.files_added,
                upsert.bytes_added,
                upsert.conflicts_retried,
                commit_started.elapsed().as_secs_f64() * 1e3,
            );
            report.windows_emitted = rows.len();
            report.windows_updated = due.iter().filter(|i| i.emitted_version > 0).count();
            report.rows_replaced = upsert.rows_replaced;
        }
        let closes = |item: &AccumulatorItem| item.key.window.end() <= marker;
        // Items closing now are never emitted again: marking them closed is enough.
        let emitted: Vec<_> = due.iter().filter(|i| !closes(i)).map(|i| (i.key.clone(), i.version)).collect();
        if !emitted.is_empty() {
            self.store.mark_emitted(&emitted).await?;
        }
        let mut closing: Vec<&AccumulatorItem> = items.iter().filter(|i| closes(i)).collect();
        if !closing.is_empty() {
            // Closed at the version emitted (an item never emitted had nothing to emit).
            let at_version: Vec<_> = closing.iter().map(|i| (i.key.clone(), i.version)).collect();
            let moved = self.store.mark_closed(&at_version, now + self.settings.state_ttl).await?;
            closing.retain(|i| !moved.contains(&i.key));
            report.closes_deferred = moved.len();
            report.windows_closed = closing.len();
            for item in &closing {
                ::metrics::counter!(metrics::RECORDS_AGGREGATED, "window_type" => kind.as_str(), "data_type" => metric_data_type(&item.key.data_type))
                    .increment(item.state.count);
                report.records_aggregated += item.state.count as i64;
            }
            ::metrics::counter!(metrics::WINDOWS_PROCESSED, "window_type" => kind.as_str())
                .increment(closing.len() as u64);
        }
        ::metrics::histogram!(metrics::WINDOW_LATENCY_MS, "window_type" => kind.as_str())
            .record(started.elapsed().as_secs_f64() * 1e3);
        tracing::info!(
            emitted = report.windows_emitted,
            updated = report.windows_updated,
            closed = report.windows_closed,
            deferred = report.closes_deferred,
            "windows finalized"
        );
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(name: &str, max: &str, updated: &str) -> PartitionProgress {
        PartitionProgress {
            partition: name.into(),
            max_event_time: max.parse().unwrap(),
            updated_at: updated.parse().unwrap(),
            pending: false,
        }
    }

    #[test]
    fn watermark_is_min_of_active_partitions_minus_out_of_orderness() {
        let now: DateTime<Utc> = "2025-11-20T12:00:00Z".parse().unwrap();
        let progress = [
            p("t-0", "2025-11-20T10:00:00Z", "2025-11-20T11:59:00Z"),
            p("t-1", "2025-11-19T10:00:00Z", "2025-11-20T11:58:00Z"),
            // Idle for two hours: ignored.
            p("t-2", "2025-11-01T00:00:00Z", "2025-11-20T10:00:00Z"),
        ];
        let wm = watermark(&progress, now, Duration::minutes(10), Duration::minutes(30)).unwrap();
        assert_eq!(wm, "2025-11-19T09:50:00Z".parse::<DateTime<Utc>>().unwrap());
        // All idle: none holds it back.
        let later = now + Duration::days(1);
        let wm = watermark(&progress, later, Duration::minutes(10), Duration::minutes(30)).unwrap();
        assert_eq!(wm, "2025-11-20T09:50:00Z".parse::<DateTime<Utc>>().unwrap());
        assert!(watermark(&[], now, Duration::minutes(10), Duration::minutes(30)).is_none());
    }

    #[test]
    fn a_partition_with_pending_records_holds_the_watermark_however_quiet() {
        let now: DateTime<Utc> = "2025-11-20T12:00:00Z".parse().unwrap();
        let (ooo, idle) = (Duration::minutes(10), Duration::minutes(30));
        let mut progress = [
            p("t-0", "2025-11-20T10:00:00Z", "2025-11-20T11:59:00Z"),
            // Its batches have failed for two hours: it looks idle, but records wait.
            PartitionProgress { pending: true, ..p("t-1", "2025-11-19T10:00:00Z", "2025-11-20T10:00:00Z") },
        ];
        let held: DateTime<Utc> = "2025-11-19T09:50:00Z".parse().unwrap();
        assert_eq!(watermark(&progress, now, ooo, idle), Some(held));
        // Every partition quiet (the outage hit them all): still held by the pending one.
        assert_eq!(watermark(&progress, now + Duration::days(1), ooo, idle), Some(held));
        // Once applied, the quiet partition lets go.
        progress[1].pending = false;
        assert_eq!(watermark(&progress, now, ooo, idle), Some("2025-11-20T09:50:00Z".parse().unwrap()));
    }
}
