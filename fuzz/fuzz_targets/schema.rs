//! Registration + validation: arbitrary bytes as a schema, then validation of the same bytes
//! and a few fixed instances. Property: compiling and validating never panic, hang or
//! overflow, and nothing is fetched (there is no network here to fetch from anyway: a fetch
//! attempt would surface as a compile error, never as success).
#![no_main]

use event_processor_core::schema::CompiledSchema;
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};

fuzz_target!(|data: &[u8]| {
    let Ok(schema) = serde_json::from_slice::<Value>(data) else { return };
    let Ok(compiled) = CompiledSchema::compile(&schema) else { return };
    for instance in [schema.clone(), json!(null), json!({"a": [1, "b", {"c": null}]}), json!("a".repeat(64))] {
        if let Err(issues) = compiled.validate(&instance) {
            assert!(!issues.is_empty() && issues.len() <= 20);
        }
    }
});
