//! The Lambda runtime edge: what every function binary under `functions/` runs.
//!
//! Each function is the same program (the whole router of `event_processor_core::http`); API
//! Gateway routes only its endpoint to it. Keeping the start-up here means the `main.rs` of
//! the functions cannot drift apart: they differ only in which backends they warm up. The core
//! knows nothing of Lambda: this crate hands it what it needs from an invocation (its
//! deadline) as plain request extensions.

use std::process::ExitCode;
use std::time::Duration;

use axum::extract::Request;
use event_processor_core::App;
use event_processor_core::error::ErrorChain;
use event_processor_core::http::InvocationDeadline;
use lambda_http::RequestExt;

pub use event_processor_core::WarmUp;

/// The longest init waits for the warm-up. Lambda allows 10 s for init, and a backend that
/// slow is better reported by the requests that need it.
const WARM_UP_DEADLINE: Duration = Duration::from_secs(2);

/// Initialises logging as the function's logging configuration asks (`AWS_LAMBDA_LOG_FORMAT`,
/// `AWS_LAMBDA_LOG_LEVEL`), builds the app from the environment once per cold start, opens the
/// connections of `backends`, and serves invocations until the runtime stops. A start-up
/// failure is logged and exits non-zero, so Lambda reports an init error instead of answering
/// with a half-built app.
pub async fn run(backends: WarmUp) -> ExitCode {
    lambda_http::tracing::init_default_subscriber();
    let app = match App::from_env().await {
        Ok(app) => app,
        Err(error) => {
            tracing::error!(error = %ErrorChain(&error), "start-up failed");
            return ExitCode::FAILURE;
        }
    };
    warm_up(&app, backends).await;
    match lambda_http::run(handler(&app)).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = %ErrorChain(error.as_ref()), "the Lambda runtime stopped");
            ExitCode::FAILURE
        }
    }
}

/// The TCP + TLS handshakes happen here, in init, rather than in the first request (see
/// BENCHMARKS.md, "Lambda cold start"). Not fatal: a backend that is down at init is reported
/// by the requests that need it (503), and may be back by then.
async fn warm_up(app: &App, backends: WarmUp) {
    match tokio::time::timeout(WARM_UP_DEADLINE, app.warm_up(backends)).await {
        Ok(report) => {
            if let Err(error) = report.store {
                tracing::warn!(error = %ErrorChain(&error), "warm-up of the schema store failed");
            }
            if let Err(error) = report.stream {
                tracing::warn!(error = %ErrorChain(&error), "warm-up of the event stream failed");
            }
        }
        Err(_) => tracing::warn!(deadline = ?WARM_UP_DEADLINE, "warm-up timed out"),
    }
}

/// The app's router, fed what the HTTP layer needs to know of each invocation.
pub fn handler(app: &App) -> axum::Router {
    app.router()
        .layer(axum::middleware::map_request(with_invocation_deadline))
}

/// Copies the invocation's deadline into the request, so that the HTTP layer gives the request
/// a deadline the function's timeout can honour: its answer is always the contract's JSON, not
/// a platform timeout.
async fn with_invocation_deadline(mut request: Request) -> Request {
    if let Some(context) = request.lambda_context_ref() {
        let deadline = context.deadline();
        request
            .extensions_mut()
            .insert(InvocationDeadline(deadline));
    }
    request
}
