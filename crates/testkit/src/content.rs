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
