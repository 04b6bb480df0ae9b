//! docker's `config.json` and the containers `auth.json` (podman, skopeo, buildah): the same
//! `auths` / `credHelpers` / `credsStore` shape, read from a path the caller chose.
//! <https://docs.docker.com/reference/cli/docker/login/#credential-stores>

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use base64::Engine as _;
use serde::Deserialize as _;
use serde_json::{Map, Value};

use super::credentials::{
    config_key, registry_key, Credential, CredentialError, CredentialSource, Secret,
};
use super::helper::{self, HelperFailure};

/// The largest credentials file read; real ones are a few kilobytes.
const CONFIG_FILE_LIMIT: u64 = 4 * 1024 * 1024;

/// The credentials part of a docker `config.json` or containers `auth.json`.
///
/// As a [`CredentialSource`] it looks a registry up the way docker does: a `credHelpers`
/// entry for the host, else the default `credsStore`, else the `auths` entry (base64
/// `auth` of `user:password`, or an `identitytoken`). A helper that is not installed is
/// skipped with a warning (a stale `credsStore` must not break anonymous pulls); one that
/// fails is an error.
///
/// `auths` keys are matched per repository, as containers-auth.json(5) says: a key may name
/// a host (`quay.io`) or a namespace on it (`quay.io/team-a`, `quay.io/team-a/app`), and for
/// `quay.io/team-a/app/x` the most specific key wins: `quay.io/team-a/app/x`, then
/// `quay.io/team-a/app`, then `quay.io/team-a`, then `quay.io`. Namespaces match whole path
/// segments only (`quay.io/team` is not a key for `quay.io/team-a/x`), and never apply to
/// another namespace or to registry-wide requests. Hosts are compared with
/// [`registry_key`] (any case, every Docker Hub name). A key written as a URL
/// (`https://index.docker.io/v1/`, `http://localhost:5000`) stands for its whole host, as
/// docker and podman read it, and comes after a bare host key. docker itself writes host
/// keys only, which match as before; `credHelpers` entries, and the `credsStore`, stay per
/// host, and each helper is run at most once per host (clones share what it answered).
#[derive(Debug, Clone, Default)]
pub struct DockerConfig {
    path: PathBuf,
    auths: BTreeMap<String, AuthEntry>,
    cred_helpers: BTreeMap<String, String>,
    creds_store: Option<String>,
    helper_answers: HelperAnswers,
}

/// What each credential helper answered, per (program, server). The client looks
/// credentials up per repository (an `auths` key may name a namespace), but a helper
/// answers per host and is a program run (docker's desktop helper takes a tenth of a second
/// or more): asked again for each repository of a `copy` or an `sdk sync`, it would run
/// once per repository instead of once per registry. A failure is not kept: the next
/// lookup asks again.
#[derive(Clone, Default)]
struct HelperAnswers(Arc<Mutex<HashMap<(String, String), HelperAnswer>>>);

/// One helper's answer for one server, once it has given one. Its own lock is held while
/// the helper runs, so that lookups of the same server at the same time wait for that run
/// instead of starting their own.
type HelperAnswer = Arc<Mutex<Option<Option<Credential>>>>;

impl HelperAnswers {
    fn slot(&self, program: &str, server: &str) -> HelperAnswer {
        let mut slots = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(
            slots
                .entry((program.to_string(), server.to_string()))
                .or_default(),
        )
    }
}

impl std::fmt::Debug for HelperAnswers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Credentials redact themselves, but what a helper said is nobody's business here.
        f.write_str("HelperAnswers(..)")
    }
}

#[derive(Clone, Default, serde::Deserialize)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    identitytoken: Option<String>,
    #[serde(default)]
    registrytoken: Option<String>,
}

impl std::fmt::Debug for AuthEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuthEntry(<redacted>)")
    }
}

#[derive(Default, serde::Deserialize)]
struct ConfigFile {
    #[serde(default)]
    auths: Option<BTreeMap<String, AuthEntry>>,
    #[serde(default, rename = "credHelpers")]
    cred_helpers: Option<BTreeMap<String, String>>,
    #[serde(default, rename = "credsStore")]
    creds_store: Option<String>,
}

impl DockerConfig {
    /// Reads the file at `path`; a file that does not exist gives an empty config.
    pub fn load(path: impl Into<PathBuf>) -> Result<DockerConfig, CredentialError> {
        let path = path.into();
        match read_limited(&path)? {
            Some(text) => DockerConfig::parse(&text, path),
            None => Ok(DockerConfig {
                path,
                ..DockerConfig::default()
            }),
        }
    }

    /// Parses a file's text; `path` is only used in messages.
    pub fn parse(text: &str, path: impl Into<PathBuf>) -> Result<DockerConfig, CredentialError> {
        let path = path.into();
        let file: ConfigFile = if text.trim().is_empty() {
            ConfigFile::default()
        } else {
            serde_json::from_str(text).map_err(|e| CredentialError::Parse {
                path: path.clone(),
                // serde_json's messages give line and column, never the content.
                message: e.to_string(),
            })?
        };
        Ok(DockerConfig::from_file(file, path))
    }

    fn from_document(doc: &Value, path: &Path) -> Result<DockerConfig, CredentialError> {
        let file = ConfigFile::deserialize(doc).map_err(|e| CredentialError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        Ok(DockerConfig::from_file(file, path.to_path_buf()))
    }

    fn from_file(file: ConfigFile, path: PathBuf) -> DockerConfig {
        DockerConfig {
            path,
            auths: file.auths.unwrap_or_default(),
            cred_helpers: file.cred_helpers.unwrap_or_default(),
            creds_store: file.creds_store.filter(|s| !s.is_empty()),
            helper_answers: HelperAnswers::default(),
        }
    }

    /// The file this config came from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The credential helper in charge of `registry`, if any: its `credHelpers` entry, else
    /// `credsStore`.
    pub fn helper_for(&self, registry: &str) -> Option<&str> {
        self.own_helper(registry).or(self.creds_store.as_deref())
    }

    fn own_helper(&self, registry: &str) -> Option<&str> {
        let key = registry_key(registry);
        find_key(self.cred_helpers.keys(), &key)
            .and_then(|k| self.cred_helpers.get(k))
            .map(String::as_str)
            .filter(|s| !s.is_empty())
    }

    fn ask_helper(
        &self,
        name: &str,
        registry: &str,
    ) -> Result<Option<Credential>, CredentialError> {
        let program = helper::program(name).map_err(|message| CredentialError::Parse {
            path: self.path.clone(),
            message,
        })?;
        let server = config_key(registry);
        let slot = self.helper_answers.slot(&program, &server);
        let mut answer = slot.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(known) = answer.as_ref() {
            return Ok(known.clone());
        }
        let got = match helper::get(&program, &server) {
            Ok(c) => c,
            Err(HelperFailure::Missing) => {
                tracing::warn!(
                    "credential helper {program} (named in {}) is not installed; going on without it",
                    self.path.display()
                );
                None
            }
            Err(failure) => return Err(helper::error(&program, "get", &server, failure)),
        };
        *answer = Some(got.clone());
        Ok(got)
    }

    fn look_up_auths(
        &self,
        registry: &str,
        repository: &str,
    ) -> Result<Option<Credential>, CredentialError> {
        let Some(found) = find_auths_key(self.auths.keys(), registry, repository) else {
            return Ok(None);
        };
        let entry = &self.auths[found];
        decode_entry(entry).map_err(|message| CredentialError::BadEntry {
            path: self.path.clone(),
            key: found.clone(),
            message,
        })
    }
}

impl CredentialSource for DockerConfig {
    /// The registry-wide credential: helpers and host keys only, never a namespace's.
    fn credential(&self, registry: &str) -> Result<Option<Credential>, CredentialError> {
        self.credential_for_repository(registry, "")
    }

    fn credential_for_repository(
        &self,
        registry: &str,
        repository: &str,
    ) -> Result<Option<Credential>, CredentialError> {
        if let Some(name) = self.own_helper(registry) {
            return self.ask_helper(name, registry);
        }
        if let Some(name) = &self.creds_store {
            if let Some(c) = self.ask_helper(name, registry)? {
                return Ok(Some(c));
            }
        }
        self.look_up_auths(registry, repository)
    }
}

/// What one `auths` (or `credHelpers`) key stands for.
#[derive(Debug, PartialEq, Eq)]
enum KeyScope<'a> {
    /// A bare host, `quay.io` (a trailing docker API path, `/v1/` or `/v2/`, ignored).
    Host,
    /// A namespace or repository on the host, `quay.io/team-a` (containers-auth.json).
    Namespace(&'a str),
    /// A URL, `https://index.docker.io/v1/`: docker and podman take it for its whole host,
    /// whatever its path.
    Url,
}

/// The host (as [`registry_key`]) a key is for, and what on that host it covers.
fn key_scope(key: &str) -> (String, KeyScope<'_>) {
    let key = key.trim();
    if key.starts_with("https://") || key.starts_with("http://") {
        return (registry_key(key), KeyScope::Url);
    }
    match key.trim_end_matches('/').split_once('/') {
        Some((host, path)) if !path.is_empty() && path != "v1" && path != "v2" => {
            (registry_key(host), KeyScope::Namespace(path))
        }
        _ => (registry_key(key), KeyScope::Host),
    }
}

/// Whether `key` stands for all of `registry` (in any spelling), as opposed to a
/// namespace on it.
fn is_host_key(key: &str, registry: &str) -> bool {
    let (host, scope) = key_scope(key);
    !matches!(scope, KeyScope::Namespace(_)) && host == registry_key(registry)
}

/// The key in `keys` for `registry` as a whole (used for `credHelpers`, which are per
/// host): an exact match first, then one that names the host in another spelling, then
/// one with a repository path.
fn find_key<'a>(keys: impl Iterator<Item = &'a String> + Clone, key: &str) -> Option<&'a String> {
    keys.clone()
        .find(|k| k.as_str() == key)
        .or_else(|| keys.clone().find(|k| is_host_key(k, key)))
        .or_else(|| keys.clone().find(|k| registry_key(k) == key))
}

/// The `auths` key for `repository` on `registry` (containers-auth.json(5)): the namespace
/// key with the longest path that is `repository` or a whole-segment prefix of it, else a
/// bare host key (the exact spelling first), else a URL key for the host. An empty
/// `repository` (a registry-wide request) matches host and URL keys only.
fn find_auths_key<'a>(
    keys: impl Iterator<Item = &'a String> + Clone,
    registry: &str,
    repository: &str,
) -> Option<&'a String> {
    let host = registry_key(registry);
    let covers = |path: &str| {
        !repository.is_empty()
            && repository
                .strip_prefix(path)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    };
    let namespace = keys
        .clone()
        .filter_map(|k| match key_scope(k) {
            (h, KeyScope::Namespace(path)) if h == host && covers(path) => Some((path.len(), k)),
            _ => None,
        })
        .max_by_key(|(len, _)| *len)
        .map(|(_, k)| k);
    let of_host = |wanted: &KeyScope<'_>| {
        keys.clone()
            .filter(|k| {
                let (h, scope) = key_scope(k);
                h == host && &scope == wanted
            })
            .min_by_key(|k| k.as_str() != host)
    };
    namespace
        .or_else(|| of_host(&KeyScope::Host))
        .or_else(|| of_host(&KeyScope::Url))
}

/// The credential in one `auths` entry; `None` for an empty entry (docker writes `{}` when
/// the secret lives in a helper).
fn decode_entry(entry: &AuthEntry) -> Result<Option<Credential>, String> {
    let (mut username, mut password) = (entry.username.clone(), entry.password.clone());
    if let Some(auth) = entry.auth.as_deref().filter(|a| !a.is_empty()) {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(auth.trim())
            .map_err(|_| "\"auth\" is not base64".to_string())?;
        let text = String::from_utf8(bytes).map_err(|_| "\"auth\" is not UTF-8".to_string())?;
        let (u, p) = text
            .split_once(':')
            .ok_or_else(|| "\"auth\" is not base64 of user:password".to_string())?;
        username = Some(u.to_string());
        password = Some(p.to_string());
    }
    // As docker does: a registry token is used before anything else in the entry.
    if let Some(token) = entry.registrytoken.as_deref().filter(|t| !t.is_empty()) {
        return Ok(Some(Credential::RegistryToken {
            token: Secret::new(token),
        }));
    }
    if let Some(token) = entry.identitytoken.as_deref().filter(|t| !t.is_empty()) {
        return Ok(Some(Credential::IdentityToken {
            username: username.unwrap_or_else(|| "<token>".to_string()),
            token: Secret::new(token),
        }));
    }
    match (username, password) {
        (Some(u), Some(p)) if !u.is_empty() || !p.is_empty() => {
            Ok(Some(Credential::basic(u, Secret::new(p))))
        }
        _ => Ok(None),
    }
}

fn read_limited(path: &Path) -> Result<Option<String>, CredentialError> {
    use std::io::Read;
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(CredentialError::Io {
                action: "reading",
                path: path.to_path_buf(),
                source,
            })
        }
    };
    let mut text = String::new();
    file.take(CONFIG_FILE_LIMIT + 1)
        .read_to_string(&mut text)
        .map_err(|source| CredentialError::Io {
            action: "reading",
            path: path.to_path_buf(),
            source,
        })?;
    if text.len() as u64 > CONFIG_FILE_LIMIT {
        return Err(CredentialError::Parse {
            path: path.to_path_buf(),
            message: format!("larger than {CONFIG_FILE_LIMIT} bytes"),
        });
    }
    Ok(Some(text))
}

/// Where [`store_credential`] put a credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoredIn {
    /// In a credential helper (`docker-credential-NAME`).
    Helper(String),
    /// In the config file itself (base64, readable by its owner only).
    File(PathBuf),
}

/// Stores `credential` for `registry` the way `docker login` does: with the credential
/// helper the config names for it (`credHelpers`, else `credsStore`), else as base64
/// `auth` in the file at `config_path`, written atomically with mode 0600. Other content
/// of the file is kept.
pub fn store_credential(
    config_path: &Path,
    registry: &str,
    credential: &Credential,
) -> Result<StoredIn, CredentialError> {
    let mut doc = read_document(config_path)?;
    let config = DockerConfig::from_document(&doc, config_path)?;
    let key = config_key(registry);
    if let Some(name) = config.helper_for(registry) {
        let program = helper::program(name).map_err(|message| CredentialError::Parse {
            path: config_path.to_path_buf(),
            message,
        })?;
        helper::store(&program, &key, credential)
            .map_err(|f| helper::error(&program, "store", &key, f))?;
        return Ok(StoredIn::Helper(program));
    }
    let auths = auths_of(&mut doc, config_path)?;
    auths.retain(|k, _| !is_host_key(k, registry));
    let mut entry = Map::new();
    match credential {
        Credential::Basic { username, password } => {
            let auth = format!("{username}:{}", password.expose());
            entry.insert(
                "auth".into(),
                base64::engine::general_purpose::STANDARD
                    .encode(auth)
                    .into(),
            );
        }
        Credential::IdentityToken { username, token } => {
            let auth = format!("{username}:");
            entry.insert(
                "auth".into(),
                base64::engine::general_purpose::STANDARD
                    .encode(auth)
                    .into(),
            );
            entry.insert("identitytoken".into(), token.expose().into());
        }
        Credential::RegistryToken { token } => {
            entry.insert("registrytoken".into(), token.expose().into());
        }
    }
    auths.insert(key, Value::Object(entry));
    write_document(config_path, &doc)?;
    Ok(StoredIn::File(config_path.to_path_buf()))
}

/// Removes the credentials for `registry`: from its credential helper, if the config names
/// one, and from the file's `auths` (every key that matches it). Returns whether anything
/// was removed.
pub fn erase_credential(config_path: &Path, registry: &str) -> Result<bool, CredentialError> {
    let mut doc = read_document(config_path)?;
    let config = DockerConfig::from_document(&doc, config_path)?;
    let key = config_key(registry);
    let mut removed = false;
    if let Some(name) = config.helper_for(registry) {
        let program = helper::program(name).map_err(|message| CredentialError::Parse {
            path: config_path.to_path_buf(),
            message,
        })?;
        removed |=
            helper::erase(&program, &key).map_err(|f| helper::error(&program, "erase", &key, f))?;
    }
    if !config_path.exists() {
        return Ok(removed);
    }
    let auths = auths_of(&mut doc, config_path)?;
    let before = auths.len();
    auths.retain(|k, _| !is_host_key(k, registry));
    if auths.len() != before {
        write_document(config_path, &doc)?;
        removed = true;
    }
    Ok(removed)
}

fn read_document(path: &Path) -> Result<Value, CredentialError> {
    match read_limited(path)? {
        None => Ok(Value::Object(Map::new())),
        Some(text) if text.trim().is_empty() => Ok(Value::Object(Map::new())),
        Some(text) => {
            let value: Value = serde_json::from_str(&text).map_err(|e| CredentialError::Parse {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?;
            if value.is_object() {
                Ok(value)
            } else {
                Err(CredentialError::Parse {
                    path: path.to_path_buf(),
                    message: "the top level is not a JSON object".into(),
                })
            }
        }
    }
}

fn auths_of<'a>(
    doc: &'a mut Value,
    path: &Path,
) -> Result<&'a mut Map<String, Value>, CredentialError> {
    let bad = || CredentialError::Parse {
        path: path.to_path_buf(),
        message: "\"auths\" is not a JSON object".into(),
    };
    let obj = doc.as_object_mut().ok_or_else(bad)?;
    let auths = obj
        .entry("auths")
        .or_insert_with(|| Value::Object(Map::new()));
    if auths.is_null() {
        *auths = Value::Object(Map::new());
    }
    auths.as_object_mut().ok_or_else(bad)
}

/// Writes the document next to `path` in a new file readable by its owner only, then
/// renames it over `path`, so a crash never leaves half a file and the secret is never in
/// a world-readable file, not even for a moment.
fn write_document(path: &Path, doc: &Value) -> Result<(), CredentialError> {
    let io = |action, source| CredentialError::Io {
        action,
        path: path.to_path_buf(),
        source,
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    create_private_dir(&dir).map_err(|e| io("creating the folder of", e))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".config.json.")
        .tempfile_in(&dir)
        .map_err(|e| io("creating a temporary file next to", e))?;
    set_owner_only(tmp.path()).map_err(|e| io("setting permissions of", e))?;
    let mut text = serde_json::to_string_pretty(doc).map_err(|e| CredentialError::Parse {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    text.push('\n');
    tmp.write_all(text.as_bytes())
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(|e| io("writing", e))?;
    tmp.persist(path).map_err(|e| io("replacing", e.error))?;
    Ok(())
}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)
}

#[cfg(unix)]
fn set_owner_only(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
}

#[cfg(not(unix))]
fn set_owner_only(_path: &Path) -> std::io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    fn config(json: &str) -> DockerConfig {
        DockerConfig::parse(json, "/test/config.json").unwrap()
    }

    #[test]
    fn reads_auth_entries_by_any_spelling_of_the_host() {
        let c = config(&format!(
            r#"{{"auths":{{
                "https://index.docker.io/v1/":{{"auth":"{}"}},
                "http://localhost:5000":{{"auth":"{}"}},
                "ghcr.io":{{"username":"gh","password":"pat"}},
                "empty.example":{{}}
            }}, "other": {{"kept": true}}}}"#,
            b64("hub:hubpass"),
            b64("me:pa:ss")
        ));
        assert_eq!(
            c.credential("docker.io").unwrap(),
            Some(Credential::basic("hub", "hubpass"))
        );
        assert_eq!(
            c.credential("registry-1.docker.io").unwrap(),
            Some(Credential::basic("hub", "hubpass"))
        );
        // The password is everything after the first colon.
        assert_eq!(
            c.credential("localhost:5000").unwrap(),
            Some(Credential::basic("me", "pa:ss"))
        );
        assert_eq!(
            c.credential("GHCR.io").unwrap(),
            Some(Credential::basic("gh", "pat"))
        );
        assert_eq!(c.credential("empty.example").unwrap(), None);
        assert_eq!(c.credential("localhost:5001").unwrap(), None);
    }

    #[test]
    fn identity_tokens_win_over_the_password() {
        let c = config(&format!(
            r#"{{"auths":{{"myacr.azurecr.io":{{"auth":"{}","identitytoken":"rt-1"}}}}}}"#,
            b64("00000000-0000-0000-0000-000000000000:")
        ));
        let got = c.credential("myacr.azurecr.io").unwrap().unwrap();
        assert_eq!(
            got,
            Credential::IdentityToken {
                username: "00000000-0000-0000-0000-000000000000".into(),
                token: Secret::new("rt-1"),
            }
        );
    }

    /// docker's order: a `registrytoken` beats an `identitytoken` and the password; it is
    /// written back as it was read.
    #[test]
    fn registry_tokens_win_over_everything_and_round_trip() {
        let c = config(&format!(
            r#"{{"auths":{{"r.example":{{"auth":"{}","identitytoken":"rt-1","registrytoken":"reg-1"}}}}}}"#,
            b64("u:p")
        ));
        let got = c.credential("r.example").unwrap().unwrap();
        let want = Credential::RegistryToken {
            token: Secret::new("reg-1"),
        };
        assert_eq!(got, want);
        assert!(!format!("{got:?}").contains("reg-1"), "{got:?}");

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        store_credential(&path, "r.example", &want).unwrap();
        let doc: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(doc["auths"]["r.example"]["registrytoken"], "reg-1");
        let loaded = DockerConfig::load(&path).unwrap();
        assert_eq!(loaded.credential("r.example").unwrap(), Some(want));
    }

    /// The username of the credential `c` gives for `repository` on `registry`.
    fn user_for(c: &DockerConfig, registry: &str, repository: &str) -> Option<String> {
        c.credential_for_repository(registry, repository)
            .unwrap()
            .map(|c| c.username().to_string())
    }

    /// `{"auths":{KEY:{"auth":base64("USER:pw")}, …}}` for each (key, user).
    fn keyed(entries: &[(&str, &str)]) -> DockerConfig {
        let auths: Vec<String> = entries
            .iter()
            .map(|(key, user)| format!(r#""{key}":{{"auth":"{}"}}"#, b64(&format!("{user}:pw"))))
            .collect();
        config(&format!(r#"{{"auths":{{{}}}}}"#, auths.join(",")))
    }

    #[test]
    fn the_most_specific_namespace_key_wins() {
        let c = keyed(&[
            ("quay.io", "host"),
            ("quay.io/team-a", "a"),
            ("quay.io/team-a/app", "a-app"),
            ("quay.io/team-a/app/x", "a-app-x"),
            ("quay.io/team-b", "b"),
        ]);
        let user = |repository| user_for(&c, "quay.io", repository);
        assert_eq!(user("team-a/app/x").as_deref(), Some("a-app-x"));
        assert_eq!(user("team-a/app/y").as_deref(), Some("a-app"));
        assert_eq!(user("team-a/app").as_deref(), Some("a-app"));
        assert_eq!(user("team-a/other").as_deref(), Some("a"));
        assert_eq!(user("team-b/app/x").as_deref(), Some("b"));
        assert_eq!(user("team-c/app").as_deref(), Some("host"));
        // Registry-wide requests, and the registry-only lookup, get the host's.
        assert_eq!(user("").as_deref(), Some("host"));
        assert_eq!(c.credential("quay.io").unwrap().unwrap().username(), "host");
        // The host matches in any spelling.
        assert_eq!(user_for(&c, "Quay.IO", "team-a/x").as_deref(), Some("a"));
        assert_eq!(user_for(&c, "ghcr.io", "team-a/x"), None);
    }

    #[test]
    fn namespaces_match_whole_path_segments_only() {
        let c = keyed(&[("quay.io/team", "team"), ("quay.io/team-a/app", "a-app")]);
        let user = |repository| user_for(&c, "quay.io", repository);
        assert_eq!(user("team/x").as_deref(), Some("team"));
        assert_eq!(user("team").as_deref(), Some("team"));
        assert_eq!(user("team-a/x"), None, "quay.io/team is not team-a's");
        assert_eq!(
            user("team-a/app2"),
            None,
            "quay.io/team-a/app is not app2's"
        );
        assert_eq!(user("team-a/app/x").as_deref(), Some("a-app"));
        // A namespace's credential is never the whole registry's.
        assert_eq!(user(""), None);
        assert_eq!(c.credential("quay.io").unwrap(), None);
    }

    /// Keys written as URLs are docker's (and read by podman) as the whole host, whatever
    /// the path; a bare host key comes first, a namespace key before both.
    #[test]
    fn url_keys_stand_for_their_whole_host() {
        let c = keyed(&[
            ("https://quay.io/team-a", "url"),
            ("quay.io/team-b", "b"),
            ("http://r.example:5000", "r-url"),
            ("r.example:5000", "r-host"),
            ("s.example/v2/", "s-api-path"),
        ]);
        assert_eq!(user_for(&c, "quay.io", "team-a/x").as_deref(), Some("url"));
        assert_eq!(user_for(&c, "quay.io", "team-c/x").as_deref(), Some("url"));
        assert_eq!(user_for(&c, "quay.io", "team-b/x").as_deref(), Some("b"));
        assert_eq!(
            user_for(&c, "r.example:5000", "x").as_deref(),
            Some("r-host")
        );
        assert_eq!(user_for(&c, "r.example:5001", "x"), None);
        // docker's API path on a bare host is no namespace.
        assert_eq!(
            user_for(&c, "s.example", "any/thing").as_deref(),
            Some("s-api-path")
        );
    }

    #[test]
    fn docker_hub_keys_serve_every_hub_name_and_its_namespaces() {
        let c = keyed(&[
            ("https://index.docker.io/v1/", "hub"),
            ("docker.io/team-a", "a"),
        ]);
        for host in ["docker.io", "registry-1.docker.io", "index.docker.io"] {
            assert_eq!(
                user_for(&c, host, "library/python").as_deref(),
                Some("hub"),
                "{host}"
            );
            assert_eq!(
                user_for(&c, host, "team-a/app").as_deref(),
                Some("a"),
                "{host}"
            );
        }
        assert_eq!(
            c.credential("docker.io").unwrap().unwrap().username(),
            "hub"
        );
    }

    /// The CLI asks through a chain: the repository must reach the file behind it.
    #[test]
    fn a_chain_passes_the_repository_on() {
        let chain = crate::auth::CredentialChain::new()
            .then(crate::auth::StaticCredentials::new())
            .then(keyed(&[("quay.io/team-a", "a"), ("quay.io/team-b", "b")]));
        let user = |repository| {
            chain
                .credential_for_repository("quay.io", repository)
                .unwrap()
                .map(|c| c.username().to_string())
        };
        assert_eq!(user("team-a/x").as_deref(), Some("a"));
        assert_eq!(user("team-b/x").as_deref(), Some("b"));
        assert_eq!(chain.credential("quay.io").unwrap(), None);
    }

    #[test]
    fn helpers_are_chosen_per_host_then_by_default() {
        let c = config(
            r#"{"credsStore":"desktop","credHelpers":{"gcr.io":"gcloud","https://index.docker.io/v1/":"hub"}}"#,
        );
        assert_eq!(c.helper_for("gcr.io"), Some("gcloud"));
        assert_eq!(c.helper_for("docker.io"), Some("hub"));
        assert_eq!(c.helper_for("ghcr.io"), Some("desktop"));
        assert_eq!(config(r#"{"credsStore":""}"#).helper_for("ghcr.io"), None);
        assert_eq!(config("{}").helper_for("ghcr.io"), None);
    }

    #[test]
    fn a_missing_helper_is_skipped_and_the_file_still_answers() {
        let c = config(&format!(
            r#"{{"credsStore":"ocisdk-test-surely-not-installed","auths":{{"r.example":{{"auth":"{}"}}}}}}"#,
            b64("u:p")
        ));
        assert_eq!(
            c.credential("r.example").unwrap(),
            Some(Credential::basic("u", "p"))
        );
    }

    #[test]
    fn bad_files_and_entries_are_errors_without_secrets() {
        let err = DockerConfig::parse(r#"{"auths": {"x": {"auth": 5}}}"#, "/c.json").unwrap_err();
        assert!(matches!(err, CredentialError::Parse { .. }), "{err}");
        let c = config(r#"{"auths":{"x.example":{"auth":"%%%not-base64-secret"}}}"#);
        let err = c.credential("x.example").unwrap_err().to_string();
        assert!(err.contains("x.example") && err.contains("base64"), "{err}");
        assert!(!err.contains("not-base64-secret"), "{err}");
        let c = config(&format!(
            r#"{{"auths":{{"x.example":{{"auth":"{}"}}}}}}"#,
            b64("nocolon")
        ));
        assert!(c.credential("x.example").is_err());
        assert!(config("").credential("x").unwrap().is_none());
        assert!(config(r#"{"auths":null}"#)
            .credential("x")
            .unwrap()
            .is_none());
        let debug = format!(
            "{:?}",
            config(&format!(
                r#"{{"auths":{{"x":{{"auth":"{}"}}}}}}"#,
                b64("u:topsecret")
            ))
        );
        assert!(!debug.contains(&b64("u:topsecret")), "{debug}");
    }

    #[test]
    fn store_and_erase_keep_other_content_and_private_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/config.json");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(
            &path,
            r#"{"auths":{"http://localhost:5000":{"auth":"b2xkOm9sZA=="},"keep.example":{}},"psFormat":"x"}"#,
        )
        .unwrap();
        let stored =
            store_credential(&path, "localhost:5000", &Credential::basic("u", "p")).unwrap();
        assert_eq!(stored, StoredIn::File(path.clone()));
        let doc: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(doc["psFormat"], "x");
        assert_eq!(doc["auths"]["localhost:5000"]["auth"], b64("u:p"));
        assert!(doc["auths"].get("http://localhost:5000").is_none());
        assert!(doc["auths"].get("keep.example").is_some());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        let loaded = DockerConfig::load(&path).unwrap();
        assert_eq!(
            loaded.credential("localhost:5000").unwrap(),
            Some(Credential::basic("u", "p"))
        );
        assert!(erase_credential(&path, "http://localhost:5000/").unwrap());
        assert!(!erase_credential(&path, "localhost:5000").unwrap());
        assert!(DockerConfig::load(&path)
            .unwrap()
            .credential("localhost:5000")
            .unwrap()
            .is_none());

        let fresh = dir.path().join("new/dir/config.json");
        store_credential(&fresh, "docker.io", &Credential::basic("h", "p")).unwrap();
        let doc: Value = serde_json::from_str(&std::fs::read_to_string(&fresh).unwrap()).unwrap();
        assert_eq!(
            doc["auths"][crate::auth::DOCKER_HUB_KEY]["auth"],
            b64("h:p")
        );
        assert!(!erase_credential(&dir.path().join("none.json"), "x").unwrap());
    }

    /// `login HOST` writes, and `logout HOST` removes, the host's key only: a podman
    /// namespace key on that host is another credential and stays.
    #[test]
    fn login_and_logout_leave_namespace_keys_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("auth.json");
        std::fs::write(
            &path,
            format!(
                r#"{{"auths":{{"quay.io/team-a":{{"auth":"{}"}},"https://quay.io":{{"auth":"{}"}}}}}}"#,
                b64("a:pa"),
                b64("old:po")
            ),
        )
        .unwrap();
        store_credential(&path, "quay.io", &Credential::basic("host", "ph")).unwrap();
        let doc: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let keys: Vec<&String> = doc["auths"].as_object().unwrap().keys().collect();
        assert_eq!(keys, ["quay.io", "quay.io/team-a"]);
        assert!(erase_credential(&path, "quay.io").unwrap());
        let loaded = DockerConfig::load(&path).unwrap();
        assert_eq!(
            user_for(&loaded, "quay.io", "team-a/x").as_deref(),
            Some("a")
        );
        assert_eq!(loaded.credential("quay.io").unwrap(), None);
    }
}
