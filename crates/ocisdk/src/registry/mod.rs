//! The registry API client: one [`Client`] per program, shared by every operation.
//!
//! Every request goes through [`Client::send`], the single place where authentication and
//! retries wrap the transport, so that tags, manifests, blobs and uploads all get them.

mod error_body;
mod manifests;
mod tags;
mod upload;
mod urls;

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use reqwest::header::{HeaderMap, HeaderValue, CONTENT_LENGTH, RANGE};
use reqwest::{Method, Response, StatusCode};
use url::Url;

pub use error_body::{RegistryError, RegistryErrorBody, ERROR_BODY_LIMIT};
pub use manifests::ManifestHead;
pub use tags::{TagPage, TAG_PAGE_LIMIT};
pub use upload::{UploadOutcome, MONOLITHIC_UPLOAD_LIMIT, UPLOAD_CHUNK_SIZE};
pub(crate) use urls::Endpoints;

use crate::digest::Digest;
use crate::error::{Error, Location, Result};
use crate::reference::{Reference, Repository};
use crate::spec::Platform;
use crate::transport::{build_client, TransportOptions};

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
}

#[derive(Debug)]
struct Inner {
    http: reqwest::Client,
    transport: TransportOptions,
    platform: Platform,
    upload: UploadSettings,
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

    /// Replaces all transport options at once.
    pub fn transport(mut self, transport: TransportOptions) -> Self {
        self.transport = transport;
        self
    }

    /// Builds the client.
    pub fn build(self) -> Result<Client> {
        let http = build_client(&self.transport).map_err(|e| {
            Error::InvalidInput(format!(
                "cannot set up the HTTP client: {}",
                crate::transport::describe_reqwest(&e)
            ))
        })?;
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                transport: self.transport,
                platform: self.platform,
                upload: self.upload,
            }),
        })
    }
}

/// One request to a registry, replayable so that auth and retries can send it again.
#[derive(Debug, Clone)]
pub(crate) struct ApiRequest {
    pub(crate) method: Method,
    pub(crate) url: Url,
    pub(crate) headers: HeaderMap,
    pub(crate) body: RequestBody,
    /// What this request does, for errors ("fetching manifest").
    pub(crate) operation: &'static str,
    pub(crate) at: Location,
}

/// A request body that can be sent again: in memory, or a slice of a file re-read from disk
/// (so large uploads stream and can still be retried).
#[derive(Debug, Clone)]
pub(crate) enum RequestBody {
    Empty,
    Bytes(Bytes),
    File {
        path: std::path::PathBuf,
        offset: u64,
        len: u64,
    },
}

async fn file_body(
    path: &std::path::Path,
    offset: u64,
    len: u64,
) -> std::io::Result<reqwest::Body> {
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    let mut file = tokio::fs::File::open(path).await?;
    file.seek(std::io::SeekFrom::Start(offset)).await?;
    let reader = file.take(len);
    Ok(reqwest::Body::wrap_stream(
        tokio_util::io::ReaderStream::with_capacity(reader, 256 * 1024),
    ))
}

impl ApiRequest {
    pub(crate) fn new(method: Method, url: Url, operation: &'static str, at: Location) -> Self {
        ApiRequest {
            method,
            url,
            headers: HeaderMap::new(),
            body: RequestBody::Empty,
            operation,
            at,
        }
    }

    pub(crate) fn header(mut self, name: reqwest::header::HeaderName, value: &str) -> Self {
        if let Ok(v) = HeaderValue::from_str(value) {
            self.headers.insert(name, v);
        }
        self
    }
}

impl Client {
    /// A builder with defaults: HTTPS (plain HTTP for loopback), this machine's platform.
    pub fn builder() -> ClientBuilder {
        ClientBuilder::default()
    }

    /// The platform chosen from multi-platform indexes.
    pub fn platform(&self) -> &Platform {
        &self.inner.platform
    }

    /// The transport options in force.
    pub fn transport_options(&self) -> &TransportOptions {
        &self.inner.transport
    }

    pub(crate) fn endpoints(&self, repo: &Repository) -> Result<Endpoints> {
        Endpoints::new(repo.api_host(), self.inner.transport.plain_http).map_err(|e| {
            Error::InvalidInput(format!(
                "registry host \"{}\" does not form a URL: {e}",
                repo.api_host()
            ))
        })
    }

    /// Sends a request and returns the response whatever its status; only transport failures
    /// are errors. Authentication and retries hook in here.
    pub(crate) async fn send_raw(&self, req: &ApiRequest) -> Result<Response> {
        let mut builder = self
            .inner
            .http
            .request(req.method.clone(), req.url.clone())
            .headers(req.headers.clone());
        match &req.body {
            RequestBody::Empty => {}
            RequestBody::Bytes(bytes) => builder = builder.body(bytes.clone()),
            RequestBody::File { path, offset, len } => {
                builder = builder.header(CONTENT_LENGTH, *len).body(
                    file_body(path, *offset, *len)
                        .await
                        .map_err(|e| Error::io("reading", path, e))?,
                );
            }
        }
        let started = std::time::Instant::now();
        let result = builder.send().await;
        match &result {
            Ok(r) => tracing::debug!(
                method = %req.method, url = %req.url, status = r.status().as_u16(),
                ms = started.elapsed().as_millis() as u64, "request"
            ),
            Err(e) => {
                tracing::debug!(method = %req.method, url = %req.url, error = %e, "request failed")
            }
        }
        result.map_err(|source| Error::Transport {
            operation: req.operation,
            at: req.at.clone(),
            source,
        })
    }

    /// Sends a request; a non-success status becomes [`Error::Status`] with the registry's
    /// error body.
    pub(crate) async fn send(&self, req: &ApiRequest) -> Result<Response> {
        let response = self.send_raw(req).await?;
        if response.status().is_success() {
            Ok(response)
        } else {
            Err(status_error(req, response).await)
        }
    }

    /// Opens a blob for reading from byte `offset` (a `Range` request when non-zero). The
    /// caller checks for `206` and `Content-Range`.
    pub(crate) async fn blob_response(
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
        let endpoints = Endpoints::new(registry, self.inner.transport.plain_http).map_err(|e| {
            Error::InvalidInput(format!(
                "registry host \"{registry}\" does not form a URL: {e}"
            ))
        })?;
        let at = Location {
            registry: registry.to_string(),
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
        let response = self.blob_response(repo, digest, 0).await?;
        let at = location(repo, Some(digest.to_string()));
        let bytes = read_capped(response, limit, what, &at).await?;
        verify_bytes(&bytes, digest, &at)?;
        Ok(bytes)
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
        registry: repo.registry().to_string(),
        repository: repo.path().to_string(),
        reference,
    }
}

pub(crate) fn content_length(response: &Response) -> Option<u64> {
    response
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

/// Turns an error response into [`Error::Status`], reading at most [`ERROR_BODY_LIMIT`]
/// bytes of its body.
pub(crate) async fn status_error(req: &ApiRequest, mut response: Response) -> Error {
    let status = response.status().as_u16();
    let mut buf = BytesMut::new();
    if req.method != Method::HEAD {
        while let Ok(Some(chunk)) = response.chunk().await {
            let room = ERROR_BODY_LIMIT.saturating_sub(buf.len());
            buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
            if buf.len() >= ERROR_BODY_LIMIT {
                break;
            }
        }
    }
    Error::Status {
        operation: req.operation,
        at: req.at.clone(),
        status,
        body: RegistryErrorBody::parse(&buf),
    }
}

/// Reads a whole body into memory, refusing more than `limit` bytes (checked against
/// `Content-Length` first, then while reading, since the header can lie).
pub(crate) async fn read_capped(
    mut response: Response,
    limit: u64,
    what: &'static str,
    at: &Location,
) -> Result<Bytes> {
    let too_large = || Error::TooLarge {
        what,
        at: at.clone(),
        limit,
    };
    if content_length(&response).is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    let mut buf = BytesMut::new();
    loop {
        let chunk = response.chunk().await.map_err(|source| Error::Transport {
            operation: what,
            at: at.clone(),
            source,
        })?;
        let Some(chunk) = chunk else { break };
        if (buf.len() + chunk.len()) as u64 > limit {
            return Err(too_large());
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

/// Checks in-memory content against its digest.
pub(crate) fn verify_bytes(bytes: &[u8], expected: &Digest, at: &Location) -> Result<()> {
    let mut hasher = crate::digest::Hasher::new(expected.algorithm());
    hasher.update(bytes);
    let actual = hasher.finish();
    if &actual == expected {
        Ok(())
    } else {
        Err(Error::DigestMismatch {
            at: at.clone(),
            expected: expected.clone(),
            actual,
        })
    }
}

/// Parses JSON, naming the URL and the first bytes when it fails.
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    what: &'static str,
    url: &Url,
) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|source| invalid_document(bytes, what, url, source))
}

pub(crate) fn invalid_document(
    bytes: &[u8],
    what: &'static str,
    url: &Url,
    source: serde_json::Error,
) -> Error {
    Error::InvalidDocument {
        what,
        url: url.to_string(),
        prefix: String::from_utf8_lossy(&bytes[..bytes.len().min(64)]).into_owned(),
        source,
    }
}
