//! Shared test support: the adapter contract suites (the same behaviour checked for every
//! `SchemaStore` and every `EventStream` implementation) and small helpers.
//!
//! A backend's test file instantiates the suites with a constructor:
//! ```text
//! event_processor_tests::schema_store_contract!(async { my_store().await });
//! event_processor_tests::event_stream_contract!(async { (stream.clone(), source.clone()) });
//! ```

pub mod api;
#[cfg(feature = "aws")]
pub mod aws;
pub mod contract;
pub mod fault_proxy;
pub mod idempotency;
#[cfg(feature = "kafka")]
pub mod kafka;
#[cfg(feature = "kafka")]
pub mod kafka_faults;
pub mod lifecycle;
#[cfg(feature = "postgres")]
pub mod postgres;

use std::time::Duration;

use event_processor_core::domain::{ClientId, EventName};
use event_processor_core::retry::Deadline;

/// A client name no other test (or earlier run against a shared backend) uses.
pub fn unique_client() -> ClientId {
    ClientId::parse(&format!("t{}", uuid_simple())).expect("generated names are valid")
}

/// The deadline of a port call made by a test: generous, so that only a real hang fails it.
pub fn deadline() -> Deadline {
    Deadline::after(Duration::from_secs(30))
}

pub fn event_name(name: &str) -> EventName {
    EventName::parse(name).expect("test event names are valid")
}

fn uuid_simple() -> String {
    event_processor_core::domain::EventId::new()
        .as_uuid()
        .simple()
        .to_string()
}
