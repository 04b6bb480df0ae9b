//! One small function per command, each a wrapper over a library call.

mod auth;
mod copy;
mod image;
mod install;
mod sdk;

use std::path::PathBuf;
use std::time::Duration;

use ocisdk::{Client, Error, Platform, Reference};

use crate::cli::{Cli, Command, GlobalArgs};
use crate::progress::{CliProgress, ProgressMode};
use ocisdk::Reporter;

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let g = &cli.global;
    let progress = CliProgress::new(ProgressMode::choose(g.progress, g.quiet));
    let reporter: &dyn Reporter = &progress;
    match &cli.command {
        Command::Tags { repo } => image::tags(g, repo).await,
        Command::Manifest {
            reference,
            platform,
        } => image::manifest(g, reference, platform.as_deref()).await,
        Command::Digest { reference } => image::digest(g, reference).await,
        Command::Config {
            reference,
            platform,
        } => image::config(g, reference, platform.as_deref()).await,
        Command::Blob { reference, output } => image::blob(g, reference, output, reporter).await,
        Command::Pull {
            reference,
            output,
            platform,
            layer,
        } => image::pull(g, reference, output, platform.as_deref(), *layer, reporter).await,
        Command::Push {
            file,
            reference,
            label,
            annotation,
            artifact_type,
        } => {
            image::push(
                g,
                file,
                reference,
                label,
                annotation,
                artifact_type.as_deref(),
            )
            .await
        }
        Command::Login { registry } => auth::login(g, registry).await,
        Command::Logout { registry } => auth::logout(g, registry).await,
        Command::Copy {
            src,
            dst,
            platform,
            jobs,
            dry_run,
        } => {
            copy::copy(
                g,
                src,
                dst,
                platform.as_deref(),
                usize::from(*jobs),
                *dry_run,
            )
            .await
        }
        Command::Sdk(sdk) => sdk::run(g, sdk, reporter).await,
    }
}

fn client_with(g: &GlobalArgs, plain_http: bool) -> anyhow::Result<Client> {
    Ok(builder(g, plain_http)
        .credentials(auth::credential_source(g)?)
        .build()?)
}

/// A client builder with the global flags applied, without credentials.
fn builder(g: &GlobalArgs, plain_http: bool) -> ocisdk::ClientBuilder {
    let retry = ocisdk::registry::RetryPolicy {
        max_attempts: g.retries.saturating_add(1),
        max_wait: Duration::from_secs(g.retry_max_wait),
        ..ocisdk::registry::RetryPolicy::default()
    };
    Client::builder()
        .plain_http(g.plain_http || plain_http)
        .insecure(g.insecure)
        .retry(retry)
        .stall_timeout(Duration::from_secs(g.stall_timeout.max(1)))
        .cache_dir(cache_dir())
        .parallel_chunks(g.chunks)
        .mirrors(g.mirror.iter().cloned())
}

/// `OCISDK_CACHE_DIR`, else `$XDG_CACHE_HOME/ocisdk`, else `~/.cache/ocisdk`.
pub(crate) fn cache_dir() -> PathBuf {
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    env("OCISDK_CACHE_DIR")
        .or_else(|| env("XDG_CACHE_HOME").map(|p| p.join("ocisdk")))
        .or_else(|| env("HOME").map(|p| p.join(".cache").join("ocisdk")))
        .unwrap_or_else(|| std::env::temp_dir().join("ocisdk-cache"))
}

fn client(g: &GlobalArgs) -> anyhow::Result<Client> {
    client_with(g, false)
}

fn parse_reference(text: &str) -> anyhow::Result<Reference> {
    Ok(text.parse::<Reference>().map_err(Error::from)?)
}

fn parse_platform(text: Option<&str>) -> anyhow::Result<Option<Platform>> {
    text.map(|t| t.parse::<Platform>().map_err(Error::InvalidInput))
        .transpose()
        .map_err(Into::into)
}
