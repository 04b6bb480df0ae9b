//! Installs and pulls interrupted (Ctrl-C) or killed outright, and forced reinstalls that
//! fail: what is left, and what the next run does with it.

use super::*;

#[test]
fn interrupted_install_exits_130_installs_nothing_and_a_rerun_completes() {
    signal_mid_install_in_both_shapes("INT");
}

/// A process killed outright (SIGKILL, like a crash) cannot clean up: its staging folder
/// stays, and in the MCR layout its temporary copy of the tarball in the cache. The next
/// install of that version removes them, in both image shapes.
#[test]
fn killed_install_leaves_a_staging_folder_that_the_next_install_removes() {
    signal_mid_install_in_both_shapes("KILL");
}

/// [`assert_interrupted_then_rerun`] for a layer that is the tarball, and for the MCR
/// layout, where a thread of its own walks the layer while it downloads.
fn signal_mid_install_in_both_shapes(signal: &str) {
    let registry = Registry::start();
    let h = Harness::new(&registry.url());
    let big = pseudo_random_bytes(4 << 20, 9);
    let tarball = big_sdk_tarball("3.11.10", &big);
    h.publish_bytes("3.11.10", "bookworm", false, &tarball);
    assert_interrupted_then_rerun(&h, &registry, "3.11.10", &tarball, &big, signal);
    let inner = big_sdk_tarball("3.11.11", &big);
    let layer = push_filesystem_layer_image(&h, "3.11.11", &inner, Format::Oci);
    assert_interrupted_then_rerun(&h, &registry, "3.11.11", &layer, &big, signal);
}

/// Sends `signal` (`INT` or `KILL`) to an install of python `version` while a proxy holds
/// its `layer` back after 1 MiB and unpacking has begun, and checks that nothing is
/// installed: after SIGINT no staging folder is left either (after SIGKILL one is). Then
/// installs it again through the proxy, checks `lib/libpython.so` holds `big`, and that
/// nothing is left over, not even what the killed process left.
fn assert_interrupted_then_rerun(
    h: &Harness,
    registry: &Registry,
    version: &str,
    layer: &[u8],
    big: &[u8],
    signal: &str,
) {
    let upstream = registry.url();
    let path = format!("/blobs/{}", digest_of(layer));
    let (started_tx, started) = mpsc::channel();
    let started_tx = Mutex::new(started_tx);
    let stalled = AtomicBool::new(false);
    let proxy = ScriptedServer::start(move |req| {
        let response = forward(req, &upstream);
        if req.method == "GET" && req.path().ends_with(&path) && !stalled.swap(true, SeqCst) {
            let _ = started_tx.lock().unwrap().send(());
            return response.stall_after(1 << 20, Duration::from_secs(120));
        }
        response
    });

    let child = h
        .sdk_command(&proxy.url(), &["install", "python", version])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ocisdk");
    started
        .recv_timeout(Duration::from_secs(60))
        .expect("the layer download should start");
    // The partial download is on disk, and unpacking has begun, before the interruption.
    wait_for("a partial download in the cache", || {
        !leftovers(&h.cache()).is_empty()
    });
    wait_for("unpacking to begin", || !staging_folders(h).is_empty());
    let killed = Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(killed.success());
    let output = child.wait_with_output().expect("wait for ocisdk");
    assert!(!h.installed(version).exists(), "an install folder exists");
    if signal == "KILL" {
        assert_eq!(output.status.signal(), Some(9), "{output:?}");
        assert_eq!(staging_folders(h).len(), 1, "{:?}", staging_folders(h));
    } else {
        Run::from_output(output).expect_code(130);
        assert!(staging_folders(h).is_empty(), "{:?}", staging_folders(h));
    }

    h.sdk_via(&proxy.url(), &["install", "python", version])
        .success();
    assert_same_bytes(
        &read(&h.installed(version).join("lib/libpython.so")),
        big,
        "large file",
    );
    assert!(staging_folders(h).is_empty(), "{:?}", staging_folders(h));
    assert_complete_install(h, version);
}

/// A pull killed outright (SIGKILL, like a crash) cannot clean up: the output folder keeps
/// its turn's lock file and, in the MCR layout, the layer and the tarball being copied out
/// of it; when the cache cannot take the download, the download itself lands beside the
/// tarball too. The next pull of that SDK into that folder removes them all, and nothing
/// that is not its own: a file of the user's, and what a pull of another version left.
#[test]
fn killed_pull_leaves_temporary_files_that_the_next_pull_removes() {
    let registry = Registry::start();
    let h = Harness::new(&registry.url());
    let big = pseudo_random_bytes(4 << 20, 21);
    let tarball = big_sdk_tarball("3.11.10", &big);
    h.publish_bytes("3.11.10", "bookworm", false, &tarball);
    let inner = big_sdk_tarball("3.11.11", &big);
    let layer = push_filesystem_layer_image(&h, "3.11.11", &inner, Format::Oci);
    // A file where the cache folder should be: every download then lands beside its file.
    let no_cache = h.work().join("not-a-folder");
    fs::write(&no_cache, b"").unwrap();

    let sdks = [("3.11.10", &tarball, &tarball), ("3.11.11", &layer, &inner)];
    // What a killed pull leaves, for each of the two SDKs' image shapes.
    let cases = [
        (
            h.cache(),
            [&["lock"][..], &["layer", "lock", "tarball copy"]],
        ),
        (
            no_cache,
            [
                &["download", "lock"][..],
                &["layer", "layer download", "lock", "tarball copy"],
            ],
        ),
    ];
    for (cache, left) in &cases {
        for ((version, layer, tarball), left) in sdks.iter().zip(left) {
            assert_killed_pull_then_rerun(&h, &registry, version, layer, tarball, cache, left);
        }
    }
}

/// Files of the user's, and another version's leftovers, which no pull of 3.11.10 or
/// 3.11.11 may remove (3.11.1's names begin as theirs do).
const NOT_THE_PULLS: [&str; 3] = [
    ".ocisdk-member-python-bookworm-3.11.1.tar.gz-AbC123",
    ".python-bookworm-3.11.1.tar.gz.AbC123.part",
    "notes.txt",
];

/// SIGKILLs a pull of python `version` into a fresh folder while a proxy holds its `layer`
/// back after 2 MiB, once 1 MiB of it is on disk, with `cache` as the cache folder. Checks
/// that the folder then holds the temporary files `left` ([`temp_kind`]), pulls again, and
/// checks that the folder holds the `tarball` and its sidecar, and nothing else of the pull's.
fn assert_killed_pull_then_rerun(
    h: &Harness,
    registry: &Registry,
    version: &str,
    layer: &[u8],
    tarball: &[u8],
    cache: &Path,
    left: &[&str],
) {
    let upstream = registry.url();
    let path = format!("/blobs/{}", digest_of(layer));
    let stalled = AtomicBool::new(false);
    let release = Release::new();
    let held = release.clone();
    let proxy = ScriptedServer::start(move |req| {
        let response = forward(req, &upstream);
        if req.method == "GET" && req.path().ends_with(&path) && !stalled.swap(true, SeqCst) {
            return response.stall_until(2 << 20, Duration::from_secs(120), &held);
        }
        response
    });
    let out = h.work().join(format!(
        "pulled-{version}-{}",
        cache.file_name().unwrap().to_string_lossy()
    ));
    fs::create_dir(&out).unwrap();
    for name in NOT_THE_PULLS {
        fs::write(out.join(name), b"not the pull's").unwrap();
    }
    let pull = |url: &str| {
        let root = h.root();
        let args = ["sdk", "pull", "python", version, "-o", path_str(&out)];
        let place = ["--registry", url, "--root", path_str(&root)];
        h.command(
            &[&args[..], &place].concat(),
            &[("OCISDK_CACHE_DIR", path_str(cache))],
        )
    };
    let name = format!("python-bookworm-{version}.tar.gz");

    let mut child = pull(&proxy.url())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn ocisdk");
    let on_disk = || {
        let partials = cache.join("partial-v1");
        [&partials, &out]
            .iter()
            .flat_map(|dir| list_dir(dir).into_iter().map(|n| dir.join(n)))
            .filter_map(|file| fs::metadata(file).ok())
            .map(|meta| meta.len())
            .sum::<u64>()
    };
    wait_for("1 MiB of the layer on disk", || {
        assert!(child.try_wait().unwrap().is_none(), "ocisdk exited early");
        on_disk() >= 1 << 20
    });
    child.kill().unwrap();
    let status = child.wait().unwrap();
    release.release();
    assert_eq!(status.signal(), Some(9), "{status}");
    let mut kinds: Vec<String> = list_dir(&out)
        .iter()
        .filter(|n| !NOT_THE_PULLS.contains(&n.as_str()))
        .map(|n| temp_kind(n, &name))
        .collect();
    kinds.sort();
    assert_eq!(kinds, left, "{:?}", list_dir(&out));

    Run::from_output(pull(&registry.url()).output().expect("run ocisdk")).success();
    assert_same_bytes(&read(&out.join(&name)), tarball, "pulled tarball");
    let mut want: Vec<String> = NOT_THE_PULLS.iter().map(|n| n.to_string()).collect();
    want.extend([name.clone(), format!("{name}.manifest-digest")]);
    want.sort();
    assert_eq!(list_dir(&out), want);
}

/// What the file `name` in the folder of a pull of the tarball `tarball` is, when it is a
/// temporary file of that pull; else `name` itself.
fn temp_kind(name: &str, tarball: &str) -> String {
    let random = |s: &str| s.len() == 6 && s.chars().all(|c| c.is_ascii_alphanumeric());
    let of = |kind: &str, name: &str| {
        name.strip_prefix(&format!("{kind}{tarball}-"))
            .is_some_and(random)
    };
    let download_of = |name: &str| {
        name.strip_prefix('.')
            .and_then(|n| n.strip_suffix(".part"))
            .and_then(|n| n.rsplit_once('.'))
            .filter(|(_, r)| random(r))
            .map(|(file, _)| file.to_string())
    };
    let kind = if name == format!(".{tarball}.lock") {
        "lock"
    } else if of(".ocisdk-layer-", name) {
        "layer"
    } else if of(".ocisdk-member-", name) {
        "tarball copy"
    } else if download_of(name).as_deref() == Some(tarball) {
        "download"
    } else if download_of(name).is_some_and(|file| of(".ocisdk-layer-", &file)) {
        "layer download"
    } else {
        name
    };
    kind.to_string()
}

#[test]
fn failed_forced_reinstall_keeps_the_previous_install() {
    let registry = Registry::start();
    let h = Harness::new(&registry.url());
    let tarball = h.publish("3.11.10", "bookworm", false);
    // The MCR layout unpacks as the layer streams: the old install must outlive that too.
    let layer = push_filesystem_layer_image(
        &h,
        "3.11.11",
        &sdk_tarball("3.11.11", "bookworm"),
        Format::Oci,
    );
    for (version, blob) in [("3.11.10", &tarball), ("3.11.11", &layer)] {
        h.sdk(&["install", "python", version]).success();
        let before = snapshot(&h.installed(version));

        corrupt_blob(&registry, &digest_of(blob));
        // Without the cached tarball, --force has to download the (now corrupt) layer.
        fs::remove_dir_all(h.cache()).unwrap();
        h.sdk(&["install", "python", version, "--force"])
            .expect_code(5);
        assert_eq!(snapshot(&h.installed(version)), before);
        assert_complete_install(&h, version);
    }
}

/// Ctrl-C while a `--force` reinstall unpacks the tarball it already has in the cache stops
/// the unpacking: exit 130, the previous install as it was, no staging folder. The unpacking
/// ran on a thread the interruption did not reach: the process went on to the end of the
/// archive, replaced the install, and only then exited 130, having let go of the version's
/// lock meanwhile (and a huge tarball could not be stopped at all).
#[test]
fn interrupted_reinstall_from_the_cache_keeps_the_previous_install() {
    let registry = Registry::start();
    let h = Harness::new(&registry.url());
    // Enough files that unpacking them takes a while after it has visibly begun.
    let mut tarball = RawTar::new()
        .dir("bin", 0o755)
        .file(
            "bin/python",
            python_script("3.11.10", "bookworm").as_bytes(),
            0o755,
        )
        .symlink("bin/python3", "python")
        .dir("lib", 0o755)
        .file("lib/VERSION", b"3.11.10", 0o644)
        .dir("many", 0o755);
    for i in 0..20_000 {
        tarball = tarball.file(&format!("many/{i}"), b"", 0o644);
    }
    h.publish_bytes("3.11.10", "bookworm", false, &tarball.tar_gz());
    h.sdk(&["install", "python", "3.11.10"]).success();
    let installed = h.installed("3.11.10");
    fs::write(installed.join("from-the-first-install"), b"old").unwrap();

    let child = h
        .sdk_command(
            &registry.url(),
            &["install", "python", "3.11.10", "--force"],
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ocisdk");
    wait_for("the reinstall to unpack", || {
        staging_folders(&h).iter().any(|name| {
            let many = h.root().join("python").join(name).join("many");
            fs::read_dir(many).is_ok_and(|mut files| files.nth(100).is_some())
        })
    });
    let killed = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(killed.success());
    let output = child.wait_with_output().expect("wait for ocisdk");
    Run::from_output(output).expect_code(130);
    assert_eq!(
        read(&installed.join("from-the-first-install")),
        b"old",
        "the previous install was replaced"
    );
    assert_complete_install(&h, "3.11.10");
    assert!(staging_folders(&h).is_empty(), "{:?}", staging_folders(&h));
}
