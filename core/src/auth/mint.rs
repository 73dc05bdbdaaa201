//! Tokens and keys for local use, behind `event-processor keygen` and `event-processor token`:
//! generate a P-256 key, publish its JWKS for `AUTH_JWKS=file:PATH`, and mint tokens signed by
//! it. Production tokens come from an identity provider; this is for development and tests.

use std::time::Duration;

use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, RsaKeyPair};
use jsonwebtoken::jwk::{Jwk, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;

use super::cache::now_unix;
use super::scope::is_scope;

/// Why a key could not be used, or a token could not be minted.
#[derive(Debug, thiserror::Error)]
pub enum MintError {
    /// The key file is not PEM.
    #[error("the key is not PEM")]
    NotPem(#[source] pem::PemError),
    /// A PEM block that is not an RSA or P-256 private key (a public key, a certificate, a
    /// P-384 or Ed25519 key...).
    #[error("{0} is not an RSA or P-256 private key (RS256 or ES256)")]
    UnsupportedKey(String),
    /// aws-lc refused the key (e.g. an RSA key under 2048 bits, a corrupt key).
    #[error("the private key was rejected")]
    KeyRejected(#[source] aws_lc_rs::error::KeyRejected),
    /// jsonwebtoken could not read the key, derive its public JWK, or sign.
    #[error("jsonwebtoken could not read the key or sign with it")]
    Jwt(#[source] jsonwebtoken::errors::Error),
    /// aws-lc failed to generate or re-encode a key (not expected outside a broken build).
    #[error("aws-lc failed to generate or encode the key")]
    Crypto(#[source] aws_lc_rs::error::Unspecified),
    /// A token needs a key id for the verifier to choose the key.
    #[error("the key id (kid) must not be empty")]
    EmptyKid,
    /// A token must live at least one second.
    #[error("the token lifetime must be at least one second")]
    InvalidTtl,
    /// A scope that grants nothing here: almost always a typo that would show up later as 403.
    #[error("{0:?} is not a scope of this gateway ({{client}}:send|register|read, or *:...)")]
    UnknownScope(String),
}

/// A private key able to sign, and the one algorithm it signs with.
struct SigningKey {
    alg: Algorithm,
    key: EncodingKey,
}

/// Reads an RSA (PKCS#1 or PKCS#8) or P-256 (PKCS#8 or SEC 1) private key PEM.
fn signing_key(private_key_pem: &[u8]) -> Result<SigningKey, MintError> {
    let pem = pem::parse(private_key_pem).map_err(MintError::NotPem)?;
    match pem.tag() {
        "EC PRIVATE KEY" => {
            // SEC 1, what `openssl ecparam -genkey` writes; jsonwebtoken wants PKCS#8.
            let pair = EcdsaKeyPair::from_private_key_der(
                &ECDSA_P256_SHA256_FIXED_SIGNING,
                pem.contents(),
            )
            .map_err(MintError::KeyRejected)?;
            let pkcs8 = pair.to_pkcs8v1().map_err(MintError::Crypto)?;
            Ok(SigningKey {
                alg: Algorithm::ES256,
                key: EncodingKey::from_ec_der(pkcs8.as_ref()),
            })
        }
        "PRIVATE KEY"
            if EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pem.contents())
                .is_ok() =>
        {
            Ok(SigningKey {
                alg: Algorithm::ES256,
                key: EncodingKey::from_ec_der(pem.contents()),
            })
        }
        "PRIVATE KEY" | "RSA PRIVATE KEY" => {
            if pem.tag() == "PRIVATE KEY" {
                // Not P-256; if not RSA either, say what the key is not rather than a parser
                // error. A weak or corrupt RSA key keeps aws-lc's reason.
                if let Err(rejected) = RsaKeyPair::from_pkcs8(pem.contents()) {
                    return Err(if rejected.description_() == "WrongAlgorithm" {
                        MintError::UnsupportedKey("the PKCS#8 key".to_owned())
                    } else {
                        MintError::KeyRejected(rejected)
                    });
                }
            }
            // jsonwebtoken unwraps PKCS#8 to the PKCS#1 its aws-lc signer takes.
            let key = EncodingKey::from_rsa_pem(private_key_pem).map_err(MintError::Jwt)?;
            // Checked here (size, consistency) so that a weak key fails before any token.
            RsaKeyPair::from_der(key.inner()).map_err(MintError::KeyRejected)?;
            Ok(SigningKey {
                alg: Algorithm::RS256,
                key,
            })
        }
        other => Err(MintError::UnsupportedKey(format!("a PEM {other:?} block"))),
    }
}

#[derive(Serialize)]
struct MintedClaims<'a> {
    iss: &'a str,
    aud: &'a str,
    scope: String,
    iat: u64,
    exp: u64,
}

/// Mints a token signed with `private_key_pem` (RSA → RS256, P-256 → ES256) under `kid`, for
/// `issuer` and `audience`, carrying `scopes` (space-separated) and valid for `ttl`.
///
/// Every scope must be one this gateway understands (`{client}:send|register|read` or
/// `*:...`), so a typo fails here instead of as a `403` later. An empty `scopes` mints a token
/// that authenticates but allows nothing.
pub fn mint(
    private_key_pem: &[u8],
    kid: &str,
    issuer: &str,
    audience: &str,
    scopes: &str,
    ttl: Duration,
) -> Result<String, MintError> {
    if kid.is_empty() {
        return Err(MintError::EmptyKid);
    }
    if ttl.as_secs() == 0 {
        return Err(MintError::InvalidTtl);
    }
    let scopes: Vec<&str> = scopes.split(' ').filter(|s| !s.is_empty()).collect();
    if let Some(unknown) = scopes.iter().find(|s| !is_scope(s)) {
        return Err(MintError::UnknownScope((*unknown).to_owned()));
    }
    super::use_aws_lc();
    let signing = signing_key(private_key_pem)?;
    let now = now_unix();
    let claims = MintedClaims {
        iss: issuer,
        aud: audience,
        scope: scopes.join(" "),
        iat: now,
        exp: now.saturating_add(ttl.as_secs()),
    };
    let mut header = Header::new(signing.alg);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, &claims, &signing.key).map_err(MintError::Jwt)
}

/// The public JWKS document (`{"keys": [...]}`) of `private_key_pem` under `kid`, with `alg`
/// and `use: sig` set: what `AUTH_JWKS=file:PATH` points at. To rotate, add the new key's
/// entry to the old document's `keys`.
pub fn jwks_for(private_key_pem: &[u8], kid: &str) -> Result<serde_json::Value, MintError> {
    if kid.is_empty() {
        return Err(MintError::EmptyKid);
    }
    super::use_aws_lc();
    let signing = signing_key(private_key_pem)?;
    let mut jwk = Jwk::from_encoding_key(&signing.key, signing.alg).map_err(MintError::Jwt)?;
    jwk.common.key_id = Some(kid.to_owned());
    jwk.common.public_key_use = Some(PublicKeyUse::Signature);
    let set = JwkSet { keys: vec![jwk] };
    serde_json::to_value(set).map_err(|e| MintError::Jwt(e.into()))
}

/// A new P-256 private key (ES256), PKCS#8 PEM, from aws-lc's generator. Write it with
/// owner-only permissions: it signs tokens.
pub fn generate_es256_key() -> Result<String, MintError> {
    let pair =
        EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).map_err(MintError::Crypto)?;
    let pkcs8 = pair.to_pkcs8v1().map_err(MintError::Crypto)?;
    Ok(pem::encode(&pem::Pem::new("PRIVATE KEY", pkcs8.as_ref())))
}
