//! Listing versions, finding the default and resolving a version spec.

use crate::error::Error;
use crate::reference::{Reference, Repository};
use crate::registry::Client;
use crate::sdk::error::{NoMatch, SdkError};
use crate::sdk::settings::CatalogueSettings;
use crate::sdk::version::{
    highest_stable, parse_tag, tag_flavour, SdkTag, SdkVersion, TagParse, TagVersion, VersionSpec,
};
use crate::spec::Manifest;

/// Config label naming an image's SDK version (early ACR layout).
pub const LABEL_VERSION: &str = "org.oryx.version";
/// Manifest annotation naming the default version (publishing script).
pub const ANNOTATION_DEFAULT_VERSION: &str = "org.oryx.sdk.default-version";
/// Manifest annotation naming an image's SDK version (publishing script).
pub const ANNOTATION_VERSION: &str = "org.oryx.sdk.version";
/// Config label naming a .NET image's SDK version, as Oryx's .NET images carry it.
pub const LABEL_DOTNET_SDK_VERSION: &str = "org.oryx.dotnet-sdk-version";
/// Config label naming the runtime a .NET image's SDK ships.
pub const LABEL_DOTNET_RUNTIME_VERSION: &str = "org.oryx.dotnet-runtime-version";

/// The SDK catalogue of one registry layout.
#[derive(Debug, Clone)]
pub struct Catalogue {
    pub(crate) client: Client,
    pub(crate) settings: CatalogueSettings,
    /// The install root, resolved, once it was found trustworthy: it stays so (only its
    /// owner or root could change that), so each command checks it once.
    pub(crate) trusted_root: std::sync::Arc<std::sync::OnceLock<std::path::PathBuf>>,
    /// The cache folder, once checked: `None` when another user could change it,
    /// and the catalogue goes without it (see [`Catalogue::trusted_cache`]).
    pub(crate) trusted_cache: std::sync::Arc<std::sync::OnceLock<Option<std::path::PathBuf>>>,
    /// Set once an install or uninstall went ahead without a lock the file system could not
    /// take, so that a command warns of it once, not at every SDK.
    pub(crate) warned_without_locks: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// The folders of tarballs in the cache that installs found untrusted and warned of: each
    /// install of a repository checks its folder, and an `sdk sync` of many SDKs of one
    /// repository is to say so once, not once per SDK. Per catalogue, as the warning about
    /// locks, rather than a static: a command has one, and a program embedding the library
    /// gets its warnings from each catalogue it makes.
    pub(crate) warned_tarball_folders:
        std::sync::Arc<std::sync::Mutex<std::collections::HashSet<std::path::PathBuf>>>,
}

/// The versions of a platform for one OS flavour.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct VersionList {
    /// Version tags, ascending by version precedence.
    pub versions: Vec<SdkTag>,
    /// Tags of this flavour that are not versions, with the reason.
    pub skipped: Vec<(String, String)>,
    /// The other OS flavours the repository has tags for, sorted: where to look when a
    /// mistyped `os` leaves this list empty.
    pub other_flavours: Vec<String>,
}

impl VersionList {
    /// Just the versions, ascending.
    pub fn versions(&self) -> Vec<SdkVersion> {
        self.versions.iter().map(|t| t.version.clone()).collect()
    }
}

/// A version picked from the catalogue, and the image that holds it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Resolved {
    /// The platform, e.g. `python`.
    pub platform: String,
    /// The OS flavour.
    pub os: String,
    /// The SDK version.
    pub version: SdkVersion,
    /// The tag of its image.
    pub tag: String,
    /// The full image reference.
    pub reference: Reference,
    /// The manifest that resolving fetched, when it had to (a version named in full is
    /// looked up by its tag): a pull uses it instead of fetching it again. Not part of the
    /// answer, so never serialised.
    #[serde(skip)]
    fetched: Option<FetchedManifest>,
}

/// A manifest, and the reference it was fetched for: the public fields of [`Resolved`] may
/// be changed after resolving, and a manifest fetched for another reference is no answer
/// for the new one.
#[derive(Clone)]
struct FetchedManifest {
    reference: Reference,
    manifest: Manifest,
}

impl std::fmt::Debug for FetchedManifest {
    // The digest says which manifest it is; its bytes would only drown the rest.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}", self.reference, self.manifest.digest)
    }
}

impl Resolved {
    /// The resolution of `platform` to `version` in the image `reference` (its tag `tag`),
    /// for a program that names the image itself, from its own configuration, instead of
    /// asking [`Catalogue::resolve`].
    pub fn new(
        platform: impl Into<String>,
        os: impl Into<String>,
        version: SdkVersion,
        tag: impl Into<String>,
        reference: Reference,
    ) -> Resolved {
        Resolved {
            platform: platform.into(),
            os: os.into(),
            version,
            tag: tag.into(),
            reference,
            fetched: None,
        }
    }

    /// The runtime version its tag names when it is a .NET tag (`{os}-8.0.100_8.0.0`), else
    /// `None`: with [`Resolved::version`] it is the spec (`8.0.100_8.0.0`) that finds this
    /// image again, where the SDK version alone finds its highest runtime's.
    pub fn runtime(&self) -> Option<SdkVersion> {
        match parse_tag(&self.tag, &self.os) {
            TagParse::Version(tag) => tag.runtime,
            _ => None,
        }
    }

    /// The top manifest of [`Resolved::reference`] as resolving fetched it, if it did and
    /// the reference is still the one it was fetched for.
    pub(crate) fn fetched_manifest(&self) -> Option<&Manifest> {
        self.fetched
            .as_ref()
            .filter(|fetched| fetched.reference == self.reference)
            .map(|fetched| &fetched.manifest)
    }

    /// This resolution without the manifest it fetched, so that a pull asks for it again.
    pub(crate) fn without_fetched_manifest(&self) -> Resolved {
        Resolved {
            fetched: None,
            ..self.clone()
        }
    }
}

impl Catalogue {
    /// A catalogue over `client` with `settings`.
    ///
    /// The client decides how the registry is reached: for a registry URL of `http://` that
    /// is not loopback, build it with [`ClientBuilder::registry_options`] (plain HTTP for
    /// [`CatalogueSettings::registry_authority`]) or [`ClientBuilder::plain_http`]; a client
    /// that would use HTTPS there is refused ([`SdkError::InvalidSetting`]).
    ///
    /// [`ClientBuilder::registry_options`]: crate::ClientBuilder::registry_options
    /// [`ClientBuilder::plain_http`]: crate::ClientBuilder::plain_http
    pub fn new(client: Client, settings: CatalogueSettings) -> Result<Catalogue, SdkError> {
        if settings.registry_host().is_empty() {
            return Err(SdkError::InvalidSetting("the registry URL is empty".into()));
        }
        // Refused rather than tried: HTTPS to a plain-HTTP registry fails at every request
        // with a TLS error that does not say the URL's scheme was not followed.
        if settings.wants_plain_http() {
            let authority = settings.registry_authority();
            let uses_https = Repository::parse(&format!("{authority}/ocisdk"))
                .ok()
                .and_then(|repo| client.endpoints(&repo).ok())
                .is_some_and(|e| e.ping().scheme() == "https");
            if uses_https {
                return Err(SdkError::InvalidSetting(format!(
                    "the registry URL {} asks for plain HTTP, but the client would use HTTPS \
                     for {authority}: build it with registry_options(\"{authority}\", \
                     RegistryOptions {{ plain_http: true, .. }})",
                    settings.registry
                )));
            }
        }
        Ok(Catalogue {
            client,
            settings,
            trusted_root: Default::default(),
            trusted_cache: Default::default(),
            warned_without_locks: Default::default(),
            warned_tarball_folders: Default::default(),
        })
    }

    /// The settings in force.
    pub fn settings(&self) -> &CatalogueSettings {
        &self.settings
    }

    /// The client used.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The repository holding a platform's SDKs.
    pub fn repository(&self, platform: &str) -> Result<Repository, SdkError> {
        let text = format!(
            "{}/{}",
            self.settings.registry_host(),
            self.settings.repository_path(platform)
        );
        Repository::parse(&text).map_err(|e| {
            SdkError::InvalidSetting(format!(
                "registry, prefix and template give the repository \"{text}\", which is not valid: {e}"
            ))
        })
    }

    fn reference(&self, platform: &str, tag: &str) -> Result<Reference, SdkError> {
        let repo = self.repository(platform)?;
        Reference::from(repo)
            .with_tag(tag)
            .map_err(|e| SdkError::from(Error::from(e)))
    }

    /// Lists the versions of `platform` for the configured OS flavour, ascending.
    pub async fn versions(&self, platform: &str) -> Result<VersionList, SdkError> {
        let repo = self.repository(platform)?;
        let tags = self.client.tags(&repo).await?;
        let mut list = VersionList::default();
        let mut others = std::collections::BTreeSet::new();
        for tag in tags {
            match parse_tag(&tag, &self.settings.os) {
                TagParse::Version(t) => list.versions.push(t),
                TagParse::Unparseable(reason) => list.skipped.push((tag, reason.to_string())),
                TagParse::OtherFlavour => {
                    others.extend(tag_flavour(&tag).map(str::to_owned));
                }
                TagParse::Special(_) => {}
            }
        }
        list.versions.sort_by(|a, b| a.version.cmp(&b.version));
        list.other_flavours = others.into_iter().collect();
        Ok(list)
    }

    /// The default version: the `{os}-default` tag's config label `org.oryx.version`, else
    /// its manifest annotation `org.oryx.sdk.default-version`, else `org.oryx.sdk.version`.
    /// No default tag is an error, never a silent guess; no repository at all is the error
    /// [`Catalogue::versions`] gives for it (the tag listing's 404).
    pub async fn default_version(&self, platform: &str) -> Result<SdkVersion, SdkError> {
        Ok(self.default_tag_version(platform).await?.version)
    }

    /// [`Catalogue::default_version`], with the runtime the default image is labelled with
    /// ([`LABEL_DOTNET_RUNTIME_VERSION`]), which says which of the tags of a .NET SDK version
    /// listed with several runtimes the default is. A runtime label that is no version is
    /// passed over: the version label alone is what the default names.
    pub(crate) async fn default_tag_version(&self, platform: &str) -> Result<TagVersion, SdkError> {
        let reference = self.reference(platform, &format!("{}-default", self.settings.os))?;
        let default_tag = format!("{}-default", self.settings.os);
        let manifest = match self.client.resolve_manifest(&reference, None).await {
            Ok(m) => m,
            Err(e) if is_own_404(&e, &default_tag) => {
                self.check_repository_exists(reference.repository()).await?;
                return Err(SdkError::NoDefault {
                    repository: reference.repository().to_string(),
                    platform: platform.into(),
                    os: self.settings.os.clone(),
                });
            }
            Err(e) => return Err(e.into()),
        };
        let config = self
            .client
            .config(reference.repository(), &manifest)
            .await?;
        let annotations = manifest.annotations();
        let named = config
            .labels
            .get(LABEL_VERSION)
            .or_else(|| annotations.get(ANNOTATION_DEFAULT_VERSION))
            .or_else(|| annotations.get(ANNOTATION_VERSION))
            .ok_or_else(|| SdkError::DefaultUnlabelled {
                repository: reference.repository().to_string(),
                os: self.settings.os.clone(),
            })?;
        let runtime = config
            .labels
            .get(LABEL_DOTNET_RUNTIME_VERSION)
            .and_then(|runtime| SdkVersion::parse(runtime).ok());
        Ok(TagVersion {
            version: SdkVersion::parse(named)?,
            runtime,
        })
    }

    /// Fails with the listing's 404 when `repository` does not exist, so that a missing
    /// default tag is told apart from a missing repository, as listing the versions tells
    /// it: registries answer both with a 404 for the tag (some with MANIFEST_UNKNOWN for
    /// either). One page is enough; any other failure of the listing (a registry that
    /// refuses listing but serves tags) leaves the answer to the caller.
    async fn check_repository_exists(&self, repository: &Repository) -> Result<(), SdkError> {
        let first_page = self
            .client
            .tags_pages(repository, Some(1), |_| std::ops::ControlFlow::Break(()))
            .await;
        match first_page {
            Err(e) if e.status() == Some(404) => Err(e.into()),
            _ => Ok(()),
        }
    }

    /// Picks the version `spec` asks for. Pre-releases are candidates only when the spec
    /// names one or `allow_pre` is set. `default` reads the default tag; when
    /// `default_or_latest` finds no default tag it takes the highest stable version.
    ///
    /// A spec naming a version in full (`3.11.10`) is looked up by its tag
    /// (`{os}-3.11.10`): one manifest GET, which a pull or install of the result then
    /// reuses, instead of listing every tag. Other specs, and a full version whose tag is
    /// missing or refused (401, 403), list the tags.
    pub async fn resolve(
        &self,
        platform: &str,
        spec: &VersionSpec,
        allow_pre: bool,
    ) -> Result<Resolved, SdkError> {
        self.resolve_with(platform, spec, allow_pre, false).await
    }

    /// Like [`Catalogue::resolve`]; with `or_latest`, a missing default tag falls back to the
    /// highest stable version.
    pub async fn resolve_with(
        &self,
        platform: &str,
        spec: &VersionSpec,
        allow_pre: bool,
        or_latest: bool,
    ) -> Result<Resolved, SdkError> {
        if let Some(resolved) = self.resolve_by_tag(platform, spec).await? {
            return Ok(resolved);
        }
        let list = self.versions(platform).await?;
        let default = match spec {
            VersionSpec::Default => self.default_for(platform, or_latest).await?,
            _ => None,
        };
        self.pick(platform, &list, spec, allow_pre, default.as_ref())
    }

    /// Resolves several specs of one platform with one tag listing (and at most one read of
    /// the default tag). Each spec gets its own result. A single spec naming a version in
    /// full is looked up by its tag first, as [`Catalogue::resolve`] does.
    pub async fn resolve_all(
        &self,
        platform: &str,
        specs: &[VersionSpec],
        allow_pre: bool,
    ) -> Result<Vec<Result<Resolved, SdkError>>, SdkError> {
        // Several specs share one listing instead: looking each up by its tag would make
        // one round trip after another before any install starts, where the listing's pages
        // are paid once and the installs fetch their manifests `--jobs` at a time.
        if let [spec] = specs {
            if let Some(resolved) = self.resolve_by_tag(platform, spec).await? {
                return Ok(vec![Ok(resolved)]);
            }
        }
        let list = self.versions(platform).await?;
        let default = if specs.iter().any(|s| matches!(s, VersionSpec::Default)) {
            self.default_for(platform, false).await?
        } else {
            None
        };
        Ok(specs
            .iter()
            .map(|spec| self.pick(platform, &list, spec, allow_pre, default.as_ref()))
            .collect())
    }

    /// Resolves a spec that names a version in full (`3.11.10`) by fetching the manifest of
    /// its tag `{os}-3.11.10` (for .NET's `8.0.100_8.0.0`, `{os}-8.0.100_8.0.0`) alone, instead of listing every tag (many pages, each a round
    /// trip, on a large registry): such a spec picks that version whenever the registry has
    /// it ([`VersionSpec::select`]). The manifest is kept for the pull that follows.
    ///
    /// `None` for any other spec, and when the tag itself is missing or refused: the listing
    /// then decides as for any spec (a four-part `3.11.10.2`, a .NET `{sdk}_{runtime}` tag,
    /// the nearest versions when nothing matches, the refusal of a repository that cannot
    /// be read).
    async fn resolve_by_tag(
        &self,
        platform: &str,
        spec: &VersionSpec,
    ) -> Result<Option<Resolved>, SdkError> {
        let Some(numbers) = spec.full_version() else {
            return Ok(None);
        };
        let numbers: Vec<String> = numbers.iter().map(u64::to_string).collect();
        let version = SdkVersion::parse(&numbers.join("."))?;
        let tag = match spec.runtime() {
            Some(runtime) => format!("{}-{version}_{runtime}", self.settings.os),
            None => format!("{}-{version}", self.settings.os),
        };
        // A flavour that makes no valid tag has no versions, and settings that make no valid
        // repository are refused: the listing says either, as before.
        let Ok(reference) = self.reference(platform, &tag) else {
            return Ok(None);
        };
        let manifest = match self.client.manifest(&reference).await {
            Ok(manifest) => manifest,
            // No such tag, or no such repository, which the listing reports with its hints;
            // or a refusal, which the listing meets too and reports as it always did.
            Err(e) if is_own_404(&e, &tag) || is_own_refusal(&e, &tag) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let fetched = FetchedManifest {
            reference: reference.clone(),
            manifest,
        };
        Ok(Some(Resolved {
            fetched: Some(fetched),
            ..Resolved::new(platform, self.settings.os.clone(), version, tag, reference)
        }))
    }

    /// The default version, or `None` (meaning: highest stable) when there is no default tag
    /// and `or_latest` allows that.
    async fn default_for(
        &self,
        platform: &str,
        or_latest: bool,
    ) -> Result<Option<TagVersion>, SdkError> {
        match self.default_tag_version(platform).await {
            Ok(v) => Ok(Some(v)),
            Err(SdkError::NoDefault { .. }) if or_latest => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Picks from a listing; `default` is the default version when `spec` is `default`
    /// (`None` then means the highest stable one).
    fn pick(
        &self,
        platform: &str,
        list: &VersionList,
        spec: &VersionSpec,
        allow_pre: bool,
        default: Option<&TagVersion>,
    ) -> Result<Resolved, SdkError> {
        // A .NET spec names the runtime too: only tags of that runtime are candidates.
        let tags: Vec<&SdkTag> = list
            .versions
            .iter()
            .filter(|t| spec.runtime_matches(t))
            .collect();
        let versions: Vec<SdkVersion> = tags.iter().map(|t| t.version.clone()).collect();
        let chosen = match (spec, default) {
            (VersionSpec::Default, Some(default)) => versions
                .iter()
                .find(|c| c.cmp_precedence(&default.version).is_eq())
                .cloned(),
            (VersionSpec::Default, None) => highest_stable(&versions).cloned(),
            _ => spec.select(&versions, allow_pre).cloned(),
        };
        let Some(version) = chosen else {
            let prerelease = if allow_pre {
                None
            } else {
                spec.select(&versions, true).map(|v| v.to_string())
            };
            return Err(SdkError::NoMatch(Box::new(NoMatch {
                repository: self.repository(platform)?.to_string(),
                platform: platform.into(),
                os: self.settings.os.clone(),
                spec: spec.to_string(),
                nearest: self.nearest(list, spec),
                prerelease,
                other_flavours: list.other_flavours.clone(),
            })));
        };
        let wanted = match (spec, default) {
            (VersionSpec::Default, Some(default)) => Wanted::Default(default.runtime.as_ref()),
            _ => Wanted::Highest,
        };
        let pre = allow_pre || spec.names_prerelease();
        let tag = tag_of(tags.iter().copied(), &version, wanted, pre)
            .map(|t| t.tag.clone())
            .unwrap_or_else(|| format!("{}-{}", self.settings.os, version));
        let reference = self.reference(platform, &tag)?;
        Ok(Resolved::new(
            platform,
            self.settings.os.clone(),
            version,
            tag,
            reference,
        ))
    }

    /// Up to three versions of `list` nearest to `spec`, for a spec nothing matches. For a
    /// .NET spec, which names a runtime, each is written as its tags are (`8.0.100_8.0.0`,
    /// every runtime of it), since the SDK version alone would look like a match.
    fn nearest(&self, list: &VersionList, spec: &VersionSpec) -> Vec<String> {
        let versions = list.versions();
        let mut nearest: Vec<&SdkVersion> = spec.nearest(&versions, 3);
        if spec.runtime().is_none() {
            return nearest.into_iter().map(|v| v.to_string()).collect();
        }
        nearest.dedup();
        let prefix = format!("{}-", self.settings.os);
        nearest
            .into_iter()
            .flat_map(|v| list.versions.iter().filter(move |t| &t.version == v))
            .map(|t| t.tag.strip_prefix(&prefix).unwrap_or(&t.tag).to_owned())
            .collect()
    }
}

/// Which of the tags of one SDK version [`tag_of`] takes.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Wanted<'a> {
    /// The highest runtime's.
    Highest,
    /// The default image's: the tag of the runtime it is labelled with, or of none when it
    /// is labelled with none (a tag `{os}-8.0.100` beside `{os}-8.0.100_8.0.1`); the highest
    /// runtime's when that tag is not listed.
    Default(Option<&'a SdkVersion>),
}

/// The tag of `version` among `tags`, as `wanted` says. .NET may list one SDK version with
/// several runtimes, and the order the registry lists them in (CNCF distribution's is the
/// order of its folder entries) must not decide which is installed. Without `allow_pre`, a
/// pre-release runtime is the highest only when the version has no other: it is no more
/// asked for than a pre-release version is.
pub(crate) fn tag_of<'a>(
    tags: impl Iterator<Item = &'a SdkTag>,
    version: &SdkVersion,
    wanted: Wanted<'_>,
    allow_pre: bool,
) -> Option<&'a SdkTag> {
    let of_version: Vec<&SdkTag> = tags.filter(|t| &t.version == version).collect();
    let is_wanted = |t: &&&SdkTag| match (wanted, t.runtime.as_ref()) {
        (Wanted::Highest, _) => false,
        (Wanted::Default(None), listed) => listed.is_none(),
        (Wanted::Default(Some(r)), listed) => listed.is_some_and(|l| l.cmp_precedence(r).is_eq()),
    };
    let by_runtime = |a: &&&SdkTag, b: &&&SdkTag| a.runtime.cmp(&b.runtime);
    let stable_runtime = |t: &&&SdkTag| t.runtime.as_ref().is_none_or(|r| !r.is_prerelease());
    of_version
        .iter()
        .find(is_wanted)
        .or_else(|| {
            let stable = of_version.iter().filter(|t| allow_pre || stable_runtime(t));
            stable.max_by(by_runtime)
        })
        .or_else(|| of_version.iter().max_by(by_runtime))
        .copied()
}

/// Whether `e` is the 404 of the tag `tag` itself: a missing child of the index it names,
/// or a missing blob, is another failure.
fn is_own_404(e: &Error, tag: &str) -> bool {
    e.status() == Some(404) && is_about(e, tag)
}

/// Whether `e` is the registry refusing the request for the tag `tag` itself (401 or 403).
/// Docker Hub answers so an anonymous pull from a repository that does not exist, as from
/// a private one: like a 404, that is for the listing to report, with the message, place
/// and hint a spec that is no full version gets. (A token server refusing the credentials
/// is no such answer: asking it again would only be refused again.)
fn is_own_refusal(e: &Error, tag: &str) -> bool {
    matches!(e.status(), Some(401 | 403)) && is_about(e, tag)
}

fn is_about(e: &Error, tag: &str) -> bool {
    e.location()
        .is_some_and(|at| at.reference.as_deref() == Some(tag))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use crate::transport::RegistryOptions;

    fn settings(registry: &str) -> CatalogueSettings {
        CatalogueSettings::new(registry, "/nonexistent/root", "/nonexistent/cache")
    }

    #[test]
    fn an_http_registry_url_needs_a_client_that_uses_plain_http_there() {
        let https = || Client::builder().build().unwrap();
        let err = Catalogue::new(https(), settings("http://registry.internal:5000")).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Usage);
        assert!(
            err.to_string()
                .contains("registry_options(\"registry.internal:5000\""),
            "{err}"
        );

        let plain_there = Client::builder()
            .registry_options(
                "registry.internal:5000",
                RegistryOptions {
                    plain_http: true,
                    ..RegistryOptions::default()
                },
            )
            .build()
            .unwrap();
        let plain_everywhere = Client::builder().plain_http(true).build().unwrap();
        for (client, registry) in [
            (plain_there, "http://registry.internal:5000/"),
            (plain_everywhere, "http://registry.internal:5000"),
            (https(), "http://localhost:5000"),
            (https(), "https://registry.internal:5000"),
            (https(), "registry.internal:5000"),
        ] {
            assert!(
                Catalogue::new(client, settings(registry)).is_ok(),
                "{registry}"
            );
        }
    }
}
