//! Ingest-core throughput: decode → validate → Arrow → Parquet (the raw table's schema and
//! compression) on a fixed generated data set, on one core; and peak memory for one batch of
//! 10,000 Kafka records. Prints figures; not a timed test.
//!
//! `cargo bench -p healthlake-lake --bench ingest_core`

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use healthlake_core::decode::Decoder;
use healthlake_core::generate::{self, GeneratorConfig, WRITER_SCHEMAS};
use healthlake_core::{KafkaCoordinates, RawRecord, Validator};
use healthlake_lake::tables::{TableKind, definition};
use healthlake_lake::{parquet_properties, rows};
use iceberg::arrow::schema_to_arrow_schema;
use parquet::arrow::ArrowWriter;

fn process(
    decoder: &Decoder,
    validator: &Validator,
    schema: &arrow_schema::SchemaRef,
    props: &parquet::file::properties::WriterProperties,
    records: &[generate::ProducedRecord],
    now: DateTime<Utc>,
) -> (usize, usize) {
    let mut raw: Vec<RawRecord> = Vec::with_capacity(records.len() * 5);
    let mut errors = 0;
    for (i, r) in records.iter().enumerate() {
        let kafka = KafkaCoordinates { topic: "health-data-raw".into(), partition: r.partition, offset: i as i64 };
        match decoder.decode(&r.value) {
            Ok(payload) => {
                let outcome = validator.process(&payload, &kafka, now, now);
                errors += outcome.errors.len();
                raw.extend(outcome.raw);
            }
            Err(_) => errors += 1,
        }
    }
    let batch = rows::raw_batch(schema, &raw).expect("batch builds");
    let mut out = Vec::with_capacity(1 << 20);
    let mut writer = ArrowWriter::try_new(&mut out, schema.clone(), Some(props.clone())).expect("writer");
    writer.write(&batch).expect("write");
    writer.close().expect("close");
    black_box(&out);
    (raw.len() + errors, out.len())
}

fn rss_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status.lines().find(|l| l.starts_with(field))?.split_whitespace().nth(1)?.parse().ok()
}

fn main() {
    let mut decoder = Decoder::new();
    for (id, text) in WRITER_SCHEMAS {
        decoder.register_writer_schema(id, text);
    }
    let validator = Validator::default();
    let def = definition(TableKind::Raw).expect("raw table definition");
    let schema = Arc::new(schema_to_arrow_schema(&def.schema).expect("arrow schema"));
    let props = parquet_properties(&def.properties).expect("parquet properties");
    let now: DateTime<Utc> = "2025-12-01T00:00:00Z".parse().unwrap();

    // Peak memory of one 10,000-record batch, measured first so nothing else inflates it.
    let batch = generate::generate(&GeneratorConfig { records: 10_000, seed: 1, ..GeneratorConfig::default() });
    let input_bytes: usize = batch.iter().map(|r| r.value.len()).sum();
    // Writing 5 to clear_refs resets the peak RSS counter (VmHWM) to the current RSS.
    let reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    let before = rss_kib("VmRSS:").unwrap_or(0);
    let (samples, parquet_bytes) = process(&decoder, &validator, &schema, &props, &batch, now);
    let peak = rss_kib("VmHWM:").unwrap_or(0);
    println!(
        "one batch: 10000 records, {samples} samples, {:.1} MiB of Kafka values -> {:.1} MiB Parquet",
        input_bytes as f64 / 1048576.0,
        parquet_bytes as f64 / 1048576.0
    );
    println!(
        "peak memory: {:.1} MiB resident at peak, {:.1} MiB above the resident set before the batch{}",
        peak as f64 / 1024.0,
        peak.saturating_sub(before) as f64 / 1024.0,
        if reset { "" } else { " (peak counter could not be reset: figure includes setup)" }
    );
    drop(batch);

    // Throughput on a fixed data set, single-threaded: samples per second per core.
    let data = generate::generate(&GeneratorConfig { records: 40_000, seed: 2, ..GeneratorConfig::default() });
    let chunks: Vec<&[generate::ProducedRecord]> = data.chunks(10_000).collect();
    process(&decoder, &validator, &schema, &props, chunks[0], now); // warm-up
    let mut rates = Vec::new();
    for round in 0..3 {
        let started = Instant::now();
        let mut total = 0;
        for chunk in &chunks {
            total += process(&decoder, &validator, &schema, &props, chunk, now).0;
        }
        let secs = started.elapsed().as_secs_f64();
        let rate = total as f64 / secs;
        println!("round {round}: {total} samples in {secs:.3} s = {rate:.0} samples/s");
        rates.push(rate);
    }
    rates.sort_by(f64::total_cmp);
    println!("ingest core (decode -> validate -> Arrow -> Parquet snappy), one core: median {:.0} samples/s", rates[1]);
}
