//! The whole HTTP layer on memory backends: arbitrary method, path, query, content type,
//! `Authorization` header and body, with `AUTH=none` and with `AUTH=jwt`.
//! Property: every request gets a JSON answer, and none is a 5xx (the memory backends never
//! fail, so a 5xx could only come from a bug reaching the edge layer's panic catch).
#![no_main]

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use arbitrary::Arbitrary;
use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, header};

use event_processor_core::Processor;
use event_processor_core::adapters::memory::{MemoryEventStream, MemorySchemaStore};
use event_processor_core::auth::{self, JwtVerifier};
use event_processor_core::http::Auth;
use http_body_util::BodyExt;
use libfuzzer_sys::fuzz_target;
use tower::ServiceExt;

#[derive(Arbitrary, Debug)]
struct Input {
    method: u8,
    client: String,
    event: String,
    route: u8,
    content_type: u8,
    custom_content_type: String,
    query: String,
    /// Whether the gateway verifies tokens (`AUTH=jwt`).
    jwt: bool,
    /// 0: no header, 1: a valid token with every scope, 2: "Bearer " + `token`, else `token` raw.
    authorization: u8,
    token: String,
    body: Vec<u8>,
}

const METHODS: [Method; 5] = [Method::POST, Method::GET, Method::PUT, Method::DELETE, Method::HEAD];
const ROUTES: [&str; 10] = [
    "register_event",
    "send_event",
    "send_events",
    "schema",
    "list_events",
    "check_compatibility",
    "validate",
    "versions",
    "compatibility",
    "x",
];

static RUNTIME: LazyLock<tokio::runtime::Runtime> =
    LazyLock::new(|| tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap());

/// A key, and a token signed with it that may do everything.
static KEY: LazyLock<String> = LazyLock::new(|| auth::generate_es256_key().unwrap());
static TOKEN: LazyLock<String> = LazyLock::new(|| {
    auth::mint(KEY.as_bytes(), "k", "iss", "aud", "*:send *:register *:read", Duration::from_secs(86_400)).unwrap()
});

/// One gateway per auth mode for the whole run, with the demo pair and a strict pair
/// registered, so arbitrary events reach validation.
static OPEN: LazyLock<Router> = LazyLock::new(|| gateway(Auth::Off));
static JWT: LazyLock<Router> = LazyLock::new(|| {
    let jwks = auth::jwks_for(KEY.as_bytes(), "k").unwrap().to_string();
    gateway(Auth::Verify(Arc::new(JwtVerifier::new(jwks.as_bytes(), "iss", "aud").unwrap())))
});

fn gateway(auth: Auth) -> Router {
    let processor = Processor::new(Arc::new(MemorySchemaStore::new()), Arc::new(MemoryEventStream::new()));
    let router = event_processor_core::http::Api::new(processor).auth(auth).router();
    for (path, schema) in [
        ("/SpongeBob/Fruits/register_event", r#"{"type":"object","required":["fruit"]}"#),
        (
            "/a/b/register_event",
            r##"{"type":"object","properties":{"s":{"type":"string","pattern":"^(a+)+$"},"n":{"type":"array","items":{"$ref":"#"}}},"additionalProperties":false}"##,
        ),
    ] {
        let request = Request::post(path)
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::AUTHORIZATION, format!("Bearer {}", *TOKEN))
            .body(Body::from(schema))
            .unwrap();
        let status = RUNTIME.block_on(router.clone().oneshot(request)).unwrap().status();
        assert!(status.is_success());
    }
    router
}

fuzz_target!(|input: Input| {
    let method = METHODS[input.method as usize % METHODS.len()].clone();
    let route = ROUTES[input.route as usize % ROUTES.len()];
    let (client, event) = match input.route % 8 {
        6 => ("SpongeBob".to_owned(), "Fruits".to_owned()),
        7 => ("a".to_owned(), "b".to_owned()),
        _ => (input.client, input.event),
    };
    let mut path = if route == "list_events" { format!("/{client}/{route}") } else { format!("/{client}/{event}/{route}") };
    if !input.query.is_empty() {
        path = format!("{path}?{}", input.query);
    }
    let Ok(uri) = path.parse::<axum::http::Uri>() else { return };
    let content_type = match input.content_type % 5 {
        0 => Some("application/json".to_owned()),
        1 => Some("application/x-www-form-urlencoded".to_owned()),
        2 => None,
        3 => Some("multipart/form-data; boundary=x".to_owned()),
        _ => Some(input.custom_content_type),
    };
    let mut request = Request::builder().method(method).uri(uri);
    if let Some(content_type) = content_type {
        request = request.header(header::CONTENT_TYPE, content_type);
    }
    match input.authorization % 4 {
        0 => {}
        1 => request = request.header(header::AUTHORIZATION, format!("Bearer {}", *TOKEN)),
        2 => request = request.header(header::AUTHORIZATION, format!("Bearer {}", input.token)),
        _ => request = request.header(header::AUTHORIZATION, input.token),
    }
    let Ok(request) = request.body(Body::from(input.body)) else { return };

    // Initialised outside `block_on`: its set-up blocks on the runtime itself.
    let router = if input.jwt { JWT.clone() } else { OPEN.clone() };
    RUNTIME.block_on(async {
        let response = router.oneshot(request).await.unwrap();
        let status = response.status();
        assert!(!status.is_server_error(), "{status} for a client request");
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        if !bytes.is_empty() {
            // HEAD answers have no body; everything else is one JSON document.
            serde_json::from_slice::<serde_json::Value>(&bytes).expect("JSON body");
        }
    });
});
