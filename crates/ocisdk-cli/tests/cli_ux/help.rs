//! Help for every command: an about line, help for every argument and option, an example in
//! every long help; shell completions and man pages.

use super::*;

/// One entry of a help section: its name column and its description (continuation lines
/// joined).
#[derive(Debug)]
struct Entry {
    name: String,
    description: String,
}

/// The entries of section `title` (`Commands:`, `Arguments:`, `Options:`) of a help text.
fn section(help: &str, title: &str) -> Vec<Entry> {
    let mut entries: Vec<Entry> = Vec::new();
    let mut inside = false;
    for line in help.lines() {
        if line == title {
            inside = true;
            continue;
        }
        if !inside {
            continue;
        }
        if line.is_empty() || !line.starts_with(' ') {
            break;
        }
        let body = &line[2..];
        if !body.starts_with(' ') {
            let (name, description) = match body.split_once("  ") {
                Some((n, d)) => (n.trim(), d.trim()),
                None => (body.trim(), ""),
            };
            entries.push(Entry {
                name: name.to_string(),
                description: description.to_string(),
            });
        } else if let Some(last) = entries.last_mut() {
            if !last.description.is_empty() {
                last.description.push(' ');
            }
            last.description.push_str(line.trim());
        }
    }
    entries
}

/// One command of the tree, with the about line its parent lists for it.
#[derive(Debug)]
struct Listed {
    path: Vec<String>,
    about: String,
}

/// Every command below `ocisdk`, found by reading each command's `-h` (clap's `help`
/// pseudo-command excluded).
fn command_tree(s: &Sandbox) -> Vec<Listed> {
    let mut found = Vec::new();
    let mut queue: Vec<Vec<String>> = vec![Vec::new()];
    while let Some(path) = queue.pop() {
        let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
        args.push("-h");
        let help = s.run(&args).success().stdout;
        for entry in section(&help, "Commands:") {
            if entry.name == "help" {
                continue;
            }
            let mut child = path.clone();
            child.push(entry.name.clone());
            found.push(Listed {
                path: child.clone(),
                about: entry.description,
            });
            queue.push(child);
        }
    }
    found.sort_by(|a, b| a.path.cmp(&b.path));
    found
}

#[test]
fn every_command_and_argument_has_help_text() {
    let s = Sandbox::new();
    let tree = command_tree(&s);
    let names: BTreeSet<String> = tree.iter().map(|c| c.path.join(" ")).collect();
    for expected in [
        "tags",
        "manifest",
        "digest",
        "config",
        "blob",
        "pull",
        "push",
        "login",
        "logout",
        "copy",
        "sdk",
        "sdk versions",
        "sdk default",
        "sdk resolve",
        "sdk pull",
        "sdk install",
        "sdk sync",
        "sdk list-installed",
        "sdk publish",
        "sdk mirror",
        "cache",
        "cache info",
        "cache prune",
        "cache clean",
        "config-show",
        "completions",
        "manpages",
    ] {
        assert!(names.contains(expected), "no `{expected}` in {names:?}");
    }
    let mut missing = Vec::new();
    for command in std::iter::once(Vec::new()).chain(tree.iter().map(|c| c.path.clone())) {
        let shown = format!("ocisdk {}", command.join(" "));
        let mut args: Vec<&str> = command.iter().map(String::as_str).collect();
        args.push("-h");
        let help = s.run(&args).success().stdout;
        if help.lines().next().unwrap_or("").trim().is_empty() {
            missing.push(format!("{shown}: no about line"));
        }
        for title in ["Arguments:", "Options:"] {
            for entry in section(&help, title) {
                if entry.description.is_empty() {
                    missing.push(format!("{shown}: {} has no help", entry.name));
                }
            }
        }
        assert!(
            !section(&help, "Options:").is_empty(),
            "{shown}: no Options section in\n{help}"
        );
    }
    for listed in &tree {
        if listed.about.is_empty() {
            missing.push(format!(
                "ocisdk {}: listed without an about line",
                listed.path.join(" ")
            ));
        }
    }
    assert!(
        missing.is_empty(),
        "help text missing:\n{}",
        missing.join("\n")
    );
}

#[test]
fn every_command_long_help_has_an_example() {
    let s = Sandbox::new();
    let mut without = Vec::new();
    for listed in command_tree(&s) {
        let mut args: Vec<&str> = listed.path.iter().map(String::as_str).collect();
        args.push("--help");
        let help = s.run(&args).success().stdout;
        let example = help.lines().any(|l| {
            let l = l.trim_start();
            l.starts_with("Example: ") && l.contains("ocisdk ")
        });
        if !example {
            without.push(format!("ocisdk {}", listed.path.join(" ")));
        }
    }
    assert!(
        without.is_empty(),
        "commands whose --help has no `Example:` line: {without:?}"
    );
}

#[test]
fn completions_cover_every_shell() {
    let s = Sandbox::new();
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let run = s.run(&["completions", shell]).success();
        assert!(run.stderr.is_empty(), "{shell}: {}", run.stderr);
        assert!(
            run.stdout.len() > 1000,
            "{shell}: {} bytes",
            run.stdout.len()
        );
        for word in [
            "ocisdk",
            "sdk",
            "list-installed",
            "config-show",
            "--registry",
        ] {
            assert!(run.stdout.contains(word), "{shell} script lacks {word:?}");
        }
    }
    let run = s.run(&["completions", "tcsh"]).expect_code(2);
    assert!(run.stderr.contains("tcsh"), "{}", run.stderr);
}

#[test]
fn manpages_are_written_for_every_command() {
    let s = Sandbox::new();
    let dir = s.path("man/man1");
    let run = s.run(&["manpages", path_str(&dir)]).success();
    let mut expected: BTreeSet<String> = command_tree(&s)
        .iter()
        .map(|c| format!("ocisdk-{}.1", c.path.join("-")))
        .collect();
    expected.insert("ocisdk.1".to_string());
    assert_eq!(
        run.stdout.trim(),
        format!("wrote {} man pages to {}", expected.len(), dir.display())
    );
    // Quiet says nothing; a folder that cannot be made is not a usage error.
    assert_eq!(
        s.run(&["-q", "manpages", path_str(&dir)]).success().stdout,
        ""
    );
    let file = s.path("a-file");
    fs::write(&file, b"").unwrap();
    let bad = s
        .run(&["manpages", path_str(&file.join("man"))])
        .expect_code(1);
    assert!(bad.stderr.contains("cannot create"), "{}", bad.stderr);
    let written: BTreeSet<String> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(written, expected, "man pages written");
    for name in &written {
        let page = fs::read_to_string(dir.join(name)).unwrap();
        let title = format!(".TH {} 1", name.trim_end_matches(".1"));
        let th = page.lines().find(|l| l.starts_with(&title));
        let th = th.unwrap_or_else(|| panic!("{name} has no `{title}` line"));
        assert!(
            th.contains(env!("CARGO_PKG_VERSION")),
            "{name}: the .TH line has no version: {th}"
        );
        assert!(page.contains(".SH NAME"), "{name} has no NAME section");
    }
    let install = fs::read_to_string(dir.join("ocisdk-sdk-install.1")).unwrap();
    assert!(install.contains("Install SDKs"), "{install}");
    assert!(install.contains("\\-\\-force"), "{install}");
}
