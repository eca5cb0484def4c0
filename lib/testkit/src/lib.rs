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
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new(&python)
            .arg(&script)
            .args(["127.0.0.1", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start moto with {python} (scripts/install-python-deps.sh installs it): {e}")
            });
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "moto did not listen on {port} within 30 s");
            std::thread::sleep(Duration::from_millis(50));
        }
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
