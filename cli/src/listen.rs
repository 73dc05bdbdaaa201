//! `listen`: follow one pair's events from the configured stream, one JSON line each.

use std::io::Write;
use std::sync::Arc;

use event_processor_core::domain::{ClientId, EventName};
use event_processor_core::ports::{EventSource, StartAt};

use crate::BoxError;

#[derive(clap::Args)]
pub struct Args {
    /// `CLIENT EVENT`, or one of the demo's shorthands `fruits` / `colors`.
    #[arg(num_args = 1..=2, value_names = ["CLIENT|fruits|colors", "EVENT"], required = true)]
    target: Vec<String>,
    /// Start from the first retained event instead of only new ones.
    #[arg(long)]
    from_beginning: bool,
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
