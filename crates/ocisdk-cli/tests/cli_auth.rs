//! End-to-end authentication tests of the `ocisdk` binary against a real CNCF distribution
//! registry, with `auth: htpasswd` and with `auth: token` (the testkit's JWT-signing
//! [`TokenServer`]): every credential source, `login`/`logout`, exit codes, and secrets kept
//! out of `-vv` and `--json` output.
//!
//! Every run gets its own `HOME`, `XDG_RUNTIME_DIR` and cache, and no `DOCKER_CONFIG`,
//! `REGISTRY_AUTH_FILE` or `OCISDK_*` variable unless the test sets one, so the developer's
//! real credentials never leak in.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use ocisdk_testkit::{cli, content, Registry, RegistryBuilder, TokenServer};
use serde_json::Value;

const USER: &str = "alice";
const PASSWORD: &str = "pa55-Word-for-cli";
const PUBLIC: &str = "public/tool";
const PRIVATE: &str = "private/tool";

/// What one run produced.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    #[track_caller]
    fn expect_code(self, want: i32) -> Run {
        assert_eq!(
            self.code, want,
            "exit code; stdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        self
    }
}

/// A private world for the binary: home, runtime dir, cache, a `bin` folder put first on
/// `PATH` (for fake credential helpers), and the variables a test adds.
struct World {
    dir: tempfile::TempDir,
    vars: Vec<(String, String)>,
}

impl World {
    fn new() -> World {
        let dir = tempfile::tempdir().unwrap();
        for sub in ["home", "run", "cache", "bin"] {
            std::fs::create_dir_all(dir.path().join(sub)).unwrap();
        }
        World {
            dir,
            vars: Vec::new(),
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn with(mut self, key: &str, value: &str) -> World {
        self.vars.push((key.into(), value.into()));
        self
    }

    fn write(&self, rel: &str, text: &str) -> PathBuf {
        let path = self.path(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        path
    }

    /// A `docker-credential-test` helper that answers `get` with `user`/`secret`, records
    /// what it was asked on stdin in `helper-<action>.log`, each run's action in
    /// `helper-runs.log` and the signals it started with ignored in `helper-sigign.log`
    /// (see [`World::helper_ignored_signals`]), and stores nothing.
    fn install_helper(&self, user: &str, secret: &str) {
        let log = self.path("helper");
        let script = format!(
            "#!/bin/sh\ninput=$(cat)\nprintf '%s' \"$input\" > '{log}-'\"$1\".log\n\
             echo \"$1\" >> '{log}-runs.log'\n\
             while read -r key value; do\n  \
               if [ \"$key\" = SigIgn: ]; then echo \"$value\" > '{log}-sigign.log'; fi\n\
             done < /proc/$$/status\n\
             case \"$1\" in\n  get) printf '{{\"ServerURL\":\"%s\",\"Username\":\"{user}\",\"Secret\":\"{secret}\"}}' \"$input\" ;;\n  store|erase) ;;\n  *) exit 1 ;;\nesac\n",
            log = log.display()
        );
        let path = self.write("bin/docker-credential-test", &script);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
    }

    /// A world whose docker config sends `host` to the `test` helper of
    /// [`World::install_helper`], which answers with `USER`/`PASSWORD`.
    fn with_helper_for(host: &str) -> World {
        let world = World::new();
        world.install_helper(USER, PASSWORD);
        world.write(
            "home/.docker/config.json",
            &format!(r#"{{"credHelpers":{{"{host}":"test"}}}}"#),
        );
        world
    }

    fn helper_log(&self, action: &str) -> String {
        std::fs::read_to_string(format!("{}-{action}.log", self.path("helper").display()))
            .unwrap_or_default()
    }

    /// The mask of signals the helper's last run started with ignored (`SigIgn` of its
    /// `/proc/PID/status`: bit N-1 is signal N).
    fn helper_ignored_signals(&self) -> u64 {
        let log = format!("{}-sigign.log", self.path("helper").display());
        let text = std::fs::read_to_string(&log).expect("the helper ran and wrote its SigIgn");
        u64::from_str_radix(text.trim(), 16).unwrap_or_else(|e| panic!("SigIgn {text:?}: {e}"))
    }

    /// How many times the helper was run for `action` since the last call (the count starts
    /// over).
    fn helper_runs(&self, action: &str) -> usize {
        let log = format!("{}-runs.log", self.path("helper").display());
        let runs = std::fs::read_to_string(&log).unwrap_or_default();
        let _ = std::fs::remove_file(&log);
        runs.lines().filter(|line| *line == action).count()
    }

    /// Runs `ocisdk ARGS…` with `stdin` as standard input.
    fn run_with_stdin(&self, args: &[&str], stdin: &str) -> Run {
        let path = format!(
            "{}:{}",
            self.path("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ocisdk"));
        cli::scrub(&mut cmd)
            .args(args)
            .env("HOME", self.path("home"))
            .env("XDG_RUNTIME_DIR", self.path("run"))
            .env("OCISDK_CACHE_DIR", self.path("cache"))
            .env("PATH", path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in &self.vars {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("run ocisdk");
        // A run that fails before reading its input closes the pipe early: not an error here.
        let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
        let out = child.wait_with_output().unwrap();
        Run {
            code: out.status.code().expect("killed by a signal"),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    fn run(&self, args: &[&str]) -> Run {
        self.run_with_stdin(args, "")
    }
}

fn b64(text: &str) -> String {
    // The alphabet is small enough to spell out here rather than add a dev-dependency.
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes = text.as_bytes();
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(TABLE[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn auth_json(host: &str, user: &str, password: &str) -> String {
    format!(
        r#"{{"auths":{{"{host}":{{"auth":"{}"}}}}}}"#,
        b64(&format!("{user}:{password}"))
    )
}

/// Asserts that no form of the secrets shows in `text`.
#[track_caller]
fn assert_no_secret(text: &str, secrets: &[&str]) {
    for s in secrets {
        assert!(!text.contains(s), "secret {s:?} leaked:\n{text}");
        let basic = b64(&format!("{USER}:{s}"));
        assert!(
            !text.contains(&basic),
            "Basic form of {s:?} leaked:\n{text}"
        );
    }
    assert!(!text.contains("Bearer ey"), "a token leaked:\n{text}");
}

/// Pushes `file` to `reference` with USER's credentials given on the command line.
fn push_as_user(world: &World, file: &str, reference: &str) {
    world
        .run_with_stdin(
            &["push", file, reference, "-u", USER, "--password-stdin"],
            PASSWORD,
        )
        .expect_code(0);
}

/// A file to push.
fn layer_file(world: &World, content: &str) -> String {
    world.write("layer.bin", content).display().to_string()
}

// ---------------------------------------------------------------------------------------
// auth: htpasswd
// ---------------------------------------------------------------------------------------

#[test]
fn basic_registry_takes_credentials_from_every_source() {
    let registry = RegistryBuilder::new().htpasswd(USER, PASSWORD).start();
    let host = registry.host();
    let repo = format!("{host}/{PRIVATE}");
    let world = World::new();

    // Flags: push with --username and --password-stdin.
    let file = layer_file(&world, "basic layer");
    world
        .run_with_stdin(
            &[
                "push",
                &file,
                &format!("{repo}:1"),
                "-u",
                USER,
                "--password-stdin",
            ],
            &format!("{PASSWORD}\n"),
        )
        .expect_code(0);

    // Anonymous: refused, exit 4, with a hint.
    let run = world.run(&["tags", &repo]).expect_code(4);
    assert!(
        run.stderr.contains("hint: log in with `ocisdk login"),
        "{}",
        run.stderr
    );

    // Environment variables.
    let env = World::new()
        .with("OCISDK_USERNAME", USER)
        .with("OCISDK_PASSWORD", PASSWORD);
    assert_eq!(env.run(&["tags", &repo]).expect_code(0).stdout, "1\n");

    // docker config.json through DOCKER_CONFIG, and in ~/.docker.
    let docker = World::new();
    docker.write("dockercfg/config.json", &auth_json(&host, USER, PASSWORD));
    let dir = docker.path("dockercfg").display().to_string();
    let docker = docker.with("DOCKER_CONFIG", &dir);
    docker.run(&["tags", &repo]).expect_code(0);
    let home = World::new();
    home.write(
        "home/.docker/config.json",
        &auth_json(&format!("http://{host}"), USER, PASSWORD),
    );
    home.run(&["tags", &repo]).expect_code(0);

    // A credHelpers entry for the host, and a credsStore default.
    for config in [
        format!(r#"{{"credHelpers":{{"{host}":"test"}}}}"#),
        r#"{"credsStore":"test","auths":{}}"#.to_string(),
    ] {
        let helped = World::new();
        helped.install_helper(USER, PASSWORD);
        helped.write("home/.docker/config.json", &config);
        helped.run(&["tags", &repo]).expect_code(0);
        assert_eq!(
            helped.helper_log("get"),
            host,
            "the helper is asked for the host"
        );
    }

    // containers auth.json via REGISTRY_AUTH_FILE, and in $XDG_RUNTIME_DIR/containers.
    let podman = World::new();
    let file = podman.write("podman-auth.json", &auth_json(&host, USER, PASSWORD));
    let podman = podman.with("REGISTRY_AUTH_FILE", &file.display().to_string());
    podman.run(&["tags", &repo]).expect_code(0);
    let runtime = World::new();
    runtime.write(
        "run/containers/auth.json",
        &auth_json(&host, USER, PASSWORD),
    );
    runtime.run(&["tags", &repo]).expect_code(0);

    // First match wins: flags before the environment, the environment before files.
    let layered = World::new()
        .with("OCISDK_USERNAME", USER)
        .with("OCISDK_PASSWORD", "wrong-env-password");
    layered.write(
        "home/.docker/config.json",
        &auth_json(&host, USER, "wrong-file-password"),
    );
    let run = layered.run(&["tags", &repo]).expect_code(4);
    assert_no_secret(&run.stderr, &["wrong-env-password"]);
    layered
        .run_with_stdin(&["tags", &repo, "-u", USER, "--password-stdin"], PASSWORD)
        .expect_code(0);

    // Half-given credentials are usage errors.
    world.run(&["tags", &repo, "-u", USER]).expect_code(2);
    world
        .run(&["tags", &repo, "--password-stdin"])
        .expect_code(2);
    World::new()
        .with("OCISDK_USERNAME", USER)
        .run(&["tags", &repo])
        .expect_code(2);
}

/// A credential helper is a program (docker's desktop helper takes a tenth of a second or
/// more) that answers per host: a command runs it once per registry, however many of its
/// repositories it reads and writes. It ran once per repository since credentials are
/// looked up per repository (for auth.json's namespace keys).
#[test]
fn a_credential_helper_runs_once_per_registry_not_per_repository() {
    let registry = RegistryBuilder::new().htpasswd(USER, PASSWORD).start();
    let host = registry.host();
    let world = World::with_helper_for(&host);
    let file = layer_file(&world, "one layer, three repositories");
    world
        .run(&["push", &file, &format!("{host}/team-a/tool:1")])
        .expect_code(0);
    assert_eq!(world.helper_runs("get"), 1, "push");

    // Reads team-a/tool, writes team-b/tool, mounting from team-a.
    world
        .run(&[
            "copy",
            &format!("{host}/team-a/tool:1"),
            &format!("{host}/team-b/tool:1"),
        ])
        .expect_code(0);
    assert_eq!(world.helper_runs("get"), 1, "copy");
    assert_eq!(world.helper_log("get"), host, "asked for the host");
}

/// The binary ignores SIGXFSZ, so that its own write past `ulimit -f` fails with EFBIG
/// instead of killing it; an ignored signal stays ignored across exec, and a credential
/// helper, written for the default, inherited it. It gets the default back.
#[test]
fn a_credential_helper_starts_with_the_default_file_size_signal() {
    let registry = RegistryBuilder::new().htpasswd(USER, PASSWORD).start();
    let host = registry.host();
    let world = World::with_helper_for(&host);
    let file = layer_file(&world, "pushed with the helper's credentials");
    world
        .run(&["push", &file, &format!("{host}/private/tool:1")])
        .expect_code(0);
    assert_eq!(world.helper_runs("get"), 1);
    let ignored = world.helper_ignored_signals();
    let sigxfsz = 1u64 << (libc::SIGXFSZ - 1);
    assert_eq!(ignored & sigxfsz, 0, "SigIgn {ignored:#x}: SIGXFSZ ignored");
}

#[test]
fn login_checks_stores_and_logout_removes() {
    let registry = RegistryBuilder::new().htpasswd(USER, PASSWORD).start();
    let host = registry.host();
    let repo = format!("{host}/{PRIVATE}");
    let world = World::new();
    let config = world.path("home/.docker/config.json");

    // A wrong password is checked against the registry and never stored.
    let run = world
        .run_with_stdin(
            &["login", &host, "-u", USER, "--password-stdin"],
            "nope-wrong\n",
        )
        .expect_code(4);
    assert_no_secret(&run.stderr, &["nope-wrong"]);
    assert!(!config.exists());
    // In JSON, a registry-wide failure has no repository: null, not "".
    let run = world
        .run_with_stdin(
            &["login", &host, "-u", USER, "--password-stdin", "--json"],
            "nope-wrong\n",
        )
        .expect_code(4);
    let error: Value = serde_json::from_str(run.stderr.trim()).unwrap();
    assert_eq!(error["error"]["repository"], Value::Null, "{error}");
    assert_eq!(error["error"]["registry"], host.as_str(), "{error}");

    let run = world
        .run_with_stdin(&["login", &host, "-u", USER, "--password-stdin"], PASSWORD)
        .expect_code(0);
    assert!(run.stdout.contains("Login succeeded"), "{}", run.stdout);
    assert!(run.stderr.contains("unencrypted"), "{}", run.stderr);
    let stored: Value = serde_json::from_str(&std::fs::read_to_string(&config).unwrap()).unwrap();
    assert_eq!(
        stored["auths"][&host]["auth"],
        b64(&format!("{USER}:{PASSWORD}"))
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&config).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    // Later commands use the stored credentials.
    let file = layer_file(&world, "after login");
    world
        .run(&["push", &file, &format!("{repo}:1")])
        .expect_code(0);
    world.run(&["tags", &repo]).expect_code(0);

    let run = world.run(&["logout", &host, "--json"]).expect_code(0);
    let out: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(out["removed"], true);
    world.run(&["tags", &repo]).expect_code(4);
    let run = world.run(&["logout", &host]).expect_code(0);
    assert!(run.stdout.contains("Not logged in"), "{}", run.stdout);

    // With a credential store configured, login hands the secret to the helper.
    let helped = World::new();
    helped.install_helper(USER, PASSWORD);
    helped.write("home/.docker/config.json", r#"{"credsStore":"test"}"#);
    let run = helped
        .run_with_stdin(
            &["login", &host, "-u", USER, "--password-stdin", "--json"],
            PASSWORD,
        )
        .expect_code(0);
    let out: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(out["stored_in"]["helper"], "docker-credential-test");
    let given: Value = serde_json::from_str(&helped.helper_log("store")).unwrap();
    assert_eq!(given["ServerURL"], host.as_str());
    assert_eq!(given["Username"], USER);
    assert_eq!(given["Secret"], PASSWORD);
    let left = std::fs::read_to_string(helped.path("home/.docker/config.json")).unwrap();
    assert!(
        !left.contains(&b64(&format!("{USER}:{PASSWORD}"))),
        "{left}"
    );
    helped.run(&["logout", &host]).expect_code(0);
    assert_eq!(helped.helper_log("erase"), host);
}

// ---------------------------------------------------------------------------------------
// auth: token
// ---------------------------------------------------------------------------------------

fn token_registry() -> (TokenServer, Registry) {
    let tokens = TokenServer::builder()
        .user(USER, PASSWORD)
        .anonymous_pull(PUBLIC)
        .start();
    let registry = RegistryBuilder::new()
        .extra_config(&tokens.registry_config())
        .start();
    (tokens, registry)
}

#[test]
fn token_registry_pull_push_and_refusals() {
    let (tokens, registry) = token_registry();
    let host = registry.host();
    let world = World::new();
    let file = layer_file(&world, "token layer");
    let public = format!("{host}/{PUBLIC}");

    // Push needs credentials.
    let run = world
        .run(&["push", &file, &format!("{public}:1")])
        .expect_code(4);
    assert!(run.stderr.contains("ocisdk login"), "{}", run.stderr);
    push_as_user(&world, &file, &format!("{public}:1"));
    push_as_user(&world, &file, &format!("{host}/{PRIVATE}:1"));

    // Anonymous pull of the public repository works; of the private one it does not.
    let out = world.path("pulled.bin");
    world
        .run(&[
            "pull",
            &format!("{public}:1"),
            "-o",
            &out.display().to_string(),
        ])
        .expect_code(0);
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "token layer");
    world
        .run(&["tags", &format!("{host}/{PRIVATE}")])
        .expect_code(4);

    // A wrong password: exit 4 with the token server's words.
    tokens.clear_requests();
    let run = world
        .run_with_stdin(
            &[
                "tags",
                &format!("{host}/{PRIVATE}"),
                "-u",
                USER,
                "--password-stdin",
            ],
            "wrong-token-password",
        )
        .expect_code(4);
    assert!(
        run.stderr.contains("invalid username or password"),
        "{}",
        run.stderr
    );
    assert_no_secret(&run.stderr, &["wrong-token-password"]);
    assert_eq!(
        tokens.request_count(),
        1,
        "no anonymous retry after refused credentials"
    );

    // login against a token registry goes through the token flow too.
    world
        .run_with_stdin(
            &["login", &host, "-u", USER, "--password-stdin"],
            "wrong-again",
        )
        .expect_code(4);
    world
        .run_with_stdin(&["login", &host, "-u", USER, "--password-stdin"], PASSWORD)
        .expect_code(0);
    world
        .run(&["tags", &format!("{host}/{PRIVATE}")])
        .expect_code(0);
}

/// An anonymous install of a version named in full, from a repository the registry refuses
/// to show (one that does not exist, which Docker Hub refuses so to anonymous pulls, or a
/// private one), fails as an install of a series does: with the refused tag listing, its
/// message, place and hint. Looking the version up by its tag first must not turn that
/// refusal into another error (it said "fetching manifest", with the tag as `reference`).
#[test]
fn an_anonymous_exact_install_from_a_refused_repository_fails_as_a_series_install_does() {
    let (_tokens, registry) = token_registry();
    let world = World::new();
    let url = registry.url();
    let root = world.path("root").display().to_string();
    // `ocisdk sdk ARGS… --registry URL --root ROOT`, repositories `private/{platform}`.
    let sdk = |args: &[&str], stdin: &str| {
        let mut all = vec!["sdk"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--registry", &url, "--root", &root]);
        all.extend_from_slice(&[
            "--prefix",
            "private",
            "--repo-template",
            "{prefix}/{platform}",
        ]);
        world.run_with_stdin(&all, stdin)
    };
    // private/tool holds 3.11.10; private/nothere does not exist.
    let tarball = world.path("tool-bookworm-3.11.10.tar.gz");
    let files: &[(&str, &[u8], u32)] = &[("bin/tool", b"#!/bin/sh\n", 0o755)];
    std::fs::write(&tarball, content::tar_gz_of(files)).unwrap();
    let tarball = tarball.display().to_string();
    let publish = ["publish", "tool", "3.11.10", &tarball];
    let with_login = ["-u", USER, "--password-stdin"];
    sdk(&[&publish[..], &with_login].concat(), PASSWORD).expect_code(0);

    for platform in ["tool", "nothere"] {
        for json in [&[][..], &["--json"]] {
            let failure = |spec: &str| {
                let args = [&["install", platform, spec][..], json].concat();
                sdk(&args, "").expect_code(4).stderr
            };
            let series = failure("3.11");
            let listing = format!("listing tags {}/private/{platform}:", registry.host());
            assert!(series.contains(&listing), "{series}");
            assert!(series.contains("ocisdk login"), "{series}");
            assert_eq!(failure("3.11.10"), series, "{platform} {json:?}");
        }
    }
    assert!(!world.path("root/tool/3.11.10").exists());
}

/// A `credsStore` helper that holds nothing for a registry says so on stdout (the helper
/// protocol's channel for errors) and exits 1, and many write warnings on stderr as well
/// (gpg under `pass`, libsecret under `secretservice`). That is "no credentials": an
/// anonymous pull goes on. A helper that really fails is an error that shows what it said
/// on stdout, not only its warnings.
#[test]
fn a_helper_without_credentials_that_warns_on_stderr_lets_anonymous_pulls_through() {
    let (_tokens, registry) = token_registry();
    let host = registry.host();
    let world = World::new();
    let file = layer_file(&world, "public layer");
    let public = format!("{host}/{PUBLIC}");
    push_as_user(&world, &file, &format!("{public}:1"));
    let helper = world.write(
        "bin/docker-credential-noisy",
        "#!/bin/sh\ncat >/dev/null\necho 'gpg: WARNING: unsafe permissions on homedir' >&2\n\
         if [ -n \"$HELPER_BROKEN\" ]; then echo 'the password store is locked'; \
         else echo 'credentials not found in native keychain'; fi\nexit 1\n",
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    world.write("home/.docker/config.json", r#"{"credsStore":"noisy"}"#);

    let run = world.run(&["tags", &public]).expect_code(0);
    assert_eq!(run.stdout.trim(), "1");

    let world = world.with("HELPER_BROKEN", "1");
    let run = world.run(&["tags", &public]).expect_code(4);
    assert!(
        run.stderr.contains("the password store is locked"),
        "{}",
        run.stderr
    );
}

/// As `docker login` does: the token request asks for offline access, and a refresh token
/// the server hands out is stored instead of the password, then used by later commands
/// through the OAuth2 refresh grant.
/// Between two registries `--username` is the target's: the source's token server, which
/// knows no such user and refuses them, never sees it, and the source is read anonymously.
#[test]
fn copy_gives_the_flag_credentials_to_the_target_alone() {
    let (tokens, source) = token_registry();
    let world = World::new();
    let file = layer_file(&world, "copied layer");
    let from = format!("{}/{PUBLIC}:1", source.host());
    world
        .run_with_stdin(
            &["push", &file, &from, "-u", USER, "--password-stdin"],
            PASSWORD,
        )
        .expect_code(0);
    let target = RegistryBuilder::new()
        .htpasswd("deployer", "dest-pw")
        .start();
    let to = format!("{}/mirror/tool:1", target.host());
    tokens.clear_requests();

    world
        .run_with_stdin(
            &["copy", &from, &to, "-u", "deployer", "--password-stdin"],
            "dest-pw",
        )
        .expect_code(0);
    for request in tokens.requests() {
        assert!(request.header("authorization").is_none(), "{request:#?}");
    }
    let tags = world
        .run_with_stdin(
            &[
                "tags",
                &format!("{}/mirror/tool", target.host()),
                "-u",
                "deployer",
                "--password-stdin",
            ],
            "dest-pw",
        )
        .expect_code(0);
    assert_eq!(tags.stdout, "1\n");
}

/// containers-auth.json(5) keys per namespace: on one registry, team-a's account may use
/// team-a's repositories only, team-b's account team-b's, and a host key (a third account,
/// with a namespace of its own) must not stand in for either. A copy and an `sdk mirror` from
/// team-a to team-b each read with team-a's key and write with team-b's, in one process.
#[test]
fn each_namespace_of_one_registry_gets_its_own_credentials() {
    let tokens = TokenServer::builder()
        .user(USER, PASSWORD)
        .user_in("ann", "ann-pw", "team-a")
        .user_in("ben", "ben-pw", "team-b")
        .user_in("cy", "cy-pw", "team-c")
        .start();
    let registry = RegistryBuilder::new()
        .extra_config(&tokens.registry_config())
        .start();
    let host = registry.host();
    let admin = World::new();
    let file = layer_file(&admin, "team-a's layer");
    let from = format!("{host}/team-a/tool:1");
    admin
        .run_with_stdin(
            &["push", &file, &from, "-u", USER, "--password-stdin"],
            PASSWORD,
        )
        .expect_code(0);
    let sdk = admin.path("python.tar.gz");
    std::fs::write(
        &sdk,
        content::tar_gz_of(&[("bin/python", b"#!/bin/sh\n", 0o755)]),
    )
    .unwrap();
    let sdk_args = |extra: &[&str]| -> Vec<String> {
        let mut args: Vec<String> = ["sdk", "--registry", &registry.url(), "--prefix", "team-a"]
            .map(String::from)
            .to_vec();
        args.extend(extra.iter().map(|a| a.to_string()));
        args
    };
    let publish = sdk_args(&["publish", "python", "3.12.4", &sdk.display().to_string()]);
    let publish: Vec<&str> = publish.iter().map(String::as_str).collect();
    admin
        .run_with_stdin(
            &[&publish[..], &["-u", USER, "--password-stdin"]].concat(),
            PASSWORD,
        )
        .expect_code(0);

    let world = World::new();
    let auths = format!(
        r#"{{"auths":{{"{host}":{{"auth":"{}"}},"{host}/team-a":{{"auth":"{}"}},"{host}/team-b":{{"auth":"{}"}}}}}}"#,
        b64("cy:cy-pw"),
        b64("ann:ann-pw"),
        b64("ben:ben-pw")
    );
    let file = world.write("auth.json", &auths).display().to_string();
    let world = world.with("REGISTRY_AUTH_FILE", &file);
    tokens.clear_requests();

    world
        .run(&["copy", &from, &format!("{host}/team-b/tool:1")])
        .expect_code(0);
    let mirror = sdk_args(&["mirror", "python", "--to", &format!("{host}/team-b")]);
    let mirror: Vec<&str> = mirror.iter().map(String::as_str).collect();
    world.run(&mirror).expect_code(0);
    for (repo, tag) in [
        ("team-b/tool", "1"),
        ("team-b/team-a/python-sdk", "bookworm-3.12.4"),
    ] {
        let run = world
            .run(&["tags", &format!("{host}/{repo}")])
            .expect_code(0);
        assert_eq!(run.stdout.trim(), tag, "{repo}");
    }

    // Each account asked only about its own namespace's repositories (team-b's may also
    // ask to mount from team-a, which the token server refuses it).
    let (ann, ben) = (
        format!("Basic {}", b64("ann:ann-pw")),
        format!("Basic {}", b64("ben:ben-pw")),
    );
    let mut asked = (0, 0);
    for request in tokens.requests() {
        let scopes = request
            .query()
            .unwrap_or_default()
            .replace("%2F", "/")
            .replace("%3A", ":");
        let auth = request.header("authorization").unwrap_or_default();
        if auth == ann {
            asked.0 += 1;
            assert!(!scopes.contains(":team-b/"), "{scopes}");
        } else if auth == ben {
            asked.1 += 1;
            assert!(scopes.contains(":team-b/"), "{scopes}");
        } else {
            panic!("neither team's credentials: {request:#?}");
        }
    }
    assert!(asked.0 > 0 && asked.1 > 0, "{asked:?}");
}

#[test]
fn login_keeps_the_refresh_token_instead_of_the_password() {
    let tokens = TokenServer::builder()
        .user(USER, PASSWORD)
        .refresh_token("rt-login-0042", USER)
        .start();
    let registry = RegistryBuilder::new()
        .extra_config(&tokens.registry_config())
        .start();
    let host = registry.host();
    let world = World::new();
    let run = world
        .run_with_stdin(
            &["login", &host, "-u", USER, "--password-stdin", "--json"],
            PASSWORD,
        )
        .expect_code(0);
    let answer: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(answer["credential"], "refresh_token", "{answer}");
    let asked = tokens.requests();
    assert!(
        asked
            .iter()
            .any(|r| r.query().unwrap_or("").contains("offline_token=true")),
        "login did not ask for offline access"
    );
    let text = std::fs::read_to_string(world.path("home/.docker/config.json")).unwrap();
    assert!(!text.contains(PASSWORD), "the password was stored: {text}");
    let stored: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(stored["auths"][&host]["identitytoken"], "rt-login-0042");
    assert_eq!(stored["auths"][&host]["auth"], b64(&format!("{USER}:")));

    // Later commands exchange it at the token server (a POST with the refresh grant).
    tokens.clear_requests();
    world
        .run(&["tags", &format!("{host}/{PRIVATE}")])
        .expect_code(3);
    let asked = tokens.requests();
    assert_eq!(asked.len(), 1, "one token request");
    assert_eq!(asked[0].method, "POST");
    let form = String::from_utf8_lossy(&asked[0].body).into_owned();
    assert!(form.contains("grant_type=refresh_token"), "{form}");
    assert!(
        !form.contains("access_type=offline"),
        "only login asks for offline access: {form}"
    );
}

#[test]
fn secrets_never_reach_verbose_logs_or_json() {
    let (_tokens, registry) = token_registry();
    let host = registry.host();
    let world = World::new();
    let file = layer_file(&world, "verbose layer");
    let target = format!("{host}/{PRIVATE}:1");

    // A whole push and pull with every request logged.
    let run = world
        .run_with_stdin(
            &[
                "-vv",
                "push",
                &file,
                &target,
                "-u",
                USER,
                "--password-stdin",
            ],
            PASSWORD,
        )
        .expect_code(0);
    assert!(
        run.stderr.contains("getting a token"),
        "-vv shows the auth steps:\n{}",
        run.stderr
    );
    assert!(run.stderr.contains("request"), "{}", run.stderr);
    assert_no_secret(&run.stderr, &[PASSWORD]);
    let out = world.path("out.bin").display().to_string();
    let run = world
        .run_with_stdin(
            &[
                "-vv",
                "pull",
                &target,
                "-o",
                &out,
                "-u",
                USER,
                "--password-stdin",
            ],
            PASSWORD,
        )
        .expect_code(0);
    assert_no_secret(&format!("{}{}", run.stdout, run.stderr), &[PASSWORD]);

    // Refusals in --json and -vv.
    let private = format!("{host}/{PRIVATE}");
    for flag in ["--json", "-vv"] {
        let args = [
            flag,
            "tags",
            private.as_str(),
            "-u",
            USER,
            "--password-stdin",
        ];
        let run = world
            .run_with_stdin(&args, "wrong-json-secret")
            .expect_code(4);
        assert_no_secret(
            &format!("{}{}", run.stdout, run.stderr),
            &["wrong-json-secret", PASSWORD],
        );
        if flag == "--json" {
            let err: Value = serde_json::from_str(run.stderr.trim()).unwrap();
            assert_eq!(err["error"]["kind"], "auth");
            assert_eq!(err["error"]["exit_code"], 4);
        }
    }
}

#[test]
fn registry_arguments_are_checked() {
    let world = World::new();
    world
        .run_with_stdin(
            &["login", "not a host", "-u", USER, "--password-stdin"],
            PASSWORD,
        )
        .expect_code(2);
    world.run(&["login", "localhost:1"]).expect_code(2);
}
