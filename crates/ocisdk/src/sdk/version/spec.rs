//! Version specs (`3.11`, `>=3.10,<3.12`, `~3.11`, `latest`, `default`) and how they pick
//! from the versions a registry has.

use std::cmp::{Ordering, Reverse};
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::{parse_components, Components, SdkTag, SdkVersion, TagVersion, VersionError};

/// What a user asked for: `latest`, `default` or a [`VersionConstraint`].
///
/// A numbers-only operand of N parts stands for the versions whose first N
/// numbers equal it (a missing number counts as 0): `3.11` and `=3.11` match
/// `3.11`, `3.11.0` and `3.11.10` but not `3.1.0`; `3.11.10` matches `3.11.10`
/// and a four-part `3.11.10.2`, but picks `3.11.10` itself when it is there (it
/// names a version in full). Pre-releases of a series are in it (`3.13`
/// matches `3.13.0rc1`), but come before the release the operand spells out in
/// full (`3.13.0` does not match `3.13.0rc1`, `<3.13.0` does). An operand with a
/// pre-release (`3.13.0rc1`) compares by precedence. `~` and `^` follow npm.
///
/// .NET's `{sdk}_{runtime}` (`8.0.100_8.0.0`), as `sdk versions` lists its tags, is the SDK
/// version as an operand (`8.0.100`) that only the tags of that runtime satisfy (by
/// precedence: `8.0` is `8.0.0`); see [`VersionSpec::matches_tag`].
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
    /// The runtime of a .NET spec `{sdk}_{runtime}`.
    runtime: Option<SdkVersion>,
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
        if text.contains('_') {
            return Self::parse_dotnet(text);
        }
        let mut comparators = Vec::new();
        for piece in text.split(',') {
            comparators.extend(parse_comparator(piece.trim()).map_err(invalid)?);
        }
        Ok(Self::Constraint(VersionConstraint {
            text: text.to_owned(),
            comparators,
            runtime: None,
        }))
    }

    /// `{sdk}_{runtime}`, read as a tag reads it: one version on each side of one `_`, no
    /// operators, no ranges.
    fn parse_dotnet(text: &str) -> Result<Self, VersionError> {
        let TagVersion { version, runtime } =
            TagVersion::parse(text).map_err(|error| match error {
                VersionError::InvalidVersion { reason, .. }
                | VersionError::InvalidSpec { reason, .. } => VersionError::InvalidSpec {
                    input: text.to_owned(),
                    reason,
                },
            })?;
        // A version the tag grammar took is a valid operand.
        let operand =
            parse_operand(version.as_str()).map_err(|reason| VersionError::InvalidSpec {
                input: text.to_owned(),
                reason,
            })?;
        Ok(Self::Constraint(VersionConstraint {
            text: text.to_owned(),
            comparators: vec![Comparator {
                op: Op::Eq,
                operand,
            }],
            runtime,
        }))
    }

    /// The runtime a .NET spec `{sdk}_{runtime}` names, else `None`.
    pub fn runtime(&self) -> Option<&SdkVersion> {
        match self {
            Self::Constraint(constraint) => constraint.runtime.as_ref(),
            Self::Latest | Self::Default => None,
        }
    }

    /// Whether the tag `tag` satisfies the spec: its version does ([`VersionSpec::matches`]),
    /// and for a .NET spec `{sdk}_{runtime}` its runtime is that one.
    pub fn matches_tag(&self, tag: &SdkTag) -> bool {
        self.matches(&tag.version) && self.runtime_matches(tag)
    }

    /// Whether `tag` has the runtime the spec names; true for a spec that names none.
    pub(crate) fn runtime_matches(&self, tag: &SdkTag) -> bool {
        self.runtime().is_none_or(|wanted| {
            tag.runtime
                .as_ref()
                .is_some_and(|runtime| runtime.cmp_precedence(wanted).is_eq())
        })
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
    /// matches every version and `default` none. A .NET spec's runtime is not looked at
    /// (a version has none): [`VersionSpec::matches_tag`] checks it.
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
    /// candidates only when `allow_pre` is set or the spec names one. Versions carry no
    /// runtime: for a .NET spec, give the versions of the tags [`VersionSpec::matches_tag`]
    /// would accept.
    pub fn select<'a>(
        &self,
        available: &'a [SdkVersion],
        allow_pre: bool,
    ) -> Option<&'a SdkVersion> {
        let allow_pre = allow_pre || self.names_prerelease();
        let candidates = available
            .iter()
            .filter(|v| allow_pre || !v.is_prerelease())
            .filter(|v| self.matches(v));
        match self.full_version() {
            // `3.11.10` is 3.11.10 when the registry has it, not a 3.11.10.2 beside it.
            Some(numbers) => candidates
                .clone()
                .filter(|v| v.numeric() == numbers)
                .max()
                .or_else(|| candidates.max()),
            None => candidates.max(),
        }
    }

    /// The numbers of a spec that names one version in full (`3.11.10`, `=3.11.10`: three
    /// or more numbers, one comparator), as opposed to a series (`3.11`) or a range.
    pub(crate) fn full_version(&self) -> Option<&[u64]> {
        let Self::Constraint(constraint) = self else {
            return None;
        };
        match constraint.comparators.as_slice() {
            [Comparator {
                op: Op::Eq,
                operand: Operand::Prefix(numbers),
            }] if numbers.len() >= 3 => Some(numbers),
            _ => None,
        }
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
