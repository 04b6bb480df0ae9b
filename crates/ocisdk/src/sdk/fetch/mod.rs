//! Pulling an SDK tarball out of its image, whichever of the two shapes it has:
//! (a) the layer IS the tarball (pushed as an artifact file), or
//! (b) the layer is a filesystem tar holding the tarball (`FROM scratch` + `COPY`).

use std::path::{Path, PathBuf};

use crate::content::{
    choose_layer, download_blob, download_blob_tapped, Files, LayerChoice, LayerInfo,
};
use crate::digest::{Algorithm, Digest, Hasher};
use crate::error::ErrorKind;
use crate::extract::{extract_member, is_sdk_tarball_name, ExtractError, MemberSelector};
use crate::progress::Reporter;
use crate::sdk::catalogue::{Catalogue, Resolved};
use crate::sdk::error::SdkError;
use crate::sdk::overlap::{
    check_published_sha256, join, start_unpacking, stream_member, InstallInto, Member, Unpacking,
};
use crate::sdk::trust;
use crate::sdk::turn::Turn;

mod files;
mod tarball_record;

pub(crate) use files::{cache_stem, remove_stale_temp_files, tarball_stem, write_atomically};
use files::{
    place_by_content, remove_if_exists, sidecar_of, temp_beside, LAYER_TEMP, MEMBER_TEMP,
    TARBALL_EXTENSIONS,
};
use tarball_record::{cached_record, sha256_of_file, tarball_sha256, TarballRecord};
pub(crate) use tarball_record::{HashingWriter, RECORD_DIR};

/// Manifest annotation with the sha256 of the SDK tarball (publishing script).
pub const ANNOTATION_SHA256: &str = "org.oryx.sdk.sha256";
/// Suffix of the sidecar file that records which manifest a tarball came from.
pub const SIDECAR_SUFFIX: &str = ".manifest-digest";

/// What [`Catalogue::pull_tapped`] did.
pub(crate) struct Tapped {
    /// The tarball pulled.
    pub(crate) pulled: PulledSdk,
    /// Whether the SDK was unpacked as it downloaded; else the caller unpacks the file.
    pub(crate) unpacked: bool,
    /// The tarball's sha256, as verified (against the layer's digest, or the cache's record
    /// when it came from the cache): an unpack from the file checks it again as it reads.
    pub(crate) sha256: Digest,
}

/// A pulled SDK tarball.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PulledSdk {
    /// The tarball, `{dir}/{platform}-{os}-{version}.tar.gz`; `.tar.zst` when it is zstd,
    /// `.tar` when it is a plain tar.
    #[serde(serialize_with = "crate::serde_path::lossy")]
    pub path: PathBuf,
    /// The sidecar holding the manifest digest.
    #[serde(serialize_with = "crate::serde_path::lossy")]
    pub sidecar: PathBuf,
    /// The digest of the manifest the tag pointed at.
    pub manifest_digest: Digest,
    /// True when the tarball was already there and current: nothing was downloaded.
    pub cached: bool,
    /// `artifact` (the layer is the tarball) or `filesystem-layer` (the layer holds it).
    pub shape: &'static str,
}

impl Catalogue {
    /// The file name of a gzip'd SDK tarball: `{platform}-{os}-{version}.tar.gz`. A pulled
    /// tarball compressed otherwise is named for what it is ([`PulledSdk::path`]).
    ///
    /// For .NET the version is the SDK's alone, which several runtimes' images share
    /// (`8.0.100_8.0.0`, `8.0.100_8.0.1`): pulled into one folder, each replaces the other's
    /// tarball, so pull each runtime into a folder of its own. (Scripts rely on this name;
    /// installs cache the tarball under one that names the runtime too.)
    pub fn tarball_name(&self, resolved: &Resolved) -> String {
        format!("{}{}", tarball_stem(resolved), TARBALL_EXTENSIONS[0])
    }

    /// The file name under which installs keep `resolved`'s tarball in the cache while it
    /// downloads (and gzip'd, after): [`cache_stem`]'s, which names a .NET image's runtime.
    pub(crate) fn cached_tarball_name(&self, resolved: &Resolved) -> String {
        format!("{}{}", cache_stem(resolved), TARBALL_EXTENSIONS[0])
    }

    /// Where the record of the image `manifest` is kept: `None` without a cache folder it
    /// can trust, where no record is read or written.
    fn record_path(&self, manifest: &Digest) -> Option<PathBuf> {
        let name = format!("{}-{}", manifest.algorithm(), manifest.hex());
        Some(self.trusted_cache()?.join(RECORD_DIR).join(name))
    }

    /// This catalogue, or when its cache folder cannot be trusted one whose downloads do
    /// not go through that folder either.
    fn with_usable_cache(&self) -> std::borrow::Cow<'_, Catalogue> {
        if self.trusted_cache().is_some() || self.client.cache_dir().is_none() {
            return std::borrow::Cow::Borrowed(self);
        }
        std::borrow::Cow::Owned(Catalogue {
            client: self.client.without_cache(),
            ..self.clone()
        })
    }

    /// Writes the SDK tarball to `dir`, verified, plus a sidecar with the manifest digest.
    /// When both exist and a `HEAD` of the tag returns the recorded digest, nothing is
    /// downloaded. Otherwise it costs one manifest GET (two for an index) and the blob. The
    /// manifest [`Catalogue::resolve`] fetched for `resolved`, if it did, stands in for
    /// that HEAD or GET. A platform or OS flavour that is no single folder name is refused
    /// ([`SdkError::InvalidSetting`]): the file would land outside `dir`.
    ///
    /// Pulls of one SDK into one folder, from threads or processes, take turns: a second
    /// one says through `reporter`'s [`Reporter::step`] that it waits, and then finds the
    /// first one's tarball there and current. With its turn, a pull first removes the
    /// temporary files that a pull of this SDK into `dir` killed outright left there.
    ///
    /// The tarball is named for the SDK version ([`Catalogue::tarball_name`]): two .NET
    /// runtimes of one SDK version pulled into one folder replace each other there.
    pub async fn pull(
        &self,
        resolved: &Resolved,
        dir: &Path,
        reporter: &dyn Reporter,
    ) -> Result<PulledSdk, SdkError> {
        super::install::check_names(resolved)?;
        std::fs::create_dir_all(dir).map_err(|e| SdkError::io("creating", dir, e))?;
        // Each pull lands its download under the gzip name and renames it for what it holds,
        // removing the other names: side by side, one would rename or remove the other's
        // file. (Installs take the same turns in the cache, under install's own lock.) No
        // turn in a folder this user may not write: the pull can only find its tarball there.
        let name = self.tarball_name(resolved);
        let waiting = format!(
            "waiting for another pull of {} {} ({}) into {}",
            resolved.platform,
            resolved.version,
            resolved.os,
            dir.display()
        );
        let lock = dir.join(format!(".{name}.lock"));
        let turn = Turn::take(&lock, reporter, &waiting).await?;
        // A pull killed outright (SIGKILL, a power cut) left its temporary files, which no
        // one else removes: the folder is the user's. While this pull has the turn, no other
        // pull of this SDK into it is writing any of them.
        if turn.is_some() {
            let (dir, stem) = (dir.to_path_buf(), tarball_stem(resolved));
            let stale = join(tokio::task::spawn_blocking(move || {
                remove_stale_temp_files(&dir, &stem)
            }))
            .await?;
            if stale > 0 {
                tracing::info!(stale, "removed the temporary files of an interrupted pull");
            }
        }
        self.pull_tapped(resolved, dir, &tarball_stem(resolved), reporter, None)
            .await
            .map(|tapped| tapped.pulled)
    }

    /// Like [`Catalogue::pull`], the tarball named `stem` (without its extension) in `dir`,
    /// and with `install_into`, also unpacks the tarball there while it downloads. Returns
    /// whether it did: `false` when the tarball came from the cache or from a layer that
    /// had to be looked into on disk, and the caller unpacks the file.
    pub(crate) async fn pull_tapped(
        &self,
        resolved: &Resolved,
        dir: &Path,
        stem: &str,
        reporter: &dyn Reporter,
        install_into: Option<&Path>,
    ) -> Result<Tapped, SdkError> {
        let mut this = self.with_usable_cache();
        // An install pulls into the cache, or a folder of its own beside the install: those
        // files are ocisdk's, whatever the umask; a pull's are the user's.
        if install_into.is_some() {
            let own = this.client.with_own_files();
            this.to_mut().client = own;
        }
        match this
            .pull_once(resolved, dir, stem, reporter, install_into)
            .await
        {
            // A mirror served bytes that failed verification. A reader alongside the
            // download took them as they came, so the download could not pass over to the
            // next place mid-stream: the whole pull is made again from the upstream.
            Err(e)
                if e.kind() == crate::error::ErrorKind::Verification
                    && !self.client.mirror_list().is_empty() =>
            {
                tracing::warn!("{e}; pulling from the upstream registry instead of the mirror");
                let upstream = Catalogue {
                    client: this.client.without_mirrors(),
                    settings: this.settings.clone(),
                    trusted_root: this.trusted_root.clone(),
                    trusted_cache: this.trusted_cache.clone(),
                    warned_without_locks: this.warned_without_locks.clone(),
                    warned_tarball_folders: this.warned_tarball_folders.clone(),
                };
                // The manifest resolving fetched may be the mirror's too: all from upstream.
                let resolved = resolved.without_fetched_manifest();
                upstream
                    .pull_once(&resolved, dir, stem, reporter, install_into)
                    .await
            }
            result => result,
        }
    }

    /// [`Catalogue::pull_tapped`] from the places the client is set up with.
    async fn pull_once(
        &self,
        resolved: &Resolved,
        dir: &Path,
        stem: &str,
        reporter: &dyn Reporter,
        install_into: Option<&Path>,
    ) -> Result<Tapped, SdkError> {
        std::fs::create_dir_all(dir).map_err(|e| SdkError::io("creating", dir, e))?;
        let named = |extension: &str| dir.join(format!("{stem}{extension}"));
        // Where the download lands; `place_by_content` names it for what it holds.
        let path = named(TARBALL_EXTENSIONS[0]);
        let copy_on_disk = TARBALL_EXTENSIONS
            .iter()
            .map(|extension| named(extension))
            .find(|tarball| tarball.is_file() && sidecar_of(tarball).is_file());

        // The manifest resolving fetched names the current digest, as a HEAD would, and is
        // the one a GET would bring. Else, with a copy on disk, a HEAD tells whether it is
        // current; without one, the manifest is needed anyway, and one GET both names the
        // digest and brings the manifest.
        let fetched = resolved.fetched_manifest().cloned();
        let (top_digest, top) = if let Some(copy) = copy_on_disk {
            let digest = match &fetched {
                Some(top) => top.digest.clone(),
                None => self.client.head_manifest(&resolved.reference).await?.digest,
            };
            let sidecar = sidecar_of(&copy);
            let cached = match self.record_path(&digest) {
                Some(record) => cached_record(&copy, &sidecar, &record, &digest).await,
                None => None,
            };
            if let Some(record) = cached {
                let pulled = PulledSdk {
                    path: copy,
                    sidecar,
                    manifest_digest: digest,
                    cached: true,
                    shape: record.shape,
                };
                return Ok(Tapped {
                    pulled,
                    unpacked: false,
                    sha256: record.tarball,
                });
            }
            (digest, fetched)
        } else {
            let top = match fetched {
                Some(top) => top,
                None => self.client.manifest(&resolved.reference).await?,
            };
            (top.digest.clone(), Some(top))
        };
        let record_path = self.record_path(&top_digest);
        // Pin the digest first seen, so a tag moved meanwhile cannot mix two images.
        let pinned = resolved.reference.with_digest(top_digest.clone());
        let manifest = match top {
            Some(top) => self.client.platform_manifest(&pinned, top, None).await?,
            None => self.client.resolve_manifest(&pinned, None).await?,
        };
        let layer = choose_layer(&pinned, &manifest, LayerChoice::Only)?;
        let published_sha256 = manifest.annotations().get(ANNOTATION_SHA256).cloned();

        // A stale sidecar must not vouch for the new tarball while it is being replaced.
        for extension in TARBALL_EXTENSIONS {
            remove_if_exists(&sidecar_of(&named(extension)))?;
        }
        let is_artifact = layer.title.as_deref().is_some_and(is_sdk_tarball_name);
        // A download in parallel ranges (--chunks) writes out of order, so nothing can read
        // alongside it: the tarball is unpacked once it is complete.
        let chunked = self.downloads_in_chunks(layer.size);
        let into = install_into.map(|target| InstallInto::new(target, resolved, &top_digest));
        let unpack_into = into.as_ref().filter(|_| !chunked);
        // An archive's errors say what is wrong in it, not which image it came from.
        let in_image = |e: SdkError| e.in_image(&pinned);
        let fetched = if is_artifact {
            self.fetch_artifact(&pinned, &layer, &path, reporter, unpack_into)
                .await
                .map_err(in_image)?
        } else {
            // In the MCR layout the layer holds the tarball under the name a pull gives it.
            let member = Member {
                name: self.tarball_name(resolved),
                reference: pinned.clone(),
                published_sha256: published_sha256.clone(),
            };
            self.unwrap_layer(&layer, member, &path, reporter, unpack_into)
                .await
                .map_err(in_image)?
        };
        let placed = check_published_sha256(
            &pinned,
            published_sha256.as_deref(),
            &fetched.record.tarball,
        )
        .and_then(|()| place_by_content(&path, stem))
        .inspect_err(|_| {
            // Never leave an SDK that fails its published checksum.
            let _ = std::fs::remove_file(&path);
        });
        let accepted = placed.is_ok();
        let path = placed.as_ref().map_or(path, Clone::clone);
        let sidecar = sidecar_of(&path);
        let recorded = placed.and_then(|_| {
            // The record only spares the next pull a download (without it, a copy on disk
            // is not trusted), so a cache that cannot be written does not fail this one.
            if let Some(record_path) = &record_path {
                let record = record_path.parent().map_or(Ok(()), trust::create_folders);
                if let Err(e) = record.and_then(|()| fetched.record.write(record_path)) {
                    tracing::warn!("{e}; the next pull of this SDK downloads it again");
                }
            }
            // The sidecar last: its presence vouches for everything before it.
            let files = self.client.files();
            write_atomically(&sidecar, format!("{top_digest}\n").as_bytes(), files)
        });
        let unpacked = match fetched.unpacking {
            Some(unpacking) => unpacking.finish(accepted).await.map_err(in_image)?,
            None => false,
        };
        match recorded {
            // For an install the record and sidecar only spare a later download, so the
            // verified SDK is still installed; a pull's output includes the sidecar.
            Err(e) if accepted && install_into.is_some() => {
                tracing::warn!(
                    "{e}; the SDK is installed, and its next install downloads it again"
                );
            }
            recorded => recorded?,
        }
        let pulled = PulledSdk {
            path,
            sidecar,
            manifest_digest: top_digest,
            cached: false,
            shape: fetched.record.shape,
        };
        Ok(Tapped {
            pulled,
            unpacked,
            sha256: fetched.record.tarball,
        })
    }

    /// Downloads a layer that is the tarball itself to `dest`, unpacking it into
    /// `install_into` as it comes.
    async fn fetch_artifact(
        &self,
        pinned: &crate::reference::Reference,
        layer: &LayerInfo,
        dest: &Path,
        reporter: &dyn Reporter,
        install_into: Option<&InstallInto>,
    ) -> Result<Fetched, SdkError> {
        let repository = pinned.repository();
        let mut record = TarballRecord {
            tarball: layer.digest.clone(),
            shape: "artifact",
        };
        let Some(target) = install_into else {
            // Alone, a download whose bytes fail verification at a mirror is made again at
            // the next place (with a reader alongside it, `pull_tapped` does that over).
            download_blob(
                &self.client,
                repository,
                &layer.digest,
                Some(layer.size),
                dest,
                reporter,
            )
            .await?;
            record.tarball = tarball_sha256(&layer.digest, dest).await?;
            let unpacking = None;
            return Ok(Fetched { record, unpacking });
        };
        let resumes = self.resumes_partial(&layer.digest);
        let (tap, task) = start_unpacking(target);
        let downloaded = download_blob_tapped(
            &self.client,
            repository,
            &layer.digest,
            Some(layer.size),
            dest,
            reporter,
            Some(tap),
        )
        .await;
        let gate = match downloaded {
            Ok((_, gate)) => gate,
            Err(e) => {
                // The tap is gone, so the unpacker fails and commits nothing.
                let _ = task.await;
                if restarts_without_partial(resumes, &e) {
                    let again = self.fetch_artifact(pinned, layer, dest, reporter, install_into);
                    return Box::pin(again).await;
                }
                return Err(e.into());
            }
        };
        let unpacking = Unpacking::Gated { gate, task };
        match tarball_sha256(&layer.digest, dest).await {
            Ok(sha256) => record.tarball = sha256,
            Err(e) => {
                let _ = unpacking.finish(false).await;
                return Err(e);
            }
        }
        let unpacking = Some(unpacking);
        Ok(Fetched { record, unpacking })
    }

    /// Downloads a layer without a tarball title and finds the tarball in it: a filesystem
    /// tar holding `member.name` (or a single SDK tarball) gives that member; otherwise the
    /// layer itself is the tarball. The member named so is copied out as the layer
    /// downloads and, with `install_into`, unpacked there at the same time; the other
    /// shapes are looked for in the downloaded layer.
    async fn unwrap_layer(
        &self,
        layer: &LayerInfo,
        member: Member,
        dest: &Path,
        reporter: &dyn Reporter,
        install_into: Option<&InstallInto>,
    ) -> Result<Fetched, SdkError> {
        let repository = member.reference.repository().clone();
        if self.downloads_in_chunks(layer.size) {
            let layer_file = temp_beside(dest, LAYER_TEMP, self.client.files())?;
            download_blob(
                &self.client,
                &repository,
                &layer.digest,
                Some(layer.size),
                &layer_file,
                reporter,
            )
            .await?;
            return self.look_inside(layer, layer_file, member.name, dest).await;
        }
        let resumes = self.resumes_partial(&layer.digest);
        let for_restart = member.clone();
        let layer_file = temp_beside(dest, LAYER_TEMP, self.client.files())?;
        let copy = temp_beside(dest, MEMBER_TEMP, self.client.files())?;
        let copy_to = copy.to_path_buf();
        let (tap, reader) = crate::content::tap::tap();
        let target = install_into.cloned();
        let name = member.name.clone();
        let task = tokio::task::spawn_blocking(move || {
            stream_member(reader, &member, &copy_to, target.as_ref())
        });
        let downloaded = download_blob_tapped(
            &self.client,
            &repository,
            &layer.digest,
            Some(layer.size),
            &layer_file,
            reporter,
            Some(tap),
        )
        .await;
        match downloaded {
            Ok((_, Some(gate))) => gate.open().await,
            Ok((_, None)) => {}
            Err(e) => {
                // The tap is gone, so the unpacker fails and commits nothing.
                let _ = task.await;
                if restarts_without_partial(resumes, &e) {
                    let again = self.unwrap_layer(layer, for_restart, dest, reporter, install_into);
                    return Box::pin(again).await;
                }
                return Err(e.into());
            }
        }
        match join(task).await?? {
            Some(tarball) => {
                copy.persist(dest)
                    .map_err(|e| SdkError::io("moving into place", dest, e.error))?;
                Ok(Fetched {
                    record: TarballRecord {
                        tarball,
                        shape: "filesystem-layer",
                    },
                    unpacking: install_into.map(|_| Unpacking::Done),
                })
            }
            None => self.look_inside(layer, layer_file, name, dest).await,
        }
    }

    /// Finds the tarball in a downloaded layer: the member `name`, else the only SDK tarball
    /// in it, else (not a tar at all) the layer itself.
    async fn look_inside(
        &self,
        layer: &LayerInfo,
        layer_file: tempfile::TempPath,
        name: String,
        dest: &Path,
    ) -> Result<Fetched, SdkError> {
        let dest = dest.to_path_buf();
        let (layer_digest, files) = (layer.digest.clone(), self.client.files());
        let record = join(tokio::task::spawn_blocking(move || {
            find_tarball(layer_file, &layer_digest, &name, &dest, files)
        }))
        .await??;
        Ok(Fetched {
            record,
            unpacking: None,
        })
    }
}

impl Catalogue {
    /// Whether a layer of `size` bytes is downloaded in parallel ranges (`--chunks`).
    fn downloads_in_chunks(&self, size: u64) -> bool {
        crate::content::chunks_worth_it(size, self.client.parallel_chunks())
    }

    /// Whether a download of `digest` would resume from bytes an earlier run left. Such
    /// bytes are only proven by the whole blob's digest; when that fails, the download
    /// (which discards them) is made again from the start, with a new unpacker, since the
    /// one alongside already read them.
    fn resumes_partial(&self, digest: &Digest) -> bool {
        crate::content::has_partial(&self.client, digest)
    }
}

/// [`Catalogue::look_inside`]'s work, on a blocking thread.
fn find_tarball(
    layer_file: tempfile::TempPath,
    layer_digest: &Digest,
    name: &str,
    dest: &Path,
    files: Files,
) -> Result<TarballRecord, SdkError> {
    for selector in [MemberSelector::named(name), MemberSelector::any()] {
        let member = temp_beside(dest, MEMBER_TEMP, files)?;
        match copy_member(&layer_file, &selector, &member) {
            Ok(tarball) => {
                member
                    .persist(dest)
                    .map_err(|e| SdkError::io("moving into place", dest, e.error))?;
                let shape = "filesystem-layer";
                return Ok(TarballRecord { tarball, shape });
            }
            Err(SdkError::Extract(e)) if matches!(*e, ExtractError::MemberNotFound { .. }) => {
                continue
            }
            // Not a tar at all (an opaque single-file artifact), or a tar of the SDK's own
            // files that happens to hold a small tarball.
            Err(SdkError::Extract(e))
                if matches!(
                    *e,
                    ExtractError::Archive { .. } | ExtractError::MemberAmongFiles { .. }
                ) =>
            {
                break
            }
            Err(e) => return Err(e),
        }
    }
    let tarball = if layer_digest.algorithm() == Algorithm::Sha256 {
        layer_digest.clone()
    } else {
        sha256_of_file(&layer_file)?
    };
    layer_file
        .persist(dest)
        .map_err(|e| SdkError::io("moving into place", dest, e.error))?;
    Ok(TarballRecord {
        tarball,
        shape: "artifact",
    })
}

/// A tarball fetched into the cache, and the unpacker that read it as it came, if any.
struct Fetched {
    record: TarballRecord,
    unpacking: Option<Unpacking>,
}

/// Streams the selected member of a layer into `out`, returning the member's sha256.
fn copy_member(layer: &Path, selector: &MemberSelector, out: &Path) -> Result<Digest, SdkError> {
    let input = std::fs::File::open(layer).map_err(|e| SdkError::io("opening", layer, e))?;
    let file = std::fs::File::create(out).map_err(|e| SdkError::io("creating", out, e))?;
    let mut tee = HashingWriter {
        inner: std::io::BufWriter::with_capacity(256 * 1024, file),
        hasher: Hasher::new(Algorithm::Sha256),
    };
    extract_member(
        std::io::BufReader::with_capacity(256 * 1024, input),
        selector,
        &mut tee,
    )?;
    let file = tee
        .inner
        .into_inner()
        .map_err(|e| SdkError::io("writing", out, e.into_error()))?;
    file.sync_all()
        .map_err(|e| SdkError::io("writing", out, e))?;
    Ok(tee.hasher.finish())
}

/// Whether a download that failed with `e` is made again from the start, saying so: when it
/// resumed a partial from the cache (`resumed`) and the whole failed verification, the
/// partial was at fault, and the download discarded it.
fn restarts_without_partial(resumed: bool, e: &crate::Error) -> bool {
    let again = resumed && e.kind() == ErrorKind::Verification;
    if again {
        crate::content::warn_discarded_partial(e);
    }
    again
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The cache tells a tarball's files by this suffix too.
    #[test]
    fn the_cache_knows_the_sidecar_suffix() {
        assert_eq!(crate::cache::SIDECAR_SUFFIX, SIDECAR_SUFFIX);
    }
}
