//! docker credential helpers: `docker-credential-NAME get|store|erase`, talking JSON on
//! stdin and stdout.
//! <https://github.com/docker/docker-credential-helpers#development>

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::credentials::{Credential, CredentialError, Secret};

/// How long a helper may take. Some ask the user (a keychain prompt), so this is generous;
/// a helper that hangs must still not hang us forever.
pub const HELPER_TIMEOUT: Duration = Duration::from_secs(60);

/// The most output read from a helper; real answers are a few hundred bytes.
const HELPER_OUTPUT_LIMIT: u64 = 64 * 1024;

/// The username helpers use to say "the secret is an identity token".
const TOKEN_USERNAME: &str = "<token>";

/// The program run for helper `name`. Names with path separators are refused: a helper is
/// looked up on `PATH`, never taken from a path written in a config file.
pub(crate) fn program(name: &str) -> Result<String, String> {
    if name.is_empty() || name.contains(['/', '\\']) || name.contains("..") {
        return Err(format!("invalid credential helper name {name:?}"));
    }
    Ok(format!("docker-credential-{name}"))
}

/// What a helper run gave back.
struct Output {
    success: bool,
    stdout: Vec<u8>,
    stderr: String,
}

/// Why a helper could not be used.
pub(crate) enum HelperFailure {
    /// The program is not installed.
    Missing,
    /// It ran and failed, or could not be run; the message never holds a secret.
    Failed(String),
}

fn run(program: &str, action: &str, input: &[u8]) -> Result<Output, HelperFailure> {
    let mut command = Command::new(program);
    command
        .arg(action)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    default_file_size_signal(&mut command);
    let mut child = match command.spawn() {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(HelperFailure::Missing),
        Err(e) => return Err(HelperFailure::Failed(format!("cannot run it: {e}"))),
    };
    if let Some(mut stdin) = child.stdin.take() {
        // A helper that exits without reading its input is not an error by itself.
        let _ = stdin.write_all(input);
    }
    let reader = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(pipe) = pipe {
                let _ = pipe.take(HELPER_OUTPUT_LIMIT).read_to_end(&mut buf);
            }
            buf
        })
    };
    let stdout = reader(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let stderr = reader(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let deadline = Instant::now() + HELPER_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(HelperFailure::Failed(format!(
                    "no answer within {} s",
                    HELPER_TIMEOUT.as_secs()
                )));
            }
            Err(e) => return Err(HelperFailure::Failed(format!("waiting for it: {e}"))),
        }
    };
    let stdout = stdout.join().unwrap_or_default();
    let stderr = stderr.join().unwrap_or_default();
    Ok(Output {
        success: status.success(),
        stdout,
        stderr: String::from_utf8_lossy(&stderr).trim().to_string(),
    })
}

/// Gives the helper SIGXFSZ's default disposition. A program may ignore the signal (the
/// ocisdk binary does, so that its own write past `ulimit -f` fails with EFBIG instead of
/// killing it), and an ignored signal stays ignored across exec: a helper written for the
/// default would meet EFBIG, which it may not handle, where it would have been stopped.
/// std restores SIGPIPE in children for the same reason.
#[cfg(unix)]
fn default_file_size_signal(command: &mut Command) {
    use std::os::unix::process::CommandExt;
    let restore = || {
        // SAFETY: sets one signal's disposition to the default; no handler of ours runs.
        unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_DFL) };
        Ok(())
    };
    // SAFETY: `restore` runs in the child between fork and exec, where only
    // async-signal-safe calls may be made: signal(2) is one, and it neither allocates nor
    // takes a lock.
    unsafe { command.pre_exec(restore) };
}

#[cfg(not(unix))]
fn default_file_size_signal(_: &mut Command) {}

/// The helper's own words when it failed, limited in length (they name the problem, never
/// a secret: helpers print the secret only on success). The helper protocol puts the error
/// on stdout; stderr holds whatever else the helper, or a tool it runs (gpg, libsecret),
/// had to say, which comes after it.
fn failure_message(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let text = match (stdout.is_empty(), out.stderr.is_empty()) {
        (false, false) => format!("{stdout} ({})", out.stderr),
        (false, true) => stdout,
        (true, _) => out.stderr.clone(),
    };
    let mut text: String = text.chars().take(300).collect();
    if text.is_empty() {
        text = "it exited with an error and no message".into();
    }
    text
}

/// Whether a failed run is the helpers' shared "not found" answer
/// (`credentials.ErrCredentialsNotFound`), which they print on stdout; looked for on stderr
/// too, for helpers that print it there.
fn is_not_found(out: &Output) -> bool {
    let said = |text: &str| text.to_ascii_lowercase().contains("credentials not found");
    said(&String::from_utf8_lossy(&out.stdout)) || said(&out.stderr)
}

#[derive(serde::Deserialize)]
struct HelperCredential {
    #[serde(rename = "Username", default)]
    username: String,
    #[serde(rename = "Secret", default)]
    secret: String,
}

/// `get`: the credential for `server` (the registry key), or `None` when the helper has none.
pub(crate) fn get(program: &str, server: &str) -> Result<Option<Credential>, HelperFailure> {
    let out = run(program, "get", server.as_bytes())?;
    if !out.success {
        if is_not_found(&out) {
            return Ok(None);
        }
        return Err(HelperFailure::Failed(failure_message(&out)));
    }
    let parsed: HelperCredential = serde_json::from_slice(&out.stdout)
        .map_err(|e| HelperFailure::Failed(format!("its answer is not valid JSON: {e}")))?;
    if parsed.secret.is_empty() {
        return Ok(None);
    }
    Ok(Some(if parsed.username == TOKEN_USERNAME {
        Credential::IdentityToken {
            username: parsed.username,
            token: Secret::new(parsed.secret),
        }
    } else {
        Credential::Basic {
            username: parsed.username,
            password: Secret::new(parsed.secret),
        }
    }))
}

/// `store`: hands `credential` for `server` to the helper.
pub(crate) fn store(
    program: &str,
    server: &str,
    credential: &Credential,
) -> Result<(), HelperFailure> {
    let username = match credential {
        Credential::Basic { username, .. } => username.as_str(),
        Credential::IdentityToken { .. } => TOKEN_USERNAME,
        // The helper protocol has no place for it: read back, it would be a refresh token.
        Credential::RegistryToken { .. } => {
            return Err(HelperFailure::Failed(
                "a credential helper cannot hold a registry token".into(),
            ))
        }
    };
    let input = serde_json::json!({
        "ServerURL": server,
        "Username": username,
        "Secret": credential.secret().expose(),
    });
    let out = run(program, "store", input.to_string().as_bytes())?;
    if out.success {
        Ok(())
    } else {
        Err(HelperFailure::Failed(failure_message(&out)))
    }
}

/// `erase`: removes the helper's credential for `server`; `false` when it had none.
pub(crate) fn erase(program: &str, server: &str) -> Result<bool, HelperFailure> {
    let out = run(program, "erase", server.as_bytes())?;
    if out.success {
        return Ok(true);
    }
    if is_not_found(&out) {
        Ok(false)
    } else {
        Err(HelperFailure::Failed(failure_message(&out)))
    }
}

/// Turns a failure into the public error.
pub(crate) fn error(
    program: &str,
    action: &'static str,
    registry: &str,
    failure: HelperFailure,
) -> CredentialError {
    CredentialError::Helper {
        program: program.to_string(),
        action,
        registry: registry.to_string(),
        message: match failure {
            HelperFailure::Missing => "it is not installed (not found on PATH)".to_string(),
            HelperFailure::Failed(m) => m,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helper_names_cannot_be_paths() {
        assert_eq!(program("pass").unwrap(), "docker-credential-pass");
        assert_eq!(program("ecr-login").unwrap(), "docker-credential-ecr-login");
        for bad in ["", "../x", "/bin/sh", "a/b", "a\\b"] {
            assert!(program(bad).is_err(), "{bad:?}");
        }
    }
}
