//! Sample layer content: deterministic tars, gzip, pseudo-random bytes.

use std::io::{Read, Write};

use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use flate2::Compression;

use crate::sha256_hex;

/// An uncompressed tar holding `files` as `(path, content, mode)` regular files, in
/// order, with mtime 0 and uid/gid 0 (deterministic).
pub fn tar_of(files: &[(&str, &[u8], u32)]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, content, mode) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(content.len() as u64);
        header.set_mode(*mode);
        header.set_mtime(0);
        header.set_uid(0);
        header.set_gid(0);
        header.set_entry_type(tar::EntryType::Regular);
        builder
            .append_data(&mut header, path, *content)
            .unwrap_or_else(|e| panic!("tar entry {path}: {e}"));
    }
    builder.into_inner().expect("finish tar")
}

/// Builds a tar entry by entry, writing names into the header bytes so that hostile names
/// (`..`, absolute paths) get through: the tar crate's own setters refuse them. Every entry
/// has mtime 1,600,000,000.
///
/// ```
/// let tar = ocisdk_testkit::RawTar::new()
///     .dir("bin", 0o755)
///     .file("bin/tool", b"#!/bin/sh\n", 0o755)
///     .symlink("escape", "../..")
///     .finish();
/// assert_eq!(tar.len() % 512, 0);
/// ```
pub struct RawTar(tar::Builder<Vec<u8>>);

impl Default for RawTar {
    fn default() -> Self {
        Self::new()
    }
}

impl RawTar {
    /// An empty archive.
    pub fn new() -> Self {
        Self(tar::Builder::new(Vec::new()))
    }

    /// Appends an entry of any kind; `link` is the link target (empty for none).
    pub fn entry(
        mut self,
        kind: tar::EntryType,
        path: &str,
        mode: u32,
        link: &str,
        data: &[u8],
    ) -> Self {
        let mut header = tar::Header::new_gnu();
        let old = header.as_old_mut();
        assert!(path.len() <= old.name.len(), "tar name too long: {path}");
        assert!(link.len() <= old.linkname.len(), "link too long: {link}");
        old.name[..path.len()].copy_from_slice(path.as_bytes());
        old.linkname[..link.len()].copy_from_slice(link.as_bytes());
        header.set_entry_type(kind);
        header.set_mode(mode);
        header.set_size(data.len() as u64);
        header.set_mtime(1_600_000_000);
        header.set_cksum();
        self.0.append(&header, data).expect("tar into Vec");
        self
    }

    /// A PAX extended header: `records` (key, value) apply to the entry appended next.
    pub fn pax(mut self, records: &[(&str, &[u8])]) -> Self {
        let records = records.iter().map(|(key, value)| (*key, *value));
        self.0.append_pax_extensions(records).expect("tar into Vec");
        self
    }

    /// A regular file.
    pub fn file(self, path: &str, data: &[u8], mode: u32) -> Self {
        self.entry(tar::EntryType::Regular, path, mode, "", data)
    }

    /// A folder.
    pub fn dir(self, path: &str, mode: u32) -> Self {
        self.entry(tar::EntryType::Directory, path, mode, "", b"")
    }

    /// A sparse file in the old GNU format (type `S`, what `tar --format=gnu -S` writes):
    /// `data` stored as its one fragment, at offset 0, then a hole of `hole` bytes (zeros
    /// when read), which the map ends with as GNU tar ends it, by an empty fragment at the
    /// file's size.
    pub fn gnu_sparse(mut self, path: &str, data: &[u8], hole: u64, mode: u32) -> Self {
        fn octal(field: &mut [u8; 12], value: u64) {
            field.copy_from_slice(format!("{value:011o}\0").as_bytes());
        }
        let mut header = tar::Header::new_gnu();
        let old = header.as_old_mut();
        assert!(path.len() <= old.name.len(), "tar name too long: {path}");
        old.name[..path.len()].copy_from_slice(path.as_bytes());
        header.set_entry_type(tar::EntryType::GNUSparse);
        header.set_mode(mode);
        header.set_size(data.len() as u64); // the stored bytes, not the file's size
        header.set_mtime(1_600_000_000);
        let len = data.len() as u64;
        let gnu = header.as_gnu_mut().expect("a GNU header");
        octal(&mut gnu.sparse[0].offset, 0);
        octal(&mut gnu.sparse[0].numbytes, len);
        if hole > 0 {
            octal(&mut gnu.sparse[1].offset, len + hole);
            octal(&mut gnu.sparse[1].numbytes, 0);
        }
        octal(&mut gnu.realsize, len + hole);
        header.set_cksum();
        self.0.append(&header, data).expect("tar into Vec");
        self
    }

    /// A symbolic link to `target`.
    pub fn symlink(self, path: &str, target: &str) -> Self {
        self.entry(tar::EntryType::Symlink, path, 0o777, target, b"")
    }

    /// A hard link to `target`.
    pub fn hardlink(self, path: &str, target: &str) -> Self {
        self.entry(tar::EntryType::Link, path, 0o777, target, b"")
    }

    /// The archive's bytes.
    pub fn finish(self) -> Vec<u8> {
        self.0.into_inner().expect("finish tar")
    }

    /// The archive, gzip'd.
    pub fn tar_gz(self) -> Vec<u8> {
        gzip(&self.finish())
    }

    /// The archive, zstd-compressed (level 3).
    pub fn tar_zst(self) -> Vec<u8> {
        zstd::encode_all(&self.finish()[..], 3).expect("zstd into Vec")
    }
}

/// `gzip(tar_of(files))`, deterministic (gzip header mtime 0).
pub fn tar_gz_of(files: &[(&str, &[u8], u32)]) -> Vec<u8> {
    gzip(&tar_of(files))
}

/// A gzip'd filesystem layer holding the single file `name` (mode 0644): the shape of an
/// image built `FROM scratch` + `COPY name /`.
pub fn fs_layer_holding(name: &str, bytes: &[u8]) -> Vec<u8> {
    tar_gz_of(&[(name, bytes, 0o644)])
}

/// gzip-compresses `bytes` (default level, header mtime 0).
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::default());
    enc.write_all(bytes).expect("gzip into Vec");
    enc.finish().expect("gzip into Vec")
}

/// `len` deterministic, incompressible-looking bytes derived from `seed` (SplitMix64).
pub fn pseudo_random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        out.extend_from_slice(&z.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Hex sha256 of the uncompressed content of a gzip'd blob.
pub fn gunzip_sha256_hex(gz: &[u8]) -> String {
    let mut raw = Vec::new();
    GzDecoder::new(gz)
        .read_to_end(&mut raw)
        .expect("valid gzip");
    sha256_hex(&raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pseudo_random_bytes_are_deterministic_and_seeded() {
        assert_eq!(pseudo_random_bytes(100, 1), pseudo_random_bytes(100, 1));
        assert_ne!(pseudo_random_bytes(100, 1), pseudo_random_bytes(100, 2));
        assert_eq!(pseudo_random_bytes(13, 7).len(), 13);
    }

    /// The tar crate, which applies an old GNU sparse map, reads the file back whole.
    #[test]
    fn gnu_sparse_reads_back_as_its_data_then_the_hole() {
        for hole in [0, 1000] {
            let tar = RawTar::new().gnu_sparse("f", b"data", hole, 0o644).finish();
            let mut archive = tar::Archive::new(&tar[..]);
            let mut entries = archive.entries().unwrap();
            let mut entry = entries.next().unwrap().unwrap();
            assert_eq!(entry.header().entry_type(), tar::EntryType::GNUSparse);
            let mut content = Vec::new();
            entry.read_to_end(&mut content).unwrap();
            let mut expected = b"data".to_vec();
            expected.resize(4 + hole as usize, 0);
            assert_eq!(content, expected, "hole {hole}");
            drop(entry);
            assert!(entries.next().is_none());
        }
    }

    #[test]
    fn tar_gz_round_trips() {
        let gz = tar_gz_of(&[
            ("a.txt", b"hello", 0o600),
            ("bin/run", b"#!/bin/sh\n", 0o755),
        ]);
        assert_eq!(
            gz,
            tar_gz_of(&[
                ("a.txt", b"hello", 0o600),
                ("bin/run", b"#!/bin/sh\n", 0o755)
            ])
        );
        let mut archive = tar::Archive::new(GzDecoder::new(&gz[..]));
        let mut seen = Vec::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let path = entry.path().unwrap().display().to_string();
            let mode = entry.header().mode().unwrap();
            let mut content = Vec::new();
            entry.read_to_end(&mut content).unwrap();
            seen.push((path, content, mode));
        }
        assert_eq!(
            seen,
            vec![
                ("a.txt".to_string(), b"hello".to_vec(), 0o600),
                ("bin/run".to_string(), b"#!/bin/sh\n".to_vec(), 0o755)
            ]
        );
    }
}
