//! Safe, streaming extraction of SDK tarballs and OCI image layers.
//!
//! - [`unpack_into`] streams a tar (plain, gzip or zstd, told apart by its first bytes) into a
//!   fresh temporary folder beside the install folder, and renames that folder into place only
//!   once every entry is written: an install folder is either complete or absent.
//! - [`extract_member`] streams the one SDK tarball out of a layer that is a filesystem tar
//!   holding it (images built `FROM scratch` + `COPY`).
//!
//! Archives come from the network, so every entry is checked before anything is written for it:
//! no absolute paths, no `..`, no link whose target leaves the install folder, no writing
//! through a symlink, no devices, fifos or sparse files. Permission bits are kept without
//! setuid/setgid/sticky, owners are not, file mtimes are.
//!
//! # Which shape is a layer?
//!
//! A layer is either the SDK tarball itself, or a filesystem tar holding it as a file. Both
//! decompress to a tar (so [`looks_like_tar`] only says "this is a tar"): the question is whether
//! the tar holds a member named like an SDK tarball ([`is_sdk_tarball_name`]). That cannot be
//! answered from the first bytes, so the streamable way is: call [`extract_member`] with
//! [`MemberSelector::any`]; [`ExtractError::MemberNotFound`] is returned only after the whole
//! layer was read without writing a byte to `out`, and then the layer itself is the SDK tarball:
//! read the blob again and give it to [`unpack_into`]. (Passing [`io::sink`] as `out` turns
//! [`extract_member`] into a pure probe.)

use std::collections::{HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, SystemTime};

use tar::EntryType;

/// Name prefix of the temporary folders [`unpack_into`] makes beside the install folder.
///
/// A crash can leave such folders behind; any folder with this prefix can be removed when no
/// install is running.
pub const TEMP_PREFIX: &str = ".ocisdk-tmp-";

const COPY_BUFFER: usize = 64 * 1024;
/// How many names of a layer [`ExtractError::MemberNotFound`] lists.
const LISTED_ENTRIES: usize = 10;

/// Compression of a tar stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// A plain tar.
    None,
    /// gzip (one member or several concatenated).
    Gzip,
    /// Zstandard.
    Zstd,
}

impl Compression {
    /// Tells the compression from the first bytes of a stream (4 are enough).
    pub fn detect(prefix: &[u8]) -> Compression {
        if prefix.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if prefix.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }

    /// The compression an OCI or Docker layer media type names, or `None` for a media type
    /// that is not a (compressed) tar.
    pub fn from_media_type(mt: &str) -> Option<Compression> {
        let mt = mt.split_once(';').map_or(mt, |(kind, _)| kind);
        let mt = mt.trim().to_ascii_lowercase();
        if mt.ends_with("+gzip")
            || mt.ends_with(".tar.gzip")
            || mt == "application/gzip"
            || mt == "application/x-gzip"
        {
            Some(Compression::Gzip)
        } else if mt.ends_with("+zstd") || mt == "application/zstd" {
            Some(Compression::Zstd)
        } else if mt.ends_with(".tar") || mt == "application/x-tar" {
            Some(Compression::None)
        } else {
            None
        }
    }
}

/// Wraps `r` in the decoder its first bytes call for, without losing the bytes peeked at.
pub fn decompressing_reader<'a, R: Read + 'a>(mut r: R) -> io::Result<Box<dyn Read + 'a>> {
    // Read the magic by hand rather than with one `BufReader::fill_buf`: a single read may
    // return fewer than 4 bytes (pipes, network bodies), and a short peek would misdetect.
    let mut magic = [0u8; 4];
    let mut len = 0;
    while len < magic.len() {
        match r.read(&mut magic[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let stream = io::Cursor::new(magic).take(len as u64).chain(r);
    Ok(match Compression::detect(&magic[..len]) {
        // A buffer of our size rather than `read::MultiGzDecoder`'s 32 KiB one: inflating the
        // benchmark's 135 MB SDK took 0.40 s instead of 0.42 s (best of 10 each).
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(
            io::BufReader::with_capacity(COPY_BUFFER, stream),
        )),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(stream)?),
        Compression::None => Box::new(io::BufReader::with_capacity(COPY_BUFFER, stream)),
    })
}

/// Whether `prefix` (the first 512 decompressed bytes of a stream) starts with a ustar or GNU
/// tar header. Old v7 tars, which carry no magic, are not recognised.
pub fn looks_like_tar(prefix: &[u8]) -> bool {
    prefix.get(257..262) == Some(b"ustar".as_slice())
}

/// Whether a file name is one [`extract_member`] takes for an SDK tarball when no name is
/// preferred: `*.tar.gz`, `*.tgz`, `*.tar.zst` or `*.tar.zstd` (the formats this module reads).
pub fn is_sdk_tarball_name(name: &str) -> bool {
    [".tar.gz", ".tgz", ".tar.zst", ".tar.zstd"]
        .iter()
        .any(|suffix| name.len() > suffix.len() && name.ends_with(suffix))
}

/// Why an extraction failed. Messages name the archive entry at fault.
#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    /// An entry's path would land outside the install folder, or over something it must not.
    #[error("refusing entry {entry:?}: {reason}")]
    UnsafePath {
        /// The entry's path as written in the archive.
        entry: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A symlink or hard link whose target is outside the install folder or not allowed.
    #[error("refusing link {entry:?} -> {target:?}: {reason}")]
    UnsafeLink {
        /// The link's path as written in the archive.
        entry: String,
        /// The link's target as written in the archive.
        target: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A device, fifo, sparse file or unknown entry type.
    #[error("refusing entry {entry:?}: {kind} entries are not supported")]
    UnsupportedEntry {
        /// The entry's path as written in the archive.
        entry: String,
        /// The kind of entry.
        kind: &'static str,
    },
    /// Reading or writing the file system failed.
    #[error("cannot write {}", path.display())]
    Io {
        /// The path being written.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The install folder exists and replacing it was not asked for.
    #[error("{} already exists", path.display())]
    AlreadyExists {
        /// The install folder.
        path: PathBuf,
    },
    /// The stream could not be read, or is not a valid (compressed) tar.
    #[error("cannot read the archive: it is corrupt, truncated or unreadable")]
    Archive {
        /// The underlying error.
        source: io::Error,
    },
    /// Several members of a layer could be the SDK tarball.
    #[error("the layer holds several SDK tarballs ({}): name the one wanted", .candidates.join(", "))]
    AmbiguousMember {
        /// Paths of the candidates, in archive order.
        candidates: Vec<String>,
    },
    /// No member of a layer matches. Nothing was written to the output.
    #[error("{}", missing_member_message(.wanted, .entries, .total))]
    MemberNotFound {
        /// The preferred name asked for, if any.
        wanted: Option<String>,
        /// The first few entry paths of the layer.
        entries: Vec<String>,
        /// How many entries the layer has.
        total: usize,
    },
}

fn missing_member_message(wanted: &Option<String>, entries: &[String], total: &usize) -> String {
    let what = match wanted {
        Some(name) => format!("no file named {name:?} in the layer"),
        None => "no SDK tarball (*.tar.gz, *.tgz, *.tar.zst) in the layer".to_owned(),
    };
    let more = total.saturating_sub(entries.len());
    let more = if more > 0 {
        format!(" and {more} more")
    } else {
        String::new()
    };
    format!(
        "{what}; it holds {total} entries: {}{more}",
        entries.join(", ")
    )
}

fn archive_error(source: io::Error) -> ExtractError {
    ExtractError::Archive { source }
}

fn io_error(path: &Path) -> impl Fn(io::Error) -> ExtractError + '_ {
    move |source| ExtractError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn unsafe_path(entry: &str, reason: &'static str) -> ExtractError {
    ExtractError::UnsafePath {
        entry: entry.to_owned(),
        reason,
    }
}

fn unsafe_link(entry: &str, target: &str, reason: &'static str) -> ExtractError {
    ExtractError::UnsafeLink {
        entry: entry.to_owned(),
        target: target.to_owned(),
        reason,
    }
}

/// How [`unpack_into`] treats an existing install folder and marks a finished one.
#[derive(Debug, Clone, Default)]
pub struct UnpackOptions {
    /// Replace an existing install folder (swapped out only once the new one is complete)
    /// instead of failing with [`ExtractError::AlreadyExists`].
    pub replace: bool,
    /// Name of an empty file written (and fsync'd) in the folder right before it is moved into
    /// place, once every unpacked file is on disk, so a reader can tell a finished install
    /// even after a crash. Must be a plain file name.
    pub sentinel: Option<String>,
}

/// What [`unpack_into`] wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UnpackStats {
    /// Regular files written.
    pub files: u64,
    /// Folders listed in the archive.
    pub dirs: u64,
    /// Symlinks made.
    pub symlinks: u64,
    /// Hard links made.
    pub hardlinks: u64,
    /// Bytes of regular-file content written.
    pub bytes: u64,
}

/// Unpacks a plain, gzip or zstd tar from `reader` into the new folder `target`.
///
/// The archive goes into a temporary folder (named [`TEMP_PREFIX`]…) in `target`'s parent
/// (created if missing), which is renamed to `target` only once everything is written. On any
/// error the temporary folder is removed and `target` is left as it was. With
/// `options.replace`, an existing `target` is moved aside, the new folder renamed in (the old
/// one is put back if that fails), and the old one then removed.
pub fn unpack_into(
    reader: impl Read + Send,
    target: &Path,
    options: &UnpackOptions,
) -> Result<UnpackStats, ExtractError> {
    if let Some(name) = &options.sentinel {
        let mut parts = Path::new(name).components();
        if !matches!(
            (parts.next(), parts.next()),
            (Some(Component::Normal(_)), None)
        ) {
            return Err(unsafe_path(name, "the sentinel must be a plain file name"));
        }
    }
    // Known before reading a byte: don't make the caller download and inflate for nothing.
    if !options.replace && fs::symlink_metadata(target).is_ok() {
        return Err(ExtractError::AlreadyExists {
            path: target.to_path_buf(),
        });
    }
    let parent = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    fs::create_dir_all(parent).map_err(io_error(parent))?;
    let staging = TempTree::create_in(parent)?;

    let mut unpacker = Unpacker::new(&staging.path);
    // Inflating on one thread, parsing and writing files on this one: for a big SDK they
    // take comparable time, and the download already runs on threads of its own.
    crate::readahead::with_read_ahead(
        || decompressing_reader(reader),
        |decompressed| -> Result<(), ExtractError> {
            let mut archive = tar::Archive::new(decompressed);
            for entry in archive.entries().map_err(archive_error)? {
                unpacker.unpack(&mut entry.map_err(archive_error)?)?;
            }
            drain(archive.into_inner())
        },
    )?;
    // Before anything marks the folder finished (the sentinel, the rename), its files must
    // be on disk: otherwise a crash or power loss can leave a finished-looking install of
    // empty or partial files, the one failure a build machine cannot see.
    sync_filesystem(&staging.path);
    if let Some(name) = &options.sentinel {
        write_sentinel(&staging.path, name)?;
    }
    // Last, since a read-only folder would have blocked writing its children (or the sentinel).
    unpacker.apply_dir_modes()?;
    let stats = unpacker.stats;
    publish(staging, target, parent, options.replace)?;
    Ok(stats)
}

/// Reads a layer to its end and copies to `out` the one member `wanted` selects.
///
/// With a preferred name, the member is the regular file whose last path component is exactly
/// that name; there is no fallback to other candidates, because the stream cannot be rewound
/// to undo a candidate already written: when it is missing, [`ExtractError::MemberNotFound`]
/// lists what the layer holds so the caller can retry with the right name. Without one, the
/// member is the only regular file named like an SDK tarball ([`is_sdk_tarball_name`]).
///
/// The first match is streamed to `out` as it is met and the rest of the layer is still read,
/// so that a second match is found ([`ExtractError::AmbiguousMember`]) and the compressed
/// stream's trailer is checked. On any error `out` may hold partial data (write it to a
/// temporary file and drop that on error), except on `MemberNotFound`, where nothing was
/// written.
pub fn extract_member(
    reader: impl Read,
    wanted: &MemberSelector,
    out: &mut impl Write,
) -> Result<MemberInfo, ExtractError> {
    let mut archive = tar::Archive::new(decompressing_reader(reader).map_err(archive_error)?);
    let mut chosen = None;
    let mut candidates = Vec::new();
    let mut listed = Vec::new();
    let mut total = 0;
    let mut buf = vec![0u8; COPY_BUFFER];
    for entry in archive.entries().map_err(archive_error)? {
        let mut entry = entry.map_err(archive_error)?;
        let kind = entry.header().entry_type();
        if kind.is_pax_global_extensions() {
            continue;
        }
        let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let path = raw.trim_start_matches("./").to_owned();
        if path.is_empty() {
            continue; // `./`, the layer's root
        }
        total += 1;
        if listed.len() < LISTED_ENTRIES {
            listed.push(path.clone());
        }
        if !(kind.is_file() || kind.is_contiguous()) {
            continue;
        }
        let name = path.rsplit('/').next().unwrap_or_default().to_owned();
        let selected = match &wanted.preferred_name {
            Some(preferred) => name == *preferred,
            None => is_sdk_tarball_name(&name),
        };
        if !selected {
            continue;
        }
        candidates.push(path.clone());
        if chosen.is_none() {
            let size = entry.size();
            copy_exact(&mut entry, out, &mut buf, size, |source| ExtractError::Io {
                path: PathBuf::from(&path),
                source,
            })?;
            chosen = Some(MemberInfo { name, path, size });
        }
    }
    drain(archive.into_inner())?;
    match chosen {
        Some(info) if candidates.len() == 1 => Ok(info),
        Some(_) => Err(ExtractError::AmbiguousMember { candidates }),
        None => Err(ExtractError::MemberNotFound {
            wanted: wanted.preferred_name.clone(),
            entries: listed,
            total,
        }),
    }
}

/// Which member of a layer [`extract_member`] copies out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemberSelector {
    /// Exact file name (last path component) of the member; `None` takes the only file named
    /// like an SDK tarball.
    pub preferred_name: Option<String>,
}

impl MemberSelector {
    /// Selects the only file named like an SDK tarball.
    pub fn any() -> Self {
        Self::default()
    }

    /// Selects the file with this exact name (last path component).
    pub fn named(name: impl Into<String>) -> Self {
        Self {
            preferred_name: Some(name.into()),
        }
    }
}

/// The member [`extract_member`] copied out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberInfo {
    /// Its file name (last path component).
    pub name: String,
    /// Its path in the layer, without a leading `./`.
    pub path: String,
    /// Its size in bytes.
    pub size: u64,
}

/// Writes the entries of one archive under `root`, checking each one first.
struct Unpacker<'a> {
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
    stats: UnpackStats,
}

impl<'a> Unpacker<'a> {
    fn new(root: &'a Path) -> Self {
        Self {
            root,
            dirs: HashSet::new(),
            files: HashSet::new(),
            dir_modes: HashMap::new(),
            root_mode: None,
            buf: vec![0u8; COPY_BUFFER],
            stats: UnpackStats::default(),
        }
    }

    fn unpack<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<(), ExtractError> {
        let kind = entry.header().entry_type();
        if kind.is_pax_global_extensions() {
            return Ok(()); // archive-wide metadata, e.g. the commit id `git archive` records
        }
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let rel = match entry.path() {
            Ok(path) => safe_relative(&path),
            Err(_) => Err("the path is not valid"),
        }
        .map_err(|reason| unsafe_path(&name, reason))?;
        // No setuid/setgid/sticky: an SDK needs none, and they are a risk in a user's folder.
        let mode = entry.header().mode().map_err(archive_error)? & 0o777;
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
    fn prepare_parents(&mut self, name: &str, rel: &Path) -> Result<(), ExtractError> {
        let mut dir = PathBuf::new();
        for part in rel.parent().into_iter().flat_map(Path::components) {
            dir.push(part);
            self.ensure_dir(name, &dir)?;
        }
        Ok(())
    }

    fn ensure_dir(&mut self, name: &str, rel: &Path) -> Result<(), ExtractError> {
        if self.dirs.contains(rel) {
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

    fn apply_dir_modes(&self) -> Result<(), ExtractError> {
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
fn copy_exact(
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
fn drain(mut rest: impl Read) -> Result<(), ExtractError> {
    io::copy(&mut rest, &mut io::sink())
        .map(drop)
        .map_err(archive_error)
}

fn write_sentinel(root: &Path, name: &str) -> Result<(), ExtractError> {
    let path = root.join(name);
    // The archive may hold an entry of that name, maybe a symlink: remove it, never follow it.
    if fs::symlink_metadata(&path).is_ok_and(|meta| !meta.is_dir()) {
        fs::remove_file(&path).map_err(io_error(&path))?;
    }
    let file = OpenOptions::new().write(true).create_new(true).open(&path);
    file.and_then(|file| file.sync_all())
        .map_err(io_error(&path))?;
    sync_dir(root);
    Ok(())
}

/// Renames `staging` to `target`, swapping out an existing `target` when `replace` is set.
fn publish(
    mut staging: TempTree,
    target: &Path,
    parent: &Path,
    replace: bool,
) -> Result<(), ExtractError> {
    let previous = match fs::symlink_metadata(target) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(io_error(target)(e)),
        Ok(_) if !replace => {
            return Err(ExtractError::AlreadyExists {
                path: target.to_path_buf(),
            })
        }
        Ok(_) => {
            // Aside into a folder of our own, where the name is sure to be free.
            let aside = TempTree::create_in(parent)?;
            let old = aside.path.join("old");
            fs::rename(target, &old).map_err(io_error(target))?;
            Some((aside, old))
        }
    };
    if let Err(e) = fs::rename(&staging.path, target) {
        if let Some((mut aside, old)) = previous {
            if fs::rename(&old, target).is_err() {
                aside.armed = false; // never delete the only copy of the previous install
            }
        }
        return Err(io_error(target)(e));
    }
    staging.armed = false;
    sync_dir(parent);
    drop(previous); // removes the previous install, best effort
    Ok(())
}

/// A folder removed on drop, read-only subfolders included, while `armed`.
struct TempTree {
    path: PathBuf,
    armed: bool,
}

impl TempTree {
    fn create_in(parent: &Path) -> Result<Self, ExtractError> {
        let dir = tempfile::Builder::new()
            .prefix(TEMP_PREFIX)
            .tempdir_in(parent)
            .map_err(io_error(parent))?;
        // Our own cleanup: tempfile's gives up on read-only subfolders.
        Ok(Self {
            path: dir.keep(),
            armed: true,
        })
    }
}

impl Drop for TempTree {
    fn drop(&mut self) {
        if self.armed && fs::remove_dir_all(&self.path).is_err() {
            make_writable(&self.path);
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

/// Makes `dir` and the folders below it writable, so that their entries can be removed.
fn make_writable(dir: &Path) {
    let _ = set_mode(dir, 0o700);
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        // `file_type` does not follow symlinks: nothing outside is touched.
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            make_writable(&entry.path());
        }
    }
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

fn set_mode(path: &Path, mode: u32) -> Result<(), ExtractError> {
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

/// Files at least this big start their write-out as soon as they are written.
const EARLY_WRITEBACK: u64 = 256 * 1024;

/// Writes out every file of the file system that holds `dir`, waiting until they are on
/// disk; best effort (a failure is logged: the install itself went well).
///
/// Why one `syncfs` and not an fsync per file: an SDK has thousands of files, and an
/// fsync each waits for the device thousands of times (dpkg's well-known slowness), while
/// one `syncfs` lets the kernel write them all in one sweep. Elsewhere than Linux, `sync`.
fn sync_filesystem(dir: &Path) {
    #[cfg(test)]
    tests::record_sync(dir);
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let result = File::open(dir).and_then(|folder| {
            // SAFETY: syncfs takes a descriptor borrowed from `folder`, open for the whole
            // call, and touches no memory of ours.
            match unsafe { libc::syncfs(folder.as_raw_fd()) } {
                0 => Ok(()),
                _ => Err(io::Error::last_os_error()),
            }
        });
        if let Err(e) = result {
            tracing::warn!(folder = %dir.display(), error = %e, "could not flush the unpacked files to disk");
        }
    }
    #[cfg(all(unix, not(target_os = "linux")))]
    {
        let _ = dir;
        // SAFETY: sync takes no arguments and cannot fail.
        unsafe { libc::sync() };
    }
    #[cfg(not(unix))]
    let _ = dir;
}

/// Makes a folder's entries (a new file, a rename) durable; best effort.
fn sync_dir(dir: &Path) {
    if cfg!(unix) {
        if let Ok(dir) = File::open(dir) {
            let _ = dir.sync_all();
        }
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    use EntryType::{Block, Char, Directory, Fifo, Link, Regular, Symlink};

    /// Builds a tar entry by entry, writing names into the header bytes so that hostile names
    /// (`..`, absolute) get through: the tar crate's own setters refuse them.
    struct Tarball(tar::Builder<Vec<u8>>);

    impl Tarball {
        fn new() -> Self {
            Self(tar::Builder::new(Vec::new()))
        }

        fn add(mut self, kind: EntryType, path: &str, mode: u32, link: &str, data: &[u8]) -> Self {
            let mut header = tar::Header::new_gnu();
            let old = header.as_old_mut();
            old.name[..path.len()].copy_from_slice(path.as_bytes());
            old.linkname[..link.len()].copy_from_slice(link.as_bytes());
            header.set_entry_type(kind);
            header.set_mode(mode);
            header.set_size(data.len() as u64);
            header.set_mtime(1_600_000_000);
            header.set_cksum();
            self.0.append(&header, data).unwrap();
            self
        }

        fn file(self, path: &str, data: &[u8]) -> Self {
            self.add(Regular, path, 0o644, "", data)
        }

        fn dir(self, path: &str, mode: u32) -> Self {
            self.add(Directory, path, mode, "", b"")
        }

        fn link(self, kind: EntryType, path: &str, target: &str) -> Self {
            self.add(kind, path, 0o777, target, b"")
        }

        fn finish(self) -> Vec<u8> {
            self.0.into_inner().unwrap()
        }
    }

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

        fn unpack(
            &self,
            archive: &[u8],
            options: &UnpackOptions,
        ) -> Result<UnpackStats, ExtractError> {
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
        let mut tar = Tarball::new()
            .dir("ok", 0o755)
            .file("ok/file", b"fine")
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
            let err = rejected(&sandbox, Tarball::new().file(path, b"evil").finish(), path);
            assert!(matches!(err, ExtractError::UnsafePath { .. }), "{err:?}");
        }
        // An inside symlink is kept, but nothing may be written through it.
        let archive = Tarball::new()
            .dir("real", 0o755)
            .link(Symlink, "etc", "real");
        let err = rejected(
            &sandbox,
            archive.file("etc/passwd", b"x").finish(),
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
                Tarball::new()
                    .link(Symlink, "etc", &outside)
                    .file("etc/passwd", b"x"),
                "etc",
            ),
            (Tarball::new().link(Symlink, "link", "../outside"), "link"),
            (
                Tarball::new().link(Symlink, "a/b/link", "../../.."),
                "a/b/link",
            ),
            // `up` is the root itself, so `up/..` is above it, however deep `esc` is.
            (
                Tarball::new()
                    .link(Symlink, "a/b/up", "../..")
                    .link(Symlink, "a/b/esc", "up/../.."),
                "a/b/esc",
            ),
            (Tarball::new().link(Link, "h", "/etc/passwd"), "h"),
            (Tarball::new().link(Link, "h", "../outside/file"), "h"),
            // Only a file already unpacked can be hard-linked.
            (
                Tarball::new().link(Link, "h", "later").file("later", b"x"),
                "h",
            ),
            (Tarball::new().link(Link, "h", "ok"), "h"),
        ];
        for (archive, entry) in cases {
            let err = rejected(&sandbox, archive.finish(), entry);
            assert!(matches!(err, ExtractError::UnsafeLink { .. }), "{err:?}");
        }
    }

    #[test]
    fn rejects_devices_and_fifos() {
        let sandbox = Sandbox::new();
        for kind in [Char, Block, Fifo] {
            let err = rejected(
                &sandbox,
                Tarball::new().add(kind, "dev/x", 0o644, "", b"").finish(),
                "dev/x",
            );
            assert!(
                matches!(err, ExtractError::UnsupportedEntry { .. }),
                "{err:?}"
            );
        }
    }

    fn sdk_archive() -> Vec<u8> {
        Tarball::new()
            .dir("./", 0o755)
            .dir("./bin/", 0o755)
            .add(Regular, "./bin/python3.11", 0o4755, "", b"#!elf")
            .link(Symlink, "./bin/python", "python3.11")
            .link(Symlink, "./lib/libpy.so", "../lib64/libpy.so.1")
            .file("./lib64/libpy.so.1", b"lib")
            .link(Link, "./lib64/libpy-copy.so", "lib64/libpy.so.1")
            .dir("./share/doc", 0o555)
            .file("./share/doc/README", b"read me")
            .file("deep/a/b/c/d.txt", b"deep")
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

    /// What each `sync_filesystem` call saw: the folder and the names in it then.
    static SYNCS: std::sync::Mutex<Vec<(PathBuf, Vec<String>)>> = std::sync::Mutex::new(Vec::new());

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
        SYNCS.lock().unwrap().push((dir.to_path_buf(), names));
    }

    /// The files are flushed to disk while the folder is still the staging one, with every
    /// file in it and before the sentinel marks it finished.
    #[test]
    fn flushes_the_files_before_the_sentinel_marks_them_finished() {
        let sandbox = Sandbox::new();
        let options = UnpackOptions {
            replace: false,
            sentinel: Some(".complete".into()),
        };
        sandbox.unpack(&sdk_archive(), &options).unwrap();
        let syncs = SYNCS.lock().unwrap();
        let ours: Vec<_> = syncs
            .iter()
            .filter(|(dir, _)| dir.parent() == Some(sandbox.parent.path()))
            .collect();
        assert_eq!(ours.len(), 1, "one flush per unpack: {ours:?}");
        let (dir, names) = ours[0];
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
            .filter(|name| name != ".complete")
            .collect();
        installed.sort();
        assert_eq!(names, &installed, "not every file was there when flushed");
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

    #[test]
    fn existing_target_is_kept_or_swapped() {
        let sandbox = Sandbox::new();
        let first = Tarball::new()
            .dir("ro", 0o555)
            .file("ro/old", b"old")
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
        let err = sandbox.unpack(&Tarball::new().file("../x", b"").finish(), &replace());
        assert!(
            matches!(err, Err(ExtractError::UnsafePath { .. })),
            "{err:?}"
        );
        assert_eq!(sandbox.read("bin/python"), b"#!elf");
        assert_eq!(sandbox.parent_names(), ["outside", "sdk"]);
    }

    #[test]
    fn corrupt_or_truncated_archives_leave_nothing() {
        let plain = Tarball::new()
            .file("big", &payload(200_000))
            .file("small", b"x")
            .finish();
        let gz = gzip(&plain);
        let mut bad_crc = gz.clone();
        let crc_at = bad_crc.len() - 8;
        bad_crc[crc_at] ^= 1;
        let cases = [
            &gz[..gz.len() / 2],
            &gz[..gz.len() - 4],
            &bad_crc,
            &plain[..100_000],
            b"junk",
        ];
        for archive in cases {
            let sandbox = Sandbox::new();
            let err = sandbox.unpack(archive, &replace()).unwrap_err();
            assert!(matches!(err, ExtractError::Archive { .. }), "{err:?}");
            assert_eq!(sandbox.parent_names(), ["outside"]);
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
        let tar = Tarball::new().file("f", b"x").finish();
        assert!(looks_like_tar(&tar[..512]));
        assert!(!looks_like_tar(&gzip(&tar)));
    }

    /// A `FROM scratch` + `COPY` layer holding an SDK tarball, and that tarball.
    fn layer() -> (Vec<u8>, Vec<u8>) {
        let sdk = gzip(
            &Tarball::new()
                .file("bin/python", &payload(300_000))
                .finish(),
        );
        let layer = Tarball::new()
            .dir("./", 0o755)
            .dir("./opt/", 0o755)
            .file("./opt/README.md", b"hello")
            .file("./opt/python-bookworm-3.8.0.tar.gz", &sdk)
            .file("./opt/python-bookworm-3.8.0.tar.gz.sha256", b"abc")
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
        let two = Tarball::new()
            .file("a/one.tar.gz", b"one")
            .file("b/two.tgz", b"two")
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
    fn no_candidate_lists_the_layer_and_writes_nothing() {
        let files = Tarball::new()
            .dir("bin", 0o755)
            .file("bin/python", b"elf")
            .file("notes", b"");
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
}
