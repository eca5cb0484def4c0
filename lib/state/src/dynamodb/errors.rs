//! Request accounting and the mapping of SDK errors to [`StoreError`]: by the AWS error code
//! (see [`healthlake_core::classify_aws_error`]), never by the message.

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{BuildError, DisplayErrorContext, ProvideErrorMetadata, SdkError};
use healthlake_core::{ErrorClass, classify_aws_error};

use crate::StoreError;

/// Counts a request by operation (`dynamodb_requests{operation}`), so the calls a batch costs
/// show in the metrics next to the pipeline's own.
pub(super) fn count(operation: &'static str) {
    metrics::counter!("dynamodb_requests", "operation" => operation).increment(1);
}

/// A failed `operation`: retryable or permanent by the error code DynamoDB answered with; a
/// request that got no answer (timeout, connection) is retryable.
pub(super) fn request_failed<E>(operation: &'static str, e: SdkError<E, HttpResponse>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let message = DisplayErrorContext(&e).to_string();
    match &e {
        SdkError::ServiceError(service) => {
            let code = e.code().unwrap_or("unknown").to_string();
            let status = service.raw().status().as_u16();
            service_error(operation, code, Some(status), message)
        }
        // The request could not be built: a bug here, not the service's state.
        SdkError::ConstructionFailure(_) => {
            StoreError::Refused { operation, code: "ConstructionFailure".into(), message }
        }
        _ => StoreError::Unavailable(format!("{operation}: {message}")),
    }
}

/// An error DynamoDB reported by `code`, classified.
pub(super) fn service_error(operation: &'static str, code: String, status: Option<u16>, message: String) -> StoreError {
    match classify_aws_error(Some(&code), status) {
        ErrorClass::Retryable => StoreError::Transient { operation, code, message },
        ErrorClass::Permanent => StoreError::Refused { operation, code, message },
    }
}

/// A request that cannot be built (a required field missing): a bug, never retried.
pub(super) fn invalid_request(e: BuildError) -> StoreError {
    StoreError::Refused { operation: "build request", code: "BuildError".into(), message: e.to_string() }
}
