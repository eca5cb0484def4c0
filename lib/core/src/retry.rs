//! Which failed AWS requests are worth retrying, decided by the error code the service returned
//! (and by the HTTP status when it sent no code), never by message text. The DynamoDB, S3 and
//! Glue adapters share this table so that every path draws the line in the same place.

/// What a retry can do about a failed request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Throttling, a conflict with a concurrent writer, a fault on the service's side, a lost
    /// connection: the same request may pass later.
    Retryable,
    /// Access denied, an invalid request, a missing table, bucket or database: every retry fails
    /// the same way until someone changes the deployment.
    Permanent,
}

impl ErrorClass {
    pub fn is_retryable(self) -> bool {
        self == ErrorClass::Retryable
    }
}

/// Codes a retry cannot help with: credentials and policies, malformed requests, missing
/// resources (DynamoDB, Glue, S3 and STS spellings).
const PERMANENT: &[&str] = &[
    "AccessDenied",
    "AccessDeniedException",
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "InvalidSignatureException",
    "SignatureDoesNotMatch",
    "IncompleteSignature",
    "MissingAuthenticationToken",
    "MissingAuthenticationTokenException",
    "NotAuthorized",
    "AuthorizationHeaderMalformed",
    "ValidationException",
    "ValidationError",
    "SerializationException",
    "InvalidParameterValue",
    "InvalidParameterCombination",
    "InvalidInputException",
    "InvalidRequest",
    "InvalidBucketName",
    "ResourceNotFoundException",
    "EntityNotFoundException",
    "NoSuchBucket",
    "NoSuchKey",
    "ItemCollectionSizeLimitExceededException",
];

/// Codes that pass on a later attempt: throttling, conflicts with concurrent writers, faults on
/// the service's side, credentials that a fresh attempt renews.
const RETRYABLE: &[&str] = &[
    "ThrottlingException",
    "Throttling",
    "ThrottledException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "ProvisionedThroughputExceededException",
    "RequestThrottled",
    "RequestThrottledException",
    "SlowDown",
    "LimitExceededException",
    "TransactionConflictException",
    "TransactionInProgressException",
    "TransactionCanceledException",
    "ConditionalCheckFailedException",
    "ConcurrentModificationException",
    "PreconditionFailed",
    "OperationAborted",
    "InternalServerError",
    "InternalFailure",
    "InternalError",
    "InternalServiceException",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "RequestTimeout",
    "RequestTimeoutException",
    "ExpiredToken",
    "ExpiredTokenException",
    "RequestExpired",
];

/// Classifies a failed request by its AWS error `code`; a code neither list knows falls back on
/// the HTTP status (5xx and 429 retry, other 4xx do not), and no status at all (the request never
/// got an answer) retries.
pub fn classify_aws_error(code: Option<&str>, http_status: Option<u16>) -> ErrorClass {
    match code {
        Some(code) if PERMANENT.contains(&code) => ErrorClass::Permanent,
        Some(code) if RETRYABLE.contains(&code) => ErrorClass::Retryable,
        _ => match http_status {
            Some(429) => ErrorClass::Retryable,
            Some(status) if (400..500).contains(&status) => ErrorClass::Permanent,
            _ => ErrorClass::Retryable,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_decide_before_the_status() {
        assert_eq!(classify_aws_error(Some("AccessDeniedException"), Some(400)), ErrorClass::Permanent);
        assert_eq!(classify_aws_error(Some("AccessDenied"), Some(403)), ErrorClass::Permanent);
        assert_eq!(classify_aws_error(Some("ResourceNotFoundException"), Some(400)), ErrorClass::Permanent);
        assert_eq!(classify_aws_error(Some("ValidationException"), Some(400)), ErrorClass::Permanent);
        // DynamoDB answers throttling and transaction conflicts with 400.
        assert_eq!(classify_aws_error(Some("ThrottlingException"), Some(400)), ErrorClass::Retryable);
        assert_eq!(classify_aws_error(Some("TransactionConflictException"), Some(400)), ErrorClass::Retryable);
        assert_eq!(classify_aws_error(Some("ConcurrentModificationException"), Some(400)), ErrorClass::Retryable);
        assert_eq!(classify_aws_error(Some("SlowDown"), Some(503)), ErrorClass::Retryable);
    }

    #[test]
    fn unknown_codes_fall_back_on_the_status() {
        assert_eq!(classify_aws_error(Some("SomethingNew"), Some(500)), ErrorClass::Retryable);
        assert_eq!(classify_aws_error(Some("SomethingNew"), Some(429)), ErrorClass::Retryable);
        assert_eq!(classify_aws_error(Some("SomethingNew"), Some(400)), ErrorClass::Permanent);
        assert_eq!(classify_aws_error(None, Some(403)), ErrorClass::Permanent);
        assert_eq!(classify_aws_error(None, Some(502)), ErrorClass::Retryable);
        assert_eq!(classify_aws_error(None, None), ErrorClass::Retryable);
    }
}
