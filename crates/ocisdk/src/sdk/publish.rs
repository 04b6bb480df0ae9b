//! Publishing an SDK tarball as a one-layer image, labelled the way Oryx clients read.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::SystemTime;

use crate::content::{push_inspected, PushRequest, Pushed};
use crate::extract::check_archive;
use crate::progress::Reporter;
use crate::reference::Reference;
use crate::sdk::catalogue::{
    Catalogue, ANNOTATION_VERSION, LABEL_DOTNET_RUNTIME_VERSION, LABEL_DOTNET_SDK_VERSION,
    LABEL_VERSION,
};
use crate::sdk::error::SdkError;
use crate::sdk::fetch::ANNOTATION_SHA256;
use crate::sdk::version::TagVersion;

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
    /// the manifest the `org.oryx.sdk.*` annotations and a creation time (the file's
    /// modification time; see [`Catalogue::publish_created`] to give one).
    ///
    /// `version` is an [`SdkVersion`](crate::sdk::SdkVersion), or a [`TagVersion`] of .NET's
    /// form `{sdk}_{runtime}`: that is tagged `{os}-{sdk}_{runtime}`, as Oryx tags .NET, and
    /// labelled [`LABEL_DOTNET_SDK_VERSION`] and [`LABEL_DOTNET_RUNTIME_VERSION`]; its
    /// `org.oryx.version` label and `org.oryx.sdk.version` annotation name the SDK version
    /// alone, the version [`Catalogue::default_version`] reads and resolving matches. With
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
        version: impl Into<TagVersion>,
        file: &Path,
        make_default: bool,
        reporter: &dyn Reporter,
    ) -> Result<Published, SdkError> {
        self.publish_created(platform, version, file, make_default, None, reporter)
            .await
    }

    /// [`Catalogue::publish`], with the image's creation time given by the caller: for a
    /// reproducible build, the time `SOURCE_DATE_EPOCH` names (the library reads no
    /// environment: the caller reads that variable, as the CLI does). `None`, or a time RFC
    /// 3339 cannot write (before 1970, after 9999), is the file's modification time, as
    /// [`Catalogue::publish`] uses.
    pub async fn publish_created(
        &self,
        platform: &str,
        version: impl Into<TagVersion>,
        file: &Path,
        make_default: bool,
        created_at: Option<SystemTime>,
        reporter: &dyn Reporter,
    ) -> Result<Published, SdkError> {
        let tag_version = version.into();
        let TagVersion { version, runtime } = &tag_version;
        let os = &self.settings.os;
        let repo = self.repository(platform)?;
        let reference = Reference::from(repo)
            .with_tag(&format!("{os}-{tag_version}"))
            .map_err(crate::error::Error::from)?;
        let mut labels = BTreeMap::from([
            (LABEL_VERSION.to_string(), version.to_string()),
            ("org.oryx.platform".to_string(), platform.to_string()),
            ("org.oryx.os-flavor".to_string(), os.clone()),
        ]);
        if let Some(runtime) = runtime {
            // What Oryx's .NET client reads to map a runtime to the SDK that ships it.
            labels.insert(LABEL_DOTNET_SDK_VERSION.to_string(), version.to_string());
            labels.insert(
                LABEL_DOTNET_RUNTIME_VERSION.to_string(),
                runtime.to_string(),
            );
        }
        let annotations = BTreeMap::from([
            (ANNOTATION_VERSION.to_string(), version.to_string()),
            ("org.oryx.sdk.platform".to_string(), platform.to_string()),
            ("org.oryx.sdk.os-flavor".to_string(), os.clone()),
            (
                "org.opencontainers.image.created".to_string(),
                created(file, created_at),
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

/// When the SDK was made, as RFC 3339 in UTC (seconds): `given` when the caller gave it
/// (`SOURCE_DATE_EPOCH`, the reproducible-builds convention), else the tarball's modification
/// time, else now. Not the time of publishing: the same file published again (a retried CI
/// job) then gives the same manifest, so the tag does not move and no client downloads the
/// SDK again. A time RFC 3339 cannot write (before 1970, as a file unpacked from an old
/// archive may carry, or after year 9999) is passed over for the next.
fn created(file: &Path, given: Option<SystemTime>) -> String {
    let modified = std::fs::metadata(file).and_then(|m| m.modified()).ok();
    [given, modified, Some(SystemTime::now())]
        .into_iter()
        .flatten()
        .find_map(rfc3339)
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".to_string())
}

/// `when` as RFC 3339, if humantime can write it: it panics on a time before 1970 and fails
/// (a panic in `to_string`) from year 10000 on.
fn rfc3339(when: SystemTime) -> Option<String> {
    /// 10000-01-01T00:00:00Z.
    const YEAR_10000: u64 = 253_402_300_800;
    let secs = when.duration_since(SystemTime::UNIX_EPOCH).ok()?.as_secs();
    (secs < YEAR_10000).then(|| humantime::format_rfc3339_seconds(when).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn file_modified(when: SystemTime) -> tempfile::NamedTempFile {
        let file = tempfile::NamedTempFile::new().unwrap();
        file.as_file().set_modified(when).unwrap();
        file
    }

    #[test]
    fn created_is_the_time_given_else_the_file_time_and_never_the_environment() {
        // The library reads no environment: a program embedding it decides what its own
        // environment means. (No other test of this binary reads this variable.)
        std::env::set_var("SOURCE_DATE_EPOCH", "1000000000");
        let file = file_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000));
        assert_eq!(created(file.path(), None), "2023-11-14T22:13:20Z");
        let given = SystemTime::UNIX_EPOCH + Duration::from_secs(1_600_000_000);
        assert_eq!(created(file.path(), Some(given)), "2020-09-13T12:26:40Z");
        assert_eq!(
            created(
                file.path(),
                Some(SystemTime::UNIX_EPOCH - Duration::from_secs(1))
            ),
            "2023-11-14T22:13:20Z"
        );
    }

    #[test]
    fn a_file_time_rfc_3339_cannot_write_is_passed_over_not_a_panic() {
        let day = Duration::from_secs(86_400);
        for when in [
            SystemTime::UNIX_EPOCH - day,
            SystemTime::UNIX_EPOCH + Duration::from_secs(253_402_300_800) + day,
        ] {
            let file = file_modified(when);
            let text = created(file.path(), None);
            assert!(text.len() == 20 && text.ends_with('Z'), "{text}");
        }
        // File systems clamp a time that far ahead (ext4: 2446), so the year-10000 limit is
        // checked on its own.
        let year_10000 = SystemTime::UNIX_EPOCH + Duration::from_secs(253_402_300_800);
        assert_eq!(rfc3339(year_10000), None);
        assert_eq!(
            rfc3339(year_10000 - Duration::from_secs(1)).as_deref(),
            Some("9999-12-31T23:59:59Z")
        );
    }
}
