//! Authentication and authorization (API.md, "Authentication and authorization"): bearer
//! token → [`Principal`] → "may this principal do this [`Action`] on this client?".
//!
//! - [`Principal::allows`]: the pure scope rule, shared by `serve` and the Lambda path, where
//!   API Gateway's JWT authorizer has verified the token and the function builds the principal
//!   from the claims it is handed (`Principal::from_scope_claim(scope).with_subject(sub)`).
//! - [`JwtVerifier`]: `serve`'s own RS256/ES256 verification against a JWKS, with a bounded
//!   cache of verified tokens so a steady producer pays one signature check per token.
//! - [`mint`], [`jwks_for`], [`generate_es256_key`]: keys and tokens for local use
//!   (`event-processor keygen`, `event-processor token`).
//!
//! Every [`AuthError`] is answered `401 unauthenticated`; a valid principal whose scopes do not
//! allow the action is `403 forbidden`. Only the HTTP edge makes that mapping.

mod cache;
mod jwks;
mod mint;
mod scope;
mod verify;

pub use jwks::JwksError;
pub use mint::{MintError, generate_es256_key, jwks_for, mint};
pub use scope::{Action, Principal};
pub use verify::{AuthError, HeaderError, JwtVerifier, LEEWAY_SECS, MAX_TOKEN_LEN};

/// Makes jsonwebtoken use aws-lc-rs, the provider rustls already links for the AWS SDK.
///
/// jsonwebtoken picks its provider from its cargo features, and panics on first use if both
/// `aws_lc_rs` and `rust_crypto` end up enabled (features unify across the dependency graph,
/// so another crate can turn the second one on). Installing it explicitly removes that trap.
/// Idempotent: a provider installed earlier (by this or anyone) stays.
fn use_aws_lc() {
    let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
}
