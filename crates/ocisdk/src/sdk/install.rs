//! Installing SDKs into `{root}/{platform}/{version}` (listing and removing them: `installed.rs`).
//!
//! An install unpacks into a temporary folder beside the target and renames it into place
//! with the sentinel already inside, so a folder either is a finished install or does not
//! exist. Concurrent installs of one SDK, from threads or processes, serialise on a lock
//! file: the first downloads and unpacks, the others wait and find it done. Installs into
//! other roots serialise on a second lock, the cached tarball's, and install from the
//! cache. Under those locks, what a killed install left (its staging folder, its temporary
//! files beside the tarball) is removed before anything else. On a file system that cannot
//! lock files, installs go ahead without the locks (and leave such leftovers be).

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::digest::Digest;
use crate::lock_file::locks_unsupported;
use crate::progress::Reporter;
use crate::sdk::catalogue::{Catalogue, Resolved};
use crate::sdk::error::SdkError;
use crate::sdk::fetch::PulledSdk;
use crate::sdk::overlap::{join, unpack, InstallInto};
use crate::sdk::record::InstallRecord;
use crate::sdk::trust;
use crate::sdk::turn::wait_for_lock;
use crate::sdk::version::SdkVersion;

/// The file that marks a finished install (the name Oryx uses).
pub const SENTINEL: &str = ".oryx-sdkdownload-sentinel";

/// The cache folder of SDK tarballs pulled for installs, one folder per repository in it.
const TARBALL_DIR: &str = "sdk-tarballs-v1";

/// An installed SDK.
#[derive(Debug, Clone, serde::Serialize)]
pub struct InstalledSdk {
    /// The platform, e.g. `python`.
    pub platform: String,
    /// The version (the folder name).
    pub version: String,
    /// The install folder.
    #[serde(serialize_with = "crate::serde_path::lossy")]
    pub path: PathBuf,
    /// True when it was already installed and nothing was done.
    pub cached: bool,
    /// The manifest it came from, when this call installed it; in
    /// [`Catalogue::list_installed`], as the install's record names it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manifest_digest: Option<Digest>,
    /// The .NET runtime of the image it came from: `Some(None)` for an image of no runtime
    /// (every platform but .NET). From [`Catalogue::install`], when this call installed it;
    /// in [`Catalogue::list_installed`], as the install's record names it (`None` for an
    /// install made before records were kept).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runtime: Option<Option<String>>,
}

impl Catalogue {
    /// Where a version of a platform is installed.
    pub fn install_path(&self, platform: &str, version: &str) -> PathBuf {
        self.settings.root.join(platform).join(version)
    }

    /// Checks that the install root can be trusted: the root and every folder above it are
    /// owned by this (effective) user or root, and none may be written by group or others
    /// (above the root, unless sticky, as `/tmp` is). Another user who could change one
    /// could replace what builds run ([`SdkError::UntrustedRoot`]). A root that does not
    /// exist yet passes: [`Catalogue::install`] makes it, checked the same way.
    /// [`Catalogue::install`], [`Catalogue::list_installed`] and [`Catalogue::uninstall`]
    /// check it themselves; call this to refuse a root before anything else is done.
    pub fn check_root(&self) -> Result<(), SdkError> {
        self.trusted_root(false).map(drop)
    }

    /// The resolved install root, checked as [`Catalogue::check_root`] says (once: it stays
    /// trusted), after making it with `create`; `None` when it does not exist.
    pub(super) fn trusted_root(&self, create: bool) -> Result<Option<&Path>, SdkError> {
        if let Some(resolved) = self.trusted_root.get() {
            return Ok(Some(resolved));
        }
        let root = &self.settings.root;
        if create {
            trust::create_folders(root)?;
        }
        if trust::declared_safe(root, &self.settings.safe_folders) {
            return Ok(std::fs::canonicalize(root)
                .ok()
                .map(|resolved| self.trusted_root.get_or_init(|| resolved).as_path()));
        }
        match trust::check_path(root, root, trust::Place::Inside)? {
            Some(resolved) => Ok(Some(self.trusted_root.get_or_init(|| resolved))),
            None => Ok(None),
        }
    }

    /// Checks the folders of `rest` (a platform folder, or its version folder) under the
    /// trusted root, which is made with `create`; `None` when one of them does not exist.
    pub(super) fn trusted_folder(
        &self,
        rest: &Path,
        create: bool,
    ) -> Result<Option<PathBuf>, SdkError> {
        let Some(root) = self.trusted_root(create)? else {
            return Ok(None);
        };
        if trust::declared_safe(root, &self.settings.safe_folders) {
            let folder = root.join(rest);
            return Ok(folder.exists().then_some(folder));
        }
        trust::check_below(&self.settings.root, root, rest)
    }

    /// Whether `{platform}/{version}` under the root is a finished install in folders that
    /// can be trusted (an error when they cannot).
    pub(super) fn is_installed(&self, platform: &str, version: &str) -> Result<bool, SdkError> {
        let rest = Path::new(platform).join(version);
        Ok(self.trusted_folder(&rest, false)?.is_some()
            && self
                .install_path(platform, version)
                .join(SENTINEL)
                .is_file())
    }

    /// [`Catalogue::is_installed`], and when `runtime` is named, from an image of that
    /// runtime, or with no record to say otherwise.
    pub(super) fn is_installed_from(
        &self,
        platform: &str,
        version: &str,
        runtime: Option<&SdkVersion>,
    ) -> Result<bool, SdkError> {
        Ok(self.is_installed(platform, version)?
            && runtime.is_none_or(|runtime| {
                let record = InstallRecord::read(&self.install_path(platform, version));
                record.is_none_or(|record| record.has_runtime(Some(runtime)))
            }))
    }

    /// Where pulled tarballs are cached for installs, one folder per repository, in the
    /// cache folder `cache`.
    fn tarball_cache(cache: &Path, resolved: &Resolved) -> PathBuf {
        let repo = resolved.reference.repository();
        let host = repo.registry().replace(':', "_");
        cache.join(TARBALL_DIR).join(host).join(repo.path())
    }

    /// The cache folder, when it can be trusted as the install root is (see
    /// [`Catalogue::check_root`]); else `None`, after a warning (once per catalogue).
    ///
    /// The cache vouches for what an install unpacks: the tarball, its sidecar (the manifest
    /// digest, which anyone may read from the registry) and its record (the tarball's
    /// sha256). Whoever may write the cache folder, one above it, or the folders of tarballs
    /// and records in it, can replace all three consistently, and the next install from the
    /// cache (root's too) unpacks theirs. Such a cache is not used at all, as one that
    /// cannot be written: installs and pulls download, and stage beside where they write.
    /// The folders of one repository's tarballs are checked by each install that uses them
    /// ([`Catalogue::trusted_tarball_cache`]).
    pub(crate) fn trusted_cache(&self) -> Option<&Path> {
        self.trusted_cache
            .get_or_init(|| {
                let cache = &self.settings.cache_dir;
                // Made here, as the root is, so that it passes the check whatever the umask;
                // when that fails the cache cannot be written, which is reported where it is.
                let _ = trust::create_folders(cache);
                if trust::declared_safe(cache, &self.settings.safe_folders) {
                    return Some(cache.clone());
                }
                let checked =
                    trust::check_path(cache, cache, trust::Place::Inside).and_then(|resolved| {
                        // Older versions made these with the umask, and another user may have
                        // made them first in a cache folder shared then.
                        let Some(resolved) = resolved else {
                            return Ok(());
                        };
                        for area in [TARBALL_DIR, crate::sdk::fetch::RECORD_DIR] {
                            trust::check_below(cache, &resolved, Path::new(area))?;
                        }
                        Ok(())
                    });
                match checked {
                    // As set, not resolved: errors then name the folder the user chose.
                    Ok(()) => Some(cache.clone()),
                    Err(e) => {
                        tracing::warn!("{}", crate::sdk::error::untrusted_cache_text(cache, &e));
                        None
                    }
                }
            })
            .as_deref()
    }

    /// The folder of `resolved`'s repository in the tarball cache of the trusted cache folder
    /// `cache`, when each folder from the cache folder down to it can be trusted (missing
    /// ones are made by the caller, inside folders that are); else `None`, after a warning
    /// (once per folder that failed, per catalogue): such an install does without the cache.
    fn trusted_tarball_cache(&self, cache: &Path, resolved: &Resolved) -> Option<PathBuf> {
        let folder = Self::tarball_cache(cache, resolved);
        if trust::declared_safe(cache, &self.settings.safe_folders) {
            return Some(folder);
        }
        let rest = folder.strip_prefix(cache).unwrap_or(&folder);
        let checked = trust::check_path(cache, cache, trust::Place::Inside).and_then(|resolved| {
            match resolved {
                Some(resolved) => trust::check_below(cache, &resolved, rest).map(drop),
                // Missing: the caller makes it, or says why it cannot.
                None => Ok(()),
            }
        });
        match checked {
            Ok(()) => Some(folder),
            Err(e) => {
                // Once per folder that failed: by the folder the warning names, so that the
                // repositories of one untrusted host folder share it too.
                let named = match &e {
                    SdkError::UntrustedRoot { path, .. } => path.clone(),
                    _ => folder,
                };
                let mut warned = self
                    .warned_tarball_folders
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if warned.insert(named) {
                    tracing::warn!("{}", crate::sdk::error::untrusted_cache_text(cache, &e));
                }
                None
            }
        }
    }

    /// This catalogue without its cache folder, for one install that cannot trust the
    /// folders it would use there: no tarball, record or partial download is read or
    /// written in it.
    fn without_cache(&self) -> Catalogue {
        Catalogue {
            client: self.client.without_cache(),
            settings: self.settings.clone(),
            trusted_root: self.trusted_root.clone(),
            trusted_cache: std::sync::Arc::new(std::sync::OnceLock::from(None)),
            warned_without_locks: self.warned_without_locks.clone(),
            warned_tarball_folders: self.warned_tarball_folders.clone(),
        }
    }

    /// Installs a resolved SDK. A second install of the same version does nothing (not even a
    /// request) unless `force` is set. A platform, OS flavour or version that is not one folder name
    /// (a separator, `..`, a leading dot) is refused ([`SdkError::InvalidSetting`]): it
    /// would install outside the root. So is a root, platform or version folder another
    /// user could change ([`SdkError::UntrustedRoot`], see [`Catalogue::check_root`]): the
    /// root and platform folder are made when missing, writable by this user alone.
    pub async fn install(
        &self,
        resolved: &Resolved,
        force: bool,
        reporter: &dyn Reporter,
    ) -> Result<InstalledSdk, SdkError> {
        check_names(resolved)?;
        let version = resolved.version.to_string();
        let target = self.install_path(&resolved.platform, &version);
        let done = |cached, manifest_digest: Option<Digest>| InstalledSdk {
            platform: resolved.platform.clone(),
            version: version.clone(),
            path: target.clone(),
            cached,
            // What this call installed, as the install's record says it.
            runtime: manifest_digest
                .is_some()
                .then(|| resolved.runtime().map(|r| r.to_string())),
            manifest_digest,
        };
        self.trusted_root(true)?;
        if !force && self.is_installed(&resolved.platform, &version)? {
            self.check_same_runtime(resolved, &target)?;
            return Ok(done(true, None));
        }
        let platform_dir = target.parent().unwrap_or(&self.settings.root).to_path_buf();
        trust::create_folders(&platform_dir)?;
        self.trusted_folder(Path::new(&resolved.platform), true)?;
        let lock = self
            .lock(&platform_dir.join(format!(".{version}.lock")))
            .await?;
        // Without the lock another install of this version may be unpacking beside the
        // target: its staging folder looks like one a killed install left.
        if lock.is_some() {
            remove_leftovers(&target).await?;
        }
        // Another process may have finished while we waited for the lock.
        if !force && self.is_installed(&resolved.platform, &version)? {
            self.check_same_runtime(resolved, &target)?;
            return Ok(done(true, None));
        }
        let pulled = self.pull_and_unpack(resolved, &target, reporter).await?;
        reporter.step(&format!(
            "installed {} {} in {}",
            resolved.platform,
            version,
            target.display()
        ));
        Ok(done(false, Some(pulled.manifest_digest)))
    }

    /// Fails when the install in `target` came from an image of another .NET runtime than
    /// `resolved`'s, as its record says ([`SdkError::OtherRuntimeInstalled`]): the folder is
    /// named for the SDK version alone, so `8.0.100_8.0.1` would find `8.0.100_8.0.0` there
    /// and take it for itself. An install without a record (made before records were kept)
    /// passes, as it did then.
    fn check_same_runtime(&self, resolved: &Resolved, target: &Path) -> Result<(), SdkError> {
        let wanted = resolved.runtime();
        match InstallRecord::read(target) {
            Some(record) if !record.has_runtime(wanted.as_ref()) => {
                Err(SdkError::OtherRuntimeInstalled {
                    platform: resolved.platform.clone(),
                    version: resolved.version.to_string(),
                    path: target.to_path_buf(),
                    installed: record.runtime,
                    wanted: wanted.map(|r| r.to_string()),
                })
            }
            _ => Ok(()),
        }
    }

    /// Takes an exclusive lock on `path`, waiting for other holders (other processes too).
    /// The lock is released when the returned file is dropped, also if the process dies.
    ///
    /// `None` on a file system that cannot lock files (NFS without its lock daemon), after a
    /// warning (once per catalogue): build fleets keep install roots and caches there, and
    /// an install that runs alone needs no lock. Whoever gets `None` must not remove what
    /// looks left by a killed install: a running one's looks the same.
    pub(super) async fn lock(&self, path: &Path) -> Result<Option<File>, SdkError> {
        let file = crate::lock_file::open(path, Some(crate::lock_file::OWN_LOCK_MODE))
            .map_err(|e| SdkError::io("opening the lock file", path, e))?;
        match file.try_lock() {
            Ok(()) => Ok(Some(file)),
            // Waited for as a pull waits for its turn, so that Ctrl-C is not held up by it.
            Err(std::fs::TryLockError::WouldBlock) => wait_for_lock(file)
                .await
                .map(Some)
                .map_err(|e| SdkError::io("locking", path, e)),
            Err(std::fs::TryLockError::Error(e)) if locks_unsupported(&e) => {
                if !self.warned_without_locks.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        "cannot lock {} ({e}): going ahead without locks, so concurrent \
                         installs and uninstalls of one SDK are not coordinated on this file system",
                        path.display()
                    );
                }
                Ok(None)
            }
            Err(std::fs::TryLockError::Error(e)) => Err(SdkError::io("locking", path, e)),
        }
    }

    /// Pulls the tarball into the cache and unpacks it into `target`: as it downloads, or
    /// from the cache when it was already there or had to be looked for inside its layer.
    async fn pull_and_unpack(
        &self,
        resolved: &Resolved,
        target: &Path,
        reporter: &dyn Reporter,
    ) -> Result<PulledSdk, SdkError> {
        // Without a cache it can trust, the tarball is pulled into a folder of the install's
        // own beside the target, named so that a later install removes what a killed one
        // left, and removed with this one.
        let tarballs = self
            .trusted_cache()
            .map(|cache| self.trusted_tarball_cache(cache, resolved));
        let (cache, _own_folder, this) = match tarballs {
            Some(Some(folder)) => (folder, None, std::borrow::Cow::Borrowed(self)),
            untrusted => {
                let own = crate::extract::TempTree::beside(target)
                    .map_err(|e| SdkError::Extract(Box::new(e)))?;
                // A cache folder that failed was passed over already; one whose tarball
                // folders failed is passed over by this install alone.
                let this = match untrusted {
                    Some(None) => std::borrow::Cow::Owned(self.without_cache()),
                    _ => std::borrow::Cow::Borrowed(self),
                };
                (own.path.clone(), Some(own), this)
            }
        };
        trust::create_folders(&cache)?;
        let name = self.cached_tarball_name(resolved);
        // Installs into any root share the tarball cache: one at a time per tarball, so that
        // a tarball is never replaced while another install reads it, and what a killed
        // install left beside it can be told from what a running one is writing.
        let tarball_lock = self.lock(&cache.join(format!(".{name}.lock"))).await?;
        let stem = super::fetch::cache_stem(resolved);
        let (dir, stale_stem) = (cache.clone(), stem.clone());
        // Without the lock, what looks left by a killed install may be a running one's.
        let stale = if tarball_lock.is_some() {
            join(tokio::task::spawn_blocking(move || {
                crate::sdk::fetch::remove_stale_temp_files(&dir, &stale_stem)
            }))
            .await?
        } else {
            0
        };
        if stale > 0 {
            tracing::info!(
                stale,
                "removed the temporary files of an interrupted install"
            );
        }
        let crate::sdk::fetch::Tapped {
            pulled,
            unpacked,
            sha256,
        } = this
            .pull_tapped(resolved, &cache, &stem, reporter, Some(target))
            .await?;
        if !unpacked {
            let tarball = pulled.path.clone();
            let into = InstallInto::new(target, resolved, &pulled.manifest_digest);
            let image = resolved
                .reference
                .with_digest(pulled.manifest_digest.clone());
            // Dropped with this future (Ctrl-C drops it), it stops the unpacker.
            let (_stop, stopped) = stop_on_drop();
            join(tokio::task::spawn_blocking(move || {
                let file =
                    File::open(&tarball).map_err(|e| SdkError::io("opening", &tarball, e))?;
                // Checked as it is read: it was verified, but by another read of the file,
                // which could have changed since.
                let verified = VerifiedRead::new(file, &tarball, sha256);
                unpack(
                    StoppableRead {
                        inner: verified,
                        stopped,
                    },
                    &into,
                )
            }))
            .await?
            .map_err(|e| e.in_image(&image))?;
        }
        Ok(pulled)
    }
}

/// Refuses a [`Resolved`] whose platform, OS flavour or version is no single folder name:
/// it is plain data a caller may fill in, and those names become path components under the
/// install root and in tarball names, so `..` or a separator would lead out of them.
pub(crate) fn check_names(resolved: &Resolved) -> Result<(), SdkError> {
    let version = resolved.version.to_string();
    let names = [resolved.platform.as_str(), resolved.os.as_str(), &version];
    let bad = names.into_iter().find(|name| !is_folder_name(name));
    match bad {
        Some(bad) => Err(SdkError::InvalidSetting(format!(
            "\"{bad}\" is not a platform, OS flavour or version: expected one folder name"
        ))),
        None => Ok(()),
    }
}

/// Whether `name` is a single, visible folder name (no separator, not `.` or `..`).
pub(super) fn is_folder_name(name: &str) -> bool {
    !name.is_empty() && !name.starts_with('.') && !name.contains(['/', '\\', '\0'])
}

/// Removes what a process that died installing or removing `target` left beside it. The
/// caller holds the version's lock, so no running install's folder can be among them.
pub(super) async fn remove_leftovers(target: &Path) -> Result<(), SdkError> {
    let target = target.to_path_buf();
    let removed = join(tokio::task::spawn_blocking(move || {
        crate::extract::remove_leftovers(&target)
    }))
    .await?;
    if removed > 0 {
        tracing::info!(
            removed,
            "removed the staging folders of an interrupted install"
        );
    }
    Ok(())
}

/// A flag set when the returned guard is dropped, and the flag to give a [`StoppableRead`].
///
/// An unpack from disk runs on a blocking thread, which nothing stops when the install is
/// dropped (Ctrl-C drops the command): it would read the tarball to its end and replace the
/// install, after the version's lock had been let go, while the process waits for it to
/// exit. With the guard held across the wait, dropping the install stops it instead.
fn stop_on_drop() -> (StopOnDrop, Arc<AtomicBool>) {
    let stopped = Arc::new(AtomicBool::new(false));
    (StopOnDrop(Arc::clone(&stopped)), stopped)
}

struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// A reader of a tarball that fails at its end when what it read does not hash to the
/// sha256 it was verified with, so the unpacker reading it removes its staging folder rather
/// than commit.
///
/// An install from the file re-reads a tarball that was checked by an earlier read: the
/// cached tarball against its record, or a layer's tarball against the digest as it
/// downloaded. A user who may write the file (a cache made under a umask of 0) could change
/// it in between; the unpacker reads to the end of its input (gzip's and zstd's trailers)
/// before it commits, so this check comes before the commit.
struct VerifiedRead<R> {
    inner: R,
    path: PathBuf,
    hasher: crate::digest::Hasher,
    expected: Digest,
    checked: bool,
}

impl<R> VerifiedRead<R> {
    fn new(inner: R, path: &Path, expected: Digest) -> Self {
        VerifiedRead {
            inner,
            path: path.to_path_buf(),
            hasher: crate::digest::Hasher::new(expected.algorithm()),
            expected,
            checked: false,
        }
    }
}

impl<R: Read> Read for VerifiedRead<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n > 0 {
            self.hasher.update(&buf[..n]);
            return Ok(n);
        }
        if !self.checked {
            let hasher = std::mem::replace(
                &mut self.hasher,
                crate::digest::Hasher::new(self.expected.algorithm()),
            );
            let actual = hasher.finish();
            if actual != self.expected {
                return Err(std::io::Error::other(format!(
                    "{} changed after it was verified: it now has {actual}, not {}; nothing \
                     was installed",
                    self.path.display(),
                    self.expected
                )));
            }
            self.checked = true;
        }
        Ok(0)
    }
}

/// A reader that fails once its flag is set, so the unpacker reading it stops and removes
/// its staging folder rather than commit.
struct StoppableRead<R> {
    inner: R,
    stopped: Arc<AtomicBool>,
}

impl<R: Read> Read for StoppableRead<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.stopped.load(Ordering::Relaxed) {
            return Err(std::io::Error::other("the install was stopped"));
        }
        self.inner.read(buf)
    }
}
