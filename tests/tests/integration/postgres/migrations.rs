//! Migrations and the namespace of the PostgreSQL store, each test on a database of its own:
//! a fresh database, one the previous release wrote (its tables in `public`), one the release
//! before rejections and idempotency keys wrote (migrations 1 to 3), and one the original
//! service shares with the gateway (its own `public.event_schemas`).

use std::time::{Duration, SystemTime};

use event_processor_core::compat::Mode;
use event_processor_core::domain::{
    ClientId, EventId, Fingerprint, IdempotencyKey, SchemaVersion, rfc3339,
};
use event_processor_core::ports::{
    Begin, IdempotencyStore, Insert, RegisteredSchema, SchemaStore, VersionInfo,
};
use event_processor_tests::contract::rejections::rejection;
use event_processor_tests::postgres::{FreshDatabase, store_at};
use event_processor_tests::{deadline, event_name};
use serde_json::{Value, json};
use tokio_postgres::Client;

/// The previous release's DDL and bookkeeping, as it ran them in a new database.
const PREVIOUS_RELEASE: &str = include_str!("../../../fixtures/postgres/previous_release.sql");

/// What the release before rejections and idempotency keys (migrations 1 to 3, in the schema
/// `event_processor`) left in a new database, statement for statement as its `migrate()` ran
/// them: its bookkeeping table, its three migrations (released files, never edited) under
/// `search_path = event_processor`, and their rows.
fn release_with_three_migrations() -> String {
    [
        "CREATE SCHEMA event_processor;",
        "CREATE TABLE event_processor.migrations (
             version    integer     PRIMARY KEY,
             name       text        NOT NULL,
             applied_at timestamptz NOT NULL DEFAULT now()
         );",
        "SET search_path TO event_processor;",
        include_str!("../../../../core/migrations/postgres/0001_create_event_schemas.sql"),
        include_str!(
            "../../../../core/migrations/postgres/0002_rename_event_schemas_to_schemas.sql"
        ),
        include_str!("../../../../core/migrations/postgres/0003_create_compatibility.sql"),
        "INSERT INTO event_processor.migrations (version, name) VALUES
             (1, 'create_event_schemas'),
             (2, 'rename_event_schemas_to_schemas'),
             (3, 'create_compatibility');",
        "RESET search_path;",
    ]
    .join("\n")
}

/// The statement that release registered a version with.
const REGISTER_AS_THREE_MIGRATIONS: &str = "
    INSERT INTO event_processor.schemas (client, event, version, schema, schema_text)
    SELECT $1, $2, $3::int8, $4::text::jsonb, $4::text
    WHERE NOT EXISTS (
        SELECT 1 FROM event_processor.schemas
        WHERE client = $1 AND event = $2 AND version >= $3::int8
    )
    ON CONFLICT (client, event, version) DO NOTHING
    RETURNING version";

/// The original service's table: same name as the previous release's, another layout.
const ORIGINAL_SERVICE: &str = r#"
CREATE TABLE public.event_schemas (
    client_id    text,
    event_name   text,
    event_schema json,
    PRIMARY KEY (client_id, event_name)
);
INSERT INTO public.event_schemas VALUES
    ('SpongeBob', 'Fruits', '{"type": "object",   "required": ["fruit"]}'),
    ('SpongeBob', 'Colors', '{ "required" : ["color"], "type":"object", "type":"object" }'),
    ('Patrick',   'Rocks',  '{"minimum": -1.5e10}');
"#;

/// Every migration of this release.
const ALL_MIGRATIONS: [i32; 6] = [1, 2, 3, 4, 5, 6];

fn client(name: &str) -> ClientId {
    ClientId::parse(name).expect("a valid client name")
}

fn v(n: u32) -> SchemaVersion {
    SchemaVersion::new(n).expect("versions start at 1")
}

/// Registers version 1 of a pair with the statement the previous release ran.
async fn register_as_the_previous_release(db: &Client, client: &str, event: &str, schema: &str) {
    let inserted = db
        .query_opt(
            "INSERT INTO event_schemas (client, event, version, schema, schema_text)
             VALUES ($1, $2, 1, $3::text::jsonb, $3::text)
             ON CONFLICT (client, event, version) DO NOTHING
             RETURNING version",
            &[&client, &event, &schema],
        )
        .await
        .expect("the previous release's insert");
    assert!(inserted.is_some(), "{client}/{event} registered");
}

/// `registered_at` of a row, formatted by `domain::rfc3339` from the stored instant.
async fn registered_at(db: &Client, table: &str, event: &str) -> String {
    let micros: i64 = db
        .query_one(
            &format!(
                "SELECT (extract(epoch FROM registered_at) * 1000000)::int8 FROM {table}
                 WHERE event = $1 AND version = 1"
            ),
            &[&event],
        )
        .await
        .unwrap()
        .get(0);
    let at = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1000).unwrap();
    rfc3339(at)
}

/// Rows of one query, every column cast to text, for comparing a database before and after.
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

/// The tables of both schemas and everything of ours in them.
async fn everything(db: &Client) -> Vec<Vec<Option<String>>> {
    let mut all = tables(db).await;
    for query in [
        "SELECT version, name, applied_at FROM event_processor.migrations ORDER BY version",
        "SELECT client, event, version, schema_text, registered_at FROM event_processor.schemas
         ORDER BY client, event, version",
        "SELECT client, event, mode FROM event_processor.compatibility ORDER BY client, event",
        "SELECT * FROM event_processor.rejections ORDER BY client, event, id",
        "SELECT * FROM event_processor.rejection_pairs ORDER BY client, event",
        "SELECT * FROM event_processor.idempotency_keys ORDER BY client, event, key",
    ] {
        all.extend(text_rows(db, query).await);
    }
    all
}

/// `schema.table` of every table in `public` and `event_processor`.
async fn tables(db: &Client) -> Vec<Vec<Option<String>>> {
    text_rows(
        db,
        "SELECT table_schema || '.' || table_name FROM information_schema.tables
         WHERE table_schema IN ('public', 'event_processor') ORDER BY 1",
    )
    .await
}

/// A table's constraints: name and definition.
async fn constraints(db: &Client, table: &str) -> Vec<Vec<Option<String>>> {
    text_rows(
        db,
        &format!(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint
             WHERE conrelid = '{table}'::regclass ORDER BY conname"
        ),
    )
    .await
}

/// `constraints` but the one named `name`, which must be among them.
fn without(mut constraints: Vec<Vec<Option<String>>>, name: &str) -> Vec<Vec<Option<String>>> {
    let before = constraints.len();
    constraints.retain(|c| c[0].as_deref() != Some(name));
    assert_eq!(
        constraints.len(),
        before - 1,
        "{name} among the constraints"
    );
    constraints
}

async fn exists(db: &Client, table: &str) -> bool {
    db.query_one("SELECT to_regclass($1) IS NOT NULL", &[&table])
        .await
        .unwrap()
        .get(0)
}

async fn migrations(db: &Client) -> Vec<i32> {
    db.query(
        "SELECT version FROM event_processor.migrations ORDER BY version",
        &[],
    )
    .await
    .unwrap()
    .iter()
    .map(|row| row.get(0))
    .collect()
}

/// The original service's table as a whole: its identity, columns, constraints and rows.
async fn original_table(db: &Client) -> Vec<Vec<Option<String>>> {
    let mut all = text_rows(db, "SELECT 'public.event_schemas'::regclass::oid").await;
    for query in [
        "SELECT column_name, data_type, is_nullable, column_default, ordinal_position
         FROM information_schema.columns
         WHERE table_schema = 'public' AND table_name = 'event_schemas' ORDER BY ordinal_position",
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint
         WHERE conrelid = 'public.event_schemas'::regclass ORDER BY conname",
        "SELECT client_id, event_name, event_schema FROM public.event_schemas
         ORDER BY client_id, event_name",
    ] {
        all.extend(text_rows(db, query).await);
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_database_gets_every_table_in_the_event_processor_schema_and_none_in_public() {
    let db = FreshDatabase::create().await;

    let _store = store_at(db.url()).await;

    let admin = db.connect().await;
    let names: Vec<String> = tables(&admin)
        .await
        .concat()
        .into_iter()
        .flatten()
        .collect();
    assert_eq!(
        names,
        [
            "event_processor.compatibility",
            "event_processor.idempotency_keys",
            "event_processor.migrations",
            "event_processor.rejection_pairs",
            "event_processor.rejections",
            "event_processor.schemas"
        ]
    );
    assert_eq!(migrations(&admin).await, ALL_MIGRATIONS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_written_by_the_previous_release_is_adopted() {
    // Given a database the previous release created and registered two pairs in.
    let db = FreshDatabase::create().await;
    let admin = db.connect().await;
    admin.batch_execute(PREVIOUS_RELEASE).await.unwrap();
    let fruits =
        r#"{"type": "object", "required": ["fruit"], "properties": {"n": {"minimum": -1.5e10}}}"#;
    register_as_the_previous_release(&admin, "SpongeBob", "Fruits", fruits).await;
    register_as_the_previous_release(&admin, "SpongeBob", "Colors", r#"{"required":["color"]}"#)
        .await;
    admin
        .execute(
            "UPDATE event_schemas SET registered_at = '2024-02-29 23:59:59.999999-01'
             WHERE event = 'Colors'",
            &[],
        )
        .await
        .unwrap();
    let fruits_registered_at = registered_at(&admin, "public.event_schemas", "Fruits").await;
    let constraints_before = constraints(&admin, "public.event_schemas").await;
    let applied_at_before = text_rows(
        &admin,
        "SELECT applied_at FROM event_processor_migrations WHERE version = 1",
    )
    .await;

    // When this release opens it.
    let store = store_at(db.url()).await;

    // Then the rows read back as version 1, with the schema as registered and its time.
    let (sponge_bob, fruits_event) = (client("SpongeBob"), event_name("Fruits"));
    let expected = RegisteredSchema {
        client: sponge_bob.clone(),
        event: fruits_event.clone(),
        version: v(1),
        schema: serde_json::from_str::<Value>(fruits).unwrap(),
        registered_at: fruits_registered_at.clone(),
    };
    let latest = store
        .get(&sponge_bob, &fruits_event, None, deadline())
        .await;
    assert_eq!(latest.unwrap().as_ref(), Some(&expected));
    let first = store
        .get(&sponge_bob, &fruits_event, Some(v(1)), deadline())
        .await;
    assert_eq!(first.unwrap(), Some(expected));
    let versions = store
        .versions(&sponge_bob, &event_name("Colors"), deadline())
        .await
        .unwrap();
    assert_eq!(
        versions,
        [VersionInfo {
            version: v(1),
            registered_at: "2024-03-01T00:59:59.999Z".into()
        }]
    );
    let listed: Vec<(String, u32)> = store
        .list(&sponge_bob, deadline())
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.event.to_string(), e.version.get()))
        .collect();
    assert_eq!(listed, [("Colors".into(), 1), ("Fruits".into(), 1)]);
    // ... a version 2 can be registered, and a mode set.
    let second = json!({"type": "object"});
    let insert = store
        .insert_version(&sponge_bob, &fruits_event, v(2), &second, deadline())
        .await;
    assert_eq!(insert.unwrap(), Insert::Inserted);
    let latest = store
        .get(&sponge_bob, &fruits_event, None, deadline())
        .await;
    assert_eq!(
        latest.unwrap().map(|s| (s.version, s.schema)),
        Some((v(2), second))
    );
    store
        .set_compatibility(&sponge_bob, &fruits_event, Mode::Full, deadline())
        .await
        .unwrap();
    // ... the table moved with its keys and checks (of which migration 4 replaced the one
    // tying the jsonb copy to the text), and nothing of ours is left in public.
    assert_eq!(
        without(
            constraints(&admin, "event_processor.schemas").await,
            "schemas_schema_check"
        ),
        without(constraints_before, "event_schemas_check")
    );
    let checks = constraints(&admin, "event_processor.schemas").await;
    assert!(
        checks
            .iter()
            .any(|c| c[0].as_deref() == Some("schemas_schema_check"))
    );
    assert!(!exists(&admin, "public.event_schemas").await);
    assert!(!exists(&admin, "public.event_processor_migrations").await);
    assert_eq!(migrations(&admin).await, ALL_MIGRATIONS);
    let applied_at_after = text_rows(
        &admin,
        "SELECT applied_at FROM event_processor.migrations WHERE version = 1",
    )
    .await;
    assert_eq!(
        applied_at_after, applied_at_before,
        "migration 1 keeps its time"
    );

    // And opening it again changes nothing.
    let before = everything(&admin).await;
    let again = store_at(db.url()).await;
    again.setup().await.unwrap();
    assert_eq!(everything(&admin).await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateways_opening_a_previous_release_database_together_adopt_it_once() {
    let db = FreshDatabase::create().await;
    let admin = db.connect().await;
    admin.batch_execute(PREVIOUS_RELEASE).await.unwrap();
    register_as_the_previous_release(&admin, "SpongeBob", "Fruits", "{}").await;

    let opening: Vec<_> = (0..4)
        .map(|_| {
            let url = db.url().to_owned();
            tokio::spawn(async move { store_at(&url).await })
        })
        .collect();
    let mut stores = Vec::new();
    for store in opening {
        stores.push(store.await.expect("every gateway opens"));
    }

    assert_eq!(migrations(&admin).await, ALL_MIGRATIONS);
    for store in &stores {
        let got = store
            .get(
                &client("SpongeBob"),
                &event_name("Fruits"),
                None,
                deadline(),
            )
            .await
            .unwrap();
        assert_eq!(got.map(|s| (s.version, s.schema)), Some((v(1), json!({}))));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_original_services_table_is_never_touched() {
    // Given a database where the original service keeps its own public.event_schemas.
    let db = FreshDatabase::create().await;
    let admin = db.connect().await;
    admin.batch_execute(ORIGINAL_SERVICE).await.unwrap();
    let before = original_table(&admin).await;

    // When the gateway opens it, registers the same pairs, reads them and opens it again.
    let store = store_at(db.url()).await;
    let sponge_bob = client("SpongeBob");
    for name in ["Fruits", "Colors"] {
        let insert = store
            .insert_version(&sponge_bob, &event_name(name), v(1), &json!({}), deadline())
            .await;
        assert_eq!(insert.unwrap(), Insert::Inserted, "{name}");
    }
    let listed = store.list(&sponge_bob, deadline()).await.unwrap();
    let got = store
        .get(&sponge_bob, &event_name("Fruits"), None, deadline())
        .await
        .unwrap();
    store
        .set_compatibility(&sponge_bob, &event_name("Fruits"), Mode::None, deadline())
        .await
        .unwrap();
    store_at(db.url()).await.setup().await.unwrap();

    // Then the gateway worked on its own tables, and the original's is exactly as it was.
    assert_eq!(listed.len(), 2);
    assert_eq!(got.map(|s| s.schema), Some(json!({})));
    assert_eq!(original_table(&admin).await, before);
    assert!(!exists(&admin, "public.event_processor_migrations").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_public_table_of_our_layout_without_our_bookkeeping_is_not_adopted() {
    // Given a public.event_schemas in the previous release's layout, with a row, but no
    // public.event_processor_migrations: nothing says it is ours.
    let db = FreshDatabase::create().await;
    let admin = db.connect().await;
    admin.batch_execute(PREVIOUS_RELEASE).await.unwrap();
    register_as_the_previous_release(&admin, "SpongeBob", "Fruits", "{}").await;
    admin
        .batch_execute("DROP TABLE event_processor_migrations")
        .await
        .unwrap();
    let rows =
        "SELECT client, event, version, schema_text, registered_at FROM public.event_schemas";
    let before = text_rows(&admin, rows).await;

    // When the gateway opens it.
    let store = store_at(db.url()).await;

    // Then the gateway starts empty and the table stays where and as it was.
    let got = store
        .get(
            &client("SpongeBob"),
            &event_name("Fruits"),
            None,
            deadline(),
        )
        .await;
    assert_eq!(got.unwrap(), None);
    assert_eq!(text_rows(&admin, rows).await, before);
    assert_eq!(migrations(&admin).await, ALL_MIGRATIONS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_a_previous_release_gateway_makes_after_the_upgrade_are_left_alone() {
    // Given an adopted database on which a gateway of the previous release then started
    // (creating its tables in public again) and registered a pair.
    let db = FreshDatabase::create().await;
    let admin = db.connect().await;
    admin.batch_execute(PREVIOUS_RELEASE).await.unwrap();
    register_as_the_previous_release(&admin, "SpongeBob", "Fruits", "{}").await;
    drop(store_at(db.url()).await);
    admin.batch_execute(PREVIOUS_RELEASE).await.unwrap();
    register_as_the_previous_release(&admin, "SpongeBob", "Colors", "{}").await;
    let public_rows = "SELECT client, event, version, schema_text FROM public.event_schemas";
    let before = (
        text_rows(&admin, public_rows).await,
        everything(&admin).await,
    );

    // When this release opens it again.
    let store = store_at(db.url()).await;

    // Then it opens and serves the adopted pairs; the previous release's new tables stay.
    let listed: Vec<String> = store
        .list(&client("SpongeBob"), deadline())
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.event.to_string())
        .collect();
    assert_eq!(listed, ["Fruits"]);
    let after = (
        text_rows(&admin, public_rows).await,
        everything(&admin).await,
    );
    assert_eq!(after, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_of_the_release_before_rejections_is_upgraded_in_place() {
    // Given a database the release with migrations 1 to 3 created, a pair it registered and a
    // mode it set.
    let db = FreshDatabase::create().await;
    let admin = db.connect().await;
    admin
        .batch_execute(&release_with_three_migrations())
        .await
        .unwrap();
    let fruits = r#"{"type": "object", "properties": {"n": {"minimum": -1.5e10}}}"#;
    let registered = admin
        .query_opt(
            REGISTER_AS_THREE_MIGRATIONS,
            &[&"SpongeBob", &"Fruits", &1_i64, &fruits],
        )
        .await
        .unwrap();
    assert!(registered.is_some());
    admin
        .batch_execute(
            "INSERT INTO event_processor.compatibility VALUES ('SpongeBob', 'Fruits', 'FULL')",
        )
        .await
        .unwrap();
    let rows = "SELECT client, event, version, schema::text, schema_text, registered_at
                FROM event_processor.schemas ORDER BY client, event, version";
    let before = text_rows(&admin, rows).await;

    // When this release opens it.
    let store = store_at(db.url()).await;

    // Then the three new migrations ran, and what was there is served as it was.
    assert_eq!(migrations(&admin).await, ALL_MIGRATIONS);
    assert_eq!(text_rows(&admin, rows).await, before);
    let (sponge_bob, fruits_event) = (client("SpongeBob"), event_name("Fruits"));
    let latest = store
        .get(&sponge_bob, &fruits_event, None, deadline())
        .await
        .unwrap()
        .expect("registered by the earlier release");
    assert_eq!(
        latest.schema,
        serde_json::from_str::<Value>(fruits).unwrap()
    );
    let mode = store
        .compatibility(&sponge_bob, &fruits_event, deadline())
        .await;
    assert_eq!(mode.unwrap(), Some(Mode::Full));
    // ... a schema jsonb cannot hold registers, rejections are kept and keys are taken.
    let with_nul = json!({"description": "\u{0}"});
    let insert = store
        .insert_version(&sponge_bob, &fruits_event, v(2), &with_nul, deadline())
        .await;
    assert_eq!(insert.unwrap(), Insert::Inserted);
    // (Through the port: `get` and `list` are also the schema store's.)
    let rejections: &dyn event_processor_core::ports::RejectionStore = &store;
    let rejection = rejection(&sponge_bob, &fruits_event, "{\"n\": \"x\"}");
    rejections
        .keep(std::slice::from_ref(&rejection), deadline())
        .await
        .unwrap();
    let kept = rejections.list(&sponge_bob, &fruits_event, 10, None, deadline());
    assert_eq!(kept.await.unwrap(), [rejection]);
    let begun = store
        .begin(
            &sponge_bob,
            &fruits_event,
            &IdempotencyKey::parse(b"k").unwrap(),
            Fingerprint::of("send_event", b"{}", None),
            &[EventId::new()],
            SystemTime::now() + Duration::from_secs(30),
            deadline(),
        )
        .await;
    assert_eq!(begun.unwrap(), Begin::Started);
    // ... and a gateway of that release, still running during the upgrade, still registers.
    let registered = admin
        .query_opt(
            REGISTER_AS_THREE_MIGRATIONS,
            &[&"SpongeBob", &"Fruits", &3_i64, &r#"{"type": "object"}"#],
        )
        .await
        .unwrap();
    assert!(registered.is_some());

    // And opening it again changes nothing.
    let before = everything(&admin).await;
    store_at(db.url()).await.setup().await.unwrap();
    assert_eq!(everything(&admin).await, before);
}
