//! OCI image layouts: a folder with `oci-layout`, `index.json` and `blobs/<alg>/<hex>`, the
//! form in which images travel as files (skopeo's `oci:DIR:TAG`), and [`archive`] for a tar of
//! one (`oci-archive:FILE`).
//! <https://github.com/opencontainers/image-spec/blob/main/image-layout.md>
//!
//! Names are kept as skopeo and containerd keep them: the `org.opencontainers.image.ref.name`
//! annotation of an `index.json` entry. Every blob is written to a temporary file beside its
//! place, checked against its digest, and renamed into place; `index.json` is rewritten the
//! same way, last, so an interrupted copy never leaves a name pointing at missing content.
//! `index.json` is read, changed and written with the layout folder locked, so that copies
//! into one layout at once each keep their name (where the file system has no locks, as NFS
//! without its lock daemon, they go without, and one of two names added at once may be lost).

pub mod archive;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::content::temp_builder;
use crate::digest::{Digest, Hasher};
use crate::error::{Error, Location, Result};
use crate::spec::OCI_INDEX;

/// The file marking a folder as an image layout.
pub const LAYOUT_FILE: &str = "oci-layout";
/// The file naming the layout's images.
pub const INDEX_FILE: &str = "index.json";
/// The annotation holding an image's name (a tag) in `index.json`.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";
/// The layout version written.
pub const LAYOUT_VERSION: &str = "1.0.0";
/// The most bytes of `index.json` read.
const INDEX_LIMIT: u64 = 16 * 1024 * 1024;

/// An OCI image layout folder.
#[derive(Debug, Clone)]
pub struct OciLayout {
    root: PathBuf,
}

/// One entry of `index.json`: a manifest or index, its name and other annotations. Fields
/// this crate does not know (`platform`, …) are kept as they were.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayoutEntry {
    /// The manifest's media type.
    #[serde(rename = "mediaType")]
    pub media_type: String,
    /// The manifest's digest, as written.
    pub digest: String,
    /// The manifest's size in bytes.
    pub size: u64,
    /// Annotations, among them the name ([`REF_NAME`]).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(flatten)]
    other: serde_json::Map<String, serde_json::Value>,
}

impl LayoutEntry {
    /// An entry for a manifest, named `name` when given.
    pub fn new(media_type: &str, digest: &Digest, size: u64, name: Option<&str>) -> LayoutEntry {
        let mut annotations = BTreeMap::new();
        if let Some(name) = name {
            annotations.insert(REF_NAME.to_string(), name.to_string());
        }
        LayoutEntry {
            media_type: media_type.to_string(),
            digest: digest.to_string(),
            size,
            annotations,
            other: serde_json::Map::new(),
        }
    }

    /// The entry's name, when it has one.
    pub fn name(&self) -> Option<&str> {
        self.annotations.get(REF_NAME).map(String::as_str)
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct IndexFile {
    #[serde(rename = "schemaVersion")]
    schema_version: u32,
    #[serde(rename = "mediaType", default, skip_serializing_if = "Option::is_none")]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Vec<LayoutEntry>,
    #[serde(flatten)]
    other: serde_json::Map<String, serde_json::Value>,
}

impl OciLayout {
    /// Opens an existing layout; a folder without `oci-layout` is an error.
    pub fn open(root: impl Into<PathBuf>) -> Result<OciLayout> {
        let layout = OciLayout { root: root.into() };
        let marker = layout.root.join(LAYOUT_FILE);
        let text = std::fs::read(&marker).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::InvalidInput(format!(
                "{} is not an OCI image layout: it has no {LAYOUT_FILE} file",
                layout.root.display()
            )),
            _ => Error::io("reading", &marker, e),
        })?;
        #[derive(Deserialize)]
        struct Marker {
            #[serde(rename = "imageLayoutVersion")]
            version: String,
        }
        let marker: Marker = serde_json::from_slice(&text)
            .map_err(|e| Error::InvalidInput(format!("{} is not valid: {e}", marker.display())))?;
        if !marker.version.starts_with("1.") {
            return Err(Error::InvalidInput(format!(
                "{}: image layout version {} is not supported (1.x is)",
                layout.root.display(),
                marker.version
            )));
        }
        Ok(layout)
    }

    /// Opens the layout at `root`, creating the folder, `oci-layout` and an empty
    /// `index.json` when they are missing.
    pub fn create(root: impl Into<PathBuf>) -> Result<OciLayout> {
        let root = root.into();
        if root.join(LAYOUT_FILE).exists() {
            return OciLayout::open(root);
        }
        std::fs::create_dir_all(&root).map_err(|e| Error::io("creating", &root, e))?;
        let layout = OciLayout { root };
        let _lock = layout.lock()?;
        if !layout.root.join(INDEX_FILE).exists() {
            layout.write_index(&IndexFile {
                schema_version: 2,
                media_type: Some(OCI_INDEX.to_string()),
                manifests: Vec::new(),
                other: serde_json::Map::new(),
            })?;
        }
        let marker = format!("{{\"imageLayoutVersion\":\"{LAYOUT_VERSION}\"}}");
        write_atomically(&layout.root.join(LAYOUT_FILE), marker.as_bytes())?;
        Ok(layout)
    }

    /// The layout folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where blob `digest` lives: `blobs/<alg>/<hex>`.
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root
            .join("blobs")
            .join(digest.algorithm().as_str())
            .join(digest.hex())
    }

    /// The size of blob `digest` when the layout has it.
    pub fn blob_size(&self, digest: &Digest) -> Result<Option<u64>> {
        let path = self.blob_path(digest);
        match std::fs::metadata(&path) {
            Ok(m) if m.is_file() => Ok(Some(m.len())),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("reading", path, e)),
        }
    }

    /// Reads a small blob (a manifest, a config) into memory, verified, refusing more than
    /// `limit` bytes.
    pub fn read_blob(&self, digest: &Digest, limit: u64, what: &'static str) -> Result<Bytes> {
        let path = self.blob_path(digest);
        let file = std::fs::File::open(&path).map_err(|e| Error::io("reading", &path, e))?;
        let mut bytes = Vec::new();
        file.take(limit + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| Error::io("reading", &path, e))?;
        let at = self.location(digest);
        if bytes.len() as u64 > limit {
            return Err(Error::TooLarge { what, at, limit });
        }
        crate::registry::verify_bytes(&bytes, digest, &at)?;
        Ok(Bytes::from(bytes))
    }

    /// Checks that blob `digest` is `size` bytes that hash to `digest`, reading it through
    /// once: a layout is files anyone may have changed, and content sent on from it must be
    /// what its descriptor says.
    pub fn verify_blob(&self, digest: &Digest, size: u64) -> Result<()> {
        let path = self.blob_path(digest);
        let mut file = std::fs::File::open(&path).map_err(|e| Error::io("reading", &path, e))?;
        let mut hasher = Hasher::new(digest.algorithm());
        let mut read = 0u64;
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = file
                .read(&mut buf)
                .map_err(|e| Error::io("reading", &path, e))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            read += n as u64;
        }
        self.check_content(digest, size, read, hasher)
    }

    /// Fails unless `count` bytes hashing (in `hasher`) to `digest` are the `size` bytes of
    /// blob `digest`, naming this layout's blob.
    fn check_content(&self, digest: &Digest, size: u64, count: u64, hasher: Hasher) -> Result<()> {
        let at = self.location(digest);
        if count != size {
            return Err(Error::SizeMismatch {
                at,
                expected: size,
                actual: count,
            });
        }
        let actual = hasher.finish();
        if &actual != digest {
            return Err(Error::DigestMismatch {
                at,
                expected: digest.clone(),
                actual,
            });
        }
        Ok(())
    }

    /// Stores in-memory content as blob `digest`, after checking it matches.
    pub fn write_blob(&self, digest: &Digest, bytes: &[u8]) -> Result<()> {
        self.write_blob_from(digest, bytes.len() as u64, bytes)
    }

    /// Stores what `reader` yields as blob `digest` of `size` bytes: hashed on the way into a
    /// temporary file, renamed into place only when size and digest match.
    pub fn write_blob_from(&self, digest: &Digest, size: u64, mut reader: impl Read) -> Result<()> {
        let dest = self.blob_path(digest);
        let dir = dest.parent().unwrap_or(&self.root).to_path_buf();
        std::fs::create_dir_all(&dir).map_err(|e| Error::io("creating", &dir, e))?;
        let mut temp = temp_builder(crate::content::Files::User)
            .prefix(".tmp-")
            .tempfile_in(&dir)
            .map_err(|e| Error::io("creating a temporary file in", &dir, e))?;
        let mut hasher = Hasher::new(digest.algorithm());
        let mut written = 0u64;
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = reader
                .read(&mut buf)
                .map_err(|e| Error::io("reading the content of", &dest, e))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            written += n as u64;
            temp.write_all(&buf[..n])
                .map_err(|e| Error::io("writing", temp.path(), e))?;
        }
        self.check_content(digest, size, written, hasher)?;
        temp.as_file()
            .sync_all()
            .map_err(|e| Error::io("writing", temp.path(), e))?;
        temp.persist(&dest)
            .map_err(|e| Error::io("renaming into", &dest, e.error))?;
        Ok(())
    }

    /// The entries of `index.json`, in order.
    pub fn entries(&self) -> Result<Vec<LayoutEntry>> {
        Ok(self.read_index()?.manifests)
    }

    /// The entry named `name`; without a name, the only entry (as skopeo reads `oci:DIR`).
    pub fn find(&self, name: Option<&str>) -> Result<LayoutEntry> {
        let entries = self.entries()?;
        let found = match name {
            Some(name) => entries.iter().rev().find(|e| e.name() == Some(name)),
            None if entries.len() == 1 => entries.first(),
            None => None,
        };
        found.cloned().ok_or_else(|| Error::NotInLayout {
            layout: self.root.clone(),
            name: name.unwrap_or("").to_string(),
            available: describe_names(&entries),
        })
    }

    /// Adds `entry` to `index.json`, replacing any entry of the same name (or, for an
    /// unnamed entry, any unnamed entry of the same digest).
    pub fn add_entry(&self, entry: LayoutEntry) -> Result<()> {
        let _lock = self.lock()?;
        let mut index = self.read_index()?;
        index.manifests.retain(|e| match entry.name() {
            Some(name) => e.name() != Some(name),
            None => e.name().is_some() || e.digest != entry.digest,
        });
        index.manifests.push(entry);
        self.write_index(&index)
    }

    /// Locks the layout folder for this process until the returned file is dropped, waiting
    /// for another holding it: two copies adding names at once each read `index.json` and
    /// wrote it back with only their own name added, so one name was lost while both
    /// succeeded. The folder itself is locked, not `index.json`, which each write replaces,
    /// nor a lock file, which would be one more file in the layout, and one another user
    /// sharing the layout might not be able to open. `None` where the file system has no
    /// locks.
    fn lock(&self) -> Result<Option<std::fs::File>> {
        let dir =
            std::fs::File::open(&self.root).map_err(|e| Error::io("opening", &self.root, e))?;
        match dir.lock() {
            Ok(()) => Ok(Some(dir)),
            // NFS takes an exclusive lock only on a file open for writing, which a folder
            // never is (EBADF).
            Err(e)
                if crate::lock_file::locks_unsupported(&e)
                    || e.raw_os_error() == Some(libc::EBADF) =>
            {
                tracing::warn!(
                    "{}: the file system has no locks; going without: names added by other \
                     copies into this layout at the same time may be lost ({e})",
                    self.root.display()
                );
                Ok(None)
            }
            Err(e) => Err(Error::io("locking", &self.root, e)),
        }
    }

    fn read_index(&self) -> Result<IndexFile> {
        let path = self.root.join(INDEX_FILE);
        let file = std::fs::File::open(&path).map_err(|e| Error::io("reading", &path, e))?;
        let mut bytes = Vec::new();
        file.take(INDEX_LIMIT)
            .read_to_end(&mut bytes)
            .map_err(|e| Error::io("reading", &path, e))?;
        serde_json::from_slice(&bytes).map_err(|source| Error::InvalidDocument {
            what: "layout index",
            url: path.display().to_string(),
            prefix: String::from_utf8_lossy(&bytes[..bytes.len().min(64)]).into_owned(),
            source,
        })
    }

    fn write_index(&self, index: &IndexFile) -> Result<()> {
        let bytes = serde_json::to_vec(index)
            .map_err(|e| Error::InvalidInput(format!("cannot write the layout index: {e}")))?;
        write_atomically(&self.root.join(INDEX_FILE), &bytes)
    }

    /// A location naming the layout, for errors.
    pub(crate) fn location(&self, digest: &Digest) -> Location {
        Location {
            registry: "oci".into(),
            repository: self.root.display().to_string().into(),
            reference: Some(digest.to_string().into()),
        }
    }
}

fn describe_names(entries: &[LayoutEntry]) -> String {
    let names: Vec<String> = entries
        .iter()
        .map(|e| {
            e.name()
                .map_or_else(|| format!("(unnamed {})", e.digest), str::to_string)
        })
        .collect();
    if names.is_empty() {
        "no images".into()
    } else {
        names.join(", ")
    }
}

/// Writes `bytes` to `path` through a synced temporary file and a rename.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut temp = temp_builder(crate::content::Files::User)
        .prefix(".tmp-")
        .tempfile_in(dir)
        .map_err(|e| Error::io("creating a temporary file in", dir, e))?;
    temp.write_all(bytes)
        .and_then(|()| temp.as_file().sync_all())
        .map_err(|e| Error::io("writing", temp.path(), e))?;
    temp.persist(path)
        .map_err(|e| Error::io("renaming into", path, e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blobs_and_names_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let layout = OciLayout::create(dir.path().join("l")).unwrap();
        let content = b"{\"a\":1}";
        let digest = Digest::of_bytes(content);
        layout.write_blob(&digest, content).unwrap();
        assert_eq!(layout.blob_size(&digest).unwrap(), Some(7));
        assert_eq!(&layout.read_blob(&digest, 100, "x").unwrap()[..], content);
        assert!(matches!(
            layout.read_blob(&digest, 3, "x"),
            Err(Error::TooLarge { .. })
        ));
        // Wrong content never lands.
        let other = Digest::of_bytes(b"other");
        assert!(matches!(
            layout.write_blob_from(&other, 5, &b"not other"[..]),
            Err(Error::SizeMismatch { .. })
        ));
        assert!(matches!(
            layout.write_blob(&other, b"OTHER"),
            Err(Error::DigestMismatch { .. })
        ));
        assert_eq!(layout.blob_size(&other).unwrap(), None);

        layout
            .add_entry(LayoutEntry::new(OCI_INDEX, &digest, 7, Some("v1")))
            .unwrap();
        layout
            .add_entry(LayoutEntry::new(OCI_INDEX, &other, 5, Some("v1")))
            .unwrap();
        let reopened = OciLayout::open(layout.root()).unwrap();
        assert_eq!(reopened.entries().unwrap().len(), 1);
        assert_eq!(reopened.find(Some("v1")).unwrap().digest, other.to_string());
        assert_eq!(reopened.find(None).unwrap().digest, other.to_string());
        assert!(matches!(
            reopened.find(Some("v2")),
            Err(Error::NotInLayout { .. })
        ));
        let leftovers: Vec<_> = std::fs::read_dir(layout.root())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty());
    }

    #[test]
    fn a_blob_changed_after_it_was_written_fails_verification() {
        let dir = tempfile::tempdir().unwrap();
        let layout = OciLayout::create(dir.path()).unwrap();
        let digest = Digest::of_bytes(b"hello");
        layout.write_blob(&digest, b"hello").unwrap();
        layout.verify_blob(&digest, 5).unwrap();
        std::fs::write(layout.blob_path(&digest), b"hellO").unwrap();
        assert!(matches!(
            layout.verify_blob(&digest, 5),
            Err(Error::DigestMismatch { .. })
        ));
        std::fs::write(layout.blob_path(&digest), b"hell").unwrap();
        assert!(matches!(
            layout.verify_blob(&digest, 5),
            Err(Error::SizeMismatch { .. })
        ));
    }

    #[test]
    fn a_folder_without_the_marker_is_not_a_layout() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            OciLayout::open(dir.path()),
            Err(Error::InvalidInput(_))
        ));
    }
}
