//! Errors of the SDK layer: the registry's, plus what only SDKs can get wrong.

use crate::error::{Error, ErrorKind, Location};
use crate::extract::ExtractError;
use crate::reference::Reference;
use crate::sdk::version::VersionError;
use crate::trust::{untrusted_text, CACHE_STICKY};

/// Every error of the SDK catalogue.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SdkError {
    /// A registry, transfer or file error (boxed: it is large, and SDK results are many).
    #[error(transparent)]
    Registry(Box<Error>),

    /// A version or version spec did not parse.
    #[error(transparent)]
    Version(#[from] VersionError),

    /// Unpacking failed or the archive was unsafe, outside of any one image (removing an
    /// install folder); in a pull or install, [`SdkError::Unpack`] names the image.
    #[error(transparent)]
    Extract(Box<ExtractError>),

    /// The SDK of an image could not be unpacked, or found in the image's layer: its archive
    /// is empty, unsafe or corrupt, or the install folder could not be written.
    #[error("{image}: {source}")]
    Unpack {
        /// The image, pinned to its manifest digest (its tag kept for display).
        image: Reference,
        /// What went wrong.
        source: Box<ExtractError>,
    },

    /// There is no `{os}-default` tag (and no fallback was asked for).
    #[error("{repository} has no default {platform} version for {os}: tag {os}-default does not exist (use a version, or --or-latest)")]
    NoDefault {
        /// The repository, `host/path`.
        repository: String,
        /// The platform.
        platform: String,
        /// The OS flavour.
        os: String,
    },

    /// The default tag exists but says nothing of its version.
    #[error("{repository}:{os}-default names no version: neither the label org.oryx.version nor the annotations org.oryx.sdk.default-version / org.oryx.sdk.version are set")]
    DefaultUnlabelled {
        /// The repository.
        repository: String,
        /// The OS flavour.
        os: String,
    },

    /// No version matches the spec.
    #[error(transparent)]
    NoMatch(Box<NoMatch>),

    /// An SDK to remove is not installed (no folder with the sentinel).
    #[error("{platform} {versions}: not installed in {} (see sdk list-installed); nothing was removed{}", root.display(), nearest_installed_text(.nearest))]
    NotInstalled {
        /// The platform.
        platform: String,
        /// The versions that are not installed, comma-separated.
        versions: String,
        /// The install root.
        root: std::path::PathBuf,
        /// What the caller may have meant: the installed versions of the platform that a
        /// missing one matches as a spec (`3.11` matches 3.11.10), else the nearest, in
        /// version order; empty when none of the platform is installed.
        nearest: Vec<String>,
    },

    /// The SDK version asked for is installed, but from an image of another .NET runtime
    /// (its folder, named for the SDK version alone, holds `8.0.100_8.0.0` where
    /// `8.0.100_8.0.1` was asked for). Nothing was changed: installing would replace it,
    /// which is only done when forced.
    #[error("{platform} {version} is installed in {} with {}, not {} as asked: nothing was changed; --force replaces it", path.display(), runtime_text(.installed), runtime_text(.wanted))]
    OtherRuntimeInstalled {
        /// The platform.
        platform: String,
        /// The SDK version (the folder name).
        version: String,
        /// The install folder.
        path: std::path::PathBuf,
        /// The runtime of the image installed there, as its record names it.
        installed: Option<String>,
        /// The runtime of the image asked for.
        wanted: Option<String>,
    },

    /// The layer did not hold what an SDK image should.
    #[error("{0}")]
    BadImage(String),

    /// A file to publish is no SDK tarball that [`crate::extract::unpack_into`] (and so an
    /// install) could unpack: not a tar, plain, gzip or zstd as its name says, or a tar with
    /// nothing to install. Refused before anything was uploaded.
    #[error("cannot publish {}: sdk install would refuse it: {source}", path.display())]
    NotAnSdkTarball {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong with it: [`ExtractError::Archive`] or [`ExtractError::EmptyArchive`].
        source: Box<ExtractError>,
    },

    /// The settings cannot work (e.g. an unusable registry URL).
    #[error("{0}")]
    InvalidSetting(String),

    /// A folder the install root depends on (the root, one above it, a platform or version
    /// folder in it, or a symlink on the way) is owned by another user than this one and
    /// root, or may be written by group or others (above the root: and is not sticky), so
    /// that user could change what builds run. Nothing in the root was used or changed.
    #[error("the install root {} cannot be trusted: {} is {}; another user could replace the SDKs installed there: use an install root of your own (--root or DYNAMIC_INSTALL_ROOT_DIR), in a folder only you and root may write, or name a folder you vouch for in OCISDK_SAFE_FOLDERS", root.display(), path.display(), untrusted_text(*owner, *mode, *user, ROOT_STICKY))]
    UntrustedRoot {
        /// The install root.
        root: std::path::PathBuf,
        /// The folder or symlink that failed the check.
        path: std::path::PathBuf,
        /// Its owner's uid.
        owner: u32,
        /// Its mode (permission, setuid, setgid and sticky bits).
        mode: u32,
        /// The effective uid of this process, whose folders are trusted besides root's.
        user: u32,
    },
}

/// Why sticky is not enough for the install root.
const ROOT_STICKY: &str =
    "sticky is enough only for a folder above the root: others could create its platform folders";

/// The warning for a cache folder `cache` that failed the check of the install root with
/// `e`: another user could change it (or the check itself failed), so it goes unused.
pub(crate) fn untrusted_cache_text(cache: &std::path::Path, e: &SdkError) -> String {
    let why = match e {
        SdkError::UntrustedRoot {
            path,
            owner,
            mode,
            user,
            ..
        } => format!(
            "{} is {}; another user could replace the SDK tarballs cached there",
            path.display(),
            untrusted_text(*owner, *mode, *user, CACHE_STICKY)
        ),
        other => other.to_string(),
    };
    format!(
        "the cache folder {} cannot be trusted: {why}; going on without the cache: {}",
        cache.display(),
        crate::trust::CACHE_REMEDY
    )
}

/// Details of a spec no version matched.
#[derive(Debug, Clone, thiserror::Error)]
#[error("no {platform} version matches \"{spec}\" for {os} in {repository}{}{}", nearest_text(.nearest, .other_flavours), prerelease_hint(.prerelease))]
pub struct NoMatch {
    /// The repository.
    pub repository: String,
    /// The platform.
    pub platform: String,
    /// The OS flavour.
    pub os: String,
    /// The spec as given.
    pub spec: String,
    /// The closest available versions.
    pub nearest: Vec<String>,
    /// A pre-release the spec would match if pre-releases were allowed.
    pub prerelease: Option<String>,
    /// The repository's other OS flavours, sorted (named when this one has no versions).
    pub other_flavours: Vec<String>,
}

fn nearest_text(nearest: &[String], other_flavours: &[String]) -> String {
    if nearest.is_empty() {
        format!(
            "; it has no versions for this flavour{}",
            flavours_text(other_flavours)
        )
    } else {
        format!("; nearest: {}", nearest.join(", "))
    }
}

/// Names the flavours a repository does have, for a flavour it has nothing for.
fn flavours_text(other_flavours: &[String]) -> String {
    if other_flavours.is_empty() {
        String::new()
    } else {
        format!(
            " (it has {}: choose one with --os or DEBIAN_FLAVOR)",
            other_flavours.join(", ")
        )
    }
}

fn runtime_text(runtime: &Option<String>) -> String {
    match runtime {
        Some(runtime) => format!("runtime {runtime}"),
        None => "no runtime".to_owned(),
    }
}

fn nearest_installed_text(nearest: &[String]) -> String {
    if nearest.is_empty() {
        String::new()
    } else {
        format!("; nearest installed: {}", nearest.join(", "))
    }
}

fn prerelease_hint(prerelease: &Option<String>) -> String {
    match prerelease {
        Some(v) => format!(" ({v} matches but is a pre-release: add --pre to allow it)"),
        None => String::new(),
    }
}

/// The location of a repository these errors keep as text, `host/path` as
/// [`Repository`](crate::Repository) displays it.
fn repository_location(repository: &str, reference: Option<String>) -> Option<Location> {
    let (registry, path) = repository.split_once('/')?;
    Some(Location {
        registry: registry.into(),
        repository: path.into(),
        reference: reference.map(String::into_boxed_str),
    })
}

impl From<Error> for SdkError {
    fn from(e: Error) -> Self {
        SdkError::Registry(Box::new(e))
    }
}

impl From<ExtractError> for SdkError {
    fn from(e: ExtractError) -> Self {
        SdkError::Extract(Box::new(e))
    }
}

impl SdkError {
    /// The repository concerned, when the error names one.
    pub fn repository(&self) -> Option<&str> {
        match self {
            SdkError::NoDefault { repository, .. }
            | SdkError::DefaultUnlabelled { repository, .. } => Some(repository),
            SdkError::NoMatch(m) => Some(&m.repository),
            _ => None,
        }
    }

    /// Where the failure happened, when it was at a registry or in one image: a registry
    /// error's location; the image of [`SdkError::Unpack`], with its manifest digest as the
    /// reference; the repository of [`SdkError::NoDefault`] and
    /// [`SdkError::DefaultUnlabelled`] with the `{os}-default` tag, or of
    /// [`SdkError::NoMatch`] (no reference: no one tag is at fault).
    pub fn location(&self) -> Option<Location> {
        match self {
            SdkError::Registry(e) => e.location().cloned(),
            SdkError::Unpack { image, .. } => {
                let digest = image.digest().map(ToString::to_string);
                let reference = digest.or_else(|| image.tag().map(str::to_owned));
                Some(crate::registry::location(image.repository(), reference))
            }
            SdkError::NoDefault { repository, os, .. }
            | SdkError::DefaultUnlabelled { repository, os } => {
                repository_location(repository, Some(format!("{os}-default")))
            }
            SdkError::NoMatch(m) => repository_location(&m.repository, None),
            _ => None,
        }
    }

    /// The HTTP status, when the registry answered with an error (see [`Error::status`]).
    pub fn status(&self) -> Option<u16> {
        match self {
            SdkError::Registry(e) => e.status(),
            _ => None,
        }
    }

    /// Whether the same call might succeed if tried again later (see
    /// [`Error::is_retryable`]); what only SDKs get wrong never heals by waiting.
    pub fn is_retryable(&self) -> bool {
        match self {
            SdkError::Registry(e) => e.is_retryable(),
            _ => false,
        }
    }

    /// The class of this failure (for exit codes).
    pub fn kind(&self) -> ErrorKind {
        match self {
            SdkError::Registry(e) => e.kind(),
            SdkError::Version(_)
            | SdkError::InvalidSetting(_)
            | SdkError::UntrustedRoot { .. }
            | SdkError::OtherRuntimeInstalled { .. }
            | SdkError::NotAnSdkTarball { .. } => ErrorKind::Usage,
            SdkError::NoDefault { .. } | SdkError::NoMatch(_) | SdkError::NotInstalled { .. } => {
                ErrorKind::NotFound
            }
            SdkError::Extract(_)
            | SdkError::Unpack { .. }
            | SdkError::BadImage(_)
            | SdkError::DefaultUnlabelled { .. } => ErrorKind::Other,
        }
    }

    /// Names `image` in an extraction error, so that the person reading it knows which image
    /// to look at; other errors already say where they happened.
    pub(crate) fn in_image(self, image: &Reference) -> SdkError {
        match self {
            SdkError::Extract(source) => SdkError::Unpack {
                image: image.clone(),
                source,
            },
            other => other,
        }
    }

    pub(crate) fn io(
        action: &'static str,
        path: impl Into<std::path::PathBuf>,
        source: std::io::Error,
    ) -> SdkError {
        SdkError::from(Error::io(action, path, source))
    }
}
