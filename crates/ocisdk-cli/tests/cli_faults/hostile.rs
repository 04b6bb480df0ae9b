//! What a registry may not make the binary print: the signed URL it redirects a blob or an
//! upload to, escape sequences in its tags and error bodies.

use super::*;

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
