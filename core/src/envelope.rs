//! The CloudEvents 1.0 envelope of a published event, built once here and used by every
//! stream adapter (structured JSON for Kinesis and the embedded log, binary-mode headers for Kafka).
//! The [`CloudEvent`] type is `event_processor_envelope`'s, re-exported: consumers decode the
//! stream with the same type, without depending on this crate.
//!
//! An accepted event's data is serialized exactly once, when its envelope is built: every
//! adapter then writes those bytes (Kafka's record value, SQLite's `data` column, the `data`
//! member of Kinesis' structured document) instead of serializing the event again.

use serde_json::Value;
use serde_json::value::RawValue;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::domain::{ClientId, EventId, EventName, SchemaVersion};

// The envelope type itself lives in its own crate, shared with the stream's consumers
// (examples/kinesis-consumer): the one definition of the attributes' names on the wire.
pub use event_processor_envelope::{CloudEvent, DATA_CONTENT_TYPE, SPEC_VERSION};

/// Why an envelope could not be built or encoded. Neither can happen for the JSON values the
/// HTTP layer parses; the error exists so that an impossible case is reported, not panicked on.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    #[error("the event could not be serialized as JSON")]
    Json(#[from] serde_json::Error),
    #[error("the current time could not be formatted as RFC 3339")]
    Time(#[from] time::error::Format),
}

/// An accepted event on its way to a stream: the routing keys plus the CloudEvent, its data
/// serialized once.
#[derive(Debug, Clone)]
pub struct Envelope {
    pub client: ClientId,
    pub event: EventName,
    pub id: EventId,
    pub cloud_event: CloudEvent<Box<RawValue>>,
}

impl Envelope {
    /// Wraps a validated event, giving it a fresh UUID v7 id and the current UTC time.
    pub fn new(
        client: &ClientId,
        event: &EventName,
        version: SchemaVersion,
        data: &Value,
    ) -> Result<Self, EncodeError> {
        Self::with_id(EventId::new(), client, event, version, data)
    }

    /// As [`Envelope::new`], with a given id (a replayed or retried event keeps its id).
    pub fn with_id(
        id: EventId,
        client: &ClientId,
        event: &EventName,
        version: SchemaVersion,
        data: &Value,
    ) -> Result<Self, EncodeError> {
        let time = OffsetDateTime::now_utc().format(&Rfc3339)?;
        Ok(Self {
            cloud_event: CloudEvent {
                specversion: SPEC_VERSION.to_owned(),
                id: id.to_string(),
                source: format!("/{client}"),
                event_type: event.as_str().to_owned(),
                time,
                dataschema: dataschema(client, event, version),
                datacontenttype: DATA_CONTENT_TYPE.to_owned(),
                data: serde_json::value::to_raw_value(data)?,
            },
            client: client.clone(),
            event: event.clone(),
            id,
        })
    }

    /// The event's JSON, as serialized once (the Kafka record value, the SQLite `data` column).
    pub fn data_json(&self) -> &str {
        self.cloud_event.data.get()
    }

    /// The CloudEvents structured-mode JSON document (Kinesis record data).
    pub fn to_structured_json(&self) -> Result<Vec<u8>, EncodeError> {
        Ok(serde_json::to_vec(&self.cloud_event)?)
    }

    /// The event as a reader of the stream gets it back.
    pub fn to_cloud_event(&self) -> Result<CloudEvent, EncodeError> {
        Ok(self.cloud_event.parsed()?)
    }

    /// CloudEvents binary-mode Kafka headers (the record value is the event's JSON).
    pub fn binary_headers(&self) -> [(&'static str, &str); 7] {
        let ce = &self.cloud_event;
        [
            ("ce_specversion", &ce.specversion),
            ("ce_id", &ce.id),
            ("ce_source", &ce.source),
            ("ce_type", &ce.event_type),
            ("ce_time", &ce.time),
            ("ce_dataschema", &ce.dataschema),
            ("content-type", &ce.datacontenttype),
        ]
    }
}

/// The `dataschema` of an event validated against `version` of the pair's schema: the route
/// that serves that version.
pub fn dataschema(client: &ClientId, event: &EventName, version: SchemaVersion) -> String {
    format!("/{client}/{event}/schema?version={version}")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn sample() -> Envelope {
        Envelope::new(
            &ClientId::parse("SpongeBob").unwrap(),
            &EventName::parse("Fruits").unwrap(),
            SchemaVersion::FIRST,
            &json!({"fruit": "pineapple"}),
        )
        .unwrap()
    }

    #[test]
    fn structured_json_carries_every_cloudevents_attribute_of_api_md() {
        let envelope = sample();
        let doc: Value = serde_json::from_slice(&envelope.to_structured_json().unwrap()).unwrap();
        assert_eq!(doc["specversion"], "1.0");
        assert_eq!(doc["id"], envelope.id.to_string());
        assert_eq!(doc["source"], "/SpongeBob");
        assert_eq!(doc["type"], "Fruits");
        assert_eq!(doc["dataschema"], "/SpongeBob/Fruits/schema?version=1");
        assert_eq!(doc["datacontenttype"], "application/json");
        assert_eq!(doc["data"], json!({"fruit": "pineapple"}));
        let time = OffsetDateTime::parse(doc["time"].as_str().unwrap(), &Rfc3339).unwrap();
        assert_eq!(time.offset(), time::UtcOffset::UTC);
    }

    #[test]
    fn binary_headers_mirror_the_structured_attributes() {
        let envelope = sample();
        let headers = envelope.binary_headers();
        assert_eq!(headers[1], ("ce_id", envelope.cloud_event.id.as_str()));
        assert_eq!(headers[6], ("content-type", "application/json"));
    }

    #[test]
    fn structured_json_reads_back_as_the_same_event() {
        let envelope = sample();
        let back: CloudEvent =
            serde_json::from_slice(&envelope.to_structured_json().unwrap()).unwrap();
        assert_eq!(back, envelope.to_cloud_event().unwrap());
    }

    #[test]
    fn the_data_is_the_event_serialized_once_without_whitespace() {
        let envelope = sample();
        assert_eq!(envelope.data_json(), r#"{"fruit":"pineapple"}"#);
    }

    #[test]
    fn a_given_id_is_kept() {
        let id = EventId::new();
        let envelope = Envelope::with_id(
            id,
            &ClientId::parse("a").unwrap(),
            &EventName::parse("b").unwrap(),
            SchemaVersion::FIRST,
            &json!(1),
        )
        .unwrap();
        assert_eq!(envelope.id, id);
        assert_eq!(envelope.cloud_event.id, id.to_string());
    }
}
