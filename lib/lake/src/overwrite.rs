//! Copy-on-write upserts: the `overwrite` snapshot the iceberg crate (0.10) has no action for.
//!
//! An upsert of rows keyed by the table's identifier fields reads the live data files of the
//! partitions the rows fall in, writes their content again with the upserted rows replacing the
//! rows of the same key, and commits one snapshot that marks the old files deleted and adds the
//! new ones. No delete files are written, so every engine reads the result (pyiceberg 0.12 cannot
//! read equality deletes). The snapshot is published by [`crate::rewrite`]; a lost race re-reads
//! the table and does the whole merge again on the newer version.

use std::collections::HashSet;
use std::sync::Arc;

use arrow_array::RecordBatch;
use backon::Retryable;
use healthlake_core::WindowKind;
use healthlake_core::record::AggregateRow;
use iceberg::arrow::{RecordBatchPartitionSplitter, schema_to_arrow_schema};
use iceberg::spec::{DataFile, Operation, Struct};
use iceberg::table::Table;

use crate::LakeError;
use crate::catalog::Lakehouse;
use crate::commit::Attempt;
use crate::keys::{RowKey, key_columns, row_keys};
use crate::manifests::{conform, current_manifests, live_files, read_data_file};
use crate::offsets::carried_summary;
use crate::retry::commit_backoff;
use crate::rewrite::{commit_rewrite, uuid_like};
use crate::tables::TableKind;
use crate::writer::DataFileSink;

/// Attempts before an upsert gives up (each re-reads and re-merges).
const UPSERT_ATTEMPTS: u32 = 12;

/// What an upsert did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UpsertReport {
    /// Rows given.
    pub rows_upserted: u64,
    /// Existing rows whose key was upserted (replaced).
    pub rows_replaced: u64,
    /// Existing rows of the touched partitions carried over unchanged.
    pub rows_kept: u64,
    pub files_removed: usize,
    pub files_added: usize,
    pub bytes_added: u64,
    pub conflicts_retried: u32,
    pub snapshot_id: Option<i64>,
}

impl Lakehouse {
    /// Upserts aggregate rows by their primary key (user, data type, window).
    pub async fn upsert_aggregates(&self, kind: WindowKind, rows: &[AggregateRow]) -> Result<UpsertReport, LakeError> {
        let table_kind = TableKind::Aggregate(kind);
        let table = self.table(table_kind).await?;
        let schema = Arc::new(schema_to_arrow_schema(table.metadata().current_schema())?);
        let batch = crate::rows::aggregate_batch(&schema, kind, rows)?;
        self.upsert(table_kind, &batch).await
    }

    /// Upserts `rows` (a batch in the table's Arrow schema) by the table's identifier fields:
    /// afterwards every key of `rows` appears exactly once, with the new values, and every other
    /// row is unchanged. One `overwrite` snapshot per call, carrying the `healthlake.*` summary
    /// keys forward like [`Lakehouse::append`] does. Conflicting commits are retried on the newer
    /// version.
    pub async fn upsert(&self, kind: TableKind, rows: &RecordBatch) -> Result<UpsertReport, LakeError> {
        let ident = self.ident(kind);
        let report = UpsertReport { rows_upserted: rows.num_rows() as u64, ..UpsertReport::default() };
        if rows.num_rows() == 0 {
            return Ok(report);
        }
        let pointer = self.pointer().ok_or_else(|| {
            LakeError::Config(format!(
                "upserts into {ident} need a catalog healthlake can compare-and-swap (ICEBERG_CATALOG_TYPE=sql or glue)"
            ))
        })?;
        // One attempt merges on the table as it is now; a lost race re-reads the table and
        // merges again after a jittered backoff.
        let ident = &ident;
        let attempt = move || async move {
            let table = self.table(kind).await?;
            let keys = key_columns(&table)?;
            let new_keys: HashSet<RowKey> = row_keys(rows, &keys)?.into_iter().collect();
            if new_keys.len() != rows.num_rows() {
                return Err(LakeError::Schema(format!("upsert into {ident} names a primary key twice")).into());
            }
            let mut sink = DataFileSink::new(&table, &format!("upsert-{}", uuid_like()))?;
            let rows = conform(rows, sink.arrow_schema())?;
            let touched = touched_partitions(&table, &rows)?;
            let manifests = current_manifests(&table).await?;
            let removed: Vec<DataFile> =
                live_files(&table, &manifests).filter(|f| touched.contains(f.partition())).cloned().collect();
            let (mut replaced, mut kept) = (0u64, 0u64);
            for file in &removed {
                for batch in read_data_file(&table, file, sink.arrow_schema()).await? {
                    let file_keys = row_keys(&batch, &keys)?;
                    let keep: arrow_array::BooleanArray =
                        file_keys.iter().map(|k| Some(!new_keys.contains(k))).collect();
                    let survivors = arrow_select::filter::filter_record_batch(&batch, &keep)?;
                    replaced += (batch.num_rows() - survivors.num_rows()) as u64;
                    kept += survivors.num_rows() as u64;
                    sink.write(&survivors).await?;
                }
            }
            sink.write(&rows).await?;
            let added = sink.close().await?;
            let (files_removed, files_added) = (removed.len(), added.len());
            let bytes_added = added.iter().map(|f| f.file_size_in_bytes()).sum();
            let summary = carried_summary(&table);
            let snapshot_id = commit_rewrite(pointer, &table, manifests, removed, added, summary, Operation::Overwrite)
                .await?
                .ok_or(Attempt::Conflict)?;
            tracing::debug!(table = %ident, replaced, kept, files_removed, files_added, "upserted");
            Ok(UpsertReport {
                rows_replaced: replaced,
                rows_kept: kept,
                files_removed,
                files_added,
                bytes_added,
                snapshot_id: Some(snapshot_id),
                ..UpsertReport::default()
            })
        };
        let mut conflicts = 0;
        let upserted = attempt
            .retry(commit_backoff(UPSERT_ATTEMPTS))
            .when(|e| matches!(e, Attempt::Conflict))
            .notify(|_, wait| {
                conflicts += 1;
                tracing::debug!(table = %ident, retry_in_ms = wait.as_millis() as u64, "overwrite conflict, retrying");
            })
            .await;
        match upserted {
            Ok(done) => Ok(UpsertReport { rows_upserted: report.rows_upserted, conflicts_retried: conflicts, ..done }),
            Err(Attempt::Conflict) => {
                Err(LakeError::CommitConflict { table: ident.to_string(), attempts: UPSERT_ATTEMPTS })
            }
            Err(Attempt::Failed(e)) => Err(e),
        }
    }
}

/// The partition tuples (of the default spec) the rows fall in.
fn touched_partitions(table: &Table, rows: &RecordBatch) -> Result<HashSet<Struct>, LakeError> {
    let metadata = table.metadata();
    let splitter = RecordBatchPartitionSplitter::try_new_with_computed_values(
        metadata.current_schema().clone(),
        metadata.default_partition_spec().clone(),
    )?;
    Ok(splitter.split(rows)?.into_iter().map(|(key, _)| key.data().clone()).collect())
}
