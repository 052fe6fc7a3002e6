//! `runnel format` and `runnel cluster up` / `down`, the local development
//! cluster, driven as a user would.

mod common;

use std::collections::BTreeSet;
use std::hash::{BuildHasher, Hasher};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Runs `runnel -o json ARGS...` and parses what it printed.
fn json(args: &[&str]) -> Value {
    let mut all = vec!["-o", "json"];
    all.extend_from_slice(args);
    common::run(&all).json()
}

fn path(p: &Path) -> &str {
    p.to_str().expect("temp paths are UTF-8")
}

#[test]
fn format_writes_meta_properties_once_and_refuses_another_identity() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("node");
    let file = data.join("meta.properties");

    let run = common::run(&["format", "--data-dir", path(&data), "--node-id", "4"]);
    let out = run.ok();
    let text = std::fs::read_to_string(&file).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[..2], ["version=1", "node.id=4"], "{text}");
    let id = lines[2].strip_prefix("cluster.id=").unwrap();
    assert_eq!(lines.len(), 3, "{text}");
    assert_eq!(id.len(), 22, "{id}");
    assert!(
        id.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
        "{id}"
    );
    assert!(out.contains(id), "the generated id is printed: {out}");

    // The same identity again: nothing to do.
    let again = common::run(&[
        "format",
        "--data-dir",
        path(&data),
        "--node-id",
        "4",
        "--cluster-id",
        id,
    ]);
    assert!(again.ok().contains("already formatted"), "{again:?}");

    // Another node id, or another cluster id: refused, file untouched.
    let other_cluster = "AAAAAAAAAAAAAAAAAAAAAA";
    for (node, cluster) in [("5", id), ("4", other_cluster)] {
        let run = common::run(&[
            "format",
            "--data-dir",
            path(&data),
            "--node-id",
            node,
            "--cluster-id",
            cluster,
        ]);
        assert_eq!(run.code, Some(1), "{run:?}");
        let err = &run.stderr;
        assert!(err.contains(path(&file)), "{err}");
        assert!(err.contains(id) && err.contains(cluster), "{err}");
        assert!(err.contains("node.id 4") && err.contains(&format!("node.id {node}")));
    }
    assert_eq!(std::fs::read_to_string(&file).unwrap(), text);

    // Without --cluster-id a new id is generated, so a formatted dir is refused.
    let run = common::run(&["format", "--data-dir", path(&data), "--node-id", "4"]);
    assert_eq!(run.code, Some(1), "{run:?}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), text);
}

#[test]
fn format_refuses_a_malformed_cluster_id() {
    let dir = tempfile::tempdir().unwrap();
    let run = common::run(&[
        "format",
        "--data-dir",
        path(dir.path()),
        "--node-id",
        "1",
        "--cluster-id",
        "not/base64",
    ]);
    assert!(run.failed().contains("invalid cluster id"), "{run:?}");
    assert!(!dir.path().join("meta.properties").exists());
}

#[test]
fn cluster_up_refuses_node_counts_outside_1_to_9() {
    for nodes in ["0", "10"] {
        let run = common::run(&["cluster", "up", "--nodes", nodes, "--dir", "/nonexistent"]);
        assert_eq!(run.code, Some(2), "{run:?}");
    }
    let run = common::run(&["cluster", "up", "--dir", "/nonexistent"]);
    assert_eq!(run.code, Some(2), "--nodes is required: {run:?}");
}

#[test]
fn cluster_down_without_nodes_does_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("never-started");
    let run = common::run(&["cluster", "down", "--dir", path(&missing)]);
    assert!(run.ok().contains("No running nodes"), "{run:?}");
    assert_eq!(
        json(&["cluster", "down", "--dir", path(dir.path())]),
        serde_json::json!([])
    );
}

/// Child processes a test started, killed when it ends however it ends.
struct Children(Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Waits up to 10 s for `child` to exit.
fn exited(child: &mut Child) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

#[test]
fn cluster_down_stops_runnel_nodes_and_spares_other_processes() {
    let dir = tempfile::tempdir().unwrap();
    let (node1, node2) = (dir.path().join("node-1"), dir.path().join("node-2"));
    std::fs::create_dir_all(&node2).unwrap();
    // Node 1: a real runnel server; node 2's pid file names a process that is
    // not runnel (as after a reboot reused the pid).
    let server = Command::new(common::bin())
        .args([
            "server",
            "--listeners",
            "PLAINTEXT://127.0.0.1:0",
            "--data-dir",
        ])
        .arg(&node1)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut children = Children(vec![server]);
    children
        .0
        .push(Command::new("sleep").arg("60").spawn().unwrap());
    let (server_pid, other_pid) = (children.0[0].id(), children.0[1].id());
    std::fs::create_dir_all(&node1).unwrap();
    std::fs::write(node1.join("server.pid"), format!("{server_pid}\n")).unwrap();
    std::fs::write(node2.join("server.pid"), format!("{other_pid}\n")).unwrap();

    // Every node of a one-node layout is running: nothing to start.
    let refused = common::run(&["cluster", "up", "--nodes", "1", "--dir", path(dir.path())]);
    let err = refused.failed();
    assert!(
        err.contains("already running") && err.contains(&format!("node 1 (pid {server_pid})")),
        "{err}"
    );
    assert!(!err.contains("node 2"), "{err}");
    assert!(
        !node2.join("server.pid").exists(),
        "up removes a stale pid file"
    );
    assert!(children.0[1].try_wait().unwrap().is_none());
    std::fs::write(node2.join("server.pid"), format!("{other_pid}\n")).unwrap();

    let stopped = json(&["cluster", "down", "--dir", path(dir.path())]);
    assert_eq!(stopped[0]["node"], 1, "{stopped}");
    assert_eq!(stopped[0]["pid"], server_pid, "{stopped}");
    assert_eq!(stopped[0]["result"], "stopped", "{stopped}");
    assert_eq!(stopped[1]["node"], 2, "{stopped}");
    assert!(stopped[1]["pid"].is_null(), "{stopped}");
    assert!(exited(&mut children.0[0]), "the runnel server got SIGTERM");
    assert!(
        children.0[1].try_wait().unwrap().is_none(),
        "sleep was not signalled"
    );
    assert!(!node1.join("server.pid").exists());
    assert!(!node2.join("server.pid").exists());
}

/// A base port P such that P..P+n and P+100..P+100+n are free on 127.0.0.1.
fn free_base_port(nodes: u16) -> u16 {
    for _ in 0..200 {
        let random = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish();
        let base = 20_000 + (random % 20_000) as u16;
        let ports = (0..nodes).flat_map(|i| [base + i, base + 100 + i]);
        let bound: Result<Vec<TcpListener>, _> = ports
            .map(|port| TcpListener::bind(("127.0.0.1", port)))
            .collect();
        if bound.is_ok() {
            return base;
        }
    }
    panic!("no free base port found");
}

/// Runs `cluster down` on the directory when dropped, also when the test panics.
struct Down(PathBuf);

impl Drop for Down {
    fn drop(&mut self) {
        let run = common::run(&["cluster", "down", "--dir", path(&self.0)]);
        if run.code != Some(0) {
            eprintln!("cluster down failed: {run:?}");
        }
    }
}

/// `cluster up --nodes N`, then the cluster as a client sees it, then `down`.
fn up_use_and_down(nodes: u16) {
    let dir = tempfile::tempdir().unwrap();
    let cluster = dir.path().join("cluster");
    let base = free_base_port(nodes);
    let _down = Down(cluster.clone());
    let up = json(&[
        "cluster",
        "up",
        "--nodes",
        &nodes.to_string(),
        "--dir",
        path(&cluster),
        "--base-port",
        &base.to_string(),
    ]);
    let bootstrap = up["bootstrap"].as_str().unwrap().to_owned();
    let expected: Vec<String> = (0..nodes)
        .map(|i| format!("127.0.0.1:{}", base + i))
        .collect();
    assert_eq!(bootstrap, expected.join(","), "{up}");
    assert_eq!(up["nodes"].as_array().unwrap().len(), usize::from(nodes));
    let cluster_id = up["cluster_id"].as_str().unwrap();
    for id in 1..=nodes {
        let meta =
            std::fs::read_to_string(cluster.join(format!("node-{id}/meta.properties"))).unwrap();
        assert!(meta.contains(&format!("cluster.id={cluster_id}")), "{meta}");
        assert!(cluster.join(format!("node-{id}/server.pid")).exists());
    }

    let described = json(&["-b", &bootstrap, "cluster", "describe"]);
    assert_eq!(described["cluster_id"], cluster_id, "{described}");
    let brokers: BTreeSet<i64> = described["brokers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["id"].as_i64().unwrap())
        .collect();
    assert_eq!(brokers, (1..=i64::from(nodes)).collect(), "{described}");

    let topic = common::unique("local");
    let created = json(&[
        "-b",
        &bootstrap,
        "topics",
        "create",
        &topic,
        "--partitions",
        "6",
    ]);
    assert_eq!(created[0]["status"], "created", "{created}");
    let topics = json(&["-b", &bootstrap, "topics", "describe", &topic]);
    let partitions = topics[0]["partitions"].as_array().unwrap();
    assert_eq!(partitions.len(), 6, "{topics}");
    let leaders: BTreeSet<i64> = partitions
        .iter()
        .map(|p| p["leader"].as_i64().unwrap())
        .collect();
    assert_eq!(
        leaders, brokers,
        "partitions spread over every node: {topics}"
    );

    let stopped = json(&["cluster", "down", "--dir", path(&cluster)]);
    let results: Vec<&str> = stopped
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["result"].as_str().unwrap())
        .collect();
    assert_eq!(results, vec!["stopped"; usize::from(nodes)], "{stopped}");
    for id in 1..=nodes {
        assert!(!cluster.join(format!("node-{id}/server.pid")).exists());
    }
}

#[test]
fn cluster_up_runs_one_node_and_down_stops_it() {
    up_use_and_down(1);
}

#[test]
fn cluster_up_runs_three_nodes_and_down_stops_them() {
    up_use_and_down(3);
}
