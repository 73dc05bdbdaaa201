//! `event-processor`: the whole gateway in one process (`serve`), its set-up (`setup`), and
//! the original demo's producer and listener.

mod listen;
mod produce;
mod schema;
mod token;

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use event_processor_core::App;
use event_processor_core::config::{
    AUTH_JWKS_VAR, Config, DEFAULT_BACKEND, EVENT_STREAM_VAR, SCHEMA_STORE_VAR, StoreConfig,
    StreamConfig,
};
use event_processor_core::error::ErrorChain;
use event_processor_core::http::Auth;
use tracing_subscriber::EnvFilter;

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
        #[command(flatten)]
        backends: Backends,
    },
    /// Create, idempotently, what the configured backends need (tables, streams).
    Setup {
        #[command(flatten)]
        backends: Backends,
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
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level)),
        )
        .with_writer(std::io::stderr)
        .init();

    let result: Result<(), BoxError> = match cli.command {
        Command::Serve { addr, backends } => serve(addr, backends).await,
        Command::Setup { backends } => setup(backends).await,
        Command::Produce(args) => produce::run(args).await,
        Command::Keygen(args) => token::keygen(args),
        Command::Token(args) => token::token(args),
        Command::Schema(args) => match schema::run(args).await {
            Ok(schema::Outcome::Done) => Ok(()),
            // The gateway's answer is already printed; only the exit status is left to say.
            Ok(schema::Outcome::Refused) => return ExitCode::FAILURE,
            Err(error) => Err(error),
        },
        Command::Listen { args, event_stream } => listen(args, &event_stream).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", ErrorChain(error.as_ref()));
            ExitCode::FAILURE
        }
    }
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

async fn serve(addr: SocketAddr, backends: Backends) -> Result<(), BoxError> {
    let config = backends.config()?;
    let app = App::build(&config).await?;
    match app.auth() {
        Auth::Off => tracing::warn!(
            "AUTH=none: anyone who can reach {addr} may register, read and send any client's events"
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
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
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

async fn setup(backends: Backends) -> Result<(), BoxError> {
    let config = backends.config()?;
    App::build(&config).await?.setup().await?;
    println!("set up: schemas {}, events {}", config.store, config.stream);
    Ok(())
}

async fn listen(args: listen::Args, event_stream: &str) -> Result<(), BoxError> {
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
