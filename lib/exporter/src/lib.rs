//! Pipeline health read from the stores at scrape time, for operators who scrape Prometheus:
//! the consumer group's lag (Kafka), each table's current snapshot (Iceberg), watermarks, close
//! markers and open windows (state store), and error rows of the last hour (the errors table).
//! Nothing here counts in-process: a scrape reports what the stores say, so the exporter can run
//! anywhere that reaches them, beside Lambda functions it never sees.
//!
//! A source that fails is reported (`exporter_source_up{source} 0`, its error counted) and never
//! fails the scrape of the others.

mod kafka;
mod render;
mod serve;
pub mod settings;
mod tables;
mod windows;

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use healthlake_lake::Lakehouse;
use healthlake_pipeline::config::Settings;
use healthlake_state::AccumulatorStore;
use tokio::sync::Mutex;

pub use kafka::KafkaLagReader;
pub use render::{Gauge, render};
pub use serve::serve;
pub use settings::ExporterSettings;

/// The sources a scrape reads, in the order they are reported.
pub const SOURCES: [&str; 4] = ["kafka", "lake", "state", "errors"];

/// Reads every source and renders the metrics; answers repeated scrapes from a cache for
/// `cache_for`, so a Prometheus with several replicas does not multiply the reads.
pub struct Exporter {
    settings: Settings,
    lake: Arc<Lakehouse>,
    store: Arc<dyn AccumulatorStore>,
    kafka: Option<KafkaLagReader>,
    cache_for: Duration,
    cached: Mutex<Option<(Instant, String)>>,
    errors: Mutex<[u64; SOURCES.len()]>,
}

impl Exporter {
    pub fn new(
        settings: Settings,
        lake: Arc<Lakehouse>,
        store: Arc<dyn AccumulatorStore>,
        kafka: Option<KafkaLagReader>,
        cache_for: Duration,
    ) -> Self {
        Self {
            settings,
            lake,
            store,
            kafka,
            cache_for,
            cached: Mutex::new(None),
            errors: Mutex::new([0; SOURCES.len()]),
        }
    }

    /// The Prometheus text of a scrape, read now or within `cache_for`.
    pub async fn scrape(&self) -> String {
        let mut cached = self.cached.lock().await;
        if let Some((at, text)) = cached.as_ref()
            && at.elapsed() < self.cache_for
        {
            return text.clone();
        }
        let text = self.read(Utc::now()).await;
        *cached = Some((Instant::now(), text.clone()));
        text
    }

    /// Reads the four sources concurrently and renders what they gave.
    pub async fn read(&self, now: DateTime<Utc>) -> String {
        let started = Instant::now();
        let (kafka, lake, state, errors) = tokio::join!(
            async {
                match &self.kafka {
                    Some(reader) => reader.read().await,
                    None => Err("no Kafka brokers configured (KAFKA_BROKERS)".to_string()),
                }
            },
            tables::read(&self.lake, now),
            windows::read(self.store.as_ref(), &self.settings, now),
            tables::error_rows_last_hour(&self.lake, now),
        );
        let outcomes = [kafka, lake, state, errors];
        let mut gauges = Vec::new();
        let mut up = Vec::new();
        let mut counts = self.errors.lock().await;
        for (i, outcome) in outcomes.into_iter().enumerate() {
            match outcome {
                Ok(mut read) => {
                    gauges.append(&mut read);
                    up.push((SOURCES[i], 1.0));
                }
                Err(e) => {
                    tracing::warn!(source = SOURCES[i], "exporter source unavailable: {e}");
                    counts[i] += 1;
                    up.push((SOURCES[i], 0.0));
                }
            }
        }
        for (source, value) in up {
            gauges.push(Gauge::new("exporter_source_up", value).label("source", source));
        }
        let errors: Vec<(&str, u64)> = SOURCES.iter().copied().zip(counts.iter().copied()).collect();
        gauges.push(Gauge::new("exporter_scrape_duration_seconds", started.elapsed().as_secs_f64()));
        render(&gauges, &errors)
    }
}
