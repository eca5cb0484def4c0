//! Writer schemas as files `<dir>/<id>.avsc`, for offline use.

use std::path::PathBuf;

use async_trait::async_trait;

use super::{SchemaSource, SchemaSourceError};

/// `<dir>/<id>.avsc`.
#[derive(Debug, Clone)]
pub struct DirectorySchemaSource {
    dir: PathBuf,
}

impl DirectorySchemaSource {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }
}

#[async_trait]
impl SchemaSource for DirectorySchemaSource {
    async fn fetch(&self, schema_id: u32) -> Result<Option<String>, SchemaSourceError> {
        let path = self.dir.join(format!("{schema_id}.avsc"));
        match tokio::fs::read_to_string(&path).await {
            Ok(text) => Ok(Some(text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(SchemaSourceError::Unavailable { url: path.display().to_string(), reason: e.to_string() }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn directory_source_reads_id_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("3.avsc"), "\"string\"").unwrap();
        let source = DirectorySchemaSource::new(dir.path());
        assert_eq!(source.fetch(3).await.unwrap().as_deref(), Some("\"string\""));
        assert!(source.fetch(4).await.unwrap().is_none());
    }
}
