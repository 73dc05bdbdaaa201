//! Token verification for `serve` with `AUTH=jwt`: an `Authorization` header in, a
//! [`Principal`] or the precise reason for a `401` out.
//!
//! Order of checks, cheapest and most hostile first: header shape, algorithm allow-list
//! (RS256, ES256), `kid` lookup, the key's own algorithm, then jsonwebtoken checks the signature
//! and the claims. The algorithm a key may verify comes from the JWKS, never from the token.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::{Error as JwtError, ErrorKind};
use jsonwebtoken::{Algorithm, Validation};
use serde::Deserialize;
use serde::de::IgnoredAny;

use super::cache::{self, TokenCache};
use super::jwks::{JwksError, KeyRing};
use super::scope::Principal;

/// Clock-skew allowance for `exp` and `nbf` (API.md: 60 s).
pub const LEEWAY_SECS: u64 = 60;

/// Longest bearer token accepted. Identity-provider tokens are 1–2 KiB; the bound keeps a
/// hostile header from costing a large hash and parse.
pub const MAX_TOKEN_LEN: usize = 16 * 1024;

/// Why a request is not authenticated. The HTTP edge answers every variant with
/// `401 unauthenticated` and `WWW-Authenticate: Bearer`; the variant is for the log line.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization` header, or an empty one.
    #[error("no Authorization header")]
    MissingHeader,
    /// The header is not `Bearer <token>` (another scheme, or no token).
    #[error("the Authorization header is not \"Bearer <token>\"")]
    NotBearer,
    /// The token is longer than [`MAX_TOKEN_LEN`].
    #[error("the bearer token is longer than {MAX_TOKEN_LEN} bytes")]
    TooLong,
    /// Not three dot-separated parts, or a JOSE header that cannot be read.
    #[error("the token is not a readable JWT")]
    MalformedHeader(#[source] HeaderError),
    /// The header's `alg` is not RS256 or ES256 (`none`, `HS256`, ...).
    #[error("algorithm {alg:?} is not accepted (only RS256 and ES256)")]
    AlgorithmNotAllowed {
        /// The `alg` the token claimed.
        alg: String,
    },
    /// The header names no key.
    #[error("the token's header has no kid")]
    MissingKid,
    /// The header names a key that is not in the JWKS.
    #[error("kid {kid:?} is not in the JWKS")]
    UnknownKid {
        /// The `kid` the token named.
        kid: String,
    },
    /// The named key exists but may not verify the token's algorithm (an RS256 token naming an
    /// EC key, a key declared for another `alg`, a symmetric key, an encryption key...).
    #[error("JWKS key {kid:?} is {key}, which may not verify {alg:?}")]
    KeyMismatch {
        /// The `kid` the token named.
        kid: String,
        /// The token's algorithm (`RS256` or `ES256`).
        alg: &'static str,
        /// What the key is.
        key: String,
    },
    /// The signature does not verify with the named key.
    #[error("the signature does not verify")]
    BadSignature,
    /// `exp` is more than the leeway in the past.
    #[error("the token has expired")]
    Expired,
    /// `nbf` is more than the leeway in the future.
    #[error("the token is not valid yet (nbf)")]
    NotYetValid,
    /// `iss` is not exactly the configured issuer.
    #[error("the token's issuer is not the configured one")]
    WrongIssuer,
    /// `aud` (a string or an array) does not contain the configured audience.
    #[error("the token's audience does not include the configured one")]
    WrongAudience,
    /// A required claim (`exp`, `iss`, `aud`) is absent.
    #[error("the token has no {0:?} claim")]
    MissingClaim(String),
    /// The payload is not base64url JSON, or a claim has the wrong type.
    #[error("the token's claims are malformed")]
    MalformedClaims(#[source] JwtError),
    /// Any other refusal by jsonwebtoken; kept whole for the log.
    #[error("the token was refused")]
    Refused(#[source] JwtError),
}

/// Why a token's JOSE header could not be read.
#[derive(Debug, thiserror::Error)]
pub enum HeaderError {
    /// Not `header.payload.signature`.
    #[error("not three dot-separated parts")]
    Shape,
    /// The header part is not unpadded base64url.
    #[error("the header is not base64url")]
    Base64(#[source] base64::DecodeError),
    /// The header is not a JSON object with a string `alg` (and a string `kid`, if any).
    #[error("the header is not a JSON object with a string \"alg\"")]
    Json(#[source] serde_json::Error),
    /// A `crit` header parameter: it lists extensions the recipient must understand, and none
    /// is understood here (RFC 7515 §4.1.11).
    #[error("the header has a \"crit\" parameter")]
    Critical,
}

impl From<JwtError> for AuthError {
    fn from(err: JwtError) -> Self {
        match err.kind() {
            ErrorKind::InvalidSignature => AuthError::BadSignature,
            ErrorKind::ExpiredSignature => AuthError::Expired,
            ErrorKind::ImmatureSignature => AuthError::NotYetValid,
            ErrorKind::InvalidIssuer => AuthError::WrongIssuer,
            ErrorKind::InvalidAudience => AuthError::WrongAudience,
            ErrorKind::MissingRequiredClaim(claim) => AuthError::MissingClaim(claim.clone()),
            ErrorKind::InvalidToken
            | ErrorKind::InvalidClaimFormat(_)
            | ErrorKind::Base64(_)
            | ErrorKind::Json(_)
            | ErrorKind::Utf8(_) => AuthError::MalformedClaims(err),
            _ => AuthError::Refused(err),
        }
    }
}

/// The JOSE header members read before any cryptography.
#[derive(Deserialize)]
struct JoseHeader {
    alg: String,
    kid: Option<String>,
    crit: Option<IgnoredAny>,
}

/// The claims kept after verification. jsonwebtoken has already checked `exp`, `nbf`, `iss`
/// and `aud`; `iss` is read again because jsonwebtoken also accepts an array.
#[derive(Deserialize)]
struct Claims {
    sub: Option<String>,
    /// NumericDate may be fractional (RFC 7519 §2). Optional here so that a missing `exp`
    /// reaches jsonwebtoken's required-claim check (claims are deserialized before validation).
    exp: Option<f64>,
    iss: Option<serde_json::Value>,
    scope: Option<ScopeClaim>,
}

/// `scope` is a space-separated string (RFC 8693 §4.2); some issuers send an array instead,
/// which means the same thing.
#[derive(Deserialize)]
#[serde(untagged)]
enum ScopeClaim {
    Text(String),
    List(Vec<String>),
}

/// Verifies bearer tokens against one JWKS, issuer and audience, and remembers verified tokens
/// until they expire. Share one per process (`Arc<JwtVerifier>`): it is `Send + Sync`.
pub struct JwtVerifier {
    keys: KeyRing,
    issuer: String,
    audience: String,
    rs256: Validation,
    es256: Validation,
    cache: TokenCache,
    signature_checks: AtomicU64,
    /// The prefix the identity provider puts before the gateway's scopes (see
    /// `Principal::from_prefixed_scope_claim`); empty by default.
    scope_prefix: String,
}

impl fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("keys", &self.keys)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

impl JwtVerifier {
    /// A verifier trusting the keys of `jwks` (a JWKS document) for tokens whose `iss` is
    /// `issuer` and whose `aud` contains `audience`, with a cache of 10,000 tokens.
    ///
    /// Errors if the document is not a JWKS, holds a malformed or weak RSA/P-256 key, repeats a
    /// `kid`, or has no RS256/ES256 key with a `kid`. To rotate keys, publish the new key under
    /// a new `kid` alongside the old one and build a new verifier.
    pub fn new(jwks: &[u8], issuer: &str, audience: &str) -> Result<Self, JwksError> {
        super::use_aws_lc();
        let keys = KeyRing::parse(jwks)?;
        Ok(JwtVerifier {
            keys,
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            rs256: validation(Algorithm::RS256, issuer, audience),
            es256: validation(Algorithm::ES256, issuer, audience),
            cache: TokenCache::new(cache::DEFAULT_CAPACITY),
            signature_checks: AtomicU64::new(0),
            scope_prefix: String::new(),
        })
    }

    /// The same verifier for scopes the identity provider names with `prefix` (Amazon Cognito:
    /// `{resource server identifier}/`).
    #[must_use]
    pub fn with_scope_prefix(mut self, prefix: &str) -> Self {
        self.scope_prefix = prefix.to_owned();
        self
    }

    /// The same verifier with a cache bounded to `capacity` tokens (0 disables caching).
    #[must_use]
    pub fn with_cache_capacity(mut self, capacity: u64) -> Self {
        self.cache = TokenCache::new(capacity);
        self
    }

    /// Checks an `Authorization` header value (`None` when the request has none) and returns
    /// the token's principal. A token seen before and not yet past its `exp` is answered from
    /// the cache without a signature check.
    pub fn verify(&self, authorization: Option<&str>) -> Result<Principal, AuthError> {
        let token = bearer_token(authorization)?;
        let key = cache::key(token);
        if let Some(principal) = self.cache.get(&key) {
            return Ok(principal);
        }
        let (principal, exp) = self.verify_signed(token)?;
        self.cache.insert(key, principal.clone(), exp);
        Ok(principal)
    }

    /// Ids of the JWKS keys that can verify tokens, sorted; for the start-up log line.
    pub fn key_ids(&self) -> Vec<&str> {
        self.keys.usable_kids()
    }

    /// How many signature checks this verifier has run (cache misses that got as far as the
    /// cryptography). For metrics, and for tests proving that cache hits skip the check.
    pub fn signature_checks(&self) -> u64 {
        self.signature_checks.load(Ordering::Relaxed)
    }

    /// How many verified tokens are cached now.
    pub fn cached_tokens(&self) -> u64 {
        self.cache.len()
    }

    /// The full check of a token not in the cache: returns its principal and `exp`.
    fn verify_signed(&self, token: &str) -> Result<(Principal, u64), AuthError> {
        let header = jose_header(token).map_err(AuthError::MalformedHeader)?;
        let (alg, alg_name, validation) = match header.alg.as_str() {
            "RS256" => (Algorithm::RS256, "RS256", &self.rs256),
            "ES256" => (Algorithm::ES256, "ES256", &self.es256),
            _ => return Err(AuthError::AlgorithmNotAllowed { alg: header.alg }),
        };
        let kid = header.kid.ok_or(AuthError::MissingKid)?;
        let Some(trusted) = self.keys.get(&kid) else {
            return Err(AuthError::UnknownKid { kid });
        };
        let key = trusted.for_alg(alg).map_err(|key| AuthError::KeyMismatch {
            kid,
            alg: alg_name,
            key,
        })?;

        self.signature_checks.fetch_add(1, Ordering::Relaxed);
        let claims = jsonwebtoken::decode::<Claims>(token, key, validation)?.claims;

        if claims.iss.as_ref().and_then(serde_json::Value::as_str) != Some(self.issuer.as_str()) {
            return Err(AuthError::WrongIssuer);
        }
        let principal = match &claims.scope {
            Some(ScopeClaim::Text(scope)) => {
                Principal::from_prefixed_scope_claim(scope, &self.scope_prefix)
            }
            Some(ScopeClaim::List(scopes)) => {
                Principal::from_prefixed_scopes(scopes, &self.scope_prefix)
            }
            None => Principal::default(),
        };
        let principal = match claims.sub {
            Some(sub) => principal.with_subject(sub),
            None => principal,
        };
        // jsonwebtoken required `exp` and accepted it as a finite, non-negative number; `as`
        // saturates anyway.
        let exp = claims
            .exp
            .ok_or_else(|| AuthError::MissingClaim("exp".to_owned()))?;
        Ok((principal, exp as u64))
    }
}

fn validation(alg: Algorithm, issuer: &str, audience: &str) -> Validation {
    let mut v = Validation::new(alg);
    v.leeway = LEEWAY_SECS;
    v.validate_exp = true;
    v.validate_nbf = true;
    v.validate_aud = true;
    v.set_issuer(&[issuer]);
    v.set_audience(&[audience]);
    // jsonwebtoken checks `iss` and `aud` only when present unless they are required.
    v.set_required_spec_claims(&["exp", "iss", "aud"]);
    v
}

/// The token of `Bearer <token>`. The scheme is case-insensitive (RFC 9110 §11.1); the token is
/// one word (RFC 6750 §2.1).
fn bearer_token(authorization: Option<&str>) -> Result<&str, AuthError> {
    let value = authorization
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .ok_or(AuthError::MissingHeader)?;
    let (scheme, token) = value.split_once(' ').ok_or(AuthError::NotBearer)?;
    let token = token.trim_start_matches(' ');
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() || token.contains(' ') {
        return Err(AuthError::NotBearer);
    }
    if token.len() > MAX_TOKEN_LEN {
        return Err(AuthError::TooLong);
    }
    Ok(token)
}

/// Reads the JOSE header without trusting it, to choose algorithm and key. Read here rather
/// than by `jsonwebtoken::decode_header` so that `alg: none` or `HS256` are reported as the
/// refused algorithm they are, not as an unreadable header.
fn jose_header(token: &str) -> Result<JoseHeader, HeaderError> {
    let mut parts = token.split('.');
    let (Some(header), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(HeaderError::Shape);
    };
    let json = URL_SAFE_NO_PAD
        .decode(header)
        .map_err(HeaderError::Base64)?;
    let header: JoseHeader = serde_json::from_slice(&json).map_err(HeaderError::Json)?;
    if header.crit.is_some() {
        return Err(HeaderError::Critical);
    }
    Ok(header)
}

#[cfg(test)]
mod tests {
    use std::thread::sleep;
    use std::time::Duration;

    use super::super::{jwks_for, mint};
    use super::*;

    #[test]
    fn a_cached_token_is_refused_once_past_its_exp() {
        // Given a verifier without leeway (private fields: the 60 s leeway is the contract,
        // but waiting 60 s in a test is not), and a cached token living two seconds (one
        // could cross a second boundary before the first check and never be cached).
        let pem = include_bytes!("../../tests/keys/ec-a.pem");
        let jwks = serde_json::to_vec(&jwks_for(pem, "k").unwrap()).unwrap();
        let mut verifier = JwtVerifier::new(&jwks, "iss", "aud").unwrap();
        verifier.rs256.leeway = 0;
        verifier.es256.leeway = 0;
        let token = mint(pem, "k", "iss", "aud", "alpha:send", Duration::from_secs(2)).unwrap();
        let claims = jsonwebtoken::dangerous::insecure_decode::<serde_json::Value>(&token).unwrap();
        let exp = claims.claims["exp"].as_u64().unwrap();
        let header = format!("Bearer {token}");
        verifier.verify(Some(&header)).unwrap();
        verifier.verify(Some(&header)).unwrap();
        assert_eq!(verifier.signature_checks(), 1);
        // When its exp has passed,
        while cache::now_unix() <= exp {
            sleep(Duration::from_millis(100));
        }
        // then the cache does not answer, and the full check refuses it.
        assert!(matches!(
            verifier.verify(Some(&header)),
            Err(AuthError::Expired)
        ));
        assert_eq!(verifier.signature_checks(), 2);
    }

    #[test]
    fn a_verifier_can_be_shared_between_threads() {
        fn shared<T: Send + Sync>() {}
        shared::<JwtVerifier>();
        shared::<Principal>();
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        assert_eq!(bearer_token(Some("bearer abc")).unwrap(), "abc");
        assert_eq!(bearer_token(Some("BEARER  abc ")).unwrap(), "abc");
    }

    #[test]
    fn a_header_without_a_token_is_not_bearer() {
        for value in [
            "Bearer",
            "Bearer ",
            "Bearer a b",
            "Basic dXNlcjpwYXNz",
            "Bearerabc",
        ] {
            assert!(
                matches!(bearer_token(Some(value)), Err(AuthError::NotBearer)),
                "{value:?}"
            );
        }
    }

    #[test]
    fn a_missing_or_blank_header_is_missing() {
        for value in [None, Some(""), Some("   ")] {
            assert!(
                matches!(bearer_token(value), Err(AuthError::MissingHeader)),
                "{value:?}"
            );
        }
    }

    #[test]
    fn an_oversized_token_is_refused_before_hashing() {
        let value = format!("Bearer {}", "a".repeat(MAX_TOKEN_LEN + 1));
        assert!(matches!(
            bearer_token(Some(&value)),
            Err(AuthError::TooLong)
        ));
    }

    #[test]
    fn a_crit_header_is_refused() {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","kid":"a","crit":["exp"]}"#);
        let token = format!("{header}.e30.c2ln");
        assert!(matches!(jose_header(&token), Err(HeaderError::Critical)));
    }
}
