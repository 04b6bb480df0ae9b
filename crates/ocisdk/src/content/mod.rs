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

/// Whose the files a download or pull creates are, which decides the mode they are made with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Files {
    /// The user's: a destination they named (`blob -o FILE`, `sdk pull -o DIR`). Made as a
    /// plain `create` makes a file, 0666 less the umask, as curl makes its output: the
    /// user's umask is theirs to choose there.
    #[default]
    User,
    /// ocisdk's own, in its cache folder (or staged beside an install): at most
    /// [`OWN_FILE_MODE`] whatever the umask.
    Own,
}

/// The mode of the files ocisdk makes in its cache folder (partial downloads, cached
/// tarballs, their sidecars and temporary files), of which the umask can only take bits
/// away. Under umask 0, common in containers and CI, a plain `create` makes them 0666: then
/// another user could change a cached tarball or a partial download (the next install
/// downloads again, or fails) or write into a file about to be renamed into place.
pub(crate) const OWN_FILE_MODE: u32 = 0o644;

impl Files {
    /// The mode a file of this kind is created with (less the umask).
    pub(crate) fn create_mode(self) -> u32 {
        match self {
            Files::User => 0o666,
            Files::Own => OWN_FILE_MODE,
        }
    }
}

/// A temp-file builder whose files end up with the mode `files` calls for (less the umask),
/// not tempfile's private 0600: downloads are renamed into place and must be readable like
/// any other file.
pub(crate) fn temp_builder<'a, 'b>(files: Files) -> tempfile::Builder<'a, 'b> {
    let mut builder = tempfile::Builder::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(files.create_mode()));
    }
    builder
}

/// The mode a plain `create` gives a file now, 0666 less the process's umask, read from
/// `/proc/self/status` (setting the umask to read it would race other threads' creates);
/// `None` where the kernel does not say.
pub(crate) fn user_file_mode() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let umask = status
        .lines()
        .find_map(|line| line.strip_prefix("Umask:"))?
        .trim();
    u32::from_str_radix(umask, 8)
        .ok()
        .map(|umask| 0o666 & !umask)
}
