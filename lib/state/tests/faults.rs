//! The DynamoDB store under faults moto never produces: an interceptor on the client replaces
//! the answers to the first TransactWriteItems calls with a cancellation for a transaction
//! conflict, a throttling error, or an access denial.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::config::interceptors::{
    BeforeDeserializationInterceptorContextMut, BeforeTransmitInterceptorContextMut,
};
use aws_sdk_dynamodb::config::retry::RetryConfig;
use aws_sdk_dynamodb::config::{BehaviorVersion, ConfigBag, Credentials, Intercept, Region, RuntimeComponents};
use aws_sdk_dynamodb::error::BoxError;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_types::config_bag::{Storable, StoreReplace};
use chrono::{DateTime, Utc};
use healthlake_core::{Window, WindowKind};
use healthlake_state::{
    AccumulatorKey, AccumulatorStore, AccumulatorUpdate, DynamoDbStore, PartitionContribution, SampleRef, StoreError,
};
use healthlake_testkit::AwsEmulator;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};

/// The answer injected in place of DynamoDB's.
#[derive(Debug, Clone, Copy)]
enum Fault {
    /// TransactionCanceledException whose reasons name a TransactionConflict on the item.
    TransactionConflict,
    /// ThrottlingException (the SDK retries it itself first).
    Throttling,
    /// AccessDeniedException: a policy problem no retry fixes.
    AccessDenied,
}

impl Fault {
    fn body(self) -> String {
        match self {
            Fault::TransactionConflict => r#"{"__type":"com.amazonaws.dynamodb.v20120810#TransactionCanceledException","Message":"Transaction cancelled, please refer cancellation reasons for specific reasons [None, TransactionConflict]","CancellationReasons":[{"Code":"None"},{"Code":"TransactionConflict","Message":"Transaction is ongoing for the item"}]}"#.to_string(),
            Fault::Throttling => r#"{"__type":"com.amazonaws.dynamodb.v20120810#ThrottlingException","message":"Rate of requests exceeds the allowed throughput."}"#.to_string(),
            Fault::AccessDenied => r#"{"__type":"com.amazon.coral.service#AccessDeniedException","Message":"User is not authorized to perform: dynamodb:TransactWriteItems"}"#.to_string(),
        }
    }
}

/// Answers the first `faulty` TransactWriteItems calls with `fault` instead of DynamoDB's answer,
/// and records when every TransactWriteItems call was made. A faulty call never reaches the
/// emulator (it is turned into a ListTables there), so a "failed" write has no effect, as with
/// DynamoDB.
#[derive(Debug, Clone)]
struct FaultInjector {
    fault: Fault,
    faulty: usize,
    calls: Arc<AtomicUsize>,
    sent_at: Arc<Mutex<Vec<Instant>>>,
}

/// Marks an attempt whose answer is to be replaced (per operation, in its config bag).
#[derive(Debug, Clone)]
struct Injected;

impl Storable for Injected {
    type Storer = StoreReplace<Self>;
}

impl FaultInjector {
    fn new(fault: Fault, faulty: usize) -> Self {
        Self { fault, faulty, calls: Arc::default(), sent_at: Arc::default() }
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

impl Intercept for FaultInjector {
    fn name(&self) -> &'static str {
        "FaultInjector"
    }

    fn modify_before_signing(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if cfg.load::<Metadata>().map(Metadata::name) != Some("TransactWriteItems") {
            return Ok(());
        }
        self.sent_at.lock().unwrap().push(Instant::now());
        if self.calls.fetch_add(1, Ordering::SeqCst) < self.faulty {
            let request = context.request_mut();
            request.headers_mut().insert("x-amz-target", "DynamoDB_20120810.ListTables");
            request.headers_mut().insert("content-length", "2");
            *request.body_mut() = "{}".into();
            cfg.interceptor_state().store_put(Injected);
        } else {
            cfg.interceptor_state().unset::<Injected>();
        }
        Ok(())
    }

    fn modify_before_deserialization(
        &self,
        context: &mut BeforeDeserializationInterceptorContextMut<'_>,
        _: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if cfg.load::<Injected>().is_some() {
            let response = context.response_mut();
            *response.status_mut() = 400.try_into().unwrap();
            for header in ["content-length", "x-amz-crc32", "x-amzn-errortype"] {
                response.headers_mut().remove(header);
            }
            *response.body_mut() = self.fault.body().into();
        }
        Ok(())
    }
}

fn at(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

fn one_update(user: &str) -> AccumulatorUpdate {
    let key = AccumulatorKey {
        user_id: user.into(),
        data_type: "heartRate".into(),
        window: Window::containing(WindowKind::Daily, at("2025-11-17T10:00:00Z")),
    };
    let mut c = PartitionContribution::default();
    c.add(SampleRef { partition: "t-0".into(), offset: 1, index: 0 }, at("2025-11-17T10:00:00Z"), 60.0);
    AccumulatorUpdate { key, contributions: vec![("t-0".to_string(), c)] }
}

/// A store on its own moto whose client answers through `injector`. The SDK's own retries are
/// kept (as in production) but short, so a throttled test does not wait seconds.
async fn store_with(moto: &AwsEmulator, injector: FaultInjector) -> DynamoDbStore {
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(&moto.url)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "tests"))
        .retry_config(RetryConfig::standard().with_max_attempts(2).with_initial_backoff(Duration::from_millis(5)))
        .interceptor(injector)
        .build();
    let store = DynamoDbStore::new(aws_sdk_dynamodb::Client::from_conf(config), "faults", 4);
    store.create_table().await.unwrap();
    store
}

/// Runs `test` on a single-threaded runtime with a recorder of its own, so the metrics it reads
/// are this test's alone; returns the counters by name.
fn with_metrics(test: impl AsyncFnOnce()) -> BTreeMap<String, u64> {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(test())
    });
    let mut counters = BTreeMap::new();
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        if let DebugValue::Counter(n) = value {
            *counters.entry(key.key().name().to_string()).or_default() += n;
        }
    }
    counters
}

#[test]
fn transaction_conflicts_are_retried_with_backoff_and_counted() {
    let moto = AwsEmulator::start();
    // The batch's transaction and then two one-item attempts conflict; the third one lands.
    let injector = FaultInjector::new(Fault::TransactionConflict, 3);
    let counters = with_metrics(async || {
        let store = store_with(&moto, injector.clone()).await;
        let report = store.merge(vec![one_update("conflicted")]).await.unwrap();
        assert_eq!(report.samples_applied, 1);
        assert_eq!(report.items_written, 1);
        assert_eq!(report.conflicts_retried, 2, "both lost one-item attempts are retried conflicts");
        let open = store.open_items(WindowKind::Daily, at("2025-11-18T00:00:00Z")).await.unwrap();
        assert_eq!(open.len(), 1);
        assert_eq!(open[0].state.count, 1);
    });
    assert_eq!(injector.calls(), 4);
    assert_eq!(counters.get("dynamodb_conflicts_retried"), Some(&2), "{counters:?}");
    // Each retry after a conflict waited (jittered, at least the policy's first delay) instead of
    // going again at once.
    let sent = injector.sent_at.lock().unwrap().clone();
    for pair in sent[1..].windows(2) {
        let gap = pair[1] - pair[0];
        assert!(gap >= Duration::from_millis(5), "retried after {gap:?}");
    }
}

#[tokio::test]
async fn access_denied_fails_at_once_as_permanent() {
    let moto = AwsEmulator::start();
    let injector = FaultInjector::new(Fault::AccessDenied, usize::MAX);
    let store = store_with(&moto, injector.clone()).await;
    let error = store.merge(vec![one_update("denied")]).await.unwrap_err();
    assert!(!error.is_retryable(), "{error}");
    assert!(matches!(&error, StoreError::Refused { code, .. } if code == "AccessDeniedException"), "{error:?}");
    assert_eq!(injector.calls(), 1, "no retry: neither by the SDK nor by the store");
}

#[tokio::test]
async fn throttling_past_the_sdk_retries_fails_retryable() {
    let moto = AwsEmulator::start();
    let injector = FaultInjector::new(Fault::Throttling, usize::MAX);
    let store = store_with(&moto, injector.clone()).await;
    let error = store.merge(vec![one_update("throttled")]).await.unwrap_err();
    assert!(error.is_retryable(), "{error}");
    assert!(matches!(&error, StoreError::Transient { code, .. } if code == "ThrottlingException"), "{error:?}");
    assert_eq!(injector.calls(), 2, "the SDK's own two attempts, then the batch fails for redelivery");
}
