//! Request accounting and the mapping of SDK errors to [`StoreError`].

use crate::StoreError;

/// Counts a request by operation (`dynamodb_requests{operation}`), so the calls a batch costs
/// show in the metrics next to the pipeline's own.
pub(super) fn count(operation: &'static str) {
    metrics::counter!("dynamodb_requests", "operation" => operation).increment(1);
}

pub(super) fn unavailable<E: std::fmt::Debug>(e: E) -> StoreError {
    StoreError::Unavailable(format!("{e:?}"))
}
