//! Lambda cold start: does opening the DynamoDB and Kinesis connections during init (the
//! warm-up of `lambda::run`) take the TCP + TLS handshakes out of the first request?
//!
//! Every sample is a fresh process, as a cold start is: it builds the app from the
//! environment as a function does, warms up or not, then times the first `send_event` (a
//! schema read and a PutRecord) and the second (a PutRecord) through the router. Samples
//! alternate between the two modes. Needs `SCHEMA_STORE=dynamodb:..`, `EVENT_STREAM=kinesis:..`
//! and an endpoint: `scripts/cold-start` runs it against moto behind a local TLS proxy.

use std::process::Command;
use std::time::{Duration, Instant};

use axum::Router;
use event_processor_core::{App, WarmUp};

mod common;

use common::{post, register_fruits, send_ok, small_event};

const MODE_VAR: &str = "EP_COLD_START_MODE";
const SAMPLES: usize = 15;

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

async fn send(router: &Router) -> Duration {
    let start = Instant::now();
    send_ok(
        router,
        post("/SpongeBob/Fruits/send_event", small_event().to_string()),
    )
    .await;
    start.elapsed()
}

/// One cold start; prints `init_ms warm_up_ms first_ms second_ms`.
async fn sample(warm: bool) {
    let start = Instant::now();
    let app = App::from_env().await.expect("the app builds");
    let init = start.elapsed();
    let start = Instant::now();
    if warm {
        let report = app.warm_up(WarmUp::StoreAndStream).await;
        report.store.expect("the table is there");
        report.stream.expect("the stream is there");
    }
    let warm_up = start.elapsed();
    let router = app.router();
    let first = send(&router).await;
    let second = send(&router).await;
    println!("{} {} {} {}", ms(init), ms(warm_up), ms(first), ms(second));
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Creates the table and stream, registers SpongeBob/Fruits, then runs the samples.
async fn drive() {
    let app = App::from_env().await.expect("the app builds");
    app.setup().await.expect("setup");
    register_fruits(&app.router()).await;

    let exe = std::env::current_exe().expect("this benchmark's path");
    let mut rows: [Vec<[f64; 4]>; 2] = [Vec::new(), Vec::new()];
    for i in 0..2 * SAMPLES {
        let warm = i % 2 == 1;
        let output = Command::new(&exe)
            .env(MODE_VAR, if warm { "warm" } else { "cold" })
            .output()
            .expect("spawn a sample");
        assert!(output.status.success(), "{output:?}");
        let line = String::from_utf8(output.stdout).expect("UTF-8");
        let fields: Vec<f64> = line
            .split_whitespace()
            .map(|f| f.parse().expect("a number"))
            .collect();
        rows[usize::from(warm)].push(fields.try_into().expect("four fields"));
    }
    println!(
        "median of {SAMPLES} fresh processes each (ms): init | warm-up | first send | second send"
    );
    for (name, rows) in ["no warm-up", "warm-up in init"].iter().zip(rows) {
        let column = |i: usize| median(rows.iter().map(|row| row[i]).collect());
        println!(
            "{name:<16} {:>7.2} | {:>7.2} | {:>10.2} | {:>11.2}",
            column(0),
            column(1),
            column(2),
            column(3)
        );
    }
}

#[tokio::main]
async fn main() {
    match std::env::var(MODE_VAR).as_deref() {
        Ok("cold") => sample(false).await,
        Ok("warm") => sample(true).await,
        _ => drive().await,
    }
}
