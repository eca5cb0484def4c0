//! The local event source mapping: a consumer group on a real broker whose records become
//! invocations of the ingest function, as Lambda's Kafka event source mapping makes them.
//!
//! - each partition's records become batches of that partition (`lanes.rs`), closed on
//!   `BatchSize`, `MaximumBatchingWindowInSeconds` or the 6 MB payload cap (`batch.rs`);
//! - one batch per partition is in flight at a time, so a partition's records are handled in
//!   order, and up to one per partition at once (`HEALTHLAKE_MAX_CONCURRENCY` caps that), as the
//!   mapping scales; a partition that gets ahead of its invocations is paused;
//! - offsets are committed (synchronously, to the group, per partition) only after the invocation succeeded, or
//!   after the batch was stored at the on-failure destination once its retries were exhausted; a
//!   runner killed at any point resumes at the last commit, and the ingest function's offset
//!   fences make the redelivery harmless;
//! - a schedule invokes finalize for every window kind, like the EventBridge Scheduler schedules.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use backon::{ExponentialBuilder, Retryable};
use chrono::{DateTime, Utc};
use futures::stream::{FuturesUnordered, StreamExt};
use healthlake_core::WindowKind;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use serde_json::Value;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::batch::{Batch, BatchClosed, ConsumedRecord};
use crate::destination::{DestinationError, FailedBatch, FailureDestination};
use crate::invoke::{FunctionInvoker, Invocation, InvokeFailure};
use crate::lanes::Lanes;
use crate::settings::RunnerSettings;

#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    #[error("Kafka consumer: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error(transparent)]
    Destination(#[from] DestinationError),
}

/// What a run did, for the closing line and throughput figures.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct RunReport {
    pub batches: u64,
    pub records: u64,
    pub raw_rows_written: u64,
    pub error_rows_written: u64,
    pub rows_skipped_as_committed: u64,
    pub invocations_failed: u64,
    pub batches_sent_to_destination: u64,
    pub finalize_rounds: u64,
    pub seconds: f64,
}

/// The runner. `invoker` is the function (in process or over the Invoke API).
pub struct Runner {
    settings: RunnerSettings,
    invoker: Arc<dyn FunctionInvoker>,
    destination: Option<FailureDestination>,
    ingest_function_name: String,
}

impl Runner {
    pub fn new(
        settings: RunnerSettings,
        invoker: Arc<dyn FunctionInvoker>,
        destination: Option<FailureDestination>,
        ingest_function_name: &str,
    ) -> Self {
        Self { settings, invoker, destination, ingest_function_name: ingest_function_name.to_string() }
    }

    fn consumer(&self) -> Result<StreamConsumer, RunnerError> {
        let kafka = &self.settings.kafka;
        let consumer: StreamConsumer = kafka
            .client_config()
            .set("group.id", &kafka.group_id)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", self.settings.starting_position.offset_reset())
            .set("session.timeout.ms", kafka.session_timeout.as_millis().to_string())
            .set("fetch.min.bytes", kafka.fetch_min_bytes.to_string())
            .set("fetch.wait.max.ms", kafka.fetch_max_wait.as_millis().to_string())
            .set("max.partition.fetch.bytes", kafka.max_partition_fetch_bytes.to_string())
            .create()?;
        Ok(consumer)
    }

    /// Takes every partition of the topic not yet taken, each at the group's committed offset
    /// (or the starting position when it has none); returns how many partitions are held.
    ///
    /// Partitions are assigned, not balanced by the group protocol: the group holds the offsets,
    /// as it does for Flink's Kafka source this replaces. A runner killed with SIGKILL stays a
    /// member until its session times out (longer on brokers that never expire it), and a
    /// rebalancing group gives the restarted runner nothing meanwhile; assignment resumes at
    /// once. New partitions are picked up every KAFKA_PARTITION_DISCOVERY_INTERVAL. One runner
    /// per group: two would both read everything (harmless for the tables, twice the work).
    fn take_partitions(&self, consumer: &StreamConsumer, held: usize) -> Result<usize, RunnerError> {
        let topic = &self.settings.kafka.topic;
        let metadata = tokio::task::block_in_place(|| consumer.fetch_metadata(Some(topic), Duration::from_secs(10)))?;
        let partitions: Vec<i32> = metadata
            .topics()
            .iter()
            .filter(|t| t.name() == topic && t.error().is_none())
            .flat_map(|t| t.partitions().iter().map(|p| p.id()))
            .collect();
        if partitions.len() <= held {
            return Ok(held);
        }
        let mut list = TopicPartitionList::new();
        for partition in partitions.iter().filter(|p| **p as usize >= held) {
            list.add_partition_offset(topic, *partition, Offset::Stored)?;
        }
        consumer.incremental_assign(&list)?;
        info!(%topic, partitions = partitions.len(), "partitions assigned");
        Ok(partitions.len())
    }

    /// Runs until `stop` turns true (each lane's gathered records are delivered once and the
    /// batches in flight finished and committed first) or, with `exit_when_idle`, until no record
    /// arrived for that long with nothing in flight. Either way a last finalize round runs.
    pub async fn run(&self, mut stop: watch::Receiver<bool>) -> Result<RunReport, RunnerError> {
        let started = Instant::now();
        let consumer = self.consumer()?;
        let mut report = RunReport::default();
        register_failure_counters();
        // The finalize schedule, beside the stream as EventBridge Scheduler is beside the mapping.
        let rounds = Arc::new(AtomicU64::new(0));
        let schedule = self.settings.finalize_every.map(|every| {
            let (invoker, rounds) = (self.invoker.clone(), rounds.clone());
            tokio::spawn(async move {
                let mut ticker = tokio::time::interval(every);
                ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                ticker.tick().await; // the first tick is immediate; the first round comes after `every`
                loop {
                    ticker.tick().await;
                    finalize_round(invoker.as_ref(), FinalizeRound::Scheduled).await;
                    rounds.fetch_add(1, Ordering::Relaxed);
                }
            })
        });

        let max_in_flight = self.settings.max_concurrency.unwrap_or(usize::MAX);
        let mut lanes = Lanes::new(self.settings.limits, max_in_flight);
        let mut deliveries = FuturesUnordered::new();
        let mut paused: BTreeSet<i32> = BTreeSet::new();
        let mut held = 0;
        let mut discovered_at: Option<Instant> = None;
        // Idle time counts from the last record, and only while nothing is in flight (a long
        // invocation is not idleness) and partitions are held (a topic not created yet has none).
        let mut last_record = Instant::now();
        let mut stopping = *stop.borrow();
        let mut flushed = false;
        loop {
            let rediscover =
                if held == 0 { Duration::from_secs(1) } else { self.settings.kafka.partition_discovery_interval };
            if discovered_at.is_none_or(|at| at.elapsed() >= rediscover) {
                held = self.take_partitions(&consumer, held)?;
                discovered_at = Some(Instant::now());
            }
            // On a stop, what each lane has gathered goes once (a flush); nothing starts after.
            if !flushed {
                for (batch, closed) in lanes.take_due(Instant::now(), stopping) {
                    deliveries.push(self.deliver(&consumer, batch, closed, stop.clone()));
                }
                flushed = stopping;
            }
            self.apply_backpressure(&consumer, &lanes, &mut paused)?;
            if deliveries.is_empty() {
                if stopping {
                    break;
                }
                if let Some(idle) = self.settings.exit_when_idle
                    && held > 0
                    && lanes.is_idle()
                    && last_record.elapsed() >= idle
                {
                    info!(idle_seconds = idle.as_secs_f64(), "no records for the idle limit; stopping");
                    break;
                }
            } else {
                last_record = Instant::now();
            }
            let wake = lanes
                .next_window_end()
                .map_or(Duration::from_millis(250), |end| end.saturating_duration_since(Instant::now()))
                .min(Duration::from_millis(250));
            tokio::select! {
                message = consumer.recv(), if !stopping => match message {
                    Ok(m) => {
                        lanes.push(owned(&m), Instant::now());
                        last_record = Instant::now();
                    }
                    Err(e) => consumer_error(e).await,
                },
                Some(delivered) = deliveries.next() => {
                    let delivered = delivered?;
                    lanes.finished(delivered.partition);
                    report.add(&delivered.report);
                    if !delivered.committed {
                        // Asked to stop while it was still failing: redelivered next time.
                        stopping = true;
                    }
                }
                _ = tokio::time::sleep(wake) => {}
                _ = stop.changed(), if !stopping => stopping = *stop.borrow(),
            }
        }

        if let Some(task) = schedule {
            // A round cut short here is like a finalize invocation that crashed: the next
            // round (just below) completes it.
            task.abort();
            let _ = task.await;
        }
        // The schedule's last round: what the consumed records let close is closed.
        finalize_round(self.invoker.as_ref(), FinalizeRound::Last).await;
        report.finalize_rounds = rounds.load(Ordering::Relaxed) + 1;
        report.seconds = started.elapsed().as_secs_f64();
        Ok(report)
    }

    /// Pauses the partitions whose lane holds more than two batches (the invocations are behind;
    /// librdkafka would otherwise keep fetching them) and resumes those back under one.
    fn apply_backpressure(
        &self,
        consumer: &StreamConsumer,
        lanes: &Lanes,
        paused: &mut BTreeSet<i32>,
    ) -> Result<(), RunnerError> {
        let batch_size = self.settings.limits.batch_size.max(1);
        let topic = &self.settings.kafka.topic;
        let (mut pause, mut resume) = (TopicPartitionList::new(), TopicPartitionList::new());
        for partition in lanes.partitions() {
            let queued = lanes.queued(partition);
            if queued > 2 * batch_size && paused.insert(partition) {
                pause.add_partition(topic, partition);
            } else if queued <= batch_size && paused.remove(&partition) {
                resume.add_partition(topic, partition);
            }
        }
        if pause.count() > 0 {
            consumer.pause(&pause)?;
        }
        if resume.count() > 0 {
            consumer.resume(&resume)?;
        }
        Ok(())
    }

    /// Invokes ingest on one partition's batch until it succeeds or its retries are exhausted
    /// (then the batch goes to the destination), then commits its offsets. `committed: false`,
    /// committing nothing, when asked to stop while the batch is still failing: it is
    /// redelivered next time.
    async fn deliver(
        &self,
        consumer: &StreamConsumer,
        batch: Batch,
        closed: BatchClosed,
        stop: watch::Receiver<bool>,
    ) -> Result<Delivered, RunnerError> {
        let partition = batch.records().first().map_or(-1, |r| r.partition);
        let mut report = RunReport::default();
        let committed = self.deliver_batch(consumer, &batch, closed, &mut report, &stop).await?;
        Ok(Delivered { partition, committed, report })
    }

    async fn deliver_batch(
        &self,
        consumer: &StreamConsumer,
        batch: &Batch,
        closed: BatchClosed,
        report: &mut RunReport,
        stop: &watch::Receiver<bool>,
    ) -> Result<bool, RunnerError> {
        let bootstrap = &self.settings.kafka.brokers;
        let invocation = Invocation::Ingest(batch.event(bootstrap));
        let started = Instant::now();
        let attempts = AtomicU32::new(0);
        let (attempts, stopping, invocation_ref) = (&attempts, stop, &invocation);
        // A flush on stop still delivers the batch once; only its retries give way to the stop.
        let invoke = move || async move {
            if attempts.load(Ordering::Relaxed) > 0 && *stopping.borrow() {
                return Err(Undelivered::Stopping);
            }
            attempts.fetch_add(1, Ordering::Relaxed);
            // On a task of its own: the partitions' invocations run in parallel, as on Lambda.
            let (invoker, invocation) = (self.invoker.clone(), invocation_ref.clone());
            tokio::spawn(async move { invoker.invoke(&invocation).await })
                .await
                .unwrap_or_else(|e| {
                    Err(InvokeFailure { error_type: "Runtime.Panic".into(), error_message: e.to_string() })
                })
                .map_err(Undelivered::Failed)
        };
        // A stop cuts the wait short; the next attempt then sees it and gives up.
        let stop_waiting = stop.clone();
        let wait = move |delay: Duration| {
            let mut stop = stop_waiting.clone();
            async move {
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = stop.changed() => {}
                }
            }
        };
        let outcome = invoke
            .retry(invocation_backoff(&self.settings))
            .sleep(wait)
            .when(|e| matches!(e, Undelivered::Failed(_)) && !*stopping.borrow())
            .notify(|e, delay| {
                if let Undelivered::Failed(failure) = e {
                    count_failure(failure, report);
                    let attempt = attempts.load(Ordering::Relaxed);
                    warn!(attempt, error = %failure, retry_in_ms = delay.as_millis() as u64, "invocation failed; retrying the batch");
                }
            })
            .await;
        let attempt = attempts.load(Ordering::Relaxed);
        match outcome {
            Ok(response) => {
                count_response(&response, report);
                metrics::counter!("event_source_batches", "outcome" => "succeeded").increment(1);
                info!(
                    records = batch.len(),
                    partitions = batch.offsets_to_commit().len(),
                    closed = ?closed,
                    attempt,
                    millis = started.elapsed().as_millis() as u64,
                    %response,
                    "batch ingested"
                );
            }
            Err(Undelivered::Stopping) => return Ok(false),
            Err(Undelivered::Failed(failure)) => {
                count_failure(&failure, report);
                if *stopping.borrow() {
                    return Ok(false);
                }
                self.send_to_destination(batch, invocation, attempt, &failure).await?;
                report.batches_sent_to_destination += 1;
                metrics::counter!("event_source_batches", "outcome" => "sent_to_destination").increment(1);
            }
        }
        report.batches += 1;
        report.records += batch.len() as u64;
        metrics::counter!("event_source_records").increment(batch.len() as u64);
        metrics::histogram!("event_source_batch_records").record(batch.len() as f64);
        self.commit(consumer, batch).await?;
        Ok(true)
    }

    async fn send_to_destination(
        &self,
        batch: &Batch,
        invocation: Invocation,
        attempts: u32,
        failure: &InvokeFailure,
    ) -> Result<(), RunnerError> {
        let Invocation::Ingest(event) = invocation else { unreachable!("only ingest batches are retried here") };
        let destination = self.destination.as_ref().expect("settings require a destination for finite retries");
        let failed = FailedBatch::new(
            batch,
            event,
            &self.settings.kafka.brokers,
            &self.ingest_function_name,
            attempts,
            failure,
            Utc::now(),
        );
        let location = destination.send(&failed).await?;
        warn!(attempts, error = %failure, %location, records = batch.len(), "retries exhausted; batch sent to the on-failure destination");
        Ok(())
    }

    /// Commits the batch's offsets to the group, retrying while the broker is unreachable; a
    /// commit that cannot be made only means a redelivery, which ingest skips.
    async fn commit(&self, consumer: &StreamConsumer, batch: &Batch) -> Result<(), RunnerError> {
        let offsets = batch.offsets_to_commit();
        let mut list = TopicPartitionList::new();
        for ((topic, partition), next) in &offsets {
            list.add_partition_offset(topic, *partition, Offset::Offset(*next))?;
        }
        let commit = || async { tokio::task::block_in_place(|| consumer.commit(&list, CommitMode::Sync)) };
        let committed = commit
            .retry(commit_backoff())
            .notify(
                |e, delay| warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "offset commit failed; retrying"),
            )
            .await;
        match committed {
            Ok(()) => record_positions(consumer, &offsets),
            Err(e) => {
                warn!(error = %e, "offsets not committed after every retry; the batch will be redelivered and skipped by ingest")
            }
        }
        Ok(())
    }
}

/// A partition's batch done with: delivered and committed, or (on a stop) given up.
struct Delivered {
    partition: i32,
    committed: bool,
    report: RunReport,
}

impl RunReport {
    fn add(&mut self, other: &RunReport) {
        self.batches += other.batches;
        self.records += other.records;
        self.raw_rows_written += other.raw_rows_written;
        self.error_rows_written += other.error_rows_written;
        self.rows_skipped_as_committed += other.rows_skipped_as_committed;
        self.invocations_failed += other.invocations_failed;
        self.batches_sent_to_destination += other.batches_sent_to_destination;
    }
}

/// Why a batch was not delivered (yet).
enum Undelivered {
    Failed(InvokeFailure),
    /// Asked to stop while the batch was still failing: it is redelivered next time.
    Stopping,
}

/// Lambda's retries of a failing batch: the configured first delay, doubled per retry up to
/// 30 s, `MaximumRetryAttempts` retries (unbounded when -1).
fn invocation_backoff(settings: &RunnerSettings) -> ExponentialBuilder {
    let builder = ExponentialBuilder::default()
        .with_min_delay(settings.retry_backoff)
        .with_max_delay(Duration::from_secs(30))
        .with_factor(2.0);
    match settings.maximum_retry_attempts {
        Some(retries) => builder.with_max_times(retries as usize),
        None => builder.without_max_times(),
    }
}

/// Offset commits while the broker is unreachable: ten attempts, 200 ms doubling up to 5 s.
fn commit_backoff() -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(200))
        .with_max_delay(Duration::from_secs(5))
        .with_factor(2.0)
        .with_max_times(9)
}

fn count_failure(failure: &InvokeFailure, report: &mut RunReport) {
    report.invocations_failed += 1;
    metrics::counter!("event_source_invocations_failed", "error_type" => failure.error_type.clone()).increment(1);
}

/// `kafka_consumer_committed_offset`, `kafka_consumer_offset` and `kafka_consumer_lag` for the
/// partitions of a batch just committed (`offsets`: the next offset per partition).
fn record_positions(consumer: &StreamConsumer, offsets: &std::collections::BTreeMap<(String, i32), i64>) {
    for ((topic, partition), next) in offsets {
        let label = partition.to_string();
        metrics::gauge!("kafka_consumer_committed_offset", "partition" => label.clone()).set(*next as f64);
        metrics::gauge!("kafka_consumer_offset", "partition" => label.clone()).set(*next as f64);
        if let Ok((_, high)) =
            tokio::task::block_in_place(|| consumer.fetch_watermarks(topic, *partition, Duration::from_secs(2)))
        {
            metrics::gauge!("kafka_consumer_lag", "partition" => label).set((high - next).max(0) as f64);
        }
    }
}

/// The runner's counters of bad outcomes at zero from the start, with the error types the
/// functions answer (see `healthlake_pipeline::metrics::register_failure_counters`).
fn register_failure_counters() {
    for outcome in ["succeeded", "sent_to_destination"] {
        metrics::counter!("event_source_batches", "outcome" => outcome).increment(0);
    }
    for error_type in ["Retryable.IngestError", "Permanent.IngestError", "Permanent.InvalidInput"] {
        metrics::counter!("event_source_invocations_failed", "error_type" => error_type).increment(0);
    }
}

/// Which round of the finalize schedule: a scheduled one, or the runner's last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinalizeRound {
    /// A failed invocation is retried as Lambda retries an asynchronous one (twice by default;
    /// the Terraform module's event invoke config says once, since the next scheduled run does
    /// the same work), seconds apart rather than minutes; a kind still failing waits for the
    /// next round.
    Scheduled,
    /// The runner's last round has no next one: a fault at the end of a run would leave its
    /// windows unemitted, so it retries longer (six times, 1 s doubling to 8 s).
    Last,
}

impl FinalizeRound {
    fn backoff(self) -> ExponentialBuilder {
        let builder = ExponentialBuilder::default()
            .with_min_delay(Duration::from_secs(1))
            .with_max_delay(Duration::from_secs(8))
            .with_factor(2.0);
        match self {
            FinalizeRound::Scheduled => builder.with_max_times(2),
            FinalizeRound::Last => builder.with_max_times(6),
        }
    }
}

/// One round of the finalize schedule: every window kind, each retried as `round` says.
pub async fn finalize_round(invoker: &dyn FunctionInvoker, round: FinalizeRound) {
    for kind in WindowKind::ALL {
        let invocation = Invocation::Finalize(kind);
        let finalized = (|| invoker.invoke(&invocation))
            .retry(round.backoff())
            .notify(|e, delay| warn!(%kind, error = %e, retry_in_ms = delay.as_millis() as u64, "finalize failed; retrying"))
            .await;
        match finalized {
            Ok(response) => info!(%kind, %response, "finalize"),
            Err(e) => warn!(%kind, error = %e, "finalize failed after its retries; the next round retries"),
        }
    }
}

fn count_response(response: &Value, report: &mut RunReport) {
    let n = |field: &str| response[field].as_u64().unwrap_or(0);
    report.raw_rows_written += n("rawRowsWritten");
    report.error_rows_written += n("errorRowsWritten");
    report.rows_skipped_as_committed += n("rowsSkippedAsCommitted");
}

fn owned<M: Message>(m: &M) -> ConsumedRecord {
    let millis = m.timestamp().to_millis().unwrap_or(0);
    ConsumedRecord {
        topic: m.topic().to_string(),
        partition: m.partition(),
        offset: m.offset(),
        timestamp: DateTime::from_timestamp_millis(millis).unwrap_or_default(),
        key: m.key().map(<[u8]>::to_vec),
        value: m.payload().map(<[u8]>::to_vec).unwrap_or_default(),
    }
}

/// Consumer errors are transient for librdkafka (it reconnects); say so and pause briefly.
async fn consumer_error(e: rdkafka::error::KafkaError) {
    metrics::counter!("kafka_connection_errors", "error_type" => format!("{:?}", e.rdkafka_error_code())).increment(1);
    warn!(error = %e, "Kafka consumer error");
    tokio::time::sleep(Duration::from_millis(500)).await;
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use async_trait::async_trait;

    use super::*;

    /// Finalize failing its first `failures` attempts per kind.
    struct Flaky {
        failures: u32,
        attempts: Mutex<std::collections::BTreeMap<String, u32>>,
    }

    #[async_trait]
    impl FunctionInvoker for Flaky {
        async fn invoke(&self, invocation: &Invocation) -> Result<Value, InvokeFailure> {
            let Invocation::Finalize(kind) = invocation else { unreachable!("finalize only") };
            let mut attempts = self.attempts.lock().unwrap();
            let n = attempts.entry(kind.to_string()).or_default();
            *n += 1;
            if *n <= self.failures {
                return Err(InvokeFailure {
                    error_type: "Retryable.FinalizeError".into(),
                    error_message: "throttled".into(),
                });
            }
            Ok(serde_json::json!({ "kind": kind }))
        }
    }

    fn attempts(invoker: &Flaky) -> Vec<u32> {
        invoker.attempts.lock().unwrap().values().copied().collect()
    }

    #[tokio::test(start_paused = true)]
    async fn the_last_round_retries_longer_than_a_scheduled_one() {
        let flaky = || Flaky { failures: 3, attempts: Mutex::default() };
        // A scheduled round gives up after Lambda's two retries: three attempts per kind.
        let scheduled = flaky();
        finalize_round(&scheduled, FinalizeRound::Scheduled).await;
        assert_eq!(attempts(&scheduled), vec![3, 3, 3]);
        // The last round keeps going: the fourth attempt of each kind succeeds.
        let last = flaky();
        let started = tokio::time::Instant::now();
        finalize_round(&last, FinalizeRound::Last).await;
        assert_eq!(attempts(&last), vec![4, 4, 4]);
        // 1 + 2 + 4 s of backoff per kind, jitter-free.
        assert_eq!(started.elapsed(), Duration::from_secs(21));
    }
}
