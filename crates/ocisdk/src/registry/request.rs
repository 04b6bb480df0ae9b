//! One request's life: a replayable description, sending it (with retries), and reading
//! the answer within limits.

use bytes::{Bytes, BytesMut};
use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::{Method, Response};
use url::Url;

use super::retry::{self, Attempt, Decision};
use super::{content_length, Client, RegistryErrorBody, ERROR_BODY_LIMIT};
use crate::digest::Digest;
use crate::error::{Error, Location, Result};

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
    /// Whether a failed attempt may be sent again as it is; see [`ApiRequest::on_upload_session`].
    pub(crate) replayable: bool,
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
    /// Sent once, never replayed (a blob streamed from another registry).
    Stream(super::stream_body::OnceBody),
}

pub(super) async fn file_body(
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
            replayable: true,
        }
    }

    /// Marks a request that writes to an upload session (a chunk `PATCH`, the closing
    /// `PUT`, the `DELETE` that cancels it): it is never replayed. A registry that took part
    /// of a failed attempt's body has moved the session's offset, so the same request again
    /// fails (distribution answers `BLOB_UPLOAD_INVALID` and cancels the session); the whole
    /// upload is started over from a fresh `POST` instead (see
    /// `Client::with_fresh_sessions`).
    pub(crate) fn on_upload_session(mut self) -> Self {
        self.replayable = false;
        self
    }

    /// Whether the retry policy may send this request again: reads, and `PUT`s that replace
    /// a whole resource (a manifest), with a body that can be sent twice.
    fn may_retry(&self) -> bool {
        matches!(self.method, Method::GET | Method::HEAD | Method::PUT)
            && self.replayable
            && !matches!(self.body, RequestBody::Stream(_))
    }

    pub(crate) fn header(mut self, name: reqwest::header::HeaderName, value: &str) -> Self {
        if let Ok(v) = HeaderValue::from_str(value) {
            self.headers.insert(name, v);
        }
        self
    }
}

impl Client {
    /// Sends a request and returns the response whatever its status; only transport failures
    /// are errors. Retries what the policy allows (see [`super::retry`]).
    pub(crate) async fn send_raw(&self, req: &ApiRequest) -> Result<Response> {
        let policy = *self.retry_policy();
        let started = std::time::Instant::now();
        let mut attempt = 1;
        loop {
            let result = self.send_once(req).await;
            let outcome = match &result {
                Ok(r) => Attempt::Status {
                    status: r.status().as_u16(),
                    retry_after: retry_after(r),
                },
                // An error status here is the token server's (a 429 or 503 before the
                // request could go out): its `Retry-After` counts like the registry's.
                Err(e) => Attempt::of(e),
            };
            match retry::decide(
                &policy,
                attempt,
                started.elapsed(),
                req.may_retry(),
                outcome,
                fastrand::f64(),
            ) {
                Decision::GiveUp => return result,
                Decision::RetryAfter(wait) => {
                    tracing::info!(
                        method = %req.method, url = %req.url, attempt, wait_ms = wait.as_millis() as u64,
                        outcome = ?outcome, "retrying"
                    );
                    // Free the connection before waiting.
                    drop(result);
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
            }
        }
    }

    /// One attempt: the transport, with the registry's authentication applied.
    async fn send_once(&self, req: &ApiRequest) -> Result<Response> {
        self.inner.auth.send(self.http_for(&req.url), req).await
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
}

/// The wait an answer's `Retry-After` asks for, from now.
fn retry_after(response: &Response) -> Option<std::time::Duration> {
    let value = response.headers().get(reqwest::header::RETRY_AFTER)?;
    retry::parse_retry_after(value.to_str().ok()?, std::time::SystemTime::now())
}

/// Turns an error response into [`Error::Status`], reading at most [`ERROR_BODY_LIMIT`]
/// bytes of its body.
pub(crate) async fn status_error(req: &ApiRequest, mut response: Response) -> Error {
    let status = response.status().as_u16();
    // Read before the body: the wait counts from the answer, not from its end. Rounded up,
    // so that a wait to an HTTP date does not end before it.
    let retry_after_secs = retry_after(&response).map(|wait| {
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        u16::try_from(secs).unwrap_or(u16::MAX)
    });
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
        method: req.method.clone(),
        at: req.at.clone(),
        status,
        body: RegistryErrorBody::parse(&buf),
        retry_after_secs,
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
