//! Content on disk: verified blob downloads, single-layer pulls and single-file pushes.

mod chunked;
mod direct;
mod download;
mod pull;
mod push;
mod sink;
mod staging;
pub mod tap;

pub(crate) use chunked::worth_it as chunks_worth_it;
pub use chunked::MIN_CHUNK_SIZE;
pub use download::{download_blob, download_blob_tapped, Downloaded};
pub use pull::{choose_layer, pull_layer, LayerChoice, LayerInfo, Pulled};
pub(crate) use push::push_inspected;
pub use push::{layer_media_type, push_file, PushRequest, Pushed, TITLE_ANNOTATION};
pub(crate) use sink::start_writeback;
pub use sink::MAX_ACTIVE_DOWNLOADS;
pub(crate) use staging::{
    has_partial, is_temp_random, staged_for, warn_discarded_partial, TEMP_RANDOM_CHARS,
};

/// A temp-file builder whose files end up with the mode a plain `create` would give
/// (0666 less the umask), not tempfile's private 0600: downloads are renamed into place and
/// must be readable like any other file.
pub(crate) fn temp_builder<'a, 'b>() -> tempfile::Builder<'a, 'b> {
    let mut builder = tempfile::Builder::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o666));
    }
    builder
}
