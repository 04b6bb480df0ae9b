//! Printing results and errors, and mapping errors to exit codes.

use std::io::Write;

use ocisdk::sdk::SdkError;
use ocisdk::{Error, ErrorKind};

/// An error whose details were already printed (e.g. per item of a batch); it only carries
/// the exit code.
#[derive(Debug)]
pub struct AlreadyReported {
    /// The exit code.
    pub code: u8,
    /// A one-line summary, printed instead of the details.
    pub summary: String,
}

impl std::fmt::Display for AlreadyReported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.summary)
    }
}

impl std::error::Error for AlreadyReported {}

/// The command was stopped by Ctrl-C (SIGINT) before it finished: exit code 130, kind
/// `interrupted`. What it had started is dropped with the runtime, so temporary files are
/// gone by the time this is reported; resumable partials in the cache stay.
#[derive(Debug)]
pub struct Interrupted;

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("interrupted (Ctrl-C)")
    }
}

impl std::error::Error for Interrupted {}

/// A suggestion attached to an error as context; printed after it as `hint:` (and in the
/// JSON error's `hint`), never as part of the message.
#[derive(Debug)]
pub struct Hint(pub String);

impl std::fmt::Display for Hint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Exit code for an error (documented in `--help` and the README).
pub fn exit_code(err: &anyhow::Error) -> u8 {
    if let Some(reported) = err.downcast_ref::<AlreadyReported>() {
        return reported.code;
    }
    if err.is::<Interrupted>() {
        return 130;
    }
    match error_kind(err) {
        Some(ErrorKind::Usage) => 2,
        Some(ErrorKind::NotFound) => 3,
        Some(ErrorKind::Auth) => 4,
        Some(ErrorKind::Verification) => 5,
        Some(ErrorKind::Unreachable) => 6,
        // A kind a later library adds is "other" until it is given a code of its own.
        Some(ErrorKind::Other) | Some(_) | None => 1,
    }
}

/// The library error behind an error, looking through the SDK layer's wrapper.
fn library_error(err: &anyhow::Error) -> Option<&Error> {
    err.chain().find_map(|e| {
        e.downcast_ref::<Error>()
            .or_else(|| match e.downcast_ref::<SdkError>() {
                Some(SdkError::Registry(inner)) => Some(&**inner),
                _ => None,
            })
    })
}

fn error_kind(err: &anyhow::Error) -> Option<ErrorKind> {
    err.chain().find_map(|e| {
        e.downcast_ref::<SdkError>()
            .map(SdkError::kind)
            .or_else(|| e.downcast_ref::<Error>().map(Error::kind))
    })
}

fn kind_name(err: &anyhow::Error) -> &'static str {
    if err.is::<Interrupted>() {
        return "interrupted";
    }
    match error_kind(err) {
        Some(ErrorKind::Usage) => "usage",
        Some(ErrorKind::NotFound) => "not_found",
        Some(ErrorKind::Auth) => "auth",
        Some(ErrorKind::Verification) => "verification",
        Some(ErrorKind::Unreachable) => "unreachable",
        _ => "other",
    }
}

/// The error and its causes on one line. The registry layer's errors already name their
/// cause in their own message, so the chain stops at the first of them; other causes (an
/// archive's I/O error under an unpacking error) are appended.
pub fn render(err: &anyhow::Error) -> String {
    let mut text = String::new();
    let hint = err.downcast_ref::<Hint>().map(|h| h.0.as_str());
    for cause in err.chain() {
        let part = cause.to_string();
        if Some(part.as_str()) == hint {
            continue;
        }
        if !text.contains(&part) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&part);
        }
        let self_describing = cause.is::<Error>()
            || matches!(
                cause.downcast_ref::<SdkError>(),
                Some(SdkError::Registry(_))
            );
        if self_describing {
            break;
        }
    }
    text
}

/// Prints an error on stderr: text, or `{"error":{…}}` with `--json`.
pub fn report_error(err: &anyhow::Error, json: bool) {
    if let Some(reported) = err.downcast_ref::<AlreadyReported>() {
        if !json {
            let _ = writeln!(std::io::stderr(), "error: {}", printable(&reported.summary));
        }
        return;
    }
    let message = render(err);
    let mut stderr = std::io::stderr().lock();
    if json {
        let sdk_error = err.chain().find_map(|e| e.downcast_ref::<SdkError>());
        // The catalogue's own errors (an SDK that could not be unpacked, no default, no
        // match) have no registry request behind them, but name their place all the same.
        let location = library_error(err)
            .and_then(Error::location)
            .cloned()
            .or_else(|| sdk_error.and_then(SdkError::location));
        let location = location.as_ref();
        let value = serde_json::json!({
            "error": {
                "kind": kind_name(err),
                "message": message,
                "registry": location.map(|l| &*l.registry),
                // A registry-wide operation (login) has no repository: null, not "".
                "repository": location
                    .map(|l| &*l.repository)
                    .filter(|r| !r.is_empty()),
                "reference": location.and_then(|l| l.reference.as_deref()),
                "status": library_error(err).and_then(Error::status),
                "hint": err.downcast_ref::<Hint>().map(|h| h.0.clone()).or_else(|| hint(err)),
                "exit_code": exit_code(err),
            }
        });
        let _ = writeln!(stderr, "{value}");
    } else {
        let _ = writeln!(stderr, "error: {}", printable(&message));
        if let Some(extra) = err.downcast_ref::<Hint>() {
            let _ = writeln!(stderr, "hint: {}", printable(&extra.0));
        }
        if let Some(hint) = hint(err) {
            let _ = writeln!(stderr, "hint: {}", printable(&hint));
        }
    }
}

/// `text` safe to print on a terminal: control characters other than line breaks and tabs
/// are written as escapes (`\u{1b}`). Error messages carry text from the other side (a
/// registry's error body, an archive's header bytes quoted by the tar reader), and an escape
/// sequence in them would otherwise be run by the user's terminal. JSON output needs no
/// such care: serde escapes control characters there.
fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    let unsafe_char = |c: char| c.is_control() && c != '\n' && c != '\t';
    if !text.chars().any(unsafe_char) {
        return text.into();
    }
    text.chars()
        .map(|c| {
            if unsafe_char(c) {
                c.escape_unicode().to_string()
            } else {
                c.to_string()
            }
        })
        .collect::<String>()
        .into()
}

/// The next step to suggest for common failures.
fn hint(err: &anyhow::Error) -> Option<String> {
    let lib = library_error(err)?;
    let next = kind_hint(err, lib);
    let Error::PartlyTagged { tagged, failed, .. } = lib else {
        return next;
    };
    // The user must know what a retry would do to the tags that are already in place.
    let safe = format!(
        "{} is in place; running the same command again is safe: the same file gives the same \
         manifest, so {} stays as it is and {failed} is set",
        tagged.join(", "),
        if tagged.len() == 1 { "it" } else { "they" },
    );
    Some(match next {
        Some(next) => format!("{safe}; {next}"),
        None => safe,
    })
}

/// The next step for the class of failure `lib` is.
fn kind_hint(err: &anyhow::Error, lib: &Error) -> Option<String> {
    match (error_kind(err)?, lib.location()) {
        (ErrorKind::Auth, Some(at)) => Some(format!(
            "log in with `ocisdk login {} -u USER --password-stdin` (or set OCISDK_USERNAME and OCISDK_PASSWORD); if you did, check the password and your access to the repository",
            at.registry
        )),
        (ErrorKind::Unreachable, Some(at)) => {
            let text = render(err).to_ascii_lowercase();
            let tls = text.contains("certificate") || text.contains("tls") || text.contains("ssl");
            if tls && text.contains("(http://") {
                // A plain-HTTP request meets TLS only on its way to an https:// proxy.
                Some(format!(
                    "TLS with the https:// proxy for {} failed (http_proxy, ALL_PROXY): trust its certificate authority through the system bundle (SSL_CERT_FILE)",
                    at.registry
                ))
            } else if tls {
                Some(format!(
                    "TLS with {} failed: for a self-signed registry add --insecure; for one without TLS, --plain-http",
                    at.registry
                ))
            } else {
                Some(format!(
                    "check that {} is up and reachable (raise --retries for a flaky network)",
                    at.registry
                ))
            }
        }
        // An SDK command names a repository the user never typed: it comes from the platform
        // through the prefix and the template, and any of the three may be the mistake.
        (ErrorKind::NotFound, Some(at))
            if matches!(
                lib,
                Error::Status {
                    operation: "listing tags",
                    status: 404,
                    ..
                }
            ) && err.chain().any(|e| e.is::<SdkError>()) =>
        {
            Some(format!(
                "{} has no repository {}: check the platform name, and --prefix and \
                 --repo-template (`ocisdk config-show` prints where they come from)",
                at.registry, at.repository
            ))
        }
        (ErrorKind::Verification, _) => {
            Some("the content was discarded; nothing was written".into())
        }
        _ => None,
    }
}

/// Writes one line to stdout, ignoring a closed pipe (`ocisdk tags … | head`).
pub fn line(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{text}") {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

/// Writes raw bytes to stdout.
pub fn raw(bytes: &[u8]) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

/// Writes a JSON value to stdout.
pub fn json(value: &serde_json::Value) -> anyhow::Result<()> {
    line(&value.to_string())
}
