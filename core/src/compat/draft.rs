//! Which keywords a draft asserts, and how a document's `$ref`s resolve, exactly as the gateway's
//! validator (`jsonschema` 0.61, offline, default features off) reads them.
//!
//! Anything this module cannot pin down (an unknown `$schema`, an embedded `$schema` or `$id`
//! that would switch dialect or base URI, a reference that is not a plain JSON Pointer fragment)
//! is reported as "not resolvable", and the caller turns that into `unproven`.

use serde_json::{Map, Value};

/// The dialects the gateway accepts. Ordered by age.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Draft {
    D4,
    D6,
    D7,
    D2019,
    D2020,
}

impl Draft {
    /// The draft named by `$schema` (absent: 2020-12, the gateway's default).
    pub(crate) fn of_document(root: &Value) -> Result<Draft, String> {
        match root.as_object().and_then(|o| o.get("$schema")) {
            None => Ok(Draft::D2020),
            Some(Value::String(uri)) => Draft::from_uri(uri)
                .ok_or_else(|| format!("the dialect {:?} is not one the gateway knows", clip(uri))),
            Some(_) => Err("`$schema` is not a string".to_owned()),
        }
    }

    /// Mirrors `referencing::Draft::from_schema_uri`.
    fn from_uri(uri: &str) -> Option<Draft> {
        Some(match uri.trim_end_matches('#') {
            "https://json-schema.org/draft/2020-12/schema"
            | "http://json-schema.org/draft/2020-12/schema"
            | "https://json-schema.org/schema"
            | "http://json-schema.org/schema" => Draft::D2020,
            "https://json-schema.org/draft/2019-09/schema"
            | "http://json-schema.org/draft/2019-09/schema" => Draft::D2019,
            "https://json-schema.org/draft-07/schema"
            | "http://json-schema.org/draft-07/schema" => Draft::D7,
            "https://json-schema.org/draft-06/schema"
            | "http://json-schema.org/draft-06/schema" => Draft::D6,
            "https://json-schema.org/draft-04/schema"
            | "http://json-schema.org/draft-04/schema" => Draft::D4,
            _ => return None,
        })
    }

    /// Whether `$ref` replaces its siblings (drafts 4–7) rather than applying beside them.
    pub(crate) fn ref_overrides_siblings(self) -> bool {
        self <= Draft::D7
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Draft::D4 => "draft 4",
            Draft::D6 => "draft 6",
            Draft::D7 => "draft 7",
            Draft::D2019 => "draft 2019-09",
            Draft::D2020 => "draft 2020-12",
        }
    }
}

/// Whether the validator gives `keyword` any effect under `draft` (assertion or applicator).
/// Every other keyword is an annotation or unknown, and is ignored. `then`/`else`, `minContains`/
/// `maxContains` and `additionalItems` only act through `if`, `contains` and `items`.
pub(crate) fn is_active(draft: Draft, keyword: &str) -> bool {
    match keyword {
        "$ref"
        | "additionalItems"
        | "additionalProperties"
        | "allOf"
        | "anyOf"
        | "dependencies"
        | "enum"
        | "items"
        | "maxItems"
        | "maxLength"
        | "maxProperties"
        | "minItems"
        | "minLength"
        | "minProperties"
        | "multipleOf"
        | "not"
        | "oneOf"
        | "pattern"
        | "patternProperties"
        | "properties"
        | "required"
        | "uniqueItems"
        | "maximum"
        | "minimum"
        | "type" => true,
        "format" => draft <= Draft::D7,
        "const" | "contains" | "exclusiveMaximum" | "exclusiveMinimum" | "propertyNames" => {
            draft >= Draft::D6
        }
        "contentMediaType" | "contentEncoding" => matches!(draft, Draft::D6 | Draft::D7),
        "if" => draft >= Draft::D7,
        "$recursiveRef" => draft == Draft::D2019,
        "dependentRequired" | "dependentSchemas" | "unevaluatedItems" | "unevaluatedProperties" => {
            draft >= Draft::D2019
        }
        "prefixItems" | "$dynamicRef" => draft == Draft::D2020,
        _ => false,
    }
}

/// The format validator `format: name` compiles to under `draft`, or `None` when the format is
/// not asserted (2019-09 and later treat `format` as an annotation; unknown names, and the
/// `idn-*` formats that need the `idna` feature the gateway leaves off, are ignored).
/// Two asserted formats with the same key validate identically.
pub(crate) fn asserted_format(draft: Draft, name: &str) -> Option<&'static str> {
    if draft > Draft::D7 {
        return None;
    }
    Some(match name {
        "date" => "date",
        "date-time" => "date-time",
        "email" => "email",
        "hostname" if draft <= Draft::D6 => "hostname-rfc1034",
        "hostname" => "hostname",
        "ipv4" => "ipv4",
        "ipv6" => "ipv6",
        "iri" if draft >= Draft::D7 => "iri",
        "iri-reference" if draft >= Draft::D7 => "iri-reference",
        "json-pointer" if draft >= Draft::D6 => "json-pointer",
        "regex" => "regex",
        "relative-json-pointer" if draft >= Draft::D7 => "relative-json-pointer",
        "time" => "time",
        "uri" => "uri",
        "uri-reference" if draft >= Draft::D6 => "uri-reference",
        "uri-template" if draft >= Draft::D6 => "uri-template",
        _ => return None,
    })
}

/// One schema document, read once.
#[derive(Debug)]
pub(crate) struct Doc<'a> {
    pub(crate) root: &'a Value,
    pub(crate) draft: Draft,
    /// Why nothing about this document can be proven, if so.
    pub(crate) fatal: Option<(&'static str, String)>,
    /// False when an embedded `$id` may change what a `#/...` reference means.
    pub(crate) refs_resolvable: bool,
}

impl<'a> Doc<'a> {
    pub(crate) fn new(root: &'a Value) -> Doc<'a> {
        let (draft, mut fatal) = match Draft::of_document(root) {
            Ok(draft) => (draft, None),
            Err(why) => (Draft::D2020, Some(("$schema", why))),
        };
        let mut refs_resolvable = true;
        // Conservative scan of every nested object, whatever its position: an embedded
        // `$schema` may switch the dialect of a subschema, an embedded id its base URI. A data
        // value (an `enum` member, say) that merely looks like one only costs completeness.
        let mut stack: Vec<&Value> = match root {
            Value::Object(map) => map.values().collect(),
            Value::Array(items) => items.iter().collect(),
            _ => Vec::new(),
        };
        while let Some(value) = stack.pop() {
            match value {
                Value::Object(map) => {
                    if map.get("$schema").is_some_and(Value::is_string) && fatal.is_none() {
                        fatal = Some((
                            "$schema",
                            "an embedded `$schema` may switch the dialect of a subschema"
                                .to_owned(),
                        ));
                    }
                    if map.get("$id").is_some_and(Value::is_string)
                        || (draft == Draft::D4 && map.get("id").is_some_and(Value::is_string))
                    {
                        refs_resolvable = false;
                    }
                    stack.extend(map.values());
                }
                Value::Array(items) => stack.extend(items),
                _ => {}
            }
        }
        Doc {
            root,
            draft,
            fatal,
            refs_resolvable,
        }
    }

    /// The subschema a `$ref` names, with its JSON Pointer, when it is a plain fragment pointer
    /// into this document (`#`, `#/$defs/x`, `#/definitions/x`, …).
    pub(crate) fn resolve(&self, reference: &Value) -> Option<(&'a Value, String)> {
        if !self.refs_resolvable {
            return None;
        }
        let fragment = reference.as_str()?.strip_prefix('#')?;
        // Percent-encoding and characters a URI would have to escape are left unresolved rather
        // than decoded in a way that might differ from the validator's URI handling.
        if !fragment.bytes().all(|b| {
            b.is_ascii_graphic()
                && !matches!(
                    b,
                    b'%' | b'#' | b'"' | b'<' | b'>' | b'\\' | b'^' | b'`' | b'{' | b'|' | b'}'
                )
        }) {
            return None;
        }
        let mut target = self.root;
        if !fragment.is_empty() {
            let pointer = fragment.strip_prefix('/')?;
            for raw in pointer.split('/') {
                let token = unescape(raw)?;
                target = match target {
                    Value::Object(map) => map.get(&token)?,
                    Value::Array(items) => {
                        if token.len() > 1 && token.starts_with('0') {
                            return None;
                        }
                        items.get(token.parse::<usize>().ok()?)?
                    }
                    _ => return None,
                };
            }
        }
        matches!(target, Value::Object(_) | Value::Bool(_)).then(|| (target, fragment.to_owned()))
    }
}

fn unescape(token: &str) -> Option<String> {
    let mut out = String::with_capacity(token.len());
    let mut chars = token.chars();
    while let Some(c) = chars.next() {
        if c == '~' {
            match chars.next() {
                Some('0') => out.push('~'),
                Some('1') => out.push('/'),
                _ => return None,
            }
        } else {
            out.push(c);
        }
    }
    Some(out)
}

/// Keywords that evaluate the instance in place and so may mark properties or items as
/// evaluated for `unevaluated*`.
const IN_PLACE_APPLICATORS: [&str; 11] = [
    "$ref",
    "$dynamicRef",
    "$recursiveRef",
    "allOf",
    "anyOf",
    "oneOf",
    "not",
    "if",
    "dependentSchemas",
    "dependencies",
    "contains",
];

/// Whether `unevaluatedProperties` (or `unevaluatedItems`) of `map` means exactly what
/// `additionalProperties` (the rest of the items) would: with no in-place applicator beside it,
/// the evaluated properties are those `properties`/`patternProperties` cover (the evaluated items
/// those `prefixItems`/`items` cover).
pub(crate) fn unevaluated_is_additional(
    map: &Map<String, Value>,
    draft: Draft,
    items: bool,
) -> bool {
    let keyword = if items {
        "unevaluatedItems"
    } else {
        "unevaluatedProperties"
    };
    if !is_active(draft, keyword) || !map.contains_key(keyword) {
        return false;
    }
    if IN_PLACE_APPLICATORS.iter().any(|k| map.contains_key(*k)) {
        return false;
    }
    if items {
        match map.get("items") {
            None => true,
            Some(Value::Array(_)) => draft == Draft::D2019 && !map.contains_key("additionalItems"),
            Some(_) => false,
        }
    } else {
        !map.contains_key("additionalProperties")
    }
}

/// The schema for properties `properties` and `patternProperties` leave out, and its keyword.
pub(crate) fn additional_properties(
    map: &Map<String, Value>,
    draft: Draft,
) -> Option<(&Value, &'static str)> {
    if let Some(schema) = map.get("additionalProperties") {
        return Some((schema, "additionalProperties"));
    }
    if unevaluated_is_additional(map, draft, false) {
        return map
            .get("unevaluatedProperties")
            .map(|s| (s, "unevaluatedProperties"));
    }
    None
}

/// Appends `token` to a JSON Pointer, escaped per RFC 6901.
pub(crate) fn push_token(pointer: &mut String, token: &str) {
    pointer.push('/');
    for c in token.chars() {
        match c {
            '~' => pointer.push_str("~0"),
            '/' => pointer.push_str("~1"),
            c => pointer.push(c),
        }
    }
}

/// At most 60 characters of `text`, for messages.
pub(crate) fn clip(text: &str) -> String {
    match text.char_indices().nth(60) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// Whether `map` asserts nothing under `draft` (an object of annotations only is `true`).
pub(crate) fn is_trivial(map: &Map<String, Value>, draft: Draft) -> bool {
    map.iter().all(|(keyword, value)| {
        !is_active(draft, keyword)
            || matches!(
                (keyword.as_str(), value),
                (
                    "additionalItems"
                        | "additionalProperties"
                        | "items"
                        | "unevaluatedItems"
                        | "unevaluatedProperties"
                        | "propertyNames",
                    Value::Bool(true)
                ) | ("uniqueItems", Value::Bool(false))
            )
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn drafts_are_detected_like_the_validator_does() {
        let of = |uri: &str| Draft::of_document(&json!({"$schema": uri}));
        assert_eq!(of("http://json-schema.org/draft-07/schema#"), Ok(Draft::D7));
        assert_eq!(of("https://json-schema.org/draft-04/schema"), Ok(Draft::D4));
        assert_eq!(of("https://json-schema.org/schema"), Ok(Draft::D2020));
        assert!(of("https://example.com/custom").is_err());
        assert_eq!(Draft::of_document(&json!({})), Ok(Draft::D2020));
    }

    #[test]
    fn only_plain_pointer_fragments_resolve() {
        let schema = json!({"$defs": {"a~b": {"type": "string"}, "a b": {}}, "items": [true]});
        let doc = Doc::new(&schema);
        assert_eq!(
            doc.resolve(&json!("#/$defs/a~0b")).unwrap().1,
            "/$defs/a~0b"
        );
        assert!(doc.resolve(&json!("#")).is_some());
        assert!(doc.resolve(&json!("#/items/0")).is_some());
        assert!(doc.resolve(&json!("#/$defs/a%20b")).is_none());
        assert!(doc.resolve(&json!("#/$defs")).is_some());
        assert!(doc.resolve(&json!("#/$defs/missing")).is_none());
        assert!(doc.resolve(&json!("other.json#/$defs/a~0b")).is_none());
        assert!(doc.resolve(&json!("#anchor")).is_none());
    }

    #[test]
    fn an_embedded_id_makes_references_unresolvable() {
        let schema = json!({"properties": {"a": {"$id": "http://x/y", "$ref": "#"}}});
        assert!(!Doc::new(&schema).refs_resolvable);
    }
}
