//! `ocisdk copy` between registries, OCI layouts and layout archives, read back by skopeo;
//! `--platform`, `--dry-run`, unnamed entries, and the usage errors of its two ends.

use super::*;

#[test]
fn copy_through_an_oci_layout_keeps_every_digest_and_skopeo_reads_the_layout() {
    let a = Registry::start();
    let b = Registry::start();
    let h = Harness::new();
    let (_fixture, index_digest) = push_two_platform_index(&a, "tools/sdk", "v1");
    let index_bytes = stored_manifest(&format!("{}/tools/sdk:v1", a.host()));
    assert_eq!(digest_of(&index_bytes), index_digest);

    // Registry → layout.
    let dir = h.path("layout");
    let src = format!("{}/tools/sdk:v1", a.host());
    let dst = format!("oci:{}:v1", arg(&dir));
    let report = h.run(&["copy", &src, &dst, "--json"]).success().json();
    assert_eq!(report["digest"], index_digest);
    assert_eq!(report["target"], format!("oci:{}:v1", dir.display()));
    assert_eq!(report["manifests"].as_array().unwrap().len(), 3);
    // Two configs, one shared layer, two own layers.
    assert_eq!(report["blobs"].as_array().unwrap().len(), 5);

    // skopeo reads it: the index bytes, and the image for its platform.
    let layout_ref = format!("oci:{}:v1", dir.display());
    assert_eq!(skopeo::inspect_raw(&layout_ref), index_bytes);
    let arm = skopeo::run(&[
        "inspect",
        "--override-arch",
        "arm64",
        "--override-os",
        "linux",
        &layout_ref,
    ])
    .expect("skopeo inspect of the layout");
    let arm: Value = serde_json::from_slice(&arm).unwrap();
    assert_eq!(arm["Labels"]["org.oryx.version"], "arm64");

    // Layout → second registry: same bytes, children by digest, blobs identical.
    let dst = format!("{}/mirror/sdk:v1", b.host());
    h.run(&["copy", &format!("oci:{}:v1", arg(&dir)), &dst])
        .success();
    assert_eq!(stored_manifest(&dst), index_bytes);
    let index: Value = serde_json::from_slice(&index_bytes).unwrap();
    for child in index["manifests"].as_array().unwrap() {
        let digest = child["digest"].as_str().unwrap();
        let there = stored_manifest(&format!("{}/mirror/sdk@{digest}", b.host()));
        assert_eq!(digest_of(&there), digest);
        let manifest: Value = serde_json::from_slice(&there).unwrap();
        for layer in manifest["layers"].as_array().unwrap() {
            let digest = layer["digest"].as_str().unwrap();
            let stored = fs::read(b.blob_data_path(digest)).unwrap();
            assert_eq!(digest_of(&stored), digest);
        }
    }

    // Copying again finds everything there and writes nothing.
    let again = h.run(&["copy", &src, &dst, "--json"]).success().json();
    assert!(again["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .all(|m| m["outcome"] == "present"));
    assert_eq!(again["bytes"], 0);
}

#[test]
fn copy_through_an_oci_archive_and_skopeo_reads_the_archive() {
    let a = Registry::start();
    let h = Harness::new();
    let (_fixture, index_digest) = push_two_platform_index(&a, "tools/sdk", "v2");
    let src = format!("{}/tools/sdk:v2", a.host());
    let file = h.path("sdk.tar");
    h.run(&["copy", &src, &format!("oci-archive:{}", arg(&file))])
        .success();
    // The archive took the source's tag as its name.
    let raw = skopeo::run(&[
        "inspect",
        "--raw",
        &format!("oci-archive:{}:v2", file.display()),
    ])
    .expect("skopeo reads the archive");
    assert_eq!(digest_of(&raw), index_digest);

    // And back into the registry under another name, from the archive.
    let back = format!("{}/tools/again:v2", a.host());
    h.run(&["copy", &format!("oci-archive:{}:v2", arg(&file)), &back])
        .success();
    assert_eq!(digest_of(&stored_manifest(&back)), index_digest);
}

#[test]
fn skopeo_written_layouts_copy_into_a_registry() {
    let a = Registry::start();
    let b = Registry::start();
    let h = Harness::new();
    let (_fixture, index_digest) = push_two_platform_index(&a, "tools/sdk", "v3");
    let dir = h.path("skopeo-layout");
    let written = skopeo::copy_to_layout(&format!("{}/tools/sdk:v3", a.host()), &dir, "v3");
    assert_eq!(written, index_digest);

    let dst = format!("{}/tools/sdk:v3", b.host());
    h.run(&["copy", &format!("oci:{}:v3", arg(&dir)), &dst])
        .success();
    assert_eq!(digest_of(&stored_manifest(&dst)), index_digest);
    // An image skopeo can pull back out whole.
    let out = h.path("out");
    skopeo::copy_to_layout(&dst, &out, "v3");
}

#[test]
fn platform_copies_one_image_and_a_missing_name_is_not_found() {
    let a = Registry::start();
    let h = Harness::new();
    let (_fixture, _) = push_two_platform_index(&a, "tools/sdk", "v4");
    let index: Value =
        serde_json::from_slice(&stored_manifest(&format!("{}/tools/sdk:v4", a.host()))).unwrap();
    let arm = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["platform"]["architecture"] == "arm64")
        .unwrap()["digest"]
        .clone();
    let dst = format!("{}/tools/arm:v4", a.host());
    h.run(&[
        "copy",
        &format!("{}/tools/sdk:v4", a.host()),
        &dst,
        "--platform",
        "linux/arm64",
    ])
    .success();
    assert_eq!(Value::from(digest_of(&stored_manifest(&dst))), arm);
    let none = h.run(&[
        "copy",
        &format!("{}/tools/sdk:v4", a.host()),
        &dst,
        "--platform",
        "linux/s390x",
    ]);
    assert_eq!(none.code, 3, "{}", none.stderr);
    assert!(none.stderr.contains("linux/arm64"), "{}", none.stderr);

    let dir = h.path("empty");
    h.run(&[
        "copy",
        &format!("{}/tools/sdk:v4", a.host()),
        &format!("oci:{}:x", arg(&dir)),
    ])
    .success();
    let missing = h.run(&["copy", &format!("oci:{}:nope", arg(&dir)), &dst]);
    assert_eq!(missing.code, 3, "stderr: {}", missing.stderr);
    assert!(missing.stderr.contains("nope"), "{}", missing.stderr);
}

/// A single-platform image is copied for an explicit `--platform` only when its config says
/// it is built for it, as `pull --platform` checks, from a registry and from a layout: it
/// used to be copied whatever its platform, with exit code 0.
#[test]
fn platform_refuses_a_single_platform_image_built_for_another() {
    let a = Registry::start();
    let h = Harness::new();
    push_two_platform_index(&a, "tools/sdk", "v10");
    let arm_only = format!("{}/tools/arm:v10", a.host());
    let src = format!("{}/tools/sdk:v10", a.host());
    h.run(&["copy", &src, &arm_only, "--platform", "linux/arm64"])
        .success();
    let dir = h.path("arm");
    let layout = format!("oci:{}:v10", arg(&dir));
    h.run(&["copy", &arm_only, &layout]).success();

    for from in [&arm_only, &layout] {
        let dst = format!("{}/tools/amd:v10", a.host());
        let run = h.run(&["copy", from, &dst, "--platform", "linux/amd64", "--json"]);
        assert_eq!(run.code, 3, "{from}: {}", run.stderr);
        let error: Value = serde_json::from_str(run.stderr.trim()).unwrap();
        let message = error["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("platform linux/amd64") && message.contains("it has: linux/arm64"),
            "{from}: {message}"
        );
        assert_ne!(
            h.run(&["tags", &dst]).code,
            0,
            "{from}: the target was written"
        );
        // Its own platform is copied.
        let dst = format!("{}/tools/arm2:v10", a.host());
        h.run(&["copy", from, &dst, "--platform", "linux/arm64"])
            .success();
    }
}

/// A layout blob that was changed or cut short after it was written fails the copy into a
/// registry as a verification (exit code 5) naming the layout, and nothing is named at the
/// target: it used to reach the registry, whose refusal at the closing PUT was exit code 1
/// (a 400 naming the target), or for a short file exit code 6 with a hint to check that the
/// registry is reachable.
#[test]
fn a_changed_blob_in_a_layout_fails_the_copy_as_a_verification_naming_the_layout() {
    let a = Registry::start();
    let b = Registry::start();
    let h = Harness::new();
    let (layer, layer_digest) = push_one_layer(&a, "tools/one", "v1", 100_000);
    let dir = h.path("layout");
    let layout = format!("oci:{}:v1", arg(&dir));
    h.run(&["copy", &format!("{}/tools/one:v1", a.host()), &layout])
        .success();
    let blob = dir
        .join("blobs/sha256")
        .join(layer_digest.trim_start_matches("sha256:"));
    let mut changed = layer.clone();
    changed[50_000] ^= 1;
    for (what, bytes) in [("changed", &changed[..]), ("short", &layer[..90_000])] {
        fs::write(&blob, bytes).unwrap();
        let dst = format!("{}/t/{what}:v1", b.host());
        let run = h.run(&["copy", &layout, &dst, "--retries", "0", "--json"]);
        assert_eq!(run.code, 5, "{what}: {}", run.stderr);
        let error: Value = serde_json::from_str(run.stderr.trim()).unwrap();
        let message = error["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(&dir.display().to_string()) && message.contains(&layer_digest),
            "{what}: {message}"
        );
        assert_ne!(
            h.run(&["tags", &dst]).code,
            0,
            "{what}: the target was named"
        );
    }
}

/// A copy from a layout asks the registry once whether it has each blob, and reads the
/// layout's file only for a blob it lacks: the layer pushed there before as a file of its
/// own is found present though the layout's copy of it has changed since. Each uploaded blob
/// used to be asked for twice (a HEAD before the upload, and another within it).
#[test]
fn a_copy_from_a_layout_asks_once_for_each_blob_and_reads_only_those_it_sends() {
    let a = Registry::start();
    let b = Registry::start();
    let h = Harness::new();
    let (layer, layer_digest) = push_one_layer(&a, "tools/two", "v1", 100_000);
    let dir = h.path("layout");
    let layout = format!("oci:{}:v1", arg(&dir));
    h.run(&["copy", &format!("{}/tools/two:v1", a.host()), &layout])
        .success();
    let file = h.path("layer.bin");
    fs::write(&file, &layer).unwrap();
    h.run(&["push", arg(&file), &format!("{}/t/two:file", b.host())])
        .success();
    let blob = dir
        .join("blobs/sha256")
        .join(layer_digest.trim_start_matches("sha256:"));
    fs::write(&blob, &layer[..90_000]).unwrap();

    let front = Recorder::forwarding(&b.url());
    let run = h.run(&[
        "copy",
        &layout,
        &format!("{}/t/two:v1", front.host()),
        "--json",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let report: Value = serde_json::from_str(run.stdout.trim()).unwrap();
    let outcomes: Vec<(String, String)> = report["blobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            let field = |name: &str| b[name].as_str().unwrap().to_string();
            (field("digest"), field("outcome"))
        })
        .collect();
    assert_eq!(outcomes.len(), 2, "{report}");
    for (digest, outcome) in &outcomes {
        let expected = if *digest == layer_digest {
            "present"
        } else {
            "copied"
        };
        assert_eq!(outcome, expected, "{digest}: {report}");
        let heads = front
            .log()
            .iter()
            .filter(|e| e.method == "HEAD" && e.target.ends_with(&format!("/blobs/{digest}")))
            .count();
        assert_eq!(heads, 1, "HEADs of {digest}: {:?}", front.log());
    }
}

/// A layout whose name points at the index already, but which lacks its images (skopeo's
/// `--multi-arch index-only` writes the index alone) or a layer of one, is completed by a
/// copy: it used to be found up to date, every manifest reported present, and the layout
/// stayed one nothing could be copied out of.
#[test]
fn a_layout_named_at_the_index_but_missing_images_is_completed() {
    let a = Registry::start();
    let b = Registry::start();
    let h = Harness::new();
    let (_fixture, index_digest) = push_two_platform_index(&a, "tools/sdk", "v11");
    let src = format!("{}/tools/sdk:v11", a.host());
    let dir = h.path("index-only");
    skopeo::run(&[
        "copy",
        "--multi-arch",
        "index-only",
        "--src-tls-verify=false",
        &format!("docker://{src}"),
        &format!("oci:{}:v11", dir.display()),
    ])
    .expect("skopeo copies the index alone");
    let layout = format!("oci:{}:v11", arg(&dir));
    let outcomes = |report: &Value, list: &str| -> Vec<String> {
        let items = report[list].as_array().unwrap().iter();
        items
            .map(|i| i["outcome"].as_str().unwrap().to_string())
            .collect()
    };

    let report = h.run(&["copy", &src, &layout, "--json"]).success().json();
    assert_eq!(
        outcomes(&report, "manifests"),
        ["copied", "copied", "present"],
        "{report}"
    );
    assert_eq!(outcomes(&report, "blobs"), ["copied"; 5], "{report}");
    let back = format!("{}/tools/sdk:v11", b.host());
    h.run(&["copy", &layout, &back]).success();
    assert_eq!(digest_of(&stored_manifest(&back)), index_digest);

    // A layer removed from the layout is copied again, and only it.
    let index: Value = serde_json::from_slice(&stored_manifest(&src)).unwrap();
    let child = index["manifests"][1]["digest"].as_str().unwrap();
    let image: Value =
        serde_json::from_slice(&stored_manifest(&format!("{}/tools/sdk@{child}", a.host())))
            .unwrap();
    let layer = image["layers"][1]["digest"].as_str().unwrap();
    fs::remove_file(
        dir.join("blobs/sha256")
            .join(layer.trim_start_matches("sha256:")),
    )
    .unwrap();
    let report = h.run(&["copy", &src, &layout, "--json"]).success().json();
    let copied: Vec<&str> = report["blobs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["outcome"] == "copied")
        .map(|b| b["digest"].as_str().unwrap())
        .collect();
    assert_eq!(copied, [layer], "{report}");
    h.run(&["copy", &layout, &format!("{}/tools/again:v11", b.host())])
        .success();

    // Whole, it is up to date and nothing is written.
    let before = snapshot(&dir);
    let again = h.run(&["copy", &src, &layout]).success();
    assert!(again.stdout.contains("up to date"), "{}", again.stdout);
    assert_eq!(snapshot(&dir), before);
}

/// Copies into one layout at once each keep their name: each read `index.json`, added its
/// own name and wrote it back, so names were lost while every copy exited 0.
#[test]
fn copies_into_one_layout_at_once_each_keep_their_name() {
    let a = Registry::start();
    let h = Harness::new();
    let tags: Vec<String> = (0..8).map(|i| format!("p{i}")).collect();
    for tag in &tags {
        push_one_layer(&a, "tools/par", tag, 1_000);
    }
    let dir = h.path("shared");
    for round in 0..3 {
        let copies: Vec<_> = tags
            .iter()
            .map(|tag| {
                let mut cmd = Command::new(env!("CARGO_BIN_EXE_ocisdk"));
                cmd.args([
                    "copy",
                    &format!("{}/tools/par:{tag}", a.host()),
                    &format!("oci:{}:{round}-{tag}", arg(&dir)),
                ]);
                cli::scrub(&mut cmd);
                cmd.env("OCISDK_CACHE_DIR", h.path("cache"))
                    .env("HOME", h.path("home"))
                    .stdin(Stdio::null())
                    .stdout(Stdio::null());
                cmd.spawn().expect("run ocisdk")
            })
            .collect();
        for mut copy in copies {
            assert!(copy.wait().unwrap().success(), "round {round}");
        }
        let index: Value =
            serde_json::from_slice(&fs::read(dir.join("index.json")).unwrap()).unwrap();
        let names: Vec<&str> = index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                e["annotations"]["org.opencontainers.image.ref.name"]
                    .as_str()
                    .unwrap()
            })
            .collect();
        for tag in &tags {
            let name = format!("{round}-{tag}");
            assert!(names.contains(&name.as_str()), "{name} lost: {names:?}");
        }
    }
}

#[test]
fn dry_run_counts_the_bytes_and_writes_nothing() {
    let a = Registry::start();
    let b = Registry::start();
    let h = Harness::new();
    push_two_platform_index(&a, "tools/sdk", "v5");
    let front = Recorder::forwarding(&b.url());
    let src = format!("{}/tools/sdk:v5", a.host());
    let dst = format!("{}/tools/sdk:v5", front.host());
    let report = h
        .run(&["copy", &src, &dst, "--dry-run", "--json"])
        .success()
        .json();
    let listed: u64 = report["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .chain(report["blobs"].as_array().unwrap())
        .map(|i| {
            assert_eq!(i["outcome"], "would_copy");
            i["size"].as_u64().unwrap()
        })
        .sum();
    assert!(listed > 600_000, "{listed}");
    assert_eq!(report["bytes"].as_u64(), Some(listed));
    assert_eq!(front.writes(), Vec::<String>::new());
}

#[test]
fn dry_run_into_a_layout_or_an_archive_creates_nothing() {
    let a = Registry::start();
    let h = Harness::new();
    push_two_platform_index(&a, "tools/sdk", "v6");
    let src = format!("{}/tools/sdk:v6", a.host());
    let out = h.path("out");
    fs::create_dir(&out).unwrap();
    let outcomes = |report: &Value| -> Vec<String> {
        let items = report["manifests"].as_array().unwrap().iter();
        let items = items.chain(report["blobs"].as_array().unwrap());
        items
            .map(|i| i["outcome"].as_str().unwrap().into())
            .collect()
    };

    // A layout that is not there yet, in a folder that is not there either, and an archive.
    let nested = format!("oci:{}:v1", arg(&out.join("dry/nested")));
    let archive = format!("oci-archive:{}:v1", arg(&out.join("sdk.tar")));
    for dst in [nested, archive] {
        let report = h
            .run(&["copy", &src, &dst, "--dry-run", "--json"])
            .success()
            .json();
        assert_eq!(report["target"], dst);
        assert!(outcomes(&report).iter().all(|o| o == "would_copy"));
        assert_eq!(snapshot(&out), Vec::<String>::new(), "after {dst}");
    }

    // An existing layout is read, not written: what it holds is found present.
    let layout = out.join("layout");
    h.run(&["copy", &src, &format!("oci:{}:v1", arg(&layout))])
        .success();
    let before = snapshot(&out);
    let dst = format!("oci:{}:v2", arg(&layout));
    let report = h
        .run(&["copy", &src, &dst, "--dry-run", "--json"])
        .success()
        .json();
    let outcomes = outcomes(&report);
    assert_eq!(outcomes.iter().filter(|o| *o == "tagged").count(), 1);
    assert!(outcomes.iter().all(|o| o == "present" || o == "tagged"));
    assert_eq!(report["bytes"], 0);
    assert_eq!(snapshot(&out), before);
}

#[test]
fn a_layout_or_archive_without_a_name_is_copied_under_its_entry_name() {
    let a = Registry::start();
    let h = Harness::new();
    let (_fixture, index_digest) = push_two_platform_index(&a, "tools/sdk", "v7");
    let src = format!("{}/tools/sdk:v7", a.host());
    // An archive and a layout whose only entry is named v7 (the source's tag).
    let file = h.path("sk.tar");
    let dir = h.path("sk");
    let archive = format!("oci-archive:{}", arg(&file));
    let layout = format!("oci:{}", arg(&dir));
    for end in [&archive, &layout] {
        h.run(&["copy", &src, end]).success();
    }
    for (from, repo) in [(&archive, "t/c"), (&layout, "t/d")] {
        let dst = format!("{}/{repo}", a.host());
        let report = h.run(&["copy", from, &dst, "--json"]).success().json();
        assert_eq!(report["target"], format!("{dst}:v7"));
        assert_eq!(h.run(&["tags", &dst]).success().stdout, "v7\n");
        assert_eq!(
            digest_of(&stored_manifest(&format!("{dst}:v7"))),
            index_digest
        );
    }
}

#[test]
fn a_source_by_digest_needs_a_tag_on_a_registry_target() {
    let a = Registry::start();
    let h = Harness::new();
    let (_fixture, index_digest) = push_two_platform_index(&a, "tools/sdk", "v8");
    let src = format!("{}/tools/sdk@{index_digest}", a.host());
    let untagged = format!("{}/t/e", a.host());
    let refused = h.run(&["copy", &src, &untagged]);
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(
        refused.stderr.contains(&format!("e.g. {untagged}:TAG")),
        "{}",
        refused.stderr
    );
    // Refused before anything was written.
    assert_ne!(h.run(&["tags", &untagged]).code, 0);
    // A tag on the target, or the digest itself, is fine.
    h.run(&["copy", &src, &format!("{untagged}:v8")]).success();
    h.run(&["copy", &src, &format!("{untagged}@{index_digest}")])
        .success();
    assert_eq!(h.run(&["tags", &untagged]).success().stdout, "v8\n");
}

/// A folder where a copy end is expected is no registry reference: the usage error says to
/// write `oci:` (or `oci-archive:`) in front of it, as `sdk mirror --to` does.
#[test]
fn a_path_as_a_copy_end_hints_at_oci_and_oci_archive() {
    let h = Harness::new();
    let folder = h.path("layout");
    let path = arg(&folder);
    let run = h.run(&["copy", "127.0.0.1:5000/tools/sdk:v1", path]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    let hint = format!(
        "hint: for an OCI layout folder write oci:{path}, for a layout archive oci-archive:{path}"
    );
    assert!(run.stderr.contains(&hint), "{}", run.stderr);
    let run = h.run(&[
        "copy",
        "./layout:v1",
        "127.0.0.1:5000/tools/sdk:v1",
        "--json",
    ]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("write oci:./layout:v1"),
        "{}",
        run.stderr
    );
    assert!(!folder.exists());
}

#[test]
fn an_archive_target_in_a_missing_folder_fails_before_any_download() {
    let a = Registry::start();
    let h = Harness::new();
    push_two_platform_index(&a, "tools/sdk", "v9");
    let front = Recorder::forwarding(&a.url());
    let missing = h.path("missing");
    let dst = format!("oci-archive:{}", arg(&missing.join("sk.tar")));
    let run = h.run(&["copy", &format!("{}/tools/sdk:v9", front.host()), &dst]);
    assert_ne!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr.contains(&missing.display().to_string()),
        "{}",
        run.stderr
    );
    let blob_gets: Vec<String> = front
        .log()
        .into_iter()
        .filter(|e| e.method == "GET" && e.target.contains("/blobs/"))
        .map(|e| e.target)
        .collect();
    assert_eq!(blob_gets, Vec::<String>::new());
    assert!(!missing.exists());
}
