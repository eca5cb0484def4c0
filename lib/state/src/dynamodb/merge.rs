//! Merges: read the items, apply the updates, write them back conditional on the version read
//! and on the close marker, in transactions of up to 99 items, one item at a time on a lost race.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{CancellationReason, ConditionCheck, KeysAndAttributes, TransactWriteItem};
use backon::{ExponentialBuilder, Retryable};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use healthlake_core::WindowKind;
use healthlake_core::time::to_micros;

use super::codec::{acc_pk, item_from, n, s};
use super::errors::{count, invalid_request, request_failed, service_error};
use super::{DynamoDbStore, WRITE_CONCURRENCY};
use crate::{AccumulatorItem, AccumulatorKey, AccumulatorUpdate, MergeReport, MergeStep, StoreError};

/// Hot keys (many partitions writing one user's window) may lose many races in a row; jittered
/// backoff spreads the writers out.
const MAX_CONFLICT_ATTEMPTS: u32 = 40;
/// Puts per TransactWriteItems: DynamoDB takes 100 actions, one is the marker check.
const TRANSACTION_PUTS: usize = 99;
/// Transactions in flight at once (each up to 99 items).
const GROUP_CONCURRENCY: usize = 4;

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
                report.overflowing.extend(step.overflowing);
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
                report.overflowing.extend(group.iter().flat_map(|(_, _, merged)| merged.overflowing.iter().cloned()));
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
            let merged = result?;
            report.samples_applied += merged.samples_applied;
            report.late.extend(merged.late);
            report.overflowing.extend(merged.overflowing);
            report.conflicts_retried += merged.conflicts_retried;
            report.items_written += usize::from(merged.written);
        }
        report.late.sort();
        report.overflowing.sort();
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
            .map_err(|e| request_failed("GetItem", e))?;
        out.item().map(|attrs| item_from(key.clone(), attrs)).transpose()
    }

    /// Reads many items with strongly consistent BatchGetItems (100 keys a call); the keys
    /// DynamoDB leaves unprocessed (capacity) are asked for again after a backoff.
    pub(super) async fn get_many(
        &self,
        keys: &[&AccumulatorKey],
    ) -> Result<HashMap<AccumulatorKey, AccumulatorItem>, StoreError> {
        let by_id: HashMap<(String, String), &AccumulatorKey> =
            keys.iter().map(|k| ((acc_pk(k), k.window.key()), *k)).collect();
        let found = Mutex::new(HashMap::new());
        for chunk in keys.chunks(100) {
            let mut request = KeysAndAttributes::builder().consistent_read(true);
            for k in chunk {
                request = request
                    .keys(HashMap::from([("pk".to_string(), s(acc_pk(k))), ("sk".to_string(), s(k.window.key()))]));
            }
            let pending = Mutex::new(HashMap::from([(self.table.clone(), request.build().map_err(invalid_request)?)]));
            let (pending, found, by_id) = (&pending, &found, &by_id);
            let read_pending = move || async move {
                let items = std::mem::take(&mut *pending.lock().expect("not poisoned"));
                count("BatchGetItem");
                let out = self
                    .client
                    .batch_get_item()
                    .set_request_items(Some(items))
                    .send()
                    .await
                    .map_err(|e| Unprocessed::Failed(request_failed("BatchGetItem", e)))?;
                for attrs in out.responses().and_then(|r| r.get(&self.table)).into_iter().flatten() {
                    let id = (
                        attrs.get("pk").and_then(|v| v.as_s().ok()).cloned().unwrap_or_default(),
                        attrs.get("sk").and_then(|v| v.as_s().ok()).cloned().unwrap_or_default(),
                    );
                    if let Some(key) = by_id.get(&id) {
                        let item = item_from((*key).clone(), attrs).map_err(Unprocessed::Failed)?;
                        found.lock().expect("not poisoned").insert((*key).clone(), item);
                    }
                }
                match out.unprocessed_keys().filter(|u| !u.is_empty()) {
                    Some(left) => {
                        *pending.lock().expect("not poisoned") = left.clone();
                        Err(Unprocessed::Keys)
                    }
                    None => Ok(()),
                }
            };
            read_pending.retry(unprocessed_backoff()).when(|e| matches!(e, Unprocessed::Keys)).await.map_err(|e| {
                match e {
                    Unprocessed::Failed(e) => e,
                    Unprocessed::Keys => StoreError::Transient {
                        operation: "BatchGetItem",
                        code: "UnprocessedKeys".into(),
                        message: "keys still unprocessed after every retry".into(),
                    },
                }
            })?;
        }
        Ok(found.into_inner().expect("not poisoned"))
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
            .map_err(invalid_request)
    }

    /// Writes up to 99 merged items of one window kind in one TransactWriteItems, with one check
    /// of the kind's marker against the earliest window end among them. Returns false, having
    /// written nothing, when the transaction was cancelled (a lost race, a moved marker, a
    /// conflict with a concurrent transaction): the caller then merges those items one by one,
    /// which resolves each.
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
            Err(e) => Err(request_failed("TransactWriteItems", e)),
        }
    }

    /// Read-merge-write of one item, retried with jittered backoff while it loses races: to a
    /// writer that changed the item first, or to a concurrent transaction on the item or the
    /// close marker (DynamoDB's TransactionConflict: every merge checks the marker item, and
    /// finalize updates it while merges run).
    async fn merge_one(
        &self,
        update: &AccumulatorUpdate,
        existing: Option<AccumulatorItem>,
        marker: Option<DateTime<Utc>>,
    ) -> Result<OneItemMerge, StoreError> {
        let key = &update.key;
        let state = Mutex::new(OneItemState {
            existing,
            reread: false,
            marker_passed: marker.is_some_and(|m| key.window.end() <= m),
        });
        let mut conflicts = 0;
        let state = &state;
        let merged = (move || self.try_merge_one(update, state))
            .retry(race_backoff())
            .when(|lost| !matches!(lost, Lost::Failed(_)))
            .notify(|lost, _| {
                if matches!(lost, Lost::Race) {
                    conflicts += 1;
                    metrics::counter!("dynamodb_conflicts_retried").increment(1);
                }
            })
            .await;
        match merged {
            Ok(merged) => Ok(OneItemMerge { conflicts_retried: conflicts, ..merged }),
            Err(Lost::Failed(e)) => Err(e),
            Err(Lost::Race | Lost::MarkerMoved) => {
                Err(StoreError::ConflictRetriesExhausted { key: key.to_string(), attempts: MAX_CONFLICT_ATTEMPTS })
            }
        }
    }

    /// One attempt of [`Self::merge_one`]: applies the update to the item as last known and
    /// writes it with the marker check in one transaction.
    async fn try_merge_one(
        &self,
        update: &AccumulatorUpdate,
        state: &Mutex<OneItemState>,
    ) -> Result<OneItemMerge, Lost> {
        let key = &update.key;
        let (mut existing, reread, marker_passed) = {
            let s = state.lock().expect("not poisoned");
            (s.existing.clone(), s.reread, s.marker_passed)
        };
        if reread {
            existing = self.get(key).await.map_err(Lost::Failed)?;
        }
        let closed = marker_passed || existing.as_ref().is_some_and(|i| i.closed);
        let step = update.apply_to(existing.as_ref(), closed);
        if !step.changed {
            return Ok(OneItemMerge {
                samples_applied: 0,
                late: step.late,
                overflowing: step.overflowing,
                conflicts_retried: 0,
                written: false,
            });
        }
        let put = self.put_for(key, &step.item, existing.as_ref()).map_err(Lost::Failed)?;
        let check = self.marker_check(key.window.kind, key.window.end()).map_err(Lost::Failed)?;
        count("TransactWriteItems");
        let result = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().condition_check(check).build())
            .transact_items(TransactWriteItem::builder().put(put).build())
            .send()
            .await;
        let reasons = match result {
            Ok(_) => {
                return Ok(OneItemMerge {
                    samples_applied: step.samples_applied,
                    late: vec![],
                    overflowing: step.overflowing,
                    conflicts_retried: 0,
                    written: true,
                });
            }
            Err(SdkError::ServiceError(e)) if e.err().is_transaction_canceled_exception() => match e.err() {
                TransactWriteItemsError::TransactionCanceledException(t) => t.cancellation_reasons().to_vec(),
                _ => vec![],
            },
            Err(e) => return Err(Lost::Failed(request_failed("TransactWriteItems", e))),
        };
        let code = |i: usize| reasons.get(i).and_then(CancellationReason::code).unwrap_or("None");
        // Reasons a retry cannot change (an invalid item, a full item collection) end here.
        if let Some(reason) = reasons.iter().find(|r| matches!(r.code(), Some(c) if !RACE_CODES.contains(&c))) {
            let code = reason.code().unwrap_or_default().to_string();
            let message = reason.message().unwrap_or_default().to_string();
            return Err(Lost::Failed(service_error("TransactWriteItems", code, None, message)));
        }
        let mut s = state.lock().expect("not poisoned");
        if code(0) == "ConditionalCheckFailed" {
            s.marker_passed = true;
        }
        // A lost version check returns the winner's item: the next attempt builds on it without
        // a read. Anything else (a concurrent transaction, throttling) reads the item again.
        let winner = reasons.get(1).filter(|_| code(1) == "ConditionalCheckFailed").and_then(|r| r.item());
        s.existing = winner.map(|attrs| item_from(key.clone(), attrs)).transpose().map_err(Lost::Failed)?;
        s.reread = winner.is_none();
        if code(1) != "None" || code(0) != "ConditionalCheckFailed" { Err(Lost::Race) } else { Err(Lost::MarkerMoved) }
    }
}

/// An update, the item it applies to as read, and the merged item to write.
type Prepared<'a> = (&'a AccumulatorUpdate, Option<AccumulatorItem>, MergeStep);

/// Cancellation reasons that mean a lost race, retried; any other reason is final.
const RACE_CODES: &[&str] =
    &["None", "ConditionalCheckFailed", "TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded"];

/// The backoff between attempts of a one-item merge that lost a race: jittered, so writers that
/// collided spread out instead of colliding again in step.
fn race_backoff() -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(5))
        .with_max_delay(Duration::from_millis(500))
        .with_factor(2.0)
        .with_max_times(MAX_CONFLICT_ATTEMPTS as usize - 1)
        .with_jitter()
}

/// The backoff before asking again for keys BatchGetItem left unprocessed (capacity).
fn unprocessed_backoff() -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(20))
        .with_max_delay(Duration::from_millis(1_280))
        .with_max_times(10)
        .with_jitter()
}

/// Why a read of many items is asked again or fails.
enum Unprocessed {
    Keys,
    Failed(StoreError),
}

/// What a one-item merge knows between attempts.
struct OneItemState {
    /// The item as last known (None: no item).
    existing: Option<AccumulatorItem>,
    /// The item changed in an unknown way: read it before the next attempt.
    reread: bool,
    /// The kind's close marker has passed the window: its samples are late.
    marker_passed: bool,
}

/// Why one attempt of a one-item merge wrote nothing.
enum Lost {
    /// Another writer or a concurrent transaction got there first.
    Race,
    /// The close marker moved past the window: the next attempt reports the samples late.
    MarkerMoved,
    Failed(StoreError),
}

/// What a one-item merge did.
struct OneItemMerge {
    samples_applied: usize,
    late: Vec<(AccumulatorKey, crate::SampleRef)>,
    overflowing: Vec<(AccumulatorKey, crate::SampleRef)>,
    conflicts_retried: usize,
    written: bool,
}
