//! Scripted registries that redirect: authorization, a challenge and a token request are
//! never carried to another origin, and a signed redirect URL stays out of errors.

use super::*;

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
