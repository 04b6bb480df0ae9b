//! Progress reporting: the library never prints; callers that want bars implement
//! [`Reporter`].

use std::sync::atomic::{AtomicU64, Ordering};

/// Identifies one transfer in reporter callbacks.
pub type TransferId = u64;

/// Receives progress events. Every method has a no-op default.
pub trait Reporter: Send + Sync {
    /// A transfer started; `total` is its size when known.
    fn transfer_started(&self, _id: TransferId, _name: &str, _total: Option<u64>) {}
    /// `bytes` more bytes arrived (or were sent).
    fn transfer_progress(&self, _id: TransferId, _bytes: u64) {}
    /// The transfer ended: a download successfully or not, an upload successfully.
    fn transfer_finished(&self, _id: TransferId) {}
    /// A transfer failed, having delivered nothing that counts (a download that broke off
    /// or failed verification, an upload attempt that starts over as a new transfer). By
    /// default the same as [`Reporter::transfer_finished`].
    fn transfer_failed(&self, id: TransferId) {
        self.transfer_finished(id);
    }
    /// A step finished, e.g. "installed python 3.11.10", or a wait began, e.g. for another
    /// pull of the same SDK into the same folder.
    fn step(&self, _message: &str) {}
}

/// A reporter that ignores everything.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Reporter for NoProgress {}

/// A fresh id for a transfer.
pub(crate) fn next_transfer_id() -> TransferId {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}
