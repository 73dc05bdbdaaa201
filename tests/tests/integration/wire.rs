//! The router behind a real socket, for what only a real connection shows: a client that
//! writes its whole body before reading the answer (Python's urllib, many SDKs) must get the
//! 413, not a connection reset.

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::Duration;

use event_processor_core::Processor;
use event_processor_core::adapters::memory::{MemoryEventStream, MemorySchemaStore};
use event_processor_core::http::Api;
use serde_json::Value;

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
