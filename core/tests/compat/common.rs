//! Shared by the soundness, corpus and fuzz-smoke tests: the gateway's validator, and documents
//! generated from a schema (plus mutations of them) to probe an inclusion the checker claims.

#![allow(dead_code)]

use serde_json::{Map, Value, json};

/// The validator exactly as the gateway builds it (`core/src/schema.rs`); `None` when the
/// gateway would refuse the schema.
pub fn compile(schema: &Value) -> Option<jsonschema::Validator> {
    let draft = match schema.get("$schema") {
        None => jsonschema::Draft::Draft202012,
        Some(_) => {
            let detected = jsonschema::Draft::default().detect(schema);
            if detected == jsonschema::Draft::Unknown {
                return None;
            }
            detected
        }
    };
    let meta = jsonschema::meta::validator_for(schema).ok()?;
    if !meta.is_valid(schema) {
        return None;
    }
    jsonschema::options()
        .with_draft(draft)
        .offline()
        .with_pattern_options(jsonschema::PatternOptions::fancy_regex().backtrack_limit(100_000))
        .build(schema)
        .ok()
}

/// A small deterministic PRNG (xorshift64*), so generated documents replay from a seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }

    pub fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    pub fn pick<'v, T>(&mut self, items: &'v [T]) -> &'v T {
        &items[self.below(items.len())]
    }
}

/// Values that sit on the edges the validator distinguishes: integer vs float spellings, 2^53,
/// multibyte characters, near-duplicates.
pub fn edge_values() -> Vec<Value> {
    vec![
        json!(null),
        json!(true),
        json!(false),
        json!(0),
        json!(1),
        json!(-1),
        json!(2),
        json!(3),
        json!(1.0),
        json!(0.0),
        json!(-0.0),
        json!(0.5),
        json!(1.5),
        json!(2.5),
        json!(-0.5),
        json!(0.1),
        json!(0.30000000000000004),
        json!(1e20),
        json!(9_007_199_254_740_993_u64),
        json!(9_007_199_254_740_992.0),
        json!(u64::MAX),
        json!(i64::MIN),
        json!(""),
        json!("a"),
        json!("ab"),
        json!("abc"),
        json!("b"),
        json!("x-1"),
        json!("🦀"),
        json!("é"),
        json!("a@b.co"),
        json!("2020-01-01"),
        json!("1.2.3.4"),
        json!("12"),
        json!([]),
        json!([1]),
        json!([1, 1.0]),
        json!(["a", 1]),
        json!([[]]),
        json!({}),
        json!({"a": 1}),
        json!({"a": "x"}),
        json!({"b": null}),
        json!({"a": 1, "b": 2, "c": 3}),
        json!({"x-1": true}),
    ]
}

const NAMES: [&str; 8] = ["a", "b", "c", "x-1", "aa", "ba", "zz", ""];

/// Documents meant to be valid under `root` (many are not; callers filter with the validator),
/// and mutations of them.
pub fn documents(root: &Value, seed: u64, count: usize) -> Vec<Value> {
    let mut generator = Generator {
        root,
        rng: Rng::new(seed),
    };
    let mut out = Vec::with_capacity(count * 2);
    for _ in 0..count {
        let doc = generator.value(root, 0);
        let mutant = generator.mutate(doc.clone(), 0);
        out.push(doc);
        out.push(mutant);
    }
    out.extend(edge_values());
    out
}

struct Generator<'a> {
    root: &'a Value,
    rng: Rng,
}

fn resolve<'v>(root: &'v Value, reference: &str) -> Option<&'v Value> {
    let pointer = reference.strip_prefix('#')?;
    if pointer.is_empty() {
        return Some(root);
    }
    root.pointer(pointer)
}

fn number(n: f64, as_integer_if_possible: bool) -> Value {
    if as_integer_if_possible && n.fract() == 0.0 && n.abs() < 9e15 {
        json!(n as i64)
    } else {
        serde_json::Number::from_f64(n).map_or(json!(0), Value::Number)
    }
}

/// Same value, other spelling: `1` ↔ `1.0`.
fn respell(value: &Value) -> Value {
    match value {
        Value::Number(n) if n.is_f64() => {
            let f = n.as_f64().unwrap_or(0.0);
            if f.fract() == 0.0 && f.abs() < 9e15 {
                json!(f as i64)
            } else {
                value.clone()
            }
        }
        Value::Number(n) => number(n.as_f64().unwrap_or(0.0), false),
        Value::Array(items) => Value::Array(items.iter().map(respell).collect()),
        Value::Object(map) => {
            Value::Object(map.iter().map(|(k, v)| (k.clone(), respell(v))).collect())
        }
        other => other.clone(),
    }
}

impl Generator<'_> {
    fn random(&mut self, depth: usize) -> Value {
        let edges = edge_values();
        let mut value = self.rng.pick(&edges).clone();
        if depth < 2 && self.rng.chance(20) {
            value = match self.rng.below(2) {
                0 => Value::Array(
                    (0..self.rng.below(3))
                        .map(|_| self.random(depth + 1))
                        .collect(),
                ),
                _ => {
                    let mut map = Map::new();
                    for _ in 0..self.rng.below(3) {
                        map.insert((*self.rng.pick(&NAMES)).to_owned(), self.random(depth + 1));
                    }
                    Value::Object(map)
                }
            };
        }
        value
    }

    fn value(&mut self, schema: &Value, depth: usize) -> Value {
        if depth > 6 || self.rng.chance(5) {
            return self.random(depth);
        }
        let Value::Object(map) = schema else {
            return self.random(depth);
        };
        if let Some(Value::String(reference)) = map.get("$ref") {
            if self.rng.chance(85) {
                if let Some(target) = resolve(self.root, reference) {
                    return self.value(target, depth + 1);
                }
            }
        }
        for keyword in ["allOf", "anyOf", "oneOf"] {
            if let Some(Value::Array(branches)) = map.get(keyword) {
                if !branches.is_empty() && self.rng.chance(40) {
                    let branch = &branches[self.rng.below(branches.len())];
                    return self.value(branch, depth + 1);
                }
            }
        }
        if let Some(then) = map.get("then") {
            if self.rng.chance(30) {
                return self.value(then, depth + 1);
            }
        }
        if let Some(Value::Array(options)) = map.get("enum") {
            if !options.is_empty() && self.rng.chance(85) {
                let option = options[self.rng.below(options.len())].clone();
                return if self.rng.chance(30) {
                    respell(&option)
                } else {
                    option
                };
            }
        }
        if let Some(constant) = map.get("const") {
            if self.rng.chance(85) {
                return if self.rng.chance(30) {
                    respell(constant)
                } else {
                    constant.clone()
                };
            }
        }
        let types: Vec<&str> = match map.get("type") {
            Some(Value::String(t)) => vec![t.as_str()],
            Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
            _ => {
                let mut guess = Vec::new();
                let has = |keys: &[&str]| keys.iter().any(|k| map.contains_key(*k));
                if has(&[
                    "properties",
                    "required",
                    "additionalProperties",
                    "patternProperties",
                    "minProperties",
                    "maxProperties",
                    "propertyNames",
                    "dependentRequired",
                    "dependencies",
                ]) {
                    guess.push("object");
                }
                if has(&[
                    "items",
                    "prefixItems",
                    "minItems",
                    "maxItems",
                    "contains",
                    "uniqueItems",
                ]) {
                    guess.push("array");
                }
                if has(&["minLength", "maxLength", "pattern", "format"]) {
                    guess.push("string");
                }
                if has(&[
                    "minimum",
                    "maximum",
                    "exclusiveMinimum",
                    "exclusiveMaximum",
                    "multipleOf",
                ]) {
                    guess.push("number");
                }
                if guess.is_empty() || self.rng.chance(15) {
                    guess.push(*self.rng.pick(&[
                        "null", "boolean", "integer", "number", "string", "array", "object",
                    ]));
                }
                guess
            }
        };
        if types.is_empty() {
            return self.random(depth);
        }
        let chosen = *self.rng.pick(&types);
        match chosen {
            "null" => Value::Null,
            "boolean" => json!(self.rng.chance(50)),
            "integer" | "number" => self.number(map, chosen == "integer"),
            "string" => self.string(map),
            "array" => self.array(map, depth),
            "object" => self.object(map, depth),
            _ => self.random(depth),
        }
    }

    fn number(&mut self, map: &Map<String, Value>, integer: bool) -> Value {
        let mut candidates: Vec<f64> =
            vec![0.0, 1.0, -1.0, 2.0, 0.5, 9_007_199_254_740_992.0, 1e20];
        for keyword in ["minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"] {
            if let Some(b) = map.get(keyword).and_then(Value::as_f64) {
                candidates.extend([
                    b,
                    b + 1.0,
                    b - 1.0,
                    b + 0.5,
                    b - 0.5,
                    b.floor(),
                    b.ceil(),
                    b + 0.25,
                ]);
            }
        }
        if let Some(m) = map.get("multipleOf").and_then(Value::as_f64) {
            for k in -2..=4 {
                candidates.push(m * f64::from(k));
            }
            candidates.push(m * 0.5);
        }
        let mut n = *self.rng.pick(&candidates);
        if integer && self.rng.chance(80) {
            n = n.round();
        }
        number(n, self.rng.chance(70))
    }

    fn string(&mut self, map: &Map<String, Value>) -> Value {
        if map.contains_key("pattern") || map.contains_key("format") || self.rng.chance(20) {
            let pool = [
                "a",
                "ab",
                "abc",
                "xa",
                "1",
                "a1",
                "12",
                "",
                "a@b.co",
                "2020-01-01",
                "1.2.3.4",
                "x-1",
                "ba",
            ];
            return json!(*self.rng.pick(&pool));
        }
        let min = map.get("minLength").and_then(Value::as_u64).unwrap_or(0) as usize;
        let max = map
            .get("maxLength")
            .and_then(Value::as_u64)
            .map_or(min + 3, |m| m as usize);
        let len = if max >= min {
            min + self.rng.below(max - min + 2)
        } else {
            min
        };
        let alphabet = ['a', 'b', 'x', '-', '1', '🦀', 'é'];
        json!(
            (0..len)
                .map(|_| *self.rng.pick(&alphabet))
                .collect::<String>()
        )
    }

    fn array(&mut self, map: &Map<String, Value>, depth: usize) -> Value {
        let prefix: &[Value] = match (map.get("prefixItems"), map.get("items")) {
            (Some(Value::Array(p)), _) => p,
            (_, Some(Value::Array(p))) => p,
            _ => &[],
        };
        let rest = match map.get("items") {
            Some(Value::Array(_)) => map.get("additionalItems"),
            other => other,
        };
        let min = map.get("minItems").and_then(Value::as_u64).unwrap_or(0) as usize;
        let max = map
            .get("maxItems")
            .and_then(Value::as_u64)
            .map_or(min + 3, |m| m as usize);
        let len = if max >= min {
            min + self.rng.below((max - min).min(4) + 1)
        } else {
            min
        };
        let mut items = Vec::new();
        for i in 0..len {
            let schema = prefix.get(i).or(rest);
            let item = match (schema, map.get("contains")) {
                (_, Some(contains)) if self.rng.chance(40) => self.value(contains, depth + 1),
                (Some(schema), _) => self.value(schema, depth + 1),
                (None, _) => self.random(depth + 1),
            };
            items.push(item);
        }
        if map.get("uniqueItems") == Some(&Value::Bool(true)) && self.rng.chance(70) {
            let mut unique: Vec<Value> = Vec::new();
            for item in items {
                if !unique.contains(&item) {
                    unique.push(item);
                }
            }
            items = unique;
        }
        Value::Array(items)
    }

    fn object(&mut self, map: &Map<String, Value>, depth: usize) -> Value {
        let props = map.get("properties").and_then(Value::as_object);
        let mut out = Map::new();
        let mut wanted: Vec<String> = Vec::new();
        if let Some(Value::Array(required)) = map.get("required") {
            wanted.extend(required.iter().filter_map(Value::as_str).map(str::to_owned));
        }
        if let Some(props) = props {
            for name in props.keys() {
                if self.rng.chance(60) {
                    wanted.push(name.clone());
                }
            }
        }
        for _ in 0..self.rng.below(3) {
            if self.rng.chance(40) {
                wanted.push((*self.rng.pick(&NAMES)).to_owned());
            }
        }
        for key in ["dependentRequired", "dependencies"] {
            if let Some(Value::Object(deps)) = map.get(key) {
                for (trigger, names) in deps {
                    if wanted.contains(trigger) {
                        if let Value::Array(names) = names {
                            wanted
                                .extend(names.iter().filter_map(Value::as_str).map(str::to_owned));
                        }
                    }
                }
            }
        }
        for name in wanted {
            if out.contains_key(&name) {
                continue;
            }
            let schema = props
                .and_then(|p| p.get(&name))
                .or_else(|| {
                    map.get("patternProperties")
                        .and_then(Value::as_object)
                        .and_then(|p| p.values().next())
                        .filter(|_| self.rng.chance(50))
                })
                .or_else(|| map.get("additionalProperties"));
            let value = match schema {
                Some(schema) => self.value(schema, depth + 1),
                None => self.random(depth + 1),
            };
            out.insert(name, value);
        }
        Value::Object(out)
    }

    /// A near neighbour of `value`: another spelling, a bound ± 1, one member more or less.
    fn mutate(&mut self, value: Value, depth: usize) -> Value {
        match value {
            Value::Array(mut items) if !items.is_empty() && self.rng.chance(60) && depth < 4 => {
                match self.rng.below(3) {
                    0 => {
                        let i = self.rng.below(items.len());
                        let item = std::mem::take(&mut items[i]);
                        items[i] = self.mutate(item, depth + 1);
                    }
                    1 => {
                        items.pop();
                    }
                    _ => {
                        let extra = items[self.rng.below(items.len())].clone();
                        items.push(extra);
                    }
                }
                Value::Array(items)
            }
            Value::Object(mut map) if !map.is_empty() && self.rng.chance(60) && depth < 4 => {
                let keys: Vec<String> = map.keys().cloned().collect();
                let key = self.rng.pick(&keys).clone();
                match self.rng.below(3) {
                    0 => {
                        let member = map.remove(&key).unwrap_or(Value::Null);
                        let mutated = self.mutate(member, depth + 1);
                        map.insert(key, mutated);
                    }
                    1 => {
                        map.remove(&key);
                    }
                    _ => {
                        let random = self.random(depth + 1);
                        map.insert((*self.rng.pick(&NAMES)).to_owned(), random);
                    }
                }
                Value::Object(map)
            }
            Value::Number(n) => {
                let f = n.as_f64().unwrap_or(0.0);
                match self.rng.below(4) {
                    0 => respell(&Value::Number(n)),
                    1 => number(f + 1.0, n.is_i64() || n.is_u64()),
                    2 => number(f - 0.5, false),
                    _ => number(-f, n.is_i64()),
                }
            }
            Value::String(s) => match self.rng.below(3) {
                0 => json!(format!("{s}a")),
                1 => json!(s.chars().skip(1).collect::<String>()),
                _ => json!(format!("🦀{s}")),
            },
            other => {
                if self.rng.chance(50) {
                    self.random(depth)
                } else {
                    other
                }
            }
        }
    }
}
