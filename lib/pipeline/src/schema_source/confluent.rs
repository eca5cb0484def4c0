//! A Confluent-compatible registry: `GET {url}/schemas/ids/{id}` → `{"schema": "..."}`.

use std::time::Duration;

use async_trait::async_trait;

use super::{SchemaSource, SchemaSourceError};
use crate::config::TrustedRoots;

/// Confluent's `error_code` for "schema not found": the only 404 that means an unknown id.
const SCHEMA_NOT_FOUND: u32 = 40403;

#[derive(Debug, Clone)]
pub struct HttpSchemaRegistry {
    url: String,
    basic_auth: Option<(String, String)>,
    client: reqwest::Client,
}

impl HttpSchemaRegistry {
    pub fn new(
        url: &str,
        basic_auth: Option<(String, String)>,
        extra_roots: Option<&TrustedRoots>,
    ) -> Result<Self, SchemaSourceError> {
        let url = url.trim_end_matches('/').to_string();
        let client = registry_client(extra_roots)
            .map_err(|e| SchemaSourceError::Client { url: shown(&url), reason: chain(&e) })?;
        Ok(Self { url, basic_auth, client })
    }
}

/// An HTTP(S) client for a registry: rustls with the system's roots (`SSL_CERT_FILE` and
/// `SSL_CERT_DIR` apply) plus `extra_roots`. Shared with the producer, which registers schemas
/// at the same registry.
pub fn registry_client(extra_roots: Option<&TrustedRoots>) -> Result<reqwest::Client, reqwest::Error> {
    let certificates = extra_roots
        .map(|roots| {
            roots.certificates.iter().map(|der| reqwest::Certificate::from_der(der)).collect::<Result<Vec<_>, _>>()
        })
        .transpose()?
        .unwrap_or_default();
    reqwest::Client::builder().timeout(Duration::from_secs(10)).tls_certs_merge(certificates).build()
}

#[async_trait]
impl SchemaSource for HttpSchemaRegistry {
    async fn fetch(&self, schema_id: u32) -> Result<Option<String>, SchemaSourceError> {
        let url = format!("{}/schemas/ids/{schema_id}", self.url);
        let unavailable = |e: reqwest::Error| SchemaSourceError::Unavailable { url: shown(&url), reason: chain(&e) };
        let mut request = self.client.get(&url);
        if let Some((user, password)) = &self.basic_auth {
            request = request.basic_auth(user, Some(password));
        }
        let response = request.send().await.map_err(unavailable)?;
        let status = response.status().as_u16();
        let body = response.bytes().await.map_err(unavailable)?;
        answer(status, &body).map_err(|failure| match failure {
            Failure::Retryable(reason) => SchemaSourceError::Unavailable { url: shown(&url), reason },
            Failure::Misconfigured(answer) => SchemaSourceError::Misconfigured { url: shown(&url), answer },
        })
    }
}

/// What an answer other than a schema or an unknown id means.
#[derive(Debug, PartialEq)]
enum Failure {
    Retryable(String),
    Misconfigured(String),
}

#[derive(serde::Deserialize)]
struct SchemaById {
    schema: String,
}

#[derive(serde::Deserialize)]
struct RegistryError {
    error_code: u32,
}

/// The meaning of a registry's answer to `GET /schemas/ids/{id}`.
fn answer(status: u16, body: &[u8]) -> Result<Option<String>, Failure> {
    match status {
        200 => serde_json::from_slice::<SchemaById>(body).map(|b| Some(b.schema)).map_err(|e| {
            Failure::Misconfigured(format!("HTTP 200 with no schema in its body ({e}): {}", excerpt(body)))
        }),
        404 if serde_json::from_slice::<RegistryError>(body).is_ok_and(|e| e.error_code == SCHEMA_NOT_FOUND) => {
            Ok(None)
        }
        404 => Err(Failure::Misconfigured(format!(
            "HTTP 404 without Confluent's error_code {SCHEMA_NOT_FOUND} (schema not found), so the URL or path is \
             not a registry's: {}",
            excerpt(body)
        ))),
        401 | 403 => Err(Failure::Misconfigured(format!("HTTP {status}, refusing the credentials: {}", excerpt(body)))),
        408 | 429 | 500..=599 => Err(Failure::Retryable(format!("HTTP {status}: {}", excerpt(body)))),
        _ => Err(Failure::Misconfigured(format!("HTTP {status}: {}", excerpt(body)))),
    }
}

/// The start of a body, enough to recognise what answered.
fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    match text.char_indices().nth(200) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_string(),
    }
}

/// The URL as errors and logs may show it: without credentials someone put in it.
fn shown(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if !parsed.username().is_empty() || parsed.password().is_some() => {
            let _ = parsed.set_username("");
            let _ = parsed.set_password(None);
            parsed.to_string()
        }
        _ => url.to_string(),
    }
}

/// An error with its causes: reqwest's own message hides the one that says what went wrong
/// (refused connection, unknown certificate issuer, timeout).
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
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
        let registry = HttpSchemaRegistry::new(&url, Some(("alice".into(), "secret".into())), None).unwrap();
        let schema = registry.fetch(42).await.unwrap();
        assert_eq!(schema.as_deref(), Some(r#"{"type":"string"}"#));
        let request = server.join().unwrap();
        assert!(request.starts_with("GET /schemas/ids/42 "), "{request}");
        assert!(request.to_ascii_lowercase().contains("authorization: basic ywxpy2u6c2vjcmv0"), "{request}");
    }

    #[tokio::test]
    async fn http_registry_distinguishes_unknown_from_unavailable() {
        let (url, server) = serve_once("404 Not Found", r#"{"error_code":40403,"message":"Schema 7 not found"}"#);
        assert!(HttpSchemaRegistry::new(&url, None, None).unwrap().fetch(7).await.unwrap().is_none());
        server.join().unwrap();
        let (url, server) = serve_once("503 Service Unavailable", "{}");
        let err = HttpSchemaRegistry::new(&url, None, None).unwrap().fetch(7).await.unwrap_err();
        assert!(err.is_retryable(), "{err}");
        server.join().unwrap();
    }

    #[tokio::test]
    async fn a_registry_that_cannot_be_reached_is_retryable_and_named() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        drop(listener);
        let err = HttpSchemaRegistry::new(&url, None, None).unwrap().fetch(7).await.unwrap_err();
        assert!(err.is_retryable(), "{err}");
        assert!(err.to_string().contains(&format!("{url}/schemas/ids/7")), "{err}");
    }

    #[test]
    fn only_confluents_40403_means_an_unknown_id() {
        assert_eq!(answer(404, br#"{"error_code":40403,"message":"Schema 9 not found"}"#), Ok(None));
        for body in [&br#"{"error_code":40401,"message":"Subject not found"}"#[..], b"Not Found", b"", b"{}"] {
            assert!(matches!(answer(404, body), Err(Failure::Misconfigured(_))), "{:?}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn answers_are_retryable_only_when_the_registry_may_come_back() {
        assert_eq!(answer(200, br#"{"schema":"\"string\""}"#), Ok(Some("\"string\"".into())));
        for status in [408, 429, 500, 502, 503, 504] {
            assert!(matches!(answer(status, b""), Err(Failure::Retryable(_))), "{status}");
        }
        for status in [400, 401, 403, 405] {
            assert!(
                matches!(answer(status, b"denied"), Err(Failure::Misconfigured(m)) if m.contains("denied")),
                "{status}"
            );
        }
        // Some other service at the configured URL.
        assert!(
            matches!(answer(200, b"<html>welcome</html>"), Err(Failure::Misconfigured(m)) if m.contains("welcome"))
        );
    }

    #[test]
    fn urls_in_errors_carry_no_credentials() {
        assert_eq!(shown("https://user:pw@registry:8081/schemas/ids/1"), "https://registry:8081/schemas/ids/1");
        assert_eq!(shown("http://registry:8081/schemas/ids/1"), "http://registry:8081/schemas/ids/1");
    }
}
