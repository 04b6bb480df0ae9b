//! One request over the wire: the body (replayed from memory or re-read from disk), and
//! redirects followed by hand.
//!
//! reqwest's own redirect handling strips `Authorization` only when a hop changes host or
//! port compared with the hop just before, and rebuilds every hop from the original
//! headers: on `registry → cdn/a → cdn/b` the second hop to the CDN carries the registry's
//! credentials again. Following redirects here keeps one simple rule: `Authorization` goes
//! only to the origin the request was made for, and once a chain leaves that origin it is
//! never sent again on that chain. https → http is refused outright.

use reqwest::header::{HeaderValue, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, LOCATION};
use reqwest::{Method, Response};
use url::Url;

use super::request::file_body;
use super::{ApiRequest, RequestBody};
use crate::error::{Error, Result};
use crate::transport::MAX_REDIRECTS;

/// Where a redirect leads and how to ask there.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Hop {
    pub(crate) url: Url,
    pub(crate) method: Method,
    /// Whether the body goes along (307/308); otherwise the next request has none.
    pub(crate) keep_body: bool,
}

/// The next hop for a response with `status` and `location` to a request `method url`:
/// `Ok(None)` when it is not a redirect to follow, an error when it must be refused.
pub(crate) fn next_hop(
    status: u16,
    location: Option<&str>,
    current: &Url,
    method: &Method,
) -> std::result::Result<Option<Hop>, String> {
    if !matches!(status, 301 | 302 | 303 | 307 | 308) {
        return Ok(None);
    }
    let Some(location) = location else {
        return Ok(None);
    };
    let url = current
        .join(location)
        .map_err(|e| format!("unusable redirect Location {location:?}: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("refusing a redirect to a {} URL", url.scheme()));
    }
    if current.scheme() == "https" && url.scheme() == "http" {
        return Err(format!(
            "refusing a redirect from https to http ({})",
            loggable(&url, false)
        ));
    }
    // 303 always, and 301/302 after anything but GET/HEAD, turn into a GET without a body
    // (what every HTTP client does); 307/308 repeat the request as it was.
    let (method, keep_body) = match status {
        307 | 308 => (method.clone(), true),
        303 if *method != Method::HEAD => (Method::GET, false),
        301 | 302 if !matches!(*method, Method::GET | Method::HEAD) => (Method::GET, false),
        _ => (method.clone(), false),
    };
    Ok(Some(Hop {
        url,
        method,
        keep_body,
    }))
}

/// A URL fit for logs and errors: never userinfo; on another origin not the query either
/// (pre-signed CDN URLs carry their signature there).
pub(crate) fn loggable(url: &Url, same_origin: bool) -> String {
    redacted(url, same_origin).to_string()
}

/// `url` as [`loggable`] shows it.
fn redacted(url: &Url, same_origin: bool) -> Url {
    let mut url = url.clone();
    let _ = url.set_username("");
    let _ = url.set_password(None);
    if !same_origin && url.query().is_some() {
        url.set_query(Some("redacted"));
    }
    url
}

/// Sends `req` with `authorization` (for `req.url`'s origin only), following redirects
/// (at most [`MAX_REDIRECTS`]). Returns the final response whatever its status.
pub(crate) async fn send_over_http(
    http: &crate::transport::Http,
    req: &ApiRequest,
    authorization: Option<&HeaderValue>,
) -> Result<Response> {
    let origin = req.url.origin();
    let mut url = req.url.clone();
    let mut method = req.method.clone();
    let mut with_body = true;
    let mut on_origin = true;
    for _ in 0..=MAX_REDIRECTS {
        let mut headers = req.headers.clone();
        if !with_body {
            headers.remove(CONTENT_LENGTH);
            headers.remove(CONTENT_TYPE);
        }
        on_origin &= url.origin() == origin;
        if let (Some(value), true) = (authorization, on_origin) {
            let mut value = value.clone();
            value.set_sensitive(true);
            headers.insert(AUTHORIZATION, value);
        }
        let mut builder = http.request(method.clone(), url.clone()).headers(headers);
        match (&req.body, with_body) {
            (RequestBody::Empty, _) | (_, false) => {}
            (RequestBody::Bytes(bytes), true) => builder = builder.body(bytes.clone()),
            (RequestBody::Stream(once), true) => {
                let body = once.take().ok_or_else(|| Error::Protocol {
                    at: req.at.clone(),
                    message: "a streamed upload cannot be sent twice (after a redirect or a retry)"
                        .into(),
                })?;
                builder = builder.header(CONTENT_LENGTH, once.len()).body(body);
            }
            (RequestBody::File { path, offset, len }, true) => {
                builder = builder.header(CONTENT_LENGTH, *len).body(
                    file_body(path, *offset, *len)
                        .await
                        .map_err(|e| Error::io("reading", path, e))?,
                );
            }
        }
        let started = std::time::Instant::now();
        let response = match builder.send().await {
            Ok(r) => r,
            Err(source) => {
                tracing::debug!(
                    method = %method, url = %loggable(&url, on_origin),
                    error = %crate::transport::describe_reqwest(&source),
                    "request failed"
                );
                // The client error keeps the URL it was sent to, and shows it in its
                // `Display` and `Debug`, which a caller may print (`unwrap`, a source chain):
                // a redirect's signed URL must not ride along.
                let source = source.with_url(redacted(&url, on_origin));
                return Err(Error::Transport {
                    operation: req.operation,
                    at: req.at.clone(),
                    source,
                });
            }
        };
        tracing::debug!(
            method = %method, url = %loggable(&url, on_origin),
            status = response.status().as_u16(),
            ms = started.elapsed().as_millis() as u64, "request"
        );
        let location = response
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok());
        let hop =
            next_hop(response.status().as_u16(), location, &url, &method).map_err(|message| {
                Error::Protocol {
                    at: req.at.clone(),
                    message,
                }
            })?;
        let Some(hop) = hop else {
            return Ok(response);
        };
        // A body goes only where it was addressed: a token request's carries a password or a
        // refresh token, an upload's the registry's content, and neither is another origin's.
        let carries_body = !matches!(req.body, RequestBody::Empty);
        if with_body && hop.keep_body && carries_body && hop.url.origin() != origin {
            return Err(Error::Protocol {
                at: req.at.clone(),
                message: format!(
                    "refusing to send the request's body on to another origin ({})",
                    loggable(&hop.url, false)
                ),
            });
        }
        url = hop.url;
        method = hop.method;
        with_body &= hop.keep_body;
    }
    Err(Error::Protocol {
        at: req.at.clone(),
        message: format!("more than {MAX_REDIRECTS} redirects"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn redirects_keep_or_drop_method_and_body_like_browsers() {
        let here = url("https://r.example/v2/a/blobs/sha256:1");
        let hop = |status, method: Method| {
            next_hop(status, Some("https://cdn.example/x?sig=1"), &here, &method)
                .unwrap()
                .map(|h| (h.method, h.keep_body))
        };
        assert_eq!(hop(307, Method::PUT), Some((Method::PUT, true)));
        assert_eq!(hop(308, Method::PATCH), Some((Method::PATCH, true)));
        assert_eq!(hop(303, Method::PUT), Some((Method::GET, false)));
        assert_eq!(hop(303, Method::HEAD), Some((Method::HEAD, false)));
        assert_eq!(hop(302, Method::POST), Some((Method::GET, false)));
        assert_eq!(hop(301, Method::GET), Some((Method::GET, false)));
        assert_eq!(hop(200, Method::GET), None);
        assert_eq!(hop(304, Method::GET), None);
        assert_eq!(next_hop(307, None, &here, &Method::GET).unwrap(), None);
    }

    #[test]
    fn relative_locations_resolve_against_the_current_url() {
        let hop = next_hop(
            302,
            Some("/v2/b"),
            &url("http://127.0.0.1:5000/v2/a"),
            &Method::GET,
        )
        .unwrap()
        .unwrap();
        assert_eq!(hop.url.as_str(), "http://127.0.0.1:5000/v2/b");
    }

    #[test]
    fn downgrades_and_odd_schemes_are_refused() {
        let here = url("https://r.example/v2/");
        let err = next_hop(302, Some("http://r.example/v2/"), &here, &Method::GET).unwrap_err();
        assert!(err.contains("https to http"), "{err}");
        assert!(next_hop(302, Some("file:///etc/passwd"), &here, &Method::GET).is_err());
        // Upgrades are fine.
        assert!(next_hop(
            302,
            Some("https://r.example/"),
            &url("http://r.example/"),
            &Method::GET
        )
        .unwrap()
        .is_some());
    }

    #[test]
    fn logged_urls_hide_userinfo_and_foreign_queries() {
        let u = url("https://user:pw@cdn.example/blob?X-Amz-Signature=abc");
        assert_eq!(loggable(&u, false), "https://cdn.example/blob?redacted");
        assert_eq!(
            loggable(&url("http://r/v2/a/tags/list?n=1"), true),
            "http://r/v2/a/tags/list?n=1"
        );
    }
}
