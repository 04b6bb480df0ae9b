//! The library's error type: every failure carries where it happened (registry, repository,
//! reference), what the registry said, and whether trying again could help.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::digest::Digest;
use crate::reference::ReferenceError;
use crate::registry::RegistryErrorBody;

/// Where a registry operation was aimed: enough for a person to retry it by hand.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Location {
    // Boxed strings keep every `Result` of this crate small: a location sits in most errors.
    /// The registry host, e.g. `mcr.microsoft.com` or `127.0.0.1:5000`.
    pub registry: Box<str>,
    /// The repository path, e.g. `oryx/python-sdk`.
    pub repository: Box<str>,
    /// The tag or digest, when the operation had one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference: Option<Box<str>>,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        match &self.reference {
            Some(r) if r.contains(':') => write!(f, "@{r}"),
            Some(r) => write!(f, ":{r}"),
            None => Ok(()),
        }
    }
}

/// The broad class of a failure; the CLI maps each to its documented exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorKind {
    /// Bad input from the caller: an invalid reference or option.
    Usage,
    /// The repository, tag, manifest, blob or version does not exist.
    NotFound,
    /// The registry refused authentication or authorisation.
    Auth,
    /// Content did not match its digest or size.
    Verification,
    /// The registry could not be reached, or kept failing.
    Unreachable,
    /// Anything else.
    Other,
}

/// Every error the library returns.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The reference string is not valid.
    #[error(transparent)]
    Reference(#[from] ReferenceError),

    /// The registry answered with an HTTP error status.
    #[error("{operation} {at}: registry answered HTTP {status}{}", describe_body(.method, *.status, .at, .body))]
    Status {
        /// What was being done, e.g. "fetching manifest".
        operation: &'static str,
        /// The request's method: the answer to a `HEAD` never has a body.
        method: reqwest::Method,
        /// Where.
        at: Location,
        /// The HTTP status code.
        status: u16,
        /// The distribution error body, when the registry sent one.
        body: Option<RegistryErrorBody>,
        /// How many seconds the server asked to wait before trying again (`Retry-After`,
        /// in seconds or as an HTTP date, counted from the answer and rounded up; at most
        /// `u16::MAX`, some 18 hours, far past any retry policy's wait), when it said. The
        /// retry policy honours it for requests retried after they became this error (a
        /// token request, an upload started over). See [`Error::retry_after`].
        // Whole seconds in a u16, not a `Duration`: every `Result` of the crate carries this
        // variant's size, which clippy's `result_large_err` keeps under 128 bytes.
        retry_after_secs: Option<u16>,
    },

    /// The request never got an HTTP answer (DNS, connect, TLS, reset, timeout).
    #[error("{operation} {at}: {}", crate::transport::describe_reqwest(.source))]
    Transport {
        /// What was being done.
        operation: &'static str,
        /// Where.
        at: Location,
        /// The underlying client error.
        #[source]
        source: reqwest::Error,
    },

    /// The body stopped arriving for longer than the stall timeout.
    #[error("{operation} {at}: no data received for {seconds} s (stall timeout)")]
    Stalled {
        /// What was being done.
        operation: &'static str,
        /// Where.
        at: Location,
        /// The stall timeout that elapsed.
        seconds: u64,
    },

    /// Content hashed to a different digest than expected.
    #[error("verification failed for {at}: expected {expected}, got {actual}")]
    DigestMismatch {
        /// Where the content came from.
        at: Location,
        /// The digest asked for.
        expected: Digest,
        /// The digest of what arrived.
        actual: Digest,
    },

    /// Content had a different size than its descriptor said.
    #[error("verification failed for {at}: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        /// Where the content came from.
        at: Location,
        /// The size the descriptor promised.
        expected: u64,
        /// The size that arrived (so far).
        actual: u64,
    },

    /// A response was larger than the limit set for its kind.
    #[error("{what} from {at} is larger than the {limit}-byte limit")]
    TooLarge {
        /// What was being read, e.g. "manifest".
        what: &'static str,
        /// Where.
        at: Location,
        /// The limit in bytes.
        limit: u64,
    },

    /// A JSON document did not parse.
    #[error("{what} from {url} is not valid: {source}; it starts with {prefix:?}")]
    InvalidDocument {
        /// What was being parsed.
        what: &'static str,
        /// The URL it came from.
        url: String,
        /// The first bytes, to help tell an HTML error page from broken JSON.
        prefix: String,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },

    /// The registry broke the protocol (missing header, bad Link, wrong media type…).
    #[error("{at}: {message}")]
    Protocol {
        /// Where.
        at: Location,
        /// What was wrong.
        message: String,
    },

    /// The image has no manifest for the requested platform.
    #[error("{at} has no manifest for platform {wanted}; it has: {available}")]
    NoMatchingPlatform {
        /// The index, or the single-platform image.
        at: Location,
        /// The platform asked for.
        wanted: String,
        /// The platforms the index lists, or the one the image's config names.
        available: String,
    },

    /// The caller asked for something the content does not have (e.g. layer 3 of 1).
    #[error("{at}: {message}")]
    Unsupported {
        /// Where.
        at: Location,
        /// What, and what to do instead.
        message: String,
    },

    /// A local file operation failed.
    #[error("{action} {}: {source}", .path.display())]
    Io {
        /// What was being done, e.g. "creating".
        action: &'static str,
        /// The file or folder.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },

    /// The caller passed a setting that cannot work.
    #[error("{0}")]
    InvalidInput(String),

    /// The cache folder, or a folder above it, is one another user could change, so
    /// removing files in it could remove files where they choose (`cache prune`, `clean`).
    /// Nothing was removed.
    #[error("the cache folder {} cannot be trusted: {} is {}; another user could have files removed where they choose: {}", cache.display(), path.display(), crate::trust::untrusted_text(*owner, *mode, *user, crate::trust::CACHE_STICKY), crate::trust::CACHE_REMEDY)]
    UntrustedCache {
        /// The cache folder.
        cache: PathBuf,
        /// The folder or symlink that failed the check.
        path: PathBuf,
        /// Its owner's uid.
        owner: u32,
        /// Its mode (permission, setuid, setgid and sticky bits).
        mode: u32,
        /// The effective uid of this process, whose folders are trusted besides root's.
        user: u32,
    },

    /// An OCI image layout holds no image under the name asked for.
    #[error("the OCI layout {} has no image named {name:?}; it has: {available}", .layout.display())]
    NotInLayout {
        /// The layout folder.
        layout: PathBuf,
        /// The name (`org.opencontainers.image.ref.name`) asked for.
        name: String,
        /// The names it has.
        available: String,
    },

    /// Authentication could not be done: the token server refused, the challenge was
    /// unusable or unsafe to answer, or the credentials could not be read. (A registry that
    /// refuses the credentials it was given is an [`Error::Status`] 401/403.) Never holds a
    /// secret.
    #[error("{operation} {at}: {message}")]
    Auth {
        /// What was being done, e.g. "fetching manifest".
        operation: &'static str,
        /// Where.
        at: Location,
        /// What went wrong, in the words of the token server when it said.
        message: String,
    },

    /// Stopped before it finished because the work it was part of failed elsewhere (another
    /// blob of a copy): it sent no further request, and cancelled an upload session it had
    /// open. A copy reports the failure that stopped it, not this.
    #[error("{operation} {at}: stopped, since another part of the work failed")]
    Cancelled {
        /// What was being done, e.g. "uploading blob".
        operation: &'static str,
        /// Where.
        at: Location,
    },

    /// A push stored its manifest and set its first tags, then failed to set another: the
    /// image is in place under `tagged`, only `failed` (and any tag after it) is missing.
    /// Kind, location and status are those of the failed tag's request.
    #[error(
        "{source}; the manifest was pushed ({manifest_digest}) and {} points at it, but {failed} does not",
        .tagged.join(", ")
    )]
    PartlyTagged {
        /// The digest of the manifest pushed.
        manifest_digest: Digest,
        /// The tags that point at it.
        tagged: Vec<String>,
        /// The tag that could not be set.
        failed: String,
        /// Why it could not.
        #[source]
        source: Box<Error>,
    },
}

/// The registry's own words, or for a read of a tag or digest that came back 404 without
/// them (always so for a `HEAD`), what the 404 means: without it, `digest` of a missing tag
/// said less than `manifest` of the same tag, which gets `MANIFEST_UNKNOWN`.
fn describe_body(
    method: &reqwest::Method,
    status: u16,
    at: &Location,
    body: &Option<RegistryErrorBody>,
) -> String {
    if let Some(b) = body.as_ref().filter(|b| !b.errors.is_empty()) {
        return format!(": {b}");
    }
    let read = matches!(*method, reqwest::Method::GET | reqwest::Method::HEAD);
    match at.reference.as_deref() {
        Some(reference) if read && status == 404 => {
            let missing = if reference.contains(':') {
                format!("{} has nothing with the digest {reference}", at.repository)
            } else {
                format!("no manifest is tagged {reference} in {}", at.repository)
            };
            format!(": not found: {missing} (or the repository does not exist)")
        }
        _ => String::new(),
    }
}

impl Error {
    /// The class of this failure.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Reference(_) | Error::InvalidInput(_) | Error::UntrustedCache { .. } => {
                ErrorKind::Usage
            }
            Error::Status { status, .. } => match status {
                401 | 403 => ErrorKind::Auth,
                404 => ErrorKind::NotFound,
                408 | 429 | 500..=599 => ErrorKind::Unreachable,
                _ => ErrorKind::Other,
            },
            Error::Transport { .. } | Error::Stalled { .. } => ErrorKind::Unreachable,
            Error::DigestMismatch { .. } | Error::SizeMismatch { .. } => ErrorKind::Verification,
            Error::NoMatchingPlatform { .. } | Error::NotInLayout { .. } => ErrorKind::NotFound,
            Error::TooLarge { .. }
            | Error::InvalidDocument { .. }
            | Error::Protocol { .. }
            | Error::Unsupported { .. }
            | Error::Io { .. }
            | Error::Cancelled { .. } => ErrorKind::Other,
            Error::Auth { .. } => ErrorKind::Auth,
            Error::PartlyTagged { source, .. } => source.kind(),
        }
    }

    /// Whether the same request might succeed if tried again later.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Status { status, .. } => matches!(status, 408 | 429 | 500 | 502 | 503 | 504),
            Error::Transport { source, .. } => !source.is_builder() && !source.is_redirect(),
            Error::Stalled { .. } => true,
            Error::PartlyTagged { source, .. } => source.is_retryable(),
            _ => false,
        }
    }

    /// The HTTP status, when the registry answered with an error.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Status { status, .. } => Some(*status),
            Error::PartlyTagged { source, .. } => source.status(),
            _ => None,
        }
    }

    /// How long the server asked to wait before trying again (its `Retry-After`), when it
    /// answered with an error status and said.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::Status {
                retry_after_secs, ..
            } => retry_after_secs.map(|s| Duration::from_secs(s.into())),
            Error::PartlyTagged { source, .. } => source.retry_after(),
            _ => None,
        }
    }

    /// Where the failing operation was aimed, when it was a registry operation.
    pub fn location(&self) -> Option<&Location> {
        match self {
            Error::Status { at, .. }
            | Error::Transport { at, .. }
            | Error::Stalled { at, .. }
            | Error::DigestMismatch { at, .. }
            | Error::SizeMismatch { at, .. }
            | Error::TooLarge { at, .. }
            | Error::Protocol { at, .. }
            | Error::NoMatchingPlatform { at, .. }
            | Error::Unsupported { at, .. }
            | Error::Auth { at, .. }
            | Error::Cancelled { at, .. } => Some(at),
            Error::PartlyTagged { source, .. } => source.location(),
            _ => None,
        }
    }

    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Error {
        Error::Io {
            action,
            path: path.into(),
            source,
        }
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    fn location() -> Location {
        Location {
            registry: "127.0.0.1:5000".into(),
            repository: "oryx/python-sdk".into(),
            reference: Some("bookworm-3.11.0".into()),
        }
    }

    #[test]
    fn status_errors_name_the_place_and_map_to_kinds() {
        let err = Error::Status {
            operation: "pushing manifest",
            method: reqwest::Method::PUT,
            at: location(),
            status: 404,
            body: None,
            retry_after_secs: None,
        };
        assert_eq!(
            err.to_string(),
            "pushing manifest 127.0.0.1:5000/oryx/python-sdk:bookworm-3.11.0: registry answered HTTP 404"
        );
        assert_eq!(err.kind(), ErrorKind::NotFound);
        assert!(!err.is_retryable());
        for (status, kind, retry) in [
            (401, ErrorKind::Auth, false),
            (403, ErrorKind::Auth, false),
            (429, ErrorKind::Unreachable, true),
            (503, ErrorKind::Unreachable, true),
            (400, ErrorKind::Other, false),
        ] {
            let err = Error::Status {
                operation: "x",
                method: reqwest::Method::GET,
                at: location(),
                status,
                body: None,
                retry_after_secs: None,
            };
            assert_eq!((err.kind(), err.is_retryable()), (kind, retry), "{status}");
        }
    }

    /// Only a read's 404 says what is missing: a write's (an upload session the registry
    /// dropped) is about something else, and the registry's own words always win.
    #[test]
    fn a_404_without_a_body_says_what_is_missing_only_for_reads() {
        let status = |method, body| Error::Status {
            operation: "x",
            method,
            at: location(),
            status: 404,
            body,
            retry_after_secs: None,
        };
        let missing = ": not found: no manifest is tagged bookworm-3.11.0 in oryx/python-sdk \
                       (or the repository does not exist)";
        for method in [reqwest::Method::HEAD, reqwest::Method::GET] {
            let text = status(method.clone(), None).to_string();
            assert!(text.ends_with(missing), "{method}: {text}");
        }
        let text = status(reqwest::Method::PATCH, None).to_string();
        assert!(text.ends_with("HTTP 404"), "{text}");
        let body = RegistryErrorBody {
            errors: vec![crate::registry::RegistryError {
                code: "NAME_UNKNOWN".into(),
                message: String::new(),
                detail: None,
            }],
        };
        let text = status(reqwest::Method::GET, Some(body)).to_string();
        assert!(text.ends_with("HTTP 404: NAME_UNKNOWN"), "{text}");
    }

    #[test]
    fn a_tag_failing_after_the_push_says_what_is_in_place_and_keeps_its_cause() {
        let mut at = location();
        at.reference = Some("bookworm-default".into());
        let digest = Digest::of_bytes(b"{}");
        let err = Error::PartlyTagged {
            manifest_digest: digest.clone(),
            tagged: vec!["bookworm-3.11.0".into()],
            failed: "bookworm-default".into(),
            source: Box::new(Error::Status {
                operation: "pushing manifest",
                method: reqwest::Method::PUT,
                at: at.clone(),
                status: 403,
                body: None,
                retry_after_secs: None,
            }),
        };
        assert_eq!(
            err.to_string(),
            format!(
                "pushing manifest 127.0.0.1:5000/oryx/python-sdk:bookworm-default: registry \
                 answered HTTP 403; the manifest was pushed ({digest}) and bookworm-3.11.0 \
                 points at it, but bookworm-default does not"
            )
        );
        assert_eq!(err.kind(), ErrorKind::Auth);
        assert_eq!((err.status(), err.location()), (Some(403), Some(&at)));
    }

    #[test]
    fn digest_targets_display_with_at() {
        let mut t = location();
        t.reference = Some(Digest::of_bytes(b"").to_string().into());
        assert!(t
            .to_string()
            .starts_with("127.0.0.1:5000/oryx/python-sdk@sha256:"));
    }
}
