//! The two ends of a copy: where manifests and blobs are read ([`Source`]) and where they are
//! written ([`Target`]), each a registry repository or an OCI layout, and moving one blob
//! between them by the cheapest way both ends allow.

use std::path::PathBuf;

use bytes::Bytes;
use tempfile::TempDir;
use tokio_util::sync::CancellationToken;

use super::{ImageRef, Outcome};
use crate::content::download_blob;
use crate::digest::Digest;
use crate::error::{Error, Location, Result};
use crate::layout::archive::{self, PendingArchive, Unpacked};
use crate::layout::{LayoutEntry, OciLayout};
use crate::progress::NoProgress;
use crate::reference::{Reference, Repository, DEFAULT_TAG};
use crate::registry::retry::{self, Attempt, Decision};
use crate::registry::{location, Client, UploadOutcome};
use crate::spec::{
    parse_manifest, ConfigLabels, Manifest, Platform, CONFIG_LIMIT, DOCKER_CONFIG, MANIFEST_LIMIT,
    OCI_CONFIG,
};

/// A blob to move: what a descriptor says about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Blob {
    pub(crate) digest: Digest,
    pub(crate) size: u64,
    pub(crate) media_type: String,
}

/// Where the image comes from.
pub(crate) enum Source {
    Registry {
        client: Client,
        reference: Reference,
    },
    Layout {
        layout: OciLayout,
        /// The name asked for, else the one the chosen entry carries.
        name: Option<String>,
        /// The `index.json` entry of the image.
        entry: LayoutEntry,
        /// Keeps an unpacked archive alive while it is read.
        _unpacked: Option<Unpacked>,
    },
}

impl Source {
    pub(crate) async fn open(client: &Client, image: &ImageRef) -> Result<Source> {
        Ok(match image {
            ImageRef::Registry(reference) => Source::Registry {
                client: client.clone(),
                reference: reference.clone(),
            },
            ImageRef::Layout { dir, name } => {
                Source::in_layout(OciLayout::open(dir)?, name.as_deref(), None)?
            }
            ImageRef::Archive { file, name } => {
                let file = file.clone();
                let unpacked = blocking(move || archive::unpack(&file)).await?;
                Source::in_layout(unpacked.layout().clone(), name.as_deref(), Some(unpacked))?
            }
        })
    }

    /// The image `name` names in `layout` (without a name, its only image), known by the
    /// name its entry carries when none was given: `oci:DIR` of a layout holding one image
    /// named `v1` is copied as `v1`, as skopeo does.
    fn in_layout(
        layout: OciLayout,
        name: Option<&str>,
        unpacked: Option<Unpacked>,
    ) -> Result<Source> {
        let entry = layout.find(name)?;
        Ok(Source::Layout {
            name: name.or(entry.name()).map(str::to_string),
            layout,
            entry,
            _unpacked: unpacked,
        })
    }

    /// The image's tag or layout name: the one it was asked for by, else (in a layout) the
    /// one its entry carries.
    pub(crate) fn name(&self) -> Option<&str> {
        match self {
            // A reference with neither tag nor digest means `latest`, as everywhere.
            Source::Registry { reference, .. } => match (reference.tag(), reference.digest()) {
                (None, None) => Some(DEFAULT_TAG),
                (tag, _) => tag,
            },
            Source::Layout { name, .. } => name.as_deref(),
        }
    }

    /// Where the source is, for errors.
    pub(crate) fn location(&self) -> Location {
        match self {
            Source::Registry { reference, .. } => {
                location(reference.repository(), Some(reference.target().to_string()))
            }
            Source::Layout { layout, name, .. } => Location {
                registry: "oci".into(),
                repository: layout.root().display().to_string().into(),
                reference: name.as_deref().map(Into::into),
            },
        }
    }

    /// The manifest (or index) the image names.
    pub(crate) async fn root(&self) -> Result<Manifest> {
        match self {
            // What a tag names now is the registry's to say: a mirror may be behind, or be
            // the very target being refreshed. Content by digest may still come from one.
            Source::Registry { client, reference } if reference.digest().is_none() => {
                client.without_mirrors().manifest(reference).await
            }
            Source::Registry { client, reference } => client.manifest(reference).await,
            Source::Layout { layout, entry, .. } => {
                let digest = Digest::parse(&entry.digest).map_err(|e| {
                    Error::InvalidInput(format!(
                        "{}: index.json names an unusable digest: {e}",
                        layout.root().display()
                    ))
                })?;
                layout_manifest(layout, &digest, &entry.media_type)
            }
        }
    }

    /// A manifest the root refers to, by digest, verified.
    pub(crate) async fn child(&self, digest: &Digest, media_type: &str) -> Result<Manifest> {
        match self {
            Source::Registry { client, reference } => {
                client
                    .manifest(&reference.with_digest(digest.clone()))
                    .await
            }
            Source::Layout { layout, .. } => layout_manifest(layout, digest, media_type),
        }
    }

    /// The platform the config of `image` names, when it is an image config that names one.
    /// An artifact's config (any other media type) has no platform, nor has an index.
    pub(crate) async fn image_platform(&self, image: &Manifest) -> Result<Option<Platform>> {
        let Some(manifest) = image.image() else {
            return Ok(None);
        };
        let config = manifest.config();
        if !matches!(
            config.media_type().to_string().as_str(),
            OCI_CONFIG | DOCKER_CONFIG
        ) {
            return Ok(None);
        }
        match self {
            Source::Registry { client, reference } => {
                Ok(client.config(reference.repository(), image).await?.platform)
            }
            Source::Layout { layout, .. } => {
                let digest = Digest::parse(config.digest().as_ref()).map_err(|e| {
                    Error::InvalidInput(format!(
                        "{}: manifest {} names an unusable config digest: {e}",
                        layout.root().display(),
                        image.digest
                    ))
                })?;
                let bytes = layout.read_blob(&digest, CONFIG_LIMIT, "config")?;
                let parsed: ConfigLabels =
                    serde_json::from_slice(&bytes).map_err(|source| Error::InvalidDocument {
                        what: "config",
                        url: layout.blob_path(&digest).display().to_string(),
                        prefix: String::from_utf8_lossy(&bytes[..bytes.len().min(64)]).into_owned(),
                        source,
                    })?;
                Ok(parsed.platform())
            }
        }
    }
}

fn layout_manifest(layout: &OciLayout, digest: &Digest, media_type: &str) -> Result<Manifest> {
    let bytes = layout.read_blob(digest, MANIFEST_LIMIT, "manifest")?;
    let (document, media_type) =
        parse_manifest(&bytes, Some(media_type)).map_err(|source| Error::InvalidDocument {
            what: "manifest",
            url: layout.blob_path(digest).display().to_string(),
            prefix: String::from_utf8_lossy(&bytes[..bytes.len().min(64)]).into_owned(),
            source,
        })?;
    Ok(Manifest {
        bytes,
        digest: digest.clone(),
        media_type,
        document,
    })
}

/// Where the image goes.
pub(crate) enum Target {
    Registry {
        /// Never reads from mirrors: what matters is what the target itself holds.
        client: Client,
        repo: Repository,
        tag: Option<String>,
    },
    Layout {
        layout: OciLayout,
        name: Option<String>,
        /// For an archive: the file to write at the end, and the folder built first.
        archive: Option<(PendingArchive, TempDir)>,
    },
    /// In a dry run, a layout that does not exist yet, or an archive (always written from
    /// scratch): it holds nothing, and nothing is created for it.
    Absent {
        /// The target as the user would write it, with the name used.
        shown: String,
    },
}

impl Target {
    /// Opens the target; without a name of its own it takes `source_name`. In a `dry_run`
    /// nothing is created: an existing layout is only read, and a missing one or an archive
    /// is [`Target::Absent`].
    pub(crate) fn open(
        client: &Client,
        image: &ImageRef,
        source_name: Option<&str>,
        dry_run: bool,
    ) -> Result<Target> {
        let name = image.name().or(source_name).map(str::to_string);
        Ok(match image {
            ImageRef::Layout { dir, .. } if dry_run => {
                if dir.join(crate::layout::LAYOUT_FILE).exists() {
                    Target::Layout {
                        layout: OciLayout::open(dir)?,
                        name,
                        archive: None,
                    }
                } else {
                    Target::Absent {
                        shown: with_name(format!("oci:{}", dir.display()), &name),
                    }
                }
            }
            ImageRef::Archive { file, .. } if dry_run => Target::Absent {
                shown: with_name(format!("oci-archive:{}", file.display()), &name),
            },
            ImageRef::Registry(reference) => {
                if let Some(tag) = &name {
                    // Checked here so that a layout name that is no tag fails before any work.
                    reference.with_tag(tag)?;
                } else if reference.digest().is_none() {
                    // Pushed by digest alone, the image would be in the repository, but no
                    // tag would list or name it. (A target by digest asks for just that.)
                    return Err(Error::InvalidInput(format!(
                        "the source has no tag or name to copy the image under: give the \
                         target one, e.g. {}:TAG",
                        reference.repository()
                    )));
                }
                Target::Registry {
                    client: client.without_mirrors(),
                    repo: reference.repository().clone(),
                    tag: name,
                }
            }
            ImageRef::Layout { dir, .. } => Target::Layout {
                layout: OciLayout::create(dir)?,
                name,
                archive: None,
            },
            ImageRef::Archive { file, .. } => {
                // First, so that an archive that cannot be written fails before any work.
                let pending = PendingArchive::create(file)?;
                let dir = archive::scratch_dir(file)?;
                Target::Layout {
                    layout: OciLayout::create(dir.path())?,
                    name,
                    archive: Some((pending, dir)),
                }
            }
        })
    }

    /// What the target's name points at now, if anything.
    pub(crate) async fn named_digest(&self) -> Result<Option<Digest>> {
        match self {
            Target::Registry { tag: None, .. }
            | Target::Layout { name: None, .. }
            | Target::Absent { .. } => Ok(None),
            Target::Registry {
                client,
                repo,
                tag: Some(tag),
            } => {
                let reference = Reference::from(repo.clone()).with_tag(tag)?;
                absent_is_none(client.check_manifest(&reference).await.map(|h| h.digest))
            }
            Target::Layout {
                layout,
                name: Some(name),
                ..
            } => {
                let found = layout
                    .entries()?
                    .into_iter()
                    .rev()
                    .find(|e| e.name() == Some(name.as_str()));
                Ok(found.and_then(|e| Digest::parse(&e.digest).ok()))
            }
        }
    }

    /// Whether a manifest there means the whole image is there: a registry refuses a
    /// manifest whose blobs or children it lacks, but a layout is files any tool (or
    /// person) may have written in part.
    pub(crate) fn keeps_whole_images(&self) -> bool {
        matches!(self, Target::Registry { .. })
    }

    /// Whether the target holds `manifest` and, in a layout, the config and layers of an
    /// image manifest too (an index's children are manifests checked on their own).
    pub(crate) async fn holds(&self, manifest: &Manifest) -> Result<bool> {
        match self {
            Target::Registry { client, repo, .. } => {
                let reference = Reference::from(repo.clone()).with_digest(manifest.digest.clone());
                Ok(absent_is_none(client.check_manifest(&reference).await)?.is_some())
            }
            Target::Layout { layout, .. } => {
                if layout.blob_size(&manifest.digest)?.is_none() {
                    return Ok(false);
                }
                for blob in super::blobs_of(manifest)? {
                    if layout.blob_size(&blob.digest)?.is_none() {
                        return Ok(false);
                    }
                }
                Ok(true)
            }
            Target::Absent { .. } => Ok(false),
        }
    }

    pub(crate) async fn has_blob(&self, digest: &Digest) -> Result<bool> {
        match self {
            Target::Registry { client, repo, .. } => {
                Ok(client.blob_exists(repo, digest).await?.is_some())
            }
            Target::Layout { layout, .. } => Ok(layout.blob_size(digest)?.is_some()),
            Target::Absent { .. } => Ok(false),
        }
    }

    /// Stores a manifest: by digest, and when `named`, under the target's name too.
    pub(crate) async fn put_manifest(&self, manifest: &Manifest, named: bool) -> Result<()> {
        match self {
            Target::Registry { client, repo, tag } => {
                let reference = match (named, tag) {
                    (true, Some(tag)) => tag.clone(),
                    _ => manifest.digest.to_string(),
                };
                let digest = client
                    .put_manifest(
                        repo,
                        &reference,
                        &manifest.media_type,
                        manifest.bytes.clone(),
                    )
                    .await?;
                check_same(&digest, &manifest.digest)
            }
            Target::Layout { layout, name, .. } => {
                let bytes: Bytes = manifest.bytes.clone();
                let digest = manifest.digest.clone();
                let layout2 = layout.clone();
                blocking(move || layout2.write_blob(&digest, &bytes)).await?;
                if named {
                    let entry = LayoutEntry::new(
                        &manifest.media_type,
                        &manifest.digest,
                        manifest.bytes.len() as u64,
                        name.as_deref(),
                    );
                    layout.add_entry(entry)?;
                }
                Ok(())
            }
            Target::Absent { .. } => Err(dry_run_write()),
        }
    }

    /// Writes an archive target's file; nothing to do for the others.
    pub(crate) async fn finish(self) -> Result<()> {
        if let Target::Layout {
            layout,
            archive: Some((pending, dir)),
            ..
        } = self
        {
            let root = layout.root().to_path_buf();
            blocking(move || {
                let packed = pending.write(&root);
                drop(dir);
                packed
            })
            .await?;
        }
        Ok(())
    }

    /// The target as the user would write it, for reports.
    pub(crate) fn describe(&self) -> String {
        match self {
            Target::Registry { repo, tag, .. } => match tag {
                Some(tag) => format!("{repo}:{tag}"),
                None => repo.to_string(),
            },
            Target::Layout {
                archive: Some((pending, _)),
                name,
                ..
            } => with_name(format!("oci-archive:{}", pending.file().display()), name),
            Target::Layout { layout, name, .. } => {
                with_name(format!("oci:{}", layout.root().display()), name)
            }
            Target::Absent { shown } => shown.clone(),
        }
    }
}

/// A write to [`Target::Absent`]: a bug, since a dry run stops before writing.
fn dry_run_write() -> Error {
    Error::InvalidInput("a dry run writes nothing".into())
}

/// `oci:DIR` or `oci-archive:FILE` with `:NAME` when the image is stored under a name.
fn with_name(end: String, name: &Option<String>) -> String {
    match name {
        Some(name) => format!("{end}:{name}"),
        None => end,
    }
}

/// Moves one blob the target lacks, by the cheapest way both ends allow. Once `stop` is
/// cancelled (another blob failed), it ends early with [`Error::Cancelled`]: an upload at
/// the end of its current request, cancelling its session; a download at once. A blob
/// streamed between registries (its body is one request) and a file copy between layouts
/// are finished.
pub(crate) async fn transfer(
    source: &Source,
    target: &Target,
    blob: &Blob,
    stop: &CancellationToken,
) -> Result<Outcome> {
    match (source, target) {
        (
            Source::Registry { client, reference },
            Target::Registry {
                client: to, repo, ..
            },
        ) => {
            let from = reference.repository();
            if from.registry() == repo.registry() && from != repo {
                // A mount is only a shortcut: a registry that refuses it (no pull right on
                // the source for this token, mounts turned off) still takes the blob sent.
                // Refused for want of that right, it is not asked again for another blob.
                match to.mount_blob_unless_refused(repo, &blob.digest, from).await {
                    Ok(true) => return Ok(Outcome::Mounted),
                    Ok(false) => {}
                    Err(e) => tracing::info!("{e}; sending the blob instead of mounting it"),
                }
            }
            stream_between(client, from, to, repo, blob, stop).await?;
            Ok(Outcome::Copied)
        }
        (Source::Registry { client, reference }, Target::Layout { layout, .. }) => {
            let dest = layout.blob_path(&blob.digest);
            if let Some(dir) = dest.parent() {
                std::fs::create_dir_all(dir).map_err(|e| Error::io("creating", dir, e))?;
            }
            let repo = reference.repository();
            let download = download_blob(
                client,
                repo,
                &blob.digest,
                Some(blob.size),
                &dest,
                &NoProgress,
            );
            // Dropped, a download leaves nothing behind but what a later one resumes from.
            stop.run_until_cancelled(download)
                .await
                .ok_or_else(|| stopped("downloading blob", repo, blob))??;
            Ok(Outcome::Copied)
        }
        (Source::Layout { layout, .. }, Target::Registry { client, repo, .. }) => {
            // `move_blob` asked the registry for the blob already: no second HEAD here.
            // Checked before the upload, so only when the file is to be sent: the registry
            // would refuse a changed file only at the closing PUT, as its own error (a 400,
            // or a body ending early taken for a network fault and retried), naming the
            // target and not the file at fault.
            let (from, digest, size) = (layout.clone(), blob.digest.clone(), blob.size);
            blocking(move || from.verify_blob(&digest, size)).await?;
            let path = layout.blob_path(&blob.digest);
            let outcome = client
                .upload_blob_file_until(repo, &path, &blob.digest, blob.size, &NoProgress, stop)
                .await?;
            Ok(match outcome {
                UploadOutcome::AlreadyPresent => Outcome::Present,
                _ => Outcome::Copied,
            })
        }
        (Source::Layout { layout: from, .. }, Target::Layout { layout: to, .. }) => {
            let path = from.blob_path(&blob.digest);
            let (to, digest, size) = (to.clone(), blob.digest.clone(), blob.size);
            blocking(move || {
                let file =
                    std::fs::File::open(&path).map_err(|e| Error::io("reading", &path, e))?;
                to.write_blob_from(&digest, size, std::io::BufReader::new(file))
            })
            .await?;
            Ok(Outcome::Copied)
        }
        (_, Target::Absent { .. }) => Err(dry_run_write()),
    }
}

/// Streams a blob from one registry into another: the `GET` body is the upload's body. A
/// mirror serving wrong bytes fails the upload and the next place is tried; a body that
/// breaks off, or an upload the target turns away for now (a 429 or 503, after the wait its
/// `Retry-After` asks), is started over under the client's retry policy, until `stop`.
async fn stream_between(
    client: &Client,
    from: &Repository,
    to: &Client,
    repo: &Repository,
    blob: &Blob,
    stop: &CancellationToken,
) -> Result<()> {
    let what = format!("blob {}", blob.digest);
    client
        .read_via_mirrors(from, &what, |client, from| async move {
            let policy = *client.retry_policy();
            let started = std::time::Instant::now();
            let mut attempt = 1;
            loop {
                let response = stop
                    .run_until_cancelled(client.blob_response(&from, &blob.digest, 0))
                    .await
                    .ok_or_else(|| stopped("downloading blob", &from, blob))??;
                let at = location(&from, Some(blob.digest.to_string()));
                let error = match to
                    .push_blob_streamed(repo, &blob.digest, blob.size, response, at, stop)
                    .await
                {
                    Ok(()) => return Ok(()),
                    Err(e) if e.is_retryable() => e,
                    Err(e) => return Err(e),
                };
                // A target that rate-limits the upload says when to start it again.
                let outcome = Attempt::of(&error);
                match retry::decide(&policy, attempt, started.elapsed(), true, outcome, fastrand::f64()) {
                    Decision::GiveUp => return Err(error),
                    Decision::RetryAfter(wait) => {
                        tracing::info!(digest = %blob.digest, error = %error, "streamed copy broke off; starting the blob again");
                        if stop.run_until_cancelled(tokio::time::sleep(wait)).await.is_none() {
                            return Err(error);
                        }
                        attempt += 1;
                    }
                }
            }
        })
        .await
}

/// The error of a blob's `operation` on `repo` that `stop` ended.
fn stopped(operation: &'static str, repo: &Repository, blob: &Blob) -> Error {
    Error::Cancelled {
        operation,
        at: location(repo, Some(blob.digest.to_string())),
    }
}

fn check_same(stored: &Digest, sent: &Digest) -> Result<()> {
    if stored == sent {
        Ok(())
    } else {
        Err(Error::InvalidInput(format!(
            "the manifest was stored as {stored}, not {sent}"
        )))
    }
}

/// `Ok(None)` for a 404, the value otherwise.
fn absent_is_none<T>(result: Result<T>) -> Result<Option<T>> {
    match result {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.status() == Some(404) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Runs file work off the async threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| Error::io("copying", PathBuf::new(), std::io::Error::other(e)))?
}
