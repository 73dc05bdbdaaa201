//! What the DynamoDB and Kinesis adapters share: the SDK configuration, loaded once per
//! process (a Lambda cold start), and the rule that says which failures are worth a retry.
//!
//! The SDK's own retries are off: every call goes through the one retry policy of `retry`,
//! bounded by the request's deadline, so a request's total time is decided in one place.

use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::SdkConfig;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use tokio::sync::OnceCell;

use crate::retry::Failure;

/// Bounds connection establishment, so a dead endpoint fails fast and is retried.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Error codes that mean "try again": throttling (of a table, a shard or KMS), server faults,
/// and a write that met a DynamoDB transaction in progress on the same item. The last three
/// are the codes of a cancelled transaction's per-item reasons, which DynamoDB spells
/// without the `Exception` suffix.
const TRANSIENT_CODES: &[&str] = &[
    "ProvisionedThroughputExceededException",
    "KMSThrottlingException",
    "ThrottlingException",
    "RequestLimitExceeded",
    "InternalFailure",
    "InternalFailureException",
    "InternalServerError",
    "ServiceUnavailable",
    "TransactionConflictException",
    "TransactionConflict",
    "ThrottlingError",
    "ProvisionedThroughputExceeded",
];

static SHARED: OnceCell<SdkConfig> = OnceCell::const_new();

/// The process-wide SDK configuration, loaded on first use.
pub async fn shared_config() -> &'static SdkConfig {
    SHARED.get_or_init(load).await
}

/// Loads a fresh SDK configuration from the environment's standard sources: region,
/// credentials and `AWS_ENDPOINT_URL` (how tests and local runs point at an emulator).
pub async fn load() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .retry_config(RetryConfig::disabled())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(CONNECT_TIMEOUT)
                .build(),
        )
        .load()
        .await
}

/// Whether an error code is one of [`TRANSIENT_CODES`].
pub fn is_transient_code(code: &str) -> bool {
    TRANSIENT_CODES.contains(&code)
}

/// Whether a failed call may succeed if tried again: no answer at all (timeout, connection
/// failure, unreadable response), a 5xx, or a throttling or server-fault code.
pub fn is_transient<E: ProvideErrorMetadata>(error: &SdkError<E, HttpResponse>) -> bool {
    match error {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        SdkError::ServiceError(_) => {
            error
                .as_service_error()
                .and_then(ProvideErrorMetadata::code)
                .is_some_and(is_transient_code)
                || error
                    .raw_response()
                    .is_some_and(|response| response.status().is_server_error())
        }
        _ => false,
    }
}

/// Classifies an SDK failure for the retry policy.
pub fn failure<E: ProvideErrorMetadata>(
    error: SdkError<E, HttpResponse>,
) -> Failure<SdkError<E, HttpResponse>> {
    if is_transient(&error) {
        Failure::Transient(error)
    } else {
        Failure::Permanent(error)
    }
}
