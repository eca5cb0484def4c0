//! Record batches to Parquet data files, partitioned by the table's spec, with the compression
//! and sizes its properties ask for (the iceberg crate leaves that to the caller).

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use futures::{StreamExt, TryStreamExt};
use iceberg::arrow::{RecordBatchPartitionSplitter, schema_to_arrow_schema};
use iceberg::spec::{DataFile, DataFileFormat};
use iceberg::table::Table;
use iceberg::writer::base_writer::data_file_writer::DataFileWriterBuilder;
use iceberg::writer::file_writer::ParquetWriterBuilder;
use iceberg::writer::file_writer::location_generator::{DefaultFileNameGenerator, DefaultLocationGenerator};
use iceberg::writer::file_writer::rolling_writer::RollingFileWriterBuilder;
use iceberg::writer::partitioning::PartitioningWriter;
use iceberg::writer::partitioning::fanout_writer::FanoutWriter;
use iceberg::writer::{IcebergWriter, IcebergWriterBuilder};
use parquet::basic::{Compression, GzipLevel, ZstdLevel};
use parquet::file::properties::WriterProperties;
use rand::Rng;

use crate::LakeError;

const COMPRESSION: &str = "write.parquet.compression-codec";
const PAGE_SIZE: &str = "write.parquet.page-size-bytes";
const TARGET_FILE_SIZE: &str = "write.target-file-size-bytes";

/// Parquet writer properties from the table properties. The codec defaults to zstd, Iceberg's
/// own default, when the table does not name one.
pub fn parquet_properties(props: &HashMap<String, String>) -> Result<WriterProperties, LakeError> {
    let codec = props.get(COMPRESSION).map(|s| s.to_ascii_lowercase()).unwrap_or_else(|| "zstd".into());
    let compression = match codec.as_str() {
        "snappy" => Compression::SNAPPY,
        "zstd" => Compression::ZSTD(ZstdLevel::default()),
        "gzip" => Compression::GZIP(GzipLevel::default()),
        "uncompressed" | "none" => Compression::UNCOMPRESSED,
        other => {
            return Err(LakeError::Config(format!(
                "table property {COMPRESSION}={other} is not supported (snappy, zstd, gzip, uncompressed)"
            )));
        }
    };
    let mut builder = WriterProperties::builder().set_compression(compression);
    if let Some(page) = props.get(PAGE_SIZE) {
        let bytes: usize =
            page.parse().map_err(|_| LakeError::Config(format!("table property {PAGE_SIZE}={page} is not a size")))?;
        builder = builder.set_data_page_size_limit(bytes);
    }
    Ok(builder.build())
}

/// The table's `write.target-file-size-bytes`, or Iceberg's default (512 MiB) when it declares
/// none.
pub(crate) fn target_file_size(props: &HashMap<String, String>) -> u64 {
    props.get(TARGET_FILE_SIZE).and_then(|s| s.parse::<u64>().ok()).filter(|n| *n > 0).unwrap_or(512 * 1024 * 1024)
}

type RollingBuilder =
    RollingFileWriterBuilder<ParquetWriterBuilder, DefaultLocationGenerator, DefaultFileNameGenerator>;
type FileWriterBuilder =
    DataFileWriterBuilder<ParquetWriterBuilder, DefaultLocationGenerator, DefaultFileNameGenerator>;

/// How many partitions' files [`DataFileSink::write_all`] writes at once. A batch touching many
/// partitions writes as many files; on S3 each is a PUT whose latency, not bandwidth, bounds the
/// batch, and each file being written holds its partition's encoded rows in memory.
const CONCURRENT_FILES: usize = 8;

/// Writes batches of one table into data files named `<prefix>-NNNNN-<attempt>.parquet`.
pub struct DataFileSink {
    arrow_schema: SchemaRef,
    splitter: RecordBatchPartitionSplitter,
    rolling: RollingBuilder,
    /// For batches written one after another (upserts): one open writer per partition met so
    /// far, until `close`. Made on the first `write`.
    fanout: Option<FanoutWriter<FileWriterBuilder>>,
}

impl DataFileSink {
    /// `file_prefix` says what the files hold (healthlake uses the Kafka coordinates, so a file
    /// tells which batch wrote it); the sink adds a part of its own to every name. Two attempts
    /// at the same batch can overlap (a redelivery during a rebalance) and must never write the
    /// same path: the loser would replace a file the winner has committed, with other bytes
    /// (each attempt stamps its own processing time) than its manifest entry describes. Commit
    /// identity stays with the offsets in the snapshot summary, not with file names; an attempt
    /// that loses leaves unreferenced files for orphan removal.
    pub fn new(table: &Table, file_prefix: &str) -> Result<Self, LakeError> {
        Self::rolling_at(table, file_prefix, target_file_size(table.metadata().properties()) as usize)
    }

    /// A sink that starts a new file once the current one passes `target_size` bytes (compaction
    /// cuts its files itself and passes `usize::MAX`).
    pub(crate) fn rolling_at(table: &Table, file_prefix: &str, target_size: usize) -> Result<Self, LakeError> {
        let metadata = table.metadata();
        let schema = metadata.current_schema().clone();
        let arrow_schema = Arc::new(schema_to_arrow_schema(&schema)?);
        let props = parquet_properties(metadata.properties())?;
        let parquet = ParquetWriterBuilder::new(props, schema.clone());
        let rolling = RollingFileWriterBuilder::new(
            parquet,
            target_size,
            table.file_io().clone(),
            DefaultLocationGenerator::new(metadata)?,
            DefaultFileNameGenerator::new(file_prefix.to_string(), Some(attempt_id()), DataFileFormat::Parquet),
        );
        let splitter = RecordBatchPartitionSplitter::try_new_with_computed_values(
            schema,
            metadata.default_partition_spec().clone(),
        )?;
        Ok(Self { arrow_schema, splitter, rolling, fanout: None })
    }

    /// The table's Arrow schema (with Parquet field ids), which batches must use.
    pub fn arrow_schema(&self) -> &SchemaRef {
        &self.arrow_schema
    }

    /// Adds a batch; files are finished by [`close`](Self::close). Every partition met stays
    /// open until then: for one batch, [`write_all`](Self::write_all) needs less memory.
    pub async fn write(&mut self, batch: &RecordBatch) -> Result<(), LakeError> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let parts = self.splitter.split(batch)?;
        let rolling = &self.rolling;
        let fanout = self.fanout.get_or_insert_with(|| FanoutWriter::new(DataFileWriterBuilder::new(rolling.clone())));
        for (key, part) in parts {
            fanout.write(key, part).await?;
        }
        Ok(())
    }

    pub async fn close(self) -> Result<Vec<DataFile>, LakeError> {
        match self.fanout {
            Some(fanout) => Ok(fanout.close().await?),
            None => Ok(vec![]),
        }
    }

    /// Writes one whole batch and finishes its files: each partition's rows are written and
    /// closed in one go, a few partitions at a time, so memory holds a few partitions' encoded
    /// rows rather than all of them, and on S3 the PUTs overlap.
    pub async fn write_all(mut self, batch: &RecordBatch) -> Result<Vec<DataFile>, LakeError> {
        let mut files = match self.fanout.take() {
            Some(fanout) => fanout.close().await?,
            None => vec![],
        };
        if batch.num_rows() == 0 {
            return Ok(files);
        }
        let builder = DataFileWriterBuilder::new(self.rolling.clone());
        let builder = &builder;
        let written: Vec<Vec<DataFile>> = futures::stream::iter(self.splitter.split(batch)?)
            .map(|(key, part)| async move {
                let mut writer = builder.build(Some(key)).await?;
                writer.write(part).await?;
                writer.close().await
            })
            .buffer_unordered(CONCURRENT_FILES)
            .try_collect()
            .await?;
        files.extend(written.into_iter().flatten());
        Ok(files)
    }
}

/// A name part unique to one writer: 64 random bits, so overlapping attempts never meet.
fn attempt_id() -> String {
    format!("{:016x}", rand::rng().random::<u64>())
}
