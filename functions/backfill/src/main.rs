//! The backfill Lambda function, invoked by hand (console, `aws lambda invoke`, or a Step
//! Functions map over ranges). Input: a `BackfillRequest` as JSON, e.g.
//!
//! ```json
//! {"from": "2025-10-01T00:00:00Z", "to": "2025-11-01T00:00:00Z",
//!  "windowKinds": ["daily"], "dataTypes": ["heartRate"], "userIds": [],
//!  "includeLate": true, "dryRun": true, "force": false}
//! ```
//!
//! Answers with the report: per window kind, windows recomputed / changed / still open and rows
//! written. Progress goes to the log.

use std::sync::Arc;

use healthlake_lambda::HandlerFailure;
use healthlake_pipeline::app::App;
use healthlake_pipeline::backfill::{BackfillReport, BackfillRequest, Progress};
use lambda_runtime::{Error, LambdaEvent};

async fn handle(app: &App, event: LambdaEvent<BackfillRequest>) -> Result<BackfillReport, HandlerFailure> {
    let progress: Progress = Arc::new(|line: &str| tracing::info!("{line}"));
    Ok(app.backfill.handle(&event.payload, progress).await?)
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    healthlake_lambda::serve(|app: Arc<App>, event| async move { handle(&app, event).await }).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_input_parses_and_unknown_fields_are_refused() {
        let input: BackfillRequest = serde_json::from_str(
            r#"{"from": "2025-10-01T00:00:00Z", "to": "2025-11-01T00:00:00Z",
                "windowKinds": ["daily"], "dataTypes": ["heartRate"], "userIds": [],
                "includeLate": true, "dryRun": true, "force": false}"#,
        )
        .unwrap();
        assert!(input.include_late && input.dry_run && !input.force);
        assert_eq!(input.window_kinds, vec![healthlake_core::WindowKind::Daily]);
        let minimal: BackfillRequest =
            serde_json::from_str(r#"{"from": "2025-10-01T00:00:00Z", "to": "2025-10-02T00:00:00Z"}"#).unwrap();
        assert!(minimal.window_kinds.is_empty() && !minimal.dry_run);
        assert!(
            serde_json::from_str::<BackfillRequest>(
                r#"{"from": "2025-10-01T00:00:00Z", "to": "2025-10-02T00:00:00Z", "dryrun": true}"#
            )
            .is_err()
        );
    }
}
