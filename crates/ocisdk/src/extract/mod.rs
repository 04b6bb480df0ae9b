//! Safe, streaming extraction of SDK tarballs and OCI image layers.
//!
//! - [`unpack_into`] streams a tar (plain, gzip or zstd, told apart by its first bytes) into a
//!   fresh temporary folder beside the install folder, and renames that folder into place only
//!   once every entry is written: an install folder is either complete or absent.
//! - [`extract_member`] streams the one SDK tarball out of a layer that is a filesystem tar
//!   holding it (images built `FROM scratch` + `COPY`).
//! - [`check_archive`] reads a tar through without writing anything, refusing what
//!   `unpack_into` would refuse whatever it held: a stream that is no valid tar, an empty
//!   archive.
//!
//! Archives come from the network, so every entry is checked before anything is written for it:
//! no absolute paths, no `..`, no link whose target leaves the install folder, no writing
//! through a symlink, no devices, fifos or sparse files, no entry whose headers (long names,
//! PAX records) take more than 1 MiB, which the tar crate would read into memory whole.
//! Permission bits are kept without setuid/setgid/sticky and without write permission for
//! group and others, owners are not, file mtimes are.
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

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Component, Path, PathBuf};

mod commit;
mod entries;
#[cfg(all(test, unix))]
mod tests;
mod unpacker;

pub use commit::remove_leftovers;
pub(crate) use commit::retire;
pub(crate) use commit::TempTree;
use commit::{publish, sync_filesystem, write_new_file, write_sentinel};
use entries::for_each_entry;
pub(crate) use unpacker::safe_relative;
use unpacker::{copy_exact, drain, refuse_sparse, Unpacker};

/// Name prefix of the temporary folders [`unpack_into`] makes beside the install folder:
/// `{TEMP_PREFIX}{install folder name}-XXXXXX`.
///
/// A crash can leave such folders behind; [`remove_leftovers`] removes those of one install
/// folder, and any folder with this prefix can be removed when no install is running.
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
#[non_exhaustive]
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
    /// The archive holds nothing to install: no entry at all (a zero-byte stream, or a tar of
    /// nothing but its end), or only the root folder (`./`) and archive-wide metadata.
    #[error("the archive is empty: it holds no files")]
    EmptyArchive,
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
    /// The only SDK tarball of a layer holds less than its other files: the layer is taken
    /// to be an SDK's own files rather than a carrier of that tarball.
    #[error(
        "{path} holds {size} of the {file_bytes} bytes of files in the layer: too little for \
         the SDK tarball the layer carries, so the layer is taken to be the SDK's own files"
    )]
    MemberAmongFiles {
        /// Its path in the layer.
        path: String,
        /// Its size in bytes.
        size: u64,
        /// The bytes of all the regular files in the layer, it included.
        file_bytes: u64,
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

/// [`ExtractError`] is non-exhaustive, like the crate's other public error enums, so that a
/// new kind of failure is no breaking change: outside the crate, a `match` naming every
/// variant but no wildcard does not compile…
///
/// ```compile_fail
/// use ocisdk::extract::ExtractError;
/// fn code(e: &ExtractError) -> u8 {
///     match e {
///         ExtractError::UnsafePath { .. } => 1,
///         ExtractError::UnsafeLink { .. } => 2,
///         ExtractError::UnsupportedEntry { .. } => 3,
///         ExtractError::Io { .. } => 4,
///         ExtractError::AlreadyExists { .. } => 5,
///         ExtractError::EmptyArchive => 6,
///         ExtractError::Archive { .. } => 7,
///         ExtractError::AmbiguousMember { .. } => 8,
///         ExtractError::MemberAmongFiles { .. } => 9,
///         ExtractError::MemberNotFound { .. } => 10,
///     }
/// }
/// ```
///
/// …while the same `match` with a wildcard does (so the one above fails for no other reason):
///
/// ```
/// use ocisdk::extract::ExtractError;
/// fn code(e: &ExtractError) -> u8 {
///     #[allow(unreachable_patterns)]
///     match e {
///         ExtractError::UnsafePath { .. } => 1,
///         ExtractError::UnsafeLink { .. } => 2,
///         ExtractError::UnsupportedEntry { .. } => 3,
///         ExtractError::Io { .. } => 4,
///         ExtractError::AlreadyExists { .. } => 5,
///         ExtractError::EmptyArchive => 6,
///         ExtractError::Archive { .. } => 7,
///         ExtractError::AmbiguousMember { .. } => 8,
///         ExtractError::MemberAmongFiles { .. } => 9,
///         ExtractError::MemberNotFound { .. } => 10,
///         _ => 0,
///     }
/// }
/// assert_eq!(code(&ExtractError::EmptyArchive), 6);
/// ```
#[cfg(doctest)]
pub struct ExtractErrorIsNonExhaustive;

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
    /// Name of an empty file written in the folder once every entry is unpacked, and flushed
    /// to disk with them before the folder is moved into place, so a reader can tell a
    /// finished install even after a crash. Must be a plain file name.
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
/// `options.replace`, an existing `target` is swapped with the new folder in one step, so
/// that `target` is never missing (Linux's `renameat2` with `RENAME_EXCHANGE`; where the file
/// system cannot, it is moved aside, the new folder renamed in, and the old one put back if
/// that fails), and the old one then removed. An archive with nothing to
/// install, not a single entry or only the root folder (`./`), is refused
/// ([`ExtractError::EmptyArchive`]).
pub fn unpack_into(
    reader: impl Read + Send,
    target: &Path,
    options: &UnpackOptions,
) -> Result<UnpackStats, ExtractError> {
    unpack_recording(reader, target, options, None)
}

/// [`unpack_into`], also writing `record`, a file name and its content, into the folder
/// before the sentinel: so that it is there, and flushed, as soon as the folder is the
/// install, in place of any entry of the archive by that name (never through a symlink).
pub(crate) fn unpack_recording(
    reader: impl Read + Send,
    target: &Path,
    options: &UnpackOptions,
    record: Option<(&str, &[u8])>,
) -> Result<UnpackStats, ExtractError> {
    let names = options.sentinel.as_deref().into_iter();
    for name in names.chain(record.map(|(name, _)| name)) {
        let mut parts = Path::new(name).components();
        if !matches!(
            (parts.next(), parts.next()),
            (Some(Component::Normal(_)), None)
        ) {
            return Err(unsafe_path(
                name,
                "the sentinel or record must be a plain file name",
            ));
        }
    }
    // Known before reading a byte: don't make the caller download and inflate for nothing.
    if !options.replace && fs::symlink_metadata(target).is_ok() {
        return Err(ExtractError::AlreadyExists {
            path: target.to_path_buf(),
        });
    }
    let parent = commit::parent_of(target);
    fs::create_dir_all(parent).map_err(io_error(parent))?;
    let staging = TempTree::beside(target)?;

    let mut unpacker = Unpacker::new(&staging.path);
    // Inflating on one thread, parsing and writing files on this one: for a big SDK they
    // take comparable time, and the download already runs on threads of its own.
    crate::readahead::with_read_ahead(
        || decompressing_reader(reader),
        |decompressed| -> Result<(), ExtractError> {
            let rest = for_each_entry(decompressed, |entry| unpacker.unpack(entry))?;
            drain(rest)?;
            // An archive that put nothing in the folder would install as an SDK of nothing
            // but the sentinel, which later installs take as done: a zero-byte stream (the
            // tar crate reads it as a tar of no entries), or a tar of only `./`, which sets
            // the folder's mode and nothing else. So what was written decides, not how many
            // entries were read.
            if unpacker.stats == UnpackStats::default() {
                return Err(ExtractError::EmptyArchive);
            }
            Ok(())
        },
    )?;
    if let Some((name, content)) = record {
        write_new_file(&staging.path, name, content)?;
    }
    if let Some(name) = &options.sentinel {
        write_sentinel(&staging.path, name)?;
    }
    // Before the rename makes the folder the install, everything in it must be on disk:
    // otherwise a crash or power loss can leave a finished-looking install of empty or
    // partial files, the one failure a build machine cannot see. The sentinel is flushed in
    // the same sweep as the files rather than by an fsync of its own (and one of the folder):
    // until the rename, the folder is only a staging folder, which nothing takes as finished
    // whatever it holds, so nothing is gained by marking it finished any later. Before the
    // folder modes are applied, since the flush opens the folder and the archive's modes may
    // take away the right to (the modes are metadata: on a journalling file system the
    // parent's fsync after the rename commits them too).
    sync_filesystem(&staging.path);
    // After every write, since a read-only folder would have blocked writing its children
    // (or the sentinel).
    unpacker.apply_dir_modes()?;
    let stats = unpacker.stats;
    publish(staging, target, parent, options.replace)?;
    Ok(stats)
}

/// Reads a tar stream, already decompressed, to its end without writing anything, and
/// refuses what [`unpack_into`] would refuse whatever its entries and wherever it unpacked:
/// a stream that is not a valid tar ([`ExtractError::Archive`]; a truncated one included),
/// and an archive with nothing to install ([`ExtractError::EmptyArchive`]: no entry, or only
/// the root folder `./` and archive-wide metadata). Entries `unpack_into` refuses one by one
/// (unsafe paths and links, devices, sparse files) are not looked for.
///
/// Memory stays flat: entries are read past, not held.
pub fn check_archive(tar: impl Read) -> Result<(), ExtractError> {
    let mut content = false;
    let rest = for_each_entry(tar, |entry| {
        // As the unpacker reads them: archive-wide metadata is skipped, and an entry whose
        // path is the root itself only sets the install folder's mode. Any other entry
        // writes something or is refused, so the archive is not empty.
        let metadata = entry.header().entry_type().is_pax_global_extensions();
        let root = entry
            .path()
            .is_ok_and(|path| safe_relative(&path).is_ok_and(|rel| rel.as_os_str().is_empty()));
        content |= !(metadata || root);
        Ok(())
    })?;
    // The rest: the tar's padding, and gzip's or zstd's trailer, checked at its end.
    drain(rest)?;
    if content {
        Ok(())
    } else {
        Err(ExtractError::EmptyArchive)
    }
}

/// Reads a layer to its end and copies to `out` the one member `wanted` selects.
///
/// With a preferred name, the member is the regular file whose last path component is exactly
/// that name; there is no fallback to other candidates, because the stream cannot be rewound
/// to undo a candidate already written: when it is missing, [`ExtractError::MemberNotFound`]
/// lists what the layer holds so the caller can retry with the right name. Without one, the
/// member is the only regular file named like an SDK tarball ([`is_sdk_tarball_name`]), and
/// it must hold more bytes than the layer's other files together
/// ([`ExtractError::MemberAmongFiles`]): a layer made to carry a tarball (`FROM scratch` +
/// `COPY`) holds little else, while a layer that is an SDK's own files may hold a small
/// tarball among them (a test fixture) that is not the SDK.
///
/// The first match is streamed to `out` as it is met and the rest of the layer is still read,
/// so that a second match is found ([`ExtractError::AmbiguousMember`]) and the compressed
/// stream's trailer is checked. A selected member that is a sparse file (an old GNU sparse
/// entry, or one in the PAX format) is refused ([`ExtractError::UnsupportedEntry`]), as
/// [`unpack_into`] refuses one, before a byte of it is written. On any error `out` may hold
/// partial data (write it to a temporary file and drop that on error), except on
/// `MemberNotFound`, where nothing was written.
pub fn extract_member(
    reader: impl Read,
    wanted: &MemberSelector,
    out: &mut impl Write,
) -> Result<MemberInfo, ExtractError> {
    let layer = decompressing_reader(reader).map_err(archive_error)?;
    let mut chosen = None;
    let mut candidates = Vec::new();
    let mut listed = Vec::new();
    let mut total = 0;
    let mut file_bytes = 0u64;
    let mut buf = vec![0u8; COPY_BUFFER];
    let rest = for_each_entry(layer, |entry| {
        let kind = entry.header().entry_type();
        if kind.is_pax_global_extensions() {
            return Ok(());
        }
        let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let path = raw.trim_start_matches("./").to_owned();
        if path.is_empty() {
            return Ok(()); // `./`, the layer's root
        }
        total += 1;
        if listed.len() < LISTED_ENTRIES {
            listed.push(path.clone());
        }
        // A sparse file is a file too: named like the member, it must be refused (below), not
        // passed over, which would leave the layer without a member and have the caller take
        // the whole layer for the tarball.
        if !(kind.is_file() || kind.is_contiguous() || kind.is_gnu_sparse()) {
            return Ok(());
        }
        file_bytes = file_bytes.saturating_add(entry.size());
        let name = path.rsplit('/').next().unwrap_or_default().to_owned();
        let selected = match &wanted.preferred_name {
            Some(preferred) => name == *preferred,
            None => is_sdk_tarball_name(&name),
        };
        if !selected {
            return Ok(());
        }
        // Refused as the unpacker refuses it. The tar crate does not apply a PAX sparse map:
        // copied out, such a member would be its map and stored fragments, not the tarball.
        refuse_sparse(entry, &raw)?;
        candidates.push(path.clone());
        if chosen.is_none() {
            let size = entry.size();
            copy_exact(entry, out, &mut buf, size, |source| ExtractError::Io {
                path: PathBuf::from(&path),
                source,
            })?;
            chosen = Some(MemberInfo { name, path, size });
        }
        Ok(())
    })?;
    drain(rest)?;
    match chosen {
        Some(info) if wanted.preferred_name.is_none() && file_bytes - info.size > info.size => {
            Err(ExtractError::MemberAmongFiles {
                path: info.path,
                size: info.size,
                file_bytes,
            })
        }
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
