//! Image commands: tags, manifest, digest, config, blob, pull, push.

use std::collections::BTreeMap;

use anyhow::Context as _;
use ocisdk::{Error, LayerChoice, PushRequest, Reporter, Repository};
use serde_json::json;

use super::suggest::with_close_tags;
use super::{client, parse_platform, parse_reference};
use crate::cli::GlobalArgs;
use crate::output;

pub(crate) async fn tags(g: &GlobalArgs, repo: &str) -> anyhow::Result<()> {
    // A tag or digest after the repository is accepted and ignored, so that a reference can
    // be pasted as is.
    let repo: Repository = parse_reference(repo)?.repository().clone();
    let tags = client(g, repo.registry())?.tags(&repo).await?;
    if g.json {
        output::json(&json!(tags))
    } else {
        tags.iter().try_for_each(|t| output::line(t))
    }
}

pub(crate) async fn manifest(
    g: &GlobalArgs,
    reference: &str,
    platform: Option<&str>,
) -> anyhow::Result<()> {
    let reference = parse_reference(reference)?;
    let platform = parse_platform(platform)?;
    let client = client(g, reference.registry())?;
    let manifest = match &platform {
        Some(p) => client.resolve_manifest(&reference, Some(p)).await,
        None => client.manifest(&reference).await,
    };
    let manifest = match manifest {
        Ok(m) => m,
        Err(e) => return Err(with_close_tags(&client, &reference, e).await),
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

pub(crate) async fn digest(g: &GlobalArgs, reference: &str) -> anyhow::Result<()> {
    let reference = parse_reference(reference)?;
    let client = client(g, reference.registry())?;
    let head = match client.head_manifest(&reference).await {
        Ok(h) => h,
        Err(e) => return Err(with_close_tags(&client, &reference, e).await),
    };
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

pub(crate) async fn config(
    g: &GlobalArgs,
    reference: &str,
    platform: Option<&str>,
) -> anyhow::Result<()> {
    let reference = parse_reference(reference)?;
    let platform = parse_platform(platform)?;
    let client = client(g, reference.registry())?;
    let manifest = match client.resolve_manifest(&reference, platform.as_ref()).await {
        Ok(m) => m,
        Err(e) => return Err(with_close_tags(&client, &reference, e).await),
    };
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

pub(crate) async fn blob(
    g: &GlobalArgs,
    reference: &str,
    dest: &std::path::Path,
    reporter: &dyn Reporter,
) -> anyhow::Result<()> {
    let reference = parse_reference(reference)?;
    let digest = reference.digest().cloned().ok_or_else(|| {
        Error::InvalidInput(format!("\"{reference}\" has no digest: use REPO@sha256:…"))
    })?;
    let done = ocisdk::download_blob(
        &client(g, reference.registry())?,
        reference.repository(),
        &digest,
        None,
        dest,
        reporter,
    )
    .await?;
    if g.json {
        output::json(&json!({
            "digest": done.digest,
            "size": done.size,
            "path": done.path.to_string_lossy(),
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

pub(crate) async fn pull(
    g: &GlobalArgs,
    reference: &str,
    dest: &std::path::Path,
    platform: Option<&str>,
    layer: Option<usize>,
    reporter: &dyn Reporter,
) -> anyhow::Result<()> {
    let reference = parse_reference(reference)?;
    let platform = parse_platform(platform)?;
    let choice = layer.map_or(LayerChoice::Only, LayerChoice::Index);
    let client = client(g, reference.registry())?;
    let pulled = match ocisdk::pull_layer(
        &client,
        &reference,
        platform.as_ref(),
        choice,
        dest,
        reporter,
    )
    .await
    {
        Ok(p) => p,
        Err(e) => return Err(with_close_tags(&client, &reference, e).await),
    };
    if g.json {
        output::json(&json!({
            "reference": reference.to_string(),
            "manifestDigest": pulled.manifest.digest,
            "digest": pulled.layer.digest,
            "size": pulled.file.size,
            "mediaType": pulled.layer.media_type,
            "title": pulled.layer.title,
            "path": pulled.file.path.to_string_lossy(),
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

pub(crate) async fn push(
    g: &GlobalArgs,
    file: &std::path::Path,
    reference: &str,
    labels: &[String],
    annotations: &[String],
    artifact_type: Option<&str>,
    reporter: &dyn Reporter,
) -> anyhow::Result<()> {
    let reference = parse_reference(reference)?;
    let request = PushRequest {
        file: file.to_path_buf(),
        labels: parse_pairs(labels, "--label")?,
        annotations: parse_pairs(annotations, "--annotation")?,
        artifact_type: artifact_type.map(str::to_string),
        ..PushRequest::default()
    };
    let pushed = ocisdk::push_file(
        &client(g, reference.registry())?,
        &reference,
        &request,
        reporter,
    )
    .await?;
    if g.json {
        output::json(&json!({ "reference": reference.to_string(), "push": pushed }))
    } else {
        output::line(&format!(
            "{}@{}",
            reference.repository(),
            pushed.manifest_digest
        ))
    }
}

/// Parses repeated `KEY=VALUE` flags.
fn parse_pairs(pairs: &[String], flag: &str) -> anyhow::Result<BTreeMap<String, String>> {
    pairs
        .iter()
        .map(|p| match p.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => Err(Error::InvalidInput(format!("{flag} \"{p}\": expected KEY=VALUE")).into()),
        })
        .collect()
}
