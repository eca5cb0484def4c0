//! Wiring shared by every entry point: settings → adapters → handlers, built once at start.

use std::sync::Arc;

use healthlake_lake::{LakeError, Lakehouse};
use healthlake_state::{AccumulatorStore, SqliteStore, StoreError};

use crate::Clock;
use crate::config::Settings;
use crate::finalize::FinalizeHandler;
use crate::ingest::IngestHandler;
use crate::schema_source;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("opening the Iceberg catalog: {0}")]
    Lake(#[from] LakeError),
    #[error("opening the accumulator store: {0}")]
    Store(#[from] StoreError),
}

/// The handlers over the embedded adapters.
pub struct App {
    pub settings: Settings,
    pub lake: Arc<Lakehouse>,
    pub store: Arc<dyn AccumulatorStore>,
    pub ingest: IngestHandler,
    pub finalize: FinalizeHandler,
}

impl App {
    pub async fn embedded(settings: Settings, clock: Clock) -> Result<Self, StartError> {
        let lake = Arc::new(Lakehouse::open_sql(&settings.catalog).await?);
        let store: Arc<dyn AccumulatorStore> = Arc::new(SqliteStore::open_dir(&settings.state_dir).await?);
        let ingest = IngestHandler::new(
            settings.clone(),
            schema_source::from_settings(&settings.schema_registry),
            lake.clone(),
            store.clone(),
            clock.clone(),
        );
        let finalize = FinalizeHandler::new(settings.clone(), lake.clone(), store.clone(), clock);
        Ok(Self { settings, lake, store, ingest, finalize })
    }
}
