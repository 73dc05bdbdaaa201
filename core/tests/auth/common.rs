//! Shared fixtures: the checked-in test keys, a JWKS built from them, and a token forge that
//! can sign any header and claims with any key, including the hostile combinations.

#![allow(dead_code)] // each test binary uses a different subset

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use event_processor_core::auth::{JwtVerifier, jwks_for};
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Value, json};

pub const ISSUER: &str = "https://issuer.test/";
pub const AUDIENCE: &str = "event-processor";

/// A test key from tests/keys/.
pub fn key(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/keys")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A JWKS document holding the public half of each `(key file, kid)`.
pub fn jwks(keys: &[(&str, &str)]) -> Vec<u8> {
    let keys: Vec<Value> = keys
        .iter()
        .flat_map(|(file, kid)| {
            let doc = jwks_for(&key(file), kid).unwrap();
            doc["keys"].as_array().unwrap().clone()
        })
        .collect();
    serde_json::to_vec(&json!({ "keys": keys })).unwrap()
}

/// The verifier most tests use: RSA key `rsa-a` as kid "rsa", P-256 key `ec-a` as kid "ec".
pub fn verifier() -> JwtVerifier {
    JwtVerifier::new(
        &jwks(&[("rsa-a.pem", "rsa"), ("ec-a.pem", "ec")]),
        ISSUER,
        AUDIENCE,
    )
    .unwrap()
}

/// Claims that verify: right issuer and audience, ten minutes left, one scope.
pub fn claims() -> Value {
    json!({
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "producer-1",
        "iat": now(),
        "exp": now() + 600,
        "scope": "alpha:send",
    })
}

/// `claims()` with some members replaced (`null` removes one).
pub fn claims_with(changes: Value) -> Value {
    let mut claims = claims();
    for (name, value) in changes.as_object().unwrap() {
        if value.is_null() {
            claims.as_object_mut().unwrap().remove(name);
        } else {
            claims[name] = value.clone();
        }
    }
    claims
}

/// The private key of a PKCS#8 PEM test file, for the algorithm family its name says.
pub fn encoding_key(file: &str) -> EncodingKey {
    let pem = key(file);
    if file.starts_with("ec") {
        EncodingKey::from_ec_pem(&pem).unwrap()
    } else {
        EncodingKey::from_rsa_pem(&pem).unwrap()
    }
}

fn b64_json(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap())
}

/// A token with exactly this JOSE header, signed over `header.payload` by `key` with
/// `sign_alg` — which need not be the header's `alg`: that is how the hostile tokens are made.
pub fn forge(header: Value, claims: &Value, key: &EncodingKey, sign_alg: Algorithm) -> String {
    let message = format!("{}.{}", b64_json(&header), b64_json(claims));
    let signature = jsonwebtoken::crypto::sign(message.as_bytes(), key, sign_alg).unwrap();
    format!("{message}.{signature}")
}

/// A well-formed token: header `{alg, kid}` signed by `file` with `alg`.
pub fn token(file: &str, alg: Algorithm, kid: &str, claims: &Value) -> String {
    forge(
        json!({ "alg": alg, "kid": kid, "typ": "JWT" }),
        claims,
        &encoding_key(file),
        alg,
    )
}

/// A valid RS256 token with `claims`.
pub fn rs256(claims: &Value) -> String {
    token("rsa-a.pem", Algorithm::RS256, "rsa", claims)
}

/// A valid ES256 token with `claims`.
pub fn es256(claims: &Value) -> String {
    token("ec-a.pem", Algorithm::ES256, "ec", claims)
}

/// An unsigned `alg: none` token.
pub fn unsigned(header: Value, claims: &Value) -> String {
    format!("{}.{}.", b64_json(&header), b64_json(claims))
}

pub fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}
