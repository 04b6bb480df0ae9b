//! `sdk publish` and `push`: the layouts, what a published image holds, publishing again,
//! `--default`, `SOURCE_DATE_EPOCH`, and the files publish refuses.

use super::*;

// ---------------------------------------------------------------------------------------
// Layouts and what a published image holds
// ---------------------------------------------------------------------------------------

#[test]
fn acr_layout_publishes_to_and_reads_from_prefix_slash_platform() {
    let registry = Registry::start();
    let h = Harness::new(&registry.url());
    let acr = ["--prefix", "sdks", "--repo-template", "{prefix}/{platform}"];
    let tarball = sdk_tarball("3.11.4", "bookworm");
    let run = h
        .publish_with("3.11.4", "bookworm", true, &tarball, &acr)
        .success();
    let want = format!("{}/sdks/python:bookworm-3.11.4@sha256:", h.host());
    assert!(run.stdout.starts_with(&want), "{:?}", run.stdout);

    let mut tags = h
        .run(&["tags", &format!("{}/sdks/python", h.host())])
        .success()
        .lines()
        .iter()
        .map(|t| t.to_string())
        .collect::<Vec<_>>();
    tags.sort();
    assert_eq!(tags, ["bookworm-3.11.4", "bookworm-default"]);
    // Nothing went to the MCR layout's repository.
    h.run(&["tags", &h.python_ref("x")]).expect_code(3);

    let mut versions = vec!["versions", "python"];
    versions.extend_from_slice(&acr);
    assert_eq!(h.sdk(&versions).success().stdout, "3.11.4\n");
    let mut default = vec!["default", "python"];
    default.extend_from_slice(&acr);
    assert_eq!(h.sdk(&default).success().stdout, "3.11.4\n");

    // The prefix also comes from the Oryx variable.
    let root = h.root();
    let run = h
        .run_env(
            &[
                "sdk",
                "versions",
                "python",
                "--registry",
                &h.url,
                "--root",
                path_str(&root),
                "--repo-template",
                "{prefix}/{platform}",
            ],
            &[("ORYX_ACR_SDK_REPOSITORY_PREFIX", "sdks")],
        )
        .success();
    assert_eq!(run.stdout, "3.11.4\n");
}

/// Whether `text` looks like an RFC 3339 UTC time with seconds: `2024-05-01T12:34:56Z`.
fn is_rfc3339_utc(text: &str) -> bool {
    let b = text.as_bytes();
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    b.len() == 20
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && b[10] == b'T'
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19)
        && b[19] == b'Z'
}

#[test]
fn published_image_carries_oryx_labels_annotations_and_layer_title() {
    let c = catalogue();
    let h = c.harness();
    let reference = h.python_ref("bookworm-3.12.4");
    let tarball = c.tarball("bookworm-3.12.4");

    let inspected = skopeo::inspect(&reference);
    let labels = &inspected["Labels"];
    assert_eq!(labels["org.oryx.version"], "3.12.4", "{inspected}");
    assert_eq!(labels["org.oryx.platform"], "python", "{inspected}");
    assert_eq!(labels["org.oryx.os-flavor"], "bookworm", "{inspected}");

    let manifest = skopeo::inspect_raw_json(&reference);
    let annotations = &manifest["annotations"];
    assert_eq!(annotations["org.oryx.sdk.version"], "3.12.4", "{manifest}");
    assert_eq!(
        annotations["org.oryx.sdk.sha256"],
        sha256_hex(tarball),
        "{manifest}"
    );
    let created = annotations["org.opencontainers.image.created"]
        .as_str()
        .unwrap_or_else(|| panic!("no creation time: {manifest}"));
    assert!(is_rfc3339_utc(created), "created = {created:?}");
    let layers = manifest["layers"].as_array().expect("layers");
    assert_eq!(layers.len(), 1, "{manifest}");
    assert_eq!(layers[0]["digest"], digest_of(tarball));
    assert_eq!(
        layers[0]["annotations"]["org.opencontainers.image.title"],
        "python-bookworm-3.12.4.tar.gz"
    );

    // The default tag is the same manifest.
    let digest = h.run(&["digest", &reference]).success().stdout;
    let default = h
        .run(&["digest", &h.python_ref("bookworm-default")])
        .success()
        .stdout;
    assert_eq!(digest, default);

    // A standard tool can copy it, and gets the tarball as the layer.
    let layout = h.work().join("layout");
    let copied = skopeo::copy_to_layout(&reference, &layout, "sdk");
    assert_eq!(copied, digest.trim());
    let hex = sha256_hex(tarball);
    assert_same_bytes(
        &read(&layout.join("blobs/sha256").join(hex)),
        tarball,
        "layer copied by skopeo",
    );
}

/// Publishing the same file again (a retried CI job) gives the same manifest: its
/// `created` is the file's time, not the publishing's, so the tag does not move and a pull
/// made in between stays current.
#[test]
fn publishing_the_same_file_again_changes_nothing() {
    let registry = Registry::start();
    let h = Harness::new(&registry.url());
    let file = h.work().join("python-bookworm-3.12.7.tar.gz");
    fs::write(&file, sdk_tarball("3.12.7", "bookworm")).unwrap();
    let made = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000_000);
    fs::File::options()
        .write(true)
        .open(&file)
        .unwrap()
        .set_modified(made)
        .unwrap();
    let publish = ["publish", "python", "3.12.7", path_str(&file), "--default"];
    h.sdk(&publish).success();
    let digest = |tag: &str| h.run(&["digest", &h.python_ref(tag)]).success().stdout;
    let first = digest("bookworm-3.12.7");
    assert_eq!(created(&h, "bookworm-3.12.7"), "2001-09-09T01:46:40Z");
    let out = h.work().join("pulled");
    let pull = ["pull", "python", "3.12.7", "-o", path_str(&out), "--json"];
    h.sdk(&pull).success();

    h.sdk(&publish).success();
    assert_eq!(digest("bookworm-3.12.7"), first);
    assert_eq!(digest("bookworm-default"), first);
    assert_eq!(h.sdk(&pull).success().json()["cached"], true);
}

/// With `--default`, text mode says on stderr that `{os}-default` now points at the version
/// (`--json` lists it in `tags`); stdout keeps its one line, the version's reference, so a
/// script reading it is not disturbed. It used to say nothing of the default.
#[test]
fn publish_default_says_that_the_default_tag_now_points_at_the_version() {
    let registry = Registry::start();
    let h = Harness::new(&registry.url());
    let tarball = sdk_tarball("3.12.7", "bookworm");
    let run = h
        .publish_with("3.12.7", "bookworm", true, &tarball, &[])
        .success();
    let digest = h
        .run(&["digest", &h.python_ref("bookworm-default")])
        .success()
        .stdout;
    let digest = digest.trim_end();
    assert_eq!(
        run.stdout,
        format!("{}@{digest}\n", h.python_ref("bookworm-3.12.7"))
    );
    let said = format!(
        "{} now points at python 3.12.7 ({digest})",
        h.python_ref("bookworm-default")
    );
    assert!(run.stderr.contains(&said), "{}", run.stderr);

    // Without --default nothing is said of it; with -q nothing at all.
    let run = h
        .publish_with("3.12.8", "bookworm", false, &tarball, &[])
        .success();
    assert!(!run.stderr.contains("bookworm-default"), "{}", run.stderr);
    let run = h
        .publish_with("3.12.9", "bookworm", true, &tarball, &["-q"])
        .success();
    assert_eq!(run.stderr, "");
}

/// `SOURCE_DATE_EPOCH` dates a published SDK instead of its file's time. The CLI reads it
/// and hands it to the library, which reads no environment.
#[test]
fn source_date_epoch_dates_a_published_sdk() {
    let registry = Registry::start();
    let h = Harness::new(&registry.url());
    let file = h.work().join("python-bookworm-3.12.7.tar.gz");
    fs::write(&file, sdk_tarball("3.12.7", "bookworm")).unwrap();
    let root = h.root();
    let publish = [
        "sdk",
        "publish",
        "python",
        "3.12.7",
        path_str(&file),
        "--registry",
        &h.url,
        "--root",
        path_str(&root),
    ];
    h.run_env(&publish, &[("SOURCE_DATE_EPOCH", "1600000000")])
        .success();
    assert_eq!(created(&h, "bookworm-3.12.7"), "2020-09-13T12:26:40Z");
}

/// The `org.opencontainers.image.created` annotation of python's manifest under `tag`.
fn created(h: &Harness, tag: &str) -> String {
    let manifest = h.run(&["manifest", &h.python_ref(tag)]).success();
    let manifest: serde_json::Value = serde_json::from_str(&manifest.stdout).unwrap();
    manifest["annotations"]["org.opencontainers.image.created"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// When the version tag is pushed but the default tag is refused, the error says the version
/// is published and that publishing again is safe, in text and in `--json`; and publishing
/// again does set the default, on the same manifest. It used to name the default tag only,
/// leaving the user to guess what the registry now held.
#[test]
fn a_default_tag_that_fails_after_the_version_tag_says_the_version_is_published() {
    let registry = Registry::start();
    let upstream = registry.url();
    // Only the PUT of the default tag fails; everything else reaches the registry.
    let proxy = ScriptedServer::start(move |req| {
        let default_put = req.method == "PUT"
            && req.path() == format!("/v2/{PYTHON_REPO}/manifests/bookworm-default");
        if default_put {
            ScriptedResponse::new(500)
        } else {
            forward(req, &upstream)
        }
    });
    let h = Harness::new(&registry.url());
    let file = h.work().join("python-bookworm-3.12.7.tar.gz");
    fs::write(&file, sdk_tarball("3.12.7", "bookworm")).unwrap();
    let publish = [
        "publish",
        "python",
        "3.12.7",
        path_str(&file),
        "--default",
        "--retries",
        "0",
    ];

    let run = h.sdk_via(&proxy.url(), &publish).expect_code(6);
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    let version = h.run(&["digest", &h.python_ref("bookworm-3.12.7")]);
    let version = version.success().stdout.trim().to_string();
    assert!(
        run.stderr.contains("registry answered HTTP 500")
            && run.stderr.contains(&format!(
                "the manifest was pushed ({version}) and bookworm-3.12.7 points at it, but \
                 bookworm-default does not"
            )),
        "{}",
        run.stderr
    );
    let hint = "hint: bookworm-3.12.7 is in place; running the same command again is safe";
    assert!(run.stderr.contains(hint), "{}", run.stderr);
    h.run(&["digest", &h.python_ref("bookworm-default")])
        .expect_code(3);

    let mut json = publish.to_vec();
    json.push("--json");
    let error = h.sdk_via(&proxy.url(), &json).expect_code(6).error_json();
    let message = error["message"].as_str().unwrap();
    assert!(
        message.contains(&format!(
            "pushed ({version}) and bookworm-3.12.7 points at it"
        )),
        "{error}"
    );
    assert!(
        error["hint"]
            .as_str()
            .is_some_and(|h| h.contains("running the same command again is safe")),
        "{error}"
    );
    assert_eq!(error["reference"], "bookworm-default", "{error}");
    assert_eq!(error["status"], 500, "{error}");
    assert_eq!(error["kind"], "unreachable", "{error}");

    // Publishing again, the default is set and the version has not moved.
    h.sdk(&publish).success();
    let digest = |tag: &str| {
        let run = h.run(&["digest", &h.python_ref(tag)]).success();
        run.stdout.trim().to_string()
    };
    assert_eq!(digest("bookworm-3.12.7"), version);
    assert_eq!(digest("bookworm-default"), version);
}

/// `sdk publish` refuses a file that `sdk install` would always refuse, as a usage error
/// (exit 2) naming the file and what is wrong, before anything is uploaded: a file that is
/// not a tar (random bytes named `.tar.gz` or `.tar`, a gzip of no tar), and an archive with
/// nothing to install (a zero-byte file, a tar of nothing, one of only `./`). A version
/// already published keeps its tag. `ocisdk push` still pushes such files: any file is an
/// artifact.
#[test]
fn publish_refuses_a_file_install_would_refuse_and_uploads_nothing() {
    let registry = Registry::start();
    let h = Harness::new(&registry.url());
    let tarball = h.publish("3.12.0", "bookworm", false);
    let digest = |tag: &str| h.run(&["digest", &h.python_ref(tag)]).success().stdout;
    let published = digest("bookworm-3.12.0");

    let random = pseudo_random_bytes(4096, 21);
    let not_a_tar = "cannot read the archive: it is corrupt, truncated or unreadable";
    let empty = "the archive is empty: it holds no files";
    let cases = [
        ("gzip-of-no-tar.tar.gz", gzip(&random), not_a_tar),
        ("random.tar", random.clone(), not_a_tar),
        ("random.tar.gz", random.clone(), not_a_tar),
        ("no-entries.tar.gz", RawTar::new().tar_gz(), empty),
        ("zero-bytes.tar.gz", Vec::new(), empty),
        ("zero-bytes.tar", Vec::new(), empty),
        (
            "only-root.tar.zst",
            RawTar::new().dir("./", 0o755).tar_zst(),
            empty,
        ),
    ];
    for (name, bytes, what) in &cases {
        let file = h.work().join(name);
        fs::write(&file, bytes).unwrap();
        let message = format!(
            "cannot publish {}: sdk install would refuse it: {what}",
            path_str(&file)
        );
        for version in ["3.12.1", "3.12.0"] {
            let publish = ["publish", "python", version, path_str(&file), "--default"];
            let run = h.sdk(&publish).expect_code(2);
            assert!(run.stderr.contains(&message), "{name}: {}", run.stderr);
            assert!(run.stdout.is_empty(), "{name}: {:?}", run.stdout);
        }
        let json = ["publish", "python", "3.12.1", path_str(&file), "--json"];
        let error = h.sdk(&json).expect_code(2).error_json();
        assert_eq!(error["kind"], "usage", "{name}: {error}");
        assert_eq!(error["exit_code"], 2, "{name}: {error}");
        assert!(
            error["message"].as_str().unwrap().starts_with(&message),
            "{name}: {error}"
        );
        assert!(
            !registry.blob_data_path(&digest_of(bytes)).exists(),
            "{name} was uploaded"
        );
    }
    let tags = h.run(&["tags", &format!("{}/{PYTHON_REPO}", h.host())]);
    assert_eq!(tags.success().lines(), ["bookworm-3.12.0"]);
    assert_eq!(digest("bookworm-3.12.0"), published);

    // Not `ocisdk push`: a file is an artifact, whatever it holds, except that a `.tar.gz`
    // must be gzip, as the layer's media type will say (push reads it for the config's
    // diff_id): one that is not is a usage error that names the file, and nothing is sent.
    let no_gzip = ["random.tar.gz", "zero-bytes.tar.gz"];
    for name in no_gzip {
        let file = h.work().join(name);
        let reference = format!("{}/files/{}:1", h.host(), name.replace('.', "-"));
        let run = h.run(&["push", path_str(&file), &reference]).expect_code(2);
        let message = format!(
            "cannot push {}: its name says gzip, but it is not a gzip stream",
            path_str(&file)
        );
        assert!(run.stderr.contains(&message), "{name}: {}", run.stderr);
        assert!(
            !registry.blob_data_path(&digest_of(&read(&file))).exists(),
            "{name} was uploaded"
        );
    }
    for (name, bytes, _) in cases.iter().filter(|(name, ..)| !no_gzip.contains(name)) {
        let reference = format!("{}/files/{}:1", h.host(), name.replace('.', "-"));
        h.run(&["push", path_str(&h.work().join(name)), &reference])
            .success();
        assert!(
            registry.blob_data_path(&digest_of(bytes)).exists(),
            "{name}"
        );
    }
    let out = h.work().join("pulled");
    h.sdk(&["pull", "python", "3.12.0", "-o", path_str(&out)])
        .success();
    assert_same_bytes(
        &read(&out.join("python-bookworm-3.12.0.tar.gz")),
        &tarball,
        "the published tarball",
    );
}

// ---------------------------------------------------------------------------------------
// push
// ---------------------------------------------------------------------------------------

#[test]
fn push_with_label_annotation_and_artifact_type_round_trips() {
    let registry = Registry::start();
    let h = Harness::new(&registry.url());
    let file = h.work().join("tool.tar.gz");
    let bytes = sdk_tarball("1.0", "any");
    fs::write(&file, &bytes).unwrap();
    let reference = format!("{}/tools/thing:1.0", h.host());

    let run = h
        .run(&[
            "push",
            path_str(&file),
            &reference,
            "--label",
            "a=b",
            "--annotation",
            "c=d",
            "--artifact-type",
            "application/vnd.test.tool",
        ])
        .success();
    let digest = run.stdout.trim().rsplit('@').next().unwrap().to_string();
    assert!(digest.starts_with("sha256:"), "{:?}", run.stdout);

    let config = h.run(&["config", &reference, "--json"]).success().json();
    assert_eq!(config["labels"]["a"], "b", "{config}");
    assert_eq!(config["annotations"]["c"], "d", "{config}");
    assert_eq!(config["manifestDigest"], digest, "{config}");

    let manifest = skopeo::inspect_raw_json(&reference);
    assert_eq!(manifest["artifactType"], "application/vnd.test.tool");

    let pulled = h.work().join("pulled.tar.gz");
    h.run(&["pull", &reference, "-o", path_str(&pulled)])
        .success();
    assert_same_bytes(&read(&pulled), &bytes, "pulled file");
}
