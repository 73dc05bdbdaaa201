//! The verified-token cache: a producer sends many requests with one token, and only the first
//! should pay for a signature check.
//!
//! Keyed by SHA-256 of the token, never the token itself: the cache then holds no bearer
//! credential, and finding another token with the same key is a SHA-256 second preimage (a
//! non-cryptographic hash would let a crafted token collide with a victim's and borrow its
//! scopes). Each entry lives until its token's `exp`, so an expired token is never served.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_lc_rs::digest::{SHA256, digest};
use moka::Expiry;
use moka::sync::Cache;

use super::scope::Principal;

/// Default bound: a few MB at most (~100 bytes per entry plus scopes), far more live tokens
/// than one gateway instance sees.
pub(crate) const DEFAULT_CAPACITY: u64 = 10_000;

/// SHA-256 of a token.
pub(crate) type TokenKey = [u8; 32];

pub(crate) fn key(token: &str) -> TokenKey {
    let hash = digest(&SHA256, token.as_bytes());
    let mut key = [0u8; 32];
    key.copy_from_slice(hash.as_ref());
    key
}

/// Seconds since the Unix epoch, the unit of `exp`. A clock before 1970 reads as 0, which only
/// makes tokens look less expired to the cache; the verifier's own check still applies.
pub(crate) fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[derive(Clone)]
struct Entry {
    principal: Principal,
    /// The token's `exp` (Unix seconds).
    exp: u64,
}

/// Expires each entry at its token's `exp`, converted once from wall-clock seconds to moka's
/// monotonic clock.
struct UntilExp;

impl UntilExp {
    fn remaining(entry: &Entry) -> Option<Duration> {
        Some(Duration::from_secs(entry.exp.saturating_sub(now_unix())))
    }
}

impl Expiry<TokenKey, Entry> for UntilExp {
    fn expire_after_create(&self, _: &TokenKey, entry: &Entry, _: Instant) -> Option<Duration> {
        Self::remaining(entry)
    }

    fn expire_after_update(
        &self,
        _: &TokenKey,
        entry: &Entry,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Self::remaining(entry)
    }
}

/// Bounded map `SHA-256(token) -> (principal, exp)`.
pub(crate) struct TokenCache {
    entries: Cache<TokenKey, Entry>,
}

impl TokenCache {
    pub(crate) fn new(capacity: u64) -> Self {
        let entries = Cache::builder()
            .max_capacity(capacity)
            .expire_after(UntilExp)
            .build();
        TokenCache { entries }
    }

    /// The principal of a token verified earlier, if its `exp` has not passed.
    pub(crate) fn get(&self, key: &TokenKey) -> Option<Principal> {
        let entry = self.entries.get(key)?;
        // moka's timer runs on the monotonic clock; `exp` is wall-clock. Checking the wall
        // clock again keeps "never past exp" true even if the two drift (suspend, NTP step).
        if entry.exp > now_unix() {
            Some(entry.principal)
        } else {
            self.entries.invalidate(key);
            None
        }
    }

    /// Remembers a verified token until its `exp`. A token already past `exp` (accepted only
    /// within the leeway) is not cached: the next request checks it again.
    pub(crate) fn insert(&self, key: TokenKey, principal: Principal, exp: u64) {
        if exp > now_unix() {
            self.entries.insert(key, Entry { principal, exp });
        }
    }

    /// Number of live entries, after applying pending evictions (moka applies them lazily).
    pub(crate) fn len(&self) -> u64 {
        self.entries.run_pending_tasks();
        self.entries.entry_count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_the_sha256_of_the_token() {
        // SHA-256("abc"), FIPS 180-2 appendix B.1.
        assert_eq!(key("abc")[..4], [0xba, 0x78, 0x16, 0xbf]);
    }

    #[test]
    fn a_token_past_exp_is_not_cached() {
        let cache = TokenCache::new(10);
        cache.insert(key("t"), Principal::default(), now_unix() - 1);
        assert!(cache.get(&key("t")).is_none());
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn the_cache_evicts_beyond_its_capacity() {
        let cache = TokenCache::new(5);
        let exp = now_unix() + 600;
        for i in 0..50 {
            cache.insert(key(&i.to_string()), Principal::default(), exp);
        }
        assert!(cache.len() <= 5, "{} entries", cache.len());
    }
}
