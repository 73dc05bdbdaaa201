//! Registry: schema versions under compatibility rules, each pair's mode, reading a version
//! back, listing a client's pairs.
//!
//! A registration reads the pair's history, decides (identical to a version? compatible under
//! the mode?) and writes the next version with [`SchemaStore::insert_version`], which lets only
//! one writer have each version number. A registration that loses that race plans again
//! against the winner's version, so two different schemas never both become version N and each
//! new version was checked against the one before it.

use std::sync::Arc;

use serde_json::Value;

use super::cache::Validator;
use super::{ProcessError, Processor};
use crate::compat::{self, Incompatibility, Mode};
use crate::domain::{ClientId, EventName, SchemaVersion};
use crate::ports::{Insert, RegisteredEvent, RegisteredSchema, VersionInfo};
use crate::retry::Deadline;
use crate::schema::CompiledSchema;

/// Outcome of a registration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registered {
    /// A new version (201).
    Created(SchemaVersion),
    /// The identical schema (as a JSON value) is already this version (200).
    Unchanged(SchemaVersion),
}

impl Registered {
    pub fn version(self) -> SchemaVersion {
        match self {
            Registered::Created(v) | Registered::Unchanged(v) => v,
        }
    }
}

/// What `check_compatibility` found; nothing was registered.
#[derive(Debug, Clone, PartialEq)]
pub struct CompatibilityReport {
    pub compatible: bool,
    pub mode: Mode,
    pub incompatibilities: Vec<Incompatibility>,
    /// The version a registration would get (an identical schema's own), if compatible.
    pub version: Option<SchemaVersion>,
}

/// What registering a schema after a pair's history would do.
#[derive(Debug)]
enum Plan {
    Identical(SchemaVersion),
    New(SchemaVersion),
    Incompatible(Vec<Incompatibility>),
}

fn plan(
    client: &ClientId,
    event: &EventName,
    history: &[RegisteredSchema],
    schema: &Value,
    mode: Mode,
) -> Result<Plan, ProcessError> {
    if let Some(same) = history.iter().find(|v| v.schema == *schema) {
        return Ok(Plan::Identical(same.version));
    }
    let next = match history.last() {
        None => SchemaVersion::FIRST,
        Some(latest) => latest
            .version
            .next()
            .ok_or_else(|| ProcessError::VersionsExhausted {
                client: client.clone(),
                event: event.clone(),
            })?,
    };
    let earlier: Vec<(u32, &Value)> = history
        .iter()
        .map(|v| (v.version.get(), &v.schema))
        .collect();
    let incompatibilities = compat::check(mode, schema, &earlier);
    Ok(if incompatibilities.is_empty() {
        Plan::New(next)
    } else {
        Plan::Incompatible(incompatibilities)
    })
}

impl Processor {
    /// Registers `schema` for the pair: identical to any existing version → `Unchanged` with
    /// that version; otherwise the next version if the pair's compatibility mode allows it
    /// (`Created`), else `Incompatible` listing why.
    #[tracing::instrument(skip(self, schema, deadline), fields(%client, %event))]
    pub async fn register_event(
        &self,
        client: &ClientId,
        event: &EventName,
        schema: Value,
        deadline: Deadline,
    ) -> Result<Registered, ProcessError> {
        let compiled = CompiledSchema::compile(&schema)?;
        let mode = self.mode_of(client, event, deadline).await?.0;
        // Each round either ends or follows a version another registration just wrote; the
        // deadline bounds the rounds (a store call past it fails as unavailable).
        loop {
            let history = self.schemas.history(client, event, deadline).await?;
            let version = match plan(client, event, &history, &schema, mode)? {
                Plan::Incompatible(incompatibilities) => {
                    return Err(ProcessError::Incompatible {
                        mode,
                        incompatibilities,
                    });
                }
                Plan::Identical(version) => {
                    // Per-pair stream resources are retried by an identical re-registration.
                    self.stream.prepare(client, event, deadline).await?;
                    return Ok(Registered::Unchanged(version));
                }
                Plan::New(version) => version,
            };
            // Stream resources first: if they cannot be made, nothing is registered.
            self.stream.prepare(client, event, deadline).await?;
            match self
                .schemas
                .insert_version(client, event, version, &schema, deadline)
                .await?
            {
                Insert::Inserted => {
                    let validator = Arc::new(Validator { version, compiled });
                    self.cache.set_latest(client, event, validator).await;
                    return Ok(Registered::Created(version));
                }
                // Our own earlier attempt, or a concurrent registration of the same schema.
                Insert::Taken(winner) if winner.schema == schema => {
                    return Ok(Registered::Unchanged(winner.version));
                }
                Insert::Taken(winner) => {
                    tracing::debug!(version = %winner.version, "another registration took the version; planning again");
                }
            }
        }
    }

    /// What [`Processor::register_event`] would do with `schema`, without registering it.
    #[tracing::instrument(skip(self, schema, deadline), fields(%client, %event))]
    pub async fn check_compatibility(
        &self,
        client: &ClientId,
        event: &EventName,
        schema: &Value,
        deadline: Deadline,
    ) -> Result<CompatibilityReport, ProcessError> {
        CompiledSchema::compile(schema)?;
        let mode = self.mode_of(client, event, deadline).await?.0;
        let history = self.schemas.history(client, event, deadline).await?;
        Ok(match plan(client, event, &history, schema, mode)? {
            Plan::Identical(version) | Plan::New(version) => CompatibilityReport {
                compatible: true,
                mode,
                incompatibilities: Vec::new(),
                version: Some(version),
            },
            Plan::Incompatible(incompatibilities) => CompatibilityReport {
                compatible: false,
                mode,
                incompatibilities,
                version: None,
            },
        })
    }

    /// A version of the pair's schema (`None`: the latest), read from the store.
    #[tracing::instrument(skip(self, deadline), fields(%client, %event))]
    pub async fn get_event_schema(
        &self,
        client: &ClientId,
        event: &EventName,
        version: Option<SchemaVersion>,
        deadline: Deadline,
    ) -> Result<RegisteredSchema, ProcessError> {
        if let Some(found) = self.schemas.get(client, event, version, deadline).await? {
            return Ok(found);
        }
        Err(self.missing(client, event, version, deadline).await)
    }

    /// Why the pair has no `version`: it is not registered at all, or has no such version.
    pub(super) async fn missing(
        &self,
        client: &ClientId,
        event: &EventName,
        version: Option<SchemaVersion>,
        deadline: Deadline,
    ) -> ProcessError {
        let Some(version) = version else {
            return Self::not_registered(client, event);
        };
        match self.schemas.get(client, event, None, deadline).await {
            Ok(Some(_)) => ProcessError::VersionNotFound {
                client: client.clone(),
                event: event.clone(),
                version,
            },
            Ok(None) => Self::not_registered(client, event),
            Err(error) => error.into(),
        }
    }

    /// Every version of the pair, ascending.
    #[tracing::instrument(skip(self, deadline), fields(%client, %event))]
    pub async fn list_versions(
        &self,
        client: &ClientId,
        event: &EventName,
        deadline: Deadline,
    ) -> Result<Vec<VersionInfo>, ProcessError> {
        let versions = self.schemas.versions(client, event, deadline).await?;
        if versions.is_empty() {
            return Err(Self::not_registered(client, event));
        }
        Ok(versions)
    }

    /// The pair's compatibility mode, and whether it is the default (the pair has none of its own).
    #[tracing::instrument(skip(self, deadline), fields(%client, %event))]
    pub async fn compatibility(
        &self,
        client: &ClientId,
        event: &EventName,
        deadline: Deadline,
    ) -> Result<(Mode, bool), ProcessError> {
        self.require_registered(client, event, deadline).await?;
        self.mode_of(client, event, deadline).await
    }

    /// Sets the pair's own compatibility mode; later registrations are checked under it.
    #[tracing::instrument(skip(self, deadline), fields(%client, %event, %mode))]
    pub async fn set_compatibility(
        &self,
        client: &ClientId,
        event: &EventName,
        mode: Mode,
        deadline: Deadline,
    ) -> Result<(), ProcessError> {
        self.require_registered(client, event, deadline).await?;
        Ok(self
            .schemas
            .set_compatibility(client, event, mode, deadline)
            .await?)
    }

    /// Every pair registered by `client` with its latest version, sorted by event name (empty
    /// for an unknown client).
    #[tracing::instrument(skip(self, deadline), fields(%client))]
    pub async fn list_registered_events(
        &self,
        client: &ClientId,
        deadline: Deadline,
    ) -> Result<Vec<RegisteredEvent>, ProcessError> {
        Ok(self.schemas.list(client, deadline).await?)
    }

    async fn require_registered(
        &self,
        client: &ClientId,
        event: &EventName,
        deadline: Deadline,
    ) -> Result<(), ProcessError> {
        match self.schemas.get(client, event, None, deadline).await? {
            Some(_) => Ok(()),
            None => Err(Self::not_registered(client, event)),
        }
    }

    async fn mode_of(
        &self,
        client: &ClientId,
        event: &EventName,
        deadline: Deadline,
    ) -> Result<(Mode, bool), ProcessError> {
        Ok(
            match self.schemas.compatibility(client, event, deadline).await? {
                Some(mode) => (mode, false),
                None => (self.default_compatibility, true),
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::tests::{deadline, fixture, names, person_schema, version};
    use super::*;
    use crate::adapters::memory::{MemoryEventStream, MemorySchemaStore};
    use crate::ports::SchemaStore;
    use crate::schema::SchemaError;

    fn with_optional_nickname() -> Value {
        let mut schema = person_schema();
        schema["properties"]["nickname"] = json!({"type": "string"});
        schema
    }

    #[tokio::test]
    async fn first_registration_creates_version_1_and_the_same_schema_again_is_unchanged() {
        let f = fixture();
        let (client, event) = names("a", "Person");
        let first = f
            .processor
            .register_event(&client, &event, person_schema(), deadline())
            .await
            .unwrap();
        let again = f
            .processor
            .register_event(&client, &event, person_schema(), deadline())
            .await
            .unwrap();
        assert_eq!(first, Registered::Created(SchemaVersion::FIRST));
        assert_eq!(again, Registered::Unchanged(SchemaVersion::FIRST));
    }

    #[tokio::test]
    async fn a_compatible_schema_becomes_the_next_version() {
        let f = fixture();
        let (client, event) = names("a", "Person");
        f.processor
            .register_event(&client, &event, person_schema(), deadline())
            .await
            .unwrap();

        // A closed model gains an optional property: every old event is still valid.
        let second = f
            .processor
            .register_event(&client, &event, with_optional_nickname(), deadline())
            .await
            .unwrap();

        assert_eq!(second, Registered::Created(version(2)));
        let latest = f
            .processor
            .get_event_schema(&client, &event, None, deadline())
            .await
            .unwrap();
        assert_eq!(
            (latest.version, latest.schema),
            (version(2), with_optional_nickname())
        );
    }

    #[tokio::test]
    async fn a_schema_identical_to_an_earlier_version_is_that_version() {
        let f = fixture();
        let (client, event) = names("a", "Person");
        for schema in [person_schema(), with_optional_nickname()] {
            f.processor
                .register_event(&client, &event, schema, deadline())
                .await
                .unwrap();
        }
        f.processor
            .set_compatibility(&client, &event, Mode::None, deadline())
            .await
            .unwrap();

        let again = f
            .processor
            .register_event(&client, &event, person_schema(), deadline())
            .await
            .unwrap();

        assert_eq!(again, Registered::Unchanged(SchemaVersion::FIRST));
    }

    #[tokio::test]
    async fn an_incompatible_schema_is_refused_with_its_incompatibilities_and_not_stored() {
        let f = fixture();
        let (client, event) = names("a", "Person");
        f.processor
            .register_event(&client, &event, person_schema(), deadline())
            .await
            .unwrap();
        let mut stricter = person_schema();
        stricter["required"] = json!(["name", "age", "email"]);
        stricter["properties"]["email"] = json!({"type": "string"});

        let error = f
            .processor
            .register_event(&client, &event, stricter, deadline())
            .await
            .unwrap_err();

        let ProcessError::Incompatible {
            mode,
            incompatibilities,
        } = error
        else {
            panic!("expected Incompatible, got {error:?}");
        };
        assert_eq!(mode, Mode::Backward);
        assert!(
            incompatibilities
                .iter()
                .any(|i| i.version == 1 && i.path.starts_with("/required")),
            "{incompatibilities:?}"
        );
        let versions = f
            .processor
            .list_versions(&client, &event, deadline())
            .await
            .unwrap();
        assert_eq!(versions.len(), 1);
    }

    #[tokio::test]
    async fn mode_none_accepts_any_new_schema() {
        let f = fixture();
        let (client, event) = names("a", "Person");
        f.processor
            .register_event(&client, &event, person_schema(), deadline())
            .await
            .unwrap();
        f.processor
            .set_compatibility(&client, &event, Mode::None, deadline())
            .await
            .unwrap();

        let registered = f
            .processor
            .register_event(&client, &event, json!({"type": "array"}), deadline())
            .await
            .unwrap();

        assert_eq!(registered, Registered::Created(version(2)));
        assert_eq!(
            f.processor
                .compatibility(&client, &event, deadline())
                .await
                .unwrap(),
            (Mode::None, false)
        );
    }

    #[tokio::test]
    async fn the_default_mode_is_configurable_and_reported_as_default() {
        let store = Arc::new(MemorySchemaStore::new());
        let processor = Processor::new(store, Arc::new(MemoryEventStream::new()))
            .with_default_compatibility(Mode::Full);
        let (client, event) = names("a", "Person");
        processor
            .register_event(&client, &event, person_schema(), deadline())
            .await
            .unwrap();

        assert_eq!(
            processor
                .compatibility(&client, &event, deadline())
                .await
                .unwrap(),
            (Mode::Full, true)
        );
    }

    #[tokio::test]
    async fn a_dry_run_reports_without_registering() {
        let f = fixture();
        let (client, event) = names("a", "Person");
        let first = f
            .processor
            .check_compatibility(&client, &event, &person_schema(), deadline())
            .await
            .unwrap();
        assert_eq!(first.version, Some(SchemaVersion::FIRST));
        assert!(first.compatible);
        f.processor
            .register_event(&client, &event, person_schema(), deadline())
            .await
            .unwrap();

        let next = f
            .processor
            .check_compatibility(&client, &event, &with_optional_nickname(), deadline())
            .await
            .unwrap();
        let broken = f
            .processor
            .check_compatibility(&client, &event, &json!({"type": "string"}), deadline())
            .await
            .unwrap();

        assert_eq!((next.compatible, next.version), (true, Some(version(2))));
        assert_eq!((broken.compatible, broken.version), (false, None));
        assert!(!broken.incompatibilities.is_empty());
        assert_eq!(
            f.store
                .versions(&client, &event, deadline())
                .await
                .unwrap()
                .len(),
            1
        );
    }

    #[tokio::test]
    async fn unknown_versions_and_pairs_are_told_apart() {
        let f = fixture();
        let (client, event) = names("a", "Person");
        let unregistered = f
            .processor
            .get_event_schema(&client, &event, Some(version(1)), deadline())
            .await
            .unwrap_err();
        assert!(matches!(unregistered, ProcessError::NotRegistered { .. }));
        f.processor
            .register_event(&client, &event, person_schema(), deadline())
            .await
            .unwrap();

        let missing = f
            .processor
            .get_event_schema(&client, &event, Some(version(7)), deadline())
            .await
            .unwrap_err();

        assert!(
            matches!(missing, ProcessError::VersionNotFound { version: v, .. } if v == version(7)),
            "{missing:?}"
        );
    }

    #[tokio::test]
    async fn concurrent_registrations_of_different_schemas_never_share_a_version() {
        let f = fixture();
        let (client, event) = names("a", "Race");
        f.processor
            .register_event(&client, &event, json!({"type": "object"}), deadline())
            .await
            .unwrap();
        f.processor
            .set_compatibility(&client, &event, Mode::None, deadline())
            .await
            .unwrap();

        let tasks: Vec<_> = (0..20)
            .map(|i| {
                let (processor, client, event) =
                    (f.processor.clone(), client.clone(), event.clone());
                tokio::spawn(async move {
                    let schema = json!({"type": "object", "title": format!("contender {i}")});
                    processor
                        .register_event(&client, &event, schema, deadline())
                        .await
                        .unwrap()
                })
            })
            .collect();
        let mut created = Vec::new();
        for task in tasks {
            match task.await.unwrap() {
                Registered::Created(version) => created.push(version.get()),
                other => panic!("every schema is new: {other:?}"),
            }
        }

        created.sort_unstable();
        assert_eq!(created, (2..=21).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn an_invalid_schema_is_refused_with_reasons_and_not_stored() {
        let f = fixture();
        let (client, event) = names("a", "Person");
        let error = f
            .processor
            .register_event(&client, &event, json!({"type": "random_type"}), deadline())
            .await
            .unwrap_err();
        let ProcessError::InvalidSchema(SchemaError::Invalid(issues)) = error else {
            panic!("expected InvalidSchema, got {error:?}");
        };
        assert!(!issues.is_empty());
        assert_eq!(
            f.store
                .get(&client, &event, None, deadline())
                .await
                .unwrap(),
            None
        );
    }

    #[tokio::test]
    async fn listing_client_a_does_not_show_client_b_and_shows_the_latest_version() {
        let f = fixture();
        let (a, fruits) = names("a", "Fruits");
        let (b, colors) = names("b", "Colors");
        f.processor
            .register_event(&a, &fruits, json!({"type": "object"}), deadline())
            .await
            .unwrap();
        f.processor
            .register_event(&a, &fruits, json!({}), deadline())
            .await
            .unwrap();
        f.processor
            .register_event(&b, &colors, json!({}), deadline())
            .await
            .unwrap();

        let listed = f
            .processor
            .list_registered_events(&a, deadline())
            .await
            .unwrap();

        assert_eq!(
            listed,
            vec![RegisteredEvent {
                client: a,
                event: fruits,
                version: version(2)
            }]
        );
    }
}
