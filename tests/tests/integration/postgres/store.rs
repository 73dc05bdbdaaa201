//! The PostgreSQL schema store beyond the contract: lost connections, registration races
//! between gateways, migrations, the compatibility table, and what jsonb would otherwise
//! change. Runs on the database `scripts/test` creates.

use std::sync::Arc;

use event_processor_core::App;
use event_processor_core::adapters::memory::MemoryEventStream;
use event_processor_core::compat::Mode;
use event_processor_core::config::Config;
use event_processor_core::domain::SchemaVersion;
use event_processor_core::ports::{Insert, SchemaStore};
use event_processor_tests::api::{get, post_json};
use event_processor_tests::postgres::{
    Proxy, admin, server_addr, store, store_at, terminate_other_backends, url, url_via,
};
use event_processor_tests::{deadline, event_name, unique_client};
use http::StatusCode;
use serde_json::json;
use tokio_postgres::error::SqlState;

fn app_on(store: Arc<dyn SchemaStore>) -> axum::Router {
    App::new(store, Arc::new(MemoryEventStream::new())).router()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminated_backends_are_replaced_and_the_next_requests_succeed() {
    let app = App::build(&Config::parse(&url(), "memory:").unwrap())
        .await
        .unwrap()
        .router();
    let client = unique_client();
    let registered = post_json(
        &app,
        &format!("/{client}/Fruits/register_event"),
        &json!({}),
    )
    .await;
    assert_eq!(registered.status, StatusCode::CREATED);

    let admin = admin().await;
    assert!(
        terminate_other_backends(&admin).await >= 1,
        "the pool had a connection"
    );

    let listed = get(&app, &format!("/{client}/list_events")).await;
    assert_eq!(listed.status, StatusCode::OK, "{:?}", listed.body);
    assert_eq!(listed.body["events"][0]["event"], "Fruits");
    let again = post_json(
        &app,
        &format!("/{client}/Colors/register_event"),
        &json!({}),
    )
    .await;
    assert_eq!(again.status, StatusCode::CREATED, "{:?}", again.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_cut_off_gives_503_with_retry_after_and_the_pool_recovers_when_it_returns() {
    let proxy = Proxy::start(server_addr()).await;
    let app = app_on(Arc::new(store_at(&url_via(proxy.addr)).await));
    let client = unique_client();
    let list = format!("/{client}/list_events");
    post_json(
        &app,
        &format!("/{client}/Fruits/register_event"),
        &json!({}),
    )
    .await;

    proxy.cut();
    let down = get(&app, &list).await;

    assert_eq!(
        down.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{:?}",
        down.body
    );
    assert!(down.headers.contains_key(http::header::RETRY_AFTER));
    assert_eq!(down.body["code"], "FAILED");
    proxy.restore();
    let back = get(&app, &list).await;
    assert_eq!(back.status, StatusCode::OK, "{:?}", back.body);
    assert_eq!(back.body["events"][0]["event"], "Fruits");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_applies_each_migration_once_however_often_it_runs() {
    let store = store().await;

    store.setup().await.unwrap();
    store.setup().await.unwrap();

    let versions: Vec<i32> = admin()
        .await
        .query(
            "SELECT version FROM event_processor.migrations ORDER BY version",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(versions, [1, 2, 3, 4, 5, 6]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn re_registering_a_schema_whose_numbers_jsonb_would_rewrite_is_still_idempotent() {
    // jsonb stores -1.5e10 as -15000000000: served back from jsonb, the identical schema
    // would read as a different JSON value and the second registration would be a 409.
    let app = app_on(store().await);
    let uri = format!("/{}/Measures/register_event", unique_client());
    let schema =
        json!({"type": "object", "properties": {"n": {"minimum": -1.5e10, "multipleOf": 0.5}}});

    let first = post_json(&app, &uri, &schema).await;
    let second = post_json(&app, &uri, &schema).await;

    assert_eq!(first.status, StatusCode::CREATED, "{:?}", first.body);
    assert_eq!(second.status, StatusCode::OK, "{:?}", second.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemas_are_stored_as_jsonb_that_operators_can_query() {
    let store = store().await;
    let client = unique_client();
    let schema = json!({"type": "object", "required": ["fruit"]});
    store
        .insert_version(
            &client,
            &event_name("Fruits"),
            SchemaVersion::FIRST,
            &schema,
            deadline(),
        )
        .await
        .unwrap();

    let required: String = admin()
        .await
        .query_one(
            "SELECT schema -> 'required' ->> 0 FROM event_processor.schemas WHERE client = $1",
            &[&client.as_str()],
        )
        .await
        .unwrap()
        .get(0);

    assert_eq!(required, "fruit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateways_racing_for_a_version_have_exactly_one_winner() {
    // Given two gateways, each with its own pool, on one database, and a registered pair.
    let gateways: [Arc<dyn SchemaStore>; 2] = [store().await, store().await];
    let (client, event) = (unique_client(), event_name("Fruits"));
    let second = SchemaVersion::new(2).unwrap();
    let first = gateways[0]
        .insert_version(
            &client,
            &event,
            SchemaVersion::FIRST,
            &json!({}),
            deadline(),
        )
        .await;
    assert_eq!(first.unwrap(), Insert::Inserted);

    // When 20 registrations of version 2, with different schemas, race through both.
    let racing: Vec<_> = (0..20)
        .map(|i| {
            let store = gateways[i % 2].clone();
            let (client, event) = (client.clone(), event.clone());
            tokio::spawn(async move {
                let schema = json!({"title": format!("contender {i}")});
                let insert = store
                    .insert_version(&client, &event, second, &schema, deadline())
                    .await
                    .unwrap();
                (schema, insert)
            })
        })
        .collect();
    let (mut winners, mut taken) = (Vec::new(), Vec::new());
    for task in racing {
        match task.await.unwrap() {
            (schema, Insert::Inserted) => winners.push(schema),
            (_, Insert::Taken(winner)) => taken.push(winner),
        }
    }

    // Then exactly one wins, every other one is told the winner's schema, and it is stored.
    assert_eq!(winners.len(), 1, "exactly one registration wins version 2");
    assert_eq!(taken.len(), 19);
    for winner in &taken {
        assert_eq!((winner.version, &winner.schema), (second, &winners[0]));
    }
    let history = gateways[1].history(&client, &event, deadline()).await;
    let stored: Vec<_> = history.unwrap().into_iter().map(|s| s.schema).collect();
    assert_eq!(stored, [json!({}), winners[0].clone()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeating_a_registration_finds_its_own_version_taken_with_its_own_schema() {
    // A retry after a lost reply repeats the insert its first attempt committed.
    let store = store().await;
    let (client, event) = (unique_client(), event_name("Fruits"));
    let schema = json!({"type": "object"});
    let first = store
        .insert_version(&client, &event, SchemaVersion::FIRST, &schema, deadline())
        .await;

    let again = store
        .insert_version(&client, &event, SchemaVersion::FIRST, &schema, deadline())
        .await;

    assert_eq!(first.unwrap(), Insert::Inserted);
    match again.unwrap() {
        Insert::Taken(own) => assert_eq!((own.version, own.schema), (SchemaVersion::FIRST, schema)),
        other => panic!("expected Taken, got {other:?}"),
    }
    let history = store.history(&client, &event, deadline()).await.unwrap();
    assert_eq!(history.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_compatibility_table_holds_the_seven_modes_and_refuses_any_other() {
    let store = store().await;
    let (client, event) = (unique_client(), event_name("Fruits"));
    for mode in Mode::ALL {
        store
            .set_compatibility(&client, &event, mode, deadline())
            .await
            .unwrap();
        let got = store.compatibility(&client, &event, deadline()).await;
        assert_eq!(got.unwrap(), Some(mode));
    }

    let refused = admin()
        .await
        .execute(
            "UPDATE event_processor.compatibility SET mode = 'SIDEWAYS'
             WHERE client = $1 AND event = $2",
            &[&client.as_str(), &event.as_str()],
        )
        .await
        .expect_err("an unknown mode is refused");

    assert_eq!(refused.code(), Some(&SqlState::CHECK_VIOLATION));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_holding_u0000_is_registered_and_read_back_as_the_same_value() {
    // Issue 14: jsonb refuses \u0000, which turned a client's schema into a 503 forever.
    let app = app_on(store().await);
    let client = unique_client();
    let schema = json!({"description": "\u{0}", "properties": {"a\u{0}b": {"const": "x\u{0}"}}});

    let first = post_json(&app, &format!("/{client}/Fruits/register_event"), &schema).await;
    let again = post_json(&app, &format!("/{client}/Fruits/register_event"), &schema).await;
    let read = get(&app, &format!("/{client}/Fruits/schema")).await;

    assert_eq!(first.status, StatusCode::CREATED, "{:?}", first.body);
    assert_eq!(again.status, StatusCode::OK, "{:?}", again.body);
    assert_eq!(read.status, StatusCode::OK, "{:?}", read.body);
    assert_eq!(read.body["schema"], schema, "{:?}", read.body);
}
