//! Configuration: `SCHEMA_STORE` / `EVENT_STREAM` (API.md) parsed into backends, and the
//! [`App`] every runtime builds once at start-up (a Lambda cold start, `serve`, `setup`).
//!
//! Features decide what is compiled, configuration decides what runs: naming a backend whose
//! feature is not compiled in is a start-up error that names the feature.

use std::path::PathBuf;
use std::sync::Arc;

use crate::adapters::memory::{MemoryEventStream, MemorySchemaStore};
use crate::ports::{EventSource, EventStream, SchemaStore, StoreError, StreamError};
use crate::processor::Processor;

pub const SCHEMA_STORE_VAR: &str = "SCHEMA_STORE";
pub const EVENT_STREAM_VAR: &str = "EVENT_STREAM";
/// What the local server uses when nothing is configured.
pub const DEFAULT_BACKEND: &str = "sqlite:event-processor.db";

/// A start-up failure. Always names the variable or the feature at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{variable}={value:?} is not valid: {reason}")]
    Invalid {
        variable: &'static str,
        value: String,
        reason: String,
    },
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
        source: crate::ports::Cause,
    },
    #[error("could not set up the schema store named by {SCHEMA_STORE_VAR}")]
    Store(#[source] StoreError),
    #[error("could not set up the event stream named by {EVENT_STREAM_VAR}")]
    Stream(#[source] StreamError),
}

/// Where schemas are stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreConfig {
    Memory,
    Sqlite(PathBuf),
    Postgres(String),
    DynamoDb { table: String },
}

/// Where accepted events are published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamConfig {
    Memory,
    Sqlite(PathBuf),
    Kafka { brokers: String },
    Kinesis { stream: String },
}

fn invalid(variable: &'static str, value: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        variable,
        value: value.to_owned(),
        reason: reason.into(),
    }
}

fn non_empty<'a>(
    variable: &'static str,
    value: &str,
    rest: &'a str,
    what: &str,
) -> Result<&'a str, ConfigError> {
    if rest.trim().is_empty() {
        Err(invalid(variable, value, format!("{what} is missing")))
    } else {
        Ok(rest)
    }
}

impl StoreConfig {
    pub fn parse(value: &str) -> Result<Self, ConfigError> {
        const VAR: &str = SCHEMA_STORE_VAR;
        if value == "memory:" {
            Ok(Self::Memory)
        } else if let Some(path) = value.strip_prefix("sqlite:") {
            Ok(Self::Sqlite(
                non_empty(VAR, value, path, "the SQLite file path")?.into(),
            ))
        } else if value.starts_with("postgres://") || value.starts_with("postgresql://") {
            Ok(Self::Postgres(value.to_owned()))
        } else if let Some(table) = value.strip_prefix("dynamodb:") {
            let table = non_empty(VAR, value, table, "the DynamoDB table name")?;
            Ok(Self::DynamoDb {
                table: table.to_owned(),
            })
        } else {
            Err(invalid(
                VAR,
                value,
                "expected sqlite:PATH, memory:, postgres://... or dynamodb:TABLE",
            ))
        }
    }
}

impl StreamConfig {
    pub fn parse(value: &str) -> Result<Self, ConfigError> {
        const VAR: &str = EVENT_STREAM_VAR;
        if value == "memory:" {
            Ok(Self::Memory)
        } else if let Some(path) = value.strip_prefix("sqlite:") {
            Ok(Self::Sqlite(
                non_empty(VAR, value, path, "the SQLite file path")?.into(),
            ))
        } else if let Some(brokers) = value.strip_prefix("kafka://") {
            let brokers = non_empty(VAR, value, brokers, "the broker list")?;
            if brokers.split(',').any(|b| {
                b.rsplit_once(':')
                    .is_none_or(|(h, p)| h.is_empty() || p.parse::<u16>().is_err())
            }) {
                return Err(invalid(VAR, value, "brokers must be HOST:PORT[,HOST:PORT]"));
            }
            Ok(Self::Kafka {
                brokers: brokers.to_owned(),
            })
        } else if let Some(stream) = value.strip_prefix("kinesis:") {
            let stream = non_empty(VAR, value, stream, "the Kinesis stream name")?;
            Ok(Self::Kinesis {
                stream: stream.to_owned(),
            })
        } else {
            Err(invalid(
                VAR,
                value,
                "expected sqlite:PATH, memory:, kafka://HOST:PORT[,HOST:PORT] or kinesis:STREAM",
            ))
        }
    }
}

/// The configured backends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub store: StoreConfig,
    pub stream: StreamConfig,
}

impl Config {
    pub fn parse(store: &str, stream: &str) -> Result<Self, ConfigError> {
        Ok(Self {
            store: StoreConfig::parse(store)?,
            stream: StreamConfig::parse(stream)?,
        })
    }

    /// Reads `SCHEMA_STORE` and `EVENT_STREAM`, each defaulting to [`DEFAULT_BACKEND`].
    pub fn from_env() -> Result<Self, ConfigError> {
        let read = |variable: &'static str| match std::env::var(variable) {
            Ok(value) => Ok(value),
            Err(std::env::VarError::NotPresent) => Ok(DEFAULT_BACKEND.to_owned()),
            Err(std::env::VarError::NotUnicode(raw)) => {
                Err(invalid(variable, &raw.to_string_lossy(), "not valid UTF-8"))
            }
        };
        Self::parse(&read(SCHEMA_STORE_VAR)?, &read(EVENT_STREAM_VAR)?)
    }
}

/// Which backends [`App::warm_up`] opens: those a Lambda function's requests reach (and its
/// IAM role may read), so that no function touches a service it does not use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WarmUp {
    /// The schema store only: register_event, schema, list_events.
    Store,
    /// The schema store and the event stream: send_event, send_events.
    StoreAndStream,
}

/// The backends a process runs on, built once (per cold start in Lambda).
#[derive(Clone)]
pub struct App {
    pub processor: Processor,
    pub store: Arc<dyn SchemaStore>,
    pub stream: Arc<dyn EventStream>,
}

impl App {
    /// An app over already opened backends (tests pair a real backend with a memory one).
    pub fn new(store: Arc<dyn SchemaStore>, stream: Arc<dyn EventStream>) -> Self {
        Self {
            processor: Processor::new(store.clone(), stream.clone()),
            store,
            stream,
        }
    }

    /// Opens the configured backends. SQLite files are created and migrated on open, so the
    /// embedded default works on a fresh machine with no `setup` step.
    pub async fn build(config: &Config) -> Result<Self, ConfigError> {
        Ok(Self::new(
            open_store(config).await?,
            open_stream(config).await?,
        ))
    }

    /// [`App::build`] from the environment.
    pub async fn from_env() -> Result<Self, ConfigError> {
        Self::build(&Config::from_env()?).await
    }

    /// The HTTP API over this app's processor.
    pub fn router(&self) -> axum::Router {
        crate::http::router(self.processor.clone())
    }

    /// Opens the connections `backends` need before the first request does (a Lambda's init
    /// phase), concurrently; see [`SchemaStore::warm_up`]. One result per backend, so each
    /// failure can be reported as what it is; the stream's is `Ok` when it is not warmed up.
    pub async fn warm_up(
        &self,
        backends: WarmUp,
    ) -> (Result<(), StoreError>, Result<(), StreamError>) {
        let stream = async {
            match backends {
                WarmUp::Store => Ok(()),
                WarmUp::StoreAndStream => self.stream.warm_up().await,
            }
        };
        tokio::join!(self.store.warm_up(), stream)
    }

    /// Creates, idempotently, what the configured backends need (`event-processor setup`).
    pub async fn setup(&self) -> Result<(), ConfigError> {
        self.store.setup().await.map_err(ConfigError::Store)?;
        self.stream.setup().await.map_err(ConfigError::Stream)?;
        Ok(())
    }
}

/// The read side of the configured stream, for `listen`.
pub async fn event_source(config: &StreamConfig) -> Result<Arc<dyn EventSource>, ConfigError> {
    match config {
        StreamConfig::Memory => Err(invalid(
            EVENT_STREAM_VAR,
            "memory:",
            "a memory stream lives inside the serving process and cannot be listened to",
        )),
        #[cfg(feature = "sqlite")]
        StreamConfig::Sqlite(path) => Ok(sqlite_db(path, EVENT_STREAM_VAR)?),
        #[cfg(not(feature = "sqlite"))]
        StreamConfig::Sqlite(_) => Err(not_compiled(EVENT_STREAM_VAR, "SQLite", "sqlite")),
        #[cfg(feature = "kafka")]
        StreamConfig::Kafka { brokers } => Ok(Arc::new(crate::adapters::kafka::KafkaSource::new(
            brokers,
            crate::adapters::kafka::KafkaOptions::default(),
        ))),
        #[cfg(not(feature = "kafka"))]
        StreamConfig::Kafka { .. } => Err(not_compiled(EVENT_STREAM_VAR, "Kafka", "kafka")),
        #[cfg(feature = "aws")]
        StreamConfig::Kinesis { stream } => Ok(Arc::new(kinesis(stream).await)),
        #[cfg(not(feature = "aws"))]
        StreamConfig::Kinesis { .. } => Err(not_compiled(EVENT_STREAM_VAR, "Kinesis", "aws")),
    }
}

#[allow(dead_code, reason = "unused when every backend feature is compiled in")]
fn not_compiled(
    variable: &'static str,
    backend: &'static str,
    feature: &'static str,
) -> ConfigError {
    ConfigError::FeatureNotCompiled {
        variable,
        backend,
        feature,
    }
}

async fn open_store(config: &Config) -> Result<Arc<dyn SchemaStore>, ConfigError> {
    match &config.store {
        StoreConfig::Memory => Ok(Arc::new(MemorySchemaStore::new())),
        #[cfg(feature = "sqlite")]
        StoreConfig::Sqlite(path) => Ok(sqlite_db(path, SCHEMA_STORE_VAR)?),
        #[cfg(not(feature = "sqlite"))]
        StoreConfig::Sqlite(_) => Err(not_compiled(SCHEMA_STORE_VAR, "SQLite", "sqlite")),
        #[cfg(feature = "postgres")]
        StoreConfig::Postgres(url) => Ok(Arc::new(
            crate::adapters::postgres::PostgresStore::connect(url)
                .await
                .map_err(|e| ConfigError::Open {
                    variable: SCHEMA_STORE_VAR,
                    source: crate::ports::cause(e),
                })?,
        )),
        #[cfg(not(feature = "postgres"))]
        StoreConfig::Postgres(_) => Err(not_compiled(SCHEMA_STORE_VAR, "PostgreSQL", "postgres")),
        #[cfg(feature = "aws")]
        StoreConfig::DynamoDb { table } => Ok(Arc::new(
            crate::adapters::dynamodb::DynamoDbSchemaStore::from_config(
                crate::adapters::aws::shared_config().await,
                table,
            ),
        )),
        #[cfg(not(feature = "aws"))]
        StoreConfig::DynamoDb { .. } => Err(not_compiled(SCHEMA_STORE_VAR, "DynamoDB", "aws")),
    }
}

async fn open_stream(config: &Config) -> Result<Arc<dyn EventStream>, ConfigError> {
    match &config.stream {
        StreamConfig::Memory => Ok(Arc::new(MemoryEventStream::new())),
        #[cfg(feature = "sqlite")]
        StreamConfig::Sqlite(path) => Ok(sqlite_db(path, EVENT_STREAM_VAR)?),
        #[cfg(not(feature = "sqlite"))]
        StreamConfig::Sqlite(_) => Err(not_compiled(EVENT_STREAM_VAR, "SQLite", "sqlite")),
        #[cfg(feature = "kafka")]
        StreamConfig::Kafka { brokers } => Ok(Arc::new(
            crate::adapters::kafka::KafkaStream::connect(
                brokers,
                crate::adapters::kafka::KafkaOptions::default(),
            )
            .map_err(|e| ConfigError::Open {
                variable: EVENT_STREAM_VAR,
                source: crate::ports::cause(e),
            })?,
        )),
        #[cfg(not(feature = "kafka"))]
        StreamConfig::Kafka { .. } => Err(not_compiled(EVENT_STREAM_VAR, "Kafka", "kafka")),
        #[cfg(feature = "aws")]
        StreamConfig::Kinesis { stream } => Ok(Arc::new(kinesis(stream).await)),
        #[cfg(not(feature = "aws"))]
        StreamConfig::Kinesis { .. } => Err(not_compiled(EVENT_STREAM_VAR, "Kinesis", "aws")),
    }
}

/// The Kinesis adapter serves both sides: publishing, and `listen`.
#[cfg(feature = "aws")]
async fn kinesis(stream: &str) -> crate::adapters::kinesis::KinesisEventStream {
    crate::adapters::kinesis::KinesisEventStream::from_config(
        crate::adapters::aws::shared_config().await,
        stream,
    )
}

/// One handle (one writer thread) per file, shared when schemas and events use the same file.
#[cfg(feature = "sqlite")]
fn sqlite_db(
    path: &std::path::Path,
    variable: &'static str,
) -> Result<Arc<crate::adapters::sqlite::SqliteDb>, ConfigError> {
    crate::adapters::sqlite::SqliteDb::open_shared(path).map_err(|e| ConfigError::Open {
        variable,
        source: crate::ports::cause(e),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_documented_form_parses() {
        assert_eq!(StoreConfig::parse("memory:").unwrap(), StoreConfig::Memory);
        assert_eq!(
            StoreConfig::parse("sqlite:a/b.db").unwrap(),
            StoreConfig::Sqlite("a/b.db".into())
        );
        assert_eq!(
            StoreConfig::parse("dynamodb:Schemas").unwrap(),
            StoreConfig::DynamoDb {
                table: "Schemas".into()
            }
        );
        assert!(matches!(
            StoreConfig::parse("postgres://u@h/db").unwrap(),
            StoreConfig::Postgres(_)
        ));
        assert_eq!(
            StreamConfig::parse("kafka://h1:9092,h2:9093").unwrap(),
            StreamConfig::Kafka {
                brokers: "h1:9092,h2:9093".into()
            }
        );
        assert_eq!(
            StreamConfig::parse("kinesis:events").unwrap(),
            StreamConfig::Kinesis {
                stream: "events".into()
            }
        );
    }

    #[test]
    fn a_value_that_does_not_parse_names_its_variable() {
        for (result, variable) in [
            (StoreConfig::parse("mysql://x").err(), SCHEMA_STORE_VAR),
            (StoreConfig::parse("sqlite:").err(), SCHEMA_STORE_VAR),
            (
                StreamConfig::parse("kafka://nohost").err(),
                EVENT_STREAM_VAR,
            ),
            (StreamConfig::parse("kinesis:").err(), EVENT_STREAM_VAR),
        ] {
            let message = result.expect("should not parse").to_string();
            assert!(message.starts_with(variable), "{message}");
        }
    }

    // Needs a backend that is not compiled in: Kafka, unless the `kafka` feature is on.
    #[cfg(not(feature = "kafka"))]
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
}
