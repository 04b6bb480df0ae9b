//! What an install records of the image it came from: `.ocisdk-install.json` in its folder.
//!
//! An install folder is named for the SDK version alone, so for .NET one folder,
//! `dotnet/8.0.100`, stands for the images of every runtime that SDK version ships with
//! (`8.0.100_8.0.0`, `8.0.100_8.0.1`): only the record tells which one is there. It is
//! written into the staging folder before the sentinel, so every install that carries the
//! sentinel carries its record; those made before records were kept have none, and are
//! taken as they were then: installed is the sentinel, whatever the runtime.

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::digest::Digest;
use crate::sdk::catalogue::Resolved;
use crate::sdk::version::SdkVersion;

/// The file, in an install folder, that records the image the install came from.
pub const INSTALL_RECORD: &str = ".ocisdk-install.json";

/// Records are a few hundred bytes: a bigger file is none of ours, and not read whole.
const MAX_RECORD_BYTES: u64 = 64 * 1024;

/// The content of [`INSTALL_RECORD`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct InstallRecord {
    /// The image, `registry/repository:tag`.
    pub image: String,
    /// Its manifest's digest.
    pub manifest_digest: String,
    /// The SDK version its tag names (`8.0.100` of `bookworm-8.0.100_8.0.0`).
    pub version: String,
    /// The .NET runtime its tag names (`8.0.0`), else `None`.
    pub runtime: Option<String>,
}

impl InstallRecord {
    /// The record of installing `resolved` from the manifest `manifest_digest`.
    pub(crate) fn new(resolved: &Resolved, manifest_digest: &Digest) -> InstallRecord {
        InstallRecord {
            image: resolved.reference.to_string(),
            manifest_digest: manifest_digest.to_string(),
            version: resolved.version.to_string(),
            runtime: resolved.runtime().map(|r| r.to_string()),
        }
    }

    /// The file's content: one line of JSON.
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = serde_json::to_vec(self).unwrap_or_default();
        bytes.push(b'\n');
        bytes
    }

    /// The record in the install folder `folder`; `None` when it has none (an install made
    /// before records were kept). One that cannot be read is warned of and taken as none:
    /// the install is still there, and was so before records were kept.
    pub(crate) fn read(folder: &Path) -> Option<InstallRecord> {
        let path = folder.join(INSTALL_RECORD);
        let mut text = Vec::new();
        // Never through a symlink: the unpacker replaces one of that name, so one here was
        // put there since, and may name any file.
        let read = std::fs::File::options()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
            .and_then(|file| file.take(MAX_RECORD_BYTES).read_to_end(&mut text));
        match read {
            Ok(_) => match serde_json::from_slice(&text) {
                Ok(record) => Some(record),
                Err(e) => {
                    tracing::warn!("{}: not an install record ({e}): ignored", path.display());
                    None
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => {
                tracing::warn!("cannot read {} ({e}): ignored", path.display());
                None
            }
        }
    }

    /// The manifest digest, when it is one.
    pub(crate) fn digest(&self) -> Option<Digest> {
        Digest::parse(&self.manifest_digest).ok()
    }

    /// Whether the install came from an image of the runtime `runtime` (`None`: of none),
    /// compared as versions (`8.0.0` is `8.0.0.0`), as a spec's runtime is to a tag's.
    pub(crate) fn has_runtime(&self, runtime: Option<&SdkVersion>) -> bool {
        match (&self.runtime, runtime) {
            (None, None) => true,
            (Some(recorded), Some(wanted)) => match SdkVersion::parse(recorded) {
                Ok(recorded) => recorded.cmp_precedence(wanted).is_eq(),
                Err(_) => recorded == wanted.as_str(),
            },
            _ => false,
        }
    }
}
