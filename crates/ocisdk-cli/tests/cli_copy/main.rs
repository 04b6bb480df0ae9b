//! End-to-end tests of `ocisdk copy`, `ocisdk sdk mirror` and pull mirrors (`--mirror`),
//! running the built binary against real CNCF distribution registries (one of them a
//! pull-through cache), OCI layouts read and written by skopeo, and `ScriptedServer`s in
//! front of registries that record requests or alter what a registry serves.
//!
//! Every run is hermetic: the variables the CLI reads (registry, flavour, cache, credentials,
//! proxies, logging) are removed from the child's environment, and each test has its own
//! cache and scratch folder.
//!
//! One module per topic: `copy` (copies between registries, OCI layouts and archives, with
//! skopeo reading what ocisdk wrote; `--platform`, `--dry-run`, the usage errors),
//! `transfer` (how blobs move: mounted within one registry, streamed between two),
//! `sdk_mirror` and `pull_mirrors` (`--mirror`). This file keeps the harness, the recording
//! proxy and the fixtures several of them use.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ocisdk_testkit::cli::{self, Run};
use ocisdk_testkit::{
    digest_of, forward, free_port, gzip, media_types, pseudo_random_bytes, skopeo, tar_gz_of,
    ImageBuilder, OciLayout, Platform, RecordedRequest, Registry, RegistryBuilder, ScriptedServer,
};
use serde_json::Value;
use tempfile::TempDir;

mod copy;
mod pull_mirrors;
mod sdk_mirror;
mod transfer;

// ---------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------

/// A private folder: `cache/`, `home/` and scratch space.
struct Harness {
    dir: TempDir,
}

impl Harness {
    fn new() -> Harness {
        let dir = tempfile::Builder::new()
            .prefix("ocisdk-copy-test-")
            .tempdir()
            .expect("temp dir");
        for sub in ["cache", "home"] {
            fs::create_dir(dir.path().join(sub)).unwrap();
        }
        Harness { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn run(&self, args: &[&str]) -> Run {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ocisdk"));
        cmd.args(args).stdin(Stdio::null());
        cli::scrub(&mut cmd);
        cmd.env("OCISDK_CACHE_DIR", self.path("cache"))
            .env("HOME", self.path("home"));
        let out = cmd.output().expect("run ocisdk");
        Run {
            code: out.status.code().expect("ocisdk was killed by a signal"),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// `ocisdk sdk ARGS… --registry URL`.
    fn sdk(&self, url: &str, args: &[&str]) -> Run {
        let mut all = vec!["sdk"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--registry", url]);
        self.run(&all)
    }
}

fn arg(p: &Path) -> &str {
    p.to_str().expect("UTF-8 temp path")
}

/// A sorted listing of a tree: path, mode and content.
fn snapshot(root: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let rel = path.strip_prefix(root).unwrap().display().to_string();
            let meta = fs::symlink_metadata(&path).unwrap();
            let mode = meta.permissions().mode() & 0o7777;
            if meta.is_dir() {
                out.push(format!("{rel}/ {mode:o}"));
                walk(root, &path, out);
            } else {
                out.push(format!(
                    "{rel} {mode:o} {}",
                    digest_of(&fs::read(&path).unwrap())
                ));
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

/// A request and the status it was answered with.
#[derive(Debug, Clone)]
struct Exchange {
    method: String,
    target: String,
    status: u16,
}

/// A `ScriptedServer` forwarding to `upstream`, passing each response through `alter`, and
/// recording every exchange with its status.
struct Recorder {
    server: ScriptedServer,
    log: Arc<Mutex<Vec<Exchange>>>,
}

impl Recorder {
    fn start(
        upstream: &str,
        alter: impl Fn(
                &RecordedRequest,
                ocisdk_testkit::ScriptedResponse,
            ) -> ocisdk_testkit::ScriptedResponse
            + Send
            + Sync
            + 'static,
    ) -> Recorder {
        let log: Arc<Mutex<Vec<Exchange>>> = Arc::default();
        let (upstream, sink) = (upstream.to_string(), log.clone());
        let server = ScriptedServer::start(move |req| {
            let response = alter(req, forward(req, &upstream));
            sink.lock().unwrap().push(Exchange {
                method: req.method.clone(),
                target: req.target.clone(),
                status: response.status,
            });
            response
        });
        Recorder { server, log }
    }

    fn forwarding(upstream: &str) -> Recorder {
        Recorder::start(upstream, |_, r| r)
    }

    fn url(&self) -> String {
        self.server.url()
    }

    fn host(&self) -> String {
        self.server.host()
    }

    fn log(&self) -> Vec<Exchange> {
        self.log.lock().unwrap().clone()
    }

    fn clear(&self) {
        self.log.lock().unwrap().clear();
    }

    /// Every request that could change the registry.
    fn writes(&self) -> Vec<String> {
        self.log()
            .into_iter()
            .filter(|e| !matches!(e.method.as_str(), "GET" | "HEAD"))
            .map(|e| format!("{} {}", e.method, e.target))
            .collect()
    }
}

/// A two-platform index (linux/amd64 and linux/arm64, each one gzip layer sharing a second
/// one) pushed to `registry` as `repo:tag` with skopeo. Returns the layout it came from.
fn push_two_platform_index(registry: &Registry, repo: &str, tag: &str) -> (OciLayout, String) {
    let shared = tar_gz_of(&[("shared.txt", b"in both images", 0o644)]);
    let image = |arch: &str, seed| {
        ImageBuilder::new()
            .layer(shared.clone(), media_types::OCI_LAYER_GZIP)
            .layer(
                tar_gz_of(&[("sdk.bin", &pseudo_random_bytes(300_000, seed), 0o644)]),
                media_types::OCI_LAYER_GZIP,
            )
            .label("org.oryx.version", arch)
    };
    let mut layout = OciLayout::new();
    layout.add_index(
        tag,
        vec![
            (Platform::linux("amd64"), image("amd64", 1)),
            (Platform::linux("arm64"), image("arm64", 2)),
        ],
    );
    let digest = skopeo::push_index(
        layout.path(),
        tag,
        &registry.host(),
        &format!("{repo}:{tag}"),
    );
    (layout, digest)
}

/// The raw manifest bytes the registry stores for `reference` (`HOST/REPO:TAG`), as skopeo reads them.
fn stored_manifest(reference: &str) -> Vec<u8> {
    skopeo::inspect_raw(reference)
}

/// A one-layer image of `size` pseudo-random bytes pushed to `registry` as `repo:tag`;
/// returns the layer bytes and digest.
fn push_one_layer(registry: &Registry, repo: &str, tag: &str, size: usize) -> (Vec<u8>, String) {
    // Compressed already: skopeo would compress a plain tar layer on the way.
    let layer = gzip(&pseudo_random_bytes(size, 7));
    let mut layout = OciLayout::new();
    let info = layout.add_image(
        tag,
        &ImageBuilder::new().layer(layer.clone(), media_types::OCI_LAYER_GZIP),
    );
    skopeo::push_layout(
        layout.path(),
        tag,
        &registry.host(),
        &format!("{repo}:{tag}"),
        skopeo::Format::Oci,
    );
    (layer, info.layer_digests[0].clone())
}
