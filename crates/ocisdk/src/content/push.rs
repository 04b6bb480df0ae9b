//! Pushing one file as a one-layer image: the layer is the file itself, the config carries
//! labels, the manifest carries annotations.

use std::collections::BTreeMap;
use std::convert::Infallible;
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

/// Reads the tar stream of a file about to be pushed, in the same pass that hashes it, and
/// may refuse the file: nothing is uploaded then. What it reads is described at
/// [`push_inspected`].
pub(crate) type Inspect<E> = fn(&mut dyn Read) -> std::result::Result<(), E>;

/// Pushes `request.file` as a one-layer image to `target` (which must name a tag), then
/// points `request.extra_tags` at it, in order. When one of those fails after `target`'s
/// tag was set, the error is [`Error::PartlyTagged`], naming the tags in place.
pub async fn push_file(
    client: &Client,
    target: &Reference,
    request: &PushRequest,
    reporter: &dyn Reporter,
) -> Result<Pushed> {
    // Any file is a layer: nothing to inspect, nothing refused.
    let no_inspection: Option<Inspect<Infallible>> = None;
    let Ok(pushed) = push_inspected(client, target, request, no_inspection, reporter).await?;
    Ok(pushed)
}

/// [`push_file`], where `inspect` reads the file's tar stream while the file is read to be
/// hashed, before anything is uploaded: decompressed as the layer's media type says, or,
/// for a media type that names no compression, as the file's first bytes say (as `sdk
/// install` reads a tarball); a zero-byte file, which no decompressor reads, is given as
/// the empty stream install takes it for. When `inspect` refuses the file, the push stops
/// there and its error comes back in `Ok(Err(…))`; the push's own failures are `Err(…)`.
pub(crate) async fn push_inspected<E: Send + 'static>(
    client: &Client,
    target: &Reference,
    request: &PushRequest,
    inspect: Option<Inspect<E>>,
    reporter: &dyn Reporter,
) -> Result<std::result::Result<Pushed, E>> {
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
    let (layer_digest, diff_id, size) =
        match digest_file(&request.file, media_type, inspect).await? {
            Ok(digests) => digests,
            Err(refused) => return Ok(Err(refused)),
        };
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
    Ok(Ok(Pushed {
        manifest_digest,
        layer_digest,
        layer_size: size,
        layer_media_type: media_type.to_string(),
        layer_upload,
        tags,
    }))
}

/// The digest of a file, the digest of its tar (the config's `diff_id`), and its size.
type Digests = (Digest, Digest, u64);

/// Hashes a file (its digest and size) and, for tar layers, the uncompressed tar (the
/// config's `diff_id`), streaming in a blocking task, while `inspect` reads the tar stream
/// (see [`push_inspected`]). Returns `inspect`'s error instead of the digests when it
/// refuses the file.
async fn digest_file<E: Send + 'static>(
    path: &Path,
    media_type: &'static str,
    inspect: Option<Inspect<E>>,
) -> Result<std::result::Result<Digests, E>> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || read_layer_file(&path, media_type, inspect))
        .await
        .map_err(|e| Error::io("reading", PathBuf::new(), std::io::Error::other(e)))?
}

/// [`digest_file`]'s work: one pass over the file, whatever is inspected.
fn read_layer_file<E>(
    path: &Path,
    media_type: &'static str,
    inspect: Option<Inspect<E>>,
) -> Result<std::result::Result<Digests, E>> {
    let io = |e| Error::io("reading", path, e);
    let file = std::fs::File::open(path).map_err(io)?;
    let empty = file.metadata().map_err(io)?.len() == 0;
    let mut hashing = HashingReader::new(std::io::BufReader::with_capacity(BUFFER, file));
    let compressed = matches!(media_type, OCI_LAYER_GZIP | OCI_LAYER_ZSTD);
    let mut diff_id = None;
    let mut verdict = Ok(());
    if compressed || inspect.is_some() {
        let decompressed: Box<dyn Read + '_> = match media_type {
            // `sdk install` reads a zero-byte file as a tar of nothing (refused as empty),
            // where a decompressor would call it a truncated stream: the inspection is told
            // what install would say.
            _ if empty && inspect.is_some() => Box::new(std::io::empty()),
            OCI_LAYER_GZIP => Box::new(flate2::read::MultiGzDecoder::new(&mut hashing)),
            OCI_LAYER_ZSTD => {
                let decoder = zstd::stream::read::Decoder::new(&mut hashing).map_err(io)?;
                Box::new(decoder)
            }
            _ => crate::extract::decompressing_reader(&mut hashing).map_err(io)?,
        };
        // Only a compressed layer's tar has a digest of its own to record.
        let read = if compressed {
            let mut tar = HashingReader::new(decompressed);
            let read = inspect_to_end(&mut tar, inspect);
            diff_id = Some(tar.hasher.finish());
            read
        } else {
            inspect_to_end(decompressed, inspect)
        };
        // The inspection sees a failing disk as a broken archive: it is the disk's error.
        if let Some(failure) = hashing.failure.take() {
            return Err(io(failure));
        }
        verdict = match read {
            Ok(verdict) => verdict,
            // The file reads, but not as the compression its name gives the layer's media
            // type: pushed, it would be a layer no client could unpack.
            Err(e) if compressed => {
                let name = if media_type == OCI_LAYER_GZIP {
                    "gzip"
                } else {
                    "zstd"
                };
                return Err(Error::InvalidInput(format!(
                    "cannot push {}: its name says {name}, but it is not a {name} stream ({e}); \
                     rename it to push it as it is",
                    path.display()
                )));
            }
            Err(e) => return Err(io(e)),
        };
    }
    if let Some(failure) = hashing.failure.take() {
        return Err(io(failure));
    }
    if let Err(refused) = verdict {
        return Ok(Err(refused));
    }
    // Whatever the decoder did not consume (trailing bytes) still counts.
    read_to_end(&mut hashing).map_err(io)?;
    let size = hashing.count;
    let digest = hashing.hasher.finish();
    Ok(Ok((digest.clone(), diff_id.unwrap_or(digest), size)))
}

/// Gives `tar` to `inspect`, if any, then reads what it left, so that what reads through
/// `tar` (a hasher, a decompressor checking its trailer) sees all of it.
fn inspect_to_end<E>(
    mut tar: impl Read,
    inspect: Option<Inspect<E>>,
) -> std::io::Result<std::result::Result<(), E>> {
    if let Some(inspect) = inspect {
        if let Err(refused) = inspect(&mut tar) {
            return Ok(Err(refused));
        }
    }
    read_to_end(tar)?;
    Ok(Ok(()))
}

/// Bytes read at a time from a file to push, and from its decompressed tar.
const BUFFER: usize = 256 * 1024;

/// Reads `reader` to its end, for what passing through it does (hashing, checking).
fn read_to_end(mut reader: impl Read) -> std::io::Result<()> {
    let mut buf = vec![0u8; BUFFER];
    while reader.read(&mut buf)? > 0 {}
    Ok(())
}

/// A reader that hashes and counts what passes through it, and keeps a copy of the first
/// error its source gave (readers above it may turn that into an error of their own).
struct HashingReader<R> {
    inner: R,
    hasher: Hasher,
    count: u64,
    failure: Option<std::io::Error>,
}

impl<R> HashingReader<R> {
    /// Hashing with sha256.
    fn new(inner: R) -> Self {
        Self {
            inner,
            hasher: Hasher::new(Algorithm::Sha256),
            count: 0,
            failure: None,
        }
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = match self.inner.read(buf) {
            Ok(n) => n,
            Err(e) => {
                if self.failure.is_none() && e.kind() != std::io::ErrorKind::Interrupted {
                    self.failure = Some(std::io::Error::new(e.kind(), e.to_string()));
                }
                return Err(e);
            }
        };
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extract::ExtractError;

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

    /// An inspection of what it is given: the tar (`Ok`), nothing, or something else.
    fn tar_only(tar: &mut dyn Read) -> std::result::Result<(), &'static str> {
        let mut bytes = Vec::new();
        tar.read_to_end(&mut bytes).map_err(|_| "unreadable")?;
        match bytes.len() {
            0 => Err("empty"),
            _ if crate::extract::looks_like_tar(&bytes) => Ok(()),
            _ => Err("not a tar"),
        }
    }

    /// The inspection is given the tar as `sdk install` reads it, decompressed as the name
    /// says or else as the first bytes say, in the pass that hashes the file: the digests
    /// are those of a push without one.
    #[tokio::test]
    async fn an_inspection_sees_the_tar_as_install_reads_it_and_changes_no_digest() {
        let dir = tempfile::tempdir().unwrap();
        let tar = ocisdk_testkit::RawTar::new().file("a", b"x", 0o644);
        let tar = tar.finish();
        let gz = ocisdk_testkit::gzip(&tar);
        let zst = zstd::encode_all(&tar[..], 3).unwrap();
        let cases: [(&str, &[u8], std::result::Result<(), &str>); 7] = [
            ("a.tar.gz", &gz, Ok(())),
            ("a.tar.zst", &zst, Ok(())),
            ("a.tar", &tar, Ok(())),
            ("gzip.tar", &gz, Ok(())),
            ("zstd.bin", &zst, Ok(())),
            ("zero.tar.gz", b"", Err("empty")),
            ("junk.tar", b"junk", Err("not a tar")),
        ];
        for (name, bytes, expected) in cases {
            let path = dir.path().join(name);
            std::fs::write(&path, bytes).unwrap();
            let media_type = layer_media_type(name);
            let inspected = digest_file(&path, media_type, Some(tar_only as Inspect<&str>));
            let inspected = inspected.await.unwrap();
            assert_eq!(
                inspected.as_ref().map(drop).map_err(|e| *e),
                expected,
                "{name}"
            );
            if let Ok(digests) = inspected {
                let no_inspection: Option<Inspect<Infallible>> = None;
                let Ok(plain) = digest_file(&path, media_type, no_inspection).await.unwrap();
                assert_eq!(digests, plain, "{name}");
            }
        }
    }

    /// A file that cannot be read is an I/O error, not a file the inspection refused, though
    /// that is what the inspection sees.
    #[tokio::test]
    async fn a_read_error_is_not_taken_for_a_refusal() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("folder.tar.gz");
        std::fs::create_dir(&folder).unwrap();
        std::fs::write(folder.join("file"), b"x").unwrap(); // a size of its own
        let inspect: Inspect<ExtractError> = |tar| crate::extract::check_archive(tar);
        let result = digest_file(&folder, OCI_LAYER_GZIP, Some(inspect)).await;
        assert!(matches!(result, Err(Error::Io { .. })), "{result:?}");
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
        let no_inspection: Option<Inspect<Infallible>> = None;
        let Ok((digest, diff_id, size)) = digest_file(&path, OCI_LAYER_GZIP, no_inspection)
            .await
            .unwrap();
        assert_eq!(digest, Digest::of_bytes(&gz));
        assert_eq!(diff_id, Digest::of_bytes(&raw));
        assert_eq!(size, gz.len() as u64);
    }
}
