//! The registry API client: one [`Client`] per program, shared by every operation.
//!
//! Every request goes through one private `send` path, the single place where authentication and
//! retries wrap the transport, so that tags, manifests, blobs and uploads all get them.

mod error_body;
pub(crate) mod http;
mod manifests;
mod mirror;
mod request;
pub mod retry;
mod stream_body;
mod tags;
mod upload;
mod urls;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use bytes::Bytes;
use reqwest::header::{CONTENT_LENGTH, RANGE};
use reqwest::{Method, Response, StatusCode};

pub use error_body::{RegistryError, RegistryErrorBody, ERROR_BODY_LIMIT};
pub use manifests::ManifestHead;
pub use mirror::{Mirror, MirrorError};
pub(crate) use request::{
    invalid_document, parse_json, read_capped, status_error, verify_bytes, ApiRequest, RequestBody,
};
pub use retry::RetryPolicy;
pub use tags::{TagPage, TAG_PAGE_LIMIT};
pub use upload::{UploadOutcome, MONOLITHIC_UPLOAD_LIMIT, UPLOAD_CHUNK_SIZE};
pub(crate) use urls::Endpoints;

use crate::digest::Digest;
use crate::error::{Error, Location, Result};
use crate::reference::{Reference, Repository};
use crate::spec::Platform;
use crate::transport::{Http, RegistryOptions, TransportOptions};

/// A client for OCI registries.
///
/// Cheap to clone: clones share one connection pool.
///
/// ```no_run
/// # async fn demo() -> Result<(), ocisdk::Error> {
/// let client = ocisdk::Client::builder().build()?;
/// let repo: ocisdk::Repository = "mcr.microsoft.com/oryx/python-sdk".parse()?;
/// let tags = client.tags(&repo).await?;
/// println!("{} tags", tags.len());
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Client {
    inner: Arc<Inner>,
    /// Set on the clones that [`Client::read_via_mirrors`] pins to one place.
    route: Option<mirror::Route>,
    /// Set on the clones that [`Client::without_cache`] made: they download as if no cache
    /// folder were set.
    cache_off: bool,
    /// Whose the files its downloads create are: [`Client::with_own_files`] clones make
    /// ocisdk's own.
    files: crate::content::Files,
}

#[derive(Debug)]
struct Inner {
    http: Http,
    transport: TransportOptions,
    platform: Platform,
    upload: UploadSettings,
    retry: RetryPolicy,
    cache_dir: Option<std::path::PathBuf>,
    /// Folders the user vouches for, whose cache folders are used without the checks.
    safe_folders: Vec<std::path::PathBuf>,
    /// The cache's folder of partial downloads, once `content` checked it: `None` when it
    /// cannot be used (another user could change it, or it cannot be made).
    partial_dir: std::sync::OnceLock<Option<std::path::PathBuf>>,
    mirrors: mirror::Mirrors,
    parallel_chunks: usize,
    /// Per-registry overrides, keyed by `host[:port]`.
    hosts: HashMap<String, HostTransport>,
    auth: crate::auth::Authenticator,
    mount_rights: upload::MountRights,
}

/// How one registry host is reached when it has its own options.
#[derive(Debug)]
struct HostTransport {
    /// Its own client when its TLS settings differ from the main one.
    http: Option<Http>,
    plain_http: bool,
}

/// When uploads switch from one `PUT` to `PATCH` chunks, and how big the chunks are.
#[derive(Debug, Clone, Copy)]
struct UploadSettings {
    monolithic_limit: u64,
    chunk_size: u64,
}

/// Configures a [`Client`].
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    transport: TransportOptions,
    platform: Platform,
    upload: UploadSettings,
    retry: RetryPolicy,
    cache_dir: Option<std::path::PathBuf>,
    safe_folders: Vec<std::path::PathBuf>,
    mirrors: Vec<Mirror>,
    parallel_chunks: usize,
    hosts: BTreeMap<String, RegistryOptions>,
    auth: crate::auth::AuthSettings,
}

impl Default for ClientBuilder {
    fn default() -> Self {
        ClientBuilder {
            transport: TransportOptions::default(),
            platform: Platform::host(),
            upload: UploadSettings {
                monolithic_limit: MONOLITHIC_UPLOAD_LIMIT,
                chunk_size: UPLOAD_CHUNK_SIZE,
            },
            retry: RetryPolicy::default(),
            cache_dir: None,
            safe_folders: Vec::new(),
            mirrors: Vec::new(),
            parallel_chunks: 1,
            hosts: BTreeMap::new(),
            auth: crate::auth::AuthSettings::default(),
        }
    }
}

impl ClientBuilder {
    /// Use plain HTTP for every registry (loopback registries always use it).
    pub fn plain_http(mut self, yes: bool) -> Self {
        self.transport.plain_http = yes;
        self
    }

    /// Skip TLS certificate verification.
    pub fn insecure(mut self, yes: bool) -> Self {
        self.transport.insecure = yes;
        self
    }

    /// The platform chosen from multi-platform indexes (default: this machine's).
    pub fn platform(mut self, platform: Platform) -> Self {
        self.platform = platform;
        self
    }

    /// How long a transfer may deliver no bytes before it fails.
    pub fn stall_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.transport.stall_timeout = timeout;
        self
    }

    /// Blobs larger than `monolithic_limit` are uploaded in `PATCH` chunks of `chunk_size`
    /// bytes (defaults: [`MONOLITHIC_UPLOAD_LIMIT`], [`UPLOAD_CHUNK_SIZE`]).
    pub fn upload_chunking(mut self, monolithic_limit: u64, chunk_size: u64) -> Self {
        self.upload = UploadSettings {
            monolithic_limit,
            chunk_size: chunk_size.max(1),
        };
        self
    }

    /// How requests are retried (default: [`RetryPolicy::default`]).
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// A cache folder: downloads keep their partial files there (named by digest), so an
    /// interrupted download resumes in the next run instead of starting over.
    ///
    /// Partial files are written into, by root too, so the cache folder, every folder above
    /// it and its `partial-v1` folder must be owned by this (effective) user or root and not
    /// be writable by group or others (above the cache folder: unless sticky), as the SDK
    /// catalogue checks its cache: a `partial-v1` another user planted as a symlink would have
    /// the files written where they chose. When they are not, downloads go without the cache
    /// (a warning says why, once per client), unless the cache folder is at or below one of
    /// the [`ClientBuilder::safe_folders`].
    pub fn cache_dir(mut self, dir: impl Into<std::path::PathBuf>) -> Self {
        self.cache_dir = Some(dir.into());
        self
    }

    /// Folders the user vouches for, as git's `safe.directory`: a cache folder at or below
    /// one is used without the ownership checks [`ClientBuilder::cache_dir`] makes, for a
    /// container that runs as root with a `HOME` owned by the host's user.
    pub fn safe_folders(mut self, folders: Vec<std::path::PathBuf>) -> Self {
        self.safe_folders = folders;
        self
    }

    /// Download large blobs (at least two chunks of [`crate::content::MIN_CHUNK_SIZE`]) over
    /// this many parallel ranged requests; 1 (the default) streams every blob whole. Helps
    /// on links that cap each connection or have high latency.
    pub fn parallel_chunks(mut self, connections: usize) -> Self {
        self.parallel_chunks = connections.max(1);
        self
    }

    /// Options for one registry (`host[:port]`): plain HTTP, no TLS verification or an
    /// extra certificate authority, for that registry only.
    pub fn registry_options(mut self, host: impl Into<String>, options: RegistryOptions) -> Self {
        self.hosts.insert(host.into(), options);
        self
    }

    /// Trusts the certificate authorities in this PEM file too (every registry).
    pub fn ca_file(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.transport.ca_files.push(path.into());
        self
    }

    /// Replaces all transport options at once.
    pub fn transport(mut self, transport: TransportOptions) -> Self {
        self.transport = transport;
        self
    }

    /// Where credentials come from (default: none, anonymous everywhere). See
    /// [`crate::auth`] for how they are used.
    pub fn credentials(mut self, source: impl crate::auth::CredentialSource + 'static) -> Self {
        self.auth.source = Some(Arc::new(source));
        self
    }

    /// Get tokens for username/password credentials with OAuth2's password grant (`POST`
    /// to the realm, like docker's `ForceOAuth`) instead of `GET` with Basic (default: off).
    pub fn oauth2_password_grant(mut self, yes: bool) -> Self {
        self.auth.password_grant = yes;
        self
    }

    /// Ask token servers for offline access, as `docker login` does: one that supports it
    /// returns a refresh token with the access token, which [`Client::refresh_token`] then
    /// gives, to be stored instead of the password (default: off).
    pub fn offline_token(mut self, yes: bool) -> Self {
        self.auth.offline_token = yes;
        self
    }

    /// Builds the client.
    pub fn build(self) -> Result<Client> {
        let http = Http::new(&self.transport)?;
        let mut hosts = HashMap::new();
        for (host, options) in &self.hosts {
            // A host that only wants plain HTTP shares the main client.
            let own_tls = options.insecure || options.ca_file.is_some();
            let client = if own_tls {
                let mut transport = self.transport.clone();
                transport.insecure |= options.insecure;
                transport.ca_files.extend(options.ca_file.clone());
                Some(Http::new(&transport)?)
            } else {
                None
            };
            hosts.insert(
                host.clone(),
                HostTransport {
                    http: client,
                    plain_http: options.plain_http,
                },
            );
        }
        // The hosts the user chose plain HTTP for, one by one: credentials may go there.
        let plain_http_hosts = self
            .hosts
            .iter()
            .filter(|(_, options)| options.plain_http)
            .map(|(host, _)| host.clone())
            .chain(self.mirrors.iter().filter_map(Mirror::plain_http_host))
            .collect();
        let auth =
            crate::auth::Authenticator::new(self.auth, self.transport.plain_http, plain_http_hosts);
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                transport: self.transport,
                platform: self.platform,
                upload: self.upload,
                retry: self.retry,
                cache_dir: self.cache_dir,
                safe_folders: self.safe_folders,
                partial_dir: std::sync::OnceLock::new(),
                mirrors: mirror::Mirrors::new(self.mirrors),
                parallel_chunks: self.parallel_chunks,
                hosts,
                auth,
                mount_rights: upload::MountRights::default(),
            }),
            route: None,
            cache_off: false,
            files: crate::content::Files::User,
        })
    }
}

impl Client {
    /// A builder with defaults: HTTPS (plain HTTP for loopback), this machine's platform.
    pub fn builder() -> ClientBuilder {
        ClientBuilder::default()
    }

    /// The refresh token the last token server handed out, when the client was built with
    /// [`ClientBuilder::offline_token`] and the server offered one.
    pub fn refresh_token(&self) -> Option<crate::auth::Secret> {
        self.inner.auth.refresh_token()
    }

    /// The platform chosen from multi-platform indexes.
    pub fn platform(&self) -> &Platform {
        &self.inner.platform
    }

    /// How many parallel ranged requests download one large blob.
    pub fn parallel_chunks(&self) -> usize {
        self.inner.parallel_chunks
    }

    /// Whether `host` was configured for plain HTTP.
    pub(crate) fn host_plain_http(&self, host: &str) -> bool {
        self.inner.hosts.get(host).is_some_and(|h| h.plain_http)
    }

    /// The HTTP client for a URL: the host's own when it has TLS options, else the main one.
    pub(crate) fn http_for(&self, url: &url::Url) -> &Http {
        let key = match (url.host_str(), url.port()) {
            (Some(host), Some(port)) => format!("{host}:{port}"),
            (Some(host), None) => host.to_string(),
            _ => String::new(),
        };
        self.inner
            .hosts
            .get(&key)
            .and_then(|h| h.http.as_ref())
            .unwrap_or(&self.inner.http)
    }

    /// The cache folder, when one was set (and this client is not a copy made to go without it).
    pub fn cache_dir(&self) -> Option<&std::path::Path> {
        self.inner.cache_dir.as_deref().filter(|_| !self.cache_off)
    }

    /// The folders the user vouches for ([`ClientBuilder::safe_folders`]).
    pub(crate) fn safe_folders(&self) -> &[std::path::PathBuf] {
        &self.inner.safe_folders
    }

    /// Where the cache's folder of partial downloads is kept once checked (see
    /// `content::staging::partial_dir`, which checks it): once per client and its copies.
    pub(crate) fn partial_dir_cell(&self) -> &std::sync::OnceLock<Option<std::path::PathBuf>> {
        &self.inner.partial_dir
    }

    /// This client, downloading without its cache folder: no partial download is resumed
    /// from it or left in it. For a cache folder another user could change, which the SDK
    /// catalogue does not trust.
    pub(crate) fn without_cache(&self) -> Client {
        Client {
            cache_off: true,
            ..self.clone()
        }
    }

    /// This client, its downloads making ocisdk's own files ([`crate::content::Files::Own`]):
    /// for downloads into the cache folder, whose files no umask may open to others.
    pub(crate) fn with_own_files(&self) -> Client {
        Client {
            files: crate::content::Files::Own,
            ..self.clone()
        }
    }

    /// Whose the files this client's downloads create are.
    pub(crate) fn files(&self) -> crate::content::Files {
        self.files
    }

    /// The retry policy in force.
    pub fn retry_policy(&self) -> &RetryPolicy {
        self.route_retry().unwrap_or(&self.inner.retry)
    }

    /// The transport options in force.
    pub fn transport_options(&self) -> &TransportOptions {
        &self.inner.transport
    }

    pub(crate) fn endpoints(&self, repo: &Repository) -> Result<Endpoints> {
        Endpoints::new(
            repo.api_host(),
            self.route_plain_http() || self.host_plain_http(repo.api_host()),
        )
        .map_err(|e| {
            Error::InvalidInput(format!(
                "registry host \"{}\" does not form a URL: {e}",
                repo.api_host()
            ))
        })
    }

    /// Opens a blob for reading from byte `offset` (a `Range` request when non-zero), from a
    /// mirror when one has it. The caller checks for `206` and `Content-Range`.
    pub(crate) async fn blob_response(
        &self,
        repo: &Repository,
        digest: &Digest,
        offset: u64,
    ) -> Result<Response> {
        let what = format!("blob {digest}");
        self.read_via_mirrors(repo, &what, |client, repo| async move {
            client.blob_response_here(&repo, digest, offset).await
        })
        .await
    }

    async fn blob_response_here(
        &self,
        repo: &Repository,
        digest: &Digest,
        offset: u64,
    ) -> Result<Response> {
        let url = self.endpoints(repo)?.blob(repo, digest);
        let mut req = ApiRequest::new(
            Method::GET,
            url,
            "downloading blob",
            location(repo, Some(digest.to_string())),
        );
        if offset > 0 {
            req = req.header(RANGE, &format!("bytes={offset}-"));
        }
        self.send(&req).await
    }

    /// Checks that `registry` (a host, e.g. `localhost:5000`) speaks the distribution API:
    /// `GET /v2/` must answer 200.
    pub async fn ping(&self, registry: &str) -> Result<()> {
        let plain_http = self.inner.transport.plain_http || self.host_plain_http(registry);
        let endpoints = Endpoints::new(registry, plain_http).map_err(|e| {
            Error::InvalidInput(format!(
                "registry host \"{registry}\" does not form a URL: {e}"
            ))
        })?;
        let at = Location {
            registry: registry.into(),
            ..Location::default()
        };
        self.send(&ApiRequest::new(
            Method::GET,
            endpoints.ping(),
            "checking registry",
            at,
        ))
        .await
        .map(drop)
    }

    /// Whether the repository has a blob, by `HEAD`, and its size when it does.
    pub async fn blob_exists(&self, repo: &Repository, digest: &Digest) -> Result<Option<u64>> {
        let url = self.endpoints(repo)?.blob(repo, digest);
        let req = ApiRequest::new(
            Method::HEAD,
            url,
            "checking blob",
            location(repo, Some(digest.to_string())),
        );
        let response = self.send_raw(&req).await?;
        match response.status() {
            s if s.is_success() => Ok(Some(content_length(&response).unwrap_or(0))),
            StatusCode::NOT_FOUND => Ok(None),
            _ => Err(status_error(&req, response).await),
        }
    }

    /// Reads a small blob (e.g. a config) into memory, verified against `digest`, refusing
    /// more than `limit` bytes.
    pub async fn fetch_small_blob(
        &self,
        repo: &Repository,
        digest: &Digest,
        limit: u64,
        what: &'static str,
    ) -> Result<Bytes> {
        // Verified inside the read, so that a mirror serving other bytes is passed over.
        let name = format!("{what} {digest}");
        self.read_via_mirrors(repo, &name, |client, repo| async move {
            let response = client.blob_response_here(&repo, digest, 0).await?;
            let at = location(&repo, Some(digest.to_string()));
            let bytes = read_capped(response, limit, what, &at).await?;
            verify_bytes(&bytes, digest, &at)?;
            Ok(bytes)
        })
        .await
    }

    /// The image manifest of `reference` for this client's platform, and its config labels.
    pub async fn image_config(
        &self,
        reference: &Reference,
    ) -> Result<(crate::spec::Manifest, crate::spec::ImageConfig)> {
        let manifest = self.resolve_manifest(reference, None).await?;
        let config = self.config(reference.repository(), &manifest).await?;
        Ok((manifest, config))
    }
}

pub(crate) fn location(repo: &Repository, reference: Option<String>) -> Location {
    Location {
        registry: repo.registry().into(),
        repository: repo.path().into(),
        reference: reference.map(String::into_boxed_str),
    }
}

pub(crate) fn content_length(response: &Response) -> Option<u64> {
    response
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}
