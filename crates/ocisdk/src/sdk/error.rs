//! Errors of the SDK layer: the registry's, plus what only SDKs can get wrong.

use crate::error::{Error, ErrorKind};
use crate::extract::ExtractError;
use crate::sdk::version::VersionError;

/// Every error of the SDK catalogue.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SdkError {
    /// A registry, transfer or file error.
    #[error(transparent)]
    Registry(#[from] Error),

    /// A version or version spec did not parse.
    #[error(transparent)]
    Version(#[from] VersionError),

    /// Unpacking failed or the archive was unsafe.
    #[error(transparent)]
    Extract(#[from] ExtractError),

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
    #[error("no {platform} version matches \"{spec}\" for {os} in {repository}{}", nearest_text(.nearest))]
    NoMatch {
        /// The repository.
        repository: String,
        /// The platform.
        platform: String,
        /// The OS flavour.
        os: String,
        /// The spec as given.
        spec: String,
        /// The closest available versions.
        nearest: Vec<String>,
    },

    /// The layer did not hold what an SDK image should.
    #[error("{0}")]
    BadImage(String),

    /// The settings cannot work (e.g. an unusable registry URL).
    #[error("{0}")]
    InvalidSetting(String),
}

fn nearest_text(nearest: &[String]) -> String {
    if nearest.is_empty() {
        "; it has no versions for this flavour".into()
    } else {
        format!("; nearest: {}", nearest.join(", "))
    }
}

impl SdkError {
    /// The class of this failure (for exit codes).
    pub fn kind(&self) -> ErrorKind {
        match self {
            SdkError::Registry(e) => e.kind(),
            SdkError::Version(_) | SdkError::InvalidSetting(_) => ErrorKind::Usage,
            SdkError::NoDefault { .. } | SdkError::NoMatch { .. } => ErrorKind::NotFound,
            SdkError::Extract(_) | SdkError::BadImage(_) | SdkError::DefaultUnlabelled { .. } => {
                ErrorKind::Other
            }
        }
    }

    pub(crate) fn io(
        action: &'static str,
        path: impl Into<std::path::PathBuf>,
        source: std::io::Error,
    ) -> SdkError {
        SdkError::Registry(Error::io(action, path, source))
    }
}
