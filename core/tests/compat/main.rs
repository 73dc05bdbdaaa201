//! The compatibility checker (`event_processor_core::compat`) tested for what it promises: it
//! is never wrong when it says "compatible" (generated schema pairs and documents, checked with
//! the real validator), it recognises most realistic compatible evolutions (the corpus, whose
//! labels are themselves verified), and the validator behaviours it mirrors still hold.
//!
//! One binary: the checker needs only the core crate, not the backends of `tests/`.

mod common;
mod corpus;
mod fuzz_body;
mod fuzz_smoke;
mod soundness;
mod validator_facts;
