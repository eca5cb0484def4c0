//! The maintain Lambda, invoked by EventBridge Scheduler once a day per table (every operation)
//! and hourly for raw's recent partitions (compaction only), or by hand. Input: a
//! `MaintainRequest`, e.g.
//!
//! ```json
//! {"table": "raw", "operations": ["compact", "rewrite_manifests", "expire", "orphans"],
//!  "recent_days": 2, "grace_days": 3, "dry_run": false}
//! ```
//!
//! Answers with the report per operation; `"complete": false` when the time left ran out (the
//! next run continues where this one stopped). Progress goes to the log.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use healthlake_lambda::HandlerFailure;
use healthlake_pipeline::app::App;
use healthlake_pipeline::backfill::Progress;
use healthlake_pipeline::maintain::{MaintainReport, MaintainRequest, deadline_with_margin};
use lambda_runtime::{Error, LambdaEvent};

/// Time kept back from the invocation's deadline: the compaction group in flight and its commit
/// must finish before Lambda stops the function.
const DEADLINE_MARGIN: Duration = Duration::from_secs(120);

async fn handle(app: &App, event: LambdaEvent<MaintainRequest>) -> Result<MaintainReport, HandlerFailure> {
    let progress: Progress = Arc::new(|line: &str| tracing::info!("{line}"));
    let deadline = deadline_with_margin(time_left(event.context.deadline), DEADLINE_MARGIN);
    Ok(app.maintain.handle(&event.payload, Some(deadline), progress).await?)
}

/// The time until the invocation's deadline (milliseconds since the epoch, as Lambda gives it).
fn time_left(deadline_ms: u64) -> Duration {
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
    Duration::from_millis(deadline_ms.saturating_sub(now_ms))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    healthlake_lambda::serve(|app: Arc<App>, event| async move { handle(&app, event).await }).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_input_parses() {
        let input: MaintainRequest = serde_json::from_str(
            r#"{"table": "raw", "operations": ["compact", "rewrite_manifests", "expire", "orphans"],
                "recent_days": 2, "grace_days": 3, "dry_run": false}"#,
        )
        .unwrap();
        assert_eq!(input.operations.len(), 4);
        assert!(input.validate().is_ok());
    }

    #[test]
    fn a_passed_deadline_leaves_no_time() {
        assert_eq!(time_left(0), Duration::ZERO);
        let in_a_minute = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64 + 60_000;
        assert!(time_left(in_a_minute) > Duration::from_secs(55));
    }
}
