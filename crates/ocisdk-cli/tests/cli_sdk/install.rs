//! `sdk install`, `list-installed` and `uninstall`: what an install unpacks, `--force`, and
//! installs running at once.

use super::*;

#[test]
fn install_unpacks_modes_symlinks_and_the_sentinel() {
    let c = catalogue();
    let h = c.harness();
    let run = h.sdk(&["install", "python", "3.11"]).success();
    assert_eq!(
        run.stdout,
        format!("{}\n", h.installed("3.11.10").display())
    );
    assert_complete_install(&h, "3.11.10");
    assert_eq!(list_dir(&h.root()), ["python"]);
}

/// `sdk uninstall` removes the versions it names and only those; a folder without the
/// sentinel is not an install and is never removed; when one version is not installed,
/// nothing is; names that would reach outside ROOT/PLATFORM are usage errors.
#[test]
fn uninstall_removes_only_installed_versions_it_names() {
    let registry = Registry::start();
    let h = Harness::new(&registry.url());
    h.publish("3.11.10", "bookworm", false);
    h.publish("3.12.1", "bookworm", false);
    h.sdk(&["install", "python", "3.11.10", "3.12.1"]).success();
    let foreign = h.root().join("python/3.9.0");
    fs::create_dir_all(&foreign).unwrap();
    fs::write(foreign.join("keep"), b"mine").unwrap();

    let run = h
        .sdk(&["uninstall", "python", "3.11.10", "3.9.0"])
        .expect_code(3);
    assert!(
        run.stderr.contains("3.9.0") && run.stderr.contains("not installed"),
        "{}",
        run.stderr
    );
    assert_complete_install(&h, "3.11.10");

    for bad in [
        &["python", ".."][..],
        &["python", "../3.12.1"],
        &["..", "python"],
    ] {
        let mut args = vec!["uninstall"];
        args.extend_from_slice(bad);
        h.sdk(&args).expect_code(2);
    }

    let run = h.sdk(&["uninstall", "python", "3.11.10"]).success();
    assert_eq!(
        run.stdout,
        format!("{}\n", h.installed("3.11.10").display())
    );
    assert!(!h.installed("3.11.10").exists());
    assert_eq!(read(&foreign.join("keep")), b"mine");
    assert_complete_install(&h, "3.12.1");
    let listed = h.sdk(&["list-installed"]).success().stdout;
    assert_eq!(
        listed,
        format!("python 3.12.1 {}\n", h.installed("3.12.1").display())
    );

    // Installing it again works as the first time did.
    h.sdk(&["install", "python", "3.11.10"]).success();
    assert_complete_install(&h, "3.11.10");
}

/// `sdk uninstall` takes versions as `list-installed` shows them; one that is not installed
/// names the installed versions it matches as a spec (`3.11` for 3.11.10), else the nearest,
/// as a spec no version matches does for install. It used to name only what was missing.
#[test]
fn uninstall_of_a_version_not_installed_names_the_nearest_installed_ones() {
    let c = catalogue();
    let h = c.harness();
    h.sdk(&["install", "python", "3.9.9", "3.10.0", "3.11.10", "3.12.4"])
        .success();

    let run = h.sdk(&["uninstall", "python", "3.11"]).expect_code(3);
    assert!(
        run.stderr.contains("; nearest installed: 3.11.10\n"),
        "{}",
        run.stderr
    );
    let run = h.sdk(&["uninstall", "python", "3.12.5", "--json"]);
    let error = run.expect_code(3).error_json();
    let message = error["message"].as_str().unwrap();
    assert!(
        message.ends_with("; nearest installed: 3.10.0, 3.11.10, 3.12.4"),
        "{message}"
    );
    assert_complete_install(&h, "3.11.10");
    assert_complete_install(&h, "3.12.4");

    // Another platform's installs are no suggestion for this one.
    let run = h.sdk(&["uninstall", "nodejs", "3.11"]).expect_code(3);
    assert!(!run.stderr.contains("nearest"), "{}", run.stderr);
}

#[test]
fn list_installed_shows_only_folders_with_the_sentinel() {
    let c = catalogue();
    let h = c.harness();
    h.sdk(&["install", "python", "3.11"]).success();
    // Unfinished installs, made by hand.
    let unfinished = h.installed("3.9.9").join("bin");
    fs::create_dir_all(&unfinished).unwrap();
    fs::write(unfinished.join("python"), b"half").unwrap();
    fs::create_dir_all(h.root().join("nodejs/20.1.0")).unwrap();

    let want = format!("python 3.11.10 {}\n", h.installed("3.11.10").display());
    assert_eq!(h.sdk(&["list-installed"]).success().stdout, want);

    let json = h.sdk(&["list-installed", "--json"]).success().json();
    let items = json.as_array().expect("a JSON array");
    assert_eq!(items.len(), 1, "{json}");
    assert_eq!(items[0]["platform"], "python");
    assert_eq!(items[0]["version"], "3.11.10");

    // The root also comes from DYNAMIC_INSTALL_ROOT_DIR.
    let root = h.root();
    let run = h
        .run_env(
            &["sdk", "list-installed"],
            &[("DYNAMIC_INSTALL_ROOT_DIR", path_str(&root))],
        )
        .success();
    assert_eq!(run.stdout, want);
}

#[test]
fn second_install_downloads_nothing_and_force_reinstalls() {
    let c = catalogue();
    let h = c.harness();
    let proxy = ScriptedServer::proxy_to(&c.registry.url());
    let first = h
        .sdk_via(&proxy.url(), &["install", "python", "3.11", "--json"])
        .success()
        .json();
    assert_eq!(first["cached"], false, "{first}");
    assert!(!blob_requests(&proxy).is_empty(), "{:?}", proxy.requests());

    // A range: the registry is asked which version, but nothing is downloaded.
    proxy.clear_requests();
    let second = h
        .sdk_via(&proxy.url(), &["install", "python", "3.11", "--json"])
        .success()
        .json();
    assert_eq!(second["cached"], true, "{second}");
    assert_eq!(blob_requests(&proxy), Vec::<String>::new());
    assert_eq!(manifest_requests(&proxy), Vec::<String>::new());

    // An exact version already installed needs no registry at all.
    proxy.clear_requests();
    h.sdk_via(&proxy.url(), &["install", "python", "3.11.10"])
        .success();
    assert_eq!(proxy.request_count(), 0, "{:?}", proxy.requests());

    // --force goes back to the registry and leaves a complete install.
    fs::write(h.installed("3.11.10").join("bin/stray"), b"x").unwrap();
    proxy.clear_requests();
    let forced = h
        .sdk_via(
            &proxy.url(),
            &["install", "python", "3.11", "--force", "--json"],
        )
        .success()
        .json();
    assert_eq!(forced["cached"], false, "{forced}");
    assert!(
        !manifest_requests(&proxy).is_empty(),
        "--force made no manifest request: {:?}",
        proxy.requests()
    );
    assert_complete_install(&h, "3.11.10");
    assert!(
        !h.installed("3.11.10").join("bin/stray").exists(),
        "--force kept a file the tarball does not have"
    );
}

/// A preloaded shim that, after each rename the process makes, appends to the file
/// `$WATCH_LOG` whether the file `$WATCH_PATH` is there: `present` or `missing`.
const RENAME_WATCH_SHIM: &str = r#"
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
static void watch(void) {
    const char *path = getenv("WATCH_PATH"), *log = getenv("WATCH_LOG");
    if (!path || !log) return;
    const char *seen = access(path, F_OK) == 0 ? "present\n" : "missing\n";
    int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
    if (fd >= 0) { (void)!write(fd, seen, strlen(seen)); close(fd); }
}
int rename(const char *a, const char *b) {
    int (*real)(const char *, const char *) = dlsym(RTLD_NEXT, "rename");
    int r = real(a, b); watch(); return r;
}
int renameat(int fa, const char *a, int fb, const char *b) {
    int (*real)(int, const char *, int, const char *) = dlsym(RTLD_NEXT, "renameat");
    int r = real(fa, a, fb, b); watch(); return r;
}
int renameat2(int fa, const char *a, int fb, const char *b, unsigned int flags) {
    int (*real)(int, const char *, int, const char *, unsigned int) = dlsym(RTLD_NEXT, "renameat2");
    int r = real(fa, a, fb, b, flags); watch(); return r;
}
"#;

/// `--force` swaps the new install in for the old one in one step: the install folder is
/// never missing, as it was between moving the old one aside and renaming the new one in,
/// when a build starting then found no SDK. A preloaded shim looks for the sentinel after
/// every rename the reinstall makes.
#[test]
fn a_forced_reinstall_never_leaves_the_install_folder_missing() {
    let c = catalogue();
    let h = c.harness();
    h.sdk(&["install", "python", "3.11.10"]).success();
    fs::write(h.installed("3.11.10").join("bin/stray"), b"x").unwrap();
    let shim = preload_shim(&h, "renames", RENAME_WATCH_SHIM);
    let log = h.work().join("renames.log");
    let output = h
        .sdk_command(&h.url, &["install", "python", "3.11.10", "--force"])
        .env("LD_PRELOAD", &shim)
        .env("WATCH_PATH", h.installed("3.11.10").join(SENTINEL))
        .env("WATCH_LOG", &log)
        .output()
        .expect("run ocisdk sdk install");
    Run::from_output(output).success();
    let seen = fs::read_to_string(&log).unwrap_or_default();
    assert!(seen.contains("present"), "the shim saw no rename: {seen:?}");
    assert!(
        !seen.contains("missing"),
        "the install was missing after a rename: {seen:?}"
    );
    assert_complete_install(&h, "3.11.10");
    assert!(
        !h.installed("3.11.10").join("bin/stray").exists(),
        "the old install is still there"
    );
    assert_eq!(leftovers(&h.root().join("python")), Vec::<PathBuf>::new());

    // A file system that cannot swap (EINVAL, as some network ones answer) still takes the
    // reinstall, in two renames.
    fs::write(h.installed("3.11.10").join("bin/stray"), b"x").unwrap();
    let no_exchange = preload_shim(
        &h,
        "noexchange",
        "#include <errno.h>\nint renameat2(int a, const char *b, int c, const char *d, unsigned int e) \
         { (void)a; (void)b; (void)c; (void)d; (void)e; errno = EINVAL; return -1; }\n",
    );
    let output = h
        .sdk_command(&h.url, &["install", "python", "3.11.10", "--force"])
        .env("LD_PRELOAD", &no_exchange)
        .output()
        .expect("run ocisdk sdk install");
    Run::from_output(output).success();
    assert_complete_install(&h, "3.11.10");
    assert!(
        !h.installed("3.11.10").join("bin/stray").exists(),
        "the old install is still there"
    );
    assert_eq!(leftovers(&h.root().join("python")), Vec::<PathBuf>::new());
}

#[test]
fn concurrent_installs_download_the_layer_once() {
    let registry = Registry::start();
    let h = Harness::new(&registry.url());
    // Big enough that the processes overlap while it downloads.
    let big = pseudo_random_bytes(4 << 20, 7);
    let tarball = big_sdk_tarball("3.11.10", &big);
    h.publish_bytes("3.11.10", "bookworm", false, &tarball);
    let proxy = ScriptedServer::proxy_to(&registry.url());

    let children: Vec<_> = (0..8)
        .map(|_| {
            h.sdk_command(&proxy.url(), &["install", "python", "3.11", "--json"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn ocisdk")
        })
        .collect();
    let runs: Vec<Run> = children
        .into_iter()
        .map(|child| Run::from_output(child.wait_with_output().expect("wait for ocisdk")))
        .collect();

    let mut fresh = 0;
    for run in runs {
        let json = run.success().json();
        assert_eq!(json["path"], path_str(&h.installed("3.11.10")), "{json}");
        if json["cached"] == false {
            fresh += 1;
        }
    }
    assert_eq!(fresh, 1, "exactly one process should have installed");
    assert_complete_install(&h, "3.11.10");
    assert_same_bytes(
        &read(&h.installed("3.11.10").join("lib/libpython.so")),
        &big,
        "large file",
    );
    let layer_gets = requests_to(
        &proxy.requests(),
        &format!("/blobs/{}", digest_of(&tarball)),
    )
    .into_iter()
    .filter(|r| r.starts_with("GET "))
    .count();
    assert_eq!(layer_gets, 1, "{:?}", blob_requests(&proxy));
}

/// Two installs of one version into two roots share the tarball cache: while the first
/// downloads (held back after half the layer), the second waits for it and then installs
/// from the cached tarball. One download, two complete installs.
#[test]
fn installs_into_two_roots_share_one_download() {
    let registry = Registry::start();
    let h = Harness::new(&registry.url());
    let big = pseudo_random_bytes(4 << 20, 15);
    let tarball = big_sdk_tarball("3.11.10", &big);
    h.publish_bytes("3.11.10", "bookworm", false, &tarball);
    let upstream = registry.url();
    let blob = format!("/blobs/{}", digest_of(&tarball));
    let half = tarball.len() / 2;
    let release = Release::new();
    let held = release.clone();
    let stalled = AtomicBool::new(false);
    let proxy = ScriptedServer::start(move |req| {
        let response = forward(req, &upstream);
        if req.method == "GET" && req.path().ends_with(&blob) && !stalled.swap(true, SeqCst) {
            return response.stall_until(half, Duration::from_secs(60), &held);
        }
        response
    });
    let other_root = h.work().join("other-root");
    let spawn = |root: &Path| {
        h.command(
            &[
                "sdk",
                "install",
                "python",
                "3.11",
                "--registry",
                &proxy.url(),
                "--root",
                path_str(root),
            ],
            &[],
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ocisdk")
    };
    let first = spawn(&h.root());
    wait_for("the first install to download", || {
        !requests_to(&proxy.requests(), "/blobs/").is_empty()
    });
    let second = spawn(&other_root);
    wait_for("the second install to list the tags", || {
        requests_to(&proxy.requests(), "/tags/list").len() == 2
    });
    release.release();
    for child in [first, second] {
        Run::from_output(child.wait_with_output().expect("wait for ocisdk")).success();
    }
    for root in [h.root(), other_root] {
        let installed = root.join("python/3.11.10/lib/libpython.so");
        assert_same_bytes(&read(&installed), &big, "large file");
    }
    let gets: Vec<String> = requests_to(&proxy.requests(), "/blobs/")
        .into_iter()
        .filter(|r| r.starts_with("GET "))
        .collect();
    assert_eq!(gets.len(), 1, "{gets:?}");
}
