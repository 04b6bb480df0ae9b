//! `sdk versions`, `sdk resolve` and `sdk default` on the shared catalogue, and which
//! registry setting wins.

use super::*;

#[test]
fn versions_lists_the_flavours_versions_in_version_order() {
    let c = catalogue();
    let h = c.harness();
    let run = h.sdk(&["versions", "python"]).success();
    assert_eq!(run.stdout, one_per_line(&BOOKWORM));
}

#[test]
fn versions_of_another_flavour_come_from_os_flag_or_debian_flavor() {
    let c = catalogue();
    let h = c.harness();
    let run = h.sdk(&["versions", "python", "--os", "bullseye"]).success();
    assert_eq!(run.stdout, one_per_line(&BULLSEYE));

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
            ],
            &[("DEBIAN_FLAVOR", "bullseye")],
        )
        .success();
    assert_eq!(run.stdout, one_per_line(&BULLSEYE), "DEBIAN_FLAVOR");
}

#[test]
fn versions_json_is_an_array_of_version_objects() {
    let c = catalogue();
    let h = c.harness();
    let run = h.sdk(&["versions", "python", "--json"]).success();
    let json = run.json();
    let items = json.as_array().expect("a JSON array");
    let versions: Vec<&str> = items
        .iter()
        .map(|item| item["version"].as_str().expect("a version string"))
        .collect();
    assert_eq!(versions, BOOKWORM);
    for item in items {
        let version = item["version"].as_str().unwrap();
        assert_eq!(item["tag"], format!("bookworm-{version}"), "{item}");
    }
}

#[test]
fn resolve_picks_the_highest_stable_match() {
    let c = catalogue();
    let h = c.harness();
    // Numeric, not lexical: 3.11.10 > 3.11.9; bullseye's 3.11.12 is not a candidate.
    assert_eq!(
        h.sdk(&["resolve", "python", "3.11"]).success().stdout,
        "3.11.10\n"
    );
    // The pre-release 3.13.0rc1 is higher but not stable.
    assert_eq!(
        h.sdk(&["resolve", "python", "latest"]).success().stdout,
        "3.12.4\n"
    );
    let json = h
        .sdk(&["resolve", "python", "3.11", "--json"])
        .success()
        .json();
    assert_eq!(json["version"], "3.11.10");
    assert_eq!(json["tag"], "bookworm-3.11.10");
    assert_eq!(json["reference"], h.python_ref("bookworm-3.11.10"));
}

#[test]
fn resolve_takes_a_prerelease_only_with_pre() {
    let c = catalogue();
    let h = c.harness();
    let run = h.sdk(&["resolve", "python", "3.13"]).expect_code(3);
    assert!(run.stdout.is_empty(), "{:?}", run.stdout);
    assert_eq!(
        h.sdk(&["resolve", "python", "3.13", "--pre"])
            .success()
            .stdout,
        "3.13.0rc1\n"
    );
    // Naming the pre-release is enough.
    assert_eq!(
        h.sdk(&["resolve", "python", "3.13.0rc1"]).success().stdout,
        "3.13.0rc1\n"
    );
}

#[test]
fn resolve_without_a_match_exits_3_and_names_the_nearest_versions() {
    let c = catalogue();
    let h = c.harness();
    let run = h.sdk(&["resolve", "python", "3.14"]).expect_code(3);
    assert!(run.stderr.contains("nearest"), "{}", run.stderr);
    for near in ["3.12.4", "3.13.0rc1"] {
        assert!(run.stderr.contains(near), "{near} not in {}", run.stderr);
    }
    assert!(
        !run.stderr.contains("3.9.9"),
        "3.9.9 is not near: {}",
        run.stderr
    );
}

/// A mistyped flavour (--os, DEBIAN_FLAVOR) has no versions; saying which flavours the
/// repository does have turns a silent empty answer into the fix.
#[test]
fn a_flavour_without_versions_names_the_flavours_there_are() {
    let c = catalogue();
    let h = c.harness();
    let run = h.sdk(&["versions", "python", "--os", "bookwrom"]).success();
    assert!(run.stdout.is_empty(), "{:?}", run.stdout);
    let named = "it has bookworm, bullseye: choose one with --os or DEBIAN_FLAVOR";
    assert!(run.stderr.contains(named), "{}", run.stderr);
    assert!(
        run.stderr.contains("no python versions for bookwrom"),
        "{}",
        run.stderr
    );

    let run = h
        .sdk(&["resolve", "python", "3.11", "--os", "bookwrom"])
        .expect_code(3);
    assert!(run.stderr.contains(named), "{}", run.stderr);

    // A flavour that has versions stays quiet.
    let run = h.sdk(&["versions", "python"]).success();
    assert!(!run.stderr.contains("no python versions"), "{}", run.stderr);
}

#[test]
fn default_reads_the_default_tag() {
    let c = catalogue();
    let h = c.harness();
    assert_eq!(h.sdk(&["default", "python"]).success().stdout, "3.12.4\n");
    assert_eq!(
        h.sdk(&["resolve", "python", "default"]).success().stdout,
        "3.12.4\n"
    );
    // Its image's tag and reference as `sdk resolve python default` gives them; a runtime
    // only .NET tags name.
    let json = h.sdk(&["default", "python", "--json"]).success().json();
    let tag = format!("bookworm-{DEFAULT}");
    let want = serde_json::json!({
        "os": "bookworm",
        "platform": "python",
        "reference": h.python_ref(&tag),
        "runtime": null,
        "tag": tag,
        "version": DEFAULT,
    });
    assert_eq!(json, want);
}

/// A default tag whose version no tag holds (the default copied alone to another
/// repository) names no image that `sdk install PLATFORM default` could install: `sdk
/// default` fails as `sdk resolve PLATFORM default` does, since it now names that image.
#[test]
fn default_naming_a_version_no_tag_holds_fails_as_resolve_default_does() {
    let registry = Registry::start();
    let h = Harness::new(&registry.url());
    h.publish(DEFAULT, "bookworm", true);
    let copy = format!("{}/other/python-sdk:bookworm-default", h.host());
    h.run(&["copy", &h.python_ref("bookworm-default"), &copy])
        .success();
    let run = h.sdk(&["default", "python", "--prefix", "other"]);
    let run = run.expect_code(3);
    assert!(run.stdout.is_empty(), "{:?}", run.stdout);
    let resolve = ["resolve", "python", "default", "--prefix", "other"];
    assert_eq!(run.stderr, h.sdk(&resolve).expect_code(3).stderr);
}

#[test]
fn default_without_a_default_tag_exits_3_unless_or_latest() {
    let c = catalogue();
    let h = c.harness();
    let run = h
        .sdk(&["default", "python", "--os", "bullseye"])
        .expect_code(3);
    assert!(run.stdout.is_empty(), "{:?}", run.stdout);
    assert!(run.stderr.contains("bullseye-default"), "{}", run.stderr);
    // The tag that is missing, where: `reference` used to be null.
    let error = h
        .sdk(&["default", "python", "--os", "bullseye", "--json"])
        .expect_code(3)
        .error_json();
    let place = (
        &error["registry"],
        &error["repository"],
        &error["reference"],
    );
    assert_eq!(
        place,
        (
            &h.host().into(),
            &PYTHON_REPO.into(),
            &"bullseye-default".into()
        ),
        "{error}"
    );

    let run = h
        .sdk(&["default", "python", "--os", "bullseye", "--or-latest"])
        .success();
    assert_eq!(run.stdout, "3.12.9\n");
}

#[test]
fn registry_falls_back_to_the_oryx_environment_variable() {
    let c = catalogue();
    let h = c.harness();
    let root = h.root();
    let args = ["sdk", "versions", "python", "--root", path_str(&root)];
    let run = h
        .run_env(&args, &[("ORYX_ACR_SDK_REGISTRY_URL", h.url.as_str())])
        .success();
    assert_eq!(run.stdout, one_per_line(&BOOKWORM));
}

#[test]
fn registry_flag_beats_ocisdk_registry_which_beats_the_oryx_variable() {
    let c = catalogue();
    let h = c.harness();
    // Nothing listens there: whichever setting wrongly wins makes the run fail.
    let closed = format!("http://127.0.0.1:{}", free_port());
    let root = h.root();
    let args = ["sdk", "versions", "python", "--root", path_str(&root)];
    let run = h
        .run_env(
            &args,
            &[
                ("OCISDK_REGISTRY", h.url.as_str()),
                ("ORYX_ACR_SDK_REGISTRY_URL", closed.as_str()),
            ],
        )
        .success();
    assert_eq!(run.stdout, one_per_line(&BOOKWORM));

    let mut with_flag = args.to_vec();
    with_flag.extend_from_slice(&["--registry", &h.url]);
    let run = h
        .run_env(
            &with_flag,
            &[
                ("OCISDK_REGISTRY", closed.as_str()),
                ("ORYX_ACR_SDK_REGISTRY_URL", closed.as_str()),
            ],
        )
        .success();
    assert_eq!(run.stdout, one_per_line(&BOOKWORM));

    // And the closed port really fails (so the checks above can fail).
    h.run_env(&args, &[("OCISDK_REGISTRY", closed.as_str())])
        .expect_code(6);
}
