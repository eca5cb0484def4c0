//! The decoder under fuzzing: arbitrary bytes, truncated and mutated producer messages, Avro
//! length prefixes that claim far more than the value holds, large values within the Lambda
//! event cap, and hostile JSON. Whatever arrives ends as a payload or as an error carrying the
//! reason its error row will show: never a panic, and never more heap than a bound.
//!
//! `PROPTEST_CASES` raises the case count of every property for a long run.

use std::sync::OnceLock;

use chrono::{DateTime, Utc};
use healthlake_core::generate::{self, GeneratorConfig, WRITER_SCHEMAS};
use healthlake_core::record::{ErrorType, KafkaCoordinates};
use healthlake_core::{DecodeError, Decoder, HealthDataPayload, Validator};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{FileFailurePersistence, TestCaseError};

/// A synchronous Lambda event is at most 6 MB, base64 included: no single value is larger.
const EVENT_CAP: usize = 6 * 1024 * 1024;
/// The largest value that fits in an event once base64 has grown it by a third.
const LARGEST_VALUE: usize = EVENT_CAP / 4 * 3 - 64 * 1024;

fn config(default_cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(default_cases);
    // Integration tests have no lib.rs beside them for proptest to find: name the file.
    let failure_persistence = Some(Box::new(FileFailurePersistence::WithSource("proptest-regressions")) as Box<_>);
    ProptestConfig { cases, failure_persistence, ..ProptestConfig::default() }
}

fn decoder() -> &'static Decoder {
    static DECODER: OnceLock<Decoder> = OnceLock::new();
    DECODER.get_or_init(|| {
        let mut d = Decoder::new();
        for (id, text) in WRITER_SCHEMAS {
            d.register_writer_schema(id, text);
        }
        d.register_writer_schema(NESTING_SCHEMA_ID, &with_extra_field(NESTING_FIELD));
        d.register_writer_schema(HUGE_FIXED_SCHEMA_ID, &with_extra_field(HUGE_FIXED_FIELD));
        d
    })
}

/// Writer schemas a producer may register, since the reader ignores fields it lacks: one adds a
/// recursive field, nesting one level per byte; one adds a `fixed` of 100 GB.
const NESTING_SCHEMA_ID: u32 = 7;
const NESTING_FIELD: &str = r#"{"name": "extra", "type": ["null",
    {"type": "record", "name": "Node", "fields": [{"name": "next", "type": ["null", "Node"]}]}]}"#;
const HUGE_FIXED_SCHEMA_ID: u32 = 8;
const HUGE_FIXED_FIELD: &str =
    r#"{"name": "extra", "type": ["null", {"type": "fixed", "name": "Blob", "size": 100000000000}]}"#;

/// The contract with `field` put first.
fn with_extra_field(field: &str) -> String {
    let contract = WRITER_SCHEMAS[0].1;
    let at = contract.find("\"fields\": [").expect("the contract has fields") + "\"fields\": [".len();
    format!("{}{field},{}", &contract[..at], &contract[at..])
}

/// Valid producer messages of every writer schema version (some with invalid samples).
fn produced() -> &'static [Vec<u8>] {
    static PRODUCED: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    PRODUCED.get_or_init(|| {
        let config = GeneratorConfig {
            records: 48,
            invalid_sample_ratio: 0.2,
            undecodable_record_ratio: 0.0,
            ..GeneratorConfig::default()
        };
        generate::generate(&config).into_iter().map(|r| r.value).collect()
    })
}

/// The same payloads as JSON, as the event source mapping hands them over when it decodes Avro.
fn produced_json() -> &'static [Vec<u8>] {
    static PRODUCED: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    PRODUCED.get_or_init(|| {
        produced()
            .iter()
            .map(|v| serde_json::to_vec(&decoder().decode(v).expect("generated values decode")).expect("serializes"))
            .collect()
    })
}

/// The peak heap one decode may hold. Decoded Avro is a tree of values, tens of bytes for an
/// item that may take a byte or two on the wire, and resolution builds a second tree, so the
/// bound is a multiple of the input, plus room for each decode's schema bookkeeping.
fn heap_bound(input_len: usize) -> u64 {
    (1 << 20) + 128 * input_len as u64
}

fn now() -> DateTime<Utc> {
    "2025-11-20T12:00:00Z".parse().expect("timestamp")
}

fn reason(e: &DecodeError) -> Option<&str> {
    match e {
        DecodeError::IncompatibleSchema { reason, .. }
        | DecodeError::Avro { reason, .. }
        | DecodeError::Json { reason } => Some(reason),
        DecodeError::UnknownFraming { .. } | DecodeError::UnknownSchema { .. } => None,
    }
}

fn measured_decode(input: &[u8]) -> (Result<HealthDataPayload, DecodeError>, allocation_counter::AllocationInfo) {
    let mut result = None;
    let heap = allocation_counter::measure(|| result = Some(decoder().decode(input)));
    (result.expect("the measured closure ran"), heap)
}

/// Decodes `input` as ingest does and checks that it ends well: a payload whose samples each
/// land in exactly one of raw or errors, or a decode error of a decode `error_type` with a
/// reason; within [`heap_bound`] either way.
fn decodes_or_reports(input: &[u8]) -> Result<Option<HealthDataPayload>, TestCaseError> {
    let (result, heap) = measured_decode(input);
    prop_assert!(
        heap.bytes_max <= heap_bound(input.len()),
        "decoding {} bytes held {} bytes at peak (bound {})",
        input.len(),
        heap.bytes_max,
        heap_bound(input.len())
    );
    match result {
        Ok(payload) => {
            let kafka = KafkaCoordinates { topic: "fuzz".into(), partition: 0, offset: 0 };
            let outcome = Validator::default().process(&payload, &kafka, now(), now());
            prop_assert_eq!(outcome.raw.len() + outcome.errors.len(), payload.samples.len().max(1));
            Ok(Some(payload))
        }
        Err(e) => {
            prop_assert!(
                matches!(
                    e.error_type(),
                    ErrorType::Deserialization | ErrorType::UnknownSchema | ErrorType::IncompatibleSchema
                ),
                "{e:?}"
            );
            prop_assert!(reason(&e).is_none_or(|r| !r.trim().is_empty()), "{e:?}");
            prop_assert!(!e.to_string().is_empty());
            Ok(None)
        }
    }
}

fn framed(schema_id: u32, body: &[u8]) -> Vec<u8> {
    let mut v = vec![0u8];
    v.extend_from_slice(&schema_id.to_be_bytes());
    v.extend_from_slice(body);
    v
}

/// Avro `long`: zig-zag, then a base-128 varint.
fn long(n: i64) -> Vec<u8> {
    apache_avro::to_avro_datum(&apache_avro::Schema::Long, apache_avro::types::Value::Long(n)).expect("a long encodes")
}

fn string(s: &str) -> Vec<u8> {
    let mut out = long(s.len() as i64);
    out.extend_from_slice(s.as_bytes());
    out
}

/// Writer schema 1 (the contract): the payload's five strings.
fn payload_head(device_id: &str) -> Vec<u8> {
    [string("p"), string(device_id), string("u"), string("2025-11-17T10:00:00Z"), string("1")].concat()
}

/// Writer schema 1: one sample, up to (not including) its metadata union.
fn sample_head(id: &str) -> Vec<u8> {
    let mut out = [string(id), string("heartRate")].concat();
    out.extend_from_slice(&72.0f64.to_le_bytes());
    for s in ["count/min", "2025-11-17T09:00:00Z", "2025-11-17T09:01:00Z", "2025-11-17T09:01:00Z"] {
        out.extend(string(s));
    }
    out.extend(long(1));
    out.extend(string("com.apple.health"));
    out
}

/// Lengths an attacker can inflate, in the order they appear in a writer-1 body.
#[derive(Debug, Clone, Copy)]
enum Claim {
    PayloadString,
    SamplesCount,
    SamplesBlockBytes,
    SampleString,
    MetadataCount,
    MetadataKey,
    MetadataValue,
}

const CLAIMS: [Claim; 7] = [
    Claim::PayloadString,
    Claim::SamplesCount,
    Claim::SamplesBlockBytes,
    Claim::SampleString,
    Claim::MetadataCount,
    Claim::MetadataKey,
    Claim::MetadataValue,
];

/// A writer-1 body that is well formed up to one length prefix, which claims `n`.
fn body_claiming(claim: Claim, n: i64) -> Vec<u8> {
    let mut out = Vec::new();
    if let Claim::PayloadString = claim {
        out.extend(long(n));
        return out;
    }
    out.extend(payload_head("d"));
    match claim {
        Claim::SamplesCount => out.extend(long(n)),
        // A negative block count is followed by the block's size in bytes.
        Claim::SamplesBlockBytes => {
            out.extend(long(n.checked_neg().unwrap_or(i64::MIN)));
            out.extend(long(n));
        }
        Claim::SampleString => {
            out.extend(long(1));
            out.extend(long(n));
        }
        _ => {
            out.extend(long(1));
            out.extend(sample_head("s"));
            out.extend(long(1));
            match claim {
                Claim::MetadataCount => out.extend(long(n)),
                Claim::MetadataKey => {
                    out.extend(long(1));
                    out.extend(long(n));
                }
                _ => {
                    out.extend(long(1));
                    out.extend(string("k"));
                    out.extend(long(n));
                }
            }
        }
    }
    out
}

fn huge_long() -> impl Strategy<Value = i64> {
    prop_oneof![
        Just(i64::MAX),
        Just(i64::MIN),
        Just(-1i64),
        (1i64 << 16)..(1i64 << 32),
        (1i64 << 32)..=i64::MAX,
        i64::MIN..=-(1i64 << 16),
        any::<i64>(),
    ]
}

fn schema_id() -> impl Strategy<Value = u32> {
    prop_oneof![8 => 1u32..=3, 1 => Just(NESTING_SCHEMA_ID), 1 => Just(HUGE_FIXED_SCHEMA_ID), 2 => any::<u32>()]
}

#[derive(Debug, Clone)]
enum Edit {
    Overwrite(Index, u8),
    Insert(Index, u8),
    Delete(Index),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        3 => (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Edit::Overwrite(i, b)),
        1 => (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Edit::Insert(i, b)),
        1 => any::<Index>().prop_map(Edit::Delete),
    ]
}

/// Applies edits past the first `keep` bytes, so the framing survives when the test wants it to.
fn mutate(value: &[u8], keep: usize, edits: &[Edit]) -> Vec<u8> {
    let mut v = value.to_vec();
    for e in edits {
        let span = v.len().saturating_sub(keep);
        match *e {
            Edit::Overwrite(i, b) if span > 0 => v[keep + i.index(span)] = b,
            Edit::Insert(i, b) => v.insert(keep + i.index(span + 1), b),
            Edit::Delete(i) if span > 0 => {
                v.remove(keep + i.index(span));
            }
            _ => {}
        }
    }
    v
}

proptest! {
    #![proptest_config(config(1024))]

    #[test]
    fn arbitrary_bytes_decode_or_report(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        decodes_or_reports(&bytes)?;
    }

    #[test]
    fn arbitrary_avro_bodies_decode_or_report(id in schema_id(), body in prop::collection::vec(any::<u8>(), 0..2048)) {
        decodes_or_reports(&framed(id, &body))?;
    }

    #[test]
    fn mutated_messages_decode_or_report(
        record in any::<Index>(),
        edits in prop::collection::vec(edit(), 1..8),
        keep_framing in any::<bool>(),
    ) {
        let value = record.get(produced());
        decodes_or_reports(&mutate(value, if keep_framing { 5 } else { 0 }, &edits))?;
    }

    #[test]
    fn a_huge_length_spliced_into_a_message_is_reported(
        record in any::<Index>(),
        at in any::<Index>(),
        replaced in 1usize..4,
        n in huge_long(),
    ) {
        let value = record.get(produced());
        let body = &value[5..];
        let at = at.index(body.len());
        let mut spliced = value[..5 + at].to_vec();
        spliced.extend(long(n));
        spliced.extend_from_slice(&body[(at + replaced).min(body.len())..]);
        decodes_or_reports(&spliced)?;
    }

    #[test]
    fn length_prefixes_claiming_more_than_the_value_holds_are_reported(
        claim in prop::sample::select(CLAIMS.to_vec()),
        n in huge_long(),
        tail in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        let mut body = body_claiming(claim, n);
        body.extend_from_slice(&tail);
        decodes_or_reports(&framed(1, &body))?;
    }

    #[test]
    fn mutated_json_decodes_or_reports(record in any::<Index>(), edits in prop::collection::vec(edit(), 1..8)) {
        let value = record.get(produced_json());
        decodes_or_reports(&mutate(value, 1, &edits))?;
    }

    #[test]
    fn arbitrary_json_in_payload_fields_decodes_or_reports(
        payload in json_value(),
        sample in json_value(),
        field in prop::sample::select(vec!["userId", "samples", "timestamp", "payloadId"]),
        sample_field in prop::sample::select(vec!["value", "metadata", "isSynced", "startDate", "type"]),
    ) {
        let mut one = serde_json::Map::new();
        for (k, v) in [("id", "s".into()), ("type", "steps".into()), ("value", 1.0.into()), (sample_field, sample)] {
            one.insert(k.to_string(), v);
        }
        let mut doc = serde_json::Map::new();
        doc.insert("samples".to_string(), serde_json::Value::Array(vec![one.into()]));
        doc.insert(field.to_string(), payload);
        decodes_or_reports(&serde_json::to_vec(&doc).expect("serializes"))?;
    }

    #[test]
    fn deep_nesting_through_a_recursive_writer_schema_is_reported(depth in 1usize..200_000) {
        let mut body = vec![2u8; depth];
        body.push(0);
        body.extend(payload_head("d"));
        body.extend([long(1), sample_head("s"), long(0), vec![1], long(0)].concat());
        let decoded = decodes_or_reports(&framed(NESTING_SCHEMA_ID, &body))?;
        // The contract nests five levels: a dozen more are still a payload, a hundred are not.
        if depth <= 12 || depth >= 100 {
            prop_assert_eq!(decoded.is_some(), depth <= 12, "depth {}", depth);
        }
    }

    #[test]
    fn deeply_nested_json_is_reported(depth in 1usize..20_000, shape in 0u8..3) {
        let (open, close) = match shape {
            0 => ("[", "]"),
            1 => ("{\"a\":", "}"),
            _ => ("[{\"b\":[", "]}]"),
        };
        let field = if depth % 2 == 0 { "samples" } else { "unknownField" };
        let doc = format!("{{\"{field}\":{}1{}}}", open.repeat(depth), close.repeat(depth));
        decodes_or_reports(doc.as_bytes())?;
    }
}

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<u64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_map(serde_json::Value::from),
        ".{0,64}".prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(6, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(serde_json::Value::Array),
            prop::collection::btree_map(".{0,8}", inner, 0..8)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

#[test]
fn a_fixed_of_100_gb_is_reported_without_reserving_it() {
    let body = [long(1), vec![0; 64]].concat();
    let decoded = decodes_or_reports(&framed(HUGE_FIXED_SCHEMA_ID, &body)).unwrap_or_else(|e| panic!("{e}"));
    assert!(decoded.is_none());
    let valid = [long(0), payload_head("d"), long(1), sample_head("s"), long(0), vec![1], long(0)].concat();
    assert!(decodes_or_reports(&framed(HUGE_FIXED_SCHEMA_ID, &valid)).unwrap_or_else(|e| panic!("{e}")).is_some());
}

#[test]
fn every_truncation_of_a_message_is_an_error() {
    for value in produced().iter().take(12) {
        for len in 0..value.len() {
            let decoded = decodes_or_reports(&value[..len]).unwrap_or_else(|e| panic!("{len} bytes: {e}"));
            assert!(decoded.is_none(), "a message truncated to {len} of {} bytes decoded", value.len());
        }
    }
}

/// Decodes a large valid value, within the bound, and prints its peak heap for the record.
fn decode_large(input: &[u8]) -> HealthDataPayload {
    assert!(input.len() <= LARGEST_VALUE, "{} bytes exceed what one event can carry", input.len());
    let (_, heap) = measured_decode(input);
    eprintln!(
        "{} bytes decoded holding {} bytes at peak ({:.1}x)",
        input.len(),
        heap.bytes_max,
        heap.bytes_max as f64 / input.len() as f64
    );
    decodes_or_reports(input).unwrap_or_else(|e| panic!("{e}")).expect("a large valid value decodes")
}

#[test]
fn a_string_of_megabytes_decodes() {
    let device = "d".repeat(LARGEST_VALUE - 200);
    let body = [payload_head(&device), long(1), sample_head("s"), long(0), vec![0], long(0)].concat();
    let payload = decode_large(&framed(1, &body));
    assert_eq!(payload.device_id.as_deref().map(str::len), Some(device.len()));
    assert_eq!(payload.samples.len(), 1);
}

#[test]
fn tens_of_thousands_of_samples_decode() {
    let one = [sample_head("sample-000000"), long(0), vec![1]].concat();
    let n = (LARGEST_VALUE - 100) / one.len();
    let mut body = [payload_head("d"), long(n as i64)].concat();
    for i in 0..n {
        body.extend([sample_head(&format!("sample-{i:06}")), long(0), vec![1]].concat());
    }
    body.extend(long(0));
    let payload = decode_large(&framed(1, &body));
    assert_eq!(payload.samples.len(), n);
    assert_eq!(payload.samples[n - 1].id.as_deref(), Some(format!("sample-{:06}", n - 1).as_str()));
}

#[test]
fn samples_of_empty_strings_the_densest_avro_decode() {
    // The least bytes per sample: empty strings, so the most values per input byte.
    let mut one = Vec::new();
    for _ in 0..2 {
        one.extend(string(""));
    }
    one.extend_from_slice(&1.0f64.to_le_bytes());
    for _ in 0..4 {
        one.extend(string(""));
    }
    one.extend([long(0), long(0), vec![0]].concat());
    let n = (LARGEST_VALUE - 100) / one.len();
    let mut body = [payload_head("d"), long(n as i64)].concat();
    for _ in 0..n {
        body.extend_from_slice(&one);
    }
    body.extend(long(0));
    assert_eq!(decode_large(&framed(1, &body)).samples.len(), n);
}

#[test]
fn a_metadata_map_of_many_entries_decodes() {
    let n = 200_000;
    let mut body = [payload_head("d"), long(1), sample_head("s"), long(1), long(n as i64)].concat();
    for i in 0..n {
        body.extend(string(&format!("k{i}")));
        body.extend(string(""));
    }
    body.extend([long(0), vec![1], long(0)].concat());
    let payload = decode_large(&framed(1, &body));
    assert_eq!(payload.samples[0].metadata.as_ref().map(|m| m.len()), Some(n));
}

#[test]
fn large_json_values_decode() {
    let user = "u".repeat(LARGEST_VALUE - 300);
    let doc = serde_json::json!({ "userId": user, "samples": [{ "id": "s", "value": 1.5 }] });
    let payload = decode_large(&serde_json::to_vec(&doc).expect("serializes"));
    assert_eq!(payload.user_id.map(|u| u.len()), Some(user.len()));

    let sample = serde_json::json!({ "id": "s", "type": "steps", "value": 1.0, "unit": "count",
        "startDate": "2025-11-17T09:00:00Z", "endDate": "2025-11-17T09:01:00Z" });
    let one = serde_json::to_vec(&sample).expect("serializes").len() + 1;
    let n = (LARGEST_VALUE - 100) / one;
    let doc = serde_json::json!({ "userId": "u", "samples": vec![sample; n] });
    assert_eq!(decode_large(&serde_json::to_vec(&doc).expect("serializes")).samples.len(), n);

    // A number of millions of digits.
    let digits = format!("{{\"samples\":[{{\"value\":{}}}]}}", "9".repeat(LARGEST_VALUE - 100));
    decodes_or_reports(digits.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
}
