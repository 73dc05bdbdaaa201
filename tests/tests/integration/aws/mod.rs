//! The serverless shape on moto_server: every function's `events/` payloads through the
//! Lambda request path, the whole API end to end on DynamoDB + Kinesis, Kinesis retries, and
//! which Kinesis failures are unconfirmed rather than unavailable.

mod contract;
mod e2e;
mod functions;
mod retries;
mod unconfirmed;
mod upgrade;
