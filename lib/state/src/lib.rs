//! The accumulator store: partial window aggregates with per-partition offset fences, window
//! close markers and per-partition watermarks.
//!
//! [`AccumulatorStore`] is the port; [`SqliteStore`] is the embedded adapter. A DynamoDB adapter
//! implements the same contract (same fence, version and close semantics), so the handlers do not
//! know which one they talk to.

mod dynamodb;
mod model;
mod sqlite;

pub use dynamodb::DynamoDbStore;
pub use model::*;
pub use sqlite::SqliteStore;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use healthlake_core::WindowKind;

/// Errors of a store. Retryable ones fail the batch so that it is delivered again; permanent ones
/// fail it for good (a redelivery would fail the same way). For DynamoDB the line is drawn by the
/// AWS error code ([`healthlake_core::classify_aws_error`]), never by the message.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No answer (timeout, connection, I/O) or the embedded store's database failed: retryable.
    #[error("accumulator store unavailable: {0}")]
    Unavailable(String),
    /// The service answered with a code that may pass later (throttling, a conflict with a
    /// concurrent transaction, a fault on its side), after the SDK's own retries.
    #[error("accumulator store: {operation} failed with {code} (retryable): {message}")]
    Transient { operation: &'static str, code: String, message: String },
    /// The service refused the request for good: access denied, an invalid request, a missing
    /// table or index.
    #[error("accumulator store: {operation} refused with {code}: {message}")]
    Refused { operation: &'static str, code: String, message: String },
    #[error("conditional write on {key} kept conflicting after {attempts} attempts")]
    ConflictRetriesExhausted { key: String, attempts: u32 },
    #[error("stored item {key} is corrupt: {reason}")]
    Corrupt { key: String, reason: String },
}

impl StoreError {
    pub fn is_retryable(&self) -> bool {
        match self {
            StoreError::Unavailable(_) | StoreError::Transient { .. } | StoreError::ConflictRetriesExhausted { .. } => {
                true
            }
            StoreError::Refused { .. } | StoreError::Corrupt { .. } => false,
        }
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        StoreError::Unavailable(e.to_string())
    }
}

#[async_trait]
pub trait AccumulatorStore: Send + Sync {
    /// Merges pre-combined partial aggregates. For each update and each partition in it, only
    /// samples above the item's fence for that partition are applied, and the fence moves to the
    /// highest offset seen. A window that is closed (marked by finalize, or at or below its
    /// kind's close marker) refuses the samples above the fence and reports them back: they are
    /// late. Writes are conditional on the version read; conflicts are retried.
    async fn merge(&self, updates: Vec<AccumulatorUpdate>) -> Result<MergeReport, StoreError>;

    /// Advances each partition's watermark source (max event time seen) monotonically.
    async fn advance_watermarks(&self, observations: &[PartitionProgress]) -> Result<(), StoreError>;

    /// The per-partition progress the watermark is derived from, with `pending` set where a
    /// received offset is above the applied one. A partition known only from
    /// [`AccumulatorStore::note_received`] comes back at the epoch.
    async fn partition_progress(&self) -> Result<Vec<PartitionProgress>, StoreError>;

    /// Records, before any effect of a batch, the highest offset it carries per partition
    /// (monotonic). Until [`AccumulatorStore::note_applied`] reaches it, the partition has
    /// pending records: a batch that keeps failing must hold the watermark, not look idle.
    async fn note_received(&self, offsets: &[PartitionOffset]) -> Result<(), StoreError>;

    /// Records that a batch was applied through these offsets (monotonic).
    async fn note_applied(&self, offsets: &[PartitionOffset]) -> Result<(), StoreError>;

    /// The end of a batch: [`AccumulatorStore::advance_watermarks`], then
    /// [`AccumulatorStore::note_applied`]. A store that can make both one durable commit does
    /// (the embedded store: one fsync per batch fewer).
    async fn finish_batch(
        &self,
        observations: &[PartitionProgress],
        applied: &[PartitionOffset],
    ) -> Result<(), StoreError> {
        self.advance_watermarks(observations).await?;
        self.note_applied(applied).await
    }

    /// Moves the close marker of `kind` forward to `closed_through` (a window end) and returns the
    /// marker now in force. After this returns, merges into windows ending at or before the
    /// marker are refused.
    async fn advance_close_marker(
        &self,
        kind: WindowKind,
        closed_through: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, StoreError>;

    /// The close marker of `kind` now in force (None: nothing closed yet). The default asks to
    /// move it to the epoch, which moves nothing: markers never go back, and no window ends
    /// before 1970.
    async fn close_marker(&self, kind: WindowKind) -> Result<Option<DateTime<Utc>>, StoreError> {
        let marker = self.advance_close_marker(kind, DateTime::UNIX_EPOCH).await?;
        Ok(marker.filter(|m| *m > DateTime::UNIX_EPOCH))
    }

    /// The keys of open items of `kind` whose window ends at or before `end_at_or_before`, as an
    /// index lists them. The index may lag the items (DynamoDB's is eventually consistent): it
    /// may still list an item closed a moment ago or miss one just written, and it carries no
    /// statistics. Read the items with [`AccumulatorStore::read_items`] before acting on them.
    async fn open_keys(
        &self,
        kind: WindowKind,
        end_at_or_before: DateTime<Utc>,
    ) -> Result<Vec<AccumulatorKey>, StoreError>;

    /// The items under `keys` as they are now (strongly consistent reads), in key order; keys
    /// with no item (expired) are left out.
    async fn read_items(&self, keys: &[AccumulatorKey]) -> Result<Vec<AccumulatorItem>, StoreError>;

    /// Open (not yet closed) items of `kind` whose window ends at or before `end_at_or_before`:
    /// the index's keys, read again consistently. Finalize asks for those behind the watermark:
    /// the ones to emit or re-emit, and the ones to close.
    async fn open_items(
        &self,
        kind: WindowKind,
        end_at_or_before: DateTime<Utc>,
    ) -> Result<Vec<AccumulatorItem>, StoreError> {
        let keys = self.open_keys(kind, end_at_or_before).await?;
        let mut items = self.read_items(&keys).await?;
        items.retain(|item| !item.closed);
        Ok(items)
    }

    /// Records that the statistics of each item at the given version were written to the
    /// aggregate table (`emitted_version` only moves forward). Does not change `version`, so
    /// concurrent merges are not disturbed; a merge that read the item before this write may put
    /// back the older `emitted_version`, which costs one needless (idempotent) re-emission.
    async fn mark_emitted(&self, emitted: &[(AccumulatorKey, i64)]) -> Result<(), StoreError>;

    /// Closes each item if it still is at the given version (the one whose statistics were
    /// emitted), and sets it to expire after the state TTL. An item whose version moved since is
    /// left open and returned: the aggregate table lacks its newer statistics, and the next round
    /// emits it again. An item already closed, or gone, counts as closed.
    async fn mark_closed(
        &self,
        closes: &[(AccumulatorKey, i64)],
        expires_at: DateTime<Utc>,
    ) -> Result<Vec<AccumulatorKey>, StoreError>;
}
