//! What one run of the `ocisdk` binary produced, with the checks every CLI test makes.

use std::process::Output;

use serde_json::Value;

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
