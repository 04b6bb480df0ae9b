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
    let mut cli = Cli::parse();
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
            result = commands::run(cli) => result.map(|()| 0u8),
            _ = tokio::signal::ctrl_c() => Ok(130),
        }
    });
    // Dropping the runtime cancels what is still running: temp files are removed by their
    // owners' destructors.
    drop(runtime);
    match result {
        Ok(code) => ExitCode::from(code),
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
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .without_time()
        .init();
}
