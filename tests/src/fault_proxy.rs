//! A TCP proxy in front of an HTTP/1.1 service (moto) that fails one exchange at a time the
//! way a network does: it forwards a request and then loses the answer, holds the answer back,
//! closes the connection before forwarding anything, or answers itself. It reads just enough
//! HTTP to find where a request and a response end (their head and `Content-Length` body), so
//! what reaches the service is byte for byte what the client sent, and a test can check what
//! the service stored.
//!
//! Each request takes the next fault of the proxy's script, then its standing fault.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// What the proxy does with one request.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Forwards the request and relays the answer.
    Forward,
    /// Forwards the request, waits for the service's whole answer (so it acted on the
    /// request), then closes the client's connection without a byte of that answer.
    DropAnswer,
    /// Forwards the request, waits for the service's whole answer, and never sends it: the
    /// client's connection stays open and silent until the client gives up.
    HoldAnswer,
    /// Closes the client's connection once the request has arrived, forwarding nothing.
    DropRequest,
    /// Answers itself, forwarding nothing: `reply` gets the request body and gives the
    /// status and JSON body (e.g. a throttling error).
    Answer {
        content_type: &'static str,
        reply: fn(&[u8]) -> (u16, String),
    },
}

#[derive(Debug)]
struct State {
    script: VecDeque<Fault>,
    standing: Fault,
    requests: usize,
    connections: Vec<JoinHandle<()>>,
}

/// The proxy; it stops, with every connection through it, when dropped.
pub struct FaultProxy {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    accept: JoinHandle<()>,
}

impl FaultProxy {
    /// A proxy to `upstream` on a free loopback port: the first requests meet `script`, in
    /// order, and every later one `standing`.
    pub async fn start(upstream: SocketAddr, script: Vec<Fault>, standing: Fault) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy");
        let addr = listener.local_addr().expect("the proxy's address");
        let state = Arc::new(Mutex::new(State {
            script: script.into(),
            standing,
            requests: 0,
            connections: Vec::new(),
        }));
        let accept = tokio::spawn({
            let state = state.clone();
            async move {
                while let Ok((inbound, _)) = listener.accept().await {
                    let connection = tokio::spawn(serve(inbound, upstream, state.clone()));
                    state.lock().unwrap().connections.push(connection);
                }
            }
        });
        Self {
            addr,
            state,
            accept,
        }
    }

    /// `http://` and the proxy's address: the endpoint to give the client.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Requests that reached the proxy so far.
    pub fn requests(&self) -> usize {
        self.state.lock().unwrap().requests
    }

    /// Replaces the standing fault (a script not yet played out still goes first).
    pub fn set_standing(&self, fault: Fault) {
        self.state.lock().unwrap().standing = fault;
    }

    fn next_fault(state: &Mutex<State>) -> Fault {
        let mut state = state.lock().unwrap();
        state.requests += 1;
        match state.script.pop_front() {
            Some(fault) => fault,
            None => state.standing.clone(),
        }
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.accept.abort();
        for connection in self.state.lock().unwrap().connections.drain(..) {
            connection.abort();
        }
    }
}

/// An address on which nothing listens: connecting to it is refused.
pub async fn refusing_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind a port");
    listener.local_addr().expect("its address")
    // Dropped here: the port is closed, and stays free for the test's short life.
}

/// Serves one client connection, request after request, until it closes or a fault ends it.
async fn serve(mut inbound: TcpStream, upstream: SocketAddr, state: Arc<Mutex<State>>) {
    let mut buffer = Vec::new();
    while let Some(request) = read_message(&mut inbound, &mut buffer, false).await {
        match FaultProxy::next_fault(&state) {
            Fault::Forward => {
                let Some(answer) = exchange(upstream, &request).await else {
                    return;
                };
                if inbound.write_all(&answer).await.is_err() {
                    return;
                }
            }
            Fault::DropAnswer => {
                exchange(upstream, &request).await;
                return;
            }
            Fault::HoldAnswer => {
                exchange(upstream, &request).await;
                // Until the client closes its side (or the proxy is dropped).
                let _ = inbound.read_to_end(&mut Vec::new()).await;
                return;
            }
            Fault::DropRequest => return,
            Fault::Answer {
                content_type,
                reply,
            } => {
                let (status, body) = reply(body_of(&request));
                let answer = format!(
                    "HTTP/1.1 {status} Injected\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n\r\n{body}",
                    body.len()
                );
                if inbound.write_all(answer.as_bytes()).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Sends `request` to `upstream` on a connection of its own and reads the whole answer.
async fn exchange(upstream: SocketAddr, request: &[u8]) -> Option<Vec<u8>> {
    let mut outbound = TcpStream::connect(upstream).await.ok()?;
    outbound.write_all(request).await.ok()?;
    read_message(&mut outbound, &mut Vec::new(), true).await
}

/// Reads one HTTP/1.1 message (head and `Content-Length` body) from `stream`, keeping bytes
/// past its end in `buffer` for the next one. `None` if the stream ends first. A response
/// without `Content-Length` runs to the end of the stream (`until_eof`).
async fn read_message(
    stream: &mut TcpStream,
    buffer: &mut Vec<u8>,
    until_eof: bool,
) -> Option<Vec<u8>> {
    let mut chunk = [0u8; 16 * 1024];
    let head_end = loop {
        if let Some(at) = find(buffer, b"\r\n\r\n") {
            break at + 4;
        }
        let read = stream.read(&mut chunk).await.ok()?;
        if read == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..read]);
    };
    let length = content_length(&buffer[..head_end]);
    loop {
        let complete = match length {
            Some(length) => buffer.len() >= head_end + length,
            None => !until_eof,
        };
        if complete {
            let end = head_end + length.unwrap_or(0);
            let message = buffer[..end].to_vec();
            buffer.drain(..end);
            return Some(message);
        }
        let read = stream.read(&mut chunk).await.ok()?;
        if read == 0 {
            // The end of a response without a length is the end of the stream.
            return (until_eof && length.is_none()).then(|| std::mem::take(buffer));
        }
        buffer.extend_from_slice(&chunk[..read]);
    }
}

/// The body of a whole message read by [`read_message`].
fn body_of(message: &[u8]) -> &[u8] {
    find(message, b"\r\n\r\n").map_or(&[], |at| &message[at + 4..])
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

fn content_length(head: &[u8]) -> Option<usize> {
    String::from_utf8_lossy(head).lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("content-length")
            .then(|| value.trim().parse().ok())?
    })
}
