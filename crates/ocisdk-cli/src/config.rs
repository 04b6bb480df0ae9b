//! The configuration file (`OCISDK_CONFIG`, else `$XDG_CONFIG_HOME/ocisdk/config.toml` or
//! `~/.config/ocisdk/config.toml`) and the effective settings: flag > environment > file >
//! default, each remembering its source.
//!
//! ```toml
//! # Keys outside a table go before the first one: after [network] they would be its own.
//! cache_dir = "/var/cache/ocisdk"
//! mirrors = ["http://mirror.internal:5000"]
//! safe_folders = ["/__w"]
//!
//! [sdk]
//! registry = "https://mcr.microsoft.com"
//! prefix = "oryx"
//! repo_template = "{prefix}/{platform}-sdk"
//! os = "bookworm"
//! root = "/tmp/oryx/platforms"
//!
//! [network]
//! retries = 4
//! retry_max_wait = 60
//! stall_timeout = 30
//! jobs = 8
//! chunks = 1
//!
//! [registries."registry.internal:5000"]
//! plain_http = true
//! insecure = false
//! ca_file = "/etc/ssl/internal-ca.pem"
//! ```

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};

use ocisdk::Error;
use serde::{Deserialize, Serialize};

/// The file's contents; every field is optional.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// The SDK catalogue.
    #[serde(default)]
    pub sdk: SdkSection,
    /// Retries, timeouts, concurrency.
    #[serde(default)]
    pub network: NetworkSection,
    /// Where downloads and tarballs are cached.
    pub cache_dir: Option<PathBuf>,
    /// Mirrors tried before the upstream, as `--mirror` takes them.
    #[serde(default)]
    pub mirrors: Vec<String>,
    /// Folders whose install roots and cache folders are used without the ownership checks
    /// (git's `safe.directory`).
    #[serde(default)]
    pub safe_folders: Vec<PathBuf>,
    /// Per-registry options, keyed by host (with port).
    #[serde(default)]
    pub registries: BTreeMap<String, RegistrySection>,
}

/// `[sdk]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SdkSection {
    pub registry: Option<String>,
    pub prefix: Option<String>,
    pub repo_template: Option<String>,
    pub os: Option<String>,
    pub root: Option<PathBuf>,
}

/// `[network]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkSection {
    pub retries: Option<u32>,
    pub retry_max_wait: Option<u64>,
    pub stall_timeout: Option<u64>,
    /// Installs run at once (`sdk install`, `sdk sync`), and blobs moved at once (`copy`,
    /// `sdk mirror`).
    pub jobs: Option<usize>,
    pub chunks: Option<usize>,
}

/// `[registries."HOST"]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RegistrySection {
    pub plain_http: Option<bool>,
    pub insecure: Option<bool>,
    pub ca_file: Option<PathBuf>,
}

/// Where a setting's value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Flag,
    Env(&'static str),
    File(PathBuf),
    Default,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Flag => f.write_str("flag"),
            Source::Env(name) => write!(f, "env {name}"),
            Source::File(path) => write!(f, "file {}", path.display()),
            Source::Default => f.write_str("default"),
        }
    }
}

/// A value and where it came from.
#[derive(Debug, Clone)]
pub struct Setting<T> {
    pub value: T,
    pub source: Source,
}

/// The loaded file (empty when there is none) and its path.
#[derive(Debug, Clone, Default)]
pub struct Loaded {
    pub file: ConfigFile,
    pub path: Option<PathBuf>,
    /// The file looked for when `OCISDK_CONFIG` is unset (`$XDG_CONFIG_HOME/ocisdk/…` or
    /// `~/.config/ocisdk/…`), whether it exists or not; none without either variable.
    pub default_path: Option<PathBuf>,
}

impl Loaded {
    /// Reads `OCISDK_CONFIG` (which must exist), else `$XDG_CONFIG_HOME/ocisdk/config.toml`
    /// or `~/.config/ocisdk/config.toml` (optional).
    pub fn from_environment() -> anyhow::Result<Loaded> {
        if let Some(path) = env_path("OCISDK_CONFIG") {
            return Ok(Loaded {
                file: read(&path)?,
                path: Some(path),
                default_path: None,
            });
        }
        let default = env_path("XDG_CONFIG_HOME")
            .or_else(|| env_path("HOME").map(|h| h.join(".config")))
            .map(|dir| dir.join("ocisdk").join("config.toml"));
        match default {
            Some(path) if path.is_file() => Ok(Loaded {
                file: read(&path)?,
                path: Some(path.clone()),
                default_path: Some(path),
            }),
            _ => Ok(Loaded {
                default_path: default,
                ..Loaded::default()
            }),
        }
    }

    /// Picks flag > environment variables (in order) > file > default.
    pub fn pick<T: Clone>(
        &self,
        flag: Option<T>,
        vars: &[&'static str],
        parse: impl Fn(OsString) -> Option<T>,
        file: impl Fn(&ConfigFile) -> Option<T>,
        default: T,
    ) -> Setting<T> {
        if let Some(value) = flag {
            return Setting {
                value,
                source: Source::Flag,
            };
        }
        for var in vars {
            let Some(raw) = std::env::var_os(var).filter(|v| !v.is_empty()) else {
                continue;
            };
            // A path may be any bytes (`parse` takes them as they are); a text setting that
            // is not UTF-8 would be read wrong, so it is not read, but not in silence either.
            let unicode = raw.to_str().is_some();
            if let Some(value) = parse(raw.clone()) {
                return Setting {
                    value,
                    source: Source::Env(var),
                };
            }
            if !unicode {
                tracing::warn!("{var} is not valid UTF-8 ({raw:?}): ignored");
            }
        }
        if let (Some(value), Some(path)) = (file(&self.file), &self.path) {
            return Setting {
                value,
                source: Source::File(path.clone()),
            };
        }
        Setting {
            value: default,
            source: Source::Default,
        }
    }
}

fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

fn read(path: &Path) -> anyhow::Result<ConfigFile> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Error::InvalidInput(format!(
            "cannot read the configuration file {}: {e}",
            path.display()
        ))
    })?;
    toml::from_str(&text).map_err(|e| {
        Error::InvalidInput(format!("configuration file {}: {e}", path.display())).into()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_section_and_rejects_unknown_keys() {
        let file: ConfigFile = toml::from_str(
            r#"
            cache_dir = "/c"
            mirrors = ["http://m:5000"]
            [sdk]
            registry = "http://r:5000"
            os = "noble"
            [network]
            retries = 2
            [registries."r:5000"]
            plain_http = true
            "#,
        )
        .unwrap();
        assert_eq!(file.sdk.registry.as_deref(), Some("http://r:5000"));
        assert_eq!(file.network.retries, Some(2));
        assert_eq!(file.registries["r:5000"].plain_http, Some(true));
        assert_eq!(file.mirrors, ["http://m:5000"]);
        assert!(toml::from_str::<ConfigFile>("[sdk]\nregistri = \"x\"").is_err());
    }

    #[test]
    fn precedence_is_flag_env_file_default() {
        let loaded = Loaded {
            file: ConfigFile {
                network: NetworkSection {
                    retries: Some(7),
                    ..NetworkSection::default()
                },
                ..ConfigFile::default()
            },
            path: Some(PathBuf::from("/etc/x.toml")),
            default_path: None,
        };
        let file = |f: &ConfigFile| f.network.retries;
        let parse = |s: OsString| s.to_str()?.parse().ok();
        let flag = loaded.pick(Some(1), &[], parse, file, 4);
        assert_eq!((flag.value, flag.source), (1, Source::Flag));
        let from_file = loaded.pick(None, &[], parse, file, 4);
        assert_eq!(from_file.value, 7);
        assert_eq!(from_file.source, Source::File(PathBuf::from("/etc/x.toml")));
        let default = Loaded::default().pick(None, &[], parse, file, 4);
        assert_eq!((default.value, default.source), (4, Source::Default));
    }
}
