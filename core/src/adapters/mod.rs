//! Adapters: the ports implemented over real backends, each behind its cargo feature.

#[cfg(feature = "kafka")]
pub mod kafka;
pub mod memory;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "sqlite")]
pub mod sqlite;
