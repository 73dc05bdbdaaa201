//! Idempotency keys of `send_event` and `send_events` (API.md, "Idempotency"): a request
//! with a key takes it before it publishes, with the event ids it will publish under, and
//! gives it back with its final answer (kept 24 hours) or without one (a 503: the retry runs
//! again, under the same ids).

use std::time::{Duration, SystemTime};

use super::{ProcessError, Processor};
use crate::domain::{ClientId, EventId, EventName, Fingerprint, IdempotencyKey};
use crate::error::ErrorChain;
use crate::ports::{Begin, KeptAnswer};
use crate::retry::Deadline;

/// What an idempotency key says about a request.
#[derive(Debug)]
pub enum Idempotency {
    /// Run it, publishing item `i` under `claim.event_ids[i]`, then [`Processor::finish_idempotent`].
    Run(Claim),
    /// A request with this key is running now.
    InProgress,
    /// The request with this key and fingerprint finished: answer this again.
    Completed(KeptAnswer),
    /// The key was used for another request.
    Reused,
}

/// A key this request holds.
#[derive(Debug)]
pub struct Claim {
    client: ClientId,
    event: EventName,
    key: IdempotencyKey,
    /// The ids to publish under: fresh, or those of an earlier attempt that did not finish.
    pub event_ids: Vec<EventId>,
}

/// Time given to keep an answer even when the request's own deadline has (nearly) passed:
/// the answer exists, keeping it spares the client a duplicate on retry.
const FINISH_GRACE: Duration = Duration::from_millis(500);

/// Held past the request's deadline and [`FINISH_GRACE`] before another request may take the
/// key over: room for clock steps between instances, so that a request finishing at the end
/// of its time never finds its key resumed by a retry.
const LEASE_MARGIN: Duration = Duration::from_secs(2);

/// When a key taken for a request with `deadline` may be taken over: after everything the
/// request can still do with it.
pub(super) fn lease_until(deadline: Deadline) -> SystemTime {
    SystemTime::now() + deadline.remaining() + FINISH_GRACE + LEASE_MARGIN
}

impl Processor {
    /// Takes `key` for a request of `items` events with `fingerprint`, until `deadline` (so a
    /// stopped instance does not hold the key for longer than its request could have run).
    pub async fn begin_idempotent(
        &self,
        client: &ClientId,
        event: &EventName,
        key: IdempotencyKey,
        fingerprint: Fingerprint,
        items: usize,
        deadline: Deadline,
    ) -> Result<Idempotency, ProcessError> {
        let fresh: Vec<EventId> = (0..items).map(|_| EventId::new()).collect();
        let lease_until = lease_until(deadline);
        let begun = self
            .idempotency
            .begin(
                client,
                event,
                &key,
                fingerprint,
                &fresh,
                lease_until,
                deadline,
            )
            .await?;
        let event_ids = match begun {
            Begin::Started => fresh,
            Begin::Resumed { event_ids } => {
                tracing::info!(key = %key, "resuming an unfinished request under its event ids");
                // The same fingerprint means the same body, hence the same number of items;
                // fresh ids fill in should a store return fewer.
                let mut ids = event_ids;
                ids.truncate(items);
                ids.extend(fresh.into_iter().skip(ids.len()));
                ids
            }
            Begin::InProgress => return Ok(Idempotency::InProgress),
            Begin::Completed(answer) => return Ok(Idempotency::Completed(answer)),
            Begin::Reused => return Ok(Idempotency::Reused),
        };
        Ok(Idempotency::Run(Claim {
            client: client.clone(),
            event: event.clone(),
            key,
            event_ids,
        }))
    }

    /// Keeps the request's final `answer`, or, with `None`, lets the key go so that a retry
    /// runs again under the same event ids. Never fails the request: a store failure is logged
    /// (the key's lease runs out with the request's deadline anyway).
    pub async fn finish_idempotent(
        &self,
        claim: Claim,
        answer: Option<KeptAnswer>,
        deadline: Deadline,
    ) {
        let deadline = Deadline::after(deadline.remaining().max(FINISH_GRACE));
        let Claim {
            client, event, key, ..
        } = &claim;
        let result = match &answer {
            Some(answer) => {
                self.idempotency
                    .complete(client, event, key, answer, deadline)
                    .await
            }
            None => self.idempotency.release(client, event, key, deadline).await,
        };
        if let Err(error) = result {
            tracing::warn!(
                error = %ErrorChain(&error),
                %key,
                kept = answer.is_some(),
                "idempotency key not updated; it is held until the request's deadline"
            );
        }
    }
}
