//! End-to-end tests of `ocisdk copy`, `ocisdk sdk mirror` and pull mirrors (`--mirror`),
//! running the built binary against real CNCF distribution registries (one of them a
//! pull-through cache), OCI layouts read and written by skopeo, and `ScriptedServer`s in
//! front of registries that record requests or alter what a registry serves.
//!
//! Every run is hermetic: the variables the CLI reads (registry, flavour, cache, credentials,
//! proxies, logging) are removed from the child's environment, and each test has its own
//! cache and scratch folder.

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

// ---------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------

const PYTHON_REPO: &str = "oryx/python-sdk";

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

/// Polls `done` until it holds; panics after 20 s.
#[track_caller]
fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
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

/// The raw manifest bytes the registry at `host` stores for `repo_ref`.
fn stored_manifest(reference: &str) -> Vec<u8> {
    skopeo::inspect_raw(reference)
}

// ---------------------------------------------------------------------------------------
// copy: registry → layout → registry, archives, skopeo
// ---------------------------------------------------------------------------------------

#[test]
fn copy_through_an_oci_layout_keeps_every_digest_and_skopeo_reads_the_layout() {
    let a = Registry::start();
    let b = Registry::start();
    let h = Harness::new();
    let (_fixture, index_digest) = push_two_platform_index(&a, "tools/sdk", "v1");
    let index_bytes = stored_manifest(&format!("{}/tools/sdk:v1", a.host()));
    assert_eq!(digest_of(&index_bytes), index_digest);

    // Registry → layout.
    let dir = h.path("layout");
    let src = format!("{}/tools/sdk:v1", a.host());
    let dst = format!("oci:{}:v1", arg(&dir));
    let report = h.run(&["copy", &src, &dst, "--json"]).success().json();
    assert_eq!(report["digest"], index_digest);
    assert_eq!(report["target"], format!("oci:{}:v1", dir.display()));
    assert_eq!(report["manifests"].as_array().unwrap().len(), 3);
    // Two configs, one shared layer, two own layers.
    assert_eq!(report["blobs"].as_array().unwrap().len(), 5);

    // skopeo reads it: the index bytes, and the image for its platform.
    let layout_ref = format!("oci:{}:v1", dir.display());
    assert_eq!(skopeo::inspect_raw(&layout_ref), index_bytes);
    let arm = skopeo::run(&[
        "inspect",
        "--override-arch",
        "arm64",
        "--override-os",
        "linux",
        &layout_ref,
    ])
    .expect("skopeo inspect of the layout");
    let arm: Value = serde_json::from_slice(&arm).unwrap();
    assert_eq!(arm["Labels"]["org.oryx.version"], "arm64");

    // Layout → second registry: same bytes, children by digest, blobs identical.
    let dst = format!("{}/mirror/sdk:v1", b.host());
    h.run(&["copy", &format!("oci:{}:v1", arg(&dir)), &dst])
        .success();
    assert_eq!(stored_manifest(&dst), index_bytes);
    let index: Value = serde_json::from_slice(&index_bytes).unwrap();
    for child in index["manifests"].as_array().unwrap() {
        let digest = child["digest"].as_str().unwrap();
        let there = stored_manifest(&format!("{}/mirror/sdk@{digest}", b.host()));
        assert_eq!(digest_of(&there), digest);
        let manifest: Value = serde_json::from_slice(&there).unwrap();
        for layer in manifest["layers"].as_array().unwrap() {
            let digest = layer["digest"].as_str().unwrap();
            let stored = fs::read(b.blob_data_path(digest)).unwrap();
            assert_eq!(digest_of(&stored), digest);
        }
    }

    // Copying again finds everything there and writes nothing.
    let again = h.run(&["copy", &src, &dst, "--json"]).success().json();
    assert!(again["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .all(|m| m["outcome"] == "present"));
    assert_eq!(again["bytes"], 0);
}

#[test]
fn copy_through_an_oci_archive_and_skopeo_reads_the_archive() {
    let a = Registry::start();
    let h = Harness::new();
    let (_fixture, index_digest) = push_two_platform_index(&a, "tools/sdk", "v2");
    let src = format!("{}/tools/sdk:v2", a.host());
    let file = h.path("sdk.tar");
    h.run(&["copy", &src, &format!("oci-archive:{}", arg(&file))])
        .success();
    // The archive took the source's tag as its name.
    let raw = skopeo::run(&[
        "inspect",
        "--raw",
        &format!("oci-archive:{}:v2", file.display()),
    ])
    .expect("skopeo reads the archive");
    assert_eq!(digest_of(&raw), index_digest);

    // And back into the registry under another name, from the archive.
    let back = format!("{}/tools/again:v2", a.host());
    h.run(&["copy", &format!("oci-archive:{}:v2", arg(&file)), &back])
        .success();
    assert_eq!(digest_of(&stored_manifest(&back)), index_digest);
}

#[test]
fn skopeo_written_layouts_copy_into_a_registry() {
    let a = Registry::start();
    let b = Registry::start();
    let h = Harness::new();
    let (_fixture, index_digest) = push_two_platform_index(&a, "tools/sdk", "v3");
    let dir = h.path("skopeo-layout");
    let written = skopeo::copy_to_layout(&format!("{}/tools/sdk:v3", a.host()), &dir, "v3");
    assert_eq!(written, index_digest);

    let dst = format!("{}/tools/sdk:v3", b.host());
    h.run(&["copy", &format!("oci:{}:v3", arg(&dir)), &dst])
        .success();
    assert_eq!(digest_of(&stored_manifest(&dst)), index_digest);
    // An image skopeo can pull back out whole.
    let out = h.path("out");
    skopeo::copy_to_layout(&dst, &out, "v3");
}

#[test]
fn platform_copies_one_image_and_a_missing_name_is_not_found() {
    let a = Registry::start();
    let h = Harness::new();
    let (_fixture, _) = push_two_platform_index(&a, "tools/sdk", "v4");
    let index: Value =
        serde_json::from_slice(&stored_manifest(&format!("{}/tools/sdk:v4", a.host()))).unwrap();
    let arm = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["platform"]["architecture"] == "arm64")
        .unwrap()["digest"]
        .clone();
    let dst = format!("{}/tools/arm:v4", a.host());
    h.run(&[
        "copy",
        &format!("{}/tools/sdk:v4", a.host()),
        &dst,
        "--platform",
        "linux/arm64",
    ])
    .success();
    assert_eq!(Value::from(digest_of(&stored_manifest(&dst))), arm);
    let none = h.run(&[
        "copy",
        &format!("{}/tools/sdk:v4", a.host()),
        &dst,
        "--platform",
        "linux/s390x",
    ]);
    assert_eq!(none.code, 3, "{}", none.stderr);
    assert!(none.stderr.contains("linux/arm64"), "{}", none.stderr);

    let dir = h.path("empty");
    h.run(&[
        "copy",
        &format!("{}/tools/sdk:v4", a.host()),
        &format!("oci:{}:x", arg(&dir)),
    ])
    .success();
    let missing = h.run(&["copy", &format!("oci:{}:nope", arg(&dir)), &dst]);
    assert_eq!(missing.code, 3, "stderr: {}", missing.stderr);
    assert!(missing.stderr.contains("nope"), "{}", missing.stderr);
}

#[test]
fn dry_run_counts_the_bytes_and_writes_nothing() {
    let a = Registry::start();
    let b = Registry::start();
    let h = Harness::new();
    push_two_platform_index(&a, "tools/sdk", "v5");
    let front = Recorder::forwarding(&b.url());
    let src = format!("{}/tools/sdk:v5", a.host());
    let dst = format!("{}/tools/sdk:v5", front.host());
    let report = h
        .run(&["copy", &src, &dst, "--dry-run", "--json"])
        .success()
        .json();
    let listed: u64 = report["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .chain(report["blobs"].as_array().unwrap())
        .map(|i| {
            assert_eq!(i["outcome"], "would_copy");
            i["size"].as_u64().unwrap()
        })
        .sum();
    assert!(listed > 600_000, "{listed}");
    assert_eq!(report["bytes"].as_u64(), Some(listed));
    assert_eq!(front.writes(), Vec::<String>::new());
}

#[test]
fn dry_run_into_a_layout_or_an_archive_creates_nothing() {
    let a = Registry::start();
    let h = Harness::new();
    push_two_platform_index(&a, "tools/sdk", "v6");
    let src = format!("{}/tools/sdk:v6", a.host());
    let out = h.path("out");
    fs::create_dir(&out).unwrap();
    let outcomes = |report: &Value| -> Vec<String> {
        let items = report["manifests"].as_array().unwrap().iter();
        let items = items.chain(report["blobs"].as_array().unwrap());
        items
            .map(|i| i["outcome"].as_str().unwrap().into())
            .collect()
    };

    // A layout that is not there yet, in a folder that is not there either, and an archive.
    let nested = format!("oci:{}:v1", arg(&out.join("dry/nested")));
    let archive = format!("oci-archive:{}:v1", arg(&out.join("sdk.tar")));
    for dst in [nested, archive] {
        let report = h
            .run(&["copy", &src, &dst, "--dry-run", "--json"])
            .success()
            .json();
        assert_eq!(report["target"], dst);
        assert!(outcomes(&report).iter().all(|o| o == "would_copy"));
        assert_eq!(snapshot(&out), Vec::<String>::new(), "after {dst}");
    }

    // An existing layout is read, not written: what it holds is found present.
    let layout = out.join("layout");
    h.run(&["copy", &src, &format!("oci:{}:v1", arg(&layout))])
        .success();
    let before = snapshot(&out);
    let dst = format!("oci:{}:v2", arg(&layout));
    let report = h
        .run(&["copy", &src, &dst, "--dry-run", "--json"])
        .success()
        .json();
    let outcomes = outcomes(&report);
    assert_eq!(outcomes.iter().filter(|o| *o == "tagged").count(), 1);
    assert!(outcomes.iter().all(|o| o == "present" || o == "tagged"));
    assert_eq!(report["bytes"], 0);
    assert_eq!(snapshot(&out), before);
}

#[test]
fn a_layout_or_archive_without_a_name_is_copied_under_its_entry_name() {
    let a = Registry::start();
    let h = Harness::new();
    let (_fixture, index_digest) = push_two_platform_index(&a, "tools/sdk", "v7");
    let src = format!("{}/tools/sdk:v7", a.host());
    // An archive and a layout whose only entry is named v7 (the source's tag).
    let file = h.path("sk.tar");
    let dir = h.path("sk");
    let archive = format!("oci-archive:{}", arg(&file));
    let layout = format!("oci:{}", arg(&dir));
    for end in [&archive, &layout] {
        h.run(&["copy", &src, end]).success();
    }
    for (from, repo) in [(&archive, "t/c"), (&layout, "t/d")] {
        let dst = format!("{}/{repo}", a.host());
        let report = h.run(&["copy", from, &dst, "--json"]).success().json();
        assert_eq!(report["target"], format!("{dst}:v7"));
        assert_eq!(h.run(&["tags", &dst]).success().stdout, "v7\n");
        assert_eq!(
            digest_of(&stored_manifest(&format!("{dst}:v7"))),
            index_digest
        );
    }
}

#[test]
fn a_source_by_digest_needs_a_tag_on_a_registry_target() {
    let a = Registry::start();
    let h = Harness::new();
    let (_fixture, index_digest) = push_two_platform_index(&a, "tools/sdk", "v8");
    let src = format!("{}/tools/sdk@{index_digest}", a.host());
    let untagged = format!("{}/t/e", a.host());
    let refused = h.run(&["copy", &src, &untagged]);
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(
        refused.stderr.contains(&format!("e.g. {untagged}:TAG")),
        "{}",
        refused.stderr
    );
    // Refused before anything was written.
    assert_ne!(h.run(&["tags", &untagged]).code, 0);
    // A tag on the target, or the digest itself, is fine.
    h.run(&["copy", &src, &format!("{untagged}:v8")]).success();
    h.run(&["copy", &src, &format!("{untagged}@{index_digest}")])
        .success();
    assert_eq!(h.run(&["tags", &untagged]).success().stdout, "v8\n");
}

/// A folder where a copy end is expected is no registry reference: the usage error says to
/// write `oci:` (or `oci-archive:`) in front of it, as `sdk mirror --to` does.
#[test]
fn a_path_as_a_copy_end_hints_at_oci_and_oci_archive() {
    let h = Harness::new();
    let folder = h.path("layout");
    let path = arg(&folder);
    let run = h.run(&["copy", "127.0.0.1:5000/tools/sdk:v1", path]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    let hint = format!(
        "hint: for an OCI layout folder write oci:{path}, for a layout archive oci-archive:{path}"
    );
    assert!(run.stderr.contains(&hint), "{}", run.stderr);
    let run = h.run(&[
        "copy",
        "./layout:v1",
        "127.0.0.1:5000/tools/sdk:v1",
        "--json",
    ]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("write oci:./layout:v1"),
        "{}",
        run.stderr
    );
    assert!(!folder.exists());
}

#[test]
fn an_archive_target_in_a_missing_folder_fails_before_any_download() {
    let a = Registry::start();
    let h = Harness::new();
    push_two_platform_index(&a, "tools/sdk", "v9");
    let front = Recorder::forwarding(&a.url());
    let missing = h.path("missing");
    let dst = format!("oci-archive:{}", arg(&missing.join("sk.tar")));
    let run = h.run(&["copy", &format!("{}/tools/sdk:v9", front.host()), &dst]);
    assert_ne!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr.contains(&missing.display().to_string()),
        "{}",
        run.stderr
    );
    let blob_gets: Vec<String> = front
        .log()
        .into_iter()
        .filter(|e| e.method == "GET" && e.target.contains("/blobs/"))
        .map(|e| e.target)
        .collect();
    assert_eq!(blob_gets, Vec::<String>::new());
    assert!(!missing.exists());
}

// ---------------------------------------------------------------------------------------
// Cross-repository mount
// ---------------------------------------------------------------------------------------

#[test]
fn copy_within_one_registry_mounts_blobs_instead_of_sending_them() {
    let a = Registry::start();
    let h = Harness::new();
    push_two_platform_index(&a, "team/a", "t");
    let front = Recorder::forwarding(&a.url());
    let src = format!("{}/team/a:t", front.host());
    let dst = format!("{}/team/b:t", front.host());
    let report = h.run(&["copy", &src, &dst, "--json"]).success().json();
    let blobs = report["blobs"].as_array().unwrap();
    assert_eq!(blobs.len(), 5);
    assert!(blobs.iter().all(|b| b["outcome"] == "mounted"), "{blobs:?}");

    let log = front.log();
    let mounts: Vec<&Exchange> = log
        .iter()
        .filter(|e| e.method == "POST" && e.target.contains("mount="))
        .collect();
    assert_eq!(mounts.len(), 5, "{log:?}");
    for m in &mounts {
        assert!(m.target.starts_with("/v2/team/b/blobs/uploads/?"), "{m:?}");
        assert!(m.target.contains("from=team%2Fa"), "{m:?}");
        assert_eq!(m.status, 201, "{m:?}");
    }
    let blob_puts: Vec<&Exchange> = log
        .iter()
        .filter(|e| matches!(e.method.as_str(), "PUT" | "PATCH") && e.target.contains("/blobs/"))
        .collect();
    assert!(blob_puts.is_empty(), "{blob_puts:?}");
    assert_eq!(
        stored_manifest(&format!("{}/team/b:t", a.host())),
        stored_manifest(&format!("{}/team/a:t", a.host()))
    );
}

/// A registry that refuses the mount (403, as one does when the token may not pull the
/// source) still gets the blobs, sent: the copy succeeds. The refusal is about the
/// credentials, not the blob, so only the first blob's mount is asked.
#[test]
fn a_refused_mount_falls_back_to_sending_the_blob() {
    let a = Registry::start();
    let h = Harness::new();
    push_two_platform_index(&a, "team/a", "t");
    let front = Recorder::start(&a.url(), |req, response| {
        if req.method == "POST" && req.target.contains("mount=") {
            ocisdk_testkit::ScriptedResponse::json(
                403,
                &serde_json::json!({"errors": [{"code": "DENIED", "message": "no mounts"}]}),
            )
        } else {
            response
        }
    });
    let src = format!("{}/team/a:t", front.host());
    let dst = format!("{}/team/b:t", front.host());
    let report = h.run(&["copy", &src, &dst, "--json"]).success().json();
    let blobs = report["blobs"].as_array().unwrap();
    assert_eq!(blobs.len(), 5);
    assert!(blobs.iter().all(|b| b["outcome"] == "copied"), "{blobs:?}");
    let refused = front.log().iter().filter(|e| e.status == 403).count();
    assert_eq!(refused, 1, "{:?}", front.log());
    assert_eq!(
        stored_manifest(&format!("{}/team/b:t", a.host())),
        stored_manifest(&format!("{}/team/a:t", a.host()))
    );
}

/// A copy into an empty repository asks the target for each manifest once, by `HEAD`: its
/// 404 is the answer. Asking again by `GET` (as `ocisdk digest` does, for registries that
/// answer HEAD 404 where GET serves) doubled the manifest requests of every copy, and every
/// `sdk mirror`, into a repository that lacks them; a registry whose HEAD says 404 wrongly
/// only gets a manifest written that it had, which changes nothing.
#[test]
fn a_copy_into_an_empty_repository_asks_for_each_manifest_once() {
    let a = Registry::start();
    let b = Registry::start();
    let h = Harness::new();
    push_two_platform_index(&a, "team/a", "t");
    let front = Recorder::forwarding(&b.url());
    let src = format!("{}/team/a:t", a.host());
    let dst = format!("{}/team/b:t", front.host());
    let report = h.run(&["copy", &src, &dst, "--json"]).success().json();
    let manifests = report["manifests"].as_array().unwrap();
    assert_eq!(manifests.len(), 3, "{report}");

    let mut want: Vec<String> = manifests
        .iter()
        .map(|m| {
            format!(
                "HEAD /v2/team/b/manifests/{} 404",
                m["digest"].as_str().unwrap()
            )
        })
        .collect();
    want.push("HEAD /v2/team/b/manifests/t 404".into());
    want.sort();
    let mut asked: Vec<String> = front
        .log()
        .into_iter()
        .filter(|e| e.target.contains("/manifests/") && e.method != "PUT")
        .map(|e| format!("{} {} {}", e.method, e.target, e.status))
        .collect();
    asked.sort();
    assert_eq!(asked, want);
    assert_eq!(
        stored_manifest(&format!("{}/team/b:t", b.host())),
        stored_manifest(&format!("{}/team/a:t", a.host()))
    );
}

// ---------------------------------------------------------------------------------------
// sdk mirror
// ---------------------------------------------------------------------------------------

fn sdk_tarball(version: &str, os: &str) -> Vec<u8> {
    let script = format!("#!/bin/sh\necho 'Python {version} ({os})'\n");
    tar_gz_of(&[
        ("bin/python", script.as_bytes(), 0o755),
        ("lib/VERSION", version.as_bytes(), 0o644),
        (
            "lib/blob",
            &pseudo_random_bytes(50_000, version.len() as u64),
            0o644,
        ),
    ])
}

/// Publishes python versions with `sdk publish`: bookworm 3.11.9 and 3.12.4 (the default),
/// bullseye 3.11.12 (its default).
fn publish_catalogue(h: &Harness, url: &str) {
    for (version, os, default) in [
        ("3.11.9", "bookworm", false),
        ("3.12.4", "bookworm", true),
        ("3.11.12", "bullseye", true),
    ] {
        let file = h.path(&format!("python-{os}-{version}.tar.gz"));
        fs::write(&file, sdk_tarball(version, os)).unwrap();
        let mut args = vec!["publish", "python", version, arg(&file), "--os", os];
        if default {
            args.push("--default");
        }
        h.sdk(url, &args).success();
    }
}

#[test]
fn sdk_mirror_to_a_second_registry_installs_the_same_files_and_a_rerun_copies_nothing() {
    let a = Registry::start();
    let b = Registry::start();
    let h = Harness::new();
    publish_catalogue(&h, &a.url());
    let front = Recorder::forwarding(&b.url());
    let front_url = front.url();
    let mirror = |extra: &[&str]| {
        let mut args = vec![
            "mirror",
            "python",
            "--to",
            &front_url,
            "--os",
            "bookworm,bullseye",
            "--json",
        ];
        args.extend_from_slice(extra);
        h.sdk(&a.url(), &args).success().json()
    };

    // A dry run names every image and writes nothing.
    let dry = mirror(&["--dry-run"]);
    let images: Vec<String> = dry["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["target"].as_str().unwrap().to_string())
        .collect();
    let want: Vec<String> = [
        "bookworm-3.11.9",
        "bookworm-3.12.4",
        "bookworm-default",
        "bullseye-3.11.12",
        "bullseye-default",
    ]
    .iter()
    .map(|t| format!("{}/{PYTHON_REPO}:{t}", front.host()))
    .collect();
    assert_eq!(images, want);
    assert!(dry["bytes"].as_u64().unwrap() > 150_000, "{dry}");
    assert_eq!(front.writes(), Vec::<String>::new());

    let first = mirror(&[]);
    assert!(first["bytes"].as_u64().unwrap() > 150_000, "{first}");
    assert!(!front.writes().is_empty());

    // The mirror serves the catalogue: same versions, same default, same files.
    for (os, spec) in [
        ("bookworm", "default"),
        ("bookworm", "3.11"),
        ("bullseye", "3.11"),
    ] {
        let from_a = h.path(&format!("root-a-{os}-{spec}"));
        let from_b = h.path(&format!("root-b-{os}-{spec}"));
        let install = |url: &str, root: &Path| {
            h.sdk(
                url,
                &["install", "python", spec, "--os", os, "--root", arg(root)],
            )
            .success()
        };
        install(&a.url(), &from_a);
        install(&b.url(), &from_b);
        // Each install records the registry it came from; the rest is the same.
        let files = |root: &Path| -> Vec<String> {
            let record = format!("/{} ", ocisdk::sdk::INSTALL_RECORD);
            let all = snapshot(root).into_iter();
            all.filter(|line| !line.contains(&record)).collect()
        };
        assert_eq!(files(&from_a), files(&from_b), "{os} {spec}");
        assert!(!files(&from_b).is_empty());
    }
    let versions = |url: &str| h.sdk(url, &["versions", "python"]).success().stdout;
    assert_eq!(versions(&a.url()), versions(&b.url()));

    // A second run finds everything and writes nothing to the mirror.
    front.clear();
    let second = mirror(&[]);
    assert_eq!(second["bytes"], 0, "{second}");
    for image in second["images"].as_array().unwrap() {
        for m in image["manifests"].as_array().unwrap() {
            assert_eq!(m["outcome"], "present", "{image}");
        }
    }
    assert_eq!(front.writes(), Vec::<String>::new());
    assert!(!front.log().is_empty(), "the second run did not even look");
}

/// A mirror of some versions also gets the one the default names, so that `install default`
/// works at the copy; and a refresh reads the catalogue from its registry even when the
/// copy is also configured as a read mirror of it (it used to read the copy's own tags
/// there and find everything up to date).
#[test]
fn sdk_mirror_copies_the_default_version_and_refreshes_past_a_read_mirror() {
    let a = Registry::start();
    let b = Registry::start();
    let h = Harness::new();
    publish_catalogue(&h, &a.url());
    let to = b.url();
    h.sdk(&a.url(), &["mirror", "python", "3.11", "--to", &to])
        .success();
    let root = h.path("root-default");
    h.sdk(
        &b.url(),
        &["install", "python", "default", "--root", arg(&root)],
    )
    .success();
    assert!(
        root.join("python/3.12.4/bin/python").is_file(),
        "{:?}",
        snapshot(&root)
    );

    // A new version upstream; the copy, configured as a read mirror of it, is refreshed.
    let file = h.path("python-bookworm-3.13.1.tar.gz");
    fs::write(&file, sdk_tarball("3.13.1", "bookworm")).unwrap();
    h.sdk(
        &a.url(),
        &["publish", "python", "3.13.1", arg(&file), "--default"],
    )
    .success();
    let read_mirror = format!("{}={}", a.host(), b.url());
    h.sdk(
        &a.url(),
        &["mirror", "python", "--to", &to, "--mirror", &read_mirror],
    )
    .success();
    let versions = |url: &str| h.sdk(url, &["versions", "python"]).success().stdout;
    assert_eq!(versions(&b.url()), versions(&a.url()));
    let default = |url: &str| h.sdk(url, &["default", "python"]).success().stdout;
    assert_eq!(default(&b.url()), "3.13.1\n");
}

#[test]
fn sdk_mirror_into_oci_layouts_that_skopeo_and_copy_read_back() {
    let a = Registry::start();
    let b = Registry::start();
    let h = Harness::new();
    publish_catalogue(&h, &a.url());
    let dir = h.path("carry");
    let to = format!("oci:{}", arg(&dir));
    h.sdk(&a.url(), &["mirror", "python", "3.12", "--to", &to])
        .success();
    let repo_dir = dir.join(PYTHON_REPO);
    let a_ref = format!("{}/{PYTHON_REPO}:bookworm-3.12.4", a.host());
    let layout_raw = skopeo::inspect_raw(&format!("oci:{}:bookworm-default", repo_dir.display()));
    assert_eq!(layout_raw, stored_manifest(&a_ref));

    // Carried into another registry, installable from there.
    for tag in ["bookworm-3.12.4", "bookworm-default"] {
        h.run(&[
            "copy",
            &format!("oci:{}:{tag}", arg(&repo_dir)),
            &format!("{}/{PYTHON_REPO}", b.host()),
        ])
        .success();
    }
    let root = h.path("root");
    h.sdk(
        &b.url(),
        &["install", "python", "default", "--root", arg(&root)],
    )
    .success();
    assert!(root.join("python/3.12.4/bin/python").exists());
}

// ---------------------------------------------------------------------------------------
// Pull mirrors
// ---------------------------------------------------------------------------------------

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

#[test]
fn a_pull_through_cache_mirror_serves_after_the_upstream_stops() {
    let mut a = Registry::start();
    let cache = RegistryBuilder::new()
        .extra_config(&format!("proxy:\n  remoteurl: {}\n", a.url()))
        .start();
    let h = Harness::new();
    let (layer, layer_digest) = push_one_layer(&a, "tools/big", "1", 400_000);
    let reference = format!("{}/tools/big:1", a.host());
    let mirror = cache.url();

    let first = h.path("first");
    let run = h
        .run(&[
            "pull",
            &reference,
            "-o",
            arg(&first),
            "--mirror",
            &mirror,
            "-v",
        ])
        .success();
    assert!(fs::read(&first).unwrap() == layer, "first pull");
    let by_cache = format!("served by mirror {}", cache.host());
    assert!(run.stderr.contains(&by_cache), "{}", run.stderr);
    // The cache stores a blob after serving it: wait until it has.
    wait_for("the cache to store the layer", || {
        cache.blob_data_path(&layer_digest).exists()
    });

    a.stop();
    let down = h.run(&[
        "pull",
        &reference,
        "-o",
        arg(&h.path("x")),
        "--retries",
        "0",
    ]);
    assert_eq!(down.code, 6, "the upstream should be down: {}", down.stderr);

    let second = h.path("second");
    let run = h
        .run(&[
            "pull",
            &reference,
            "-o",
            arg(&second),
            "--mirror",
            &mirror,
            "-v",
        ])
        .success();
    assert!(fs::read(&second).unwrap() == layer, "second pull");
    assert!(run.stderr.contains(&by_cache), "{}", run.stderr);
}

#[test]
fn a_mirror_that_is_down_falls_back_to_the_upstream() {
    let a = Registry::start();
    let h = Harness::new();
    let (layer, _) = push_one_layer(&a, "tools/small", "1", 10_000);
    let closed = format!("http://127.0.0.1:{}", free_port());
    let out = h.path("out");
    let run = h
        .run(&[
            "pull",
            &format!("{}/tools/small:1", a.host()),
            "-o",
            arg(&out),
            "--mirror",
            &closed,
            "-v",
        ])
        .success();
    assert!(fs::read(&out).unwrap() == layer, "pulled layer");
    assert!(
        run.stderr
            .contains(&format!("served by upstream {}", a.host())),
        "{}",
        run.stderr
    );
}

#[test]
fn a_mirror_serving_wrong_bytes_is_rejected_by_digest_and_the_upstream_serves() {
    let a = Registry::start();
    let h = Harness::new();
    let (layer, layer_digest) = push_one_layer(&a, "tools/small", "2", 20_000);
    // The "mirror" forwards to the same registry but flips a byte of every blob.
    let bad = Recorder::start(&a.url(), |req, mut response| {
        if req.method == "GET" && req.path().contains("/blobs/") && !response.body.is_empty() {
            let i = response.body.len() / 2;
            response.body[i] ^= 0xff;
        }
        response
    });
    let reference = format!("{}/tools/small:2", a.host());
    let out = h.path("out");
    let run = h
        .run(&[
            "pull",
            &reference,
            "-o",
            arg(&out),
            "--mirror",
            &bad.url(),
            "-v",
        ])
        .success();
    assert!(fs::read(&out).unwrap() == layer, "pulled layer");
    let asked: Vec<Exchange> = bad
        .log()
        .into_iter()
        .filter(|e| e.method == "GET" && e.target.contains(&layer_digest))
        .collect();
    assert!(!asked.is_empty(), "the mirror was not asked for the layer");
    assert!(run.stderr.contains("verification failed"), "{}", run.stderr);
    assert!(
        run.stderr
            .contains(&format!("served by upstream {}", a.host())),
        "{}",
        run.stderr
    );

    // The config is a small blob read into memory: the same holds.
    let run = h
        .run(&["config", &reference, "--mirror", &bad.url(), "-v"])
        .success();
    assert!(run.stdout.contains("rootfs"), "{}", run.stdout);
    assert!(run.stderr.contains("verification failed"), "{}", run.stderr);
}

/// Credentials given on the command line or in OCISDK_USERNAME are the registry's: a read
/// mirror that asks for credentials does not get them (it may be anyone's cache, and is
/// often plain HTTP); the registry then serves.
#[test]
fn a_mirror_never_gets_the_registrys_credentials() {
    let a = RegistryBuilder::new()
        .htpasswd("alice", "upstream-secret")
        .start();
    let h = Harness::new();
    let mirror = ScriptedServer::start(|_| {
        ocisdk_testkit::ScriptedResponse::new(401)
            .header("WWW-Authenticate", r#"Basic realm="mirror""#)
    });
    let file = h.path("layer.bin");
    fs::write(&file, b"layer").unwrap();
    let reference = format!("{}/tools/small:1", a.host());
    // `ocisdk ARGS…` with alice's credentials in the environment.
    let as_alice = |args: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ocisdk"));
        cli::scrub(&mut cmd)
            .args(args)
            .env("OCISDK_CACHE_DIR", h.path("cache"))
            .env("HOME", h.path("home"))
            .env("OCISDK_USERNAME", "alice")
            .env("OCISDK_PASSWORD", "upstream-secret");
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    as_alice(&["push", arg(&file), &reference]);
    as_alice(&["manifest", &reference, "--mirror", &mirror.url()]);
    assert!(!mirror.requests().is_empty(), "the mirror was not asked");
    for request in mirror.requests() {
        assert!(request.header("authorization").is_none(), "{request:#?}");
    }
}

/// A mirror that accepts connections and never answers costs one stall timeout, then is
/// passed over for the rest of the run (it used to be asked again for every read).
#[test]
fn a_hung_mirror_is_asked_once() {
    let a = Registry::start();
    let h = Harness::new();
    let (layer, _) = push_one_layer(&a, "tools/small", "1", 10_000);
    let hung = ScriptedServer::start(|_| {
        ocisdk_testkit::ScriptedResponse::new(200).delay(Duration::from_secs(60))
    });
    let out = h.path("out");
    let reference = format!("{}/tools/small:1", a.host());
    let mirror = hung.url();
    let args = ["pull", &reference, "-o", arg(&out), "--mirror", &mirror];
    h.run(&[&args[..], &["--stall-timeout", "1"]].concat())
        .success();
    assert!(fs::read(&out).unwrap() == layer, "pulled layer");
    assert_eq!(hung.request_count(), 1, "{:?}", hung.requests());
}

#[test]
fn mirrors_for_another_upstream_are_not_asked() {
    let a = Registry::start();
    let h = Harness::new();
    push_one_layer(&a, "tools/small", "3", 1_000);
    let front = Recorder::forwarding(&a.url());
    let only_elsewhere = format!("mcr.microsoft.com={}", front.url());
    h.run(&[
        "pull",
        &format!("{}/tools/small:3", a.host()),
        "-o",
        arg(&h.path("out")),
        "--mirror",
        &only_elsewhere,
    ])
    .success();
    assert!(front.log().is_empty(), "{:?}", front.log());
    let bad = h.run(&["tags", "x/y", "--mirror", "ftp://nope"]);
    assert_eq!(bad.code, 2, "{}", bad.stderr);
}

// ---------------------------------------------------------------------------------------
// Streaming between registries
// ---------------------------------------------------------------------------------------

#[test]
fn a_source_serving_wrong_bytes_never_lands_in_the_target() {
    let a = Registry::start();
    let b = Registry::start();
    let h = Harness::new();
    let (_, layer_digest) = push_one_layer(&a, "tools/small", "4", 30_000);
    let bad = Recorder::start(&a.url(), |req, mut response| {
        if req.method == "GET" && req.path().contains("/blobs/") && response.body.len() > 1000 {
            let i = response.body.len() - 1;
            response.body[i] ^= 0xff;
        }
        response
    });
    let run = h.run(&[
        "copy",
        &format!("{}/tools/small:4", bad.host()),
        &format!("{}/tools/small:4", b.host()),
        "--retries",
        "0",
    ]);
    assert_eq!(run.code, 5, "{}", run.stderr);
    assert!(run.stderr.contains("verification failed"), "{}", run.stderr);
    assert!(!b.blob_data_path(&layer_digest).exists());
    let tag = h.run(&["digest", &format!("{}/tools/small:4", b.host())]);
    assert_eq!(tag.code, 3, "the tag must not exist: {}", tag.stdout);
}

#[test]
fn an_interrupted_copy_resumes_without_sending_blobs_twice() {
    let a = Registry::start();
    let b = Registry::start();
    let h = Harness::new();
    push_two_platform_index(&a, "tools/sdk", "v6");
    let index: Value =
        serde_json::from_slice(&stored_manifest(&format!("{}/tools/sdk:v6", a.host()))).unwrap();
    let arm = index["manifests"][1]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let arm_manifest: Value =
        serde_json::from_slice(&stored_manifest(&format!("{}/tools/sdk@{arm}", a.host()))).unwrap();
    let failing = arm_manifest["layers"][1]["digest"]
        .as_str()
        .unwrap()
        .to_string();

    // The target refuses the upload of one blob once.
    let log: Arc<Mutex<Vec<Exchange>>> = Arc::default();
    let (upstream, sink, refuse) = (b.url(), log.clone(), failing.clone());
    let refused_once = Arc::new(Mutex::new(false));
    let front = ScriptedServer::start(move |req| {
        let refuse_now = req.method == "PUT"
            && req.target.contains(&refuse.replace(':', "%3A"))
            && !std::mem::replace(&mut *refused_once.lock().unwrap(), true);
        let response = if refuse_now {
            ocisdk_testkit::ScriptedResponse::new(503)
        } else {
            forward(req, &upstream)
        };
        sink.lock().unwrap().push(Exchange {
            method: req.method.clone(),
            target: req.target.clone(),
            status: response.status,
        });
        response
    });
    let src = format!("{}/tools/sdk:v6", a.host());
    let dst = format!("{}/tools/sdk:v6", front.host());
    let first = h.run(&["copy", &src, &dst, "--jobs", "1", "--retries", "0"]);
    assert_eq!(first.code, 6, "{}", first.stderr);
    let landed: Vec<String> = log
        .lock()
        .unwrap()
        .iter()
        .filter(|e| e.method == "PUT" && e.status == 201 && e.target.contains("digest="))
        .filter_map(|e| {
            e.target
                .split("digest=")
                .nth(1)
                .map(|d| d.replace("%3A", ":"))
        })
        .collect();
    assert!(!landed.is_empty(), "nothing landed before the failure");

    let second = h.run(&["copy", &src, &dst, "--json"]).success().json();
    for blob in second["blobs"].as_array().unwrap() {
        let digest = blob["digest"].as_str().unwrap();
        let want = if landed.iter().any(|d| d == digest) {
            "present"
        } else {
            "copied"
        };
        assert_eq!(blob["outcome"], want, "{digest}: {second}");
    }
    assert!(second["blobs"]
        .as_array()
        .unwrap()
        .iter()
        .any(|b| b["digest"] == failing.as_str() && b["outcome"] == "copied"));
    assert_eq!(
        stored_manifest(&format!("{}/tools/sdk:v6", b.host())),
        stored_manifest(&src)
    );
}
