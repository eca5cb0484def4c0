//! The decoder's plans (Avro bodies straight into payloads) against apache-avro's `Value` tree
//! resolved to the reader schema, which they replace: the same payload or an error for the same
//! bodies, over the bundled writer schemas, a writer schema that stretches resolution (fields
//! reordered, extra fields of every kind, named references, promoted types, a reader default),
//! and mutated bodies of both.

use std::sync::OnceLock;

use apache_avro::Schema;
use apache_avro::types::Value;
use healthlake_core::generate::{self, GeneratorConfig, WRITER_SCHEMAS};
use healthlake_core::{Decoder, HealthDataPayload};
use proptest::prelude::*;
use proptest::sample::Index;

/// A producer's writer schema resolution must bridge: fields in another order, fields the reader
/// lacks (enum, fixed, nested record referenced by name twice, array of maps, union), the
/// value as an `int`, unit as `bytes`, and no `isSynced` (the reader's default, false, applies).
const STRETCHING_SCHEMA_ID: u32 = 41;
const STRETCHING_SCHEMA: &str = r#"{"type": "record", "name": "HealthDataPayload", "namespace": "com.example.producer",
  "fields": [
    {"name": "kind", "type": {"type": "enum", "name": "Kind", "symbols": ["A", "B"]}},
    {"name": "samples", "type": {"type": "array", "items": {"type": "record", "name": "HealthSample", "fields": [
        {"name": "where", "type": {"type": "record", "name": "Place", "fields": [
            {"name": "tag", "type": {"type": "fixed", "name": "Tag", "size": 3}},
            {"name": "notes", "type": {"type": "array", "items": {"type": "map", "values": "long"}}}]}},
        {"name": "unit", "type": "bytes"},
        {"name": "value", "type": "int"},
        {"name": "type", "type": "string"},
        {"name": "id", "type": "string"},
        {"name": "startDate", "type": "string"},
        {"name": "endDate", "type": "string"},
        {"name": "createdAt", "type": "string"},
        {"name": "also", "type": ["null", "Place"]},
        {"name": "metadata", "type": ["null", {"type": "map", "values": "string"}]},
        {"name": "sourceBundle", "type": ["null", "string"]}]}}},
    {"name": "appVersion", "type": "string"},
    {"name": "timestamp", "type": "string"},
    {"name": "userId", "type": "string"},
    {"name": "ratio", "type": ["null", "float", "string"]},
    {"name": "deviceId", "type": "string"},
    {"name": "payloadId", "type": "string"}]}"#;

fn decoder() -> &'static Decoder {
    static DECODER: OnceLock<Decoder> = OnceLock::new();
    DECODER.get_or_init(|| {
        let mut decoder = Decoder::new();
        for (id, text) in WRITER_SCHEMAS {
            decoder.register_writer_schema(id, text);
        }
        decoder.register_writer_schema(STRETCHING_SCHEMA_ID, STRETCHING_SCHEMA);
        decoder
    })
}

fn place(tag: &[u8; 3], notes: usize) -> Value {
    Value::Record(vec![
        ("tag".into(), Value::Fixed(3, tag.to_vec())),
        (
            "notes".into(),
            Value::Array(
                (0..notes)
                    .map(|i| Value::Map([("n".to_string(), Value::Long(i as i64 * 1_000_003))].into_iter().collect()))
                    .collect(),
            ),
        ),
    ])
}

/// A value of the stretching schema with `samples` samples.
fn stretching_value(samples: usize) -> Vec<u8> {
    let schema = Schema::parse_str(STRETCHING_SCHEMA).unwrap();
    let sample = |i: usize| {
        Value::Record(vec![
            ("where".into(), place(b"abc", i % 3)),
            ("unit".into(), Value::Bytes("count/min".as_bytes().to_vec())),
            ("value".into(), Value::Int(60 + i as i32)),
            ("type".into(), Value::String("heartRate".into())),
            ("id".into(), Value::String(format!("s-{i}"))),
            ("startDate".into(), Value::String("2025-11-17T10:00:00Z".into())),
            ("endDate".into(), Value::String("2025-11-17T10:01:00Z".into())),
            ("createdAt".into(), Value::String("2025-11-17T10:02:00Z".into())),
            (
                "also".into(),
                if i.is_multiple_of(2) {
                    Value::Union(0, Box::new(Value::Null))
                } else {
                    Value::Union(1, Box::new(place(b"xyz", 1)))
                },
            ),
            (
                "metadata".into(),
                if i.is_multiple_of(2) {
                    Value::Union(0, Box::new(Value::Null))
                } else {
                    Value::Union(
                        1,
                        Box::new(Value::Map([("k".to_string(), Value::String(format!("v{i}")))].into_iter().collect())),
                    )
                },
            ),
            ("sourceBundle".into(), Value::Union(1, Box::new(Value::String("com.example".into())))),
        ])
    };
    let value = Value::Record(vec![
        ("kind".into(), Value::Enum(1, "B".into())),
        ("samples".into(), Value::Array((0..samples).map(sample).collect())),
        ("appVersion".into(), Value::String("3.1".into())),
        ("timestamp".into(), Value::String("2025-11-17T10:03:00Z".into())),
        ("userId".into(), Value::String("user-7".into())),
        ("ratio".into(), Value::Union(1, Box::new(Value::Float(0.5)))),
        ("deviceId".into(), Value::String("device-1".into())),
        ("payloadId".into(), Value::String("p-1".into())),
    ]);
    let mut framed = vec![0];
    framed.extend_from_slice(&STRETCHING_SCHEMA_ID.to_be_bytes());
    framed.extend(apache_avro::to_avro_datum(&schema, value).unwrap());
    framed
}

/// Generated values of every bundled writer schema (some undecodable) and stretching ones.
fn produced() -> &'static [Vec<u8>] {
    static PRODUCED: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    PRODUCED.get_or_init(|| {
        let config = GeneratorConfig {
            records: 300,
            invalid_sample_ratio: 0.2,
            undecodable_record_ratio: 0.1,
            ..GeneratorConfig::default()
        };
        let mut values: Vec<Vec<u8>> = generate::generate(&config).into_iter().map(|r| r.value).collect();
        values.extend([0, 1, 4].map(stretching_value));
        values
    })
}

/// Same payload, or both an error.
fn agree(decoder: &Decoder, value: &[u8]) -> Result<Option<HealthDataPayload>, TestCaseError> {
    match (decoder.decode(value), decoder.decode_reference(value)) {
        (Ok(plan), Ok(reference)) => {
            prop_assert_eq!(&plan, &reference);
            Ok(Some(plan))
        }
        (Err(_), Err(_)) => Ok(None),
        (plan, reference) => Err(TestCaseError::fail(format!("plan {plan:?} but apache-avro {reference:?}"))),
    }
}

#[test]
fn every_writer_schema_gets_a_plan() {
    let decoder = decoder();
    for id in [1, 2, 3, STRETCHING_SCHEMA_ID] {
        assert!(decoder.has_plan(id), "schema {id} decodes through apache-avro");
    }
}

#[test]
fn plans_decode_what_apache_avro_decodes() {
    let decoder = decoder();
    let mut decoded = 0;
    for value in produced() {
        decoded += usize::from(agree(decoder, value).unwrap().is_some());
    }
    assert!(decoded > 250, "only {decoded} values decoded");
    let stretched = decoder.decode(&stretching_value(2)).unwrap();
    let second = &stretched.samples[1];
    assert_eq!(second.is_synced, Some(false), "the reader's default for a field the writer lacks");
    assert_eq!(second.value, Some(61.0));
    assert_eq!(second.unit.as_deref(), Some("count/min"));
    assert_eq!(second.metadata.as_ref().unwrap()["k"], "v1");
    assert_eq!(stretched.user_id.as_deref(), Some("user-7"));
}

/// 2,048 by default; `PROPTEST_CASES` for a long run.
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(2048)
}

#[derive(Debug, Clone)]
enum Edit {
    Overwrite(Index, u8),
    Insert(Index, u8),
    Delete(Index),
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn mutated_bodies_decode_alike_or_fail_alike(
        stretching in any::<bool>(),
        which in any::<Index>(),
        edits in prop::collection::vec(prop_oneof![
            3 => (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Edit::Overwrite(i, b)),
            1 => (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Edit::Insert(i, b)),
            1 => any::<Index>().prop_map(Edit::Delete),
        ], 1..6),
    ) {
        let decoder = decoder();
        // Half the cases mutate a stretching value: its extra fields are where skipping is tested.
        let values = produced();
        let (generated, stretched) = values.split_at(values.len() - 3);
        let pool = if stretching { stretched } else { generated };
        let mut value = pool[which.index(pool.len())].clone();
        for edit in edits {
            // The framing (5 bytes) stays, so the body is what changes.
            let span = value.len().saturating_sub(5);
            match edit {
                Edit::Overwrite(i, b) if span > 0 => value[5 + i.index(span)] = b,
                Edit::Insert(i, b) => value.insert(5 + i.index(span + 1), b),
                Edit::Delete(i) if span > 0 => {
                    value.remove(5 + i.index(span));
                }
                _ => {}
            }
        }
        agree(decoder, &value)?;
    }
}

#[test]
fn values_apache_avro_refuses_in_skipped_fields_are_refused() {
    let decoder = decoder();
    let mut bad_enum = stretching_value(1);
    bad_enum[5] = 0x08; // the `kind` enum's index: 4, of two symbols
    assert!(decoder.decode_reference(&bad_enum).is_err());
    assert!(decoder.decode(&bad_enum).is_err());
}
