//! The bookkeeping items: close markers per window kind and progress per topic-partition. Both
//! only move forward, through a conditional max.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use healthlake_core::WindowKind;
use healthlake_core::time::{from_micros, to_micros};

use super::DynamoDbStore;
use super::codec::{n, s};
use super::errors::{count, request_failed};
use crate::{PartitionOffset, PartitionProgress, StoreError};

impl DynamoDbStore {
    /// Sets a time attribute of a bookkeeping item to `value` unless it already holds a later
    /// one: a conditional max, so racing writers and replays never move it back.
    pub(super) async fn raise_to(
        &self,
        pk: &str,
        sk: &str,
        attr: &str,
        value: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.raise_number(pk, sk, attr, to_micros(value)).await
    }

    /// Sets a numeric attribute of a bookkeeping item to `value` unless it already holds a
    /// larger one.
    pub(super) async fn raise_number(&self, pk: &str, sk: &str, attr: &str, value: i64) -> Result<(), StoreError> {
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
            .expression_attribute_values(":v", n(value))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => Ok(()),
            Err(e) => Err(request_failed("UpdateItem", e)),
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
            .map_err(|e| request_failed("Query", e))?;
        Ok(out.items().to_vec())
    }

    pub(super) async fn markers(&self) -> Result<BTreeMap<WindowKind, DateTime<Utc>>, StoreError> {
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

    /// Progress items; `pending` where a batch's received offset is above the applied one.
    pub(super) async fn progress_items(&self) -> Result<Vec<PartitionProgress>, StoreError> {
        let items = self.bookkeeping_items("progress").await?;
        let number = |item: &HashMap<String, AttributeValue>, name: &str| {
            item.get(name).and_then(|v| v.as_n().ok()).and_then(|v| v.parse::<i64>().ok())
        };
        // An item may hold only offsets: its partition's first batch was received and failed.
        let micros = |item: &HashMap<String, AttributeValue>, name: &str| {
            number(item, name).map(from_micros).unwrap_or(DateTime::UNIX_EPOCH)
        };
        Ok(items
            .iter()
            .filter_map(|item| {
                Some(PartitionProgress {
                    partition: item.get("sk")?.as_s().ok()?.clone(),
                    max_event_time: micros(item, "max_event"),
                    updated_at: micros(item, "updated_at"),
                    pending: number(item, "received_through") > number(item, "applied_through"),
                })
            })
            .collect())
    }

    /// Raises one offset attribute of each partition's progress item.
    pub(super) async fn raise_offsets(&self, attr: &str, offsets: &[PartitionOffset]) -> Result<(), StoreError> {
        for o in offsets {
            self.raise_number("progress", &o.partition, attr, o.offset).await?;
        }
        Ok(())
    }
}
