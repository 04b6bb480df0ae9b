//! Writing OCI image layouts (`oci-layout`, `index.json`, `blobs/sha256/…`) from Rust.
//!
//! All output is deterministic: same inputs, same bytes, same digests. JSON documents are
//! compact with keys in lexicographic order.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use flate2::read::GzDecoder;
use serde_json::{json, Map, Value};
use tempfile::TempDir;

use crate::digest_of;

/// Media types used by the fixtures.
pub mod media_types {
    /// OCI image manifest.
    pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    /// OCI image index.
    pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
    /// OCI image config.
    pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
    /// OCI empty descriptor (`{}`), for artifacts.
    pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
    /// OCI gzip'd tar layer.
    pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
    /// OCI uncompressed tar layer.
    pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
    /// OCI zstd tar layer.
    pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
    /// Docker schema 2 manifest.
    pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
    /// Docker manifest list.
    pub const DOCKER_MANIFEST_LIST: &str =
        "application/vnd.docker.distribution.manifest.list.v2+json";
    /// Docker image config.
    pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
    /// Docker gzip'd tar layer.
    pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
    /// Annotation holding the tag of an `index.json` entry.
    pub const REF_NAME_ANNOTATION: &str = "org.opencontainers.image.ref.name";
}

use media_types as mt;

/// An image platform: `os`, `architecture` and an optional `variant`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Platform {
    /// e.g. `linux`.
    pub os: String,
    /// e.g. `amd64`, `arm64`.
    pub architecture: String,
    /// e.g. `v8`.
    pub variant: Option<String>,
}

impl Platform {
    /// A platform without variant.
    pub fn new(os: &str, architecture: &str) -> Self {
        Platform {
            os: os.to_string(),
            architecture: architecture.to_string(),
            variant: None,
        }
    }

    /// `linux/<architecture>`.
    pub fn linux(architecture: &str) -> Self {
        Self::new("linux", architecture)
    }

    /// Sets the variant.
    pub fn with_variant(mut self, variant: &str) -> Self {
        self.variant = Some(variant.to_string());
        self
    }

    fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("architecture".into(), json!(self.architecture));
        m.insert("os".into(), json!(self.os));
        if let Some(v) = &self.variant {
            m.insert("variant".into(), json!(v));
        }
        Value::Object(m)
    }
}

#[derive(Debug, Clone)]
struct Layer {
    bytes: Vec<u8>,
    media_type: String,
    diff_id: Option<String>,
}

/// Describes one image (config + layers + manifest) to write with
/// [`OciLayout::add_image`]. Defaults: platform `linux/amd64`, no layers, no labels, a
/// generated OCI image config.
#[derive(Debug, Clone)]
pub struct ImageBuilder {
    layers: Vec<Layer>,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
    artifact_type: Option<String>,
    platform: Platform,
    raw_config: Option<(String, Vec<u8>)>,
    subject: Option<Value>,
}

impl Default for ImageBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl ImageBuilder {
    /// An image for `linux/amd64` with no layers.
    pub fn new() -> Self {
        ImageBuilder {
            layers: Vec::new(),
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
            artifact_type: None,
            platform: Platform::linux("amd64"),
            raw_config: None,
            subject: None,
        }
    }

    /// Appends a layer. Its diff_id (for the config's `rootfs.diff_ids`) is the sha256 of
    /// the uncompressed content: gzip media types (`…+gzip`, `….tar.gzip`) are
    /// decompressed, anything else is taken as uncompressed, except `+zstd`, which needs
    /// [`layer_with_diff_id`](Self::layer_with_diff_id).
    pub fn layer(mut self, bytes: impl Into<Vec<u8>>, media_type: &str) -> Self {
        self.layers.push(Layer {
            bytes: bytes.into(),
            media_type: media_type.to_string(),
            diff_id: None,
        });
        self
    }

    /// Appends a layer with an explicitly given diff_id (`sha256:…`).
    pub fn layer_with_diff_id(
        mut self,
        bytes: impl Into<Vec<u8>>,
        media_type: &str,
        diff_id: &str,
    ) -> Self {
        self.layers.push(Layer {
            bytes: bytes.into(),
            media_type: media_type.to_string(),
            diff_id: Some(diff_id.to_string()),
        });
        self
    }

    /// Adds labels to the image config (`config.Labels`).
    pub fn config_labels<K: Into<String>, V: Into<String>>(
        mut self,
        labels: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        self.labels
            .extend(labels.into_iter().map(|(k, v)| (k.into(), v.into())));
        self
    }

    /// Adds one label to the image config.
    pub fn label(self, key: &str, value: &str) -> Self {
        self.config_labels([(key, value)])
    }

    /// Adds annotations to the manifest.
    pub fn annotations<K: Into<String>, V: Into<String>>(
        mut self,
        annotations: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        self.annotations
            .extend(annotations.into_iter().map(|(k, v)| (k.into(), v.into())));
        self
    }

    /// Adds one manifest annotation.
    pub fn annotation(self, key: &str, value: &str) -> Self {
        self.annotations([(key, value)])
    }

    /// Sets the manifest's `artifactType`.
    pub fn artifact_type(mut self, artifact_type: &str) -> Self {
        self.artifact_type = Some(artifact_type.to_string());
        self
    }

    /// Sets the platform written into the config (and into an index entry).
    pub fn platform(mut self, os: &str, architecture: &str, variant: Option<&str>) -> Self {
        self.platform = Platform {
            os: os.to_string(),
            architecture: architecture.to_string(),
            variant: variant.map(str::to_string),
        };
        self
    }

    /// Uses `bytes` with `media_type` as the config blob instead of the generated OCI
    /// image config (e.g. `media_types::OCI_EMPTY` and `b"{}"` for artifacts). Labels
    /// and platform are then not written anywhere.
    pub fn raw_config(mut self, media_type: &str, bytes: impl Into<Vec<u8>>) -> Self {
        self.raw_config = Some((media_type.to_string(), bytes.into()));
        self
    }

    /// Sets the manifest's `subject` descriptor (for referrers).
    pub fn subject(mut self, media_type: &str, digest: &str, size: u64) -> Self {
        self.subject = Some(json!({"mediaType": media_type, "digest": digest, "size": size}));
        self
    }

    /// The generated config JSON bytes (or the raw config).
    pub fn config_bytes(&self) -> Vec<u8> {
        if let Some((_, bytes)) = &self.raw_config {
            return bytes.clone();
        }
        let diff_ids: Vec<String> = self.layers.iter().map(diff_id_of).collect();
        let mut cfg = Map::new();
        cfg.insert("architecture".into(), json!(self.platform.architecture));
        cfg.insert("os".into(), json!(self.platform.os));
        if let Some(v) = &self.platform.variant {
            cfg.insert("variant".into(), json!(v));
        }
        let mut inner = Map::new();
        if !self.labels.is_empty() {
            inner.insert("Labels".into(), json!(self.labels));
        }
        cfg.insert("config".into(), Value::Object(inner));
        cfg.insert(
            "rootfs".into(),
            json!({"type": "layers", "diff_ids": diff_ids}),
        );
        serde_json::to_vec(&Value::Object(cfg)).expect("serialize config")
    }

    fn config_media_type(&self) -> &str {
        self.raw_config
            .as_ref()
            .map_or(mt::OCI_CONFIG, |(m, _)| m.as_str())
    }
}

fn diff_id_of(layer: &Layer) -> String {
    if let Some(d) = &layer.diff_id {
        return d.clone();
    }
    let mt = layer.media_type.as_str();
    if mt.ends_with("+gzip") || mt.ends_with(".tar.gzip") {
        let mut raw = Vec::new();
        GzDecoder::new(&layer.bytes[..])
            .read_to_end(&mut raw)
            .unwrap_or_else(|e| panic!("layer of type {mt} is not valid gzip: {e}"));
        digest_of(&raw)
    } else if mt.ends_with("+zstd") {
        panic!("zstd layer: the testkit cannot decompress it, use layer_with_diff_id");
    } else {
        digest_of(&layer.bytes)
    }
}

/// What [`OciLayout::add_image`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageInfo {
    /// `sha256:…` of `manifest_bytes`.
    pub manifest_digest: String,
    /// The exact manifest bytes stored in the layout.
    pub manifest_bytes: Vec<u8>,
    /// `sha256:…` of `config_bytes`.
    pub config_digest: String,
    /// The config blob.
    pub config_bytes: Vec<u8>,
    /// Digests of the layer blobs, in order.
    pub layer_digests: Vec<String>,
    /// The image's platform.
    pub platform: Platform,
}

impl ImageInfo {
    /// The manifest as JSON.
    pub fn manifest_json(&self) -> Value {
        serde_json::from_slice(&self.manifest_bytes).expect("manifest is JSON")
    }
}

/// What [`OciLayout::add_index`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexInfo {
    /// `sha256:…` of `index_bytes`.
    pub index_digest: String,
    /// The exact image index bytes stored in the layout.
    pub index_bytes: Vec<u8>,
    /// The images it references, in order.
    pub manifests: Vec<ImageInfo>,
}

/// An OCI image layout directory being written.
///
/// Each `add_*` call writes the blobs and rewrites `index.json`, so the directory is a
/// valid layout (usable as `oci:DIR:TAG` by skopeo) after every call.
#[derive(Debug)]
pub struct OciLayout {
    dir: PathBuf,
    /// `index.json` entries: (tag, descriptor JSON).
    entries: Vec<(String, Value)>,
    _temp: Option<TempDir>,
}

impl OciLayout {
    /// A new, empty layout in a fresh temp dir that is removed on drop.
    #[track_caller]
    pub fn new() -> Self {
        let temp = tempfile::Builder::new()
            .prefix("ocisdk-layout-")
            .tempdir()
            .expect("create layout temp dir");
        let mut layout = Self::create(temp.path());
        layout._temp = Some(temp);
        layout
    }

    /// A new, empty layout at `dir` (created if missing; an existing `index.json` is
    /// overwritten). Nothing is removed on drop.
    #[track_caller]
    pub fn create(dir: impl AsRef<Path>) -> Self {
        let dir = dir.as_ref().to_path_buf();
        fs::create_dir_all(dir.join("blobs/sha256"))
            .unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        write_file(
            &dir.join("oci-layout"),
            br#"{"imageLayoutVersion":"1.0.0"}"#,
        );
        let layout = OciLayout {
            dir,
            entries: Vec::new(),
            _temp: None,
        };
        layout.write_index_json();
        layout
    }

    /// The layout directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Where blob `digest` (`sha256:…`) is stored in the layout.
    pub fn blob_path(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
        self.dir.join("blobs/sha256").join(hex)
    }

    /// Writes `bytes` as a blob and returns its digest.
    #[track_caller]
    pub fn add_blob(&self, bytes: &[u8]) -> String {
        let digest = digest_of(bytes);
        write_file(&self.blob_path(&digest), bytes);
        digest
    }

    /// Writes an image (layers, config, manifest) and tags it `tag` in `index.json`
    /// (replacing an entry with the same tag).
    #[track_caller]
    pub fn add_image(&mut self, tag: &str, image: &ImageBuilder) -> ImageInfo {
        let info = self.write_image(image);
        let desc = json!({
            "mediaType": mt::OCI_MANIFEST,
            "digest": info.manifest_digest,
            "size": info.manifest_bytes.len(),
        });
        self.set_entry(tag, desc);
        info
    }

    /// Writes a multi-platform image index over `images` (each image's platform is set
    /// to the paired one) and tags it `tag` in `index.json`.
    #[track_caller]
    pub fn add_index(&mut self, tag: &str, images: Vec<(Platform, ImageBuilder)>) -> IndexInfo {
        let mut manifests = Vec::new();
        let mut descriptors = Vec::new();
        for (platform, mut image) in images {
            image.platform = platform.clone();
            let info = self.write_image(&image);
            descriptors.push(json!({
                "mediaType": mt::OCI_MANIFEST,
                "digest": info.manifest_digest,
                "size": info.manifest_bytes.len(),
                "platform": platform.to_json(),
            }));
            manifests.push(info);
        }
        let index = json!({
            "schemaVersion": 2,
            "mediaType": mt::OCI_INDEX,
            "manifests": descriptors,
        });
        let index_bytes = serde_json::to_vec(&index).expect("serialize index");
        let index_digest = self.add_blob(&index_bytes);
        let desc = json!({
            "mediaType": mt::OCI_INDEX,
            "digest": index_digest,
            "size": index_bytes.len(),
        });
        self.set_entry(tag, desc);
        IndexInfo {
            index_digest,
            index_bytes,
            manifests,
        }
    }

    fn write_image(&self, image: &ImageBuilder) -> ImageInfo {
        let layer_descs: Vec<Value> = image
            .layers
            .iter()
            .map(|l| {
                json!({
                    "mediaType": l.media_type,
                    "digest": self.add_blob(&l.bytes),
                    "size": l.bytes.len(),
                })
            })
            .collect();
        let config_bytes = image.config_bytes();
        let config_digest = self.add_blob(&config_bytes);

        let mut manifest = Map::new();
        manifest.insert("schemaVersion".into(), json!(2));
        manifest.insert("mediaType".into(), json!(mt::OCI_MANIFEST));
        if let Some(t) = &image.artifact_type {
            manifest.insert("artifactType".into(), json!(t));
        }
        manifest.insert(
            "config".into(),
            json!({
                "mediaType": image.config_media_type(),
                "digest": config_digest,
                "size": config_bytes.len(),
            }),
        );
        manifest.insert("layers".into(), Value::Array(layer_descs.clone()));
        if let Some(s) = &image.subject {
            manifest.insert("subject".into(), s.clone());
        }
        if !image.annotations.is_empty() {
            manifest.insert("annotations".into(), json!(image.annotations));
        }
        let manifest_bytes =
            serde_json::to_vec(&Value::Object(manifest)).expect("serialize manifest");
        let manifest_digest = self.add_blob(&manifest_bytes);
        ImageInfo {
            manifest_digest,
            manifest_bytes,
            config_digest,
            config_bytes,
            layer_digests: layer_descs
                .iter()
                .map(|d| d["digest"].as_str().unwrap_or_default().to_string())
                .collect(),
            platform: image.platform.clone(),
        }
    }

    fn set_entry(&mut self, tag: &str, mut desc: Value) {
        desc["annotations"] = json!({ mt::REF_NAME_ANNOTATION: tag });
        self.entries.retain(|(t, _)| t != tag);
        self.entries.push((tag.to_string(), desc));
        self.write_index_json();
    }

    fn write_index_json(&self) {
        let index = json!({
            "schemaVersion": 2,
            "mediaType": mt::OCI_INDEX,
            "manifests": self.entries.iter().map(|(_, d)| d.clone()).collect::<Vec<_>>(),
        });
        write_file(
            &self.dir.join("index.json"),
            &serde_json::to_vec(&index).expect("serialize index.json"),
        );
    }
}

impl Default for OciLayout {
    fn default() -> Self {
        Self::new()
    }
}

#[track_caller]
fn write_file(path: &Path, bytes: &[u8]) {
    fs::write(path, bytes).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::content::{fs_layer_holding, gunzip_sha256_hex, pseudo_random_bytes};

    #[test]
    fn layout_files_and_digests_are_consistent() {
        let mut layout = OciLayout::new();
        let layer = fs_layer_holding("sdk.bin", &pseudo_random_bytes(1000, 3));
        let image = ImageBuilder::new()
            .layer(layer.clone(), media_types::OCI_LAYER_GZIP)
            .label("org.example.sdk", "1.2.3")
            .annotation("org.example.note", "x");
        let info = layout.add_image("v1", &image);

        // Blobs stored under their digests.
        for digest in [
            &info.manifest_digest,
            &info.config_digest,
            &info.layer_digests[0],
        ] {
            let bytes = fs::read(layout.blob_path(digest)).unwrap();
            assert_eq!(&digest_of(&bytes), digest);
        }
        assert_eq!(info.layer_digests, vec![digest_of(&layer)]);

        // Config: platform, labels, diff_id of the *uncompressed* layer.
        let cfg: Value = serde_json::from_slice(&info.config_bytes).unwrap();
        assert_eq!(cfg["os"], "linux");
        assert_eq!(cfg["architecture"], "amd64");
        assert_eq!(cfg["config"]["Labels"]["org.example.sdk"], "1.2.3");
        let diff_id = format!("sha256:{}", gunzip_sha256_hex(&layer));
        assert_eq!(cfg["rootfs"]["diff_ids"][0], Value::String(diff_id.clone()));
        assert_ne!(diff_id, info.layer_digests[0]);

        // Manifest references config and layer.
        let m = info.manifest_json();
        assert_eq!(m["mediaType"], media_types::OCI_MANIFEST);
        assert_eq!(
            m["config"]["digest"],
            Value::String(info.config_digest.clone())
        );
        assert_eq!(m["layers"][0]["size"], layer.len());
        assert_eq!(m["annotations"]["org.example.note"], "x");

        // index.json names the tag.
        let index: Value =
            serde_json::from_slice(&fs::read(layout.path().join("index.json")).unwrap()).unwrap();
        assert_eq!(index["manifests"].as_array().unwrap().len(), 1);
        assert_eq!(
            index["manifests"][0]["annotations"][media_types::REF_NAME_ANNOTATION],
            "v1"
        );
        assert_eq!(
            index["manifests"][0]["digest"],
            Value::String(info.manifest_digest.clone())
        );
        assert!(layout.path().join("oci-layout").is_file());

        // Re-tagging replaces the entry.
        layout.add_image("v1", &ImageBuilder::new());
        let index: Value =
            serde_json::from_slice(&fs::read(layout.path().join("index.json")).unwrap()).unwrap();
        assert_eq!(index["manifests"].as_array().unwrap().len(), 1);
        assert_ne!(
            index["manifests"][0]["digest"],
            Value::String(info.manifest_digest)
        );
    }

    #[test]
    fn index_entries_carry_platforms() {
        let mut layout = OciLayout::new();
        let info = layout.add_index(
            "multi",
            vec![
                (Platform::linux("amd64"), ImageBuilder::new()),
                (
                    Platform::linux("arm64").with_variant("v8"),
                    ImageBuilder::new(),
                ),
            ],
        );
        let index: Value = serde_json::from_slice(&info.index_bytes).unwrap();
        assert_eq!(index["mediaType"], media_types::OCI_INDEX);
        assert_eq!(index["manifests"][1]["platform"]["architecture"], "arm64");
        assert_eq!(index["manifests"][1]["platform"]["variant"], "v8");
        let cfg: Value = serde_json::from_slice(&info.manifests[1].config_bytes).unwrap();
        assert_eq!(cfg["architecture"], "arm64");
        assert_ne!(
            info.manifests[0].manifest_digest,
            info.manifests[1].manifest_digest
        );
    }
}
