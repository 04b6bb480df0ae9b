//! What the cache records of a pulled tarball (`sdk-records-v1`), and hashing it.

use std::io::Write;
use std::path::Path;

use crate::digest::{Algorithm, Digest, Hasher};
use crate::sdk::error::SdkError;
use crate::sdk::overlap::join;

use super::files::write_atomically_with_mode;

/// The sha256 of a tarball downloaded to `path` and verified against `digest`: `digest`
/// itself, or for another algorithm (sha512), read back from the file, since records and
/// the published `org.oryx.sdk.sha256` speak sha256.
pub(super) async fn tarball_sha256(digest: &Digest, path: &Path) -> Result<Digest, SdkError> {
    if digest.algorithm() == Algorithm::Sha256 {
        return Ok(digest.clone());
    }
    let path = path.to_path_buf();
    join(tokio::task::spawn_blocking(move || sha256_of_file(&path))).await?
}

pub(super) fn sha256_of_file(path: &Path) -> Result<Digest, SdkError> {
    let mut file = std::fs::File::open(path).map_err(|e| SdkError::io("opening", path, e))?;
    let mut tee = HashingWriter {
        inner: std::io::sink(),
        hasher: Hasher::new(Algorithm::Sha256),
    };
    std::io::copy(&mut file, &mut tee).map_err(|e| SdkError::io("reading", path, e))?;
    Ok(tee.hasher.finish())
}

/// A writer that hashes what passes through it.
pub(crate) struct HashingWriter<W> {
    pub(crate) inner: W,
    pub(crate) hasher: Hasher,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// What ocisdk records in its cache about the tarball an image holds: its sha256 (so a
/// damaged copy is never vouched for) and the image shape. Keyed by manifest digest, and
/// kept out of the sidecar, whose one line (the manifest digest) other tools read.
pub(super) struct TarballRecord {
    pub(super) tarball: Digest,
    pub(super) shape: &'static str,
}

/// The cache folder of tarball records, versioned so a format change never misreads old ones.
pub(crate) const RECORD_DIR: &str = "sdk-records-v1";

impl std::fmt::Display for TarballRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "{}\n{}", self.tarball, self.shape)
    }
}

impl TarballRecord {
    /// The record at `path`; `None` when there is none, or when another user could have
    /// written it (see [`TarballRecord::write`]): it vouches for the tarball an install
    /// unpacks, so such a record is no record, and the tarball is downloaded again.
    pub(super) fn read(path: &Path) -> Option<TarballRecord> {
        let meta = std::fs::symlink_metadata(path).ok()?;
        if meta.file_type().is_symlink() {
            return None;
        }
        if let Err(crate::trust::CheckError::Untrusted(file)) =
            crate::trust::check_entry(path, &meta)
        {
            tracing::warn!(
                "{} is {}: another user could change it, so the cached tarball it vouches for \
                 is not used",
                path.display(),
                crate::trust::untrusted_text(file.owner, file.mode, file.user, "")
            );
            return None;
        }
        let text = std::fs::read_to_string(path).ok()?;
        let mut lines = text.lines().map(str::trim);
        let tarball = lines.next()?.parse().ok()?;
        let shape = match lines.next()? {
            "artifact" => "artifact",
            "filesystem-layer" => "filesystem-layer",
            _ => return None,
        };
        Some(TarballRecord { tarball, shape })
    }

    /// Writes the record to `path`, mode 0644 whatever the umask: under a umask of 0 it was
    /// writable by anyone, who could then make it vouch for a tarball of theirs.
    pub(super) fn write(&self, path: &Path) -> Result<(), SdkError> {
        write_atomically_with_mode(
            path,
            self.to_string().as_bytes(),
            crate::content::OWN_FILE_MODE,
        )
    }
}

/// The record when the tarball at `path` is current (the sidecar names the manifest the tag
/// points at now) and intact (it still hashes to the recorded digest).
pub(super) async fn cached_record(
    path: &Path,
    sidecar: &Path,
    record: &Path,
    current: &Digest,
) -> Option<TarballRecord> {
    let recorded: Digest = std::fs::read_to_string(sidecar).ok()?.trim().parse().ok()?;
    if &recorded != current {
        return None;
    }
    let record = TarballRecord::read(record)?;
    let path = path.to_path_buf();
    let actual = tokio::task::spawn_blocking(move || sha256_of_file(&path).ok())
        .await
        .ok()??;
    (actual == record.tarball).then_some(record)
}
