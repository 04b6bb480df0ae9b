//! Choosing what `sdk mirror` copies, and where each image goes: the repository path and
//! tag stay as they are, so a catalogue pointed at the mirror (with the prefix, if any, put
//! before its own) finds the same versions and default.

use std::path::PathBuf;
use std::str::FromStr;

use crate::copy::ImageRef;
use crate::error::Error;
use crate::reference::{Reference, Repository};
use crate::sdk::catalogue::{tag_of, Catalogue, Wanted};
use crate::sdk::error::SdkError;
use crate::sdk::version::VersionSpec;

/// Where `sdk mirror` copies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MirrorTarget {
    /// A registry, `[http://|https://]HOST[/PREFIX]`: `mcr.microsoft.com/oryx/python-sdk`
    /// goes to `HOST/PREFIX/oryx/python-sdk`.
    Registry {
        /// The registry host (and port).
        host: String,
        /// A path put before every repository path (empty for none).
        prefix: String,
        /// Whether the URL said `http://`.
        plain_http: bool,
    },
    /// A folder of OCI layouts, `oci:DIR`, one per repository: `DIR/oryx/python-sdk`, with
    /// the tags as names.
    Layout(PathBuf),
}

impl FromStr for MirrorTarget {
    type Err = SdkError;

    fn from_str(text: &str) -> Result<MirrorTarget, SdkError> {
        if let Some(dir) = text.strip_prefix("oci:") {
            if dir.is_empty() {
                return Err(SdkError::InvalidSetting("--to oci: names no folder".into()));
            }
            return Ok(MirrorTarget::Layout(PathBuf::from(dir)));
        }
        let plain_http = text.starts_with("http://");
        let rest = text
            .strip_prefix("http://")
            .or_else(|| text.strip_prefix("https://"))
            .unwrap_or(text)
            .trim_end_matches('/');
        let (host, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let target = MirrorTarget::Registry {
            host: host.to_string(),
            prefix: prefix.to_string(),
            plain_http,
        };
        // The host and prefix must form repository names.
        let probe: Reference = "localhost/probe:t".parse().map_err(Error::from)?;
        target.image_for(&probe).map_err(|_| {
            SdkError::InvalidSetting(format!(
                "--to {text}: expected REGISTRY[/PREFIX] (e.g. http://localhost:5000/mirror) or oci:DIR"
            ))
        })?;
        Ok(target)
    }
}

impl MirrorTarget {
    /// Whether the target registry is to be reached over plain HTTP.
    pub fn plain_http(&self) -> bool {
        self.plain_http_host().is_some()
    }

    /// The target registry's host; `None` for layouts.
    pub fn registry_host(&self) -> Option<&str> {
        match self {
            MirrorTarget::Registry { host, .. } => Some(host),
            MirrorTarget::Layout(_) => None,
        }
    }

    /// The target registry's host, when it is to be reached over plain HTTP (`http://…`).
    pub fn plain_http_host(&self) -> Option<&str> {
        match self {
            MirrorTarget::Registry {
                host,
                plain_http: true,
                ..
            } => Some(host),
            _ => None,
        }
    }

    /// Where the image `source` goes: its repository path under the target, same tag.
    pub fn image_for(&self, source: &Reference) -> Result<ImageRef, SdkError> {
        let name = source.tag().map(str::to_string);
        match self {
            MirrorTarget::Layout(dir) => Ok(ImageRef::Layout {
                dir: dir.join(source.path()),
                name,
            }),
            MirrorTarget::Registry { host, prefix, .. } => {
                let path = if prefix.is_empty() {
                    source.path().to_string()
                } else {
                    format!("{prefix}/{}", source.path())
                };
                let repo = Repository::on_registry(host, &path).map_err(Error::from)?;
                let mut reference = Reference::from(repo);
                if let Some(tag) = &name {
                    reference = reference.with_tag(tag).map_err(Error::from)?;
                }
                Ok(ImageRef::Registry(reference))
            }
        }
    }
}

impl Catalogue {
    /// The same catalogue for OS flavour `os`.
    pub fn with_os(&self, os: &str) -> Catalogue {
        let mut settings = self.settings.clone();
        settings.os = os.to_string();
        Catalogue {
            client: self.client.clone(),
            settings,
            trusted_root: self.trusted_root.clone(),
            trusted_cache: self.trusted_cache.clone(),
            warned_without_locks: self.warned_without_locks.clone(),
            warned_tarball_folders: self.warned_tarball_folders.clone(),
        }
    }

    /// The images `sdk mirror` copies for `platform` in this catalogue's flavour: every
    /// version matching one of `specs` (all versions when there is none; `latest` and
    /// `default` pick one each; pre-releases only with `pre` or a spec naming one), then the
    /// `{os}-default` tag when the registry has it. A spec matching nothing is an error, and
    /// so, without specs, is a flavour with no version to copy ([`SdkError::NoMatch`] for
    /// the spec `*`).
    pub async fn mirror_set(
        &self,
        platform: &str,
        specs: &[VersionSpec],
        pre: bool,
    ) -> Result<Vec<Reference>, SdkError> {
        // The catalogue as its registry has it now, not as a read mirror (which may be the
        // very copy being refreshed) last saw it.
        let upstream = Catalogue {
            client: self.client.without_mirrors(),
            settings: self.settings.clone(),
            trusted_root: self.trusted_root.clone(),
            trusted_cache: self.trusted_cache.clone(),
            warned_without_locks: self.warned_without_locks.clone(),
            warned_tarball_folders: self.warned_tarball_folders.clone(),
        };
        upstream.mirror_set_here(platform, specs, pre).await
    }

    async fn mirror_set_here(
        &self,
        platform: &str,
        specs: &[VersionSpec],
        pre: bool,
    ) -> Result<Vec<Reference>, SdkError> {
        let list = self.versions(platform).await?;
        let mut tags: Vec<String> = Vec::new();
        let mut add = |tag: &str| {
            if !tags.iter().any(|t| t == tag) {
                tags.push(tag.to_string());
            }
        };
        if specs.is_empty() {
            list.versions
                .iter()
                .filter(|t| pre || !t.is_prerelease())
                .for_each(|t| add(&t.tag));
        }
        for spec in specs {
            match spec {
                VersionSpec::Default | VersionSpec::Latest => {
                    add(&self.resolve(platform, spec, pre).await?.tag);
                }
                VersionSpec::Constraint(_) => {
                    let allow_pre = pre || spec.names_prerelease();
                    let matching: Vec<&str> = list
                        .versions
                        .iter()
                        .filter(|t| allow_pre || !t.is_prerelease())
                        .filter(|t| spec.matches_tag(t))
                        .map(|t| t.tag.as_str())
                        .collect();
                    if matching.is_empty() {
                        // Resolving gives the helpful "no match, nearest are…" error.
                        add(&self.resolve(platform, spec, pre).await?.tag);
                    }
                    matching.into_iter().for_each(&mut add);
                }
            }
        }
        let default_tag = format!("{}-default", self.settings.os);
        let repo = self.repository(platform)?;
        let default_ref = Reference::from(repo.clone())
            .with_tag(&default_tag)
            .map_err(Error::from)?;
        match self.client.head_manifest(&default_ref).await {
            Ok(_) => {
                // The version the default names goes too, whatever the specs: a copy whose
                // default names a version it lacks cannot `install default`.
                match self.default_tag_version(platform).await {
                    Ok(default) => {
                        let named = list
                            .versions
                            .iter()
                            .find(|t| t.version.cmp_precedence(&default.version).is_eq())
                            .and_then(|t| {
                                let wanted = Wanted::Default(default.runtime.as_ref());
                                tag_of(list.versions.iter(), &t.version, wanted, pre)
                            });
                        if let Some(named) = named {
                            add(&named.tag);
                        }
                    }
                    // Unreadable upstream too: the tag is copied as it is.
                    Err(SdkError::DefaultUnlabelled { .. }) => {}
                    Err(e) => return Err(e),
                }
                add(&default_tag);
            }
            Err(e) if e.status() == Some(404) => {}
            Err(e) => return Err(e.into()),
        }
        if tags.is_empty() {
            // Every version was asked for, and there is none to copy: a flavour the
            // repository does not have (a typo in --os), or only pre-releases without
            // `pre`. A mirror of nothing is no success, as a spec matching nothing is not:
            // the listing's own error says which, and names the flavours there are.
            match self.resolve(platform, &VersionSpec::Latest, pre).await {
                Ok(found) => tags.push(found.tag),
                Err(SdkError::NoMatch(mut no_match)) => {
                    no_match.spec = "*".into();
                    return Err(SdkError::NoMatch(no_match));
                }
                Err(e) => return Err(e),
            }
        }
        tags.iter()
            .map(|tag| {
                Reference::from(repo.clone())
                    .with_tag(tag)
                    .map_err(|e| SdkError::from(Error::from(e)))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_keep_the_repository_path_and_tag() {
        let source: Reference = "mcr.microsoft.com/oryx/python-sdk:bookworm-3.11.4"
            .parse()
            .unwrap();
        let t: MirrorTarget = "http://127.0.0.1:5001".parse().unwrap();
        assert!(t.plain_http());
        assert_eq!(
            t.image_for(&source).unwrap().to_string(),
            "127.0.0.1:5001/oryx/python-sdk:bookworm-3.11.4"
        );
        let t: MirrorTarget = "mirror/cache/".parse().unwrap();
        assert_eq!(
            t.image_for(&source).unwrap().to_string(),
            "mirror/cache/oryx/python-sdk:bookworm-3.11.4"
        );
        let t: MirrorTarget = "oci:/srv/sdks".parse().unwrap();
        assert_eq!(
            t.image_for(&source).unwrap().to_string(),
            "oci:/srv/sdks/oryx/python-sdk:bookworm-3.11.4"
        );
        for bad in ["", "oci:", "http://host/UPPER", "a b"] {
            assert!(bad.parse::<MirrorTarget>().is_err(), "{bad}");
        }
    }
}
