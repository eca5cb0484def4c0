//! Shared by the Lambda binaries: they stay a few lines each.

mod emf;
mod init;

use std::future::Future;
use std::sync::Arc;

pub use emf::EmfMetrics;
use healthlake_pipeline::app::App;
use healthlake_pipeline::config::{LogFormat, Settings};
pub use init::{InitError, start};
use lambda_runtime::{Diagnostic, Error, LambdaEvent, service_fn};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// Starts a function: settings from the environment (failing at start, naming the variable, in
/// `/init/error`), tracing, adapters built once per container, then the runtime loop calling
/// `handler`.
pub async fn serve<E, R, F, Fut>(handler: F) -> Result<(), Error>
where
    E: DeserializeOwned + Send + 'static,
    R: Serialize + Send + 'static,
    F: Fn(Arc<App>, LambdaEvent<E>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<R, HandlerFailure>> + Send + 'static,
{
    let app = start().await?;
    let metrics = install_metrics(&app.settings)?.map(Arc::new);
    let handler = Arc::new(handler);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let (app, handler, metrics) = (app.clone(), handler.clone(), metrics.clone());
        async move {
            let request_id = event.context.request_id.clone();
            let result = match parse_payload(event) {
                Ok(event) => handler(app, event).await,
                Err(failure) => Err(failure),
            };
            // Once per invocation, failed ones too: their counters say what failed.
            if let Some(metrics) = &metrics {
                metrics.flush(&request_id);
            }
            result
        }
    }))
    .await
}

/// The EMF recorder when `METRICS_ENABLED`, named after the function Lambda says this is.
fn install_metrics(settings: &Settings) -> Result<Option<EmfMetrics>, Error> {
    if !settings.metrics_enabled {
        return Ok(None);
    }
    let function = std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_else(|_| "healthlake".into());
    Ok(Some(EmfMetrics::install(&settings.metrics_namespace, &function)?))
}

/// The payload as the function's input type. lambda_runtime would refuse a malformed payload
/// itself, but under a Rust type name as the error type; here it is `Permanent.InvalidInput`,
/// which no retry of the same payload changes.
fn parse_payload<E: DeserializeOwned>(event: LambdaEvent<Value>) -> Result<LambdaEvent<E>, HandlerFailure> {
    let LambdaEvent { payload, context } = event;
    match serde_json::from_value(payload) {
        Ok(payload) => Ok(LambdaEvent::new(payload, context)),
        Err(e) => Err(HandlerFailure { retryable: false, kind: "InvalidInput", message: e.to_string() }),
    }
}

/// JSON logs to CloudWatch by default, at `LOG_LEVEL`.
pub fn init_tracing(settings: &Settings) {
    let level = match settings.log_level.as_str() {
        "WARNING" => "warn".to_string(),
        other => other.to_ascii_lowercase(),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(level))
        .with_target(false)
        .without_time(); // CloudWatch stamps every line
    match settings.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.with_ansi(false).init(),
    }
}

/// A handler failure as the runtime reports it. The `error_type` starts with `Retryable.` or
/// `Permanent.` so alarms and on-failure destinations can tell a batch worth retrying (store or
/// catalog unavailable, commit conflicts) from one that never will succeed (strict-mode rejects).
#[derive(Debug)]
pub struct HandlerFailure {
    pub retryable: bool,
    pub kind: &'static str,
    pub message: String,
}

impl From<HandlerFailure> for Diagnostic {
    fn from(f: HandlerFailure) -> Self {
        let class = if f.retryable { "Retryable" } else { "Permanent" };
        Diagnostic { error_type: format!("{class}.{}", f.kind), error_message: f.message }
    }
}

impl From<healthlake_pipeline::ingest::IngestError> for HandlerFailure {
    fn from(e: healthlake_pipeline::ingest::IngestError) -> Self {
        HandlerFailure { retryable: e.is_retryable(), kind: "IngestError", message: e.to_string() }
    }
}

impl From<healthlake_pipeline::finalize::FinalizeError> for HandlerFailure {
    fn from(e: healthlake_pipeline::finalize::FinalizeError) -> Self {
        HandlerFailure { retryable: e.is_retryable(), kind: "FinalizeError", message: e.to_string() }
    }
}

impl From<healthlake_pipeline::backfill::BackfillError> for HandlerFailure {
    fn from(e: healthlake_pipeline::backfill::BackfillError) -> Self {
        HandlerFailure { retryable: e.is_retryable(), kind: "BackfillError", message: e.to_string() }
    }
}

impl From<healthlake_pipeline::maintain::MaintainError> for HandlerFailure {
    fn from(e: healthlake_pipeline::maintain::MaintainError) -> Self {
        HandlerFailure { retryable: e.is_retryable(), kind: "MaintainError", message: e.to_string() }
    }
}

/// The ingest function's response: what the batch wrote.
pub fn ingest_response(report: &healthlake_pipeline::ingest::IngestReport) -> Value {
    json!({
        "records": report.records,
        "rawRowsWritten": report.raw_rows_written,
        "errorRowsWritten": report.error_rows_written,
        "rowsSkippedAsCommitted": report.raw_rows_skipped + report.error_rows_skipped,
    })
}

/// The finalize function's response.
pub fn finalize_response(
    kind: healthlake_core::WindowKind,
    report: &healthlake_pipeline::finalize::FinalizeReport,
) -> Value {
    json!({
        "kind": kind,
        "watermark": report.watermark,
        "closedThrough": report.closed_through,
        "windowsEmitted": report.windows_emitted,
        "windowsUpdated": report.windows_updated,
        "windowsClosed": report.windows_closed,
        "recordsAggregated": report.records_aggregated,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_malformed_payload_is_a_permanent_failure_naming_the_field() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Input {
            kind: healthlake_core::WindowKind,
        }
        let event = |payload| LambdaEvent::new(payload, lambda_runtime::Context::default());
        assert_eq!(parse_payload::<Input>(event(json!({"kind": "daily"}))).unwrap().payload.kind.as_str(), "daily");
        let failure = parse_payload::<Input>(event(json!({"kind": "hourly"}))).unwrap_err();
        let diagnostic: Diagnostic = failure.into();
        assert_eq!(diagnostic.error_type, "Permanent.InvalidInput");
        assert!(diagnostic.error_message.contains("hourly"), "{}", diagnostic.error_message);
    }

    #[test]
    fn diagnostics_say_whether_to_retry() {
        let d: Diagnostic = HandlerFailure { retryable: false, kind: "IngestError", message: "strict".into() }.into();
        assert_eq!(d.error_type, "Permanent.IngestError");
        let d: Diagnostic = HandlerFailure { retryable: true, kind: "FinalizeError", message: "x".into() }.into();
        assert_eq!(d.error_type, "Retryable.FinalizeError");
    }
}
