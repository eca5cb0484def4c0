//! The accumulator-store contract. Each check takes any `AccumulatorStore`; the embedded SQLite
//! store runs it here, and every other adapter must pass the same checks.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use healthlake_core::{Window, WindowKind};
use healthlake_state::{
    AccumulatorKey, AccumulatorStore, AccumulatorUpdate, DynamoDbStore, PartitionContribution, PartitionOffset,
    PartitionProgress, SampleRef, SqliteStore,
};
use healthlake_testkit::AwsEmulator;

fn at(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

fn key(user: &str, kind: WindowKind, ts: &str) -> AccumulatorKey {
    AccumulatorKey { user_id: user.into(), data_type: "heartRate".into(), window: Window::containing(kind, at(ts)) }
}

fn update(key: &AccumulatorKey, partition: &str, samples: &[(i64, &str, f64)]) -> AccumulatorUpdate {
    let mut c = PartitionContribution::default();
    for (i, (offset, ts, v)) in samples.iter().enumerate() {
        c.add(SampleRef { partition: partition.into(), offset: *offset, index: i as u32 }, at(ts), *v);
    }
    AccumulatorUpdate { key: key.clone(), contributions: vec![(partition.to_string(), c)] }
}

async fn item(store: &dyn AccumulatorStore, key: &AccumulatorKey) -> Option<healthlake_state::AccumulatorItem> {
    store.open_items(key.window.kind, key.window.end()).await.unwrap().into_iter().find(|i| &i.key == key)
}

async fn fences_skip_what_was_applied(store: &dyn AccumulatorStore) {
    let k = key("fence", WindowKind::Daily, "2025-11-17T10:00:00Z");
    let first = update(&k, "t-0", &[(10, "2025-11-17T10:00:00Z", 60.0), (11, "2025-11-17T11:00:00Z", 70.0)]);
    let r = store.merge(vec![first.clone()]).await.unwrap();
    assert_eq!(r.samples_applied, 2);
    // Same batch again: nothing applied.
    let r = store.merge(vec![first]).await.unwrap();
    assert_eq!(r.samples_applied, 0);
    // Regrouped: straddles the fence; only offset 12 is new.
    let regrouped = update(&k, "t-0", &[(11, "2025-11-17T11:00:00Z", 70.0), (12, "2025-11-17T12:00:00Z", 80.0)]);
    let r = store.merge(vec![regrouped]).await.unwrap();
    assert_eq!(r.samples_applied, 1);
    // Another partition has its own fence.
    let other = update(&k, "t-1", &[(3, "2025-11-17T13:00:00Z", 90.0)]);
    store.merge(vec![other]).await.unwrap();
    let stored = item(store, &k).await.unwrap();
    assert_eq!(stored.state.count, 4);
    assert_eq!(stored.state.sum, 300.0);
    assert_eq!(stored.fences, BTreeMap::from([("t-0".to_string(), 12), ("t-1".to_string(), 3)]));
}

async fn closed_windows_refuse_and_report_late_samples(store: &dyn AccumulatorStore) {
    let k = key("late", WindowKind::Daily, "2025-10-01T10:00:00Z");
    store.merge(vec![update(&k, "t-0", &[(1, "2025-10-01T10:00:00Z", 60.0)])]).await.unwrap();
    let marker = store.advance_close_marker(WindowKind::Daily, at("2025-10-02T00:00:00Z")).await.unwrap();
    assert_eq!(marker, Some(at("2025-10-02T00:00:00Z")));
    // The marker never moves back.
    let marker = store.advance_close_marker(WindowKind::Daily, at("2025-09-01T00:00:00Z")).await.unwrap();
    assert_eq!(marker, Some(at("2025-10-02T00:00:00Z")));
    let r = store
        .merge(vec![update(&k, "t-0", &[(1, "2025-10-01T10:00:00Z", 60.0), (2, "2025-10-01T12:00:00Z", 61.0)])])
        .await
        .unwrap();
    // Offset 1 was applied before closing: not late. Offset 2 is.
    assert_eq!(r.late.len(), 1);
    assert_eq!(r.late[0].1.offset, 2);
    assert_eq!(r.samples_applied, 0);
    // A window with no item yet, behind the marker, is closed too.
    let fresh = key("late2", WindowKind::Daily, "2025-10-01T10:00:00Z");
    let r = store.merge(vec![update(&fresh, "t-0", &[(5, "2025-10-01T10:00:00Z", 1.0)])]).await.unwrap();
    assert_eq!(r.late.len(), 1);
    // Weekly is not affected by the daily marker.
    let week = key("late", WindowKind::Weekly, "2025-10-01T10:00:00Z");
    let r = store.merge(vec![update(&week, "t-0", &[(2, "2025-10-01T12:00:00Z", 61.0)])]).await.unwrap();
    assert_eq!(r.samples_applied, 1);
    // mark_closed closes an item even ahead of the marker.
    let later = key("late", WindowKind::Daily, "2025-10-05T10:00:00Z");
    store.merge(vec![update(&later, "t-0", &[(7, "2025-10-05T10:00:00Z", 1.0)])]).await.unwrap();
    let version = item(store, &later).await.unwrap().version;
    let moved = store.mark_closed(&[(later.clone(), version)], Utc::now() + Duration::days(7)).await.unwrap();
    assert!(moved.is_empty());
    let r = store.merge(vec![update(&later, "t-0", &[(8, "2025-10-05T11:00:00Z", 1.0)])]).await.unwrap();
    assert_eq!(r.late.len(), 1);
    assert!(item(store, &later).await.is_none(), "closed items are not open");
}

/// A contribution whose merge would overflow the window's statistics is refused whole and
/// reported; the window keeps its state and fence, and the stored state still reads back.
async fn overflowing_merges_are_refused(store: &dyn AccumulatorStore) {
    let k = key("poison", WindowKind::Daily, "2025-11-17T10:00:00Z");
    // 1e154 squared is near the top of f64: any much larger value overflows the squared deviations.
    store.merge(vec![update(&k, "t-0", &[(1, "2025-11-17T10:00:00Z", 1e154)])]).await.unwrap();
    let r = store
        .merge(vec![update(&k, "t-0", &[(2, "2025-11-17T11:00:00Z", 1e200), (3, "2025-11-17T12:00:00Z", 1.0)])])
        .await
        .unwrap();
    let refused: Vec<i64> = r.overflowing.iter().map(|(_, s)| s.offset).collect();
    assert_eq!(refused, vec![2, 3]);
    assert_eq!(r.samples_applied, 0);
    // Another partition's finite contribution in the same update still lands.
    let mixed = AccumulatorUpdate {
        key: k.clone(),
        contributions: [
            update(&k, "t-0", &[(4, "2025-11-17T13:00:00Z", f64::MAX)]).contributions,
            update(&k, "t-1", &[(1, "2025-11-17T13:00:00Z", 5.0)]).contributions,
        ]
        .into_iter()
        .flatten()
        .collect(),
    };
    let r = store.merge(vec![mixed]).await.unwrap();
    assert_eq!(r.overflowing.len(), 1);
    assert_eq!(r.samples_applied, 1);
    let stored = item(store, &k).await.expect("the item still reads back");
    assert_eq!(stored.state.count, 2);
    assert_eq!(stored.state.max, 1e154);
    assert!(stored.state.is_finite());
    assert_eq!(stored.fences, BTreeMap::from([("t-0".to_string(), 1), ("t-1".to_string(), 1)]));
}

async fn concurrent_writers_lose_nothing(store: Arc<dyn AccumulatorStore>, merges_per_task: i64) {
    let k = key("hot", WindowKind::Monthly, "2025-11-17T10:00:00Z");
    let mut tasks = Vec::new();
    for task in 0..8 {
        let store = store.clone();
        let k = k.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..merges_per_task {
                let u = update(&k, &format!("t-{task}"), &[(i, "2025-11-17T10:00:00Z", 1.0)]);
                store.merge(vec![u]).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let stored = item(store.as_ref(), &k).await.unwrap();
    let total = 8 * merges_per_task;
    assert_eq!(stored.state.count as i64, total);
    assert_eq!(stored.state.sum, total as f64);
    assert_eq!(stored.version, total);
    assert!(stored.fences.values().all(|f| *f == merges_per_task - 1));
}

async fn watermarks_only_advance(store: &dyn AccumulatorStore) {
    let p = |max: &str, upd: &str| PartitionProgress {
        partition: "t-9".into(),
        max_event_time: at(max),
        updated_at: at(upd),
        pending: false,
    };
    store.advance_watermarks(&[p("2025-11-17T10:00:00Z", "2025-11-20T00:00:00Z")]).await.unwrap();
    store.advance_watermarks(&[p("2025-11-16T10:00:00Z", "2025-11-21T00:00:00Z")]).await.unwrap();
    let progress = |partition: &'static str| async move {
        store.partition_progress().await.unwrap().into_iter().find(|x| x.partition == partition).unwrap()
    };
    let got = progress("t-9").await;
    assert_eq!(got.max_event_time, at("2025-11-17T10:00:00Z"));
    assert_eq!(got.updated_at, at("2025-11-21T00:00:00Z"));
    assert!(!got.pending);

    // Received offsets above the applied ones are pending; both only move forward.
    let offsets = |partition: &str, offset: i64| [PartitionOffset { partition: partition.into(), offset }];
    store.note_received(&offsets("t-9", 40)).await.unwrap();
    assert!(progress("t-9").await.pending);
    store.note_applied(&offsets("t-9", 40)).await.unwrap();
    store.note_received(&offsets("t-9", 30)).await.unwrap();
    store.note_applied(&offsets("t-9", 20)).await.unwrap();
    let got = progress("t-9").await;
    assert!(!got.pending, "{got:?}");
    assert_eq!(got.max_event_time, at("2025-11-17T10:00:00Z"), "offsets leave the event time alone");
    // The end of a batch moves both at once.
    store.note_received(&offsets("t-9", 50)).await.unwrap();
    store.finish_batch(&[p("2025-11-18T10:00:00Z", "2025-11-22T00:00:00Z")], &offsets("t-9", 50)).await.unwrap();
    let got = progress("t-9").await;
    assert!(!got.pending, "{got:?}");
    assert_eq!(got.max_event_time, at("2025-11-18T10:00:00Z"));
    // A partition whose very first batch failed: known, pending, at the start of time.
    store.note_received(&offsets("t-8", 5)).await.unwrap();
    let got = progress("t-8").await;
    assert!(got.pending);
    assert_eq!(got.max_event_time, DateTime::UNIX_EPOCH);
}

async fn emission_is_tracked_per_version(store: &dyn AccumulatorStore) {
    let k = key("emit", WindowKind::Daily, "2025-11-10T10:00:00Z");
    store.merge(vec![update(&k, "t-0", &[(1, "2025-11-10T10:00:00Z", 60.0)])]).await.unwrap();
    let first = item(store, &k).await.unwrap();
    assert!(first.changed_since_emitted(), "never emitted");
    store.mark_emitted(&[(k.clone(), first.version)]).await.unwrap();
    let marked = item(store, &k).await.unwrap();
    assert_eq!(marked.emitted_version, first.version);
    assert_eq!(marked.version, first.version, "marking does not move the version");
    assert!(!marked.changed_since_emitted());
    // A late sample within lateness changes the window: it is due again.
    store.merge(vec![update(&k, "t-0", &[(2, "2025-11-10T11:00:00Z", 70.0)])]).await.unwrap();
    let changed = item(store, &k).await.unwrap();
    assert!(changed.changed_since_emitted());
    assert_eq!(changed.emitted_version, first.version, "merges keep the emitted version");
    // Marks never move back.
    store.mark_emitted(&[(k.clone(), changed.version)]).await.unwrap();
    store.mark_emitted(&[(k.clone(), first.version)]).await.unwrap();
    assert_eq!(item(store, &k).await.unwrap().emitted_version, changed.version);
}

async fn closing_is_conditional_on_the_version_emitted(store: &dyn AccumulatorStore) {
    let k = key("close-at", WindowKind::Daily, "2025-09-10T10:00:00Z");
    store.merge(vec![update(&k, "t-0", &[(1, "2025-09-10T10:00:00Z", 60.0)])]).await.unwrap();
    let emitted = item(store, &k).await.unwrap();
    // A merge lands after finalize read (and emitted) the item.
    store.merge(vec![update(&k, "t-0", &[(2, "2025-09-10T11:00:00Z", 70.0)])]).await.unwrap();
    let expires = Utc::now() + Duration::days(7);
    let moved = store.mark_closed(&[(k.clone(), emitted.version)], expires).await.unwrap();
    assert_eq!(moved, vec![k.clone()], "the version moved: not closed");
    let fresh = item(store, &k).await.expect("still open");
    assert_eq!(fresh.state.count, 2);
    assert_eq!(store.read_items(std::slice::from_ref(&k)).await.unwrap(), vec![fresh.clone()]);
    // At the version read now it closes; closing it again (another finalizer) is no move.
    assert!(store.mark_closed(&[(k.clone(), fresh.version)], expires).await.unwrap().is_empty());
    assert!(store.mark_closed(&[(k.clone(), fresh.version)], expires).await.unwrap().is_empty());
    assert!(item(store, &k).await.is_none());
    assert!(store.read_items(std::slice::from_ref(&k)).await.unwrap()[0].closed);
    assert!(!store.open_keys(WindowKind::Daily, k.window.end()).await.unwrap().contains(&k));
    // An item that is gone (expired) counts as closed.
    let gone = key("never-written", WindowKind::Daily, "2025-09-10T10:00:00Z");
    assert!(store.mark_closed(&[(gone.clone(), 3)], expires).await.unwrap().is_empty());
    assert!(store.read_items(&[gone]).await.unwrap().is_empty());
}

async fn sqlite() -> (tempfile::TempDir, Arc<dyn AccumulatorStore>) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open_dir(dir.path()).await.unwrap();
    (dir, Arc::new(store))
}

#[tokio::test]
async fn sqlite_fences() {
    let (_d, s) = sqlite().await;
    fences_skip_what_was_applied(s.as_ref()).await;
}

#[tokio::test]
async fn sqlite_closed_windows() {
    let (_d, s) = sqlite().await;
    closed_windows_refuse_and_report_late_samples(s.as_ref()).await;
}

#[tokio::test]
async fn sqlite_overflowing_merges() {
    let (_d, s) = sqlite().await;
    overflowing_merges_are_refused(s.as_ref()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_concurrent_writers() {
    let (_d, s) = sqlite().await;
    concurrent_writers_lose_nothing(s, 1_000).await;
}

#[tokio::test]
async fn sqlite_emission() {
    let (_d, s) = sqlite().await;
    emission_is_tracked_per_version(s.as_ref()).await;
}

#[tokio::test]
async fn sqlite_conditional_close() {
    let (_d, s) = sqlite().await;
    closing_is_conditional_on_the_version_emitted(s.as_ref()).await;
}

#[tokio::test]
async fn sqlite_watermarks() {
    let (_d, s) = sqlite().await;
    watermarks_only_advance(s.as_ref()).await;
}

async fn dynamodb(shards: u32) -> (AwsEmulator, Arc<dyn AccumulatorStore>) {
    use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
    let moto = AwsEmulator::start();
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(&moto.url)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "tests"))
        .build();
    let store = DynamoDbStore::new(aws_sdk_dynamodb::Client::from_conf(config), "healthlake-accumulators", shards);
    store.create_table().await.unwrap();
    (moto, Arc::new(store))
}

#[tokio::test]
async fn dynamodb_fences() {
    let (_m, s) = dynamodb(4).await;
    fences_skip_what_was_applied(s.as_ref()).await;
}

#[tokio::test]
async fn dynamodb_closed_windows() {
    let (_m, s) = dynamodb(4).await;
    closed_windows_refuse_and_report_late_samples(s.as_ref()).await;
}

#[tokio::test]
async fn dynamodb_overflowing_merges() {
    let (_m, s) = dynamodb(4).await;
    overflowing_merges_are_refused(s.as_ref()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dynamodb_concurrent_writers() {
    let (_m, s) = dynamodb(4).await;
    // moto serves one call at a time (~13 s for 8 × 50 contended merges here), so CI runs 50 per
    // task; HEALTHLAKE_CONTRACT_MERGES=1000 runs the full 8 × 1,000.
    let merges = std::env::var("HEALTHLAKE_CONTRACT_MERGES").ok().and_then(|v| v.parse().ok()).unwrap_or(50);
    concurrent_writers_lose_nothing(s, merges).await;
}

#[tokio::test]
async fn dynamodb_emission() {
    let (_m, s) = dynamodb(4).await;
    emission_is_tracked_per_version(s.as_ref()).await;
}

#[tokio::test]
async fn dynamodb_conditional_close() {
    let (_m, s) = dynamodb(4).await;
    closing_is_conditional_on_the_version_emitted(s.as_ref()).await;
}

#[tokio::test]
async fn dynamodb_watermarks() {
    let (_m, s) = dynamodb(4).await;
    watermarks_only_advance(s.as_ref()).await;
}

#[tokio::test]
async fn dynamodb_finalizer_queries_every_shard() {
    let (_m, s) = dynamodb(8).await;
    let updates: Vec<AccumulatorUpdate> = (0..40)
        .map(|u| {
            update(
                &key(&format!("user-{u}"), WindowKind::Daily, "2025-11-17T10:00:00Z"),
                "t-0",
                &[(u, "2025-11-17T10:00:00Z", 1.0)],
            )
        })
        .collect();
    let report = s.merge(updates).await.unwrap();
    assert_eq!(report.items_written, 40);
    let open = s.open_items(WindowKind::Daily, at("2025-11-18T00:00:00Z")).await.unwrap();
    assert_eq!(open.len(), 40);
    assert!(s.open_items(WindowKind::Daily, at("2025-11-17T23:59:59Z")).await.unwrap().is_empty());
}
