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
    assert_same_bytes, corrupt_blob, digest_of, forward, free_port, fs_layer_holding, gzip,
    list_dir, media_types, pseudo_random_bytes, sha256_hex, skopeo, writable_by_others, Format,
    ImageBuilder, OciLayout, Platform, RawTar, RecordedRequest, Registry, Release,
    ScriptedResponse, ScriptedServer,
};
use tar::EntryType;
use tempfile::TempDir;

mod dotnet;
mod downloads;
mod errors;
mod faults;
mod hostile;
mod install;
mod publish;
mod pull;
mod trust;
mod versions;

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
        cli::binary_for_nobody(Path::new(env!("CARGO_BIN_EXE_ocisdk")), &bin);
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
            cli::output_of_copied_binary(cli::unprivileged(&mut cmd)).expect("run ocisdk sdk"),
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
// Helpers several topics use
// ---------------------------------------------------------------------------------------

/// [`ocisdk_testkit::cli::preload_shim`] in this harness's work folder.
fn preload_shim(h: &Harness, name: &str, source: &str) -> PathBuf {
    ocisdk_testkit::cli::preload_shim(&h.work(), name, source)
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
