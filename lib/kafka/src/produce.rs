//! The producer: payloads in the Confluent wire format to a topic, keyed by userId (the Java
//! client's murmur2 partitioner, so a user's records share a partition), at a chosen rate. Writer
//! schemas are registered first where a registry exists, and the values framed with the ids it
//! gives.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use healthlake_core::generate::{ProducedRecord, WRITER_SCHEMAS};
use healthlake_pipeline::config::SchemaRegistrySettings;
use healthlake_pipeline::schema_source::registry_client;
use rdkafka::producer::{FutureProducer, FutureRecord};

use crate::settings::KafkaSettings;

#[derive(Debug, thiserror::Error)]
pub enum ProduceError {
    #[error("Kafka producer: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("registering writer schema {id} at {url}: {message}")]
    Register { id: u32, url: String, message: String },
    #[error("schema registry client for {url}: {message}")]
    RegistryClient { url: String, message: String },
    #[error("writing writer schema {path}: {message}")]
    SchemaFile { path: String, message: String },
}

/// Where a produced record landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivered {
    pub partition: i32,
    pub offset: i64,
}

/// Makes the generator's writer schemas known to the schema source the pipeline reads, and
/// returns how to re-frame values: generator id → the id the registry gave.
pub async fn register_writer_schemas(
    registry: &SchemaRegistrySettings,
    topic: &str,
) -> Result<HashMap<u32, u32>, ProduceError> {
    let mut ids = HashMap::new();
    match registry {
        SchemaRegistrySettings::Directory(dir) => {
            std::fs::create_dir_all(dir)
                .map_err(|e| ProduceError::SchemaFile { path: dir.display().to_string(), message: e.to_string() })?;
            for (id, text) in WRITER_SCHEMAS {
                let path = dir.join(format!("{id}.avsc"));
                std::fs::write(&path, text).map_err(|e| ProduceError::SchemaFile {
                    path: path.display().to_string(),
                    message: e.to_string(),
                })?;
                ids.insert(id, id);
            }
        }
        SchemaRegistrySettings::Http { url, basic_auth, extra_roots, .. } => {
            // Confluent REST API: POST /subjects/{topic}-value/versions → {"id": N}; registering
            // a schema the subject already has returns its id.
            let client = registry_client(extra_roots.as_ref())
                .map_err(|e| ProduceError::RegistryClient { url: url.clone(), message: e.to_string() })?;
            let endpoint = format!("{}/subjects/{topic}-value/versions", url.trim_end_matches('/'));
            for (id, text) in WRITER_SCHEMAS {
                let error = |message: String| ProduceError::Register { id, url: endpoint.clone(), message };
                let mut request = client
                    .post(&endpoint)
                    .header("Content-Type", "application/vnd.schemaregistry.v1+json")
                    .body(serde_json::json!({ "schema": text }).to_string());
                if let Some((user, password)) = basic_auth {
                    request = request.basic_auth(user, Some(password));
                }
                let response = request.send().await.map_err(|e| error(e.to_string()))?;
                let status = response.status();
                let body = response.bytes().await.map_err(|e| error(e.to_string()))?;
                let body: serde_json::Value = serde_json::from_slice(&body).map_err(|e| error(e.to_string()))?;
                let given = body["id"]
                    .as_u64()
                    .filter(|_| status.is_success())
                    .ok_or_else(|| error(format!("{status}: {body}")))?;
                ids.insert(id, given as u32);
            }
        }
        SchemaRegistrySettings::None => {}
    }
    Ok(ids)
}

/// Rewrites the schema id of a Confluent-framed value when the registry gave another one.
pub fn reframe(value: &mut [u8], ids: &HashMap<u32, u32>) {
    if value.len() >= 5 && value[0] == 0 {
        let id = u32::from_be_bytes([value[1], value[2], value[3], value[4]]);
        if let Some(given) = ids.get(&id) {
            value[1..5].copy_from_slice(&given.to_be_bytes());
        }
    }
}

/// Creates the topic with `partitions` partitions unless it exists.
pub async fn ensure_topic(kafka: &KafkaSettings, partitions: i32) -> Result<bool, ProduceError> {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;
    let admin: AdminClient<DefaultClientContext> = kafka.client_config().create()?;
    let topic = NewTopic::new(&kafka.topic, partitions, TopicReplication::Fixed(1));
    let results =
        admin.create_topics([&topic], &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)))).await?;
    match results.into_iter().next() {
        Some(Ok(_)) => Ok(true),
        Some(Err((_, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists))) => Ok(false),
        Some(Err((_, code))) => Err(rdkafka::error::KafkaError::AdminOp(code).into()),
        None => Ok(false),
    }
}

/// Sends `records` in order, at most `rate` records per second (`None`: as fast as the broker
/// takes them), calling `progress` with the count sent so far now and then. Returns where each
/// record landed, in input order.
pub async fn produce(
    kafka: &KafkaSettings,
    records: &[ProducedRecord],
    rate: Option<f64>,
    progress: &(dyn Fn(usize) + Sync),
) -> Result<Vec<Delivered>, ProduceError> {
    let producer: FutureProducer = kafka
        .client_config()
        // The Java client's default partitioner, so keys land where a Java producer puts them.
        .set("partitioner", "murmur2_random")
        .set("acks", "all")
        // One request in flight per connection keeps each partition in send order across retries
        // without the idempotent producer (which not every Kafka-compatible broker offers).
        .set("max.in.flight.requests.per.connection", "1")
        .set("enable.idempotence", "false")
        .set("linger.ms", "20")
        .set("message.timeout.ms", "120000")
        .create()?;
    let started = Instant::now();
    let mut pending = Vec::with_capacity(records.len());
    for (i, record) in records.iter().enumerate() {
        if let Some(rate) = rate.filter(|r| *r > 0.0) {
            let due = Duration::from_secs_f64(i as f64 / rate);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                tokio::time::sleep(wait).await;
            }
        }
        let mut message = FutureRecord::to(&kafka.topic)
            .key(record.key.as_bytes())
            .payload(&record.value)
            .timestamp(record.timestamp.timestamp_millis());
        // A full local queue: wait for deliveries, then send again.
        let future = loop {
            match producer.send_result(message) {
                Ok(future) => break future,
                Err((
                    rdkafka::error::KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull),
                    m,
                )) => {
                    message = m;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err((e, _)) => return Err(e.into()),
            }
        };
        pending.push(future);
        if i % 1_000 == 999 {
            progress(i + 1);
        }
    }
    let mut delivered = Vec::with_capacity(pending.len());
    for future in pending {
        match future.await {
            Ok(Ok(d)) => delivered.push(Delivered { partition: d.partition, offset: d.offset }),
            Ok(Err((e, _))) => return Err(e.into()),
            Err(_) => return Err(rdkafka::error::KafkaError::Canceled.into()),
        }
    }
    progress(records.len());
    Ok(delivered)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reframing_replaces_only_known_ids() {
        let ids = HashMap::from([(2u32, 41u32)]);
        let mut value = vec![0, 0, 0, 0, 2, 9, 9];
        reframe(&mut value, &ids);
        assert_eq!(value, vec![0, 0, 0, 0, 41, 9, 9]);
        let mut unknown = vec![0, 0, 0, 0x27, 0x0f, 1];
        reframe(&mut unknown, &ids);
        assert_eq!(unknown, vec![0, 0, 0, 0x27, 0x0f, 1]);
        let mut garbage = b"\x7fnot avro".to_vec();
        reframe(&mut garbage, &ids);
        assert_eq!(&garbage, b"\x7fnot avro");
    }
}
