//! Library-level tests of the registry client against a real CNCF distribution registry
//! (started by the testkit, fixtures pushed with skopeo) and against `ScriptedServer`s that
//! misbehave on purpose: paginated tag lists, oversized manifests, digests that do not
//! match, blob bodies that break off.
//!
//! One module per topic: `tags`, `manifests`, `downloads`, `uploads` (uploads that break
//! off), `sessions` (failed uploads and copies cancel their sessions; mounts) and `sdk`
//! (the SDK layer's errors and pulls). This file keeps the helpers and the shared fixtures.

use std::ops::ControlFlow;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use ocisdk::registry::{UploadOutcome, TAG_PAGE_LIMIT};
use ocisdk::{download_blob, Client, Digest, Error, NoProgress, Platform, Reference, Repository};
use ocisdk_testkit::{
    assert_same_bytes, corrupt_blob, digest_of, forward, forward_cut, list_dir, media_types,
    pseudo_random_bytes, skopeo, tar_gz_of, Format, ImageBuilder, ImageInfo, IndexInfo, OciLayout,
    RecordedRequest, Registry, Relay, Release, ScriptedResponse, ScriptedServer,
};
use serde_json::json;

mod downloads;
mod manifests;
mod sdk;
mod sessions;
mod tags;
mod uploads;

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

fn client() -> Client {
    Client::builder().build().expect("build client")
}

#[track_caller]
fn repo(text: &str) -> Repository {
    text.parse()
        .unwrap_or_else(|e| panic!("repository {text:?}: {e}"))
}

#[track_caller]
fn reference(text: &str) -> Reference {
    text.parse()
        .unwrap_or_else(|e| panic!("reference {text:?}: {e}"))
}

#[track_caller]
fn digest(text: &str) -> Digest {
    Digest::parse(text).unwrap_or_else(|e| panic!("digest {text:?}: {e}"))
}

fn is_blob_get(req: &RecordedRequest) -> bool {
    req.method == "GET" && req.path().contains("/blobs/")
}

/// A proxy to `registry` answering `fault(req)` where it gives an answer, without passing
/// the request on; everything else reaches the registry.
fn proxy_failing(
    registry: &Registry,
    fault: impl Fn(&RecordedRequest) -> Option<ScriptedResponse> + Send + Sync + 'static,
) -> ScriptedServer {
    let upstream = registry.url();
    ScriptedServer::start(move |req| fault(req).unwrap_or_else(|| forward(req, &upstream)))
}

// ---------------------------------------------------------------------------------------
// Registry fixtures
// ---------------------------------------------------------------------------------------

/// A one-layer OCI image.
const IMAGE: &str = "lib/python:3.11.0";
/// A two-platform index: `manifests[0]` linux/amd64, `manifests[1]` linux/arm64.
const INDEX: &str = "lib/multi:1.0";

struct Fixtures {
    registry: Registry,
    image: ImageInfo,
    layer: Vec<u8>,
    index: IndexInfo,
}

impl Fixtures {
    fn build() -> Fixtures {
        let registry = Registry::start();
        let host = registry.host();
        let mut layout = OciLayout::new();

        let layer = tar_gz_of(&[(
            "python/bin/python3",
            &pseudo_random_bytes(2 << 20, 11),
            0o755,
        )]);
        let image = layout.add_image(
            "image",
            &ImageBuilder::new()
                .layer(layer.clone(), media_types::OCI_LAYER_GZIP)
                .label("org.oryx.version", "3.11.0")
                .annotation("org.opencontainers.image.version", "3.11.0"),
        );
        skopeo::push_layout(layout.path(), "image", &host, IMAGE, Format::Oci);

        let platform_image = |seed| {
            let content = pseudo_random_bytes(16 << 10, seed);
            ImageBuilder::new().layer(
                tar_gz_of(&[("node/bin/node", &content, 0o755)]),
                media_types::OCI_LAYER_GZIP,
            )
        };
        let index = layout.add_index(
            "index",
            vec![
                (ocisdk_testkit::Platform::linux("amd64"), platform_image(12)),
                (ocisdk_testkit::Platform::linux("arm64"), platform_image(13)),
            ],
        );
        skopeo::push_index(layout.path(), "index", &host, INDEX);

        Fixtures {
            registry,
            image,
            layer,
            index,
        }
    }
}

/// Copies the fixtures' image to `copy/python:1` on `target_host`, one blob at a time.
async fn copy_fixture_blob_by_blob(
    client: &Client,
    f: &Fixtures,
    target_host: &str,
) -> ocisdk::Result<ocisdk::copy::CopyReport> {
    use ocisdk::copy::{copy, CopyOptions, ImageRef};
    let source = ImageRef::Registry(reference(&format!("{}/{IMAGE}", f.registry.host())));
    let to = ImageRef::Registry(reference(&format!("{target_host}/copy/python:1")));
    let options = CopyOptions {
        jobs: 1,
        ..CopyOptions::default()
    };
    copy(client, &source, &to, &options).await
}

/// The shared registry with the fixtures pushed. Kept through a `Weak` so the registry
/// process stops when the last test using it ends (a `static` value is never dropped).
/// Tests only read from it.
fn fixtures() -> Arc<Fixtures> {
    static SHARED: Mutex<Weak<Fixtures>> = Mutex::new(Weak::new());
    let mut shared = SHARED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(f) = shared.upgrade() {
        return f;
    }
    let f = Arc::new(Fixtures::build());
    *shared = Arc::downgrade(&f);
    f
}
