//! Pulling the single layer of a one-layer image or artifact: the SDK case.

use std::path::Path;

use crate::content::{download_blob, Downloaded};
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::progress::Reporter;
use crate::reference::Reference;
use crate::registry::{location, Client};
use crate::spec::{Manifest, Platform};

/// Which layer of an image to take.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LayerChoice {
    /// The only layer; an image with several is an error.
    #[default]
    Only,
    /// The layer at this 0-based index.
    Index(usize),
}

/// A layer chosen from a manifest: its digest, size, media type and title annotation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerInfo {
    /// The layer digest.
    pub digest: Digest,
    /// The size the manifest promises.
    pub size: u64,
    /// The layer media type.
    pub media_type: String,
    /// `org.opencontainers.image.title`, the file name artifacts are pushed with.
    pub title: Option<String>,
}

/// What [`pull_layer`] did.
#[derive(Debug, Clone)]
pub struct Pulled {
    /// The image manifest the layer came from (after platform resolution).
    pub manifest: Manifest,
    /// The layer.
    pub layer: LayerInfo,
    /// The verified file.
    pub file: Downloaded,
}

/// Picks a layer out of an image manifest.
pub fn choose_layer(
    reference: &Reference,
    manifest: &Manifest,
    choice: LayerChoice,
) -> Result<LayerInfo> {
    let at = location(reference.repository(), Some(reference.target().to_string()));
    let image = manifest.image().ok_or_else(|| Error::Unsupported {
        at: at.clone(),
        message: "this is an index, not an image manifest; choose a platform".into(),
    })?;
    let layers = image.layers();
    let layer = match choice {
        LayerChoice::Only if layers.len() == 1 => &layers[0],
        LayerChoice::Only if layers.is_empty() => {
            return Err(Error::Unsupported {
                at,
                message: "the image has no layers".into(),
            })
        }
        LayerChoice::Only => {
            return Err(Error::Unsupported {
                at,
                message: format!(
                    "the image has {} layers; choose one with --layer N (0 to {})",
                    layers.len(),
                    layers.len() - 1
                ),
            })
        }
        LayerChoice::Index(i) => layers.get(i).ok_or_else(|| Error::Unsupported {
            at: at.clone(),
            message: format!(
                "layer {i} does not exist: the image has {} layer(s)",
                layers.len()
            ),
        })?,
    };
    let digest = Digest::parse(layer.digest().as_ref()).map_err(|e| Error::Protocol {
        at: at.clone(),
        message: format!("layer descriptor has an unusable digest: {e}"),
    })?;
    Ok(LayerInfo {
        digest,
        size: layer.size(),
        media_type: layer.media_type().to_string(),
        title: layer
            .annotations()
            .as_ref()
            .and_then(|a| a.get("org.opencontainers.image.title"))
            .cloned(),
    })
}

/// Resolves `reference` (an index is resolved to `platform`, default the client's), picks a
/// layer and downloads it to `dest`, verified.
pub async fn pull_layer(
    client: &Client,
    reference: &Reference,
    platform: Option<&Platform>,
    choice: LayerChoice,
    dest: &Path,
    reporter: &dyn Reporter,
) -> Result<Pulled> {
    let manifest = client.resolve_manifest(reference, platform).await?;
    let layer = choose_layer(reference, &manifest, choice)?;
    let file = download_blob(
        client,
        reference.repository(),
        &layer.digest,
        Some(layer.size),
        dest,
        reporter,
    )
    .await?;
    Ok(Pulled {
        manifest,
        layer,
        file,
    })
}
