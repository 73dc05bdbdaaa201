//! Schema versions and compatibility through the HTTP layer (API.md, "Schema versions and
//! compatibility" and "Sending against a version; dry run"), on the memory adapters.

use axum::http::{Method, StatusCode};
use event_processor_core::domain::{ClientId, EventName};
use event_processor_tests::api::assert_failure;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::http::{Gateway, gateway, person_schema};

const JSON: &str = "application/json";

/// `person_schema` with an optional `nickname`: a BACKWARD compatible next version.
fn with_nickname() -> Value {
    let mut schema = person_schema();
    schema["properties"]["nickname"] = json!({"type": "string"});
    schema
}

/// `person_schema` that also requires `email`: not BACKWARD compatible.
fn requiring_email() -> Value {
    let mut schema = person_schema();
    schema["properties"]["email"] = json!({"type": "string"});
    schema["required"] = json!(["name", "age", "email"]);
    schema
}

async fn two_versions() -> Gateway {
    let gw = gateway();
    assert_eq!(
        gw.register("a", "People", &person_schema()).await.status,
        StatusCode::CREATED
    );
    assert_eq!(
        gw.register("a", "People", &with_nickname()).await.status,
        StatusCode::CREATED
    );
    gw
}

async fn put_mode(gw: &Gateway, uri: &str, body: &str) -> event_processor_tests::api::Reply {
    gw.call(Method::PUT, uri, Some(JSON), body.to_owned()).await
}

#[tokio::test]
async fn a_compatible_schema_is_201_with_the_next_version() {
    let gw = gateway();
    gw.register("a", "People", &person_schema()).await;

    let reply = gw.register("a", "People", &with_nickname()).await;

    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    assert_eq!(
        reply.body,
        json!({"code": "SUCCEEDED", "msg": "event registered", "client": "a", "event": "People", "version": 2})
    );
}

#[tokio::test]
async fn an_incompatible_schema_is_409_listing_each_incompatibility() {
    let gw = gateway();
    gw.register("a", "People", &person_schema()).await;

    let reply = gw.register("a", "People", &requiring_email()).await;

    assert_failure(&reply, StatusCode::CONFLICT, "schema_incompatible");
    assert_eq!(reply.body["mode"], "BACKWARD");
    let incompatibilities = reply.body["incompatibilities"].as_array().unwrap();
    assert!(!incompatibilities.is_empty() && incompatibilities.len() <= 50);
    for incompatibility in incompatibilities {
        assert_eq!(incompatibility["version"], 1);
        assert!(incompatibility["path"].as_str().unwrap().starts_with('/'));
        assert!(incompatibility["kind"].is_string());
        assert!(incompatibility["message"].is_string());
    }
    let versions = gw.get("/a/People/versions").await;
    assert_eq!(
        versions.body["versions"].as_array().unwrap().len(),
        1,
        "nothing registered"
    );
}

#[tokio::test]
async fn a_schema_identical_to_an_earlier_version_is_200_with_that_version() {
    let gw = two_versions().await;

    let reply = gw.register("a", "People", &person_schema()).await;

    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["version"], 1);
}

#[tokio::test]
async fn a_given_version_of_the_schema_is_recovered() {
    let gw = two_versions().await;

    let first = gw.get("/a/People/schema?version=1").await;
    let latest = gw.get("/a/People/schema").await;

    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(
        (&first.body["schema"], &first.body["version"]),
        (&person_schema(), &json!(1))
    );
    assert_eq!(
        (&latest.body["schema"], &latest.body["version"]),
        (&with_nickname(), &json!(2))
    );
}

#[tokio::test]
async fn versions_are_listed_ascending_with_their_registration_times() {
    let gw = two_versions().await;

    let reply = gw.get("/a/People/versions").await;

    assert_eq!(reply.status, StatusCode::OK);
    let versions = reply.body["versions"].as_array().unwrap();
    let numbers: Vec<&Value> = versions.iter().map(|v| &v["version"]).collect();
    assert_eq!(numbers, [&json!(1), &json!(2)]);
    for version in versions {
        OffsetDateTime::parse(version["registered_at"].as_str().unwrap(), &Rfc3339)
            .expect("registered_at is RFC 3339");
    }
    assert_failure(
        &gw.get("/a/Nope/versions").await,
        StatusCode::NOT_FOUND,
        "event_not_registered",
    );
}

#[tokio::test]
async fn an_unknown_version_is_404_on_every_route_that_takes_one() {
    let gw = two_versions().await;
    let event = json!({"name": "Bob", "age": 3});

    for reply in [
        gw.get("/a/People/schema?version=3").await,
        gw.post_json("/a/People/send_event?version=3", &event).await,
        gw.post_json("/a/People/validate?version=3", &event).await,
        gw.post_json("/a/People/send_events?version=3", &json!([event]))
            .await,
    ] {
        assert_failure(&reply, StatusCode::NOT_FOUND, "version_not_found");
    }
    // An unregistered pair is told apart from a missing version.
    let reply = gw.get("/a/Nope/schema?version=1").await;
    assert_failure(&reply, StatusCode::NOT_FOUND, "event_not_registered");
    assert!(gw.published("a", "People").is_empty());
}

#[tokio::test]
async fn a_version_that_is_not_a_positive_whole_number_is_400() {
    let gw = two_versions().await;
    for query in [
        "version=0",
        "version=abc",
        "version=-1",
        "version=1.5",
        "version=",
        "version=1&version=2",
        "version=99999999999",
    ] {
        let reply = gw.get(&format!("/a/People/schema?{query}")).await;
        assert_failure(&reply, StatusCode::BAD_REQUEST, "invalid_version");
    }
}

#[tokio::test]
async fn an_event_sent_against_an_older_version_names_it_in_dataschema() {
    let gw = two_versions().await;

    let reply = gw
        .post_json(
            "/a/People/send_event?version=1",
            &json!({"name": "Bob", "age": 3}),
        )
        .await;
    let refused = gw
        .post_json(
            "/a/People/send_event?version=1",
            &json!({"name": "Bob", "age": 3, "nickname": "B"}),
        )
        .await;

    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_failure(
        &refused,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
    let published = gw.stream.events(
        &ClientId::parse("a").unwrap(),
        &EventName::parse("People").unwrap(),
    );
    assert_eq!(published.len(), 1);
    assert_eq!(published[0].dataschema, "/a/People/schema?version=1");
    assert_eq!(published[0].id, reply.body["id"]);
}

#[tokio::test]
async fn the_latest_version_is_used_when_none_is_asked_for() {
    let gw = two_versions().await;

    let reply = gw
        .post_json(
            "/a/People/send_event",
            &json!({"name": "Bob", "age": 3, "nickname": "B"}),
        )
        .await;

    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let published = gw.stream.events(
        &ClientId::parse("a").unwrap(),
        &EventName::parse("People").unwrap(),
    );
    assert_eq!(published[0].dataschema, "/a/People/schema?version=2");
}

#[tokio::test]
async fn validate_answers_like_send_event_and_publishes_nothing() {
    let gw = two_versions().await;

    let valid = gw
        .post_json("/a/People/validate", &json!({"name": "Bob", "age": 3}))
        .await;
    let form = gw
        .post_form(
            "/a/People/validate?version=1",
            "event",
            r#"{"name":"Bob","age":3}"#,
        )
        .await;
    let invalid = gw
        .post_json("/a/People/validate", &json!({"name": 3}))
        .await;

    assert_eq!(valid.status, StatusCode::OK, "{}", valid.body);
    assert_eq!(
        valid.body,
        json!({"code": "SUCCEEDED", "msg": "event is valid", "version": 2})
    );
    assert_eq!(form.body["version"], 1);
    assert_failure(
        &invalid,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
    assert!(
        invalid.body["errors"]
            .as_array()
            .is_some_and(|e| !e.is_empty())
    );
    assert!(gw.published("a", "People").is_empty());
}

#[tokio::test]
async fn a_batch_against_a_version_is_validated_against_that_version() {
    let gw = two_versions().await;

    let reply = gw
        .post_json(
            "/a/People/send_events?version=1",
            &json!([{"name": "Bob", "age": 3}, {"name": "Al", "age": 4, "nickname": "A"}]),
        )
        .await;

    assert_eq!(reply.status, StatusCode::MULTI_STATUS, "{}", reply.body);
    assert_eq!(reply.body["results"][0]["status"], 200);
    assert_eq!(reply.body["results"][1]["status"], 422);
}

#[tokio::test]
async fn the_compatibility_mode_defaults_then_can_be_set_per_pair() {
    let gw = two_versions().await;

    let default = gw.get("/a/People/compatibility").await;
    let set = put_mode(
        &gw,
        "/a/People/compatibility",
        r#"{"compatibility":"FULL"}"#,
    )
    .await;
    let read_back = gw.get("/a/People/compatibility").await;

    assert_eq!(default.status, StatusCode::OK);
    assert_eq!(
        (&default.body["compatibility"], &default.body["default"]),
        (&json!("BACKWARD"), &json!(true))
    );
    assert_eq!(set.status, StatusCode::OK, "{}", set.body);
    assert_eq!(
        (&read_back.body["compatibility"], &read_back.body["default"]),
        (&json!("FULL"), &json!(false))
    );
    // Under FULL, adding an optional property to a closed model is still fine both ways?
    // No: FORWARD fails (the old, closed model refuses the new property).
    let mut third = with_nickname();
    third["properties"]["phone"] = json!({"type": "string"});
    assert_failure(
        &gw.register("a", "People", &third).await,
        StatusCode::CONFLICT,
        "schema_incompatible",
    );
}

#[tokio::test]
async fn mode_none_registers_any_schema() {
    let gw = two_versions().await;
    put_mode(
        &gw,
        "/a/People/compatibility",
        r#"{"compatibility":"NONE"}"#,
    )
    .await;

    let reply = gw.register("a", "People", &json!({"type": "string"})).await;

    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    assert_eq!(reply.body["version"], 3);
}

#[tokio::test]
async fn a_bad_compatibility_request_is_answered_with_its_4xx() {
    let gw = two_versions().await;
    for body in [
        r#"{"compatibility":"full"}"#,
        r#"{"compatibility":"SIDEWAYS"}"#,
        r#"{"compatibility":3}"#,
        r#"{}"#,
        r#"[]"#,
    ] {
        let reply = put_mode(&gw, "/a/People/compatibility", body).await;
        assert_failure(&reply, StatusCode::BAD_REQUEST, "invalid_compatibility");
    }
    let not_json = put_mode(&gw, "/a/People/compatibility", "FULL").await;
    assert_failure(&not_json, StatusCode::BAD_REQUEST, "invalid_json");
    let form = gw
        .call(
            Method::PUT,
            "/a/People/compatibility",
            Some("application/x-www-form-urlencoded"),
            "compatibility=FULL",
        )
        .await;
    assert_failure(
        &form,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    );
    let unregistered = put_mode(&gw, "/a/Nope/compatibility", r#"{"compatibility":"FULL"}"#).await;
    assert_failure(&unregistered, StatusCode::NOT_FOUND, "event_not_registered");
    assert_failure(
        &gw.get("/a/Nope/compatibility").await,
        StatusCode::NOT_FOUND,
        "event_not_registered",
    );
    // Nothing changed.
    assert_eq!(
        gw.get("/a/People/compatibility").await.body["compatibility"],
        "BACKWARD"
    );
}

#[tokio::test]
async fn check_compatibility_reports_and_registers_nothing() {
    let gw = two_versions().await;

    let compatible = gw
        .post_json("/a/People/check_compatibility", &json!({"type": "object"}))
        .await;
    let incompatible = gw
        .post_json("/a/People/check_compatibility", &requiring_email())
        .await;
    let identical = gw
        .post_form(
            "/a/People/check_compatibility",
            "event_schema",
            &person_schema().to_string(),
        )
        .await;
    let new_pair = gw
        .post_json("/a/Fresh/check_compatibility", &person_schema())
        .await;
    let not_a_schema = gw
        .post_json("/a/People/check_compatibility", &json!({"type": 12}))
        .await;

    assert_eq!(compatible.status, StatusCode::OK);
    assert_eq!(
        (
            &compatible.body["compatible"],
            &compatible.body["version"],
            &compatible.body["mode"]
        ),
        (&json!(true), &json!(3), &json!("BACKWARD"))
    );
    assert_eq!(compatible.body["incompatibilities"], json!([]));
    assert_eq!(incompatible.status, StatusCode::OK);
    assert_eq!(
        (
            &incompatible.body["compatible"],
            &incompatible.body["version"]
        ),
        (&json!(false), &Value::Null)
    );
    assert!(
        !incompatible.body["incompatibilities"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        (&identical.body["compatible"], &identical.body["version"]),
        (&json!(true), &json!(1))
    );
    assert_eq!(new_pair.body["version"], 1);
    assert_failure(&not_a_schema, StatusCode::BAD_REQUEST, "invalid_schema");
    assert_eq!(
        gw.get("/a/People/versions").await.body["versions"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_failure(
        &gw.get("/a/Fresh/schema").await,
        StatusCode::NOT_FOUND,
        "event_not_registered",
    );
}

#[tokio::test]
async fn the_new_routes_refuse_other_methods_with_405() {
    let gw = two_versions().await;
    for (method, path) in [
        (Method::POST, "/a/People/versions"),
        (Method::DELETE, "/a/People/compatibility"),
        (Method::GET, "/a/People/check_compatibility"),
        (Method::GET, "/a/People/validate"),
    ] {
        let reply = gw.call(method, path, Some(JSON), "{}").await;
        assert_failure(&reply, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
    }
}
