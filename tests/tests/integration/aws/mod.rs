//! The serverless shape on moto_server: every function's `events/` payloads through the
//! Lambda request path, the whole API end to end on DynamoDB + Kinesis, Kinesis retries, and
//! rejections and idempotency keys in the DynamoDB table.

mod contract;
mod e2e;
mod functions;
mod idempotency;
mod rejections;
mod retries;
mod upgrade;
