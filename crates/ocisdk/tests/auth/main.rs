//! Authentication, library level: a real CNCF distribution registry with `auth: htpasswd`
//! and with `auth: token` (behind the testkit's JWT-signing [`TokenServer`]), and
//! `ScriptedServer`s for what a real registry will not do (redirects to other origins,
//! `403 insufficient_scope`, broken challenges, token servers that echo secrets).
//!
//! One module per topic: `real_registry` (a real registry with `auth: token` and with
//! `auth: htpasswd`), `redirects` (authorization, challenges and token requests that a
//! redirect would carry to another origin), `tokens` (scripted registries and token
//! servers: scopes and their refresh, broken challenges, secrets echoed, token servers
//! that fail) and `namespaces` (copies between namespaces of one registry). This file
//! keeps the helpers several of them use.

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

mod namespaces;
mod real_registry;
mod redirects;
mod tokens;

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
fn token_server() -> TokenServer {
    TokenServer::builder()
        .user(USER, PASSWORD)
        .anonymous_pull(PUBLIC)
        .refresh_token("rt-0123456789", USER)
        .start()
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
