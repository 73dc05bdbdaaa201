//! The verified-token cache: a repeat token skips the signature check, an expired one is
//! never served, and the cache stays within its bound.

use crate::common;

use std::thread::sleep;
use std::time::Duration;

use common::*;
use event_processor_core::auth::{Action, AuthError};
use serde_json::json;

#[test]
fn a_second_verification_of_the_same_token_skips_the_signature_check() {
    let verifier = verifier();
    let header = bearer(&rs256(&claims()));
    let first = verifier.verify(Some(&header)).unwrap();
    assert_eq!(verifier.signature_checks(), 1);
    for _ in 0..5 {
        assert_eq!(verifier.verify(Some(&header)).unwrap(), first);
    }
    assert_eq!(
        verifier.signature_checks(),
        1,
        "cache hits must not re-verify"
    );
    assert_eq!(verifier.cached_tokens(), 1);
}

#[test]
fn a_cache_hit_keeps_the_principal_and_its_scopes() {
    let verifier = verifier();
    let header = bearer(&es256(&claims_with(json!({"scope": "beta:read"})))).to_string();
    verifier.verify(Some(&header)).unwrap();
    let cached = verifier.verify(Some(&header)).unwrap();
    assert!(cached.allows(Action::Read, "beta"));
    assert!(!cached.allows(Action::Send, "alpha"));
    assert_eq!(cached.subject(), Some("producer-1"));
}

#[test]
fn a_different_token_pays_its_own_signature_check() {
    let verifier = verifier();
    verifier.verify(Some(&bearer(&rs256(&claims())))).unwrap();
    verifier.verify(Some(&bearer(&es256(&claims())))).unwrap();
    assert_eq!(verifier.signature_checks(), 2);
}

#[test]
fn a_tampered_copy_of_a_cached_token_is_not_served_from_the_cache() {
    let verifier = verifier();
    let token = rs256(&claims());
    verifier.verify(Some(&bearer(&token))).unwrap();
    // Same header and payload, one signature character changed.
    let mut tampered = token.into_bytes();
    let last = tampered.len() - 2;
    tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    assert!(matches!(
        verifier.verify(Some(&bearer(&tampered))),
        Err(AuthError::BadSignature)
    ));
    assert_eq!(verifier.signature_checks(), 2);
}

#[test]
fn a_refused_token_is_not_cached() {
    let verifier = verifier();
    let header = bearer(&rs256(&claims_with(json!({"aud": "billing"}))));
    for _ in 0..3 {
        assert!(matches!(
            verifier.verify(Some(&header)),
            Err(AuthError::WrongAudience)
        ));
    }
    assert_eq!(verifier.signature_checks(), 3);
    assert_eq!(verifier.cached_tokens(), 0);
}

#[test]
fn a_cached_token_is_checked_again_once_past_its_exp() {
    let verifier = verifier();
    // Two seconds: with one, the first check could already fall on `exp` and not cache.
    let exp = now() + 2;
    let header = bearer(&rs256(&claims_with(json!({"exp": exp}))));
    verifier.verify(Some(&header)).unwrap();
    verifier.verify(Some(&header)).unwrap();
    assert_eq!(verifier.signature_checks(), 1);
    while now() <= exp {
        sleep(Duration::from_millis(100));
    }
    // Past exp the cache no longer answers. The full check still accepts it inside the 60 s
    // leeway (refusal after exp + 60 s is a_token_expired_120_seconds_ago_is_refused, and a
    // unit test in verify.rs refuses a cached token with the leeway set to 0).
    verifier.verify(Some(&header)).unwrap();
    assert_eq!(verifier.signature_checks(), 2);
}

#[test]
fn a_token_accepted_only_within_the_leeway_is_not_cached() {
    let verifier = verifier();
    let header = bearer(&es256(&claims_with(json!({"exp": now() - 30}))));
    verifier.verify(Some(&header)).unwrap();
    verifier.verify(Some(&header)).unwrap();
    assert_eq!(verifier.signature_checks(), 2);
    assert_eq!(verifier.cached_tokens(), 0);
}

#[test]
fn the_cache_is_bounded() {
    let verifier = verifier().with_cache_capacity(4);
    let headers: Vec<String> = (0..20)
        .map(|i| {
            bearer(&rs256(&claims_with(
                json!({"sub": format!("producer-{i}")}),
            )))
        })
        .collect();
    for header in &headers {
        verifier.verify(Some(header)).unwrap();
    }
    assert!(
        verifier.cached_tokens() <= 4,
        "{} cached",
        verifier.cached_tokens()
    );
    assert_eq!(verifier.signature_checks(), 20);
}

#[test]
fn a_cache_of_capacity_zero_caches_nothing() {
    let verifier = verifier().with_cache_capacity(0);
    let header = bearer(&rs256(&claims()));
    verifier.verify(Some(&header)).unwrap();
    verifier.verify(Some(&header)).unwrap();
    assert_eq!(verifier.signature_checks(), 2);
}
