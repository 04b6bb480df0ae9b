//! The .NET SDKs: `{sdk}_{runtime}` versions published, resolved, installed, listed,
//! uninstalled and defaulted.

use super::*;

/// The sources, sorted, of the images `sdk mirror ARGS… --to oci:WORK/mirror --dry-run`
/// through `url` would copy.
fn mirror_sources(h: &Harness, url: &str, args: &[&str]) -> Vec<String> {
    let to = format!("oci:{}", path_str(&h.work().join("mirror")));
    let mut all = vec!["mirror"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--to", &to, "--dry-run", "--json"]);
    let report = h.sdk_via(url, &all).success().json();
    let mut sources: Vec<String> = report["images"]
        .as_array()
        .expect("images")
        .iter()
        .map(|image| image["source"].as_str().unwrap().to_owned())
        .collect();
    sources.sort();
    sources
}

/// `HOST/oryx/dotnet-sdk:{tag}`.
fn dotnet_ref(h: &Harness, tag: &str) -> String {
    format!("{}/{DOTNET_REPO}:{tag}", h.host())
}

/// `sdk publish dotnet 8.0.100_8.0.0` publishes under `{os}-8.0.100_8.0.0`, the tag Oryx gives
/// .NET: labelled as every platform's image (`org.oryx.version` and the `org.oryx.sdk.version`
/// annotation name the SDK version, the one `sdk default` reads and resolving matches) and
/// with the two .NET labels naming the SDK and its runtime. `--default` points
/// `{os}-default` at it, and the default resolves and installs it. It used to refuse the
/// version with exit code 2, leaving `ocisdk push` by hand.
#[test]
fn publish_of_a_dotnet_version_tags_it_sdk_underscore_runtime_with_the_dotnet_labels() {
    let registry = Registry::start();
    let h = Harness::new(&registry.url());
    let run = publish_dotnet(&h, "8.0.100_8.0.0", &["--default"]).success();
    let reference = dotnet_ref(&h, "bookworm-8.0.100_8.0.0");
    let digest = h.run(&["digest", &reference]).success().stdout;
    assert_eq!(run.stdout, format!("{reference}@{digest}"));
    let said = format!(
        "{} now points at dotnet 8.0.100_8.0.0 ({})",
        dotnet_ref(&h, "bookworm-default"),
        digest.trim_end()
    );
    assert!(run.stderr.contains(&said), "{}", run.stderr);
    let default = h.run(&["digest", &dotnet_ref(&h, "bookworm-default")]);
    assert_eq!(default.success().stdout, digest);

    let labels = &skopeo::inspect(&reference)["Labels"];
    let want = serde_json::json!({
        "org.oryx.dotnet-runtime-version": "8.0.0",
        "org.oryx.dotnet-sdk-version": "8.0.100",
        "org.oryx.os-flavor": "bookworm",
        "org.oryx.platform": "dotnet",
        "org.oryx.version": "8.0.100",
    });
    assert_eq!(labels, &want);
    let manifest = skopeo::inspect_raw_json(&reference);
    assert_eq!(manifest["annotations"]["org.oryx.sdk.version"], "8.0.100");

    let versions = h.sdk(&["versions", "dotnet", "--json"]).success().json();
    let want = serde_json::json!([
        {"runtime": "8.0.0", "tag": "bookworm-8.0.100_8.0.0", "version": "8.0.100"}
    ]);
    assert_eq!(versions, want);
    assert_eq!(
        h.sdk(&["versions", "dotnet"]).success().stdout,
        "8.0.100_8.0.0\n"
    );
    assert_eq!(h.sdk(&["default", "dotnet"]).success().stdout, "8.0.100\n");
    let resolved = h.sdk(&["resolve", "dotnet", "default", "--json"]).success();
    assert_eq!(resolved.json()["tag"], "bookworm-8.0.100_8.0.0");
    let installed = h.sdk(&["install", "dotnet", "default", "--json"]).success();
    assert_eq!(installed.json()["version"], "8.0.100");
    let lib_version = h.root().join("dotnet/8.0.100/lib/VERSION");
    assert_eq!(read(&lib_version), b"8.0.100");

    // --json gives the same reference, and lists both tags.
    let json = publish_dotnet(&h, "8.0.100_8.0.0", &["--default", "--json"]).success();
    let json = json.json();
    assert_eq!(json["reference"], reference, "{json}");
    assert_eq!(json["manifest_digest"], digest.trim_end(), "{json}");
    let tags = serde_json::json!(["bookworm-8.0.100_8.0.0", "bookworm-default"]);
    assert_eq!(json["tags"], tags, "{json}");
}

/// A version with a `_` is .NET's `{sdk}_{runtime}` or nothing: a side missing, a second `_`
/// or a side that is no version is a usage error (exit code 2) that says which, and nothing
/// is uploaded. They used to be refused as a version with an "unexpected character '_'",
/// which did not say that the form exists.
#[test]
fn publish_refuses_a_dotnet_version_that_is_not_sdk_underscore_runtime() {
    let registry = Registry::start();
    let h = Harness::new(&registry.url());
    let form = r#"(the .NET form is {sdk}_{runtime}, like "8.0.100_8.0.0")"#;
    let cases = [
        ("8.0.100_", r#"no runtime version after "_""#),
        ("_8.0.0", r#"no SDK version before "_""#),
        ("8.0.100_8.0.0_1", r#"more than one "_""#),
        (
            "8.0.100_8",
            r#"runtime version "8": needs at least two numeric parts, like "3.11""#,
        ),
        (
            "8.0.x_8.0.0",
            r#"SDK version "8.0.x": part "x" is not a number"#,
        ),
    ];
    for (version, reason) in cases {
        let message = format!("error: invalid version {version:?}: {reason} {form}\n");
        let run = publish_dotnet(&h, version, &[]).expect_code(2);
        assert_eq!(run.stderr, message, "{version}");
        assert_eq!(run.stdout, "", "{version}");
        let error = publish_dotnet(&h, version, &["--json"]).expect_code(2);
        let error = error.error_json();
        assert_eq!(error["kind"], "usage", "{version}: {error}");
    }
    let tags = h.run(&["tags", &format!("{}/{DOTNET_REPO}", h.host())]);
    tags.expect_code(3);
}

/// A published .NET SDK is found by either spelling. `8.0.100_8.0.0`, as `sdk versions`
/// lists it, is looked up by its tag alone (one manifest GET, which the install reuses);
/// `8.0.100`, the SDK version, by the listing, as before. Both install into
/// `ROOT/dotnet/8.0.100`, the folder an SDK version names, so the second finds it installed,
/// and `sdk pull` names the tarball for the SDK version too. The `{sdk}_{runtime}` spelling
/// used to be an invalid spec (exit code 2).
#[test]
fn a_published_dotnet_sdk_installs_by_its_sdk_version_and_by_sdk_underscore_runtime() {
    let registry = Registry::start();
    let h = Harness::new(&registry.url());
    publish_dotnet(&h, "8.0.100_8.0.0", &[]).success();
    let tarball = read(&h.work().join("dotnet-bookworm-8.0.100.tar.gz"));
    let proxy = ScriptedServer::proxy_to(&registry.url());
    let sdk = |args: &[&str]| {
        proxy.clear_requests();
        let json = h.sdk_via(&proxy.url(), args).success().json();
        (json, requests_to(&proxy.requests(), "/v2/"))
    };
    let tag = "bookworm-8.0.100_8.0.0";
    let manifest_get = format!("GET /v2/{DOTNET_REPO}/manifests/{tag}");
    let blob_get = format!("GET /v2/{DOTNET_REPO}/blobs/{}", digest_of(&tarball));

    let (resolved, asked) = sdk(&["resolve", "dotnet", "8.0.100_8.0.0", "--json"]);
    let want = serde_json::json!({
        "os": "bookworm",
        "platform": "dotnet",
        "reference": format!("{}/{DOTNET_REPO}:{tag}", proxy.host()),
        "tag": tag,
        "version": "8.0.100",
    });
    assert_eq!(resolved, want);
    assert_eq!(asked, [manifest_get.as_str()]);
    let (resolved, _) = sdk(&["resolve", "dotnet", "8.0.100", "--json"]);
    assert_eq!(resolved, want);

    let (installed, asked) = sdk(&["install", "dotnet", "8.0.100_8.0.0", "--json"]);
    let path = h.root().join("dotnet/8.0.100");
    let want = serde_json::json!({
        "cached": false,
        "manifest_digest": h.run(&["digest", &dotnet_ref(&h, tag)]).success().stdout.trim_end(),
        "path": path_str(&path),
        "platform": "dotnet",
        "runtime": "8.0.0",
        "version": "8.0.100",
    });
    assert_eq!(installed, want);
    assert_eq!(read(&path.join("lib/VERSION")), b"8.0.100");
    assert!(path.join(SENTINEL).is_file());
    assert_eq!(asked, [manifest_get.as_str(), &blob_get]);

    let (installed, _) = sdk(&["install", "dotnet", "8.0.100", "--json"]);
    assert_eq!(installed["cached"], true, "{installed}");
    assert_eq!(installed["path"], path_str(&path), "{installed}");
    let both = [
        "install",
        "dotnet",
        "8.0.100",
        "8.0.100_8.0.0",
        "--force",
        "--json",
    ];
    let (installed, _) = sdk(&both);
    // One install, reported for each spelling.
    assert_eq!(installed[0], installed[1], "{installed}");
    assert_eq!(installed[0]["path"], path_str(&path), "{installed}");
    assert_eq!(installed[0]["cached"], false, "{installed}");

    let out = h.work().join("pulled");
    let pull = [
        "pull",
        "dotnet",
        "8.0.100_8.0.0",
        "-o",
        path_str(&out),
        "--json",
    ];
    let (pulled, _) = sdk(&pull);
    let written = out.join("dotnet-bookworm-8.0.100.tar.gz");
    assert_eq!(pulled["pull"]["path"], path_str(&written), "{pulled}");
    assert_same_bytes(&read(&written), &tarball, "pulled .NET tarball");
}

/// A .NET spec names the runtime as well: only that runtime's tags match it, when it is
/// resolved by the listing (its own tag spelled otherwise, `8.0.100_8.0.1.0`) and when
/// `sdk mirror` picks the tags to copy. When none matches, the nearest are named as the tags
/// are, runtime and all. A spec with an empty side, a second `_` or a side that is no version
/// is a usage error that says which.
#[test]
fn a_dotnet_spec_matches_only_the_tags_of_its_runtime() {
    let registry = Registry::start();
    let h = Harness::new(&registry.url());
    for version in ["8.0.100_8.0.0", "8.0.100_8.0.1", "8.0.200_8.0.1"] {
        publish_dotnet(&h, version, &[]).success();
    }
    let resolve = |spec: &str| h.sdk(&["resolve", "dotnet", spec, "--json"]);
    let resolved = resolve("8.0.100_8.0.1.0").success().json();
    assert_eq!(resolved["tag"], "bookworm-8.0.100_8.0.1", "{resolved}");
    assert_eq!(resolved["version"], "8.0.100", "{resolved}");
    let resolved = resolve("8.0.100_8.0.0").success().json();
    assert_eq!(resolved["tag"], "bookworm-8.0.100_8.0.0", "{resolved}");

    let run = h
        .sdk(&["resolve", "dotnet", "8.0.100_8.0.2"])
        .expect_code(3);
    let message = format!(
        "error: no dotnet version matches \"8.0.100_8.0.2\" for bookworm in {}/{DOTNET_REPO}; \
         nearest: 8.0.100_8.0.0, 8.0.100_8.0.1, 8.0.200_8.0.1\n",
        h.host()
    );
    assert_eq!(run.stderr, message);

    let sources = mirror_sources(&h, &h.url, &["dotnet", "8.0.100_8.0.1"]);
    assert_eq!(sources, [dotnet_ref(&h, "bookworm-8.0.100_8.0.1")]);

    let form = r#"(the .NET form is {sdk}_{runtime}, like "8.0.100_8.0.0")"#;
    for (spec, reason) in [
        ("8.0.100_", r#"no runtime version after "_""#),
        ("_8.0.0", r#"no SDK version before "_""#),
        ("8.0.100_8.0.0_1", r#"more than one "_""#),
        (
            ">=8.0_8.0.0",
            r#"SDK version ">=8.0": part ">=8" is not a number"#,
        ),
    ] {
        let message = format!("error: invalid version spec {spec:?}: {reason} {form}\n");
        for command in ["resolve", "install"] {
            let run = h.sdk(&[command, "dotnet", spec]).expect_code(2);
            assert_eq!(run.stderr, message, "{command} {spec}");
        }
    }
}

/// The install record of `ROOT/{platform}/{version}`, parsed.
fn install_record(h: &Harness, platform: &str, version: &str) -> serde_json::Value {
    let path = h.root().join(platform).join(version).join(INSTALL_RECORD);
    serde_json::from_slice(&read(&path)).unwrap()
}

/// The entry of `sdk list-installed --json` for `platform` `version`.
fn listed(h: &Harness, platform: &str, version: &str) -> serde_json::Value {
    let all = h.sdk(&["list-installed", "--json"]).success().json();
    let entry = all
        .as_array()
        .unwrap()
        .iter()
        .find(|entry| entry["platform"] == platform && entry["version"] == version);
    entry
        .cloned()
        .unwrap_or_else(|| panic!("{platform} {version} not in {all}"))
}

/// An install records the image it came from in its folder (`.ocisdk-install.json`, written
/// with the sentinel, which stays empty): the reference with its tag, the manifest digest,
/// the SDK version and the .NET runtime (null for other platforms). `list-installed --json`
/// gives the digest and runtime from it; an install without a record (made before records
/// were kept) is listed as it was, without either.
#[test]
fn an_install_records_its_image_and_list_installed_shows_its_digest_and_runtime() {
    let registry = Registry::start();
    let h = Harness::new(&registry.url());
    publish_dotnet(&h, "8.0.100_8.0.0", &[]).success();
    h.publish("3.12.1", "bookworm", false);
    h.sdk(&["install", "dotnet", "8.0.100_8.0.0"]).success();
    h.sdk(&["install", "python", "3.12.1"]).success();
    let digest_of_tag = |reference: &str| h.run(&["digest", reference]).success().stdout;
    let dotnet = dotnet_ref(&h, "bookworm-8.0.100_8.0.0");
    let dotnet_digest = digest_of_tag(&dotnet);
    let python = h.python_ref("bookworm-3.12.1");
    let python_digest = digest_of_tag(&python);

    let record = install_record(&h, "dotnet", "8.0.100");
    let want = serde_json::json!({
        "image": dotnet,
        "manifest_digest": dotnet_digest.trim_end(),
        "version": "8.0.100",
        "runtime": "8.0.0",
    });
    assert_eq!(record, want);
    assert_eq!(read(&h.root().join("dotnet/8.0.100").join(SENTINEL)), b"");
    let record = install_record(&h, "python", "3.12.1");
    assert_eq!(record["image"], python.as_str(), "{record}");
    assert_eq!(record["runtime"], serde_json::Value::Null, "{record}");

    let entry = listed(&h, "dotnet", "8.0.100");
    assert_eq!(
        entry["manifest_digest"],
        dotnet_digest.trim_end(),
        "{entry}"
    );
    assert_eq!(entry["runtime"], "8.0.0", "{entry}");
    let entry = listed(&h, "python", "3.12.1");
    assert_eq!(
        entry["manifest_digest"],
        python_digest.trim_end(),
        "{entry}"
    );
    assert_eq!(entry["runtime"], serde_json::Value::Null, "{entry}");

    fs::remove_file(h.root().join("dotnet/8.0.100").join(INSTALL_RECORD)).unwrap();
    let entry = listed(&h, "dotnet", "8.0.100");
    let path = h.root().join("dotnet/8.0.100");
    let before = serde_json::json!({
        "cached": true,
        "path": path_str(&path),
        "platform": "dotnet",
        "version": "8.0.100",
    });
    assert_eq!(entry, before);
}

/// `ROOT/dotnet/8.0.100` installed from runtime 8.0.0 is not `8.0.100_8.0.1`: installing that
/// is refused (exit code 2, kind `usage`), naming the runtime installed and `--force`, and
/// changes nothing, as is `8.0.100` alone, which resolves to the highest runtime's tag,
/// 8.0.1's. `--force` replaces it. `8.0.100_8.0.0` finds it installed; so does
/// `8.0.100_8.0.1` once the folder has no record (an install made before records were
/// kept), as before. Both used to find it installed, reporting `cached`.
#[test]
fn installing_another_runtime_of_an_installed_dotnet_sdk_version_is_refused_unless_forced() {
    let registry = Registry::start();
    let h = Harness::new(&registry.url());
    for version in ["8.0.100_8.0.0", "8.0.100_8.0.1"] {
        publish_dotnet(&h, version, &[]).success();
    }
    h.sdk(&["install", "dotnet", "8.0.100_8.0.0"]).success();
    let folder = h.root().join("dotnet/8.0.100");
    let record = install_record(&h, "dotnet", "8.0.100");
    assert_eq!(record["runtime"], "8.0.0", "{record}");

    for spec in ["8.0.100_8.0.1", "8.0.100"] {
        let run = h.sdk(&["install", "dotnet", spec]).expect_code(2);
        let message = format!(
            "error: dotnet 8.0.100 is installed in {} with runtime 8.0.0, not runtime 8.0.1 as \
             asked: nothing was changed; --force replaces it\n",
            folder.display()
        );
        assert_eq!(run.stderr, message, "{spec}");
        let error = h
            .sdk(&["install", "dotnet", spec, "--json"])
            .expect_code(2)
            .error_json();
        assert_eq!(error["kind"], "usage", "{error}");
        assert_eq!(install_record(&h, "dotnet", "8.0.100"), record, "{spec}");
    }
    let same = h.sdk(&["install", "dotnet", "8.0.100_8.0.0", "--json"]);
    assert_eq!(same.success().json()["cached"], true);

    let forced = ["install", "dotnet", "8.0.100_8.0.1", "--force", "--json"];
    let installed = h.sdk(&forced).success().json();
    assert_eq!(installed["cached"], false, "{installed}");
    let record = install_record(&h, "dotnet", "8.0.100");
    assert_eq!(record["runtime"], "8.0.1", "{record}");
    assert_eq!(record["manifest_digest"], installed["manifest_digest"]);
    assert!(folder.join(SENTINEL).is_file());

    fs::remove_file(folder.join(INSTALL_RECORD)).unwrap();
    let old = h.sdk(&["install", "dotnet", "8.0.100_8.0.0", "--json"]);
    assert_eq!(old.success().json()["cached"], true);
}

/// Publishes dotnet `version` (`{sdk}_{runtime}`) for bookworm from a tarball of its own,
/// [`sdk_tarball`] of the SDK version whose `bin/python` names the runtime, so that two
/// runtimes of one SDK version are told apart by their files and their blobs; returns it.
fn publish_dotnet_runtime(h: &Harness, version: &str) -> Vec<u8> {
    let (sdk, runtime) = version.split_once('_').expect("{sdk}_{runtime}");
    let tarball = sdk_tarball(sdk, &format!("runtime {runtime}"));
    let dir = h.work().join(version);
    fs::create_dir_all(&dir).unwrap();
    let file = dir.join(format!("dotnet-bookworm-{sdk}.tar.gz"));
    fs::write(&file, &tarball).unwrap();
    h.sdk(&["publish", "dotnet", version, path_str(&file)])
        .success();
    tarball
}

/// Installs of two runtimes of one .NET SDK version (8.0.100_8.0.0 and 8.0.100_8.0.1, of
/// different contents) keep one cached tarball each, named for the runtime too: installing
/// the first again, after the second, takes it from the cache, without a blob request, and
/// installs its files. They used to share the SDK version's file, each install of the other
/// runtime replacing it, so that one downloaded again every time.
#[test]
fn two_runtimes_of_one_dotnet_sdk_version_are_cached_side_by_side() {
    let registry = Registry::start();
    let h = Harness::new(&registry.url());
    let first = publish_dotnet_runtime(&h, "8.0.100_8.0.0");
    let second = publish_dotnet_runtime(&h, "8.0.100_8.0.1");
    let proxy = ScriptedServer::proxy_to(&registry.url());
    let python = h.root().join("dotnet/8.0.100/bin/python");
    let install = |spec: &str| {
        proxy.clear_requests();
        let args = ["install", "dotnet", spec, "--force", "--json"];
        let installed = h.sdk_via(&proxy.url(), &args).success().json();
        assert_eq!(installed["cached"], false, "{spec}: {installed}");
        blob_requests(&proxy)
    };
    let blob_get = |tarball: &[u8]| format!("GET /v2/{DOTNET_REPO}/blobs/{}", digest_of(tarball));

    assert_eq!(install("8.0.100_8.0.0"), [blob_get(&first)]);
    assert_eq!(install("8.0.100_8.0.1"), [blob_get(&second)]);
    assert_eq!(
        read(&python),
        python_script("8.0.100", "runtime 8.0.1").as_bytes()
    );
    assert_eq!(install("8.0.100_8.0.0"), Vec::<String>::new());
    assert_eq!(
        read(&python),
        python_script("8.0.100", "runtime 8.0.0").as_bytes()
    );

    for (runtime, tarball) in [("8.0.0", &first), ("8.0.1", &second)] {
        let name = format!("dotnet-bookworm-8.0.100_{runtime}.tar.gz");
        let cached = find_files(&h.cache(), &name);
        assert_eq!(cached.len(), 1, "{name}: {cached:?}");
        assert_same_bytes(&read(&cached[0]), tarball, &name);
    }
}

/// `sdk uninstall dotnet 8.0.100_8.0.0`, as `sdk versions` lists it, removes
/// `ROOT/dotnet/8.0.100` when that came from runtime 8.0.0's image, or has no record to say
/// (an install made before records were kept); installed from another runtime, it is not
/// installed (exit code 3), and the error names the runtime that is. It used to be refused
/// whatever was installed, naming only 8.0.100.
#[test]
fn uninstall_of_a_dotnet_sdk_underscore_runtime_removes_its_sdk_versions_folder() {
    let registry = Registry::start();
    let h = Harness::new(&registry.url());
    publish_dotnet(&h, "8.0.100_8.0.0", &[]).success();
    h.sdk(&["install", "dotnet", "8.0.100_8.0.0"]).success();
    let folder = h.root().join("dotnet/8.0.100");

    let run = h
        .sdk(&["uninstall", "dotnet", "8.0.100_8.0.1"])
        .expect_code(3);
    let message = format!(
        "error: dotnet 8.0.100_8.0.1: not installed in {} (see sdk list-installed); nothing \
         was removed; nearest installed: 8.0.100_8.0.0\n",
        h.root().display()
    );
    assert_eq!(run.stderr, message);
    assert!(folder.join(SENTINEL).is_file());

    let run = h.sdk(&["uninstall", "dotnet", "8.0.100_8.0.0"]).success();
    assert_eq!(run.stdout, format!("{}\n", folder.display()));
    assert!(!folder.exists());

    h.sdk(&["install", "dotnet", "8.0.100_8.0.0"]).success();
    fs::remove_file(folder.join(INSTALL_RECORD)).unwrap();
    let removed = h
        .sdk(&["uninstall", "dotnet", "8.0.100_8.0.0", "--json"])
        .success()
        .json();
    assert_eq!(removed[0]["version"], "8.0.100", "{removed}");
    assert!(!folder.exists());
}

/// A proxy to `upstream` that lists tags sorted (with `reverse`, in reverse): a CNCF
/// distribution registry lists them in the order of its folder entries, which a test cannot
/// choose.
fn proxy_sorting_tags(upstream: &str, reverse: bool) -> ScriptedServer {
    let upstream = upstream.to_string();
    ScriptedServer::start(move |req| {
        let mut response = forward(req, &upstream);
        if req.path().ends_with("/tags/list") && response.status == 200 {
            let mut list: serde_json::Value = serde_json::from_slice(&response.body).unwrap();
            let tags = list["tags"].as_array_mut().expect("a tag list");
            tags.sort_by(|a, b| a.as_str().cmp(&b.as_str()));
            if reverse {
                tags.reverse();
            }
            response.body = serde_json::to_vec(&list).unwrap();
        }
        response
    })
}

/// Of two tags of one .NET SDK version (runtimes 8.0.0 and 8.0.1), the SDK version alone, or
/// `latest`, resolves and installs the one of the highest runtime, whichever order the
/// registry lists them in. It used to take the one listed first.
#[test]
fn an_sdk_version_listed_with_two_runtimes_resolves_to_the_highest_runtime_in_any_order() {
    let registry = Registry::start();
    let h = Harness::new(&registry.url());
    for version in ["8.0.100_8.0.0", "8.0.100_8.0.1"] {
        publish_dotnet(&h, version, &[]).success();
    }
    let want = "bookworm-8.0.100_8.0.1";
    let digest = h.run(&["digest", &dotnet_ref(&h, want)]).success().stdout;
    for reverse in [false, true] {
        let proxy = proxy_sorting_tags(&registry.url(), reverse);
        for spec in ["8.0.100", "latest"] {
            let resolve = ["resolve", "dotnet", spec, "--json"];
            let resolved = h.sdk_via(&proxy.url(), &resolve).success().json();
            assert_eq!(
                resolved["tag"], want,
                "{spec}, reverse {reverse}: {resolved}"
            );
        }
        let install = ["install", "dotnet", "8.0.100", "--force", "--json"];
        let installed = h.sdk_via(&proxy.url(), &install).success().json();
        assert_eq!(
            installed["manifest_digest"],
            digest.trim_end(),
            "reverse {reverse}: {installed}"
        );
    }
}

/// A tag whose runtime is a pre-release (8.0.100_8.0.1-rc.1) is a pre-release, even of a
/// stable SDK version: without `--pre` the SDK version, `latest` and `sdk mirror` take the
/// tag of the stable runtime 8.0.0 instead; with `--pre` the highest runtime's, and a spec
/// naming that runtime finds it without `--pre`. They used to take the pre-release runtime's
/// tag, being the highest, without `--pre`.
#[test]
fn a_prerelease_runtime_of_an_sdk_version_is_taken_only_with_pre() {
    let registry = Registry::start();
    let h = Harness::new(&registry.url());
    for version in ["8.0.100_8.0.0", "8.0.100_8.0.1-rc.1"] {
        publish_dotnet(&h, version, &[]).success();
    }
    let tag = |args: &[&str]| {
        let mut all = vec!["resolve", "dotnet"];
        all.extend_from_slice(args);
        all.push("--json");
        h.sdk(&all).success().json()["tag"].clone()
    };
    for spec in ["8.0.100", "latest", "8.0"] {
        assert_eq!(tag(&[spec]), "bookworm-8.0.100_8.0.0", "{spec}");
        let pre = tag(&[spec, "--pre"]);
        assert_eq!(pre, "bookworm-8.0.100_8.0.1-rc.1", "{spec} --pre");
    }
    let named = tag(&["8.0.100_8.0.1-rc.1"]);
    assert_eq!(named, "bookworm-8.0.100_8.0.1-rc.1");

    let mirror = |args: &[&str]| {
        let mut all = vec!["dotnet"];
        all.extend_from_slice(args);
        mirror_sources(&h, &h.url, &all)
    };
    let stable = [dotnet_ref(&h, "bookworm-8.0.100_8.0.0")];
    let both = [
        dotnet_ref(&h, "bookworm-8.0.100_8.0.0"),
        dotnet_ref(&h, "bookworm-8.0.100_8.0.1-rc.1"),
    ];
    assert_eq!(mirror(&[]), stable);
    assert_eq!(mirror(&["8.0.100"]), stable);
    assert_eq!(mirror(&["--pre"]), both);
    assert_eq!(mirror(&["8.0.100", "--pre"]), both);
}

/// A default image labelled with no runtime is the tag that names none: with `{os}-8.0.100`
/// (published before .NET versions took a runtime) as the default and `{os}-8.0.100_8.0.1`
/// listed too, `default` resolves and installs `{os}-8.0.100`, and `sdk mirror` copies it
/// with the default tag. They used to take `{os}-8.0.100_8.0.1`, the highest runtime's, an
/// image the default tag does not point at.
#[test]
fn a_default_labelled_with_no_runtime_is_the_tag_without_one() {
    let registry = Registry::start();
    let h = Harness::new(&registry.url());
    publish_dotnet(&h, "8.0.100", &["--default"]).success();
    publish_dotnet(&h, "8.0.100_8.0.1", &[]).success();
    let want = "bookworm-8.0.100";
    let digest = h.run(&["digest", &dotnet_ref(&h, want)]).success().stdout;
    let default = h.run(&["digest", &dotnet_ref(&h, "bookworm-default")]);
    assert_eq!(default.success().stdout, digest);

    let resolve = ["resolve", "dotnet", "default", "--json"];
    let resolved = h.sdk(&resolve).success().json();
    assert_eq!(resolved["tag"], want, "{resolved}");
    let named = h.sdk(&["default", "dotnet", "--json"]).success().json();
    assert_eq!(
        (&named["tag"], &named["runtime"]),
        (&want.into(), &serde_json::Value::Null)
    );
    let install = ["install", "dotnet", "default", "--json"];
    let installed = h.sdk(&install).success().json();
    assert_eq!(
        installed["manifest_digest"],
        digest.trim_end(),
        "{installed}"
    );

    let sources = mirror_sources(&h, &h.url, &["dotnet", "8.0.100_8.0.1"]);
    let want_sources = [
        dotnet_ref(&h, "bookworm-8.0.100"),
        dotnet_ref(&h, "bookworm-8.0.100_8.0.1"),
        dotnet_ref(&h, "bookworm-default"),
    ];
    assert_eq!(sources, want_sources);
}

/// `sdk default dotnet --json` names the default image's tag and runtime: with
/// 8.0.100_8.0.0 the default and 8.0.100_8.0.1 listed too, `{version}_{runtime}` fed back to
/// `sdk install` installs the image `sdk install dotnet default` installs, the default's. It
/// used to give the SDK version alone, which installs the highest runtime's image,
/// 8.0.100_8.0.1. The text stays the SDK version, the name of its install folder.
#[test]
fn default_of_dotnet_names_the_tag_and_runtime_of_the_default_image() {
    let registry = Registry::start();
    let h = Harness::new(&registry.url());
    publish_dotnet(&h, "8.0.100_8.0.0", &["--default"]).success();
    publish_dotnet(&h, "8.0.100_8.0.1", &[]).success();
    let default = h.run(&["digest", &dotnet_ref(&h, "bookworm-default")]);
    let digest = default.success().stdout.trim_end().to_owned();

    let named = h.sdk(&["default", "dotnet", "--json"]).success().json();
    let tag = "bookworm-8.0.100_8.0.0";
    let want = serde_json::json!({
        "os": "bookworm",
        "platform": "dotnet",
        "reference": dotnet_ref(&h, tag),
        "runtime": "8.0.0",
        "tag": tag,
        "version": "8.0.100",
    });
    assert_eq!(named, want);
    assert_eq!(h.sdk(&["default", "dotnet"]).success().stdout, "8.0.100\n");

    let spec = format!(
        "{}_{}",
        named["version"].as_str().unwrap(),
        named["runtime"].as_str().unwrap()
    );
    let installed = h
        .sdk(&["install", "dotnet", &spec, "--json"])
        .success()
        .json();
    assert_eq!(installed["manifest_digest"], digest, "{installed}");
    let install = ["install", "dotnet", "default", "--force", "--json"];
    let installed = h.sdk(&install).success().json();
    assert_eq!(installed["manifest_digest"], digest, "{installed}");
}

/// When `{os}-default` points at one of two tags of a .NET SDK version (8.0.100_8.0.0, where
/// 8.0.100_8.0.1 is listed too), `default` resolves and installs that one, as its image's
/// runtime label says, whichever order the registry lists them in; `sdk mirror` copies it
/// with the default tag. It used to take a tag of the SDK version the default names, not the
/// default's own.
#[test]
fn the_default_of_an_sdk_version_listed_with_two_runtimes_is_the_default_images_runtime() {
    let registry = Registry::start();
    let h = Harness::new(&registry.url());
    publish_dotnet(&h, "8.0.100_8.0.0", &["--default"]).success();
    publish_dotnet(&h, "8.0.100_8.0.1", &[]).success();
    let want = "bookworm-8.0.100_8.0.0";
    let digest = h.run(&["digest", &dotnet_ref(&h, want)]).success().stdout;
    let default = h.run(&["digest", &dotnet_ref(&h, "bookworm-default")]);
    assert_eq!(default.success().stdout, digest);
    for reverse in [false, true] {
        let proxy = proxy_sorting_tags(&registry.url(), reverse);
        let resolve = ["resolve", "dotnet", "default", "--json"];
        let resolved = h.sdk_via(&proxy.url(), &resolve).success().json();
        assert_eq!(resolved["tag"], want, "reverse {reverse}: {resolved}");
        let install = ["install", "dotnet", "default", "--force", "--json"];
        let installed = h.sdk_via(&proxy.url(), &install).success().json();
        assert_eq!(
            installed["manifest_digest"],
            digest.trim_end(),
            "reverse {reverse}: {installed}"
        );

        let sources = mirror_sources(&h, &proxy.url(), &["dotnet", "8.0.100_8.0.1"]);
        let tag_at_proxy = |tag: &str| format!("{}/{DOTNET_REPO}:{tag}", proxy.host());
        let want_sources = [
            tag_at_proxy("bookworm-8.0.100_8.0.0"),
            tag_at_proxy("bookworm-8.0.100_8.0.1"),
            tag_at_proxy("bookworm-default"),
        ];
        assert_eq!(sources, want_sources, "reverse {reverse}");
    }
}
