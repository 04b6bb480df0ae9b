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
