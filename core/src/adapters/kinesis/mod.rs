//! Kinesis event stream (feature `aws`): the production [`EventStream`] ([`publish`]) and its
//! [`EventSource`](crate::ports::EventSource) for `listen` ([`source`]).
//!
//! One stream carries every pair. Each record's data is the CloudEvents structured JSON of
//! API.md and its partition key the event id, so load spreads over every shard. An event is
//! acknowledged only with a sequence number in hand. Throttling and server errors are retried
//! by the one retry policy (`retry`) until the request's deadline. What the failure is then
//! called depends on whether any attempt for the record may have reached Kinesis
//! (`may_have_stored`): if none can have (every attempt refused, or never sent),
//! `StreamError::Unavailable` → 503 `service_unavailable`; if one may have (sent, and its answer
//! lost or cut off), `StreamError::Unconfirmed` → 503 `publish_unconfirmed`. A retry after a
//! lost response can store a record twice: consumers deduplicate by `id`.

mod publish;
mod source;

use std::error::Error;
use std::time::Duration;

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_config::retry::RetryConfig;
use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::client::Waiters;
use aws_sdk_kinesis::config::http::HttpResponse;
use aws_sdk_kinesis::error::SdkError;
use aws_sdk_kinesis::operation::create_stream::CreateStreamError;
use aws_sdk_kinesis::types::{StreamMode, StreamModeDetails};

use super::aws;
use crate::envelope::Envelope;
use crate::error::cause;
use crate::ports::{EventStream, StreamError};
use crate::retry::{Deadline, RetryPolicy};

pub use publish::{MAX_BATCH_BYTES, MAX_BATCH_RECORDS, MAX_RECORD_BYTES};

/// How long `setup` waits for a new stream to become ACTIVE.
const SETUP_TIMEOUT: Duration = Duration::from_secs(300);

fn unavailable(error: impl std::error::Error + Send + Sync + 'static) -> StreamError {
    StreamError::Unavailable(cause(error))
}

/// Whether a failed call may have stored its record(s), from what the SDK says of how far the
/// request got (aws-smithy-runtime-api's `SdkError` documents each variant):
///
/// - `ConstructionFailure`: "It was not dispatched over the network." Not stored.
/// - `TimeoutError`: "The request MAY have been sent and received." Maybe stored.
/// - `DispatchFailure`: "An HTTP response was not received. The request MAY have been sent."
///   Maybe stored, unless the failure shows the request never left: see [`never_sent`].
/// - `ResponseError`: a response came but could not be read (the server hung up mid-answer):
///   Kinesis had the request, so maybe stored.
/// - `ServiceError`: Kinesis answered. A 4xx (throttling, validation, access) is a refusal:
///   nothing was stored. A 5xx is an unknown failure inside the service, or a gateway in
///   front of it that lost the backend's answer (502/504): maybe stored.
fn may_have_stored<E>(error: &SdkError<E, HttpResponse>) -> bool {
    match error {
        SdkError::ConstructionFailure(_) => false,
        SdkError::DispatchFailure(failure) => {
            !(failure.is_user() || failure.as_connector_error().is_some_and(never_sent))
        }
        SdkError::ServiceError(_) => error
            .raw_response()
            .is_none_or(|response| response.status().is_server_error()),
        // TimeoutError, ResponseError, and whatever a later SDK adds: unknown is ambiguous.
        _ => true,
    }
}

/// Whether a connector failure happened before any byte of the request was written: the
/// connection could not be made (refused, unreachable, DNS, TLS, the connect timeout), or
/// hyper handed the request back unsent. A connection that failed after it was made (reset,
/// closed before the answer, read timeout) may have carried the whole request, so it is not
/// one of these.
///
/// The SDK's own kinds do not tell: `ConnectorError::is_io` covers "connection refused" and
/// "reset after the request was written" alike, and `is_timeout` any phase. So this reads
/// the source chain: an `io::Error` of a kind only `connect(2)` returns; or hyper-util's
/// client error of kind `Connect` or `Canceled` (a request handed back unsent), which this
/// crate cannot name (hyper-util is not a direct dependency) and recognizes by its display,
/// `client error (Connect)` / `client error (Canceled)`. Should that text change, such
/// failures count as maybe stored: the safe side (a 503 that says "maybe published" when
/// nothing was).
fn never_sent(error: &aws_sdk_kinesis::error::ConnectorError) -> bool {
    use std::io::ErrorKind;
    let mut next: Option<&(dyn Error + 'static)> = Some(error);
    while let Some(error) = next {
        let connect_only = error.downcast_ref::<std::io::Error>().is_some_and(|io| {
            matches!(
                io.kind(),
                ErrorKind::ConnectionRefused
                    | ErrorKind::HostUnreachable
                    | ErrorKind::NetworkUnreachable
                    | ErrorKind::AddrNotAvailable
            )
        });
        if connect_only {
            return true;
        }
        let text = error.to_string();
        if text == "client error (Connect)" || text == "client error (Canceled)" {
            return true;
        }
        next = error.source();
    }
    false
}

/// The stream named `stream`, with a client built from the process-wide SDK configuration.
/// It serves both sides: publishing, and `listen`.
pub async fn open(stream: &str) -> KinesisEventStream {
    KinesisEventStream::from_config(aws::shared_config().await, stream)
}

/// Events of every pair in one Kinesis stream.
#[derive(Clone, Debug)]
pub struct KinesisEventStream {
    client: Client,
    stream: String,
    retry: RetryPolicy,
}

impl KinesisEventStream {
    /// A stream named `stream`, with a client built from `config`.
    pub fn from_config(config: &SdkConfig, stream: impl Into<String>) -> Self {
        Self::from_client_config(aws_sdk_kinesis::config::Builder::from(config), stream)
    }

    /// As [`KinesisEventStream::from_config`], from a Kinesis client configuration (tests
    /// point it at a fault-injecting endpoint). Its SDK retries are off: the retry policy
    /// replaces them.
    pub fn from_client_config(
        client_config: aws_sdk_kinesis::config::Builder,
        stream: impl Into<String>,
    ) -> Self {
        let client_config = client_config.retry_config(RetryConfig::disabled()).build();
        Self {
            client: Client::from_conf(client_config),
            stream: stream.into(),
            retry: RetryPolicy::default(),
        }
    }

    /// Replaces the default retry policy (tests use short backoffs).
    pub fn with_retry_policy(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    pub fn stream_name(&self) -> &str {
        &self.stream
    }
}

#[async_trait]
impl EventStream for KinesisEventStream {
    /// PutRecord; `Ok` only with a sequence number.
    async fn publish(&self, event: &Envelope, deadline: Deadline) -> Result<(), StreamError> {
        self.put_record(event, deadline).await
    }

    /// PutRecords in calls of at most 500 records and 5 MiB, all within one deadline; within
    /// a call, only the records Kinesis refused as transient are resent.
    async fn publish_batch(
        &self,
        events: &[Envelope],
        deadline: Deadline,
    ) -> Vec<Result<(), StreamError>> {
        self.put_records(events, deadline).await
    }

    /// DescribeStreamSummary: read-only metadata of this one stream (no records), allowed by
    /// `kinesis:DescribeStreamSummary` on the stream.
    async fn warm_up(&self) -> Result<(), StreamError> {
        self.client
            .describe_stream_summary()
            .stream_name(&self.stream)
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    /// Creates the stream (on-demand) unless it exists, and waits until it is ACTIVE.
    async fn setup(&self) -> Result<(), StreamError> {
        let mode = StreamModeDetails::builder()
            .stream_mode(StreamMode::OnDemand)
            .build()
            .map_err(unavailable)?;
        let created = self
            .client
            .create_stream()
            .stream_name(&self.stream)
            .stream_mode_details(mode)
            .send()
            .await;
        match created {
            Ok(_) => tracing::info!(stream = %self.stream, "created the Kinesis stream"),
            Err(error)
                if matches!(
                    error.as_service_error(),
                    Some(CreateStreamError::ResourceInUseException(_))
                ) => {}
            Err(error) => return Err(unavailable(error)),
        }
        self.client
            .wait_until_stream_exists()
            .stream_name(&self.stream)
            .wait(SETUP_TIMEOUT)
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}
