//! One full ingest invocation (decode to committed Iceberg appends and accumulator merges) on a
//! 10,000-record batch, split by stage; then the pure stages inside "decode and validate" and
//! "file write" timed on their own. Embedded stores by default; `BENCH_AWS=1` runs the
//! invocation on Glue + S3 + DynamoDB served by moto. Prints figures; not a timed test.
//!
//!     cargo bench -p healthlake-pipeline --bench ingest_invocation
//!     BENCH_BATCH_SIZE=170 BENCH_DAYS=11 cargo bench -p healthlake-pipeline --bench ingest_invocation
//!
//! `BENCH_BATCH_SIZE` cuts the 10,000 records into batches of that many, ingested one after
//! another on the same stores (stages summed over them): the per-batch costs of small batches.
//! `BENCH_DAYS` is the event-time span (75 days by default: one 10,000-record batch then touches
//! about 300 partitions, a worst case; a live stream's batch touches today's).
//!     AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1 BENCH_AWS=1 \
//!         cargo bench -p healthlake-pipeline --bench ingest_invocation

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use aws_lambda_events::event::kafka::KafkaEvent;
use healthlake_core::decode::Decoder;
use healthlake_core::generate::{self, GeneratorConfig, WRITER_SCHEMAS};
use healthlake_core::{RawRecord, Validator};
use healthlake_lake::tables::{TableKind, definition};
use healthlake_lake::{parquet_properties, rows};
use healthlake_pipeline::app::App;
use healthlake_pipeline::config::Settings;
use healthlake_pipeline::demo::{assign_offsets, deliveries};
use healthlake_pipeline::events::records_of;
use healthlake_testkit::{AwsEmulator, embedded_env};
use iceberg::arrow::{RecordBatchPartitionSplitter, schema_to_arrow_schema};
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use parquet::arrow::ArrowWriter;
use tracing_subscriber::layer::SubscriberExt;

const RECORDS: usize = 10_000;
const ROUNDS: usize = 3;

/// Counts the statements sqlx runs (it logs each one as an event of target `sqlx::query`).
struct StatementCounter(Arc<AtomicU64>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for StatementCounter {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        if event.metadata().target() == "sqlx::query" {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// The batches, as the mapping would deliver the generated records.
fn batch_events() -> Vec<KafkaEvent> {
    let days = env_number("BENCH_DAYS", 75) as i64;
    let config =
        GeneratorConfig { records: RECORDS, seed: 1, span: chrono::Duration::days(days), ..GeneratorConfig::default() };
    let offsets = assign_offsets("health-data-raw", generate::generate(&config));
    deliveries(&offsets, env_number("BENCH_BATCH_SIZE", RECORDS), 0, 0).into_iter().map(|(_, event)| event).collect()
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Sum of the milliseconds each histogram (name plus labels) received.
fn histogram_sums(snapshotter: &Snapshotter) -> BTreeMap<String, f64> {
    let mut sums = BTreeMap::new();
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        if let DebugValue::Histogram(values) = value {
            let labels: Vec<String> = key.key().labels().map(|l| l.value().to_string()).collect();
            let name = format!("{} {}", key.key().name(), labels.join(","));
            *sums.entry(name).or_insert(0.0) += values.iter().map(|v| v.into_inner()).sum::<f64>();
        }
    }
    sums
}

fn write_schemas(dir: &std::path::Path) {
    std::fs::create_dir_all(dir).unwrap();
    for (id, text) in WRITER_SCHEMAS {
        std::fs::write(dir.join(format!("{id}.avsc")), text).unwrap();
    }
}

/// The batches' invocations on fresh stores: wall time, stage sums, SQLite statements, data
/// files, rows.
async fn invocation(
    events: &[KafkaEvent],
    snapshotter: &Snapshotter,
    statements: &AtomicU64,
    moto: Option<&AwsEmulator>,
    round: usize,
) -> (f64, BTreeMap<String, f64>, u64, usize, u64) {
    let dir = tempfile::tempdir().unwrap();
    write_schemas(&dir.path().join("schemas"));
    let registry = format!("file://{}/schemas", dir.path().display());
    let mut env = embedded_env(dir.path(), &[("SCHEMA_REGISTRY_URL", &registry), ("LOG_LEVEL", "WARNING")]);
    if let Some(moto) = moto {
        let bucket_vars = [
            ("ICEBERG_WAREHOUSE", format!("s3://bench-{round}/warehouse")),
            ("HEALTHLAKE_DYNAMODB_TABLE", format!("bench-{round}")),
            ("ICEBERG_DATABASE", format!("bench_{round}")),
        ];
        let vars: Vec<(&str, &str)> = bucket_vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
        moto.create_resources(&vars);
        for (k, v) in bucket_vars {
            env.insert(k.into(), v);
        }
        for (k, v) in [
            ("ICEBERG_CATALOG_TYPE", "glue"),
            ("ICEBERG_CATALOG_URI", moto.url.as_str()),
            ("S3_ENDPOINT", moto.url.as_str()),
            ("S3_PATH_STYLE_ACCESS", "true"),
            ("HEALTHLAKE_STATE_STORE", "dynamodb"),
            ("HEALTHLAKE_DYNAMODB_ENDPOINT", moto.url.as_str()),
        ] {
            env.insert(k.into(), v.into());
        }
    }
    let settings = Settings::from_map(&env).expect("bench settings");
    let app = App::open(settings, healthlake_pipeline::system_clock()).await.expect("app opens");
    // Tables created before the clock starts: a warm Lambda has them.
    app.lake.table(TableKind::Raw).await.unwrap();
    app.lake.table(TableKind::Errors).await.unwrap();
    snapshotter.snapshot();
    statements.store(0, Ordering::Relaxed);
    let (mut files, mut rows) = (0, 0);
    let started = Instant::now();
    for event in events {
        let report = app.ingest.handle(event).await.expect("ingest");
        files += report.raw_commit.as_ref().map_or(0, |c| c.data_files)
            + report.errors_commit.as_ref().map_or(0, |c| c.data_files);
        rows += report.raw_rows_written + report.error_rows_written;
    }
    let wall = started.elapsed().as_secs_f64() * 1e3;
    (wall, histogram_sums(snapshotter), statements.load(Ordering::Relaxed), files, rows)
}

fn core_stages(event: &KafkaEvent) {
    let mut decoder = Decoder::new();
    for (id, text) in WRITER_SCHEMAS {
        decoder.register_writer_schema(id, text);
    }
    let validator = Validator::default();
    let def = definition(TableKind::Raw).unwrap();
    let schema = Arc::new(schema_to_arrow_schema(&def.schema).unwrap());
    let props = parquet_properties(&def.properties).unwrap();
    let spec = def.partition_spec.clone().bind(def.schema.clone()).unwrap();
    let splitter =
        RecordBatchPartitionSplitter::try_new_with_computed_values(Arc::new(def.schema.clone()), Arc::new(spec))
            .unwrap();
    let now = chrono::Utc::now();
    let mut times: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    let mut time = |stage: &'static str, started: Instant| {
        times.entry(stage).or_default().push(started.elapsed().as_secs_f64() * 1e3);
    };
    let mut samples = 0;
    let mut partitions = 0;
    for _ in 0..5 {
        let t = Instant::now();
        let records = records_of(event);
        time("event JSON to records (base64)", t);
        let t = Instant::now();
        let payloads: Vec<_> = records.iter().map(|r| decoder.decode(r.value.as_ref().unwrap())).collect();
        time("framing + Avro decode to payloads", t);
        let t = Instant::now();
        let mut raw: Vec<RawRecord> = Vec::new();
        for (r, p) in records.iter().zip(&payloads) {
            if let Ok(p) = p {
                raw.extend(validator.process(p, &r.kafka, r.timestamp.unwrap_or(now), now).raw);
            }
        }
        time("flatten + validate to rows", t);
        samples = raw.len();
        let t = Instant::now();
        let batch = rows::raw_batch(&schema, &raw).unwrap();
        time("Arrow build", t);
        let t = Instant::now();
        let parts = splitter.split(&batch).unwrap();
        time("partition split", t);
        partitions = parts.len();
        let t = Instant::now();
        let mut bytes = 0;
        for (_, part) in &parts {
            let mut out = Vec::new();
            let mut writer = ArrowWriter::try_new(&mut out, schema.clone(), Some(props.clone())).unwrap();
            writer.write(part).unwrap();
            writer.close().unwrap();
            bytes += out.len();
        }
        std::hint::black_box(bytes);
        time("Parquet encode (in memory)", t);
    }
    println!("\ninside the invocation, pure stages (median of 5), {samples} valid samples in {partitions} partitions:");
    for (stage, values) in times {
        println!("  {stage:<36} {:>9.1} ms", median(values));
    }
}

fn main() {
    let statements = Arc::new(AtomicU64::new(0));
    let subscriber = tracing_subscriber::registry().with(StatementCounter(statements.clone()));
    tracing::subscriber::set_global_default(subscriber).unwrap();
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder.install().unwrap();

    let events = batch_events();
    let bytes: usize = events
        .iter()
        .flat_map(|e| e.records.values().flatten())
        .filter_map(|r| r.value.as_ref())
        .map(String::len)
        .sum();
    let moto = (std::env::var("BENCH_AWS").as_deref() == Ok("1")).then(AwsEmulator::start);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let mut walls = Vec::new();
    let mut stages: HashMap<String, Vec<f64>> = HashMap::new();
    let (mut count, mut files, mut samples) = (0, 0, 0);
    for round in 0..ROUNDS {
        let (wall, sums, n, f, rows) =
            runtime.block_on(invocation(&events, &snapshotter, &statements, moto.as_ref(), round));
        walls.push(wall);
        for (k, v) in sums {
            stages.entry(k).or_default().push(v);
        }
        (count, files, samples) = (n, f, rows);
    }
    let wall = median(walls);
    println!(
        "{} ingest invocation(s), {RECORDS} records ({:.1} MiB of base64 values, {samples} raw + error rows), {}: median of {ROUNDS}",
        events.len(),
        bytes as f64 / 1048576.0,
        if moto.is_some() { "Glue + S3 + DynamoDB on moto" } else { "embedded (SQL catalog, local files, SQLite)" }
    );
    println!("  wall {wall:.1} ms = {:.0} samples/s; {files} data files", samples as f64 / (wall / 1e3));
    if events.len() > 1 {
        println!("  per invocation: {:.1} ms", wall / events.len() as f64);
    }
    let mut accounted = 0.0;
    let mut named: Vec<(String, f64)> = stages.into_iter().map(|(k, v)| (k, median(v))).collect();
    named.sort_by(|a, b| b.1.total_cmp(&a.1));
    for (stage, ms) in &named {
        if stage.starts_with("transformation_duration")
            || stage.starts_with("iceberg_write_duration")
            || stage.starts_with("iceberg_commit_duration")
        {
            println!("  {stage:<52} {ms:>9.1} ms");
            accounted += ms;
        }
    }
    println!("  {:<52} {:>9.1} ms", "rest (progress notes, table loads, row split)", wall - accounted);
    if moto.is_none() {
        println!("  SQLite statements in the invocation: {count}");
    }
    drop(runtime);
    if events.len() == 1 {
        core_stages(&events[0]);
    }
}
