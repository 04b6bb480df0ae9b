//! `ocisdk sdk …`: the SDK catalogue commands.

use ocisdk::sdk::{Catalogue, SdkError, TagVersion, VersionSpec};
use ocisdk::Reporter;
use serde_json::json;

use super::install::{self, InstallOptions};
use crate::cli::{GlobalArgs, SdkCommand, SdkCommandKind};
use crate::output;

pub(crate) async fn run(
    g: &GlobalArgs,
    sdk: &SdkCommand,
    reporter: &dyn Reporter,
) -> anyhow::Result<()> {
    if let SdkCommandKind::Sync { file, .. } = &sdk.command {
        // Both would read standard input, and the password would swallow the list.
        if file.as_os_str() == "-" && g.password_stdin {
            return Err(ocisdk::Error::InvalidInput(
                "sdk sync - and --password-stdin both read standard input: give the list as \
                 a file, or the password through OCISDK_PASSWORD"
                    .into(),
            )
            .into());
        }
    }
    let settings = crate::settings::catalogue(&g.config, Some(&sdk.catalogue))
        .to_settings(super::cache_dir(g)?);
    let registry = settings.registry_authority();
    let plain_http_hosts: &[&str] = if settings.wants_plain_http() {
        &[registry]
    } else {
        &[]
    };
    let client = super::client_for(g, plain_http_hosts, Some(registry))?;
    let catalogue = Catalogue::new(client, settings)?;
    match &sdk.command {
        SdkCommandKind::Versions { platform } => versions(g, &catalogue, platform).await,
        SdkCommandKind::Default {
            platform,
            or_latest,
        } => default(g, &catalogue, platform, *or_latest).await,
        SdkCommandKind::Resolve {
            platform,
            spec,
            pre,
        } => resolve(g, &catalogue, platform, spec, *pre).await,
        SdkCommandKind::Pull {
            platform,
            spec,
            output,
            pre,
        } => pull(g, &catalogue, platform, spec, output, *pre, reporter).await,
        SdkCommandKind::Install {
            platform,
            specs,
            pre,
            force,
            jobs,
        } => {
            let wanted = specs
                .iter()
                .map(|s| (platform.clone(), s.clone()))
                .collect();
            let options = InstallOptions {
                pre: *pre,
                force: *force,
                jobs: crate::settings::network(g, jobs.map(usize::from))?
                    .jobs
                    .value,
                single: specs.len() == 1,
            };
            install::install_all(g, &catalogue, wanted, options, reporter).await
        }
        SdkCommandKind::Sync {
            file,
            pre,
            force,
            jobs,
        } => {
            let wanted = install::read_list(file)?;
            let options = InstallOptions {
                pre: *pre,
                force: *force,
                jobs: crate::settings::network(g, jobs.map(usize::from))?
                    .jobs
                    .value,
                single: false,
            };
            install::install_all(g, &catalogue, wanted, options, reporter).await
        }
        SdkCommandKind::ListInstalled => list_installed(g, &catalogue),
        SdkCommandKind::Uninstall { platform, versions } => {
            uninstall(g, &catalogue, platform, versions, reporter).await
        }
        SdkCommandKind::Mirror {
            platform,
            specs,
            to,
            pre,
            jobs,
            dry_run,
        } => {
            let jobs = jobs.map(usize::from);
            super::copy::mirror(g, &catalogue, platform, specs, to, *pre, jobs, *dry_run).await
        }
        SdkCommandKind::Publish {
            platform,
            version,
            file,
            default,
        } => publish(g, &catalogue, platform, version, file, *default, reporter).await,
    }
}

fn spec(text: &str) -> Result<VersionSpec, SdkError> {
    Ok(VersionSpec::parse(text)?)
}

async fn versions(g: &GlobalArgs, catalogue: &Catalogue, platform: &str) -> anyhow::Result<()> {
    let list = catalogue.versions(platform).await?;
    for (tag, reason) in &list.skipped {
        tracing::info!("skipping tag {tag}: {reason}");
    }
    let os = &catalogue.settings().os;
    if list.versions.is_empty() {
        // An empty list is a valid answer, but a mistyped --os or DEBIAN_FLAVOR gives one
        // too: say so on stderr, where the result on stdout stays untouched.
        let others = if list.other_flavours.is_empty() {
            String::new()
        } else {
            format!(
                "; it has {}: choose one with --os or DEBIAN_FLAVOR",
                list.other_flavours.join(", ")
            )
        };
        tracing::warn!(
            "{} has no {platform} versions for {os}{others}",
            catalogue.repository(platform)?
        );
    }
    let prefix = format!("{os}-");
    if g.json {
        output::json(&json!(list.versions))
    } else {
        list.versions
            .iter()
            .try_for_each(|t| output::line(t.tag.strip_prefix(&prefix).unwrap_or(&t.tag)))
    }
}

async fn default(
    g: &GlobalArgs,
    catalogue: &Catalogue,
    platform: &str,
    or_latest: bool,
) -> anyhow::Result<()> {
    // The image `sdk install PLATFORM default` takes: of a .NET SDK version listed with
    // several runtimes, the version alone would find another (its highest runtime's), so
    // --json names the tag and runtime that find this one again.
    let resolved = catalogue
        .resolve_with(platform, &VersionSpec::Default, false, or_latest)
        .await?;
    if g.json {
        output::json(&json!({
            "platform": platform,
            "os": resolved.os,
            "version": resolved.version,
            "tag": resolved.tag,
            "reference": resolved.reference,
            "runtime": resolved.runtime(),
        }))
    } else {
        output::line(resolved.version.as_str())
    }
}

async fn resolve(
    g: &GlobalArgs,
    catalogue: &Catalogue,
    platform: &str,
    text: &str,
    pre: bool,
) -> anyhow::Result<()> {
    let resolved = catalogue.resolve(platform, &spec(text)?, pre).await?;
    if g.json {
        output::json(&json!(resolved))
    } else {
        output::line(resolved.version.as_str())
    }
}

async fn pull(
    g: &GlobalArgs,
    catalogue: &Catalogue,
    platform: &str,
    text: &str,
    dir: &std::path::Path,
    pre: bool,
    reporter: &dyn Reporter,
) -> anyhow::Result<()> {
    let resolved = catalogue.resolve(platform, &spec(text)?, pre).await?;
    let pulled = catalogue.pull(&resolved, dir, reporter).await?;
    if g.json {
        output::json(
            &json!({ "version": resolved.version, "reference": resolved.reference, "pull": pulled, "cached": pulled.cached }),
        )
    } else {
        output::line(&pulled.path.display().to_string())
    }
}

fn list_installed(g: &GlobalArgs, catalogue: &Catalogue) -> anyhow::Result<()> {
    let all = catalogue.list_installed()?;
    if g.json {
        output::json(&json!(all))
    } else {
        all.iter().try_for_each(|i| {
            output::line(&format!(
                "{} {} {}",
                i.platform,
                i.version,
                i.path.display()
            ))
        })
    }
}

async fn uninstall(
    g: &GlobalArgs,
    catalogue: &Catalogue,
    platform: &str,
    versions: &[String],
    reporter: &dyn Reporter,
) -> anyhow::Result<()> {
    let removed = catalogue.uninstall(platform, versions).await?;
    if g.json {
        return output::json(&json!(removed));
    }
    removed.iter().try_for_each(|gone| {
        reporter.step(&format!("removed {} {}", gone.platform, gone.version));
        output::line(&gone.path.display().to_string())
    })
}

/// `SOURCE_DATE_EPOCH` (the reproducible-builds convention), which then dates a published
/// SDK instead of its file; an unset or unusable value is ignored, as other tools do.
fn source_date_epoch() -> Option<std::time::SystemTime> {
    let secs = std::env::var("SOURCE_DATE_EPOCH")
        .ok()?
        .trim()
        .parse()
        .ok()?;
    std::time::SystemTime::UNIX_EPOCH.checked_add(std::time::Duration::from_secs(secs))
}

async fn publish(
    g: &GlobalArgs,
    catalogue: &Catalogue,
    platform: &str,
    version: &str,
    file: &std::path::Path,
    default: bool,
    reporter: &dyn Reporter,
) -> anyhow::Result<()> {
    let version = TagVersion::parse(version).map_err(SdkError::from)?;
    let published = catalogue
        .publish_created(
            platform,
            version.clone(),
            file,
            default,
            source_date_epoch(),
            reporter,
        )
        .await?;
    if g.json {
        return output::json(&json!(published));
    }
    if default && !g.quiet {
        // On stderr, as `pull` says what it wrote: stdout stays the one reference a script
        // may read, with or without --default.
        eprintln!(
            "{}:{}-default now points at {platform} {version} ({})",
            published.reference.repository(),
            catalogue.settings().os,
            published.pushed.manifest_digest
        );
    }
    output::line(&format!(
        "{}@{}",
        published.reference, published.pushed.manifest_digest
    ))
}
