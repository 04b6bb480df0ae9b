//! `ocisdk copy` and `ocisdk sdk mirror`: wrappers over `ocisdk::copy`.

use std::collections::{HashMap, HashSet};

use ocisdk::copy::{copy as copy_image, CopyOptions, CopyReport, ImageRef, Outcome};
use ocisdk::sdk::{Catalogue, MirrorTarget, SdkError, VersionSpec};
use ocisdk::Digest;
use serde_json::json;

use super::parse_platform;
use crate::cli::GlobalArgs;
use crate::{output, settings};

/// `ocisdk copy SRC DST`; `jobs` is `--jobs`, when given.
pub(crate) async fn copy(
    g: &GlobalArgs,
    src: &str,
    dst: &str,
    platform: Option<&str>,
    jobs: Option<usize>,
    dry_run: bool,
) -> anyhow::Result<()> {
    let (src, dst) = (image_ref(src)?, image_ref(dst)?);
    let options = CopyOptions {
        platform: parse_platform(platform)?,
        jobs: settings::jobs(g, jobs, settings::COPY_JOBS).value,
        dry_run,
    };
    // Between two registries, --username is for the target, which is written to.
    let given_to = match (&src, &dst) {
        (ImageRef::Registry(_), ImageRef::Registry(target)) => Some(target.registry()),
        _ => None,
    };
    let client = super::client_for(g, &[], given_to)?;
    let report = copy_image(&client, &src, &dst, &options).await?;
    if g.json {
        output::json(&json!(report))
    } else {
        output::line(&summary(&report))
    }
}

/// Parses one end of a copy. A path (`/srv/sdks`, `./out`) is no registry reference, and
/// the reference grammar's complaint about it does not say that a folder needs `oci:`.
fn image_ref(text: &str) -> anyhow::Result<ImageRef> {
    ImageRef::parse(text).map_err(|e| {
        let looks_like_a_path = ["/", "./", "../", "~"].iter().any(|p| text.starts_with(p));
        let e = anyhow::Error::new(e);
        if looks_like_a_path {
            e.context(output::Hint(format!(
                "for an OCI layout folder write oci:{text}, for a layout archive oci-archive:{text}"
            )))
        } else {
            e
        }
    })
}

/// `ocisdk sdk mirror PLATFORM [SPEC…] --to TARGET`; `jobs` is `--jobs`, when given.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn mirror(
    g: &GlobalArgs,
    catalogue: &Catalogue,
    platform: &str,
    specs: &[String],
    to: &str,
    pre: bool,
    jobs: Option<usize>,
    dry_run: bool,
) -> anyhow::Result<()> {
    let target: MirrorTarget = to.parse()?;
    let specs = specs
        .iter()
        .map(|s| VersionSpec::parse(s).map_err(SdkError::from))
        .collect::<Result<Vec<_>, _>>()?;
    let settings = catalogue.settings().clone();
    // Each registry named with http:// is on plain HTTP, not the other.
    let mut plain_http_hosts = Vec::new();
    if settings.wants_plain_http() {
        plain_http_hosts.push(settings.registry_authority());
    }
    if let Some(host) = target.plain_http_host() {
        plain_http_hosts.push(host);
    }
    // Into another registry, --username is for that one, which is written to.
    let given_to = target.registry_host();
    let client = super::client_for(g, &plain_http_hosts, given_to)?;
    let catalogue = Catalogue::new(client, settings.clone())?;
    let options = CopyOptions {
        platform: None,
        jobs: settings::jobs(g, jobs, settings::COPY_JOBS).value,
        dry_run,
    };
    // Every flavour's images are chosen before any is copied, so that a spec or flavour
    // with nothing to copy fails before the others' images are written.
    let mut sources = Vec::new();
    // Flavours without a single version, when every version is asked for. One of several
    // is warned about: a fleet's script may name the flavours it mirrors for every
    // platform, and not every platform is built for each. With none to copy at all (a typo
    // in a lone --os), the command fails.
    let mut empty = Vec::new();
    // A flavour named twice is mirrored once: its images would be chosen, and copied, again.
    let mut flavours: Vec<&str> = Vec::new();
    for os in catalogue.settings().os.split(',').map(str::trim) {
        if !os.is_empty() && !flavours.contains(&os) {
            flavours.push(os);
        }
    }
    for os in flavours {
        let flavour = catalogue.with_os(os);
        match flavour.mirror_set(platform, &specs, pre).await {
            Ok(set) => sources.extend(set),
            Err(SdkError::NoMatch(no_match)) if specs.is_empty() => empty.push(no_match),
            Err(e) => return Err(e.into()),
        }
    }
    if sources.is_empty() {
        if let Some(no_match) = empty.into_iter().next() {
            return Err(SdkError::NoMatch(no_match).into());
        }
    } else {
        for no_match in empty {
            tracing::warn!(
                "{}; mirroring the other flavours",
                SdkError::NoMatch(no_match)
            );
        }
    }
    let mut reports = Vec::new();
    // In a dry run, what the images before would have written, by target repository or
    // layout: a dry run writes nothing, so each later image would otherwise be told to copy
    // again what an earlier one brings (the default tag, its version's image).
    let mut would_write: HashMap<String, HashSet<Digest>> = HashMap::new();
    for source in sources {
        let dst = target.image_for(&source)?;
        let mut report = copy_image(
            catalogue.client(),
            &ImageRef::Registry(source),
            &dst,
            &options,
        )
        .await?;
        if dry_run {
            let written = would_write.entry(unnamed(&dst)).or_default();
            as_after(&mut report, written);
            written.extend(
                report
                    .manifests
                    .iter()
                    .chain(&report.blobs)
                    .filter(|i| i.outcome == Outcome::WouldCopy)
                    .map(|i| i.digest.clone()),
            );
        }
        if !g.json {
            output::line(&summary(&report))?;
        }
        reports.push(report);
    }
    let bytes = unique_bytes(&reports);
    if g.json {
        output::json(&json!({ "images": reports, "bytes": bytes, "dry_run": dry_run }))
    } else {
        let verb = if dry_run { "would copy" } else { "copied" };
        output::line(&format!(
            "{} images: {verb} {}",
            reports.len(),
            human_bytes(bytes)
        ))
    }
}

/// The target `image` names without its tag or name: the repository or layout it writes to.
fn unnamed(image: &ImageRef) -> String {
    match image {
        ImageRef::Registry(r) => r.repository().to_string(),
        ImageRef::Layout { dir, .. } => format!("oci:{}", dir.display()),
        ImageRef::Archive { file, .. } => format!("oci-archive:{}", file.display()),
    }
}

/// A dry run's `report` as a real run would give it once `written` (what earlier copies
/// into the same target would write) is there, as `copy` decides: a manifest there is
/// `present` (the root `tagged`), and when every manifest is there no blob is looked at,
/// as none of them is needed; otherwise a blob there is `present`.
fn as_after(report: &mut CopyReport, written: &HashSet<Digest>) {
    let last = report.manifests.len().saturating_sub(1);
    for (i, m) in report.manifests.iter_mut().enumerate() {
        if m.outcome == Outcome::WouldCopy && written.contains(&m.digest) {
            m.outcome = if i == last {
                Outcome::Tagged
            } else {
                Outcome::Present
            };
        }
    }
    if report
        .manifests
        .iter()
        .all(|m| m.outcome != Outcome::WouldCopy)
    {
        report.blobs.clear();
    }
    for b in &mut report.blobs {
        if b.outcome == Outcome::WouldCopy && written.contains(&b.digest) {
            b.outcome = Outcome::Present;
        }
    }
    report.bytes = report
        .manifests
        .iter()
        .chain(&report.blobs)
        .filter(|i| i.outcome == Outcome::WouldCopy)
        .map(|i| i.size)
        .sum();
}

/// The bytes moved (or to move) by all `reports`, each blob and manifest counted once.
fn unique_bytes(reports: &[CopyReport]) -> u64 {
    let mut seen = std::collections::HashSet::new();
    reports
        .iter()
        .flat_map(|r| r.manifests.iter().chain(&r.blobs))
        .filter(|i| matches!(i.outcome, Outcome::Copied | Outcome::WouldCopy))
        .filter(|i| seen.insert(i.digest.clone()))
        .map(|i| i.size)
        .sum()
}

/// One line per copy: `SRC -> DST: …`.
fn summary(r: &CopyReport) -> String {
    let head = format!("{} -> {}", r.source, r.target);
    if r.nothing_written() {
        return format!("{head}: up to date ({})", r.digest);
    }
    let root_only_named = r
        .manifests
        .last()
        .is_some_and(|m| m.outcome == Outcome::Tagged)
        && r.bytes == 0;
    if root_only_named {
        let verb = if r.dry_run { "would tag" } else { "tagged" };
        return format!("{head}: {verb} {} (content already there)", r.digest);
    }
    let (moved, verb) = if r.dry_run {
        (r.blobs_with(Outcome::WouldCopy), "would copy")
    } else {
        (r.blobs_with(Outcome::Copied), "copied")
    };
    let mut parts = vec![format!("{verb} {moved} blobs, {}", human_bytes(r.bytes))];
    for (outcome, word) in [(Outcome::Mounted, "mounted"), (Outcome::Present, "present")] {
        let n = r.blobs_with(outcome);
        if n > 0 {
            parts.push(format!("{n} {word}"));
        }
    }
    format!("{head}: {} ({})", parts.join(", "), r.digest)
}

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} bytes");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {} ({n} bytes)", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_like_people_write_them() {
        assert_eq!(human_bytes(12), "12 bytes");
        assert_eq!(human_bytes(1536), "1.5 KiB (1536 bytes)");
        assert_eq!(human_bytes(3 * 1024 * 1024), "3.0 MiB (3145728 bytes)");
    }
}
