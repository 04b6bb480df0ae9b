//! Interrupted and broken-off downloads: SIGKILL and Ctrl-C in the middle of a body, a
//! chunk that breaks off after its last byte, a partial that is not the blob's.

use super::*;

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
