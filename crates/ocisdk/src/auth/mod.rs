//! Registry authentication: credentials, `WWW-Authenticate` challenges, bearer tokens.
//!
//! The [`Client`](crate::Client) wraps every request in this layer (tags, manifests, blobs,
//! uploads, and each retry of them), so that all of them get the same treatment:
//!
//! 1. What a registry asked for before (Basic, or a Bearer token from its realm) is attached
//!    up front, from the token cache, so a pull costs no extra `401` per request. Credentials
//!    are looked up, and tokens kept, per repository: one namespace's never serve another's.
//! 2. A `401` (or a `403` whose challenge says `insufficient_scope`) is answered: the
//!    challenge of that very response is read, a credential or a token for the scopes it
//!    names is got, and the request is sent again. A refused token is replaced once; a
//!    second refusal (or refused Basic credentials) is final and reaches the caller as the
//!    registry's own `401`/`403`.
//! 3. Credentials come only from the [`CredentialSource`] the caller configured; the library
//!    reads no environment variable and no file on its own.
//!
//! Security rules: a realm must be `https` unless it is on a loopback host or plain HTTP was
//! enabled; credentials go over plain HTTP only to loopback hosts or when plain HTTP was
//! enabled; `Authorization` never follows a redirect off the origin it was meant for; secrets
//! are wrapped in [`Secret`] and never reach logs or errors.

mod challenge;
mod credentials;
mod docker_config;
mod helper;
mod scope;
mod token;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex};

use reqwest::header::{HeaderValue, WWW_AUTHENTICATE};
use reqwest::{Response, StatusCode};
use url::Url;

pub use challenge::{parse_challenges, Challenge, ChallengeError, CHALLENGE_HEADER_LIMIT};
pub use credentials::{
    config_key, registry_key, Credential, CredentialChain, CredentialError, CredentialSource,
    Secret, StaticCredentials, DOCKER_HUB_KEY,
};
pub use docker_config::{erase_credential, store_credential, DockerConfig, StoredIn};
pub use helper::HELPER_TIMEOUT;
pub use token::{
    DEFAULT_TOKEN_LIFETIME, MAX_TOKEN_LIFETIME, TOKEN_REFRESH_MARGIN, TOKEN_RESPONSE_LIMIT,
};

use crate::error::{Error, Result};
use crate::registry::http::{loggable, send_over_http};
use crate::registry::ApiRequest;
use crate::transport::is_loopback;
use scope::ScopeSet;
use token::{basic_header, fetch_token, TokenCache, TokenKey, TokenRequest};

/// How the client authenticates, as configured on the builder.
#[derive(Clone, Default)]
pub(crate) struct AuthSettings {
    pub(crate) source: Option<Arc<dyn CredentialSource>>,
    pub(crate) password_grant: bool,
    /// Ask token servers for a refresh token too (offline access), and keep the one
    /// returned: `ocisdk login` stores it instead of the password.
    pub(crate) offline_token: bool,
}

impl fmt::Debug for AuthSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthSettings")
            .field("credentials", &self.source.as_ref().map(|_| "<source>"))
            .field("password_grant", &self.password_grant)
            .field("offline_token", &self.offline_token)
            .finish()
    }
}

/// What an origin asked for the last time it refused a request.
#[derive(Debug, Clone)]
enum OriginAuth {
    Basic,
    Bearer { realm: Url, service: Option<String> },
}

/// What went with a request.
enum Sent {
    Nothing,
    Basic,
    Bearer(Secret),
}

/// The authentication layer of one client: its credential source, what each origin wants,
/// and the token cache. Shared by every clone of the client.
pub(crate) struct Authenticator {
    settings: AuthSettings,
    /// Plain HTTP was enabled for every registry.
    plain_http: bool,
    /// Hosts (`host[:port]`) plain HTTP was enabled for, one by one.
    plain_http_hosts: HashSet<String>,
    /// Credentials per (registry key, repository), each looked up once (a helper is a
    /// program run). Per repository, not per host: a containers `auth.json` may hold one
    /// credential per namespace (`quay.io/team-a`, `quay.io/team-b`).
    credentials: Mutex<CredentialCells>,
    origins: Mutex<HashMap<String, OriginAuth>>,
    /// The scopes an origin's challenge asked for, per (origin, scopes we computed), for
    /// registries that want more than we would guess: later requests ask for those up front.
    scope_hints: Mutex<HashMap<(String, ScopeSet), ScopeSet>>,
    tokens: TokenCache,
    /// The last refresh token a token server handed out (with `offline_token` on).
    refresh_token: Mutex<Option<Secret>>,
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authenticator")
            .field("settings", &self.settings)
            .field("plain_http", &self.plain_http)
            .field("plain_http_hosts", &self.plain_http_hosts)
            .finish_non_exhaustive()
    }
}

/// The credential of each (registry key, repository), looked up at most once.
type CredentialCells = HashMap<(String, String), Arc<tokio::sync::OnceCell<Option<Credential>>>>;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Authenticator {
    /// `plain_http` enables plain HTTP for every registry, `plain_http_hosts` for those
    /// (`host[:port]`) only: credentials may go there in the clear, as the user chose.
    pub(crate) fn new(
        settings: AuthSettings,
        plain_http: bool,
        plain_http_hosts: HashSet<String>,
    ) -> Authenticator {
        Authenticator {
            settings,
            plain_http,
            plain_http_hosts,
            credentials: Mutex::default(),
            origins: Mutex::default(),
            refresh_token: Mutex::default(),
            scope_hints: Mutex::default(),
            tokens: TokenCache::default(),
        }
    }

    /// Sends `req` with authentication applied (see the module docs for the steps).
    pub(crate) async fn send(
        &self,
        http: &crate::transport::Http,
        req: &ApiRequest,
    ) -> Result<Response> {
        let origin = req.url.origin().ascii_serialization();
        let scopes = ScopeSet::for_request(&req.method, &req.at.repository, &req.url);

        // 1. Attach what this origin asked for before.
        let (mut sent, header) = self.preemptive(http, req, &origin, &scopes).await?;
        let mut response = send_over_http(http, req, header.as_ref()).await?;
        let mut refreshed = false;
        loop {
            // 2. Anything but a refusal with a challenge is the answer. So is a refusal from
            // another origin (a redirect's target): the credentials and tokens here are for
            // this registry, and that origin's challenge must not draw them to its realm.
            if response.url().origin() != req.url.origin() {
                return Ok(response);
            }
            let Some(challenges) = refusal(&response, req)? else {
                return Ok(response);
            };
            // 3. A refused token is replaced once; refused Basic credentials stay refused.
            match sent {
                Sent::Bearer(_) if refreshed => return Ok(response),
                Sent::Bearer(_) => refreshed = true,
                Sent::Basic => return Ok(response),
                Sent::Nothing => {}
            }
            // 4. Answer the challenge of this very response, and try again.
            let Some((next, header)) = self
                .answer(http, req, &origin, &scopes, &challenges, &sent)
                .await?
            else {
                return Ok(response);
            };
            drop(response);
            response = send_over_http(http, req, Some(&header)).await?;
            sent = next;
        }
    }

    /// What to send in answer to `challenges` (Bearer if offered, else Basic), after `sent`
    /// was refused; `None` when there is nothing better to send.
    async fn answer(
        &self,
        http: &crate::transport::Http,
        req: &ApiRequest,
        origin: &str,
        scopes: &ScopeSet,
        challenges: &[Challenge],
        sent: &Sent,
    ) -> Result<Option<(Sent, HeaderValue)>> {
        if let Some(bearer) = challenges.iter().find(|c| c.is("bearer")) {
            let realm = self.check_realm(bearer, req)?;
            let service = bearer.param("service").map(str::to_string);
            let mut wanted = scopes.clone();
            for s in bearer.params_named("scope") {
                wanted.add_parsed(s);
            }
            if &wanted != scopes {
                lock(&self.scope_hints)
                    .insert((origin.to_string(), scopes.clone()), wanted.clone());
            }
            lock(&self.origins).insert(
                origin.to_string(),
                OriginAuth::Bearer {
                    realm: realm.clone(),
                    service: service.clone(),
                },
            );
            let refused = match sent {
                Sent::Bearer(token) => Some(token),
                _ => None,
            };
            let token = self
                .token(
                    http,
                    req,
                    origin,
                    &realm,
                    service.as_deref(),
                    &wanted,
                    refused,
                )
                .await?;
            let header = bearer_header(&token, req)?;
            return Ok(Some((Sent::Bearer(token), header)));
        }
        if !challenges.iter().any(|c| c.is("basic")) {
            // Only schemes this client does not speak (Negotiate, NTLM…).
            return Ok(None);
        }
        lock(&self.origins).insert(origin.to_string(), OriginAuth::Basic);
        let Some(credential) = self.credential(req).await? else {
            return Ok(None);
        };
        self.refuse_plain_http(req, "credentials")?;
        Ok(Some((Sent::Basic, basic_header(&credential)?)))
    }

    /// The authorization to attach before any challenge, from what the origin asked before.
    async fn preemptive(
        &self,
        http: &crate::transport::Http,
        req: &ApiRequest,
        origin: &str,
        scopes: &ScopeSet,
    ) -> Result<(Sent, Option<HeaderValue>)> {
        let known = lock(&self.origins).get(origin).cloned();
        match known {
            None => Ok((Sent::Nothing, None)),
            Some(OriginAuth::Basic) => match self.credential(req).await? {
                Some(c) if self.may_send_credentials(&req.url) => {
                    Ok((Sent::Basic, Some(basic_header(&c)?)))
                }
                _ => Ok((Sent::Nothing, None)),
            },
            Some(OriginAuth::Bearer { realm, service }) => {
                let hint = lock(&self.scope_hints)
                    .get(&(origin.to_string(), scopes.clone()))
                    .cloned();
                let scopes = hint.as_ref().unwrap_or(scopes);
                let token = self
                    .token(http, req, origin, &realm, service.as_deref(), scopes, None)
                    .await?;
                let header = bearer_header(&token, req)?;
                Ok((Sent::Bearer(token), Some(header)))
            }
        }
    }

    /// A token for `scopes` on `origin`, from the cache or the realm.
    #[allow(clippy::too_many_arguments)]
    async fn token(
        &self,
        http: &crate::transport::Http,
        req: &ApiRequest,
        origin: &str,
        realm: &Url,
        service: Option<&str>,
        scopes: &ScopeSet,
        refused: Option<&Secret>,
    ) -> Result<Secret> {
        let key = TokenKey {
            origin: origin.to_string(),
            repository: req.at.repository.to_string(),
            scopes: scopes.to_strings(),
        };
        let credential = self.credential(req).await?;
        if let Some(Credential::RegistryToken { token }) = &credential {
            // docker's `registrytoken`: the registry's own token, no token server involved.
            // It is a credential, so the plain-HTTP rule for credentials applies.
            self.refuse_plain_http(req, "a registry token")?;
            return Ok(token.clone());
        }
        self.tokens
            .get(&key, refused, || async {
                tracing::debug!(
                    realm = %loggable(realm, true), scopes = ?key.scopes,
                    with_credentials = credential.is_some(), "getting a token"
                );
                fetch_token(
                    http,
                    &TokenRequest {
                        realm,
                        service,
                        scopes: &key.scopes,
                        credential: credential.as_ref(),
                        password_grant: self.settings.password_grant,
                        offline: self.settings.offline_token.then_some(&self.refresh_token),
                        operation: req.operation,
                        at: &req.at,
                    },
                )
                .await
            })
            .await
    }

    /// The last refresh token a token server handed out; only asked for with
    /// `offline_token` on.
    pub(crate) fn refresh_token(&self) -> Option<Secret> {
        lock(&self.refresh_token).clone()
    }

    /// The credential for the request's repository on the host the request goes to
    /// (`host[:port]` of its URL, so that credentials are always chosen by where they will
    /// be sent), looked up once per host and repository, off the async threads (a
    /// credential helper is a program).
    async fn credential(&self, req: &ApiRequest) -> Result<Option<Credential>> {
        let Some(source) = self.settings.source.clone() else {
            return Ok(None);
        };
        let registry = host_and_port(&req.url);
        let repo = req.at.repository.to_string();
        let cell = Arc::clone(
            lock(&self.credentials)
                .entry((registry_key(&registry), repo.clone()))
                .or_default(),
        );
        let found = cell
            .get_or_try_init(|| async {
                let name = registry.clone();
                tokio::task::spawn_blocking(move || source.credential_for_repository(&name, &repo))
                    .await
                    .map_err(|e| Error::Auth {
                        operation: req.operation,
                        at: req.at.clone(),
                        message: format!("looking up credentials failed: {e}"),
                    })?
                    .map_err(|e| Error::Auth {
                        operation: req.operation,
                        at: req.at.clone(),
                        message: format!("cannot read the credentials for {registry}: {e}"),
                    })
            })
            .await?;
        Ok(found.clone())
    }

    /// The realm of a Bearer challenge, if it is safe to use: an absolute http(s) URL
    /// without userinfo, and https unless loopback or plain HTTP is enabled.
    fn check_realm(&self, challenge: &Challenge, req: &ApiRequest) -> Result<Url> {
        let refuse = |message: String| Error::Auth {
            operation: req.operation,
            at: req.at.clone(),
            message,
        };
        let raw = challenge
            .param("realm")
            .filter(|r| !r.is_empty())
            .ok_or_else(|| refuse("the registry's Bearer challenge has no realm".into()))?;
        let realm = req.url.join(raw).map_err(|e| {
            refuse(format!(
                "the registry's token realm {raw:?} is not a URL: {e}"
            ))
        })?;
        if !realm.username().is_empty() || realm.password().is_some() {
            return Err(refuse(
                "refusing a token realm that carries a username or password".into(),
            ));
        }
        match realm.scheme() {
            "https" => Ok(realm),
            "http" if self.may_send_credentials(&realm) => Ok(realm),
            "http" => Err(refuse(format!(
                "refusing the plain-HTTP token realm {} (realms must be https unless on this machine or plain HTTP is enabled)",
                loggable(&realm, true)
            ))),
            other => Err(refuse(format!(
                "refusing a token realm with scheme {other:?}"
            ))),
        }
    }

    /// Whether credentials may go to `url`: over https, or to a loopback host, or to a host
    /// plain HTTP was enabled for (or anywhere, when it was enabled for every registry).
    fn may_send_credentials(&self, url: &Url) -> bool {
        url.scheme() == "https"
            || self.plain_http
            || url.host_str().is_some_and(is_loopback)
            || self.plain_http_hosts.contains(&host_and_port(url))
    }

    /// The error for sending `what` (a credential) where [`Self::may_send_credentials`]
    /// says no.
    fn refuse_plain_http(&self, req: &ApiRequest, what: &str) -> Result<()> {
        if self.may_send_credentials(&req.url) {
            return Ok(());
        }
        Err(Error::Auth {
            operation: req.operation,
            at: req.at.clone(),
            message: format!(
                "refusing to send {what} over plain HTTP to {} (enable plain HTTP explicitly to allow it)",
                loggable(&req.url, true)
            ),
        })
    }
}

/// `host[:port]` of a URL, the way registries are named (`127.0.0.1:5000`, `ghcr.io`).
fn host_and_port(url: &Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_string(),
    }
}

/// The challenges of a refusal worth answering: a `401`, or a `403` whose Bearer challenge
/// says `insufficient_scope`. `None` for anything else (including a 401 without challenge,
/// which then reaches the caller as is).
fn refusal(response: &Response, req: &ApiRequest) -> Result<Option<Vec<Challenge>>> {
    let status = response.status();
    if status != StatusCode::UNAUTHORIZED && status != StatusCode::FORBIDDEN {
        return Ok(None);
    }
    let mut challenges = Vec::new();
    let mut unusable = None;
    for value in response.headers().get_all(WWW_AUTHENTICATE) {
        let parsed = value
            .to_str()
            .map_err(|_| ChallengeError {
                position: 0,
                reason: "header is not visible ASCII",
            })
            .and_then(parse_challenges);
        match parsed {
            Ok(mut c) => challenges.append(&mut c),
            // One header a parser of ours cannot read (a scheme of its own, non-ASCII) does
            // not spoil another that offers Bearer or Basic.
            Err(e) => unusable = unusable.or(Some(e)),
        }
    }
    if let (Some(e), true) = (unusable, challenges.is_empty()) {
        if status == StatusCode::UNAUTHORIZED {
            return Err(Error::Auth {
                operation: req.operation,
                at: req.at.clone(),
                message: format!("the registry answered HTTP 401 with an unusable challenge: {e}"),
            });
        }
        return Ok(None);
    }
    if status == StatusCode::FORBIDDEN
        && !challenges
            .iter()
            .any(|c| c.is("bearer") && c.param("error") == Some("insufficient_scope"))
    {
        return Ok(None);
    }
    Ok((!challenges.is_empty()).then_some(challenges))
}

fn bearer_header(token: &Secret, req: &ApiRequest) -> Result<HeaderValue> {
    let mut value =
        HeaderValue::from_str(&format!("Bearer {}", token.expose())).map_err(|_| Error::Auth {
            operation: req.operation,
            at: req.at.clone(),
            message: "the token server sent a token that cannot go in a header".into(),
        })?;
    value.set_sensitive(true);
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Location;
    use reqwest::Method;

    fn authenticator(plain_http: bool) -> Authenticator {
        Authenticator::new(AuthSettings::default(), plain_http, HashSet::new())
    }

    fn request(url: &str) -> ApiRequest {
        ApiRequest::new(
            Method::GET,
            Url::parse(url).unwrap(),
            "fetching manifest",
            Location {
                registry: "r.example".into(),
                ..Location::default()
            },
        )
    }

    fn realm_of(a: &Authenticator, realm: &str, registry_url: &str) -> Result<Url> {
        let c = parse_challenges(&format!("Bearer realm=\"{realm}\"")).unwrap();
        a.check_realm(&c[0], &request(registry_url))
    }

    #[test]
    fn realms_must_be_https_unless_loopback_or_plain_http() {
        let a = authenticator(false);
        assert!(realm_of(&a, "https://auth.example/token", "https://r.example/v2/").is_ok());
        assert!(realm_of(&a, "http://127.0.0.1:9/token", "http://127.0.0.1:5000/v2/").is_ok());
        assert!(realm_of(&a, "http://localhost/token", "https://r.example/v2/").is_ok());
        let err = realm_of(&a, "http://auth.example/token", "https://r.example/v2/").unwrap_err();
        assert!(err.to_string().contains("plain-HTTP token realm"), "{err}");
        assert!(realm_of(
            &authenticator(true),
            "http://auth.example/token",
            "http://r.example/v2/"
        )
        .is_ok());
        assert!(realm_of(&a, "ftp://auth.example/token", "https://r.example/v2/").is_err());
        let err = realm_of(&a, "https://u:pw@auth.example/t", "https://r.example/v2/").unwrap_err();
        assert!(!err.to_string().contains("pw"), "{err}");
        // A relative realm is on the registry itself.
        assert_eq!(
            realm_of(&a, "/token", "https://r.example/v2/")
                .unwrap()
                .as_str(),
            "https://r.example/token"
        );
    }

    #[test]
    fn credentials_stay_off_plain_http_to_other_machines() {
        let a = authenticator(false);
        let ok = |u: &str| a.may_send_credentials(&Url::parse(u).unwrap());
        assert!(ok("https://r.example/v2/"));
        assert!(ok("http://127.0.0.1:5000/v2/"));
        assert!(ok("http://[::1]:5000/v2/"));
        assert!(ok("http://localhost/v2/"));
        assert!(!ok("http://r.example/v2/"));
        assert!(!ok("http://10.0.0.1:5000/v2/"));
        assert!(authenticator(true).may_send_credentials(&Url::parse("http://r.example/").unwrap()));
        // Plain HTTP enabled for one host: that host (and port) only.
        let hosts = HashSet::from(["10.0.0.1:5000".to_string()]);
        let one = Authenticator::new(AuthSettings::default(), false, hosts);
        let ok = |u: &str| one.may_send_credentials(&Url::parse(u).unwrap());
        assert!(ok("http://10.0.0.1:5000/v2/"));
        assert!(!ok("http://10.0.0.1:5001/v2/"));
        assert!(!ok("http://r.example/v2/"));
    }

    #[test]
    fn settings_debug_hides_the_source() {
        let s = AuthSettings {
            source: Some(Arc::new(
                StaticCredentials::new().for_any_registry(Credential::basic("u", "hunter2")),
            )),
            password_grant: false,
            offline_token: false,
        };
        assert!(!format!("{s:?}").contains("hunter2"));
    }
}
