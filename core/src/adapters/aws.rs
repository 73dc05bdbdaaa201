//! The AWS SDK configuration shared by the DynamoDB and Kinesis adapters.
//!
//! Loaded once per process (a Lambda cold start) from the SDK's standard sources: region,
//! credentials and `AWS_ENDPOINT_URL` (how tests and local runs point at an emulator).

use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::SdkConfig;
use aws_config::timeout::TimeoutConfig;
use tokio::sync::OnceCell;

/// Bounds every AWS call, so a dead endpoint ends in a 503 well inside API Gateway's 30 s.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// One HTTP attempt of one AWS call.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(4);

static SHARED: OnceCell<SdkConfig> = OnceCell::const_new();

/// The process-wide SDK configuration, loaded on first use.
pub async fn shared_config() -> &'static SdkConfig {
    SHARED.get_or_init(load).await
}

/// Loads a fresh SDK configuration from the environment (tests that need their own clients).
pub async fn load() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(CONNECT_TIMEOUT)
                .operation_attempt_timeout(ATTEMPT_TIMEOUT)
                .build(),
        )
        .load()
        .await
}
