//! The adapter contracts. Every function here is one behaviour of a port, written against the
//! trait only; the macros turn each into a named `#[tokio::test]` for one backend.

use std::sync::Arc;
use std::time::Duration;

use event_processor_core::compat::Mode;
use event_processor_core::domain::{ClientId, EventName, SchemaVersion};
use event_processor_core::envelope::{CloudEvent, Envelope};
use event_processor_core::ports::{
    EventSource, EventStream, Insert, SchemaStore, StartAt, Subscription,
};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::{deadline, event_name, unique_client};

/// How long a read-back waits for events before the test fails.
pub const READ_BACK_TIMEOUT: Duration = Duration::from_secs(30);

/// Reads from `subscription` until `count` events arrived (or fails the test after the timeout).
pub async fn read_events(subscription: &mut dyn Subscription, count: usize) -> Vec<CloudEvent> {
    let mut events = Vec::new();
    let give_up = tokio::time::Instant::now() + READ_BACK_TIMEOUT;
    while events.len() < count {
        assert!(
            tokio::time::Instant::now() < give_up,
            "only {} of {count} events arrived within {READ_BACK_TIMEOUT:?}",
            events.len()
        );
        events.extend(subscription.next_batch().await.expect("subscription reads"));
    }
    events
}

pub mod store {
    use super::*;

    fn v(n: u32) -> SchemaVersion {
        SchemaVersion::new(n).expect("versions start at 1")
    }

    /// Registers `schemas` as versions 1, 2, ... of a new pair.
    async fn registered(store: &dyn SchemaStore, schemas: &[Value]) -> (ClientId, EventName) {
        let (client, event) = (unique_client(), event_name("Fruits"));
        for (i, schema) in schemas.iter().enumerate() {
            let version = v(i as u32 + 1);
            let insert = store
                .insert_version(&client, &event, version, schema, deadline())
                .await
                .unwrap();
            assert_eq!(insert, Insert::Inserted, "version {version}");
        }
        (client, event)
    }

    pub async fn first_registration_is_version_1_and_readable(store: Arc<dyn SchemaStore>) {
        let schema = json!({"type": "object", "required": ["fruit"]});

        let (client, event) = registered(store.as_ref(), std::slice::from_ref(&schema)).await;

        let latest = store
            .get(&client, &event, None, deadline())
            .await
            .unwrap()
            .expect("registered");
        assert_eq!(latest.schema, schema);
        assert_eq!(latest.version, SchemaVersion::FIRST);
        assert_eq!((&latest.client, &latest.event), (&client, &event));
        OffsetDateTime::parse(&latest.registered_at, &Rfc3339).expect("registered_at is RFC 3339");
        let first = store
            .get(&client, &event, Some(SchemaVersion::FIRST), deadline())
            .await
            .unwrap();
        assert_eq!(first, Some(latest));
    }

    pub async fn a_taken_version_returns_the_winner_and_writes_nothing(
        store: Arc<dyn SchemaStore>,
    ) {
        let first = json!({"type": "object"});
        let (client, event) = registered(store.as_ref(), std::slice::from_ref(&first)).await;

        let insert = store
            .insert_version(&client, &event, v(1), &json!({"type": "array"}), deadline())
            .await
            .unwrap();

        match insert {
            Insert::Taken(winner) => {
                assert_eq!((winner.version, &winner.schema), (v(1), &first));
            }
            other => panic!("expected Taken, got {other:?}"),
        }
        let history = store.history(&client, &event, deadline()).await.unwrap();
        assert_eq!(history.len(), 1);
        assert_eq!(history[0].schema, first);
    }

    pub async fn concurrent_registrations_of_a_version_have_exactly_one_winner(
        store: Arc<dyn SchemaStore>,
    ) {
        let (client, event) = registered(store.as_ref(), &[json!({})]).await;
        let tasks: Vec<_> = (0..20)
            .map(|i| {
                let (store, client, event) = (store.clone(), client.clone(), event.clone());
                tokio::spawn(async move {
                    let schema = json!({"type": "object", "title": format!("contender {i}")});
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
            let (schema, insert) = task.await.unwrap();
            match insert {
                Insert::Inserted => winners.push(schema),
                Insert::Taken(winner) => assert_eq!(winner.version, v(2)),
            }
        }

        assert_eq!(winners.len(), 1, "exactly one registration wins version 2");
        let history = store.history(&client, &event, deadline()).await.unwrap();
        assert_eq!(history.len(), 2);
        assert_eq!(history[1].schema, winners[0]);
    }

    pub async fn every_version_is_kept_and_read_back_in_order(store: Arc<dyn SchemaStore>) {
        let schemas = [
            json!({"type": "object"}),
            json!({"type": "object", "title": "two"}),
            json!({"type": "object", "title": "three"}),
        ];

        let (client, event) = registered(store.as_ref(), &schemas).await;

        let history = store.history(&client, &event, deadline()).await.unwrap();
        let versions = store.versions(&client, &event, deadline()).await.unwrap();
        let got: Vec<(u32, &Value)> = history
            .iter()
            .map(|h| (h.version.get(), &h.schema))
            .collect();
        assert_eq!(
            got,
            vec![(1, &schemas[0]), (2, &schemas[1]), (3, &schemas[2])]
        );
        let numbers: Vec<u32> = versions.iter().map(|i| i.version.get()).collect();
        assert_eq!(numbers, [1, 2, 3]);
        for (info, full) in versions.iter().zip(&history) {
            assert_eq!(info.registered_at, full.registered_at);
            OffsetDateTime::parse(&info.registered_at, &Rfc3339).expect("RFC 3339");
        }
        let second = store
            .get(&client, &event, Some(v(2)), deadline())
            .await
            .unwrap();
        assert_eq!(second.map(|s| s.schema), Some(schemas[1].clone()));
        let latest = store.get(&client, &event, None, deadline()).await.unwrap();
        assert_eq!(latest.map(|s| s.version), Some(v(3)));
    }

    pub async fn a_missing_version_is_none(store: Arc<dyn SchemaStore>) {
        let (client, event) = registered(store.as_ref(), &[json!({})]).await;

        let got = store
            .get(&client, &event, Some(v(5)), deadline())
            .await
            .unwrap();

        assert_eq!(got, None);
    }

    pub async fn an_unregistered_pair_has_nothing(store: Arc<dyn SchemaStore>) {
        let (client, event) = (unique_client(), event_name("Nothing"));
        assert_eq!(
            store.get(&client, &event, None, deadline()).await.unwrap(),
            None
        );
        assert_eq!(
            store
                .get(&client, &event, Some(v(1)), deadline())
                .await
                .unwrap(),
            None
        );
        assert!(
            store
                .history(&client, &event, deadline())
                .await
                .unwrap()
                .is_empty()
        );
        assert!(
            store
                .versions(&client, &event, deadline())
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            store
                .compatibility(&client, &event, deadline())
                .await
                .unwrap(),
            None
        );
    }

    pub async fn list_is_sorted_by_event_shows_only_that_client_and_the_latest_version(
        store: Arc<dyn SchemaStore>,
    ) {
        let (a, b) = (unique_client(), unique_client());
        for name in ["Zebra", "Apple", "Mango"] {
            store
                .insert_version(&a, &event_name(name), v(1), &json!({}), deadline())
                .await
                .unwrap();
        }
        store
            .insert_version(
                &a,
                &event_name("Mango"),
                v(2),
                &json!({"title": "2"}),
                deadline(),
            )
            .await
            .unwrap();
        store
            .insert_version(&b, &event_name("Other"), v(1), &json!({}), deadline())
            .await
            .unwrap();

        let listed = store.list(&a, deadline()).await.unwrap();

        let got: Vec<(&str, u32)> = listed
            .iter()
            .map(|e| (e.event.as_str(), e.version.get()))
            .collect();
        assert_eq!(got, [("Apple", 1), ("Mango", 2), ("Zebra", 1)]);
        assert!(listed.iter().all(|e| e.client == a));
    }

    pub async fn unknown_client_lists_nothing(store: Arc<dyn SchemaStore>) {
        assert!(
            store
                .list(&unique_client(), deadline())
                .await
                .unwrap()
                .is_empty()
        );
    }

    pub async fn schemas_round_trip_as_json_values(store: Arc<dyn SchemaStore>) {
        let schema = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": "Früchte — 果物 \u{1F34D}",
            "type": "object",
            "properties": {"n": {"type": "number", "minimum": -1.5e10, "maximum": 12345678901234i64}},
            "required": ["n"],
            "additionalProperties": false,
            "examples": [null, true, [1, [2, [3]]], {"nested": {"deep": "value"}}]
        });

        let (client, event) = registered(store.as_ref(), std::slice::from_ref(&schema)).await;

        let got = store.get(&client, &event, None, deadline()).await.unwrap();
        assert_eq!(got.map(|s| s.schema), Some(schema));
    }

    pub async fn a_pair_has_no_mode_until_one_is_set_and_the_last_one_set_wins(
        store: Arc<dyn SchemaStore>,
    ) {
        let (client, event) = registered(store.as_ref(), &[json!({})]).await;
        assert_eq!(
            store
                .compatibility(&client, &event, deadline())
                .await
                .unwrap(),
            None
        );

        store
            .set_compatibility(&client, &event, Mode::FullTransitive, deadline())
            .await
            .unwrap();
        store
            .set_compatibility(&client, &event, Mode::None, deadline())
            .await
            .unwrap();

        assert_eq!(
            store
                .compatibility(&client, &event, deadline())
                .await
                .unwrap(),
            Some(Mode::None)
        );
        let (other, _) = registered(store.as_ref(), &[json!({})]).await;
        assert_eq!(
            store
                .compatibility(&other, &event, deadline())
                .await
                .unwrap(),
            None,
            "modes are per pair"
        );
        // Setting a mode changes no version.
        assert_eq!(
            store
                .versions(&client, &event, deadline())
                .await
                .unwrap()
                .len(),
            1
        );
    }
}

pub mod stream {
    use super::*;

    async fn prepared(stream: &dyn EventStream) -> (ClientId, EventName) {
        let (client, event) = (unique_client(), event_name("Fruits"));
        stream
            .prepare(&client, &event, deadline())
            .await
            .expect("prepare the pair");
        (client, event)
    }

    fn envelope(client: &ClientId, event: &EventName, data: Value) -> Envelope {
        Envelope::new(client, event, SchemaVersion::FIRST, &data).expect("an envelope")
    }

    pub async fn published_event_is_read_back_with_its_envelope(
        stream: Arc<dyn EventStream>,
        source: Arc<dyn EventSource>,
    ) {
        let (client, event) = prepared(stream.as_ref()).await;
        let sent = envelope(
            &client,
            &event,
            json!({"fruit": "kiwi", "n": [1, 2.5, null]}),
        );

        stream.publish(&sent, deadline()).await.unwrap();

        let mut subscription = source
            .subscribe(&client, &event, StartAt::Beginning)
            .await
            .unwrap();
        let got = read_events(subscription.as_mut(), 1).await;
        assert_eq!(got, vec![sent.to_cloud_event().unwrap()]);
    }

    pub async fn events_of_a_pair_are_read_in_publish_order(
        stream: Arc<dyn EventStream>,
        source: Arc<dyn EventSource>,
    ) {
        let (client, event) = prepared(stream.as_ref()).await;
        let sent: Vec<Envelope> = (0..25)
            .map(|i| envelope(&client, &event, json!({"i": i})))
            .collect();

        for e in &sent {
            stream.publish(e, deadline()).await.unwrap();
        }

        let mut subscription = source
            .subscribe(&client, &event, StartAt::Beginning)
            .await
            .unwrap();
        let got = read_events(subscription.as_mut(), sent.len()).await;
        let ids: Vec<&str> = got.iter().map(|e| e.id.as_str()).collect();
        let expected: Vec<&str> = sent.iter().map(|e| e.cloud_event.id.as_str()).collect();
        assert_eq!(ids, expected);
    }

    pub async fn a_subscription_from_the_end_sees_only_new_events(
        stream: Arc<dyn EventStream>,
        source: Arc<dyn EventSource>,
    ) {
        let (client, event) = prepared(stream.as_ref()).await;
        stream
            .publish(&envelope(&client, &event, json!({"old": true})), deadline())
            .await
            .unwrap();
        let mut subscription = source
            .subscribe(&client, &event, StartAt::End)
            .await
            .unwrap();
        // Give subscribers that position themselves lazily time to reach the end.
        let _ = subscription.next_batch().await.unwrap();

        let new = envelope(&client, &event, json!({"old": false}));
        stream.publish(&new, deadline()).await.unwrap();

        let got = read_events(subscription.as_mut(), 1).await;
        assert_eq!(got, vec![new.to_cloud_event().unwrap()]);
    }

    pub async fn pairs_do_not_see_each_others_events(
        stream: Arc<dyn EventStream>,
        source: Arc<dyn EventSource>,
    ) {
        let (client, event) = prepared(stream.as_ref()).await;
        let (other_client, _) = prepared(stream.as_ref()).await;
        let other = event_name("Colors");
        stream.prepare(&client, &other, deadline()).await.unwrap();
        stream
            .publish(
                &envelope(&other_client, &event, json!({"x": 1})),
                deadline(),
            )
            .await
            .unwrap();
        stream
            .publish(&envelope(&client, &other, json!({"x": 2})), deadline())
            .await
            .unwrap();
        let mine = envelope(&client, &event, json!({"x": 3}));
        stream.publish(&mine, deadline()).await.unwrap();

        let mut subscription = source
            .subscribe(&client, &event, StartAt::Beginning)
            .await
            .unwrap();
        let got = read_events(subscription.as_mut(), 1).await;
        assert_eq!(got, vec![mine.to_cloud_event().unwrap()]);
        // Nothing else arrives for this pair.
        let more = subscription.next_batch().await.unwrap();
        assert!(more.is_empty(), "unexpected events: {more:?}");
    }

    pub async fn a_batch_is_acknowledged_per_event_and_read_back_in_order(
        stream: Arc<dyn EventStream>,
        source: Arc<dyn EventSource>,
    ) {
        let (client, event) = prepared(stream.as_ref()).await;
        let batch: Vec<Envelope> = (0..50)
            .map(|i| envelope(&client, &event, json!({"i": i})))
            .collect();

        let results = stream.publish_batch(&batch, deadline()).await;

        assert_eq!(results.len(), batch.len());
        assert!(results.iter().all(Result::is_ok), "{results:?}");
        let mut subscription = source
            .subscribe(&client, &event, StartAt::Beginning)
            .await
            .unwrap();
        let got = read_events(subscription.as_mut(), batch.len()).await;
        let ids: Vec<&str> = got.iter().map(|e| e.id.as_str()).collect();
        let expected: Vec<&str> = batch.iter().map(|e| e.cloud_event.id.as_str()).collect();
        assert_eq!(ids, expected);
    }

    pub async fn concurrent_publishes_are_all_acknowledged_and_all_stored(
        stream: Arc<dyn EventStream>,
        source: Arc<dyn EventSource>,
    ) {
        let (client, event) = prepared(stream.as_ref()).await;
        let tasks: Vec<_> = (0..100)
            .map(|i| {
                let stream = stream.clone();
                let sent = envelope(&client, &event, json!({"i": i}));
                tokio::spawn(async move {
                    stream.publish(&sent, deadline()).await.unwrap();
                    sent.cloud_event.id
                })
            })
            .collect();
        let mut acknowledged = Vec::new();
        for task in tasks {
            acknowledged.push(task.await.unwrap());
        }

        let mut subscription = source
            .subscribe(&client, &event, StartAt::Beginning)
            .await
            .unwrap();
        let mut got: Vec<String> = read_events(subscription.as_mut(), acknowledged.len())
            .await
            .into_iter()
            .map(|e| e.id)
            .collect();
        got.sort();
        acknowledged.sort();
        assert_eq!(got, acknowledged);
    }
}

/// Instantiates the `SchemaStore` contract: `$make` is an expression evaluating to a future
/// of `Arc<dyn SchemaStore>` (a fresh or shared store; every test uses its own client names).
#[macro_export]
macro_rules! schema_store_contract {
    ($make:expr) => {
        $crate::schema_store_contract!(@tests $make;
            first_registration_is_version_1_and_readable,
            a_taken_version_returns_the_winner_and_writes_nothing,
            concurrent_registrations_of_a_version_have_exactly_one_winner,
            every_version_is_kept_and_read_back_in_order,
            a_missing_version_is_none,
            an_unregistered_pair_has_nothing,
            list_is_sorted_by_event_shows_only_that_client_and_the_latest_version,
            unknown_client_lists_nothing,
            schemas_round_trip_as_json_values,
            a_pair_has_no_mode_until_one_is_set_and_the_last_one_set_wins,
        );
    };
    (@tests $make:expr; $($name:ident,)*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                $crate::contract::store::$name($make.await).await;
            }
        )*
    };
}

/// Instantiates the `EventStream` contract: `$make` evaluates to a future of
/// `(Arc<dyn EventStream>, Arc<dyn EventSource>)` over the same stream.
#[macro_export]
macro_rules! event_stream_contract {
    ($make:expr) => {
        $crate::event_stream_contract!(@tests $make;
            published_event_is_read_back_with_its_envelope,
            events_of_a_pair_are_read_in_publish_order,
            a_subscription_from_the_end_sees_only_new_events,
            pairs_do_not_see_each_others_events,
            a_batch_is_acknowledged_per_event_and_read_back_in_order,
            concurrent_publishes_are_all_acknowledged_and_all_stored,
        );
    };
    (@tests $make:expr; $($name:ident,)*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let (stream, source) = $make.await;
                $crate::contract::stream::$name(stream, source).await;
            }
        )*
    };
}
