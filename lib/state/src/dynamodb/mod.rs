//! The accumulator store on DynamoDB: one table, conditional writes, a sparse GSI of open items.
//!
//! Items (`pk`, `sk`):
//! - accumulator: `acc#<user>#<type>`, `<kind>#<window start>`; `state` and `fences` as JSON,
//!   `version`, `closed`, `window_end` (µs); while open also `gsi_pk` = `open#<kind>#<shard>`
//!   (shard = hash(user) mod N, so one day's windows are not one hot partition) and `gsi_sk` =
//!   `window_end`. Closing removes `gsi_pk`, so the `by_window` index holds open items only,
//!   and sets `ttl` (seconds) so DynamoDB deletes closed state after STATE_TTL_DAYS.
//! - close marker: `marker`, `<kind>`; `closed_through` (µs).
//! - partition progress: `progress`, `<topic-partition>`; `max_event`, `updated_at` (µs),
//!   `received_through` / `applied_through` (the highest offset a batch carried / applied).
//!
//! A merge writes items with TransactWriteItems: a ConditionCheck that the kind's close marker is
//! still before the windows' ends, and Puts conditional on the version read — up to 99 items of
//! one window kind per transaction. A cancelled transaction (a lost race, a moved marker) falls
//! back to one item per transaction, where a lost race retries on the winner's item and a moved
//! marker turns the samples late, as in the embedded store.
//!
//! One concern per file: the item codec, table creation, merges, the bookkeeping items (markers
//! and watermarks), finalize's reads and marks, and request errors.

mod bookkeeping;
mod codec;
mod errors;
mod finalize;
mod merge;
mod table;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use chrono::{DateTime, Utc};
use healthlake_core::WindowKind;

use crate::{
    AccumulatorItem, AccumulatorKey, AccumulatorStore, AccumulatorUpdate, MergeReport, PartitionOffset,
    PartitionProgress, StoreError,
};

/// The sparse index of open accumulators, by window kind, shard and window end.
const INDEX: &str = "by_window";
/// Items written at once; bounded so a big batch does not exhaust provisioned capacity at once.
const WRITE_CONCURRENCY: usize = 16;

#[derive(Debug, Clone)]
pub struct DynamoDbStore {
    client: Client,
    table: String,
    shards: u32,
}

impl DynamoDbStore {
    pub fn new(client: Client, table: impl Into<String>, shards: u32) -> Self {
        Self { client, table: table.into(), shards: shards.max(1) }
    }
}

#[async_trait]
impl AccumulatorStore for DynamoDbStore {
    async fn merge(&self, updates: Vec<AccumulatorUpdate>) -> Result<MergeReport, StoreError> {
        self.merge_updates(updates).await
    }

    async fn advance_watermarks(&self, observations: &[PartitionProgress]) -> Result<(), StoreError> {
        for p in observations {
            for (attr, value) in [("max_event", p.max_event_time), ("updated_at", p.updated_at)] {
                self.raise_to("progress", &p.partition, attr, value).await?;
            }
        }
        Ok(())
    }

    async fn partition_progress(&self) -> Result<Vec<PartitionProgress>, StoreError> {
        self.progress_items().await
    }

    async fn note_received(&self, offsets: &[PartitionOffset]) -> Result<(), StoreError> {
        self.raise_offsets("received_through", offsets).await
    }

    async fn note_applied(&self, offsets: &[PartitionOffset]) -> Result<(), StoreError> {
        self.raise_offsets("applied_through", offsets).await
    }

    async fn advance_close_marker(
        &self,
        kind: WindowKind,
        closed_through: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.raise_to("marker", kind.as_str(), "closed_through", closed_through).await?;
        Ok(self.markers().await?.get(&kind).copied())
    }

    /// A read (a Query of the marker items): the exporter and backfill's dry runs need no write
    /// permission for it.
    async fn close_marker(&self, kind: WindowKind) -> Result<Option<DateTime<Utc>>, StoreError> {
        Ok(self.markers().await?.get(&kind).copied().filter(|m| *m > DateTime::UNIX_EPOCH))
    }

    async fn open_keys(
        &self,
        kind: WindowKind,
        end_at_or_before: DateTime<Utc>,
    ) -> Result<Vec<AccumulatorKey>, StoreError> {
        self.query_open_keys(kind, end_at_or_before).await
    }

    async fn read_items(&self, keys: &[AccumulatorKey]) -> Result<Vec<AccumulatorItem>, StoreError> {
        self.read_items_now(keys).await
    }

    async fn mark_emitted(&self, emitted: &[(AccumulatorKey, i64)]) -> Result<(), StoreError> {
        self.set_emitted(emitted).await
    }

    async fn mark_closed(
        &self,
        closes: &[(AccumulatorKey, i64)],
        expires_at: DateTime<Utc>,
    ) -> Result<Vec<AccumulatorKey>, StoreError> {
        self.set_closed(closes, expires_at).await
    }
}
