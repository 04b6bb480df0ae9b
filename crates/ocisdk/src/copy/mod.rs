//! Copying images between registries, OCI layouts and layout archives, digests preserved:
//! the manifest bytes are copied as they are, never re-encoded.
//!
//! A copy goes:
//! 1. Read the root manifest the source names (an index stays an index, unless a platform
//!    was asked for: then only that platform's image is copied, and a single-platform image
//!    whose config names another platform is refused).
//! 2. If the target's name already points at the root digest in a registry, stop: nothing
//!    to do. (The root is written last, so its presence means an earlier copy finished.) A
//!    layout is checked through even then: another tool may have written the root alone.
//! 3. Read every manifest below the root; those the target already has need nothing more
//!    (in a layout, an image manifest counts only with its config and layers there).
//! 4. Every blob of the others that the target lacks (one `HEAD` each) is moved, `jobs` at
//!    a time: mounted from the source repository within one registry (once the registry
//!    refused the target's credentials a mount from there, sent instead, without asking
//!    again), streamed from `GET` to upload between registries, downloaded or uploaded for
//!    layouts. Each is verified against its digest on the way. The first blob that fails
//!    stops the others: none is started, one being uploaded stops at the end of its
//!    current request and cancels its upload session (a blob streamed between registries,
//!    whose body is one request, is finished), and the failure is returned once they have
//!    stopped, so that the target keeps no session to expire.
//! 5. The manifests are written children first, then the root under the target's name.
//!
//! Re-running a copy that was interrupted resumes it: whatever arrived is found present.

mod ends;

use std::collections::HashSet;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::reference::Reference;
use crate::registry::Client;
use crate::spec::{entry_for_platform, Manifest, ManifestDocument, Platform};
use ends::{transfer, Blob, Source, Target};

/// How deep indexes may nest (an index of indexes of images is depth 2).
const MAX_DEPTH: usize = 4;

/// Where an image is read from or written to, spelled as skopeo spells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageRef {
    /// A registry reference, `[docker://]HOST/PATH[:TAG][@DIGEST]`.
    Registry(Reference),
    /// An OCI image layout folder, `oci:DIR[:NAME]`.
    Layout {
        /// The layout folder.
        dir: PathBuf,
        /// The image's name in `index.json` (`org.opencontainers.image.ref.name`).
        name: Option<String>,
    },
    /// A tar of an OCI image layout, `oci-archive:FILE[:NAME]`.
    Archive {
        /// The tar file.
        file: PathBuf,
        /// The image's name inside.
        name: Option<String>,
    },
}

impl ImageRef {
    /// Parses `oci:DIR[:NAME]`, `oci-archive:FILE[:NAME]` or a registry reference (with or
    /// without `docker://`). As in skopeo, the first `:` after the path starts the name.
    pub fn parse(text: &str) -> Result<ImageRef> {
        if let Some(rest) = text.strip_prefix("oci:") {
            let (dir, name) = split_path(rest, text)?;
            return Ok(ImageRef::Layout { dir, name });
        }
        if let Some(rest) = text.strip_prefix("oci-archive:") {
            let (file, name) = split_path(rest, text)?;
            return Ok(ImageRef::Archive { file, name });
        }
        let text = text.strip_prefix("docker://").unwrap_or(text);
        Ok(ImageRef::Registry(Reference::parse(text)?))
    }

    /// The tag or layout name, when one was given.
    pub fn name(&self) -> Option<&str> {
        match self {
            ImageRef::Registry(r) => r.tag(),
            ImageRef::Layout { name, .. } | ImageRef::Archive { name, .. } => name.as_deref(),
        }
    }
}

fn split_path(rest: &str, input: &str) -> Result<(PathBuf, Option<String>)> {
    let (path, name) = match rest.split_once(':') {
        Some((path, name)) => (path, Some(name)),
        None => (rest, None),
    };
    if path.is_empty() {
        return Err(Error::InvalidInput(format!("\"{input}\" names no path")));
    }
    if name.is_some_and(|n| n.is_empty() || n.contains('/')) {
        return Err(Error::InvalidInput(format!(
            "\"{input}\": the name after the path must be a tag-like name"
        )));
    }
    Ok((PathBuf::from(path), name.map(str::to_string)))
}

impl FromStr for ImageRef {
    type Err = Error;
    fn from_str(text: &str) -> Result<ImageRef> {
        ImageRef::parse(text)
    }
}

/// A registry reference names an image in a registry, so it converts without a parse: a
/// program that holds [`Reference`]s passes them to [`copy`] as they are.
///
/// ```
/// use ocisdk::copy::ImageRef;
/// use ocisdk::Reference;
///
/// let reference: Reference = "localhost:5000/oryx/python-sdk:bookworm-3.11.4".parse()?;
/// let image = ImageRef::from(reference.clone());
/// assert_eq!(image, ImageRef::Registry(reference));
/// assert_eq!(image.name(), Some("bookworm-3.11.4"));
/// # Ok::<(), ocisdk::ReferenceError>(())
/// ```
impl From<Reference> for ImageRef {
    fn from(reference: Reference) -> ImageRef {
        ImageRef::Registry(reference)
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (scheme, path, name) = match self {
            ImageRef::Registry(r) => return write!(f, "{r}"),
            ImageRef::Layout { dir, name } => ("oci", dir, name),
            ImageRef::Archive { file, name } => ("oci-archive", file, name),
        };
        write!(f, "{scheme}:{}", path.display())?;
        match name {
            Some(name) => write!(f, ":{name}"),
            None => Ok(()),
        }
    }
}

/// How to copy.
#[derive(Debug, Clone)]
pub struct CopyOptions {
    /// From an index, copy only this platform's image (named as the index was); a
    /// single-platform image whose config names another platform is refused with
    /// [`Error::NoMatchingPlatform`].
    pub platform: Option<Platform>,
    /// Blobs moved at once (at least one).
    pub jobs: usize,
    /// Only find out what would be copied: nothing is written.
    pub dry_run: bool,
}

impl Default for CopyOptions {
    fn default() -> Self {
        CopyOptions {
            platform: None,
            jobs: 4,
            dry_run: false,
        }
    }
}

/// What became of one manifest or blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The target had it already.
    Present,
    /// Sent to the target.
    Copied,
    /// Linked from another repository of the same registry, not sent.
    Mounted,
    /// The target had the manifest; only its name was set.
    Tagged,
    /// A dry run: it would be sent.
    WouldCopy,
}

/// One manifest or blob of a copy.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Item {
    /// Its digest.
    pub digest: Digest,
    /// Its size in bytes.
    pub size: u64,
    /// Its media type.
    #[serde(rename = "mediaType")]
    pub media_type: String,
    /// What happened to it.
    pub outcome: Outcome,
}

/// What a copy did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CopyReport {
    /// The source, as given.
    pub source: String,
    /// The target, with the name used.
    pub target: String,
    /// The digest of the manifest (or index) copied.
    pub digest: Digest,
    /// Its media type.
    #[serde(rename = "mediaType")]
    pub media_type: String,
    /// Every manifest, children first, the root last.
    pub manifests: Vec<Item>,
    /// Every blob the copied manifests need, whether moved or not.
    pub blobs: Vec<Item>,
    /// Bytes sent, or in a dry run that would be sent (mounts send none).
    pub bytes: u64,
    /// Whether this was a dry run.
    pub dry_run: bool,
}

impl CopyReport {
    /// How many blobs had `outcome`.
    pub fn blobs_with(&self, outcome: Outcome) -> usize {
        self.blobs.iter().filter(|b| b.outcome == outcome).count()
    }

    /// Whether the copy wrote nothing at all (everything was there already).
    pub fn nothing_written(&self) -> bool {
        self.manifests
            .iter()
            .chain(&self.blobs)
            .all(|i| i.outcome == Outcome::Present)
    }
}

/// Copies the image `source` names to `target` (see the [module docs](self)). What a source
/// tag names is read from its registry itself; content by digest (verified) may come through
/// the client's mirrors; the target is never read through them.
pub async fn copy(
    client: &Client,
    source: &ImageRef,
    target: &ImageRef,
    options: &CopyOptions,
) -> Result<CopyReport> {
    let src = Source::open(client, source).await?;
    let mut root = src.root().await?;
    match (&options.platform, &root.document) {
        (Some(platform), ManifestDocument::Index(index)) => {
            let chosen = entry_for_platform(index, platform).map_err(|available| {
                Error::NoMatchingPlatform {
                    at: src.location(),
                    wanted: platform.to_string(),
                    available,
                }
            })?;
            let digest = descriptor_digest(chosen.digest().as_ref())?;
            root = src.child(&digest, chosen.media_type().as_ref()).await?;
        }
        // A single-platform image is copied for a platform only when it is built for it,
        // as `pull --platform` checks: copied anyway, another platform's image would
        // arrive under the name the fleet installs from, and the copy say it succeeded.
        (Some(platform), _) => {
            if let Some(actual) = src.image_platform(&root).await? {
                if !platform.accepts(&actual) {
                    return Err(Error::NoMatchingPlatform {
                        at: src.location(),
                        wanted: platform.to_string(),
                        available: actual.to_string(),
                    });
                }
            }
        }
        (None, _) => {}
    }
    let dst = Target::open(client, target, src.name(), options.dry_run)?;
    let manifests = gather(&src, root).await?;
    let Some(root) = manifests.last() else {
        return Err(Error::InvalidInput("nothing to copy".into()));
    };
    if let ImageRef::Registry(r) = target {
        if r.digest().is_some_and(|d| d != &root.digest) {
            return Err(Error::InvalidInput(format!(
                "the target names digest {}, but the source is {}",
                r.digest().map(ToString::to_string).unwrap_or_default(),
                root.digest
            )));
        }
    }
    let mut report = CopyReport {
        source: source.to_string(),
        target: dst.describe(),
        digest: root.digest.clone(),
        media_type: root.media_type.clone(),
        manifests: Vec::new(),
        blobs: Vec::new(),
        bytes: 0,
        dry_run: options.dry_run,
    };

    // 2. Done before? A registry keeps a manifest only with all it refers to; a layout's
    // name may point at an index whose images are not there (skopeo's `--multi-arch
    // index-only` writes just the index), so a layout is checked through in any case.
    let named = dst.named_digest().await? == Some(root.digest.clone());
    let done = named && dst.keeps_whole_images();
    // 3. Which manifests the target lacks.
    let mut missing = Vec::new();
    for (i, m) in manifests.iter().enumerate() {
        let is_root = i + 1 == manifests.len();
        let present = done || dst.holds(m).await?;
        let outcome = match (present, is_root, options.dry_run) {
            (true, true, _) if !named => Outcome::Tagged,
            (true, _, _) => Outcome::Present,
            (false, _, true) => Outcome::WouldCopy,
            (false, _, false) => Outcome::Copied,
        };
        if !present {
            missing.push(m);
        }
        report.manifests.push(item(
            &m.digest,
            m.bytes.len() as u64,
            &m.media_type,
            outcome,
        ));
    }
    // 4. The blobs of those manifests.
    let mut blobs: Vec<Blob> = Vec::new();
    for m in &missing {
        for blob in blobs_of(m)? {
            if !blobs.contains(&blob) {
                blobs.push(blob);
            }
        }
    }
    let (from, to) = (&src, &dst);
    let jobs = options.jobs.max(1);
    let dry_run = options.dry_run;
    // Said with -v: the concurrency in force comes from a flag, a file or a default, and
    // this is the one place that shows which won.
    tracing::info!(
        "{} blobs to check, and to move when the target lacks them: {jobs} at a time",
        blobs.len()
    );
    // The first failure stops the other blobs (see the module docs), and is returned once
    // they have stopped: dropped mid-upload, they would leave their sessions open.
    let stop = CancellationToken::new();
    let mut moves = futures_util::stream::iter(blobs)
        .map(|blob| {
            let stop = &stop;
            async move {
                // A blob not yet started when another failed is left alone.
                if stop.is_cancelled() {
                    return None;
                }
                Some(move_blob(from, to, &blob, dry_run, stop).await)
            }
        })
        .buffer_unordered(jobs);
    let mut failure = None;
    while let Some(done) = moves.next().await {
        match done {
            Some(Ok(item)) => report.blobs.push(item),
            Some(Err(e)) if failure.is_none() => {
                tracing::info!("{e}; stopping the other blobs");
                stop.cancel();
                failure = Some(e);
            }
            // Not started, stopped, or failing after the first failure.
            _ => {}
        }
    }
    // It borrows the target, which finishing below consumes.
    drop(moves);
    if let Some(e) = failure {
        return Err(e);
    }
    report.blobs.sort_by_key(|i| i.digest.to_string());
    report.bytes = report
        .manifests
        .iter()
        .chain(&report.blobs)
        .filter(|i| matches!(i.outcome, Outcome::Copied | Outcome::WouldCopy))
        .map(|i| i.size)
        .sum();
    if dry_run || done || (named && missing.is_empty()) {
        return Ok(report);
    }
    // 5. Manifests, children first; the root (also) under the name.
    for (i, m) in manifests.iter().enumerate() {
        let is_root = i + 1 == manifests.len();
        if is_root || missing.iter().any(|x| x.digest == m.digest) {
            dst.put_manifest(m, is_root).await?;
        }
    }
    dst.finish().await?;
    Ok(report)
}

/// Step 4 for one blob: checks whether the target has it, and moves it when it lacks it
/// (unless in a `dry_run`).
async fn move_blob(
    from: &Source,
    to: &Target,
    blob: &Blob,
    dry_run: bool,
    stop: &CancellationToken,
) -> Result<Item> {
    let outcome = if to.has_blob(&blob.digest).await? {
        Outcome::Present
    } else if dry_run {
        Outcome::WouldCopy
    } else {
        let outcome = transfer(from, to, blob, stop).await?;
        tracing::info!(digest = %blob.digest, size = blob.size, ?outcome, "blob done");
        outcome
    };
    Ok(item(&blob.digest, blob.size, &blob.media_type, outcome))
}

fn item(digest: &Digest, size: u64, media_type: &str, outcome: Outcome) -> Item {
    Item {
        digest: digest.clone(),
        size,
        media_type: media_type.to_string(),
        outcome,
    }
}

/// The root and every manifest below it, children before their index, each once.
///
/// A manifest reachable along two paths (an index listing it and an inner index that lists
/// it too) is listed where it is first needed: an entry already emitted is skipped when it
/// comes up again, so a copy neither writes nor counts it twice.
async fn gather(src: &Source, root: Manifest) -> Result<Vec<Manifest>> {
    let mut ordered = Vec::new();
    let mut emitted = HashSet::new();
    // (manifest, depth, children already pushed)
    let mut stack = vec![(root, 0usize, false)];
    while let Some((manifest, depth, expanded)) = stack.pop() {
        if emitted.contains(&manifest.digest) {
            continue;
        }
        let ManifestDocument::Index(index) = &manifest.document else {
            emitted.insert(manifest.digest.clone());
            ordered.push(manifest);
            continue;
        };
        if expanded {
            emitted.insert(manifest.digest.clone());
            ordered.push(manifest);
            continue;
        }
        if depth >= MAX_DEPTH {
            return Err(Error::InvalidInput(format!(
                "{}: indexes nest deeper than {MAX_DEPTH} levels",
                manifest.digest
            )));
        }
        // A child still waiting lower on the stack is pushed again: this index needs it
        // first, and the later entry is then skipped as emitted.
        let mut children: Vec<(Manifest, usize, bool)> = Vec::new();
        for d in index.manifests() {
            let digest = descriptor_digest(d.digest().as_ref())?;
            if emitted.contains(&digest) || children.iter().any(|(m, _, _)| m.digest == digest) {
                continue;
            }
            let child = src.child(&digest, d.media_type().as_ref()).await?;
            children.push((child, depth + 1, false));
        }
        stack.push((manifest, depth, true));
        stack.extend(children.into_iter().rev());
    }
    Ok(ordered)
}

/// The config and layers of an image manifest (an index has none of its own).
fn blobs_of(manifest: &Manifest) -> Result<Vec<Blob>> {
    let Some(image) = manifest.image() else {
        return Ok(Vec::new());
    };
    std::iter::once(image.config())
        .chain(image.layers())
        .map(|d| {
            Ok(Blob {
                digest: descriptor_digest(d.digest().as_ref())?,
                size: d.size(),
                media_type: d.media_type().to_string(),
            })
        })
        .collect()
}

fn descriptor_digest(text: &str) -> Result<Digest> {
    Digest::parse(text)
        .map_err(|e| Error::InvalidInput(format!("a descriptor has an unusable digest: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::{LayoutEntry, OciLayout};
    use crate::spec::{OCI_CONFIG, OCI_INDEX, OCI_MANIFEST};

    /// Stores `json` as a blob of `layout`; returns its descriptor and digest.
    fn store(
        layout: &OciLayout,
        media_type: &str,
        json: serde_json::Value,
    ) -> (serde_json::Value, Digest) {
        let bytes = serde_json::to_vec(&json).unwrap();
        let digest = Digest::of_bytes(&bytes);
        layout.write_blob(&digest, &bytes).unwrap();
        let descriptor = serde_json::json!({
            "mediaType": media_type,
            "digest": digest.to_string(),
            "size": bytes.len(),
        });
        (descriptor, digest)
    }

    #[tokio::test]
    async fn gather_lists_a_manifest_reachable_twice_once_and_before_both_indexes() {
        let dir = tempfile::tempdir().unwrap();
        let layout = OciLayout::create(dir.path()).unwrap();
        let (config, _) = store(&layout, OCI_CONFIG, serde_json::json!({}));
        let (m, m_digest) = store(
            &layout,
            OCI_MANIFEST,
            serde_json::json!({
                "schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config, "layers": []
            }),
        );
        let index = |manifests: Vec<serde_json::Value>| serde_json::json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests});
        // root = [inner, M], inner = [M]: M comes up a second time while still queued.
        let (inner, inner_digest) = store(&layout, OCI_INDEX, index(vec![m.clone()]));
        let (root, root_digest) = store(&layout, OCI_INDEX, index(vec![inner, m]));
        let size = root["size"].as_u64().unwrap();
        layout
            .add_entry(LayoutEntry::new(OCI_INDEX, &root_digest, size, Some("v1")))
            .unwrap();

        let client = Client::builder().build().unwrap();
        let image = ImageRef::Layout {
            dir: dir.path().to_path_buf(),
            name: Some("v1".into()),
        };
        let src = Source::open(&client, &image).await.unwrap();
        let gathered = gather(&src, src.root().await.unwrap()).await.unwrap();
        let digests: Vec<&Digest> = gathered.iter().map(|m| &m.digest).collect();
        assert_eq!(digests, [&m_digest, &inner_digest, &root_digest]);
    }

    #[test]
    fn image_refs_parse_as_skopeo_spells_them() {
        let r: ImageRef = "oci:/tmp/l:bookworm-3.11".parse().unwrap();
        assert_eq!(
            r,
            ImageRef::Layout {
                dir: "/tmp/l".into(),
                name: Some("bookworm-3.11".into())
            }
        );
        assert_eq!(r.to_string(), "oci:/tmp/l:bookworm-3.11");
        let r: ImageRef = "oci-archive:out.tar".parse().unwrap();
        assert_eq!(r.name(), None);
        assert!(matches!(r, ImageRef::Archive { .. }));
        let r: ImageRef = "docker://127.0.0.1:5000/a/b:t".parse().unwrap();
        assert_eq!(r.to_string(), "127.0.0.1:5000/a/b:t");
        assert_eq!(r.name(), Some("t"));
        for bad in ["oci:", "oci::x", "oci:/d:", "oci:/d:a/b", "UPPER/x"] {
            assert!(bad.parse::<ImageRef>().is_err(), "{bad}");
        }
    }
}
