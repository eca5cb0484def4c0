//! Where the tables live: the Iceberg catalog and its S3 storage.

use std::collections::HashMap;

use healthlake_lake::{CatalogBackend, S3Settings};

use super::env;
use super::values::{ConfigError, invalid, is_http_url, parse, parse_bool, value};

/// `S3_*`: endpoint (a scheme is added from `S3_SSL_ENABLED` when missing), static keys as a
/// pair or neither (then the default AWS credential chain), path style, region.
pub(super) fn s3_settings(vars: &HashMap<String, String>) -> Result<S3Settings, ConfigError> {
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
pub(super) fn catalog_backend(
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
