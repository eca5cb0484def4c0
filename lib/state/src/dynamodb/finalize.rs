//! Finalize's side of the table: the keys of open items behind a watermark (through the sparse
//! index, eventually consistent), the items themselves (consistent reads), and the emitted and
//! closed marks.

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use healthlake_core::time::to_micros;
use healthlake_core::{Window, WindowKind};

use super::codec::{acc_pk, n, s};
use super::errors::{count, request_failed};
use super::{DynamoDbStore, INDEX, WRITE_CONCURRENCY};
use crate::{AccumulatorItem, AccumulatorKey, StoreError};

impl DynamoDbStore {
    /// The keys the sparse index lists as open. The index projects only the keys and
    /// `user_id`/`data_type`, so writes that change an item's statistics do not write the index.
    pub(super) async fn query_open_keys(
        &self,
        kind: WindowKind,
        end_at_or_before: DateTime<Utc>,
    ) -> Result<Vec<AccumulatorKey>, StoreError> {
        let mut keys = Vec::new();
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
                    .map_err(|e| request_failed("Query", e))?;
                for attrs in out.items() {
                    let field = |name: &str| attrs.get(name).and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
                    let window = Window::from_key(&field("sk")).ok_or_else(|| StoreError::Corrupt {
                        key: field("pk"),
                        reason: format!("window key {:?}", field("sk")),
                    })?;
                    keys.push(AccumulatorKey { user_id: field("user_id"), data_type: field("data_type"), window });
                }
                match out.last_evaluated_key() {
                    Some(k) if !k.is_empty() => start = Some(k.clone()),
                    _ => break,
                }
            }
        }
        keys.sort();
        Ok(keys)
    }

    /// The items as they are now: strongly consistent reads of the table, never the index.
    pub(super) async fn read_items_now(&self, keys: &[AccumulatorKey]) -> Result<Vec<AccumulatorItem>, StoreError> {
        let refs: Vec<&AccumulatorKey> = keys.iter().collect();
        let mut items: Vec<AccumulatorItem> = self.get_many(&refs).await?.into_values().collect();
        items.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(items)
    }

    pub(super) async fn set_emitted(&self, emitted: &[(AccumulatorKey, i64)]) -> Result<(), StoreError> {
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

    /// Closes items at the version given; returns those whose version moved (still open).
    pub(super) async fn set_closed(
        &self,
        closes: &[(AccumulatorKey, i64)],
        expires_at: DateTime<Utc>,
    ) -> Result<Vec<AccumulatorKey>, StoreError> {
        let jobs: Vec<_> = closes
            .iter()
            .map(|(key, version)| async move {
                count("UpdateItem");
                let result = self
                    .client
                    .update_item()
                    .table_name(&self.table)
                    .key("pk", s(acc_pk(key)))
                    .key("sk", s(key.window.key()))
                    .update_expression("SET closed = :t, #ttl = :ttl, version = version + :one REMOVE gsi_pk")
                    .condition_expression("version = :v AND closed = :f")
                    .expression_attribute_names("#ttl", "ttl")
                    .expression_attribute_values(":t", AttributeValue::Bool(true))
                    .expression_attribute_values(":f", AttributeValue::Bool(false))
                    .expression_attribute_values(":v", n(*version))
                    .expression_attribute_values(":ttl", n(expires_at.timestamp()))
                    .expression_attribute_values(":one", n(1))
                    .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
                    .send()
                    .await;
                match result {
                    Ok(_) => Ok(None),
                    // No item: expired and deleted. A closed item: another finalizer closed it.
                    // An open one: a merge moved its version after it was read; leave it open.
                    Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => {
                        let still_open = match e.err() {
                            UpdateItemError::ConditionalCheckFailedException(c) => c
                                .item()
                                .is_some_and(|old| old.get("closed").and_then(|v| v.as_bool().ok()) != Some(&true)),
                            _ => false,
                        };
                        Ok(still_open.then(|| key.clone()))
                    }
                    Err(e) => Err(request_failed("UpdateItem", e)),
                }
            })
            .collect();
        let mut results = futures::stream::iter(jobs).buffer_unordered(WRITE_CONCURRENCY);
        let mut moved = Vec::new();
        while let Some(result) = results.next().await {
            moved.extend(result?);
        }
        moved.sort();
        Ok(moved)
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
                Err(e) => return Err(request_failed("UpdateItem", e)),
            }
        }
        Ok(())
    }
}
