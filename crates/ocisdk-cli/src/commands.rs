//! One small function per command, each a wrapper over a library call.

use anyhow::Context as _;
use ocisdk::{Client, Error, LayerChoice, NoProgress, Platform, Reference, Repository};
use serde_json::json;

use crate::cli::{Cli, Command, GlobalArgs};
use crate::output;

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let g = &cli.global;
    match &cli.command {
        Command::Tags { repo } => tags(g, repo).await,
        Command::Manifest {
            reference,
            platform,
        } => manifest(g, reference, platform.as_deref()).await,
        Command::Digest { reference } => digest(g, reference).await,
        Command::Config {
            reference,
            platform,
        } => config(g, reference, platform.as_deref()).await,
        Command::Blob { reference, output } => blob(g, reference, output).await,
        Command::Pull {
            reference,
            output,
            platform,
            layer,
        } => pull(g, reference, output, platform.as_deref(), *layer).await,
    }
}

fn client(g: &GlobalArgs) -> anyhow::Result<Client> {
    Ok(Client::builder()
        .plain_http(g.plain_http)
        .insecure(g.insecure)
        .build()?)
}

fn parse_reference(text: &str) -> anyhow::Result<Reference> {
    Ok(text.parse::<Reference>().map_err(Error::from)?)
}

fn parse_platform(text: Option<&str>) -> anyhow::Result<Option<Platform>> {
    text.map(|t| t.parse::<Platform>().map_err(Error::InvalidInput))
        .transpose()
        .map_err(Into::into)
}

async fn tags(g: &GlobalArgs, repo: &str) -> anyhow::Result<()> {
    // A tag or digest after the repository is accepted and ignored, so that a reference can
    // be pasted as is.
    let repo: Repository = parse_reference(repo)?.repository().clone();
    let tags = client(g)?.tags(&repo).await?;
    if g.json {
        output::json(&json!(tags))
    } else {
        tags.iter().try_for_each(|t| output::line(t))
    }
}

async fn manifest(g: &GlobalArgs, reference: &str, platform: Option<&str>) -> anyhow::Result<()> {
    let reference = parse_reference(reference)?;
    let platform = parse_platform(platform)?;
    let client = client(g)?;
    let manifest = match &platform {
        Some(p) => client.resolve_manifest(&reference, Some(p)).await?,
        None => client.manifest(&reference).await?,
    };
    if g.json {
        let document: serde_json::Value =
            serde_json::from_slice(&manifest.bytes).context("manifest is not JSON")?;
        output::json(&json!({
            "reference": reference.to_string(),
            "digest": manifest.digest,
            "mediaType": manifest.media_type,
            "size": manifest.bytes.len(),
            "manifest": document,
        }))
    } else {
        output::raw(&manifest.bytes)
    }
}

async fn digest(g: &GlobalArgs, reference: &str) -> anyhow::Result<()> {
    let reference = parse_reference(reference)?;
    let head = client(g)?.head_manifest(&reference).await?;
    if g.json {
        output::json(&json!({
            "reference": reference.to_string(),
            "digest": head.digest,
            "mediaType": head.media_type,
            "size": head.size,
        }))
    } else {
        output::line(&head.digest.to_string())
    }
}

async fn config(g: &GlobalArgs, reference: &str, platform: Option<&str>) -> anyhow::Result<()> {
    let reference = parse_reference(reference)?;
    let platform = parse_platform(platform)?;
    let client = client(g)?;
    let manifest = client
        .resolve_manifest(&reference, platform.as_ref())
        .await?;
    let config = client.config(reference.repository(), &manifest).await?;
    if g.json {
        let document: serde_json::Value =
            serde_json::from_slice(&config.bytes).context("config is not JSON")?;
        output::json(&json!({
            "reference": reference.to_string(),
            "manifestDigest": manifest.digest,
            "labels": config.labels,
            "annotations": manifest.annotations(),
            "config": document,
        }))
    } else {
        output::raw(&config.bytes)?;
        output::line("")
    }
}

async fn blob(g: &GlobalArgs, reference: &str, dest: &std::path::Path) -> anyhow::Result<()> {
    let reference = parse_reference(reference)?;
    let digest = reference.digest().cloned().ok_or_else(|| {
        Error::InvalidInput(format!("\"{reference}\" has no digest: use REPO@sha256:…"))
    })?;
    let done = ocisdk::download_blob(
        &client(g)?,
        reference.repository(),
        &digest,
        None,
        dest,
        &NoProgress,
    )
    .await?;
    if g.json {
        output::json(&json!({
            "digest": done.digest,
            "size": done.size,
            "path": done.path,
        }))
    } else {
        if !g.quiet {
            eprintln!(
                "wrote {} ({} bytes, verified {})",
                done.path.display(),
                done.size,
                done.digest
            );
        }
        Ok(())
    }
}

async fn pull(
    g: &GlobalArgs,
    reference: &str,
    dest: &std::path::Path,
    platform: Option<&str>,
    layer: Option<usize>,
) -> anyhow::Result<()> {
    let reference = parse_reference(reference)?;
    let platform = parse_platform(platform)?;
    let choice = layer.map_or(LayerChoice::Only, LayerChoice::Index);
    let pulled = ocisdk::pull_layer(
        &client(g)?,
        &reference,
        platform.as_ref(),
        choice,
        dest,
        &NoProgress,
    )
    .await?;
    if g.json {
        output::json(&json!({
            "reference": reference.to_string(),
            "manifestDigest": pulled.manifest.digest,
            "digest": pulled.layer.digest,
            "size": pulled.file.size,
            "mediaType": pulled.layer.media_type,
            "title": pulled.layer.title,
            "path": pulled.file.path,
        }))
    } else {
        if !g.quiet {
            eprintln!(
                "wrote {} ({} bytes, verified {})",
                pulled.file.path.display(),
                pulled.file.size,
                pulled.layer.digest
            );
        }
        Ok(())
    }
}
