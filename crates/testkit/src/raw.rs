//! Pushing by hand, over the registry API, what the image tools will not make: a layer whose
//! digest is sha512 (the OCI spec allows it; skopeo and ocisdk push sha256), an artifact
//! whose config is not JSON.

use sha2::{Digest, Sha256, Sha512};

use crate::http;

/// Pushes to `url` (`http://HOST:PORT`) the image `repo:tag` of one layer `layer` of
/// `media_type`, addressed by its sha512, titled `title` when given. Returns the layer's
/// digest (`sha512:…`).
#[track_caller]
pub fn push_sha512_layer_image(
    url: &str,
    repo: &str,
    tag: &str,
    layer: &[u8],
    media_type: &str,
    title: Option<&str>,
) -> String {
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let config_digest = format!("sha256:{}", hex::encode(Sha256::digest(config)));
    upload(url, repo, &config_digest, config);
    let layer_digest = format!("sha512:{}", hex::encode(Sha512::digest(layer)));
    upload(url, repo, &layer_digest, layer);
    let mut descriptor = serde_json::json!({
        "mediaType": media_type,
        "digest": layer_digest,
        "size": layer.len(),
    });
    if let Some(title) = title {
        descriptor["annotations"] = serde_json::json!({ "org.opencontainers.image.title": title });
    }
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest,
            "size": config.len(),
        },
        "layers": [descriptor],
    });
    put_manifest(url, repo, tag, &manifest);
    layer_digest
}

/// Pushes to `url` the artifact `repo:tag` whose config blob is `config` of `config_type`
/// (YAML, say: anything) and whose one layer is `layer` (an opaque file).
#[track_caller]
pub fn push_artifact_with_config(
    url: &str,
    repo: &str,
    tag: &str,
    config_type: &str,
    config: &[u8],
    layer: &[u8],
) {
    let config_digest = format!("sha256:{}", hex::encode(Sha256::digest(config)));
    upload(url, repo, &config_digest, config);
    let layer_digest = format!("sha256:{}", hex::encode(Sha256::digest(layer)));
    upload(url, repo, &layer_digest, layer);
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": { "mediaType": config_type, "digest": config_digest, "size": config.len() },
        "layers": [{
            "mediaType": "application/octet-stream",
            "digest": layer_digest,
            "size": layer.len(),
        }],
    });
    put_manifest(url, repo, tag, &manifest);
}

#[track_caller]
fn put_manifest(url: &str, repo: &str, tag: &str, manifest: &serde_json::Value) {
    let content_type = [("Content-Type", "application/vnd.oci.image.manifest.v1+json")];
    let body = serde_json::to_vec(manifest).expect("manifest JSON");
    let target = format!("{url}/v2/{repo}/manifests/{tag}");
    let put = http::request("PUT", &target, &content_type, &body).expect("PUT manifest");
    assert_eq!(put.status, 201, "PUT manifest: {}", put.text());
}

/// A monolithic upload: POST, then PUT of the whole blob.
#[track_caller]
fn upload(url: &str, repo: &str, digest: &str, blob: &[u8]) {
    let start = http::request("POST", &format!("{url}/v2/{repo}/blobs/uploads/"), &[], &[])
        .expect("POST upload");
    assert_eq!(start.status, 202, "POST upload: {}", start.text());
    let location = start.header("Location").expect("upload Location");
    let location = if location.starts_with('/') {
        format!("{url}{location}")
    } else {
        location.to_string()
    };
    let separator = if location.contains('?') { '&' } else { '?' };
    let octets = [("Content-Type", "application/octet-stream")];
    let put = http::request(
        "PUT",
        &format!("{location}{separator}digest={digest}"),
        &octets,
        blob,
    )
    .expect("PUT blob");
    assert_eq!(put.status, 201, "PUT blob {digest}: {}", put.text());
}
