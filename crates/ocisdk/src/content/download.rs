//! Downloading a blob to a file: streamed, hashed on the way, verified, then renamed into
//! place. A failure of any kind leaves nothing at the destination and no temp file.
//!
//! The socket is read on the async runtime while a blocking worker writes and hashes, so the
//! two cores work at once and the hash costs no second pass over the file.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use reqwest::header::CONTENT_RANGE;
use reqwest::StatusCode;

use crate::digest::Digest;
use crate::error::{Error, Location, Result};
use crate::progress::{next_transfer_id, Reporter};
use crate::reference::Repository;
use crate::registry::retry::{self, Attempt, Decision};
use crate::registry::{location, Client};

use super::chunked;
use super::sink::Sink;
use super::staging::{self, Staged};
use super::tap::{Tap, TapGate};

/// Bytes gathered before handing a batch to the writer: large enough that the channel costs
/// nothing per byte, small enough that memory stays flat (a few batches in flight).
const BATCH_BYTES: usize = 256 * 1024;

/// What a finished download produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Downloaded {
    /// Where the verified content now is.
    pub path: PathBuf,
    /// Its digest (equal to the one asked for).
    pub digest: Digest,
    /// Its size in bytes.
    pub size: u64,
    /// How many times a broken body was resumed with a `Range` request.
    pub resumes: u32,
}

/// Downloads blob `digest` of `repo` to `dest`, verifying size (when `expected_size` is
/// given) and digest while streaming.
///
/// The bytes go to a temporary file beside `dest` (so the final rename stays on one file
/// system), which is fsynced and renamed into place only when everything matched. With a
/// cache folder they go to a resumable partial there instead; a cache folder that cannot be
/// used (not writable) is passed over with a warning.
///
/// ```no_run
/// # async fn demo() -> Result<(), ocisdk::Error> {
/// let client = ocisdk::Client::builder().build()?;
/// let reference: ocisdk::Reference = "localhost:5000/sdks/python@sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855".parse()?;
/// let digest = reference.digest().unwrap().clone();
/// let done = ocisdk::download_blob(&client, reference.repository(), &digest, None,
///     std::path::Path::new("layer.tar.gz"), &ocisdk::NoProgress).await?;
/// assert_eq!(done.digest, digest);
/// # Ok(()) }
/// ```
pub async fn download_blob(
    client: &Client,
    repo: &Repository,
    digest: &Digest,
    expected_size: Option<u64>,
    dest: &Path,
    reporter: &dyn Reporter,
) -> Result<Downloaded> {
    // With mirrors, each place is tried in turn, so a mirror whose bytes fail verification
    // is passed over for the next (see `registry::Mirror`).
    let what = format!("blob {digest}");
    client
        .read_via_mirrors(repo, &what, |client, repo| async move {
            download_blob_tapped(&client, &repo, digest, expected_size, dest, reporter, None)
                .await
                .map(|(done, _)| done)
        })
        .await
}

/// Like [`download_blob`], and also feeds the bytes to `tap` as they arrive (see
/// [`crate::content::tap`]). Returns the tap's gate when the tap followed the whole
/// download: open it to let the consumer see end-of-stream.
#[allow(clippy::too_many_arguments)]
pub async fn download_blob_tapped(
    client: &Client,
    repo: &Repository,
    digest: &Digest,
    expected_size: Option<u64>,
    dest: &Path,
    reporter: &dyn Reporter,
    tap: Option<Tap>,
) -> Result<(Downloaded, Option<TapGate>)> {
    staging::check_destination(dest)?;
    let _slot = super::sink::download_slot().await;
    let at = location(repo, Some(digest.to_string()));
    let connections = client.parallel_chunks();
    // Splitting needs the size: when the caller does not know it, one HEAD tells.
    let size_for_chunks = match expected_size {
        Some(size) => Some(size),
        None if connections > 1 && tap.is_none() => {
            client.blob_exists(repo, digest).await.ok().flatten()
        }
        None => None,
    };
    if let Some(size) =
        size_for_chunks.filter(|&s| tap.is_none() && chunked::worth_it(s, connections))
    {
        let id = next_transfer_id();
        reporter.transfer_started(id, &short_name(digest), Some(size));
        let result =
            chunked::download(client, repo, digest, size, dest, reporter, id, connections).await;
        // Only a verified blob was downloaded; a fallback to one stream is another transfer.
        match &result {
            Ok(Some(_)) => reporter.transfer_finished(id),
            _ => reporter.transfer_failed(id),
        }
        if let Some(size) = result? {
            let done = Downloaded {
                path: dest.to_path_buf(),
                digest: digest.clone(),
                size,
                resumes: 0,
            };
            return Ok((done, None));
        }
        tracing::info!("the registry ignores Range requests: downloading in one stream");
    }
    // Resuming reads the whole partial back through the hasher (~0.6 s a GiB): off the
    // async threads, which other downloads and the progress display share.
    let staged = {
        let partials = staging::partial_dir(client).map(Path::to_path_buf);
        let (digest, dest, files) = (digest.clone(), dest.to_path_buf(), client.files());
        staging::off_async(move || match partials {
            Some(partials) => match staging::resumable(&partials, &digest, expected_size) {
                Ok(Some(partial)) => Ok(partial),
                Ok(None) => staging::temp_beside(&dest, &digest, files),
                // The cache only serves resuming: one that cannot be written (a read-only
                // home, another user's folder) must not stop a download that needs none.
                Err(e) => {
                    tracing::warn!("{e}: downloading without resuming from the cache");
                    staging::temp_beside(&dest, &digest, files)
                }
            },
            None => staging::temp_beside(&dest, &digest, files),
        })
        .await?
    };
    let Staged {
        file,
        hasher,
        offset,
        landing,
    } = staged;
    if offset > 0 {
        tracing::info!(offset, path = %landing.path().display(), "resuming an earlier partial download");
    }

    let mut sink = Sink::spawn(file, hasher, offset, landing.path(), tap).await;

    let id = next_transfer_id();
    reporter.transfer_started(id, &short_name(digest), expected_size);
    if offset > 0 {
        reporter.transfer_progress(id, offset);
    }
    let received = receive(
        client,
        repo,
        digest,
        expected_size,
        offset,
        &mut sink,
        reporter,
        id,
        &at,
    )
    .await;
    let resumes = match received {
        Ok(resumes) => resumes,
        Err(e) => {
            reporter.transfer_failed(id);
            // When the writer failed (disk full, permission), its error is the real cause.
            let e = sink.abort().await.unwrap_or(e);
            // A partial file is worth keeping only when the network failed after some bytes
            // arrived: an empty one would only clutter the cache.
            if !e.is_retryable() || is_empty_file(landing.path()) {
                landing.discard();
            }
            return Err(e);
        }
    };
    let (actual, size, tap) = match sink.finish().await {
        Ok(w) => w,
        Err(e) => {
            reporter.transfer_failed(id);
            landing.discard();
            return Err(e);
        }
    };
    let mismatch = if expected_size.is_some_and(|expected| size != expected) {
        Some(Error::SizeMismatch {
            at,
            expected: expected_size.unwrap_or_default(),
            actual: size,
        })
    } else if &actual != digest {
        Some(Error::DigestMismatch {
            at,
            expected: digest.clone(),
            actual: actual.clone(),
        })
    } else {
        None
    };
    if let Some(err) = mismatch {
        reporter.transfer_failed(id);
        landing.discard();
        if offset > 0 && tap.is_none() {
            // The bytes an earlier run left (another blob's, or damaged on disk) cannot be
            // told apart until the end: they are gone now, so the blob is fetched whole.
            super::warn_discarded_partial(&err);
            drop(_slot);
            return Box::pin(download_blob_tapped(
                client,
                repo,
                digest,
                expected_size,
                dest,
                reporter,
                None,
            ))
            .await;
        }
        return Err(err);
    }
    reporter.transfer_finished(id);
    // Across file systems (a cache elsewhere) this copies the whole blob.
    let (to, files) = (dest.to_path_buf(), client.files());
    staging::off_async(move || landing.persist(&to, files)).await?;
    let done = Downloaded {
        path: dest.to_path_buf(),
        digest: actual,
        size,
        resumes,
    };
    Ok((done, tap.map(Tap::gate)))
}

/// Reads the blob body, resuming with `Range` when it breaks off, and feeds the writer.
/// Returns the bytes sent and the number of resumes.
#[allow(clippy::too_many_arguments)]
async fn receive(
    client: &Client,
    repo: &Repository,
    digest: &Digest,
    expected_size: Option<u64>,
    start: u64,
    sink: &mut Sink,
    reporter: &dyn Reporter,
    id: u64,
    at: &Location,
) -> Result<u32> {
    let stall = client.transport_options().stall_timeout;
    let policy = *client.retry_policy();
    let started = std::time::Instant::now();
    let mut offset = start;
    let mut resumes = 0u32;
    loop {
        if offset > 0 && expected_size == Some(offset) {
            // An earlier run already fetched everything; only verification is left.
            return Ok(resumes);
        }
        let mut response = match client.blob_response(repo, digest, offset).await {
            Ok(response) => response,
            // Nothing lies at or after `offset`: the bytes already here are all the registry
            // has (an earlier run fetched them all, or the blob is shorter than its
            // descriptor). The size and digest checks that follow decide.
            Err(Error::Status { status: 416, .. }) if offset > 0 => return Ok(resumes),
            Err(e) => return Err(e),
        };
        if offset > 0 {
            match response.status() {
                StatusCode::PARTIAL_CONTENT if range_starts_at(&response, offset) => {}
                StatusCode::OK => {
                    // The registry ignored the range: start over cleanly from zero.
                    sink.restart().await.map_err(|_| writer_stopped(at))?;
                    offset = 0;
                }
                status => {
                    return Err(Error::Protocol {
                        at: at.clone(),
                        message: format!("asked for bytes {offset}- and got HTTP {status} without a matching Content-Range"),
                    })
                }
            }
        }
        let outcome = pump(
            &mut response,
            &mut offset,
            expected_size,
            sink,
            reporter,
            id,
            at,
            stall,
        )
        .await;
        let broke = match outcome {
            Ok(()) => match expected_size {
                // A body that ended early without an error (no Content-Length) also resumes.
                Some(expected) if offset < expected => Error::SizeMismatch {
                    at: at.clone(),
                    expected,
                    actual: offset,
                },
                _ => return Ok(resumes),
            },
            Err(e) if e.is_retryable() => e,
            Err(e) => return Err(e),
        };
        // The request itself was already retried by the client; this decides whether to
        // resume a body that broke off midway, under the same policy.
        match retry::decide(
            &policy,
            resumes + 1,
            started.elapsed(),
            true,
            Attempt::Transport,
            fastrand::f64(),
        ) {
            Decision::GiveUp => return Err(broke),
            Decision::RetryAfter(wait) => {
                resumes += 1;
                tracing::info!(offset, error = %broke, "blob body broke off; resuming with a Range request");
                tokio::time::sleep(wait).await;
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn pump(
    response: &mut reqwest::Response,
    offset: &mut u64,
    expected_size: Option<u64>,
    sink: &mut Sink,
    reporter: &dyn Reporter,
    id: u64,
    at: &Location,
    stall: Duration,
) -> Result<()> {
    let mut batch: Vec<Bytes> = Vec::new();
    let mut batch_len = 0usize;
    loop {
        let next = tokio::time::timeout(stall, response.chunk()).await;
        let chunk = match next {
            Err(_) => {
                flush(sink, &mut batch, &mut batch_len, at).await?;
                return Err(Error::Stalled {
                    operation: "downloading blob",
                    at: at.clone(),
                    seconds: stall.as_secs(),
                });
            }
            Ok(Err(source)) => {
                flush(sink, &mut batch, &mut batch_len, at).await?;
                return Err(Error::Transport {
                    operation: "downloading blob",
                    at: at.clone(),
                    source,
                });
            }
            Ok(Ok(None)) => break,
            Ok(Ok(Some(chunk))) => chunk,
        };
        *offset += chunk.len() as u64;
        if let Some(expected) = expected_size {
            if *offset > expected {
                return Err(Error::SizeMismatch {
                    at: at.clone(),
                    expected,
                    actual: *offset,
                });
            }
        }
        reporter.transfer_progress(id, chunk.len() as u64);
        batch_len += chunk.len();
        batch.push(chunk);
        if batch_len >= BATCH_BYTES {
            flush(sink, &mut batch, &mut batch_len, at).await?;
        }
    }
    flush(sink, &mut batch, &mut batch_len, at).await
}

async fn flush(
    sink: &mut Sink,
    batch: &mut Vec<Bytes>,
    len: &mut usize,
    at: &Location,
) -> Result<()> {
    if batch.is_empty() {
        return Ok(());
    }
    *len = 0;
    sink.send(std::mem::take(batch))
        .await
        .map_err(|_| writer_stopped(at))
}

/// The sink only stops after an I/O error, which it reports itself when aborted.
fn writer_stopped(at: &Location) -> Error {
    Error::Protocol {
        at: at.clone(),
        message: "the file writer stopped".into(),
    }
}

/// Whether a `206` answers a range starting at `offset`, by its `Content-Range`.
pub(super) fn range_starts_at(response: &reqwest::Response, offset: u64) -> bool {
    response
        .headers()
        .get(CONTENT_RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(content_range_start)
        == Some(offset)
}

/// The first byte of a `Content-Range` value such as `bytes 1048576-2097151/2097152`
/// (RFC 9110 §14.4). The range unit is matched in any case, as §14.1 says units are, so a
/// server (or a proxy) writing `Bytes` is not taken for one that ignored the range.
fn content_range_start(value: &str) -> Option<u64> {
    let (unit, range) = value.trim_start().split_once(' ')?;
    if !unit.eq_ignore_ascii_case("bytes") {
        return None;
    }
    range.trim_start().split('-').next()?.parse().ok()
}

fn is_empty_file(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.len() == 0)
}

fn short_name(digest: &Digest) -> String {
    format!("{}:{}", digest.algorithm(), &digest.hex()[..12])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range_units_match_in_any_case() {
        for value in [
            "bytes 1048576-2097151/2097152",
            "Bytes 1048576-2097151/2097152",
            "BYTES 1048576-2097151/*",
        ] {
            assert_eq!(content_range_start(value), Some(1_048_576), "{value}");
        }
        for value in ["bytes */2097152", "items 0-1/2", "bytes", "bytes=0-1/2", ""] {
            assert_eq!(content_range_start(value), None, "{value}");
        }
    }
}
