//! Settings from the environment, parsed once at start, with the spec's names and defaults.
//! A missing or malformed setting fails with a message naming the variable.

use std::collections::HashMap;
use std::path::PathBuf;
use std::str::FromStr;

use chrono::Duration;
use healthlake_core::{SanityLimits, ValidationRules, WindowKind};
use healthlake_lake::{CatalogBackend, CatalogSettings, S3Settings, TableNames};

/// The environment variable names: the spec's, then ours (`HEALTHLAKE_*`).
pub mod env {
    pub const KAFKA_TOPIC: &str = "KAFKA_TOPIC";
    pub const SCHEMA_REGISTRY_URL: &str = "SCHEMA_REGISTRY_URL";
    pub const SCHEMA_REGISTRY_BASIC_AUTH_USER: &str = "SCHEMA_REGISTRY_BASIC_AUTH_USER";
    pub const SCHEMA_REGISTRY_BASIC_AUTH_PASSWORD: &str = "SCHEMA_REGISTRY_BASIC_AUTH_PASSWORD";
    pub const ICEBERG_CATALOG_TYPE: &str = "ICEBERG_CATALOG_TYPE";
    pub const ICEBERG_CATALOG_NAME: &str = "ICEBERG_CATALOG_NAME";
    pub const ICEBERG_CATALOG_URI: &str = "ICEBERG_CATALOG_URI";
    pub const ICEBERG_WAREHOUSE: &str = "ICEBERG_WAREHOUSE";
    pub const ICEBERG_DATABASE: &str = "ICEBERG_DATABASE";
    pub const ICEBERG_TABLE_RAW: &str = "ICEBERG_TABLE_RAW";
    pub const ICEBERG_TABLE_ERRORS: &str = "ICEBERG_TABLE_ERRORS";
    pub const ICEBERG_TABLE_DAILY_AGG: &str = "ICEBERG_TABLE_DAILY_AGG";
    pub const ICEBERG_TABLE_WEEKLY_AGG: &str = "ICEBERG_TABLE_WEEKLY_AGG";
    pub const ICEBERG_TABLE_MONTHLY_AGG: &str = "ICEBERG_TABLE_MONTHLY_AGG";
    pub const STATE_TTL_DAYS: &str = "STATE_TTL_DAYS";
    pub const WATERMARK_MAX_OUT_OF_ORDERNESS: &str = "WATERMARK_MAX_OUT_OF_ORDERNESS";
    pub const DAILY_WINDOW_ALLOWED_LATENESS: &str = "DAILY_WINDOW_ALLOWED_LATENESS";
    pub const WEEKLY_WINDOW_ALLOWED_LATENESS: &str = "WEEKLY_WINDOW_ALLOWED_LATENESS";
    pub const MONTHLY_WINDOW_ALLOWED_LATENESS: &str = "MONTHLY_WINDOW_ALLOWED_LATENESS";
    pub const VALIDATION_ENABLED: &str = "VALIDATION_ENABLED";
    pub const VALIDATION_STRICT_MODE: &str = "VALIDATION_STRICT_MODE";
    pub const MIN_HEART_RATE: &str = "MIN_HEART_RATE";
    pub const MAX_HEART_RATE: &str = "MAX_HEART_RATE";
    pub const MAX_STEPS_PER_DAY: &str = "MAX_STEPS_PER_DAY";
    pub const METRICS_ENABLED: &str = "METRICS_ENABLED";
    pub const PROMETHEUS_PORT: &str = "PROMETHEUS_PORT";
    pub const LOG_LEVEL: &str = "LOG_LEVEL";
    pub const LOG_FORMAT: &str = "LOG_FORMAT";
    pub const S3_ENDPOINT: &str = "S3_ENDPOINT";
    pub const S3_ACCESS_KEY: &str = "S3_ACCESS_KEY";
    pub const S3_SECRET_KEY: &str = "S3_SECRET_KEY";
    pub const S3_PATH_STYLE_ACCESS: &str = "S3_PATH_STYLE_ACCESS";
    pub const S3_REGION: &str = "S3_REGION";
    pub const S3_SSL_ENABLED: &str = "S3_SSL_ENABLED";
    /// The region the AWS SDKs use (Lambda sets it); the default for `S3_REGION`.
    pub const AWS_REGION: &str = "AWS_REGION";
    pub const HEALTHLAKE_GLUE_CATALOG_ID: &str = "HEALTHLAKE_GLUE_CATALOG_ID";
    /// `sqlite` (embedded, the default) or `dynamodb`.
    pub const HEALTHLAKE_STATE_STORE: &str = "HEALTHLAKE_STATE_STORE";
    pub const HEALTHLAKE_STATE_DIR: &str = "HEALTHLAKE_STATE_DIR";
    pub const HEALTHLAKE_DYNAMODB_TABLE: &str = "HEALTHLAKE_DYNAMODB_TABLE";
    pub const HEALTHLAKE_DYNAMODB_ENDPOINT: &str = "HEALTHLAKE_DYNAMODB_ENDPOINT";
    pub const HEALTHLAKE_DYNAMODB_SHARDS: &str = "HEALTHLAKE_DYNAMODB_SHARDS";
    pub const HEALTHLAKE_PARTITION_IDLE_TIMEOUT_MINUTES: &str = "HEALTHLAKE_PARTITION_IDLE_TIMEOUT_MINUTES";
    /// The partitions of KAFKA_TOPIC: a partition no record has come from yet holds the
    /// watermark back (until it is idle), as an assigned but empty Kafka split does in Flink.
    pub const HEALTHLAKE_TOPIC_PARTITIONS: &str = "HEALTHLAKE_TOPIC_PARTITIONS";
    pub const HEALTHLAKE_MAX_FUTURE_SKEW_HOURS: &str = "HEALTHLAKE_MAX_FUTURE_SKEW_HOURS";
    /// Absolute value bounds that hold even with VALIDATION_ENABLED=false: `type=limit` pairs,
    /// `*` for every other type (e.g. `*=1e9,steps=1e6`).
    pub const HEALTHLAKE_VALUE_SANITY_LIMITS: &str = "HEALTHLAKE_VALUE_SANITY_LIMITS";
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{variable}={value:?} is invalid: expected {expected}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub value: String,
    pub expected: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Text,
}

/// Where the writer schemas come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SchemaRegistrySettings {
    /// A Confluent-compatible registry over HTTP.
    Http { url: String, basic_auth: Option<(String, String)> },
    /// A directory of `<id>.avsc` files, for offline use.
    Directory(PathBuf),
    /// None configured: JSON values still work; Avro values become `unknown_schema` errors.
    None,
}

/// Where the accumulators, watermarks and close markers live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateStoreSettings {
    /// The embedded store: a sqlite file in `dir`.
    Sqlite { dir: PathBuf },
    /// One DynamoDB table; `endpoint` overrides AWS's (an emulator); the by-window index is
    /// written in `shards` shards.
    DynamoDb { table: String, endpoint: Option<String>, region: String, shards: u32 },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub kafka_topic: String,
    pub schema_registry: SchemaRegistrySettings,
    pub catalog: CatalogSettings,
    pub state: StateStoreSettings,
    pub state_ttl: Duration,
    pub max_out_of_orderness: Duration,
    pub partition_idle_timeout: Duration,
    /// `HEALTHLAKE_TOPIC_PARTITIONS`; `None`: the watermark only knows partitions seen so far.
    pub topic_partitions: Option<u32>,
    pub daily_lateness: Duration,
    pub weekly_lateness: Duration,
    pub monthly_lateness: Duration,
    pub validation: ValidationRules,
    pub metrics_enabled: bool,
    pub prometheus_port: u16,
    pub log_level: String,
    pub log_format: LogFormat,
}

impl Settings {
    pub fn allowed_lateness(&self, kind: WindowKind) -> Duration {
        match kind {
            WindowKind::Daily => self.daily_lateness,
            WindowKind::Weekly => self.weekly_lateness,
            WindowKind::Monthly => self.monthly_lateness,
        }
    }

    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_map(&std::env::vars().collect())
    }

    /// Reads settings from a map of variables (the environment, or a test's).
    pub fn from_map(vars: &HashMap<String, String>) -> Result<Self, ConfigError> {
        let get = |name: &str| vars.get(name).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        let text = |name: &'static str, default: &str| get(name).unwrap_or_else(|| default.to_string());
        let base = std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")).join(".healthlake");

        let s3 = s3_settings(vars)?;
        let (backend, warehouse) = catalog_backend(vars, &base)?;
        let state = state_store_settings(vars, &base, &s3.region)?;

        let basic_auth =
            match (get(env::SCHEMA_REGISTRY_BASIC_AUTH_USER), get(env::SCHEMA_REGISTRY_BASIC_AUTH_PASSWORD)) {
                (Some(u), Some(p)) => Some((u, p)),
                (None, None) => None,
                (Some(_), None) => {
                    return Err(ConfigError {
                        variable: env::SCHEMA_REGISTRY_BASIC_AUTH_PASSWORD,
                        value: String::new(),
                        expected: "a password when SCHEMA_REGISTRY_BASIC_AUTH_USER is set".into(),
                    });
                }
                (None, Some(_)) => {
                    return Err(ConfigError {
                        variable: env::SCHEMA_REGISTRY_BASIC_AUTH_USER,
                        value: String::new(),
                        expected: "a user when SCHEMA_REGISTRY_BASIC_AUTH_PASSWORD is set".into(),
                    });
                }
            };
        let schema_registry = match get(env::SCHEMA_REGISTRY_URL) {
            None => SchemaRegistrySettings::None,
            Some(url) if url.starts_with("file://") => {
                SchemaRegistrySettings::Directory(PathBuf::from(url.trim_start_matches("file://")))
            }
            Some(url) if url.starts_with("http://") => {
                SchemaRegistrySettings::Http { url: url.trim_end_matches('/').to_string(), basic_auth }
            }
            Some(url) => {
                return Err(ConfigError {
                    variable: env::SCHEMA_REGISTRY_URL,
                    value: url,
                    expected: "http://host:port or file:///dir/of/<id>.avsc (https is not built into this version)"
                        .into(),
                });
            }
        };

        let log_format = match text(env::LOG_FORMAT, "json").to_ascii_lowercase().as_str() {
            "json" => LogFormat::Json,
            "text" => LogFormat::Text,
            other => {
                return Err(ConfigError {
                    variable: env::LOG_FORMAT,
                    value: other.into(),
                    expected: "json or text".into(),
                });
            }
        };
        let log_level = text(env::LOG_LEVEL, "INFO").to_ascii_uppercase();
        if !["DEBUG", "INFO", "WARNING", "WARN", "ERROR", "TRACE"].contains(&log_level.as_str()) {
            return Err(ConfigError {
                variable: env::LOG_LEVEL,
                value: log_level,
                expected: "DEBUG, INFO, WARNING or ERROR".into(),
            });
        }

        let validation = ValidationRules {
            enabled: parse(vars, env::VALIDATION_ENABLED, true, "true or false", parse_bool)?,
            strict_mode: parse(vars, env::VALIDATION_STRICT_MODE, false, "true or false", parse_bool)?,
            min_heart_rate: parse(vars, env::MIN_HEART_RATE, 30.0, "a number of bpm", num)?,
            max_heart_rate: parse(vars, env::MAX_HEART_RATE, 250.0, "a number of bpm", num)?,
            max_steps_per_day: parse(vars, env::MAX_STEPS_PER_DAY, 100_000.0, "a number of steps", num)?,
            max_future_skew: Duration::hours(parse(
                vars,
                env::HEALTHLAKE_MAX_FUTURE_SKEW_HOURS,
                24,
                "whole hours",
                num,
            )?),
            sanity_limits: parse(
                vars,
                env::HEALTHLAKE_VALUE_SANITY_LIMITS,
                SanityLimits::default(),
                "comma-separated type=limit pairs with positive limits, `*` for all other types (e.g. *=1e9,steps=1e6)",
                parse_sanity_limits,
            )?,
        };
        if validation.min_heart_rate > validation.max_heart_rate {
            return Err(ConfigError {
                variable: env::MIN_HEART_RATE,
                value: validation.min_heart_rate.to_string(),
                expected: format!("at most MAX_HEART_RATE ({})", validation.max_heart_rate),
            });
        }

        Ok(Settings {
            kafka_topic: text(env::KAFKA_TOPIC, "health-data-raw"),
            schema_registry,
            catalog: CatalogSettings {
                catalog_name: text(env::ICEBERG_CATALOG_NAME, "health_catalog"),
                backend,
                warehouse,
                s3,
                database: text(env::ICEBERG_DATABASE, "health_db"),
                tables: TableNames {
                    raw: text(env::ICEBERG_TABLE_RAW, "health_data_raw"),
                    errors: text(env::ICEBERG_TABLE_ERRORS, "health_data_errors"),
                    daily: text(env::ICEBERG_TABLE_DAILY_AGG, "health_data_daily_agg"),
                    weekly: text(env::ICEBERG_TABLE_WEEKLY_AGG, "health_data_weekly_agg"),
                    monthly: text(env::ICEBERG_TABLE_MONTHLY_AGG, "health_data_monthly_agg"),
                },
            },
            state,
            state_ttl: Duration::days(parse(vars, env::STATE_TTL_DAYS, 7, "whole days", num)?),
            max_out_of_orderness: Duration::minutes(parse(
                vars,
                env::WATERMARK_MAX_OUT_OF_ORDERNESS,
                10,
                "whole minutes",
                num,
            )?),
            partition_idle_timeout: Duration::minutes(parse(
                vars,
                env::HEALTHLAKE_PARTITION_IDLE_TIMEOUT_MINUTES,
                30,
                "whole minutes",
                num,
            )?),
            topic_partitions: match get(env::HEALTHLAKE_TOPIC_PARTITIONS) {
                None => None,
                Some(text) => {
                    Some(text.parse::<u32>().ok().filter(|n| *n > 0).ok_or_else(|| {
                        invalid(env::HEALTHLAKE_TOPIC_PARTITIONS, text.clone(), "a partition count ≥ 1")
                    })?)
                }
            },
            daily_lateness: Duration::hours(parse(vars, env::DAILY_WINDOW_ALLOWED_LATENESS, 1, "whole hours", num)?),
            weekly_lateness: Duration::hours(parse(vars, env::WEEKLY_WINDOW_ALLOWED_LATENESS, 6, "whole hours", num)?),
            monthly_lateness: Duration::hours(parse(
                vars,
                env::MONTHLY_WINDOW_ALLOWED_LATENESS,
                12,
                "whole hours",
                num,
            )?),
            validation,
            metrics_enabled: parse(vars, env::METRICS_ENABLED, true, "true or false", parse_bool)?,
            prometheus_port: parse(vars, env::PROMETHEUS_PORT, 9249, "a TCP port", num)?,
            log_level,
            log_format,
        })
    }
}

/// A variable's value, trimmed; `None` when unset or blank.
pub fn value(vars: &HashMap<String, String>, name: &str) -> Option<String> {
    vars.get(name).map(|v| v.trim().to_string()).filter(|v| !v.is_empty())
}

pub fn invalid(variable: &'static str, value: impl Into<String>, expected: impl Into<String>) -> ConfigError {
    ConfigError { variable, value: value.into(), expected: expected.into() }
}

fn is_http_url(text: &str) -> bool {
    text.starts_with("http://") || text.starts_with("https://")
}

/// `S3_*`: endpoint (a scheme is added from `S3_SSL_ENABLED` when missing), static keys as a
/// pair or neither (then the default AWS credential chain), path style, region.
fn s3_settings(vars: &HashMap<String, String>) -> Result<S3Settings, ConfigError> {
    let ssl = parse(vars, env::S3_SSL_ENABLED, false, "true or false", parse_bool)?;
    let endpoint = match value(vars, env::S3_ENDPOINT) {
        None => None,
        Some(e) if is_http_url(&e) => Some(e.trim_end_matches('/').to_string()),
        Some(e) if e.contains("://") => {
            return Err(invalid(env::S3_ENDPOINT, e, "http(s)://host:port or host:port"));
        }
        Some(e) => Some(format!("{}://{}", if ssl { "https" } else { "http" }, e.trim_end_matches('/'))),
    };
    let credentials = match (value(vars, env::S3_ACCESS_KEY), value(vars, env::S3_SECRET_KEY)) {
        (Some(k), Some(s)) => Some((k, s)),
        (None, None) => None,
        (Some(_), None) => return Err(invalid(env::S3_SECRET_KEY, "", "a secret key when S3_ACCESS_KEY is set")),
        (None, Some(_)) => return Err(invalid(env::S3_ACCESS_KEY, "", "an access key when S3_SECRET_KEY is set")),
    };
    Ok(S3Settings {
        endpoint,
        credentials,
        path_style_access: parse(vars, env::S3_PATH_STYLE_ACCESS, true, "true or false", parse_bool)?,
        region: value(vars, env::S3_REGION)
            .or_else(|| value(vars, env::AWS_REGION))
            .unwrap_or_else(|| "us-east-1".to_string()),
    })
}

/// `ICEBERG_CATALOG_TYPE` with the `ICEBERG_CATALOG_URI` and `ICEBERG_WAREHOUSE` it needs.
fn catalog_backend(
    vars: &HashMap<String, String>,
    base: &std::path::Path,
) -> Result<(CatalogBackend, String), ConfigError> {
    let catalog_type = value(vars, env::ICEBERG_CATALOG_TYPE).unwrap_or_else(|| "sql".into()).to_ascii_lowercase();
    let uri = value(vars, env::ICEBERG_CATALOG_URI);
    let warehouse = value(vars, env::ICEBERG_WAREHOUSE);
    let is_s3 = |w: &str| w.starts_with("s3://") || w.starts_with("s3a://");
    match catalog_type.as_str() {
        "sql" => {
            let uri = uri.unwrap_or_else(|| format!("sqlite://{}", base.join("catalog.db").display()));
            if !uri.starts_with("sqlite://") {
                return Err(invalid(env::ICEBERG_CATALOG_URI, uri, "sqlite:///absolute/path/catalog.db"));
            }
            let warehouse = warehouse.unwrap_or_else(|| format!("file://{}", base.join("warehouse").display()));
            if !warehouse.starts_with("file://") && !is_s3(&warehouse) {
                return Err(invalid(env::ICEBERG_WAREHOUSE, warehouse, "file:///absolute/path or s3://bucket/prefix"));
            }
            Ok((CatalogBackend::Sql { uri }, warehouse))
        }
        "glue" => {
            let warehouse = warehouse
                .ok_or_else(|| invalid(env::ICEBERG_WAREHOUSE, "", "s3://bucket/prefix for the Glue catalog"))?;
            if !is_s3(&warehouse) {
                return Err(invalid(env::ICEBERG_WAREHOUSE, warehouse, "s3://bucket/prefix for the Glue catalog"));
            }
            if let Some(uri) = &uri
                && !is_http_url(uri)
            {
                return Err(invalid(
                    env::ICEBERG_CATALOG_URI,
                    uri.clone(),
                    "the Glue endpoint as http(s)://host:port, or unset for AWS's",
                ));
            }
            let catalog_id = value(vars, env::HEALTHLAKE_GLUE_CATALOG_ID);
            Ok((CatalogBackend::Glue { endpoint: uri, catalog_id }, warehouse))
        }
        "rest" => {
            let uri = uri
                .filter(|u| is_http_url(u))
                .ok_or_else(|| invalid(env::ICEBERG_CATALOG_URI, "", "http(s)://host:port of the REST catalog"))?;
            Ok((CatalogBackend::Rest { uri }, warehouse.unwrap_or_default()))
        }
        other => Err(invalid(
            env::ICEBERG_CATALOG_TYPE,
            other,
            "glue, rest or sql (hadoop and hive catalogs are not supported; use glue on AWS, sql locally)",
        )),
    }
}

/// `HEALTHLAKE_STATE_STORE` and the settings of the chosen store.
fn state_store_settings(
    vars: &HashMap<String, String>,
    base: &std::path::Path,
    default_region: &str,
) -> Result<StateStoreSettings, ConfigError> {
    match value(vars, env::HEALTHLAKE_STATE_STORE).unwrap_or_else(|| "sqlite".into()).to_ascii_lowercase().as_str() {
        "sqlite" => Ok(StateStoreSettings::Sqlite {
            dir: value(vars, env::HEALTHLAKE_STATE_DIR).map(PathBuf::from).unwrap_or_else(|| base.join("state")),
        }),
        "dynamodb" => {
            let endpoint = value(vars, env::HEALTHLAKE_DYNAMODB_ENDPOINT);
            if let Some(e) = &endpoint
                && !is_http_url(e)
            {
                return Err(invalid(env::HEALTHLAKE_DYNAMODB_ENDPOINT, e.clone(), "http(s)://host:port"));
            }
            let shards = parse(vars, env::HEALTHLAKE_DYNAMODB_SHARDS, 16u32, "a shard count from 1 to 1000", num)?;
            if !(1..=1000).contains(&shards) {
                return Err(invalid(
                    env::HEALTHLAKE_DYNAMODB_SHARDS,
                    shards.to_string(),
                    "a shard count from 1 to 1000",
                ));
            }
            Ok(StateStoreSettings::DynamoDb {
                table: value(vars, env::HEALTHLAKE_DYNAMODB_TABLE).unwrap_or_else(|| "healthlake-state".into()),
                endpoint,
                region: value(vars, env::AWS_REGION).unwrap_or_else(|| default_region.to_string()),
                shards,
            })
        }
        other => Err(invalid(env::HEALTHLAKE_STATE_STORE, other, "sqlite or dynamodb")),
    }
}

fn parse_bool(text: &str) -> Option<bool> {
    match text.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

fn parse_sanity_limits(text: &str) -> Option<SanityLimits> {
    let mut limits = SanityLimits::default();
    for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (data_type, limit) = pair.split_once('=')?;
        let limit: f64 = limit.trim().parse().ok().filter(|l: &f64| l.is_finite() && *l > 0.0)?;
        match data_type.trim() {
            "" => return None,
            "*" => limits.default = limit,
            data_type => {
                limits.by_type.insert(data_type.to_string(), limit);
            }
        }
    }
    Some(limits)
}

fn num<T: FromStr + PartialOrd + Default>(text: &str) -> Option<T> {
    text.parse::<T>().ok().filter(|v| *v >= T::default())
}

/// `variable` read with `parser`, `default` when unset or blank; a value `parser` refuses is an
/// error naming the variable and what was expected.
pub fn parse<T>(
    vars: &HashMap<String, String>,
    variable: &'static str,
    default: T,
    expected: &str,
    parser: impl Fn(&str) -> Option<T>,
) -> Result<T, ConfigError> {
    match vars.get(variable).map(|v| v.trim()).filter(|v| !v.is_empty()) {
        None => Ok(default),
        Some(text) => parser(text).ok_or_else(|| ConfigError {
            variable,
            value: text.to_string(),
            expected: expected.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn defaults_follow_the_spec() {
        let s = Settings::from_map(&vars(&[])).unwrap();
        assert_eq!(s.kafka_topic, "health-data-raw");
        assert_eq!(s.catalog.catalog_name, "health_catalog");
        assert_eq!(s.catalog.database, "health_db");
        assert_eq!(s.catalog.tables.raw, "health_data_raw");
        assert_eq!(s.max_out_of_orderness, Duration::minutes(10));
        assert_eq!(s.allowed_lateness(WindowKind::Daily), Duration::hours(1));
        assert_eq!(s.allowed_lateness(WindowKind::Weekly), Duration::hours(6));
        assert_eq!(s.allowed_lateness(WindowKind::Monthly), Duration::hours(12));
        assert_eq!(s.state_ttl, Duration::days(7));
        assert_eq!(s.validation, ValidationRules::default());
        assert_eq!(s.prometheus_port, 9249);
        assert_eq!(s.log_format, LogFormat::Json);
    }

    #[test]
    fn bad_values_name_the_variable() {
        for (name, value) in [
            ("MAX_HEART_RATE", "lots"),
            ("VALIDATION_ENABLED", "maybe"),
            ("DAILY_WINDOW_ALLOWED_LATENESS", "-1"),
            ("HEALTHLAKE_TOPIC_PARTITIONS", "0"),
            ("PROMETHEUS_PORT", "70000"),
            ("ICEBERG_CATALOG_TYPE", "hive"),
            ("SCHEMA_REGISTRY_URL", "ftp://x"),
            ("LOG_FORMAT", "xml"),
            ("SCHEMA_REGISTRY_BASIC_AUTH_USER", "alice"),
            ("HEALTHLAKE_VALUE_SANITY_LIMITS", "steps=-5"),
            ("HEALTHLAKE_VALUE_SANITY_LIMITS", "steps"),
            ("HEALTHLAKE_VALUE_SANITY_LIMITS", "=10"),
        ] {
            let err = Settings::from_map(&vars(&[(name, value)])).unwrap_err();
            let message = err.to_string();
            let expected_var =
                if name == "SCHEMA_REGISTRY_BASIC_AUTH_USER" { "SCHEMA_REGISTRY_BASIC_AUTH_PASSWORD" } else { name };
            assert!(message.contains(expected_var), "{message}");
            assert!(message.contains("expected"), "{message}");
        }
        let err = Settings::from_map(&vars(&[("MIN_HEART_RATE", "300")])).unwrap_err();
        assert_eq!(err.variable, "MIN_HEART_RATE");
    }

    #[test]
    fn sanity_limits_are_read_per_type() {
        let s = Settings::from_map(&vars(&[("HEALTHLAKE_VALUE_SANITY_LIMITS", "*=1e6, steps=2e5")])).unwrap();
        assert_eq!(s.validation.sanity_limits.limit_for("steps"), 2e5);
        assert_eq!(s.validation.sanity_limits.limit_for("heartRate"), 1e6);
        let s = Settings::from_map(&vars(&[])).unwrap();
        assert_eq!(s.validation.sanity_limits.limit_for("heartRate"), SanityLimits::DEFAULT_LIMIT);
    }

    #[test]
    fn settings_are_read() {
        let s = Settings::from_map(&vars(&[
            ("SCHEMA_REGISTRY_URL", "http://localhost:8081/"),
            ("SCHEMA_REGISTRY_BASIC_AUTH_USER", "u"),
            ("SCHEMA_REGISTRY_BASIC_AUTH_PASSWORD", "p"),
            ("VALIDATION_STRICT_MODE", "true"),
            ("MAX_STEPS_PER_DAY", "5000"),
            ("ICEBERG_DATABASE", "other"),
        ]))
        .unwrap();
        assert_eq!(
            s.schema_registry,
            SchemaRegistrySettings::Http {
                url: "http://localhost:8081".into(),
                basic_auth: Some(("u".into(), "p".into()))
            }
        );
        assert!(s.validation.strict_mode);
        assert_eq!(s.validation.max_steps_per_day, 5000.0);
        assert_eq!(s.catalog.database, "other");
    }

    #[test]
    fn glue_catalog_s3_and_dynamodb_are_read() {
        let s = Settings::from_map(&vars(&[
            ("ICEBERG_CATALOG_TYPE", "glue"),
            ("ICEBERG_CATALOG_URI", "http://127.0.0.1:4566"),
            ("ICEBERG_WAREHOUSE", "s3://lake/warehouse"),
            ("S3_ENDPOINT", "127.0.0.1:4566"),
            ("S3_ACCESS_KEY", "k"),
            ("S3_SECRET_KEY", "s"),
            ("AWS_REGION", "eu-west-1"),
            ("HEALTHLAKE_STATE_STORE", "dynamodb"),
            ("HEALTHLAKE_DYNAMODB_TABLE", "state"),
            ("HEALTHLAKE_DYNAMODB_SHARDS", "32"),
        ]))
        .unwrap();
        assert_eq!(
            s.catalog.backend,
            CatalogBackend::Glue { endpoint: Some("http://127.0.0.1:4566".into()), catalog_id: None }
        );
        assert_eq!(s.catalog.warehouse, "s3://lake/warehouse");
        assert_eq!(
            s.catalog.s3,
            S3Settings {
                endpoint: Some("http://127.0.0.1:4566".into()),
                credentials: Some(("k".into(), "s".into())),
                path_style_access: true,
                region: "eu-west-1".into(),
            }
        );
        assert_eq!(
            s.state,
            StateStoreSettings::DynamoDb {
                table: "state".into(),
                endpoint: None,
                region: "eu-west-1".into(),
                shards: 32
            }
        );
    }

    #[test]
    fn aws_settings_that_cannot_work_name_the_variable() {
        for (pairs, variable) in [
            (&[("ICEBERG_CATALOG_TYPE", "glue")][..], "ICEBERG_WAREHOUSE"),
            (&[("ICEBERG_CATALOG_TYPE", "glue"), ("ICEBERG_WAREHOUSE", "file:///tmp/w")][..], "ICEBERG_WAREHOUSE"),
            (&[("ICEBERG_CATALOG_TYPE", "rest")][..], "ICEBERG_CATALOG_URI"),
            (&[("ICEBERG_CATALOG_TYPE", "hadoop")][..], "ICEBERG_CATALOG_TYPE"),
            (&[("S3_ACCESS_KEY", "k")][..], "S3_SECRET_KEY"),
            (&[("S3_ENDPOINT", "ftp://x")][..], "S3_ENDPOINT"),
            (&[("HEALTHLAKE_STATE_STORE", "redis")][..], "HEALTHLAKE_STATE_STORE"),
            (
                &[("HEALTHLAKE_STATE_STORE", "dynamodb"), ("HEALTHLAKE_DYNAMODB_SHARDS", "0")][..],
                "HEALTHLAKE_DYNAMODB_SHARDS",
            ),
            (
                &[("HEALTHLAKE_STATE_STORE", "dynamodb"), ("HEALTHLAKE_DYNAMODB_ENDPOINT", "localhost")][..],
                "HEALTHLAKE_DYNAMODB_ENDPOINT",
            ),
        ] {
            let err = Settings::from_map(&vars(pairs)).unwrap_err();
            assert_eq!(err.variable, variable, "{pairs:?}: {err}");
            assert!(err.to_string().contains(variable), "{err}");
        }
    }
}
