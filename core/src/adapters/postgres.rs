//! The PostgreSQL schema store (feature `postgres`), for the docker-compose stack and for
//! operators who already run PostgreSQL.
//!
//! Built on tokio-postgres with a deadpool pool rather than sqlx: the store runs a handful of
//! fixed statements, so it needs neither sqlx's macros nor a database at compile time, and the
//! dependency tree stays small. The pool verifies a connection before lending it again
//! (`RecyclingMethod::Verified`), so a backend that was terminated, or a server that
//! restarted, is replaced by a fresh connection on the next request without intervention.
//!
//! Every statement is parameterized. Transient failures (a dropped connection, a server
//! shutting down, a serialization conflict) are retried by the one retry policy (`retry`)
//! until the request's deadline, each attempt cut off by it; then the call fails with
//! [`StoreError::Unavailable`], which the HTTP layer turns into `503` with `Retry-After`.
//!
//! Migrations are SQL files embedded in the binary and applied in order, each once, under an
//! advisory lock (so gateways starting together do not race), by [`PostgresStore::connect`]
//! and again, idempotently, by `setup`.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime};
use serde_json::Value;
use tokio_postgres::NoTls;
use tokio_postgres::error::SqlState;

use crate::domain::{ClientId, EventName, SchemaVersion};
use crate::error::cause;
use crate::ports::{Insert, RegisteredEvent, RegisteredSchema, SchemaStore, StoreError};
use crate::retry::{Deadline, Failure, RetryError, RetryPolicy, retry};

/// The migrations, in order. A migration is never edited once released: add a new one.
const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    name: "create_event_schemas",
    sql: include_str!("../../migrations/postgres/0001_create_event_schemas.sql"),
}];

/// Serializes migration runs across processes (`pg_advisory_xact_lock` key; arbitrary, fixed).
const MIGRATION_LOCK: i64 = 0x6576_656e_7470_726f; // "eventpro"

/// Most connections one gateway holds.
const POOL_SIZE: usize = 16;
/// How long a request waits for a pooled connection, or for a new one to be established.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long migrations may take at start-up (`setup`, `open`): they hold an advisory lock
/// other gateways may be waiting on.
const MIGRATION_DEADLINE: Duration = Duration::from_secs(60);

struct Migration {
    version: i32,
    name: &'static str,
    sql: &'static str,
}

/// Why the store could not be opened (`SCHEMA_STORE=postgres://...`).
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("the PostgreSQL URL does not parse")]
    Url(#[source] tokio_postgres::Error),
    #[error("could not build the PostgreSQL connection pool")]
    Pool(#[source] deadpool_postgres::BuildError),
    #[error("could not apply the PostgreSQL migrations")]
    Migrate(#[source] StoreError),
}

/// A row this code did not write correctly (hand-edited table, other tool).
#[derive(Debug, thiserror::Error)]
#[error("unreadable row in PostgreSQL table event_schemas: {0}")]
struct CorruptRow(String);

/// One failed attempt.
#[derive(Debug, thiserror::Error)]
enum PgError {
    #[error(transparent)]
    Db(#[from] tokio_postgres::Error),
    #[error(transparent)]
    Pool(#[from] PoolError),
    #[error(transparent)]
    Corrupt(#[from] CorruptRow),
}

impl PgError {
    /// Whether another attempt, on another connection, may succeed.
    fn classify(self) -> Failure<PgError> {
        let transient = match &self {
            PgError::Db(e) => is_transient(e),
            // A connection could not be established: unless the server refused it for good
            // (e.g. a wrong password), it may be restarting. A pool timeout already waited.
            PgError::Pool(PoolError::Backend(e)) => e.code().is_none() || is_transient(e),
            PgError::Pool(_) | PgError::Corrupt(_) => false,
        };
        if transient {
            Failure::Transient(self)
        } else {
            Failure::Permanent(self)
        }
    }
}

/// Lets `?` classify a failure inside an attempt.
macro_rules! classify_on_question_mark {
    ($($error:ty),*) => {$(
        impl From<$error> for Failure<PgError> {
            fn from(error: $error) -> Self {
                PgError::from(error).classify()
            }
        }
    )*};
}
classify_on_question_mark!(tokio_postgres::Error, PoolError, CorruptRow);

fn store_error(error: RetryError<PgError>) -> StoreError {
    match error {
        RetryError::Permanent(PgError::Corrupt(_)) => {
            tracing::error!(error = %crate::error::ErrorChain(&error), "unreadable PostgreSQL row");
            StoreError::Corrupt(cause(error))
        }
        error => StoreError::Unavailable(cause(error)),
    }
}

/// A dropped connection, a server going away or refusing connections for now, or a
/// serialization conflict: the same statement may succeed on a fresh connection.
fn is_transient(error: &tokio_postgres::Error) -> bool {
    if error.is_closed() {
        return true;
    }
    match error.code() {
        // No SQLSTATE: transient if the connection's I/O failed (reset, refused, timed out).
        None => {
            let mut source = std::error::Error::source(error);
            while let Some(e) = source {
                if e.is::<std::io::Error>() {
                    return true;
                }
                source = e.source();
            }
            false
        }
        Some(code) => {
            code.code().starts_with("08") // connection_exception class
                || [
                    SqlState::ADMIN_SHUTDOWN,
                    SqlState::CRASH_SHUTDOWN,
                    SqlState::CANNOT_CONNECT_NOW,
                    SqlState::T_R_SERIALIZATION_FAILURE,
                    SqlState::T_R_DEADLOCK_DETECTED,
                    SqlState::TOO_MANY_CONNECTIONS,
                ]
                .contains(code)
        }
    }
}

/// Schemas in a PostgreSQL table, through a connection pool.
#[derive(Clone)]
pub struct PostgresStore {
    pool: Pool,
    retry: RetryPolicy,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may hold a password: never print it.
        f.debug_struct("PostgresStore")
            .field("pool", &self.pool.status())
            .finish()
    }
}

/// Opens a pool on `url` (`postgres://user[:password]@host[:port]/database[?...]`) and
/// applies any pending migration. Fails if the server cannot be reached now.
pub async fn open(url: &str) -> Result<PostgresStore, OpenError> {
    let mut config = tokio_postgres::Config::from_str(url).map_err(OpenError::Url)?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    if config.get_application_name().is_none() {
        config.application_name("event-processor");
    }
    let manager = Manager::from_config(
        config,
        NoTls,
        ManagerConfig {
            // Check a pooled connection before lending it again, so a terminated backend
            // is replaced instead of failing the next request.
            recycling_method: RecyclingMethod::Verified,
        },
    );
    let pool = Pool::builder(manager)
        .max_size(POOL_SIZE)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(CONNECT_TIMEOUT))
        .create_timeout(Some(CONNECT_TIMEOUT))
        .recycle_timeout(Some(CONNECT_TIMEOUT))
        .build()
        .map_err(OpenError::Pool)?;
    let store = PostgresStore {
        pool,
        retry: RetryPolicy::default(),
    };
    store.migrate().await.map_err(OpenError::Migrate)?;
    Ok(store)
}

impl PostgresStore {
    /// Applies, in order and each once, the migrations this database has not seen yet.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let deadline = Deadline::after(MIGRATION_DEADLINE);
        retry(self.retry, deadline, move || async move {
            let mut client = self.pool.get().await?;
            let tx = client.transaction().await?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
                .await?;
            tx.batch_execute(
                "CREATE TABLE IF NOT EXISTS event_processor_migrations (
                     version    integer     PRIMARY KEY,
                     name       text        NOT NULL,
                     applied_at timestamptz NOT NULL DEFAULT now()
                 )",
            )
            .await?;
            let applied: Vec<i32> = tx
                .query("SELECT version FROM event_processor_migrations", &[])
                .await?
                .iter()
                .map(|row| row.get(0))
                .collect();
            for migration in MIGRATIONS {
                if applied.contains(&migration.version) {
                    continue;
                }
                tx.batch_execute(migration.sql).await?;
                tx.execute(
                    "INSERT INTO event_processor_migrations (version, name) VALUES ($1, $2)",
                    &[&migration.version, &migration.name],
                )
                .await?;
                tracing::info!(
                    version = migration.version,
                    name = migration.name,
                    "applied PostgreSQL migration"
                );
            }
            tx.commit().await?;
            Ok(())
        })
        .await
        .map_err(store_error)
    }
}

fn corrupt(detail: impl std::fmt::Display) -> CorruptRow {
    CorruptRow(detail.to_string())
}

/// A column of a row this code wrote; a value of another type is a corrupt row.
fn column<'a, T: tokio_postgres::types::FromSql<'a>>(
    row: &'a tokio_postgres::Row,
    index: usize,
) -> Result<T, CorruptRow> {
    row.try_get(index).map_err(corrupt)
}

fn version_of(raw: i32) -> Result<SchemaVersion, CorruptRow> {
    u32::try_from(raw)
        .ok()
        .and_then(SchemaVersion::new)
        .ok_or_else(|| corrupt(format!("version {raw}")))
}

async fn latest_schema(
    pool: &Pool,
    client: &ClientId,
    event: &EventName,
) -> Result<Option<RegisteredSchema>, Failure<PgError>> {
    let conn = pool.get().await?;
    let statement = conn
        .prepare_cached(
            "SELECT version, schema_text FROM event_schemas
             WHERE client = $1 AND event = $2
             ORDER BY version DESC LIMIT 1",
        )
        .await?;
    let Some(row) = conn
        .query_opt(&statement, &[&client.as_str(), &event.as_str()])
        .await?
    else {
        return Ok(None);
    };
    let schema: &str = column(&row, 1)?;
    Ok(Some(RegisteredSchema {
        client: client.clone(),
        event: event.clone(),
        version: version_of(column(&row, 0)?)?,
        schema: serde_json::from_str(schema).map_err(corrupt)?,
    }))
}

#[async_trait]
impl SchemaStore for PostgresStore {
    /// `INSERT ... ON CONFLICT DO NOTHING`: the primary key decides the race. A loser reads
    /// the winner's row back in a second statement, which (under READ COMMITTED) sees it,
    /// because the conflicting insert had to commit before ON CONFLICT could decide.
    async fn insert_if_absent(
        &self,
        client: &ClientId,
        event: &EventName,
        schema: &Value,
        deadline: Deadline,
    ) -> Result<Insert, StoreError> {
        let text = &schema.to_string();
        retry(self.retry, deadline, move || async move {
            let conn = self.pool.get().await?;
            let statement = conn
                .prepare_cached(
                    "INSERT INTO event_schemas (client, event, version, schema, schema_text)
                     VALUES ($1, $2, 1, $3::text::jsonb, $3::text)
                     ON CONFLICT (client, event, version) DO NOTHING
                     RETURNING version",
                )
                .await?;
            let inserted = conn
                .query_opt(&statement, &[&client.as_str(), &event.as_str(), text])
                .await?;
            drop(conn);
            if let Some(row) = inserted {
                return Ok(Insert::Inserted(version_of(column(&row, 0)?)?));
            }
            // A retry after a lost reply can land here and read back its own row: the
            // caller then sees an identical existing schema, which is what happened.
            match latest_schema(&self.pool, client, event).await? {
                Some(existing) => Ok(Insert::Existing(existing)),
                None => Err(corrupt("a conflicting row vanished before it could be read").into()),
            }
        })
        .await
        .map_err(store_error)
    }

    async fn get(
        &self,
        client: &ClientId,
        event: &EventName,
        deadline: Deadline,
    ) -> Result<Option<RegisteredSchema>, StoreError> {
        retry(self.retry, deadline, move || async move {
            latest_schema(&self.pool, client, event).await
        })
        .await
        .map_err(store_error)
    }

    async fn list(
        &self,
        client: &ClientId,
        deadline: Deadline,
    ) -> Result<Vec<RegisteredEvent>, StoreError> {
        retry(self.retry, deadline, move || async move {
            let conn = self.pool.get().await?;
            let statement = conn
                .prepare_cached(
                    "SELECT event, max(version) FROM event_schemas
                     WHERE client = $1 GROUP BY event ORDER BY event",
                )
                .await?;
            let rows = conn.query(&statement, &[&client.as_str()]).await?;
            let events: Result<Vec<RegisteredEvent>, CorruptRow> = rows
                .iter()
                .map(|row| {
                    let event: &str = column(row, 0)?;
                    Ok(RegisteredEvent {
                        client: client.clone(),
                        event: EventName::parse(event).map_err(corrupt)?,
                        version: version_of(column(row, 1)?)?,
                    })
                })
                .collect();
            Ok(events?)
        })
        .await
        .map_err(store_error)
    }

    /// Applies pending migrations (already done on open; repeating is a no-op).
    async fn setup(&self) -> Result<(), StoreError> {
        self.migrate().await
    }
}
