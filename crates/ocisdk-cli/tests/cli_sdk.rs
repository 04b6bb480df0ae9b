//! End-to-end tests of `ocisdk sdk …` (versions, default, resolve, pull, install,
//! list-installed, publish) and `ocisdk push`, running the built binary against a real CNCF
//! distribution registry started by the testkit.
//!
//! Every run is hermetic: the variables the CLI reads (registry, prefix, flavour, install
//! root, cache, proxies, logging) are removed from the child's environment, and each test has
//! its own install root and cache. Where a test must prove that nothing was downloaded, a
//! `ScriptedServer` forwarding to the registry is given as `--registry` and its recorded
//! requests are inspected.
//!
//! Read-only tests share one registry holding the python catalogue ([`catalogue`]); tests
//! that push or alter stored content start their own.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{mpsc, Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use ocisdk_testkit::cli::{self, is_root, Run, NOBODY};
use ocisdk_testkit::{
    corrupt_blob, digest_of, forward, free_port, fs_layer_holding, gzip, media_types,
    pseudo_random_bytes, sha256_hex, skopeo, Format, ImageBuilder, OciLayout, Platform, RawTar,
    RecordedRequest, Registry, Release, ScriptedResponse, ScriptedServer,
};
use tar::EntryType;
use tempfile::TempDir;

// ---------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------

/// The python repository of the MCR layout (`{prefix}/{platform}-sdk`, prefix `oryx`).
const PYTHON_REPO: &str = "oryx/python-sdk";
/// The dotnet repository of the MCR layout.
const DOTNET_REPO: &str = "oryx/dotnet-sdk";
/// Name of the file marking a finished install.
const SENTINEL: &str = ".oryx-sdkdownload-sentinel";
/// Name of the file recording the image an install came from.
const INSTALL_RECORD: &str = ".ocisdk-install.json";
/// Name prefix of the staging folders an install unpacks into.
const TEMP_PREFIX: &str = ".ocisdk-tmp";

/// One test's view of the CLI: a registry URL, and a private temp folder holding the install
/// root (`root/`), the cache (`cache/`), `HOME` (`home/`), scratch files (`work/`) and a
/// folder no archive may reach (`outside/`, a sibling of the root, holding `file` = `precious`).
struct Harness {
    url: String,
    dir: TempDir,
}

impl Harness {
    fn new(registry_url: &str) -> Harness {
        let dir = tempfile::Builder::new()
            .prefix("ocisdk-sdk-test-")
            .tempdir()
            .expect("temp dir");
        for sub in ["root", "cache", "home", "work", "outside"] {
            fs::create_dir(dir.path().join(sub)).unwrap();
        }
        fs::write(dir.path().join("outside/file"), b"precious").unwrap();
        Harness {
            url: registry_url.to_string(),
            dir,
        }
    }

    /// `127.0.0.1:PORT` of the registry.
    fn host(&self) -> &str {
        self.url.strip_prefix("http://").expect("an http:// URL")
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    fn cache(&self) -> PathBuf {
        self.dir.path().join("cache")
    }

    fn work(&self) -> PathBuf {
        self.dir.path().join("work")
    }

    fn outside(&self) -> PathBuf {
        self.dir.path().join("outside")
    }

    /// `ocisdk ARGS…` with a clean environment, the private cache and home, and `env` on top.
    fn command(&self, args: &[&str], env: &[(&str, &str)]) -> Command {
        self.command_of(Path::new(env!("CARGO_BIN_EXE_ocisdk")), args, env)
    }

    /// [`Harness::command`] running the binary `program`.
    fn command_of(&self, program: &Path, args: &[&str], env: &[(&str, &str)]) -> Command {
        let mut cmd = Command::new(program);
        cmd.args(args).stdin(Stdio::null());
        cli::scrub(&mut cmd)
            .env("OCISDK_CACHE_DIR", self.cache())
            .env("HOME", self.dir.path().join("home"));
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd
    }

    /// `ocisdk sdk ARGS… --registry URL --root ROOT`.
    fn sdk_command(&self, url: &str, args: &[&str]) -> Command {
        let root = self.root();
        let mut all = vec!["sdk"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--registry", url, "--root", path_str(&root)]);
        self.command(&all, &[])
    }

    /// Hands the root, cache and home to `nobody` when we are root (root ignores
    /// permissions), and copies the binary where `nobody` can run it; returns that copy, to
    /// give [`Harness::sdk_unprivileged`].
    fn make_unprivileged(&self) -> PathBuf {
        // Everything must be reachable by `nobody`: a world-traversable folder, the binary.
        fs::set_permissions(self.dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let bin = self.dir.path().join("ocisdk");
        fs::copy(env!("CARGO_BIN_EXE_ocisdk"), &bin).unwrap();
        fs::set_permissions(&bin, fs::Permissions::from_mode(0o755)).unwrap();
        if is_root() {
            for dir in [self.root(), self.cache(), self.dir.path().join("home")] {
                std::os::unix::fs::chown(dir, Some(NOBODY), Some(NOBODY)).unwrap();
            }
        }
        bin
    }

    /// Runs `ocisdk sdk ARGS…` like [`Harness::sdk`], with the binary `bin` of
    /// [`Harness::make_unprivileged`], as `nobody` when we are root.
    fn sdk_unprivileged(&self, bin: &Path, args: &[&str]) -> Run {
        let root = self.root();
        let mut all = vec!["sdk"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--registry", &self.url, "--root", path_str(&root)]);
        let mut cmd = self.command_of(bin, &all, &[]);
        Run::from_output(
            cli::unprivileged(&mut cmd)
                .output()
                .expect("run ocisdk sdk"),
        )
    }

    /// Runs `ocisdk ARGS…` (no implicit flags).
    fn run(&self, args: &[&str]) -> Run {
        self.run_env(args, &[])
    }

    /// Runs `ocisdk ARGS…` with extra environment variables.
    fn run_env(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        Run::from_output(self.command(args, env).output().expect("run ocisdk"))
    }

    /// Runs `ocisdk sdk ARGS…` against this harness's registry and root.
    fn sdk(&self, args: &[&str]) -> Run {
        self.sdk_via(&self.url, args)
    }

    /// Runs `ocisdk sdk ARGS…` against `url` (e.g. a recording proxy) and this root.
    fn sdk_via(&self, url: &str, args: &[&str]) -> Run {
        Run::from_output(
            self.sdk_command(url, args)
                .output()
                .expect("run ocisdk sdk"),
        )
    }

    /// Publishes `tarball` as python `version` for `os` with `sdk publish` (plus `extra`
    /// flags), from a file named `python-{os}-{version}.tar.gz`.
    fn publish_with(
        &self,
        version: &str,
        os: &str,
        default: bool,
        tarball: &[u8],
        extra: &[&str],
    ) -> Run {
        let file = self.work().join(format!("python-{os}-{version}.tar.gz"));
        fs::write(&file, tarball).unwrap();
        let mut args = vec!["publish", "python", version, path_str(&file), "--os", os];
        if default {
            args.push("--default");
        }
        args.extend_from_slice(extra);
        self.sdk(&args)
    }

    /// Publishes `tarball` as python `version` for `os` in the MCR layout.
    #[track_caller]
    fn publish_bytes(&self, version: &str, os: &str, default: bool, tarball: &[u8]) {
        let run = self
            .publish_with(version, os, default, tarball, &[])
            .success();
        let want = format!("{}/{PYTHON_REPO}:{os}-{version}@sha256:", self.host());
        assert!(
            run.stdout.starts_with(&want),
            "publish printed {:?}, expected {want}…",
            run.stdout
        );
    }

    /// Publishes [`sdk_tarball`]`(version, os)` and returns its bytes.
    #[track_caller]
    fn publish(&self, version: &str, os: &str, default: bool) -> Vec<u8> {
        let tarball = sdk_tarball(version, os);
        self.publish_bytes(version, os, default, &tarball);
        tarball
    }

    /// `HOST/oryx/python-sdk:{tag}`.
    fn python_ref(&self, tag: &str) -> String {
        format!("{}/{PYTHON_REPO}:{tag}", self.host())
    }

    /// Where python `version` is installed.
    fn installed(&self, version: &str) -> PathBuf {
        self.root().join("python").join(version)
    }
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("UTF-8 temp path")
}

/// The names in a folder, sorted (empty when it does not exist).
fn list_dir(dir: &Path) -> Vec<String> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Entries of `dir` (recursively) that are staging folders or partial downloads
/// (`.ocisdk*`, `*.part`; not an install's record): a finished command must not leave any.
fn leftovers(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return found;
    };
    for entry in entries {
        let entry = entry.unwrap();
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name == INSTALL_RECORD {
            continue;
        }
        if name.starts_with(".ocisdk") || name.ends_with(".part") {
            found.push(path);
        } else if entry.file_type().unwrap().is_dir() {
            found.extend(leftovers(&path));
        }
    }
    found
}

/// A sorted listing of a tree: path, then mode and content, or link target.
fn snapshot(root: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let rel = path.strip_prefix(root).unwrap().display().to_string();
            let meta = fs::symlink_metadata(&path).unwrap();
            let mode = meta.permissions().mode() & 0o7777;
            if meta.is_symlink() {
                let target = fs::read_link(&path).unwrap();
                out.push(format!("{rel} -> {}", target.display()));
            } else if meta.is_dir() {
                out.push(format!("{rel}/ {mode:o}"));
                walk(root, &path, out);
            } else {
                let data = fs::read(&path).unwrap();
                out.push(format!(
                    "{rel} {mode:o} {:?}",
                    String::from_utf8_lossy(&data)
                ));
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

/// `assert_eq!` for byte strings, without printing them on failure.
#[track_caller]
fn assert_same_bytes(actual: &[u8], expected: &[u8], what: &str) {
    assert!(
        actual == expected,
        "{what}: got {} bytes with digest {}, expected {} bytes with digest {}",
        actual.len(),
        digest_of(actual),
        expected.len(),
        digest_of(expected)
    );
}

/// `out` holds the pulled `python 3.11.10` tarball, byte for byte, and its sidecar, and
/// nothing else.
#[track_caller]
fn assert_holds_only_the_pulled_tarball(c: &Catalogue, out: &Path) {
    let tarball = "python-bookworm-3.11.10.tar.gz";
    assert_same_bytes(
        &read(&out.join(tarball)),
        c.tarball("bookworm-3.11.10"),
        "pulled tarball",
    );
    assert_eq!(
        list_dir(out),
        [tarball.to_string(), format!("{tarball}.manifest-digest")]
    );
}

/// The sources, sorted, of the images `sdk mirror ARGS… --to oci:WORK/mirror --dry-run`
/// through `url` would copy.
fn mirror_sources(h: &Harness, url: &str, args: &[&str]) -> Vec<String> {
    let to = format!("oci:{}", path_str(&h.work().join("mirror")));
    let mut all = vec!["mirror"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--to", &to, "--dry-run", "--json"]);
    let report = h.sdk_via(url, &all).success().json();
    let mut sources: Vec<String> = report["images"]
        .as_array()
        .expect("images")
        .iter()
        .map(|image| image["source"].as_str().unwrap().to_owned())
        .collect();
    sources.sort();
    sources
}

#[track_caller]
fn read(path: &Path) -> Vec<u8> {
    fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// Waits (up to 30 s, checking every 10 ms) until `done()` holds.
#[track_caller]
fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

// ---------------------------------------------------------------------------------------
// Tarballs
// ---------------------------------------------------------------------------------------

/// What `bin/python` of [`sdk_tarball`] holds.
fn python_script(version: &str, os: &str) -> String {
    format!("#!/bin/sh\necho 'Python {version} ({os})'\n")
}

/// A small SDK tarball: `bin/python` (0755) printing its version, the symlink
/// `bin/python3 -> python`, and `lib/VERSION`.
fn sdk_tarball(version: &str, os: &str) -> Vec<u8> {
    RawTar::new()
        .dir("bin", 0o755)
        .file("bin/python", python_script(version, os).as_bytes(), 0o755)
        .symlink("bin/python3", "python")
        .dir("lib", 0o755)
        .file("lib/VERSION", version.as_bytes(), 0o644)
        .tar_gz()
}

/// [`sdk_tarball`] for bookworm plus `lib/libpython.so` holding `big`: a download that takes
/// a moment.
fn big_sdk_tarball(version: &str, big: &[u8]) -> Vec<u8> {
    RawTar::new()
        .dir("bin", 0o755)
        .file(
            "bin/python",
            python_script(version, "bookworm").as_bytes(),
            0o755,
        )
        .symlink("bin/python3", "python")
        .dir("lib", 0o755)
        .file("lib/VERSION", version.as_bytes(), 0o644)
        .file("lib/libpython.so", big, 0o644)
        .tar_gz()
}

// ---------------------------------------------------------------------------------------
// Recorded requests
// ---------------------------------------------------------------------------------------

/// `METHOD path` of every request whose path contains `part`.
fn requests_to(requests: &[RecordedRequest], part: &str) -> Vec<String> {
    requests
        .iter()
        .filter(|r| r.path().contains(part))
        .map(|r| format!("{} {}", r.method, r.path()))
        .collect()
}

fn blob_requests(proxy: &ScriptedServer) -> Vec<String> {
    requests_to(&proxy.requests(), "/blobs/")
}

fn manifest_requests(proxy: &ScriptedServer) -> Vec<String> {
    requests_to(&proxy.requests(), "/manifests/")
}

// ---------------------------------------------------------------------------------------
// The shared catalogue
// ---------------------------------------------------------------------------------------

/// Published for bookworm, ascending by version.
const BOOKWORM: [&str; 6] = [
    "3.9.9",
    "3.10.0",
    "3.11.9",
    "3.11.10",
    "3.12.4",
    "3.13.0rc1",
];
/// Published for bullseye, ascending. Chosen so that a flavour leaking into bookworm's
/// answers would change them (a higher 3.11 and a higher stable 3.12).
const BULLSEYE: [&str; 2] = ["3.11.12", "3.12.9"];
/// The bookworm default.
const DEFAULT: &str = "3.12.4";

/// A registry holding the python catalogue, published with `sdk publish`.
struct Catalogue {
    registry: Registry,
    /// Tarball bytes by `{os}-{version}`.
    tarballs: BTreeMap<String, Vec<u8>>,
}

impl Catalogue {
    fn build() -> Catalogue {
        let registry = Registry::start();
        let publisher = Harness::new(&registry.url());
        let mut tarballs = BTreeMap::new();
        // Not in version order, and tag order (`bookworm-3.10.0` < `bookworm-3.9.9`) is not
        // version order either: listing must sort.
        for version in [
            "3.11.10",
            "3.9.9",
            "3.13.0rc1",
            "3.12.4",
            "3.10.0",
            "3.11.9",
        ] {
            let bytes = publisher.publish(version, "bookworm", version == DEFAULT);
            tarballs.insert(format!("bookworm-{version}"), bytes);
        }
        for version in BULLSEYE {
            let bytes = publisher.publish(version, "bullseye", false);
            tarballs.insert(format!("bullseye-{version}"), bytes);
        }
        Catalogue { registry, tarballs }
    }

    fn tarball(&self, tag: &str) -> &[u8] {
        &self.tarballs[tag]
    }

    /// A fresh harness (own root and cache) on this registry.
    fn harness(&self) -> Harness {
        Harness::new(&self.registry.url())
    }
}

/// The shared catalogue registry.
///
/// Held through `Arc`s and kept in a `Weak`, so the registry process is stopped when the
/// last running test lets go of it (a `static` would never be dropped and would leave the
/// process behind); a later test then builds a fresh one. Tests only read from it.
fn catalogue() -> Arc<Catalogue> {
    static SHARED: Mutex<Weak<Catalogue>> = Mutex::new(Weak::new());
    let mut shared = SHARED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(c) = shared.upgrade() {
        return c;
    }
    let c = Arc::new(Catalogue::build());
    *shared = Arc::downgrade(&c);
    c
}

/// The expected `versions` output for a list of versions.
fn one_per_line(versions: &[&str]) -> String {
    versions.iter().map(|v| format!("{v}\n")).collect()
}

// ---------------------------------------------------------------------------------------
// versions, resolve, default
// ---------------------------------------------------------------------------------------

#[test]
fn versions_lists_the_flavours_versions_in_version_order() {
    let c = catalogue();
    let h = c.harness();
    let run = h.sdk(&["versions", "python"]).success();
    assert_eq!(run.stdout, one_per_line(&BOOKWORM));
}

#[test]
fn versions_of_another_flavour_come_from_os_flag_or_debian_flavor() {
    let c = catalogue();
    let h = c.harness();
    let run = h.sdk(&["versions", "python", "--os", "bullseye"]).success();
    assert_eq!(run.stdout, one_per_line(&BULLSEYE));

    let root = h.root();
    let run = h
        .run_env(
            &[
                "sdk",
                "versions",
                "python",
                "--registry",
                &h.url,
                "--root",
                path_str(&root),
            ],
            &[("DEBIAN_FLAVOR", "bullseye")],
        )
        .success();
    assert_eq!(run.stdout, one_per_line(&BULLSEYE), "DEBIAN_FLAVOR");
}

#[test]
fn versions_json_is_an_array_of_version_objects() {
    let c = catalogue();
    let h = c.harness();
    let run = h.sdk(&["versions", "python", "--json"]).success();
    let json = run.json();
    let items = json.as_array().expect("a JSON array");
    let versions: Vec<&str> = items
        .iter()
        .map(|item| item["version"].as_str().expect("a version string"))
        .collect();
    assert_eq!(versions, BOOKWORM);
    for item in items {
        let version = item["version"].as_str().unwrap();
        assert_eq!(item["tag"], format!("bookworm-{version}"), "{item}");
    }
}

#[test]
fn resolve_picks_the_highest_stable_match() {
    let c = catalogue();
    let h = c.harness();
    // Numeric, not lexical: 3.11.10 > 3.11.9; bullseye's 3.11.12 is not a candidate.
    assert_eq!(
        h.sdk(&["resolve", "python", "3.11"]).success().stdout,
        "3.11.10\n"
    );
    // The pre-release 3.13.0rc1 is higher but not stable.
    assert_eq!(
        h.sdk(&["resolve", "python", "latest"]).success().stdout,
        "3.12.4\n"
    );
    let json = h
        .sdk(&["resolve", "python", "3.11", "--json"])
        .success()
        .json();
    assert_eq!(json["version"], "3.11.10");
    assert_eq!(json["tag"], "bookworm-3.11.10");
    assert_eq!(json["reference"], h.python_ref("bookworm-3.11.10"));
}

#[test]
fn resolve_takes_a_prerelease_only_with_pre() {
    let c = catalogue();
    let h = c.harness();
    let run = h.sdk(&["resolve", "python", "3.13"]).expect_code(3);
    assert!(run.stdout.is_empty(), "{:?}", run.stdout);
    assert_eq!(
        h.sdk(&["resolve", "python", "3.13", "--pre"])
            .success()
            .stdout,
        "3.13.0rc1\n"
    );
    // Naming the pre-release is enough.
    assert_eq!(
        h.sdk(&["resolve", "python", "3.13.0rc1"]).success().stdout,
        "3.13.0rc1\n"
    );
}

#[test]
fn resolve_without_a_match_exits_3_and_names_the_nearest_versions() {
    let c = catalogue();
    let h = c.harness();
    let run = h.sdk(&["resolve", "python", "3.14"]).expect_code(3);
    assert!(run.stderr.contains("nearest"), "{}", run.stderr);
    for near in ["3.12.4", "3.13.0rc1"] {
        assert!(run.stderr.contains(near), "{near} not in {}", run.stderr);
    }
    assert!(
        !run.stderr.contains("3.9.9"),
        "3.9.9 is not near: {}",
        run.stderr
    );
}

/// A mistyped flavour (--os, DEBIAN_FLAVOR) has no versions; saying which flavours the
/// repository does have turns a silent empty answer into the fix.
#[test]
fn a_flavour_without_versions_names_the_flavours_there_are() {
    let c = catalogue();
    let h = c.harness();
    let run = h.sdk(&["versions", "python", "--os", "bookwrom"]).success();
    assert!(run.stdout.is_empty(), "{:?}", run.stdout);
    let named = "it has bookworm, bullseye: choose one with --os or DEBIAN_FLAVOR";
    assert!(run.stderr.contains(named), "{}", run.stderr);
    assert!(
        run.stderr.contains("no python versions for bookwrom"),
        "{}",
        run.stderr
    );

    let run = h
        .sdk(&["resolve", "python", "3.11", "--os", "bookwrom"])
        .expect_code(3);
    assert!(run.stderr.contains(named), "{}", run.stderr);

    // A flavour that has versions stays quiet.
    let run = h.sdk(&["versions", "python"]).success();
    assert!(!run.stderr.contains("no python versions"), "{}", run.stderr);
}

#[test]
fn default_reads_the_default_tag() {
    let c = catalogue();
    let h = c.harness();
    assert_eq!(h.sdk(&["default", "python"]).success().stdout, "3.12.4\n");
    assert_eq!(
        h.sdk(&["resolve", "python", "default"]).success().stdout,
        "3.12.4\n"
    );
    // Its image's tag and reference as `sdk resolve python default` gives them; a runtime
    // only .NET tags name.
    let json = h.sdk(&["default", "python", "--json"]).success().json();
    let tag = format!("bookworm-{DEFAULT}");
    let want = serde_json::json!({
        "os": "bookworm",
        "platform": "python",
        "reference": h.python_ref(&tag),
        "runtime": null,
        "tag": tag,
        "version": DEFAULT,
    });
    assert_eq!(json, want);
}

/// A default tag whose version no tag holds (the default copied alone to another
/// repository) names no image that `sdk install PLATFORM default` could install: `sdk
/// default` fails as `sdk resolve PLATFORM default` does, since it now names that image.
#[test]
fn default_naming_a_version_no_tag_holds_fails_as_resolve_default_does() {
    let registry = Registry::start();
    let h = Harness::new(&registry.url());
    h.publish(DEFAULT, "bookworm", true);
    let copy = format!("{}/other/python-sdk:bookworm-default", h.host());
    h.run(&["copy", &h.python_ref("bookworm-default"), &copy])
        .success();
    let run = h.sdk(&["default", "python", "--prefix", "other"]);
    let run = run.expect_code(3);
    assert!(run.stdout.is_empty(), "{:?}", run.stdout);
    let resolve = ["resolve", "python", "default", "--prefix", "other"];
    assert_eq!(run.stderr, h.sdk(&resolve).expect_code(3).stderr);
}

#[test]
fn default_without_a_default_tag_exits_3_unless_or_latest() {
    let c = catalogue();
    let h = c.harness();
    let run = h
        .sdk(&["default", "python", "--os", "bullseye"])
        .expect_code(3);
    assert!(run.stdout.is_empty(), "{:?}", run.stdout);
    assert!(run.stderr.contains("bullseye-default"), "{}", run.stderr);
    // The tag that is missing, where: `reference` used to be null.
    let error = h
        .sdk(&["default", "python", "--os", "bullseye", "--json"])
        .expect_code(3)
        .error_json();
    let place = (
        &error["registry"],
        &error["repository"],
        &error["reference"],
    );
    assert_eq!(
        place,
        (
            &h.host().into(),
            &PYTHON_REPO.into(),
            &"bullseye-default".into()
        ),
        "{error}"
    );

    let run = h
        .sdk(&["default", "python", "--os", "bullseye", "--or-latest"])
        .success();
    assert_eq!(run.stdout, "3.12.9\n");
}

#[test]
fn registry_falls_back_to_the_oryx_environment_variable() {
    let c = catalogue();
    let h = c.harness();
    let root = h.root();
    let args = ["sdk", "versions", "python", "--root", path_str(&root)];
    let run = h
        .run_env(&args, &[("ORYX_ACR_SDK_REGISTRY_URL", h.url.as_str())])
        .success();
    assert_eq!(run.stdout, one_per_line(&BOOKWORM));
}

#[test]
fn registry_flag_beats_ocisdk_registry_which_beats_the_oryx_variable() {
    let c = catalogue();
    let h = c.harness();
    // Nothing listens there: whichever setting wrongly wins makes the run fail.
    let closed = format!("http://127.0.0.1:{}", free_port());
    let root = h.root();
    let args = ["sdk", "versions", "python", "--root", path_str(&root)];
    let run = h
        .run_env(
            &args,
            &[
                ("OCISDK_REGISTRY", h.url.as_str()),
                ("ORYX_ACR_SDK_REGISTRY_URL", closed.as_str()),
            ],
        )
        .success();
    assert_eq!(run.stdout, one_per_line(&BOOKWORM));

    let mut with_flag = args.to_vec();
    with_flag.extend_from_slice(&["--registry", &h.url]);
    let run = h
        .run_env(
            &with_flag,
            &[
                ("OCISDK_REGISTRY", closed.as_str()),
                ("ORYX_ACR_SDK_REGISTRY_URL", closed.as_str()),
            ],
        )
        .success();
    assert_eq!(run.stdout, one_per_line(&BOOKWORM));

    // And the closed port really fails (so the checks above can fail).
    h.run_env(&args, &[("OCISDK_REGISTRY", closed.as_str())])
        .expect_code(6);
}

// ---------------------------------------------------------------------------------------
// Layouts and what a published image holds
// ---------------------------------------------------------------------------------------

#[test]
fn acr_layout_publishes_to_and_reads_from_prefix_slash_platform() {
    let registry = Registry::start();
    let h = Harness::new(&registry.url());
    let acr = ["--prefix", "sdks", "--repo-template", "{prefix}/{platform}"];
    let tarball = sdk_tarball("3.11.4", "bookworm");
    let run = h
        .publish_with("3.11.4", "bookworm", true, &tarball, &acr)
        .success();
    let want = format!("{}/sdks/python:bookworm-3.11.4@sha256:", h.host());
    assert!(run.stdout.starts_with(&want), "{:?}", run.stdout);

    let mut tags = h
        .run(&["tags", &format!("{}/sdks/python", h.host())])
        .success()
        .lines()
        .iter()
        .map(|t| t.to_string())
        .collect::<Vec<_>>();
    tags.sort();
    assert_eq!(tags, ["bookworm-3.11.4", "bookworm-default"]);
    // Nothing went to the MCR layout's repository.
    h.run(&["tags", &h.python_ref("x")]).expect_code(3);

    let mut versions = vec!["versions", "python"];
    versions.extend_from_slice(&acr);
    assert_eq!(h.sdk(&versions).success().stdout, "3.11.4\n");
    let mut default = vec!["default", "python"];
    default.extend_from_slice(&acr);
    assert_eq!(h.sdk(&default).success().stdout, "3.11.4\n");

    // The prefix also comes from the Oryx variable.
    let root = h.root();
    let run = h
        .run_env(
            &[
                "sdk",
                "versions",
                "python",
                "--registry",
                &h.url,
                "--root",
                path_str(&root),
                "--repo-template",
                "{prefix}/{platform}",
            ],
            &[("ORYX_ACR_SDK_REPOSITORY_PREFIX", "sdks")],
        )
        .success();
    assert_eq!(run.stdout, "3.11.4\n");
}

/// Whether `text` looks like an RFC 3339 UTC time with seconds: `2024-05-01T12:34:56Z`.
fn is_rfc3339_utc(text: &str) -> bool {
    let b = text.as_bytes();
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    b.len() == 20
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && b[10] == b'T'
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19)
        && b[19] == b'Z'
}

#[test]
fn published_image_carries_oryx_labels_annotations_and_layer_title() {
    let c = catalogue();
    let h = c.harness();
    let reference = h.python_ref("bookworm-3.12.4");
    let tarball = c.tarball("bookworm-3.12.4");

    let inspected = skopeo::inspect(&reference);
    let labels = &inspected["Labels"];
    assert_eq!(labels["org.oryx.version"], "3.12.4", "{inspected}");
    assert_eq!(labels["org.oryx.platform"], "python", "{inspected}");
    assert_eq!(labels["org.oryx.os-flavor"], "bookworm", "{inspected}");

    let manifest = skopeo::inspect_raw_json(&reference);
    let annotations = &manifest["annotations"];
    assert_eq!(annotations["org.oryx.sdk.version"], "3.12.4", "{manifest}");
    assert_eq!(
        annotations["org.oryx.sdk.sha256"],
        sha256_hex(tarball),
        "{manifest}"
    );
    let created = annotations["org.opencontainers.image.created"]
        .as_str()
        .unwrap_or_else(|| panic!("no creation time: {manifest}"));
    assert!(is_rfc3339_utc(created), "created = {created:?}");
    let layers = manifest["layers"].as_array().expect("layers");
    assert_eq!(layers.len(), 1, "{manifest}");
    assert_eq!(layers[0]["digest"], digest_of(tarball));
    assert_eq!(
        layers[0]["annotations"]["org.opencontainers.image.title"],
        "python-bookworm-3.12.4.tar.gz"
    );

    // The default tag is the same manifest.
    let digest = h.run(&["digest", &reference]).success().stdout;
    let default = h
        .run(&["digest", &h.python_ref("bookworm-default")])
        .success()
        .stdout;
    assert_eq!(digest, default);

    // A standard tool can copy it, and gets the tarball as the layer.
    let layout = h.work().join("layout");
    let copied = skopeo::copy_to_layout(&reference, &layout, "sdk");
    assert_eq!(copied, digest.trim());
    let hex = sha256_hex(tarball);
    assert_same_bytes(
        &read(&layout.join("blobs/sha256").join(hex)),
        tarball,
        "layer copied by skopeo",
    );
}

// ---------------------------------------------------------------------------------------
// pull
// ---------------------------------------------------------------------------------------

#[test]
fn pull_writes_the_tarball_and_a_sidecar_with_the_manifest_digest() {
    let c = catalogue();
    let h = c.harness();
    let out = h.work().join("pulled");
    let run = h
        .sdk(&["pull", "python", "3.11", "-o", path_str(&out)])
        .success();
    let tarball = out.join("python-bookworm-3.11.10.tar.gz");
    assert_eq!(run.stdout, format!("{}\n", tarball.display()));
    assert_holds_only_the_pulled_tarball(&c, &out);
    let sidecar = String::from_utf8(read(
        &out.join("python-bookworm-3.11.10.tar.gz.manifest-digest"),
    ))
    .unwrap();
    let digest = h
        .run(&["digest", &h.python_ref("bookworm-3.11.10")])
        .success()
        .stdout;
    assert!(digest.starts_with("sha256:"), "{digest:?}");
    assert_eq!(sidecar.trim(), digest.trim());
}

/// A tarball is named for its compression: `tar -xzf` of a `.tar.gz` that holds zstd fails.
/// Republished compressed otherwise, the next pull leaves only the new name behind.
#[test]
fn pull_names_the_tarball_for_its_compression() {
    let registry = Registry::start();
    let h = Harness::new(&registry.url());
    let out = h.work().join("pulled");
    let args = ["pull", "python", "3.12.1", "-o", path_str(&out), "--json"];
    let tar = || RawTar::new().file("lib/VERSION", b"3.12.1", 0o644);
    let shapes = [
        (".tar.zst", tar().tar_zst()),
        (".tar", tar().finish()),
        (".tar.gz", tar().tar_gz()),
    ];
    for (extension, tarball) in &shapes {
        let file = h.work().join(format!("python-bookworm-3.12.1{extension}"));
        fs::write(&file, tarball).unwrap();
        h.sdk(&[
            "publish",
            "python",
            "3.12.1",
            path_str(&file),
            "--os",
            "bookworm",
        ])
        .success();

        let name = format!("python-bookworm-3.12.1{extension}");
        let json = h.sdk(&args).success().json();
        assert_eq!(json["cached"], false, "{json}");
        assert_eq!(json["pull"]["path"], path_str(&out.join(&name)), "{json}");
        assert_eq!(
            list_dir(&out),
            [name.clone(), format!("{name}.manifest-digest")]
        );
        assert_same_bytes(&read(&out.join(&name)), tarball, &name);
        let again = h.sdk(&args).success().json();
        assert_eq!(again["cached"], true, "{again}");
        assert_eq!(again["pull"]["path"], json["pull"]["path"], "{again}");
    }
    h.sdk(&["install", "python", "3.12.1"]).success();
    assert_eq!(read(&h.installed("3.12.1").join("lib/VERSION")), b"3.12.1");
}

/// A folder the user may not write, holding the current tarball, is a pull that finds it
/// there: pulls take turns through a lock file beside the tarball, and a folder that cannot
/// take one cannot take anything else this user's pulls would write either.
#[test]
fn pull_into_a_read_only_folder_holding_the_current_tarball_finds_it_there() {
    let c = catalogue();
    let h = c.harness();
    let out = h.work().join("pulled");
    let args = ["pull", "python", "3.11.10", "-o", path_str(&out), "--json"];
    h.sdk(&args).success();
    let bin = h.make_unprivileged();
    fs::set_permissions(&out, fs::Permissions::from_mode(0o555)).unwrap();

    let json = h.sdk_unprivileged(&bin, &args).success().json();
    assert_eq!(json["cached"], true, "{json}");
    assert_holds_only_the_pulled_tarball(&c, &out);
}

/// A file system that cannot lock files (NFS without its lock daemon answers ENOLCK) still
/// takes pulls, as it did before pulls took turns: the pull goes ahead without one, says
/// so, and leaves only the tarball and its sidecar. `flock` is made to fail for the pull
/// alone by a preloaded shim.
#[test]
fn pull_where_files_cannot_be_locked_goes_ahead_without_a_turn() {
    let c = catalogue();
    let h = c.harness();
    let shim = no_lock_shim(&h);
    let out = h.work().join("pulled");
    let output = h
        .sdk_command(&h.url, &["pull", "python", "3.11.10", "-o", path_str(&out)])
        .env("LD_PRELOAD", &shim)
        .output()
        .expect("run ocisdk sdk pull");
    let run = Run::from_output(output).success();
    assert!(
        run.stderr.contains("without waiting for other pulls"),
        "{}",
        run.stderr
    );
    assert_holds_only_the_pulled_tarball(&c, &out);
}

/// Builds, in `h`'s work folder, a shim to preload whose `flock` fails with ENOLCK, as on NFS
/// without its lock daemon, and returns its path.
fn no_lock_shim(h: &Harness) -> PathBuf {
    preload_shim(
        h,
        "nolock",
        "#include <errno.h>\nint flock(int fd, int op) { (void)fd; (void)op; errno = ENOLCK; return -1; }\n",
    )
}

/// Install roots and caches on a file system that cannot lock files (NFS without its lock
/// daemon) take installs and uninstalls, as they take pulls: each goes ahead without its
/// locks (the version's and the cached tarball's) and warns once that concurrent installs
/// of one SDK are not coordinated there. They used to fail on the first lock.
#[test]
fn install_and_uninstall_where_files_cannot_be_locked_go_ahead_and_warn_once() {
    let c = catalogue();
    let h = c.harness();
    let shim = no_lock_shim(&h);
    let without_locks = |args: &[&str]| {
        let output = h
            .sdk_command(&h.url, args)
            .env("LD_PRELOAD", &shim)
            .output()
            .expect("run ocisdk sdk");
        let run = Run::from_output(output).success();
        assert_eq!(
            run.stderr.matches("not coordinated").count(),
            1,
            "{}",
            run.stderr
        );
        // Nor can a download resume from the cache there: said once, not once per blob.
        assert!(
            run.stderr.matches("without resuming").count() <= 1,
            "{}",
            run.stderr
        );
        run
    };
    without_locks(&["install", "python", "3.11.10", "3.12.4"]);
    for version in ["3.11.10", "3.12.4"] {
        assert!(h.installed(version).join(SENTINEL).is_file(), "{version}");
        assert_eq!(
            read(&h.installed(version).join("bin/python")),
            python_script(version, "bookworm").as_bytes()
        );
    }
    // Again with --force: from the cache this time, which is not locked either.
    without_locks(&["install", "python", "3.11.10", "--force"]);
    assert!(h.installed("3.11.10").join(SENTINEL).is_file());

    without_locks(&["uninstall", "python", "3.11.10"]);
    assert!(!h.installed("3.11.10").exists());
    assert!(h.installed("3.12.4").join(SENTINEL).is_file());
}

/// Builds the C `source` as a library to preload (`LD_PRELOAD`) into `ocisdk`, to make a
/// system call fail or watch it as no real registry or file system here would.
fn preload_shim(h: &Harness, name: &str, source: &str) -> PathBuf {
    let dir = h.work().join("shim");
    fs::create_dir_all(&dir).unwrap();
    let source_file = dir.join(format!("{name}.c"));
    fs::write(&source_file, source).unwrap();
    let shim = dir.join(format!("lib{name}.so"));
    let built = Command::new("cc")
        .args([
            "-shared",
            "-fPIC",
            "-o",
            path_str(&shim),
            path_str(&source_file),
            "-ldl",
        ])
        .status()
        .expect("run cc");
    assert!(built.success(), "cc could not build the {name} shim");
    shim
}

/// Ctrl-C while a pull waits for another pull's turn ends it with exit code 130 while the
/// other still holds the turn, and it leaves nothing in the folder: the wait is no work of
/// its own to see through. It used to wait, after Ctrl-C, until the other pull was done.
#[test]
fn ctrl_c_while_a_pull_waits_for_its_turn_exits_130_without_waiting_for_the_other() {
    use std::io::BufRead;
    let c = catalogue();
    let h = c.harness();
    let out = h.work().join("pulled");
    fs::create_dir(&out).unwrap();
    // The other pull's turn, held by this test until the end.
    let lock = ".python-bookworm-3.11.10.tar.gz.lock";
    let turn = fs::File::create(out.join(lock)).unwrap();
    turn.lock().unwrap();

    let args = ["pull", "python", "3.11.10", "-o", path_str(&out), "--json"];
    let mut child = h
        .sdk_command(&h.url, &args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ocisdk");
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut said = String::new();
    while !said.contains("waiting for another pull") {
        let read = stderr.read_line(&mut said).unwrap();
        assert_ne!(read, 0, "ended without saying that it waits: {said}");
    }
    let killed = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(killed.success());

    // Waited for on a thread of its own: a pull that would not end while the turn is held
    // must fail this test, not hang it.
    let (ended_tx, ended) = mpsc::channel();
    std::thread::spawn(move || {
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
        let _ = ended_tx.send((child.wait().expect("wait for ocisdk"), rest));
    });
    let ended = ended.recv_timeout(Duration::from_secs(60));
    drop(turn);
    let (status, rest) = ended.expect("the pull ended while the other still held its turn");
    assert_eq!(status.code(), Some(130), "{said}{rest}");
    assert!(rest.contains(r#""kind":"interrupted""#), "{rest}");
    assert_eq!(list_dir(&out), [lock]);
}

/// Ctrl-C while an install waits for another install of the same version ends it with exit
/// code 130 while the other still runs, as it does a pull waiting for its turn. It used to
/// wait, after Ctrl-C, until the other install was done.
#[test]
fn ctrl_c_while_an_install_waits_for_another_exits_130_without_waiting_for_it() {
    let c = catalogue();
    let h = c.harness();
    let platform_dir = h.root().join("python");
    fs::create_dir(&platform_dir).unwrap();
    // The other install's lock of the version, held by this test until the end.
    let held = fs::File::create(platform_dir.join(".3.11.10.lock")).unwrap();
    held.lock().unwrap();

    let mut child = h
        .sdk_command(&h.url, &["install", "python", "3.11.10"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ocisdk");
    // An install says nothing while it waits: the kernel shows its blocked request.
    let waiter = format!("-> FLOCK  ADVISORY  WRITE {} ", child.id());
    wait_for("the install to wait for the lock", || {
        fs::read_to_string("/proc/locks").is_ok_and(|locks| locks.contains(&waiter))
    });
    let killed = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(killed.success());

    // Waited for on a thread of its own: an install that would not end while the lock is
    // held must fail this test, not hang it.
    let (ended_tx, ended) = mpsc::channel();
    let stdout = child.stdout.take();
    std::thread::spawn(move || {
        drop(stdout);
        let _ = ended_tx.send(child.wait_with_output().expect("wait for ocisdk"));
    });
    let ended = ended.recv_timeout(Duration::from_secs(60));
    drop(held);
    let output = ended.expect("the install ended while the other still held the lock");
    Run::from_output(output).expect_code(130);
    assert!(!h.installed("3.11.10").exists());
}

/// In a folder two users write, the lock file of one user's pull is not the other's to
/// write (umask 022 makes it 0644): the other's pull of the same SDK still waits for its
/// turn, locking the file it may only read, and then pulls. It used to pull at once, side by
/// side with the first, which the turns are there to prevent.
#[test]
fn a_pull_waits_for_the_turn_of_another_users_pull_in_a_shared_folder() {
    use std::io::BufRead;
    let c = catalogue();
    let h = c.harness();
    let bin = h.make_unprivileged();
    let out = h.work().join("shared");
    fs::create_dir(&out).unwrap();
    fs::set_permissions(&out, fs::Permissions::from_mode(0o777)).unwrap();
    // The other user's turn (ours, when not root: then the mode alone keeps us from writing).
    let lock = out.join(".python-bookworm-3.11.10.tar.gz.lock");
    let turn = fs::File::create(&lock).unwrap();
    fs::set_permissions(&lock, fs::Permissions::from_mode(0o444)).unwrap();
    turn.lock().unwrap();

    let root = h.root();
    let args = [
        "sdk",
        "pull",
        "python",
        "3.11.10",
        "-o",
        path_str(&out),
        "--registry",
        &h.url,
        "--root",
        path_str(&root),
    ];
    let mut cmd = h.command_of(&bin, &args, &[]);
    let mut child = cli::unprivileged(&mut cmd)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ocisdk");
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut said = String::new();
    while !said.contains("waiting for another pull") {
        let read = stderr.read_line(&mut said).unwrap();
        assert_ne!(
            read, 0,
            "ended without waiting for the other's turn: {said}"
        );
    }
    // The other's turn ends as a pull's does: its lock file goes, then its lock.
    fs::remove_file(&lock).unwrap();
    drop(turn);
    child.stderr = Some(stderr.into_inner());
    Run::from_output(child.wait_with_output().expect("wait for ocisdk")).success();
    assert_holds_only_the_pulled_tarball(&c, &out);
}

/// A platform that cannot be listed (a typo: its repository does not exist) fails its own
/// lines only: the other platforms of the file are still installed.
#[test]
fn sync_installs_the_other_platforms_when_one_cannot_be_listed() {
    let c = catalogue();
    let h = c.harness();
    let list = h.work().join("sdks.txt");
    fs::write(&list, "nodjs 20\npython 3.11.10\n").unwrap();
    let run = h.sdk(&["sync", path_str(&list)]).expect_code(3);
    assert!(run.stderr.contains("nodjs 20"), "{}", run.stderr);
    assert!(
        run.stderr.contains("1 of 2 installs failed"),
        "{}",
        run.stderr
    );
    assert_complete_install(&h, "3.11.10");
}

/// A platform whose repository does not exist (a typo, or another prefix or template) says
/// which repository was asked for and which settings made it: the registry's NAME_UNKNOWN
/// alone does not tell the user that the platform name is where to look.
#[test]
fn a_platform_without_a_repository_hints_at_the_name_prefix_and_template() {
    let c = catalogue();
    let h = c.harness();
    let run = h.sdk(&["versions", "pyhton"]).expect_code(3);
    let hint = format!("hint: {} has no repository oryx/pyhton-sdk: check the platform name, and --prefix and --repo-template", h.host());
    assert!(run.stderr.contains(&hint), "{}", run.stderr);

    // A batch names it in each failed line's error object too.
    let run = h
        .sdk(&["install", "pyhton", "3.11", "3.12", "--json"])
        .expect_code(3);
    let first = run.stderr.lines().next().expect("an error object");
    let error: serde_json::Value = serde_json::from_str(first).unwrap();
    let hint = error["error"]["hint"].as_str().expect("a hint");
    assert!(hint.contains("has no repository oryx/pyhton-sdk"), "{hint}");
}

/// `sdk default` of a platform without a repository fails as `sdk resolve PLATFORM default`
/// does, with the same hint and JSON error, instead of saying that the repository's default
/// tag does not exist, which sends the user looking for a tag.
#[test]
fn default_of_a_platform_without_a_repository_hints_as_resolve_does() {
    let c = catalogue();
    let h = c.harness();
    let run = h.sdk(&["default", "pyhton"]).expect_code(3);
    let hint = format!("hint: {} has no repository oryx/pyhton-sdk", h.host());
    assert!(run.stderr.contains(&hint), "{}", run.stderr);
    assert!(!run.stderr.contains("no default"), "{}", run.stderr);

    let resolve = h
        .sdk(&["resolve", "pyhton", "default", "--json"])
        .expect_code(3)
        .error_json();
    assert!(resolve["hint"].is_string(), "{resolve}");
    for or_latest in [&[][..], &["--or-latest"][..]] {
        let mut args = vec!["default", "pyhton", "--json"];
        args.extend_from_slice(or_latest);
        let default = h.sdk(&args).expect_code(3).error_json();
        assert_eq!(default, resolve, "{args:?}");
    }
}

/// A line whose spec does not parse fails alone; and a list on standard input cannot share
/// it with --password-stdin, which would swallow the list.
#[test]
fn sync_installs_the_other_lines_when_one_spec_does_not_parse() {
    let c = catalogue();
    let h = c.harness();
    let list = h.work().join("sdks.txt");
    fs::write(&list, "python 3.x\npython 3.11.10\n").unwrap();
    let run = h.sdk(&["sync", path_str(&list)]).expect_code(2);
    assert!(
        run.stderr.contains("python 3.x: invalid version spec"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("1 of 2 installs failed"),
        "{}",
        run.stderr
    );
    assert_complete_install(&h, "3.11.10");

    let run = h
        .sdk(&["sync", "-", "-u", "alice", "--password-stdin"])
        .expect_code(2);
    assert!(
        run.stderr.contains("both read standard input"),
        "{}",
        run.stderr
    );
}

/// A folder whose name is not UTF-8 is written to, and named in the JSON (lossily): the JSON
/// output used to panic (exit 101) after the file was written.
#[test]
fn json_names_a_path_that_is_not_utf8() {
    use std::os::unix::ffi::OsStrExt;
    let c = catalogue();
    let h = c.harness();
    let out = h.work().join(std::ffi::OsStr::from_bytes(b"p\xff"));
    let reference = h.python_ref("bookworm-3.11.10");
    let layer = out.join("layer.tar.gz");
    let sdk_pull = [
        "sdk",
        "pull",
        "python",
        "3.11.10",
        "--json",
        "--registry",
        &h.url,
    ];
    for (args, to) in [
        (&sdk_pull[..], &out),
        (&["pull", &reference, "--json"][..], &layer),
    ] {
        let mut cmd = h.command(args, &[]);
        cmd.arg("-o").arg(to);
        let run = Run::from_output(cmd.output().unwrap()).success();
        let text = serde_json::to_string(&run.json()).unwrap();
        assert!(text.contains("p\u{fffd}"), "{text}");
    }
    assert!(out.join("python-bookworm-3.11.10.tar.gz").is_file());
    assert!(layer.is_file());
}

/// An install root whose name is not UTF-8, from `--root` or `DYNAMIC_INSTALL_ROOT_DIR`, is
/// where the SDK goes: `--root` used to be refused (exit 2) and the variable ignored, with a
/// warning, for the default root.
#[test]
fn an_install_root_that_is_not_utf8_is_installed_into() {
    use std::os::unix::ffi::OsStrExt;
    let c = catalogue();
    let h = c.harness();
    let install = ["sdk", "install", "python", "3.11.10", "--registry", &h.url];
    for (name, by_flag) in [(&b"flag-\xff"[..], true), (b"env-\xfe", false)] {
        let root = h.work().join(std::ffi::OsStr::from_bytes(name));
        let mut cmd = h.command(&install, &[]);
        if by_flag {
            cmd.arg("--root").arg(&root);
        } else {
            cmd.env("DYNAMIC_INSTALL_ROOT_DIR", &root);
        }
        let run = Run::from_output(cmd.output().unwrap()).success();
        assert!(!run.stderr.contains("UTF-8"), "{}", run.stderr);
        let sdk = root.join("python/3.11.10");
        assert!(sdk.join(SENTINEL).is_file(), "nothing in {}", sdk.display());
        assert_eq!(
            read(&sdk.join("bin/python")),
            python_script("3.11.10", "bookworm").as_bytes()
        );
    }
}

/// A default tag naming an index whose image for this machine the registry lost: the error
/// is that image's 404, not "no default tag" (the tag is there).
#[test]
fn a_default_whose_image_is_missing_is_not_reported_as_no_default() {
    let registry = Registry::start();
    let h = Harness::new(&registry.url());
    let image = |arch: &str| {
        ImageBuilder::new()
            .layer(
                sdk_tarball("3.12.1", "bookworm"),
                media_types::OCI_LAYER_GZIP,
            )
            .label("org.oryx.version", "3.12.1")
            .label("arch", arch)
    };
    let mut layout = OciLayout::new();
    layout.add_index(
        "default",
        vec![
            (Platform::linux("amd64"), image("amd64")),
            (Platform::linux("arm64"), image("arm64")),
        ],
    );
    skopeo::push_index(
        layout.path(),
        "default",
        h.host(),
        &format!("{PYTHON_REPO}:bookworm-default"),
    );
    let index = h
        .run(&["manifest", &h.python_ref("bookworm-default")])
        .success();
    let index: serde_json::Value = serde_json::from_str(&index.stdout).unwrap();
    for child in index["manifests"].as_array().unwrap() {
        let digest = child["digest"].as_str().unwrap();
        let url = format!("{}/v2/{PYTHON_REPO}/manifests/{digest}", h.url);
        let deleted = ocisdk_testkit::http::request("DELETE", &url, &[], &[]).unwrap();
        assert_eq!(deleted.status, 202, "{}", deleted.text());
    }
    let run = h.sdk(&["default", "python"]).expect_code(3);
    assert!(!run.stderr.contains("no default"), "{}", run.stderr);
    assert!(run.stderr.contains("MANIFEST_UNKNOWN"), "{}", run.stderr);
}

/// A failure several specs share (one platform listing) is reported for each, each with its
/// kind, exit code and registry: the ones after the first used to say "other", exit code 1.
#[test]
fn a_shared_failure_keeps_its_kind_for_every_spec() {
    let c = catalogue();
    let h = c.harness();
    let run = h
        .sdk(&["install", "nosuch", "1.0.0", "2.0.0", "--json"])
        .expect_code(3);
    let errors: Vec<serde_json::Value> = run
        .stderr
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(errors.len(), 2, "{}", run.stderr);
    for (error, spec) in errors.iter().zip(["1.0.0", "2.0.0"]) {
        let error = &error["error"];
        assert_eq!(error["kind"], "not_found", "{error}");
        assert_eq!(error["exit_code"], 3, "{error}");
        assert_eq!(error["registry"], h.host(), "{error}");
        assert_eq!(error["status"], 404, "{error}");
        let message = error["message"].as_str().unwrap();
        assert!(
            message.starts_with(&format!("nosuch {spec}: ")),
            "{message}"
        );
    }
}

/// Publishing the same file again (a retried CI job) gives the same manifest: its
/// `created` is the file's time, not the publishing's, so the tag does not move and a pull
/// made in between stays current.
#[test]
fn publishing_the_same_file_again_changes_nothing() {
    let registry = Registry::start();
    let h = Harness::new(&registry.url());
    let file = h.work().join("python-bookworm-3.12.7.tar.gz");
    fs::write(&file, sdk_tarball("3.12.7", "bookworm")).unwrap();
    let made = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000_000);
    fs::File::options()
        .write(true)
        .open(&file)
        .unwrap()
        .set_modified(made)
        .unwrap();
    let publish = ["publish", "python", "3.12.7", path_str(&file), "--default"];
    h.sdk(&publish).success();
    let digest = |tag: &str| h.run(&["digest", &h.python_ref(tag)]).success().stdout;
    let first = digest("bookworm-3.12.7");
    assert_eq!(created(&h, "bookworm-3.12.7"), "2001-09-09T01:46:40Z");
    let out = h.work().join("pulled");
    let pull = ["pull", "python", "3.12.7", "-o", path_str(&out), "--json"];
    h.sdk(&pull).success();

    h.sdk(&publish).success();
    assert_eq!(digest("bookworm-3.12.7"), first);
    assert_eq!(digest("bookworm-default"), first);
    assert_eq!(h.sdk(&pull).success().json()["cached"], true);
}

/// With `--default`, text mode says on stderr that `{os}-default` now points at the version
/// (`--json` lists it in `tags`); stdout keeps its one line, the version's reference, so a
/// script reading it is not disturbed. It used to say nothing of the default.
#[test]
fn publish_default_says_that_the_default_tag_now_points_at_the_version() {
    let registry = Registry::start();
    let h = Harness::new(&registry.url());
    let tarball = sdk_tarball("3.12.7", "bookworm");
    let run = h
        .publish_with("3.12.7", "bookworm", true, &tarball, &[])
        .success();
    let digest = h
        .run(&["digest", &h.python_ref("bookworm-default")])
        .success()
        .stdout;
    let digest = digest.trim_end();
    assert_eq!(
        run.stdout,
        format!("{}@{digest}\n", h.python_ref("bookworm-3.12.7"))
    );
    let said = format!(
        "{} now points at python 3.12.7 ({digest})",
        h.python_ref("bookworm-default")
    );
    assert!(run.stderr.contains(&said), "{}", run.stderr);

    // Without --default nothing is said of it; with -q nothing at all.
    let run = h
        .publish_with("3.12.8", "bookworm", false, &tarball, &[])
        .success();
    assert!(!run.stderr.contains("bookworm-default"), "{}", run.stderr);
    let run = h
        .publish_with("3.12.9", "bookworm", true, &tarball, &["-q"])
        .success();
    assert_eq!(run.stderr, "");
}

/// `SOURCE_DATE_EPOCH` dates a published SDK instead of its file's time. The CLI reads it
/// and hands it to the library, which reads no environment.
#[test]
fn source_date_epoch_dates_a_published_sdk() {
    let registry = Registry::start();
    let h = Harness::new(&registry.url());
    let file = h.work().join("python-bookworm-3.12.7.tar.gz");
    fs::write(&file, sdk_tarball("3.12.7", "bookworm")).unwrap();
    let root = h.root();
    let publish = [
        "sdk",
        "publish",
        "python",
        "3.12.7",
        path_str(&file),
        "--registry",
        &h.url,
        "--root",
        path_str(&root),
    ];
    h.run_env(&publish, &[("SOURCE_DATE_EPOCH", "1600000000")])
        .success();
    assert_eq!(created(&h, "bookworm-3.12.7"), "2020-09-13T12:26:40Z");
}

/// The `org.opencontainers.image.created` annotation of python's manifest under `tag`.
fn created(h: &Harness, tag: &str) -> String {
    let manifest = h.run(&["manifest", &h.python_ref(tag)]).success();
    let manifest: serde_json::Value = serde_json::from_str(&manifest.stdout).unwrap();
    manifest["annotations"]["org.opencontainers.image.created"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// When the version tag is pushed but the default tag is refused, the error says the version
/// is published and that publishing again is safe, in text and in `--json`; and publishing
/// again does set the default, on the same manifest. It used to name the default tag only,
/// leaving the user to guess what the registry now held.
#[test]
fn a_default_tag_that_fails_after_the_version_tag_says_the_version_is_published() {
    let registry = Registry::start();
    let upstream = registry.url();
    // Only the PUT of the default tag fails; everything else reaches the registry.
    let proxy = ScriptedServer::start(move |req| {
        let default_put = req.method == "PUT"
            && req.path() == format!("/v2/{PYTHON_REPO}/manifests/bookworm-default");
        if default_put {
            ScriptedResponse::new(500)
        } else {
            forward(req, &upstream)
        }
    });
    let h = Harness::new(&registry.url());
    let file = h.work().join("python-bookworm-3.12.7.tar.gz");
    fs::write(&file, sdk_tarball("3.12.7", "bookworm")).unwrap();
    let publish = [
        "publish",
        "python",
        "3.12.7",
        path_str(&file),
        "--default",
        "--retries",
        "0",
    ];

    let run = h.sdk_via(&proxy.url(), &publish).expect_code(6);
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    let version = h.run(&["digest", &h.python_ref("bookworm-3.12.7")]);
    let version = version.success().stdout.trim().to_string();
    assert!(
        run.stderr.contains("registry answered HTTP 500")
            && run.stderr.contains(&format!(
                "the manifest was pushed ({version}) and bookworm-3.12.7 points at it, but \
                 bookworm-default does not"
            )),
        "{}",
        run.stderr
    );
    let hint = "hint: bookworm-3.12.7 is in place; running the same command again is safe";
    assert!(run.stderr.contains(hint), "{}", run.stderr);
    h.run(&["digest", &h.python_ref("bookworm-default")])
        .expect_code(3);

    let mut json = publish.to_vec();
    json.push("--json");
    let error = h.sdk_via(&proxy.url(), &json).expect_code(6).error_json();
    let message = error["message"].as_str().unwrap();
    assert!(
        message.contains(&format!(
            "pushed ({version}) and bookworm-3.12.7 points at it"
        )),
        "{error}"
    );
    assert!(
        error["hint"]
            .as_str()
            .is_some_and(|h| h.contains("running the same command again is safe")),
        "{error}"
    );
    assert_eq!(error["reference"], "bookworm-default", "{error}");
    assert_eq!(error["status"], 500, "{error}");
    assert_eq!(error["kind"], "unreachable", "{error}");

    // Publishing again, the default is set and the version has not moved.
    h.sdk(&publish).success();
    let digest = |tag: &str| {
        let run = h.run(&["digest", &h.python_ref(tag)]).success();
        run.stdout.trim().to_string()
    };
    assert_eq!(digest("bookworm-3.12.7"), version);
    assert_eq!(digest("bookworm-default"), version);
}

/// `sdk publish` refuses a file that `sdk install` would always refuse, as a usage error
/// (exit 2) naming the file and what is wrong, before anything is uploaded: a file that is
/// not a tar (random bytes named `.tar.gz` or `.tar`, a gzip of no tar), and an archive with
/// nothing to install (a zero-byte file, a tar of nothing, one of only `./`). A version
/// already published keeps its tag. `ocisdk push` still pushes such files: any file is an
/// artifact.
#[test]
fn publish_refuses_a_file_install_would_refuse_and_uploads_nothing() {
    let registry = Registry::start();
    let h = Harness::new(&registry.url());
    let tarball = h.publish("3.12.0", "bookworm", false);
    let digest = |tag: &str| h.run(&["digest", &h.python_ref(tag)]).success().stdout;
    let published = digest("bookworm-3.12.0");

    let random = pseudo_random_bytes(4096, 21);
    let not_a_tar = "cannot read the archive: it is corrupt, truncated or unreadable";
    let empty = "the archive is empty: it holds no files";
    let cases = [
        ("gzip-of-no-tar.tar.gz", gzip(&random), not_a_tar),
        ("random.tar", random.clone(), not_a_tar),
        ("random.tar.gz", random.clone(), not_a_tar),
        ("no-entries.tar.gz", RawTar::new().tar_gz(), empty),
        ("zero-bytes.tar.gz", Vec::new(), empty),
        ("zero-bytes.tar", Vec::new(), empty),
        (
            "only-root.tar.zst",
            RawTar::new().dir("./", 0o755).tar_zst(),
            empty,
        ),
    ];
    for (name, bytes, what) in &cases {
        let file = h.work().join(name);
        fs::write(&file, bytes).unwrap();
        let message = format!(
            "cannot publish {}: sdk install would refuse it: {what}",
            path_str(&file)
        );
        for version in ["3.12.1", "3.12.0"] {
            let publish = ["publish", "python", version, path_str(&file), "--default"];
            let run = h.sdk(&publish).expect_code(2);
            assert!(run.stderr.contains(&message), "{name}: {}", run.stderr);
            assert!(run.stdout.is_empty(), "{name}: {:?}", run.stdout);
        }
        let json = ["publish", "python", "3.12.1", path_str(&file), "--json"];
        let error = h.sdk(&json).expect_code(2).error_json();
        assert_eq!(error["kind"], "usage", "{name}: {error}");
        assert_eq!(error["exit_code"], 2, "{name}: {error}");
        assert!(
            error["message"].as_str().unwrap().starts_with(&message),
            "{name}: {error}"
        );
        assert!(
            !registry.blob_data_path(&digest_of(bytes)).exists(),
            "{name} was uploaded"
        );
    }
    let tags = h.run(&["tags", &format!("{}/{PYTHON_REPO}", h.host())]);
    assert_eq!(tags.success().lines(), ["bookworm-3.12.0"]);
    assert_eq!(digest("bookworm-3.12.0"), published);

    // Not `ocisdk push`: a file is an artifact, whatever it holds, except that a `.tar.gz`
    // must be gzip, as the layer's media type will say (push reads it for the config's
    // diff_id): one that is not is a usage error that names the file, and nothing is sent.
    let no_gzip = ["random.tar.gz", "zero-bytes.tar.gz"];
    for name in no_gzip {
        let file = h.work().join(name);
        let reference = format!("{}/files/{}:1", h.host(), name.replace('.', "-"));
        let run = h.run(&["push", path_str(&file), &reference]).expect_code(2);
        let message = format!(
            "cannot push {}: its name says gzip, but it is not a gzip stream",
            path_str(&file)
        );
        assert!(run.stderr.contains(&message), "{name}: {}", run.stderr);
        assert!(
            !registry.blob_data_path(&digest_of(&read(&file))).exists(),
            "{name} was uploaded"
        );
    }
    for (name, bytes, _) in cases.iter().filter(|(name, ..)| !no_gzip.contains(name)) {
        let reference = format!("{}/files/{}:1", h.host(), name.replace('.', "-"));
        h.run(&["push", path_str(&h.work().join(name)), &reference])
            .success();
        assert!(
            registry.blob_data_path(&digest_of(bytes)).exists(),
            "{name}"
        );
    }
    let out = h.work().join("pulled");
    h.sdk(&["pull", "python", "3.12.0", "-o", path_str(&out)])
        .success();
    assert_same_bytes(
        &read(&out.join("python-bookworm-3.12.0.tar.gz")),
        &tarball,
        "the published tarball",
    );
}

/// Publishes [`sdk_tarball`]`(sdk)` as dotnet `version` (`{sdk}_{runtime}`) for bookworm, plus
/// `extra` flags, from a file named `dotnet-bookworm-{sdk}.tar.gz`; returns the run. The file
/// is written once, so that publishing it again gives the same manifest (its `created` is the
/// file's time).
fn publish_dotnet(h: &Harness, version: &str, extra: &[&str]) -> Run {
    let sdk = version.split('_').next().unwrap_or(version);
    let file = h.work().join(format!("dotnet-bookworm-{sdk}.tar.gz"));
    if !file.exists() {
        fs::write(&file, sdk_tarball(sdk, "bookworm")).unwrap();
    }
    let mut args = vec!["publish", "dotnet", version, path_str(&file)];
    args.extend_from_slice(extra);
    h.sdk(&args)
}

/// `HOST/oryx/dotnet-sdk:{tag}`.
fn dotnet_ref(h: &Harness, tag: &str) -> String {
    format!("{}/{DOTNET_REPO}:{tag}", h.host())
}

/// `sdk publish dotnet 8.0.100_8.0.0` publishes under `{os}-8.0.100_8.0.0`, the tag Oryx gives
/// .NET: labelled as every platform's image (`org.oryx.version` and the `org.oryx.sdk.version`
/// annotation name the SDK version, the one `sdk default` reads and resolving matches) and
/// with the two .NET labels naming the SDK and its runtime. `--default` points
/// `{os}-default` at it, and the default resolves and installs it. It used to refuse the
/// version with exit code 2, leaving `ocisdk push` by hand.
#[test]
fn publish_of_a_dotnet_version_tags_it_sdk_underscore_runtime_with_the_dotnet_labels() {
    let registry = Registry::start();
    let h = Harness::new(&registry.url());
    let run = publish_dotnet(&h, "8.0.100_8.0.0", &["--default"]).success();
    let reference = dotnet_ref(&h, "bookworm-8.0.100_8.0.0");
    let digest = h.run(&["digest", &reference]).success().stdout;
    assert_eq!(run.stdout, format!("{reference}@{digest}"));
    let said = format!(
        "{} now points at dotnet 8.0.100_8.0.0 ({})",
        dotnet_ref(&h, "bookworm-default"),
        digest.trim_end()
    );
    assert!(run.stderr.contains(&said), "{}", run.stderr);
    let default = h.run(&["digest", &dotnet_ref(&h, "bookworm-default")]);
    assert_eq!(default.success().stdout, digest);

    let labels = &skopeo::inspect(&reference)["Labels"];
    let want = serde_json::json!({
        "org.oryx.dotnet-runtime-version": "8.0.0",
        "org.oryx.dotnet-sdk-version": "8.0.100",
        "org.oryx.os-flavor": "bookworm",
        "org.oryx.platform": "dotnet",
        "org.oryx.version": "8.0.100",
    });
    assert_eq!(labels, &want);
    let manifest = skopeo::inspect_raw_json(&reference);
    assert_eq!(manifest["annotations"]["org.oryx.sdk.version"], "8.0.100");

    let versions = h.sdk(&["versions", "dotnet", "--json"]).success().json();
    let want = serde_json::json!([
        {"runtime": "8.0.0", "tag": "bookworm-8.0.100_8.0.0", "version": "8.0.100"}
    ]);
    assert_eq!(versions, want);
    assert_eq!(
        h.sdk(&["versions", "dotnet"]).success().stdout,
        "8.0.100_8.0.0\n"
    );
    assert_eq!(h.sdk(&["default", "dotnet"]).success().stdout, "8.0.100\n");
    let resolved = h.sdk(&["resolve", "dotnet", "default", "--json"]).success();
    assert_eq!(resolved.json()["tag"], "bookworm-8.0.100_8.0.0");
    let installed = h.sdk(&["install", "dotnet", "default", "--json"]).success();
    assert_eq!(installed.json()["version"], "8.0.100");
    let lib_version = h.root().join("dotnet/8.0.100/lib/VERSION");
    assert_eq!(read(&lib_version), b"8.0.100");

    // --json gives the same reference, and lists both tags.
    let json = publish_dotnet(&h, "8.0.100_8.0.0", &["--default", "--json"]).success();
    let json = json.json();
    assert_eq!(json["reference"], reference, "{json}");
    assert_eq!(json["manifest_digest"], digest.trim_end(), "{json}");
    let tags = serde_json::json!(["bookworm-8.0.100_8.0.0", "bookworm-default"]);
    assert_eq!(json["tags"], tags, "{json}");
}

/// A version with a `_` is .NET's `{sdk}_{runtime}` or nothing: a side missing, a second `_`
/// or a side that is no version is a usage error (exit code 2) that says which, and nothing
/// is uploaded. They used to be refused as a version with an "unexpected character '_'",
/// which did not say that the form exists.
#[test]
fn publish_refuses_a_dotnet_version_that_is_not_sdk_underscore_runtime() {
    let registry = Registry::start();
    let h = Harness::new(&registry.url());
    let form = r#"(the .NET form is {sdk}_{runtime}, like "8.0.100_8.0.0")"#;
    let cases = [
        ("8.0.100_", r#"no runtime version after "_""#),
        ("_8.0.0", r#"no SDK version before "_""#),
        ("8.0.100_8.0.0_1", r#"more than one "_""#),
        (
            "8.0.100_8",
            r#"runtime version "8": needs at least two numeric parts, like "3.11""#,
        ),
        (
            "8.0.x_8.0.0",
            r#"SDK version "8.0.x": part "x" is not a number"#,
        ),
    ];
    for (version, reason) in cases {
        let message = format!("error: invalid version {version:?}: {reason} {form}\n");
        let run = publish_dotnet(&h, version, &[]).expect_code(2);
        assert_eq!(run.stderr, message, "{version}");
        assert_eq!(run.stdout, "", "{version}");
        let error = publish_dotnet(&h, version, &["--json"]).expect_code(2);
        let error = error.error_json();
        assert_eq!(error["kind"], "usage", "{version}: {error}");
    }
    let tags = h.run(&["tags", &format!("{}/{DOTNET_REPO}", h.host())]);
    tags.expect_code(3);
}

/// A published .NET SDK is found by either spelling. `8.0.100_8.0.0`, as `sdk versions`
/// lists it, is looked up by its tag alone (one manifest GET, which the install reuses);
/// `8.0.100`, the SDK version, by the listing, as before. Both install into
/// `ROOT/dotnet/8.0.100`, the folder an SDK version names, so the second finds it installed,
/// and `sdk pull` names the tarball for the SDK version too. The `{sdk}_{runtime}` spelling
/// used to be an invalid spec (exit code 2).
#[test]
fn a_published_dotnet_sdk_installs_by_its_sdk_version_and_by_sdk_underscore_runtime() {
    let registry = Registry::start();
    let h = Harness::new(&registry.url());
    publish_dotnet(&h, "8.0.100_8.0.0", &[]).success();
    let tarball = read(&h.work().join("dotnet-bookworm-8.0.100.tar.gz"));
    let proxy = ScriptedServer::proxy_to(&registry.url());
    let sdk = |args: &[&str]| {
        proxy.clear_requests();
        let json = h.sdk_via(&proxy.url(), args).success().json();
        (json, requests_to(&proxy.requests(), "/v2/"))
    };
    let tag = "bookworm-8.0.100_8.0.0";
    let manifest_get = format!("GET /v2/{DOTNET_REPO}/manifests/{tag}");
    let blob_get = format!("GET /v2/{DOTNET_REPO}/blobs/{}", digest_of(&tarball));

    let (resolved, asked) = sdk(&["resolve", "dotnet", "8.0.100_8.0.0", "--json"]);
    let want = serde_json::json!({
        "os": "bookworm",
        "platform": "dotnet",
        "reference": format!("{}/{DOTNET_REPO}:{tag}", proxy.host()),
        "tag": tag,
        "version": "8.0.100",
    });
    assert_eq!(resolved, want);
    assert_eq!(asked, [manifest_get.as_str()]);
    let (resolved, _) = sdk(&["resolve", "dotnet", "8.0.100", "--json"]);
    assert_eq!(resolved, want);

    let (installed, asked) = sdk(&["install", "dotnet", "8.0.100_8.0.0", "--json"]);
    let path = h.root().join("dotnet/8.0.100");
    let want = serde_json::json!({
        "cached": false,
        "manifest_digest": h.run(&["digest", &dotnet_ref(&h, tag)]).success().stdout.trim_end(),
        "path": path_str(&path),
        "platform": "dotnet",
        "version": "8.0.100",
    });
    assert_eq!(installed, want);
    assert_eq!(read(&path.join("lib/VERSION")), b"8.0.100");
    assert!(path.join(SENTINEL).is_file());
    assert_eq!(asked, [manifest_get.as_str(), &blob_get]);

    let (installed, _) = sdk(&["install", "dotnet", "8.0.100", "--json"]);
    assert_eq!(installed["cached"], true, "{installed}");
    assert_eq!(installed["path"], path_str(&path), "{installed}");
    let both = [
        "install",
        "dotnet",
        "8.0.100",
        "8.0.100_8.0.0",
        "--force",
        "--json",
    ];
    let (installed, _) = sdk(&both);
    // One install, reported for each spelling.
    assert_eq!(installed[0], installed[1], "{installed}");
    assert_eq!(installed[0]["path"], path_str(&path), "{installed}");
    assert_eq!(installed[0]["cached"], false, "{installed}");

    let out = h.work().join("pulled");
    let pull = [
        "pull",
        "dotnet",
        "8.0.100_8.0.0",
        "-o",
        path_str(&out),
        "--json",
    ];
    let (pulled, _) = sdk(&pull);
    let written = out.join("dotnet-bookworm-8.0.100.tar.gz");
    assert_eq!(pulled["pull"]["path"], path_str(&written), "{pulled}");
    assert_same_bytes(&read(&written), &tarball, "pulled .NET tarball");
}

/// A .NET spec names the runtime as well: only that runtime's tags match it, when it is
/// resolved by the listing (its own tag spelled otherwise, `8.0.100_8.0.1.0`) and when
/// `sdk mirror` picks the tags to copy. When none matches, the nearest are named as the tags
/// are, runtime and all. A spec with an empty side, a second `_` or a side that is no version
/// is a usage error that says which.
#[test]
fn a_dotnet_spec_matches_only_the_tags_of_its_runtime() {
    let registry = Registry::start();
    let h = Harness::new(&registry.url());
    for version in ["8.0.100_8.0.0", "8.0.100_8.0.1", "8.0.200_8.0.1"] {
        publish_dotnet(&h, version, &[]).success();
    }
    let resolve = |spec: &str| h.sdk(&["resolve", "dotnet", spec, "--json"]);
    let resolved = resolve("8.0.100_8.0.1.0").success().json();
    assert_eq!(resolved["tag"], "bookworm-8.0.100_8.0.1", "{resolved}");
    assert_eq!(resolved["version"], "8.0.100", "{resolved}");
    let resolved = resolve("8.0.100_8.0.0").success().json();
    assert_eq!(resolved["tag"], "bookworm-8.0.100_8.0.0", "{resolved}");

    let run = h
        .sdk(&["resolve", "dotnet", "8.0.100_8.0.2"])
        .expect_code(3);
    let message = format!(
        "error: no dotnet version matches \"8.0.100_8.0.2\" for bookworm in {}/{DOTNET_REPO}; \
         nearest: 8.0.100_8.0.0, 8.0.100_8.0.1, 8.0.200_8.0.1\n",
        h.host()
    );
    assert_eq!(run.stderr, message);

    let sources = mirror_sources(&h, &h.url, &["dotnet", "8.0.100_8.0.1"]);
    assert_eq!(sources, [dotnet_ref(&h, "bookworm-8.0.100_8.0.1")]);

    let form = r#"(the .NET form is {sdk}_{runtime}, like "8.0.100_8.0.0")"#;
    for (spec, reason) in [
        ("8.0.100_", r#"no runtime version after "_""#),
        ("_8.0.0", r#"no SDK version before "_""#),
        ("8.0.100_8.0.0_1", r#"more than one "_""#),
        (
            ">=8.0_8.0.0",
            r#"SDK version ">=8.0": part ">=8" is not a number"#,
        ),
    ] {
        let message = format!("error: invalid version spec {spec:?}: {reason} {form}\n");
        for command in ["resolve", "install"] {
            let run = h.sdk(&[command, "dotnet", spec]).expect_code(2);
            assert_eq!(run.stderr, message, "{command} {spec}");
        }
    }
}

/// The install record of `ROOT/{platform}/{version}`, parsed.
fn install_record(h: &Harness, platform: &str, version: &str) -> serde_json::Value {
    let path = h.root().join(platform).join(version).join(INSTALL_RECORD);
    serde_json::from_slice(&read(&path)).unwrap()
}

/// The entry of `sdk list-installed --json` for `platform` `version`.
fn listed(h: &Harness, platform: &str, version: &str) -> serde_json::Value {
    let all = h.sdk(&["list-installed", "--json"]).success().json();
    let entry = all
        .as_array()
        .unwrap()
        .iter()
        .find(|entry| entry["platform"] == platform && entry["version"] == version);
    entry
        .cloned()
        .unwrap_or_else(|| panic!("{platform} {version} not in {all}"))
}

/// An install records the image it came from in its folder (`.ocisdk-install.json`, written
/// with the sentinel, which stays empty): the reference with its tag, the manifest digest,
/// the SDK version and the .NET runtime (null for other platforms). `list-installed --json`
/// gives the digest and runtime from it; an install without a record (made before records
/// were kept) is listed as it was, without either.
#[test]
fn an_install_records_its_image_and_list_installed_shows_its_digest_and_runtime() {
    let registry = Registry::start();
    let h = Harness::new(&registry.url());
    publish_dotnet(&h, "8.0.100_8.0.0", &[]).success();
    h.publish("3.12.1", "bookworm", false);
    h.sdk(&["install", "dotnet", "8.0.100_8.0.0"]).success();
    h.sdk(&["install", "python", "3.12.1"]).success();
    let digest_of_tag = |reference: &str| h.run(&["digest", reference]).success().stdout;
    let dotnet = dotnet_ref(&h, "bookworm-8.0.100_8.0.0");
    let dotnet_digest = digest_of_tag(&dotnet);
    let python = h.python_ref("bookworm-3.12.1");
    let python_digest = digest_of_tag(&python);

    let record = install_record(&h, "dotnet", "8.0.100");
    let want = serde_json::json!({
        "image": dotnet,
        "manifest_digest": dotnet_digest.trim_end(),
        "version": "8.0.100",
        "runtime": "8.0.0",
    });
    assert_eq!(record, want);
    assert_eq!(read(&h.root().join("dotnet/8.0.100").join(SENTINEL)), b"");
    let record = install_record(&h, "python", "3.12.1");
    assert_eq!(record["image"], python.as_str(), "{record}");
    assert_eq!(record["runtime"], serde_json::Value::Null, "{record}");

    let entry = listed(&h, "dotnet", "8.0.100");
    assert_eq!(
        entry["manifest_digest"],
        dotnet_digest.trim_end(),
        "{entry}"
    );
    assert_eq!(entry["runtime"], "8.0.0", "{entry}");
    let entry = listed(&h, "python", "3.12.1");
    assert_eq!(
        entry["manifest_digest"],
        python_digest.trim_end(),
        "{entry}"
    );
    assert_eq!(entry["runtime"], serde_json::Value::Null, "{entry}");

    fs::remove_file(h.root().join("dotnet/8.0.100").join(INSTALL_RECORD)).unwrap();
    let entry = listed(&h, "dotnet", "8.0.100");
    let path = h.root().join("dotnet/8.0.100");
    let before = serde_json::json!({
        "cached": true,
        "path": path_str(&path),
        "platform": "dotnet",
        "version": "8.0.100",
    });
    assert_eq!(entry, before);
}

/// `ROOT/dotnet/8.0.100` installed from runtime 8.0.0 is not `8.0.100_8.0.1`: installing that
/// is refused (exit code 2, kind `usage`), naming the runtime installed and `--force`, and
/// changes nothing, as is `8.0.100` alone, which resolves to the highest runtime's tag,
/// 8.0.1's. `--force` replaces it. `8.0.100_8.0.0` finds it installed; so does
/// `8.0.100_8.0.1` once the folder has no record (an install made before records were
/// kept), as before. Both used to find it installed, reporting `cached`.
#[test]
fn installing_another_runtime_of_an_installed_dotnet_sdk_version_is_refused_unless_forced() {
    let registry = Registry::start();
    let h = Harness::new(&registry.url());
    for version in ["8.0.100_8.0.0", "8.0.100_8.0.1"] {
        publish_dotnet(&h, version, &[]).success();
    }
    h.sdk(&["install", "dotnet", "8.0.100_8.0.0"]).success();
    let folder = h.root().join("dotnet/8.0.100");
    let record = install_record(&h, "dotnet", "8.0.100");
    assert_eq!(record["runtime"], "8.0.0", "{record}");

    for spec in ["8.0.100_8.0.1", "8.0.100"] {
        let run = h.sdk(&["install", "dotnet", spec]).expect_code(2);
        let message = format!(
            "error: dotnet 8.0.100 is installed in {} with runtime 8.0.0, not runtime 8.0.1 as \
             asked: nothing was changed; --force replaces it\n",
            folder.display()
        );
        assert_eq!(run.stderr, message, "{spec}");
        let error = h
            .sdk(&["install", "dotnet", spec, "--json"])
            .expect_code(2)
            .error_json();
        assert_eq!(error["kind"], "usage", "{error}");
        assert_eq!(install_record(&h, "dotnet", "8.0.100"), record, "{spec}");
    }
    let same = h.sdk(&["install", "dotnet", "8.0.100_8.0.0", "--json"]);
    assert_eq!(same.success().json()["cached"], true);

    let forced = ["install", "dotnet", "8.0.100_8.0.1", "--force", "--json"];
    let installed = h.sdk(&forced).success().json();
    assert_eq!(installed["cached"], false, "{installed}");
    let record = install_record(&h, "dotnet", "8.0.100");
    assert_eq!(record["runtime"], "8.0.1", "{record}");
    assert_eq!(record["manifest_digest"], installed["manifest_digest"]);
    assert!(folder.join(SENTINEL).is_file());

    fs::remove_file(folder.join(INSTALL_RECORD)).unwrap();
    let old = h.sdk(&["install", "dotnet", "8.0.100_8.0.0", "--json"]);
    assert_eq!(old.success().json()["cached"], true);
}

/// `sdk uninstall dotnet 8.0.100_8.0.0`, as `sdk versions` lists it, removes
/// `ROOT/dotnet/8.0.100` when that came from runtime 8.0.0's image, or has no record to say
/// (an install made before records were kept); installed from another runtime, it is not
/// installed (exit code 3), and the error names the runtime that is. It used to be refused
/// whatever was installed, naming only 8.0.100.
#[test]
fn uninstall_of_a_dotnet_sdk_underscore_runtime_removes_its_sdk_versions_folder() {
    let registry = Registry::start();
    let h = Harness::new(&registry.url());
    publish_dotnet(&h, "8.0.100_8.0.0", &[]).success();
    h.sdk(&["install", "dotnet", "8.0.100_8.0.0"]).success();
    let folder = h.root().join("dotnet/8.0.100");

    let run = h
        .sdk(&["uninstall", "dotnet", "8.0.100_8.0.1"])
        .expect_code(3);
    let message = format!(
        "error: dotnet 8.0.100_8.0.1: not installed in {} (see sdk list-installed); nothing \
         was removed; nearest installed: 8.0.100_8.0.0\n",
        h.root().display()
    );
    assert_eq!(run.stderr, message);
    assert!(folder.join(SENTINEL).is_file());

    let run = h.sdk(&["uninstall", "dotnet", "8.0.100_8.0.0"]).success();
    assert_eq!(run.stdout, format!("{}\n", folder.display()));
    assert!(!folder.exists());

    h.sdk(&["install", "dotnet", "8.0.100_8.0.0"]).success();
    fs::remove_file(folder.join(INSTALL_RECORD)).unwrap();
    let removed = h
        .sdk(&["uninstall", "dotnet", "8.0.100_8.0.0", "--json"])
        .success()
        .json();
    assert_eq!(removed[0]["version"], "8.0.100", "{removed}");
    assert!(!folder.exists());
}

/// A proxy to `upstream` that lists tags sorted (with `reverse`, in reverse): a CNCF
/// distribution registry lists them in the order of its folder entries, which a test cannot
/// choose.
fn proxy_sorting_tags(upstream: &str, reverse: bool) -> ScriptedServer {
    let upstream = upstream.to_string();
    ScriptedServer::start(move |req| {
        let mut response = forward(req, &upstream);
        if req.path().ends_with("/tags/list") && response.status == 200 {
            let mut list: serde_json::Value = serde_json::from_slice(&response.body).unwrap();
            let tags = list["tags"].as_array_mut().expect("a tag list");
            tags.sort_by(|a, b| a.as_str().cmp(&b.as_str()));
            if reverse {
                tags.reverse();
            }
            response.body = serde_json::to_vec(&list).unwrap();
        }
        response
    })
}

/// Of two tags of one .NET SDK version (runtimes 8.0.0 and 8.0.1), the SDK version alone, or
/// `latest`, resolves and installs the one of the highest runtime, whichever order the
/// registry lists them in. It used to take the one listed first.
#[test]
fn an_sdk_version_listed_with_two_runtimes_resolves_to_the_highest_runtime_in_any_order() {
    let registry = Registry::start();
    let h = Harness::new(&registry.url());
    for version in ["8.0.100_8.0.0", "8.0.100_8.0.1"] {
        publish_dotnet(&h, version, &[]).success();
    }
    let want = "bookworm-8.0.100_8.0.1";
    let digest = h.run(&["digest", &dotnet_ref(&h, want)]).success().stdout;
    for reverse in [false, true] {
        let proxy = proxy_sorting_tags(&registry.url(), reverse);
        for spec in ["8.0.100", "latest"] {
            let resolve = ["resolve", "dotnet", spec, "--json"];
            let resolved = h.sdk_via(&proxy.url(), &resolve).success().json();
            assert_eq!(
                resolved["tag"], want,
                "{spec}, reverse {reverse}: {resolved}"
            );
        }
        let install = ["install", "dotnet", "8.0.100", "--force", "--json"];
        let installed = h.sdk_via(&proxy.url(), &install).success().json();
        assert_eq!(
            installed["manifest_digest"],
            digest.trim_end(),
            "reverse {reverse}: {installed}"
        );
    }
}

/// A tag whose runtime is a pre-release (8.0.100_8.0.1-rc.1) is a pre-release, even of a
/// stable SDK version: without `--pre` the SDK version, `latest` and `sdk mirror` take the
/// tag of the stable runtime 8.0.0 instead; with `--pre` the highest runtime's, and a spec
/// naming that runtime finds it without `--pre`. They used to take the pre-release runtime's
/// tag, being the highest, without `--pre`.
#[test]
fn a_prerelease_runtime_of_an_sdk_version_is_taken_only_with_pre() {
    let registry = Registry::start();
    let h = Harness::new(&registry.url());
    for version in ["8.0.100_8.0.0", "8.0.100_8.0.1-rc.1"] {
        publish_dotnet(&h, version, &[]).success();
    }
    let tag = |args: &[&str]| {
        let mut all = vec!["resolve", "dotnet"];
        all.extend_from_slice(args);
        all.push("--json");
        h.sdk(&all).success().json()["tag"].clone()
    };
    for spec in ["8.0.100", "latest", "8.0"] {
        assert_eq!(tag(&[spec]), "bookworm-8.0.100_8.0.0", "{spec}");
        let pre = tag(&[spec, "--pre"]);
        assert_eq!(pre, "bookworm-8.0.100_8.0.1-rc.1", "{spec} --pre");
    }
    let named = tag(&["8.0.100_8.0.1-rc.1"]);
    assert_eq!(named, "bookworm-8.0.100_8.0.1-rc.1");

    let mirror = |args: &[&str]| {
        let mut all = vec!["dotnet"];
        all.extend_from_slice(args);
        mirror_sources(&h, &h.url, &all)
    };
    let stable = [dotnet_ref(&h, "bookworm-8.0.100_8.0.0")];
    let both = [
        dotnet_ref(&h, "bookworm-8.0.100_8.0.0"),
        dotnet_ref(&h, "bookworm-8.0.100_8.0.1-rc.1"),
    ];
    assert_eq!(mirror(&[]), stable);
    assert_eq!(mirror(&["8.0.100"]), stable);
    assert_eq!(mirror(&["--pre"]), both);
    assert_eq!(mirror(&["8.0.100", "--pre"]), both);
}

/// A default image labelled with no runtime is the tag that names none: with `{os}-8.0.100`
/// (published before .NET versions took a runtime) as the default and `{os}-8.0.100_8.0.1`
/// listed too, `default` resolves and installs `{os}-8.0.100`, and `sdk mirror` copies it
/// with the default tag. They used to take `{os}-8.0.100_8.0.1`, the highest runtime's, an
/// image the default tag does not point at.
#[test]
fn a_default_labelled_with_no_runtime_is_the_tag_without_one() {
    let registry = Registry::start();
    let h = Harness::new(&registry.url());
    publish_dotnet(&h, "8.0.100", &["--default"]).success();
    publish_dotnet(&h, "8.0.100_8.0.1", &[]).success();
    let want = "bookworm-8.0.100";
    let digest = h.run(&["digest", &dotnet_ref(&h, want)]).success().stdout;
    let default = h.run(&["digest", &dotnet_ref(&h, "bookworm-default")]);
    assert_eq!(default.success().stdout, digest);

    let resolve = ["resolve", "dotnet", "default", "--json"];
    let resolved = h.sdk(&resolve).success().json();
    assert_eq!(resolved["tag"], want, "{resolved}");
    let named = h.sdk(&["default", "dotnet", "--json"]).success().json();
    assert_eq!(
        (&named["tag"], &named["runtime"]),
        (&want.into(), &serde_json::Value::Null)
    );
    let install = ["install", "dotnet", "default", "--json"];
    let installed = h.sdk(&install).success().json();
    assert_eq!(
        installed["manifest_digest"],
        digest.trim_end(),
        "{installed}"
    );

    let sources = mirror_sources(&h, &h.url, &["dotnet", "8.0.100_8.0.1"]);
    let want_sources = [
        dotnet_ref(&h, "bookworm-8.0.100"),
        dotnet_ref(&h, "bookworm-8.0.100_8.0.1"),
        dotnet_ref(&h, "bookworm-default"),
    ];
    assert_eq!(sources, want_sources);
}

/// `sdk default dotnet --json` names the default image's tag and runtime: with
/// 8.0.100_8.0.0 the default and 8.0.100_8.0.1 listed too, `{version}_{runtime}` fed back to
/// `sdk install` installs the image `sdk install dotnet default` installs, the default's. It
/// used to give the SDK version alone, which installs the highest runtime's image,
/// 8.0.100_8.0.1. The text stays the SDK version, the name of its install folder.
#[test]
fn default_of_dotnet_names_the_tag_and_runtime_of_the_default_image() {
    let registry = Registry::start();
    let h = Harness::new(&registry.url());
    publish_dotnet(&h, "8.0.100_8.0.0", &["--default"]).success();
    publish_dotnet(&h, "8.0.100_8.0.1", &[]).success();
    let default = h.run(&["digest", &dotnet_ref(&h, "bookworm-default")]);
    let digest = default.success().stdout.trim_end().to_owned();

    let named = h.sdk(&["default", "dotnet", "--json"]).success().json();
    let tag = "bookworm-8.0.100_8.0.0";
    let want = serde_json::json!({
        "os": "bookworm",
        "platform": "dotnet",
        "reference": dotnet_ref(&h, tag),
        "runtime": "8.0.0",
        "tag": tag,
        "version": "8.0.100",
    });
    assert_eq!(named, want);
    assert_eq!(h.sdk(&["default", "dotnet"]).success().stdout, "8.0.100\n");

    let spec = format!(
        "{}_{}",
        named["version"].as_str().unwrap(),
        named["runtime"].as_str().unwrap()
    );
    let installed = h
        .sdk(&["install", "dotnet", &spec, "--json"])
        .success()
        .json();
    assert_eq!(installed["manifest_digest"], digest, "{installed}");
    let install = ["install", "dotnet", "default", "--force", "--json"];
    let installed = h.sdk(&install).success().json();
    assert_eq!(installed["manifest_digest"], digest, "{installed}");
}

/// When `{os}-default` points at one of two tags of a .NET SDK version (8.0.100_8.0.0, where
/// 8.0.100_8.0.1 is listed too), `default` resolves and installs that one, as its image's
/// runtime label says, whichever order the registry lists them in; `sdk mirror` copies it
/// with the default tag. It used to take a tag of the SDK version the default names, not the
/// default's own.
#[test]
fn the_default_of_an_sdk_version_listed_with_two_runtimes_is_the_default_images_runtime() {
    let registry = Registry::start();
    let h = Harness::new(&registry.url());
    publish_dotnet(&h, "8.0.100_8.0.0", &["--default"]).success();
    publish_dotnet(&h, "8.0.100_8.0.1", &[]).success();
    let want = "bookworm-8.0.100_8.0.0";
    let digest = h.run(&["digest", &dotnet_ref(&h, want)]).success().stdout;
    let default = h.run(&["digest", &dotnet_ref(&h, "bookworm-default")]);
    assert_eq!(default.success().stdout, digest);
    for reverse in [false, true] {
        let proxy = proxy_sorting_tags(&registry.url(), reverse);
        let resolve = ["resolve", "dotnet", "default", "--json"];
        let resolved = h.sdk_via(&proxy.url(), &resolve).success().json();
        assert_eq!(resolved["tag"], want, "reverse {reverse}: {resolved}");
        let install = ["install", "dotnet", "default", "--force", "--json"];
        let installed = h.sdk_via(&proxy.url(), &install).success().json();
        assert_eq!(
            installed["manifest_digest"],
            digest.trim_end(),
            "reverse {reverse}: {installed}"
        );

        let sources = mirror_sources(&h, &proxy.url(), &["dotnet", "8.0.100_8.0.1"]);
        let tag_at_proxy = |tag: &str| format!("{}/{DOTNET_REPO}:{tag}", proxy.host());
        let want_sources = [
            tag_at_proxy("bookworm-8.0.100_8.0.0"),
            tag_at_proxy("bookworm-8.0.100_8.0.1"),
            tag_at_proxy("bookworm-default"),
        ];
        assert_eq!(sources, want_sources, "reverse {reverse}");
    }
}

/// An empty --os or --root is a usage error, not the empty flavour (no versions, exit 0) or
/// the current folder; an empty --prefix stays valid (no prefix).
#[test]
fn empty_catalogue_flags_are_usage_errors() {
    let c = catalogue();
    let h = c.harness();
    for flag in ["--os", "--root", "--registry", "--repo-template"] {
        let run = h
            .run(&["sdk", "versions", "python", flag, ""])
            .expect_code(2);
        assert!(run.stderr.contains(flag), "{flag}: {}", run.stderr);
    }
    let run = h.sdk(&[
        "versions",
        "python",
        "--prefix",
        "",
        "--repo-template",
        "oryx/{platform}-sdk",
    ]);
    assert_eq!(run.success().stdout, one_per_line(&BOOKWORM));
}

/// `--jobs 0` would run nothing at once: every command that takes `--jobs` refuses it, as
/// `copy` and `sdk mirror` always did (`sdk install` and `sdk sync` used to take it as 1).
#[test]
fn jobs_zero_is_a_usage_error_for_every_command_that_takes_jobs() {
    let c = catalogue();
    let h = c.harness();
    let list = h.work().join("sdks.txt");
    fs::write(&list, "python 3.11.10\n").unwrap();
    let to = format!("oci:{}", path_str(&h.work().join("mirror")));
    let commands: [&[&str]; 3] = [
        &["install", "python", "3.11.10"],
        &["sync", path_str(&list)],
        &["mirror", "python", "3.11.10", "--to", &to],
    ];
    for args in commands {
        let mut args = args.to_vec();
        args.extend_from_slice(&["--jobs", "0"]);
        let run = h.sdk(&args).expect_code(2);
        assert!(
            run.stderr.contains("'--jobs <N>'"),
            "{args:?}: {}",
            run.stderr
        );
    }
    assert!(list_dir(&h.root()).is_empty(), "nothing was installed");
}

#[test]
fn first_pull_gets_the_manifest_once_and_second_only_heads_it() {
    let c = catalogue();
    let h = c.harness();
    let proxy = ScriptedServer::proxy_to(&c.registry.url());
    let out = h.work().join("pulled");
    let args = ["pull", "python", "3.11", "-o", path_str(&out), "--json"];

    let first = h.sdk_via(&proxy.url(), &args).success().json();
    assert_eq!(first["cached"], false, "{first}");
    // The proxy sees downloads, so the check below cannot pass vacuously.
    assert!(!blob_requests(&proxy).is_empty(), "{:?}", proxy.requests());
    // With nothing on disk there is nothing to HEAD for: one GET names the digest and
    // brings the manifest.
    assert_eq!(
        manifest_requests(&proxy),
        [format!("GET /v2/{PYTHON_REPO}/manifests/bookworm-3.11.10")]
    );

    proxy.clear_requests();
    let second = h.sdk_via(&proxy.url(), &args).success().json();
    assert_eq!(second["cached"], true, "{second}");
    assert_eq!(blob_requests(&proxy), Vec::<String>::new());
    assert_eq!(
        manifest_requests(&proxy),
        [format!("HEAD /v2/{PYTHON_REPO}/manifests/bookworm-3.11.10")]
    );
    assert_same_bytes(
        &read(&out.join("python-bookworm-3.11.10.tar.gz")),
        c.tarball("bookworm-3.11.10"),
        "cached tarball",
    );
}

/// A version named in full is looked up by its tag alone: an install or pull from an empty
/// cache is one manifest GET and one blob GET, never the tag list (many pages, each a round
/// trip, on a large registry), since the pull uses the manifest that resolving fetched. The
/// answer is the one the listing gave.
#[test]
fn an_exact_version_is_fetched_by_its_tag_without_listing_the_tags() {
    let c = catalogue();
    let h = c.harness();
    let proxy = ScriptedServer::proxy_to(&c.registry.url());
    let tag = "bookworm-3.11.10";
    let manifest_get = format!("GET /v2/{PYTHON_REPO}/manifests/{tag}");
    let blob_get = format!("GET /v2/{PYTHON_REPO}/blobs/{}", digest_of(c.tarball(tag)));
    let sdk = |args: &[&str]| {
        proxy.clear_requests();
        let json = h.sdk_via(&proxy.url(), args).success().json();
        (json, requests_to(&proxy.requests(), "/v2/"))
    };

    let (resolved, asked) = sdk(&["resolve", "python", "3.11.10", "--json"]);
    let want = serde_json::json!({
        "os": "bookworm",
        "platform": "python",
        "reference": format!("{}/{PYTHON_REPO}:{tag}", proxy.host()),
        "tag": tag,
        "version": "3.11.10",
    });
    assert_eq!(resolved, want);
    assert_eq!(asked, [manifest_get.as_str()]);

    let (installed, asked) = sdk(&["install", "python", "3.11.10", "--json"]);
    assert_eq!(installed["cached"], false, "{installed}");
    assert_complete_install(&h, "3.11.10");
    assert_eq!(asked, [manifest_get.as_str(), &blob_get]);

    let out = h.work().join("pulled");
    let pull = ["pull", "python", "3.11.10", "-o", path_str(&out), "--json"];
    let (pulled, asked) = sdk(&pull);
    assert_eq!(pulled["cached"], false, "{pulled}");
    assert_same_bytes(
        &read(&out.join("python-bookworm-3.11.10.tar.gz")),
        c.tarball(tag),
        "pulled tarball",
    );
    assert_eq!(asked, [manifest_get.as_str(), &blob_get]);
    // The manifest resolving fetched says the copy is current, as a HEAD would.
    let (pulled, asked) = sdk(&pull);
    assert_eq!(pulled["cached"], true, "{pulled}");
    assert_eq!(asked, [manifest_get.as_str()]);
}

/// A full version whose own tag is missing is resolved by the listing, as before: a
/// four-part version of it, a .NET `{sdk}_{runtime}` tag, and when nothing matches, the
/// nearest versions. Only the tag's 404 comes first. With `--pre`, an existing release tag
/// still beats its pre-releases.
#[test]
fn an_exact_version_without_its_own_tag_is_resolved_by_the_listing_as_before() {
    let registry = Registry::start();
    let h = Harness::new(&registry.url());
    for version in ["3.11.9", "3.11.10.2", "3.12.4rc1", "3.12.4", "3.12.5rc1"] {
        h.publish(version, "bookworm", false);
    }
    // .NET tags its images `{os}-{sdk}_{runtime}`, which the SDK version alone does not name.
    publish_dotnet(&h, "8.0.100_8.0.0", &[]).success();
    let dotnet = h.work().join("dotnet-bookworm-8.0.100.tar.gz");
    let proxy = ScriptedServer::proxy_to(&registry.url());
    let sdk = |args: &[&str]| {
        proxy.clear_requests();
        let run = h.sdk_via(&proxy.url(), args);
        (run, requests_to(&proxy.requests(), "/v2/"))
    };
    let missing_then_listed = |repo: &str, tag: &str| {
        [
            format!("GET /v2/{repo}/manifests/{tag}"),
            format!("GET /v2/{repo}/tags/list"),
        ]
    };

    let (run, asked) = sdk(&["resolve", "python", "3.11.10"]);
    assert_eq!(run.success().stdout, "3.11.10.2\n");
    assert_eq!(asked, missing_then_listed(PYTHON_REPO, "bookworm-3.11.10"));

    let (run, asked) = sdk(&["resolve", "python", "3.12.5"]);
    let run = run.expect_code(3);
    let nearest = format!(
        "error: no python version matches \"3.12.5\" for bookworm in {}/{PYTHON_REPO}; \
         nearest: 3.12.4rc1, 3.12.4, 3.12.5rc1\n",
        proxy.host()
    );
    assert_eq!(run.stderr, nearest);
    assert_eq!(asked, missing_then_listed(PYTHON_REPO, "bookworm-3.12.5"));

    let (run, asked) = sdk(&["resolve", "python", "3.12.4", "--pre"]);
    assert_eq!(run.success().stdout, "3.12.4\n");
    assert_eq!(
        asked,
        [format!("GET /v2/{PYTHON_REPO}/manifests/bookworm-3.12.4")]
    );

    let (run, asked) = sdk(&["install", "dotnet", "8.0.100", "--json"]);
    let installed = run.success().json();
    assert_eq!(installed["version"], "8.0.100", "{installed}");
    let lib_version = h.root().join("dotnet/8.0.100/lib/VERSION");
    assert_eq!(read(&lib_version), b"8.0.100");
    let mut want = missing_then_listed("oryx/dotnet-sdk", "bookworm-8.0.100").to_vec();
    want.push("GET /v2/oryx/dotnet-sdk/manifests/bookworm-8.0.100_8.0.0".into());
    want.push(format!(
        "GET /v2/oryx/dotnet-sdk/blobs/{}",
        digest_of(&read(&dotnet))
    ));
    assert_eq!(asked, want);
}

/// Specs that name no version in full still list the tags and fetch no tag of their own;
/// so do several specs of one platform, which share one listing instead of a round trip
/// each before any install starts.
#[test]
fn series_default_prerelease_and_several_specs_list_the_tags_once() {
    let c = catalogue();
    let h = c.harness();
    let proxy = ScriptedServer::proxy_to(&c.registry.url());
    let default_tag = format!("GET /v2/{PYTHON_REPO}/manifests/bookworm-default");
    for (spec, want, manifests) in [
        ("3.11", "3.11.10", &[][..]),
        ("3.13.0rc1", "3.13.0rc1", &[]),
        ("latest", "3.12.4", &[]),
        ("default", DEFAULT, &[default_tag]),
    ] {
        proxy.clear_requests();
        let run = h.sdk_via(&proxy.url(), &["resolve", "python", spec]);
        assert_eq!(run.success().stdout, format!("{want}\n"), "{spec}");
        let requests = requests_to(&proxy.requests(), "/v2/");
        let listings = requests_to(&proxy.requests(), "/tags/list");
        assert_eq!(listings.len(), 1, "{spec}: {requests:?}");
        assert_eq!(manifest_requests(&proxy), manifests, "{spec}");
    }

    proxy.clear_requests();
    h.sdk_via(&proxy.url(), &["install", "python", "3.11.9", "3.12.4"])
        .success();
    let requests = requests_to(&proxy.requests(), "/v2/");
    assert_eq!(requests[0], format!("GET /v2/{PYTHON_REPO}/tags/list"));
    assert_eq!(
        requests_to(&proxy.requests(), "/tags/list").len(),
        1,
        "{requests:?}"
    );
    assert_eq!(manifest_requests(&proxy).len(), 2, "{requests:?}");
}

#[test]
fn pull_after_the_tag_moved_downloads_the_new_tarball() {
    let registry = Registry::start();
    let h = Harness::new(&registry.url());
    h.publish("3.11.10", "bookworm", false);
    let out = h.work().join("pulled");
    let args = ["pull", "python", "3.11.10", "-o", path_str(&out), "--json"];
    h.sdk(&args).success();

    // Republished with other content: the tag now names another manifest.
    let rebuilt = sdk_tarball("3.11.10", "bookworm-rebuilt");
    h.publish_bytes("3.11.10", "bookworm", false, &rebuilt);
    let json = h.sdk(&args).success().json();
    assert_eq!(json["cached"], false, "{json}");
    assert_same_bytes(
        &read(&out.join("python-bookworm-3.11.10.tar.gz")),
        &rebuilt,
        "tarball after the tag moved",
    );
    let digest = h
        .run(&["digest", &h.python_ref("bookworm-3.11.10")])
        .success()
        .stdout;
    let sidecar = read(&out.join("python-bookworm-3.11.10.tar.gz.manifest-digest"));
    assert_eq!(String::from_utf8(sidecar).unwrap().trim(), digest.trim());
}

#[test]
fn pull_does_not_vouch_for_a_damaged_cached_tarball() {
    let c = catalogue();
    let h = c.harness();
    let out = h.work().join("pulled");
    let args = ["pull", "python", "3.11.10", "-o", path_str(&out), "--json"];
    h.sdk(&args).success();
    let tarball = out.join("python-bookworm-3.11.10.tar.gz");
    let published = c.tarball("bookworm-3.11.10");
    // Damaged in place (a truncated copy, a disk error): the sidecar still matches the tag.
    fs::write(&tarball, &published[..published.len() / 2]).unwrap();

    let run = h.sdk(&args);
    if run.code == 0 {
        // Either it downloads again and gives the right bytes...
        assert_same_bytes(&read(&tarball), published, "pull after damage");
    } else {
        // ...or it refuses, without leaving the damaged file as if it were the SDK.
        assert!(!tarball.exists(), "damaged tarball left in place");
    }
}

/// The files named `name` anywhere under `dir`.
fn find_files(dir: &Path, name: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir).into_iter().flatten() {
        let entry = entry.unwrap();
        let path = entry.path();
        if entry.file_type().unwrap().is_dir() {
            found.extend(find_files(&path, name));
        } else if entry.file_name() == name {
            found.push(path);
        }
    }
    found
}

#[test]
fn install_recovers_from_a_damaged_cached_tarball() {
    let c = catalogue();
    let h = c.harness();
    h.sdk(&["install", "python", "3.11.10"]).success();
    let cached = find_files(&h.cache(), "python-bookworm-3.11.10.tar.gz");
    assert_eq!(cached.len(), 1, "cached tarballs: {cached:?}");
    let published = c.tarball("bookworm-3.11.10");
    fs::write(&cached[0], &published[..published.len() / 2]).unwrap();

    // Another install root sharing the cache.
    fs::remove_dir_all(h.root()).unwrap();
    let run = h.sdk(&["install", "python", "3.11.10"]);
    let retry = h.sdk(&["install", "python", "3.11.10"]);
    assert!(
        run.code == 0 || retry.code == 0,
        "the damaged cache breaks installs for good:\n{}\n{}",
        run.stderr,
        retry.stderr
    );
    assert_complete_install(&h, "3.11.10");
}

/// Pushes, with skopeo, an image whose single layer is a filesystem tar holding
/// `python-bookworm-{version}.tar.gz` (the `FROM scratch` + `COPY` shape). Returns the layer.
fn push_filesystem_layer_image(
    h: &Harness,
    version: &str,
    inner: &[u8],
    format: Format,
) -> Vec<u8> {
    let layer = fs_layer_holding(&format!("python-bookworm-{version}.tar.gz"), inner);
    push_layer_image(h, version, &layer, format, &[]);
    layer
}

/// Pushes, with skopeo, python `version` for bookworm as an image of one gzip `layer` (no
/// title), with `annotations` on its manifest.
fn push_layer_image(
    h: &Harness,
    version: &str,
    layer: &[u8],
    format: Format,
    annotations: &[(&str, &str)],
) {
    let mut layout = OciLayout::new();
    layout.add_image(
        "sdk",
        &ImageBuilder::new()
            .layer(layer.to_vec(), media_types::OCI_LAYER_GZIP)
            .label("org.oryx.version", version)
            .annotations(annotations.iter().copied()),
    );
    skopeo::push_layout(
        layout.path(),
        "sdk",
        h.host(),
        &format!("{PYTHON_REPO}:bookworm-{version}"),
        format,
    );
}

/// Staging folders of installs under the python folder of the root.
fn staging_folders(h: &Harness) -> Vec<String> {
    list_dir(&h.root().join("python"))
        .into_iter()
        .filter(|n| n.starts_with(TEMP_PREFIX))
        .collect()
}

/// A proxy to `registry` that holds `layer` back after half its bytes until released.
fn proxy_holding_half_of(registry: &Registry, layer: &[u8]) -> (ScriptedServer, Release) {
    let upstream = registry.url();
    let path = format!("/blobs/{}", digest_of(layer));
    let half = layer.len() / 2;
    let release = Release::new();
    let held = release.clone();
    let proxy = ScriptedServer::start(move |req| {
        let response = forward(req, &upstream);
        if req.method == "GET" && req.path().ends_with(&path) {
            return response.stall_until(half, Duration::from_secs(60), &held);
        }
        response
    });
    (proxy, release)
}

/// Installs python `version`, whose layer (`layer`) a proxy holds back after half its
/// bytes until files of the SDK are seen unpacked: they must be, while the download waits.
fn assert_unpacks_while_downloading(h: &Harness, registry: &Registry, version: &str, layer: &[u8]) {
    let (proxy, release) = proxy_holding_half_of(registry, layer);
    let child = h
        .sdk_command(&proxy.url(), &["install", "python", version])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ocisdk");
    let python = h.root().join("python");
    wait_for("files unpacked while the layer is held back", || {
        staging_folders(h)
            .iter()
            .any(|dir| python.join(dir).join("bin/python").is_file())
    });
    assert!(
        !h.installed(version).exists(),
        "installed before the download ended"
    );
    release.release();
    Run::from_output(child.wait_with_output().expect("wait for ocisdk")).success();
    assert_complete_install(h, version);
    let gets = requests_to(&proxy.requests(), &format!("/blobs/{}", digest_of(layer)));
    assert_eq!(
        gets,
        vec![format!("GET /v2/{PYTHON_REPO}/blobs/{}", digest_of(layer))]
    );
    assert_nothing_left_over(h);
}

/// The cache holds one copy of python `version`'s tarball, and it is `tarball`.
#[track_caller]
fn assert_cached_tarball(h: &Harness, version: &str, tarball: &[u8]) {
    let cached = find_files(&h.cache(), &format!("python-bookworm-{version}.tar.gz"));
    assert_eq!(cached.len(), 1, "{cached:?}");
    assert_same_bytes(&read(&cached[0]), tarball, "cached tarball");
}

/// No staging folder under the root's python folder, no temporary file in the cache.
#[track_caller]
fn assert_nothing_left_over(h: &Harness) {
    assert!(staging_folders(h).is_empty(), "{:?}", staging_folders(h));
    assert!(
        leftovers(&h.cache()).is_empty(),
        "{:?}",
        leftovers(&h.cache())
    );
}

#[test]
fn install_unpacks_while_the_layer_downloads_in_both_image_shapes() {
    let registry = Registry::start();
    let h = Harness::new(&registry.url());
    let big = pseudo_random_bytes(4 << 20, 11);

    let tarball = big_sdk_tarball("3.11.10", &big);
    h.publish_bytes("3.11.10", "bookworm", false, &tarball);
    assert_unpacks_while_downloading(&h, &registry, "3.11.10", &tarball);

    let inner = big_sdk_tarball("3.11.11", &big);
    let layer = push_filesystem_layer_image(&h, "3.11.11", &inner, Format::Oci);
    assert_unpacks_while_downloading(&h, &registry, "3.11.11", &layer);
    // The tarball the layer held is what the cache keeps, as `sdk pull` gives it.
    assert_cached_tarball(&h, "3.11.11", &inner);
}

/// `sdk pull` of the MCR layout copies the tarball out of the layer as it downloads: while a
/// proxy holds the layer back after half its bytes, a good part of the tarball is already
/// in the output folder (under a temporary name), and nothing is under the final one.
#[test]
fn pull_copies_the_tarball_out_while_the_layer_downloads() {
    let registry = Registry::start();
    let h = Harness::new(&registry.url());
    let inner = big_sdk_tarball("3.11.11", &pseudo_random_bytes(4 << 20, 14));
    let layer = push_filesystem_layer_image(&h, "3.11.11", &inner, Format::Oci);
    let (proxy, release) = proxy_holding_half_of(&registry, &layer);
    let out = h.work().join("pulled");
    let child = h
        .sdk_command(
            &proxy.url(),
            &["pull", "python", "3.11.11", "-o", path_str(&out)],
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ocisdk");
    let tarball = out.join("python-bookworm-3.11.11.tar.gz");
    let copied_a_megabyte = |file: &PathBuf| {
        fs::read(file).is_ok_and(|b| b.len() >= 1 << 20 && b[..1 << 20] == inner[..1 << 20])
    };
    wait_for(
        "a megabyte of the tarball copied while the layer is held back",
        || leftovers(&out).iter().any(copied_a_megabyte),
    );
    assert!(
        !tarball.exists(),
        "the tarball is there before the download ended"
    );
    release.release();
    Run::from_output(child.wait_with_output().expect("wait for ocisdk")).success();
    assert_same_bytes(&read(&tarball), &inner, "pulled tarball");
    assert!(leftovers(&out).is_empty(), "{:?}", leftovers(&out));
    let gets = requests_to(&proxy.requests(), &format!("/blobs/{}", digest_of(&layer)));
    assert_eq!(
        gets,
        vec![format!("GET /v2/{PYTHON_REPO}/blobs/{}", digest_of(&layer))]
    );
}

/// The MCR layout's layer breaks off halfway; the client resumes it with `Range` — answered,
/// or (a registry that ignores it) with the whole body again — and the install that read
/// along is still exactly the tarball's, with nothing left over.
#[test]
fn filesystem_layer_broken_off_mid_download_resumes_into_a_complete_install() {
    let registry = Registry::start();
    let h = Harness::new(&registry.url());
    let big = pseudo_random_bytes(2 << 20, 13);
    for (version, honour_range) in [("3.11.10", true), ("3.11.11", false)] {
        let inner = big_sdk_tarball(version, &big);
        let layer = push_filesystem_layer_image(&h, version, &inner, Format::Oci);
        let upstream = registry.url();
        let path = format!("/blobs/{}", digest_of(&layer));
        let half = layer.len() / 2;
        let broke = AtomicBool::new(false);
        let proxy = ScriptedServer::start(move |req| {
            if !(req.method == "GET" && req.path().ends_with(&path)) {
                return forward(req, &upstream);
            }
            if !broke.swap(true, SeqCst) {
                return forward(req, &upstream).truncate_body_after(half);
            }
            let mut asked = req.clone();
            if !honour_range {
                asked
                    .headers
                    .retain(|(k, _)| !k.eq_ignore_ascii_case("range"));
            }
            forward(&asked, &upstream)
        });
        h.sdk_via(&proxy.url(), &["install", "python", version])
            .success();
        assert_complete_install(&h, version);
        assert_same_bytes(
            &read(&h.installed(version).join("lib/libpython.so")),
            &big,
            "large file",
        );
        let ranges: Vec<Option<String>> = proxy
            .requests()
            .iter()
            .filter(|r| r.method == "GET" && r.path().contains("/blobs/"))
            .map(|r| r.header("Range").map(str::to_string))
            .collect();
        assert_eq!(ranges.len(), 2, "{ranges:?}");
        assert_eq!(ranges[0], None);
        assert!(
            ranges[1]
                .as_deref()
                .is_some_and(|r| r.starts_with("bytes=")),
            "{ranges:?}"
        );
        assert_cached_tarball(&h, version, &inner);
        assert_nothing_left_over(&h);
    }
}

#[test]
fn a_mirror_serving_wrong_bytes_is_passed_over_by_sdk_pull_and_install_in_both_shapes() {
    let registry = Registry::start();
    let h = Harness::new(&registry.url());
    let tarball = h.publish("3.11.10", "bookworm", false);
    let inner = sdk_tarball("3.11.11", "bookworm");
    let layer = push_filesystem_layer_image(&h, "3.11.11", &inner, Format::Oci);
    // The "mirror" forwards to the same registry but flips a byte of every blob.
    let upstream = registry.url();
    let bad = ScriptedServer::start(move |req| {
        let mut response = forward(req, &upstream);
        if req.method == "GET" && req.path().contains("/blobs/") && !response.body.is_empty() {
            let middle = response.body.len() / 2;
            response.body[middle] ^= 0xff;
        }
        response
    });
    let mirror = bad.url();
    for (version, tarball, layer) in [("3.11.10", &tarball, &tarball), ("3.11.11", &inner, &layer)]
    {
        let out = h.work().join(version);
        h.sdk(&[
            "pull",
            "python",
            version,
            "-o",
            path_str(&out),
            "--mirror",
            &mirror,
        ])
        .success();
        let name = format!("python-bookworm-{version}.tar.gz");
        assert_same_bytes(&read(&out.join(&name)), tarball, "pulled tarball");
        h.sdk(&["install", "python", version, "--mirror", &mirror])
            .success();
        assert_complete_install(&h, version);
        let asked = requests_to(&bad.requests(), &format!("/blobs/{}", digest_of(layer)));
        assert!(
            asked.iter().filter(|r| r.starts_with("GET ")).count() >= 2,
            "the mirror was not asked for the layer by both commands: {asked:?}"
        );
    }
    assert_nothing_left_over(&h);
}

/// A mirror passed over for bytes that fail verification is passed over for the manifest
/// too, although resolving an exact version fetched it there: an out-of-date mirror's
/// manifest would otherwise have its (older) layer read from the upstream.
#[test]
fn a_mirror_passed_over_is_not_trusted_for_the_manifest_resolving_fetched() {
    let registry = Registry::start();
    let h = Harness::new(&registry.url());
    h.publish("3.11.9", "bookworm", false);
    h.publish("3.11.10", "bookworm", false);
    // Out of date and damaged: its 3.11.10 is the 3.11.9 image, and it flips a byte of
    // every blob.
    let upstream = registry.url();
    let stale = ScriptedServer::start(move |req| {
        let mut asked = req.clone();
        asked.target = asked.target.replace("bookworm-3.11.10", "bookworm-3.11.9");
        let mut response = forward(&asked, &upstream);
        if req.method == "GET" && req.path().contains("/blobs/") && !response.body.is_empty() {
            let middle = response.body.len() / 2;
            response.body[middle] ^= 0xff;
        }
        response
    });
    h.sdk(&["install", "python", "3.11.10", "--mirror", &stale.url()])
        .success();
    assert_complete_install(&h, "3.11.10");
}

#[test]
fn filesystem_layer_that_fails_verification_or_its_published_sha256_installs_nothing() {
    let registry = Registry::start();
    let h = Harness::new(&registry.url());
    let big = pseudo_random_bytes(1 << 20, 12);

    let inner = big_sdk_tarball("3.11.10", &big);
    let layer = push_filesystem_layer_image(&h, "3.11.10", &inner, Format::Oci);
    corrupt_blob(&registry, &digest_of(&layer));
    h.sdk(&["install", "python", "3.11.10"]).expect_code(5);
    assert!(!h.installed("3.11.10").exists(), "an install folder exists");

    // The tarball's published sha256 is checked before the install may finish.
    let inner = big_sdk_tarball("3.11.11", &big);
    let layer = fs_layer_holding("python-bookworm-3.11.11.tar.gz", &inner);
    let wrong = sha256_hex(b"another tarball");
    push_layer_image(
        &h,
        "3.11.11",
        &layer,
        Format::Oci,
        &[("org.oryx.sdk.sha256", &wrong)],
    );
    let run = h.sdk(&["install", "python", "3.11.11"]).expect_code(1);
    assert!(run.stderr.contains(&wrong), "{}", run.stderr);
    assert!(run.stderr.contains(&sha256_hex(&inner)), "{}", run.stderr);
    assert!(!h.installed("3.11.11").exists(), "an install folder exists");

    assert!(h.sdk(&["list-installed"]).success().stdout.is_empty());
    assert_nothing_left_over(&h);
}

#[test]
fn filesystem_layer_with_another_tarball_name_or_no_tar_still_installs() {
    let registry = Registry::start();
    let h = Harness::new(&registry.url());
    // The one SDK tarball in the layer, under a name the client does not expect.
    let inner = sdk_tarball("3.8.3", "bookworm");
    push_layer_image(
        &h,
        "3.8.3",
        &fs_layer_holding("python.tgz", &inner),
        Format::Oci,
        &[],
    );
    // A layer that is the tarball itself, without a title to say so.
    let bare = sdk_tarball("3.8.4", "bookworm");
    push_layer_image(&h, "3.8.4", &bare, Format::Oci, &[]);
    // The same, where the SDK's files include a small tarball (a test fixture): that is not
    // the SDK, though it is the layer's only file named like one.
    let fixture = RawTar::new()
        .file("INNER_ONLY.txt", b"not the SDK", 0o644)
        .tar_gz();
    let with_fixture = RawTar::new()
        .dir("bin", 0o755)
        .file(
            "bin/python",
            python_script("3.8.5", "bookworm").as_bytes(),
            0o755,
        )
        .symlink("bin/python3", "python")
        .dir("lib", 0o755)
        .file("lib/VERSION", b"3.8.5", 0o644)
        .file("lib/libpython.so", &pseudo_random_bytes(4096, 385), 0o644)
        .file("lib/test/fixture.tar.gz", &fixture, 0o644)
        .tar_gz();
    push_layer_image(&h, "3.8.5", &with_fixture, Format::Oci, &[]);

    let out = h.work().join("pulled");
    for (version, tarball) in [
        ("3.8.3", &inner),
        ("3.8.4", &bare),
        ("3.8.5", &with_fixture),
    ] {
        let json = h
            .sdk(&["install", "python", version, "--json"])
            .success()
            .json();
        assert_eq!(json["cached"], false, "{json}");
        assert_complete_install(&h, version);
        assert_cached_tarball(&h, version, tarball);
        // `sdk pull` finds the same tarball (it reads the layer as it comes, too).
        h.sdk(&["pull", "python", version, "-o", path_str(&out)])
            .success();
        let pulled = out.join(format!("python-bookworm-{version}.tar.gz"));
        assert_same_bytes(&read(&pulled), tarball, "pulled tarball");
    }
    let kept = h.installed("3.8.5").join("lib/test/fixture.tar.gz");
    assert_same_bytes(&read(&kept), &fixture, "the fixture, kept as a file");
    assert!(leftovers(&out).is_empty(), "{:?}", leftovers(&out));
    assert_nothing_left_over(&h);
}

/// An artifact-shape image (the layer is the tarball, titled so) whose manifest publishes
/// another sha256: the unpacker has read the whole layer by then and waits for the word to
/// commit, which must be "no". Such a run used to hang, so it runs against a deadline.
/// A titled layer addressed by sha512 is the tarball, as with sha256: not a layer to look
/// into, which took the tarball among this SDK's files (it outweighs the rest) for the SDK.
#[test]
fn artifact_layer_with_a_sha512_digest_installs_and_pulls() {
    let registry = Registry::start();
    let h = Harness::new(&registry.url());
    let fixture = RawTar::new()
        .file("INNER_ONLY.txt", b"not the SDK", 0o644)
        .tar_gz();
    let tarball = RawTar::new()
        .dir("bin", 0o755)
        .file(
            "bin/python",
            python_script("3.9.1", "bookworm").as_bytes(),
            0o755,
        )
        .symlink("bin/python3", "python")
        .dir("lib", 0o755)
        .file("lib/VERSION", b"3.9.1", 0o644)
        .file("lib/test/fixture.tar.gz", &fixture, 0o644)
        .tar_gz();
    let digest = ocisdk_testkit::raw::push_sha512_layer_image(
        &h.url,
        PYTHON_REPO,
        "bookworm-3.9.1",
        &tarball,
        media_types::OCI_LAYER_GZIP,
        Some("python-bookworm-3.9.1.tar.gz"),
    );
    assert!(digest.starts_with("sha512:"), "{digest}");

    let json = h
        .sdk(&["install", "python", "3.9.1", "--json"])
        .success()
        .json();
    assert_eq!(json["cached"], false, "{json}");
    assert_complete_install(&h, "3.9.1");
    let kept = h.installed("3.9.1").join("lib/test/fixture.tar.gz");
    assert_same_bytes(&read(&kept), &fixture, "the fixture, kept as a file");
    let out = h.work().join("pulled");
    let json = h
        .sdk(&["pull", "python", "3.9.1", "-o", path_str(&out), "--json"])
        .success()
        .json();
    assert_eq!(json["pull"]["shape"], "artifact", "{json}");
    assert_same_bytes(
        &read(&out.join("python-bookworm-3.9.1.tar.gz")),
        &tarball,
        "pulled tarball",
    );
    // The record holds the tarball's sha256, so the next pull is served from disk.
    let again = h
        .sdk(&["pull", "python", "3.9.1", "-o", path_str(&out), "--json"])
        .success()
        .json();
    assert_eq!(again["cached"], true, "{again}");
}

/// `--chunks` downloads an install's layer in parallel ranges (it used to be ignored: an
/// install reads the layer as it comes, which needs the bytes in order), then unpacks it.
#[test]
fn install_with_chunks_downloads_the_layer_in_ranges_in_both_shapes() {
    let registry = Registry::start();
    let h = Harness::new(&registry.url());
    // Two 8 MiB chunks' worth: the smallest layer that is split.
    let big = pseudo_random_bytes(17 << 20, 41);
    let artifact = big_sdk_tarball("3.11.30", &big);
    h.publish_bytes("3.11.30", "bookworm", false, &artifact);
    let fs_layer = push_filesystem_layer_image(
        &h,
        "3.11.31",
        &big_sdk_tarball("3.11.31", &big),
        Format::Oci,
    );
    let proxy = ScriptedServer::proxy_to(&registry.url());
    for (version, layer) in [("3.11.30", &artifact), ("3.11.31", &fs_layer)] {
        proxy.clear_requests();
        h.sdk_via(
            &proxy.url(),
            &["install", "python", version, "--chunks", "2"],
        )
        .success();
        assert_complete_install(&h, version);
        let blob = format!("/blobs/sha256:{}", sha256_hex(layer));
        let ranges: Vec<String> = proxy
            .requests()
            .iter()
            .filter(|r| r.method == "GET" && r.path().ends_with(&blob))
            .map(|r| r.header("range").unwrap_or("none").to_string())
            .collect();
        assert!(ranges.len() >= 2, "{version}: {ranges:?}");
        assert!(
            ranges.iter().all(|r| r.starts_with("bytes=")),
            "{version}: {ranges:?}"
        );
    }
    assert_nothing_left_over(&h);
}

/// Writes `len` bytes that are not the blob `layer` where a download of it resumes from: the
/// partial an earlier run would have left, but damaged (or another blob's).
fn plant_wrong_partial(h: &Harness, layer: &[u8], len: usize) {
    let dir = h.cache().join("partial-v1");
    fs::create_dir_all(&dir).unwrap();
    let part = dir.join(format!("sha256-{}.part", sha256_hex(layer)));
    fs::write(part, pseudo_random_bytes(len, 7)).unwrap();
}

/// A partial download that an earlier run completed but did not get to move into place:
/// the install verifies it without a request for the blob, and unpacks it.
#[test]
fn install_finishes_from_a_complete_partial_download_in_both_shapes() {
    let registry = Registry::start();
    let h = Harness::new(&registry.url());
    let artifact = h.publish("3.11.40", "bookworm", false);
    let tarball = sdk_tarball("3.11.41", "bookworm");
    let layer = push_filesystem_layer_image(&h, "3.11.41", &tarball, Format::Oci);
    let proxy = ScriptedServer::proxy_to(&registry.url());
    for (version, blob) in [("3.11.40", &artifact), ("3.11.41", &layer)] {
        let dir = h.cache().join("partial-v1");
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join(format!("sha256-{}.part", sha256_hex(blob))), blob).unwrap();
        proxy.clear_requests();
        h.sdk_via(&proxy.url(), &["install", "python", version])
            .success();
        assert_complete_install(&h, version);
        assert_eq!(blob_requests(&proxy), Vec::<String>::new(), "{version}");
    }
    assert_nothing_left_over(&h);
}

/// A partial download whose bytes are wrong fails the digest only at the end; the install
/// then downloads the layer again from the start, in the same run, in both image shapes.
#[test]
fn install_starts_over_when_an_earlier_partial_download_held_other_bytes() {
    let registry = Registry::start();
    let h = Harness::new(&registry.url());
    let artifact = h.publish("3.11.20", "bookworm", false);
    let layer = push_filesystem_layer_image(
        &h,
        "3.11.21",
        &sdk_tarball("3.11.21", "bookworm"),
        Format::Oci,
    );
    for (version, blob) in [("3.11.20", &artifact), ("3.11.21", &layer)] {
        plant_wrong_partial(&h, blob, blob.len() / 2);
        let run = h.sdk(&["install", "python", version]).success();
        assert!(
            run.stderr.contains("downloading from the start"),
            "{}",
            run.stderr
        );
        assert_complete_install(&h, version);
    }
    assert_nothing_left_over(&h);
}

#[test]
fn artifact_layer_that_fails_its_published_sha256_installs_nothing() {
    let registry = Registry::start();
    let h = Harness::new(&registry.url());
    let tarball = sdk_tarball("3.11.12", "bookworm");
    let file = h.work().join("python-bookworm-3.11.12.tar.gz");
    fs::write(&file, &tarball).unwrap();
    let wrong = sha256_hex(b"another tarball");
    let annotation = format!("org.oryx.sdk.sha256={wrong}");
    let reference = h.python_ref("bookworm-3.11.12");
    h.run(&[
        "push",
        path_str(&file),
        &reference,
        "--annotation",
        &annotation,
    ])
    .success();
    let manifest = skopeo::inspect_raw_json(&reference);
    assert_eq!(
        manifest["layers"][0]["annotations"]["org.opencontainers.image.title"],
        "python-bookworm-3.11.12.tar.gz",
        "not the artifact shape: {manifest}"
    );

    let mut child = h
        .sdk_command(&h.url, &["install", "python", "3.11.12"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ocisdk");
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("sdk install still running after a minute: it hangs");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let run = Run::from_output(child.wait_with_output().unwrap()).expect_code(1);
    assert!(run.stderr.contains(&wrong), "{}", run.stderr);
    assert!(!h.installed("3.11.12").exists(), "an install folder exists");
    assert_nothing_left_over(&h);
}

/// A file stands where the cache's tarball records go, so none can be written. The record
/// only spares a later download: `sdk install` still installs, in both shapes, and says
/// why; `sdk pull` still pulls (its sidecar is in the output folder), and says why.
#[test]
fn install_and_pull_survive_a_cache_record_they_cannot_write() {
    let registry = Registry::start();
    let h = Harness::new(&registry.url());
    h.publish_bytes(
        "3.11.10",
        "bookworm",
        false,
        &sdk_tarball("3.11.10", "bookworm"),
    );
    let inner = sdk_tarball("3.11.11", "bookworm");
    push_filesystem_layer_image(&h, "3.11.11", &inner, Format::Oci);
    let records = h.cache().join("sdk-records-v1");
    fs::write(&records, b"in the way").unwrap();

    for version in ["3.11.10", "3.11.11"] {
        let run = h.sdk(&["install", "python", version]).success();
        assert!(
            run.stderr.contains(path_str(&records)) && run.stderr.contains("installed"),
            "{}",
            run.stderr
        );
        assert_complete_install(&h, version);
    }

    let out = h.work().join("pulled");
    let run = h
        .sdk(&["pull", "python", "3.11.10", "-o", path_str(&out)])
        .success();
    assert!(run.stderr.contains(path_str(&records)), "{}", run.stderr);
    assert_same_bytes(
        &fs::read(out.join("python-bookworm-3.11.10.tar.gz")).unwrap(),
        &sdk_tarball("3.11.10", "bookworm"),
        "pulled tarball",
    );
    assert!(
        out.join("python-bookworm-3.11.10.tar.gz.manifest-digest")
            .exists(),
        "the pull's output includes its sidecar"
    );
}

#[test]
fn filesystem_layer_image_yields_the_inner_tarball_and_installs_like_a_published_one() {
    let registry = Registry::start();
    let h = Harness::new(&registry.url());
    let inner = sdk_tarball("3.8.0", "bookworm");
    push_filesystem_layer_image(&h, "3.8.0", &inner, Format::Oci);
    // The very same tarball published as an artifact, under another version.
    h.publish_bytes("3.8.1", "bookworm", false, &inner);

    let out = h.work().join("pulled");
    let json = h
        .sdk(&["pull", "python", "3.8.0", "-o", path_str(&out), "--json"])
        .success()
        .json();
    assert_eq!(json["pull"]["shape"], "filesystem-layer", "{json}");
    assert_same_bytes(
        &read(&out.join("python-bookworm-3.8.0.tar.gz")),
        &inner,
        "tarball out of the filesystem layer",
    );
    assert!(leftovers(&out).is_empty(), "{:?}", leftovers(&out));

    h.sdk(&["install", "python", "3.8.0"]).success();
    h.sdk(&["install", "python", "3.8.1"]).success();
    assert_eq!(
        read(&h.installed("3.8.0").join("bin/python")),
        python_script("3.8.0", "bookworm").as_bytes()
    );
    // The same files, but for the record of the image each came from.
    let files = |version: &str| -> Vec<String> {
        let all = snapshot(&h.installed(version)).into_iter();
        all.filter(|line| !line.starts_with(INSTALL_RECORD))
            .collect()
    };
    assert_eq!(files("3.8.0"), files("3.8.1"));
}

#[test]
fn docker_v2s2_filesystem_layer_image_pulls_and_installs() {
    let registry = Registry::start();
    let h = Harness::new(&registry.url());
    let inner = sdk_tarball("3.8.2", "bookworm");
    push_filesystem_layer_image(&h, "3.8.2", &inner, Format::V2s2);
    let manifest = skopeo::inspect_raw_json(&h.python_ref("bookworm-3.8.2"));
    assert_eq!(manifest["mediaType"], media_types::DOCKER_MANIFEST);

    let out = h.work().join("pulled");
    h.sdk(&["pull", "python", "3.8.2", "-o", path_str(&out)])
        .success();
    assert_same_bytes(
        &read(&out.join("python-bookworm-3.8.2.tar.gz")),
        &inner,
        "tarball out of the Docker layer",
    );
    h.sdk(&["install", "python", "3.8.2"]).success();
    assert_eq!(
        read(&h.installed("3.8.2").join("bin/python")),
        python_script("3.8.2", "bookworm").as_bytes()
    );
}

// ---------------------------------------------------------------------------------------
// install, list-installed
// ---------------------------------------------------------------------------------------

/// Checks that python `version` is completely installed from [`sdk_tarball`].
#[track_caller]
fn assert_complete_install(h: &Harness, version: &str) {
    let dir = h.installed(version);
    let python = dir.join("bin/python");
    assert_eq!(
        read(&python),
        python_script(version, "bookworm").as_bytes(),
        "{}",
        python.display()
    );
    let mode = fs::metadata(&python).unwrap().permissions().mode();
    assert_ne!(mode & 0o111, 0, "bin/python is not executable: {mode:o}");
    let link = dir.join("bin/python3");
    assert!(
        fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink(),
        "bin/python3 is not a symlink"
    );
    assert_eq!(fs::read_link(&link).unwrap(), Path::new("python"));
    assert_eq!(read(&dir.join("lib/VERSION")), version.as_bytes());
    assert!(
        dir.join(SENTINEL).is_file(),
        "no sentinel in {}",
        dir.display()
    );
    assert_nothing_left_over(h);
}

#[test]
fn install_unpacks_modes_symlinks_and_the_sentinel() {
    let c = catalogue();
    let h = c.harness();
    let run = h.sdk(&["install", "python", "3.11"]).success();
    assert_eq!(
        run.stdout,
        format!("{}\n", h.installed("3.11.10").display())
    );
    assert_complete_install(&h, "3.11.10");
    assert_eq!(list_dir(&h.root()), ["python"]);
}

/// `sdk uninstall` removes the versions it names and only those; a folder without the
/// sentinel is not an install and is never removed; when one version is not installed,
/// nothing is; names that would reach outside ROOT/PLATFORM are usage errors.
#[test]
fn uninstall_removes_only_installed_versions_it_names() {
    let registry = Registry::start();
    let h = Harness::new(&registry.url());
    h.publish("3.11.10", "bookworm", false);
    h.publish("3.12.1", "bookworm", false);
    h.sdk(&["install", "python", "3.11.10", "3.12.1"]).success();
    let foreign = h.root().join("python/3.9.0");
    fs::create_dir_all(&foreign).unwrap();
    fs::write(foreign.join("keep"), b"mine").unwrap();

    let run = h
        .sdk(&["uninstall", "python", "3.11.10", "3.9.0"])
        .expect_code(3);
    assert!(
        run.stderr.contains("3.9.0") && run.stderr.contains("not installed"),
        "{}",
        run.stderr
    );
    assert_complete_install(&h, "3.11.10");

    for bad in [
        &["python", ".."][..],
        &["python", "../3.12.1"],
        &["..", "python"],
    ] {
        let mut args = vec!["uninstall"];
        args.extend_from_slice(bad);
        h.sdk(&args).expect_code(2);
    }

    let run = h.sdk(&["uninstall", "python", "3.11.10"]).success();
    assert_eq!(
        run.stdout,
        format!("{}\n", h.installed("3.11.10").display())
    );
    assert!(!h.installed("3.11.10").exists());
    assert_eq!(read(&foreign.join("keep")), b"mine");
    assert_complete_install(&h, "3.12.1");
    let listed = h.sdk(&["list-installed"]).success().stdout;
    assert_eq!(
        listed,
        format!("python 3.12.1 {}\n", h.installed("3.12.1").display())
    );

    // Installing it again works as the first time did.
    h.sdk(&["install", "python", "3.11.10"]).success();
    assert_complete_install(&h, "3.11.10");
}

/// `sdk uninstall` takes versions as `list-installed` shows them; one that is not installed
/// names the installed versions it matches as a spec (`3.11` for 3.11.10), else the nearest,
/// as a spec no version matches does for install. It used to name only what was missing.
#[test]
fn uninstall_of_a_version_not_installed_names_the_nearest_installed_ones() {
    let c = catalogue();
    let h = c.harness();
    h.sdk(&["install", "python", "3.9.9", "3.10.0", "3.11.10", "3.12.4"])
        .success();

    let run = h.sdk(&["uninstall", "python", "3.11"]).expect_code(3);
    assert!(
        run.stderr.contains("; nearest installed: 3.11.10\n"),
        "{}",
        run.stderr
    );
    let run = h.sdk(&["uninstall", "python", "3.12.5", "--json"]);
    let error = run.expect_code(3).error_json();
    let message = error["message"].as_str().unwrap();
    assert!(
        message.ends_with("; nearest installed: 3.10.0, 3.11.10, 3.12.4"),
        "{message}"
    );
    assert_complete_install(&h, "3.11.10");
    assert_complete_install(&h, "3.12.4");

    // Another platform's installs are no suggestion for this one.
    let run = h.sdk(&["uninstall", "nodejs", "3.11"]).expect_code(3);
    assert!(!run.stderr.contains("nearest"), "{}", run.stderr);
}

#[test]
fn list_installed_shows_only_folders_with_the_sentinel() {
    let c = catalogue();
    let h = c.harness();
    h.sdk(&["install", "python", "3.11"]).success();
    // Unfinished installs, made by hand.
    let unfinished = h.installed("3.9.9").join("bin");
    fs::create_dir_all(&unfinished).unwrap();
    fs::write(unfinished.join("python"), b"half").unwrap();
    fs::create_dir_all(h.root().join("nodejs/20.1.0")).unwrap();

    let want = format!("python 3.11.10 {}\n", h.installed("3.11.10").display());
    assert_eq!(h.sdk(&["list-installed"]).success().stdout, want);

    let json = h.sdk(&["list-installed", "--json"]).success().json();
    let items = json.as_array().expect("a JSON array");
    assert_eq!(items.len(), 1, "{json}");
    assert_eq!(items[0]["platform"], "python");
    assert_eq!(items[0]["version"], "3.11.10");

    // The root also comes from DYNAMIC_INSTALL_ROOT_DIR.
    let root = h.root();
    let run = h
        .run_env(
            &["sdk", "list-installed"],
            &[("DYNAMIC_INSTALL_ROOT_DIR", path_str(&root))],
        )
        .success();
    assert_eq!(run.stdout, want);
}

#[test]
fn second_install_downloads_nothing_and_force_reinstalls() {
    let c = catalogue();
    let h = c.harness();
    let proxy = ScriptedServer::proxy_to(&c.registry.url());
    let first = h
        .sdk_via(&proxy.url(), &["install", "python", "3.11", "--json"])
        .success()
        .json();
    assert_eq!(first["cached"], false, "{first}");
    assert!(!blob_requests(&proxy).is_empty(), "{:?}", proxy.requests());

    // A range: the registry is asked which version, but nothing is downloaded.
    proxy.clear_requests();
    let second = h
        .sdk_via(&proxy.url(), &["install", "python", "3.11", "--json"])
        .success()
        .json();
    assert_eq!(second["cached"], true, "{second}");
    assert_eq!(blob_requests(&proxy), Vec::<String>::new());
    assert_eq!(manifest_requests(&proxy), Vec::<String>::new());

    // An exact version already installed needs no registry at all.
    proxy.clear_requests();
    h.sdk_via(&proxy.url(), &["install", "python", "3.11.10"])
        .success();
    assert_eq!(proxy.request_count(), 0, "{:?}", proxy.requests());

    // --force goes back to the registry and leaves a complete install.
    fs::write(h.installed("3.11.10").join("bin/stray"), b"x").unwrap();
    proxy.clear_requests();
    let forced = h
        .sdk_via(
            &proxy.url(),
            &["install", "python", "3.11", "--force", "--json"],
        )
        .success()
        .json();
    assert_eq!(forced["cached"], false, "{forced}");
    assert!(
        !manifest_requests(&proxy).is_empty(),
        "--force made no manifest request: {:?}",
        proxy.requests()
    );
    assert_complete_install(&h, "3.11.10");
    assert!(
        !h.installed("3.11.10").join("bin/stray").exists(),
        "--force kept a file the tarball does not have"
    );
}

/// A preloaded shim that, after each rename the process makes, appends to the file
/// `$WATCH_LOG` whether the file `$WATCH_PATH` is there: `present` or `missing`.
const RENAME_WATCH_SHIM: &str = r#"
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
static void watch(void) {
    const char *path = getenv("WATCH_PATH"), *log = getenv("WATCH_LOG");
    if (!path || !log) return;
    const char *seen = access(path, F_OK) == 0 ? "present\n" : "missing\n";
    int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
    if (fd >= 0) { (void)!write(fd, seen, strlen(seen)); close(fd); }
}
int rename(const char *a, const char *b) {
    int (*real)(const char *, const char *) = dlsym(RTLD_NEXT, "rename");
    int r = real(a, b); watch(); return r;
}
int renameat(int fa, const char *a, int fb, const char *b) {
    int (*real)(int, const char *, int, const char *) = dlsym(RTLD_NEXT, "renameat");
    int r = real(fa, a, fb, b); watch(); return r;
}
int renameat2(int fa, const char *a, int fb, const char *b, unsigned int flags) {
    int (*real)(int, const char *, int, const char *, unsigned int) = dlsym(RTLD_NEXT, "renameat2");
    int r = real(fa, a, fb, b, flags); watch(); return r;
}
"#;

/// `--force` swaps the new install in for the old one in one step: the install folder is
/// never missing, as it was between moving the old one aside and renaming the new one in,
/// when a build starting then found no SDK. A preloaded shim looks for the sentinel after
/// every rename the reinstall makes.
#[test]
fn a_forced_reinstall_never_leaves_the_install_folder_missing() {
    let c = catalogue();
    let h = c.harness();
    h.sdk(&["install", "python", "3.11.10"]).success();
    fs::write(h.installed("3.11.10").join("bin/stray"), b"x").unwrap();
    let shim = preload_shim(&h, "renames", RENAME_WATCH_SHIM);
    let log = h.work().join("renames.log");
    let output = h
        .sdk_command(&h.url, &["install", "python", "3.11.10", "--force"])
        .env("LD_PRELOAD", &shim)
        .env("WATCH_PATH", h.installed("3.11.10").join(SENTINEL))
        .env("WATCH_LOG", &log)
        .output()
        .expect("run ocisdk sdk install");
    Run::from_output(output).success();
    let seen = fs::read_to_string(&log).unwrap_or_default();
    assert!(seen.contains("present"), "the shim saw no rename: {seen:?}");
    assert!(
        !seen.contains("missing"),
        "the install was missing after a rename: {seen:?}"
    );
    assert_complete_install(&h, "3.11.10");
    assert!(
        !h.installed("3.11.10").join("bin/stray").exists(),
        "the old install is still there"
    );
    assert_eq!(leftovers(&h.root().join("python")), Vec::<PathBuf>::new());

    // A file system that cannot swap (EINVAL, as some network ones answer) still takes the
    // reinstall, in two renames.
    fs::write(h.installed("3.11.10").join("bin/stray"), b"x").unwrap();
    let no_exchange = preload_shim(
        &h,
        "noexchange",
        "#include <errno.h>\nint renameat2(int a, const char *b, int c, const char *d, unsigned int e) \
         { (void)a; (void)b; (void)c; (void)d; (void)e; errno = EINVAL; return -1; }\n",
    );
    let output = h
        .sdk_command(&h.url, &["install", "python", "3.11.10", "--force"])
        .env("LD_PRELOAD", &no_exchange)
        .output()
        .expect("run ocisdk sdk install");
    Run::from_output(output).success();
    assert_complete_install(&h, "3.11.10");
    assert!(
        !h.installed("3.11.10").join("bin/stray").exists(),
        "the old install is still there"
    );
    assert_eq!(leftovers(&h.root().join("python")), Vec::<PathBuf>::new());
}

#[test]
fn concurrent_installs_download_the_layer_once() {
    let registry = Registry::start();
    let h = Harness::new(&registry.url());
    // Big enough that the processes overlap while it downloads.
    let big = pseudo_random_bytes(4 << 20, 7);
    let tarball = big_sdk_tarball("3.11.10", &big);
    h.publish_bytes("3.11.10", "bookworm", false, &tarball);
    let proxy = ScriptedServer::proxy_to(&registry.url());

    let children: Vec<_> = (0..8)
        .map(|_| {
            h.sdk_command(&proxy.url(), &["install", "python", "3.11", "--json"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn ocisdk")
        })
        .collect();
    let runs: Vec<Run> = children
        .into_iter()
        .map(|child| Run::from_output(child.wait_with_output().expect("wait for ocisdk")))
        .collect();

    let mut fresh = 0;
    for run in runs {
        let json = run.success().json();
        assert_eq!(json["path"], path_str(&h.installed("3.11.10")), "{json}");
        if json["cached"] == false {
            fresh += 1;
        }
    }
    assert_eq!(fresh, 1, "exactly one process should have installed");
    assert_complete_install(&h, "3.11.10");
    assert_same_bytes(
        &read(&h.installed("3.11.10").join("lib/libpython.so")),
        &big,
        "large file",
    );
    let layer_gets = requests_to(
        &proxy.requests(),
        &format!("/blobs/{}", digest_of(&tarball)),
    )
    .into_iter()
    .filter(|r| r.starts_with("GET "))
    .count();
    assert_eq!(layer_gets, 1, "{:?}", blob_requests(&proxy));
}

/// Two installs of one version into two roots share the tarball cache: while the first
/// downloads (held back after half the layer), the second waits for it and then installs
/// from the cached tarball. One download, two complete installs.
#[test]
fn installs_into_two_roots_share_one_download() {
    let registry = Registry::start();
    let h = Harness::new(&registry.url());
    let big = pseudo_random_bytes(4 << 20, 15);
    let tarball = big_sdk_tarball("3.11.10", &big);
    h.publish_bytes("3.11.10", "bookworm", false, &tarball);
    let upstream = registry.url();
    let blob = format!("/blobs/{}", digest_of(&tarball));
    let half = tarball.len() / 2;
    let release = Release::new();
    let held = release.clone();
    let stalled = AtomicBool::new(false);
    let proxy = ScriptedServer::start(move |req| {
        let response = forward(req, &upstream);
        if req.method == "GET" && req.path().ends_with(&blob) && !stalled.swap(true, SeqCst) {
            return response.stall_until(half, Duration::from_secs(60), &held);
        }
        response
    });
    let other_root = h.work().join("other-root");
    let spawn = |root: &Path| {
        h.command(
            &[
                "sdk",
                "install",
                "python",
                "3.11",
                "--registry",
                &proxy.url(),
                "--root",
                path_str(root),
            ],
            &[],
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ocisdk")
    };
    let first = spawn(&h.root());
    wait_for("the first install to download", || {
        !requests_to(&proxy.requests(), "/blobs/").is_empty()
    });
    let second = spawn(&other_root);
    wait_for("the second install to list the tags", || {
        requests_to(&proxy.requests(), "/tags/list").len() == 2
    });
    release.release();
    for child in [first, second] {
        Run::from_output(child.wait_with_output().expect("wait for ocisdk")).success();
    }
    for root in [h.root(), other_root] {
        let installed = root.join("python/3.11.10/lib/libpython.so");
        assert_same_bytes(&read(&installed), &big, "large file");
    }
    let gets: Vec<String> = requests_to(&proxy.requests(), "/blobs/")
        .into_iter()
        .filter(|r| r.starts_with("GET "))
        .collect();
    assert_eq!(gets.len(), 1, "{gets:?}");
}

#[test]
fn interrupted_install_exits_130_installs_nothing_and_a_rerun_completes() {
    signal_mid_install_in_both_shapes("INT");
}

/// A process killed outright (SIGKILL, like a crash) cannot clean up: its staging folder
/// stays, and in the MCR layout its temporary copy of the tarball in the cache. The next
/// install of that version removes them, in both image shapes.
#[test]
fn killed_install_leaves_a_staging_folder_that_the_next_install_removes() {
    signal_mid_install_in_both_shapes("KILL");
}

/// [`assert_interrupted_then_rerun`] for a layer that is the tarball, and for the MCR
/// layout, where a thread of its own walks the layer while it downloads.
fn signal_mid_install_in_both_shapes(signal: &str) {
    let registry = Registry::start();
    let h = Harness::new(&registry.url());
    let big = pseudo_random_bytes(4 << 20, 9);
    let tarball = big_sdk_tarball("3.11.10", &big);
    h.publish_bytes("3.11.10", "bookworm", false, &tarball);
    assert_interrupted_then_rerun(&h, &registry, "3.11.10", &tarball, &big, signal);
    let inner = big_sdk_tarball("3.11.11", &big);
    let layer = push_filesystem_layer_image(&h, "3.11.11", &inner, Format::Oci);
    assert_interrupted_then_rerun(&h, &registry, "3.11.11", &layer, &big, signal);
}

/// Sends `signal` (`INT` or `KILL`) to an install of python `version` while a proxy holds
/// its `layer` back after 1 MiB and unpacking has begun, and checks that nothing is
/// installed: after SIGINT no staging folder is left either (after SIGKILL one is). Then
/// installs it again through the proxy, checks `lib/libpython.so` holds `big`, and that
/// nothing is left over, not even what the killed process left.
fn assert_interrupted_then_rerun(
    h: &Harness,
    registry: &Registry,
    version: &str,
    layer: &[u8],
    big: &[u8],
    signal: &str,
) {
    let upstream = registry.url();
    let path = format!("/blobs/{}", digest_of(layer));
    let (started_tx, started) = mpsc::channel();
    let started_tx = Mutex::new(started_tx);
    let stalled = AtomicBool::new(false);
    let proxy = ScriptedServer::start(move |req| {
        let response = forward(req, &upstream);
        if req.method == "GET" && req.path().ends_with(&path) && !stalled.swap(true, SeqCst) {
            let _ = started_tx.lock().unwrap().send(());
            return response.stall_after(1 << 20, Duration::from_secs(120));
        }
        response
    });

    let child = h
        .sdk_command(&proxy.url(), &["install", "python", version])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ocisdk");
    started
        .recv_timeout(Duration::from_secs(60))
        .expect("the layer download should start");
    // The partial download is on disk, and unpacking has begun, before the interruption.
    wait_for("a partial download in the cache", || {
        !leftovers(&h.cache()).is_empty()
    });
    wait_for("unpacking to begin", || !staging_folders(h).is_empty());
    let killed = Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(killed.success());
    let output = child.wait_with_output().expect("wait for ocisdk");
    assert!(!h.installed(version).exists(), "an install folder exists");
    if signal == "KILL" {
        assert_eq!(output.status.signal(), Some(9), "{output:?}");
        assert_eq!(staging_folders(h).len(), 1, "{:?}", staging_folders(h));
    } else {
        Run::from_output(output).expect_code(130);
        assert!(staging_folders(h).is_empty(), "{:?}", staging_folders(h));
    }

    h.sdk_via(&proxy.url(), &["install", "python", version])
        .success();
    assert_same_bytes(
        &read(&h.installed(version).join("lib/libpython.so")),
        big,
        "large file",
    );
    assert!(staging_folders(h).is_empty(), "{:?}", staging_folders(h));
    assert_complete_install(h, version);
}

/// A pull killed outright (SIGKILL, like a crash) cannot clean up: the output folder keeps
/// its turn's lock file and, in the MCR layout, the layer and the tarball being copied out
/// of it; when the cache cannot take the download, the download itself lands beside the
/// tarball too. The next pull of that SDK into that folder removes them all, and nothing
/// that is not its own: a file of the user's, and what a pull of another version left.
#[test]
fn killed_pull_leaves_temporary_files_that_the_next_pull_removes() {
    let registry = Registry::start();
    let h = Harness::new(&registry.url());
    let big = pseudo_random_bytes(4 << 20, 21);
    let tarball = big_sdk_tarball("3.11.10", &big);
    h.publish_bytes("3.11.10", "bookworm", false, &tarball);
    let inner = big_sdk_tarball("3.11.11", &big);
    let layer = push_filesystem_layer_image(&h, "3.11.11", &inner, Format::Oci);
    // A file where the cache folder should be: every download then lands beside its file.
    let no_cache = h.work().join("not-a-folder");
    fs::write(&no_cache, b"").unwrap();

    let sdks = [("3.11.10", &tarball, &tarball), ("3.11.11", &layer, &inner)];
    // What a killed pull leaves, for each of the two SDKs' image shapes.
    let cases = [
        (
            h.cache(),
            [&["lock"][..], &["layer", "lock", "tarball copy"]],
        ),
        (
            no_cache,
            [
                &["download", "lock"][..],
                &["layer", "layer download", "lock", "tarball copy"],
            ],
        ),
    ];
    for (cache, left) in &cases {
        for ((version, layer, tarball), left) in sdks.iter().zip(left) {
            assert_killed_pull_then_rerun(&h, &registry, version, layer, tarball, cache, left);
        }
    }
}

/// Files of the user's, and another version's leftovers, which no pull of 3.11.10 or
/// 3.11.11 may remove (3.11.1's names begin as theirs do).
const NOT_THE_PULLS: [&str; 3] = [
    ".ocisdk-member-python-bookworm-3.11.1.tar.gz-AbC123",
    ".python-bookworm-3.11.1.tar.gz.AbC123.part",
    "notes.txt",
];

/// SIGKILLs a pull of python `version` into a fresh folder while a proxy holds its `layer`
/// back after 2 MiB, once 1 MiB of it is on disk, with `cache` as the cache folder. Checks
/// that the folder then holds the temporary files `left` ([`temp_kind`]), pulls again, and
/// checks that the folder holds the `tarball` and its sidecar, and nothing else of the pull's.
fn assert_killed_pull_then_rerun(
    h: &Harness,
    registry: &Registry,
    version: &str,
    layer: &[u8],
    tarball: &[u8],
    cache: &Path,
    left: &[&str],
) {
    let upstream = registry.url();
    let path = format!("/blobs/{}", digest_of(layer));
    let stalled = AtomicBool::new(false);
    let release = Release::new();
    let held = release.clone();
    let proxy = ScriptedServer::start(move |req| {
        let response = forward(req, &upstream);
        if req.method == "GET" && req.path().ends_with(&path) && !stalled.swap(true, SeqCst) {
            return response.stall_until(2 << 20, Duration::from_secs(120), &held);
        }
        response
    });
    let out = h.work().join(format!(
        "pulled-{version}-{}",
        cache.file_name().unwrap().to_string_lossy()
    ));
    fs::create_dir(&out).unwrap();
    for name in NOT_THE_PULLS {
        fs::write(out.join(name), b"not the pull's").unwrap();
    }
    let pull = |url: &str| {
        let root = h.root();
        let args = ["sdk", "pull", "python", version, "-o", path_str(&out)];
        let place = ["--registry", url, "--root", path_str(&root)];
        h.command(
            &[&args[..], &place].concat(),
            &[("OCISDK_CACHE_DIR", path_str(cache))],
        )
    };
    let name = format!("python-bookworm-{version}.tar.gz");

    let mut child = pull(&proxy.url())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn ocisdk");
    let on_disk = || {
        let partials = cache.join("partial-v1");
        [&partials, &out]
            .iter()
            .flat_map(|dir| list_dir(dir).into_iter().map(|n| dir.join(n)))
            .filter_map(|file| fs::metadata(file).ok())
            .map(|meta| meta.len())
            .sum::<u64>()
    };
    wait_for("1 MiB of the layer on disk", || {
        assert!(child.try_wait().unwrap().is_none(), "ocisdk exited early");
        on_disk() >= 1 << 20
    });
    child.kill().unwrap();
    let status = child.wait().unwrap();
    release.release();
    assert_eq!(status.signal(), Some(9), "{status}");
    let mut kinds: Vec<String> = list_dir(&out)
        .iter()
        .filter(|n| !NOT_THE_PULLS.contains(&n.as_str()))
        .map(|n| temp_kind(n, &name))
        .collect();
    kinds.sort();
    assert_eq!(kinds, left, "{:?}", list_dir(&out));

    Run::from_output(pull(&registry.url()).output().expect("run ocisdk")).success();
    assert_same_bytes(&read(&out.join(&name)), tarball, "pulled tarball");
    let mut want: Vec<String> = NOT_THE_PULLS.iter().map(|n| n.to_string()).collect();
    want.extend([name.clone(), format!("{name}.manifest-digest")]);
    want.sort();
    assert_eq!(list_dir(&out), want);
}

/// What the file `name` in the folder of a pull of the tarball `tarball` is, when it is a
/// temporary file of that pull; else `name` itself.
fn temp_kind(name: &str, tarball: &str) -> String {
    let random = |s: &str| s.len() == 6 && s.chars().all(|c| c.is_ascii_alphanumeric());
    let of = |kind: &str, name: &str| {
        name.strip_prefix(&format!("{kind}{tarball}-"))
            .is_some_and(random)
    };
    let download_of = |name: &str| {
        name.strip_prefix('.')
            .and_then(|n| n.strip_suffix(".part"))
            .and_then(|n| n.rsplit_once('.'))
            .filter(|(_, r)| random(r))
            .map(|(file, _)| file.to_string())
    };
    let kind = if name == format!(".{tarball}.lock") {
        "lock"
    } else if of(".ocisdk-layer-", name) {
        "layer"
    } else if of(".ocisdk-member-", name) {
        "tarball copy"
    } else if download_of(name).as_deref() == Some(tarball) {
        "download"
    } else if download_of(name).is_some_and(|file| of(".ocisdk-layer-", &file)) {
        "layer download"
    } else {
        name
    };
    kind.to_string()
}

// ---------------------------------------------------------------------------------------
// Hostile and corrupt content
// ---------------------------------------------------------------------------------------

/// Publishes the hostile tarball `build(outside)` as python 3.0.0, and in the MCR layout as
/// 3.0.1, and checks that installing either fails naming `entry`, writes nothing outside the
/// root, and leaves no install, temp folder or temp file.
#[track_caller]
fn assert_hostile_install_refused(build: impl FnOnce(&Path) -> Vec<u8>, entry: &str) {
    let registry = Registry::start();
    let h = Harness::new(&registry.url());
    let tarball = build(&h.outside());
    // Both image shapes: the layer is the tarball, or holds it (unpacked as it streams).
    h.publish_bytes("3.0.0", "bookworm", false, &tarball);
    push_filesystem_layer_image(&h, "3.0.1", &tarball, Format::Oci);

    for version in ["3.0.0", "3.0.1"] {
        let run = h.sdk(&["install", "python", version]);
        assert_ne!(run.code, 0, "hostile install succeeded: {}", run.stdout);
        assert!(
            run.stderr.contains(&format!("{entry:?}")),
            "stderr does not name {entry:?}: {}",
            run.stderr
        );
        assert_eq!(list_dir(&h.outside()), ["file"], "outside was written to");
        assert_eq!(read(&h.outside().join("file")), b"precious");
        assert_eq!(
            list_dir(h.dir.path()),
            ["cache", "home", "outside", "root", "work"],
            "something was written beside the root"
        );
        assert!(!h.installed(version).exists(), "an install folder exists");
        let stray: Vec<String> = list_dir(&h.root().join("python"))
            .into_iter()
            .filter(|n| !(n.starts_with('.') && n.ends_with(".lock")))
            .collect();
        assert!(stray.is_empty(), "left in ROOT/python: {stray:?}");
        assert_eq!(list_dir(&h.root()), ["python"]);
    }
    assert!(h.sdk(&["list-installed"]).success().stdout.is_empty());
    assert_nothing_left_over(&h);
}

#[test]
fn install_refuses_a_parent_dir_entry() {
    assert_hostile_install_refused(
        |_| {
            RawTar::new()
                .file("bin/ok", b"fine", 0o755)
                .file("../x", b"evil", 0o644)
                .tar_gz()
        },
        "../x",
    );
}

#[test]
fn install_refuses_an_absolute_entry() {
    assert_hostile_install_refused(
        |_| {
            RawTar::new()
                .file("bin/ok", b"fine", 0o755)
                .file("/ocisdk-test-abs/file", b"evil", 0o644)
                .tar_gz()
        },
        "/ocisdk-test-abs/file",
    );
    assert!(!Path::new("/ocisdk-test-abs").exists());
}

#[test]
fn install_refuses_a_symlink_to_an_outside_folder_then_a_file_through_it() {
    assert_hostile_install_refused(
        |outside| {
            RawTar::new()
                .symlink("etc", path_str(outside))
                .file("etc/passwd", b"evil", 0o644)
                .tar_gz()
        },
        "etc",
    );
}

#[test]
fn install_refuses_a_relative_symlink_climbing_out() {
    // From ROOT/python/3.0.0, `../../../outside` is the sibling of ROOT.
    assert_hostile_install_refused(
        |_| {
            RawTar::new()
                .symlink("etc", "../../../outside")
                .file("etc/file", b"evil", 0o644)
                .tar_gz()
        },
        "etc",
    );
}

#[test]
fn install_refuses_a_hardlink_to_an_outside_file() {
    assert_hostile_install_refused(
        |_| {
            RawTar::new()
                .file("bin/ok", b"fine", 0o755)
                .hardlink("h", "../outside/file")
                .tar_gz()
        },
        "h",
    );
}

#[test]
fn install_refuses_a_character_device() {
    assert_hostile_install_refused(
        |_| {
            RawTar::new()
                .file("bin/ok", b"fine", 0o755)
                .entry(EntryType::Char, "dev/null", 0o666, "", b"")
                .tar_gz()
        },
        "dev/null",
    );
}

/// A filesystem layer (the MCR layout) whose tarball is an old GNU sparse file (type `S`,
/// `tar --format=gnu -S`): passed over as no regular file, it left the layer without a
/// tarball, so the layer itself was taken for it: `sdk pull` wrote the layer out as the
/// SDK (exit 0), and `sdk install` cached it as the SDK's tarball. Both refuse the entry,
/// naming it, and leave nothing behind.
#[test]
fn a_sparse_tarball_in_a_filesystem_layer_is_refused_by_pull_and_install() {
    let registry = Registry::start();
    let h = Harness::new(&registry.url());
    let name = "python-bookworm-3.8.0.tar.gz";
    let inner = sdk_tarball("3.8.0", "bookworm");
    let layer = RawTar::new().gnu_sparse(name, &inner, 4096, 0o644).tar_gz();
    push_layer_image(&h, "3.8.0", &layer, Format::Oci, &[]);
    let refusal = format!("refusing entry {name:?}: sparse file entries are not supported");

    let out = h.work().join("pulled");
    let run = h
        .sdk(&["pull", "python", "3.8.0", "-o", path_str(&out)])
        .expect_code(1);
    assert!(run.stderr.contains(&refusal), "{}", run.stderr);
    assert_eq!(list_dir(&out), Vec::<String>::new(), "pull left files");

    let run = h.sdk(&["install", "python", "3.8.0"]).expect_code(1);
    assert!(run.stderr.contains(&refusal), "{}", run.stderr);
    assert!(!h.installed("3.8.0").exists(), "an install folder exists");
    assert_eq!(find_files(&h.cache(), name), Vec::<PathBuf>::new());
    assert!(h.sdk(&["list-installed"]).success().stdout.is_empty());
    assert_nothing_left_over(&h);
}

#[test]
fn corrupt_layer_blob_fails_verification_and_installs_nothing() {
    let registry = Registry::start();
    let h = Harness::new(&registry.url());
    let tarball = h.publish("3.11.10", "bookworm", false);
    corrupt_blob(&registry, &digest_of(&tarball));

    let run = h.sdk(&["install", "python", "3.11.10"]).expect_code(5);
    assert!(run.stdout.is_empty(), "{:?}", run.stdout);
    assert!(!h.installed("3.11.10").exists(), "an install folder exists");
    assert!(h.sdk(&["list-installed"]).success().stdout.is_empty());
    assert_nothing_left_over(&h);

    let out = h.work().join("pulled");
    h.sdk(&["pull", "python", "3.11.10", "-o", path_str(&out)])
        .expect_code(5);
    assert_eq!(list_dir(&out), Vec::<String>::new(), "pull left files");
}

/// A zero-byte layer (which `sdk publish` refuses, but another tool may push) is no SDK:
/// installing it fails naming it empty and installs nothing, so the next install is not
/// taken for done either.
#[test]
fn empty_layer_installs_nothing() {
    let registry = Registry::start();
    let h = Harness::new(&registry.url());
    let empty = h.work().join("python-bookworm-3.11.9.tar"); // a plain tar layer
    fs::write(&empty, b"").unwrap();
    let reference = h.python_ref("bookworm-3.11.9");
    let label = "org.oryx.version=3.11.9";
    h.run(&["push", path_str(&empty), &reference, "--label", label])
        .success();

    for _ in 0..2 {
        let run = h.sdk(&["install", "python", "3.11.9"]).expect_code(1);
        assert!(
            run.stderr.contains("the archive is empty"),
            "{}",
            run.stderr
        );
        assert!(!h.installed("3.11.9").exists(), "an install folder exists");
        assert!(h.sdk(&["list-installed"]).success().stdout.is_empty());
        assert_nothing_left_over(&h);
    }
}

/// An SDK with nothing to install, in each image shape and each way it is unpacked, is
/// refused naming its image, pinned to the manifest digest, in the message and in the
/// `--json` error's registry, repository and reference, as a registry error names its place.
#[test]
fn an_empty_sdk_is_refused_naming_its_image() {
    let registry = Registry::start();
    let h = Harness::new(&registry.url());
    let only_the_root = RawTar::new().dir("./", 0o755).tar_gz();
    // Pushed as `sdk publish` would (which refuses such a tarball) or another tool might.
    let push = |name: &str, bytes: &[u8], version: &str| {
        let file = h.work().join(name);
        fs::write(&file, bytes).unwrap();
        let label = format!("org.oryx.version={version}");
        let reference = h.python_ref(&format!("bookworm-{version}"));
        h.run(&["push", path_str(&file), &reference, "--label", &label])
            .success();
    };
    // The layer is the tarball (titled so): unpacked as it downloads.
    push("python-bookworm-3.11.7.tar.gz", &only_the_root, "3.11.7");
    // The layer holds the tarball (the MCR layout): unpacked as it is copied out.
    push_filesystem_layer_image(&h, "3.11.8", &only_the_root, Format::Oci);
    // A zero-byte layer: found to be no tar holding the tarball, then unpacked from disk.
    push("python-bookworm-3.11.9.tar", b"", "3.11.9");

    for version in ["3.11.7", "3.11.8", "3.11.9"] {
        let tag = format!("bookworm-{version}");
        let digest = h.run(&["digest", &h.python_ref(&tag)]).success().stdout;
        let digest = digest.trim();
        let image = format!("{}@{digest}", h.python_ref(&tag));
        let message = format!("{image}: the archive is empty: it holds no files");

        let run = h.sdk(&["install", "python", version]).expect_code(1);
        let last = run.stderr.lines().last();
        assert_eq!(
            last,
            Some(format!("error: {message}").as_str()),
            "{}",
            run.stderr
        );

        // Where the failed install kept the tarball in the cache (3.11.7, 3.11.9), this one
        // unpacks it from there.
        let run = h.sdk(&["install", "python", version, "--json", "-q"]);
        let error = run.expect_code(1).error_json();
        assert_eq!(error["kind"], "other", "{error}");
        assert_eq!(error["exit_code"], 1, "{error}");
        assert_eq!(error["registry"], h.host(), "{error}");
        assert_eq!(error["repository"], PYTHON_REPO, "{error}");
        assert_eq!(error["reference"], digest, "{error}");
        assert_eq!(error["message"], message, "{error}");

        assert!(!h.installed(version).exists(), "an install folder exists");
    }
    assert!(h.sdk(&["list-installed"]).success().stdout.is_empty());
    assert_nothing_left_over(&h);
}

#[test]
fn failed_forced_reinstall_keeps_the_previous_install() {
    let registry = Registry::start();
    let h = Harness::new(&registry.url());
    let tarball = h.publish("3.11.10", "bookworm", false);
    // The MCR layout unpacks as the layer streams: the old install must outlive that too.
    let layer = push_filesystem_layer_image(
        &h,
        "3.11.11",
        &sdk_tarball("3.11.11", "bookworm"),
        Format::Oci,
    );
    for (version, blob) in [("3.11.10", &tarball), ("3.11.11", &layer)] {
        h.sdk(&["install", "python", version]).success();
        let before = snapshot(&h.installed(version));

        corrupt_blob(&registry, &digest_of(blob));
        // Without the cached tarball, --force has to download the (now corrupt) layer.
        fs::remove_dir_all(h.cache()).unwrap();
        h.sdk(&["install", "python", version, "--force"])
            .expect_code(5);
        assert_eq!(snapshot(&h.installed(version)), before);
        assert_complete_install(&h, version);
    }
}

/// Ctrl-C while a `--force` reinstall unpacks the tarball it already has in the cache stops
/// the unpacking: exit 130, the previous install as it was, no staging folder. The unpacking
/// ran on a thread the interruption did not reach: the process went on to the end of the
/// archive, replaced the install, and only then exited 130, having let go of the version's
/// lock meanwhile (and a huge tarball could not be stopped at all).
#[test]
fn interrupted_reinstall_from_the_cache_keeps_the_previous_install() {
    let registry = Registry::start();
    let h = Harness::new(&registry.url());
    // Enough files that unpacking them takes a while after it has visibly begun.
    let mut tarball = RawTar::new()
        .dir("bin", 0o755)
        .file(
            "bin/python",
            python_script("3.11.10", "bookworm").as_bytes(),
            0o755,
        )
        .symlink("bin/python3", "python")
        .dir("lib", 0o755)
        .file("lib/VERSION", b"3.11.10", 0o644)
        .dir("many", 0o755);
    for i in 0..20_000 {
        tarball = tarball.file(&format!("many/{i}"), b"", 0o644);
    }
    h.publish_bytes("3.11.10", "bookworm", false, &tarball.tar_gz());
    h.sdk(&["install", "python", "3.11.10"]).success();
    let installed = h.installed("3.11.10");
    fs::write(installed.join("from-the-first-install"), b"old").unwrap();

    let child = h
        .sdk_command(
            &registry.url(),
            &["install", "python", "3.11.10", "--force"],
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ocisdk");
    wait_for("the reinstall to unpack", || {
        staging_folders(&h).iter().any(|name| {
            let many = h.root().join("python").join(name).join("many");
            fs::read_dir(many).is_ok_and(|mut files| files.nth(100).is_some())
        })
    });
    let killed = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(killed.success());
    let output = child.wait_with_output().expect("wait for ocisdk");
    Run::from_output(output).expect_code(130);
    assert_eq!(
        read(&installed.join("from-the-first-install")),
        b"old",
        "the previous install was replaced"
    );
    assert_complete_install(&h, "3.11.10");
    assert!(staging_folders(&h).is_empty(), "{:?}", staging_folders(&h));
}

/// A top folder that is read-only (`./` of mode 0555, as some SDK tarballs have it) does not
/// stop its owner from replacing or removing the install: moving a folder to another parent
/// needs write permission on it, which root never lacks, so the owner is `nobody`.
#[test]
fn read_only_install_folder_is_reinstalled_and_uninstalled_by_its_unprivileged_owner() {
    let registry = Registry::start();
    let h = Harness::new(&registry.url());
    let tarball = RawTar::new()
        .dir("./", 0o555)
        .dir("./bin", 0o755)
        .file(
            "./bin/python",
            python_script("3.11.0", "bookworm").as_bytes(),
            0o755,
        )
        .symlink("./bin/python3", "python")
        .dir("./lib", 0o755)
        .file("./lib/VERSION", b"3.11.0", 0o644)
        .tar_gz();
    h.publish_bytes("3.11.0", "bookworm", false, &tarball);
    let bin = h.make_unprivileged();
    let mode = |path: &Path| fs::metadata(path).unwrap().permissions().mode() & 0o777;

    h.sdk_unprivileged(&bin, &["install", "python", "3.11.0"])
        .success();
    assert_complete_install(&h, "3.11.0");
    assert_eq!(mode(&h.installed("3.11.0")), 0o555);

    h.sdk_unprivileged(&bin, &["install", "python", "3.11.0", "--force"])
        .success();
    assert_complete_install(&h, "3.11.0");
    assert_eq!(mode(&h.installed("3.11.0")), 0o555);

    let run = h
        .sdk_unprivileged(&bin, &["uninstall", "python", "3.11.0"])
        .success();
    assert_eq!(run.stdout, format!("{}\n", h.installed("3.11.0").display()));
    assert!(!h.installed("3.11.0").exists());
    assert_nothing_left_over(&h);
    // As its owner: root no longer trusts a root `nobody` owns.
    let run = h.sdk_unprivileged(&bin, &["list-installed"]).success();
    assert!(run.stdout.is_empty(), "{}", run.stdout);
}

/// An install root the build's user may not write fails naming the setting that chose it,
/// not only the folder the OS refused; one error object per failed spec carries it too.
#[test]
fn an_install_root_that_cannot_be_written_names_the_setting_to_change() {
    let c = catalogue();
    let h = c.harness();
    let bin = h.make_unprivileged();
    fs::set_permissions(h.root(), fs::Permissions::from_mode(0o555)).unwrap();
    let hint = format!(
        "the install root {} is not writable by this user: choose another with --root or \
         DYNAMIC_INSTALL_ROOT_DIR",
        h.root().display()
    );

    let run = h
        .sdk_unprivileged(&bin, &["install", "python", "3.11.10"])
        .expect_code(1);
    assert!(
        run.stderr.contains(&format!("hint: {hint}")),
        "{}",
        run.stderr
    );

    let run = h
        .sdk_unprivileged(&bin, &["install", "python", "3.11.10", "3.12.4", "--json"])
        .expect_code(1);
    let errors: Vec<serde_json::Value> = run
        .stderr
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect();
    assert_eq!(errors.len(), 2, "{}", run.stderr);
    for error in errors {
        assert_eq!(error["error"]["hint"], hint.as_str(), "{error}");
    }
    fs::set_permissions(h.root(), fs::Permissions::from_mode(0o755)).unwrap();
    assert!(list_dir(&h.root()).is_empty(), "nothing was installed");

    // The same for the cache folder, which the tarball goes through.
    fs::set_permissions(h.cache(), fs::Permissions::from_mode(0o555)).unwrap();
    let run = h
        .sdk_unprivileged(&bin, &["install", "python", "3.11.10"])
        .expect_code(1);
    let hint = format!(
        "hint: the cache folder {} is not writable by this user: choose another with \
         OCISDK_CACHE_DIR",
        h.cache().display()
    );
    assert!(run.stderr.contains(&hint), "{}", run.stderr);
    fs::set_permissions(h.cache(), fs::Permissions::from_mode(0o755)).unwrap();
}

/// Gives `path` and everything under it to `uid` (symlinks themselves, not their targets).
fn chown_tree(path: &Path, uid: u32) {
    std::os::unix::fs::lchown(path, Some(uid), Some(uid)).unwrap();
    if fs::symlink_metadata(path).unwrap().is_dir() {
        for entry in fs::read_dir(path).unwrap() {
            chown_tree(&entry.unwrap().path(), uid);
        }
    }
}

/// Puts a finished-looking python `version` under the root by hand, as another user who
/// may write it could: a `bin/python` of theirs and the sentinel.
fn plant_install(h: &Harness, version: &str) {
    let bin = h.installed(version).join("bin");
    fs::create_dir_all(&bin).unwrap();
    fs::write(bin.join("python"), "#!/bin/sh\necho planted\n").unwrap();
    fs::set_permissions(bin.join("python"), fs::Permissions::from_mode(0o755)).unwrap();
    fs::write(h.installed(version).join(SENTINEL), b"").unwrap();
}

/// The error every SDK command that trusts the root gives for a root it cannot trust.
#[track_caller]
fn assert_untrusted(run: &Run, h: &Harness, path: &Path, why: &str) {
    let want = format!(
        "error: the install root {} cannot be trusted: {} is {why}",
        h.root().display(),
        path.display()
    );
    assert!(run.stderr.starts_with(&want), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("use an install root of your own (--root or DYNAMIC_INSTALL_ROOT_DIR)"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("or name a folder you vouch for in OCISDK_SAFE_FOLDERS"),
        "{}",
        run.stderr
    );
    assert!(run.stdout.is_empty(), "{}", run.stdout);
}

/// An install root another user owns (`/tmp/oryx/platforms`, made first by someone else)
/// holding an install of theirs with the sentinel is refused by every command that would
/// trust it, with exit code 2, and nothing in it is used or changed: a build run as root
/// would run their `python`. The same folders given to the running user are trusted again.
#[test]
fn an_install_root_owned_by_another_user_is_refused_and_left_alone() {
    if !is_root() {
        println!("SKIPPED: only root can give a folder to another user");
        return;
    }
    let c = catalogue();
    let h = c.harness();
    plant_install(&h, "3.11.10");
    chown_tree(&h.root(), NOBODY);
    let before = snapshot(&h.root());
    let list = h.work().join("sdks.txt");
    fs::write(&list, "python 3.11.10\n").unwrap();
    let why = format!("owned by uid {NOBODY} (mode 0755), neither this user (uid 0) nor root");

    for args in [
        &["install", "python", "3.11.10"][..],
        &["install", "python", "3.11.10", "--force"],
        &["sync", path_str(&list)],
        &["list-installed"],
        &["uninstall", "python", "3.11.10"],
    ] {
        let run = h.sdk(args).expect_code(2);
        assert_untrusted(&run, &h, &h.root(), &why);
    }
    let run = h
        .sdk(&["install", "python", "3.11.10", "--json"])
        .expect_code(2);
    let error = run.error_json();
    assert_eq!(error["kind"], "usage", "{error}");
    assert_eq!(error["exit_code"], 2, "{error}");
    assert_eq!(snapshot(&h.root()), before, "the root was changed");
    assert_eq!(
        fs::metadata(h.root()).unwrap().uid(),
        NOBODY,
        "the root changed hands"
    );

    // A platform folder of another user's in a root of ours is refused the same way.
    std::os::unix::fs::chown(h.root(), Some(0), Some(0)).unwrap();
    let run = h.sdk(&["list-installed"]).expect_code(2);
    assert_untrusted(&run, &h, &h.root().join("python"), &why);

    chown_tree(&h.root(), 0);
    let want = format!("python 3.11.10 {}\n", h.installed("3.11.10").display());
    assert_eq!(h.sdk(&["list-installed"]).success().stdout, want);
    let json = h
        .sdk(&["install", "python", "3.11.10", "--json"])
        .success()
        .json();
    assert_eq!(json["cached"], true, "{json}");
}

/// A root and a cache folder another user owns are used as they are when they lie below a
/// folder named in `OCISDK_SAFE_FOLDERS`, as git's `safe.directory` vouches for a
/// repository: a container running as root in a workspace and `HOME` of the host's user
/// needs it. Without it the same install is refused.
#[test]
fn safe_folders_are_used_without_the_ownership_checks() {
    if !is_root() {
        println!("SKIPPED: only root can give a folder to another user");
        return;
    }
    let c = catalogue();
    let h = c.harness();
    for folder in [h.root(), h.cache()] {
        fs::create_dir_all(&folder).unwrap();
        chown_tree(&folder, NOBODY);
    }
    h.sdk(&["install", "python", "3.11.10"]).expect_code(2);

    let safe = h.dir.path().to_str().unwrap();
    let install = |args: &[&str]| {
        let output = h
            .sdk_command(&h.url, args)
            .env("OCISDK_SAFE_FOLDERS", format!("/nowhere:{safe}"))
            .output()
            .expect("run ocisdk sdk install");
        Run::from_output(output).success()
    };
    let run = install(&["install", "python", "3.11.10"]);
    assert!(!run.stderr.contains("cannot be trusted"), "{}", run.stderr);
    assert_complete_install(&h, "3.11.10");
    let cached = h
        .cache()
        .join("sdk-tarballs-v1")
        .join(h.host().replace(':', "_"))
        .join(PYTHON_REPO)
        .join("python-bookworm-3.11.10.tar.gz");
    assert!(cached.is_file(), "the cache was used: {}", cached.display());
    let run = install(&["list-installed"]);
    assert!(run.stdout.contains("python 3.11.10"), "{}", run.stdout);
}

/// A root its group or anyone may write is refused, sticky or not: in a sticky root others
/// could still create its platform folders first. Above the root, sticky is enough, as it
/// is for `/tmp`. Group write is refused for a group others share (`nogroup` here), and
/// accepted for the owner's private group (root's own, as root), as Debian's user private
/// groups under a umask of 002 make every folder group-writable.
#[test]
fn a_shared_install_root_is_refused_and_a_sticky_folder_above_it_is_not() {
    let c = catalogue();
    let h = c.harness();
    let root = h.root();
    if is_root() {
        fs::set_permissions(&root, fs::Permissions::from_mode(0o775)).unwrap();
        h.sdk(&["list-installed"]).success();
        std::os::unix::fs::chown(&root, None, Some(65534)).unwrap();
    } else {
        eprintln!("SKIPPED: the group cases (only root can give a folder to another group)");
    }
    let group_cases = if is_root() { 0 } else { 1 };
    for (mode, why) in [
        (0o775, "with mode 0775, writable by its group"),
        (0o757, "with mode 0757, writable by others"),
        (
            0o1777,
            "with mode 1777, writable by its group and others (sticky is enough only for a \
             folder above the root: others could create its platform folders)",
        ),
    ]
    .into_iter()
    .skip(group_cases)
    {
        fs::set_permissions(&root, fs::Permissions::from_mode(mode)).unwrap();
        let uid = fs::metadata(&root).unwrap().uid();
        let why = format!("owned by uid {uid} {why}");
        let run = h.sdk(&["install", "python", "3.11.10"]).expect_code(2);
        assert_untrusted(&run, &h, &root, &why);
        assert!(list_dir(&root).is_empty(), "{:?}", list_dir(&root));
    }

    fs::set_permissions(&root, fs::Permissions::from_mode(0o755)).unwrap();
    fs::set_permissions(h.dir.path(), fs::Permissions::from_mode(0o1777)).unwrap();
    h.sdk(&["install", "python", "3.11.10"]).success();
    assert_complete_install(&h, "3.11.10");

    // The folders an install makes are writable by their owner alone, whatever the umask.
    let fresh = h.dir.path().join("fresh/platforms");
    let mut cmd = h.command(
        &[
            "sdk",
            "install",
            "python",
            "3.11.10",
            "--registry",
            &h.url,
            "--root",
            path_str(&fresh),
        ],
        &[],
    );
    // SAFETY: umask only sets the child's file creation mask, before it runs the binary.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
            libc::umask(0);
            Ok(())
        });
    }
    Run::from_output(cmd.output().unwrap()).success();
    for dir in [fresh.parent().unwrap(), &fresh, &fresh.join("python")] {
        let mode = fs::metadata(dir).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o755, "{}", dir.display());
    }
}

/// Puts python 3.11.10's cached files in the cache of `h` (filled by an install) as another
/// user who may write the cache folder could: a tarball of theirs, the sidecar as it is
/// (anyone may read the manifest digest from the registry) and the record made to match.
/// Returns the planted tarball.
fn plant_cached_tarball(h: &Harness) -> Vec<u8> {
    let planted = RawTar::new()
        .dir("bin", 0o755)
        .file("bin/python", b"#!/bin/sh\necho planted\n", 0o755)
        .dir("lib", 0o755)
        .file("lib/VERSION", b"planted", 0o644)
        .tar_gz();
    let tarballs = find_files(&h.cache(), "python-bookworm-3.11.10.tar.gz");
    assert_eq!(tarballs.len(), 1, "{tarballs:?}");
    fs::write(&tarballs[0], &planted).unwrap();
    let records = h.cache().join("sdk-records-v1");
    let record = list_dir(&records);
    assert_eq!(record.len(), 1, "{record:?}");
    let text = format!("{}\nartifact\n", digest_of(&planted));
    fs::write(records.join(&record[0]), text).unwrap();
    planted
}

/// A cache folder another user owns, or anyone may write, can hold a tarball, sidecar and
/// record of theirs that agree with each other and with the registry: an install as root
/// does not use that cache at all. It installs the registry's SDK, warns once naming the
/// folder, its owner and mode, and leaves their files as they are; a pull works the same.
#[test]
fn a_cache_folder_another_user_could_change_is_not_used() {
    let c = catalogue();
    let h = c.harness();
    h.sdk(&["install", "python", "3.11.10"]).success();
    plant_cached_tarball(&h);
    // The plant is consistent: a cache folder of one's own vouches for it.
    h.sdk(&["install", "python", "3.11.10", "--force"])
        .success();
    assert_eq!(
        read(&h.installed("3.11.10").join("lib/VERSION")),
        b"planted"
    );

    let cache = h.cache();
    let mut ways = vec![(
        0o777,
        None,
        "owned by uid 0 with mode 0777, writable by its group and others".to_string(),
    )];
    if is_root() {
        let why = format!("owned by uid {NOBODY} (mode 0755), neither this user (uid 0) nor root");
        ways.push((0o755, Some(NOBODY), why));
    } else {
        println!("only the mode 0777 case: only root can give a folder to another user");
        let uid = fs::metadata(&cache).unwrap().uid();
        ways[0].2 = format!("owned by uid {uid} with mode 0777, writable by its group and others");
    }
    for (mode, owner, why) in ways {
        if let Some(owner) = owner {
            chown_tree(&cache, owner);
        }
        fs::set_permissions(&cache, fs::Permissions::from_mode(mode)).unwrap();
        let before = snapshot(&cache);

        let run = h
            .sdk(&["install", "python", "3.11.10", "--force"])
            .success();
        assert_complete_install(&h, "3.11.10");
        let want = format!(
            "the cache folder {} cannot be trusted: {} is {why}",
            cache.display(),
            cache.display()
        );
        assert!(run.stderr.contains(&want), "{}", run.stderr);
        assert!(
            run.stderr.contains("going on without the cache")
                && run.stderr.contains("use a cache folder of your own"),
            "{}",
            run.stderr
        );
        assert_eq!(
            run.stderr.matches("cannot be trusted").count(),
            1,
            "{}",
            run.stderr
        );
        assert!(staging_folders(&h).is_empty(), "{:?}", staging_folders(&h));

        // A pull goes without the cache's records as well.
        let out = h.work().join(format!("pulled-{mode:o}"));
        let run = h
            .sdk(&["pull", "python", "3.11.10", "-o", path_str(&out)])
            .success();
        assert!(run.stderr.contains(&want), "{}", run.stderr);
        assert_holds_only_the_pulled_tarball(&c, &out);
        assert_eq!(snapshot(&cache), before, "the cache was changed");

        chown_tree(&cache, fs::metadata(h.root()).unwrap().uid());
        fs::set_permissions(&cache, fs::Permissions::from_mode(0o755)).unwrap();
    }
}

/// The folders below a cache folder of one's own vouch for an install as much as the cache
/// folder does: `sdk-tarballs-v1`, a repository's folder deep in it, or `sdk-records-v1`
/// that another user owns (made before the cache was only ours) or anyone may write (made
/// by an older ocisdk with the umask) can hold a tarball, sidecar and record of theirs that
/// agree. An install as root does without the cache: it installs the registry's SDK, warns
/// once naming that folder, its owner and mode, and leaves the cache as it is.
#[test]
fn a_folder_in_the_cache_another_user_could_change_is_not_used() {
    let c = catalogue();
    let h = c.harness();
    h.sdk(&["install", "python", "3.11.10"]).success();
    plant_cached_tarball(&h);
    let cache = h.cache();
    let tarballs = cache.join("sdk-tarballs-v1");
    let repo = tarballs.join(h.host().replace(':', "_")).join(PYTHON_REPO);
    let records = cache.join("sdk-records-v1");
    let uid = fs::metadata(&cache).unwrap().uid();
    let shared = |mode: u32, who: &str| {
        format!("owned by uid {uid} with mode {mode:04o}, writable by {who}")
    };
    let mut ways = vec![
        (
            tarballs.clone(),
            0o777,
            None,
            shared(0o777, "its group and others"),
        ),
        (repo.clone(), 0o757, None, shared(0o757, "others")),
        (records.clone(), 0o757, None, shared(0o757, "others")),
    ];
    if is_root() {
        let why = format!("owned by uid {NOBODY} (mode 0755), neither this user (uid 0) nor root");
        ways.push((repo.clone(), 0o755, Some(NOBODY), why.clone()));
        ways.push((
            tarballs.join(h.host().replace(':', "_")),
            0o755,
            Some(NOBODY),
            why,
        ));
    } else {
        println!("SKIPPED: the other owner's folders: only root can give a folder to another user");
    }
    for (folder, mode, owner, why) in ways {
        let was = fs::metadata(&folder).unwrap();
        if let Some(owner) = owner {
            std::os::unix::fs::chown(&folder, Some(owner), Some(owner)).unwrap();
        }
        fs::set_permissions(&folder, fs::Permissions::from_mode(mode)).unwrap();
        let before = snapshot(&cache);

        let run = h
            .sdk(&["install", "python", "3.11.10", "--force"])
            .success();
        assert_complete_install(&h, "3.11.10");
        let want = format!(
            "the cache folder {} cannot be trusted: {} is {why}",
            cache.display(),
            folder.display()
        );
        assert!(run.stderr.contains(&want), "{}", run.stderr);
        assert!(
            run.stderr.contains("going on without the cache")
                && run.stderr.contains("OCISDK_SAFE_FOLDERS"),
            "{}",
            run.stderr
        );
        assert_eq!(
            run.stderr.matches("cannot be trusted").count(),
            1,
            "{}",
            run.stderr
        );
        assert!(staging_folders(&h).is_empty(), "{:?}", staging_folders(&h));
        assert_eq!(snapshot(&cache), before, "the cache was changed");

        if owner.is_some() {
            std::os::unix::fs::chown(&folder, Some(was.uid()), Some(was.gid())).unwrap();
        }
        fs::set_permissions(&folder, was.permissions()).unwrap();
    }
}

/// A lock file planted as a symlink (an install's `.{version}.lock` in the platform folder,
/// a pull's beside its tarball) fails the command naming it, and the file it points at is
/// not made: a root install would otherwise create an empty file anywhere.
#[test]
fn a_lock_file_planted_as_a_symlink_fails_the_command_and_makes_nothing_elsewhere() {
    let c = catalogue();
    let h = c.harness();
    let made = h.outside().join("made-by-ocisdk");
    let lock = h.root().join("python/.3.11.10.lock");
    fs::create_dir_all(lock.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(&made, &lock).unwrap();
    let out = h.work().join("pulled");
    fs::create_dir_all(&out).unwrap();
    let pull_lock = out.join(".python-bookworm-3.11.10.tar.gz.lock");
    std::os::unix::fs::symlink(&made, &pull_lock).unwrap();

    for (args, lock) in [
        (&["install", "python", "3.11.10"][..], &lock),
        (
            &["pull", "python", "3.11.10", "-o", path_str(&out)],
            &pull_lock,
        ),
    ] {
        let run = h.sdk(args).expect_code(1);
        let want = format!(
            "error: opening the lock file {}: it is a symbolic link, which ocisdk never makes \
             there: not followed",
            lock.display()
        );
        assert!(run.stderr.starts_with(&want), "{}", run.stderr);
        assert!(!made.exists(), "{args:?} made the symlink's target");
        assert!(fs::symlink_metadata(lock).unwrap().is_symlink());
    }
    assert!(!h.installed("3.11.10").exists());
    assert_eq!(list_dir(&out), [".python-bookworm-3.11.10.tar.gz.lock"]);
}

/// A download's partial file in the cache (a folder `OCISDK_CACHE_DIR` may share), which is
/// locked and written into, planted as a symlink is not followed: the download does without
/// the cache, as when it cannot be written, and the file it points at stays as it was.
#[test]
fn a_partial_download_planted_as_a_symlink_is_not_written_through() {
    let c = catalogue();
    let h = c.harness();
    let tarball = c.tarball("bookworm-3.11.10");
    let layer = digest_of(tarball);
    let partial = h
        .cache()
        .join("partial-v1")
        .join(format!("{}.part", layer.replace(':', "-")));
    fs::create_dir_all(partial.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(h.outside().join("file"), &partial).unwrap();
    let dest = h.work().join("blob.tar.gz");
    let blob = format!("{}/{PYTHON_REPO}@{layer}", h.host());
    let run = h.run(&["blob", &blob, "-o", path_str(&dest)]).success();
    let want = format!(
        "opening {}: it is a symbolic link, which ocisdk never makes there: not followed",
        partial.display()
    );
    assert!(run.stderr.contains(&want), "{}", run.stderr);
    assert_same_bytes(&read(&dest), tarball, "blob");
    assert_eq!(read(&h.outside().join("file")), b"precious");
    assert!(fs::symlink_metadata(&partial).unwrap().is_symlink());
}

/// The cache's folder of partial downloads (`partial-v1`) planted as a symlink by another
/// user (as root: the link is `nobody`'s), or leading to a folder anyone may write, is not
/// followed: `ocisdk blob` and `pull` warn once, naming the folder, and download without
/// resuming; nothing in the folder it leads to is read, written or removed.
#[test]
fn a_partial_folder_in_the_cache_planted_as_a_symlink_is_not_written_through() {
    let c = catalogue();
    let h = c.harness();
    let tarball = c.tarball("bookworm-3.11.10");
    let layer = digest_of(tarball);
    let chosen = h.outside().join("chosen");
    fs::create_dir(&chosen).unwrap();
    // What a download of the layer would resume from, and write the rest of the blob into.
    let part = format!("{}.part", layer.replace(':', "-"));
    fs::write(chosen.join(&part), b"precious").unwrap();
    let partials = h.cache().join("partial-v1");
    std::os::unix::fs::symlink(&chosen, &partials).unwrap();
    let resolved = fs::canonicalize(&chosen).unwrap();
    let uid = fs::metadata(&chosen).unwrap().uid();

    let mut ways = vec![(
        0o777,
        None,
        resolved.clone(),
        format!("owned by uid {uid} with mode 0777, writable by its group and others"),
    )];
    if is_root() {
        let why = format!("owned by uid {NOBODY} (mode 0777), neither this user (uid 0) nor root");
        ways.push((0o755, Some(NOBODY), partials.clone(), why));
    } else {
        println!("SKIPPED: a link of another user's: only root can give a link to another user");
    }
    for (mode, owner, failing, why) in ways {
        fs::set_permissions(&chosen, fs::Permissions::from_mode(mode)).unwrap();
        if let Some(owner) = owner {
            std::os::unix::fs::lchown(&partials, Some(owner), Some(owner)).unwrap();
        }
        let blob = format!("{}/{PYTHON_REPO}@{layer}", h.host());
        let pulled = h.work().join(format!("pulled-{mode:o}.tar.gz"));
        let fetched = h.work().join(format!("blob-{mode:o}.tar.gz"));
        for args in [
            &["blob", &blob, "-o", path_str(&fetched)][..],
            &[
                "pull",
                &h.python_ref("bookworm-3.11.10"),
                "-o",
                path_str(&pulled),
            ],
        ] {
            let run = h.run(args).success();
            let want = format!(
                "the cache folder {} cannot be trusted: {} is {why}",
                h.cache().display(),
                failing.display()
            );
            assert!(run.stderr.contains(&want), "{args:?}: {}", run.stderr);
            assert!(
                run.stderr
                    .contains("downloading without resuming from the cache")
                    && run.stderr.contains("OCISDK_SAFE_FOLDERS"),
                "{args:?}: {}",
                run.stderr
            );
            assert_eq!(
                run.stderr.matches("cannot be trusted").count(),
                1,
                "{}",
                run.stderr
            );
        }
        assert_same_bytes(&read(&fetched), tarball, "blob");
        assert_same_bytes(&read(&pulled), tarball, "pulled layer");
        assert_eq!(list_dir(&chosen), [part.as_str()]);
        assert_eq!(read(&chosen.join(&part)), b"precious");
        assert!(fs::symlink_metadata(&partials).unwrap().is_symlink());
    }
}

// ---------------------------------------------------------------------------------------
// push
// ---------------------------------------------------------------------------------------

#[test]
fn push_with_label_annotation_and_artifact_type_round_trips() {
    let registry = Registry::start();
    let h = Harness::new(&registry.url());
    let file = h.work().join("tool.tar.gz");
    let bytes = sdk_tarball("1.0", "any");
    fs::write(&file, &bytes).unwrap();
    let reference = format!("{}/tools/thing:1.0", h.host());

    let run = h
        .run(&[
            "push",
            path_str(&file),
            &reference,
            "--label",
            "a=b",
            "--annotation",
            "c=d",
            "--artifact-type",
            "application/vnd.test.tool",
        ])
        .success();
    let digest = run.stdout.trim().rsplit('@').next().unwrap().to_string();
    assert!(digest.starts_with("sha256:"), "{:?}", run.stdout);

    let config = h.run(&["config", &reference, "--json"]).success().json();
    assert_eq!(config["labels"]["a"], "b", "{config}");
    assert_eq!(config["annotations"]["c"], "d", "{config}");
    assert_eq!(config["manifestDigest"], digest, "{config}");

    let manifest = skopeo::inspect_raw_json(&reference);
    assert_eq!(manifest["artifactType"], "application/vnd.test.tool");

    let pulled = h.work().join("pulled.tar.gz");
    h.run(&["pull", &reference, "-o", path_str(&pulled)])
        .success();
    assert_same_bytes(&read(&pulled), &bytes, "pulled file");
}
