//! What the gateway's validator (`jsonschema` 0.61, default features off, offline) actually does,
//! where the checker mirrors it. If an upgrade changes one of these, the checker must change too.

use crate::common;

use serde_json::{Value, json};

const D4: &str = "http://json-schema.org/draft-04/schema#";
const D6: &str = "http://json-schema.org/draft-06/schema#";
const D7: &str = "http://json-schema.org/draft-07/schema#";
const D2019: &str = "https://json-schema.org/draft/2019-09/schema";

fn valid(schema: Value, doc: Value) -> bool {
    common::compile(&schema).expect("compiles").is_valid(&doc)
}

fn with(dialect: &str, mut schema: Value) -> Value {
    schema["$schema"] = json!(dialect);
    schema
}

#[test]
fn format_is_asserted_in_drafts_4_to_7_and_an_annotation_after() {
    for dialect in [D4, D6, D7] {
        assert!(!valid(
            with(dialect, json!({"format": "email"})),
            json!("nope")
        ));
    }
    assert!(valid(
        with(D2019, json!({"format": "email"})),
        json!("nope")
    ));
    assert!(valid(json!({"format": "email"}), json!("nope")));
}

#[test]
fn unknown_formats_and_idn_formats_are_ignored() {
    // The gateway builds jsonschema without the `idna` feature.
    assert!(valid(
        with(D7, json!({"format": "idn-email"})),
        json!("nope")
    ));
    assert!(valid(
        with(D7, json!({"format": "no-such-format"})),
        json!("nope")
    ));
}

#[test]
fn content_keywords_are_asserted_in_drafts_6_and_7_only() {
    assert!(!valid(
        with(D7, json!({"contentMediaType": "application/json"})),
        json!("{nope")
    ));
    assert!(!valid(
        with(D6, json!({"contentEncoding": "base64"})),
        json!("!!!")
    ));
    assert!(valid(
        with(D4, json!({"contentEncoding": "base64"})),
        json!("!!!")
    ));
    assert!(valid(json!({"contentEncoding": "base64"}), json!("!!!")));
}

#[test]
fn one_point_zero_is_an_integer_except_in_draft_4() {
    assert!(valid(json!({"type": "integer"}), json!(1.0)));
    assert!(valid(with(D6, json!({"type": "integer"})), json!(1.0)));
    assert!(!valid(with(D4, json!({"type": "integer"})), json!(1.0)));
    // Draft 4 still calls a float an integer when it prints with an exponent past 2^63.
    assert!(valid(with(D4, json!({"type": "integer"})), json!(1e20)));
}

#[test]
fn numbers_compare_by_exact_value() {
    assert!(valid(json!({"enum": [1]}), json!(1.0)));
    assert!(!valid(json!({"uniqueItems": true}), json!([[1], [1.0]])));
    assert!(!valid(
        json!({"maximum": 9_007_199_254_740_992_u64}),
        json!(9_007_199_254_740_993_u64)
    ));
}

#[test]
fn lengths_count_code_points() {
    assert!(valid(json!({"maxLength": 1}), json!("🦀")));
}

#[test]
fn keywords_of_later_drafts_are_ignored_by_earlier_ones() {
    assert!(valid(with(D4, json!({"const": 1})), json!(2)));
    assert!(valid(
        with(D4, json!({"contains": {"type": "string"}})),
        json!([1])
    ));
    assert!(valid(
        with(D7, json!({"dependentRequired": {"a": ["b"]}})),
        json!({"a": 1})
    ));
    assert!(valid(
        with(D7, json!({"unevaluatedProperties": false})),
        json!({"a": 1})
    ));
    assert!(valid(
        with(D7, json!({"prefixItems": [{"type": "string"}]})),
        json!([1])
    ));
    assert!(!valid(
        with(
            D6,
            json!({"contains": {"type": "string"}, "minContains": 0})
        ),
        json!([1])
    ));
}

#[test]
fn dependencies_is_still_asserted_in_2020_12() {
    assert!(!valid(
        json!({"dependencies": {"a": ["b"]}}),
        json!({"a": 1})
    ));
}

#[test]
fn ref_siblings_are_ignored_up_to_draft_7() {
    let schema = |dialect| {
        with(
            dialect,
            json!({"definitions": {"s": {"type": "string"}}, "properties": {"x": {"$ref": "#/definitions/s", "maxLength": 1}}}),
        )
    };
    assert!(valid(schema(D7), json!({"x": "long"})));
    assert!(!valid(schema(D2019), json!({"x": "long"})));
}

#[test]
fn an_embedded_dialect_switches_the_subschema() {
    let schema = json!({"properties": {"a": {"$schema": D4, "type": "integer"}}});
    assert!(!valid(schema, json!({"a": 1.0})));
}

#[test]
fn an_embedded_id_changes_what_a_pointer_reference_means() {
    let schema = json!({"$defs": {"q": {"type": "integer"}}, "properties": {"a": {"$id": "http://x/y", "$defs": {"q": {"type": "string"}}, "$ref": "#/$defs/q"}}});
    assert!(valid(schema.clone(), json!({"a": "s"})));
    assert!(!valid(schema, json!({"a": 1})));
}

#[test]
fn reference_loops_that_consume_nothing_accept_everything() {
    assert!(valid(json!({"$ref": "#"}), json!(1)));
    assert!(valid(
        json!({"$defs": {"a": {"not": {"$ref": "#/$defs/a"}}}, "$ref": "#/$defs/a"}),
        json!(1)
    ));
}

#[test]
fn unevaluated_keywords_without_in_place_applicators_act_like_additional_ones() {
    let props = json!({"properties": {"a": {}}, "patternProperties": {"^x": {"type": "integer"}}, "unevaluatedProperties": false});
    assert!(valid(props.clone(), json!({"a": 1, "x1": 1})));
    assert!(!valid(props, json!({"b": 1})));
    let beside = json!({"properties": {"a": {}}, "additionalProperties": {"type": "string"}, "unevaluatedProperties": false});
    assert!(valid(beside, json!({"b": "s"})));
    assert!(!valid(
        json!({"prefixItems": [{}], "unevaluatedItems": {"type": "string"}}),
        json!([1, 2])
    ));
    assert!(valid(
        json!({"prefixItems": [{}], "items": {}, "unevaluatedItems": false}),
        json!([1, 2])
    ));
    assert!(!valid(
        with(D2019, json!({"items": [{}], "unevaluatedItems": false})),
        json!([1, 2])
    ));
}

#[test]
fn multiple_of_a_whole_divisor_rejects_every_fraction() {
    assert!(valid(
        json!({"multipleOf": 3}),
        json!(9_007_199_254_740_993_u64)
    ));
    assert!(!valid(json!({"multipleOf": 1}), json!(0.5)));
    assert!(valid(json!({"multipleOf": 0.1}), json!(0.3)));
}
