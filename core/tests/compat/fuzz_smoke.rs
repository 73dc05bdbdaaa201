//! Runs the fuzz target body on seeds (the corpus, hostile shapes, and bytes that are not JSON),
//! so it compiles and holds in plain `cargo test` before it is wired into cargo-fuzz.

use crate::fuzz_body as fuzz_target;

use serde_json::Value;

#[test]
fn the_corpus_passes_the_fuzz_target_in_both_directions() {
    let corpus: Vec<Value> = serde_json::from_str(include_str!("corpus.json")).unwrap();
    for entry in corpus {
        let mut docs = String::new();
        for key in ["counterexample_backward", "counterexample_forward"] {
            if let Some(doc) = entry.get(key) {
                docs.push_str(&doc.to_string());
                docs.push('\n');
            }
        }
        for (a, b) in [
            (&entry["old"], &entry["new"]),
            (&entry["new"], &entry["old"]),
        ] {
            fuzz_target::fuzz_check(format!("{a}\n{b}\n{docs}").as_bytes());
        }
    }
}

#[test]
fn hostile_inputs_neither_panic_nor_hang() {
    let deep_array = format!("{}1{}", "[".repeat(120), "]".repeat(120));
    let deep_schema = format!("{}{{}}{}", r#"{"items":"#.repeat(120), "}".repeat(120));
    let seeds: Vec<String> = vec![
        String::new(),
        "{".into(),
        "\u{0}\u{1}".into(),
        "{} {}".into(),
        "true false 1".into(),
        r##"{"$ref": "#"} {"$ref": "#"} 1"##.into(),
        r##"{"$defs": {"a": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"} {} 1"##.into(),
        r#"{"$schema": "http://example.com/custom"} {} 1"#.into(),
        r#"{"type": 5} {"minimum": "x"} 1"#.into(),
        format!("{deep_schema} {deep_schema} {deep_array}"),
        format!(r#"{{"enum": [{deep_array}]}} {{"items": {{"items": {{}}}}}} {deep_array}"#),
        r#"{"pattern": "^(a+)+$"} {"pattern": "^(a+)+$"} "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!""#.into(),
        r#"{"enum": [1]} {"$schema": "http://json-schema.org/draft-04/schema#", "type": "integer"} 1.0"#.into(),
    ];
    for seed in seeds {
        fuzz_target::fuzz_check(seed.as_bytes());
    }
    let mut bytes = Vec::new();
    for i in 0..2048u32 {
        bytes.push((i.wrapping_mul(2_654_435_761) >> 13) as u8);
        fuzz_target::fuzz_check(&bytes);
    }
}
