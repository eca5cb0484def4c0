//! Appends of a replayed batch: one the event source mapping gave up on and stored in its
//! on-failure destination while the stream moved on. The table's committed offsets are already
//! past such a batch, so its append leaves the offset map exactly as it is (neither back nor
//! forward), and a summary mark names the batch so that a rerun of the replay finds its commit.

use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use iceberg::ErrorKind;
use iceberg::spec::{DataFile, SnapshotRef};
use iceberg::table::Table;
use iceberg::transaction::{ApplyTransactionAction, Transaction};

use crate::LakeError;
use crate::catalog::Lakehouse;
use crate::commit::{AppendReport, OFFSETS_PROPERTY, commit_on_base};
use crate::offsets::{carried_summary, committed_offsets};
use crate::tables::TableKind;

/// Snapshot summary key naming the replayed batch a snapshot appended.
pub const REPLAY_PROPERTY: &str = "healthlake.replay";
/// Attempts before a conflicting replay commit gives up (a rerun of the replay completes it).
const COMMIT_ATTEMPTS: usize = 12;

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
        let mut report = AppendReport {
            data_files: files.len(),
            records: files.iter().map(|f| f.record_count()).sum(),
            bytes: files.iter().map(|f| f.file_size_in_bytes()).sum(),
            ..AppendReport::default()
        };
        let attempt = || async {
            let table = self.table(kind).await?;
            if replay_snapshot(&table, batch_id).is_some() {
                return Ok(None);
            }
            let offsets = committed_offsets(&table)?;
            let mut summary = carried_summary(&table);
            summary
                .insert(OFFSETS_PROPERTY.to_string(), serde_json::to_string(&offsets).expect("offset map serializes"));
            summary.insert(REPLAY_PROPERTY.to_string(), batch_id.to_string());
            let tx = Transaction::new(&table);
            let tx = tx
                .fast_append()
                .with_check_duplicate(false)
                .add_data_files(files.clone())
                .set_snapshot_properties(summary)
                .apply(tx)?;
            Ok::<Option<Table>, LakeError>(Some(commit_on_base(self.catalog(), &table, tx).await?))
        };
        let backoff = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(50))
            .with_max_delay(Duration::from_secs(3))
            .with_max_times(COMMIT_ATTEMPTS - 1)
            .with_jitter();
        let committed = attempt
            .retry(backoff)
            .sleep(tokio::time::sleep)
            .when(is_conflict)
            .notify(|_, _| report.conflicts_retried += 1)
            .await
            .map_err(|e| match is_conflict(&e) {
                true => {
                    LakeError::CommitConflict { table: self.ident(kind).to_string(), attempts: COMMIT_ATTEMPTS as u32 }
                }
                false => e,
            })?;
        Ok(committed.map(|table| AppendReport { snapshot_id: table.metadata().current_snapshot_id(), ..report }))
    }
}

fn is_conflict(e: &LakeError) -> bool {
    matches!(e, LakeError::Iceberg(e) if e.kind() == ErrorKind::CatalogCommitConflicts)
}

/// The snapshot of `table` that appended the replay of `batch_id`: the oldest of the current
/// snapshot's ancestors whose summary names it (commits carry `healthlake.*` keys forward, so
/// later snapshots may name it too).
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
