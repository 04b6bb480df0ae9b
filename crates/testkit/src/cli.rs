//! Running the `ocisdk` binary in tests: a hermetic environment, and what one run produced,
//! with the checks every CLI test makes.

use std::process::{Command, Output};

use serde_json::Value;

/// Variables through which the developer's own setup would reach a test run: where ocisdk
/// finds its settings, credentials, certificates and proxies. [`scrub`] removes these and
/// every `OCISDK_*` and `ORYX_*` variable.
pub const LEAKY_ENV: &[&str] = &[
    "DEBIAN_FLAVOR",
    "DYNAMIC_INSTALL_ROOT_DIR",
    "DOCKER_CONFIG",
    "REGISTRY_AUTH_FILE",
    "XDG_CACHE_HOME",
    "XDG_CONFIG_HOME",
    "XDG_RUNTIME_DIR",
    "RUST_LOG",
    "SOURCE_DATE_EPOCH",
    "SSL_CERT_FILE",
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "ALL_PROXY",
    "all_proxy",
    "NO_PROXY",
    "no_proxy",
];

/// The uid and gid of `nobody`, whom tests of permissions run the binary as.
pub const NOBODY: u32 = 65534;

/// Whether the tests run as root, who ignores file permissions (CI does).
pub fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// Puts the binary `program` at `dest` for [`NOBODY`] to run: a hard link when it can (the
/// same file system, and a binary anyone may run), else a copy of mode 0755.
///
/// Why a link: a copy is a file open for writing while it is made, and a process that another
/// test thread forks meanwhile holds that descriptor until it execs, so running the copy just
/// after can fail with ETXTBSY ("Text file busy"). A link opens nothing. A copy is then retried
/// on ETXTBSY, as Go's os/exec does; each try waits only for such a child to exec.
pub fn binary_for_nobody(program: &std::path::Path, dest: &std::path::Path) {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let runnable = std::fs::metadata(program).is_ok_and(|m| m.mode() & 0o005 == 0o005);
    if runnable && std::fs::hard_link(program, dest).is_ok() {
        return;
    }
    std::fs::copy(program, dest).expect("copy the binary");
    std::fs::set_permissions(dest, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// Runs `cmd` to its end, spawning it again while that fails with ETXTBSY (see
/// [`binary_for_nobody`]): a copied binary is busy only until the children forked while it
/// was written have exec'd, which takes them moments.
pub fn output_of_copied_binary(cmd: &mut Command) -> std::io::Result<Output> {
    const ETXTBSY: i32 = 26;
    let mut tries = 0;
    loop {
        match cmd.output() {
            Err(e) if e.raw_os_error() == Some(ETXTBSY) && tries < 1000 => {
                tries += 1;
                std::thread::yield_now();
            }
            other => return other,
        }
    }
}

/// Makes `cmd` run as [`NOBODY`] when the tests run as root, so that file permissions
/// apply to it; as ourselves otherwise.
pub fn unprivileged(cmd: &mut Command) -> &mut Command {
    use std::os::unix::process::CommandExt;
    if is_root() {
        cmd.uid(NOBODY).gid(NOBODY);
    }
    cmd
}

/// Makes `cmd` run with the file creation mask `mask`: 0 is common in containers and CI, and
/// a file ocisdk makes must then not come out writable by others where it should not.
pub fn with_umask(cmd: &mut Command, mask: u32) -> &mut Command {
    use std::os::unix::process::CommandExt;
    // SAFETY: umask is async-signal-safe and sets only the child's mask, before it runs
    // the binary.
    unsafe {
        cmd.pre_exec(move || {
            libc::umask(mask as libc::mode_t);
            Ok(())
        })
    }
}

/// Builds the C `source` as `dir/lib{name}.so`, a library to preload (`LD_PRELOAD`) into
/// `ocisdk` to make a system call fail, or to watch it, as no real registry or file system
/// here would. Needs `cc`, which Rust needs anyway as its linker.
pub fn preload_shim(dir: &std::path::Path, name: &str, source: &str) -> std::path::PathBuf {
    let dir = dir.join("shim");
    std::fs::create_dir_all(&dir).unwrap();
    let source_file = dir.join(format!("{name}.c"));
    std::fs::write(&source_file, source).unwrap();
    let shim = dir.join(format!("lib{name}.so"));
    let built = Command::new("cc")
        .args(["-shared", "-fPIC", "-o"])
        .arg(&shim)
        .arg(&source_file)
        .arg("-ldl")
        .status()
        .expect("run cc");
    assert!(built.success(), "cc could not build the {name} shim");
    shim
}

/// Removes from `cmd`'s environment what would let the developer's setup leak into a run
/// (see [`LEAKY_ENV`]). Call it before setting the variables a test wants.
///
/// ```
/// let mut cmd = std::process::Command::new("ocisdk");
/// ocisdk_testkit::cli::scrub(&mut cmd).env("OCISDK_CACHE_DIR", "/tmp/cache");
/// ```
pub fn scrub(cmd: &mut Command) -> &mut Command {
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if name.starts_with("OCISDK_") || name.starts_with("ORYX_") {
            cmd.env_remove(&*name);
        }
    }
    for name in LEAKY_ENV {
        cmd.env_remove(name);
    }
    cmd
}

/// The exit code and output of one run.
#[derive(Debug, Clone)]
pub struct Run {
    /// The exit code.
    pub code: i32,
    /// Standard output, as text.
    pub stdout: String,
    /// Standard error, as text.
    pub stderr: String,
}

impl Run {
    /// From a finished process (killed by a signal is a test failure).
    #[track_caller]
    pub fn from_output(output: Output) -> Run {
        Run {
            code: output.status.code().expect("ocisdk was killed by a signal"),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Standard output's lines.
    pub fn lines(&self) -> Vec<&str> {
        self.stdout.lines().collect()
    }

    /// Standard output parsed as JSON.
    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}): {:?}\nstderr: {}",
                self.stdout, self.stderr
            )
        })
    }

    /// The `--json` error object on standard error.
    #[track_caller]
    pub fn error_json(&self) -> Value {
        let value: Value = serde_json::from_str(self.stderr.trim())
            .unwrap_or_else(|e| panic!("stderr is not one JSON document ({e}): {:?}", self.stderr));
        value["error"].clone()
    }

    /// Panics with the output unless the exit code is `want`.
    #[track_caller]
    pub fn expect_code(self, want: i32) -> Run {
        assert_eq!(
            self.code, want,
            "exit code; stdout: {:?}\nstderr: {}",
            self.stdout, self.stderr
        );
        self
    }

    /// Panics with the output unless the run succeeded.
    #[track_caller]
    pub fn success(self) -> Run {
        self.expect_code(0)
    }
}
