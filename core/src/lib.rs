//! Event Processor core: the domain, the business functions, the ports they need, the adapters
//! that implement them, and the one HTTP layer every runtime (Lambda, `serve`) mounts.

pub mod adapters;
pub mod config;
pub mod domain;
pub mod envelope;
pub mod http;
#[cfg(feature = "lambda")]
pub mod lambda;
pub mod ports;
pub mod processor;
pub mod schema;

pub use config::{App, ConfigError, WarmUp};
pub use processor::{ItemOutcome, ProcessError, Processor, Registered};
