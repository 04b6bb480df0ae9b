//! OCI and Docker media types and documents.
//!
//! The documents themselves are `oci-spec`'s types: Docker schema 2 manifests and manifest
//! lists have the same shape as OCI manifests and indexes, so one parser serves both.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use bytes::Bytes;
pub use oci_spec::image::{Descriptor, ImageIndex, ImageManifest};
use serde::Deserialize;

use crate::digest::Digest;

/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Docker image manifest, schema 2.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list.
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// OCI image config.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// Docker image config.
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// OCI empty descriptor (`{}`), the config of artifacts that have none.
pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
/// OCI tar layer, uncompressed.
pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
/// OCI tar layer, gzip.
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// OCI tar layer, zstd.
pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
/// Docker tar layer, gzip.
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

/// The `Accept` header of every manifest request: all four document kinds in one request,
/// which is about half the time of asking for OCI and Docker in turn.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, \
application/vnd.oci.image.index.v1+json, \
application/vnd.docker.distribution.manifest.v2+json, \
application/vnd.docker.distribution.manifest.list.v2+json";

/// The most manifest bytes read from a registry: larger documents are refused. The OCI
/// distribution spec suggests registries accept at least 4 MiB; nothing legitimate is bigger,
/// and the cap keeps a hostile registry from exhausting memory.
pub const MANIFEST_LIMIT: u64 = 4 * 1024 * 1024;
/// The most config-blob bytes read: configs are parsed in memory, so they are capped like
/// manifests.
pub const CONFIG_LIMIT: u64 = 4 * 1024 * 1024;

/// A parsed manifest document.
#[derive(Debug, Clone)]
pub enum ManifestDocument {
    /// One image (OCI manifest or Docker schema 2).
    Image(Box<ImageManifest>),
    /// Several platform images (OCI index or Docker manifest list).
    Index(Box<ImageIndex>),
}

/// A manifest as the registry served it: the exact bytes, their digest, media type and the
/// parsed document.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// The bytes exactly as served; their digest is `digest`.
    pub bytes: Bytes,
    /// The digest of `bytes`.
    pub digest: Digest,
    /// The media type (from `Content-Type`, else the document's `mediaType`).
    pub media_type: String,
    /// The parsed document.
    pub document: ManifestDocument,
}

impl Manifest {
    /// The image manifest, when this is one (not an index).
    pub fn image(&self) -> Option<&ImageManifest> {
        match &self.document {
            ManifestDocument::Image(m) => Some(m),
            ManifestDocument::Index(_) => None,
        }
    }

    /// The manifest annotations (empty for none).
    pub fn annotations(&self) -> HashMap<String, String> {
        let annotations = match &self.document {
            ManifestDocument::Image(m) => m.annotations().clone(),
            ManifestDocument::Index(i) => i.annotations().clone(),
        };
        annotations.unwrap_or_default()
    }
}

/// Parses manifest bytes, deciding between image and index by media type, falling back to
/// the document's shape when the media type is missing or unknown.
pub(crate) fn parse_manifest(
    bytes: &[u8],
    media_type: Option<&str>,
) -> Result<(ManifestDocument, String), serde_json::Error> {
    #[derive(Deserialize)]
    struct Probe {
        #[serde(rename = "mediaType")]
        media_type: Option<String>,
        manifests: Option<serde_json::Value>,
    }
    let probe: Probe = serde_json::from_slice(bytes)?;
    let media_type = media_type
        .filter(|m| is_manifest_type(m))
        .map(str::to_string)
        .or(probe.media_type)
        .unwrap_or_else(|| {
            if probe.manifests.is_some() {
                OCI_INDEX.to_string()
            } else {
                OCI_MANIFEST.to_string()
            }
        });
    let document = if media_type == OCI_INDEX || media_type == DOCKER_MANIFEST_LIST {
        ManifestDocument::Index(Box::new(serde_json::from_slice(bytes)?))
    } else {
        ManifestDocument::Image(Box::new(serde_json::from_slice(bytes)?))
    };
    Ok((document, media_type))
}

fn is_manifest_type(media_type: &str) -> bool {
    matches!(
        media_type,
        OCI_MANIFEST | OCI_INDEX | DOCKER_MANIFEST | DOCKER_MANIFEST_LIST
    )
}

/// The parts of an image config this crate reads: its labels and platform. Parsed
/// leniently, because an artifact's config may be `{}` or any JSON.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct ConfigLabels {
    #[serde(default)]
    pub(crate) config: Option<ConfigSection>,
    #[serde(default)]
    pub(crate) os: Option<String>,
    #[serde(default)]
    pub(crate) architecture: Option<String>,
    #[serde(default)]
    pub(crate) variant: Option<String>,
}

impl ConfigLabels {
    /// The platform the config names, when it names both an OS and an architecture.
    pub(crate) fn platform(&self) -> Option<Platform> {
        match (&self.os, &self.architecture) {
            (Some(os), Some(architecture)) if !os.is_empty() && !architecture.is_empty() => {
                Some(Platform {
                    os: os.clone(),
                    architecture: architecture.clone(),
                    variant: self.variant.clone().filter(|v| !v.is_empty()),
                })
            }
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct ConfigSection {
    #[serde(rename = "Labels", default)]
    pub(crate) labels: Option<HashMap<String, String>>,
}

/// An image config blob: its bytes and the labels found in it.
#[derive(Debug, Clone)]
pub struct ImageConfig {
    /// The bytes as served (verified against the config descriptor).
    pub bytes: Bytes,
    /// `config.Labels`, empty when absent.
    pub labels: HashMap<String, String>,
    /// The platform the config names (`os`, `architecture`, `variant`), when it does.
    pub platform: Option<Platform>,
}

/// A target platform: `os/arch[/variant]`, e.g. `linux/arm64/v8`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    /// Operating system, e.g. `linux`.
    pub os: String,
    /// CPU architecture in Go's naming, e.g. `amd64`.
    pub architecture: String,
    /// Optional variant, e.g. `v8`.
    pub variant: Option<String>,
}

impl Platform {
    /// The platform this program runs on, in Go's naming (what registries use).
    pub fn host() -> Platform {
        let architecture = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "arm" => "arm",
            "powerpc64" => "ppc64le",
            "s390x" => "s390x",
            "riscv64" => "riscv64",
            _ => "amd64",
        };
        Platform {
            os: "linux".into(),
            architecture: architecture.into(),
            variant: None,
        }
    }

    /// Whether an image built for `other` satisfies this platform: same OS and
    /// architecture; a missing variant on either side matches any variant, as containerd's
    /// matcher does for the common case.
    pub fn accepts(&self, other: &Platform) -> bool {
        // An empty variant (`"variant": ""`, which some tools write) is no variant.
        let variant = |v: &Option<String>| v.clone().filter(|v| !v.is_empty());
        let same_variant = match (variant(&self.variant), variant(&other.variant)) {
            (Some(a), Some(b)) => a == b,
            _ => true,
        };
        self.os == other.os && self.architecture == other.architecture && same_variant
    }

    /// Whether an index entry's platform satisfies this one (see [`Platform::accepts`]).
    pub fn matches(&self, other: &oci_spec::image::Platform) -> bool {
        self.accepts(&Platform {
            os: other.os().to_string(),
            architecture: other.architecture().to_string(),
            variant: other.variant().clone(),
        })
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

impl FromStr for Platform {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.split('/').collect();
        let valid =
            |p: &&str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        match parts.as_slice() {
            [os, arch] if valid(os) && valid(arch) => Ok(Platform {
                os: os.to_string(),
                architecture: arch.to_string(),
                variant: None,
            }),
            [os, arch, variant] if valid(os) && valid(arch) && valid(variant) => Ok(Platform {
                os: os.to_string(),
                architecture: arch.to_string(),
                variant: Some(variant.to_string()),
            }),
            _ => Err(format!(
                "invalid platform \"{s}\": expected OS/ARCH[/VARIANT], e.g. linux/amd64"
            )),
        }
    }
}

/// The index entry for `platform`, or (as the error) the platforms the index does list.
pub(crate) fn entry_for_platform<'a>(
    index: &'a ImageIndex,
    platform: &Platform,
) -> Result<&'a Descriptor, String> {
    let entries = || {
        index
            .manifests()
            .iter()
            .filter(|d| d.platform().as_ref().is_some_and(|p| platform.matches(p)))
    };
    // The entry built for the variant asked for, when there is one, before one that names
    // none (`linux/arm` listed before `linux/arm/v7`).
    let exact = platform.variant.as_ref().and_then(|wanted| {
        entries().find(|d| {
            d.platform()
                .as_ref()
                .and_then(|p| p.variant().as_ref())
                .is_some_and(|v| v == wanted)
        })
    });
    exact.or_else(|| entries().next()).ok_or_else(|| {
        index
            .manifests()
            .iter()
            .map(|d| describe_platform(d.platform().as_ref()))
            .collect::<Vec<_>>()
            .join(", ")
    })
}

/// Describes an index entry's platform for error messages.
pub(crate) fn describe_platform(p: Option<&oci_spec::image::Platform>) -> String {
    match p {
        None => "unknown".into(),
        Some(p) => {
            let mut s = format!("{}/{}", p.os(), p.architecture());
            if let Some(v) = p.variant() {
                s.push('/');
                s.push_str(v);
            }
            s
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platform_parses_and_rejects() {
        let p: Platform = "linux/arm64/v8".parse().unwrap();
        assert_eq!(p.variant.as_deref(), Some("v8"));
        assert_eq!(p.to_string(), "linux/arm64/v8");
        for bad in ["linux", "linux/", "/amd64", "a/b/c/d", "linux/amd 64"] {
            assert!(bad.parse::<Platform>().is_err(), "{bad}");
        }
    }

    #[test]
    fn an_exact_variant_is_preferred_and_an_empty_one_is_none() {
        let entry = |variant: Option<&str>, digest: char| {
            let mut platform = serde_json::json!({"os": "linux", "architecture": "arm"});
            if let Some(v) = variant {
                platform["variant"] = serde_json::json!(v);
            }
            serde_json::json!({
                "mediaType": OCI_MANIFEST,
                "digest": format!("sha256:{}", digest.to_string().repeat(64)),
                "size": 2,
                "platform": platform,
            })
        };
        let index: ImageIndex = serde_json::from_value(serde_json::json!({
            "schemaVersion": 2,
            "manifests": [entry(None, 'a'), entry(Some("v6"), 'b'), entry(Some("v7"), 'c')],
        }))
        .unwrap();
        let pick = |p: &str| {
            let d = entry_for_platform(&index, &p.parse().unwrap()).unwrap();
            d.digest().to_string().chars().last().unwrap()
        };
        assert_eq!(pick("linux/arm/v7"), 'c');
        assert_eq!(pick("linux/arm/v6"), 'b');
        assert_eq!(pick("linux/arm/v5"), 'a');
        assert_eq!(pick("linux/arm"), 'a');
        let empty = Platform {
            os: "linux".into(),
            architecture: "arm".into(),
            variant: Some(String::new()),
        };
        assert!(empty.accepts(&"linux/arm/v7".parse().unwrap()));
    }

    #[test]
    fn manifest_kind_comes_from_media_type_or_shape() {
        let image = br#"{"schemaVersion":2,"config":{"mediaType":"application/vnd.oci.image.config.v1+json","size":2,"digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"},"layers":[]}"#;
        let (doc, mt) = parse_manifest(image, None).unwrap();
        assert!(matches!(doc, ManifestDocument::Image(_)));
        assert_eq!(mt, OCI_MANIFEST);
        let index = br#"{"schemaVersion":2,"manifests":[]}"#;
        let (doc, mt) = parse_manifest(index, Some("text/plain")).unwrap();
        assert!(matches!(doc, ManifestDocument::Index(_)));
        assert_eq!(mt, OCI_INDEX);
        let (_, mt) = parse_manifest(index, Some(DOCKER_MANIFEST_LIST)).unwrap();
        assert_eq!(mt, DOCKER_MANIFEST_LIST);
        assert!(parse_manifest(b"<html>", None).is_err());
    }
}
