//! One small function per command, each a wrapper over a library call.

mod image;
mod install;
mod sdk;

use std::path::PathBuf;
use std::time::Duration;

use ocisdk::{Client, Error, Platform, Reference};

use crate::cli::{Cli, Command, GlobalArgs};

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let g = &cli.global;
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
        Command::Blob { reference, output } => image::blob(g, reference, output).await,
        Command::Pull {
            reference,
            output,
            platform,
            layer,
        } => image::pull(g, reference, output, platform.as_deref(), *layer).await,
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
        Command::Sdk(sdk) => sdk::run(g, sdk).await,
    }
}

fn client_with(g: &GlobalArgs, plain_http: bool) -> anyhow::Result<Client> {
    let retry = ocisdk::registry::RetryPolicy {
        max_attempts: g.retries.saturating_add(1),
        max_wait: Duration::from_secs(g.retry_max_wait),
        ..ocisdk::registry::RetryPolicy::default()
    };
    Ok(Client::builder()
        .plain_http(g.plain_http || plain_http)
        .insecure(g.insecure)
        .retry(retry)
        .stall_timeout(Duration::from_secs(g.stall_timeout.max(1)))
        .cache_dir(cache_dir())
        .build()?)
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
