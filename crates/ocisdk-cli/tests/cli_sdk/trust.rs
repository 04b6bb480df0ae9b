//! Folders other users could change: install roots and caches owned by another user or
//! writable by others, safe folders, planted symlinks, and roots that cannot be written.

use super::*;

/// A top folder that is read-only (`./` of mode 0555, as some SDK tarballs have it) does not
/// stop its owner from replacing or removing the install: moving a folder to another parent
/// needs write permission on it, which root never lacks, so the owner is `nobody`.
#[test]
fn read_only_install_folder_is_reinstalled_and_uninstalled_by_its_unprivileged_owner() {
    let registry = Registry::start();
    let h = Harness::new(&registry.url());
    let tarball = RawTar::new()
        .dir("./", 0o555)
        .dir("./bin", 0o755)
        .file(
            "./bin/python",
            python_script("3.11.0", "bookworm").as_bytes(),
            0o755,
        )
        .symlink("./bin/python3", "python")
        .dir("./lib", 0o755)
        .file("./lib/VERSION", b"3.11.0", 0o644)
        .tar_gz();
    h.publish_bytes("3.11.0", "bookworm", false, &tarball);
    let bin = h.make_unprivileged();
    let mode = |path: &Path| fs::metadata(path).unwrap().permissions().mode() & 0o777;

    h.sdk_unprivileged(&bin, &["install", "python", "3.11.0"])
        .success();
    assert_complete_install(&h, "3.11.0");
    assert_eq!(mode(&h.installed("3.11.0")), 0o555);

    h.sdk_unprivileged(&bin, &["install", "python", "3.11.0", "--force"])
        .success();
    assert_complete_install(&h, "3.11.0");
    assert_eq!(mode(&h.installed("3.11.0")), 0o555);

    let run = h
        .sdk_unprivileged(&bin, &["uninstall", "python", "3.11.0"])
        .success();
    assert_eq!(run.stdout, format!("{}\n", h.installed("3.11.0").display()));
    assert!(!h.installed("3.11.0").exists());
    assert_nothing_left_over(&h);
    // As its owner: root no longer trusts a root `nobody` owns.
    let run = h.sdk_unprivileged(&bin, &["list-installed"]).success();
    assert!(run.stdout.is_empty(), "{}", run.stdout);
}

/// An install root the build's user may not write fails naming the setting that chose it,
/// not only the folder the OS refused; one error object per failed spec carries it too.
#[test]
fn an_install_root_that_cannot_be_written_names_the_setting_to_change() {
    let c = catalogue();
    let h = c.harness();
    let bin = h.make_unprivileged();
    fs::set_permissions(h.root(), fs::Permissions::from_mode(0o555)).unwrap();
    let hint = format!(
        "the install root {} is not writable by this user: choose another with --root or \
         DYNAMIC_INSTALL_ROOT_DIR",
        h.root().display()
    );

    let run = h
        .sdk_unprivileged(&bin, &["install", "python", "3.11.10"])
        .expect_code(1);
    assert!(
        run.stderr.contains(&format!("hint: {hint}")),
        "{}",
        run.stderr
    );

    let run = h
        .sdk_unprivileged(&bin, &["install", "python", "3.11.10", "3.12.4", "--json"])
        .expect_code(1);
    let errors: Vec<serde_json::Value> = run
        .stderr
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect();
    assert_eq!(errors.len(), 2, "{}", run.stderr);
    for error in errors {
        assert_eq!(error["error"]["hint"], hint.as_str(), "{error}");
    }
    fs::set_permissions(h.root(), fs::Permissions::from_mode(0o755)).unwrap();
    assert!(list_dir(&h.root()).is_empty(), "nothing was installed");

    // The same for the cache folder, which the tarball goes through.
    fs::set_permissions(h.cache(), fs::Permissions::from_mode(0o555)).unwrap();
    let run = h
        .sdk_unprivileged(&bin, &["install", "python", "3.11.10"])
        .expect_code(1);
    let hint = format!(
        "hint: the cache folder {} is not writable by this user: choose another with \
         OCISDK_CACHE_DIR",
        h.cache().display()
    );
    assert!(run.stderr.contains(&hint), "{}", run.stderr);
    fs::set_permissions(h.cache(), fs::Permissions::from_mode(0o755)).unwrap();
}

/// Gives `path` and everything under it to `uid` (symlinks themselves, not their targets).
fn chown_tree(path: &Path, uid: u32) {
    std::os::unix::fs::lchown(path, Some(uid), Some(uid)).unwrap();
    if fs::symlink_metadata(path).unwrap().is_dir() {
        for entry in fs::read_dir(path).unwrap() {
            chown_tree(&entry.unwrap().path(), uid);
        }
    }
}

/// Puts a finished-looking python `version` under the root by hand, as another user who
/// may write it could: a `bin/python` of theirs and the sentinel.
fn plant_install(h: &Harness, version: &str) {
    let bin = h.installed(version).join("bin");
    fs::create_dir_all(&bin).unwrap();
    fs::write(bin.join("python"), "#!/bin/sh\necho planted\n").unwrap();
    fs::set_permissions(bin.join("python"), fs::Permissions::from_mode(0o755)).unwrap();
    fs::write(h.installed(version).join(SENTINEL), b"").unwrap();
}

/// The error every SDK command that trusts the root gives for a root it cannot trust.
#[track_caller]
fn assert_untrusted(run: &Run, h: &Harness, path: &Path, why: &str) {
    let want = format!(
        "error: the install root {} cannot be trusted: {} is {why}",
        h.root().display(),
        path.display()
    );
    assert!(run.stderr.starts_with(&want), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("use an install root of your own (--root or DYNAMIC_INSTALL_ROOT_DIR)"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("or name a folder you vouch for in OCISDK_SAFE_FOLDERS"),
        "{}",
        run.stderr
    );
    assert!(run.stdout.is_empty(), "{}", run.stdout);
}

/// An install root another user owns (`/tmp/oryx/platforms`, made first by someone else)
/// holding an install of theirs with the sentinel is refused by every command that would
/// trust it, with exit code 2, and nothing in it is used or changed: a build run as root
/// would run their `python`. The same folders given to the running user are trusted again.
#[test]
fn an_install_root_owned_by_another_user_is_refused_and_left_alone() {
    if !is_root() {
        println!("SKIPPED: only root can give a folder to another user");
        return;
    }
    let c = catalogue();
    let h = c.harness();
    plant_install(&h, "3.11.10");
    chown_tree(&h.root(), NOBODY);
    let before = snapshot(&h.root());
    let list = h.work().join("sdks.txt");
    fs::write(&list, "python 3.11.10\n").unwrap();
    let why = format!("owned by uid {NOBODY} (mode 0755), neither this user (uid 0) nor root");

    for args in [
        &["install", "python", "3.11.10"][..],
        &["install", "python", "3.11.10", "--force"],
        &["sync", path_str(&list)],
        &["list-installed"],
        &["uninstall", "python", "3.11.10"],
    ] {
        let run = h.sdk(args).expect_code(2);
        assert_untrusted(&run, &h, &h.root(), &why);
    }
    let run = h
        .sdk(&["install", "python", "3.11.10", "--json"])
        .expect_code(2);
    let error = run.error_json();
    assert_eq!(error["kind"], "usage", "{error}");
    assert_eq!(error["exit_code"], 2, "{error}");
    assert_eq!(snapshot(&h.root()), before, "the root was changed");
    assert_eq!(
        fs::metadata(h.root()).unwrap().uid(),
        NOBODY,
        "the root changed hands"
    );

    // A platform folder of another user's in a root of ours is refused the same way.
    std::os::unix::fs::chown(h.root(), Some(0), Some(0)).unwrap();
    let run = h.sdk(&["list-installed"]).expect_code(2);
    assert_untrusted(&run, &h, &h.root().join("python"), &why);

    chown_tree(&h.root(), 0);
    let want = format!("python 3.11.10 {}\n", h.installed("3.11.10").display());
    assert_eq!(h.sdk(&["list-installed"]).success().stdout, want);
    let json = h
        .sdk(&["install", "python", "3.11.10", "--json"])
        .success()
        .json();
    assert_eq!(json["cached"], true, "{json}");
}

/// A root and a cache folder another user owns are used as they are when they lie below a
/// folder named in `OCISDK_SAFE_FOLDERS`, as git's `safe.directory` vouches for a
/// repository: a container running as root in a workspace and `HOME` of the host's user
/// needs it. Without it the same install is refused.
#[test]
fn safe_folders_are_used_without_the_ownership_checks() {
    if !is_root() {
        println!("SKIPPED: only root can give a folder to another user");
        return;
    }
    let c = catalogue();
    let h = c.harness();
    for folder in [h.root(), h.cache()] {
        fs::create_dir_all(&folder).unwrap();
        chown_tree(&folder, NOBODY);
    }
    h.sdk(&["install", "python", "3.11.10"]).expect_code(2);

    let safe = h.dir.path().to_str().unwrap();
    let install = |args: &[&str]| {
        let output = h
            .sdk_command(&h.url, args)
            .env("OCISDK_SAFE_FOLDERS", format!("/nowhere:{safe}"))
            .output()
            .expect("run ocisdk sdk install");
        Run::from_output(output).success()
    };
    let run = install(&["install", "python", "3.11.10"]);
    assert!(!run.stderr.contains("cannot be trusted"), "{}", run.stderr);
    assert_complete_install(&h, "3.11.10");
    let cached = h
        .cache()
        .join("sdk-tarballs-v1")
        .join(h.host().replace(':', "_"))
        .join(PYTHON_REPO)
        .join("python-bookworm-3.11.10.tar.gz");
    assert!(cached.is_file(), "the cache was used: {}", cached.display());
    let run = install(&["list-installed"]);
    assert!(run.stdout.contains("python 3.11.10"), "{}", run.stdout);
}

/// A root its group or anyone may write is refused, sticky or not: in a sticky root others
/// could still create its platform folders first. Above the root, sticky is enough, as it
/// is for `/tmp`. Group write is refused for a group others share (`nogroup` here), and
/// accepted for the owner's private group (root's own, as root), as Debian's user private
/// groups under a umask of 002 make every folder group-writable.
#[test]
fn a_shared_install_root_is_refused_and_a_sticky_folder_above_it_is_not() {
    let c = catalogue();
    let h = c.harness();
    let root = h.root();
    if is_root() {
        fs::set_permissions(&root, fs::Permissions::from_mode(0o775)).unwrap();
        h.sdk(&["list-installed"]).success();
        std::os::unix::fs::chown(&root, None, Some(65534)).unwrap();
    } else {
        eprintln!("SKIPPED: the group cases (only root can give a folder to another group)");
    }
    let group_cases = if is_root() { 0 } else { 1 };
    for (mode, why) in [
        (0o775, "with mode 0775, writable by its group"),
        (0o757, "with mode 0757, writable by others"),
        (
            0o1777,
            "with mode 1777, writable by its group and others (sticky is enough only for a \
             folder above the root: others could create its platform folders)",
        ),
    ]
    .into_iter()
    .skip(group_cases)
    {
        fs::set_permissions(&root, fs::Permissions::from_mode(mode)).unwrap();
        let uid = fs::metadata(&root).unwrap().uid();
        let why = format!("owned by uid {uid} {why}");
        let run = h.sdk(&["install", "python", "3.11.10"]).expect_code(2);
        assert_untrusted(&run, &h, &root, &why);
        assert!(list_dir(&root).is_empty(), "{:?}", list_dir(&root));
    }

    fs::set_permissions(&root, fs::Permissions::from_mode(0o755)).unwrap();
    fs::set_permissions(h.dir.path(), fs::Permissions::from_mode(0o1777)).unwrap();
    h.sdk(&["install", "python", "3.11.10"]).success();
    assert_complete_install(&h, "3.11.10");

    // The folders an install makes are writable by their owner alone, whatever the umask.
    let fresh = h.dir.path().join("fresh/platforms");
    let mut cmd = h.command(
        &[
            "sdk",
            "install",
            "python",
            "3.11.10",
            "--registry",
            &h.url,
            "--root",
            path_str(&fresh),
        ],
        &[],
    );
    // SAFETY: umask only sets the child's file creation mask, before it runs the binary.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
            libc::umask(0);
            Ok(())
        });
    }
    Run::from_output(cmd.output().unwrap()).success();
    for dir in [fresh.parent().unwrap(), &fresh, &fresh.join("python")] {
        let mode = fs::metadata(dir).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o755, "{}", dir.display());
    }
    // So are the files it writes itself: the record says which image is installed.
    for name in [INSTALL_RECORD, SENTINEL] {
        let file = fresh.join("python/3.11.10").join(name);
        let mode = fs::metadata(&file).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o644, "{}", file.display());
    }
}

/// Puts python 3.11.10's cached files in the cache of `h` (filled by an install) as another
/// user who may write the cache folder could: a tarball of theirs, the sidecar as it is
/// (anyone may read the manifest digest from the registry) and the record made to match.
/// Returns the planted tarball.
fn plant_cached_tarball(h: &Harness) -> Vec<u8> {
    let planted = RawTar::new()
        .dir("bin", 0o755)
        .file("bin/python", b"#!/bin/sh\necho planted\n", 0o755)
        .dir("lib", 0o755)
        .file("lib/VERSION", b"planted", 0o644)
        .tar_gz();
    let tarballs = find_files(&h.cache(), "python-bookworm-3.11.10.tar.gz");
    assert_eq!(tarballs.len(), 1, "{tarballs:?}");
    fs::write(&tarballs[0], &planted).unwrap();
    let records = h.cache().join("sdk-records-v1");
    let record = list_dir(&records);
    assert_eq!(record.len(), 1, "{record:?}");
    let text = format!("{}\nartifact\n", digest_of(&planted));
    fs::write(records.join(&record[0]), text).unwrap();
    planted
}

/// Runs `sdk install python 3.11.10 --force` where the cache folder, or `folder` in it, is
/// one another user could change (`why`): the registry's SDK is installed, with one warning
/// that names `folder` and `why`, says the install goes on without the cache and how to
/// mend it, and no staging folder is left. Returns the warning's start.
fn assert_installs_without_the_cache(h: &Harness, folder: &Path, why: &str) -> String {
    let run = h
        .sdk(&["install", "python", "3.11.10", "--force"])
        .success();
    assert_complete_install(h, "3.11.10");
    let want = format!(
        "the cache folder {} cannot be trusted: {} is {why}",
        h.cache().display(),
        folder.display()
    );
    assert!(run.stderr.contains(&want), "{}", run.stderr);
    for hint in [
        "going on without the cache",
        "use a cache folder of your own",
        "OCISDK_SAFE_FOLDERS",
    ] {
        assert!(run.stderr.contains(hint), "{hint}: {}", run.stderr);
    }
    assert_eq!(
        run.stderr.matches("cannot be trusted").count(),
        1,
        "{}",
        run.stderr
    );
    assert!(staging_folders(h).is_empty(), "{:?}", staging_folders(h));
    want
}

/// A cache folder another user owns, or anyone may write, can hold a tarball, sidecar and
/// record of theirs that agree with each other and with the registry: an install as root
/// does not use that cache at all. It installs the registry's SDK, warns once naming the
/// folder, its owner and mode, and leaves their files as they are; a pull works the same.
#[test]
fn a_cache_folder_another_user_could_change_is_not_used() {
    let c = catalogue();
    let h = c.harness();
    h.sdk(&["install", "python", "3.11.10"]).success();
    plant_cached_tarball(&h);
    // The plant is consistent: a cache folder of one's own vouches for it.
    h.sdk(&["install", "python", "3.11.10", "--force"])
        .success();
    assert_eq!(
        read(&h.installed("3.11.10").join("lib/VERSION")),
        b"planted"
    );

    let cache = h.cache();
    let mut ways = vec![(
        0o777,
        None,
        "owned by uid 0 with mode 0777, writable by its group and others".to_string(),
    )];
    if is_root() {
        let why = format!("owned by uid {NOBODY} (mode 0755), neither this user (uid 0) nor root");
        ways.push((0o755, Some(NOBODY), why));
    } else {
        println!("only the mode 0777 case: only root can give a folder to another user");
        let uid = fs::metadata(&cache).unwrap().uid();
        ways[0].2 = format!("owned by uid {uid} with mode 0777, writable by its group and others");
    }
    for (mode, owner, why) in ways {
        if let Some(owner) = owner {
            chown_tree(&cache, owner);
        }
        fs::set_permissions(&cache, fs::Permissions::from_mode(mode)).unwrap();
        let before = snapshot(&cache);
        let want = assert_installs_without_the_cache(&h, &cache, &why);

        // A pull goes without the cache's records as well.
        let out = h.work().join(format!("pulled-{mode:o}"));
        let run = h
            .sdk(&["pull", "python", "3.11.10", "-o", path_str(&out)])
            .success();
        assert!(run.stderr.contains(&want), "{}", run.stderr);
        assert_holds_only_the_pulled_tarball(&c, &out);
        assert_eq!(snapshot(&cache), before, "the cache was changed");

        chown_tree(&cache, fs::metadata(h.root()).unwrap().uid());
        fs::set_permissions(&cache, fs::Permissions::from_mode(0o755)).unwrap();
    }
}

/// A cache record (a cached tarball's sha256) that anyone may write, in a cache folder of
/// one's own, is no record: under a umask of 0 ocisdk wrote them 0666, and another user
/// could make one vouch for a tarball of theirs. The install downloads the registry's SDK
/// and says why; records written now are 0644 whatever the umask.
#[test]
fn a_cache_record_anyone_may_write_is_not_used_and_none_is_written() {
    let c = catalogue();
    let h = c.harness();
    h.sdk(&["install", "python", "3.11.10"]).success();
    plant_cached_tarball(&h);
    let records = h.cache().join("sdk-records-v1");
    let record = records.join(&list_dir(&records)[0]);
    fs::set_permissions(&record, fs::Permissions::from_mode(0o666)).unwrap();

    let run = h
        .sdk(&["install", "python", "3.11.10", "--force"])
        .success();
    assert_complete_install(&h, "3.11.10");
    assert!(
        run.stderr
            .contains(&format!("{} is owned by uid", record.display()))
            && run
                .stderr
                .contains("the cached tarball it vouches for is not used"),
        "{}",
        run.stderr
    );
    let mode = fs::metadata(&record).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o644, "the record written again");

    // A fresh cache, filled under a umask of 0.
    let cache = h.work().join("fresh-cache");
    let mut cmd = h.sdk_command(&h.url, &["install", "python", "3.12.4", "--json"]);
    cmd.env("OCISDK_CACHE_DIR", &cache);
    // SAFETY: umask only sets the child's file creation mask, before it runs the binary.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
            libc::umask(0);
            Ok(())
        });
    }
    Run::from_output(cmd.output().unwrap()).success();
    let written = list_dir(&cache.join("sdk-records-v1"));
    assert_eq!(written.len(), 1, "{written:?}");
    let file = cache.join("sdk-records-v1").join(&written[0]);
    let mode = fs::metadata(&file).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o644, "{}", file.display());
}

/// A preloaded shim that, at the second open of a file whose name ends with `$SWAP_NAME`,
/// first writes the content of `$SWAP_WITH` over it, in place, as another user who may
/// write the file could between two reads of it.
const SWAP_ON_SECOND_OPEN_SHIM: &str = r#"
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
static int opens;
static void swap(const char *path) {
    const char *name = getenv("SWAP_NAME"), *with = getenv("SWAP_WITH");
    if (!name || !with) return;
    size_t n = strlen(path), m = strlen(name);
    if (n < m || strcmp(path + n - m, name) != 0 || ++opens != 2) return;
    int (*real)(const char *, int, ...) = dlsym(RTLD_NEXT, "open64");
    int in = real(with, O_RDONLY), out = real(path, O_WRONLY | O_TRUNC);
    char buf[65536];
    ssize_t got;
    while ((got = read(in, buf, sizeof buf)) > 0) (void)!write(out, buf, got);
    close(in);
    close(out);
}
int open64(const char *path, int flags, ...) {
    va_list ap;
    va_start(ap, flags);
    int mode = (flags & O_CREAT) ? va_arg(ap, int) : 0;
    va_end(ap);
    swap(path);
    int (*real)(const char *, int, ...) = dlsym(RTLD_NEXT, "open64");
    return real(path, flags, mode);
}
"#;

/// An install from the cache checks the tarball's sha256 as it unpacks it, not only before:
/// a tarball another user changes between the cache's check and the unpack (a cache made
/// under a umask of 0 lets them write it) fails the install, and the previous install stays
/// as it was. It used to install their tarball.
#[test]
fn a_cached_tarball_changed_after_its_check_is_not_installed() {
    let c = catalogue();
    let h = c.harness();
    h.sdk(&["install", "python", "3.11.10"]).success();
    let before = snapshot(&h.installed("3.11.10"));
    let planted = h.work().join("planted.tar.gz");
    fs::write(
        &planted,
        RawTar::new()
            .dir("bin", 0o755)
            .file("bin/python", b"#!/bin/sh\necho planted\n", 0o755)
            .tar_gz(),
    )
    .unwrap();
    let shim = preload_shim(&h, "swap", SWAP_ON_SECOND_OPEN_SHIM);
    let output = h
        .sdk_command(&h.url, &["install", "python", "3.11.10", "--force"])
        .env("LD_PRELOAD", &shim)
        .env("SWAP_NAME", "python-bookworm-3.11.10.tar.gz")
        .env("SWAP_WITH", &planted)
        .output()
        .expect("run ocisdk sdk install");
    let run = Run::from_output(output).expect_code(1);
    assert!(
        run.stderr.contains("changed after it was verified"),
        "{}",
        run.stderr
    );
    assert_eq!(snapshot(&h.installed("3.11.10")), before);
    assert_complete_install(&h, "3.11.10");
    assert!(staging_folders(&h).is_empty(), "{:?}", staging_folders(&h));
}

/// The folders below a cache folder of one's own vouch for an install as much as the cache
/// folder does: `sdk-tarballs-v1`, a repository's folder deep in it, or `sdk-records-v1`
/// that another user owns (made before the cache was only ours) or anyone may write (made
/// by an older ocisdk with the umask) can hold a tarball, sidecar and record of theirs that
/// agree. An install as root does without the cache: it installs the registry's SDK, warns
/// once naming that folder, its owner and mode, and leaves the cache as it is.
#[test]
fn a_folder_in_the_cache_another_user_could_change_is_not_used() {
    let c = catalogue();
    let h = c.harness();
    h.sdk(&["install", "python", "3.11.10"]).success();
    plant_cached_tarball(&h);
    let cache = h.cache();
    let tarballs = cache.join("sdk-tarballs-v1");
    let repo = tarballs.join(h.host().replace(':', "_")).join(PYTHON_REPO);
    let records = cache.join("sdk-records-v1");
    let uid = fs::metadata(&cache).unwrap().uid();
    let shared = |mode: u32, who: &str| {
        format!("owned by uid {uid} with mode {mode:04o}, writable by {who}")
    };
    let mut ways = vec![
        (
            tarballs.clone(),
            0o777,
            None,
            shared(0o777, "its group and others"),
        ),
        (repo.clone(), 0o757, None, shared(0o757, "others")),
        (records.clone(), 0o757, None, shared(0o757, "others")),
    ];
    if is_root() {
        let why = format!("owned by uid {NOBODY} (mode 0755), neither this user (uid 0) nor root");
        ways.push((repo.clone(), 0o755, Some(NOBODY), why.clone()));
        ways.push((
            tarballs.join(h.host().replace(':', "_")),
            0o755,
            Some(NOBODY),
            why,
        ));
    } else {
        println!("SKIPPED: the other owner's folders: only root can give a folder to another user");
    }
    for (folder, mode, owner, why) in ways {
        let was = fs::metadata(&folder).unwrap();
        if let Some(owner) = owner {
            std::os::unix::fs::chown(&folder, Some(owner), Some(owner)).unwrap();
        }
        fs::set_permissions(&folder, fs::Permissions::from_mode(mode)).unwrap();
        let before = snapshot(&h.cache());
        assert_installs_without_the_cache(&h, &folder, &why);
        assert_eq!(snapshot(&h.cache()), before, "the cache was changed");

        if owner.is_some() {
            std::os::unix::fs::chown(&folder, Some(was.uid()), Some(was.gid())).unwrap();
        }
        fs::set_permissions(&folder, was.permissions()).unwrap();
    }
}

/// An `sdk sync` of three SDKs of one repository whose folder of tarballs in the cache anyone
/// may write installs all three without the cache and warns once about that folder, not once
/// per SDK: every install of the repository checks it, and each used to say so again.
#[test]
fn a_sync_warns_once_about_a_repositorys_untrusted_cache_folder() {
    let c = catalogue();
    let h = c.harness();
    h.sdk(&["install", "python", "3.11.10"]).success();
    let repo = h
        .cache()
        .join("sdk-tarballs-v1")
        .join(h.host().replace(':', "_"))
        .join(PYTHON_REPO);
    fs::set_permissions(&repo, fs::Permissions::from_mode(0o777)).unwrap();
    let list = h.work().join("sdks.txt");
    fs::write(&list, "python 3.9.9\npython 3.10.0\npython 3.12.4\n").unwrap();

    let run = h.sdk(&["sync", path_str(&list)]).success();
    let uid = fs::metadata(&repo).unwrap().uid();
    let warning = format!(
        "the cache folder {} cannot be trusted: {} is owned by uid {uid} with mode 0777",
        h.cache().display(),
        repo.display()
    );
    assert_eq!(run.stderr.matches(&warning).count(), 1, "{}", run.stderr);
    assert_eq!(
        run.stderr.matches("cannot be trusted").count(),
        1,
        "{}",
        run.stderr
    );
    for version in ["3.9.9", "3.10.0", "3.12.4"] {
        assert_complete_install(&h, version);
    }
}

/// An `sdk sync` of three SDKs with a cache folder writable by its owner's private group
/// (root's here, as a Debian umask of 002 makes a user's folders) lists the user database
/// once, to see that no one else has that group as primary group, however many times it
/// checks the cache folder: it did so at every check, once or more for each SDK, and with
/// LDAP or NIS enumeration each listing walks the whole directory.
#[test]
fn a_sync_lists_the_user_database_once_for_a_private_group() {
    if !is_root() {
        eprintln!("SKIPPED: a folder of root's private group needs root");
        return;
    }
    let c = catalogue();
    let h = c.harness();
    fs::create_dir_all(h.cache()).unwrap();
    fs::set_permissions(h.cache(), fs::Permissions::from_mode(0o775)).unwrap();
    let list = h.work().join("sdks.txt");
    fs::create_dir_all(h.work()).unwrap();
    fs::write(&list, "python 3.9.9\npython 3.10.0\npython 3.12.4\n").unwrap();

    let mut cmd = h.sdk_command(&h.url, &["sync", path_str(&list)]);
    cmd.env("RUST_LOG", "ocisdk::trust=debug");
    let run = Run::from_output(cmd.output().unwrap()).success();
    assert_eq!(
        run.stderr.matches("listing the user database").count(),
        1,
        "{}",
        run.stderr
    );
    // Accepted: the cache was used, not done without.
    assert!(!run.stderr.contains("cannot be trusted"), "{}", run.stderr);
    for version in ["3.9.9", "3.10.0", "3.12.4"] {
        assert_complete_install(&h, version);
        let name = format!("python-bookworm-{version}.tar.gz");
        assert_eq!(find_files(&h.cache(), &name).len(), 1, "{name}");
    }
}

/// A lock file planted as a symlink (an install's `.{version}.lock` in the platform folder,
/// a pull's beside its tarball) fails the command naming it, and the file it points at is
/// not made: a root install would otherwise create an empty file anywhere.
#[test]
fn a_lock_file_planted_as_a_symlink_fails_the_command_and_makes_nothing_elsewhere() {
    let c = catalogue();
    let h = c.harness();
    let made = h.outside().join("made-by-ocisdk");
    let lock = h.root().join("python/.3.11.10.lock");
    fs::create_dir_all(lock.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(&made, &lock).unwrap();
    let out = h.work().join("pulled");
    fs::create_dir_all(&out).unwrap();
    let pull_lock = out.join(".python-bookworm-3.11.10.tar.gz.lock");
    std::os::unix::fs::symlink(&made, &pull_lock).unwrap();

    for (args, lock) in [
        (&["install", "python", "3.11.10"][..], &lock),
        (
            &["pull", "python", "3.11.10", "-o", path_str(&out)],
            &pull_lock,
        ),
    ] {
        let run = h.sdk(args).expect_code(1);
        let want = format!(
            "error: opening the lock file {}: it is a symbolic link, which ocisdk never makes \
             there: not followed",
            lock.display()
        );
        assert!(run.stderr.starts_with(&want), "{}", run.stderr);
        assert!(!made.exists(), "{args:?} made the symlink's target");
        assert!(fs::symlink_metadata(lock).unwrap().is_symlink());
    }
    assert!(!h.installed("3.11.10").exists());
    assert_eq!(list_dir(&out), [".python-bookworm-3.11.10.tar.gz.lock"]);
}

/// A download's partial file in the cache (a folder `OCISDK_CACHE_DIR` may share), which is
/// locked and written into, planted as a symlink is not followed: the download does without
/// the cache, as when it cannot be written, and the file it points at stays as it was.
#[test]
fn a_partial_download_planted_as_a_symlink_is_not_written_through() {
    let c = catalogue();
    let h = c.harness();
    let tarball = c.tarball("bookworm-3.11.10");
    let layer = digest_of(tarball);
    let partial = h
        .cache()
        .join("partial-v1")
        .join(format!("{}.part", layer.replace(':', "-")));
    fs::create_dir_all(partial.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(h.outside().join("file"), &partial).unwrap();
    let dest = h.work().join("blob.tar.gz");
    let blob = format!("{}/{PYTHON_REPO}@{layer}", h.host());
    let run = h.run(&["blob", &blob, "-o", path_str(&dest)]).success();
    let want = format!(
        "opening {}: it is a symbolic link, which ocisdk never makes there: not followed",
        partial.display()
    );
    assert!(run.stderr.contains(&want), "{}", run.stderr);
    assert_same_bytes(&read(&dest), tarball, "blob");
    assert_eq!(read(&h.outside().join("file")), b"precious");
    assert!(fs::symlink_metadata(&partial).unwrap().is_symlink());
}

/// The cache's folder of partial downloads (`partial-v1`) planted as a symlink by another
/// user (as root: the link is `nobody`'s), or leading to a folder anyone may write, is not
/// followed: `ocisdk blob` and `pull` warn once, naming the folder, and download without
/// resuming; nothing in the folder it leads to is read, written or removed.
#[test]
fn a_partial_folder_in_the_cache_planted_as_a_symlink_is_not_written_through() {
    let c = catalogue();
    let h = c.harness();
    let tarball = c.tarball("bookworm-3.11.10");
    let layer = digest_of(tarball);
    let chosen = h.outside().join("chosen");
    fs::create_dir(&chosen).unwrap();
    // What a download of the layer would resume from, and write the rest of the blob into.
    let part = format!("{}.part", layer.replace(':', "-"));
    fs::write(chosen.join(&part), b"precious").unwrap();
    let partials = h.cache().join("partial-v1");
    std::os::unix::fs::symlink(&chosen, &partials).unwrap();
    let resolved = fs::canonicalize(&chosen).unwrap();
    let uid = fs::metadata(&chosen).unwrap().uid();

    let mut ways = vec![(
        0o777,
        None,
        resolved.clone(),
        format!("owned by uid {uid} with mode 0777, writable by its group and others"),
    )];
    if is_root() {
        let why = format!("owned by uid {NOBODY} (mode 0777), neither this user (uid 0) nor root");
        ways.push((0o755, Some(NOBODY), partials.clone(), why));
    } else {
        println!("SKIPPED: a link of another user's: only root can give a link to another user");
    }
    for (mode, owner, failing, why) in ways {
        fs::set_permissions(&chosen, fs::Permissions::from_mode(mode)).unwrap();
        if let Some(owner) = owner {
            std::os::unix::fs::lchown(&partials, Some(owner), Some(owner)).unwrap();
        }
        let blob = format!("{}/{PYTHON_REPO}@{layer}", h.host());
        let pulled = h.work().join(format!("pulled-{mode:o}.tar.gz"));
        let fetched = h.work().join(format!("blob-{mode:o}.tar.gz"));
        for args in [
            &["blob", &blob, "-o", path_str(&fetched)][..],
            &[
                "pull",
                &h.python_ref("bookworm-3.11.10"),
                "-o",
                path_str(&pulled),
            ],
        ] {
            let run = h.run(args).success();
            let want = format!(
                "the cache folder {} cannot be trusted: {} is {why}",
                h.cache().display(),
                failing.display()
            );
            assert!(run.stderr.contains(&want), "{args:?}: {}", run.stderr);
            assert!(
                run.stderr
                    .contains("downloading without resuming from the cache")
                    && run.stderr.contains("OCISDK_SAFE_FOLDERS"),
                "{args:?}: {}",
                run.stderr
            );
            assert_eq!(
                run.stderr.matches("cannot be trusted").count(),
                1,
                "{}",
                run.stderr
            );
        }
        assert_same_bytes(&read(&fetched), tarball, "blob");
        assert_same_bytes(&read(&pulled), tarball, "pulled layer");
        assert_eq!(list_dir(&chosen), [part.as_str()]);
        assert_eq!(read(&chosen.join(&part)), b"precious");
        assert!(fs::symlink_metadata(&partials).unwrap().is_symlink());
    }
}

/// Under a umask of 0, as in many containers and CI jobs, nothing an install leaves in the
/// cache folder (tarballs of both image shapes, their sidecars and records, lock files) is
/// writable by group or others: another user could otherwise change a cached tarball, so
/// that the next install downloads it again, or hold its lock file's lock for ever. A pull
/// into a folder the user names still makes its files as the umask says, as curl does.
#[test]
fn nothing_an_install_leaves_in_the_cache_is_writable_by_others_under_umask_0() {
    let registry = Registry::start();
    let h = Harness::new(&registry.url());
    h.publish("3.11.10", "bookworm", false);
    let inner = sdk_tarball("3.11.11", "bookworm");
    push_filesystem_layer_image(&h, "3.11.11", &inner, Format::Oci);

    let mut cmd = h.sdk_command(&h.url, &["install", "python", "3.11.10", "3.11.11"]);
    Run::from_output(cli::with_umask(&mut cmd, 0).output().unwrap()).success();
    assert_complete_install(&h, "3.11.10");
    assert_complete_install(&h, "3.11.11");
    let tarballs = find_files(
        &h.cache().join("sdk-tarballs-v1"),
        "python-bookworm-3.11.11.tar.gz",
    );
    assert_eq!(tarballs.len(), 1, "{tarballs:?}");
    assert_eq!(writable_by_others(&h.cache()), Vec::<String>::new());
    // Lock files have no content for others to read: no one else may open them at all.
    let lock = tarballs[0].with_file_name(".python-bookworm-3.11.11.tar.gz.lock");
    let mode = fs::metadata(&lock).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o600, "{}", lock.display());

    let out = h.work().join("pulled");
    let mut cmd = h.sdk_command(&h.url, &["pull", "python", "3.11.11", "-o", path_str(&out)]);
    Run::from_output(cli::with_umask(&mut cmd, 0).output().unwrap()).success();
    let tarball = out.join("python-bookworm-3.11.11.tar.gz");
    let mode = fs::metadata(&tarball).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o666, "the user's umask decides in the user's folder");
    assert_eq!(writable_by_others(&h.cache()), Vec::<String>::new());

    // One that an older version left 0666 is narrowed by the next install that opens it.
    fs::set_permissions(&lock, fs::Permissions::from_mode(0o666)).unwrap();
    let mut cmd = h.sdk_command(&h.url, &["install", "python", "3.11.11", "--force"]);
    Run::from_output(cli::with_umask(&mut cmd, 0).output().unwrap()).success();
    let mode = fs::metadata(&lock).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o600, "{}", lock.display());
}
