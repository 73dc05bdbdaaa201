//! Event Processor core: the domain, the business functions, the ports they need, the adapters
//! that implement them, and the one HTTP layer every runtime (Lambda, `serve`) mounts.
//!
//! The hexagon: [`domain`], [`schema`], [`envelope`] and [`processor`] know no AWS, no SQL and
//! no HTTP framework; they speak to the outside through [`ports`], which [`adapters`] implement
//! per backend. [`http`] is the one edge that turns requests into processor calls; [`config`]
//! parses the environment and [`app`] wires it all together.

pub mod adapters;
pub mod app;
pub mod auth;
pub mod compat;
pub mod config;
pub mod domain;
pub mod envelope;
pub mod error;
pub mod http;
pub mod import;
pub mod metrics;
pub mod ports;
pub mod processor;
pub mod retry;
pub mod schema;

pub use app::{App, AppError, WarmUp};
pub use processor::{ProcessError, Processor};
