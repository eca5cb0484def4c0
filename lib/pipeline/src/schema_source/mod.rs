//! Where writer schemas come from: a Confluent-compatible registry or a directory of files.

mod confluent;
mod credentials;
mod directory;

use async_trait::async_trait;

pub use confluent::{HttpSchemaRegistry, registry_client};
pub use credentials::{CredentialsError, resolve_secret};
pub use directory::DirectorySchemaSource;

use crate::config::SchemaRegistrySettings;

/// Why a schema could not be had. Never turned into error rows: the records are fine, the
/// source is not, so the batch fails whole and stays in Kafka for its redelivery.
#[derive(Debug, thiserror::Error)]
pub enum SchemaSourceError {
    /// The source could not be asked, or failed on its side (5xx, 408, 429, connection or
    /// timeout): a redelivery may find it back.
    #[error("schema registry unavailable at {url}: {reason}")]
    Unavailable { url: String, reason: String },
    /// The source answered, but not as a registry that was asked the right question: refused
    /// credentials (401/403), a 404 that is not Confluent's 40403 "schema not found" (the URL or
    /// path is wrong), or a body that is no schema.
    #[error("schema registry at {url} answered {answer}; check SCHEMA_REGISTRY_URL and its credentials")]
    Misconfigured { url: String, answer: String },
    /// No client could be built for the registry from the settings (at start).
    #[error("schema registry client for {url}: {reason}")]
    Client { url: String, reason: String },
}

impl SchemaSourceError {
    /// Misconfiguration is permanent: no redelivery succeeds until someone changes the
    /// deployment's SCHEMA_REGISTRY_* settings, and the `Permanent.` error type lets alarms say
    /// so at once instead of after the retries. The records are not lost either way: the batch
    /// fails whole and can be replayed once the settings are right.
    pub fn is_retryable(&self) -> bool {
        match self {
            SchemaSourceError::Unavailable { .. } => true,
            SchemaSourceError::Misconfigured { .. } | SchemaSourceError::Client { .. } => false,
        }
    }
}

/// The port to a schema registry. `Ok(None)` means the id is definitely unknown.
#[async_trait]
pub trait SchemaSource: Send + Sync {
    async fn fetch(&self, schema_id: u32) -> Result<Option<String>, SchemaSourceError>;
}

/// No registry configured.
#[derive(Debug, Clone, Default)]
pub struct NoSchemaSource;

#[async_trait]
impl SchemaSource for NoSchemaSource {
    async fn fetch(&self, _schema_id: u32) -> Result<Option<String>, SchemaSourceError> {
        Ok(None)
    }
}

/// The source the settings choose; building an HTTPS client can fail, at start.
pub fn from_settings(settings: &SchemaRegistrySettings) -> Result<Box<dyn SchemaSource>, SchemaSourceError> {
    Ok(match settings {
        SchemaRegistrySettings::Http { url, basic_auth, extra_roots, .. } => {
            Box::new(HttpSchemaRegistry::new(url, basic_auth.clone(), extra_roots.as_ref())?)
        }
        SchemaRegistrySettings::Directory(dir) => Box::new(DirectorySchemaSource::new(dir.clone())),
        SchemaRegistrySettings::None => Box::new(NoSchemaSource),
    })
}
