//! Decoding and validating a batch of Kafka records, shared by ingest and replay so that a
//! replayed batch is judged exactly as its first delivery was.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use healthlake_core::Validator;
use healthlake_core::decode::{Decoder, WireValue, frame};
use healthlake_core::record::{ErrorRecord, ErrorType, RawRecord};
use tokio::sync::RwLock;

use crate::config::Settings;
use crate::events::InputRecord;
use crate::ingest::IngestError;
use crate::metrics;
use crate::schema_source::{SchemaSource, SchemaSourceError};

/// One decoded record: its valid rows and its error rows.
pub(crate) struct Processed {
    pub(crate) raw: Vec<RawRecord>,
    pub(crate) errors: Vec<ErrorRecord>,
    /// The Kafka record's timestamp (processing time when it has none).
    pub(crate) record_time: DateTime<Utc>,
    /// The record's `topic-partition`.
    pub(crate) partition: String,
}

/// The decoder with its writer-schema cache, and the validator.
pub(crate) struct BatchDecoder {
    strict_mode: bool,
    validator: Validator,
    decoder: RwLock<Decoder>,
    schemas: Box<dyn SchemaSource>,
}

impl BatchDecoder {
    pub(crate) fn new(settings: &Settings, schemas: Box<dyn SchemaSource>) -> Self {
        Self {
            strict_mode: settings.validation.strict_mode,
            validator: Validator::new(settings.validation.clone()),
            decoder: RwLock::new(Decoder::new()),
            schemas,
        }
    }

    /// Decodes and validates every record (pure once the schemas are known); in strict mode a
    /// rejected record fails the batch here, before any effect.
    pub(crate) async fn decode(
        &self,
        records: &[InputRecord],
        now: DateTime<Utc>,
    ) -> Result<Vec<Processed>, IngestError> {
        self.resolve_schemas(records).await?;
        let processed: Vec<Processed> = {
            let decoder = self.decoder.read().await;
            records.iter().map(|r| self.process(&decoder, r, now)).collect()
        };
        if self.strict_mode
            && let Some(first) = processed.iter().flat_map(|p| &p.errors).next()
        {
            let rejected = processed.iter().filter(|p| !p.errors.is_empty()).count();
            return Err(IngestError::StrictModeRejected {
                rejected,
                first: format!(
                    "{} at {}:{}: {}",
                    first.error_type,
                    first.kafka.partition_key(),
                    first.kafka.offset,
                    first.error_message
                ),
            });
        }
        Ok(processed)
    }

    /// Fetches every writer schema the batch needs and the decoder does not know yet, once.
    async fn resolve_schemas(&self, records: &[InputRecord]) -> Result<(), SchemaSourceError> {
        let needed: BTreeSet<u32> = {
            let decoder = self.decoder.read().await;
            records
                .iter()
                .filter_map(|r| match r.value.as_deref().ok().map(frame) {
                    Some(Ok(WireValue::Avro { schema_id, .. })) if !decoder.knows_schema(schema_id) => Some(schema_id),
                    _ => None,
                })
                .collect()
        };
        for schema_id in needed {
            if let Some(text) = self.schemas.fetch(schema_id).await? {
                self.decoder.write().await.register_writer_schema(schema_id, &text);
                metrics::schema_seen(schema_id);
            }
        }
        Ok(())
    }

    fn process(&self, decoder: &Decoder, record: &InputRecord, now: DateTime<Utc>) -> Processed {
        // Without a broker timestamp (never from the event source mapping) the wall clock is all
        // there is to judge future skew against.
        let record_time = record.timestamp.unwrap_or(now);
        let partition = record.kafka.partition_key();
        let decoded = match &record.value {
            Err(reason) => Err((ErrorType::Deserialization, reason.clone())),
            Ok(bytes) => decoder.decode(bytes).map_err(|e| (e.error_type(), e.to_string())),
        };
        match decoded {
            Ok(payload) => {
                let outcome = self.validator.process(&payload, &record.kafka, record_time, now);
                Processed { raw: outcome.raw, errors: outcome.errors, record_time, partition }
            }
            Err((error_type, message)) => Processed {
                raw: vec![],
                errors: vec![ErrorRecord {
                    raw_payload: match &record.value {
                        Ok(bytes) => match std::str::from_utf8(bytes) {
                            Ok(text) => text.to_string(),
                            Err(_) => record.encoded_value(),
                        },
                        Err(_) => record.encoded_value(),
                    },
                    error_type,
                    error_message: message,
                    error_timestamp: now,
                    user_id: None,
                    data_type: None,
                    sample_id: None,
                    processing_time: now,
                    kafka: record.kafka.clone(),
                }],
                record_time,
                partition,
            },
        }
    }
}
