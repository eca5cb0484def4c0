//! Test support shared by the crates' integration tests.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The repository root (scripts live there): found from the running test's package directory,
/// which cargo and nextest set at run time. (Not `env!` at compile time: clones that share one
/// target directory would then run each other's scripts.)
pub fn repo_root() -> PathBuf {
    let start = std::env::var("CARGO_MANIFEST_DIR").map(PathBuf::from).unwrap_or_else(|_| ".".into());
    start
        .ancestors()
        .find(|dir| dir.join("scripts/moto_serial.py").is_file())
        .unwrap_or_else(|| panic!("no repository root above {}", start.display()))
        .to_path_buf()
}

/// The Python of the test virtualenv (`scripts/install-python-deps.sh` makes it).
pub fn python() -> String {
    std::env::var("HEALTHLAKE_PYTHON").unwrap_or_else(|_| "python3".to_string())
}

/// The settings of an embedded pipeline under `dir` (SQL catalog, local warehouse, SQLite
/// state) with `vars` on top, as the environment map `Settings::from_map` reads.
pub fn embedded_env(dir: &std::path::Path, vars: &[(&str, &str)]) -> std::collections::HashMap<String, String> {
    let mut env: std::collections::HashMap<String, String> =
        vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    env.insert("ICEBERG_CATALOG_URI".into(), format!("sqlite://{}/catalog.db", dir.display()));
    env.insert("ICEBERG_WAREHOUSE".into(), format!("file://{}/warehouse", dir.display()));
    env.insert("HEALTHLAKE_STATE_DIR".into(), format!("{}/state", dir.display()));
    env
}

/// A port nothing listens on now, on 127.0.0.1.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Waits up to 30 s for the server just started (`what`) to accept connections on `port`.
fn wait_listening(what: &str, port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{what} did not listen on {port} within 30 s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The AWS API emulator (moto from PyPI, S3 + DynamoDB + Glue) on a free 127.0.0.1 port,
/// started by the test and stopped when dropped. See scripts/moto_serial.py for the guarantees
/// of real AWS it keeps (one request at a time; Glue's VersionId).
pub struct AwsEmulator {
    child: Child,
    pub url: String,
}

impl AwsEmulator {
    pub fn start() -> Self {
        let python = python();
        let script = repo_root().join("scripts/moto_serial.py");
        let port = free_port();
        let child = Command::new(&python)
            .arg(&script)
            .args(["127.0.0.1", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start moto with {python} (scripts/install-python-deps.sh installs it): {e}")
            });
        wait_listening("moto", port);
        AwsEmulator { child, url: format!("http://127.0.0.1:{port}") }
    }

    /// Creates the bucket, state table and Glue database with `scripts/aws_resources.py`, named
    /// by `vars` (the functions' own variables: ICEBERG_WAREHOUSE, HEALTHLAKE_DYNAMODB_TABLE,
    /// ICEBERG_DATABASE).
    pub fn create_resources(&self, vars: &[(&str, &str)]) {
        let status = Command::new(python())
            .arg(repo_root().join("scripts/aws_resources.py"))
            .arg(&self.url)
            .envs(vars.iter().copied())
            .envs([("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"), ("AWS_REGION", "us-east-1")])
            .stdout(Stdio::null())
            .status()
            .expect("running scripts/aws_resources.py");
        assert!(status.success(), "scripts/aws_resources.py failed");
    }
}

impl Drop for AwsEmulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A Kafka-compatible broker on a free 127.0.0.1 port, started by the test and stopped (its
/// data removed) when dropped: tansu with sqlite storage (`scripts/kafka-broker.sh install` puts
/// it in the cache). With `KAFKA_BROKERS` set, that broker (Redpanda, say) is used instead and
/// nothing is started.
pub struct KafkaBroker {
    child: Option<Child>,
    dir: Option<PathBuf>,
    pub bootstrap: String,
}

impl KafkaBroker {
    pub fn start() -> Self {
        if let Ok(brokers) = std::env::var("KAFKA_BROKERS")
            && !brokers.trim().is_empty()
        {
            return KafkaBroker { child: None, dir: None, bootstrap: brokers };
        }
        let cache = std::env::var("HEALTHLAKE_CACHE")
            .map(PathBuf::from)
            .unwrap_or_else(|_| PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/healthlake"));
        let tansu = cache.join("tools/bin/tansu");
        assert!(tansu.is_file(), "no broker: {} is missing (run scripts/kafka-broker.sh install)", tansu.display());
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("healthlake-kafka-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let url = format!("tcp://127.0.0.1:{port}");
        // A relative sqlite URL: tansu resolves it against its working directory.
        let child = Command::new(&tansu)
            .current_dir(&dir)
            .args(["broker", "--listener-url", &url, "--advertised-listener-url", &url])
            .args(["--storage-engine", "sqlite://tansu.db"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", tansu.display()));
        wait_listening("tansu", port);
        KafkaBroker { child: Some(child), dir: Some(dir), bootstrap: format!("127.0.0.1:{port}") }
    }
}

impl Drop for KafkaBroker {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}
