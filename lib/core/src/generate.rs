//! Realistic, deterministic test and demo data: payloads as producers send them (Confluent wire
//! format with one of several writer schema versions), some invalid samples, some undecodable
//! messages, and for each record what the pipeline must make of it.

use std::collections::HashMap;

use apache_avro::Schema;
use apache_avro::schema::RecordSchema;
use apache_avro::types::Value;
use chrono::{DateTime, Duration, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::decode::encode_confluent;

/// Writer schema versions the generator produces, by registry id: 1 is the contract, 2 reorders
/// fields and adds optional ones, 3 is an older version without the defaulted sample fields and a
/// `float` value (promoted to `double` by resolution).
pub const WRITER_SCHEMAS: [(u32, &str); 3] = [
    (1, include_str!("../contract/writers/1.avsc")),
    (2, include_str!("../contract/writers/2.avsc")),
    (3, include_str!("../contract/writers/3.avsc")),
];

/// A schema id no registry knows: records framed with it are `unknown_schema` errors.
pub const UNKNOWN_SCHEMA_ID: u32 = 9_999;

/// The data types of the demo, with their unit and a plausible value range.
pub const DATA_TYPES: [(&str, &str, f64, f64); 4] = [
    ("heartRate", "count/min", 48.0, 150.0),
    ("steps", "count", 0.0, 2_500.0),
    ("bloodPressureSystolic", "mmHg", 100.0, 145.0),
    ("bloodPressureDiastolic", "mmHg", 60.0, 95.0),
];

#[derive(Debug, Clone)]
pub struct GeneratorConfig {
    pub seed: u64,
    pub topic: String,
    pub partitions: i32,
    pub users: usize,
    pub records: usize,
    pub max_samples_per_record: usize,
    /// Event times are spread over `[start, start + span)`, roughly in order.
    pub start: DateTime<Utc>,
    pub span: Duration,
    /// Share of samples made invalid (negative, out of range, missing field, bad timestamps).
    pub invalid_sample_ratio: f64,
    /// Share of records made undecodable (garbage, truncated Avro, unknown schema id).
    pub undecodable_record_ratio: f64,
}

impl Default for GeneratorConfig {
    fn default() -> Self {
        Self {
            seed: 7,
            topic: "health-data-raw".to_string(),
            partitions: 6,
            users: 40,
            records: 2_000,
            max_samples_per_record: 8,
            start: DateTime::from_timestamp(1_756_684_800, 0).expect("2025-09-01"),
            span: Duration::days(75),
            invalid_sample_ratio: 0.03,
            undecodable_record_ratio: 0.01,
        }
    }
}

/// A valid sample as the pipeline must aggregate it.
#[derive(Debug, Clone, PartialEq)]
pub struct ExpectedSample {
    pub user_id: String,
    pub data_type: String,
    pub start: DateTime<Utc>,
    pub value: f64,
}

/// What the pipeline must make of one record.
#[derive(Debug, Clone, PartialEq)]
pub enum Expectation {
    Undecodable,
    Decoded { valid: Vec<ExpectedSample>, invalid: usize },
}

impl Expectation {
    /// The samples the record carries (valid and invalid); none for an undecodable one.
    pub fn samples(&self) -> usize {
        match self {
            Expectation::Decoded { valid, invalid } => valid.len() + invalid,
            Expectation::Undecodable => 0,
        }
    }
}

/// One Kafka record as a producer sends it.
#[derive(Debug, Clone)]
pub struct ProducedRecord {
    pub key: String,
    pub value: Vec<u8>,
    pub partition: i32,
    pub timestamp: DateTime<Utc>,
    pub expectation: Expectation,
}

/// Kafka's default partitioner is murmur2 of the key; any stable hash keeps a user on one
/// partition, which is all per-partition ordering needs.
pub fn partition_for(key: &str, partitions: i32) -> i32 {
    let mut hash: u32 = 0x811c_9dc5;
    for b in key.bytes() {
        hash ^= u32::from(b);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    (hash % partitions.max(1) as u32) as i32
}

pub fn generate(config: &GeneratorConfig) -> Vec<ProducedRecord> {
    let schemas: Vec<(u32, Schema)> = WRITER_SCHEMAS
        .iter()
        .map(|(id, text)| (*id, Schema::parse_str(text).expect("bundled writer schemas parse")))
        .collect();
    let mut rng = StdRng::seed_from_u64(config.seed);
    let step = config.span.num_seconds().max(1) as f64 / config.records.max(1) as f64;
    let mut out = Vec::with_capacity(config.records);
    for i in 0..config.records {
        let user_id = format!("user-{:04}", rng.random_range(0..config.users.max(1)));
        let partition = partition_for(&user_id, config.partitions);
        // Roughly ordered event time with up to 5 minutes of disorder.
        let base =
            config.start + Duration::seconds((i as f64 * step) as i64) + Duration::seconds(rng.random_range(-300..=0));
        let timestamp = base + Duration::seconds(rng.random_range(1..120));
        if rng.random_bool(config.undecodable_record_ratio.clamp(0.0, 1.0)) {
            let value = undecodable_value(&mut rng, &schemas);
            out.push(ProducedRecord {
                key: user_id,
                value,
                partition,
                timestamp,
                expectation: Expectation::Undecodable,
            });
            continue;
        }
        let (schema_id, schema) = &schemas[rng.random_range(0..schemas.len())];
        let n = rng.random_range(1..=config.max_samples_per_record.max(1));
        let mut valid = Vec::new();
        let mut invalid = 0;
        let mut samples = Vec::with_capacity(n);
        for s in 0..n {
            let (data_type, unit, lo, hi) = DATA_TYPES[rng.random_range(0..DATA_TYPES.len())];
            // Multiples of 0.25 survive the float writer schema exactly.
            let value = (rng.random_range(lo..hi) * 4.0).round() / 4.0;
            let start = base + Duration::seconds(s as i64 * 30);
            let mut sample = SampleFields {
                id: format!("s-{i}-{s}"),
                data_type: data_type.to_string(),
                value,
                unit: unit.to_string(),
                start: start.to_rfc3339(),
                end: (start + Duration::seconds(30)).to_rfc3339(),
                created: (start + Duration::seconds(31)).to_rfc3339(),
            };
            if rng.random_bool(config.invalid_sample_ratio.clamp(0.0, 1.0)) {
                corrupt(&mut rng, &mut sample, start);
                invalid += 1;
            } else {
                valid.push(ExpectedSample { user_id: user_id.clone(), data_type: data_type.to_string(), start, value });
            }
            samples.push(sample);
        }
        let payload = PayloadFields {
            payload_id: format!("p-{i}"),
            device_id: format!("device-{}", &user_id[5..]),
            user_id: user_id.clone(),
            timestamp: timestamp.to_rfc3339(),
            app_version: ["3.2.0", "3.3.1", "4.0.0"][*schema_id as usize % 3].to_string(),
            samples,
        };
        let value = encode_confluent(*schema_id, schema, payload.to_avro(schema))
            .expect("generated payloads match their writer schema");
        out.push(ProducedRecord {
            key: user_id,
            value,
            partition,
            timestamp,
            expectation: Expectation::Decoded { valid, invalid },
        });
    }
    out
}

fn corrupt(rng: &mut StdRng, sample: &mut SampleFields, start: DateTime<Utc>) {
    match rng.random_range(0..6) {
        0 => sample.value = -sample.value - 1.0,
        1 => {
            sample.data_type = "heartRate".to_string();
            sample.unit = "count/min".to_string();
            sample.value = 300.0;
        }
        2 => sample.end = (start - Duration::seconds(60)).to_rfc3339(),
        3 => sample.unit = String::new(),
        4 => sample.start = "not-a-timestamp".to_string(),
        _ => {
            let future = start + Duration::days(3_650);
            sample.start = future.to_rfc3339();
            sample.end = (future + Duration::seconds(30)).to_rfc3339();
        }
    }
}

fn undecodable_value(rng: &mut StdRng, schemas: &[(u32, Schema)]) -> Vec<u8> {
    match rng.random_range(0..3) {
        0 => b"\x7fnot a health payload".to_vec(),
        1 => {
            // A valid frame whose body ends mid-record.
            let (id, schema) = &schemas[0];
            let payload = PayloadFields {
                payload_id: "truncated".into(),
                device_id: "d".into(),
                user_id: "u".into(),
                timestamp: "2025-01-01T00:00:00Z".into(),
                app_version: "1".into(),
                samples: vec![],
            };
            let mut bytes = encode_confluent(*id, schema, payload.to_avro(schema)).expect("encodes");
            bytes.truncate(bytes.len() - 3);
            bytes
        }
        _ => {
            let mut bytes = vec![0u8];
            bytes.extend_from_slice(&UNKNOWN_SCHEMA_ID.to_be_bytes());
            bytes.extend_from_slice(b"\x02\x04abc");
            bytes
        }
    }
}

struct SampleFields {
    id: String,
    data_type: String,
    value: f64,
    unit: String,
    start: String,
    end: String,
    created: String,
}

struct PayloadFields {
    payload_id: String,
    device_id: String,
    user_id: String,
    timestamp: String,
    app_version: String,
    samples: Vec<SampleFields>,
}

impl PayloadFields {
    /// Builds the Avro value in the field order of `schema`, leaving out what it lacks.
    fn to_avro(&self, schema: &Schema) -> Value {
        let Schema::Record(record) = schema else { panic!("payload schema is a record") };
        let sample_schema = record
            .fields
            .iter()
            .find(|f| f.name == "samples")
            .and_then(|f| match &f.schema {
                Schema::Array(array) => Some(array.items.as_ref().clone()),
                _ => None,
            })
            .expect("samples is an array of records");
        let samples: Vec<Value> = self.samples.iter().map(|s| s.to_avro(&sample_schema)).collect();
        let mut values: HashMap<&str, Value> = HashMap::from([
            ("payloadId", Value::String(self.payload_id.clone())),
            ("deviceId", Value::String(self.device_id.clone())),
            ("userId", Value::String(self.user_id.clone())),
            ("timestamp", Value::String(self.timestamp.clone())),
            ("appVersion", Value::String(self.app_version.clone())),
            ("platform", Value::String("ios".into())),
        ]);
        values.insert("samples", Value::Array(samples));
        ordered(record, values)
    }
}

impl SampleFields {
    fn to_avro(&self, schema: &Schema) -> Value {
        let Schema::Record(record) = schema else { panic!("sample schema is a record") };
        let float_value = record.fields.iter().any(|f| f.name == "value" && matches!(f.schema, Schema::Float));
        let value = if float_value { Value::Float(self.value as f32) } else { Value::Double(self.value) };
        let values: HashMap<&str, Value> = HashMap::from([
            ("id", Value::String(self.id.clone())),
            ("type", Value::String(self.data_type.clone())),
            ("value", value),
            ("unit", Value::String(self.unit.clone())),
            ("startDate", Value::String(self.start.clone())),
            ("endDate", Value::String(self.end.clone())),
            ("createdAt", Value::String(self.created.clone())),
            ("sourceBundle", Value::String("com.apple.health".into())),
            ("metadata", Value::Map(HashMap::from([("source".to_string(), Value::String("watch".into()))]))),
            ("isSynced", Value::Boolean(true)),
            ("accuracy", Value::Null),
        ]);
        ordered(record, values)
    }
}

fn ordered(record: &RecordSchema, mut values: HashMap<&str, Value>) -> Value {
    Value::Record(
        record.fields.iter().map(|f| (f.name.clone(), values.remove(f.name.as_str()).unwrap_or(Value::Null))).collect(),
    )
}
