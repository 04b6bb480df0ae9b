//! Parallel ranged download of one large blob: N connections each fetch `Range` chunks of
//! at least [`MIN_CHUNK_SIZE`] into their place in a preallocated file.
//!
//! Verification stays streaming without holding chunks in memory: a writer thread records
//! which chunks are complete, and a hasher thread hashes the file's contiguous complete
//! prefix as it grows, reading it back from the page cache. Chunks are handed out in order,
//! so the prefix grows steadily and the hash finishes moments after the last byte lands —
//! never a second pass after the download. (Hashing chunks in arrival order instead would
//! need them buffered in memory until their turn: N × chunk size, not flat.)

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc as std_mpsc, Arc};

use bytes::Bytes;
use reqwest::header::RANGE;
use reqwest::{Method, StatusCode};
use tokio::sync::mpsc;

use super::staging;
use crate::digest::{Digest, Hasher};
use crate::error::{Error, Location, Result};
use crate::progress::Reporter;
use crate::reference::Repository;
use crate::registry::retry::{self, Attempt, Decision};
use crate::registry::{location, ApiRequest, Client};

/// The smallest chunk: below this, per-request latency eats the gain.
pub const MIN_CHUNK_SIZE: u64 = 8 * 1024 * 1024;
/// Bytes gathered from one connection before handing them to the writer.
const BATCH_BYTES: usize = 256 * 1024;

/// A piece of the file to write at `offset`.
struct Piece {
    chunk: usize,
    offset: u64,
    data: Vec<Bytes>,
    /// This piece completes its chunk.
    last: bool,
}

/// The chunk layout of a blob.
#[derive(Debug, Clone, Copy)]
struct Layout {
    size: u64,
    chunk_size: u64,
    count: usize,
}

impl Layout {
    fn new(size: u64, connections: usize) -> Layout {
        // Several chunks per connection keep all of them busy to the end.
        let chunk_size = (size / (connections as u64 * 4)).max(MIN_CHUNK_SIZE);
        Layout {
            size,
            chunk_size,
            count: size.div_ceil(chunk_size) as usize,
        }
    }

    fn range(&self, chunk: usize) -> (u64, u64) {
        let start = chunk as u64 * self.chunk_size;
        (start, (start + self.chunk_size).min(self.size))
    }
}

/// Whether a blob of `size` is worth splitting over `connections`.
pub(crate) fn worth_it(size: u64, connections: usize) -> bool {
    connections > 1 && size >= 2 * MIN_CHUNK_SIZE
}

/// Downloads `digest` of `size` bytes over `connections` parallel ranged requests. Returns
/// `Ok(None)` when the registry does not honour `Range` (the caller then streams it whole).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn download(
    client: &Client,
    repo: &Repository,
    digest: &Digest,
    size: u64,
    dest: &Path,
    reporter: &dyn Reporter,
    id: u64,
    connections: usize,
) -> Result<Option<u64>> {
    let at = location(repo, Some(digest.to_string()));
    let layout = Layout::new(size, connections);
    // Probe with the first chunk: a registry that ignores Range answers 200.
    let (start, end) = layout.range(0);
    let first = range_request(client, repo, digest, start, end, &at).await?;
    if first.status() != StatusCode::PARTIAL_CONTENT {
        return Ok(None);
    }
    let staged = staging::temp_beside(dest, digest, client.files())?;
    staged
        .file
        .set_len(size)
        .map_err(|e| Error::io("allocating", staged.landing.path(), e))?;
    let file = Arc::new(staged.file);

    let (pieces_tx, pieces_rx) = mpsc::channel::<Piece>(connections * 4);
    let (watermark_tx, watermark_rx) = std_mpsc::channel::<u64>();
    let writer = {
        let file = file.clone();
        let path = staged.landing.path().to_path_buf();
        tokio::task::spawn_blocking(move || {
            write_pieces(&file, pieces_rx, layout, watermark_tx, &path)
        })
    };
    let hasher = {
        let file = file.clone();
        let hasher = staged.hasher;
        let path = staged.landing.path().to_path_buf();
        tokio::task::spawn_blocking(move || hash_prefix(&file, hasher, watermark_rx, size, &path))
    };

    let next = Arc::new(AtomicUsize::new(1));
    let mut first = Some(first);
    let workers = (0..connections.min(layout.count)).map(|w| {
        let first = if w == 0 { first.take() } else { None };
        let next = next.clone();
        let pieces_tx = pieces_tx.clone();
        let at = at.clone();
        async move {
            let mut chunk = if first.is_some() {
                0
            } else {
                next.fetch_add(1, Ordering::Relaxed)
            };
            let mut response = first;
            while chunk < layout.count {
                fetch_chunk(
                    client,
                    repo,
                    digest,
                    layout,
                    chunk,
                    response.take(),
                    &pieces_tx,
                    reporter,
                    id,
                    &at,
                )
                .await?;
                chunk = next.fetch_add(1, Ordering::Relaxed);
            }
            Ok::<(), Error>(())
        }
    });
    let fetched = futures_util::future::try_join_all(workers).await;
    drop(pieces_tx);
    let written = writer.await;
    let hashed = hasher.await;
    // The writer's own error first: when it failed (disk full), the fetchers stopped with
    // "the file writer stopped", which is only the consequence.
    written.map_err(|e| Error::io("writing", dest, std::io::Error::other(e)))??;
    fetched?;
    let actual = hashed.map_err(|e| Error::io("hashing", dest, std::io::Error::other(e)))??;
    if &actual != digest {
        return Err(Error::DigestMismatch {
            at,
            expected: digest.clone(),
            actual,
        });
    }
    let (to, files) = (dest.to_path_buf(), client.files());
    staging::off_async(move || {
        file.sync_all().map_err(|e| Error::io("writing", &to, e))?;
        drop(file);
        staged.landing.persist(&to, files)
    })
    .await?;
    Ok(Some(size))
}

async fn range_request(
    client: &Client,
    repo: &Repository,
    digest: &Digest,
    start: u64,
    end: u64,
    at: &Location,
) -> Result<reqwest::Response> {
    let url = client.endpoints(repo)?.blob(repo, digest);
    let req = ApiRequest::new(Method::GET, url, "downloading blob chunk", at.clone())
        .header(RANGE, &format!("bytes={start}-{}", end - 1));
    client.send(&req).await
}

/// Fetches one chunk, resuming within it when its body breaks off.
#[allow(clippy::too_many_arguments)]
async fn fetch_chunk(
    client: &Client,
    repo: &Repository,
    digest: &Digest,
    layout: Layout,
    chunk: usize,
    mut response: Option<reqwest::Response>,
    pieces: &mpsc::Sender<Piece>,
    reporter: &dyn Reporter,
    id: u64,
    at: &Location,
) -> Result<()> {
    let (start, end) = layout.range(chunk);
    let policy = *client.retry_policy();
    let started = std::time::Instant::now();
    let mut pos = start;
    let mut attempt = 0;
    loop {
        let mut r = match response.take() {
            Some(r) => r,
            None => range_request(client, repo, digest, pos, end, at).await?,
        };
        if r.status() != StatusCode::PARTIAL_CONTENT || !super::download::range_starts_at(&r, pos) {
            return Err(Error::Protocol {
                at: at.clone(),
                message: format!(
                    "asked for bytes {pos}-{} and got HTTP {} without a matching Content-Range",
                    end - 1,
                    r.status()
                ),
            });
        }
        let mut batch = Vec::new();
        let mut batch_len = 0usize;
        let mut batch_offset = pos;
        let broke = loop {
            match r.chunk().await {
                Ok(Some(bytes)) => {
                    if pos + bytes.len() as u64 > end {
                        return Err(Error::SizeMismatch {
                            at: at.clone(),
                            expected: end - start,
                            actual: pos + bytes.len() as u64 - start,
                        });
                    }
                    pos += bytes.len() as u64;
                    reporter.transfer_progress(id, bytes.len() as u64);
                    batch_len += bytes.len();
                    batch.push(bytes);
                    if batch_len >= BATCH_BYTES || pos == end {
                        let data = std::mem::take(&mut batch);
                        send_piece(pieces, chunk, batch_offset, data, pos == end, at).await?;
                        batch_offset = pos;
                        batch_len = 0;
                    }
                }
                Ok(None) if pos == end => return Ok(()),
                Ok(None) => {
                    break Error::SizeMismatch {
                        at: at.clone(),
                        expected: end - start,
                        actual: pos - start,
                    }
                }
                Err(source) => {
                    break Error::Transport {
                        operation: "downloading blob chunk",
                        at: at.clone(),
                        source,
                    }
                }
            }
        };
        if !batch.is_empty() {
            send_piece(pieces, chunk, batch_offset, batch, false, at).await?;
        }
        if pos == end {
            // The body broke off after its last byte (a framing error at its end): every
            // byte of the chunk arrived and went out as its last piece.
            return Ok(());
        }
        attempt += 1;
        match retry::decide(
            &policy,
            attempt,
            started.elapsed(),
            true,
            Attempt::Transport,
            fastrand::f64(),
        ) {
            Decision::GiveUp => return Err(broke),
            Decision::RetryAfter(wait) => tokio::time::sleep(wait).await,
        }
    }
}

async fn send_piece(
    pieces: &mpsc::Sender<Piece>,
    chunk: usize,
    offset: u64,
    data: Vec<Bytes>,
    last: bool,
    at: &Location,
) -> Result<()> {
    pieces
        .send(Piece {
            chunk,
            offset,
            data,
            last,
        })
        .await
        .map_err(|_| Error::Protocol {
            at: at.clone(),
            message: "the file writer stopped".into(),
        })
}

/// Writes pieces in place and tells the hasher how far the file is complete.
fn write_pieces(
    file: &File,
    mut pieces: mpsc::Receiver<Piece>,
    layout: Layout,
    watermark: std_mpsc::Sender<u64>,
    path: &Path,
) -> Result<()> {
    let mut done = vec![false; layout.count];
    let mut complete_prefix = 0usize;
    while let Some(piece) = pieces.blocking_recv() {
        let mut offset = piece.offset;
        for bytes in &piece.data {
            file.write_all_at(bytes, offset)
                .map_err(|e| Error::io("writing", path, e))?;
            offset += bytes.len() as u64;
        }
        if piece.last {
            done[piece.chunk] = true;
            while complete_prefix < layout.count && done[complete_prefix] {
                complete_prefix += 1;
            }
            let upto = if complete_prefix == layout.count {
                layout.size
            } else {
                layout.range(complete_prefix).0
            };
            let _ = watermark.send(upto);
        }
    }
    Ok(())
}

/// Hashes the file's complete prefix as it grows, up to `size`.
fn hash_prefix(
    file: &File,
    mut hasher: Hasher,
    watermark: std_mpsc::Receiver<u64>,
    size: u64,
    path: &Path,
) -> Result<Digest> {
    let mut buf = vec![0u8; 1024 * 1024];
    let mut hashed = 0u64;
    while hashed < size {
        // The writer hung up before the end: the download failed; the caller reports why.
        let Ok(upto) = watermark.recv() else {
            return Err(Error::io(
                "hashing",
                path,
                std::io::Error::other("download incomplete"),
            ));
        };
        while hashed < upto {
            let want = (upto - hashed).min(buf.len() as u64) as usize;
            file.read_exact_at(&mut buf[..want], hashed)
                .map_err(|e| Error::io("reading back", path, e))?;
            hasher.update(&buf[..want]);
            hashed += want as u64;
        }
    }
    Ok(hasher.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_covers_the_blob_with_big_enough_chunks() {
        let size = 100 * 1024 * 1024 + 7;
        let l = Layout::new(size, 8);
        assert!(l.chunk_size >= MIN_CHUNK_SIZE);
        let mut next = 0;
        for c in 0..l.count {
            let (start, end) = l.range(c);
            assert_eq!(start, next);
            assert!(end > start);
            next = end;
        }
        assert_eq!(next, size);
        assert!(!worth_it(MIN_CHUNK_SIZE, 8));
        assert!(worth_it(2 * MIN_CHUNK_SIZE, 8));
        assert!(!worth_it(1 << 30, 1));
    }
}
