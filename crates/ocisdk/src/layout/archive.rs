//! `oci-archive:FILE`: a tar of an OCI image layout, as skopeo writes and reads it.
//!
//! Reading unpacks into a temporary folder first (only regular files and folders, at safe
//! relative paths: an archive is input from elsewhere); writing builds the layout in a
//! temporary folder and tars it into a temporary file beside the archive (created first,
//! so that a folder that cannot take the archive fails before any work), renamed into
//! place at the end.

use std::fs::File;
use std::path::{Path, PathBuf};

use tempfile::{NamedTempFile, TempDir};

use super::OciLayout;
use crate::error::{Error, Result};
use crate::extract::safe_relative;

/// An archive unpacked into a temporary folder, removed on drop.
#[derive(Debug)]
pub struct Unpacked {
    layout: OciLayout,
    _dir: TempDir,
}

impl Unpacked {
    /// The layout inside.
    pub fn layout(&self) -> &OciLayout {
        &self.layout
    }
}

/// A temporary folder beside `near` when that is writable (archives can be large, and the
/// system temp folder is often small), else in the system temp folder.
pub(crate) fn scratch_dir(near: &Path) -> Result<TempDir> {
    let parent = folder_of(near);
    tempfile::Builder::new()
        .prefix(".ocisdk-layout-")
        .tempdir_in(&parent)
        .or_else(|_| tempfile::Builder::new().prefix("ocisdk-layout-").tempdir())
        .map_err(|e| Error::io("creating a temporary folder near", parent, e))
}

/// Unpacks the archive at `file` and opens the layout in it.
pub fn unpack(file: &Path) -> Result<Unpacked> {
    let dir = scratch_dir(file)?;
    let reader = File::open(file).map_err(|e| Error::io("reading", file, e))?;
    let mut archive = tar::Archive::new(std::io::BufReader::new(reader));
    let bad = |entry: &str, reason: &str| {
        Error::InvalidInput(format!(
            "{}: refusing archive entry {entry:?}: {reason}",
            file.display()
        ))
    };
    let entries = archive
        .entries()
        .map_err(|e| Error::io("reading", file, e))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| Error::io("reading", file, e))?;
        let name = entry
            .path()
            .map_err(|e| Error::io("reading", file, e))?
            .into_owned();
        let shown = name.display().to_string();
        let relative = safe_relative(&name).map_err(|reason| bad(&shown, reason))?;
        if relative.as_os_str().is_empty() {
            continue;
        }
        let dest = dir.path().join(&relative);
        match entry.header().entry_type() {
            tar::EntryType::Directory => {
                std::fs::create_dir_all(&dest).map_err(|e| Error::io("creating", &dest, e))?;
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                if let Some(parent) = dest.parent() {
                    std::fs::create_dir_all(parent)
                        .map_err(|e| Error::io("creating", parent, e))?;
                }
                // `create_new`: a second entry of the same name must not overwrite the first.
                let mut out = File::options()
                    .write(true)
                    .create_new(true)
                    .open(&dest)
                    .map_err(|e| Error::io("creating", &dest, e))?;
                std::io::copy(&mut entry, &mut out).map_err(|e| Error::io("writing", &dest, e))?;
            }
            tar::EntryType::XGlobalHeader | tar::EntryType::XHeader => {}
            other => {
                return Err(bad(
                    &shown,
                    &format!("{other:?} entries have no place in an OCI layout"),
                ))
            }
        }
    }
    let layout = OciLayout::open(dir.path())?;
    Ok(Unpacked { layout, _dir: dir })
}

/// Tars the layout folder `dir` into `file` (replacing it), entries sorted by path.
pub fn pack(dir: &Path, file: &Path) -> Result<()> {
    PendingArchive::create(file)?.write(dir)
}

/// An archive to be written at `file`: its temporary file, created beside `file` when the
/// write is planned, so that a missing or read-only folder fails before any work (a copy
/// would otherwise download every blob first). Dropped unwritten, it leaves nothing.
#[derive(Debug)]
pub(crate) struct PendingArchive {
    file: PathBuf,
    temp: NamedTempFile,
}

impl PendingArchive {
    pub(crate) fn create(file: &Path) -> Result<PendingArchive> {
        let parent = folder_of(file);
        let temp = crate::content::temp_builder(crate::content::Files::User)
            .prefix(".ocisdk-archive-")
            .tempfile_in(&parent)
            .map_err(|e| Error::io("creating a temporary file in", &parent, e))?;
        Ok(PendingArchive {
            file: file.to_path_buf(),
            temp,
        })
    }

    /// Where the archive goes.
    pub(crate) fn file(&self) -> &Path {
        &self.file
    }

    /// Tars the layout folder `dir` into the archive, entries sorted by path, and renames it
    /// into place.
    pub(crate) fn write(self, dir: &Path) -> Result<()> {
        let PendingArchive { file, temp } = self;
        let mut builder = tar::Builder::new(std::io::BufWriter::new(temp));
        builder.mode(tar::HeaderMode::Deterministic);
        let mut paths = Vec::new();
        collect(dir, Path::new(""), &mut paths)?;
        paths.sort();
        for relative in &paths {
            let path = dir.join(relative);
            builder
                .append_path_with_name(&path, relative)
                .map_err(|e| Error::io("archiving", &path, e))?;
        }
        let writer = builder
            .into_inner()
            .map_err(|e| Error::io("writing", &file, e))?;
        let temp = writer
            .into_inner()
            .map_err(|e| Error::io("writing", &file, e.into_error()))?;
        temp.as_file()
            .sync_all()
            .map_err(|e| Error::io("writing", temp.path(), e))?;
        temp.persist(&file)
            .map_err(|e| Error::io("renaming into", &file, e.error))?;
        Ok(())
    }
}

/// The folder `file` is in (`.` for a bare file name).
fn folder_of(file: &Path) -> PathBuf {
    match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Every file and folder under `dir`, relative to the layout root, skipping temporary files
/// of interrupted writes.
fn collect(root: &Path, relative: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let dir = root.join(relative);
    let entries = std::fs::read_dir(&dir).map_err(|e| Error::io("reading", &dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("reading", &dir, e))?;
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let child = relative.join(entry.file_name());
        let kind = entry
            .file_type()
            .map_err(|e| Error::io("reading", entry.path(), e))?;
        out.push(child.clone());
        if kind.is_dir() {
            collect(root, &child, out)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::Digest;
    use crate::layout::LayoutEntry;

    #[test]
    fn a_packed_layout_unpacks_to_the_same_content() {
        let dir = tempfile::tempdir().unwrap();
        let layout = OciLayout::create(dir.path().join("l")).unwrap();
        let digest = Digest::of_bytes(b"hello");
        layout.write_blob(&digest, b"hello").unwrap();
        layout
            .add_entry(LayoutEntry::new(
                crate::spec::OCI_MANIFEST,
                &digest,
                5,
                Some("t"),
            ))
            .unwrap();
        let file = dir.path().join("a.tar");
        pack(layout.root(), &file).unwrap();
        let unpacked = unpack(&file).unwrap();
        assert_eq!(unpacked.layout().find(Some("t")).unwrap().size, 5);
        assert_eq!(unpacked.layout().blob_size(&digest).unwrap(), Some(5));
    }

    #[test]
    fn unsafe_entries_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        for (name, kind) in [
            ("../evil", tar::EntryType::Regular),
            ("link", tar::EntryType::Symlink),
        ] {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(kind);
            header.set_size(0);
            header.set_mode(0o644);
            // `set_path` refuses `..`, so write the name bytes directly.
            header.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
            header.set_cksum();
            let mut builder = tar::Builder::new(Vec::new());
            builder.append(&header, std::io::empty()).unwrap();
            let file = dir.path().join("bad.tar");
            std::fs::write(&file, builder.into_inner().unwrap()).unwrap();
            let err = unpack(&file).unwrap_err();
            assert!(err.to_string().contains("refusing archive entry"), "{err}");
        }
        assert!(!dir.path().join("evil").exists());
    }
}
