//! Publishing an SDK tarball as a one-layer image, labelled the way Oryx clients read.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::SystemTime;

use crate::content::{push_inspected, PushRequest, Pushed};
use crate::extract::check_archive;
use crate::progress::Reporter;
use crate::reference::Reference;
use crate::sdk::catalogue::{Catalogue, ANNOTATION_VERSION, LABEL_VERSION};
use crate::sdk::error::SdkError;
use crate::sdk::fetch::ANNOTATION_SHA256;
use crate::sdk::version::SdkVersion;

/// What [`Catalogue::publish`] did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Published {
    /// The image reference (`{repo}:{os}-{version}`).
    pub reference: Reference,
    /// Details of the push.
    #[serde(flatten)]
    pub pushed: Pushed,
}

impl Catalogue {
    /// Pushes `file` as `{repo}:{os}-{version}`: the layer is the file itself (media type
    /// from its extension, title = file name), the config carries the `org.oryx.*` labels,
    /// the manifest the `org.oryx.sdk.*` annotations and a creation time. With
    /// `make_default`, `{os}-default` points at it too; when only that tag fails, the error
    /// is [`Error::PartlyTagged`](crate::Error::PartlyTagged): the version is published, and
    /// publishing the same file again is safe (it gives the same manifest).
    ///
    /// A file that no install could unpack is refused before anything is uploaded
    /// ([`SdkError::NotAnSdkTarball`]): one that is not a tar (plain, or compressed as its
    /// name says), or a tar with nothing to install. This is checked in the one read of the
    /// file that hashes it. Entries an install refuses one by one (unsafe paths, devices)
    /// are not looked for.
    pub async fn publish(
        &self,
        platform: &str,
        version: &SdkVersion,
        file: &Path,
        make_default: bool,
        reporter: &dyn Reporter,
    ) -> Result<Published, SdkError> {
        let os = &self.settings.os;
        let repo = self.repository(platform)?;
        let reference = Reference::from(repo)
            .with_tag(&format!("{os}-{version}"))
            .map_err(crate::error::Error::from)?;
        let labels = BTreeMap::from([
            (LABEL_VERSION.to_string(), version.to_string()),
            ("org.oryx.platform".to_string(), platform.to_string()),
            ("org.oryx.os-flavor".to_string(), os.clone()),
        ]);
        let annotations = BTreeMap::from([
            (ANNOTATION_VERSION.to_string(), version.to_string()),
            ("org.oryx.sdk.platform".to_string(), platform.to_string()),
            ("org.oryx.sdk.os-flavor".to_string(), os.clone()),
            (
                "org.opencontainers.image.created".to_string(),
                created(file),
            ),
        ]);
        let request = PushRequest {
            file: file.to_path_buf(),
            labels,
            annotations,
            artifact_type: None,
            extra_tags: if make_default {
                vec![format!("{os}-default")]
            } else {
                Vec::new()
            },
            sha256_annotation: Some(ANNOTATION_SHA256.to_string()),
        };
        let inspect = |tar: &mut dyn std::io::Read| check_archive(tar);
        let pushed = push_inspected(&self.client, &reference, &request, Some(inspect), reporter)
            .await?
            .map_err(|source| SdkError::NotAnSdkTarball {
                path: file.to_path_buf(),
                source: Box::new(source),
            })?;
        Ok(Published { reference, pushed })
    }
}

/// When the SDK was made, as RFC 3339 in UTC (seconds): `SOURCE_DATE_EPOCH` when set (the
/// reproducible-builds convention), else the tarball's modification time, else now. Not the
/// time of publishing: the same file published again (a retried CI job) then gives the same
/// manifest, so the tag does not move and no client downloads the SDK again.
fn created(file: &Path) -> String {
    let from_env = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .map(|secs| SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(secs));
    let when = from_env
        .or_else(|| std::fs::metadata(file).and_then(|m| m.modified()).ok())
        .unwrap_or_else(SystemTime::now);
    humantime::format_rfc3339_seconds(when).to_string()
}
