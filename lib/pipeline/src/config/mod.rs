//! Settings from the environment, parsed once at start, with the spec's names and defaults.
//! A missing or malformed setting fails with a message naming the variable. One file per
//! concern; this one assembles them into [`Settings`].

pub mod env;
mod lake;
mod logging;
mod metrics;
mod schema_registry;
mod state;
mod validation;
mod values;

use std::collections::HashMap;
use std::path::PathBuf;

use chrono::Duration;
use healthlake_core::{ValidationRules, WindowKind};
use healthlake_lake::{CatalogSettings, TableNames};

pub use logging::LogFormat;
pub use schema_registry::{SchemaRegistrySettings, TrustedRoots};
pub use state::StateStoreSettings;
pub use values::{ConfigError, invalid, parse, value};

use values::{num, parse_bool};

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
    /// `HEALTHLAKE_METRICS_NAMESPACE`: the CloudWatch namespace of the functions' EMF metrics.
    pub metrics_namespace: String,
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
        let text = |name: &'static str, default: &str| value(vars, name).unwrap_or_else(|| default.to_string());
        let base = std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")).join(".healthlake");

        let s3 = lake::s3_settings(vars)?;
        let (backend, warehouse) = lake::catalog_backend(vars, &base)?;
        let state = state::state_store_settings(vars, &base, &s3.region)?;
        let schema_registry = schema_registry::schema_registry_settings(vars)?;
        let log_format = logging::log_format(vars)?;
        let log_level = logging::log_level(vars)?;
        let validation = validation::validation_rules(vars)?;

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
            topic_partitions: match value(vars, env::HEALTHLAKE_TOPIC_PARTITIONS) {
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
            metrics_namespace: metrics::metrics_namespace(vars)?,
            log_level,
            log_format,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use healthlake_lake::{CatalogBackend, S3Settings};

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
        assert_eq!(s.validation.sanity_limits.limit_for("heartRate"), healthlake_core::SanityLimits::DEFAULT_LIMIT);
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
                basic_auth: Some(("u".into(), "p".into())),
                credentials_secret: None,
                extra_roots: None
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
