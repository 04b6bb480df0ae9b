//! Parsing, ordering, tags and spec matching, against the examples of real registries.

use super::*;
use std::collections::HashSet;

fn v(text: &str) -> SdkVersion {
    SdkVersion::parse(text).unwrap_or_else(|e| panic!("{e}"))
}

/// Versions from a space-separated list.
fn versions(list: &str) -> Vec<SdkVersion> {
    list.split_whitespace().map(v).collect()
}

fn spec(text: &str) -> VersionSpec {
    VersionSpec::parse(text).unwrap_or_else(|e| panic!("{e}"))
}

fn joined(versions: &[&SdkVersion]) -> String {
    let texts: Vec<&str> = versions.iter().map(|v| v.as_str()).collect();
    texts.join(" ")
}

const PYTHON: &str = "3.9.9 3.10.0 3.11.9 3.11.10 3.12.4 3.13.0rc1";
const NODE: &str = "18.20.4 20.1.0 20.11.1 22.3.0";

#[test]
fn versions_order_by_precedence() {
    let chains = [
        "3.9.9 < 3.10.0 < 3.11.9 < 3.11.10 < 3.12.4 < 3.13.0a1 < 3.13.0b2 < 3.13.0rc1",
        "3.13.0rc1 < 3.13.0 < 3.13.0.1 < 3.13.1 < 4.0",
        "3.13.0a2 < 3.13.0a10 < 3.13.0b1",
        "8.0.100-preview.1 < 8.0.100-rc.1 < 8.0.100-rc.2.23502.2 < 8.0.100 < 8.0.101",
        "1.0.0-alpha < 1.0.0-alpha.1 < 1.0.0-alpha.beta < 1.0.0-beta < 1.0.0-beta.2",
        "1.0.0-beta.2 < 1.0.0-beta.11 < 1.0.0-rc.1 < 1.0.0",
        "20.0.0-nightly2023 < 20.0.0 < 20.0.1",
        "1.2.3 < 1.2.3.1 < 1.2.3.4 < 1.2.4 < 1.2.10.0 < 1.10",
    ];
    for chain in chains {
        let chain: Vec<SdkVersion> = chain.split(" < ").map(v).collect();
        for pair in chain.windows(2) {
            let (low, high) = (&pair[0], &pair[1]);
            assert_eq!(low.cmp_precedence(high), Ordering::Less, "{low} < {high}");
            assert!(low < high, "{low} < {high}");
            assert_eq!(high.cmp(low), Ordering::Greater, "{high} > {low}");
        }
    }
}

#[test]
fn equal_precedence_is_ordered_by_text() {
    for pair in ["3.11 3.11.0", "3.13.0rc1 3.13.0-rc.1", "1.2 1.2.0.0"] {
        let pair = versions(pair);
        let (a, b) = (&pair[0], &pair[1]);
        assert_eq!(a.cmp_precedence(b), Ordering::Equal);
        assert_ne!(a, b);
        assert_eq!(a.cmp(b), a.as_str().cmp(b.as_str()));
        assert_eq!(HashSet::from([a, b, &a.clone()]).len(), 2);
    }
}

#[test]
fn sorting_a_shuffled_list() {
    let mut list = versions("3.13.0 3.9.9 3.13.0rc1 3.11.10 3.10.0 3.11 3.11.9");
    sort_versions(&mut list);
    let sorted = joined(&list.iter().collect::<Vec<_>>());
    assert_eq!(sorted, "3.9.9 3.10.0 3.11 3.11.9 3.11.10 3.13.0rc1 3.13.0");
}

#[test]
fn versions_keep_their_text() {
    let cases: &[(&str, &[u64], bool)] = &[
        ("3.11.0", &[3, 11, 0], false),
        ("3.9", &[3, 9], false),
        ("1.2.3.4", &[1, 2, 3, 4], false),
        ("3.13.0rc1", &[3, 13, 0], true),
        ("8.0.100-rc.2.23502.2", &[8, 0, 100], true),
        ("20.0.0-nightly2023", &[20, 0, 0], true),
    ];
    for &(text, numeric, pre) in cases {
        let version: SdkVersion = text.parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((version.as_str(), version.to_string()), (text, text.into()));
        assert_eq!((version.numeric(), version.is_prerelease()), (numeric, pre));
    }
}

#[test]
fn invalid_versions_say_why() {
    let cases = [
        ("", "empty string"),
        ("3", "needs at least two numeric parts"),
        ("a.b", r#"part "a" is not a number"#),
        ("3..1", "empty numeric part"),
        ("1.2.3.4.5", "too many numeric parts"),
        ("3.11.", "empty numeric part"),
        ("-1.2", "must start with a number"),
        ("3.11.0-", "empty pre-release"),
        ("3.0a1.2", r#"part "0a1" is not a number"#),
        ("3.13.0a1b", r#"invalid pre-release "a1b""#),
        ("3.13.0a1-x", "cannot be followed"),
        ("3.11.0_1", "unexpected character '_'"),
        ("1.2.3-alpha..1", "empty identifier"),
        ("1.2.3-al+pha", "invalid character '+'"),
        ("1.2-3.4", "must start with a letter"),
        ("99999999999999999999.1", "too large"),
        (" 3.11", "not a number"),
    ];
    for (input, reason) in cases {
        let error = SdkVersion::parse(input).expect_err(input).to_string();
        let prefix = format!("invalid version {input:?}: ");
        assert!(
            error.starts_with(&prefix) && error.contains(reason),
            "{error}"
        );
    }
    let error = SdkVersion::parse("3.x").expect_err("3.x").to_string();
    assert_eq!(error, r#"invalid version "3.x": part "x" is not a number"#);
}

/// A short description of a tag parse, to keep the table readable.
fn describe(parse: TagParse) -> String {
    match parse {
        TagParse::Version(sdk_tag) => match sdk_tag.runtime {
            Some(runtime) => format!("{} runtime {runtime}", sdk_tag.version),
            None => sdk_tag.version.to_string(),
        },
        TagParse::Special(special) => format!("{special:?}"),
        TagParse::OtherFlavour => "other".to_owned(),
        TagParse::Unparseable(_) => "unparseable".to_owned(),
    }
}

#[test]
fn tags_are_classified() {
    let cases = [
        ("bookworm-3.11.0", "bookworm", "3.11.0"),
        ("bookworm-default", "bookworm", "Default"),
        ("bookworm-catalog", "bookworm", "Catalog"),
        ("bullseye-3.11.0", "bookworm", "other"),
        ("noble-10.0.201_10.0.5", "noble", "10.0.201 runtime 10.0.5"),
        ("noble-8.0.100-rc.1", "noble", "8.0.100-rc.1"),
        ("bookworm-garbage", "bookworm", "unparseable"),
        ("bookworm-", "bookworm", "unparseable"),
        ("bookworm-3.11.0-", "bookworm", "unparseable"),
        ("noble-10.0.201_", "noble", "unparseable"),
        ("noble-10.0.201_10.0.5_1.0", "noble", "unparseable"),
        ("bookworm-scm-3.1", "bookworm", "other"),
        ("bookworm-scm-default", "bookworm", "other"),
        ("alpine-3.20-3.12.4", "alpine", "other"),
        ("alpine-3.20-3.12.4", "alpine-3.20", "3.12.4"),
        ("focal-scm-3.1", "focal-scm", "3.1"),
        ("bookworm", "bookworm", "other"),
        ("bookwormy-3.11.0", "bookworm", "other"),
    ];
    for (tag, os, expected) in cases {
        assert_eq!(describe(parse_tag(tag, os)), expected, "{tag} for {os}");
    }
    let TagParse::Version(sdk_tag) = parse_tag("noble-10.0.201_10.0.5", "noble") else {
        panic!("not a version tag");
    };
    assert_eq!(sdk_tag.tag, "noble-10.0.201_10.0.5");
}

#[test]
fn tag_versions_are_a_version_or_dotnets_sdk_and_runtime() {
    let plain = TagVersion::parse("3.12.4").unwrap();
    assert_eq!((plain.version.as_str(), plain.runtime), ("3.12.4", None));
    let dotnet = TagVersion::parse("8.0.100-rc.2.23502.2_8.0.0-rc.2.23479.6").unwrap();
    assert_eq!(dotnet.version.as_str(), "8.0.100-rc.2.23502.2");
    assert_eq!(dotnet.runtime, Some(v("8.0.0-rc.2.23479.6")));
    assert_eq!(
        dotnet.to_string(),
        "8.0.100-rc.2.23502.2_8.0.0-rc.2.23479.6"
    );
    assert_eq!(TagVersion::from(v("3.12.4")).to_string(), "3.12.4");

    let cases = [
        ("8.0.100_", r#"no runtime version after "_""#),
        ("_8.0.0", r#"no SDK version before "_""#),
        ("_", r#"no SDK version before "_""#),
        ("8.0.100_8.0.0_1", r#"more than one "_""#),
        ("8.0.100__8.0.0", r#"more than one "_""#),
        (
            "8_8.0.0",
            r#"SDK version "8": needs at least two numeric parts"#,
        ),
        (
            "8.0.100_8.0.x",
            r#"runtime version "8.0.x": part "x" is not a number"#,
        ),
    ];
    for (input, reason) in cases {
        let error = TagVersion::parse(input).expect_err(input).to_string();
        let prefix = format!("invalid version {input:?}: {reason}");
        assert!(error.starts_with(&prefix), "{error}");
        assert!(error.ends_with(r#"like "8.0.100_8.0.0")"#), "{error}");
    }
}

#[test]
fn a_tags_flavour_is_what_precedes_its_version_or_special_word() {
    let cases = [
        ("bookworm-3.11.0", Some("bookworm")),
        ("bullseye-default", Some("bullseye")),
        ("noble-8.0.100-rc.1", Some("noble")),
        ("noble-10.0.201_10.0.5", Some("noble")),
        ("bookworm-scm-3.1", Some("bookworm-scm")),
        ("alpine-3.20-3.12.4", Some("alpine-3.20")),
        ("latest", None),
        ("bookworm-garbage", None),
        ("-3.11.0", None),
    ];
    for (tag, expected) in cases {
        assert_eq!(tag_flavour(tag), expected, "{tag}");
    }
}

#[test]
fn dotnet_specs_match_the_sdk_version_and_the_runtime_of_a_tag() {
    let tag = |version: &str, runtime: Option<&str>| SdkTag {
        version: v(version),
        runtime: runtime.map(v),
        tag: String::new(),
    };
    let dotnet = spec("8.0.100_8.0.0");
    assert_eq!(dotnet.to_string(), "8.0.100_8.0.0");
    assert_eq!(dotnet.runtime(), Some(&v("8.0.0")));
    assert_eq!(dotnet.full_version(), Some(&[8, 0, 100][..]));
    assert!(dotnet.matches_tag(&tag("8.0.100", Some("8.0.0"))));
    assert!(dotnet.matches_tag(&tag("8.0.100", Some("8.0"))));
    assert!(!dotnet.matches_tag(&tag("8.0.100", Some("8.0.1"))));
    assert!(!dotnet.matches_tag(&tag("8.0.100", None)));
    assert!(!dotnet.matches_tag(&tag("8.0.200", Some("8.0.0"))));
    // A version has no runtime: `matches` sees the SDK version alone.
    assert!(dotnet.matches(&v("8.0.100")));
    let plain = spec("8.0.100");
    assert_eq!(plain.runtime(), None);
    assert!(plain.matches_tag(&tag("8.0.100", Some("8.0.1"))));

    let pre = spec("8.0.100-rc.2.23502.2_8.0.0-rc.2.23479.6");
    assert!(pre.names_prerelease());
    assert!(pre.matches_tag(&tag("8.0.100-rc.2.23502.2", Some("8.0.0-rc.2.23479.6"))));
    assert!(!pre.matches_tag(&tag("8.0.100", Some("8.0.0-rc.2.23479.6"))));

    for (input, reason) in [
        ("8.0.100_", r#"no runtime version after "_""#),
        ("8.0.100_8.0.0_1", r#"more than one "_""#),
        (">=8.0_8.0", r#"SDK version ">=8.0""#),
        ("8.0.100_8.0.0,<9", r#"runtime version "8.0.0,<9""#),
    ] {
        let error = VersionSpec::parse(input).expect_err(input).to_string();
        let prefix = format!("invalid version spec {input:?}: {reason}");
        assert!(error.starts_with(&prefix), "{error}");
    }
}

#[test]
fn invalid_specs_say_why() {
    let cases = [
        ("", "empty spec"),
        ("   ", "empty spec"),
        (">=3.10,", "empty comparator"),
        ("3.x", r#"part "x" is not a number"#),
        (">=3.10 <3.12", "unexpected space"),
        ("~", r#"missing version after "~""#),
        ("=>3", r#"part ">3" is not a number"#),
        ("3rc1", "needs at least two numeric parts"),
        ("Latest", "is not a number"),
    ];
    for (input, reason) in cases {
        let error = VersionSpec::parse(input).expect_err(input).to_string();
        assert!(error.contains(reason), "{input:?}: {error}");
    }
    let error = VersionSpec::parse(">=").expect_err(">=").to_string();
    assert_eq!(
        error,
        r#"invalid version spec ">=": missing version after ">=""#
    );
}

#[test]
fn specs_display_what_the_user_typed() {
    let texts = [
        "latest",
        "default",
        "3.11",
        ">= 3.10, <3.12",
        "~3.11",
        "^20.1",
        "==3.11.0",
    ];
    for text in texts {
        assert_eq!(spec(text).to_string(), text);
        assert_eq!(spec(&format!("  {text} ")).to_string(), text);
    }
    assert_eq!(spec("default"), VersionSpec::Default);
    assert_eq!(spec("latest"), VersionSpec::Latest);
}

#[test]
fn specs_match_versions() {
    // Spec, versions it matches, versions it does not.
    let cases = [
        (
            "3.11",
            "3.11 3.11.0 3.11.10 3.11.0.1",
            "3.110.0 3.1.0 3.12.0 3.11rc1",
        ),
        ("3.1", "3.1.0 3.1.5", "3.11.0 3.10.0"),
        ("3.11.0", "3.11 3.11.0 3.11.0.2", "3.11.1 3.11.0rc1"),
        ("1.2.3", "1.2.3 1.2.3.4", "1.2.4 1.2.30"),
        ("3.13", "3.13.0rc1 3.13.0a1 3.13.2", "3.14.0a1"),
        (
            "3.13.0rc1",
            "3.13.0rc1 3.13.0-rc.1",
            "3.13.0 3.13.0rc2 3.13.0b1",
        ),
        ("<3.13", "3.12.4", "3.13.0rc1 3.13.0"),
        ("<3.13.0", "3.12.4 3.13.0rc1", "3.13.0"),
        (">3.9", "3.10.0", "3.9.9 3.9"),
        (">=3.10,<3.12", "3.10.0 3.11.10", "3.9.9 3.12.0 3.12.0a1"),
        ("<=3.12", "3.12.4 3.2.0", "3.13.0"),
        ("!=3.11.1", "3.11.10 3.11.0", "3.11.1"),
        ("~3.11.2", "3.11.2 3.11.9", "3.11.1 3.12.0"),
        ("~3", "3.0.0 3.99.0", "4.0.0 2.9.9"),
        ("^20.1", "20.1.0 20.11.1", "20.0.9 21.0.0"),
        ("^0.2.3", "0.2.3 0.2.9", "0.3.0 0.2.2"),
        ("^0.0.3", "0.0.3", "0.0.4"),
        ("^0.0", "0.0.7", "0.1.0"),
        ("^18446744073709551615.1", "18446744073709551615.7", "1.0"),
        ("latest", "3.13.0rc1 3.11.0", ""),
        ("default", "", "3.11.0"),
    ];
    for (text, matching, other) in cases {
        for version in versions(matching) {
            assert!(
                spec(text).matches(&version),
                "{text} should match {version}"
            );
        }
        for version in versions(other) {
            assert!(
                !spec(text).matches(&version),
                "{text} should not match {version}"
            );
        }
    }
}

#[test]
fn specs_know_when_they_name_a_prerelease() {
    let cases = [
        ("3.13.0rc1", true),
        (">=3.13.0a1", true),
        ("~8.0.100-preview.1", true),
        ("3.13", false),
        ("latest", false),
        (">=3.10,<3.12", false),
    ];
    for (text, expected) in cases {
        assert_eq!(spec(text).names_prerelease(), expected, "{text}");
    }
}

#[test]
fn specs_select_the_highest_match() {
    let cases = [
        (PYTHON, "3.11", false, Some("3.11.10")),
        (PYTHON, "latest", false, Some("3.12.4")),
        (PYTHON, "latest", true, Some("3.13.0rc1")),
        (PYTHON, "3", false, Some("3.12.4")),
        (PYTHON, "3.1", false, None),
        (PYTHON, "3.10", false, Some("3.10.0")),
        (PYTHON, ">=3.10,<3.12", false, Some("3.11.10")),
        (PYTHON, ">3.11 , <3.13", false, Some("3.12.4")),
        (PYTHON, "<=3.12.4", false, Some("3.12.4")),
        (PYTHON, "<3.11", false, Some("3.10.0")),
        (PYTHON, "!=3.12.4", false, Some("3.11.10")),
        (PYTHON, "=3.11.9", false, Some("3.11.9")),
        (PYTHON, "==3.11.9", false, Some("3.11.9")),
        (PYTHON, "3.11.9", false, Some("3.11.9")),
        (PYTHON, "~3.11", false, Some("3.11.10")),
        (PYTHON, "~3.11.9", false, Some("3.11.10")),
        (PYTHON, "~3", false, Some("3.12.4")),
        (PYTHON, "^3.10", false, Some("3.12.4")),
        (PYTHON, "3.13", false, None),
        (PYTHON, "3.13", true, Some("3.13.0rc1")),
        (PYTHON, "3.13.0", true, None),
        (PYTHON, "<3.13", true, Some("3.12.4")),
        (PYTHON, "<3.13.0", true, Some("3.13.0rc1")),
        (PYTHON, "3.13.0rc1", false, Some("3.13.0rc1")),
        (PYTHON, ">=3.13.0a1", false, Some("3.13.0rc1")),
        (PYTHON, "3.14", true, None),
        (PYTHON, "default", true, None),
        (NODE, "20", false, Some("20.11.1")),
        (NODE, "^20.1", false, Some("20.11.1")),
        (NODE, "~20.1", false, Some("20.1.0")),
        (NODE, "^18", false, Some("18.20.4")),
        (NODE, ">=19", false, Some("22.3.0")),
        (NODE, "<20", false, Some("18.20.4")),
        (NODE, "21", false, None),
        (NODE, "^0.2.3", false, None),
        ("", "latest", true, None),
        // A version named in full is that version, when it is there.
        ("3.13.1 3.13.1.1 3.13.2", "3.13.1", false, Some("3.13.1")),
        ("3.13.1 3.13.1.1 3.13.2", "=3.13.1", false, Some("3.13.1")),
        (
            "3.13.1.1 3.13.1.2 3.13.2",
            "3.13.1",
            false,
            Some("3.13.1.2"),
        ),
        ("3.13.1 3.13.1.1 3.13.2", "3.13", false, Some("3.13.2")),
        (
            "3.13.1 3.13.1.1 3.13.2",
            ">=3.13.1,<3.13.2",
            false,
            Some("3.13.1.1"),
        ),
    ];
    for (available, text, allow_pre, expected) in cases {
        let available = versions(available);
        let selected = spec(text).select(&available, allow_pre);
        assert_eq!(
            selected.map(SdkVersion::as_str),
            expected,
            "{text} {allow_pre}"
        );
    }
}

#[test]
fn nearest_versions_help_error_messages() {
    let available = versions(PYTHON);
    let cases = [
        ("3.14", 2, "3.12.4 3.13.0rc1"),
        ("3.11.5", 2, "3.11.9 3.11.10"),
        ("3.11.5", 1, "3.11.9"),
        ("3.8", 2, "3.9.9 3.10.0"),
        (">=3.10.2,<3.10.9", 1, "3.10.0"),
        ("4", 1, "3.13.0rc1"),
        ("latest", 3, "3.11.10 3.12.4 3.13.0rc1"),
        ("3.14", 0, ""),
        ("3.14", 99, PYTHON),
    ];
    for (text, n, expected) in cases {
        assert_eq!(
            joined(&spec(text).nearest(&available, n)),
            expected,
            "{text} {n}"
        );
    }
}

#[test]
fn highest_stable_skips_prereleases() {
    let cases = [
        (PYTHON, Some("3.12.4")),
        ("3.13.0a1 3.13.0rc1", None),
        ("", None),
    ];
    for (available, expected) in cases {
        let available = versions(available);
        assert_eq!(highest_stable(&available).map(SdkVersion::as_str), expected);
    }
}

#[test]
fn strings_round_trip_for_serde() {
    let version = SdkVersion::try_from("3.13.0rc1".to_owned()).expect("valid version");
    assert_eq!(String::from(version), "3.13.0rc1");
    let parsed = VersionSpec::try_from(" ^20.1 ".to_owned()).expect("valid spec");
    assert_eq!(String::from(parsed), "^20.1");
    assert!(VersionSpec::try_from(">=".to_owned()).is_err());
}

#[test]
fn no_input_panics() {
    // Every string of up to four characters from an alphabet of awkward ones.
    let alphabet = "10.-_a~^<=, é３";
    let mut inputs = vec![String::new()];
    let mut longest = vec![String::new()];
    for _ in 0..4 {
        longest = longest
            .iter()
            .flat_map(|s| alphabet.chars().map(move |c| format!("{s}{c}")))
            .collect();
        inputs.extend(longest.iter().cloned());
    }
    let available = versions(PYTHON);
    for input in &inputs {
        let _ = SdkVersion::parse(input);
        let _ = parse_tag(&format!("os-{input}"), "os");
        if let Ok(spec) = VersionSpec::parse(input) {
            let _ = (spec.select(&available, true), spec.nearest(&available, 3));
        }
    }
    assert!(inputs.len() > 40_000);
}
