//! Each function driven by each of its `events/<function>/*.json` files: lambda_http parses
//! the API Gateway payload into a request, and the function's handler (the one router over an
//! app built from `dynamodb:` / `kinesis:` configuration) answers it, against moto.

use std::path::PathBuf;

use event_processor_core::App;
use event_processor_core::http::Routes;
use event_processor_core::ports::SchemaStore;
use event_processor_tests::api::Reply;
use event_processor_tests::aws::{
    Names, event_body, event_cases, event_file, fresh_app, fresh_secured_app, invoke, raw_records,
    raw_table,
};
use http::StatusCode;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

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
            "new-version",
            "unsupported-media-type",
        ],
    ),
    (
        "send-event",
        &[
            "authorized",
            "form",
            "invalid",
            "missing-scope",
            "no-claims",
            "not-json",
            "unregistered",
            "valid",
            "wrong-client",
        ],
    ),
    (
        "send-events",
        &["all-valid", "empty", "mixed", "none-valid", "not-an-array"],
    ),
    (
        "get-schema",
        &[
            "bad-name",
            "bad-version",
            "registered",
            "unknown-version",
            "unregistered",
            "version",
        ],
    ),
    (
        "list-events",
        &["registered", "unknown-client", "wrong-method"],
    ),
    ("versions", &["bad-name", "registered", "unregistered"]),
    (
        "compatibility",
        &[
            "default",
            "set",
            "set-unregistered",
            "unknown-mode",
            "unregistered",
        ],
    ),
    (
        "check-compatibility",
        &["compatible", "incompatible", "invalid-schema", "new-pair"],
    ),
    (
        "validate",
        &[
            "bad-version",
            "invalid",
            "unknown-version",
            "unregistered",
            "valid",
            "version",
        ],
    ),
    (
        "rejected",
        &[
            "authorized",
            "bad-limit",
            "listed",
            "missing-scope",
            "paged",
        ],
    ),
    (
        "replay",
        &[
            "authorized",
            "bad-id",
            "missing-scope",
            "unknown",
            "valid",
            "version",
        ],
    ),
];

/// Runs one events/ file through the function's handler: the Lambda glue (the invocation's
/// request context handed to the HTTP layer) over the app's router of the function's route.
async fn run(app: &App, function: &str, case: &str) -> Reply {
    invoke(&handler(app, function), function, case).await
}

/// The handler `function`'s main.rs runs (its `Routes` constant is checked by the house rule).
fn handler(app: &App, function: &str) -> axum::Router {
    let routes = match function {
        "register-event" => Routes::REGISTER_EVENT,
        "check-compatibility" => Routes::CHECK_COMPATIBILITY,
        "send-event" => Routes::SEND_EVENT,
        "send-events" => Routes::SEND_EVENTS,
        "validate" => Routes::VALIDATE,
        "get-schema" => Routes::GET_SCHEMA,
        "versions" => Routes::VERSIONS,
        "compatibility" => Routes::COMPATIBILITY,
        // The `$default` route's target: every route, for the contract's 404 and 405.
        "list-events" => Routes::ALL,
        "rejected" => Routes::REJECTED,
        "replay" => Routes::REPLAY,
        other => panic!("no function {other}"),
    };
    event_processor_lambda::handler(app, routes)
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

/// A fresh app on which SpongeBob/Fruits has versions 1 (`register-event/json`) and 2
/// (`register-event/new-version`, which drops the type of `fruit`).
async fn app_with_two_fruits_versions() -> (App, Names) {
    let (app, names) = app_with_fruits().await;
    let reply = run(&app, "register-event", "new-version").await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    (app, names)
}

/// The root of the workspace.
fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn every_events_file_is_driven_by_a_test() {
    for (function, cases) in CASES {
        assert_eq!(event_cases(function), *cases, "events/{function}/");
    }
    let mut folders: Vec<String> = std::fs::read_dir(workspace().join("events"))
        .expect("read events/")
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    folders.sort();
    let mut functions: Vec<String> = CASES.iter().map(|(f, _)| (*f).to_owned()).collect();
    functions.sort();
    assert_eq!(folders, functions, "every events/ folder is in CASES");
}

/// The house rule: package = binary = SAM logical id stem = events/ folder = Makefile target =
/// `Routes` constant its main.rs mounts.
#[test]
fn every_function_has_its_package_its_template_function_and_its_build_target() {
    let template = std::fs::read_to_string(workspace().join("template.yaml")).unwrap();
    let makefile = std::fs::read_to_string(workspace().join("Makefile")).unwrap();
    let members = std::fs::read_to_string(workspace().join("Cargo.toml")).unwrap();
    for (function, _) in CASES {
        let manifest = workspace()
            .join("functions")
            .join(function)
            .join("Cargo.toml");
        let manifest = std::fs::read_to_string(&manifest)
            .unwrap_or_else(|e| panic!("{}: {e}", manifest.display()));
        assert!(
            manifest.contains(&format!("name = \"{function}\"")),
            "{function}"
        );
        assert_eq!(
            members
                .matches(&format!("\"functions/{function}\""))
                .count(),
            2,
            "{function} is a member and a default member"
        );
        let stem: String = function
            .split('-')
            .map(|word| word[..1].to_uppercase() + &word[1..])
            .collect();
        let header = format!("  {stem}Function:");
        let block: Vec<&str> = template
            .lines()
            .skip_while(|line| *line != header)
            .enumerate()
            .take_while(|(i, line)| *i == 0 || line.is_empty() || line.starts_with("    "))
            .map(|(_, line)| line)
            .collect();
        assert!(!block.is_empty(), "template.yaml has no {stem}Function");
        assert!(
            block.contains(&"      BuildMethod: makefile"),
            "{stem}Function is built by the Makefile"
        );
        assert!(
            makefile
                .lines()
                .any(|line| line == format!("build-{stem}Function: BIN = {function}")),
            "the Makefile's build-{stem}Function builds {function}"
        );
        let main = workspace()
            .join("functions")
            .join(function)
            .join("src/main.rs");
        let main = std::fs::read_to_string(&main).unwrap();
        // `list-events` answers the `$default` route (what no route matches), so it mounts
        // every route: a wrong method gets its 405 with `Allow`, not a 404.
        let routes = match *function {
            "list-events" => "ALL".to_owned(),
            _ => function.to_uppercase().replace('-', "_"),
        };
        assert!(
            main.contains(&format!("event_processor_lambda::run(Routes::{routes}, ")),
            "{function} mounts Routes::{routes}"
        );
    }
    assert!(
        template.contains(
            "RouteKey: \"$default\"\n      Target: !Sub \"integrations/${ListEventsIntegration}\""
        ),
        "the $default route goes to list-events, the function that mounts every route"
    );
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
    async fn an_incompatible_schema_is_409_with_what_is_incompatible_and_registers_nothing() {
        let (app, _) = app_with_fruits().await;

        let reply = run(&app, "register-event", "conflict").await;

        assert_failed(&reply, StatusCode::CONFLICT, "schema_incompatible");
        assert_eq!(reply.body["mode"], "BACKWARD");
        let first = &reply.body["incompatibilities"][0];
        assert_eq!(first["version"], 1);
        assert!(
            first["kind"].is_string() && first["path"].is_string(),
            "{first}"
        );
        let versions = run(&app, "versions", "registered").await;
        assert_eq!(versions.body["versions"].as_array().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_different_compatible_schema_is_201_with_the_next_version() {
        let (app, _) = app_with_fruits().await;

        let reply = run(&app, "register-event", "new-version").await;

        assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
        assert_eq!(
            reply.body,
            json!({"code": "SUCCEEDED", "msg": "event registered",
                   "client": "SpongeBob", "event": "Fruits", "version": 2})
        );
        let latest = run(&app, "get-schema", "registered").await;
        assert_eq!(latest.body["version"], 2);
        assert_eq!(
            latest.body["schema"],
            serde_json::to_value(event_body("register-event", "new-version")).unwrap()
        );
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

/// Deployed with `Auth=jwt`: the JWT authorizer's claims in the payloads decide.
mod send_event_with_auth {
    use super::*;

    /// A secured app on which SpongeBob/Fruits was registered (straight in the table, as no
    /// events/ file of this function registers).
    async fn secured_app_with_fruits() -> (App, Names) {
        let (app, names) = fresh_secured_app().await;
        let store = event_processor_core::adapters::dynamodb::DynamoDbSchemaStore::from_config(
            &event_processor_tests::aws::sdk_config().await,
            &names.table,
        );
        let inserted = store
            .insert_version(
                &event_processor_core::domain::ClientId::parse("SpongeBob").unwrap(),
                &event_processor_core::domain::EventName::parse("Fruits").unwrap(),
                event_processor_core::domain::SchemaVersion::FIRST,
                &json!({"type": "object", "required": ["fruit"]}),
                event_processor_tests::deadline(),
            )
            .await
            .unwrap();
        assert_eq!(inserted, event_processor_core::ports::Insert::Inserted);
        (app, names)
    }

    #[tokio::test]
    async fn a_token_with_the_clients_send_scope_is_published() {
        let (app, names) = secured_app_with_fruits().await;

        let reply = run(&app, "send-event", "authorized").await;

        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
        let records = raw_records(&names.stream).await;
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].data["id"], reply.body["id"]);
    }

    #[tokio::test]
    async fn a_token_for_another_client_is_403_and_publishes_nothing() {
        let (app, names) = secured_app_with_fruits().await;

        let reply = run(&app, "send-event", "wrong-client").await;

        assert_failed(&reply, StatusCode::FORBIDDEN, "forbidden");
        assert!(raw_records(&names.stream).await.is_empty());
    }

    #[tokio::test]
    async fn a_token_without_the_send_scope_is_403() {
        let (app, names) = secured_app_with_fruits().await;

        let reply = run(&app, "send-event", "missing-scope").await;

        assert_failed(&reply, StatusCode::FORBIDDEN, "forbidden");
        assert!(raw_records(&names.stream).await.is_empty());
    }

    #[tokio::test]
    async fn a_request_without_the_authorizers_claims_is_401() {
        let (app, names) = secured_app_with_fruits().await;

        let reply = run(&app, "send-event", "no-claims").await;

        assert_failed(&reply, StatusCode::UNAUTHORIZED, "unauthenticated");
        assert_eq!(reply.headers["www-authenticate"], "Bearer");
        assert!(raw_records(&names.stream).await.is_empty());
    }

    #[tokio::test]
    async fn without_auth_the_claims_are_not_needed() {
        let (app, _) = app_with_fruits().await;

        let reply = run(&app, "send-event", "no-claims").await;

        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
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

    #[tokio::test]
    async fn an_earlier_version_is_returned_when_asked_for() {
        let (app, _) = app_with_two_fruits_versions().await;

        let reply = run(&app, "get-schema", "version").await;

        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
        assert_eq!(reply.body["version"], 1);
        assert_eq!(
            reply.body["schema"],
            serde_json::to_value(event_body("register-event", "json")).unwrap()
        );
    }

    #[tokio::test]
    async fn a_version_the_pair_does_not_have_is_404() {
        let (app, _) = app_with_fruits().await;

        let reply = run(&app, "get-schema", "unknown-version").await;

        assert_failed(&reply, StatusCode::NOT_FOUND, "version_not_found");
    }

    #[tokio::test]
    async fn a_version_that_is_not_a_number_is_400() {
        let (app, _) = app_with_fruits().await;

        let reply = run(&app, "get-schema", "bad-version").await;

        assert_failed(&reply, StatusCode::BAD_REQUEST, "invalid_version");
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

mod versions {
    use super::*;

    #[tokio::test]
    async fn the_versions_of_a_pair_are_listed_ascending_with_their_registration_times() {
        let (app, _) = app_with_two_fruits_versions().await;

        let reply = run(&app, "versions", "registered").await;

        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
        assert_eq!(reply.body["code"], "SUCCEEDED");
        let versions = reply.body["versions"].as_array().expect("versions");
        let numbers: Vec<&Value> = versions.iter().map(|v| &v["version"]).collect();
        assert_eq!(numbers, [&json!(1), &json!(2)]);
        let times: Vec<OffsetDateTime> = versions
            .iter()
            .map(|v| {
                OffsetDateTime::parse(v["registered_at"].as_str().expect("a time"), &Rfc3339)
                    .expect("RFC 3339")
            })
            .collect();
        assert!(times[0] <= times[1], "{times:?}");
    }

    #[tokio::test]
    async fn the_versions_of_an_unregistered_pair_are_404() {
        let (app, _) = app_with_fruits().await;

        let reply = run(&app, "versions", "unregistered").await;

        assert_failed(&reply, StatusCode::NOT_FOUND, "event_not_registered");
    }

    #[tokio::test]
    async fn a_client_name_with_a_dot_is_400() {
        let (app, _) = fresh_app().await;

        let reply = run(&app, "versions", "bad-name").await;

        assert_failed(&reply, StatusCode::BAD_REQUEST, "invalid_name");
    }
}

mod compatibility {
    use super::*;

    #[tokio::test]
    async fn a_pair_without_its_own_mode_has_the_default_backward() {
        let (app, _) = app_with_fruits().await;

        let reply = run(&app, "compatibility", "default").await;

        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
        assert_eq!(reply.body["code"], "SUCCEEDED");
        assert_eq!(reply.body["compatibility"], "BACKWARD");
        assert_eq!(reply.body["default"], true);
    }

    #[tokio::test]
    async fn a_mode_put_on_a_pair_is_its_mode_from_then_on() {
        let (app, _) = app_with_fruits().await;

        let reply = run(&app, "compatibility", "set").await;

        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
        assert_eq!(reply.body["compatibility"], "FULL");
        assert_eq!(reply.body["default"], false);
        let read = run(&app, "compatibility", "default").await;
        assert_eq!(
            (&read.body["compatibility"], &read.body["default"]),
            (&json!("FULL"), &json!(false))
        );
        // FULL also needs every new event to satisfy version 1: dropping `fruit`'s type does not.
        let relaxed = run(&app, "register-event", "new-version").await;
        assert_failed(&relaxed, StatusCode::CONFLICT, "schema_incompatible");
    }

    #[tokio::test]
    async fn an_unknown_mode_is_400_and_changes_nothing() {
        let (app, _) = app_with_fruits().await;

        let reply = run(&app, "compatibility", "unknown-mode").await;

        assert_failed(&reply, StatusCode::BAD_REQUEST, "invalid_compatibility");
        let read = run(&app, "compatibility", "default").await;
        assert_eq!(read.body["default"], true);
    }

    #[tokio::test]
    async fn the_mode_of_an_unregistered_pair_is_404() {
        let (app, _) = app_with_fruits().await;

        let reply = run(&app, "compatibility", "unregistered").await;

        assert_failed(&reply, StatusCode::NOT_FOUND, "event_not_registered");
    }

    #[tokio::test]
    async fn setting_the_mode_of_an_unregistered_pair_is_404_and_writes_nothing() {
        let (app, names) = app_with_fruits().await;

        let reply = run(&app, "compatibility", "set-unregistered").await;

        assert_failed(&reply, StatusCode::NOT_FOUND, "event_not_registered");
        let items = raw_table(&names.table).await;
        assert!(
            items
                .iter()
                .all(|item| item["event"].as_s().unwrap() != "Vegetables"),
            "{items:?}"
        );
    }
}

mod check_compatibility {
    use super::*;

    #[tokio::test]
    async fn a_compatible_schema_is_reported_with_the_version_it_would_get_and_is_not_registered() {
        let (app, _) = app_with_fruits().await;

        let reply = run(&app, "check-compatibility", "compatible").await;

        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
        assert_eq!(reply.body["code"], "SUCCEEDED");
        assert_eq!(reply.body["compatible"], true);
        assert_eq!(reply.body["mode"], "BACKWARD");
        assert_eq!(reply.body["incompatibilities"], json!([]));
        assert_eq!(reply.body["version"], 2);
        let versions = run(&app, "versions", "registered").await;
        assert_eq!(versions.body["versions"].as_array().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn an_incompatible_schema_is_reported_with_its_incompatibilities_and_no_version() {
        let (app, _) = app_with_fruits().await;

        let reply = run(&app, "check-compatibility", "incompatible").await;

        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
        assert_eq!(reply.body["compatible"], false);
        assert_eq!(reply.body["version"], Value::Null);
        let incompatibilities = reply.body["incompatibilities"].as_array().unwrap();
        assert!(!incompatibilities.is_empty());
        assert_eq!(incompatibilities[0]["version"], 1);
    }

    #[tokio::test]
    async fn any_schema_for_an_unregistered_pair_would_be_its_version_1() {
        let (app, names) = app_with_fruits().await;

        let reply = run(&app, "check-compatibility", "new-pair").await;

        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
        assert_eq!(reply.body["compatible"], true);
        assert_eq!(reply.body["version"], 1);
        assert_eq!(
            raw_table(&names.table).await.len(),
            2,
            "Fruits only: a head and version 1"
        );
    }

    #[tokio::test]
    async fn a_schema_that_is_not_a_valid_json_schema_is_400() {
        let (app, _) = app_with_fruits().await;

        let reply = run(&app, "check-compatibility", "invalid-schema").await;

        assert_failed(&reply, StatusCode::BAD_REQUEST, "invalid_schema");
    }
}

mod validate {
    use super::*;

    #[tokio::test]
    async fn a_valid_event_is_200_with_the_version_used_and_nothing_is_published() {
        let (app, names) = app_with_fruits().await;

        let reply = run(&app, "validate", "valid").await;

        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
        assert_eq!(
            reply.body,
            json!({"code": "SUCCEEDED", "msg": "event is valid", "version": 1})
        );
        assert!(raw_records(&names.stream).await.is_empty());
    }

    #[tokio::test]
    async fn an_event_violating_the_schema_is_422_with_details() {
        let (app, names) = app_with_fruits().await;

        let reply = run(&app, "validate", "invalid").await;

        assert_failed(
            &reply,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        );
        assert_eq!(reply.body["errors"][0]["keyword"], "required");
        assert!(raw_records(&names.stream).await.is_empty());
    }

    #[tokio::test]
    async fn an_event_is_validated_against_the_version_it_names() {
        let (app, _) = app_with_two_fruits_versions().await;

        // `{"fruit": 42}`: version 2 accepts any fruit, version 1 only a string.
        let reply = run(&app, "validate", "version").await;

        assert_failed(
            &reply,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        );
        assert_eq!(reply.body["errors"][0]["keyword"], "type");
        let latest = run(&app, "validate", "valid").await;
        assert_eq!(latest.body["version"], 2);
    }

    #[tokio::test]
    async fn a_version_the_pair_does_not_have_is_404() {
        let (app, _) = app_with_fruits().await;

        let reply = run(&app, "validate", "unknown-version").await;

        assert_failed(&reply, StatusCode::NOT_FOUND, "version_not_found");
    }

    #[tokio::test]
    async fn version_0_is_400() {
        let (app, _) = app_with_fruits().await;

        let reply = run(&app, "validate", "bad-version").await;

        assert_failed(&reply, StatusCode::BAD_REQUEST, "invalid_version");
    }

    #[tokio::test]
    async fn an_event_of_an_unregistered_pair_is_404() {
        let (app, _) = app_with_fruits().await;

        let reply = run(&app, "validate", "unregistered").await;

        assert_failed(&reply, StatusCode::NOT_FOUND, "event_not_registered");
    }
}

/// The rejection id in `events/replay/{valid,version,authorized,missing-scope}.json`: a
/// sample, which the tests replace with the id of a rejection they made.
const SAMPLE_REJECTION_ID: &str = "0192f4a0-7b7e-7cc3-9a35-1f6d2e4b8c01";

/// Runs `events/<function>/<case>.json` with the sample rejection id replaced by `id`.
async fn run_for(app: &App, function: &str, case: &str, id: &str) -> Reply {
    let path = event_file(function, case);
    let json = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
        .replace(SAMPLE_REJECTION_ID, id);
    let request = lambda_http::request::from_str(&json).expect("an API Gateway event");
    event_processor_tests::api::send(&handler(app, function), request.map(axum::body::Body::new))
        .await
}

/// Sends `event` to SpongeBob/Fruits through the app's handler, expecting it refused for its
/// content, and returns the status.
async fn send_refused(app: &App, event: Value) -> StatusCode {
    let reply = event_processor_tests::api::post_json(
        &handler(app, "send-event"),
        "/SpongeBob/Fruits/send_event",
        &event,
    )
    .await;
    assert!(reply.status.is_client_error(), "{:?}", reply.body);
    reply.status
}

mod rejected {
    use super::*;

    #[tokio::test]
    async fn refused_events_are_listed_newest_first_with_what_was_received() {
        let (app, _) = app_with_fruits().await;
        assert_eq!(
            run(&app, "send-event", "invalid").await.status,
            StatusCode::UNPROCESSABLE_ENTITY
        );
        assert_eq!(
            run(&app, "send-event", "not-json").await.status,
            StatusCode::BAD_REQUEST
        );

        let reply = run(&app, "rejected", "listed").await;

        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
        assert_eq!(reply.body["code"], "SUCCEEDED");
        assert_eq!(reply.body["next"], Value::Null);
        let rejected = reply.body["rejected"].as_array().expect("a list");
        let errors: Vec<&Value> = rejected.iter().map(|r| &r["error"]).collect();
        assert_eq!(
            errors,
            [&json!("invalid_json"), &json!("validation_failed")]
        );
        let invalid = &rejected[1];
        assert_eq!(
            (&invalid["client"], &invalid["event"], &invalid["version"]),
            (&json!("SpongeBob"), &json!("Fruits"), &json!(1))
        );
        assert_eq!(invalid["data"], r#"{"color": "yellow"}"#);
        assert_eq!(invalid["truncated"], false);
        assert_eq!(invalid["errors"][0]["keyword"], "required");
        OffsetDateTime::parse(invalid["received_at"].as_str().unwrap(), &Rfc3339)
            .expect("RFC 3339");
    }

    #[tokio::test]
    async fn a_page_of_one_names_the_id_the_next_page_starts_before() {
        let (app, _) = app_with_fruits().await;
        for _ in 0..2 {
            run(&app, "send-event", "invalid").await;
        }

        let reply = run(&app, "rejected", "paged").await;

        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
        let rejected = reply.body["rejected"].as_array().expect("a list");
        assert_eq!(rejected.len(), 1);
        assert_eq!(reply.body["next"], rejected[0]["id"]);
    }

    #[tokio::test]
    async fn a_limit_of_0_is_400() {
        let (app, _) = app_with_fruits().await;

        let reply = run(&app, "rejected", "bad-limit").await;

        assert_failed(&reply, StatusCode::BAD_REQUEST, "invalid_query");
    }

    #[tokio::test]
    async fn a_token_with_the_read_scope_lists_rejections() {
        let (app, _) = fresh_secured_app().await;
        // Unregistered, the pair has nothing to list: 404, as every pair route.
        let unregistered = run(&app, "rejected", "authorized").await;
        assert_failed(&unregistered, StatusCode::NOT_FOUND, "event_not_registered");
        let (client, event) = (
            event_processor_core::domain::ClientId::parse("SpongeBob").unwrap(),
            event_processor_core::domain::EventName::parse("Fruits").unwrap(),
        );
        app.processor()
            .register_event(
                &client,
                &event,
                json!({}),
                event_processor_tests::deadline(),
            )
            .await
            .unwrap();

        let reply = run(&app, "rejected", "authorized").await;

        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
        assert_eq!(reply.body["rejected"], json!([]));
    }

    #[tokio::test]
    async fn a_token_with_only_the_send_scope_is_403() {
        let (app, _) = fresh_secured_app().await;

        let reply = run(&app, "rejected", "missing-scope").await;

        assert_failed(&reply, StatusCode::FORBIDDEN, "forbidden");
    }
}

mod replay {
    use super::*;

    /// SpongeBob/Fruits with `{"fruit": 42}` refused by version 1 (`fruit` must be a string),
    /// then version 2 registered (any `fruit`); returns the rejection's id.
    async fn app_with_a_rejection_valid_under_version_2() -> (App, Names, String) {
        let (app, names) = app_with_fruits().await;
        assert_eq!(
            send_refused(&app, json!({"fruit": 42})).await,
            StatusCode::UNPROCESSABLE_ENTITY
        );
        let listed = run(&app, "rejected", "listed").await;
        let id = listed.body["rejected"][0]["id"]
            .as_str()
            .expect("the rejection is listed")
            .to_owned();
        let registered = run(&app, "register-event", "new-version").await;
        assert_eq!(
            registered.status,
            StatusCode::CREATED,
            "{:?}",
            registered.body
        );
        (app, names, id)
    }

    #[tokio::test]
    async fn a_rejection_valid_under_the_latest_version_is_published_under_its_id_once() {
        let (app, names, id) = app_with_a_rejection_valid_under_version_2().await;

        let first = run_for(&app, "replay", "valid", &id).await;
        let again = run_for(&app, "replay", "valid", &id).await;

        assert_eq!(first.status, StatusCode::OK, "{:?}", first.body);
        assert_eq!(first.body["code"], "SUCCEEDED");
        assert_eq!(
            (&first.body["id"], &first.body["version"]),
            (&json!(id), &json!(2))
        );
        assert_eq!(again.status, StatusCode::OK, "{:?}", again.body);
        assert_eq!(again.body, first.body);
        let records = raw_records(&names.stream).await;
        assert_eq!(records.len(), 1, "published once");
        assert_eq!(records[0].data["id"], id.as_str());
        assert_eq!(records[0].data["data"], json!({"fruit": 42}));
    }

    #[tokio::test]
    async fn a_rejection_still_invalid_under_the_version_asked_for_is_422_and_not_published() {
        let (app, names, id) = app_with_a_rejection_valid_under_version_2().await;

        let reply = run_for(&app, "replay", "version", &id).await;

        assert_failed(
            &reply,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        );
        assert!(raw_records(&names.stream).await.is_empty());
    }

    #[tokio::test]
    async fn an_unknown_rejection_is_404() {
        let (app, _) = app_with_fruits().await;

        let reply = run(&app, "replay", "unknown").await;

        assert_failed(&reply, StatusCode::NOT_FOUND, "rejection_not_found");
    }

    #[tokio::test]
    async fn an_id_that_is_not_a_uuid_is_400() {
        let (app, _) = app_with_fruits().await;

        let reply = run(&app, "replay", "bad-id").await;

        assert_failed(&reply, StatusCode::BAD_REQUEST, "invalid_rejection_id");
    }

    #[tokio::test]
    async fn a_token_with_the_send_scope_reaches_the_rejection() {
        let (app, _) = fresh_secured_app().await;

        // No rejection was kept: past authorization, the answer is the store's.
        let reply = run(&app, "replay", "authorized").await;

        assert_failed(&reply, StatusCode::NOT_FOUND, "rejection_not_found");
    }

    #[tokio::test]
    async fn a_token_with_only_the_read_scope_is_403_and_publishes_nothing() {
        let (app, names) = fresh_secured_app().await;

        let reply = run(&app, "replay", "missing-scope").await;

        assert_failed(&reply, StatusCode::FORBIDDEN, "forbidden");
        assert!(raw_records(&names.stream).await.is_empty());
    }
}

/// template.yaml puts the JWT authorizer on every route, unless deployed with `Auth=none`.
#[test]
fn every_route_of_the_template_is_authorized_unless_auth_is_none() {
    let template = std::fs::read_to_string(workspace().join("template.yaml")).unwrap();
    let routes = template.matches("Type: AWS::ApiGatewayV2::Route").count();
    let authorized = template
        .matches("AuthorizationType: !If [AuthOn, JWT, NONE]")
        .count();
    assert!(routes >= 13, "{routes} routes");
    assert_eq!(authorized, routes, "a route without the authorizer");
    assert!(template.contains("  Auth:\n    Type: String\n    Default: jwt\n"));
    // Every route of the router is deployed (and nothing else but the $default route).
    for route in [
        "POST /{client}/{event}/register_event",
        "POST /{client}/{event}/check_compatibility",
        "POST /{client}/{event}/send_event",
        "POST /{client}/{event}/send_events",
        "POST /{client}/{event}/validate",
        "GET /{client}/{event}/schema",
        "GET /{client}/{event}/versions",
        "GET /{client}/{event}/compatibility",
        "PUT /{client}/{event}/compatibility",
        "GET /{client}/list_events",
        "GET /{client}/{event}/rejected",
        "POST /{client}/{event}/rejected/{id}/replay",
        "$default",
    ] {
        assert!(
            template.contains(&format!("RouteKey: \"{route}\"")),
            "{route} is not deployed"
        );
    }
}
