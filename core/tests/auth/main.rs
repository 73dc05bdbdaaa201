//! Authentication and authorization (`event_processor_core::auth`), for real: tokens signed
//! with the keys in `core/tests/keys/` (RSA and P-256, plus keys the gateway must refuse), every
//! hostile token of the contract refused, the scope rule as a full matrix, the verified-token
//! cache, and minting for local use round-tripped through the verifier.

mod cache;
mod common;
mod jwks;
mod mint;
mod scope;
mod verify;
