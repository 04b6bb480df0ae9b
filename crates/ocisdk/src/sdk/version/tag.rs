//! Registry tags: which name one SDK version for an OS flavour, which are special.

use serde::{Deserialize, Serialize};

use super::{SdkVersion, VersionError};

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
    match parse_tag_body(body) {
        Ok((version, runtime)) => TagParse::Version(SdkTag {
            version,
            runtime,
            tag: tag.to_owned(),
        }),
        Err(_) if belongs_to_longer_flavour(body) => TagParse::OtherFlavour,
        Err(error) => TagParse::Unparseable(error),
    }
}

/// Parses `{version}` or .NET's `{sdk}_{runtime}`.
fn parse_tag_body(body: &str) -> Result<(SdkVersion, Option<SdkVersion>), VersionError> {
    match body.split_once('_') {
        Some((sdk, runtime)) => Ok((SdkVersion::parse(sdk)?, Some(SdkVersion::parse(runtime)?))),
        None => Ok((SdkVersion::parse(body)?, None)),
    }
}

/// The OS flavour `tag` belongs to: the text before the first dash that a version, `default`
/// or `catalog` follows (`bookworm` for `bookworm-3.11.4`, `bookworm-scm` for
/// `bookworm-scm-3.1`); `None` for a tag of no flavour (`latest`).
pub fn tag_flavour(tag: &str) -> Option<&str> {
    tag.match_indices('-').find_map(|(dash, _)| {
        let rest = &tag[dash + 1..];
        let complete = SpecialTag::from_tag_body(rest).is_some() || parse_tag_body(rest).is_ok();
        (complete && dash > 0).then(|| &tag[..dash])
    })
}

/// Whether the text after some dash in `body` is a complete tag body.
fn belongs_to_longer_flavour(body: &str) -> bool {
    body.match_indices('-').any(|(dash, _)| {
        body.get(dash + 1..).is_some_and(|rest| {
            SpecialTag::from_tag_body(rest).is_some() || parse_tag_body(rest).is_ok()
        })
    })
}
