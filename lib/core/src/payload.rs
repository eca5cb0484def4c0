//! The wire payload (`HealthDataPayload` in the Avro contract) as plain Rust values.
//!
//! Every field is optional here on purpose: a JSON value handed over by the event source mapping
//! may lack fields the Avro contract makes mandatory, and "required field missing" is a validation
//! result with its own error row, not a reason to drop the whole message.

use std::collections::BTreeMap;

use apache_avro::types::Value;
use serde::{Deserialize, Serialize};

/// One sync from a device: a batch of samples for one user.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct HealthDataPayload {
    pub payload_id: Option<String>,
    pub device_id: Option<String>,
    pub user_id: Option<String>,
    pub timestamp: Option<String>,
    pub app_version: Option<String>,
    pub samples: Vec<HealthSample>,
}

/// One measurement.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct HealthSample {
    pub id: Option<String>,
    #[serde(rename = "type")]
    pub data_type: Option<String>,
    pub value: Option<f64>,
    pub unit: Option<String>,
    pub start_date: Option<String>,
    pub end_date: Option<String>,
    pub created_at: Option<String>,
    pub source_bundle: Option<String>,
    pub metadata: Option<BTreeMap<String, String>>,
    pub is_synced: Option<bool>,
}

/// Why an Avro value could not be read as a payload.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("payload field `{field}`: expected {expected}")]
pub struct PayloadShapeError {
    pub field: &'static str,
    pub expected: &'static str,
}

impl HealthDataPayload {
    /// Reads a payload from an Avro value already resolved to the reader schema.
    pub fn from_avro(value: Value) -> Result<Self, PayloadShapeError> {
        let Value::Record(fields) = value else {
            return Err(PayloadShapeError { field: "<root>", expected: "a record" });
        };
        let mut payload = HealthDataPayload::default();
        for (name, value) in fields {
            match name.as_str() {
                "payloadId" => payload.payload_id = avro_string(value, "payloadId")?,
                "deviceId" => payload.device_id = avro_string(value, "deviceId")?,
                "userId" => payload.user_id = avro_string(value, "userId")?,
                "timestamp" => payload.timestamp = avro_string(value, "timestamp")?,
                "appVersion" => payload.app_version = avro_string(value, "appVersion")?,
                "samples" => match unwrap_union(value) {
                    Value::Array(items) => {
                        payload.samples = items.into_iter().map(HealthSample::from_avro).collect::<Result<_, _>>()?;
                    }
                    Value::Null => {}
                    _ => return Err(PayloadShapeError { field: "samples", expected: "an array" }),
                },
                _ => {}
            }
        }
        Ok(payload)
    }
}

impl HealthSample {
    fn from_avro(value: Value) -> Result<Self, PayloadShapeError> {
        let Value::Record(fields) = unwrap_union(value) else {
            return Err(PayloadShapeError { field: "samples[]", expected: "a record" });
        };
        let mut sample = HealthSample::default();
        for (name, value) in fields {
            match name.as_str() {
                "id" => sample.id = avro_string(value, "id")?,
                "type" => sample.data_type = avro_string(value, "type")?,
                "value" => {
                    sample.value = match unwrap_union(value) {
                        Value::Double(v) => Some(v),
                        Value::Float(v) => Some(f64::from(v)),
                        Value::Long(v) => Some(v as f64),
                        Value::Int(v) => Some(f64::from(v)),
                        Value::Null => None,
                        _ => return Err(PayloadShapeError { field: "value", expected: "a number" }),
                    }
                }
                "unit" => sample.unit = avro_string(value, "unit")?,
                "startDate" => sample.start_date = avro_string(value, "startDate")?,
                "endDate" => sample.end_date = avro_string(value, "endDate")?,
                "createdAt" => sample.created_at = avro_string(value, "createdAt")?,
                "sourceBundle" => sample.source_bundle = avro_string(value, "sourceBundle")?,
                "metadata" => {
                    sample.metadata = match unwrap_union(value) {
                        Value::Map(map) => Some(
                            map.into_iter()
                                .map(|(k, v)| match unwrap_union(v) {
                                    Value::String(s) => Ok((k, s)),
                                    _ => Err(PayloadShapeError { field: "metadata", expected: "a map of strings" }),
                                })
                                .collect::<Result<_, _>>()?,
                        ),
                        Value::Null => None,
                        _ => {
                            return Err(PayloadShapeError { field: "metadata", expected: "a map" });
                        }
                    }
                }
                "isSynced" => {
                    sample.is_synced = match unwrap_union(value) {
                        Value::Boolean(b) => Some(b),
                        Value::Null => None,
                        _ => return Err(PayloadShapeError { field: "isSynced", expected: "a boolean" }),
                    }
                }
                _ => {}
            }
        }
        Ok(sample)
    }
}

fn unwrap_union(value: Value) -> Value {
    match value {
        Value::Union(_, inner) => *inner,
        other => other,
    }
}

fn avro_string(value: Value, field: &'static str) -> Result<Option<String>, PayloadShapeError> {
    match unwrap_union(value) {
        Value::String(s) => Ok(Some(s)),
        Value::Null => Ok(None),
        _ => Err(PayloadShapeError { field, expected: "a string" }),
    }
}
