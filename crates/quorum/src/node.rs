//! One node's part in the quorum: its raft member, its quorum listener,
//! the active controller when it is a voter, and the way its broker reaches
//! whichever node is the active controller.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::{BasicNode, SnapshotPolicy};
use runnel_metadata::{ControllerConfig, MetadataImage};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::controller::{ActiveController, Job};
use crate::log_store::LogStore;
use crate::network::{NetworkFactory, PeerClient};
use crate::rpc::{
    read_message, write_message, ControllerFailure, ControllerReply, ControllerRequest, Request,
    Response,
};
use crate::state_machine::{Published, StateMachine};
use crate::{NodeId, Raft};

/// Raft's timing, in milliseconds, and how often snapshots are taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    pub heartbeat_ms: u64,
    /// A follower that hears from no leader for a random time in this
    /// range starts an election (Kafka's `controller.quorum.election.timeout.ms`
    /// is 1000).
    pub election_timeout_ms: (u64, u64),
    /// A snapshot is taken after this many entries since the last one.
    pub snapshot_every: u64,
}

impl Default for Timing {
    fn default() -> Timing {
        Timing {
            heartbeat_ms: 200,
            election_timeout_ms: (1000, 2000),
            snapshot_every: 1000,
        }
    }
}

/// What a node needs to join the quorum.
#[derive(Debug, Clone)]
pub struct QuorumConfig {
    /// `node.id`.
    pub node_id: NodeId,
    /// The cluster this node belongs to; peers of another are refused.
    pub cluster_id: String,
    /// Where the log, its state and the snapshot live.
    pub dir: PathBuf,
    /// `controller.quorum.voters`: id to `host:port` of each voter's
    /// quorum listener. A node in it is a controller.
    pub voters: BTreeMap<NodeId, String>,
    /// Where other nodes reach this node's quorum listener.
    pub advertised_address: String,
    pub controller: ControllerConfig,
    pub timing: Timing,
}

/// A running node of the quorum. Dropping it does not stop it; call
/// [`Quorum::shutdown`].
pub struct Quorum {
    me: NodeId,
    advertised_address: String,
    cluster_id: String,
    voters: BTreeMap<NodeId, String>,
    raft: Raft,
    images: watch::Receiver<Published>,
    /// The local active controller's queue, on voters.
    jobs: Option<mpsc::Sender<Job>>,
    /// Connections to other nodes, for forwarded controller requests.
    peers: tokio::sync::Mutex<BTreeMap<NodeId, PeerClient>>,
    tasks: Vec<JoinHandle<()>>,
    /// Closes the quorum listener's connections.
    stop: watch::Sender<bool>,
}

impl std::fmt::Debug for Quorum {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Quorum")
            .field("me", &self.me)
            .field("voters", &self.voters)
            .field("leader", &self.leader())
            .finish()
    }
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("cluster_id", &self.cluster_id)
            .finish()
    }
}

impl Quorum {
    /// Opens this node's log and state machine, starts its raft member and
    /// serves its quorum listener on `listener`. A voter whose log is empty
    /// initialises the quorum with the configured voters (every voter may;
    /// they all propose the same membership).
    pub async fn start(config: QuorumConfig, listener: TcpListener) -> anyhow::Result<Quorum> {
        let log_store = LogStore::open(&config.dir).map_err(|e| {
            anyhow::anyhow!(
                "cannot open the metadata log in {}: {e}",
                config.dir.display()
            )
        })?;
        let state_machine = StateMachine::open(&config.dir).map_err(|e| {
            anyhow::anyhow!(
                "cannot open the metadata snapshot in {}: {e}",
                config.dir.display()
            )
        })?;
        let images = state_machine.subscribe();
        let timing = config.timing;
        let raft_config = openraft::Config {
            cluster_name: config.cluster_id.clone(),
            heartbeat_interval: timing.heartbeat_ms,
            election_timeout_min: timing.election_timeout_ms.0,
            election_timeout_max: timing.election_timeout_ms.1,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(timing.snapshot_every.max(1)),
            max_in_snapshot_log_to_keep: 0,
            purge_batch_size: 1,
            ..Default::default()
        }
        .validate()
        .map_err(|e| anyhow::anyhow!("raft settings: {e}"))?;
        let network = NetworkFactory {
            cluster_id: config.cluster_id.clone(),
            me: config.node_id,
        };
        let raft = Raft::new(
            config.node_id,
            Arc::new(raft_config),
            network,
            log_store,
            state_machine,
        )
        .await
        .map_err(|e| anyhow::anyhow!("cannot start raft: {e}"))?;

        let is_voter = config.voters.contains_key(&config.node_id);
        if is_voter && !raft.is_initialized().await? {
            let members: BTreeMap<NodeId, BasicNode> = config
                .voters
                .iter()
                .map(|(id, addr)| (*id, BasicNode { addr: addr.clone() }))
                .collect();
            tracing::info!(node = config.node_id, voters = ?config.voters.keys().collect::<Vec<_>>(), "initialising the metadata quorum");
            raft.initialize(members)
                .await
                .map_err(|e| anyhow::anyhow!("cannot initialise the quorum: {e}"))?;
        }

        let mut tasks = Vec::new();
        let jobs = if is_voter {
            let (tx, rx) = mpsc::channel(256);
            let controller = ActiveController {
                me: config.node_id,
                raft: raft.clone(),
                images: images.clone(),
                config: config.controller.clone(),
                state: None,
                term: 0,
            };
            tasks.push(tokio::spawn(controller.run(rx)));
            Some(tx)
        } else {
            None
        };
        let (stop, stop_rx) = watch::channel(false);
        let server = Server {
            cluster_id: config.cluster_id.clone(),
            raft: raft.clone(),
            jobs: jobs.clone(),
            stop: stop_rx,
        };
        tasks.push(tokio::spawn(server.accept(listener)));
        Ok(Quorum {
            me: config.node_id,
            advertised_address: config.advertised_address,
            cluster_id: config.cluster_id,
            voters: config.voters,
            raft,
            images,
            jobs,
            peers: tokio::sync::Mutex::new(BTreeMap::new()),
            tasks,
            stop,
        })
    }

    /// This node's id.
    pub fn node_id(&self) -> NodeId {
        self.me
    }

    /// Where other nodes reach this node's quorum listener.
    pub fn advertised_address(&self) -> &str {
        &self.advertised_address
    }

    /// Every image this node applies, as it applies it.
    pub fn images(&self) -> watch::Receiver<Published> {
        self.images.clone()
    }

    /// The current image.
    pub fn image(&self) -> Arc<MetadataImage> {
        self.images.borrow().image.clone()
    }

    /// The active controller as this node knows it.
    pub fn leader(&self) -> Option<NodeId> {
        self.raft.metrics().borrow().current_leader
    }

    /// The raft member, for metrics and tests.
    pub fn raft(&self) -> &Raft {
        &self.raft
    }

    /// Waits until this node's image reflects the log up to `index`.
    pub async fn wait_applied(&self, index: u64, timeout: Duration) -> bool {
        let mut images = self.images.clone();
        tokio::time::timeout(timeout, images.wait_for(|p| p.applied >= index))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Sends `request` to the active controller, wherever it is, following
    /// NOT_CONTROLLER answers and retrying unreachable controllers until
    /// `timeout` has passed.
    pub async fn submit(&self, request: ControllerRequest, timeout: Duration) -> ControllerReply {
        let deadline = Instant::now() + timeout;
        let mut target = self.leader();
        let mut round = 0usize;
        let mut last_failure: String;
        loop {
            let candidate = match target {
                Some(id) => id,
                None => {
                    // No leader known: try the voters in turn.
                    let ids: Vec<NodeId> = self.voters.keys().copied().collect();
                    round += 1;
                    match ids.get(round % ids.len().max(1)) {
                        Some(id) => *id,
                        None => {
                            return Err(ControllerFailure::Unavailable(
                                "no controller is configured".into(),
                            ))
                        }
                    }
                }
            };
            let left = deadline.saturating_duration_since(Instant::now());
            let answer = self.submit_to(candidate, request.clone(), left).await;
            match answer {
                Err(ControllerFailure::NotController { leader }) => {
                    last_failure = format!("node {candidate} is not the active controller");
                    target = leader.filter(|l| *l != candidate);
                }
                Err(ControllerFailure::Unavailable(why)) => {
                    tracing::debug!(node = candidate, %why, "controller unavailable");
                    last_failure = why;
                    target = None;
                }
                other => return other,
            }
            if Instant::now() >= deadline {
                return Err(ControllerFailure::Unavailable(format!(
                    "no active controller answered within {timeout:?} (last: {last_failure})"
                )));
            }
            if target.is_none() {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }

    async fn submit_to(
        &self,
        node: NodeId,
        request: ControllerRequest,
        timeout: Duration,
    ) -> ControllerReply {
        if node == self.me {
            let Some(jobs) = &self.jobs else {
                return Err(ControllerFailure::NotController { leader: None });
            };
            let (tx, rx) = oneshot::channel();
            if jobs.send((request, tx)).await.is_err() {
                return Err(ControllerFailure::Unavailable(
                    "the controller stopped".into(),
                ));
            }
            return match tokio::time::timeout(timeout, rx).await {
                Ok(Ok(reply)) => reply,
                Ok(Err(_)) => Err(ControllerFailure::Unavailable(
                    "the controller stopped".into(),
                )),
                Err(_) => Err(ControllerFailure::Unavailable(
                    "the controller did not answer in time".into(),
                )),
            };
        }
        let addr = match self.voters.get(&node) {
            Some(addr) => addr.clone(),
            None => {
                let metrics = self.raft.metrics();
                let found = metrics
                    .borrow()
                    .membership_config
                    .nodes()
                    .find(|(id, _)| **id == node)
                    .map(|(_, n)| n.addr.clone());
                match found {
                    Some(addr) => addr,
                    None => return Err(ControllerFailure::NotController { leader: None }),
                }
            }
        };
        let mut peers = self.peers.lock().await;
        let peer = peers
            .entry(node)
            .or_insert_with(|| PeerClient::new(addr, self.cluster_id.clone(), self.me));
        match peer.call(&Request::Controller(request), timeout).await {
            Ok(Response::Controller(reply)) => reply,
            Ok(_) => Err(ControllerFailure::Unavailable(format!(
                "node {node} answered another request"
            ))),
            Err(e) => Err(ControllerFailure::Unavailable(e.to_string())),
        }
    }

    /// Stops raft and the listener.
    pub async fn shutdown(&self) {
        self.stop.send_replace(true);
        for task in &self.tasks {
            task.abort();
        }
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!(error = %e, "raft did not stop cleanly");
        }
    }
}

/// The quorum listener.
#[derive(Clone)]
struct Server {
    cluster_id: String,
    raft: Raft,
    jobs: Option<mpsc::Sender<Job>>,
    /// Turns true when the node stops: every connection closes.
    stop: watch::Receiver<bool>,
}

impl Server {
    async fn accept(self, listener: TcpListener) {
        loop {
            match listener.accept().await {
                Ok((stream, peer)) => {
                    let server = self.clone();
                    tokio::spawn(async move {
                        if let Err(e) = server.serve(stream).await {
                            tracing::debug!(%peer, error = %e, "quorum connection closed");
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "quorum listener cannot accept");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    async fn serve(self, mut stream: TcpStream) -> std::io::Result<()> {
        stream.set_nodelay(true)?;
        match read_message::<_, Request>(&mut stream).await? {
            Some(Request::Hello { cluster_id, from }) => {
                if cluster_id != self.cluster_id {
                    let why = format!(
                        "node {from} belongs to cluster {cluster_id}, this node to {}",
                        self.cluster_id
                    );
                    tracing::warn!("{why}");
                    write_message(&mut stream, &Response::Refused(why)).await?;
                    return Ok(());
                }
                write_message(&mut stream, &Response::Welcome).await?;
            }
            Some(_) => {
                let why = "a connection must start with a greeting".to_string();
                write_message(&mut stream, &Response::Refused(why)).await?;
                return Ok(());
            }
            None => return Ok(()),
        }
        let mut stop = self.stop.clone();
        loop {
            if *stop.borrow() {
                return Ok(());
            }
            let request = tokio::select! {
                request = read_message::<_, Request>(&mut stream) => request?,
                _ = stop.changed() => return Ok(()),
            };
            let Some(request) = request else {
                return Ok(());
            };
            let response = self.answer(request).await;
            write_message(&mut stream, &response).await?;
        }
    }

    async fn answer(&self, request: Request) -> Response {
        match request {
            Request::Hello { .. } => Response::Welcome,
            Request::AppendEntries(rpc) => {
                Response::AppendEntries(self.raft.append_entries(rpc).await)
            }
            Request::Vote(rpc) => Response::Vote(self.raft.vote(rpc).await),
            Request::InstallSnapshot(rpc) => {
                Response::InstallSnapshot(self.raft.install_snapshot(rpc).await)
            }
            Request::Controller(request) => {
                let leader = self.raft.metrics().borrow().current_leader;
                let Some(jobs) = &self.jobs else {
                    return Response::Controller(Err(ControllerFailure::NotController { leader }));
                };
                let (tx, rx) = oneshot::channel();
                if jobs.send((request, tx)).await.is_err() {
                    return Response::Controller(Err(ControllerFailure::Unavailable(
                        "the controller stopped".into(),
                    )));
                }
                Response::Controller(rx.await.unwrap_or_else(|_| {
                    Err(ControllerFailure::Unavailable(
                        "the controller stopped".into(),
                    ))
                }))
            }
        }
    }
}
