//! Coverage-guided fuzzing of the compatibility checker's soundness: any pair of schemas it
//! calls compatible, with documents the smaller side accepts that the larger refuses, is a bug.
//! The body is shared with the `fuzz_smoke` tests of `core/tests/compat`.

#![no_main]

#[path = "../../core/tests/compat/fuzz_body.rs"]
mod fuzz_body;

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_body::fuzz_check(data));
