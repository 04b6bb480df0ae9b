//! A blob streamed from one registry into another without touching the disk: the source's
//! response body becomes the upload's request body, hashed as it passes.
//!
//! The body goes up in one `PATCH`, and the digest in a `PUT` after it, which commits the
//! blob only once the source's bytes proved right. The check happens as the last bytes go
//! out: when the bytes seen reach the expected size, the digest is finished. Wrong bytes of
//! the right size are sent whole all the same, and the body ends after them: the `PATCH`'s
//! answer then names the session at the offset the registry holds, where a `DELETE` cancels
//! it, and nothing is committed. A body failed short of its end would leave the registry
//! holding bytes that the session's URL does not count, and distribution 2.8 refuses a
//! cancel at such a URL (404 `BLOB_UPLOAD_INVALID`) and keeps the session until it expires,
//! as it does after a commit it refuses for its digest. A source sending more than the size
//! is still cut at once: the target never gets more than the size.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::StreamExt;
use reqwest::header::{CONTENT_RANGE, CONTENT_TYPE};
use reqwest::{Method, Response};
use tokio_util::sync::CancellationToken;

use super::upload::{next_location, stopping};
use super::{location, ApiRequest, Client, RequestBody};
use crate::digest::{Digest, Hasher};
use crate::error::{Error, Location, Result};
use crate::reference::Repository;

/// A request body that can be sent only once. A retry or a redirect that needs it again
/// gets an error instead (and the request is not retried: see `send_raw`).
#[derive(Clone)]
pub(crate) struct OnceBody {
    body: Arc<Mutex<Option<reqwest::Body>>>,
    len: u64,
}

impl std::fmt::Debug for OnceBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnceBody").field("len", &self.len).finish()
    }
}

impl OnceBody {
    fn new(body: reqwest::Body, len: u64) -> OnceBody {
        OnceBody {
            body: Arc::new(Mutex::new(Some(body))),
            len,
        }
    }

    /// The body, the first time; `None` after.
    pub(crate) fn take(&self) -> Option<reqwest::Body> {
        self.body.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    /// Its length in bytes (sent as `Content-Length`).
    pub(crate) fn len(&self) -> u64 {
        self.len
    }
}

/// Where the verifying stream leaves its verdict when it fails the body.
type Verdict = Arc<Mutex<Option<Error>>>;

struct Verifying<S> {
    inner: S,
    hasher: Option<Hasher>,
    digest: Digest,
    size: u64,
    seen: u64,
    at: Location,
    verdict: Verdict,
}

/// What becomes of a chunk of the source that is passed on.
#[derive(Debug, PartialEq, Eq)]
enum Pass {
    /// More may follow.
    More,
    /// The body ends after it: it completes the size, and the bytes are wrong (the verdict
    /// says so).
    Last,
}

impl<S> Verifying<S> {
    /// Records `error` as the verdict.
    fn record(&mut self, error: Error) {
        *self.verdict.lock().unwrap_or_else(|p| p.into_inner()) = Some(error);
        self.hasher = None;
    }

    /// Records `error` as the verdict and gives the body's error.
    fn fail(&mut self, error: Error) -> std::io::Error {
        let message = error.to_string();
        self.record(error);
        std::io::Error::other(message)
    }

    /// Takes in one chunk of the source: `Ok` to pass it on.
    fn check(&mut self, chunk: &Bytes) -> std::result::Result<Pass, std::io::Error> {
        self.seen += chunk.len() as u64;
        if self.seen > self.size {
            let error = Error::SizeMismatch {
                at: self.at.clone(),
                expected: self.size,
                actual: self.seen,
            };
            return Err(self.fail(error));
        }
        let Some(hasher) = self.hasher.as_mut() else {
            return Err(std::io::Error::other("the body already failed"));
        };
        hasher.update(chunk);
        if self.seen == self.size {
            let actual = self.hasher.take().map(Hasher::finish);
            if actual.as_ref() != Some(&self.digest) {
                // Sent whole all the same, so that the session can be cancelled (see the
                // module docs).
                self.record(Error::DigestMismatch {
                    at: self.at.clone(),
                    expected: self.digest.clone(),
                    actual: actual.unwrap_or_else(|| self.digest.clone()),
                });
                return Ok(Pass::Last);
            }
        }
        Ok(Pass::More)
    }

    /// The source ended: fine only when every byte came.
    fn end(&mut self) -> Option<std::io::Error> {
        (self.seen < self.size).then(|| {
            let error = Error::SizeMismatch {
                at: self.at.clone(),
                expected: self.size,
                actual: self.seen,
            };
            self.fail(error)
        })
    }
}

/// Turns the source's blob response into an upload body that verifies `digest` and `size`
/// as it streams. The verdict holds the reason when the body fails.
fn verifying_body(
    response: Response,
    digest: &Digest,
    size: u64,
    at: Location,
) -> (reqwest::Body, Verdict) {
    let verdict = Verdict::default();
    let state = Verifying {
        inner: response.bytes_stream(),
        hasher: Some(Hasher::new(digest.algorithm())),
        digest: digest.clone(),
        size,
        seen: 0,
        at,
        verdict: verdict.clone(),
    };
    let stream = futures_util::stream::unfold(Some(state), |state| async move {
        let mut state = state?;
        match state.inner.next().await {
            Some(Ok(chunk)) => match state.check(&chunk) {
                Ok(Pass::More) => Some((Ok(chunk), Some(state))),
                Ok(Pass::Last) => Some((Ok(chunk), None)),
                Err(e) => Some((Err(e), None)),
            },
            Some(Err(source)) => {
                let error = Error::Transport {
                    operation: "reading the source blob",
                    at: state.at.clone(),
                    source,
                };
                Some((Err(state.fail(error)), None))
            }
            None => state.end().map(|e| (Err(e), None)),
        }
    });
    (reqwest::Body::wrap_stream(stream), verdict)
}

impl Client {
    /// Uploads blob `digest` of `size` bytes into `repo` from `source`, the blob's response
    /// from another registry, verified on the way: its body in one `PATCH`, then the `PUT`
    /// that commits it, once the bytes proved right (see the module docs). When the source
    /// fails (breaks off, or its bytes do not match), that is the error returned, and the
    /// session is cancelled. Once `stop` is cancelled, no upload is started: it fails with
    /// [`Error::Cancelled`]. One under way is finished (see `stopping`): its body is one
    /// request, and cut off it would leave the session on the registry.
    pub(crate) async fn push_blob_streamed(
        &self,
        repo: &Repository,
        digest: &Digest,
        size: u64,
        source: Response,
        source_at: Location,
        stop: &CancellationToken,
    ) -> Result<()> {
        let at = location(repo, Some(digest.to_string()));
        stopping(stop, &at)?;
        let session = self
            .open_upload(repo, &at, None)
            .await?
            .ok_or_else(|| Error::Protocol {
                at: at.clone(),
                message: "the registry answered 201 to the start of an upload".into(),
            })?;
        let (body, verdict) = verifying_body(source, digest, size, source_at);
        let source_failed = || verdict.lock().unwrap_or_else(|p| p.into_inner()).take();
        // The `PATCH` answers with the session's URL at its new offset: a cancel must use it.
        let mut url = session.url;
        let sent: Result<()> = async {
            // An empty blob has no body to send (nor a range to name).
            if size > 0 {
                let mut req =
                    ApiRequest::new(Method::PATCH, url.clone(), "uploading blob", at.clone())
                        .header(CONTENT_TYPE, "application/octet-stream")
                        .header(CONTENT_RANGE, &format!("0-{}", size - 1))
                        .on_upload_session();
                req.body = RequestBody::Stream(OnceBody::new(body, size));
                let response = self.send(&req).await?;
                url = next_location(&response, &url, &at)?;
            }
            if let Some(cause) = source_failed() {
                return Err(cause);
            }
            self.finish_upload(url.clone(), digest, RequestBody::Empty, 0, &at)
                .await
        }
        .await;
        // A failure of the source (or of its bytes) is the real cause of a failed upload.
        let result = match (sent, source_failed()) {
            (_, Some(cause)) => Err(cause),
            (result, None) => result,
        };
        self.cancel_if_failed(result, &url, &at).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verifying(content: &[u8], size: u64) -> Verifying<()> {
        Verifying {
            inner: (),
            hasher: Some(Hasher::new(crate::digest::Algorithm::Sha256)),
            digest: Digest::of_bytes(content),
            size,
            seen: 0,
            at: Location::default(),
            verdict: Verdict::default(),
        }
    }

    #[test]
    fn wrong_bytes_go_whole_and_end_the_body_and_too_many_are_cut() {
        let mut v = verifying(b"hello world", 11);
        assert_eq!(v.check(&Bytes::from_static(b"hello ")).unwrap(), Pass::More);
        assert_eq!(v.check(&Bytes::from_static(b"world")).unwrap(), Pass::More);
        assert!(v.end().is_none());
        assert!(v.verdict.lock().unwrap().is_none());

        // The last chunk goes too: the session can be cancelled at the URL that answers a
        // whole body.
        let mut v = verifying(b"hello world", 11);
        assert_eq!(v.check(&Bytes::from_static(b"hello ")).unwrap(), Pass::More);
        assert_eq!(v.check(&Bytes::from_static(b"WORLD")).unwrap(), Pass::Last);
        assert!(matches!(
            v.verdict.lock().unwrap().as_ref(),
            Some(Error::DigestMismatch { .. })
        ));

        let mut v = verifying(b"hello world", 11);
        assert!(v.check(&Bytes::from_static(b"hello")).is_ok());
        assert!(v.end().is_some());
        assert!(matches!(
            v.verdict.lock().unwrap().as_ref(),
            Some(Error::SizeMismatch { actual: 5, .. })
        ));

        // More than the size is cut, at once or after the right bytes.
        let mut v = verifying(b"hi", 2);
        assert!(v.check(&Bytes::from_static(b"hi!")).is_err());
        let mut v = verifying(b"hi", 2);
        assert_eq!(v.check(&Bytes::from_static(b"hi")).unwrap(), Pass::More);
        assert!(v.check(&Bytes::from_static(b"!")).is_err());
        assert!(matches!(
            v.verdict.lock().unwrap().as_ref(),
            Some(Error::SizeMismatch { actual: 3, .. })
        ));
    }
}
