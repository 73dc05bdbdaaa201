//! Loading the JWKS: what a verifier accepts at start, and what stops the start.

use crate::common;

use common::*;
use event_processor_core::auth::{JwksError, JwtVerifier};
use serde_json::{Value, json};

fn load(jwks: &Value) -> Result<JwtVerifier, JwksError> {
    JwtVerifier::new(&serde_json::to_vec(jwks).unwrap(), ISSUER, AUDIENCE)
}

fn published(file: &str, kid: &str) -> Value {
    let jwks: Value = serde_json::from_slice(&jwks(&[(file, kid)])).unwrap();
    jwks["keys"][0].clone()
}

#[test]
fn a_document_that_is_not_a_jwks_is_refused() {
    for doc in [
        json!([]),
        json!({}),
        json!({"keys": {}}),
        json!({"keys": [{"kid": "no-kty"}]}),
    ] {
        assert!(matches!(load(&doc), Err(JwksError::NotJwks(_))), "{doc}");
    }
}

#[test]
fn a_repeated_kid_is_refused() {
    let doc = json!({"keys": [published("rsa-a.pem", "k"), published("ec-a.pem", "k")]});
    assert!(matches!(load(&doc), Err(JwksError::DuplicateKid { ref kid }) if kid == "k"));
}

#[test]
fn a_jwks_without_a_usable_key_is_refused() {
    let doc = json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "ed", "x": "AAAA"}]});
    assert!(matches!(load(&doc), Err(JwksError::NoUsableKey)));
    assert!(matches!(
        load(&json!({"keys": []})),
        Err(JwksError::NoUsableKey)
    ));
}

#[test]
fn keys_without_a_kid_are_skipped() {
    let mut anonymous = published("ec-a.pem", "x");
    anonymous.as_object_mut().unwrap().remove("kid");
    let verifier = load(&json!({"keys": [anonymous, published("rsa-a.pem", "rsa")]})).unwrap();
    assert_eq!(verifier.key_ids(), ["rsa"]);
    let mut only = published("ec-a.pem", "x");
    only.as_object_mut().unwrap().remove("kid");
    let anonymous_only = json!({ "keys": [only] });
    assert!(matches!(load(&anonymous_only), Err(JwksError::NoUsableKey)));
}

#[test]
fn unusable_keys_beside_a_usable_one_are_tolerated() {
    let doc = json!({"keys": [
        {"kty": "OKP", "crv": "Ed25519", "kid": "ed", "x": "AAAA"},
        {"kty": "EC", "crv": "P-384", "kid": "p384", "x": "AAAA", "y": "AAAA"},
        {"kty": "RSA", "kid": "enc", "use": "enc", "n": "AAAA", "e": "AQAB"},
        published("rsa-a.pem", "rsa"),
    ]});
    assert_eq!(load(&doc).unwrap().key_ids(), ["rsa"]);
}

#[test]
fn a_weak_rsa_key_is_refused() {
    let n = base64_url(&[0xc5; 128]); // a 1024-bit modulus
    let doc = json!({"keys": [{"kty": "RSA", "kid": "weak", "n": n, "e": "AQAB"}]});
    assert!(matches!(
        load(&doc),
        Err(JwksError::WeakRsaKey { bits: 1024, .. })
    ));
}

#[test]
fn an_rsa_key_without_a_modulus_is_refused() {
    let doc = json!({"keys": [{"kty": "RSA", "kid": "r", "e": "AQAB"}]});
    assert!(matches!(
        load(&doc),
        Err(JwksError::MissingField { field: "n", .. })
    ));
}

#[test]
fn a_padded_or_standard_base64_component_is_refused() {
    let mut key = published("rsa-a.pem", "r");
    key["e"] = json!("AQAB==");
    assert!(matches!(
        load(&json!({"keys": [key]})),
        Err(JwksError::KeyEncoding { field: "e", .. })
    ));
}

#[test]
fn a_point_off_the_p256_curve_is_refused() {
    let mut key = published("ec-a.pem", "ec");
    key["y"] = json!(base64_url(&[7; 32]));
    assert!(matches!(
        load(&json!({"keys": [key]})),
        Err(JwksError::InvalidEcKey { .. })
    ));
}

#[test]
fn jwks_errors_name_the_key() {
    let doc = json!({"keys": [{"kty": "RSA", "kid": "weak", "n": base64_url(&[0xc5; 128]), "e": "AQAB"}]});
    let message = load(&doc).unwrap_err().to_string();
    assert!(
        message.contains("\"weak\"") && message.contains("1024"),
        "{message}"
    );
}

fn base64_url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}
