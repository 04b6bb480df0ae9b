//! HTTPS end to end: the binary against a real CNCF distribution registry serving TLS with
//! a certificate from a test authority, on a non-loopback address of this machine (ocisdk
//! speaks plain HTTP to loopback on purpose, so 127.0.0.1 cannot test TLS).
//!
//! Plain-HTTP requests use a client without the system's root certificates and the HTTPS
//! client is built at the first `https://` request (`transport::Http`), so these tests also
//! prove that the lazily built client trusts both the `--ca-file` authorities and the
//! system's (`SSL_CERT_FILE` is how rustls-native-certs is pointed at another bundle), and
//! that the plain-HTTP client trusts the system's too when its proxy is an `https://` one.

use std::path::Path;
use std::process::Command;

use ocisdk_testkit::{non_loopback_ipv4, pseudo_random_bytes, Registry, RegistryBuilder};

/// A TLS registry on this machine's first non-loopback IPv4 address, or `None` (after
/// saying so) on a machine without one.
fn tls_registry(test: &str) -> Option<Registry> {
    let Some(ip) = non_loopback_ipv4() else {
        eprintln!("SKIPPED {test}: this machine has no non-loopback IPv4 address");
        return None;
    };
    Some(RegistryBuilder::new().tls_on(ip.into()).start())
}

/// Runs `ocisdk ARGS…` with nothing from the environment but `PATH`, a fresh `HOME` and
/// `extra`: no proxy, no certificate bundle, no user configuration.
fn ocisdk(home: &Path, args: &[&str], extra: &[(&str, &Path)]) -> (i32, String, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ocisdk"));
    command
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("OCISDK_CACHE_DIR", home.join("cache"));
    for (key, value) in extra {
        command.env(key, value);
    }
    let output = command.output().expect("run the ocisdk binary");
    (
        output.status.code().expect("ocisdk was killed by a signal"),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// `ocisdk push` of `content` to `reference` on the TLS `registry`, trusting its CA file.
#[track_caller]
fn push_with_ca_file(home: &Path, registry: &Registry, content: &[u8], reference: &str) {
    let file = home.join("sdk.bin");
    std::fs::write(&file, content).unwrap();
    let ca = registry.ca_pem().unwrap().to_str().unwrap();
    let (code, _, stderr) = ocisdk(
        home,
        &[
            "-q",
            "push",
            file.to_str().unwrap(),
            reference,
            "--ca-file",
            ca,
        ],
        &[],
    );
    assert_eq!(code, 0, "push over HTTPS: {stderr}");
}

#[test]
fn https_registry_is_pushed_to_and_pulled_from_with_its_ca_file() {
    let Some(registry) =
        tls_registry("https_registry_is_pushed_to_and_pulled_from_with_its_ca_file")
    else {
        return;
    };
    let home = tempfile::tempdir().unwrap();
    let ca = registry.ca_pem().unwrap().to_str().unwrap();
    let content = pseudo_random_bytes(3 * 1024 * 1024 + 17, 7);
    let reference = format!("{}/tls/sdk:1.0", registry.host());
    push_with_ca_file(home.path(), &registry, &content, &reference);
    let repository = format!("{}/tls/sdk", registry.host());
    let (code, stdout, stderr) = ocisdk(home.path(), &["tags", &repository, "--ca-file", ca], &[]);
    assert_eq!(
        (code, stdout.as_str()),
        (0, "1.0\n"),
        "tags over HTTPS: {stderr}"
    );
    let out = home.path().join("pulled");
    let (code, _, stderr) = ocisdk(
        home.path(),
        &[
            "-q",
            "pull",
            &reference,
            "-o",
            out.to_str().unwrap(),
            "--ca-file",
            ca,
        ],
        &[],
    );
    assert_eq!(code, 0, "pull over HTTPS: {stderr}");
    assert!(
        std::fs::read(&out).unwrap() == content,
        "the pulled bytes differ from the pushed ones"
    );
}

#[test]
fn https_registry_is_trusted_through_the_system_bundle() {
    let Some(registry) = tls_registry("https_registry_is_trusted_through_the_system_bundle") else {
        return;
    };
    let home = tempfile::tempdir().unwrap();
    let ca = registry.ca_pem().unwrap();
    let repository = format!("{}/tls/empty", registry.host());
    // An unknown repository answers 404 (exit 3) once TLS is through: the handshake is
    // what this test is about.
    let (code, _, stderr) = ocisdk(
        home.path(),
        &["tags", &repository],
        &[("SSL_CERT_FILE", ca)],
    );
    assert_eq!(
        code, 3,
        "expected 'not found' over a trusted connection: {stderr}"
    );
    assert!(
        stderr.contains("not found") || stderr.contains("NAME_UNKNOWN"),
        "{stderr}"
    );
}

#[test]
fn https_registry_of_an_unknown_authority_is_refused_with_a_hint() {
    let Some(registry) =
        tls_registry("https_registry_of_an_unknown_authority_is_refused_with_a_hint")
    else {
        return;
    };
    let home = tempfile::tempdir().unwrap();
    let repository = format!("{}/tls/empty", registry.host());
    let (code, stdout, stderr) = ocisdk(home.path(), &["tags", &repository], &[]);
    assert_eq!(code, 6, "stdout: {stdout}\nstderr: {stderr}");
    assert!(stderr.contains("UnknownIssuer"), "{stderr}");
    assert!(
        stderr.contains(&registry.host()),
        "names the registry: {stderr}"
    );
    assert!(
        stderr.contains("--insecure"),
        "hints at the way out: {stderr}"
    );
}

/// A plain-HTTP registry behind a proxy whose own URL is `https://`: the client for
/// `http://` URLs must then trust the system's roots (`SSL_CERT_FILE` here), or it cannot
/// trust the proxy. The TLS registry plays the proxy: Go's server answers an absolute-form
/// request (`GET http://elsewhere/v2/…`) by its path, from its own storage.
#[test]
fn plain_http_registry_through_an_https_proxy_trusted_by_the_system_bundle() {
    let Some(proxy) =
        tls_registry("plain_http_registry_through_an_https_proxy_trusted_by_the_system_bundle")
    else {
        return;
    };
    let home = tempfile::tempdir().unwrap();
    let ca = proxy.ca_pem().unwrap();
    let pushed = format!("{}/proxied/sdk:2.0", proxy.host());
    push_with_ca_file(home.path(), &proxy, &pseudo_random_bytes(4096, 9), &pushed);

    // Nothing listens at this documentation address (TEST-NET-2): only the proxy answers.
    let proxy_url = format!("https://{}", proxy.host());
    let (code, stdout, stderr) = ocisdk(
        home.path(),
        &["--plain-http", "tags", "198.51.100.7:5000/proxied/sdk"],
        &[("http_proxy", Path::new(&proxy_url)), ("SSL_CERT_FILE", ca)],
    );
    assert_eq!(
        (code, stdout.as_str()),
        (0, "2.0\n"),
        "tags through the https:// proxy: {stderr}"
    );

    // A proxy nobody trusts: the hint points at it, not at the registry's TLS.
    let (code, _, stderr) = ocisdk(
        home.path(),
        &["--plain-http", "tags", "198.51.100.7:5000/proxied/sdk"],
        &[("http_proxy", Path::new(&proxy_url))],
    );
    assert_eq!(code, 6, "{stderr}");
    assert!(stderr.contains("UnknownIssuer"), "{stderr}");
    assert!(
        stderr.contains("hint: TLS with the https:// proxy for 198.51.100.7:5000 failed"),
        "{stderr}"
    );
}

/// A plain-HTTP registry on this machine's non-loopback address (where ocisdk speaks HTTPS
/// unless told otherwise), or `None` after saying so.
fn plain_registry(test: &str, builder: RegistryBuilder) -> Option<Registry> {
    let Some(ip) = non_loopback_ipv4() else {
        eprintln!("SKIPPED {test}: this machine has no non-loopback IPv4 address");
        return None;
    };
    Some(builder.plain_on(ip.into()).start())
}

/// Publishes python 3.12.1 (a tarball holding `VERSION`) to the registry at `url`, with
/// `extra` flags (e.g. `--ca-file`).
#[track_caller]
fn publish_python(home: &Path, url: &str, extra: &[&str]) {
    let tarball = home.join("python-bookworm-3.12.1.tar.gz");
    std::fs::write(
        &tarball,
        ocisdk_testkit::tar_gz_of(&[("VERSION", b"3.12.1", 0o644)]),
    )
    .unwrap();
    let file = tarball.to_str().unwrap();
    let args = [
        &[
            "-q",
            "sdk",
            "publish",
            "python",
            "3.12.1",
            file,
            "--registry",
            url,
        ],
        extra,
    ];
    let (code, _, stderr) = ocisdk(home, &args.concat(), &[]);
    assert_eq!(code, 0, "publish to {url}: {stderr}");
}

/// `--to http://…` puts the mirror's target on plain HTTP, and that registry alone: the
/// catalogue is still read over HTTPS (it used to be asked in plain HTTP too, credentials
/// and all, which a TLS registry refuses).
#[test]
fn an_http_url_puts_only_its_own_registry_on_plain_http() {
    let test = "an_http_url_puts_only_its_own_registry_on_plain_http";
    let Some(source) = tls_registry(test) else {
        return;
    };
    let Some(target) = plain_registry(test, RegistryBuilder::new()) else {
        return;
    };
    let home = tempfile::tempdir().unwrap();
    let ca = registry_ca(&source);
    let source_url = source.url();
    publish_python(home.path(), &source_url, &["--ca-file", &ca]);

    let to = format!("http://{}", target.host());
    let (code, _, stderr) = ocisdk(
        home.path(),
        &[
            "sdk",
            "mirror",
            "python",
            "3.12.1",
            "--to",
            &to,
            "--registry",
            &source_url,
            "--ca-file",
            &ca,
        ],
        &[],
    );
    assert_eq!(code, 0, "mirror from HTTPS to plain HTTP: {stderr}");
    let repository = format!("{}/oryx/python-sdk", target.host());
    let (code, tags, stderr) = ocisdk(home.path(), &["tags", &repository, "--plain-http"], &[]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(tags, "bookworm-3.12.1\n");
}

/// An `http://` registry URL with a path (the repository prefix written into it) still puts
/// that registry on plain HTTP: the plain-HTTP host used to be taken with the path, which no
/// request host matches, so requests went out over HTTPS.
#[test]
fn an_http_registry_url_with_a_path_stays_plain_http() {
    let test = "an_http_registry_url_with_a_path_stays_plain_http";
    let Some(registry) = plain_registry(test, RegistryBuilder::new()) else {
        return;
    };
    let home = tempfile::tempdir().unwrap();
    publish_python(home.path(), &format!("http://{}", registry.host()), &[]);
    let with_path = format!("http://{}/oryx", registry.host());
    let (code, stdout, stderr) = ocisdk(
        home.path(),
        &[
            "sdk",
            "versions",
            "python",
            "--registry",
            &with_path,
            "--prefix",
            "",
        ],
        &[],
    );
    assert_eq!((code, stdout.as_str()), (0, "3.12.1\n"), "{stderr}");
}

/// A registry configured for plain HTTP in the config file gets its credentials over it, as
/// with `--plain-http`: `login` asks it over HTTP (it used to try HTTPS), and a push with the
/// stored credentials is not refused for being plain HTTP.
#[test]
fn a_registry_configured_for_plain_http_gets_its_credentials() {
    let test = "a_registry_configured_for_plain_http_gets_its_credentials";
    let builder = RegistryBuilder::new().htpasswd("deployer", "s3cret");
    let Some(registry) = plain_registry(test, builder) else {
        return;
    };
    let home = tempfile::tempdir().unwrap();
    let config = home.path().join("config.toml");
    let host = registry.host();
    std::fs::write(
        &config,
        format!("[registries.\"{host}\"]\nplain_http = true\n"),
    )
    .unwrap();
    let env: &[(&str, &Path)] = &[("OCISDK_CONFIG", &config)];

    let mut login = Command::new(env!("CARGO_BIN_EXE_ocisdk"));
    login
        .args(["login", &host, "-u", "deployer", "--password-stdin"])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home.path())
        .env("OCISDK_CONFIG", &config)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = login.spawn().expect("run ocisdk login");
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), b"s3cret\n").unwrap();
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(0),
        "login over plain HTTP: {stderr}"
    );

    let file = home.path().join("sdk.bin");
    std::fs::write(&file, pseudo_random_bytes(4096, 3)).unwrap();
    let reference = format!("{host}/private/sdk:1.0");
    let (code, _, stderr) = ocisdk(
        home.path(),
        &["push", file.to_str().unwrap(), &reference],
        env,
    );
    assert_eq!(
        code, 0,
        "push with stored credentials over plain HTTP: {stderr}"
    );
    let (code, tags, stderr) = ocisdk(home.path(), &["tags", &format!("{host}/private/sdk")], env);
    assert_eq!((code, tags.as_str()), (0, "1.0\n"), "{stderr}");
}

/// The CA file of a TLS registry, as a string argument.
fn registry_ca(registry: &Registry) -> String {
    registry.ca_pem().unwrap().to_str().unwrap().to_string()
}
