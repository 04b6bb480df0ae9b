//! [`TokenServer`]: a token server for a real distribution registry run with `auth: token`,
//! following docker's token protocol
//! (<https://distribution.github.io/distribution/spec/auth/token/>) and its OAuth2 `POST`
//! form (<https://distribution.github.io/distribution/spec/auth/oauth/>).
//!
//! Tokens are JWTs signed with ES256 by a key made fresh for each server; the certificate
//! of that key goes in the JWT header as `x5c` and, as a PEM file, in the registry's
//! `rootcertbundle`, which is how distribution 2.8 decides to trust a token.
//!
//! Access rules: a known user (by password in HTTP Basic, or by refresh token in a `POST`)
//! gets every action it asks for on every repository (on those of its namespace alone, for a
//! user added with [`TokenServerBuilder::user_in`]); anonymous callers get `pull` on the
//! repositories named with [`TokenServerBuilder::anonymous_pull`] and nothing else. Wrong
//! credentials get a `401`, never an anonymous token.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use serde_json::json;
use tempfile::TempDir;

use crate::scripted::{RecordedRequest, ScriptedResponse, ScriptedServer};

/// The `service` the registry and the server agree on.
pub const TOKEN_SERVICE: &str = "ocisdk-test-registry";
/// The `iss` of every token.
pub const TOKEN_ISSUER: &str = "ocisdk-test-issuer";
/// How long a JWT is accepted by the registry, whatever `expires_in` says to clients, so
/// that client-side expiry can be tested with short `expires_in` values.
const JWT_LIFETIME_SECS: u64 = 600;

/// Makes every token id unique.
static JTI: AtomicU64 = AtomicU64::new(0);

/// Options for a [`TokenServer`].
#[derive(Debug, Clone, Default)]
pub struct TokenServerBuilder {
    users: Vec<(String, String)>,
    /// (user, namespace): the users limited to one namespace.
    namespaces: Vec<(String, String)>,
    refresh_tokens: Vec<(String, String)>,
    anonymous_pull: Vec<String>,
    expires_in: Option<u64>,
    no_oauth: bool,
}

impl TokenServerBuilder {
    /// A user with full access, known by `password`.
    pub fn user(mut self, name: &str, password: &str) -> Self {
        self.users.push((name.into(), password.into()));
        self
    }

    /// A user known by `password` with access to the repositories in `namespace`
    /// (`team-a` gives `team-a/app`, `team-a/x/y`, not `team-ab/app`) and nothing else, as
    /// a team's account on a shared registry.
    pub fn user_in(mut self, name: &str, password: &str, namespace: &str) -> Self {
        self.users.push((name.into(), password.into()));
        self.namespaces.push((name.into(), namespace.into()));
        self
    }

    /// A refresh token (docker's identity token) that stands for user `name` in an OAuth2
    /// `POST` with `grant_type=refresh_token`, and is handed to `name` when a token request
    /// asks for offline access (`offline_token=true`, or `access_type=offline` in a POST).
    pub fn refresh_token(mut self, token: &str, name: &str) -> Self {
        self.refresh_tokens.push((token.into(), name.into()));
        self
    }

    /// Lets anonymous callers pull `repository`.
    pub fn anonymous_pull(mut self, repository: &str) -> Self {
        self.anonymous_pull.push(repository.into());
        self
    }

    /// The `expires_in` of every answer (default 300 s; change later with
    /// [`TokenServer::set_expires_in`]).
    pub fn expires_in(mut self, seconds: u64) -> Self {
        self.expires_in = Some(seconds);
        self
    }

    /// Answers `POST` with 405, like token servers that only speak the `GET` protocol.
    pub fn without_oauth(mut self) -> Self {
        self.no_oauth = true;
        self
    }

    /// Starts the server on a free loopback port; panics if the key or certificate cannot
    /// be made.
    #[track_caller]
    pub fn start(self) -> TokenServer {
        let dir = tempfile::Builder::new()
            .prefix("ocisdk-token-")
            .tempdir()
            .expect("token server temp dir");
        let key = rcgen::KeyPair::generate().expect("generate an ES256 key");
        let cert = rcgen::CertificateParams::new(vec![TOKEN_ISSUER.to_string()])
            .expect("certificate parameters")
            .self_signed(&key)
            .expect("self-sign the token certificate");
        let cert_path = dir.path().join("token-root.pem");
        std::fs::write(&cert_path, cert.pem()).expect("write the token certificate");
        let signer = Signer {
            key: ring::signature::EcdsaKeyPair::from_pkcs8(
                &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                &key.serialize_der(),
                &ring::rand::SystemRandom::new(),
            )
            .expect("load the signing key"),
            x5c: STANDARD.encode(cert.der()),
        };
        let expires_in = Arc::new(AtomicU64::new(self.expires_in.unwrap_or(300)));
        let refuse_all = Arc::new(AtomicBool::new(false));
        let state = Arc::new(State {
            options: self,
            signer,
            expires_in: Arc::clone(&expires_in),
            refuse_all: Arc::clone(&refuse_all),
        });
        let server = ScriptedServer::start(move |req| state.answer(req));
        TokenServer {
            server,
            cert_path,
            expires_in,
            refuse_all,
            _dir: dir,
        }
    }
}

/// A running token server; see the module docs. Stopped on drop.
#[derive(Debug)]
pub struct TokenServer {
    server: ScriptedServer,
    cert_path: PathBuf,
    expires_in: Arc<AtomicU64>,
    refuse_all: Arc<AtomicBool>,
    _dir: TempDir,
}

impl TokenServer {
    /// Options, then [`TokenServerBuilder::start`].
    pub fn builder() -> TokenServerBuilder {
        TokenServerBuilder::default()
    }

    /// `http://127.0.0.1:PORT/token`.
    pub fn realm(&self) -> String {
        format!("{}/token", self.server.url())
    }

    /// The PEM certificate the registry must trust (`rootcertbundle`).
    pub fn cert_path(&self) -> &Path {
        &self.cert_path
    }

    /// The `auth:` section for [`crate::RegistryBuilder::extra_config`].
    pub fn registry_config(&self) -> String {
        format!(
            "auth:\n  token:\n    realm: \"{}\"\n    service: \"{TOKEN_SERVICE}\"\n    issuer: \"{TOKEN_ISSUER}\"\n    rootcertbundle: \"{}\"\n",
            self.realm(),
            self.cert_path.display()
        )
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.server.requests()
    }

    /// How many token requests were received so far.
    pub fn request_count(&self) -> usize {
        self.server.request_count()
    }

    /// Forgets the recorded requests.
    pub fn clear_requests(&self) {
        self.server.clear_requests()
    }

    /// Changes the `expires_in` of later answers.
    pub fn set_expires_in(&self, seconds: u64) {
        self.expires_in.store(seconds, Ordering::SeqCst);
    }

    /// From now on answer every request with `401`, as if the credentials were revoked.
    pub fn refuse_everything(&self, yes: bool) {
        self.refuse_all.store(yes, Ordering::SeqCst);
    }
}

struct Signer {
    key: ring::signature::EcdsaKeyPair,
    x5c: String,
}

struct State {
    options: TokenServerBuilder,
    signer: Signer,
    expires_in: Arc<AtomicU64>,
    refuse_all: Arc<AtomicBool>,
}

/// Who is asking.
enum Caller {
    Anonymous,
    User(String),
}

fn refuse(details: &str) -> ScriptedResponse {
    ScriptedResponse::json(401, &json!({ "details": details }))
}

impl State {
    fn answer(&self, req: &RecordedRequest) -> ScriptedResponse {
        if req.path() != "/token" {
            return ScriptedResponse::new(404);
        }
        if self.refuse_all.load(Ordering::SeqCst) {
            return refuse("access revoked");
        }
        let (caller, scopes, oauth, offline) = match req.method.as_str() {
            "GET" => {
                let query = parse_form(req.query().unwrap_or(""));
                let scopes: Vec<String> = query
                    .iter()
                    .filter(|(k, _)| k == "scope")
                    .flat_map(|(_, v)| v.split(' ').map(str::to_string).collect::<Vec<_>>())
                    .collect();
                let caller = match req.header("authorization") {
                    None => Caller::Anonymous,
                    Some(value) => match self.basic_user(value) {
                        Some(user) => Caller::User(user),
                        None => return refuse("invalid username or password"),
                    },
                };
                let offline = query
                    .iter()
                    .any(|(k, v)| k == "offline_token" && v == "true");
                (caller, scopes, false, offline)
            }
            "POST" if self.options.no_oauth => return ScriptedResponse::new(405),
            "POST" => {
                let form = parse_form(&String::from_utf8_lossy(&req.body));
                let get = |k: &str| {
                    form.iter()
                        .find(|(n, _)| n == k)
                        .map(|(_, v)| v.as_str())
                        .unwrap_or("")
                };
                let user = match get("grant_type") {
                    "refresh_token" => self
                        .options
                        .refresh_tokens
                        .iter()
                        .find(|(t, _)| t == get("refresh_token"))
                        .map(|(_, u)| u.clone()),
                    "password" => self
                        .options
                        .users
                        .iter()
                        .find(|(u, p)| u == get("username") && p == get("password"))
                        .map(|(u, _)| u.clone()),
                    _ => {
                        return ScriptedResponse::json(
                            400,
                            &json!({"error": "unsupported_grant_type"}),
                        )
                    }
                };
                let Some(user) = user else {
                    return ScriptedResponse::json(
                        401,
                        &json!({"error": "invalid_grant", "error_description": "invalid refresh token or password"}),
                    );
                };
                let scopes = get("scope")
                    .split(' ')
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect();
                let offline = get("access_type") == "offline";
                (Caller::User(user), scopes, true, offline)
            }
            _ => return ScriptedResponse::new(405),
        };
        let access: Vec<_> = scopes
            .iter()
            .filter_map(|scope| self.grant(&caller, scope))
            .collect();
        let token = self.sign(&caller, access);
        let expires_in = self.expires_in.load(Ordering::SeqCst);
        let issued_at = rfc3339(SystemTime::now());
        let mut body = if oauth {
            json!({ "access_token": token, "expires_in": expires_in, "issued_at": issued_at, "scope": scopes.join(" ") })
        } else {
            json!({ "token": token, "expires_in": expires_in, "issued_at": issued_at })
        };
        // Asked for offline access (docker's login does), a user with a refresh token gets
        // it back, to keep instead of the password.
        if let (true, Caller::User(user)) = (offline, &caller) {
            if let Some((refresh, _)) = self.options.refresh_tokens.iter().find(|(_, u)| u == user)
            {
                body["refresh_token"] = json!(refresh);
            }
        }
        ScriptedResponse::json(200, &body)
    }

    /// The user named by an `Authorization: Basic` value, if the password (or a refresh
    /// token used as the password) is right.
    fn basic_user(&self, value: &str) -> Option<String> {
        let encoded = value.strip_prefix("Basic ")?;
        let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
        let (user, password) = decoded.split_once(':')?;
        let by_password = self
            .options
            .users
            .iter()
            .any(|(u, p)| u == user && p == password);
        let by_token = self
            .options
            .refresh_tokens
            .iter()
            .any(|(t, u)| u == user && t == password);
        (by_password || by_token).then(|| user.to_string())
    }

    /// The access entry granted for one `type:name:actions` scope, if any.
    fn grant(&self, caller: &Caller, scope: &str) -> Option<serde_json::Value> {
        let (kind, rest) = scope.split_once(':')?;
        let (name, actions) = rest.rsplit_once(':')?;
        let wanted: Vec<&str> = actions.split(',').filter(|a| !a.is_empty()).collect();
        let granted: Vec<&str> = match caller {
            Caller::User(user) if !self.may_access(user, kind, name) => Vec::new(),
            Caller::User(_) => wanted,
            Caller::Anonymous
                if kind == "repository"
                    && self.options.anonymous_pull.iter().any(|r| r == name) =>
            {
                wanted.into_iter().filter(|a| *a == "pull").collect()
            }
            Caller::Anonymous => Vec::new(),
        };
        (!granted.is_empty()).then(|| json!({ "type": kind, "name": name, "actions": granted }))
    }

    /// Whether `user` may have any access to resource `kind:name`: a user limited to a
    /// namespace only to the repositories in it.
    fn may_access(&self, user: &str, kind: &str, name: &str) -> bool {
        self.options
            .namespaces
            .iter()
            .filter(|(u, _)| u == user)
            .all(|(_, namespace)| {
                kind == "repository"
                    && name
                        .strip_prefix(namespace.as_str())
                        .is_some_and(|rest| rest.starts_with('/'))
            })
    }

    fn sign(&self, caller: &Caller, access: Vec<serde_json::Value>) -> String {
        let now = now_secs();
        let header = json!({ "typ": "JWT", "alg": "ES256", "x5c": [self.signer.x5c] });
        let claims = json!({
            "iss": TOKEN_ISSUER,
            "sub": match caller { Caller::User(u) => u.as_str(), Caller::Anonymous => "" },
            "aud": TOKEN_SERVICE,
            "exp": now + JWT_LIFETIME_SECS,
            "nbf": now.saturating_sub(10),
            "iat": now,
            "jti": format!("{now}-{}", JTI.fetch_add(1, Ordering::Relaxed)),
            "access": access,
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = self
            .signer
            .key
            .sign(&ring::rand::SystemRandom::new(), signing_input.as_bytes())
            .expect("sign a token");
        format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature.as_ref())
        )
    }
}

fn parse_form(text: &str) -> Vec<(String, String)> {
    url::form_urlencoded::parse(text.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ` (civil-from-days, Howard Hinnant's algorithm), with
/// nanoseconds as docker's token servers send them, so that a client subtracting the
/// token's age sees its true age, not up to a second more.
fn rfc3339(time: SystemTime) -> String {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let (secs, nanos) = (since.as_secs(), since.subsec_nanos());
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_rfc3339() {
        let at = |secs, nanos| rfc3339(UNIX_EPOCH + std::time::Duration::new(secs, nanos));
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(at(1_700_000_000, 5), "2023-11-14T22:13:20.000000005Z");
        assert_eq!(at(951_782_400, 0), "2000-02-29T00:00:00.000000000Z");
    }

    #[test]
    fn grants_follow_the_rules() {
        let server = TokenServer::builder()
            .user("alice", "pw")
            .anonymous_pull("public/tool")
            .start();
        let get = |query: &str, auth: Option<&str>| {
            let url = format!("{}?{query}", server.realm());
            let headers: Vec<(&str, &str)> =
                auth.map(|a| ("Authorization", a)).into_iter().collect();
            crate::http::request("GET", &url, &headers, &[]).unwrap()
        };
        let claims = |resp: &crate::http::HttpResponse| {
            let body: serde_json::Value = serde_json::from_slice(&resp.body).unwrap();
            let token = body["token"].as_str().unwrap().to_string();
            let part = token.split('.').nth(1).unwrap().to_string();
            serde_json::from_slice::<serde_json::Value>(&URL_SAFE_NO_PAD.decode(part).unwrap())
                .unwrap()
        };
        let anon = get("service=s&scope=repository%3Apublic%2Ftool%3Apull%2Cpush&scope=repository%3Aprivate%3Apull", None);
        assert_eq!(anon.status, 200);
        assert_eq!(
            claims(&anon)["access"],
            json!([{"type": "repository", "name": "public/tool", "actions": ["pull"]}])
        );
        let basic = format!("Basic {}", STANDARD.encode("alice:pw"));
        let user = get("scope=repository%3Aprivate%3Apull%2Cpush", Some(&basic));
        assert_eq!(
            claims(&user)["access"],
            json!([{"type": "repository", "name": "private", "actions": ["pull", "push"]}])
        );
        let wrong = format!("Basic {}", STANDARD.encode("alice:nope"));
        assert_eq!(
            get("scope=repository%3Aprivate%3Apull", Some(&wrong)).status,
            401
        );
        assert_eq!(server.request_count(), 3);

        let teams = TokenServer::builder()
            .user_in("bob", "pb", "team-b")
            .start();
        let url = format!(
            "{}?scope=repository%3Ateam-b%2Fapp%3Apull&scope=repository%3Ateam-bb%2Fapp%3Apull&scope=repository%3Ateam-a%2Fapp%3Apull",
            teams.realm()
        );
        let basic = format!("Basic {}", STANDARD.encode("bob:pb"));
        let resp =
            crate::http::request("GET", &url, &[("Authorization", basic.as_str())], &[]).unwrap();
        assert_eq!(
            claims(&resp)["access"],
            json!([{"type": "repository", "name": "team-b/app", "actions": ["pull"]}])
        );
    }
}
