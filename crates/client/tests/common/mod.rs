//! Brokers for the client's integration tests: Runnel started in-process on a free
//! port in its own temp dir, and the peer broker Tansu (a separate binary named by
//! `TANSU_BIN`; scripts/test-all.sh installs it). Every test runs against both, so
//! the client is shown to work with a Kafka-compatible broker that is not Runnel.
#![allow(dead_code)]

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use runnel_broker::{RunningServer, Server};
use runnel_model::config::{BrokerConfig, ConfigSources};

/// Which broker a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Runnel,
    Tansu,
}

/// Both kinds, for tests that loop over them.
pub const ALL: [Kind; 2] = [Kind::Runnel, Kind::Tansu];

/// A running broker, stopped on drop.
#[derive(Debug)]
pub struct TestBroker {
    pub kind: Kind,
    bootstrap: String,
    runnel: Option<RunningServer>,
    tansu: Option<Child>,
    _dir: tempfile::TempDir,
}

impl TestBroker {
    /// Starts a broker of `kind`; `extra` are Runnel config overrides (ignored for Tansu).
    pub async fn start(kind: Kind, extra: &[(&str, &str)]) -> TestBroker {
        match kind {
            Kind::Runnel => Self::runnel(extra).await,
            Kind::Tansu => Self::tansu().await,
        }
    }

    async fn runnel(extra: &[(&str, &str)]) -> TestBroker {
        let dir = tempfile::tempdir().unwrap();
        let mut overrides = vec![
            ("log.dirs".to_string(), dir.path().display().to_string()),
            (
                "listeners".to_string(),
                "PLAINTEXT://127.0.0.1:0".to_string(),
            ),
            (
                "group.initial.rebalance.delay.ms".to_string(),
                "0".to_string(),
            ),
            ("offsets.topic.num.partitions".to_string(), "3".to_string()),
        ];
        overrides.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let config = BrokerConfig::load(ConfigSources {
            file: None,
            env: Vec::new(),
            overrides,
        })
        .unwrap();
        let server = Server::start(config).await.unwrap();
        TestBroker {
            kind: Kind::Runnel,
            bootstrap: server.local_addr().to_string(),
            runnel: Some(server),
            tansu: None,
            _dir: dir,
        }
    }

    async fn tansu() -> TestBroker {
        let bin = std::env::var("TANSU_BIN").expect(
            "TANSU_BIN is not set: scripts/test-all.sh installs the peer broker Tansu and sets it",
        );
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let url = format!("tcp://127.0.0.1:{port}");
        let log = std::fs::File::create(dir.path().join("tansu.log")).unwrap();
        let child = Command::new(bin)
            .current_dir(dir.path())
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", "memory://tansu/"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start tansu");
        let bootstrap = format!("127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        while tokio::net::TcpStream::connect(&bootstrap).await.is_err() {
            assert!(
                Instant::now() < deadline,
                "tansu did not listen on {bootstrap}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        TestBroker {
            kind: Kind::Tansu,
            bootstrap,
            runnel: None,
            tansu: Some(child),
            _dir: dir,
        }
    }

    /// `host:port` to bootstrap from.
    pub fn bootstrap(&self) -> &str {
        &self.bootstrap
    }

    /// Stops the broker (Runnel cleanly, Tansu killed).
    pub async fn stop(mut self) {
        if let Some(server) = self.runnel.take() {
            server.shutdown().await.unwrap();
        }
        if let Some(mut child) = self.tansu.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        if let Some(mut child) = self.tansu.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A topic name unique within the test process.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}
