//! docker's `config.json` and the containers `auth.json` (podman, skopeo, buildah): the same
//! `auths` / `credHelpers` / `credsStore` shape, read from a path the caller chose.
//! <https://docs.docker.com/reference/cli/docker/login/#credential-stores>

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

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
/// Keys match with [`registry_key`]: scheme and path are ignored, so
/// `https://index.docker.io/v1/` is Docker Hub, and a podman key with a repository path
/// (`quay.io/team`) applies to its whole host, after any key for the bare host.
#[derive(Debug, Clone, Default)]
pub struct DockerConfig {
    path: PathBuf,
    auths: BTreeMap<String, AuthEntry>,
    cred_helpers: BTreeMap<String, String>,
    creds_store: Option<String>,
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
        match helper::get(&program, &server) {
            Ok(c) => Ok(c),
            Err(HelperFailure::Missing) => {
                tracing::warn!(
                    "credential helper {program} (named in {}) is not installed; going on without it",
                    self.path.display()
                );
                Ok(None)
            }
            Err(failure) => Err(helper::error(&program, "get", &server, failure)),
        }
    }

    fn look_up_auths(&self, registry: &str) -> Result<Option<Credential>, CredentialError> {
        let key = registry_key(registry);
        let Some(found) = find_key(self.auths.keys(), &key) else {
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
    fn credential(&self, registry: &str) -> Result<Option<Credential>, CredentialError> {
        if let Some(name) = self.own_helper(registry) {
            return self.ask_helper(name, registry);
        }
        if let Some(name) = &self.creds_store {
            if let Some(c) = self.ask_helper(name, registry)? {
                return Ok(Some(c));
            }
        }
        self.look_up_auths(registry)
    }
}

/// Whether a key carries a repository path (podman's `quay.io/team`), beyond docker's
/// `/v1/` or `/v2/`.
fn has_path(key: &str) -> bool {
    let rest = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    rest.trim_end_matches('/')
        .split_once('/')
        .is_some_and(|(_, path)| !path.is_empty() && path != "v1" && path != "v2")
}

/// Whether `key` is `registry`'s own key, in any spelling (but not a key with a path).
fn is_host_key(key: &str, registry: &str) -> bool {
    !has_path(key) && registry_key(key) == registry_key(registry)
}

/// The key in `keys` for registry key `key`: an exact match first, then one that matches
/// as a bare host (any scheme), then one with a repository path.
fn find_key<'a>(keys: impl Iterator<Item = &'a String> + Clone, key: &str) -> Option<&'a String> {
    keys.clone()
        .find(|k| k.as_str() == key)
        .or_else(|| keys.clone().find(|k| is_host_key(k, key)))
        .or_else(|| keys.clone().find(|k| registry_key(k) == key))
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

    #[test]
    fn exact_and_host_keys_beat_keys_with_a_path() {
        let c = config(&format!(
            r#"{{"auths":{{"quay.io/team/repo":{{"auth":"{}"}},"quay.io":{{"auth":"{}"}}}}}}"#,
            b64("team:t"),
            b64("host:h")
        ));
        assert_eq!(c.credential("quay.io").unwrap().unwrap().username(), "host");
        let only_path = config(&format!(
            r#"{{"auths":{{"quay.io/team":{{"auth":"{}"}}}}}}"#,
            b64("team:t")
        ));
        assert_eq!(
            only_path.credential("quay.io").unwrap().unwrap().username(),
            "team"
        );
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
}
