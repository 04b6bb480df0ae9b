//! Pushing blobs and manifests.
//! <https://github.com/opencontainers/distribution-spec/blob/main/spec.md#pushing-blobs>

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE, LOCATION};
use reqwest::{Method, Response, StatusCode};
use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;
use url::Url;

use super::retry::{self, Attempt, Decision};
use super::{location, ApiRequest, Client, Endpoints, RequestBody};
use crate::digest::Digest;
use crate::error::{Error, ErrorKind, Location, Result};
use crate::progress::{next_transfer_id, Reporter};
use crate::reference::Repository;

/// Blobs up to this size go up in one `PUT`; larger ones in `PATCH` chunks, so that a failed
/// chunk costs one chunk, not the whole blob.
pub const MONOLITHIC_UPLOAD_LIMIT: u64 = 64 * 1024 * 1024;
/// The size of each `PATCH` chunk (raised to the registry's `OCI-Chunk-Min-Length`).
pub const UPLOAD_CHUNK_SIZE: u64 = 16 * 1024 * 1024;

/// How a blob reached the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UploadOutcome {
    /// The registry had it already (found by `HEAD`); nothing was sent.
    AlreadyPresent,
    /// Sent in one `PUT`.
    Monolithic,
    /// Sent in this many `PATCH` chunks.
    Chunked(u32),
}

/// Where to send the next part of an upload session.
pub(super) struct Session {
    pub(super) url: Url,
    min_chunk: u64,
}

impl Client {
    /// Uploads a file as blob `digest` of `size` bytes, unless the registry already has it.
    /// The file is streamed from disk, never held in memory. Progress is reported per
    /// finished request (each chunk of a chunked upload). An upload that fails in a way a
    /// retry may heal starts over in a new upload session, under the client's retry policy;
    /// each attempt is then reported as a transfer of its own.
    pub async fn push_blob_file(
        &self,
        repo: &Repository,
        path: &Path,
        digest: &Digest,
        size: u64,
        reporter: &dyn Reporter,
    ) -> Result<UploadOutcome> {
        if self.blob_exists(repo, digest).await?.is_some() {
            return Ok(UploadOutcome::AlreadyPresent);
        }
        let never = CancellationToken::new();
        self.upload_blob_file_until(repo, path, digest, size, reporter, &never)
            .await
    }

    /// [`Client::push_blob_file`] without its existence check (a copy asks for each blob
    /// before it moves any), and which `stop` ends early: once it is cancelled, the upload
    /// sends no further request, cancels its session and fails with [`Error::Cancelled`].
    /// A request under way is finished first (see `stopping`), so a monolithic upload
    /// under way completes.
    pub(crate) async fn upload_blob_file_until(
        &self,
        repo: &Repository,
        path: &Path,
        digest: &Digest,
        size: u64,
        reporter: &dyn Reporter,
        stop: &CancellationToken,
    ) -> Result<UploadOutcome> {
        let name = format!("upload {}:{}", digest.algorithm(), &digest.hex()[..12]);
        self.with_fresh_sessions(digest, stop, || async {
            let id = next_transfer_id();
            reporter.transfer_started(id, &name, Some(size));
            let result = self
                .upload_file(repo, path, digest, size, reporter, id, stop)
                .await;
            match result {
                Ok(_) => reporter.transfer_finished(id),
                Err(_) => reporter.transfer_failed(id),
            }
            result
        })
        .await
    }

    /// Runs `upload`, one whole upload session from its `POST` to its closing `PUT`, and
    /// when it fails in a way a retry may heal, runs it again from a fresh `POST`, under the
    /// client's retry policy (the one budget for the whole upload). A session is never
    /// resumed: after a failed `PUT` or `PATCH` the registry may hold part of the body, and
    /// the session's offset no longer matches its URL. `upload` cancels the session it
    /// opened when it fails (see `cancel_if_failed`). Once `stop` is cancelled, no attempt
    /// is started again.
    async fn with_fresh_sessions<T, F, Fut>(
        &self,
        digest: &Digest,
        stop: &CancellationToken,
        mut upload: F,
    ) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let policy = *self.retry_policy();
        let started = std::time::Instant::now();
        let mut attempt = 1;
        loop {
            let error = match upload().await {
                Ok(done) => return Ok(done),
                Err(e) => e,
            };
            let outcome = Attempt::of(&error);
            match retry::decide(
                &policy,
                attempt,
                started.elapsed(),
                true,
                outcome,
                fastrand::f64(),
            ) {
                Decision::GiveUp => return Err(error),
                Decision::RetryAfter(wait) => {
                    tracing::info!(
                        %digest, attempt, wait_ms = wait.as_millis() as u64, error = %error,
                        "upload failed; starting it over in a new session"
                    );
                    if stop
                        .run_until_cancelled(tokio::time::sleep(wait))
                        .await
                        .is_none()
                    {
                        return Err(error);
                    }
                    attempt += 1;
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn upload_file(
        &self,
        repo: &Repository,
        path: &Path,
        digest: &Digest,
        size: u64,
        reporter: &dyn Reporter,
        id: u64,
        stop: &CancellationToken,
    ) -> Result<UploadOutcome> {
        let at = location(repo, Some(digest.to_string()));
        stopping(stop, &at)?;
        let session = self.start_upload(repo, &at).await?;
        let part = |offset, len| RequestBody::File {
            path: path.to_path_buf(),
            offset,
            len,
        };
        // Each chunk is answered with the session's next URL: a cancel must use the last.
        let mut url = session.url;
        let sent: Result<UploadOutcome> = async {
            stopping(stop, &at)?;
            if size <= self.inner.upload.monolithic_limit {
                self.finish_upload(url.clone(), digest, part(0, size), size, &at)
                    .await?;
                reporter.transfer_progress(id, size);
                return Ok(UploadOutcome::Monolithic);
            }
            let chunk = self.inner.upload.chunk_size.max(session.min_chunk).max(1);
            let mut offset = 0u64;
            let mut chunks = 0u32;
            while offset < size {
                stopping(stop, &at)?;
                let len = chunk.min(size - offset);
                let mut req = ApiRequest::new(
                    Method::PATCH,
                    url.clone(),
                    "uploading blob chunk",
                    at.clone(),
                )
                .header(CONTENT_TYPE, "application/octet-stream")
                .header(
                    reqwest::header::CONTENT_RANGE,
                    &format!("{}-{}", offset, offset + len - 1),
                )
                .on_upload_session();
                req.body = part(offset, len);
                let response = self.send(&req).await?;
                url = next_location(&response, &url, &at)?;
                offset += len;
                chunks += 1;
                reporter.transfer_progress(id, len);
            }
            stopping(stop, &at)?;
            self.finish_upload(url.clone(), digest, RequestBody::Empty, 0, &at)
                .await?;
            Ok(UploadOutcome::Chunked(chunks))
        }
        .await;
        self.cancel_if_failed(sent, &url, &at).await
    }

    /// Uploads small in-memory content (a config) as a blob; returns its digest.
    pub async fn push_blob_bytes(
        &self,
        repo: &Repository,
        bytes: Bytes,
    ) -> Result<(Digest, UploadOutcome)> {
        let digest = Digest::of_bytes(&bytes);
        if self.blob_exists(repo, &digest).await?.is_some() {
            return Ok((digest, UploadOutcome::AlreadyPresent));
        }
        let at = location(repo, Some(digest.to_string()));
        let len = bytes.len() as u64;
        let never = CancellationToken::new();
        self.with_fresh_sessions(&digest, &never, || async {
            let session = self.start_upload(repo, &at).await?;
            let body = RequestBody::Bytes(bytes.clone());
            let sent = self
                .finish_upload(session.url.clone(), &digest, body, len, &at)
                .await;
            self.cancel_if_failed(sent, &session.url, &at).await
        })
        .await?;
        Ok((digest, UploadOutcome::Monolithic))
    }

    /// Puts a manifest under `reference` (a tag or its digest) and checks the digest the
    /// registry reports against the bytes sent.
    pub async fn put_manifest(
        &self,
        repo: &Repository,
        reference: &str,
        media_type: &str,
        bytes: Bytes,
    ) -> Result<Digest> {
        let digest = Digest::of_bytes(&bytes);
        let url = self.endpoints(repo)?.manifest(repo, reference);
        let at = location(repo, Some(reference.to_string()));
        let mut req = ApiRequest::new(Method::PUT, url, "pushing manifest", at.clone())
            .header(CONTENT_TYPE, media_type);
        req.body = RequestBody::Bytes(bytes);
        let response = self.send(&req).await?;
        if let Some(claimed) = response
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
        {
            if claimed != digest.to_string() {
                return Err(Error::Protocol {
                    at,
                    message: format!(
                        "registry stored the manifest as {claimed}, but its bytes hash to {digest}"
                    ),
                });
            }
        }
        Ok(digest)
    }

    /// Asks the registry to link blob `digest` from repository `from` into `repo` without
    /// sending it: a cross-repository mount, for two repositories of one registry. `true` when
    /// the registry did; `false` when it declined. A registry that declines opens an upload
    /// session instead (202); it is cancelled here, since the caller sends the blob in a
    /// session of its own, one that a retry can start again.
    pub async fn mount_blob(
        &self,
        repo: &Repository,
        digest: &Digest,
        from: &Repository,
    ) -> Result<bool> {
        let at = location(repo, Some(digest.to_string()));
        match self.open_upload(repo, &at, Some((digest, from))).await? {
            None => Ok(true),
            Some(declined) => {
                self.cancel_upload(&declined.url, &at).await;
                Ok(false)
            }
        }
    }

    /// [`Client::mount_blob`], unless this client was refused a mount from `from` into
    /// `repo` for want of authorisation before: then `Ok(false)` without a request, and the
    /// caller sends the blob, as it does after a refusal. See [`MountRights`].
    pub(crate) async fn mount_blob_unless_refused(
        &self,
        repo: &Repository,
        digest: &Digest,
        from: &Repository,
    ) -> Result<bool> {
        let right = self.inner.mount_rights.between(from, repo);
        let mut asked = None;
        let slot = &mut asked;
        let allowed = right
            .get_or_try_init(move || async move {
                let result = self.mount_blob(repo, digest, from).await;
                // Declined (the source lacks the blob) or done, the mount was allowed.
                // Another failure says nothing about the right: the next mount asks again.
                let learned = match &result {
                    Ok(_) => Ok(true),
                    Err(e) if e.kind() == ErrorKind::Auth => Ok(false),
                    Err(_) => Err(()),
                };
                *slot = Some(result);
                learned
            })
            .await
            .copied();
        match (asked, allowed) {
            (Some(result), _) => result,
            (None, Ok(false)) => {
                tracing::debug!(
                    "not asking to mount {digest} from {from} into {repo}: refused before"
                );
                Ok(false)
            }
            (None, _) => self.mount_blob(repo, digest, from).await,
        }
    }

    /// Passes `result` on; when it is a failure, first cancels the upload session at
    /// `session`, so the registry does not keep what was sent until the session expires.
    ///
    /// Not when the registry itself let the upload time out: it would most likely let the
    /// cancel time out too, and the failure would then be reported a whole stall timeout
    /// later (at each attempt of a retried upload), for a session it expires anyway.
    pub(super) async fn cancel_if_failed<T>(
        &self,
        result: Result<T>,
        session: &Url,
        at: &Location,
    ) -> Result<T> {
        if result.as_ref().is_err_and(|e| !timed_out_at(e, at)) {
            self.cancel_upload(session, at).await;
        }
        result
    }

    /// `DELETE <session>`: "Canceling an Upload" of the registry API (distribution's
    /// `docs/spec/api.md`, and the OCI distribution spec up to v1.0), which asks clients to
    /// do so after a fatal error rather than leave the session to time out.
    ///
    /// Best effort, and never the error reported: the upload failed already, and the
    /// registry expires sessions anyway. So it is sent once (a request on an upload session
    /// is never replayed), within the client's connect and stall timeouts like any request,
    /// and what came of it is only logged. A registry that dropped the session itself
    /// answers 404, which is fine. Distribution (2.8) also answers 404,
    /// `BLOB_UPLOAD_INVALID`, and keeps the session, when it holds bytes the URL's offset
    /// does not count, as after a request cut off mid-body ("upload resumed at wrong
    /// offset"), or after a `PUT` whose body it took and whose digest it refused (its own
    /// cleanup then fails, "error canceling upload after error: already closed"): such a
    /// session only expires.
    async fn cancel_upload(&self, session: &Url, at: &Location) {
        let req = ApiRequest::new(
            Method::DELETE,
            session.clone(),
            "cancelling blob upload",
            at.clone(),
        )
        .on_upload_session();
        match self.send_raw(&req).await {
            Ok(response) => tracing::debug!(
                status = response.status().as_u16(),
                "asked to cancel the upload session of {at}"
            ),
            Err(e) => tracing::debug!("could not cancel the upload session: {e}"),
        }
    }

    async fn start_upload(&self, repo: &Repository, at: &Location) -> Result<Session> {
        self.open_upload(repo, at, None)
            .await?
            .ok_or_else(|| Error::Protocol {
                at: at.clone(),
                message: "the registry answered 201 to the start of an upload".into(),
            })
    }

    /// `POST /v2/<name>/blobs/uploads/`, as a mount of `mount` when given: `None` when the
    /// registry mounted the blob (201), else the upload session it opened.
    pub(super) async fn open_upload(
        &self,
        repo: &Repository,
        at: &Location,
        mount: Option<(&Digest, &Repository)>,
    ) -> Result<Option<Session>> {
        let url = self
            .endpoints(repo)?
            .upload_start(repo, mount.map(|(digest, from)| (digest, from.path())));
        let req = ApiRequest::new(
            Method::POST,
            url.clone(),
            "starting blob upload",
            at.clone(),
        )
        .header(CONTENT_LENGTH, "0");
        let response = self.send(&req).await?;
        if response.status() == StatusCode::CREATED {
            return Ok(None);
        }
        let min_chunk = response
            .headers()
            .get("oci-chunk-min-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        Ok(Some(Session {
            url: next_location(&response, &url, at)?,
            min_chunk,
        }))
    }

    pub(super) async fn finish_upload(
        &self,
        session: Url,
        digest: &Digest,
        body: RequestBody,
        len: u64,
        at: &Location,
    ) -> Result<()> {
        let mut url = session;
        url.query_pairs_mut()
            .append_pair("digest", &digest.to_string());
        let mut req = ApiRequest::new(Method::PUT, url, "finishing blob upload", at.clone())
            .header(CONTENT_TYPE, "application/octet-stream")
            .header(CONTENT_LENGTH, &len.to_string())
            .on_upload_session();
        req.body = body;
        let response = self.send(&req).await?;
        if response.status() != StatusCode::CREATED {
            return Err(Error::Protocol {
                at: at.clone(),
                message: format!(
                    "blob upload ended with HTTP {} instead of 201",
                    response.status()
                ),
            });
        }
        Ok(())
    }
}

/// `Err(Cancelled)` once `stop` is cancelled, for an upload at `at` to check before each
/// request on its session. It stops between requests, never within one: a request cut off
/// mid-body leaves the registry holding bytes that the session's URL does not account for,
/// and distribution then refuses the cancel and keeps the session (see `cancel_upload`),
/// while at a request's end the latest URL cancels it.
pub(super) fn stopping(stop: &CancellationToken, at: &Location) -> Result<()> {
    if stop.is_cancelled() {
        return Err(Error::Cancelled {
            operation: "uploading blob",
            at: at.clone(),
        });
    }
    Ok(())
}

/// Whether this client may mount blobs between two repositories, per (source, target), as
/// the registry answered the first mount between them.
///
/// A refusal for want of authorisation is about the credentials (the target's may not pull
/// the source), not about the blob, so it holds for every blob: a copy, or an `sdk mirror`
/// of many images, that asked again for each blob paid a token request and two refused
/// `POST`s per blob before sending it anyway. The first mount of each pair is made alone
/// (the others wait for its answer), so that blobs moved at once learn it from one request.
/// Kept for the client's life, like its credentials: rights granted meanwhile are only
/// used by a new client, and until then blobs are sent rather than mounted.
#[derive(Debug, Default)]
pub(super) struct MountRights(Mutex<HashMap<(Repository, Repository), Right>>);

/// `true` allowed, `false` refused; unset until a mount got an answer that tells.
type Right = Arc<OnceCell<bool>>;

impl MountRights {
    /// The right to mount from `from` into `to`.
    fn between(&self, from: &Repository, to: &Repository) -> Right {
        let mut rights = self.0.lock().unwrap_or_else(|p| p.into_inner());
        Arc::clone(rights.entry((from.clone(), to.clone())).or_default())
    }
}

/// Whether `error` is a request of the upload at `upload` not answered in time: a stalled
/// body, or a request that timed out. (A streamed copy's source timing out is a failure of
/// the source, which the target's session need not be left for.)
fn timed_out_at(error: &Error, upload: &Location) -> bool {
    let timed_out = match error {
        Error::Stalled { .. } => true,
        Error::Transport { source, .. } => source.is_timeout(),
        _ => false,
    };
    timed_out
        && error
            .location()
            .is_some_and(|at| at.registry == upload.registry && at.repository == upload.repository)
}

/// The upload session URL from `Location`, resolved against the request URL. It must stay on
/// the same origin: a registry may not send our upload elsewhere.
pub(super) fn next_location(response: &Response, request_url: &Url, at: &Location) -> Result<Url> {
    let value = response
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| Error::Protocol {
            at: at.clone(),
            message: "upload answer has no Location header".into(),
        })?;
    let url = Endpoints::resolve(request_url, value).ok_or_else(|| Error::Protocol {
        at: at.clone(),
        message: format!("unusable upload Location {value:?}"),
    })?;
    if url.origin() != request_url.origin() {
        return Err(Error::Protocol {
            at: at.clone(),
            message: format!(
                "refusing an upload Location on another origin: {}",
                super::http::loggable(&url, false)
            ),
        });
    }
    Ok(url)
}
