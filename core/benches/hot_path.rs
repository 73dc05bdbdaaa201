//! Hot-path micro-benchmarks: validation + envelope of a small event, and one `send_event`
//! through the whole HTTP layer in-process (router + processor + memory stream).
//! Run: `cargo bench -p event-processor-core --bench hot_path`.

use std::hint::black_box;
use std::sync::Arc;

use axum::body::Body;
use axum::http::Request;
use criterion::{Criterion, criterion_group, criterion_main};
use event_processor_core::Processor;
use event_processor_core::adapters::memory::{MemoryEventStream, MemorySchemaStore};
use event_processor_core::domain::{ClientId, EventName, SchemaVersion};
use event_processor_core::envelope::Envelope;
use event_processor_core::http::router;
use event_processor_core::schema::CompiledSchema;
use serde_json::json;
use tower::ServiceExt;

fn validate_and_envelope(c: &mut Criterion) {
    let schema = CompiledSchema::compile(&json!({
        "type": "object",
        "properties": {"fruit": {"type": "string"}, "quantity": {"type": "integer", "minimum": 0}},
        "required": ["fruit"],
        "additionalProperties": false
    }))
    .unwrap();
    let client = ClientId::parse("SpongeBob").unwrap();
    let event = EventName::parse("Fruits").unwrap();
    let data = json!({"fruit": "pineapple", "quantity": 3});

    c.bench_function("validate + envelope (small event)", |b| {
        b.iter(|| {
            schema.validate(black_box(&data)).unwrap();
            black_box(Envelope::new(
                &client,
                &event,
                SchemaVersion::FIRST,
                data.clone(),
            ))
        })
    });
    let envelope = Envelope::new(&client, &event, SchemaVersion::FIRST, data.clone());
    c.bench_function("envelope to structured JSON", |b| {
        b.iter(|| black_box(envelope.to_structured_json()))
    });
}

fn http_layer(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let processor = Processor::new(
        Arc::new(MemorySchemaStore::new()),
        Arc::new(MemoryEventStream::new()),
    );
    let app = router(processor);
    runtime.block_on(async {
        let request = Request::post("/SpongeBob/Fruits/register_event")
            .header("content-type", "application/json")
            .body(Body::from(r#"{"type":"object","required":["fruit"]}"#))
            .unwrap();
        assert!(
            app.clone()
                .oneshot(request)
                .await
                .unwrap()
                .status()
                .is_success()
        );
    });

    c.bench_function("HTTP send_event in-process (memory)", |b| {
        b.to_async(&runtime).iter(|| async {
            let request = Request::post("/SpongeBob/Fruits/send_event")
                .header("content-type", "application/json")
                .body(Body::from(r#"{"fruit":"pineapple","quantity":3}"#))
                .unwrap();
            let response = app.clone().oneshot(request).await.unwrap();
            assert!(response.status().is_success());
        })
    });
}

criterion_group!(benches, validate_and_envelope, http_layer);
criterion_main!(benches);
