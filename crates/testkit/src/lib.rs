//! Test support for ocisdk.
//!
//! Everything here is synchronous and built on `std` (plus a few small crates), so it
//! can be used from plain `#[test]`s as well as from async tests.
//!
//! * [`Registry`] — a real CNCF distribution registry (`docker-registry serve`) on a free
//!   loopback port with throw-away storage, killed on drop.
//! * [`OciLayout`] / [`ImageBuilder`] — write OCI image layouts (images and multi-platform
//!   indexes) from Rust; [`content`] makes sample layers ([`tar_gz_of`],
//!   [`fs_layer_holding`], [`pseudo_random_bytes`]).
//! * [`skopeo`] — hermetic wrappers around `skopeo copy` / `skopeo inspect` to push
//!   layouts to a registry and read back what is stored there.
//! * [`ScriptedServer`] — a hand-written HTTP/1.1 server whose responses are scripted by
//!   the test, able to inject faults (truncated bodies, stalls, dropped connections) and
//!   to forward requests to a real upstream ([`forward`]).
//! * [`Relay`] — a TCP relay that passes request bodies on while they are sent, and
//!   counts them, so a test knows an upload is under way at the server behind it.
//! * [`TokenServer`] — a token server issuing signed JWTs, for a real registry run with
//!   `auth: token`.
//! * [`http`] — a minimal blocking HTTP/1.1 client used by all of the above.
//! * Small utilities: [`free_port`], [`sha256_hex`], [`digest_of`], [`corrupt_blob`].
//!
//! Helpers panic with a descriptive message (with `#[track_caller]`) instead of returning
//! errors where a failure can only mean a broken test environment.

use std::net::TcpListener;
use std::path::Path;

use sha2::{Digest, Sha256};

pub mod cli;
pub mod content;
pub mod http;
pub mod layout;
pub mod raw;
pub mod registry;
pub mod relay;
pub mod scripted;
pub mod skopeo;
pub mod token;

pub use content::{
    fs_layer_holding, gunzip_sha256_hex, gzip, pseudo_random_bytes, tar_gz_of, tar_of, RawTar,
};
pub use layout::{media_types, ImageBuilder, ImageInfo, IndexInfo, OciLayout, Platform};
pub use registry::{Registry, RegistryBuilder};
pub use relay::{Relay, SentBytes};
pub use scripted::{
    forward, forward_cut, RecordedRequest, Release, ScriptedResponse, ScriptedServer,
};
pub use skopeo::Format;
pub use token::{TokenServer, TokenServerBuilder};

/// Returns a TCP port on 127.0.0.1 that was free a moment ago.
///
/// The port is found by binding `127.0.0.1:0` and dropping the listener, so another
/// process may grab it before the caller binds it; callers that start servers on it
/// should be ready to retry (as [`Registry::start`] does).
#[track_caller]
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local_addr").port()
}

/// An IPv4 address of this machine that is not loopback, from the kernel's local routes
/// (`/proc/net/fib_trie`); `None` when it has none (or is not Linux).
pub fn non_loopback_ipv4() -> Option<std::net::Ipv4Addr> {
    let trie = std::fs::read_to_string("/proc/net/fib_trie").ok()?;
    let mut last: Option<std::net::Ipv4Addr> = None;
    for line in trie.lines() {
        let line = line.trim();
        if let Some(address) = line.strip_prefix("|-- ") {
            last = address.parse().ok();
        } else if line.starts_with("/32 host LOCAL") {
            if let Some(ip) = last.filter(|ip| !ip.is_loopback()) {
                return Some(ip);
            }
        }
    }
    None
}

/// Lower-case hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// OCI digest (`sha256:<hex>`) of `bytes`.
pub fn digest_of(bytes: &[u8]) -> String {
    format!("sha256:{}", sha256_hex(bytes))
}

/// The names in a folder, sorted (empty when it does not exist).
pub fn list_dir(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// The files and folders under `dir`, itself included, that group or others may write, as
/// `PATH MODE` (octal): a cache folder whose files another user could change.
pub fn writable_by_others(dir: &Path) -> Vec<String> {
    use std::os::unix::fs::MetadataExt;
    let mut found = Vec::new();
    let meta = std::fs::symlink_metadata(dir).unwrap();
    if meta.mode() & 0o022 != 0 && !meta.file_type().is_symlink() {
        found.push(format!("{} {:04o}", dir.display(), meta.mode() & 0o7777));
    }
    if meta.is_dir() {
        for entry in std::fs::read_dir(dir).unwrap() {
            found.extend(writable_by_others(&entry.unwrap().path()));
        }
    }
    found
}

/// `assert_eq!` for large byte strings, without printing megabytes on failure: their sizes
/// and digests.
#[track_caller]
pub fn assert_same_bytes(actual: &[u8], expected: &[u8], what: &str) {
    assert!(
        actual == expected,
        "{what}: got {} bytes with digest {}, expected {} bytes with digest {}",
        actual.len(),
        digest_of(actual),
        expected.len(),
        digest_of(expected)
    );
}

/// Flips one byte (the middle one) of the blob `digest` as stored by `registry`, keeping
/// its length, so the registry serves content that no longer matches its digest.
///
/// Panics if the blob is not stored or is empty.
#[track_caller]
pub fn corrupt_blob(registry: &Registry, digest: &str) {
    corrupt_file(&registry.blob_data_path(digest));
}

/// Flips the middle byte of the file at `path` (same length). Panics if it is missing or
/// empty.
#[track_caller]
pub fn corrupt_file(path: &Path) {
    let mut data = std::fs::read(path)
        .unwrap_or_else(|e| panic!("corrupt_file: cannot read {}: {e}", path.display()));
    assert!(
        !data.is_empty(),
        "corrupt_file: {} is empty, nothing to corrupt",
        path.display()
    );
    let i = data.len() / 2;
    data[i] ^= 0xff;
    std::fs::write(path, &data)
        .unwrap_or_else(|e| panic!("corrupt_file: cannot write {}: {e}", path.display()));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_of_empty_is_the_well_known_value() {
        assert_eq!(
            digest_of(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn corrupt_file_flips_one_byte_and_keeps_length() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"abcdef").unwrap();
        corrupt_file(&path);
        let after = std::fs::read(&path).unwrap();
        assert_eq!(after.len(), 6);
        let diffs = after.iter().zip(b"abcdef").filter(|(a, b)| a != b).count();
        assert_eq!(diffs, 1);
    }

    #[test]
    fn free_port_is_bindable() {
        let port = free_port();
        assert_ne!(port, 0);
        TcpListener::bind(("127.0.0.1", port)).expect("port should still be free");
    }
}
