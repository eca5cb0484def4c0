//! The consumer group's committed offsets and the topic's high watermarks (Kafka's admin reads;
//! the group is never joined, so the exporter does not disturb the consumers).

use std::sync::Arc;
use std::time::Duration;

use healthlake_kafka::KafkaSettings;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use crate::Gauge;

/// Reads lag per partition of one topic for one consumer group.
#[derive(Clone)]
pub struct KafkaLagReader {
    consumer: Arc<BaseConsumer>,
    topic: String,
    timeout: Duration,
}

impl KafkaLagReader {
    pub fn new(settings: &KafkaSettings) -> Result<Self, String> {
        let consumer: BaseConsumer = settings
            .client_config()
            .set("group.id", &settings.group_id)
            .set("enable.auto.commit", "false")
            .create()
            .map_err(|e| format!("Kafka client for {}: {e}", settings.brokers))?;
        Ok(Self { consumer: Arc::new(consumer), topic: settings.topic.clone(), timeout: settings.request_timeout })
    }

    /// `kafka_consumer_committed_offset`, `kafka_topic_high_watermark` and `kafka_consumer_lag`
    /// per partition. A partition the group never committed counts its whole log as lag.
    pub async fn read(&self) -> Result<Vec<Gauge>, String> {
        let reader = self.clone();
        tokio::task::spawn_blocking(move || reader.read_blocking())
            .await
            .map_err(|e| format!("Kafka read task: {e}"))?
    }

    fn read_blocking(&self) -> Result<Vec<Gauge>, String> {
        let metadata = self
            .consumer
            .fetch_metadata(Some(&self.topic), self.timeout)
            .map_err(|e| format!("metadata of {}: {e}", self.topic))?;
        let topic = metadata
            .topics()
            .iter()
            .find(|t| t.name() == self.topic && t.error().is_none())
            .ok_or_else(|| format!("topic {} not found", self.topic))?;
        let mut partitions = TopicPartitionList::new();
        for p in topic.partitions() {
            partitions.add_partition(&self.topic, p.id());
        }
        let committed = self
            .consumer
            .committed_offsets(partitions, self.timeout)
            .map_err(|e| format!("committed offsets of the group: {e}"))?;
        let mut gauges = Vec::new();
        for element in committed.elements() {
            let partition = element.partition();
            let (low, high) = self
                .consumer
                .fetch_watermarks(&self.topic, partition, self.timeout)
                .map_err(|e| format!("watermarks of {}-{partition}: {e}", self.topic))?;
            let next = match element.offset() {
                Offset::Offset(n) => n,
                _ => low,
            };
            let label = partition.to_string();
            gauges.push(Gauge::new("kafka_consumer_committed_offset", next as f64).label("partition", label.clone()));
            gauges.push(Gauge::new("kafka_topic_high_watermark", high as f64).label("partition", label.clone()));
            gauges.push(Gauge::new("kafka_consumer_lag", (high - next).max(0) as f64).label("partition", label));
        }
        Ok(gauges)
    }
}
