//! `event-processor`: the whole gateway in one process (`serve`), its set-up (`setup`), and
//! the original demo's producer and listener.

mod listen;
mod produce;
mod schema;
mod token;

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use event_processor_core::App;
use event_processor_core::config::{
    AUTH_JWKS_VAR, Config, DEFAULT_BACKEND, EVENT_STREAM_VAR, SCHEMA_STORE_VAR, StoreConfig,
    StreamConfig,
};
use event_processor_core::error::ErrorChain;
use event_processor_core::http::{Auth, MetricsRender};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::FilterFn;
use tracing_subscriber::fmt;
use tracing_subscriber::prelude::*;

/// See Cargo.toml: the hot path's allocations cost half as much as with the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    version,
    about = "An event gateway: register JSON Schemas, validate and publish events"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Backend selection shared by the commands that open backends.
#[derive(clap::Args, Clone)]
struct Backends {
    /// Where schemas live: sqlite:PATH, memory:, postgres://..., dynamodb:TABLE.
    #[arg(long, env = SCHEMA_STORE_VAR, default_value = DEFAULT_BACKEND)]
    schema_store: String,
    /// Where events go: sqlite:PATH, memory:, kafka://HOST:PORT[,HOST:PORT], kinesis:STREAM.
    #[arg(long, env = EVENT_STREAM_VAR, default_value = DEFAULT_BACKEND)]
    event_stream: String,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the whole API in one process.
    Serve {
        #[arg(long, default_value = "127.0.0.1:5000")]
        addr: SocketAddr,
        /// Record no metrics and serve no `GET /metrics` (what the metrics cost is measured
        /// against this; see BENCHMARKS.md).
        #[arg(long)]
        no_metrics: bool,
        #[command(flatten)]
        backends: Backends,
    },
    /// Create, idempotently, what the configured backends need (tables, streams).
    Setup {
        #[command(flatten)]
        backends: Backends,
        /// Then import the original service's schemas (its table public.event_schemas) as
        /// version 1 of each pair, and report what could not be taken. Reads the table from
        /// SCHEMA_STORE's PostgreSQL database, or from the one given; never writes to it.
        /// Idempotent.
        #[arg(long, value_name = "POSTGRES_URL")]
        import_original: Option<Option<String>>,
    },
    /// The original demo: register SpongeBob/Fruits (or Colors) and send random events.
    Produce(produce::Args),
    /// Manage a pair's schema versions on a running gateway: register, check, get, versions,
    /// compatibility.
    Schema(schema::Args),
    /// Generate a signing key and its JWKS, for running `serve` with AUTH=jwt locally.
    Keygen(token::KeygenArgs),
    /// Mint a bearer token for local use (`produce --token`, curl).
    Token(token::TokenArgs),
    /// Print each event of a pair as it arrives: `listen CLIENT EVENT` or `listen fruits|colors`.
    Listen {
        #[command(flatten)]
        args: listen::Args,
        /// Where events are read from (as for `serve`).
        #[arg(long, env = EVENT_STREAM_VAR, default_value = DEFAULT_BACKEND)]
        event_stream: String,
        /// Where rejections are read from with `--rejected` (as for `serve`).
        #[arg(long, env = SCHEMA_STORE_VAR, default_value = DEFAULT_BACKEND)]
        schema_store: String,
    },
}

/// A command's failure, reported on stderr with its whole cause chain.
type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Where `produce` and `schema` take a bearer token from, when `--token` is not given.
pub(crate) const TOKEN_VAR: &str = "EVENT_PROCESSOR_TOKEN";

/// The HTTP client of the commands that talk to a running gateway, sending `token` as a
/// bearer token on every request when there is one.
pub(crate) fn http_client(token: Option<&str>) -> Result<reqwest::Client, BoxError> {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(token) = token {
        let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| "the token is not a valid HTTP header value")?;
        value.set_sensitive(true);
        headers.insert(reqwest::header::AUTHORIZATION, value);
    }
    Ok(reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .default_headers(headers)
        .build()?)
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let default_level = match cli.command {
        Command::Serve { .. } | Command::Setup { .. } => "info",
        _ => "warn",
    };
    let logs = match init_logging(default_level) {
        Ok(logs) => logs,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::FAILURE;
        }
    };

    let result: Result<(), BoxError> = match cli.command {
        Command::Serve {
            addr,
            no_metrics,
            backends,
        } => serve(addr, !no_metrics, backends).await,
        Command::Setup {
            backends,
            import_original,
        } => setup(backends, import_original).await,
        Command::Produce(args) => produce::run(args).await,
        Command::Keygen(args) => token::keygen(args),
        Command::Token(args) => token::token(args),
        Command::Schema(args) => match schema::run(args).await {
            Ok(schema::Outcome::Done) => Ok(()),
            // The gateway's answer is already printed; only the exit status is left to say.
            Ok(schema::Outcome::Refused) => return ExitCode::FAILURE,
            Err(error) => Err(error),
        },
        Command::Listen {
            args,
            event_stream,
            schema_store,
        } => listen(args, &event_stream, &schema_store).await,
    };
    // Writes out the lines still queued, before the command's own last word.
    drop(logs);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", ErrorChain(error.as_ref()));
            ExitCode::FAILURE
        }
    }
}

/// `LOG_FORMAT`: `json` or `text`.
const LOG_FORMAT_VAR: &str = "LOG_FORMAT";

/// Logs to stderr: JSON lines (one object per event, the request line's fields at the top
/// level) when `LOG_FORMAT=json` or when stderr is not a terminal (a service manager, a
/// container, a file: something that ships logs), readable text on a terminal. Colours only
/// on a terminal, so a file never holds escape codes.
///
/// The lines are written by a thread of their own, which writes what queued up while it wrote
/// in one system call: under load, one `write` per line was a system call per request beside
/// the socket's own (BENCHMARKS.md). Nothing is dropped while the command runs (a full queue
/// makes the logging thread wait, as a slow stderr did before); what is queued is written out
/// when the returned guard drops (tracing-appender waits up to a second for it): keep the
/// guard until the command ends.
fn init_logging(default_level: &str) -> Result<WorkerGuard, BoxError> {
    let terminal = std::io::stderr().is_terminal();
    let json = match std::env::var(LOG_FORMAT_VAR).as_deref() {
        Ok("json") => true,
        Ok("text") => false,
        Ok(other) => {
            return Err(format!("{LOG_FORMAT_VAR}={other:?}: expected `json` or `text`").into());
        }
        Err(_) => !terminal,
    };
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(false)
        .buffered_lines_limit(LOG_QUEUE_LINES)
        .thread_name("log-writer")
        .finish(std::io::BufWriter::new(std::io::stderr()));
    let logs = tracing_subscriber::registry().with(filter);
    if json {
        // A JSON line carries no span fields (the request line names its request itself), so
        // spans are not made at all: at the default level they cost `serve` ~15% of its
        // throughput for nothing it writes (BENCHMARKS.md).
        logs.with(FilterFn::new(|metadata| !metadata.is_span()))
            .with(
                fmt::layer()
                    .with_writer(writer)
                    .with_ansi(terminal)
                    .json()
                    .flatten_event(true)
                    .with_current_span(false)
                    .with_span_list(false),
            )
            .init();
    } else {
        logs.with(fmt::layer().with_writer(writer).with_ansi(terminal))
            .init();
    }
    Ok(guard)
}

/// Lines queued for the log writer before a request that logs waits for it: a few MB, which
/// bounds the memory a slow stderr reader can make `serve` hold (the crate's default is 128,000).
const LOG_QUEUE_LINES: usize = 16_384;

/// Buckets of `request_duration_seconds`: from a cache-warm 1 ms to the 10 s request budget.
const DURATION_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// How often the Prometheus recorder's histograms are maintained.
const METRICS_UPKEEP: std::time::Duration = std::time::Duration::from_secs(5);

/// Installs the Prometheus recorder for this process; `GET /metrics` renders it.
fn prometheus() -> Result<MetricsRender, BoxError> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full(event_processor_core::metrics::REQUEST_DURATION.to_owned()),
            DURATION_BUCKETS,
        )?
        .install_recorder()?;
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(METRICS_UPKEEP);
        loop {
            every.tick().await;
            upkeep.run_upkeep();
        }
    });
    Ok(Arc::new(move || handle.render()))
}

impl Backends {
    /// The whole configuration: the backends from the flags (or their variables), everything
    /// else (DEFAULT_COMPATIBILITY, AUTH, ...) from the environment.
    fn config(&self) -> Result<Config, BoxError> {
        let mut config = Config::from_env()?;
        config.store = StoreConfig::parse(&self.schema_store)?;
        config.stream = StreamConfig::parse(&self.event_stream)?;
        Ok(config)
    }
}

async fn serve(addr: SocketAddr, metrics: bool, backends: Backends) -> Result<(), BoxError> {
    let config = backends.config()?;
    let mut app = App::build(&config).await?;
    if metrics {
        app = app.with_metrics(prometheus()?);
    }
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    match app.auth() {
        Auth::Off => tracing::warn!(
            "AUTH=none: anyone who can reach {local} may register, read and send any client's events"
        ),
        Auth::Verify(_) => {}
        // Nothing in front of `serve` verifies tokens for it.
        Auth::Authorizer { .. } => {
            return Err(format!(
                "AUTH=jwt needs {AUTH_JWKS_VAR}=file:PATH (a JWKS document) for serve"
            )
            .into());
        }
    }
    // Scripts and tests read this line to learn the bound port (e.g. with --addr 127.0.0.1:0).
    // Display redacts a password in a PostgreSQL URL.
    println!(
        "event-processor listening on http://{local} (schemas: {}, events: {})",
        config.store, config.stream
    );
    axum::serve(listener, app.router())
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    tracing::info!("stopped");
    Ok(())
}

async fn setup(
    backends: Backends,
    import_original: Option<Option<String>>,
) -> Result<(), BoxError> {
    let config = backends.config()?;
    let app = App::build(&config).await?;
    app.setup().await?;
    println!("set up: schemas {}, events {}", config.store, config.stream);
    if let Some(given) = import_original {
        let original = event_processor_core::app::original_database(&config, given.as_deref())?;
        // One line per imported or skipped row, then `imported N, skipped M, already imported K`.
        println!("{}", app.import_original(&original).await?);
    }
    Ok(())
}

async fn listen(
    args: listen::Args,
    event_stream: &str,
    schema_store: &str,
) -> Result<(), BoxError> {
    if args.rejected {
        let mut config = Config::from_env()?;
        config.store = StoreConfig::parse(schema_store)?;
        let store = event_processor_core::app::open_rejections(&config).await?;
        return listen::run_rejected(args, store).await;
    }
    let stream = StreamConfig::parse(event_stream)?;
    let source = event_processor_core::app::open_source(&stream).await?;
    listen::run(args, source).await
}

/// Resolves on Ctrl-C or SIGTERM, so in-flight requests finish before the process exits.
pub(crate) async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
