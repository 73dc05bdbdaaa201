//! Heap allocations per request on the hot path, counted by dhat (not timed: dhat's allocator
//! is slow, which is why this is not part of `hot_path`). Run:
//! `cargo bench -p event-processor-core --bench allocations`.

mod common;

use event_processor_core::domain::{ClientId, EventName, SchemaVersion};
use event_processor_core::envelope::Envelope;
use event_processor_core::schema::CompiledSchema;

use common::{batch_body, fruits_schema, post, registered_router, send_ok, small_event};

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

const ROUNDS: u64 = 1_000;

/// Allocations and bytes per call of `f`, after one warm-up call (caches, lazy statics).
fn per_call(name: &str, mut f: impl FnMut()) {
    f();
    let before = dhat::HeapStats::get();
    for _ in 0..ROUNDS {
        f();
    }
    let after = dhat::HeapStats::get();
    println!(
        "{name:<48} {:>8.1} allocations {:>10.0} bytes",
        (after.total_blocks - before.total_blocks) as f64 / ROUNDS as f64,
        (after.total_bytes - before.total_bytes) as f64 / ROUNDS as f64,
    );
}

fn main() {
    let _profiler = dhat::Profiler::builder().testing().build();
    // One thread, so the count is this request's and not a worker's housekeeping.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");

    let schema = CompiledSchema::compile(&fruits_schema()).expect("schema");
    let client = ClientId::parse("SpongeBob").expect("client");
    let event = EventName::parse("Fruits").expect("event");
    let data = small_event();
    per_call("validate (small event)", || {
        schema.validate(&data).expect("valid");
    });
    per_call("envelope (small event)", || {
        std::hint::black_box(Envelope::new(&client, &event, SchemaVersion::FIRST, &data))
            .expect("an envelope");
    });
    let envelope = Envelope::new(&client, &event, SchemaVersion::FIRST, &data).unwrap();
    per_call("envelope to structured JSON", || {
        std::hint::black_box(envelope.to_structured_json()).expect("JSON");
    });

    let app = runtime.block_on(registered_router());
    let body = data.to_string();
    per_call("HTTP send_event in-process (memory)", || {
        runtime.block_on(send_ok(
            &app,
            post("/SpongeBob/Fruits/send_event", body.clone()),
        ))
    });
    let batch = batch_body(500);
    per_call("HTTP send_events, 500 events (memory)", || {
        runtime.block_on(send_ok(
            &app,
            post("/SpongeBob/Fruits/send_events", batch.clone()),
        ))
    });
}
