//! The files a pull writes beside its tarball: the tarball's names by content, its
//! sidecar, the temporary files named for it, and removing those a killed pull left.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::content::Files;
use crate::extract::{looks_like_tar, Compression};
use crate::sdk::catalogue::Resolved;
use crate::sdk::error::SdkError;

use super::SIDECAR_SUFFIX;

/// Name prefixes of a pull's temporary files beside its tarball: the layer as downloaded,
/// the tarball copied out of it, and the new content of a small file (the sidecar).
pub(super) const LAYER_TEMP: &str = ".ocisdk-layer-";
pub(super) const MEMBER_TEMP: &str = ".ocisdk-member-";
pub(super) const NEW_TEMP: &str = ".ocisdk-new-";

/// A fresh path beside `dest`, `{kind}{dest's name}-XXXXXX`, deleted when dropped unless
/// persisted. Named for the tarball so that [`remove_stale_temp_files`] can tell whose it is.
/// Made as `files` are: ocisdk's own in the cache, the user's in `sdk pull`'s folder.
pub(super) fn temp_beside(
    dest: &Path,
    kind: &str,
    files: Files,
) -> Result<tempfile::TempPath, SdkError> {
    temp_file_beside(dest, kind, files).map(tempfile::NamedTempFile::into_temp_path)
}

/// [`temp_beside`], open.
pub(super) fn temp_file_beside(
    dest: &Path,
    kind: &str,
    files: Files,
) -> Result<tempfile::NamedTempFile, SdkError> {
    let dir = dest.parent().unwrap_or(Path::new("."));
    let name = dest.file_name().unwrap_or_default().to_string_lossy();
    crate::content::temp_builder(files)
        .prefix(&format!("{kind}{name}-"))
        .rand_bytes(crate::content::TEMP_RANDOM_CHARS)
        .tempfile_in(dir)
        .map_err(|e| SdkError::io("creating a temporary file in", dir, e))
}

/// Removes from `dir` the temporary files that pulls of the SDK tarball `stem` (named
/// `{stem}.tar.gz` while it downloads) left when their process died (a temporary file is
/// otherwise removed when its pull ends); returns how many. Only while no other pull of that
/// tarball into `dir` runs: the caller holds its turn (a pull) or its lock (an install).
pub(crate) fn remove_stale_temp_files(dir: &Path, stem: &str) -> usize {
    let mut removed = 0;
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let stale = is_temp_of(&entry.file_name().to_string_lossy(), stem);
        if stale && std::fs::remove_file(entry.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

/// Whether the file named `name` is a temporary file that a pull of the tarball `stem` makes
/// beside it: one of its own ([`temp_beside`]), or a download's staging file, for the
/// tarball, a sidecar, or for such a file (the layer of the MCR layout is downloaded to a
/// temporary file of the pull, and staged beside that when the cache cannot take it).
pub(super) fn is_temp_of(name: &str, stem: &str) -> bool {
    let own = [LAYER_TEMP, MEMBER_TEMP, NEW_TEMP].iter().find_map(|kind| {
        let (file, random) = name.strip_prefix(kind)?.rsplit_once('-')?;
        crate::content::is_temp_random(random).then_some(file)
    });
    let Some(file) = own.or_else(|| crate::content::staged_for(name)) else {
        return false;
    };
    // Downloads land under the gzip name; a sidecar is written beside the tarball as named
    // for what it holds.
    let ours = file.strip_prefix(stem).is_some_and(|extension| {
        extension == TARBALL_EXTENSIONS[0]
            || TARBALL_EXTENSIONS
                .iter()
                .any(|tarball| extension.strip_prefix(tarball) == Some(SIDECAR_SUFFIX))
    });
    ours || is_temp_of(file, stem)
}

/// The extensions a pulled tarball is named with, by what it holds: the first, the one
/// `sdk pull` promises, for gzip; zstd and plain tars are named for what they are, so that
/// a person or a script can tell how to read them (`tar -xzf` fails on zstd).
pub(super) const TARBALL_EXTENSIONS: [&str; 3] = [".tar.gz", ".tar.zst", ".tar"];

/// `{platform}-{os}-{version}`, the tarball's name without its extension.
pub(crate) fn tarball_stem(resolved: &Resolved) -> String {
    format!("{}-{}-{}", resolved.platform, resolved.os, resolved.version)
}

/// The name without its extension under which installs cache `resolved`'s tarball:
/// [`tarball_stem`], and for a .NET image whose tag names a runtime, that runtime too
/// (`dotnet-bookworm-8.0.100_8.0.1`). One SDK version ships with several runtimes, each its
/// own image: under the SDK version's name alone, installs of two runtimes would replace
/// each other's tarball (and its sidecar), each downloading again. The tag is what tells
/// the images apart; one that names no runtime keeps the plain name.
pub(crate) fn cache_stem(resolved: &Resolved) -> String {
    match resolved.runtime() {
        Some(runtime) => format!("{}_{runtime}", tarball_stem(resolved)),
        None => tarball_stem(resolved),
    }
}

/// The sidecar of the tarball at `tarball`.
pub(super) fn sidecar_of(tarball: &Path) -> PathBuf {
    let mut name = tarball.file_name().unwrap_or_default().to_os_string();
    name.push(SIDECAR_SUFFIX);
    tarball.with_file_name(name)
}

/// Gives the verified tarball at `path` (where downloads land: the gzip name) the name its
/// first bytes call for, and removes what earlier pulls left under the other names (their
/// sidecars are already gone). Returns where the tarball now is.
pub(super) fn place_by_content(path: &Path, stem: &str) -> Result<PathBuf, SdkError> {
    use std::io::Read;
    let mut prefix = Vec::with_capacity(512);
    std::fs::File::open(path)
        .and_then(|file| file.take(512).read_to_end(&mut prefix))
        .map_err(|e| SdkError::io("reading", path, e))?;
    let extension = match Compression::detect(&prefix) {
        Compression::Zstd => TARBALL_EXTENSIONS[1],
        Compression::None if looks_like_tar(&prefix) => TARBALL_EXTENSIONS[2],
        // gzip, and an opaque file, which no extension describes better.
        _ => TARBALL_EXTENSIONS[0],
    };
    let placed = path.with_file_name(format!("{stem}{extension}"));
    if placed != path {
        std::fs::rename(path, &placed)
            .map_err(|e| SdkError::io("moving into place", &placed, e))?;
    }
    for other in TARBALL_EXTENSIONS
        .iter()
        .filter(|other| **other != extension)
    {
        remove_if_exists(&path.with_file_name(format!("{stem}{other}")))?;
    }
    Ok(placed)
}

pub(super) fn remove_if_exists(path: &Path) -> Result<(), SdkError> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(SdkError::io("removing", path, e))
        }
        _ => Ok(()),
    }
}

/// Writes a small file so that readers see the old content or the new, never half (the
/// rename is atomic). The new content is first written beside it, to
/// `.ocisdk-new-{its name}-XXXXXX`, a name [`remove_stale_temp_files`] can tell, made as
/// `files` are.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8], files: Files) -> Result<(), SdkError> {
    let temp = temp_file_beside(path, NEW_TEMP, files)?;
    write_temp_atomically(temp, path, bytes)
}

/// [`write_atomically`] of ocisdk's own file, given `mode` (whatever the umask) before
/// anything is written in it.
pub(super) fn write_atomically_with_mode(
    path: &Path,
    bytes: &[u8],
    mode: u32,
) -> Result<(), SdkError> {
    use std::os::unix::fs::PermissionsExt;
    let temp = temp_file_beside(path, NEW_TEMP, Files::Own)?;
    temp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(|e| SdkError::io("setting the mode of", temp.path(), e))?;
    write_temp_atomically(temp, path, bytes)
}

/// Writes `bytes` into `temp` and renames it to `path`.
fn write_temp_atomically(
    mut temp: tempfile::NamedTempFile,
    path: &Path,
    bytes: &[u8],
) -> Result<(), SdkError> {
    temp.write_all(bytes)
        .map_err(|e| SdkError::io("writing", path, e))?;
    // No fsync: these small files only vouch for a tarball. If a crash loses one, the next
    // pull finds no record and downloads again, which is safe; an fsync each costs more than
    // a small install.
    temp.persist(path)
        .map_err(|e| SdkError::io("moving into place", path, e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Only the temporary files of the tarball named go, its download's staging files
    /// included: not another version's, whose name starts the same, nor a download of
    /// another file, nor the lock file of the turn, nor anything else in the folder.
    #[test]
    fn stale_temp_files_are_those_of_their_own_tarball() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("python-bookworm-3.11.1.tar.gz");
        let other = dir.path().join("python-bookworm-3.11.10.tar.gz");
        let left =
            |of: &Path, kind: &str| temp_beside(of, kind, Files::User).unwrap().keep().unwrap();
        let layer = left(&dest, LAYER_TEMP);
        let staged = |of: &Path| {
            let name = of.file_name().unwrap().to_string_lossy();
            let path = dir.path().join(format!(".{name}.a1B2c3.part"));
            std::fs::write(&path, b"part of a download").unwrap();
            path
        };
        let mine = [
            staged(&layer),
            layer,
            left(&dest, MEMBER_TEMP),
            staged(&dest),
        ];
        let theirs = [
            left(&other, MEMBER_TEMP),
            staged(&other),
            staged(&dir.path().join("python-bookworm-3.11.1.tar.zst")),
            dir.path().join(".python-bookworm-3.11.1.tar.gz.lock"),
            dir.path().join("notes.txt"),
            dest,
        ];
        for path in &theirs[3..] {
            std::fs::write(path, b"not a temporary file of the pull").unwrap();
        }

        assert_eq!(
            remove_stale_temp_files(dir.path(), "python-bookworm-3.11.1"),
            4
        );
        assert!(mine.iter().all(|p| !p.exists()));
        assert!(theirs.iter().all(|p| p.exists()));
    }

    /// In the cache, where installs name a .NET tarball for its runtime too, the temporary
    /// files of one runtime's tarball are not those of another's, nor of the tag that names
    /// no runtime, whose stem starts the same.
    #[test]
    fn stale_temp_files_of_one_runtime_are_not_another_runtimes() {
        let dir = tempfile::tempdir().unwrap();
        let left = |name: &str| {
            let dest = dir.path().join(name);
            temp_beside(&dest, LAYER_TEMP, Files::User)
                .unwrap()
                .keep()
                .unwrap()
        };
        let mine = left("dotnet-bookworm-8.0.100_8.0.1.tar.gz");
        let theirs = [
            left("dotnet-bookworm-8.0.100_8.0.10.tar.gz"),
            left("dotnet-bookworm-8.0.100.tar.gz"),
        ];

        let stem = "dotnet-bookworm-8.0.100_8.0.1";
        assert_eq!(remove_stale_temp_files(dir.path(), stem), 1);
        assert!(!mine.exists());
        assert!(theirs.iter().all(|p| p.exists()));
        assert_eq!(
            remove_stale_temp_files(dir.path(), "dotnet-bookworm-8.0.100"),
            1
        );
        assert!(theirs[0].exists());
    }

    /// The new content of a sidecar, written beside it, is the pull's too, whatever the
    /// tarball's compression, and so is the tarball copied in from a cache on another file
    /// system; not another version's, nor the new content of another file.
    #[test]
    fn a_sidecar_being_written_and_a_copy_are_temporary_files_of_their_tarball() {
        let dir = tempfile::tempdir().unwrap();
        let new = |name: &str| {
            let path = temp_file_beside(&dir.path().join(name), NEW_TEMP, Files::User).unwrap();
            path.into_temp_path().keep().unwrap()
        };
        let copy = dir
            .path()
            .join(".ocisdk-copy-python-bookworm-3.11.1.tar.gz-a1B2c3");
        std::fs::write(&copy, b"part of the tarball").unwrap();
        let mine = [
            new("python-bookworm-3.11.1.tar.gz.manifest-digest"),
            new("python-bookworm-3.11.1.tar.zst.manifest-digest"),
            copy,
        ];
        let theirs = [
            new("python-bookworm-3.11.10.tar.gz.manifest-digest"),
            new("python-bookworm-3.11.1.tar.gz.sha256"),
            new("notes.txt"),
        ];

        assert_eq!(
            remove_stale_temp_files(dir.path(), "python-bookworm-3.11.1"),
            3
        );
        assert!(mine.iter().all(|p| !p.exists()));
        assert!(theirs.iter().all(|p| p.exists()));
    }
}
