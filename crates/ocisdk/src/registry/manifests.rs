//! Fetching manifests (one GET that accepts all four kinds), resolving indexes to a platform,
//! and reading config blobs.
//! <https://github.com/opencontainers/distribution-spec/blob/main/spec.md#pulling-manifests>

use bytes::Bytes;
use reqwest::header::{ACCEPT, CONTENT_TYPE};
use reqwest::Method;

use super::{content_length, location, parse_json, read_capped, verify_bytes, ApiRequest, Client};
use crate::digest::{Digest, Hasher};
use crate::error::{Error, Location, Result};
use crate::reference::{Reference, Repository};
use crate::spec::{
    entry_for_platform, parse_manifest, ConfigLabels, ImageConfig, Manifest, ManifestDocument,
    Platform, CONFIG_LIMIT, DOCKER_CONFIG, MANIFEST_ACCEPT, MANIFEST_LIMIT, OCI_CONFIG,
};

const DOCKER_CONTENT_DIGEST: &str = "docker-content-digest";

/// What a `HEAD` of a manifest tells: enough to know whether a cached copy is current.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestHead {
    /// The manifest digest.
    pub digest: Digest,
    /// The media type, when the registry said.
    pub media_type: Option<String>,
    /// The size in bytes, when the registry said.
    pub size: Option<u64>,
}

impl Client {
    fn manifest_request(
        &self,
        reference: &Reference,
        method: Method,
        operation: &'static str,
    ) -> Result<ApiRequest> {
        let repo = reference.repository();
        let target = reference.target().to_string();
        let url = self.endpoints(repo)?.manifest(repo, &target);
        Ok(
            ApiRequest::new(method, url, operation, location(repo, Some(target)))
                .header(ACCEPT, MANIFEST_ACCEPT),
        )
    }

    /// Fetches the manifest `reference` points to, exactly as served (an index stays an
    /// index). The bytes are verified against the reference's digest when it has one, and
    /// against `Docker-Content-Digest` when the registry sends it.
    pub async fn manifest(&self, reference: &Reference) -> Result<Manifest> {
        let what = format!("manifest {}", reference.target());
        self.read_via_mirrors(reference.repository(), &what, |client, repo| async move {
            client.manifest_here(&reference.in_repository(repo)).await
        })
        .await
    }

    async fn manifest_here(&self, reference: &Reference) -> Result<Manifest> {
        self.get_manifest(reference, "fetching manifest").await
    }

    /// One manifest `GET`; `operation` names it in errors.
    async fn get_manifest(
        &self,
        reference: &Reference,
        operation: &'static str,
    ) -> Result<Manifest> {
        let req = self.manifest_request(reference, Method::GET, operation)?;
        let response = self.send(&req).await?;
        let header_digest = header_digest(&response, &req.at)?;
        let content_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or(v).trim().to_string());
        let bytes = read_capped(response, MANIFEST_LIMIT, "manifest", &req.at).await?;
        // Before verifying: a signed schema 1 manifest's digest is that of its payload
        // without the signatures, so it would read as corrupt content instead of as what it is.
        if is_schema1(content_type.as_deref(), &bytes) {
            return Err(Error::Unsupported {
                at: req.at.clone(),
                message: "a Docker schema 1 manifest (deprecated, never an OCI image): push \
                          the image again with a current client"
                    .into(),
            });
        }
        let digest =
            verify_manifest_bytes(&bytes, reference.digest(), header_digest.as_ref(), &req.at)?;
        let (document, media_type) = parse_manifest(&bytes, content_type.as_deref())
            .map_err(|e| super::invalid_document(&bytes, "manifest", &req.url, e))?;
        Ok(Manifest {
            bytes,
            digest,
            media_type,
            document,
        })
    }

    /// Fetches the image manifest for one platform: when `reference` is an index (or Docker
    /// manifest list), the entry matching `platform` (default: the client's) is fetched by
    /// digest and verified.
    pub async fn resolve_manifest(
        &self,
        reference: &Reference,
        platform: Option<&Platform>,
    ) -> Result<Manifest> {
        let top = self.manifest(reference).await?;
        self.platform_manifest(reference, top, platform).await
    }

    /// The image manifest for one platform, given `top`, the manifest already fetched for
    /// `reference`: `top` itself unless it is an index, else the matching entry, fetched by
    /// digest and verified. Saves a round trip when the caller needed `top` anyway.
    pub async fn platform_manifest(
        &self,
        reference: &Reference,
        top: Manifest,
        platform: Option<&Platform>,
    ) -> Result<Manifest> {
        let ManifestDocument::Index(index) = &top.document else {
            if let Some(wanted) = platform {
                self.check_image_platform(reference, &top, wanted).await?;
            }
            return Ok(top);
        };
        let platform = platform.unwrap_or(&self.inner.platform);
        let chosen =
            entry_for_platform(index, platform).map_err(|available| Error::NoMatchingPlatform {
                at: location(reference.repository(), Some(reference.target().to_string())),
                wanted: platform.to_string(),
                available,
            })?;
        let digest = Digest::parse(chosen.digest().as_ref()).map_err(|e| Error::Protocol {
            at: location(reference.repository(), Some(reference.target().to_string())),
            message: format!("index entry has an unusable digest: {e}"),
        })?;
        let child = self.manifest(&reference.with_digest(digest)).await?;
        if matches!(child.document, ManifestDocument::Index(_)) {
            return Err(Error::Unsupported {
                at: location(reference.repository(), Some(child.digest.to_string())),
                message: "nested indexes are not supported".into(),
            });
        }
        Ok(child)
    }

    /// A single-platform image asked for with an explicit platform must be built for it,
    /// as its config says (as `docker pull --platform` checks). Artifacts, whose config is
    /// not an image config, have no platform to check.
    async fn check_image_platform(
        &self,
        reference: &Reference,
        image: &Manifest,
        wanted: &Platform,
    ) -> Result<()> {
        let is_image_config = image.image().is_some_and(|m| {
            matches!(
                m.config().media_type().to_string().as_str(),
                OCI_CONFIG | DOCKER_CONFIG
            )
        });
        if !is_image_config {
            return Ok(());
        }
        let config = self.config(reference.repository(), image).await?;
        match config.platform {
            Some(actual) if !wanted.accepts(&actual) => Err(Error::NoMatchingPlatform {
                at: location(reference.repository(), Some(reference.target().to_string())),
                wanted: wanted.to_string(),
                available: actual.to_string(),
            }),
            _ => Ok(()),
        }
    }

    /// The manifest digest from a `HEAD` request, without downloading the manifest. Falls
    /// back to a GET when the registry's HEAD answer has no `Docker-Content-Digest`, or is
    /// a 404 or 405: some registries refuse HEAD, or answer it 404 where a GET serves the
    /// manifest, and a real 404 then comes with the registry's error code, which a HEAD
    /// answer has no body to carry.
    pub async fn head_manifest(&self, reference: &Reference) -> Result<ManifestHead> {
        self.head_manifest_with(reference, true).await
    }

    /// [`Client::head_manifest`] for a check whether the manifest is there, as a copy asks
    /// its target of each manifest it would write: a `HEAD` answered 404 is the answer, not
    /// asked again with GET (a 405 or a missing digest still is). Most such checks find
    /// nothing, and a GET after each 404 doubled them; a registry whose HEAD says 404
    /// wrongly only gets a manifest written that it had, which changes nothing.
    pub(crate) async fn check_manifest(&self, reference: &Reference) -> Result<ManifestHead> {
        self.head_manifest_with(reference, false).await
    }

    /// A `HEAD`, asked again with GET after a 404 when `get_after_404`.
    async fn head_manifest_with(
        &self,
        reference: &Reference,
        get_after_404: bool,
    ) -> Result<ManifestHead> {
        let what = format!("manifest {}", reference.target());
        self.read_via_mirrors(reference.repository(), &what, |client, repo| async move {
            client
                .head_manifest_here(&reference.in_repository(repo), get_after_404)
                .await
        })
        .await
    }

    async fn head_manifest_here(
        &self,
        reference: &Reference,
        get_after_404: bool,
    ) -> Result<ManifestHead> {
        let req = self.manifest_request(reference, Method::HEAD, "checking manifest")?;
        let response = match self.send(&req).await {
            Ok(response) => response,
            Err(e) if e.status() == Some(405) || (get_after_404 && e.status() == Some(404)) => {
                tracing::debug!("{e}; asking with GET");
                return self.head_by_get(reference).await;
            }
            Err(e) => return Err(e),
        };
        let media_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let size = content_length(&response);
        match header_digest(&response, &req.at)? {
            Some(digest) => Ok(ManifestHead {
                digest,
                media_type,
                size,
            }),
            None => self.head_by_get(reference).await,
        }
    }

    /// What a `HEAD` would have told, from a `GET` of the manifest (named as the `HEAD`
    /// in errors: the caller only checked the manifest).
    async fn head_by_get(&self, reference: &Reference) -> Result<ManifestHead> {
        let m = self.get_manifest(reference, "checking manifest").await?;
        Ok(ManifestHead {
            digest: m.digest,
            media_type: Some(m.media_type),
            size: Some(m.bytes.len() as u64),
        })
    }

    /// Fetches and verifies the config blob of an image manifest and reads its labels.
    pub async fn config(&self, repo: &Repository, manifest: &Manifest) -> Result<ImageConfig> {
        let at = location(repo, Some(manifest.digest.to_string()));
        let image = manifest.image().ok_or_else(|| Error::Unsupported {
            at: at.clone(),
            message: "an index has no config; choose a platform".into(),
        })?;
        let descriptor = image.config();
        let digest = Digest::parse(descriptor.digest().as_ref()).map_err(|e| Error::Protocol {
            at: at.clone(),
            message: format!("config descriptor has an unusable digest: {e}"),
        })?;
        if descriptor.size() > CONFIG_LIMIT {
            return Err(Error::TooLarge {
                what: "config",
                at,
                limit: CONFIG_LIMIT,
            });
        }
        let bytes: Bytes = self
            .fetch_small_blob(repo, &digest, CONFIG_LIMIT, "config")
            .await?;
        if bytes.len() as u64 != descriptor.size() {
            return Err(Error::SizeMismatch {
                at: location(repo, Some(digest.to_string())),
                expected: descriptor.size(),
                actual: bytes.len() as u64,
            });
        }
        let url = self.endpoints(repo)?.blob(repo, &digest);
        // An image's config must be its JSON; an artifact's may be anything (YAML, bytes,
        // `{}`), and then simply has no labels or platform.
        let media_type = descriptor.media_type().to_string();
        let parsed: ConfigLabels = if media_type == OCI_CONFIG || media_type == DOCKER_CONFIG {
            parse_json(&bytes, "config", &url)?
        } else {
            serde_json::from_slice(&bytes).unwrap_or_default()
        };
        let platform = parsed.platform();
        let labels = parsed.config.and_then(|c| c.labels).unwrap_or_default();
        Ok(ImageConfig {
            bytes,
            labels,
            platform,
        })
    }
}

fn header_digest(response: &reqwest::Response, at: &Location) -> Result<Option<Digest>> {
    let Some(value) = response.headers().get(DOCKER_CONTENT_DIGEST) else {
        return Ok(None);
    };
    let text = value.to_str().unwrap_or_default();
    Digest::parse(text).map(Some).map_err(|e| Error::Protocol {
        at: at.clone(),
        message: format!("Docker-Content-Digest header is not a digest: {e}"),
    })
}

/// Hashes manifest bytes with the algorithm of what we must match, and checks them against
/// the digest asked for and the digest the registry claims. Returns the manifest's digest.
fn verify_manifest_bytes(
    bytes: &[u8],
    wanted: Option<&Digest>,
    claimed: Option<&Digest>,
    at: &Location,
) -> Result<Digest> {
    if let Some(wanted) = wanted {
        verify_bytes(bytes, wanted, at)?;
    }
    if let Some(claimed) = claimed {
        verify_bytes(bytes, claimed, at)?;
    }
    Ok(match wanted.or(claimed) {
        Some(d) => d.clone(),
        None => {
            let mut h = Hasher::new(crate::digest::Algorithm::Sha256);
            h.update(bytes);
            h.finish()
        }
    })
}

/// Whether a manifest is Docker's schema 1, by its media type or its `schemaVersion`.
fn is_schema1(content_type: Option<&str>, bytes: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    struct Version {
        #[serde(rename = "schemaVersion")]
        schema_version: Option<u64>,
    }
    let by_type = content_type
        .is_some_and(|t| t.starts_with("application/vnd.docker.distribution.manifest.v1+"));
    by_type || serde_json::from_slice::<Version>(bytes).is_ok_and(|v| v.schema_version == Some(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema1_is_told_by_media_type_or_schema_version() {
        let v1 = "application/vnd.docker.distribution.manifest.v1+prettyjws";
        assert!(is_schema1(Some(v1), b"{}"));
        assert!(is_schema1(None, br#"{"schemaVersion":1,"name":"r"}"#));
        let v2 = "application/vnd.docker.distribution.manifest.v2+json";
        assert!(!is_schema1(Some(v2), br#"{"schemaVersion":2}"#));
        assert!(!is_schema1(None, b"not json"));
    }

    #[test]
    fn manifest_bytes_are_checked_against_both_digests() {
        let at = Location::default();
        let bytes = b"{}";
        let right = Digest::of_bytes(bytes);
        let wrong = Digest::of_bytes(b"{ }");
        assert_eq!(
            verify_manifest_bytes(bytes, None, None, &at).unwrap(),
            right
        );
        assert_eq!(
            verify_manifest_bytes(bytes, Some(&right), Some(&right), &at).unwrap(),
            right
        );
        assert!(matches!(
            verify_manifest_bytes(bytes, Some(&wrong), None, &at),
            Err(Error::DigestMismatch { .. })
        ));
        assert!(matches!(
            verify_manifest_bytes(bytes, None, Some(&wrong), &at),
            Err(Error::DigestMismatch { .. })
        ));
    }
}
