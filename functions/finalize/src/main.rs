//! The finalize Lambda, invoked by an EventBridge Scheduler schedule per window kind with the
//! input `{"kind": "daily" | "weekly" | "monthly"}`.

use std::sync::Arc;

use healthlake_core::WindowKind;
use healthlake_lambda::HandlerFailure;
use healthlake_pipeline::app::App;
use lambda_runtime::{Error, LambdaEvent};
use serde::Deserialize;
use serde_json::Value;

/// The schedule's input.
#[derive(Debug, Deserialize, PartialEq)]
struct FinalizeInput {
    kind: WindowKind,
}

async fn handle(app: &App, event: LambdaEvent<FinalizeInput>) -> Result<Value, HandlerFailure> {
    let report = app.finalize.handle(event.payload.kind).await?;
    Ok(healthlake_lambda::finalize_response(event.payload.kind, &report))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    healthlake_lambda::serve(|app: Arc<App>, event| async move { handle(&app, event).await }).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_input_parses() {
        let input: FinalizeInput = serde_json::from_str(r#"{"kind":"weekly"}"#).unwrap();
        assert_eq!(input, FinalizeInput { kind: WindowKind::Weekly });
        assert!(serde_json::from_str::<FinalizeInput>(r#"{"kind":"hourly"}"#).is_err());
    }
}
