//! `ocisdk sdk mirror` to a second registry and into OCI layouts: the same installs, the
//! default version, reruns that copy nothing.

use super::*;

const PYTHON_REPO: &str = "oryx/python-sdk";

fn sdk_tarball(version: &str, os: &str) -> Vec<u8> {
    let script = format!("#!/bin/sh\necho 'Python {version} ({os})'\n");
    tar_gz_of(&[
        ("bin/python", script.as_bytes(), 0o755),
        ("lib/VERSION", version.as_bytes(), 0o644),
        (
            "lib/blob",
            &pseudo_random_bytes(50_000, version.len() as u64),
            0o644,
        ),
    ])
}

/// Publishes python versions with `sdk publish`: bookworm 3.11.9 and 3.12.4 (the default),
/// bullseye 3.11.12 (its default).
fn publish_catalogue(h: &Harness, url: &str) {
    for (version, os, default) in [
        ("3.11.9", "bookworm", false),
        ("3.12.4", "bookworm", true),
        ("3.11.12", "bullseye", true),
    ] {
        let file = h.path(&format!("python-{os}-{version}.tar.gz"));
        fs::write(&file, sdk_tarball(version, os)).unwrap();
        let mut args = vec!["publish", "python", version, arg(&file), "--os", os];
        if default {
            args.push("--default");
        }
        h.sdk(url, &args).success();
    }
}

#[test]
fn sdk_mirror_to_a_second_registry_installs_the_same_files_and_a_rerun_copies_nothing() {
    let a = Registry::start();
    let b = Registry::start();
    let h = Harness::new();
    publish_catalogue(&h, &a.url());
    let front = Recorder::forwarding(&b.url());
    let front_url = front.url();
    let mirror = |extra: &[&str]| {
        let mut args = vec![
            "mirror",
            "python",
            "--to",
            &front_url,
            "--os",
            "bookworm,bullseye",
            "--json",
        ];
        args.extend_from_slice(extra);
        h.sdk(&a.url(), &args).success().json()
    };

    // A dry run names every image and writes nothing.
    let dry = mirror(&["--dry-run"]);
    let images: Vec<String> = dry["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["target"].as_str().unwrap().to_string())
        .collect();
    let want: Vec<String> = [
        "bookworm-3.11.9",
        "bookworm-3.12.4",
        "bookworm-default",
        "bullseye-3.11.12",
        "bullseye-default",
    ]
    .iter()
    .map(|t| format!("{}/{PYTHON_REPO}:{t}", front.host()))
    .collect();
    assert_eq!(images, want);
    assert!(dry["bytes"].as_u64().unwrap() > 150_000, "{dry}");
    assert_eq!(front.writes(), Vec::<String>::new());

    let first = mirror(&[]);
    assert!(first["bytes"].as_u64().unwrap() > 150_000, "{first}");
    assert!(!front.writes().is_empty());

    // The mirror serves the catalogue: same versions, same default, same files.
    for (os, spec) in [
        ("bookworm", "default"),
        ("bookworm", "3.11"),
        ("bullseye", "3.11"),
    ] {
        let from_a = h.path(&format!("root-a-{os}-{spec}"));
        let from_b = h.path(&format!("root-b-{os}-{spec}"));
        let install = |url: &str, root: &Path| {
            h.sdk(
                url,
                &["install", "python", spec, "--os", os, "--root", arg(root)],
            )
            .success()
        };
        install(&a.url(), &from_a);
        install(&b.url(), &from_b);
        // Each install records the registry it came from; the rest is the same.
        let files = |root: &Path| -> Vec<String> {
            let record = format!("/{} ", ocisdk::sdk::INSTALL_RECORD);
            let all = snapshot(root).into_iter();
            all.filter(|line| !line.contains(&record)).collect()
        };
        assert_eq!(files(&from_a), files(&from_b), "{os} {spec}");
        assert!(!files(&from_b).is_empty());
    }
    let versions = |url: &str| h.sdk(url, &["versions", "python"]).success().stdout;
    assert_eq!(versions(&a.url()), versions(&b.url()));

    // A second run finds everything and writes nothing to the mirror.
    front.clear();
    let second = mirror(&[]);
    assert_eq!(second["bytes"], 0, "{second}");
    for image in second["images"].as_array().unwrap() {
        for m in image["manifests"].as_array().unwrap() {
            assert_eq!(m["outcome"], "present", "{image}");
        }
    }
    assert_eq!(front.writes(), Vec::<String>::new());
    assert!(!front.log().is_empty(), "the second run did not even look");
}

/// A mirror of some versions also gets the one the default names, so that `install default`
/// works at the copy; and a refresh reads the catalogue from its registry even when the
/// copy is also configured as a read mirror of it (it used to read the copy's own tags
/// there and find everything up to date).
#[test]
fn sdk_mirror_copies_the_default_version_and_refreshes_past_a_read_mirror() {
    let a = Registry::start();
    let b = Registry::start();
    let h = Harness::new();
    publish_catalogue(&h, &a.url());
    let to = b.url();
    h.sdk(&a.url(), &["mirror", "python", "3.11", "--to", &to])
        .success();
    let root = h.path("root-default");
    h.sdk(
        &b.url(),
        &["install", "python", "default", "--root", arg(&root)],
    )
    .success();
    assert!(
        root.join("python/3.12.4/bin/python").is_file(),
        "{:?}",
        snapshot(&root)
    );

    // A new version upstream; the copy, configured as a read mirror of it, is refreshed.
    let file = h.path("python-bookworm-3.13.1.tar.gz");
    fs::write(&file, sdk_tarball("3.13.1", "bookworm")).unwrap();
    h.sdk(
        &a.url(),
        &["publish", "python", "3.13.1", arg(&file), "--default"],
    )
    .success();
    let read_mirror = format!("{}={}", a.host(), b.url());
    h.sdk(
        &a.url(),
        &["mirror", "python", "--to", &to, "--mirror", &read_mirror],
    )
    .success();
    let versions = |url: &str| h.sdk(url, &["versions", "python"]).success().stdout;
    assert_eq!(versions(&b.url()), versions(&a.url()));
    let default = |url: &str| h.sdk(url, &["default", "python"]).success().stdout;
    assert_eq!(default(&b.url()), "3.13.1\n");
}

#[test]
fn sdk_mirror_into_oci_layouts_that_skopeo_and_copy_read_back() {
    let a = Registry::start();
    let b = Registry::start();
    let h = Harness::new();
    publish_catalogue(&h, &a.url());
    let dir = h.path("carry");
    let to = format!("oci:{}", arg(&dir));
    h.sdk(&a.url(), &["mirror", "python", "3.12", "--to", &to])
        .success();
    let repo_dir = dir.join(PYTHON_REPO);
    let a_ref = format!("{}/{PYTHON_REPO}:bookworm-3.12.4", a.host());
    let layout_raw = skopeo::inspect_raw(&format!("oci:{}:bookworm-default", repo_dir.display()));
    assert_eq!(layout_raw, stored_manifest(&a_ref));

    // Carried into another registry, installable from there.
    for tag in ["bookworm-3.12.4", "bookworm-default"] {
        h.run(&[
            "copy",
            &format!("oci:{}:{tag}", arg(&repo_dir)),
            &format!("{}/{PYTHON_REPO}", b.host()),
        ])
        .success();
    }
    let root = h.path("root");
    h.sdk(
        &b.url(),
        &["install", "python", "default", "--root", arg(&root)],
    )
    .success();
    assert!(root.join("python/3.12.4/bin/python").exists());
}

/// A lone flavour with no version to copy (a typo in `--os`) fails as a spec matching
/// nothing does, naming the flavours there are, and writes nothing: it used to succeed with
/// "0 images". One of several is warned about and the others are mirrored, as a fleet's
/// script naming the flavours it keeps for every platform expects.
#[test]
fn sdk_mirror_of_a_flavour_with_no_versions_fails_alone_and_warns_among_others() {
    let a = Registry::start();
    let b = Registry::start();
    let h = Harness::new();
    publish_catalogue(&h, &a.url());
    let front = Recorder::forwarding(&b.url());
    let mirror = |os: &str| {
        h.sdk(
            &a.url(),
            &[
                "mirror",
                "python",
                "--to",
                &front.url(),
                "--os",
                os,
                "--json",
            ],
        )
    };

    let run = mirror("noble");
    assert_eq!(run.code, 3, "{}{}", run.stdout, run.stderr);
    assert_eq!(run.stdout, "");
    let error: Value = serde_json::from_str(run.stderr.trim()).unwrap();
    let message = error["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("for noble")
            && message.contains("no versions for this flavour")
            && message.contains("bookworm"),
        "{message}"
    );
    assert_eq!(front.writes(), Vec::<String>::new());

    let run = mirror("bookworm,noble");
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains("for noble") && run.stderr.contains("mirroring the other flavours"),
        "{}",
        run.stderr
    );
    let report: Value = serde_json::from_str(run.stdout.trim()).unwrap();
    let images = report["images"].as_array().unwrap();
    assert!(!images.is_empty(), "{report}");
    assert!(
        images.iter().all(|i| i["source"]
            .as_str()
            .is_some_and(|s| s.contains(":bookworm-"))),
        "{report}"
    );
    assert!(!front.writes().is_empty(), "bookworm's images were copied");
}

/// A flavour named twice in `--os` is mirrored once: each image used to be chosen, and
/// copied, twice.
#[test]
fn sdk_mirror_of_a_flavour_named_twice_copies_each_image_once() {
    let a = Registry::start();
    let b = Registry::start();
    let h = Harness::new();
    publish_catalogue(&h, &a.url());
    let sources = |os: &str| -> Vec<String> {
        let run = h.sdk(
            &a.url(),
            &[
                "mirror",
                "python",
                "--to",
                &b.url(),
                "--os",
                os,
                "--dry-run",
                "--json",
            ],
        );
        assert_eq!(run.code, 0, "--os {os}: {}", run.stderr);
        let report: Value = serde_json::from_str(run.stdout.trim()).unwrap();
        let images = report["images"].as_array().unwrap().iter();
        images
            .map(|i| i["source"].as_str().unwrap().to_string())
            .collect()
    };
    let once = sources("bookworm");
    assert!(!once.is_empty());
    assert_eq!(sources("bookworm, bookworm"), once);
}

/// A dry run reports each image as the real run then copies it, into a registry and into
/// layouts: the default tag, whose image its version's copy brings, is `tagged` with no
/// bytes, not copied a second time (the dry run used to say it would copy it all again).
#[test]
fn sdk_mirror_dry_run_reports_each_image_as_the_real_run_copies_it() {
    let a = Registry::start();
    let b = Registry::start();
    let h = Harness::new();
    publish_catalogue(&h, &a.url());
    let layouts = format!("oci:{}", arg(&h.path("carry")));
    for to in [b.url(), layouts] {
        let mirror = |extra: &[&str]| {
            let mut args = vec!["mirror", "python", "--to", &to, "--json"];
            args.extend_from_slice(extra);
            h.sdk(&a.url(), &args).success().json()
        };
        let dry = mirror(&["--dry-run"]);
        let real = mirror(&[]);
        // Each image's outcomes and bytes, a dry run's would_copy read as copied.
        let seen = |report: &Value| -> Vec<String> {
            let outcomes = |items: &Value| -> Vec<String> {
                let items = items.as_array().unwrap().iter();
                items
                    .map(|i| {
                        let outcome = i["outcome"]
                            .as_str()
                            .unwrap()
                            .replace("would_copy", "copied");
                        format!("{} {outcome}", i["digest"].as_str().unwrap())
                    })
                    .collect()
            };
            let images = report["images"].as_array().unwrap().iter();
            images
                .map(|image| {
                    format!(
                        "{} bytes {} manifests {:?} blobs {:?}",
                        image["target"],
                        image["bytes"],
                        outcomes(&image["manifests"]),
                        outcomes(&image["blobs"])
                    )
                })
                .collect()
        };
        assert_eq!(seen(&dry), seen(&real), "--to {to}");
        let default = &real["images"].as_array().unwrap()[2];
        assert!(
            default["target"]
                .as_str()
                .unwrap()
                .ends_with(":bookworm-default"),
            "{default}"
        );
        assert_eq!(default["manifests"][0]["outcome"], "tagged", "--to {to}");
        assert_eq!(dry["bytes"], real["bytes"], "--to {to}");
    }
}
