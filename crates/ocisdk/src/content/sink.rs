//! The receiving end of a download: one thread writes the bytes to the file while another
//! hashes them, both fed the same batches straight from the socket.
//!
//! Why two threads: on a 2-core machine reading the socket, hashing (SHA-256 at about
//! 1.4 GB/s) and copying into the page cache each cost a comparable share of a core; run one
//! after the other they are slower than an unverified `curl -o file`, run side by side they
//! are not. Batches are `Bytes` shared by reference count, so neither thread copies them.

use std::fs::File;
use std::io::{IoSlice, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::direct::DirectWriter;
use super::tap::{Tap, TapMessage};
use crate::digest::{Digest, Hasher};
use crate::error::{Error, Result};

/// Batches in flight to each thread: a few, so memory stays flat whatever the blob size.
const BATCHES_IN_FLIGHT: usize = 4;

/// Downloads that stream at once in this process. Each holds a few batches and two threads;
/// capping them keeps memory flat however many downloads a program starts (the others wait
/// their turn before they open a connection), and eight streams already fill any link.
pub const MAX_ACTIVE_DOWNLOADS: usize = 8;

static DOWNLOAD_SLOTS: tokio::sync::Semaphore =
    tokio::sync::Semaphore::const_new(MAX_ACTIVE_DOWNLOADS);

/// Waits for one of the [`MAX_ACTIVE_DOWNLOADS`] slots; the slot frees when dropped.
pub(crate) async fn download_slot() -> tokio::sync::SemaphorePermit<'static> {
    // The semaphore is never closed, so acquiring cannot fail.
    DOWNLOAD_SLOTS
        .acquire()
        .await
        .unwrap_or_else(|_| unreachable!("the download semaphore is never closed"))
}

type Batch = Arc<Vec<Bytes>>;

enum Message {
    Data(Batch),
    /// The registry ignored our `Range` and is sending everything again: start over.
    Restart,
    Finish,
}

/// Feeds a file and a hasher from one stream of batches.
pub(crate) struct Sink {
    to_writer: mpsc::Sender<Message>,
    to_hasher: mpsc::Sender<Message>,
    /// A consumer reading along (see `tap.rs`); dropped when it cannot follow a restart.
    tap: Option<Tap>,
    writer: JoinHandle<Result<Option<u64>>>,
    hasher: JoinHandle<Option<Hasher>>,
}

impl Sink {
    /// Starts the threads. `hasher` and `offset` carry over bytes already in `file` (a
    /// resumed partial download), positioned at its end.
    pub(crate) async fn spawn(
        file: File,
        hasher: Hasher,
        offset: u64,
        path: &Path,
        tap: Option<Tap>,
    ) -> Sink {
        let mut tap = tap;
        if let Some(t) = &tap {
            if offset > 0 {
                // A reader that cannot have the bytes already here cannot follow at all.
                let sent = match File::open(path) {
                    Ok(prefix) => t.tx.send(TapMessage::Prefix(prefix, offset)).await.is_ok(),
                    Err(e) => {
                        tracing::warn!(path = %path.display(), "cannot read the partial download back: {e}");
                        false
                    }
                };
                if !sent {
                    tap = None;
                }
            }
        }
        let (to_writer, writer_rx) = mpsc::channel(BATCHES_IN_FLIGHT);
        let (to_hasher, hasher_rx) = mpsc::channel(BATCHES_IN_FLIGHT);
        let path = path.to_path_buf();
        let writer =
            tokio::task::spawn_blocking(move || write_batches(file, writer_rx, offset, &path));
        let hasher = tokio::task::spawn_blocking(move || hash_batches(hasher, hasher_rx));
        Sink {
            to_writer,
            to_hasher,
            tap,
            writer,
            hasher,
        }
    }

    /// Hands a batch to both threads. Fails only when a thread stopped (after an I/O error,
    /// which [`Sink::abort`] then reports).
    pub(crate) async fn send(&mut self, batch: Vec<Bytes>) -> std::result::Result<(), Stopped> {
        let batch = Arc::new(batch);
        if let Some(tap) = &self.tap {
            if tap.tx.send(TapMessage::Data(batch.clone())).await.is_err() {
                // The consumer gave up (its own error); the download itself goes on.
                self.tap = None;
            }
        }
        self.to_writer
            .send(Message::Data(batch.clone()))
            .await
            .map_err(|_| Stopped)?;
        self.to_hasher
            .send(Message::Data(batch))
            .await
            .map_err(|_| Stopped)
    }

    /// Discards everything received so far.
    pub(crate) async fn restart(&mut self) -> std::result::Result<(), Stopped> {
        // A consumer cannot un-read what it saw: it fails, and the caller falls back.
        self.tap = None;
        self.to_writer
            .send(Message::Restart)
            .await
            .map_err(|_| Stopped)?;
        self.to_hasher
            .send(Message::Restart)
            .await
            .map_err(|_| Stopped)
    }

    /// Ends the stream: the file is synced; returns its digest and size, and the tap (if it
    /// is still attached) for the caller to open once it accepts the result.
    pub(crate) async fn finish(self) -> Result<(Digest, u64, Option<Tap>)> {
        let _ = self.to_writer.send(Message::Finish).await;
        let _ = self.to_hasher.send(Message::Finish).await;
        drop((self.to_writer, self.to_hasher));
        let written = join(self.writer).await??;
        let hasher = self.hasher.await.ok().flatten();
        match (written, hasher) {
            (Some(size), Some(hasher)) => Ok((hasher.finish(), size, self.tap)),
            _ => Err(Error::io(
                "writing",
                PathBuf::new(),
                std::io::Error::other("the download writer stopped early"),
            )),
        }
    }

    /// Stops the threads after a failure; returns the writer's own error, if it had one
    /// (disk full, permission denied), which is then the real cause.
    pub(crate) async fn abort(self) -> Option<Error> {
        drop((self.to_writer, self.to_hasher, self.tap));
        let _ = self.hasher.await;
        match join(self.writer).await {
            Ok(Err(e)) | Err(e) => Some(e),
            Ok(Ok(_)) => None,
        }
    }
}

/// A thread of the sink has stopped.
#[derive(Debug)]
pub(crate) struct Stopped;

async fn join<T>(handle: JoinHandle<T>) -> Result<T> {
    handle
        .await
        .map_err(|e| Error::io("writing", PathBuf::new(), std::io::Error::other(e)))
}

/// Writes batches; `None` when the stream ended without `Finish` (a failed download). Past
/// [`DIRECT_AFTER`] bytes the rest goes to the disk directly (see `direct.rs`).
fn write_batches(
    mut file: File,
    mut rx: mpsc::Receiver<Message>,
    already: u64,
    path: &Path,
) -> Result<Option<u64>> {
    let io_err = |e| Error::io("writing", path, e);
    let mut written = already;
    let mut flushing_from = already;
    let mut direct: Option<DirectWriter> = None;
    let mut direct_refused = false;
    while let Some(message) = rx.blocking_recv() {
        match message {
            Message::Data(batch) => {
                written += batch.iter().map(|b| b.len() as u64).sum::<u64>();
                if let Some(direct) = &mut direct {
                    for bytes in batch.iter() {
                        direct.write(&file, bytes).map_err(io_err)?;
                    }
                    continue;
                }
                write_all_vectored(&mut file, &batch).map_err(io_err)?;
                if written >= DIRECT_AFTER && !direct_refused {
                    direct = DirectWriter::start(&file, written);
                    direct_refused = direct.is_none();
                } else if written - flushing_from >= WRITEBACK_STEP {
                    start_writeback(&file, flushing_from, written - flushing_from);
                    flushing_from = written;
                }
            }
            Message::Restart => {
                if let Some(direct) = direct.take() {
                    direct.discard(&file).map_err(io_err)?;
                }
                file.set_len(0).map_err(io_err)?;
                file.rewind().map_err(io_err)?;
                written = 0;
                flushing_from = 0;
            }
            Message::Finish => {
                if let Some(direct) = direct.take() {
                    debug_assert_eq!(direct.end(), written);
                    direct.finish(&file).map_err(io_err)?;
                }
                file.sync_all().map_err(io_err)?;
                return Ok(Some(written));
            }
        }
    }
    Ok(None)
}

/// Bytes written through the page cache before switching to direct writes: a download
/// smaller than this never waits for the device until its final fsync.
const DIRECT_AFTER: u64 = 16 * 1024 * 1024;

/// How much written data to let pile up before asking the kernel to start writing it out.
const WRITEBACK_STEP: u64 = 16 * 1024 * 1024;

/// Starts writing a range of the file to disk without waiting for it. The download ends
/// with an fsync; without this, that fsync would write the whole blob after the last byte
/// arrived (about 0.7 s per GiB here), with it the disk works while the network does.
#[cfg(target_os = "linux")]
pub(crate) fn start_writeback(file: &File, offset: u64, len: u64) {
    use std::os::fd::AsRawFd;
    let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else {
        return;
    };
    // SAFETY: the descriptor is open for the whole call (borrowed from `file`), and
    // SYNC_FILE_RANGE_WRITE only schedules writeback; it touches no memory of ours. A
    // failure is harmless: the final fsync writes whatever is left.
    unsafe {
        libc::sync_file_range(file.as_raw_fd(), offset, len, libc::SYNC_FILE_RANGE_WRITE);
    }
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn start_writeback(_file: &File, _offset: u64, _len: u64) {}

fn hash_batches(mut hasher: Hasher, mut rx: mpsc::Receiver<Message>) -> Option<Hasher> {
    let algorithm = hasher.algorithm();
    while let Some(message) = rx.blocking_recv() {
        match message {
            Message::Data(batch) => batch.iter().for_each(|b| hasher.update(b)),
            Message::Restart => hasher = Hasher::new(algorithm),
            Message::Finish => return Some(hasher),
        }
    }
    None
}

/// One `writev` per batch where the kernel takes it all (it usually does), so a batch of
/// many small socket chunks costs one system call, not one each, and no copy into a buffer.
fn write_all_vectored(file: &mut File, batch: &[Bytes]) -> std::io::Result<()> {
    let mut slices: Vec<IoSlice<'_>> = batch
        .iter()
        .filter(|b| !b.is_empty())
        .map(|b| IoSlice::new(b))
        .collect();
    let mut remaining: &mut [IoSlice<'_>] = &mut slices;
    while !remaining.is_empty() {
        match file.write_vectored(remaining) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut remaining, n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn writes_and_hashes_what_it_is_sent_and_restarts_cleanly() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let file = File::create(&path).unwrap();
        let mut sink = Sink::spawn(
            file,
            Hasher::new(crate::digest::Algorithm::Sha256),
            0,
            &path,
            None,
        )
        .await;
        sink.send(vec![Bytes::from_static(b"garbage")])
            .await
            .unwrap();
        sink.restart().await.unwrap();
        let parts: Vec<Bytes> = (0..100)
            .map(|i| Bytes::from(vec![i as u8; 1000 + i]))
            .collect();
        let whole: Vec<u8> = parts.iter().flat_map(|b| b.iter().copied()).collect();
        sink.send(parts[..50].to_vec()).await.unwrap();
        sink.send(parts[50..].to_vec()).await.unwrap();
        let (digest, size, _) = sink.finish().await.unwrap();
        assert_eq!(size, whole.len() as u64);
        assert_eq!(digest, Digest::of_bytes(&whole));
        assert_eq!(std::fs::read(&path).unwrap(), whole);
    }

    /// Past DIRECT_AFTER the writer switches to direct writes; a restart while they are on
    /// and a second pass past the threshold still leave exactly the bytes sent.
    #[tokio::test]
    async fn large_downloads_switch_to_direct_writes_and_restart_cleanly() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let file = File::create(&path).unwrap();
        let algorithm = crate::digest::Algorithm::Sha256;
        let mut sink = Sink::spawn(file, Hasher::new(algorithm), 0, &path, None).await;
        let piece = |i: usize| Bytes::from(vec![(i % 251) as u8; 100_003 + i % 7]);
        let first_pass = DIRECT_AFTER as usize + 3 * 1024 * 1024;
        let mut sent = 0;
        for i in 0.. {
            if sent > first_pass {
                break;
            }
            let batch = vec![piece(i), piece(i + 1)];
            sent += batch.iter().map(Bytes::len).sum::<usize>();
            sink.send(batch).await.unwrap();
        }
        sink.restart().await.unwrap();
        let mut whole = Vec::new();
        for i in 0..(first_pass / 100_000 + 5) {
            let batch = vec![piece(i * 3)];
            whole.extend_from_slice(&batch[0]);
            sink.send(batch).await.unwrap();
        }
        let (digest, size, _) = sink.finish().await.unwrap();
        assert!(size > DIRECT_AFTER, "{size}");
        assert_eq!(size, whole.len() as u64);
        assert_eq!(digest, Digest::of_bytes(&whole));
        assert!(
            std::fs::read(&path).unwrap() == whole,
            "file content differs"
        );
    }
}
