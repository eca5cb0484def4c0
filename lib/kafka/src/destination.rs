//! The on-failure destination: where a batch goes once its retries are exhausted, so the stream
//! moves on without losing it. One JSON document per batch, shaped like the invocation record
//! Lambda sends for Kafka sources (`requestContext`, `responseContext`, `KafkaBatchInfo`) plus the
//! event itself, so the records can be replayed (`healthlake replay FILE`).

use std::collections::BTreeMap;

use aws_lambda_events::event::kafka::KafkaEvent;
use chrono::{DateTime, Utc};
use iceberg::io::FileIO;
use serde::Serialize;

use crate::batch::{Batch, PartitionRange};
use crate::invoke::InvokeFailure;

#[derive(Debug, thiserror::Error)]
pub enum DestinationError {
    #[error("on-failure destination {location:?}: {message}")]
    Write { location: String, message: String },
}

/// What the destination receives for one failed batch.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FailedBatch {
    pub version: &'static str,
    pub timestamp: DateTime<Utc>,
    pub request_context: RequestContext,
    pub response_context: ResponseContext,
    #[serde(rename = "KafkaBatchInfo")]
    pub kafka_batch_info: KafkaBatchInfo,
    /// The event the function was given, records base64 as the mapping sent them.
    pub payload: KafkaEvent,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestContext {
    pub function_name: String,
    pub condition: &'static str,
    pub approximate_invoke_count: u32,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ResponseContext {
    pub function_error: String,
    pub error_message: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KafkaBatchInfo {
    pub batch_size: usize,
    pub bootstrap_servers: String,
    pub payload_size: usize,
    pub records_info: BTreeMap<String, PartitionRange>,
}

impl FailedBatch {
    pub fn new(
        batch: &Batch,
        event: KafkaEvent,
        bootstrap_servers: &str,
        function_name: &str,
        invoke_count: u32,
        failure: &InvokeFailure,
        now: DateTime<Utc>,
    ) -> Self {
        Self {
            version: "1.0",
            timestamp: now,
            request_context: RequestContext {
                function_name: function_name.to_string(),
                condition: "RetryAttemptsExhausted",
                approximate_invoke_count: invoke_count,
            },
            response_context: ResponseContext {
                function_error: failure.error_type.clone(),
                error_message: failure.error_message.clone(),
            },
            kafka_batch_info: KafkaBatchInfo {
                batch_size: batch.len(),
                bootstrap_servers: bootstrap_servers.to_string(),
                payload_size: batch.payload_bytes(),
                records_info: batch.records_info(),
            },
            payload: event,
        }
    }

    /// A name fixed by the batch's first record, so a batch sent again after a crash (before its
    /// offsets were committed) replaces its own document instead of adding a second one.
    pub fn object_name(&self) -> String {
        let first = self.kafka_batch_info.records_info.iter().next();
        let (group, offset) = first.map(|(g, r)| (g.as_str(), r.first_record_offset)).unwrap_or(("empty", 0));
        format!("{}/{group}-{offset:020}.json", self.timestamp.format("%Y/%m/%d"))
    }
}

/// Writes failed batches under a `file://` or `s3://` prefix through Iceberg's FileIO (local
/// files or S3 through OpenDAL, with the lake's S3 settings).
pub struct FailureDestination {
    prefix: String,
    file_io: FileIO,
}

impl FailureDestination {
    pub fn new(prefix: &str, file_io: FileIO) -> Self {
        Self { prefix: prefix.trim_end_matches('/').to_string(), file_io }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Stores the document; returns where.
    pub async fn send(&self, failed: &FailedBatch) -> Result<String, DestinationError> {
        let location = format!("{}/{}", self.prefix, failed.object_name());
        let error = |message: String| DestinationError::Write { location: location.clone(), message };
        let body = serde_json::to_vec_pretty(failed).map_err(|e| error(e.to_string()))?;
        if let Some(path) = location.strip_prefix("file://")
            && let Some(parent) = std::path::Path::new(path).parent()
        {
            // The local storage of FileIO does not create folders.
            tokio::fs::create_dir_all(parent).await.map_err(|e| error(e.to_string()))?;
        }
        let output = self.file_io.new_output(&location).map_err(|e| error(e.to_string()))?;
        output.write(body.into()).await.map_err(|e| error(e.to_string()))?;
        Ok(location)
    }
}

#[cfg(test)]
mod tests {
    use healthlake_pipeline::replay::StoredBatch;

    use super::*;
    use crate::batch::{BatchLimits, ConsumedRecord};

    /// What the destination stores is what `healthlake replay` reads back.
    #[test]
    fn a_stored_batch_is_read_back_by_replay() {
        let mut batch = Batch::new();
        for offset in [4, 5] {
            let record = ConsumedRecord {
                topic: "health-data-raw".into(),
                partition: 3,
                offset,
                timestamp: DateTime::from_timestamp(1_763_000_000, 0).unwrap(),
                key: Some(b"user-1".to_vec()),
                value: b"{\"payloadId\":\"p\"}".to_vec(),
            };
            batch.offer(record, &BatchLimits::default());
        }
        let failure =
            InvokeFailure { error_type: "Retryable.IngestError".into(), error_message: "iceberg: down".into() };
        let event = batch.event("127.0.0.1:9092");
        let failed = FailedBatch::new(&batch, event.clone(), "127.0.0.1:9092", "ingest", 3, &failure, Utc::now());
        let stored =
            StoredBatch::parse(&String::from_utf8(serde_json::to_vec_pretty(&failed).unwrap()).unwrap()).unwrap();
        assert_eq!(stored.event, event);
        assert_eq!(stored.failure.as_deref(), Some("Retryable.IngestError: iceberg: down"));
    }
}
