//! Kafka values to payloads: Confluent wire format (magic 0, big-endian schema id, Avro body)
//! resolved from the writer schema to our reader schema, or JSON when the event source mapping
//! decoded the Avro itself.

use std::collections::HashMap;
use std::sync::Arc;

use apache_avro::Schema;
use apache_avro::schema_compatibility::SchemaCompatibility;

use crate::payload::HealthDataPayload;
use crate::record::ErrorType;

/// The reader schema: the wire contract this build understands.
pub const READER_SCHEMA: &str = include_str!("../contract/health_data_payload.v1.avsc");

/// How a Kafka value is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireValue<'a> {
    /// Confluent framing: the writer schema id and the Avro body.
    Avro { schema_id: u32, body: &'a [u8] },
    /// A JSON document.
    Json(&'a [u8]),
}

/// Why a value could not become a payload. Each maps to an `error_type` of the errors table.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DecodeError {
    #[error("value is neither Confluent-framed Avro nor JSON ({len} bytes, first byte {first:#04x})")]
    UnknownFraming { len: usize, first: u8 },
    #[error("writer schema {schema_id} is not known to the schema source")]
    UnknownSchema { schema_id: u32 },
    #[error("writer schema {schema_id} cannot be resolved to the reader schema: {reason}")]
    IncompatibleSchema { schema_id: u32, reason: String },
    #[error("Avro body does not decode with writer schema {schema_id}: {reason}")]
    Avro { schema_id: u32, reason: String },
    #[error("JSON value does not decode: {reason}")]
    Json { reason: String },
}

impl DecodeError {
    pub fn error_type(&self) -> ErrorType {
        match self {
            DecodeError::UnknownSchema { .. } => ErrorType::UnknownSchema,
            DecodeError::IncompatibleSchema { .. } => ErrorType::IncompatibleSchema,
            DecodeError::UnknownFraming { .. } | DecodeError::Avro { .. } | DecodeError::Json { .. } => {
                ErrorType::Deserialization
            }
        }
    }
}

/// Splits a Kafka value into its framing.
pub fn frame(value: &[u8]) -> Result<WireValue<'_>, DecodeError> {
    match value.first() {
        Some(0) if value.len() >= 5 => Ok(WireValue::Avro {
            schema_id: u32::from_be_bytes([value[1], value[2], value[3], value[4]]),
            body: &value[5..],
        }),
        Some(first) => {
            let trimmed = value.iter().position(|b| !b.is_ascii_whitespace()).map(|i| value[i]);
            if trimmed == Some(b'{') {
                Ok(WireValue::Json(value))
            } else {
                Err(DecodeError::UnknownFraming { len: value.len(), first: *first })
            }
        }
        None => Err(DecodeError::UnknownFraming { len: 0, first: 0 }),
    }
}

/// A writer schema after its one-time check against the reader schema.
#[derive(Debug, Clone)]
enum WriterSchema {
    Readable(Arc<Schema>),
    Incompatible(String),
}

/// Decodes values against the reader schema, with writer schemas parsed and checked once per id.
#[derive(Debug, Clone)]
pub struct Decoder {
    reader: Arc<Schema>,
    writers: HashMap<u32, WriterSchema>,
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Decoder {
    pub fn new() -> Self {
        let reader = Schema::parse_str(READER_SCHEMA).expect("the bundled reader schema parses");
        Self { reader: Arc::new(reader), writers: HashMap::new() }
    }

    pub fn knows_schema(&self, schema_id: u32) -> bool {
        self.writers.contains_key(&schema_id)
    }

    /// Registers the writer schema text fetched for `schema_id`: parses it and checks that Avro
    /// schema resolution can read it with the reader schema, once, so records only decode.
    /// An unparsable or incompatible schema is remembered as such: its records become error rows.
    pub fn register_writer_schema(&mut self, schema_id: u32, schema_text: &str) {
        let entry = match Schema::parse_str(schema_text) {
            Ok(schema) => match SchemaCompatibility::can_read(&schema, &self.reader) {
                Ok(()) => WriterSchema::Readable(Arc::new(schema)),
                Err(e) => WriterSchema::Incompatible(e.to_string()),
            },
            Err(e) => WriterSchema::Incompatible(format!("schema does not parse: {e}")),
        };
        self.writers.insert(schema_id, entry);
    }

    /// Decodes one Kafka value.
    pub fn decode(&self, value: &[u8]) -> Result<HealthDataPayload, DecodeError> {
        match frame(value)? {
            WireValue::Avro { schema_id, body } => self.decode_avro(schema_id, body),
            WireValue::Json(json) => serde_json::from_slice::<HealthDataPayload>(json)
                .map_err(|e| DecodeError::Json { reason: e.to_string() }),
        }
    }

    fn decode_avro(&self, schema_id: u32, body: &[u8]) -> Result<HealthDataPayload, DecodeError> {
        let writer = match self.writers.get(&schema_id) {
            None => return Err(DecodeError::UnknownSchema { schema_id }),
            Some(WriterSchema::Incompatible(reason)) => {
                return Err(DecodeError::IncompatibleSchema { schema_id, reason: reason.clone() });
            }
            Some(WriterSchema::Readable(schema)) => schema,
        };
        // apache-avro reserves what length prefixes claim before reading: hold them against
        // the body first. Its own process-wide `max_allocation_bytes` is left alone: it would
        // not bound block counts or nesting, and it also governs iceberg's manifest reading.
        crate::avro_bounds::check(writer, body).map_err(|e| DecodeError::Avro { schema_id, reason: e.to_string() })?;
        let mut reader = body;
        let value = apache_avro::from_avro_datum(writer, &mut reader, Some(&self.reader))
            .map_err(|e| DecodeError::Avro { schema_id, reason: e.to_string() })?;
        if !reader.is_empty() {
            return Err(DecodeError::Avro {
                schema_id,
                reason: format!("{} trailing bytes after the record", reader.len()),
            });
        }
        HealthDataPayload::from_avro(value).map_err(|e| DecodeError::Avro { schema_id, reason: e.to_string() })
    }
}

/// Encodes a payload in the Confluent wire format with the given writer schema: what producers
/// send. Used by the demo generator and tests; the pipeline itself only reads.
pub fn encode_confluent(
    schema_id: u32,
    writer_schema: &Schema,
    value: apache_avro::types::Value,
) -> Result<Vec<u8>, apache_avro::Error> {
    let mut out = vec![0u8];
    out.extend_from_slice(&schema_id.to_be_bytes());
    let resolved = value.resolve(writer_schema)?;
    out.extend(apache_avro::to_avro_datum(writer_schema, resolved)?);
    Ok(out)
}
