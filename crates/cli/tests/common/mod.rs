//! Drives the `runnel` binary: a broker started as `runnel server` on a free port in
//! its own temp dir (stopped on drop), and tool invocations with their output.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};

/// The binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_runnel")
}

/// A `runnel server` child process.
#[derive(Debug)]
pub struct Broker {
    child: Child,
    pub bootstrap: String,
    _dir: tempfile::TempDir,
}

impl Broker {
    /// Starts a broker; `overrides` are `key=value` settings.
    pub fn start(overrides: &[&str]) -> Broker {
        let dir = tempfile::tempdir().unwrap();
        let mut command = Command::new(bin());
        command
            .args([
                "server",
                "--listeners",
                "PLAINTEXT://127.0.0.1:0",
                "--data-dir",
            ])
            .arg(dir.path().join("data"))
            .args(["--override", "group.initial.rebalance.delay.ms=0"])
            .args(["--override", "offsets.topic.num.partitions=3"]);
        for o in overrides {
            command.args(["--override", o]);
        }
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start runnel server");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let bootstrap = line
            .trim()
            .strip_prefix("runnel listening on ")
            .unwrap_or_else(|| panic!("unexpected first line from runnel server: {line:?}"))
            .to_owned();
        Broker {
            child,
            bootstrap,
            _dir: dir,
        }
    }

    /// Runs `runnel -b <this broker> ARGS...` to completion.
    pub fn run(&self, args: &[&str]) -> Run {
        run_with_input(&["-b", &self.bootstrap], args, None)
    }

    /// Runs `runnel -b <this broker> ARGS...` with `input` on stdin.
    pub fn run_with_stdin(&self, args: &[&str], input: &str) -> Run {
        run_with_input(&["-b", &self.bootstrap], args, Some(input))
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What one invocation printed and how it exited.
#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Asserts exit code 0 and returns stdout.
    pub fn ok(&self) -> &str {
        assert_eq!(
            self.code,
            Some(0),
            "runnel failed:\nstdout: {}\nstderr: {}",
            self.stdout,
            self.stderr
        );
        &self.stdout
    }

    /// Asserts a non-zero exit and returns stderr.
    pub fn failed(&self) -> &str {
        assert_ne!(
            self.code,
            Some(0),
            "runnel succeeded unexpectedly:\nstdout: {}",
            self.stdout
        );
        &self.stderr
    }

    /// Stdout parsed as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(self.ok())
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.stdout))
    }
}

/// Runs `runnel PREFIX... ARGS...` without a broker (for argument errors and the like).
pub fn run(args: &[&str]) -> Run {
    run_with_input(&[], args, None)
}

fn run_with_input(prefix: &[&str], args: &[&str], input: Option<&str>) -> Run {
    use std::io::Write;
    let mut child = Command::new(bin())
        .args(prefix)
        .args(args)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run runnel");
    if let Some(input) = input {
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(input.as_bytes()).unwrap();
    }
    let Output {
        status,
        stdout,
        stderr,
    } = child.wait_with_output().unwrap();
    Run {
        code: status.code(),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

/// A name unique within the test run.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}
