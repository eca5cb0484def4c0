//! Where the writer schemas come from: `SCHEMA_REGISTRY_*`.

use std::collections::HashMap;
use std::path::PathBuf;

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use super::env;
use super::values::{ConfigError, invalid, value};

/// Where the writer schemas come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SchemaRegistrySettings {
    /// A Confluent-compatible registry over HTTP or HTTPS. `basic_auth` comes from the
    /// environment, or from the Secrets Manager secret `credentials_secret` names once the
    /// application resolves it at start.
    Http {
        url: String,
        basic_auth: Option<(String, String)>,
        credentials_secret: Option<String>,
        extra_roots: Option<TrustedRoots>,
    },
    /// A directory of `<id>.avsc` files, for offline use.
    Directory(PathBuf),
    /// None configured: JSON values still work; Avro values become `unknown_schema` errors.
    None,
}

/// CA certificates trusted for the registry's TLS besides the system's roots (a private CA),
/// read from `SCHEMA_REGISTRY_CA_FILE` at start so a bad file fails there, not in a batch.
#[derive(Clone, PartialEq, Eq)]
pub struct TrustedRoots {
    pub path: PathBuf,
    /// DER, in the file's order.
    pub certificates: Vec<Vec<u8>>,
}

impl std::fmt::Debug for TrustedRoots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TrustedRoots({}: {} certificate(s))", self.path.display(), self.certificates.len())
    }
}

/// `SCHEMA_REGISTRY_URL`, its basic auth credentials (both or neither) and CA file.
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
    let credentials_secret = value(vars, env::HEALTHLAKE_SCHEMA_REGISTRY_SECRET);
    if basic_auth.is_some()
        && let Some(secret) = &credentials_secret
    {
        return Err(invalid(
            env::HEALTHLAKE_SCHEMA_REGISTRY_SECRET,
            secret,
            "unset when SCHEMA_REGISTRY_BASIC_AUTH_USER/_PASSWORD give the credentials (one source, not two)",
        ));
    }
    let extra_roots = value(vars, env::SCHEMA_REGISTRY_CA_FILE).map(|path| trusted_roots(&path)).transpose()?;
    match value(vars, env::SCHEMA_REGISTRY_URL) {
        None => Ok(SchemaRegistrySettings::None),
        Some(url) if url.starts_with("file://") => {
            Ok(SchemaRegistrySettings::Directory(PathBuf::from(url.trim_start_matches("file://"))))
        }
        Some(url) if url.starts_with("http://") || url.starts_with("https://") => Ok(SchemaRegistrySettings::Http {
            url: url.trim_end_matches('/').to_string(),
            basic_auth,
            credentials_secret,
            extra_roots,
        }),
        Some(url) => Err(ConfigError {
            variable: env::SCHEMA_REGISTRY_URL,
            value: url,
            expected: "https://host:port, http://host:port or file:///dir/of/<id>.avsc".into(),
        }),
    }
}

/// The certificates of a PEM file; other PEM sections (a key given by mistake) are skipped, and
/// a file with no certificate at all is refused.
fn trusted_roots(path: &str) -> Result<TrustedRoots, ConfigError> {
    let expected = |what: String| invalid(env::SCHEMA_REGISTRY_CA_FILE, path, what);
    let pem = std::fs::read(path).map_err(|e| expected(format!("a readable PEM file of CA certificates ({e})")))?;
    let certificates = CertificateDer::pem_slice_iter(&pem)
        .map(|c| c.map(|c| c.to_vec()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| expected(format!("a PEM file of CA certificates ({e})")))?;
    if certificates.is_empty() {
        return Err(expected("a PEM file with at least one CERTIFICATE section".into()));
    }
    Ok(TrustedRoots { path: PathBuf::from(path), certificates })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(pairs: &[(&str, &str)]) -> Result<SchemaRegistrySettings, ConfigError> {
        schema_registry_settings(&pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
    }

    #[test]
    fn https_registries_are_accepted() {
        let settings = read(&[("SCHEMA_REGISTRY_URL", "https://registry.example:8081/")]).unwrap();
        assert_eq!(
            settings,
            SchemaRegistrySettings::Http {
                url: "https://registry.example:8081".into(),
                basic_auth: None,
                credentials_secret: None,
                extra_roots: None
            }
        );
    }

    #[test]
    fn credentials_come_from_the_environment_or_a_secret_not_both() {
        let settings = read(&[
            ("SCHEMA_REGISTRY_URL", "https://registry.example"),
            ("HEALTHLAKE_SCHEMA_REGISTRY_SECRET", "arn:aws:secretsmanager:eu-west-1:123456789012:secret:registry"),
        ])
        .unwrap();
        let SchemaRegistrySettings::Http { credentials_secret: Some(secret), basic_auth: None, .. } = settings else {
            panic!("{settings:?}")
        };
        assert!(secret.ends_with(":secret:registry"));
        let err = read(&[
            ("SCHEMA_REGISTRY_URL", "https://registry.example"),
            ("SCHEMA_REGISTRY_BASIC_AUTH_USER", "u"),
            ("SCHEMA_REGISTRY_BASIC_AUTH_PASSWORD", "p"),
            ("HEALTHLAKE_SCHEMA_REGISTRY_SECRET", "registry"),
        ])
        .unwrap_err();
        assert_eq!(err.variable, "HEALTHLAKE_SCHEMA_REGISTRY_SECRET", "{err}");
    }

    #[test]
    fn a_ca_file_that_cannot_serve_names_the_variable() {
        let dir = tempfile::tempdir().unwrap();
        let key_only = dir.path().join("key.pem");
        std::fs::write(&key_only, "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n").unwrap();
        let garbled = dir.path().join("garbled.pem");
        std::fs::write(&garbled, "-----BEGIN CERTIFICATE-----\n!!not base64!!\n-----END CERTIFICATE-----\n").unwrap();
        let missing = dir.path().join("missing.pem");
        for path in [&key_only, &garbled, &missing] {
            let err = read(&[
                ("SCHEMA_REGISTRY_URL", "https://registry.example"),
                ("SCHEMA_REGISTRY_CA_FILE", path.to_str().unwrap()),
            ])
            .unwrap_err();
            assert_eq!(err.variable, "SCHEMA_REGISTRY_CA_FILE", "{err}");
            assert!(err.to_string().contains(path.to_str().unwrap()), "{err}");
        }
    }

    #[test]
    fn a_ca_file_contributes_its_certificates() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        // Two certificates (content is not checked here, only the PEM framing).
        std::fs::write(
            &path,
            "-----BEGIN CERTIFICATE-----\nAQID\n-----END CERTIFICATE-----\n\
             -----BEGIN CERTIFICATE-----\nBAUG\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let settings = read(&[
            ("SCHEMA_REGISTRY_URL", "https://registry.example"),
            ("SCHEMA_REGISTRY_CA_FILE", path.to_str().unwrap()),
        ])
        .unwrap();
        let SchemaRegistrySettings::Http { extra_roots: Some(roots), .. } = settings else { panic!("{settings:?}") };
        assert_eq!(roots.certificates, vec![vec![1, 2, 3], vec![4, 5, 6]]);
    }
}
