//! The ingest Lambda: a Kafka event source mapping batch (MSK or self-managed Kafka) in, raw and
//! error rows appended, partial aggregates merged. Configuration comes from the environment and
//! fails at start naming the variable; clients are built once per container.

use std::sync::Arc;

use aws_lambda_events::event::kafka::KafkaEvent;
use healthlake_lambda::HandlerFailure;
use healthlake_pipeline::app::App;
use lambda_runtime::{Error, LambdaEvent};
use serde_json::Value;

async fn handle(app: &App, event: LambdaEvent<KafkaEvent>) -> Result<Value, HandlerFailure> {
    let report = app.ingest.handle(&event.payload).await?;
    Ok(healthlake_lambda::ingest_response(&report))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    healthlake_lambda::serve(|app: Arc<App>, event| async move { handle(&app, event).await }).await
}
