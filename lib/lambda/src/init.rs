//! A function's start: settings, tracing and adapters, with a failure reported to the Runtime API.
//!
//! Lambda shows a runtime that exits during init only as "Runtime exited" unless the runtime posts
//! the cause to `/runtime/init/error` first. lambda_runtime 1.5 does that for SnapStart hooks only,
//! so the post is made here with its API client.

use std::sync::Arc;

use healthlake_pipeline::app::{App, StartError};
use healthlake_pipeline::config::{ConfigError, Settings};
use healthlake_pipeline::system_clock;
use lambda_runtime::Diagnostic;
use lambda_runtime_api_client::body::Body;

/// Why a function could not start.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    /// A setting is missing or malformed; the message names the variable.
    #[error("configuration: {0}")]
    Config(#[from] ConfigError),
    /// The settings are well formed but an adapter could not be built from them.
    #[error("start: {0}")]
    Start(#[from] StartError),
}

impl InitError {
    /// The `errorType` Lambda shows for the failed init.
    pub fn error_type(&self) -> &'static str {
        match self {
            InitError::Config(_) => "Runtime.InvalidConfiguration",
            InitError::Start(_) => "Runtime.StartFailed",
        }
    }

    pub fn diagnostic(&self) -> Diagnostic {
        Diagnostic { error_type: self.error_type().to_string(), error_message: self.to_string() }
    }
}

/// Settings from the environment, tracing, adapters: what every function builds once per
/// container. A failure is posted to `/init/error` when a Runtime API is there to take it.
pub async fn start() -> Result<Arc<App>, InitError> {
    let started = open().await;
    if let Err(e) = &started {
        // Tracing may not be set up yet (the settings say how): stderr reaches CloudWatch too.
        eprintln!("{}: {e}", e.error_type());
        if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some() {
            report(&e.diagnostic()).await;
        }
    }
    started
}

async fn open() -> Result<Arc<App>, InitError> {
    let settings = Settings::from_env()?;
    crate::init_tracing(&settings);
    Ok(Arc::new(App::open(settings, system_clock()).await?))
}

/// Posts the diagnostic to `/init/error`. A failed post is only logged: the runtime exits with
/// the original error either way.
async fn report(diagnostic: &Diagnostic) {
    let result = async {
        let client = lambda_runtime_api_client::Client::builder().build()?;
        let request = lambda_runtime_api_client::build_request()
            .method(http::Method::POST)
            .uri("/2018-06-01/runtime/init/error")
            .header("Lambda-Runtime-Function-Error-Type", diagnostic.error_type.as_str())
            .body(Body::from(serde_json::to_vec(diagnostic)?))?;
        let response = client.call(request).await?;
        if !response.status().is_success() {
            return Err(format!("the Runtime API answered {}", response.status()).into());
        }
        Ok::<(), lambda_runtime_api_client::BoxError>(())
    }
    .await;
    if let Err(e) = result {
        eprintln!("could not report the init error to the Runtime API: {e}");
    }
}
