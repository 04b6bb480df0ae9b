//! Tests of `ScriptedServer`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use ocisdk_testkit::{
    forward, fs_layer_holding, http, media_types, skopeo, Format, ImageBuilder, OciLayout,
    Registry, ScriptedResponse, ScriptedServer,
};

/// Sends a raw GET and returns (head, body bytes received until the server closed).
fn raw_get(server: &ScriptedServer, path: &str) -> (String, Vec<u8>) {
    let mut s = TcpStream::connect(server.host()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut all = Vec::new();
    s.read_to_end(&mut all).unwrap();
    let end = all
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a head")
        + 4;
    (
        String::from_utf8_lossy(&all[..end]).into_owned(),
        all[end..].to_vec(),
    )
}

#[test]
fn records_requests_and_answers_with_the_script() {
    let server = ScriptedServer::start(|req| {
        ScriptedResponse::ok(format!("you sent {} bytes", req.body.len()))
            .header("X-Echo-Path", req.path())
    });
    let resp = http::request(
        "PUT",
        &format!("{}/v2/repo/blobs/uploads/1?digest=sha256:ab", server.url()),
        &[
            ("X-Test", "yes"),
            ("Content-Type", "application/octet-stream"),
        ],
        b"12345",
    )
    .unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.text(), "you sent 5 bytes");
    assert_eq!(resp.header("x-echo-path"), Some("/v2/repo/blobs/uploads/1"));
    assert_eq!(resp.header("Connection"), Some("close"));

    let reqs = server.requests();
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    assert_eq!(r.index, 0);
    assert_eq!(r.method, "PUT");
    assert_eq!(r.target, "/v2/repo/blobs/uploads/1?digest=sha256:ab");
    assert_eq!(r.query(), Some("digest=sha256:ab"));
    assert_eq!(r.header("x-test"), Some("yes"));
    assert_eq!(r.body, b"12345");

    http::get(&server.url()).unwrap();
    assert_eq!(server.request_count(), 2);
    assert_eq!(server.requests()[1].index, 1);
}

#[test]
fn truncated_body_is_shorter_than_its_content_length() {
    let body = vec![7u8; 1000];
    let server =
        ScriptedServer::start(move |_| ScriptedResponse::ok(body.clone()).truncate_body_after(100));
    let (head, received) = raw_get(&server, "/blob");
    assert!(head.contains("Content-Length: 1000\r\n"), "{head}");
    assert_eq!(received.len(), 100);

    let err = http::get(&format!("{}/blob", server.url())).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::UnexpectedEof);
}

#[test]
fn stall_delays_the_rest_of_the_body() {
    let server = ScriptedServer::start(|_| {
        ScriptedResponse::ok(b"0123456789abcdef".to_vec())
            .stall_after(4, Duration::from_millis(300))
    });
    // A client with a short read timeout sees the first bytes, then a timeout.
    let mut s = TcpStream::connect(server.host()).unwrap();
    write!(s, "GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    let err = loop {
        match s.read(&mut buf) {
            Ok(0) => panic!("server closed early"),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => break e,
        }
    };
    assert!(matches!(
        err.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    ));
    assert!(
        got.ends_with(b"\r\n\r\n0123"),
        "{:?}",
        String::from_utf8_lossy(&got)
    );

    // A patient client gets everything, late.
    let start = Instant::now();
    let resp = http::get(&server.url()).unwrap();
    assert!(start.elapsed() >= Duration::from_millis(280));
    assert_eq!(resp.body, b"0123456789abcdef");
}

#[test]
fn head_gets_headers_only_and_faults_reach_the_client() {
    let server = ScriptedServer::start(|req| match req.path() {
        "/drop" => ScriptedResponse::drop_connection(),
        "/panic" => panic!("scripted boom"),
        "/slow" => ScriptedResponse::new(204).delay(Duration::from_millis(200)),
        _ => ScriptedResponse::ok(b"twelve bytes".to_vec()),
    });
    let head = http::request("HEAD", &format!("{}/x", server.url()), &[], b"").unwrap();
    assert_eq!(head.status, 200);
    assert_eq!(head.header("Content-Length"), Some("12"));
    assert!(head.body.is_empty());

    assert!(http::get(&format!("{}/drop", server.url())).is_err());

    let resp = http::get(&format!("{}/panic", server.url())).unwrap();
    assert_eq!(resp.status, 500);
    assert!(resp.text().contains("scripted boom"), "{}", resp.text());

    let start = Instant::now();
    assert_eq!(
        http::get(&format!("{}/slow", server.url())).unwrap().status,
        204
    );
    assert!(start.elapsed() >= Duration::from_millis(180));
}

#[test]
fn tls_hello_is_refused_and_not_recorded_and_drop_closes_the_port() {
    let server = ScriptedServer::start(|_| ScriptedResponse::ok(Vec::new()));
    let mut s = TcpStream::connect(server.host()).unwrap();
    s.write_all(&[0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5])
        .unwrap();
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).unwrap();
    assert!(answer.starts_with(b"HTTP/1.0 400"));
    assert_eq!(server.request_count(), 0);

    let port = server.port();
    drop(server);
    let err = TcpStream::connect(("127.0.0.1", port)).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
}

#[test]
fn proxy_to_the_real_registry() {
    let registry = Registry::start();
    let proxy = ScriptedServer::proxy_to(&registry.url());
    let resp = http::get(&format!("{}/v2/", proxy.url())).unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(
        resp.header("Docker-Distribution-Api-Version"),
        Some("registry/2.0")
    );
    assert_eq!(resp.body, b"{}");

    // A whole skopeo push goes through the proxy: upload Locations point back at it.
    let mut layout = OciLayout::new();
    let info = layout.add_image(
        "v1",
        &ImageBuilder::new().layer(fs_layer_holding("f", b"data"), media_types::OCI_LAYER_GZIP),
    );
    skopeo::push_layout(
        layout.path(),
        "v1",
        &proxy.host(),
        "via/proxy:v1",
        Format::Oci,
    );
    let reqs = proxy.requests();
    assert!(reqs.iter().any(
        |r| r.path().contains("/blobs/uploads/") && (r.method == "PATCH" || r.method == "PUT")
    ));
    assert!(reqs
        .iter()
        .any(|r| r.method == "PUT" && r.path() == "/v2/via/proxy/manifests/v1"));

    // HEAD through the proxy keeps the upstream's Content-Length.
    let head = http::request(
        "HEAD",
        &format!("{}/v2/via/proxy/manifests/v1", proxy.url()),
        &[("Accept", media_types::OCI_MANIFEST)],
        b"",
    )
    .unwrap();
    assert_eq!(head.status, 200);
    assert_eq!(
        head.header("Content-Length"),
        Some(info.manifest_bytes.len().to_string().as_str())
    );
    assert_eq!(
        head.header("Docker-Content-Digest"),
        Some(info.manifest_digest.as_str())
    );
}

#[test]
fn forward_then_tamper() {
    let registry = Registry::start();
    let upstream = registry.url();
    // The first request is rate limited; blob bodies get one byte changed.
    let server = ScriptedServer::start(move |req| {
        if req.index == 0 {
            return ScriptedResponse::new(429).header("Retry-After", "0");
        }
        let mut resp = forward(req, &upstream);
        if req.method == "GET" && req.path().contains("/blobs/") && !resp.body.is_empty() {
            resp.body[0] ^= 1;
        }
        resp
    });
    assert_eq!(
        http::get(&format!("{}/v2/", server.url())).unwrap().status,
        429
    );
    assert_eq!(
        http::get(&format!("{}/v2/", server.url())).unwrap().status,
        200
    );

    let mut layout = OciLayout::new();
    let info = layout.add_image(
        "v1",
        &ImageBuilder::new().layer(fs_layer_holding("f", b"data"), media_types::OCI_LAYER_GZIP),
    );
    skopeo::push_layout(layout.path(), "v1", &registry.host(), "t/t:v1", Format::Oci);
    let digest = &info.layer_digests[0];
    let direct = http::get(&format!("{}/v2/t/t/blobs/{digest}", registry.url())).unwrap();
    let tampered = http::get(&format!("{}/v2/t/t/blobs/{digest}", server.url())).unwrap();
    assert_eq!(direct.body.len(), tampered.body.len());
    assert_ne!(direct.body, tampered.body);
    assert_eq!(&ocisdk_testkit::digest_of(&direct.body), digest);
}
