//! `ocisdk login` / `ocisdk logout`, and where every command's credentials come from.
//!
//! The library reads no environment: this file resolves the flags, variables and files and
//! hands the client a [`CredentialChain`]. First match wins, per registry and repository
//! (the files may hold a key per namespace, see [`DockerConfig`]):
//!
//! 1. `--username` + `--password-stdin`;
//! 2. `OCISDK_USERNAME` + `OCISDK_PASSWORD`;
//! 3. docker's `config.json` (`$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`),
//!    with its credential helpers;
//! 4. the containers `auth.json` (`$REGISTRY_AUTH_FILE`, else
//!    `$XDG_RUNTIME_DIR/containers/auth.json`).

use std::io::Read;
use std::path::PathBuf;
use std::sync::OnceLock;

use anyhow::Context as _;
use ocisdk::auth::{erase_credential, registry_key, store_credential, DockerConfig, StoredIn};
use ocisdk::{Credential, CredentialChain, Error, StaticCredentials};
use serde_json::json;

use crate::cli::GlobalArgs;
use crate::output;

/// The most bytes read as a password from standard input.
const PASSWORD_LIMIT: u64 = 64 * 1024;

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn usage(message: &str) -> anyhow::Error {
    Error::InvalidInput(message.to_string()).into()
}

/// The password from standard input, read once per run: the first line, or all of it
/// without the final newline.
fn password_from_stdin() -> anyhow::Result<String> {
    static PASSWORD: OnceLock<Result<String, String>> = OnceLock::new();
    let read = PASSWORD.get_or_init(|| {
        let mut text = String::new();
        std::io::stdin()
            .take(PASSWORD_LIMIT)
            .read_to_string(&mut text)
            .map_err(|e| format!("cannot read the password from standard input: {e}"))?;
        let password = text.trim_end_matches(['\r', '\n']).to_string();
        if password.is_empty() {
            return Err("--password-stdin: standard input is empty".into());
        }
        Ok(password)
    });
    read.clone().map_err(|m| usage(&m))
}

/// The credential given on the command line, if any.
fn flag_credential(g: &GlobalArgs) -> anyhow::Result<Option<Credential>> {
    match (&g.username, g.password_stdin) {
        (Some(user), true) => Ok(Some(Credential::basic(user, password_from_stdin()?))),
        (Some(_), false) => Err(usage(
            "--username needs --password-stdin (passwords are never taken as arguments)",
        )),
        (None, true) => Err(usage("--password-stdin needs --username")),
        (None, false) => Ok(None),
    }
}

/// The credential from `OCISDK_USERNAME` / `OCISDK_PASSWORD`, if both are set.
fn env_credential() -> anyhow::Result<Option<Credential>> {
    match (env("OCISDK_USERNAME"), env("OCISDK_PASSWORD")) {
        (Some(user), Some(password)) => Ok(Some(Credential::basic(user, password))),
        (Some(_), None) => Err(usage("OCISDK_USERNAME is set but OCISDK_PASSWORD is not")),
        (None, Some(_)) => Err(usage("OCISDK_PASSWORD is set but OCISDK_USERNAME is not")),
        (None, None) => Ok(None),
    }
}

/// docker's `config.json`: `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
fn docker_config_path() -> Option<PathBuf> {
    env("DOCKER_CONFIG")
        .map(|d| PathBuf::from(d).join("config.json"))
        .or_else(|| env("HOME").map(|h| PathBuf::from(h).join(".docker").join("config.json")))
}

/// The containers `auth.json`: `$REGISTRY_AUTH_FILE`, else
/// `$XDG_RUNTIME_DIR/containers/auth.json`.
fn containers_auth_path() -> Option<PathBuf> {
    env("REGISTRY_AUTH_FILE").map(PathBuf::from).or_else(|| {
        env("XDG_RUNTIME_DIR").map(|d| PathBuf::from(d).join("containers").join("auth.json"))
    })
}

/// A credentials file as a source; an unreadable one is skipped with a warning, so that a
/// broken file does not stop anonymous pulls.
fn file_source(path: Option<PathBuf>) -> Option<DockerConfig> {
    let path = path?;
    match DockerConfig::load(&path) {
        Ok(config) => Some(config),
        Err(e) => {
            tracing::warn!("ignoring credentials file: {e}");
            None
        }
    }
}

/// Every command's credentials, in the order of the module docs. The flags' and the
/// environment's go to `only_to` when given (a copy's target: its source is another
/// registry, whose token server must not see them), else to any registry.
pub(crate) fn credential_source(
    g: &GlobalArgs,
    only_to: Option<&str>,
) -> anyhow::Result<CredentialChain> {
    let given = |credential| match only_to {
        Some(registry) => StaticCredentials::new().with(registry, credential),
        None => StaticCredentials::new().for_any_registry(credential),
    };
    let mut chain = CredentialChain::new();
    if let Some(c) = flag_credential(g)? {
        chain = chain.then(given(c));
    }
    if let Some(c) = env_credential()? {
        chain = chain.then(given(c));
    }
    if let Some(config) = file_source(docker_config_path()) {
        chain = chain.then(config);
    }
    if let Some(config) = file_source(containers_auth_path()) {
        chain = chain.then(config);
    }
    Ok(chain)
}

/// A registry argument (`ghcr.io`, `https://ghcr.io/`, `localhost:5000`,
/// `https://index.docker.io/v1/`) as (the name credentials are stored under, the host
/// serving its API).
fn registry_names(arg: &str) -> anyhow::Result<(String, String)> {
    let name = registry_key(arg);
    if name.is_empty() || name.contains(|c: char| c.is_whitespace() || c == '@') {
        return Err(usage(&format!("\"{arg}\" is not a registry host")));
    }
    let api = if name == "docker.io" {
        "registry-1.docker.io".to_string()
    } else {
        name.clone()
    };
    Ok((name, api))
}

/// `ocisdk login HOST`: checks the credentials against the registry (`GET /v2/` through the
/// whole authentication flow), then stores them like `docker login`.
pub(crate) async fn login(g: &GlobalArgs, registry: &str) -> anyhow::Result<()> {
    let (name, api) = registry_names(registry)?;
    let credential = match flag_credential(g)? {
        Some(c) => c,
        None => env_credential()?.ok_or_else(|| {
            usage("login needs --username USER --password-stdin (or OCISDK_USERNAME and OCISDK_PASSWORD)")
        })?,
    };
    let client = super::builder(g, &[])?
        .credentials(StaticCredentials::new().for_any_registry(credential.clone()))
        .offline_token(true)
        .build()?;
    client
        .ping(&api)
        .await
        .with_context(|| format!("logging in to {name} as \"{}\"", credential.username()))?;
    let path = docker_config_path().ok_or_else(|| {
        usage("cannot tell where docker's config.json is: set DOCKER_CONFIG or HOME")
    })?;
    // As docker does: when the token server handed out a refresh token, keep that rather
    // than the password (it can be revoked on its own, and the password stays off disk).
    let credential = match (client.refresh_token(), credential) {
        (Some(token), Credential::Basic { username, .. }) => {
            Credential::IdentityToken { username, token }
        }
        (_, credential) => credential,
    };
    let what = match credential {
        Credential::IdentityToken { .. } => "refresh_token",
        _ => "password",
    };
    let stored = store_credential(&path, &name, &credential)?;
    if g.json {
        let stored_in = match &stored {
            StoredIn::Helper(program) => json!({ "helper": program }),
            StoredIn::File(path) => json!({ "file": path.to_string_lossy() }),
        };
        return output::json(
            &json!({ "registry": name, "stored_in": stored_in, "credential": what }),
        );
    }
    if let (StoredIn::File(path), false) = (&stored, g.quiet) {
        let secret = if what == "password" {
            "the password"
        } else {
            "a refresh token"
        };
        eprintln!(
            "warning: {secret} is stored unencrypted in {}; configure a credential helper (credsStore) to avoid this",
            path.display()
        );
    }
    output::line(&format!("Login succeeded: {name}"))
}

/// `ocisdk logout HOST`: removes the stored credentials (helper and `config.json`).
pub(crate) async fn logout(g: &GlobalArgs, registry: &str) -> anyhow::Result<()> {
    let (name, _) = registry_names(registry)?;
    let path = docker_config_path().ok_or_else(|| {
        usage("cannot tell where docker's config.json is: set DOCKER_CONFIG or HOME")
    })?;
    let removed = erase_credential(&path, &name)?;
    if g.json {
        return output::json(&json!({ "registry": name, "removed": removed }));
    }
    output::line(&if removed {
        format!("Removed the credentials for {name}")
    } else {
        format!("Not logged in to {name}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_arguments_name_the_key_and_the_api_host() {
        for (arg, name, api) in [
            ("localhost:5000", "localhost:5000", "localhost:5000"),
            ("http://localhost:5000/", "localhost:5000", "localhost:5000"),
            ("https://GHCR.io", "ghcr.io", "ghcr.io"),
            ("docker.io", "docker.io", "registry-1.docker.io"),
            (
                "https://index.docker.io/v1/",
                "docker.io",
                "registry-1.docker.io",
            ),
        ] {
            let (n, a) = registry_names(arg).unwrap();
            assert_eq!((n.as_str(), a.as_str()), (name, api), "{arg}");
        }
        assert!(registry_names("").is_err());
        assert!(registry_names("a b").is_err());
    }
}
