//! Blob uploads that break off: started over in a fresh session, after the wait
//! `Retry-After` asks for.

use super::*;

/// A proxy to `registry` whose first `method` request on an upload session (`PUT` or
/// `PATCH` under `/blobs/uploads/`) reaches the registry with only half its body, and is
/// answered `502`.
fn proxy_cutting_first_upload(registry: &Registry, method: &'static str) -> ScriptedServer {
    let upstream = registry.url();
    let cuts = AtomicUsize::new(0);
    ScriptedServer::start(move |req| {
        let on_session = req.method == method && req.path().contains("/blobs/uploads/");
        if on_session && cuts.fetch_add(1, Ordering::SeqCst) == 0 {
            forward_cut(req, &upstream, req.body.len() / 2)
        } else {
            forward(req, &upstream)
        }
    })
}

/// Uploads `bytes` as a blob of `up/blob` through `proxy` with `client`, checks that the
/// registry itself now serves exactly those bytes, and returns how the upload went and the
/// requests the proxy saw.
async fn upload_through(
    registry: &Registry,
    proxy: &ScriptedServer,
    client: &Client,
    bytes: &[u8],
) -> (UploadOutcome, Vec<RecordedRequest>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("blob.bin");
    std::fs::write(&path, bytes).unwrap();
    let blob = digest(&digest_of(bytes));
    let outcome = client
        .push_blob_file(
            &repo(&format!("{}/up/blob", proxy.host())),
            &path,
            &blob,
            bytes.len() as u64,
            &NoProgress,
        )
        .await
        .expect("the upload starts over and succeeds");
    let stored =
        ocisdk_testkit::http::get(&format!("{}/v2/up/blob/blobs/{blob}", registry.url())).unwrap();
    assert_eq!(stored.status, 200, "{}", stored.text());
    assert_same_bytes(&stored.body, bytes, "blob in the registry");
    (outcome, proxy.requests())
}

/// The upload sessions written to, in order (a session is the path of its URL).
fn sessions_written(requests: &[RecordedRequest]) -> Vec<&str> {
    let mut sessions: Vec<&str> = requests
        .iter()
        .filter(|r| matches!(r.method.as_str(), "PUT" | "PATCH"))
        .filter(|r| r.path().contains("/blobs/uploads/"))
        .map(RecordedRequest::path)
        .collect();
    sessions.dedup();
    sessions
}

#[tokio::test]
async fn upload_cut_mid_put_starts_over_in_a_fresh_session() {
    let registry = Registry::start();
    let proxy = proxy_cutting_first_upload(&registry, "PUT");
    let bytes = pseudo_random_bytes(256 << 10, 21);
    let (outcome, requests) = upload_through(&registry, &proxy, &client(), &bytes).await;
    assert_eq!(outcome, UploadOutcome::Monolithic);
    // Replaying the PUT on the session that took half of it fails (BLOB_UPLOAD_INVALID):
    // the retry opened a new session.
    let posts = requests.iter().filter(|r| r.method == "POST").count();
    assert_eq!(posts, 2, "{requests:#?}");
    let sessions = sessions_written(&requests);
    assert_eq!(sessions.len(), 2, "{sessions:#?}");
    assert_ne!(sessions[0], sessions[1]);
}

#[tokio::test]
async fn upload_cut_mid_chunk_starts_over_in_a_fresh_session() {
    let registry = Registry::start();
    let proxy = proxy_cutting_first_upload(&registry, "PATCH");
    // Four chunks of 64 KiB and a short one.
    let bytes = pseudo_random_bytes((256 << 10) + 1000, 22);
    let client = Client::builder()
        .upload_chunking(64 << 10, 64 << 10)
        .build()
        .unwrap();
    let (outcome, requests) = upload_through(&registry, &proxy, &client, &bytes).await;
    assert_eq!(outcome, UploadOutcome::Chunked(5));
    let posts = requests.iter().filter(|r| r.method == "POST").count();
    assert_eq!(posts, 2, "{requests:#?}");
    let patches: Vec<_> = requests.iter().filter(|r| r.method == "PATCH").collect();
    assert_eq!(patches.len(), 6, "the cut chunk, then all five again");
    assert_eq!(patches[1].header("Content-Range"), Some("0-65535"));
}

/// A retry policy whose backoff is longer than its whole budget: a failed upload starts
/// over only when the registry's `Retry-After` says when.
fn retry_only_when_asked() -> ocisdk::registry::RetryPolicy {
    ocisdk::registry::RetryPolicy {
        max_attempts: 3,
        base_delay: std::time::Duration::MAX,
        max_backoff: std::time::Duration::MAX,
        max_wait: std::time::Duration::from_secs(60),
        max_total: std::time::Duration::from_secs(3600),
    }
}

/// A registry that rate-limits the start of an upload (429 with `Retry-After: 0`) gets the
/// upload again when it says: the wait was dropped once the answer became an error, and the
/// upload waited out the policy's backoff instead (here longer than the whole retry budget,
/// so it gave up with the 429).
#[tokio::test]
async fn an_upload_started_over_waits_what_retry_after_asks_not_the_backoff() {
    let registry = Registry::start();
    let posts = AtomicUsize::new(0);
    let proxy = proxy_failing(&registry, move |req| {
        let first = req.method == "POST" && posts.fetch_add(1, Ordering::SeqCst) == 0;
        first.then(|| ScriptedResponse::new(429).header("Retry-After", "0"))
    });
    let client = Client::builder()
        .retry(retry_only_when_asked())
        .build()
        .unwrap();
    let bytes = pseudo_random_bytes(64 << 10, 23);
    let (outcome, requests) = upload_through(&registry, &proxy, &client, &bytes).await;
    assert_eq!(outcome, UploadOutcome::Monolithic);
    let posts = requests.iter().filter(|r| r.method == "POST").count();
    assert_eq!(posts, 2, "{requests:#?}");
}

/// The same for a blob streamed from another registry, which starts over from its `GET`.
#[tokio::test]
async fn a_streamed_copy_started_over_waits_what_retry_after_asks_not_the_backoff() {
    let f = fixtures();
    let target = Registry::start();
    // Blobs go one at a time: the first start of each is refused.
    let posts = AtomicUsize::new(0);
    let proxy = proxy_failing(&target, move |req| {
        let refused =
            req.method == "POST" && posts.fetch_add(1, Ordering::SeqCst).is_multiple_of(2);
        refused.then(|| ScriptedResponse::new(429).header("Retry-After", "0"))
    });
    let client = Client::builder()
        .retry(retry_only_when_asked())
        .build()
        .unwrap();
    copy_fixture_blob_by_blob(&client, &f, &proxy.host())
        .await
        .expect("each blob starts over at once");
    let requests = proxy.requests();
    let posts = requests.iter().filter(|r| r.method == "POST").count();
    assert_eq!(posts, 4, "a config and a layer, each twice: {requests:#?}");
    let layer = &f.image.layer_digests[0];
    let copied =
        ocisdk_testkit::http::get(&format!("{}/v2/copy/python/blobs/{layer}", target.url()))
            .unwrap();
    assert_eq!(copied.status, 200, "{}", copied.text());
    assert_same_bytes(&copied.body, &f.layer, "layer in the target");
}
