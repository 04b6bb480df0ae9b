//! Pushing one file as a one-layer image: the layer is the file itself, the config carries
//! labels, the manifest carries annotations.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use serde_json::json;

use crate::digest::{Algorithm, Digest, Hasher};
use crate::error::{Error, Result};
use crate::progress::Reporter;
use crate::reference::Reference;
use crate::registry::{Client, UploadOutcome};
use crate::spec::{OCI_CONFIG, OCI_LAYER_GZIP, OCI_LAYER_TAR, OCI_LAYER_ZSTD, OCI_MANIFEST};

/// The annotation holding a layer's file name.
pub const TITLE_ANNOTATION: &str = "org.opencontainers.image.title";

/// What to push and how to describe it.
#[derive(Debug, Clone, Default)]
pub struct PushRequest {
    /// The file that becomes the layer.
    pub file: PathBuf,
    /// Config labels (`config.Labels`).
    pub labels: BTreeMap<String, String>,
    /// Manifest annotations.
    pub annotations: BTreeMap<String, String>,
    /// The manifest's `artifactType`, if any.
    pub artifact_type: Option<String>,
    /// Further tags in the same repository to point at the same manifest.
    pub extra_tags: Vec<String>,
    /// Also record the file's sha256 (hex) as a manifest annotation under this key.
    pub sha256_annotation: Option<String>,
}

/// What a push did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Pushed {
    /// The manifest digest.
    pub manifest_digest: Digest,
    /// The layer digest (sha256 of the file).
    pub layer_digest: Digest,
    /// The layer size.
    pub layer_size: u64,
    /// The layer media type.
    pub layer_media_type: String,
    /// How the layer got there.
    pub layer_upload: UploadOutcome,
    /// Every tag that now points at the manifest.
    pub tags: Vec<String>,
}

/// The layer media type for a file name: tar variants by extension, anything else is an
/// opaque blob.
pub fn layer_media_type(file_name: &str) -> &'static str {
    let name = file_name.to_ascii_lowercase();
    if name.ends_with(".tar.gz") || name.ends_with(".tgz") {
        OCI_LAYER_GZIP
    } else if name.ends_with(".tar.zst") || name.ends_with(".tar.zstd") || name.ends_with(".tzst") {
        OCI_LAYER_ZSTD
    } else if name.ends_with(".tar") {
        OCI_LAYER_TAR
    } else {
        "application/octet-stream"
    }
}

/// Pushes `request.file` as a one-layer image to `target` (which must name a tag), then
/// points `request.extra_tags` at it, in order. When one of those fails after `target`'s
/// tag was set, the error is [`Error::PartlyTagged`], naming the tags in place.
pub async fn push_file(
    client: &Client,
    target: &Reference,
    request: &PushRequest,
    reporter: &dyn Reporter,
) -> Result<Pushed> {
    let tag = target
        .tag()
        .ok_or_else(|| Error::InvalidInput(format!("\"{target}\" needs a tag to push to")))?
        .to_string();
    let file_name = request
        .file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| Error::InvalidInput(format!("{} is not a file", request.file.display())))?;
    let media_type = layer_media_type(&file_name);
    let (layer_digest, diff_id, size) = digest_file(&request.file, media_type).await?;
    let repo = target.repository();

    let layer_upload = client
        .push_blob_file(repo, &request.file, &layer_digest, size, reporter)
        .await?;

    let platform = client.platform();
    let config = json!({
        "architecture": platform.architecture,
        "os": platform.os,
        "config": { "Labels": request.labels },
        "rootfs": { "type": "layers", "diff_ids": [diff_id.to_string()] },
    });
    let config_bytes =
        Bytes::from(serde_json::to_vec(&config).map_err(|e| Error::InvalidInput(e.to_string()))?);
    let config_size = config_bytes.len();
    let (config_digest, _) = client.push_blob_bytes(repo, config_bytes).await?;

    let mut manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": { "mediaType": OCI_CONFIG, "digest": config_digest.to_string(), "size": config_size },
        "layers": [{
            "mediaType": media_type,
            "digest": layer_digest.to_string(),
            "size": size,
            "annotations": { TITLE_ANNOTATION: file_name },
        }],
    });
    if let Some(t) = &request.artifact_type {
        manifest["artifactType"] = json!(t);
    }
    let mut annotations = request.annotations.clone();
    if let Some(key) = &request.sha256_annotation {
        annotations.insert(key.clone(), layer_digest.hex().to_string());
    }
    if !annotations.is_empty() {
        manifest["annotations"] = json!(annotations);
    }
    let manifest_bytes =
        Bytes::from(serde_json::to_vec(&manifest).map_err(|e| Error::InvalidInput(e.to_string()))?);
    let mut tags = vec![tag];
    tags.extend(request.extra_tags.iter().cloned());
    let manifest_digest = Digest::of_bytes(&manifest_bytes);
    for (set, t) in tags.iter().enumerate() {
        let put = client
            .put_manifest(repo, t, OCI_MANIFEST, manifest_bytes.clone())
            .await;
        match put {
            Ok(_) => {}
            // Once one tag is set the image is published: the caller must learn that, not
            // only which tag failed, to know what is left to do.
            Err(source) if set > 0 => {
                return Err(Error::PartlyTagged {
                    manifest_digest,
                    tagged: tags[..set].to_vec(),
                    failed: t.clone(),
                    source: Box::new(source),
                })
            }
            Err(e) => return Err(e),
        }
    }
    Ok(Pushed {
        manifest_digest,
        layer_digest,
        layer_size: size,
        layer_media_type: media_type.to_string(),
        layer_upload,
        tags,
    })
}

/// Hashes a file (its digest and size) and, for tar layers, the uncompressed tar (the
/// config's `diff_id`), streaming in a blocking task.
async fn digest_file(path: &Path, media_type: &'static str) -> Result<(Digest, Digest, u64)> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || -> Result<(Digest, Digest, u64)> {
        let io = |e| Error::io("reading", &path, e);
        let file = std::fs::File::open(&path).map_err(io)?;
        let mut hashing = HashingReader {
            inner: std::io::BufReader::with_capacity(256 * 1024, file),
            hasher: Hasher::new(Algorithm::Sha256),
            count: 0,
        };
        let diff_id = match media_type {
            OCI_LAYER_GZIP => {
                Some(hash_all(flate2::read::MultiGzDecoder::new(&mut hashing)).map_err(io)?)
            }
            OCI_LAYER_ZSTD => Some(
                hash_all(zstd::stream::read::Decoder::new(&mut hashing).map_err(io)?)
                    .map_err(io)?,
            ),
            _ => None,
        };
        // Whatever the decoder did not consume (trailing bytes) still counts.
        std::io::copy(&mut hashing, &mut std::io::sink()).map_err(io)?;
        let size = hashing.count;
        let digest = hashing.hasher.finish();
        Ok((digest.clone(), diff_id.unwrap_or(digest), size))
    })
    .await
    .map_err(|e| Error::io("reading", PathBuf::new(), std::io::Error::other(e)))?
}

fn hash_all(mut reader: impl Read) -> std::io::Result<Digest> {
    let mut hasher = Hasher::new(Algorithm::Sha256);
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            return Ok(hasher.finish());
        }
        hasher.update(&buf[..n]);
    }
}

/// A reader that hashes and counts what passes through it.
struct HashingReader<R> {
    inner: R,
    hasher: Hasher,
    count: u64,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_type_follows_the_extension() {
        for (name, want) in [
            ("python-bookworm-3.11.0.tar.gz", OCI_LAYER_GZIP),
            ("x.TGZ", OCI_LAYER_GZIP),
            ("x.tar.zst", OCI_LAYER_ZSTD),
            ("x.tar", OCI_LAYER_TAR),
            ("x.zip", "application/octet-stream"),
        ] {
            assert_eq!(layer_media_type(name), want, "{name}");
        }
    }

    #[tokio::test]
    async fn diff_id_is_the_uncompressed_digest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.tar.gz");
        let raw = b"not really a tar, but gzip does not care".repeat(100);
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut enc, &raw).unwrap();
        let gz = enc.finish().unwrap();
        std::fs::write(&path, &gz).unwrap();
        let (digest, diff_id, size) = digest_file(&path, OCI_LAYER_GZIP).await.unwrap();
        assert_eq!(digest, Digest::of_bytes(&gz));
        assert_eq!(diff_id, Digest::of_bytes(&raw));
        assert_eq!(size, gz.len() as u64);
    }
}
