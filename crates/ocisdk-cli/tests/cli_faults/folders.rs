//! The destination and cache folders: one the user cannot write, a cache on another file
//! system, and what a download leaves in the cache under a umask of 0.

use super::*;

/// A temporary folder where `nobody` can run the binary: world-traversable, holding a copy
/// of the binary and two empty folders, `out` and `cache`, whose rights the test then sets.
/// Returns the folder, the binary, `out` and `cache`.
fn sandbox_for_nobody() -> (
    tempfile::TempDir,
    std::path::PathBuf,
    std::path::PathBuf,
    std::path::PathBuf,
) {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let bin = tmp.path().join("ocisdk");
    ocisdk_testkit::cli::binary_for_nobody(Path::new(env!("CARGO_BIN_EXE_ocisdk")), &bin);
    let (out, cache) = (tmp.path().join("out"), tmp.path().join("cache"));
    std::fs::create_dir(&out).unwrap();
    std::fs::create_dir(&cache).unwrap();
    (tmp, bin, out, cache)
}

#[test]
fn cache_on_another_file_system() {
    let f = fixtures();
    let shm = Path::new("/dev/shm");
    let Ok(cache_root) = tempfile::tempdir_in(shm) else {
        println!("SKIPPED cache_on_another_file_system: /dev/shm is not usable");
        report("cache_on_another_file_system", "skipped: no /dev/shm");
        return;
    };
    let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let cache = cache_root.path().join("cache");
    let out = tmp.path().join("out");
    std::fs::create_dir(&out).unwrap();
    std::fs::create_dir(&cache).unwrap();
    let (cache_dev, out_dev) = (
        std::fs::metadata(&cache).unwrap().dev(),
        std::fs::metadata(&out).unwrap().dev(),
    );
    if cache_dev == out_dev {
        println!(
            "SKIPPED cache_on_another_file_system: /dev/shm and the target dir are one file system"
        );
        report("cache_on_another_file_system", "skipped: same file system");
        return;
    }
    let dest = out.join(DEST_NAME);
    let mut cmd = cli(&[
        "blob",
        &format!("{}/{REPO}@{}", f.registry.host(), f.digest),
        "-o",
        arg(&dest),
    ]);
    cmd.env("OCISDK_CACHE_DIR", &cache);
    let r = run(cmd);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_same_bytes(&std::fs::read(&dest).unwrap(), &f.blob, "download");
    assert_eq!(list_dir(&out), [DEST_NAME], "no copy temp left beside it");
    assert!(
        !partial_path(&cache, &f.digest).exists(),
        "partial left in the cache"
    );
    report(
        "cache_on_another_file_system",
        "exit 0; copied across file systems and renamed; no temp beside it; cache partial removed",
    );
}

/// Under a umask of 0, as in many containers and CI jobs, a `blob` download's partial in the
/// cache, broken off or finished, is never writable by group or others: another user could
/// otherwise change its bytes, so that the next run downloads again, or write into it while
/// it is verified and renamed into place. The file given with `-o` is the user's: renamed
/// there from the cache, it gets the mode the umask gives a new file (0666 under umask 0,
/// 0664 under 002), as a download without a cache and curl give it.
#[test]
fn a_blob_download_leaves_nothing_in_the_cache_others_may_write_under_umask_0() {
    use ocisdk_testkit::cli::with_umask;
    let f = fixtures();
    let proxy = stalling_proxy(f.registry.url(), BLOB_SIZE / 2);
    let tmp = tempfile::tempdir().unwrap();
    let (out, cache) = (tmp.path().join("out"), tmp.path().join("cache"));
    std::fs::create_dir(&out).unwrap();
    let blob = |host: &str, dest: &Path, umask: u32, extra: &[&str]| {
        let reference = format!("{host}/{REPO}@{}", f.digest);
        let mut args = vec!["blob", reference.as_str(), "-o", arg(dest)];
        args.extend_from_slice(extra);
        let mut cmd = cli(&args);
        cmd.env("OCISDK_CACHE_DIR", &cache);
        with_umask(&mut cmd, umask);
        run(cmd)
    };
    let mode = |path: &Path| format!("{:04o}", std::fs::metadata(path).unwrap().mode() & 0o7777);

    // Broken off: the body stalls halfway, and the partial is kept for the next run.
    let dest = out.join(DEST_NAME);
    let broken = ["--stall-timeout", "1", "--retries", "0"];
    let r = blob(&proxy.host(), &dest, 0, &broken);
    assert_eq!(r.code, Some(6), "{}", r.stderr);
    let partial = partial_path(&cache, &f.digest);
    assert!(
        file_size(&partial).is_some_and(|n| n > 0),
        "no partial kept"
    );
    assert_eq!(writable_by_others(&cache), Vec::<String>::new());

    // Finished, from that partial: renamed to the user's file, which gets the umask's mode.
    let r = blob(&f.registry.host(), &dest, 0, &[]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(!partial.exists(), "the partial was moved into place");
    assert_same_bytes(&std::fs::read(&dest).unwrap(), &f.blob, "download");
    assert_eq!(mode(&dest), "0666", "{}", dest.display());
    assert_eq!(writable_by_others(&cache), Vec::<String>::new());

    let shared = out.join("shared.bin");
    let r = blob(&f.registry.host(), &shared, 0o002, &[]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(mode(&shared), "0664", "{}", shared.display());
}

/// A file system that refuses to change modes (vfat without `quiet` answers EPERM), here a
/// preloaded `fchmod` that always fails: the download renamed from the cache to `-o FILE`
/// is verified and in place, so the command succeeds and warns that its mode is the
/// cache's. It used to fail after the file was already there.
#[test]
fn a_mode_that_cannot_be_set_after_the_rename_is_a_warning() {
    const NO_FCHMOD: &str = r#"
#include <errno.h>
#include <sys/stat.h>
int fchmod(int fd, mode_t mode) { (void)fd; (void)mode; errno = EPERM; return -1; }
"#;
    let f = fixtures();
    let tmp = tempfile::tempdir().unwrap();
    let (out, cache) = (tmp.path().join("out"), tmp.path().join("cache"));
    std::fs::create_dir(&out).unwrap();
    let shim = ocisdk_testkit::cli::preload_shim(tmp.path(), "nofchmod", NO_FCHMOD);
    let dest = out.join(DEST_NAME);
    let reference = format!("{}/{REPO}@{}", f.registry.host(), f.digest);
    let mut cmd = cli(&["blob", &reference, "-o", arg(&dest)]);
    cmd.env("OCISDK_CACHE_DIR", &cache).env("LD_PRELOAD", &shim);
    let r = run(cmd);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_same_bytes(&std::fs::read(&dest).unwrap(), &f.blob, "download");
    assert!(
        r.stderr.contains("could not set the mode of"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains(DEST_NAME), "{}", r.stderr);
}

/// A cache folder the user cannot write (a read-only home, a container run under another
/// uid): the cache only serves resuming, so the download goes on without it, staged beside
/// the destination, with a warning naming the cache. It used to fail before any byte came:
/// `creating …/partial-v1: Permission denied`.
#[test]
fn cache_not_writable_downloads_without_it() {
    use std::os::unix::fs::PermissionsExt;
    let f = fixtures();
    let (tmp, bin, out, cache) = sandbox_for_nobody();
    if is_root() {
        std::os::unix::fs::chown(&out, Some(NOBODY), Some(NOBODY)).unwrap();
    }
    // The cache folder: read-only for the user running the binary.
    std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o555)).unwrap();
    let dest = out.join(DEST_NAME);
    let mut cmd = Command::new(&bin);
    ocisdk_testkit::cli::scrub(&mut cmd)
        .args([
            "blob",
            &format!("{}/{REPO}@{}", f.registry.host(), f.digest),
            "-o",
            arg(&dest),
        ])
        .env("OCISDK_CACHE_DIR", &cache)
        .env("HOME", tmp.path());
    unprivileged(&mut cmd);

    let r = run(cmd);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_same_bytes(&std::fs::read(&dest).unwrap(), &f.blob, "download");
    assert_eq!(list_dir(&out), [DEST_NAME], "no temp file left beside it");
    assert!(r.stderr.contains(arg(&cache)), "warns: {}", r.stderr);
    assert!(list_dir(&cache).is_empty(), "{:?}", list_dir(&cache));
    report(
        "cache_not_writable_downloads_without_it",
        &format!(
            "exit 0; file verified; warning: {}",
            r.stderr.lines().next().unwrap_or("").trim()
        ),
    );
}

/// `sdk pull` with a cache folder the user cannot write: the cache only holds the record
/// that spares the next pull a download, so the SDK is pulled (tarball and sidecar) with a
/// warning naming the cache. It used to download the whole tarball and then fail with
/// `creating …/sdk-records-v1: Permission denied`, leaving a tarball without its sidecar.
#[test]
fn sdk_pull_with_a_cache_not_writable_still_pulls() {
    use std::os::unix::fs::PermissionsExt;
    let registry = Registry::start();
    let (tmp, bin, out, cache) = sandbox_for_nobody();
    let tarball = tar_gz_of(&[("bin/tool", b"#!/bin/sh\n", 0o755)]);
    let file = tmp.path().join("tool-bookworm-1.0.0.tar.gz");
    std::fs::write(&file, &tarball).unwrap();
    let mut publish = cli(&["sdk", "publish", "tool", "1.0.0", arg(&file)]);
    publish.args(["--registry", &registry.url()]);
    assert_eq!(run(publish).code, Some(0), "publish");
    if is_root() {
        std::os::unix::fs::chown(&out, Some(NOBODY), Some(NOBODY)).unwrap();
    }
    std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o555)).unwrap();
    let mut cmd = Command::new(&bin);
    ocisdk_testkit::cli::scrub(&mut cmd)
        .args(["sdk", "pull", "tool", "1.0.0", "-o", arg(&out)])
        .args(["--registry", &registry.url()])
        .env("OCISDK_CACHE_DIR", &cache)
        .env("HOME", tmp.path());
    unprivileged(&mut cmd);

    let r = run(cmd);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let pulled = out.join("tool-bookworm-1.0.0.tar.gz");
    assert_same_bytes(&std::fs::read(&pulled).unwrap(), &tarball, "pulled tarball");
    assert_eq!(
        list_dir(&out),
        [
            "tool-bookworm-1.0.0.tar.gz",
            "tool-bookworm-1.0.0.tar.gz.manifest-digest"
        ],
        "the tarball and its sidecar, nothing else"
    );
    assert!(r.stderr.contains(arg(&cache)), "warns: {}", r.stderr);
    assert!(list_dir(&cache).is_empty(), "{:?}", list_dir(&cache));
    report(
        "sdk_pull_with_a_cache_not_writable_still_pulls",
        "exit 0; tarball and sidecar; a warning names the cache",
    );
}

#[test]
fn permission_denied_at_destination_then_fixed() {
    use std::os::unix::fs::PermissionsExt;
    let f = fixtures();
    let proxy = Proxy::with_handler(f.registry.url(), |req, upstream| {
        let r = forward_registry(req, upstream);
        let n = r.body.len();
        (r, n)
    });
    let (tmp, bin, out, cache) = sandbox_for_nobody();
    if is_root() {
        std::os::unix::fs::chown(&cache, Some(NOBODY), Some(NOBODY)).unwrap();
    }
    // The destination folder: read-only for the user running the binary.
    std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o555)).unwrap();
    let dest = out.join(DEST_NAME);
    let reference = format!("{}/{REPO}@{}", proxy.host(), f.digest);
    let blob_cmd = || {
        let mut cmd = Command::new(&bin);
        ocisdk_testkit::cli::scrub(&mut cmd)
            .args(["blob", &reference, "-o", arg(&dest)])
            .env("OCISDK_CACHE_DIR", &cache)
            .env("HOME", tmp.path());
        unprivileged(&mut cmd);
        cmd
    };

    let r = run(blob_cmd());
    assert_eq!(r.code, Some(1), "{}", r.stderr);
    assert!(r.stderr.contains("Permission denied"), "{}", r.stderr);
    assert!(
        r.stderr.contains(arg(&dest)),
        "names the destination: {}",
        r.stderr
    );
    assert!(list_dir(&out).is_empty(), "{:?}", list_dir(&out));
    let partial = partial_path(&cache, &f.digest);
    assert_eq!(
        file_size(&partial),
        Some(BLOB_SIZE as u64),
        "verified bytes kept"
    );
    let first = error_line(&r.stderr).to_string();

    // Fixed: the next run takes the verified partial, downloading no body again.
    if is_root() {
        std::os::unix::fs::chown(&out, Some(NOBODY), Some(NOBODY)).unwrap();
    }
    std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o755)).unwrap();
    proxy.clear();
    let r = run(blob_cmd());
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_same_bytes(&std::fs::read(&dest).unwrap(), &f.blob, "download");
    assert_eq!(list_dir(&out), [DEST_NAME]);
    assert!(!partial.exists());
    // Only a 416 comes back to `Range: bytes=<size>-`: no content is fetched twice.
    let body_bytes: usize = proxy
        .log()
        .iter()
        .filter(|s| (200..300).contains(&s.status))
        .map(|s| s.body)
        .sum();
    assert!(
        body_bytes == 0,
        "the second run downloaded {body_bytes} body bytes again: {:#?}",
        proxy.log()
    );
    report(
        "permission_denied_at_destination_then_fixed",
        &format!(
            "run 1 exit 1: {first}; folder empty; run 2 (writable) exit 0 with {body_bytes} content bytes fetched ({:?})",
            proxy
                .log()
                .iter()
                .map(|s| (s.range.clone(), s.status))
                .collect::<Vec<_>>()
        ),
    );
}
