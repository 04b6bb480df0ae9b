//! Image references such as `ghcr.io/owner/repo:tag@sha256:…`, parsed and normalised with the
//! grammar of docker/distribution's `reference` package (`regexp.go`, `normalize.go`):
//!
//! ```text
//! [host[:port]/]path[:tag][@digest]
//! ```
//!
//! A reference without a registry is a Docker Hub one (`ubuntu` is
//! `docker.io/library/ubuntu`), as every container tool understands it.
//!
//! The parser is written by hand instead of with the `regex` crate: the grammar is a handful of
//! character classes, a regex engine would add a dependency and start-up work to a CLI that parses
//! one or two references per run, and a regex can only answer "no match", whereas walking the
//! parts in turn lets the error say which part is wrong.

use std::fmt;
use std::str::FromStr;

use crate::digest::{Digest, DigestError};

/// The registry of a reference that names none: Docker Hub.
pub const DEFAULT_REGISTRY: &str = "docker.io";
/// The tag fetched when a reference has neither tag nor digest.
pub const DEFAULT_TAG: &str = "latest";
/// Docker Hub's display name is not where its API is served.
const DOCKER_HUB_API_HOST: &str = "registry-1.docker.io";
/// Older spelling of Docker Hub, normalised to [`DEFAULT_REGISTRY`] as docker does.
const LEGACY_DOCKER_HUB: &str = "index.docker.io";
/// Docker Hub's namespace for official images, implied by one-component paths.
const OFFICIAL_NAMESPACE: &str = "library";
/// Maximum length of the repository path, `library/` included.
const NAME_MAX: usize = 255;
/// Maximum length of a tag.
const TAG_MAX: usize = 128;

/// Why a string is not a valid reference or repository; each variant names the wrong part and
/// quotes the whole input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReferenceError {
    /// The input is empty.
    #[error("invalid reference \"\": empty reference")]
    Empty,
    /// Nothing before the `:tag` or `@digest`.
    #[error("invalid reference \"{input}\": missing repository name before the tag or digest")]
    MissingName {
        /// The whole input.
        input: String,
    },
    /// The registry host or port is malformed.
    #[error("invalid reference \"{input}\": invalid registry \"{registry}\": {reason}")]
    InvalidRegistry {
        /// The whole input.
        input: String,
        /// The registry part, `host[:port]`.
        registry: String,
        /// What is wrong with it, e.g. `invalid port`.
        reason: &'static str,
    },
    /// A path component breaks the grammar (empty components come from `//` or an edge `/`).
    #[error("invalid reference \"{input}\": {}", describe_component(component))]
    InvalidPath {
        /// The whole input.
        input: String,
        /// The offending component.
        component: String,
    },
    /// The repository path has upper-case letters (only the registry may).
    #[error("invalid reference \"{input}\": repository name must be lower-case (\"{path}\")")]
    UpperCase {
        /// The whole input.
        input: String,
        /// The repository path as written.
        path: String,
    },
    /// The repository path (after normalisation, `library/` included) is over 255 characters.
    #[error("invalid reference \"{input}\": repository name longer than 255 characters ({len})")]
    NameTooLong {
        /// The whole input.
        input: String,
        /// Length of the normalised path.
        len: usize,
    },
    /// The tag is empty or has a character outside `[A-Za-z0-9_.-]` (or starts with `.`/`-`).
    #[error("invalid reference \"{input}\": {}", describe_tag(tag))]
    InvalidTag {
        /// The whole input.
        input: String,
        /// The tag as written.
        tag: String,
    },
    /// The tag is longer than 128 characters.
    #[error("invalid reference \"{input}\": tag longer than 128 characters ({len})")]
    TagTooLong {
        /// The whole input.
        input: String,
        /// Length of the tag.
        len: usize,
    },
    /// The part after `@` is not a valid digest.
    // Inlined in the message rather than a `#[source]`, so error chains do not print it twice.
    #[error("invalid reference \"{input}\": {error}")]
    InvalidDigest {
        /// The whole input.
        input: String,
        /// Why the digest is invalid.
        error: DigestError,
    },
    /// [`Repository::parse`] was given a tag or digest.
    #[error("invalid repository \"{input}\": a repository takes no tag or digest")]
    UnexpectedTagOrDigest {
        /// The whole input.
        input: String,
    },
}

fn describe_component(component: &str) -> String {
    if component.is_empty() {
        "empty path component (leading, trailing or doubled \"/\")".to_string()
    } else {
        format!(
            "invalid path component \"{component}\": use lower-case letters and digits, \
             separated by \".\", \"_\", \"__\" or dashes"
        )
    }
}

fn describe_tag(tag: &str) -> String {
    if tag.is_empty() {
        "empty tag".to_string()
    } else {
        format!(
            "invalid tag \"{tag}\": use letters, digits, \"_\", \".\" and \"-\", \
             not starting with \".\" or \"-\""
        )
    }
}

/// A repository: registry plus path, without tag or digest (`docker.io/library/ubuntu`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Repository {
    registry: String,
    path: String,
}

impl Repository {
    /// Parses `[host[:port]/]path`, normalised like a [`Reference`]; a tag or digest is an error.
    pub fn parse(input: &str) -> Result<Repository, ReferenceError> {
        let parts = Parts::split(input)?;
        if parts.tag.is_some() || parts.digest.is_some() {
            return Err(ReferenceError::UnexpectedTagOrDigest {
                input: input.to_string(),
            });
        }
        Repository::from_name(parts.name, input)
    }

    /// The registry as written, except that Docker Hub is always `docker.io`.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The host (and port) serving the registry API: `registry-1.docker.io` for Docker Hub.
    pub fn api_host(&self) -> &str {
        if self.registry == DEFAULT_REGISTRY {
            DOCKER_HUB_API_HOST
        } else {
            &self.registry
        }
    }

    /// The repository path, as it goes in `/v2/<path>/…` URLs (`library/ubuntu`).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The repository `path` on `registry`, taken as a host whatever it looks like (a
    /// mirror called `mirror`, without a dot or port, is still a host here).
    pub(crate) fn on_registry(registry: &str, path: &str) -> Result<Repository, ReferenceError> {
        let input = format!("{registry}/{path}");
        check_registry(registry, &input)?;
        check_path(path, &input)?;
        if path.len() > NAME_MAX {
            return Err(ReferenceError::NameTooLong {
                len: path.len(),
                input,
            });
        }
        Ok(Repository {
            registry: registry.to_string(),
            path: path.to_string(),
        })
    }

    /// Validates and normalises the name part of `input`.
    fn from_name(name: &str, input: &str) -> Result<Repository, ReferenceError> {
        if name.is_empty() {
            return Err(ReferenceError::MissingName {
                input: input.to_string(),
            });
        }
        let (registry, path) = split_registry(name);
        if let Some(registry) = registry {
            check_registry(registry, input)?;
        }
        check_path(path, input)?;
        let registry = match registry {
            None | Some(LEGACY_DOCKER_HUB) => DEFAULT_REGISTRY,
            Some(registry) => registry,
        };
        let path = if registry == DEFAULT_REGISTRY && !path.contains('/') {
            format!("{OFFICIAL_NAMESPACE}/{path}")
        } else {
            path.to_string()
        };
        // Measured after normalisation (as docker does), so the display form parses back.
        if path.len() > NAME_MAX {
            return Err(ReferenceError::NameTooLong {
                input: input.to_string(),
                len: path.len(),
            });
        }
        Ok(Repository {
            registry: registry.to_string(),
            path,
        })
    }
}

impl fmt::Display for Repository {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.path)
    }
}

impl FromStr for Repository {
    type Err = ReferenceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Repository::parse(s)
    }
}

impl serde::Serialize for Repository {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A parsed image reference: a [`Repository`] with an optional tag and an optional digest.
///
/// ```
/// use ocisdk::reference::{Reference, Target};
/// let r = Reference::parse("ubuntu:22.04").unwrap();
/// assert_eq!(r.to_string(), "docker.io/library/ubuntu:22.04");
/// assert_eq!(r.api_host(), "registry-1.docker.io");
/// assert_eq!(r.target(), Target::Tag("22.04"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    repository: Repository,
    tag: Option<String>,
    digest: Option<Digest>,
}

/// What to fetch for a [`Reference`]: the `<reference>` of `/v2/<name>/manifests/<reference>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target<'a> {
    /// A tag, possibly the default [`DEFAULT_TAG`].
    Tag(&'a str),
    /// A digest, which wins over any tag.
    Digest(&'a Digest),
}

impl fmt::Display for Target<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Tag(tag) => f.write_str(tag),
            Target::Digest(digest) => digest.fmt(f),
        }
    }
}

impl Reference {
    /// Parses `[host[:port]/]path[:tag][@digest]`, normalising Docker Hub names.
    pub fn parse(input: &str) -> Result<Reference, ReferenceError> {
        let parts = Parts::split(input)?;
        let repository = Repository::from_name(parts.name, input)?;
        if let Some(tag) = parts.tag {
            check_tag(tag, input)?;
        }
        let digest = parts
            .digest
            .map(|d| {
                Digest::parse(d).map_err(|error| ReferenceError::InvalidDigest {
                    input: input.to_string(),
                    error,
                })
            })
            .transpose()?;
        Ok(Reference {
            repository,
            tag: parts.tag.map(str::to_string),
            digest,
        })
    }

    /// The repository, without tag or digest.
    pub fn repository(&self) -> &Repository {
        &self.repository
    }

    /// The registry as written, except that Docker Hub is always `docker.io`.
    pub fn registry(&self) -> &str {
        self.repository.registry()
    }

    /// The host (and port) serving the registry API: `registry-1.docker.io` for Docker Hub.
    pub fn api_host(&self) -> &str {
        self.repository.api_host()
    }

    /// The repository path (`library/ubuntu`).
    pub fn path(&self) -> &str {
        self.repository.path()
    }

    /// The tag, if one was given (kept for display even when there is a digest).
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest, if one was given.
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// What to fetch: the digest if any, else the tag, else [`DEFAULT_TAG`].
    pub fn target(&self) -> Target<'_> {
        match (&self.digest, &self.tag) {
            (Some(digest), _) => Target::Digest(digest),
            (None, Some(tag)) => Target::Tag(tag),
            (None, None) => Target::Tag(DEFAULT_TAG),
        }
    }

    /// The same reference with `tag` instead of its tag; a digest is kept (and still wins).
    pub fn with_tag(&self, tag: &str) -> Result<Reference, ReferenceError> {
        check_tag(tag, &format!("{}:{tag}", self.repository))?;
        Ok(Reference {
            tag: Some(tag.to_string()),
            ..self.clone()
        })
    }

    /// The same tag and digest in another repository.
    pub(crate) fn in_repository(&self, repository: Repository) -> Reference {
        Reference {
            repository,
            ..self.clone()
        }
    }

    /// The same reference pinned to `digest`; the tag is kept for display.
    pub fn with_digest(&self, digest: Digest) -> Reference {
        Reference {
            digest: Some(digest),
            ..self.clone()
        }
    }
}

impl From<Repository> for Reference {
    fn from(repository: Repository) -> Reference {
        Reference {
            repository,
            tag: None,
            digest: None,
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.repository.fmt(f)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

impl FromStr for Reference {
    type Err = ReferenceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Reference::parse(s)
    }
}

impl serde::Serialize for Reference {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// The three parts of a reference, split but not yet validated.
struct Parts<'a> {
    name: &'a str,
    tag: Option<&'a str>,
    digest: Option<&'a str>,
}

impl<'a> Parts<'a> {
    fn split(input: &'a str) -> Result<Parts<'a>, ReferenceError> {
        if input.is_empty() {
            return Err(ReferenceError::Empty);
        }
        // No name or tag contains '@', so the first one starts the digest.
        let (rest, digest) = match input.split_once('@') {
            Some((rest, digest)) => (rest, Some(digest)),
            None => (input, None),
        };
        // A ':' after the last '/' starts the tag; earlier ones belong to the registry
        // (`host:5000/a`, `[::1]/a`).
        let last_component = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_component..].find(':') {
            Some(i) => {
                let colon = last_component + i;
                (&rest[..colon], Some(&rest[colon + 1..]))
            }
            None => (rest, None),
        };
        Ok(Parts { name, tag, digest })
    }
}

/// Splits off the registry: the first component is one when it looks like a host
/// (has a `.` or a `:` port, or is `localhost`), as in docker's `splitDockerDomain`.
///
/// Unlike docker, an upper-case first component (`Foo/bar`) is not taken for a host: it is far
/// more likely a mistyped repository, and the lower-case error says so.
fn split_registry(name: &str) -> (Option<&str>, &str) {
    match name.split_once('/') {
        Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" => {
            (Some(first), rest)
        }
        _ => (None, name),
    }
}

/// Checks `host[:port]`, where host is DNS labels joined by `.` or an IPv6 address in brackets.
fn check_registry(registry: &str, input: &str) -> Result<(), ReferenceError> {
    let fail = |reason| ReferenceError::InvalidRegistry {
        input: input.to_string(),
        registry: registry.to_string(),
        reason,
    };
    let port = if let Some(bracketed) = registry.strip_prefix('[') {
        let (address, after) = bracketed
            .split_once(']')
            .ok_or_else(|| fail("unclosed \"[\" in IPv6 address"))?;
        if address.is_empty() || !address.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
            return Err(fail("invalid IPv6 address"));
        }
        match after {
            "" => None,
            _ => Some(
                after
                    .strip_prefix(':')
                    .ok_or_else(|| fail("unexpected characters after IPv6 address"))?,
            ),
        }
    } else {
        let (host, port) = match registry.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (registry, None),
        };
        if !host.split('.').all(is_host_label) {
            return Err(fail("invalid host name"));
        }
        port
    };
    if let Some(port) = port {
        // Digits only (u16 would also take a leading '+'), and a real port number.
        if !port.bytes().all(|b| b.is_ascii_digit()) || port.parse::<u16>().is_err() {
            return Err(fail("invalid port"));
        }
    }
    Ok(())
}

/// `[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]`
fn is_host_label(label: &str) -> bool {
    let b = label.as_bytes();
    match (b.first(), b.last()) {
        (Some(first), Some(last)) => {
            first.is_ascii_alphanumeric()
                && last.is_ascii_alphanumeric()
                && b.iter().all(|&c| c.is_ascii_alphanumeric() || c == b'-')
        }
        _ => false,
    }
}

/// Checks each `/`-separated component, reporting the first wrong one.
fn check_path(path: &str, input: &str) -> Result<(), ReferenceError> {
    for component in path.split('/') {
        // Validate the lower-cased form first, so that upper case alone gets its own message.
        if !is_path_component(&component.to_ascii_lowercase()) {
            return Err(ReferenceError::InvalidPath {
                input: input.to_string(),
                component: component.to_string(),
            });
        }
        if component.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(ReferenceError::UpperCase {
                input: input.to_string(),
                path: path.to_string(),
            });
        }
    }
    Ok(())
}

/// `[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*`: alphanumeric at both ends, and every run of other
/// characters between them is `.`, `_`, `__` or dashes only.
fn is_path_component(component: &str) -> bool {
    let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    component.starts_with(alnum)
        && component.ends_with(alnum)
        && component
            .split(alnum)
            .filter(|sep| !sep.is_empty())
            .all(|sep| matches!(sep, "." | "_" | "__") || sep.bytes().all(|b| b == b'-'))
}

/// Whether `tag` is a well-formed tag (`[\w][\w.-]{0,127}`), one a reference can name.
///
/// ```
/// assert!(ocisdk::reference::is_valid_tag("bookworm-3.11.0"));
/// assert!(!ocisdk::reference::is_valid_tag("-x"));
/// ```
pub fn is_valid_tag(tag: &str) -> bool {
    check_tag(tag, tag).is_ok()
}

/// `[\w][\w.-]{0,127}`
fn check_tag(tag: &str, input: &str) -> Result<(), ReferenceError> {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let well_formed = tag.bytes().next().is_some_and(word)
        && tag.bytes().all(|b| word(b) || b == b'.' || b == b'-');
    if !well_formed {
        return Err(ReferenceError::InvalidTag {
            input: input.to_string(),
            tag: tag.to_string(),
        });
    }
    if tag.len() > TAG_MAX {
        return Err(ReferenceError::TagTooLong {
            input: input.to_string(),
            len: tag.len(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::Algorithm;

    const HEX: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    /// Expands placeholders so the tables can stay `&str`: `<D>`/`<D512>` digests, `<HEX>` and
    /// `<HEXUPPER>` bare sha256 hex, `<T…>` tags and `<N…>` names of that many characters.
    fn expand(s: &str) -> String {
        s.replace("<D512>", &format!("sha512:{}", "ab".repeat(64)))
            .replace("<D>", &format!("sha256:{HEX}"))
            .replace("<T128>", &"t".repeat(128))
            .replace("<T129>", &"t".repeat(129))
            .replace("<N255>", &format!("a/{}", "b".repeat(253)))
            .replace("<N250>", &"c".repeat(250))
            .replace("<N256>", &format!("a/{}", "b".repeat(254)))
            .replace("<HEXUPPER>", &HEX.to_uppercase())
            .replace("<HEX>", HEX)
    }

    #[test]
    fn parses_valid_references() {
        // (input, registry, path, tag, digest); "" = no tag or digest.
        #[rustfmt::skip]
        let cases = [
            ("ubuntu", "docker.io", "library/ubuntu", "", ""),
            ("ubuntu:22.04", "docker.io", "library/ubuntu", "22.04", ""),
            ("library/ubuntu", "docker.io", "library/ubuntu", "", ""),
            ("docker.io/library/ubuntu:latest", "docker.io", "library/ubuntu", "latest", ""),
            ("docker.io/ubuntu", "docker.io", "library/ubuntu", "", ""),
            ("index.docker.io/foo/bar", "docker.io", "foo/bar", "", ""),
            ("index.docker.io/ubuntu", "docker.io", "library/ubuntu", "", ""),
            ("mcr.microsoft.com/oryx/python-sdk:bookworm-3.11.0", "mcr.microsoft.com", "oryx/python-sdk", "bookworm-3.11.0", ""),
            ("localhost/foo", "localhost", "foo", "", ""),
            ("localhost:5000/foo/bar:tag", "localhost:5000", "foo/bar", "tag", ""),
            // Without a '/', `localhost` and a host-like word are repository names, as in docker.
            ("localhost", "docker.io", "library/localhost", "", ""),
            ("registry.example.com", "docker.io", "library/registry.example.com", "", ""),
            ("127.0.0.1:5000/sdks/python:bookworm-default", "127.0.0.1:5000", "sdks/python", "bookworm-default", ""),
            ("[::1]:5000/a/b", "[::1]:5000", "a/b", "", ""),
            ("[fe80::1]/a:t", "[fe80::1]", "a", "t", ""),
            ("ghcr.io/owner/repo@<D>", "ghcr.io", "owner/repo", "", "<D>"),
            ("a/b:tag@<D>", "docker.io", "a/b", "tag", "<D>"),
            ("x.io/a@<D512>", "x.io", "a", "", "<D512>"),
            ("registry.example.com/a/b/c/d", "registry.example.com", "a/b/c/d", "", ""),
            ("foo_bar/baz__qux/a-b--c/x.y", "docker.io", "foo_bar/baz__qux/a-b--c/x.y", "", ""),
            ("a0/0a/a.b_c__d-e---f/9", "docker.io", "a0/0a/a.b_c__d-e---f/9", "", ""),
            ("host.io/a:<T128>", "host.io", "a", "<T128>", ""),
            ("a/b:_Tag.1-X", "docker.io", "a/b", "_Tag.1-X", ""),
            ("myhost:443/x", "myhost:443", "x", "", ""),
            ("Registry.Example.com/x", "Registry.Example.com", "x", "", ""),
            ("my-host.a1.io:65535/x", "my-host.a1.io:65535", "x", "", ""),
            ("<N255>", "docker.io", "<N255>", "", ""),
        ];
        for (input, registry, path, tag, digest) in cases {
            let (input, path, tag, digest) =
                (expand(input), expand(path), expand(tag), expand(digest));
            let r = Reference::parse(&input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(
                (r.registry(), r.path()),
                (registry, path.as_str()),
                "{input}"
            );
            assert_eq!(r.tag().unwrap_or(""), tag, "{input}");
            assert_eq!(
                r.digest().map(Digest::to_string).unwrap_or_default(),
                digest,
                "{input}"
            );
            // Display is the normalised full form `registry/path[:tag][@digest]`...
            let tag = if tag.is_empty() {
                tag
            } else {
                format!(":{tag}")
            };
            let digest = if digest.is_empty() {
                digest
            } else {
                format!("@{digest}")
            };
            assert_eq!(
                r.to_string(),
                format!("{registry}/{path}{tag}{digest}"),
                "{input}"
            );
            // ...and canonical: it parses back to the same reference.
            assert_eq!(Reference::parse(&r.to_string()), Ok(r.clone()), "{input}");
            assert_eq!(input.parse::<Reference>(), Ok(r), "{input}");
        }
    }

    /// The variant's name and the detail that pins down the wrong part, for compact tables.
    fn kind(e: &ReferenceError) -> (&'static str, String) {
        use ReferenceError as E;
        match e {
            E::Empty => ("Empty", String::new()),
            E::MissingName { .. } => ("MissingName", String::new()),
            E::InvalidRegistry { reason, .. } => ("InvalidRegistry", reason.to_string()),
            E::InvalidPath { component, .. } => ("InvalidPath", component.clone()),
            E::UpperCase { path, .. } => ("UpperCase", path.clone()),
            E::NameTooLong { len, .. } => ("NameTooLong", len.to_string()),
            E::InvalidTag { tag, .. } => ("InvalidTag", tag.clone()),
            E::TagTooLong { len, .. } => ("TagTooLong", len.to_string()),
            // The DigestError variant's name, from its derived Debug.
            E::InvalidDigest { error, .. } => {
                let debug = format!("{error:?}");
                (
                    "InvalidDigest",
                    debug.split([' ', '(']).next().unwrap().to_string(),
                )
            }
            E::UnexpectedTagOrDigest { .. } => ("UnexpectedTagOrDigest", String::new()),
        }
    }

    #[test]
    fn rejects_invalid_references() {
        // (input, variant, detail: component, tag, path, registry reason, length or DigestError)
        #[rustfmt::skip]
        let cases = [
            ("", "Empty", ""),
            (":tag", "MissingName", ""),
            ("@<D>", "MissingName", ""),
            // No '.', ':' or localhost: these are repository paths, not registries.
            ("UPPER/case", "UpperCase", "UPPER/case"),
            ("Foo/bar", "UpperCase", "Foo/bar"),
            ("Ubuntu:22.04", "UpperCase", "Ubuntu"),
            ("a/B", "UpperCase", "a/B"),
            ("localhost:5000/Foo", "UpperCase", "Foo"),
            ("a//b", "InvalidPath", ""),
            ("a/b/", "InvalidPath", ""),
            ("/a", "InvalidPath", ""),
            ("registry.io/", "InvalidPath", ""),
            ("a/-b", "InvalidPath", "-b"),
            ("a/b-", "InvalidPath", "b-"),
            ("a/b.", "InvalidPath", "b."),
            ("a/.b", "InvalidPath", ".b"),
            ("a/b..c", "InvalidPath", "b..c"),
            ("a/b___c", "InvalidPath", "b___c"),
            ("a/b._c", "InvalidPath", "b._c"),
            ("a/b-_c", "InvalidPath", "b-_c"),
            ("a b", "InvalidPath", "a b"),
            (" a/b", "InvalidPath", " a"),
            ("a/\u{fc}", "InvalidPath", "\u{fc}"),
            ("a/b:", "InvalidTag", ""),
            ("a/b:-tag", "InvalidTag", "-tag"),
            ("a/b:.tag", "InvalidTag", ".tag"),
            ("a/b:t g", "InvalidTag", "t g"),
            ("a/b:tag:extra", "InvalidTag", "tag:extra"),
            ("a/b:<T129>", "TagTooLong", "129"),
            ("<N256>", "NameTooLong", "256"),
            ("<N250>", "NameTooLong", "258"), // counted with the implied `library/`
            ("a/b@sha256:123", "InvalidDigest", "BadLength"),
            ("a/b:x@sha256:12", "InvalidDigest", "BadLength"),
            ("a/b@sha512:<HEX>", "InvalidDigest", "BadLength"),
            ("a/b@md5:d41d8cd98f00b204e9800998ecf8427e", "InvalidDigest", "UnsupportedAlgorithm"),
            ("a/b@sha256:<HEXUPPER>", "InvalidDigest", "NotHex"),
            ("a/b@", "InvalidDigest", "MissingColon"),
            ("a/b@<D>@<D>", "InvalidDigest", "BadLength"),
            ("host:port/a", "InvalidRegistry", "invalid port"),
            ("host:/a", "InvalidRegistry", "invalid port"),
            ("host:99999/a", "InvalidRegistry", "invalid port"),
            ("host:+80/a", "InvalidRegistry", "invalid port"),
            ("-host.io/a", "InvalidRegistry", "invalid host name"),
            ("host-.io/a", "InvalidRegistry", "invalid host name"),
            ("host..io/a", "InvalidRegistry", "invalid host name"),
            ("ho_st.io/a", "InvalidRegistry", "invalid host name"),
            ("[::1/a", "InvalidRegistry", "unclosed \"[\" in IPv6 address"),
            ("[]:5000/a", "InvalidRegistry", "invalid IPv6 address"),
            ("[::g]/a", "InvalidRegistry", "invalid IPv6 address"),
            ("[::1]x/a", "InvalidRegistry", "unexpected characters after IPv6 address"),
            ("[::1]:x/a", "InvalidRegistry", "invalid port"),
        ];
        for (input, variant, detail) in cases {
            let input = expand(input);
            let err = Reference::parse(&input).unwrap_err();
            assert_eq!(
                kind(&err),
                (variant, detail.to_string()),
                "{input:?}: {err}"
            );
            let quoted = format!("\"{input}\"");
            assert!(
                err.to_string().contains(&quoted),
                "{err} should quote the input"
            );
        }
    }

    #[test]
    fn error_messages_say_what_is_wrong() {
        let cases = [
            ("", "invalid reference \"\": empty reference"),
            ("Foo/bar", "invalid reference \"Foo/bar\": repository name must be lower-case (\"Foo/bar\")"),
            ("a/b:", "invalid reference \"a/b:\": empty tag"),
            (
                "a/b:x@sha256:12",
                "invalid reference \"a/b:x@sha256:12\": invalid digest \"sha256:12\": \
                 sha256 needs 64 hex characters, got 2",
            ),
            ("h:x/a", "invalid reference \"h:x/a\": invalid registry \"h:x\": invalid port"),
            ("a//b", "invalid reference \"a//b\": empty path component (leading, trailing or doubled \"/\")"),
        ];
        for (input, want) in cases {
            assert_eq!(Reference::parse(input).unwrap_err().to_string(), want);
        }
        let long = Reference::parse(&expand("<N256>")).unwrap_err().to_string();
        assert!(
            long.ends_with("repository name longer than 255 characters (256)"),
            "{long}"
        );
        let msg = Reference::parse("a/a..b").unwrap_err().to_string();
        assert!(msg.contains("invalid path component \"a..b\""), "{msg}");
    }

    #[test]
    fn target_prefers_digest_then_tag_then_latest() {
        let r = Reference::parse("ubuntu").unwrap();
        assert_eq!(r.target(), Target::Tag("latest"));
        assert_eq!(r.tag(), None);
        let r = Reference::parse("ubuntu:22.04").unwrap();
        assert_eq!(r.target().to_string(), "22.04");
        let r = Reference::parse(&expand("a/b:tag@<D>")).unwrap();
        assert!(matches!(r.target(), Target::Digest(d) if d.algorithm() == Algorithm::Sha256));
        assert_eq!(r.target().to_string(), expand("<D>"));
    }

    #[test]
    fn api_host_maps_docker_hub() {
        for (input, registry, api_host) in [
            ("ubuntu", "docker.io", "registry-1.docker.io"),
            ("docker.io/a/b", "docker.io", "registry-1.docker.io"),
            ("index.docker.io/a/b", "docker.io", "registry-1.docker.io"),
            ("ghcr.io/a/b", "ghcr.io", "ghcr.io"),
            ("localhost:5000/a", "localhost:5000", "localhost:5000"),
        ] {
            let r = Reference::parse(input).unwrap();
            assert_eq!(
                (r.registry(), r.api_host()),
                (registry, api_host),
                "{input}"
            );
            assert_eq!(r.repository().api_host(), api_host, "{input}");
        }
    }

    #[test]
    fn with_tag_and_with_digest_keep_the_other() {
        let digest = Digest::parse(&expand("<D>")).unwrap();
        let r = Reference::parse("ghcr.io/o/r:v1").unwrap();
        let pinned = r.with_digest(digest.clone());
        assert_eq!(pinned.to_string(), expand("ghcr.io/o/r:v1@<D>"));
        assert_eq!(pinned.target(), Target::Digest(&digest));
        let retagged = pinned.with_tag("v2").unwrap();
        assert_eq!(retagged.to_string(), expand("ghcr.io/o/r:v2@<D>"));
        assert_eq!(
            r.with_tag("-bad"),
            Err(ReferenceError::InvalidTag {
                input: "ghcr.io/o/r:-bad".into(),
                tag: "-bad".into()
            })
        );
    }

    #[test]
    fn repository_parses_names_only() {
        let repo = Repository::parse("ubuntu").unwrap();
        assert_eq!(
            (repo.registry(), repo.path()),
            ("docker.io", "library/ubuntu")
        );
        assert_eq!(repo.to_string(), "docker.io/library/ubuntu");
        assert_eq!(repo.api_host(), "registry-1.docker.io");
        let repo: Repository = "localhost:5000/a/b".parse().unwrap();
        assert_eq!(repo.to_string(), "localhost:5000/a/b");
        assert_eq!(
            Reference::parse("localhost:5000/a/b:t")
                .unwrap()
                .repository(),
            &repo
        );
        assert_eq!(
            Reference::from(repo.clone()).target(),
            Target::Tag(DEFAULT_TAG)
        );
        for input in ["a/b:tag", "a/b@<D>", "a/b:t@<D>", "a/b:"] {
            let input = expand(input);
            assert_eq!(
                Repository::parse(&input),
                Err(ReferenceError::UnexpectedTagOrDigest {
                    input: input.clone()
                })
            );
        }
        assert!(matches!(
            Repository::parse("A/b"),
            Err(ReferenceError::UpperCase { .. })
        ));
        assert_eq!(Repository::parse(""), Err(ReferenceError::Empty));
    }

    #[test]
    fn serializes_as_display_string() {
        let r = Reference::parse(&expand("ubuntu:22.04@<D>")).unwrap();
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(
            json,
            format!("\"{}\"", expand("docker.io/library/ubuntu:22.04@<D>"))
        );
        let json = serde_json::to_string(r.repository()).unwrap();
        assert_eq!(json, "\"docker.io/library/ubuntu\"");
    }
}
