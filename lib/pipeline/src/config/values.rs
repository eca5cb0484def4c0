//! Reading one variable: trimmed text, parsers, and the error that names the variable.

use std::collections::HashMap;
use std::str::FromStr;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{variable}={value:?} is invalid: expected {expected}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub value: String,
    pub expected: String,
}

/// A variable's value, trimmed; `None` when unset or blank.
pub fn value(vars: &HashMap<String, String>, name: &str) -> Option<String> {
    vars.get(name).map(|v| v.trim().to_string()).filter(|v| !v.is_empty())
}

pub fn invalid(variable: &'static str, value: impl Into<String>, expected: impl Into<String>) -> ConfigError {
    ConfigError { variable, value: value.into(), expected: expected.into() }
}

pub(super) fn is_http_url(text: &str) -> bool {
    text.starts_with("http://") || text.starts_with("https://")
}

pub(super) fn parse_bool(text: &str) -> Option<bool> {
    match text.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

pub(super) fn num<T: FromStr + PartialOrd + Default>(text: &str) -> Option<T> {
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
