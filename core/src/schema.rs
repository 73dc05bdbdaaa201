//! JSON Schema: meta-validation at registration, compilation, and validation of events.
//!
//! Security: `jsonschema` is built with default features off and every validator is built
//! `offline()`, so no `$ref`, `$schema` or `$id` can make the gateway fetch a URL or read a
//! file; a reference that does not resolve inside the document fails compilation (a 400 at
//! registration). `pattern`s use `fancy-regex` with a backtracking limit.

use std::sync::Arc;

use jsonschema::{Draft, PatternOptions, ValidationError, Validator};
use serde::Serialize;
use serde_json::Value;

/// At most this many validation details are reported for one event (API.md).
pub const MAX_REPORTED_ERRORS: usize = 20;

/// Longest validation message returned. Messages quote the failing value, so without a cap a
/// 1 MiB event could come back twenty times over in one error body.
const MAX_MESSAGE_CHARS: usize = 300;

/// Backtracking budget per `pattern` match: catastrophic patterns fail fast instead of stalling.
const REGEX_BACKTRACK_LIMIT: usize = 100_000;

/// One reason why a document does not satisfy a schema, in API.md's shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ValidationIssue {
    /// JSON Pointer (RFC 6901) into the validated document.
    pub instance_path: String,
    /// JSON Pointer into the schema, to the keyword that failed.
    pub schema_path: String,
    /// The failing keyword, e.g. `type` or `required`.
    pub keyword: String,
    pub message: String,
}

impl From<&ValidationError<'_>> for ValidationIssue {
    fn from(error: &ValidationError<'_>) -> Self {
        Self {
            instance_path: error.instance_path().as_str().to_owned(),
            schema_path: error.schema_path().as_str().to_owned(),
            keyword: error.kind().keyword().to_owned(),
            message: truncated(error.to_string()),
        }
    }
}

fn truncated(mut message: String) -> String {
    if let Some((cut, _)) = message.char_indices().nth(MAX_MESSAGE_CHARS) {
        message.truncate(cut);
        message.push('…');
    }
    message
}

/// Why a document cannot be registered as a schema.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    /// `$schema` names a dialect we do not bundle; resolving it would mean fetching it.
    #[error("unsupported $schema {0:?}: use a draft 4, 6, 7, 2019-09 or 2020-12 meta-schema URI")]
    UnsupportedDialect(String),
    /// The document does not satisfy its meta-schema.
    #[error("the schema is not valid against its meta-schema")]
    Invalid(Vec<ValidationIssue>),
    /// It is meta-valid but cannot be compiled, e.g. a `$ref` that does not resolve inside it.
    #[error("the schema cannot be compiled")]
    Uncompilable(#[source] ValidationError<'static>),
}

impl SchemaError {
    /// The details to show the client (capped like validation errors).
    pub fn issues(&self) -> Vec<ValidationIssue> {
        match self {
            SchemaError::Invalid(issues) => issues.clone(),
            _ => Vec::new(),
        }
    }
}

/// A schema compiled once and shared by every event that is validated against it.
#[derive(Clone)]
pub struct CompiledSchema {
    validator: Arc<Validator>,
}

impl std::fmt::Debug for CompiledSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompiledSchema").finish_non_exhaustive()
    }
}

impl CompiledSchema {
    /// Checks `schema` against its meta-schema (draft from `$schema`, default 2020-12) and
    /// compiles it. Never fetches anything.
    pub fn compile(schema: &Value) -> Result<Self, SchemaError> {
        let draft = draft_of(schema)?;
        // `draft_of` rejected unknown dialects, so this picks a bundled meta-schema and
        // resolves nothing remotely.
        let meta = jsonschema::meta::validator_for(schema).map_err(SchemaError::Uncompilable)?;
        let issues: Vec<ValidationIssue> = meta
            .iter_errors(schema)
            .take(MAX_REPORTED_ERRORS)
            .map(|e| ValidationIssue::from(&e))
            .collect();
        if !issues.is_empty() {
            return Err(SchemaError::Invalid(issues));
        }
        let validator = jsonschema::options()
            .with_draft(draft)
            .offline()
            .with_pattern_options(
                PatternOptions::fancy_regex().backtrack_limit(REGEX_BACKTRACK_LIMIT),
            )
            .build(schema)
            .map_err(SchemaError::Uncompilable)?;
        Ok(Self {
            validator: Arc::new(validator),
        })
    }

    /// Validates an event; on failure returns at most [`MAX_REPORTED_ERRORS`] issues.
    pub fn validate(&self, instance: &Value) -> Result<(), Vec<ValidationIssue>> {
        // Fast path: `is_valid` short-circuits and allocates nothing for a valid event.
        if self.validator.is_valid(instance) {
            return Ok(());
        }
        Err(self
            .validator
            .iter_errors(instance)
            .take(MAX_REPORTED_ERRORS)
            .map(|e| ValidationIssue::from(&e))
            .collect())
    }
}

fn draft_of(schema: &Value) -> Result<Draft, SchemaError> {
    match schema.get("$schema") {
        None => Ok(Draft::Draft202012),
        Some(uri) => {
            let detected = Draft::default().detect(schema);
            if detected == Draft::Unknown {
                Err(SchemaError::UnsupportedDialect(match uri {
                    Value::String(s) => s.chars().take(200).collect(),
                    other => other.to_string().chars().take(200).collect(),
                }))
            } else {
                Ok(detected)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn draft_defaults_to_2020_12_and_follows_dollar_schema() {
        // `prefixItems` exists only from 2020-12; under draft 7 it is an unknown keyword.
        let schema = json!({"prefixItems": [{"type": "string"}]});
        assert!(
            CompiledSchema::compile(&schema)
                .unwrap()
                .validate(&json!([1]))
                .is_err()
        );
        let draft7 = json!({"$schema": "http://json-schema.org/draft-07/schema#", "prefixItems": [{"type": "string"}]});
        assert!(
            CompiledSchema::compile(&draft7)
                .unwrap()
                .validate(&json!([1]))
                .is_ok()
        );
    }

    #[test]
    fn an_unknown_dialect_is_refused_without_fetching_it() {
        let schema = json!({"$schema": "http://169.254.169.254/latest/meta-data/"});
        assert!(matches!(
            CompiledSchema::compile(&schema),
            Err(SchemaError::UnsupportedDialect(_))
        ));
    }

    #[test]
    fn a_remote_ref_is_refused_at_compile_time() {
        for reference in [
            "http://169.254.169.254/latest/meta-data/",
            "file:///etc/passwd",
            "other.json",
        ] {
            let schema = json!({"$ref": reference});
            assert!(
                matches!(
                    CompiledSchema::compile(&schema),
                    Err(SchemaError::Uncompilable(_))
                ),
                "{reference}"
            );
        }
    }

    #[test]
    fn a_ref_that_does_not_resolve_inside_the_document_is_refused() {
        let schema = json!({"$ref": "#/$defs/missing"});
        assert!(matches!(
            CompiledSchema::compile(&schema),
            Err(SchemaError::Uncompilable(_))
        ));
    }

    #[test]
    fn local_and_recursive_refs_work() {
        let schema = json!({
            "$defs": {"node": {"type": "object", "properties": {"next": {"$ref": "#/$defs/node"}}}},
            "$ref": "#/$defs/node"
        });
        let compiled = CompiledSchema::compile(&schema).unwrap();
        assert!(compiled.validate(&json!({"next": {"next": {}}})).is_ok());
        assert!(compiled.validate(&json!({"next": {"next": 3}})).is_err());
    }

    #[test]
    fn validation_details_are_json_pointers_and_capped_at_20() {
        let schema = json!({"type": "array", "items": {"type": "string"}});
        let compiled = CompiledSchema::compile(&schema).unwrap();
        let issues = compiled
            .validate(&json!((0..50).collect::<Vec<_>>()))
            .unwrap_err();
        assert_eq!(issues.len(), MAX_REPORTED_ERRORS);
        assert_eq!(issues[3].instance_path, "/3");
        assert_eq!(issues[3].schema_path, "/items/type");
        assert_eq!(issues[3].keyword, "type");
    }

    #[test]
    fn messages_quoting_a_huge_value_are_truncated() {
        let compiled = CompiledSchema::compile(&json!({"type": "integer"})).unwrap();
        let issues = compiled.validate(&json!("é".repeat(100_000))).unwrap_err();
        assert_eq!(issues[0].message.chars().count(), MAX_MESSAGE_CHARS + 1);
        assert!(issues[0].message.ends_with('…'));
    }

    #[test]
    fn a_catastrophic_pattern_fails_instead_of_hanging() {
        let schema = json!({"type": "string", "pattern": "^(a+)+$"});
        let compiled = CompiledSchema::compile(&schema).unwrap();
        let hostile = format!("{}!", "a".repeat(40_000));
        // Either rejected as not matching or as over the backtrack limit: never accepted.
        assert!(compiled.validate(&json!(hostile)).is_err());
    }
}

#[cfg(test)]
mod hostile {
    use serde_json::{Value, json};

    use super::*;

    fn nested(keyword: &str, depth: usize, leaf: Value) -> Value {
        (0..depth).fold(leaf, |inner, _| match keyword {
            "allOf" => json!({"allOf": [inner]}),
            k => json!({k: inner}),
        })
    }

    fn compile_and_validate_on_a_worker_stack(
        schema: Value,
        instance: Value,
    ) -> Result<bool, String> {
        // Tokio worker threads have 2 MiB stacks: test on one of that size.
        std::thread::Builder::new()
            .stack_size(2 * 1024 * 1024)
            .spawn(move || {
                let compiled = CompiledSchema::compile(&schema).map_err(|e| e.to_string())?;
                Ok(compiled.validate(&instance).is_ok())
            })
            .unwrap()
            .join()
            .unwrap()
    }

    #[test]
    fn a_self_referencing_schema_neither_hangs_nor_overflows() {
        // A reference cycle with no other constraint accepts everything; what matters is that
        // compilation and validation terminate on a worker-sized stack.
        for schema in [
            json!({"$ref": "#"}),
            json!({"$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"}),
            json!({"allOf": [{"$ref": "#"}]}),
        ] {
            let result =
                compile_and_validate_on_a_worker_stack(schema.clone(), json!({"a": [1, {"b": 2}]}));
            assert_eq!(result, Ok(true), "{schema}");
        }
        let recursive_tree =
            json!({"type": "object", "properties": {"child": {"$ref": "#"}}, "required": ["v"]});
        let deep = (0..120).fold(json!({"v": 1}), |inner, _| json!({"v": 1, "child": inner}));
        assert_eq!(
            compile_and_validate_on_a_worker_stack(recursive_tree.clone(), deep),
            Ok(true)
        );
        let broken = (0..120).fold(json!({}), |inner, _| json!({"v": 1, "child": inner}));
        assert_eq!(
            compile_and_validate_on_a_worker_stack(recursive_tree, broken),
            Ok(false)
        );
    }

    #[test]
    fn schemas_and_instances_nested_to_the_parser_limit_are_evaluated_correctly() {
        let instance = (0..126).fold(json!(1), |inner, _| json!([inner]));
        // (keyword, expected): `items` reaches the integer leaf; an even number of `not`s is the
        // integer type itself; `allOf` likewise; `additionalProperties` ignores arrays.
        for (keyword, expected) in [
            ("items", true),
            ("not", false),
            ("allOf", false),
            ("additionalProperties", true),
        ] {
            let schema = nested(keyword, 126, json!({"type": "integer"}));
            let result = compile_and_validate_on_a_worker_stack(schema, instance.clone());
            assert_eq!(result, Ok(expected), "{keyword}");
        }
    }
}
