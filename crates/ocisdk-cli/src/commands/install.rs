//! `sdk install` of one or many SDKs, and `sdk sync FILE`: installs run concurrently, at most
//! `--jobs` at a time; one failure does not stop the others.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use futures_util::stream::{self, StreamExt};
use ocisdk::sdk::{
    Catalogue, CatalogueSettings, InstalledSdk, Resolved, SdkError, SdkVersion, VersionError,
    VersionSpec,
};
use ocisdk::{Error, Reporter};
use serde_json::json;

use crate::cli::GlobalArgs;
use crate::output;

/// How `install_all` behaves.
pub(crate) struct InstallOptions {
    pub(crate) pre: bool,
    pub(crate) force: bool,
    pub(crate) jobs: usize,
    /// One spec given: `--json` prints an object, not an array.
    pub(crate) single: bool,
}

/// Reads "PLATFORM SPEC" lines; `#` starts a comment, blank lines are skipped.
pub(crate) fn read_list(file: &Path) -> anyhow::Result<Vec<(String, String)>> {
    let mut text = String::new();
    if file == Path::new("-") {
        std::io::stdin().read_to_string(&mut text)?;
    } else {
        text = std::fs::read_to_string(file)
            .map_err(|e| Error::InvalidInput(format!("cannot read {}: {e}", file.display())))?;
    }
    let mut wanted = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or_default().trim();
        if line.is_empty() {
            continue;
        }
        let mut words = line.split_whitespace();
        match (words.next(), words.next(), words.next()) {
            (Some(platform), Some(spec), None) => {
                wanted.push((platform.to_string(), spec.to_string()))
            }
            _ => {
                return Err(Error::InvalidInput(format!(
                    "{}:{}: expected \"PLATFORM SPEC\", got \"{line}\"",
                    file.display(),
                    number + 1
                ))
                .into())
            }
        }
    }
    Ok(wanted)
}

/// Installs every (platform, spec), resolving each platform's specs with one tag listing.
pub(crate) async fn install_all(
    g: &GlobalArgs,
    catalogue: &Catalogue,
    wanted: Vec<(String, String)>,
    options: InstallOptions,
    reporter: &dyn Reporter,
) -> anyhow::Result<()> {
    // A root another user could change fails the command once, before any request, rather
    // than each install; `install` checks it again as it makes what is missing.
    catalogue.check_root()?;
    // A spec that does not parse fails its own line; the others go on.
    let specs: Vec<(String, Result<VersionSpec, VersionError>)> = wanted
        .iter()
        .map(|(platform, text)| (platform.clone(), VersionSpec::parse(text)))
        .collect();
    // An exact version already installed needs no registry at all.
    let installed = if options.force {
        Vec::new()
    } else {
        catalogue.list_installed()?
    };
    let mut results: Vec<Option<Result<InstalledSdk, Shared>>> = Vec::new();
    for (platform, spec) in &specs {
        results.push(match spec {
            Err(e) => Some(Err(Shared::from(SdkError::from(e.clone())))),
            Ok(spec) => already_installed(&installed, platform, spec).map(Ok),
        });
    }

    let mut by_platform: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, (platform, _)) in specs.iter().enumerate() {
        if results[i].is_none() {
            by_platform.entry(platform.as_str()).or_default().push(i);
        }
    }
    // Specs that resolve to the same version share one install.
    let mut jobs: BTreeMap<(String, String), (Vec<usize>, Resolved)> = BTreeMap::new();
    for (platform, indexes) in by_platform {
        // Only specs that parsed are left without a result.
        let platform_specs: Vec<VersionSpec> = indexes
            .iter()
            .filter_map(|&i| specs[i].1.clone().ok())
            .collect();
        let resolved = match catalogue
            .resolve_all(platform, &platform_specs, options.pre)
            .await
        {
            Ok(resolved) => resolved,
            Err(e) => {
                // The platform cannot be listed (a typo, a registry refusing it): each of its
                // specs fails with that, and the other platforms are still installed.
                let e = Shared::from(e);
                for &i in &indexes {
                    results[i] = Some(Err(e.clone()));
                }
                continue;
            }
        };
        for (i, r) in indexes.into_iter().zip(resolved) {
            match r {
                Ok(resolved) => {
                    let key = (resolved.platform.clone(), resolved.version.to_string());
                    jobs.entry(key)
                        .or_insert_with(|| (Vec::new(), resolved))
                        .0
                        .push(i);
                }
                Err(e) => results[i] = Some(Err(Shared::from(e))),
            }
        }
    }

    let force = options.force;
    let done: Vec<(Vec<usize>, Result<InstalledSdk, SdkError>)> = stream::iter(jobs.into_values())
        .map(|(indexes, resolved)| async move {
            (indexes, catalogue.install(&resolved, force, reporter).await)
        })
        .buffer_unordered(options.jobs.max(1))
        .collect()
        .await;
    for (indexes, result) in done {
        let result = result.map_err(Shared::from);
        for &i in &indexes {
            results[i] = Some(result.clone());
        }
    }
    report(g, catalogue.settings(), &wanted, results, options.single)
}

fn already_installed(
    installed: &[InstalledSdk],
    platform: &str,
    spec: &VersionSpec,
) -> Option<InstalledSdk> {
    let VersionSpec::Constraint(_) = spec else {
        return None;
    };
    let exact = SdkVersion::parse(&spec.to_string()).ok()?;
    if exact.numeric().len() < 3 {
        return None;
    }
    let found = installed
        .iter()
        .find(|i| i.platform == platform && i.version == exact.as_str())?;
    // A .NET SDK version installed from one runtime's image is only what `8.0.100` asks for
    // when that runtime is still the one it resolves to: the registry decides.
    if matches!(found.runtime, Some(Some(_))) {
        return None;
    }
    // Reported as an install that found it there, not as the listing saw it.
    Some(InstalledSdk {
        manifest_digest: None,
        runtime: None,
        ..found.clone()
    })
}

/// Prints one line (or JSON object) per install, errors on stderr; fails with the first error.
fn report(
    g: &GlobalArgs,
    settings: &CatalogueSettings,
    wanted: &[(String, String)],
    results: Vec<Option<Result<InstalledSdk, Shared>>>,
    single: bool,
) -> anyhow::Result<()> {
    let mut first_error: Option<anyhow::Error> = None;
    let mut failed = 0;
    let mut json_items = Vec::new();
    for ((platform, spec), result) in wanted.iter().zip(results) {
        match result {
            Some(Ok(installed)) => {
                if g.json {
                    json_items.push(json!(installed));
                } else {
                    output::line(&installed.path.display().to_string())?;
                }
            }
            Some(Err(e)) => {
                let hint = unwritable(&e.0, settings);
                if !single {
                    let err = anyhow::Error::new(e).context(format!("{platform} {spec}"));
                    let err = match hint {
                        Some(hint) => err.context(hint),
                        None => err,
                    };
                    output::report_error(&err, g.json);
                    failed += 1;
                    first_error.get_or_insert(err);
                } else {
                    let err = anyhow::Error::new(e);
                    first_error.get_or_insert(match hint {
                        Some(hint) => err.context(hint),
                        None => err,
                    });
                }
            }
            None => {}
        }
    }
    if g.json && !(single && json_items.is_empty()) {
        if single {
            output::json(&json_items[0])?;
        } else {
            output::json(&json!(json_items))?;
        }
    }
    match first_error {
        // Each failure was printed already; the first decides the exit code.
        Some(e) if !single => Err(output::AlreadyReported {
            code: output::exit_code(&e),
            summary: format!("{failed} of {} installs failed", wanted.len()),
        }
        .into()),
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// The setting to change when an install may not write where it must: the install root, or
/// the cache folder, is often read-only for the user a build runs as, and the OS error alone
/// names a folder, not the setting that chose it.
fn unwritable(e: &SdkError, settings: &CatalogueSettings) -> Option<output::Hint> {
    let SdkError::Registry(inner) = e else {
        return None;
    };
    let Error::Io { path, source, .. } = &**inner else {
        return None;
    };
    use std::io::ErrorKind::{PermissionDenied, ReadOnlyFilesystem};
    if !matches!(source.kind(), PermissionDenied | ReadOnlyFilesystem) {
        return None;
    }
    let (what, dir, how) = if path.starts_with(&settings.root) {
        (
            "install root",
            &settings.root,
            "--root or DYNAMIC_INSTALL_ROOT_DIR",
        )
    } else if path.starts_with(&settings.cache_dir) {
        ("cache folder", &settings.cache_dir, "OCISDK_CACHE_DIR")
    } else {
        return None;
    };
    Some(output::Hint(format!(
        "the {what} {} is not writable by this user: choose another with {how}",
        dir.display()
    )))
}

/// One failure reported for each spec it befell (several specs resolving to one install, or
/// a platform whose listing failed), with its kind, exit code and place intact: the error
/// itself is this one's source, where the exit code and the JSON fields are looked for.
#[derive(Debug, Clone)]
struct Shared(Arc<SdkError>);

impl From<SdkError> for Shared {
    fn from(e: SdkError) -> Shared {
        Shared(Arc::new(e))
    }
}

impl std::fmt::Display for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for Shared {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.0)
    }
}
