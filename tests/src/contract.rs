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

pub mod rejections {
    use event_processor_core::domain::{EventId, now_rfc3339};
    use event_processor_core::ports::{Rejection, RejectionStore};
    use event_processor_core::schema::ValidationIssue;

    use super::*;

    /// A rejection of `data` for the pair, received now.
    pub fn rejection(client: &ClientId, event: &EventName, data: &str) -> Rejection {
        Rejection {
            id: EventId::new(),
            client: client.clone(),
            event: event.clone(),
            version: Some(SchemaVersion::FIRST),
            received_at: now_rfc3339(),
            request_id: Some("req-1".to_owned()),
            error: "validation_failed".to_owned(),
            errors: vec![ValidationIssue {
                instance_path: "/fruit".to_owned(),
                schema_path: "/properties/fruit/type".to_owned(),
                keyword: "type".to_owned(),
                message: "7 is not of type \"string\"".to_owned(),
            }],
            data: data.to_owned(),
            truncated: false,
            replayed: None,
        }
    }

    fn pair() -> (ClientId, EventName) {
        (unique_client(), event_name("Fruits"))
    }

    pub async fn kept_rejections_are_listed_newest_first_with_every_field(
        store: Arc<dyn RejectionStore>,
    ) {
        let (client, event) = pair();
        let older = rejection(&client, &event, r#"{"fruit": 7}"#);
        let mut newer = rejection(&client, &event, "{not json");
        newer.version = None;
        newer.request_id = None;
        newer.error = "invalid_json".to_owned();
        newer.errors = Vec::new();
        newer.truncated = true;

        store
            .keep(std::slice::from_ref(&older), deadline())
            .await
            .unwrap();
        store
            .keep(std::slice::from_ref(&newer), deadline())
            .await
            .unwrap();

        let listed = store
            .list(&client, &event, 10, None, deadline())
            .await
            .unwrap();
        assert_eq!(listed, vec![newer, older]);
    }

    pub async fn paging_with_before_continues_with_older_rejections(
        store: Arc<dyn RejectionStore>,
    ) {
        let (client, event) = pair();
        let kept: Vec<Rejection> = (0..5)
            .map(|i| rejection(&client, &event, &format!("{{\"i\": {i}}}")))
            .collect();
        store.keep(&kept, deadline()).await.unwrap();

        let first = store
            .list(&client, &event, 2, None, deadline())
            .await
            .unwrap();
        let second = store
            .list(&client, &event, 2, Some(first[1].id), deadline())
            .await
            .unwrap();
        let last = store
            .list(&client, &event, 2, Some(second[1].id), deadline())
            .await
            .unwrap();

        let ids = |page: &[Rejection]| page.iter().map(|r| r.id).collect::<Vec<_>>();
        assert_eq!(ids(&first), [kept[4].id, kept[3].id]);
        assert_eq!(ids(&second), [kept[2].id, kept[1].id]);
        assert_eq!(ids(&last), [kept[0].id]);
    }

    pub async fn a_rejection_is_read_by_id_and_an_unknown_id_is_none(
        store: Arc<dyn RejectionStore>,
    ) {
        let (client, event) = pair();
        let kept = rejection(&client, &event, r#"{"fruit": 7}"#);
        store
            .keep(std::slice::from_ref(&kept), deadline())
            .await
            .unwrap();

        let found = store
            .get(&client, &event, kept.id, deadline())
            .await
            .unwrap();
        let unknown = store
            .get(&client, &event, EventId::new(), deadline())
            .await
            .unwrap();
        let other_pair = store
            .get(&client, &event_name("Colors"), kept.id, deadline())
            .await
            .unwrap();

        assert_eq!(found, Some(kept));
        assert_eq!(unknown, None);
        assert_eq!(other_pair, None);
    }

    pub async fn pairs_do_not_see_each_others_rejections(store: Arc<dyn RejectionStore>) {
        let (client, event) = pair();
        let (other_client, _) = pair();
        store
            .keep(
                &[
                    rejection(&client, &event_name("Colors"), "1"),
                    rejection(&other_client, &event, "2"),
                ],
                deadline(),
            )
            .await
            .unwrap();

        assert!(
            store
                .list(&client, &event, 10, None, deadline())
                .await
                .unwrap()
                .is_empty()
        );
    }

    pub async fn a_replay_is_recorded_once(store: Arc<dyn RejectionStore>) {
        let (client, event) = pair();
        let kept = rejection(&client, &event, r#"{"fruit": 7}"#);
        store
            .keep(std::slice::from_ref(&kept), deadline())
            .await
            .unwrap();
        let v2 = SchemaVersion::new(2).unwrap();

        store
            .mark_replayed(&client, &event, kept.id, v2, deadline())
            .await
            .unwrap();
        store
            .mark_replayed(&client, &event, kept.id, SchemaVersion::FIRST, deadline())
            .await
            .unwrap();

        let found = store
            .get(&client, &event, kept.id, deadline())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(found.replayed, Some(v2), "the first replay's version stays");
    }

    pub async fn a_large_batch_of_rejections_is_kept_whole(store: Arc<dyn RejectionStore>) {
        let (client, event) = pair();
        let batch: Vec<Rejection> = (0..60)
            .map(|i| rejection(&client, &event, &"x".repeat(100 + i)))
            .collect();

        store.keep(&batch, deadline()).await.unwrap();

        let listed = store
            .list(&client, &event, 100, None, deadline())
            .await
            .unwrap();
        assert_eq!(listed.len(), batch.len());
        assert_eq!(listed.last().map(|r| r.id), Some(batch[0].id));
    }
}

pub mod idempotency {
    use std::time::SystemTime;

    use event_processor_core::domain::{EventId, Fingerprint, IdempotencyKey};
    use event_processor_core::ports::{Begin, IdempotencyStore, KeptAnswer};

    use super::*;

    fn key(raw: &str) -> IdempotencyKey {
        IdempotencyKey::parse(raw.as_bytes()).unwrap()
    }

    fn lease() -> SystemTime {
        SystemTime::now() + Duration::from_secs(30)
    }

    /// Not even UTF-8, with NULs and an escaped NUL as text: every store keeps the body as
    /// bytes, never as text (a PostgreSQL `text` or `jsonb` column would refuse or alter it).
    fn answer() -> KeptAnswer {
        let mut body = br#"{"code":"FAILED","msg":"\u0000"}"#.to_vec();
        body.extend([0, 0xff, 0xc3, 0x28, 0]);
        body.extend(0..=255u8);
        KeptAnswer { status: 207, body }
    }

    pub async fn the_first_request_starts_and_the_next_finds_it_in_progress(
        store: Arc<dyn IdempotencyStore>,
    ) {
        let (client, event) = (unique_client(), event_name("Fruits"));
        let print = Fingerprint::of("send_event", b"{}", None);
        let ids = [EventId::new()];

        let first = store
            .begin(&client, &event, &key("k"), print, &ids, lease(), deadline())
            .await
            .unwrap();
        let second = store
            .begin(
                &client,
                &event,
                &key("k"),
                print,
                &[EventId::new()],
                lease(),
                deadline(),
            )
            .await
            .unwrap();

        assert_eq!(first, Begin::Started);
        assert_eq!(second, Begin::InProgress);
    }

    pub async fn a_completed_key_gives_its_answer_byte_for_byte(store: Arc<dyn IdempotencyStore>) {
        let (client, event) = (unique_client(), event_name("Fruits"));
        let print = Fingerprint::of("send_event", b"[1,2]", None);
        store
            .begin(
                &client,
                &event,
                &key("k"),
                print,
                &[EventId::new()],
                lease(),
                deadline(),
            )
            .await
            .unwrap();

        store
            .complete(&client, &event, &key("k"), &answer(), deadline())
            .await
            .unwrap();
        let again = store
            .begin(
                &client,
                &event,
                &key("k"),
                print,
                &[EventId::new()],
                lease(),
                deadline(),
            )
            .await
            .unwrap();

        assert_eq!(again, Begin::Completed(answer()));
    }

    pub async fn another_fingerprint_is_a_reused_key(store: Arc<dyn IdempotencyStore>) {
        let (client, event) = (unique_client(), event_name("Fruits"));
        let print = Fingerprint::of("send_event", b"{}", None);
        let other = Fingerprint::of("send_event", b"{}", Some(SchemaVersion::FIRST));
        store
            .begin(&client, &event, &key("k"), print, &[], lease(), deadline())
            .await
            .unwrap();

        let while_running = store
            .begin(&client, &event, &key("k"), other, &[], lease(), deadline())
            .await
            .unwrap();
        store
            .complete(&client, &event, &key("k"), &answer(), deadline())
            .await
            .unwrap();
        let after = store
            .begin(&client, &event, &key("k"), other, &[], lease(), deadline())
            .await
            .unwrap();

        assert_eq!((while_running, after), (Begin::Reused, Begin::Reused));
    }

    pub async fn a_released_key_resumes_with_the_first_requests_event_ids(
        store: Arc<dyn IdempotencyStore>,
    ) {
        let (client, event) = (unique_client(), event_name("Fruits"));
        let print = Fingerprint::of("send_event", b"{}", None);
        let first_ids = vec![EventId::new(), EventId::new()];
        store
            .begin(
                &client,
                &event,
                &key("k"),
                print,
                &first_ids,
                lease(),
                deadline(),
            )
            .await
            .unwrap();

        store
            .release(&client, &event, &key("k"), deadline())
            .await
            .unwrap();
        let retry = store
            .begin(
                &client,
                &event,
                &key("k"),
                print,
                &[EventId::new()],
                lease(),
                deadline(),
            )
            .await
            .unwrap();
        let concurrent = store
            .begin(
                &client,
                &event,
                &key("k"),
                print,
                &[EventId::new()],
                lease(),
                deadline(),
            )
            .await
            .unwrap();

        assert_eq!(
            retry,
            Begin::Resumed {
                event_ids: first_ids
            }
        );
        assert_eq!(concurrent, Begin::InProgress, "the retry holds the key now");
    }

    pub async fn a_lease_that_ran_out_resumes_with_the_first_requests_event_ids(
        store: Arc<dyn IdempotencyStore>,
    ) {
        let (client, event) = (unique_client(), event_name("Fruits"));
        let print = Fingerprint::of("send_event", b"{}", None);
        let first_ids = vec![EventId::new()];
        let past = SystemTime::now() - Duration::from_secs(1);
        store
            .begin(
                &client,
                &event,
                &key("k"),
                print,
                &first_ids,
                past,
                deadline(),
            )
            .await
            .unwrap();

        let retry = store
            .begin(
                &client,
                &event,
                &key("k"),
                print,
                &[EventId::new()],
                lease(),
                deadline(),
            )
            .await
            .unwrap();

        assert_eq!(
            retry,
            Begin::Resumed {
                event_ids: first_ids
            }
        );
    }

    pub async fn concurrent_requests_with_one_key_have_exactly_one_winner(
        store: Arc<dyn IdempotencyStore>,
    ) {
        let (client, event) = (unique_client(), event_name("Fruits"));
        let print = Fingerprint::of("send_event", b"{}", None);
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let (store, client, event) = (store.clone(), client.clone(), event.clone());
                tokio::spawn(async move {
                    store
                        .begin(
                            &client,
                            &event,
                            &key("k"),
                            print,
                            &[EventId::new()],
                            lease(),
                            deadline(),
                        )
                        .await
                        .unwrap()
                })
            })
            .collect();
        let mut outcomes = Vec::new();
        for task in tasks {
            outcomes.push(task.await.unwrap());
        }

        let started = outcomes.iter().filter(|o| **o == Begin::Started).count();
        let in_progress = outcomes.iter().filter(|o| **o == Begin::InProgress).count();
        assert_eq!((started, in_progress), (1, 19), "{outcomes:?}");
    }

    pub async fn keys_are_scoped_to_their_pair(store: Arc<dyn IdempotencyStore>) {
        let (client, event) = (unique_client(), event_name("Fruits"));
        let print = Fingerprint::of("send_event", b"{}", None);
        store
            .begin(&client, &event, &key("k"), print, &[], lease(), deadline())
            .await
            .unwrap();

        let other_event = store
            .begin(
                &client,
                &event_name("Colors"),
                &key("k"),
                print,
                &[],
                lease(),
                deadline(),
            )
            .await
            .unwrap();
        let other_client = store
            .begin(
                &unique_client(),
                &event,
                &key("k"),
                print,
                &[],
                lease(),
                deadline(),
            )
            .await
            .unwrap();

        assert_eq!(
            (other_event, other_client),
            (Begin::Started, Begin::Started)
        );
    }
}

/// Instantiates the `RejectionStore` contract: `$make` evaluates to a future of
/// `Arc<dyn RejectionStore>`.
#[macro_export]
macro_rules! rejection_store_contract {
    ($make:expr) => {
        $crate::rejection_store_contract!(@tests $make;
            kept_rejections_are_listed_newest_first_with_every_field,
            paging_with_before_continues_with_older_rejections,
            a_rejection_is_read_by_id_and_an_unknown_id_is_none,
            pairs_do_not_see_each_others_rejections,
            a_replay_is_recorded_once,
            a_large_batch_of_rejections_is_kept_whole,
        );
    };
    (@tests $make:expr; $($name:ident,)*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                $crate::contract::rejections::$name($make.await).await;
            }
        )*
    };
}

/// Instantiates the `IdempotencyStore` contract: `$make` evaluates to a future of
/// `Arc<dyn IdempotencyStore>`.
#[macro_export]
macro_rules! idempotency_store_contract {
    ($make:expr) => {
        $crate::idempotency_store_contract!(@tests $make;
            the_first_request_starts_and_the_next_finds_it_in_progress,
            a_completed_key_gives_its_answer_byte_for_byte,
            another_fingerprint_is_a_reused_key,
            a_released_key_resumes_with_the_first_requests_event_ids,
            a_lease_that_ran_out_resumes_with_the_first_requests_event_ids,
            concurrent_requests_with_one_key_have_exactly_one_winner,
            keys_are_scoped_to_their_pair,
        );
    };
    (@tests $make:expr; $($name:ident,)*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                $crate::contract::idempotency::$name($make.await).await;
            }
        )*
    };
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
