//! Copy-on-write upserts: the `overwrite` snapshot the iceberg crate (0.10) has no action for.
//!
//! An upsert of rows keyed by the table's identifier fields reads the live data files of the
//! partitions the rows fall in, writes their content again with the upserted rows replacing the
//! rows of the same key, and commits one snapshot that marks the old files deleted and adds the
//! new ones. No delete files are written, so every engine reads the result (pyiceberg 0.12 cannot
//! read equality deletes). The commit is built from the crate's public pieces (manifest and
//! manifest-list writers, the snapshot and table-metadata builders) and published by moving the
//! catalog's metadata pointer with a compare-and-swap ([`crate::pointer`]); a lost race re-reads
//! the table and does the whole merge again on the newer version.

use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use std::sync::Arc;

use arrow_array::{Array, ArrayRef, Date32Array, Int32Array, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, SchemaRef};
use backon::Retryable;
use healthlake_core::WindowKind;
use healthlake_core::record::AggregateRow;
use iceberg::MetadataLocation;
use iceberg::arrow::{RecordBatchPartitionSplitter, schema_to_arrow_schema};
use iceberg::spec::{
    DataFile, FormatVersion, MAIN_BRANCH, ManifestContentType, ManifestEntryRef, ManifestFile, ManifestList,
    ManifestListWriter, ManifestWriterBuilder, Operation, Snapshot, SnapshotSummaryCollector, Struct, Summary,
    TableMetadata, TableProperties,
};
use iceberg::table::Table;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use rand::Rng;

use crate::LakeError;
use crate::catalog::Lakehouse;
use crate::commit::Attempt;
use crate::offsets::carried_summary;
use crate::retry::commit_backoff;
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

/// One value of a primary-key column.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KeyPart {
    Str(String),
    Int(i64),
}

/// A row's primary key: its identifier-field values in schema order.
pub type RowKey = Vec<KeyPart>;

/// The primary keys of every row of `batch`, from the named columns.
pub fn row_keys(batch: &RecordBatch, key_columns: &[String]) -> Result<Vec<RowKey>, LakeError> {
    let columns: Vec<&ArrayRef> = key_columns
        .iter()
        .map(|name| batch.column_by_name(name).ok_or_else(|| LakeError::Schema(format!("no key column {name}"))))
        .collect::<Result<_, _>>()?;
    let mut keys = vec![Vec::with_capacity(columns.len()); batch.num_rows()];
    for (name, column) in key_columns.iter().zip(columns) {
        let unsupported = || LakeError::Schema(format!("key column {name} has type {}", column.data_type()));
        for (row, key) in keys.iter_mut().enumerate() {
            if column.is_null(row) {
                return Err(LakeError::Schema(format!("key column {name} is null in row {row}")));
            }
            key.push(match column.data_type() {
                DataType::Utf8 => KeyPart::Str(
                    column.as_any().downcast_ref::<StringArray>().ok_or_else(unsupported)?.value(row).to_string(),
                ),
                DataType::Int32 => KeyPart::Int(
                    column.as_any().downcast_ref::<Int32Array>().ok_or_else(unsupported)?.value(row).into(),
                ),
                DataType::Date32 => KeyPart::Int(
                    column.as_any().downcast_ref::<Date32Array>().ok_or_else(unsupported)?.value(row).into(),
                ),
                DataType::Int64 => {
                    KeyPart::Int(column.as_any().downcast_ref::<Int64Array>().ok_or_else(unsupported)?.value(row))
                }
                _ => return Err(unsupported()),
            });
        }
    }
    Ok(keys)
}

/// The identifier (primary-key) columns of a table, in schema order.
pub fn key_columns(table: &Table) -> Result<Vec<String>, LakeError> {
    let schema = table.metadata().current_schema();
    let mut ids: Vec<i32> = schema.identifier_field_ids().collect();
    ids.sort_unstable();
    if ids.is_empty() {
        return Err(LakeError::Schema(format!("{} has no identifier fields to upsert by", table.identifier())));
    }
    ids.iter()
        .map(|id| {
            schema
                .name_by_field_id(*id)
                .map(str::to_string)
                .ok_or_else(|| LakeError::Schema(format!("identifier field {id} is not in the schema")))
        })
        .collect()
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
            let snapshot_id = commit_overwrite(pointer, &table, manifests, removed, added, summary)
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

/// A random name part for files of one upsert attempt (an attempt that loses its commit leaves
/// them unreferenced, for maintenance to remove).
fn uuid_like() -> String {
    format!("{:032x}", rand::rng().random::<u128>())
}

/// `rows` with the sink's schema (field ids in the metadata), columns matched by name.
fn conform(rows: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch, LakeError> {
    let columns = schema
        .fields()
        .iter()
        .map(|f| {
            rows.column_by_name(f.name()).cloned().ok_or_else(|| LakeError::Schema(format!("no column {}", f.name())))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
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

/// The current snapshot's manifests, each data manifest with its entries (delete manifests
/// without: they are only carried forward). Read once per upsert attempt, for finding the live
/// files and for writing the next manifest list.
type Manifests = Vec<(ManifestFile, Vec<ManifestEntryRef>)>;

async fn current_manifests(table: &Table) -> Result<Manifests, LakeError> {
    let Some(snapshot) = table.metadata().current_snapshot() else {
        return Ok(vec![]);
    };
    let bytes = table.file_io().new_input(snapshot.manifest_list())?.read().await?;
    let list = ManifestList::parse_with_version(&bytes, table.metadata().format_version())?;
    // Collected first: the list's iterator is not Send, and the loop awaits.
    let files: Vec<ManifestFile> = list.consume_entries().into_iter().collect();
    let mut manifests = vec![];
    for manifest in files {
        let entries = match manifest.content {
            ManifestContentType::Data => manifest.load_manifest(table.file_io()).await?.entries().to_vec(),
            ManifestContentType::Deletes => vec![],
        };
        manifests.push((manifest, entries));
    }
    Ok(manifests)
}

/// The live data files of the current snapshot (written with the default partition spec: the
/// tables never change theirs; files of another spec are never touched).
fn live_files<'a>(table: &Table, manifests: &'a Manifests) -> impl Iterator<Item = &'a DataFile> {
    let spec_id = table.metadata().default_partition_spec_id();
    manifests
        .iter()
        .filter(move |(manifest, _)| manifest.partition_spec_id == spec_id)
        .flat_map(|(_, entries)| entries.iter().filter(|e| e.is_alive()).map(|e| e.data_file()))
}

/// Reads one data file whole, columns matched by name into `schema`.
async fn read_data_file(table: &Table, file: &DataFile, schema: &SchemaRef) -> Result<Vec<RecordBatch>, LakeError> {
    let bytes = table.file_io().new_input(file.file_path())?.read().await?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
        .map_err(|e| LakeError::Schema(format!("{}: {e}", file.file_path())))?
        .build()
        .map_err(|e| LakeError::Schema(format!("{}: {e}", file.file_path())))?;
    reader.map(|batch| conform(&batch?, schema)).collect()
}

/// Commits one `overwrite` snapshot on exactly `base` (whose manifests are `manifests`):
/// `removed` (live files of `base`) marked deleted, `added` added, `properties` in the summary next to the computed counts. `None`: the
/// table moved on since `base` (nothing was published; the caller re-reads and retries).
async fn commit_overwrite(
    pointer: &dyn crate::pointer::MetadataPointer,
    base: &Table,
    manifests: Manifests,
    removed: Vec<DataFile>,
    added: Vec<DataFile>,
    properties: HashMap<String, String>,
) -> Result<Option<i64>, LakeError> {
    let metadata = base.metadata();
    if metadata.format_version() != FormatVersion::V2 {
        return Err(LakeError::Config(format!(
            "{}: overwrite commits are written for format version 2, the table is {}",
            base.identifier(),
            metadata.format_version()
        )));
    }
    let base_location = base
        .metadata_location()
        .ok_or_else(|| LakeError::Config(format!("{} has no metadata location", base.identifier())))?
        .to_string();
    let snapshot_id = new_snapshot_id(metadata);
    let sequence_number = metadata.next_sequence_number();
    let commit_id = uuid_like();
    let manifest_path = |n: usize| format!("{}/metadata/{commit_id}-m{n}.avro", metadata.location());
    let removed_paths: HashSet<&str> = removed.iter().map(DataFile::file_path).collect();

    let mut next_manifests: Vec<ManifestFile> = vec![];
    let mut manifest_count = 0;
    for (manifest, entries) in manifests {
        let touches = entries.iter().any(|e| e.is_alive() && removed_paths.contains(e.file_path()));
        if !touches {
            next_manifests.push(manifest);
            continue;
        }
        // Rewrite the manifest: removed files as deleted entries of this snapshot, the other
        // live files as existing entries with their original snapshot and sequence numbers.
        let spec = metadata
            .partition_spec_by_id(manifest.partition_spec_id)
            .ok_or_else(|| LakeError::Schema(format!("manifest {} names unknown spec", manifest.manifest_path)))?;
        manifest_count += 1;
        let mut writer = ManifestWriterBuilder::new(
            base.file_io().new_output(manifest_path(manifest_count))?,
            Some(snapshot_id),
            metadata.current_schema().clone(),
            spec.as_ref().clone(),
        )
        .build_v2_data();
        for entry in entries.iter().filter(|e| e.is_alive()) {
            let seq = entry.sequence_number().unwrap_or(manifest.sequence_number);
            let file_seq = entry.file_sequence_number.or(Some(seq));
            if removed_paths.contains(entry.file_path()) {
                writer.add_delete_file(entry.data_file().clone(), seq, file_seq)?;
            } else {
                let added_by = entry.snapshot_id().unwrap_or(manifest.added_snapshot_id);
                writer.add_existing_file(entry.data_file().clone(), added_by, seq, file_seq)?;
            }
        }
        next_manifests.push(writer.write_manifest_file().await?);
    }

    let mut collector = SnapshotSummaryCollector::default();
    let limit = metadata
        .properties()
        .get(TableProperties::PROPERTY_WRITE_PARTITION_SUMMARY_LIMIT)
        .and_then(|l| l.parse().ok())
        .unwrap_or(TableProperties::PROPERTY_WRITE_PARTITION_SUMMARY_LIMIT_DEFAULT);
    collector.set_partition_summary_limit(limit);
    let (schema, spec) = (metadata.current_schema().clone(), metadata.default_partition_spec().clone());
    for file in &removed {
        collector.remove_file(file, schema.clone(), spec.clone());
    }
    if !added.is_empty() {
        for file in &added {
            collector.add_file(file, schema.clone(), spec.clone());
        }
        manifest_count += 1;
        let mut writer = ManifestWriterBuilder::new(
            base.file_io().new_output(manifest_path(manifest_count))?,
            Some(snapshot_id),
            schema.clone(),
            spec.as_ref().clone(),
        )
        .build_v2_data();
        for file in added {
            // A negative sequence number leaves it to be inherited from the manifest list.
            writer.add_file(file, -1)?;
        }
        next_manifests.push(writer.write_manifest_file().await?);
    }

    let summary = Summary {
        operation: Operation::Overwrite,
        additional_properties: with_totals(
            properties.into_iter().chain(collector.build()).collect(),
            metadata.current_snapshot().map(|s| s.summary()),
        ),
    };

    let list_path = format!("{}/metadata/snap-{snapshot_id}-1-{commit_id}.avro", metadata.location());
    let mut list_writer = ManifestListWriter::v2(
        base.file_io().new_output(&list_path)?.writer().await?,
        snapshot_id,
        metadata.current_snapshot_id(),
        sequence_number,
    );
    list_writer.add_manifests(next_manifests.into_iter())?;
    list_writer.close().await?;

    let snapshot = Snapshot::builder()
        .with_snapshot_id(snapshot_id)
        .with_parent_snapshot_id(metadata.current_snapshot_id())
        .with_sequence_number(sequence_number)
        .with_timestamp_ms(chrono::Utc::now().timestamp_millis().max(metadata.last_updated_ms()))
        .with_manifest_list(list_path)
        .with_summary(summary)
        .with_schema_id(metadata.current_schema_id())
        .build();
    let new_metadata = metadata
        .clone()
        .into_builder(Some(base_location.clone()))
        .set_branch_snapshot(snapshot, MAIN_BRANCH)?
        .build()?
        .metadata;
    let new_location = MetadataLocation::from_str(&base_location)?.with_next_version().with_new_metadata(&new_metadata);
    new_metadata.write_to(base.file_io(), &new_location).await?;
    let swapped = pointer.swap(base.identifier(), &base_location, &new_location.to_string()).await?;
    Ok(swapped.then_some(snapshot_id))
}

/// A positive snapshot id not used by the table yet.
fn new_snapshot_id(metadata: &TableMetadata) -> i64 {
    loop {
        let id = rand::rng().random_range(1..i64::MAX);
        if metadata.snapshot_by_id(id).is_none() {
            return id;
        }
    }
}

/// Adds the `total-*` counts (previous total + added − removed), as the Iceberg spec's summary
/// has them; the crate's helper for this is not public.
fn with_totals(mut props: HashMap<String, String>, previous: Option<&Summary>) -> HashMap<String, String> {
    const TOTALS: [(&str, &str, &str); 6] = [
        ("total-data-files", "added-data-files", "deleted-data-files"),
        ("total-delete-files", "added-delete-files", "removed-delete-files"),
        ("total-records", "added-records", "deleted-records"),
        ("total-files-size", "added-files-size", "removed-files-size"),
        ("total-position-deletes", "added-position-deletes", "removed-position-deletes"),
        ("total-equality-deletes", "added-equality-deletes", "removed-equality-deletes"),
    ];
    let get = |props: &HashMap<String, String>, key: &str| -> u64 {
        props.get(key).and_then(|v| v.parse().ok()).unwrap_or(0)
    };
    for (total, added, removed) in TOTALS {
        let before = previous.map(|s| get(&s.additional_properties, total)).unwrap_or(0);
        let after = (before + get(&props, added)).saturating_sub(get(&props, removed));
        props.insert(total.to_string(), after.to_string());
    }
    props
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_carry_forward_and_subtract_what_was_removed() {
        let previous = Summary {
            operation: Operation::Append,
            additional_properties: HashMap::from([
                ("total-records".to_string(), "100".to_string()),
                ("total-data-files".to_string(), "4".to_string()),
                ("total-files-size".to_string(), "4000".to_string()),
            ]),
        };
        let props = HashMap::from([
            ("added-records".to_string(), "30".to_string()),
            ("deleted-records".to_string(), "25".to_string()),
            ("added-data-files".to_string(), "1".to_string()),
            ("deleted-data-files".to_string(), "2".to_string()),
        ]);
        let totals = with_totals(props, Some(&previous));
        assert_eq!(totals["total-records"], "105");
        assert_eq!(totals["total-data-files"], "3");
        assert_eq!(totals["total-files-size"], "4000");
        assert_eq!(totals["total-delete-files"], "0");
    }

    #[test]
    fn keys_come_from_string_date_and_int_columns() {
        use arrow_schema::{Field, Schema};
        let schema = Arc::new(Schema::new(vec![
            Field::new("user_id", DataType::Utf8, false),
            Field::new("day", DataType::Date32, false),
            Field::new("week", DataType::Int32, false),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(vec!["u1", "u2"])),
                Arc::new(Date32Array::from(vec![20000, 20001])),
                Arc::new(Int32Array::from(vec![7, 8])),
            ],
        )
        .unwrap();
        let keys = row_keys(&batch, &["user_id".into(), "day".into(), "week".into()]).unwrap();
        assert_eq!(keys[1], vec![KeyPart::Str("u2".into()), KeyPart::Int(20001), KeyPart::Int(8)]);
        assert!(row_keys(&batch, &["nope".into()]).is_err());
    }
}
