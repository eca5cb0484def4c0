//! Compaction: per partition, the data files smaller than the table's target size are read,
//! sorted by the table's natural order and written again as ⌈bytes/target⌉ files, published as
//! one `replace` snapshot (the rows do not change, only the files holding them).
//!
//! Safe beside running writers: the snapshot is built on the version read and published with
//! the compare-and-swap of every rewrite. If the table moved meanwhile, the files written are
//! committed on the new version as long as every file they replace is still live there (appends
//! only add files, so an append never costs a rewrite); if one is gone (an upsert replaced it),
//! the files written are deleted and the partitions are planned again on the new version. Files
//! the compaction did not read stay live, so a concurrent append is never lost.
//!
//! Bounded: partitions are taken in a stable order until the run's byte budget or deadline is
//! reached, and a commit is made every [`COMMIT_EVERY_BYTES`]; the next run plans on the table as
//! it is then and so continues with the partitions still holding small files.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use arrow_array::RecordBatch;
use arrow_ord::sort::{SortColumn, lexsort_to_indices};
use backon::Retryable;
use chrono::NaiveDate;
use healthlake_core::WindowKind;
use iceberg::spec::{DataFile, Literal, Operation, PrimitiveLiteral, Struct};
use iceberg::table::Table;
use serde::Serialize;

use crate::commit::Attempt;
use crate::manifests::{Manifests, current_manifests, live_files, read_data_file};
use crate::offsets::carried_summary;
use crate::retry::commit_backoff;
use crate::rewrite::{commit_rewrite, uuid_like};
use crate::tables::TableKind;
use crate::writer::{DataFileSink, target_file_size};
use crate::{LakeError, Lakehouse, key_columns};

/// Snapshot summary key naming the maintenance that made a snapshot (`compact`,
/// `rewrite-manifests`).
pub const MAINTENANCE_PROPERTY: &str = "healthlake.maintenance";

/// Rewritten bytes after which a commit is made, so that a run cut short keeps most of its work.
const COMMIT_EVERY_BYTES: u64 = 1 << 30;
/// Attempts at publishing one commit (a rebase on the new version, or a new plan).
const COMPACTION_ATTEMPTS: u32 = 10;

/// How much and what to compact.
#[derive(Debug, Clone)]
pub struct CompactionOptions {
    /// Output file size; the table's `write.target-file-size-bytes` when `None`. Files smaller
    /// than three quarters of it are rewritten (Iceberg's `min-file-size-bytes` default).
    pub target_file_size: Option<u64>,
    /// A partition is compacted when it has at least this many small files (Iceberg's
    /// `min-input-files`, 5 by default).
    pub min_input_files: usize,
    /// Input bytes read into memory at once: a partition with more small files than this is
    /// rewritten in groups of at most this size (never less than the target), each sorted on its
    /// own. The default, 128 MiB of Parquet, decodes to roughly 0.5 GB of Arrow, held twice
    /// while sorting: within the maintain function's 2 GB.
    pub max_group_bytes: u64,
    /// Input bytes a run rewrites at most (`None`: no limit).
    pub max_run_bytes: Option<u64>,
    /// Only partitions whose period starts on or after this day.
    pub since: Option<NaiveDate>,
    /// No new group is started after this instant (a Lambda's remaining time).
    pub deadline: Option<Instant>,
    pub dry_run: bool,
}

impl Default for CompactionOptions {
    fn default() -> Self {
        Self {
            target_file_size: None,
            min_input_files: 5,
            max_group_bytes: 128 << 20,
            max_run_bytes: None,
            since: None,
            deadline: None,
            dry_run: false,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CompactionReport {
    pub table: String,
    pub target_file_size: u64,
    /// Live data files of the table before and after.
    pub files_before: usize,
    pub files_after: usize,
    /// Partitions with enough small files to compact, and of those, the ones compacted (on a
    /// dry run, that would be).
    pub partitions_due: usize,
    pub partitions_compacted: usize,
    pub files_rewritten: usize,
    pub bytes_rewritten: u64,
    pub files_written: usize,
    pub bytes_written: u64,
    pub snapshots: Vec<i64>,
    pub conflicts_retried: u32,
    /// False when the budget or the deadline stopped the run with partitions still due.
    pub complete: bool,
    pub dry_run: bool,
}

/// One group of small files of one partition, rewritten together.
#[derive(Debug, Clone)]
struct Group {
    inputs: Vec<DataFile>,
    bytes: u64,
}

impl Lakehouse {
    /// Compacts the small files of `kind` (see the module's rules).
    pub async fn compact(&self, kind: TableKind, options: &CompactionOptions) -> Result<CompactionReport, LakeError> {
        let table_name = self.table_name(kind).to_string();
        let mut report = CompactionReport { table: table_name.clone(), dry_run: options.dry_run, ..Default::default() };
        let Some(table) = self.existing_table(kind).await? else {
            report.complete = true;
            return Ok(report);
        };
        let target = options.target_file_size.unwrap_or_else(|| target_file_size(table.metadata().properties()));
        report.target_file_size = target;
        let manifests = current_manifests(&table).await?;
        report.files_before = all_live_files(&manifests).count();
        let plan = plan(kind, &table, &manifests, target, options);
        report.partitions_due = plan.len();
        let mut spent = 0u64;
        let mut pending: Vec<(Group, Vec<DataFile>)> = vec![];
        let mut pending_bytes = 0u64;
        let mut stopped_early = false;
        for (partition_groups, _) in plan.values() {
            let bytes: u64 = partition_groups.iter().map(|g| g.bytes).sum();
            let over_budget = options.max_run_bytes.is_some_and(|max| spent > 0 && spent + bytes > max);
            let past_deadline = options.deadline.is_some_and(|d| Instant::now() >= d);
            if over_budget || past_deadline {
                stopped_early = true;
                break;
            }
            spent += bytes;
            report.partitions_compacted += 1;
            report.files_rewritten += partition_groups.iter().map(|g| g.inputs.len()).sum::<usize>();
            report.bytes_rewritten += bytes;
            if options.dry_run {
                report.files_written += partition_groups.iter().map(|g| output_files(g.bytes, target)).sum::<usize>();
                continue;
            }
            for group in partition_groups {
                let written = rewrite_group(kind, &table, group, target).await?;
                report.files_written += written.len();
                report.bytes_written += written.iter().map(DataFile::file_size_in_bytes).sum::<u64>();
                pending_bytes += group.bytes;
                pending.push((group.clone(), written));
            }
            if pending_bytes >= COMMIT_EVERY_BYTES {
                self.publish_compaction(kind, std::mem::take(&mut pending), target, &mut report).await?;
                pending_bytes = 0;
            }
        }
        if !pending.is_empty() {
            self.publish_compaction(kind, pending, target, &mut report).await?;
        }
        report.complete = !stopped_early;
        report.files_after = match options.dry_run {
            true => report.files_before - report.files_rewritten + report.files_written,
            false => match self.existing_table(kind).await? {
                Some(table) => all_live_files(&current_manifests(&table).await?).count(),
                None => 0,
            },
        };
        Ok(report)
    }

    /// Publishes rewritten groups as one `replace` snapshot: on the current version when every
    /// input is still live there, else after planning the moved partitions again.
    async fn publish_compaction(
        &self,
        kind: TableKind,
        groups: Vec<(Group, Vec<DataFile>)>,
        target: u64,
        report: &mut CompactionReport,
    ) -> Result<(), LakeError> {
        let table_name = self.table_name(kind).to_string();
        let pointer = self.pointer().ok_or_else(|| {
            LakeError::Config(format!("compacting {table_name} needs the sql or glue catalog (a compare-and-swap)"))
        })?;
        let groups = tokio::sync::Mutex::new(groups);
        let attempt = || async {
            let table = self.table(kind).await?;
            let manifests = current_manifests(&table).await?;
            let live: HashSet<&str> = all_live_files(&manifests).map(DataFile::file_path).collect();
            let mut groups = groups.lock().await;
            // A group one of whose inputs is gone (replaced by an upsert) is written again from
            // the files live now; a later run picks up whatever that leaves small.
            for (group, written) in groups.iter_mut() {
                if group.inputs.iter().all(|f| live.contains(f.file_path())) {
                    continue;
                }
                delete_files(&table, written).await?;
                let still_live: Vec<DataFile> =
                    group.inputs.iter().filter(|f| live.contains(f.file_path())).cloned().collect();
                group.bytes = still_live.iter().map(DataFile::file_size_in_bytes).sum();
                group.inputs = still_live;
                *written = match group.inputs.len() {
                    0 | 1 => vec![],
                    _ => rewrite_group(kind, &table, group, target).await?,
                };
            }
            groups.retain(|(group, written)| !written.is_empty() && group.inputs.len() > 1);
            if groups.is_empty() {
                return Ok(None);
            }
            let removed: Vec<DataFile> = groups.iter().flat_map(|(g, _)| g.inputs.iter().cloned()).collect();
            let added: Vec<DataFile> = groups.iter().flat_map(|(_, w)| w.iter().cloned()).collect();
            let mut summary = carried_summary(&table);
            summary.insert(MAINTENANCE_PROPERTY.to_string(), "compact".to_string());
            commit_rewrite(pointer, &table, manifests, removed, added, summary, Operation::Replace)
                .await?
                .map(Some)
                .ok_or(Attempt::Conflict)
        };
        let mut conflicts = 0;
        let published = attempt
            .retry(commit_backoff(COMPACTION_ATTEMPTS))
            .when(|e| matches!(e, Attempt::Conflict))
            .notify(|_, wait| {
                conflicts += 1;
                tracing::debug!(table = %table_name, retry_in_ms = wait.as_millis() as u64, "compaction lost its race, retrying")
            })
            .await;
        report.conflicts_retried += conflicts;
        match published {
            Ok(Some(snapshot)) => {
                report.snapshots.push(snapshot);
                Ok(())
            }
            Ok(None) => Ok(()),
            Err(Attempt::Conflict) => {
                Err(LakeError::CommitConflict { table: table_name, attempts: COMPACTION_ATTEMPTS })
            }
            Err(Attempt::Failed(e)) => Err(e),
        }
    }
}

/// Every live data file of the snapshot, whatever its partition spec.
fn all_live_files(manifests: &Manifests) -> impl Iterator<Item = &DataFile> {
    manifests.iter().flat_map(|(_, entries)| entries.iter().filter(|e| e.is_alive()).map(|e| e.data_file()))
}

/// The partitions to compact, in a stable order (by partition value), each with its groups and
/// its input bytes.
fn plan(
    kind: TableKind,
    table: &Table,
    manifests: &Manifests,
    target: u64,
    options: &CompactionOptions,
) -> BTreeMap<String, (Vec<Group>, u64)> {
    let small = target.saturating_mul(3) / 4;
    let mut by_partition: HashMap<&Struct, Vec<&DataFile>> = HashMap::new();
    for file in live_files(table, manifests) {
        if file.file_size_in_bytes() < small {
            by_partition.entry(file.partition()).or_default().push(file);
        }
    }
    let mut plan = BTreeMap::new();
    for (partition, mut files) in by_partition {
        if files.len() < options.min_input_files.max(2) {
            continue;
        }
        if let Some(since) = options.since
            && partition_start(kind, partition).is_some_and(|start| start < since)
        {
            continue;
        }
        // Oldest first (file names carry no order; paths keep a rerun's grouping stable).
        files.sort_by(|a, b| a.file_path().cmp(b.file_path()));
        let mut groups: Vec<Group> = vec![];
        for file in files {
            let size = file.file_size_in_bytes();
            match groups.last_mut() {
                Some(group) if group.bytes + size <= options.max_group_bytes.max(target) => {
                    group.bytes += size;
                    group.inputs.push(file.clone());
                }
                _ => groups.push(Group { inputs: vec![file.clone()], bytes: size }),
            }
        }
        // A group is rewritten only into fewer files: one already cut to the target's share by an
        // earlier run would otherwise be rewritten again and again.
        groups.retain(|g| g.inputs.len() > output_files(g.bytes, target));
        let bytes = groups.iter().map(|g| g.bytes).sum();
        if !groups.is_empty() {
            plan.insert(format!("{partition:?}"), (groups, bytes));
        }
    }
    plan
}

/// The first day of a partition's period: the day of raw and errors (`start_date_day`,
/// `error_timestamp_day`) and daily aggregates, the week or month of the others.
fn partition_start(kind: TableKind, partition: &Struct) -> Option<NaiveDate> {
    let int = |i: usize| match partition.fields().get(i)? {
        Some(Literal::Primitive(PrimitiveLiteral::Int(v))) => Some(*v),
        _ => None,
    };
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1)?;
    match kind {
        TableKind::Raw | TableKind::Errors | TableKind::Aggregate(WindowKind::Daily) => {
            epoch.checked_add_signed(chrono::Duration::days(int(0)?.into()))
        }
        TableKind::Aggregate(WindowKind::Weekly) => {
            NaiveDate::from_isoywd_opt(int(0)?, u32::try_from(int(1)?).ok()?, chrono::Weekday::Mon)
        }
        TableKind::Aggregate(WindowKind::Monthly) => NaiveDate::from_ymd_opt(int(0)?, u32::try_from(int(1)?).ok()?, 1),
    }
}

/// Reads a group's files, sorts their rows by the table's natural order and writes them as
/// ⌈bytes/target⌉ files of about equal row counts.
async fn rewrite_group(kind: TableKind, table: &Table, group: &Group, target: u64) -> Result<Vec<DataFile>, LakeError> {
    let schema = DataFileSink::rolling_at(table, "compact", usize::MAX)?.arrow_schema().clone();
    let mut batches = vec![];
    for file in &group.inputs {
        batches.extend(read_data_file(table, file, &schema).await?);
    }
    let rows = arrow_select::concat::concat_batches(&schema, &batches)?;
    drop(batches);
    let sorted = sort_rows(kind, table, &rows)?;
    drop(rows);
    let per_file = sorted.num_rows().div_ceil(output_files(group.bytes, target)).max(1);
    let prefix = format!("compact-{}", uuid_like());
    let mut written = vec![];
    let mut offset = 0;
    while offset < sorted.num_rows() {
        let len = per_file.min(sorted.num_rows() - offset);
        // One sink per output file, never rolling (usize::MAX): the cut is ours.
        let sink = DataFileSink::rolling_at(table, &prefix, usize::MAX)?;
        written.extend(sink.write_all(&sorted.slice(offset, len)).await?);
        offset += len;
    }
    Ok(written)
}

/// The natural order of a table's rows: raw by user and event time, errors by time and Kafka
/// coordinates, aggregates by their primary key.
fn sort_rows(kind: TableKind, table: &Table, rows: &RecordBatch) -> Result<RecordBatch, LakeError> {
    let columns: Vec<String> = match kind {
        TableKind::Raw => vec!["user_id".into(), "start_date".into(), "sample_id".into()],
        TableKind::Errors => vec!["error_timestamp".into(), "kafka_partition".into(), "kafka_offset".into()],
        TableKind::Aggregate(_) => key_columns(table)?,
    };
    let sort_columns: Vec<SortColumn> = columns
        .iter()
        .filter_map(|name| rows.column_by_name(name))
        .map(|values| SortColumn { values: Arc::clone(values), options: None })
        .collect();
    if sort_columns.is_empty() || rows.num_rows() < 2 {
        return Ok(rows.clone());
    }
    let indices = lexsort_to_indices(&sort_columns, None)?;
    Ok(arrow_select::take::take_record_batch(rows, &indices)?)
}

/// The files a group of `bytes` input bytes is written as.
fn output_files(bytes: u64, target: u64) -> usize {
    bytes.div_ceil(target.max(1)).max(1) as usize
}

/// Deletes files a lost attempt wrote (no snapshot references them).
async fn delete_files(table: &Table, files: &[DataFile]) -> Result<(), LakeError> {
    for file in files {
        table.file_io().delete(file.file_path()).await?;
    }
    Ok(())
}
