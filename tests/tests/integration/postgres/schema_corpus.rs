//! The `schema` fuzz target's checked-in corpus (fuzz/corpus/schema: inputs libFuzzer kept for
//! the coverage they add, JSON and not) registered through the HTTP API on PostgreSQL. The fuzz
//! target exercises compiling and validating only; here each document also goes through the
//! store, where PostgreSQL's own limits (jsonb refusing `\u0000`: issue 14) could turn a
//! client's input into a 5xx. The memory store, the reference, answers each the same way.
//! A few documents aimed at PostgreSQL's limits go with them: the corpus has none holding
//! `\u0000`.
//!
//! `EP_SCHEMA_CORPUS=DIR` runs another directory instead (e.g. the work corpus `scripts/fuzz`
//! grows in /var/tmp/event-processor-fuzz/corpus/schema).

use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use event_processor_core::App;
use event_processor_core::adapters::memory::{MemoryEventStream, MemorySchemaStore};
use event_processor_tests::api::{Reply, get, send};
use event_processor_tests::postgres::store;
use event_processor_tests::unique_client;
use http::Request;

/// Documents valid for serde_json that PostgreSQL's types handle differently.
const HAZARDS: &[&str] = &[
    r#"{"description":"\u0000"}"#,
    r#"{"properties":{"a\u0000b":{"const":"\u0000x"}}}"#,
    r#"{"enum":["\u0000", "\\u0000", "\u0001", "\ud83d\ude00"]}"#,
    r#"{"description":"\ud800"}"#,
    r#"{"minimum":-1.5e10,"maximum":1e308,"multipleOf":0.1,"default":-0.0}"#,
    r#"{"default":18446744073709551615,"examples":[-9223372036854775808]}"#,
];

fn corpus() -> PathBuf {
    std::env::var_os("EP_SCHEMA_CORPUS").map_or_else(
        || {
            PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../fuzz/corpus/schema"
            ))
        },
        PathBuf::from,
    )
}

async fn register(app: &Router, uri: &str, document: &[u8]) -> Reply {
    let request = Request::post(uri)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Body::from(document.to_vec()))
        .expect("a valid request");
    send(app, request).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_document_of_the_schema_fuzz_corpus_gets_a_5xx_on_postgresql() {
    // Given the API on PostgreSQL and on memory, and every input of the corpus.
    let postgres = App::new(store().await, Arc::new(MemoryEventStream::new())).router();
    let memory = App::new(
        Arc::new(MemorySchemaStore::new()),
        Arc::new(MemoryEventStream::new()),
    )
    .router();
    let mut files: Vec<PathBuf> = std::fs::read_dir(corpus())
        .expect("the schema fuzz corpus")
        .map(|entry| entry.expect("a corpus entry").path())
        .collect();
    files.sort();
    assert!(
        files.len() > 100,
        "{} inputs in {:?}",
        files.len(),
        corpus()
    );
    let inputs = files
        .iter()
        .map(|file| {
            let document = std::fs::read(file).expect("a corpus input");
            (file.display().to_string(), document)
        })
        .chain(
            HAZARDS
                .iter()
                .map(|hazard| (hazard.to_string(), hazard.as_bytes().to_vec())),
        );
    let client = unique_client();

    // When each is registered as a pair of its own, on both, and read back where it registered.
    let mut failures = Vec::new();
    for (i, (input, document)) in inputs.enumerate() {
        let (register_uri, schema_uri) = (
            format!("/{client}/e{i}/register_event"),
            format!("/{client}/e{i}/schema"),
        );
        let on_postgres = register(&postgres, &register_uri, &document).await;
        let on_memory = register(&memory, &register_uri, &document).await;
        let mut wrong = Vec::new();
        if on_postgres.status.is_server_error() {
            wrong.push(format!("{} {}", on_postgres.status, on_postgres.body));
        }
        if on_postgres.status != on_memory.status {
            wrong.push(format!("{} on memory", on_memory.status));
        } else if on_postgres.status.is_success() {
            let (read, expected) = (
                get(&postgres, &schema_uri).await,
                get(&memory, &schema_uri).await,
            );
            if read.body["schema"] != expected.body["schema"] {
                wrong.push(format!(
                    "read back {} instead of {}",
                    read.body, expected.body
                ));
            }
        }
        if !wrong.is_empty() {
            failures.push(format!("{input}: {}", wrong.join("; ")));
        }
    }

    // Then none got a 5xx, and PostgreSQL answered each as memory did.
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
