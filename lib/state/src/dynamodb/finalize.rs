//! Finalize's side of the table: the open items behind a watermark (through the sparse index),
//! and the emitted and closed marks.

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use healthlake_core::time::to_micros;
use healthlake_core::{Window, WindowKind};

use super::codec::{acc_pk, item_from, n, s};
use super::errors::{count, request_failed};
use super::{DynamoDbStore, INDEX, WRITE_CONCURRENCY};
use crate::{AccumulatorItem, AccumulatorKey, StoreError};

impl DynamoDbStore {
    pub(super) async fn query_open_items(
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
                    .map_err(|e| request_failed("Query", e))?;
                for attrs in out.items() {
                    let field = |name: &str| attrs.get(name).and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
                    let window = Window::from_key(&field("sk")).ok_or_else(|| StoreError::Corrupt {
                        key: field("pk"),
                        reason: format!("window key {:?}", field("sk")),
                    })?;
                    let key = AccumulatorKey { user_id: field("user_id"), data_type: field("data_type"), window };
                    let item = item_from(key, attrs)?;
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

    pub(super) async fn set_closed(
        &self,
        keys: &[AccumulatorKey],
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
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
