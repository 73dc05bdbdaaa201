//! `schema`: manage a pair's schema versions on a running gateway without hand-written curl.
//! Each verb is one request; the gateway's JSON answer is printed on stdout, and the process
//! exits non-zero when the gateway refused (or, for `check`, when the schema is incompatible),
//! so the verbs can gate a deployment pipeline.

use std::path::PathBuf;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::BoxError;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    verb: Verb,
    /// The gateway's base URL.
    #[arg(long, global = true, default_value = "http://127.0.0.1:5000")]
    url: String,
    /// A bearer token, for a gateway running with AUTH=jwt (`event-processor token`).
    #[arg(long, global = true, env = crate::TOKEN_VAR, hide_env_values = true)]
    token: Option<String>,
}

#[derive(clap::Subcommand)]
enum Verb {
    /// Register FILE (a JSON Schema; `-` reads stdin) as the pair's next version.
    Register {
        client: String,
        event: String,
        file: PathBuf,
    },
    /// Tell whether FILE could be registered, and as which version; registers nothing.
    Check {
        client: String,
        event: String,
        file: PathBuf,
    },
    /// Print the latest version of the pair's schema, or `--version N`.
    Get {
        client: String,
        event: String,
        #[arg(long)]
        version: Option<u32>,
    },
    /// List the pair's versions with their registration times.
    Versions { client: String, event: String },
    /// Print the pair's compatibility mode, or set it to MODE (NONE, BACKWARD, FORWARD, FULL,
    /// BACKWARD_TRANSITIVE, FORWARD_TRANSITIVE, FULL_TRANSITIVE).
    Compatibility {
        client: String,
        event: String,
        mode: Option<String>,
    },
}

/// What a verb found out, for the exit status.
pub enum Outcome {
    /// The gateway did what was asked.
    Done,
    /// The gateway answered, but not with what was asked (a refusal, an incompatible schema).
    Refused,
}

fn read_schema(file: &PathBuf) -> Result<Value, BoxError> {
    let text = if file.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin())?
    } else {
        std::fs::read_to_string(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?
    };
    serde_json::from_str(&text).map_err(|e| format!("{} is not JSON: {e}", file.display()).into())
}

pub async fn run(args: Args) -> Result<Outcome, BoxError> {
    let base = args.url.trim_end_matches('/');
    let pair = |client: &str, event: &str, route: &str| format!("{base}/{client}/{event}/{route}");
    let (method, url, body) = match &args.verb {
        Verb::Register {
            client,
            event,
            file,
        } => (
            Method::POST,
            pair(client, event, "register_event"),
            Some(read_schema(file)?),
        ),
        Verb::Check {
            client,
            event,
            file,
        } => (
            Method::POST,
            pair(client, event, "check_compatibility"),
            Some(read_schema(file)?),
        ),
        Verb::Get {
            client,
            event,
            version,
        } => {
            let mut url = pair(client, event, "schema");
            if let Some(version) = version {
                url.push_str(&format!("?version={version}"));
            }
            (Method::GET, url, None)
        }
        Verb::Versions { client, event } => (Method::GET, pair(client, event, "versions"), None),
        Verb::Compatibility {
            client,
            event,
            mode,
        } => match mode {
            None => (Method::GET, pair(client, event, "compatibility"), None),
            Some(mode) => (
                Method::PUT,
                pair(client, event, "compatibility"),
                Some(json!({ "compatibility": mode })),
            ),
        },
    };
    let client = crate::http_client(args.token.as_deref())?;
    let mut request = client.request(method, &url);
    if let Some(body) = &body {
        request = request.json(body);
    }
    let response = request.send().await?;
    let status = response.status();
    let answer: Value = response
        .json()
        .await
        .map_err(|e| format!("{url} answered {status} without a JSON body: {e}"))?;
    println!("{}", serde_json::to_string_pretty(&answer)?);
    let refused = !status.is_success()
        || (matches!(args.verb, Verb::Check { .. }) && answer["compatible"] == false);
    if refused {
        let msg = answer["msg"].as_str().unwrap_or("");
        eprintln!("{}: {msg}", status_line(status));
        return Ok(Outcome::Refused);
    }
    Ok(Outcome::Done)
}

fn status_line(status: StatusCode) -> String {
    format!(
        "{} {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or_default()
    )
}
