//! A real CNCF distribution registry with `auth: token` (behind the testkit's [`TokenServer`])
//! and with `auth: htpasswd`.

use super::*;

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
