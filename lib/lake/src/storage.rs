//! S3 storage whose writes never replace an object: every PUT (and multipart completion) is sent
//! with `If-None-Match: *`, so S3 answers 412 instead of overwriting a file a manifest may
//! already reference.
//!
//! Iceberg never rewrites a file in place (every data file, manifest, manifest list and metadata
//! file gets a new name), so a write that finds its path taken is a writer bug or a race, and
//! must fail rather than silently change the bytes under a committed snapshot. The iceberg crate's
//! OpenDAL storage writes unconditionally and keeps its operator private, so this storage reads,
//! lists and deletes through it and only builds its own operator, with OpenDAL's
//! `if_not_exists`, for writes.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use iceberg::io::{
    CLIENT_REGION, FileMetadata, FileRead, FileWrite, InputFile, OutputFile, S3_ACCESS_KEY_ID, S3_ENDPOINT,
    S3_PATH_STYLE_ACCESS, S3_REGION, S3_SECRET_ACCESS_KEY, S3_SESSION_TOKEN, Storage, StorageConfig, StorageFactory,
};
use iceberg::{Error, ErrorKind, Result};
use iceberg_storage_opendal::OpenDalStorage;
use opendal::services::S3Config;
use opendal::{Configurator, Operator};
use serde::{Deserialize, Serialize};

/// `s3.*` properties the storage understands; any other `s3.` property (server-side encryption,
/// assumed roles, anonymous access) is refused rather than silently not applied to writes.
const UNDERSTOOD: [&str; 6] =
    [S3_ENDPOINT, S3_ACCESS_KEY_ID, S3_SECRET_ACCESS_KEY, S3_SESSION_TOKEN, S3_REGION, S3_PATH_STYLE_ACCESS];

/// Builds [`CreateOnlyS3Storage`] from the catalog's FileIO properties.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct CreateOnlyS3StorageFactory;

#[typetag::serde]
impl StorageFactory for CreateOnlyS3StorageFactory {
    fn build(&self, config: &StorageConfig) -> Result<Arc<dyn Storage>> {
        let config = Arc::new(s3_config(config.props())?);
        Ok(Arc::new(CreateOnlyS3Storage {
            inner: OpenDalStorage::S3 { config: config.clone(), customized_credential_load: None },
            config,
        }))
    }
}

/// The S3 settings from FileIO properties, with Iceberg's defaults (virtual-host style unless
/// `s3.path-style-access` says otherwise).
fn s3_config(props: &HashMap<String, String>) -> Result<S3Config> {
    if let Some(key) = props.keys().find(|k| k.starts_with("s3.") && !UNDERSTOOD.contains(&k.as_str())) {
        return Err(Error::new(
            ErrorKind::FeatureUnsupported,
            format!("S3 property {key} is not supported by healthlake's create-only S3 storage"),
        ));
    }
    let mut cfg = S3Config::default();
    cfg.enable_virtual_host_style = true;
    cfg.endpoint = props.get(S3_ENDPOINT).cloned();
    cfg.access_key_id = props.get(S3_ACCESS_KEY_ID).cloned();
    cfg.secret_access_key = props.get(S3_SECRET_ACCESS_KEY).cloned();
    cfg.session_token = props.get(S3_SESSION_TOKEN).cloned();
    cfg.region = props.get(S3_REGION).or_else(|| props.get(CLIENT_REGION)).cloned();
    if let Some(path_style) = props.get(S3_PATH_STYLE_ACCESS) {
        cfg.enable_virtual_host_style = !["true", "t", "1", "on"].contains(&path_style.to_lowercase().as_str());
    }
    Ok(cfg)
}

/// Reads through the crate's OpenDAL storage; writes create objects only.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct CreateOnlyS3Storage {
    inner: OpenDalStorage,
    config: Arc<S3Config>,
}

impl CreateOnlyS3Storage {
    /// An operator on the path's bucket and the path within it.
    fn operator<'a>(&self, path: &'a str) -> Result<(Operator, &'a str)> {
        bucket_operator(&self.config, path)
    }
}

/// An operator on an `s3://bucket/key` path's bucket, and the key.
fn bucket_operator<'a>(config: &S3Config, path: &'a str) -> Result<(Operator, &'a str)> {
    let url = url::Url::parse(path)?;
    let bucket =
        url.host_str().ok_or_else(|| Error::new(ErrorKind::DataInvalid, format!("s3 url {path} names no bucket")))?;
    let prefix = format!("{}://{bucket}/", url.scheme());
    let key = path
        .strip_prefix(&prefix)
        .ok_or_else(|| Error::new(ErrorKind::DataInvalid, format!("s3 url {path} does not start with {prefix}")))?;
    let builder = config.clone().into_builder().bucket(bucket);
    let op = Operator::new(builder).map_err(|e| io_error(path, e))?.finish();
    Ok((op, key))
}

/// An object under a prefix, with its last modification time.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ListedFile {
    pub path: String,
    pub modified: Option<std::time::SystemTime>,
}

/// Every object under `s3://bucket/prefix/` (recursively), as full `s3://` paths.
pub(crate) async fn list_s3(props: &HashMap<String, String>, prefix: &str) -> Result<Vec<ListedFile>> {
    let config = s3_config(props)?;
    let (op, key) = bucket_operator(&config, prefix)?;
    let base = &prefix[..prefix.len() - key.len()];
    let key = format!("{}/", key.trim_end_matches('/'));
    let entries = op
        .list_with(&key)
        .recursive(true)
        .await
        .map_err(|e| Error::new(ErrorKind::Unexpected, format!("listing {prefix}")).with_source(e))?;
    Ok(entries
        .into_iter()
        .filter(|e| !e.path().ends_with('/'))
        .map(|e| ListedFile {
            path: format!("{base}{}", e.path()),
            modified: e.metadata().last_modified().map(std::time::SystemTime::from),
        })
        .collect())
}

/// An OpenDAL error as an iceberg one, saying so when the object already existed.
fn io_error(path: &str, e: opendal::Error) -> Error {
    let message = match e.kind() {
        opendal::ErrorKind::ConditionNotMatch | opendal::ErrorKind::AlreadyExists => {
            format!("{path} already exists; not overwritten")
        }
        _ => format!("writing {path}"),
    };
    Error::new(ErrorKind::Unexpected, message).with_source(e)
}

#[typetag::serde]
#[async_trait]
impl Storage for CreateOnlyS3Storage {
    async fn exists(&self, path: &str) -> Result<bool> {
        self.inner.exists(path).await
    }

    async fn metadata(&self, path: &str) -> Result<FileMetadata> {
        self.inner.metadata(path).await
    }

    async fn read(&self, path: &str) -> Result<Bytes> {
        self.inner.read(path).await
    }

    async fn reader(&self, path: &str) -> Result<Box<dyn FileRead>> {
        self.inner.reader(path).await
    }

    async fn write(&self, path: &str, bs: Bytes) -> Result<()> {
        let (op, key) = self.operator(path)?;
        op.write_with(key, bs).if_not_exists(true).await.map_err(|e| io_error(path, e))?;
        Ok(())
    }

    async fn writer(&self, path: &str) -> Result<Box<dyn FileWrite>> {
        let (op, key) = self.operator(path)?;
        let writer = op.writer_with(key).if_not_exists(true).await.map_err(|e| io_error(path, e))?;
        Ok(Box::new(CreateOnlyWriter { writer, path: path.to_string() }))
    }

    async fn delete(&self, path: &str) -> Result<()> {
        self.inner.delete(path).await
    }

    async fn delete_prefix(&self, path: &str) -> Result<()> {
        self.inner.delete_prefix(path).await
    }

    async fn delete_stream(&self, paths: BoxStream<'static, String>) -> Result<()> {
        self.inner.delete_stream(paths).await
    }

    fn new_input(&self, path: &str) -> Result<InputFile> {
        Ok(InputFile::new(Arc::new(self.clone()), path.to_string()))
    }

    fn new_output(&self, path: &str) -> Result<OutputFile> {
        Ok(OutputFile::new(Arc::new(self.clone()), path.to_string()))
    }
}

/// The crate's writer wrapper is private; this one names the path in its errors.
struct CreateOnlyWriter {
    writer: opendal::Writer,
    path: String,
}

#[async_trait]
impl FileWrite for CreateOnlyWriter {
    async fn write(&mut self, bs: Bytes) -> Result<()> {
        self.writer.write(bs).await.map_err(|e| io_error(&self.path, e))
    }

    async fn close(&mut self) -> Result<()> {
        self.writer.close().await.map(|_| ()).map_err(|e| io_error(&self.path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(entries: &[(&str, &str)]) -> HashMap<String, String> {
        entries.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn settings_come_from_the_file_io_properties() {
        let cfg = s3_config(&props(&[
            (S3_ENDPOINT, "http://127.0.0.1:5000"),
            (S3_PATH_STYLE_ACCESS, "true"),
            (S3_ACCESS_KEY_ID, "key"),
            (S3_SECRET_ACCESS_KEY, "secret"),
            (CLIENT_REGION, "eu-west-1"),
            ("uri", "sqlite:///catalog.db"),
        ]))
        .unwrap();
        assert!(!cfg.enable_virtual_host_style);
        assert_eq!(cfg.endpoint.as_deref(), Some("http://127.0.0.1:5000"));
        assert_eq!((cfg.access_key_id.as_deref(), cfg.secret_access_key.as_deref()), (Some("key"), Some("secret")));
        assert_eq!(cfg.region.as_deref(), Some("eu-west-1"));
        assert!(s3_config(&props(&[])).unwrap().enable_virtual_host_style, "Iceberg's default");
    }

    #[test]
    fn an_s3_property_it_would_not_apply_is_refused() {
        let err = s3_config(&props(&[("s3.sse.type", "kms")])).unwrap_err();
        assert!(err.to_string().contains("s3.sse.type"), "{err}");
    }
}
