//! The CloudEvents 1.0 envelope of a published event, built once here and used by every
//! stream adapter (structured JSON for Kinesis and the embedded log, binary-mode headers for Kafka).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::domain::{ClientId, EventId, EventName, SchemaVersion};

pub const SPEC_VERSION: &str = "1.0";
pub const DATA_CONTENT_TYPE: &str = "application/json";

/// A CloudEvents 1.0 event in structured mode, exactly as API.md publishes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CloudEvent {
    pub specversion: String,
    pub id: String,
    /// `/{client}`
    pub source: String,
    /// `{event}`
    #[serde(rename = "type")]
    pub event_type: String,
    /// RFC 3339, UTC.
    pub time: String,
    /// `/{client}/{event}/schema?version=N`
    pub dataschema: String,
    pub datacontenttype: String,
    pub data: Value,
}

/// An accepted event on its way to a stream: the routing keys plus the CloudEvent.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    pub client: ClientId,
    pub event: EventName,
    pub id: EventId,
    pub cloud_event: CloudEvent,
}

impl Envelope {
    /// Wraps a validated event, giving it a fresh UUID v7 id and the current UTC time.
    pub fn new(client: &ClientId, event: &EventName, version: SchemaVersion, data: Value) -> Self {
        let id = EventId::new();
        let time = OffsetDateTime::now_utc()
            .format(&Rfc3339)
            .unwrap_or_else(|_| unreachable!("RFC 3339 formatting of a UTC time cannot fail"));
        Self {
            cloud_event: CloudEvent {
                specversion: SPEC_VERSION.to_owned(),
                id: id.to_string(),
                source: format!("/{client}"),
                event_type: event.as_str().to_owned(),
                time,
                dataschema: format!("/{client}/{event}/schema?version={version}"),
                datacontenttype: DATA_CONTENT_TYPE.to_owned(),
                data,
            },
            client: client.clone(),
            event: event.clone(),
            id,
        }
    }

    /// The CloudEvents structured-mode JSON document (Kinesis record data).
    pub fn to_structured_json(&self) -> Vec<u8> {
        serde_json::to_vec(&self.cloud_event)
            .unwrap_or_else(|_| unreachable!("a CloudEvent of JSON values always serializes"))
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn sample() -> Envelope {
        Envelope::new(
            &ClientId::parse("SpongeBob").unwrap(),
            &EventName::parse("Fruits").unwrap(),
            SchemaVersion::FIRST,
            json!({"fruit": "pineapple"}),
        )
    }

    #[test]
    fn structured_json_carries_every_cloudevents_attribute_of_api_md() {
        let envelope = sample();
        let doc: Value = serde_json::from_slice(&envelope.to_structured_json()).unwrap();
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
    fn structured_json_round_trips() {
        let envelope = sample();
        let back: CloudEvent = serde_json::from_slice(&envelope.to_structured_json()).unwrap();
        assert_eq!(back, envelope.cloud_event);
    }
}
