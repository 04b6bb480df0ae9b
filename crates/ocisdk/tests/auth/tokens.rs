//! Scripted registries and token servers: `insufficient_scope` and the scopes asked for,
//! tokens per namespace credential, broken challenges, secrets a token server echoes, token
//! servers that fail or rate-limit, the scopes of uploads.

use super::*;

fn assert_no_secret(text: &str) {
    for secret in [PASSWORD, "rt-0123456789", "hunter2-echoed"] {
        assert!(
            !text.contains(secret),
            "secret {secret:?} leaked into: {text}"
        );
    }
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
