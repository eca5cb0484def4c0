//! `LOG_LEVEL` and `LOG_FORMAT`.

use std::collections::HashMap;

use super::env;
use super::values::{ConfigError, value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Text,
}

pub(super) fn log_format(vars: &HashMap<String, String>) -> Result<LogFormat, ConfigError> {
    match value(vars, env::LOG_FORMAT).unwrap_or_else(|| "json".into()).to_ascii_lowercase().as_str() {
        "json" => Ok(LogFormat::Json),
        "text" => Ok(LogFormat::Text),
        other => Err(ConfigError { variable: env::LOG_FORMAT, value: other.into(), expected: "json or text".into() }),
    }
}

/// The spec's level names (WARNING as Python spells it); upper case.
pub(super) fn log_level(vars: &HashMap<String, String>) -> Result<String, ConfigError> {
    let log_level = value(vars, env::LOG_LEVEL).unwrap_or_else(|| "INFO".into()).to_ascii_uppercase();
    if !["DEBUG", "INFO", "WARNING", "WARN", "ERROR", "TRACE"].contains(&log_level.as_str()) {
        return Err(ConfigError {
            variable: env::LOG_LEVEL,
            value: log_level,
            expected: "DEBUG, INFO, WARNING or ERROR".into(),
        });
    }
    Ok(log_level)
}
