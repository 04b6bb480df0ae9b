//! Authentication, library level: a real CNCF distribution registry with `auth: htpasswd`
//! and with `auth: token` (behind the testkit's JWT-signing [`TokenServer`]), and
//! `ScriptedServer`s for what a real registry will not do (redirects to other origins,
//! `403 insufficient_scope`, broken challenges, token servers that echo secrets).

use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ocisdk::auth::{parse_challenges, CredentialError, DockerConfig};
use ocisdk::{
    download_blob, push_file, Client, Credential, CredentialSource, Digest, ErrorKind, NoProgress,
    PushRequest, Pushed, Reference, Repository, Secret, StaticCredentials,
};
use ocisdk_testkit::{
    digest_of, forward, media_types, pseudo_random_bytes, ImageBuilder, OciLayout, RecordedRequest,
    Registry, RegistryBuilder, ScriptedResponse, ScriptedServer, TokenServer,
};

const USER: &str = "alice";
const PASSWORD: &str = "s3cret-Pa55word";
const PUBLIC: &str = "public/tool";
const PRIVATE: &str = "private/tool";

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

fn anonymous() -> Client {
    Client::builder().build().expect("client")
}

fn with_credential(credential: Credential) -> Client {
    Client::builder()
        .credentials(StaticCredentials::new().for_any_registry(credential))
        .build()
        .expect("client")
}

fn alice() -> Client {
    with_credential(Credential::basic(USER, PASSWORD))
}

#[track_caller]
fn reference(text: &str) -> Reference {
    text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
}

#[track_caller]
fn repository(text: &str) -> Repository {
    text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
}

/// Pushes `bytes` as a one-layer image to `target` with `client`.
async fn push_bytes(client: &Client, target: &str, bytes: &[u8]) -> Pushed {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("layer.bin");
    std::fs::write(&file, bytes).unwrap();
    let request = PushRequest {
        file,
        ..PushRequest::default()
    };
    push_file(client, &reference(target), &request, &ocisdk::NoProgress)
        .await
        .unwrap_or_else(|e| panic!("push {target}: {e}"))
}

async fn fetch_blob(
    client: &Client,
    repo: &str,
    digest: &Digest,
    dir: &Path,
) -> ocisdk::Result<()> {
    let dest = dir.join(digest.hex());
    download_blob(client, &repository(repo), digest, None, &dest, &NoProgress)
        .await
        .map(drop)
}

/// A token-auth registry with `alice` (full access) and anonymous pull on [`PUBLIC`], with
/// one image pushed to each of [`PUBLIC`] and [`PRIVATE`].
struct TokenSetup {
    tokens: TokenServer,
    registry: Registry,
    public: Pushed,
    private: Pushed,
}

async fn token_setup(tokens: TokenServer) -> TokenSetup {
    let registry = RegistryBuilder::new()
        .extra_config(&tokens.registry_config())
        .start();
    let host = registry.host();
    let client = alice();
    let public = push_bytes(&client, &format!("{host}/{PUBLIC}:1"), b"public layer").await;
    let private = push_bytes(&client, &format!("{host}/{PRIVATE}:1"), b"private layer").await;
    tokens.clear_requests();
    TokenSetup {
        tokens,
        registry,
        public,
        private,
    }
}

fn token_server() -> TokenServer {
    TokenServer::builder()
        .user(USER, PASSWORD)
        .anonymous_pull(PUBLIC)
        .refresh_token("rt-0123456789", USER)
        .start()
}

fn assert_no_secret(text: &str) {
    for secret in [PASSWORD, "rt-0123456789", "hunter2-echoed"] {
        assert!(
            !text.contains(secret),
            "secret {secret:?} leaked into: {text}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Real registry, auth: token
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_registry_lets_anonymous_pull_only_the_public_repository() {
    let s = token_setup(token_server()).await;
    let host = s.registry.host();
    let client = anonymous();
    let dir = tempfile::tempdir().unwrap();

    let tags = client
        .tags(&repository(&format!("{host}/{PUBLIC}")))
        .await
        .unwrap();
    assert_eq!(tags, ["1"]);
    fetch_blob(
        &client,
        &format!("{host}/{PUBLIC}"),
        &s.public.layer_digest,
        dir.path(),
    )
    .await
    .expect("anonymous pull of the public repository");

    let err = client
        .tags(&repository(&format!("{host}/{PRIVATE}")))
        .await
        .expect_err("private repository without credentials");
    assert_eq!(err.kind(), ErrorKind::Auth, "{err}");

    let file = dir.path().join("new.bin");
    std::fs::write(&file, b"anonymous push").unwrap();
    let err = push_file(
        &client,
        &reference(&format!("{host}/{PUBLIC}:2")),
        &PushRequest {
            file,
            ..PushRequest::default()
        },
        &ocisdk::NoProgress,
    )
    .await
    .expect_err("anonymous push");
    assert_eq!(err.kind(), ErrorKind::Auth, "{err}");
    // Every token request was anonymous.
    assert!(s
        .tokens
        .requests()
        .iter()
        .all(|r| r.header("authorization").is_none()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_is_fetched_once_and_attached_up_front_afterwards() {
    let s = token_setup(token_server()).await;
    // A proxy in front of the registry shows what each request carried.
    let proxy = ScriptedServer::proxy_to(&s.registry.url());
    let host = proxy.host();
    let client = alice();
    let dir = tempfile::tempdir().unwrap();
    let repo = format!("{host}/{PRIVATE}");

    let manifest = client
        .manifest(&reference(&format!("{repo}:1")))
        .await
        .unwrap();
    for _ in 0..3 {
        fetch_blob(&client, &repo, &s.private.layer_digest, dir.path())
            .await
            .unwrap();
    }
    client
        .head_manifest(&reference(&format!("{repo}@{}", manifest.digest)))
        .await
        .unwrap();

    assert_eq!(s.tokens.request_count(), 1, "{:#?}", s.tokens.requests());
    let token_request = &s.tokens.requests()[0];
    assert!(token_request
        .header("authorization")
        .unwrap()
        .starts_with("Basic "));
    let query = token_request.query().unwrap();
    assert!(query.contains("service=ocisdk-test-registry"), "{query}");
    assert!(
        query.contains("scope=repository%3Aprivate%2Ftool%3Apull"),
        "{query}"
    );
    // Only the very first registry request went without the token.
    let requests = proxy.requests();
    let bare: Vec<&RecordedRequest> = requests
        .iter()
        .filter(|r| r.header("authorization").is_none())
        .collect();
    assert_eq!(bare.len(), 1, "{bare:#?}");
    assert!(requests.len() >= 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_downloads_starting_together_make_one_token_request() {
    let s = token_setup(token_server()).await;
    let host = s.registry.host();
    let writer = alice();
    let mut digests = Vec::new();
    for i in 0..8u64 {
        let (digest, _) = writer
            .push_blob_bytes(
                &repository(&format!("{host}/{PRIVATE}")),
                pseudo_random_bytes(64 << 10, i).into(),
            )
            .await
            .unwrap();
        digests.push(digest);
    }
    s.tokens.clear_requests();

    let client = alice();
    let dir = tempfile::tempdir().unwrap();
    let repo = format!("{host}/{PRIVATE}");
    let downloads = digests
        .iter()
        .map(|digest| fetch_blob(&client, &repo, digest, dir.path()));
    for result in futures_util::future::join_all(downloads).await {
        result.expect("parallel download");
    }
    assert_eq!(s.tokens.request_count(), 1, "{:#?}", s.tokens.requests());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_token_is_replaced_exactly_once() {
    let tokens = token_server();
    tokens.set_expires_in(2);
    let s = token_setup(tokens).await;
    let repo = repository(&format!("{}/{PRIVATE}", s.registry.host()));
    let client = alice();

    client.tags(&repo).await.unwrap();
    client.tags(&repo).await.unwrap();
    assert_eq!(s.tokens.request_count(), 1);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    client.tags(&repo).await.unwrap();
    client.tags(&repo).await.unwrap();
    assert_eq!(s.tokens.request_count(), 2, "{:#?}", s.tokens.requests());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cross_repository_mount_asks_for_pull_on_the_source_too() {
    let s = token_setup(token_server()).await;
    let host = s.registry.host();
    let mounted = alice()
        .mount_blob(
            &repository(&format!("{host}/team/copy")),
            &s.private.layer_digest,
            &repository(&format!("{host}/{PRIVATE}")),
        )
        .await
        .expect("mount");
    assert!(mounted, "the registry mounted the blob");
    let queries: Vec<String> = s
        .tokens
        .requests()
        .iter()
        .map(|r| r.query().unwrap_or("").to_string())
        .collect();
    assert!(
        queries.iter().any(
            |q| q.contains("scope=repository%3Ateam%2Fcopy%3Apull%2Cpush")
                && q.contains("scope=repository%3Aprivate%2Ftool%3Apull")
        ),
        "{queries:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_is_refused_without_anonymous_fallback_or_leaks() {
    let s = token_setup(token_server()).await;
    let client = with_credential(Credential::basic(USER, "wrong-password"));
    let err = client
        .tags(&repository(&format!("{}/{PUBLIC}", s.registry.host())))
        .await
        .expect_err("wrong password");
    assert_eq!(err.kind(), ErrorKind::Auth, "{err}");
    let text = format!("{err} {err:?}");
    assert!(text.contains("invalid username or password"), "{text}");
    assert!(text.contains(USER), "{text}");
    assert!(!text.contains("wrong-password"), "{text}");
    // One token request, with the credentials; never an anonymous one after it.
    let requests = s.tokens.requests();
    assert_eq!(requests.len(), 1, "{requests:#?}");
    assert!(requests[0].header("authorization").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_tokens_go_through_the_oauth2_post() {
    let s = token_setup(token_server()).await;
    let client = with_credential(Credential::IdentityToken {
        username: USER.into(),
        token: Secret::new("rt-0123456789"),
    });
    let repo = repository(&format!("{}/{PRIVATE}", s.registry.host()));
    assert_eq!(client.tags(&repo).await.unwrap(), ["1"]);
    let requests = s.tokens.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].method, "POST");
    let form = String::from_utf8_lossy(&requests[0].body).into_owned();
    assert!(form.contains("grant_type=refresh_token"), "{form}");
    assert!(form.contains("service=ocisdk-test-registry"), "{form}");
    assert!(
        form.contains("scope=repository%3Aprivate%2Ftool%3Apull"),
        "{form}"
    );
    assert!(requests[0].header("authorization").is_none());

    // The password grant, when asked for.
    s.tokens.clear_requests();
    let client = Client::builder()
        .credentials(
            StaticCredentials::new().with(&s.registry.host(), Credential::basic(USER, PASSWORD)),
        )
        .oauth2_password_grant(true)
        .build()
        .unwrap();
    client.tags(&repo).await.unwrap();
    let requests = s.tokens.requests();
    assert_eq!(requests[0].method, "POST");
    assert!(String::from_utf8_lossy(&requests[0].body).contains("grant_type=password"));
}

/// docker's `registrytoken`: the token goes to the registry as it is; the token server is
/// never asked, not even when the registry refuses the token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_token_is_sent_as_it_is_without_the_token_server() {
    let s = token_setup(token_server()).await;
    let scope = format!("repository:{PRIVATE}:pull");
    let answer: serde_json::Value = reqwest::Client::new()
        .get(s.tokens.realm())
        .query(&[
            ("service", ocisdk_testkit::token::TOKEN_SERVICE),
            ("scope", &scope),
        ])
        .basic_auth(USER, Some(PASSWORD))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = answer["token"].as_str().expect("a token").to_string();
    s.tokens.clear_requests();

    let client = with_credential(Credential::RegistryToken {
        token: Secret::new(token),
    });
    let repo = repository(&format!("{}/{PRIVATE}", s.registry.host()));
    assert_eq!(client.tags(&repo).await.unwrap(), ["1"]);
    assert_eq!(s.tokens.request_count(), 0, "the token server was asked");

    let client = with_credential(Credential::RegistryToken {
        token: Secret::new("not-a-registry-token"),
    });
    let err = client.tags(&repo).await.unwrap_err();
    assert_eq!(err.status(), Some(401), "{err}");
    assert_eq!(s.tokens.request_count(), 0, "the token server was asked");
    assert!(!err.to_string().contains("not-a-registry-token"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_server_without_oauth2_is_asked_with_get() {
    let tokens = TokenServer::builder()
        .user(USER, PASSWORD)
        .refresh_token("rt-0123456789", USER)
        .without_oauth()
        .start();
    let s = token_setup(tokens).await;
    let client = with_credential(Credential::IdentityToken {
        username: USER.into(),
        token: Secret::new("rt-0123456789"),
    });
    let repo = repository(&format!("{}/{PRIVATE}", s.registry.host()));
    assert_eq!(client.tags(&repo).await.unwrap(), ["1"]);
    let methods: Vec<String> = s
        .tokens
        .requests()
        .iter()
        .map(|r| r.method.clone())
        .collect();
    assert_eq!(methods, ["POST", "GET"]);
}

#[test]
fn authenticated_requests_can_run_on_any_thread() {
    fn assert_send<T: Send>(_: &T) {}
    let client = alice();
    let ping = client.ping("127.0.0.1:1");
    assert_send(&ping);
}

// ---------------------------------------------------------------------------------------
// Real registry, auth: htpasswd
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_registry_wants_the_password_and_gets_it_up_front() {
    let registry = RegistryBuilder::new().htpasswd(USER, PASSWORD).start();
    let proxy = ScriptedServer::proxy_to(&registry.url());
    let host = proxy.host();

    let err = anonymous()
        .tags(&repository(&format!("{host}/{PRIVATE}")))
        .await
        .expect_err("anonymous");
    assert_eq!(
        (err.kind(), err.status()),
        (ErrorKind::Auth, Some(401)),
        "{err}"
    );

    // A lookup that counts how often it is asked.
    struct Counting(AtomicUsize);
    impl CredentialSource for Counting {
        fn credential(&self, _: &str) -> Result<Option<Credential>, CredentialError> {
            self.0.fetch_add(1, Ordering::SeqCst);
            Ok(Some(Credential::basic(USER, PASSWORD)))
        }
    }
    let source = Arc::new(Counting(AtomicUsize::new(0)));
    struct Shared(Arc<Counting>);
    impl CredentialSource for Shared {
        fn credential(&self, r: &str) -> Result<Option<Credential>, CredentialError> {
            self.0.credential(r)
        }
    }
    let client = Client::builder()
        .credentials(Shared(Arc::clone(&source)))
        .build()
        .unwrap();
    proxy.clear_requests();
    let pushed = push_bytes(&client, &format!("{host}/{PRIVATE}:1"), b"basic layer").await;
    let dir = tempfile::tempdir().unwrap();
    fetch_blob(
        &client,
        &format!("{host}/{PRIVATE}"),
        &pushed.layer_digest,
        dir.path(),
    )
    .await
    .unwrap();
    assert_eq!(
        source.0.load(Ordering::SeqCst),
        1,
        "looked up once per registry and repository"
    );
    let bare = proxy
        .requests()
        .iter()
        .filter(|r| r.header("authorization").is_none())
        .count();
    assert_eq!(bare, 1, "only the first request goes without credentials");

    // Wrong password: the registry's own refusal, once retried, is final.
    proxy.clear_requests();
    let err = with_credential(Credential::basic(USER, "wrong-password"))
        .tags(&repository(&format!("{host}/{PRIVATE}")))
        .await
        .expect_err("wrong password");
    assert_eq!(
        (err.kind(), err.status()),
        (ErrorKind::Auth, Some(401)),
        "{err}"
    );
    assert!(err.to_string().contains("authentication required"), "{err}");
    assert!(!format!("{err} {err:?}").contains("wrong-password"));
    assert_eq!(
        proxy.request_count(),
        2,
        "one challenge, one refused answer"
    );
}

// ---------------------------------------------------------------------------------------
// Scripted servers
// ---------------------------------------------------------------------------------------

/// A scripted registry whose `GET /v2/r/blobs/...` wants Basic and then redirects to
/// `target`; the blob itself is `CONTENT`.
const CONTENT: &[u8] = b"blob served elsewhere";

fn basic_ok(req: &RecordedRequest) -> bool {
    req.header("authorization")
        .is_some_and(|a| a.starts_with("Basic "))
}

fn challenge_basic() -> ScriptedResponse {
    ScriptedResponse::new(401).header("WWW-Authenticate", r#"Basic realm="scripted""#)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorization_never_follows_a_redirect_to_another_origin() {
    // B: two hops on the same foreign origin, then the content.
    let cdn = ScriptedServer::start(|req| match req.path() {
        "/first" => ScriptedResponse::new(307).header("Location", "/second"),
        _ => ScriptedResponse::ok(CONTENT),
    });
    let cdn_url = cdn.url();
    // A: Basic, then a same-origin hop, then off to B.
    let registry = ScriptedServer::start(move |req| {
        if !basic_ok(req) && !req.path().starts_with("/same") {
            return challenge_basic();
        }
        match req.path() {
            p if p.contains("/blobs/") => {
                ScriptedResponse::new(307).header("Location", "/same-origin-hop")
            }
            "/same-origin-hop" => {
                ScriptedResponse::new(302).header("Location", &format!("{cdn_url}/first?sig=abc"))
            }
            _ => ScriptedResponse::new(404),
        }
    });
    let client = alice();
    let digest = Digest::parse(&digest_of(CONTENT)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    fetch_blob(
        &client,
        &format!("{}/r", registry.host()),
        &digest,
        dir.path(),
    )
    .await
    .expect("download through redirects");

    let on_registry = registry.requests();
    let hop = on_registry
        .iter()
        .find(|r| r.path() == "/same-origin-hop")
        .expect("same-origin hop");
    assert!(basic_ok(hop), "same-origin hops keep Authorization");
    let on_cdn = cdn.requests();
    assert_eq!(on_cdn.len(), 2, "{on_cdn:#?}");
    for r in &on_cdn {
        assert!(
            r.header("authorization").is_none(),
            "leaked to {}: {r:#?}",
            r.target
        );
    }
}

/// A redirect's target that answers with a challenge of its own gets nothing: the registry's
/// credentials are not sent to the realm it names, nor its token to the registry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_challenge_from_a_redirect_target_is_not_answered() {
    let foreign = ScriptedServer::start(|req| {
        if req.path().starts_with("/token") {
            return ScriptedResponse::json(200, &serde_json::json!({ "token": "foreign" }));
        }
        let host = req.header("Host").unwrap_or_default();
        ScriptedResponse::new(401).header(
            "WWW-Authenticate",
            &format!(r#"Bearer realm="http://{host}/token",service="foreign""#),
        )
    });
    let foreign_url = foreign.url();
    // Anonymous reads here: nothing was sent, so nothing was refused yet.
    let registry = ScriptedServer::start(move |_| {
        ScriptedResponse::new(307).header("Location", &format!("{foreign_url}/blob"))
    });
    let digest = Digest::parse(&digest_of(CONTENT)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let err = fetch_blob(
        &alice(),
        &format!("{}/r", registry.host()),
        &digest,
        dir.path(),
    )
    .await
    .expect_err("the foreign origin refused");
    assert_eq!(err.status(), Some(401), "{err}");

    let on_foreign = foreign.requests();
    assert_eq!(
        on_foreign.len(),
        1,
        "one request, no token fetch: {on_foreign:#?}"
    );
    assert!(
        on_foreign[0].header("authorization").is_none(),
        "{on_foreign:#?}"
    );
    let bearer_to_registry = registry.requests().iter().any(|r| {
        r.header("authorization")
            .is_some_and(|a| a.starts_with("Bearer "))
    });
    assert!(!bearer_to_registry, "{:#?}", registry.requests());
}

/// A blob redirected to storage that cannot be reached: the signed URL (its query is the
/// credential, good for anyone who holds it) is in no part of the error a program may print,
/// its `Debug` form (what `unwrap` and `main() -> Result` print) and its source chain
/// included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_redirect_url_is_in_no_part_of_the_error() {
    let (registry, place) = ocisdk_testkit::scripted::redirect_to_unreachable_signed_url();
    let client = Client::builder()
        .retry(ocisdk::registry::RetryPolicy::never())
        .build()
        .unwrap();
    let digest = Digest::parse(&digest_of(CONTENT)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let err = fetch_blob(
        &client,
        &format!("{}/r", registry.host()),
        &digest,
        dir.path(),
    )
    .await
    .expect_err("the storage is unreachable");
    assert_eq!(err.kind(), ErrorKind::Unreachable, "{err}");
    let mut shown = format!("{err} | {err:?}");
    let mut source = std::error::Error::source(&err);
    while let Some(cause) = source {
        shown.push_str(&format!(" | {cause} | {cause:?}"));
        source = cause.source();
    }
    assert!(
        shown.contains(&place),
        "the error still says where: {shown}"
    );
    assert!(
        !shown.contains("TOPSECRETSIG") && !shown.contains("AKIAEXAMPLE"),
        "{shown}"
    );
}

/// One `WWW-Authenticate` header that cannot be read beside one offering Basic: the Basic
/// challenge is answered (a bad header used to fail the request whatever the others said).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_challenge_header_beside_a_good_one_is_skipped() {
    let registry = ScriptedServer::start(|req| {
        if basic_ok(req) {
            return ScriptedResponse::json(200, &serde_json::json!({"name": "r", "tags": ["1"]}));
        }
        ScriptedResponse::new(401)
            .header("WWW-Authenticate", r#"Custom realm="unterminated"#)
            .header("WWW-Authenticate", r#"Basic realm="scripted""#)
    });
    let tags = alice()
        .tags(&repository(&format!("{}/r", registry.host())))
        .await
        .expect("Basic answered");
    assert_eq!(tags, ["1"]);
    assert_eq!(registry.request_count(), 2);
}

/// A token server that redirects its POST (307 keeps method and body) to another origin:
/// the form, which holds the refresh token, is not sent there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_post_is_not_carried_to_another_origin() {
    let elsewhere =
        ScriptedServer::start(|_| ScriptedResponse::json(200, &serde_json::json!({"token": "t"})));
    let elsewhere_url = elsewhere.url();
    let tokens = ScriptedServer::start(move |_| {
        ScriptedResponse::new(307).header("Location", &format!("{elsewhere_url}/token"))
    });
    let realm = format!("{}/token", tokens.url());
    let registry = bearer_registry(realm, |_| {
        ScriptedResponse::json(200, &serde_json::json!({"name": "r", "tags": []}))
    });
    let client = with_credential(Credential::IdentityToken {
        username: USER.into(),
        token: Secret::new("rt-0123456789"),
    });
    let err = client
        .tags(&repository(&format!("{}/r", registry.host())))
        .await
        .expect_err("the token request went elsewhere");
    assert!(err.to_string().contains("another origin"), "{err}");
    assert_eq!(tokens.request_count(), 1);
    assert_eq!(elsewhere.request_count(), 0, "{:#?}", elsewhere.requests());
}

/// A registry that wants a Bearer token from `realm` and answers with `respond(token)`.
fn bearer_registry(
    realm: String,
    respond: impl Fn(&str) -> ScriptedResponse + Send + Sync + 'static,
) -> ScriptedServer {
    ScriptedServer::start(move |req| match req.header("authorization") {
        Some(a) if a.starts_with("Bearer ") => respond(&a["Bearer ".len()..]),
        _ => ScriptedResponse::new(401).header(
            "WWW-Authenticate",
            &format!(r#"Bearer realm="{realm}",service="svc",scope="repository:r:pull""#),
        ),
    })
}

/// A token server handing out `t1`, `t2`, … in turn.
fn counting_token_server() -> ScriptedServer {
    ScriptedServer::start(|req| {
        ScriptedResponse::json(
            200,
            &serde_json::json!({ "token": format!("t{}", req.index + 1), "expires_in": 300 }),
        )
    })
}

fn insufficient_scope(realm: &str) -> ScriptedResponse {
    ScriptedResponse::json(
        403,
        &serde_json::json!({"errors": [{"code": "DENIED", "message": "needs more scope"}]}),
    )
    .header(
        "WWW-Authenticate",
        &format!(
            r#"Bearer realm="{realm}",service="svc",scope="repository:r:pull",error="insufficient_scope""#
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insufficient_scope_gets_one_refresh() {
    let tokens = counting_token_server();
    let realm = format!("{}/token", tokens.url());
    let again = realm.clone();
    let registry = bearer_registry(realm, move |token| match token {
        "t1" => insufficient_scope(&again),
        _ => ScriptedResponse::json(200, &serde_json::json!({"name": "r", "tags": ["ok"]})),
    });
    let tags = anonymous()
        .tags(&repository(&format!("{}/r", registry.host())))
        .await
        .expect("second token works");
    assert_eq!(tags, ["ok"]);
    assert_eq!(tokens.request_count(), 2);

    // Refused again after the refresh: final, with the registry's message, no third token.
    let tokens = counting_token_server();
    let realm = format!("{}/token", tokens.url());
    let again = realm.clone();
    let registry = bearer_registry(realm, move |_| insufficient_scope(&again));
    let err = anonymous()
        .tags(&repository(&format!("{}/r", registry.host())))
        .await
        .expect_err("always refused");
    assert_eq!(
        (err.kind(), err.status()),
        (ErrorKind::Auth, Some(403)),
        "{err}"
    );
    assert!(err.to_string().contains("needs more scope"), "{err}");
    assert_eq!(tokens.request_count(), 2);

    // A plain 403 (no insufficient_scope) is not worth a new token.
    let tokens = counting_token_server();
    let registry = bearer_registry(format!("{}/token", tokens.url()), |_| {
        ScriptedResponse::new(403).header("WWW-Authenticate", r#"Bearer realm="x",error="denied""#)
    });
    let err = anonymous()
        .tags(&repository(&format!("{}/r", registry.host())))
        .await
        .expect_err("forbidden");
    assert_eq!(err.status(), Some(403));
    assert_eq!(tokens.request_count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scopes_a_registry_asks_for_beyond_ours_are_asked_up_front_later() {
    // The registry wants an extra action to pull.
    let tokens = counting_token_server();
    let realm = format!("{}/token", tokens.url());
    let registry = ScriptedServer::start(move |req| match req.header("authorization") {
        Some(a) if a.starts_with("Bearer ") => {
            ScriptedResponse::json(200, &serde_json::json!({"name": "r", "tags": ["a"]}))
        }
        _ => ScriptedResponse::new(401).header(
            "WWW-Authenticate",
            &format!(r#"Bearer realm="{realm}",scope="repository:r:pull,metadata_read""#),
        ),
    });
    let client = anonymous();
    let repo = repository(&format!("{}/r", registry.host()));
    for _ in 0..3 {
        client.tags(&repo).await.unwrap();
    }
    assert_eq!(tokens.request_count(), 1, "{:#?}", tokens.requests());
    assert!(tokens.requests()[0]
        .query()
        .unwrap()
        .contains("scope=repository%3Ar%3Ametadata_read%2Cpull"));
    let bare = registry
        .requests()
        .iter()
        .filter(|r| r.header("authorization").is_none())
        .count();
    assert_eq!(bare, 1, "one challenge, then the token goes up front");
}

/// A token got with one namespace's credential never serves another namespace's
/// repository, even for the very same scopes. A real registry's challenge names the
/// request's repository alone; this one names both, so that both requests end up asking
/// for the same scopes, and it takes a token only if it covers both and was got by the
/// repository's owner.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_got_with_one_namespaces_credential_never_serves_another() {
    // base64 of ann:pw-a and ben:pw-b.
    const ANN: &str = "Basic YW5uOnB3LWE=";
    const BEN: &str = "Basic YmVuOnB3LWI=";
    const BOTH: &str = "repository:team-a/app:pull repository:team-b/app:pull";
    // Tokens say whose credential got them, and whether for both repositories.
    let tokens = ScriptedServer::start(|req| {
        let user = match req.header("authorization") {
            Some(ANN) => "ann",
            Some(BEN) => "ben",
            _ => "anonymous",
        };
        let query = req.query().unwrap_or_default();
        let both = query.contains("team-a%2Fapp") && query.contains("team-b%2Fapp");
        let token = format!("{user}-{}-{}", req.index, if both { "both" } else { "one" });
        ScriptedResponse::json(
            200,
            &serde_json::json!({ "token": token, "expires_in": 300 }),
        )
    });
    let realm = format!("{}/token", tokens.url());
    let registry = ScriptedServer::start(move |req| {
        let (repo, owner) = if req.path().starts_with("/v2/team-a/") {
            ("team-a/app", "ann")
        } else {
            ("team-b/app", "ben")
        };
        match req.header("authorization") {
            Some(a) if a.starts_with(&format!("Bearer {owner}-")) && a.ends_with("-both") => {
                ScriptedResponse::json(200, &serde_json::json!({"name": repo, "tags": ["1"]}))
            }
            _ => ScriptedResponse::new(401).header(
                "WWW-Authenticate",
                &format!(r#"Bearer realm="{realm}",service="svc",scope="{BOTH}""#),
            ),
        }
    });
    let host = registry.host();
    let auths = format!(
        r#"{{"auths":{{"{host}/team-a":{{"username":"ann","password":"pw-a"}},"{host}/team-b":{{"username":"ben","password":"pw-b"}}}}}}"#
    );
    let client = Client::builder()
        .credentials(DockerConfig::parse(&auths, "auth.json").unwrap())
        .build()
        .unwrap();

    for repo in ["team-a/app", "team-b/app"] {
        let tags = client
            .tags(&repository(&format!("{host}/{repo}")))
            .await
            .unwrap_or_else(|e| panic!("{repo}: {e}"));
        assert_eq!(tags, ["1"], "{repo}");
    }
    for request in registry.requests() {
        if request.path().starts_with("/v2/team-b/") {
            let auth = request.header("authorization").unwrap_or_default();
            assert!(!auth.starts_with("Bearer ann-"), "{request:#?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_or_unsafe_challenges_are_clear_errors() {
    let cases = [
        (
            r#"Bearer realm="http://127.0.0.1:1/token"#,
            "unusable challenge",
        ),
        (r#"Bearer service="svc""#, "has no realm"),
        (
            r#"Bearer realm="http://token.example.invalid/token",service="svc""#,
            "plain-HTTP token realm",
        ),
        (
            r#"Bearer realm="https://user:pw@token.example.invalid/token""#,
            "username or password",
        ),
    ];
    for (challenge, expected) in cases {
        let value = challenge.to_string();
        let registry = ScriptedServer::start(move |_| {
            ScriptedResponse::new(401).header("WWW-Authenticate", &value)
        });
        let err = alice()
            .tags(&repository(&format!("{}/r", registry.host())))
            .await
            .expect_err(challenge);
        assert_eq!(err.kind(), ErrorKind::Auth, "{challenge}: {err}");
        assert!(err.to_string().contains(expected), "{challenge}: {err}");
        assert_eq!(registry.request_count(), 1, "{challenge}");
    }
    // The parser itself, for the record: the first case is unterminated.
    assert!(parse_challenges(cases[0].0).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_stay_out_of_errors_even_when_a_token_server_echoes_them() {
    let tokens = ScriptedServer::start(|req| {
        ScriptedResponse::json(
            401,
            &serde_json::json!({"details": format!("bad login, you sent {:?}", req.header("authorization"))}),
        )
    });
    let registry = bearer_registry(format!("{}/token", tokens.url()), |_| {
        ScriptedResponse::new(200)
    });
    let client = with_credential(Credential::basic(USER, "hunter2-echoed"));
    let err = client
        .tags(&repository(&format!("{}/r", registry.host())))
        .await
        .expect_err("refused");
    assert_eq!(err.kind(), ErrorKind::Auth);
    let text = format!("{err} | {err:?}");
    assert!(text.contains("bad login"), "{text}");
    // The base64 of user:password is what the server echoed; neither form may show.
    assert_no_secret(&text);
    assert!(!text.contains("YWxpY2U6aHVudGVyMi1lY2hvZWQ"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_server_failures_are_retried_like_registry_failures() {
    let failures = Arc::new(Mutex::new(1));
    let left = Arc::clone(&failures);
    let tokens = ScriptedServer::start(move |_| {
        let mut left = left.lock().unwrap();
        if *left > 0 {
            *left -= 1;
            ScriptedResponse::new(503).header("Retry-After", "0")
        } else {
            ScriptedResponse::json(200, &serde_json::json!({"access_token": "ok"}))
        }
    });
    let registry = bearer_registry(format!("{}/token", tokens.url()), |_| {
        ScriptedResponse::json(200, &serde_json::json!({"name": "r", "tags": ["a"]}))
    });
    let tags = anonymous()
        .tags(&repository(&format!("{}/r", registry.host())))
        .await
        .expect("retried");
    assert_eq!(tags, ["a"]);
    assert_eq!(tokens.request_count(), 2);
}

/// A retry policy whose backoff is longer than its whole budget: a request it retries
/// after a failure is retried only when the server's `Retry-After` says when.
fn retry_only_when_asked() -> ocisdk::registry::RetryPolicy {
    ocisdk::registry::RetryPolicy {
        max_attempts: 3,
        base_delay: Duration::MAX,
        max_backoff: Duration::MAX,
        max_wait: Duration::from_secs(60),
        max_total: Duration::from_secs(3600),
    }
}

/// A token server that rate-limits (429 with `Retry-After: 0`) is asked again when it says,
/// as the registry would be: its wait used to be dropped when its answer became an error,
/// and the request waited out the policy's backoff instead (here longer than the whole
/// retry budget, so it gave up with the 429).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_servers_retry_after_is_waited_not_the_backoff() {
    let tokens = token_server();
    // The registry sends clients to the token server through a proxy that rate-limits
    // once it is told to.
    let upstream = tokens.realm().trim_end_matches("/token").to_string();
    let limit = Arc::new(AtomicUsize::new(0));
    let limited = Arc::clone(&limit);
    let proxy = ScriptedServer::start(move |req| {
        let refuse = limited
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if refuse {
            let body = serde_json::json!({"details": "too many token requests"});
            ScriptedResponse::json(429, &body).header("Retry-After", "0")
        } else {
            forward(req, &upstream)
        }
    });
    let config = tokens
        .registry_config()
        .replace(&tokens.realm(), &format!("{}/token", proxy.url()));
    let registry = RegistryBuilder::new().extra_config(&config).start();
    let public = format!("{}/{PUBLIC}", registry.host());
    push_bytes(&alice(), &format!("{public}:1"), b"public layer").await;
    limit.store(1, Ordering::SeqCst);
    proxy.clear_requests();

    let client = Client::builder()
        .retry(retry_only_when_asked())
        .build()
        .unwrap();
    let listed = client
        .tags(&repository(&public))
        .await
        .expect("asked again at once");
    assert_eq!(listed, ["1"]);
    assert_eq!(proxy.request_count(), 2, "{:#?}", proxy.requests());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_ask_for_pull_and_push() {
    let tokens = counting_token_server();
    let realm = format!("{}/token", tokens.url());
    let upstream = Registry::start();
    let up = upstream.url();
    // Bearer in front of a real (open) registry: challenge, then forward with any token.
    let registry = ScriptedServer::start(move |req| {
        if req.header("authorization").is_some() {
            return forward(req, &up);
        }
        ScriptedResponse::new(401).header(
            "WWW-Authenticate",
            &format!(r#"Bearer realm="{realm}",service="svc""#),
        )
    });
    push_bytes(
        &anonymous(),
        &format!("{}/team/app:1", registry.host()),
        b"upload",
    )
    .await;
    let scopes: Vec<String> = tokens
        .requests()
        .iter()
        .map(|r| r.query().unwrap_or("").to_string())
        .collect();
    assert!(
        scopes
            .iter()
            .any(|q| q.contains("scope=repository%3Ateam%2Fapp%3Apull%2Cpush")),
        "{scopes:#?}"
    );
    assert!(
        scopes
            .iter()
            .any(|q| q.contains("scope=repository%3Ateam%2Fapp%3Apull&")
                || q.ends_with("scope=repository%3Ateam%2Fapp%3Apull")),
        "{scopes:#?}"
    );
}

// ---------------------------------------------------------------------------------------
// Copies between namespaces of one registry
// ---------------------------------------------------------------------------------------

/// (method, target, status) of each request a proxy passed on.
type Exchanges = Arc<Mutex<Vec<(String, String, u16)>>>;

/// A proxy to `upstream` that records each request with the status it was answered with.
fn recording_proxy(upstream: &str) -> (ScriptedServer, Exchanges) {
    let log = Exchanges::default();
    let (upstream, sink) = (upstream.to_string(), Arc::clone(&log));
    let proxy = ScriptedServer::start(move |req| {
        let response = forward(req, &upstream);
        let exchange = (req.method.clone(), req.target.clone(), response.status);
        sink.lock().unwrap().push(exchange);
        response
    });
    (proxy, log)
}

/// A copy from team-a to team-b whose team-b account may not read team-a: the registry
/// refuses the cross-repository mount of the first blob for want of authorisation, and the
/// rest of the copy, and a second copy with the same client (as `sdk mirror` makes), send
/// their blobs without asking again. Each refused mount cost a token request and two
/// refused `POST`s, for every blob.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mount_refused_for_want_of_authorisation_is_not_asked_again() {
    use ocisdk::copy::{copy, CopyOptions, ImageRef, Outcome};
    let tokens = TokenServer::builder()
        .user(USER, PASSWORD)
        .user_in("ann", "pw-a", "team-a")
        .user_in("ben", "pw-b", "team-b")
        .start();
    let registry = RegistryBuilder::new()
        .extra_config(&tokens.registry_config())
        .start();
    let (proxy, log) = recording_proxy(&registry.url());
    let host = proxy.host();
    // Two images of three layers each, written by the account that may write anywhere.
    let mut layout = OciLayout::new();
    for (tag, seed) in [("1", 10), ("2", 20)] {
        let mut image = ImageBuilder::new().label("tag", tag);
        for i in 0..3 {
            image = image.layer(
                pseudo_random_bytes(40_000, seed + i),
                media_types::OCI_LAYER_TAR,
            );
        }
        layout.add_image(tag, &image);
        let from = ImageRef::Layout {
            dir: layout.path().to_path_buf(),
            name: Some(tag.into()),
        };
        let to = ImageRef::Registry(reference(&format!("{host}/team-a/tool:{tag}")));
        copy(&alice(), &from, &to, &CopyOptions::default())
            .await
            .unwrap_or_else(|e| panic!("pushing {tag}: {e}"));
    }
    let auths = format!(
        r#"{{"auths":{{"{host}/team-a":{{"username":"ann","password":"pw-a"}},"{host}/team-b":{{"username":"ben","password":"pw-b"}}}}}}"#
    );
    let teams = Client::builder()
        .credentials(DockerConfig::parse(&auths, "auth.json").unwrap())
        .build()
        .unwrap();
    log.lock().unwrap().clear();

    for tag in ["1", "2"] {
        let from = ImageRef::Registry(reference(&format!("{host}/team-a/tool:{tag}")));
        let to = ImageRef::Registry(reference(&format!("{host}/team-b/tool:{tag}")));
        let report = copy(&teams, &from, &to, &CopyOptions::default())
            .await
            .unwrap_or_else(|e| panic!("copying {tag}: {e}"));
        assert_eq!(report.blobs.len(), 4, "{tag}: {report:#?}");
        assert_eq!(report.blobs_with(Outcome::Copied), 4, "{tag}: {report:#?}");
        let copied = teams
            .manifest(&reference(&format!("{host}/team-b/tool:{tag}")))
            .await
            .unwrap();
        let original = teams
            .manifest(&reference(&format!("{host}/team-a/tool:{tag}")))
            .await
            .unwrap();
        assert_eq!(copied.bytes, original.bytes, "{tag}");
        // Every layer reads back from team-b, verified against its digest.
        let dir = tempfile::tempdir().unwrap();
        for layer in copied.image().unwrap().layers() {
            let digest = Digest::parse(layer.digest().as_ref()).unwrap();
            fetch_blob(&teams, &format!("{host}/team-b/tool"), &digest, dir.path())
                .await
                .unwrap_or_else(|e| panic!("{tag}: {e}"));
        }
    }
    let log = log.lock().unwrap().clone();
    let mounts: Vec<&(String, String, u16)> = log
        .iter()
        .filter(|(method, target, _)| method == "POST" && target.contains("mount="))
        .collect();
    let blobs_asked: HashSet<&str> = mounts
        .iter()
        .filter_map(|(_, target, _)| target.split("mount=").nth(1)?.split('&').next())
        .collect();
    assert_eq!(blobs_asked.len(), 1, "{mounts:#?}");
    // Sent with the token got for it, then with a new one: a refused token is replaced once.
    assert_eq!(mounts.len(), 2, "{mounts:#?}");
    // What distribution answers a token without pull on the source.
    assert!(
        mounts.iter().all(|(_, _, status)| *status == 401),
        "{mounts:#?}"
    );
}
