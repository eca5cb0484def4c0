//! Where writer schemas come from: a Confluent-compatible registry or a directory of files.

use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;

use crate::config::SchemaRegistrySettings;

#[derive(Debug, thiserror::Error)]
pub enum SchemaSourceError {
    /// The registry could not be asked; the batch fails and is redelivered.
    #[error("schema registry unavailable: {0}")]
    Unavailable(String),
}

/// The port to a schema registry. `Ok(None)` means the id is definitely unknown.
#[async_trait]
pub trait SchemaSource: Send + Sync {
    async fn fetch(&self, schema_id: u32) -> Result<Option<String>, SchemaSourceError>;
}

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
            Err(e) => Err(SchemaSourceError::Unavailable(format!("{}: {e}", path.display()))),
        }
    }
}

/// A Confluent-compatible registry: `GET {url}/schemas/ids/{id}` → `{"schema": "..."}`.
#[derive(Debug, Clone)]
pub struct HttpSchemaRegistry {
    url: String,
    basic_auth: Option<(String, String)>,
    client: reqwest::Client,
}

impl HttpSchemaRegistry {
    pub fn new(url: &str, basic_auth: Option<(String, String)>) -> Self {
        let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("http client builds");
        Self { url: url.trim_end_matches('/').to_string(), basic_auth, client }
    }
}

#[derive(serde::Deserialize)]
struct SchemaById {
    schema: String,
}

#[async_trait]
impl SchemaSource for HttpSchemaRegistry {
    async fn fetch(&self, schema_id: u32) -> Result<Option<String>, SchemaSourceError> {
        let mut request = self.client.get(format!("{}/schemas/ids/{schema_id}", self.url));
        if let Some((user, password)) = &self.basic_auth {
            request = request.basic_auth(user, Some(password));
        }
        let response = request.send().await.map_err(|e| SchemaSourceError::Unavailable(e.to_string()))?;
        match response.status().as_u16() {
            404 => Ok(None),
            200 => {
                let body: SchemaById =
                    response.json().await.map_err(|e| SchemaSourceError::Unavailable(e.to_string()))?;
                Ok(Some(body.schema))
            }
            status => {
                Err(SchemaSourceError::Unavailable(format!("registry answered HTTP {status} for id {schema_id}")))
            }
        }
    }
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

pub fn from_settings(settings: &SchemaRegistrySettings) -> Box<dyn SchemaSource> {
    match settings {
        SchemaRegistrySettings::Http { url, basic_auth } => Box::new(HttpSchemaRegistry::new(url, basic_auth.clone())),
        SchemaRegistrySettings::Directory(dir) => Box::new(DirectorySchemaSource::new(dir.clone())),
        SchemaRegistrySettings::None => Box::new(NoSchemaSource),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpListener;

    /// A one-shot HTTP server on 127.0.0.1 that answers like a registry and records the request.
    fn serve_once(status: &'static str, body: &'static str) -> (String, std::thread::JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let handle = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut buf = [0u8; 4096];
            let n = stream.read(&mut buf).unwrap();
            let request = String::from_utf8_lossy(&buf[..n]).to_string();
            write!(stream, "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).unwrap();
            request
        });
        (url, handle)
    }

    #[tokio::test]
    async fn http_registry_fetches_by_id_with_basic_auth() {
        let (url, server) = serve_once("200 OK", r#"{"schema":"{\"type\":\"string\"}"}"#);
        let registry = HttpSchemaRegistry::new(&url, Some(("alice".into(), "secret".into())));
        let schema = registry.fetch(42).await.unwrap();
        assert_eq!(schema.as_deref(), Some(r#"{"type":"string"}"#));
        let request = server.join().unwrap();
        assert!(request.starts_with("GET /schemas/ids/42 "), "{request}");
        assert!(request.to_ascii_lowercase().contains("authorization: basic ywxpy2u6c2vjcmv0"), "{request}");
    }

    #[tokio::test]
    async fn http_registry_distinguishes_unknown_from_unavailable() {
        let (url, server) = serve_once("404 Not Found", r#"{"error_code":40403}"#);
        assert!(HttpSchemaRegistry::new(&url, None).fetch(7).await.unwrap().is_none());
        server.join().unwrap();
        let (url, server) = serve_once("503 Service Unavailable", "{}");
        assert!(HttpSchemaRegistry::new(&url, None).fetch(7).await.is_err());
        server.join().unwrap();
    }

    #[tokio::test]
    async fn directory_source_reads_id_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("3.avsc"), "\"string\"").unwrap();
        let source = DirectorySchemaSource::new(dir.path());
        assert_eq!(source.fetch(3).await.unwrap().as_deref(), Some("\"string\""));
        assert!(source.fetch(4).await.unwrap().is_none());
    }
}
