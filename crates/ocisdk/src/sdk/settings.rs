//! Where the catalogue lives and where SDKs go. The library takes these as values; only the
//! CLI reads flags and the environment.

use std::path::PathBuf;

/// Default registry: Microsoft's, where Oryx publishes its SDK images.
pub const DEFAULT_REGISTRY: &str = "https://mcr.microsoft.com";
/// Default repository prefix (MCR layout).
pub const DEFAULT_PREFIX: &str = "oryx";
/// Default repository template (MCR layout); `{prefix}/{platform}` is the ACR layout.
pub const DEFAULT_REPO_TEMPLATE: &str = "{prefix}/{platform}-sdk";
/// Default OS flavour.
pub const DEFAULT_OS: &str = "bookworm";
/// Default install root (Oryx's dynamic install folder).
pub const DEFAULT_ROOT: &str = "/tmp/oryx/platforms";

/// The catalogue's settings.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CatalogueSettings {
    /// Registry URL (`https://mcr.microsoft.com`, `http://localhost:5000`) or bare host. The
    /// client is what reaches it: [`Catalogue::new`](crate::sdk::Catalogue::new) says how to
    /// build one for an `http://` URL.
    pub registry: String,
    /// Repository prefix, substituted for `{prefix}`.
    pub prefix: String,
    /// Repository template with `{prefix}` and `{platform}`.
    pub repo_template: String,
    /// OS flavour, the first part of every tag (`bookworm-3.11.0`).
    pub os: String,
    /// Install root: SDKs go to `{root}/{platform}/{version}`. It and the folders above it
    /// must be the running user's or root's, writable by no one else
    /// ([`Catalogue::check_root`](crate::sdk::Catalogue::check_root)).
    pub root: PathBuf,
    /// Where downloaded tarballs are kept between installs.
    pub cache_dir: PathBuf,
    /// Folders declared safe, as git's `safe.directory` declares repositories: an install
    /// root or cache folder at or below one of them is used without checking who owns and
    /// may write it and the folders above it. For a container that runs as root in a
    /// workspace (and `HOME`) that belong to the host's user; empty by default.
    pub safe_folders: Vec<PathBuf>,
}

impl CatalogueSettings {
    /// Settings with the default prefix, template and OS flavour.
    pub fn new(
        registry: impl Into<String>,
        root: impl Into<PathBuf>,
        cache_dir: impl Into<PathBuf>,
    ) -> Self {
        CatalogueSettings {
            registry: registry.into(),
            prefix: DEFAULT_PREFIX.into(),
            repo_template: DEFAULT_REPO_TEMPLATE.into(),
            os: DEFAULT_OS.into(),
            root: root.into(),
            cache_dir: cache_dir.into(),
            safe_folders: Vec::new(),
        }
    }

    /// The registry host, without scheme or trailing slash.
    pub fn registry_host(&self) -> &str {
        let r = self.registry.trim_end_matches('/');
        r.strip_prefix("https://")
            .or_else(|| r.strip_prefix("http://"))
            .unwrap_or(r)
    }

    /// The registry's `host[:port]`, without the path a registry URL may carry.
    pub fn registry_authority(&self) -> &str {
        let host = self.registry_host();
        host.split_once('/')
            .map_or(host, |(authority, _)| authority)
    }

    /// Whether the registry URL asks for plain HTTP (`http://…`).
    pub fn wants_plain_http(&self) -> bool {
        self.registry.starts_with("http://")
    }

    /// The repository path for a platform, e.g. `oryx/python-sdk`.
    pub fn repository_path(&self, platform: &str) -> String {
        self.repo_template
            .replace("{prefix}", &self.prefix)
            .replace("{platform}", platform)
            .trim_matches('/')
            .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_layouts_name_repositories() {
        let mut s = CatalogueSettings::new("https://mcr.microsoft.com/", "/r", "/c");
        assert_eq!(s.registry_host(), "mcr.microsoft.com");
        assert_eq!(s.registry_authority(), "mcr.microsoft.com");
        let with_path = CatalogueSettings::new("http://10.0.0.1:5000/team/", "/r", "/c");
        assert_eq!(with_path.registry_authority(), "10.0.0.1:5000");
        assert!(!s.wants_plain_http());
        assert_eq!(s.repository_path("python"), "oryx/python-sdk");
        s.prefix = "sdks".into();
        s.repo_template = "{prefix}/{platform}".into();
        assert_eq!(s.repository_path("nodejs"), "sdks/nodejs");
        let s = CatalogueSettings::new("http://127.0.0.1:5000", "/r", "/c");
        assert_eq!(s.registry_host(), "127.0.0.1:5000");
        assert!(s.wants_plain_http());
    }
}
