//! One small function per command, each a wrapper over a library call.

mod auth;
mod copy;
mod image;
mod install;
mod meta;
mod sdk;
mod suggest;

use std::path::PathBuf;
use std::time::Duration;

use ocisdk::{Client, Error, Platform, Reference, RegistryOptions};

use crate::cli::{Cli, Command, GlobalArgs};
use crate::progress::{CliProgress, ProgressMode};
use crate::settings;
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
                reporter,
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
                jobs.map(usize::from),
                *dry_run,
            )
            .await
        }
        Command::Sdk(sdk) => sdk::run(g, sdk, reporter).await,
        Command::Cache { action } => meta::cache(g, action),
        Command::ConfigShow => meta::config_show(g),
        Command::Completions { shell } => meta::completions(*shell),
        Command::Manpages { dir } => meta::manpages(g, dir),
    }
}

/// A client with the global settings and credentials: `plain_http_hosts` are the registries
/// named with an `http://` URL, which that scheme puts on plain HTTP (those alone);
/// `--username` and `OCISDK_USERNAME` are credentials for the registry `given_to` alone,
/// when there is one (see [`auth::credential_source`]).
fn client_for(
    g: &GlobalArgs,
    plain_http_hosts: &[&str],
    given_to: Option<&str>,
) -> anyhow::Result<Client> {
    Ok(builder(g, plain_http_hosts)?
        .credentials(auth::credential_source(g, given_to)?)
        .build()?)
}

/// A client builder with the global settings applied, without credentials.
fn builder(g: &GlobalArgs, plain_http_hosts: &[&str]) -> anyhow::Result<ocisdk::ClientBuilder> {
    let n = settings::network(g, None)?;
    let retry = ocisdk::registry::RetryPolicy {
        max_attempts: n.retries.value.saturating_add(1),
        max_wait: Duration::from_secs(n.retry_max_wait.value),
        ..ocisdk::registry::RetryPolicy::default()
    };
    let mut builder = Client::builder()
        .plain_http(g.plain_http)
        .insecure(g.insecure)
        .retry(retry)
        .stall_timeout(Duration::from_secs(n.stall_timeout.value.max(1)))
        .cache_dir(n.cache_dir.value)
        .safe_folders(safe_folders(g))
        .parallel_chunks(n.chunks.value)
        .mirrors(n.mirrors.value);
    if let Some(ca) = &g.ca_file {
        builder = builder.ca_file(ca);
    }
    let configured = &g.config.file.registries;
    let hosts = configured
        .keys()
        .map(String::as_str)
        .chain(plain_http_hosts.iter().copied())
        .collect::<std::collections::BTreeSet<_>>();
    for host in hosts {
        let file = configured.get(host);
        let options = RegistryOptions {
            plain_http: plain_http_hosts.contains(&host)
                || file.and_then(|o| o.plain_http).unwrap_or(false),
            insecure: file.and_then(|o| o.insecure).unwrap_or(false),
            ca_file: file.and_then(|o| o.ca_file.clone()),
        };
        builder = builder.registry_options(host, options);
    }
    Ok(builder)
}

/// The cache folder in force (`OCISDK_CACHE_DIR`, the file's `cache_dir`, or the default).
pub(crate) fn cache_dir(g: &GlobalArgs) -> anyhow::Result<PathBuf> {
    Ok(settings::network(g, None)?.cache_dir.value)
}

/// The folders the user vouches for (`OCISDK_SAFE_FOLDERS`, the file's `safe_folders`).
fn safe_folders(g: &GlobalArgs) -> Vec<PathBuf> {
    settings::catalogue(&g.config, None).safe_folders.value
}

/// A client for a command about one image or repository on `registry`, which `--username`
/// and `OCISDK_USERNAME` are for (not its read mirrors: a mirror gets its own credentials).
fn client(g: &GlobalArgs, registry: &str) -> anyhow::Result<Client> {
    client_for(g, &[], Some(registry))
}

fn parse_reference(text: &str) -> anyhow::Result<Reference> {
    Ok(text.parse::<Reference>().map_err(Error::from)?)
}

fn parse_platform(text: Option<&str>) -> anyhow::Result<Option<Platform>> {
    text.map(|t| t.parse::<Platform>().map_err(Error::InvalidInput))
        .transpose()
        .map_err(Into::into)
}
