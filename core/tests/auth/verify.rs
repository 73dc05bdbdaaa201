//! Token verification: the tokens that must pass, and every hostile token, each its own test.
//! Tokens are signed for real with the keys in tests/keys/.

use crate::common;

use common::*;
use event_processor_core::auth::{Action, AuthError, HeaderError, JwtVerifier};
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::json;

fn verify(token: &str) -> Result<event_processor_core::auth::Principal, AuthError> {
    verifier().verify(Some(&bearer(token)))
}

// ---- tokens that pass -------------------------------------------------------------------

#[test]
fn a_valid_rs256_token_verifies_with_its_scopes_and_subject() {
    let principal = verify(&rs256(&claims())).unwrap();
    assert!(principal.allows(Action::Send, "alpha"));
    assert!(!principal.allows(Action::Read, "alpha"));
    assert_eq!(principal.subject(), Some("producer-1"));
}

#[test]
fn a_valid_es256_token_verifies_with_its_scopes() {
    let principal = verify(&es256(&claims_with(
        json!({"scope": "beta:read beta:register"}),
    )))
    .unwrap();
    assert!(principal.allows(Action::Read, "beta"));
    assert!(principal.allows(Action::Register, "beta"));
    assert!(!principal.allows(Action::Send, "beta"));
}

#[test]
fn an_audience_array_containing_ours_verifies() {
    let claims = claims_with(json!({"aud": ["other-api", AUDIENCE]}));
    assert!(verify(&rs256(&claims)).is_ok());
}

#[test]
fn a_token_without_scope_verifies_and_allows_nothing() {
    let principal = verify(&es256(&claims_with(json!({"scope": null})))).unwrap();
    assert!(principal.grants_nothing());
    assert!(!principal.allows(Action::Read, "alpha"));
}

#[test]
fn a_scope_claim_sent_as_an_array_is_understood() {
    let principal = verify(&rs256(&claims_with(
        json!({"scope": ["alpha:read", "*:send"]}),
    )))
    .unwrap();
    assert!(principal.allows(Action::Read, "alpha"));
    assert!(principal.allows(Action::Send, "beta"));
}

#[test]
fn a_fractional_exp_is_a_valid_numeric_date() {
    let claims = claims_with(json!({"exp": now() as f64 + 600.5}));
    assert!(verify(&es256(&claims)).is_ok());
}

#[test]
fn a_lowercase_bearer_scheme_is_accepted() {
    let header = format!("bearer {}", rs256(&claims()));
    assert!(verifier().verify(Some(&header)).is_ok());
}

// ---- rotation -----------------------------------------------------------------------------

#[test]
fn during_rotation_tokens_of_the_old_and_the_new_kid_both_verify() {
    let jwks = jwks(&[("rsa-a.pem", "2026-01"), ("rsa-b.pkcs1.pem", "2026-02")]);
    let verifier = JwtVerifier::new(&jwks, ISSUER, AUDIENCE).unwrap();
    let old = token("rsa-a.pem", Algorithm::RS256, "2026-01", &claims());
    let new = rsa_b_token("2026-02");
    assert!(verifier.verify(Some(&bearer(&old))).is_ok());
    assert!(verifier.verify(Some(&bearer(&new))).is_ok());
    assert_eq!(verifier.key_ids(), ["2026-01", "2026-02"]);
}

#[test]
fn after_rotation_a_token_of_the_retired_kid_is_refused() {
    let verifier =
        JwtVerifier::new(&jwks(&[("rsa-b.pkcs1.pem", "2026-02")]), ISSUER, AUDIENCE).unwrap();
    let old = token("rsa-a.pem", Algorithm::RS256, "2026-01", &claims());
    let err = verifier.verify(Some(&bearer(&old))).unwrap_err();
    assert!(
        matches!(err, AuthError::UnknownKid { ref kid } if kid == "2026-01"),
        "{err:?}"
    );
}

#[test]
fn a_jwks_mixing_rsa_and_ec_keys_verifies_both_kinds() {
    assert!(verify(&rs256(&claims())).is_ok());
    assert!(verify(&es256(&claims())).is_ok());
}

/// rsa-b is PKCS#1, which `EncodingKey::from_rsa_pem` also reads.
fn rsa_b_token(kid: &str) -> String {
    let key = EncodingKey::from_rsa_pem(&key("rsa-b.pkcs1.pem")).unwrap();
    forge(
        json!({"alg": "RS256", "kid": kid}),
        &claims(),
        &key,
        Algorithm::RS256,
    )
}

// ---- leeway boundaries --------------------------------------------------------------------

#[test]
fn a_token_expired_30_seconds_ago_is_within_the_leeway() {
    assert!(verify(&rs256(&claims_with(json!({"exp": now() - 30})))).is_ok());
}

#[test]
fn a_token_expired_120_seconds_ago_is_refused() {
    let err = verify(&rs256(&claims_with(json!({"exp": now() - 120})))).unwrap_err();
    assert!(matches!(err, AuthError::Expired), "{err:?}");
}

#[test]
fn a_token_valid_from_30_seconds_ahead_is_within_the_leeway() {
    assert!(verify(&es256(&claims_with(json!({"nbf": now() + 30})))).is_ok());
}

#[test]
fn a_token_valid_from_120_seconds_ahead_is_refused() {
    let err = verify(&es256(&claims_with(json!({"nbf": now() + 120})))).unwrap_err();
    assert!(matches!(err, AuthError::NotYetValid), "{err:?}");
}

// ---- the header ---------------------------------------------------------------------------

#[test]
fn a_request_without_an_authorization_header_is_refused() {
    assert!(matches!(
        verifier().verify(None),
        Err(AuthError::MissingHeader)
    ));
}

#[test]
fn an_empty_authorization_header_is_refused() {
    assert!(matches!(
        verifier().verify(Some("")),
        Err(AuthError::MissingHeader)
    ));
}

#[test]
fn a_basic_authorization_header_is_refused() {
    let err = verifier()
        .verify(Some("Basic dXNlcjpwYXNzd29yZA=="))
        .unwrap_err();
    assert!(matches!(err, AuthError::NotBearer), "{err:?}");
}

#[test]
fn a_valid_token_under_another_scheme_is_refused() {
    let header = format!("Token {}", rs256(&claims()));
    assert!(matches!(
        verifier().verify(Some(&header)),
        Err(AuthError::NotBearer)
    ));
}

#[test]
fn a_bare_token_without_a_scheme_is_refused() {
    let token = rs256(&claims());
    assert!(matches!(
        verifier().verify(Some(&token)),
        Err(AuthError::NotBearer)
    ));
}

#[test]
fn a_bearer_header_without_a_token_is_refused() {
    assert!(matches!(
        verifier().verify(Some("Bearer ")),
        Err(AuthError::NotBearer)
    ));
}

// ---- garbage ------------------------------------------------------------------------------

#[test]
fn a_token_that_is_not_three_parts_is_refused() {
    for garbage in ["garbage", "a.b", "a.b.c.d", "..."] {
        let err = verify(garbage).unwrap_err();
        assert!(
            matches!(err, AuthError::MalformedHeader(HeaderError::Shape)),
            "{garbage}: {err:?}"
        );
    }
}

#[test]
fn a_token_whose_header_is_not_base64url_is_refused() {
    let err = verify("!!!.e30.c2ln").unwrap_err();
    assert!(
        matches!(err, AuthError::MalformedHeader(HeaderError::Base64(_))),
        "{err:?}"
    );
}

#[test]
fn a_token_whose_header_is_not_json_is_refused() {
    let err = verify("bm90IGpzb24.e30.c2ln").unwrap_err();
    assert!(
        matches!(err, AuthError::MalformedHeader(HeaderError::Json(_))),
        "{err:?}"
    );
}

#[test]
fn a_token_whose_payload_is_not_json_is_refused() {
    let real = rs256(&claims());
    let parts: Vec<&str> = real.split('.').collect();
    let err = verify(&format!("{}.bm90IGpzb24.{}", parts[0], parts[2])).unwrap_err();
    // The signature covers the payload, so the tampering is caught there first.
    assert!(matches!(err, AuthError::BadSignature), "{err:?}");
    // Correctly signed, but the claims are a JSON string rather than an object.
    let err = verify(&rs256(&json!("not an object"))).unwrap_err();
    assert!(matches!(err, AuthError::MalformedClaims(_)), "{err:?}");
}

#[test]
fn a_token_with_a_tampered_payload_is_refused() {
    let real = rs256(&claims());
    let forged = rs256(&claims_with(json!({"scope": "*:send *:register *:read"})));
    let real: Vec<&str> = real.split('.').collect();
    let forged: Vec<&str> = forged.split('.').collect();
    let spliced = format!("{}.{}.{}", real[0], forged[1], real[2]);
    assert!(matches!(verify(&spliced), Err(AuthError::BadSignature)));
}

#[test]
fn a_token_with_its_signature_removed_is_refused() {
    let real = rs256(&claims());
    let unsigned = &real[..=real.rfind('.').unwrap()];
    let err = verify(unsigned).unwrap_err();
    assert!(matches!(err, AuthError::BadSignature), "{err:?}");
}

// ---- time and audience claims -----------------------------------------------------------

#[test]
fn a_token_without_exp_is_refused() {
    let err = verify(&rs256(&claims_with(json!({"exp": null})))).unwrap_err();
    assert!(
        matches!(err, AuthError::MissingClaim(ref c) if c == "exp"),
        "{err:?}"
    );
}

#[test]
fn a_token_whose_exp_is_not_a_number_is_refused() {
    let err = verify(&rs256(&claims_with(json!({"exp": "tomorrow"})))).unwrap_err();
    assert!(matches!(err, AuthError::MalformedClaims(_)), "{err:?}");
}

#[test]
fn a_token_from_another_issuer_is_refused() {
    let err = verify(&rs256(&claims_with(json!({"iss": "https://evil.test/"})))).unwrap_err();
    assert!(matches!(err, AuthError::WrongIssuer), "{err:?}");
}

#[test]
fn an_issuer_differing_only_by_a_trailing_slash_is_refused() {
    let err = verify(&es256(&claims_with(json!({"iss": "https://issuer.test"})))).unwrap_err();
    assert!(matches!(err, AuthError::WrongIssuer), "{err:?}");
}

#[test]
fn a_token_without_an_issuer_is_refused() {
    let err = verify(&rs256(&claims_with(json!({"iss": null})))).unwrap_err();
    assert!(
        matches!(err, AuthError::MissingClaim(ref c) if c == "iss"),
        "{err:?}"
    );
}

#[test]
fn an_issuer_array_holding_the_issuer_is_refused() {
    let err = verify(&rs256(&claims_with(
        json!({"iss": [ISSUER, "https://evil.test/"]}),
    )))
    .unwrap_err();
    assert!(matches!(err, AuthError::WrongIssuer), "{err:?}");
}

#[test]
fn a_token_for_another_audience_is_refused() {
    let err = verify(&rs256(&claims_with(json!({"aud": "billing"})))).unwrap_err();
    assert!(matches!(err, AuthError::WrongAudience), "{err:?}");
}

#[test]
fn an_audience_array_without_ours_is_refused() {
    let err = verify(&es256(&claims_with(json!({"aud": ["billing", "reports"]})))).unwrap_err();
    assert!(matches!(err, AuthError::WrongAudience), "{err:?}");
}

#[test]
fn a_token_without_an_audience_is_refused() {
    let err = verify(&es256(&claims_with(json!({"aud": null})))).unwrap_err();
    assert!(
        matches!(err, AuthError::MissingClaim(ref c) if c == "aud"),
        "{err:?}"
    );
}

// ---- algorithms ---------------------------------------------------------------------------

#[test]
fn an_alg_none_token_is_refused() {
    let token = unsigned(json!({"alg": "none", "kid": "rsa"}), &claims());
    let err = verify(&token).unwrap_err();
    assert!(
        matches!(err, AuthError::AlgorithmNotAllowed { ref alg } if alg == "none"),
        "{err:?}"
    );
}

#[test]
fn an_alg_none_token_in_other_casing_is_refused() {
    for alg in ["None", "NONE", "nOnE", ""] {
        let err = verify(&unsigned(json!({"alg": alg, "kid": "rsa"}), &claims())).unwrap_err();
        assert!(
            matches!(err, AuthError::AlgorithmNotAllowed { .. }),
            "{alg}: {err:?}"
        );
    }
}

#[test]
fn a_token_signed_hs256_with_the_rsa_public_key_is_refused() {
    // The classic confusion: the attacker knows the public key and uses its PEM as an HMAC
    // secret, hoping the verifier feeds the same bytes to HMAC.
    let public_pem = key("rsa-a.pub.pem");
    let hmac = EncodingKey::from_secret(&public_pem);
    let token = forge(
        json!({"alg": "HS256", "kid": "rsa"}),
        &claims(),
        &hmac,
        Algorithm::HS256,
    );
    let err = verify(&token).unwrap_err();
    assert!(
        matches!(err, AuthError::AlgorithmNotAllowed { ref alg } if alg == "HS256"),
        "{err:?}"
    );
}

#[test]
fn a_token_signed_hs256_with_the_rsa_jwk_modulus_is_refused() {
    // The same attack with the key material as published in the JWKS.
    let jwks: serde_json::Value = serde_json::from_slice(&jwks(&[("rsa-a.pem", "rsa")])).unwrap();
    let n = jwks["keys"][0]["n"].as_str().unwrap();
    let hmac = EncodingKey::from_secret(n.as_bytes());
    let token = forge(
        json!({"alg": "HS256", "kid": "rsa"}),
        &claims(),
        &hmac,
        Algorithm::HS256,
    );
    assert!(matches!(
        verify(&token),
        Err(AuthError::AlgorithmNotAllowed { .. })
    ));
}

#[test]
fn rs384_ps256_and_es384_tokens_are_refused() {
    let rsa = encoding_key("rsa-a.pem");
    for alg in [Algorithm::RS384, Algorithm::RS512, Algorithm::PS256] {
        let token = forge(json!({"alg": alg, "kid": "rsa"}), &claims(), &rsa, alg);
        assert!(
            matches!(verify(&token), Err(AuthError::AlgorithmNotAllowed { .. })),
            "{alg:?}"
        );
    }
    let p384 = EncodingKey::from_ec_pem(&key("ec-p384.pem")).unwrap();
    let token = forge(
        json!({"alg": "ES384", "kid": "ec"}),
        &claims(),
        &p384,
        Algorithm::ES384,
    );
    assert!(matches!(
        verify(&token),
        Err(AuthError::AlgorithmNotAllowed { .. })
    ));
}

#[test]
fn a_token_whose_header_says_rs256_over_an_ec_signature_is_refused() {
    let ec = encoding_key("ec-a.pem");
    // Naming the EC key: the key may only verify ES256.
    let token = forge(
        json!({"alg": "RS256", "kid": "ec"}),
        &claims(),
        &ec,
        Algorithm::ES256,
    );
    let err = verify(&token).unwrap_err();
    assert!(
        matches!(err, AuthError::KeyMismatch { ref kid, alg: "RS256", .. } if kid == "ec"),
        "{err:?}"
    );
    // Naming the RSA key: an ECDSA signature is no RSA signature.
    let token = forge(
        json!({"alg": "RS256", "kid": "rsa"}),
        &claims(),
        &ec,
        Algorithm::ES256,
    );
    let err = verify(&token).unwrap_err();
    assert!(matches!(err, AuthError::BadSignature), "{err:?}");
}

#[test]
fn a_token_whose_header_says_es256_over_an_rsa_signature_is_refused() {
    let rsa = encoding_key("rsa-a.pem");
    let token = forge(
        json!({"alg": "ES256", "kid": "rsa"}),
        &claims(),
        &rsa,
        Algorithm::RS256,
    );
    let err = verify(&token).unwrap_err();
    assert!(
        matches!(err, AuthError::KeyMismatch { ref kid, alg: "ES256", .. } if kid == "rsa"),
        "{err:?}"
    );
    let token = forge(
        json!({"alg": "ES256", "kid": "ec"}),
        &claims(),
        &rsa,
        Algorithm::RS256,
    );
    let err = verify(&token).unwrap_err();
    assert!(matches!(err, AuthError::BadSignature), "{err:?}");
}

// ---- keys ---------------------------------------------------------------------------------

#[test]
fn a_valid_signature_by_a_key_not_in_the_jwks_is_refused() {
    // rsa-b signs, claiming to be the trusted "rsa" key.
    let err = verify(&rsa_b_token("rsa")).unwrap_err();
    assert!(matches!(err, AuthError::BadSignature), "{err:?}");
}

#[test]
fn a_valid_es256_signature_by_a_key_not_in_the_jwks_is_refused() {
    let other = EncodingKey::from_ec_der(&sec1_to_pkcs8(&key("ec-b.sec1.pem")));
    let token = forge(
        json!({"alg": "ES256", "kid": "ec"}),
        &claims(),
        &other,
        Algorithm::ES256,
    );
    assert!(matches!(verify(&token), Err(AuthError::BadSignature)));
}

fn sec1_to_pkcs8(pem: &[u8]) -> Vec<u8> {
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
    let der = pem::parse(pem).unwrap().into_contents();
    let pair = EcdsaKeyPair::from_private_key_der(&ECDSA_P256_SHA256_FIXED_SIGNING, &der).unwrap();
    pair.to_pkcs8v1().unwrap().as_ref().to_vec()
}

#[test]
fn a_token_naming_a_kid_not_in_the_jwks_is_refused() {
    let err = verify(&token("rsa-a.pem", Algorithm::RS256, "rsa-2027", &claims())).unwrap_err();
    assert!(
        matches!(err, AuthError::UnknownKid { ref kid } if kid == "rsa-2027"),
        "{err:?}"
    );
}

#[test]
fn a_token_without_a_kid_is_refused() {
    let token = forge(
        json!({"alg": "RS256"}),
        &claims(),
        &encoding_key("rsa-a.pem"),
        Algorithm::RS256,
    );
    assert!(matches!(verify(&token), Err(AuthError::MissingKid)));
}

#[test]
fn a_jwks_rsa_key_declared_for_another_alg_does_not_verify_rs256() {
    let mut jwks: serde_json::Value =
        serde_json::from_slice(&jwks(&[("rsa-a.pem", "rsa"), ("ec-a.pem", "ec")])).unwrap();
    jwks["keys"][0]["alg"] = json!("PS256");
    let verifier = JwtVerifier::new(&serde_json::to_vec(&jwks).unwrap(), ISSUER, AUDIENCE).unwrap();
    let err = verifier
        .verify(Some(&bearer(&rs256(&claims()))))
        .unwrap_err();
    assert!(
        matches!(err, AuthError::KeyMismatch { ref key, .. } if key.contains("PS256")),
        "{err:?}"
    );
}

#[test]
fn a_jwks_ec_key_declared_for_rs256_does_not_verify_anything() {
    let mut jwks: serde_json::Value =
        serde_json::from_slice(&jwks(&[("rsa-a.pem", "rsa"), ("ec-a.pem", "ec")])).unwrap();
    jwks["keys"][1]["alg"] = json!("RS256");
    let verifier = JwtVerifier::new(&serde_json::to_vec(&jwks).unwrap(), ISSUER, AUDIENCE).unwrap();
    let err = verifier
        .verify(Some(&bearer(&es256(&claims()))))
        .unwrap_err();
    assert!(matches!(err, AuthError::KeyMismatch { .. }), "{err:?}");
}

#[test]
fn a_symmetric_jwks_key_is_never_used() {
    let secret = b"shared-secret-published-by-mistake";
    let jwks = json!({"keys": [
        {"kty": "oct", "kid": "hmac", "k": base64_url(secret), "alg": "HS256"},
        serde_json::from_slice::<serde_json::Value>(&jwks(&[("rsa-a.pem", "rsa")])).unwrap()["keys"][0],
    ]});
    let verifier = JwtVerifier::new(&serde_json::to_vec(&jwks).unwrap(), ISSUER, AUDIENCE).unwrap();
    let hs = forge(
        json!({"alg": "HS256", "kid": "hmac"}),
        &claims(),
        &EncodingKey::from_secret(secret),
        Algorithm::HS256,
    );
    assert!(matches!(
        verifier.verify(Some(&bearer(&hs))),
        Err(AuthError::AlgorithmNotAllowed { .. })
    ));
    // And an RS256 token pointing at it is refused as a key mismatch, not tried.
    let rs = token("rsa-a.pem", Algorithm::RS256, "hmac", &claims());
    assert!(matches!(
        verifier.verify(Some(&bearer(&rs))),
        Err(AuthError::KeyMismatch { .. })
    ));
}

#[test]
fn an_encryption_key_in_the_jwks_does_not_verify_signatures() {
    let mut jwks: serde_json::Value =
        serde_json::from_slice(&jwks(&[("rsa-a.pem", "rsa"), ("ec-a.pem", "ec")])).unwrap();
    jwks["keys"][0]["use"] = json!("enc");
    let verifier = JwtVerifier::new(&serde_json::to_vec(&jwks).unwrap(), ISSUER, AUDIENCE).unwrap();
    let err = verifier
        .verify(Some(&bearer(&rs256(&claims()))))
        .unwrap_err();
    assert!(matches!(err, AuthError::KeyMismatch { .. }), "{err:?}");
}

#[test]
fn a_token_carrying_its_own_jwk_header_is_not_trusted_for_it() {
    // An embedded `jwk` (or `jku`) must never become a trusted key: the attacker's key signs,
    // the header offers it, the kid points at it.
    let attacker: serde_json::Value =
        serde_json::from_slice(&jwks(&[("rsa-b.pkcs1.pem", "attacker")])).unwrap();
    let header = json!({"alg": "RS256", "kid": "attacker", "jwk": attacker["keys"][0], "jku": "https://evil.test/jwks"});
    let key = EncodingKey::from_rsa_pem(&key("rsa-b.pkcs1.pem")).unwrap();
    let token = forge(header, &claims(), &key, Algorithm::RS256);
    assert!(matches!(verify(&token), Err(AuthError::UnknownKid { .. })));
}

fn base64_url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}
