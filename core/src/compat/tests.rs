//! Behaviour of the compatibility checker, one sentence per test. Where a test claims an
//! incompatibility, it also shows a document that proves it, checked with the real validator.

use serde_json::{Value, json};

use super::*;

fn validator(schema: &Value) -> jsonschema::Validator {
    let draft = match schema.get("$schema") {
        None => jsonschema::Draft::Draft202012,
        Some(_) => jsonschema::Draft::default().detect(schema),
    };
    jsonschema::options()
        .with_draft(draft)
        .offline()
        .with_pattern_options(jsonschema::PatternOptions::fancy_regex().backtrack_limit(100_000))
        .build(schema)
        .expect("test schemas compile")
}

/// `doc` is valid under `accepts` and invalid under `rejects`: a true counterexample.
fn witness(doc: Value, accepts: &Value, rejects: &Value) {
    assert!(
        validator(accepts).is_valid(&doc),
        "{doc} should be valid under {accepts}"
    );
    assert!(
        !validator(rejects).is_valid(&doc),
        "{doc} should be invalid under {rejects}"
    );
}

fn backward(old: &Value, new: &Value) -> Vec<Incompatibility> {
    check(Mode::Backward, new, &[(1, old)])
}

fn forward(old: &Value, new: &Value) -> Vec<Incompatibility> {
    check(Mode::Forward, new, &[(1, old)])
}

fn kinds(found: &[Incompatibility]) -> Vec<Kind> {
    found.iter().map(|i| i.kind).collect()
}

fn only(found: &[Incompatibility]) -> (&str, Kind) {
    assert_eq!(found.len(), 1, "{found:#?}");
    (found[0].path.as_str(), found[0].kind)
}

// ---- modes ----------------------------------------------------------------------------------

#[test]
fn modes_parse_and_print_as_their_api_names() {
    for mode in Mode::ALL {
        assert_eq!(mode.as_str().parse::<Mode>(), Ok(mode));
        assert_eq!(mode.to_string(), mode.as_str());
        assert_eq!(serde_json::to_value(mode).unwrap(), json!(mode.as_str()));
        assert_eq!(
            serde_json::from_value::<Mode>(json!(mode.as_str())).unwrap(),
            mode
        );
    }
    assert_eq!("FULL_TRANSITIVE".parse(), Ok(Mode::FullTransitive));
}

#[test]
fn an_unknown_mode_is_an_error() {
    assert_eq!(
        "backward".parse::<Mode>(),
        Err(UnknownMode("backward".into()))
    );
    assert!(serde_json::from_value::<Mode>(json!("SIDEWAYS")).is_err());
}

#[test]
fn the_default_mode_is_backward() {
    assert_eq!(Mode::default(), Mode::Backward);
}

#[test]
fn kinds_serialize_as_stable_snake_case_ids() {
    for kind in Kind::ALL {
        assert_eq!(serde_json::to_value(kind).unwrap(), json!(kind.as_str()));
    }
    assert_eq!(
        Kind::PropertyAddedToOpenModel.as_str(),
        "property_added_to_open_model"
    );
}

#[test]
fn mode_none_accepts_anything() {
    assert!(check(Mode::None, &json!(false), &[(1, &json!(true))]).is_empty());
}

#[test]
fn a_first_version_has_nothing_to_be_compatible_with() {
    assert!(check(Mode::FullTransitive, &json!({"type": "string"}), &[]).is_empty());
}

#[test]
fn an_identical_schema_is_fully_compatible() {
    let schema = json!({"type": "object", "required": ["fruit"], "properties": {"fruit": {"pattern": "^[a-z]+$"}}});
    assert!(check(Mode::FullTransitive, &schema, &[(1, &schema), (2, &schema)]).is_empty());
}

#[test]
fn transitive_modes_check_every_version() {
    let v1 = json!({"type": "object", "properties": {"a": {"type": "integer"}}, "additionalProperties": false});
    let v2 = json!({"type": "object", "properties": {"a": {"type": "number"}}, "additionalProperties": false});
    // v3 rejects negative values of "a", which both v1 and v2 accept.
    let v3 = json!({"type": "object", "properties": {"a": {"type": "number", "minimum": 0}}, "additionalProperties": false});
    let history = [(1, &v1), (2, &v2)];
    let latest_only = check(Mode::Backward, &v3, &history);
    assert!(latest_only.iter().all(|i| i.version == 2));
    let all = check(Mode::BackwardTransitive, &v3, &history);
    assert!(all.iter().any(|i| i.version == 1));
    assert!(all.iter().any(|i| i.version == 2));
    // v4 is forward compatible with the latest (v2) only: it accepts non-integral "a".
    let v4 = json!({"type": "object", "properties": {"a": {"type": "number"}}, "additionalProperties": false});
    assert!(check(Mode::Forward, &v4, &history).is_empty());
    let transitive = check(Mode::ForwardTransitive, &v4, &history);
    assert_eq!(kinds(&transitive), [Kind::TypeWidened]);
    assert_eq!(transitive[0].version, 1);
    assert_eq!(transitive[0].path, "/properties/a/type");
    witness(json!({"a": 1.5}), &v4, &v1);
}

#[test]
fn full_checks_both_directions() {
    let old = json!({"type": "string"});
    let new = json!({"type": ["string", "null"]});
    assert!(backward(&old, &new).is_empty());
    assert_eq!(
        kinds(&check(Mode::Full, &new, &[(1, &old)])),
        [Kind::TypeWidened]
    );
}

// ---- required, properties, content models ---------------------------------------------------

#[test]
fn adding_a_required_field_is_not_backward_compatible() {
    let old = json!({"type": "object"});
    let new = json!({"type": "object", "required": ["fruit"]});
    assert_eq!(
        only(&backward(&old, &new)),
        ("/required", Kind::RequiredAdded)
    );
    assert!(forward(&old, &new).is_empty());
    witness(json!({}), &old, &new);
}

#[test]
fn removing_a_required_field_is_backward_but_not_forward_compatible() {
    let old = json!({"type": "object", "required": ["fruit", "color"]});
    let new = json!({"type": "object", "required": ["color"]});
    assert!(backward(&old, &new).is_empty());
    assert_eq!(
        only(&forward(&old, &new)),
        ("/required", Kind::RequiredRemoved)
    );
    witness(json!({"color": 1}), &new, &old);
}

#[test]
fn adding_a_typed_property_to_an_open_model_is_not_backward_compatible() {
    let old = json!({"type": "object", "properties": {"a": {"type": "string"}}});
    let new = json!({"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "integer"}}});
    assert_eq!(
        only(&backward(&old, &new)),
        ("/properties/b", Kind::PropertyAddedToOpenModel)
    );
    assert!(forward(&old, &new).is_empty());
    witness(
        json!({"b": "old documents could say anything here"}),
        &old,
        &new,
    );
}

#[test]
fn adding_a_typed_property_to_a_closed_model_is_backward_compatible() {
    let old = json!({"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": false});
    let new = json!({"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "integer"}}, "additionalProperties": false});
    assert!(backward(&old, &new).is_empty());
    assert_eq!(
        only(&forward(&old, &new)),
        ("/properties/b", Kind::ClosedContentModel)
    );
    witness(json!({"b": 1}), &new, &old);
}

#[test]
fn removing_a_property_from_an_open_model_is_backward_but_not_forward_compatible() {
    let old = json!({"properties": {"a": {"type": "string"}, "b": {"type": "integer"}}});
    let new = json!({"properties": {"a": {"type": "string"}}});
    assert!(backward(&old, &new).is_empty());
    assert_eq!(
        only(&forward(&old, &new)),
        ("/properties/b", Kind::PropertyRemovedFromOpenModel)
    );
    witness(json!({"b": "x"}), &new, &old);
}

#[test]
fn removing_a_property_from_a_closed_model_is_not_backward_compatible() {
    let old = json!({"properties": {"a": {}, "b": {}}, "additionalProperties": false});
    let new = json!({"properties": {"a": {}}, "additionalProperties": false});
    assert_eq!(
        only(&backward(&old, &new)),
        ("/additionalProperties", Kind::ClosedContentModel)
    );
    witness(json!({"b": 1}), &old, &new);
}

#[test]
fn closing_an_open_model_is_not_backward_compatible() {
    let old = json!({"properties": {"a": {"type": "string"}}});
    let new = json!({"properties": {"a": {"type": "string"}}, "additionalProperties": false});
    assert_eq!(
        only(&backward(&old, &new)),
        ("/additionalProperties", Kind::ClosedContentModel)
    );
    assert!(forward(&old, &new).is_empty());
}

#[test]
fn a_property_typed_like_additional_properties_is_compatible_both_ways() {
    let old = json!({"additionalProperties": {"type": "string"}});
    let new = json!({"properties": {"a": {"type": "string"}}, "additionalProperties": {"type": "string"}});
    assert!(check(Mode::Full, &new, &[(1, &old)]).is_empty());
}

#[test]
fn nested_objects_are_compared_recursively_with_paths_into_the_new_schema() {
    let old = json!({"properties": {"order": {"properties": {"lines": {"items": {"properties": {"qty": {"type": "number"}}}}}}}});
    let new = json!({"properties": {"order": {"properties": {"lines": {"items": {"properties": {"qty": {"type": "integer"}}}}}}}});
    assert_eq!(
        only(&backward(&old, &new)),
        (
            "/properties/order/properties/lines/items/properties/qty/type",
            Kind::TypeNarrowed
        )
    );
    witness(json!({"order": {"lines": [{"qty": 1.5}]}}), &old, &new);
}

#[test]
fn paths_point_into_the_new_schema_under_forward() {
    let old = json!({"properties": {"a": {"type": "integer"}}});
    let new =
        json!({"$defs": {"n": {"type": "number"}}, "properties": {"a": {"$ref": "#/$defs/n"}}});
    let found = forward(&old, &new);
    assert_eq!(only(&found), ("/$defs/n/type", Kind::TypeWidened));
    // With the roles swapped the path is into the other document, now the new one.
    let found = backward(&new, &old);
    assert_eq!(only(&found), ("/properties/a/type", Kind::TypeNarrowed));
    // Backward, a change behind a `$ref` of the new schema is reported where the `$ref` leads.
    let found = backward(
        &old,
        &json!({"$defs": {"n": {"type": "string"}}, "properties": {"a": {"$ref": "#/$defs/n"}}}),
    );
    assert_eq!(only(&found), ("/$defs/n/type", Kind::TypeNarrowed));
}

#[test]
fn pattern_properties_shared_by_both_sides_are_compared_directly() {
    let old =
        json!({"patternProperties": {"^x-": {"type": "integer"}}, "additionalProperties": false});
    let new =
        json!({"patternProperties": {"^x-": {"type": "number"}}, "additionalProperties": false});
    assert!(backward(&old, &new).is_empty());
    assert_eq!(kinds(&forward(&old, &new)), [Kind::TypeWidened]);
}

#[test]
fn adding_pattern_properties_to_an_open_model_is_not_backward_compatible() {
    let old = json!({"type": "object"});
    let new = json!({"type": "object", "patternProperties": {"^x-": {"type": "string"}}});
    assert!(!backward(&old, &new).is_empty());
    witness(json!({"x-a": 1}), &old, &new);
}

#[test]
fn property_count_bounds_follow_required_and_closed_models() {
    let old = json!({"required": ["a", "b"], "properties": {"a": {}, "b": {}, "c": {}}, "additionalProperties": false});
    let new = json!({"minProperties": 2, "maxProperties": 3});
    assert!(backward(&old, &new).is_empty());
    let tighter = json!({"maxProperties": 2});
    assert_eq!(kinds(&backward(&old, &tighter)), [Kind::BoundTightened]);
    witness(json!({"a": 1, "b": 2, "c": 3}), &old, &tighter);
}

#[test]
fn dependent_required_is_compared_by_trigger_and_name() {
    let old = json!({"dependentRequired": {"card": ["cvc", "expiry"]}});
    let new = json!({"dependentRequired": {"card": ["cvc"]}});
    assert!(backward(&old, &new).is_empty());
    let found = forward(&old, &new);
    assert_eq!(
        only(&found),
        ("/dependentRequired/card", Kind::DependencyRemoved)
    );
    witness(json!({"card": 1, "cvc": 2}), &new, &old);
}

#[test]
fn unevaluated_properties_is_analysed_where_it_means_additional_properties() {
    let closed = json!({"properties": {"a": {}}, "additionalProperties": false});
    let both = json!({"properties": {"a": {}}, "additionalProperties": false, "unevaluatedProperties": false});
    assert!(check(Mode::Full, &both, &[(1, &closed)]).is_empty());
    let alone = json!({"properties": {"a": {}}, "unevaluatedProperties": false});
    assert!(check(Mode::Full, &alone, &[(1, &closed)]).is_empty());
    let open = json!({"properties": {"a": {}}});
    assert_eq!(
        only(&backward(&open, &alone)),
        ("/unevaluatedProperties", Kind::ClosedContentModel)
    );
    witness(json!({"b": 1}), &open, &alone);
    // Beside an in-place applicator, what is "evaluated" depends on it: not analysed.
    let composed = json!({"allOf": [{"properties": {"b": {}}}], "properties": {"a": {}}, "unevaluatedProperties": false});
    assert!(kinds(&backward(&open, &composed)).contains(&Kind::Unproven));
}

// ---- types, values ---------------------------------------------------------------------------

#[test]
fn integer_is_included_in_number() {
    let old = json!({"type": "integer"});
    let new = json!({"type": "number"});
    assert!(backward(&old, &new).is_empty());
    assert_eq!(only(&forward(&old, &new)), ("/type", Kind::TypeWidened));
    witness(json!(0.5), &new, &old);
}

#[test]
fn an_absent_type_accepts_every_type() {
    let old = json!({"type": ["string", "null"]});
    let new = json!({"minLength": 1});
    assert_eq!(kinds(&backward(&old, &new)), [Kind::BoundTightened]);
    assert!(backward(&old, &json!({"description": "anything"})).is_empty());
    assert_eq!(kinds(&forward(&old, &json!({}))), [Kind::TypeWidened]);
}

#[test]
fn one_point_zero_is_an_integer_from_draft_6_on_but_not_in_draft_4() {
    let draft7 = json!({"$schema": "http://json-schema.org/draft-07/schema#", "type": "integer"});
    let draft4 = json!({"$schema": "http://json-schema.org/draft-04/schema#", "type": "integer"});
    assert!(backward(&draft4, &draft7).is_empty());
    assert_eq!(kinds(&backward(&draft7, &draft4)), [Kind::TypeNarrowed]);
    witness(json!(1.0), &draft7, &draft4);
}

#[test]
fn an_enum_of_one_also_admits_its_float_spelling() {
    // `enum: [5]` accepts 5.0, which draft 4's `integer` rejects.
    let old = json!({"enum": [5]});
    let new = json!({"$schema": "http://json-schema.org/draft-04/schema#", "type": "integer"});
    assert_eq!(kinds(&backward(&old, &new)), [Kind::TypeNarrowed]);
    witness(json!(5.0), &old, &new);
    assert!(backward(&old, &json!({"type": "integer"})).is_empty());
}

#[test]
fn enum_values_are_compared_with_json_equality() {
    let old = json!({"enum": [1, "a", {"k": [2.0]}]});
    let new = json!({"enum": [1.0, {"k": [2]}, "a", null]});
    assert!(backward(&old, &new).is_empty());
    assert_eq!(only(&forward(&old, &new)), ("/enum", Kind::EnumWidened));
}

#[test]
fn narrowing_an_enum_is_not_backward_compatible() {
    let old = json!({"enum": ["apple", "pear"]});
    let new = json!({"enum": ["apple"]});
    let found = backward(&old, &new);
    assert_eq!(only(&found), ("/enum", Kind::EnumNarrowed));
    assert!(found[0].message.contains("pear"));
    assert!(forward(&old, &new).is_empty());
}

#[test]
fn enum_values_are_checked_against_every_keyword_of_the_other_side() {
    let old = json!({"enum": ["ab", "abc"]});
    assert!(
        backward(
            &old,
            &json!({"type": "string", "minLength": 2, "maxLength": 3})
        )
        .is_empty()
    );
    assert_eq!(
        kinds(&backward(&old, &json!({"type": "string", "maxLength": 2}))),
        [Kind::BoundTightened]
    );
}

#[test]
fn const_is_a_one_value_enum_from_draft_6_and_ignored_in_draft_4() {
    let old = json!({"const": "a"});
    assert!(backward(&old, &json!({"enum": ["a", "b"]})).is_empty());
    assert_eq!(
        kinds(&forward(&old, &json!({"enum": ["a", "b"]}))),
        [Kind::ConstChanged]
    );
    let draft4 = json!({"$schema": "http://json-schema.org/draft-04/schema#", "const": "a"});
    assert_eq!(
        kinds(&backward(&draft4, &json!({"const": "a"}))),
        [Kind::ConstChanged]
    );
    witness(json!("b"), &draft4, &json!({"const": "a"}));
}

#[test]
fn boolean_types_are_a_finite_set() {
    let old = json!({"type": "boolean"});
    assert!(backward(&old, &json!({"enum": [true, false, null]})).is_empty());
}

#[test]
fn annotations_are_ignored() {
    let old = json!({"type": "string", "title": "Fruit", "description": "a fruit", "examples": ["apple"], "default": "apple", "$comment": "x", "deprecated": false, "readOnly": true, "writeOnly": false, "x-custom": {"type": "integer"}});
    let new = json!({"type": "string", "title": "Fruit name", "deprecated": true, "format": "email", "contentMediaType": "application/json"});
    assert!(check(Mode::Full, &new, &[(1, &old)]).is_empty());
}

#[test]
fn format_is_asserted_in_drafts_4_to_7_only() {
    let draft7 = |f: Value| json!({"$schema": "http://json-schema.org/draft-07/schema#", "type": "string", "format": f});
    let plain = json!({"$schema": "http://json-schema.org/draft-07/schema#", "type": "string"});
    assert_eq!(
        kinds(&backward(&plain, &draft7(json!("email")))),
        [Kind::FormatChanged]
    );
    witness(json!("not an email"), &plain, &draft7(json!("email")));
    // Unknown formats, and those needing the `idna` feature, are ignored.
    assert!(backward(&plain, &draft7(json!("idn-email"))).is_empty());
    assert!(backward(&plain, &draft7(json!("no-such-format"))).is_empty());
    assert!(
        backward(
            &json!({"type": "string"}),
            &json!({"type": "string", "format": "email"})
        )
        .is_empty()
    );
}

// ---- numbers and strings ----------------------------------------------------------------------

#[test]
fn tightening_a_minimum_is_not_backward_compatible() {
    let old = json!({"type": "number", "minimum": 0});
    let new = json!({"type": "number", "minimum": 1});
    assert_eq!(
        only(&backward(&old, &new)),
        ("/minimum", Kind::BoundTightened)
    );
    assert!(forward(&old, &new).is_empty());
    witness(json!(0.5), &old, &new);
}

#[test]
fn exclusive_and_inclusive_bounds_meet_on_integers() {
    let a = json!({"type": "integer", "exclusiveMinimum": 0, "maximum": 9.5});
    let b = json!({"type": "integer", "minimum": 1, "exclusiveMaximum": 10});
    assert!(check(Mode::Full, &b, &[(1, &a)]).is_empty());
    let numbers = json!({"type": "number", "minimum": 1});
    assert!(backward(&a, &numbers).is_empty());
    assert_eq!(
        kinds(&forward(&a, &numbers)),
        [Kind::TypeWidened, Kind::BoundLoosened]
    );
}

#[test]
fn draft_4_boolean_exclusive_bounds_are_understood() {
    let d4 = json!({"$schema": "http://json-schema.org/draft-04/schema#", "minimum": 5, "exclusiveMinimum": true});
    let d7 = json!({"$schema": "http://json-schema.org/draft-07/schema#", "exclusiveMinimum": 5});
    assert!(check(Mode::Full, &d7, &[(1, &d4)]).is_empty());
    let d4_inclusive = json!({"$schema": "http://json-schema.org/draft-04/schema#", "minimum": 5});
    assert_eq!(kinds(&backward(&d4_inclusive, &d7)), [Kind::BoundTightened]);
    witness(json!(5), &d4_inclusive, &d7);
}

#[test]
fn multiple_of_is_proven_for_whole_divisors() {
    let by4 = json!({"multipleOf": 4});
    let by2 = json!({"multipleOf": 2});
    assert!(backward(&by4, &by2).is_empty());
    assert_eq!(
        only(&backward(&by2, &by4)),
        ("/multipleOf", Kind::BoundTightened)
    );
    witness(json!(2), &by2, &by4);
    assert!(backward(&json!({"type": "integer"}), &json!({"multipleOf": 1})).is_empty());
    // Decimal divisors are only recognised unchanged.
    assert!(backward(&json!({"multipleOf": 0.1}), &json!({"multipleOf": 0.1})).is_empty());
    assert_eq!(
        kinds(&backward(
            &json!({"multipleOf": 0.2}),
            &json!({"multipleOf": 0.1})
        )),
        [Kind::BoundTightened]
    );
}

#[test]
fn string_lengths_count_code_points() {
    let old = json!({"type": "string", "maxLength": 3});
    let new = json!({"type": "string", "maxLength": 2});
    assert_eq!(kinds(&backward(&old, &new)), [Kind::BoundTightened]);
    witness(json!("🦀🦀🦀"), &old, &new);
    assert!(backward(&new, &old).is_empty());
}

#[test]
fn a_pattern_is_compatible_only_unchanged_or_removed_on_the_larger_side() {
    let with = json!({"type": "string", "pattern": "^[a-z]+$"});
    let without = json!({"type": "string"});
    let other = json!({"type": "string", "pattern": "^[a-z]*$"});
    assert!(backward(&with, &with).is_empty());
    assert!(backward(&with, &without).is_empty());
    assert_eq!(
        only(&backward(&without, &with)),
        ("/pattern", Kind::PatternChanged)
    );
    assert_eq!(
        only(&forward(&with, &without)),
        ("/pattern", Kind::PatternChanged)
    );
    // Even a pattern that happens to be wider is not analysed.
    assert_eq!(kinds(&backward(&with, &other)), [Kind::PatternChanged]);
}

// ---- arrays -----------------------------------------------------------------------------------

#[test]
fn array_items_are_compared_position_by_position() {
    let old = json!({"type": "array", "prefixItems": [{"type": "string"}, {"type": "integer"}], "items": false});
    let new =
        json!({"type": "array", "prefixItems": [{"type": "string"}], "items": {"type": "number"}});
    assert!(backward(&old, &new).is_empty());
    let found = forward(&old, &new);
    assert!(kinds(&found).contains(&Kind::TypeWidened), "{found:#?}");
    assert!(kinds(&found).contains(&Kind::ItemsChanged), "{found:#?}");
}

#[test]
fn draft_7_tuples_use_items_and_additional_items() {
    let old = json!({"$schema": "http://json-schema.org/draft-07/schema#", "items": [{"type": "string"}], "additionalItems": false});
    let new = json!({"$schema": "http://json-schema.org/draft-07/schema#", "items": [{"type": "string"}, {"type": "string"}], "additionalItems": false});
    assert!(backward(&old, &new).is_empty());
    let found = forward(&old, &new);
    assert_eq!(only(&found), ("/items/1", Kind::ItemsChanged));
    witness(json!(["a", "b"]), &new, &old);
}

#[test]
fn prefix_items_mean_nothing_before_2020_12() {
    let d7 = json!({"$schema": "http://json-schema.org/draft-07/schema#", "prefixItems": [{"type": "string"}]});
    assert!(backward(&json!({}), &d7).is_empty());
    assert_eq!(
        kinds(&backward(
            &json!({}),
            &json!({"prefixItems": [{"type": "string"}]})
        )),
        [Kind::TypeNarrowed]
    );
}

#[test]
fn array_bounds_and_unique_items_are_compared() {
    let old = json!({"type": "array", "minItems": 1, "maxItems": 5, "uniqueItems": true});
    let new = json!({"type": "array", "maxItems": 10});
    assert!(backward(&old, &new).is_empty());
    let found = forward(&old, &new);
    assert_eq!(
        kinds(&found),
        [
            Kind::BoundLoosened,
            Kind::BoundLoosened,
            Kind::UniqueItemsRemoved
        ]
    );
    witness(json!([1, 1.0]), &new, &old);
}

#[test]
fn contains_is_proven_from_an_including_contains() {
    let old = json!({"contains": {"type": "integer"}});
    let new = json!({"contains": {"type": "number"}});
    assert!(backward(&old, &new).is_empty());
    assert_eq!(only(&forward(&old, &new)).1, Kind::Unproven);
}

// ---- booleans, references ---------------------------------------------------------------------

#[test]
fn boolean_schemas_are_understood() {
    assert!(backward(&json!(false), &json!({"type": "string"})).is_empty());
    assert!(backward(&json!({"type": "string"}), &json!(true)).is_empty());
    assert_eq!(
        only(&backward(&json!(true), &json!(false))),
        ("", Kind::TypeNarrowed)
    );
    assert_eq!(
        kinds(&backward(
            &json!({"properties": {"a": true}}),
            &json!({"properties": {"a": false}})
        )),
        [Kind::ClosedContentModel]
    );
}

#[test]
fn local_references_are_followed_on_both_sides() {
    let old = json!({"definitions": {"fruit": {"type": "string", "enum": ["apple"]}}, "properties": {"f": {"$ref": "#/definitions/fruit"}}});
    let new = json!({"$defs": {"name": {"type": "string"}}, "properties": {"f": {"$ref": "#/$defs/name"}}});
    assert!(backward(&old, &new).is_empty());
    assert_eq!(
        only(&forward(&old, &new)),
        ("/$defs/name/enum", Kind::EnumWidened)
    );
}

#[test]
fn a_recursive_ref_terminates() {
    let tree = |leaf: Value| json!({"$defs": {"node": {"type": "object", "properties": {"value": leaf, "children": {"type": "array", "items": {"$ref": "#/$defs/node"}}}}}, "$ref": "#/$defs/node"});
    let old = tree(json!({"type": "integer"}));
    let new = tree(json!({"type": "number"}));
    assert!(backward(&old, &new).is_empty());
    assert!(backward(&old, &old).is_empty());
    let found = forward(&old, &new);
    assert_eq!(
        only(&found),
        ("/$defs/node/properties/value/type", Kind::TypeWidened)
    );
    witness(json!({"children": [{"value": 0.5}]}), &new, &old);
    let root_recursion = json!({"properties": {"next": {"$ref": "#"}, "v": {"type": "string"}}});
    let looser = json!({"properties": {"next": {"$ref": "#"}}});
    assert!(backward(&root_recursion, &looser).is_empty());
}

#[test]
fn a_reference_cycle_that_consumes_nothing_is_unproven_not_looped() {
    let cycle = json!({"$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"});
    let found = backward(&json!({}), &cycle);
    assert_eq!(kinds(&found), [Kind::Unproven]);
}

#[test]
fn identical_subschemas_whose_refs_resolve_differently_are_not_identical() {
    let old = json!({"$defs": {"x": {"type": "integer"}}, "not": {"$ref": "#/$defs/x"}});
    let new = json!({"$defs": {"x": {"type": "string"}}, "not": {"$ref": "#/$defs/x"}});
    let found = backward(&old, &new);
    assert_eq!(only(&found), ("/not", Kind::Unproven));
    witness(json!("s"), &old, &new);
    let same = json!({"$defs": {"y": {"type": "integer"}}, "not": {"$ref": "#/$defs/y"}});
    assert!(backward(&old, &same).is_empty());
}

#[test]
fn an_unresolvable_ref_is_unproven() {
    let new = json!({"properties": {"a": {"$ref": "https://example.com/other.json"}}});
    let found = backward(&json!({"properties": {"a": true}}), &new);
    assert_eq!(only(&found), ("/properties/a/$ref", Kind::Unproven));
}

#[test]
fn ref_siblings_are_ignored_up_to_draft_7() {
    let d7 = json!({"$schema": "http://json-schema.org/draft-07/schema#", "definitions": {"s": {"type": "string"}}, "properties": {"a": {"$ref": "#/definitions/s", "maxLength": 1}}});
    let plain = json!({"$schema": "http://json-schema.org/draft-07/schema#", "properties": {"a": {"type": "string"}}});
    assert!(check(Mode::Full, &plain, &[(1, &d7)]).is_empty());
    let d2020 = json!({"$defs": {"s": {"type": "string"}}, "properties": {"a": {"$ref": "#/$defs/s", "maxLength": 1}}});
    assert_eq!(kinds(&backward(&plain, &d2020)), [Kind::BoundTightened]);
}

#[test]
fn an_unknown_or_embedded_dialect_is_unproven() {
    let custom = json!({"$schema": "https://example.com/my-dialect"});
    assert_eq!(
        only(&backward(&json!({}), &custom)),
        ("/$schema", Kind::Unproven)
    );
    let embedded = json!({"properties": {"a": {"$schema": "http://json-schema.org/draft-04/schema#", "type": "integer"}}});
    assert_eq!(
        kinds(&backward(
            &json!({"properties": {"a": {"type": "integer"}}}),
            &embedded
        )),
        [Kind::Unproven]
    );
}

// ---- applicators ------------------------------------------------------------------------------

#[test]
fn a_new_any_of_that_includes_the_old_schema_is_backward_compatible() {
    let old = json!({"type": "string", "maxLength": 3});
    let new = json!({"anyOf": [{"type": "integer"}, {"type": "string"}]});
    assert!(backward(&old, &new).is_empty());
    assert!(kinds(&forward(&old, &new)).contains(&Kind::TypeWidened));
    witness(json!(5), &new, &old);
}

#[test]
fn an_old_any_of_is_split_into_cases() {
    let old = json!({"anyOf": [{"type": "integer"}, {"type": "string", "minLength": 2}]});
    let new = json!({"type": ["number", "string"], "minLength": 1});
    assert!(backward(&old, &new).is_empty());
}

#[test]
fn a_nullable_one_of_is_understood() {
    let old = json!({"type": "string"});
    let new = json!({"oneOf": [{"type": "string"}, {"type": "null"}]});
    assert!(backward(&old, &new).is_empty());
    assert!(backward(&new, &new).is_empty());
    let overlapping = json!({"oneOf": [{"type": "string"}, {"maxLength": 3}]});
    assert_eq!(only(&backward(&old, &overlapping)).1, Kind::Unproven);
    witness(json!("ab"), &old, &overlapping);
}

#[test]
fn a_discriminated_one_of_is_understood() {
    let variant = |kind: &str, field: &str| json!({"type": "object", "required": ["kind", field], "properties": {"kind": {"const": kind}, field: {"type": "string"}}});
    let old = variant("a", "x");
    let new = json!({"oneOf": [variant("a", "x"), variant("b", "y")]});
    assert!(backward(&old, &new).is_empty());
}

#[test]
fn all_of_on_the_old_side_is_used_as_facts() {
    let old = json!({"allOf": [{"type": "string"}, {"minLength": 3}]});
    let new = json!({"type": "string", "minLength": 2});
    assert!(backward(&old, &new).is_empty());
    assert_eq!(kinds(&forward(&old, &new)), [Kind::BoundLoosened]);
}

#[test]
fn not_is_proven_by_disjoint_types_or_an_including_not() {
    let old = json!({"type": "integer"});
    assert!(backward(&old, &json!({"not": {"type": "string"}})).is_empty());
    let old = json!({"not": {"type": ["string", "null"]}});
    assert!(backward(&old, &json!({"not": {"type": "string"}})).is_empty());
    assert_eq!(
        kinds(&forward(&old, &json!({"not": {"type": "string"}}))),
        [Kind::Unproven]
    );
}

#[test]
fn if_then_else_is_proven_when_the_branch_taken_includes_the_old_schema() {
    let old = json!({"type": "object", "required": ["kind"], "properties": {"kind": {"const": "a"}, "x": {"type": "integer"}}});
    let new = json!({"if": {"properties": {"kind": {"const": "a"}}, "required": ["kind"]}, "then": {"properties": {"x": {"type": "number"}}}, "else": false});
    assert!(backward(&old, &new).is_empty());
}

// ---- limits -----------------------------------------------------------------------------------

#[test]
fn at_most_fifty_incompatibilities_are_reported() {
    let names: Vec<String> = (0..80).map(|i| format!("p{i}")).collect();
    let new = json!({"required": names});
    let found = backward(&json!({}), &new);
    assert_eq!(found.len(), MAX_INCOMPATIBILITIES);
    assert!(found.iter().all(|i| i.kind == Kind::RequiredAdded));
}

#[test]
fn messages_are_capped() {
    let long = "x".repeat(10_000);
    let new = json!({"required": [long]});
    let found = backward(&json!({}), &new);
    assert!(found[0].message.chars().count() <= MAX_MESSAGE_CHARS);
    assert!(found[0].path.len() < 20);
}

fn on_a_worker_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new()
        .stack_size(2 * 1024 * 1024)
        .spawn(f)
        .unwrap()
        .join()
        .unwrap()
}

#[test]
fn deeply_nested_schemas_neither_overflow_nor_hang() {
    for keyword in [
        "items",
        "not",
        "allOf",
        "additionalProperties",
        "properties",
    ] {
        let nest = |leaf: Value| {
            (0..400).fold(leaf, |inner, _| match keyword {
                "allOf" => json!({"allOf": [inner]}),
                "properties" => json!({"properties": {"a": inner}}),
                k => json!({k: inner}),
            })
        };
        let old = nest(json!({"type": "integer"}));
        let new = nest(json!({"type": "number"}));
        let found = on_a_worker_stack(move || (backward(&old, &new), forward(&old, &new)));
        // Past the depth budget the answer is "unproven", never "compatible" by accident.
        assert!(
            found.0.is_empty() || found.0.iter().any(|i| i.kind == Kind::Unproven),
            "{keyword}"
        );
        assert!(!found.1.is_empty(), "{keyword}");
    }
}

#[test]
fn deeply_nested_values_are_evaluated_on_a_worker_stack() {
    // An `enum` of a value nested to the parser's limit is tried against schemas nested as deep.
    let deep_value = (0..126).fold(json!(1), |inner, _| json!([inner]));
    let deep_items = (0..126).fold(
        json!({"type": "integer"}),
        |inner, _| json!({"items": inner}),
    );
    let deep_not = (0..126).fold(json!({"type": "integer"}), |inner, _| json!({"not": inner}));
    let found = on_a_worker_stack(move || {
        let old = json!({"enum": [deep_value]});
        (backward(&old, &deep_items), backward(&old, &deep_not))
    });
    assert!(found.0.is_empty() || found.0.iter().all(|i| i.kind == Kind::Unproven));
    assert!(!found.1.is_empty());
}

#[test]
fn a_huge_schema_is_answered_within_the_work_budget() {
    // Every level references the next twice: 2^40 paths without memoisation.
    let mut defs = serde_json::Map::new();
    for i in 0..40 {
        defs.insert(format!("d{i}"), json!({"properties": {"a": {"$ref": format!("#/$defs/d{}", i + 1)}, "b": {"$ref": format!("#/$defs/d{}", i + 1)}}}));
    }
    defs.insert("d40".into(), json!({"type": "integer"}));
    let old = json!({"$defs": defs, "$ref": "#/$defs/d0"});
    let mut looser = old.clone();
    looser["$defs"]["d40"] = json!({"type": "number"});
    let started = std::time::Instant::now();
    assert!(backward(&old, &looser).is_empty());
    assert!(!forward(&old, &looser).is_empty());
    assert!(started.elapsed().as_secs() < 10);
}
