//! A Lambda function's metrics: the core's `metrics` facade recorded by
//! `metrics_cloudwatch_embedded` and written after each invocation as CloudWatch Embedded
//! Metric Format lines on stdout, which CloudWatch Logs turns into metrics (no API call, no
//! agent, nothing on the request's path but appending to stdout).
//!
//! Cardinality is cost: every distinct set of dimensions is a billed custom metric. The
//! dimensions are the function's name and the metric's own labels (`route`, `status`,
//! `reason`: a few dozen combinations); `client` and `event` — one metric per pair — are
//! dropped unless `METRICS_PAIR_DIMENSIONS=true` asks for them. The request line of the log
//! always names the pair, so per-pair counts stay available to Logs Insights at no metric cost.

use std::io::Write;
use std::sync::{Mutex, OnceLock};

use metrics_cloudwatch_embedded::{Builder, Collector};

/// The CloudWatch namespace (`METRICS_NAMESPACE`, default [`DEFAULT_NAMESPACE`]).
pub const METRICS_NAMESPACE_VAR: &str = "METRICS_NAMESPACE";
pub const DEFAULT_NAMESPACE: &str = "EventProcessor";
/// `true` keeps `client` and `event` as dimensions (`METRICS_PAIR_DIMENSIONS`, default `false`).
pub const METRICS_PAIR_DIMENSIONS_VAR: &str = "METRICS_PAIR_DIMENSIONS";

/// Where the function's metrics go.
pub struct Emf {
    collector: &'static Collector,
    out: Mutex<Box<dyn Write + Send>>,
}

static EMF: OnceLock<Emf> = OnceLock::new();

/// Why the metrics could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum EmfError {
    #[error("{METRICS_PAIR_DIMENSIONS_VAR}={0:?}: expected `true` or `false`")]
    PairDimensions(String),
    #[error("a metrics recorder is already installed in this process")]
    AlreadyInstalled,
    #[error("the metrics recorder could not be set up: {0}")]
    Recorder(String),
}

/// The settings from the environment: namespace, the function's name (a dimension), whether
/// pairs are dimensions.
pub fn settings_from_env() -> Result<(String, Option<String>, bool), EmfError> {
    let namespace =
        std::env::var(METRICS_NAMESPACE_VAR).unwrap_or_else(|_| DEFAULT_NAMESPACE.to_owned());
    let function = std::env::var("AWS_LAMBDA_FUNCTION_NAME").ok();
    let pairs = match std::env::var(METRICS_PAIR_DIMENSIONS_VAR).as_deref() {
        Err(_) | Ok("false") => false,
        Ok("true") => true,
        Ok(other) => return Err(EmfError::PairDimensions(other.to_owned())),
    };
    Ok((namespace, function, pairs))
}

/// Installs the process's recorder, writing to `out` at each [`flush`].
pub fn install(
    namespace: &str,
    function: Option<&str>,
    pair_dimensions: bool,
    out: Box<dyn Write + Send>,
) -> Result<(), EmfError> {
    if EMF.get().is_some() {
        return Err(EmfError::AlreadyInstalled);
    }
    let mut builder = Builder::new().cloudwatch_namespace(namespace.to_owned());
    if let Some(name) = function {
        builder = builder.with_dimension("function", name.to_owned());
    }
    let collector = builder
        .init()
        .map_err(|e| EmfError::Recorder(e.to_string()))?;
    event_processor_core::metrics::set_pair_labels(pair_dimensions);
    EMF.set(Emf {
        collector,
        out: Mutex::new(out),
    })
    .map_err(|_| EmfError::AlreadyInstalled)
}

/// Writes what was recorded since the last flush, tagged with the invocation's request id.
/// Lambda runs one invocation at a time per instance, so the lines are this invocation's.
pub fn flush(request_id: Option<&str>) {
    let Some(emf) = EMF.get() else { return };
    match request_id {
        Some(id) => emf.collector.set_property("RequestId", id.to_owned()),
        None => emf.collector.remove_property("RequestId"),
    };
    let mut out = emf.out.lock().unwrap_or_else(|e| e.into_inner());
    if let Err(error) = emf.collector.flush(&mut *out).and_then(|()| out.flush()) {
        tracing::warn!(%error, "metrics could not be written");
    }
}
