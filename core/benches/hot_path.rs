//! Hot-path micro-benchmarks: validation + envelope of a small event, the encoding of a batch
//! of 500 (the record data of one Kinesis `PutRecords`), and `send_event` / `send_events`
//! through the whole HTTP layer in-process (router + processor + memory stream).
//! Run: `cargo bench -p event-processor-core --bench hot_path`.

mod common;

use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use event_processor_core::domain::{ClientId, EventName, SchemaVersion};
use event_processor_core::envelope::Envelope;
use event_processor_core::schema::CompiledSchema;
use serde_json::{Value, json};

use common::{batch_body, fruits_schema, post, registered_router, send_ok, small_event};

fn pair() -> (ClientId, EventName) {
    (
        ClientId::parse("SpongeBob").unwrap(),
        EventName::parse("Fruits").unwrap(),
    )
}

fn validate_and_envelope(c: &mut Criterion) {
    let schema = CompiledSchema::compile(&fruits_schema()).unwrap();
    let (client, event) = pair();
    let data = small_event();

    c.bench_function("validate + envelope (small event)", |b| {
        b.iter(|| {
            schema.validate(black_box(&data)).unwrap();
            black_box(Envelope::new(&client, &event, SchemaVersion::FIRST, &data))
        })
    });
    let envelope = Envelope::new(&client, &event, SchemaVersion::FIRST, &data).unwrap();
    c.bench_function("envelope to structured JSON", |b| {
        b.iter(|| black_box(envelope.to_structured_json()))
    });
}

/// What keeping the client's bytes (serde_json's RawValue for `data`) could save: writing the
/// parsed event back out, against the parse the HTTP layer does anyway, on a 64 KiB event.
fn reserialization(c: &mut Criterion) {
    let items: Vec<Value> = (0..1000)
        .map(|i| json!({"fruit": format!("pineapple-{i}"), "quantity": i, "ripe": i % 2 == 0}))
        .collect();
    let bytes = serde_json::to_vec(&json!({"basket": items})).unwrap();
    let value: Value = serde_json::from_slice(&bytes).unwrap();
    let mut group = c.benchmark_group(format!("event of {} KiB", bytes.len() / 1024));
    group.throughput(Throughput::Bytes(bytes.len() as u64));
    group.bench_function("parse (done for validation)", |b| {
        b.iter(|| black_box(serde_json::from_slice::<Value>(black_box(&bytes)).unwrap()))
    });
    group.bench_function("serialize again (the envelope's data)", |b| {
        b.iter(|| black_box(serde_json::to_vec(black_box(&value)).unwrap()))
    });
    group.finish();
}

fn batch_encoding(c: &mut Criterion) {
    let (client, event) = pair();
    let envelopes: Vec<Envelope> = (0..500)
        .map(|_| Envelope::new(&client, &event, SchemaVersion::FIRST, &small_event()).unwrap())
        .collect();
    let mut group = c.benchmark_group("batch of 500 small events");
    group.throughput(Throughput::Elements(500));
    group.bench_function("encode the record data of one PutRecords", |b| {
        b.iter(|| {
            black_box(
                envelopes
                    .iter()
                    .map(Envelope::to_structured_json)
                    .collect::<Vec<_>>(),
            )
        })
    });
    group.finish();
}

fn http_layer(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let app = runtime.block_on(registered_router());
    let event = small_event().to_string();
    c.bench_function("HTTP send_event in-process (memory)", |b| {
        b.to_async(&runtime).iter_batched(
            || post("/SpongeBob/Fruits/send_event", event.clone()),
            |request| send_ok(&app, request),
            BatchSize::SmallInput,
        )
    });

    let batch = batch_body(500);
    let mut group = c.benchmark_group("batch of 500 small events");
    group.throughput(Throughput::Elements(500));
    group.bench_function("HTTP send_events in-process (memory)", |b| {
        b.to_async(&runtime).iter_batched(
            || post("/SpongeBob/Fruits/send_events", batch.clone()),
            |request| send_ok(&app, request),
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(
    benches,
    validate_and_envelope,
    reserialization,
    batch_encoding,
    http_layer
);
criterion_main!(benches);
