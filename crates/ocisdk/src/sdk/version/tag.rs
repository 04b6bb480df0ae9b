//! Registry tags: which name one SDK version for an OS flavour, which are special.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::{SdkVersion, VersionError};

/// The part of a tag after `{os}-`: a version (`3.12.4`), or .NET's SDK version and the
/// runtime it ships, `{sdk}_{runtime}` (`8.0.100_8.0.0`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagVersion {
    /// The version to sort and resolve by (for .NET, the SDK's).
    pub version: SdkVersion,
    /// The runtime version of the .NET form, else `None`.
    pub runtime: Option<SdkVersion>,
}

impl TagVersion {
    /// Parses `3.12.4` or `8.0.100_8.0.0`. Each side of the `_` must be a version of its
    /// own, and there is at most one `_`: `8.0.100_`, `_8.0.0` and `8.0.100_8.0.0_1` are
    /// refused.
    pub fn parse(text: &str) -> Result<Self, VersionError> {
        let Some((sdk, runtime)) = text.split_once('_') else {
            return Ok(Self {
                version: SdkVersion::parse(text)?,
                runtime: None,
            });
        };
        // Every refusal names the whole text and the form it missed: a `_` is .NET's or a typo.
        let invalid = |reason: String| VersionError::InvalidVersion {
            input: text.to_owned(),
            reason: format!(
                r#"{reason} (the .NET form is {{sdk}}_{{runtime}}, like "8.0.100_8.0.0")"#
            ),
        };
        if sdk.is_empty() {
            return Err(invalid(r#"no SDK version before "_""#.to_owned()));
        }
        if runtime.is_empty() {
            return Err(invalid(r#"no runtime version after "_""#.to_owned()));
        }
        if runtime.contains('_') {
            return Err(invalid(r#"more than one "_""#.to_owned()));
        }
        let side = |what: &str, part: &str| {
            SdkVersion::parse(part).map_err(|error| match error {
                VersionError::InvalidVersion { reason, .. }
                | VersionError::InvalidSpec { reason, .. } => {
                    invalid(format!("{what} {part:?}: {reason}"))
                }
            })
        };
        Ok(Self {
            version: side("SDK version", sdk)?,
            runtime: Some(side("runtime version", runtime)?),
        })
    }
}

impl fmt::Display for TagVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.runtime {
            Some(runtime) => write!(f, "{}_{runtime}", self.version),
            None => write!(f, "{}", self.version),
        }
    }
}

impl From<SdkVersion> for TagVersion {
    fn from(version: SdkVersion) -> Self {
        Self {
            version,
            runtime: None,
        }
    }
}

// No `From<&TagVersion>`: a second `From<&_>` would leave callers that pass
// `&text.parse()?` to `Catalogue::publish` with a type the compiler cannot infer.
impl From<&SdkVersion> for TagVersion {
    fn from(version: &SdkVersion) -> Self {
        version.clone().into()
    }
}

/// A registry tag that names one SDK version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SdkTag {
    /// The SDK version, the one to sort and resolve by (for .NET, the SDK's).
    pub version: SdkVersion,
    /// The runtime version of a .NET tag (`{os}-{sdk}_{runtime}`), else `None`.
    pub runtime: Option<SdkVersion>,
    /// The whole tag, as listed by the registry.
    pub tag: String,
}

impl SdkTag {
    /// Whether the image is a pre-release: its version is one, or its .NET runtime is
    /// (`8.0.100_8.0.1-rc.1`, a stable SDK version shipping a runtime's release candidate).
    pub fn is_prerelease(&self) -> bool {
        self.version.is_prerelease() || self.runtime.as_ref().is_some_and(|r| r.is_prerelease())
    }
}

/// A tag with a fixed meaning instead of a version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpecialTag {
    /// `{os}-default`: the version installed when none is asked for.
    Default,
    /// `{os}-catalog`: the image listing what the flavour offers.
    Catalog,
}

impl SpecialTag {
    fn from_tag_body(body: &str) -> Option<Self> {
        match body {
            "default" => Some(Self::Default),
            "catalog" => Some(Self::Catalog),
            _ => None,
        }
    }
}

/// How a registry tag relates to one OS flavour; see [`parse_tag`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagParse {
    /// `{os}-{version}` or `{os}-{sdk}_{runtime}`.
    Version(SdkTag),
    /// `{os}-default` or `{os}-catalog`.
    Special(SpecialTag),
    /// The tag belongs to another flavour.
    OtherFlavour,
    /// The tag starts with `{os}-` but the rest is not a version.
    Unparseable(VersionError),
}

/// Classifies `tag` for the OS flavour `os`.
///
/// Only tags starting with `{os}-` can belong to the flavour. Flavour names
/// may contain dashes, so when the rest is not a version but the text after
/// one of its later dashes is a version, `default` or `catalog`
/// (`bookworm-scm-3.1` for `bookworm`), the tag is taken as
/// [`TagParse::OtherFlavour`] (here `bookworm-scm`) rather than reported as
/// broken. Anything else after `{os}-` that is not a version is
/// [`TagParse::Unparseable`], so listings can warn about it. A pre-release
/// after a dash must start with a letter, so `alpine-3.20-3.12.4` is never
/// read as a version of `alpine`.
pub fn parse_tag(tag: &str, os: &str) -> TagParse {
    let Some(body) = tag.strip_prefix(os).and_then(|rest| rest.strip_prefix('-')) else {
        return TagParse::OtherFlavour;
    };
    if let Some(special) = SpecialTag::from_tag_body(body) {
        return TagParse::Special(special);
    }
    match TagVersion::parse(body) {
        Ok(TagVersion { version, runtime }) => TagParse::Version(SdkTag {
            version,
            runtime,
            tag: tag.to_owned(),
        }),
        Err(_) if belongs_to_longer_flavour(body) => TagParse::OtherFlavour,
        Err(error) => TagParse::Unparseable(error),
    }
}

/// The OS flavour `tag` belongs to: the text before the first dash that a version, `default`
/// or `catalog` follows (`bookworm` for `bookworm-3.11.4`, `bookworm-scm` for
/// `bookworm-scm-3.1`); `None` for a tag of no flavour (`latest`).
pub fn tag_flavour(tag: &str) -> Option<&str> {
    tag.match_indices('-').find_map(|(dash, _)| {
        let rest = &tag[dash + 1..];
        let complete = SpecialTag::from_tag_body(rest).is_some() || TagVersion::parse(rest).is_ok();
        (complete && dash > 0).then(|| &tag[..dash])
    })
}

/// Whether the text after some dash in `body` is a complete tag body.
fn belongs_to_longer_flavour(body: &str) -> bool {
    body.match_indices('-').any(|(dash, _)| {
        body.get(dash + 1..).is_some_and(|rest| {
            SpecialTag::from_tag_body(rest).is_some() || TagVersion::parse(rest).is_ok()
        })
    })
}
