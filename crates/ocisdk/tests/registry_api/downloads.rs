//! Blob downloads that break off (resumed with a range, restarted when the range is
//! ignored), ranged downloads in parallel, and the partial a download resumes from.

use super::*;

/// A proxy to the fixture registry whose first blob GET breaks off after `cut` body
/// bytes; later blob GETs go to `later` (given the request and the upstream URL).
fn proxy_cutting_first_blob(
    f: &Fixtures,
    cut: usize,
    later: impl Fn(&RecordedRequest, &str) -> ScriptedResponse + Send + Sync + 'static,
) -> ScriptedServer {
    let upstream = f.registry.url();
    let blob_gets = AtomicUsize::new(0);
    ScriptedServer::start(move |req| {
        if !is_blob_get(req) {
            return forward(req, &upstream);
        }
        if blob_gets.fetch_add(1, Ordering::SeqCst) == 0 {
            forward(req, &upstream).truncate_body_after(cut)
        } else {
            later(req, &upstream)
        }
    })
}

fn blob_requests(server: &ScriptedServer) -> Vec<RecordedRequest> {
    server.requests().into_iter().filter(is_blob_get).collect()
}

#[tokio::test]
async fn download_resumes_a_truncated_body_with_a_range_request() {
    let f = fixtures();
    let half = f.layer.len() / 2;
    let proxy = proxy_cutting_first_blob(&f, half, forward);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("layer.tar.gz");
    let layer_digest = digest(&f.image.layer_digests[0]);

    let done = download_blob(
        &client(),
        &repo(&format!("{}/lib/python", proxy.host())),
        &layer_digest,
        Some(f.layer.len() as u64),
        &dest,
        &NoProgress,
    )
    .await
    .expect("download resumes");
    assert_eq!(done.resumes, 1);
    assert_eq!(done.size, f.layer.len() as u64);
    assert_eq!(done.digest, layer_digest);
    assert_same_bytes(&std::fs::read(&dest).unwrap(), &f.layer, "downloaded blob");
    assert_eq!(list_dir(dir.path()), ["layer.tar.gz"]);

    let blobs = blob_requests(&proxy);
    assert_eq!(blobs.len(), 2, "{blobs:#?}");
    assert_eq!(blobs[0].header("Range"), None);
    assert_eq!(
        blobs[1].header("Range"),
        Some(format!("bytes={half}-").as_str())
    );
}

#[tokio::test]
async fn download_restarts_when_the_registry_ignores_range() {
    let f = fixtures();
    let half = f.layer.len() / 2;
    // Later requests reach the registry without their Range header: a full 200 answer.
    let proxy = proxy_cutting_first_blob(&f, half, |req, upstream| {
        let mut without_range = req.clone();
        without_range
            .headers
            .retain(|(k, _)| !k.eq_ignore_ascii_case("range"));
        let resp = forward(&without_range, upstream);
        assert_eq!(resp.status, 200);
        resp
    });
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("layer.tar.gz");
    let layer_digest = digest(&f.image.layer_digests[0]);

    let done = download_blob(
        &client(),
        &repo(&format!("{}/lib/python", proxy.host())),
        &layer_digest,
        None,
        &dest,
        &NoProgress,
    )
    .await
    .expect("download restarts");
    assert_eq!(done.resumes, 1);
    assert_eq!(done.size, f.layer.len() as u64);
    assert_same_bytes(&std::fs::read(&dest).unwrap(), &f.layer, "downloaded blob");
    assert_eq!(list_dir(dir.path()), ["layer.tar.gz"]);

    let blobs = blob_requests(&proxy);
    assert_eq!(blobs.len(), 2, "{blobs:#?}");
    assert_eq!(
        blobs[1].header("Range"),
        Some(format!("bytes={half}-").as_str()),
        "the client asked for the rest, and got everything"
    );
}

/// Sets its flag when a transfer starts, which a download does once its file is staged.
struct StartFlag<'a>(&'a std::sync::atomic::AtomicBool);

impl ocisdk::Reporter for StartFlag<'_> {
    fn transfer_started(
        &self,
        _id: ocisdk::progress::TransferId,
        _name: &str,
        _total: Option<u64>,
    ) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Resuming a partial download first reads the partial back through the hasher. That runs
/// off the async thread, so that on a single-threaded runtime another task (another
/// download, the progress display) goes on meanwhile: here the second task of a `join!` runs
/// before the first has staged its file. The re-read used to hold the thread, so the download
/// had already started its transfer when the other task first ran. The resumed download is
/// still verified and complete.
#[test]
fn resuming_a_partial_leaves_the_async_thread_free() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let registry = Registry::start();
    let (cache, out) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let blob = pseudo_random_bytes(16 << 20, 5);
    let digest = digest(&digest_of(&blob));
    let repo = repo(&format!("{}/resume/partial", registry.host()));
    let partial_dir = cache.path().join("partial-v1");
    std::fs::create_dir_all(&partial_dir).unwrap();
    let partial = partial_dir.join(format!("sha256-{}.part", digest.hex()));
    std::fs::write(&partial, &blob[..12 << 20]).unwrap();
    let client = Client::builder().cache_dir(cache.path()).build().unwrap();
    let dest = out.path().join("blob.bin");
    let started = std::sync::atomic::AtomicBool::new(false);

    runtime.block_on(async {
        client
            .push_blob_bytes(&repo, blob.clone().into())
            .await
            .unwrap();
        let size = Some(blob.len() as u64);
        let reporter = StartFlag(&started);
        let (done, other_ran_first) = tokio::join!(
            download_blob(&client, &repo, &digest, size, &dest, &reporter),
            async { !started.load(Ordering::SeqCst) },
        );
        let done = done.unwrap();
        assert!(
            other_ran_first,
            "the download staged its file before the other task could run"
        );
        assert_eq!(done.size, blob.len() as u64);
    });
    assert_same_bytes(
        &std::fs::read(&dest).unwrap(),
        &blob,
        "the resumed download",
    );
    assert!(!partial.exists(), "the partial became the download");
}

/// Runs `cache clean` on its folder when a transfer finishes, which a download reports once
/// its bytes are verified and before it moves them into place: another process cleaning
/// the cache at that moment. Keeps what the clean said.
struct CleanWhenVerified<'a> {
    cache: &'a Path,
    cleaned: Mutex<Option<ocisdk::cache::Removed>>,
}

impl ocisdk::Reporter for CleanWhenVerified<'_> {
    fn transfer_finished(&self, _id: ocisdk::progress::TransferId) {
        let removed = ocisdk::cache::clean(self.cache, &[]).expect("cache clean");
        *self.cleaned.lock().unwrap() = Some(removed);
    }
}

/// A download in a cache folder holds its partial's lock until the partial is renamed into
/// place, so a `cache clean` (or another download of the same blob) between verification and
/// rename finds it busy. The lock used to go with the writer thread's file, before the
/// rename: the clean then deleted the verified partial and the download failed with "No such
/// file or directory" moving it into place.
#[tokio::test]
async fn a_cache_clean_as_a_download_finishes_leaves_its_partial_alone() {
    let registry = Registry::start();
    let (cache, out) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let blob = pseudo_random_bytes(1 << 20, 23);
    let digest = digest(&digest_of(&blob));
    let repo = repo(&format!("{}/clean/during", registry.host()));
    let client = Client::builder().cache_dir(cache.path()).build().unwrap();
    client
        .push_blob_bytes(&repo, blob.clone().into())
        .await
        .unwrap();
    let dest = out.path().join("blob.bin");
    let reporter = CleanWhenVerified {
        cache: cache.path(),
        cleaned: Mutex::new(None),
    };

    let done = download_blob(&client, &repo, &digest, None, &dest, &reporter)
        .await
        .expect("the download survives a cache clean");

    let cleaned = reporter.cleaned.lock().unwrap().take().expect("clean ran");
    assert_eq!(
        (cleaned.files, cleaned.in_use),
        (0, 1),
        "the partial was busy: {cleaned:?}"
    );
    assert_eq!(done.size, blob.len() as u64);
    assert_same_bytes(&std::fs::read(&dest).unwrap(), &blob, "the download");
    assert_eq!(list_dir(out.path()), ["blob.bin"]);
}

// ---------------------------------------------------------------------------------------
// Parallel ranged downloads (--chunks)
// ---------------------------------------------------------------------------------------

/// Pushes a blob big enough to be split (two minimum chunks and a bit) to its own registry.
async fn chunkable_blob() -> (Registry, Repository, Digest, Vec<u8>) {
    let registry = Registry::start();
    let repo = repo(&format!("{}/big/blob", registry.host()));
    let size = 2 * ocisdk::content::MIN_CHUNK_SIZE as usize + 12_345;
    let bytes = pseudo_random_bytes(size, 77);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.bin");
    std::fs::write(&path, &bytes).unwrap();
    let digest = Digest::of_bytes(&bytes);
    client()
        .push_blob_file(&repo, &path, &digest, size as u64, &NoProgress)
        .await
        .expect("push");
    (registry, repo, digest, bytes)
}

#[tokio::test]
async fn chunked_download_fetches_ranges_in_parallel_and_verifies() {
    let (registry, upstream_repo, digest, bytes) = chunkable_blob().await;
    let upstream = registry.url();
    let proxy = ScriptedServer::start(move |req| forward(req, &upstream));
    let repo = repo(&format!("{}/{}", proxy.host(), upstream_repo.path()));
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("big.bin");
    let client = Client::builder().parallel_chunks(4).build().unwrap();
    // Size unknown, as for `ocisdk blob`: a HEAD tells it.
    let done = download_blob(&client, &repo, &digest, None, &dest, &NoProgress)
        .await
        .expect("chunked download");
    assert_eq!(done.digest, digest);
    assert_same_bytes(&std::fs::read(&dest).unwrap(), &bytes, "chunked download");
    assert_eq!(list_dir(out.path()), ["big.bin"], "no temp files left");

    // Every byte was asked for exactly once, in ranges, none of them the whole blob.
    let mut ranges: Vec<(u64, u64)> = proxy
        .requests()
        .iter()
        .filter(|r| is_blob_get(r))
        .map(|r| {
            let range = r
                .header("range")
                .expect("every chunk request carries Range");
            let (start, end) = range.trim_start_matches("bytes=").split_once('-').unwrap();
            (start.parse().unwrap(), end.parse().unwrap())
        })
        .collect();
    ranges.sort();
    assert!(ranges.len() >= 3, "split into several chunks: {ranges:?}");
    let mut next = 0;
    for (start, end) in &ranges {
        assert_eq!(*start, next, "ranges are contiguous: {ranges:?}");
        assert!(
            end - start + 1 >= ocisdk::content::MIN_CHUNK_SIZE || *end + 1 == bytes.len() as u64
        );
        next = end + 1;
    }
    assert_eq!(next, bytes.len() as u64, "ranges cover the blob");
}

#[tokio::test]
async fn chunked_download_falls_back_to_one_stream_when_range_is_ignored() {
    let (registry, upstream_repo, digest, bytes) = chunkable_blob().await;
    let upstream = registry.url();
    let proxy = ScriptedServer::start(move |req| {
        // A registry without range support: strip Range, so the answer is a whole 200.
        let mut stripped = req.clone();
        stripped
            .headers
            .retain(|(name, _)| !name.eq_ignore_ascii_case("range"));
        forward(&stripped, &upstream)
    });
    let repo = repo(&format!("{}/{}", proxy.host(), upstream_repo.path()));
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("big.bin");
    let client = Client::builder().parallel_chunks(4).build().unwrap();
    download_blob(
        &client,
        &repo,
        &digest,
        Some(bytes.len() as u64),
        &dest,
        &NoProgress,
    )
    .await
    .expect("download without range support");
    assert_same_bytes(
        &std::fs::read(&dest).unwrap(),
        &bytes,
        "single-stream fallback",
    );
    let gets: Vec<_> = proxy.requests().into_iter().filter(is_blob_get).collect();
    assert_eq!(gets.len(), 2, "one probe, then one whole stream");
    assert!(
        gets[1].header("range").is_none(),
        "the fallback asks for the whole blob"
    );
}

#[tokio::test]
async fn chunked_download_with_a_flipped_byte_fails_and_leaves_nothing() {
    let (registry, upstream_repo, digest, bytes) = chunkable_blob().await;
    corrupt_blob(&registry, &digest.to_string());
    let repo = repo(&format!("{}/{}", registry.host(), upstream_repo.path()));
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("big.bin");
    let client = Client::builder().parallel_chunks(4).build().unwrap();
    let err = download_blob(
        &client,
        &repo,
        &digest,
        Some(bytes.len() as u64),
        &dest,
        &NoProgress,
    )
    .await
    .expect_err("a corrupt blob must not verify");
    assert!(matches!(err, Error::DigestMismatch { .. }), "{err:?}");
    assert!(
        list_dir(out.path()).is_empty(),
        "nothing left: {:?}",
        list_dir(out.path())
    );
}
