//! Kafka values to payloads: Confluent wire format (magic 0, big-endian schema id, Avro body)
//! resolved from the writer schema to our reader schema, or JSON when the event source mapping
//! decoded the Avro itself.

use std::collections::HashMap;
use std::sync::Arc;

use apache_avro::Schema;
use apache_avro::schema::Name;
use apache_avro::schema_compatibility::SchemaCompatibility;

use crate::avro_plan::PayloadPlan;

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
    Readable(Arc<ReadableSchema>),
    Incompatible(String),
}

/// What decoding with one writer schema needs, prepared once per schema id.
#[derive(Debug)]
struct ReadableSchema {
    schema: Schema,
    /// Its named types, for the bounds check.
    names: HashMap<Name, Schema>,
    /// Straight into the payload; None when the schema has a shape only apache-avro decodes.
    plan: Option<PayloadPlan>,
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
                Ok(()) => match crate::avro_bounds::named_types(&schema) {
                    Ok(names) => {
                        let plan = PayloadPlan::compile(&schema, &names, &self.reader);
                        WriterSchema::Readable(Arc::new(ReadableSchema { schema, names, plan }))
                    }
                    Err(e) => WriterSchema::Incompatible(e.to_string()),
                },
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
        let writer = self.readable(schema_id)?;
        self.decode_body(schema_id, writer, writer.plan.as_ref(), body)
    }

    /// The prepared writer schema of `schema_id`, or why its values cannot be decoded.
    fn readable(&self, schema_id: u32) -> Result<&ReadableSchema, DecodeError> {
        match self.writers.get(&schema_id) {
            None => Err(DecodeError::UnknownSchema { schema_id }),
            Some(WriterSchema::Incompatible(reason)) => {
                Err(DecodeError::IncompatibleSchema { schema_id, reason: reason.clone() })
            }
            Some(WriterSchema::Readable(writer)) => Ok(writer),
        }
    }

    /// Decodes an Avro body written with `writer`: through `plan` when there is one, through
    /// apache-avro otherwise.
    fn decode_body(
        &self,
        schema_id: u32,
        writer: &ReadableSchema,
        plan: Option<&PayloadPlan>,
        body: &[u8],
    ) -> Result<HealthDataPayload, DecodeError> {
        // apache-avro reserves what length prefixes claim before reading: hold them against
        // the body first. Its own process-wide `max_allocation_bytes` is left alone: it would
        // not bound block counts or nesting, and it also governs iceberg's manifest reading.
        crate::avro_bounds::check(&writer.schema, &writer.names, body)
            .map_err(|e| DecodeError::Avro { schema_id, reason: e.to_string() })?;
        let avro_error = |reason: String| DecodeError::Avro { schema_id, reason };
        let (payload, read) = match plan {
            Some(plan) => plan.decode(&writer.names, body),
            None => self.decode_with_apache_avro(&writer.schema, body),
        }
        .map_err(avro_error)?;
        if read < body.len() {
            return Err(avro_error(format!("{} trailing bytes after the record", body.len() - read)));
        }
        Ok(payload)
    }

    /// Decodes through apache-avro's `Value` tree, resolved against the reader schema: for writer
    /// schemas the plan does not express.
    fn decode_with_apache_avro(&self, writer: &Schema, body: &[u8]) -> Result<(HealthDataPayload, usize), String> {
        let mut reader = body;
        let value = apache_avro::from_avro_datum(writer, &mut reader, Some(&self.reader)).map_err(|e| e.to_string())?;
        let read = body.len() - reader.len();
        Ok((HealthDataPayload::from_avro(value).map_err(|e| e.to_string())?, read))
    }

    /// Decodes a value as [`Decoder::decode`] does, but Avro through apache-avro only, never the
    /// plan: the reference the plan is tested against.
    #[doc(hidden)]
    pub fn decode_reference(&self, value: &[u8]) -> Result<HealthDataPayload, DecodeError> {
        match frame(value)? {
            WireValue::Avro { schema_id, body } => self.decode_body(schema_id, self.readable(schema_id)?, None, body),
            WireValue::Json(_) => self.decode(value),
        }
    }

    /// Whether values of `schema_id` decode straight into payloads (not through apache-avro).
    #[doc(hidden)]
    pub fn has_plan(&self, schema_id: u32) -> bool {
        matches!(self.writers.get(&schema_id), Some(WriterSchema::Readable(w)) if w.plan.is_some())
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
