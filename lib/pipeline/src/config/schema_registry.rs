//! Where the writer schemas come from: `SCHEMA_REGISTRY_*`.

use std::collections::HashMap;
use std::path::PathBuf;

use super::env;
use super::values::{ConfigError, value};

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

/// `SCHEMA_REGISTRY_URL` and its basic auth credentials (both or neither).
pub(super) fn schema_registry_settings(vars: &HashMap<String, String>) -> Result<SchemaRegistrySettings, ConfigError> {
    let basic_auth = match (
        value(vars, env::SCHEMA_REGISTRY_BASIC_AUTH_USER),
        value(vars, env::SCHEMA_REGISTRY_BASIC_AUTH_PASSWORD),
    ) {
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
    match value(vars, env::SCHEMA_REGISTRY_URL) {
        None => Ok(SchemaRegistrySettings::None),
        Some(url) if url.starts_with("file://") => {
            Ok(SchemaRegistrySettings::Directory(PathBuf::from(url.trim_start_matches("file://"))))
        }
        Some(url) if url.starts_with("http://") => {
            Ok(SchemaRegistrySettings::Http { url: url.trim_end_matches('/').to_string(), basic_auth })
        }
        Some(url) => Err(ConfigError {
            variable: env::SCHEMA_REGISTRY_URL,
            value: url,
            expected: "http://host:port or file:///dir/of/<id>.avsc (https is not built into this version)".into(),
        }),
    }
}
