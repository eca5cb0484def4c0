//! Wiring shared by every entry point: settings → adapters → handlers, built once at start.

use std::sync::Arc;

use healthlake_lake::{LakeError, Lakehouse};
use healthlake_state::{AccumulatorStore, DynamoDbStore, SqliteStore, StoreError};

use crate::Clock;
use crate::backfill::BackfillHandler;
use crate::config::{Settings, StateStoreSettings};
use crate::finalize::FinalizeHandler;
use crate::ingest::IngestHandler;
use crate::maintain::Maintainer;
use crate::replay::ReplayHandler;
use crate::schema_source::{self, CredentialsError, SchemaSourceError};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("opening the Iceberg catalog: {0}")]
    Lake(#[from] LakeError),
    #[error("opening the accumulator store: {0}")]
    Store(#[from] StoreError),
    #[error(transparent)]
    SchemaRegistry(#[from] SchemaSourceError),
    #[error("reading the schema registry's credentials: {0}")]
    RegistryCredentials(#[from] CredentialsError),
}

/// The handlers over the adapters the settings choose (embedded or AWS).
pub struct App {
    pub settings: Settings,
    pub lake: Arc<Lakehouse>,
    pub store: Arc<dyn AccumulatorStore>,
    pub ingest: IngestHandler,
    pub finalize: FinalizeHandler,
    pub backfill: BackfillHandler,
    pub replay: ReplayHandler,
    pub maintain: Maintainer,
}

impl App {
    pub async fn open(mut settings: Settings, clock: Clock) -> Result<Self, StartError> {
        schema_source::resolve_secret(&mut settings.schema_registry).await?;
        let lake = Arc::new(Lakehouse::open(&settings.catalog).await?);
        let store = open_store(&settings.state).await?;
        let ingest = IngestHandler::new(
            settings.clone(),
            schema_source::from_settings(&settings.schema_registry)?,
            lake.clone(),
            store.clone(),
            clock.clone(),
        );
        let finalize = FinalizeHandler::new(settings.clone(), lake.clone(), store.clone(), clock.clone());
        let backfill = BackfillHandler::new(lake.clone(), store.clone(), clock.clone());
        let replay = ReplayHandler::new(
            &settings,
            schema_source::from_settings(&settings.schema_registry)?,
            lake.clone(),
            store.clone(),
            clock.clone(),
        );
        let maintain = Maintainer::new(lake.clone(), settings.catalog.s3.clone(), clock);
        Ok(Self { settings, lake, store, ingest, finalize, backfill, replay, maintain })
    }
}

/// Opens the accumulator store. DynamoDB credentials come from the default AWS chain.
pub async fn open_store(settings: &StateStoreSettings) -> Result<Arc<dyn AccumulatorStore>, StoreError> {
    Ok(match settings {
        StateStoreSettings::Sqlite { dir } => Arc::new(SqliteStore::open_dir(dir).await?),
        StateStoreSettings::DynamoDb { table, endpoint, region, shards } => {
            // Throttling is retried by the SDK with jittered backoff; more attempts than its
            // default 3, since a retried batch costs far more than a slower write.
            let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
                .region(aws_config::Region::new(region.clone()))
                .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(8));
            if let Some(endpoint) = endpoint {
                loader = loader.endpoint_url(endpoint);
            }
            let client = aws_sdk_dynamodb::Client::new(&loader.load().await);
            Arc::new(DynamoDbStore::new(client, table.clone(), *shards))
        }
    })
}
