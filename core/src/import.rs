//! The original Python/Flask service's schemas, taken over as version 1 of each pair
//! (`event-processor setup --import-original`).
//!
//! The original kept one schema per (client, event) in `public.event_schemas(client_id,
//! event_name, event_schema)`. An adapter reads those rows as they are ([`OriginalSchema`]:
//! nothing validated yet); [`import`] takes each through the processor's own registration, so
//! an imported schema passes exactly the checks a `register_event` would (name rule, JSON
//! Schema meta-validation and compilation) and gets what a registration makes (its row, its
//! Kafka topic). Nothing here writes SQL or touches the original's table.
//!
//! Idempotent: a row whose pair already has the identical schema as version 1 is counted as
//! already imported (its registration is repeated, which changes nothing but makes sure the
//! stream's per-pair resources exist); a pair whose version 1 here is another schema is left
//! alone and reported. Running the import twice therefore changes nothing the second time.
//!
//! Rows that cannot be taken are reported one by one with their reason, never fixed up: a
//! name renamed or a schema rewritten on the way would silently break the original's clients.

use std::fmt;
use std::time::Duration;

use serde_json::Value;

use crate::domain::{ClientId, EventName, NameError, SchemaVersion};
use crate::error::{Cause, ErrorChain};
use crate::processor::{ProcessError, Processor, Registered};
use crate::retry::Deadline;
use crate::schema::{CompiledSchema, SchemaError};

/// Where the original service kept its schemas.
pub const ORIGINAL_TABLE: &str = "public.event_schemas";

/// How long one row's import (a store read, a registration, a Kafka topic) may take.
const ROW_DEADLINE: Duration = Duration::from_secs(30);

/// How many of a schema's meta-validation errors a skipped row's reason quotes.
const QUOTED_ISSUES: usize = 3;

/// One row of the original's table, as read: NULLs and names of any shape included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginalSchema {
    pub client_id: Option<String>,
    pub event_name: Option<String>,
    /// The JSON text of `event_schema` (a `json` column keeps the text as it was written).
    pub event_schema: Option<String>,
}

/// Why the import could not run, or stopped. Rows it could not take are not errors: they are
/// in the [`ImportReport`].
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("the URL of the original service's database does not parse")]
    Url(#[source] Cause),
    #[error("could not connect to the original service's database")]
    Connect(#[source] Cause),
    #[error(
        "the database has no table {ORIGINAL_TABLE}: nothing to import (is this the original service's database?)"
    )]
    NoOriginalTable,
    #[error(
        "{ORIGINAL_TABLE} does not have the original service's columns (client_id, event_name, event_schema)"
    )]
    NotTheOriginalLayout(#[source] Cause),
    #[error("could not read {ORIGINAL_TABLE}")]
    Read(#[source] Cause),
    /// The store or the stream failed on this row: the rows before it are imported, the rows
    /// after it were not tried. Running the import again takes up where it stopped.
    #[error(
        "could not import {client}/{event} (after {imported} imported; running the import again resumes)"
    )]
    Register {
        client: ClientId,
        event: EventName,
        imported: usize,
        #[source]
        source: ProcessError,
    },
}

/// What became of one row.
#[derive(Debug)]
pub enum Outcome {
    /// Registered here as version 1.
    Imported,
    /// Version 1 of the pair here is already this schema (as a JSON value).
    AlreadyImported,
    Skipped(SkipReason),
}

/// Why a row was not taken. Nothing was written for it. (A reason for the report, not an
/// error: each message already holds its cause.)
#[derive(Debug, thiserror::Error)]
pub enum SkipReason {
    #[error("client_id is NULL")]
    NullClient,
    #[error("event_name is NULL")]
    NullEvent,
    #[error("the client name breaks the name rule ^[A-Za-z0-9_-]{{1,64}}$: {0}")]
    ClientName(NameError),
    #[error("the event name breaks the name rule ^[A-Za-z0-9_-]{{1,64}}$: {0}")]
    EventName(NameError),
    #[error("event_schema is NULL")]
    NullSchema,
    #[error("event_schema is not JSON this gateway can read: {0}")]
    NotJson(serde_json::Error),
    #[error("event_schema is not a valid JSON Schema: {}", describe(.0))]
    InvalidSchema(SchemaError),
    /// The pair is registered here already, with another schema as version 1.
    #[error(
        "version 1 of this pair here is a different schema (registered {registered_at}); left as it is"
    )]
    DifferentVersion1 { registered_at: String },
    /// Another registration of the pair won version 1 while this row was being imported.
    #[error("another registration of this pair took version 1 meanwhile; {0}")]
    Raced(String),
}

/// A schema's refusal with the first few reasons, on one line.
fn describe(error: &SchemaError) -> String {
    let issues = error.issues();
    if issues.is_empty() {
        return ErrorChain(error).to_string();
    }
    let quoted: Vec<String> = issues
        .iter()
        .take(QUOTED_ISSUES)
        .map(|issue| {
            let at = if issue.instance_path.is_empty() {
                "/"
            } else {
                &issue.instance_path
            };
            format!("at {at}: {}", issue.message)
        })
        .collect();
    let more = issues.len().saturating_sub(QUOTED_ISSUES);
    let more = if more > 0 {
        format!(" (and {more} more)")
    } else {
        String::new()
    };
    format!("{error}: {}{more}", quoted.join("; "))
}

/// One row and what became of it.
#[derive(Debug)]
pub struct RowReport {
    pub client_id: Option<String>,
    pub event_name: Option<String>,
    pub outcome: Outcome,
}

/// What an import did, row by row in the order the table was read.
///
/// Displayed as one line per imported or skipped row, then the summary line
/// (`imported N, skipped M, already imported K`).
#[derive(Debug, Default)]
pub struct ImportReport {
    pub rows: Vec<RowReport>,
}

impl ImportReport {
    pub fn imported(&self) -> usize {
        self.count(|outcome| matches!(outcome, Outcome::Imported))
    }

    pub fn skipped(&self) -> usize {
        self.count(|outcome| matches!(outcome, Outcome::Skipped(_)))
    }

    pub fn already_imported(&self) -> usize {
        self.count(|outcome| matches!(outcome, Outcome::AlreadyImported))
    }

    fn count(&self, which: impl Fn(&Outcome) -> bool) -> usize {
        self.rows.iter().filter(|row| which(&row.outcome)).count()
    }

    /// `imported N, skipped M, already imported K`.
    pub fn summary(&self) -> String {
        format!(
            "imported {}, skipped {}, already imported {}",
            self.imported(),
            self.skipped(),
            self.already_imported()
        )
    }
}

/// A name as the report shows it: as it is when it follows the name rule, quoted and escaped
/// otherwise (a name from the table may hold spaces, quotes or control characters).
fn shown(name: &Option<String>) -> String {
    match name {
        None => "NULL".to_owned(),
        Some(name) if ClientId::parse(name).is_ok() => name.clone(),
        Some(name) => format!("{name:?}"),
    }
}

impl fmt::Display for ImportReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for row in &self.rows {
            let pair = format!("{}/{}", shown(&row.client_id), shown(&row.event_name));
            match &row.outcome {
                Outcome::Imported => writeln!(f, "imported {pair} as version 1")?,
                Outcome::AlreadyImported => {}
                Outcome::Skipped(reason) => writeln!(f, "skipped {pair}: {reason}")?,
            }
        }
        write!(f, "{}", self.summary())
    }
}

/// Takes each of the original's rows as version 1 of its pair, through `processor`'s
/// registration. Stops at the first row the store or the stream cannot take (the report of
/// the rows before it is lost with the error, but they are imported, and a second run counts
/// them as already imported).
pub async fn import(
    processor: &Processor,
    rows: Vec<OriginalSchema>,
) -> Result<ImportReport, ImportError> {
    let mut report = ImportReport::default();
    for row in rows {
        let outcome = match checked(&row) {
            Err(reason) => Outcome::Skipped(reason),
            Ok((client, event, schema)) => import_one(processor, &client, &event, schema)
                .await
                .map_err(|source| ImportError::Register {
                    client,
                    event,
                    imported: report.imported(),
                    source,
                })?,
        };
        // The report is what the operator reads (`setup` prints it); these are for a debug log.
        let (client, event) = (
            row.client_id.as_deref().unwrap_or("NULL"),
            row.event_name.as_deref().unwrap_or("NULL"),
        );
        match &outcome {
            Outcome::Imported => tracing::debug!(client, event, "imported as version 1"),
            Outcome::AlreadyImported => tracing::debug!(client, event, "already imported"),
            Outcome::Skipped(reason) => tracing::debug!(client, event, %reason, "skipped"),
        }
        report.rows.push(RowReport {
            client_id: row.client_id,
            event_name: row.event_name,
            outcome,
        });
    }
    Ok(report)
}

/// The row's names and schema as registration would accept them, or why not.
fn checked(row: &OriginalSchema) -> Result<(ClientId, EventName, Value), SkipReason> {
    let client = row.client_id.as_deref().ok_or(SkipReason::NullClient)?;
    let client = ClientId::parse(client).map_err(SkipReason::ClientName)?;
    let event = row.event_name.as_deref().ok_or(SkipReason::NullEvent)?;
    let event = EventName::parse(event).map_err(SkipReason::EventName)?;
    let text = row.event_schema.as_deref().ok_or(SkipReason::NullSchema)?;
    let schema: Value = serde_json::from_str(text).map_err(SkipReason::NotJson)?;
    // Registration compiles it again; compiling here first gives the row its own reason.
    CompiledSchema::compile(&schema).map_err(SkipReason::InvalidSchema)?;
    Ok((client, event, schema))
}

/// One valid row: version 1 if the pair has none here, already imported if its version 1 is
/// this schema, skipped if it is another. An `Err` is the store or the stream failing.
async fn import_one(
    processor: &Processor,
    client: &ClientId,
    event: &EventName,
    schema: Value,
) -> Result<Outcome, ProcessError> {
    let deadline = Deadline::after(ROW_DEADLINE);
    let first = SchemaVersion::FIRST;
    match processor
        .get_event_schema(client, event, Some(first), deadline)
        .await
    {
        Ok(existing) if existing.schema != schema => {
            return Ok(Outcome::Skipped(SkipReason::DifferentVersion1 {
                registered_at: existing.registered_at,
            }));
        }
        // Identical: registered again below, which answers "unchanged" and changes nothing.
        Ok(_) | Err(ProcessError::NotRegistered { .. }) => {}
        Err(error) => return Err(error),
    }
    match processor
        .register_event(client, event, schema, deadline)
        .await
    {
        Ok(Registered::Created(version)) if version == first => Ok(Outcome::Imported),
        Ok(Registered::Unchanged(version)) if version == first => Ok(Outcome::AlreadyImported),
        // Only a registration racing this one gets here: the pair had no version 1 a moment ago.
        Ok(Registered::Created(version)) => Ok(Outcome::Skipped(SkipReason::Raced(format!(
            "the original's schema followed it as version {version}"
        )))),
        Ok(Registered::Unchanged(version)) => Ok(Outcome::Skipped(SkipReason::Raced(format!(
            "the original's schema is its version {version}"
        )))),
        Err(ProcessError::Incompatible { mode, .. }) => Ok(Outcome::Skipped(SkipReason::Raced(
            format!("the original's schema is not {mode} compatible with it"),
        ))),
        Err(ProcessError::InvalidSchema(error)) => {
            Ok(Outcome::Skipped(SkipReason::InvalidSchema(error)))
        }
        Err(error) => Err(error),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use super::*;
    use crate::adapters::memory::{MemoryEventStream, MemorySchemaStore};

    fn row(client: &str, event: &str, schema: &str) -> OriginalSchema {
        OriginalSchema {
            client_id: Some(client.to_owned()),
            event_name: Some(event.to_owned()),
            event_schema: Some(schema.to_owned()),
        }
    }

    fn processor() -> Processor {
        Processor::new(
            Arc::new(MemorySchemaStore::new()),
            Arc::new(MemoryEventStream::new()),
        )
    }

    fn reason(report: &ImportReport, index: usize) -> &SkipReason {
        match &report.rows[index].outcome {
            Outcome::Skipped(reason) => reason,
            other => panic!("row {index} was not skipped: {other:?}"),
        }
    }

    #[tokio::test]
    async fn valid_rows_become_version_1_and_the_others_are_reported_with_their_reason() {
        let processor = processor();
        let rows = vec![
            row(
                "SpongeBob",
                "Fruits",
                r#"{"type":"object","required":["fruit"]}"#,
            ),
            row("Sponge Bob", "Fruits", "{}"),
            row("SpongeBob", "Colors.v2", "{}"),
            row("SpongeBob", "Broken", r#"{"type":"objekt"}"#),
            row("SpongeBob", "Huge", "1e400"),
            OriginalSchema {
                event_schema: None,
                ..row("SpongeBob", "Null", "")
            },
        ];

        let report = import(&processor, rows).await.unwrap();

        assert_eq!(
            report.summary(),
            "imported 1, skipped 5, already imported 0"
        );
        assert!(matches!(report.rows[0].outcome, Outcome::Imported));
        assert!(matches!(reason(&report, 1), SkipReason::ClientName(_)));
        assert!(matches!(reason(&report, 2), SkipReason::EventName(_)));
        assert!(matches!(reason(&report, 3), SkipReason::InvalidSchema(_)));
        assert!(matches!(reason(&report, 4), SkipReason::NotJson(_)));
        assert!(matches!(reason(&report, 5), SkipReason::NullSchema));
        let (client, event) = (
            ClientId::parse("SpongeBob").unwrap(),
            EventName::parse("Fruits").unwrap(),
        );
        let imported = processor
            .get_event_schema(&client, &event, None, Deadline::after(ROW_DEADLINE))
            .await
            .unwrap();
        assert_eq!(imported.version, SchemaVersion::FIRST);
        assert_eq!(
            imported.schema,
            json!({"type": "object", "required": ["fruit"]})
        );
    }

    #[tokio::test]
    async fn a_second_import_counts_every_imported_row_as_already_imported() {
        let processor = processor();
        let rows = vec![
            row("SpongeBob", "Fruits", r#"{"required":["fruit"]}"#),
            row("SpongeBob", "Colors", r#"{"required":["color"]}"#),
        ];
        import(&processor, rows.clone()).await.unwrap();

        let again = import(&processor, rows).await.unwrap();

        assert_eq!(again.summary(), "imported 0, skipped 0, already imported 2");
        assert_eq!(again.to_string(), again.summary());
    }

    #[tokio::test]
    async fn a_pair_with_another_version_1_here_is_left_alone_and_reported() {
        let processor = processor();
        let (client, event) = (
            ClientId::parse("SpongeBob").unwrap(),
            EventName::parse("Fruits").unwrap(),
        );
        let ours = json!({"type": "object"});
        processor
            .register_event(&client, &event, ours.clone(), Deadline::after(ROW_DEADLINE))
            .await
            .unwrap();

        let report = import(
            &processor,
            vec![row("SpongeBob", "Fruits", r#"{"required":["fruit"]}"#)],
        )
        .await
        .unwrap();

        assert!(matches!(
            reason(&report, 0),
            SkipReason::DifferentVersion1 { .. }
        ));
        let versions = processor
            .list_versions(&client, &event, Deadline::after(ROW_DEADLINE))
            .await
            .unwrap();
        assert_eq!(versions.len(), 1, "nothing registered");
    }

    #[test]
    fn the_report_shows_a_line_per_imported_or_skipped_row_then_the_summary() {
        let report = ImportReport {
            rows: vec![
                RowReport {
                    client_id: Some("SpongeBob".into()),
                    event_name: Some("Fruits".into()),
                    outcome: Outcome::Imported,
                },
                RowReport {
                    client_id: Some("SpongeBob".into()),
                    event_name: Some("Colors".into()),
                    outcome: Outcome::AlreadyImported,
                },
                RowReport {
                    client_id: Some("Sponge\nBob".into()),
                    event_name: None,
                    outcome: Outcome::Skipped(SkipReason::NullEvent),
                },
            ],
        };

        assert_eq!(
            report.to_string(),
            "imported SpongeBob/Fruits as version 1\n\
             skipped \"Sponge\\nBob\"/NULL: event_name is NULL\n\
             imported 1, skipped 1, already imported 1"
        );
    }
}
