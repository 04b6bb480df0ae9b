//! Failed uploads and copies cancel their upload sessions, and a declined mount leaves
//! none.

use super::*;

/// The upload sessions `registry` still holds for repository `name`: the folders under its
/// `_uploads/` with a `startedat` file, which is what distribution reads to resume one. (A
/// cancel removes the folder, but distribution 2.8 then writes the session's hash state
/// back into it as the request closes, so the folder itself stays, without `startedat` or
/// `data`: an upload nothing can resume, and the registry answers 404 for it.)
fn open_sessions(registry: &Registry, name: &str) -> Vec<String> {
    let dir = registry
        .storage_dir()
        .join("docker/registry/v2/repositories")
        .join(name)
        .join("_uploads");
    if !dir.exists() {
        return Vec::new();
    }
    list_dir(&dir)
        .into_iter()
        .filter(|session| dir.join(session).join("startedat").exists())
        .collect()
}

fn is_session_write(req: &RecordedRequest, method: &str) -> bool {
    req.method == method && req.path().contains("/blobs/uploads/")
}

fn deletes(requests: &[RecordedRequest]) -> Vec<&RecordedRequest> {
    requests.iter().filter(|r| r.method == "DELETE").collect()
}

/// Pushes `bytes` as a blob of `up/blob` through `proxy`; the error it fails with.
async fn failing_upload(proxy: &ScriptedServer, client: &Client, bytes: &[u8]) -> Error {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("blob.bin");
    std::fs::write(&path, bytes).unwrap();
    client
        .push_blob_file(
            &repo(&format!("{}/up/blob", proxy.host())),
            &path,
            &digest(&digest_of(bytes)),
            bytes.len() as u64,
            &NoProgress,
        )
        .await
        .expect_err("the proxy fails the upload")
}

/// An upload that fails once its session is open (the closing `PUT`, or a chunk `PATCH`
/// after one went through) sends `DELETE` to the session's latest URL, so the registry
/// drops what it holds at once; each attempt of a retried upload cancels its own session.
/// The error is still the upload's. Sessions used to be left for the registry to expire.
#[tokio::test]
async fn a_failed_upload_cancels_its_session() {
    let retry_once = ocisdk::registry::RetryPolicy {
        max_attempts: 2,
        base_delay: std::time::Duration::from_millis(1),
        ..Default::default()
    };
    // (the session request that fails, the blob size, what the failure says)
    for (method, size, operation) in [
        ("PUT", 256 << 10, "finishing blob upload"),
        ("PATCH", (128 << 10) + 1000, "uploading blob chunk"),
    ] {
        let registry = Registry::start();
        // The second PATCH of a session fails; the PUT of a monolithic upload at once.
        let writes = AtomicUsize::new(0);
        let proxy = proxy_failing(&registry, move |req| {
            let fails = is_session_write(req, method)
                && (method == "PUT" || writes.fetch_add(1, Ordering::SeqCst) % 2 == 1);
            fails.then(|| ScriptedResponse::new(500))
        });
        let client = Client::builder()
            .upload_chunking(64 << 10, 64 << 10)
            .retry(retry_once)
            .build()
            .unwrap();

        let err = failing_upload(&proxy, &client, &pseudo_random_bytes(size, 31)).await;
        assert_eq!(err.status(), Some(500), "{method}: {err}");
        assert!(err.to_string().starts_with(operation), "{method}: {err}");
        let requests = proxy.requests();
        let posts = requests.iter().filter(|r| r.method == "POST").count();
        assert_eq!(posts, 2, "{method}: {requests:#?}");
        // Each session's URL as last written to: the write that failed (after a PATCH went
        // through, the URL that PATCH was answered with).
        let sessions: Vec<&str> = requests
            .iter()
            .filter(|r| is_session_write(r, method))
            .filter(|r| method == "PUT" || r.header("Content-Range") != Some("0-65535"))
            .map(|r| r.target.split("&digest=").next().unwrap())
            .collect();
        assert_eq!(sessions.len(), 2, "{method}: {requests:#?}");
        assert_eq!(
            open_sessions(&registry, "up/blob"),
            Vec::<String>::new(),
            "{method}"
        );
        for session in &sessions {
            let answer = ocisdk_testkit::http::get(&format!("{}{session}", registry.url()));
            let answer = answer.unwrap();
            assert_eq!(answer.status, 404, "{method}: {}", answer.text());
            assert!(
                answer.text().contains("BLOB_UPLOAD_UNKNOWN"),
                "{}",
                answer.text()
            );
        }
        // Gone because each was cancelled at that URL, not because the registry dropped it.
        let deletes: Vec<&str> = deletes(&requests)
            .iter()
            .map(|r| r.target.as_str())
            .collect();
        assert_eq!(deletes, sessions, "{method}");
    }
}

/// A cancel that fails (an error status, a dropped connection) is not retried and does not
/// replace the upload's own error.
#[tokio::test]
async fn a_cancel_that_fails_is_sent_once_and_the_upload_error_stays() {
    for cancel in [
        ScriptedResponse::new(503),
        ScriptedResponse::drop_connection(),
    ] {
        let registry = Registry::start();
        let proxy = proxy_failing(&registry, move |req| {
            if is_session_write(req, "PUT") {
                let body = json!({"errors": [{"code": "BLOB_UPLOAD_INVALID", "message": "no"}]});
                Some(ScriptedResponse::json(400, &body))
            } else {
                (req.method == "DELETE").then(|| cancel.clone())
            }
        });
        // The default policy retries 503s and dropped connections, but not a DELETE.
        let err = failing_upload(&proxy, &client(), b"a small blob").await;
        assert_eq!(err.status(), Some(400), "{err}");
        assert!(err.to_string().contains("BLOB_UPLOAD_INVALID"), "{err}");
        let requests = proxy.requests();
        assert_eq!(deletes(&requests).len(), 1, "{requests:#?}");
    }
}

/// A registry that stops answering mid-upload is not also asked to cancel: the `DELETE`
/// would wait out a second stall timeout, and the failure, at every attempt, was reported
/// twice as late. The session is left for the registry to expire.
#[tokio::test]
async fn an_upload_the_registry_let_time_out_is_not_cancelled() {
    let registry = Registry::start();
    // Requests on the session (the closing PUT, and a DELETE) get no answer in time.
    let proxy = proxy_failing(&registry, |req| {
        let on_session = req.path().contains("/blobs/uploads/") && req.method != "POST";
        on_session.then(|| ScriptedResponse::new(500).delay(std::time::Duration::from_secs(120)))
    });
    let client = Client::builder()
        .stall_timeout(std::time::Duration::from_secs(1))
        .retry(ocisdk::registry::RetryPolicy::never())
        .build()
        .unwrap();

    let err = failing_upload(&proxy, &client, b"a small blob").await;
    assert!(
        matches!(&err, Error::Transport { source, .. } if source.is_timeout()),
        "{err:?}"
    );
    let requests = proxy.requests();
    assert_eq!(deletes(&requests).len(), 0, "{requests:#?}");
    assert_eq!(open_sessions(&registry, "up/blob").len(), 1);
}

/// A blob streamed from one registry into another whose upload fails cancels its session
/// in the target too.
#[tokio::test]
async fn a_failed_streamed_copy_cancels_its_session() {
    let f = fixtures();
    let target = Registry::start();
    let proxy = proxy_failing(&target, |req| {
        is_session_write(req, "PUT").then(|| ScriptedResponse::new(500))
    });
    let client = Client::builder()
        .retry(ocisdk::registry::RetryPolicy::never())
        .build()
        .unwrap();
    // One blob at a time: the first upload fails, and the copy starts no other.
    let err = copy_fixture_blob_by_blob(&client, &f, &proxy.host())
        .await
        .expect_err("the target fails the upload");
    assert_eq!(err.status(), Some(500), "{err}");
    assert_eq!(open_sessions(&target, "copy/python"), Vec::<String>::new());
    let requests = proxy.requests();
    assert_eq!(deletes(&requests).len(), 1, "{requests:#?}");
}

/// A blob streamed from a source that serves wrong bytes leaves no upload session in the
/// target and nothing under its digest, and the copy fails as a verification failure of
/// the source. The body goes up whole in a `PATCH`, whose answer names the session where a
/// cancel takes, and is never committed. The body used to fail before its last bytes,
/// which left the registry holding part of it: distribution then refuses the cancel (404
/// `BLOB_UPLOAD_INVALID`) and keeps the session until it expires. (It keeps it as well
/// after a commit it refuses for its digest: the whole body in the `PUT` would not do.)
#[tokio::test]
async fn a_streamed_copy_of_wrong_bytes_leaves_no_session_and_stores_nothing() {
    use ocisdk::copy::{copy, CopyOptions, ImageRef};
    let (layout, _, layer) = one_layer_layout(4 << 20);
    let source = Registry::start();
    let in_source = ImageRef::Registry(reference(&format!("{}/copy/tool:1", source.host())));
    let options = CopyOptions {
        jobs: 1,
        ..CopyOptions::default()
    };
    copy(&client(), &layout_image(&layout), &in_source, &options)
        .await
        .unwrap();
    corrupt_blob(&source, &layer);
    let target = Registry::start();
    let to = ImageRef::Registry(reference(&format!("{}/copy/tool:1", target.host())));

    let err = copy(&client(), &in_source, &to, &options)
        .await
        .expect_err("the source serves wrong bytes");
    match &err {
        Error::DigestMismatch { expected, at, .. } => {
            assert_eq!(expected.to_string(), layer, "{err}");
            assert_eq!(&*at.registry, source.host(), "{err}");
        }
        other => panic!("expected the source's wrong bytes, got {other:?}"),
    }
    assert_eq!(open_sessions(&target, "copy/tool"), Vec::<String>::new());
    assert!(!target.blob_data_path(&layer).exists());
    let stored =
        ocisdk_testkit::http::get(&format!("{}/v2/copy/tool/blobs/{layer}", target.url())).unwrap();
    assert_eq!(stored.status, 404, "{}", stored.text());
}

/// An OCI layout holding image `1`: a config and one layer of `size` pseudo-random bytes.
/// Returns it with the config's and the layer's digests.
fn one_layer_layout(size: usize) -> (OciLayout, String, String) {
    let mut layout = OciLayout::new();
    let image =
        ImageBuilder::new().layer(pseudo_random_bytes(size, 41), media_types::OCI_LAYER_TAR);
    let info = layout.add_image("1", &image);
    let (config, layer) = (info.config_digest.clone(), info.layer_digests[0].clone());
    (layout, config, layer)
}

fn layout_image(layout: &OciLayout) -> ocisdk::copy::ImageRef {
    ocisdk::copy::ImageRef::Layout {
        dir: layout.path().to_path_buf(),
        name: Some("1".into()),
    }
}

/// The copy options of a copy moving two blobs at once.
fn two_at_a_time() -> ocisdk::copy::CopyOptions {
    ocisdk::copy::CopyOptions {
        jobs: 2,
        ..ocisdk::copy::CopyOptions::default()
    }
}

/// A copy moving blobs at once that fails on one stops the others, and each cancels its
/// upload session, as a failed upload does: the registry keeps no session of the copy. A
/// chunked upload stops between two chunks, where the session's latest URL names the offset
/// the registry holds, so that the cancel takes. They used to be dropped mid-upload, their
/// sessions left for the registry to expire (distribution keeps them for days). The copy
/// still fails with the first failure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_copy_stops_a_chunked_upload_between_chunks_and_cancels_it() {
    use ocisdk::copy::{copy, ImageRef};
    let (layout, config, layer) = one_layer_layout(1 << 20);
    let target = Registry::start();
    // The config's upload fails once the layer's second chunk is in the registry.
    let upstream = target.url();
    let (second_chunk, chunks) = std::sync::mpsc::channel();
    let (second_chunk, chunks) = (Mutex::new(second_chunk), Mutex::new(chunks));
    let patches = AtomicUsize::new(0);
    let config_put = format!("digest={}", config.replace(':', "%3A"));
    let proxy = proxy_failing(&target, move |req| {
        if is_session_write(req, "PATCH") && patches.fetch_add(1, Ordering::SeqCst) == 1 {
            let answer = forward(req, &upstream);
            let _ = second_chunk.lock().unwrap().send(());
            return Some(answer);
        }
        if is_session_write(req, "PUT") && req.target.contains(&config_put) {
            let waited = chunks
                .lock()
                .unwrap()
                .recv_timeout(std::time::Duration::from_secs(60));
            waited.expect("the layer's upload should be under way");
            let body = json!({"errors": [{"code": "BLOB_UPLOAD_INVALID", "message": "no"}]});
            return Some(ScriptedResponse::json(400, &body));
        }
        None
    });
    let client = Client::builder()
        .upload_chunking(64 << 10, 64 << 10)
        .retry(ocisdk::registry::RetryPolicy::never())
        .build()
        .unwrap();
    let to = ImageRef::Registry(reference(&format!("{}/copy/tool:1", proxy.host())));

    let err = copy(&client, &layout_image(&layout), &to, &two_at_a_time())
        .await
        .expect_err("the target refuses the config");
    assert_eq!(err.status(), Some(400), "{err}");
    let failed = err.location().and_then(|at| at.reference.as_deref());
    assert_eq!(failed, Some(config.as_str()), "{err}");
    assert_eq!(open_sessions(&target, "copy/tool"), Vec::<String>::new());
    let requests = proxy.requests();
    let sent = requests.iter().filter(|r| r.method == "PATCH").count();
    assert!(
        sent < 16,
        "the layer's upload ran to its end: {requests:#?}"
    );
    assert!(!target.blob_data_path(&layer).exists());
    // Both sessions were cancelled (not refused a cancel: they are unknown now).
    let cancelled = deletes(&requests);
    assert_eq!(cancelled.len(), 2, "{requests:#?}");
    for session in cancelled {
        let answer = ocisdk_testkit::http::get(&format!("{}{}", target.url(), session.target));
        let answer = answer.unwrap();
        assert_eq!(answer.status, 404, "{}", answer.text());
        assert!(
            answer.text().contains("BLOB_UPLOAD_UNKNOWN"),
            "{}",
            answer.text()
        );
    }
}

/// A blob streamed from another registry goes up in one request, which a copy failing on
/// another blob lets finish: cut off, it would leave the registry holding part of the body,
/// and distribution refuses to cancel a session whose URL names an offset it has passed, so
/// the session would stay until it expires. The copy fails with the other blob's failure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_copy_finishes_a_streamed_upload_under_way() {
    use ocisdk::copy::{copy, CopyOptions, ImageRef};
    let size = 4 << 20;
    let (layout, config, layer) = one_layer_layout(size);
    let source = Registry::start();
    let in_source = ImageRef::Registry(reference(&format!("{}/copy/tool:1", source.host())));
    copy(
        &client(),
        &layout_image(&layout),
        &in_source,
        &CopyOptions::default(),
    )
    .await
    .unwrap();
    // The target behind a relay, which tells when the layer's upload is under way there.
    let target = Registry::start();
    let relay = Relay::start(&target.host());
    let into_target = relay.sent();
    // The source stalls the layer half-way, and fails the config once a quarter of the
    // layer is in the target. The layer goes on only as the config's failure is sent: a
    // client that does not wait for the layer then drops it mid-body.
    let (upstream, held) = (source.url(), Release::new());
    let (layer_path, config_path) = (format!("/blobs/{layer}"), format!("/blobs/{config}"));
    let front = ScriptedServer::start(move |req| {
        if is_blob_get(req) && req.path().ends_with(&layer_path) {
            return forward(req, &upstream).stall_until(
                size / 2,
                std::time::Duration::from_secs(60),
                &held,
            );
        }
        if is_blob_get(req) && req.path().ends_with(&config_path) {
            let under_way =
                into_target.wait_for(size as u64 / 4, std::time::Duration::from_secs(60));
            assert!(under_way, "the layer's upload should be under way");
            held.release();
            let body = json!({"errors": [{"code": "BLOB_UNKNOWN", "message": "gone"}]});
            return ScriptedResponse::json(404, &body);
        }
        forward(req, &upstream)
    });
    let client = Client::builder()
        .retry(ocisdk::registry::RetryPolicy::never())
        .build()
        .unwrap();
    let from = ImageRef::Registry(reference(&format!("{}/copy/tool:1", front.host())));
    let to = ImageRef::Registry(reference(&format!("{}/copy/tool:1", relay.host())));

    let err = copy(&client, &from, &to, &two_at_a_time())
        .await
        .expect_err("the source fails the config");
    assert_eq!(err.status(), Some(404), "{err}");
    let failed = err.location().and_then(|at| at.reference.as_deref());
    assert_eq!(failed, Some(config.as_str()), "{err}");
    assert_eq!(open_sessions(&target, "copy/tool"), Vec::<String>::new());
    assert!(
        target.blob_data_path(&layer).exists(),
        "the layer was cut off"
    );
}

/// A mount the registry declines (the blob is not in the source repository) opens an upload
/// session (202), which is cancelled: the caller sends the blob in a session of its own.
/// One that succeeds links the blob without a session.
#[tokio::test]
async fn a_declined_mount_leaves_no_upload_session() {
    let registry = Registry::start();
    let client = client();
    let bytes = pseudo_random_bytes(4096, 7);
    let blob = digest(&digest_of(&bytes));
    let (source, target) = (
        repo(&format!("{}/mount/source", registry.host())),
        repo(&format!("{}/mount/target", registry.host())),
    );

    let mounted = client.mount_blob(&target, &blob, &source).await.unwrap();
    assert!(!mounted, "the source does not hold the blob");
    assert_eq!(
        open_sessions(&registry, "mount/target"),
        Vec::<String>::new()
    );

    client
        .push_blob_bytes(&source, bytes.clone().into())
        .await
        .unwrap();
    let mounted = client.mount_blob(&target, &blob, &source).await.unwrap();
    assert!(mounted, "the source holds the blob now");
    assert_eq!(
        open_sessions(&registry, "mount/target"),
        Vec::<String>::new()
    );
}
