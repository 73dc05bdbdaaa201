//! Coming from the original service, its consumers keep working: the original published each
//! event's JSON as the Kafka record value on the topic `{client}.{event}`. The gateway, started
//! on the original's PostgreSQL database with its schemas imported, publishes to the tansu
//! broker `scripts/test` starts; a consumer written as the original's were (kafka-python,
//! `tests/original_consumer.py`, which never looks at headers or keys) reads every record and
//! gets exactly the event's JSON.
//!
//! The consumer runs with `python3` from `PATH` (`EP_TEST_PYTHON` overrides it): under
//! `scripts/test`, the tools virtualenv, where kafka-python is installed from
//! `scripts/requirements-test.txt`. Without it the test fails, saying so.

use std::process::Command;

use event_processor_core::App;
use event_processor_core::config::Config;
use event_processor_tests::api::{post_form, post_json};
use event_processor_tests::kafka::tansu_brokers;
use event_processor_tests::postgres::FreshDatabase;
use http::StatusCode;
use serde_json::{Value, json};

/// The consumer script, beside this crate's manifest.
const CONSUMER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/original_consumer.py");

/// The original's table with one pair; the pair's name is unique to this run, as the broker
/// is shared.
fn original_table(client: &str) -> String {
    format!(
        r#"CREATE TABLE event_schemas (
               client_id text, event_name text, event_schema json,
               PRIMARY KEY (client_id, event_name));
           INSERT INTO event_schemas VALUES
               ('{client}', 'Fruits', '{{"type": "object", "required": ["fruit"]}}');"#
    )
}

/// What the original's consumer printed for each record: its offset, the value as text, and
/// the value as `json.loads` read it.
struct Consumed {
    raw: String,
    event: Value,
}

/// Runs the plain consumer on `topic` until it has read `count` records.
fn consume(brokers: &str, topic: &str, count: usize) -> Vec<Consumed> {
    let python = std::env::var("EP_TEST_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let output = Command::new(&python)
        .arg(CONSUMER)
        .args(["--bootstrap-server", brokers, "--topic", topic])
        .args(["--count", &count.to_string(), "--timeout", "30"])
        .output()
        .unwrap_or_else(|e| {
            panic!("could not run {python} (the original's consumer needs Python 3 and kafka-python): {e}")
        });
    let stdout = String::from_utf8(output.stdout).expect("UTF-8 output");
    assert!(
        output.status.success(),
        "the original's consumer failed ({}): {}\n{stdout}\n(run through scripts/test, which \
         installs kafka-python into the tools virtualenv)",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
        .lines()
        .map(|line| {
            let line: Value = serde_json::from_str(line).expect("one JSON line per record");
            Consumed {
                raw: line["raw"].as_str().expect("raw").to_owned(),
                event: line["event"].clone(),
            }
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_written_for_the_original_reads_exactly_the_event_json_from_our_records() {
    let client = event_processor_tests::unique_client();
    let db = FreshDatabase::create().await;
    db.connect()
        .await
        .batch_execute(&original_table(client.as_str()))
        .await
        .unwrap();
    let brokers = tansu_brokers();
    let config = Config::parse(db.url(), &format!("kafka://{brokers}")).unwrap();
    let app = App::build(&config).await.expect("the gateway starts");
    // The import registers the pair, which creates its topic, as a registration does.
    let report = app.import_original(db.url()).await.unwrap();
    assert_eq!(report.imported(), 1, "{report}");
    let router = app.router();
    let send = format!("/{client}/Fruits/send_event");
    let events = [
        json!({"fruit": "kiwi"}),
        json!({"fruit": "açaí 🍇", "sizes": [1, 2.5, -3e-2, 12345678901234567u64], "meta": {"ripe": true, "note": null, "quote": "\"\\/\n"}}),
        json!({"fruit": "lime", "nested": [[{}], {"a": []}]}),
    ];

    // As the original's clients send: the event as JSON text in the form field `event`; then
    // as JSON bodies.
    let mut ids = Vec::new();
    for (i, event) in events.iter().enumerate() {
        let reply = if i == 0 {
            post_form(&router, &send, &[("event", &event.to_string())]).await
        } else {
            post_json(&router, &send, event).await
        };
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        ids.push(reply.body["id"].as_str().unwrap().to_owned());
    }

    let topic = format!("{client}.Fruits");
    let consumed = tokio::task::spawn_blocking(move || consume(&brokers, &topic, 3))
        .await
        .unwrap();

    assert_eq!(consumed.len(), events.len());
    for (got, sent) in consumed.iter().zip(&events) {
        // The value is the event's JSON and nothing else: no envelope, no id, no wrapping.
        assert_eq!(&got.event, sent);
        assert_eq!(got.raw, sent.to_string());
    }
    // The ids are in the headers and keys the old consumer never read, not in the value.
    assert!(
        consumed
            .iter()
            .all(|c| ids.iter().all(|id| !c.raw.contains(id)))
    );
}
