//! A runnel broker process: free port on 127.0.0.1, its own temp dir, always stopped.

use std::fs::File;
use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use rustix::process::{kill_process, Pid, Signal};
use tempfile::TempDir;

const READY_TIMEOUT: Duration = Duration::from_secs(20);
const STOP_GRACE: Duration = Duration::from_secs(10);
const START_ATTEMPTS: usize = 3;

/// A running `runnel server`; SIGTERM (then SIGKILL after 10 s) when dropped.
#[derive(Debug)]
pub struct Broker {
    child: Child,
    port: u16,
    dir: TempDir,
}

impl Broker {
    /// Starts the binary named by `RUNNEL_BIN` and waits until its port accepts
    /// connections. `overrides` are Kafka config names and values (`--override k=v`).
    pub fn start(overrides: &[(&str, &str)]) -> anyhow::Result<Broker> {
        let binary = std::env::var_os("RUNNEL_BIN").map(PathBuf::from).context(
            "RUNNEL_BIN is not set: build with `cargo build -p runnel-cli` and export its path",
        )?;
        let mut failures = Vec::new();
        for _ in 0..START_ATTEMPTS {
            let port = free_port()?;
            let dir = tempfile::Builder::new()
                .prefix("runnel-compat-rs-")
                .tempdir()?;
            let data_dir = dir.path().join("data");
            std::fs::create_dir(&data_dir)?;
            let log = File::create(dir.path().join("broker.log"))?;
            let mut command = Command::new(&binary);
            command
                .arg("server")
                .arg("--data-dir")
                .arg(&data_dir)
                .arg("--listeners")
                .arg(format!("PLAINTEXT://127.0.0.1:{port}"))
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log);
            for (key, value) in overrides {
                command.arg("--override").arg(format!("{key}={value}"));
            }
            let child = command
                .spawn()
                .with_context(|| format!("spawning {}", binary.display()))?;
            let mut broker = Broker { child, port, dir };
            match broker.wait_ready() {
                Ok(()) => return Ok(broker),
                Err(error) => {
                    failures.push(format!("port {port}: {error:#}\n{}", broker.log_tail(40)))
                }
            }
        }
        bail!("runnel did not become ready:\n{}", failures.join("\n"))
    }

    /// `127.0.0.1:PORT`, for `bootstrap.servers`.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Fails when the broker process has exited (it must survive every client).
    pub fn assert_alive(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!(
                "runnel exited with {status}; log tail:\n{}",
                self.log_tail(60)
            );
        }
        Ok(())
    }

    /// The last `lines` lines the broker wrote to stderr/stdout.
    pub fn log_tail(&self, lines: usize) -> String {
        let mut text = String::new();
        if let Ok(mut file) = File::open(self.dir.path().join("broker.log")) {
            let mut bytes = Vec::new();
            if file.read_to_end(&mut bytes).is_ok() {
                text = String::from_utf8_lossy(&bytes).into_owned();
            }
        }
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    fn wait_ready(&mut self) -> anyhow::Result<()> {
        let address = SocketAddr::from(([127, 0, 0, 1], self.port));
        let deadline = Instant::now() + READY_TIMEOUT;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                bail!("exited with {status} before accepting connections");
            }
            if TcpStream::connect_timeout(&address, Duration::from_millis(500)).is_ok() {
                return Ok(());
            }
            thread::sleep(Duration::from_millis(100));
        }
        self.stop();
        bail!("port {} not accepting after {READY_TIMEOUT:?}", self.port)
    }

    fn stop(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        let terminated = i32::try_from(self.child.id())
            .ok()
            .and_then(Pid::from_raw)
            .map(|pid| kill_process(pid, Signal::TERM).is_ok())
            .unwrap_or(false);
        if terminated {
            let deadline = Instant::now() + STOP_GRACE;
            while Instant::now() < deadline {
                if matches!(self.child.try_wait(), Ok(Some(_))) {
                    return;
                }
                thread::sleep(Duration::from_millis(50));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
        if thread::panicking() {
            eprintln!(
                "--- runnel log tail ({}) ---\n{}",
                self.bootstrap(),
                self.log_tail(80)
            );
        }
    }
}

fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind(("127.0.0.1", 0))?;
    Ok(listener.local_addr()?.port())
}
