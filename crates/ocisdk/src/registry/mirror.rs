//! Pull mirrors: registries tried before the upstream for reads, like containerd's
//! `hosts.toml` or the `[[registry.mirror]]` entries of `registries.conf`.
//!
//! Every read (manifests by tag or digest, manifest `HEAD`s, blobs, configs, tag lists) goes
//! through [`Client::read_via_mirrors`], the one place that decides where a read is sent:
//!
//! 1. The mirrors configured for the reference's registry (or for any registry), in order,
//!    each asked once (no retries: a mirror is a shortcut, never a reason to wait).
//! 2. The upstream itself, with the client's full retry policy.
//!
//! Any failure at a mirror (not found, unreachable, refused, or content that does not match
//! the digest asked for) moves on to the next place; only the upstream's answer is final.
//! Verification stays where it always was: a manifest asked for by digest and every blob are
//! checked against their digest, so a mirror can never substitute content. (A manifest asked
//! for by tag can only be checked against the digest the mirror itself claims; that is the
//! trust any mirror of tags needs.)
//!
//! A mirror whose connection was refused is skipped for the rest of the client's life, so a
//! mirror that is down costs one failed connect, not one per blob.
//!
//! A tag list comes from the first place that answers: a mirror holding fewer tags than its
//! upstream (not a pull-through cache, but a copy of what a team uses) narrows what version
//! listings see to what it holds, which is usually the point.

use std::collections::HashSet;
use std::fmt;
use std::str::FromStr;
use std::sync::Mutex;

use super::{Client, ClientBuilder, RetryPolicy};
use crate::error::{Error, Result};
use crate::reference::{Repository, DEFAULT_REGISTRY};

/// A registry that serves copies of another registry's content.
///
/// Written `URL` (a mirror for every registry) or `UPSTREAM=URL` (only for `UPSTREAM`, e.g.
/// `mcr.microsoft.com=https://mirror.example/mcr`). The URL's scheme says whether to use plain
/// HTTP (`http://`) or HTTPS (`https://`, the default); a path in it is a prefix put before
/// every repository path, as a Harbor proxy-cache project or a `registries.conf` mirror
/// location needs (`https://harbor.example/mcr-cache` reads `oryx/python-sdk` from
/// `harbor.example/mcr-cache/oryx/python-sdk`).
///
/// ```
/// use ocisdk::registry::Mirror;
/// let any: Mirror = "http://127.0.0.1:5001".parse().unwrap();
/// assert!(any.serves("mcr.microsoft.com"));
/// let one: Mirror = "mcr.microsoft.com=https://harbor.example/mcr-cache".parse().unwrap();
/// assert!(one.serves("mcr.microsoft.com") && !one.serves("ghcr.io"));
/// assert_eq!(one.host(), "harbor.example");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mirror {
    upstream: Option<String>,
    host: String,
    prefix: String,
    plain_http: bool,
}

/// Why a mirror specification is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid mirror \"{input}\": {reason}")]
pub struct MirrorError {
    input: String,
    reason: &'static str,
}

impl Mirror {
    /// The mirror's host when it is reached over plain HTTP (`http://…`).
    pub(crate) fn plain_http_host(&self) -> Option<String> {
        self.plain_http.then(|| self.host.clone())
    }

    /// A mirror at `url` for every registry.
    pub fn new(url: &str) -> std::result::Result<Mirror, MirrorError> {
        parse_url(url, url, None)
    }

    /// A mirror at `url` for the registry `upstream` only (`docker.io`, `mcr.microsoft.com`,
    /// `127.0.0.1:5000`).
    pub fn for_upstream(upstream: &str, url: &str) -> std::result::Result<Mirror, MirrorError> {
        let input = format!("{upstream}={url}");
        let host = strip_scheme(upstream).trim_end_matches('/');
        if host.is_empty() || host.contains('/') {
            return Err(MirrorError {
                input,
                reason: "the upstream must be a registry host such as mcr.microsoft.com",
            });
        }
        parse_url(url, &input, Some(normalise_registry(host)))
    }

    /// Whether this mirror stands in for `registry` (as in [`Repository::registry`]). A
    /// mirror never stands in for itself.
    pub fn serves(&self, registry: &str) -> bool {
        let itself = self.prefix.is_empty() && self.host.eq_ignore_ascii_case(registry);
        !itself
            && self
                .upstream
                .as_deref()
                .is_none_or(|u| u == normalise_registry(registry))
    }

    /// The mirror's host (and port).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// Where `repo` of the upstream lives on this mirror.
    fn repository_for(&self, repo: &Repository) -> Result<Repository> {
        let path = if self.prefix.is_empty() {
            repo.path().to_string()
        } else {
            format!("{}/{}", self.prefix, repo.path())
        };
        Ok(Repository::on_registry(&self.host, &path)?)
    }
}

impl FromStr for Mirror {
    type Err = MirrorError;

    fn from_str(text: &str) -> std::result::Result<Mirror, MirrorError> {
        match text.split_once('=') {
            Some((upstream, url)) if !strip_scheme(upstream).contains('/') => {
                Mirror::for_upstream(upstream, url)
            }
            _ => Mirror::new(text),
        }
    }
}

impl fmt::Display for Mirror {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(upstream) = &self.upstream {
            write!(f, "{upstream}=")?;
        }
        let scheme = if self.plain_http { "http" } else { "https" };
        write!(f, "{scheme}://{}", self.host)?;
        if !self.prefix.is_empty() {
            write!(f, "/{}", self.prefix)?;
        }
        Ok(())
    }
}

fn strip_scheme(text: &str) -> &str {
    text.strip_prefix("https://")
        .or_else(|| text.strip_prefix("http://"))
        .unwrap_or(text)
}

/// Docker Hub goes by three names; references always say `docker.io`.
fn normalise_registry(host: &str) -> String {
    match host {
        "index.docker.io" | "registry-1.docker.io" => DEFAULT_REGISTRY.to_string(),
        other => other.to_ascii_lowercase(),
    }
}

fn parse_url(
    url: &str,
    input: &str,
    upstream: Option<String>,
) -> std::result::Result<Mirror, MirrorError> {
    let error = |reason| MirrorError {
        input: input.to_string(),
        reason,
    };
    let plain_http = url.starts_with("http://");
    let rest = strip_scheme(url).trim_end_matches('/');
    if rest.contains("://") {
        return Err(error("only http:// and https:// mirrors are supported"));
    }
    let (host, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    let prefix = prefix
        .strip_prefix("v2/")
        .unwrap_or(prefix)
        .trim_matches('/');
    if host.is_empty() {
        return Err(error("the URL names no host"));
    }
    let mirror = Mirror {
        upstream,
        host: host.to_string(),
        prefix: prefix.to_string(),
        plain_http,
    };
    // The host and prefix must form repository names.
    Repository::on_registry(
        &mirror.host,
        format!("{}/probe", mirror.prefix).trim_start_matches('/'),
    )
    .map_err(|_| error("the host or path does not form a registry repository name"))?;
    Ok(mirror)
}

/// Where a client clone sends its reads: pinned to one place by
/// [`Client::read_via_mirrors`], so that a read made of several requests (a download that
/// resumes, a manifest `HEAD` that falls back to a `GET`) stays with the place it started at.
#[derive(Debug, Clone)]
pub(crate) enum Route {
    /// The registry the reference names.
    Upstream,
    /// A mirror: its scheme, and no retries.
    Mirror {
        plain_http: bool,
        retry: RetryPolicy,
    },
}

/// The mirrors of a client and which of them were found down.
#[derive(Debug, Default)]
pub(crate) struct Mirrors {
    list: Vec<Mirror>,
    down: Mutex<HashSet<String>>,
}

impl Mirrors {
    pub(crate) fn new(list: Vec<Mirror>) -> Mirrors {
        Mirrors {
            list,
            down: Mutex::default(),
        }
    }

    fn is_down(&self, mirror: &Mirror) -> bool {
        self.down
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&mirror.host)
    }

    fn mark_down(&self, mirror: &Mirror) {
        self.down
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(mirror.host.clone());
    }
}

impl ClientBuilder {
    /// Registries to read from before the upstream, in order (default: none). See
    /// [`Mirror`] for how they are written; reads fall back to the upstream when a mirror
    /// lacks the content, is down or serves wrong bytes. Pushes never go to mirrors.
    pub fn mirrors(mut self, mirrors: impl IntoIterator<Item = Mirror>) -> Self {
        self.mirrors = mirrors.into_iter().collect();
        self
    }
}

impl Client {
    /// The mirrors configured, in order.
    pub fn mirror_list(&self) -> &[Mirror] {
        &self.inner.mirrors.list
    }

    /// A clone that reads only from the upstream (never from a mirror): for checking what a
    /// push target already holds.
    pub fn without_mirrors(&self) -> Client {
        self.pinned(Route::Upstream)
    }

    fn pinned(&self, route: Route) -> Client {
        Client {
            inner: self.inner.clone(),
            route: Some(route),
            cache_off: self.cache_off,
            files: self.files,
        }
    }

    /// The retry policy of the place this clone is pinned to: none at a mirror.
    pub(crate) fn route_retry(&self) -> Option<&RetryPolicy> {
        match &self.route {
            Some(Route::Mirror { retry, .. }) => Some(retry),
            _ => None,
        }
    }

    /// Whether requests of this clone use plain HTTP.
    pub(crate) fn route_plain_http(&self) -> bool {
        self.inner.transport.plain_http
            || matches!(
                self.route,
                Some(Route::Mirror {
                    plain_http: true,
                    ..
                })
            )
    }

    /// Runs the read `read(client, repo)` at each place that may serve `repo`: the mirrors
    /// for its registry in order, then `repo` itself (see the [module docs](self)). `read`
    /// gets a client pinned to the place and the repository as named there. `what` names
    /// the content for the log ("blob sha256:…").
    ///
    /// Without mirrors, or on a clone already pinned, this is just `read` of this client and `repo`.
    pub(crate) async fn read_via_mirrors<T, F, Fut>(
        &self,
        repo: &Repository,
        what: &str,
        mut read: F,
    ) -> Result<T>
    where
        // Owned arguments, not an async closure over borrowed ones: the futures of the
        // public API built on this must stay `Send` (spawnable).
        F: FnMut(Client, Repository) -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let mirrors = &self.inner.mirrors;
        if self.route.is_some() || !mirrors.list.iter().any(|m| m.serves(repo.registry())) {
            return read(self.clone(), repo.clone()).await;
        }
        for mirror in mirrors.list.iter().filter(|m| m.serves(repo.registry())) {
            if mirrors.is_down(mirror) {
                continue;
            }
            let there = match mirror.repository_for(repo) {
                Ok(there) => there,
                Err(e) => {
                    tracing::info!(mirror = %mirror, error = %e, "mirror cannot hold {repo}");
                    continue;
                }
            };
            let pinned = self.pinned(Route::Mirror {
                plain_http: mirror.plain_http,
                retry: RetryPolicy::never(),
            });
            match read(pinned, there).await {
                Ok(value) => {
                    tracing::info!("{what} of {repo} served by mirror {}", mirror.host);
                    return Ok(value);
                }
                Err(e) if !worth_another_place(&e) => return Err(e),
                Err(e) => {
                    if is_down(&e) {
                        mirrors.mark_down(mirror);
                    }
                    tracing::info!(
                        "mirror {} did not serve {what} of {repo} ({e}); trying the next place",
                        mirror.host
                    );
                }
            }
        }
        let value = read(self.pinned(Route::Upstream), repo.clone()).await?;
        tracing::info!("{what} of {repo} served by upstream {}", repo.registry());
        Ok(value)
    }
}

/// Whether another place could do better after this failure at a mirror: anything but a
/// local problem (a file that cannot be written, a bad argument).
fn worth_another_place(e: &Error) -> bool {
    !matches!(e, Error::Io { .. } | Error::InvalidInput(_))
}

/// Whether a mirror failed in a way that says it is down for this run, not just lacking one
/// thing: it refused the connection, or took the whole stall timeout to say nothing (asked
/// again for every read, a hung mirror would cost that timeout each time).
fn is_down(e: &Error) -> bool {
    match e {
        Error::Transport { source, .. } => source.is_connect() || source.is_timeout(),
        Error::Stalled { .. } => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirrors_parse_with_and_without_upstream() {
        let m: Mirror = "http://127.0.0.1:5001".parse().unwrap();
        assert_eq!(m.host(), "127.0.0.1:5001");
        assert!(m.plain_http && m.upstream.is_none() && m.prefix.is_empty());
        assert_eq!(m.to_string(), "http://127.0.0.1:5001");
        assert!(m.serves("mcr.microsoft.com") && !m.serves("127.0.0.1:5001"));

        let m: Mirror = "registry-1.docker.io=https://hub.example/v2/cache/"
            .parse()
            .unwrap();
        assert_eq!(m.upstream.as_deref(), Some("docker.io"));
        assert!(m.serves("docker.io") && !m.serves("ghcr.io"));
        assert_eq!(m.prefix, "cache");
        assert_eq!(m.to_string(), "docker.io=https://hub.example/cache");

        let m: Mirror = "https://mcr.microsoft.com=mirror.example:5000"
            .parse()
            .unwrap();
        assert_eq!(m.upstream.as_deref(), Some("mcr.microsoft.com"));
        assert!(!m.plain_http);

        for bad in [
            "",
            "http://",
            "ftp://x",
            "a/b=http://x",
            "http://host/UPPER",
            "=x",
            "http://a b",
        ] {
            assert!(bad.parse::<Mirror>().is_err(), "{bad}");
        }
    }

    #[test]
    fn repositories_map_under_the_prefix() {
        let repo: Repository = "mcr.microsoft.com/oryx/python-sdk".parse().unwrap();
        let plain: Mirror = "http://127.0.0.1:5001".parse().unwrap();
        assert_eq!(
            plain.repository_for(&repo).unwrap().to_string(),
            "127.0.0.1:5001/oryx/python-sdk"
        );
        let prefixed: Mirror = "https://harbor.example/mcr-cache".parse().unwrap();
        assert_eq!(
            prefixed.repository_for(&repo).unwrap().to_string(),
            "harbor.example/mcr-cache/oryx/python-sdk"
        );
    }

    #[test]
    fn only_local_failures_stop_the_fallback() {
        assert!(!worth_another_place(&Error::InvalidInput("x".into())));
        assert!(worth_another_place(&Error::Status {
            operation: "x",
            method: reqwest::Method::GET,
            at: Default::default(),
            status: 404,
            body: None,
            retry_after_secs: None,
        }));
        assert!(worth_another_place(&Error::DigestMismatch {
            at: Default::default(),
            expected: crate::Digest::of_bytes(b"a"),
            actual: crate::Digest::of_bytes(b"b"),
        }));
    }
}
