//! Wiring: a [`Config`] turned into adapters, a [`Processor`] over them, and the one HTTP
//! [`Router`](axum::Router). Every runtime builds its [`App`] here once at start-up (a Lambda
//! cold start, `serve`, `setup`), and `listen` opens its [`EventSource`] here.
//!
//! Features decide what is compiled, configuration decides what runs. Whether a configured
//! backend's cargo feature was compiled in is decided in one place, [`feature_gated!`]: a
//! backend that is missing is a start-up error naming the feature.

use std::sync::Arc;

use crate::adapters::memory::{MemoryEventStream, MemorySchemaStore};
use crate::auth::{JwksError, JwtVerifier};
use crate::config::{
    AUTH_JWKS_VAR, AuthConfig, Config, ConfigError, EVENT_STREAM_VAR, SCHEMA_STORE_VAR,
    StoreConfig, StreamConfig,
};
use crate::error::{Cause, cause};
use crate::http::{Auth, Limits, MetricsRender, Routes};
use crate::import::{ImportError, ImportReport};
use crate::ports::{
    EventSource, EventStream, IdempotencyStore, RejectionStore, SchemaStore, StoreError,
    StreamError,
};
use crate::processor::Processor;

/// A start-up failure. Always names the variable or the feature at fault.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(
        "{variable} asks for the {backend} backend, but this binary was built without the `{feature}` cargo feature"
    )]
    FeatureNotCompiled {
        variable: &'static str,
        backend: &'static str,
        feature: &'static str,
    },
    #[error("could not open the backend named by {variable}")]
    Open {
        variable: &'static str,
        #[source]
        source: Cause,
    },
    #[error("could not read the JWKS named by {AUTH_JWKS_VAR} ({})", .path.display())]
    ReadJwks {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the JWKS named by {AUTH_JWKS_VAR} is not usable")]
    Jwks(#[source] JwksError),
    #[error(
        "{EVENT_STREAM_VAR}=memory: lives inside the serving process and cannot be listened to"
    )]
    NotSubscribable,
    #[error("could not set up the schema store named by {SCHEMA_STORE_VAR}")]
    SetupStore(#[source] StoreError),
    #[error("could not set up the event stream named by {EVENT_STREAM_VAR}")]
    SetupStream(#[source] StreamError),
    #[error(
        "{IMPORT_ORIGINAL_FLAG} needs the original service's PostgreSQL database: {SCHEMA_STORE_VAR} is not PostgreSQL, so give its URL ({IMPORT_ORIGINAL_FLAG} postgres://...)"
    )]
    NoOriginalDatabase,
    #[error("could not import the original service's schemas")]
    Import(#[source] ImportError),
}

/// The `setup` flag that imports the original service's schemas.
pub const IMPORT_ORIGINAL_FLAG: &str = "--import-original";

/// Evaluates `$open` if the cargo feature `$feature` is compiled in; otherwise the start-up
/// error that names it. The bindings listed in `[...]` are the ones `$open` uses (so that they
/// are not reported unused when it is compiled out). The only `cfg` on backends in this file.
macro_rules! feature_gated {
    ($feature:literal, $variable:expr, $backend:literal, [$($used:ident),*], $open:expr) => {{
        #[cfg(feature = $feature)]
        let opened = $open;
        #[cfg(not(feature = $feature))]
        let opened = {
            $(let _ = $used;)*
            Err(AppError::FeatureNotCompiled {
                variable: $variable,
                backend: $backend,
                feature: $feature,
            })
        };
        opened
    }};
}

/// Maps an adapter's open failure to the start-up error naming `variable`.
#[allow(
    dead_code,
    reason = "unused when no feature-gated backend is compiled in"
)]
fn open_failed<E: std::error::Error + Send + Sync + 'static>(
    variable: &'static str,
) -> impl FnOnce(E) -> AppError {
    move |error| AppError::Open {
        variable,
        source: cause(error),
    }
}

/// Which backends [`App::warm_up`] opens: those a Lambda function's requests reach (and its
/// IAM role may read), so that no function touches a service it does not use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WarmUp {
    /// The schema store only: register_event, schema, list_events, versions, compatibility,
    /// check_compatibility, validate, rejected.
    Store,
    /// The schema store and the event stream: send_event, send_events, replay.
    StoreAndStream,
}

/// What [`App::warm_up`] found, per backend, so that each failure is reported as what it is.
/// The stream's is `Ok` when it was not warmed up.
#[derive(Debug)]
pub struct WarmUpReport {
    pub store: Result<(), StoreError>,
    pub stream: Result<(), StreamError>,
}

/// The backends a process runs on, the processor over them and how its callers are
/// authenticated, built once.
#[derive(Clone)]
pub struct App {
    processor: Processor,
    store: Arc<dyn SchemaStore>,
    stream: Arc<dyn EventStream>,
    auth: Auth,
    metrics: Option<MetricsRender>,
    limits: Limits,
}

/// The schema store's backend in its three roles: schemas, rejected events, idempotency keys.
struct Stores {
    schemas: Arc<dyn SchemaStore>,
    rejections: Arc<dyn RejectionStore>,
    idempotency: Arc<dyn IdempotencyStore>,
}

impl Stores {
    fn of<T: SchemaStore + RejectionStore + IdempotencyStore + 'static>(store: Arc<T>) -> Self {
        Self {
            schemas: store.clone(),
            rejections: store.clone(),
            idempotency: store,
        }
    }
}

impl App {
    /// An app over already opened backends (tests pair a real backend with a memory one).
    pub fn new(store: Arc<dyn SchemaStore>, stream: Arc<dyn EventStream>) -> Self {
        Self {
            processor: Processor::new(store.clone(), stream.clone()),
            store,
            stream,
            auth: Auth::Off,
            metrics: None,
            limits: Limits::default(),
        }
    }

    /// Opens the configured backends. SQLite files are created and migrated on open, so the
    /// embedded default works on a fresh machine with no `setup` step.
    pub async fn build(config: &Config) -> Result<Self, AppError> {
        let (stores, stream) = (
            open_store(config).await?,
            open_stream(&config.stream).await?,
        );
        let processor = Processor::new(stores.schemas.clone(), stream.clone())
            .with_rejections(stores.rejections)
            .with_idempotency(stores.idempotency)
            .with_default_compatibility(config.default_compatibility);
        Ok(Self {
            processor,
            store: stores.schemas,
            stream,
            auth: auth(&config.auth)?,
            metrics: None,
            limits: Limits::default(),
        })
    }

    /// Body size limits other than API.md's defaults (a Lambda function's).
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Serves `GET /metrics` with `render` (`serve`, over its Prometheus recorder).
    pub fn with_metrics(mut self, render: MetricsRender) -> Self {
        self.metrics = Some(render);
        self
    }

    /// [`App::build`] from the environment.
    pub async fn from_env() -> Result<Self, AppError> {
        Self::build(&Config::from_env()?).await
    }

    pub fn processor(&self) -> &Processor {
        &self.processor
    }

    /// How this app's callers are authenticated.
    pub fn auth(&self) -> &Auth {
        &self.auth
    }

    /// The HTTP API over this app's processor.
    pub fn router(&self) -> axum::Router {
        self.router_of(Routes::ALL)
    }

    /// The HTTP API's `routes` only (a Lambda function's).
    pub fn router_of(&self, routes: Routes) -> axum::Router {
        let api = crate::http::Api::new(self.processor.clone())
            .auth(self.auth.clone())
            .limits(self.limits);
        match &self.metrics {
            Some(render) => api.metrics(render.clone()),
            None => api,
        }
        .router_of(routes)
    }

    /// Opens the connections `backends` need before the first request does (a Lambda's init
    /// phase), concurrently; see [`SchemaStore::warm_up`].
    pub async fn warm_up(&self, backends: WarmUp) -> WarmUpReport {
        let stream = async {
            match backends {
                WarmUp::Store => Ok(()),
                WarmUp::StoreAndStream => self.stream.warm_up().await,
            }
        };
        let (store, stream) = tokio::join!(self.store.warm_up(), stream);
        WarmUpReport { store, stream }
    }

    /// Creates, idempotently, what the configured backends need (`event-processor setup`).
    pub async fn setup(&self) -> Result<(), AppError> {
        self.store.setup().await.map_err(AppError::SetupStore)?;
        self.stream.setup().await.map_err(AppError::SetupStream)?;
        Ok(())
    }

    /// Takes the original service's schemas (`public.event_schemas` in the PostgreSQL database
    /// at `original`) as version 1 of each pair, through this app's registration
    /// (`setup --import-original`). Idempotent; the original's table is only read.
    pub async fn import_original(&self, original: &str) -> Result<ImportReport, AppError> {
        let rows = feature_gated!(
            "postgres",
            IMPORT_ORIGINAL_FLAG,
            "PostgreSQL",
            [original],
            {
                crate::adapters::postgres::import::read_original(original)
                    .await
                    .map_err(AppError::Import)
            }
        )?;
        crate::import::import(&self.processor, rows)
            .await
            .map_err(AppError::Import)
    }
}

/// The database `setup --import-original` reads the original service's table from: the URL
/// given with the flag, or else `SCHEMA_STORE`'s when it is PostgreSQL (the usual case: the
/// gateway started on the database the original used).
pub fn original_database(config: &Config, given: Option<&str>) -> Result<String, AppError> {
    match (given.filter(|url| !url.is_empty()), &config.store) {
        (Some(url), _) => Ok(url.to_owned()),
        (None, StoreConfig::Postgres(url)) => Ok(url.clone()),
        (None, _) => Err(AppError::NoOriginalDatabase),
    }
}

/// `AUTH=jwt` with a JWKS: tokens verified here; without one: verified upstream by API
/// Gateway's JWT authorizer, whose claims arrive with each request.
fn auth(config: &AuthConfig) -> Result<Auth, AppError> {
    match config {
        AuthConfig::None => Ok(Auth::Off),
        AuthConfig::Jwt {
            jwks: Some(path),
            issuer,
            audience,
            scope_prefix,
        } => {
            let document = std::fs::read(path).map_err(|source| AppError::ReadJwks {
                path: path.clone(),
                source,
            })?;
            let verifier = JwtVerifier::new(&document, issuer, audience)
                .map_err(AppError::Jwks)?
                .with_scope_prefix(scope_prefix);
            Ok(Auth::Verify(Arc::new(verifier)))
        }
        AuthConfig::Jwt {
            jwks: None,
            scope_prefix,
            ..
        } => Ok(Auth::Authorizer {
            scope_prefix: scope_prefix.as_str().into(),
        }),
    }
}

async fn open_store(config: &Config) -> Result<Stores, AppError> {
    const VAR: &str = SCHEMA_STORE_VAR;
    match &config.store {
        StoreConfig::Memory => Ok(Stores::of(Arc::new(MemorySchemaStore::new()))),
        StoreConfig::Sqlite(path) => feature_gated!("sqlite", VAR, "SQLite", [path], {
            crate::adapters::sqlite::open(path)
                .map(|db| Stores::of(db.with_rejections_ttl(config.rejections_ttl)))
                .map_err(open_failed(VAR))
        }),
        StoreConfig::Postgres(url) => feature_gated!("postgres", VAR, "PostgreSQL", [url], {
            crate::adapters::postgres::open(url)
                .await
                .map(|store| Stores::of(Arc::new(store.with_rejections_ttl(config.rejections_ttl))))
                .map_err(open_failed(VAR))
        }),
        StoreConfig::DynamoDb { table } => feature_gated!("aws", VAR, "DynamoDB", [table], {
            let store = crate::adapters::dynamodb::open(table).await;
            Ok(Stores::of(Arc::new(
                store.with_rejections_ttl(config.rejections_ttl),
            )))
        }),
    }
}

async fn open_stream(config: &StreamConfig) -> Result<Arc<dyn EventStream>, AppError> {
    const VAR: &str = EVENT_STREAM_VAR;
    match config {
        StreamConfig::Memory => Ok(Arc::new(MemoryEventStream::new())),
        StreamConfig::Sqlite(path) => feature_gated!("sqlite", VAR, "SQLite", [path], {
            crate::adapters::sqlite::open(path)
                .map(|db| db as Arc<dyn EventStream>)
                .map_err(open_failed(VAR))
        }),
        StreamConfig::Kafka { brokers } => feature_gated!("kafka", VAR, "Kafka", [brokers], {
            crate::adapters::kafka::open(brokers)
                .map(|stream| Arc::new(stream) as Arc<dyn EventStream>)
                .map_err(open_failed(VAR))
        }),
        StreamConfig::Kinesis { stream } => feature_gated!("aws", VAR, "Kinesis", [stream], {
            Ok(Arc::new(crate::adapters::kinesis::open(stream).await) as Arc<dyn EventStream>)
        }),
    }
}

/// The rejections kept in the configured schema store, for `listen --rejected`.
pub async fn open_rejections(config: &Config) -> Result<Arc<dyn RejectionStore>, AppError> {
    Ok(open_store(config).await?.rejections)
}

/// The read side of the configured stream, for `listen`.
pub async fn open_source(config: &StreamConfig) -> Result<Arc<dyn EventSource>, AppError> {
    const VAR: &str = EVENT_STREAM_VAR;
    match config {
        StreamConfig::Memory => Err(AppError::NotSubscribable),
        StreamConfig::Sqlite(path) => feature_gated!("sqlite", VAR, "SQLite", [path], {
            crate::adapters::sqlite::open(path)
                .map(|db| db as Arc<dyn EventSource>)
                .map_err(open_failed(VAR))
        }),
        StreamConfig::Kafka { brokers } => feature_gated!("kafka", VAR, "Kafka", [brokers], {
            crate::adapters::kafka::open(brokers)
                .map(|stream| Arc::new(stream) as Arc<dyn EventSource>)
                .map_err(open_failed(VAR))
        }),
        StreamConfig::Kinesis { stream } => feature_gated!("aws", VAR, "Kinesis", [stream], {
            Ok(Arc::new(crate::adapters::kinesis::open(stream).await) as Arc<dyn EventSource>)
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Runs in the feature-less build that scripts/test also makes (`--no-default-features`).
    #[cfg(not(feature = "kafka"))]
    #[tokio::test]
    async fn a_backend_not_compiled_in_names_the_feature() {
        let config = Config::parse("memory:", "kafka://localhost:9092").unwrap();
        let message = App::build(&config)
            .await
            .err()
            .expect("kafka is not compiled")
            .to_string();
        assert!(message.contains("`kafka` cargo feature"), "{message}");
        assert!(message.contains(EVENT_STREAM_VAR), "{message}");
    }

    #[tokio::test]
    async fn a_memory_stream_cannot_be_listened_to() {
        assert!(matches!(
            open_source(&StreamConfig::Memory).await,
            Err(AppError::NotSubscribable)
        ));
    }
}
