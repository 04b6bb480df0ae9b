//! A full disk (at the destination, in the cache, in the install root) and a file-size
//! limit in the middle of a download, on small tmpfs mounts where mounting is permitted.

use super::*;

/// A tmpfs mounted for the life of the value (unmounted on drop).
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// Mounts a tmpfs of `size` (e.g. `1M`) on `dir`, or explains why it could not. Its top
    /// folder is 0755: a tmpfs is 1777 by default, which `sdk install` refuses as a root.
    fn mount(dir: &Path, size: &str) -> Result<Tmpfs, String> {
        std::fs::create_dir_all(dir).unwrap();
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "tmpfs",
                arg(dir),
            ])
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if out.status.success() {
            Ok(Tmpfs(dir.to_path_buf()))
        } else {
            Err(format!(
                "mount -t tmpfs failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// A 1 MiB tmpfs at `dir`, or `None` (with a message) where mounting is not permitted.
fn tiny_tmpfs(dir: &Path, test: &str) -> Option<Tmpfs> {
    match Tmpfs::mount(dir, "1M") {
        Ok(t) => Some(t),
        Err(e) => {
            println!("SKIPPED {test}: a small file system cannot be arranged here: {e}");
            report(test, &format!("skipped: {e}"));
            None
        }
    }
}

#[test]
fn disk_full_at_destination() {
    let f = fixtures();
    let tmp = tempfile::tempdir().unwrap();
    let (out, cache) = (tmp.path().join("out"), tmp.path().join("cache"));
    let Some(_fs) = tiny_tmpfs(&out, "disk_full_at_destination") else {
        return;
    };
    let dest = out.join(DEST_NAME);
    let mut cmd = cli(&[
        "blob",
        &format!("{}/{REPO}@{}", f.registry.host(), f.digest),
        "-o",
        arg(&dest),
    ]);
    cmd.env("OCISDK_CACHE_DIR", &cache);
    let r = run(cmd);
    assert_eq!(r.code, Some(1), "{}", r.stderr);
    assert!(r.stderr.contains("No space left on device"), "{}", r.stderr);
    assert!(
        r.stderr.contains(arg(&out)),
        "names the folder: {}",
        r.stderr
    );
    assert!(
        list_dir(&out).is_empty(),
        "left behind: {:?}",
        list_dir(&out)
    );
    // The verified bytes stay in the cache: the next run needs no download.
    let kept = file_size(&partial_path(&cache, &f.digest));
    assert_eq!(kept, Some(BLOB_SIZE as u64));
    report(
        "disk_full_at_destination",
        &format!(
            "exit 1: {}; destination folder empty; cache partial complete ({BLOB_SIZE} bytes)",
            error_line(&r.stderr)
        ),
    );
}

/// The install root is a 1 MiB tmpfs holding a small SDK already installed. A 4 MiB SDK
/// fills it while it unpacks, which it does as the layer downloads, in both image shapes
/// (the layer is the tarball, or holds it): exit 1 naming the disk error and the root, no
/// install or staging folder left, and the small SDK untouched.
#[test]
fn disk_full_in_the_install_root() {
    let test = "disk_full_in_the_install_root";
    let registry = Registry::start();
    let tmp = tempfile::tempdir().unwrap();
    let (root, cache, work) = (
        tmp.path().join("root"),
        tmp.path().join("cache"),
        tmp.path().join("work"),
    );
    std::fs::create_dir_all(&work).unwrap();
    let sdk = |version: &str, size: usize| {
        tar_gz_of(&[
            ("bin/tool", b"#!/bin/sh\n", 0o755),
            (
                "lib/data.bin",
                &pseudo_random_bytes(size, size as u64),
                0o644,
            ),
            ("VERSION", version.as_bytes(), 0o644),
        ])
    };
    let install = |version: &str| {
        let mut cmd = cli(&[
            "sdk",
            "install",
            "tool",
            version,
            "--registry",
            &registry.url(),
        ]);
        cmd.env("OCISDK_CACHE_DIR", &cache)
            .env("DYNAMIC_INSTALL_ROOT_DIR", &root);
        run(cmd)
    };
    for (version, size) in [("1.0.0", 64 << 10), ("2.0.0", 4 << 20)] {
        let file = work.join(format!("tool-bookworm-{version}.tar.gz"));
        std::fs::write(&file, sdk(version, size)).unwrap();
        let mut cmd = cli(&["sdk", "publish", "tool", version, arg(&file)]);
        cmd.args(["--registry", &registry.url()]);
        assert_eq!(run(cmd).code, Some(0), "publish {version}");
    }
    // 2.0.1: the same SDK in the MCR layout.
    let mut layout = OciLayout::new();
    layout.add_image(
        "sdk",
        &ImageBuilder::new()
            .layer(
                fs_layer_holding("tool-bookworm-2.0.1.tar.gz", &sdk("2.0.1", 4 << 20)),
                media_types::OCI_LAYER_GZIP,
            )
            .label("org.oryx.version", "2.0.1"),
    );
    skopeo::push_layout(
        layout.path(),
        "sdk",
        &registry.host(),
        "oryx/tool-sdk:bookworm-2.0.1",
        Format::Oci,
    );

    let Some(_fs) = tiny_tmpfs(&root, test) else {
        return;
    };
    assert_eq!(install("1.0.0").code, Some(0));
    let small = std::fs::read(root.join("tool/1.0.0/lib/data.bin")).unwrap();
    let mut lines = Vec::new();
    for version in ["2.0.0", "2.0.1"] {
        let r = install(version);
        assert_eq!(r.code, Some(1), "{}", r.stderr);
        assert!(r.stderr.contains("No space left on device"), "{}", r.stderr);
        assert!(
            r.stderr.contains(arg(&root)),
            "names the root: {}",
            r.stderr
        );
        // Lock files stay (they are reused); a staging folder would show here.
        let left: Vec<String> = list_dir(&root.join("tool"))
            .into_iter()
            .filter(|name| !name.ends_with(".lock"))
            .collect();
        assert_eq!(left, ["1.0.0"], "{version}");
        lines.push(format!("{version}: exit 1, {}", error_line(&r.stderr)));
    }
    assert_eq!(
        std::fs::read(root.join("tool/1.0.0/lib/data.bin")).unwrap(),
        small,
        "the installed SDK changed"
    );
    report(
        test,
        &format!("{}; only 1.0.0 in the root, intact", lines.join("; ")),
    );
}

#[test]
fn disk_full_in_cache() {
    let f = fixtures();
    let tmp = tempfile::tempdir().unwrap();
    let (out, cache) = (tmp.path().join("out"), tmp.path().join("cache"));
    std::fs::create_dir(&out).unwrap();
    let Some(_fs) = tiny_tmpfs(&cache, "disk_full_in_cache") else {
        return;
    };
    let dest = out.join(DEST_NAME);
    let mut cmd = cli(&[
        "blob",
        &format!("{}/{REPO}@{}", f.registry.host(), f.digest),
        "-o",
        arg(&dest),
    ]);
    cmd.env("OCISDK_CACHE_DIR", &cache);
    let r = run(cmd);
    assert_eq!(r.code, Some(1), "{}", r.stderr);
    assert!(r.stderr.contains("No space left on device"), "{}", r.stderr);
    assert!(
        list_dir(&out).is_empty(),
        "left behind: {:?}",
        list_dir(&out)
    );
    assert!(
        list_dir(&cache.join("partial-v1")).is_empty(),
        "the partial that filled the disk must go: {:?}",
        list_dir(&cache.join("partial-v1"))
    );
    report(
        "disk_full_in_cache",
        &format!(
            "exit 1: {}; partial removed; destination folder empty",
            error_line(&r.stderr)
        ),
    );
}

/// The ranged path (`--chunks`) on a full disk names the disk, not its own writer thread:
/// the fetchers stop because the writer did, and that is only the consequence.
#[test]
fn disk_full_in_cache_with_chunks() {
    let f = fixtures();
    let tmp = tempfile::tempdir().unwrap();
    let (out, cache) = (tmp.path().join("out"), tmp.path().join("cache"));
    // 17 MiB: the ranged path starts at twice its 8 MiB minimum chunk.
    let layer = tmp.path().join("chunked.bin");
    std::fs::write(&layer, pseudo_random_bytes(17 << 20, 9)).unwrap();
    let reference = format!("{}/faults/chunked:1", f.registry.host());
    let pushed = run(cli(&["-q", "push", arg(&layer), &reference]));
    assert_eq!(pushed.code, Some(0), "{}", pushed.stderr);
    // Both places it may stage in are full: the cache and the destination's folder.
    let Some(_cache_fs) = tiny_tmpfs(&cache, "disk_full_in_cache_with_chunks") else {
        return;
    };
    let Some(_out_fs) = tiny_tmpfs(&out, "disk_full_in_cache_with_chunks") else {
        return;
    };
    let dest = out.join(DEST_NAME);
    let mut cmd = cli(&["pull", &reference, "-o", arg(&dest), "--chunks", "4"]);
    cmd.env("OCISDK_CACHE_DIR", &cache);
    let r = run(cmd);
    assert_eq!(r.code, Some(1), "{}", r.stderr);
    assert!(r.stderr.contains("No space left on device"), "{}", r.stderr);
    assert!(!r.stderr.contains("writer stopped"), "{}", r.stderr);
    assert!(
        list_dir(&out).is_empty(),
        "left behind: {:?}",
        list_dir(&out)
    );
    report(
        "disk_full_in_cache_with_chunks",
        &format!(
            "exit 1: {}; destination folder empty",
            error_line(&r.stderr)
        ),
    );
}

/// A file-size limit (`ulimit -f`, RLIMIT_FSIZE: a quota-like cap a build sandbox may set)
/// smaller than the blob: the write past it fails with EFBIG, which the binary reports as
/// any disk error (exit 1 naming the file), removing what it wrote. The kernel also sends
/// SIGXFSZ, whose default action killed the binary mid-write, leaving its partial behind
/// and saying nothing.
#[test]
fn file_size_limit_mid_download() {
    use std::os::unix::process::CommandExt;
    const LIMIT: u64 = 1 << 20;
    let f = fixtures();
    let tmp = tempfile::tempdir().unwrap();
    let (out, cache) = (tmp.path().join("out"), tmp.path().join("cache"));
    std::fs::create_dir(&out).unwrap();
    let dest = out.join(DEST_NAME);
    let mut cmd = cli(&[
        "blob",
        &format!("{}/{REPO}@{}", f.registry.host(), f.digest),
        "-o",
        arg(&dest),
    ]);
    cmd.env("OCISDK_CACHE_DIR", &cache);
    // SAFETY: setrlimit is async-signal-safe and touches only the child's own limits.
    unsafe {
        cmd.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: LIMIT,
                rlim_max: LIMIT,
            };
            match libc::setrlimit(libc::RLIMIT_FSIZE, &limit) {
                0 => Ok(()),
                _ => Err(std::io::Error::last_os_error()),
            }
        });
    }
    let r = run(cmd);
    assert_eq!(r.code, Some(1), "killed or wrong exit: {r:?}");
    assert!(r.stderr.contains("File too large"), "{}", r.stderr);
    let partial = partial_path(&cache, &f.digest);
    assert!(
        r.stderr.contains(arg(&partial)),
        "names the file: {}",
        r.stderr
    );
    assert!(
        list_dir(&out).is_empty(),
        "left behind: {:?}",
        list_dir(&out)
    );
    assert!(
        !partial.exists(),
        "a partial the limit cut short is no use to resume"
    );
    report(
        "file_size_limit_mid_download",
        &format!(
            "exit 1: {}; partial removed; destination folder empty",
            error_line(&r.stderr)
        ),
    );
}
