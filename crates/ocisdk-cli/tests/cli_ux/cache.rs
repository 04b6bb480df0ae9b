//! `cache info`, `prune` and `clean`: what they count and remove after a real install, and
//! a cache folder others may write.

use super::*;

/// Every regular file under `dir` (recursively), sorted.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return found;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(files_under(&path));
        } else {
            found.push(path);
        }
    }
    found.sort();
    found
}

/// The `files` and `bytes` of `area` in `cache info --json`.
fn area(info: &Value, name: &str) -> (u64, u64) {
    let area = info["areas"]
        .as_array()
        .expect("areas")
        .iter()
        .find(|a| a["name"] == name)
        .unwrap_or_else(|| panic!("no area {name} in {info}"));
    (
        area["files"].as_u64().unwrap(),
        area["bytes"].as_u64().unwrap(),
    )
}

fn total_size(files: &[PathBuf]) -> u64 {
    files.iter().map(|f| fs::metadata(f).unwrap().len()).sum()
}

#[test]
fn cache_info_prune_and_clean_after_a_real_install() {
    let s = Sandbox::new();
    let registry = Registry::start();
    let a = publish(&s, &registry, "3.11.4", 64 << 10, false);
    let b = publish(&s, &registry, "3.12.1", 64 << 10, true);
    let url = registry.url();
    let root = s.root();
    let install = |force: bool| {
        let mut args = vec![
            "sdk",
            "install",
            "python",
            "3.11",
            "3.12",
            "--registry",
            &url,
            "--root",
            path_str(&root),
        ];
        if force {
            args.push("--force");
        }
        s.run(&args).success();
    };
    install(false);
    let cache = s.cache();
    fs::write(cache.join("keep-me.txt"), b"not ocisdk's").unwrap();
    fs::create_dir(cache.join("other")).unwrap();
    fs::write(cache.join("other/file"), b"not ocisdk's either").unwrap();

    // An install's lock files stay: removing one a process has open would let two hold it.
    let is_lock = |f: &PathBuf| {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        name.starts_with('.') && name.ends_with(".lock")
    };
    let (locks, tarballs): (Vec<PathBuf>, Vec<PathBuf>) =
        files_under(&cache.join("sdk-tarballs-v1"))
            .into_iter()
            .partition(is_lock);
    assert_eq!(locks.len(), 2, "{locks:?}");
    let sizes: BTreeSet<u64> = tarballs
        .iter()
        .map(|f| fs::metadata(f).unwrap().len())
        .collect();
    assert!(
        sizes.contains(&(a.len() as u64)) && sizes.contains(&(b.len() as u64)),
        "both tarballs are cached: {tarballs:#?}"
    );
    let ocisdk_files: Vec<PathBuf> = ["partial-v1", "sdk-tarballs-v1", "sdk-records-v1"]
        .iter()
        .flat_map(|area| files_under(&cache.join(area)))
        .filter(|f| !is_lock(f))
        .collect();
    let ocisdk_bytes = total_size(&ocisdk_files);

    let info = s.run(&["cache", "info", "--json"]).success().json();
    assert_eq!(info["dir"], path_str(&cache));
    // Lock files are no cached content: not counted.
    assert_eq!(
        area(&info, "sdk-tarballs-v1"),
        (tarballs.len() as u64, total_size(&tarballs))
    );
    assert_eq!(info["bytes"], ocisdk_bytes);
    assert_eq!(info["other"], serde_json::json!(["keep-me.txt", "other"]));

    let text = s.run(&["cache", "info"]).success().stdout;
    assert!(
        text.starts_with(&format!("{} (", cache.display())),
        "{text}"
    );
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("sdk-tarballs-v1"))
        .unwrap_or_else(|| panic!("no sdk-tarballs-v1 line: {text}"));
    assert!(
        line.contains(&format!(" {} files", tarballs.len())),
        "{line}"
    );
    assert!(text.contains("keep-me.txt"), "{text}");
    assert!(text.contains("(not ocisdk's: left alone)"), "{text}");

    // Everything is younger than the default 30 days.
    let removed = s.run(&["cache", "prune", "--json"]).success().json();
    assert_eq!(removed["files"], 0, "{removed}");
    let mut all = [tarballs.clone(), locks.clone()].concat();
    all.sort();
    assert_eq!(files_under(&cache.join("sdk-tarballs-v1")), all);

    // --older-than 0: everything older than now.
    let removed = s
        .run(&["cache", "prune", "--older-than", "0", "--json"])
        .success()
        .json();
    assert_eq!(removed["files"], ocisdk_files.len() as u64, "{removed}");
    assert_eq!(removed["bytes"], ocisdk_bytes, "{removed}");
    assert_eq!(removed["in_use"], 0);
    assert_eq!(files_under(&cache.join("sdk-tarballs-v1")), locks);
    // Only the lock files are left, and they used to be reported as files (`0 B in 2
    // files`), as if prune had left something behind.
    let info = s.run(&["cache", "info", "--json"]).success().json();
    for name in ["partial-v1", "sdk-tarballs-v1", "sdk-records-v1"] {
        assert_eq!(area(&info, name), (0, 0), "{name}: {info}");
    }
    assert_eq!(info["bytes"], 0);
    let text = s.run(&["cache", "info"]).success().stdout;
    let areas: Vec<&str> = text.lines().skip(1).take(3).collect();
    assert!(
        areas.iter().all(|l| l.contains(" 0 B in     0 files")),
        "{text}"
    );

    // Refill, then clean: only ocisdk's areas go.
    install(true);
    let refilled: Vec<PathBuf> = ["partial-v1", "sdk-tarballs-v1", "sdk-records-v1"]
        .iter()
        .flat_map(|area| files_under(&cache.join(area)))
        .filter(|f| !is_lock(f))
        .collect();
    assert!(!refilled.is_empty());
    let text = s.run(&["cache", "clean"]).success().stdout;
    assert!(
        text.starts_with(&format!("removed {} files, ", refilled.len())),
        "{text}"
    );
    assert_eq!(
        fs::read(cache.join("keep-me.txt")).unwrap(),
        b"not ocisdk's"
    );
    assert_eq!(
        fs::read(cache.join("other/file")).unwrap(),
        b"not ocisdk's either"
    );
    assert_eq!(files_under(&cache.join("sdk-tarballs-v1")), locks);
    // Installs are not the cache's.
    assert!(root.join("python/3.11.4/bin/python").is_file());
    let removed = s.run(&["cache", "clean", "--json"]).success().json();
    assert_eq!(
        removed,
        serde_json::json!({"files": 0, "bytes": 0, "in_use": 0})
    );
}

/// `cache info` says when the cache folder, or an area in it, is one another user could
/// change (the check prune and clean make), naming the folder, why, and the way out, and
/// still counts what is there, with exit code 0: it only reads. `--json` says it in
/// `trusted`; `OCISDK_SAFE_FOLDERS` vouches for the folder.
#[test]
fn cache_info_warns_about_a_cache_folder_others_may_write() {
    use std::os::unix::fs::PermissionsExt;
    let s = Sandbox::new();
    let cache = s.cache();
    let partials = cache.join("partial-v1");
    fs::create_dir_all(&partials).unwrap();
    fs::write(partials.join("sha256-aa.part"), b"partial").unwrap();
    let set_mode = |path: &Path, mode: u32| {
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    };

    let info = s.run(&["cache", "info", "--json"]).success();
    assert_eq!(info.json()["trusted"], true, "{}", info.stdout);
    assert!(
        !info.stderr.contains("cannot be trusted"),
        "{}",
        info.stderr
    );

    // Group write alone depends on the group (the owner's private one is accepted).
    for (folder, mode) in [(&cache, 0o777), (&partials, 0o757)] {
        set_mode(folder, mode);
        let warning = format!(
            "the cache folder {} cannot be trusted: {} is owned by uid",
            cache.display(),
            folder.display()
        );
        let text = s.run(&["cache", "info"]).success();
        assert!(text.stderr.contains(&warning), "{}", text.stderr);
        assert!(
            text.stderr.contains("OCISDK_SAFE_FOLDERS"),
            "{}",
            text.stderr
        );
        assert!(
            text.stdout
                .contains("partial-v1              7 B in     1 files"),
            "{}",
            text.stdout
        );
        let json = s.run(&["cache", "info", "--json"]).success();
        assert!(json.stderr.contains(&warning), "{}", json.stderr);
        assert_eq!(json.json()["trusted"], false, "{}", json.stdout);
        assert_eq!(area(&json.json(), "partial-v1"), (1, 7));
        set_mode(folder, 0o755);
    }

    set_mode(&cache, 0o777);
    let mut cmd = s.command(&["cache", "info", "--json"]);
    cmd.env("OCISDK_SAFE_FOLDERS", s.dir.path());
    let vouched = Run::from_output(cmd.output().unwrap()).success();
    assert_eq!(vouched.json()["trusted"], true, "{}", vouched.stdout);
    assert!(
        !vouched.stderr.contains("cannot be trusted"),
        "{}",
        vouched.stderr
    );
}

/// `cache prune` and `clean` refuse a cache folder others may write, exit 2, and remove
/// nothing: run as root, they could be made to remove files where another user chooses by
/// a folder swapped for a symlink between the look and the removal. `OCISDK_SAFE_FOLDERS`
/// vouches for it.
#[test]
fn cache_clean_refuses_a_cache_folder_others_may_write() {
    let s = Sandbox::new();
    let cache = s.cache();
    let partial = cache.join("partial-v1").join("sha256-aa.part");
    fs::create_dir_all(partial.parent().unwrap()).unwrap();
    fs::write(&partial, b"partial").unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&cache, fs::Permissions::from_mode(0o777)).unwrap();
    for args in [
        &["cache", "clean"][..],
        &["cache", "prune", "--older-than", "0"],
    ] {
        let run = s.run(args).expect_code(2);
        assert!(
            run.stderr.contains(&format!(
                "the cache folder {} cannot be trusted",
                cache.display()
            )),
            "{}",
            run.stderr
        );
        assert!(run.stderr.contains("OCISDK_SAFE_FOLDERS"), "{}", run.stderr);
        assert!(partial.exists(), "{args:?} removed a file");
    }
    let mut cmd = s.command(&["cache", "clean", "--json"]);
    cmd.env("OCISDK_SAFE_FOLDERS", s.dir.path());
    let run = Run::from_output(cmd.output().unwrap()).success();
    assert_eq!(run.json()["files"], 1, "{}", run.stdout);
    assert!(!partial.exists());
}
