//! Kinesis retries, against a small HTTP proxy in front of moto that answers some calls with
//! Kinesis errors itself (and forwards the rest), so that every record check is against moto.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use event_processor_core::Processor;
use event_processor_core::adapters::kinesis::KinesisEventStream;
use event_processor_core::domain::SchemaVersion;
use event_processor_core::envelope::Envelope;
use event_processor_core::http::Api;
use event_processor_core::ports::{EventStream, SchemaStore};
use event_processor_core::retry::RetryPolicy;
use event_processor_tests::api::{LoadOutcome, post_json, send_in_rounds};
use event_processor_tests::aws::{endpoint, fresh_store, fresh_stream, raw_records, sdk_config};
use event_processor_tests::{deadline, event_name, unique_client};
use serde_json::{Value, json};

const PUT_RECORD: &str = "Kinesis_20131202.PutRecord";
const PUT_RECORDS: &str = "Kinesis_20131202.PutRecords";
const JSON_1_1: &str = "application/x-amz-json-1.1";

/// What the proxy does with Kinesis writes.
#[derive(Clone, Copy)]
enum Mode {
    /// Answers the first `times` PutRecord calls with `status` and the error `code`.
    FailPutRecord {
        times: usize,
        status: u16,
        code: &'static str,
    },
    /// Forwards only the even-indexed records of the first PutRecords call and reports the
    /// odd ones throttled; forwards later calls as they are.
    ThrottleOddRecordsOnce,
    /// Answers `percent`% of PutRecord calls (spread evenly over the call count) with a
    /// throttling error before they reach moto; forwards the others.
    ThrottleShare { percent: usize },
    /// Forwards everything (and records what it saw).
    PassThrough,
}

#[derive(Default)]
struct Seen {
    put_record_calls: usize,
    /// The partition keys of each PutRecords call, in order.
    put_records_calls: Vec<Vec<String>>,
}

struct Proxy {
    mode: Mode,
    moto: String,
    http: reqwest::Client,
    seen: Mutex<Seen>,
}

impl Proxy {
    /// Starts the proxy on a free loopback port; returns it and its URL.
    async fn start(mode: Mode) -> (Arc<Self>, String) {
        let proxy = Arc::new(Self {
            mode,
            moto: endpoint(),
            http: reqwest::Client::new(),
            seen: Mutex::new(Seen::default()),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(proxy.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (proxy, url)
    }

    fn seen<T>(&self, read: impl FnOnce(&Seen) -> T) -> T {
        read(&self.seen.lock().unwrap())
    }

    async fn forward(&self, uri: &Uri, headers: &HeaderMap, body: Bytes) -> (StatusCode, Bytes) {
        let mut request = self.http.post(format!("{}{}", self.moto, uri.path()));
        for (name, value) in headers {
            if name != "host" && name != "content-length" {
                request = request.header(name.as_str(), value.as_bytes());
            }
        }
        let response = request.body(body).send().await.expect("moto answers");
        let status = StatusCode::from_u16(response.status().as_u16()).unwrap();
        (status, response.bytes().await.expect("moto's body"))
    }
}

fn kinesis_error(status: u16, code: &str) -> Response {
    (
        StatusCode::from_u16(status).unwrap(),
        [("content-type", JSON_1_1)],
        json!({"__type": code, "message": "injected by the test proxy"}).to_string(),
    )
        .into_response()
}

fn kinesis_reply((status, body): (StatusCode, Bytes)) -> Response {
    (status, [("content-type", JSON_1_1)], body).into_response()
}

async fn handle(
    State(proxy): State<Arc<Proxy>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let put_records_call = if target == PUT_RECORDS {
        let request: Value = serde_json::from_slice(&body).unwrap();
        let keys = request["Records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["PartitionKey"].as_str().unwrap().to_owned())
            .collect();
        let mut seen = proxy.seen.lock().unwrap();
        seen.put_records_calls.push(keys);
        seen.put_records_calls.len()
    } else {
        0
    };
    match (proxy.mode, target) {
        (
            Mode::FailPutRecord {
                times,
                status,
                code,
            },
            PUT_RECORD,
        ) => {
            let call = {
                let mut seen = proxy.seen.lock().unwrap();
                seen.put_record_calls += 1;
                seen.put_record_calls
            };
            if call <= times {
                return kinesis_error(status, code);
            }
            kinesis_reply(proxy.forward(&uri, &headers, body).await)
        }
        (Mode::ThrottleShare { percent }, PUT_RECORD) => {
            let call = {
                let mut seen = proxy.seen.lock().unwrap();
                seen.put_record_calls += 1;
                seen.put_record_calls
            };
            // A fixed permutation of the call count, so the failures are spread, not bunched.
            if (call * 37) % 100 < percent {
                return kinesis_error(400, "ProvisionedThroughputExceededException");
            }
            kinesis_reply(proxy.forward(&uri, &headers, body).await)
        }
        (Mode::ThrottleOddRecordsOnce, PUT_RECORDS) => {
            if put_records_call > 1 {
                return kinesis_reply(proxy.forward(&uri, &headers, body).await);
            }
            let mut request: Value = serde_json::from_slice(&body).unwrap();
            let records = request["Records"].as_array().unwrap().clone();
            let even: Vec<Value> = records.iter().step_by(2).cloned().collect();
            request["Records"] = Value::Array(even);
            let (status, moto_body) = proxy
                .forward(&uri, &headers, Bytes::from(request.to_string()))
                .await;
            assert_eq!(status, StatusCode::OK);
            let accepted: Value = serde_json::from_slice(&moto_body).unwrap();
            let mut accepted = accepted["Records"].as_array().unwrap().iter();
            let results: Vec<Value> = (0..records.len())
                .map(|i| match i % 2 {
                    0 => accepted.next().unwrap().clone(),
                    _ => json!({"ErrorCode": "ProvisionedThroughputExceededException",
                                "ErrorMessage": "Rate exceeded for shard"}),
                })
                .collect();
            let reply = json!({"FailedRecordCount": records.len() / 2, "Records": results});
            kinesis_reply((StatusCode::OK, Bytes::from(reply.to_string())))
        }
        _ => kinesis_reply(proxy.forward(&uri, &headers, body).await),
    }
}

/// Short backoffs, so that tests retry many times within their budgets.
fn quick_retries() -> RetryPolicy {
    RetryPolicy {
        first_backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(50),
        ..RetryPolicy::default()
    }
}

/// A Kinesis stream adapter that talks to moto through `proxy_url`, retrying quickly.
async fn stream_via(proxy_url: &str, stream: &str) -> KinesisEventStream {
    let config =
        aws_sdk_kinesis::config::Builder::from(&sdk_config().await).endpoint_url(proxy_url);
    KinesisEventStream::from_client_config(config, stream).with_retry_policy(quick_retries())
}

/// Registers `{client}/Fruits` and returns the router of a processor whose stream goes
/// through the proxy, each request with `budget` to live.
async fn api_via(proxy_url: &str, stream: &str, budget: Duration) -> (axum::Router, String) {
    let store = fresh_store().await;
    let client = unique_client();
    store
        .insert_version(
            &client,
            &event_name("Fruits"),
            SchemaVersion::FIRST,
            &json!({"type": "object"}),
            deadline(),
        )
        .await
        .unwrap();
    let stream = stream_via(proxy_url, stream).await;
    let router = Api::new(Processor::new(Arc::new(store), Arc::new(stream)))
        .request_budget(budget)
        .router();
    (router, format!("/{client}/Fruits/send_event"))
}

#[tokio::test]
async fn a_put_record_throttled_three_times_becomes_one_record_and_a_200() {
    let moto_stream = fresh_stream().await;
    let (proxy, url) = Proxy::start(Mode::FailPutRecord {
        times: 3,
        status: 400,
        code: "ProvisionedThroughputExceededException",
    })
    .await;
    let (router, uri) = api_via(&url, moto_stream.stream_name(), Duration::from_secs(10)).await;

    let reply = post_json(&router, &uri, &json!({"fruit": "kiwi"})).await;

    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(proxy.seen(|s| s.put_record_calls), 4);
    let records = raw_records(moto_stream.stream_name()).await;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].data["id"], reply.body["id"]);
}

#[tokio::test]
async fn kms_throttling_and_internal_failures_are_retried_too() {
    for (status, code) in [(400, "KMSThrottlingException"), (500, "InternalFailure")] {
        let moto_stream = fresh_stream().await;
        let (proxy, url) = Proxy::start(Mode::FailPutRecord {
            times: 2,
            status,
            code,
        })
        .await;
        let (router, uri) = api_via(&url, moto_stream.stream_name(), Duration::from_secs(10)).await;

        let reply = post_json(&router, &uri, &json!({"fruit": "kiwi"})).await;

        assert_eq!(reply.status, StatusCode::OK, "{code}: {:?}", reply.body);
        assert_eq!(proxy.seen(|s| s.put_record_calls), 3, "{code}");
        assert_eq!(
            raw_records(moto_stream.stream_name()).await.len(),
            1,
            "{code}"
        );
    }
}

#[tokio::test]
async fn throttling_past_the_deadline_is_a_503_with_retry_after_and_no_record() {
    let moto_stream = fresh_stream().await;
    let (proxy, url) = Proxy::start(Mode::FailPutRecord {
        times: usize::MAX,
        status: 400,
        code: "ProvisionedThroughputExceededException",
    })
    .await;
    let (router, uri) = api_via(&url, moto_stream.stream_name(), Duration::from_millis(300)).await;

    let reply = post_json(&router, &uri, &json!({"fruit": "kiwi"})).await;

    assert_eq!(
        reply.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{:?}",
        reply.body
    );
    assert_eq!(reply.body["error"], "service_unavailable");
    assert!(reply.headers.contains_key("retry-after"));
    let text = reply.body.to_string();
    assert!(
        !text.contains("Provisioned") && !text.contains("proxy"),
        "leaks: {text}"
    );
    assert!(proxy.seen(|s| s.put_record_calls) > 1, "it was retried");
    assert!(raw_records(moto_stream.stream_name()).await.is_empty());
}

#[tokio::test]
async fn an_error_that_is_not_transient_is_not_retried() {
    let moto_stream = fresh_stream().await;
    let (proxy, url) = Proxy::start(Mode::FailPutRecord {
        times: usize::MAX,
        status: 400,
        code: "AccessDeniedException",
    })
    .await;
    let (router, uri) = api_via(&url, moto_stream.stream_name(), Duration::from_secs(10)).await;

    let reply = post_json(&router, &uri, &json!({"fruit": "kiwi"})).await;

    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(proxy.seen(|s| s.put_record_calls), 1);
}

#[tokio::test]
async fn a_batch_resends_only_the_records_kinesis_refused() {
    let moto_stream = fresh_stream().await;
    let (proxy, url) = Proxy::start(Mode::ThrottleOddRecordsOnce).await;
    let stream = stream_via(&url, moto_stream.stream_name()).await;
    let (client, event) = (unique_client(), event_name("Fruits"));
    let batch: Vec<Envelope> = (0..10)
        .map(|i| Envelope::new(&client, &event, SchemaVersion::FIRST, &json!({"i": i})).unwrap())
        .collect();

    let results = stream.publish_batch(&batch, deadline()).await;

    assert!(results.iter().all(Result::is_ok), "{results:?}");
    let ids: Vec<String> = batch.iter().map(|e| e.id.to_string()).collect();
    let odd: Vec<String> = ids.iter().skip(1).step_by(2).cloned().collect();
    assert_eq!(
        proxy.seen(|s| s.put_records_calls.clone()),
        vec![ids.clone(), odd]
    );
    let mut stored: Vec<String> = raw_records(moto_stream.stream_name())
        .await
        .iter()
        .map(|r| r.data["id"].as_str().unwrap().to_owned())
        .collect();
    stored.sort();
    let mut expected = ids;
    expected.sort();
    assert_eq!(stored, expected, "every record exactly once");
}

#[tokio::test]
async fn a_large_batch_is_split_into_calls_of_at_most_500_records() {
    let moto_stream = fresh_stream().await;
    let (proxy, url) = Proxy::start(Mode::PassThrough).await;
    let stream = stream_via(&url, moto_stream.stream_name()).await;
    let (client, event) = (unique_client(), event_name("Fruits"));
    let batch: Vec<Envelope> = (0..1200)
        .map(|i| Envelope::new(&client, &event, SchemaVersion::FIRST, &json!({"i": i})).unwrap())
        .collect();

    let results = stream.publish_batch(&batch, deadline()).await;

    assert!(results.iter().all(Result::is_ok));
    let sizes = proxy.seen(|s| s.put_records_calls.iter().map(Vec::len).collect::<Vec<_>>());
    assert_eq!(sizes, [500, 500, 200]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_concurrent_load_with_kinesis_throttling_no_acknowledged_event_is_lost() {
    // Given a stream that throttles 80% of PutRecord calls (each request has 5 s),
    let moto_stream = fresh_stream().await;
    let (proxy, url) = Proxy::start(Mode::ThrottleShare { percent: 80 }).await;
    let (router, uri) = api_via(&url, moto_stream.stream_name(), Duration::from_secs(5)).await;

    // when 200 events are sent, 50 at a time,
    let LoadOutcome {
        acknowledged,
        refused,
    } = send_in_rounds(&router, &uri, 4, 50, |_| {}).await;

    // then exactly the acknowledged events are in the stream (a throttled call never reached it).
    let found: std::collections::BTreeSet<String> = raw_records(moto_stream.stream_name())
        .await
        .into_iter()
        .map(|r| r.data["id"].as_str().unwrap().to_owned())
        .collect();
    let calls = proxy.seen(|s| s.put_record_calls);
    eprintln!(
        "PutRecord calls {calls} (80% throttled); acknowledged {}, refused {refused}, found {}, lost {}",
        acknowledged.len(),
        found.len(),
        acknowledged.difference(&found).count()
    );
    assert!(
        calls > 200 && !acknowledged.is_empty(),
        "the faults must have bitten"
    );
    assert_eq!(found, acknowledged);
}
