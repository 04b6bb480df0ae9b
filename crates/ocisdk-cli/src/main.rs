//! The `ocisdk` command: a thin layer over the `ocisdk` library. Results go to stdout,
//! messages to stderr; the exit code says what kind of failure happened.

mod cli;
mod commands;
mod config;
mod output;
mod progress;
mod settings;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::Cli;

fn main() -> ExitCode {
    keep_freed_memory();
    file_size_limit_as_error();
    let mut cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return argument_error(e),
    };
    init_tracing(cli.global.verbose, cli.global.quiet);
    cli.global.config = match config::Loaded::from_environment() {
        Ok(loaded) => loaded,
        Err(e) => {
            output::report_error(&e, cli.global.json);
            return ExitCode::from(output::exit_code(&e));
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            output::report_error(
                &anyhow::Error::new(e).context("cannot start the async runtime"),
                cli.global.json,
            );
            return ExitCode::from(1);
        }
    };
    let json = cli.global.json;
    let result = runtime.block_on(async {
        tokio::select! {
            result = commands::run(cli) => result,
            _ = tokio::signal::ctrl_c() => Err(output::Interrupted.into()),
        }
    });
    // Dropping the runtime cancels what is still running: temp files are removed by their
    // owners' destructors.
    drop(runtime);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            output::report_error(&err, json);
            ExitCode::from(output::exit_code(&err))
        }
    }
}

fn init_tracing(verbose: u8, quiet: bool) {
    use tracing_subscriber::EnvFilter;
    let default = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, _) => "debug",
    };
    let filter = EnvFilter::try_from_env("RUST_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    // Colours only for a person at a terminal: a log file or a CI capture gets plain text.
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_writer(std::io::stderr)
        .with_target(false)
        .without_time()
        .init();
}

/// clap's own output (help, version, argument errors) as clap prints it, except that an
/// argument error with `--json` on the command line is reported as JSON on stderr, like
/// every other error, so a script reading JSON never has to parse clap's text.
fn argument_error(e: clap::Error) -> ExitCode {
    let wants_json = std::env::args_os()
        .skip(1)
        .take_while(|a| a != "--")
        .any(|a| a == "--json");
    if !wants_json || !e.use_stderr() {
        e.exit();
    }
    let text = e.render().to_string();
    let (what, usage) = text.split_once("\n\nUsage:").unwrap_or((&text, ""));
    let message = what
        .trim_start_matches("error: ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let usage = usage.lines().next().unwrap_or("").trim();
    let hint = if usage.is_empty() {
        "see --help".to_string()
    } else {
        format!("usage: {usage} (see --help)")
    };
    let err = anyhow::Error::new(ocisdk::Error::InvalidInput(message)).context(output::Hint(hint));
    output::report_error(&err, true);
    ExitCode::from(2)
}

/// A download passes batches of socket buffers from the socket thread to the writer and
/// hasher threads, which free them. glibc gave such blocks back to the kernel (mapped on
/// their own, or trimmed off the heap top) and the next ones faulted fresh pages in: 24,000
/// to 39,000 page faults per GiB, now ~1,600. Peak RSS measured the same (13.8-15.3 MiB
/// for 100 MiB and 1 GiB blobs, against 13.7-14.8 before): the same few batches are live.
/// The library leaves the allocator alone; this is the program's choice.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn keep_freed_memory() {
    // Blocks below this come from the heap and are reused; larger ones (rare: the direct
    // writer's buffer) are still mapped and unmapped on their own.
    const FROM_HEAP_BELOW: libc::c_int = 512 * 1024;
    // Free memory at the heap's top stays mapped up to this much.
    const KEEP: libc::c_int = 64 * 1024 * 1024;
    // SAFETY: mallopt only sets glibc's allocator parameters, before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, FROM_HEAP_BELOW);
        libc::mallopt(libc::M_TRIM_THRESHOLD, KEEP);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn keep_freed_memory() {}

/// A write past the file-size limit (`ulimit -f`, as a build sandbox may set) raises
/// SIGXFSZ, whose default action kills the process mid-write: no error message, and the
/// temporary files and partial downloads its destructors would remove are left behind.
/// Ignored, the write fails with EFBIG instead ("File too large"), which is reported and
/// cleaned up like a full disk.
#[cfg(unix)]
fn file_size_limit_as_error() {
    // SAFETY: sets the disposition of one signal to "ignore", before any thread starts;
    // no handler of ours runs.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
}

#[cfg(not(unix))]
fn file_size_limit_as_error() {}
