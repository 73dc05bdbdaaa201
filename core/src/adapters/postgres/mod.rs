//! The PostgreSQL store (feature `postgres`), for the docker-compose stack and for operators
//! who already run PostgreSQL: schemas (this module), rejected events (`rejections`) and
//! idempotency keys (`idempotency`), all on one [`PostgresStore`] and its pool.
//!
//! Every table of the gateway lives in the PostgreSQL schema `event_processor`, so that none
//! can collide with a table of another application in the same database (the original service
//! has a `public.event_schemas` of its own): `event_processor.schemas` holds every version of
//! every pair, `event_processor.compatibility` each pair's own mode, `rejections` (with
//! `rejection_pairs`) the rejected events, `idempotency_keys` the keys, and
//! `event_processor.migrations` what has been applied. Statements name their tables with the
//! schema, so a role's `search_path` does not matter. Each table's layout, and why, is in the
//! migration that created it.
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
//! advisory lock (so gateways starting together do not race), by [`open`] and again,
//! idempotently, by `setup`. The same transaction adopts a database written by the previous
//! release, which kept its table and its bookkeeping in `public` (see
//! `adopt_previous_release`).

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{
    Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime, Transaction,
};
use serde_json::Value;
use tokio_postgres::NoTls;
use tokio_postgres::error::SqlState;

use crate::compat::Mode;
use crate::domain::{ClientId, EventName, SchemaVersion};
use crate::error::cause;
use crate::ports::{
    DEFAULT_REJECTIONS_TTL, Insert, RegisteredEvent, RegisteredSchema, SchemaStore, StoreError,
    VersionInfo,
};
use crate::retry::{Deadline, Failure, RetryError, RetryPolicy, retry};

/// The migrations, in order. A migration is never edited once released: add a new one.
///
/// They run with `search_path = event_processor`: migration 1 was released when the table
/// lived in `public` and names it without a schema. Later ones name their schema. From 4 on they
/// live beside this module.
const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "create_event_schemas",
        sql: include_str!("../../../migrations/postgres/0001_create_event_schemas.sql"),
    },
    Migration {
        version: 2,
        name: "rename_event_schemas_to_schemas",
        sql: include_str!("../../../migrations/postgres/0002_rename_event_schemas_to_schemas.sql"),
    },
    Migration {
        version: 3,
        name: "create_compatibility",
        sql: include_str!("../../../migrations/postgres/0003_create_compatibility.sql"),
    },
    Migration {
        version: 4,
        name: "schemas_without_jsonb_for_u0000",
        sql: include_str!("../../../migrations/postgres/0004_schemas_without_jsonb_for_u0000.sql"),
    },
    Migration {
        version: 5,
        name: "create_rejections",
        sql: include_str!("../../../migrations/postgres/0005_create_rejections.sql"),
    },
    Migration {
        version: 6,
        name: "create_idempotency_keys",
        sql: include_str!("../../../migrations/postgres/0006_create_idempotency_keys.sql"),
    },
];

/// Serializes migration runs across processes (`pg_advisory_xact_lock` key; arbitrary, fixed).
/// The previous release took the same lock, so it and this one never migrate at once either.
const MIGRATION_LOCK: i64 = 0x6576_656e_7470_726f; // "eventpro"

/// Most connections one gateway holds.
const POOL_SIZE: usize = 16;
/// How long a request waits for a pooled connection, or for a new one to be established.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long migrations may take at start-up (`setup`, `open`): they hold an advisory lock
/// other gateways may be waiting on.
const MIGRATION_DEADLINE: Duration = Duration::from_secs(60);

/// A `timestamptz` column as `domain::rfc3339` writes every time: UTC, milliseconds
/// (truncated, as there), `Z`. Whatever the session's time zone.
macro_rules! rfc3339 {
    ($column:literal) => {
        concat!(
            "to_char(",
            $column,
            r#" AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')"#
        )
    };
}

macro_rules! registered_at {
    () => {
        rfc3339!("registered_at")
    };
}

/// The columns `registered` reads.
macro_rules! schema_columns {
    () => {
        concat!("version, schema_text, ", registered_at!())
    };
}

// After the macros above, which they use.
mod idempotency;
pub mod import;
mod rejections;

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
#[error("unreadable row in PostgreSQL table event_processor.{table}: {detail}")]
struct CorruptRow {
    table: &'static str,
    detail: String,
}

/// One failed attempt.
#[derive(Debug, thiserror::Error)]
enum PgError {
    #[error(transparent)]
    Db(#[from] tokio_postgres::Error),
    #[error(transparent)]
    Pool(#[from] PoolError),
    #[error(transparent)]
    Corrupt(#[from] CorruptRow),
    /// A row read under lock was deleted between the statement that found it and the one that
    /// locked it (an expired idempotency key purged meanwhile): the next attempt starts over.
    #[error("a row was deleted concurrently while it was being read")]
    Vanished,
}

impl PgError {
    /// Whether another attempt, on another connection, may succeed.
    fn classify(self) -> Failure<PgError> {
        let transient = match &self {
            PgError::Db(e) => is_transient(e),
            // A connection could not be established: unless the server refused it for good
            // (e.g. a wrong password), it may be restarting. A pool timeout already waited.
            PgError::Pool(PoolError::Backend(e)) => e.code().is_none() || is_transient(e),
            PgError::Vanished => true,
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

/// Schemas, rejected events and idempotency keys in PostgreSQL tables, through one connection
/// pool: one value serves as the gateway's `SchemaStore`, `RejectionStore` and
/// `IdempotencyStore`.
#[derive(Clone)]
pub struct PostgresStore {
    pool: Pool,
    retry: RetryPolicy,
    /// How long rejections are kept (`REJECTIONS_TTL`).
    rejections_ttl: Duration,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may hold a password: never print it.
        f.debug_struct("PostgresStore")
            .field("pool", &self.pool.status())
            .field("rejections_ttl", &self.rejections_ttl)
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
        rejections_ttl: DEFAULT_REJECTIONS_TTL,
    };
    store.migrate().await.map_err(OpenError::Migrate)?;
    Ok(store)
}

impl PostgresStore {
    /// Keeps rejections for `ttl` (`REJECTIONS_TTL`) instead of [`DEFAULT_REJECTIONS_TTL`]:
    /// older ones are no longer read, and the next keep of their pair deletes them.
    pub fn with_rejections_ttl(mut self, ttl: Duration) -> Self {
        self.rejections_ttl = ttl;
        self
    }

    /// Applies, in order and each once, the migrations this database has not seen yet, after
    /// adopting the previous release's tables if the database has them. One transaction under
    /// the advisory lock: a gateway that waited for the lock finds the work done.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let deadline = Deadline::after(MIGRATION_DEADLINE);
        retry(self.retry, deadline, move || async move {
            let mut client = self.pool.get().await?;
            let tx = client.transaction().await?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
                .await?;
            // Migration 1 names its table without a schema (it was released for `public`);
            // LOCAL: the pooled connection gets its own path back at commit or rollback.
            tx.batch_execute("SET LOCAL search_path TO event_processor")
                .await?;
            let found = tx
                .query_one(
                    "SELECT to_regnamespace('event_processor') IS NOT NULL,
                            to_regclass('event_processor.migrations') IS NOT NULL,
                            to_regclass('public.event_processor_migrations') IS NOT NULL",
                    &[],
                )
                .await?;
            let (has_schema, has_bookkeeping, has_previous_release): (bool, bool, bool) =
                (found.get(0), found.get(1), found.get(2));
            // Create only what is missing: `CREATE ... IF NOT EXISTS` checks the privilege
            // to create first, which a role given a schema made by its DBA may not have.
            if !has_schema {
                tx.batch_execute("CREATE SCHEMA event_processor").await?;
            }
            if !has_bookkeeping {
                tx.batch_execute(
                    "CREATE TABLE event_processor.migrations (
                         version    integer     PRIMARY KEY,
                         name       text        NOT NULL,
                         applied_at timestamptz NOT NULL DEFAULT now()
                     )",
                )
                .await?;
            }
            let applied: Vec<i32> = tx
                .query("SELECT version FROM event_processor.migrations", &[])
                .await?
                .iter()
                .map(|row| row.get(0))
                .collect();
            let applied = if !has_previous_release {
                applied
            } else if applied.is_empty() {
                adopt_previous_release(&tx).await?
            } else {
                // Both bookkeepings: a gateway of the previous release started on this
                // database after it was adopted, and made itself new tables in `public`.
                // They are not ours to move over the adopted ones, nor to drop.
                tracing::warn!(
                    "public.event_processor_migrations exists beside \
                     event_processor.migrations: a gateway of the previous release ran after \
                     the upgrade; its tables in public are left as they are and are not served"
                );
                applied
            };
            for migration in MIGRATIONS {
                if applied.contains(&migration.version) {
                    continue;
                }
                tx.batch_execute(migration.sql).await?;
                tx.execute(
                    "INSERT INTO event_processor.migrations (version, name) VALUES ($1, $2)",
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

/// Takes over a database written by the previous release, inside the migration transaction:
/// that release kept `event_schemas` (this release's migration 1) and its bookkeeping
/// `event_processor_migrations` in `public`. The table moves into our schema with its rows,
/// keys and checks (`SET SCHEMA` changes no data); the migrations that release recorded are
/// recorded here with their times; its bookkeeping table is dropped. The pending migrations
/// then run as on any database (migration 2 gives the table its short name).
///
/// A `public.event_schemas` counts as ours only through `public.event_processor_migrations`
/// recording migration 1, which created it: without that table, it belongs to someone else
/// (the original service has one, of another layout) and is never touched.
///
/// Returns the migrations now recorded as applied.
async fn adopt_previous_release(tx: &Transaction<'_>) -> Result<Vec<i32>, tokio_postgres::Error> {
    let applied: Vec<i32> = tx
        .query(
            "INSERT INTO event_processor.migrations (version, name, applied_at)
             SELECT version, name, applied_at FROM public.event_processor_migrations
             RETURNING version",
            &[],
        )
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect();
    if applied.contains(&1) {
        tx.batch_execute("ALTER TABLE public.event_schemas SET SCHEMA event_processor")
            .await?;
    }
    tx.batch_execute("DROP TABLE public.event_processor_migrations")
        .await?;
    tracing::info!(
        ?applied,
        "adopted the previous release's tables from public into the schema event_processor"
    );
    Ok(applied)
}

fn corrupt(table: &'static str, detail: impl std::fmt::Display) -> CorruptRow {
    CorruptRow {
        table,
        detail: detail.to_string(),
    }
}

/// A column of a row this code wrote; a value of another type is a corrupt row.
fn column<'a, T: tokio_postgres::types::FromSql<'a>>(
    table: &'static str,
    row: &'a tokio_postgres::Row,
    index: usize,
) -> Result<T, CorruptRow> {
    row.try_get(index).map_err(|e| corrupt(table, e))
}

fn version_of(table: &'static str, raw: i64) -> Result<SchemaVersion, CorruptRow> {
    u32::try_from(raw)
        .ok()
        .and_then(SchemaVersion::new)
        .ok_or_else(|| corrupt(table, format!("version {raw}")))
}

/// A version as a statement parameter. `int8`: every `u32` fits (a `?version=` beyond the
/// column's `integer` range is simply not found), and PostgreSQL compares it with the
/// `integer` column through the primary key's index.
fn param(version: SchemaVersion) -> i64 {
    i64::from(version.get())
}

/// Whether a string or key anywhere in `value` holds U+0000, which jsonb cannot store.
fn holds_nul(value: &Value) -> bool {
    match value {
        Value::String(text) => text.contains('\0'),
        Value::Array(items) => items.iter().any(holds_nul),
        Value::Object(members) => members
            .iter()
            .any(|(key, value)| key.contains('\0') || holds_nul(value)),
        Value::Null | Value::Bool(_) | Value::Number(_) => false,
    }
}

/// A `schemas` row read as `schema_columns!` lists them.
fn registered(
    client: &ClientId,
    event: &EventName,
    row: &tokio_postgres::Row,
) -> Result<RegisteredSchema, CorruptRow> {
    // `schema_text`, not the jsonb column: jsonb rewrites numbers (-1.5e10 reads back as
    // -15000000000), and a schema must read back as the JSON value registered.
    let schema: &str = column("schemas", row, 1)?;
    Ok(RegisteredSchema {
        client: client.clone(),
        event: event.clone(),
        version: version_of("schemas", column::<i32>("schemas", row, 0)?.into())?,
        schema: serde_json::from_str(schema).map_err(|e| corrupt("schemas", e))?,
        registered_at: column("schemas", row, 2)?,
    })
}

/// A version of the pair (`None`: the latest) on a pooled connection.
async fn schema_version(
    conn: &deadpool_postgres::Client,
    client: &ClientId,
    event: &EventName,
    wanted: Option<SchemaVersion>,
) -> Result<Option<RegisteredSchema>, Failure<PgError>> {
    let row = match wanted {
        None => {
            let statement = conn
                .prepare_cached(concat!(
                    "SELECT ",
                    schema_columns!(),
                    " FROM event_processor.schemas WHERE client = $1 AND event = $2
                      ORDER BY version DESC LIMIT 1"
                ))
                .await?;
            conn.query_opt(&statement, &[&client.as_str(), &event.as_str()])
                .await?
        }
        Some(version) => {
            let statement = conn
                .prepare_cached(concat!(
                    "SELECT ",
                    schema_columns!(),
                    " FROM event_processor.schemas
                      WHERE client = $1 AND event = $2 AND version = $3::int8"
                ))
                .await?;
            conn.query_opt(
                &statement,
                &[&client.as_str(), &event.as_str(), &param(version)],
            )
            .await?
        }
    };
    Ok(row.map(|row| registered(client, event, &row)).transpose()?)
}

#[async_trait]
impl SchemaStore for PostgresStore {
    /// `INSERT ... ON CONFLICT DO NOTHING`: the primary key decides the race, across pools
    /// and processes. A loser reads the winner's row back in a second statement, which (under
    /// READ COMMITTED, with a fresh snapshot) sees it, because the conflicting insert had to
    /// commit before ON CONFLICT could decide. The winner is the lowest version from the one
    /// asked for on, as in the memory store: a later version also takes this one.
    async fn insert_version(
        &self,
        client: &ClientId,
        event: &EventName,
        version: SchemaVersion,
        schema: &Value,
        deadline: Deadline,
    ) -> Result<Insert, StoreError> {
        let text = &schema.to_string();
        // jsonb refuses U+0000: such a schema gets no jsonb copy (see migration 4); it is
        // served from `schema_text` like any other.
        let queryable = (!holds_nul(schema)).then_some(text.as_str());
        retry(self.retry, deadline, move || async move {
            let conn = self.pool.get().await?;
            let (client_name, event_name, version) =
                (client.as_str(), event.as_str(), param(version));
            let insert = conn
                .prepare_cached(
                    "INSERT INTO event_processor.schemas
                         (client, event, version, schema, schema_text)
                     SELECT $1, $2, $3::int8, $5::text::jsonb, $4::text
                     WHERE NOT EXISTS (
                         SELECT 1 FROM event_processor.schemas
                         WHERE client = $1 AND event = $2 AND version >= $3::int8
                     )
                     ON CONFLICT (client, event, version) DO NOTHING
                     RETURNING version",
                )
                .await?;
            let inserted = conn
                .query_opt(
                    &insert,
                    &[&client_name, &event_name, &version, text, &queryable],
                )
                .await?;
            if inserted.is_some() {
                return Ok(Insert::Inserted);
            }
            // A retry after a lost reply can land here and read back its own row: the
            // caller then sees its own schema as the winner's, which is what happened.
            let winner = conn
                .prepare_cached(concat!(
                    "SELECT ",
                    schema_columns!(),
                    " FROM event_processor.schemas
                      WHERE client = $1 AND event = $2 AND version >= $3::int8
                      ORDER BY version LIMIT 1"
                ))
                .await?;
            match conn
                .query_opt(&winner, &[&client_name, &event_name, &version])
                .await?
            {
                Some(row) => Ok(Insert::Taken(registered(client, event, &row)?)),
                None => Err(corrupt(
                    "schemas",
                    "a conflicting row vanished before it could be read",
                )
                .into()),
            }
        })
        .await
        .map_err(store_error)
    }

    async fn get(
        &self,
        client: &ClientId,
        event: &EventName,
        version: Option<SchemaVersion>,
        deadline: Deadline,
    ) -> Result<Option<RegisteredSchema>, StoreError> {
        retry(self.retry, deadline, move || async move {
            let conn = self.pool.get().await?;
            schema_version(&conn, client, event, version).await
        })
        .await
        .map_err(store_error)
    }

    async fn history(
        &self,
        client: &ClientId,
        event: &EventName,
        deadline: Deadline,
    ) -> Result<Vec<RegisteredSchema>, StoreError> {
        retry(self.retry, deadline, move || async move {
            let conn = self.pool.get().await?;
            let statement = conn
                .prepare_cached(concat!(
                    "SELECT ",
                    schema_columns!(),
                    " FROM event_processor.schemas WHERE client = $1 AND event = $2
                      ORDER BY version"
                ))
                .await?;
            let rows = conn
                .query(&statement, &[&client.as_str(), &event.as_str()])
                .await?;
            let history: Result<Vec<_>, _> = rows
                .iter()
                .map(|row| registered(client, event, row))
                .collect();
            Ok(history?)
        })
        .await
        .map_err(store_error)
    }

    async fn versions(
        &self,
        client: &ClientId,
        event: &EventName,
        deadline: Deadline,
    ) -> Result<Vec<VersionInfo>, StoreError> {
        retry(self.retry, deadline, move || async move {
            let conn = self.pool.get().await?;
            let statement = conn
                .prepare_cached(concat!(
                    "SELECT version, ",
                    registered_at!(),
                    " FROM event_processor.schemas WHERE client = $1 AND event = $2
                      ORDER BY version"
                ))
                .await?;
            let rows = conn
                .query(&statement, &[&client.as_str(), &event.as_str()])
                .await?;
            let versions: Result<Vec<_>, CorruptRow> = rows
                .iter()
                .map(|row| {
                    Ok(VersionInfo {
                        version: version_of("schemas", column::<i32>("schemas", row, 0)?.into())?,
                        registered_at: column("schemas", row, 1)?,
                    })
                })
                .collect();
            Ok(versions?)
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
            // `event` is `COLLATE "C"`: sorted byte-wise, as every other store lists pairs.
            let statement = conn
                .prepare_cached(
                    "SELECT event, max(version) FROM event_processor.schemas
                     WHERE client = $1 GROUP BY event ORDER BY event",
                )
                .await?;
            let rows = conn.query(&statement, &[&client.as_str()]).await?;
            let events: Result<Vec<RegisteredEvent>, CorruptRow> = rows
                .iter()
                .map(|row| {
                    let event: &str = column("schemas", row, 0)?;
                    Ok(RegisteredEvent {
                        client: client.clone(),
                        event: EventName::parse(event).map_err(|e| corrupt("schemas", e))?,
                        version: version_of("schemas", column::<i32>("schemas", row, 1)?.into())?,
                    })
                })
                .collect();
            Ok(events?)
        })
        .await
        .map_err(store_error)
    }

    async fn compatibility(
        &self,
        client: &ClientId,
        event: &EventName,
        deadline: Deadline,
    ) -> Result<Option<Mode>, StoreError> {
        retry(self.retry, deadline, move || async move {
            let conn = self.pool.get().await?;
            let statement = conn
                .prepare_cached(
                    "SELECT mode FROM event_processor.compatibility
                     WHERE client = $1 AND event = $2",
                )
                .await?;
            let Some(row) = conn
                .query_opt(&statement, &[&client.as_str(), &event.as_str()])
                .await?
            else {
                return Ok(None);
            };
            let mode: &str = column("compatibility", &row, 0)?;
            Ok(Some(mode.parse().map_err(|e| corrupt("compatibility", e))?))
        })
        .await
        .map_err(store_error)
    }

    /// An upsert: repeating it after a lost reply sets the same mode again.
    async fn set_compatibility(
        &self,
        client: &ClientId,
        event: &EventName,
        mode: Mode,
        deadline: Deadline,
    ) -> Result<(), StoreError> {
        retry(self.retry, deadline, move || async move {
            let conn = self.pool.get().await?;
            let statement = conn
                .prepare_cached(
                    "INSERT INTO event_processor.compatibility (client, event, mode)
                     VALUES ($1, $2, $3)
                     ON CONFLICT (client, event) DO UPDATE SET mode = excluded.mode",
                )
                .await?;
            conn.execute(
                &statement,
                &[&client.as_str(), &event.as_str(), &mode.as_str()],
            )
            .await?;
            Ok(())
        })
        .await
        .map_err(store_error)
    }

    /// Applies pending migrations (already done on open; repeating is a no-op).
    async fn setup(&self) -> Result<(), StoreError> {
        self.migrate().await
    }
}
