//! Coming from the original service: the gateway started on the database the original used
//! (its own `public.event_schemas`, with rows), `setup --import-original` taking those rows
//! as version 1 of each pair (`App::import_original`), and the original table left exactly
//! as it was. Each test on a database of its own; events go to an SQLite stream in a temporary
//! directory, read back through `listen`'s source.

use event_processor_core::App;
use event_processor_core::app::{open_source, original_database};
use event_processor_core::config::{Config, StreamConfig};
use event_processor_core::domain::{ClientId, EventName};
use event_processor_core::import::{ImportReport, Outcome, SkipReason};
use event_processor_core::ports::StartAt;
use event_processor_tests::api::{assert_failure, get, post_form, post_json};
use event_processor_tests::contract::read_events;
use event_processor_tests::postgres::FreshDatabase;
use http::StatusCode;
use serde_json::{Value, json};
use tokio_postgres::Client;

/// The original service's table (its DDL, as the issue quotes it) with the rows an operator
/// might find: valid pairs, names our rule refuses (a space, a dot), a document that is not a
/// JSON Schema, and a pair this gateway registered differently before the import.
const ORIGINAL_SERVICE: &str = r#"
CREATE TABLE event_schemas (
  client_id     text NOT NULL,
  event_name    text NOT NULL,
  event_schema  json NOT NULL,
  PRIMARY KEY   (client_id, event_name)
);
INSERT INTO event_schemas VALUES
    ('SpongeBob',  'Fruits',    '{"type": "object",   "required": ["fruit"]}'),
    ('SpongeBob',  'Colors',    '{ "required" : ["color"], "type":"object", "type":"object" }'),
    ('Patrick',    'Rocks',     '{"properties": {"weight": {"minimum": -1.5e10}}}'),
    ('Sponge Bob', 'Fruits',    '{"type": "object"}'),
    ('SpongeBob',  'Fruits.v2', '{"type": "object"}'),
    ('SpongeBob',  'Broken',    '{"type": "objekt"}'),
    ('Squidward',  'Clarinet',  '{"required": ["note"]}');
"#;

/// Every row of the original table as text, with each row's `xmin` and `ctid`: an UPDATE, even
/// one that writes the same values, gives a row a new version, so equal snapshots mean no row
/// was written at all.
const ORIGINAL_ROWS: &str =
    "SELECT xmin::text, ctid::text, client_id, event_name, event_schema::text
                             FROM public.event_schemas ORDER BY client_id, event_name";

/// The original table's definition: columns, types, constraints.
const ORIGINAL_DEFINITION: &str = "
    SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull::text
    FROM pg_attribute a WHERE a.attrelid = 'public.event_schemas'::regclass AND a.attnum > 0
    UNION ALL
    SELECT conname, pg_get_constraintdef(oid), contype::text
    FROM pg_constraint WHERE conrelid = 'public.event_schemas'::regclass
    ORDER BY 1";

/// Everything the gateway keeps for pairs, as text.
const OUR_ROWS: &str = "SELECT client, event, version::text, schema_text, registered_at::text
                        FROM event_processor.schemas ORDER BY client, event, version";

async fn text_rows(db: &Client, query: &str) -> Vec<Vec<Option<String>>> {
    db.simple_query(query)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|message| match message {
            tokio_postgres::SimpleQueryMessage::Row(row) => Some(
                (0..row.len())
                    .map(|i| row.get(i).map(str::to_owned))
                    .collect(),
            ),
            _ => None,
        })
        .collect()
}

/// The original table, rows and definition.
async fn original_table(db: &Client) -> Vec<Vec<Option<String>>> {
    let mut all = text_rows(db, ORIGINAL_ROWS).await;
    all.extend(text_rows(db, ORIGINAL_DEFINITION).await);
    all
}

/// A database the original service used, with its table and rows.
async fn original_database_with_rows() -> (FreshDatabase, Client) {
    let db = FreshDatabase::create().await;
    let admin = db.connect().await;
    admin.batch_execute(ORIGINAL_SERVICE).await.unwrap();
    (db, admin)
}

/// The gateway as `serve` builds it: schemas in `store_url`, events in an SQLite file.
struct Gateway {
    app: App,
    router: axum::Router,
    stream: StreamConfig,
    _dir: tempfile::TempDir,
}

async fn gateway(store_url: &str) -> Gateway {
    let dir = tempfile::tempdir().unwrap();
    let stream = format!("sqlite:{}", dir.path().join("events.db").display());
    let config = Config::parse(store_url, &stream).expect("the documented forms parse");
    let app = App::build(&config)
        .await
        .expect("the gateway starts on the original's database");
    Gateway {
        router: app.router(),
        app,
        stream: config.stream,
        _dir: dir,
    }
}

fn pair(client: &str, event: &str) -> (ClientId, EventName) {
    (
        ClientId::parse(client).unwrap(),
        EventName::parse(event).unwrap(),
    )
}

/// The outcome of the row `client_id`/`event_name` in the report.
fn outcome<'a>(report: &'a ImportReport, client: &str, event: &str) -> &'a Outcome {
    &report
        .rows
        .iter()
        .find(|row| {
            row.client_id.as_deref() == Some(client) && row.event_name.as_deref() == Some(event)
        })
        .unwrap_or_else(|| panic!("no row {client}/{event} in {report}"))
        .outcome
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_starts_on_the_original_database_and_imports_its_valid_pairs_as_version_1() {
    let (db, admin) = original_database_with_rows().await;
    let gateway = gateway(db.url()).await;
    // Squidward/Clarinet was registered on this gateway before the import, differently.
    let ours = post_json(
        &gateway.router,
        "/Squidward/Clarinet/register_event",
        &json!({"required": ["ink"]}),
    )
    .await;
    assert_eq!(ours.status, StatusCode::CREATED, "{}", ours.body);

    let report = gateway.app.import_original(db.url()).await.unwrap();

    assert_eq!(
        report.summary(),
        "imported 3, skipped 4, already imported 0",
        "{report}"
    );
    for (client, event) in [
        ("SpongeBob", "Fruits"),
        ("SpongeBob", "Colors"),
        ("Patrick", "Rocks"),
    ] {
        assert!(
            matches!(outcome(&report, client, event), Outcome::Imported),
            "{report}"
        );
    }
    assert!(matches!(
        outcome(&report, "Sponge Bob", "Fruits"),
        Outcome::Skipped(SkipReason::ClientName(_))
    ));
    assert!(matches!(
        outcome(&report, "SpongeBob", "Fruits.v2"),
        Outcome::Skipped(SkipReason::EventName(_))
    ));
    assert!(matches!(
        outcome(&report, "SpongeBob", "Broken"),
        Outcome::Skipped(SkipReason::InvalidSchema(_))
    ));
    assert!(matches!(
        outcome(&report, "Squidward", "Clarinet"),
        Outcome::Skipped(SkipReason::DifferentVersion1 { .. })
    ));
    let printed = report.to_string();
    for line in [
        "imported SpongeBob/Fruits as version 1",
        "skipped \"Sponge Bob\"/Fruits: the client name breaks the name rule",
        "skipped SpongeBob/\"Fruits.v2\": the event name breaks the name rule",
        "skipped SpongeBob/Broken: event_schema is not a valid JSON Schema",
        "skipped Squidward/Clarinet: version 1 of this pair here is a different schema",
    ] {
        assert!(
            printed.lines().any(|l| l.starts_with(line)),
            "no line {line:?} in:\n{printed}"
        );
    }
    assert_eq!(
        printed.lines().last(),
        Some("imported 3, skipped 4, already imported 0")
    );

    // Each imported pair serves the original's schema as version 1, as a JSON value (the
    // duplicate key read as JSON parsers do: the last one wins).
    for (path, schema) in [
        (
            "/SpongeBob/Fruits/schema",
            json!({"type": "object", "required": ["fruit"]}),
        ),
        (
            "/SpongeBob/Colors/schema",
            json!({"required": ["color"], "type": "object"}),
        ),
        (
            "/Patrick/Rocks/schema",
            serde_json::from_str::<Value>(r#"{"properties": {"weight": {"minimum": -1.5e10}}}"#)
                .unwrap(),
        ),
    ] {
        let got = get(&gateway.router, path).await;
        assert_eq!(got.status, StatusCode::OK, "{path}: {}", got.body);
        assert_eq!(
            (&got.body["schema"], &got.body["version"]),
            (&schema, &json!(1))
        );
    }
    let ours = get(&gateway.router, "/Squidward/Clarinet/schema").await;
    assert_eq!(
        ours.body["schema"],
        json!({"required": ["ink"]}),
        "left alone"
    );
    assert_eq!(ours.body["version"], 1);
    drop(admin);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_sent_to_an_imported_pair_as_the_original_clients_send_them_are_published() {
    let (db, _admin) = original_database_with_rows().await;
    let gateway = gateway(db.url()).await;
    gateway.app.import_original(db.url()).await.unwrap();
    let (client, event) = pair("SpongeBob", "Fruits");
    let source = open_source(&gateway.stream).await.unwrap();
    let mut subscription = source
        .subscribe(&client, &event, StartAt::Beginning)
        .await
        .unwrap();

    // The original's clients: a form field `event` holding the JSON text.
    let sent = post_form(
        &gateway.router,
        "/SpongeBob/Fruits/send_event",
        &[("event", r#"{"fruit": "kiwi"}"#)],
    )
    .await;
    let invalid = post_form(
        &gateway.router,
        "/SpongeBob/Fruits/send_event",
        &[("event", r#"{"color": "red"}"#)],
    )
    .await;
    let skipped = post_form(
        &gateway.router,
        "/SpongeBob/Broken/send_event",
        &[("event", "{}")],
    )
    .await;

    assert_eq!(sent.status, StatusCode::OK, "{}", sent.body);
    assert_eq!(sent.body["code"], "SUCCEEDED");
    assert_failure(
        &invalid,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
    assert_failure(&skipped, StatusCode::NOT_FOUND, "event_not_registered");
    let published = read_events(subscription.as_mut(), 1).await;
    assert_eq!(published[0].id, sent.body["id"].as_str().unwrap());
    assert_eq!(published[0].data, json!({"fruit": "kiwi"}));
    assert_eq!(
        published[0].dataschema,
        "/SpongeBob/Fruits/schema?version=1"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_import_and_a_restart_change_nothing() {
    let (db, admin) = original_database_with_rows().await;
    let gateway = gateway(db.url()).await;
    let first = gateway.app.import_original(db.url()).await.unwrap();
    let ours = text_rows(&admin, OUR_ROWS).await;

    let second = gateway.app.import_original(db.url()).await.unwrap();
    let restarted = self::gateway(db.url()).await;
    let third = restarted.app.import_original(db.url()).await.unwrap();

    assert_eq!(first.summary(), "imported 4, skipped 3, already imported 0");
    for again in [&second, &third] {
        assert_eq!(
            again.summary(),
            "imported 0, skipped 3, already imported 4",
            "{again}"
        );
    }
    assert_eq!(
        text_rows(&admin, OUR_ROWS).await,
        ours,
        "no row of ours changed"
    );
    assert_eq!(ours.len(), 4, "{ours:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_original_table_is_byte_for_byte_unchanged_by_start_up_and_imports() {
    let (db, admin) = original_database_with_rows().await;
    let before = original_table(&admin).await;

    let gateway = gateway(db.url()).await;
    gateway.app.import_original(db.url()).await.unwrap();
    gateway.app.setup().await.unwrap();
    gateway.app.import_original(db.url()).await.unwrap();

    assert_eq!(original_table(&admin).await, before);
    let tables: Vec<Vec<Option<String>>> = text_rows(
        &admin,
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1",
    )
    .await;
    assert_eq!(
        tables,
        [[Some("event_schemas".to_owned())]],
        "nothing added to public"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_original_database_may_be_another_than_the_schema_store_and_gets_nothing_of_ours() {
    let (original, admin) = original_database_with_rows().await;
    let before = original_table(&admin).await;
    let store = FreshDatabase::create().await;
    let gateway = gateway(store.url()).await;

    let report = gateway.app.import_original(original.url()).await.unwrap();

    assert_eq!(report.imported(), 4, "{report}");
    let got = get(&gateway.router, "/SpongeBob/Fruits/schema").await;
    assert_eq!(got.status, StatusCode::OK, "{}", got.body);
    assert_eq!(original_table(&admin).await, before);
    let ours: Vec<Vec<Option<String>>> = text_rows(
        &admin,
        "SELECT nspname FROM pg_namespace WHERE nspname = 'event_processor'",
    )
    .await;
    assert!(
        ours.is_empty(),
        "no schema of ours in the original's database"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_without_the_original_table_is_an_error_naming_it() {
    let db = FreshDatabase::create().await;
    let gateway = gateway(db.url()).await;

    let error = gateway.app.import_original(db.url()).await.unwrap_err();

    let message = event_processor_core::error::ErrorChain(&error).to_string();
    assert!(message.contains("public.event_schemas"), "{message}");
}

#[test]
fn the_original_database_defaults_to_the_schema_store_when_it_is_postgres() {
    let postgres = Config::parse("postgres://u@h/db", "memory:").unwrap();
    let sqlite = Config::parse("memory:", "memory:").unwrap();

    assert_eq!(
        original_database(&postgres, None).unwrap(),
        "postgres://u@h/db"
    );
    assert_eq!(
        original_database(&sqlite, Some("postgres://old@h/db")).unwrap(),
        "postgres://old@h/db"
    );
    assert!(original_database(&sqlite, None).is_err());
}
