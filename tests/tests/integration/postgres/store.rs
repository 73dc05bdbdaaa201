//! The PostgreSQL schema store beyond the contract: lost connections, migrations, and what
//! jsonb would otherwise change. Runs on the database `scripts/test` creates.

use std::sync::Arc;

use event_processor_core::App;
use event_processor_core::adapters::memory::MemoryEventStream;
use event_processor_core::config::Config;
use event_processor_core::ports::SchemaStore;
use event_processor_tests::api::{get, post_json};
use event_processor_tests::postgres::{
    Proxy, admin, server_addr, store, store_at, terminate_other_backends, url, url_via,
};
use event_processor_tests::{deadline, unique_client};
use http::StatusCode;
use serde_json::json;

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
            "SELECT version FROM event_processor_migrations ORDER BY version",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(versions, [1]);
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
        .insert_if_absent(
            &client,
            &event_processor_tests::event_name("Fruits"),
            &schema,
            deadline(),
        )
        .await
        .unwrap();

    let required: String = admin()
        .await
        .query_one(
            "SELECT schema -> 'required' ->> 0 FROM event_schemas WHERE client = $1",
            &[&client.as_str()],
        )
        .await
        .unwrap()
        .get(0);

    assert_eq!(required, "fruit");
}
