//! End to end with the real binary, as a user runs it: `serve` on the embedded default in a
//! fresh directory, the demo `produce`r, and `listen` in separate processes.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_event-processor");
const TIMEOUT: Duration = Duration::from_secs(60);

/// A child process killed when the test ends, pass or fail.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn command(dir: &Path) -> Command {
    let mut command = Command::new(BIN);
    command
        .current_dir(dir)
        .env_remove("SCHEMA_STORE")
        .env_remove("EVENT_STREAM")
        .env("RUST_LOG", "warn");
    command
}

/// Lines of a child's output, read on a thread so the test can wait with a timeout.
fn lines(stdout: impl std::io::Read + Send + 'static) -> mpsc::Receiver<String> {
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if sender.send(line).is_err() {
                break;
            }
        }
    });
    receiver
}

/// Starts `serve` on a free port with no configuration; returns it and its base URL.
fn serve(dir: &Path) -> (Running, String) {
    start(command(dir))
}

/// [`serve`] at the `info` level, with its stderr read: JSON lines (a pipe is not a terminal).
fn serve_logging(dir: &Path) -> (Running, String, mpsc::Receiver<String>) {
    let mut command = command(dir);
    command
        .env("RUST_LOG", "info")
        .env_remove("LOG_FORMAT")
        .stderr(Stdio::piped());
    let (mut running, url) = start(command);
    let stderr = lines(running.0.stderr.take().unwrap());
    (running, url, stderr)
}

fn start(mut command: Command) -> (Running, String) {
    let mut child = command
        .args(["serve", "--addr", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("serve starts");
    let first = lines(child.stdout.take().unwrap())
        .recv_timeout(TIMEOUT)
        .expect("serve prints its address");
    let url = first
        .split_whitespace()
        .find(|word| word.starts_with("http://"))
        .unwrap_or_else(|| panic!("no URL in {first:?}"))
        .to_owned();
    (Running(child), url)
}

/// Runs `produce fruits --count N` to completion; returns the ids it reports as accepted.
fn produce(dir: &Path, url: &str, count: u32) -> Vec<String> {
    let output = command(dir)
        .args([
            "produce",
            "fruits",
            "--rate",
            "200",
            "--url",
            url,
            "--count",
            &count.to_string(),
        ])
        .output()
        .expect("produce runs");
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(
        output.status.success(),
        "produce failed: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains(&format!(
            "summary: sent {count}, accepted {count}, rejected 0"
        )),
        "{stdout}"
    );
    stdout
        .lines()
        .filter_map(|line| line.split("id=").nth(1))
        .map(str::to_owned)
        .collect()
}

/// Starts `listen` with `args` and waits until it is subscribed; returns it and its stdout lines.
fn listen(dir: &Path, args: &[&str]) -> (Running, mpsc::Receiver<String>) {
    let mut child = command(dir)
        .arg("listen")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("listen starts");
    let stdout = lines(child.stdout.take().unwrap());
    let stderr = lines(child.stderr.take().unwrap());
    // `listen` announces itself on stderr once its subscription has its starting position.
    let announced = stderr
        .recv_timeout(TIMEOUT)
        .expect("listen announces itself");
    assert!(announced.starts_with("listening to"), "{announced}");
    (Running(child), stdout)
}

fn read_ids(lines: &mpsc::Receiver<String>, count: usize) -> Vec<String> {
    (0..count)
        .map(|_| {
            let line = lines
                .recv_timeout(TIMEOUT)
                .expect("listen prints each event");
            let event: Value = serde_json::from_str(&line).expect("one JSON CloudEvent per line");
            assert_eq!(event["source"], "/SpongeBob");
            assert_eq!(event["type"], "Fruits");
            assert!(event["data"]["fruit"].is_string());
            event["id"].as_str().unwrap().to_owned()
        })
        .collect()
}

#[test]
fn serve_then_produce_five_then_listen_from_the_beginning_shows_the_five() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, url) = serve(dir.path());

    let sent = produce(dir.path(), &url, 5);
    let (_listener, lines) = listen(dir.path(), &["SpongeBob", "Fruits", "--from-beginning"]);

    assert_eq!(sent.len(), 5);
    assert_eq!(read_ids(&lines, 5), sent);
    assert!(
        dir.path().join("event-processor.db").exists(),
        "the embedded default file"
    );
}

#[test]
fn a_listener_in_another_process_sees_events_as_they_are_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, url) = serve(dir.path());
    produce(dir.path(), &url, 2); // history the listener must not replay
    let (_listener, lines) = listen(dir.path(), &["fruits"]);

    let sent = produce(dir.path(), &url, 3);

    assert_eq!(read_ids(&lines, 3), sent);
}

#[test]
fn a_configuration_that_does_not_parse_is_a_start_up_error_naming_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let output = command(dir.path())
        .args(["serve", "--addr", "127.0.0.1:0"])
        .env("SCHEMA_STORE", "mysql://nope")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("SCHEMA_STORE"), "{stderr}");
}

/// Runs `schema ARGS --url URL`; returns whether it succeeded and the JSON it printed.
fn schema(dir: &Path, url: &str, args: &[&str]) -> (bool, Value) {
    let output = command(dir)
        .arg("schema")
        .args(args)
        .args(["--url", url])
        .output()
        .expect("schema runs");
    let stdout = String::from_utf8(output.stdout).unwrap();
    let printed = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "schema {args:?} printed no JSON ({e}): {stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (output.status.success(), printed)
}

#[test]
fn the_schema_verbs_manage_versions_on_a_running_gateway() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, url) = serve(dir.path());
    let write = |name: &str, schema: Value| {
        let path = dir.path().join(name);
        std::fs::write(&path, schema.to_string()).unwrap();
        path.to_str().unwrap().to_owned()
    };
    let v1 = write(
        "v1.json",
        serde_json::json!({"type": "object", "required": ["fruit"]}),
    );
    let v2 = write("v2.json", serde_json::json!({"type": "object"}));
    let stricter = write(
        "stricter.json",
        serde_json::json!({"type": "object", "required": ["fruit", "ripe"]}),
    );

    let (ok, registered) = schema(dir.path(), &url, &["register", "Shop", "Fruits", &v1]);
    assert!(ok, "{registered}");
    assert_eq!(registered["version"], 1);

    // A wider schema is compatible: `check` says which version it would get, `register` makes it.
    let (ok, checked) = schema(dir.path(), &url, &["check", "Shop", "Fruits", &v2]);
    assert!(
        ok && checked["compatible"] == true && checked["version"] == 2,
        "{checked}"
    );
    let (ok, _) = schema(dir.path(), &url, &["register", "Shop", "Fruits", &v2]);
    assert!(ok);

    // A stricter one is refused, and `check` fails the pipeline that runs it.
    let (ok, checked) = schema(dir.path(), &url, &["check", "Shop", "Fruits", &stricter]);
    assert!(!ok, "an incompatible schema makes `check` exit non-zero");
    assert_eq!(checked["compatible"], false);
    let (ok, refused) = schema(dir.path(), &url, &["register", "Shop", "Fruits", &stricter]);
    assert!(!ok);
    assert_eq!(refused["error"], "schema_incompatible");

    let (ok, versions) = schema(dir.path(), &url, &["versions", "Shop", "Fruits"]);
    assert!(ok);
    assert_eq!(versions["versions"].as_array().unwrap().len(), 2);
    let (ok, first) = schema(
        dir.path(),
        &url,
        &["get", "Shop", "Fruits", "--version", "1"],
    );
    assert!(ok);
    assert_eq!(first["schema"]["required"][0], "fruit");

    let (ok, set) = schema(
        dir.path(),
        &url,
        &["compatibility", "Shop", "Fruits", "NONE"],
    );
    assert!(ok, "{set}");
    let (ok, mode) = schema(dir.path(), &url, &["compatibility", "Shop", "Fruits"]);
    assert!(
        ok && mode["compatibility"] == "NONE" && mode["default"] == false,
        "{mode}"
    );
    let (ok, bad) = schema(
        dir.path(),
        &url,
        &["compatibility", "Shop", "Fruits", "SIDEWAYS"],
    );
    assert!(!ok);
    assert_eq!(bad["error"], "invalid_compatibility");
}

/// One HTTP/1.1 request to `serve`, as plainly as a client can make it; the status and body.
fn http(url: &str, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
    use std::io::{Read, Write};
    let authority = url.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(authority).expect("connect to serve");
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    let body = body.unwrap_or("");
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read the answer");
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {answer:?}"));
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// The value of the Prometheus sample `name` whose labels include every one of `labels`.
fn sample(metrics: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    metrics
        .lines()
        .filter(|line| line.starts_with(&format!("{name}{{")))
        .find(|line| {
            labels
                .iter()
                .all(|(k, v)| line.contains(&format!("{k}=\"{v}\"")))
        })
        .and_then(|line| line.rsplit(' ').next()?.parse().ok())
}

#[test]
fn serve_counts_what_it_was_sent_and_logs_one_json_line_per_request() {
    let dir = tempfile::tempdir().unwrap();
    let (running, url, stderr) = serve_logging(dir.path());

    let (status, _) = http(
        &url,
        "POST",
        "/Metered/Fruits/register_event",
        Some(r#"{"required":["fruit"]}"#),
    );
    assert_eq!(status, 201);
    for _ in 0..3 {
        let (status, _) = http(
            &url,
            "POST",
            "/Metered/Fruits/send_event",
            Some(r#"{"fruit":"kiwi"}"#),
        );
        assert_eq!(status, 200);
    }
    for _ in 0..2 {
        let (status, _) = http(
            &url,
            "POST",
            "/Metered/Fruits/send_event",
            Some(r#"{"color":"red"}"#),
        );
        assert_eq!(status, 422);
    }
    let (status, _) = http(&url, "POST", "/Metered/Fruits/send_event", Some("{oops"));
    assert_eq!(status, 400);

    let (status, metrics) = http(&url, "GET", "/metrics", None);
    assert_eq!(status, 200, "{metrics}");
    let pair = [("client", "Metered"), ("event", "Fruits")];
    assert_eq!(
        sample(&metrics, "events_accepted_total", &pair),
        Some(3.0),
        "{metrics}"
    );
    let rejected = |reason| {
        let labels = [pair[0], pair[1], ("reason", reason)];
        sample(&metrics, "events_rejected_total", &labels)
    };
    assert_eq!(rejected("validation_failed"), Some(2.0), "{metrics}");
    assert_eq!(rejected("invalid_json"), Some(1.0), "{metrics}");
    let send_route = ("route", "/{client}/{event}/send_event");
    assert_eq!(
        sample(&metrics, "requests_total", &[send_route, ("status", "200")]),
        Some(3.0),
        "{metrics}"
    );
    assert_eq!(
        sample(&metrics, "requests_total", &[send_route, ("status", "422")]),
        Some(2.0),
        "{metrics}"
    );
    assert_eq!(
        sample(&metrics, "request_duration_seconds_count", &[send_route]),
        Some(6.0),
        "{metrics}"
    );

    drop(running);
    let logged: Vec<Value> = stderr
        .iter()
        .map(|line| {
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"))
        })
        .filter(|line: &Value| line["message"] == "request")
        .collect();
    let sends: Vec<&Value> = logged
        .iter()
        .filter(|line| line["route"] == "/{client}/{event}/send_event")
        .collect();
    assert_eq!(sends.len(), 6, "one line per request: {logged:?}");
    for line in &sends {
        assert_eq!(line["method"], "POST");
        assert_eq!(line["client"], "Metered");
        assert_eq!(line["event"], "Fruits");
        assert!(
            line["request_id"].as_str().is_some_and(|id| !id.is_empty()),
            "{line}"
        );
        assert!(line["duration_ms"].as_f64().is_some(), "{line}");
    }
    let refused: Vec<&&Value> = sends.iter().filter(|line| line["status"] == 422).collect();
    assert_eq!(refused.len(), 2);
    assert!(
        refused
            .iter()
            .all(|line| line["error"] == "validation_failed" && line["version"] == 1)
    );
    assert_eq!(
        sends
            .iter()
            .filter(|line| line["status"] == 200 && line["version"] == 1)
            .count(),
        3
    );
    assert!(
        sends
            .iter()
            .any(|line| line["status"] == 400 && line["error"] == "invalid_json")
    );
}

#[test]
fn a_password_in_the_store_url_is_never_printed() {
    const PASSWORD: &str = "s3cret-do-not-print";
    let url = format!("postgres://postgres:{PASSWORD}@127.0.0.1:5432/postgres");
    let bad = format!("postgres://postgres:{PASSWORD}@127.0.0.1:notaport/postgres");
    let dir = tempfile::tempdir().unwrap();
    for (args, store) in [
        (&["setup"][..], url.as_str()),
        (&["setup"][..], bad.as_str()),
        (&["serve", "--addr", "127.0.0.1:0"][..], bad.as_str()),
    ] {
        let output = command(dir.path())
            .args(args)
            .env("SCHEMA_STORE", store)
            .env("EVENT_STREAM", "memory:")
            .env("RUST_LOG", "debug")
            .output()
            .unwrap();
        let printed = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            !printed.contains(PASSWORD),
            "{args:?} printed the password: {printed}"
        );
        assert!(
            printed.contains("***") || printed.contains("SCHEMA_STORE"),
            "{printed}"
        );
    }

    // `serve` on a reachable server prints its configuration: redacted.
    let mut child = command(dir.path())
        .args(["serve", "--addr", "127.0.0.1:0"])
        .env("SCHEMA_STORE", &url)
        .env("EVENT_STREAM", "memory:")
        .env("RUST_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = lines(child.stdout.take().unwrap());
    let stderr = lines(child.stderr.take().unwrap());
    let running = Running(child);
    // Without the `postgres` feature serve stops at once with an error, on stderr.
    let first = stdout.recv_timeout(TIMEOUT).ok();
    drop(running);
    let printed: String = first
        .into_iter()
        .chain(stdout.iter())
        .chain(stderr.iter())
        .collect::<Vec<_>>()
        .join("\n");
    assert!(!printed.contains(PASSWORD), "{printed}");
}

#[test]
fn listen_rejected_follows_the_rejections_another_process_keeps() {
    let dir = tempfile::tempdir().unwrap();
    let (_serve, url) = serve(dir.path());
    let (status, _) = http(
        &url,
        "POST",
        "/SpongeBob/Fruits/register_event",
        Some(r#"{"required":["fruit"]}"#),
    );
    assert_eq!(status, 201);
    let (_listen, lines) = listen(dir.path(), &["fruits", "--rejected"]);

    for body in [r#"{"color":"red"}"#, "{oops"] {
        let (status, _) = http(&url, "POST", "/SpongeBob/Fruits/send_event", Some(body));
        assert!(status == 422 || status == 400, "{status}");
    }

    let rejections: Vec<Value> = (0..2)
        .map(|_| {
            let line = lines
                .recv_timeout(TIMEOUT)
                .expect("listen prints each rejection");
            serde_json::from_str(&line).expect("one JSON rejection per line")
        })
        .collect();
    assert_eq!(rejections[0]["data"], r#"{"color":"red"}"#);
    assert_eq!(rejections[0]["error"], "validation_failed");
    assert_eq!(rejections[1]["data"], "{oops");
    assert_eq!(rejections[1]["error"], "invalid_json");
    assert!(
        rejections
            .iter()
            .all(|r| r["client"] == "SpongeBob" && r["event"] == "Fruits")
    );
}

/// `serve`'s lines are written by a thread of its own, which must live as long as the command
/// (its guard dropped early, every line after it is lost: this test then fails). On SIGTERM
/// every line, the last one included, is written before the process exits. (The thread
/// writes a line as soon as it is queued, so lines left in the queue at exit are too rare to
/// catch here; the guard's drop at the end of `main` writes those.)
#[test]
fn serve_writes_every_log_line_before_it_exits_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let (mut running, url, stderr) = serve_logging(dir.path());
    let (status, _) = http(&url, "POST", "/Flushed/Fruits/register_event", Some("{}"));
    assert_eq!(status, 201);
    let sends = 50;
    for _ in 0..sends {
        let (status, _) = http(
            &url,
            "POST",
            "/Flushed/Fruits/send_event",
            Some(r#"{"fruit":"kiwi"}"#),
        );
        assert_eq!(status, 200);
    }

    let pid = running.0.id().to_string();
    let signalled = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(signalled.success());
    let exit = running.0.wait().unwrap();
    assert!(exit.success(), "serve exited with {exit}");

    // The pipe is closed now: these are all the lines serve wrote.
    let logged: Vec<Value> = stderr
        .iter()
        .map(|line| {
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"))
        })
        .collect();
    let sent = logged
        .iter()
        .filter(|line| line["message"] == "request")
        .filter(|line| line["route"] == "/{client}/{event}/send_event")
        .count();
    assert_eq!(sent, sends, "{logged:?}");
    assert_eq!(
        logged.last().map(|line| &line["message"]),
        Some(&Value::from("stopped")),
        "{logged:?}"
    );
}
