//! Each function driven by each of its `events/<function>/*.json` files: lambda_http parses
//! the API Gateway payload into a request, and the function's handler (the one router over an
//! app built from `dynamodb:` / `kinesis:` configuration) answers it, against moto.

use event_processor_core::App;
use event_processor_tests::api::Reply;
use event_processor_tests::aws::{Names, event_body, event_cases, fresh_app, invoke, raw_records};
use http::StatusCode;
use serde_json::{Value, json};

/// The events/ files this module drives, per function; a new file needs a test here.
const CASES: &[(&str, &[&str])] = &[
    (
        "register-event",
        &[
            "bad-name",
            "conflict",
            "form",
            "invalid-schema",
            "json",
            "unsupported-media-type",
        ],
    ),
    (
        "send-event",
        &["form", "invalid", "not-json", "unregistered", "valid"],
    ),
    (
        "send-events",
        &["all-valid", "empty", "mixed", "none-valid", "not-an-array"],
    ),
    ("get-schema", &["bad-name", "registered", "unregistered"]),
    (
        "list-events",
        &["registered", "unknown-client", "wrong-method"],
    ),
];

async fn run(app: &App, function: &str, case: &str) -> Reply {
    invoke(&app.router(), function, case).await
}

/// A fresh app on which `events/register-event/json.json` (SpongeBob/Fruits) was registered.
async fn app_with_fruits() -> (App, Names) {
    let (app, names) = fresh_app().await;
    let reply = run(&app, "register-event", "json").await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    (app, names)
}

fn assert_failed(reply: &Reply, status: StatusCode, error: &str) {
    assert_eq!(reply.status, status, "{:?}", reply.body);
    assert_eq!(reply.body["code"], "FAILED");
    assert_eq!(reply.body["error"], error);
    assert!(reply.body["msg"].is_string());
    assert_eq!(reply.headers["content-type"], "application/json");
}

#[test]
fn every_events_file_is_driven_by_a_test() {
    for (function, cases) in CASES {
        assert_eq!(event_cases(function), *cases, "events/{function}/");
    }
}

mod register_event {
    use super::*;

    #[tokio::test]
    async fn a_json_schema_registers_a_new_pair_as_version_1() {
        let (app, _) = fresh_app().await;

        let reply = run(&app, "register-event", "json").await;

        assert_eq!(reply.status, StatusCode::CREATED);
        assert_eq!(
            reply.body,
            json!({"code": "SUCCEEDED", "msg": "event registered",
                   "client": "SpongeBob", "event": "Fruits", "version": 1})
        );
    }

    #[tokio::test]
    async fn a_base64_form_schema_registers_a_new_pair() {
        let (app, _) = fresh_app().await;

        let reply = run(&app, "register-event", "form").await;

        assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
        assert_eq!(reply.body["event"], "Colors");
        assert_eq!(reply.body["version"], 1);
    }

    #[tokio::test]
    async fn the_same_schema_again_is_200_with_the_same_version() {
        let (app, _) = app_with_fruits().await;

        let reply = run(&app, "register-event", "json").await;

        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.body["version"], 1);
    }

    #[tokio::test]
    async fn a_different_schema_for_a_registered_pair_is_409() {
        let (app, _) = app_with_fruits().await;

        let reply = run(&app, "register-event", "conflict").await;

        assert_failed(&reply, StatusCode::CONFLICT, "schema_conflict");
    }

    #[tokio::test]
    async fn a_schema_that_is_not_a_valid_json_schema_is_400() {
        let (app, _) = fresh_app().await;

        let reply = run(&app, "register-event", "invalid-schema").await;

        assert_failed(&reply, StatusCode::BAD_REQUEST, "invalid_schema");
    }

    #[tokio::test]
    async fn a_client_name_with_a_dot_is_400() {
        let (app, _) = fresh_app().await;

        let reply = run(&app, "register-event", "bad-name").await;

        assert_failed(&reply, StatusCode::BAD_REQUEST, "invalid_name");
    }

    #[tokio::test]
    async fn a_text_plain_body_is_415() {
        let (app, _) = fresh_app().await;

        let reply = run(&app, "register-event", "unsupported-media-type").await;

        assert_failed(
            &reply,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        );
    }
}

mod send_event {
    use super::*;

    #[tokio::test]
    async fn a_valid_event_is_200_with_the_id_of_the_record_in_kinesis() {
        let (app, names) = app_with_fruits().await;

        let reply = run(&app, "send-event", "valid").await;

        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
        assert_eq!(reply.body["code"], "SUCCEEDED");
        assert_eq!(reply.body["msg"], "event sent");
        let id = reply.body["id"].as_str().expect("an id");
        let records = raw_records(&names.stream).await;
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].data["id"], id);
        assert_eq!(
            records[0].data["data"],
            serde_json::to_value(event_body("send-event", "valid")).unwrap()
        );
    }

    #[tokio::test]
    async fn a_base64_form_event_is_published() {
        let (app, names) = app_with_fruits().await;

        let reply = run(&app, "send-event", "form").await;

        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
        let records = raw_records(&names.stream).await;
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].data["data"], json!({"fruit": "kelp"}));
    }

    #[tokio::test]
    async fn an_event_violating_the_schema_is_422_with_details_and_not_published() {
        let (app, names) = app_with_fruits().await;

        let reply = run(&app, "send-event", "invalid").await;

        assert_failed(
            &reply,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        );
        assert_eq!(reply.body["errors"][0]["keyword"], "required");
        assert!(raw_records(&names.stream).await.is_empty());
    }

    #[tokio::test]
    async fn an_event_of_an_unregistered_pair_is_404_and_not_published() {
        let (app, names) = app_with_fruits().await;

        let reply = run(&app, "send-event", "unregistered").await;

        assert_failed(&reply, StatusCode::NOT_FOUND, "event_not_registered");
        assert!(raw_records(&names.stream).await.is_empty());
    }

    #[tokio::test]
    async fn a_body_that_is_not_json_is_400() {
        let (app, _) = app_with_fruits().await;

        let reply = run(&app, "send-event", "not-json").await;

        assert_failed(&reply, StatusCode::BAD_REQUEST, "invalid_json");
    }
}

mod send_events {
    use super::*;

    /// The ids of the records in the stream, sorted.
    async fn stored_ids(names: &Names) -> Vec<Value> {
        let mut ids: Vec<Value> = raw_records(&names.stream)
            .await
            .into_iter()
            .map(|r| r.data["id"].clone())
            .collect();
        ids.sort_by_key(|id| id.to_string());
        ids
    }

    fn statuses(reply: &Reply) -> Vec<Value> {
        reply.body["results"]
            .as_array()
            .expect("results")
            .iter()
            .map(|r| r["status"].clone())
            .collect()
    }

    #[tokio::test]
    async fn a_batch_of_valid_events_is_200_and_every_one_is_in_kinesis() {
        let (app, names) = app_with_fruits().await;

        let reply = run(&app, "send-events", "all-valid").await;

        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
        assert_eq!(reply.body["code"], "SUCCEEDED");
        assert_eq!(reply.body["accepted"], 2);
        assert_eq!(statuses(&reply), [json!(200), json!(200)]);
        let mut accepted = vec![
            reply.body["results"][0]["id"].clone(),
            reply.body["results"][1]["id"].clone(),
        ];
        accepted.sort_by_key(|id| id.to_string());
        assert_eq!(stored_ids(&names).await, accepted);
    }

    #[tokio::test]
    async fn a_batch_with_one_invalid_event_is_207_and_publishes_the_valid_ones() {
        let (app, names) = app_with_fruits().await;

        let reply = run(&app, "send-events", "mixed").await;

        assert_eq!(reply.status, StatusCode::MULTI_STATUS, "{:?}", reply.body);
        assert_eq!(reply.body["accepted"], 2);
        assert_eq!(reply.body["rejected"], 1);
        assert_eq!(statuses(&reply), [json!(200), json!(422), json!(200)]);
        let mut accepted = vec![
            reply.body["results"][0]["id"].clone(),
            reply.body["results"][2]["id"].clone(),
        ];
        accepted.sort_by_key(|id| id.to_string());
        assert_eq!(stored_ids(&names).await, accepted);
    }

    #[tokio::test]
    async fn a_batch_with_no_valid_event_is_422_and_publishes_nothing() {
        let (app, names) = app_with_fruits().await;

        let reply = run(&app, "send-events", "none-valid").await;

        assert_failed(
            &reply,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        );
        assert_eq!(statuses(&reply), [json!(422), json!(422)]);
        assert!(raw_records(&names.stream).await.is_empty());
    }

    #[tokio::test]
    async fn a_body_that_is_an_object_not_an_array_is_400() {
        let (app, names) = app_with_fruits().await;

        let reply = run(&app, "send-events", "not-an-array").await;

        assert_failed(&reply, StatusCode::BAD_REQUEST, "invalid_batch");
        assert!(raw_records(&names.stream).await.is_empty());
    }

    #[tokio::test]
    async fn an_empty_batch_is_400() {
        let (app, _) = app_with_fruits().await;

        let reply = run(&app, "send-events", "empty").await;

        assert_failed(&reply, StatusCode::BAD_REQUEST, "invalid_batch");
    }
}

mod get_schema {
    use super::*;

    #[tokio::test]
    async fn a_registered_schema_is_returned_with_its_version() {
        let (app, _) = app_with_fruits().await;

        let reply = run(&app, "get-schema", "registered").await;

        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
        assert_eq!(reply.body["code"], "SUCCEEDED");
        assert_eq!(reply.body["msg"], "schema recovered");
        assert_eq!(reply.body["version"], 1);
        assert_eq!(
            reply.body["schema"],
            serde_json::to_value(event_body("register-event", "json")).unwrap()
        );
    }

    #[tokio::test]
    async fn an_unregistered_pair_is_404() {
        let (app, _) = app_with_fruits().await;

        let reply = run(&app, "get-schema", "unregistered").await;

        assert_failed(&reply, StatusCode::NOT_FOUND, "event_not_registered");
    }

    #[tokio::test]
    async fn a_percent_encoded_non_ascii_event_name_is_400() {
        let (app, _) = fresh_app().await;

        let reply = run(&app, "get-schema", "bad-name").await;

        assert_failed(&reply, StatusCode::BAD_REQUEST, "invalid_name");
    }
}

mod list_events {
    use super::*;

    #[tokio::test]
    async fn a_client_gets_its_registered_events_sorted_by_name() {
        let (app, _) = app_with_fruits().await;
        let colors = run(&app, "register-event", "form").await;
        assert_eq!(colors.status, StatusCode::CREATED);

        let reply = run(&app, "list-events", "registered").await;

        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
        assert_eq!(reply.body["code"], "SUCCEEDED");
        assert_eq!(
            reply.body["events"],
            json!([
                {"client": "SpongeBob", "event": "Colors", "version": 1},
                {"client": "SpongeBob", "event": "Fruits", "version": 1},
            ])
        );
    }

    #[tokio::test]
    async fn an_unknown_client_gets_an_empty_list() {
        let (app, _) = app_with_fruits().await;

        let reply = run(&app, "list-events", "unknown-client").await;

        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
        assert_eq!(reply.body["events"], json!([]));
    }

    #[tokio::test]
    async fn a_wrong_method_reaching_the_default_route_is_405() {
        let (app, _) = fresh_app().await;

        let reply = run(&app, "list-events", "wrong-method").await;

        assert_failed(&reply, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
    }
}
