//! Commands about ocisdk itself: its cache, its settings, completions and man pages.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use clap::CommandFactory;
use serde_json::json;

use crate::cli::{CacheAction, Cli, GlobalArgs};
use crate::output;
use crate::settings;

pub(crate) fn cache(g: &GlobalArgs, action: &CacheAction) -> anyhow::Result<()> {
    let dir = super::cache_dir(g)?;
    match action {
        CacheAction::Info => {
            let info = ocisdk::cache::info_checked(&dir, &super::safe_folders(g))?;
            // Only read: counted all the same, and the way out said as prune and clean say it.
            for folder in &info.untrusted {
                tracing::warn!("{folder}");
            }
            if g.json {
                return output::json(&json!(info));
            }
            output::line(&format!("{} ({})", info.dir.display(), human(info.bytes)))?;
            for area in &info.areas {
                output::line(&format!(
                    "  {:<16} {:>10} in {:>5} files  {}",
                    area.name,
                    human(area.bytes),
                    area.files,
                    area.description
                ))?;
            }
            for other in &info.other {
                output::line(&format!("  {other:<16} (not ocisdk's: left alone)"))?;
            }
            Ok(())
        }
        CacheAction::Prune { older_than } => {
            let age = Duration::from_secs(older_than.saturating_mul(86_400));
            let removed = ocisdk::cache::prune(&dir, age, &super::safe_folders(g))?;
            report_removed(g, &removed)
        }
        CacheAction::Clean => {
            let removed = ocisdk::cache::clean(&dir, &super::safe_folders(g))?;
            report_removed(g, &removed)
        }
    }
}

fn report_removed(g: &GlobalArgs, removed: &ocisdk::cache::Removed) -> anyhow::Result<()> {
    if g.json {
        return output::json(&json!(removed));
    }
    let mut text = format!("removed {} files, {}", removed.files, human(removed.bytes));
    if removed.in_use > 0 {
        text.push_str(&format!(
            "; kept {} in use by a running download",
            removed.in_use
        ));
    }
    output::line(&text)
}

fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

pub(crate) fn config_show(g: &GlobalArgs) -> anyhow::Result<()> {
    if g.json {
        return output::json(&settings::rows_json(g)?);
    }
    // Computed first, so a bad setting fails before anything is printed.
    let rows = settings::rows(g)?;
    match &g.config.path {
        Some(path) => output::line(&format!("# configuration file: {}", path.display()))?,
        // The file that would be read, so that one written elsewhere is not taken for it.
        None => output::line(&match &g.config.default_path {
            Some(path) => format!(
                "# configuration file: none (OCISDK_CONFIG, else {})",
                path.display()
            ),
            None => "# configuration file: none (OCISDK_CONFIG)".to_string(),
        })?,
    }
    for (name, value, source) in rows {
        output::line(&format!("{name:<16} = {value:<40} # {source}"))?;
    }
    Ok(())
}

pub(crate) fn completions(shell: clap_complete::Shell) -> anyhow::Result<()> {
    let mut command = Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut command, "ocisdk", &mut out);
    output::raw(&out)
}

pub(crate) fn manpages(g: &GlobalArgs, dir: &Path) -> anyhow::Result<()> {
    // A folder that cannot be made or written is a failure of the machine, not of usage.
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let command = Cli::command();
    // Subcommands carry no version of their own; their pages' .TH line should show it.
    let version = command
        .get_version()
        .unwrap_or(env!("CARGO_PKG_VERSION"))
        .to_string();
    write_page(dir, "ocisdk", command.clone())?;
    let mut pages = 1;
    for sub in command.get_subcommands() {
        let name = format!("ocisdk-{}", sub.get_name());
        write_page(dir, &name, titled(sub, &name, &version))?;
        pages += 1;
        for nested in sub.get_subcommands() {
            let nested_name = format!("{name}-{}", nested.get_name());
            write_page(dir, &nested_name, titled(nested, &nested_name, &version))?;
            pages += 1;
        }
    }
    if g.json {
        output::json(&json!({ "dir": dir.to_string_lossy(), "pages": pages }))
    } else if g.quiet {
        Ok(())
    } else {
        output::line(&format!("wrote {pages} man pages to {}", dir.display()))
    }
}

/// A subcommand as its own page: named `ocisdk-…` and versioned (for the .TH line), without
/// a `--version` flag, which it never had (and `sdk publish` has a `version` argument).
fn titled(sub: &clap::Command, name: &str, version: &str) -> clap::Command {
    sub.clone()
        .name(name.to_string())
        .version(version.to_string())
        .disable_version_flag(true)
}

fn write_page(dir: &Path, name: &str, command: clap::Command) -> anyhow::Result<()> {
    let mut page = Vec::new();
    clap_mangen::Man::new(command).render(&mut page)?;
    let path = dir.join(format!("{name}.1"));
    std::fs::write(&path, page).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}
