//! Backfill: recomputes the aggregates of every window touching a time range from
//! `health_data_raw`, optionally folding in the late records of the errors table, and upserts
//! the windows whose statistics differ from the table's.
//!
//! What a window holds after streaming: the raw samples of its period, plus the samples that
//! were late for *other* window kinds (a `late_record` row lists the windows that had closed; the
//! windows of the other kinds took the sample in). Backfill reproduces exactly that, so a
//! backfill of data that streamed normally changes nothing; `include_late` also folds in the
//! samples that arrived after the window itself closed.
//!
//! Only windows behind their kind's close marker are written: open windows belong to finalize,
//! which would replace them with the accumulator's state. Idempotent: a second run finds every
//! window equal (to 1e-9 relative) and writes nothing.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type, TimestampMicrosecondType};
use arrow_array::{Array, RecordBatch};
use chrono::{DateTime, Duration, Utc};
use futures::TryStreamExt;
use healthlake_core::record::{AggregateRow, ErrorType, RawRecord, late_record_windows};
use healthlake_core::time::{from_micros, to_micros};
use healthlake_core::{AggregateStats, WelfordState, Window, WindowKind};
use healthlake_lake::{LakeError, Lakehouse, TableKind};
use healthlake_state::{AccumulatorStore, StoreError};
use iceberg::expr::Reference;
use iceberg::spec::Datum;
use serde::{Deserialize, Serialize};

use crate::Clock;

/// What to recompute: the backfill function's JSON input and `healthlake backfill`'s options.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BackfillRequest {
    /// Event-time range `[from, to)`; every window overlapping it is recomputed whole.
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// Window kinds (all three when empty).
    #[serde(default)]
    pub window_kinds: Vec<WindowKind>,
    /// Only these data types / users (all when empty).
    #[serde(default)]
    pub data_types: Vec<String>,
    #[serde(default)]
    pub user_ids: Vec<String>,
    /// Also fold in samples that arrived after their window closed (`late_record` errors).
    #[serde(default)]
    pub include_late: bool,
    /// Report what would change; write nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// Rewrite every recomputed window, changed or not (e.g. after an aggregation fix).
    #[serde(default)]
    pub force: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum BackfillError {
    #[error("backfill request: {0}")]
    Request(String),
    #[error("iceberg: {0}")]
    Lake(#[from] LakeError),
    #[error("accumulator store: {0}")]
    Store(#[from] StoreError),
    #[error("reading {table}: {reason}")]
    Read { table: &'static str, reason: String },
}

impl BackfillError {
    pub fn is_retryable(&self) -> bool {
        match self {
            BackfillError::Request(_) | BackfillError::Read { .. } => false,
            BackfillError::Lake(e) => e.is_retryable(),
            BackfillError::Store(e) => e.is_retryable(),
        }
    }
}

/// Per window kind: what the recomputation found and did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KindReport {
    pub windows_recomputed: usize,
    /// Recomputed windows whose row differs from the table's (or is missing there).
    pub windows_changed: usize,
    /// Windows not yet behind the close marker: left to finalize.
    pub windows_skipped_open: usize,
    /// Rows written (0 on a dry run).
    pub rows_upserted: u64,
    /// Late samples folded in because `include_late` was set.
    pub late_samples_folded: u64,
    /// A few changed windows, for the dry run's report.
    pub examples: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BackfillReport {
    /// Raw rows read from the range.
    pub raw_samples_read: u64,
    /// `late_record` rows read from the errors table.
    pub late_records_read: u64,
    pub dry_run: bool,
    pub kinds: BTreeMap<WindowKind, KindReport>,
}

/// Progress lines for whoever runs the backfill (the CLI prints them; the function logs them).
pub type Progress = Arc<dyn Fn(&str) + Send + Sync>;

pub struct BackfillHandler {
    lake: Arc<Lakehouse>,
    store: Arc<dyn AccumulatorStore>,
    clock: Clock,
}

/// Statistics compared to this relative tolerance: a recomputation folds samples in another
/// order than the stream did.
const TOLERANCE: f64 = 1e-9;

impl BackfillHandler {
    pub fn new(lake: Arc<Lakehouse>, store: Arc<dyn AccumulatorStore>, clock: Clock) -> Self {
        Self { lake, store, clock }
    }

    #[tracing::instrument(skip(self, progress), fields(from = %request.from, to = %request.to))]
    pub async fn handle(&self, request: &BackfillRequest, progress: Progress) -> Result<BackfillReport, BackfillError> {
        if request.from >= request.to {
            return Err(BackfillError::Request(format!("from {} is not before to {}", request.from, request.to)));
        }
        let kinds: Vec<WindowKind> =
            if request.window_kinds.is_empty() { WindowKind::ALL.to_vec() } else { request.window_kinds.clone() };
        // Whole windows: from the earliest window start to the latest window end over the kinds.
        let last_instant = request.to - Duration::microseconds(1);
        let lo = kinds.iter().map(|k| Window::containing(*k, request.from).start()).min().expect("kinds");
        let hi = kinds.iter().map(|k| Window::containing(*k, last_instant).end()).max().expect("kinds");
        let wanted = |kind: WindowKind, ts: DateTime<Utc>| {
            let w = Window::containing(kind, ts);
            w.end() > request.from && w.start() < request.to
        };
        let users: BTreeSet<&str> = request.user_ids.iter().map(String::as_str).collect();
        let types: BTreeSet<&str> = request.data_types.iter().map(String::as_str).collect();
        let selected = |user: &str, data_type: &str| {
            (users.is_empty() || users.contains(user)) && (types.is_empty() || types.contains(data_type))
        };
        let mut report = BackfillReport { dry_run: request.dry_run, ..BackfillReport::default() };
        let mut states: HashMap<(WindowKind, String, String, Window), WelfordState> = HashMap::new();
        let mut fold = |kind: WindowKind, user: &str, data_type: &str, ts: DateTime<Utc>, value: f64| {
            let window = Window::containing(kind, ts);
            states.entry((kind, user.to_string(), data_type.to_string(), window)).or_default().add(ts, value);
        };

        // Raw samples of the range, partition-pruned on the day of start_date.
        progress(&format!("reading raw samples {lo} .. {hi}"));
        let mut filter = Reference::new("start_date")
            .greater_than_or_equal_to(Datum::timestamp_micros(to_micros(lo)))
            .and(Reference::new("start_date").less_than(Datum::timestamp_micros(to_micros(hi))));
        if !types.is_empty() {
            filter = filter.and(Reference::new("data_type").is_in(types.iter().map(|t| Datum::string(*t))));
        }
        if !users.is_empty() {
            filter = filter.and(Reference::new("user_id").is_in(users.iter().map(|u| Datum::string(*u))));
        }
        let mut raw = self
            .lake
            .scan_stream(TableKind::Raw, &["user_id", "data_type", "value", "start_date"], Some(filter))
            .await?;
        while let Some(batch) = raw.try_next().await? {
            let read = |reason: String| BackfillError::Read { table: "raw", reason };
            let (users_col, types_col) = (batch.column(0).as_string::<i32>(), batch.column(1).as_string::<i32>());
            let values = batch.column(2).as_primitive_opt::<Float64Type>().ok_or_else(|| read("value".into()))?;
            let starts = batch
                .column(3)
                .as_primitive_opt::<TimestampMicrosecondType>()
                .ok_or_else(|| read("start_date".into()))?;
            for i in 0..batch.num_rows() {
                let ts = from_micros(starts.value(i));
                for kind in &kinds {
                    if wanted(*kind, ts) {
                        fold(*kind, users_col.value(i), types_col.value(i), ts, values.value(i));
                    }
                }
            }
            report.raw_samples_read += batch.num_rows() as u64;
            if report.raw_samples_read % 1_000_000 < batch.num_rows() as u64 {
                progress(&format!("{} raw samples read", report.raw_samples_read));
            }
        }
        progress(&format!("{} raw samples read", report.raw_samples_read));

        // Late records: the sample is in the windows that were open when it arrived; the closed
        // ones get it only with include_late.
        let filter = Reference::new("error_type").equal_to(Datum::string(ErrorType::LateRecord.as_str()));
        let mut late =
            self.lake.scan_stream(TableKind::Errors, &["raw_payload", "error_message"], Some(filter)).await?;
        let mut late_folded: BTreeMap<WindowKind, u64> = BTreeMap::new();
        while let Some(batch) = late.try_next().await? {
            let (payloads, messages) = (batch.column(0).as_string::<i32>(), batch.column(1).as_string::<i32>());
            for i in 0..batch.num_rows() {
                let sample: RawRecord = serde_json::from_str(payloads.value(i)).map_err(|e| BackfillError::Read {
                    table: "errors",
                    reason: format!("late_record payload is not a raw row: {e}"),
                })?;
                report.late_records_read += 1;
                if !selected(&sample.user_id, &sample.data_type) {
                    continue;
                }
                let closed = late_record_windows(messages.value(i));
                for kind in &kinds {
                    if !wanted(*kind, sample.start_date) {
                        continue;
                    }
                    let was_closed = closed.contains(&Window::containing(*kind, sample.start_date));
                    if was_closed && !request.include_late {
                        continue;
                    }
                    if was_closed {
                        *late_folded.entry(*kind).or_default() += 1;
                    }
                    fold(*kind, &sample.user_id, &sample.data_type, sample.start_date, sample.value);
                }
            }
        }
        progress(&format!("{} late records read", report.late_records_read));

        let now = (self.clock)();
        for kind in kinds {
            let mut kind_report = KindReport {
                late_samples_folded: late_folded.get(&kind).copied().unwrap_or(0),
                ..KindReport::default()
            };
            let marker = self.store.close_marker(kind).await?;
            let current = self.current_rows(kind, lo, hi).await?;
            let mut rows = vec![];
            let mut keys: Vec<_> = states.keys().filter(|k| k.0 == kind).cloned().collect();
            keys.sort();
            for key in keys {
                let Some(stats) = states[&key].stats() else { continue };
                let (_, user_id, data_type, window) = key;
                kind_report.windows_recomputed += 1;
                if marker.is_none_or(|m| window.end() > m) {
                    kind_report.windows_skipped_open += 1;
                    continue;
                }
                let unchanged =
                    current.get(&(user_id.clone(), data_type.clone(), window)).is_some_and(|c| same(kind, c, &stats));
                if unchanged && !request.force {
                    continue;
                }
                if !unchanged {
                    kind_report.windows_changed += 1;
                    if kind_report.examples.len() < 5 {
                        kind_report.examples.push(format!(
                            "{user_id}/{data_type}/{}: count {}",
                            window.key(),
                            stats.count
                        ));
                    }
                }
                rows.push(AggregateRow { user_id, data_type, window, stats, updated_at: now });
            }
            if !request.dry_run && !rows.is_empty() {
                let upsert = self.lake.upsert_aggregates(kind, &rows).await?;
                kind_report.rows_upserted = upsert.rows_upserted;
            }
            progress(&format!(
                "{kind}: {} windows recomputed, {} changed, {} open (left to finalize), {} rows {}",
                kind_report.windows_recomputed,
                kind_report.windows_changed,
                kind_report.windows_skipped_open,
                if request.dry_run { rows.len() as u64 } else { kind_report.rows_upserted },
                if request.dry_run { "would be written" } else { "written" },
            ));
            report.kinds.insert(kind, kind_report);
        }
        Ok(report)
    }

    /// The aggregate rows of `kind` whose windows start in `[lo, hi)`.
    async fn current_rows(
        &self,
        kind: WindowKind,
        lo: DateTime<Utc>,
        hi: DateTime<Utc>,
    ) -> Result<HashMap<(String, String, Window), AggregateStats>, BackfillError> {
        let filter = Reference::new("window_start")
            .greater_than_or_equal_to(Datum::timestamp_micros(to_micros(lo)))
            .and(Reference::new("window_start").less_than(Datum::timestamp_micros(to_micros(hi))));
        let (first, last, daily_avg) = match kind {
            WindowKind::Daily => ("first_value", "last_value", "avg_value"),
            WindowKind::Weekly | WindowKind::Monthly => ("avg_value", "avg_value", "daily_avg_of_avg"),
        };
        let columns = [
            "user_id",
            "data_type",
            "window_start",
            "min_value",
            "max_value",
            "avg_value",
            "sum_value",
            "count",
            "stddev_value",
            first,
            last,
            daily_avg,
            "record_count",
        ];
        let mut stream = self.lake.scan_stream(TableKind::Aggregate(kind), &columns, Some(filter)).await?;
        let mut rows = HashMap::new();
        while let Some(batch) = stream.try_next().await? {
            read_aggregates(kind, &batch, &mut rows)
                .ok_or_else(|| BackfillError::Read { table: "aggregates", reason: "unexpected column types".into() })?;
        }
        Ok(rows)
    }
}

fn read_aggregates(
    kind: WindowKind,
    batch: &RecordBatch,
    rows: &mut HashMap<(String, String, Window), AggregateStats>,
) -> Option<()> {
    let f = |i: usize| batch.column(i).as_primitive_opt::<Float64Type>();
    let n = |i: usize| batch.column(i).as_primitive_opt::<Int64Type>();
    let (users, types) = (batch.column(0).as_string_opt::<i32>()?, batch.column(1).as_string_opt::<i32>()?);
    let starts = batch.column(2).as_primitive_opt::<TimestampMicrosecondType>()?;
    let (min, max, avg, sum, count, stddev) = (f(3)?, f(4)?, f(5)?, f(6)?, n(7)?, f(8)?);
    let (first, last, daily_avg, record_count) = (f(9)?, f(10)?, f(11)?, n(12)?);
    for i in 0..batch.num_rows() {
        if users.is_null(i) {
            continue;
        }
        let window = Window::containing(kind, from_micros(starts.value(i)));
        let stats = AggregateStats {
            min: min.value(i),
            max: max.value(i),
            avg: avg.value(i),
            sum: sum.value(i),
            count: count.value(i),
            stddev: stddev.value(i),
            first: first.value(i),
            last: last.value(i),
            record_count: record_count.value(i),
            daily_avg_of_avg: daily_avg.value(i),
        };
        rows.insert((users.value(i).to_string(), types.value(i).to_string(), window), stats);
    }
    Some(())
}

/// Whether a stored row equals a recomputation, on the columns its table has (daily rows have
/// first/last, weekly and monthly the average of daily averages).
fn same(kind: WindowKind, stored: &AggregateStats, fresh: &AggregateStats) -> bool {
    let close = |a: f64, b: f64| (a - b).abs() <= TOLERANCE * a.abs().max(b.abs()).max(1.0);
    let common = stored.count == fresh.count
        && stored.record_count == fresh.record_count
        && close(stored.min, fresh.min)
        && close(stored.max, fresh.max)
        && close(stored.avg, fresh.avg)
        && close(stored.sum, fresh.sum)
        && close(stored.stddev, fresh.stddev);
    common
        && match kind {
            WindowKind::Daily => close(stored.first, fresh.first) && close(stored.last, fresh.last),
            WindowKind::Weekly | WindowKind::Monthly => close(stored.daily_avg_of_avg, fresh.daily_avg_of_avg),
        }
}
