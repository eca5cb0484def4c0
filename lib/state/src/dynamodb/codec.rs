//! Accumulator items as DynamoDB attributes, and the conditional Put that writes one.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, Put, ReturnValuesOnConditionCheckFailure};
use healthlake_core::time::to_micros;

use super::DynamoDbStore;
use super::errors::invalid_request;
use crate::{AccumulatorItem, AccumulatorKey, StoreError};

pub(super) fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

pub(super) fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

pub(super) fn acc_pk(key: &AccumulatorKey) -> String {
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

/// Decodes an accumulator item's attributes.
pub(super) fn item_from(
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

impl DynamoDbStore {
    /// The Put of a merged item, conditional on the version read (or on there being no item).
    pub(super) fn put_for(
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
        .map_err(invalid_request)
    }
}
