//! A tap on a download: the same bytes, as they arrive, for a consumer running beside it
//! (an unpacker), so download, verification and unpacking overlap instead of running in turn.
//!
//! The consumer reads through [`TapReader`], which reports end-of-stream only after the
//! download was verified and the caller opened the [`TapGate`]. A failed or unverified
//! download ends the stream with an error instead, so a consumer that commits its work at
//! end-of-stream (as `extract::unpack_into` does with its final rename) never commits
//! unverified content.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::mpsc;

/// Batches in flight to the consumer.
const BATCHES_IN_FLIGHT: usize = 4;

pub(crate) enum TapMessage {
    /// The first `len` bytes are already in this file (a resumed partial download), opened
    /// by the download: by the time the reader gets here, the path may name nothing any
    /// more (a complete partial is verified and moved into place at once).
    Prefix(File, u64),
    Data(Arc<Vec<Bytes>>),
    /// Verified: end of stream.
    End,
}

/// The download's end of a tap.
#[derive(Debug)]
pub struct Tap {
    pub(crate) tx: mpsc::Sender<TapMessage>,
}

/// Opens the tap's end-of-stream once the caller is satisfied with the download; dropping
/// it instead makes the consumer's read fail.
#[derive(Debug)]
pub struct TapGate {
    tx: mpsc::Sender<TapMessage>,
}

impl TapGate {
    /// Lets the consumer see end-of-stream.
    pub async fn open(self) {
        let _ = self.tx.send(TapMessage::End).await;
    }
}

impl Tap {
    pub(crate) fn gate(self) -> TapGate {
        TapGate { tx: self.tx }
    }
}

/// A new tap and the reader for its consumer (to be used on a blocking thread).
pub fn tap() -> (Tap, TapReader) {
    let (tx, rx) = mpsc::channel(BATCHES_IN_FLIGHT);
    (
        Tap { tx },
        TapReader {
            rx,
            prefix: None,
            batch: None,
            index: 0,
            pos: 0,
            ended: false,
        },
    )
}

/// Reads a tapped download as it arrives. Blocking: use it on a blocking thread.
#[derive(Debug)]
pub struct TapReader {
    rx: mpsc::Receiver<TapMessage>,
    prefix: Option<std::io::Take<File>>,
    batch: Option<Arc<Vec<Bytes>>>,
    index: usize,
    pos: usize,
    ended: bool,
}

impl Read for TapReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if buf.is_empty() || self.ended {
            return Ok(0);
        }
        loop {
            if let Some(prefix) = &mut self.prefix {
                let n = prefix.read(buf)?;
                if n > 0 {
                    return Ok(n);
                }
                self.prefix = None;
            }
            if let Some(batch) = &self.batch {
                while self.index < batch.len() {
                    let bytes = &batch[self.index];
                    if self.pos < bytes.len() {
                        let n = (bytes.len() - self.pos).min(buf.len());
                        buf[..n].copy_from_slice(&bytes[self.pos..self.pos + n]);
                        self.pos += n;
                        return Ok(n);
                    }
                    self.index += 1;
                    self.pos = 0;
                }
                self.batch = None;
            }
            match self.rx.blocking_recv() {
                Some(TapMessage::Prefix(mut file, len)) => {
                    file.seek(SeekFrom::Start(0))?;
                    self.prefix = Some(file.take(len));
                }
                Some(TapMessage::Data(batch)) => {
                    self.batch = Some(batch);
                    self.index = 0;
                    self.pos = 0;
                }
                Some(TapMessage::End) => {
                    self.ended = true;
                    return Ok(0);
                }
                None => {
                    return Err(std::io::Error::other(
                        "the download failed or did not verify; nothing was kept",
                    ))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reader_sees_prefix_then_batches_and_end_only_when_opened() {
        let dir = tempfile::tempdir().unwrap();
        let prefix = dir.path().join("p");
        std::fs::write(&prefix, b"hello, and more than the prefix").unwrap();
        let (tap, mut reader) = tap();
        let consumer = tokio::task::spawn_blocking(move || {
            let mut all = Vec::new();
            reader.read_to_end(&mut all).map(|_| all)
        });
        let opened = std::fs::File::open(&prefix).unwrap();
        // Moved into place before the reader gets to it: the reader has the file itself.
        std::fs::rename(&prefix, dir.path().join("moved")).unwrap();
        tap.tx.send(TapMessage::Prefix(opened, 7)).await.unwrap();
        let batch = Arc::new(vec![
            Bytes::from_static(b"wor"),
            Bytes::new(),
            Bytes::from_static(b"ld"),
        ]);
        tap.tx.send(TapMessage::Data(batch)).await.unwrap();
        tap.gate().open().await;
        assert_eq!(consumer.await.unwrap().unwrap(), b"hello, world");
    }

    #[tokio::test]
    async fn a_closed_gate_fails_the_reader() {
        let (tap, mut reader) = tap();
        let consumer = tokio::task::spawn_blocking(move || {
            let mut all = Vec::new();
            reader.read_to_end(&mut all)
        });
        tap.tx
            .send(TapMessage::Data(Arc::new(vec![Bytes::from_static(
                b"unverified",
            )])))
            .await
            .unwrap();
        drop(tap.gate());
        assert!(consumer.await.unwrap().is_err());
    }
}
