//! `event-processor setup --import-original` end to end with the real binary, as an operator
//! runs it on the database the original Python/Flask service used: the report it prints, a
//! second run that changes nothing, the original table untouched, and `serve` accepting an
//! event sent to an imported pair as the original's clients send it.
//!
//! Needs the `postgres` feature and the PostgreSQL `scripts/test` starts (`EP_TEST_POSTGRES_URL`;
//! each test makes a database of its own beside it, with `psql`).
#![cfg(feature = "postgres")]

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_event-processor");
const TIMEOUT: Duration = Duration::from_secs(60);

/// The original's table and rows: two valid pairs, a name our rule refuses, a document that is
/// not a JSON Schema.
const ORIGINAL_SERVICE: &str = r#"
CREATE TABLE event_schemas (
  client_id     text NOT NULL,
  event_name    text NOT NULL,
  event_schema  json NOT NULL,
  PRIMARY KEY   (client_id, event_name)
);
INSERT INTO event_schemas VALUES
    ('SpongeBob',  'Fruits', '{"type": "object", "required": ["fruit"]}'),
    ('SpongeBob',  'Colors', '{"type": "object", "required": ["color"]}'),
    ('Sponge.Bob', 'Fruits', '{"type": "object"}'),
    ('SpongeBob',  'Broken', '{"required": "fruit"}');
"#;

/// The original table as text, with each row's `xmin` and `ctid` (which any write changes).
const ORIGINAL_ROWS: &str = "SELECT xmin, ctid, client_id, event_name, event_schema::text \
                             FROM public.event_schemas ORDER BY client_id, event_name";

/// A database of the test's own on the test server, dropped at the end, pass or fail.
struct Database {
    name: String,
    url: String,
    maintenance: String,
}

impl Database {
    fn create(tag: &str) -> Self {
        let url = std::env::var("EP_TEST_POSTGRES_URL").unwrap_or_else(|_| {
            panic!("EP_TEST_POSTGRES_URL is not set: run the tests through scripts/test, which starts PostgreSQL")
        });
        let server = url.rsplit_once('/').expect("a database URL").0;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let name = format!("ep_cli_{tag}_{}_{nanos}", std::process::id());
        let db = Self {
            url: format!("{server}/{name}"),
            maintenance: format!("{server}/postgres"),
            name,
        };
        psql(&db.maintenance, &format!("CREATE DATABASE \"{}\"", db.name));
        db
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .args(["-X", "-q", &self.maintenance, "-c"])
            .arg(format!(
                "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                self.name
            ))
            .output();
    }
}

/// Runs `sql` with psql on `url`; returns what it printed (unaligned, tuples only).
fn psql(url: &str, sql: &str) -> String {
    let output = Command::new("psql")
        .args([
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            url,
            "-c",
            sql,
        ])
        .output()
        .expect("psql runs");
    assert!(
        output.status.success(),
        "psql failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

fn command(dir: &Path, store: &str) -> Command {
    let mut command = Command::new(BIN);
    command
        .current_dir(dir)
        .env("SCHEMA_STORE", store)
        .env("EVENT_STREAM", "sqlite:events.db")
        .env("RUST_LOG", "warn");
    command
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

/// Runs `setup --import-original [URL]` to completion, which must succeed; returns its stdout.
fn import(dir: &Path, store: &str, original: Option<&str>) -> String {
    let output = command(dir, store)
        .args(["setup", "--import-original"])
        .args(original)
        .output()
        .expect("setup runs");
    assert!(
        output.status.success(),
        "setup --import-original failed: {}{}",
        stdout(&output),
        String::from_utf8_lossy(&output.stderr)
    );
    stdout(&output)
}

/// A child process killed when the test ends, pass or fail.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `serve` on a free port; returns it and its address.
fn serve(dir: &Path, store: &str) -> (Running, String) {
    let mut child = command(dir, store)
        .args(["serve", "--addr", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("serve starts");
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .expect("serve prints its address");
    let address = first
        .split_whitespace()
        .find_map(|word| word.strip_prefix("http://"))
        .unwrap_or_else(|| panic!("no address in {first:?}"))
        .to_owned();
    (Running(child), address)
}

/// A form POST as the original's clients make it; the status and body.
fn post_form(address: &str, path: &str, body: &str) -> (u16, String) {
    let mut stream = std::net::TcpStream::connect(address).expect("connect to serve");
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
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
    let body = answer.split_once("\r\n\r\n").map(|(_, b)| b.to_owned());
    (status, body.unwrap_or_default())
}

#[test]
fn setup_import_original_reports_each_row_imports_once_and_serve_accepts_the_imported_pairs() {
    let db = Database::create("import");
    psql(&db.url, ORIGINAL_SERVICE);
    let before = psql(&db.url, ORIGINAL_ROWS);
    let dir = tempfile::tempdir().unwrap();

    let first = import(dir.path(), &db.url, None);
    let second = import(dir.path(), &db.url, None);

    let lines: Vec<&str> = first.lines().collect();
    assert!(lines[0].starts_with("set up: "), "{first}");
    assert!(
        lines.contains(&"imported SpongeBob/Fruits as version 1"),
        "{first}"
    );
    assert!(
        lines.contains(&"imported SpongeBob/Colors as version 1"),
        "{first}"
    );
    assert!(
        lines.iter().any(|l| l
            .starts_with("skipped \"Sponge.Bob\"/Fruits: the client name breaks the name rule")),
        "{first}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l
                .starts_with("skipped SpongeBob/Broken: event_schema is not a valid JSON Schema")),
        "{first}"
    );
    assert_eq!(
        lines.last(),
        Some(&"imported 2, skipped 2, already imported 0")
    );
    assert_eq!(
        second.lines().last(),
        Some("imported 0, skipped 2, already imported 2"),
        "{second}"
    );
    assert!(!second.contains("as version 1"), "{second}");
    assert_eq!(psql(&db.url, ORIGINAL_ROWS), before, "the original table");
    assert_eq!(
        psql(
            &db.url,
            "SELECT client || '/' || event || ' v' || version FROM event_processor.schemas \
             ORDER BY 1"
        ),
        "SpongeBob/Colors v1\nSpongeBob/Fruits v1\n"
    );

    let (_serve, address) = serve(dir.path(), &db.url);
    let (status, body) = post_form(
        &address,
        "/SpongeBob/Fruits/send_event",
        "event=%7B%22fruit%22%3A%22kiwi%22%7D",
    );
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(r#""code":"SUCCEEDED""#), "{body}");
}

#[test]
fn a_gateway_on_another_store_imports_from_the_original_database_named_with_the_flag() {
    let db = Database::create("elsewhere");
    psql(&db.url, ORIGINAL_SERVICE);
    let dir = tempfile::tempdir().unwrap();

    let without = command(dir.path(), "sqlite:schemas.db")
        .args(["setup", "--import-original"])
        .output()
        .unwrap();
    let with = import(dir.path(), "sqlite:schemas.db", Some(&db.url));

    assert!(!without.status.success());
    let stderr = String::from_utf8_lossy(&without.stderr);
    assert!(stderr.contains("--import-original"), "{stderr}");
    assert_eq!(
        with.lines().last(),
        Some("imported 2, skipped 2, already imported 0"),
        "{with}"
    );
    assert_eq!(
        psql(
            &db.url,
            "SELECT count(*) FROM pg_namespace WHERE nspname = 'event_processor'"
        ),
        "0\n",
        "nothing of ours in the original's database"
    );
}
