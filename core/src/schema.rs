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
            message: error.to_string(),
        }
    }
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
    #[error("the schema cannot be compiled: {0}")]
    Uncompilable(String),
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
        let meta = jsonschema::meta::validator_for(schema)
            .map_err(|e| SchemaError::Uncompilable(e.to_string()))?;
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
            .map_err(|e| SchemaError::Uncompilable(e.to_string()))?;
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
