//! Exact arithmetic on JSON numbers, and the lattice of JSON types, as the validator sees them.
//!
//! The validator compares numbers exactly across `u64`, `i64` and `f64` (never by rounding to
//! `f64`), and decides `"integer"` by draft: from draft 6 on any integral value is one (`1.0`
//! included), while draft 4 only counts numbers *written* as integers. One JSON value can reach
//! the gateway in two representations (`1` and `1.0` are equal under `enum`, but not both draft-4
//! integers), so a number maps to a *set* of type classes.

use std::cmp::Ordering;

use serde_json::{Number, Value};

use super::draft::Draft;

/// A set of type classes; every JSON value belongs to exactly one class.
pub(crate) type Types = u8;

pub(crate) const NULL: Types = 1;
pub(crate) const BOOLEAN: Types = 1 << 1;
/// A number written as an integer: an integer in every draft.
pub(crate) const INT_LITERAL: Types = 1 << 2;
/// An integral number written with a fraction or an exponent (`1.0`): an integer from draft 6 on.
pub(crate) const INT_FLOAT: Types = 1 << 3;
/// A number with a fractional part.
pub(crate) const FRACTION: Types = 1 << 4;
pub(crate) const STRING: Types = 1 << 5;
pub(crate) const ARRAY: Types = 1 << 6;
pub(crate) const OBJECT: Types = 1 << 7;

pub(crate) const INTEGRAL: Types = INT_LITERAL | INT_FLOAT;
pub(crate) const NUMBER: Types = INTEGRAL | FRACTION;
pub(crate) const ANY: Types = u8::MAX;

/// The classes a `type` name admits under `draft`; `None` for a name the validator refuses.
pub(crate) fn named_type(name: &str, draft: Draft) -> Option<Types> {
    Some(match name {
        "null" => NULL,
        "boolean" => BOOLEAN,
        "integer" if draft == Draft::D4 => INT_LITERAL,
        "integer" => INTEGRAL,
        "number" => NUMBER,
        "string" => STRING,
        "array" => ARRAY,
        "object" => OBJECT,
        _ => return None,
    })
}

/// The classes a `type` keyword admits; `None` when the keyword is malformed.
pub(crate) fn type_keyword(value: &Value, draft: Draft) -> Option<Types> {
    match value {
        Value::String(name) => named_type(name, draft),
        Value::Array(names) => names.iter().try_fold(0, |acc, name| {
            name.as_str()
                .and_then(|name| named_type(name, draft))
                .map(|bits| acc | bits)
        }),
        _ => None,
    }
}

/// Human names of the classes in `types`, for messages.
pub(crate) fn describe(types: Types) -> String {
    let mut names = Vec::new();
    if types & NULL != 0 {
        names.push("null");
    }
    if types & BOOLEAN != 0 {
        names.push("boolean");
    }
    match types & NUMBER {
        NUMBER => names.push("number"),
        INTEGRAL => names.push("integer"),
        bits => {
            if bits & INT_LITERAL != 0 {
                names.push("integer");
            }
            if bits & INT_FLOAT != 0 {
                names.push("integral number written with a fraction (e.g. 1.0)");
            }
            if bits & FRACTION != 0 {
                names.push("non-integral number");
            }
        }
    }
    if types & STRING != 0 {
        names.push("string");
    }
    if types & ARRAY != 0 {
        names.push("array");
    }
    if types & OBJECT != 0 {
        names.push("object");
    }
    names.join(", ")
}

/// The class of a value as it was parsed (one representation).
pub(crate) fn class_of(value: &Value) -> Types {
    match value {
        Value::Null => NULL,
        Value::Bool(_) => BOOLEAN,
        Value::Number(n) => number_class(n),
        Value::String(_) => STRING,
        Value::Array(_) => ARRAY,
        Value::Object(_) => OBJECT,
    }
}

/// The classes of every value *equal* to `value` under the validator's equality: the number `1`
/// also arrives as `1.0`, which `enum: [1]` accepts but draft 4's `integer` does not.
pub(crate) fn classes_of_equal(value: &Value) -> Types {
    match value {
        Value::Number(n) => number_representations(n),
        other => class_of(other),
    }
}

fn number_class(n: &Number) -> Types {
    if n.is_u64() || n.is_i64() {
        return INT_LITERAL;
    }
    match n.as_f64() {
        Some(f) => float_class(f),
        None => NUMBER,
    }
}

/// What `jsonschema` decides for an `f64` instance: draft 4 calls a float an integer only when
/// its text has an exponent and it is at least 2^63 (`is_written_as_integer`).
fn float_class(f: f64) -> Types {
    if f.fract() != 0.0 {
        return FRACTION;
    }
    let text = Number::from_f64(f)
        .map(|n| n.to_string())
        .unwrap_or_default();
    let literal = if text.contains(['e', 'E']) {
        f.abs() >= 9_223_372_036_854_775_808.0
    } else {
        !text.contains('.')
    };
    if literal { INT_LITERAL } else { INT_FLOAT }
}

fn number_representations(n: &Number) -> Types {
    match Num::of(n) {
        Some(Num::Int(i)) => {
            // An integer also arrives as the float of the same value when one exists.
            let f = i as f64;
            if Num::Float(f).cmp(Num::Int(i)) == Ordering::Equal {
                INT_LITERAL | float_class(f)
            } else {
                INT_LITERAL
            }
        }
        Some(Num::Float(f)) => {
            let mut classes = float_class(f);
            if f.fract() == 0.0
                && (-9_223_372_036_854_775_808.0..18_446_744_073_709_551_616.0).contains(&f)
            {
                classes |= INT_LITERAL;
            }
            classes
        }
        None => NUMBER,
    }
}

/// A finite JSON number held exactly.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Num {
    Int(i128),
    Float(f64),
}

const TWO_127: f64 = 170_141_183_460_469_231_731_687_303_715_884_105_728.0;

impl Num {
    pub(crate) fn of(n: &Number) -> Option<Num> {
        if let Some(u) = n.as_u64() {
            Some(Num::Int(i128::from(u)))
        } else if let Some(i) = n.as_i64() {
            Some(Num::Int(i128::from(i)))
        } else {
            n.as_f64().filter(|f| f.is_finite()).map(Num::Float)
        }
    }

    pub(crate) fn of_value(value: &Value) -> Option<Num> {
        value.as_number().and_then(Num::of)
    }

    /// Exact comparison.
    pub(crate) fn cmp(self, other: Num) -> Ordering {
        match (self, other) {
            (Num::Int(a), Num::Int(b)) => a.cmp(&b),
            (Num::Float(a), Num::Float(b)) => a.partial_cmp(&b).unwrap_or(Ordering::Equal),
            (Num::Int(a), Num::Float(b)) => cmp_int_float(a, b),
            (Num::Float(a), Num::Int(b)) => cmp_int_float(b, a).reverse(),
        }
    }

    pub(crate) fn is_integral(self) -> bool {
        match self {
            Num::Int(_) => true,
            Num::Float(f) => f.fract() == 0.0,
        }
    }

    /// The least integer ≥ self, exactly; `None` past `i128`.
    pub(crate) fn ceil(self) -> Option<Num> {
        match self {
            Num::Int(_) => Some(self),
            Num::Float(f) => to_int(f.ceil()),
        }
    }

    /// The least integer > self, exactly; `None` past `i128`.
    pub(crate) fn next_integer(self) -> Option<Num> {
        match self {
            Num::Int(i) => i.checked_add(1).map(Num::Int),
            Num::Float(f) => match to_int(f.floor())? {
                Num::Int(i) => i.checked_add(1).map(Num::Int),
                Num::Float(_) => None,
            },
        }
    }

    /// The greatest integer ≤ self.
    pub(crate) fn floor(self) -> Option<Num> {
        match self {
            Num::Int(_) => Some(self),
            Num::Float(f) => to_int(f.floor()),
        }
    }

    /// The greatest integer < self.
    pub(crate) fn previous_integer(self) -> Option<Num> {
        match self {
            Num::Int(i) => i.checked_sub(1).map(Num::Int),
            Num::Float(f) => match to_int(f.ceil())? {
                Num::Int(i) => i.checked_sub(1).map(Num::Int),
                Num::Float(_) => None,
            },
        }
    }

    pub(crate) fn as_f64(self) -> f64 {
        match self {
            Num::Int(i) => i as f64,
            Num::Float(f) => f,
        }
    }
}

fn to_int(integral: f64) -> Option<Num> {
    (integral.is_finite() && integral.abs() < TWO_127).then_some(Num::Int(integral as i128))
}

fn cmp_int_float(i: i128, f: f64) -> Ordering {
    if f >= TWO_127 {
        return Ordering::Less;
    }
    if f < -TWO_127 {
        return Ordering::Greater;
    }
    let whole = f.trunc();
    // `whole` is integral and inside i128, so the cast is exact.
    match i.cmp(&(whole as i128)) {
        Ordering::Equal => {
            if f > whole {
                Ordering::Less
            } else if f < whole {
                Ordering::Greater
            } else {
                Ordering::Equal
            }
        }
        other => other,
    }
}

/// JSON equality as `enum`, `const` and `uniqueItems` decide it: numbers by exact value.
/// Iterative, so a deeply nested value cannot exhaust the stack.
pub(crate) fn json_equal(a: &Value, b: &Value) -> bool {
    let mut stack = vec![(a, b)];
    while let Some((a, b)) = stack.pop() {
        match (a, b) {
            (Value::Null, Value::Null) => {}
            (Value::Bool(x), Value::Bool(y)) if x == y => {}
            (Value::String(x), Value::String(y)) if x == y => {}
            (Value::Number(x), Value::Number(y)) => match (Num::of(x), Num::of(y)) {
                (Some(x), Some(y)) if x.cmp(y) == Ordering::Equal => {}
                _ => return false,
            },
            (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
                stack.extend(x.iter().zip(y))
            }
            (Value::Object(x), Value::Object(y)) if x.len() == y.len() => {
                for (key, value) in x {
                    match y.get(key) {
                        Some(other) => stack.push((value, other)),
                        None => return false,
                    }
                }
            }
            _ => return false,
        }
    }
    true
}

/// A size keyword (`minLength`, `maxItems`, …) as the validator reads it: a non-negative integer,
/// saturating at `u64::MAX`; draft 4 takes integer literals only.
pub(crate) fn size_limit(value: &Value, draft: Draft) -> Option<u64> {
    if let Some(limit) = value.as_u64() {
        return Some(limit);
    }
    let f = value.as_f64()?;
    if f >= 18_446_744_073_709_551_616.0 {
        return Some(u64::MAX);
    }
    if draft != Draft::D4 && f >= 0.0 && f.trunc() == f {
        return Some(f as u64);
    }
    None
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn integers_and_floats_compare_exactly() {
        let big = Num::Int(9_007_199_254_740_993);
        assert_eq!(
            big.cmp(Num::Float(9_007_199_254_740_992.0)),
            Ordering::Greater
        );
        assert_eq!(Num::Int(2).cmp(Num::Float(2.5)), Ordering::Less);
        assert_eq!(Num::Int(-2).cmp(Num::Float(-1.5)), Ordering::Less);
        assert_eq!(Num::Int(-1).cmp(Num::Float(-1.5)), Ordering::Greater);
        assert_eq!(Num::Int(3).cmp(Num::Float(3.0)), Ordering::Equal);
    }

    #[test]
    fn one_and_one_point_zero_are_equal_but_of_different_draft_4_classes() {
        assert!(json_equal(&json!(1), &json!(1.0)));
        assert_eq!(class_of(&json!(1)), INT_LITERAL);
        assert_eq!(class_of(&json!(1.0)), INT_FLOAT);
        assert_eq!(classes_of_equal(&json!(1)), INT_LITERAL | INT_FLOAT);
        assert_eq!(classes_of_equal(&json!(0.5)), FRACTION);
        assert_eq!(class_of(&json!(1e300)), INT_LITERAL);
    }

    #[test]
    fn integer_neighbours_are_exact() {
        assert!(matches!(Num::Float(2.5).next_integer(), Some(Num::Int(3))));
        assert!(matches!(Num::Float(2.0).next_integer(), Some(Num::Int(3))));
        assert!(matches!(Num::Float(-2.5).ceil(), Some(Num::Int(-2))));
        assert!(matches!(
            Num::Float(2.0).previous_integer(),
            Some(Num::Int(1))
        ));
    }
}
