//! The handlers on the embedded default: redelivery of the same and of regrouped batches,
//! late data, finalize idempotency, strict mode, and closed windows against an independent
//! two-pass recomputation from the generated input.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use arrow_array::Array;
use arrow_array::cast::AsArray;
use arrow_array::types::{Date32Type, Float64Type, Int32Type, Int64Type, TimestampMicrosecondType};
use aws_lambda_events::event::kafka::KafkaEvent;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use healthlake_core::aggregate::two_pass;
use healthlake_core::generate::{self, Expectation, GeneratorConfig, WRITER_SCHEMAS};
use healthlake_core::time::from_micros;
use healthlake_core::{KafkaCoordinates, Window, WindowKind};
use healthlake_lake::{REPLAY_PROPERTY, TableKind};
use healthlake_pipeline::Clock;
use healthlake_pipeline::app::App;
use healthlake_pipeline::backfill::{BackfillRequest, Progress};
use healthlake_pipeline::config::{SchemaRegistrySettings, Settings};
use healthlake_pipeline::demo::{Delivery, assign_offsets, deliveries};
use healthlake_pipeline::events::{EventRecord, build_event};
use healthlake_pipeline::finalize::FinalizeHandler;
use healthlake_pipeline::ingest::{IngestHandler, IngestReport};
use healthlake_pipeline::replay::{ReplayHandler, ReplayReport};
use healthlake_pipeline::schema_source;
use healthlake_state::{
    AccumulatorItem, AccumulatorKey, AccumulatorStore, AccumulatorUpdate, MergeReport, PartitionOffset,
    PartitionProgress, StoreError,
};

struct Harness {
    _dir: tempfile::TempDir,
    app: App,
    now: Arc<Mutex<DateTime<Utc>>>,
    clock: Clock,
}

fn start_time() -> DateTime<Utc> {
    "2025-09-01T00:00:00Z".parse().unwrap()
}

async fn harness(vars: &[(&str, &str)]) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let schemas = dir.path().join("schemas");
    std::fs::create_dir_all(&schemas).unwrap();
    for (id, text) in WRITER_SCHEMAS {
        std::fs::write(schemas.join(format!("{id}.avsc")), text).unwrap();
    }
    let mut env = healthlake_testkit::embedded_env(dir.path(), vars);
    env.insert("SCHEMA_REGISTRY_URL".into(), format!("file://{}", schemas.display()));
    let settings = Settings::from_map(&env).unwrap();
    assert!(matches!(settings.schema_registry, SchemaRegistrySettings::Directory(_)));
    let now = Arc::new(Mutex::new(start_time() + Duration::days(90)));
    let clock_now = now.clone();
    let clock: Clock = Arc::new(move || *clock_now.lock().unwrap());
    let app = App::open(settings, clock.clone()).await.unwrap();
    Harness { _dir: dir, app, now, clock }
}

fn config(records: usize) -> GeneratorConfig {
    GeneratorConfig {
        records,
        users: 12,
        partitions: 4,
        start: start_time(),
        span: Duration::days(40),
        invalid_sample_ratio: 0.05,
        undecodable_record_ratio: 0.02,
        ..GeneratorConfig::default()
    }
}

/// A harness that has ingested `records` generated records (deterministic), in batches of 100,
/// each once.
async fn ingested(records: usize) -> Harness {
    let cfg = config(records);
    let produced = assign_offsets(&cfg.topic, generate::generate(&cfg));
    let h = harness(&[]).await;
    for (_, event) in deliveries(&produced, 100, 0, 0) {
        h.app.ingest.handle(&event).await.unwrap();
    }
    h
}

async fn finalize_all(app: &App) {
    for kind in WindowKind::ALL {
        app.finalize.handle(kind).await.unwrap();
    }
}

/// (user, data type, first day of the window): an aggregate table's primary key.
type WindowRowKey = (String, String, NaiveDate);

/// Everything observable: raw lineage, error lineage, aggregate rows per table.
#[derive(Debug, PartialEq)]
struct Observed {
    raw: BTreeSet<(i32, i64, String)>,
    errors: BTreeMap<(i32, i64, Option<String>), String>,
    aggregates: BTreeMap<WindowKind, BTreeMap<WindowRowKey, [f64; 5]>>,
}

async fn observe(app: &App) -> Observed {
    let mut raw = BTreeSet::new();
    let mut raw_rows = 0;
    for b in app.lake.scan(TableKind::Raw, &["kafka_partition", "kafka_offset", "sample_id"]).await.unwrap() {
        for i in 0..b.num_rows() {
            raw_rows += 1;
            raw.insert((
                b.column(0).as_primitive::<Int32Type>().value(i),
                b.column(1).as_primitive::<Int64Type>().value(i),
                b.column(2).as_string::<i32>().value(i).to_string(),
            ));
        }
    }
    assert_eq!(raw_rows, raw.len(), "a raw row was written twice");
    let mut errors = BTreeMap::new();
    let mut error_rows = 0;
    for b in
        app.lake.scan(TableKind::Errors, &["kafka_partition", "kafka_offset", "sample_id", "error_type"]).await.unwrap()
    {
        for i in 0..b.num_rows() {
            error_rows += 1;
            let sample = b.column(2).as_string::<i32>();
            errors.insert(
                (
                    b.column(0).as_primitive::<Int32Type>().value(i),
                    b.column(1).as_primitive::<Int64Type>().value(i),
                    (!sample.is_null(i)).then(|| sample.value(i).to_string()),
                ),
                b.column(3).as_string::<i32>().value(i).to_string(),
            );
        }
    }
    assert_eq!(error_rows, errors.len(), "an error row was written twice");
    let mut aggregates = BTreeMap::new();
    for kind in WindowKind::ALL {
        let date_column = match kind {
            WindowKind::Daily => "aggregation_date",
            WindowKind::Weekly => "week_start_date",
            WindowKind::Monthly => "month_start_date",
        };
        let mut rows = BTreeMap::new();
        let mut n = 0;
        let columns =
            ["user_id", "data_type", date_column, "count", "sum_value", "min_value", "max_value", "stddev_value"];
        for b in app.lake.scan(TableKind::Aggregate(kind), &columns).await.unwrap() {
            for i in 0..b.num_rows() {
                n += 1;
                let date = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap()
                    + chrono::Days::new(b.column(2).as_primitive::<Date32Type>().value(i) as u64);
                rows.insert(
                    (
                        b.column(0).as_string::<i32>().value(i).to_string(),
                        b.column(1).as_string::<i32>().value(i).to_string(),
                        date,
                    ),
                    [
                        b.column(3).as_primitive::<Int64Type>().value(i) as f64,
                        b.column(4).as_primitive::<Float64Type>().value(i),
                        b.column(5).as_primitive::<Float64Type>().value(i),
                        b.column(6).as_primitive::<Float64Type>().value(i),
                        b.column(7).as_primitive::<Float64Type>().value(i),
                    ],
                );
            }
        }
        assert_eq!(n, rows.len(), "{kind}: a primary key appears twice");
        aggregates.insert(kind, rows);
    }
    Observed { raw, errors, aggregates }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-6 * (1.0 + a.abs().max(b.abs()))
}

fn assert_same(a: &Observed, b: &Observed) {
    assert_eq!(a.raw, b.raw);
    assert_eq!(a.errors, b.errors);
    for kind in WindowKind::ALL {
        let (x, y) = (&a.aggregates[&kind], &b.aggregates[&kind]);
        let only_x: Vec<_> = x.keys().filter(|k| !y.contains_key(*k)).take(5).collect();
        let only_y: Vec<_> = y.keys().filter(|k| !x.contains_key(*k)).take(5).collect();
        assert!(
            only_x.is_empty() && only_y.is_empty(),
            "{kind}: {} vs {} windows; only left {only_x:?}; only right {only_y:?}",
            x.len(),
            y.len()
        );
        for (k, v) in x {
            assert!(v.iter().zip(y[k].iter()).all(|(p, q)| close(*p, *q)), "{kind} {k:?}: {v:?} vs {:?}", y[k]);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redelivered_and_regrouped_batches_change_nothing_and_closed_windows_match_two_pass() {
    let cfg = config(1_200);
    let produced = assign_offsets(&cfg.topic, generate::generate(&cfg));

    // Clean run: each batch once.
    let clean = harness(&[]).await;
    for (_, event) in deliveries(&produced, 150, 0, 0) {
        clean.app.ingest.handle(&event).await.unwrap();
    }
    finalize_all(&clean.app).await;
    let clean_seen = observe(&clean.app).await;

    // Messy run: duplicates, regroupings, and finalize in between.
    let messy = harness(&[]).await;
    let plan = deliveries(&produced, 150, 2, 3);
    assert!(plan.iter().any(|(d, _)| *d == Delivery::Duplicate));
    assert!(plan.iter().any(|(d, _)| *d == Delivery::Regrouped));
    for (i, (_, event)) in plan.iter().enumerate() {
        messy.app.ingest.handle(event).await.unwrap();
        if i % 3 == 0 {
            finalize_all(&messy.app).await;
        }
    }
    // Replaying everything once more at the end changes nothing either.
    for (_, event) in &plan {
        let report = messy.app.ingest.handle(event).await.unwrap();
        assert_eq!(report.raw_rows_written + report.error_rows_written, 0);
    }
    finalize_all(&messy.app).await;
    finalize_all(&messy.app).await;
    let messy_seen = observe(&messy.app).await;
    assert_same(&clean_seen, &messy_seen);

    // Every input record is accounted for, in exactly one of the two tables.
    let mut expected_raw = 0;
    let mut expected_errors = 0;
    let mut expected_samples: Vec<(KafkaCoordinates, generate::ExpectedSample)> = vec![];
    for (coords, record) in &produced {
        match &record.expectation {
            Expectation::Undecodable => expected_errors += 1,
            Expectation::Decoded { valid, invalid } => {
                expected_raw += valid.len();
                expected_errors += invalid;
                expected_samples.extend(valid.iter().map(|s| (coords.clone(), s.clone())));
            }
        }
    }
    let late = clean_seen.errors.values().filter(|t| *t == "late_record").count();
    assert_eq!(late, 0, "ordered input has no late data");
    assert_eq!(clean_seen.raw.len(), expected_raw);
    assert_eq!(clean_seen.errors.len(), expected_errors);
    let offsets: BTreeSet<(i32, i64)> = clean_seen
        .raw
        .iter()
        .map(|(p, o, _)| (*p, *o))
        .chain(clean_seen.errors.keys().map(|(p, o, _)| (*p, *o)))
        .collect();
    let input: BTreeSet<(i32, i64)> = produced.iter().map(|(c, _)| (c.partition, c.offset)).collect();
    assert_eq!(offsets, input, "every offset is in raw or errors");

    // Closed windows equal a two-pass computation over the generated valid samples.
    for kind in WindowKind::ALL {
        let mut groups: BTreeMap<WindowRowKey, Vec<(DateTime<Utc>, f64)>> = BTreeMap::new();
        for (_, s) in &expected_samples {
            let w = Window::containing(kind, s.start);
            groups.entry((s.user_id.clone(), s.data_type.clone(), w.start_date)).or_default().push((s.start, s.value));
        }
        let emitted = &clean_seen.aggregates[&kind];
        assert!(!emitted.is_empty(), "{kind}: some windows closed");
        for (key, got) in emitted {
            let want = two_pass(&groups[key]).unwrap();
            let want = [want.count as f64, want.sum, want.min, want.max, want.stddev];
            assert!(got.iter().zip(want.iter()).all(|(a, b)| close(*a, *b)), "{kind} {key:?}: {got:?} vs {want:?}");
        }
    }
}

fn heart_rate_payload(id: &str, user: &str, start: DateTime<Utc>, value: f64) -> Vec<u8> {
    serde_json::json!({
        "payloadId": id, "deviceId": "d1", "userId": user, "timestamp": start.to_rfc3339(), "appVersion": "1",
        "samples": [{"id": id, "type": "heartRate", "value": value, "unit": "count/min",
            "startDate": start.to_rfc3339(), "endDate": (start + Duration::seconds(60)).to_rfc3339(),
            "createdAt": start.to_rfc3339()}]
    })
    .to_string()
    .into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_for_closed_windows_become_late_records_and_finalize_is_idempotent() {
    let h = harness(&[]).await;
    let day = |d: u32, h: u32| -> DateTime<Utc> { format!("2025-10-{d:02}T{h:02}:00:00Z").parse().unwrap() };
    let ts = Utc::now();
    let payloads = [
        heart_rate_payload("a", "u1", day(6, 10), 60.0),
        heart_rate_payload("b", "u1", day(6, 12), 80.0),
        // Moves partition 0's event time far enough to close 2025-10-06 (daily, 1 h lateness).
        heart_rate_payload("c", "u1", day(8, 12), 70.0),
    ];
    let records: Vec<EventRecord<'_>> = payloads
        .iter()
        .enumerate()
        .map(|(i, v)| EventRecord { topic: "t", partition: 0, offset: i as i64, timestamp: ts, key: None, value: v })
        .collect();
    h.app.ingest.handle(&build_event(&records)).await.unwrap();
    let report = h.app.finalize.handle(WindowKind::Daily).await.unwrap();
    assert_eq!(report.windows_emitted, 1, "{report:?}");
    let again = h.app.finalize.handle(WindowKind::Daily).await.unwrap();
    assert_eq!(again.windows_emitted, 0);

    // A sample for the closed day arrives: late for daily, still folded into the open week/month.
    let late = heart_rate_payload("d", "u1", day(6, 20), 100.0);
    let event =
        build_event(&[EventRecord { topic: "t", partition: 0, offset: 3, timestamp: ts, key: None, value: &late }]);
    let report = h.app.ingest.handle(&event).await.unwrap();
    assert_eq!(report.raw_rows_written, 0);
    assert_eq!(report.error_rows_written, 1);
    // Redelivered: decided the same way, written once.
    let report = h.app.ingest.handle(&event).await.unwrap();
    assert_eq!(report.error_rows_written + report.raw_rows_written, 0);

    let seen = observe(&h.app).await;
    assert_eq!(seen.errors.get(&(0, 3, Some("d".to_string()))).map(String::as_str), Some("late_record"));
    assert_eq!(seen.raw.len(), 3);
    let daily = &seen.aggregates[&WindowKind::Daily];
    let row = daily[&("u1".to_string(), "heartRate".to_string(), "2025-10-06".parse().unwrap())];
    assert_eq!(row[0], 2.0, "the late sample did not change the emitted day");
    assert!(close(row[1], 140.0));

    // The week is still open: once it closes it includes the late sample.
    *h.now.lock().unwrap() += Duration::minutes(1);
    let later = heart_rate_payload("e", "u1", day(20, 12), 70.0);
    let event =
        build_event(&[EventRecord { topic: "t", partition: 0, offset: 4, timestamp: ts, key: None, value: &later }]);
    h.app.ingest.handle(&event).await.unwrap();
    h.app.finalize.handle(WindowKind::Weekly).await.unwrap();
    let seen = observe(&h.app).await;
    let week = seen.aggregates[&WindowKind::Weekly]
        [&("u1".to_string(), "heartRate".to_string(), "2025-10-06".parse().unwrap())];
    assert_eq!(week[0], 4.0);
    assert!(close(week[1], 310.0));
}

async fn ingest_one(h: &Harness, offset: i64, id: &str, when: DateTime<Utc>, value: f64) -> IngestReport {
    let payload = heart_rate_payload(id, "u1", when, value);
    let event = build_event(&[EventRecord {
        topic: "t",
        partition: 0,
        offset,
        timestamp: Utc::now(),
        key: None,
        value: &payload,
    }]);
    h.app.ingest.handle(&event).await.unwrap()
}

/// The spec's allowed lateness: a window is emitted when the watermark passes its end, updated in
/// place by late samples until end + lateness, then closed; later samples are late records.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_data_within_lateness_updates_the_emitted_row_in_place() {
    let h = harness(&[]).await;
    let at =
        |d: u32, hh: u32, mm: u32| -> DateTime<Utc> { format!("2025-10-{d:02}T{hh:02}:{mm:02}:00Z").parse().unwrap() };
    let day6 = ("u1".to_string(), "heartRate".to_string(), "2025-10-06".parse::<NaiveDate>().unwrap());

    ingest_one(&h, 0, "a", at(6, 10, 0), 60.0).await;
    // Watermark 00:30 on day 7 (10 min out of orderness): day 6 has ended, its lateness (1 h) not.
    ingest_one(&h, 1, "b", at(7, 0, 40), 70.0).await;
    let report = h.app.finalize.handle(WindowKind::Daily).await.unwrap();
    assert_eq!((report.windows_emitted, report.windows_updated, report.windows_closed), (1, 0, 0), "{report:?}");
    assert_eq!(observe(&h.app).await.aggregates[&WindowKind::Daily][&day6][0], 1.0);
    // Nothing changed: nothing emitted.
    let report = h.app.finalize.handle(WindowKind::Daily).await.unwrap();
    assert_eq!(report.windows_emitted, 0);

    // A late sample within the lateness is folded in, and the row is replaced in place.
    let r = ingest_one(&h, 2, "c", at(6, 20, 0), 100.0).await;
    assert_eq!((r.raw_rows_written, r.error_rows_written), (1, 0));
    let report = h.app.finalize.handle(WindowKind::Daily).await.unwrap();
    assert_eq!((report.windows_emitted, report.windows_updated, report.rows_replaced), (1, 1, 1), "{report:?}");
    let seen = observe(&h.app).await; // asserts no primary key twice
    let row = seen.aggregates[&WindowKind::Daily][&day6];
    assert_eq!(row[0], 2.0);
    assert!(close(row[1], 160.0));

    // The watermark passes end + lateness: closed, without rewriting an unchanged row.
    ingest_one(&h, 3, "d", at(7, 3, 0), 70.0).await;
    let report = h.app.finalize.handle(WindowKind::Daily).await.unwrap();
    assert_eq!((report.windows_emitted, report.windows_closed), (0, 1), "{report:?}");
    assert_eq!(report.records_aggregated, 2);

    // After the lateness: a late record, and the row stays.
    let r = ingest_one(&h, 4, "e", at(6, 21, 0), 150.0).await;
    assert_eq!((r.raw_rows_written, r.error_rows_written), (0, 1));
    h.app.finalize.handle(WindowKind::Daily).await.unwrap();
    let seen = observe(&h.app).await;
    assert_eq!(seen.errors.get(&(0, 4, Some("e".to_string()))).map(String::as_str), Some("late_record"));
    assert_eq!(seen.aggregates[&WindowKind::Daily][&day6][0], 2.0);

    // Backfill of day 6: without late records it finds the table right; with them it folds the
    // late sample in, once.
    let request = |include_late: bool, dry_run: bool| BackfillRequest {
        from: at(6, 0, 0),
        to: at(7, 0, 0),
        window_kinds: vec![WindowKind::Daily],
        data_types: vec![],
        user_ids: vec![],
        include_late,
        dry_run,
        force: false,
    };
    let report = h.app.backfill.handle(&request(false, false), quiet()).await.unwrap();
    let daily = &report.kinds[&WindowKind::Daily];
    assert_eq!((daily.windows_recomputed, daily.windows_changed, daily.rows_upserted), (1, 0, 0), "{report:?}");
    let report = h.app.backfill.handle(&request(true, true), quiet()).await.unwrap();
    let daily = &report.kinds[&WindowKind::Daily];
    assert_eq!((daily.windows_changed, daily.late_samples_folded, daily.rows_upserted), (1, 1, 0), "dry run");
    assert_eq!(observe(&h.app).await.aggregates[&WindowKind::Daily][&day6][0], 2.0, "a dry run writes nothing");
    let report = h.app.backfill.handle(&request(true, false), quiet()).await.unwrap();
    assert_eq!(report.kinds[&WindowKind::Daily].rows_upserted, 1);
    let row = observe(&h.app).await.aggregates[&WindowKind::Daily][&day6];
    assert_eq!(row[0], 3.0);
    assert!(close(row[1], 310.0));
    let snapshots =
        h.app.lake.table(TableKind::Aggregate(WindowKind::Daily)).await.unwrap().metadata().snapshots().count();
    let report = h.app.backfill.handle(&request(true, false), quiet()).await.unwrap();
    assert_eq!(report.kinds[&WindowKind::Daily].windows_changed, 0, "a second backfill changes nothing");
    let after = h.app.lake.table(TableKind::Aggregate(WindowKind::Daily)).await.unwrap().metadata().snapshots().count();
    assert_eq!(after, snapshots, "and commits nothing");
}

fn quiet() -> Progress {
    Arc::new(|_: &str| {})
}

/// Backfill over the whole range recomputes every closed window from the raw table and the late
/// records and finds what streaming produced; forced, it rewrites them all to the same values.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_over_a_range_equals_the_streamed_aggregates() {
    let h = ingested(800).await;
    finalize_all(&h.app).await;
    let streamed = observe(&h.app).await;
    let mut request = BackfillRequest {
        from: start_time() - Duration::days(1),
        to: start_time() + Duration::days(41),
        window_kinds: vec![],
        data_types: vec![],
        user_ids: vec![],
        include_late: false,
        dry_run: true,
        force: false,
    };
    let report = h.app.backfill.handle(&request, quiet()).await.unwrap();
    for (kind, k) in &report.kinds {
        assert_eq!(k.windows_changed, 0, "{kind}: {k:?}");
        assert!(!streamed.aggregates[kind].is_empty(), "{kind}: some windows closed");
        assert_eq!(k.windows_recomputed - k.windows_skipped_open, streamed.aggregates[kind].len(), "{kind}: {k:?}");
    }
    request.dry_run = false;
    request.force = true;
    let report = h.app.backfill.handle(&request, quiet()).await.unwrap();
    for kind in WindowKind::ALL {
        assert_eq!(report.kinds[&kind].rows_upserted as usize, streamed.aggregates[&kind].len(), "{kind}");
    }
    assert_same(&streamed, &observe(&h.app).await);
}

/// A finalize cut off after its upsert and before marking the items: the rerun upserts the same
/// rows again (replacing them), so no primary key appears twice and nothing is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finalize_crash_after_the_upsert_is_completed_by_the_rerun() {
    let (clean, h) = (ingested(300).await, ingested(300).await);
    finalize_all(&clean.app).await;
    let crashing = Arc::new(CrashingStore { inner: h.app.store.clone(), crash: Mutex::new(None) });
    let finalize = FinalizeHandler::new(h.app.settings.clone(), h.app.lake.clone(), crashing.clone(), h.clock.clone());
    for kind in WindowKind::ALL {
        *crashing.crash.lock().unwrap() = Some(CrashPoint::AfterUpsert);
        let err = finalize.handle(kind).await.unwrap_err();
        assert!(err.is_retryable(), "{err}");
        let rerun = finalize.handle(kind).await.unwrap();
        assert!(rerun.windows_emitted > 0 && rerun.rows_replaced == rerun.windows_emitted as u64, "{rerun:?}");
    }
    assert_same(&observe(&clean.app).await, &observe(&h.app).await);
}

/// Two finalizers of the same kind at once (an overlapping schedule, a manual run): their upserts
/// conflict and retry on each other's snapshots, and no primary key appears twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_finalizers_never_write_a_key_twice() {
    let h = ingested(400).await;
    let second = FinalizeHandler::new(h.app.settings.clone(), h.app.lake.clone(), h.app.store.clone(), h.clock.clone());
    for kind in WindowKind::ALL {
        let (a, b) = tokio::join!(h.app.finalize.handle(kind), second.handle(kind));
        let (a, b) = (a.unwrap(), b.unwrap());
        assert!(a.windows_emitted + b.windows_emitted > 0, "{kind}: {a:?} {b:?}");
    }
    let seen = observe(&h.app).await; // asserts no primary key twice in every table
    for kind in WindowKind::ALL {
        assert!(!seen.aggregates[&kind].is_empty(), "{kind}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_mode_fails_the_batch_before_any_effect() {
    let h = harness(&[("VALIDATION_STRICT_MODE", "true")]).await;
    let good = heart_rate_payload("a", "u1", start_time(), 60.0);
    let bad = heart_rate_payload("b", "u1", start_time(), 400.0);
    let ts = Utc::now();
    let event = build_event(&[
        EventRecord { topic: "t", partition: 0, offset: 0, timestamp: ts, key: None, value: &good },
        EventRecord { topic: "t", partition: 0, offset: 1, timestamp: ts, key: None, value: &bad },
    ]);
    let err = h.app.ingest.handle(&event).await.unwrap_err();
    assert!(!err.is_retryable());
    assert!(err.to_string().contains("out_of_range"), "{err}");
    assert_eq!(h.app.lake.row_count(TableKind::Raw).await.unwrap(), 0);
    // No event-time progress; only the note that the partition has a batch waiting.
    let progress = h.app.store.partition_progress().await.unwrap();
    assert_eq!(progress.len(), 1);
    assert!(progress[0].pending && progress[0].max_event_time == DateTime::UNIX_EPOCH, "{progress:?}");
}

/// Where a simulated crash hits an ingest invocation.
#[derive(Debug, Clone, Copy, PartialEq)]
enum CrashPoint {
    /// Accumulators merged, nothing appended to Iceberg.
    AfterMerge,
    /// Raw and error rows committed, watermarks not advanced.
    BeforeWatermarks,
    /// Finalize: aggregate rows upserted, items not marked emitted or closed.
    AfterUpsert,
}

/// The real store, with one invocation cut off at a chosen point.
struct CrashingStore {
    inner: Arc<dyn AccumulatorStore>,
    crash: Mutex<Option<CrashPoint>>,
}

impl CrashingStore {
    fn crash_now(&self, point: CrashPoint) -> Result<(), StoreError> {
        let mut armed = self.crash.lock().unwrap();
        if *armed == Some(point) {
            *armed = None;
            return Err(StoreError::Unavailable(format!("simulated crash {point:?}")));
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl AccumulatorStore for CrashingStore {
    async fn merge(&self, updates: Vec<AccumulatorUpdate>) -> Result<MergeReport, StoreError> {
        let report = self.inner.merge(updates).await?;
        self.crash_now(CrashPoint::AfterMerge)?;
        Ok(report)
    }
    async fn advance_watermarks(&self, observations: &[PartitionProgress]) -> Result<(), StoreError> {
        self.crash_now(CrashPoint::BeforeWatermarks)?;
        self.inner.advance_watermarks(observations).await
    }
    async fn partition_progress(&self) -> Result<Vec<PartitionProgress>, StoreError> {
        self.inner.partition_progress().await
    }
    async fn note_received(&self, offsets: &[PartitionOffset]) -> Result<(), StoreError> {
        self.inner.note_received(offsets).await
    }
    async fn note_applied(&self, offsets: &[PartitionOffset]) -> Result<(), StoreError> {
        self.inner.note_applied(offsets).await
    }
    async fn advance_close_marker(
        &self,
        kind: WindowKind,
        closed_through: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.inner.advance_close_marker(kind, closed_through).await
    }
    async fn open_keys(&self, kind: WindowKind, end: DateTime<Utc>) -> Result<Vec<AccumulatorKey>, StoreError> {
        self.inner.open_keys(kind, end).await
    }
    async fn read_items(&self, keys: &[AccumulatorKey]) -> Result<Vec<AccumulatorItem>, StoreError> {
        self.inner.read_items(keys).await
    }
    async fn mark_emitted(&self, emitted: &[(AccumulatorKey, i64)]) -> Result<(), StoreError> {
        self.crash_now(CrashPoint::AfterUpsert)?;
        self.inner.mark_emitted(emitted).await
    }
    async fn mark_closed(
        &self,
        closes: &[(AccumulatorKey, i64)],
        expires_at: DateTime<Utc>,
    ) -> Result<Vec<AccumulatorKey>, StoreError> {
        self.crash_now(CrashPoint::AfterUpsert)?;
        self.inner.mark_closed(closes, expires_at).await
    }
}

/// An ingest handler over the harness's store, cut off where the returned store is armed to.
fn crashing_ingest(h: &Harness) -> (Arc<CrashingStore>, IngestHandler) {
    let crashing = Arc::new(CrashingStore { inner: h.app.store.clone(), crash: Mutex::new(None) });
    let ingest = IngestHandler::new(
        h.app.settings.clone(),
        schema_source::from_settings(&h.app.settings.schema_registry).unwrap(),
        h.app.lake.clone(),
        crashing.clone(),
        h.clock.clone(),
    );
    (crashing, ingest)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_effects_is_completed_by_the_redelivery() {
    let cfg = config(800);
    let produced = assign_offsets(&cfg.topic, generate::generate(&cfg));
    let plan = deliveries(&produced, 100, 0, 0);

    let clean = harness(&[]).await;
    for (_, event) in &plan {
        clean.app.ingest.handle(event).await.unwrap();
    }
    finalize_all(&clean.app).await;
    let clean_seen = observe(&clean.app).await;

    let h = harness(&[]).await;
    let (crashing, ingest) = crashing_ingest(&h);
    let mut crashes = 0;
    for (i, (_, event)) in plan.iter().enumerate() {
        let point = match i % 3 {
            0 => Some(CrashPoint::AfterMerge),
            1 => Some(CrashPoint::BeforeWatermarks),
            _ => None,
        };
        *crashing.crash.lock().unwrap() = point;
        if let Err(e) = ingest.handle(event).await {
            assert!(e.is_retryable(), "{e}");
            crashes += 1;
            // The event source mapping delivers the batch again.
            ingest.handle(event).await.unwrap();
        }
        if i % 2 == 1 {
            finalize_all(&h.app).await;
        }
    }
    assert!(crashes >= 5, "{crashes} crashes simulated");
    finalize_all(&h.app).await;
    assert_same(&clean_seen, &observe(&h.app).await);
}

/// A partition no record has come from yet holds the watermark back (with
/// HEALTHLAKE_TOPIC_PARTITIONS), so records of partitions a consumer reaches later are not late;
/// an empty partition stops holding it once idle.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unseen_partitions_hold_the_watermark_until_they_deliver_or_go_idle() {
    let h = harness(&[("KAFKA_TOPIC", "t"), ("HEALTHLAKE_TOPIC_PARTITIONS", "3")]).await;
    let day = |d: u32| -> DateTime<Utc> { format!("2025-10-{d:02}T12:00:00Z").parse().unwrap() };
    let ingest = |partition: i32, id: &'static str, when: DateTime<Utc>| {
        let payload = heart_rate_payload(id, "u1", when, 70.0);
        let app = &h.app;
        async move {
            let event = build_event(&[EventRecord {
                topic: "t",
                partition,
                offset: 0,
                timestamp: Utc::now(),
                key: None,
                value: &payload,
            }]);
            app.ingest.handle(&event).await.unwrap()
        }
    };
    // Partition 0 is far ahead; 1 and 2 have not delivered: nothing may close.
    ingest(0, "a", day(20)).await;
    let report = h.app.finalize.handle(WindowKind::Daily).await.unwrap();
    assert_eq!(report.windows_emitted, 0, "{report:?}");
    assert!(report.watermark.unwrap() < day(1), "held at the start of time: {report:?}");
    // Partition 1 delivers an earlier day: not late, and the watermark still waits for 2.
    let report = ingest(1, "b", day(5)).await;
    assert_eq!((report.raw_rows_written, report.error_rows_written), (1, 0));
    assert_eq!(h.app.finalize.handle(WindowKind::Daily).await.unwrap().windows_emitted, 0);
    // Partition 2 never delivers: once idle it stops holding the watermark back; partition 1
    // (active) now sets it, so 2025-10-05 closes and partition 0's day does not.
    *h.now.lock().unwrap() += Duration::minutes(31);
    ingest(1, "c", day(7)).await;
    let report = h.app.finalize.handle(WindowKind::Daily).await.unwrap();
    assert_eq!(report.windows_emitted, 1, "{report:?}");
    assert_eq!(report.watermark.unwrap(), day(7) - Duration::minutes(10));
}

/// Phones whose clock runs ahead (here: UTC+9 local time sent without its `Z`, read as UTC) on
/// every partition: their samples are valid, but they may not move the watermark past what the
/// broker saw, so today's window stays open and the on-time samples after them are not late.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fast_device_clocks_do_not_close_windows_early() {
    let h = harness(&[("KAFKA_TOPIC", "t"), ("HEALTHLAKE_TOPIC_PARTITIONS", "3")]).await;
    let broker_time: DateTime<Utc> = "2025-10-06T20:00:00Z".parse().unwrap();
    let fast = |id: &str, user: &str| {
        String::from_utf8(heart_rate_payload(id, user, broker_time, 70.0))
            .unwrap()
            .replace("2025-10-06T20:00:00+00:00", "2025-10-07T05:00:00")
            .replace("2025-10-06T20:01:00+00:00", "2025-10-07T05:01:00")
            .into_bytes()
    };
    let payloads: Vec<(i32, Vec<u8>)> = (0..3)
        .flat_map(|p| {
            let user = format!("u{p}");
            [
                (p, heart_rate_payload(&format!("on-time-{p}"), &user, broker_time - Duration::minutes(5), 60.0)),
                (p, fast(&format!("fast-{p}"), &user)),
            ]
        })
        .collect();
    let records: Vec<EventRecord<'_>> = payloads
        .iter()
        .enumerate()
        .map(|(i, (p, v))| EventRecord {
            topic: "t",
            partition: *p,
            offset: i as i64,
            timestamp: broker_time,
            key: None,
            value: v,
        })
        .collect();
    let report = h.app.ingest.handle(&build_event(&records)).await.unwrap();
    assert_eq!((report.raw_rows_written, report.error_rows_written), (6, 0), "fast samples stay valid: {report:?}");

    let finalized = h.app.finalize.handle(WindowKind::Daily).await.unwrap();
    assert_eq!(finalized.windows_emitted, 0, "{finalized:?}");
    assert!(finalized.watermark.unwrap() <= broker_time, "watermark follows the broker: {finalized:?}");

    // On-time samples a few minutes later are not late.
    let later: Vec<Vec<u8>> = (0..3)
        .map(|p| heart_rate_payload(&format!("after-{p}"), &format!("u{p}"), broker_time + Duration::minutes(5), 65.0))
        .collect();
    let records: Vec<EventRecord<'_>> = later
        .iter()
        .enumerate()
        .map(|(p, v)| EventRecord {
            topic: "t",
            partition: p as i32,
            offset: 10 + p as i64,
            timestamp: broker_time + Duration::minutes(6),
            key: None,
            value: v,
        })
        .collect();
    let report = h.app.ingest.handle(&build_event(&records)).await.unwrap();
    assert_eq!((report.raw_rows_written, report.error_rows_written), (3, 0), "{report:?}");
    assert_eq!(observe(&h.app).await.raw.len(), 9);
}

/// Future skew is judged against the Kafka record's timestamp: a batch processed now, or retried
/// two days later, decides every sample the same way (a verdict that flipped between attempts
/// would land a sample in neither table).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_attempt_judges_future_skew_the_same() {
    let broker_time: DateTime<Utc> = "2025-11-28T00:00:00Z".parse().unwrap();
    let ahead = heart_rate_payload("ahead-25h", "u1", broker_time + Duration::hours(25), 70.0);
    let near = heart_rate_payload("ahead-23h", "u1", broker_time + Duration::hours(23), 70.0);
    let event = build_event(&[
        EventRecord { topic: "t", partition: 0, offset: 0, timestamp: broker_time, key: None, value: &ahead },
        EventRecord { topic: "t", partition: 0, offset: 1, timestamp: broker_time, key: None, value: &near },
    ]);
    let mut verdicts = Vec::new();
    for processing in [broker_time + Duration::minutes(30), broker_time + Duration::days(2)] {
        let h = harness(&[]).await;
        *h.now.lock().unwrap() = processing;
        h.app.ingest.handle(&event).await.unwrap();
        let seen = observe(&h.app).await;
        verdicts.push((seen.raw.into_iter().map(|r| r.2).collect::<Vec<_>>(), seen.errors));
    }
    assert_eq!(verdicts[0], verdicts[1]);
    assert_eq!(verdicts[0].0, vec!["ahead-23h".to_string()]);
    assert_eq!(verdicts[0].1.values().collect::<Vec<_>>(), vec!["future_timestamp"]);
}

/// An outage longer than the idle timeout: partition 1's batch keeps failing while partition 0
/// moved ahead. Every partition looks quiet, but partition 1 has records waiting: the watermark
/// stays at its progress, and once the outage ends its backlog lands on time, not late.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_whose_batches_fail_holds_the_watermark_through_the_outage() {
    let h = harness(&[("KAFKA_TOPIC", "t")]).await;
    let (crashing, ingest) = crashing_ingest(&h);
    let day = |d: u32| -> DateTime<Utc> { format!("2025-10-{d:02}T12:00:00Z").parse().unwrap() };
    let payloads: Vec<(i32, i64, Vec<u8>)> = vec![
        (0, 0, heart_rate_payload("a", "u0", day(5), 70.0)),
        (1, 0, heart_rate_payload("b", "u1", day(5), 70.0)),
        (0, 1, heart_rate_payload("c", "u0", day(8), 70.0)),
        (1, 1, heart_rate_payload("d", "u1", day(6), 70.0)),
    ];
    let event = |i: usize| {
        let (partition, offset, value) = &payloads[i];
        build_event(&[EventRecord {
            topic: "t",
            partition: *partition,
            offset: *offset,
            timestamp: day(9),
            key: None,
            value,
        }])
    };
    for i in 0..3 {
        ingest.handle(&event(i)).await.unwrap();
    }
    *crashing.crash.lock().unwrap() = Some(CrashPoint::AfterMerge);
    assert!(ingest.handle(&event(3)).await.is_err(), "partition 1's batch fails");

    // Two hours on, nothing has succeeded anywhere: all partitions are past the idle timeout.
    *h.now.lock().unwrap() += Duration::hours(2);
    let report = h.app.finalize.handle(WindowKind::Daily).await.unwrap();
    assert_eq!(report.watermark, Some(day(5) - Duration::minutes(10)), "{report:?}");
    assert_eq!(report.windows_emitted, 0, "{report:?}");

    // The outage ends: the redelivered batch is on time.
    let report = ingest.handle(&event(3)).await.unwrap();
    assert_eq!((report.raw_rows_written, report.error_rows_written), (1, 0), "{report:?}");
    let progress = h.app.store.partition_progress().await.unwrap();
    assert!(progress.iter().all(|p| !p.pending), "{progress:?}");
}

/// An event of hand-made heart-rate records on partition 0 of topic `t`:
/// (offset, sample id, user, event time, value).
fn heart_rate_batch(records: &[(i64, &str, &str, DateTime<Utc>, f64)]) -> KafkaEvent {
    let payloads: Vec<Vec<u8>> =
        records.iter().map(|(_, id, user, at, v)| heart_rate_payload(id, user, *at, *v)).collect();
    let records: Vec<EventRecord<'_>> = records
        .iter()
        .zip(&payloads)
        .map(|((offset, ..), value)| EventRecord {
            topic: "t",
            partition: 0,
            offset: *offset,
            timestamp: "2025-10-31T00:00:00Z".parse().unwrap(),
            key: None,
            value,
        })
        .collect();
    build_event(&records)
}

/// Every accumulator equals a two-pass computation over the raw rows of its window, and every
/// raw row is in one.
async fn assert_accumulators_match_raw(app: &App) {
    let mut groups: BTreeMap<AccumulatorKey, Vec<(DateTime<Utc>, f64)>> = BTreeMap::new();
    for b in app.lake.scan(TableKind::Raw, &["user_id", "data_type", "start_date", "value"]).await.unwrap() {
        for i in 0..b.num_rows() {
            let at = from_micros(b.column(2).as_primitive::<TimestampMicrosecondType>().value(i));
            for kind in WindowKind::ALL {
                let key = AccumulatorKey {
                    user_id: b.column(0).as_string::<i32>().value(i).to_string(),
                    data_type: b.column(1).as_string::<i32>().value(i).to_string(),
                    window: Window::containing(kind, at),
                };
                groups.entry(key).or_default().push((at, b.column(3).as_primitive::<Float64Type>().value(i)));
            }
        }
    }
    let mut items = BTreeMap::new();
    for kind in WindowKind::ALL {
        for item in app.store.open_items(kind, DateTime::<Utc>::MAX_UTC).await.unwrap() {
            items.insert(item.key.clone(), item.state.stats().unwrap());
        }
    }
    assert_eq!(items.keys().collect::<Vec<_>>(), groups.keys().collect::<Vec<_>>(), "windows with samples");
    for (key, got) in &items {
        let want = two_pass(&groups[key]).unwrap();
        assert_eq!(got.count, want.count, "{key}: {got:?} vs raw {want:?}");
        assert!(close(got.sum, want.sum) && close(got.stddev, want.stddev), "{key}: {got:?} vs raw {want:?}");
    }
}

/// The on-failure destination's batch replayed after the stream moved on: later batches moved
/// the committed offsets past it and the fences of u1's windows, not those of u2's. The replay
/// puts every record in raw or errors exactly once, and the accumulators hold exactly raw.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_failed_batch_lands_once_in_every_table_and_the_state() {
    let h = harness(&[]).await;
    let at = |d: u32, hh: u32| -> DateTime<Utc> { format!("2025-10-{d:02}T{hh:02}:00:00Z").parse().unwrap() };
    let first = heart_rate_batch(&[(0, "a", "u1", at(6, 8), 60.0), (1, "b", "u1", at(6, 9), 62.0)]);
    // Its retries ran out (say the schema registry was down): the mapping stored it and moved on.
    let failed = heart_rate_batch(&[
        (2, "c", "u1", at(6, 10), 70.0),
        (3, "d", "u2", at(6, 11), 90.0),
        (4, "e", "u2", at(6, 12), 400.0), // out of range: an error row
        (5, "f", "u1", at(7, 9), 75.0),
    ]);
    let later = [
        heart_rate_batch(&[(6, "g", "u1", at(6, 13), 64.0), (7, "h", "u1", at(7, 10), 66.0)]),
        heart_rate_batch(&[(8, "i", "u3", at(6, 14), 80.0)]),
    ];
    h.app.ingest.handle(&first).await.unwrap();
    for event in &later {
        h.app.ingest.handle(event).await.unwrap();
    }

    let raw_offsets = h.app.lake.committed_offsets(TableKind::Raw).await.unwrap();
    let report = replay(&h, &failed).await;
    assert_eq!((report.records_already_applied, report.records_replayed), (0, 4), "{report:?}");
    // Three valid samples, each merged into its day, week and month.
    assert_eq!((report.raw_rows, report.error_rows, report.samples_aggregated), (3, 1, 9), "{report:?}");
    assert_eq!(report.backfill, None, "no window had closed");
    let seen = observe(&h.app).await; // asserts no row twice
    let offsets: BTreeSet<i64> =
        seen.raw.iter().map(|(_, o, _)| *o).chain(seen.errors.keys().map(|(_, o, _)| *o)).collect();
    assert_eq!(offsets, (0..=8).collect(), "every record in raw or errors");
    assert_eq!(seen.raw.len(), 8);
    assert_eq!(seen.errors.get(&(0, 4, Some("e".to_string()))).map(String::as_str), Some("out_of_range"));
    assert_accumulators_match_raw(&h.app).await;
    assert_eq!(h.app.lake.committed_offsets(TableKind::Raw).await.unwrap(), raw_offsets, "offset map unchanged");
    let raw = h.app.lake.table(TableKind::Raw).await.unwrap();
    let summary = &raw.metadata().current_snapshot().unwrap().summary().additional_properties;
    assert_eq!(summary.get(REPLAY_PROPERTY).map(String::as_str), Some("t-0:2-5"));

    // Replayed again: nothing changes.
    let accumulators = open_accumulators(&h.app).await;
    let again = replay(&h, &failed).await;
    assert_eq!((again.raw_rows, again.error_rows, again.samples_aggregated), (0, 0, 0), "{again:?}");
    assert_eq!(again.tables_already_replayed.len(), 2, "{again:?}");
    assert!(again.errors_by_type.is_empty(), "{again:?}");
    assert_same(&seen, &observe(&h.app).await);
    assert_eq!(accumulators, open_accumulators(&h.app).await);
    // And the stream redelivering a batch it had applied does not disturb it either.
    h.app.ingest.handle(&later[0]).await.unwrap();
    assert_same(&seen, &observe(&h.app).await);
    assert_eq!(accumulators, open_accumulators(&h.app).await);
}

async fn open_accumulators(app: &App) -> Vec<AccumulatorItem> {
    let mut items = vec![];
    for kind in WindowKind::ALL {
        items.extend(app.store.open_items(kind, DateTime::<Utc>::MAX_UTC).await.unwrap());
    }
    items
}

async fn replay(h: &Harness, event: &KafkaEvent) -> ReplayReport {
    h.app.replay.handle(event, false).await.unwrap()
}

/// A replay cut off after its merge, before any append (and one whose first append then failed):
/// the rerun re-merges nothing (its own fence) and appends once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_cut_off_after_its_merge_is_completed_by_the_rerun() {
    let h = harness(&[]).await;
    let at = |d: u32, hh: u32| -> DateTime<Utc> { format!("2025-10-{d:02}T{hh:02}:00:00Z").parse().unwrap() };
    let failed = heart_rate_batch(&[
        (0, "a", "u1", at(6, 10), 70.0),
        (1, "b", "u2", at(6, 11), 90.0),
        (2, "c", "u2", at(6, 12), -5.0), // an error row
    ]);
    h.app.ingest.handle(&heart_rate_batch(&[(3, "d", "u1", at(6, 13), 64.0)])).await.unwrap();
    let crashing = Arc::new(CrashingStore { inner: h.app.store.clone(), crash: Mutex::new(None) });
    let replayer = ReplayHandler::new(
        &h.app.settings,
        schema_source::from_settings(&h.app.settings.schema_registry).unwrap(),
        h.app.lake.clone(),
        crashing.clone(),
        h.clock.clone(),
    );
    *crashing.crash.lock().unwrap() = Some(CrashPoint::AfterMerge);
    let err = replayer.handle(&failed, false).await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert_eq!(h.app.lake.row_count(TableKind::Raw).await.unwrap(), 1, "nothing appended");

    let rerun = replayer.handle(&failed, false).await.unwrap();
    assert_eq!((rerun.samples_aggregated, rerun.raw_rows, rerun.error_rows), (0, 2, 1), "{rerun:?}");
    let seen = observe(&h.app).await;
    assert_eq!(seen.raw.len(), 3);
    assert_eq!(seen.errors.len(), 1);
    assert_accumulators_match_raw(&h.app).await;
    let again = replayer.handle(&failed, false).await.unwrap();
    assert_eq!((again.samples_aggregated, again.raw_rows, again.error_rows), (0, 0, 0), "{again:?}");
    assert_same(&seen, &observe(&h.app).await);
}

/// Samples of the replayed batch whose daily window had closed meanwhile: late rows, still
/// folded into the open week and month, and the report names the backfill that folds them into
/// the day; the dry run predicts the same and writes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_into_a_closed_window_makes_late_rows_and_names_the_backfill() {
    let h = harness(&[]).await;
    let at = |d: u32, hh: u32| -> DateTime<Utc> { format!("2025-10-{d:02}T{hh:02}:00:00Z").parse().unwrap() };
    let day6 = ("u1".to_string(), "heartRate".to_string(), "2025-10-06".parse::<NaiveDate>().unwrap());
    h.app.ingest.handle(&heart_rate_batch(&[(0, "a", "u1", at(6, 8), 60.0)])).await.unwrap();
    let failed = heart_rate_batch(&[(1, "b", "u1", at(6, 20), 100.0), (2, "c", "u1", at(8, 1), 70.0)]);
    // The stream moves on past the end of day 6 plus its lateness; finalize closes the day.
    h.app.ingest.handle(&heart_rate_batch(&[(3, "d", "u1", at(8, 12), 80.0)])).await.unwrap();
    h.app.finalize.handle(WindowKind::Daily).await.unwrap();
    assert_eq!(observe(&h.app).await.aggregates[&WindowKind::Daily][&day6][0], 1.0);

    let dry = h.app.replay.handle(&failed, true).await.unwrap();
    assert_eq!((dry.raw_rows, dry.error_rows, dry.samples_aggregated), (1, 1, 0), "{dry:?}");
    assert_eq!(h.app.lake.row_count(TableKind::Raw).await.unwrap(), 2, "a dry run writes nothing");
    let report = replay(&h, &failed).await;
    assert_eq!((report.raw_rows, report.error_rows), (1, 1), "{report:?}");
    assert_eq!(report.backfill, dry.backfill);
    let hint = report.backfill.expect("a closed window met");
    assert_eq!(hint.windows, vec!["daily#2025-10-06".to_string()]);
    assert_eq!(hint.command, "healthlake backfill --from 2025-10-06 --to 2025-10-07 --kind daily --include-late");
    let seen = observe(&h.app).await;
    assert_eq!(seen.errors.get(&(0, 1, Some("b".to_string()))).map(String::as_str), Some("late_record"));
    assert!(seen.raw.contains(&(0, 2, "c".to_string())));

    // The week took the late sample; closing it shows all four.
    h.app.ingest.handle(&heart_rate_batch(&[(4, "e", "u1", at(20, 12), 70.0)])).await.unwrap();
    h.app.finalize.handle(WindowKind::Weekly).await.unwrap();
    let week = observe(&h.app).await.aggregates[&WindowKind::Weekly][&day6];
    assert_eq!(week[0], 4.0);
    assert!(close(week[1], 310.0));
    // The backfill the report names folds it into the day.
    let request = BackfillRequest {
        from: hint.from.and_hms_opt(0, 0, 0).unwrap().and_utc(),
        to: hint.to.and_hms_opt(0, 0, 0).unwrap().and_utc(),
        window_kinds: hint.kinds.clone(),
        data_types: vec![],
        user_ids: vec![],
        include_late: true,
        dry_run: false,
        force: false,
    };
    h.app.backfill.handle(&request, quiet()).await.unwrap();
    let day = observe(&h.app).await.aggregates[&WindowKind::Daily][&day6];
    assert_eq!(day[0], 2.0);
    assert!(close(day[1], 160.0));
}

/// The last batch of a partition failed and went to the on-failure destination: the partition
/// holds the watermark (its records wait) until the replay applies them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_batch_releases_the_partition_it_held() {
    let h = harness(&[]).await;
    let at = |hh: u32| -> DateTime<Utc> { format!("2025-10-06T{hh:02}:00:00Z").parse().unwrap() };
    h.app.ingest.handle(&heart_rate_batch(&[(0, "a", "u1", at(8), 60.0)])).await.unwrap();
    let failed = heart_rate_batch(&[(1, "b", "u1", at(9), 62.0), (2, "c", "u1", at(10), 64.0)]);
    // What ingest notes before any effect of a batch; its attempts then failed.
    h.app.store.note_received(&[PartitionOffset { partition: "t-0".into(), offset: 2 }]).await.unwrap();
    assert!(h.app.store.partition_progress().await.unwrap().iter().all(|p| p.pending));

    let dry = h.app.replay.handle(&failed, true).await.unwrap();
    assert_eq!(dry.records_replayed, 2, "{dry:?}");
    assert!(h.app.store.partition_progress().await.unwrap().iter().all(|p| p.pending), "a dry run changes nothing");
    replay(&h, &failed).await;
    let progress = h.app.store.partition_progress().await.unwrap();
    assert!(progress.iter().all(|p| !p.pending), "{progress:?}");
}
