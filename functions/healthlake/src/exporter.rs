//! `healthlake exporter`: pipeline health from the stores, for Prometheus to scrape.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::{Context, Result};
use healthlake_exporter::{Exporter, ExporterSettings, KafkaLagReader};
use healthlake_kafka::KafkaSettings;
use healthlake_lake::Lakehouse;
use healthlake_pipeline::app::open_store;
use healthlake_pipeline::config::Settings;

pub(crate) async fn run(settings: Settings) -> Result<()> {
    let vars: HashMap<String, String> = std::env::vars().collect();
    let exporter_settings = ExporterSettings::from_map(&vars).context("configuration")?;
    // Without KAFKA_BROKERS (or with a client that cannot be built) the kafka source is reported
    // down, like a broker that cannot be reached: the other sources still serve. A malformed
    // Kafka setting still fails here, naming its variable.
    let kafka = match vars.get("KAFKA_BROKERS").filter(|b| !b.trim().is_empty()) {
        None => None,
        Some(_) => {
            let kafka = KafkaSettings::from_map(&vars).context("configuration")?;
            KafkaLagReader::new(&kafka).inspect_err(|e| tracing::warn!("Kafka lag will not be reported: {e}")).ok()
        }
    };
    let lake = Arc::new(Lakehouse::open(&settings.catalog).await.context("opening the Iceberg catalog")?);
    let store = open_store(&settings.state).await.context("opening the state store")?;
    let address = std::net::SocketAddr::new(exporter_settings.address, exporter_settings.port);
    let exporter = Arc::new(Exporter::new(settings, lake, store, kafka, exporter_settings.cache_for));
    eprintln!("healthlake exporter: http://{address}/metrics");
    healthlake_exporter::serve(exporter, address).await.with_context(|| format!("serving on {address}"))
}
