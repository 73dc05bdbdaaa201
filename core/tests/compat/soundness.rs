//! Soundness by generation: for schema pairs drawn from a grammar of analysed and unanalysed
//! keywords (and mutations of one schema into the other), every inclusion the checker claims is
//! probed with documents valid under the smaller side, which the real validator must accept
//! under the larger side. A counterexample is a bug in the checker.
//!
//! `COMPAT_SOUNDNESS_CASES` sets the number of pairs (default sized for about half a minute in a
//! debug build); `COMPAT_SOUNDNESS_SEED` replays another deterministic sequence.

use crate::common;

use std::sync::atomic::{AtomicUsize, Ordering};

use event_processor_core::compat::{Mode, Side, check, inclusion};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};
use serde_json::{Value, json};

static PAIRS: AtomicUsize = AtomicUsize::new(0);
static COMPILED: AtomicUsize = AtomicUsize::new(0);
static PROVEN: AtomicUsize = AtomicUsize::new(0);
static DOCUMENTS: AtomicUsize = AtomicUsize::new(0);

const NAMES: [&str; 5] = ["a", "b", "c", "x-1", "aa"];

fn small_value() -> BoxedStrategy<Value> {
    prop_oneof![
        Just(json!(null)),
        any::<bool>().prop_map(Value::from),
        (-3i64..=4).prop_map(Value::from),
        prop::sample::select(vec![0.5, 1.0, 2.0, -1.5, 2.5, 0.1]).prop_map(Value::from),
        prop::sample::select(vec!["", "a", "ab", "abc", "🦀", "x-1", "b"]).prop_map(Value::from),
        Just(json!([1])),
        Just(json!({"a": 1})),
    ]
    .boxed()
}

fn number() -> BoxedStrategy<Value> {
    prop_oneof![
        (-3i64..=5).prop_map(Value::from),
        prop::sample::select(vec![0.5, 1.0, 1.5, 2.0, -0.5, 2.5, 3.0]).prop_map(Value::from),
    ]
    .boxed()
}

fn size() -> BoxedStrategy<Value> {
    (0u64..4).prop_map(Value::from).boxed()
}

fn names() -> BoxedStrategy<Value> {
    prop::sample::subsequence(NAMES.to_vec(), 0..3)
        .prop_map(|names| json!(names))
        .boxed()
}

fn name() -> BoxedStrategy<String> {
    prop::sample::select(NAMES.to_vec())
        .prop_map(str::to_owned)
        .boxed()
}

fn type_names() -> BoxedStrategy<Value> {
    let one = prop::sample::select(vec![
        "null", "boolean", "integer", "number", "string", "array", "object",
    ]);
    prop_oneof![
        3 => one.clone().prop_map(Value::from),
        1 => prop::sample::subsequence(vec!["null", "integer", "number", "string", "object", "array"], 1..3)
            .prop_map(|t| json!(t)),
    ]
    .boxed()
}

/// One keyword and its value; `inner` builds subschemas.
fn keyword(inner: BoxedStrategy<Value>) -> BoxedStrategy<(String, Value)> {
    let k = |name: &'static str, value: BoxedStrategy<Value>| {
        value.prop_map(move |v| (name.to_owned(), v)).boxed()
    };
    let subschemas = |n| {
        prop::collection::vec(inner.clone(), 1..n)
            .prop_map(Value::Array)
            .boxed()
    };
    let map_of = |keys: BoxedStrategy<String>| {
        prop::collection::vec((keys, inner.clone()), 1..3)
            .prop_map(|kvs| Value::Object(kvs.into_iter().collect()))
            .boxed()
    };
    prop_oneof![
        6 => k("type", type_names()),
        2 => k("enum", prop::collection::vec(small_value(), 1..4).prop_map(Value::Array).boxed()),
        1 => k("const", small_value()),
        2 => k("minimum", number()),
        2 => k("maximum", number()),
        1 => k("exclusiveMinimum", number()),
        1 => k("exclusiveMaximum", number()),
        1 => k("multipleOf", prop::sample::select(vec![json!(1), json!(2), json!(3), json!(4), json!(0.5), json!(0.1), json!(2.0)]).boxed()),
        1 => k("minLength", size()),
        1 => k("maxLength", size()),
        1 => k("pattern", prop::sample::select(vec!["^a", "a", "^[a-z]*$", "\\d", "^x-"]).prop_map(Value::from).boxed()),
        1 => k("format", prop::sample::select(vec!["email", "date", "ipv4", "idn-email", "custom"]).prop_map(Value::from).boxed()),
        3 => k("items", inner.clone()),
        2 => k("prefixItems", prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array).boxed()),
        1 => k("additionalItems", inner.clone()),
        1 => k("minItems", size()),
        1 => k("maxItems", size()),
        1 => k("uniqueItems", any::<bool>().prop_map(Value::from).boxed()),
        1 => k("contains", inner.clone()),
        1 => k("minContains", size()),
        1 => k("maxContains", size()),
        5 => k("properties", map_of(name())),
        3 => k("required", names()),
        3 => k("additionalProperties", inner.clone()),
        1 => k("patternProperties", map_of(prop::sample::select(vec!["^a", "^x-", "b$"]).prop_map(str::to_owned).boxed())),
        1 => k("propertyNames", inner.clone()),
        1 => k("minProperties", size()),
        1 => k("maxProperties", size()),
        1 => k("dependentRequired", (name(), names()).prop_map(|(n, d)| json!({n: d})).boxed()),
        1 => k("dependencies", (name(), prop_oneof![names(), inner.clone()]).prop_map(|(n, d)| json!({n: d})).boxed()),
        1 => k("dependentSchemas", map_of(name())),
        2 => k("allOf", subschemas(3)),
        2 => k("anyOf", subschemas(3)),
        2 => k("oneOf", subschemas(3)),
        1 => k("not", inner.clone()),
        1 => k("if", inner.clone()),
        1 => k("then", inner.clone()),
        1 => k("else", inner.clone()),
        2 => k("$ref", prop::sample::select(vec!["#", "#/$defs/a", "#/$defs/b", "#/definitions/a"]).prop_map(Value::from).boxed()),
        1 => k("unevaluatedProperties", inner.clone()),
        1 => k("unevaluatedItems", inner.clone()),
        1 => k("title", Just(json!("annotation")).boxed()),
        1 => k("$id", prop::sample::select(vec!["http://example.com/other", "other.json"]).prop_map(Value::from).boxed()),
        1 => k("$schema", prop::sample::select(vec!["http://json-schema.org/draft-04/schema#", "https://json-schema.org/draft/2020-12/schema"]).prop_map(Value::from).boxed()),
    ]
    .boxed()
}

fn object_of(keywords: BoxedStrategy<(String, Value)>, max: usize) -> BoxedStrategy<Value> {
    prop::collection::vec(keywords, 0..max)
        .prop_map(|kvs| Value::Object(kvs.into_iter().collect()))
        .boxed()
}

fn subschema() -> BoxedStrategy<Value> {
    let leaf = prop_oneof![
        1 => Just(json!(true)),
        1 => Just(json!(false)),
        1 => Just(json!({})),
        6 => object_of(keyword(Just(json!({})).boxed()), 3),
    ]
    .boxed();
    leaf.prop_recursive(3, 24, 4, |inner| object_of(keyword(inner.boxed()), 4))
        .boxed()
}

/// Realistic schemas: typed leaves inside objects and arrays, the shapes real evolutions touch.
fn typed_leaf() -> BoxedStrategy<Value> {
    let opt = |k: &'static str, v: BoxedStrategy<Value>| {
        prop::option::weighted(0.35, v.prop_map(move |v| (k.to_owned(), v)))
    };
    let string = (
        opt("minLength", size()),
        opt("maxLength", size()),
        opt(
            "pattern",
            prop::sample::select(vec!["^a", "^[a-z]*$"])
                .prop_map(Value::from)
                .boxed(),
        ),
        opt(
            "format",
            prop::sample::select(vec!["email", "date"])
                .prop_map(Value::from)
                .boxed(),
        ),
        opt(
            "enum",
            prop::collection::vec(
                prop::sample::select(vec!["a", "ab", "b", "🦀", ""]).prop_map(Value::from),
                1..4,
            )
            .prop_map(Value::Array)
            .boxed(),
        ),
    )
        .prop_map(|(a, b, c, d, e)| with_type("string", [a, b, c, d, e]));
    let numeric = (
        prop::sample::select(vec!["integer", "number"]),
        opt("minimum", number()),
        opt("maximum", number()),
        opt("exclusiveMinimum", number()),
        opt("exclusiveMaximum", number()),
        opt(
            "multipleOf",
            prop::sample::select(vec![json!(1), json!(2), json!(4), json!(0.5)]).boxed(),
        ),
    )
        .prop_map(|(t, a, b, c, d, e)| with_type(t, [a, b, c, d, e]));
    prop_oneof![
        3 => string,
        3 => numeric,
        1 => prop::sample::select(vec!["boolean", "null"]).prop_map(|t| json!({"type": t})),
        1 => type_names().prop_map(|t| json!({"type": t})),
        1 => prop::collection::vec(small_value(), 1..4).prop_map(|v| json!({"enum": v})),
        1 => small_value().prop_map(|v| json!({"const": v})),
        1 => Just(json!({})),
    ]
    .boxed()
}

fn with_type<const N: usize>(t: &str, extra: [Option<(String, Value)>; N]) -> Value {
    let mut map: serde_json::Map<String, Value> = extra.into_iter().flatten().collect();
    map.insert("type".into(), json!(t));
    Value::Object(map)
}

fn typed() -> BoxedStrategy<Value> {
    typed_leaf()
        .prop_recursive(3, 32, 5, |inner| {
            let inner = inner.boxed();
            let object = (
                prop::collection::vec((name(), inner.clone()), 0..4),
                names(),
                prop::option::weighted(
                    0.5,
                    prop_oneof![any::<bool>().prop_map(Value::from), inner.clone()],
                ),
                prop::option::weighted(0.15, (0u64..3).prop_map(Value::from)),
                prop::option::weighted(
                    0.15,
                    (prop::sample::select(vec!["^x-", "^a"]), inner.clone()),
                ),
            )
                .prop_map(|(props, required, additional, max, patterns)| {
                    let mut map = serde_json::Map::new();
                    map.insert("type".into(), json!("object"));
                    map.insert(
                        "properties".into(),
                        Value::Object(props.into_iter().collect()),
                    );
                    map.insert("required".into(), required);
                    if let Some(a) = additional {
                        map.insert("additionalProperties".into(), a);
                    }
                    if let Some(m) = max {
                        map.insert("maxProperties".into(), m);
                    }
                    if let Some((p, s)) = patterns {
                        map.insert("patternProperties".into(), json!({p: s}));
                    }
                    Value::Object(map)
                });
            let array = (
                inner.clone(),
                prop::option::weighted(0.3, prop::collection::vec(inner.clone(), 1..3)),
                prop::option::weighted(0.3, size()),
                prop::option::weighted(0.3, size()),
                prop::option::weighted(0.2, any::<bool>()),
                prop::option::weighted(0.15, inner.clone()),
            )
                .prop_map(|(items, prefix, min, max, unique, contains)| {
                    let mut map = serde_json::Map::new();
                    map.insert("type".into(), json!("array"));
                    map.insert("items".into(), items);
                    if let Some(p) = prefix {
                        map.insert("prefixItems".into(), Value::Array(p));
                    }
                    if let Some(m) = min {
                        map.insert("minItems".into(), m);
                    }
                    if let Some(m) = max {
                        map.insert("maxItems".into(), m);
                    }
                    if let Some(u) = unique {
                        map.insert("uniqueItems".into(), json!(u));
                    }
                    if let Some(c) = contains {
                        map.insert("contains".into(), c);
                    }
                    Value::Object(map)
                });
            prop_oneof![
                4 => object,
                2 => array,
                1 => (
                    prop::sample::select(vec!["anyOf", "oneOf", "allOf"]),
                    prop::collection::vec(inner.clone(), 1..3)
                )
                    .prop_map(|(k, v)| json!({k: v})),
                1 => inner.clone().prop_map(|v| json!({"not": v})),
                1 => (inner.clone(), inner.clone(), inner.clone())
                    .prop_map(|(i, t, e)| json!({"if": i, "then": t, "else": e})),
                1 => prop::sample::select(vec!["#/$defs/a", "#/$defs/b", "#"])
                    .prop_map(|r| json!({"$ref": r})),
                1 => object_of(keyword(inner), 4),
            ]
        })
        .boxed()
}

const DIALECTS: [Option<&str>; 5] = [
    None,
    Some("http://json-schema.org/draft-04/schema#"),
    Some("http://json-schema.org/draft-07/schema#"),
    Some("https://json-schema.org/draft/2019-09/schema"),
    Some("https://json-schema.org/draft/2020-12/schema"),
];

/// Draft 4 has no boolean schemas: spell them as objects so the schema still compiles.
fn without_booleans(value: Value, in_schema_position: bool) -> Value {
    match value {
        Value::Bool(true) if in_schema_position => json!({}),
        Value::Bool(false) if in_schema_position => json!({"not": {}}),
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| {
                    let schema_like = !matches!(
                        k.as_str(),
                        "enum" | "const" | "required" | "type" | "title" | "pattern" | "format"
                    );
                    (k, without_booleans(v, schema_like))
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(
            items
                .into_iter()
                .map(|v| without_booleans(v, in_schema_position))
                .collect(),
        ),
        other => other,
    }
}

fn document(body: Value, dialect: usize, defs: (Value, Value, Value)) -> Value {
    let mut root = match body {
        Value::Object(map) => map,
        other => return other,
    };
    root.insert("$defs".into(), json!({"a": defs.0, "b": defs.1}));
    root.insert("definitions".into(), json!({"a": defs.2}));
    if let Some(uri) = DIALECTS[dialect] {
        root.insert("$schema".into(), json!(uri));
    }
    let root = Value::Object(root);
    if dialect == 1 {
        without_booleans(root, true)
    } else {
        root
    }
}

fn schema() -> BoxedStrategy<Value> {
    let body = prop_oneof![
        3 => typed(),
        1 => object_of(keyword(subschema()), 6),
    ];
    let dialect = prop_oneof![4 => Just(0usize), 1 => 1..DIALECTS.len()];
    (body, dialect, (typed(), typed(), subschema()))
        .prop_map(|(body, dialect, defs)| document(body, dialect, defs))
        .boxed()
}

/// An edit of one subschema (chosen by `at`, in document order).
#[derive(Debug, Clone)]
enum Edit {
    Set(String, Value),
    Remove(usize),
    Replace(Value),
    Shift(f64),
    AddType(String),
    Wrap(&'static str, Value),
    Dialect(usize),
    Property(String, Value),
    Require(String),
    Unrequire(usize),
    EnumValue(Value),
}

fn edit() -> BoxedStrategy<(usize, Edit)> {
    let edit = prop_oneof![
        4 => keyword(subschema()).prop_map(|(k, v)| Edit::Set(k, v)),
        3 => (name(), typed()).prop_map(|(n, v)| Edit::Property(n, v)),
        2 => name().prop_map(Edit::Require),
        2 => any::<usize>().prop_map(Edit::Unrequire),
        2 => prop_oneof![any::<bool>().prop_map(Value::from), typed_leaf()]
            .prop_map(|v| Edit::Set("additionalProperties".into(), v)),
        2 => small_value().prop_map(Edit::EnumValue),
        3 => any::<usize>().prop_map(Edit::Remove),
        1 => prop::sample::select(vec![json!(true), json!(false), json!({})]).prop_map(Edit::Replace),
        2 => prop::sample::select(vec![-1.0, -0.5, 0.5, 1.0]).prop_map(Edit::Shift),
        2 => prop::sample::select(vec!["null", "integer", "number", "string", "object"]).prop_map(|t| Edit::AddType(t.to_owned())),
        1 => (prop::sample::select(vec!["anyOf", "allOf", "oneOf"]), subschema()).prop_map(|(k, v)| Edit::Wrap(k, v)),
        1 => (0..DIALECTS.len()).prop_map(Edit::Dialect),
    ];
    (any::<usize>(), edit).boxed()
}

fn subschema_pointers(value: &Value, at: String, out: &mut Vec<String>) {
    if let Value::Object(map) = value {
        out.push(at.clone());
        for (k, v) in map {
            match (k.as_str(), v) {
                ("enum" | "const" | "required" | "type" | "dependentRequired", _) => {}
                (_, Value::Object(_)) => subschema_pointers(v, format!("{at}/{}", escape(k)), out),
                (_, Value::Array(items)) => {
                    for (i, item) in items.iter().enumerate() {
                        subschema_pointers(item, format!("{at}/{}/{i}", escape(k)), out);
                    }
                }
                _ => {}
            }
        }
    }
}

fn escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

fn apply(mut schema: Value, edits: &[(usize, Edit)]) -> Value {
    for (at, edit) in edits {
        if let Edit::Dialect(d) = edit {
            if let Value::Object(map) = &mut schema {
                map.remove("$schema");
                if let Some(uri) = DIALECTS[*d] {
                    map.insert("$schema".into(), json!(uri));
                }
            }
            continue;
        }
        let mut pointers = Vec::new();
        subschema_pointers(&schema, String::new(), &mut pointers);
        if pointers.is_empty() {
            continue;
        }
        // Edits mostly land outside `$defs`, where they change what the schema accepts.
        let body: Vec<&String> = pointers
            .iter()
            .filter(|p| !p.starts_with("/$defs") && !p.starts_with("/definitions"))
            .collect();
        let pointer = if at % 5 != 0 && !body.is_empty() {
            body[at % body.len()]
        } else {
            &pointers[at % pointers.len()]
        };
        let Some(node) = schema.pointer_mut(pointer) else {
            continue;
        };
        let Value::Object(map) = node else { continue };
        match edit {
            Edit::Set(k, v) => {
                map.insert(k.clone(), v.clone());
            }
            Edit::Remove(i) => {
                if !map.is_empty() {
                    let key = map.keys().nth(i % map.len()).cloned().unwrap_or_default();
                    if key != "$defs" && key != "definitions" {
                        map.remove(&key);
                    }
                }
            }
            Edit::Replace(v) => {
                if !pointer.is_empty() {
                    *node = v.clone();
                }
            }
            Edit::Shift(delta) => {
                for (_, v) in map.iter_mut() {
                    if let Some(f) = v.as_f64() {
                        let shifted = f + delta;
                        *v = if shifted.fract() == 0.0 && v.is_i64() {
                            json!(shifted as i64)
                        } else {
                            json!(shifted)
                        };
                    }
                }
            }
            Edit::AddType(t) => match map.get_mut("type") {
                Some(Value::String(existing)) => {
                    let both = json!([existing.clone(), t]);
                    map.insert("type".into(), both);
                }
                Some(Value::Array(existing)) => existing.push(json!(t)),
                _ => {
                    map.insert("type".into(), json!(t));
                }
            },
            Edit::Wrap(keyword, other) => {
                if !pointer.is_empty() {
                    let inner = Value::Object(std::mem::take(map));
                    *node = json!({*keyword: [inner, other]});
                }
            }
            Edit::Dialect(_) => {}
            Edit::Property(n, v) => match map.get_mut("properties") {
                Some(Value::Object(props)) => {
                    props.insert(n.clone(), v.clone());
                }
                _ => {
                    map.insert("properties".into(), json!({n.as_str(): v}));
                }
            },
            Edit::Require(n) => match map.get_mut("required") {
                Some(Value::Array(names)) => {
                    if !names.contains(&json!(n)) {
                        names.push(json!(n));
                    }
                }
                _ => {
                    map.insert("required".into(), json!([n]));
                }
            },
            Edit::Unrequire(i) => {
                if let Some(Value::Array(names)) = map.get_mut("required") {
                    if !names.is_empty() {
                        names.remove(i % names.len());
                    }
                }
            }
            Edit::EnumValue(v) => match map.get_mut("enum") {
                Some(Value::Array(options)) => {
                    if options.contains(v) {
                        options.retain(|o| o != v);
                    } else {
                        options.push(v.clone());
                    }
                }
                _ => {
                    map.insert("const".into(), v.clone());
                }
            },
        }
    }
    schema
}

fn pair() -> BoxedStrategy<(Value, Value)> {
    prop_oneof![
        6 => (schema(), prop::collection::vec(edit(), 1..4)).prop_map(|(a, edits)| {
            let b = apply(a.clone(), &edits);
            (a, b)
        }),
        2 => (schema(), schema()),
        1 => (prop::collection::vec(small_value(), 1..5), schema()).prop_map(|(values, b)| (json!({"enum": values}), b)),
        1 => (schema(), subschema()).prop_map(|(a, extra)| {
            let b = json!({"anyOf": [a.clone(), extra]});
            (a, b)
        }),
    ]
    .boxed()
}

fn probe(a: &Value, b: &Value, seed: u64) -> Result<(), TestCaseError> {
    PAIRS.fetch_add(1, Ordering::Relaxed);
    let (Some(va), Some(vb)) = (common::compile(a), common::compile(b)) else {
        return Ok(());
    };
    COMPILED.fetch_add(1, Ordering::Relaxed);
    for (small, large, vsmall, vlarge) in [(a, b, &va, &vb), (b, a, &vb, &va)] {
        let as_backward = inclusion(small, large, Side::Larger);
        let as_forward = inclusion(small, large, Side::Smaller);
        prop_assert_eq!(
            as_backward.is_empty(),
            as_forward.is_empty(),
            "the side changes the verdict"
        );
        if !as_backward.is_empty() {
            continue;
        }
        PROVEN.fetch_add(1, Ordering::Relaxed);
        for doc in common::documents(small, seed, 25) {
            if vsmall.is_valid(&doc) {
                DOCUMENTS.fetch_add(1, Ordering::Relaxed);
                prop_assert!(
                    vlarge.is_valid(&doc),
                    "claimed valid({small}) ⊆ valid({large}), but {doc} is a counterexample"
                );
            }
        }
    }
    let full = check(Mode::Full, b, &[(1, a)]);
    let both =
        inclusion(a, b, Side::Larger).is_empty() && inclusion(b, a, Side::Smaller).is_empty();
    prop_assert_eq!(
        full.is_empty(),
        both,
        "check(FULL) disagrees with the two inclusions"
    );
    Ok(())
}

#[test]
fn every_claimed_inclusion_survives_generated_documents() {
    let cases = std::env::var("COMPAT_SOUNDNESS_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(2000);
    let seed: u64 = std::env::var("COMPAT_SOUNDNESS_SEED")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(7);
    let mut seed_bytes = [0u8; 32];
    seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let config = Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner = TestRunner::new_with_rng(
        config,
        TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes),
    );
    let result = runner.run(&(pair(), any::<u64>()), |((a, b), doc_seed)| {
        probe(&a, &b, doc_seed)
    });
    eprintln!(
        "soundness: {} pairs generated, {} compiled, {} inclusions claimed, {} documents valid under the smaller side checked under the larger",
        PAIRS.load(Ordering::Relaxed),
        COMPILED.load(Ordering::Relaxed),
        PROVEN.load(Ordering::Relaxed),
        DOCUMENTS.load(Ordering::Relaxed),
    );
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// Schemas that are pure value sets exercise the checker's own evaluator: each value is tried
/// against the other side, so any disagreement with the validator is a counterexample here.
#[test]
fn value_sets_are_judged_like_the_validator_does() {
    let cases = std::env::var("COMPAT_SOUNDNESS_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(1000);
    let config = Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner =
        TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &[3; 32]));
    let values = prop::collection::vec(
        prop_oneof![small_value(), prop::sample::select(common::edge_values())],
        1..6,
    );
    let result = runner.run(
        &(values, schema(), any::<u64>()),
        |(values, other, seed)| {
            let small = json!({"enum": values});
            probe(&small, &other, seed)
        },
    );
    if let Err(e) = result {
        panic!("{e}");
    }
}
