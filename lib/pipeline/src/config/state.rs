//! Where the accumulators, watermarks and close markers live.

use std::collections::HashMap;
use std::path::PathBuf;

use super::env;
use super::values::{ConfigError, invalid, is_http_url, num, parse, value};

/// Where the accumulators, watermarks and close markers live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateStoreSettings {
    /// The embedded store: a sqlite file in `dir`.
    Sqlite { dir: PathBuf },
    /// One DynamoDB table; `endpoint` overrides AWS's (an emulator); the by-window index is
    /// written in `shards` shards.
    DynamoDb { table: String, endpoint: Option<String>, region: String, shards: u32 },
}

/// `HEALTHLAKE_STATE_STORE` and the settings of the chosen store.
pub(super) fn state_store_settings(
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
