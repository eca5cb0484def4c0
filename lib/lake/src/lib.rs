//! healthlake's Iceberg side: the five tables, Arrow/Parquet writing with the table's own
//! properties, and commits that carry the consumed Kafka offsets in the snapshot summary.

mod catalog;
mod commit;
mod compact;
mod expire;
mod keys;
mod lineage;
mod manifest_rewrite;
mod manifests;
mod metadata_files;
mod offsets;
mod orphans;
mod overwrite;
mod pointer;
mod properties;
mod read;
mod replay;
mod retry;
mod rewrite;
pub mod rows;
mod storage;
pub mod tables;
mod writer;

pub use catalog::{CatalogBackend, CatalogSettings, Lakehouse, S3Settings, file_io_for};
pub use commit::{AppendReport, OFFSETS_PROPERTY, OffsetMap, commit_on_base};
pub use compact::{CompactionOptions, CompactionReport, MAINTENANCE_PROPERTY};
pub use expire::{ExpiryPolicy, ExpiryReport};
pub use keys::{KeyPart, RowKey, key_columns, row_keys};
pub use lineage::{OffsetRange, coordinates_present};
pub use manifest_rewrite::ManifestRewriteReport;
pub use metadata_files::MetadataFilesReport;
pub use offsets::committed_offsets;
pub use orphans::OrphanReport;
pub use overwrite::UpsertReport;
pub use replay::{REPLAY_PROPERTY, replay_snapshot};
pub use tables::{TableKind, TableNames};
pub use writer::{DataFileSink, parquet_properties};

/// Errors of the Iceberg adapter. Conflicts and I/O are retryable (the batch is redelivered);
/// schema and configuration problems are not.
#[derive(Debug, thiserror::Error)]
pub enum LakeError {
    #[error("iceberg: {0}")]
    Iceberg(#[from] iceberg::Error),
    #[error("arrow: {0}")]
    Arrow(#[from] arrow_schema::ArrowError),
    #[error("table schema mismatch: {0}")]
    Schema(String),
    #[error("catalog configuration: {0}")]
    Config(String),
    #[error("catalog: {0}")]
    Catalog(String),
    /// A request healthlake made to AWS itself, classified by its error code.
    #[error("{operation} failed with {code} ({class:?}): {message}")]
    Aws { operation: String, code: String, class: healthlake_core::ErrorClass, message: String },
    #[error("commit to {table} still conflicting after {attempts} attempts")]
    CommitConflict { table: String, attempts: u32 },
    #[error(
        "{table}: partition {partition} already committed through offset {committed}, this batch starts at {first}; \
         a concurrent writer is consuming the same partition"
    )]
    ConcurrentWriter { table: String, partition: String, committed: i64, first: i64 },
    #[error("offset map in the snapshot summary of {table} does not parse: {reason}")]
    CorruptOffsets { table: String, reason: String },
    #[error(
        "{table}: the committed offset map is gone: snapshot {snapshot} carries none and its parent {parent} was \
         expired; appending could duplicate rows, so an operator must restore the map (summary key \
         healthlake.kafka-offsets) in a new snapshot"
    )]
    OffsetsLost { table: String, snapshot: i64, parent: i64 },
    /// A metadata file that does not parse: maintenance stops before deleting anything.
    #[error("metadata file {path} is not table metadata: {reason}")]
    CorruptMetadata { path: String, reason: String },
    /// The table location could not be listed (local files; S3 listing errors are Iceberg's).
    #[error("listing {path}: {reason}")]
    Listing { path: String, reason: String },
}

impl LakeError {
    pub fn is_retryable(&self) -> bool {
        match self {
            LakeError::Iceberg(e) => retry::iceberg_error_class(e).is_retryable(),
            LakeError::Aws { class, .. } => class.is_retryable(),
            LakeError::CommitConflict { .. } | LakeError::ConcurrentWriter { .. } | LakeError::Catalog(_) => true,
            LakeError::Arrow(_)
            | LakeError::Schema(_)
            | LakeError::Config(_)
            | LakeError::CorruptOffsets { .. }
            | LakeError::OffsetsLost { .. }
            | LakeError::CorruptMetadata { .. }
            | LakeError::Listing { .. } => false,
        }
    }
}
