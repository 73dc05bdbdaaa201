//! Local keys and tokens: mint → verify round trips through `jwks_for`'s document, for RS256
//! and ES256 and each key encoding, and the keys and inputs `mint` refuses.

use crate::common;

use std::time::Duration;

use common::*;
use event_processor_core::auth::{
    Action, JwtVerifier, MintError, generate_es256_key, jwks_for, mint,
};
use serde_json::Value;

const HOUR: Duration = Duration::from_secs(3600);

fn round_trip(pem: &[u8], kid: &str) {
    let jwks = serde_json::to_vec(&jwks_for(pem, kid).unwrap()).unwrap();
    let verifier = JwtVerifier::new(&jwks, ISSUER, AUDIENCE).unwrap();
    let token = mint(
        pem,
        kid,
        ISSUER,
        AUDIENCE,
        "SpongeBob:send SpongeBob:register",
        HOUR,
    )
    .unwrap();
    let principal = verifier.verify(Some(&bearer(&token))).unwrap();
    assert!(principal.allows(Action::Send, "SpongeBob"));
    assert!(principal.allows(Action::Register, "SpongeBob"));
    assert!(!principal.allows(Action::Read, "SpongeBob"));
}

fn header_of(token: &str) -> Value {
    jsonwebtoken::decode_header(token)
        .map(|h| serde_json::to_value(h).unwrap())
        .unwrap()
}

fn claims_of(token: &str) -> Value {
    jsonwebtoken::dangerous::insecure_decode::<Value>(token)
        .unwrap()
        .claims
}

#[test]
fn an_rs256_token_minted_with_a_pkcs8_key_verifies_against_its_jwks() {
    round_trip(&key("rsa-a.pem"), "rsa-a");
}

#[test]
fn an_rs256_token_minted_with_a_pkcs1_key_verifies_against_its_jwks() {
    round_trip(&key("rsa-b.pkcs1.pem"), "rsa-b");
}

#[test]
fn an_es256_token_minted_with_a_pkcs8_key_verifies_against_its_jwks() {
    round_trip(&key("ec-a.pem"), "ec-a");
}

#[test]
fn an_es256_token_minted_with_a_sec1_key_verifies_against_its_jwks() {
    round_trip(&key("ec-b.sec1.pem"), "ec-b");
}

#[test]
fn a_generated_key_mints_tokens_that_verify() {
    let pem = generate_es256_key().unwrap();
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
    round_trip(pem.as_bytes(), "local");
}

#[test]
fn two_generated_keys_differ() {
    assert_ne!(generate_es256_key().unwrap(), generate_es256_key().unwrap());
}

#[test]
fn the_algorithm_follows_the_key_type() {
    let rs = mint(&key("rsa-a.pem"), "k", ISSUER, AUDIENCE, "", HOUR).unwrap();
    let es = mint(&key("ec-a.pem"), "k", ISSUER, AUDIENCE, "", HOUR).unwrap();
    assert_eq!(header_of(&rs)["alg"], "RS256");
    assert_eq!(header_of(&es)["alg"], "ES256");
    assert_eq!(header_of(&es)["kid"], "k");
}

#[test]
fn a_minted_token_carries_issuer_audience_scope_and_ttl() {
    let token = mint(
        &key("ec-a.pem"),
        "k",
        ISSUER,
        AUDIENCE,
        "a:send  b:read",
        HOUR,
    )
    .unwrap();
    let claims = claims_of(&token);
    assert_eq!(claims["iss"], ISSUER);
    assert_eq!(claims["aud"], AUDIENCE);
    assert_eq!(claims["scope"], "a:send b:read");
    let ttl = claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap();
    assert_eq!(ttl, 3600);
}

#[test]
fn the_jwks_holds_only_the_public_key_with_kid_alg_and_use() {
    for (file, kty, alg) in [("rsa-a.pem", "RSA", "RS256"), ("ec-a.pem", "EC", "ES256")] {
        let jwks = jwks_for(&key(file), "kid-1").unwrap();
        let keys = jwks["keys"].as_array().unwrap();
        assert_eq!(keys.len(), 1);
        let jwk = keys[0].as_object().unwrap();
        assert_eq!(jwk["kty"], kty);
        assert_eq!(jwk["kid"], "kid-1");
        assert_eq!(jwk["alg"], alg);
        assert_eq!(jwk["use"], "sig");
        for private in ["d", "p", "q", "dp", "dq", "qi", "k"] {
            assert!(
                !jwk.contains_key(private),
                "{file}: private member {private}"
            );
        }
    }
}

#[test]
fn a_token_minted_with_another_kid_is_refused_by_the_jwks() {
    let pem = key("ec-a.pem");
    let jwks = serde_json::to_vec(&jwks_for(&pem, "published").unwrap()).unwrap();
    let verifier = JwtVerifier::new(&jwks, ISSUER, AUDIENCE).unwrap();
    let token = mint(&pem, "other", ISSUER, AUDIENCE, "", HOUR).unwrap();
    assert!(verifier.verify(Some(&bearer(&token))).is_err());
}

#[test]
fn a_p384_key_is_refused() {
    let err = mint(&key("ec-p384.pem"), "k", ISSUER, AUDIENCE, "", HOUR).unwrap_err();
    assert!(matches!(err, MintError::UnsupportedKey(_)), "{err:?}");
}

#[test]
fn an_ed25519_key_is_refused() {
    let err = jwks_for(&key("ed25519.pem"), "k").unwrap_err();
    assert!(matches!(err, MintError::UnsupportedKey(_)), "{err:?}");
}

#[test]
fn a_1024_bit_rsa_key_is_refused() {
    let err = mint(&key("rsa-1024.pem"), "k", ISSUER, AUDIENCE, "", HOUR).unwrap_err();
    assert!(matches!(err, MintError::KeyRejected(_)), "{err:?}");
}

#[test]
fn a_public_key_is_refused() {
    let err = mint(&key("rsa-a.pub.pem"), "k", ISSUER, AUDIENCE, "", HOUR).unwrap_err();
    assert!(matches!(err, MintError::UnsupportedKey(_)), "{err:?}");
}

#[test]
fn a_file_that_is_not_pem_is_refused() {
    let err = mint(b"not a key", "k", ISSUER, AUDIENCE, "", HOUR).unwrap_err();
    assert!(matches!(err, MintError::NotPem(_)), "{err:?}");
}

#[test]
fn an_unknown_scope_is_refused_as_a_likely_typo() {
    let err = mint(
        &key("ec-a.pem"),
        "k",
        ISSUER,
        AUDIENCE,
        "SpongeBob:send SpongeBob:sned",
        HOUR,
    )
    .unwrap_err();
    assert!(
        matches!(err, MintError::UnknownScope(ref s) if s == "SpongeBob:sned"),
        "{err:?}"
    );
}

#[test]
fn an_empty_kid_or_a_zero_ttl_is_refused() {
    let pem = key("ec-a.pem");
    assert!(matches!(
        mint(&pem, "", ISSUER, AUDIENCE, "", HOUR),
        Err(MintError::EmptyKid)
    ));
    assert!(matches!(jwks_for(&pem, ""), Err(MintError::EmptyKid)));
    let err = mint(&pem, "k", ISSUER, AUDIENCE, "", Duration::from_millis(500)).unwrap_err();
    assert!(matches!(err, MintError::InvalidTtl), "{err:?}");
}
