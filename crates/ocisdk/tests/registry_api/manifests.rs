//! Manifests: size limits, digests checked, `HEAD` answered with `GET`, platforms resolved,
//! schema 1 refused.

use super::*;

fn is_manifest_get(req: &RecordedRequest) -> bool {
    req.method == "GET" && req.path().contains("/manifests/")
}

/// How many manifest `GET`s `proxy` passed on.
fn manifest_gets(proxy: &ScriptedServer) -> usize {
    proxy
        .requests()
        .iter()
        .filter(|r| is_manifest_get(r))
        .count()
}

#[tokio::test]
async fn manifests_over_4_mib_are_refused() {
    let body = vec![b' '; 5 << 20];
    let server = ScriptedServer::start(move |_| {
        ScriptedResponse::ok(body.clone()).header("Content-Type", media_types::OCI_MANIFEST)
    });
    let err = client()
        .manifest(&reference(&format!("{}/r:big", server.host())))
        .await
        .expect_err("a 5 MiB manifest must be refused");
    match err {
        Error::TooLarge { what, limit, .. } => {
            assert_eq!(what, "manifest");
            assert_eq!(limit, 4 << 20);
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
}

#[tokio::test]
async fn manifest_is_checked_against_docker_content_digest() {
    let f = fixtures();
    let upstream = f.registry.url();
    let claimed = digest_of(b"some other manifest");
    let claimed_for_server = claimed.clone();
    let proxy = ScriptedServer::start(move |req| {
        let resp = forward(req, &upstream);
        if is_manifest_get(req) {
            resp.set_header("Docker-Content-Digest", &claimed_for_server)
        } else {
            resp
        }
    });
    let err = client()
        .manifest(&reference(&format!("{}/{IMAGE}", proxy.host())))
        .await
        .expect_err("a Docker-Content-Digest mismatch must fail");
    match err {
        Error::DigestMismatch {
            expected, actual, ..
        } => {
            assert_eq!(expected, digest(&claimed));
            assert_eq!(actual, digest(&f.image.manifest_digest));
        }
        other => panic!("expected DigestMismatch, got {other:?}"),
    }
    assert_eq!(manifest_gets(&proxy), 1);
}

/// A registry that refuses `HEAD` on manifests (405, as some Nexus and Artifactory setups
/// do) or answers it 404 while `GET` serves the manifest: the digest comes from a `GET`.
#[tokio::test]
async fn head_manifest_asks_with_get_when_head_is_refused() {
    let f = fixtures();
    for status in [405, 404] {
        let upstream = f.registry.url();
        let proxy = ScriptedServer::start(move |req| {
            if req.method == "HEAD" && req.path().contains("/manifests/") {
                return ScriptedResponse::new(status);
            }
            forward(req, &upstream)
        });
        let head = client()
            .head_manifest(&reference(&format!("{}/{IMAGE}", proxy.host())))
            .await
            .unwrap_or_else(|e| panic!("HEAD answered {status}: {e}"));
        assert_eq!(head.digest, digest(&f.image.manifest_digest), "{status}");
        assert_eq!(
            head.media_type.as_deref(),
            Some(media_types::OCI_MANIFEST),
            "{status}"
        );
        assert_eq!(manifest_gets(&proxy), 1);
    }
    // A tag that is missing is still a 404, now with the registry's own error code, which
    // only a GET's body carries.
    let err = client()
        .head_manifest(&reference(&format!(
            "{}/lib/python:no-such-tag",
            f.registry.host()
        )))
        .await
        .expect_err("a missing tag");
    match &err {
        Error::Status {
            status: 404,
            body: Some(body),
            ..
        } => assert!(body.has_code("MANIFEST_UNKNOWN"), "{err}"),
        other => panic!("expected a 404 with the registry's error body, got {other:?}"),
    }
}

#[tokio::test]
async fn manifest_fetched_by_digest_is_verified_against_it() {
    let f = fixtures();
    let upstream = f.registry.url();
    let original = String::from_utf8(f.image.manifest_bytes.clone()).unwrap();
    let tampered = original.replace("3.11.0", "3.11.9");
    assert_ne!(tampered, original, "fixture has the annotation to alter");
    let tampered_for_server = tampered.clone();
    let proxy = ScriptedServer::start(move |req| {
        let resp = forward(req, &upstream);
        if is_manifest_get(req) {
            // Without the header, only the digest in the reference can catch the change.
            resp.remove_header("Docker-Content-Digest")
                .body(tampered_for_server.clone())
        } else {
            resp
        }
    });
    let by_digest = reference(&format!(
        "{}/lib/python@{}",
        proxy.host(),
        f.image.manifest_digest
    ));
    let err = client()
        .manifest(&by_digest)
        .await
        .expect_err("a tampered manifest must fail");
    match err {
        Error::DigestMismatch {
            expected, actual, ..
        } => {
            assert_eq!(expected, digest(&f.image.manifest_digest));
            assert_eq!(actual, digest(&digest_of(tampered.as_bytes())));
        }
        other => panic!("expected DigestMismatch, got {other:?}"),
    }
}

/// A `HEAD` answer has no body, so its 404 alone cannot say what is missing: the client asks
/// again with `GET`, and the error carries the registry's own `MANIFEST_UNKNOWN`, for a tag
/// and for a digest, with its place (a bodiless 404 still says what it asked for: see
/// `error.rs`).
#[tokio::test]
async fn head_of_a_missing_manifest_says_what_is_not_found() {
    let f = fixtures();
    let host = f.registry.host();
    let client = client();

    let err = client
        .head_manifest(&reference(&format!("{host}/lib/python:nope")))
        .await
        .expect_err("no such tag");
    assert!(
        err.to_string().starts_with(&format!(
            "checking manifest {host}/lib/python:nope: registry answered HTTP 404: \
             MANIFEST_UNKNOWN"
        )),
        "{err}"
    );
    assert_eq!(
        (err.kind(), err.status()),
        (ocisdk::ErrorKind::NotFound, Some(404))
    );
    let at = err.location().expect("a place");
    assert_eq!(
        (&*at.registry, &*at.repository, at.reference.as_deref()),
        (host.as_str(), "lib/python", Some("nope"))
    );

    let missing = digest_of(b"no manifest has these bytes");
    let err = client
        .head_manifest(&reference(&format!("{host}/lib/python@{missing}")))
        .await
        .expect_err("no such digest");
    assert!(
        err.to_string().starts_with(&format!(
            "checking manifest {host}/lib/python@{missing}: registry answered HTTP 404: \
             MANIFEST_UNKNOWN"
        )),
        "{err}"
    );
    assert_eq!(err.status(), Some(404));
}

#[tokio::test]
async fn resolve_manifest_picks_the_host_platform_by_default() {
    let f = fixtures();
    let client = client();
    assert_eq!(client.platform(), &Platform::host());
    let want = f
        .index
        .manifests
        .iter()
        .find(|m| m.platform.architecture == Platform::host().architecture)
        .expect("the index fixture covers this machine's architecture (amd64 or arm64)");

    let index_ref = reference(&format!("{}/{INDEX}", f.registry.host()));
    let resolved = client
        .resolve_manifest(&index_ref, None)
        .await
        .expect("resolve");
    assert_eq!(resolved.digest, digest(&want.manifest_digest));
    assert_same_bytes(&resolved.bytes, &want.manifest_bytes, "child manifest");
    assert_eq!(resolved.media_type, media_types::OCI_MANIFEST);
    assert!(resolved.image().is_some());
}

#[tokio::test]
async fn resolve_manifest_names_the_available_platforms_when_none_matches() {
    let f = fixtures();
    let s390x: Platform = "linux/s390x".parse().unwrap();
    let index_ref = reference(&format!("{}/{INDEX}", f.registry.host()));
    let err = client()
        .resolve_manifest(&index_ref, Some(&s390x))
        .await
        .expect_err("no s390x image in the index");
    match &err {
        Error::NoMatchingPlatform {
            wanted, available, ..
        } => {
            assert_eq!(wanted, "linux/s390x");
            assert!(available.contains("linux/amd64"), "{available}");
            assert!(available.contains("linux/arm64"), "{available}");
        }
        other => panic!("expected NoMatchingPlatform, got {other:?}"),
    }
    assert_eq!(err.kind(), ocisdk::ErrorKind::NotFound);
}

/// A single-platform image asked for with another platform fails as docker's
/// `pull --platform` does, naming what the image is built for; asked for with its own
/// platform, it resolves to itself.
#[tokio::test]
async fn resolve_manifest_checks_a_single_platform_image_against_an_explicit_platform() {
    let f = fixtures();
    let image_ref = reference(&format!("{}/{IMAGE}", f.registry.host()));
    let s390x: Platform = "linux/s390x".parse().unwrap();
    let err = client()
        .resolve_manifest(&image_ref, Some(&s390x))
        .await
        .expect_err("the image is linux/amd64");
    match &err {
        Error::NoMatchingPlatform {
            wanted, available, ..
        } => {
            assert_eq!(wanted, "linux/s390x");
            assert_eq!(available, "linux/amd64");
        }
        other => panic!("expected NoMatchingPlatform, got {other:?}"),
    }

    let amd64: Platform = "linux/amd64".parse().unwrap();
    let resolved = client()
        .resolve_manifest(&image_ref, Some(&amd64))
        .await
        .expect("the image's own platform");
    assert_eq!(resolved.digest, digest(&f.image.manifest_digest));
    // Without an explicit platform nothing is checked, whatever this machine is.
    let resolved = client().resolve_manifest(&image_ref, None).await.unwrap();
    assert_eq!(resolved.digest, digest(&f.image.manifest_digest));
}

/// A registry holding only a signed schema 1 manifest (old Quay, distribution 2.x) serves it
/// whatever `Accept` says. Its digest is that of the payload without the signatures, so it
/// used to read as corrupt content (exit 5); it is refused for what it is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema1_manifest_is_refused_as_unsupported_not_as_corrupt() {
    let body = br#"{"schemaVersion":1,"name":"s1/repo","tag":"latest","architecture":"amd64","fsLayers":[],"history":[],"signatures":[{"header":{},"signature":"x","protected":"e30"}]}"#;
    let payload_digest = digest_of(b"the payload without its signatures");
    let registry = ScriptedServer::start(move |_| {
        ScriptedResponse::ok(body.to_vec())
            .header(
                "Content-Type",
                "application/vnd.docker.distribution.manifest.v1+prettyjws",
            )
            .header("Docker-Content-Digest", &payload_digest)
    });
    let client = Client::builder().build().unwrap();
    let reference: Reference = format!("{}/s1/repo:latest", registry.host())
        .parse()
        .unwrap();
    let err = client.manifest(&reference).await.expect_err("schema 1");
    assert!(matches!(err, Error::Unsupported { .. }), "{err:?}");
    assert!(err.to_string().contains("schema 1"), "{err}");
}
