//! Installing an SDK while it downloads, for both image shapes, so that download,
//! verification and unpacking overlap instead of running in turn.
//!
//! Whatever the shape, the unpacker commits (renames its folder into place) only at the end
//! of its input, and its input ends only after the layer's digest was verified, the tap's
//! gate opened (see [`crate::content::tap`]) and, for a tarball inside a layer, the
//! tarball's published sha256 checked. Until then an install folder is never touched.

use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use tokio::task::JoinHandle;

use crate::content::tap::{tap, Tap, TapGate, TapReader};
use crate::digest::{Algorithm, Digest, Hasher};
use crate::extract::{
    extract_member, unpack_recording, ExtractError, MemberSelector, UnpackOptions,
};
use crate::reference::Reference;
use crate::sdk::catalogue::Resolved;
use crate::sdk::error::SdkError;
use crate::sdk::fetch::HashingWriter;
use crate::sdk::install::SENTINEL;
use crate::sdk::record::{InstallRecord, INSTALL_RECORD};

/// Bytes written per call to the tarball copy in the cache.
const BUFFER: usize = 256 * 1024;

/// Where an install unpacks, and the record of its image that it leaves there.
#[derive(Debug, Clone)]
pub(crate) struct InstallInto {
    /// The install folder.
    pub target: PathBuf,
    /// The content of its [`INSTALL_RECORD`].
    record: Vec<u8>,
}

impl InstallInto {
    /// Installing `resolved`, from the manifest `manifest_digest`, into `target`.
    pub(crate) fn new(target: &Path, resolved: &Resolved, manifest_digest: &Digest) -> Self {
        InstallInto {
            target: target.to_path_buf(),
            record: InstallRecord::new(resolved, manifest_digest).to_bytes(),
        }
    }
}

/// Unpacks an SDK tarball stream into `into.target`, its record and then the sentinel last,
/// replacing what is there.
pub(crate) fn unpack(reader: impl Read + Send, into: &InstallInto) -> Result<(), SdkError> {
    let options = UnpackOptions {
        replace: true,
        sentinel: Some(SENTINEL.to_string()),
    };
    let record = Some((INSTALL_RECORD, into.record.as_slice()));
    // No buffer here: the decompressor has its own (`extract::decompressing_reader`).
    unpack_recording(reader, &into.target, &options, record)?;
    Ok(())
}

/// An unpacker started beside a download.
pub(crate) enum Unpacking {
    /// Reading the tarball as it downloads; it commits once the gate is opened.
    Gated {
        gate: Option<TapGate>,
        task: JoinHandle<Result<(), SdkError>>,
    },
    /// Already committed (a tarball inside a layer, checked before its end was passed on).
    Done,
}

/// Starts unpacking the download the returned tap will feed (a layer that is the tarball).
pub(crate) fn start_unpacking(into: &InstallInto) -> (Tap, JoinHandle<Result<(), SdkError>>) {
    let (tap, reader) = tap();
    let into = into.clone();
    (
        tap,
        tokio::task::spawn_blocking(move || unpack(reader, &into)),
    )
}

impl Unpacking {
    /// Lets the unpacker commit when `proceed` (everything it read was accepted), and waits
    /// for it. Returns whether the SDK is installed; `false` when there was nothing to commit
    /// (the unpacker stopped early, or `proceed` is false), so the caller unpacks from disk
    /// or reports its own error.
    pub(crate) async fn finish(self, proceed: bool) -> Result<bool, SdkError> {
        match self {
            Unpacking::Done => Ok(true),
            Unpacking::Gated {
                gate: Some(gate),
                task,
            } if proceed => {
                gate.open().await;
                join(task).await??;
                Ok(true)
            }
            // Dropping the gate fails the unpacker's read, so it commits nothing; waiting
            // for it means its temporary folder is gone before the caller returns. The drop
            // must come first: a gate left in `self` would live until this function returns,
            // and the unpacker would wait for it forever.
            Unpacking::Gated { gate, task } => {
                drop(gate);
                let _ = task.await;
                Ok(false)
            }
        }
    }
}

/// What [`stream_member`] needs to check the tarball before the unpacker may commit.
#[derive(Clone)]
pub(crate) struct Member {
    /// The tarball's file name in the layer.
    pub name: String,
    /// The image, for error messages.
    pub reference: Reference,
    /// The sha256 the image publishes for the tarball, if any.
    pub published_sha256: Option<String>,
}

/// Reads a filesystem layer (`FROM scratch` + `COPY`) from `layer` as it downloads, copies
/// the member named `member.name` to `copy_to` (the tarball cache, or `sdk pull`'s output)
/// and, with a `target`, unpacks it there at the same time. Returns the member's sha256, or
/// `None` when the layer is not a tar holding that name, or the download restarted and the
/// stream had to be dropped (nothing is installed then: the caller looks inside the
/// downloaded layer on disk).
pub(crate) fn stream_member(
    mut layer: TapReader,
    member: &Member,
    copy_to: &Path,
    target: Option<&InstallInto>,
) -> Result<Option<Digest>, SdkError> {
    let file = std::fs::File::create(copy_to).map_err(|e| SdkError::io("creating", copy_to, e))?;
    let copy = |also: &mut dyn Write| -> Result<Digest, SdkError> {
        let mut out = HashingWriter {
            inner: Tee {
                file: BufWriter::with_capacity(BUFFER, file),
                also,
            },
            hasher: Hasher::new(Algorithm::Sha256),
        };
        let selector = MemberSelector::named(member.name.clone());
        extract_member(&mut layer, &selector, &mut out)?;
        // gzip and zstd read their input to its end anyway; the end of the tap is what
        // says the layer verified, so make sure it was reached.
        std::io::copy(&mut layer, &mut std::io::sink())
            .map_err(|e| ExtractError::Archive { source: e })?;
        let file = out
            .inner
            .file
            .into_inner()
            .map_err(|e| SdkError::io("writing", copy_to, e.into_error()))?;
        // A pull's tarball is the command's output, made as durable as every download. An
        // install's copy in the cache is not fsynced: the cache's record holds its digest,
        // and a copy that a crash damaged fails it and is downloaded again.
        if target.is_none() {
            file.sync_all()
                .map_err(|e| SdkError::io("writing", copy_to, e))?;
        }
        let digest = out.hasher.finish();
        check_published_sha256(
            &member.reference,
            member.published_sha256.as_deref(),
            &digest,
        )?;
        Ok(digest)
    };
    let (copied, unpacked) = match target {
        Some(target) => {
            crate::readahead::with_pipe(|pipe| copy(pipe), |piped| unpack(piped, target))
        }
        None => (copy(&mut std::io::sink()), Ok(())),
    };
    match (copied, unpacked) {
        (Ok(digest), Ok(())) => Ok(Some(digest)),
        (Err(SdkError::Extract(e)), _)
            if matches!(
                *e,
                ExtractError::MemberNotFound { .. } | ExtractError::Archive { .. }
            ) =>
        {
            Ok(None)
        }
        // The unpacker stopped first (an unsafe entry, a full disk): its error is the cause.
        (Err(e), Err(cause)) if unpacker_stopped(&e) => Err(cause),
        (Err(e), _) | (Ok(_), Err(e)) => Err(e),
    }
}

/// Fails when the image publishes a sha256 for its tarball and `actual` is not it.
pub(crate) fn check_published_sha256(
    reference: &Reference,
    published: Option<&str>,
    actual: &Digest,
) -> Result<(), SdkError> {
    match published {
        Some(expected) if !expected.trim().eq_ignore_ascii_case(actual.hex()) => {
            Err(SdkError::BadImage(format!(
                "{reference}: the tarball's sha256 {} does not match the published {} {expected}",
                actual.hex(),
                crate::sdk::ANNOTATION_SHA256,
            )))
        }
        _ => Ok(()),
    }
}

fn unpacker_stopped(e: &SdkError) -> bool {
    matches!(e, SdkError::Extract(e) if matches!(&**e,
        ExtractError::Io { source, .. } if source.kind() == std::io::ErrorKind::BrokenPipe))
}

/// Sends what is written to a file and to `also` (the unpacker's pipe, or nowhere).
struct Tee<'a, W> {
    file: W,
    also: &'a mut dyn Write,
}

impl<W: Write> Write for Tee<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.file.write_all(buf)?;
        self.also.write_all(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

pub(crate) async fn join<T>(task: JoinHandle<T>) -> Result<T, SdkError> {
    task.await
        .map_err(|e| SdkError::BadImage(format!("unpacking task failed: {e}")))
}
