//! The effective settings of a run: each from its flag, else the environment, else the
//! configuration file, else the default — and each remembering which (`config-show`).

use std::ffi::OsString;
use std::path::PathBuf;

use ocisdk::registry::Mirror;
use ocisdk::sdk::{
    CatalogueSettings, DEFAULT_OS, DEFAULT_PREFIX, DEFAULT_REGISTRY, DEFAULT_REPO_TEMPLATE,
    DEFAULT_ROOT,
};
use serde_json::json;

use crate::cli::{CatalogueArgs, GlobalArgs};
use crate::config::{Loaded, Setting, Source};

/// Network and cache settings.
pub struct Network {
    pub retries: Setting<u32>,
    pub retry_max_wait: Setting<u64>,
    pub stall_timeout: Setting<u64>,
    pub chunks: Setting<usize>,
    pub jobs: Setting<usize>,
    pub cache_dir: Setting<PathBuf>,
    pub mirrors: Setting<Vec<Mirror>>,
}

/// The SDK catalogue's settings.
pub struct Catalogue {
    pub registry: Setting<String>,
    pub prefix: Setting<String>,
    pub repo_template: Setting<String>,
    pub os: Setting<String>,
    pub root: Setting<PathBuf>,
    pub safe_folders: Setting<Vec<PathBuf>>,
}

/// A text setting from the environment; `None` (ignored, with a warning) unless UTF-8.
fn text(s: OsString) -> Option<String> {
    s.into_string().ok()
}

fn number<T: std::str::FromStr>(s: OsString) -> Option<T> {
    s.to_str()?.parse().ok()
}

/// A path from the environment, any bytes: Linux paths need not be UTF-8.
fn path(s: OsString) -> Option<PathBuf> {
    Some(PathBuf::from(s))
}

/// How many installs `sdk install` and `sdk sync` run at once when neither `--jobs` nor
/// the file says.
pub const INSTALL_JOBS: usize = 8;
/// How many blobs `copy` and `sdk mirror` move at once when neither `--jobs` nor the file
/// says: fewer than installs, since each is a whole blob in flight between two ends.
pub const COPY_JOBS: usize = 4;

/// `jobs` for a command whose own default is `default`: its `--jobs` (`flag`), else the
/// file's `[network] jobs`, else `default`. There is no environment variable.
pub fn jobs(g: &GlobalArgs, flag: Option<usize>, default: usize) -> Setting<usize> {
    g.config
        .pick(flag, &[], number, |f| f.network.jobs, default)
}

/// Network settings; `jobs_flag` is the command's `--jobs`, when it has one (`jobs` is then
/// an install's: see [`jobs`] for the commands whose default differs).
pub fn network(g: &GlobalArgs, jobs_flag: Option<usize>) -> anyhow::Result<Network> {
    let c = &g.config;
    let file_mirrors = c
        .file
        .mirrors
        .iter()
        .map(|m| {
            m.parse::<Mirror>().map_err(|e| {
                ocisdk::Error::InvalidInput(format!(
                    "mirror \"{m}\" in the configuration file: {e}"
                ))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let flag_mirrors = (!g.mirror.is_empty()).then(|| g.mirror.clone());
    let cache_dir = c.pick(
        None,
        &["OCISDK_CACHE_DIR"],
        path,
        |f| f.cache_dir.clone(),
        default_cache_dir(),
    );
    if cache_dir.value == shared_temp_cache_dir() {
        ensure_private(&cache_dir.value)?;
    }
    Ok(Network {
        retries: c.pick(g.retries, &[], number, |f| f.network.retries, 4),
        retry_max_wait: c.pick(
            g.retry_max_wait,
            &[],
            number,
            |f| f.network.retry_max_wait,
            60,
        ),
        stall_timeout: c.pick(
            g.stall_timeout,
            &[],
            number,
            |f| f.network.stall_timeout,
            30,
        ),
        chunks: c.pick(g.chunks, &[], number, |f| f.network.chunks, 1),
        jobs: jobs(g, jobs_flag, INSTALL_JOBS),
        cache_dir,
        mirrors: c.pick(
            flag_mirrors,
            &[],
            |_| None,
            |f| (!f.mirrors.is_empty()).then(|| file_mirrors.clone()),
            Vec::new(),
        ),
    })
}

/// `$XDG_CACHE_HOME/ocisdk`, else `~/.cache/ocisdk`, else (no home at all) a folder of
/// this user's in the temporary folder.
fn default_cache_dir() -> PathBuf {
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    env("XDG_CACHE_HOME")
        .map(|p| p.join("ocisdk"))
        .or_else(|| env("HOME").map(|p| p.join(".cache").join("ocisdk")))
        .unwrap_or_else(shared_temp_cache_dir)
}

/// `{temp}/ocisdk-cache-{uid}`: in a folder every user can write to, so it must be made
/// private before it is trusted ([`ensure_private`]).
fn shared_temp_cache_dir() -> PathBuf {
    // SAFETY: getuid has no preconditions and cannot fail.
    let uid = unsafe { libc::getuid() };
    std::env::temp_dir().join(format!("ocisdk-cache-{uid}"))
}

/// Makes `dir` (mode 0700) unless it exists, then checks that it is this user's and that
/// no one else can write to it: the cache vouches for the tarballs an install unpacks, so
/// another user who made the folder first could plant SDKs in it.
fn ensure_private(dir: &std::path::Path) -> anyhow::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    let _ = std::fs::DirBuilder::new().mode(0o700).create(dir);
    // SAFETY: as above.
    let uid = unsafe { libc::getuid() };
    let private = std::fs::symlink_metadata(dir)
        .is_ok_and(|m| m.is_dir() && m.uid() == uid && m.mode() & 0o022 == 0);
    if !private {
        return Err(ocisdk::Error::InvalidInput(format!(
            "the cache folder {} is not a private folder of this user's (there is no HOME to \
             put it in): set OCISDK_CACHE_DIR or HOME",
            dir.display()
        ))
        .into());
    }
    Ok(())
}

/// The catalogue settings (flags only exist under `ocisdk sdk`).
pub fn catalogue(config: &Loaded, args: Option<&CatalogueArgs>) -> Catalogue {
    let flag = |f: fn(&CatalogueArgs) -> &Option<String>| args.and_then(|a| f(a).clone());
    Catalogue {
        registry: config.pick(
            flag(|a| &a.registry),
            &["OCISDK_REGISTRY", "ORYX_ACR_SDK_REGISTRY_URL"],
            text,
            |f| f.sdk.registry.clone(),
            DEFAULT_REGISTRY.to_string(),
        ),
        prefix: config.pick(
            flag(|a| &a.prefix),
            &["OCISDK_REPOSITORY_PREFIX", "ORYX_ACR_SDK_REPOSITORY_PREFIX"],
            text,
            |f| f.sdk.prefix.clone(),
            DEFAULT_PREFIX.to_string(),
        ),
        repo_template: config.pick(
            flag(|a| &a.repo_template),
            &[],
            text,
            |f| f.sdk.repo_template.clone(),
            DEFAULT_REPO_TEMPLATE.to_string(),
        ),
        os: config.pick(
            flag(|a| &a.os),
            &["DEBIAN_FLAVOR"],
            text,
            |f| f.sdk.os.clone(),
            DEFAULT_OS.to_string(),
        ),
        root: config.pick(
            args.and_then(|a| a.root.clone()),
            &["DYNAMIC_INSTALL_ROOT_DIR"],
            path,
            |f| f.sdk.root.clone(),
            PathBuf::from(DEFAULT_ROOT),
        ),
        safe_folders: config.pick(
            None,
            &["OCISDK_SAFE_FOLDERS"],
            |s| {
                Some(
                    std::env::split_paths(&s)
                        .filter(|p| !p.as_os_str().is_empty())
                        .collect(),
                )
            },
            |f| (!f.safe_folders.is_empty()).then(|| f.safe_folders.clone()),
            Vec::new(),
        ),
    }
}

impl Catalogue {
    /// The library's settings.
    pub fn to_settings(&self, cache_dir: PathBuf) -> CatalogueSettings {
        CatalogueSettings {
            registry: self.registry.value.clone(),
            prefix: self.prefix.value.clone(),
            repo_template: self.repo_template.value.clone(),
            os: self.os.value.clone(),
            root: self.root.value.clone(),
            cache_dir,
            safe_folders: self.safe_folders.value.clone(),
        }
    }
}

/// Every effective setting as (name, value, source) rows, for `config-show`.
pub fn rows(g: &GlobalArgs) -> anyhow::Result<Vec<(String, String, Source)>> {
    let n = network(g, None)?;
    let c = catalogue(&g.config, None);
    let mut rows = Vec::new();
    let mut add = |name: &str, value: String, source: &Source| {
        rows.push((name.to_string(), value, source.clone()))
    };
    add("registry", c.registry.value.clone(), &c.registry.source);
    add("prefix", c.prefix.value.clone(), &c.prefix.source);
    add(
        "repo_template",
        c.repo_template.value.clone(),
        &c.repo_template.source,
    );
    add("os", c.os.value.clone(), &c.os.source);
    add("root", c.root.value.display().to_string(), &c.root.source);
    add(
        "cache_dir",
        n.cache_dir.value.display().to_string(),
        &n.cache_dir.source,
    );
    add("retries", n.retries.value.to_string(), &n.retries.source);
    add(
        "retry_max_wait",
        n.retry_max_wait.value.to_string(),
        &n.retry_max_wait.source,
    );
    add(
        "stall_timeout",
        n.stall_timeout.value.to_string(),
        &n.stall_timeout.source,
    );
    add("jobs", n.jobs.value.to_string(), &n.jobs.source);
    add("chunks", n.chunks.value.to_string(), &n.chunks.source);
    let mirrors: Vec<String> = n.mirrors.value.iter().map(|m| m.to_string()).collect();
    add("mirrors", mirrors.join(", "), &n.mirrors.source);
    let safe: Vec<String> = c
        .safe_folders
        .value
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    add("safe_folders", safe.join(":"), &c.safe_folders.source);
    for (host, options) in &g.config.file.registries {
        let source = g
            .config
            .path
            .clone()
            .map(Source::File)
            .unwrap_or(Source::Default);
        add(
            &format!("registries.\"{host}\""),
            serde_json::to_string(options)?,
            &source,
        );
    }
    Ok(rows)
}

/// `config-show --json`: `{"config_file": …, "settings": {name: {"value", "source"}}}`.
pub fn rows_json(g: &GlobalArgs) -> anyhow::Result<serde_json::Value> {
    let mut settings = serde_json::Map::new();
    for (name, value, source) in rows(g)? {
        settings.insert(
            name,
            json!({ "value": value, "source": source.to_string() }),
        );
    }
    let config_file = g
        .config
        .path
        .as_deref()
        .map(std::path::Path::to_string_lossy);
    Ok(json!({ "config_file": config_file, "settings": settings }))
}
