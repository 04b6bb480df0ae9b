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
//! `>3.11` starts at 3.12 and `<=3.12` includes 3.12.4.
//!
//! The grammar is tiny, so it is parsed by hand instead of with the `regex`
//! crate: that keeps the dependency tree and the CLI's start-up lean, and lets
//! each error name the exact part of the input that is wrong.

use std::cmp::{Ordering, Reverse};
use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The most numeric parts a version may have, as in `1.2.3.4`.
const MAX_PARTS: usize = 4;

/// Why a version or a version spec could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
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

/// Whether the text after some dash in `body` is a complete tag body.
fn belongs_to_longer_flavour(body: &str) -> bool {
    body.match_indices('-').any(|(dash, _)| {
        body.get(dash + 1..).is_some_and(|rest| {
            SpecialTag::from_tag_body(rest).is_some() || parse_tag_body(rest).is_ok()
        })
    })
}

/// What a user asked for: `latest`, `default` or a [`VersionConstraint`].
///
/// A numbers-only operand of N parts stands for the versions whose first N
/// numbers equal it (a missing number counts as 0): `3.11` and `=3.11` match
/// `3.11`, `3.11.0` and `3.11.10` but not `3.1.0`; `3.11.10` matches `3.11.10`
/// and a four-part `3.11.10.2`. Pre-releases of a series are in it (`3.13`
/// matches `3.13.0rc1`), but come before the release the operand spells out in
/// full (`3.13.0` does not match `3.13.0rc1`, `<3.13.0` does). An operand with a
/// pre-release (`3.13.0rc1`) compares by precedence. `~` and `^` follow npm.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum VersionSpec {
    /// `latest`: the highest stable version, or the highest of all when
    /// pre-releases are allowed.
    Latest,
    /// `default`: whatever the flavour's `{os}-default` tag points at. Only the
    /// registry knows, so the caller resolves it: it matches no version and
    /// [`VersionSpec::select`] returns `None` for it.
    Default,
    /// Comparators that must all hold, such as `3.11` or `>=3.10,<3.12`.
    Constraint(VersionConstraint),
}

/// Comma-separated comparators that must all hold, with the text they came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionConstraint {
    text: String,
    comparators: Vec<Comparator>,
}

/// One `{op}{operand}` condition, such as `>=3.10`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Comparator {
    op: Op,
    operand: Operand,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

/// What a comparator compares versions with.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Operand {
    /// Numbers only (one to four): stands for every version starting with them.
    Prefix(Vec<u64>),
    /// A pre-release, compared by full precedence.
    PreRelease(SdkVersion),
}

impl Operand {
    fn numeric(&self) -> &[u64] {
        match self {
            Operand::Prefix(prefix) => prefix,
            Operand::PreRelease(version) => version.numeric(),
        }
    }

    /// How `version` compares with this operand; `Equal` means "is within it".
    fn compare(&self, version: &SdkVersion) -> Ordering {
        let prefix = match self {
            Operand::PreRelease(operand) => return version.cmp_precedence(operand),
            Operand::Prefix(prefix) => prefix,
        };
        let leading = (0..prefix.len()).map(|i| version.part(i));
        let ordering = leading.cmp(prefix.iter().copied());
        // `3.13.0rc1` is in the 3.13 series but comes before `3.13.0` itself:
        // a pre-release ranks below a prefix that spells out all its numbers.
        if ordering.is_eq() && version.is_prerelease() && version.numeric.len() <= prefix.len() {
            Ordering::Less
        } else {
            ordering
        }
    }
}

impl Comparator {
    fn matches(&self, version: &SdkVersion) -> bool {
        let ordering = self.operand.compare(version);
        match self.op {
            Op::Eq => ordering.is_eq(),
            Op::Ne => ordering.is_ne(),
            Op::Gt => ordering.is_gt(),
            Op::Ge => ordering.is_ge(),
            Op::Lt => ordering.is_lt(),
            Op::Le => ordering.is_le(),
        }
    }
}

/// Operator symbols, two-character ones first so `>=` is not read as `>`.
const OPERATORS: [&str; 9] = [">=", "<=", "==", "!=", ">", "<", "=", "~", "^"];

impl VersionSpec {
    /// Parses `latest`, `default` or comparators such as `3.11`, `>=3.10,<3.12`,
    /// `!=3.11.1`, `~3.11`, `^20.1` or `3.13.0rc1`. Surrounding spaces, and
    /// spaces around commas and after operators, are ignored.
    pub fn parse(text: &str) -> Result<Self, VersionError> {
        let text = text.trim();
        match text {
            "latest" => return Ok(Self::Latest),
            "default" => return Ok(Self::Default),
            _ => {}
        }
        let invalid = |reason: String| VersionError::InvalidSpec {
            input: text.to_owned(),
            reason,
        };
        if text.is_empty() {
            return Err(invalid("empty spec".to_owned()));
        }
        let mut comparators = Vec::new();
        for piece in text.split(',') {
            comparators.extend(parse_comparator(piece.trim()).map_err(invalid)?);
        }
        Ok(Self::Constraint(VersionConstraint {
            text: text.to_owned(),
            comparators,
        }))
    }

    /// Whether the spec itself names a pre-release (`3.13.0rc1`, `>=3.13.0a1`),
    /// which makes pre-releases selectable without being allowed explicitly.
    pub fn names_prerelease(&self) -> bool {
        match self {
            Self::Constraint(constraint) => constraint
                .comparators
                .iter()
                .any(|c| matches!(c.operand, Operand::PreRelease(_))),
            Self::Latest | Self::Default => false,
        }
    }

    /// Whether `version` satisfies the spec, pre-release or not. `latest`
    /// matches every version and `default` none.
    pub fn matches(&self, version: &SdkVersion) -> bool {
        match self {
            Self::Latest => true,
            Self::Default => false,
            Self::Constraint(constraint) => {
                constraint.comparators.iter().all(|c| c.matches(version))
            }
        }
    }

    /// The highest version in `available` that matches. Pre-releases are
    /// candidates only when `allow_pre` is set or the spec names one.
    pub fn select<'a>(
        &self,
        available: &'a [SdkVersion],
        allow_pre: bool,
    ) -> Option<&'a SdkVersion> {
        let allow_pre = allow_pre || self.names_prerelease();
        available
            .iter()
            .filter(|v| allow_pre || !v.is_prerelease())
            .filter(|v| self.matches(v))
            .max()
    }

    /// Up to `n` versions of `available` closest to the spec, lowest first,
    /// for error messages. Closest means sharing the most leading numbers with
    /// the first version the spec names (`3.14` in `>=3.14,<4`), then the
    /// smallest gap at the first number that differs, then the highest.
    /// Pre-releases are included. `latest` and `default` give the highest.
    pub fn nearest<'a>(&self, available: &'a [SdkVersion], n: usize) -> Vec<&'a SdkVersion> {
        let anchor = match self {
            Self::Constraint(constraint) => constraint
                .comparators
                .first()
                .map_or(&[][..], |c| c.operand.numeric()),
            Self::Latest | Self::Default => &[],
        };
        let mut ranked: Vec<&SdkVersion> = available.iter().collect();
        ranked.sort_by_key(|version| closeness(anchor, version));
        ranked.truncate(n);
        ranked.sort();
        ranked
    }
}

/// Sort key for [`VersionSpec::nearest`]: the closest version sorts first.
fn closeness<'v>(
    anchor: &[u64],
    version: &'v SdkVersion,
) -> (Reverse<usize>, u64, Reverse<&'v SdkVersion>) {
    let shared = anchor
        .iter()
        .enumerate()
        .take_while(|&(i, &part)| version.part(i) == part)
        .count();
    let gap = anchor
        .get(shared)
        .map_or(0, |&part| part.abs_diff(version.part(shared)));
    (Reverse(shared), gap, Reverse(version))
}

/// Parses one comma-separated piece; `~` and `^` expand to two comparators.
fn parse_comparator(piece: &str) -> Result<Vec<Comparator>, String> {
    if piece.is_empty() {
        return Err(r#"empty comparator (stray ",")"#.to_owned());
    }
    let (symbol, rest) = OPERATORS
        .iter()
        .find_map(|symbol| piece.strip_prefix(symbol).map(|rest| (*symbol, rest)))
        .unwrap_or(("", piece));
    let rest = rest.trim();
    if rest.is_empty() {
        return Err(format!("missing version after {symbol:?}"));
    }
    let operand = parse_operand(rest)?;
    let op = match symbol {
        "~" | "^" => return Ok(npm_range(symbol == "~", operand)),
        "!=" => Op::Ne,
        ">" => Op::Gt,
        ">=" => Op::Ge,
        "<" => Op::Lt,
        "<=" => Op::Le,
        _ => Op::Eq,
    };
    Ok(vec![Comparator { op, operand }])
}

/// Expands npm's `~` and `^` into `>=operand` and `<upper`. Tilde allows
/// changes after the minor number (after the major one if only that is given);
/// caret allows changes after the first non-zero number (`^0.2.3` is
/// `>=0.2.3,<0.3`; `^0.0` is `<0.1`).
fn npm_range(tilde: bool, operand: Operand) -> Vec<Comparator> {
    let numbers = operand.numeric();
    let bump_at = if tilde {
        if numbers.len() > 1 {
            1
        } else {
            0
        }
    } else {
        let last = numbers.len().saturating_sub(1);
        numbers.iter().position(|&n| n != 0).unwrap_or(last)
    };
    // A part at u64::MAX cannot be bumped: then there is no upper bound.
    let upper = numbers
        .get(bump_at)
        .and_then(|n| n.checked_add(1))
        .map(|bumped| {
            let mut prefix = numbers.to_vec();
            prefix.truncate(bump_at);
            prefix.push(bumped);
            Comparator {
                op: Op::Lt,
                operand: Operand::Prefix(prefix),
            }
        });
    let lower = Comparator {
        op: Op::Ge,
        operand,
    };
    std::iter::once(lower).chain(upper).collect()
}

fn parse_operand(text: &str) -> Result<Operand, String> {
    if text.contains(char::is_whitespace) {
        return Err(format!(
            r#"unexpected space in {text:?} (separate comparators with ",")"#
        ));
    }
    let Components { numeric, pre } = parse_components(text)?;
    if pre.is_empty() {
        return Ok(Operand::Prefix(numeric));
    }
    if numeric.len() < 2 {
        return Err(format!(
            "pre-release {text:?} needs at least two numeric parts"
        ));
    }
    Ok(Operand::PreRelease(SdkVersion {
        original: text.to_owned(),
        numeric,
        pre,
    }))
}

impl fmt::Display for VersionSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Latest => f.write_str("latest"),
            Self::Default => f.write_str("default"),
            Self::Constraint(constraint) => constraint.fmt(f),
        }
    }
}

impl fmt::Display for VersionConstraint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl FromStr for VersionSpec {
    type Err = VersionError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

impl TryFrom<String> for VersionSpec {
    type Error = VersionError;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        Self::parse(&text)
    }
}

impl From<VersionSpec> for String {
    fn from(spec: VersionSpec) -> Self {
        spec.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn v(text: &str) -> SdkVersion {
        SdkVersion::parse(text).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Versions from a space-separated list.
    fn versions(list: &str) -> Vec<SdkVersion> {
        list.split_whitespace().map(v).collect()
    }

    fn spec(text: &str) -> VersionSpec {
        VersionSpec::parse(text).unwrap_or_else(|e| panic!("{e}"))
    }

    fn joined(versions: &[&SdkVersion]) -> String {
        let texts: Vec<&str> = versions.iter().map(|v| v.as_str()).collect();
        texts.join(" ")
    }

    const PYTHON: &str = "3.9.9 3.10.0 3.11.9 3.11.10 3.12.4 3.13.0rc1";
    const NODE: &str = "18.20.4 20.1.0 20.11.1 22.3.0";

    #[test]
    fn versions_order_by_precedence() {
        let chains = [
            "3.9.9 < 3.10.0 < 3.11.9 < 3.11.10 < 3.12.4 < 3.13.0a1 < 3.13.0b2 < 3.13.0rc1",
            "3.13.0rc1 < 3.13.0 < 3.13.0.1 < 3.13.1 < 4.0",
            "3.13.0a2 < 3.13.0a10 < 3.13.0b1",
            "8.0.100-preview.1 < 8.0.100-rc.1 < 8.0.100-rc.2.23502.2 < 8.0.100 < 8.0.101",
            "1.0.0-alpha < 1.0.0-alpha.1 < 1.0.0-alpha.beta < 1.0.0-beta < 1.0.0-beta.2",
            "1.0.0-beta.2 < 1.0.0-beta.11 < 1.0.0-rc.1 < 1.0.0",
            "20.0.0-nightly2023 < 20.0.0 < 20.0.1",
            "1.2.3 < 1.2.3.1 < 1.2.3.4 < 1.2.4 < 1.2.10.0 < 1.10",
        ];
        for chain in chains {
            let chain: Vec<SdkVersion> = chain.split(" < ").map(v).collect();
            for pair in chain.windows(2) {
                let (low, high) = (&pair[0], &pair[1]);
                assert_eq!(low.cmp_precedence(high), Ordering::Less, "{low} < {high}");
                assert!(low < high, "{low} < {high}");
                assert_eq!(high.cmp(low), Ordering::Greater, "{high} > {low}");
            }
        }
    }

    #[test]
    fn equal_precedence_is_ordered_by_text() {
        for pair in ["3.11 3.11.0", "3.13.0rc1 3.13.0-rc.1", "1.2 1.2.0.0"] {
            let pair = versions(pair);
            let (a, b) = (&pair[0], &pair[1]);
            assert_eq!(a.cmp_precedence(b), Ordering::Equal);
            assert_ne!(a, b);
            assert_eq!(a.cmp(b), a.as_str().cmp(b.as_str()));
            assert_eq!(HashSet::from([a, b, &a.clone()]).len(), 2);
        }
    }

    #[test]
    fn sorting_a_shuffled_list() {
        let mut list = versions("3.13.0 3.9.9 3.13.0rc1 3.11.10 3.10.0 3.11 3.11.9");
        sort_versions(&mut list);
        let sorted = joined(&list.iter().collect::<Vec<_>>());
        assert_eq!(sorted, "3.9.9 3.10.0 3.11 3.11.9 3.11.10 3.13.0rc1 3.13.0");
    }

    #[test]
    fn versions_keep_their_text() {
        let cases: &[(&str, &[u64], bool)] = &[
            ("3.11.0", &[3, 11, 0], false),
            ("3.9", &[3, 9], false),
            ("1.2.3.4", &[1, 2, 3, 4], false),
            ("3.13.0rc1", &[3, 13, 0], true),
            ("8.0.100-rc.2.23502.2", &[8, 0, 100], true),
            ("20.0.0-nightly2023", &[20, 0, 0], true),
        ];
        for &(text, numeric, pre) in cases {
            let version: SdkVersion = text.parse().unwrap_or_else(|e| panic!("{e}"));
            assert_eq!((version.as_str(), version.to_string()), (text, text.into()));
            assert_eq!((version.numeric(), version.is_prerelease()), (numeric, pre));
        }
    }

    #[test]
    fn invalid_versions_say_why() {
        let cases = [
            ("", "empty string"),
            ("3", "needs at least two numeric parts"),
            ("a.b", r#"part "a" is not a number"#),
            ("3..1", "empty numeric part"),
            ("1.2.3.4.5", "too many numeric parts"),
            ("3.11.", "empty numeric part"),
            ("-1.2", "must start with a number"),
            ("3.11.0-", "empty pre-release"),
            ("3.0a1.2", r#"part "0a1" is not a number"#),
            ("3.13.0a1b", r#"invalid pre-release "a1b""#),
            ("3.13.0a1-x", "cannot be followed"),
            ("3.11.0_1", "unexpected character '_'"),
            ("1.2.3-alpha..1", "empty identifier"),
            ("1.2.3-al+pha", "invalid character '+'"),
            ("1.2-3.4", "must start with a letter"),
            ("99999999999999999999.1", "too large"),
            (" 3.11", "not a number"),
        ];
        for (input, reason) in cases {
            let error = SdkVersion::parse(input).expect_err(input).to_string();
            let prefix = format!("invalid version {input:?}: ");
            assert!(
                error.starts_with(&prefix) && error.contains(reason),
                "{error}"
            );
        }
        let error = SdkVersion::parse("3.x").expect_err("3.x").to_string();
        assert_eq!(error, r#"invalid version "3.x": part "x" is not a number"#);
    }

    /// A short description of a tag parse, to keep the table readable.
    fn describe(parse: TagParse) -> String {
        match parse {
            TagParse::Version(sdk_tag) => match sdk_tag.runtime {
                Some(runtime) => format!("{} runtime {runtime}", sdk_tag.version),
                None => sdk_tag.version.to_string(),
            },
            TagParse::Special(special) => format!("{special:?}"),
            TagParse::OtherFlavour => "other".to_owned(),
            TagParse::Unparseable(_) => "unparseable".to_owned(),
        }
    }

    #[test]
    fn tags_are_classified() {
        let cases = [
            ("bookworm-3.11.0", "bookworm", "3.11.0"),
            ("bookworm-default", "bookworm", "Default"),
            ("bookworm-catalog", "bookworm", "Catalog"),
            ("bullseye-3.11.0", "bookworm", "other"),
            ("noble-10.0.201_10.0.5", "noble", "10.0.201 runtime 10.0.5"),
            ("noble-8.0.100-rc.1", "noble", "8.0.100-rc.1"),
            ("bookworm-garbage", "bookworm", "unparseable"),
            ("bookworm-", "bookworm", "unparseable"),
            ("bookworm-3.11.0-", "bookworm", "unparseable"),
            ("noble-10.0.201_", "noble", "unparseable"),
            ("noble-10.0.201_10.0.5_1.0", "noble", "unparseable"),
            ("bookworm-scm-3.1", "bookworm", "other"),
            ("bookworm-scm-default", "bookworm", "other"),
            ("alpine-3.20-3.12.4", "alpine", "other"),
            ("alpine-3.20-3.12.4", "alpine-3.20", "3.12.4"),
            ("focal-scm-3.1", "focal-scm", "3.1"),
            ("bookworm", "bookworm", "other"),
            ("bookwormy-3.11.0", "bookworm", "other"),
        ];
        for (tag, os, expected) in cases {
            assert_eq!(describe(parse_tag(tag, os)), expected, "{tag} for {os}");
        }
        let TagParse::Version(sdk_tag) = parse_tag("noble-10.0.201_10.0.5", "noble") else {
            panic!("not a version tag");
        };
        assert_eq!(sdk_tag.tag, "noble-10.0.201_10.0.5");
    }

    #[test]
    fn invalid_specs_say_why() {
        let cases = [
            ("", "empty spec"),
            ("   ", "empty spec"),
            (">=3.10,", "empty comparator"),
            ("3.x", r#"part "x" is not a number"#),
            (">=3.10 <3.12", "unexpected space"),
            ("~", r#"missing version after "~""#),
            ("=>3", r#"part ">3" is not a number"#),
            ("3rc1", "needs at least two numeric parts"),
            ("Latest", "is not a number"),
        ];
        for (input, reason) in cases {
            let error = VersionSpec::parse(input).expect_err(input).to_string();
            assert!(error.contains(reason), "{input:?}: {error}");
        }
        let error = VersionSpec::parse(">=").expect_err(">=").to_string();
        assert_eq!(
            error,
            r#"invalid version spec ">=": missing version after ">=""#
        );
    }

    #[test]
    fn specs_display_what_the_user_typed() {
        let texts = [
            "latest",
            "default",
            "3.11",
            ">= 3.10, <3.12",
            "~3.11",
            "^20.1",
            "==3.11.0",
        ];
        for text in texts {
            assert_eq!(spec(text).to_string(), text);
            assert_eq!(spec(&format!("  {text} ")).to_string(), text);
        }
        assert_eq!(spec("default"), VersionSpec::Default);
        assert_eq!(spec("latest"), VersionSpec::Latest);
    }

    #[test]
    fn specs_match_versions() {
        // Spec, versions it matches, versions it does not.
        let cases = [
            (
                "3.11",
                "3.11 3.11.0 3.11.10 3.11.0.1",
                "3.110.0 3.1.0 3.12.0 3.11rc1",
            ),
            ("3.1", "3.1.0 3.1.5", "3.11.0 3.10.0"),
            ("3.11.0", "3.11 3.11.0 3.11.0.2", "3.11.1 3.11.0rc1"),
            ("1.2.3", "1.2.3 1.2.3.4", "1.2.4 1.2.30"),
            ("3.13", "3.13.0rc1 3.13.0a1 3.13.2", "3.14.0a1"),
            (
                "3.13.0rc1",
                "3.13.0rc1 3.13.0-rc.1",
                "3.13.0 3.13.0rc2 3.13.0b1",
            ),
            ("<3.13", "3.12.4", "3.13.0rc1 3.13.0"),
            ("<3.13.0", "3.12.4 3.13.0rc1", "3.13.0"),
            (">3.9", "3.10.0", "3.9.9 3.9"),
            (">=3.10,<3.12", "3.10.0 3.11.10", "3.9.9 3.12.0 3.12.0a1"),
            ("<=3.12", "3.12.4 3.2.0", "3.13.0"),
            ("!=3.11.1", "3.11.10 3.11.0", "3.11.1"),
            ("~3.11.2", "3.11.2 3.11.9", "3.11.1 3.12.0"),
            ("~3", "3.0.0 3.99.0", "4.0.0 2.9.9"),
            ("^20.1", "20.1.0 20.11.1", "20.0.9 21.0.0"),
            ("^0.2.3", "0.2.3 0.2.9", "0.3.0 0.2.2"),
            ("^0.0.3", "0.0.3", "0.0.4"),
            ("^0.0", "0.0.7", "0.1.0"),
            ("^18446744073709551615.1", "18446744073709551615.7", "1.0"),
            ("latest", "3.13.0rc1 3.11.0", ""),
            ("default", "", "3.11.0"),
        ];
        for (text, matching, other) in cases {
            for version in versions(matching) {
                assert!(
                    spec(text).matches(&version),
                    "{text} should match {version}"
                );
            }
            for version in versions(other) {
                assert!(
                    !spec(text).matches(&version),
                    "{text} should not match {version}"
                );
            }
        }
    }

    #[test]
    fn specs_know_when_they_name_a_prerelease() {
        let cases = [
            ("3.13.0rc1", true),
            (">=3.13.0a1", true),
            ("~8.0.100-preview.1", true),
            ("3.13", false),
            ("latest", false),
            (">=3.10,<3.12", false),
        ];
        for (text, expected) in cases {
            assert_eq!(spec(text).names_prerelease(), expected, "{text}");
        }
    }

    #[test]
    fn specs_select_the_highest_match() {
        let cases = [
            (PYTHON, "3.11", false, Some("3.11.10")),
            (PYTHON, "latest", false, Some("3.12.4")),
            (PYTHON, "latest", true, Some("3.13.0rc1")),
            (PYTHON, "3", false, Some("3.12.4")),
            (PYTHON, "3.1", false, None),
            (PYTHON, "3.10", false, Some("3.10.0")),
            (PYTHON, ">=3.10,<3.12", false, Some("3.11.10")),
            (PYTHON, ">3.11 , <3.13", false, Some("3.12.4")),
            (PYTHON, "<=3.12.4", false, Some("3.12.4")),
            (PYTHON, "<3.11", false, Some("3.10.0")),
            (PYTHON, "!=3.12.4", false, Some("3.11.10")),
            (PYTHON, "=3.11.9", false, Some("3.11.9")),
            (PYTHON, "==3.11.9", false, Some("3.11.9")),
            (PYTHON, "3.11.9", false, Some("3.11.9")),
            (PYTHON, "~3.11", false, Some("3.11.10")),
            (PYTHON, "~3.11.9", false, Some("3.11.10")),
            (PYTHON, "~3", false, Some("3.12.4")),
            (PYTHON, "^3.10", false, Some("3.12.4")),
            (PYTHON, "3.13", false, None),
            (PYTHON, "3.13", true, Some("3.13.0rc1")),
            (PYTHON, "3.13.0", true, None),
            (PYTHON, "<3.13", true, Some("3.12.4")),
            (PYTHON, "<3.13.0", true, Some("3.13.0rc1")),
            (PYTHON, "3.13.0rc1", false, Some("3.13.0rc1")),
            (PYTHON, ">=3.13.0a1", false, Some("3.13.0rc1")),
            (PYTHON, "3.14", true, None),
            (PYTHON, "default", true, None),
            (NODE, "20", false, Some("20.11.1")),
            (NODE, "^20.1", false, Some("20.11.1")),
            (NODE, "~20.1", false, Some("20.1.0")),
            (NODE, "^18", false, Some("18.20.4")),
            (NODE, ">=19", false, Some("22.3.0")),
            (NODE, "<20", false, Some("18.20.4")),
            (NODE, "21", false, None),
            (NODE, "^0.2.3", false, None),
            ("", "latest", true, None),
        ];
        for (available, text, allow_pre, expected) in cases {
            let available = versions(available);
            let selected = spec(text).select(&available, allow_pre);
            assert_eq!(
                selected.map(SdkVersion::as_str),
                expected,
                "{text} {allow_pre}"
            );
        }
    }

    #[test]
    fn nearest_versions_help_error_messages() {
        let available = versions(PYTHON);
        let cases = [
            ("3.14", 2, "3.12.4 3.13.0rc1"),
            ("3.11.5", 2, "3.11.9 3.11.10"),
            ("3.11.5", 1, "3.11.9"),
            ("3.8", 2, "3.9.9 3.10.0"),
            (">=3.10.2,<3.10.9", 1, "3.10.0"),
            ("4", 1, "3.13.0rc1"),
            ("latest", 3, "3.11.10 3.12.4 3.13.0rc1"),
            ("3.14", 0, ""),
            ("3.14", 99, PYTHON),
        ];
        for (text, n, expected) in cases {
            assert_eq!(
                joined(&spec(text).nearest(&available, n)),
                expected,
                "{text} {n}"
            );
        }
    }

    #[test]
    fn highest_stable_skips_prereleases() {
        let cases = [
            (PYTHON, Some("3.12.4")),
            ("3.13.0a1 3.13.0rc1", None),
            ("", None),
        ];
        for (available, expected) in cases {
            let available = versions(available);
            assert_eq!(highest_stable(&available).map(SdkVersion::as_str), expected);
        }
    }

    #[test]
    fn strings_round_trip_for_serde() {
        let version = SdkVersion::try_from("3.13.0rc1".to_owned()).expect("valid version");
        assert_eq!(String::from(version), "3.13.0rc1");
        let parsed = VersionSpec::try_from(" ^20.1 ".to_owned()).expect("valid spec");
        assert_eq!(String::from(parsed), "^20.1");
        assert!(VersionSpec::try_from(">=".to_owned()).is_err());
    }

    #[test]
    fn no_input_panics() {
        // Every string of up to four characters from an alphabet of awkward ones.
        let alphabet = "10.-_a~^<=, é３";
        let mut inputs = vec![String::new()];
        let mut longest = vec![String::new()];
        for _ in 0..4 {
            longest = longest
                .iter()
                .flat_map(|s| alphabet.chars().map(move |c| format!("{s}{c}")))
                .collect();
            inputs.extend(longest.iter().cloned());
        }
        let available = versions(PYTHON);
        for input in &inputs {
            let _ = SdkVersion::parse(input);
            let _ = parse_tag(&format!("os-{input}"), "os");
            if let Ok(spec) = VersionSpec::parse(input) {
                let _ = (spec.select(&available, true), spec.nearest(&available, 3));
            }
        }
        assert!(inputs.len() > 40_000);
    }
}
