//! Configuration, parsing only: the environment (or the CLI flags of the same meaning) turned
//! into a [`Config`] value. Nothing is opened here; `app` wires a `Config` into a running app.
//!
//! A value that does not parse is an error naming its variable. Values are never echoed
//! verbatim: a PostgreSQL URL carries a password, so errors and logs show [`redacted`] text.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::compat::Mode;
use crate::ports::DEFAULT_REJECTIONS_TTL;

pub const SCHEMA_STORE_VAR: &str = "SCHEMA_STORE";
pub const EVENT_STREAM_VAR: &str = "EVENT_STREAM";
pub const DEFAULT_COMPATIBILITY_VAR: &str = "DEFAULT_COMPATIBILITY";
pub const AUTH_VAR: &str = "AUTH";
pub const AUTH_JWKS_VAR: &str = "AUTH_JWKS";
pub const AUTH_ISSUER_VAR: &str = "AUTH_ISSUER";
pub const AUTH_AUDIENCE_VAR: &str = "AUTH_AUDIENCE";
pub const AUTH_SCOPE_PREFIX_VAR: &str = "AUTH_SCOPE_PREFIX";
pub const REJECTIONS_TTL_VAR: &str = "REJECTIONS_TTL";
/// What the local server uses when nothing is configured.
pub const DEFAULT_BACKEND: &str = "sqlite:event-processor.db";

/// A configuration value that does not parse. Names the variable; shows the value redacted.
#[derive(Debug, thiserror::Error)]
#[error("{variable}={value:?} is not valid: {reason}")]
pub struct ConfigError {
    pub variable: &'static str,
    /// The value as given, with any password replaced (see [`redacted`]).
    pub value: String,
    pub reason: String,
}

impl ConfigError {
    fn new(variable: &'static str, value: &str, reason: impl Into<String>) -> Self {
        Self {
            variable,
            value: redacted(value),
            reason: reason.into(),
        }
    }
}

/// `value` with the password of a `scheme://user:password@host` URL replaced by `***`, so
/// that a connection string can be logged or shown in an error.
pub fn redacted(value: &str) -> String {
    redact_query_password(&redact_user_info(value))
}

fn redact_user_info(value: &str) -> String {
    let Some((scheme, rest)) = value.split_once("://") else {
        return value.to_owned();
    };
    // The user info ends at the last '@' before the host (a password may contain '@').
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return value.to_owned();
    };
    match rest[..at].split_once(':') {
        Some((user, _password)) => format!("{scheme}://{user}:***{}", &rest[at..]),
        None => value.to_owned(),
    }
}

/// `?password=...` (libpq's connection URI parameters take one too).
fn redact_query_password(value: &str) -> String {
    let Some((base, query)) = value.split_once('?') else {
        return value.to_owned();
    };
    let query: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, _)) if name.eq_ignore_ascii_case("password") => format!("{name}=***"),
            _ => pair.to_owned(),
        })
        .collect();
    format!("{base}?{}", query.join("&"))
}

/// Where schemas are stored (`SCHEMA_STORE`).
#[derive(Clone, PartialEq, Eq)]
pub enum StoreConfig {
    Memory,
    Sqlite(PathBuf),
    Postgres(String),
    DynamoDb { table: String },
}

/// Where accepted events are published (`EVENT_STREAM`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamConfig {
    Memory,
    Sqlite(PathBuf),
    Kafka { brokers: String },
    Kinesis { stream: String },
}

// By hand: the derived Debug would print a PostgreSQL password.
impl fmt::Debug for StoreConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Memory => f.write_str("Memory"),
            Self::Sqlite(path) => f.debug_tuple("Sqlite").field(path).finish(),
            Self::Postgres(url) => f.debug_tuple("Postgres").field(&redacted(url)).finish(),
            Self::DynamoDb { table } => f.debug_struct("DynamoDb").field("table", table).finish(),
        }
    }
}

impl fmt::Display for StoreConfig {
    /// The value as `SCHEMA_STORE` would spell it, password redacted.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Memory => f.write_str("memory:"),
            Self::Sqlite(path) => write!(f, "sqlite:{}", path.display()),
            Self::Postgres(url) => f.write_str(&redacted(url)),
            Self::DynamoDb { table } => write!(f, "dynamodb:{table}"),
        }
    }
}

impl fmt::Display for StreamConfig {
    /// The value as `EVENT_STREAM` would spell it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Memory => f.write_str("memory:"),
            Self::Sqlite(path) => write!(f, "sqlite:{}", path.display()),
            Self::Kafka { brokers } => write!(f, "kafka://{brokers}"),
            Self::Kinesis { stream } => write!(f, "kinesis:{stream}"),
        }
    }
}

fn non_empty<'a>(
    variable: &'static str,
    value: &str,
    rest: &'a str,
    what: &str,
) -> Result<&'a str, ConfigError> {
    if rest.trim().is_empty() {
        Err(ConfigError::new(
            variable,
            value,
            format!("{what} is missing"),
        ))
    } else {
        Ok(rest)
    }
}

impl StoreConfig {
    pub fn parse(value: &str) -> Result<Self, ConfigError> {
        const VAR: &str = SCHEMA_STORE_VAR;
        if value == "memory:" {
            Ok(Self::Memory)
        } else if let Some(path) = value.strip_prefix("sqlite:") {
            Ok(Self::Sqlite(
                non_empty(VAR, value, path, "the SQLite file path")?.into(),
            ))
        } else if value.starts_with("postgres://") || value.starts_with("postgresql://") {
            Ok(Self::Postgres(value.to_owned()))
        } else if let Some(table) = value.strip_prefix("dynamodb:") {
            let table = non_empty(VAR, value, table, "the DynamoDB table name")?;
            Ok(Self::DynamoDb {
                table: table.to_owned(),
            })
        } else {
            Err(ConfigError::new(
                VAR,
                value,
                "expected sqlite:PATH, memory:, postgres://... or dynamodb:TABLE",
            ))
        }
    }
}

impl StreamConfig {
    pub fn parse(value: &str) -> Result<Self, ConfigError> {
        const VAR: &str = EVENT_STREAM_VAR;
        if value == "memory:" {
            Ok(Self::Memory)
        } else if let Some(path) = value.strip_prefix("sqlite:") {
            Ok(Self::Sqlite(
                non_empty(VAR, value, path, "the SQLite file path")?.into(),
            ))
        } else if let Some(brokers) = value.strip_prefix("kafka://") {
            let brokers = non_empty(VAR, value, brokers, "the broker list")?;
            if brokers.split(',').any(|b| {
                b.rsplit_once(':')
                    .is_none_or(|(h, p)| h.is_empty() || p.parse::<u16>().is_err())
            }) {
                return Err(ConfigError::new(
                    VAR,
                    value,
                    "brokers must be HOST:PORT[,HOST:PORT]",
                ));
            }
            Ok(Self::Kafka {
                brokers: brokers.to_owned(),
            })
        } else if let Some(stream) = value.strip_prefix("kinesis:") {
            let stream = non_empty(VAR, value, stream, "the Kinesis stream name")?;
            Ok(Self::Kinesis {
                stream: stream.to_owned(),
            })
        } else {
            Err(ConfigError::new(
                VAR,
                value,
                "expected sqlite:PATH, memory:, kafka://HOST:PORT[,HOST:PORT] or kinesis:STREAM",
            ))
        }
    }
}

/// Who may call the API (`AUTH`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum AuthConfig {
    /// `AUTH=none`: anyone may do anything (the local default; `serve` warns).
    #[default]
    None,
    /// `AUTH=jwt`: every request needs a bearer token from `issuer` for `audience`, verified
    /// against the JWKS at `jwks` — or, without `jwks`, already verified upstream (API
    /// Gateway's JWT authorizer), whose claims the Lambda runtime hands over.
    Jwt {
        jwks: Option<PathBuf>,
        issuer: String,
        audience: String,
        /// What the identity provider puts before the gateway's scopes (`AUTH_SCOPE_PREFIX`;
        /// Amazon Cognito: `{resource server identifier}/`). Empty by default.
        scope_prefix: String,
    },
}

impl AuthConfig {
    /// Parses `AUTH` and, for `jwt`, its companions (`None` when a variable is unset).
    pub fn parse(
        auth: Option<&str>,
        jwks: Option<&str>,
        issuer: Option<&str>,
        audience: Option<&str>,
    ) -> Result<Self, ConfigError> {
        match auth.unwrap_or("none") {
            "none" => Ok(Self::None),
            "jwt" => {
                let required = |variable: &'static str, value: Option<&str>| match value {
                    Some(value) if !value.trim().is_empty() => Ok(value.to_owned()),
                    _ => Err(ConfigError::new(
                        variable,
                        value.unwrap_or_default(),
                        "AUTH=jwt needs it",
                    )),
                };
                let jwks = jwks
                    .map(|value| match value.strip_prefix("file:") {
                        Some(path) if !path.is_empty() => Ok(PathBuf::from(path)),
                        _ => Err(ConfigError::new(
                            AUTH_JWKS_VAR,
                            value,
                            "expected file:PATH (a JWKS document)",
                        )),
                    })
                    .transpose()?;
                Ok(Self::Jwt {
                    jwks,
                    issuer: required(AUTH_ISSUER_VAR, issuer)?,
                    audience: required(AUTH_AUDIENCE_VAR, audience)?,
                    scope_prefix: String::new(),
                })
            }
            other => Err(ConfigError::new(AUTH_VAR, other, "expected none or jwt")),
        }
    }
}

/// The whole configuration of a process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub store: StoreConfig,
    pub stream: StreamConfig,
    /// The compatibility mode of pairs that have none of their own.
    pub default_compatibility: Mode,
    pub auth: AuthConfig,
    /// How long rejected events are kept (`REJECTIONS_TTL`, e.g. `7d`).
    pub rejections_ttl: Duration,
}

impl Config {
    /// The backends from `SCHEMA_STORE` / `EVENT_STREAM` values; every other setting default.
    pub fn parse(store: &str, stream: &str) -> Result<Self, ConfigError> {
        Ok(Self {
            store: StoreConfig::parse(store)?,
            stream: StreamConfig::parse(stream)?,
            default_compatibility: Mode::default(),
            auth: AuthConfig::None,
            rejections_ttl: DEFAULT_REJECTIONS_TTL,
        })
    }

    /// `REJECTIONS_TTL`'s value: a duration as people write it (`7d`, `36h`), at least a minute.
    pub fn with_rejections_ttl(mut self, value: &str) -> Result<Self, ConfigError> {
        let ttl = humantime::parse_duration(value)
            .map_err(|e| ConfigError::new(REJECTIONS_TTL_VAR, value, e.to_string()))?;
        if ttl < Duration::from_secs(60) {
            return Err(ConfigError::new(
                REJECTIONS_TTL_VAR,
                value,
                "rejections must be kept at least a minute",
            ));
        }
        self.rejections_ttl = ttl;
        Ok(self)
    }

    /// `DEFAULT_COMPATIBILITY`'s value (`BACKWARD`, `FULL_TRANSITIVE`, ...).
    pub fn with_default_compatibility(mut self, value: &str) -> Result<Self, ConfigError> {
        self.default_compatibility = value.parse().map_err(|e: crate::compat::UnknownMode| {
            ConfigError::new(DEFAULT_COMPATIBILITY_VAR, value, e.to_string())
        })?;
        Ok(self)
    }

    /// Reads `SCHEMA_STORE` and `EVENT_STREAM` (each defaulting to [`DEFAULT_BACKEND`]),
    /// `DEFAULT_COMPATIBILITY` (default `BACKWARD`) and `AUTH` (default `none`) with its
    /// companions.
    pub fn from_env() -> Result<Self, ConfigError> {
        let mut config = Self::parse(
            &env_or(SCHEMA_STORE_VAR, DEFAULT_BACKEND)?,
            &env_or(EVENT_STREAM_VAR, DEFAULT_BACKEND)?,
        )?
        .with_default_compatibility(&env_or(
            DEFAULT_COMPATIBILITY_VAR,
            Mode::default().as_str(),
        )?)?;
        config.auth = AuthConfig::parse(
            env_opt(AUTH_VAR)?.as_deref(),
            env_opt(AUTH_JWKS_VAR)?.as_deref(),
            env_opt(AUTH_ISSUER_VAR)?.as_deref(),
            env_opt(AUTH_AUDIENCE_VAR)?.as_deref(),
        )?;
        if let AuthConfig::Jwt { scope_prefix, .. } = &mut config.auth {
            *scope_prefix = env_or(AUTH_SCOPE_PREFIX_VAR, "")?;
        }
        if let Some(ttl) = env_opt(REJECTIONS_TTL_VAR)? {
            config = config.with_rejections_ttl(&ttl)?;
        }
        Ok(config)
    }
}

/// A variable's value, or `default` when it is unset.
pub fn env_or(variable: &'static str, default: &str) -> Result<String, ConfigError> {
    Ok(env_opt(variable)?.unwrap_or_else(|| default.to_owned()))
}

/// A variable's value, if it is set.
pub fn env_opt(variable: &'static str) -> Result<Option<String>, ConfigError> {
    match std::env::var(variable) {
        Ok(value) => Ok(Some(value)),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(raw)) => Err(ConfigError::new(
            variable,
            &raw.to_string_lossy(),
            "not valid UTF-8",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_in_the_query_is_redacted_too() {
        assert_eq!(
            redacted("postgres://db:5432/app?sslmode=disable&password=s3cret&user=u"),
            "postgres://db:5432/app?sslmode=disable&password=***&user=u"
        );
        assert_eq!(
            redacted("postgres://u:pw@db/app?PASSWORD=x"),
            "postgres://u:***@db/app?PASSWORD=***"
        );
        assert_eq!(redacted("sqlite:events.db"), "sqlite:events.db");
    }

    #[test]
    fn rejections_ttl_takes_human_durations_and_refuses_nonsense() {
        let config = Config::parse("memory:", "memory:").unwrap();
        assert_eq!(config.rejections_ttl, DEFAULT_REJECTIONS_TTL);
        let config = config.with_rejections_ttl("36h").unwrap();
        assert_eq!(config.rejections_ttl, Duration::from_secs(36 * 3600));
        for bad in ["", "soon", "5s", "-1d"] {
            let error = Config::parse("memory:", "memory:")
                .unwrap()
                .with_rejections_ttl(bad)
                .unwrap_err();
            assert_eq!(error.variable, REJECTIONS_TTL_VAR, "{bad:?}");
        }
    }

    #[test]
    fn every_documented_form_parses() {
        assert_eq!(StoreConfig::parse("memory:").unwrap(), StoreConfig::Memory);
        assert_eq!(
            StoreConfig::parse("sqlite:a/b.db").unwrap(),
            StoreConfig::Sqlite("a/b.db".into())
        );
        assert_eq!(
            StoreConfig::parse("dynamodb:Schemas").unwrap(),
            StoreConfig::DynamoDb {
                table: "Schemas".into()
            }
        );
        assert!(matches!(
            StoreConfig::parse("postgres://u@h/db").unwrap(),
            StoreConfig::Postgres(_)
        ));
        assert_eq!(
            StreamConfig::parse("kafka://h1:9092,h2:9093").unwrap(),
            StreamConfig::Kafka {
                brokers: "h1:9092,h2:9093".into()
            }
        );
        assert_eq!(
            StreamConfig::parse("kinesis:events").unwrap(),
            StreamConfig::Kinesis {
                stream: "events".into()
            }
        );
    }

    #[test]
    fn a_value_that_does_not_parse_names_its_variable() {
        for (result, variable) in [
            (StoreConfig::parse("mysql://x").err(), SCHEMA_STORE_VAR),
            (StoreConfig::parse("sqlite:").err(), SCHEMA_STORE_VAR),
            (
                StreamConfig::parse("kafka://nohost").err(),
                EVENT_STREAM_VAR,
            ),
            (StreamConfig::parse("kinesis:").err(), EVENT_STREAM_VAR),
        ] {
            let message = result.expect("should not parse").to_string();
            assert!(message.starts_with(variable), "{message}");
        }
    }

    #[test]
    fn the_default_compatibility_mode_parses_or_names_its_variable() {
        let config = Config::parse("memory:", "memory:").unwrap();
        assert_eq!(config.default_compatibility, Mode::Backward);
        let full = config.clone().with_default_compatibility("FULL").unwrap();
        assert_eq!(full.default_compatibility, Mode::Full);
        let error = config.with_default_compatibility("full").unwrap_err();
        assert!(
            error.to_string().starts_with(DEFAULT_COMPATIBILITY_VAR),
            "{error}"
        );
    }

    #[test]
    fn auth_parses_its_forms_and_names_the_missing_variable() {
        assert_eq!(
            AuthConfig::parse(None, None, None, None).unwrap(),
            AuthConfig::None
        );
        assert_eq!(
            AuthConfig::parse(
                Some("jwt"),
                Some("file:keys.json"),
                Some("iss"),
                Some("aud")
            )
            .unwrap(),
            AuthConfig::Jwt {
                jwks: Some("keys.json".into()),
                issuer: "iss".into(),
                audience: "aud".into(),
                scope_prefix: String::new(),
            }
        );
        for (result, variable) in [
            (AuthConfig::parse(Some("JWT"), None, None, None), AUTH_VAR),
            (
                AuthConfig::parse(Some("jwt"), None, None, Some("aud")),
                AUTH_ISSUER_VAR,
            ),
            (
                AuthConfig::parse(Some("jwt"), None, Some("iss"), Some(" ")),
                AUTH_AUDIENCE_VAR,
            ),
            (
                AuthConfig::parse(Some("jwt"), Some("https://x/jwks"), Some("i"), Some("a")),
                AUTH_JWKS_VAR,
            ),
        ] {
            let message = result.unwrap_err().to_string();
            assert!(message.starts_with(variable), "{message}");
        }
    }

    #[test]
    fn passwords_in_urls_are_redacted() {
        assert_eq!(
            redacted("postgres://app:s3cr@t@db:5432/events?sslmode=disable"),
            "postgres://app:***@db:5432/events?sslmode=disable"
        );
        assert_eq!(
            redacted("postgres://app@db/events"),
            "postgres://app@db/events"
        );
        assert_eq!(redacted("sqlite:a:b@c.db"), "sqlite:a:b@c.db");
        assert_eq!(redacted("kafka://h:9092"), "kafka://h:9092");
    }

    #[test]
    fn a_postgres_password_never_appears_in_errors_debug_or_display() {
        let config = StoreConfig::parse("postgres://app:hunter2@db/events").unwrap();
        assert!(!format!("{config:?}").contains("hunter2"));
        assert!(!config.to_string().contains("hunter2"));
        let error = StoreConfig::parse("mysql://app:hunter2@db/events").unwrap_err();
        assert!(!error.to_string().contains("hunter2"), "{error}");
    }
}
