//! Load (issue #5): 50 concurrent downloads of different blobs through one process, against
//! a real CNCF distribution registry, all verify, and the process's peak resident memory
//! stays under 64 MiB.
//!
//! This is the only test in its binary on purpose: the peak (`VmHWM` in
//! `/proc/self/status`) is per process, and the test harness runs tests as threads of one
//! process, so any other test would count too. The peak is reset (`/proc/self/clear_refs`)
//! after the blobs are pushed, so it measures the downloads (plus the harness and this
//! test's own baseline, which stay in the number: the bound is on the whole process).

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use ocisdk::content::MAX_ACTIVE_DOWNLOADS;
use ocisdk::progress::TransferId;
use ocisdk::{download_blob, Client, Digest, Reporter, Repository};
use ocisdk_testkit::{pseudo_random_bytes, Registry};

const BLOBS: usize = 50;
const BLOB_SIZE: usize = 4 << 20;
const PEAK_RSS_LIMIT_KIB: u64 = 64 << 10;

/// Blob `i`: a 64 KiB pseudo-random block repeated, each copy stamped with `i` and its
/// number (cheap to make, every blob and every block different).
fn blob(i: usize) -> Vec<u8> {
    let block = pseudo_random_bytes(64 << 10, 99);
    let mut out = Vec::with_capacity(BLOB_SIZE);
    let mut n = 0u64;
    while out.len() < BLOB_SIZE {
        let start = out.len();
        out.extend_from_slice(&block);
        out[start..start + 8].copy_from_slice(&(i as u64).to_le_bytes());
        out[start + 8..start + 16].copy_from_slice(&n.to_le_bytes());
        n += 1;
    }
    out.truncate(BLOB_SIZE);
    out
}

/// A field of `/proc/self/status` in KiB, e.g. `VmHWM`.
fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/self/status"))
}

/// Counts how many transfers are receiving body bytes at the same time.
#[derive(Default)]
struct Overlap {
    receiving: Mutex<HashSet<TransferId>>,
    most: AtomicUsize,
}

impl Reporter for Overlap {
    fn transfer_progress(&self, id: TransferId, _bytes: u64) {
        let mut receiving = self.receiving.lock().unwrap();
        if receiving.insert(id) {
            self.most.fetch_max(receiving.len(), Ordering::SeqCst);
        }
    }

    fn transfer_finished(&self, id: TransferId) {
        self.receiving.lock().unwrap().remove(&id);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::print_stdout)] // the RESULT line, seen with --nocapture
async fn fifty_concurrent_downloads_verify_under_64_mib_peak_rss() {
    let registry = Registry::start();
    let client = Client::builder().build().expect("client");
    let repo: Repository = format!("{}/load/blobs", registry.host())
        .parse()
        .expect("repository");
    let sources = tempfile::tempdir().unwrap();
    let mut digests = Vec::with_capacity(BLOBS);
    for i in 0..BLOBS {
        let bytes = blob(i);
        let digest = Digest::of_bytes(&bytes);
        let path = sources.path().join(format!("{i}.bin"));
        std::fs::write(&path, &bytes).unwrap();
        client
            .push_blob_file(&repo, &path, &digest, BLOB_SIZE as u64, &ocisdk::NoProgress)
            .await
            .expect("push");
        digests.push(digest);
    }
    drop(sources);

    // Measure from here: the downloads only.
    std::fs::write("/proc/self/clear_refs", "5").expect("reset the peak RSS (clear_refs)");
    let baseline = status_kib("VmHWM");

    // Like the CLI: a cache folder, so every download stages into a resumable partial.
    let cache = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let client = Client::builder()
        .cache_dir(cache.path())
        .build()
        .expect("client");
    let overlap = Arc::new(Overlap::default());
    let started = Instant::now();
    let tasks: Vec<_> = digests
        .iter()
        .enumerate()
        .map(|(i, digest)| {
            let (client, repo, digest) = (client.clone(), repo.clone(), digest.clone());
            let dest = out.path().join(format!("{i}.bin"));
            let overlap = Arc::clone(&overlap);
            tokio::spawn(async move {
                download_blob(
                    &client,
                    &repo,
                    &digest,
                    Some(BLOB_SIZE as u64),
                    &dest,
                    &*overlap,
                )
                .await
            })
        })
        .collect();
    for (i, task) in tasks.into_iter().enumerate() {
        let done = task
            .await
            .expect("task")
            .unwrap_or_else(|e| panic!("download {i}: {e}"));
        assert_eq!(done.digest, digests[i]);
        assert_eq!(done.size, BLOB_SIZE as u64);
        assert_eq!(done.resumes, 0);
    }
    let elapsed = started.elapsed();
    let peak = status_kib("VmHWM");

    for i in 0..BLOBS {
        let got = std::fs::read(out.path().join(format!("{i}.bin"))).unwrap();
        assert!(got == blob(i), "file {i} differs from blob {i}");
    }
    let mut left = std::fs::read_dir(cache.path().join("partial-v1"))
        .map(|d| d.count())
        .unwrap_or(0);
    left += std::fs::read_dir(out.path()).unwrap().count() - BLOBS;
    assert_eq!(left, 0, "partial or temp files left behind");

    let most = overlap.most.load(Ordering::SeqCst);
    println!(
        "RESULT | fifty_concurrent_downloads_verify_under_64_mib_peak_rss | {BLOBS} × {} MiB in {:.1} s, up to {most} bodies streaming at once; peak RSS {} KiB (baseline before the downloads {} KiB)",
        BLOB_SIZE >> 20,
        elapsed.as_secs_f64(),
        peak,
        baseline
    );
    // All 50 were started at once; the library streams at most MAX_ACTIVE_DOWNLOADS of
    // them at a time (that bound is what keeps memory flat), and must reach it.
    assert!(
        (2..=MAX_ACTIVE_DOWNLOADS).contains(&most),
        "{most} downloads streamed at once; expected between 2 and {MAX_ACTIVE_DOWNLOADS}"
    );
    assert!(
        peak < PEAK_RSS_LIMIT_KIB,
        "peak RSS {peak} KiB, limit {PEAK_RSS_LIMIT_KIB} KiB (baseline {baseline} KiB)"
    );
}
