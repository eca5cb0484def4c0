//! `healthlake exporter`'s own settings (the stores' come from the pipeline's and Kafka's).

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use healthlake_pipeline::config::{ConfigError, invalid, value};

pub const HEALTHLAKE_EXPORTER_PORT: &str = "HEALTHLAKE_EXPORTER_PORT";
pub const HEALTHLAKE_EXPORTER_ADDRESS: &str = "HEALTHLAKE_EXPORTER_ADDRESS";
pub const HEALTHLAKE_EXPORTER_CACHE_SECONDS: &str = "HEALTHLAKE_EXPORTER_CACHE_SECONDS";

#[derive(Debug, Clone, PartialEq)]
pub struct ExporterSettings {
    /// 127.0.0.1 unless told otherwise: the metrics name tables and partitions.
    pub address: IpAddr,
    /// 9250 by default, beside `healthlake local`'s PROMETHEUS_PORT 9249.
    pub port: u16,
    /// How long a scrape's readings answer the next scrapes.
    pub cache_for: Duration,
}

impl ExporterSettings {
    pub fn from_map(vars: &HashMap<String, String>) -> Result<Self, ConfigError> {
        let address = match value(vars, HEALTHLAKE_EXPORTER_ADDRESS) {
            None => IpAddr::from([127, 0, 0, 1]),
            Some(text) => {
                text.parse().map_err(|_| invalid(HEALTHLAKE_EXPORTER_ADDRESS, text.clone(), "an IP address"))?
            }
        };
        let port = match value(vars, HEALTHLAKE_EXPORTER_PORT) {
            None => 9250,
            Some(text) => text
                .parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| invalid(HEALTHLAKE_EXPORTER_PORT, text.clone(), "a TCP port (1-65535)"))?,
        };
        let cache_for = match value(vars, HEALTHLAKE_EXPORTER_CACHE_SECONDS) {
            None => Duration::from_secs(5),
            Some(text) => text
                .parse::<f64>()
                .ok()
                .filter(|s| s.is_finite() && *s >= 0.0 && *s <= 3600.0)
                .map(Duration::from_secs_f64)
                .ok_or_else(|| invalid(HEALTHLAKE_EXPORTER_CACHE_SECONDS, text.clone(), "seconds, 0-3600"))?,
        };
        Ok(Self { address, port, cache_for })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(pairs: &[(&str, &str)]) -> Result<ExporterSettings, ConfigError> {
        ExporterSettings::from_map(&pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
    }

    #[test]
    fn defaults_listen_on_loopback_beside_the_runner() {
        let s = read(&[]).unwrap();
        assert_eq!((s.address.to_string().as_str(), s.port, s.cache_for), ("127.0.0.1", 9250, Duration::from_secs(5)));
    }

    #[test]
    fn bad_values_name_their_variable() {
        assert_eq!(read(&[("HEALTHLAKE_EXPORTER_PORT", "0")]).unwrap_err().variable, HEALTHLAKE_EXPORTER_PORT);
        assert_eq!(
            read(&[("HEALTHLAKE_EXPORTER_ADDRESS", "localhost")]).unwrap_err().variable,
            HEALTHLAKE_EXPORTER_ADDRESS
        );
        assert_eq!(
            read(&[("HEALTHLAKE_EXPORTER_CACHE_SECONDS", "-1")]).unwrap_err().variable,
            HEALTHLAKE_EXPORTER_CACHE_SECONDS
        );
    }
}
