//! Bearer tokens: asking the token server (the challenge's `realm`) for one, and keeping it
//! until shortly before it expires.
//! <https://distribution.github.io/distribution/spec/auth/token/>,
//! <https://distribution.github.io/distribution/spec/auth/oauth/>

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use base64::Engine as _;
use reqwest::header::{HeaderValue, CONTENT_TYPE};
use reqwest::{Method, Response, StatusCode};
use url::Url;

use super::credentials::{Credential, Secret};
use crate::error::{Error, Location, Result};
use crate::registry::http::{loggable, send_over_http};
use crate::registry::{read_capped, status_error, ApiRequest, RegistryErrorBody, RequestBody};

/// The most bytes of a token response: tokens with many scopes run to tens of kilobytes,
/// and a hostile server cannot make us buffer more than this.
pub const TOKEN_RESPONSE_LIMIT: u64 = 1024 * 1024;

/// How long a token lives when the server does not say (`expires_in` absent), per the
/// token spec.
pub const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(60);

/// The longest a token is kept, whatever `expires_in` says: the server picks that number,
/// and one past what a clock can add up to would panic; a day outlasts any real token.
pub const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 60 * 60);

/// A token is replaced this long before it expires (at most; a tenth of its life for short
/// ones), so that it does not run out between being picked and reaching the registry.
pub const TOKEN_REFRESH_MARGIN: Duration = Duration::from_secs(10);

/// The OAuth2 `client_id` sent with POST token requests.
const CLIENT_ID: &str = "ocisdk";

/// Which token a cache slot holds: one registry origin, the repository whose credential
/// got it, and one sorted set of scopes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct TokenKey {
    pub(crate) origin: String,
    /// The repository of the request the token was got for (empty for registry-wide ones):
    /// credentials may differ per namespace of one registry, and a registry may ask for
    /// the same scopes from two of them, so a token got with one namespace's credential
    /// must not serve a request of another.
    pub(crate) repository: String,
    pub(crate) scopes: Vec<String>,
}

#[derive(Debug)]
struct CachedToken {
    value: Secret,
    usable_until: Instant,
}

/// Tokens per [`TokenKey`]. Each key has its own async lock, held while a token is fetched,
/// so that requests starting together (eight parallel blob downloads) make one token
/// request between them, and requests for other keys are not held up.
#[derive(Debug, Default)]
pub(crate) struct TokenCache {
    slots: Mutex<HashMap<TokenKey, Arc<tokio::sync::Mutex<Option<CachedToken>>>>>,
}

impl TokenCache {
    /// The cached token for `key` unless it is (nearly) expired or is `refused` (the token
    /// the registry just turned down); otherwise a new one from `fetch`, which returns the
    /// token and how long it stays valid.
    pub(crate) async fn get<F, Fut>(
        &self,
        key: &TokenKey,
        refused: Option<&Secret>,
        fetch: F,
    ) -> Result<Secret>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(Secret, Duration)>>,
    {
        let slot = {
            let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            Arc::clone(slots.entry(key.clone()).or_default())
        };
        let mut cached = slot.lock().await;
        if let Some(token) = cached.as_ref() {
            if Instant::now() < token.usable_until && Some(&token.value) != refused {
                return Ok(token.value.clone());
            }
        }
        let (value, valid_for) = fetch().await?;
        let valid_for = valid_for.min(MAX_TOKEN_LIFETIME);
        *cached = Some(CachedToken {
            value: value.clone(),
            usable_until: Instant::now() + valid_for.saturating_sub(refresh_margin(valid_for)),
        });
        Ok(value)
    }
}

/// How long before expiry a token of lifetime `valid_for` is replaced.
pub(crate) fn refresh_margin(valid_for: Duration) -> Duration {
    (valid_for / 10).min(TOKEN_REFRESH_MARGIN)
}

/// How long a token stays valid from `now`: `expires_in` (default
/// [`DEFAULT_TOKEN_LIFETIME`]) counted from `issued_at` when the server sent it. An
/// `issued_at` in the future, or so far back that the token would already be dead, says more
/// about the two clocks than about the token, and is ignored.
pub(crate) fn remaining_validity(
    expires_in: Option<u64>,
    issued_at: Option<SystemTime>,
    now: SystemTime,
) -> Duration {
    let lifetime = expires_in
        .map_or(DEFAULT_TOKEN_LIFETIME, Duration::from_secs)
        .min(MAX_TOKEN_LIFETIME);
    let age = issued_at
        .and_then(|t| now.duration_since(t).ok())
        .filter(|age| *age < lifetime)
        .unwrap_or_default();
    lifetime - age
}

/// The token server's answer (both spellings: `token` from docker's spec, `access_token`
/// from OAuth2).
#[derive(serde::Deserialize)]
struct TokenResponse {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    expires_in: Option<serde_json::Value>,
    #[serde(default)]
    issued_at: Option<String>,
}

/// Reads a token response body: the token and how long it is valid from now.
pub(crate) fn parse_token_response(
    body: &[u8],
    now: SystemTime,
) -> std::result::Result<(Secret, Duration), String> {
    let parsed: TokenResponse = serde_json::from_slice(body)
        .map_err(|e| format!("the token server's answer is not valid JSON: {e}"))?;
    let token = parsed
        .token
        .filter(|t| !t.is_empty())
        .or(parsed.access_token.filter(|t| !t.is_empty()))
        .ok_or("the token server's answer has no \"token\" or \"access_token\"")?;
    // Numbers, or numbers in strings; anything else means the default.
    let expires_in = parsed.expires_in.and_then(|v| match v {
        serde_json::Value::Number(n) => n.as_u64().or_else(|| n.as_f64().and_then(whole_seconds)),
        serde_json::Value::String(s) => {
            let s = s.trim();
            s.parse()
                .ok()
                .or_else(|| s.parse().ok().and_then(whole_seconds))
        }
        _ => None,
    });
    let issued_at = parsed
        .issued_at
        .as_deref()
        .and_then(|t| humantime::parse_rfc3339_weak(t.trim()).ok());
    Ok((
        Secret::new(token),
        remaining_validity(expires_in.filter(|s| *s > 0), issued_at, now),
    ))
}

/// A lifetime a server wrote as a fraction (`300.0`: JSON has one number type, and some
/// servers' serializers write every number so), rounded down; `None` (the default lifetime)
/// for one that is negative or not a number.
fn whole_seconds(seconds: f64) -> Option<u64> {
    // `as` saturates: a lifetime past u64::MAX is then capped like any other long one.
    (seconds >= 0.0).then_some(seconds as u64)
}

/// The `refresh_token` of a token response, when it has a non-empty one.
fn refresh_token_in(body: &[u8]) -> Option<Secret> {
    #[derive(serde::Deserialize)]
    struct WithRefresh {
        refresh_token: Option<String>,
    }
    let parsed: WithRefresh = serde_json::from_slice(body).ok()?;
    parsed
        .refresh_token
        .filter(|t| !t.is_empty())
        .map(Secret::new)
}

/// Everything one token request needs.
pub(crate) struct TokenRequest<'a> {
    /// The validated realm.
    pub(crate) realm: &'a Url,
    pub(crate) service: Option<&'a str>,
    pub(crate) scopes: &'a [String],
    pub(crate) credential: Option<&'a Credential>,
    /// Use OAuth2's password grant (POST) for username/password credentials.
    pub(crate) password_grant: bool,
    /// Ask for offline access, and put the refresh token the server returns here.
    pub(crate) offline: Option<&'a Mutex<Option<Secret>>>,
    /// The registry request this token is for: where errors point.
    pub(crate) operation: &'static str,
    pub(crate) at: &'a Location,
}

/// Gets a token from the realm.
///
/// 1. An identity (refresh) token, or a password when the password grant is on, goes in an
///    OAuth2 `POST` (`grant_type=refresh_token` / `password`); a server that answers that
///    with 404 or 405 does not speak OAuth2, and is asked again with step 2.
/// 2. Otherwise a `GET realm?service=…&scope=…&scope=…`, with the credential as HTTP Basic
///    when there is one, anonymous when not.
///
/// A refusal is an [`Error::Auth`]; there is no anonymous second try after credentials were
/// refused.
pub(crate) async fn fetch_token(
    http: &crate::transport::Http,
    tr: &TokenRequest<'_>,
) -> Result<(Secret, Duration)> {
    let oauth = match tr.credential {
        Some(Credential::IdentityToken { token, .. }) => Some(vec![
            ("grant_type", "refresh_token"),
            ("refresh_token", token.expose()),
        ]),
        Some(Credential::Basic { username, password }) if tr.password_grant => Some(vec![
            ("grant_type", "password"),
            ("username", username.as_str()),
            ("password", password.expose()),
        ]),
        _ => None,
    };
    if let Some(grant) = oauth {
        let response = post_oauth(http, tr, grant).await?;
        if !matches!(
            response.status(),
            StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED
        ) {
            return read_token(response, tr, "POST").await;
        }
        tracing::debug!(realm = %loggable(tr.realm, true), "token server has no OAuth2 POST; asking with GET");
    }
    let mut url = tr.realm.clone();
    {
        let mut query = url.query_pairs_mut();
        if let Some(service) = tr.service {
            query.append_pair("service", service);
        }
        for scope in tr.scopes {
            query.append_pair("scope", scope);
        }
        // docker's login: a server that supports it returns a refresh token as well.
        if tr.offline.is_some() && tr.credential.is_some() {
            query.append_pair("offline_token", "true");
            query.append_pair("client_id", CLIENT_ID);
        }
    }
    let req = ApiRequest::new(Method::GET, url, "getting a token", tr.at.clone());
    let basic = tr.credential.map(basic_header).transpose()?;
    let response = send_over_http(http, &req, basic.as_ref()).await?;
    read_token(response, tr, "GET").await
}

async fn post_oauth(
    http: &crate::transport::Http,
    tr: &TokenRequest<'_>,
    grant: Vec<(&str, &str)>,
) -> Result<Response> {
    // Built apart: the serializer is not `Send` and must not live across the await.
    let body = {
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in grant {
            form.append_pair(k, v);
        }
        if let Some(service) = tr.service {
            form.append_pair("service", service);
        }
        if !tr.scopes.is_empty() {
            // OAuth2 scopes are one space-separated parameter (RFC 6749 §3.3).
            form.append_pair("scope", &tr.scopes.join(" "));
        }
        form.append_pair("client_id", CLIENT_ID);
        if tr.offline.is_some() {
            form.append_pair("access_type", "offline");
        }
        form.finish()
    };
    let mut req = ApiRequest::new(
        Method::POST,
        tr.realm.clone(),
        "getting a token",
        tr.at.clone(),
    )
    .header(CONTENT_TYPE, "application/x-www-form-urlencoded");
    req.body = RequestBody::Bytes(body.into());
    send_over_http(http, &req, None).await
}

/// The `Authorization: Basic …` value for a credential (an identity token goes as the
/// password, which is what registries that accept one in Basic expect).
pub(crate) fn basic_header(credential: &Credential) -> Result<HeaderValue> {
    let raw = format!("{}:{}", credential.username(), credential.secret().expose());
    let encoded = base64::engine::general_purpose::STANDARD.encode(raw);
    let mut value = HeaderValue::from_str(&format!("Basic {encoded}"))
        .map_err(|_| Error::InvalidInput("credential does not fit in a header".into()))?;
    value.set_sensitive(true);
    Ok(value)
}

async fn read_token(
    response: Response,
    tr: &TokenRequest<'_>,
    method: &str,
) -> Result<(Secret, Duration)> {
    let status = response.status();
    let req = ApiRequest::new(
        Method::GET,
        tr.realm.clone(),
        "getting a token",
        tr.at.clone(),
    );
    if status.is_success() {
        let body = read_capped(response, TOKEN_RESPONSE_LIMIT, "token response", tr.at).await?;
        if let (Some(sink), Some(refresh)) = (tr.offline, refresh_token_in(&body)) {
            *sink.lock().unwrap_or_else(|p| p.into_inner()) = Some(refresh);
        }
        return parse_token_response(&body, SystemTime::now()).map_err(|message| Error::Auth {
            operation: tr.operation,
            at: tr.at.clone(),
            message: format!("{message} ({})", loggable(tr.realm, true)),
        });
    }
    if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
        // Worth another try: the retry policy around the registry request decides.
        return Err(status_error(&req, response).await);
    }
    let body = read_capped(response, TOKEN_RESPONSE_LIMIT, "token error", tr.at)
        .await
        .unwrap_or_default();
    let who = match tr.credential {
        Some(c) => format!("the credentials of user \"{}\"", c.username()),
        None => "an anonymous token".to_string(),
    };
    let mut message = format!(
        "the token server {} ({method}) refused {who} for {} (HTTP {})",
        loggable(tr.realm, true),
        tr.at.registry,
        status.as_u16()
    );
    if let Some(detail) = error_detail(&body) {
        message.push_str(": ");
        message.push_str(&detail);
    }
    if let Some(c) = tr.credential {
        // Belt and braces: a server that echoes what it was sent (the secret, or the Basic
        // header that carried it) must not make us print it.
        let secret = c.secret().expose();
        if !secret.is_empty() {
            let basic = base64::engine::general_purpose::STANDARD
                .encode(format!("{}:{secret}", c.username()));
            message = message
                .replace(&basic, "<redacted>")
                .replace(secret, "<redacted>");
        }
    }
    Err(Error::Auth {
        operation: tr.operation,
        at: tr.at.clone(),
        message,
    })
}

/// The server's own explanation from an error body: distribution's `errors`, OAuth2's
/// `error_description`/`error`, docker_auth's `details`, or the start of a text body.
fn error_detail(body: &[u8]) -> Option<String> {
    if let Some(parsed) = RegistryErrorBody::parse(body) {
        if !parsed.errors.is_empty() {
            return Some(parsed.to_string());
        }
    }
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) {
        for key in ["details", "error_description", "error", "message"] {
            if let Some(text) = value.get(key).and_then(|v| v.as_str()) {
                return Some(text.chars().take(300).collect());
            }
        }
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    (!text.is_empty()).then(|| text.chars().take(200).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    const NOW: u64 = 1_700_000_000;

    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(NOW)
    }

    #[test]
    fn token_responses_in_both_spellings_with_lifetimes() {
        let (t, d) = parse_token_response(br#"{"token":"abc","expires_in":300}"#, now()).unwrap();
        assert_eq!((t.expose(), d), ("abc", Duration::from_secs(300)));
        let (t, d) = parse_token_response(br#"{"access_token":"xyz"}"#, now()).unwrap();
        assert_eq!((t.expose(), d), ("xyz", DEFAULT_TOKEN_LIFETIME));
        let (t, _) = parse_token_response(br#"{"token":"","access_token":"a2"}"#, now()).unwrap();
        assert_eq!(t.expose(), "a2");
        let (_, d) = parse_token_response(br#"{"token":"a","expires_in":"120"}"#, now()).unwrap();
        assert_eq!(d, Duration::from_secs(120));
        let (_, d) = parse_token_response(br#"{"token":"a","expires_in":0}"#, now()).unwrap();
        assert_eq!(d, DEFAULT_TOKEN_LIFETIME);
        // A lifetime written as a fraction counts, rounded down; a negative one, or one
        // that rounds down to nothing, is the default.
        for (expires_in, lifetime) in [
            ("300.0", Duration::from_secs(300)),
            ("299.9", Duration::from_secs(299)),
            ("\"300.0\"", Duration::from_secs(300)),
            ("3e2", Duration::from_secs(300)),
            ("-300.0", DEFAULT_TOKEN_LIFETIME),
            ("-300", DEFAULT_TOKEN_LIFETIME),
            ("0.5", DEFAULT_TOKEN_LIFETIME),
            ("\"NaN\"", DEFAULT_TOKEN_LIFETIME),
            ("1e300", MAX_TOKEN_LIFETIME),
        ] {
            let body = format!(r#"{{"token":"a","expires_in":{expires_in}}}"#);
            let (_, d) = parse_token_response(body.as_bytes(), now()).unwrap();
            assert_eq!(d, lifetime, "{expires_in}");
        }
        assert!(parse_token_response(br#"{"expires_in":1}"#, now()).is_err());
        assert!(parse_token_response(b"<html>", now()).is_err());
        // Whatever the server says, a token is kept a day at most.
        let huge = br#"{"token":"a","expires_in":18446744073709551615}"#;
        let (_, d) = parse_token_response(huge, now()).unwrap();
        assert_eq!(d, MAX_TOKEN_LIFETIME);
    }

    /// A lifetime no clock can add up to (it used to panic) is kept a day.
    #[tokio::test]
    async fn an_endless_lifetime_is_cached_a_day() {
        let cache = TokenCache::default();
        let k = key(&["repository:a:pull"]);
        let fetch = || async { Ok((Secret::new(String::from("t")), Duration::MAX)) };
        assert_eq!(cache.get(&k, None, fetch).await.unwrap().expose(), "t");
        let again = || async { panic!("fetched again") };
        assert_eq!(cache.get(&k, None, again).await.unwrap().expose(), "t");
    }

    #[test]
    fn issued_at_counts_when_plausible() {
        let issued = |s: &str| {
            parse_token_response(
                format!(r#"{{"token":"a","expires_in":300,"issued_at":"{s}"}}"#).as_bytes(),
                now(),
            )
            .unwrap()
            .1
        };
        // 2023-11-14T22:13:20Z is NOW; 100 s earlier leaves 200 s.
        assert_eq!(issued("2023-11-14T22:11:40Z"), Duration::from_secs(200));
        assert_eq!(
            issued("2023-11-14T22:11:40.123456789Z"),
            Duration::new(200, 123_456_789)
        );
        // In the future, long dead, or unreadable: the clocks disagree; use expires_in.
        assert_eq!(issued("2023-11-14T23:00:00Z"), Duration::from_secs(300));
        assert_eq!(issued("2020-01-01T00:00:00Z"), Duration::from_secs(300));
        assert_eq!(issued("yesterday"), Duration::from_secs(300));
    }

    #[test]
    fn refresh_margin_is_short_for_short_tokens() {
        assert_eq!(
            refresh_margin(Duration::from_secs(300)),
            TOKEN_REFRESH_MARGIN
        );
        assert_eq!(
            refresh_margin(Duration::from_secs(60)),
            Duration::from_secs(6)
        );
        assert_eq!(
            refresh_margin(Duration::from_secs(2)),
            Duration::from_millis(200)
        );
    }

    #[test]
    fn error_details_come_from_the_body() {
        assert_eq!(
            error_detail(br#"{"details":"incorrect username or password"}"#).as_deref(),
            Some("incorrect username or password")
        );
        assert_eq!(
            error_detail(br#"{"error":"invalid_grant","error_description":"expired"}"#).as_deref(),
            Some("expired")
        );
        assert!(error_detail(
            br#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#
        )
        .unwrap()
        .contains("authentication required"));
        assert_eq!(error_detail(b"  nope \n").as_deref(), Some("nope"));
        assert_eq!(error_detail(b""), None);
    }

    fn key(scopes: &[&str]) -> TokenKey {
        TokenKey {
            origin: "http://r".into(),
            repository: "a".into(),
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[tokio::test]
    async fn cache_reuses_refreshes_refused_and_expired_tokens() {
        let cache = TokenCache::default();
        let fetches = AtomicUsize::new(0);
        let fetch = |life: u64| {
            let n = fetches.fetch_add(1, Ordering::SeqCst);
            async move { Ok((Secret::new(format!("t{n}")), Duration::from_secs(life))) }
        };
        let k = key(&["repository:a:pull"]);
        let t0 = cache.get(&k, None, || fetch(300)).await.unwrap();
        let again = cache.get(&k, None, || fetch(300)).await.unwrap();
        assert_eq!((t0.expose(), again.expose()), ("t0", "t0"));
        // Another scope set is another token.
        let other = cache
            .get(&key(&["repository:b:pull"]), None, || fetch(300))
            .await
            .unwrap();
        assert_eq!(other.expose(), "t1");
        // The registry refused t0: a new one, once; a second caller that saw t0 refused too
        // gets the new one without another fetch.
        let t2 = cache.get(&k, Some(&t0), || fetch(300)).await.unwrap();
        assert_eq!(t2.expose(), "t2");
        let same = cache.get(&k, Some(&t0), || fetch(300)).await.unwrap();
        assert_eq!(same.expose(), "t2");
        // A token valid for 0 s is expired at once.
        let short = key(&["repository:c:pull"]);
        let t3 = cache.get(&short, None, || fetch(0)).await.unwrap();
        let t4 = cache.get(&short, None, || fetch(0)).await.unwrap();
        assert_eq!((t3.expose(), t4.expose()), ("t3", "t4"));
        assert_eq!(fetches.load(Ordering::SeqCst), 5);
    }

    #[tokio::test]
    async fn concurrent_callers_share_one_fetch() {
        let cache = Arc::new(TokenCache::default());
        let fetches = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let cache = Arc::clone(&cache);
            let fetches = Arc::clone(&fetches);
            tasks.push(tokio::spawn(async move {
                cache
                    .get(&key(&["repository:a:pull"]), None, || async move {
                        fetches.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        Ok((Secret::new("only"), Duration::from_secs(60)))
                    })
                    .await
                    .unwrap()
            }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap().expose(), "only");
        }
        assert_eq!(fetches.load(Ordering::SeqCst), 1);
    }
}
