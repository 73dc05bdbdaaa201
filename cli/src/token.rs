//! `keygen` and `token`: keys and bearer tokens for running the gateway locally with
//! `AUTH=jwt` (in production, tokens come from the identity provider, e.g. Cognito).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use event_processor_core::auth;
use event_processor_core::config::{AUTH_AUDIENCE_VAR, AUTH_ISSUER_VAR};

use crate::BoxError;

/// The key id `keygen` and `token` use unless told otherwise.
const DEFAULT_KID: &str = "local";

#[derive(clap::Args)]
pub struct KeygenArgs {
    /// Where the new private key goes (PKCS#8 PEM, readable by its owner only).
    #[arg(long, default_value = "key.pem")]
    key: PathBuf,
    /// Where its public JWKS goes: what `serve` reads with `AUTH_JWKS=file:PATH`.
    #[arg(long, default_value = "jwks.json")]
    jwks: PathBuf,
    /// The key id (`kid`) tokens will name. Rotate keys by adding a new id to the JWKS.
    #[arg(long, default_value = DEFAULT_KID)]
    kid: String,
}

#[derive(clap::Args)]
pub struct TokenArgs {
    /// The private key to sign with (PEM: P-256 → ES256, RSA → RS256).
    #[arg(long)]
    key: PathBuf,
    /// Space-separated scopes, e.g. "SpongeBob:send SpongeBob:register" (`*` for every client).
    #[arg(long)]
    scope: String,
    /// How long the token is valid, e.g. 1h, 30m, 7d.
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
    ttl: Duration,
    /// The key id the JWKS knows the key by.
    #[arg(long, default_value = DEFAULT_KID)]
    kid: String,
    /// The `iss` claim: what the gateway's AUTH_ISSUER is.
    #[arg(long, env = AUTH_ISSUER_VAR)]
    issuer: String,
    /// The `aud` claim: what the gateway's AUTH_AUDIENCE is.
    #[arg(long, env = AUTH_AUDIENCE_VAR)]
    audience: String,
}

/// Writes `contents` to a new file; an existing file is never overwritten (it may be a key).
fn create(path: &Path, contents: &[u8], private: bool) -> Result<(), BoxError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = private;
    let mut file = options
        .open(path)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    file.write_all(contents)?;
    Ok(())
}

pub fn keygen(args: KeygenArgs) -> Result<(), BoxError> {
    let key = auth::generate_es256_key()?;
    let jwks = auth::jwks_for(key.as_bytes(), &args.kid)?;
    create(&args.key, key.as_bytes(), true)?;
    create(
        &args.jwks,
        serde_json::to_string_pretty(&jwks)?.as_bytes(),
        false,
    )?;
    eprintln!(
        "wrote {} (private, ES256) and {} (its JWKS, kid {:?})",
        args.key.display(),
        args.jwks.display(),
        args.kid
    );
    Ok(())
}

pub fn token(args: TokenArgs) -> Result<(), BoxError> {
    let key =
        std::fs::read(&args.key).map_err(|e| format!("cannot read {}: {e}", args.key.display()))?;
    let token = auth::mint(
        &key,
        &args.kid,
        &args.issuer,
        &args.audience,
        &args.scope,
        args.ttl,
    )?;
    println!("{token}");
    Ok(())
}
