//! Hermetic wrappers around `skopeo` (Debian package `skopeo`, tested with 1.9.3).
//!
//! Every invocation gets its own temp dir with an accept-anything `--policy`, an empty
//! `--authfile` (`{}`), an empty `registries.conf` (`CONTAINERS_REGISTRIES_CONF`), an empty
//! `--registries.d`, `--tmpdir`, and a private `HOME`/`XDG_RUNTIME_DIR`, so nothing from the
//! machine's or user's container configuration leaks in. TLS verification is always off:
//! the test registries are plain HTTP on loopback.
//!
//! References: a `reference` argument without a transport (`127.0.0.1:5000/repo:tag`) is
//! taken as `docker://…`; one with a transport (`docker://…`, `oci:…`) is used as is.
//!
//! The `push_*`/`inspect*`/`copy_*` helpers panic (at the caller's location) with
//! skopeo's stderr on failure; [`run`] returns it as an error instead.

use std::fs;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

/// Manifest format of a push.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Keep OCI (`--format oci`); the manifest bytes are preserved.
    Oci,
    /// Convert to Docker schema 2 (`--format v2s2`): a new manifest whose layer and config
    /// descriptors get Docker media types; the blobs themselves (and so their digests) are
    /// unchanged. Layers must be gzip (or uncompressed) for the conversion to be allowed.
    V2s2,
}

impl Format {
    fn flag(self) -> &'static str {
        match self {
            Format::Oci => "oci",
            Format::V2s2 => "v2s2",
        }
    }
}

/// Runs `skopeo` with the hermetic global flags and environment described in the module
/// docs, followed by `args` (starting with the subcommand, e.g. `["copy", "--dest-creds",
/// "u:p", …]`). Any argument equal to [`AUTHFILE`] is replaced by the path of the empty
/// auth file (`REGISTRY_AUTH_FILE` points at it too). Returns skopeo's stdout, or an error
/// with the command line and skopeo's stderr.
pub fn run(args: &[&str]) -> Result<Vec<u8>, String> {
    let dir = tempfile::Builder::new()
        .prefix("ocisdk-skopeo-")
        .tempdir()
        .map_err(|e| format!("skopeo temp dir: {e}"))?;
    let d = dir.path();
    let write = |name: &str, text: &str| {
        fs::write(d.join(name), text).map_err(|e| format!("writing skopeo {name}: {e}"))
    };
    write(
        "policy.json",
        r#"{"default":[{"type":"insecureAcceptAnything"}]}"#,
    )?;
    write("auth.json", "{}")?;
    write("registries.conf", "")?;
    for sub in ["registries.d", "tmp", "home", "run"] {
        fs::create_dir_all(d.join(sub)).map_err(|e| format!("skopeo temp dir: {e}"))?;
    }
    let auth = d.join("auth.json").display().to_string();
    let args: Vec<&str> = args
        .iter()
        .map(|a| if *a == AUTHFILE { auth.as_str() } else { *a })
        .collect();

    let mut cmd = Command::new("skopeo");
    cmd.arg("--policy")
        .arg(d.join("policy.json"))
        .arg("--registries.d")
        .arg(d.join("registries.d"))
        .arg("--tmpdir")
        .arg(d.join("tmp"))
        .args(&args)
        .env("CONTAINERS_REGISTRIES_CONF", d.join("registries.conf"))
        .env("REGISTRY_AUTH_FILE", &auth)
        .env("HOME", d.join("home"))
        .env("XDG_RUNTIME_DIR", d.join("run"))
        .env_remove("DOCKER_CONFIG");
    let out = cmd.output().map_err(|e| {
        format!("cannot run `skopeo` ({e}); install it with `apt-get install -y skopeo`")
    })?;
    if out.status.success() {
        Ok(out.stdout)
    } else {
        Err(format!(
            "`skopeo {}` failed ({}):\n{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim_end()
        ))
    }
}

/// Placeholder argument for [`run`], replaced by the hermetic (empty) auth file path.
pub const AUTHFILE: &str = "\u{0}AUTHFILE";

#[track_caller]
fn run_or_panic(args: &[&str]) -> Vec<u8> {
    run(args).unwrap_or_else(|e| panic!("{e}"))
}

fn docker_ref(reference: &str) -> String {
    if reference.contains("://") || reference.starts_with("oci:") || reference.starts_with("dir:") {
        reference.to_string()
    } else {
        format!("docker://{reference}")
    }
}

/// Pushes the image tagged `tag` in the OCI layout at `layout_dir` to
/// `docker://<host>/<repo_and_tag>` (`host` as in [`crate::Registry::host`]) in `format`.
/// Returns the digest of the pushed manifest (from skopeo's `--digestfile`).
#[track_caller]
pub fn push_layout(
    layout_dir: &Path,
    tag: &str,
    host: &str,
    repo_and_tag: &str,
    format: Format,
) -> String {
    copy_with_digest(
        layout_dir,
        tag,
        host,
        repo_and_tag,
        &["--format", format.flag()],
    )
}

/// Pushes the image index tagged `tag` in the layout with all its images
/// (`--multi-arch all`, keeping the index and manifest bytes, `--preserve-digests`).
/// Returns the index digest.
#[track_caller]
pub fn push_index(layout_dir: &Path, tag: &str, host: &str, repo_and_tag: &str) -> String {
    copy_with_digest(
        layout_dir,
        tag,
        host,
        repo_and_tag,
        &["--multi-arch", "all", "--preserve-digests"],
    )
}

#[track_caller]
fn copy_with_digest(
    layout_dir: &Path,
    tag: &str,
    host: &str,
    repo_and_tag: &str,
    extra: &[&str],
) -> String {
    let digest_dir = tempfile::tempdir().expect("temp dir");
    let digest_file = digest_dir.path().join("digest");
    let digest_arg = digest_file.display().to_string();
    let src = format!("oci:{}:{tag}", layout_dir.display());
    let dest = format!("docker://{host}/{repo_and_tag}");
    let mut args = vec![
        "copy",
        "--quiet",
        "--dest-tls-verify=false",
        "--dest-authfile",
        AUTHFILE,
        "--digestfile",
        &digest_arg,
    ];
    args.extend_from_slice(extra);
    args.push(&src);
    args.push(&dest);
    run_or_panic(&args);
    fs::read_to_string(&digest_file)
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|e| panic!("skopeo wrote no digest file: {e}"))
}

/// The exact manifest (or index) bytes stored for `reference`
/// (`skopeo inspect --raw`).
#[track_caller]
pub fn inspect_raw(reference: &str) -> Vec<u8> {
    let r = docker_ref(reference);
    run_or_panic(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        "--authfile",
        AUTHFILE,
        &r,
    ])
}

/// The raw manifest of `reference` parsed as JSON.
#[track_caller]
pub fn inspect_raw_json(reference: &str) -> Value {
    let raw = inspect_raw(reference);
    serde_json::from_slice(&raw).unwrap_or_else(|e| panic!("manifest is not JSON: {e}"))
}

/// `skopeo inspect` output (`Name`, `Digest`, `Labels`, `Architecture`, `Os`, `Layers`,
/// …); for an index, the image for skopeo's host platform is inspected.
#[track_caller]
pub fn inspect(reference: &str) -> Value {
    let r = docker_ref(reference);
    let out = run_or_panic(&["inspect", "--tls-verify=false", "--authfile", AUTHFILE, &r]);
    serde_json::from_slice(&out).unwrap_or_else(|e| panic!("skopeo inspect output: {e}"))
}

/// The image config of `reference` (`skopeo inspect --config --raw`).
#[track_caller]
pub fn inspect_config(reference: &str) -> Value {
    let r = docker_ref(reference);
    let out = run_or_panic(&[
        "inspect",
        "--config",
        "--raw",
        "--tls-verify=false",
        "--authfile",
        AUTHFILE,
        &r,
    ]);
    serde_json::from_slice(&out).unwrap_or_else(|e| panic!("config is not JSON: {e}"))
}

/// Copies `reference` (all platforms, `--multi-arch all`) into the OCI layout at `dir`
/// under `tag` (the layout is created if missing). Returns the digest written.
#[track_caller]
pub fn copy_to_layout(reference: &str, dir: &Path, tag: &str) -> String {
    let digest_dir = tempfile::tempdir().expect("temp dir");
    let digest_file = digest_dir.path().join("digest");
    let digest_arg = digest_file.display().to_string();
    let src = docker_ref(reference);
    let dest = format!("oci:{}:{tag}", dir.display());
    run_or_panic(&[
        "copy",
        "--quiet",
        "--src-tls-verify=false",
        "--src-authfile",
        AUTHFILE,
        "--multi-arch",
        "all",
        "--digestfile",
        &digest_arg,
        &src,
        &dest,
    ]);
    fs::read_to_string(&digest_file)
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|e| panic!("skopeo wrote no digest file: {e}"))
}

/// Tags in the repository `<host>/<repo>` (`skopeo list-tags`).
#[track_caller]
pub fn list_tags(host: &str, repo: &str) -> Vec<String> {
    let r = format!("docker://{host}/{repo}");
    let out = run_or_panic(&[
        "list-tags",
        "--tls-verify=false",
        "--authfile",
        AUTHFILE,
        &r,
    ]);
    let v: Value = serde_json::from_slice(&out).expect("list-tags output is JSON");
    v["Tags"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|t| t.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}
