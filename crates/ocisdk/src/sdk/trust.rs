//! The folder checks of [`crate::trust`] for the install root and the cache folder, with the
//! SDK layer's error: one that fails is [`SdkError::UntrustedRoot`], naming the root.

use std::path::{Path, PathBuf};

use crate::sdk::error::SdkError;
use crate::trust::CheckError;

pub(crate) use crate::trust::{declared_safe, Place};

/// [`crate::trust::check_path`] of `path`; `root` is the install root (or cache folder) the
/// error names.
pub(crate) fn check_path(
    root: &Path,
    path: &Path,
    last: Place,
) -> Result<Option<PathBuf>, SdkError> {
    crate::trust::check_path(path, last).map_err(|e| for_root(root, e))
}

/// [`crate::trust::check_below`]: the folders of `rest` below `from`, the resolved `root`.
pub(crate) fn check_below(
    root: &Path,
    from: &Path,
    rest: &Path,
) -> Result<Option<PathBuf>, SdkError> {
    crate::trust::check_below(from, rest).map_err(|e| for_root(root, e))
}

/// [`crate::trust::create_folders`].
pub(crate) fn create_folders(path: &Path) -> Result<(), SdkError> {
    crate::trust::create_folders(path).map_err(SdkError::from)
}

fn for_root(root: &Path, e: CheckError) -> SdkError {
    match e {
        CheckError::Untrusted(untrusted) => SdkError::UntrustedRoot {
            root: root.to_path_buf(),
            path: untrusted.path,
            owner: untrusted.owner,
            mode: untrusted.mode,
            user: untrusted.user,
        },
        CheckError::Io(e) => SdkError::from(e),
    }
}
