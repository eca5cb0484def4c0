//! What the Iceberg side retries and how: the backoff between commit attempts that lost a race,
//! and which failed requests are worth a redelivery of the batch.
//!
//! S3 errors reach us through iceberg-storage-opendal as `ErrorKind::Unexpected` whose source is
//! the `opendal::Error`; opendal derives its kind from the S3 error code and HTTP status, so a
//! denied request (403, AccessDenied) is `PermissionDenied` there and permanent here. Glue errors
//! from iceberg-catalog-glue 0.10.1 cannot be classified: it turns every SDK error into
//! `Unexpected` with only a formatted string as source (no code to read, and we do not read
//! messages), so they stay retryable; the Glue calls healthlake makes itself (the metadata swap)
//! are classified by their code.

use std::error::Error as _;
use std::time::Duration;

use backon::ExponentialBuilder;
use healthlake_core::ErrorClass;

/// The backoff between commit attempts that lost the race for the table's metadata: jittered, so
/// the partitions that collided do not collide again in step; `attempts` in all.
pub(crate) fn commit_backoff(attempts: u32) -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(50))
        .with_max_delay(Duration::from_millis(3_200))
        .with_factor(2.0)
        .with_max_times(attempts.saturating_sub(1) as usize)
        .with_jitter()
}

/// The class of an error of the iceberg crate: by the storage error under it where there is one,
/// else by the crate's own kind.
pub(crate) fn iceberg_error_class(e: &iceberg::Error) -> ErrorClass {
    let mut source = e.source();
    while let Some(cause) = source {
        if let Some(storage) = cause.downcast_ref::<opendal::Error>() {
            return storage_error_class(storage);
        }
        source = cause.source();
    }
    let retryable = e.retryable()
        || matches!(e.kind(), iceberg::ErrorKind::CatalogCommitConflicts | iceberg::ErrorKind::Unexpected);
    if retryable { ErrorClass::Retryable } else { ErrorClass::Permanent }
}

/// opendal's kinds, which its S3 service derives from the error code and status.
fn storage_error_class(e: &opendal::Error) -> ErrorClass {
    use opendal::ErrorKind as K;
    match e.kind() {
        _ if e.is_temporary() => ErrorClass::Retryable,
        K::PermissionDenied | K::ConfigInvalid | K::Unsupported | K::IsADirectory | K::NotADirectory => {
            ErrorClass::Permanent
        }
        // A file missing or a condition lost is a concurrent writer or maintenance: the batch's
        // next delivery reads the newer table.
        _ => ErrorClass::Retryable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shape iceberg-storage-opendal gives a failed S3 request.
    fn from_storage(kind: opendal::ErrorKind) -> iceberg::Error {
        iceberg::Error::new(iceberg::ErrorKind::Unexpected, "Failure in doing io operation")
            .with_source(opendal::Error::new(kind, "S3 answered"))
    }

    #[test]
    fn a_denied_storage_request_is_permanent() {
        assert_eq!(iceberg_error_class(&from_storage(opendal::ErrorKind::PermissionDenied)), ErrorClass::Permanent);
        assert!(!crate::LakeError::Iceberg(from_storage(opendal::ErrorKind::PermissionDenied)).is_retryable());
    }

    #[test]
    fn throttled_and_unexpected_storage_requests_retry() {
        assert_eq!(iceberg_error_class(&from_storage(opendal::ErrorKind::RateLimited)), ErrorClass::Retryable);
        let temporary = iceberg::Error::new(iceberg::ErrorKind::Unexpected, "io")
            .with_source(opendal::Error::new(opendal::ErrorKind::Unexpected, "503").set_temporary());
        assert_eq!(iceberg_error_class(&temporary), ErrorClass::Retryable);
        // A catalog error with no typed cause (iceberg-catalog-glue's) keeps retrying.
        let glue = iceberg::Error::new(iceberg::ErrorKind::Unexpected, "Operation failed for hitting aws sdk error");
        assert_eq!(iceberg_error_class(&glue), ErrorClass::Retryable);
        let invalid = iceberg::Error::new(iceberg::ErrorKind::DataInvalid, "bad");
        assert_eq!(iceberg_error_class(&invalid), ErrorClass::Permanent);
    }
}
