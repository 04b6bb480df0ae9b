//! The HTTP client every request goes through: user agent, TLS, timeouts, the plain-HTTP
//! rules and the redirect policy.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

/// The most redirects followed for one request; a registry sending more is broken or hostile.
pub const MAX_REDIRECTS: usize = 10;

/// How the client reaches registries.
#[derive(Debug, Clone)]
pub struct TransportOptions {
    /// Use plain HTTP for every registry, not only loopback ones.
    pub plain_http: bool,
    /// Skip TLS certificate verification (for self-signed test registries only).
    pub insecure: bool,
    /// The `User-Agent` header.
    pub user_agent: String,
    /// How long a TCP + TLS connect may take.
    pub connect_timeout: Duration,
    /// How long a body may deliver no bytes before the transfer counts as stalled. There is
    /// no total timeout on purpose: a 10 GB blob on a slow link must still finish.
    pub stall_timeout: Duration,
    /// PEM files of extra certificate authorities to trust (besides the system's and
    /// `SSL_CERT_FILE`).
    pub ca_files: Vec<PathBuf>,
}

/// Options for one registry host, overriding the client-wide ones.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegistryOptions {
    /// Reach this registry over plain HTTP.
    pub plain_http: bool,
    /// Skip TLS verification for this registry.
    pub insecure: bool,
    /// An extra certificate authority (PEM) for this registry.
    pub ca_file: Option<PathBuf>,
}

impl Default for TransportOptions {
    fn default() -> Self {
        TransportOptions {
            plain_http: false,
            insecure: false,
            user_agent: concat!("ocisdk/", env!("CARGO_PKG_VERSION")).to_string(),
            connect_timeout: Duration::from_secs(15),
            stall_timeout: Duration::from_secs(30),
            ca_files: Vec::new(),
        }
    }
}

/// Whether `host` (with or without `:port`, IPv6 in brackets) is this machine.
pub fn is_loopback(host: &str) -> bool {
    let name = strip_port(host);
    if name.eq_ignore_ascii_case("localhost") {
        return true;
    }
    let bare = name.trim_start_matches('[').trim_end_matches(']');
    bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn strip_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        // "[::1]:5000" → "[::1]"
        return match rest.find(']') {
            Some(end) => &host[..end + 2],
            None => host,
        };
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

/// The URL scheme for a registry host: HTTPS unless the host is loopback or the caller asked
/// for plain HTTP everywhere.
pub fn scheme_for(host: &str, plain_http: bool) -> &'static str {
    if plain_http || is_loopback(host) {
        "http"
    } else {
        "https"
    }
}

/// The HTTP clients of one transport configuration, chosen by each request's scheme.
///
/// Why two: reading the system's root certificates (hundreds of PEM files under
/// `/etc/ssl/certs`) took about a third of the CPU of a short command such as `ocisdk tags`
/// against a plain-HTTP registry, which never needs them. So `http://` requests go through
/// a client built without them, and the client for `https://` is built at the first such
/// request (a redirect or a token realm included: every hop picks its own).
#[derive(Debug)]
pub(crate) struct Http {
    plain: reqwest::Client,
    tls: std::sync::OnceLock<reqwest::Client>,
    options: TransportOptions,
}

impl Http {
    /// Builds the plain-HTTP client now, so that bad options (an unreadable CA file) fail
    /// here rather than at the first request.
    pub(crate) fn new(options: &TransportOptions) -> crate::error::Result<Http> {
        let proxy_speaks_tls =
            plain_requests_go_through_a_tls_proxy(|name| std::env::var(name).ok());
        Ok(Http {
            plain: build_client(options, proxy_speaks_tls)?,
            tls: std::sync::OnceLock::new(),
            options: options.clone(),
        })
    }

    /// A request for `url` on the client for its scheme.
    pub(crate) fn request(
        &self,
        method: reqwest::Method,
        url: url::Url,
    ) -> reqwest::RequestBuilder {
        self.client_for(&url).request(method, url)
    }

    fn client_for(&self, url: &url::Url) -> &reqwest::Client {
        if url.scheme() != "https" {
            return &self.plain;
        }
        self.tls.get_or_init(|| {
            build_client(&self.options, true).unwrap_or_else(|e| {
                // Only the system's certificates differ from the plain client, which
                // still trusts the built-in roots and the configured CA files.
                tracing::warn!("{e}; using the built-in root certificates only");
                self.plain.clone()
            })
        })
    }

    /// Whether the client for `https://` was built yet.
    #[cfg(test)]
    pub(crate) fn tls_built(&self) -> bool {
        self.tls.get().is_some()
    }
}

/// Whether the environment sends `http://` requests through a proxy reached over TLS (an
/// `https://` proxy URL in a variable reqwest reads for them): then the plain client must
/// trust the system's root certificates too, or it could not trust the proxy.
fn plain_requests_go_through_a_tls_proxy(var: impl Fn(&str) -> Option<String>) -> bool {
    ["http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"]
        .into_iter()
        .filter_map(var)
        .any(|url| url.trim().to_ascii_lowercase().starts_with("https://"))
}

/// Builds a client, with the system's root certificates when `system_roots` (besides the
/// built-in ones and the configured CA files). Redirects are not followed here but by hand,
/// one hop at a time (`registry::http`), so that `Authorization` never reaches another
/// origin and https → http is refused: reqwest's own policy re-sends the original headers
/// on later hops.
fn build_client(
    options: &TransportOptions,
    system_roots: bool,
) -> crate::error::Result<reqwest::Client> {
    let redirect = reqwest::redirect::Policy::none();
    let mut builder = reqwest::Client::builder().tls_built_in_native_certs(system_roots);
    for path in &options.ca_files {
        let pem = std::fs::read(path)
            .map_err(|e| crate::error::Error::io("reading the CA file", path, e))?;
        let certificates = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
            crate::error::Error::InvalidInput(format!(
                "{} is not a PEM certificate bundle: {e}",
                path.display()
            ))
        })?;
        for certificate in certificates {
            builder = builder.add_root_certificate(certificate);
        }
    }
    builder
        .user_agent(options.user_agent.clone())
        .connect_timeout(options.connect_timeout)
        .read_timeout(options.stall_timeout)
        .danger_accept_invalid_certs(options.insecure)
        .redirect(redirect)
        // Registries often answer small requests quickly; Nagle only adds latency.
        .tcp_nodelay(true)
        .pool_idle_timeout(Duration::from_secs(60))
        .build()
        .map_err(|e| {
            crate::error::Error::InvalidInput(format!(
                "cannot set up the HTTP client: {}",
                describe_reqwest(&e)
            ))
        })
}

/// A one-line human description of a client error, walking its sources so that "connection
/// refused" or "certificate not trusted" is visible, not just "error sending request".
pub(crate) fn describe_reqwest(err: &reqwest::Error) -> String {
    let mut text = if err.is_timeout() {
        "timed out".to_string()
    } else if err.is_connect() {
        "could not connect".to_string()
    } else if err.is_redirect() {
        "redirect refused".to_string()
    } else {
        "request failed".to_string()
    };
    let mut source = std::error::Error::source(err);
    let mut last = String::new();
    while let Some(s) = source {
        let msg = s.to_string();
        if msg != last {
            text.push_str(": ");
            text.push_str(&msg);
            last = msg;
        }
        source = s.source();
    }
    if let Some(url) = err.url() {
        let mut url = url.clone();
        // Never let userinfo reach an error message, nor a query: a redirect's URL to blob
        // storage is signed there (X-Amz-Signature, sig=), and works for anyone holding it.
        let _ = url.set_password(None);
        let _ = url.set_username("");
        if url.query().is_some() {
            url.set_query(Some("redacted"));
        }
        text.push_str(&format!(" ({url})"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Plain-HTTP requests never build the TLS client (nor read the system's certificates);
    /// the first `https://` request does, and redirects or token realms pick by their own URL.
    #[test]
    fn the_tls_client_is_built_at_the_first_https_request() {
        let http = Http::new(&TransportOptions::default()).unwrap();
        let plain = url::Url::parse("http://127.0.0.1:5000/v2/").unwrap();
        let _ = http.request(reqwest::Method::GET, plain.clone());
        assert!(
            !http.tls_built(),
            "a plain-HTTP request built the TLS client"
        );
        let tls = url::Url::parse("https://registry.example/v2/").unwrap();
        let request = http.request(reqwest::Method::GET, tls).build().unwrap();
        assert!(
            http.tls_built(),
            "an https request did not build the TLS client"
        );
        assert_eq!(request.url().scheme(), "https");
        let _ = http.request(reqwest::Method::GET, plain);
        assert!(http.tls_built());
    }

    #[test]
    fn plain_requests_trust_the_system_roots_only_behind_an_https_proxy() {
        let tls_proxy = |vars: &[(&str, &str)]| {
            plain_requests_go_through_a_tls_proxy(|name| {
                vars.iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            })
        };
        assert!(!tls_proxy(&[]));
        assert!(!tls_proxy(&[
            ("http_proxy", "http://proxy:3128"),
            ("HTTPS_PROXY", "https://proxy:3129"),
        ]));
        assert!(tls_proxy(&[("http_proxy", "https://proxy:3129")]));
        assert!(tls_proxy(&[("HTTP_PROXY", " HTTPS://proxy:3129")]));
        assert!(tls_proxy(&[("all_proxy", "https://proxy")]));
        assert!(tls_proxy(&[("ALL_PROXY", "https://user:secret@proxy:443")]));
    }

    #[test]
    fn loopback_hosts_get_plain_http() {
        for host in [
            "localhost",
            "localhost:5000",
            "LOCALHOST",
            "127.0.0.1",
            "127.0.0.1:5000",
            "127.1.2.3:80",
            "[::1]",
            "[::1]:5000",
        ] {
            assert!(is_loopback(host), "{host}");
            assert_eq!(scheme_for(host, false), "http", "{host}");
        }
        for host in [
            "mcr.microsoft.com",
            "10.0.0.1:5000",
            "localhost.example.com",
            "[::2]:5000",
        ] {
            assert!(!is_loopback(host), "{host}");
            assert_eq!(scheme_for(host, false), "https", "{host}");
            assert_eq!(scheme_for(host, true), "http", "{host}");
        }
    }
}
