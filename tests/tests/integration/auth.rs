//! Authentication and authorization through the HTTP layer as `serve` mounts it with
//! `AUTH=jwt` (tokens verified against a JWKS), and as a Lambda function mounts it behind API
//! Gateway's JWT authorizer (claims handed over): the cross-tenant matrix of API.md's scope
//! table on every route, and the hostile tokens, each refused with 401.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use event_processor_core::Processor;
use event_processor_core::adapters::memory::{MemoryEventStream, MemorySchemaStore};
use event_processor_core::auth::{self, JwtVerifier};
use event_processor_core::http::{Api, Auth, AuthorizerClaims};
use event_processor_tests::api::{self, Reply, assert_failure};

const ISSUER: &str = "https://issuer.test";
const AUDIENCE: &str = "event-processor";
const KID: &str = "test";

/// A signing key, and a gateway that trusts it.
struct Keyed {
    key: String,
    router: Router,
}

fn keyed_gateway() -> Keyed {
    let key = auth::generate_es256_key().unwrap();
    let jwks = auth::jwks_for(key.as_bytes(), KID).unwrap();
    let verifier =
        JwtVerifier::new(jwks.to_string().as_bytes(), ISSUER, AUDIENCE).expect("a usable JWKS");
    let processor = Processor::new(
        Arc::new(MemorySchemaStore::new()),
        Arc::new(MemoryEventStream::new()),
    );
    let router = Api::new(processor)
        .auth(Auth::Verify(Arc::new(verifier)))
        .router();
    Keyed { key, router }
}

impl Keyed {
    /// A valid token carrying `scopes` verbatim — signed here rather than with `auth::mint`,
    /// which refuses scopes it does not understand (the near misses of the matrix).
    fn token(&self, scopes: &str) -> String {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        header.kid = Some(KID.to_owned());
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let claims = serde_json::json!({
            "iss": ISSUER, "aud": AUDIENCE, "sub": "tester", "scope": scopes,
            "iat": now, "exp": now + 300,
        });
        let key = jsonwebtoken::EncodingKey::from_ec_pem(self.key.as_bytes()).unwrap();
        jsonwebtoken::encode(&header, &claims, &key).unwrap()
    }
}

/// One route of API.md, the action it needs, and a request that would succeed on it.
struct Route {
    method: Method,
    path: &'static str,
    action: &'static str,
    body: Option<&'static str>,
}

const ROUTES: &[Route] = &[
    Route {
        method: Method::POST,
        path: "Fruits/register_event",
        action: "register",
        body: Some(r#"{"type":"object"}"#),
    },
    Route {
        method: Method::POST,
        path: "Fruits/check_compatibility",
        action: "register",
        body: Some(r#"{"type":"object"}"#),
    },
    Route {
        method: Method::PUT,
        path: "Fruits/compatibility",
        action: "register",
        body: Some(r#"{"compatibility":"FULL"}"#),
    },
    Route {
        method: Method::POST,
        path: "Fruits/send_event",
        action: "send",
        body: Some(r#"{"fruit":"kiwi"}"#),
    },
    Route {
        method: Method::POST,
        path: "Fruits/send_events",
        action: "send",
        body: Some(r#"[{"fruit":"kiwi"}]"#),
    },
    Route {
        method: Method::POST,
        path: "Fruits/validate",
        action: "send",
        body: Some(r#"{"fruit":"kiwi"}"#),
    },
    Route {
        method: Method::GET,
        path: "Fruits/schema",
        action: "read",
        body: None,
    },
    Route {
        method: Method::GET,
        path: "Fruits/versions",
        action: "read",
        body: None,
    },
    Route {
        method: Method::GET,
        path: "Fruits/compatibility",
        action: "read",
        body: None,
    },
    Route {
        method: Method::GET,
        path: "list_events",
        action: "read",
        body: None,
    },
];

fn request(route: &Route, client: &str, authorization: Option<&str>) -> Request<Body> {
    let mut builder = Request::builder()
        .method(route.method.clone())
        .uri(format!("/{client}/{}", route.path));
    if let Some(authorization) = authorization {
        builder = builder.header(header::AUTHORIZATION, authorization);
    }
    match route.body {
        Some(body) => builder
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body))
            .unwrap(),
        None => builder.body(Body::empty()).unwrap(),
    }
}

/// The token kinds of the matrix, and the (client, action) pairs each grants.
const TOKENS: &[(&str, &[(&str, &str)])] = &[
    ("alpha:send", &[("alpha", "send")]),
    ("alpha:register", &[("alpha", "register")]),
    ("alpha:read", &[("alpha", "read")]),
    (
        "alpha:send alpha:register alpha:read",
        &[("alpha", "send"), ("alpha", "register"), ("alpha", "read")],
    ),
    ("*:send", &[("alpha", "send"), ("beta", "send")]),
    ("*:register", &[("alpha", "register"), ("beta", "register")]),
    ("*:read", &[("alpha", "read"), ("beta", "read")]),
    (
        "beta:read alpha:send",
        &[("beta", "read"), ("alpha", "send")],
    ),
    // Near misses grant nothing.
    ("alphabeta:send", &[]),
    ("alpha:sendx", &[]),
    ("ALPHA:send", &[]),
    ("alpha:*", &[]),
    ("", &[]),
];

/// Registers alpha/Fruits and beta/Fruits with a token that may.
async fn registered(gw: &Keyed) {
    let admin = format!("Bearer {}", gw.token("*:register"));
    for client in ["alpha", "beta"] {
        let reply = api::send(&gw.router, request(&ROUTES[0], client, Some(&admin))).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    }
}

#[tokio::test]
async fn the_cross_tenant_matrix_has_no_false_allow_and_no_wrong_denial() {
    let gw = keyed_gateway();
    registered(&gw).await;
    let (mut false_allows, mut wrong_denials, mut checked) = (Vec::new(), Vec::new(), 0);

    for (scopes, grants) in TOKENS {
        let bearer = format!("Bearer {}", gw.token(scopes));
        for client in ["alpha", "beta"] {
            for route in ROUTES {
                let reply = api::send(&gw.router, request(route, client, Some(&bearer))).await;
                assert_ne!(
                    reply.status,
                    StatusCode::UNAUTHORIZED,
                    "{scopes}: {}",
                    reply.body
                );
                let granted = grants.contains(&(client, route.action));
                let allowed = reply.status != StatusCode::FORBIDDEN;
                let case = format!(
                    "{scopes:?} {} /{client}/{} → {}",
                    route.method, route.path, reply.status
                );
                match (granted, allowed) {
                    (false, true) => false_allows.push(case),
                    (true, false) => wrong_denials.push(case),
                    (true, true) => assert!(reply.status.is_success(), "{case}: {}", reply.body),
                    (false, false) => assert_eq!(reply.body["error"], "forbidden", "{case}"),
                }
                checked += 1;
            }
        }
    }

    assert_eq!(checked, TOKENS.len() * 2 * ROUTES.len());
    assert!(false_allows.is_empty(), "false allows: {false_allows:#?}");
    assert!(
        wrong_denials.is_empty(),
        "wrong denials: {wrong_denials:#?}"
    );
}

#[tokio::test]
async fn a_request_without_a_token_is_401_on_every_route_unknown_ones_included() {
    let gw = keyed_gateway();
    let unknown = Route {
        method: Method::GET,
        path: "nowhere/at/all",
        action: "read",
        body: None,
    };
    for route in ROUTES.iter().chain([&unknown]) {
        let reply = api::send(&gw.router, request(route, "alpha", None)).await;
        assert_failure(&reply, StatusCode::UNAUTHORIZED, "unauthenticated");
        assert!(
            reply.headers[header::WWW_AUTHENTICATE]
                .to_str()
                .unwrap()
                .starts_with("Bearer"),
            "{}",
            route.path
        );
    }
}

async fn with_authorization(gw: &Keyed, authorization: &str) -> Reply {
    api::send(
        &gw.router,
        request(&ROUTES[6], "alpha", Some(authorization)),
    )
    .await
}

#[tokio::test]
async fn hostile_authorization_headers_are_401() {
    let gw = keyed_gateway();
    let valid = gw.token("alpha:read");
    let other_key = auth::generate_es256_key().unwrap();
    let by_an_unknown_key = auth::mint(
        other_key.as_bytes(),
        KID,
        ISSUER,
        AUDIENCE,
        "alpha:read",
        Duration::from_secs(300),
    )
    .unwrap();
    let wrong_issuer = auth::mint(
        gw.key.as_bytes(),
        KID,
        "https://elsewhere",
        AUDIENCE,
        "alpha:read",
        Duration::from_secs(300),
    )
    .unwrap();
    let wrong_audience = auth::mint(
        gw.key.as_bytes(),
        KID,
        ISSUER,
        "someone-else",
        "alpha:read",
        Duration::from_secs(300),
    )
    .unwrap();
    let unknown_kid = auth::mint(
        gw.key.as_bytes(),
        "rotated-away",
        ISSUER,
        AUDIENCE,
        "alpha:read",
        Duration::from_secs(300),
    )
    .unwrap();
    // `alg: none`: the header and claims of a valid token, no signature.
    let mut parts = valid.split('.');
    let (_, claims) = (parts.next().unwrap(), parts.next().unwrap());
    let none_header = base64_url(br#"{"alg":"none","typ":"JWT","kid":"test"}"#);
    let alg_none = format!("{none_header}.{claims}.");
    // A valid token with one byte of its signature changed.
    let mut tampered = valid.clone().into_bytes();
    let last = tampered.len() - 2;
    tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();

    for (case, header) in [
        ("empty", String::new()),
        ("not bearer", format!("Basic {valid}")),
        ("garbage", "Bearer not.a.token".to_owned()),
        ("alg none", format!("Bearer {alg_none}")),
        ("tampered signature", format!("Bearer {tampered}")),
        (
            "signed by a key not in the JWKS",
            format!("Bearer {by_an_unknown_key}"),
        ),
        ("wrong issuer", format!("Bearer {wrong_issuer}")),
        ("wrong audience", format!("Bearer {wrong_audience}")),
        ("kid not in the JWKS", format!("Bearer {unknown_kid}")),
    ] {
        let reply = with_authorization(&gw, &header).await;
        assert_eq!(
            reply.status,
            StatusCode::UNAUTHORIZED,
            "{case}: {}",
            reply.body
        );
        assert_eq!(reply.body["error"], "unauthenticated", "{case}");
    }
    // (Expiry, `nbf`, algorithm confusion and key-type mismatches are each tested on the
    // verifier itself, core/tests/auth/verify.rs.) The untouched token passes.
    assert_eq!(
        with_authorization(&gw, &format!("Bearer {valid}"))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

fn base64_url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A gateway as a Lambda function mounts it behind the JWT authorizer.
fn authorizer_gateway() -> Router {
    let processor = Processor::new(
        Arc::new(MemorySchemaStore::new()),
        Arc::new(MemoryEventStream::new()),
    );
    Api::new(processor)
        .auth(Auth::Authorizer {
            scope_prefix: "".into(),
        })
        .router()
}

fn with_claims(route: &Route, client: &str, claims: Option<AuthorizerClaims>) -> Request<Body> {
    let mut request = request(route, client, None);
    if let Some(claims) = claims {
        request.extensions_mut().insert(claims);
    }
    request
}

#[tokio::test]
async fn behind_the_authorizer_a_request_without_claims_is_401_and_claims_get_the_scope_rule() {
    let router = authorizer_gateway();
    let claims = |scope: &str| AuthorizerClaims {
        scopes: None,
        scope_claim: Some(scope.to_owned()),
        subject: Some("user-1".to_owned()),
    };

    let no_claims = api::send(&router, with_claims(&ROUTES[0], "alpha", None)).await;
    let registered = api::send(
        &router,
        with_claims(&ROUTES[0], "alpha", Some(claims("alpha:register"))),
    )
    .await;
    let other_client = api::send(
        &router,
        with_claims(&ROUTES[0], "beta", Some(claims("alpha:register"))),
    )
    .await;
    let listed_scopes = AuthorizerClaims {
        scopes: Some(vec!["beta:register".to_owned()]),
        scope_claim: Some("alpha:read".to_owned()),
        subject: None,
    };
    let by_scopes_list = api::send(
        &router,
        with_claims(&ROUTES[0], "beta", Some(listed_scopes)),
    )
    .await;

    assert_failure(&no_claims, StatusCode::UNAUTHORIZED, "unauthenticated");
    assert_eq!(
        registered.status,
        StatusCode::CREATED,
        "{}",
        registered.body
    );
    assert_failure(&other_client, StatusCode::FORBIDDEN, "forbidden");
    assert_eq!(
        by_scopes_list.status,
        StatusCode::CREATED,
        "the authorizer's scopes list wins"
    );
}

#[tokio::test]
async fn a_forbidden_request_changes_nothing() {
    let gw = keyed_gateway();
    registered(&gw).await;
    let reader = format!("Bearer {}", gw.token("alpha:read"));

    let refused = api::send(&gw.router, request(&ROUTES[3], "alpha", Some(&reader))).await;
    let set_mode = api::send(&gw.router, request(&ROUTES[2], "alpha", Some(&reader))).await;

    assert_failure(&refused, StatusCode::FORBIDDEN, "forbidden");
    assert_failure(&set_mode, StatusCode::FORBIDDEN, "forbidden");
    let mode = api::send(&gw.router, request(&ROUTES[8], "alpha", Some(&reader))).await;
    assert_eq!(mode.body["compatibility"], "BACKWARD");
}
