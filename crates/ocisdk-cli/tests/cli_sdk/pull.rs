//! `sdk pull`: the tarball and its sidecar, turns and locks (and file systems without them),
//! Ctrl-C while waiting for a turn, and which requests a pull or install makes.

use super::*;

#[test]
fn pull_writes_the_tarball_and_a_sidecar_with_the_manifest_digest() {
    let c = catalogue();
    let h = c.harness();
    let out = h.work().join("pulled");
    let run = h
        .sdk(&["pull", "python", "3.11", "-o", path_str(&out)])
        .success();
    let tarball = out.join("python-bookworm-3.11.10.tar.gz");
    assert_eq!(run.stdout, format!("{}\n", tarball.display()));
    assert_holds_only_the_pulled_tarball(&c, &out);
    let sidecar = String::from_utf8(read(
        &out.join("python-bookworm-3.11.10.tar.gz.manifest-digest"),
    ))
    .unwrap();
    let digest = h
        .run(&["digest", &h.python_ref("bookworm-3.11.10")])
        .success()
        .stdout;
    assert!(digest.starts_with("sha256:"), "{digest:?}");
    assert_eq!(sidecar.trim(), digest.trim());
}

/// A tarball is named for its compression: `tar -xzf` of a `.tar.gz` that holds zstd fails.
/// Republished compressed otherwise, the next pull leaves only the new name behind.
#[test]
fn pull_names_the_tarball_for_its_compression() {
    let registry = Registry::start();
    let h = Harness::new(&registry.url());
    let out = h.work().join("pulled");
    let args = ["pull", "python", "3.12.1", "-o", path_str(&out), "--json"];
    let tar = || RawTar::new().file("lib/VERSION", b"3.12.1", 0o644);
    let shapes = [
        (".tar.zst", tar().tar_zst()),
        (".tar", tar().finish()),
        (".tar.gz", tar().tar_gz()),
    ];
    for (extension, tarball) in &shapes {
        let file = h.work().join(format!("python-bookworm-3.12.1{extension}"));
        fs::write(&file, tarball).unwrap();
        h.sdk(&[
            "publish",
            "python",
            "3.12.1",
            path_str(&file),
            "--os",
            "bookworm",
        ])
        .success();

        let name = format!("python-bookworm-3.12.1{extension}");
        let json = h.sdk(&args).success().json();
        assert_eq!(json["cached"], false, "{json}");
        assert_eq!(json["pull"]["path"], path_str(&out.join(&name)), "{json}");
        assert_eq!(
            list_dir(&out),
            [name.clone(), format!("{name}.manifest-digest")]
        );
        assert_same_bytes(&read(&out.join(&name)), tarball, &name);
        let again = h.sdk(&args).success().json();
        assert_eq!(again["cached"], true, "{again}");
        assert_eq!(again["pull"]["path"], json["pull"]["path"], "{again}");
    }
    h.sdk(&["install", "python", "3.12.1"]).success();
    assert_eq!(read(&h.installed("3.12.1").join("lib/VERSION")), b"3.12.1");
}

/// A folder the user may not write, holding the current tarball, is a pull that finds it
/// there: pulls take turns through a lock file beside the tarball, and a folder that cannot
/// take one cannot take anything else this user's pulls would write either.
#[test]
fn pull_into_a_read_only_folder_holding_the_current_tarball_finds_it_there() {
    let c = catalogue();
    let h = c.harness();
    let out = h.work().join("pulled");
    let args = ["pull", "python", "3.11.10", "-o", path_str(&out), "--json"];
    h.sdk(&args).success();
    let bin = h.make_unprivileged();
    fs::set_permissions(&out, fs::Permissions::from_mode(0o555)).unwrap();

    let json = h.sdk_unprivileged(&bin, &args).success().json();
    assert_eq!(json["cached"], true, "{json}");
    assert_holds_only_the_pulled_tarball(&c, &out);
}

/// A file system that cannot lock files (NFS without its lock daemon answers ENOLCK) still
/// takes pulls, as it did before pulls took turns: the pull goes ahead without one, says
/// so, and leaves only the tarball and its sidecar. `flock` is made to fail for the pull
/// alone by a preloaded shim.
#[test]
fn pull_where_files_cannot_be_locked_goes_ahead_without_a_turn() {
    let c = catalogue();
    let h = c.harness();
    let shim = no_lock_shim(&h);
    let out = h.work().join("pulled");
    let output = h
        .sdk_command(&h.url, &["pull", "python", "3.11.10", "-o", path_str(&out)])
        .env("LD_PRELOAD", &shim)
        .output()
        .expect("run ocisdk sdk pull");
    let run = Run::from_output(output).success();
    assert!(
        run.stderr.contains("without waiting for other pulls"),
        "{}",
        run.stderr
    );
    assert_holds_only_the_pulled_tarball(&c, &out);
}

/// Builds, in `h`'s work folder, a shim to preload whose `flock` fails with ENOLCK, as on NFS
/// without its lock daemon, and returns its path.
fn no_lock_shim(h: &Harness) -> PathBuf {
    preload_shim(
        h,
        "nolock",
        "#include <errno.h>\nint flock(int fd, int op) { (void)fd; (void)op; errno = ENOLCK; return -1; }\n",
    )
}

/// Install roots and caches on a file system that cannot lock files (NFS without its lock
/// daemon) take installs and uninstalls, as they take pulls: each goes ahead without its
/// locks (the version's and the cached tarball's) and warns once that concurrent installs
/// of one SDK are not coordinated there. They used to fail on the first lock.
#[test]
fn install_and_uninstall_where_files_cannot_be_locked_go_ahead_and_warn_once() {
    let c = catalogue();
    let h = c.harness();
    let shim = no_lock_shim(&h);
    let without_locks = |args: &[&str]| {
        let output = h
            .sdk_command(&h.url, args)
            .env("LD_PRELOAD", &shim)
            .output()
            .expect("run ocisdk sdk");
        let run = Run::from_output(output).success();
        assert_eq!(
            run.stderr.matches("not coordinated").count(),
            1,
            "{}",
            run.stderr
        );
        // Nor can a download resume from the cache there: said once, not once per blob.
        assert!(
            run.stderr.matches("without resuming").count() <= 1,
            "{}",
            run.stderr
        );
        run
    };
    without_locks(&["install", "python", "3.11.10", "3.12.4"]);
    for version in ["3.11.10", "3.12.4"] {
        assert!(h.installed(version).join(SENTINEL).is_file(), "{version}");
        assert_eq!(
            read(&h.installed(version).join("bin/python")),
            python_script(version, "bookworm").as_bytes()
        );
    }
    // Again with --force: from the cache this time, which is not locked either.
    without_locks(&["install", "python", "3.11.10", "--force"]);
    assert!(h.installed("3.11.10").join(SENTINEL).is_file());

    without_locks(&["uninstall", "python", "3.11.10"]);
    assert!(!h.installed("3.11.10").exists());
    assert!(h.installed("3.12.4").join(SENTINEL).is_file());
}

/// Ctrl-C while a pull waits for another pull's turn ends it with exit code 130 while the
/// other still holds the turn, and it leaves nothing in the folder: the wait is no work of
/// its own to see through. It used to wait, after Ctrl-C, until the other pull was done.
#[test]
fn ctrl_c_while_a_pull_waits_for_its_turn_exits_130_without_waiting_for_the_other() {
    use std::io::BufRead;
    let c = catalogue();
    let h = c.harness();
    let out = h.work().join("pulled");
    fs::create_dir(&out).unwrap();
    // The other pull's turn, held by this test until the end.
    let lock = ".python-bookworm-3.11.10.tar.gz.lock";
    let turn = fs::File::create(out.join(lock)).unwrap();
    turn.lock().unwrap();

    let args = ["pull", "python", "3.11.10", "-o", path_str(&out), "--json"];
    let mut child = h
        .sdk_command(&h.url, &args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ocisdk");
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut said = String::new();
    while !said.contains("waiting for another pull") {
        let read = stderr.read_line(&mut said).unwrap();
        assert_ne!(read, 0, "ended without saying that it waits: {said}");
    }
    let killed = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(killed.success());

    // Waited for on a thread of its own: a pull that would not end while the turn is held
    // must fail this test, not hang it.
    let (ended_tx, ended) = mpsc::channel();
    std::thread::spawn(move || {
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
        let _ = ended_tx.send((child.wait().expect("wait for ocisdk"), rest));
    });
    let ended = ended.recv_timeout(Duration::from_secs(60));
    drop(turn);
    let (status, rest) = ended.expect("the pull ended while the other still held its turn");
    assert_eq!(status.code(), Some(130), "{said}{rest}");
    assert!(rest.contains(r#""kind":"interrupted""#), "{rest}");
    assert_eq!(list_dir(&out), [lock]);
}

/// Ctrl-C while an install waits for another install of the same version ends it with exit
/// code 130 while the other still runs, as it does a pull waiting for its turn. It used to
/// wait, after Ctrl-C, until the other install was done.
#[test]
fn ctrl_c_while_an_install_waits_for_another_exits_130_without_waiting_for_it() {
    let c = catalogue();
    let h = c.harness();
    let platform_dir = h.root().join("python");
    fs::create_dir(&platform_dir).unwrap();
    // The other install's lock of the version, held by this test until the end.
    let held = fs::File::create(platform_dir.join(".3.11.10.lock")).unwrap();
    held.lock().unwrap();

    let mut child = h
        .sdk_command(&h.url, &["install", "python", "3.11.10"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ocisdk");
    // An install says nothing while it waits: the kernel shows its blocked request.
    let waiter = format!("-> FLOCK  ADVISORY  WRITE {} ", child.id());
    wait_for("the install to wait for the lock", || {
        fs::read_to_string("/proc/locks").is_ok_and(|locks| locks.contains(&waiter))
    });
    let killed = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(killed.success());

    // Waited for on a thread of its own: an install that would not end while the lock is
    // held must fail this test, not hang it.
    let (ended_tx, ended) = mpsc::channel();
    let stdout = child.stdout.take();
    std::thread::spawn(move || {
        drop(stdout);
        let _ = ended_tx.send(child.wait_with_output().expect("wait for ocisdk"));
    });
    let ended = ended.recv_timeout(Duration::from_secs(60));
    drop(held);
    let output = ended.expect("the install ended while the other still held the lock");
    Run::from_output(output).expect_code(130);
    assert!(!h.installed("3.11.10").exists());
}

/// In a folder two users write, the lock file of one user's pull is not the other's to
/// write (umask 022 makes it 0644): the other's pull of the same SDK still waits for its
/// turn, locking the file it may only read, and then pulls. It used to pull at once, side by
/// side with the first, which the turns are there to prevent.
#[test]
fn a_pull_waits_for_the_turn_of_another_users_pull_in_a_shared_folder() {
    use std::io::BufRead;
    let c = catalogue();
    let h = c.harness();
    let bin = h.make_unprivileged();
    let out = h.work().join("shared");
    fs::create_dir(&out).unwrap();
    fs::set_permissions(&out, fs::Permissions::from_mode(0o777)).unwrap();
    // The other user's turn (ours, when not root: then the mode alone keeps us from writing).
    let lock = out.join(".python-bookworm-3.11.10.tar.gz.lock");
    let turn = fs::File::create(&lock).unwrap();
    fs::set_permissions(&lock, fs::Permissions::from_mode(0o444)).unwrap();
    turn.lock().unwrap();

    let root = h.root();
    let args = [
        "sdk",
        "pull",
        "python",
        "3.11.10",
        "-o",
        path_str(&out),
        "--registry",
        &h.url,
        "--root",
        path_str(&root),
    ];
    let mut cmd = h.command_of(&bin, &args, &[]);
    let mut child = cli::unprivileged(&mut cmd)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ocisdk");
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut said = String::new();
    while !said.contains("waiting for another pull") {
        let read = stderr.read_line(&mut said).unwrap();
        assert_ne!(
            read, 0,
            "ended without waiting for the other's turn: {said}"
        );
    }
    // The other's turn ends as a pull's does: its lock file goes, then its lock.
    fs::remove_file(&lock).unwrap();
    drop(turn);
    child.stderr = Some(stderr.into_inner());
    Run::from_output(child.wait_with_output().expect("wait for ocisdk")).success();
    assert_holds_only_the_pulled_tarball(&c, &out);
}

#[test]
fn first_pull_gets_the_manifest_once_and_second_only_heads_it() {
    let c = catalogue();
    let h = c.harness();
    let proxy = ScriptedServer::proxy_to(&c.registry.url());
    let out = h.work().join("pulled");
    let args = ["pull", "python", "3.11", "-o", path_str(&out), "--json"];

    let first = h.sdk_via(&proxy.url(), &args).success().json();
    assert_eq!(first["cached"], false, "{first}");
    // The proxy sees downloads, so the check below cannot pass vacuously.
    assert!(!blob_requests(&proxy).is_empty(), "{:?}", proxy.requests());
    // With nothing on disk there is nothing to HEAD for: one GET names the digest and
    // brings the manifest.
    assert_eq!(
        manifest_requests(&proxy),
        [format!("GET /v2/{PYTHON_REPO}/manifests/bookworm-3.11.10")]
    );

    proxy.clear_requests();
    let second = h.sdk_via(&proxy.url(), &args).success().json();
    assert_eq!(second["cached"], true, "{second}");
    assert_eq!(blob_requests(&proxy), Vec::<String>::new());
    assert_eq!(
        manifest_requests(&proxy),
        [format!("HEAD /v2/{PYTHON_REPO}/manifests/bookworm-3.11.10")]
    );
    assert_same_bytes(
        &read(&out.join("python-bookworm-3.11.10.tar.gz")),
        c.tarball("bookworm-3.11.10"),
        "cached tarball",
    );
}

/// A version named in full is looked up by its tag alone: an install or pull from an empty
/// cache is one manifest GET and one blob GET, never the tag list (many pages, each a round
/// trip, on a large registry), since the pull uses the manifest that resolving fetched. The
/// answer is the one the listing gave.
#[test]
fn an_exact_version_is_fetched_by_its_tag_without_listing_the_tags() {
    let c = catalogue();
    let h = c.harness();
    let proxy = ScriptedServer::proxy_to(&c.registry.url());
    let tag = "bookworm-3.11.10";
    let manifest_get = format!("GET /v2/{PYTHON_REPO}/manifests/{tag}");
    let blob_get = format!("GET /v2/{PYTHON_REPO}/blobs/{}", digest_of(c.tarball(tag)));
    let sdk = |args: &[&str]| {
        proxy.clear_requests();
        let json = h.sdk_via(&proxy.url(), args).success().json();
        (json, requests_to(&proxy.requests(), "/v2/"))
    };

    let (resolved, asked) = sdk(&["resolve", "python", "3.11.10", "--json"]);
    let want = serde_json::json!({
        "os": "bookworm",
        "platform": "python",
        "reference": format!("{}/{PYTHON_REPO}:{tag}", proxy.host()),
        "tag": tag,
        "version": "3.11.10",
    });
    assert_eq!(resolved, want);
    assert_eq!(asked, [manifest_get.as_str()]);

    let (installed, asked) = sdk(&["install", "python", "3.11.10", "--json"]);
    assert_eq!(installed["cached"], false, "{installed}");
    assert_complete_install(&h, "3.11.10");
    assert_eq!(asked, [manifest_get.as_str(), &blob_get]);

    let out = h.work().join("pulled");
    let pull = ["pull", "python", "3.11.10", "-o", path_str(&out), "--json"];
    let (pulled, asked) = sdk(&pull);
    assert_eq!(pulled["cached"], false, "{pulled}");
    assert_same_bytes(
        &read(&out.join("python-bookworm-3.11.10.tar.gz")),
        c.tarball(tag),
        "pulled tarball",
    );
    assert_eq!(asked, [manifest_get.as_str(), &blob_get]);
    // The manifest resolving fetched says the copy is current, as a HEAD would.
    let (pulled, asked) = sdk(&pull);
    assert_eq!(pulled["cached"], true, "{pulled}");
    assert_eq!(asked, [manifest_get.as_str()]);
}

/// A full version whose own tag is missing is resolved by the listing, as before: a
/// four-part version of it, a .NET `{sdk}_{runtime}` tag, and when nothing matches, the
/// nearest versions. Only the tag's 404 comes first. With `--pre`, an existing release tag
/// still beats its pre-releases.
#[test]
fn an_exact_version_without_its_own_tag_is_resolved_by_the_listing_as_before() {
    let registry = Registry::start();
    let h = Harness::new(&registry.url());
    for version in ["3.11.9", "3.11.10.2", "3.12.4rc1", "3.12.4", "3.12.5rc1"] {
        h.publish(version, "bookworm", false);
    }
    // .NET tags its images `{os}-{sdk}_{runtime}`, which the SDK version alone does not name.
    publish_dotnet(&h, "8.0.100_8.0.0", &[]).success();
    let dotnet = h.work().join("dotnet-bookworm-8.0.100.tar.gz");
    let proxy = ScriptedServer::proxy_to(&registry.url());
    let sdk = |args: &[&str]| {
        proxy.clear_requests();
        let run = h.sdk_via(&proxy.url(), args);
        (run, requests_to(&proxy.requests(), "/v2/"))
    };
    let missing_then_listed = |repo: &str, tag: &str| {
        [
            format!("GET /v2/{repo}/manifests/{tag}"),
            format!("GET /v2/{repo}/tags/list"),
        ]
    };

    let (run, asked) = sdk(&["resolve", "python", "3.11.10"]);
    assert_eq!(run.success().stdout, "3.11.10.2\n");
    assert_eq!(asked, missing_then_listed(PYTHON_REPO, "bookworm-3.11.10"));

    let (run, asked) = sdk(&["resolve", "python", "3.12.5"]);
    let run = run.expect_code(3);
    let nearest = format!(
        "error: no python version matches \"3.12.5\" for bookworm in {}/{PYTHON_REPO}; \
         nearest: 3.12.4rc1, 3.12.4, 3.12.5rc1\n",
        proxy.host()
    );
    assert_eq!(run.stderr, nearest);
    assert_eq!(asked, missing_then_listed(PYTHON_REPO, "bookworm-3.12.5"));

    let (run, asked) = sdk(&["resolve", "python", "3.12.4", "--pre"]);
    assert_eq!(run.success().stdout, "3.12.4\n");
    assert_eq!(
        asked,
        [format!("GET /v2/{PYTHON_REPO}/manifests/bookworm-3.12.4")]
    );

    let (run, asked) = sdk(&["install", "dotnet", "8.0.100", "--json"]);
    let installed = run.success().json();
    assert_eq!(installed["version"], "8.0.100", "{installed}");
    let lib_version = h.root().join("dotnet/8.0.100/lib/VERSION");
    assert_eq!(read(&lib_version), b"8.0.100");
    let mut want = missing_then_listed("oryx/dotnet-sdk", "bookworm-8.0.100").to_vec();
    want.push("GET /v2/oryx/dotnet-sdk/manifests/bookworm-8.0.100_8.0.0".into());
    want.push(format!(
        "GET /v2/oryx/dotnet-sdk/blobs/{}",
        digest_of(&read(&dotnet))
    ));
    assert_eq!(asked, want);
}

/// Specs that name no version in full still list the tags and fetch no tag of their own;
/// so do several specs of one platform, which share one listing instead of a round trip
/// each before any install starts.
#[test]
fn series_default_prerelease_and_several_specs_list_the_tags_once() {
    let c = catalogue();
    let h = c.harness();
    let proxy = ScriptedServer::proxy_to(&c.registry.url());
    let default_tag = format!("GET /v2/{PYTHON_REPO}/manifests/bookworm-default");
    for (spec, want, manifests) in [
        ("3.11", "3.11.10", &[][..]),
        ("3.13.0rc1", "3.13.0rc1", &[]),
        ("latest", "3.12.4", &[]),
        ("default", DEFAULT, &[default_tag]),
    ] {
        proxy.clear_requests();
        let run = h.sdk_via(&proxy.url(), &["resolve", "python", spec]);
        assert_eq!(run.success().stdout, format!("{want}\n"), "{spec}");
        let requests = requests_to(&proxy.requests(), "/v2/");
        let listings = requests_to(&proxy.requests(), "/tags/list");
        assert_eq!(listings.len(), 1, "{spec}: {requests:?}");
        assert_eq!(manifest_requests(&proxy), manifests, "{spec}");
    }

    proxy.clear_requests();
    h.sdk_via(&proxy.url(), &["install", "python", "3.11.9", "3.12.4"])
        .success();
    let requests = requests_to(&proxy.requests(), "/v2/");
    assert_eq!(requests[0], format!("GET /v2/{PYTHON_REPO}/tags/list"));
    assert_eq!(
        requests_to(&proxy.requests(), "/tags/list").len(),
        1,
        "{requests:?}"
    );
    assert_eq!(manifest_requests(&proxy).len(), 2, "{requests:?}");
}

#[test]
fn pull_after_the_tag_moved_downloads_the_new_tarball() {
    let registry = Registry::start();
    let h = Harness::new(&registry.url());
    h.publish("3.11.10", "bookworm", false);
    let out = h.work().join("pulled");
    let args = ["pull", "python", "3.11.10", "-o", path_str(&out), "--json"];
    h.sdk(&args).success();

    // Republished with other content: the tag now names another manifest.
    let rebuilt = sdk_tarball("3.11.10", "bookworm-rebuilt");
    h.publish_bytes("3.11.10", "bookworm", false, &rebuilt);
    let json = h.sdk(&args).success().json();
    assert_eq!(json["cached"], false, "{json}");
    assert_same_bytes(
        &read(&out.join("python-bookworm-3.11.10.tar.gz")),
        &rebuilt,
        "tarball after the tag moved",
    );
    let digest = h
        .run(&["digest", &h.python_ref("bookworm-3.11.10")])
        .success()
        .stdout;
    let sidecar = read(&out.join("python-bookworm-3.11.10.tar.gz.manifest-digest"));
    assert_eq!(String::from_utf8(sidecar).unwrap().trim(), digest.trim());
}

#[test]
fn pull_does_not_vouch_for_a_damaged_cached_tarball() {
    let c = catalogue();
    let h = c.harness();
    let out = h.work().join("pulled");
    let args = ["pull", "python", "3.11.10", "-o", path_str(&out), "--json"];
    h.sdk(&args).success();
    let tarball = out.join("python-bookworm-3.11.10.tar.gz");
    let published = c.tarball("bookworm-3.11.10");
    // Damaged in place (a truncated copy, a disk error): the sidecar still matches the tag.
    fs::write(&tarball, &published[..published.len() / 2]).unwrap();

    let run = h.sdk(&args);
    if run.code == 0 {
        // Either it downloads again and gives the right bytes...
        assert_same_bytes(&read(&tarball), published, "pull after damage");
    } else {
        // ...or it refuses, without leaving the damaged file as if it were the SDK.
        assert!(!tarball.exists(), "damaged tarball left in place");
    }
}
