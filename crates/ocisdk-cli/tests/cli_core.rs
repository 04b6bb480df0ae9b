//! End-to-end tests of the core pull commands of the `ocisdk` binary (`tags`, `manifest`,
//! `digest`, `config`, `blob`, `pull`) against a real CNCF distribution registry started by
//! the testkit, with fixtures written as OCI layouts and pushed with skopeo.
//!
//! Most tests share one registry holding every fixture (see [`fixtures`]); a test that
//! alters stored content starts its own.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex, Weak};

use ocisdk_testkit::{
    assert_same_bytes, cli, corrupt_blob, digest_of, free_port, list_dir, media_types,
    pseudo_random_bytes, skopeo, tar_gz_of, Format, ImageBuilder, ImageInfo, IndexInfo, OciLayout,
    Platform, Registry,
};
use serde_json::Value;

// ---------------------------------------------------------------------------------------
// Running the binary
// ---------------------------------------------------------------------------------------

/// What one run of the binary produced.
struct Run {
    code: i32,
    stdout: Vec<u8>,
    stderr: String,
}

impl Run {
    fn stdout_text(&self) -> String {
        String::from_utf8(self.stdout.clone()).expect("stdout is UTF-8")
    }

    fn stdout_json(&self) -> Value {
        serde_json::from_slice(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}): {:?}\nstderr: {}",
                self.stdout_text(),
                self.stderr
            )
        })
    }

    /// Panics with the output unless the exit code is `want`.
    #[track_caller]
    fn expect_code(self, want: i32) -> Run {
        assert_eq!(
            self.code,
            want,
            "exit code; stdout: {:?}\nstderr: {}",
            String::from_utf8_lossy(&self.stdout),
            self.stderr
        );
        self
    }

    #[track_caller]
    fn success(self) -> Run {
        self.expect_code(0)
    }
}

/// Runs `ocisdk ARGS…` with none of the developer's settings.
fn ocisdk(args: &[&str]) -> Run {
    let Output {
        status,
        stdout,
        stderr,
    } = cli::scrub(&mut Command::new(env!("CARGO_BIN_EXE_ocisdk")))
        .args(args)
        .output()
        .expect("run the ocisdk binary");
    Run {
        code: status.code().expect("ocisdk was killed by a signal"),
        stdout,
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

#[track_caller]
fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

// ---------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------

/// Repository of the one-layer OCI image, pushed under every tag of [`PYTHON_TAGS`].
const PYTHON_REPO: &str = "sdks/python";
const PYTHON_TAGS: [&str; 3] = ["3.11.0", "3.11", "bookworm-3.11.0"];
/// The same image converted to Docker schema 2.
const PYTHON_DOCKER: &str = "sdks/python-docker:3.11.0";
/// A two-platform index (linux/amd64, linux/arm64).
const MULTI: &str = "sdks/multi:1.0";
/// A two-layer image.
const LAYERED: &str = "sdks/layered:1.0";

/// The shape of an SDK tarball: a gzip'd tar holding a few MB of incompressible content.
fn sdk_layer(name: &str, size: usize, seed: u64) -> Vec<u8> {
    let binary = pseudo_random_bytes(size, seed);
    tar_gz_of(&[
        (&format!("{name}/bin/{name}"), &binary, 0o755),
        (&format!("{name}/VERSION"), name.as_bytes(), 0o644),
    ])
}

/// Everything pushed to the shared registry, with what the layouts wrote.
struct Fixtures {
    registry: Registry,
    /// The one-layer OCI image (tags [`PYTHON_TAGS`] in [`PYTHON_REPO`]).
    python: ImageInfo,
    python_layer: Vec<u8>,
    /// Digest skopeo reported for the v2s2 push of the same image ([`PYTHON_DOCKER`]).
    python_docker_digest: String,
    /// The index ([`MULTI`]); `manifests[0]` is amd64, `manifests[1]` arm64.
    multi: IndexInfo,
    multi_layers: [Vec<u8>; 2],
    /// The two-layer image ([`LAYERED`]).
    layered: ImageInfo,
    layered_layers: [Vec<u8>; 2],
}

impl Fixtures {
    fn host(&self) -> String {
        self.registry.host()
    }

    /// `HOST/what`.
    fn at(&self, what: &str) -> String {
        format!("{}/{what}", self.host())
    }

    /// `HOST/sdks/python:3.11.0`.
    fn python_ref(&self) -> String {
        self.at(&format!("{PYTHON_REPO}:{}", PYTHON_TAGS[0]))
    }

    fn build() -> Fixtures {
        let registry = Registry::start();
        let host = registry.host();
        let mut layout = OciLayout::new();

        let python_layer = sdk_layer("python", 3 << 20, 1);
        let python = layout.add_image(
            "python",
            &ImageBuilder::new()
                .layer(python_layer.clone(), media_types::OCI_LAYER_GZIP)
                .config_labels([
                    ("org.oryx.version", "3.11.0"),
                    ("org.oryx.sdk", "python"),
                    ("org.oryx.os", "bookworm"),
                ])
                .annotations([
                    ("org.opencontainers.image.version", "3.11.0"),
                    ("org.opencontainers.image.title", "python-3.11.0.tar.gz"),
                ]),
        );
        for tag in PYTHON_TAGS {
            let pushed = skopeo::push_layout(
                layout.path(),
                "python",
                &host,
                &format!("{PYTHON_REPO}:{tag}"),
                Format::Oci,
            );
            assert_eq!(pushed, python.manifest_digest, "OCI push keeps the digest");
        }
        let python_docker_digest =
            skopeo::push_layout(layout.path(), "python", &host, PYTHON_DOCKER, Format::V2s2);

        let multi_layers = [
            sdk_layer("node-amd64", 64 << 10, 2),
            sdk_layer("node-arm64", 64 << 10, 3),
        ];
        let multi = layout.add_index(
            "multi",
            vec![
                (
                    Platform::linux("amd64"),
                    ImageBuilder::new().layer(multi_layers[0].clone(), media_types::OCI_LAYER_GZIP),
                ),
                (
                    Platform::linux("arm64"),
                    ImageBuilder::new().layer(multi_layers[1].clone(), media_types::OCI_LAYER_GZIP),
                ),
            ],
        );
        let pushed = skopeo::push_index(layout.path(), "multi", &host, MULTI);
        assert_eq!(pushed, multi.index_digest);

        let layered_layers = [
            sdk_layer("base", 32 << 10, 4),
            sdk_layer("extra", 32 << 10, 5),
        ];
        let layered = layout.add_image(
            "layered",
            &ImageBuilder::new()
                .layer(layered_layers[0].clone(), media_types::OCI_LAYER_GZIP)
                .layer(layered_layers[1].clone(), media_types::OCI_LAYER_GZIP),
        );
        skopeo::push_layout(layout.path(), "layered", &host, LAYERED, Format::Oci);

        Fixtures {
            registry,
            python,
            python_layer,
            python_docker_digest,
            multi,
            multi_layers,
            layered,
            layered_layers,
        }
    }
}

/// The shared registry with every fixture pushed.
///
/// Held through `Arc`s and kept in a `Weak`, so the registry process is stopped when the
/// last running test lets go of it (a `static` would never be dropped and would leave the
/// process behind); a later test then starts a fresh one. Tests only read from it.
fn fixtures() -> Arc<Fixtures> {
    static SHARED: Mutex<Weak<Fixtures>> = Mutex::new(Weak::new());
    let mut shared = SHARED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(f) = shared.upgrade() {
        return f;
    }
    let f = Arc::new(Fixtures::build());
    *shared = Arc::downgrade(&f);
    f
}

/// A temp dir for outputs.
fn out_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("ocisdk-cli-test-")
        .tempdir()
        .expect("temp dir")
}

fn path_arg(p: &Path) -> &str {
    p.to_str().expect("UTF-8 temp path")
}

// ---------------------------------------------------------------------------------------
// tags
// ---------------------------------------------------------------------------------------

#[test]
fn tags_lists_exactly_the_pushed_tags() {
    let f = fixtures();
    let want: BTreeSet<String> = PYTHON_TAGS.iter().map(|t| t.to_string()).collect();

    let run = ocisdk(&["tags", &f.at(PYTHON_REPO)]).success();
    let lines: Vec<String> = run.stdout_text().lines().map(str::to_string).collect();
    assert_eq!(lines.len(), want.len(), "one tag per line: {lines:?}");
    assert_eq!(lines.into_iter().collect::<BTreeSet<_>>(), want);

    let run = ocisdk(&["tags", "--json", &f.at(PYTHON_REPO)]).success();
    let json = run.stdout_json();
    let array = json.as_array().expect("--json prints an array");
    let got: BTreeSet<String> = array
        .iter()
        .map(|t| t.as_str().expect("tags are strings").to_string())
        .collect();
    assert_eq!(array.len(), want.len());
    assert_eq!(got, want);
}

#[test]
fn tags_of_an_unknown_repository_is_not_found() {
    let f = fixtures();
    let run = ocisdk(&["tags", &f.at("sdks/does-not-exist")]).expect_code(3);
    assert!(run.stdout.is_empty());
    for needle in [f.host().as_str(), "sdks/does-not-exist", "404"] {
        assert!(
            run.stderr.contains(needle),
            "stderr should mention {needle:?}: {}",
            run.stderr
        );
    }
}

// ---------------------------------------------------------------------------------------
// manifest and digest
// ---------------------------------------------------------------------------------------

#[test]
fn manifest_prints_the_pushed_bytes_and_digest_agrees() {
    let f = fixtures();
    let reference = f.python_ref();

    let manifest = ocisdk(&["manifest", &reference]).success().stdout;
    assert_eq!(
        String::from_utf8_lossy(&manifest),
        String::from_utf8_lossy(&f.python.manifest_bytes),
        "an OCI push preserves the manifest bytes; `manifest` must print them unchanged"
    );

    let digest = ocisdk(&["digest", &reference]).success().stdout_text();
    assert_eq!(digest.trim_end(), f.python.manifest_digest);
    assert_eq!(digest_of(&manifest), digest.trim_end());
}

#[test]
fn manifest_json_has_digest_and_media_type() {
    let f = fixtures();
    let json = ocisdk(&["manifest", "--json", &f.python_ref()])
        .success()
        .stdout_json();
    assert_eq!(json["digest"], f.python.manifest_digest.as_str());
    assert_eq!(json["mediaType"], media_types::OCI_MANIFEST);
    assert_eq!(json["size"], f.python.manifest_bytes.len());
    assert_eq!(json["manifest"], f.python.manifest_json());
    assert_eq!(
        json["manifest"]["annotations"]["org.opencontainers.image.version"],
        "3.11.0"
    );
}

#[test]
fn manifest_of_a_docker_v2s2_push_keeps_its_media_type_and_digest() {
    let f = fixtures();
    let reference = f.at(PYTHON_DOCKER);

    let manifest = ocisdk(&["manifest", &reference]).success().stdout;
    let doc: Value = serde_json::from_slice(&manifest).expect("manifest is JSON");
    assert_eq!(doc["mediaType"], media_types::DOCKER_MANIFEST);
    assert_eq!(digest_of(&manifest), f.python_docker_digest);

    let digest = ocisdk(&["digest", &reference]).success().stdout_text();
    assert_eq!(digest.trim_end(), digest_of(&manifest));

    let json = ocisdk(&["manifest", "--json", &reference])
        .success()
        .stdout_json();
    assert_eq!(json["mediaType"], media_types::DOCKER_MANIFEST);
    assert_eq!(json["digest"], f.python_docker_digest.as_str());
}

#[test]
fn manifest_of_an_index_without_platform_is_the_index() {
    let f = fixtures();
    let run = ocisdk(&["manifest", &f.at(MULTI)]).success();
    assert_same_bytes(&run.stdout, &f.multi.index_bytes, "index bytes");

    let json = ocisdk(&["manifest", "--json", &f.at(MULTI)])
        .success()
        .stdout_json();
    assert_eq!(json["mediaType"], media_types::OCI_INDEX);
    assert_eq!(json["digest"], f.multi.index_digest.as_str());
}

#[test]
fn manifest_with_platform_resolves_the_index_to_that_child() {
    let f = fixtures();
    let arm64 = &f.multi.manifests[1];
    assert_eq!(arm64.platform, Platform::linux("arm64"));

    let run = ocisdk(&["manifest", "--platform", "linux/arm64", &f.at(MULTI)]).success();
    assert_same_bytes(&run.stdout, &arm64.manifest_bytes, "arm64 manifest bytes");

    let json = ocisdk(&[
        "manifest",
        "--json",
        "--platform",
        "linux/arm64",
        &f.at(MULTI),
    ])
    .success()
    .stdout_json();
    assert_eq!(json["digest"], arm64.manifest_digest.as_str());
    assert_ne!(
        json["digest"],
        f.multi.manifests[0].manifest_digest.as_str()
    );
    assert_eq!(json["mediaType"], media_types::OCI_MANIFEST);
}

#[test]
fn manifest_by_digest_works() {
    let f = fixtures();
    let by_digest = f.at(&format!("{PYTHON_REPO}@{}", f.python.manifest_digest));
    let run = ocisdk(&["manifest", &by_digest]).success();
    assert_same_bytes(&run.stdout, &f.python.manifest_bytes, "manifest by digest");

    let digest = ocisdk(&["digest", &by_digest]).success().stdout_text();
    assert_eq!(digest.trim_end(), f.python.manifest_digest);
}

#[test]
fn manifest_by_an_unknown_digest_is_not_found() {
    let f = fixtures();
    let missing = digest_of(b"no manifest has these bytes");
    let reference = f.at(&format!("{PYTHON_REPO}@{missing}"));
    let run = ocisdk(&["manifest", &reference]).expect_code(3);
    assert!(run.stdout.is_empty());
    assert!(run.stderr.contains("404"), "{}", run.stderr);
    ocisdk(&["digest", &reference]).expect_code(3);
}

// ---------------------------------------------------------------------------------------
// config
// ---------------------------------------------------------------------------------------

#[test]
fn config_prints_the_config_blob_with_its_labels() {
    let f = fixtures();
    let run = ocisdk(&["config", &f.python_ref()]).success();
    let printed = run.stdout.strip_suffix(b"\n").unwrap_or(&run.stdout);
    assert_eq!(
        digest_of(printed),
        f.python.config_digest,
        "config bytes as stored"
    );
    let config: Value = serde_json::from_slice(printed).expect("config is JSON");
    assert_eq!(config["config"]["Labels"]["org.oryx.version"], "3.11.0");
    assert_eq!(config["config"]["Labels"]["org.oryx.sdk"], "python");
}

#[test]
fn config_json_has_labels() {
    let f = fixtures();
    let json = ocisdk(&["config", "--json", &f.python_ref()])
        .success()
        .stdout_json();
    let labels = json["labels"].as_object().expect("labels is an object");
    assert_eq!(labels.len(), 3, "{labels:?}");
    assert_eq!(labels["org.oryx.version"], "3.11.0");
    assert_eq!(labels["org.oryx.sdk"], "python");
    assert_eq!(labels["org.oryx.os"], "bookworm");
    assert_eq!(json["manifestDigest"], f.python.manifest_digest.as_str());
}

// ---------------------------------------------------------------------------------------
// pull and blob
// ---------------------------------------------------------------------------------------

#[test]
fn pull_writes_the_layer_of_an_oci_image() {
    let f = fixtures();
    let dir = out_dir();
    let dest = dir.path().join("python.tar.gz");
    ocisdk(&["pull", &f.python_ref(), "-o", path_arg(&dest)]).success();
    assert_same_bytes(&read(&dest), &f.python_layer, "pulled layer");
    assert_eq!(
        list_dir(dir.path()),
        ["python.tar.gz"],
        "no temp files left"
    );
}

#[test]
fn pull_writes_the_layer_of_a_docker_v2s2_image() {
    let f = fixtures();
    let dir = out_dir();
    let dest = dir.path().join("python.tar.gz");
    ocisdk(&["pull", &f.at(PYTHON_DOCKER), "-o", path_arg(&dest)]).success();
    assert_same_bytes(&read(&dest), &f.python_layer, "pulled layer");
}

#[test]
fn pull_with_platform_takes_that_platforms_layer() {
    let f = fixtures();
    let dir = out_dir();
    let dest = dir.path().join("node.tar.gz");
    ocisdk(&[
        "pull",
        "--platform",
        "linux/arm64",
        &f.at(MULTI),
        "-o",
        path_arg(&dest),
    ])
    .success();
    assert_same_bytes(&read(&dest), &f.multi_layers[1], "arm64 layer");
}

#[test]
fn pull_of_a_single_platform_image_for_another_platform_fails_naming_its_platform() {
    let f = fixtures();
    let dir = out_dir();
    let dest = dir.path().join("python.tar.gz");
    let run = ocisdk(&[
        "pull",
        "--platform",
        "linux/s390x",
        &f.python_ref(),
        "-o",
        path_arg(&dest),
    ])
    .expect_code(3);
    assert!(run.stderr.contains("linux/s390x"), "{}", run.stderr);
    assert!(run.stderr.contains("linux/amd64"), "{}", run.stderr);
    assert_eq!(
        list_dir(dir.path()),
        Vec::<String>::new(),
        "nothing written"
    );
}

#[test]
fn pull_of_a_multi_layer_image_needs_a_layer_choice() {
    let f = fixtures();
    let dir = out_dir();
    let dest = dir.path().join("layer.tar.gz");
    let run = ocisdk(&["pull", &f.at(LAYERED), "-o", path_arg(&dest)]).expect_code(1);
    assert!(run.stderr.contains("--layer"), "{}", run.stderr);
    assert!(!dest.exists());
    assert!(list_dir(dir.path()).is_empty());
}

#[test]
fn pull_with_layer_index_takes_that_layer() {
    let f = fixtures();
    let dir = out_dir();
    let dest = dir.path().join("extra.tar.gz");
    ocisdk(&[
        "pull",
        &f.at(LAYERED),
        "--layer",
        "1",
        "-o",
        path_arg(&dest),
    ])
    .success();
    assert_same_bytes(&read(&dest), &f.layered_layers[1], "second layer");
    assert_eq!(
        digest_of(&read(&dest)),
        f.layered.layer_digests[1],
        "fixture sanity"
    );
}

/// A `--layer` past the last layer says how many the image has, and writes nothing. Exit 1
/// ("other error"), as for an image with several layers and no `--layer`.
#[test]
fn pull_with_a_layer_index_past_the_last_names_how_many_layers_there_are() {
    let f = fixtures();
    let dir = out_dir();
    let dest = dir.path().join("layer.tar.gz");
    let run = ocisdk(&[
        "pull",
        &f.python_ref(),
        "--layer",
        "3",
        "-o",
        path_arg(&dest),
    ]);
    let run = run.expect_code(1);
    assert!(
        run.stderr
            .contains("layer 3 does not exist: the image has 1 layer(s)"),
        "{}",
        run.stderr
    );
    assert!(list_dir(dir.path()).is_empty());
}

#[test]
fn blob_by_digest_writes_the_blob() {
    let f = fixtures();
    let dir = out_dir();
    let dest = dir.path().join("blob.bin");
    let layer = &f.python.layer_digests[0];
    ocisdk(&[
        "blob",
        &f.at(&format!("{PYTHON_REPO}@{layer}")),
        "-o",
        path_arg(&dest),
    ])
    .success();
    assert_same_bytes(&read(&dest), &f.python_layer, "blob");
    assert_eq!(list_dir(dir.path()), ["blob.bin"]);
}

/// An output path that cannot take the file (a folder, or in a folder that does not exist)
/// fails before the layer is downloaded: the rename at the end used to refuse it only after
/// the whole download.
#[test]
fn pull_and_blob_to_a_path_that_cannot_take_the_file_fail_before_downloading() {
    let f = fixtures();
    let dir = out_dir();
    let layer = &f.python.layer_digests[0];
    let blob_ref = f.at(&format!("{PYTHON_REPO}@{layer}"));
    let missing = dir.path().join("no-such-folder/python.tar.gz");
    let cases: [(&[&str], &str); 3] = [
        (
            &["pull", &f.python_ref(), "-o", path_arg(dir.path())],
            "it is a folder",
        ),
        (
            &["blob", &blob_ref, "-o", path_arg(dir.path())],
            "it is a folder",
        ),
        (
            &["pull", &f.python_ref(), "-o", path_arg(&missing)],
            "no such folder",
        ),
    ];
    for (args, why) in cases {
        let run = ocisdk(args).expect_code(1);
        assert!(run.stderr.contains(why), "{args:?}: {}", run.stderr);
        assert!(
            !run.stderr.contains("downloaded"),
            "{args:?} downloaded first: {}",
            run.stderr
        );
    }
    assert!(list_dir(dir.path()).is_empty(), "nothing written");
}

/// A folder holding one unrelated file, to check that failures leave it as it was.
fn dest_folder(parent: &Path, name: &str) -> PathBuf {
    let dir = parent.join(name);
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("keep.txt"), b"untouched").unwrap();
    dir
}

#[test]
fn corrupted_blob_fails_verification_and_leaves_nothing_behind() {
    // Its own registry: the test alters stored content.
    let registry = Registry::start();
    let mut layout = OciLayout::new();
    let layer = sdk_layer("corrupt", 256 << 10, 6);
    let info = layout.add_image(
        "v1",
        &ImageBuilder::new().layer(layer, media_types::OCI_LAYER_GZIP),
    );
    skopeo::push_layout(
        layout.path(),
        "v1",
        &registry.host(),
        "sdks/corrupt:1.0",
        Format::Oci,
    );
    let layer_digest = &info.layer_digests[0];
    corrupt_blob(&registry, layer_digest);

    let out = out_dir();
    let cases = [
        (
            "blob",
            format!("{}/sdks/corrupt@{layer_digest}", registry.host()),
        ),
        ("pull", format!("{}/sdks/corrupt:1.0", registry.host())),
    ];
    for (command, reference) in cases {
        let dir = dest_folder(out.path(), command);
        let dest = dir.join("layer.tar.gz");
        let run = ocisdk(&[command, &reference, "-o", path_arg(&dest)]).expect_code(5);
        assert!(
            run.stderr.contains(layer_digest.as_str()),
            "{command}: stderr names the expected digest: {}",
            run.stderr
        );
        assert!(!dest.exists(), "{command}: destination must not exist");
        assert_eq!(
            list_dir(&dir),
            ["keep.txt"],
            "{command}: the folder must hold no stray temp file"
        );
    }
}

// ---------------------------------------------------------------------------------------
// bad input, unreachable registry
// ---------------------------------------------------------------------------------------

#[test]
fn invalid_references_are_usage_errors() {
    let dir = out_dir();
    let dest = dir.path().join("never-written.tar.gz");
    for reference in ["UPPER/case", "a/b@sha256:123"] {
        for args in [
            vec!["manifest", reference],
            vec!["digest", reference],
            vec!["pull", reference, "-o", path_arg(&dest)],
        ] {
            let run = ocisdk(&args).expect_code(2);
            assert!(
                run.stderr.contains(reference),
                "{args:?}: stderr quotes the reference: {}",
                run.stderr
            );
        }
    }
    assert!(list_dir(dir.path()).is_empty());
}

#[test]
fn closed_port_is_unreachable() {
    let port = free_port();
    let reference = format!("127.0.0.1:{port}/x");
    // With the default retries (a few seconds of backoff) and without any.
    for args in [
        vec!["manifest", &reference],
        vec!["tags", "--retries", "0", &reference],
    ] {
        let run = ocisdk(&args).expect_code(6);
        assert!(
            run.stderr.contains(&format!("127.0.0.1:{port}")),
            "{args:?}: {}",
            run.stderr
        );
    }
}

/// A 404 for a layer of an image whose tag exists (the registry lost the blob) is not "tag
/// does not exist": the close-tags hint is for a missing tag only.
#[test]
fn a_missing_layer_is_not_reported_as_a_missing_tag() {
    let registry = Registry::start();
    let dir = out_dir();
    let file = dir.path().join("layer.bin");
    std::fs::write(&file, pseudo_random_bytes(1000, 5)).unwrap();
    let reference = format!("{}/lost/blob:bookworm-1.0", registry.host());
    let pushed = ocisdk(&["push", path_arg(&file), &reference, "--json"]).success();
    let pushed: serde_json::Value = serde_json::from_slice(&pushed.stdout).unwrap();
    let layer = pushed["push"]["layer_digest"].as_str().unwrap().to_string();
    let url = format!("{}/v2/lost/blob/blobs/{layer}", registry.url());
    let deleted = ocisdk_testkit::http::request("DELETE", &url, &[], &[]).unwrap();
    assert_eq!(deleted.status, 202, "{}", deleted.text());

    let out = dir.path().join("out.bin");
    let run = ocisdk(&["pull", &reference, "-o", path_arg(&out)]).expect_code(3);
    assert!(run.stderr.contains("BLOB_UNKNOWN"), "{}", run.stderr);
    assert!(!run.stderr.contains("does not exist"), "{}", run.stderr);
    // A tag that is missing still gets its hint.
    let missing = format!("{}/lost/blob:bookworm-1.1", registry.host());
    let run = ocisdk(&["pull", &missing, "-o", path_arg(&out)]).expect_code(3);
    assert!(
        run.stderr.contains("close matches: bookworm-1.0"),
        "{}",
        run.stderr
    );
}

/// An artifact whose config is not JSON (YAML here): `config` prints its bytes, and `pull`
/// gets its layer; parsing it as an image config used to fail the command.
#[test]
fn an_artifact_with_a_yaml_config_is_read() {
    let registry = Registry::start();
    let yaml = b"name: demo\nversion: 1\n";
    ocisdk_testkit::raw::push_artifact_with_config(
        &registry.url(),
        "art/repo",
        "yaml",
        "application/vnd.example.config.v1+yaml",
        yaml,
        b"the artifact",
    );
    let reference = format!("{}/art/repo:yaml", registry.host());
    let run = ocisdk(&["config", &reference]).success();
    assert_eq!(run.stdout, [&yaml[..], b"\n"].concat());
    let dir = out_dir();
    let out = dir.path().join("artifact.bin");
    ocisdk(&["pull", &reference, "-o", path_arg(&out)]).success();
    assert_eq!(std::fs::read(&out).unwrap(), b"the artifact");
}
