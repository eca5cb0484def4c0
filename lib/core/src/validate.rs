//! Flattening a payload into one row per sample, and the spec's validation rules.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde_json::json;

use crate::payload::{HealthDataPayload, HealthSample};
use crate::record::{ErrorRecord, ErrorType, KafkaCoordinates, RawRecord, RecordOutcome};
use crate::time::parse_instant;

/// The validation settings of the spec (`VALIDATION_*`, `MIN/MAX_HEART_RATE`,
/// `MAX_STEPS_PER_DAY`) plus how far in the future an event time may plausibly be.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidationRules {
    /// `VALIDATION_ENABLED`: when false only the structural checks remain (a row needs its
    /// required columns and parseable timestamps to exist at all); value rules are skipped.
    pub enabled: bool,
    /// `VALIDATION_STRICT_MODE`: a rejected record fails the whole batch instead of going to the
    /// errors table. Enforced by the ingest handler, carried here so one struct holds the rules.
    pub strict_mode: bool,
    pub min_heart_rate: f64,
    pub max_heart_rate: f64,
    pub max_steps_per_day: f64,
    /// Event times later than the Kafka record's timestamp plus this are implausible (device
    /// clock wrong). Judged against the record timestamp, never the wall clock, so that every
    /// retry of a batch decides the same.
    pub max_future_skew: Duration,
    /// Absolute bounds on values that hold whatever `enabled` says: beyond them a value is a
    /// sentinel ("unset" as DBL_MAX) or garbage, and folding it into a window's statistics would
    /// overflow them.
    pub sanity_limits: SanityLimits,
}

/// The largest plausible absolute value per data type (`HEALTHLAKE_VALUE_SANITY_LIMITS`).
#[derive(Debug, Clone, PartialEq)]
pub struct SanityLimits {
    /// For data types without their own limit.
    pub default: f64,
    pub by_type: std::collections::BTreeMap<String, f64>,
}

impl SanityLimits {
    /// 1e9 leaves room for every health measure (steps, meters, joules, milliseconds) while
    /// keeping sums and squared deviations of any realistic window far from overflow.
    pub const DEFAULT_LIMIT: f64 = 1e9;

    pub fn limit_for(&self, data_type: &str) -> f64 {
        self.by_type.get(data_type).copied().unwrap_or(self.default)
    }
}

impl Default for SanityLimits {
    fn default() -> Self {
        Self { default: Self::DEFAULT_LIMIT, by_type: Default::default() }
    }
}

impl Default for ValidationRules {
    fn default() -> Self {
        Self {
            enabled: true,
            strict_mode: false,
            min_heart_rate: 30.0,
            max_heart_rate: 250.0,
            max_steps_per_day: 100_000.0,
            max_future_skew: Duration::hours(24),
            sanity_limits: SanityLimits::default(),
        }
    }
}

/// Data types whose values are beats per minute and so fall under MIN/MAX_HEART_RATE.
const HEART_RATE_TYPES: [&str; 3] = ["heartRate", "restingHeartRate", "walkingHeartRateAverage"];
/// Data types counted in steps and so bounded by MAX_STEPS_PER_DAY per sample.
const STEP_TYPES: [&str; 2] = ["steps", "stepCount"];

/// The earliest event time taken as real; older ones come from unset device clocks.
fn earliest_plausible() -> DateTime<Utc> {
    NaiveDate::from_ymd_opt(2000, 1, 1).expect("valid date").and_hms_opt(0, 0, 0).expect("valid time").and_utc()
}

/// Turns decoded payloads into raw rows and error rows.
#[derive(Debug, Clone, Default)]
pub struct Validator {
    rules: ValidationRules,
}

impl Validator {
    pub fn new(rules: ValidationRules) -> Self {
        Self { rules }
    }

    pub fn rules(&self) -> &ValidationRules {
        &self.rules
    }

    /// Flattens and validates one payload. Every sample ends in exactly one of the two lists;
    /// a payload without samples becomes one `empty_payload` error so the record is accounted for.
    /// `record_time` is the Kafka record's timestamp: future skew is judged against it.
    pub fn process(
        &self,
        payload: &HealthDataPayload,
        kafka: &KafkaCoordinates,
        record_time: DateTime<Utc>,
        processing_time: DateTime<Utc>,
    ) -> RecordOutcome {
        let mut outcome = RecordOutcome::default();
        if payload.samples.is_empty() {
            outcome.errors.push(ErrorRecord {
                raw_payload: payload_context(payload, None).to_string(),
                error_type: ErrorType::EmptyPayload,
                error_message: "payload has no samples".to_string(),
                error_timestamp: processing_time,
                user_id: payload.user_id.clone(),
                data_type: None,
                sample_id: None,
                processing_time,
                kafka: kafka.clone(),
            });
            return outcome;
        }
        for sample in &payload.samples {
            match self.flatten_sample(payload, sample, kafka, record_time, processing_time) {
                Ok(raw) => outcome.raw.push(raw),
                Err((error_type, error_message)) => outcome.errors.push(ErrorRecord {
                    raw_payload: payload_context(payload, Some(sample)).to_string(),
                    error_type,
                    error_message,
                    error_timestamp: processing_time,
                    user_id: payload.user_id.clone(),
                    data_type: sample.data_type.clone(),
                    sample_id: sample.id.clone(),
                    processing_time,
                    kafka: kafka.clone(),
                }),
            }
        }
        outcome
    }

    fn flatten_sample(
        &self,
        payload: &HealthDataPayload,
        sample: &HealthSample,
        kafka: &KafkaCoordinates,
        record_time: DateTime<Utc>,
        processing_time: DateTime<Utc>,
    ) -> Result<RawRecord, (ErrorType, String)> {
        let user_id = required_text(&payload.user_id, "userId")?;
        let device_id = required_text(&payload.device_id, "deviceId")?;
        let app_version = required_text(&payload.app_version, "appVersion")?;
        let sample_id = required_text(&sample.id, "samples[].id")?;
        let data_type = required_text(&sample.data_type, "samples[].type")?;
        let unit = required_text(&sample.unit, "samples[].unit")?;
        let value = sample.value.ok_or_else(|| missing("samples[].value"))?;
        let payload_timestamp = required_instant(&payload.timestamp, "timestamp")?;
        let start_date = required_instant(&sample.start_date, "samples[].startDate")?;
        let end_date = required_instant(&sample.end_date, "samples[].endDate")?;
        let created_at = required_instant(&sample.created_at, "samples[].createdAt")?;

        self.check_sane(data_type, value)?;
        if self.rules.enabled {
            self.check_value(data_type, value)?;
            if end_date < start_date {
                return Err((
                    ErrorType::EndBeforeStart,
                    format!("endDate {end_date} is before startDate {start_date}"),
                ));
            }
            if start_date < earliest_plausible() {
                return Err((
                    ErrorType::InvalidTimestamp,
                    format!("startDate {start_date} is before {}", earliest_plausible()),
                ));
            }
            let latest = record_time + self.rules.max_future_skew;
            if start_date > latest || end_date > latest {
                return Err((
                    ErrorType::FutureTimestamp,
                    format!(
                        "sample time {start_date}..{end_date} is more than {} h ahead of the Kafka record time {record_time}",
                        self.rules.max_future_skew.num_hours()
                    ),
                ));
            }
        }

        Ok(RawRecord {
            device_id: device_id.to_string(),
            user_id: user_id.to_string(),
            sample_id: sample_id.to_string(),
            data_type: data_type.to_string(),
            value,
            unit: unit.to_string(),
            start_date,
            end_date,
            created_at,
            payload_timestamp,
            processing_time,
            source_bundle: sample.source_bundle.clone(),
            metadata: sample.metadata.clone(),
            is_synced: sample.is_synced.unwrap_or(false),
            app_version: app_version.to_string(),
            ingestion_date: start_date.date_naive(),
            kafka: kafka.clone(),
        })
    }

    /// The checks `VALIDATION_ENABLED=false` keeps: a value that is not a number or beyond any
    /// plausible magnitude would poison every window it is folded into.
    fn check_sane(&self, data_type: &str, value: f64) -> Result<(), (ErrorType, String)> {
        if !value.is_finite() {
            return Err((ErrorType::OutOfRange, format!("value {value} is not a finite number")));
        }
        let limit = self.rules.sanity_limits.limit_for(data_type);
        if value.abs() > limit {
            return Err((
                ErrorType::OutOfRange,
                format!("{data_type} {value:e} beyond the sanity limit ±{limit:e} (HEALTHLAKE_VALUE_SANITY_LIMITS)"),
            ));
        }
        Ok(())
    }

    fn check_value(&self, data_type: &str, value: f64) -> Result<(), (ErrorType, String)> {
        if value < 0.0 {
            return Err((ErrorType::NegativeValue, format!("value {value} is negative")));
        }
        if HEART_RATE_TYPES.contains(&data_type)
            && !(self.rules.min_heart_rate..=self.rules.max_heart_rate).contains(&value)
        {
            return Err((
                ErrorType::OutOfRange,
                format!(
                    "{data_type} {value} outside [{}, {}] bpm",
                    self.rules.min_heart_rate, self.rules.max_heart_rate
                ),
            ));
        }
        if STEP_TYPES.contains(&data_type) && value > self.rules.max_steps_per_day {
            return Err((
                ErrorType::OutOfRange,
                format!("{data_type} {value} above MAX_STEPS_PER_DAY {}", self.rules.max_steps_per_day),
            ));
        }
        Ok(())
    }
}

fn missing(field: &str) -> (ErrorType, String) {
    (ErrorType::MissingField, format!("required field `{field}` is missing or empty"))
}

fn required_text<'a>(value: &'a Option<String>, field: &str) -> Result<&'a str, (ErrorType, String)> {
    match value.as_deref().map(str::trim) {
        Some(text) if !text.is_empty() => Ok(text),
        _ => Err(missing(field)),
    }
}

fn required_instant(value: &Option<String>, field: &str) -> Result<DateTime<Utc>, (ErrorType, String)> {
    let text = required_text(value, field)?;
    parse_instant(text)
        .ok_or_else(|| (ErrorType::InvalidTimestamp, format!("`{field}` = {text:?} is not an ISO 8601 instant")))
}

/// The rejected sample with the payload fields that give it meaning, as the error row's payload.
fn payload_context(payload: &HealthDataPayload, sample: Option<&HealthSample>) -> serde_json::Value {
    json!({
        "payloadId": payload.payload_id,
        "deviceId": payload.device_id,
        "userId": payload.user_id,
        "timestamp": payload.timestamp,
        "appVersion": payload.app_version,
        "samples": sample.map(|s| vec![s.clone()]).unwrap_or_default(),
    })
}
