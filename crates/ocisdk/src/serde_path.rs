//! Paths in serialized output (`--json`): as text, lossily. serde's own `Path` impl refuses a
//! path that is not UTF-8, which would fail the whole document (and a `json!` built from it
//! panics) for one odd file name; a replacement character there is the lesser harm.

use std::path::Path;

/// `#[serde(serialize_with = "crate::serde_path::lossy")]` for a path field.
pub(crate) fn lossy<S: serde::Serializer>(path: &Path, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&path.to_string_lossy())
}

#[cfg(test)]
mod tests {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    use std::path::PathBuf;

    #[derive(serde::Serialize)]
    struct Holder {
        #[serde(serialize_with = "super::lossy")]
        path: PathBuf,
    }

    #[test]
    fn a_path_that_is_not_utf8_serializes_lossily() {
        let path = PathBuf::from(OsStr::from_bytes(b"/tmp/p\xff.tgz"));
        let json = serde_json::to_value(Holder { path }).unwrap();
        assert_eq!(json["path"], "/tmp/p\u{fffd}.tgz");
    }
}
