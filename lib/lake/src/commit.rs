//! Appends that carry the consumed Kafka offsets in the snapshot summary.
//!
//! The map topic-partition → last committed offset is read from the newest snapshot in the
//! ancestry that carries it ([`crate::offsets`]: other engines commit too) and merged forward
//! into every commit. The iceberg crate's transaction retries a conflicting commit
//! by re-applying the same action, which would write a stale offset map; so healthlake turns the
//! crate's retry off and retries itself, re-reading and re-merging the map each time.

use std::collections::BTreeMap;

use async_trait::async_trait;
use backon::Retryable;
use iceberg::spec::DataFile;
use iceberg::table::Table;
use iceberg::transaction::{ApplyTransactionAction, Transaction};
use iceberg::{Catalog, ErrorKind, Namespace, NamespaceIdent, TableCommit, TableCreation, TableIdent};

use crate::LakeError;
use crate::catalog::Lakehouse;
use crate::offsets::{carried_summary, committed_offsets};
use crate::retry::commit_backoff;
use crate::tables::TableKind;

/// A fast append of `files` on exactly `table`, whose snapshot summary carries the table's
/// `healthlake.*` keys forward with the offset map set to `offsets` and the `extra` keys added.
pub(crate) fn append_transaction(
    table: &Table,
    files: Vec<DataFile>,
    offsets: &OffsetMap,
    extra: &[(&str, &str)],
) -> iceberg::Result<Transaction> {
    let mut summary = carried_summary(table);
    summary.insert(OFFSETS_PROPERTY.to_string(), serde_json::to_string(offsets).expect("offset map serializes"));
    summary.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let tx = Transaction::new(table);
    tx.fast_append().with_check_duplicate(false).add_data_files(files).set_snapshot_properties(summary).apply(tx)
}

/// Snapshot summary key of the offset map (JSON object `{"topic-partition": offset}`).
pub const OFFSETS_PROPERTY: &str = "healthlake.kafka-offsets";
/// Attempts before a commit gives up and fails the batch.
pub(crate) const COMMIT_ATTEMPTS: u32 = 12;

pub type OffsetMap = BTreeMap<String, i64>;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct AppendReport {
    pub data_files: usize,
    pub records: u64,
    pub bytes: u64,
    pub conflicts_retried: u32,
    pub snapshot_id: Option<i64>,
}

impl AppendReport {
    /// The report of appending `files`, before the commit says how it went.
    pub(crate) fn of(files: &[DataFile]) -> Self {
        AppendReport {
            data_files: files.len(),
            records: files.iter().map(|f| f.record_count()).sum(),
            bytes: files.iter().map(|f| f.file_size_in_bytes()).sum(),
            ..AppendReport::default()
        }
    }
}

impl Lakehouse {
    /// The committed offset map of a table.
    pub async fn committed_offsets(&self, kind: TableKind) -> Result<OffsetMap, LakeError> {
        committed_offsets(&self.table(kind).await?)
    }

    /// Commits `files` in one snapshot whose summary holds the offset map merged with `consumed`
    /// (per partition: the first offset of this batch and the last one it consumed). Refuses
    /// when the table already holds offsets at or past a batch's first offset: that is another
    /// writer on the same partition, and appending would duplicate rows.
    pub async fn append(
        &self,
        kind: TableKind,
        files: Vec<DataFile>,
        consumed: &BTreeMap<String, (i64, i64)>,
    ) -> Result<AppendReport, LakeError> {
        let ident = self.ident(kind);
        let mut report = AppendReport::of(&files);
        // One attempt: re-read the table and its offset map, re-merge, commit on exactly that
        // version. A lost race is retried after a jittered backoff; anything else ends here.
        let (ident, files) = (&ident, &files);
        let attempt = move || async move {
            let table = self.table(kind).await.map_err(Attempt::Failed)?;
            let mut offsets = committed_offsets(&table).map_err(Attempt::Failed)?;
            for (partition, (first, last)) in consumed {
                if let Some(&committed) = offsets.get(partition)
                    && committed >= *first
                {
                    return Err(Attempt::Failed(LakeError::ConcurrentWriter {
                        table: ident.to_string(),
                        partition: partition.clone(),
                        committed,
                        first: *first,
                    }));
                }
                offsets.insert(partition.clone(), *last);
            }
            let tx = append_transaction(&table, files.clone(), &offsets, &[]).map_err(|e| Attempt::Failed(e.into()))?;
            match commit_on_base(self.catalog(), &table, tx).await {
                Ok(committed) => Ok(committed.metadata().current_snapshot_id()),
                Err(e) if e.kind() == ErrorKind::CatalogCommitConflicts => Err(Attempt::Conflict),
                Err(e) => Err(Attempt::Failed(e.into())),
            }
        };
        let committed = attempt
            .retry(commit_backoff(COMMIT_ATTEMPTS))
            .when(|e| matches!(e, Attempt::Conflict))
            .notify(|_, wait| {
                report.conflicts_retried += 1;
                tracing::debug!(table = %ident, retry_in_ms = wait.as_millis() as u64, "commit conflict, retrying");
            })
            .await;
        match committed {
            Ok(snapshot_id) => {
                report.snapshot_id = snapshot_id;
                Ok(report)
            }
            Err(Attempt::Conflict) => {
                Err(LakeError::CommitConflict { table: ident.to_string(), attempts: COMMIT_ATTEMPTS })
            }
            Err(Attempt::Failed(e)) => Err(e),
        }
    }
}

/// Why a commit attempt did not land.
pub(crate) enum Attempt {
    /// Another writer committed first: retried on the newer version.
    Conflict,
    Failed(LakeError),
}

impl From<LakeError> for Attempt {
    fn from(e: LakeError) -> Self {
        Attempt::Failed(e)
    }
}

impl From<iceberg::Error> for Attempt {
    fn from(e: iceberg::Error) -> Self {
        Attempt::Failed(e.into())
    }
}

impl From<arrow_schema::ArrowError> for Attempt {
    fn from(e: arrow_schema::ArrowError) -> Self {
        Attempt::Failed(e.into())
    }
}

/// Commits `tx` as one attempt on exactly `base`: when the catalog's table is no longer `base`,
/// the result is a `CatalogCommitConflicts` error (not retryable by the crate), never the
/// transaction silently re-applied on the newer version.
pub async fn commit_on_base(catalog: &dyn Catalog, base: &Table, tx: Transaction) -> iceberg::Result<Table> {
    tx.commit(&CommitOnce { catalog, base }).await
}

/// A catalog view for one commit attempt, pinned to the table version the summary was computed
/// from. The crate's transaction reloads the table before committing and, when another writer
/// got in between, silently re-applies our action on the newer version with our stale offset
/// map; answering that reload with `base` keeps the commit's requirements on `base`, so the
/// catalog reports the conflict instead. Conflicts are also not marked retryable, so they come
/// back to [`Lakehouse::append`], which re-reads and re-merges.
struct CommitOnce<'a> {
    catalog: &'a dyn Catalog,
    base: &'a Table,
}

impl std::fmt::Debug for CommitOnce<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CommitOnce")
    }
}

#[async_trait]
impl Catalog for CommitOnce<'_> {
    async fn list_namespaces(&self, parent: Option<&NamespaceIdent>) -> iceberg::Result<Vec<NamespaceIdent>> {
        self.catalog.list_namespaces(parent).await
    }
    async fn create_namespace(
        &self,
        namespace: &NamespaceIdent,
        properties: std::collections::HashMap<String, String>,
    ) -> iceberg::Result<Namespace> {
        self.catalog.create_namespace(namespace, properties).await
    }
    async fn get_namespace(&self, namespace: &NamespaceIdent) -> iceberg::Result<Namespace> {
        self.catalog.get_namespace(namespace).await
    }
    async fn namespace_exists(&self, namespace: &NamespaceIdent) -> iceberg::Result<bool> {
        self.catalog.namespace_exists(namespace).await
    }
    async fn update_namespace(
        &self,
        namespace: &NamespaceIdent,
        properties: std::collections::HashMap<String, String>,
    ) -> iceberg::Result<()> {
        self.catalog.update_namespace(namespace, properties).await
    }
    async fn drop_namespace(&self, namespace: &NamespaceIdent) -> iceberg::Result<()> {
        self.catalog.drop_namespace(namespace).await
    }
    async fn list_tables(&self, namespace: &NamespaceIdent) -> iceberg::Result<Vec<TableIdent>> {
        self.catalog.list_tables(namespace).await
    }
    async fn create_table(&self, namespace: &NamespaceIdent, creation: TableCreation) -> iceberg::Result<Table> {
        self.catalog.create_table(namespace, creation).await
    }
    async fn load_table(&self, table: &TableIdent) -> iceberg::Result<Table> {
        if table == self.base.identifier() {
            return Ok(self.base.clone());
        }
        self.catalog.load_table(table).await
    }
    async fn drop_table(&self, table: &TableIdent) -> iceberg::Result<()> {
        self.catalog.drop_table(table).await
    }
    async fn purge_table(&self, table: &TableIdent) -> iceberg::Result<()> {
        self.catalog.purge_table(table).await
    }
    async fn table_exists(&self, table: &TableIdent) -> iceberg::Result<bool> {
        self.catalog.table_exists(table).await
    }
    async fn rename_table(&self, src: &TableIdent, dest: &TableIdent) -> iceberg::Result<()> {
        self.catalog.rename_table(src, dest).await
    }
    async fn register_table(&self, table: &TableIdent, metadata_location: String) -> iceberg::Result<Table> {
        self.catalog.register_table(table, metadata_location).await
    }
    async fn update_table(&self, commit: TableCommit) -> iceberg::Result<Table> {
        self.catalog.update_table(commit).await.map_err(|e| {
            if e.kind() == ErrorKind::CatalogCommitConflicts {
                iceberg::Error::new(ErrorKind::CatalogCommitConflicts, e.message().to_string())
            } else {
                e
            }
        })
    }
}
