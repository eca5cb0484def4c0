//! The Confluent REST schema source against a local registry on 127.0.0.1, over plain HTTP and
//! over TLS with a CA made by the test: which answers mean "unknown schema" (rows in the errors
//! table) and which fail the batch as a whole.

use std::sync::{Arc, Mutex};

use chrono::Duration;
use healthlake_core::generate::{self, GeneratorConfig, WRITER_SCHEMAS};
use healthlake_core::record::ErrorType;
use healthlake_lake::TableKind;
use healthlake_pipeline::app::App;
use healthlake_pipeline::config::Settings;
use healthlake_pipeline::demo::{assign_offsets, deliveries};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// What the local registry knows.
#[derive(Debug, Clone, Copy)]
enum Knows {
    /// The generator's writer schemas, by id.
    WriterSchemas,
    /// No schema: every id is Confluent's 40403.
    Nothing,
}

/// A Confluent-compatible registry at the root of `url`; any other path is a plain 404, as a
/// proxy or another service would answer.
struct LocalRegistry {
    url: String,
    /// The head of every request received.
    requests: Arc<Mutex<Vec<String>>>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for LocalRegistry {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl LocalRegistry {
    async fn start(knows: Knows) -> Self {
        Self::serve(knows, None).await
    }

    async fn start_tls(knows: Knows, acceptor: TlsAcceptor) -> Self {
        Self::serve(knows, Some(acceptor)).await
    }

    async fn serve(knows: Knows, tls: Option<TlsAcceptor>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let scheme = if tls.is_some() { "https" } else { "http" };
        let url = format!("{scheme}://{}", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        let server = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let seen = seen.clone();
                match tls.clone() {
                    None => drop(tokio::spawn(answer(stream, knows, seen))),
                    // A failed handshake is the client's refusal: nothing to answer.
                    Some(acceptor) => drop(tokio::spawn(async move {
                        if let Ok(stream) = acceptor.accept(stream).await {
                            answer(stream, knows, seen).await;
                        }
                    })),
                }
            }
        });
        Self { url, requests, server }
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

/// Reads one request head and answers it; the connection closes after each answer.
async fn answer(stream: impl AsyncRead + AsyncWrite + Unpin, knows: Knows, seen: Arc<Mutex<Vec<String>>>) {
    let mut stream = BufReader::new(stream);
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if stream.read_line(&mut line).await.unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        head.push_str(&line);
    }
    let path = head.split_whitespace().nth(1).unwrap_or_default().to_string();
    seen.lock().unwrap().push(head);
    let (status, body) = match (path.strip_prefix("/schemas/ids/").and_then(|id| id.parse::<u32>().ok()), knows) {
        (Some(id), Knows::WriterSchemas) if WRITER_SCHEMAS.iter().any(|(known, _)| *known == id) => {
            let text = WRITER_SCHEMAS.iter().find(|(known, _)| *known == id).unwrap().1;
            ("200 OK", serde_json::json!({ "schema": text }).to_string())
        }
        (Some(id), _) => (
            "404 Not Found",
            serde_json::json!({ "error_code": 40403, "message": format!("Schema {id} not found") }).to_string(),
        ),
        (None, _) => ("404 Not Found", "<html><body>Not Found</body></html>".to_string()),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.get_mut().write_all(response.as_bytes()).await;
    let _ = stream.get_mut().shutdown().await;
}

/// An app on the embedded stores in a fresh directory, reading schemas as `vars` say.
async fn open_app(dir: &tempfile::TempDir, vars: &[(&str, &str)]) -> App {
    let settings = Settings::from_map(&healthlake_testkit::embedded_env(dir.path(), vars)).unwrap();
    App::open(settings, healthlake_pipeline::system_clock()).await.unwrap()
}

/// One batch of Avro records framed with the generator's writer schema ids, all decodable.
fn avro_batch() -> (usize, aws_lambda_events::event::kafka::KafkaEvent) {
    let cfg = GeneratorConfig {
        records: 12,
        users: 3,
        partitions: 2,
        span: Duration::days(2),
        invalid_sample_ratio: 0.0,
        undecodable_record_ratio: 0.0,
        ..GeneratorConfig::default()
    };
    let produced = assign_offsets(&cfg.topic, generate::generate(&cfg));
    let mut plan = deliveries(&produced, produced.len(), 0, 0);
    assert_eq!(plan.len(), 1);
    (produced.len(), plan.remove(0).1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_the_registry_reports_unknown_become_unknown_schema_rows() {
    let registry = LocalRegistry::start(Knows::Nothing).await;
    let dir = tempfile::tempdir().unwrap();
    let app = open_app(&dir, &[("SCHEMA_REGISTRY_URL", &registry.url)]).await;
    let (records, event) = avro_batch();

    let report = app.ingest.handle(&event).await.unwrap();
    assert_eq!(report.errors_by_type.get(&ErrorType::UnknownSchema), Some(&(records as u64)), "{report:?}");
    assert_eq!(app.lake.row_count(TableKind::Errors).await.unwrap(), records as u64);
    assert!(registry.requests().iter().all(|r| r.starts_with("GET /schemas/ids/")), "{:?}", registry.requests());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_404_that_is_not_schema_not_found_fails_the_batch_naming_the_url() {
    let registry = LocalRegistry::start(Knows::WriterSchemas).await;
    // A path the registry does not serve: its 404 says nothing about the schema.
    let wrong = format!("{}/wrong-prefix", registry.url);
    let dir = tempfile::tempdir().unwrap();
    let app = open_app(&dir, &[("SCHEMA_REGISTRY_URL", &wrong)]).await;
    let (_, event) = avro_batch();

    let err = app.ingest.handle(&event).await.unwrap_err();
    let message = err.to_string();
    assert!(message.contains(&format!("{wrong}/schemas/ids/")), "{message}");
    assert!(message.contains("404"), "{message}");
    assert!(!err.is_retryable(), "a wrong URL needs a new deployment, not a retry: {message}");
    assert_eq!(app.lake.row_count(TableKind::Errors).await.unwrap(), 0);
    assert_eq!(app.lake.row_count(TableKind::Raw).await.unwrap(), 0);
    // No event-time progress: only the note that the partition has a batch waiting.
    let progress = app.store.partition_progress().await.unwrap();
    assert!(progress.iter().all(|p| p.pending && p.max_event_time == chrono::DateTime::UNIX_EPOCH), "{progress:?}");

    // The same records against the right URL are all decoded.
    drop(app);
    let app = open_app(&dir, &[("SCHEMA_REGISTRY_URL", &registry.url)]).await;
    let report = app.ingest.handle(&event).await.unwrap();
    assert!(report.errors_by_type.is_empty(), "{report:?}");
    assert!(report.raw_rows_written > 0, "{report:?}");
}

/// A CA made for the test, and a certificate it signs for 127.0.0.1 served by `acceptor`.
struct PrivateCa {
    pem: String,
    acceptor: TlsAcceptor,
}

fn private_ca() -> PrivateCa {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    };
    use tokio_rustls::rustls::pki_types::PrivatePkcs8KeyDer;

    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    ca.distinguished_name.push(DnType::CommonName, "healthlake test CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);

    let server_key = KeyPair::generate().unwrap();
    let mut server = CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server_cert = server.signed_by(&server_key, &issuer).unwrap();

    let provider = Arc::new(tokio_rustls::rustls::crypto::aws_lc_rs::default_provider());
    let config = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![server_cert.der().clone()], PrivatePkcs8KeyDer::from(server_key.serialize_der()).into())
        .unwrap();
    PrivateCa { pem: ca_cert.pem(), acceptor: TlsAcceptor::from(Arc::new(config)) }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_registry_behind_a_private_ca_serves_schemas_with_basic_auth() {
    let ca = private_ca();
    let registry = LocalRegistry::start_tls(Knows::WriterSchemas, ca.acceptor.clone()).await;
    assert!(registry.url.starts_with("https://127.0.0.1:"));
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("registry-ca.pem");
    std::fs::write(&ca_file, &ca.pem).unwrap();
    let app = open_app(
        &dir,
        &[
            ("SCHEMA_REGISTRY_URL", &registry.url),
            ("SCHEMA_REGISTRY_CA_FILE", ca_file.to_str().unwrap()),
            ("SCHEMA_REGISTRY_BASIC_AUTH_USER", "alice"),
            ("SCHEMA_REGISTRY_BASIC_AUTH_PASSWORD", "secret"),
        ],
    )
    .await;
    let (_, event) = avro_batch();

    let report = app.ingest.handle(&event).await.unwrap();
    assert!(report.errors_by_type.is_empty(), "{report:?}");
    assert!(report.raw_rows_written > 0, "{report:?}");
    let requests = registry.requests();
    assert!(!requests.is_empty());
    for request in &requests {
        assert!(request.starts_with("GET /schemas/ids/"), "{request}");
        // alice:secret
        assert!(request.to_ascii_lowercase().contains("authorization: basic ywxpy2u6c2vjcmv0"), "{request}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_registry_whose_ca_is_not_trusted_fails_the_batch() {
    let ca = private_ca();
    let registry = LocalRegistry::start_tls(Knows::WriterSchemas, ca.acceptor.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let app = open_app(&dir, &[("SCHEMA_REGISTRY_URL", &registry.url)]).await;
    let (_, event) = avro_batch();

    let err = app.ingest.handle(&event).await.unwrap_err();
    let message = err.to_string();
    assert!(message.contains(&registry.url), "{message}");
    assert!(message.to_ascii_lowercase().contains("certificate"), "{message}");
    assert!(registry.requests().is_empty(), "no request may pass an untrusted handshake");
    assert_eq!(app.lake.row_count(TableKind::Errors).await.unwrap(), 0);
    assert_eq!(app.lake.row_count(TableKind::Raw).await.unwrap(), 0);
}
