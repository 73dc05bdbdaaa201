//! The router behind a real socket, for what only a real connection shows: a client that
//! writes its whole body before reading the answer (Python's urllib, many SDKs) must get the
//! 413, not a connection reset.

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::Duration;

use event_processor_core::Processor;
use event_processor_core::adapters::memory::{MemoryEventStream, MemorySchemaStore};
use event_processor_core::domain::{ClientId, EventName};
use event_processor_core::envelope::Envelope;
use event_processor_core::http::Api;
use event_processor_core::ports::{EventStream, StreamError};
use event_processor_core::retry::Deadline;
use serde_json::Value;
use std::sync::atomic::Ordering;

/// Serves the API over memory adapters on a free port; returns the address.
async fn serve() -> std::net::SocketAddr {
    let store = Arc::new(MemorySchemaStore::new());
    let processor = Processor::new(store, Arc::new(MemoryEventStream::new()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, Api::new(processor).router())
            .await
            .unwrap();
    });
    addr
}

/// Writes the request with its whole body, then reads the answer: what a naive client does.
fn write_all_then_read(addr: std::net::SocketAddr, path: &str, body_len: usize) -> String {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream
        .set_write_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\n\
         Content-Length: {body_len}\r\n\r\n"
    )
    .unwrap();
    let chunk = vec![b' '; 64 * 1024];
    let mut left = body_len;
    while left > 0 {
        let n = left.min(chunk.len());
        stream
            .write_all(&chunk[..n])
            .expect("the server reads the whole body: no reset while writing");
        left -= n;
    }
    let mut answer = Vec::new();
    stream
        .read_to_end(&mut answer)
        .expect("the answer arrives: no reset while reading");
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_writes_an_over_limit_body_before_reading_gets_the_413() {
    let addr = serve().await;
    for (path, len) in [
        ("/a/Fruits/send_event", 3 * 1024 * 1024),
        ("/a/Fruits/send_event", 40 * 1024 * 1024),
        ("/a/Fruits/send_events", 6 * 1024 * 1024),
        ("/a/Fruits/register_event", 1024 * 1024),
    ] {
        let answer = tokio::task::spawn_blocking(move || write_all_then_read(addr, path, len))
            .await
            .unwrap();
        assert!(answer.starts_with("HTTP/1.1 413"), "{path}: {answer}");
        let body: Value = serde_json::from_str(answer.split_once("\r\n\r\n").unwrap().1).unwrap();
        assert_eq!(body["error"], "payload_too_large", "{path}");
    }
}

/// A memory stream whose publishes wait until the test opens the gate, counting who waits.
struct Gated {
    inner: MemoryEventStream,
    gate: Arc<tokio::sync::Semaphore>,
    waiting: Arc<std::sync::atomic::AtomicUsize>,
}

#[async_trait::async_trait]
impl EventStream for Gated {
    async fn publish(&self, event: &Envelope, deadline: Deadline) -> Result<(), StreamError> {
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let _open = self.gate.acquire().await.expect("the gate stays");
        self.inner.publish(event, deadline).await
    }
}

/// Sends `request` on a connection of its own and reads the answer to the end.
async fn ask(addr: std::net::SocketAddr, request: String) -> String {
    tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        stream.write_all(request.as_bytes()).unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        answer
    })
    .await
    .unwrap()
}

fn post(addr: std::net::SocketAddr, path: &str, body: &str, key: Option<&str>) -> String {
    let key = key.map_or(String::new(), |key| format!("Idempotency-Key: {key}\r\n"));
    format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Type: application/json\r\n{key}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_whose_client_hung_up_still_finishes_and_its_answer_is_kept_for_the_retry() {
    let store = Arc::new(MemorySchemaStore::new());
    let stream = MemoryEventStream::new();
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let waiting = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let gated = Gated {
        inner: stream.clone(),
        gate: gate.clone(),
        waiting: waiting.clone(),
    };
    let processor = Processor::new(store.clone(), Arc::new(gated))
        .with_rejections(store.clone())
        .with_idempotency(store);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = Api::new(processor).router();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    let registered = ask(addr, post(addr, "/hangs/Up/register_event", "{}", None)).await;
    assert!(registered.starts_with("HTTP/1.1 201"), "{registered}");

    // The client sends, and hangs up while the publish waits at the gate.
    let send = post(
        addr,
        "/hangs/Up/send_event",
        r#"{"fruit":"kiwi"}"#,
        Some("hang-up"),
    );
    let mut client = std::net::TcpStream::connect(addr).unwrap();
    client.write_all(send.as_bytes()).unwrap();
    let give_up = std::time::Instant::now() + Duration::from_secs(30);
    while waiting.load(Ordering::SeqCst) == 0 {
        assert!(
            std::time::Instant::now() < give_up,
            "the send never reached the stream"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    client.shutdown(std::net::Shutdown::Both).unwrap();
    drop(client);
    // Time for the server to see the connection close before the publish may go on.
    tokio::time::sleep(Duration::from_millis(200)).await;
    gate.add_permits(100);

    // The retry gets the first request's answer once it has finished: no second publish.
    let answer = loop {
        let answer = ask(addr, send.clone()).await;
        if !answer.starts_with("HTTP/1.1 409") {
            break answer;
        }
        assert!(
            std::time::Instant::now() < give_up,
            "the key stayed held: {answer}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        answer
            .to_ascii_lowercase()
            .contains("idempotent-replayed: true"),
        "the retry got the kept answer: {answer}"
    );
    let events = stream.events(
        &ClientId::parse("hangs").unwrap(),
        &EventName::parse("Up").unwrap(),
    );
    assert_eq!(events.len(), 1, "published once");
}
