//! `HEALTHLAKE_METRICS_NAMESPACE`: where a Lambda function's metrics land in CloudWatch.

use std::collections::HashMap;

use super::env;
use super::values::{ConfigError, invalid, value};

/// The CloudWatch namespace (1–255 printable ASCII characters, not starting with `AWS/`, which
/// CloudWatch reserves for its own services).
pub(super) fn metrics_namespace(vars: &HashMap<String, String>) -> Result<String, ConfigError> {
    let namespace = value(vars, env::HEALTHLAKE_METRICS_NAMESPACE).unwrap_or_else(|| "healthlake".into());
    let printable = namespace.chars().all(|c| c.is_ascii_graphic() || c == ' ');
    if namespace.is_empty() || namespace.len() > 255 || !printable || namespace.starts_with("AWS/") {
        return Err(invalid(
            env::HEALTHLAKE_METRICS_NAMESPACE,
            namespace,
            "a CloudWatch namespace: 1-255 printable ASCII characters, not starting with AWS/",
        ));
    }
    Ok(namespace)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(value: &str) -> Result<String, ConfigError> {
        metrics_namespace(&HashMap::from([("HEALTHLAKE_METRICS_NAMESPACE".to_string(), value.to_string())]))
    }

    #[test]
    fn namespaces_are_checked_as_cloudwatch_does() {
        assert_eq!(metrics_namespace(&HashMap::new()).unwrap(), "healthlake");
        assert_eq!(read("Health/Pipeline prod").unwrap(), "Health/Pipeline prod");
        for bad in ["AWS/Lambda", "tab\there", "é", &"x".repeat(256)] {
            assert_eq!(read(bad).unwrap_err().variable, "HEALTHLAKE_METRICS_NAMESPACE", "{bad:?}");
        }
    }
}
