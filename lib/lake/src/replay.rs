//! Appends of a replayed batch: one the event source mapping gave up on and stored in its
//! on-failure destination while the stream moved on. The table's committed offsets are already
//! past such a batch, so its append leaves the offset map exactly as it is (neither back nor
//! forward), and a summary mark names the batch so that a rerun of the replay finds its commit.

use backon::Retryable;
use iceberg::ErrorKind;
use iceberg::spec::{DataFile, SnapshotRef};
use iceberg::table::Table;

use crate::LakeError;
use crate::catalog::Lakehouse;
use crate::commit::{AppendReport, COMMIT_ATTEMPTS, append_transaction, commit_on_base};
use crate::offsets::committed_offsets;
use crate::retry::commit_backoff;
use crate::tables::TableKind;

/// Snapshot summary key naming the replayed batch a snapshot appended.
pub const REPLAY_PROPERTY: &str = "healthlake.replay";

impl Lakehouse {
    /// Commits `files` in one snapshot marked with `batch_id`, carrying the committed offset map
    /// forward unchanged. A commit conflict is retried on the newer table, re-reading the map.
    /// `None` when the table already holds a snapshot of this batch: two runs of one replay at
    /// once commit it once, since each attempt checks the version it commits on.
    pub async fn append_replayed(
        &self,
        kind: TableKind,
        files: Vec<DataFile>,
        batch_id: &str,
    ) -> Result<Option<AppendReport>, LakeError> {
        let mut report = AppendReport::of(&files);
        let attempt = || async {
            let table = self.table(kind).await?;
            if replay_snapshot(&table, batch_id).is_some() {
                return Ok(None);
            }
            let offsets = committed_offsets(&table)?;
            let tx = append_transaction(&table, files.clone(), &offsets, &[(REPLAY_PROPERTY, batch_id)])?;
            Ok::<Option<Table>, LakeError>(Some(commit_on_base(self.catalog(), &table, tx).await?))
        };
        let committed = attempt
            .retry(commit_backoff(COMMIT_ATTEMPTS))
            .sleep(tokio::time::sleep)
            .when(is_conflict)
            .notify(|_, _| report.conflicts_retried += 1)
            .await
            .map_err(|e| match is_conflict(&e) {
                true => LakeError::CommitConflict { table: self.ident(kind).to_string(), attempts: COMMIT_ATTEMPTS },
                false => e,
            })?;
        Ok(committed.map(|table| AppendReport { snapshot_id: table.metadata().current_snapshot_id(), ..report }))
    }
}

fn is_conflict(e: &LakeError) -> bool {
    matches!(e, LakeError::Iceberg(e) if e.kind() == ErrorKind::CatalogCommitConflicts)
}

/// The snapshot of `table` that appended the replay of `batch_id`: the oldest of the current
/// snapshot's ancestors whose summary names it (snapshots of older versions carried the key
/// forward, so later snapshots may name it too).
pub fn replay_snapshot(table: &Table, batch_id: &str) -> Option<SnapshotRef> {
    let metadata = table.metadata();
    let mut found = None;
    let mut next = metadata.current_snapshot().cloned();
    while let Some(snapshot) = next {
        if snapshot.summary().additional_properties.get(REPLAY_PROPERTY).is_some_and(|b| b == batch_id) {
            found = Some(snapshot.clone());
        }
        next = snapshot.parent_snapshot_id().and_then(|id| metadata.snapshot_by_id(id).cloned());
    }
    found
}
