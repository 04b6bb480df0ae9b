//! A blob streamed from one registry into another without touching the disk: the source's
//! response body becomes the upload's request body, hashed as it passes.
//!
//! The check happens before the last bytes go out: when the bytes seen reach the expected
//! size, the digest is finished, and on a mismatch the body fails instead of completing, so
//! the target never receives a whole wrong blob. (The target would refuse it anyway, since
//! the digest is in the upload URL; failing first makes the error say what happened.)

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::StreamExt;
use reqwest::Response;
use tokio_util::sync::CancellationToken;

use super::upload::stopping;
use super::{location, Client, RequestBody};
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

impl<S> Verifying<S> {
    /// Records `error` as the verdict and gives the body's error.
    fn fail(&mut self, error: Error) -> std::io::Error {
        let message = error.to_string();
        *self.verdict.lock().unwrap_or_else(|p| p.into_inner()) = Some(error);
        self.hasher = None;
        std::io::Error::other(message)
    }

    /// Takes in one chunk of the source: `Ok` to pass it on.
    fn check(&mut self, chunk: &Bytes) -> std::result::Result<(), std::io::Error> {
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
                let error = Error::DigestMismatch {
                    at: self.at.clone(),
                    expected: self.digest.clone(),
                    actual: actual.unwrap_or_else(|| self.digest.clone()),
                };
                return Err(self.fail(error));
            }
        }
        Ok(())
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
                Ok(()) => Some((Ok(chunk), Some(state))),
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
    /// Uploads blob `digest` of `size` bytes into `repo` in one `PUT` whose body is
    /// `source`, the blob's response from another registry, verified on the way. When the
    /// source fails (breaks off, or its bytes do not match), that is the error returned.
    /// Once `stop` is cancelled, no upload is started: it fails with [`Error::Cancelled`].
    /// One under way is one request, which is finished (see `stopping`).
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
        let once = RequestBody::Stream(OnceBody::new(body, size));
        let sent = self
            .finish_upload(session.url.clone(), digest, once, size, &at)
            .await;
        // A failure of the source (or of its bytes) is the real cause of a failed upload.
        let failed = verdict.lock().unwrap_or_else(|p| p.into_inner()).take();
        let result = match (sent, failed) {
            (_, Some(cause)) => Err(cause),
            (result, None) => result,
        };
        self.cancel_if_failed(result, &session.url, &at).await
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
    fn the_last_chunk_is_held_back_when_the_digest_is_wrong() {
        let mut v = verifying(b"hello world", 11);
        assert!(v.check(&Bytes::from_static(b"hello ")).is_ok());
        assert!(v.check(&Bytes::from_static(b"world")).is_ok());
        assert!(v.end().is_none());

        let mut v = verifying(b"hello world", 11);
        assert!(v.check(&Bytes::from_static(b"hello ")).is_ok());
        assert!(v.check(&Bytes::from_static(b"WORLD")).is_err());
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

        let mut v = verifying(b"hi", 2);
        assert!(v.check(&Bytes::from_static(b"hi!")).is_err());
    }
}
