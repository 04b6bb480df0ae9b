//! Writing the entries of one archive under a folder, each checked before anything is
//! written for it (the rules are in the parent module's documentation).

use std::collections::{HashMap, HashSet};
use std::fs::{self, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, SystemTime};

use tar::EntryType;

use super::{
    archive_error, io_error, unsafe_link, unsafe_path, ExtractError, UnpackStats, COPY_BUFFER,
};

/// Writes the entries of one archive under `root`, checking each one first.
pub(super) struct Unpacker<'a> {
    root: &'a Path,
    /// Relative paths known to be real folders made by this run. A folder is never replaced
    /// afterwards, so these need no second `symlink_metadata`.
    dirs: HashSet<PathBuf>,
    /// Regular files written so far: the only allowed hard-link targets.
    files: HashSet<PathBuf>,
    /// Final modes of the folders the archive lists, applied once all their children exist.
    dir_modes: HashMap<PathBuf, u32>,
    root_mode: Option<u32>,
    buf: Vec<u8>,
    pub(super) stats: UnpackStats,
    /// How many times `dirs` was looked up: the cost of a deep archive, for the tests.
    #[cfg(test)]
    pub(super) dir_lookups: u64,
}

impl<'a> Unpacker<'a> {
    pub(super) fn new(root: &'a Path) -> Self {
        Self {
            root,
            dirs: HashSet::new(),
            files: HashSet::new(),
            dir_modes: HashMap::new(),
            root_mode: None,
            buf: vec![0u8; COPY_BUFFER],
            stats: UnpackStats::default(),
            #[cfg(test)]
            dir_lookups: 0,
        }
    }

    pub(super) fn unpack<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
    ) -> Result<(), ExtractError> {
        let kind = entry.header().entry_type();
        if kind.is_pax_global_extensions() {
            return Ok(()); // archive-wide metadata, e.g. the commit id `git archive` records
        }
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        refuse_sparse(entry, &name)?;
        let rel = match entry.path() {
            Ok(path) => safe_relative(&path),
            Err(_) => Err("the path is not valid"),
        }
        .map_err(|reason| unsafe_path(&name, reason))?;
        let mode = entry.header().mode().map_err(archive_error)? & KEPT_MODE_BITS;
        if rel.as_os_str().is_empty() {
            // `./` itself: the install folder, whose mode is set last.
            if !kind.is_dir() {
                return Err(unsafe_path(&name, "the entry has no name"));
            }
            self.root_mode = Some(mode);
            return Ok(());
        }
        match kind {
            EntryType::Regular | EntryType::Continuous => self.file(entry, &name, &rel, mode),
            EntryType::Directory => {
                self.prepare_parents(&name, &rel)?;
                self.ensure_dir(&name, &rel)?;
                if self.dir_modes.insert(rel, mode).is_none() {
                    self.stats.dirs += 1;
                }
                Ok(())
            }
            EntryType::Symlink => self.symlink(entry, &name, &rel),
            EntryType::Link => self.hardlink(entry, &name, &rel),
            other => Err(ExtractError::UnsupportedEntry {
                entry: name,
                kind: kind_name(other),
            }),
        }
    }

    fn file<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        name: &str,
        rel: &Path,
        mode: u32,
    ) -> Result<(), ExtractError> {
        let full = self.slot(name, rel)?;
        // `create_new` never opens, so never follows, anything already at the path.
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&full)
            .map_err(io_error(&full))?;
        let size = entry.size();
        copy_exact(entry, &mut file, &mut self.buf, size, io_error(&full))?;
        if size >= EARLY_WRITEBACK {
            // The flush before the sentinel (see `sync_filesystem`) then finds most of the
            // data on its way to the disk already, written while the rest was inflating.
            crate::content::start_writeback(&file, 0, size);
        }
        if let Some(permissions) = permissions(mode) {
            file.set_permissions(permissions).map_err(io_error(&full))?;
        }
        // Python checks a `.pyc` against its source's mtime: fresh mtimes would make every
        // shipped bytecode file stale.
        let mtime = entry.header().mtime().ok();
        if let Some(time) =
            mtime.and_then(|s| SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(s)))
        {
            file.set_modified(time).map_err(io_error(&full))?;
        }
        self.files.insert(rel.to_path_buf());
        self.stats.files += 1;
        self.stats.bytes += size;
        Ok(())
    }

    fn symlink<R: Read>(
        &mut self,
        entry: &tar::Entry<'_, R>,
        name: &str,
        rel: &Path,
    ) -> Result<(), ExtractError> {
        let (target, shown) = link_target(entry, name)?;
        link_stays_inside(rel, &target).map_err(|reason| unsafe_link(name, &shown, reason))?;
        let full = self.slot(name, rel)?;
        make_symlink(&target, &full).map_err(io_error(&full))?;
        self.stats.symlinks += 1;
        Ok(())
    }

    fn hardlink<R: Read>(
        &mut self,
        entry: &tar::Entry<'_, R>,
        name: &str,
        rel: &Path,
    ) -> Result<(), ExtractError> {
        let (target, shown) = link_target(entry, name)?;
        let source = safe_relative(&target).map_err(|reason| unsafe_link(name, &shown, reason))?;
        // Only a file this archive wrote: a link to anything else could expose, or let a later
        // entry overwrite, a file outside the install folder.
        let source_full = self.root.join(&source);
        let written = self.files.contains(&source)
            && fs::symlink_metadata(&source_full).is_ok_and(|meta| meta.is_file());
        if !written {
            return Err(unsafe_link(
                name,
                &shown,
                "the target is not a file unpacked earlier",
            ));
        }
        if source == rel {
            return Ok(()); // a link to itself: the file is already there
        }
        let full = self.slot(name, rel)?;
        fs::hard_link(&source_full, &full).map_err(io_error(&full))?;
        self.files.insert(rel.to_path_buf());
        self.stats.hardlinks += 1;
        Ok(())
    }

    /// Makes every folder above `rel` a real folder, refusing a path that goes through a
    /// symlink or a file. Missing folders are only made below the last existing one, which has
    /// been checked, so nothing is created when the path is refused.
    ///
    /// The folders above a checked one were checked before it, so only those below the
    /// deepest checked folder are looked at, from the top. Looking up every folder from the
    /// root instead made each entry cost the square of its depth: 44 KB of gzip holding
    /// 2,000 empty files 1,000 folders deep took 50 s to unpack instead of 2 (debug build).
    fn prepare_parents(&mut self, name: &str, rel: &Path) -> Result<(), ExtractError> {
        let mut unchecked = Vec::new();
        let mut dir = rel.parent().unwrap_or(Path::new(""));
        while !dir.as_os_str().is_empty() && !self.is_checked_dir(dir) {
            unchecked.push(dir);
            dir = dir.parent().unwrap_or(Path::new(""));
        }
        for dir in unchecked.into_iter().rev() {
            self.ensure_dir(name, dir)?;
        }
        Ok(())
    }

    /// Whether `rel` is a real folder made by this run, its parents included.
    fn is_checked_dir(&mut self, rel: &Path) -> bool {
        #[cfg(test)]
        {
            self.dir_lookups += 1;
        }
        self.dirs.contains(rel)
    }

    fn ensure_dir(&mut self, name: &str, rel: &Path) -> Result<(), ExtractError> {
        if self.is_checked_dir(rel) {
            return Ok(());
        }
        let full = self.root.join(rel);
        match fs::symlink_metadata(&full) {
            // `symlink_metadata` does not follow links, so `is_dir` is false for a symlink.
            Ok(meta) if meta.is_dir() => {}
            Ok(meta) if meta.file_type().is_symlink() => {
                return Err(unsafe_path(name, "the path goes through a symlink"))
            }
            Ok(_) => return Err(unsafe_path(name, "the path goes through a file")),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::create_dir(&full).map_err(io_error(&full))?;
                // Writable for now whatever the umask; the archive's mode comes at the end.
                set_mode(&full, 0o755)?;
            }
            Err(e) => return Err(io_error(&full)(e)),
        }
        self.dirs.insert(rel.to_path_buf());
        Ok(())
    }

    /// Prepares the parents of a file or link and frees its path: a file or link of the same
    /// name from earlier in the archive is removed (as tar does; removing a symlink never
    /// touches its target), a folder is not. Returns the full path.
    fn slot(&mut self, name: &str, rel: &Path) -> Result<PathBuf, ExtractError> {
        self.prepare_parents(name, rel)?;
        let full = self.root.join(rel);
        match fs::symlink_metadata(&full) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_error(&full)(e)),
            Ok(meta) if meta.is_dir() => {
                return Err(unsafe_path(name, "a folder of that name exists"))
            }
            Ok(_) => {
                self.files.remove(rel);
                fs::remove_file(&full).map_err(io_error(&full))?;
            }
        }
        Ok(full)
    }

    pub(super) fn apply_dir_modes(&self) -> Result<(), ExtractError> {
        let mut dirs: Vec<_> = self.dir_modes.iter().collect();
        // Deepest first, so a parent made read-only or unsearchable cannot get in the way.
        dirs.sort_by_key(|(rel, _)| std::cmp::Reverse(rel.components().count()));
        for (rel, mode) in dirs {
            set_mode(&self.root.join(rel), *mode)?;
        }
        set_mode(self.root, self.root_mode.unwrap_or(0o755))
    }
}

/// Turns an archive path into a path relative to the root: `.` components dropped; absolute
/// paths, Windows prefixes and any `..` refused (even one that would stay inside: no archive
/// we make needs it, and refusing all of them is simple to get right).
pub(crate) fn safe_relative(path: &Path) -> Result<PathBuf, &'static str> {
    let mut rel = PathBuf::new();
    for part in path.components() {
        match part {
            Component::Prefix(_) | Component::RootDir => return Err("the path is absolute"),
            Component::ParentDir => return Err("the path has a `..` and could leave the folder"),
            Component::CurDir => {}
            Component::Normal(part) => rel.push(part),
        }
    }
    Ok(rel)
}

/// Checks, lexically, that a symlink at `link` (relative to the root) pointing to `target`
/// resolves inside the root. `..` is allowed only at the start of the target: the folders
/// above the link are real folders (checked on creation), so climbing them is exact, whereas a
/// `..` after a name could climb out of whatever another symlink of that name points to.
/// Symlinks met on the way down are themselves checked by this rule, so they stay inside too.
fn link_stays_inside(link: &Path, target: &Path) -> Result<(), &'static str> {
    if target.as_os_str().is_empty() {
        return Err("the target is empty");
    }
    let mut depth = link.components().count().saturating_sub(1);
    let mut descended = false;
    for part in target.components() {
        match part {
            Component::Prefix(_) | Component::RootDir => return Err("the target is absolute"),
            Component::CurDir => {}
            Component::ParentDir if descended => return Err("the target has `..` after a name"),
            Component::ParentDir if depth == 0 => return Err("the target leaves the folder"),
            Component::ParentDir => depth -= 1,
            Component::Normal(_) => descended = true,
        }
    }
    Ok(())
}

fn link_target<R: Read>(
    entry: &tar::Entry<'_, R>,
    name: &str,
) -> Result<(PathBuf, String), ExtractError> {
    let shown = entry
        .link_name_bytes()
        .map(|b| String::from_utf8_lossy(&b).into_owned());
    match entry.link_name() {
        Ok(Some(target)) => Ok((target.into_owned(), shown.unwrap_or_default())),
        _ => Err(unsafe_link(
            name,
            &shown.unwrap_or_default(),
            "the link has no valid target",
        )),
    }
}

/// Refuses `entry` (named `name` in errors) when it is a sparse file: an old GNU sparse
/// entry (type `S`), or one in the PAX format.
pub(super) fn refuse_sparse<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    name: &str,
) -> Result<(), ExtractError> {
    if entry.header().entry_type().is_gnu_sparse() || is_pax_sparse(entry)? {
        return Err(ExtractError::UnsupportedEntry {
            entry: name.to_owned(),
            kind: kind_name(EntryType::GNUSparse),
        });
    }
    Ok(())
}

/// Whether `entry` is a sparse file in the PAX format (GNU tar's `--format=pax -S`): a
/// regular entry with `GNU.sparse.*` records, which the tar crate does not apply. Written
/// as is, it would land under a stand-in name (`GNUSparseFile.NNNN/name`) with the sparse
/// map inside its data.
fn is_pax_sparse<R: Read>(entry: &mut tar::Entry<'_, R>) -> Result<bool, ExtractError> {
    let Some(records) = entry.pax_extensions().map_err(archive_error)? else {
        return Ok(false);
    };
    // A malformed record is skipped, as the tar crate skips it when it reads a path or size.
    Ok(records
        .flatten()
        .any(|record| record.key_bytes().starts_with(b"GNU.sparse.")))
}

fn kind_name(kind: EntryType) -> &'static str {
    match kind {
        EntryType::Char => "character device",
        EntryType::Block => "block device",
        EntryType::Fifo => "fifo",
        EntryType::GNUSparse => "sparse file",
        _ => "unknown",
    }
}

/// Copies exactly `expected` bytes, telling a bad archive (read side) from a failed write.
pub(super) fn copy_exact(
    src: &mut impl Read,
    dst: &mut impl Write,
    buf: &mut [u8],
    expected: u64,
    write_error: impl Fn(io::Error) -> ExtractError,
) -> Result<u64, ExtractError> {
    let mut copied = 0u64;
    loop {
        let n = match src.read(buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(archive_error(e)),
        };
        dst.write_all(&buf[..n]).map_err(&write_error)?;
        copied += n as u64;
    }
    // The tar crate reports a stream that ends inside an entry as a short read, not an error.
    if copied != expected {
        let message = format!("an entry of {expected} bytes ends after {copied}");
        return Err(archive_error(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            message,
        )));
    }
    Ok(copied)
}

/// Reads the stream to its end: tar stops at its end-of-archive blocks, but gzip and zstd only
/// check their trailer (checksum, size) when read to the end.
pub(super) fn drain(mut rest: impl Read) -> Result<(), ExtractError> {
    io::copy(&mut rest, &mut io::sink())
        .map(drop)
        .map_err(archive_error)
}

#[cfg(unix)]
fn permissions(mode: u32) -> Option<fs::Permissions> {
    use std::os::unix::fs::PermissionsExt;
    Some(fs::Permissions::from_mode(mode & 0o777))
}

#[cfg(not(unix))]
fn permissions(_mode: u32) -> Option<fs::Permissions> {
    None
}

pub(super) fn set_mode(path: &Path, mode: u32) -> Result<(), ExtractError> {
    match permissions(mode) {
        Some(permissions) => fs::set_permissions(path, permissions).map_err(io_error(path)),
        None => Ok(()),
    }
}

#[cfg(unix)]
fn make_symlink(target: &Path, link: &Path) -> io::Result<()> {
    std::os::unix::fs::symlink(target, link)
}

#[cfg(not(unix))]
fn make_symlink(_target: &Path, _link: &Path) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "symlinks are only made on Unix",
    ))
}

/// The permission bits kept from an archive: the owner's, and read and execute for the
/// others. No setuid/setgid/sticky: an SDK needs none, and they are a risk in a user's
/// folder. No write for group or others, whatever the archive says (tar run by root keeps
/// such modes): on a shared machine any local user could then change an SDK that others,
/// and builds run as root, execute.
const KEPT_MODE_BITS: u32 = 0o755;

/// Files at least this big start their write-out as soon as they are written.
const EARLY_WRITEBACK: u64 = 256 * 1024;
