//! Tests of `Registry`: a real `docker-registry` process.

use std::net::TcpStream;
use std::time::Duration;

use ocisdk_testkit::{digest_of, http, Registry, RegistryBuilder, Relay};

#[test]
fn registry_answers_v2_and_is_killed_on_drop() {
    let registry = Registry::start();
    assert_eq!(registry.host(), format!("127.0.0.1:{}", registry.port()));
    assert_eq!(registry.url(), format!("http://{}", registry.host()));

    let resp = http::get(&format!("{}/v2/", registry.url())).unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(
        resp.header("Docker-Distribution-Api-Version"),
        Some("registry/2.0")
    );
    assert_eq!(resp.body, b"{}");
    assert!(registry.storage_dir().is_dir());

    let port = registry.port();
    let storage = registry.storage_dir().to_path_buf();
    drop(registry);
    let err = TcpStream::connect(("127.0.0.1", port)).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
    assert!(!storage.exists(), "temp storage is removed on drop");
}

#[test]
fn stop_keeps_storage_and_restart_serves_again() {
    let mut registry = Registry::start();
    let v2 = format!("{}/v2/", registry.url());
    // Upload a blob so there is something in storage.
    let blob = b"kept across restarts";
    let digest = ocisdk_testkit::digest_of(blob);
    // distribution 2.8 ignores `?digest=` on POST (no monolithic single-POST upload):
    // it opens an upload session (202 + Location) that a PUT completes.
    let post = http::request(
        "POST",
        &format!("{}/v2/keep/blobs/uploads/?digest={digest}", registry.url()),
        &[],
        b"",
    )
    .unwrap();
    assert_eq!(post.status, 202, "{}", post.text());
    let location = post.header("Location").unwrap();
    let sep = if location.contains('?') { '&' } else { '?' };
    let put = http::request(
        "PUT",
        &format!("{location}{sep}digest={digest}"),
        &[("Content-Type", "application/octet-stream")],
        blob,
    )
    .unwrap();
    assert_eq!(put.status, 201, "{}", put.text());
    assert_eq!(
        std::fs::read(registry.blob_data_path(&digest)).unwrap(),
        blob
    );

    registry.stop();
    assert!(!registry.is_running());
    assert!(http::get(&v2).is_err(), "stopped registry must refuse");
    assert!(registry.blob_data_path(&digest).is_file());

    registry.restart();
    assert!(registry.is_running());
    assert_eq!(http::get(&v2).unwrap().status, 200);
    let got = http::get(&format!("{}/v2/keep/blobs/{digest}", registry.url())).unwrap();
    assert_eq!(got.status, 200);
    assert_eq!(got.body, blob);
}

#[test]
fn htpasswd_requires_basic_auth() {
    let registry = RegistryBuilder::new().htpasswd("alice", "secret").start();
    let v2 = format!("{}/v2/", registry.url());
    let anon = http::get(&v2).unwrap();
    assert_eq!(anon.status, 401);
    assert!(anon
        .header("WWW-Authenticate")
        .unwrap()
        .starts_with("Basic "));
    // base64("alice:secret")
    let ok = http::request(
        "GET",
        &v2,
        &[("Authorization", "Basic YWxpY2U6c2VjcmV0")],
        b"",
    )
    .unwrap();
    assert_eq!(ok.status, 200);
    // base64("alice:wrong")
    let bad = http::request(
        "GET",
        &v2,
        &[("Authorization", "Basic YWxpY2U6d3Jvbmc=")],
        b"",
    )
    .unwrap();
    assert_eq!(bad.status, 401);
}

#[test]
fn http_config_and_extra_config_reach_the_registry() {
    let registry = RegistryBuilder::new()
        .http_config("relativeurls: true\n")
        .start();
    let post = http::request(
        "POST",
        &format!("{}/v2/rel/blobs/uploads/", registry.url()),
        &[],
        b"",
    )
    .unwrap();
    assert_eq!(post.status, 202);
    assert!(
        post.header("Location")
            .unwrap()
            .starts_with("/v2/rel/blobs/uploads/"),
        "relativeurls should give a relative Location, got {:?}",
        post.header("Location")
    );

    let err = RegistryBuilder::new()
        .extra_config("auth:\n  nosuchbackend: {}\n")
        .try_start()
        .unwrap_err();
    assert!(
        err.contains("nosuchbackend"),
        "error should carry the log: {err}"
    );
}

/// A registry reached through a `Relay` answers as it does directly (the upload `Location`
/// points back at the relay), and the relay counts what the client sent as it passes.
#[test]
fn a_relay_passes_uploads_through_and_counts_them() {
    let registry = Registry::start();
    let relay = Relay::start(&registry.host());
    let started = http::request(
        "POST",
        &format!("{}/v2/relayed/blobs/uploads/", relay.url()),
        &[],
        &[],
    )
    .unwrap();
    assert_eq!(started.status, 202, "{}", started.text());
    let location = started.header("Location").unwrap().to_string();
    assert!(location.contains(&relay.host()), "{location}");
    let before = relay.sent().get();
    let blob = vec![7u8; 300_000];
    let separator = if location.contains('?') { '&' } else { '?' };
    let put = http::request(
        "PUT",
        &format!("{location}{separator}digest={}", digest_of(&blob)),
        &[("Content-Type", "application/octet-stream")],
        &blob,
    )
    .unwrap();
    assert_eq!(put.status, 201, "{}", put.text());
    assert!(relay.sent().get() - before >= blob.len() as u64);
    assert!(relay
        .sent()
        .wait_for(before + blob.len() as u64, Duration::from_secs(1)));
    assert!(registry.blob_data_path(&digest_of(&blob)).exists());
}
