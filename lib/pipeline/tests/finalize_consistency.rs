//! Finalize against a store whose index lags its items, as DynamoDB's GSI does (moto never shows
//! a stale index, so a wrapper of the real store plays it): what is emitted comes from the items
//! as they are, and an item whose version moved after it was read is not closed.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use healthlake_core::{Window, WindowKind};
use healthlake_lake::{Lakehouse, TableKind};
use healthlake_pipeline::Clock;
use healthlake_pipeline::config::Settings;
use healthlake_pipeline::finalize::FinalizeHandler;
use healthlake_state::{
    AccumulatorItem, AccumulatorKey, AccumulatorStore, AccumulatorUpdate, DynamoDbStore, MergeReport,
    PartitionContribution, PartitionOffset, PartitionProgress, SampleRef, SqliteStore, StoreError,
};
use healthlake_testkit::AwsEmulator;

/// A real store whose index (`open_items` as the old finalize read it, `open_keys`) answers from
/// a snapshot taken earlier, and whose consistent reads can be made to return an item's older
/// version once (a read that raced a merge).
struct LaggingStore {
    inner: Arc<dyn AccumulatorStore>,
    index: Mutex<Option<Vec<AccumulatorItem>>>,
    stale_reads: Mutex<HashMap<AccumulatorKey, AccumulatorItem>>,
}

impl LaggingStore {
    fn new(inner: Arc<dyn AccumulatorStore>) -> Self {
        Self { inner, index: Mutex::new(None), stale_reads: Mutex::new(HashMap::new()) }
    }

    /// From now on the index shows the open items as they are at this moment.
    async fn freeze_index(&self, kind: WindowKind, end: DateTime<Utc>) {
        *self.index.lock().unwrap() = Some(self.inner.open_items(kind, end).await.unwrap());
    }

    /// The next consistent read of `item`'s key returns `item` instead of the stored one.
    fn read_once_as(&self, item: AccumulatorItem) {
        self.stale_reads.lock().unwrap().insert(item.key.clone(), item);
    }

    fn frozen(&self, kind: WindowKind, end: DateTime<Utc>) -> Option<Vec<AccumulatorItem>> {
        let index = self.index.lock().unwrap().clone()?;
        Some(index.into_iter().filter(|i| i.key.window.kind == kind && i.key.window.end() <= end).collect())
    }
}

#[async_trait]
impl AccumulatorStore for LaggingStore {
    async fn merge(&self, updates: Vec<AccumulatorUpdate>) -> Result<MergeReport, StoreError> {
        self.inner.merge(updates).await
    }
    async fn advance_watermarks(&self, observations: &[PartitionProgress]) -> Result<(), StoreError> {
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
        match self.frozen(kind, end) {
            Some(items) => Ok(items.into_iter().map(|i| i.key).collect()),
            None => self.inner.open_keys(kind, end).await,
        }
    }
    async fn open_items(&self, kind: WindowKind, end: DateTime<Utc>) -> Result<Vec<AccumulatorItem>, StoreError> {
        match self.frozen(kind, end) {
            Some(items) => Ok(items),
            None => self.inner.open_items(kind, end).await,
        }
    }
    async fn read_items(&self, keys: &[AccumulatorKey]) -> Result<Vec<AccumulatorItem>, StoreError> {
        let mut items = self.inner.read_items(keys).await?;
        let mut stale = self.stale_reads.lock().unwrap();
        for item in &mut items {
            if let Some(older) = stale.remove(&item.key) {
                *item = older;
            }
        }
        Ok(items)
    }
    async fn mark_emitted(&self, emitted: &[(AccumulatorKey, i64)]) -> Result<(), StoreError> {
        self.inner.mark_emitted(emitted).await
    }
    async fn mark_closed(
        &self,
        closes: &[(AccumulatorKey, i64)],
        expires_at: DateTime<Utc>,
    ) -> Result<Vec<AccumulatorKey>, StoreError> {
        self.inner.mark_closed(closes, expires_at).await
    }
}

fn at(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

fn window_key(user: &str) -> AccumulatorKey {
    AccumulatorKey {
        user_id: user.into(),
        data_type: "heartRate".into(),
        window: Window::containing(WindowKind::Daily, at("2025-09-10T10:00:00Z")),
    }
}

fn sample(key: &AccumulatorKey, offset: i64, value: f64) -> AccumulatorUpdate {
    let mut c = PartitionContribution::default();
    c.add(SampleRef { partition: "t-0".into(), offset, index: 0 }, key.window.start() + Duration::hours(offset), value);
    AccumulatorUpdate { key: key.clone(), contributions: vec![("t-0".to_string(), c)] }
}

/// An embedded lake in `dir` and a finalize handler over `store`, with the clock three weeks past
/// the window and the only partition well past it, so the window is due to close.
async fn finalizer(dir: &std::path::Path, store: Arc<LaggingStore>) -> (Arc<Lakehouse>, FinalizeHandler) {
    let registry = format!("file://{}", dir.display());
    let env = healthlake_testkit::embedded_env(dir, &[("SCHEMA_REGISTRY_URL", &registry)]);
    let settings = Settings::from_map(&env).unwrap();
    let lake = Arc::new(Lakehouse::open(&settings.catalog).await.unwrap());
    let now = at("2025-10-01T00:00:00Z");
    let clock: Clock = Arc::new(move || now);
    let progress = PartitionProgress {
        partition: "t-0".into(),
        max_event_time: at("2025-09-20T00:00:00Z"),
        updated_at: now,
        pending: false,
    };
    store.advance_watermarks(&[progress]).await.unwrap();
    let handler = FinalizeHandler::new(settings, lake.clone(), store, clock);
    (lake, handler)
}

/// The `count` of each user's row in the daily aggregate table.
async fn emitted_counts(lake: &Lakehouse) -> BTreeMap<String, i64> {
    let mut counts = BTreeMap::new();
    for b in lake.scan(TableKind::Aggregate(WindowKind::Daily), &["user_id", "count"]).await.unwrap() {
        for i in 0..b.num_rows() {
            let user = b.column(0).as_string::<i32>().value(i).to_string();
            assert!(counts.insert(user, b.column(1).as_primitive::<Int64Type>().value(i)).is_none(), "a key twice");
        }
    }
    counts
}

/// Whether the item is closed, or gone (the embedded store drops closed items past their TTL at
/// once, and the test clock is in the past).
async fn closed(store: &LaggingStore, k: &AccumulatorKey) -> bool {
    let items = store.inner.read_items(std::slice::from_ref(k)).await.unwrap();
    let listed = store.inner.open_keys(k.window.kind, k.window.end()).await.unwrap().contains(k);
    items.iter().all(|i| i.closed) && !listed
}

/// A merge lands after the index last showed the item: finalize must emit (and close at) the
/// item as it is, not as the index showed it.
async fn a_lagging_index_does_not_hide_the_last_merge(inner: Arc<dyn AccumulatorStore>) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(LaggingStore::new(inner));
    let k = window_key("lagging-index");
    store.merge(vec![sample(&k, 1, 60.0)]).await.unwrap();
    store.freeze_index(WindowKind::Daily, k.window.end()).await;
    store.merge(vec![sample(&k, 2, 70.0)]).await.unwrap();
    let (lake, finalize) = finalizer(dir.path(), store.clone()).await;

    let report = finalize.handle(WindowKind::Daily).await.unwrap();
    assert_eq!(report.windows_closed, 1);
    assert_eq!(report.records_aggregated, 2);
    assert_eq!(emitted_counts(&lake).await, BTreeMap::from([("lagging-index".to_string(), 2)]));
    assert!(closed(&store, &k).await);
}

/// The item moves after finalize read it: finalize emits what it read but leaves the item open,
/// and the next round emits the newer statistics and closes it.
async fn a_version_moved_after_the_read_is_not_closed(inner: Arc<dyn AccumulatorStore>) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(LaggingStore::new(inner));
    let k = window_key("moved");
    store.merge(vec![sample(&k, 1, 60.0)]).await.unwrap();
    let read_before = store.read_items(std::slice::from_ref(&k)).await.unwrap().remove(0);
    store.merge(vec![sample(&k, 2, 70.0)]).await.unwrap();
    store.read_once_as(read_before);
    let (lake, finalize) = finalizer(dir.path(), store.clone()).await;

    let first = finalize.handle(WindowKind::Daily).await.unwrap();
    assert_eq!(first.windows_emitted, 1);
    assert_eq!((first.windows_closed, first.closes_deferred), (0, 1), "{first:?}");
    assert_eq!(emitted_counts(&lake).await, BTreeMap::from([("moved".to_string(), 1)]));
    assert!(!closed(&store, &k).await, "left open");

    let second = finalize.handle(WindowKind::Daily).await.unwrap();
    assert_eq!((second.windows_emitted, second.windows_closed, second.closes_deferred), (1, 1, 0), "{second:?}");
    assert_eq!(emitted_counts(&lake).await, BTreeMap::from([("moved".to_string(), 2)]));
    assert!(closed(&store, &k).await);
}

async fn sqlite() -> (tempfile::TempDir, Arc<dyn AccumulatorStore>) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open_dir(dir.path()).await.unwrap();
    (dir, Arc::new(store))
}

async fn dynamodb() -> (AwsEmulator, Arc<dyn AccumulatorStore>) {
    use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
    let moto = AwsEmulator::start();
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(&moto.url)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "tests"))
        .build();
    let store = DynamoDbStore::new(aws_sdk_dynamodb::Client::from_conf(config), "finalize-consistency", 4);
    store.create_table().await.unwrap();
    (moto, Arc::new(store))
}

#[tokio::test]
async fn sqlite_lagging_index() {
    let (_d, s) = sqlite().await;
    a_lagging_index_does_not_hide_the_last_merge(s).await;
}

#[tokio::test]
async fn sqlite_moved_version() {
    let (_d, s) = sqlite().await;
    a_version_moved_after_the_read_is_not_closed(s).await;
}

#[tokio::test]
async fn dynamodb_lagging_index() {
    let (_m, s) = dynamodb().await;
    a_lagging_index_does_not_hide_the_last_merge(s).await;
}

#[tokio::test]
async fn dynamodb_moved_version() {
    let (_m, s) = dynamodb().await;
    a_version_moved_after_the_read_is_not_closed(s).await;
}
