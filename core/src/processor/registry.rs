//! Registry: registering a pair's schema, reading it back, listing a client's pairs.

use serde_json::Value;

use super::cache::CachedSchema;
use super::{ProcessError, Processor};
use crate::domain::{ClientId, EventName, SchemaVersion};
use crate::ports::{Insert, RegisteredEvent, RegisteredSchema};
use crate::retry::Deadline;
use crate::schema::CompiledSchema;

/// Outcome of a registration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registered {
    /// A new pair (201).
    Created(SchemaVersion),
    /// The identical schema was already registered (200).
    Unchanged(SchemaVersion),
}

impl Registered {
    pub fn version(self) -> SchemaVersion {
        match self {
            Registered::Created(v) | Registered::Unchanged(v) => v,
        }
    }
}

impl Processor {
    /// Registers `schema` for the pair: first time → `Created(1)`; the same schema again
    /// (compared as JSON values) → `Unchanged`; a different one → `SchemaConflict`.
    #[tracing::instrument(skip(self, schema, deadline), fields(%client, %event))]
    pub async fn register_event(
        &self,
        client: &ClientId,
        event: &EventName,
        schema: Value,
        deadline: Deadline,
    ) -> Result<Registered, ProcessError> {
        let compiled = CompiledSchema::compile(&schema)?;
        // Per-pair stream resources first: if they cannot be made, nothing is registered, and
        // an identical re-registration retries them.
        self.stream.prepare(client, event, deadline).await?;
        match self
            .schemas
            .insert_if_absent(client, event, &schema, deadline)
            .await?
        {
            Insert::Inserted(version) => {
                self.cache
                    .insert(client, event, CachedSchema::new(version, compiled))
                    .await;
                Ok(Registered::Created(version))
            }
            Insert::Existing(existing) if existing.schema == schema => {
                Ok(Registered::Unchanged(existing.version))
            }
            Insert::Existing(existing) => Err(ProcessError::SchemaConflict {
                client: client.clone(),
                event: event.clone(),
                version: existing.version,
            }),
        }
    }

    /// The pair's registered schema, read from the store.
    #[tracing::instrument(skip(self, deadline), fields(%client, %event))]
    pub async fn get_event_schema(
        &self,
        client: &ClientId,
        event: &EventName,
        deadline: Deadline,
    ) -> Result<RegisteredSchema, ProcessError> {
        self.schemas
            .get(client, event, deadline)
            .await?
            .ok_or_else(|| ProcessError::NotRegistered {
                client: client.clone(),
                event: event.clone(),
            })
    }

    /// Every pair registered by `client`, sorted by event name (empty for an unknown client).
    #[tracing::instrument(skip(self, deadline), fields(%client))]
    pub async fn list_registered_events(
        &self,
        client: &ClientId,
        deadline: Deadline,
    ) -> Result<Vec<RegisteredEvent>, ProcessError> {
        Ok(self.schemas.list(client, deadline).await?)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::tests::{deadline, fixture, names, person_schema};
    use super::*;
    use crate::ports::SchemaStore;
    use crate::schema::SchemaError;

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
    async fn a_different_schema_for_a_registered_pair_conflicts() {
        let f = fixture();
        let (client, event) = names("a", "Person");
        f.processor
            .register_event(&client, &event, person_schema(), deadline())
            .await
            .unwrap();
        let error = f
            .processor
            .register_event(&client, &event, json!({"type": "array"}), deadline())
            .await
            .unwrap_err();
        assert!(
            matches!(error, ProcessError::SchemaConflict { .. }),
            "{error:?}"
        );
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
            f.store.get(&client, &event, deadline()).await.unwrap(),
            None
        );
    }

    #[tokio::test]
    async fn listing_client_a_does_not_show_client_b() {
        let f = fixture();
        let (a, fruits) = names("a", "Fruits");
        let (b, colors) = names("b", "Colors");
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
                version: SchemaVersion::FIRST
            }]
        );
    }
}
