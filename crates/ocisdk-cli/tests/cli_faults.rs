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
//! * [`SCENARIOS`] is the table of proxy faults; each row is one `#[test]` (see
//!   [`scenario_tests!`]) and one row of the table in `docs/reliability.md`.
//! * The tests after the table cover what a proxy alone cannot: SIGKILL and Ctrl-C in the
//!   middle of a body, a read-only destination, a full disk, a cache on another file
//!   system.
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

/// A temporary folder where `nobody` can run the binary: world-traversable, holding a copy
/// of the binary and two empty folders, `out` and `cache`, whose rights the test then sets.
/// Returns the folder, the binary, `out` and `cache`.
fn sandbox_for_nobody() -> (
    tempfile::TempDir,
    std::path::PathBuf,
    std::path::PathBuf,
    std::path::PathBuf,
) {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let bin = tmp.path().join("ocisdk");
    ocisdk_testkit::cli::binary_for_nobody(Path::new(env!("CARGO_BIN_EXE_ocisdk")), &bin);
    let (out, cache) = (tmp.path().join("out"), tmp.path().join("cache"));
    std::fs::create_dir(&out).unwrap();
    std::fs::create_dir(&cache).unwrap();
    (tmp, bin, out, cache)
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

/// Waits until `cond` holds, polling every 20 ms; panics after `timeout`.
#[track_caller]
fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits for a child to exit, killing it (and failing) after `timeout`.
#[track_caller]
fn wait_child(child: &mut Child, timeout: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("ocisdk did not exit within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
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

// ---------------------------------------------------------------------------------------
// The scenario table
// ---------------------------------------------------------------------------------------

/// The command a scenario runs (through the proxy).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmd {
    /// `ocisdk blob PROXY/faults/sdk@DIGEST -o DIR/sdk.bin` (no size known up front).
    Blob,
    /// `ocisdk pull PROXY/faults/sdk:1.0 -o DIR/sdk.bin` (size from the layer descriptor).
    Pull,
    /// `ocisdk manifest PROXY/faults/sdk:1.0`.
    Manifest,
    /// `ocisdk config PROXY/faults/sdk:1.0`.
    Config,
    /// `ocisdk tags PROXY/faults/sdk`.
    Tags,
}

/// What must become of the blob's partial file in the cache folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PartialFile {
    /// Not there (moved into place, discarded, or never made).
    Gone,
    /// Kept for the next run, holding exactly the bytes the proxy delivered.
    KeptWithWhatArrived,
}

/// One row: a fault, the command, and everything the run must show.
struct Scenario {
    name: &'static str,
    cmd: Cmd,
    /// Global flags added to the command.
    flags: &'static [&'static str],
    target: Target,
    script: &'static [Act],
    then: Act,
    /// Expected exit code.
    code: i32,
    /// Substrings stderr must contain.
    stderr_has: &'static [&'static str],
    partial: PartialFile,
    /// The run must end within this many seconds.
    within_secs: u64,
    /// Checks on the mechanism (the proxy's log).
    check: fn(&Fixtures, &Outcome) -> Result<(), String>,
}

/// Everything a scenario run left behind.
struct Outcome {
    run: Run,
    proxy_url: String,
    log: Vec<Served>,
}

impl Outcome {
    /// The requests the script applied to, in order.
    fn targeted(&self) -> Vec<&Served> {
        self.log.iter().filter(|s| s.targeted).collect()
    }

    /// Blob GETs, in order.
    fn blob_gets(&self) -> Vec<&Served> {
        self.log
            .iter()
            .filter(|s| s.target.contains("/blobs/"))
            .collect()
    }
}

fn ensure(cond: bool, msg: impl FnOnce() -> String) -> Result<(), String> {
    if cond {
        Ok(())
    } else {
        Err(msg())
    }
}

/// Exactly `n` targeted requests.
fn count(o: &Outcome, n: usize) -> Result<(), String> {
    let got = o.targeted().len();
    ensure(got == n, || {
        format!("expected {n} targeted requests, the proxy saw {got}")
    })
}

/// The time between targeted requests `i` and `j`, as recorded by the handler.
fn gap(o: &Outcome, i: usize, j: usize) -> Duration {
    let t = o.targeted();
    t[j].at.duration_since(t[i].at)
}

/// Each blob GET after the first asks for `Range: bytes=N-` where N is what the earlier
/// answers delivered, and all answers together delivered the blob exactly once.
fn resumed_from_what_arrived(f: &Fixtures, o: &Outcome, complete: bool) -> Result<(), String> {
    let gets = o.blob_gets();
    let mut delivered = 0usize;
    for (i, get) in gets.iter().enumerate() {
        let want = (i > 0).then(|| format!("bytes={delivered}-"));
        ensure(get.range == want, || {
            format!("blob GET #{i}: Range {:?}, expected {want:?}", get.range)
        })?;
        let want_status = if i == 0 { 200 } else { 206 };
        ensure(get.status == want_status, || {
            format!(
                "blob GET #{i}: status {}, expected {want_status}",
                get.status
            )
        })?;
        delivered += get.body;
    }
    if complete {
        ensure(delivered == f.blob.len(), || {
            format!(
                "delivered {delivered} bytes in all, the blob has {}",
                f.blob.len()
            )
        })?;
    }
    Ok(())
}

fn no_range(o: &Outcome) -> Result<(), String> {
    ensure(o.targeted().iter().all(|s| s.range.is_none()), || {
        "a retry of a request that got no body must not ask for a Range".into()
    })
}

fn statuses(o: &Outcome) -> Vec<u16> {
    o.targeted().iter().map(|s| s.status).collect()
}

const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "body_dropped_once",
        cmd: Cmd::Blob,
        flags: &[],
        target: Target::Blob,
        script: &[Act::CutHalf],
        then: Act::Forward,
        code: 0,
        stderr_has: &["verified"],
        partial: PartialFile::Gone,
        within_secs: 20,
        check: |f, o| {
            count(o, 2)?;
            resumed_from_what_arrived(f, o, true)
        },
    },
    Scenario {
        name: "body_dropped_three_times",
        cmd: Cmd::Blob,
        flags: &[],
        target: Target::Blob,
        script: &[Act::CutHalf, Act::CutHalf, Act::CutHalf],
        then: Act::Forward,
        code: 0,
        stderr_has: &["verified"],
        partial: PartialFile::Gone,
        within_secs: 20,
        check: |f, o| {
            count(o, 4)?;
            resumed_from_what_arrived(f, o, true)
        },
    },
    Scenario {
        name: "rate_limited_retry_after_seconds",
        cmd: Cmd::Blob,
        flags: &[],
        target: Target::Blob,
        script: &[Act::RetryAfter(429, "1")],
        then: Act::Forward,
        code: 0,
        stderr_has: &["verified"],
        partial: PartialFile::Gone,
        within_secs: 20,
        check: |_, o| {
            count(o, 2)?;
            no_range(o)?;
            let waited = gap(o, 0, 1);
            ensure(waited >= Duration::from_secs(1), || {
                format!("retried after {waited:?}, before the 1 s Retry-After")
            })
        },
    },
    Scenario {
        name: "retry_after_http_date",
        cmd: Cmd::Blob,
        flags: &[],
        target: Target::Blob,
        // The date is whole seconds: 2 s from now is 1–2 s from the handler's clock.
        script: &[Act::RetryAfterDateIn(2)],
        then: Act::Forward,
        code: 0,
        stderr_has: &["verified"],
        partial: PartialFile::Gone,
        within_secs: 20,
        check: |_, o| {
            count(o, 2)?;
            let waited = gap(o, 0, 1);
            ensure(
                waited >= Duration::from_secs(1) && waited < Duration::from_secs(5),
                || format!("waited {waited:?} for an HTTP-date 1–2 s ahead"),
            )
        },
    },
    Scenario {
        name: "retry_after_capped",
        cmd: Cmd::Blob,
        flags: &["--retry-max-wait", "1"],
        target: Target::Blob,
        script: &[Act::RetryAfter(503, "3600")],
        then: Act::Forward,
        code: 0,
        stderr_has: &["verified"],
        partial: PartialFile::Gone,
        within_secs: 20,
        check: |_, o| {
            count(o, 2)?;
            let waited = gap(o, 0, 1);
            ensure(
                waited >= Duration::from_secs(1) && waited < Duration::from_secs(5),
                || format!("waited {waited:?}; the registry asked 3600 s, the cap is 1 s"),
            )
        },
    },
    Scenario {
        name: "unavailable_twice_then_ok",
        cmd: Cmd::Blob,
        flags: &[],
        target: Target::Blob,
        script: &[Act::Status(503), Act::Status(503)],
        then: Act::Forward,
        code: 0,
        stderr_has: &["verified"],
        partial: PartialFile::Gone,
        within_secs: 20,
        check: |_, o| {
            count(o, 3)?;
            no_range(o)?;
            ensure(statuses(o) == [503, 503, 200], || {
                format!("statuses {:?}", statuses(o))
            })
        },
    },
    Scenario {
        name: "connection_reset_twice_then_ok",
        cmd: Cmd::Blob,
        flags: &[],
        target: Target::Blob,
        script: &[Act::Reset, Act::Reset],
        then: Act::Forward,
        code: 0,
        stderr_has: &["verified"],
        partial: PartialFile::Gone,
        within_secs: 20,
        check: |_, o| {
            count(o, 3)?;
            no_range(o)
        },
    },
    Scenario {
        name: "unavailable_until_retries_run_out",
        cmd: Cmd::Blob,
        flags: &["--retries", "2"],
        target: Target::Blob,
        script: &[],
        then: Act::Status(503),
        code: 6,
        stderr_has: &["HTTP 503", "hint: check that"],
        partial: PartialFile::Gone,
        within_secs: 20,
        check: |_, o| count(o, 3),
    },
    Scenario {
        name: "stall_beyond_stall_timeout",
        cmd: Cmd::Blob,
        flags: &["--stall-timeout", "1", "--retries", "1"],
        target: Target::Blob,
        script: &[],
        then: Act::StallHalf,
        code: 6,
        stderr_has: &[],
        partial: PartialFile::KeptWithWhatArrived,
        // Each stall lasts 120 s; two attempts of 1 s each must end far sooner.
        within_secs: 15,
        check: |f, o| {
            count(o, 2)?;
            resumed_from_what_arrived(f, o, false)?;
            let e = &o.run.stderr;
            ensure(
                e.contains("stall timeout") || e.contains("timed out"),
                || format!("stderr does not name the stall: {e}"),
            )
        },
    },
    Scenario {
        name: "headers_never_arrive",
        cmd: Cmd::Blob,
        flags: &["--stall-timeout", "1", "--retries", "1"],
        target: Target::Blob,
        script: &[],
        then: Act::NoHeaders,
        code: 6,
        stderr_has: &["timed out"],
        partial: PartialFile::Gone,
        within_secs: 15,
        check: |_, o| {
            count(o, 2)?;
            no_range(o)
        },
    },
    Scenario {
        name: "flipped_byte",
        cmd: Cmd::Blob,
        flags: &[],
        target: Target::Blob,
        script: &[],
        then: Act::FlipByte,
        code: 5,
        stderr_has: &["verification failed", "nothing was written"],
        partial: PartialFile::Gone,
        within_secs: 20,
        check: |f, o| {
            count(o, 1)?;
            ensure(o.run.stderr.contains(&f.digest), || {
                "stderr names the expected digest".into()
            })?;
            ensure(!o.run.stderr.contains("downloaded "), || {
                "a blob that failed verification is not reported downloaded".into()
            })
        },
    },
    Scenario {
        name: "range_ignored_restarts",
        cmd: Cmd::Blob,
        flags: &[],
        target: Target::Blob,
        script: &[Act::CutHalf],
        then: Act::IgnoreRange,
        code: 0,
        stderr_has: &["verified"],
        partial: PartialFile::Gone,
        within_secs: 20,
        check: |f, o| {
            count(o, 2)?;
            let t = o.targeted();
            let want = format!("bytes={}-", f.blob.len() / 2);
            ensure(t[1].range.as_deref() == Some(want.as_str()), || {
                format!("resume asked {:?}, expected {want}", t[1].range)
            })?;
            ensure(t[1].status == 200 && t[1].body == f.blob.len(), || {
                format!("the resume got {} with {} bytes", t[1].status, t[1].body)
            })
        },
    },
    Scenario {
        name: "truncated_on_every_attempt",
        cmd: Cmd::Blob,
        flags: &["--retries", "2"],
        target: Target::Blob,
        script: &[],
        then: Act::CutHalf,
        code: 6,
        stderr_has: &["downloading blob"],
        partial: PartialFile::KeptWithWhatArrived,
        within_secs: 20,
        check: |f, o| {
            count(o, 3)?;
            resumed_from_what_arrived(f, o, false)
        },
    },
    Scenario {
        name: "layer_longer_than_descriptor",
        cmd: Cmd::Pull,
        flags: &[],
        target: Target::Manifest,
        script: &[],
        then: Act::LayerSizeOff(-1),
        code: 5,
        stderr_has: &["verification failed", "expected 4194303 bytes"],
        partial: PartialFile::Gone,
        within_secs: 20,
        check: |_, o| {
            let gets = o.blob_gets();
            ensure(gets.len() == 1, || {
                format!("{} blob GETs, expected 1", gets.len())
            })
        },
    },
    Scenario {
        name: "layer_shorter_than_descriptor",
        cmd: Cmd::Pull,
        flags: &[],
        target: Target::Manifest,
        script: &[],
        then: Act::LayerSizeOff(1000),
        code: 5,
        stderr_has: &["verification failed", "expected 4195304 bytes, got 4194304"],
        partial: PartialFile::Gone,
        within_secs: 20,
        check: |f, o| {
            // The body ended cleanly but short: the client asks for the rest, and the
            // registry has none (416).
            let gets = o.blob_gets();
            ensure(gets.len() == 2, || {
                format!("{} blob GETs, expected 2", gets.len())
            })?;
            let want = format!("bytes={}-", f.blob.len());
            ensure(
                gets[1].range.as_deref() == Some(want.as_str()) && gets[1].status == 416,
                || format!("second GET: Range {:?} → {}", gets[1].range, gets[1].status),
            )
        },
    },
    Scenario {
        name: "manifest_over_4_mib",
        cmd: Cmd::Manifest,
        flags: &[],
        target: Target::Manifest,
        script: &[],
        then: Act::Oversized(5 << 20),
        code: 1,
        stderr_has: &["manifest from", "larger than the 4194304-byte limit"],
        partial: PartialFile::Gone,
        within_secs: 20,
        check: |_, o| count(o, 1),
    },
    Scenario {
        name: "config_over_4_mib",
        cmd: Cmd::Config,
        flags: &[],
        target: Target::Manifest,
        script: &[],
        then: Act::ConfigSize(5 << 20),
        code: 1,
        stderr_has: &["config from", "larger than the 4194304-byte limit"],
        partial: PartialFile::Gone,
        within_secs: 20,
        check: |_, o| {
            // Refused from the descriptor: the config blob is never asked for.
            let gets = o.blob_gets();
            ensure(gets.is_empty(), || format!("{} blob GETs", gets.len()))
        },
    },
    Scenario {
        name: "token_response_over_1_mib",
        cmd: Cmd::Blob,
        flags: &[],
        target: Target::Blob,
        script: &[],
        then: Act::BearerChallenge,
        code: 1,
        stderr_has: &["token response", "larger than the 1048576-byte limit"],
        partial: PartialFile::Gone,
        within_secs: 20,
        check: |_, o| {
            let tokens = o
                .log
                .iter()
                .filter(|s| s.target.starts_with("/token"))
                .count();
            ensure(tokens == 1, || {
                format!("{tokens} token requests, expected 1")
            })
        },
    },
    Scenario {
        name: "tag_list_not_json",
        cmd: Cmd::Tags,
        flags: &[],
        target: Target::Tags,
        script: &[],
        then: Act::NotJson,
        code: 1,
        stderr_has: &["tag list from", "is not valid", "<html><body>Service"],
        partial: PartialFile::Gone,
        within_secs: 20,
        check: |_, o| {
            count(o, 1)?;
            let url = format!("{}/v2/{REPO}/tags/list", o.proxy_url);
            ensure(o.run.stderr.contains(&url), || {
                format!("stderr does not name {url}")
            })
        },
    },
    Scenario {
        name: "error_body_over_64_kib",
        cmd: Cmd::Blob,
        flags: &[],
        target: Target::Blob,
        script: &[],
        then: Act::HugeErrorBody,
        code: 3,
        stderr_has: &["registry answered HTTP 404"],
        partial: PartialFile::Gone,
        within_secs: 20,
        check: |_, o| {
            count(o, 1)?;
            // Only the first 64 KiB are read: the 10 MiB message never reaches the user.
            ensure(o.run.stderr.len() < 4096, || {
                format!("stderr is {} bytes long", o.run.stderr.len())
            })
        },
    },
    Scenario {
        name: "redirect_loop",
        cmd: Cmd::Blob,
        flags: &[],
        target: Target::Blob,
        script: &[],
        then: Act::RedirectToSelf,
        code: 1,
        stderr_has: &["more than 10 redirects"],
        partial: PartialFile::Gone,
        within_secs: 20,
        check: |_, o| {
            let n = o.targeted().len();
            ensure((10..=11).contains(&n), || {
                format!("{n} requests arrived; the cap is 10 redirects (at most 11 requests)")
            })
        },
    },
    Scenario {
        name: "tag_link_loop",
        cmd: Cmd::Tags,
        flags: &[],
        target: Target::Tags,
        script: &[],
        then: Act::LinkLoop,
        code: 1,
        stderr_has: &["points to a page already listed"],
        partial: PartialFile::Gone,
        within_secs: 60,
        check: |_, o| count(o, 2),
    },
];

/// Runs the row called `name`, asserting everything it promises.
fn run_scenario(name: &str) {
    let s = SCENARIOS
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no scenario {name}"));
    let f = fixtures();
    let proxy = Proxy::start(f.registry.url(), s.target, s.script.to_vec(), s.then);
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let cache = tmp.path().join("cache");
    std::fs::create_dir(&out).unwrap();
    let dest = out.join(DEST_NAME);

    let host = proxy.host();
    let blob_ref = format!("{host}/{REPO}@{}", f.digest);
    let tag_ref = format!("{host}/{REPO}:{TAG}");
    let repo_ref = format!("{host}/{REPO}");
    let mut args: Vec<&str> = match s.cmd {
        Cmd::Blob => vec!["blob", &blob_ref, "-o", arg(&dest)],
        Cmd::Pull => vec!["pull", &tag_ref, "-o", arg(&dest)],
        Cmd::Manifest => vec!["manifest", &tag_ref],
        Cmd::Config => vec!["config", &tag_ref],
        Cmd::Tags => vec!["tags", &repo_ref],
    };
    args.extend_from_slice(s.flags);
    let mut cmd = cli(&args);
    cmd.env("OCISDK_CACHE_DIR", &cache);
    let r = run(cmd);
    let outcome = Outcome {
        run: r,
        proxy_url: proxy.server.url(),
        log: proxy.log(),
    };
    let r = &outcome.run;
    let context = || {
        format!(
            "scenario {name}: exit {:?} after {:?}\nstderr: {}\nproxy log: {:#?}",
            r.code,
            r.elapsed,
            r.stderr,
            outcome
                .log
                .iter()
                .map(|s| (&s.target, s.act, &s.range, s.status, s.body))
                .take(12)
                .collect::<Vec<_>>()
        )
    };

    let mut failures = Vec::new();
    if r.code != Some(s.code) {
        failures.push(format!("exit code {:?}, expected {}", r.code, s.code));
    }
    for want in s.stderr_has {
        if !r.stderr.contains(want) {
            failures.push(format!("stderr lacks {want:?}"));
        }
    }
    if r.elapsed > Duration::from_secs(s.within_secs) {
        failures.push(format!("took {:?}, bound {} s", r.elapsed, s.within_secs));
    }
    if matches!(s.cmd, Cmd::Blob | Cmd::Pull) {
        if s.code == 0 {
            match std::fs::read(&dest) {
                Ok(bytes) if bytes == f.blob => {}
                Ok(bytes) => failures.push(format!(
                    "destination holds {} bytes with digest {}",
                    bytes.len(),
                    digest_of(&bytes)
                )),
                Err(e) => failures.push(format!("destination unreadable: {e}")),
            }
            if list_dir(&out) != [DEST_NAME] {
                failures.push(format!("destination folder holds {:?}", list_dir(&out)));
            }
        } else if !list_dir(&out).is_empty() {
            failures.push(format!(
                "a failed pull left {:?} in the destination folder",
                list_dir(&out)
            ));
        }
    }
    let partial = file_size(&partial_path(&cache, &f.digest));
    match s.partial {
        PartialFile::Gone if partial.is_some() => failures.push(format!(
            "the cache partial is still there ({partial:?} bytes)"
        )),
        PartialFile::KeptWithWhatArrived => {
            let arrived: usize = outcome.blob_gets().iter().map(|s| s.body).sum();
            if partial != Some(arrived as u64) {
                failures.push(format!(
                    "cache partial holds {partial:?} bytes, {arrived} arrived"
                ));
            }
        }
        PartialFile::Gone => {}
    }
    if let Err(e) = (s.check)(&f, &outcome) {
        failures.push(format!("mechanism: {e}"));
    }
    assert!(
        failures.is_empty(),
        "{}\n{}",
        failures.join("\n"),
        context()
    );
    let first_line = r
        .stderr
        .lines()
        .find(|l| l.starts_with("error:") || l.starts_with("wrote "))
        .unwrap_or("");
    report(
        name,
        &format!(
            "exit {} in {:.1} s, {} targeted requests, ranges {:?} | {}",
            s.code,
            r.elapsed.as_secs_f64(),
            outcome.targeted().len(),
            outcome
                .blob_gets()
                .iter()
                .filter_map(|s| s.range.as_deref())
                .collect::<Vec<_>>(),
            first_line
        ),
    );
}

/// One `#[test]` per row of [`SCENARIOS`], and the list of rows that have one.
macro_rules! scenario_tests {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                run_scenario(stringify!($name));
            }
        )*
        const TESTED: &[&str] = &[$(stringify!($name)),*];
    };
}

scenario_tests!(
    body_dropped_once,
    body_dropped_three_times,
    rate_limited_retry_after_seconds,
    retry_after_http_date,
    retry_after_capped,
    unavailable_twice_then_ok,
    connection_reset_twice_then_ok,
    unavailable_until_retries_run_out,
    stall_beyond_stall_timeout,
    headers_never_arrive,
    flipped_byte,
    range_ignored_restarts,
    truncated_on_every_attempt,
    layer_longer_than_descriptor,
    layer_shorter_than_descriptor,
    manifest_over_4_mib,
    config_over_4_mib,
    token_response_over_1_mib,
    tag_list_not_json,
    error_body_over_64_kib,
    redirect_loop,
    tag_link_loop,
);

/// Names of the tests below the table, also documented.
const OTHER_TESTS: &[&str] = &[
    "sigkill_mid_body_then_next_run_fetches_only_the_rest",
    "ctrl_c_mid_body_exits_130_and_keeps_the_cache_partial",
    "ctrl_c_mid_body_removes_the_temp_file_beside_the_destination",
    "permission_denied_at_destination_then_fixed",
    "disk_full_at_destination",
    "disk_full_in_cache",
    "disk_full_in_cache_with_chunks",
    "file_size_limit_mid_download",
    "cache_on_another_file_system",
    "cache_not_writable_downloads_without_it",
];

#[test]
fn every_scenario_has_a_test_and_a_row_in_the_docs() {
    let mut names: Vec<&str> = SCENARIOS.iter().map(|s| s.name).collect();
    let mut tested = TESTED.to_vec();
    names.sort_unstable();
    tested.sort_unstable();
    assert_eq!(names, tested, "scenario rows and their tests differ");
    let docs_path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/reliability.md");
    let docs = std::fs::read_to_string(docs_path).expect("docs/reliability.md");
    for name in names.iter().chain(OTHER_TESTS) {
        assert!(
            docs.contains(&format!("`{name}`")),
            "docs/reliability.md has no row for `{name}`"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Interrupted runs: SIGKILL and Ctrl-C in the middle of a body
// ---------------------------------------------------------------------------------------

/// `len` bytes: 1 MiB of pseudo-random data repeated, each copy stamped with its number
/// (cheap to make, no two MiB alike).
fn big_blob(len: usize) -> Vec<u8> {
    let block = pseudo_random_bytes(1 << 20, 77);
    let mut out = Vec::with_capacity(len + block.len());
    let mut n = 0u64;
    while out.len() < len {
        let start = out.len();
        out.extend_from_slice(&block);
        out[start..start + 8].copy_from_slice(&n.to_le_bytes());
        n += 1;
    }
    out.truncate(len);
    out
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

#[test]
fn sigkill_mid_body_then_next_run_fetches_only_the_rest() {
    const SIZE: usize = 100 << 20;
    const STALL_AT: usize = 50 << 20;
    // The writer may still hold the last (< 512 KiB) batch when the body stalls.
    const SETTLED: u64 = (STALL_AT - (1 << 20)) as u64;
    let f = fixtures();
    let blob = big_blob(SIZE);
    let digest = push(&f.registry, &blob, "faults/big", "1.0");
    let proxy = stalling_proxy(f.registry.url(), STALL_AT);
    let tmp = tempfile::tempdir().unwrap();
    let (out, cache) = (tmp.path().join("out"), tmp.path().join("cache"));
    std::fs::create_dir(&out).unwrap();
    let dest = out.join("big.bin");
    let partial = partial_path(&cache, &digest);
    let reference = format!("{}/faults/big@{digest}", proxy.host());
    let blob_cmd = || {
        let mut cmd = cli(&["blob", &reference, "-o", arg(&dest)]);
        cmd.env("OCISDK_CACHE_DIR", &cache);
        cmd
    };

    // Run 1: killed once half the body is on disk.
    let started = Instant::now();
    let mut child = blob_cmd()
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for(
        "the first half in the cache partial",
        Duration::from_secs(60),
        || {
            if let Some(status) = child.try_wait().unwrap() {
                panic!("ocisdk exited early: {status}");
            }
            file_size(&partial).is_some_and(|n| n >= SETTLED)
        },
    );
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.signal(), Some(9), "killed by SIGKILL: {status}");
    let first_run = started.elapsed();
    let kept = file_size(&partial).expect("the partial survives SIGKILL");
    assert!(
        (SETTLED..=STALL_AT as u64).contains(&kept),
        "partial holds {kept} bytes"
    );
    assert!(list_dir(&out).is_empty(), "{:?}", list_dir(&out));
    let first = proxy.log();
    assert_eq!(first.len(), 1, "{first:#?}");
    assert_eq!(first[0].range, None);
    proxy.clear();

    // Run 2: asks for the rest only.
    let r = run(blob_cmd());
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let second = proxy.log();
    assert_eq!(second.len(), 1, "{second:#?}");
    assert_eq!(
        second[0].range.as_deref(),
        Some(format!("bytes={kept}-").as_str())
    );
    assert_eq!(second[0].status, 206);
    assert_eq!(second[0].body as u64, SIZE as u64 - kept);
    assert_same_bytes(&std::fs::read(&dest).unwrap(), &blob, "resumed download");
    assert_eq!(list_dir(&out), ["big.bin"]);
    assert!(!partial.exists(), "the partial was moved into place");
    report(
        "sigkill_mid_body_then_next_run_fetches_only_the_rest",
        &format!(
            "killed after {:.1} s with {kept} bytes kept; run 2 asked bytes={kept}- and got {} bytes (206) in {:.1} s; file verified",
            first_run.as_secs_f64(),
            second[0].body,
            r.elapsed.as_secs_f64()
        ),
    );
}

/// Sends SIGINT to `child`.
fn interrupt(child: &Child) {
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -INT failed");
}

#[test]
fn ctrl_c_mid_body_exits_130_and_keeps_the_cache_partial() {
    const STALL_AT: usize = 2 << 20;
    let f = fixtures();
    let proxy = stalling_proxy(f.registry.url(), STALL_AT);
    let tmp = tempfile::tempdir().unwrap();
    let (out, cache) = (tmp.path().join("out"), tmp.path().join("cache"));
    std::fs::create_dir(&out).unwrap();
    let dest = out.join(DEST_NAME);
    let partial = partial_path(&cache, &f.digest);
    let reference = format!("{}/{REPO}@{}", proxy.host(), f.digest);
    let blob_cmd = || {
        let mut cmd = cli(&["blob", &reference, "-o", arg(&dest)]);
        cmd.env("OCISDK_CACHE_DIR", &cache);
        cmd
    };

    // With --json, the interruption is an error object like any other failure.
    let mut child = blob_cmd()
        .arg("--json")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for(
        "1 MiB in the cache partial",
        Duration::from_secs(30),
        || file_size(&partial).is_some_and(|n| n >= 1 << 20),
    );
    let sent = Instant::now();
    interrupt(&child);
    let status = wait_child(&mut child, Duration::from_secs(10));
    let exit_after = sent.elapsed();
    assert_eq!(status.code(), Some(130), "{status}");
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    let error: serde_json::Value = serde_json::from_str(stderr.trim_end().lines().last().unwrap())
        .unwrap_or_else(|e| panic!("{e}: {stderr}"));
    assert_eq!(error["error"]["kind"], "interrupted", "{stderr}");
    assert_eq!(error["error"]["exit_code"], 130, "{stderr}");
    assert!(list_dir(&out).is_empty(), "{:?}", list_dir(&out));
    let kept = file_size(&partial).expect("the partial stays for the next run");
    assert!(
        (1 << 20..=STALL_AT as u64).contains(&kept),
        "partial holds {kept} bytes"
    );

    // The next run resumes from it.
    proxy.clear();
    let r = run(blob_cmd());
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let log = proxy.log();
    assert_eq!(log.len(), 1, "{log:#?}");
    assert_eq!(
        log[0].range.as_deref(),
        Some(format!("bytes={kept}-").as_str())
    );
    assert_same_bytes(&std::fs::read(&dest).unwrap(), &f.blob, "resumed download");
    report(
        "ctrl_c_mid_body_exits_130_and_keeps_the_cache_partial",
        &format!(
            "exit 130 {:.2} s after SIGINT; partial kept ({kept} bytes); next run asked bytes={kept}- and verified",
            exit_after.as_secs_f64()
        ),
    );
}

#[test]
fn ctrl_c_mid_body_removes_the_temp_file_beside_the_destination() {
    // While another process downloads the same blob (it holds the lock on the cache
    // partial), the binary stages into a temp file beside the destination instead.
    const STALL_AT: usize = 2 << 20;
    let f = fixtures();
    let proxy = stalling_proxy(f.registry.url(), STALL_AT);
    let tmp = tempfile::tempdir().unwrap();
    let (out, cache) = (tmp.path().join("out"), tmp.path().join("cache"));
    std::fs::create_dir(&out).unwrap();
    let dest = out.join(DEST_NAME);
    let partial = partial_path(&cache, &f.digest);
    std::fs::create_dir_all(partial.parent().unwrap()).unwrap();
    let held = std::fs::File::create(&partial).unwrap();
    held.lock()
        .expect("lock the partial as another download would");

    let mut cmd = cli(&[
        "blob",
        &format!("{}/{REPO}@{}", proxy.host(), f.digest),
        "-o",
        arg(&dest),
    ]);
    cmd.env("OCISDK_CACHE_DIR", &cache);
    let mut child = cmd.stderr(Stdio::null()).spawn().unwrap();
    let mut temp_name = String::new();
    wait_for(
        "1 MiB in a temp file beside the destination",
        Duration::from_secs(30),
        || {
            list_dir(&out).into_iter().any(|name| {
                let big = file_size(&out.join(&name)).is_some_and(|n| n >= 1 << 20);
                if big {
                    temp_name = name;
                }
                big
            })
        },
    );
    assert!(
        temp_name.starts_with(".sdk.bin.") && temp_name.ends_with(".part"),
        "{temp_name}"
    );
    interrupt(&child);
    let status = wait_child(&mut child, Duration::from_secs(10));
    assert_eq!(status.code(), Some(130), "{status}");
    assert!(
        list_dir(&out).is_empty(),
        "temp file left beside the destination: {:?}",
        list_dir(&out)
    );
    assert_eq!(
        file_size(&partial),
        Some(0),
        "the locked partial was not touched"
    );
    drop(held);
    report(
        "ctrl_c_mid_body_removes_the_temp_file_beside_the_destination",
        &format!("exit 130; {temp_name} removed; locked cache partial untouched"),
    );
}

// ---------------------------------------------------------------------------------------
// Local file system failures
// ---------------------------------------------------------------------------------------

/// A tmpfs mounted for the life of the value (unmounted on drop).
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// Mounts a tmpfs of `size` (e.g. `1M`) on `dir`, or explains why it could not. Its top
    /// folder is 0755: a tmpfs is 1777 by default, which `sdk install` refuses as a root.
    fn mount(dir: &Path, size: &str) -> Result<Tmpfs, String> {
        std::fs::create_dir_all(dir).unwrap();
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "tmpfs",
                arg(dir),
            ])
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if out.status.success() {
            Ok(Tmpfs(dir.to_path_buf()))
        } else {
            Err(format!(
                "mount -t tmpfs failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// A 1 MiB tmpfs at `dir`, or `None` (with a message) where mounting is not permitted.
fn tiny_tmpfs(dir: &Path, test: &str) -> Option<Tmpfs> {
    match Tmpfs::mount(dir, "1M") {
        Ok(t) => Some(t),
        Err(e) => {
            println!("SKIPPED {test}: a small file system cannot be arranged here: {e}");
            report(test, &format!("skipped: {e}"));
            None
        }
    }
}

#[test]
fn disk_full_at_destination() {
    let f = fixtures();
    let tmp = tempfile::tempdir().unwrap();
    let (out, cache) = (tmp.path().join("out"), tmp.path().join("cache"));
    let Some(_fs) = tiny_tmpfs(&out, "disk_full_at_destination") else {
        return;
    };
    let dest = out.join(DEST_NAME);
    let mut cmd = cli(&[
        "blob",
        &format!("{}/{REPO}@{}", f.registry.host(), f.digest),
        "-o",
        arg(&dest),
    ]);
    cmd.env("OCISDK_CACHE_DIR", &cache);
    let r = run(cmd);
    assert_eq!(r.code, Some(1), "{}", r.stderr);
    assert!(r.stderr.contains("No space left on device"), "{}", r.stderr);
    assert!(
        r.stderr.contains(arg(&out)),
        "names the folder: {}",
        r.stderr
    );
    assert!(
        list_dir(&out).is_empty(),
        "left behind: {:?}",
        list_dir(&out)
    );
    // The verified bytes stay in the cache: the next run needs no download.
    let kept = file_size(&partial_path(&cache, &f.digest));
    assert_eq!(kept, Some(BLOB_SIZE as u64));
    report(
        "disk_full_at_destination",
        &format!(
            "exit 1: {}; destination folder empty; cache partial complete ({BLOB_SIZE} bytes)",
            error_line(&r.stderr)
        ),
    );
}

/// The install root is a 1 MiB tmpfs holding a small SDK already installed. A 4 MiB SDK
/// fills it while it unpacks, which it does as the layer downloads, in both image shapes
/// (the layer is the tarball, or holds it): exit 1 naming the disk error and the root, no
/// install or staging folder left, and the small SDK untouched.
#[test]
fn disk_full_in_the_install_root() {
    let test = "disk_full_in_the_install_root";
    let registry = Registry::start();
    let tmp = tempfile::tempdir().unwrap();
    let (root, cache, work) = (
        tmp.path().join("root"),
        tmp.path().join("cache"),
        tmp.path().join("work"),
    );
    std::fs::create_dir_all(&work).unwrap();
    let sdk = |version: &str, size: usize| {
        tar_gz_of(&[
            ("bin/tool", b"#!/bin/sh\n", 0o755),
            (
                "lib/data.bin",
                &pseudo_random_bytes(size, size as u64),
                0o644,
            ),
            ("VERSION", version.as_bytes(), 0o644),
        ])
    };
    let install = |version: &str| {
        let mut cmd = cli(&[
            "sdk",
            "install",
            "tool",
            version,
            "--registry",
            &registry.url(),
        ]);
        cmd.env("OCISDK_CACHE_DIR", &cache)
            .env("DYNAMIC_INSTALL_ROOT_DIR", &root);
        run(cmd)
    };
    for (version, size) in [("1.0.0", 64 << 10), ("2.0.0", 4 << 20)] {
        let file = work.join(format!("tool-bookworm-{version}.tar.gz"));
        std::fs::write(&file, sdk(version, size)).unwrap();
        let mut cmd = cli(&["sdk", "publish", "tool", version, arg(&file)]);
        cmd.args(["--registry", &registry.url()]);
        assert_eq!(run(cmd).code, Some(0), "publish {version}");
    }
    // 2.0.1: the same SDK in the MCR layout.
    let mut layout = OciLayout::new();
    layout.add_image(
        "sdk",
        &ImageBuilder::new()
            .layer(
                fs_layer_holding("tool-bookworm-2.0.1.tar.gz", &sdk("2.0.1", 4 << 20)),
                media_types::OCI_LAYER_GZIP,
            )
            .label("org.oryx.version", "2.0.1"),
    );
    skopeo::push_layout(
        layout.path(),
        "sdk",
        &registry.host(),
        "oryx/tool-sdk:bookworm-2.0.1",
        Format::Oci,
    );

    let Some(_fs) = tiny_tmpfs(&root, test) else {
        return;
    };
    assert_eq!(install("1.0.0").code, Some(0));
    let small = std::fs::read(root.join("tool/1.0.0/lib/data.bin")).unwrap();
    let mut lines = Vec::new();
    for version in ["2.0.0", "2.0.1"] {
        let r = install(version);
        assert_eq!(r.code, Some(1), "{}", r.stderr);
        assert!(r.stderr.contains("No space left on device"), "{}", r.stderr);
        assert!(
            r.stderr.contains(arg(&root)),
            "names the root: {}",
            r.stderr
        );
        // Lock files stay (they are reused); a staging folder would show here.
        let left: Vec<String> = list_dir(&root.join("tool"))
            .into_iter()
            .filter(|name| !name.ends_with(".lock"))
            .collect();
        assert_eq!(left, ["1.0.0"], "{version}");
        lines.push(format!("{version}: exit 1, {}", error_line(&r.stderr)));
    }
    assert_eq!(
        std::fs::read(root.join("tool/1.0.0/lib/data.bin")).unwrap(),
        small,
        "the installed SDK changed"
    );
    report(
        test,
        &format!("{}; only 1.0.0 in the root, intact", lines.join("; ")),
    );
}

#[test]
fn disk_full_in_cache() {
    let f = fixtures();
    let tmp = tempfile::tempdir().unwrap();
    let (out, cache) = (tmp.path().join("out"), tmp.path().join("cache"));
    std::fs::create_dir(&out).unwrap();
    let Some(_fs) = tiny_tmpfs(&cache, "disk_full_in_cache") else {
        return;
    };
    let dest = out.join(DEST_NAME);
    let mut cmd = cli(&[
        "blob",
        &format!("{}/{REPO}@{}", f.registry.host(), f.digest),
        "-o",
        arg(&dest),
    ]);
    cmd.env("OCISDK_CACHE_DIR", &cache);
    let r = run(cmd);
    assert_eq!(r.code, Some(1), "{}", r.stderr);
    assert!(r.stderr.contains("No space left on device"), "{}", r.stderr);
    assert!(
        list_dir(&out).is_empty(),
        "left behind: {:?}",
        list_dir(&out)
    );
    assert!(
        list_dir(&cache.join("partial-v1")).is_empty(),
        "the partial that filled the disk must go: {:?}",
        list_dir(&cache.join("partial-v1"))
    );
    report(
        "disk_full_in_cache",
        &format!(
            "exit 1: {}; partial removed; destination folder empty",
            error_line(&r.stderr)
        ),
    );
}

/// The ranged path (`--chunks`) on a full disk names the disk, not its own writer thread:
/// the fetchers stop because the writer did, and that is only the consequence.
#[test]
fn disk_full_in_cache_with_chunks() {
    let f = fixtures();
    let tmp = tempfile::tempdir().unwrap();
    let (out, cache) = (tmp.path().join("out"), tmp.path().join("cache"));
    // 17 MiB: the ranged path starts at twice its 8 MiB minimum chunk.
    let layer = tmp.path().join("chunked.bin");
    std::fs::write(&layer, pseudo_random_bytes(17 << 20, 9)).unwrap();
    let reference = format!("{}/faults/chunked:1", f.registry.host());
    let pushed = run(cli(&["-q", "push", arg(&layer), &reference]));
    assert_eq!(pushed.code, Some(0), "{}", pushed.stderr);
    // Both places it may stage in are full: the cache and the destination's folder.
    let Some(_cache_fs) = tiny_tmpfs(&cache, "disk_full_in_cache_with_chunks") else {
        return;
    };
    let Some(_out_fs) = tiny_tmpfs(&out, "disk_full_in_cache_with_chunks") else {
        return;
    };
    let dest = out.join(DEST_NAME);
    let mut cmd = cli(&["pull", &reference, "-o", arg(&dest), "--chunks", "4"]);
    cmd.env("OCISDK_CACHE_DIR", &cache);
    let r = run(cmd);
    assert_eq!(r.code, Some(1), "{}", r.stderr);
    assert!(r.stderr.contains("No space left on device"), "{}", r.stderr);
    assert!(!r.stderr.contains("writer stopped"), "{}", r.stderr);
    assert!(
        list_dir(&out).is_empty(),
        "left behind: {:?}",
        list_dir(&out)
    );
    report(
        "disk_full_in_cache_with_chunks",
        &format!(
            "exit 1: {}; destination folder empty",
            error_line(&r.stderr)
        ),
    );
}

/// A ranged chunk whose response breaks off after its last byte (the head announced more):
/// all its bytes are there, so the chunk is done, rather than asked for again from its end
/// (an empty range no registry can serve).
#[test]
fn a_chunk_that_breaks_off_after_its_last_byte_is_complete() {
    let registry = Registry::start();
    let blob = pseudo_random_bytes(17 << 20, 23);
    let digest = push(&registry, &blob, "faults/big", "1.0");
    let upstream = registry.url();
    let broken = Arc::new(AtomicUsize::new(0));
    let count = broken.clone();
    let proxy = ScriptedServer::start(move |req| {
        let response = forward(req, &upstream);
        let ranged = req.method == "GET" && req.header("range").is_some();
        if ranged && response.status == 206 && count.fetch_add(1, Ordering::SeqCst) == 0 {
            let n = response.body.len();
            let mut body = response.body.clone();
            body.extend_from_slice(&[0u8; 10]);
            return response.body(body).truncate_body_after(n);
        }
        response
    });
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("big.bin");
    let reference = format!("{}/faults/big@{digest}", proxy.host());
    let mut cmd = cli(&["blob", &reference, "-o", arg(&out), "--chunks", "2"]);
    cmd.env("OCISDK_CACHE_DIR", dir.path().join("cache"));
    let r = run(cmd);
    assert_eq!(r.code, Some(0), "{r:?}");
    assert!(
        broken.load(Ordering::SeqCst) >= 2,
        "ranged requests: {:?}",
        proxy.requests()
    );
    assert!(
        std::fs::read(&out).unwrap() == blob,
        "the blob, whole and verified"
    );
    for request in proxy.requests() {
        let Some(range) = request.header("range") else {
            continue;
        };
        let (from, to) = range
            .trim_start_matches("bytes=")
            .split_once('-')
            .expect("a bytes=FROM-TO range");
        let (from, to): (u64, u64) = (from.parse().unwrap(), to.parse().unwrap());
        assert!(from <= to, "an empty range was asked for: {range}");
    }
}

/// A partial download an earlier run left, whose bytes are not the blob's (damaged on disk,
/// or written by a faulty proxy): the digest fails only at the end, and the same run then
/// downloads the blob from the first byte instead of failing.
#[test]
fn a_wrong_partial_download_is_started_over() {
    let f = fixtures();
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let partials = cache.join("partial-v1");
    std::fs::create_dir_all(&partials).unwrap();
    let hex = f.digest.trim_start_matches("sha256:");
    let part = partials.join(format!("sha256-{hex}.part"));
    std::fs::write(&part, pseudo_random_bytes(BLOB_SIZE / 2, 11)).unwrap();
    let reference = format!("{}/{REPO}@{}", f.registry.host(), f.digest);
    let out = dir.path().join("sdk.bin");
    let mut cmd = cli(&["blob", &reference, "-o", arg(&out)]);
    cmd.env("OCISDK_CACHE_DIR", &cache);
    let r = run(cmd);
    assert_eq!(r.code, Some(0), "{r:?}");
    assert!(
        r.stderr.contains("downloading from the start"),
        "{}",
        r.stderr
    );
    assert!(
        std::fs::read(&out).unwrap() == f.blob,
        "the blob, whole and verified"
    );
    assert!(!part.exists(), "the wrong partial is gone");
}

/// An upload sent elsewhere (a Location on another origin) is refused, and the signed URL
/// it named is not printed.
#[test]
fn an_upload_location_on_another_origin_is_refused_without_its_query() {
    let registry = ScriptedServer::start(|req| match req.method.as_str() {
        "POST" => ScriptedResponse::new(202).header(
            "Location",
            "http://203.0.113.9/upload?X-Amz-Signature=TOPSECRETSIG",
        ),
        "HEAD" => ScriptedResponse::new(404),
        _ => ScriptedResponse::new(500),
    });
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("layer.bin");
    std::fs::write(&file, b"layer").unwrap();
    let target = format!("{}/r/x:1", registry.host());
    let mut cmd = cli(&["push", arg(&file), &target, "--retries", "0"]);
    cmd.env("OCISDK_CACHE_DIR", dir.path().join("cache"));
    let r = run(cmd);
    assert_ne!(r.code, Some(0), "{r:?}");
    assert!(r.stderr.contains("another origin"), "{}", r.stderr);
    assert!(
        r.stderr.contains("203.0.113.9/upload?redacted"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("TOPSECRETSIG"), "{}", r.stderr);
}

/// A blob redirected to storage that cannot be reached: the signed URL (its query is the
/// credential) appears in no error message, JSON error or debug log.
#[test]
fn a_signed_redirect_url_never_reaches_the_output() {
    let (registry, place) = ocisdk_testkit::scripted::redirect_to_unreachable_signed_url();
    let dir = tempfile::tempdir().unwrap();
    let reference = format!("{}/r/x@sha256:{}", registry.host(), "a".repeat(64));
    let out = dir.path().join("blob.bin");
    for extra in [&["-vv"][..], &["--json"][..]] {
        let mut args = vec!["blob", &reference, "-o", arg(&out), "--retries", "0"];
        args.extend_from_slice(extra);
        let mut cmd = cli(&args);
        cmd.env("OCISDK_CACHE_DIR", dir.path().join("cache"));
        let r = run(cmd);
        assert_eq!(r.code, Some(6), "{extra:?}: {r:?}");
        let all = format!("{}{}", r.stdout, r.stderr);
        assert!(all.contains("could not connect"), "{extra:?}: {all}");
        assert!(
            all.contains(&format!("{place}?redacted")),
            "{extra:?}: {all}"
        );
        assert!(
            !all.contains("TOPSECRETSIG") && !all.contains("AKIAEXAMPLE"),
            "{extra:?}: {all}"
        );
    }
}

/// A file-size limit (`ulimit -f`, RLIMIT_FSIZE: a quota-like cap a build sandbox may set)
/// smaller than the blob: the write past it fails with EFBIG, which the binary reports as
/// any disk error (exit 1 naming the file), removing what it wrote. The kernel also sends
/// SIGXFSZ, whose default action killed the binary mid-write, leaving its partial behind
/// and saying nothing.
#[test]
fn file_size_limit_mid_download() {
    use std::os::unix::process::CommandExt;
    const LIMIT: u64 = 1 << 20;
    let f = fixtures();
    let tmp = tempfile::tempdir().unwrap();
    let (out, cache) = (tmp.path().join("out"), tmp.path().join("cache"));
    std::fs::create_dir(&out).unwrap();
    let dest = out.join(DEST_NAME);
    let mut cmd = cli(&[
        "blob",
        &format!("{}/{REPO}@{}", f.registry.host(), f.digest),
        "-o",
        arg(&dest),
    ]);
    cmd.env("OCISDK_CACHE_DIR", &cache);
    // SAFETY: setrlimit is async-signal-safe and touches only the child's own limits.
    unsafe {
        cmd.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: LIMIT,
                rlim_max: LIMIT,
            };
            match libc::setrlimit(libc::RLIMIT_FSIZE, &limit) {
                0 => Ok(()),
                _ => Err(std::io::Error::last_os_error()),
            }
        });
    }
    let r = run(cmd);
    assert_eq!(r.code, Some(1), "killed or wrong exit: {r:?}");
    assert!(r.stderr.contains("File too large"), "{}", r.stderr);
    let partial = partial_path(&cache, &f.digest);
    assert!(
        r.stderr.contains(arg(&partial)),
        "names the file: {}",
        r.stderr
    );
    assert!(
        list_dir(&out).is_empty(),
        "left behind: {:?}",
        list_dir(&out)
    );
    assert!(
        !partial.exists(),
        "a partial the limit cut short is no use to resume"
    );
    report(
        "file_size_limit_mid_download",
        &format!(
            "exit 1: {}; partial removed; destination folder empty",
            error_line(&r.stderr)
        ),
    );
}

#[test]
fn cache_on_another_file_system() {
    let f = fixtures();
    let shm = Path::new("/dev/shm");
    let Ok(cache_root) = tempfile::tempdir_in(shm) else {
        println!("SKIPPED cache_on_another_file_system: /dev/shm is not usable");
        report("cache_on_another_file_system", "skipped: no /dev/shm");
        return;
    };
    let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let cache = cache_root.path().join("cache");
    let out = tmp.path().join("out");
    std::fs::create_dir(&out).unwrap();
    std::fs::create_dir(&cache).unwrap();
    let (cache_dev, out_dev) = (
        std::fs::metadata(&cache).unwrap().dev(),
        std::fs::metadata(&out).unwrap().dev(),
    );
    if cache_dev == out_dev {
        println!(
            "SKIPPED cache_on_another_file_system: /dev/shm and the target dir are one file system"
        );
        report("cache_on_another_file_system", "skipped: same file system");
        return;
    }
    let dest = out.join(DEST_NAME);
    let mut cmd = cli(&[
        "blob",
        &format!("{}/{REPO}@{}", f.registry.host(), f.digest),
        "-o",
        arg(&dest),
    ]);
    cmd.env("OCISDK_CACHE_DIR", &cache);
    let r = run(cmd);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_same_bytes(&std::fs::read(&dest).unwrap(), &f.blob, "download");
    assert_eq!(list_dir(&out), [DEST_NAME], "no copy temp left beside it");
    assert!(
        !partial_path(&cache, &f.digest).exists(),
        "partial left in the cache"
    );
    report(
        "cache_on_another_file_system",
        "exit 0; copied across file systems and renamed; no temp beside it; cache partial removed",
    );
}

/// Under a umask of 0, as in many containers and CI jobs, a `blob` download's partial in the
/// cache, broken off or finished, is never writable by group or others: another user could
/// otherwise change its bytes, so that the next run downloads again, or write into it while
/// it is verified and renamed into place. The file given with `-o` is the user's: renamed
/// there from the cache, it gets the mode the umask gives a new file (0666 under umask 0,
/// 0664 under 002), as a download without a cache and curl give it.
#[test]
fn a_blob_download_leaves_nothing_in_the_cache_others_may_write_under_umask_0() {
    use ocisdk_testkit::cli::with_umask;
    let f = fixtures();
    let proxy = stalling_proxy(f.registry.url(), BLOB_SIZE / 2);
    let tmp = tempfile::tempdir().unwrap();
    let (out, cache) = (tmp.path().join("out"), tmp.path().join("cache"));
    std::fs::create_dir(&out).unwrap();
    let blob = |host: &str, dest: &Path, umask: u32, extra: &[&str]| {
        let reference = format!("{host}/{REPO}@{}", f.digest);
        let mut args = vec!["blob", reference.as_str(), "-o", arg(dest)];
        args.extend_from_slice(extra);
        let mut cmd = cli(&args);
        cmd.env("OCISDK_CACHE_DIR", &cache);
        with_umask(&mut cmd, umask);
        run(cmd)
    };
    let mode = |path: &Path| format!("{:04o}", std::fs::metadata(path).unwrap().mode() & 0o7777);

    // Broken off: the body stalls halfway, and the partial is kept for the next run.
    let dest = out.join(DEST_NAME);
    let broken = ["--stall-timeout", "1", "--retries", "0"];
    let r = blob(&proxy.host(), &dest, 0, &broken);
    assert_eq!(r.code, Some(6), "{}", r.stderr);
    let partial = partial_path(&cache, &f.digest);
    assert!(
        file_size(&partial).is_some_and(|n| n > 0),
        "no partial kept"
    );
    assert_eq!(writable_by_others(&cache), Vec::<String>::new());

    // Finished, from that partial: renamed to the user's file, which gets the umask's mode.
    let r = blob(&f.registry.host(), &dest, 0, &[]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(!partial.exists(), "the partial was moved into place");
    assert_same_bytes(&std::fs::read(&dest).unwrap(), &f.blob, "download");
    assert_eq!(mode(&dest), "0666", "{}", dest.display());
    assert_eq!(writable_by_others(&cache), Vec::<String>::new());

    let shared = out.join("shared.bin");
    let r = blob(&f.registry.host(), &shared, 0o002, &[]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(mode(&shared), "0664", "{}", shared.display());
}

/// A cache folder the user cannot write (a read-only home, a container run under another
/// uid): the cache only serves resuming, so the download goes on without it, staged beside
/// the destination, with a warning naming the cache. It used to fail before any byte came:
/// `creating …/partial-v1: Permission denied`.
#[test]
fn cache_not_writable_downloads_without_it() {
    use std::os::unix::fs::PermissionsExt;
    let f = fixtures();
    let (tmp, bin, out, cache) = sandbox_for_nobody();
    if is_root() {
        std::os::unix::fs::chown(&out, Some(NOBODY), Some(NOBODY)).unwrap();
    }
    // The cache folder: read-only for the user running the binary.
    std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o555)).unwrap();
    let dest = out.join(DEST_NAME);
    let mut cmd = Command::new(&bin);
    ocisdk_testkit::cli::scrub(&mut cmd)
        .args([
            "blob",
            &format!("{}/{REPO}@{}", f.registry.host(), f.digest),
            "-o",
            arg(&dest),
        ])
        .env("OCISDK_CACHE_DIR", &cache)
        .env("HOME", tmp.path());
    unprivileged(&mut cmd);

    let r = run(cmd);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_same_bytes(&std::fs::read(&dest).unwrap(), &f.blob, "download");
    assert_eq!(list_dir(&out), [DEST_NAME], "no temp file left beside it");
    assert!(r.stderr.contains(arg(&cache)), "warns: {}", r.stderr);
    assert!(list_dir(&cache).is_empty(), "{:?}", list_dir(&cache));
    report(
        "cache_not_writable_downloads_without_it",
        &format!(
            "exit 0; file verified; warning: {}",
            r.stderr.lines().next().unwrap_or("").trim()
        ),
    );
}

/// `sdk pull` with a cache folder the user cannot write: the cache only holds the record
/// that spares the next pull a download, so the SDK is pulled (tarball and sidecar) with a
/// warning naming the cache. It used to download the whole tarball and then fail with
/// `creating …/sdk-records-v1: Permission denied`, leaving a tarball without its sidecar.
#[test]
fn sdk_pull_with_a_cache_not_writable_still_pulls() {
    use std::os::unix::fs::PermissionsExt;
    let registry = Registry::start();
    let (tmp, bin, out, cache) = sandbox_for_nobody();
    let tarball = tar_gz_of(&[("bin/tool", b"#!/bin/sh\n", 0o755)]);
    let file = tmp.path().join("tool-bookworm-1.0.0.tar.gz");
    std::fs::write(&file, &tarball).unwrap();
    let mut publish = cli(&["sdk", "publish", "tool", "1.0.0", arg(&file)]);
    publish.args(["--registry", &registry.url()]);
    assert_eq!(run(publish).code, Some(0), "publish");
    if is_root() {
        std::os::unix::fs::chown(&out, Some(NOBODY), Some(NOBODY)).unwrap();
    }
    std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o555)).unwrap();
    let mut cmd = Command::new(&bin);
    ocisdk_testkit::cli::scrub(&mut cmd)
        .args(["sdk", "pull", "tool", "1.0.0", "-o", arg(&out)])
        .args(["--registry", &registry.url()])
        .env("OCISDK_CACHE_DIR", &cache)
        .env("HOME", tmp.path());
    unprivileged(&mut cmd);

    let r = run(cmd);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let pulled = out.join("tool-bookworm-1.0.0.tar.gz");
    assert_same_bytes(&std::fs::read(&pulled).unwrap(), &tarball, "pulled tarball");
    assert_eq!(
        list_dir(&out),
        [
            "tool-bookworm-1.0.0.tar.gz",
            "tool-bookworm-1.0.0.tar.gz.manifest-digest"
        ],
        "the tarball and its sidecar, nothing else"
    );
    assert!(r.stderr.contains(arg(&cache)), "warns: {}", r.stderr);
    assert!(list_dir(&cache).is_empty(), "{:?}", list_dir(&cache));
    report(
        "sdk_pull_with_a_cache_not_writable_still_pulls",
        "exit 0; tarball and sidecar; a warning names the cache",
    );
}

#[test]
fn permission_denied_at_destination_then_fixed() {
    use std::os::unix::fs::PermissionsExt;
    let f = fixtures();
    let proxy = Proxy::with_handler(f.registry.url(), |req, upstream| {
        let r = forward_registry(req, upstream);
        let n = r.body.len();
        (r, n)
    });
    let (tmp, bin, out, cache) = sandbox_for_nobody();
    if is_root() {
        std::os::unix::fs::chown(&cache, Some(NOBODY), Some(NOBODY)).unwrap();
    }
    // The destination folder: read-only for the user running the binary.
    std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o555)).unwrap();
    let dest = out.join(DEST_NAME);
    let reference = format!("{}/{REPO}@{}", proxy.host(), f.digest);
    let blob_cmd = || {
        let mut cmd = Command::new(&bin);
        ocisdk_testkit::cli::scrub(&mut cmd)
            .args(["blob", &reference, "-o", arg(&dest)])
            .env("OCISDK_CACHE_DIR", &cache)
            .env("HOME", tmp.path());
        unprivileged(&mut cmd);
        cmd
    };

    let r = run(blob_cmd());
    assert_eq!(r.code, Some(1), "{}", r.stderr);
    assert!(r.stderr.contains("Permission denied"), "{}", r.stderr);
    assert!(
        r.stderr.contains(arg(&dest)),
        "names the destination: {}",
        r.stderr
    );
    assert!(list_dir(&out).is_empty(), "{:?}", list_dir(&out));
    let partial = partial_path(&cache, &f.digest);
    assert_eq!(
        file_size(&partial),
        Some(BLOB_SIZE as u64),
        "verified bytes kept"
    );
    let first = error_line(&r.stderr).to_string();

    // Fixed: the next run takes the verified partial, downloading no body again.
    if is_root() {
        std::os::unix::fs::chown(&out, Some(NOBODY), Some(NOBODY)).unwrap();
    }
    std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o755)).unwrap();
    proxy.clear();
    let r = run(blob_cmd());
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_same_bytes(&std::fs::read(&dest).unwrap(), &f.blob, "download");
    assert_eq!(list_dir(&out), [DEST_NAME]);
    assert!(!partial.exists());
    // Only a 416 comes back to `Range: bytes=<size>-`: no content is fetched twice.
    let body_bytes: usize = proxy
        .log()
        .iter()
        .filter(|s| (200..300).contains(&s.status))
        .map(|s| s.body)
        .sum();
    assert!(
        body_bytes == 0,
        "the second run downloaded {body_bytes} body bytes again: {:#?}",
        proxy.log()
    );
    report(
        "permission_denied_at_destination_then_fixed",
        &format!(
            "run 1 exit 1: {first}; folder empty; run 2 (writable) exit 0 with {body_bytes} content bytes fetched ({:?})",
            proxy
                .log()
                .iter()
                .map(|s| (s.range.clone(), s.status))
                .collect::<Vec<_>>()
        ),
    );
}

/// Text from a hostile registry never reaches the terminal as escape sequences: a listed
/// tag that is no valid tag name (one holding ESC) is skipped with a warning that shows it
/// escaped, and an error body's message is printed with its control characters escaped.
/// Both used to be printed raw, so the registry could recolour or retitle the terminal.
#[test]
fn a_registry_cannot_write_escape_sequences_to_the_terminal() {
    let server = ScriptedServer::start(|req| {
        if req.path().ends_with("/tags/list") {
            ScriptedResponse::json(
                200,
                &serde_json::json!({"name": REPO, "tags": ["1.0", "\u{1b}[31mRED", "2.0"]}),
            )
        } else if req.path().contains("/manifests/") {
            ScriptedResponse::json(
                404,
                &serde_json::json!({"errors": [{"code": "MANIFEST_UNKNOWN",
                    "message": "\u{1b}]0;owned\u{7}\u{1b}[2J gone"}]}),
            )
        } else {
            ScriptedResponse::json(200, &serde_json::json!({}))
        }
    });
    let tags = run(cli(&["tags", &format!("{}/{REPO}", server.host())]));
    assert_eq!(tags.code, Some(0), "{}", tags.stderr);
    assert_eq!(tags.stdout, "1.0\n2.0\n");
    assert!(
        tags.stderr.contains("skipped 1 listed tag(s)") && tags.stderr.contains(r"\u{1b}[31mRED"),
        "{}",
        tags.stderr
    );
    assert!(!tags.stderr.contains('\u{1b}'), "{:?}", tags.stderr);

    let manifest = run(cli(&["manifest", &format!("{}/{REPO}:1.0", server.host())]));
    assert_eq!(manifest.code, Some(3), "{}", manifest.stderr);
    assert!(
        manifest
            .stderr
            .contains(r"\u{1b}]0;owned\u{7}\u{1b}[2J gone"),
        "{:?}",
        manifest.stderr
    );
    assert!(
        !manifest.stderr.contains(['\u{1b}', '\u{7}']),
        "{:?}",
        manifest.stderr
    );
}
