//! The accumulator store on DynamoDB: one table, conditional writes, a sparse GSI of open items.
//!
//! Items (`pk`, `sk`):
//! - accumulator: `acc#<user>#<type>`, `<kind>#<window start>`; `state` and `fences` as JSON,
//!   `version`, `closed`, `window_end` (µs); while open also `gsi_pk` = `open#<kind>#<shard>`
//!   (shard = hash(user) mod N, so one day's windows are not one hot partition) and `gsi_sk` =
//!   `window_end`. Closing removes `gsi_pk`, so the `by_window` index holds open items only,
//!   and sets `ttl` (seconds) so DynamoDB deletes closed state after STATE_TTL_DAYS.
//! - close marker: `marker`, `<kind>`; `closed_through` (µs).
//! - partition progress: `progress`, `<topic-partition>`; `max_event`, `updated_at` (µs).
//!
//! A merge writes items with TransactWriteItems: a ConditionCheck that the kind's close marker is
//! still before the windows' ends, and Puts conditional on the version read — up to 99 items of
//! one window kind per transaction. A cancelled transaction (a lost race, a moved marker) falls
//! back to one item per transaction, where a lost race retries on the winner's item and a moved
//! marker turns the samples late, as in the embedded store.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, ConditionCheck, GlobalSecondaryIndex, KeySchemaElement, KeyType,
    KeysAndAttributes, Projection, ProjectionType, Put, ReturnValuesOnConditionCheckFailure, ScalarAttributeType,
    TransactWriteItem,
};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use healthlake_core::time::{from_micros, to_micros};
use healthlake_core::{Window, WindowKind};

use crate::{
    AccumulatorItem, AccumulatorKey, AccumulatorStore, AccumulatorUpdate, MergeReport, MergeStep, PartitionProgress,
    StoreError,
};

const INDEX: &str = "by_window";
/// Hot keys (many partitions writing one user's window) may lose many races in a row; jittered
/// backoff spreads the writers out.
const MAX_CONFLICT_ATTEMPTS: u32 = 40;
/// Conflicts retried at once on the item the failed write returned, before backing off.
const IMMEDIATE_RETRIES: usize = 2;
/// Items written at once; bounded so a big batch does not exhaust provisioned capacity at once.
const WRITE_CONCURRENCY: usize = 16;
/// Puts per TransactWriteItems: DynamoDB takes 100 actions, one is the marker check.
const TRANSACTION_PUTS: usize = 99;
/// Transactions in flight at once (each up to 99 items).
const GROUP_CONCURRENCY: usize = 4;

#[derive(Debug, Clone)]
pub struct DynamoDbStore {
    client: Client,
    table: String,
    shards: u32,
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// Counts a request by operation (`dynamodb_requests{operation}`), so the calls a batch costs
/// show in the metrics next to the pipeline's own.
fn count(operation: &'static str) {
    metrics::counter!("dynamodb_requests", "operation" => operation).increment(1);
}

fn unavailable<E: std::fmt::Debug>(e: E) -> StoreError {
    StoreError::Unavailable(format!("{e:?}"))
}

fn acc_pk(key: &AccumulatorKey) -> String {
    format!("acc#{}", key.entity())
}

fn shard_of(user: &str, shards: u32) -> u32 {
    // FNV-1a: stable across processes and releases, unlike std's RandomState.
    let mut hash: u32 = 0x811c_9dc5;
    for b in user.bytes() {
        hash ^= u32::from(b);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash % shards.max(1)
}

impl DynamoDbStore {
    pub fn new(client: Client, table: impl Into<String>, shards: u32) -> Self {
        Self { client, table: table.into(), shards: shards.max(1) }
    }

    /// Creates the table and its index as the deployment describes them (for local emulators
    /// and tests; production tables come from Terraform).
    pub async fn create_table(&self) -> Result<(), StoreError> {
        let attr = |name: &str, t: ScalarAttributeType| {
            AttributeDefinition::builder().attribute_name(name).attribute_type(t).build().expect("attribute")
        };
        let key =
            |name: &str, t: KeyType| KeySchemaElement::builder().attribute_name(name).key_type(t).build().expect("key");
        count("CreateTable");
        self.client
            .create_table()
            .table_name(&self.table)
            .billing_mode(aws_sdk_dynamodb::types::BillingMode::PayPerRequest)
            .attribute_definitions(attr("pk", ScalarAttributeType::S))
            .attribute_definitions(attr("sk", ScalarAttributeType::S))
            .attribute_definitions(attr("gsi_pk", ScalarAttributeType::S))
            .attribute_definitions(attr("gsi_sk", ScalarAttributeType::N))
            .key_schema(key("pk", KeyType::Hash))
            .key_schema(key("sk", KeyType::Range))
            .global_secondary_indexes(
                GlobalSecondaryIndex::builder()
                    .index_name(INDEX)
                    .key_schema(key("gsi_pk", KeyType::Hash))
                    .key_schema(key("gsi_sk", KeyType::Range))
                    .projection(Projection::builder().projection_type(ProjectionType::All).build())
                    .build()
                    .expect("index"),
            )
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    /// Sends conditional UpdateItems, [`WRITE_CONCURRENCY`] at a time. An update whose condition
    /// fails had nothing to do and is skipped; any other error fails the call.
    async fn update_where_condition_holds(
        &self,
        updates: impl Iterator<Item = UpdateItemFluentBuilder>,
    ) -> Result<(), StoreError> {
        let jobs: Vec<_> = updates
            .map(|update| {
                count("UpdateItem");
                update.send()
            })
            .collect();
        let mut results = futures::stream::iter(jobs).buffer_unordered(WRITE_CONCURRENCY);
        while let Some(result) = results.next().await {
            match result {
                Ok(_) => {}
                Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => {}
                Err(e) => return Err(unavailable(e)),
            }
        }
        Ok(())
    }

    fn item_from(
        &self,
        key: AccumulatorKey,
        attrs: &HashMap<String, AttributeValue>,
    ) -> Result<AccumulatorItem, StoreError> {
        let corrupt = |reason: &str| StoreError::Corrupt { key: key.to_string(), reason: reason.to_string() };
        let text = |name: &str| attrs.get(name).and_then(|v| v.as_s().ok()).ok_or_else(|| corrupt(name));
        let state = serde_json::from_str(text("state")?).map_err(|e| corrupt(&e.to_string()))?;
        let fences = serde_json::from_str(text("fences")?).map_err(|e| corrupt(&e.to_string()))?;
        let version = attrs
            .get("version")
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| corrupt("version"))?;
        let emitted_version =
            attrs.get("emitted_version").and_then(|v| v.as_n().ok()).and_then(|v| v.parse().ok()).unwrap_or(0);
        let closed = attrs.get("closed").and_then(|v| v.as_bool().ok()).copied().unwrap_or(false);
        Ok(AccumulatorItem { key, state, fences, version, emitted_version, closed })
    }

    /// Sets a time attribute of a bookkeeping item to `value` unless it already holds a later
    /// one: a conditional max, so racing writers and replays never move it back.
    async fn raise_to(&self, pk: &str, sk: &str, attr: &str, value: DateTime<Utc>) -> Result<(), StoreError> {
        count("UpdateItem");
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(pk))
            .key("sk", s(sk))
            .update_expression("SET #a = :v")
            .condition_expression("attribute_not_exists(#a) OR #a < :v")
            .expression_attribute_names("#a", attr)
            .expression_attribute_values(":v", n(to_micros(value)))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => Ok(()),
            Err(e) => Err(unavailable(e)),
        }
    }

    /// The items of one bookkeeping partition (`marker` or `progress`): a handful, one page.
    async fn bookkeeping_items(&self, pk: &str) -> Result<Vec<HashMap<String, AttributeValue>>, StoreError> {
        count("Query");
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s(pk))
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?;
        Ok(out.items().to_vec())
    }

    async fn markers(&self) -> Result<BTreeMap<WindowKind, DateTime<Utc>>, StoreError> {
        let items = self.bookkeeping_items("marker").await?;
        let mut markers = BTreeMap::new();
        for item in &items {
            let kind = item.get("sk").and_then(|v| v.as_s().ok()).and_then(|k| k.parse().ok());
            let at = item.get("closed_through").and_then(|v| v.as_n().ok()).and_then(|v| v.parse::<i64>().ok());
            if let (Some(kind), Some(at)) = (kind, at) {
                markers.insert(kind, from_micros(at));
            }
        }
        Ok(markers)
    }

    async fn get(&self, key: &AccumulatorKey) -> Result<Option<AccumulatorItem>, StoreError> {
        count("GetItem");
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(acc_pk(key)))
            .key("sk", s(key.window.key()))
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?;
        out.item().map(|attrs| self.item_from(key.clone(), attrs)).transpose()
    }

    /// Reads many items with BatchGetItem (100 keys a call, unprocessed keys retried).
    async fn get_many(&self, keys: &[&AccumulatorKey]) -> Result<HashMap<AccumulatorKey, AccumulatorItem>, StoreError> {
        let by_id: HashMap<(String, String), &AccumulatorKey> =
            keys.iter().map(|k| ((acc_pk(k), k.window.key()), *k)).collect();
        let mut found = HashMap::new();
        for chunk in keys.chunks(100) {
            let mut request = KeysAndAttributes::builder().consistent_read(true);
            for k in chunk {
                request = request
                    .keys(HashMap::from([("pk".to_string(), s(acc_pk(k))), ("sk".to_string(), s(k.window.key()))]));
            }
            let mut pending = Some(HashMap::from([(self.table.clone(), request.build().map_err(unavailable)?)]));
            for attempt in 0.. {
                let Some(items) = pending.take().filter(|p| !p.is_empty()) else { break };
                if attempt > 0 {
                    tokio::time::sleep(std::time::Duration::from_millis(20 << attempt.min(6))).await;
                }
                count("BatchGetItem");
                let out =
                    self.client.batch_get_item().set_request_items(Some(items)).send().await.map_err(unavailable)?;
                for attrs in out.responses().and_then(|r| r.get(&self.table)).into_iter().flatten() {
                    let id = (
                        attrs.get("pk").and_then(|v| v.as_s().ok()).cloned().unwrap_or_default(),
                        attrs.get("sk").and_then(|v| v.as_s().ok()).cloned().unwrap_or_default(),
                    );
                    if let Some(key) = by_id.get(&id) {
                        found.insert((*key).clone(), self.item_from((*key).clone(), attrs)?);
                    }
                }
                pending = out.unprocessed_keys().cloned();
            }
        }
        Ok(found)
    }

    /// The Put of a merged item, conditional on the version read (or on there being no item).
    fn put_for(
        &self,
        key: &AccumulatorKey,
        item: &AccumulatorItem,
        existing: Option<&AccumulatorItem>,
    ) -> Result<Put, StoreError> {
        let mut attrs = HashMap::from([
            ("pk".to_string(), s(acc_pk(key))),
            ("sk".to_string(), s(key.window.key())),
            ("user_id".to_string(), s(&key.user_id)),
            ("data_type".to_string(), s(&key.data_type)),
            ("state".to_string(), s(serde_json::to_string(&item.state).expect("state serializes"))),
            ("fences".to_string(), s(serde_json::to_string(&item.fences).expect("fences serialize"))),
            ("version".to_string(), n(item.version + 1)),
            ("emitted_version".to_string(), n(item.emitted_version)),
            ("closed".to_string(), AttributeValue::Bool(false)),
            ("window_end".to_string(), n(to_micros(key.window.end()))),
            ("gsi_pk".to_string(), s(format!("open#{}#{}", key.window.kind, shard_of(&key.user_id, self.shards)))),
            ("gsi_sk".to_string(), n(to_micros(key.window.end()))),
        ]);
        attrs.shrink_to_fit();
        match existing {
            None => Put::builder().condition_expression("attribute_not_exists(pk)"),
            Some(old) => Put::builder()
                .condition_expression("version = :v AND closed = :open")
                .expression_attribute_values(":v", n(old.version))
                .expression_attribute_values(":open", AttributeValue::Bool(false)),
        }
        .table_name(&self.table)
        .set_item(Some(attrs))
        // A lost race returns the winner's item, so the retry needs no re-read.
        .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
        .build()
        .map_err(unavailable)
    }

    /// A ConditionCheck that `kind`'s close marker is still before `end`.
    fn marker_check(&self, kind: WindowKind, end: DateTime<Utc>) -> Result<ConditionCheck, StoreError> {
        ConditionCheck::builder()
            .table_name(&self.table)
            .key("pk", s("marker"))
            .key("sk", s(kind.as_str()))
            .condition_expression("attribute_not_exists(closed_through) OR closed_through < :end")
            .expression_attribute_values(":end", n(to_micros(end)))
            .build()
            .map_err(unavailable)
    }

    /// Writes up to 99 merged items of one window kind in one TransactWriteItems, with one check
    /// of the kind's marker against the earliest window end among them. Returns false, having
    /// written nothing, when the transaction was cancelled (a lost race or a moved marker): the
    /// caller then merges those items one by one, which resolves both.
    async fn put_group(
        &self,
        kind: WindowKind,
        group: &[(&AccumulatorUpdate, Option<AccumulatorItem>, MergeStep)],
    ) -> Result<bool, StoreError> {
        let earliest_end = group.iter().map(|(u, _, _)| u.key.window.end()).min().expect("a group is not empty");
        let mut request = self.client.transact_write_items().transact_items(
            TransactWriteItem::builder().condition_check(self.marker_check(kind, earliest_end)?).build(),
        );
        for (update, existing, merged) in group {
            let put = self.put_for(&update.key, &merged.item, existing.as_ref())?;
            request = request.transact_items(TransactWriteItem::builder().put(put).build());
        }
        count("TransactWriteItems");
        match request.send().await {
            Ok(_) => Ok(true),
            Err(SdkError::ServiceError(e)) if e.err().is_transaction_canceled_exception() => Ok(false),
            Err(e) => Err(unavailable(e)),
        }
    }

    /// Read-merge-write of one item; returns (samples applied, late samples, conflicts retried).
    async fn merge_one(
        &self,
        update: &AccumulatorUpdate,
        mut existing: Option<AccumulatorItem>,
        marker: Option<DateTime<Utc>>,
    ) -> Result<(usize, Vec<(AccumulatorKey, crate::SampleRef)>, usize, bool), StoreError> {
        let key = &update.key;
        let mut conflicts = 0;
        let mut marker_passed = marker.is_some_and(|m| key.window.end() <= m);
        for _ in 0..MAX_CONFLICT_ATTEMPTS {
            let closed = marker_passed || existing.as_ref().is_some_and(|i| i.closed);
            let step = update.apply_to(existing.as_ref(), closed);
            if !step.changed {
                return Ok((0, step.late, conflicts, false));
            }
            let put = self.put_for(key, &step.item, existing.as_ref())?;
            let check = self.marker_check(key.window.kind, key.window.end())?;
            count("TransactWriteItems");
            let result = self
                .client
                .transact_write_items()
                .transact_items(TransactWriteItem::builder().condition_check(check).build())
                .transact_items(TransactWriteItem::builder().put(put).build())
                .send()
                .await;
            match result {
                Ok(_) => return Ok((step.samples_applied, vec![], conflicts, true)),
                Err(SdkError::ServiceError(e)) if e.err().is_transaction_canceled_exception() => {
                    let reasons = match e.err() {
                        TransactWriteItemsError::TransactionCanceledException(t) => t.cancellation_reasons().to_vec(),
                        _ => vec![],
                    };
                    let failed = |i: usize| reasons.get(i).and_then(|r| r.code()) == Some("ConditionalCheckFailed");
                    if failed(0) {
                        marker_passed = true;
                    }
                    let winner = reasons.get(1).filter(|_| failed(1)).and_then(|r| r.item());
                    if failed(1) {
                        conflicts += 1;
                        metrics::counter!("dynamodb_conflicts_retried").increment(1);
                    }
                    // The winner's item is fresh now: retry on it at once. After a few losses in
                    // a row the key is hot: back off, then read it again (it will have moved on).
                    existing = match winner {
                        Some(attrs) if !marker_passed && conflicts <= IMMEDIATE_RETRIES => {
                            Some(self.item_from(key.clone(), attrs)?)
                        }
                        _ => {
                            if failed(1) {
                                let ceiling = 4u64 << conflicts.min(6);
                                let wait = rand::Rng::random_range(&mut rand::rng(), 1..=ceiling);
                                tokio::time::sleep(std::time::Duration::from_millis(wait)).await;
                            }
                            self.get(key).await?
                        }
                    };
                }
                Err(e) => return Err(unavailable(e)),
            }
        }
        Err(StoreError::ConflictRetriesExhausted { key: key.to_string(), attempts: MAX_CONFLICT_ATTEMPTS })
    }
}

#[async_trait]
impl AccumulatorStore for DynamoDbStore {
    async fn merge(&self, updates: Vec<AccumulatorUpdate>) -> Result<MergeReport, StoreError> {
        let mut report = MergeReport::default();
        if updates.is_empty() {
            return Ok(report);
        }
        let markers = self.markers().await?;
        let keys: Vec<&AccumulatorKey> = updates.iter().map(|u| &u.key).collect();
        let mut existing = self.get_many(&keys).await?;

        // Fast path: items whose window is open go in transactions of up to 99 puts per window
        // kind (one call instead of one per item). A cancelled group, and every item that may be
        // closed or appears twice, take the one-item path with its conflict handling.
        let mut seen = std::collections::HashSet::new();
        let mut by_kind: BTreeMap<WindowKind, Vec<(&AccumulatorUpdate, Option<AccumulatorItem>, MergeStep)>> =
            BTreeMap::new();
        let mut one_by_one: Vec<(&AccumulatorUpdate, Option<AccumulatorItem>)> = Vec::new();
        for update in &updates {
            let item = existing.remove(&update.key);
            let marker = markers.get(&update.key.window.kind).copied();
            let may_be_closed =
                marker.is_some_and(|m| update.key.window.end() <= m) || item.as_ref().is_some_and(|i| i.closed);
            if may_be_closed || !seen.insert(update.key.clone()) {
                one_by_one.push((update, item));
                continue;
            }
            let step = update.apply_to(item.as_ref(), false);
            if !step.changed {
                report.late.extend(step.late);
                continue;
            }
            by_kind.entry(update.key.window.kind).or_default().push((update, item, step));
        }
        let groups: Vec<_> = by_kind
            .iter()
            .flat_map(|(kind, items)| items.chunks(TRANSACTION_PUTS).map(move |group| (*kind, group)))
            .collect();
        let group_jobs: Vec<_> = groups.iter().map(|(kind, group)| self.put_group(*kind, group)).collect();
        let outcomes: Vec<Result<bool, StoreError>> =
            futures::stream::iter(group_jobs).buffered(GROUP_CONCURRENCY).collect().await;
        for ((_, group), outcome) in groups.iter().zip(outcomes) {
            if outcome? {
                report.items_written += group.len();
                report.samples_applied += group.iter().map(|(_, _, merged)| merged.samples_applied).sum::<usize>();
            } else {
                one_by_one.extend(group.iter().map(|(update, existing, _)| (*update, existing.clone())));
            }
        }

        // Collected first: a lazily mapped iterator of futures trips async-trait's Send bounds.
        let jobs: Vec<_> = one_by_one
            .into_iter()
            .map(|(u, item)| {
                let marker = markers.get(&u.key.window.kind).copied();
                self.merge_one(u, item, marker)
            })
            .collect();
        let mut results = futures::stream::iter(jobs).buffer_unordered(WRITE_CONCURRENCY);
        while let Some(result) = results.next().await {
            let (applied, late, conflicts, written) = result?;
            report.samples_applied += applied;
            report.late.extend(late);
            report.conflicts_retried += conflicts;
            report.items_written += usize::from(written);
        }
        report.late.sort();
        Ok(report)
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
        let items = self.bookkeeping_items("progress").await?;
        let micros = |item: &HashMap<String, AttributeValue>, name: &str| {
            item.get(name).and_then(|v| v.as_n().ok()).and_then(|v| v.parse::<i64>().ok()).map(from_micros)
        };
        Ok(items
            .iter()
            .filter_map(|item| {
                Some(PartitionProgress {
                    partition: item.get("sk")?.as_s().ok()?.clone(),
                    max_event_time: micros(item, "max_event")?,
                    updated_at: micros(item, "updated_at")?,
                })
            })
            .collect())
    }

    async fn advance_close_marker(
        &self,
        kind: WindowKind,
        closed_through: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.raise_to("marker", kind.as_str(), "closed_through", closed_through).await?;
        Ok(self.markers().await?.get(&kind).copied())
    }

    async fn open_items(
        &self,
        kind: WindowKind,
        end_at_or_before: DateTime<Utc>,
    ) -> Result<Vec<AccumulatorItem>, StoreError> {
        let mut items = Vec::new();
        for shard in 0..self.shards {
            let mut start = None;
            loop {
                count("Query");
                let out = self
                    .client
                    .query()
                    .table_name(&self.table)
                    .index_name(INDEX)
                    .key_condition_expression("gsi_pk = :g AND gsi_sk <= :end")
                    .expression_attribute_values(":g", s(format!("open#{kind}#{shard}")))
                    .expression_attribute_values(":end", n(to_micros(end_at_or_before)))
                    .set_exclusive_start_key(start.take())
                    .send()
                    .await
                    .map_err(unavailable)?;
                for attrs in out.items() {
                    let field = |name: &str| attrs.get(name).and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
                    let window = Window::from_key(&field("sk")).ok_or_else(|| StoreError::Corrupt {
                        key: field("pk"),
                        reason: format!("window key {:?}", field("sk")),
                    })?;
                    let key = AccumulatorKey { user_id: field("user_id"), data_type: field("data_type"), window };
                    let item = self.item_from(key, attrs)?;
                    if !item.closed {
                        items.push(item);
                    }
                }
                match out.last_evaluated_key() {
                    Some(k) if !k.is_empty() => start = Some(k.clone()),
                    _ => break,
                }
            }
        }
        items.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(items)
    }

    async fn mark_emitted(&self, emitted: &[(AccumulatorKey, i64)]) -> Result<(), StoreError> {
        // A failed condition: already marked at this version or later (or expired).
        let updates = emitted.iter().map(|(key, version)| {
            self.client
                .update_item()
                .table_name(&self.table)
                .key("pk", s(acc_pk(key)))
                .key("sk", s(key.window.key()))
                .update_expression("SET emitted_version = :v")
                .condition_expression(
                    "attribute_exists(pk) AND (attribute_not_exists(emitted_version) OR emitted_version < :v)",
                )
                .expression_attribute_values(":v", n(*version))
        });
        self.update_where_condition_holds(updates).await
    }

    async fn mark_closed(&self, keys: &[AccumulatorKey], expires_at: DateTime<Utc>) -> Result<(), StoreError> {
        // A failed condition: already expired and deleted, nothing left to close.
        let updates = keys.iter().map(|key| {
            self.client
                .update_item()
                .table_name(&self.table)
                .key("pk", s(acc_pk(key)))
                .key("sk", s(key.window.key()))
                .update_expression("SET closed = :t, #ttl = :ttl, version = version + :one REMOVE gsi_pk")
                .condition_expression("attribute_exists(pk)")
                .expression_attribute_names("#ttl", "ttl")
                .expression_attribute_values(":t", AttributeValue::Bool(true))
                .expression_attribute_values(":ttl", n(expires_at.timestamp()))
                .expression_attribute_values(":one", n(1))
        });
        self.update_where_condition_holds(updates).await
    }
}
