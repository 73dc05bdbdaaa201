//! `listen`: follow one pair's events from the configured stream, one JSON line each; with
//! `--rejected`, its rejections from the configured schema store.

use std::collections::BTreeSet;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use event_processor_core::domain::{ClientId, EventId, EventName};
use event_processor_core::ports::{EventSource, Rejection, RejectionStore, StartAt};
use event_processor_core::retry::Deadline;

use crate::BoxError;

#[derive(clap::Args)]
pub struct Args {
    /// `CLIENT EVENT`, or one of the demo's shorthands `fruits` / `colors`.
    #[arg(num_args = 1..=2, value_names = ["CLIENT|fruits|colors", "EVENT"], required = true)]
    target: Vec<String>,
    /// Start from the first retained event instead of only new ones.
    #[arg(long)]
    from_beginning: bool,
    /// Follow the pair's rejected events (kept in SCHEMA_STORE) instead of its events.
    #[arg(long)]
    pub rejected: bool,
}

/// The demo's pairs.
pub fn demo_pair(name: &str) -> Option<(&'static str, &'static str)> {
    match name {
        "fruits" => Some(("SpongeBob", "Fruits")),
        "colors" => Some(("SpongeBob", "Colors")),
        _ => None,
    }
}

fn pair(target: &[String]) -> Result<(ClientId, EventName), BoxError> {
    let (client, event) = match target {
        [one] => demo_pair(one).ok_or_else(|| {
            format!("`{one}` is not a demo name: use `fruits`, `colors`, or CLIENT EVENT")
        })?,
        [client, event] => (client.as_str(), event.as_str()),
        _ => return Err("expected CLIENT EVENT or fruits|colors".into()),
    };
    Ok((ClientId::parse(client)?, EventName::parse(event)?))
}

pub async fn run(args: Args, source: Arc<dyn EventSource>) -> Result<(), BoxError> {
    let (client, event) = pair(&args.target)?;
    let start = if args.from_beginning {
        StartAt::Beginning
    } else {
        StartAt::End
    };
    let mut subscription = source.subscribe(&client, &event, start).await?;
    eprintln!("listening to {client}/{event} (Ctrl-C to stop)");
    let shutdown = crate::shutdown_signal();
    tokio::pin!(shutdown);
    let mut stdout = std::io::stdout();
    loop {
        tokio::select! {
            () = &mut shutdown => return Ok(()),
            batch = subscription.next_batch() => {
                for event in batch? {
                    serde_json::to_writer(&mut stdout, &event)?;
                    writeln!(stdout)?;
                }
                // Each event is visible as soon as it arrives, even through a pipe.
                stdout.flush()?;
            }
        }
    }
}

/// How often the rejection store is asked for new rejections (it has no push of its own).
const POLL: Duration = Duration::from_secs(1);
/// Rejections read per page while catching up.
const PAGE: usize = 500;
/// The deadline of one read of the store.
const READ_DEADLINE: Duration = Duration::from_secs(10);
/// How far back each poll looks again. A rejection's id is its receive time, but it becomes
/// visible when its write commits, which may be after a newer one's (another instance, a slow
/// store): re-reading this window, and skipping what was printed, catches it.
const OVERLAP: Duration = Duration::from_secs(30);

/// `listen --rejected`: prints the pair's rejections as they are kept, one JSON line each
/// (API.md, "Rejected events"), oldest first as they are found.
pub async fn run_rejected(args: Args, store: Arc<dyn RejectionStore>) -> Result<(), BoxError> {
    let (client, event) = pair(&args.target)?;
    // Start after what is already kept, unless asked for all of it.
    let mut printed: BTreeSet<EventId> = BTreeSet::new();
    let mut since = if args.from_beginning {
        None
    } else {
        let newest = store
            .list(&client, &event, 1, None, Deadline::after(READ_DEADLINE))
            .await?;
        match newest.first() {
            Some(newest) => {
                // Everything up to the newest counts as seen; the overlap still reads it again.
                for old in
                    rejections_since(store.as_ref(), &client, &event, Some(newest.id)).await?
                {
                    printed.insert(old.id);
                }
                printed.insert(newest.id);
                Some(newest.id)
            }
            None => None,
        }
    };
    eprintln!("listening to the rejections of {client}/{event} (Ctrl-C to stop)");
    let shutdown = crate::shutdown_signal();
    tokio::pin!(shutdown);
    let mut stdout = std::io::stdout();
    loop {
        for rejection in rejections_since(store.as_ref(), &client, &event, since).await? {
            if printed.insert(rejection.id) {
                serde_json::to_writer(&mut stdout, &rejection)?;
                writeln!(stdout)?;
            }
        }
        stdout.flush()?;
        if let Some(newest) = printed.last() {
            since = Some(*newest);
            // Forget what the next look-back cannot see again.
            let horizon = millis(*newest).saturating_sub(OVERLAP.as_millis() as u64);
            printed.retain(|id| millis(*id) >= horizon);
        }
        tokio::select! {
            () = &mut shutdown => return Ok(()),
            () = tokio::time::sleep(POLL) => {}
        }
    }
}

/// Milliseconds since the epoch at which a rejection was received (its UUID v7's time).
fn millis(id: EventId) -> u64 {
    id.as_uuid()
        .get_timestamp()
        .map(|t| {
            let (secs, nanos) = t.to_unix();
            secs * 1000 + u64::from(nanos) / 1_000_000
        })
        .unwrap_or(0)
}

/// The pair's rejections received no earlier than [`OVERLAP`] before `since` (all of them
/// without it), oldest first. Pages back from the newest, so a burst larger than a page is
/// not skipped.
async fn rejections_since(
    store: &dyn RejectionStore,
    client: &ClientId,
    event: &EventName,
    since: Option<EventId>,
) -> Result<Vec<Rejection>, BoxError> {
    let horizon = since.map(|id| millis(id).saturating_sub(OVERLAP.as_millis() as u64));
    let mut found: Vec<Rejection> = Vec::new();
    let mut before = None;
    loop {
        let page = store
            .list(client, event, PAGE, before, Deadline::after(READ_DEADLINE))
            .await?;
        let full = page.len() == PAGE;
        for rejection in page {
            if horizon.is_some_and(|horizon| millis(rejection.id) < horizon) {
                found.reverse();
                return Ok(found);
            }
            found.push(rejection);
        }
        match found.last() {
            Some(oldest) if full => before = Some(oldest.id),
            _ => break,
        }
    }
    found.reverse();
    Ok(found)
}

#[cfg(test)]
mod tests {
    use event_processor_core::adapters::memory::MemorySchemaStore;
    use event_processor_core::domain::now_rfc3339;

    use super::*;

    fn rejection(id: EventId) -> Rejection {
        Rejection {
            id,
            client: ClientId::parse("a").unwrap(),
            event: EventName::parse("B").unwrap(),
            version: None,
            received_at: now_rfc3339(),
            request_id: None,
            error: "validation_failed".to_owned(),
            errors: Vec::new(),
            data: "{}".to_owned(),
            truncated: false,
            replayed: None,
        }
    }

    #[tokio::test]
    async fn a_rejection_committed_after_a_newer_one_is_still_found() {
        let store = MemorySchemaStore::new();
        let (client, event) = (
            ClientId::parse("a").unwrap(),
            EventName::parse("B").unwrap(),
        );
        let (older, newer) = (EventId::new(), EventId::new());
        let deadline = Deadline::after(READ_DEADLINE);
        store.keep(&[rejection(newer)], deadline).await.unwrap();
        let first = rejections_since(&store, &client, &event, None)
            .await
            .unwrap();
        assert_eq!(first.iter().map(|r| r.id).collect::<Vec<_>>(), [newer]);

        // Received earlier, committed later (another instance, a slow store).
        store.keep(&[rejection(older)], deadline).await.unwrap();
        let next = rejections_since(&store, &client, &event, Some(newer))
            .await
            .unwrap();

        assert!(
            next.iter().any(|r| r.id == older),
            "the late one is read again"
        );
    }
}
