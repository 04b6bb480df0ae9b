//! A real CNCF distribution registry (`docker-registry serve`, Debian package
//! `docker-registry`) on a free loopback port, with throw-away storage.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tempfile::TempDir;

use crate::{free_port, http};

/// How long [`Registry::start`] waits for `GET /v2/` to answer 200.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// How many ports are tried when the chosen port was taken before the registry bound it.
const PORT_ATTEMPTS: usize = 5;
/// Response header carrying a per-instance nonce, so readiness checks cannot be fooled by
/// another server that grabbed the port.
const INSTANCE_HEADER: &str = "X-Testkit-Instance";

/// Options for a [`Registry`]; [`RegistryBuilder::start`] launches it.
///
/// The generated configuration always sets `log` (level warn, to a file),
/// `storage.filesystem` (a fresh temp dir), `storage.delete.enabled: true`,
/// `storage.redirect.disable: true` and `http.addr`/`http.secret`/`http.headers`.
/// Other top-level sections (`auth:`, `proxy:`, `notifications:`, ...) can be added with
/// [`extra_config`](Self::extra_config), and more keys under `http:` (e.g. `tls:`) with
/// [`http_config`](Self::http_config).
#[derive(Debug, Clone, Default)]
pub struct RegistryBuilder {
    extra_config: Vec<String>,
    http_config: Vec<String>,
    htpasswd: Option<HtpasswdSource>,
    env: Vec<(String, String)>,
    tls_on: Option<std::net::IpAddr>,
    plain_on: Option<std::net::IpAddr>,
}

#[derive(Debug, Clone)]
enum HtpasswdSource {
    File(PathBuf),
    Users(Vec<(String, String)>),
}

impl RegistryBuilder {
    /// A builder with the default configuration (anonymous read/write access).
    pub fn new() -> Self {
        Self::default()
    }

    /// Requires HTTP basic auth for the user `user` with password `password`
    /// (`auth: htpasswd`). Can be called several times to add users. The bcrypt htpasswd
    /// file is generated in the registry's temp dir.
    pub fn htpasswd(mut self, user: &str, password: &str) -> Self {
        if !matches!(self.htpasswd, Some(HtpasswdSource::Users(_))) {
            self.htpasswd = Some(HtpasswdSource::Users(Vec::new()));
        }
        if let Some(HtpasswdSource::Users(users)) = &mut self.htpasswd {
            users.push((user.to_string(), password.to_string()));
        }
        self
    }

    /// Requires HTTP basic auth against an existing htpasswd file (bcrypt lines
    /// `user:$2y$...`).
    pub fn htpasswd_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.htpasswd = Some(HtpasswdSource::File(path.into()));
        self
    }

    /// Appends a YAML fragment of top-level sections to the configuration, e.g.
    /// `"proxy:\n  remoteurl: http://127.0.0.1:5001\n"`. It must not repeat `version`,
    /// `log`, `storage` or `http` (use [`http_config`](Self::http_config) for the latter),
    /// nor `auth` together with [`htpasswd`](Self::htpasswd).
    pub fn extra_config(mut self, yaml: &str) -> Self {
        self.extra_config.push(yaml.to_string());
        self
    }

    /// Adds keys under the `http:` section, written unindented, e.g.
    /// `"tls:\n  certificate: /x.crt\n  key: /x.key\n"`; the testkit indents them.
    pub fn http_config(mut self, yaml: &str) -> Self {
        self.http_config.push(yaml.to_string());
        self
    }

    /// Serves HTTPS on `ip` (instead of HTTP on 127.0.0.1) with a certificate for that
    /// address, issued by a certificate authority made for this registry
    /// ([`Registry::ca_pem`]). For a non-loopback address of this machine (see
    /// [`crate::non_loopback_ipv4`]): ocisdk always speaks plain HTTP to loopback.
    pub fn tls_on(mut self, ip: std::net::IpAddr) -> Self {
        self.tls_on = Some(ip);
        self
    }

    /// Serves plain HTTP on `ip` instead of 127.0.0.1: for a non-loopback address of this
    /// machine, where ocisdk speaks HTTPS unless told otherwise.
    pub fn plain_on(mut self, ip: std::net::IpAddr) -> Self {
        self.plain_on = Some(ip);
        self
    }

    /// Sets an environment variable for the registry process (distribution reads
    /// `REGISTRY_*` variables as configuration overrides).
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    /// Starts the registry; panics with the registry log on failure.
    #[track_caller]
    pub fn start(self) -> Registry {
        match self.try_start() {
            Ok(r) => r,
            Err(e) => panic!("{e}"),
        }
    }

    /// Starts the registry, returning a descriptive error on failure.
    pub fn try_start(self) -> Result<Registry, String> {
        let dir = tempfile::Builder::new()
            .prefix("ocisdk-registry-")
            .tempdir()
            .map_err(|e| format!("creating registry temp dir: {e}"))?;
        let storage = dir.path().join("storage");
        fs::create_dir_all(&storage).map_err(|e| format!("creating storage dir: {e}"))?;
        let htpasswd_path = match &self.htpasswd {
            None => None,
            Some(HtpasswdSource::File(p)) => Some(p.clone()),
            Some(HtpasswdSource::Users(users)) => {
                let path = dir.path().join("htpasswd");
                let mut text = String::new();
                for (user, password) in users {
                    // Cost 4 (the minimum) keeps the registry's per-request check cheap.
                    let hash = bcrypt::hash(password, 4).map_err(|e| format!("bcrypt: {e}"))?;
                    let _ = writeln!(text, "{user}:{hash}");
                }
                fs::write(&path, text).map_err(|e| format!("writing htpasswd: {e}"))?;
                Some(path)
            }
        };
        let ca_pem = match self.tls_on {
            None => None,
            Some(ip) => Some(write_tls_files(dir.path(), ip)?),
        };
        let mut registry = Registry {
            ca_pem,
            child: None,
            port: 0,
            nonce: new_nonce(),
            config_path: dir.path().join("config.yml"),
            log_path: dir.path().join("registry.log"),
            storage,
            options: self,
            htpasswd_path,
            _dir: dir,
        };
        let mut last_err = String::new();
        for _ in 0..PORT_ATTEMPTS {
            registry.port = free_port();
            match registry.spawn_and_wait() {
                Ok(()) => return Ok(registry),
                Err(SpawnError::PortTaken(e)) => last_err = e,
                Err(SpawnError::Fatal(e)) => return Err(e),
            }
        }
        Err(format!(
            "registry: gave up after {PORT_ATTEMPTS} ports were taken; last error: {last_err}"
        ))
    }
}

enum SpawnError {
    /// The port was grabbed by someone else between `free_port` and the registry's bind.
    PortTaken(String),
    Fatal(String),
}

/// A running `docker-registry` on `127.0.0.1:<port>` with its own temp storage.
///
/// The process is killed (and reaped) on drop; the temp dir (config, log, storage) is
/// removed then too. See [`RegistryBuilder`] for options.
#[derive(Debug)]
pub struct Registry {
    /// The certificate authority's PEM, when serving HTTPS.
    ca_pem: Option<PathBuf>,
    child: Option<Child>,
    port: u16,
    nonce: String,
    config_path: PathBuf,
    log_path: PathBuf,
    storage: PathBuf,
    options: RegistryBuilder,
    htpasswd_path: Option<PathBuf>,
    // Last field: removed after everything else is dropped.
    _dir: TempDir,
}

impl Registry {
    /// Starts a registry with the default configuration; panics (with the registry log)
    /// if it cannot be started. Shortcut for `RegistryBuilder::new().start()`.
    #[track_caller]
    pub fn start() -> Registry {
        RegistryBuilder::new().start()
    }

    /// `127.0.0.1:PORT` (`IP:PORT` with [`RegistryBuilder::tls_on`] or
    /// [`RegistryBuilder::plain_on`]), the registry host as used in image references.
    pub fn host(&self) -> String {
        match self.options.tls_on.or(self.options.plain_on) {
            Some(std::net::IpAddr::V6(ip)) => format!("[{ip}]:{}", self.port),
            Some(ip) => format!("{ip}:{}", self.port),
            None => format!("127.0.0.1:{}", self.port),
        }
    }

    /// The PEM file of the certificate authority that issued the registry's certificate,
    /// when it serves HTTPS.
    pub fn ca_pem(&self) -> Option<&Path> {
        self.ca_pem.as_deref()
    }

    /// The port the registry listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT` (`https://IP:PORT` with TLS; no trailing slash).
    pub fn url(&self) -> String {
        let scheme = if self.ca_pem.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}", self.host())
    }

    /// The storage root (`storage.filesystem.rootdirectory`).
    pub fn storage_dir(&self) -> &Path {
        &self.storage
    }

    /// Where the registry keeps the data of blob `digest` (`sha256:<hex>` or bare hex):
    /// `<root>/docker/registry/v2/blobs/sha256/<hex[..2]>/<hex>/data`. The file exists only
    /// once the blob was pushed.
    pub fn blob_data_path(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
        assert!(
            hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()),
            "blob_data_path: not a sha256 digest: {digest:?}"
        );
        self.storage
            .join("docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }

    /// The path of the generated `config.yml`.
    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// The htpasswd file in use, if basic auth was configured.
    pub fn htpasswd_path(&self) -> Option<&Path> {
        self.htpasswd_path.as_deref()
    }

    /// Everything the registry process wrote to stdout/stderr so far (its log and access
    /// log), across restarts.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Whether the registry process is running (false after [`stop`](Self::stop) or if
    /// it died).
    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Kills the registry now and waits for it to exit, keeping its storage and port
    /// number: for "registry is down" tests. [`restart`](Self::restart) brings it back.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the registry again on the same port with the same storage (stopping it
    /// first if it is running) and waits until it is ready. Panics if the port was taken
    /// in the meantime or the registry does not come up.
    #[track_caller]
    pub fn restart(&mut self) {
        self.stop();
        match self.spawn_and_wait() {
            Ok(()) => {}
            Err(SpawnError::PortTaken(e)) | Err(SpawnError::Fatal(e)) => panic!("{e}"),
        }
    }

    fn write_config(&self) -> Result<(), String> {
        let mut cfg = String::new();
        let _ = write!(
            cfg,
            "version: 0.1\n\
             log:\n  level: warn\n  formatter: text\n\
             storage:\n  filesystem:\n    rootdirectory: {storage}\n  delete:\n    enabled: true\n  redirect:\n    disable: true\n\
             http:\n  addr: {host}\n  secret: testkit-{nonce}\n  headers:\n    {INSTANCE_HEADER}: [\"{nonce}\"]\n",
            storage = yaml_quote(&self.storage.display().to_string()),
            host = self.host(),
            nonce = self.nonce,
        );
        if let Some(ca) = &self.ca_pem {
            let dir = ca.parent().unwrap_or(Path::new("."));
            let _ = write!(
                cfg,
                "  tls:\n    certificate: {}\n    key: {}\n",
                yaml_quote(&dir.join("registry.pem").display().to_string()),
                yaml_quote(&dir.join("registry.key").display().to_string()),
            );
        }
        for fragment in &self.options.http_config {
            for line in fragment.lines() {
                let _ = writeln!(cfg, "  {line}");
            }
        }
        if let Some(path) = &self.htpasswd_path {
            let _ = write!(
                cfg,
                "auth:\n  htpasswd:\n    realm: testkit\n    path: {}\n",
                yaml_quote(&path.display().to_string())
            );
        }
        for fragment in &self.options.extra_config {
            cfg.push_str(fragment);
            if !fragment.ends_with('\n') {
                cfg.push('\n');
            }
        }
        fs::write(&self.config_path, cfg).map_err(|e| format!("writing registry config: {e}"))
    }

    fn spawn_and_wait(&mut self) -> Result<(), SpawnError> {
        self.write_config().map_err(SpawnError::Fatal)?;
        let log_start = fs::metadata(&self.log_path).map(|m| m.len()).unwrap_or(0);
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .map_err(|e| SpawnError::Fatal(format!("opening registry log: {e}")))?;
        let log2 = log
            .try_clone()
            .map_err(|e| SpawnError::Fatal(format!("cloning log handle: {e}")))?;
        let mut cmd = Command::new("docker-registry");
        cmd.arg("serve")
            .arg(&self.config_path)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2);
        for (k, v) in &self.options.env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().map_err(|e| {
            SpawnError::Fatal(format!(
                "cannot run `docker-registry` ({e}); install it with `apt-get install -y docker-registry`"
            ))
        })?;
        self.child = Some(child);

        let deadline = Instant::now() + READY_TIMEOUT;
        let probe = format!("{}/v2/", self.url());
        loop {
            let exited = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            if let Some(status) = exited {
                self.child = None;
                let tail = self.log_since(log_start);
                let msg = format!(
                    "docker-registry exited ({status}) before becoming ready on port {}; log:\n{tail}",
                    self.port
                );
                return Err(if tail.contains("address already in use") {
                    SpawnError::PortTaken(msg)
                } else {
                    SpawnError::Fatal(msg)
                });
            }
            // The testkit's HTTP client speaks no TLS: for HTTPS, a listening port is
            // the sign (the port was free a moment ago).
            if self.ca_pem.is_some() && std::net::TcpStream::connect(self.host()).is_ok() {
                return Ok(());
            }
            if let Ok(resp) = http::get(&probe) {
                // With auth configured /v2/ answers 401; either way the nonce header
                // proves it is our process answering.
                if resp.header(INSTANCE_HEADER) == Some(self.nonce.as_str()) {
                    return Ok(());
                }
            }
            if Instant::now() >= deadline {
                self.stop();
                return Err(SpawnError::Fatal(format!(
                    "docker-registry did not answer GET /v2/ within {READY_TIMEOUT:?} on port {}; log:\n{}",
                    self.port,
                    self.log_since(log_start)
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The log written since byte offset `start`, limited to its last 4 KiB.
    fn log_since(&self, start: u64) -> String {
        let log = fs::read(&self.log_path).unwrap_or_default();
        let from = (start as usize)
            .min(log.len())
            .max(log.len().saturating_sub(4096));
        String::from_utf8_lossy(&log[from..]).into_owned()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A process-unique, run-unique token.
fn new_nonce() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        nanos
    )
}

/// Double-quotes a string for YAML.
fn yaml_quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Writes a certificate authority (`ca.pem`) and a certificate for `ip` issued by it
/// (`registry.pem`, `registry.key`) into `dir`; returns the authority's path.
fn write_tls_files(dir: &Path, ip: std::net::IpAddr) -> Result<PathBuf, String> {
    let fail = |e: rcgen::Error| format!("making the test certificates: {e}");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(fail)?;
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "ocisdk testkit CA");
    let ca =
        rcgen::CertifiedIssuer::self_signed(ca_params, rcgen::KeyPair::generate().map_err(fail)?)
            .map_err(fail)?;
    let key = rcgen::KeyPair::generate().map_err(fail)?;
    let leaf = rcgen::CertificateParams::new(vec![ip.to_string()])
        .map_err(fail)?
        .signed_by(&key, &ca)
        .map_err(fail)?;
    let ca_path = dir.join("ca.pem");
    for (path, text) in [
        (ca_path.clone(), ca.pem()),
        (dir.join("registry.pem"), leaf.pem()),
        (dir.join("registry.key"), key.serialize_pem()),
    ] {
        fs::write(&path, text).map_err(|e| format!("writing {}: {e}", path.display()))?;
    }
    Ok(ca_path)
}
