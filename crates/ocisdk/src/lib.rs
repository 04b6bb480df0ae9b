//! ocisdk: discover, verify, install and publish SDK tarballs (and any single-file artifact)
//! kept as images in an OCI registry, over plain HTTP(S).
//!
//! Start with [`Client`] for registry operations and [`download_blob`] for verified
//! downloads.

pub mod auth;
pub mod cache;
pub mod content;
pub mod copy;
pub mod digest;
pub mod error;
pub mod extract;
pub mod layout;
mod lock_file;
pub mod progress;
mod readahead;
pub mod reference;
pub mod registry;
pub mod sdk;
mod serde_path;
pub mod spec;
pub mod transport;
mod trust;

pub use auth::{Credential, CredentialChain, CredentialSource, Secret, StaticCredentials};
pub use content::{
    download_blob, pull_layer, push_file, Downloaded, LayerChoice, Pulled, PushRequest, Pushed,
};
pub use digest::{Algorithm, Digest, DigestError};
pub use error::{Error, ErrorKind, Location, Result};
pub use progress::{NoProgress, Reporter};
pub use reference::{Reference, ReferenceError, Repository};
pub use registry::{Client, ClientBuilder};
pub use spec::{ImageConfig, Manifest, ManifestDocument, Platform};
pub use transport::{RegistryOptions, TransportOptions};

// The README's library example runs as a doctest (`cargo test --doc -p ocisdk`), so that it
// cannot drift from the API; only its `rust` blocks are compiled. Under `cfg(doctest)`
// alone: a packaged crate has no README two folders up.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct ReadmeDoctests;
