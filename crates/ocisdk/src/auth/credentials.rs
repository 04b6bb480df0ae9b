//! Credentials and where they come from. The library never looks for them by itself: the
//! caller hands the [`Client`](crate::Client) a [`CredentialSource`] (the CLI builds a
//! [`CredentialChain`] of its flags, environment, docker config and containers auth file).

use std::fmt;
use std::path::PathBuf;

/// A secret string (password, identity token, bearer token) that never prints: its `Debug`
/// and `Display` show `<redacted>`. Read it with [`Secret::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> Secret {
        Secret(secret.into())
    }

    /// The secret itself, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the secret is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Secret {
        Secret(s)
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Secret {
        Secret(s.to_string())
    }
}

/// What proves who we are to one registry.
#[derive(Clone, PartialEq, Eq)]
pub enum Credential {
    /// A username and password (or an access token used as a password). Sent as HTTP Basic
    /// to registries that ask for it, and to the token server of those that ask for Bearer.
    Basic {
        /// The username.
        username: String,
        /// The password or access token.
        password: Secret,
    },
    /// An OAuth2 refresh token (docker's `identitytoken`), exchanged at the token server with
    /// `grant_type=refresh_token`.
    IdentityToken {
        /// The username that goes with it, when known (docker writes `<token>`).
        username: String,
        /// The refresh token.
        token: Secret,
    },
    /// A bearer token for the registry itself (docker's `registrytoken`), sent as it is in
    /// answer to a Bearer challenge instead of asking the token server for one.
    RegistryToken {
        /// The token.
        token: Secret,
    },
}

impl Credential {
    /// A username and password.
    pub fn basic(username: impl Into<String>, password: impl Into<Secret>) -> Credential {
        Credential::Basic {
            username: username.into(),
            password: password.into(),
        }
    }

    /// The username.
    pub fn username(&self) -> &str {
        match self {
            Credential::Basic { username, .. } | Credential::IdentityToken { username, .. } => {
                username
            }
            Credential::RegistryToken { .. } => "<token>",
        }
    }

    /// The secret part.
    pub fn secret(&self) -> &Secret {
        match self {
            Credential::Basic { password, .. } => password,
            Credential::IdentityToken { token, .. } | Credential::RegistryToken { token } => token,
        }
    }
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self {
            Credential::Basic { .. } => "Basic",
            Credential::IdentityToken { .. } => "IdentityToken",
            Credential::RegistryToken { .. } => "RegistryToken",
        };
        f.debug_struct(kind)
            .field("username", &self.username())
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// Why credentials could not be read, written or erased. Never holds a secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CredentialError {
    /// A credentials file could not be read or written.
    #[error("{action} {}: {source}", .path.display())]
    Io {
        /// What was being done, e.g. "reading".
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A credentials file is not valid JSON or has the wrong shape.
    #[error("{} is not a valid credentials file: {message}", .path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong (never the file's content).
        message: String,
    },
    /// An entry of a credentials file is unusable (e.g. `auth` is not base64 of
    /// `user:password`).
    #[error("the entry for \"{key}\" in {} is unusable: {message}", .path.display())]
    BadEntry {
        /// The file.
        path: PathBuf,
        /// The entry's key.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// A credential helper (`docker-credential-NAME`) failed.
    #[error(
        "credential helper {program} failed to {action} credentials for {registry}: {message}"
    )]
    Helper {
        /// The program, e.g. `docker-credential-pass`.
        program: String,
        /// `get`, `store` or `erase`.
        action: &'static str,
        /// The registry key passed to it.
        registry: String,
        /// Its error output, or why it could not run.
        message: String,
    },
}

/// Finds the credential for a registry. Implemented by [`StaticCredentials`],
/// [`DockerConfig`](super::DockerConfig) and [`CredentialChain`]; the CLI builds the chain.
///
/// `registry` is a registry host as written in references (`ghcr.io`, `localhost:5000`,
/// `docker.io`); match it with [`registry_key`]. Lookups may block (credential helpers
/// are programs), so the client runs them off the async threads, once per registry and
/// repository.
pub trait CredentialSource: Send + Sync {
    /// The credential for `registry`, or `None` to go anonymous.
    fn credential(&self, registry: &str) -> Result<Option<Credential>, CredentialError>;

    /// The credential for `repository` (its path on the registry, e.g. `team-a/app`; empty
    /// for registry-wide requests such as `GET /v2/`) on `registry`. This is what the
    /// client asks.
    ///
    /// The default is [`credential`](Self::credential): one credential per registry. A
    /// source that can hold one per namespace, as a containers `auth.json` can
    /// (`quay.io/team-a`), overrides it; a source that wraps others must forward it.
    fn credential_for_repository(
        &self,
        registry: &str,
        repository: &str,
    ) -> Result<Option<Credential>, CredentialError> {
        let _ = repository;
        self.credential(registry)
    }
}

/// Credentials given in code: per registry, and optionally one for any registry (e.g. from
/// command-line flags).
#[derive(Debug, Clone, Default)]
pub struct StaticCredentials {
    by_registry: Vec<(String, Credential)>,
    any: Option<Credential>,
}

impl StaticCredentials {
    /// No credentials.
    pub fn new() -> StaticCredentials {
        StaticCredentials::default()
    }

    /// Adds the credential for `registry` (matched with [`registry_key`]).
    pub fn with(mut self, registry: &str, credential: Credential) -> StaticCredentials {
        self.by_registry.push((registry_key(registry), credential));
        self
    }

    /// Uses `credential` for every registry without a credential of its own.
    pub fn for_any_registry(mut self, credential: Credential) -> StaticCredentials {
        self.any = Some(credential);
        self
    }
}

impl CredentialSource for StaticCredentials {
    fn credential(&self, registry: &str) -> Result<Option<Credential>, CredentialError> {
        let key = registry_key(registry);
        Ok(self
            .by_registry
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, c)| c.clone())
            .or_else(|| self.any.clone()))
    }
}

/// Several sources asked in order: the first that has a credential for the registry wins.
#[derive(Default)]
pub struct CredentialChain {
    sources: Vec<Box<dyn CredentialSource>>,
}

impl fmt::Debug for CredentialChain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CredentialChain")
            .field("sources", &self.sources.len())
            .finish()
    }
}

impl CredentialChain {
    /// An empty chain (anonymous everywhere).
    pub fn new() -> CredentialChain {
        CredentialChain::default()
    }

    /// Appends a source, asked after the ones already in the chain.
    pub fn then(mut self, source: impl CredentialSource + 'static) -> CredentialChain {
        self.sources.push(Box::new(source));
        self
    }
}

impl CredentialSource for CredentialChain {
    fn credential(&self, registry: &str) -> Result<Option<Credential>, CredentialError> {
        for source in &self.sources {
            if let Some(c) = source.credential(registry)? {
                return Ok(Some(c));
            }
        }
        Ok(None)
    }

    fn credential_for_repository(
        &self,
        registry: &str,
        repository: &str,
    ) -> Result<Option<Credential>, CredentialError> {
        for source in &self.sources {
            if let Some(c) = source.credential_for_repository(registry, repository)? {
                return Ok(Some(c));
            }
        }
        Ok(None)
    }
}

/// Docker Hub under every name it goes by; its key in docker's config is [`DOCKER_HUB_KEY`].
const DOCKER_HUB_NAMES: [&str; 4] = [
    "docker.io",
    "index.docker.io",
    "registry-1.docker.io",
    "registry.hub.docker.com",
];

/// The key docker's `config.json` uses for Docker Hub.
pub const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";

/// The comparable form of a registry name or credentials-file key, as docker matches them
/// (`ConvertToHostname`): scheme and path dropped, lower-cased, every Docker Hub name made
/// `docker.io`. `https://index.docker.io/v1/`, `index.docker.io` and `docker.io` are one key;
/// `http://localhost:5000` and `localhost:5000` are another.
pub fn registry_key(name: &str) -> String {
    let name = name.trim();
    let rest = name
        .strip_prefix("https://")
        .or_else(|| name.strip_prefix("http://"))
        .unwrap_or(name);
    let host = rest.split('/').next().unwrap_or(rest).to_ascii_lowercase();
    if DOCKER_HUB_NAMES.contains(&host.as_str()) {
        "docker.io".to_string()
    } else {
        host
    }
}

/// The key under which docker stores a registry's credentials: [`DOCKER_HUB_KEY`] for
/// Docker Hub, the bare host (and port) otherwise.
pub fn config_key(registry: &str) -> String {
    match registry_key(registry).as_str() {
        "docker.io" => DOCKER_HUB_KEY.to_string(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_and_credentials_never_print() {
        let c = Credential::basic("alice", "hunter2");
        let shown = format!("{c:?} {:?} {}", c.secret(), c.secret());
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("alice") && shown.contains("<redacted>"));
        let t = Credential::IdentityToken {
            username: "<token>".into(),
            token: Secret::new("rt-123"),
        };
        assert!(!format!("{t:?}").contains("rt-123"));
        assert_eq!(t.secret().expose(), "rt-123");
    }

    #[test]
    fn host_keys_match_like_docker() {
        for hub in [
            "docker.io",
            "index.docker.io",
            "https://index.docker.io/v1/",
            "http://index.docker.io/v1/",
            "registry-1.docker.io",
            "Docker.IO",
        ] {
            assert_eq!(registry_key(hub), "docker.io", "{hub}");
            assert_eq!(config_key(hub), DOCKER_HUB_KEY, "{hub}");
        }
        assert_eq!(registry_key("https://ghcr.io"), "ghcr.io");
        assert_eq!(registry_key("ghcr.io/owner/repo"), "ghcr.io");
        assert_eq!(registry_key("http://localhost:5000/v2/"), "localhost:5000");
        assert_eq!(config_key("LOCALHOST:5000"), "localhost:5000");
        assert_ne!(
            registry_key("localhost:5000"),
            registry_key("localhost:5001")
        );
        assert_ne!(registry_key("docker.io.evil.example"), "docker.io");
    }

    #[test]
    fn static_credentials_and_chains_pick_the_first_match() {
        let a = Credential::basic("a", "pa");
        let any = Credential::basic("any", "px");
        let fixed = StaticCredentials::new().with("https://index.docker.io/v1/", a.clone());
        assert_eq!(fixed.credential("docker.io").unwrap(), Some(a.clone()));
        assert_eq!(fixed.credential("ghcr.io").unwrap(), None);
        let chain = CredentialChain::new()
            .then(StaticCredentials::new())
            .then(fixed)
            .then(StaticCredentials::new().for_any_registry(any.clone()));
        assert_eq!(chain.credential("registry-1.docker.io").unwrap(), Some(a));
        assert_eq!(chain.credential("ghcr.io").unwrap(), Some(any));
        assert_eq!(CredentialChain::new().credential("x").unwrap(), None);
    }
}
