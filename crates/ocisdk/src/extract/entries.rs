//! Walking the entries of a tar with a bound on the memory their headers take.
//!
//! The tar crate reads an entry's GNU long name, GNU long link name and PAX records into
//! memory whole, however big their header says they are, before it hands the entry over: a
//! long name of 4 GiB, a few MiB once gzip'd, would be allocated before any check of ours.
//! So the bytes it reads while looking for the next entry, beyond the rest of the entry
//! before it, are counted, and the read that goes past [`MAX_ENTRY_HEADERS`] fails.

use std::cell::Cell;
use std::io::{self, Read};
use std::rc::Rc;

use super::{archive_error, ExtractError};

/// Most bytes the headers of one entry may take: its own header block, its GNU long name
/// and long link name, its PAX records, its sparse map. Paths are at most 4 KiB on Linux,
/// so only a hostile archive comes near; Go's archive/tar sets the same bound
/// (`maxSpecialFileSize`).
pub(super) const MAX_ENTRY_HEADERS: u64 = 1 << 20;

const BLOCK: u64 = 512;

/// Calls `each` with every entry of the tar `reader` (PAX global headers included), and
/// returns the reader, positioned after the tar's end, for the caller to read out.
pub(super) fn for_each_entry<R: Read>(
    reader: R,
    mut each: impl FnMut(&mut tar::Entry<'_, HeaderLimit<R>>) -> Result<(), ExtractError>,
) -> Result<HeaderLimit<R>, ExtractError> {
    let state = Rc::new(Cell::new(Count::default()));
    let mut archive = tar::Archive::new(HeaderLimit {
        inner: reader,
        state: Rc::clone(&state),
    });
    {
        let mut entries = archive.entries().map_err(archive_error)?;
        // Where the data of the last entry, padded to a block, ends.
        let mut data_end = 0u64;
        loop {
            // Before the next entry's headers, the tar crate reads past whatever `each` left
            // of this entry's data: that is not headers.
            let position = state.get().position;
            let unread = data_end.saturating_sub(position);
            state.set(Count {
                position,
                budget: Some(unread.saturating_add(MAX_ENTRY_HEADERS)),
            });
            let next = entries.next();
            let position = state.get().position;
            state.set(Count {
                position,
                budget: None,
            });
            let Some(entry) = next else { break };
            let mut entry = entry.map_err(archive_error)?;
            // The tar crate has read every header of the entry: its data starts here.
            let stored = stored_size(&mut entry)?;
            data_end = position.saturating_add(stored.saturating_add(BLOCK - 1) & !(BLOCK - 1));
            each(&mut entry)?;
        }
    }
    Ok(archive.into_inner())
}

/// How many bytes of data the archive holds for `entry`: its size, except for an old GNU
/// sparse file, whose size is the file's, holes included, while the archive holds only its
/// fragments (the size in its header, or in a PAX `size` record, as the tar crate reads it).
fn stored_size<R: Read>(entry: &mut tar::Entry<'_, R>) -> Result<u64, ExtractError> {
    if !entry.header().entry_type().is_gnu_sparse() {
        return Ok(entry.size());
    }
    let pax_size = entry
        .pax_extensions()
        .map_err(archive_error)?
        .into_iter()
        .flatten()
        .flatten()
        .find(|record| record.key_bytes() == b"size")
        .and_then(|record| record.value().ok()?.parse().ok());
    match pax_size {
        Some(size) => Ok(size),
        None => entry.header().entry_size().map_err(archive_error),
    }
}

/// The reader under a tar walked by [`for_each_entry`]: it keeps count of its position and,
/// while the tar crate looks for the next entry, fails a read past the budget.
pub(super) struct HeaderLimit<R> {
    inner: R,
    state: Rc<Cell<Count>>,
}

#[derive(Debug, Clone, Copy, Default)]
struct Count {
    /// Bytes read so far.
    position: u64,
    /// Bytes that may still be read before the next entry is handed over; `None` while an
    /// entry's data is read.
    budget: Option<u64>,
}

impl<R: Read> Read for HeaderLimit<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let mut count = self.state.get();
        count.position += n as u64;
        if let Some(budget) = count.budget {
            let Some(left) = budget.checked_sub(n as u64) else {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "the headers of an entry (long names, PAX records) take more than \
                         {MAX_ENTRY_HEADERS} bytes"
                    ),
                ));
            };
            count.budget = Some(left);
        }
        self.state.set(count);
        Ok(n)
    }
}
