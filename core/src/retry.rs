//! The one retry policy of every adapter, and the request deadline it works within.
//!
//! A request gets one [`Deadline`], decided at the HTTP edge (on Lambda: the invocation's
//! remaining time minus a margin; see `http::extract`). Every backend call on that request's
//! path — schema lookups, publishing, batches of any size — retries transient failures with
//! full-jitter exponential backoff until that same deadline, and each attempt is cut off when
//! the deadline comes, so the whole request, retries included, ends in time for a JSON answer.
//!
//! An attempt cut off in flight may still have taken effect (a record stored, a row written):
//! adapters treat such a timeout as they treat a lost reply.

use std::error::Error;
use std::future::Future;
use std::time::Duration;

use rand::Rng;
use tokio::time::Instant;

use crate::error::ErrorChain;

/// The instant by which a request must be answered. Every retry loop on the request's path
/// stops there. Built on tokio's clock, so tests can pause time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Deadline(Instant);

impl Deadline {
    /// `budget` from now.
    pub fn after(budget: Duration) -> Self {
        Self(Instant::now() + budget)
    }

    /// At a given instant.
    pub fn at(instant: Instant) -> Self {
        Self(instant)
    }

    pub fn instant(self) -> Instant {
        self.0
    }

    /// Time left; zero once passed.
    pub fn remaining(self) -> Duration {
        self.0.saturating_duration_since(Instant::now())
    }

    pub fn has_passed(self) -> bool {
        self.remaining().is_zero()
    }
}

/// How retries are spaced and how long one attempt may take. The deadline is not part of it:
/// it belongs to the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The cap of the first backoff; each later cap doubles, up to `max_backoff`.
    pub first_backoff: Duration,
    pub max_backoff: Duration,
    /// The longest one attempt may take (it is also cut off at the deadline).
    pub attempt_timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            first_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(2),
            attempt_timeout: Duration::from_secs(4),
        }
    }
}

/// One attempt did not finish within its bound (the policy's attempt timeout, or what was
/// left before the deadline). What it did is unknown.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the attempt did not finish within {0:?}")]
pub struct AttemptTimedOut(pub Duration);

/// The state of one retried operation, for loops that decide themselves what to resend (a
/// Kinesis batch resends only its refused records). [`retry`] covers the simple shape.
#[derive(Debug)]
pub struct Retry {
    policy: RetryPolicy,
    deadline: Deadline,
    attempts: u32,
}

impl Retry {
    pub fn new(policy: RetryPolicy, deadline: Deadline) -> Self {
        Self {
            policy,
            deadline,
            attempts: 0,
        }
    }

    /// Attempts made so far.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// Runs one attempt, cut off after the policy's attempt timeout or at the deadline,
    /// whichever comes first.
    pub async fn attempt<F: Future>(&mut self, attempt: F) -> Result<F::Output, AttemptTimedOut> {
        self.attempts += 1;
        let bound = self.policy.attempt_timeout.min(self.deadline.remaining());
        tokio::time::timeout(bound, attempt)
            .await
            .map_err(|_| AttemptTimedOut(bound))
    }

    /// After a transient failure: sleeps a backoff drawn uniformly from zero to the current
    /// cap ("full jitter", so that many throttled callers do not retry in lockstep) and
    /// returns `true`, or returns `false` at once when no attempt could start before the
    /// deadline.
    pub async fn backoff(&mut self) -> bool {
        let exponent = self.attempts.saturating_sub(1).min(16);
        let cap = self
            .policy
            .first_backoff
            .saturating_mul(1 << exponent)
            .min(self.policy.max_backoff);
        let sleep = rand::rng().random_range(Duration::ZERO..=cap);
        if sleep >= self.deadline.remaining() {
            return false;
        }
        tokio::time::sleep(sleep).await;
        true
    }
}

/// How one attempt failed.
#[derive(Debug)]
pub enum Failure<E> {
    /// Another attempt may succeed (throttling, a dropped connection, a 5xx).
    Transient(E),
    /// Retrying cannot help (refused, malformed, not found).
    Permanent(E),
}

/// The last failure of a retried operation that gave up.
#[derive(Debug, thiserror::Error)]
pub enum LastAttempt<E: Error + 'static> {
    #[error(transparent)]
    Failed(E),
    #[error(transparent)]
    TimedOut(AttemptTimedOut),
}

/// Why [`retry`] gave up.
#[derive(Debug, thiserror::Error)]
pub enum RetryError<E: Error + 'static> {
    /// A failure retrying cannot fix; no further attempt was made.
    #[error("the call failed and cannot succeed on a retry")]
    Permanent(#[source] E),
    /// The deadline came while failures were still transient.
    #[error("no success within the deadline after {attempts} attempt(s)")]
    Exhausted {
        attempts: u32,
        #[source]
        last: LastAttempt<E>,
    },
}

impl<E: Error + 'static> RetryError<E> {
    /// The failure itself, unless the last attempt timed out.
    pub fn failure(&self) -> Option<&E> {
        match self {
            RetryError::Permanent(error)
            | RetryError::Exhausted {
                last: LastAttempt::Failed(error),
                ..
            } => Some(error),
            RetryError::Exhausted {
                last: LastAttempt::TimedOut(_),
                ..
            } => None,
        }
    }
}

/// Runs `op` until it succeeds, fails permanently, or the deadline leaves no time for another
/// attempt. `op` must be safe to repeat; it is a closure returning a new future each time
/// (`move || async move { .. }` over references), which keeps the futures of async trait
/// methods `Send`.
pub async fn retry<T, E, F, Fut>(
    policy: RetryPolicy,
    deadline: Deadline,
    mut op: F,
) -> Result<T, RetryError<E>>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Failure<E>>>,
    E: Error + 'static,
{
    let mut retry = Retry::new(policy, deadline);
    loop {
        let last = match retry.attempt(op()).await {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(Failure::Permanent(error))) => return Err(RetryError::Permanent(error)),
            Ok(Err(Failure::Transient(error))) => LastAttempt::Failed(error),
            Err(timed_out) => LastAttempt::TimedOut(timed_out),
        };
        tracing::warn!(error = %ErrorChain(&last), attempt = retry.attempts(), "transient failure");
        if !retry.backoff().await {
            return Err(RetryError::Exhausted {
                attempts: retry.attempts(),
                last,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("boom")]
    struct Boom;

    fn quick() -> RetryPolicy {
        RetryPolicy {
            first_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(100),
            attempt_timeout: Duration::from_secs(1),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn transient_failures_are_retried_until_success() {
        let calls = &AtomicU32::new(0);
        let result = retry(
            quick(),
            Deadline::after(Duration::from_secs(5)),
            move || async move {
                match calls.fetch_add(1, Ordering::SeqCst) {
                    0..=2 => Err(Failure::Transient(Boom)),
                    _ => Ok("done"),
                }
            },
        )
        .await;
        assert_eq!(result.unwrap(), "done");
        assert_eq!(calls.load(Ordering::SeqCst), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn a_permanent_failure_is_not_retried() {
        let calls = &AtomicU32::new(0);
        let result: Result<(), _> = retry(
            quick(),
            Deadline::after(Duration::from_secs(5)),
            move || async move {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(Failure::Permanent(Boom))
            },
        )
        .await;
        assert!(matches!(result, Err(RetryError::Permanent(Boom))));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn retries_stop_at_the_deadline() {
        let deadline = Deadline::after(Duration::from_secs(2));
        let result: Result<(), _> = retry(quick(), deadline, || async {
            Err(Failure::Transient(Boom))
        })
        .await;
        let Err(RetryError::Exhausted { attempts, .. }) = result else {
            panic!("expected Exhausted, got {result:?}");
        };
        assert!(attempts > 10, "{attempts} attempts");
        assert!(Instant::now() <= deadline.instant());
    }

    #[tokio::test(start_paused = true)]
    async fn an_attempt_that_hangs_is_cut_off_at_the_deadline() {
        let deadline = Deadline::after(Duration::from_millis(300));
        let result: Result<(), RetryError<Boom>> = retry(
            RetryPolicy {
                attempt_timeout: Duration::from_secs(60),
                ..quick()
            },
            deadline,
            std::future::pending,
        )
        .await;
        assert!(matches!(
            result,
            Err(RetryError::Exhausted {
                last: LastAttempt::TimedOut(_),
                ..
            })
        ));
        assert_eq!(Instant::now(), deadline.instant());
    }

    #[tokio::test(start_paused = true)]
    async fn each_attempt_is_bounded_by_the_attempt_timeout() {
        let started = Instant::now();
        let calls = &AtomicU32::new(0);
        let result = retry(
            RetryPolicy {
                attempt_timeout: Duration::from_millis(100),
                ..quick()
            },
            Deadline::after(Duration::from_secs(10)),
            move || async move {
                if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                    std::future::pending::<()>().await;
                }
                Ok::<_, Failure<Boom>>(())
            },
        )
        .await;
        assert!(result.is_ok());
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        assert!(started.elapsed() < Duration::from_millis(200));
    }

    #[tokio::test(start_paused = true)]
    async fn backoffs_are_jittered_below_a_doubling_cap() {
        let policy = quick();
        let mut retry = Retry::new(policy, Deadline::after(Duration::from_secs(60)));
        for attempt in 1..=6u32 {
            retry.attempt(async {}).await.unwrap();
            let before = Instant::now();
            assert!(retry.backoff().await);
            let cap = (policy.first_backoff * 2u32.pow(attempt - 1)).min(policy.max_backoff);
            assert!(before.elapsed() <= cap, "attempt {attempt}");
        }
    }
}
