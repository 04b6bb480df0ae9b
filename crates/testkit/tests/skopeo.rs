//! Tests of the OCI layout writer against a real registry, through skopeo.

use ocisdk_testkit::{
    corrupt_blob, digest_of, fs_layer_holding, http, media_types, pseudo_random_bytes, skopeo,
    Format, ImageBuilder, OciLayout, Platform, Registry,
};

fn sample_image(seed: u64) -> ImageBuilder {
    ImageBuilder::new()
        .layer(
            fs_layer_holding("sdk.tar", &pseudo_random_bytes(4096, seed)),
            media_types::OCI_LAYER_GZIP,
        )
        .config_labels([
            ("org.example.sdk.name", "demo"),
            ("org.example.sdk.version", "1.2.3"),
        ])
}

#[test]
fn push_layout_as_oci_and_v2s2() {
    let registry = Registry::start();
    let host = registry.host();
    let mut layout = OciLayout::new();
    let info = layout.add_image("v1", &sample_image(1));

    // OCI: skopeo keeps the manifest bytes, so the digest is the layout's.
    let pushed = skopeo::push_layout(layout.path(), "v1", &host, "demo/app:oci", Format::Oci);
    assert_eq!(pushed, info.manifest_digest);
    let raw = skopeo::inspect_raw(&format!("{host}/demo/app:oci"));
    assert_eq!(digest_of(&raw), info.manifest_digest);
    assert_eq!(raw, info.manifest_bytes);
    let manifest: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(manifest["mediaType"], media_types::OCI_MANIFEST);

    let inspected = skopeo::inspect(&format!("{host}/demo/app:oci"));
    assert_eq!(inspected["Labels"]["org.example.sdk.version"], "1.2.3");
    assert_eq!(inspected["Digest"], info.manifest_digest.as_str());
    assert_eq!(inspected["Os"], "linux");
    assert_eq!(inspected["Architecture"], "amd64");
    let config = skopeo::inspect_config(&format!("{host}/demo/app:oci"));
    assert_eq!(
        digest_of(&serde_json::to_vec(&config).unwrap()),
        info.config_digest
    );

    // The registry stores the layer blob under its digest, byte for byte.
    let layer_digest = &info.layer_digests[0];
    let stored = std::fs::read(registry.blob_data_path(layer_digest)).unwrap();
    assert_eq!(&digest_of(&stored), layer_digest);

    // v2s2: Docker media types; the layer and config blobs keep their bytes (and digests),
    // only the manifest is rewritten.
    let pushed = skopeo::push_layout(layout.path(), "v1", &host, "demo/app:v2s2", Format::V2s2);
    let raw = skopeo::inspect_raw(&format!("{host}/demo/app:v2s2"));
    assert_eq!(digest_of(&raw), pushed);
    assert_ne!(pushed, info.manifest_digest);
    let manifest: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(manifest["mediaType"], media_types::DOCKER_MANIFEST);
    assert_eq!(manifest["config"]["mediaType"], media_types::DOCKER_CONFIG);
    assert_eq!(
        manifest["layers"][0]["mediaType"],
        media_types::DOCKER_LAYER_GZIP
    );
    assert_eq!(manifest["layers"][0]["digest"], layer_digest.as_str());
    assert_eq!(manifest["config"]["digest"], info.config_digest.as_str());
    let inspected = skopeo::inspect(&format!("{host}/demo/app:v2s2"));
    assert_eq!(inspected["Labels"]["org.example.sdk.name"], "demo");

    let mut tags = skopeo::list_tags(&host, "demo/app");
    tags.sort();
    assert_eq!(tags, vec!["oci", "v2s2"]);
}

#[test]
fn push_index_keeps_both_platforms() {
    let registry = Registry::start();
    let host = registry.host();
    let mut layout = OciLayout::new();
    let info = layout.add_index(
        "multi",
        vec![
            (Platform::linux("amd64"), sample_image(2)),
            (Platform::linux("arm64"), sample_image(3)),
        ],
    );

    let pushed = skopeo::push_index(layout.path(), "multi", &host, "demo/multi:1");
    assert_eq!(pushed, info.index_digest);
    let raw = skopeo::inspect_raw(&format!("{host}/demo/multi:1"));
    assert_eq!(raw, info.index_bytes);
    let index: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(index["mediaType"], media_types::OCI_INDEX);
    let entries = index["manifests"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[1]["platform"]["architecture"], "arm64");

    for image in &info.manifests {
        let by_digest =
            skopeo::inspect_raw(&format!("{host}/demo/multi@{}", image.manifest_digest));
        assert_eq!(by_digest, image.manifest_bytes);
    }
    // The registry answers the index to a plain GET with the right Accept.
    let resp = http::request(
        "GET",
        &format!("{}/v2/demo/multi/manifests/1", registry.url()),
        &[("Accept", media_types::OCI_INDEX)],
        b"",
    )
    .unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(
        resp.header("Docker-Content-Digest"),
        Some(info.index_digest.as_str())
    );
    assert_eq!(resp.header("Content-Type"), Some(media_types::OCI_INDEX));

    // And back into a layout.
    let back = tempfile::tempdir().unwrap();
    let copied = skopeo::copy_to_layout(&format!("{host}/demo/multi:1"), back.path(), "t");
    assert_eq!(copied, info.index_digest);
}

#[test]
fn corrupted_blob_is_served_and_detected_by_skopeo() {
    let registry = Registry::start();
    let host = registry.host();
    let mut layout = OciLayout::new();
    let info = layout.add_image("v1", &sample_image(4));
    skopeo::push_layout(layout.path(), "v1", &host, "demo/bad:v1", Format::Oci);

    let layer_digest = &info.layer_digests[0];
    corrupt_blob(&registry, layer_digest);
    let resp = http::get(&format!(
        "{}/v2/demo/bad/blobs/{layer_digest}",
        registry.url()
    ))
    .unwrap();
    assert_eq!(resp.status, 200);
    assert_ne!(
        &digest_of(&resp.body),
        layer_digest,
        "registry serves the corrupted bytes"
    );

    let back = tempfile::tempdir().unwrap();
    let dest = format!("oci:{}:t", back.path().display());
    let err = skopeo::run(&[
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{host}/demo/bad:v1"),
        &dest,
    ])
    .unwrap_err();
    assert!(
        err.to_lowercase().contains("digest did not match"),
        "skopeo should report a digest mismatch: {err}"
    );
}
