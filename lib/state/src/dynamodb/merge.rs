//! Merges: read the items, apply the updates, write them back conditional on the version read
//! and on the close marker, in transactions of up to 99 items, one item at a time on a lost race.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{ConditionCheck, KeysAndAttributes, TransactWriteItem};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use healthlake_core::WindowKind;
use healthlake_core::time::to_micros;

use super::codec::{acc_pk, item_from, n, s};
use super::errors::{count, unavailable};
use super::{DynamoDbStore, WRITE_CONCURRENCY};
use crate::{AccumulatorItem, AccumulatorKey, AccumulatorUpdate, MergeReport, MergeStep, StoreError};

/// Hot keys (many partitions writing one user's window) may lose many races in a row; jittered
/// backoff spreads the writers out.
const MAX_CONFLICT_ATTEMPTS: u32 = 40;
/// Conflicts retried at once on the item the failed write returned, before backing off.
const IMMEDIATE_RETRIES: usize = 2;
/// Puts per TransactWriteItems: DynamoDB takes 100 actions, one is the marker check.
const TRANSACTION_PUTS: usize = 99;
/// Transactions in flight at once (each up to 99 items).
const GROUP_CONCURRENCY: usize = 4;

/// An update, the item it applies to as read, and the merged item to write.
type Prepared<'a> = (&'a AccumulatorUpdate, Option<AccumulatorItem>, MergeStep);

impl DynamoDbStore {
    pub(super) async fn merge_updates(&self, updates: Vec<AccumulatorUpdate>) -> Result<MergeReport, StoreError> {
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
        let mut by_kind: BTreeMap<WindowKind, Vec<Prepared<'_>>> = BTreeMap::new();
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
        out.item().map(|attrs| item_from(key.clone(), attrs)).transpose()
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
                        found.insert((*key).clone(), item_from((*key).clone(), attrs)?);
                    }
                }
                pending = out.unprocessed_keys().cloned();
            }
        }
        Ok(found)
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
    async fn put_group(&self, kind: WindowKind, group: &[Prepared<'_>]) -> Result<bool, StoreError> {
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
                            Some(item_from(key.clone(), attrs)?)
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
