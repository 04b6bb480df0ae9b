//! How failures and odd input are reported: one platform or spec failing alone, missing
//! repositories, paths that are not UTF-8, and usage errors.

use super::*;

/// A platform that cannot be listed (a typo: its repository does not exist) fails its own
/// lines only: the other platforms of the file are still installed.
#[test]
fn sync_installs_the_other_platforms_when_one_cannot_be_listed() {
    let c = catalogue();
    let h = c.harness();
    let list = h.work().join("sdks.txt");
    fs::write(&list, "nodjs 20\npython 3.11.10\n").unwrap();
    let run = h.sdk(&["sync", path_str(&list)]).expect_code(3);
    assert!(run.stderr.contains("nodjs 20"), "{}", run.stderr);
    assert!(
        run.stderr.contains("1 of 2 installs failed"),
        "{}",
        run.stderr
    );
    assert_complete_install(&h, "3.11.10");
}

/// A platform whose repository does not exist (a typo, or another prefix or template) says
/// which repository was asked for and which settings made it: the registry's NAME_UNKNOWN
/// alone does not tell the user that the platform name is where to look.
#[test]
fn a_platform_without_a_repository_hints_at_the_name_prefix_and_template() {
    let c = catalogue();
    let h = c.harness();
    let run = h.sdk(&["versions", "pyhton"]).expect_code(3);
    let hint = format!("hint: {} has no repository oryx/pyhton-sdk: check the platform name, and --prefix and --repo-template", h.host());
    assert!(run.stderr.contains(&hint), "{}", run.stderr);

    // A batch names it in each failed line's error object too.
    let run = h
        .sdk(&["install", "pyhton", "3.11", "3.12", "--json"])
        .expect_code(3);
    let first = run.stderr.lines().next().expect("an error object");
    let error: serde_json::Value = serde_json::from_str(first).unwrap();
    let hint = error["error"]["hint"].as_str().expect("a hint");
    assert!(hint.contains("has no repository oryx/pyhton-sdk"), "{hint}");
}

/// `sdk default` of a platform without a repository fails as `sdk resolve PLATFORM default`
/// does, with the same hint and JSON error, instead of saying that the repository's default
/// tag does not exist, which sends the user looking for a tag.
#[test]
fn default_of_a_platform_without_a_repository_hints_as_resolve_does() {
    let c = catalogue();
    let h = c.harness();
    let run = h.sdk(&["default", "pyhton"]).expect_code(3);
    let hint = format!("hint: {} has no repository oryx/pyhton-sdk", h.host());
    assert!(run.stderr.contains(&hint), "{}", run.stderr);
    assert!(!run.stderr.contains("no default"), "{}", run.stderr);

    let resolve = h
        .sdk(&["resolve", "pyhton", "default", "--json"])
        .expect_code(3)
        .error_json();
    assert!(resolve["hint"].is_string(), "{resolve}");
    for or_latest in [&[][..], &["--or-latest"][..]] {
        let mut args = vec!["default", "pyhton", "--json"];
        args.extend_from_slice(or_latest);
        let default = h.sdk(&args).expect_code(3).error_json();
        assert_eq!(default, resolve, "{args:?}");
    }
}

/// A line whose spec does not parse fails alone; and a list on standard input cannot share
/// it with --password-stdin, which would swallow the list.
#[test]
fn sync_installs_the_other_lines_when_one_spec_does_not_parse() {
    let c = catalogue();
    let h = c.harness();
    let list = h.work().join("sdks.txt");
    fs::write(&list, "python 3.x\npython 3.11.10\n").unwrap();
    let run = h.sdk(&["sync", path_str(&list)]).expect_code(2);
    assert!(
        run.stderr.contains("python 3.x: invalid version spec"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("1 of 2 installs failed"),
        "{}",
        run.stderr
    );
    assert_complete_install(&h, "3.11.10");

    let run = h
        .sdk(&["sync", "-", "-u", "alice", "--password-stdin"])
        .expect_code(2);
    assert!(
        run.stderr.contains("both read standard input"),
        "{}",
        run.stderr
    );
}

/// A folder whose name is not UTF-8 is written to, and named in the JSON (lossily): the JSON
/// output used to panic (exit 101) after the file was written.
#[test]
fn json_names_a_path_that_is_not_utf8() {
    use std::os::unix::ffi::OsStrExt;
    let c = catalogue();
    let h = c.harness();
    let out = h.work().join(std::ffi::OsStr::from_bytes(b"p\xff"));
    let reference = h.python_ref("bookworm-3.11.10");
    let layer = out.join("layer.tar.gz");
    let sdk_pull = [
        "sdk",
        "pull",
        "python",
        "3.11.10",
        "--json",
        "--registry",
        &h.url,
    ];
    for (args, to) in [
        (&sdk_pull[..], &out),
        (&["pull", &reference, "--json"][..], &layer),
    ] {
        let mut cmd = h.command(args, &[]);
        cmd.arg("-o").arg(to);
        let run = Run::from_output(cmd.output().unwrap()).success();
        let text = serde_json::to_string(&run.json()).unwrap();
        assert!(text.contains("p\u{fffd}"), "{text}");
    }
    assert!(out.join("python-bookworm-3.11.10.tar.gz").is_file());
    assert!(layer.is_file());
}

/// An install root whose name is not UTF-8, from `--root` or `DYNAMIC_INSTALL_ROOT_DIR`, is
/// where the SDK goes: `--root` used to be refused (exit 2) and the variable ignored, with a
/// warning, for the default root.
#[test]
fn an_install_root_that_is_not_utf8_is_installed_into() {
    use std::os::unix::ffi::OsStrExt;
    let c = catalogue();
    let h = c.harness();
    let install = ["sdk", "install", "python", "3.11.10", "--registry", &h.url];
    for (name, by_flag) in [(&b"flag-\xff"[..], true), (b"env-\xfe", false)] {
        let root = h.work().join(std::ffi::OsStr::from_bytes(name));
        let mut cmd = h.command(&install, &[]);
        if by_flag {
            cmd.arg("--root").arg(&root);
        } else {
            cmd.env("DYNAMIC_INSTALL_ROOT_DIR", &root);
        }
        let run = Run::from_output(cmd.output().unwrap()).success();
        assert!(!run.stderr.contains("UTF-8"), "{}", run.stderr);
        let sdk = root.join("python/3.11.10");
        assert!(sdk.join(SENTINEL).is_file(), "nothing in {}", sdk.display());
        assert_eq!(
            read(&sdk.join("bin/python")),
            python_script("3.11.10", "bookworm").as_bytes()
        );
    }
}

/// A default tag naming an index whose image for this machine the registry lost: the error
/// is that image's 404, not "no default tag" (the tag is there).
#[test]
fn a_default_whose_image_is_missing_is_not_reported_as_no_default() {
    let registry = Registry::start();
    let h = Harness::new(&registry.url());
    let image = |arch: &str| {
        ImageBuilder::new()
            .layer(
                sdk_tarball("3.12.1", "bookworm"),
                media_types::OCI_LAYER_GZIP,
            )
            .label("org.oryx.version", "3.12.1")
            .label("arch", arch)
    };
    let mut layout = OciLayout::new();
    layout.add_index(
        "default",
        vec![
            (Platform::linux("amd64"), image("amd64")),
            (Platform::linux("arm64"), image("arm64")),
        ],
    );
    skopeo::push_index(
        layout.path(),
        "default",
        h.host(),
        &format!("{PYTHON_REPO}:bookworm-default"),
    );
    let index = h
        .run(&["manifest", &h.python_ref("bookworm-default")])
        .success();
    let index: serde_json::Value = serde_json::from_str(&index.stdout).unwrap();
    for child in index["manifests"].as_array().unwrap() {
        let digest = child["digest"].as_str().unwrap();
        let url = format!("{}/v2/{PYTHON_REPO}/manifests/{digest}", h.url);
        let deleted = ocisdk_testkit::http::request("DELETE", &url, &[], &[]).unwrap();
        assert_eq!(deleted.status, 202, "{}", deleted.text());
    }
    let run = h.sdk(&["default", "python"]).expect_code(3);
    assert!(!run.stderr.contains("no default"), "{}", run.stderr);
    assert!(run.stderr.contains("MANIFEST_UNKNOWN"), "{}", run.stderr);
}

/// A failure several specs share (one platform listing) is reported for each, each with its
/// kind, exit code and registry: the ones after the first used to say "other", exit code 1.
#[test]
fn a_shared_failure_keeps_its_kind_for_every_spec() {
    let c = catalogue();
    let h = c.harness();
    let run = h
        .sdk(&["install", "nosuch", "1.0.0", "2.0.0", "--json"])
        .expect_code(3);
    let errors: Vec<serde_json::Value> = run
        .stderr
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(errors.len(), 2, "{}", run.stderr);
    for (error, spec) in errors.iter().zip(["1.0.0", "2.0.0"]) {
        let error = &error["error"];
        assert_eq!(error["kind"], "not_found", "{error}");
        assert_eq!(error["exit_code"], 3, "{error}");
        assert_eq!(error["registry"], h.host(), "{error}");
        assert_eq!(error["status"], 404, "{error}");
        let message = error["message"].as_str().unwrap();
        assert!(
            message.starts_with(&format!("nosuch {spec}: ")),
            "{message}"
        );
    }
}

/// An empty --os or --root is a usage error, not the empty flavour (no versions, exit 0) or
/// the current folder; an empty --prefix stays valid (no prefix).
#[test]
fn empty_catalogue_flags_are_usage_errors() {
    let c = catalogue();
    let h = c.harness();
    for flag in ["--os", "--root", "--registry", "--repo-template"] {
        let run = h
            .run(&["sdk", "versions", "python", flag, ""])
            .expect_code(2);
        assert!(run.stderr.contains(flag), "{flag}: {}", run.stderr);
    }
    let run = h.sdk(&[
        "versions",
        "python",
        "--prefix",
        "",
        "--repo-template",
        "oryx/{platform}-sdk",
    ]);
    assert_eq!(run.success().stdout, one_per_line(&BOOKWORM));
}

/// `--jobs 0` would run nothing at once: every command that takes `--jobs` refuses it, as
/// `copy` and `sdk mirror` always did (`sdk install` and `sdk sync` used to take it as 1).
#[test]
fn jobs_zero_is_a_usage_error_for_every_command_that_takes_jobs() {
    let c = catalogue();
    let h = c.harness();
    let list = h.work().join("sdks.txt");
    fs::write(&list, "python 3.11.10\n").unwrap();
    let to = format!("oci:{}", path_str(&h.work().join("mirror")));
    let commands: [&[&str]; 3] = [
        &["install", "python", "3.11.10"],
        &["sync", path_str(&list)],
        &["mirror", "python", "3.11.10", "--to", &to],
    ];
    for args in commands {
        let mut args = args.to_vec();
        args.extend_from_slice(&["--jobs", "0"]);
        let run = h.sdk(&args).expect_code(2);
        assert!(
            run.stderr.contains("'--jobs <N>'"),
            "{args:?}: {}",
            run.stderr
        );
    }
    assert!(list_dir(&h.root()).is_empty(), "nothing was installed");
}
