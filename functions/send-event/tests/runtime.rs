//! The `send-event` binary as Lambda runs it. A fake Lambda Runtime API hands it one API
//! Gateway event (`events/send-event/valid.json`), and its DynamoDB and Kinesis calls reach
//! moto through a proxy that logs each call's `X-Amz-Target`. The log, shared with the fake
//! runtime, shows what init did before the function asked for its first invocation.

use std::collections::BTreeSet;
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use event_processor_tests::aws::{Names, endpoint, event_file, fresh_app, invoke, raw_records};
use serde_json::Value;
use tokio::sync::mpsc;

const DESCRIBE_TABLE: &str = "DynamoDB_20120810.DescribeTable";
const DESCRIBE_STREAM: &str = "Kinesis_20131202.DescribeStreamSummary";
const GET_ITEM: &str = "DynamoDB_20120810.GetItem";
const PUT_RECORD: &str = "Kinesis_20131202.PutRecord";
/// What the fake runtime logs when the function asks for an invocation.
const NEXT: &str = "runtime: next";

/// Everything that happened, in order: AWS calls by target, and the runtime's `next`.
type Log = Arc<Mutex<Vec<String>>>;

/// What the function posted back: `("response" | "error" | "init/error", body)`, and how
/// long after the invocation was handed out.
type Outcome = (&'static str, Value, Duration);

struct Runtime {
    log: Log,
    event: String,
    /// How long the invocation may run (the function's timeout).
    timeout: Duration,
    handed_out: AtomicBool,
    handed_out_at: Mutex<Option<std::time::Instant>>,
    outcomes: mpsc::UnboundedSender<Outcome>,
}

async fn next(State(runtime): State<Arc<Runtime>>) -> Response {
    runtime.log.lock().unwrap().push(NEXT.to_owned());
    if runtime.handed_out.swap(true, Ordering::SeqCst) {
        // One invocation per test: the function waits here until it is killed.
        std::future::pending::<()>().await;
    }
    *runtime.handed_out_at.lock().unwrap() = Some(std::time::Instant::now());
    let deadline = SystemTime::now().duration_since(UNIX_EPOCH).unwrap() + runtime.timeout;
    (
        [
            ("lambda-runtime-aws-request-id", "test-request-1".to_owned()),
            (
                "lambda-runtime-deadline-ms",
                deadline.as_millis().to_string(),
            ),
            (
                "lambda-runtime-invoked-function-arn",
                "arn:aws:lambda:us-east-1:123456789012:function:send-event".to_owned(),
            ),
            (
                "lambda-runtime-trace-id",
                "Root=1-00000000-000000000000000000000000".to_owned(),
            ),
        ],
        runtime.event.clone(),
    )
        .into_response()
}

fn outcome(
    kind: &'static str,
) -> impl Fn(State<Arc<Runtime>>, Bytes) -> std::future::Ready<StatusCode> + Clone {
    move |State(runtime): State<Arc<Runtime>>, body: Bytes| {
        let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let after = runtime
            .handed_out_at
            .lock()
            .unwrap()
            .map_or(Duration::ZERO, |at| at.elapsed());
        let _ = runtime.outcomes.send((kind, body, after));
        std::future::ready(StatusCode::ACCEPTED)
    }
}

/// Starts the fake Runtime API; returns its `HOST:PORT` (what `AWS_LAMBDA_RUNTIME_API` holds).
async fn start_runtime(
    log: Log,
    timeout: Duration,
    outcomes: mpsc::UnboundedSender<Outcome>,
) -> String {
    let runtime = Arc::new(Runtime {
        log,
        event: std::fs::read_to_string(event_file("send-event", "valid")).expect("the event"),
        timeout,
        handed_out: AtomicBool::new(false),
        handed_out_at: Mutex::default(),
        outcomes,
    });
    let app = Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route(
            "/2018-06-01/runtime/invocation/{id}/response",
            post(outcome("response")),
        )
        .route(
            "/2018-06-01/runtime/invocation/{id}/error",
            post(outcome("error")),
        )
        .route(
            "/2018-06-01/runtime/init/error",
            post(outcome("init/error")),
        )
        .with_state(runtime);
    serve(app).await
}

/// What the AWS proxy does.
#[derive(Clone)]
struct Proxy {
    log: Log,
    /// Calls of this target are never answered (a service that hangs).
    hang: Option<&'static str>,
}

/// Forwards every AWS call to moto unchanged, logging its target first (and never answering
/// the calls the proxy is told to hang).
async fn record(State(proxy): State<Proxy>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("(no target)");
    proxy.log.lock().unwrap().push(target.to_owned());
    if proxy.hang == Some(target) {
        std::future::pending::<()>().await;
    }
    let mut request = reqwest::Client::new().post(format!("{}{}", endpoint(), uri.path()));
    for (name, value) in &headers {
        if name != "host" && name != "content-length" {
            request = request.header(name.as_str(), value.as_bytes());
        }
    }
    let answer = request.body(body).send().await.expect("moto answers");
    let status = StatusCode::from_u16(answer.status().as_u16()).unwrap();
    let content_type = answer.headers().get("content-type").cloned();
    let body = answer.bytes().await.expect("moto's body");
    let mut response = (status, body).into_response();
    if let Some(content_type) = content_type {
        response.headers_mut().insert("content-type", content_type);
    }
    response
}

async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

/// The function process, killed when the test ends however it ends.
struct Function(Child);

impl Drop for Function {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// How a test runs the function.
struct Setup<'a> {
    table: &'a str,
    stream: &'a str,
    /// The function's timeout: the invocation's deadline is this far from when it is handed out.
    timeout: Duration,
    /// An AWS call the proxy never answers.
    hang: Option<&'static str>,
}

impl<'a> Setup<'a> {
    fn new(table: &'a str, stream: &'a str) -> Self {
        Self {
            table,
            stream,
            timeout: Duration::from_secs(60),
            hang: None,
        }
    }
}

/// Runs the `send-event` binary on `table` and `stream` (through the recording proxy) until it
/// posts the outcome of its one invocation; returns that outcome and the log.
async fn run_function(setup: Setup<'_>) -> (Outcome, Vec<String>) {
    let Setup {
        table,
        stream,
        timeout,
        hang,
    } = setup;
    let log = Log::default();
    let proxy = Proxy {
        log: log.clone(),
        hang,
    };
    let aws = serve(Router::new().fallback(record).with_state(proxy)).await;
    let (outcomes, mut received) = mpsc::unbounded_channel();
    let runtime = start_runtime(log.clone(), timeout, outcomes).await;
    let _function = Function(
        Command::new(env!("CARGO_BIN_EXE_send-event"))
            .env("AWS_ENDPOINT_URL", format!("http://{aws}"))
            .env("SCHEMA_STORE", format!("dynamodb:{table}"))
            .env("EVENT_STREAM", format!("kinesis:{stream}"))
            .env("AWS_LAMBDA_RUNTIME_API", &runtime)
            .env("AWS_LAMBDA_FUNCTION_NAME", "send-event")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_LOG_LEVEL", "warn")
            .spawn()
            .expect("start the send-event binary"),
    );
    let outcome = tokio::time::timeout(Duration::from_secs(30), received.recv())
        .await
        .expect("the function answers its invocation within 30 s")
        .expect("an outcome");
    let log = log.lock().unwrap().clone();
    (outcome, log)
}

/// The API Gateway response the function posted, as status and JSON body.
fn http_reply((kind, body, _): &Outcome) -> (u64, Value) {
    assert_eq!(*kind, "response", "{body}");
    let status = body["statusCode"].as_u64().expect("a statusCode");
    let text = body["body"].as_str().expect("a text body");
    (status, serde_json::from_str(text).expect("a JSON body"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_opens_dynamodb_and_kinesis_before_the_first_invocation_which_is_published() {
    let (app, names) = fresh_app().await;
    let registered = invoke(&app.router(), "register-event", "json").await;
    assert_eq!(registered.status, 201, "{:?}", registered.body);

    let (outcome, log) = run_function(Setup::new(&names.table, &names.stream)).await;

    let (status, reply) = http_reply(&outcome);
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["code"], "SUCCEEDED");
    let records = raw_records(&names.stream).await;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].data["id"], reply["id"]);
    // Init: both warm-up calls, and nothing else, before the first `next`.
    let first_next = log.iter().position(|e| e == NEXT).expect("asked for work");
    let during_init: BTreeSet<&str> = log[..first_next].iter().map(String::as_str).collect();
    assert_eq!(
        during_init,
        BTreeSet::from([DESCRIBE_TABLE, DESCRIBE_STREAM]),
        "{log:?}"
    );
    // The invocation: the schema read and the publish.
    let invocation: Vec<&str> = log[first_next + 1..].iter().map(String::as_str).collect();
    assert_eq!(invocation[..2], [GET_ITEM, PUT_RECORD], "{log:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_warm_up_that_fails_does_not_fail_init_and_the_request_gets_a_503() {
    // Neither the table nor the stream exists.
    let names = Names::fresh();

    let (outcome, log) = run_function(Setup::new(&names.table, &names.stream)).await;

    let (status, reply) = http_reply(&outcome);
    assert_eq!(status, 503, "{reply}");
    assert_eq!(reply["error"], "service_unavailable");
    assert!(log.iter().any(|e| e == DESCRIBE_TABLE), "{log:?}");
    assert!(log.iter().any(|e| e == NEXT), "{log:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_that_never_answers_gets_the_json_503_before_the_function_times_out() {
    // Given a registered pair, a function with a 3 s timeout, and a Kinesis that accepts the
    // PutRecord call and never answers it,
    let (app, names) = fresh_app().await;
    let registered = invoke(&app.router(), "register-event", "json").await;
    assert_eq!(registered.status, 201, "{:?}", registered.body);
    let timeout = Duration::from_secs(3);

    // when the function is invoked,
    let (outcome, log) = run_function(Setup {
        timeout,
        hang: Some(PUT_RECORD),
        ..Setup::new(&names.table, &names.stream)
    })
    .await;

    // then it answers the contract's 503 itself, inside its timeout (the runtime would
    // otherwise have killed it and API Gateway answered a bare 5xx).
    let (status, reply) = http_reply(&outcome);
    assert_eq!(status, 503, "{reply}");
    assert_eq!(reply["code"], "FAILED");
    // The PutRecord was sent and never answered: it may have been stored.
    assert_eq!(reply["error"], "publish_unconfirmed");
    assert!(log.iter().any(|e| e == PUT_RECORD), "{log:?}");
    let answered_after = outcome.2;
    assert!(
        answered_after < timeout,
        "answered {answered_after:?} after the hand-out"
    );
    assert!(raw_records(&names.stream).await.is_empty());
}
