//! `docs/json.md` against real `--json` output: every command documented there is run
//! against a real CNCF distribution registry, and its output must match the documented
//! fields exactly — each documented field present (unless *optional*) with a documented
//! type, and no field the page does not list. A documented section no run exercises, or a
//! run without a section, fails too, as does a documented field never seen in any output.
//!
//! The page's format (see its "Conventions"): under each `### NAME` heading, a table whose
//! rows start with a backticked field path (`a.b`, `a[]`, `[].c`, `a.*.b`) followed by a
//! type cell (`string`, `integer`, `boolean`, `object`, `array`, `null`, joined by `or`;
//! `optional` when the field may be absent).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use ocisdk_testkit::{cli, tar_gz_of, Registry};
use serde_json::Value;
use tempfile::TempDir;

// ---------------------------------------------------------------------------------------
// The documented schemas
// ---------------------------------------------------------------------------------------

/// One step of a field path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    /// A named field.
    Key(String),
    /// Each element of an array (`[]`).
    Items,
    /// Each value of a map (`*`).
    Any,
}

/// One documented field.
#[derive(Debug, Clone)]
struct Field {
    /// The path as written, e.g. `images[].blobs[].digest`.
    text: String,
    path: Vec<Step>,
    /// JSON kinds allowed: `string`, `integer`, `number`, `boolean`, `object`, `array`,
    /// `null`.
    kinds: Vec<String>,
    optional: bool,
}

/// `images[].blobs[].digest` → `[images, [], blobs, [], digest]`.
fn parse_path(text: &str) -> Vec<Step> {
    let mut steps = Vec::new();
    for part in text.split('.') {
        let (name, items) = match part.strip_suffix("[]") {
            Some(name) => (name, true),
            None => (part, false),
        };
        match name {
            "" => {}
            "*" => steps.push(Step::Any),
            name => steps.push(Step::Key(name.to_string())),
        }
        if items {
            steps.push(Step::Items);
        }
    }
    steps
}

/// `string or null`, `string, optional`, `array` → kinds and optionality.
fn parse_type(cell: &str) -> (Vec<String>, bool) {
    let kinds = cell
        .split(" or ")
        .map(|part| {
            part.split(|c: char| c == ',' || c.is_whitespace())
                .next()
                .unwrap_or("")
                .to_string()
        })
        .collect::<Vec<_>>();
    for kind in &kinds {
        assert!(
            ["string", "integer", "number", "boolean", "object", "array", "null"]
                .contains(&kind.as_str()),
            "unknown type {kind:?} in type cell {cell:?}"
        );
    }
    (kinds, cell.contains("optional"))
}

/// The fields of every `### NAME` section of a page.
fn parse_doc(text: &str) -> BTreeMap<String, Vec<Field>> {
    let mut sections: BTreeMap<String, Vec<Field>> = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        if let Some(name) = line.strip_prefix("### ") {
            let name = name.trim().to_string();
            assert!(
                !sections.contains_key(&name),
                "section {name:?} appears twice"
            );
            sections.insert(name.clone(), Vec::new());
            current = Some(name);
        } else if line.starts_with('#') {
            current = None;
        } else if let (Some(name), Some(row)) = (&current, line.strip_prefix("| `")) {
            let cells: Vec<&str> = row.split('|').collect();
            assert!(cells.len() >= 3, "malformed row in {name}: {line}");
            let text = cells[0].trim().trim_end_matches('`').to_string();
            let (kinds, optional) = parse_type(cells[1].trim());
            sections.get_mut(name).unwrap().push(Field {
                path: parse_path(&text),
                text,
                kinds,
                optional,
            });
        }
    }
    sections
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_u64() || n.is_i64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Compares one output with a section's fields; records the fields seen in `seen`.
struct Checker<'a> {
    fields: &'a [Field],
    problems: Vec<String>,
    seen: &'a mut BTreeSet<String>,
}

impl Checker<'_> {
    /// The documented fields one step below `prefix`.
    fn children(&self, prefix: &[Step]) -> Vec<&Field> {
        self.fields
            .iter()
            .filter(|f| f.path.len() == prefix.len() + 1 && f.path.starts_with(prefix))
            .collect()
    }

    fn node(&mut self, prefix: &[Step], value: &Value, at: &str) {
        let children = self.children(prefix);
        match value {
            Value::Object(map) => {
                if let Some(any) = children.iter().find(|f| f.path.last() == Some(&Step::Any)) {
                    let any = (*any).clone();
                    for (key, v) in map {
                        self.field(&any, v, &format!("{at}.{key}"));
                    }
                    return;
                }
                let keyed: Vec<Field> = children
                    .iter()
                    .filter(|f| matches!(f.path.last(), Some(Step::Key(_))))
                    .map(|f| (*f).clone())
                    .collect();
                if keyed.is_empty() {
                    return; // a free-form object, such as a manifest document
                }
                for key in map.keys() {
                    let documented = keyed
                        .iter()
                        .any(|f| f.path.last() == Some(&Step::Key(key.clone())));
                    if !documented {
                        self.problems
                            .push(format!("{at}.{key}: printed but not documented"));
                    }
                }
                for field in &keyed {
                    let Some(Step::Key(key)) = field.path.last() else {
                        unreachable!()
                    };
                    match map.get(key) {
                        Some(v) => self.field(field, v, &format!("{at}.{key}")),
                        None if field.optional => {}
                        None => self
                            .problems
                            .push(format!("{at}.{key}: documented but not printed")),
                    }
                }
            }
            Value::Array(items) => {
                let explicit = children
                    .iter()
                    .find(|f| f.path.last() == Some(&Step::Items))
                    .map(|f| (*f).clone());
                let mut each_path = prefix.to_vec();
                each_path.push(Step::Items);
                // `a[].b` documents the elements of `a` even without a row for `a[]`.
                let described = self.fields.iter().any(|f| f.path.starts_with(&each_path));
                for (i, item) in items.iter().enumerate() {
                    let at = format!("{at}[{i}]");
                    match &explicit {
                        Some(each) => self.field(each, item, &at),
                        None if described => self.node(&each_path, item, &at),
                        None => {}
                    }
                }
            }
            _ => {}
        }
    }

    fn field(&mut self, field: &Field, value: &Value, at: &str) {
        self.seen.insert(field.text.clone());
        let kind = kind_of(value);
        if !field
            .kinds
            .iter()
            .any(|k| k == kind || (k == "number" && kind == "integer"))
        {
            self.problems.push(format!(
                "{at}: a {kind} ({value}), documented as {}",
                field.kinds.join(" or ")
            ));
        }
        self.node(&field.path, value, at);
    }
}

/// The problems of `value` against `fields` (empty when it matches).
fn check(fields: &[Field], value: &Value, seen: &mut BTreeSet<String>) -> Vec<String> {
    let mut checker = Checker {
        fields,
        problems: Vec::new(),
        seen,
    };
    let root_is_array = fields.iter().any(|f| f.path.first() == Some(&Step::Items));
    let kind = kind_of(value);
    if root_is_array != (kind == "array") {
        checker
            .problems
            .push(format!("the output is a {kind}: {value}"));
    }
    checker.node(&[], value, "$");
    checker.problems
}

fn doc_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/json.md")
}

fn read_doc() -> String {
    fs::read_to_string(doc_path()).unwrap_or_else(|e| panic!("read {}: {e}", doc_path().display()))
}

#[test]
fn the_checker_rejects_missing_extra_and_mistyped_fields() {
    let doc = parse_doc(
        "### thing\n\
         | field | type | meaning |\n\
         |---|---|---|\n\
         | `name` | string | a name |\n\
         | `size` | integer or null | a size |\n\
         | `extra` | boolean, optional | may be absent |\n\
         | `items` | array | items |\n\
         | `items[].id` | string | an id |\n\
         | `map` | object | a map |\n\
         | `map.*` | integer | its values |\n\
         | `free` | object | anything |\n\
         ## Next\n\
         | `ignored` | string | outside any section |\n",
    );
    let fields = &doc["thing"];
    assert_eq!(fields.len(), 8);
    let mut seen = BTreeSet::new();
    let good = serde_json::json!({
        "name": "n", "size": null, "items": [{"id": "a"}], "map": {"x": 1},
        "free": {"anything": [1, "two"]}
    });
    assert_eq!(check(fields, &good, &mut seen), Vec::<String>::new());
    assert!(!seen.contains("extra") && seen.contains("items[].id") && seen.contains("map.*"));
    for (bad, problem) in [
        (
            serde_json::json!({"size": 1, "items": [], "map": {}, "free": {}}),
            "$.name: documented but not printed",
        ),
        (
            serde_json::json!({"name": "n", "size": 1, "items": [], "map": {}, "free": {}, "new": 1}),
            "$.new: printed but not documented",
        ),
        (
            serde_json::json!({"name": "n", "size": "1", "items": [], "map": {}, "free": {}}),
            "$.size: a string",
        ),
        (
            serde_json::json!({"name": "n", "size": 1, "items": [{"id": 1}], "map": {}, "free": {}}),
            "$.items[0].id: a integer",
        ),
        (
            serde_json::json!({"name": "n", "size": 1, "items": [], "map": {"k": "v"}, "free": {}}),
            "$.map.k: a string",
        ),
        (serde_json::json!([]), "the output is a array"),
    ] {
        let problems = check(fields, &bad, &mut seen);
        assert!(
            problems.iter().any(|p| p.starts_with(problem)),
            "{bad}: expected {problem:?}, got {problems:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Running the commands
// ---------------------------------------------------------------------------------------

/// A private temp folder (`home/`, `config/`, `xdg-cache/`, `cache/`, `root/`, `work/`) and
/// every `--json` output collected so far, by documented section.
struct Session {
    dir: TempDir,
    outputs: Vec<(String, String, Value)>,
}

impl Session {
    fn new() -> Session {
        let dir = tempfile::Builder::new()
            .prefix("ocisdk-json-")
            .tempdir()
            .expect("temp dir");
        for sub in ["home", "config", "xdg-cache", "cache", "root", "work"] {
            fs::create_dir(dir.path().join(sub)).unwrap();
        }
        Session {
            dir,
            outputs: Vec::new(),
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Runs `ocisdk ARGS… --json` (hermetic, current folder `work/`) with `stdin`, and
    /// returns (exit code, stdout, stderr).
    fn run(&self, args: &[&str], stdin: &str) -> (i32, String, String) {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ocisdk"));
        cmd.args(args)
            .arg("--json")
            .current_dir(self.path("work"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cli::scrub(&mut cmd);
        cmd.env("HOME", self.path("home"))
            .env("XDG_CONFIG_HOME", self.path("config"))
            .env("XDG_CACHE_HOME", self.path("xdg-cache"))
            .env("OCISDK_CACHE_DIR", self.path("cache"));
        let mut child = cmd.spawn().expect("run ocisdk");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        let output = child.wait_with_output().unwrap();
        (
            output.status.code().expect("ocisdk was killed by a signal"),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }

    /// Runs a command that must succeed and records its stdout under `section`.
    #[track_caller]
    fn ok(&mut self, section: &str, args: &[&str]) -> Value {
        self.ok_with_stdin(section, args, "")
    }

    #[track_caller]
    fn ok_with_stdin(&mut self, section: &str, args: &[&str], stdin: &str) -> Value {
        let (code, stdout, stderr) = self.run(args, stdin);
        assert_eq!(code, 0, "{args:?}: stdout {stdout:?}\nstderr: {stderr}");
        assert_eq!(
            stdout.matches('\n').count(),
            1,
            "{args:?}: one JSON document on one line: {stdout:?}"
        );
        let value: Value = serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("{args:?}: stdout is not JSON ({e}): {stdout:?}"));
        self.outputs
            .push((section.to_string(), args.join(" "), value.clone()));
        value
    }

    /// Runs a command that must fail with `code` and records its stderr as an `error`.
    #[track_caller]
    fn fails(&mut self, args: &[&str], code: i32) -> Value {
        let (got, stdout, stderr) = self.run(args, "");
        assert_eq!(got, code, "{args:?}: stdout {stdout:?}\nstderr: {stderr}");
        assert!(stdout.is_empty(), "{args:?}: stdout {stdout:?}");
        assert_eq!(stderr.matches('\n').count(), 1, "{args:?}: {stderr:?}");
        let value: Value = serde_json::from_str(&stderr)
            .unwrap_or_else(|e| panic!("{args:?}: stderr is not JSON ({e}): {stderr:?}"));
        assert_eq!(value["error"]["exit_code"], code, "{value}");
        self.outputs
            .push(("error".to_string(), args.join(" "), value.clone()));
        value
    }
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("UTF-8 temp path")
}

/// The string at `pointer` in `value`.
#[track_caller]
fn text<'a>(value: &'a Value, pointer: &str) -> &'a str {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no string at {pointer} in {value}"))
}

#[test]
fn every_documented_schema_matches_real_output() {
    let doc = parse_doc(&read_doc());
    let registry = Registry::start();
    let (host, url) = (registry.host(), registry.url());
    let mut s = Session::new();
    let root = s.path("root");
    let sdk = |args: &[&str]| -> Vec<String> {
        let mut all: Vec<String> = vec!["sdk".into()];
        all.extend(args.iter().map(|a| a.to_string()));
        all.extend(["--registry".into(), url.clone(), "--root".into()]);
        all.push(path_str(&root).to_string());
        all
    };

    // SDK catalogue: two versions, the second the default.
    for (version, default) in [("3.11.4", false), ("3.12.1", true)] {
        let file = s.path(&format!("work/python-bookworm-{version}.tar.gz"));
        fs::write(
            &file,
            tar_gz_of(&[("lib/VERSION", version.as_bytes(), 0o644)]),
        )
        .unwrap();
        let mut args = sdk(&["publish", "python", version, path_str(&file)]);
        if default {
            args.push("--default".into());
        }
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        s.ok("sdk publish", &refs);
    }
    let python = format!("{host}/oryx/python-sdk:bookworm-3.11.4");

    // Image commands.
    s.ok("tags", &["tags", &format!("{host}/oryx/python-sdk")]);
    s.ok("manifest", &["manifest", &python]);
    s.ok("digest", &["digest", &python]);
    s.ok("config", &["config", &python]);
    fs::write(s.path("work/notes.txt"), b"plain file").unwrap();
    let tool = format!("{host}/tools/notes:1");
    let pushed = s.ok(
        "push",
        &["push", "notes.txt", &tool, "--label", "team=build"],
    );
    s.ok(
        "push",
        &["push", "notes.txt", &format!("{host}/tools/notes:2")],
    );
    s.ok("config", &["config", &format!("{host}/tools/notes:2")]);
    let layer = text(&pushed, "/push/layer_digest").to_string();
    s.ok(
        "blob",
        &[
            "blob",
            &format!("{host}/tools/notes@{layer}"),
            "-o",
            "blob.bin",
        ],
    );
    s.ok("pull", &["pull", &python, "-o", "python.tar.gz"]);
    s.ok("pull", &["pull", &tool, "-o", "notes.out"]);
    s.ok_with_stdin(
        "login",
        &["login", &host, "-u", "me", "--password-stdin"],
        "secret\n",
    );
    let out = s.ok("logout", &["logout", &host]);
    assert_eq!(out["removed"], true);
    let out = s.ok("logout", &["logout", &host]);
    assert_eq!(out["removed"], false);
    let layout = format!("oci:{}:py", s.path("layout").display());
    s.ok("copy", &["copy", &python, &layout, "--dry-run"]);
    s.ok("copy", &["copy", &python, &layout]);
    s.ok(
        "copy",
        &["copy", &python, &format!("{host}/copies/python:1")],
    );

    // SDK commands.
    let runs: Vec<(&str, Vec<String>)> = vec![
        ("sdk versions", sdk(&["versions", "python"])),
        ("sdk default", sdk(&["default", "python"])),
        ("sdk default", sdk(&["default", "python", "--or-latest"])),
        ("sdk resolve", sdk(&["resolve", "python", "3.11"])),
        ("sdk pull", sdk(&["pull", "python", "3.11", "-o", "sdks"])),
        ("sdk pull", sdk(&["pull", "python", "3.11", "-o", "sdks"])),
        ("sdk install", sdk(&["install", "python", "3.11"])),
        ("sdk install", sdk(&["install", "python", "3.11"])),
        (
            "sdk install (several specs)",
            sdk(&["install", "python", "3.11", "3.12"]),
        ),
    ];
    for (section, args) in runs {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        s.ok(section, &refs);
    }
    fs::write(
        s.path("work/sdks.txt"),
        "python 3.11.4\npython 3.12 # default\n",
    )
    .unwrap();
    let args = sdk(&["sync", "sdks.txt", "--force"]);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    s.ok("sdk sync", &refs);
    let args = sdk(&["list-installed"]);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let installed = s.ok("sdk list-installed", &refs);
    assert_eq!(installed.as_array().map(Vec::len), Some(2), "{installed}");
    let args = sdk(&["uninstall", "python", "3.11.4"]);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let removed = s.ok("sdk uninstall", &refs);
    assert_eq!(removed.as_array().map(Vec::len), Some(1), "{removed}");
    let mirror = format!("oci:{}", s.path("mirror").display());
    for extra in [&["--dry-run"][..], &[][..]] {
        let mut args = sdk(&["mirror", "python", "3.11", "--to", &mirror]);
        args.extend(extra.iter().map(|a| a.to_string()));
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        s.ok("sdk mirror", &refs);
    }

    // Cache and settings.
    fs::write(s.path("cache/not-ours.txt"), b"x").unwrap();
    s.ok("cache info", &["cache", "info"]);
    s.ok("cache prune", &["cache", "prune"]);
    let pruned = s.ok("cache prune", &["cache", "prune", "--older-than", "0"]);
    assert!(pruned["files"].as_u64().unwrap() > 0, "{pruned}");
    s.ok("cache clean", &["cache", "clean"]);
    s.ok("config-show", &["config-show"]);
    fs::create_dir_all(s.path("config/ocisdk")).unwrap();
    fs::write(
        s.path("config/ocisdk/config.toml"),
        "mirrors = [\"http://mirror.internal:5000\"]\n[network]\nretries = 2\n\
         [registries.\"registry.internal:5000\"]\nplain_http = true\n",
    )
    .unwrap();
    s.ok("config-show", &["config-show", "--retries", "3"]);
    let pages = s.ok("manpages", &["manpages", "man"]);
    assert!(pages["pages"].as_u64().unwrap() > 20, "{pages}");

    // Errors.
    s.fails(&["digest", "UPPER/case"], 2);
    s.fails(&["digest", &format!("{host}/oryx/python-sdk:nope")], 3);
    let close = s.fails(
        &["digest", &format!("{host}/oryx/python-sdk:bookworm-3.11")],
        3,
    );
    assert!(
        text(&close, "/error/hint").contains("bookworm-3.11.4"),
        "{close}"
    );
    s.fails(&["tags", &format!("{host}/no/such")], 3);
    let args = sdk(&["resolve", "python", "3.14"]);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    s.fails(&refs, 3);
    s.fails(&["tags", "127.0.0.1:1/x", "--retries", "0"], 6);

    // Every output against its section.
    let mut problems = Vec::new();
    let mut seen: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for (section, command, value) in &s.outputs {
        let Some(fields) = doc.get(section) else {
            problems.push(format!("no section `### {section}` in docs/json.md"));
            continue;
        };
        let seen = seen.entry(section.as_str()).or_default();
        for p in check(fields, value, seen) {
            problems.push(format!("[{section}] ocisdk {command}: {p}"));
        }
    }
    let exercised: BTreeSet<&str> = s.outputs.iter().map(|(n, _, _)| n.as_str()).collect();
    for (section, fields) in &doc {
        if !exercised.contains(section.as_str()) {
            problems.push(format!("section `{section}` is documented but never run"));
            continue;
        }
        assert!(!fields.is_empty(), "section {section} has no field table");
        for field in fields.iter().filter(|f| !f.optional) {
            if !seen[section.as_str()].contains(&field.text) {
                problems.push(format!(
                    "[{section}] `{}` never appeared in any output",
                    field.text
                ));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "docs/json.md and the --json output disagree:\n{}",
        problems.join("\n")
    );
}

#[test]
fn documented_sections_cover_every_command_with_json_output() {
    let doc = parse_doc(&read_doc());
    let names: BTreeSet<&str> = doc.keys().map(String::as_str).collect();
    for wanted in [
        "error",
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
        "sdk versions",
        "sdk default",
        "sdk resolve",
        "sdk pull",
        "sdk install",
        "sdk install (several specs)",
        "sdk sync",
        "sdk list-installed",
        "sdk uninstall",
        "sdk publish",
        "sdk mirror",
        "cache info",
        "cache prune",
        "cache clean",
        "config-show",
        "manpages",
    ] {
        assert!(names.contains(wanted), "docs/json.md lacks `### {wanted}`");
    }
}

#[test]
fn documented_exit_codes_match_the_help() {
    let text = read_doc();
    let table: BTreeMap<u32, String> = text
        .split("## Exit codes")
        .nth(1)
        .expect("an `## Exit codes` section")
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .filter_map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            Some((cells[1].parse().ok()?, cells[2].to_string()))
        })
        .collect();
    let help = Command::new(env!("CARGO_BIN_EXE_ocisdk"))
        .arg("--help")
        .env_remove("RUST_LOG")
        .output()
        .expect("run ocisdk --help");
    let help = String::from_utf8(help.stdout).unwrap();
    let listed: BTreeMap<u32, String> = help
        .split("Exit codes:")
        .nth(1)
        .expect("an `Exit codes:` section in --help")
        .lines()
        .filter_map(|l| {
            let (code, meaning) = l.trim().split_once(char::is_whitespace)?;
            Some((code.parse().ok()?, meaning.trim().to_string()))
        })
        .collect();
    assert_eq!(
        table.keys().collect::<Vec<_>>(),
        listed.keys().collect::<Vec<_>>(),
        "exit codes in docs/json.md and --help"
    );
    for (code, meaning) in &listed {
        assert!(
            table[code].starts_with(meaning.as_str()),
            "exit code {code}: docs say {:?}, --help says {meaning:?}",
            table[code]
        );
    }
    assert_eq!(
        table.keys().copied().collect::<Vec<_>>(),
        [0, 1, 2, 3, 4, 5, 6, 130]
    );
}
