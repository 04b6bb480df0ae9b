//! The configuration of the `ocisdk` binary: the file (`OCISDK_CONFIG`, else
//! `$XDG_CONFIG_HOME/ocisdk/config.toml`, else `~/.config/ocisdk/config.toml`), the
//! environment and the flags, with the precedence flag > environment > file > default.
//!
//! `ocisdk config-show --json` reports every setting as `{"value", "source"}` (`flag`,
//! `env NAME`, `file PATH`, `default`); these tests read it, and check behaviour too: a
//! registry named only in the file is the one asked, an environment variable overrides it, a
//! flag overrides both, and `[network] retries` decides how many requests a failing call
//! makes (counted by a [`ScriptedServer`] answering 503).
//!
//! Every run is hermetic: `HOME`, `XDG_CONFIG_HOME`, `XDG_CACHE_HOME` and `OCISDK_CACHE_DIR`
//! point into a private temp folder and every variable the CLI reads is removed.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use ocisdk_testkit::cli::{self, Run};
use ocisdk_testkit::{tar_gz_of, Registry, ScriptedResponse, ScriptedServer};
use serde_json::Value;
use tempfile::TempDir;

// ---------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------

/// Every setting `config-show` reports (besides `registries."HOST"` rows).
const SETTINGS: [&str; 13] = [
    "registry",
    "prefix",
    "repo_template",
    "os",
    "root",
    "cache_dir",
    "retries",
    "retry_max_wait",
    "stall_timeout",
    "jobs",
    "chunks",
    "mirrors",
    "safe_folders",
];

/// A private temp folder: `home/` (HOME), `config/` (XDG_CONFIG_HOME), `xdg-cache/`
/// (XDG_CACHE_HOME), `cache/` (OCISDK_CACHE_DIR), `work/` (the current folder of every run).
struct Sandbox {
    dir: TempDir,
}

impl Sandbox {
    fn new() -> Sandbox {
        let dir = tempfile::Builder::new()
            .prefix("ocisdk-config-")
            .tempdir()
            .expect("temp dir");
        for sub in ["home", "config", "xdg-cache", "cache", "work"] {
            fs::create_dir(dir.path().join(sub)).unwrap();
        }
        Sandbox { dir }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Where the CLI looks for its file: `$XDG_CONFIG_HOME/ocisdk/config.toml`.
    fn default_file(&self) -> PathBuf {
        self.path("config/ocisdk/config.toml")
    }

    /// Writes `text` to `rel` (parents created) and returns its path.
    fn write(&self, rel: &str, text: &str) -> PathBuf {
        let path = self.path(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, text).unwrap();
        path
    }

    /// Writes the default configuration file.
    fn write_config(&self, text: &str) -> PathBuf {
        let path = self.default_file();
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, text).unwrap();
        path
    }

    /// `ocisdk ARGS…` with the hermetic environment, then `set` added and `unset` removed.
    fn command(&self, args: &[&str], set: &[(&str, &str)], unset: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ocisdk"));
        cmd.args(args)
            .current_dir(self.path("work"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cli::scrub(&mut cmd);
        cmd.env("HOME", self.path("home"))
            .env("XDG_CONFIG_HOME", self.path("config"))
            .env("XDG_CACHE_HOME", self.path("xdg-cache"))
            .env("OCISDK_CACHE_DIR", self.path("cache"));
        for (k, v) in set {
            cmd.env(k, v);
        }
        for k in unset {
            cmd.env_remove(k);
        }
        cmd
    }

    fn run_with(&self, args: &[&str], set: &[(&str, &str)], unset: &[&str]) -> Run {
        let Output {
            status,
            stdout,
            stderr,
        } = self.command(args, set, unset).output().expect("run ocisdk");
        Run {
            code: status.code().expect("ocisdk was killed by a signal"),
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        }
    }

    fn run(&self, args: &[&str]) -> Run {
        self.run_with(args, &[], &[])
    }

    /// `config-show --json` with extra `args` and environment: the `settings` object and
    /// the `config_file`.
    #[track_caller]
    fn settings(&self, args: &[&str], set: &[(&str, &str)], unset: &[&str]) -> (Value, Value) {
        let mut all = vec!["config-show", "--json"];
        all.extend_from_slice(args);
        let json = self.run_with(&all, set, unset).success().json();
        (json["settings"].clone(), json["config_file"].clone())
    }
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("UTF-8 temp path")
}

/// `file PATH`, the source of a value read from `path`.
fn from_file(path: &Path) -> String {
    format!("file {}", path.display())
}

/// Asserts that setting `name` is `value`, taken from `source`.
#[track_caller]
fn assert_setting(settings: &Value, name: &str, value: &str, source: &str) {
    let setting = &settings[name];
    assert_eq!(
        (setting["value"].as_str(), setting["source"].as_str()),
        (Some(value), Some(source)),
        "setting {name} in {settings:#}"
    );
}

/// A configuration file setting every key.
fn full_config(cache: &Path) -> String {
    format!(
        r#"cache_dir = "{cache}"
mirrors = ["http://mirror.internal:5000"]
safe_folders = ["/__w", "/github/home"]

[sdk]
registry = "http://file-registry:5000"
prefix = "file-prefix"
repo_template = "{{prefix}}/{{platform}}"
os = "noble"
root = "/opt/file-root"

[network]
retries = 7
retry_max_wait = 11
stall_timeout = 13
jobs = 3
chunks = 2

[registries."registry.internal:5000"]
plain_http = true

[registries."secure.internal"]
insecure = true
ca_file = "/etc/ssl/internal-ca.pem"
"#,
        cache = cache.display()
    )
}

// ---------------------------------------------------------------------------------------
// config-show: defaults, file, environment, flags
// ---------------------------------------------------------------------------------------

#[test]
fn config_show_reports_defaults_without_a_file() {
    let s = Sandbox::new();
    let (settings, file) = s.settings(&[], &[], &["OCISDK_CACHE_DIR"]);
    assert_eq!(file, Value::Null);
    let names: Vec<&str> = settings
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut expected = SETTINGS.to_vec();
    expected.sort();
    assert_eq!(names, expected);
    let cache = s.path("xdg-cache/ocisdk");
    for (name, value) in [
        ("registry", "https://mcr.microsoft.com"),
        ("prefix", "oryx"),
        ("repo_template", "{prefix}/{platform}-sdk"),
        ("os", "bookworm"),
        ("root", "/tmp/oryx/platforms"),
        ("cache_dir", path_str(&cache)),
        ("retries", "4"),
        ("retry_max_wait", "60"),
        ("stall_timeout", "30"),
        ("jobs", "8"),
        ("chunks", "1"),
        ("mirrors", ""),
        ("safe_folders", ""),
    ] {
        assert_setting(&settings, name, value, "default");
    }

    // Without XDG_CACHE_HOME the cache is under HOME.
    let (settings, _) = s.settings(&[], &[], &["OCISDK_CACHE_DIR", "XDG_CACHE_HOME"]);
    let cache = s.path("home/.cache/ocisdk");
    assert_setting(&settings, "cache_dir", path_str(&cache), "default");

    let text = s.run(&["config-show"]).success().stdout;
    assert!(text.starts_with("# configuration file: none"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("registry ") && l.ends_with("# default")),
        "{text}"
    );
}

#[test]
fn config_show_takes_every_value_from_the_file_and_names_it() {
    let s = Sandbox::new();
    let file_cache = s.path("file-cache");
    let file = s.write_config(&full_config(&file_cache));
    let (settings, config_file) = s.settings(&[], &[], &["OCISDK_CACHE_DIR"]);
    assert_eq!(config_file, path_str(&file));
    let source = from_file(&file);
    for (name, value) in [
        ("registry", "http://file-registry:5000"),
        ("prefix", "file-prefix"),
        ("repo_template", "{prefix}/{platform}"),
        ("os", "noble"),
        ("root", "/opt/file-root"),
        ("cache_dir", path_str(&file_cache)),
        ("retries", "7"),
        ("retry_max_wait", "11"),
        ("stall_timeout", "13"),
        ("jobs", "3"),
        ("chunks", "2"),
        ("mirrors", "http://mirror.internal:5000"),
        ("safe_folders", "/__w:/github/home"),
    ] {
        assert_setting(&settings, name, value, &source);
    }

    let text = s
        .run_with(&["config-show"], &[], &["OCISDK_CACHE_DIR"])
        .success()
        .stdout;
    assert!(
        text.starts_with(&format!("# configuration file: {}\n", file.display())),
        "{text}"
    );
    let row = text
        .lines()
        .find(|l| l.starts_with("retries "))
        .unwrap_or_else(|| panic!("no retries row: {text}"));
    assert!(
        row.contains(" 7 ") && row.ends_with(&format!("# {source}")),
        "{row}"
    );
}

#[test]
fn per_registry_options_are_listed_by_config_show() {
    let s = Sandbox::new();
    let file = s.write_config(&full_config(&s.path("file-cache")));
    let (settings, _) = s.settings(&[], &[], &[]);
    let row = &settings["registries.\"registry.internal:5000\""];
    assert_eq!(row["source"], from_file(&file), "{settings:#}");
    let options: Value = serde_json::from_str(row["value"].as_str().unwrap()).unwrap();
    assert_eq!(options["plain_http"], true, "{options}");
    assert_ne!(options["insecure"], true, "{options}");

    let row = &settings["registries.\"secure.internal\""];
    let options: Value = serde_json::from_str(row["value"].as_str().unwrap()).unwrap();
    assert_eq!(options["insecure"], true, "{options}");
    assert_eq!(options["ca_file"], "/etc/ssl/internal-ca.pem", "{options}");
    assert_ne!(options["plain_http"], true, "{options}");
}

#[test]
fn environment_beats_the_file_and_flags_beat_both() {
    let s = Sandbox::new();
    let file = s.write_config(&full_config(&s.path("file-cache")));
    let env_cache = s.path("env-cache");
    let (settings, _) = s.settings(
        &[
            "--retries",
            "1",
            "--retry-max-wait",
            "2",
            "--stall-timeout",
            "3",
            "--chunks",
            "5",
            "--mirror",
            "http://flag-mirror:5000",
        ],
        &[
            ("OCISDK_REGISTRY", "http://env-registry:5000"),
            ("ORYX_ACR_SDK_REGISTRY_URL", "http://oryx-registry:5000"),
            ("OCISDK_REPOSITORY_PREFIX", "env-prefix"),
            ("DEBIAN_FLAVOR", "bullseye"),
            ("DYNAMIC_INSTALL_ROOT_DIR", "/opt/env-root"),
            ("OCISDK_CACHE_DIR", path_str(&env_cache)),
            ("OCISDK_SAFE_FOLDERS", "/srv/a::/srv/b"),
        ],
        &[],
    );
    assert_setting(
        &settings,
        "safe_folders",
        "/srv/a:/srv/b",
        "env OCISDK_SAFE_FOLDERS",
    );
    assert_setting(
        &settings,
        "registry",
        "http://env-registry:5000",
        "env OCISDK_REGISTRY",
    );
    assert_setting(
        &settings,
        "prefix",
        "env-prefix",
        "env OCISDK_REPOSITORY_PREFIX",
    );
    assert_setting(&settings, "os", "bullseye", "env DEBIAN_FLAVOR");
    assert_setting(
        &settings,
        "root",
        "/opt/env-root",
        "env DYNAMIC_INSTALL_ROOT_DIR",
    );
    assert_setting(
        &settings,
        "cache_dir",
        path_str(&env_cache),
        "env OCISDK_CACHE_DIR",
    );
    for (name, value) in [
        ("retries", "1"),
        ("retry_max_wait", "2"),
        ("stall_timeout", "3"),
        ("chunks", "5"),
        ("mirrors", "http://flag-mirror:5000"),
    ] {
        assert_setting(&settings, name, value, "flag");
    }
    // Settings without a variable or flag here still come from the file.
    assert_setting(
        &settings,
        "repo_template",
        "{prefix}/{platform}",
        &from_file(&file),
    );
    assert_setting(&settings, "jobs", "3", &from_file(&file));

    // The Oryx variables come after ocisdk's own, and before the file.
    let (settings, _) = s.settings(
        &[],
        &[
            ("ORYX_ACR_SDK_REGISTRY_URL", "http://oryx-registry:5000"),
            ("ORYX_ACR_SDK_REPOSITORY_PREFIX", "oryx-prefix"),
        ],
        &[],
    );
    assert_setting(
        &settings,
        "registry",
        "http://oryx-registry:5000",
        "env ORYX_ACR_SDK_REGISTRY_URL",
    );
    assert_setting(
        &settings,
        "prefix",
        "oryx-prefix",
        "env ORYX_ACR_SDK_REPOSITORY_PREFIX",
    );

    // An empty variable counts as unset.
    let (settings, _) = s.settings(&[], &[("OCISDK_REGISTRY", ""), ("DEBIAN_FLAVOR", "")], &[]);
    assert_setting(
        &settings,
        "registry",
        "http://file-registry:5000",
        &from_file(&file),
    );
    assert_setting(&settings, "os", "noble", &from_file(&file));
}

#[test]
fn config_file_comes_from_ocisdk_config_then_xdg_then_home() {
    let s = Sandbox::new();
    let home_file = s.write(
        "home/.config/ocisdk/config.toml",
        "[sdk]\nprefix = \"from-home\"\n",
    );
    let (settings, file) = s.settings(&[], &[], &["XDG_CONFIG_HOME"]);
    assert_eq!(file, path_str(&home_file));
    assert_setting(&settings, "prefix", "from-home", &from_file(&home_file));

    // XDG_CONFIG_HOME is looked at instead of ~/.config, and the text mode names the file
    // it looked for, not the ~/.config one that is not read.
    let (settings, file) = s.settings(&[], &[], &[]);
    assert_eq!(file, Value::Null, "{settings}");
    assert_setting(&settings, "prefix", "oryx", "default");
    let text = s.run(&["config-show"]).success().stdout;
    let first = text.lines().next().unwrap_or_default();
    assert_eq!(
        first,
        format!(
            "# configuration file: none (OCISDK_CONFIG, else {})",
            s.default_file().display()
        ),
        "{text}"
    );
    let xdg_file = s.write_config("[sdk]\nprefix = \"from-xdg\"\n");
    let (settings, file) = s.settings(&[], &[], &[]);
    assert_eq!(file, path_str(&xdg_file));
    assert_setting(&settings, "prefix", "from-xdg", &from_file(&xdg_file));

    // OCISDK_CONFIG wins over both.
    let named = s.write("elsewhere/ocisdk.toml", "[sdk]\nprefix = \"from-env\"\n");
    let (settings, file) = s.settings(&[], &[("OCISDK_CONFIG", path_str(&named))], &[]);
    assert_eq!(file, path_str(&named));
    assert_setting(&settings, "prefix", "from-env", &from_file(&named));
}

// ---------------------------------------------------------------------------------------
// Invalid configuration
// ---------------------------------------------------------------------------------------

#[test]
fn unknown_or_malformed_keys_are_usage_errors_naming_the_file() {
    let s = Sandbox::new();
    for (text, word) in [
        ("registri = \"http://r:5000\"\n", "registri"),
        ("[sdk]\nregistri = \"http://r:5000\"\n", "registri"),
        ("[network]\nretry = 3\n", "retry"),
        ("[registries.\"r:5000\"]\nplain = true\n", "plain"),
        ("[network]\nretries = \"many\"\n", "retries"),
        ("[sdk\nregistry = 1\n", "[sdk"),
    ] {
        let file = s.write_config(text);
        for args in [&["config-show"][..], &["tags", "127.0.0.1:1/x"][..]] {
            let run = s.run(args).expect_code(2);
            assert!(run.stdout.is_empty(), "{text}: {}", run.stdout);
            let want = format!("error: configuration file {}: ", file.display());
            assert!(run.stderr.starts_with(&want), "{text}: {}", run.stderr);
            assert!(run.stderr.contains(word), "{text}: {}", run.stderr);
        }
        let error = s
            .run(&["config-show", "--json"])
            .expect_code(2)
            .error_json();
        assert_eq!(error["kind"], "usage", "{error}");
        assert_eq!(error["exit_code"], 2, "{error}");
        assert!(
            error["message"].as_str().unwrap().contains(path_str(&file)),
            "{error}"
        );
    }
}

#[test]
fn missing_ocisdk_config_is_a_usage_error() {
    let s = Sandbox::new();
    let missing = s.path("nowhere/config.toml");
    let env = [("OCISDK_CONFIG", path_str(&missing))];
    let run = s.run_with(&["config-show"], &env, &[]).expect_code(2);
    assert!(run.stdout.is_empty());
    assert!(
        run.stderr.starts_with(&format!(
            "error: cannot read the configuration file {}",
            missing.display()
        )),
        "{}",
        run.stderr
    );
    let error = s
        .run_with(&["sdk", "versions", "python", "--json"], &env, &[])
        .expect_code(2)
        .error_json();
    assert_eq!(error["kind"], "usage", "{error}");

    // The default file is optional.
    assert!(!s.default_file().exists());
    s.run(&["config-show"]).success();
}

#[test]
fn invalid_mirror_in_the_file_is_a_usage_error() {
    let s = Sandbox::new();
    s.write_config("mirrors = [\"::bad\"]\n");
    let run = s.run(&["config-show"]).expect_code(2);
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    assert!(run.stderr.contains("::bad"), "{}", run.stderr);
    let error = s
        .run(&["tags", "127.0.0.1:1/x", "--json"])
        .expect_code(2)
        .error_json();
    assert_eq!(error["kind"], "usage", "{error}");
}

// ---------------------------------------------------------------------------------------
// Settings in use
// ---------------------------------------------------------------------------------------

/// A registry holding python 3.11.4 and 3.12.1 for bookworm.
fn python_registry(s: &Sandbox) -> Registry {
    let registry = Registry::start();
    let url = registry.url();
    for version in ["3.11.4", "3.12.1"] {
        let file = s.path(&format!("work/python-bookworm-{version}.tar.gz"));
        fs::write(
            &file,
            tar_gz_of(&[("lib/VERSION", version.as_bytes(), 0o644)]),
        )
        .unwrap();
        s.run(&[
            "sdk",
            "publish",
            "python",
            version,
            path_str(&file),
            "--registry",
            &url,
        ])
        .success();
    }
    registry
}

#[test]
fn registry_from_the_file_then_environment_then_flag_is_the_one_asked() {
    let s = Sandbox::new();
    let registry = python_registry(&s);
    let root = s.path("file-root");
    s.write_config(&format!(
        "[sdk]\nregistry = \"{}\"\nroot = \"{}\"\n",
        registry.url(),
        root.display()
    ));
    // The file alone: no flag, no variable.
    let run = s.run(&["sdk", "versions", "python"]).success();
    assert_eq!(run.stdout, "3.11.4\n3.12.1\n");
    let run = s.run(&["sdk", "install", "python", "3.12"]).success();
    assert_eq!(
        run.stdout.trim(),
        root.join("python/3.12.1").display().to_string()
    );
    assert!(root.join("python/3.12.1/lib/VERSION").is_file());

    // OCISDK_REGISTRY beats the file: nothing listens on port 1.
    let closed = [("OCISDK_REGISTRY", "http://127.0.0.1:1")];
    let run = s
        .run_with(
            &["sdk", "versions", "python", "--retries", "0"],
            &closed,
            &[],
        )
        .expect_code(6);
    assert!(run.stderr.contains("127.0.0.1:1"), "{}", run.stderr);
    assert!(run.stdout.is_empty());

    // --registry beats both.
    let url = registry.url();
    let run = s
        .run_with(
            &[
                "sdk",
                "versions",
                "python",
                "--retries",
                "0",
                "--registry",
                &url,
            ],
            &closed,
            &[],
        )
        .success();
    assert_eq!(run.stdout, "3.11.4\n3.12.1\n");
}

#[test]
fn cache_dir_from_the_file_is_used_unless_ocisdk_cache_dir_is_set() {
    let s = Sandbox::new();
    let file_cache = s.path("file-cache");
    s.write_config(&format!("cache_dir = \"{}\"\n", file_cache.display()));
    let info = s
        .run_with(&["cache", "info", "--json"], &[], &["OCISDK_CACHE_DIR"])
        .success()
        .json();
    assert_eq!(info["dir"], path_str(&file_cache));
    let info = s.run(&["cache", "info", "--json"]).success().json();
    assert_eq!(info["dir"], path_str(&s.path("cache")));
}

#[test]
fn retries_from_the_file_are_used_and_the_flag_overrides_them() {
    let s = Sandbox::new();
    let server = ScriptedServer::start(|_| ScriptedResponse::new(503));
    let file = s.write_config("[network]\nretries = 0\nretry_max_wait = 1\n");
    let (settings, _) = s.settings(&[], &[], &[]);
    assert_setting(&settings, "retries", "0", &from_file(&file));

    let repo = format!("{}/sdks/python", server.host());
    let run = s.run(&["tags", &repo]).expect_code(6);
    assert!(run.stderr.contains("503"), "{}", run.stderr);
    assert_eq!(
        server.request_count(),
        1,
        "retries = 0 makes exactly one attempt: {:#?}",
        server.requests()
    );

    server.clear_requests();
    s.run(&["tags", &repo, "--retries", "1"]).expect_code(6);
    assert_eq!(
        server.request_count(),
        2,
        "--retries 1 beats the file: {:#?}",
        server.requests()
    );

    server.clear_requests();
    s.write_config("[network]\nretries = 2\nretry_max_wait = 1\n");
    s.run(&["tags", &repo]).expect_code(6);
    assert_eq!(server.request_count(), 3, "{:#?}", server.requests());
}

/// The blob concurrency a copy ran with, from the line it logs with `-v` before it moves
/// its blobs (`N blobs to check, …: J at a time`): one entry per image copied.
fn copy_jobs(run: &Run) -> Vec<usize> {
    run.stderr
        .lines()
        .filter(|l| l.contains("blobs to check"))
        .filter_map(|l| {
            l.split(": ")
                .last()?
                .strip_suffix(" at a time")?
                .parse()
                .ok()
        })
        .collect()
}

/// `copy` and `sdk mirror` take `[network] jobs` from the file, as `sdk install` does;
/// `--jobs` beats it, and with neither they keep their own default, 4 (not the 8 installs
/// get). They used to run 4 at a time whatever the file said.
#[test]
fn copy_and_mirror_take_jobs_from_the_file_unless_the_flag_says() {
    let s = Sandbox::new();
    let registry = python_registry(&s);
    let source = format!("{}/oryx/python-sdk:bookworm-3.12.1", registry.host());
    let url = registry.url();
    // Each run copies into a fresh layout, so that every run has blobs to move.
    let fresh = |name: &str| format!("oci:{}", path_str(&s.path(name)));
    let copy = |to: &str, extra: &[&str]| {
        let mut args = vec!["copy", &source, to, "-v"];
        args.extend_from_slice(extra);
        s.run(&args).success()
    };
    let mirror = |to: &str, extra: &[&str]| {
        let mut args = vec!["sdk", "mirror", "python", "3.12", "--to", to];
        args.extend_from_slice(&["--registry", &url, "-v"]);
        args.extend_from_slice(extra);
        s.run(&args).success()
    };

    // No file: the commands' own default.
    assert_eq!(copy_jobs(&copy(&fresh("c-default"), &[])), [4]);
    assert_eq!(copy_jobs(&mirror(&fresh("m-default"), &[])), [4]);

    s.write_config("[network]\njobs = 3\n");
    assert_eq!(copy_jobs(&copy(&fresh("c-file"), &[])), [3]);
    assert_eq!(copy_jobs(&mirror(&fresh("m-file"), &[])), [3]);

    let flag = ["--jobs", "2"];
    assert_eq!(copy_jobs(&copy(&fresh("c-flag"), &flag)), [2]);
    assert_eq!(copy_jobs(&mirror(&fresh("m-flag"), &flag)), [2]);
}

/// With no home at all, the cache goes to this user's folder in the temporary folder, made
/// private (0700); one that someone else could write to is refused (another user could have
/// made it first and planted SDKs in it) instead of being trusted.
#[test]
fn without_a_home_the_cache_is_a_private_folder_of_this_users() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let s = Sandbox::new();
    let tmp = s.path("tmp");
    fs::create_dir(&tmp).unwrap();
    let uid = fs::metadata("/proc/self").unwrap().uid();
    let cache = tmp.join(format!("ocisdk-cache-{uid}"));
    let no_home = ["HOME", "XDG_CACHE_HOME", "OCISDK_CACHE_DIR"];
    let tmpdir = [("TMPDIR", path_str(&tmp))];

    let info = s
        .run_with(&["cache", "info", "--json"], &tmpdir, &no_home)
        .success()
        .json();
    assert_eq!(info["dir"], path_str(&cache), "{info}");
    let mode = fs::metadata(&cache).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700, "{mode:o}");

    fs::set_permissions(&cache, fs::Permissions::from_mode(0o777)).unwrap();
    let run = s
        .run_with(&["cache", "info"], &tmpdir, &no_home)
        .expect_code(2);
    assert!(
        run.stderr.contains("not a private folder"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("OCISDK_CACHE_DIR"), "{}", run.stderr);
}

/// A text setting's variable that is not UTF-8 cannot be read: it is not used, and a
/// warning names it (it used to fall back to the default in silence). A path's is used as
/// it is, since Linux paths are bytes: the root and cache folders named in
/// `DYNAMIC_INSTALL_ROOT_DIR` and `OCISDK_CACHE_DIR` were ignored, with that warning, and
/// SDKs went to the default root.
#[test]
fn a_text_variable_that_is_not_utf8_is_named_in_a_warning_and_a_path_is_used() {
    use std::os::unix::ffi::OsStrExt;
    let s = Sandbox::new();
    let raw = |bytes: &[u8]| std::ffi::OsStr::from_bytes(bytes).to_os_string();
    let mut cmd = s.command(&["config-show", "--json"], &[], &[]);
    cmd.env("DEBIAN_FLAVOR", raw(b"book\xffworm"))
        .env("DYNAMIC_INSTALL_ROOT_DIR", raw(b"/tmp/root-\xff"))
        .env("OCISDK_CACHE_DIR", raw(b"/tmp/cache-\xff"));
    let out = cmd.output().unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("DEBIAN_FLAVOR is not valid UTF-8"),
        "{stderr}"
    );
    assert!(!stderr.contains("DYNAMIC_INSTALL_ROOT_DIR"), "{stderr}");
    assert!(!stderr.contains("OCISDK_CACHE_DIR"), "{stderr}");
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    let settings = &json["settings"];
    assert_setting(settings, "os", "bookworm", "default");
    assert_setting(
        settings,
        "root",
        "/tmp/root-\u{fffd}",
        "env DYNAMIC_INSTALL_ROOT_DIR",
    );
    assert_setting(
        settings,
        "cache_dir",
        "/tmp/cache-\u{fffd}",
        "env OCISDK_CACHE_DIR",
    );
}
