//! `produce`: the original demo. Registers SpongeBob/Fruits or SpongeBob/Colors and sends
//! random events to a running gateway over HTTP, printing each and a closing summary.

use std::time::{Duration, Instant};

use rand::seq::IndexedRandom;
use serde_json::{Value, json};

use crate::BoxError;

#[derive(clap::Args)]
pub struct Args {
    /// Which demo: `fruits` (SpongeBob/Fruits) or `colors` (SpongeBob/Colors).
    #[arg(value_parser = ["fruits", "colors"])]
    demo: String,
    /// The gateway's base URL.
    #[arg(long, default_value = "http://127.0.0.1:5000")]
    url: String,
    /// How many events to send (default: until Ctrl-C).
    #[arg(long)]
    count: Option<u64>,
    /// Events per second.
    #[arg(long, default_value_t = 1.0)]
    rate: f64,
    /// A bearer token, for a gateway running with AUTH=jwt (`event-processor token`).
    #[arg(long, env = crate::TOKEN_VAR, hide_env_values = true)]
    token: Option<String>,
}

const FRUITS: &[&str] = &[
    "apple",
    "banana",
    "cherry",
    "kiwi",
    "mango",
    "pineapple",
    "watermelon",
];
const COLORS: &[&str] = &[
    "red", "orange", "yellow", "green", "blue", "indigo", "violet",
];

struct Demo {
    event: &'static str,
    field: &'static str,
    values: &'static [&'static str],
}

impl Demo {
    fn named(name: &str) -> Self {
        match name {
            "colors" => Self {
                event: "Colors",
                field: "color",
                values: COLORS,
            },
            _ => Self {
                event: "Fruits",
                field: "fruit",
                values: FRUITS,
            },
        }
    }

    fn schema(&self) -> Value {
        json!({"type": "object", "required": [self.field]})
    }

    fn random_event(&self) -> Value {
        let value = self
            .values
            .choose(&mut rand::rng())
            .copied()
            .unwrap_or_default();
        json!({ self.field: value })
    }
}

/// Most events per second `--rate` accepts: one per microsecond, far beyond what one HTTP
/// client sends, and still a non-zero interval (a zero one would make the timer panic).
const MAX_RATE: f64 = 1_000_000.0;

/// The pause between two sends at `rate` events per second.
fn send_interval(rate: f64) -> Result<Duration, BoxError> {
    if !(rate.is_finite() && rate > 0.0 && rate <= MAX_RATE) {
        return Err(format!(
            "--rate must be a number of events per second above 0 and at most {MAX_RATE}"
        )
        .into());
    }
    Ok(Duration::from_secs_f64(1.0 / rate))
}

#[derive(Default)]
struct Tally {
    sent: u64,
    accepted: u64,
    rejected: u64,
}

pub async fn run(args: Args) -> Result<(), BoxError> {
    let interval = send_interval(args.rate)?;
    let demo = Demo::named(&args.demo);
    let base = args.url.trim_end_matches('/');
    let client = crate::http_client(args.token.as_deref())?;

    let register = client
        .post(format!("{base}/SpongeBob/{}/register_event", demo.event))
        .json(&demo.schema())
        .send()
        .await?;
    let status = register.status();
    let body: Value = register.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        return Err(format!(
            "registering SpongeBob/{} failed: {status} {body}",
            demo.event
        )
        .into());
    }
    eprintln!("registered SpongeBob/{} ({status})", demo.event);

    let mut tally = Tally::default();
    let started = Instant::now();
    let mut ticks = tokio::time::interval(interval);
    let shutdown = crate::shutdown_signal();
    tokio::pin!(shutdown);
    while args.count.is_none_or(|count| tally.sent < count) {
        tokio::select! {
            () = &mut shutdown => break,
            _ = ticks.tick() => {}
        }
        let event = demo.random_event();
        let response = client
            .post(format!("{base}/SpongeBob/{}/send_event", demo.event))
            .json(&event)
            .send()
            .await;
        tally.sent += 1;
        match response {
            Ok(response) => {
                let status = response.status();
                let body: Value = response.json().await.unwrap_or(Value::Null);
                if status.is_success() {
                    tally.accepted += 1;
                    println!(
                        "sent {event} -> {} id={}",
                        status.as_u16(),
                        body["id"].as_str().unwrap_or("?")
                    );
                } else {
                    tally.rejected += 1;
                    println!(
                        "sent {event} -> {} {}",
                        status.as_u16(),
                        body["msg"].as_str().unwrap_or("")
                    );
                }
            }
            Err(error) => {
                tally.rejected += 1;
                println!("sent {event} -> no response: {error}");
            }
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "summary: sent {}, accepted {}, rejected {} in {elapsed:.2}s ({:.1} events/s)",
        tally.sent,
        tally.accepted,
        tally.rejected,
        tally.sent as f64 / elapsed.max(f64::EPSILON),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_rate_gives_a_non_zero_interval_or_a_clear_refusal() {
        assert_eq!(send_interval(2.0).unwrap(), Duration::from_millis(500));
        assert_eq!(send_interval(MAX_RATE).unwrap(), Duration::from_micros(1));
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY, 1e12, f64::MAX] {
            let error = send_interval(bad).unwrap_err().to_string();
            assert!(error.contains("--rate"), "{bad}: {error}");
        }
    }
}
