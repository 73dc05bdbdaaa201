//! Adapters: the ports implemented over real backends, each behind its cargo feature.

pub mod memory;
#[cfg(feature = "sqlite")]
pub mod sqlite;
