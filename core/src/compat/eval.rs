//! A three-valued validator: is a given JSON value valid under a schema node? `True` and `False`
//! are exact statements about what `jsonschema` answers, for *every* representation of the
//! value's numbers (`1` and `1.0`); anything this module does not reproduce exactly (`pattern`,
//! asserted `format`, float `multipleOf`, `patternProperties`, `unevaluated*`, dynamic
//! references, depth or budget exhausted) makes the answer `Unknown`.
//!
//! The checker uses it where one side of an inclusion is a finite set of values (`enum`,
//! `const`, `type: boolean`): each value is then simply tried against the other side.

use serde_json::{Map, Value};

use super::draft::{Draft, asserted_format, is_active, unevaluated_is_additional};
use super::num::{
    self, NUMBER, Num, STRING, Types, class_of, classes_of_equal, json_equal, size_limit,
    type_keyword,
};
use super::prove::{Engine, Node};

/// Deepest evaluation: values from a parsed document nest at most 128 levels, and a reference
/// cycle that consumes nothing of the value would otherwise never end.
const MAX_EVAL_DEPTH: usize = 160;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Tri {
    True,
    False,
    Unknown,
}

impl Tri {
    fn of(b: bool) -> Tri {
        if b { Tri::True } else { Tri::False }
    }

    fn and(self, other: Tri) -> Tri {
        match (self, other) {
            (Tri::False, _) | (_, Tri::False) => Tri::False,
            (Tri::True, Tri::True) => Tri::True,
            _ => Tri::Unknown,
        }
    }

    fn or(self, other: Tri) -> Tri {
        match (self, other) {
            (Tri::True, _) | (_, Tri::True) => Tri::True,
            (Tri::False, Tri::False) => Tri::False,
            _ => Tri::Unknown,
        }
    }

    fn not(self) -> Tri {
        match self {
            Tri::True => Tri::False,
            Tri::False => Tri::True,
            Tri::Unknown => Tri::Unknown,
        }
    }
}

impl<'a> Engine<'a> {
    /// Whether `value` is valid under `node`. `classes` are the number classes `value` may have
    /// (ignored unless it is a number): one class for a value taken in one representation,
    /// [`classes_of_equal`] for "any of them".
    pub(crate) fn eval(&mut self, node: Node<'a>, value: &Value, classes: Types) -> Tri {
        if !self.tick() || self.eval_depth >= MAX_EVAL_DEPTH {
            return Tri::Unknown;
        }
        self.eval_depth += 1;
        let result = self.eval_node(node, value, classes);
        self.eval_depth -= 1;
        result
    }

    fn eval_node(&mut self, node: Node<'a>, value: &Value, classes: Types) -> Tri {
        let map = match node.v {
            Value::Bool(b) => return Tri::of(*b),
            Value::Object(map) => map,
            _ => return Tri::Unknown,
        };
        let draft = self.draft(node);
        if draft.ref_overrides_siblings() {
            if let Some(reference) = map.get("$ref") {
                return self.eval_ref(node, reference, value, classes);
            }
        }
        let mut acc = Tri::True;
        for (keyword, kv) in map {
            if !is_active(draft, keyword) {
                continue;
            }
            acc = acc.and(self.eval_keyword(node, map, keyword, kv, value, classes));
            if acc == Tri::False {
                break;
            }
        }
        acc
    }

    fn eval_ref(
        &mut self,
        node: Node<'a>,
        reference: &Value,
        value: &Value,
        classes: Types,
    ) -> Tri {
        match self.docs[node.doc].resolve(reference) {
            Some((target, _)) => self.eval(node.at(target), value, classes),
            None => Tri::Unknown,
        }
    }

    fn child(&mut self, node: Node<'a>, schema: &'a Value, value: &Value) -> Tri {
        self.eval(node.at(schema), value, classes_of_equal(value))
    }

    /// One keyword of `map` (the object of `node`), alone.
    pub(crate) fn eval_keyword(
        &mut self,
        node: Node<'a>,
        map: &'a Map<String, Value>,
        keyword: &str,
        kv: &'a Value,
        value: &Value,
        classes: Types,
    ) -> Tri {
        let draft = self.draft(node);
        match keyword {
            "$ref" => self.eval_ref(node, kv, value, classes),
            "type" => match type_keyword(kv, draft) {
                None => Tri::Unknown,
                Some(allowed) => {
                    let have = if value.is_number() {
                        classes & NUMBER
                    } else {
                        class_of(value)
                    };
                    if have & !allowed == 0 {
                        Tri::True
                    } else if have & allowed == 0 {
                        Tri::False
                    } else {
                        Tri::Unknown
                    }
                }
            },
            "enum" => match kv {
                Value::Array(options) => Tri::of(options.iter().any(|o| json_equal(o, value))),
                _ => Tri::Unknown,
            },
            "const" => Tri::of(json_equal(kv, value)),
            "minimum" | "maximum" | "exclusiveMinimum" | "exclusiveMaximum" => {
                eval_bound(map, keyword, kv, value, draft)
            }
            "multipleOf" => eval_multiple_of(kv, value),
            "minLength" | "maxLength" => match value {
                Value::String(s) => match size_limit(kv, draft) {
                    Some(limit) => {
                        let length = s.chars().count() as u64;
                        Tri::of(if keyword == "minLength" {
                            length >= limit
                        } else {
                            length <= limit
                        })
                    }
                    None => Tri::Unknown,
                },
                _ => Tri::True,
            },
            "pattern" => {
                if value.is_string() || !kv.is_string() {
                    Tri::Unknown
                } else {
                    Tri::True
                }
            }
            "format" => match (value, kv) {
                (Value::String(_), Value::String(name)) => {
                    if asserted_format(draft, name).is_some() {
                        Tri::Unknown
                    } else {
                        Tri::True
                    }
                }
                (_, Value::String(_)) => Tri::True,
                _ => Tri::Unknown,
            },
            "contentMediaType" | "contentEncoding" => {
                if value.is_string() {
                    Tri::Unknown
                } else {
                    Tri::True
                }
            }
            "items" | "prefixItems" | "additionalItems" => {
                self.eval_items(node, map, keyword, kv, value, draft)
            }
            "minItems" | "maxItems" => match value {
                Value::Array(items) => match size_limit(kv, draft) {
                    Some(limit) => {
                        let n = items.len() as u64;
                        Tri::of(if keyword == "minItems" {
                            n >= limit
                        } else {
                            n <= limit
                        })
                    }
                    None => Tri::Unknown,
                },
                _ => Tri::True,
            },
            "uniqueItems" => match (value, kv) {
                (Value::Array(items), Value::Bool(true)) => {
                    let unique = items
                        .iter()
                        .enumerate()
                        .all(|(i, a)| items[i + 1..].iter().all(|b| !json_equal(a, b)));
                    Tri::of(unique)
                }
                (_, Value::Bool(_)) => Tri::True,
                _ => Tri::Unknown,
            },
            "contains" => self.eval_contains(node, map, kv, value, draft),
            "properties" => match (value, kv) {
                (Value::Object(instance), Value::Object(props)) => {
                    let mut acc = Tri::True;
                    for (name, schema) in props {
                        if let Some(member) = instance.get(name) {
                            acc = acc.and(self.child(node, schema, member));
                            if acc == Tri::False {
                                break;
                            }
                        }
                    }
                    acc
                }
                (Value::Object(_), _) => Tri::Unknown,
                _ => Tri::True,
            },
            "patternProperties" => match (value, kv) {
                (Value::Object(instance), Value::Object(patterns)) => {
                    if instance.is_empty() || patterns.values().all(|s| s == &Value::Bool(true)) {
                        Tri::True
                    } else {
                        Tri::Unknown
                    }
                }
                (Value::Object(_), _) => Tri::Unknown,
                _ => Tri::True,
            },
            "additionalProperties" => self.eval_additional_properties(node, map, kv, value),
            "required" => match (value, kv) {
                (Value::Object(instance), Value::Array(names)) => {
                    let mut acc = Tri::True;
                    for name in names {
                        match name.as_str() {
                            Some(name) if !instance.contains_key(name) => return Tri::False,
                            Some(_) => {}
                            None => acc = Tri::Unknown,
                        }
                    }
                    acc
                }
                (Value::Object(_), _) => Tri::Unknown,
                _ => Tri::True,
            },
            "minProperties" | "maxProperties" => match value {
                Value::Object(instance) => match size_limit(kv, draft) {
                    Some(limit) => {
                        let n = instance.len() as u64;
                        Tri::of(if keyword == "minProperties" {
                            n >= limit
                        } else {
                            n <= limit
                        })
                    }
                    None => Tri::Unknown,
                },
                _ => Tri::True,
            },
            "propertyNames" => match value {
                Value::Object(instance) => {
                    let mut acc = Tri::True;
                    for name in instance.keys() {
                        let name = Value::String(name.clone());
                        acc = acc.and(self.eval(node.at(kv), &name, STRING));
                        if acc == Tri::False {
                            break;
                        }
                    }
                    acc
                }
                _ => Tri::True,
            },
            "dependencies" | "dependentRequired" | "dependentSchemas" => {
                self.eval_dependencies(node, keyword, kv, value, classes)
            }
            "allOf" | "anyOf" | "oneOf" => match kv {
                Value::Array(branches) if !branches.is_empty() => {
                    self.eval_combinator(node, keyword, branches, value, classes)
                }
                _ => Tri::Unknown,
            },
            "not" => self.eval(node.at(kv), value, classes).not(),
            "if" => {
                let condition = self.eval(node.at(kv), value, classes);
                let then = map.get("then");
                let otherwise = map.get("else");
                let branch = |engine: &mut Self, schema: Option<&'a Value>| match schema {
                    Some(schema) => engine.eval(node.at(schema), value, classes),
                    None => Tri::True,
                };
                match condition {
                    Tri::True => branch(self, then),
                    Tri::False => branch(self, otherwise),
                    Tri::Unknown => {
                        let a = branch(self, then);
                        let b = branch(self, otherwise);
                        if a == b { a } else { Tri::Unknown }
                    }
                }
            }
            "unevaluatedProperties" if unevaluated_is_additional(map, draft, false) => {
                self.eval_additional_properties(node, map, kv, value)
            }
            "unevaluatedItems" if unevaluated_is_additional(map, draft, true) => {
                let Value::Array(items) = value else {
                    return Tri::True;
                };
                let start = match (map.get("prefixItems"), map.get("items")) {
                    (_, Some(Value::Array(tuple))) => tuple.len(),
                    (Some(Value::Array(prefix)), None) if draft == Draft::D2020 => prefix.len(),
                    _ => 0,
                };
                let mut acc = Tri::True;
                for item in items.iter().skip(start) {
                    acc = acc.and(self.child(node, kv, item));
                    if acc == Tri::False {
                        break;
                    }
                }
                acc
            }
            "unevaluatedProperties" => match value {
                Value::Object(instance) => {
                    if kv == &Value::Bool(true)
                        || instance.is_empty()
                        || map.contains_key("additionalProperties")
                    {
                        Tri::True
                    } else {
                        Tri::Unknown
                    }
                }
                _ => Tri::True,
            },
            "unevaluatedItems" => match value {
                Value::Array(items) => {
                    if kv == &Value::Bool(true)
                        || items.is_empty()
                        || items_cover_every_position(map, draft)
                    {
                        Tri::True
                    } else {
                        Tri::Unknown
                    }
                }
                _ => Tri::True,
            },
            "$dynamicRef" | "$recursiveRef" => Tri::Unknown,
            _ => Tri::True,
        }
    }

    fn eval_items(
        &mut self,
        node: Node<'a>,
        map: &'a Map<String, Value>,
        keyword: &str,
        kv: &'a Value,
        value: &Value,
        draft: Draft,
    ) -> Tri {
        let Value::Array(items) = value else {
            return Tri::True;
        };
        // (first position the keyword covers, one schema for all of them or a tuple)
        let (start, schema, tuple): (usize, Option<&'a Value>, Option<&'a Vec<Value>>) =
            match (keyword, kv) {
                ("items" | "prefixItems", Value::Array(tuple)) => (0, None, Some(tuple)),
                ("prefixItems", _) => return Tri::Unknown,
                ("items", Value::Bool(true)) => return Tri::True,
                ("items", Value::Object(_) | Value::Bool(false)) => {
                    let start = match map.get("prefixItems") {
                        Some(Value::Array(prefix)) if draft == Draft::D2020 => prefix.len(),
                        _ => 0,
                    };
                    (start, Some(kv), None)
                }
                ("additionalItems", Value::Object(_) | Value::Bool(_)) => match map.get("items") {
                    Some(Value::Array(tuple)) => (tuple.len(), Some(kv), None),
                    _ => return Tri::True,
                },
                _ => return Tri::Unknown,
            };
        let mut acc = Tri::True;
        for (i, item) in items.iter().enumerate() {
            let applies = match tuple {
                Some(tuple) => tuple.get(i),
                None if i >= start => schema,
                None => None,
            };
            if let Some(applies) = applies {
                acc = acc.and(self.child(node, applies, item));
                if acc == Tri::False {
                    break;
                }
            }
        }
        acc
    }

    fn eval_contains(
        &mut self,
        node: Node<'a>,
        map: &'a Map<String, Value>,
        kv: &'a Value,
        value: &Value,
        draft: Draft,
    ) -> Tri {
        let Value::Array(items) = value else {
            return Tri::True;
        };
        let (min, max) = if draft >= Draft::D2019 {
            let read = |key: &str| map.get(key).map(|v| size_limit(v, draft));
            match (read("minContains"), read("maxContains")) {
                (Some(None), _) | (_, Some(None)) => return Tri::Unknown,
                (min, max) => (
                    min.flatten().unwrap_or(1),
                    max.flatten().unwrap_or(u64::MAX),
                ),
            }
        } else {
            (1, u64::MAX)
        };
        let (mut yes, mut maybe) = (0u64, 0u64);
        for item in items {
            match self.child(node, kv, item) {
                Tri::True => yes += 1,
                Tri::Unknown => maybe += 1,
                Tri::False => {}
            }
        }
        if yes >= min && yes + maybe <= max {
            Tri::True
        } else if yes + maybe < min || yes > max {
            Tri::False
        } else {
            Tri::Unknown
        }
    }

    fn eval_additional_properties(
        &mut self,
        node: Node<'a>,
        map: &'a Map<String, Value>,
        kv: &'a Value,
        value: &Value,
    ) -> Tri {
        let Value::Object(instance) = value else {
            return Tri::True;
        };
        if kv == &Value::Bool(true) {
            return Tri::True;
        }
        let declared = map.get("properties").and_then(Value::as_object);
        let patterned = match map.get("patternProperties") {
            None => false,
            Some(Value::Object(patterns)) => !patterns.is_empty(),
            Some(_) => return Tri::Unknown,
        };
        let mut acc = Tri::True;
        for (name, member) in instance {
            if declared.is_some_and(|d| d.contains_key(name)) {
                continue;
            }
            if patterned {
                // Whether a pattern matches decides if `additionalProperties` applies at all.
                acc = acc.and(Tri::Unknown);
                continue;
            }
            acc = acc.and(self.child(node, kv, member));
            if acc == Tri::False {
                break;
            }
        }
        acc
    }

    fn eval_dependencies(
        &mut self,
        node: Node<'a>,
        keyword: &str,
        kv: &'a Value,
        value: &Value,
        classes: Types,
    ) -> Tri {
        let (Value::Object(instance), Value::Object(deps)) = (value, kv) else {
            return if value.is_object() {
                Tri::Unknown
            } else {
                Tri::True
            };
        };
        let mut acc = Tri::True;
        for (trigger, dependency) in deps {
            if !instance.contains_key(trigger) {
                continue;
            }
            let result = match dependency {
                Value::Array(names) if keyword != "dependentSchemas" => {
                    let mut all = Tri::True;
                    for name in names {
                        match name.as_str() {
                            Some(name) => {
                                if !instance.contains_key(name) {
                                    all = Tri::False;
                                }
                            }
                            None => all = all.and(Tri::Unknown),
                        }
                    }
                    all
                }
                Value::Object(_) | Value::Bool(_) if keyword != "dependentRequired" => {
                    self.eval(node.at(dependency), value, classes)
                }
                _ => Tri::Unknown,
            };
            acc = acc.and(result);
            if acc == Tri::False {
                break;
            }
        }
        acc
    }

    fn eval_combinator(
        &mut self,
        node: Node<'a>,
        keyword: &str,
        branches: &'a [Value],
        value: &Value,
        classes: Types,
    ) -> Tri {
        match keyword {
            "allOf" => {
                let mut acc = Tri::True;
                for branch in branches {
                    acc = acc.and(self.eval(node.at(branch), value, classes));
                    if acc == Tri::False {
                        break;
                    }
                }
                acc
            }
            "anyOf" => {
                let mut acc = Tri::False;
                for branch in branches {
                    acc = acc.or(self.eval(node.at(branch), value, classes));
                    if acc == Tri::True {
                        break;
                    }
                }
                acc
            }
            _ => {
                let (mut yes, mut maybe) = (0, 0);
                for branch in branches {
                    match self.eval(node.at(branch), value, classes) {
                        Tri::True => yes += 1,
                        Tri::Unknown => maybe += 1,
                        Tri::False => {}
                    }
                    if yes > 1 {
                        return Tri::False;
                    }
                }
                match (yes, maybe) {
                    (1, 0) => Tri::True,
                    (0, 0) => Tri::False,
                    _ => Tri::Unknown,
                }
            }
        }
    }
}

/// Whether the array keywords of `map` evaluate every item, which turns `unevaluatedItems` into
/// a no-op.
pub(crate) fn items_cover_every_position(map: &Map<String, Value>, draft: Draft) -> bool {
    match map.get("items") {
        None => false,
        Some(Value::Array(_)) => map.contains_key("additionalItems"),
        Some(_) => draft >= Draft::D2019,
    }
}

fn eval_bound(
    map: &Map<String, Value>,
    keyword: &str,
    kv: &Value,
    value: &Value,
    draft: Draft,
) -> Tri {
    let Some(limit) = Num::of_value(kv) else {
        return Tri::Unknown;
    };
    let Some(n) = Num::of_value(value) else {
        return if value.is_number() {
            Tri::Unknown
        } else {
            Tri::True
        };
    };
    let exclusive = match keyword {
        "minimum" if draft == Draft::D4 => map.get("exclusiveMinimum") == Some(&Value::Bool(true)),
        "maximum" if draft == Draft::D4 => map.get("exclusiveMaximum") == Some(&Value::Bool(true)),
        "exclusiveMinimum" | "exclusiveMaximum" => true,
        _ => false,
    };
    let order = n.cmp(limit);
    let ok = if keyword.ends_with("inimum") {
        order.is_gt() || (!exclusive && order.is_eq())
    } else {
        order.is_lt() || (!exclusive && order.is_eq())
    };
    Tri::of(ok)
}

/// Only whole divisors against values below 2^53 are reproduced: there every representation
/// gives the exact integer answer; elsewhere the validator reads decimal text or falls back to
/// approximate fractions.
fn eval_multiple_of(kv: &Value, value: &Value) -> Tri {
    const SAFE: f64 = 9_007_199_254_740_992.0;
    let Some(divisor) = kv.as_f64() else {
        return Tri::Unknown;
    };
    let Some(n) = Num::of_value(value) else {
        return if value.is_number() {
            Tri::Unknown
        } else {
            Tri::True
        };
    };
    if !(divisor > 0.0 && divisor <= SAFE && divisor.fract() == 0.0) {
        return Tri::Unknown;
    }
    if n.as_f64().abs() >= SAFE {
        return Tri::Unknown;
    }
    if !n.is_integral() {
        return Tri::False;
    }
    match n.floor() {
        Some(Num::Int(i)) => Tri::of(i % (divisor as i128) == 0),
        _ => Tri::Unknown,
    }
}

/// The classes that `type`, `enum` and `const` of one node leave possible.
pub(crate) fn node_types(map: &Map<String, Value>, draft: Draft) -> Types {
    let mut types = num::ANY;
    if let Some(bits) = map.get("type").and_then(|t| type_keyword(t, draft)) {
        types &= bits;
    }
    if let Some(Value::Array(options)) = map.get("enum") {
        types &= options.iter().fold(0, |acc, o| acc | classes_of_equal(o));
    }
    if draft >= Draft::D6 {
        if let Some(constant) = map.get("const") {
            types &= classes_of_equal(constant);
        }
    }
    types
}
