//! The serverless shape on moto_server: every function's `events/` payloads through the
//! Lambda request path, the whole API end to end on DynamoDB + Kinesis, and Kinesis retries.

mod consumer;
mod contract;
mod e2e;
mod functions;
mod retries;
mod upgrade;
