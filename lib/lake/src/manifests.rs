//! Reading a snapshot's manifests and the data files they list: what every rewrite (upserts,
//! compaction, manifest rewrite) plans on.

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use iceberg::spec::{DataFile, ManifestContentType, ManifestEntryRef, ManifestFile, ManifestList};
use iceberg::table::Table;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::LakeError;

/// The current snapshot's manifests, each data manifest with its entries (delete manifests
/// without: they are only carried forward). Read once per upsert attempt, for finding the live
/// files and for writing the next manifest list.
pub(crate) type Manifests = Vec<(ManifestFile, Vec<ManifestEntryRef>)>;

pub(crate) async fn current_manifests(table: &Table) -> Result<Manifests, LakeError> {
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
pub(crate) fn live_files<'a>(table: &Table, manifests: &'a Manifests) -> impl Iterator<Item = &'a DataFile> {
    let spec_id = table.metadata().default_partition_spec_id();
    manifests
        .iter()
        .filter(move |(manifest, _)| manifest.partition_spec_id == spec_id)
        .flat_map(|(_, entries)| entries.iter().filter(|e| e.is_alive()).map(|e| e.data_file()))
}

/// Reads one data file whole, columns matched by name into `schema`.
pub(crate) async fn read_data_file(
    table: &Table,
    file: &DataFile,
    schema: &SchemaRef,
) -> Result<Vec<RecordBatch>, LakeError> {
    let bytes = table.file_io().new_input(file.file_path())?.read().await?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
        .map_err(|e| LakeError::Schema(format!("{}: {e}", file.file_path())))?
        .build()
        .map_err(|e| LakeError::Schema(format!("{}: {e}", file.file_path())))?;
    reader.map(|batch| conform(&batch?, schema)).collect()
}

/// `rows` with the sink's schema (field ids in the metadata), columns matched by name.
pub(crate) fn conform(rows: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch, LakeError> {
    let columns = schema
        .fields()
        .iter()
        .map(|f| {
            rows.column_by_name(f.name()).cloned().ok_or_else(|| LakeError::Schema(format!("no column {}", f.name())))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}
