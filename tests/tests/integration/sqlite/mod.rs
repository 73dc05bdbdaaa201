//! The embedded default, for real: SQLite files on disk.

mod contract;
mod gateway;
mod unconfirmed;
