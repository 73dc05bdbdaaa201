//! Who is calling, decided once per request before routing, and the scope each route needs.
//!
//! The edge layer turns the request into a [`Caller`] (or a `401 unauthenticated`): anyone with
//! `AUTH=none`; the principal of a bearer token `serve` verified itself; or the principal of
//! the claims API Gateway's JWT authorizer verified and the Lambda glue handed over
//! ([`AuthorizerClaims`]). Then each route's `Pair` / `Client` extractor asks whether the caller
//! may do the route's action ([`Permission`]) on the path's client: if not, `403 forbidden`.
//! A route cannot be added without saying which action it is.

use std::sync::Arc;

use axum::extract::Request;
use axum::http::header;

use super::error::ApiError;
use crate::auth::{Action, AuthError, JwtVerifier, Principal};
use crate::domain::ClientId;

/// How requests are authenticated.
#[derive(Clone, Default)]
pub enum Auth {
    /// `AUTH=none`: every caller may do everything.
    #[default]
    Off,
    /// `AUTH=jwt` on `serve`: the bearer token is verified here against the JWKS.
    Verify(Arc<JwtVerifier>),
    /// `AUTH=jwt` behind API Gateway's JWT authorizer: the token was verified upstream; its
    /// claims arrive as [`AuthorizerClaims`]. A request without them is refused (401), so a
    /// route deployed without the authorizer does not open the API. Scopes count only with
    /// `scope_prefix` (`AUTH_SCOPE_PREFIX`, e.g. Cognito's resource server identifier).
    Authorizer { scope_prefix: Arc<str> },
}

/// The claims of a token API Gateway's JWT authorizer verified, as the Lambda glue hands them
/// to the HTTP layer (core knows nothing of Lambda's request context).
#[derive(Debug, Clone, Default)]
pub struct AuthorizerClaims {
    /// The token's scopes as the authorizer lists them, if it does.
    pub scopes: Option<Vec<String>>,
    /// The token's `scope` claim (space-separated), if any.
    pub scope_claim: Option<String>,
    /// The token's `sub` claim, for logs.
    pub subject: Option<String>,
}

impl AuthorizerClaims {
    fn principal(&self, prefix: &str) -> Principal {
        let principal = match (&self.scopes, &self.scope_claim) {
            (Some(scopes), _) if !scopes.is_empty() => {
                Principal::from_prefixed_scopes(scopes, prefix)
            }
            (_, Some(claim)) => Principal::from_prefixed_scope_claim(claim, prefix),
            _ => Principal::default(),
        };
        match &self.subject {
            Some(subject) => principal.with_subject(subject.as_str()),
            None => principal,
        }
    }
}

/// Why a request is not authenticated (answered `401 unauthenticated`).
#[derive(Debug, thiserror::Error)]
pub enum Unauthenticated {
    #[error(transparent)]
    Token(#[from] AuthError),
    #[error("the request reached the function without the JWT authorizer's claims")]
    NoAuthorizerClaims,
}

/// Who the request comes from, as the auth layer decided.
#[derive(Debug, Clone)]
pub(crate) enum Caller {
    Anyone,
    Principal(Principal),
}

impl Caller {
    fn allows(&self, action: Action, client: &ClientId) -> bool {
        match self {
            Caller::Anyone => true,
            Caller::Principal(principal) => principal.allows(action, client.as_str()),
        }
    }
}

/// The [`Caller`] of a request, or why it is not authenticated (answered 401 by the edge).
pub(crate) fn caller(auth: &Auth, request: &Request) -> Result<Caller, Unauthenticated> {
    match auth {
        Auth::Off => Ok(Caller::Anyone),
        Auth::Verify(verifier) => {
            // A header value that is not visible ASCII is no bearer token: the verifier
            // answers it as malformed.
            let header = request
                .headers()
                .get(header::AUTHORIZATION)
                .map(|value| value.to_str().unwrap_or("\u{fffd}"));
            verifier
                .verify(header)
                .map(Caller::Principal)
                .map_err(Unauthenticated::from)
        }
        Auth::Authorizer { scope_prefix } => request
            .extensions()
            .get::<AuthorizerClaims>()
            .map(|claims| Caller::Principal(claims.principal(scope_prefix)))
            .ok_or(Unauthenticated::NoAuthorizerClaims),
    }
}

/// The action a route performs on its client's data.
pub(crate) trait Permission {
    const ACTION: Action;
}

/// `send_event`, `send_events`, `validate`, `replay`.
#[derive(Debug)]
pub(crate) struct ToSend;
/// `register_event`, `check_compatibility`, `PUT compatibility`.
#[derive(Debug)]
pub(crate) struct ToRegister;
/// `schema`, `versions`, `list_events`, `GET compatibility`, `rejected`.
#[derive(Debug)]
pub(crate) struct ToRead;

impl Permission for ToSend {
    const ACTION: Action = Action::Send;
}
impl Permission for ToRegister {
    const ACTION: Action = Action::Register;
}
impl Permission for ToRead {
    const ACTION: Action = Action::Read;
}

/// Whether the request's caller may do `P`'s action on `client`: `403 forbidden` if not. A
/// request the auth layer did not see is refused too (fail closed).
pub(crate) fn authorize<P: Permission>(
    extensions: &axum::http::Extensions,
    client: &ClientId,
) -> Result<(), ApiError> {
    match extensions.get::<Caller>() {
        Some(caller) if caller.allows(P::ACTION, client) => Ok(()),
        _ => Err(ApiError::Forbidden {
            action: P::ACTION,
            client: client.clone(),
        }),
    }
}

/// Whether the request's caller may do `P`'s action on every client (`*`): `403` if not.
pub(crate) fn authorize_all<P: Permission>(
    extensions: &axum::http::Extensions,
) -> Result<(), ApiError> {
    match extensions.get::<Caller>() {
        Some(Caller::Anyone) => Ok(()),
        Some(Caller::Principal(principal)) if principal.allows_every_client(P::ACTION) => Ok(()),
        _ => Err(ApiError::ForbiddenAll { action: P::ACTION }),
    }
}
