//! What is installed under the root: listing it, and removing installs.

use std::path::{Path, PathBuf};

use crate::sdk::catalogue::Catalogue;
use crate::sdk::error::SdkError;
use crate::sdk::install::{is_folder_name, remove_leftovers, InstalledSdk};
use crate::sdk::overlap::join;
use crate::sdk::record::InstallRecord;
use crate::sdk::version::{SdkVersion, TagVersion, VersionSpec};

/// An SDK removed by [`Catalogue::uninstall`].
#[derive(Debug, Clone, serde::Serialize)]
pub struct UninstalledSdk {
    /// The platform, e.g. `python`.
    pub platform: String,
    /// The version (the folder name).
    pub version: String,
    /// The folder it was installed in, now gone.
    #[serde(serialize_with = "crate::serde_path::lossy")]
    pub path: PathBuf,
}

impl Catalogue {
    /// Removes installed versions of `platform`: folders `{root}/{platform}/{version}` holding
    /// the sentinel, as [`Catalogue::list_installed`] shows them, or for .NET
    /// `{sdk}_{runtime}` (`8.0.100_8.0.0`) as `sdk versions` lists it, which names the folder
    /// of its SDK version when the install there came from that runtime's image (or has no
    /// record to say). Nothing is removed unless every one is installed. Each waits for a
    /// running install of the same version, then disappears in one rename, so that it is
    /// never seen half removed.
    ///
    /// ```no_run
    /// # async fn demo(catalogue: ocisdk::sdk::Catalogue) -> Result<(), ocisdk::sdk::SdkError> {
    /// for gone in catalogue.uninstall("python", &["3.11.4".to_string()]).await? {
    ///     println!("removed {}", gone.path.display());
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn uninstall(
        &self,
        platform: &str,
        versions: &[String],
    ) -> Result<Vec<UninstalledSdk>, SdkError> {
        // Names become path components under the root: one folder name each, never `..`.
        let names = std::iter::once(platform).chain(versions.iter().map(String::as_str));
        if let Some(bad) = names.into_iter().find(|name| !is_folder_name(name)) {
            return Err(SdkError::InvalidSetting(format!(
                "\"{bad}\" is not a platform or version: expected one folder name"
            )));
        }
        let mut missing: Vec<&str> = Vec::new();
        for version in versions {
            let (folder, runtime) = folder_and_runtime(version);
            if !self.is_installed_from(platform, &folder, runtime.as_ref())? {
                missing.push(version);
            }
        }
        if !missing.is_empty() {
            return Err(SdkError::NotInstalled {
                platform: platform.to_string(),
                versions: missing.join(", "),
                root: self.settings.root.clone(),
                nearest: self.nearest_installed(platform, &missing),
            });
        }
        let mut removed = Vec::new();
        for version in versions {
            let (version, runtime) = folder_and_runtime(version);
            let target = self.install_path(platform, &version);
            let platform_dir = self.settings.root.join(platform);
            let lock = self
                .lock(&platform_dir.join(format!(".{version}.lock")))
                .await?;
            if lock.is_some() {
                remove_leftovers(&target).await?;
            }
            // Removed (or replaced) meanwhile by another process, or named twice.
            if !self.is_installed_from(platform, &version, runtime.as_ref())? {
                continue;
            }
            let folder = target.clone();
            join(tokio::task::spawn_blocking(move || {
                crate::extract::retire(&folder)
            }))
            .await??;
            removed.push(UninstalledSdk {
                platform: platform.to_string(),
                version,
                path: target,
            });
        }
        Ok(removed)
    }

    /// The installed versions of `platform` that each of `missing` matches as a version spec
    /// (one installed as 3.11.10 is what `3.11` most likely meant: uninstall takes folder
    /// names, not specs), else the nearest ones, as a spec no version matches names them for
    /// install. Folder names that are no version cannot be compared and are left out; a
    /// root that cannot be read gives no suggestion rather than hide the error it is for.
    fn nearest_installed(&self, platform: &str, missing: &[&str]) -> Vec<String> {
        let listed = self.list_installed().unwrap_or_default();
        let installed: Vec<SdkVersion> = listed
            .iter()
            .filter(|sdk| sdk.platform == platform)
            .filter_map(|sdk| SdkVersion::parse(&sdk.version).ok())
            .collect();
        let mut nearest: Vec<&SdkVersion> = Vec::new();
        let mut named_runtime = false;
        for spec in missing.iter().filter_map(|m| VersionSpec::parse(m).ok()) {
            named_runtime |= spec.runtime().is_some();
            let matching: Vec<&SdkVersion> = installed.iter().filter(|v| spec.matches(v)).collect();
            if matching.is_empty() {
                nearest.extend(spec.nearest(&installed, 3));
            } else {
                nearest.extend(matching);
            }
        }
        nearest.sort();
        nearest.dedup();
        // One who named a .NET runtime is told the runtime installed: `8.0.100` alone would
        // read as the very SDK they asked to remove.
        let runtime_of = |version: &SdkVersion| {
            listed
                .iter()
                .find(|sdk| sdk.platform == platform && sdk.version == version.as_str())
                .and_then(|sdk| sdk.runtime.clone().flatten())
                .filter(|_| named_runtime)
        };
        nearest
            .into_iter()
            .map(|version| match runtime_of(version) {
                Some(runtime) => format!("{version}_{runtime}"),
                None => version.to_string(),
            })
            .collect()
    }

    /// The SDKs installed under the root: folders `{platform}/{version}` holding the sentinel.
    /// A root, platform or version folder another user could change fails the listing
    /// ([`SdkError::UntrustedRoot`], see [`Catalogue::check_root`]).
    pub fn list_installed(&self) -> Result<Vec<InstalledSdk>, SdkError> {
        let root = &self.settings.root;
        let mut found = Vec::new();
        if self.trusted_root(false)?.is_none() {
            return Ok(found);
        }
        for platform in read_dir_names(root)? {
            self.trusted_folder(Path::new(&platform), false)?;
            for version in read_dir_names(&root.join(&platform))? {
                let path = root.join(&platform).join(&version);
                if self.is_installed(&platform, &version)? {
                    let record = InstallRecord::read(&path);
                    found.push(InstalledSdk {
                        platform: platform.clone(),
                        version,
                        path,
                        cached: true,
                        manifest_digest: record.as_ref().and_then(InstallRecord::digest),
                        runtime: record.map(|record| record.runtime),
                    });
                }
            }
        }
        found.sort_by(|a, b| {
            let va = SdkVersion::parse(&a.version).ok();
            let vb = SdkVersion::parse(&b.version).ok();
            a.platform
                .cmp(&b.platform)
                .then(va.cmp(&vb))
                .then(a.version.cmp(&b.version))
        });
        Ok(found)
    }
}

/// The install folder a version given to [`Catalogue::uninstall`] names, and the .NET runtime
/// it names too: `8.0.100_8.0.0` is the folder `8.0.100` installed from runtime 8.0.0.
fn folder_and_runtime(version: &str) -> (String, Option<SdkVersion>) {
    match TagVersion::parse(version) {
        Ok(TagVersion {
            version,
            runtime: Some(runtime),
        }) => (version.to_string(), Some(runtime)),
        _ => (version.to_owned(), None),
    }
}

/// Names of the visible sub-folders of `dir` (none when it does not exist).
fn read_dir_names(dir: &Path) -> Result<Vec<String>, SdkError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(SdkError::io("listing", dir, e)),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| SdkError::io("listing", dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with('.') && entry.file_type().is_ok_and(|t| t.is_dir()) {
            names.push(name);
        }
    }
    Ok(names)
}
