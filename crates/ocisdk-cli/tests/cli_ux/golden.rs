//! `--help` texts and the messages of a few fixed failures, compared with the golden files
//! in `tests/golden/`.

use super::*;

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

/// Compares `actual` with `tests/golden/NAME`, or rewrites the file when `UPDATE_GOLDEN=1`.
#[track_caller]
fn check_golden(name: &str, actual: &str) {
    let path = golden_dir().join(name);
    if std::env::var("UPDATE_GOLDEN").as_deref() == Ok("1") {
        fs::create_dir_all(golden_dir()).unwrap();
        fs::write(&path, actual).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        return;
    }
    let expected = fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "golden file {} is missing ({e}); create it with UPDATE_GOLDEN=1",
            path.display()
        )
    });
    if expected == actual {
        return;
    }
    let (want, got): (Vec<&str>, Vec<&str>) =
        (expected.lines().collect(), actual.lines().collect());
    let mut diff = String::new();
    for i in 0..want.len().max(got.len()) {
        let (w, g) = (want.get(i), got.get(i));
        if w != g {
            diff.push_str(&format!(
                "line {}:\n  golden: {:?}\n  actual: {:?}\n",
                i + 1,
                w.copied().unwrap_or("<none>"),
                g.copied().unwrap_or("<none>")
            ));
        }
    }
    panic!(
        "output differs from golden file {} (run with UPDATE_GOLDEN=1 to accept):\n{diff}\nfull output:\n{actual}",
        path.display()
    );
}

/// Replaces every `127.0.0.1:<port>` by `127.0.0.1:PORT`.
fn normalise_ports(text: &str) -> String {
    const HOST: &str = "127.0.0.1:";
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(HOST) {
        out.push_str(&rest[..at + HOST.len()]);
        rest = &rest[at + HOST.len()..];
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        if digits > 0 {
            out.push_str("PORT");
        }
        rest = &rest[digits..];
    }
    out.push_str(rest);
    out
}

/// A transcript of one run, as kept in an error golden file.
fn transcript(args: &[&str], run: &Run) -> String {
    normalise_ports(&format!(
        "$ ocisdk {}\nexit code: {}\n--- stdout\n{}--- stderr\n{}",
        args.join(" "),
        run.code,
        run.stdout,
        run.stderr
    ))
}

/// Runs `args` as text and with `--json`, checks both exit with `code`, and compares both
/// transcripts with `tests/golden/NAME`.
#[track_caller]
fn check_error_golden(s: &Sandbox, name: &str, args: &[&str], code: i32) {
    let mut text = String::new();
    for json in [false, true] {
        let mut all = args.to_vec();
        if json {
            all.push("--json");
        }
        let run = s.run(&all).expect_code(code);
        if json {
            let error: Value = serde_json::from_str(run.stderr.trim()).unwrap_or_else(|e| {
                panic!(
                    "--json error is not one JSON document ({e}): {}",
                    run.stderr
                )
            });
            assert_eq!(error["error"]["exit_code"], code, "{error}");
            assert!(run.stdout.is_empty(), "stdout: {}", run.stdout);
        }
        if !text.is_empty() {
            text.push('\n');
        }
        text.push_str(&transcript(&all, &run));
    }
    check_golden(name, &text);
}

#[test]
fn help_texts_match_golden_files() {
    let s = Sandbox::new();
    for (args, name) in [
        (&["--help"][..], "help.txt"),
        (&["-h"][..], "help-short.txt"),
        (&["sdk", "--help"][..], "sdk-help.txt"),
        (&["sdk", "install", "--help"][..], "sdk-install-help.txt"),
        (&["cache", "--help"][..], "cache-help.txt"),
        (&["config-show", "--help"][..], "config-show-help.txt"),
    ] {
        let run = s.run(args).success();
        assert!(run.stderr.is_empty(), "{args:?}: stderr {}", run.stderr);
        check_golden(name, &run.stdout);
    }
}

#[test]
fn offline_error_messages_match_golden_files() {
    let s = Sandbox::new();
    check_error_golden(
        &s,
        "error-invalid-reference.txt",
        &["digest", "UPPER/case"],
        2,
    );
    check_error_golden(
        &s,
        "error-blob-without-digest.txt",
        &["blob", "127.0.0.1:1/sdks/python:3.11", "-o", "blob.out"],
        2,
    );
    assert!(!s.work("blob.out").exists());
    // Port 1 is never served here: the connection is refused at once.
    check_error_golden(
        &s,
        "error-unreachable.txt",
        &["tags", "127.0.0.1:1/sdks/python", "--retries", "0"],
        6,
    );
    // Argument errors are clap's text, or with --json an error object like any other.
    let args = ["sdk", "install", "python"];
    let run = s.run(&args).expect_code(2);
    assert!(run.stdout.is_empty());
    check_golden("error-missing-argument.txt", &transcript(&args, &run));
    let run = s
        .run(&["sdk", "install", "python", "--json"])
        .expect_code(2);
    assert!(run.stdout.is_empty());
    let error: Value = serde_json::from_str(run.stderr.trim())
        .unwrap_or_else(|e| panic!("stderr is not one JSON object ({e}): {}", run.stderr));
    assert_eq!(error["error"]["kind"], "usage", "{error}");
    assert_eq!(error["error"]["exit_code"], 2, "{error}");
    let message = error["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("required arguments") && message.contains("<SPEC>"),
        "{message}"
    );
    let hint = error["error"]["hint"].as_str().unwrap();
    assert!(hint.contains("ocisdk sdk install"), "{hint}");
}

#[test]
fn registry_error_messages_match_golden_files() {
    let s = Sandbox::new();
    let registry = Registry::start();
    publish(&s, &registry, "3.11.4", 1024, false);
    publish(&s, &registry, "3.12.1", 1024, true);
    let host = registry.host();
    let url = registry.url();
    check_error_golden(
        &s,
        "error-unknown-repository.txt",
        &["tags", &format!("{host}/no/such-repo")],
        3,
    );
    check_error_golden(
        &s,
        "error-unknown-tag.txt",
        &["digest", &format!("{host}/oryx/python-sdk:bookworm-9.9.9")],
        3,
    );
    check_error_golden(
        &s,
        "error-unknown-tag-close-match.txt",
        &["manifest", &format!("{host}/oryx/python-sdk:bookworm-3.12")],
        3,
    );
    check_error_golden(
        &s,
        "error-no-matching-version.txt",
        &["sdk", "resolve", "python", "3.14", "--registry", &url],
        3,
    );
}
