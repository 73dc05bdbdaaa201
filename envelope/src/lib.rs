//! The CloudEvents 1.0 envelope of an event the gateway publishes (API.md, "What is
//! published"), in one place for both sides of the stream: the gateway's core writes it
//! (`event_processor_core::envelope`, which re-exports it) and consumers read it back
//! (`examples/kinesis-consumer`). Only the type and its serde live here, so that a consumer
//! depends on serde alone, not on the gateway's HTTP layer, validator or SDKs.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

pub const SPEC_VERSION: &str = "1.0";
pub const DATA_CONTENT_TYPE: &str = "application/json";

/// A CloudEvents 1.0 event in structured mode, exactly as API.md publishes it (a Kinesis
/// record's data). `D` is the data: already serialized JSON on the gateway's way out, a
/// [`Value`] or a type of the consumer's own when read back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CloudEvent<D = Value> {
    pub specversion: String,
    /// The gateway's event id, a UUID v7: the same on every copy of a retried publish.
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
    pub data: D,
}

impl CloudEvent<Box<RawValue>> {
    /// The same event with its data parsed, as a reader of the stream gets it.
    pub fn parsed(&self) -> Result<CloudEvent, serde_json::Error> {
        Ok(CloudEvent {
            specversion: self.specversion.clone(),
            id: self.id.clone(),
            source: self.source.clone(),
            event_type: self.event_type.clone(),
            time: self.time.clone(),
            dataschema: self.dataschema.clone(),
            datacontenttype: self.datacontenttype.clone(),
            data: serde_json::from_str(self.data.get())?,
        })
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;
    use serde_json::json;

    use super::*;

    fn document() -> Value {
        json!({
            "specversion": "1.0",
            "id": "0190a0b0-0000-7000-8000-000000000001",
            "source": "/SpongeBob",
            "type": "Fruits",
            "time": "2024-07-01T12:00:00Z",
            "dataschema": "/SpongeBob/Fruits/schema?version=1",
            "datacontenttype": "application/json",
            "data": {"fruit": "pineapple"}
        })
    }

    #[test]
    fn a_published_document_reads_into_a_typed_data() {
        #[derive(Debug, Deserialize, PartialEq)]
        struct Fruit {
            fruit: String,
        }

        let event: CloudEvent<Fruit> = serde_json::from_value(document()).unwrap();

        assert_eq!(event.event_type, "Fruits");
        assert_eq!(event.data.fruit, "pineapple");
    }

    #[test]
    fn the_type_attribute_is_named_type_on_the_wire() {
        let event: CloudEvent = serde_json::from_value(document()).unwrap();

        assert_eq!(serde_json::to_value(&event).unwrap(), document());
    }

    #[test]
    fn raw_data_parses_to_the_same_event() {
        let raw: CloudEvent<Box<RawValue>> = serde_json::from_str(&document().to_string()).unwrap();

        assert_eq!(
            raw.parsed().unwrap(),
            serde_json::from_value::<CloudEvent>(document()).unwrap()
        );
    }
}
