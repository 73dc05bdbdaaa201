//! The scope rule: which scopes allow which action on which client (API.md, "Authentication and
//! authorization"). Pure: no tokens, no I/O, so the Lambda path (claims handed over by API
//! Gateway's JWT authorizer) and `serve` (claims from [`super::JwtVerifier`]) apply the very same
//! rule.

use std::fmt;
use std::sync::Arc;

/// What a request wants to do to a client's data; each API route needs exactly one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// `send_event`, `send_events`, `validate`, `replay`: needs `{client}:send`.
    Send,
    /// `register_event`, `check_compatibility`, `PUT compatibility`: needs `{client}:register`.
    Register,
    /// `schema`, `versions`, `list_events`, `GET compatibility`, `rejected`: needs `{client}:read`.
    Read,
}

impl Action {
    /// The scope suffix that grants this action (`send`, `register`, `read`).
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Send => "send",
            Action::Register => "register",
            Action::Read => "read",
        }
    }

    fn from_suffix(suffix: &str) -> Option<Self> {
        // Exact, case-sensitive: `SEND` or `sendx` grant nothing.
        match suffix {
            "send" => Some(Action::Send),
            "register" => Some(Action::Register),
            "read" => Some(Action::Read),
            _ => None,
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One understood scope: an action on one client, or on every client (`*`).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Grant {
    /// `None` is the `*` wildcard.
    client: Option<Box<str>>,
    action: Action,
}

impl Grant {
    /// Parses one scope token; anything that is not exactly `{client}:{action}` or
    /// `*:{action}` is `None` (an OAuth scope of another API, or a typo), so it grants nothing.
    fn parse(scope: &str) -> Option<Self> {
        // `split_once` at the first ':' and a client name that may not contain ':' together
        // make `alpha:send:x` fail (its action part is `send:x`).
        let (client, action) = scope.split_once(':')?;
        let action = Action::from_suffix(action)?;
        let client = match client {
            "*" => None,
            name if is_client_name(name) => Some(name.into()),
            _ => return None,
        };
        Some(Grant { client, action })
    }

    fn allows(&self, action: Action, client: &str) -> bool {
        self.action == action
            && self
                .client
                .as_deref()
                .is_none_or(|granted| granted == client)
    }
}

/// True if `scope` is exactly one scope this gateway understands (for minting, where an
/// unknown scope is a typo worth refusing).
pub(crate) fn is_scope(scope: &str) -> bool {
    Grant::parse(scope).is_some()
}

/// API.md's name rule. A copy of `domain::ClientId`'s check so this module stands alone; once
/// in core it can call `crate::domain::ClientId::parse` instead.
/// The client name rule of API.md, the same one `domain::ClientId` enforces.
fn is_client_name(name: &str) -> bool {
    crate::domain::ClientId::parse(name).is_ok()
}

/// Who made a request (for logs) and what their token's scopes allow.
///
/// Cheap to clone (two reference counts), because the verified-token cache hands out a clone
/// on every hit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Principal {
    subject: Option<Arc<str>>,
    grants: Arc<[Grant]>,
}

impl Principal {
    /// From the OAuth 2 `scope` claim: scope tokens separated by spaces (RFC 6749 §3.3).
    /// Unknown or malformed scopes are ignored: they grant nothing.
    pub fn from_scope_claim(scope: &str) -> Self {
        Self::from_scopes(scope.split(' '))
    }

    /// [`Principal::from_scope_claim`] for scopes an identity provider names with a `prefix`:
    /// Amazon Cognito writes a custom scope as `{resource server identifier}/{scope}`, so with
    /// the prefix `event-processor/` the scope `event-processor/alpha:send` grants `alpha:send`.
    /// A scope without the prefix grants nothing (another resource server's scopes never count).
    pub fn from_prefixed_scope_claim(scope: &str, prefix: &str) -> Self {
        Self::from_prefixed_scopes(scope.split(' '), prefix)
    }

    /// [`Principal::from_scopes`] for scopes named with a `prefix`; see
    /// [`Principal::from_prefixed_scope_claim`].
    pub fn from_prefixed_scopes<I, S>(scopes: I, prefix: &str) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let grants: Vec<Grant> = scopes
            .into_iter()
            .filter_map(|s| s.as_ref().strip_prefix(prefix).and_then(Grant::parse))
            .collect();
        Principal {
            subject: None,
            grants: grants.into(),
        }
    }

    /// From a list of scopes, one scope token each, as API Gateway's JWT authorizer hands them
    /// over. An item that is not exactly one valid scope (e.g. it contains a space) grants
    /// nothing.
    pub fn from_scopes<I, S>(scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Self::from_prefixed_scopes(scopes, "")
    }

    /// The same principal with the token's `sub` claim attached, for request logs.
    #[must_use]
    pub fn with_subject(mut self, subject: impl Into<Arc<str>>) -> Self {
        self.subject = Some(subject.into());
        self
    }

    /// The token's `sub` claim, if it had one. For logs only: authorization never looks at it.
    pub fn subject(&self) -> Option<&str> {
        self.subject.as_deref()
    }

    /// May this principal do `action` on `client`? True only if a scope is exactly
    /// `{client}:{action}` or `*:{action}`. A `client` that is not a valid name is never
    /// allowed, whatever the scopes (defence in depth: the HTTP layer rejects such names first).
    pub fn allows(&self, action: Action, client: &str) -> bool {
        is_client_name(client) && self.grants.iter().any(|g| g.allows(action, client))
    }

    /// True if the token may do `action` on every client (`*:{action}`).
    pub fn allows_every_client(&self, action: Action) -> bool {
        self.grants
            .iter()
            .any(|g| g.action == action && g.client.is_none())
    }

    /// True if no scope of the token grants anything here (a valid token that will get `403`
    /// everywhere) — worth a log line when a token is first seen.
    pub fn grants_nothing(&self) -> bool {
        self.grants.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scope_with_a_second_colon_grants_nothing() {
        let p = Principal::from_scope_claim("alpha:send:x");
        assert!(!p.allows(Action::Send, "alpha"));
        assert!(p.grants_nothing());
    }

    #[test]
    fn a_wildcard_does_not_allow_an_invalid_client_name() {
        let p = Principal::from_scope_claim("*:send");
        assert!(p.allows(Action::Send, "alpha"));
        assert!(!p.allows(Action::Send, "alpha.beta"));
        assert!(!p.allows(Action::Send, ""));
        assert!(!p.allows(Action::Send, "*"));
        assert!(!p.allows(Action::Send, &"a".repeat(65)));
    }

    #[test]
    fn a_64_character_client_name_is_valid_and_65_is_not() {
        let ok = "a".repeat(64);
        let long = "a".repeat(65);
        assert!(Principal::from_scope_claim(&format!("{ok}:read")).allows(Action::Read, &ok));
        assert!(Principal::from_scope_claim(&format!("{long}:read")).grants_nothing());
    }

    #[test]
    fn repeated_spaces_between_scopes_are_tolerated() {
        let p = Principal::from_scope_claim("  alpha:send   beta:read ");
        assert!(p.allows(Action::Send, "alpha"));
        assert!(p.allows(Action::Read, "beta"));
    }

    #[test]
    fn a_list_item_holding_two_scopes_grants_nothing() {
        let p = Principal::from_scopes(["alpha:send beta:read"]);
        assert!(p.grants_nothing());
    }

    #[test]
    fn a_prefixed_scope_grants_only_with_its_exact_prefix() {
        let p = Principal::from_prefixed_scope_claim(
            "event-processor/alpha:send other-app/beta:send beta:read",
            "event-processor/",
        );
        assert!(p.allows(Action::Send, "alpha"));
        assert!(
            !p.allows(Action::Send, "beta"),
            "another resource server's scope"
        );
        assert!(!p.allows(Action::Read, "beta"), "an unprefixed scope");
    }
}
