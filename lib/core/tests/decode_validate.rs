//! Decoding three writer-schema versions and corrupt values; the validation rules.

use chrono::{DateTime, Duration, Utc};
use healthlake_core::decode::{Decoder, frame};
use healthlake_core::generate::{self, Expectation, GeneratorConfig, UNKNOWN_SCHEMA_ID, WRITER_SCHEMAS};
use healthlake_core::record::{ErrorType, KafkaCoordinates};
use healthlake_core::{DecodeError, SanityLimits, ValidationRules, Validator};

fn decoder() -> Decoder {
    let mut d = Decoder::new();
    for (id, text) in WRITER_SCHEMAS {
        d.register_writer_schema(id, text);
    }
    d
}

fn coords(offset: i64) -> KafkaCoordinates {
    KafkaCoordinates { topic: "t".into(), partition: 0, offset }
}

fn now() -> DateTime<Utc> {
    "2025-11-20T12:00:00Z".parse().unwrap()
}

#[test]
fn every_writer_version_decodes_to_the_generated_samples() {
    let config = GeneratorConfig {
        records: 600,
        invalid_sample_ratio: 0.0,
        undecodable_record_ratio: 0.0,
        ..GeneratorConfig::default()
    };
    let decoder = decoder();
    let validator = Validator::new(ValidationRules::default());
    let mut seen_ids = std::collections::BTreeSet::new();
    for (i, record) in generate::generate(&config).into_iter().enumerate() {
        let Some(healthlake_core::decode::WireValue::Avro { schema_id, .. }) = frame(&record.value).ok() else {
            panic!("generator frames every decodable record");
        };
        seen_ids.insert(schema_id);
        let payload = decoder.decode(&record.value).expect("decodes");
        let outcome = validator.process(&payload, &coords(i as i64), now(), now());
        let Expectation::Decoded { valid, invalid } = record.expectation else { unreachable!() };
        assert_eq!(invalid, 0);
        assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
        let got: Vec<(String, String, DateTime<Utc>, f64)> =
            outcome.raw.iter().map(|r| (r.user_id.clone(), r.data_type.clone(), r.start_date, r.value)).collect();
        let want: Vec<(String, String, DateTime<Utc>, f64)> =
            valid.into_iter().map(|s| (s.user_id, s.data_type, s.start, s.value)).collect();
        assert_eq!(got, want);
        for raw in &outcome.raw {
            assert_eq!(raw.ingestion_date, raw.start_date.date_naive());
            // Version 3 lacks isSynced; the reader default (false) must apply.
            assert_eq!(raw.is_synced, schema_id != 3, "schema {schema_id}");
            assert_eq!(raw.metadata.is_some(), schema_id != 3);
        }
    }
    assert_eq!(seen_ids.into_iter().collect::<Vec<_>>(), vec![1, 2, 3]);
}

#[test]
fn corrupt_values_are_typed_errors() {
    let d = decoder();
    assert!(matches!(d.decode(b""), Err(DecodeError::UnknownFraming { .. })));
    assert!(matches!(d.decode(b"\x7fgarbage"), Err(DecodeError::UnknownFraming { .. })));
    let mut unknown = vec![0u8];
    unknown.extend_from_slice(&UNKNOWN_SCHEMA_ID.to_be_bytes());
    assert_eq!(d.decode(&unknown).unwrap_err().error_type(), ErrorType::UnknownSchema);
    // Truncated body of a known schema.
    let record =
        generate::generate(&GeneratorConfig { records: 1, undecodable_record_ratio: 0.0, ..Default::default() })
            .remove(0);
    let mut truncated = record.value.clone();
    truncated.truncate(truncated.len() - 4);
    let err = d.decode(&truncated).unwrap_err();
    assert_eq!(err.error_type(), ErrorType::Deserialization, "{err}");
    // Trailing garbage after a complete record.
    let mut trailing = record.value.clone();
    trailing.extend_from_slice(b"xx");
    assert!(matches!(d.decode(&trailing), Err(DecodeError::Avro { .. })));
    // Broken JSON.
    assert!(matches!(d.decode(b"{\"userId\": "), Err(DecodeError::Json { .. })));
}

#[test]
fn incompatible_writer_schema_is_reported_once_registered() {
    let mut d = Decoder::new();
    d.register_writer_schema(
        5,
        r#"{"type":"record","name":"HealthDataPayload","namespace":"io.healthstack.ingest","fields":[{"name":"payloadId","type":"long"}]}"#,
    );
    let mut v = vec![0u8];
    v.extend_from_slice(&5u32.to_be_bytes());
    v.push(2);
    assert_eq!(d.decode(&v).unwrap_err().error_type(), ErrorType::IncompatibleSchema);
}

#[test]
fn json_values_from_the_event_source_mapping_are_accepted() {
    let json = br#"{"payloadId":"p","deviceId":"d","userId":"u","timestamp":"2025-11-17T10:00:00Z","appVersion":"1",
        "samples":[{"id":"s1","type":"heartRate","value":72,"unit":"count/min","startDate":"2025-11-17T09:00:00Z",
        "endDate":"2025-11-17T09:01:00Z","createdAt":"2025-11-17T09:01:00Z"}]}"#;
    let payload = decoder().decode(json).unwrap();
    let outcome = Validator::default().process(&payload, &coords(0), now(), now());
    assert_eq!(outcome.raw.len(), 1);
    assert_eq!(outcome.raw[0].value, 72.0);
    assert!(!outcome.raw[0].is_synced);
}

fn sample_json(data_type: &str, value: &str, start: &str, end: &str, unit: &str) -> Vec<u8> {
    format!(
        r#"{{"payloadId":"p","deviceId":"d","userId":"u","timestamp":"2025-11-17T10:00:00Z","appVersion":"1",
        "samples":[{{"id":"s","type":"{data_type}","value":{value},"unit":"{unit}","startDate":"{start}",
        "endDate":"{end}","createdAt":"2025-11-17T09:01:00Z"}}]}}"#
    )
    .into_bytes()
}

fn verdict(rules: &ValidationRules, json: &[u8]) -> Result<(), ErrorType> {
    let payload = decoder().decode(json).unwrap();
    let outcome = Validator::new(rules.clone()).process(&payload, &coords(0), now(), now());
    assert_eq!(outcome.raw.len() + outcome.errors.len(), 1, "each sample lands exactly once");
    match outcome.errors.first() {
        Some(e) => {
            assert_eq!(e.sample_id.as_deref(), Some("s"));
            assert_eq!(e.user_id.as_deref(), Some("u"));
            // The error row keeps a payload that re-decodes.
            assert!(decoder().decode(e.raw_payload.as_bytes()).is_ok());
            Err(e.error_type)
        }
        None => Ok(()),
    }
}

#[test]
fn validation_rules_follow_the_spec() {
    let r = ValidationRules::default();
    let (s, e) = ("2025-11-17T09:00:00Z", "2025-11-17T09:01:00Z");
    assert_eq!(verdict(&r, &sample_json("heartRate", "72", s, e, "count/min")), Ok(()));
    assert_eq!(verdict(&r, &sample_json("heartRate", "30", s, e, "count/min")), Ok(()));
    assert_eq!(verdict(&r, &sample_json("heartRate", "250", s, e, "count/min")), Ok(()));
    assert_eq!(verdict(&r, &sample_json("heartRate", "29.5", s, e, "count/min")), Err(ErrorType::OutOfRange));
    assert_eq!(verdict(&r, &sample_json("heartRate", "251", s, e, "count/min")), Err(ErrorType::OutOfRange));
    assert_eq!(verdict(&r, &sample_json("steps", "100000", s, e, "count")), Ok(()));
    assert_eq!(verdict(&r, &sample_json("steps", "100001", s, e, "count")), Err(ErrorType::OutOfRange));
    assert_eq!(verdict(&r, &sample_json("steps", "-1", s, e, "count")), Err(ErrorType::NegativeValue));
    assert_eq!(verdict(&r, &sample_json("steps", "0", s, e, "count")), Ok(()));
    assert_eq!(verdict(&r, &sample_json("steps", "10", e, s, "count")), Err(ErrorType::EndBeforeStart));
    assert_eq!(verdict(&r, &sample_json("steps", "10", s, e, "")), Err(ErrorType::MissingField));
    assert_eq!(verdict(&r, &sample_json("steps", "10", "soon", e, "count")), Err(ErrorType::InvalidTimestamp));
    assert_eq!(
        verdict(&r, &sample_json("steps", "10", "1970-01-01T00:00:00Z", "1970-01-01T00:01:00Z", "count")),
        Err(ErrorType::InvalidTimestamp)
    );
    let far = (now() + Duration::days(2)).to_rfc3339();
    assert_eq!(verdict(&r, &sample_json("steps", "10", &far, &far, "count")), Err(ErrorType::FutureTimestamp));

    // Settings move the bounds.
    let tight = ValidationRules { min_heart_rate: 40.0, max_heart_rate: 180.0, max_steps_per_day: 50.0, ..r.clone() };
    assert_eq!(verdict(&tight, &sample_json("heartRate", "35", s, e, "count/min")), Err(ErrorType::OutOfRange));
    assert_eq!(verdict(&tight, &sample_json("steps", "51", s, e, "count")), Err(ErrorType::OutOfRange));

    // VALIDATION_ENABLED=false keeps only what a row structurally needs.
    let off = ValidationRules { enabled: false, ..r };
    assert_eq!(verdict(&off, &sample_json("steps", "-1", s, e, "count")), Ok(()));
    assert_eq!(verdict(&off, &sample_json("heartRate", "400", s, e, "count/min")), Ok(()));
    assert_eq!(verdict(&off, &sample_json("steps", "1", s, e, "")), Err(ErrorType::MissingField));
}

#[test]
fn sanity_limits_hold_even_with_validation_off() {
    let (s, e) = ("2025-11-17T09:00:00Z", "2025-11-17T09:01:00Z");
    let off = ValidationRules { enabled: false, ..ValidationRules::default() };
    // DBL_MAX, a common "unset" sentinel, and anything past the default 1e9.
    let dbl_max = "1.7976931348623157e308";
    for rules in [&ValidationRules::default(), &off] {
        assert_eq!(verdict(rules, &sample_json("distance", dbl_max, s, e, "m")), Err(ErrorType::OutOfRange));
        assert_eq!(verdict(rules, &sample_json("distance", "-1e10", s, e, "m")), Err(ErrorType::OutOfRange));
        assert_eq!(verdict(rules, &sample_json("distance", "1e9", s, e, "m")), Ok(()));
    }
    // Per data type, configurable.
    let mut limits = SanityLimits::default();
    limits.by_type.insert("heartRate".into(), 1_000.0);
    let custom = ValidationRules { sanity_limits: limits, ..off };
    assert_eq!(verdict(&custom, &sample_json("heartRate", "400", s, e, "count/min")), Ok(()));
    assert_eq!(verdict(&custom, &sample_json("heartRate", "1001", s, e, "count/min")), Err(ErrorType::OutOfRange));
    assert_eq!(verdict(&custom, &sample_json("distance", "1e10", s, e, "m")), Err(ErrorType::OutOfRange));

    // Non-finite values (Avro doubles can carry them) are refused either way.
    for rules in [ValidationRules::default(), custom] {
        for value in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let mut payload = decoder().decode(&sample_json("distance", "1", s, e, "m")).unwrap();
            payload.samples[0].value = Some(value);
            let outcome = Validator::new(rules.clone()).process(&payload, &coords(0), now(), now());
            assert_eq!(outcome.errors.len(), 1, "{value} with {rules:?}");
            assert_eq!(outcome.errors[0].error_type, ErrorType::OutOfRange);
        }
    }
}

#[test]
fn future_skew_is_judged_against_the_record_time_not_the_clock() {
    let record_time = now();
    let at = |hours: i64| (record_time + Duration::hours(hours)).to_rfc3339();
    let ahead_23 = sample_json("steps", "10", &at(23), &at(23), "count");
    let ahead_25 = sample_json("steps", "10", &at(25), &at(25), "count");
    // Whenever the batch is processed (a retry an hour or a day later, or a clock behind), the
    // verdict is the same.
    for processing in [record_time, record_time + Duration::hours(2), record_time + Duration::days(3)] {
        for (json, expected) in [(&ahead_23, 0), (&ahead_25, 1)] {
            let payload = decoder().decode(json).unwrap();
            let outcome = Validator::default().process(&payload, &coords(0), record_time, processing);
            assert_eq!(outcome.errors.len(), expected, "processing at {processing}");
            if expected == 1 {
                assert_eq!(outcome.errors[0].error_type, ErrorType::FutureTimestamp);
                assert!(outcome.errors[0].error_message.contains("Kafka record time"));
            }
        }
    }
}

#[test]
fn a_payload_without_samples_is_one_error_row() {
    let json = br#"{"payloadId":"p","deviceId":"d","userId":"u","timestamp":"2025-11-17T10:00:00Z","appVersion":"1","samples":[]}"#;
    let payload = decoder().decode(json).unwrap();
    let outcome = Validator::default().process(&payload, &coords(9), now(), now());
    assert!(outcome.raw.is_empty());
    assert_eq!(outcome.errors.len(), 1);
    assert_eq!(outcome.errors[0].error_type, ErrorType::EmptyPayload);
    assert_eq!(outcome.errors[0].kafka.offset, 9);
}

#[test]
fn generated_expectations_match_validation() {
    let config = GeneratorConfig {
        records: 1_500,
        invalid_sample_ratio: 0.1,
        undecodable_record_ratio: 0.05,
        ..Default::default()
    };
    let decoder = decoder();
    let validator = Validator::default();
    let (mut undecodable, mut invalid) = (0, 0);
    for (i, record) in generate::generate(&config).into_iter().enumerate() {
        match (decoder.decode(&record.value), record.expectation) {
            (Err(_), Expectation::Undecodable) => undecodable += 1,
            (Ok(p), Expectation::Decoded { valid, invalid: n }) => {
                let outcome = validator.process(&p, &coords(i as i64), now(), now());
                assert_eq!(outcome.raw.len(), valid.len());
                assert_eq!(outcome.errors.len(), n);
                invalid += n;
            }
            (got, want) => panic!("record {i}: got {got:?}, expected {want:?}"),
        }
    }
    assert!(undecodable > 30 && invalid > 300, "{undecodable} {invalid}");
}
