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
//! replay what the terminal received through a small screen model ([`progress::Screen`]) to check
//! what is left on screen at the end. Downloads go through a [`ScriptedServer`] in front of
//! the registry that pauses each large blob body for a moment, so that bars are drawn.
//!
//! Every run is hermetic: `HOME`, `XDG_CONFIG_HOME`, `XDG_CACHE_HOME` and `OCISDK_CACHE_DIR`
//! point into a private temp folder and every variable the CLI reads is removed.
//!
//! One module per topic: `golden` (help texts and error messages against golden files),
//! `help` (help for every command, completions, man pages), `progress` (bars on a terminal,
//! plain lines, `-q`, `--progress`) and `cache` (`cache info`, `prune` and `clean`). This
//! file keeps the harness and the fixtures they share.

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

mod cache;
mod golden;
mod help;
mod progress;

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
