//! Kafka: librdkafka's in-process mock cluster, and tansu, a separate Kafka-protocol broker
//! process started by `scripts/test`.

mod contract;
mod stream;
mod unconfirmed;
