//! Extraction against hostile, corrupt and well-formed archives, and the order in which a
//! finished install is flushed, marked and moved into place.

use super::commit::{self, make_writable};
use super::*;
use ocisdk_testkit::RawTar;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use tar::EntryType;
use EntryType::{Block, Char, Fifo, Regular};

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

fn payload(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

fn replace() -> UnpackOptions {
    UnpackOptions {
        replace: true,
        sentinel: None,
    }
}

/// A parent folder holding the install target `sdk` and a sibling `outside` folder that
/// no archive may reach.
struct Sandbox {
    parent: tempfile::TempDir,
    target: PathBuf,
    outside: PathBuf,
}

impl Sandbox {
    fn new() -> Self {
        let parent = tempfile::tempdir().unwrap();
        let outside = parent.path().join("outside");
        fs::create_dir(&outside).unwrap();
        fs::write(outside.join("file"), b"precious").unwrap();
        let target = parent.path().join("sdk");
        Self {
            parent,
            target,
            outside,
        }
    }

    fn unpack(&self, archive: &[u8], options: &UnpackOptions) -> Result<UnpackStats, ExtractError> {
        unpack_into(archive, &self.target, options)
    }

    fn read(&self, rel: &str) -> Vec<u8> {
        fs::read(self.target.join(rel)).unwrap()
    }

    /// Names in the parent folder: shows a leftover target or temporary folder, and
    /// checks that `outside` is unchanged.
    fn parent_names(&self) -> Vec<String> {
        let names = |dir: &Path| {
            let entries = fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name());
            let mut names: Vec<_> = entries.map(|n| n.to_string_lossy().into_owned()).collect();
            names.sort();
            names
        };
        assert_eq!(names(&self.outside), ["file"]);
        assert_eq!(fs::read(self.outside.join("file")).unwrap(), b"precious");
        names(self.parent.path())
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        make_writable(self.parent.path()); // read-only folders from the archives
    }
}

/// Unpacks a good entry followed by `archive`; checks that the error names `entry` and
/// that the failure left nothing behind.
fn rejected(sandbox: &Sandbox, archive: Vec<u8>, entry: &str) -> ExtractError {
    // The good entry gives the temporary folder something to clean up.
    let mut tar = RawTar::new()
        .dir("ok", 0o755)
        .file("ok/file", b"fine", 0o644)
        .finish();
    tar.truncate(tar.len() - 1024); // drop the end-of-archive blocks
    tar.extend(archive);
    let err = sandbox.unpack(&tar, &UnpackOptions::default()).unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains(&format!("{entry:?}")),
        "{message:?} does not name {entry:?}"
    );
    assert_eq!(sandbox.parent_names(), ["outside"], "after {message}");
    err
}

#[test]
fn rejects_paths_leaving_the_root() {
    let sandbox = Sandbox::new();
    for path in ["../x", "a/../../x", "/abs/file", "./ok/../../x"] {
        let err = rejected(
            &sandbox,
            RawTar::new().file(path, b"evil", 0o644).finish(),
            path,
        );
        assert!(matches!(err, ExtractError::UnsafePath { .. }), "{err:?}");
    }
    // An inside symlink is kept, but nothing may be written through it.
    let archive = RawTar::new().dir("real", 0o755).symlink("etc", "real");
    let err = rejected(
        &sandbox,
        archive.file("etc/passwd", b"x", 0o644).finish(),
        "etc/passwd",
    );
    assert!(matches!(err, ExtractError::UnsafePath { .. }), "{err:?}");
}

#[test]
fn rejects_links_leaving_the_root() {
    let sandbox = Sandbox::new();
    let outside = sandbox.outside.to_str().unwrap().to_owned();
    let cases = [
        // The classic: a link to an outside folder, then a file "in" it.
        (
            RawTar::new()
                .symlink("etc", &outside)
                .file("etc/passwd", b"x", 0o644),
            "etc",
        ),
        (RawTar::new().symlink("link", "../outside"), "link"),
        (RawTar::new().symlink("a/b/link", "../../.."), "a/b/link"),
        // `up` is the root itself, so `up/..` is above it, however deep `esc` is.
        (
            RawTar::new()
                .symlink("a/b/up", "../..")
                .symlink("a/b/esc", "up/../.."),
            "a/b/esc",
        ),
        (RawTar::new().hardlink("h", "/etc/passwd"), "h"),
        (RawTar::new().hardlink("h", "../outside/file"), "h"),
        // Only a file already unpacked can be hard-linked.
        (
            RawTar::new()
                .hardlink("h", "later")
                .file("later", b"x", 0o644),
            "h",
        ),
        (RawTar::new().hardlink("h", "ok"), "h"),
    ];
    for (archive, entry) in cases {
        let err = rejected(&sandbox, archive.finish(), entry);
        assert!(matches!(err, ExtractError::UnsafeLink { .. }), "{err:?}");
    }
}

/// Names and link targets from GNU long-name entries and PAX records are checked like those
/// in the header, which is then only a harmless stand-in (`short`, `ok`).
#[test]
fn long_names_and_pax_records_are_checked_like_header_names() {
    let sandbox = Sandbox::new();
    let long =
        |kind, name: &str| RawTar::new().entry(kind, "././@LongLink", 0o644, "", name.as_bytes());
    let absolute = "/ocisdk-test-pax-abs/file";
    let paths = [
        (long(EntryType::GNULongName, "../x"), "../x"),
        (
            RawTar::new().pax(&[("path", absolute.as_bytes())]),
            absolute,
        ),
    ];
    for (archive, entry) in paths {
        let err = rejected(
            &sandbox,
            archive.file("short", b"evil", 0o644).finish(),
            entry,
        );
        assert!(matches!(err, ExtractError::UnsafePath { .. }), "{err:?}");
    }
    assert!(!Path::new(absolute).exists());
    let links = [
        long(EntryType::GNULongLink, "../outside/file").hardlink("h", "ok/file"),
        long(EntryType::GNULongLink, "/etc").symlink("h", "ok"),
        RawTar::new()
            .pax(&[("linkpath", b"../outside")])
            .symlink("h", "ok"),
    ];
    for archive in links {
        let err = rejected(&sandbox, archive.finish(), "h");
        assert!(matches!(err, ExtractError::UnsafeLink { .. }), "{err:?}");
    }
}

#[test]
fn rejects_devices_and_fifos() {
    let sandbox = Sandbox::new();
    for kind in [Char, Block, Fifo] {
        let err = rejected(
            &sandbox,
            RawTar::new().entry(kind, "dev/x", 0o644, "", b"").finish(),
            "dev/x",
        );
        assert!(
            matches!(err, ExtractError::UnsupportedEntry { .. }),
            "{err:?}"
        );
    }
}

/// The `GNU.sparse.*` records of a sparse file in the PAX format: GNU tar's format 1.0, and
/// its format 0.1.
const PAX_SPARSE_FORMATS: [&[(&str, &[u8])]; 2] = [
    &[
        ("GNU.sparse.major", b"1"),
        ("GNU.sparse.minor", b"0"),
        ("GNU.sparse.name", b"bin/data"),
        ("GNU.sparse.realsize", b"1048576"),
    ],
    &[
        ("GNU.sparse.size", b"1048576"),
        ("GNU.sparse.numblocks", b"1"),
        ("GNU.sparse.map", b"1048572,4"),
    ],
];

/// The stored data of a PAX sparse file: in format 1.0, the map in its own block, then the
/// one fragment.
fn pax_sparse_data() -> Vec<u8> {
    let mut data = b"1\n1048572\n4\n".to_vec();
    data.resize(512, 0);
    data.extend_from_slice(b"tail");
    data
}

/// A sparse file in the PAX format (`tar --format=pax -S`) is a regular entry that only its
/// `GNU.sparse.*` records tell apart: refused like an old GNU sparse entry, not written under
/// its stand-in name with the sparse map as its content. Other PAX records are still read.
#[test]
fn rejects_pax_sparse_files() {
    let sandbox = Sandbox::new();
    for records in PAX_SPARSE_FORMATS {
        let archive = RawTar::new().pax(records).file(
            "./bin/GNUSparseFile.77/data",
            &pax_sparse_data(),
            0o644,
        );
        let err = rejected(&sandbox, archive.finish(), "./bin/GNUSparseFile.77/data");
        assert!(
            matches!(
                err,
                ExtractError::UnsupportedEntry {
                    kind: "sparse file",
                    ..
                }
            ),
            "{err:?}"
        );
    }

    let renamed = RawTar::new()
        .pax(&[("path", b"bin/a-name-from-the-pax-header"), ("mtime", b"1")])
        .file("bin/short", b"x", 0o644);
    sandbox
        .unpack(&renamed.finish(), &UnpackOptions::default())
        .unwrap();
    assert_eq!(sandbox.read("bin/a-name-from-the-pax-header"), b"x");
}

fn sdk_archive() -> Vec<u8> {
    RawTar::new()
        .dir("./", 0o755)
        .dir("./bin/", 0o755)
        .entry(Regular, "./bin/python3.11", 0o4755, "", b"#!elf")
        .symlink("./bin/python", "python3.11")
        .symlink("./lib/libpy.so", "../lib64/libpy.so.1")
        .file("./lib64/libpy.so.1", b"lib", 0o644)
        .hardlink("./lib64/libpy-copy.so", "lib64/libpy.so.1")
        .dir("./share/doc", 0o555)
        .file("./share/doc/README", b"read me", 0o644)
        .file("deep/a/b/c/d.txt", b"deep", 0o644)
        .finish()
}

/// A sorted listing of a tree: path, then mode and link count and content, or link target.
fn snapshot(root: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let rel = path.strip_prefix(root).unwrap().display();
            let meta = fs::symlink_metadata(&path).unwrap();
            let mode = meta.permissions().mode() & 0o7777;
            if meta.is_symlink() {
                out.push(format!(
                    "{rel} -> {}",
                    fs::read_link(&path).unwrap().display()
                ));
            } else if meta.is_dir() {
                out.push(format!("{rel}/ {mode:o}"));
                walk(root, &path, out);
            } else {
                let data = String::from_utf8(fs::read(&path).unwrap()).unwrap();
                out.push(format!("{rel} {mode:o} {} {data:?}", meta.nlink()));
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

#[test]
fn unpacks_plain_gzip_and_zstd_alike_keeping_modes_links_and_mtimes() {
    let plain = sdk_archive();
    let expected = [
        "bin/ 755",
        "bin/python -> python3.11",
        "bin/python3.11 755 1 \"#!elf\"", // setuid dropped
        "deep/ 755",
        "deep/a/ 755",
        "deep/a/b/ 755",
        "deep/a/b/c/ 755",
        "deep/a/b/c/d.txt 644 1 \"deep\"",
        "lib/ 755",
        "lib/libpy.so -> ../lib64/libpy.so.1",
        "lib64/ 755",
        "lib64/libpy-copy.so 644 2 \"lib\"",
        "lib64/libpy.so.1 644 2 \"lib\"",
        "share/ 755",
        "share/doc/ 555",
        "share/doc/README 644 1 \"read me\"",
    ];
    for archive in [
        gzip(&plain),
        zstd::encode_all(plain.as_slice(), 3).unwrap(),
        plain,
    ] {
        let sandbox = Sandbox::new();
        let stats = sandbox.unpack(&archive, &UnpackOptions::default()).unwrap();
        let counts = UnpackStats {
            files: 4,
            dirs: 2,
            symlinks: 2,
            hardlinks: 1,
            bytes: 19,
        };
        assert_eq!(stats, counts);
        assert_eq!(snapshot(&sandbox.target), expected);
        assert_eq!(sandbox.read("bin/python"), b"#!elf");
        let meta = fs::metadata(&sandbox.target).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o755);
        let mtime = fs::metadata(sandbox.target.join("deep/a/b/c/d.txt"))
            .unwrap()
            .mtime();
        assert_eq!(mtime, 1_600_000_000);
        assert_eq!(sandbox.parent_names(), ["outside", "sdk"]);
    }
}

/// An archive's world- or group-writable modes are not kept: on a shared machine they
/// would let any local user change an SDK that others (and builds run as root) execute.
/// The owner's bits and the read and execute bits stay.
#[test]
fn nobody_but_the_owner_may_write_what_is_unpacked() {
    let archive = RawTar::new()
        .dir("./", 0o777)
        .dir("./shared/", 0o1777)
        .file("./shared/notes", b"n", 0o666)
        .entry(Regular, "./bin/tool", 0o6775, "", b"#!elf")
        .file("./secret", b"s", 0o620)
        .finish();
    let sandbox = Sandbox::new();
    sandbox.unpack(&archive, &UnpackOptions::default()).unwrap();
    assert_eq!(
        snapshot(&sandbox.target),
        [
            "bin/ 755",
            "bin/tool 755 1 \"#!elf\"",
            "secret 600 1 \"s\"",
            "shared/ 755",
            "shared/notes 644 1 \"n\"",
        ]
    );
    let root = fs::metadata(&sandbox.target).unwrap().permissions().mode();
    assert_eq!(root & 0o7777, 0o755, "the install folder is {root:o}");
}

/// Each file in a folder already checked costs one look-up of the checked folders, however
/// deep the folder: looking up every folder above it from the root cost each entry the
/// square of its depth (44 KB of gzip holding 2,000 empty files 1,000 folders deep took 50 s
/// to unpack). The first file checks its folders on the way up and again as it makes them.
#[test]
fn files_deep_in_checked_folders_cost_one_folder_lookup_each() {
    let (depth, files) = (200, 100);
    let folder = "d/".repeat(depth);
    let mut tar = RawTar::new();
    for i in 0..files {
        let path = format!("{folder}f{i}");
        tar = tar.pax(&[("path", path.as_bytes())]).file("f", b"", 0o644);
    }
    let staging = tempfile::tempdir().unwrap();
    let mut unpacker = Unpacker::new(staging.path());
    let archive = tar.finish();
    let mut archive = tar::Archive::new(archive.as_slice());
    for entry in archive.entries().unwrap() {
        unpacker.unpack(&mut entry.unwrap()).unwrap();
    }
    assert_eq!(unpacker.stats.files, files);
    // The first file: each folder looked up on the way up and again as it is made.
    let first = 2 * depth as u64;
    assert!(
        unpacker.dir_lookups <= first + files,
        "{} look-ups for {files} files {depth} folders deep",
        unpacker.dir_lookups
    );
    assert!(staging.path().join(&folder).join("f99").is_file());
}

/// What each `sync_filesystem` call saw: the folder, the names in it and its mode then.
type Sync = (PathBuf, Vec<String>, u32);
static SYNCS: std::sync::Mutex<Vec<Sync>> = std::sync::Mutex::new(Vec::new());

pub(super) fn record_sync(dir: &Path) {
    let mut names: Vec<String> = fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    let mode = fs::metadata(dir).map_or(0, |meta| meta.permissions().mode() & 0o7777);
    SYNCS.lock().unwrap().push((dir.to_path_buf(), names, mode));
}

/// The flushes of the unpacks into `sandbox`.
fn syncs_of(sandbox: &Sandbox) -> Vec<Sync> {
    let syncs = SYNCS.lock().unwrap();
    syncs
        .iter()
        .filter(|(dir, _, _)| dir.parent() == Some(sandbox.parent.path()))
        .cloned()
        .collect()
}

/// The files are flushed to disk while the folder is still the staging one, in one sweep
/// with every file in it, the sentinel included: the rename that follows is what makes it
/// the install.
#[test]
fn flushes_the_files_and_the_sentinel_in_one_sweep_before_the_rename() {
    let sandbox = Sandbox::new();
    let options = UnpackOptions {
        replace: false,
        sentinel: Some(".complete".into()),
    };
    sandbox.unpack(&sdk_archive(), &options).unwrap();
    let ours = syncs_of(&sandbox);
    assert_eq!(ours.len(), 1, "one flush per unpack: {ours:?}");
    let (dir, names, _) = &ours[0];
    assert!(
        dir.file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with(TEMP_PREFIX),
        "flushed {dir:?}, not the staging folder"
    );
    let mut installed: Vec<String> = fs::read_dir(&sandbox.target)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    installed.sort();
    assert!(installed.iter().any(|name| name == ".complete"));
    assert_eq!(names, &installed, "not every file was there when flushed");
}

/// The flush opens the staging folder before the archive's folder modes are applied: an
/// archive whose `./` takes away the owner's read right (0311) would otherwise make that
/// open fail for any user but root, and the install would go into place unflushed, with
/// only a warning.
#[test]
fn flushes_before_the_archive_takes_away_the_right_to_open_the_folder() {
    let sandbox = Sandbox::new();
    let archive = RawTar::new()
        .dir("./", 0o311)
        .file("./bin/tool", b"#!elf", 0o755)
        .finish();
    sandbox.unpack(&archive, &UnpackOptions::default()).unwrap();
    let ours = syncs_of(&sandbox);
    assert_eq!(ours.len(), 1, "one flush per unpack: {ours:?}");
    let (_, names, mode) = &ours[0];
    assert_eq!(names, &["bin"], "the files were there when flushed");
    assert_ne!(mode & 0o400, 0, "flushed with the folder at mode {mode:o}");
    let installed = fs::metadata(&sandbox.target).unwrap().permissions().mode() & 0o777;
    assert_eq!(
        installed, 0o311,
        "the archive's mode is applied after the flush"
    );
}

/// While the archive is written into it, the staging folder is its owner's alone, whatever
/// the umask: made with the default mode, under a umask of 0 (or 002) another user (or a
/// group member) could swap a folder the unpacker had checked for a symlink to anywhere,
/// and have the next file of the archive written through it, as root when root installs.
/// The install folder still gets the archive's mode, or 0755, at the end.
#[test]
fn nobody_else_can_enter_the_staging_folder_while_it_is_written() {
    let sandbox = Sandbox::new();
    sandbox
        .unpack(&sdk_archive(), &UnpackOptions::default())
        .unwrap();
    let ours = syncs_of(&sandbox);
    assert_eq!(ours.len(), 1, "one flush per unpack: {ours:?}");
    let (_, names, mode) = &ours[0];
    assert!(names.iter().any(|name| name == "bin"), "flushed {names:?}");
    assert_eq!(
        format!("{:o}", mode & 0o777),
        "700",
        "the staging folder's mode"
    );
    let installed = fs::metadata(&sandbox.target).unwrap().permissions().mode() & 0o777;
    assert_eq!(installed, 0o755);
}

#[test]
fn writes_the_sentinel_and_refuses_a_bad_one() {
    let sandbox = Sandbox::new();
    let options = UnpackOptions {
        replace: false,
        sentinel: Some(".complete".into()),
    };
    sandbox.unpack(&sdk_archive(), &options).unwrap();
    assert_eq!(sandbox.read(".complete"), b"");

    let sandbox = Sandbox::new();
    let options = UnpackOptions {
        replace: false,
        sentinel: Some("../x".into()),
    };
    let err = sandbox.unpack(&sdk_archive(), &options).unwrap_err();
    assert!(matches!(err, ExtractError::UnsafePath { .. }), "{err:?}");
    assert_eq!(sandbox.parent_names(), ["outside"]);
}

/// A record is written before the sentinel, in place of an entry of its name in the
/// archive, never through one: a symlink there (to a file of the SDK) is replaced, not
/// followed, and the file it named keeps its content.
#[test]
fn writes_a_record_in_place_of_an_entry_of_its_name_never_through_it() {
    let archive = RawTar::new()
        .dir("bin", 0o755)
        .file("bin/tool", b"tool", 0o755)
        .symlink(".record", "bin/tool")
        .finish();
    for archive in [archive, sdk_archive()] {
        let sandbox = Sandbox::new();
        let options = UnpackOptions {
            replace: false,
            sentinel: Some(".complete".into()),
        };
        let record = Some((".record", b"{}\n".as_slice()));
        unpack_recording(archive.as_slice(), &sandbox.target, &options, record).unwrap();
        let written = sandbox.target.join(".record");
        assert!(fs::symlink_metadata(&written).unwrap().is_file());
        assert_eq!(sandbox.read(".record"), b"{}\n");
        assert_eq!(sandbox.read(".complete"), b"");
        if sandbox.target.join("bin/tool").exists() {
            assert_eq!(sandbox.read("bin/tool"), b"tool");
        }
    }
}

/// Only folders named exactly `{TEMP_PREFIX}{name}-XXXXXX` are an install's leftovers: not
/// those of a version whose name starts the same, not other folders, and not one that may
/// hold the only copy of the install (moved aside while the install folder is gone).
#[test]
fn leftovers_are_removed_only_for_their_own_install_folder() {
    let parent = tempfile::tempdir().unwrap();
    let target = parent.path().join("8.0.100");
    let other = parent.path().join("8.0.100-rc.1");
    let made = |of: &Path| {
        let tree = commit::TempTree::beside(of).unwrap();
        fs::create_dir_all(tree.path.join("bin/ro")).unwrap();
        fs::set_permissions(tree.path.join("bin/ro"), fs::Permissions::from_mode(0o555)).unwrap();
        let path = tree.path.clone();
        std::mem::forget(tree); // a process that died leaves it behind
        path
    };
    let (mine, mine_too, theirs) = (made(&target), made(&target), made(&other));
    let unrelated = parent.path().join(format!("{TEMP_PREFIX}8.0.100-x"));
    fs::create_dir(&unrelated).unwrap();
    fs::create_dir(&target).unwrap();

    assert_eq!(remove_leftovers(&target), 2);
    assert!(!mine.exists() && !mine_too.exists());
    assert!(theirs.exists() && unrelated.exists() && target.exists());

    // The install moved aside, and the folder itself gone: kept.
    let aside = made(&target);
    fs::create_dir(aside.join("old")).unwrap();
    fs::remove_dir(&target).unwrap();
    assert_eq!(remove_leftovers(&target), 0);
    assert!(aside.join("old").exists());
    fs::create_dir(&target).unwrap();
    assert_eq!(remove_leftovers(&target), 1);
    assert!(!aside.exists());
}

#[test]
fn existing_target_is_kept_or_swapped() {
    let sandbox = Sandbox::new();
    let first = RawTar::new()
        .dir("ro", 0o555)
        .file("ro/old", b"old", 0o644)
        .finish();
    sandbox.unpack(&first, &UnpackOptions::default()).unwrap();

    let err = sandbox
        .unpack(&sdk_archive(), &UnpackOptions::default())
        .unwrap_err();
    assert!(matches!(err, ExtractError::AlreadyExists { .. }), "{err:?}");
    assert_eq!(sandbox.read("ro/old"), b"old");

    sandbox.unpack(&sdk_archive(), &replace()).unwrap();
    assert!(!sandbox.target.join("ro").exists());
    assert_eq!(sandbox.read("bin/python"), b"#!elf");
    assert_eq!(
        sandbox.parent_names(),
        ["outside", "sdk"],
        "old install removed"
    );

    // A failed replacement leaves the current install alone.
    let err = sandbox.unpack(&RawTar::new().file("../x", b"", 0o644).finish(), &replace());
    assert!(
        matches!(err, Err(ExtractError::UnsafePath { .. })),
        "{err:?}"
    );
    assert_eq!(sandbox.read("bin/python"), b"#!elf");
    assert_eq!(sandbox.parent_names(), ["outside", "sdk"]);
}

/// Archives cut short (in an entry, in gzip's trailer), with a damaged checksum, or junk.
fn corrupt_archives() -> Vec<Vec<u8>> {
    let plain = RawTar::new()
        .file("big", &payload(200_000), 0o644)
        .file("small", b"x", 0o644)
        .finish();
    let gz = gzip(&plain);
    let mut bad_crc = gz.clone();
    let crc_at = bad_crc.len() - 8;
    bad_crc[crc_at] ^= 1;
    vec![
        gz[..gz.len() / 2].to_vec(),
        gz[..gz.len() - 4].to_vec(),
        bad_crc,
        plain[..100_000].to_vec(),
        b"junk".to_vec(),
    ]
}

#[test]
fn corrupt_or_truncated_archives_leave_nothing() {
    for archive in corrupt_archives() {
        let sandbox = Sandbox::new();
        let err = sandbox.unpack(&archive, &replace()).unwrap_err();
        assert!(matches!(err, ExtractError::Archive { .. }), "{err:?}");
        assert_eq!(sandbox.parent_names(), ["outside"]);
    }
}

/// A zero-byte stream (plain, or compressed), a tar of nothing but its end, and tars of only
/// the root folder (`./`, `.`, listed once or more) and archive-wide metadata.
fn empty_archives() -> Vec<Vec<u8>> {
    // What `git archive` writes first: the commit id, for the whole archive.
    let commit_id = b"52 comment=0123456789abcdef0123456789abcdef01234567\n";
    let global = RawTar::new().entry(
        EntryType::XGlobalHeader,
        "pax_global_header",
        0o666,
        "",
        commit_id,
    );
    vec![
        Vec::new(),
        gzip(b""),
        zstd::encode_all(&b""[..], 3).unwrap(),
        RawTar::new().finish(),
        RawTar::new().dir("./", 0o755).finish(),
        RawTar::new().dir(".", 0o755).tar_gz(),
        RawTar::new()
            .dir("./", 0o755)
            .dir(".", 0o700)
            .dir("./", 0o555)
            .finish(),
        global.dir("./", 0o755).tar_zst(),
    ]
}

/// An archive of [`empty_archives`] holds no SDK: refused as empty, committing nothing, nor
/// replacing an existing install.
#[test]
fn refuses_an_empty_archive() {
    let options = UnpackOptions {
        replace: true,
        sentinel: Some(".complete".into()),
    };
    for archive in empty_archives() {
        let sandbox = Sandbox::new();
        let err = sandbox.unpack(&archive, &options).unwrap_err();
        assert!(matches!(err, ExtractError::EmptyArchive), "{err:?}");
        assert_eq!(sandbox.parent_names(), ["outside"]);

        sandbox.unpack(&sdk_archive(), &options).unwrap();
        let before = snapshot(&sandbox.target);
        let err = sandbox.unpack(&archive, &options).unwrap_err();
        assert!(matches!(err, ExtractError::EmptyArchive), "{err:?}");
        assert_eq!(snapshot(&sandbox.target), before);
        assert_eq!(sandbox.parent_names(), ["outside", "sdk"]);
    }

    // A named folder is content, even an empty one: installed.
    let sandbox = Sandbox::new();
    let folders = RawTar::new().dir("./", 0o755).dir("./lib/", 0o755).finish();
    let stats = sandbox.unpack(&folders, &UnpackOptions::default()).unwrap();
    assert_eq!(stats.dirs, 1);
    assert_eq!(snapshot(&sandbox.target), ["lib/ 755"]);
}

/// What [`check_archive`] says of an archive: `unpack_into`'s word on it as empty or corrupt,
/// and nothing of the entries `unpack_into` refuses one by one.
#[test]
fn check_archive_refuses_what_unpack_into_refuses_as_empty_or_corrupt() {
    fn kind(result: &Result<impl Sized, ExtractError>) -> &'static str {
        match result {
            Err(ExtractError::EmptyArchive) => "empty",
            Err(ExtractError::Archive { .. }) => "corrupt",
            Err(_) => "an entry refused",
            Ok(_) => "installed",
        }
    }
    let installed = [
        sdk_archive(),
        RawTar::new().dir("./", 0o755).dir("./lib/", 0o755).finish(),
        RawTar::new()
            .dir("./", 0o755)
            .file("./empty", b"", 0o644)
            .tar_gz(),
    ];
    let refused_by_entry = [
        RawTar::new().file("../x", b"evil", 0o644).finish(),
        RawTar::new()
            .entry(Char, "dev/null", 0o666, "", b"")
            .tar_gz(),
        RawTar::new().gnu_sparse("data", b"x", 512, 0o644).tar_zst(),
    ];
    let cases = (empty_archives().into_iter().map(|a| (a, "empty")))
        .chain(corrupt_archives().into_iter().map(|a| (a, "corrupt")))
        .chain(installed.into_iter().map(|a| (a, "installed")))
        .chain(
            refused_by_entry
                .into_iter()
                .map(|a| (a, "an entry refused")),
        );
    for (i, (archive, unpacked)) in cases.enumerate() {
        let sandbox = Sandbox::new();
        assert_eq!(
            kind(&sandbox.unpack(&archive, &replace())),
            unpacked,
            "case {i}"
        );
        let checked = check_archive(decompressing_reader(archive.as_slice()).unwrap());
        let expected = match unpacked {
            "empty" | "corrupt" => unpacked,
            _ => "installed",
        };
        assert_eq!(kind(&checked), expected, "case {i}: {checked:?}");
    }
}

#[test]
fn detects_compression_from_bytes_media_types_and_short_reads() {
    assert_eq!(Compression::detect(&[0x1f, 0x8b, 8, 0]), Compression::Gzip);
    assert_eq!(
        Compression::detect(&[0x28, 0xb5, 0x2f, 0xfd]),
        Compression::Zstd
    );
    assert_eq!(Compression::detect(b"us"), Compression::None);
    let media_types = [
        (
            "application/vnd.oci.image.layer.v1.tar+gzip",
            Some(Compression::Gzip),
        ),
        (
            "application/vnd.docker.image.rootfs.diff.tar.gzip",
            Some(Compression::Gzip),
        ),
        ("application/x-gzip", Some(Compression::Gzip)),
        (
            "application/vnd.oci.image.layer.v1.tar+zstd",
            Some(Compression::Zstd),
        ),
        (
            "application/vnd.oci.image.layer.v1.tar",
            Some(Compression::None),
        ),
        ("application/vnd.oci.image.config.v1+json", None),
    ];
    for (media_type, expected) in media_types {
        assert_eq!(
            Compression::from_media_type(media_type),
            expected,
            "{media_type}"
        );
    }

    /// Hands out one byte per read, like a slow network body.
    struct Trickle<'a>(&'a [u8]);
    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.0.len().min(buf.len()).min(1);
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }
    let data = payload(10_000);
    let mut out = Vec::new();
    let compressed = gzip(&data);
    let mut reader = decompressing_reader(Trickle(&compressed)).unwrap();
    reader.read_to_end(&mut out).unwrap();
    assert_eq!(out, data);
    let tar = RawTar::new().file("f", b"x", 0o644).finish();
    assert!(looks_like_tar(&tar[..512]));
    assert!(!looks_like_tar(&gzip(&tar)));
}

/// A `FROM scratch` + `COPY` layer holding an SDK tarball, and that tarball.
fn layer() -> (Vec<u8>, Vec<u8>) {
    let sdk = gzip(
        &RawTar::new()
            .file("bin/python", &payload(300_000), 0o644)
            .finish(),
    );
    let layer = RawTar::new()
        .dir("./", 0o755)
        .dir("./opt/", 0o755)
        .file("./opt/README.md", b"hello", 0o644)
        .file("./opt/python-bookworm-3.8.0.tar.gz", &sdk, 0o644)
        .file("./opt/python-bookworm-3.8.0.tar.gz.sha256", b"abc", 0o644)
        .finish();
    (gzip(&layer), sdk)
}

#[test]
fn extracts_the_one_sdk_tarball_from_a_layer() {
    let (layer, sdk) = layer();
    let mut out = Vec::new();
    let info = extract_member(layer.as_slice(), &MemberSelector::any(), &mut out).unwrap();
    assert_eq!(info.name, "python-bookworm-3.8.0.tar.gz");
    assert_eq!(info.path, "opt/python-bookworm-3.8.0.tar.gz");
    assert_eq!(info.size, sdk.len() as u64);
    assert_eq!(out, sdk);
    let sandbox = Sandbox::new();
    assert_eq!(
        sandbox
            .unpack(&out, &UnpackOptions::default())
            .unwrap()
            .bytes,
        300_000
    );
}

#[test]
fn several_candidates_need_a_name() {
    let two = RawTar::new()
        .file("a/one.tar.gz", b"one", 0o644)
        .file("b/two.tgz", b"two", 0o644)
        .finish();
    let err = extract_member(two.as_slice(), &MemberSelector::any(), &mut io::sink());
    let Err(ExtractError::AmbiguousMember { candidates }) = err else {
        panic!("{err:?}")
    };
    assert_eq!(candidates, ["a/one.tar.gz", "b/two.tgz"]);

    let mut out = Vec::new();
    let info = extract_member(two.as_slice(), &MemberSelector::named("two.tgz"), &mut out);
    assert_eq!(info.unwrap().path, "b/two.tgz");
    assert_eq!(out, b"two");
}

#[test]
fn a_small_tarball_among_bigger_files_is_not_the_member() {
    let sdk_files = RawTar::new()
        .file("lib/libpython.so", &[7u8; 4096], 0o644)
        .file("lib/test/fixture.tar.gz", &[1u8; 100], 0o644)
        .finish();
    let err = extract_member(
        sdk_files.as_slice(),
        &MemberSelector::any(),
        &mut io::sink(),
    );
    let Err(ExtractError::MemberAmongFiles {
        path,
        size,
        file_bytes,
    }) = err
    else {
        panic!("{err:?}")
    };
    assert_eq!(
        (path.as_str(), size, file_bytes),
        ("lib/test/fixture.tar.gz", 100, 4196)
    );
    // Asked for by name, it is taken whatever else the layer holds.
    let named = MemberSelector::named("fixture.tar.gz");
    let mut out = Vec::new();
    extract_member(sdk_files.as_slice(), &named, &mut out).unwrap();
    assert_eq!(out, [1u8; 100]);
}

/// A PAX sparse member is refused as the unpacker refuses it, asked for by name or not:
/// copied out, it would be its sparse map and stored fragments, not the tarball.
#[test]
fn a_pax_sparse_member_is_refused_before_a_byte_is_copied() {
    let entry = "./opt/GNUSparseFile.77/python-bookworm-3.8.0.tar.gz";
    for records in PAX_SPARSE_FORMATS {
        let layer = RawTar::new()
            .dir("./", 0o755)
            .dir("./opt/", 0o755)
            .pax(records)
            .file(entry, &pax_sparse_data(), 0o644)
            .tar_gz();
        assert_sparse_member_refused(&layer, entry);
    }
}

/// `extract_member` refuses `entry` of `layer` as a sparse file, asked for by name or not,
/// and copies out nothing.
#[track_caller]
fn assert_sparse_member_refused(layer: &[u8], entry: &str) {
    let named = MemberSelector::named("python-bookworm-3.8.0.tar.gz");
    for selector in [MemberSelector::any(), named] {
        let mut out = Vec::new();
        let err = extract_member(layer, &selector, &mut out);
        let Err(ExtractError::UnsupportedEntry {
            entry: refused,
            kind: "sparse file",
        }) = &err
        else {
            panic!("{selector:?}: {err:?}")
        };
        assert_eq!(refused, entry);
        assert!(out.is_empty(), "{selector:?}: {} bytes copied", out.len());
    }
}

/// An old GNU sparse member (type `S`) named like the tarball is refused too, asked for by
/// name or not: passed over as no regular file, it left the layer without a member, and the
/// caller then took the whole layer for the tarball.
#[test]
fn an_old_gnu_sparse_member_is_refused_before_a_byte_is_copied() {
    let (_, sdk) = layer();
    let entry = "./opt/python-bookworm-3.8.0.tar.gz";
    let layer = RawTar::new()
        .dir("./", 0o755)
        .dir("./opt/", 0o755)
        .file("./opt/README.md", b"hello", 0o644)
        .gnu_sparse(entry, &sdk, 4096, 0o644)
        .tar_gz();
    assert_sparse_member_refused(&layer, entry);
}

#[test]
fn no_candidate_lists_the_layer_and_writes_nothing() {
    let files = RawTar::new()
        .dir("bin", 0o755)
        .file("bin/python", b"elf", 0o644)
        .file("notes", b"", 0o644);
    let mut out = Vec::new();
    let err = extract_member(files.finish().as_slice(), &MemberSelector::any(), &mut out);
    let message = err.unwrap_err().to_string();
    let expected = "no SDK tarball (*.tar.gz, *.tgz, *.tar.zst) in the layer; \
                    it holds 3 entries: bin, bin/python, notes";
    assert_eq!(message, expected);
    assert!(out.is_empty());

    let named = MemberSelector::named("node.tar.gz");
    let err = extract_member(layer().0.as_slice(), &named, &mut out).unwrap_err();
    assert!(
        matches!(err, ExtractError::MemberNotFound { total: 4, .. }),
        "{err:?}"
    );
    assert!(
        err.to_string().starts_with("no file named \"node.tar.gz\""),
        "{err}"
    );
    assert!(out.is_empty());
}

/// Whether `result` failed on an entry's headers taking more than a mebibyte.
fn refused_for_big_headers<T: std::fmt::Debug>(result: Result<T, ExtractError>) -> bool {
    match result {
        Err(ExtractError::Archive { source }) => source.to_string().contains("headers"),
        other => panic!("not refused for its headers: {other:?}"),
    }
}

/// The headers of one entry (PAX records, a GNU long name) may take a mebibyte at most: the
/// tar crate reads them into memory whole before handing the entry over, so a long name or
/// a PAX record of GiBs, a few MiB once gzip'd, was allocated at once. Before the bound the
/// archive with a 4 MiB PAX comment unpacked. Refused by `unpack_into`, `check_archive` and
/// `extract_member` alike; an entry's data, read or passed over, does not count, not even
/// a sparse file's.
#[test]
fn refuses_entry_headers_over_a_mebibyte() {
    let big = vec![b'a'; 4 << 20];
    let comment = RawTar::new()
        .pax(&[("comment", &big)])
        .file("bin/tool", b"x", 0o755)
        .finish();
    let long_name = RawTar::new()
        .entry(EntryType::GNULongName, "././@LongLink", 0o644, "", &big)
        .file("bin/tool", b"x", 0o755)
        .finish();
    for archive in [comment, long_name] {
        let sandbox = Sandbox::new();
        assert!(refused_for_big_headers(
            sandbox.unpack(&gzip(&archive), &UnpackOptions::default())
        ));
        assert_eq!(sandbox.parent_names(), ["outside"]);
        assert!(refused_for_big_headers(check_archive(archive.as_slice())));
        let member = MemberSelector::named("tool");
        let found = extract_member(archive.as_slice(), &member, &mut io::sink());
        assert!(refused_for_big_headers(found));
    }

    // Entries whose data is not read: a big file, a sparse one, a folder carrying data.
    let layer = RawTar::new()
        .file("opt/other.bin", &payload(3 << 20), 0o644)
        .gnu_sparse("opt/sparse.bin", &payload(3 << 20), 1 << 30, 0o644)
        .entry(
            EntryType::Directory,
            "opt/dir/",
            0o755,
            "",
            &payload(2 << 20),
        )
        .file("opt/sdk.tar.gz", b"sdk", 0o644)
        .finish();
    let mut out = Vec::new();
    let found = extract_member(
        layer.as_slice(),
        &MemberSelector::named("sdk.tar.gz"),
        &mut out,
    );
    assert_eq!(found.unwrap().path, "opt/sdk.tar.gz");
    assert_eq!(out, b"sdk");
    check_archive(layer.as_slice()).unwrap();
}
