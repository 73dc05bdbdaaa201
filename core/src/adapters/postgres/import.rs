//! Reading the original service's schemas for `setup --import-original` (see `crate::import`,
//! which takes them through registration): its table `public.event_schemas(client_id,
//! event_name, event_schema)`, as it is.
//!
//! On a connection of its own, not the store's pool: the original's database may be another
//! one than `SCHEMA_STORE`'s (a gateway on DynamoDB or SQLite importing from the original's
//! PostgreSQL), and opening a store there would create our schema in it. The rows are read in
//! one `READ ONLY` transaction, so the server itself guarantees the original table is never
//! modified, whatever this code does.

use std::str::FromStr;
use std::time::Duration;

use tokio_postgres::NoTls;
use tokio_postgres::error::SqlState;

use crate::error::cause;
use crate::import::{ImportError, OriginalSchema};

/// How long connecting and reading the whole table may take.
const READ_TIMEOUT: Duration = Duration::from_secs(60);
/// How long establishing the connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Every row of the original's table at `url`, ordered by client and event (byte-wise), each
/// column as text (`event_schema` is `json`, which keeps the text as it was written).
pub async fn read_original(url: &str) -> Result<Vec<OriginalSchema>, ImportError> {
    tokio::time::timeout(READ_TIMEOUT, read(url))
        .await
        .map_err(|elapsed| ImportError::Read(cause(elapsed)))?
}

async fn read(url: &str) -> Result<Vec<OriginalSchema>, ImportError> {
    let mut config =
        tokio_postgres::Config::from_str(url).map_err(|e| ImportError::Url(cause(e)))?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    if config.get_application_name().is_none() {
        config.application_name("event-processor import");
    }
    let (mut client, connection) = config
        .connect(NoTls)
        .await
        .map_err(|e| ImportError::Connect(cause(e)))?;
    let connection = tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(%error, "the import's PostgreSQL connection ended");
        }
    });
    let read = async {
        let tx = client
            .build_transaction()
            .read_only(true)
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .start()
            .await?;
        let exists: bool = tx
            .query_one(
                "SELECT to_regclass('public.event_schemas') IS NOT NULL",
                &[],
            )
            .await?
            .get(0);
        if !exists {
            return Ok(None);
        }
        // `::text` on every column: any text-like name column and a json, jsonb or text
        // schema column read the same way. `COLLATE "C"`: byte-wise, as the gateway lists.
        let rows = tx
            .query(
                r#"SELECT client_id::text, event_name::text, event_schema::text
                   FROM public.event_schemas
                   ORDER BY client_id::text COLLATE "C", event_name::text COLLATE "C""#,
                &[],
            )
            .await?;
        tx.commit().await?;
        Ok(Some(rows))
    };
    let rows = read.await.map_err(|error: tokio_postgres::Error| {
        if error.code() == Some(&SqlState::UNDEFINED_COLUMN) {
            ImportError::NotTheOriginalLayout(cause(error))
        } else {
            ImportError::Read(cause(error))
        }
    });
    drop(client);
    let _ = connection.await;
    let rows = rows?.ok_or(ImportError::NoOriginalTable)?;
    rows.iter()
        .map(|row| {
            Ok(OriginalSchema {
                client_id: row.try_get(0)?,
                event_name: row.try_get(1)?,
                event_schema: row.try_get(2)?,
            })
        })
        .collect::<Result<_, tokio_postgres::Error>>()
        .map_err(|e| ImportError::Read(cause(e)))
}
