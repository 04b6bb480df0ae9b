//! Pull mirrors (`--mirror`): a pull-through cache, one that is down, hung or serving wrong
//! bytes, credentials never sent to a mirror, mirrors of another upstream.

use super::*;

/// Polls `done` until it holds; panics after 20 s.
#[track_caller]
fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
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
