//! Upgrading from the data of the previous release (commit 34f52a3), which wrote one head item
//! per pair — `client`, `event`, `schema`, `version` 1 — with no `registered_at` and no version
//! items. Each test writes items exactly as that release did, then uses them with this one.

use std::sync::Arc;

use event_processor_core::adapters::dynamodb::{DynamoDbSchemaStore, LEGACY_REGISTERED_AT};
use event_processor_core::domain::{ClientId, EventName, SchemaVersion};
use event_processor_core::ports::{Insert, SchemaStore, VersionInfo};
use event_processor_tests::api::{get, post_json};
use event_processor_tests::aws::{
    RawItem, fresh_app, fresh_store, put_previous_release_item, raw_item, raw_table, sdk_config,
};
use event_processor_tests::{deadline, event_name, unique_client};
use http::StatusCode;
use serde_json::{Value, json};

fn v(n: u32) -> SchemaVersion {
    SchemaVersion::new(n).expect("versions start at 1")
}

/// The schema of the previous release's demo, as that release stored it (`Value::to_string`).
fn fruits() -> Value {
    json!({"type": "object", "required": ["fruit"]})
}

/// A pair registered in `store`'s table by the previous release.
async fn previous_release_pair(store: &DynamoDbSchemaStore) -> (ClientId, EventName) {
    let (client, event) = (unique_client(), event_name("Fruits"));
    put_previous_release_item(
        store.table(),
        client.as_str(),
        event.as_str(),
        &fruits().to_string(),
    )
    .await;
    (client, event)
}

fn text(item: &RawItem, name: &str) -> String {
    item[name].as_s().expect("a string attribute").clone()
}

#[tokio::test]
async fn a_pair_of_the_previous_release_reads_as_version_1_registered_at_the_epoch() {
    let store = fresh_store().await;
    let (client, event) = previous_release_pair(&store).await;

    let latest = store.get(&client, &event, None, deadline()).await.unwrap();
    let first = store
        .get(&client, &event, Some(v(1)), deadline())
        .await
        .unwrap();
    let history = store.history(&client, &event, deadline()).await.unwrap();
    let versions = store.versions(&client, &event, deadline()).await.unwrap();
    let listed = store.list(&client, deadline()).await.unwrap();

    let latest = latest.expect("the head is the latest version");
    assert_eq!(
        (
            latest.version,
            &latest.schema,
            latest.registered_at.as_str()
        ),
        (v(1), &fruits(), LEGACY_REGISTERED_AT)
    );
    assert_eq!(first.as_ref(), Some(&latest));
    assert_eq!(history, [latest]);
    assert_eq!(
        versions,
        [VersionInfo {
            version: v(1),
            registered_at: LEGACY_REGISTERED_AT.to_owned()
        }]
    );
    let listed: Vec<(&str, u32)> = listed
        .iter()
        .map(|e| (e.event.as_str(), e.version.get()))
        .collect();
    assert_eq!(listed, [("Fruits", 1)]);
    assert_eq!(
        store
            .get(&client, &event, Some(v(2)), deadline())
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .compatibility(&client, &event, deadline())
            .await
            .unwrap(),
        None
    );
}

#[tokio::test]
async fn version_2_of_a_pair_of_the_previous_release_registers_and_version_1_stays_readable() {
    let (app, names) = fresh_app().await;
    let router = app.router();
    put_previous_release_item(&names.table, "SpongeBob", "Fruits", &fruits().to_string()).await;
    // Dropping `required` accepts every event version 1 accepted: BACKWARD allows it.
    let relaxed = json!({"type": "object"});

    let registered = post_json(&router, "/SpongeBob/Fruits/register_event", &relaxed).await;

    assert_eq!(
        registered.status,
        StatusCode::CREATED,
        "{:?}",
        registered.body
    );
    assert_eq!(registered.body["version"], 2);
    let first = get(&router, "/SpongeBob/Fruits/schema?version=1").await;
    assert_eq!(first.status, StatusCode::OK, "{:?}", first.body);
    assert_eq!(
        (&first.body["schema"], &first.body["version"]),
        (&fruits(), &json!(1))
    );
    let latest = get(&router, "/SpongeBob/Fruits/schema").await;
    assert_eq!(
        (&latest.body["schema"], &latest.body["version"]),
        (&relaxed, &json!(2))
    );
    let versions = get(&router, "/SpongeBob/Fruits/versions").await;
    assert_eq!(versions.status, StatusCode::OK, "{:?}", versions.body);
    assert_eq!(versions.body["versions"][0]["version"], 1);
    assert_eq!(
        versions.body["versions"][0]["registered_at"],
        LEGACY_REGISTERED_AT
    );
    assert_eq!(versions.body["versions"][1]["version"], 2);
    assert_ne!(
        versions.body["versions"][1]["registered_at"],
        LEGACY_REGISTERED_AT
    );
    let listed = get(&router, "/SpongeBob/list_events").await;
    assert_eq!(
        listed.body["events"],
        json!([{"client": "SpongeBob", "event": "Fruits", "version": 2}])
    );
    // The registration wrote version 1's item, with the head's text as it was.
    let one = raw_item(&names.table, "SpongeBob#Fruits", "v0000000001")
        .await
        .expect("version 1's item was written with version 2");
    assert_eq!(text(&one, "schema"), fruits().to_string());
    assert_eq!(text(&one, "registered_at"), LEGACY_REGISTERED_AT);
}

#[tokio::test]
async fn version_1_of_a_pair_of_the_previous_release_is_taken_by_its_head() {
    let store = fresh_store().await;
    let (client, event) = previous_release_pair(&store).await;
    let before = raw_table(store.table()).await;

    let insert = store
        .insert_version(&client, &event, v(1), &json!({"type": "array"}), deadline())
        .await
        .unwrap();

    match insert {
        Insert::Taken(winner) => {
            assert_eq!((winner.version, &winner.schema), (v(1), &fruits()));
        }
        other => panic!("expected Taken, got {other:?}"),
    }
    assert_eq!(
        raw_table(store.table()).await,
        before,
        "nothing was written"
    );
}

#[tokio::test]
async fn concurrent_registrations_of_version_2_of_a_pair_of_the_previous_release_have_exactly_one_winner()
 {
    let table = fresh_store().await.table().to_owned();
    let stores: Vec<Arc<dyn SchemaStore>> = vec![
        Arc::new(DynamoDbSchemaStore::from_config(
            &sdk_config().await,
            &table,
        )),
        Arc::new(DynamoDbSchemaStore::from_config(
            &sdk_config().await,
            &table,
        )),
    ];
    let (client, event) = (unique_client(), event_name("Fruits"));
    put_previous_release_item(
        &table,
        client.as_str(),
        event.as_str(),
        &fruits().to_string(),
    )
    .await;

    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let (store, client, event) = (stores[i % 2].clone(), client.clone(), event.clone());
            tokio::spawn(async move {
                let schema = json!({"title": format!("contender {i}")});
                let insert = store
                    .insert_version(&client, &event, v(2), &schema, deadline())
                    .await
                    .unwrap();
                (schema, insert)
            })
        })
        .collect();
    let mut winners = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            (schema, Insert::Inserted) => winners.push(schema),
            (_, Insert::Taken(winner)) => assert_eq!(winner.version, v(2)),
        }
    }

    assert_eq!(winners.len(), 1, "exactly one registration wins version 2");
    let history = stores[0]
        .history(&client, &event, deadline())
        .await
        .unwrap();
    let got: Vec<(u32, &Value)> = history
        .iter()
        .map(|h| (h.version.get(), &h.schema))
        .collect();
    assert_eq!(got, [(1, &fruits()), (2, &winners[0])]);
    assert_eq!(history[0].registered_at, LEGACY_REGISTERED_AT);
    assert_eq!(
        raw_table(&table).await.len(),
        3,
        "one head and two versions"
    );
}

#[tokio::test]
async fn setup_backfills_the_version_items_of_the_previous_release_and_a_second_setup_changes_nothing()
 {
    let store = fresh_store().await;
    let (old_a, fruits_event) = previous_release_pair(&store).await;
    let (old_b, _) = previous_release_pair(&store).await;
    let (new, event) = (unique_client(), event_name("Colors"));
    store
        .insert_version(&new, &event, v(1), &json!({"type": "object"}), deadline())
        .await
        .unwrap();
    let new_items = |table: Vec<RawItem>| -> Vec<RawItem> {
        table
            .into_iter()
            .filter(|item| text(item, "client").starts_with(new.as_str()))
            .collect()
    };
    let new_before = new_items(raw_table(store.table()).await);

    store.setup().await.expect("setup backfills");

    let after = raw_table(store.table()).await;
    for client in [&old_a, &old_b] {
        let head = raw_item(store.table(), client.as_str(), "Fruits")
            .await
            .unwrap();
        let one = raw_item(store.table(), &format!("{client}#Fruits"), "v0000000001")
            .await
            .expect("the version item was backfilled");
        assert_eq!(text(&one, "schema"), text(&head, "schema"));
        assert_eq!(text(&one, "registered_at"), LEGACY_REGISTERED_AT);
        assert_eq!(text(&head, "registered_at"), LEGACY_REGISTERED_AT);
        assert_eq!(head["version"].as_n().unwrap(), "1");
    }
    assert_eq!(
        after.len(),
        6,
        "two old pairs and a new one, each a head and a version"
    );
    assert_eq!(
        new_items(after.clone()),
        new_before,
        "a new pair is left alone"
    );

    store.setup().await.expect("a second setup succeeds");

    assert_eq!(raw_table(store.table()).await, after);
    // And the backfilled pair lives on as any other.
    let versions = store
        .versions(&old_a, &fruits_event, deadline())
        .await
        .unwrap();
    assert_eq!(versions.len(), 1);
    assert_eq!(versions[0].registered_at, LEGACY_REGISTERED_AT);
    let insert = store
        .insert_version(&old_a, &fruits_event, v(2), &json!({}), deadline())
        .await
        .unwrap();
    assert_eq!(insert, Insert::Inserted);
    let history = store
        .history(&old_a, &fruits_event, deadline())
        .await
        .unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(history[0].schema, fruits());
}
