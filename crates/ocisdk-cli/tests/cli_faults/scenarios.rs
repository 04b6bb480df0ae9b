//! The scenario table: one row per proxy fault, each run as its own `#[test]` through the
//! proxy against the shared fixtures, and checked for its outcome and its mechanism.

use super::*;

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
