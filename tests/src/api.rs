//! Driving the one HTTP router in-process, as a client would, with `tower::ServiceExt::oneshot`.

use axum::Router;
use axum::body::Body;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

/// A response: status, headers, and the JSON body.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

/// Sends one request with an optional body of the given content type.
pub async fn call(
    router: &Router,
    method: Method,
    uri: &str,
    body: Option<(&str, String)>,
) -> Reply {
    let mut request = Request::builder().method(method).uri(uri);
    let body = match body {
        Some((content_type, body)) => {
            request = request.header(http::header::CONTENT_TYPE, content_type);
            Body::from(body)
        }
        None => Body::empty(),
    };
    send(router, request.body(body).expect("a valid request")).await
}

/// Sends a ready-made request through the router and reads the answer, checking what API.md
/// promises of every response: `Content-Type: application/json`, a JSON body with `code`
/// (`SUCCEEDED` or `FAILED`) and a `msg` sentence.
pub async fn send(router: &Router, request: Request<Body>) -> Reply {
    let uri = request.uri().clone();
    let response = router
        .clone()
        .oneshot(request)
        .await
        .expect("the router is infallible");
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("read the body")
        .to_bytes();
    assert_eq!(
        headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok()),
        Some("application/json"),
        "every response is JSON ({status} for {uri})"
    );
    let body: Value = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
        panic!(
            "{status}: body is not JSON ({e}): {}",
            String::from_utf8_lossy(&bytes)
        )
    });
    assert!(
        body["code"] == "SUCCEEDED" || body["code"] == "FAILED",
        "{status} for {uri}: {body}"
    );
    assert!(body["msg"].is_string(), "{status} for {uri}: {body}");
    Reply {
        status,
        headers,
        body,
    }
}

/// Asserts a failure of API.md's shape: `status`, `code: FAILED` and the stable `error`.
pub fn assert_failure(reply: &Reply, status: StatusCode, error: &str) {
    assert_eq!(reply.status, status, "{}", reply.body);
    assert_eq!(reply.body["code"], "FAILED", "{}", reply.body);
    assert_eq!(reply.body["error"], error, "{}", reply.body);
}

/// `POST uri` with a JSON body.
pub async fn post_json(router: &Router, uri: &str, body: &Value) -> Reply {
    call(
        router,
        Method::POST,
        uri,
        Some(("application/json", body.to_string())),
    )
    .await
}

/// `POST uri` with a form-urlencoded body.
pub async fn post_form(router: &Router, uri: &str, fields: &[(&str, &str)]) -> Reply {
    let body = fields
        .iter()
        .map(|(k, v)| format!("{}={}", form_encode(k), form_encode(v)))
        .collect::<Vec<_>>()
        .join("&");
    call(
        router,
        Method::POST,
        uri,
        Some(("application/x-www-form-urlencoded", body)),
    )
    .await
}

/// `GET uri`.
pub async fn get(router: &Router, uri: &str) -> Reply {
    call(router, Method::GET, uri, None).await
}

fn form_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' => {
                (b as char).to_string()
            }
            b' ' => "+".to_owned(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// What a load of sends came to: the ids of the 200s, and how many were 503s.
#[derive(Debug, Default)]
pub struct LoadOutcome {
    pub acknowledged: std::collections::BTreeSet<String>,
    pub refused: usize,
}

/// Sends `rounds` × `per_round` events to `uri` (a `send_event` path), `per_round` at a time,
/// calling `before_round` before each round (to inject a fault). Any answer other than 200 or
/// 503 fails the test: under failure the gateway must either acknowledge or refuse.
pub async fn send_in_rounds(
    router: &Router,
    uri: &str,
    rounds: usize,
    per_round: usize,
    mut before_round: impl FnMut(usize),
) -> LoadOutcome {
    let mut outcome = LoadOutcome::default();
    for round in 0..rounds {
        before_round(round);
        let sends: Vec<_> = (0..per_round)
            .map(|i| {
                let (router, uri) = (router.clone(), uri.to_owned());
                tokio::spawn(async move {
                    post_json(&router, &uri, &serde_json::json!({"round": round, "i": i})).await
                })
            })
            .collect();
        for send in sends {
            let reply = send.await.expect("the send task");
            match reply.status {
                StatusCode::OK => {
                    let id = reply.body["id"].as_str().expect("a 200 carries the id");
                    assert!(
                        outcome.acknowledged.insert(id.to_owned()),
                        "id {id} given twice"
                    );
                }
                StatusCode::SERVICE_UNAVAILABLE => outcome.refused += 1,
                other => panic!("unexpected {other}: {:?}", reply.body),
            }
        }
    }
    outcome
}
