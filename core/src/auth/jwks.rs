//! The trusted keys: a JWKS document (RFC 7517) read once into a map `kid -> key`, each key
//! bound to the one algorithm it may verify. Binding the algorithm to the key, never taking it
//! from the token alone, is what makes algorithm-confusion attacks impossible here.

use std::collections::HashMap;
use std::fmt;

use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED, ParsedPublicKey};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;

/// Smallest and largest RSA modulus aws-lc accepts for RS256 (`RSA_PKCS1_2048_8192_SHA256`);
/// checked at load so that a weak key fails at start rather than on every request.
const RSA_BITS: std::ops::RangeInclusive<usize> = 2048..=8192;

/// Why a JWKS document cannot be used. Every one is a start-up error.
#[derive(Debug, thiserror::Error)]
pub enum JwksError {
    /// Not JSON, or not an object with a `keys` array of objects with a string `kty`.
    #[error("the JWKS is not a JSON object with a \"keys\" array of keys")]
    NotJwks(#[source] serde_json::Error),
    /// Two keys share a `kid`, so a token could not say which one signed it.
    #[error("the JWKS has more than one key with kid {kid:?}")]
    DuplicateKid {
        /// The repeated key id.
        kid: String,
    },
    /// A key component is not base64url (RFC 7518 §6: unpadded).
    #[error("JWKS key {kid:?}: \"{field}\" is not unpadded base64url")]
    KeyEncoding {
        /// The key's id.
        kid: String,
        /// The JWK member that failed (`n`, `e`, `x`, `y`).
        field: &'static str,
        /// The decoder's reason.
        #[source]
        source: base64::DecodeError,
    },
    /// An RSA or EC key lacks a member its type requires.
    #[error("JWKS key {kid:?} has no \"{field}\"")]
    MissingField {
        /// The key's id.
        kid: String,
        /// The missing JWK member.
        field: &'static str,
    },
    /// An RSA modulus outside 2048–8192 bits.
    #[error("JWKS key {kid:?} is a {bits}-bit RSA key; RS256 needs 2048 to 8192 bits")]
    WeakRsaKey {
        /// The key's id.
        kid: String,
        /// The modulus length found.
        bits: usize,
    },
    /// A P-256 public key that is not a point on the curve (or not 32-byte coordinates).
    #[error("JWKS key {kid:?} is not a valid P-256 public key")]
    InvalidEcKey {
        /// The key's id.
        kid: String,
        /// aws-lc's reason.
        #[source]
        source: aws_lc_rs::error::KeyRejected,
    },
    /// No key can verify anything: none is an RS256/ES256 signing key with a `kid`.
    #[error("the JWKS has no RS256 or ES256 signing key with a kid")]
    NoUsableKey,
}

/// One JWK member set, as much of RFC 7517/7518 as this module reads. Unknown members (x5c,
/// x5t, ...) are ignored; private members (`d`, `p`, ...) are never read.
#[derive(Deserialize)]
struct RawJwks {
    keys: Vec<RawJwk>,
}

#[derive(Deserialize)]
struct RawJwk {
    kty: String,
    kid: Option<String>,
    alg: Option<String>,
    #[serde(rename = "use")]
    use_: Option<String>,
    key_ops: Option<Vec<String>>,
    crv: Option<String>,
    n: Option<String>,
    e: Option<String>,
    x: Option<String>,
    y: Option<String>,
}

/// A key of the set: either able to verify exactly one algorithm, or kept only so that a token
/// naming it is refused with a precise reason instead of "unknown kid".
pub(crate) enum TrustedKey {
    Usable { alg: Algorithm, key: DecodingKey },
    Unusable { description: String },
}

impl TrustedKey {
    /// The key for `alg`, or a description of what the key is (for the refusal's log line).
    pub(crate) fn for_alg(&self, alg: Algorithm) -> Result<&DecodingKey, String> {
        match self {
            TrustedKey::Usable { alg: own, key } if *own == alg => Ok(key),
            TrustedKey::Usable { alg: own, .. } => Err(format!("an {own:?} key")),
            TrustedKey::Unusable { description } => Err(description.clone()),
        }
    }
}

/// The parsed JWKS: `kid -> key`.
pub(crate) struct KeyRing {
    keys: HashMap<String, TrustedKey>,
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Key ids only: the material is public, but nobody reads a modulus in a log.
        let mut kids: Vec<&str> = self.keys.keys().map(String::as_str).collect();
        kids.sort_unstable();
        f.debug_struct("KeyRing").field("kids", &kids).finish()
    }
}

impl KeyRing {
    /// Parses a JWKS document. Keys this gateway cannot use (symmetric `oct`, `OKP`, P-384, RSA
    /// for another algorithm, `use: enc`) are kept as unusable; keys without a `kid` are
    /// skipped, as no token could select them. A malformed RSA or P-256 key is an error: it is
    /// a configuration mistake that should stop the start, not surface as 401s.
    pub(crate) fn parse(jwks: &[u8]) -> Result<Self, JwksError> {
        let raw: RawJwks = serde_json::from_slice(jwks).map_err(JwksError::NotJwks)?;
        let mut keys = HashMap::with_capacity(raw.keys.len());
        for jwk in raw.keys {
            let Some(kid) = jwk.kid.clone() else { continue };
            let key = trusted_key(&kid, &jwk)?;
            if keys.insert(kid.clone(), key).is_some() {
                return Err(JwksError::DuplicateKid { kid });
            }
        }
        if !keys
            .values()
            .any(|k| matches!(k, TrustedKey::Usable { .. }))
        {
            return Err(JwksError::NoUsableKey);
        }
        Ok(KeyRing { keys })
    }

    pub(crate) fn get(&self, kid: &str) -> Option<&TrustedKey> {
        self.keys.get(kid)
    }

    /// Ids of the keys that can verify a token, sorted (for a start-up log line).
    pub(crate) fn usable_kids(&self) -> Vec<&str> {
        let mut kids: Vec<&str> = self
            .keys
            .iter()
            .filter(|(_, k)| matches!(k, TrustedKey::Usable { .. }))
            .map(|(kid, _)| kid.as_str())
            .collect();
        kids.sort_unstable();
        kids
    }
}

fn trusted_key(kid: &str, jwk: &RawJwk) -> Result<TrustedKey, JwksError> {
    let unusable = |description: String| Ok(TrustedKey::Unusable { description });
    // A key published for encryption, or whose key_ops exclude "verify", must not verify
    // signatures (RFC 7517 §4.2, §4.3).
    if jwk.use_.as_deref().is_some_and(|u| u != "sig") {
        return unusable(format!(
            "a key for use {:?}",
            jwk.use_.as_deref().unwrap_or_default()
        ));
    }
    if jwk
        .key_ops
        .as_ref()
        .is_some_and(|ops| !ops.iter().any(|op| op == "verify"))
    {
        return unusable("a key whose key_ops exclude \"verify\"".to_owned());
    }
    let (alg, expected_alg) = match jwk.kty.as_str() {
        "RSA" => (Algorithm::RS256, "RS256"),
        "EC" if jwk.crv.as_deref() == Some("P-256") => (Algorithm::ES256, "ES256"),
        "EC" => {
            return unusable(format!(
                "an EC key on curve {:?}",
                jwk.crv.as_deref().unwrap_or("?")
            ));
        }
        other => return unusable(format!("a key of type {other:?}")),
    };
    // A declared `alg` must be the one this key type is used for here; `RS384` or `PS256` on
    // an RSA key means its owner did not mean it for RS256.
    if let Some(declared) = jwk.alg.as_deref().filter(|a| *a != expected_alg) {
        return unusable(format!("a {} key declared for {declared:?}", jwk.kty));
    }
    let key = match alg {
        Algorithm::RS256 => rsa_key(kid, jwk)?,
        _ => p256_key(kid, jwk)?,
    };
    Ok(TrustedKey::Usable { alg, key })
}

fn component(kid: &str, field: &'static str, value: Option<&String>) -> Result<Vec<u8>, JwksError> {
    let value = value.ok_or_else(|| JwksError::MissingField {
        kid: kid.to_owned(),
        field,
    })?;
    URL_SAFE_NO_PAD
        .decode(value)
        .map_err(|source| JwksError::KeyEncoding {
            kid: kid.to_owned(),
            field,
            source,
        })
}

fn rsa_key(kid: &str, jwk: &RawJwk) -> Result<DecodingKey, JwksError> {
    let n = component(kid, "n", jwk.n.as_ref())?;
    let e = component(kid, "e", jwk.e.as_ref())?;
    let bits = modulus_bits(&n);
    if !RSA_BITS.contains(&bits) {
        return Err(JwksError::WeakRsaKey {
            kid: kid.to_owned(),
            bits,
        });
    }
    if e.iter().all(|b| *b == 0) {
        return Err(JwksError::MissingField {
            kid: kid.to_owned(),
            field: "e",
        });
    }
    Ok(DecodingKey::from_rsa_raw_components(&n, &e))
}

/// Bit length of a big-endian unsigned integer.
fn modulus_bits(n: &[u8]) -> usize {
    let n = &n[n.iter().take_while(|b| **b == 0).count()..];
    match n.first() {
        Some(first) => n.len() * 8 - first.leading_zeros() as usize,
        None => 0,
    }
}

fn p256_key(kid: &str, jwk: &RawJwk) -> Result<DecodingKey, JwksError> {
    let x = component(kid, "x", jwk.x.as_ref())?;
    let y = component(kid, "y", jwk.y.as_ref())?;
    // SEC 1 uncompressed point, the form jsonwebtoken's EC verifier takes.
    let mut point = Vec::with_capacity(1 + x.len() + y.len());
    point.push(0x04);
    point.extend_from_slice(&x);
    point.extend_from_slice(&y);
    // Parsing checks length and that the point is on the curve, once, at start.
    ParsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &point).map_err(|source| {
        JwksError::InvalidEcKey {
            kid: kid.to_owned(),
            source,
        }
    })?;
    Ok(DecodingKey::from_ec_der(&point))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modulus_bits_ignores_leading_zero_bytes() {
        assert_eq!(modulus_bits(&[0, 0x80, 0]), 16);
        assert_eq!(modulus_bits(&[0x01]), 1);
        assert_eq!(modulus_bits(&[]), 0);
    }

    #[test]
    fn a_jwks_of_only_unusable_keys_is_refused() {
        let jwks = br#"{"keys":[{"kty":"oct","kid":"h","k":"c2VjcmV0"}]}"#;
        assert!(matches!(KeyRing::parse(jwks), Err(JwksError::NoUsableKey)));
    }

    #[test]
    fn a_jwks_that_is_not_json_is_refused() {
        assert!(matches!(
            KeyRing::parse(b"not json"),
            Err(JwksError::NotJwks(_))
        ));
    }
}
