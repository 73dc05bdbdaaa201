//! Fuzz target body for the compatibility checker (wire it into cargo-fuzz with
//! `fuzz_target!(|data: &[u8]| fuzz_check(data));`).
//!
//! The input is a stream of JSON values (whitespace-separated): the first two are schemas
//! `smaller` and `larger`, the rest are documents. Properties asserted:
//! - the checker never panics, whatever the input, and answers the same in both reporting modes;
//! - soundness: if it claims valid(smaller) ⊆ valid(larger), every document the gateway's
//!   validator accepts under `smaller` (input documents and a fixed set of edge values) is
//!   accepted under `larger`.
//!
//! One file, two users: `fuzz/fuzz_targets/compat.rs` (cargo-fuzz, coverage-guided) and the
//! `fuzz_smoke` tests here, which run it on the corpus and on seeds in every `cargo test`.

use event_processor_core::compat as checker;
use serde_json::{Value, json};

/// Inputs larger than this are cut: the checker bounds its own work, but the validator's
/// compilation of a pathological schema need not be fuzzed here.
const MAX_INPUT: usize = 64 * 1024;

pub fn fuzz_check(data: &[u8]) {
    let data = &data[..data.len().min(MAX_INPUT)];
    let mut values = serde_json::Deserializer::from_slice(data).into_iter::<Value>();
    let (Some(Ok(smaller)), Some(Ok(larger))) = (values.next(), values.next()) else {
        return;
    };
    let mut documents: Vec<Value> = values.map_while(Result::ok).take(64).collect();
    documents.extend(edge_documents());

    let as_backward = checker::inclusion(&smaller, &larger, checker::Side::Larger);
    let as_forward = checker::inclusion(&smaller, &larger, checker::Side::Smaller);
    assert_eq!(
        as_backward.is_empty(),
        as_forward.is_empty(),
        "the reporting side changed the verdict"
    );
    for found in as_backward.iter().chain(&as_forward) {
        assert!(found.message.chars().count() <= checker::MAX_MESSAGE_CHARS);
    }
    assert!(as_backward.len() <= checker::MAX_INCOMPATIBILITIES);
    for mode in checker::Mode::ALL {
        let _ = checker::check(mode, &larger, &[(1, &smaller), (2, &larger)]);
    }
    if !as_backward.is_empty() {
        return;
    }
    let (Some(small), Some(large)) = (compile(&smaller), compile(&larger)) else {
        return;
    };
    for document in &documents {
        if small.is_valid(document) {
            assert!(
                large.is_valid(document),
                "claimed valid({smaller}) ⊆ valid({larger}), but {document} is a counterexample"
            );
        }
    }
}

/// The validator exactly as the gateway builds it; `None` for a schema the gateway refuses.
fn compile(schema: &Value) -> Option<jsonschema::Validator> {
    let draft = match schema.get("$schema") {
        None => jsonschema::Draft::Draft202012,
        Some(_) => match jsonschema::Draft::default().detect(schema) {
            jsonschema::Draft::Unknown => return None,
            draft => draft,
        },
    };
    if !jsonschema::meta::validator_for(schema)
        .ok()?
        .is_valid(schema)
    {
        return None;
    }
    jsonschema::options()
        .with_draft(draft)
        .offline()
        .with_pattern_options(jsonschema::PatternOptions::fancy_regex().backtrack_limit(100_000))
        .build(schema)
        .ok()
}

/// Values on the edges the validator distinguishes (integer vs float spelling, 2^53, code points).
fn edge_documents() -> Vec<Value> {
    vec![
        json!(null),
        json!(true),
        json!(0),
        json!(1),
        json!(1.0),
        json!(-1),
        json!(0.5),
        json!(1e20),
        json!(9_007_199_254_740_993_u64),
        json!(""),
        json!("a"),
        json!("🦀"),
        json!([]),
        json!([1, 1.0]),
        json!({}),
        json!({"a": 1}),
        json!({"a": "x", "b": null}),
    ]
}
