//! The finalize handler: closes every window of one kind whose end plus allowed lateness is
//! behind the watermark, writes its row once to the aggregate table, and marks it closed.
//!
//! Idempotent across crashes: the close marker moves first (from then on ingest refuses those
//! windows, their samples become late records); the rows are appended with the marker in the
//! snapshot summary; then the items are marked closed. A rerun after a crash between the last two
//! steps finds the marker in the table and only marks the items, so no primary key is written
//! twice. (Re-emitting windows changed by late data within lateness needs upserts, a separate
//! piece of work.)

use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Duration, Utc};
use healthlake_core::WindowKind;
use healthlake_core::record::AggregateRow;
use healthlake_core::time::{from_micros, to_micros};
use healthlake_lake::{DataFileSink, LakeError, Lakehouse, SummaryMark, TableKind, rows, summary_counter};
use healthlake_state::{AccumulatorStore, PartitionProgress, StoreError};

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
    pub windows_emitted: usize,
    /// Items emitted by an earlier run that crashed before marking them.
    pub windows_recovered: usize,
    pub records_aggregated: i64,
}

/// The event-time watermark: the minimum over active partitions of their maximum event time,
/// minus the allowed out-of-orderness. Partitions idle longer than `idle_timeout` (processing
/// time) stop holding it back; if all are idle, none does.
pub fn watermark(
    progress: &[PartitionProgress],
    now: DateTime<Utc>,
    max_out_of_orderness: Duration,
    idle_timeout: Duration,
) -> Option<DateTime<Utc>> {
    let active: Vec<&PartitionProgress> = progress.iter().filter(|p| now - p.updated_at <= idle_timeout).collect();
    let low = if active.is_empty() {
        progress.iter().map(|p| p.max_event_time).max()?
    } else {
        active.iter().map(|p| p.max_event_time).min()?
    };
    Some(low - max_out_of_orderness)
}

const CLOSED_THROUGH: &str = "healthlake.closed-through-micros";

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

    #[tracing::instrument(skip(self), fields(kind = %kind))]
    pub async fn handle(&self, kind: WindowKind) -> Result<FinalizeReport, FinalizeError> {
        let started = Instant::now();
        let now = (self.clock)();
        let mut report = FinalizeReport { kind: Some(kind), ..FinalizeReport::default() };
        let progress = self.store.partition_progress().await?;
        let Some(wm) =
            watermark(&progress, now, self.settings.max_out_of_orderness, self.settings.partition_idle_timeout)
        else {
            return Ok(report);
        };
        report.watermark = Some(wm);
        let table_kind = TableKind::Aggregate(kind);
        let marker = self
            .store
            .advance_close_marker(kind, wm - self.settings.allowed_lateness(kind))
            .await?
            .expect("a marker was just written");
        report.closed_through = Some(marker);
        let items = self.store.open_items(kind, marker).await?;
        if items.is_empty() {
            return Ok(report);
        }
        let table = self.lake.table(table_kind).await?;
        let emitted_through = summary_counter(&table, CLOSED_THROUGH).map(from_micros);
        let (done, todo): (Vec<_>, Vec<_>) =
            items.into_iter().partition(|item| emitted_through.is_some_and(|t| item.key.window.end() <= t));
        report.windows_recovered = done.len();
        if !todo.is_empty() {
            let rows: Vec<AggregateRow> = todo
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
            let earliest_end = todo.iter().map(|i| i.key.window.end()).min().expect("todo is not empty");
            let mut sink = DataFileSink::new(&table, &format!("finalize-{kind}-{}", to_micros(marker)))?;
            sink.write(&rows::aggregate_batch(sink.arrow_schema(), kind, &rows)?).await?;
            let files = sink.close().await?;
            let commit_started = Instant::now();
            let mark = SummaryMark {
                key: CLOSED_THROUGH.to_string(),
                value: to_micros(marker),
                must_be_below: to_micros(earliest_end),
            };
            let commit = self.lake.append(table_kind, files, &Default::default(), &[mark]).await?;
            metrics::record_commit(
                self.lake.table_name(table_kind),
                commit.data_files,
                commit.bytes,
                commit_started.elapsed().as_secs_f64() * 1e3,
            );
            report.windows_emitted = rows.len();
            for row in &rows {
                ::metrics::counter!(metrics::RECORDS_AGGREGATED, "window_type" => kind.as_str(), "data_type" => row.data_type.clone())
                    .increment(row.stats.count as u64);
                report.records_aggregated += row.stats.count;
            }
        }
        let keys: Vec<_> = done.iter().chain(todo.iter()).map(|i| i.key.clone()).collect();
        self.store.mark_closed(&keys, now + self.settings.state_ttl).await?;
        ::metrics::counter!(metrics::WINDOWS_PROCESSED, "window_type" => kind.as_str())
            .increment(report.windows_emitted as u64);
        ::metrics::histogram!(metrics::WINDOW_LATENCY_MS, "window_type" => kind.as_str())
            .record(started.elapsed().as_secs_f64() * 1e3);
        tracing::info!(emitted = report.windows_emitted, recovered = report.windows_recovered, "windows closed");
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
}
