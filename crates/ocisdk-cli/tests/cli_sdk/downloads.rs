//! Downloads in both image shapes: unpacking while the layer downloads, resuming, mirrors
//! passed over, verification, chunks, partial downloads and the cache.

use super::*;

#[test]
fn install_recovers_from_a_damaged_cached_tarball() {
    let c = catalogue();
    let h = c.harness();
    h.sdk(&["install", "python", "3.11.10"]).success();
    let cached = find_files(&h.cache(), "python-bookworm-3.11.10.tar.gz");
    assert_eq!(cached.len(), 1, "cached tarballs: {cached:?}");
    let published = c.tarball("bookworm-3.11.10");
    fs::write(&cached[0], &published[..published.len() / 2]).unwrap();

    // Another install root sharing the cache.
    fs::remove_dir_all(h.root()).unwrap();
    let run = h.sdk(&["install", "python", "3.11.10"]);
    let retry = h.sdk(&["install", "python", "3.11.10"]);
    assert!(
        run.code == 0 || retry.code == 0,
        "the damaged cache breaks installs for good:\n{}\n{}",
        run.stderr,
        retry.stderr
    );
    assert_complete_install(&h, "3.11.10");
}

/// A proxy to `registry` that holds `layer` back after half its bytes until released.
fn proxy_holding_half_of(registry: &Registry, layer: &[u8]) -> (ScriptedServer, Release) {
    let upstream = registry.url();
    let path = format!("/blobs/{}", digest_of(layer));
    let half = layer.len() / 2;
    let release = Release::new();
    let held = release.clone();
    let proxy = ScriptedServer::start(move |req| {
        let response = forward(req, &upstream);
        if req.method == "GET" && req.path().ends_with(&path) {
            return response.stall_until(half, Duration::from_secs(60), &held);
        }
        response
    });
    (proxy, release)
}

/// Installs python `version`, whose layer (`layer`) a proxy holds back after half its
/// bytes until files of the SDK are seen unpacked: they must be, while the download waits.
fn assert_unpacks_while_downloading(h: &Harness, registry: &Registry, version: &str, layer: &[u8]) {
    let (proxy, release) = proxy_holding_half_of(registry, layer);
    let child = h
        .sdk_command(&proxy.url(), &["install", "python", version])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ocisdk");
    let python = h.root().join("python");
    wait_for("files unpacked while the layer is held back", || {
        staging_folders(h)
            .iter()
            .any(|dir| python.join(dir).join("bin/python").is_file())
    });
    assert!(
        !h.installed(version).exists(),
        "installed before the download ended"
    );
    release.release();
    Run::from_output(child.wait_with_output().expect("wait for ocisdk")).success();
    assert_complete_install(h, version);
    let gets = requests_to(&proxy.requests(), &format!("/blobs/{}", digest_of(layer)));
    assert_eq!(
        gets,
        vec![format!("GET /v2/{PYTHON_REPO}/blobs/{}", digest_of(layer))]
    );
    assert_nothing_left_over(h);
}

/// The cache holds one copy of python `version`'s tarball, and it is `tarball`.
#[track_caller]
fn assert_cached_tarball(h: &Harness, version: &str, tarball: &[u8]) {
    let cached = find_files(&h.cache(), &format!("python-bookworm-{version}.tar.gz"));
    assert_eq!(cached.len(), 1, "{cached:?}");
    assert_same_bytes(&read(&cached[0]), tarball, "cached tarball");
}

#[test]
fn install_unpacks_while_the_layer_downloads_in_both_image_shapes() {
    let registry = Registry::start();
    let h = Harness::new(&registry.url());
    let big = pseudo_random_bytes(4 << 20, 11);

    let tarball = big_sdk_tarball("3.11.10", &big);
    h.publish_bytes("3.11.10", "bookworm", false, &tarball);
    assert_unpacks_while_downloading(&h, &registry, "3.11.10", &tarball);

    let inner = big_sdk_tarball("3.11.11", &big);
    let layer = push_filesystem_layer_image(&h, "3.11.11", &inner, Format::Oci);
    assert_unpacks_while_downloading(&h, &registry, "3.11.11", &layer);
    // The tarball the layer held is what the cache keeps, as `sdk pull` gives it.
    assert_cached_tarball(&h, "3.11.11", &inner);
}

/// `sdk pull` of the MCR layout copies the tarball out of the layer as it downloads: while a
/// proxy holds the layer back after half its bytes, a good part of the tarball is already
/// in the output folder (under a temporary name), and nothing is under the final one.
#[test]
fn pull_copies_the_tarball_out_while_the_layer_downloads() {
    let registry = Registry::start();
    let h = Harness::new(&registry.url());
    let inner = big_sdk_tarball("3.11.11", &pseudo_random_bytes(4 << 20, 14));
    let layer = push_filesystem_layer_image(&h, "3.11.11", &inner, Format::Oci);
    let (proxy, release) = proxy_holding_half_of(&registry, &layer);
    let out = h.work().join("pulled");
    let child = h
        .sdk_command(
            &proxy.url(),
            &["pull", "python", "3.11.11", "-o", path_str(&out)],
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ocisdk");
    let tarball = out.join("python-bookworm-3.11.11.tar.gz");
    let copied_a_megabyte = |file: &PathBuf| {
        fs::read(file).is_ok_and(|b| b.len() >= 1 << 20 && b[..1 << 20] == inner[..1 << 20])
    };
    wait_for(
        "a megabyte of the tarball copied while the layer is held back",
        || leftovers(&out).iter().any(copied_a_megabyte),
    );
    assert!(
        !tarball.exists(),
        "the tarball is there before the download ended"
    );
    release.release();
    Run::from_output(child.wait_with_output().expect("wait for ocisdk")).success();
    assert_same_bytes(&read(&tarball), &inner, "pulled tarball");
    assert!(leftovers(&out).is_empty(), "{:?}", leftovers(&out));
    let gets = requests_to(&proxy.requests(), &format!("/blobs/{}", digest_of(&layer)));
    assert_eq!(
        gets,
        vec![format!("GET /v2/{PYTHON_REPO}/blobs/{}", digest_of(&layer))]
    );
}

/// The MCR layout's layer breaks off halfway; the client resumes it with `Range` — answered,
/// or (a registry that ignores it) with the whole body again — and the install that read
/// along is still exactly the tarball's, with nothing left over.
#[test]
fn filesystem_layer_broken_off_mid_download_resumes_into_a_complete_install() {
    let registry = Registry::start();
    let h = Harness::new(&registry.url());
    let big = pseudo_random_bytes(2 << 20, 13);
    for (version, honour_range) in [("3.11.10", true), ("3.11.11", false)] {
        let inner = big_sdk_tarball(version, &big);
        let layer = push_filesystem_layer_image(&h, version, &inner, Format::Oci);
        let upstream = registry.url();
        let path = format!("/blobs/{}", digest_of(&layer));
        let half = layer.len() / 2;
        let broke = AtomicBool::new(false);
        let proxy = ScriptedServer::start(move |req| {
            if !(req.method == "GET" && req.path().ends_with(&path)) {
                return forward(req, &upstream);
            }
            if !broke.swap(true, SeqCst) {
                return forward(req, &upstream).truncate_body_after(half);
            }
            let mut asked = req.clone();
            if !honour_range {
                asked
                    .headers
                    .retain(|(k, _)| !k.eq_ignore_ascii_case("range"));
            }
            forward(&asked, &upstream)
        });
        h.sdk_via(&proxy.url(), &["install", "python", version])
            .success();
        assert_complete_install(&h, version);
        assert_same_bytes(
            &read(&h.installed(version).join("lib/libpython.so")),
            &big,
            "large file",
        );
        let ranges: Vec<Option<String>> = proxy
            .requests()
            .iter()
            .filter(|r| r.method == "GET" && r.path().contains("/blobs/"))
            .map(|r| r.header("Range").map(str::to_string))
            .collect();
        assert_eq!(ranges.len(), 2, "{ranges:?}");
        assert_eq!(ranges[0], None);
        assert!(
            ranges[1]
                .as_deref()
                .is_some_and(|r| r.starts_with("bytes=")),
            "{ranges:?}"
        );
        assert_cached_tarball(&h, version, &inner);
        assert_nothing_left_over(&h);
    }
}

#[test]
fn a_mirror_serving_wrong_bytes_is_passed_over_by_sdk_pull_and_install_in_both_shapes() {
    let registry = Registry::start();
    let h = Harness::new(&registry.url());
    let tarball = h.publish("3.11.10", "bookworm", false);
    let inner = sdk_tarball("3.11.11", "bookworm");
    let layer = push_filesystem_layer_image(&h, "3.11.11", &inner, Format::Oci);
    // The "mirror" forwards to the same registry but flips a byte of every blob.
    let upstream = registry.url();
    let bad = ScriptedServer::start(move |req| {
        let mut response = forward(req, &upstream);
        if req.method == "GET" && req.path().contains("/blobs/") && !response.body.is_empty() {
            let middle = response.body.len() / 2;
            response.body[middle] ^= 0xff;
        }
        response
    });
    let mirror = bad.url();
    for (version, tarball, layer) in [("3.11.10", &tarball, &tarball), ("3.11.11", &inner, &layer)]
    {
        let out = h.work().join(version);
        h.sdk(&[
            "pull",
            "python",
            version,
            "-o",
            path_str(&out),
            "--mirror",
            &mirror,
        ])
        .success();
        let name = format!("python-bookworm-{version}.tar.gz");
        assert_same_bytes(&read(&out.join(&name)), tarball, "pulled tarball");
        h.sdk(&["install", "python", version, "--mirror", &mirror])
            .success();
        assert_complete_install(&h, version);
        let asked = requests_to(&bad.requests(), &format!("/blobs/{}", digest_of(layer)));
        assert!(
            asked.iter().filter(|r| r.starts_with("GET ")).count() >= 2,
            "the mirror was not asked for the layer by both commands: {asked:?}"
        );
    }
    assert_nothing_left_over(&h);
}

/// A mirror passed over for bytes that fail verification is passed over for the manifest
/// too, although resolving an exact version fetched it there: an out-of-date mirror's
/// manifest would otherwise have its (older) layer read from the upstream.
#[test]
fn a_mirror_passed_over_is_not_trusted_for_the_manifest_resolving_fetched() {
    let registry = Registry::start();
    let h = Harness::new(&registry.url());
    h.publish("3.11.9", "bookworm", false);
    h.publish("3.11.10", "bookworm", false);
    // Out of date and damaged: its 3.11.10 is the 3.11.9 image, and it flips a byte of
    // every blob.
    let upstream = registry.url();
    let stale = ScriptedServer::start(move |req| {
        let mut asked = req.clone();
        asked.target = asked.target.replace("bookworm-3.11.10", "bookworm-3.11.9");
        let mut response = forward(&asked, &upstream);
        if req.method == "GET" && req.path().contains("/blobs/") && !response.body.is_empty() {
            let middle = response.body.len() / 2;
            response.body[middle] ^= 0xff;
        }
        response
    });
    h.sdk(&["install", "python", "3.11.10", "--mirror", &stale.url()])
        .success();
    assert_complete_install(&h, "3.11.10");
}

#[test]
fn filesystem_layer_that_fails_verification_or_its_published_sha256_installs_nothing() {
    let registry = Registry::start();
    let h = Harness::new(&registry.url());
    let big = pseudo_random_bytes(1 << 20, 12);

    let inner = big_sdk_tarball("3.11.10", &big);
    let layer = push_filesystem_layer_image(&h, "3.11.10", &inner, Format::Oci);
    corrupt_blob(&registry, &digest_of(&layer));
    h.sdk(&["install", "python", "3.11.10"]).expect_code(5);
    assert!(!h.installed("3.11.10").exists(), "an install folder exists");

    // The tarball's published sha256 is checked before the install may finish.
    let inner = big_sdk_tarball("3.11.11", &big);
    let layer = fs_layer_holding("python-bookworm-3.11.11.tar.gz", &inner);
    let wrong = sha256_hex(b"another tarball");
    push_layer_image(
        &h,
        "3.11.11",
        &layer,
        Format::Oci,
        &[("org.oryx.sdk.sha256", &wrong)],
    );
    let run = h.sdk(&["install", "python", "3.11.11"]).expect_code(1);
    assert!(run.stderr.contains(&wrong), "{}", run.stderr);
    assert!(run.stderr.contains(&sha256_hex(&inner)), "{}", run.stderr);
    assert!(!h.installed("3.11.11").exists(), "an install folder exists");

    assert!(h.sdk(&["list-installed"]).success().stdout.is_empty());
    assert_nothing_left_over(&h);
}

#[test]
fn filesystem_layer_with_another_tarball_name_or_no_tar_still_installs() {
    let registry = Registry::start();
    let h = Harness::new(&registry.url());
    // The one SDK tarball in the layer, under a name the client does not expect.
    let inner = sdk_tarball("3.8.3", "bookworm");
    push_layer_image(
        &h,
        "3.8.3",
        &fs_layer_holding("python.tgz", &inner),
        Format::Oci,
        &[],
    );
    // A layer that is the tarball itself, without a title to say so.
    let bare = sdk_tarball("3.8.4", "bookworm");
    push_layer_image(&h, "3.8.4", &bare, Format::Oci, &[]);
    // The same, where the SDK's files include a small tarball (a test fixture): that is not
    // the SDK, though it is the layer's only file named like one.
    let fixture = RawTar::new()
        .file("INNER_ONLY.txt", b"not the SDK", 0o644)
        .tar_gz();
    let with_fixture = RawTar::new()
        .dir("bin", 0o755)
        .file(
            "bin/python",
            python_script("3.8.5", "bookworm").as_bytes(),
            0o755,
        )
        .symlink("bin/python3", "python")
        .dir("lib", 0o755)
        .file("lib/VERSION", b"3.8.5", 0o644)
        .file("lib/libpython.so", &pseudo_random_bytes(4096, 385), 0o644)
        .file("lib/test/fixture.tar.gz", &fixture, 0o644)
        .tar_gz();
    push_layer_image(&h, "3.8.5", &with_fixture, Format::Oci, &[]);

    let out = h.work().join("pulled");
    for (version, tarball) in [
        ("3.8.3", &inner),
        ("3.8.4", &bare),
        ("3.8.5", &with_fixture),
    ] {
        let json = h
            .sdk(&["install", "python", version, "--json"])
            .success()
            .json();
        assert_eq!(json["cached"], false, "{json}");
        assert_complete_install(&h, version);
        assert_cached_tarball(&h, version, tarball);
        // `sdk pull` finds the same tarball (it reads the layer as it comes, too).
        h.sdk(&["pull", "python", version, "-o", path_str(&out)])
            .success();
        let pulled = out.join(format!("python-bookworm-{version}.tar.gz"));
        assert_same_bytes(&read(&pulled), tarball, "pulled tarball");
    }
    let kept = h.installed("3.8.5").join("lib/test/fixture.tar.gz");
    assert_same_bytes(&read(&kept), &fixture, "the fixture, kept as a file");
    assert!(leftovers(&out).is_empty(), "{:?}", leftovers(&out));
    assert_nothing_left_over(&h);
}

/// An artifact-shape image (the layer is the tarball, titled so) whose manifest publishes
/// another sha256: the unpacker has read the whole layer by then and waits for the word to
/// commit, which must be "no". Such a run used to hang, so it runs against a deadline.
/// A titled layer addressed by sha512 is the tarball, as with sha256: not a layer to look
/// into, which took the tarball among this SDK's files (it outweighs the rest) for the SDK.
#[test]
fn artifact_layer_with_a_sha512_digest_installs_and_pulls() {
    let registry = Registry::start();
    let h = Harness::new(&registry.url());
    let fixture = RawTar::new()
        .file("INNER_ONLY.txt", b"not the SDK", 0o644)
        .tar_gz();
    let tarball = RawTar::new()
        .dir("bin", 0o755)
        .file(
            "bin/python",
            python_script("3.9.1", "bookworm").as_bytes(),
            0o755,
        )
        .symlink("bin/python3", "python")
        .dir("lib", 0o755)
        .file("lib/VERSION", b"3.9.1", 0o644)
        .file("lib/test/fixture.tar.gz", &fixture, 0o644)
        .tar_gz();
    let digest = ocisdk_testkit::raw::push_sha512_layer_image(
        &h.url,
        PYTHON_REPO,
        "bookworm-3.9.1",
        &tarball,
        media_types::OCI_LAYER_GZIP,
        Some("python-bookworm-3.9.1.tar.gz"),
    );
    assert!(digest.starts_with("sha512:"), "{digest}");

    let json = h
        .sdk(&["install", "python", "3.9.1", "--json"])
        .success()
        .json();
    assert_eq!(json["cached"], false, "{json}");
    assert_complete_install(&h, "3.9.1");
    let kept = h.installed("3.9.1").join("lib/test/fixture.tar.gz");
    assert_same_bytes(&read(&kept), &fixture, "the fixture, kept as a file");
    let out = h.work().join("pulled");
    let json = h
        .sdk(&["pull", "python", "3.9.1", "-o", path_str(&out), "--json"])
        .success()
        .json();
    assert_eq!(json["pull"]["shape"], "artifact", "{json}");
    assert_same_bytes(
        &read(&out.join("python-bookworm-3.9.1.tar.gz")),
        &tarball,
        "pulled tarball",
    );
    // The record holds the tarball's sha256, so the next pull is served from disk.
    let again = h
        .sdk(&["pull", "python", "3.9.1", "-o", path_str(&out), "--json"])
        .success()
        .json();
    assert_eq!(again["cached"], true, "{again}");
}

/// `--chunks` downloads an install's layer in parallel ranges (it used to be ignored: an
/// install reads the layer as it comes, which needs the bytes in order), then unpacks it.
#[test]
fn install_with_chunks_downloads_the_layer_in_ranges_in_both_shapes() {
    let registry = Registry::start();
    let h = Harness::new(&registry.url());
    // Two 8 MiB chunks' worth: the smallest layer that is split.
    let big = pseudo_random_bytes(17 << 20, 41);
    let artifact = big_sdk_tarball("3.11.30", &big);
    h.publish_bytes("3.11.30", "bookworm", false, &artifact);
    let fs_layer = push_filesystem_layer_image(
        &h,
        "3.11.31",
        &big_sdk_tarball("3.11.31", &big),
        Format::Oci,
    );
    let proxy = ScriptedServer::proxy_to(&registry.url());
    for (version, layer) in [("3.11.30", &artifact), ("3.11.31", &fs_layer)] {
        proxy.clear_requests();
        h.sdk_via(
            &proxy.url(),
            &["install", "python", version, "--chunks", "2"],
        )
        .success();
        assert_complete_install(&h, version);
        let blob = format!("/blobs/sha256:{}", sha256_hex(layer));
        let ranges: Vec<String> = proxy
            .requests()
            .iter()
            .filter(|r| r.method == "GET" && r.path().ends_with(&blob))
            .map(|r| r.header("range").unwrap_or("none").to_string())
            .collect();
        assert!(ranges.len() >= 2, "{version}: {ranges:?}");
        assert!(
            ranges.iter().all(|r| r.starts_with("bytes=")),
            "{version}: {ranges:?}"
        );
    }
    assert_nothing_left_over(&h);
}

/// Writes `len` bytes that are not the blob `layer` where a download of it resumes from: the
/// partial an earlier run would have left, but damaged (or another blob's).
fn plant_wrong_partial(h: &Harness, layer: &[u8], len: usize) {
    let dir = h.cache().join("partial-v1");
    fs::create_dir_all(&dir).unwrap();
    let part = dir.join(format!("sha256-{}.part", sha256_hex(layer)));
    fs::write(part, pseudo_random_bytes(len, 7)).unwrap();
}

/// A partial download that an earlier run completed but did not get to move into place:
/// the install verifies it without a request for the blob, and unpacks it.
#[test]
fn install_finishes_from_a_complete_partial_download_in_both_shapes() {
    let registry = Registry::start();
    let h = Harness::new(&registry.url());
    let artifact = h.publish("3.11.40", "bookworm", false);
    let tarball = sdk_tarball("3.11.41", "bookworm");
    let layer = push_filesystem_layer_image(&h, "3.11.41", &tarball, Format::Oci);
    let proxy = ScriptedServer::proxy_to(&registry.url());
    for (version, blob) in [("3.11.40", &artifact), ("3.11.41", &layer)] {
        let dir = h.cache().join("partial-v1");
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join(format!("sha256-{}.part", sha256_hex(blob))), blob).unwrap();
        proxy.clear_requests();
        h.sdk_via(&proxy.url(), &["install", "python", version])
            .success();
        assert_complete_install(&h, version);
        assert_eq!(blob_requests(&proxy), Vec::<String>::new(), "{version}");
    }
    assert_nothing_left_over(&h);
}

/// A partial download whose bytes are wrong fails the digest only at the end; the install
/// then downloads the layer again from the start, in the same run, in both image shapes.
#[test]
fn install_starts_over_when_an_earlier_partial_download_held_other_bytes() {
    let registry = Registry::start();
    let h = Harness::new(&registry.url());
    let artifact = h.publish("3.11.20", "bookworm", false);
    let layer = push_filesystem_layer_image(
        &h,
        "3.11.21",
        &sdk_tarball("3.11.21", "bookworm"),
        Format::Oci,
    );
    for (version, blob) in [("3.11.20", &artifact), ("3.11.21", &layer)] {
        plant_wrong_partial(&h, blob, blob.len() / 2);
        let run = h.sdk(&["install", "python", version]).success();
        assert!(
            run.stderr.contains("downloading from the start"),
            "{}",
            run.stderr
        );
        assert_complete_install(&h, version);
    }
    assert_nothing_left_over(&h);
}

#[test]
fn artifact_layer_that_fails_its_published_sha256_installs_nothing() {
    let registry = Registry::start();
    let h = Harness::new(&registry.url());
    let tarball = sdk_tarball("3.11.12", "bookworm");
    let file = h.work().join("python-bookworm-3.11.12.tar.gz");
    fs::write(&file, &tarball).unwrap();
    let wrong = sha256_hex(b"another tarball");
    let annotation = format!("org.oryx.sdk.sha256={wrong}");
    let reference = h.python_ref("bookworm-3.11.12");
    h.run(&[
        "push",
        path_str(&file),
        &reference,
        "--annotation",
        &annotation,
    ])
    .success();
    let manifest = skopeo::inspect_raw_json(&reference);
    assert_eq!(
        manifest["layers"][0]["annotations"]["org.opencontainers.image.title"],
        "python-bookworm-3.11.12.tar.gz",
        "not the artifact shape: {manifest}"
    );

    let mut child = h
        .sdk_command(&h.url, &["install", "python", "3.11.12"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ocisdk");
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("sdk install still running after a minute: it hangs");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let run = Run::from_output(child.wait_with_output().unwrap()).expect_code(1);
    assert!(run.stderr.contains(&wrong), "{}", run.stderr);
    assert!(!h.installed("3.11.12").exists(), "an install folder exists");
    assert_nothing_left_over(&h);
}

/// A file stands where the cache's tarball records go, so none can be written. The record
/// only spares a later download: `sdk install` still installs, in both shapes, and says
/// why; `sdk pull` still pulls (its sidecar is in the output folder), and says why.
#[test]
fn install_and_pull_survive_a_cache_record_they_cannot_write() {
    let registry = Registry::start();
    let h = Harness::new(&registry.url());
    h.publish_bytes(
        "3.11.10",
        "bookworm",
        false,
        &sdk_tarball("3.11.10", "bookworm"),
    );
    let inner = sdk_tarball("3.11.11", "bookworm");
    push_filesystem_layer_image(&h, "3.11.11", &inner, Format::Oci);
    let records = h.cache().join("sdk-records-v1");
    fs::write(&records, b"in the way").unwrap();

    for version in ["3.11.10", "3.11.11"] {
        let run = h.sdk(&["install", "python", version]).success();
        assert!(
            run.stderr.contains(path_str(&records)) && run.stderr.contains("installed"),
            "{}",
            run.stderr
        );
        assert_complete_install(&h, version);
    }

    let out = h.work().join("pulled");
    let run = h
        .sdk(&["pull", "python", "3.11.10", "-o", path_str(&out)])
        .success();
    assert!(run.stderr.contains(path_str(&records)), "{}", run.stderr);
    assert_same_bytes(
        &fs::read(out.join("python-bookworm-3.11.10.tar.gz")).unwrap(),
        &sdk_tarball("3.11.10", "bookworm"),
        "pulled tarball",
    );
    assert!(
        out.join("python-bookworm-3.11.10.tar.gz.manifest-digest")
            .exists(),
        "the pull's output includes its sidecar"
    );
}

#[test]
fn filesystem_layer_image_yields_the_inner_tarball_and_installs_like_a_published_one() {
    let registry = Registry::start();
    let h = Harness::new(&registry.url());
    let inner = sdk_tarball("3.8.0", "bookworm");
    push_filesystem_layer_image(&h, "3.8.0", &inner, Format::Oci);
    // The very same tarball published as an artifact, under another version.
    h.publish_bytes("3.8.1", "bookworm", false, &inner);

    let out = h.work().join("pulled");
    let json = h
        .sdk(&["pull", "python", "3.8.0", "-o", path_str(&out), "--json"])
        .success()
        .json();
    assert_eq!(json["pull"]["shape"], "filesystem-layer", "{json}");
    assert_same_bytes(
        &read(&out.join("python-bookworm-3.8.0.tar.gz")),
        &inner,
        "tarball out of the filesystem layer",
    );
    assert!(leftovers(&out).is_empty(), "{:?}", leftovers(&out));

    h.sdk(&["install", "python", "3.8.0"]).success();
    h.sdk(&["install", "python", "3.8.1"]).success();
    assert_eq!(
        read(&h.installed("3.8.0").join("bin/python")),
        python_script("3.8.0", "bookworm").as_bytes()
    );
    // The same files, but for the record of the image each came from.
    let files = |version: &str| -> Vec<String> {
        let all = snapshot(&h.installed(version)).into_iter();
        all.filter(|line| !line.starts_with(INSTALL_RECORD))
            .collect()
    };
    assert_eq!(files("3.8.0"), files("3.8.1"));
}

#[test]
fn docker_v2s2_filesystem_layer_image_pulls_and_installs() {
    let registry = Registry::start();
    let h = Harness::new(&registry.url());
    let inner = sdk_tarball("3.8.2", "bookworm");
    push_filesystem_layer_image(&h, "3.8.2", &inner, Format::V2s2);
    let manifest = skopeo::inspect_raw_json(&h.python_ref("bookworm-3.8.2"));
    assert_eq!(manifest["mediaType"], media_types::DOCKER_MANIFEST);

    let out = h.work().join("pulled");
    h.sdk(&["pull", "python", "3.8.2", "-o", path_str(&out)])
        .success();
    assert_same_bytes(
        &read(&out.join("python-bookworm-3.8.2.tar.gz")),
        &inner,
        "tarball out of the Docker layer",
    );
    h.sdk(&["install", "python", "3.8.2"]).success();
    assert_eq!(
        read(&h.installed("3.8.2").join("bin/python")),
        python_script("3.8.2", "bookworm").as_bytes()
    );
}
