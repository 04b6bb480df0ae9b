//! Producing a stream on a second thread, one step ahead of its reader, so that making the
//! bytes (inflating gzip or zstd) and using them (parsing tar, writing files) run on two
//! cores instead of taking turns on one.
//!
//! Written here because the stream is borrowed (a scoped thread, not `'static`), the
//! producer's errors must reach the reader at the point where they happened, and a producer
//! that stops without saying so (a panic) must look like an error, never like the end of
//! the stream: the unpacker commits an install at end-of-stream.

use std::io::{self, Read, Write};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

/// Bytes per message: large enough that the channel costs nothing per byte.
const CHUNK: usize = 128 * 1024;
/// Messages in flight: memory stays at a few chunks whatever the stream's size.
const DEPTH: usize = 2;

enum Message {
    Data(Vec<u8>),
    Failed(io::Error),
    End,
}

/// Runs `open` and reads what it returns on a helper thread while `consume` reads the
/// bytes from the returned reader on this one. `open` runs on the helper thread too (it may
/// read, as a decompressor reading its magic does); its error is the reader's first.
pub(crate) fn with_read_ahead<R, T>(
    open: impl FnOnce() -> io::Result<R> + Send,
    consume: impl FnOnce(&mut ReadAhead) -> T,
) -> T
where
    R: Read,
{
    std::thread::scope(|scope| {
        let (tx, rx) = sync_channel(DEPTH);
        // Read chunks go back to the producer to be filled again: a stream allocates a few
        // chunks, not one per 256 KiB (which, with one malloc arena per thread and many
        // installs at once, added up).
        let (recycle, recycled) = sync_channel(DEPTH + 1);
        scope.spawn(move || produce(open, tx, recycled));
        let mut reader = ReadAhead::new(rx, recycle);
        consume(&mut reader)
        // `reader` drops here, before the scope waits for the helper: its next send fails
        // and it stops, whether or not `consume` read to the end.
    })
}

fn produce<R: Read>(
    open: impl FnOnce() -> io::Result<R>,
    tx: SyncSender<Message>,
    recycled: Receiver<Vec<u8>>,
) {
    let mut source = match open() {
        Ok(source) => source,
        Err(e) => {
            let _ = tx.send(Message::Failed(e));
            return;
        }
    };
    loop {
        let mut chunk = recycled.try_recv().unwrap_or_default();
        chunk.resize(CHUNK, 0);
        let mut filled = 0;
        while filled < CHUNK {
            match source.read(&mut chunk[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // The bytes before the error first: the reader sees the error where
                    // it happened.
                    chunk.truncate(filled);
                    if filled == 0 || tx.send(Message::Data(chunk)).is_ok() {
                        let _ = tx.send(Message::Failed(e));
                    }
                    return;
                }
            }
        }
        let at_end = filled < CHUNK;
        chunk.truncate(filled);
        if filled > 0 && tx.send(Message::Data(chunk)).is_err() {
            return; // the reader is gone
        }
        if at_end {
            let _ = tx.send(Message::End);
            return;
        }
    }
}

/// Runs `produce` on a helper thread, writing into a pipe that `consume` reads from on this
/// one, and returns both results. Unlike [`with_read_ahead`] the producer pushes: it is a
/// loop of its own (walking a layer's tar and copying one member out) that cannot be turned
/// into a `Read`. The reader sees end-of-stream only when `produce` returned `Ok`; an `Err`
/// or a panic is an error at that point of the stream (and the panic is raised again once
/// `consume` returns). When `consume` stops reading, the producer's next write fails with
/// [`io::ErrorKind::BrokenPipe`].
pub(crate) fn with_pipe<P, E, T>(
    produce: impl FnOnce(&mut PipeWriter) -> Result<P, E> + Send,
    consume: impl FnOnce(&mut ReadAhead) -> T,
) -> (Result<P, E>, T)
where
    P: Send,
    E: Send,
{
    std::thread::scope(|scope| {
        let (tx, rx) = sync_channel(DEPTH);
        let (recycle, recycled) = sync_channel(DEPTH + 1);
        let producer = scope.spawn(move || {
            let mut pipe = PipeWriter {
                tx,
                recycled,
                chunk: Vec::new(),
            };
            let produced = produce(&mut pipe);
            let end = match &produced {
                Ok(_) => pipe.send().map(|()| Message::End),
                Err(_) => Ok(Message::Failed(io::Error::other(
                    "the producer of the stream failed",
                ))),
            };
            // When the reader is gone, it has its own error to tell.
            if let Ok(end) = end {
                let _ = pipe.tx.send(end);
            }
            produced
        });
        let mut reader = ReadAhead::new(rx, recycle);
        let consumed = consume(&mut reader);
        drop(reader);
        // A panic is a bug: raise it here, after `consume` saw an error, not an end.
        let produced = producer
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (produced, consumed)
    })
}

/// The writing end of [`with_pipe`].
pub(crate) struct PipeWriter {
    tx: SyncSender<Message>,
    recycled: Receiver<Vec<u8>>,
    chunk: Vec<u8>,
}

impl PipeWriter {
    fn send(&mut self) -> io::Result<()> {
        if self.chunk.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::take(&mut self.chunk);
        self.tx.send(Message::Data(chunk)).map_err(|_| {
            io::Error::new(io::ErrorKind::BrokenPipe, "the reader of the pipe stopped")
        })
    }
}

impl Write for PipeWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.chunk.capacity() == 0 {
            self.chunk = self.recycled.try_recv().unwrap_or_default();
            self.chunk.clear();
            self.chunk.reserve_exact(CHUNK);
        }
        let n = buf.len().min(CHUNK - self.chunk.len());
        self.chunk.extend_from_slice(&buf[..n]);
        if self.chunk.len() == CHUNK {
            self.send()?;
        }
        Ok(n)
    }

    /// Nothing to do: a partly filled chunk goes when it fills or the producer returns.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The reading end of [`with_read_ahead`].
pub(crate) struct ReadAhead {
    rx: Receiver<Message>,
    recycle: SyncSender<Vec<u8>>,
    current: Vec<u8>,
    pos: usize,
    finished: bool,
}

impl ReadAhead {
    fn new(rx: Receiver<Message>, recycle: SyncSender<Vec<u8>>) -> ReadAhead {
        ReadAhead {
            rx,
            recycle,
            current: Vec::new(),
            pos: 0,
            finished: false,
        }
    }
}

impl Read for ReadAhead {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.current.len() {
            if self.finished {
                return Ok(0);
            }
            match self.rx.recv() {
                Ok(Message::Data(chunk)) => {
                    let done = std::mem::replace(&mut self.current, chunk);
                    let _ = self.recycle.try_send(done);
                    self.pos = 0;
                }
                Ok(Message::End) => self.finished = true,
                Ok(Message::Failed(e)) => return Err(e),
                Err(_) => {
                    return Err(io::Error::other(
                        "the thread reading ahead stopped before the end of the stream",
                    ))
                }
            }
        }
        let n = buf.len().min(self.current.len() - self.pos);
        buf[..n].copy_from_slice(&self.current[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Gives `data` in odd pieces, then fails with `fail` (if any) instead of ending.
    struct Pieces {
        data: Vec<u8>,
        at: usize,
        fail: Option<io::ErrorKind>,
    }

    impl Read for Pieces {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.at == self.data.len() {
                return match self.fail {
                    Some(kind) => Err(kind.into()),
                    None => Ok(0),
                };
            }
            let n = buf.len().min(7919).min(self.data.len() - self.at);
            buf[..n].copy_from_slice(&self.data[self.at..self.at + n]);
            self.at += n;
            Ok(n)
        }
    }

    fn data(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 % 251) as u8).collect()
    }

    #[test]
    fn every_byte_arrives_in_order_whatever_the_length() {
        for len in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 12345] {
            let want = data(len);
            let source = Pieces {
                data: want.clone(),
                at: 0,
                fail: None,
            };
            let got = with_read_ahead(
                || Ok(source),
                |r| {
                    let mut out = Vec::new();
                    r.read_to_end(&mut out).map(|_| out)
                },
            )
            .unwrap();
            assert!(got == want, "length {len}: bytes differ");
        }
    }

    #[test]
    fn an_error_reaches_the_reader_after_the_bytes_before_it() {
        let want = data(2 * CHUNK + 5);
        let source = Pieces {
            data: want.clone(),
            at: 0,
            fail: Some(io::ErrorKind::InvalidData),
        };
        let (got, err) = with_read_ahead(
            || Ok(source),
            |r| {
                let mut out = vec![0u8; want.len()];
                r.read_exact(&mut out).unwrap();
                (out, r.read(&mut [0u8; 16]).unwrap_err())
            },
        );
        assert!(got == want, "bytes before the error differ");
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);

        let err = with_read_ahead(
            || -> io::Result<Pieces> { Err(io::ErrorKind::NotFound.into()) },
            |r| r.read(&mut [0u8; 16]).unwrap_err(),
        );
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }

    /// A producer that dies is an error, not an end: the unpacker must not commit.
    #[test]
    fn a_producer_that_panics_is_an_error_not_the_end() {
        let saw_error = std::sync::Mutex::new(None);
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            with_read_ahead(
                || -> io::Result<Pieces> { panic!("producer broke (a test of that case)") },
                |r| *saw_error.lock().unwrap() = Some(r.read(&mut [0u8; 16]).is_err()),
            )
        }));
        // The scope re-raises the helper's panic once `consume` is done; what `consume`
        // saw before that must have been an error.
        assert!(outcome.is_err(), "the helper's panic was lost");
        assert_eq!(
            *saw_error.lock().unwrap(),
            Some(true),
            "the reader saw an end of stream, not an error"
        );
    }

    #[test]
    fn a_reader_that_stops_early_does_not_hang_the_producer() {
        let source = Pieces {
            data: data(20 * CHUNK),
            at: 0,
            fail: None,
        };
        let first = with_read_ahead(
            || Ok(source),
            |r| {
                let mut byte = [0u8; 1];
                r.read_exact(&mut byte).map(|_| byte[0])
            },
        )
        .unwrap();
        assert_eq!(first, 0);
    }

    #[test]
    fn a_pipe_ends_only_when_the_producer_succeeds() {
        let want = data(3 * CHUNK + 77);
        let (produced, got) = with_pipe(
            |pipe| -> io::Result<usize> {
                for piece in want.chunks(5000) {
                    pipe.write_all(piece)?;
                }
                Ok(want.len())
            },
            |r| {
                let mut out = Vec::new();
                r.read_to_end(&mut out).map(|_| out)
            },
        );
        assert_eq!(produced.unwrap(), want.len());
        assert!(got.unwrap() == want, "bytes differ");

        let (produced, got) = with_pipe(
            |pipe| -> io::Result<()> {
                pipe.write_all(&want[..100])?;
                Err(io::ErrorKind::InvalidData.into())
            },
            |r| {
                let mut out = Vec::new();
                let err = r.read_to_end(&mut out).unwrap_err();
                (out, err)
            },
        );
        assert_eq!(produced.unwrap_err().kind(), io::ErrorKind::InvalidData);
        let (bytes, err) = got;
        assert!(bytes.len() <= 100, "more bytes than were written");
        assert_ne!(err.kind(), io::ErrorKind::InvalidData, "{err}");
    }

    #[test]
    fn a_pipe_whose_reader_stops_fails_the_producer_and_a_panic_is_an_error() {
        let (produced, first) = with_pipe(
            |pipe| -> io::Result<()> {
                loop {
                    pipe.write_all(&[7u8; 4096])?;
                }
            },
            |r| {
                let mut byte = [0u8; 1];
                r.read_exact(&mut byte).map(|_| byte[0])
            },
        );
        assert_eq!(first.unwrap(), 7);
        assert_eq!(produced.unwrap_err().kind(), io::ErrorKind::BrokenPipe);

        let saw_error = std::sync::Mutex::new(None);
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            with_pipe(
                |_pipe| -> io::Result<()> { panic!("producer broke (a test of that case)") },
                |r| *saw_error.lock().unwrap() = Some(r.read(&mut [0u8; 16]).is_err()),
            )
        }));
        assert!(outcome.is_err(), "the producer's panic was lost");
        assert_eq!(
            *saw_error.lock().unwrap(),
            Some(true),
            "the reader saw an end of stream, not an error"
        );
    }
}
