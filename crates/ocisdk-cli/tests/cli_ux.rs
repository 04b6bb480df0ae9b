//! The command-line experience of the `ocisdk` binary: help texts, error messages, shell
//! completions, man pages, progress display (on a terminal, on a pipe, with `-q`) and the
//! `cache` commands, run against a real CNCF distribution registry started by the testkit.
//!
//! # Golden files
//!
//! `--help` texts and the messages of a few fixed failures are compared with the files in
//! `tests/golden/` (a changed word fails the test). After a deliberate change, rewrite them
//! and review the diff:
//!
//! ```sh
//! UPDATE_GOLDEN=1 cargo test -p ocisdk-cli --test cli_ux
//! git diff crates/ocisdk-cli/tests/golden/
//! ```
//!
//! Registry ports are random: outputs are normalised to `127.0.0.1:PORT` before comparing.
//!
//! # Terminal tests
//!
//! Progress bars are only drawn when stderr is a terminal. Those tests run the binary under a
//! pseudo-terminal with `script -qec CMD /dev/null` (util-linux), size it with `stty`, and
//! replay what the terminal received through a small screen model ([`Screen`]) to check
//! what is left on screen at the end. Downloads go through a [`ScriptedServer`] in front of
//! the registry that pauses each large blob body for a moment, so that bars are drawn.
//!
//! Every run is hermetic: `HOME`, `XDG_CONFIG_HOME`, `XDG_CACHE_HOME` and `OCISDK_CACHE_DIR`
//! point into a private temp folder and every variable the CLI reads is removed.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ocisdk_testkit::cli::{self, Run};
use ocisdk_testkit::{
    digest_of, forward, forward_cut, pseudo_random_bytes, tar_gz_of, Registry, ScriptedResponse,
    ScriptedServer,
};
use serde_json::Value;
use tempfile::TempDir;

// ---------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------

/// Terminal variables removed from every child's environment, besides [`cli::scrub`]'s.
const TERMINAL_ENV: &[&str] = &["COLUMNS", "LINES", "TERM"];

/// The width given to clap (`COLUMNS`).
const WIDTH: usize = 100;

/// The width of the pseudo-terminal: wide enough for the longest line printed (a bar, or
/// `wrote PATH (N bytes, verified DIGEST)`), so that only bars rely on wrapping.
const TTY_WIDTH: usize = 240;

/// Removes the variables that would let the developer's setup leak into a run.
fn scrub(cmd: &mut Command) {
    cli::scrub(cmd);
    for name in TERMINAL_ENV {
        cmd.env_remove(name);
    }
}

/// A private temp folder: `home/` (HOME), `config/` (XDG_CONFIG_HOME), `xdg-cache/`
/// (XDG_CACHE_HOME), `cache/` (OCISDK_CACHE_DIR), `root/` (install root), `work/` (the
/// current folder of every run).
struct Sandbox {
    dir: TempDir,
}

impl Sandbox {
    fn new() -> Sandbox {
        let dir = tempfile::Builder::new()
            .prefix("ocisdk-ux-")
            .tempdir()
            .expect("temp dir");
        for sub in ["home", "config", "xdg-cache", "cache", "root", "work"] {
            fs::create_dir(dir.path().join(sub)).unwrap();
        }
        Sandbox { dir }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn cache(&self) -> PathBuf {
        self.path("cache")
    }

    fn root(&self) -> PathBuf {
        self.path("root")
    }

    fn work(&self, name: &str) -> PathBuf {
        self.path("work").join(name)
    }

    /// Sets the hermetic environment on `cmd`, and `work/` as its current folder.
    fn environment(&self, cmd: &mut Command) {
        scrub(cmd);
        cmd.current_dir(self.path("work"))
            .env("HOME", self.path("home"))
            .env("XDG_CONFIG_HOME", self.path("config"))
            .env("XDG_CACHE_HOME", self.path("xdg-cache"))
            .env("OCISDK_CACHE_DIR", self.cache())
            .env("COLUMNS", WIDTH.to_string());
    }

    /// `ocisdk ARGS…` with the hermetic environment, every stream redirected.
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ocisdk"));
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        self.environment(&mut cmd);
        cmd
    }

    fn run(&self, args: &[&str]) -> Run {
        Run::from_output(self.command(args).output().expect("run ocisdk"))
    }

    /// Runs `ocisdk ARGS…` on a `TTY_WIDTH`-column pseudo-terminal (stdin, stdout and stderr
    /// all on it) and returns the exit code and every byte the terminal received.
    fn run_on_terminal(&self, args: &[&str]) -> (i32, Vec<u8>) {
        let mut line = format!("stty cols {TTY_WIDTH} rows 40 && exec ");
        line.push_str(&quote(env!("CARGO_BIN_EXE_ocisdk")));
        for arg in args {
            line.push(' ');
            line.push_str(&quote(arg));
        }
        let mut cmd = Command::new("script");
        cmd.args(["-qec", &line, "/dev/null"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        self.environment(&mut cmd);
        cmd.env("TERM", "xterm").env("SHELL", "/bin/sh");
        let output = cmd
            .output()
            .expect("run `script` (util-linux) to get a pseudo-terminal");
        assert!(
            output.stderr.is_empty(),
            "script wrote on its stderr: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        (
            output.status.code().expect("script was killed by a signal"),
            output.stdout,
        )
    }
}

/// Single-quotes `text` for `sh`.
fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("UTF-8 temp path")
}

/// Every regular file under `dir` (recursively), sorted.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return found;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(files_under(&path));
        } else {
            found.push(path);
        }
    }
    found.sort();
    found
}

/// `sha256:` and the first 12 hex digits: how progress lines name a blob.
fn short_name(bytes: &[u8]) -> String {
    digest_of(bytes)[..19].to_string()
}

// ---------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------

/// An SDK tarball for `version` carrying `size` incompressible bytes.
fn sdk_tarball(version: &str, size: usize, seed: u64) -> Vec<u8> {
    let payload = pseudo_random_bytes(size, seed);
    tar_gz_of(&[
        ("bin/python", b"#!/bin/sh\necho python\n", 0o755),
        ("lib/VERSION", version.as_bytes(), 0o644),
        ("lib/payload.bin", &payload, 0o644),
    ])
}

/// Publishes python `version` (bookworm) with `sdk publish` and returns the tarball bytes.
#[track_caller]
fn publish(s: &Sandbox, registry: &Registry, version: &str, size: usize, default: bool) -> Vec<u8> {
    let tarball = sdk_tarball(version, size, version.len() as u64 + size as u64);
    let file = s.work(&format!("python-bookworm-{version}.tar.gz"));
    fs::write(&file, &tarball).unwrap();
    let url = registry.url();
    let mut args = vec![
        "sdk",
        "publish",
        "python",
        version,
        path_str(&file),
        "--registry",
        &url,
    ];
    if default {
        args.push("--default");
    }
    s.run(&args).success();
    tarball
}

/// How long the [`slow_proxy`] pauses each large blob body.
const PAUSE: Duration = Duration::from_millis(1200);

/// A proxy in front of `registry` that sends the first quarter of every blob body larger
/// than 64 KiB, pauses for [`PAUSE`], then sends the rest: a download that lasts long
/// enough for several progress redraws (bars tick every 200 ms).
fn slow_proxy(registry: &Registry) -> ScriptedServer {
    let upstream = registry.url();
    ScriptedServer::start(move |req| {
        let response: ScriptedResponse = forward(req, &upstream);
        let large = response.body.len() > 64 << 10;
        if req.method == "GET" && req.path().contains("/blobs/") && response.status == 200 && large
        {
            let quarter = response.body.len() / 4;
            response.stall_after(quarter, PAUSE)
        } else {
            response
        }
    })
}

// ---------------------------------------------------------------------------------------
// Golden files
// ---------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------
// Help for every command
// ---------------------------------------------------------------------------------------

/// One entry of a help section: its name column and its description (continuation lines
/// joined).
#[derive(Debug)]
struct Entry {
    name: String,
    description: String,
}

/// The entries of section `title` (`Commands:`, `Arguments:`, `Options:`) of a help text.
fn section(help: &str, title: &str) -> Vec<Entry> {
    let mut entries: Vec<Entry> = Vec::new();
    let mut inside = false;
    for line in help.lines() {
        if line == title {
            inside = true;
            continue;
        }
        if !inside {
            continue;
        }
        if line.is_empty() || !line.starts_with(' ') {
            break;
        }
        let body = &line[2..];
        if !body.starts_with(' ') {
            let (name, description) = match body.split_once("  ") {
                Some((n, d)) => (n.trim(), d.trim()),
                None => (body.trim(), ""),
            };
            entries.push(Entry {
                name: name.to_string(),
                description: description.to_string(),
            });
        } else if let Some(last) = entries.last_mut() {
            if !last.description.is_empty() {
                last.description.push(' ');
            }
            last.description.push_str(line.trim());
        }
    }
    entries
}

/// One command of the tree, with the about line its parent lists for it.
#[derive(Debug)]
struct Listed {
    path: Vec<String>,
    about: String,
}

/// Every command below `ocisdk`, found by reading each command's `-h` (clap's `help`
/// pseudo-command excluded).
fn command_tree(s: &Sandbox) -> Vec<Listed> {
    let mut found = Vec::new();
    let mut queue: Vec<Vec<String>> = vec![Vec::new()];
    while let Some(path) = queue.pop() {
        let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
        args.push("-h");
        let help = s.run(&args).success().stdout;
        for entry in section(&help, "Commands:") {
            if entry.name == "help" {
                continue;
            }
            let mut child = path.clone();
            child.push(entry.name.clone());
            found.push(Listed {
                path: child.clone(),
                about: entry.description,
            });
            queue.push(child);
        }
    }
    found.sort_by(|a, b| a.path.cmp(&b.path));
    found
}

#[test]
fn every_command_and_argument_has_help_text() {
    let s = Sandbox::new();
    let tree = command_tree(&s);
    let names: BTreeSet<String> = tree.iter().map(|c| c.path.join(" ")).collect();
    for expected in [
        "tags",
        "manifest",
        "digest",
        "config",
        "blob",
        "pull",
        "push",
        "login",
        "logout",
        "copy",
        "sdk",
        "sdk versions",
        "sdk default",
        "sdk resolve",
        "sdk pull",
        "sdk install",
        "sdk sync",
        "sdk list-installed",
        "sdk publish",
        "sdk mirror",
        "cache",
        "cache info",
        "cache prune",
        "cache clean",
        "config-show",
        "completions",
        "manpages",
    ] {
        assert!(names.contains(expected), "no `{expected}` in {names:?}");
    }
    let mut missing = Vec::new();
    for command in std::iter::once(Vec::new()).chain(tree.iter().map(|c| c.path.clone())) {
        let shown = format!("ocisdk {}", command.join(" "));
        let mut args: Vec<&str> = command.iter().map(String::as_str).collect();
        args.push("-h");
        let help = s.run(&args).success().stdout;
        if help.lines().next().unwrap_or("").trim().is_empty() {
            missing.push(format!("{shown}: no about line"));
        }
        for title in ["Arguments:", "Options:"] {
            for entry in section(&help, title) {
                if entry.description.is_empty() {
                    missing.push(format!("{shown}: {} has no help", entry.name));
                }
            }
        }
        assert!(
            !section(&help, "Options:").is_empty(),
            "{shown}: no Options section in\n{help}"
        );
    }
    for listed in &tree {
        if listed.about.is_empty() {
            missing.push(format!(
                "ocisdk {}: listed without an about line",
                listed.path.join(" ")
            ));
        }
    }
    assert!(
        missing.is_empty(),
        "help text missing:\n{}",
        missing.join("\n")
    );
}

#[test]
fn every_command_long_help_has_an_example() {
    let s = Sandbox::new();
    let mut without = Vec::new();
    for listed in command_tree(&s) {
        let mut args: Vec<&str> = listed.path.iter().map(String::as_str).collect();
        args.push("--help");
        let help = s.run(&args).success().stdout;
        let example = help.lines().any(|l| {
            let l = l.trim_start();
            l.starts_with("Example: ") && l.contains("ocisdk ")
        });
        if !example {
            without.push(format!("ocisdk {}", listed.path.join(" ")));
        }
    }
    assert!(
        without.is_empty(),
        "commands whose --help has no `Example:` line: {without:?}"
    );
}

#[test]
fn completions_cover_every_shell() {
    let s = Sandbox::new();
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let run = s.run(&["completions", shell]).success();
        assert!(run.stderr.is_empty(), "{shell}: {}", run.stderr);
        assert!(
            run.stdout.len() > 1000,
            "{shell}: {} bytes",
            run.stdout.len()
        );
        for word in [
            "ocisdk",
            "sdk",
            "list-installed",
            "config-show",
            "--registry",
        ] {
            assert!(run.stdout.contains(word), "{shell} script lacks {word:?}");
        }
    }
    let run = s.run(&["completions", "tcsh"]).expect_code(2);
    assert!(run.stderr.contains("tcsh"), "{}", run.stderr);
}

#[test]
fn manpages_are_written_for_every_command() {
    let s = Sandbox::new();
    let dir = s.path("man/man1");
    let run = s.run(&["manpages", path_str(&dir)]).success();
    let mut expected: BTreeSet<String> = command_tree(&s)
        .iter()
        .map(|c| format!("ocisdk-{}.1", c.path.join("-")))
        .collect();
    expected.insert("ocisdk.1".to_string());
    assert_eq!(
        run.stdout.trim(),
        format!("wrote {} man pages to {}", expected.len(), dir.display())
    );
    // Quiet says nothing; a folder that cannot be made is not a usage error.
    assert_eq!(
        s.run(&["-q", "manpages", path_str(&dir)]).success().stdout,
        ""
    );
    let file = s.path("a-file");
    fs::write(&file, b"").unwrap();
    let bad = s
        .run(&["manpages", path_str(&file.join("man"))])
        .expect_code(1);
    assert!(bad.stderr.contains("cannot create"), "{}", bad.stderr);
    let written: BTreeSet<String> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(written, expected, "man pages written");
    for name in &written {
        let page = fs::read_to_string(dir.join(name)).unwrap();
        let title = format!(".TH {} 1", name.trim_end_matches(".1"));
        let th = page.lines().find(|l| l.starts_with(&title));
        let th = th.unwrap_or_else(|| panic!("{name} has no `{title}` line"));
        assert!(
            th.contains(env!("CARGO_PKG_VERSION")),
            "{name}: the .TH line has no version: {th}"
        );
        assert!(page.contains(".SH NAME"), "{name} has no NAME section");
    }
    let install = fs::read_to_string(dir.join("ocisdk-sdk-install.1")).unwrap();
    assert!(install.contains("Install SDKs"), "{install}");
    assert!(install.contains("\\-\\-force"), "{install}");
}

// ---------------------------------------------------------------------------------------
// Progress
// ---------------------------------------------------------------------------------------

/// A minimal terminal: enough of VT100 to replay what the progress bars write (text with
/// deferred wrap at the right margin, CR, LF, cursor up/down, erase in line). Any other
/// control sequence fails the test, so a change in how bars are drawn is noticed.
struct Screen {
    width: usize,
    lines: Vec<Vec<char>>,
    row: usize,
    col: usize,
    wrap_pending: bool,
}

impl Screen {
    /// The screen's lines (trailing spaces removed) after `bytes` were written to it.
    fn replay(bytes: &[u8], width: usize) -> Vec<String> {
        let mut screen = Screen {
            width,
            lines: vec![Vec::new()],
            row: 0,
            col: 0,
            wrap_pending: false,
        };
        let text = String::from_utf8_lossy(bytes);
        let mut chars = text.chars();
        while let Some(c) = chars.next() {
            match c {
                '\r' => {
                    screen.col = 0;
                    screen.wrap_pending = false;
                }
                '\n' => screen.move_to(screen.row + 1),
                '\x1b' => {
                    assert_eq!(chars.next(), Some('['), "unexpected escape sequence");
                    let mut params = String::new();
                    let command = loop {
                        match chars.next() {
                            Some(c) if c.is_ascii_digit() || c == ';' || c == '?' => params.push(c),
                            Some(c) => break c,
                            None => panic!("escape sequence cut short"),
                        }
                    };
                    screen.control(&params, command);
                }
                c if c.is_control() => panic!("unexpected control character {c:?}"),
                c => screen.put(c),
            }
        }
        screen
            .lines
            .iter()
            .map(|l| l.iter().collect::<String>().trim_end().to_string())
            .collect()
    }

    fn move_to(&mut self, row: usize) {
        self.row = row;
        while self.lines.len() <= row {
            self.lines.push(Vec::new());
        }
        self.wrap_pending = false;
    }

    fn control(&mut self, params: &str, command: char) {
        let n = params.parse::<usize>().unwrap_or(1).max(1);
        match (command, params) {
            ('A', _) => self.move_to(self.row.saturating_sub(n)),
            ('B', _) => self.move_to(self.row + n),
            ('K', "" | "0") => self.lines[self.row].truncate(self.col),
            ('K', "2") => self.lines[self.row].clear(),
            ('G', _) => {
                self.col = n - 1;
                self.wrap_pending = false;
            }
            ('m', _) => {}
            ('h' | 'l', "?25") => {}
            _ => panic!("unexpected control sequence ESC[{params}{command}"),
        }
    }

    fn put(&mut self, c: char) {
        if self.wrap_pending {
            self.move_to(self.row + 1);
            self.col = 0;
        }
        let line = &mut self.lines[self.row];
        while line.len() <= self.col {
            line.push(' ');
        }
        line[self.col] = c;
        if self.col + 1 == self.width {
            self.wrap_pending = true;
        } else {
            self.col += 1;
        }
    }
}

/// The non-blank lines of a replayed screen.
fn visible(bytes: &[u8]) -> Vec<String> {
    Screen::replay(bytes, TTY_WIDTH)
        .into_iter()
        .filter(|l| !l.trim().is_empty())
        .collect()
}

/// The pieces of terminal output between carriage returns, line feeds and escapes: each
/// drawn bar line is one of them.
fn frames(bytes: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(bytes)
        .split(['\r', '\n', '\x1b'])
        .map(str::to_string)
        .collect()
}

/// Whether a frame is a drawn transfer bar: `NAME [===>   ] DONE/TOTAL RATE/s eta …`.
fn is_bar(frame: &str) -> bool {
    let (Some(open), Some(close)) = (frame.find(" ["), frame.find("] ")) else {
        return false;
    };
    open < close && frame[close..].contains("B/s") && frame.contains(" eta ")
}

/// Bytes of a human size such as `206 B`, `1.50 MiB`.
fn human_bytes(number: &str, unit: &str) -> f64 {
    let n: f64 = number
        .parse()
        .unwrap_or_else(|_| panic!("not a number: {number}"));
    let scale = match unit {
        "B" => 1.0,
        "KiB" => 1024.0,
        "MiB" => 1024.0 * 1024.0,
        "GiB" => 1024.0 * 1024.0 * 1024.0,
        _ => panic!("unknown unit {unit}"),
    };
    n * scale
}

/// (done, total) bytes of a bar frame: `… ] 1.50 MiB/3.00 MiB …`.
fn bar_bytes(frame: &str) -> (f64, f64) {
    let after = &frame[frame.find("] ").expect("a bar") + 2..];
    let (done, rest) = after.split_once('/').expect("DONE/TOTAL");
    let done: Vec<&str> = done.split_whitespace().collect();
    let total: Vec<&str> = rest.split_whitespace().take(2).collect();
    (
        human_bytes(done[0], done[1]),
        human_bytes(total[0], total[1]),
    )
}

/// A registry holding `tools/big:1`, a one-layer artifact of 2 MiB, behind a [`slow_proxy`].
struct BigArtifact {
    _registry: Registry,
    proxy: ScriptedServer,
    bytes: Vec<u8>,
}

impl BigArtifact {
    fn new(s: &Sandbox) -> BigArtifact {
        let registry = Registry::start();
        let bytes = pseudo_random_bytes(2 << 20, 7);
        let file = s.work("big.bin");
        fs::write(&file, &bytes).unwrap();
        s.run(&[
            "push",
            path_str(&file),
            &format!("{}/tools/big:1", registry.host()),
        ])
        .success();
        let proxy = slow_proxy(&registry);
        BigArtifact {
            _registry: registry,
            proxy,
            bytes,
        }
    }

    /// The artifact's reference through the proxy.
    fn reference(&self) -> String {
        format!("{}/tools/big:1", self.proxy.host())
    }
}

#[test]
fn terminal_download_draws_a_bar_and_clears_it() {
    let s = Sandbox::new();
    let big = BigArtifact::new(&s);
    let out = s.work("out.bin");
    let (code, screen) = s.run_on_terminal(&["pull", &big.reference(), "-o", path_str(&out)]);
    let shown = String::from_utf8_lossy(&screen).into_owned();
    assert_eq!(code, 0, "{shown:?}");
    assert_eq!(fs::read(&out).unwrap(), big.bytes, "pulled file");

    let name = short_name(&big.bytes);
    let bars: Vec<String> = frames(&screen).into_iter().filter(|f| is_bar(f)).collect();
    assert!(
        bars.iter()
            .any(|b| b.contains(&name) && b.contains("2.00 MiB")),
        "no bar for {name}: {shown:?}"
    );
    // Mid-transfer (during the pause) the bar is partly filled.
    assert!(
        bars.iter()
            .any(|b| b.contains("=>") && !b.contains(" 0 B/")),
        "no partly filled bar: {bars:#?}"
    );
    assert!(
        shown.contains("\x1b[2K"),
        "the bar is never erased: {shown:?}"
    );

    let lines = visible(&screen);
    assert_eq!(lines.len(), 2, "final screen: {lines:#?}");
    assert_eq!(lines[0], format!("downloaded {name} (2.00 MiB)"));
    assert!(
        lines[1].starts_with(&format!("wrote {}", out.display())),
        "{lines:#?}"
    );
    assert!(lines.iter().all(|l| !is_bar(l)), "{lines:#?}");
}

#[test]
fn terminal_parallel_installs_draw_bars_and_leave_only_lines() {
    let s = Sandbox::new();
    let registry = Registry::start();
    let a = publish(&s, &registry, "3.11.4", 1 << 20, false);
    let b = publish(&s, &registry, "3.12.1", 1 << 20, false);
    let proxy = slow_proxy(&registry);
    let (code, screen) = s.run_on_terminal(&[
        "sdk",
        "install",
        "python",
        "3.11",
        "3.12",
        "--registry",
        &proxy.url(),
        "--root",
        path_str(&s.root()),
    ]);
    let shown = String::from_utf8_lossy(&screen).into_owned();
    assert_eq!(code, 0, "{shown:?}");
    let frames = frames(&screen);
    for tarball in [&a, &b] {
        let name = short_name(tarball);
        assert!(
            frames.iter().any(|f| is_bar(f) && f.contains(&name)),
            "no bar for {name}: {shown:?}"
        );
    }
    assert!(
        frames.iter().any(|f| is_bar(f) && f.contains("total")),
        "two transfers at once draw a total bar: {shown:?}"
    );

    let lines: BTreeSet<String> = visible(&screen).into_iter().collect();
    let root = s.root();
    let expected: BTreeSet<String> = [
        format!("downloaded {} ({})", short_name(&a), human(a.len())),
        format!("downloaded {} ({})", short_name(&b), human(b.len())),
        format!(
            "installed python 3.11.4 in {}/python/3.11.4",
            root.display()
        ),
        format!(
            "installed python 3.12.1 in {}/python/3.12.1",
            root.display()
        ),
        format!("{}/python/3.11.4", root.display()),
        format!("{}/python/3.12.1", root.display()),
    ]
    .into_iter()
    .collect();
    assert_eq!(lines, expected, "final screen");
}

/// indicatif's `HumanBytes` of `n`.
fn human(n: usize) -> String {
    let n = n as f64;
    if n < 1024.0 {
        format!("{n} B")
    } else if n < 1024.0 * 1024.0 {
        format!("{:.2} KiB", n / 1024.0)
    } else {
        format!("{:.2} MiB", n / 1024.0 / 1024.0)
    }
}

#[test]
fn terminal_total_bar_never_exceeds_its_length() {
    let s = Sandbox::new();
    let registry = Registry::start();
    publish(&s, &registry, "3.11.4", 1 << 20, false);
    publish(&s, &registry, "3.12.1", 1 << 20, false);
    let proxy = slow_proxy(&registry);
    let (code, screen) = s.run_on_terminal(&[
        "sdk",
        "install",
        "python",
        "3.11",
        "3.12",
        "--registry",
        &proxy.url(),
        "--root",
        path_str(&s.root()),
    ]);
    assert_eq!(code, 0);
    let totals: Vec<(f64, f64)> = frames(&screen)
        .iter()
        .filter(|f| is_bar(f) && f.contains("total"))
        .map(|f| bar_bytes(f))
        .collect();
    assert!(!totals.is_empty(), "no total bar drawn");
    for (done, total) in &totals {
        assert!(done <= total, "total bar shows {done} of {total} bytes");
    }
    let (_, last) = totals.last().unwrap();
    // Both ~1 MiB transfers count (the display rounds to two decimals, so "2.00 MiB" can
    // stand for slightly more than 2 MiB): one alone would show about 1 MiB.
    assert!(*last >= 2.0 * 1024.0 * 1024.0, "total length {last}");
}

#[test]
fn plain_progress_prints_one_line_per_blob_and_no_escapes() {
    let s = Sandbox::new();
    let registry = Registry::start();
    let a = publish(&s, &registry, "3.11.4", 300 << 10, false);
    let b = publish(&s, &registry, "3.12.1", 300 << 10, false);
    let url = registry.url();
    let root = s.root();
    let run = s
        .run(&[
            "sdk",
            "install",
            "python",
            "3.11",
            "3.12",
            "--registry",
            &url,
            "--root",
            path_str(&root),
        ])
        .success();
    assert!(
        !run.stderr.contains('\r') && !run.stderr.contains('\x1b'),
        "{:?}",
        run.stderr
    );
    let mut lines: Vec<&str> = run.stderr.lines().collect();
    lines.sort();
    let mut expected = vec![
        format!("downloaded {} ({})", short_name(&a), human(a.len())),
        format!("downloaded {} ({})", short_name(&b), human(b.len())),
        format!(
            "installed python 3.11.4 in {}/python/3.11.4",
            root.display()
        ),
        format!(
            "installed python 3.12.1 in {}/python/3.12.1",
            root.display()
        ),
    ];
    expected.sort();
    assert_eq!(lines, expected, "stderr");

    // A single download: one line for the blob, one for the result.
    let big = BigArtifact::new(&s);
    let out = s.work("big.out");
    let run = s
        .run(&["pull", &big.reference(), "-o", path_str(&out)])
        .success();
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{lines:#?}");
    assert_eq!(
        lines[0],
        format!("downloaded {} (2.00 MiB)", short_name(&big.bytes))
    );
    assert!(lines[1].starts_with("wrote "), "{lines:#?}");
    assert!(!run.stderr.contains('\r') && !run.stderr.contains('\x1b'));
    // --progress tty on a pipe draws nothing either.
    let run = s
        .run(&[
            "pull",
            &big.reference(),
            "-o",
            path_str(&out),
            "--progress",
            "tty",
        ])
        .success();
    assert!(!run.stderr.contains('\x1b') && !run.stderr.contains('['));
}

#[test]
fn plain_progress_words_uploads_as_uploads() {
    let s = Sandbox::new();
    let registry = Registry::start();
    let bytes = pseudo_random_bytes(100 << 10, 3);
    fs::write(s.work("tool.bin"), &bytes).unwrap();
    let run = s
        .run(&[
            "push",
            "tool.bin",
            &format!("{}/tools/tool:1", registry.host()),
        ])
        .success();
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert!(
        lines.iter().all(|l| !l.starts_with("downloaded")),
        "a push downloads nothing: {lines:#?}"
    );
    let want = format!("uploaded {} ({})", short_name(&bytes), human(bytes.len()));
    assert!(lines.contains(&want.as_str()), "no {want:?} in {lines:#?}");
}

#[test]
fn a_push_that_starts_over_reports_one_whole_upload() {
    let s = Sandbox::new();
    let registry = Registry::start();
    let bytes = pseudo_random_bytes(100 << 10, 4);
    fs::write(s.work("g.bin"), &bytes).unwrap();
    // The first PUT of the layer reaches the registry with half its body, and fails.
    let upstream = registry.url();
    let cuts = AtomicUsize::new(0);
    let layer_len = bytes.len();
    let proxy = ScriptedServer::start(move |req| {
        let layer_put = req.method == "PUT"
            && req.path().contains("/blobs/uploads/")
            && req.body.len() == layer_len;
        if layer_put && cuts.fetch_add(1, Ordering::SeqCst) == 0 {
            forward_cut(req, &upstream, layer_len / 2)
        } else {
            forward(req, &upstream)
        }
    });
    let run = s
        .run(&["push", "g.bin", &format!("{}/t/retry:v1", proxy.host())])
        .success();
    // The failed attempt uploaded nothing, so it gets no line of its own.
    let layer = format!("uploaded {} ", short_name(&bytes));
    let uploaded: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.starts_with(&layer))
        .collect();
    let want = format!("uploaded {} ({})", short_name(&bytes), human(bytes.len()));
    assert_eq!(uploaded, [want.as_str()], "{}", run.stderr);
}

#[test]
fn quiet_prints_nothing_on_stderr_on_success() {
    let s = Sandbox::new();
    let registry = Registry::start();
    publish(&s, &registry, "3.11.4", 300 << 10, true);
    let url = registry.url();
    let root = s.root();
    let run = s
        .run(&[
            "sdk",
            "install",
            "python",
            "3.11",
            "-q",
            "--registry",
            &url,
            "--root",
            path_str(&root),
        ])
        .success();
    assert_eq!(run.stderr, "");
    assert_eq!(run.stdout, format!("{}/python/3.11.4\n", root.display()));

    let big = BigArtifact::new(&s);
    let out = s.work("big.out");
    let run = s
        .run(&["pull", &big.reference(), "-o", path_str(&out), "-q"])
        .success();
    assert_eq!((run.stdout.as_str(), run.stderr.as_str()), ("", ""));
    assert_eq!(fs::read(&out).unwrap(), big.bytes);

    // On a terminal too: no bar, no line.
    fs::remove_file(&out).unwrap();
    let (code, screen) =
        s.run_on_terminal(&["pull", &big.reference(), "-o", path_str(&out), "--quiet"]);
    assert_eq!(code, 0, "{:?}", String::from_utf8_lossy(&screen));
    assert!(
        screen.is_empty(),
        "-q on a terminal wrote {:?}",
        String::from_utf8_lossy(&screen)
    );
    assert_eq!(fs::read(&out).unwrap(), big.bytes);

    // An error still shows with -q.
    let run = s.run(&["digest", "UPPER/case", "-q"]).expect_code(2);
    assert!(
        run.stderr.starts_with("error: invalid reference"),
        "{}",
        run.stderr
    );
}

#[test]
fn progress_flag_overrides_the_terminal() {
    let s = Sandbox::new();
    let big = BigArtifact::new(&s);
    let out = s.work("big.out");
    let name = short_name(&big.bytes);

    let (code, screen) = s.run_on_terminal(&[
        "pull",
        &big.reference(),
        "-o",
        path_str(&out),
        "--progress",
        "none",
    ]);
    let shown = String::from_utf8_lossy(&screen).into_owned();
    assert_eq!(code, 0, "{shown:?}");
    assert!(!shown.contains('\x1b'), "{shown:?}");
    let lines = visible(&screen);
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert!(lines[0].starts_with("wrote "), "{lines:#?}");

    let (code, screen) = s.run_on_terminal(&[
        "pull",
        &big.reference(),
        "-o",
        path_str(&out),
        "--progress",
        "plain",
    ]);
    let shown = String::from_utf8_lossy(&screen).into_owned();
    assert_eq!(code, 0, "{shown:?}");
    assert!(!shown.contains('\x1b'), "{shown:?}");
    let lines = visible(&screen);
    assert_eq!(
        lines[0],
        format!("downloaded {name} (2.00 MiB)"),
        "{lines:#?}"
    );
    assert_eq!(lines.len(), 2, "{lines:#?}");
}

// ---------------------------------------------------------------------------------------
// cache info | prune | clean
// ---------------------------------------------------------------------------------------

/// The `files` and `bytes` of `area` in `cache info --json`.
fn area(info: &Value, name: &str) -> (u64, u64) {
    let area = info["areas"]
        .as_array()
        .expect("areas")
        .iter()
        .find(|a| a["name"] == name)
        .unwrap_or_else(|| panic!("no area {name} in {info}"));
    (
        area["files"].as_u64().unwrap(),
        area["bytes"].as_u64().unwrap(),
    )
}

fn total_size(files: &[PathBuf]) -> u64 {
    files.iter().map(|f| fs::metadata(f).unwrap().len()).sum()
}

#[test]
fn cache_info_prune_and_clean_after_a_real_install() {
    let s = Sandbox::new();
    let registry = Registry::start();
    let a = publish(&s, &registry, "3.11.4", 64 << 10, false);
    let b = publish(&s, &registry, "3.12.1", 64 << 10, true);
    let url = registry.url();
    let root = s.root();
    let install = |force: bool| {
        let mut args = vec![
            "sdk",
            "install",
            "python",
            "3.11",
            "3.12",
            "--registry",
            &url,
            "--root",
            path_str(&root),
        ];
        if force {
            args.push("--force");
        }
        s.run(&args).success();
    };
    install(false);
    let cache = s.cache();
    fs::write(cache.join("keep-me.txt"), b"not ocisdk's").unwrap();
    fs::create_dir(cache.join("other")).unwrap();
    fs::write(cache.join("other/file"), b"not ocisdk's either").unwrap();

    // An install's lock files stay: removing one a process has open would let two hold it.
    let is_lock = |f: &PathBuf| {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        name.starts_with('.') && name.ends_with(".lock")
    };
    let (locks, tarballs): (Vec<PathBuf>, Vec<PathBuf>) =
        files_under(&cache.join("sdk-tarballs-v1"))
            .into_iter()
            .partition(is_lock);
    assert_eq!(locks.len(), 2, "{locks:?}");
    let sizes: BTreeSet<u64> = tarballs
        .iter()
        .map(|f| fs::metadata(f).unwrap().len())
        .collect();
    assert!(
        sizes.contains(&(a.len() as u64)) && sizes.contains(&(b.len() as u64)),
        "both tarballs are cached: {tarballs:#?}"
    );
    let ocisdk_files: Vec<PathBuf> = ["partial-v1", "sdk-tarballs-v1", "sdk-records-v1"]
        .iter()
        .flat_map(|area| files_under(&cache.join(area)))
        .filter(|f| !is_lock(f))
        .collect();
    let ocisdk_bytes = total_size(&ocisdk_files);

    let info = s.run(&["cache", "info", "--json"]).success().json();
    assert_eq!(info["dir"], path_str(&cache));
    // Lock files are no cached content: not counted.
    assert_eq!(
        area(&info, "sdk-tarballs-v1"),
        (tarballs.len() as u64, total_size(&tarballs))
    );
    assert_eq!(info["bytes"], ocisdk_bytes);
    assert_eq!(info["other"], serde_json::json!(["keep-me.txt", "other"]));

    let text = s.run(&["cache", "info"]).success().stdout;
    assert!(
        text.starts_with(&format!("{} (", cache.display())),
        "{text}"
    );
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("sdk-tarballs-v1"))
        .unwrap_or_else(|| panic!("no sdk-tarballs-v1 line: {text}"));
    assert!(
        line.contains(&format!(" {} files", tarballs.len())),
        "{line}"
    );
    assert!(text.contains("keep-me.txt"), "{text}");
    assert!(text.contains("(not ocisdk's: left alone)"), "{text}");

    // Everything is younger than the default 30 days.
    let removed = s.run(&["cache", "prune", "--json"]).success().json();
    assert_eq!(removed["files"], 0, "{removed}");
    let mut all = [tarballs.clone(), locks.clone()].concat();
    all.sort();
    assert_eq!(files_under(&cache.join("sdk-tarballs-v1")), all);

    // --older-than 0: everything older than now.
    let removed = s
        .run(&["cache", "prune", "--older-than", "0", "--json"])
        .success()
        .json();
    assert_eq!(removed["files"], ocisdk_files.len() as u64, "{removed}");
    assert_eq!(removed["bytes"], ocisdk_bytes, "{removed}");
    assert_eq!(removed["in_use"], 0);
    assert_eq!(files_under(&cache.join("sdk-tarballs-v1")), locks);
    // Only the lock files are left, and they used to be reported as files (`0 B in 2
    // files`), as if prune had left something behind.
    let info = s.run(&["cache", "info", "--json"]).success().json();
    for name in ["partial-v1", "sdk-tarballs-v1", "sdk-records-v1"] {
        assert_eq!(area(&info, name), (0, 0), "{name}: {info}");
    }
    assert_eq!(info["bytes"], 0);
    let text = s.run(&["cache", "info"]).success().stdout;
    let areas: Vec<&str> = text.lines().skip(1).take(3).collect();
    assert!(
        areas.iter().all(|l| l.contains(" 0 B in     0 files")),
        "{text}"
    );

    // Refill, then clean: only ocisdk's areas go.
    install(true);
    let refilled: Vec<PathBuf> = ["partial-v1", "sdk-tarballs-v1", "sdk-records-v1"]
        .iter()
        .flat_map(|area| files_under(&cache.join(area)))
        .filter(|f| !is_lock(f))
        .collect();
    assert!(!refilled.is_empty());
    let text = s.run(&["cache", "clean"]).success().stdout;
    assert!(
        text.starts_with(&format!("removed {} files, ", refilled.len())),
        "{text}"
    );
    assert_eq!(
        fs::read(cache.join("keep-me.txt")).unwrap(),
        b"not ocisdk's"
    );
    assert_eq!(
        fs::read(cache.join("other/file")).unwrap(),
        b"not ocisdk's either"
    );
    assert_eq!(files_under(&cache.join("sdk-tarballs-v1")), locks);
    // Installs are not the cache's.
    assert!(root.join("python/3.11.4/bin/python").is_file());
    let removed = s.run(&["cache", "clean", "--json"]).success().json();
    assert_eq!(
        removed,
        serde_json::json!({"files": 0, "bytes": 0, "in_use": 0})
    );
}

/// `cache info` says when the cache folder, or an area in it, is one another user could
/// change (the check prune and clean make), naming the folder, why, and the way out, and
/// still counts what is there, with exit code 0: it only reads. `--json` says it in
/// `trusted`; `OCISDK_SAFE_FOLDERS` vouches for the folder.
#[test]
fn cache_info_warns_about_a_cache_folder_others_may_write() {
    use std::os::unix::fs::PermissionsExt;
    let s = Sandbox::new();
    let cache = s.cache();
    let partials = cache.join("partial-v1");
    fs::create_dir_all(&partials).unwrap();
    fs::write(partials.join("sha256-aa.part"), b"partial").unwrap();
    let set_mode = |path: &Path, mode: u32| {
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    };

    let info = s.run(&["cache", "info", "--json"]).success();
    assert_eq!(info.json()["trusted"], true, "{}", info.stdout);
    assert!(
        !info.stderr.contains("cannot be trusted"),
        "{}",
        info.stderr
    );

    // Group write alone depends on the group (the owner's private one is accepted).
    for (folder, mode) in [(&cache, 0o777), (&partials, 0o757)] {
        set_mode(folder, mode);
        let warning = format!(
            "the cache folder {} cannot be trusted: {} is owned by uid",
            cache.display(),
            folder.display()
        );
        let text = s.run(&["cache", "info"]).success();
        assert!(text.stderr.contains(&warning), "{}", text.stderr);
        assert!(
            text.stderr.contains("OCISDK_SAFE_FOLDERS"),
            "{}",
            text.stderr
        );
        assert!(
            text.stdout
                .contains("partial-v1              7 B in     1 files"),
            "{}",
            text.stdout
        );
        let json = s.run(&["cache", "info", "--json"]).success();
        assert!(json.stderr.contains(&warning), "{}", json.stderr);
        assert_eq!(json.json()["trusted"], false, "{}", json.stdout);
        assert_eq!(area(&json.json(), "partial-v1"), (1, 7));
        set_mode(folder, 0o755);
    }

    set_mode(&cache, 0o777);
    let mut cmd = s.command(&["cache", "info", "--json"]);
    cmd.env("OCISDK_SAFE_FOLDERS", s.dir.path());
    let vouched = Run::from_output(cmd.output().unwrap()).success();
    assert_eq!(vouched.json()["trusted"], true, "{}", vouched.stdout);
    assert!(
        !vouched.stderr.contains("cannot be trusted"),
        "{}",
        vouched.stderr
    );
}

/// `cache prune` and `clean` refuse a cache folder others may write, exit 2, and remove
/// nothing: run as root, they could be made to remove files where another user chooses by
/// a folder swapped for a symlink between the look and the removal. `OCISDK_SAFE_FOLDERS`
/// vouches for it.
#[test]
fn cache_clean_refuses_a_cache_folder_others_may_write() {
    let s = Sandbox::new();
    let cache = s.cache();
    let partial = cache.join("partial-v1").join("sha256-aa.part");
    fs::create_dir_all(partial.parent().unwrap()).unwrap();
    fs::write(&partial, b"partial").unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&cache, fs::Permissions::from_mode(0o777)).unwrap();
    for args in [
        &["cache", "clean"][..],
        &["cache", "prune", "--older-than", "0"],
    ] {
        let run = s.run(args).expect_code(2);
        assert!(
            run.stderr.contains(&format!(
                "the cache folder {} cannot be trusted",
                cache.display()
            )),
            "{}",
            run.stderr
        );
        assert!(run.stderr.contains("OCISDK_SAFE_FOLDERS"), "{}", run.stderr);
        assert!(partial.exists(), "{args:?} removed a file");
    }
    let mut cmd = s.command(&["cache", "clean", "--json"]);
    cmd.env("OCISDK_SAFE_FOLDERS", s.dir.path());
    let run = Run::from_output(cmd.output().unwrap()).success();
    assert_eq!(run.json()["files"], 1, "{}", run.stdout);
    assert!(!partial.exists());
}
