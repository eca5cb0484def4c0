//! The environment variable names: the spec's, then ours (`HEALTHLAKE_*`).

pub const KAFKA_TOPIC: &str = "KAFKA_TOPIC";
pub const SCHEMA_REGISTRY_URL: &str = "SCHEMA_REGISTRY_URL";
pub const SCHEMA_REGISTRY_BASIC_AUTH_USER: &str = "SCHEMA_REGISTRY_BASIC_AUTH_USER";
pub const SCHEMA_REGISTRY_BASIC_AUTH_PASSWORD: &str = "SCHEMA_REGISTRY_BASIC_AUTH_PASSWORD";
/// PEM file of CA certificates the registry's TLS may chain to, besides the system's roots.
pub const SCHEMA_REGISTRY_CA_FILE: &str = "SCHEMA_REGISTRY_CA_FILE";
/// A Secrets Manager secret (ARN or name) holding the registry's basic auth credentials as JSON
/// `{"username": ..., "password": ...}`, read once at start: on Lambda, no secret in plain env.
pub const HEALTHLAKE_SCHEMA_REGISTRY_SECRET: &str = "HEALTHLAKE_SCHEMA_REGISTRY_SECRET";
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
/// The CloudWatch namespace of the Lambda functions' metrics (Embedded Metric Format).
pub const HEALTHLAKE_METRICS_NAMESPACE: &str = "HEALTHLAKE_METRICS_NAMESPACE";
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
/// Absolute value bounds that hold even with VALIDATION_ENABLED=false: `type=limit` pairs, `*` for
/// every other type (e.g. `*=1e9,steps=1e6`).
pub const HEALTHLAKE_VALUE_SANITY_LIMITS: &str = "HEALTHLAKE_VALUE_SANITY_LIMITS";
