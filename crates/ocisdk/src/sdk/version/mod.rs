//! SDK versions, registry tags and the version specs users type.
//!
//! Images are tagged `{os}-{version}` (`bookworm-3.11.0`), or for .NET
//! `{os}-{sdk}_{runtime}` (`noble-10.0.201_10.0.5`); `{os}-default` and
//! `{os}-catalog` have fixed meanings and are not versions.
//!
//! A version has two to four numeric parts and an optional pre-release, written
//! the Python way right after the numbers (`3.13.0rc1`) or the semver way after a
//! dash (`8.0.100-rc.2.23502.2`). Versions are ordered by precedence: numbers
//! numerically (a missing part counts as 0), a pre-release below its release,
//! pre-release identifiers as in semver (`a1 < b2 < rc1`, `preview.1 < rc.1`).
//!
//! A [`VersionSpec`] is `latest`, `default`, or comma-separated comparators that
//! must all hold: `3.11`, `=3.11.0`, `!=3.11.1`, `>=3.10,<3.12`, `~3.11`, `^20.1`,
//! `3.13.0rc1`. A version made only of numbers stands for every version starting
//! with those numbers, as in npm and Cargo: `3.11` is the whole 3.11 series,
//! `>3.11` starts at 3.12 and `<=3.12` includes 3.12.4. .NET's `8.0.100_8.0.0`, as
//! its tags spell it, is the SDK version `8.0.100` of the runtime `8.0.0`.
//!
//! The grammar is tiny, so it is parsed by hand instead of with the `regex`
//! crate: that keeps the dependency tree and the CLI's start-up lean, and lets
//! each error name the exact part of the input that is wrong.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

mod spec;
mod tag;
#[cfg(test)]
mod tests;

pub use spec::{VersionConstraint, VersionSpec};
pub use tag::{parse_tag, tag_flavour, SdkTag, SpecialTag, TagParse, TagVersion};

/// The most numeric parts a version may have, as in `1.2.3.4`.
const MAX_PARTS: usize = 4;

/// Why a version or a version spec could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VersionError {
    /// The text is not a version.
    #[error("invalid version {input:?}: {reason}")]
    InvalidVersion {
        /// The text as given.
        input: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The text is not a version spec.
    #[error("invalid version spec {input:?}: {reason}")]
    InvalidSpec {
        /// The text as given, without surrounding spaces.
        input: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// A parsed SDK version that keeps the text it came from.
///
/// Equality and hashing use that text. Ordering uses precedence and breaks ties
/// between texts of equal precedence, such as `3.11` and `3.11.0`, by the text,
/// so that `Ord` is total and agrees with `Eq`. [`SdkVersion::cmp_precedence`]
/// compares by precedence alone.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SdkVersion {
    original: String,
    numeric: Vec<u64>,
    /// Pre-release identifiers; empty for a release.
    pre: Vec<PreId>,
}

/// One pre-release identifier (`rc`, `2`). Semver ranks numeric identifiers
/// below alphanumeric ones, which the variant order gives the derived `Ord`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum PreId {
    Numeric(u64),
    Alpha(String),
}

impl SdkVersion {
    /// Parses `3.11.0`, `3.9`, `1.2.3.4`, `3.13.0rc1` or `8.0.100-rc.2.23502.2`.
    pub fn parse(text: &str) -> Result<Self, VersionError> {
        let invalid = |reason: String| VersionError::InvalidVersion {
            input: text.to_owned(),
            reason,
        };
        let Components { numeric, pre } = parse_components(text).map_err(invalid)?;
        if numeric.len() < 2 {
            return Err(invalid(
                r#"needs at least two numeric parts, like "3.11""#.to_owned(),
            ));
        }
        Ok(Self {
            original: text.to_owned(),
            numeric,
            pre,
        })
    }

    /// The text the version was parsed from.
    pub fn as_str(&self) -> &str {
        &self.original
    }

    /// The numeric parts: `[3, 13, 0]` for `3.13.0rc1`.
    pub fn numeric(&self) -> &[u64] {
        &self.numeric
    }

    /// Whether this is a pre-release such as `3.13.0rc1` or `8.0.100-preview.1`.
    pub fn is_prerelease(&self) -> bool {
        !self.pre.is_empty()
    }

    /// Compares by precedence alone, so `3.11` and `3.11.0` are equal here.
    pub fn cmp_precedence(&self, other: &Self) -> Ordering {
        let parts = self.numeric.len().max(other.numeric.len());
        let numbers = (0..parts).map(|i| self.part(i));
        numbers
            .cmp((0..parts).map(|i| other.part(i)))
            .then_with(|| match (self.is_prerelease(), other.is_prerelease()) {
                (false, false) => Ordering::Equal,
                (false, true) => Ordering::Greater,
                (true, false) => Ordering::Less,
                (true, true) => self.pre.cmp(&other.pre),
            })
    }

    /// The numeric part at `index`, or 0 past the end of a shorter version.
    fn part(&self, index: usize) -> u64 {
        self.numeric.get(index).copied().unwrap_or(0)
    }
}

impl fmt::Display for SdkVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.original)
    }
}

impl FromStr for SdkVersion {
    type Err = VersionError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

impl TryFrom<String> for SdkVersion {
    type Error = VersionError;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        Self::parse(&text)
    }
}

impl From<SdkVersion> for String {
    fn from(version: SdkVersion) -> Self {
        version.original
    }
}

impl PartialEq for SdkVersion {
    fn eq(&self, other: &Self) -> bool {
        self.original == other.original
    }
}

impl Eq for SdkVersion {}

impl Hash for SdkVersion {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.original.hash(state);
    }
}

impl PartialOrd for SdkVersion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for SdkVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        self.cmp_precedence(other)
            .then_with(|| self.original.cmp(&other.original))
    }
}

/// Sorts versions from lowest to highest.
pub fn sort_versions(versions: &mut [SdkVersion]) {
    versions.sort();
}

/// The highest version that is not a pre-release.
pub fn highest_stable(available: &[SdkVersion]) -> Option<&SdkVersion> {
    available.iter().filter(|v| !v.is_prerelease()).max()
}

/// The pieces of a version-like text, before the caller checks how many
/// numeric parts it needs (versions two or more, spec operands one or more).
struct Components {
    numeric: Vec<u64>,
    pre: Vec<PreId>,
}

/// Splits `text` into numeric parts and pre-release identifiers. The error is
/// only the reason; callers add the input and say whether it was a spec.
fn parse_components(text: &str) -> Result<Components, String> {
    if text.is_empty() {
        return Err("empty string".to_owned());
    }
    let (core, dash_pre) = match text.split_once('-') {
        Some((core, pre)) => (core, Some(pre)),
        None => (text, None),
    };
    if core.is_empty() {
        return Err("must start with a number".to_owned());
    }
    let parts: Vec<&str> = core.split('.').collect();
    if parts.len() > MAX_PARTS {
        return Err(format!("too many numeric parts (at most {MAX_PARTS})"));
    }
    let mut numeric = Vec::with_capacity(parts.len());
    // Python writes a pre-release straight after the last number: `3.13.0rc1`.
    let mut letter_pre = "";
    for (index, part) in parts.iter().enumerate() {
        if part.is_empty() {
            return Err("empty numeric part".to_owned());
        }
        let digits_end = part
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(part.len());
        let (digits, suffix) = part.split_at(digits_end);
        let is_last = index + 1 == parts.len();
        if digits.is_empty() || (!suffix.is_empty() && !is_last) {
            return Err(format!("part {part:?} is not a number"));
        }
        numeric.push(parse_number(digits)?);
        letter_pre = suffix;
    }
    let pre = match (letter_pre, dash_pre) {
        ("", None) => Vec::new(),
        ("", Some(dash_pre)) => parse_dash_pre(dash_pre)?,
        (letter_pre, None) => parse_letter_pre(letter_pre)?,
        (letter_pre, Some(_)) => {
            return Err(format!(
                r#"pre-release {letter_pre:?} cannot be followed by "-""#
            ));
        }
    };
    Ok(Components { numeric, pre })
}

fn parse_number(digits: &str) -> Result<u64, String> {
    digits
        .parse()
        .map_err(|_| format!("number {digits:?} is too large"))
}

/// Parses a Python-style pre-release such as `rc1` into `[rc, 1]`, so that
/// `a10` sorts after `a2`.
fn parse_letter_pre(suffix: &str) -> Result<Vec<PreId>, String> {
    let letters_end = suffix
        .find(|c: char| !c.is_ascii_alphabetic())
        .unwrap_or(suffix.len());
    let (letters, number) = suffix.split_at(letters_end);
    if letters.is_empty() {
        // Callers never pass an empty suffix, so this names the culprit.
        let unexpected = suffix.chars().next().unwrap_or_default();
        return Err(format!("unexpected character {unexpected:?}"));
    }
    if !number.chars().all(|c| c.is_ascii_digit()) {
        return Err(format!(
            r#"invalid pre-release {suffix:?} (expected letters then digits, like "rc1")"#
        ));
    }
    let mut pre = vec![PreId::Alpha(letters.to_owned())];
    if !number.is_empty() {
        pre.push(PreId::Numeric(parse_number(number)?));
    }
    Ok(pre)
}

/// Parses a semver pre-release (the text after the dash): dot-separated
/// identifiers of ASCII letters, digits and dashes.
///
/// Unlike semver, it must start with a letter, as every SDK's do (`-rc.1`,
/// `-preview.1`): otherwise `alpine-3.20-3.12.4`, a tag of flavour
/// `alpine-3.20`, would read as version `3.20-3.12.4` of flavour `alpine`.
fn parse_dash_pre(pre: &str) -> Result<Vec<PreId>, String> {
    if pre.is_empty() {
        return Err(r#"empty pre-release after "-""#.to_owned());
    }
    if !pre.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return Err(format!(
            r#"pre-release {pre:?} must start with a letter, like "rc.1""#
        ));
    }
    pre.split('.')
        .map(|identifier| {
            if identifier.is_empty() {
                return Err(format!("empty identifier in pre-release {pre:?}"));
            }
            let not_allowed = |c: &char| !(c.is_ascii_alphanumeric() || *c == '-');
            if let Some(c) = identifier.chars().find(not_allowed) {
                return Err(format!("invalid character {c:?} in pre-release {pre:?}"));
            }
            if identifier.bytes().all(|b| b.is_ascii_digit()) {
                parse_number(identifier).map(PreId::Numeric)
            } else {
                Ok(PreId::Alpha(identifier.to_owned()))
            }
        })
        .collect()
}
