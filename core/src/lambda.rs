//! The Lambda runtime edge: what every function binary under `functions/` runs.
//!
//! Each function is the same program (the whole [`App::router`]); API Gateway routes only its
//! endpoint to it. Keeping the start-up here means the five `main.rs` cannot drift apart: they
//! differ only in which backends they warm up.

use std::process::ExitCode;
use std::time::Duration;

use tracing_subscriber::EnvFilter;

use crate::http::ErrorChain;
use crate::{App, WarmUp};

/// The longest init waits for the warm-up. Lambda allows 10 s for init, and the SDK's own
/// retries could take longer than that against an unreachable endpoint; a backend that slow is
/// better reported by the requests that need it.
const WARM_UP_DEADLINE: Duration = Duration::from_secs(2);

/// Initialises JSON logs, builds the app from the environment once per cold start, opens the
/// connections of `backends`, and serves invocations until the runtime stops. A start-up
/// failure is logged and exits non-zero, so Lambda reports an init error instead of answering
/// with a half-built app.
pub async fn run(backends: WarmUp) -> ExitCode {
    init_tracing();
    let app = match App::from_env().await {
        Ok(app) => app,
        Err(error) => {
            tracing::error!(error = %ErrorChain(&error), "start-up failed");
            return ExitCode::FAILURE;
        }
    };
    // The TCP + TLS handshakes happen here, in init, rather than in the first request (see
    // BENCHMARKS.md, "Lambda cold start"). Not fatal: a backend that is down at init is
    // reported by the requests that need it (503), and may be back by then.
    match tokio::time::timeout(WARM_UP_DEADLINE, app.warm_up(backends)).await {
        Ok((store, stream)) => {
            if let Err(error) = store {
                tracing::warn!(error = %ErrorChain(&error), "warm-up of the schema store failed");
            }
            if let Err(error) = stream {
                tracing::warn!(error = %ErrorChain(&error), "warm-up of the event stream failed");
            }
        }
        Err(_) => tracing::warn!(deadline = ?WARM_UP_DEADLINE, "warm-up timed out"),
    }
    match lambda_http::run(app.router()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = %ErrorChain(error.as_ref()), "the Lambda runtime stopped");
            ExitCode::FAILURE
        }
    }
}

/// JSON lines for CloudWatch. The span list carries the runtime's `requestId` and the HTTP
/// layer's `request_id`, `client` and `event` on every line. `AWS_LAMBDA_LOG_LEVEL` (set by the
/// function's logging config) or `RUST_LOG` choose the level; `info` otherwise.
fn init_tracing() {
    let filter = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .or_else(|_| std::env::var("RUST_LOG"))
        .ok()
        .and_then(|level| EnvFilter::try_new(level.to_lowercase()).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(false)
        .with_span_list(true)
        .with_target(false)
        // CloudWatch stamps every line itself.
        .without_time()
        .init();
}
