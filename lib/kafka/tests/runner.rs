//! The runner against a real broker (tansu, or `KAFKA_BROKERS`): batches as the event source
//! mapping cuts them (one partition each, up to one in flight per partition, at most
//! `HEALTHLAKE_MAX_CONCURRENCY` at once), offsets committed only after success, retries then the
//! on-failure destination, starting positions. The function is a recorder here; the pipeline behind it is
//! tested end to end by tests/e2e_kafka.sh.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use aws_lambda_events::event::kafka::KafkaEvent;
use healthlake_kafka::invoke::{FunctionInvoker, Invocation, InvokeFailure};
use healthlake_kafka::{FailureDestination, RunReport, Runner, RunnerSettings};
use healthlake_pipeline::events::records_of;
use healthlake_testkit::KafkaBroker;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::{Value, json};
use tokio::sync::watch;

/// The function: records every invocation; `fails` says whether an ingest attempt fails. Each
/// ingest takes `work` (time for other partitions' invocations to overlap), and the most
/// invocations in flight at once, overall and per partition, are kept.
struct Recorder {
    batches: Mutex<Vec<KafkaEvent>>,
    finalized: Mutex<Vec<String>>,
    fails: Box<dyn Fn(&KafkaEvent) -> bool + Send + Sync>,
    work: Duration,
    /// Partitions of the invocations in flight now, and the most at once (all, one partition).
    in_flight: Mutex<(Vec<i32>, usize, usize)>,
}

impl Recorder {
    fn new(fails: impl Fn(&KafkaEvent) -> bool + Send + Sync + 'static) -> Arc<Self> {
        Self::working(fails, Duration::ZERO)
    }

    fn working(fails: impl Fn(&KafkaEvent) -> bool + Send + Sync + 'static, work: Duration) -> Arc<Self> {
        Arc::new(Self {
            batches: Mutex::default(),
            finalized: Mutex::default(),
            fails: Box::new(fails),
            work,
            in_flight: Mutex::default(),
        })
    }

    /// The most invocations in flight at once, and the most of one partition at once.
    fn most_in_flight(&self) -> (usize, usize) {
        let state = self.in_flight.lock().unwrap();
        (state.1, state.2)
    }

    /// (partition, offset) of every record of every successful batch, in delivery order.
    fn delivered(&self) -> Vec<(i32, i64)> {
        let batches = self.batches.lock().unwrap();
        batches.iter().flat_map(|e| records_of(e).into_iter().map(|r| (r.kafka.partition, r.kafka.offset))).collect()
    }
}

#[async_trait]
impl FunctionInvoker for Recorder {
    async fn invoke(&self, invocation: &Invocation) -> Result<Value, InvokeFailure> {
        match invocation {
            Invocation::Ingest(event) => {
                let partitions: Vec<i32> =
                    event.records.keys().filter_map(|k| k.rsplit('-').next()?.parse().ok()).collect();
                {
                    let mut state = self.in_flight.lock().unwrap();
                    state.0.extend(&partitions);
                    state.1 = state.1.max(state.0.len());
                    let most_of_one = partitions.iter().map(|p| state.0.iter().filter(|q| *q == p).count()).max();
                    state.2 = state.2.max(most_of_one.unwrap_or(0));
                }
                tokio::time::sleep(self.work).await;
                {
                    let mut state = self.in_flight.lock().unwrap();
                    for p in &partitions {
                        let at = state.0.iter().position(|q| q == p).unwrap();
                        state.0.remove(at);
                    }
                }
                if (self.fails)(event) {
                    return Err(InvokeFailure {
                        error_type: "Retryable.IngestError".into(),
                        error_message: "store unavailable".into(),
                    });
                }
                self.batches.lock().unwrap().push(event.clone());
                let n = records_of(event).len();
                Ok(json!({ "records": n, "rawRowsWritten": n, "errorRowsWritten": 0, "rowsSkippedAsCommitted": 0 }))
            }
            Invocation::Finalize(kind) => {
                self.finalized.lock().unwrap().push(kind.to_string());
                Ok(json!({ "kind": kind }))
            }
        }
    }
}

fn settings(broker: &KafkaBroker, topic: &str, group: &str, extra: &[(&str, &str)]) -> RunnerSettings {
    let mut vars: HashMap<String, String> = [
        ("KAFKA_BROKERS", broker.bootstrap.as_str()),
        ("KAFKA_TOPIC", topic),
        ("KAFKA_GROUP_ID", group),
        ("KAFKA_SESSION_TIMEOUT", "6000"),
        ("HEALTHLAKE_FINALIZE_EVERY_SECONDS", "0"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    vars.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let mut settings = RunnerSettings::from_map(&vars).unwrap();
    settings.exit_when_idle = Some(Duration::from_secs(3));
    settings.retry_backoff = Duration::from_millis(50);
    settings
}

async fn create_topic(broker: &KafkaBroker, topic: &str, partitions: i32) {
    let kafka = healthlake_kafka::KafkaSettings::from_map(
        &[("KAFKA_BROKERS".to_string(), broker.bootstrap.clone()), ("KAFKA_TOPIC".to_string(), topic.to_string())]
            .into(),
    )
    .unwrap();
    assert!(healthlake_kafka::produce::ensure_topic(&kafka, partitions).await.unwrap());
}

/// Sends `per_partition` records of `size` bytes to each partition; returns the offsets sent.
async fn send(
    broker: &KafkaBroker,
    topic: &str,
    partitions: i32,
    per_partition: usize,
    size: usize,
) -> Vec<(i32, i64)> {
    let producer: FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &broker.bootstrap)
        .set("enable.idempotence", "false")
        .set("message.max.bytes", "2000000")
        .create()
        .unwrap();
    let mut sent = Vec::new();
    for i in 0..per_partition {
        for p in 0..partitions {
            let value = vec![b'a' + (i % 26) as u8; size];
            let key = format!("user-{p}");
            let record = FutureRecord::to(topic).partition(p).key(&key).payload(&value);
            let delivery = producer.send(record, Duration::from_secs(30)).await.map_err(|(e, _)| e).unwrap();
            sent.push((delivery.partition, delivery.offset));
        }
    }
    sent
}

/// The group's committed offsets per partition.
fn committed(broker: &KafkaBroker, topic: &str, group: &str, partitions: i32) -> BTreeMap<i32, i64> {
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &broker.bootstrap)
        .set("group.id", group)
        .create()
        .unwrap();
    let mut list = rdkafka::TopicPartitionList::new();
    for p in 0..partitions {
        list.add_partition(topic, p);
    }
    let committed = consumer.committed_offsets(list, Duration::from_secs(10)).unwrap();
    committed
        .elements()
        .iter()
        .filter_map(|e| match e.offset() {
            rdkafka::Offset::Offset(o) => Some((e.partition(), o)),
            _ => None,
        })
        .collect()
}

async fn run(settings: RunnerSettings, recorder: Arc<Recorder>, destination: Option<FailureDestination>) -> RunReport {
    let (_stop, stop_rx) = watch::channel(false);
    let runner = Runner::new(settings, recorder, destination, "healthlake-ingest");
    tokio::time::timeout(Duration::from_secs(120), runner.run(stop_rx)).await.expect("runner finishes").unwrap()
}

fn sorted(mut coordinates: Vec<(i32, i64)>) -> Vec<(i32, i64)> {
    coordinates.sort();
    coordinates
}

fn assert_in_partition_order(delivered: &[(i32, i64)]) {
    let mut last: HashMap<i32, i64> = HashMap::new();
    for (p, o) in delivered {
        if let Some(prev) = last.insert(*p, *o) {
            assert_eq!(*o, prev + 1, "partition {p}: offset {o} after {prev}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_follow_batch_size_and_partition_order_and_offsets_are_committed_after_success() {
    let broker = KafkaBroker::start();
    create_topic(&broker, "orders", 3).await;
    let sent = send(&broker, "orders", 3, 90, 50).await;
    let recorder = Recorder::working(|_| false, Duration::from_millis(200));
    let settings = settings(&broker, "orders", "g1", &[("HEALTHLAKE_BATCH_SIZE", "40")]);
    let report = run(settings.clone(), recorder.clone(), None).await;

    let batches = recorder.batches.lock().unwrap().clone();
    assert!(batches.iter().all(|e| records_of(e).len() <= 40), "BatchSize 40 respected");
    assert!(batches.iter().all(|e| e.records.len() == 1), "each batch holds one partition");
    let (most, most_of_one) = recorder.most_in_flight();
    assert_eq!(most_of_one, 1, "one invocation per partition at a time");
    assert!(most > 1 && most <= 3, "the partitions' invocations overlap, one per partition at most ({most})");
    assert!(batches.iter().all(|e| e.bootstrap_servers.as_deref() == Some(broker.bootstrap.as_str())));
    let delivered = recorder.delivered();
    assert_in_partition_order(&delivered);
    assert_eq!(sorted(delivered), sorted(sent), "every record once");
    assert_eq!(report.records, 270);
    assert_eq!(report.batches as usize, batches.len());
    assert_eq!(*recorder.finalized.lock().unwrap(), vec!["daily", "weekly", "monthly"], "a last finalize round");
    assert_eq!(committed(&broker, "orders", "g1", 3), BTreeMap::from([(0, 90), (1, 90), (2, 90)]));

    // The group resumes at its commits: nothing again, then only what is new.
    let again = Recorder::new(|_| false);
    run(settings.clone(), again.clone(), None).await;
    assert!(again.delivered().is_empty());
    let new = send(&broker, "orders", 3, 2, 50).await;
    let later = Recorder::new(|_| false);
    run(settings, later.clone(), None).await;
    assert_eq!(sorted(later.delivered()), sorted(new));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_concurrency_caps_the_invocations_in_flight() {
    let broker = KafkaBroker::start();
    create_topic(&broker, "capped", 4).await;
    let sent = send(&broker, "capped", 4, 30, 50).await;
    let recorder = Recorder::working(|_| false, Duration::from_millis(100));
    let extra = [("HEALTHLAKE_BATCH_SIZE", "10"), ("HEALTHLAKE_MAX_CONCURRENCY", "2")];
    run(settings(&broker, "capped", "g-cap", &extra), recorder.clone(), None).await;
    let (most, most_of_one) = recorder.most_in_flight();
    assert_eq!((most, most_of_one), (2, 1), "two at once, never two of one partition");
    let delivered = recorder.delivered();
    assert_in_partition_order(&delivered);
    assert_eq!(sorted(delivered), sorted(sent), "every record once");
    assert_eq!(committed(&broker, "capped", "g-cap", 4), BTreeMap::from([(0, 30), (1, 30), (2, 30), (3, 30)]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_batch_is_not_committed_and_is_redelivered_from_the_same_offsets() {
    let broker = KafkaBroker::start();
    create_topic(&broker, "retry", 2).await;
    send(&broker, "retry", 2, 30, 20).await;
    // Retries forever (MaximumRetryAttempts -1): the runner is stopped while the batch fails.
    let failing = Recorder::new(|_| true);
    let settings = settings(&broker, "retry", "g2", &[("HEALTHLAKE_BATCH_SIZE", "25")]);
    let (stop, stop_rx) = watch::channel(false);
    let runner = Runner::new(settings.clone(), failing.clone(), None, "healthlake-ingest");
    let task = tokio::spawn(async move { runner.run(stop_rx).await });
    tokio::time::sleep(Duration::from_secs(4)).await;
    stop.send(true).unwrap();
    let report = tokio::time::timeout(Duration::from_secs(30), task).await.unwrap().unwrap().unwrap();
    assert!(report.invocations_failed >= 3, "retried: {report:?}");
    assert_eq!(report.batches, 0);
    assert!(committed(&broker, "retry", "g2", 2).is_empty(), "nothing committed");

    let working = Recorder::new(|_| false);
    run(settings, working.clone(), None).await;
    let delivered = working.delivered();
    assert_eq!(delivered.len(), 60, "all redelivered");
    assert_in_partition_order(&delivered);
    assert!(delivered.contains(&(0, 0)) && delivered.contains(&(1, 0)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exhausted_retries_send_the_batch_to_the_destination_and_the_stream_moves_on() {
    let broker = KafkaBroker::start();
    create_topic(&broker, "poison", 1).await;
    send(&broker, "poison", 1, 30, 20).await;
    // The batch holding offset 12 always fails.
    let recorder = Recorder::new(|event| records_of(event).iter().any(|r| r.kafka.offset == 12));
    let dir = tempfile::tempdir().unwrap();
    let prefix = format!("file://{}/failed", dir.path().display());
    let settings = settings(
        &broker,
        "poison",
        "g3",
        &[
            ("HEALTHLAKE_BATCH_SIZE", "10"),
            ("HEALTHLAKE_MAXIMUM_RETRY_ATTEMPTS", "2"),
            ("HEALTHLAKE_ON_FAILURE_DESTINATION", &prefix),
        ],
    );
    let destination =
        FailureDestination::new(&prefix, healthlake_lake::file_io_for(&prefix, &Default::default()).unwrap());
    let report = run(settings, recorder.clone(), Some(destination)).await;
    assert_eq!(report.batches_sent_to_destination, 1);
    assert_eq!(report.invocations_failed, 3, "first attempt + MaximumRetryAttempts 2");
    let delivered = recorder.delivered();
    assert!(!delivered.contains(&(0, 12)));
    assert!(delivered.contains(&(0, 29)), "the stream moved on");
    assert_eq!(committed(&broker, "poison", "g3", 1), BTreeMap::from([(0, 30)]));

    let files: Vec<_> = walk(dir.path());
    assert_eq!(files.len(), 1, "{files:?}");
    let document: Value = serde_json::from_str(&std::fs::read_to_string(&files[0]).unwrap()).unwrap();
    assert_eq!(document["requestContext"]["condition"], "RetryAttemptsExhausted");
    assert_eq!(document["requestContext"]["approximateInvokeCount"], 3);
    assert_eq!(document["responseContext"]["functionError"], "Retryable.IngestError");
    let info = &document["KafkaBatchInfo"]["recordsInfo"]["poison-0"];
    let (first, last) = (info["firstRecordOffset"].as_i64().unwrap(), info["lastRecordOffset"].as_i64().unwrap());
    assert!(first <= 12 && 12 <= last);
    // The records themselves are kept: the payload is the event, ready to replay.
    let event: KafkaEvent = serde_json::from_value(document["payload"].clone()).unwrap();
    let offsets: Vec<i64> = records_of(&event).iter().map(|r| r.kafka.offset).collect();
    assert_eq!(offsets, (first..=last).collect::<Vec<_>>());
    assert_eq!(delivered.len() + offsets.len(), 30, "every record delivered or at the destination");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() { out.extend(walk(&path)) } else { out.push(path) }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_payload_cap_splits_large_records_into_batches_under_six_megabytes() {
    let broker = KafkaBroker::start();
    create_topic(&broker, "large", 2).await;
    // 2 × 40 records of 400 kB: 32 MB in all, base64 makes each ~533 kB of JSON.
    send(&broker, "large", 2, 40, 400_000).await;
    let recorder = Recorder::new(|_| false);
    let settings = settings(
        &broker,
        "large",
        "g4",
        &[("HEALTHLAKE_BATCH_SIZE", "10000"), ("KAFKA_MAX_PARTITION_FETCH_BYTES", "1048576")],
    );
    let report = run(settings, recorder.clone(), None).await;
    assert_eq!(report.records, 80);
    let batches = recorder.batches.lock().unwrap().clone();
    for event in &batches {
        let size = serde_json::to_vec(event).unwrap().len();
        assert!(size <= 6 * 1024 * 1024, "payload {size} bytes over 6 MB");
    }
    assert!(batches.len() >= 6, "32 MB cannot go in fewer than 6 invocations: {}", batches.len());
    assert_in_partition_order(&recorder.delivered());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latest_starts_after_what_the_topic_already_holds() {
    let broker = KafkaBroker::start();
    create_topic(&broker, "fresh", 2).await;
    send(&broker, "fresh", 2, 10, 20).await;
    let recorder = Recorder::new(|_| false);
    let mut settings = settings(&broker, "fresh", "g5", &[("HEALTHLAKE_STARTING_POSITION", "LATEST")]);
    settings.exit_when_idle = Some(Duration::from_secs(8));
    let (_stop, stop_rx) = watch::channel(false);
    let runner = Runner::new(settings, recorder.clone(), None, "healthlake-ingest");
    let task = tokio::spawn(async move { runner.run(stop_rx).await });
    // Once the group has joined and taken its position, new records arrive.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let new = send(&broker, "fresh", 2, 3, 20).await;
    tokio::time::timeout(Duration::from_secs(60), task).await.unwrap().unwrap().unwrap();
    assert_eq!(sorted(recorder.delivered()), sorted(new), "only the records produced after the start");
}

/// A runner killed with SIGKILL stays a group member until its session times out (or, on some
/// brokers, for good); the restarted runner must not wait for the group to give partitions back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_runner_is_not_held_up_by_a_member_that_never_left() {
    let broker = KafkaBroker::start();
    create_topic(&broker, "zombie", 3).await;
    let sent = send(&broker, "zombie", 3, 10, 20).await;
    // The dead runner's member: joined the group, holds its partitions, never leaves.
    let zombie: rdkafka::consumer::StreamConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &broker.bootstrap)
        .set("group.id", "g6")
        .set("enable.auto.commit", "false")
        .set("session.timeout.ms", "60000")
        .create()
        .unwrap();
    zombie.subscribe(&["zombie"]).unwrap();
    let _ = tokio::time::timeout(Duration::from_secs(5), zombie.recv()).await;
    let recorder = Recorder::new(|_| false);
    run(settings(&broker, "zombie", "g6", &[]), recorder.clone(), None).await;
    assert_eq!(sorted(recorder.delivered()), sorted(sent), "every partition read at once");
    assert_eq!(committed(&broker, "zombie", "g6", 3), BTreeMap::from([(0, 10), (1, 10), (2, 10)]));
    drop(zombie);
}
