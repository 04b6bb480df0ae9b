//! Network-reliability tests of the `ocisdk` binary (issue #5): a pull either finishes
//! verified or fails clearly, never hangs and never leaves a corrupt file.
//!
//! Every scenario runs the real binary against a fault-injecting proxy: a `ScriptedServer`
//! that forwards to a real CNCF distribution registry (testkit) and then alters the
//! answer. The proxy logs what it did with every request (arrival time, `Range` asked
//! for, status and body bytes sent), so each scenario asserts the outcome (exit code,
//! message, what is on disk) *and* the mechanism (the retry waited, the resume asked for
//! `Range: bytes=N-` with the right N, the cap stopped the loop…).
//!
//! * [`scenarios::SCENARIOS`] is the table of proxy faults; each row is one `#[test]` (see
//!   `scenario_tests!`) and one row of the table in `docs/reliability.md`.
//! * The tests in the other modules cover what a proxy alone cannot: SIGKILL and Ctrl-C in
//!   the middle of a body (`resume`), a full disk (`disk_full`), a read-only destination
//!   and a cache on another file system (`folders`), and what a registry may not make the
//!   binary print (`hostile`).
//!
//! This file keeps what several of them use: running the binary, the shared fixtures and
//! the fault-injecting proxy.
//!
//! Run with `-- --nocapture` to see one result line per test, as copied into the docs.

use std::os::unix::fs::MetadataExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ocisdk_testkit::cli::{is_root, unprivileged, NOBODY};
use ocisdk_testkit::{
    assert_same_bytes, digest_of, forward, fs_layer_holding, list_dir, media_types,
    pseudo_random_bytes, skopeo, tar_gz_of, writable_by_others, Format, ImageBuilder, OciLayout,
    RecordedRequest, Registry, ScriptedResponse, ScriptedServer,
};
use serde_json::Value;

mod disk_full;
mod folders;
mod hostile;
mod resume;
mod scenarios;

// ---------------------------------------------------------------------------------------
// Running the binary
// ---------------------------------------------------------------------------------------

/// What one run of the binary produced.
#[derive(Debug)]
struct Run {
    /// `None` when killed by a signal.
    code: Option<i32>,
    stdout: String,
    stderr: String,
    elapsed: Duration,
}

/// `ocisdk ARGS…` with none of the developer's settings (callers set `OCISDK_CACHE_DIR`).
fn cli(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ocisdk"));
    ocisdk_testkit::cli::scrub(&mut cmd)
        .args(args)
        .stdin(Stdio::null());
    cmd
}

fn run(mut cmd: Command) -> Run {
    let started = Instant::now();
    let out =
        ocisdk_testkit::cli::output_of_copied_binary(&mut cmd).expect("run the ocisdk binary");
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        elapsed: started.elapsed(),
    }
}

fn arg(p: &Path) -> &str {
    p.to_str().expect("UTF-8 temp path")
}

fn file_size(path: &Path) -> Option<u64> {
    std::fs::metadata(path).ok().map(|m| m.len())
}

/// Where the binary keeps the resumable partial of `digest` inside cache folder `cache`
/// (`content/staging.rs`: `partial-v1/<algorithm>-<hex>.part`).
fn partial_path(cache: &Path, digest: &str) -> PathBuf {
    let (algorithm, hex) = digest.split_once(':').expect("algorithm:hex");
    cache
        .join("partial-v1")
        .join(format!("{algorithm}-{hex}.part"))
}

/// An RFC 9110 IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), for `Retry-After`.
fn http_date(t: SystemTime) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = t.duration_since(UNIX_EPOCH).expect("after 1970").as_secs();
    let days = (secs / 86_400) as i64;
    let (h, m, s) = (secs % 86_400 / 3600, secs % 3600 / 60, secs % 60);
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{}, {day:02} {} {year} {h:02}:{m:02}:{s:02} GMT",
        DAYS[days.rem_euclid(7) as usize],
        MONTHS[month as usize - 1]
    )
}

#[test]
fn http_date_formats_the_rfc_example() {
    let t = UNIX_EPOCH + Duration::from_secs(784_111_777);
    assert_eq!(http_date(t), "Sun, 06 Nov 1994 08:49:37 GMT");
    let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
    assert_eq!(http_date(leap), "Tue, 29 Feb 2000 00:00:00 GMT");
}

/// The `error: …` line of stderr (progress lines come before it), or "".
fn error_line(stderr: &str) -> &str {
    stderr
        .lines()
        .find(|l| l.starts_with("error:"))
        .unwrap_or("")
}

/// Prints one result line (visible with `--nocapture`), the source of the docs' table.
fn report(name: &str, result: &str) {
    println!("RESULT | {name} | {result}");
}

// ---------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------

/// The repository and tag of the one-layer image whose layer is [`Fixtures::blob`].
const REPO: &str = "faults/sdk";
const TAG: &str = "1.0";
/// The file name the blob is written to.
const DEST_NAME: &str = "sdk.bin";
/// Size of the blob most scenarios pull.
const BLOB_SIZE: usize = 4 << 20;

/// A registry holding a one-layer image `faults/sdk:1.0`, pushed with `ocisdk push`.
struct Fixtures {
    registry: Registry,
    /// The layer (an opaque 4 MiB file).
    blob: Vec<u8>,
    /// Its digest, `sha256:…`.
    digest: String,
}

impl Fixtures {
    fn build() -> Fixtures {
        let registry = Registry::start();
        let blob = pseudo_random_bytes(BLOB_SIZE, 5);
        let digest = push(&registry, &blob, REPO, TAG);
        Fixtures {
            registry,
            blob,
            digest,
        }
    }
}

/// Pushes `bytes` as the one layer of `repo:tag` with `ocisdk push`; returns the layer
/// digest, checked against the bytes.
fn push(registry: &Registry, bytes: &[u8], repo: &str, tag: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("layer.bin");
    std::fs::write(&file, bytes).unwrap();
    let target = format!("{}/{repo}:{tag}", registry.host());
    let r = run(cli(&["push", arg(&file), &target, "--json"]));
    assert_eq!(r.code, Some(0), "push failed: {}", r.stderr);
    let out: Value = serde_json::from_str(&r.stdout).expect("push --json");
    let digest = out["push"]["layer_digest"]
        .as_str()
        .expect("layer_digest")
        .to_string();
    assert_eq!(digest, digest_of(bytes), "pushed layer digest");
    digest
}

/// The shared registry (see `cli_core.rs`: kept through a `Weak` so the process stops with
/// the last test using it). Tests only read from it.
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

// ---------------------------------------------------------------------------------------
// The fault-injecting proxy
// ---------------------------------------------------------------------------------------

/// Which GET requests a scenario's script applies to (others are forwarded untouched).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Blob,
    Manifest,
    Tags,
}

impl Target {
    fn matches(self, req: &RecordedRequest) -> bool {
        req.method == "GET"
            && match self {
                Target::Blob => req.path().contains("/blobs/"),
                Target::Manifest => req.path().contains("/manifests/"),
                Target::Tags => req.path().ends_with("/tags/list"),
            }
    }
}

/// What the proxy does with one targeted request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Act {
    /// Forward and pass the answer on unchanged.
    Forward,
    /// Forward, announce the full length, close after half of this answer's body.
    CutHalf,
    /// Answer this status with an empty body.
    Status(u16),
    /// Answer this status with `Retry-After: <value>`.
    RetryAfter(u16, &'static str),
    /// Answer 429 with `Retry-After: <HTTP date this many seconds from now>`.
    RetryAfterDateIn(u64),
    /// Forward, send half the body, then nothing for 120 s.
    StallHalf,
    /// Send nothing at all (not even headers) for 120 s.
    NoHeaders,
    /// Close the connection without answering.
    Reset,
    /// Forward with the middle byte of the body flipped.
    FlipByte,
    /// Forward without the `Range` header: a full `200`.
    IgnoreRange,
    /// A `200` manifest of this many bytes.
    Oversized(usize),
    /// One tag and a `Link` to the same next page, forever.
    LinkLoop,
    /// An HTML page instead of JSON.
    NotJson,
    /// `307` to the same path on this proxy (a new query each time).
    RedirectToSelf,
    /// `404` with a 10 MiB distribution error body.
    HugeErrorBody,
    /// Forward the manifest with `layers[0].size` changed by this much (and its
    /// `Docker-Content-Digest` removed, so the edit is not caught as tampering).
    LayerSizeOff(i64),
    /// Forward the manifest with `config.size` set to this (digest header removed).
    ConfigSize(u64),
    /// `401` with a Bearer challenge whose realm is this proxy's `/token`.
    BearerChallenge,
    /// (Every request to `/token`.) A 2 MiB token response.
    HugeToken,
}

/// What the proxy did with one request.
#[derive(Debug, Clone)]
struct Served {
    /// When the handler got the request.
    at: Instant,
    target: String,
    /// Whether the scenario's script applied.
    targeted: bool,
    act: Act,
    range: Option<String>,
    status: u16,
    /// Body bytes sent (before any stall; after any truncation).
    body: usize,
}

/// A `ScriptedServer` forwarding to `upstream`; the k-th request matching `target` gets
/// `script[k]`, or `then` once the script is used up.
struct Proxy {
    server: ScriptedServer,
    log: Arc<Mutex<Vec<Served>>>,
}

impl Proxy {
    fn start(upstream: String, target: Target, script: Vec<Act>, then: Act) -> Proxy {
        let log: Arc<Mutex<Vec<Served>>> = Arc::default();
        let handler_log = Arc::clone(&log);
        let targeted_count = AtomicUsize::new(0);
        let server = ScriptedServer::start(move |req| {
            let at = Instant::now();
            let targeted = target.matches(req);
            let act = if req.path() == "/token" {
                Act::HugeToken
            } else if targeted {
                let k = targeted_count.fetch_add(1, Ordering::SeqCst);
                script.get(k).copied().unwrap_or(then)
            } else {
                Act::Forward
            };
            let (resp, body) = apply(act, req, &upstream);
            handler_log.lock().unwrap().push(Served {
                at,
                target: req.target.clone(),
                targeted,
                act,
                range: req.header("Range").map(str::to_string),
                status: resp.status,
                body,
            });
            resp
        });
        Proxy { server, log }
    }

    /// A proxy running `handler` for every request; it returns the answer and the body
    /// bytes it will send.
    fn with_handler(
        upstream: String,
        handler: impl Fn(&RecordedRequest, &str) -> (ScriptedResponse, usize) + Send + Sync + 'static,
    ) -> Proxy {
        let log: Arc<Mutex<Vec<Served>>> = Arc::default();
        let handler_log = Arc::clone(&log);
        let server = ScriptedServer::start(move |req| {
            let at = Instant::now();
            let (resp, body) = handler(req, &upstream);
            handler_log.lock().unwrap().push(Served {
                at,
                target: req.target.clone(),
                targeted: Target::Blob.matches(req),
                act: Act::Forward,
                range: req.header("Range").map(str::to_string),
                status: resp.status,
                body,
            });
            resp
        });
        Proxy { server, log }
    }

    fn host(&self) -> String {
        self.server.host()
    }

    fn log(&self) -> Vec<Served> {
        self.log.lock().unwrap().clone()
    }

    fn clear(&self) {
        self.log.lock().unwrap().clear();
    }
}

/// `forward`, except for one answer it cannot pass on: distribution's `416` to a `Range`
/// past the end of a blob announces the blob's length as `Content-Length` but sends a
/// 33-byte text, which `forward` (reading exactly `Content-Length` bytes) reports as a
/// `502`. The proxy answers such a request the way the registry meant it: `416` with
/// `Content-Range: bytes */<size>` and that text.
fn forward_registry(req: &RecordedRequest, upstream: &str) -> ScriptedResponse {
    let answer = forward(req, upstream);
    let Some(start) = req
        .header("Range")
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|n| n.parse::<u64>().ok())
    else {
        return answer;
    };
    if answer.status != 502 {
        return answer;
    }
    let mut head = req.clone();
    head.method = "HEAD".into();
    head.headers
        .retain(|(k, _)| !k.eq_ignore_ascii_case("range"));
    let head = forward(&head, upstream);
    let size = head
        .get_header("Content-Length")
        .and_then(|n| n.parse::<u64>().ok());
    match size {
        Some(size) if head.status == 200 && start >= size => ScriptedResponse::new(416)
            .header("Content-Range", &format!("bytes */{size}"))
            .body("invalid range: failed to overlap\n"),
        _ => answer,
    }
}

/// Carries out `act` for `req`: the answer, and how many body bytes it delivers.
fn apply(act: Act, req: &RecordedRequest, upstream: &str) -> (ScriptedResponse, usize) {
    let stall = Duration::from_secs(120);
    match act {
        Act::Forward => {
            let r = forward_registry(req, upstream);
            let n = r.body.len();
            (r, n)
        }
        Act::CutHalf => {
            let r = forward_registry(req, upstream);
            let n = r.body.len() / 2;
            (r.truncate_body_after(n), n)
        }
        Act::Status(status) => (ScriptedResponse::new(status), 0),
        Act::RetryAfter(status, value) => (
            ScriptedResponse::new(status).header("Retry-After", value),
            0,
        ),
        Act::RetryAfterDateIn(secs) => {
            let when = http_date(SystemTime::now() + Duration::from_secs(secs));
            (ScriptedResponse::new(429).header("Retry-After", &when), 0)
        }
        Act::StallHalf => {
            let r = forward_registry(req, upstream);
            let n = r.body.len() / 2;
            (r.stall_after(n, stall), n)
        }
        Act::NoHeaders => (forward_registry(req, upstream).delay(stall), 0),
        Act::Reset => (ScriptedResponse::drop_connection(), 0),
        Act::FlipByte => {
            let mut r = forward_registry(req, upstream);
            let middle = r.body.len() / 2;
            r.body[middle] ^= 0xff;
            let n = r.body.len();
            (r, n)
        }
        Act::IgnoreRange => {
            let mut without = req.clone();
            without
                .headers
                .retain(|(k, _)| !k.eq_ignore_ascii_case("range"));
            let r = forward_registry(&without, upstream);
            let n = r.body.len();
            (r, n)
        }
        Act::Oversized(n) => (
            ScriptedResponse::ok(vec![b' '; n])
                .header("Content-Type", "application/vnd.oci.image.manifest.v1+json"),
            n,
        ),
        Act::LinkLoop => {
            let page =
                ScriptedResponse::json(200, &serde_json::json!({"name": REPO, "tags": ["x"]}))
                    .header(
                        "Link",
                        &format!(r#"</v2/{REPO}/tags/list?last=x&n=1>; rel="next""#),
                    );
            let n = page.body.len();
            (page, n)
        }
        Act::NotJson => {
            let page = ScriptedResponse::ok("<html><body>Service maintenance</body></html>")
                .header("Content-Type", "application/json");
            let n = page.body.len();
            (page, n)
        }
        Act::RedirectToSelf => {
            let host = req.header("Host").unwrap_or_default();
            let hop = req.index;
            let r = ScriptedResponse::new(307).header(
                "Location",
                &format!("http://{host}{}?hop={hop}", req.path()),
            );
            (r, 0)
        }
        Act::HugeErrorBody => {
            let mut body = br#"{"errors":[{"code":"BLOB_UNKNOWN","message":""#.to_vec();
            body.resize(body.len() + (10 << 20), b'x');
            body.extend_from_slice(br#""}]}"#);
            let n = body.len();
            (
                ScriptedResponse::new(404)
                    .header("Content-Type", "application/json")
                    .body(body),
                n,
            )
        }
        Act::ConfigSize(size) => {
            let r = forward_registry(req, upstream);
            let mut manifest: Value = serde_json::from_slice(&r.body).expect("manifest JSON");
            manifest["config"]["size"] = Value::from(size);
            let body = serde_json::to_vec(&manifest).unwrap();
            let n = body.len();
            (r.remove_header("Docker-Content-Digest").body(body), n)
        }
        Act::BearerChallenge => {
            let host = req.header("Host").unwrap_or_default();
            let challenge = format!(
                r#"Bearer realm="http://{host}/token",service="faults",scope="repository:{REPO}:pull""#
            );
            (
                ScriptedResponse::json(401, &serde_json::json!({"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]}))
                    .header("WWW-Authenticate", &challenge),
                0,
            )
        }
        Act::HugeToken => {
            let token = "t".repeat(2 << 20);
            let r = ScriptedResponse::json(200, &serde_json::json!({"token": token}));
            let n = r.body.len();
            (r, n)
        }
        Act::LayerSizeOff(delta) => {
            let r = forward_registry(req, upstream);
            let mut manifest: Value = serde_json::from_slice(&r.body).expect("manifest JSON");
            let size = manifest["layers"][0]["size"].as_i64().expect("layer size");
            manifest["layers"][0]["size"] = Value::from(size + delta);
            let body = serde_json::to_vec(&manifest).unwrap();
            let n = body.len();
            (r.remove_header("Docker-Content-Digest").body(body), n)
        }
    }
}

/// A proxy whose first blob GET stalls for 300 s after `stall_at` body bytes; every other
/// request is forwarded.
fn stalling_proxy(upstream: String, stall_at: usize) -> Proxy {
    let blob_gets = AtomicUsize::new(0);
    Proxy::with_handler(upstream, move |req, upstream| {
        let r = forward_registry(req, upstream);
        let n = r.body.len();
        if Target::Blob.matches(req) && blob_gets.fetch_add(1, Ordering::SeqCst) == 0 {
            (r.stall_after(stall_at, Duration::from_secs(300)), stall_at)
        } else {
            (r, n)
        }
    })
}
