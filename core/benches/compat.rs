//! Checking a realistic 200-property schema evolution under BACKWARD (target: ≤ 1 ms), and the
//! same pair under FULL, where the forward direction fails and reports.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use event_processor_core::compat::{Mode, check};
use serde_json::{Map, Value, json};

/// An order-event-like schema with 200 properties of every common shape; `version` 2 widens some
/// of them and adds optional properties to the closed model (a backward-compatible evolution).
fn schema(version: u32) -> Value {
    let mut properties = Map::new();
    let mut required = Vec::new();
    for i in 0..200u32 {
        let name = format!("field_{i:03}");
        let widened = version > 1 && i % 7 == 0;
        let property = match i % 10 {
            0 => {
                json!({"type": "string", "maxLength": if widened { 128 } else { 64 }, "description": "free text"})
            }
            1 => {
                json!({"type": "integer", "minimum": if widened { -100 } else { 0 }, "maximum": 1_000_000})
            }
            2 => {
                json!({"type": if widened { json!("number") } else { json!("integer") }, "multipleOf": 1})
            }
            3 => {
                json!({"type": "string", "enum": if widened { json!(["a", "b", "c", "d"]) } else { json!(["a", "b", "c"]) }})
            }
            4 => json!({"type": "string", "pattern": "^[A-Z]{3}-[0-9]{4}$"}),
            5 => json!({"type": "string", "format": "date-time"}),
            6 => {
                json!({"type": "array", "items": {"type": "string", "maxLength": 32}, "maxItems": if widened { 20 } else { 10 }})
            }
            7 => json!({
                "type": "object",
                "properties": {
                    "street": {"type": "string"},
                    "city": {"type": "string"},
                    "zip": {"type": "string", "pattern": "^[0-9]{5}$"},
                    "country": {"$ref": "#/$defs/country"}
                },
                "required": ["city"],
                "additionalProperties": false
            }),
            8 => {
                json!({"type": if widened { json!(["boolean", "null"]) } else { json!("boolean") }})
            }
            _ => json!({"$ref": "#/$defs/money"}),
        };
        properties.insert(name.clone(), property);
        if i % 4 == 0 {
            required.push(name);
        }
    }
    if version > 1 {
        for extra in ["coupon", "channel", "note"] {
            properties.insert(extra.to_owned(), json!({"type": "string", "maxLength": 40}));
        }
    }
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Order",
        "type": "object",
        "$defs": {
            "country": {"type": "string", "enum": ["FR", "DE", "ES", "IT", "US"]},
            "money": {
                "type": "object",
                "properties": {
                    "amount": {"type": "number", "minimum": 0},
                    "currency": {"$ref": "#/$defs/currency"}
                },
                "required": ["amount", "currency"],
                "additionalProperties": false
            },
            "currency": {"type": "string", "pattern": "^[A-Z]{3}$"}
        },
        "properties": properties,
        "required": required,
        "additionalProperties": false
    })
}

/// The largest schema the gateway registers (256 KiB): thousands of properties, each widened.
fn largest(version: u64) -> Value {
    let mut properties = Map::new();
    let mut n = 0;
    while serde_json::to_vec(&properties).map_or(0, |v| v.len()) < 250 * 1024 {
        for _ in 0..100 {
            properties.insert(
                format!("p{n:05}"),
                json!({"type": "string", "maxLength": 10 * version, "description": "x"}),
            );
            n += 1;
        }
    }
    json!({"type": "object", "properties": properties, "additionalProperties": false})
}

fn bench(c: &mut Criterion) {
    let v1 = schema(1);
    let v2 = schema(2);
    assert!(
        check(Mode::Backward, &v2, &[(1, &v1)]).is_empty(),
        "the evolution is backward compatible"
    );
    assert!(
        !check(Mode::Full, &v2, &[(1, &v1)]).is_empty(),
        "but not forward compatible"
    );
    c.bench_function("backward, 200 properties, compatible", |b| {
        b.iter(|| check(Mode::Backward, black_box(&v2), black_box(&[(1, &v1)])))
    });
    c.bench_function(
        "full, 200 properties, forward incompatibilities reported",
        |b| b.iter(|| check(Mode::Full, black_box(&v2), black_box(&[(1, &v1)]))),
    );
    c.bench_function("backward, 200 properties, unchanged", |b| {
        b.iter(|| check(Mode::Backward, black_box(&v1), black_box(&[(1, &v1)])))
    });
    let (old, new) = (largest(1), largest(2));
    assert!(check(Mode::Backward, &new, &[(1, &old)]).is_empty());
    c.bench_function("backward, 256 KiB schema (the registration limit)", |b| {
        b.iter(|| check(Mode::Backward, black_box(&new), black_box(&[(1, &old)])))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
