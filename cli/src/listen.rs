//! `listen`: follow one pair's events from the configured stream, one JSON line each; with
//! `--rejected`, its rejections from the configured schema store.

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

/// `listen --rejected`: prints the pair's rejections as they are kept, oldest first, one JSON
/// line each (API.md, "Rejected events").
pub async fn run_rejected(args: Args, store: Arc<dyn RejectionStore>) -> Result<(), BoxError> {
    let (client, event) = pair(&args.target)?;
    // Start after the newest rejection already kept, unless asked for all of them.
    let mut last = if args.from_beginning {
        None
    } else {
        store
            .list(&client, &event, 1, None, Deadline::after(READ_DEADLINE))
            .await?
            .first()
            .map(|r| r.id)
    };
    eprintln!("listening to the rejections of {client}/{event} (Ctrl-C to stop)");
    let shutdown = crate::shutdown_signal();
    tokio::pin!(shutdown);
    let mut stdout = std::io::stdout();
    loop {
        for rejection in newer_than(store.as_ref(), &client, &event, last).await? {
            serde_json::to_writer(&mut stdout, &rejection)?;
            writeln!(stdout)?;
            last = Some(rejection.id);
        }
        stdout.flush()?;
        tokio::select! {
            () = &mut shutdown => return Ok(()),
            () = tokio::time::sleep(POLL) => {}
        }
    }
}

/// The pair's rejections newer than `last` (all of them without it), oldest first. Pages
/// back from the newest until it reaches `last`, so a burst larger than a page is not skipped.
async fn newer_than(
    store: &dyn RejectionStore,
    client: &ClientId,
    event: &EventName,
    last: Option<EventId>,
) -> Result<Vec<Rejection>, BoxError> {
    let mut found: Vec<Rejection> = Vec::new();
    let mut before = None;
    loop {
        let page = store
            .list(client, event, PAGE, before, Deadline::after(READ_DEADLINE))
            .await?;
        let full = page.len() == PAGE;
        for rejection in page {
            if last.is_some_and(|last| rejection.id <= last) {
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
