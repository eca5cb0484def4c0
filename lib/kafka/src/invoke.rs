//! Calling the functions: in the runner's own process over the same library the Lambda binaries
//! use, or through Lambda's Invoke API as `cargo lambda watch` serves it for the real binaries.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_lambda_events::event::kafka::KafkaEvent;
use healthlake_core::WindowKind;
use healthlake_lambda::HandlerFailure;
use healthlake_pipeline::app::App;
use lambda_runtime::Diagnostic;
use serde_json::{Value, json};

/// One invocation: the ingest function on a batch, or finalize as its schedule calls it.
#[derive(Debug, Clone)]
pub enum Invocation {
    Ingest(KafkaEvent),
    Finalize(WindowKind),
}

impl Invocation {
    /// The payload the function receives.
    pub fn payload(&self) -> Value {
        match self {
            Invocation::Ingest(event) => serde_json::to_value(event).expect("a Kafka event serializes"),
            Invocation::Finalize(kind) => json!({ "kind": kind }),
        }
    }
}

/// A failed invocation as Lambda reports it (`errorType` starts with `Retryable.` or
/// `Permanent.` for healthlake's own failures).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{error_type}: {error_message}")]
pub struct InvokeFailure {
    pub error_type: String,
    pub error_message: String,
}

impl From<HandlerFailure> for InvokeFailure {
    fn from(failure: HandlerFailure) -> Self {
        let diagnostic: Diagnostic = failure.into();
        Self { error_type: diagnostic.error_type, error_message: diagnostic.error_message }
    }
}

/// The port to the functions.
#[async_trait]
pub trait FunctionInvoker: Send + Sync {
    async fn invoke(&self, invocation: &Invocation) -> Result<Value, InvokeFailure>;
}

/// The handlers in this process, with the responses and error types the Lambda binaries give.
pub struct InProcessInvoker {
    app: Arc<App>,
}

impl InProcessInvoker {
    pub fn new(app: Arc<App>) -> Self {
        Self { app }
    }
}

#[async_trait]
impl FunctionInvoker for InProcessInvoker {
    async fn invoke(&self, invocation: &Invocation) -> Result<Value, InvokeFailure> {
        match invocation {
            Invocation::Ingest(event) => match self.app.ingest.handle(event).await {
                Ok(report) => Ok(healthlake_lambda::ingest_response(&report)),
                Err(e) => Err(HandlerFailure::from(e).into()),
            },
            Invocation::Finalize(kind) => match self.app.finalize.handle(*kind).await {
                Ok(report) => Ok(healthlake_lambda::finalize_response(*kind, &report)),
                Err(e) => Err(HandlerFailure::from(e).into()),
            },
        }
    }
}

/// Lambda's Invoke API (`POST {endpoint}/2015-03-31/functions/{name}/invocations`), as
/// `cargo lambda watch` serves it for the function binaries. A function error comes back with the
/// `X-Amz-Function-Error` header and the error document as the body.
pub struct InvokeApiInvoker {
    endpoint: String,
    ingest_function: String,
    finalize_function: String,
    client: reqwest::Client,
}

impl InvokeApiInvoker {
    pub fn new(endpoint: &str, ingest_function: &str, finalize_function: &str) -> Self {
        // An invocation may run up to Lambda's 15-minute limit.
        let client = reqwest::Client::builder().timeout(Duration::from_secs(900)).build().expect("http client builds");
        Self {
            endpoint: endpoint.trim_end_matches('/').to_string(),
            ingest_function: ingest_function.to_string(),
            finalize_function: finalize_function.to_string(),
            client,
        }
    }
}

#[async_trait]
impl FunctionInvoker for InvokeApiInvoker {
    async fn invoke(&self, invocation: &Invocation) -> Result<Value, InvokeFailure> {
        let function = match invocation {
            Invocation::Ingest(_) => &self.ingest_function,
            Invocation::Finalize(_) => &self.finalize_function,
        };
        let url = format!("{}/2015-03-31/functions/{function}/invocations", self.endpoint);
        let failure = |error_type: &str, error_message: String| InvokeFailure {
            error_type: error_type.to_string(),
            error_message,
        };
        let response = self
            .client
            .post(&url)
            .header("Content-Type", "application/json")
            .body(invocation.payload().to_string())
            .send()
            .await
            .map_err(|e| failure("Runner.InvokeUnreachable", format!("{url}: {e}")))?;
        let status = response.status();
        let function_error = response.headers().contains_key("x-amz-function-error");
        let body = response.text().await.map_err(|e| failure("Runner.InvokeUnreachable", format!("{url}: {e}")))?;
        let value: Value = serde_json::from_str(&body).unwrap_or(Value::String(body));
        if function_error || !status.is_success() {
            return Err(InvokeFailure {
                error_type: value["errorType"].as_str().unwrap_or("Runner.InvokeFailed").to_string(),
                error_message: value["errorMessage"]
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| format!("{function} answered {status}: {value}")),
            });
        }
        Ok(value)
    }
}
