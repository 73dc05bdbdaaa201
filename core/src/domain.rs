//! Domain vocabulary: validated newtypes that every other layer speaks.
//!
//! A name that does not satisfy API.md's rule cannot be constructed, so it can never reach a
//! store, a topic name or a log line unvalidated.

use std::fmt;

use serde::Serialize;
use uuid::Uuid;

/// Longest client or event name API.md allows.
pub const MAX_NAME_LEN: usize = 64;

/// Why a path segment is not a valid client or event name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("name is empty")]
    Empty,
    #[error("name is longer than {MAX_NAME_LEN} characters")]
    TooLong,
    #[error("name may contain only ASCII letters, digits, '_' and '-'")]
    InvalidCharacter,
}

fn check_name(raw: &str) -> Result<(), NameError> {
    if raw.is_empty() {
        return Err(NameError::Empty);
    }
    if raw.len() > MAX_NAME_LEN {
        return Err(NameError::TooLong);
    }
    // No dots: the Kafka topic is `{client}.{event}`, a dot would make two pairs collide.
    if !raw
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(NameError::InvalidCharacter);
    }
    Ok(())
}

macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Parses a name against `^[A-Za-z0-9_-]{1,64}$`.
            pub fn parse(raw: &str) -> Result<Self, NameError> {
                check_name(raw)?;
                Ok(Self(raw.to_owned()))
            }

            /// Whether `raw` passes the name rule, without making a name of it.
            pub fn is_valid(raw: &str) -> bool {
                check_name(raw).is_ok()
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

name_type!(
    /// The client that owns a set of event names (`{client}` in the paths).
    ClientId
);
name_type!(
    /// An event name within one client (`{event}` in the paths).
    EventName
);

/// A registered schema's version; the first registration of a pair is version 1, each later
/// one the next integer. Versions are immutable once registered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct SchemaVersion(u32);

/// Why a text is not a schema version.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a version is a whole number from 1 to {max}", max = u32::MAX)]
pub struct VersionError;

impl SchemaVersion {
    pub const FIRST: Self = Self(1);

    /// Versions start at 1; zero is not a version.
    pub fn new(raw: u32) -> Option<Self> {
        (raw >= 1).then_some(Self(raw))
    }

    /// Parses a version as a client writes it (`?version=3`): digits only, no sign, no zero.
    pub fn parse(raw: &str) -> Result<Self, VersionError> {
        if raw.is_empty() || !raw.bytes().all(|b| b.is_ascii_digit()) {
            return Err(VersionError);
        }
        raw.parse::<u32>()
            .ok()
            .and_then(Self::new)
            .ok_or(VersionError)
    }

    pub fn get(self) -> u32 {
        self.0
    }

    /// The version after this one, if there is one.
    pub fn next(self) -> Option<Self> {
        self.0.checked_add(1).map(Self)
    }
}

impl fmt::Display for SchemaVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// An instant as API.md writes times it reports (`registered_at`, `received_at`): RFC 3339,
/// UTC, milliseconds — `2026-11-29T09:00:00.123Z`. Written field by field so it cannot fail
/// (the `time` crate's formatter reports years past 9999 as an error).
pub fn rfc3339(at: time::OffsetDateTime) -> String {
    let at = at.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second(),
        at.millisecond()
    )
}

/// The current time, as [`rfc3339`] writes it.
pub fn now_rfc3339() -> String {
    rfc3339(time::OffsetDateTime::now_utc())
}

/// The id of an accepted event: a UUID v7, so ids sort by acceptance time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct EventId(Uuid);

impl EventId {
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }

    pub fn parse(raw: &str) -> Result<Self, uuid::Error> {
        Uuid::parse_str(raw).map(Self)
    }

    pub fn as_uuid(&self) -> Uuid {
        self.0
    }
}

impl std::str::FromStr for EventId {
    type Err = uuid::Error;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        Self::parse(raw)
    }
}

impl Default for EventId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Longest `Idempotency-Key` API.md allows.
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;

/// Why a header value is not an idempotency key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("an Idempotency-Key is 1 to {MAX_IDEMPOTENCY_KEY_LEN} visible ASCII characters")]
pub struct IdempotencyKeyError;

/// A client's `Idempotency-Key`: 1–255 visible ASCII characters (no space, no control),
/// scoped to one (client, event) pair by the stores.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub fn parse(raw: &[u8]) -> Result<Self, IdempotencyKeyError> {
        let visible = |b: &u8| (0x21..=0x7e).contains(b);
        if raw.is_empty() || raw.len() > MAX_IDEMPOTENCY_KEY_LEN || !raw.iter().all(visible) {
            return Err(IdempotencyKeyError);
        }
        // Visible ASCII is UTF-8.
        Ok(Self(String::from_utf8_lossy(raw).into_owned()))
    }

    /// A key of the gateway's own (a replay's lock), outside the keys a client can send: it
    /// must contain a character [`IdempotencyKey::parse`] refuses.
    pub(crate) fn reserved(name: String) -> Self {
        debug_assert!(Self::parse(name.as_bytes()).is_err());
        Self(name)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What makes two requests with one idempotency key "the same request": SHA-256 of the route,
/// the body bytes and the `version` asked for (`send_event` and `send_events` share a pair's
/// keys: the same body sent to the other route is another request).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint([u8; 32]);

impl Fingerprint {
    pub fn of(route: &str, body: &[u8], version: Option<SchemaVersion>) -> Self {
        let mut context = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
        // Length-prefixed, so that no route and body can pose as another pair of them.
        context.update(&(route.len() as u64).to_be_bytes());
        context.update(route.as_bytes());
        // The version first, length-prefixed by construction (4 bytes or a marker), so that no
        // body can collide with another version's.
        match version {
            Some(version) => {
                context.update(&[1]);
                context.update(&version.get().to_be_bytes());
            }
            None => context.update(&[0]),
        }
        context.update(body);
        let mut bytes = [0; 32];
        bytes.copy_from_slice(context.finish().as_ref());
        Self(bytes)
    }

    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lowercase hex, as the text-only stores keep it.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    pub fn from_hex(hex: &str) -> Option<Self> {
        if hex.len() != 64 {
            return None;
        }
        let mut bytes = [0; 32];
        for (i, byte) in bytes.iter_mut().enumerate() {
            *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(Self(bytes))
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({})", &self.to_hex()[..12])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_names_parse() {
        for ok in ["SpongeBob", "Fruits", "a", "A_b-9", &"x".repeat(64)] {
            assert_eq!(ClientId::parse(ok).unwrap().as_str(), ok);
        }
    }

    #[test]
    fn names_outside_the_rule_are_rejected_with_the_reason() {
        assert_eq!(EventName::parse(""), Err(NameError::Empty));
        assert_eq!(EventName::parse(&"x".repeat(65)), Err(NameError::TooLong));
        for bad in ["a.b", "a/b", "..", "é", "a\0", "a b", "%2e"] {
            assert_eq!(
                EventName::parse(bad),
                Err(NameError::InvalidCharacter),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn version_zero_does_not_exist() {
        assert_eq!(SchemaVersion::new(0), None);
        assert_eq!(SchemaVersion::new(1), Some(SchemaVersion::FIRST));
    }

    #[test]
    fn versions_parse_from_digits_only() {
        assert_eq!(SchemaVersion::parse("3").unwrap().get(), 3);
        assert_eq!(SchemaVersion::parse("007").unwrap().get(), 7);
        for bad in [
            "",
            "0",
            "-1",
            "+1",
            "1.0",
            "1e3",
            " 1",
            "x",
            "4294967296",
            "99999999999999999999",
        ] {
            assert_eq!(SchemaVersion::parse(bad), Err(VersionError), "{bad:?}");
        }
        assert_eq!(SchemaVersion::parse("4294967295").unwrap().get(), u32::MAX);
        assert_eq!(SchemaVersion::parse("4294967295").unwrap().next(), None);
    }

    #[test]
    fn times_are_rfc3339_utc_with_milliseconds() {
        let at = time::macros::datetime!(2026-11-29 09:05:07.123456 +02:00);
        assert_eq!(rfc3339(at), "2026-11-29T07:05:07.123Z");
        let parsed = time::OffsetDateTime::parse(
            &now_rfc3339(),
            &time::format_description::well_known::Rfc3339,
        );
        assert!(parsed.is_ok());
    }

    #[test]
    fn idempotency_keys_are_1_to_255_visible_ascii_characters() {
        for ok in ["a", "order-42:retry/1", &"k".repeat(255), "~!@#$%^&*()"] {
            assert_eq!(IdempotencyKey::parse(ok.as_bytes()).unwrap().as_str(), ok);
        }
        for bad in ["", " ", "a b", "tab\t", "é", &"k".repeat(256), "nul\0"] {
            assert_eq!(
                IdempotencyKey::parse(bad.as_bytes()),
                Err(IdempotencyKeyError),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn a_fingerprint_tells_bodies_and_versions_apart_and_round_trips_as_hex() {
        let v1 = SchemaVersion::FIRST;
        let a = Fingerprint::of("r", b"{}", None);
        assert_eq!(a, Fingerprint::of("r", b"{}", None));
        assert_ne!(a, Fingerprint::of("r", b"{} ", None));
        assert_ne!(a, Fingerprint::of("r", b"{}", Some(v1)));
        assert_ne!(a, Fingerprint::of("s", b"{}", None));
        assert_eq!(Fingerprint::from_hex(&a.to_hex()), Some(a));
        assert_eq!(Fingerprint::from_hex("zz"), None);
    }

    #[test]
    fn event_ids_are_uuid_v7_and_increase() {
        let a = EventId::new();
        let b = EventId::new();
        assert_eq!(a.as_uuid().get_version_num(), 7);
        assert!(a < b);
    }
}
