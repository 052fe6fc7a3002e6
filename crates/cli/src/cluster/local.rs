//! `runnel cluster up` and `down`: a local development cluster of several
//! `runnel server` processes on 127.0.0.1, every node both broker and controller.
//!
//! Everything lives under one directory (`./runnel-cluster` by default):
//!
//! ```text
//! runnel-cluster/cluster.id          the cluster id every node is formatted with
//! runnel-cluster/node-1/             node 1's data dir (meta.properties, logs)
//! runnel-cluster/node-1/server.log   its stdout and stderr, appended
//! runnel-cluster/node-1/server.pid   its pid while it runs
//! ```
//!
//! Node `i` listens for clients on `BASE + i - 1` and for its controller peers on
//! `BASE + 100 + i - 1`. `down` keeps the data, so the next `up` restarts the
//! same cluster with its metadata.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fs;
use std::io::{self, Read, Seek, SeekFrom};
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use rustix::process::Signal;
use serde_json::{json, Value};

use super::node_process::{self, PidFile};
use crate::format::{self, format_dir};
use crate::global::Global;
use crate::output::{print_json, print_rows, Output};

/// The most nodes `up` starts: the node number is one digit of its port.
pub const MAX_NODES: u8 = 9;
/// How far controller ports are from client ports.
const CONTROLLER_PORT_OFFSET: u16 = 100;
/// How long `up` waits for the cluster to answer.
const UP_TIMEOUT: Duration = Duration::from_secs(60);
/// How long `down` waits for nodes to exit after SIGTERM before SIGKILL.
const DOWN_GRACE: Duration = Duration::from_secs(30);
/// How long `up` gives the nodes it started when it gives up on them.
const ABORT_GRACE: Duration = Duration::from_secs(10);
/// How many lines of a failed node's log `up` prints.
const LOG_TAIL_LINES: usize = 30;

/// `runnel cluster up` arguments.
#[derive(Debug, clap::Args)]
pub struct UpArgs {
    /// How many nodes to run (1 to 9), with ids 1..=N.
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=i64::from(MAX_NODES)))]
    nodes: u8,
    /// Where the nodes keep their data, logs and pid files.
    #[arg(long, default_value = "./runnel-cluster")]
    dir: PathBuf,
    /// Node 1's client port; node i listens on BASE+i-1, its controller on BASE+100+i-1.
    #[arg(long, default_value_t = 9092)]
    base_port: u16,
}

/// `runnel cluster down` arguments.
#[derive(Debug, clap::Args)]
pub struct DownArgs {
    /// The directory `cluster up` was given.
    #[arg(long, default_value = "./runnel-cluster")]
    dir: PathBuf,
}

/// Where the nodes of a local cluster live and listen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    dir: PathBuf,
    nodes: u8,
    base_port: u16,
}

impl Layout {
    /// A layout of `nodes` nodes under `dir` from `base_port`; refuses a node
    /// count outside 1..=9 and ports past 65535.
    pub fn new(dir: PathBuf, nodes: u8, base_port: u16) -> anyhow::Result<Layout> {
        anyhow::ensure!(
            (1..=MAX_NODES).contains(&nodes),
            "--nodes {nodes}: a local cluster has 1 to {MAX_NODES} nodes"
        );
        anyhow::ensure!(base_port > 0, "--base-port must be 1 or more");
        let highest =
            u32::from(base_port) + u32::from(CONTROLLER_PORT_OFFSET) + u32::from(nodes) - 1;
        anyhow::ensure!(
            highest <= u32::from(u16::MAX),
            "--base-port {base_port}: node {nodes}'s controller port would be {highest}, past 65535"
        );
        Ok(Layout {
            dir,
            nodes,
            base_port,
        })
    }

    /// The node ids, 1..=N.
    pub fn node_ids(&self) -> RangeInclusive<i32> {
        1..=i32::from(self.nodes)
    }

    /// Node `id`'s client (PLAINTEXT) port.
    pub fn client_port(&self, id: i32) -> u16 {
        self.port(id, 0)
    }

    /// Node `id`'s controller port.
    pub fn controller_port(&self, id: i32) -> u16 {
        self.port(id, CONTROLLER_PORT_OFFSET)
    }

    fn port(&self, id: i32, offset: u16) -> u16 {
        assert!(
            self.node_ids().contains(&id),
            "node {id} is not in {self:?}"
        );
        // In range: checked in new().
        self.base_port + offset + (id - 1) as u16
    }

    /// Node `id`'s data directory.
    pub fn node_dir(&self, id: i32) -> PathBuf {
        self.dir.join(format!("node-{id}"))
    }

    fn pid_file(&self, id: i32) -> PathBuf {
        self.node_dir(id).join("server.pid")
    }

    fn log_file(&self, id: i32) -> PathBuf {
        self.node_dir(id).join("server.log")
    }

    /// `controller.quorum.voters`: `1@127.0.0.1:<ctl1>,2@127.0.0.1:<ctl2>,...`.
    pub fn voters(&self) -> String {
        self.node_ids()
            .map(|id| format!("{id}@127.0.0.1:{}", self.controller_port(id)))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Every node's client address, comma separated, for `--bootstrap-server`.
    pub fn bootstrap(&self) -> String {
        self.node_ids()
            .map(|id| format!("127.0.0.1:{}", self.client_port(id)))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The arguments after the program that run node `id`.
    pub fn server_args(&self, id: i32) -> Vec<OsString> {
        let client = self.client_port(id);
        let controller = self.controller_port(id);
        let mut args: Vec<OsString> = vec!["server".into(), "--data-dir".into()];
        args.push(self.node_dir(id).into_os_string());
        for arg in [
            "--node-id".to_owned(),
            id.to_string(),
            "--listeners".to_owned(),
            format!("PLAINTEXT://127.0.0.1:{client},CONTROLLER://127.0.0.1:{controller}"),
            "--advertised-listeners".to_owned(),
            format!("PLAINTEXT://127.0.0.1:{client}"),
            "--override".to_owned(),
            "process.roles=broker,controller".to_owned(),
            "--override".to_owned(),
            "controller.listener.names=CONTROLLER".to_owned(),
            "--override".to_owned(),
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT".to_owned(),
            "--override".to_owned(),
            format!("controller.quorum.voters={}", self.voters()),
        ] {
            args.push(arg.into());
        }
        args
    }
}

/// The ids of the node directories (`node-<id>`) under `dir`; none when `dir` is missing.
fn node_dirs(dir: &Path) -> anyhow::Result<Vec<i32>> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", dir.display())),
    };
    let mut ids = BTreeSet::new();
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot read {}", dir.display()))?;
        let name = entry.file_name();
        let id = name
            .to_str()
            .and_then(|n| n.strip_prefix("node-"))
            .and_then(|n| n.parse::<i32>().ok());
        if let Some(id) = id.filter(|id| *id >= 1) {
            if entry.path().is_dir() {
                ids.insert(id);
            }
        }
    }
    Ok(ids.into_iter().collect())
}

/// The cluster id of `dir`: the one in `dir/cluster.id`, or a new one written there.
fn cluster_id(dir: &Path) -> anyhow::Result<String> {
    let path = dir.join("cluster.id");
    match fs::read_to_string(&path) {
        Ok(text) => {
            let id = text.trim().to_owned();
            format::validate_cluster_id(&id).with_context(|| format!("in {}", path.display()))?;
            Ok(id)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let id = format::generate_cluster_id();
            format::write_atomically(&path, &format!("{id}\n"))?;
            Ok(id)
        }
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Runs `runnel cluster up`.
pub async fn up(global: &Global, args: UpArgs) -> anyhow::Result<()> {
    let dir = std::path::absolute(&args.dir)
        .with_context(|| format!("cannot resolve {}", args.dir.display()))?;
    let layout = Layout::new(dir, args.nodes, args.base_port)?;
    let dir = layout.dir.clone();
    fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let running = running_nodes(&dir)?;
    let missing: Vec<_> = layout
        .node_ids()
        .filter(|id| !running.iter().any(|(r, _)| r == id))
        .collect();
    anyhow::ensure!(
        !missing.is_empty(),
        "the cluster in {} is already running: {}; `runnel cluster down --dir {}` stops it",
        dir.display(),
        running
            .iter()
            .map(|(id, pid)| format!("node {id} (pid {pid})"))
            .collect::<Vec<_>>()
            .join(", "),
        dir.display()
    );
    refuse_other_size(&layout)?;
    let cluster_id = cluster_id(&dir)?;
    for id in layout.node_ids() {
        format_dir(&layout.node_dir(id), id, &cluster_id)?;
    }
    let exe = std::env::current_exe().context("cannot find the runnel binary")?;
    let mut started = Started {
        nodes: Vec::new(),
        layout: layout.clone(),
    };
    // Nodes still running (one restarted after a crash, say) are left as
    // they are; the others start and rejoin them.
    for id in missing {
        started.nodes.push(start_node(&exe, &layout, id)?);
    }
    let wait = tokio::select! {
        result = wait_ready(global, &layout, &mut started.nodes) => result,
        _ = tokio::signal::ctrl_c() => Err(NotReady {
            reason: "interrupted".to_owned(),
            nodes: Vec::new(),
        }),
    };
    if let Err(not_ready) = wait {
        for id in &not_ready.nodes {
            if let Some(node) = started.nodes.iter().find(|n| n.id == *id) {
                print_log_tail(&layout.log_file(*id), node.log_start);
            }
        }
        eprintln!("runnel: stopping the nodes this command started");
        started.stop();
        anyhow::bail!(
            "the cluster in {} did not come up: {}",
            dir.display(),
            not_ready.reason
        );
    }
    let rows: Vec<Vec<Value>> = started
        .nodes
        .iter()
        .map(|n| {
            vec![
                json!(n.id),
                json!(format!("127.0.0.1:{}", layout.client_port(n.id))),
                json!(n.child.id()),
                json!(layout.node_dir(n.id).display().to_string()),
            ]
        })
        .collect();
    // Up and answering: the nodes now outlive this command.
    started.nodes.clear();
    match global.output {
        Output::Json => {
            let keys = ["id", "client", "pid", "data_dir"];
            let nodes: Vec<Value> = rows
                .into_iter()
                .map(|row| Value::Object(keys.iter().map(|k| k.to_string()).zip(row).collect()))
                .collect();
            print_json(&json!({
                "cluster_id": cluster_id,
                "bootstrap": layout.bootstrap(),
                "nodes": nodes,
            }));
        }
        Output::Table => {
            println!("Cluster {cluster_id} is up in {}", dir.display());
            print_rows(Output::Table, &["Node", "Client", "Pid", "Data dir"], rows);
            println!("Bootstrap: {}", layout.bootstrap());
        }
    }
    Ok(())
}

/// The nodes of `dir` whose pid file names a live runnel server, with
/// their pids; stale pid files are removed.
fn running_nodes(dir: &Path) -> anyhow::Result<Vec<(i32, u32)>> {
    let mut running = Vec::new();
    for id in node_dirs(dir)? {
        let pid_file = dir.join(format!("node-{id}")).join("server.pid");
        match node_process::read_pid_file(&pid_file)? {
            PidFile::Running(pid) => running.push((id, pid)),
            PidFile::Stale => node_process::remove_pid_file(&pid_file)?,
            PidFile::Missing => {}
        }
    }
    Ok(running)
}

/// Refuses to start a formatted cluster with another number of nodes: its
/// metadata quorum was made of the old voters.
fn refuse_other_size(layout: &Layout) -> anyhow::Result<()> {
    let formatted: Vec<i32> = node_dirs(&layout.dir)?
        .into_iter()
        .filter(|id| {
            layout
                .dir
                .join(format!("node-{id}"))
                .join(format::META_PROPERTIES)
                .exists()
        })
        .collect();
    let wanted: Vec<i32> = layout.node_ids().collect();
    anyhow::ensure!(
        formatted.is_empty() || formatted == wanted,
        "{} holds a cluster of nodes {formatted:?}; run it with --nodes {} or use another --dir",
        layout.dir.display(),
        formatted.len()
    );
    Ok(())
}

/// A node this `up` started.
#[derive(Debug)]
struct Started {
    nodes: Vec<StartedNode>,
    layout: Layout,
}

#[derive(Debug)]
struct StartedNode {
    id: i32,
    child: Child,
    /// Where this run's output starts in the node's server.log.
    log_start: u64,
}

impl Started {
    /// Stops every node still held: SIGTERM, a grace period, then SIGKILL.
    fn stop(&mut self) {
        for node in &self.nodes {
            if let Err(e) = node_process::signal(node.child.id(), Signal::TERM) {
                eprintln!("runnel: node {}: {e:#}", node.id);
            }
        }
        let deadline = Instant::now() + ABORT_GRACE;
        for node in &mut self.nodes {
            while matches!(node.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            if matches!(node.child.try_wait(), Ok(None)) {
                let _ = node.child.kill();
            }
            let _ = node.child.wait();
            if let Err(e) = node_process::remove_pid_file(&self.layout.pid_file(node.id)) {
                eprintln!("runnel: {e:#}");
            }
        }
        self.nodes.clear();
    }
}

impl Drop for Started {
    /// Nodes still held when `up` returns early (an error after some started)
    /// are stopped rather than left running unannounced.
    fn drop(&mut self) {
        if !self.nodes.is_empty() {
            self.stop();
        }
    }
}

fn start_node(exe: &Path, layout: &Layout, id: i32) -> anyhow::Result<StartedNode> {
    use std::os::unix::process::CommandExt;
    let log_path = layout.log_file(id);
    let log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("cannot open {}", log_path.display()))?;
    let log_start = log.metadata().map(|m| m.len()).unwrap_or(0);
    let stderr = log
        .try_clone()
        .with_context(|| format!("cannot open {}", log_path.display()))?;
    let child = Command::new(exe)
        .args(layout.server_args(id))
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(stderr)
        // A log file is no terminal: no colour escapes in it.
        .env("NO_COLOR", "1")
        // Its own process group: a Ctrl-C in this shell is not delivered to it.
        .process_group(0)
        .spawn()
        .with_context(|| format!("cannot start node {id} ({})", exe.display()))?;
    let node = StartedNode {
        id,
        child,
        log_start,
    };
    node_process::write_pid_file(&layout.pid_file(id), node.child.id())?;
    Ok(node)
}

/// Why `up` gave up, and the nodes whose logs tell more.
#[derive(Debug)]
struct NotReady {
    reason: String,
    nodes: Vec<i32>,
}

/// Waits until every node accepts connections and the cluster lists them all.
async fn wait_ready(
    global: &Global,
    layout: &Layout,
    nodes: &mut [StartedNode],
) -> Result<(), NotReady> {
    let deadline = tokio::time::Instant::now() + UP_TIMEOUT;
    let all: Vec<i32> = layout.node_ids().collect();
    let mut listening = BTreeSet::new();
    let mut last = String::from("no node accepts connections yet");
    loop {
        check_exits(nodes)?;
        if listening.len() < all.len() {
            for &id in &all {
                let addr = ("127.0.0.1", layout.client_port(id));
                let connect = tokio::net::TcpStream::connect(addr);
                if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_millis(500), connect).await {
                    listening.insert(id);
                }
            }
            let waiting: Vec<i32> = all
                .iter()
                .copied()
                .filter(|id| !listening.contains(id))
                .collect();
            last = format!("nodes {waiting:?} do not accept connections");
        }
        if listening.len() == all.len() {
            match brokers(global, layout).await {
                Ok(ids) if ids == all => return Ok(()),
                Ok(ids) => {
                    last = format!("DescribeCluster lists brokers {ids:?}, expected {all:?}")
                }
                Err(e) => last = format!("DescribeCluster failed: {e:#}"),
            }
        }
        if tokio::time::Instant::now() >= deadline {
            let waiting = all
                .iter()
                .copied()
                .filter(|id| !listening.contains(id))
                .collect::<Vec<_>>();
            return Err(NotReady {
                reason: format!("after {} s, {last}", UP_TIMEOUT.as_secs()),
                nodes: if waiting.is_empty() { all } else { waiting },
            });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Fails if a node has exited.
fn check_exits(nodes: &mut [StartedNode]) -> Result<(), NotReady> {
    for node in nodes.iter_mut() {
        if let Ok(Some(status)) = node.child.try_wait() {
            return Err(NotReady {
                reason: format!("node {} exited ({status})", node.id),
                nodes: vec![node.id],
            });
        }
    }
    Ok(())
}

/// The broker ids DescribeCluster lists, asked of node 1, sorted.
async fn brokers(global: &Global, layout: &Layout) -> anyhow::Result<Vec<i32>> {
    let first = Global {
        bootstrap: format!("127.0.0.1:{}", layout.client_port(1)),
        output: global.output,
        timeout_ms: 2_000,
    };
    let admin = super::admin(&first).await?;
    let cluster = admin
        .describe_cluster()
        .await
        .map_err(|e| anyhow::anyhow!(super::error_text(&e)))?;
    let mut ids: Vec<i32> = cluster.brokers.iter().map(|b| b.id).collect();
    ids.sort_unstable();
    Ok(ids)
}

/// Prints the last lines a node wrote to its log since `start`.
fn print_log_tail(path: &Path, start: u64) {
    let mut text = String::new();
    let read = fs::File::open(path).and_then(|mut file| {
        file.seek(SeekFrom::Start(start))?;
        file.take(1 << 20).read_to_string(&mut text)
    });
    if let Err(e) = read {
        eprintln!("runnel: cannot read {}: {e}", path.display());
        return;
    }
    let lines: Vec<&str> = text.lines().collect();
    let tail = &lines[lines.len().saturating_sub(LOG_TAIL_LINES)..];
    eprintln!("--- last lines of {} ---", path.display());
    for line in tail {
        eprintln!("{line}");
    }
    eprintln!("---");
}

/// What `down` did to one node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stopped {
    Exited,
    Killed,
    StalePidFile,
}

/// Runs `runnel cluster down`.
pub fn down(global: &Global, args: DownArgs) -> anyhow::Result<()> {
    let dir = args.dir;
    let mut running = Vec::new();
    let mut results: Vec<(i32, Option<u32>, Stopped)> = Vec::new();
    for id in node_dirs(&dir)? {
        let pid_file = dir.join(format!("node-{id}")).join("server.pid");
        match node_process::read_pid_file(&pid_file)? {
            PidFile::Running(pid) => {
                node_process::signal(pid, Signal::TERM)?;
                running.push((id, pid, pid_file));
            }
            PidFile::Stale => {
                node_process::remove_pid_file(&pid_file)?;
                results.push((id, None, Stopped::StalePidFile));
            }
            PidFile::Missing => {}
        }
    }
    // Every node was signalled at once: together they shut down in one grace period.
    let deadline = Instant::now() + DOWN_GRACE;
    for (id, pid, pid_file) in running {
        while node_process::is_alive(pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let how = if node_process::is_alive(pid) {
            node_process::signal(pid, Signal::KILL)?;
            Stopped::Killed
        } else {
            Stopped::Exited
        };
        node_process::remove_pid_file(&pid_file)?;
        results.push((id, Some(pid), how));
    }
    results.sort_by_key(|(id, _, _)| *id);
    let rows: Vec<Vec<Value>> = results
        .iter()
        .map(|(id, pid, how)| {
            let what = match how {
                Stopped::Exited => "stopped".to_owned(),
                Stopped::Killed => {
                    format!("killed (still running after {} s)", DOWN_GRACE.as_secs())
                }
                Stopped::StalePidFile => "not running (stale pid file removed)".to_owned(),
            };
            vec![json!(id), json!(pid), json!(what)]
        })
        .collect();
    if rows.is_empty() && global.output == Output::Table {
        println!("No running nodes in {}", dir.display());
    } else {
        print_rows(global.output, &["Node", "Pid", "Result"], rows);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout() -> Layout {
        Layout::new(PathBuf::from("/c"), 3, 9092).unwrap()
    }

    #[test]
    fn ports_voters_and_bootstrap_follow_the_base_port() {
        let l = layout();
        assert_eq!(l.node_ids().collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!((l.client_port(1), l.client_port(3)), (9092, 9094));
        assert_eq!((l.controller_port(1), l.controller_port(3)), (9192, 9194));
        assert_eq!(
            l.voters(),
            "1@127.0.0.1:9192,2@127.0.0.1:9193,3@127.0.0.1:9194"
        );
        assert_eq!(
            l.bootstrap(),
            "127.0.0.1:9092,127.0.0.1:9093,127.0.0.1:9094"
        );
        assert_eq!(l.node_dir(2), Path::new("/c/node-2"));
    }

    #[test]
    fn server_args_give_each_node_its_id_ports_and_the_voters() {
        let args: Vec<String> = layout()
            .server_args(2)
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect();
        let expected = [
            "server",
            "--data-dir",
            "/c/node-2",
            "--node-id",
            "2",
            "--listeners",
            "PLAINTEXT://127.0.0.1:9093,CONTROLLER://127.0.0.1:9193",
            "--advertised-listeners",
            "PLAINTEXT://127.0.0.1:9093",
            "--override",
            "process.roles=broker,controller",
            "--override",
            "controller.listener.names=CONTROLLER",
            "--override",
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "--override",
            "controller.quorum.voters=1@127.0.0.1:9192,2@127.0.0.1:9193,3@127.0.0.1:9194",
        ];
        assert_eq!(args, expected);
    }

    #[test]
    fn layouts_outside_the_limits_are_refused() {
        let dir = PathBuf::from("/c");
        assert!(Layout::new(dir.clone(), 0, 9092).is_err());
        assert!(Layout::new(dir.clone(), 10, 9092).is_err());
        assert!(Layout::new(dir.clone(), 3, 0).is_err());
        // 65433 + 100 + 2 = 65535 fits; one more does not.
        assert!(Layout::new(dir.clone(), 3, 65433).is_ok());
        let err = Layout::new(dir, 3, 65434).unwrap_err().to_string();
        assert!(err.contains("65536"), "{err}");
    }

    #[test]
    fn node_dirs_lists_only_node_directories() {
        let dir = tempfile::tempdir().unwrap();
        assert!(node_dirs(&dir.path().join("missing")).unwrap().is_empty());
        for name in ["node-2", "node-1", "node-x", "node-0", "other"] {
            fs::create_dir(dir.path().join(name)).unwrap();
        }
        fs::write(dir.path().join("node-3"), "a file").unwrap();
        assert_eq!(node_dirs(dir.path()).unwrap(), [1, 2]);
    }

    #[test]
    fn the_cluster_id_is_created_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let first = cluster_id(dir.path()).unwrap();
        assert_eq!(cluster_id(dir.path()).unwrap(), first);
        fs::write(dir.path().join("cluster.id"), "bad id\n").unwrap();
        assert!(cluster_id(dir.path()).is_err());
    }

    #[test]
    fn a_formatted_cluster_is_not_restarted_with_another_size() {
        let dir = tempfile::tempdir().unwrap();
        let three = Layout::new(dir.path().to_owned(), 3, 9092).unwrap();
        refuse_other_size(&three).unwrap();
        let id = format::generate_cluster_id();
        for node in three.node_ids() {
            format_dir(&three.node_dir(node), node, &id).unwrap();
        }
        refuse_other_size(&three).unwrap();
        let two = Layout::new(dir.path().to_owned(), 2, 9092).unwrap();
        let err = refuse_other_size(&two).unwrap_err().to_string();
        assert!(err.contains("--nodes 3"), "{err}");
    }

    #[test]
    fn a_stale_pid_file_does_not_block_up_and_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let node = dir.path().join("node-1");
        fs::create_dir(&node).unwrap();
        let mut child = Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        node_process::write_pid_file(&node.join("server.pid"), dead).unwrap();
        assert!(running_nodes(dir.path()).unwrap().is_empty());
        assert!(!node.join("server.pid").exists());
    }
}
