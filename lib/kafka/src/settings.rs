//! The runner's and producer's settings: the spec's `KAFKA_*` variables plus the event source
//! mapping's own (`BatchSize`, `MaximumBatchingWindowInSeconds`, `StartingPosition`,
//! `MaximumRetryAttempts`, on-failure destination). A bad value fails at start naming the variable.

use std::collections::HashMap;
use std::time::Duration;

use healthlake_pipeline::config::{ConfigError, invalid, parse, value};

use crate::batch::{BatchLimits, MAX_PAYLOAD_BYTES};

pub mod env {
    pub const KAFKA_BROKERS: &str = "KAFKA_BROKERS";
    pub const KAFKA_TOPIC: &str = "KAFKA_TOPIC";
    pub const KAFKA_GROUP_ID: &str = "KAFKA_GROUP_ID";
    pub const KAFKA_AUTO_OFFSET_RESET: &str = "KAFKA_AUTO_OFFSET_RESET";
    pub const KAFKA_SESSION_TIMEOUT: &str = "KAFKA_SESSION_TIMEOUT";
    pub const KAFKA_REQUEST_TIMEOUT: &str = "KAFKA_REQUEST_TIMEOUT";
    pub const KAFKA_FETCH_MIN_BYTES: &str = "KAFKA_FETCH_MIN_BYTES";
    pub const KAFKA_FETCH_MAX_WAIT: &str = "KAFKA_FETCH_MAX_WAIT";
    pub const KAFKA_MAX_PARTITION_FETCH_BYTES: &str = "KAFKA_MAX_PARTITION_FETCH_BYTES";
    pub const KAFKA_PARTITION_DISCOVERY_INTERVAL: &str = "KAFKA_PARTITION_DISCOVERY_INTERVAL";
    pub const BATCH_SIZE: &str = "HEALTHLAKE_BATCH_SIZE";
    pub const MAXIMUM_BATCHING_WINDOW: &str = "HEALTHLAKE_MAXIMUM_BATCHING_WINDOW_SECONDS";
    pub const STARTING_POSITION: &str = "HEALTHLAKE_STARTING_POSITION";
    pub const MAXIMUM_RETRY_ATTEMPTS: &str = "HEALTHLAKE_MAXIMUM_RETRY_ATTEMPTS";
    pub const ON_FAILURE_DESTINATION: &str = "HEALTHLAKE_ON_FAILURE_DESTINATION";
    pub const FINALIZE_EVERY: &str = "HEALTHLAKE_FINALIZE_EVERY_SECONDS";
    pub const MAX_CONCURRENCY: &str = "HEALTHLAKE_MAX_CONCURRENCY";
}

/// Where a consumer group without committed offsets starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartingPosition {
    /// The oldest record kept (`earliest`).
    TrimHorizon,
    /// Only records produced after the group starts (`latest`).
    Latest,
}

impl StartingPosition {
    fn parse(text: &str) -> Option<Self> {
        match text.to_ascii_uppercase().as_str() {
            "TRIM_HORIZON" | "EARLIEST" => Some(Self::TrimHorizon),
            "LATEST" => Some(Self::Latest),
            _ => None,
        }
    }

    /// librdkafka's `auto.offset.reset`.
    pub fn offset_reset(self) -> &'static str {
        match self {
            Self::TrimHorizon => "earliest",
            Self::Latest => "latest",
        }
    }
}

/// Connection and consumer settings of the broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaSettings {
    pub brokers: String,
    pub topic: String,
    pub group_id: String,
    pub session_timeout: Duration,
    pub request_timeout: Duration,
    pub fetch_min_bytes: u64,
    pub fetch_max_wait: Duration,
    pub max_partition_fetch_bytes: u64,
    pub partition_discovery_interval: Duration,
}

/// How the runner drives the functions: the event source mapping's settings and the schedule.
#[derive(Debug, Clone, PartialEq)]
pub struct RunnerSettings {
    pub kafka: KafkaSettings,
    pub starting_position: StartingPosition,
    pub limits: BatchLimits,
    /// `MaximumRetryAttempts`: retries after the first attempt; `None` is -1, retry until it works.
    pub maximum_retry_attempts: Option<u32>,
    /// `file://` or `s3://` prefix for batches whose retries are exhausted.
    pub on_failure_destination: Option<String>,
    /// The finalize schedule (every kind each time); `None` runs no schedule.
    pub finalize_every: Option<Duration>,
    /// Stop once no record has arrived for this long (after a last finalize round).
    pub exit_when_idle: Option<Duration>,
    /// The first retry's delay; doubled per retry up to 30 s.
    pub retry_backoff: Duration,
    /// Invocations in flight at once, at most one per partition (`HEALTHLAKE_MAX_CONCURRENCY`;
    /// `None`: one per partition, as the mapping scales).
    pub max_concurrency: Option<usize>,
}

/// A number (negative ones too: `-1` retries forever), `default` when unset.
fn number<T: std::str::FromStr>(
    vars: &HashMap<String, String>,
    variable: &'static str,
    default: T,
    expected: &str,
) -> Result<T, ConfigError> {
    parse(vars, variable, default, expected, |text| text.parse().ok())
}

impl KafkaSettings {
    pub fn from_map(vars: &HashMap<String, String>) -> Result<Self, ConfigError> {
        let text = |name: &str| vars.get(name).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        let brokers =
            text(env::KAFKA_BROKERS).ok_or_else(|| invalid(env::KAFKA_BROKERS, "", "host:port[,host:port…]"))?;
        if brokers.split(',').any(|b| !b.trim().contains(':')) {
            return Err(invalid(env::KAFKA_BROKERS, &brokers, "host:port[,host:port…]"));
        }
        let millis = |name: &'static str, default: u64| -> Result<Duration, ConfigError> {
            number(vars, name, default, "milliseconds").map(Duration::from_millis)
        };
        Ok(Self {
            brokers,
            topic: text(env::KAFKA_TOPIC).unwrap_or_else(|| "health-data-raw".into()),
            group_id: text(env::KAFKA_GROUP_ID).unwrap_or_else(|| "healthlake-ingest".into()),
            session_timeout: millis(env::KAFKA_SESSION_TIMEOUT, 30_000)?,
            request_timeout: millis(env::KAFKA_REQUEST_TIMEOUT, 40_000)?,
            fetch_min_bytes: number(vars, env::KAFKA_FETCH_MIN_BYTES, 1, "bytes")?,
            fetch_max_wait: millis(env::KAFKA_FETCH_MAX_WAIT, 500)?,
            max_partition_fetch_bytes: number(vars, env::KAFKA_MAX_PARTITION_FETCH_BYTES, 10_485_760, "bytes")?,
            partition_discovery_interval: millis(env::KAFKA_PARTITION_DISCOVERY_INTERVAL, 60_000)?,
        })
    }

    /// The librdkafka settings every client of ours shares.
    pub fn client_config(&self) -> rdkafka::ClientConfig {
        let mut config = rdkafka::ClientConfig::new();
        config
            .set("bootstrap.servers", &self.brokers)
            .set("socket.timeout.ms", self.request_timeout.as_millis().to_string())
            .set("topic.metadata.refresh.interval.ms", self.partition_discovery_interval.as_millis().to_string());
        config
    }
}

impl RunnerSettings {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_map(&std::env::vars().collect())
    }

    pub fn from_map(vars: &HashMap<String, String>) -> Result<Self, ConfigError> {
        let kafka = KafkaSettings::from_map(vars)?;
        let text = |name: &str| value(vars, name);
        // The spec's KAFKA_AUTO_OFFSET_RESET, or the mapping's name for it.
        let starting_position = match (text(env::STARTING_POSITION), text(env::KAFKA_AUTO_OFFSET_RESET)) {
            (Some(v), _) => StartingPosition::parse(&v)
                .ok_or_else(|| invalid(env::STARTING_POSITION, &v, "TRIM_HORIZON or LATEST"))?,
            (None, Some(v)) => StartingPosition::parse(&v)
                .ok_or_else(|| invalid(env::KAFKA_AUTO_OFFSET_RESET, &v, "earliest or latest"))?,
            (None, None) => StartingPosition::TrimHorizon,
        };
        let batch_size: usize = number(vars, env::BATCH_SIZE, 100, "1..=10000 records")?;
        if !(1..=10_000).contains(&batch_size) {
            return Err(invalid(env::BATCH_SIZE, batch_size.to_string(), "1..=10000 records"));
        }
        let window: f64 = number(vars, env::MAXIMUM_BATCHING_WINDOW, 0.5, "0..=300 seconds")?;
        if !(0.0..=300.0).contains(&window) {
            return Err(invalid(env::MAXIMUM_BATCHING_WINDOW, window.to_string(), "0..=300 seconds"));
        }
        let retries: i64 = number(vars, env::MAXIMUM_RETRY_ATTEMPTS, -1, "-1 (forever) or 0..=10000")?;
        let maximum_retry_attempts = match retries {
            -1 => None,
            0..=10_000 => Some(retries as u32),
            _ => return Err(invalid(env::MAXIMUM_RETRY_ATTEMPTS, retries.to_string(), "-1 (forever) or 0..=10000")),
        };
        let on_failure_destination = text(env::ON_FAILURE_DESTINATION);
        if let Some(d) = &on_failure_destination
            && !(d.starts_with("file://") || d.starts_with("s3://"))
        {
            return Err(invalid(env::ON_FAILURE_DESTINATION, d, "a file:// or s3:// prefix"));
        }
        if maximum_retry_attempts.is_some() && on_failure_destination.is_none() {
            // The mapping would drop such batches; healthlake loses nothing.
            return Err(invalid(
                env::ON_FAILURE_DESTINATION,
                "",
                "a destination when HEALTHLAKE_MAXIMUM_RETRY_ATTEMPTS is not -1 (failed batches would be dropped)",
            ));
        }
        let finalize: f64 = number(vars, env::FINALIZE_EVERY, 60.0, "seconds (0 = no schedule)")?;
        if finalize < 0.0 {
            return Err(invalid(env::FINALIZE_EVERY, finalize.to_string(), "seconds (0 = no schedule)"));
        }
        let max_concurrency: i64 =
            number(vars, env::MAX_CONCURRENCY, 0, "invocations at once (0 = one per partition)")?;
        if max_concurrency < 0 {
            return Err(invalid(
                env::MAX_CONCURRENCY,
                max_concurrency.to_string(),
                "invocations at once (0 = one per partition)",
            ));
        }
        Ok(Self {
            kafka,
            starting_position,
            limits: BatchLimits {
                batch_size,
                batching_window: Duration::from_secs_f64(window),
                max_payload_bytes: MAX_PAYLOAD_BYTES,
            },
            maximum_retry_attempts,
            on_failure_destination,
            finalize_every: (finalize > 0.0).then(|| Duration::from_secs_f64(finalize)),
            exit_when_idle: None,
            retry_backoff: Duration::from_millis(500),
            max_concurrency: (max_concurrency > 0).then_some(max_concurrency as usize),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn defaults_follow_the_event_source_mapping() {
        let s = RunnerSettings::from_map(&vars(&[("KAFKA_BROKERS", "127.0.0.1:9092")])).unwrap();
        assert_eq!(s.limits.batch_size, 100);
        assert_eq!(s.limits.batching_window, Duration::from_millis(500));
        assert_eq!(s.limits.max_payload_bytes, 6 * 1024 * 1024);
        assert_eq!(s.starting_position, StartingPosition::TrimHorizon);
        assert_eq!(s.maximum_retry_attempts, None);
        assert_eq!(s.kafka.topic, "health-data-raw");
        assert_eq!(s.kafka.session_timeout, Duration::from_secs(30));
        let latest = RunnerSettings::from_map(&vars(&[
            ("KAFKA_BROKERS", "127.0.0.1:9092"),
            ("KAFKA_AUTO_OFFSET_RESET", "latest"),
        ]))
        .unwrap();
        assert_eq!(latest.starting_position, StartingPosition::Latest);
    }

    #[test]
    fn bad_settings_name_their_variable() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[], "KAFKA_BROKERS"),
            (&[("KAFKA_BROKERS", "localhost")], "KAFKA_BROKERS"),
            (&[("KAFKA_BROKERS", "h:1"), ("HEALTHLAKE_BATCH_SIZE", "0")], "HEALTHLAKE_BATCH_SIZE"),
            (&[("KAFKA_BROKERS", "h:1"), ("HEALTHLAKE_BATCH_SIZE", "10001")], "HEALTHLAKE_BATCH_SIZE"),
            (&[("KAFKA_BROKERS", "h:1"), ("KAFKA_AUTO_OFFSET_RESET", "middle")], "KAFKA_AUTO_OFFSET_RESET"),
            (
                &[("KAFKA_BROKERS", "h:1"), ("HEALTHLAKE_STARTING_POSITION", "AT_TIMESTAMP")],
                "HEALTHLAKE_STARTING_POSITION",
            ),
            (&[("KAFKA_BROKERS", "h:1"), ("KAFKA_SESSION_TIMEOUT", "30s")], "KAFKA_SESSION_TIMEOUT"),
            (
                &[("KAFKA_BROKERS", "h:1"), ("HEALTHLAKE_MAXIMUM_RETRY_ATTEMPTS", "2")],
                "HEALTHLAKE_ON_FAILURE_DESTINATION",
            ),
            (
                &[("KAFKA_BROKERS", "h:1"), ("HEALTHLAKE_ON_FAILURE_DESTINATION", "/tmp/x")],
                "HEALTHLAKE_ON_FAILURE_DESTINATION",
            ),
            (
                &[("KAFKA_BROKERS", "h:1"), ("HEALTHLAKE_MAXIMUM_BATCHING_WINDOW_SECONDS", "301")],
                "HEALTHLAKE_MAXIMUM_BATCHING_WINDOW_SECONDS",
            ),
        ];
        for (pairs, variable) in cases {
            let err = RunnerSettings::from_map(&vars(pairs)).unwrap_err();
            assert_eq!(err.variable, *variable, "{pairs:?}: {err}");
        }
    }
}
