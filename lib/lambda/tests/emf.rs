//! What one process's EMF flushes contain across invocations: counters as the invocation's
//! delta, histograms only when recorded, the request id of each flush, nothing from a quiet
//! invocation. (One test: the recorder is process-global.)

use healthlake_lambda::EmfMetrics;
use serde_json::Value;

fn documents(text: &[u8]) -> Vec<Value> {
    std::str::from_utf8(text).unwrap().lines().map(|line| serde_json::from_str(line).unwrap()).collect()
}

fn value(documents: &[Value], metric: &str, label: Option<(&str, &str)>) -> Option<Value> {
    documents
        .iter()
        .find(|d| d.get(metric).is_some() && label.is_none_or(|(k, v)| d[k] == v))
        .map(|d| d[metric].clone())
}

#[test]
fn each_flush_holds_what_its_invocation_recorded() {
    let emf = EmfMetrics::install("healthlake-test", "healthlake-ingest").unwrap();

    metrics::counter!("ingest_records").increment(500);
    metrics::counter!("valid_records", "data_type" => "steps").increment(42);
    metrics::histogram!("record_timestamp_lag_seconds").record(1.5);
    let mut first = Vec::new();
    emf.flush_to("request-1", &mut first);
    let first = documents(&first);
    assert_eq!(value(&first, "ingest_records", None), Some(Value::from(500)));
    assert_eq!(value(&first, "valid_records", Some(("data_type", "steps"))), Some(Value::from(42)));
    assert_eq!(value(&first, "record_timestamp_lag_seconds", None), Some(serde_json::json!([1.5])));
    for doc in &first {
        assert_eq!(doc["requestId"], "request-1");
        assert_eq!(doc["function"], "healthlake-ingest");
        assert_eq!(doc["_aws"]["CloudWatchMetrics"][0]["Namespace"], "healthlake-test");
        let dimensions = doc["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0].as_array().unwrap();
        assert_eq!(dimensions[0], "function");
    }

    // The next invocation reports its own delta, and no lag it did not measure.
    metrics::counter!("ingest_records").increment(7);
    let mut second = Vec::new();
    emf.flush_to("request-2", &mut second);
    let second = documents(&second);
    assert_eq!(value(&second, "ingest_records", None), Some(Value::from(7)));
    assert_eq!(value(&second, "valid_records", None), None);
    assert_eq!(value(&second, "record_timestamp_lag_seconds", None), None);
    assert!(second.iter().all(|d| d["requestId"] == "request-2"));

    // A quiet invocation prints nothing.
    let mut third = Vec::new();
    emf.flush_to("request-3", &mut third);
    assert!(third.is_empty(), "{}", String::from_utf8_lossy(&third));
}
