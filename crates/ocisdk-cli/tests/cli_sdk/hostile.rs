//! Hostile and corrupt content: archive entries that would reach outside the install, sparse
//! tarballs, corrupt and empty layers, empty SDKs.

use super::*;

/// Publishes the hostile tarball `build(outside)` as python 3.0.0, and in the MCR layout as
/// 3.0.1, and checks that installing either fails naming `entry`, writes nothing outside the
/// root, and leaves no install, temp folder or temp file.
#[track_caller]
fn assert_hostile_install_refused(build: impl FnOnce(&Path) -> Vec<u8>, entry: &str) {
    let registry = Registry::start();
    let h = Harness::new(&registry.url());
    let tarball = build(&h.outside());
    // Both image shapes: the layer is the tarball, or holds it (unpacked as it streams).
    h.publish_bytes("3.0.0", "bookworm", false, &tarball);
    push_filesystem_layer_image(&h, "3.0.1", &tarball, Format::Oci);

    for version in ["3.0.0", "3.0.1"] {
        let run = h.sdk(&["install", "python", version]);
        assert_ne!(run.code, 0, "hostile install succeeded: {}", run.stdout);
        assert!(
            run.stderr.contains(&format!("{entry:?}")),
            "stderr does not name {entry:?}: {}",
            run.stderr
        );
        assert_eq!(list_dir(&h.outside()), ["file"], "outside was written to");
        assert_eq!(read(&h.outside().join("file")), b"precious");
        assert_eq!(
            list_dir(h.dir.path()),
            ["cache", "home", "outside", "root", "work"],
            "something was written beside the root"
        );
        assert!(!h.installed(version).exists(), "an install folder exists");
        let stray: Vec<String> = list_dir(&h.root().join("python"))
            .into_iter()
            .filter(|n| !(n.starts_with('.') && n.ends_with(".lock")))
            .collect();
        assert!(stray.is_empty(), "left in ROOT/python: {stray:?}");
        assert_eq!(list_dir(&h.root()), ["python"]);
    }
    assert!(h.sdk(&["list-installed"]).success().stdout.is_empty());
    assert_nothing_left_over(&h);
}

#[test]
fn install_refuses_a_parent_dir_entry() {
    assert_hostile_install_refused(
        |_| {
            RawTar::new()
                .file("bin/ok", b"fine", 0o755)
                .file("../x", b"evil", 0o644)
                .tar_gz()
        },
        "../x",
    );
}

#[test]
fn install_refuses_an_absolute_entry() {
    assert_hostile_install_refused(
        |_| {
            RawTar::new()
                .file("bin/ok", b"fine", 0o755)
                .file("/ocisdk-test-abs/file", b"evil", 0o644)
                .tar_gz()
        },
        "/ocisdk-test-abs/file",
    );
    assert!(!Path::new("/ocisdk-test-abs").exists());
}

#[test]
fn install_refuses_a_symlink_to_an_outside_folder_then_a_file_through_it() {
    assert_hostile_install_refused(
        |outside| {
            RawTar::new()
                .symlink("etc", path_str(outside))
                .file("etc/passwd", b"evil", 0o644)
                .tar_gz()
        },
        "etc",
    );
}

#[test]
fn install_refuses_a_relative_symlink_climbing_out() {
    // From ROOT/python/3.0.0, `../../../outside` is the sibling of ROOT.
    assert_hostile_install_refused(
        |_| {
            RawTar::new()
                .symlink("etc", "../../../outside")
                .file("etc/file", b"evil", 0o644)
                .tar_gz()
        },
        "etc",
    );
}

#[test]
fn install_refuses_a_hardlink_to_an_outside_file() {
    assert_hostile_install_refused(
        |_| {
            RawTar::new()
                .file("bin/ok", b"fine", 0o755)
                .hardlink("h", "../outside/file")
                .tar_gz()
        },
        "h",
    );
}

#[test]
fn install_refuses_a_character_device() {
    assert_hostile_install_refused(
        |_| {
            RawTar::new()
                .file("bin/ok", b"fine", 0o755)
                .entry(EntryType::Char, "dev/null", 0o666, "", b"")
                .tar_gz()
        },
        "dev/null",
    );
}

/// A filesystem layer (the MCR layout) whose tarball is an old GNU sparse file (type `S`,
/// `tar --format=gnu -S`): passed over as no regular file, it left the layer without a
/// tarball, so the layer itself was taken for it: `sdk pull` wrote the layer out as the
/// SDK (exit 0), and `sdk install` cached it as the SDK's tarball. Both refuse the entry,
/// naming it, and leave nothing behind.
#[test]
fn a_sparse_tarball_in_a_filesystem_layer_is_refused_by_pull_and_install() {
    let registry = Registry::start();
    let h = Harness::new(&registry.url());
    let name = "python-bookworm-3.8.0.tar.gz";
    let inner = sdk_tarball("3.8.0", "bookworm");
    let layer = RawTar::new().gnu_sparse(name, &inner, 4096, 0o644).tar_gz();
    push_layer_image(&h, "3.8.0", &layer, Format::Oci, &[]);
    let refusal = format!("refusing entry {name:?}: sparse file entries are not supported");

    let out = h.work().join("pulled");
    let run = h
        .sdk(&["pull", "python", "3.8.0", "-o", path_str(&out)])
        .expect_code(1);
    assert!(run.stderr.contains(&refusal), "{}", run.stderr);
    assert_eq!(list_dir(&out), Vec::<String>::new(), "pull left files");

    let run = h.sdk(&["install", "python", "3.8.0"]).expect_code(1);
    assert!(run.stderr.contains(&refusal), "{}", run.stderr);
    assert!(!h.installed("3.8.0").exists(), "an install folder exists");
    assert_eq!(find_files(&h.cache(), name), Vec::<PathBuf>::new());
    assert!(h.sdk(&["list-installed"]).success().stdout.is_empty());
    assert_nothing_left_over(&h);
}

#[test]
fn corrupt_layer_blob_fails_verification_and_installs_nothing() {
    let registry = Registry::start();
    let h = Harness::new(&registry.url());
    let tarball = h.publish("3.11.10", "bookworm", false);
    corrupt_blob(&registry, &digest_of(&tarball));

    let run = h.sdk(&["install", "python", "3.11.10"]).expect_code(5);
    assert!(run.stdout.is_empty(), "{:?}", run.stdout);
    assert!(!h.installed("3.11.10").exists(), "an install folder exists");
    assert!(h.sdk(&["list-installed"]).success().stdout.is_empty());
    assert_nothing_left_over(&h);

    let out = h.work().join("pulled");
    h.sdk(&["pull", "python", "3.11.10", "-o", path_str(&out)])
        .expect_code(5);
    assert_eq!(list_dir(&out), Vec::<String>::new(), "pull left files");
}

/// A zero-byte layer (which `sdk publish` refuses, but another tool may push) is no SDK:
/// installing it fails naming it empty and installs nothing, so the next install is not
/// taken for done either.
#[test]
fn empty_layer_installs_nothing() {
    let registry = Registry::start();
    let h = Harness::new(&registry.url());
    let empty = h.work().join("python-bookworm-3.11.9.tar"); // a plain tar layer
    fs::write(&empty, b"").unwrap();
    let reference = h.python_ref("bookworm-3.11.9");
    let label = "org.oryx.version=3.11.9";
    h.run(&["push", path_str(&empty), &reference, "--label", label])
        .success();

    for _ in 0..2 {
        let run = h.sdk(&["install", "python", "3.11.9"]).expect_code(1);
        assert!(
            run.stderr.contains("the archive is empty"),
            "{}",
            run.stderr
        );
        assert!(!h.installed("3.11.9").exists(), "an install folder exists");
        assert!(h.sdk(&["list-installed"]).success().stdout.is_empty());
        assert_nothing_left_over(&h);
    }
}

/// An SDK with nothing to install, in each image shape and each way it is unpacked, is
/// refused naming its image, pinned to the manifest digest, in the message and in the
/// `--json` error's registry, repository and reference, as a registry error names its place.
#[test]
fn an_empty_sdk_is_refused_naming_its_image() {
    let registry = Registry::start();
    let h = Harness::new(&registry.url());
    let only_the_root = RawTar::new().dir("./", 0o755).tar_gz();
    // Pushed as `sdk publish` would (which refuses such a tarball) or another tool might.
    let push = |name: &str, bytes: &[u8], version: &str| {
        let file = h.work().join(name);
        fs::write(&file, bytes).unwrap();
        let label = format!("org.oryx.version={version}");
        let reference = h.python_ref(&format!("bookworm-{version}"));
        h.run(&["push", path_str(&file), &reference, "--label", &label])
            .success();
    };
    // The layer is the tarball (titled so): unpacked as it downloads.
    push("python-bookworm-3.11.7.tar.gz", &only_the_root, "3.11.7");
    // The layer holds the tarball (the MCR layout): unpacked as it is copied out.
    push_filesystem_layer_image(&h, "3.11.8", &only_the_root, Format::Oci);
    // A zero-byte layer: found to be no tar holding the tarball, then unpacked from disk.
    push("python-bookworm-3.11.9.tar", b"", "3.11.9");

    for version in ["3.11.7", "3.11.8", "3.11.9"] {
        let tag = format!("bookworm-{version}");
        let digest = h.run(&["digest", &h.python_ref(&tag)]).success().stdout;
        let digest = digest.trim();
        let image = format!("{}@{digest}", h.python_ref(&tag));
        let message = format!("{image}: the archive is empty: it holds no files");

        let run = h.sdk(&["install", "python", version]).expect_code(1);
        let last = run.stderr.lines().last();
        assert_eq!(
            last,
            Some(format!("error: {message}").as_str()),
            "{}",
            run.stderr
        );

        // Where the failed install kept the tarball in the cache (3.11.7, 3.11.9), this one
        // unpacks it from there.
        let run = h.sdk(&["install", "python", version, "--json", "-q"]);
        let error = run.expect_code(1).error_json();
        assert_eq!(error["kind"], "other", "{error}");
        assert_eq!(error["exit_code"], 1, "{error}");
        assert_eq!(error["registry"], h.host(), "{error}");
        assert_eq!(error["repository"], PYTHON_REPO, "{error}");
        assert_eq!(error["reference"], digest, "{error}");
        assert_eq!(error["message"], message, "{error}");

        assert!(!h.installed(version).exists(), "an install folder exists");
    }
    assert!(h.sdk(&["list-installed"]).success().stdout.is_empty());
    assert_nothing_left_over(&h);
}
