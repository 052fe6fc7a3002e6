//! Listeners and the server's lifetime: bind, accept within limits, shut
//! down gracefully.
//!
//! A connection beyond `max.connections`, or beyond `max.connections.per.ip`
//! (or its entry in `max.connections.per.ip.overrides`) for its address, is
//! closed as soon as it is accepted, with a warning naming the peer and the
//! limit; the connections already open are not disturbed, and a slot frees
//! as soon as one of them closes. The limits are read at every accept, so
//! dynamic updates apply to the next connection.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use runnel_model::config::BrokerConfig;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::broker::{load_or_create_identity, Broker, Identity};
use crate::cluster::{run_lifecycle, run_reconciler, start_quorum, ClusterPlan, Registration};
use crate::connection::{Connection, RequestMemory};

/// Starts brokers.
#[derive(Debug)]
pub struct Server;

/// A started node. Dropping it does not stop it; call
/// [`RunningServer::shutdown`].
#[derive(Debug)]
pub struct RunningServer {
    node: Node,
}

#[derive(Debug)]
enum Node {
    Broker(BrokerNode),
    /// `process.roles=controller`: a voter of the metadata quorum that
    /// serves no clients.
    Controller(ControllerNode),
}

#[derive(Debug)]
struct ControllerNode {
    local_addr: SocketAddr,
    cluster_id: String,
    quorum: runnel_quorum::Quorum,
}

/// A broker (with or without the controller role).
#[derive(Debug)]
struct BrokerNode {
    local_addr: SocketAddr,
    broker: Arc<Broker>,
    stop: watch::Sender<bool>,
    stopping: watch::Sender<bool>,
    registration: watch::Receiver<Registration>,
    accept_task: tokio::task::JoinHandle<()>,
    group_timers: tokio::task::JoinHandle<()>,
    isr_checks: tokio::task::JoinHandle<()>,
    checkpoints: tokio::task::JoinHandle<()>,
    reconciler: tokio::task::JoinHandle<()>,
    lifecycle: tokio::task::JoinHandle<()>,
    background: runnel_storage::BackgroundHandle,
}

/// The cluster id in `data_dir`'s `meta.properties` (see
/// [`load_or_create_identity`]), read off the async runtime.
async fn cluster_id_of(
    data_dir: std::path::PathBuf,
    node_id: i32,
    may_create: bool,
) -> anyhow::Result<String> {
    tokio::task::spawn_blocking(move || {
        std::fs::create_dir_all(&data_dir)
            .map_err(|e| anyhow::anyhow!("cannot create data dir {}: {e}", data_dir.display()))?;
        load_or_create_identity(&data_dir, node_id, may_create)
    })
    .await?
}

/// How long a starting broker waits to be registered and unfenced.
const JOIN_TIMEOUT: Duration = Duration::from_secs(60);

impl Server {
    /// Opens the data directory, joins the metadata quorum, registers with
    /// the active controller, binds the first client listener and starts
    /// accepting connections once the controller has unfenced this broker.
    /// A listener port of 0 binds a free port, which is then advertised.
    pub async fn start(config: BrokerConfig) -> anyhow::Result<RunningServer> {
        let plan = ClusterPlan::from_config(&config)?;
        let node = if plan.broker {
            Node::Broker(Self::start_broker(config, plan).await?)
        } else {
            Node::Controller(Self::start_controller(config, plan).await?)
        };
        Ok(RunningServer { node })
    }

    /// A controller-only node: the quorum and nothing else.
    async fn start_controller(
        config: BrokerConfig,
        plan: ClusterPlan,
    ) -> anyhow::Result<ControllerNode> {
        let node_id = config.node_id().0;
        let cluster_id = cluster_id_of(config.metadata_log_dir(), node_id, false).await?;
        let quorum = start_quorum(&plan, &config, &cluster_id, "127.0.0.1").await?;
        let local_addr: SocketAddr = quorum
            .advertised_address()
            .parse()
            .or_else(|_| plan.quorum_bind.parse())
            .map_err(|e| anyhow::anyhow!("quorum listener address: {e}"))?;
        tracing::info!(address = %local_addr, node_id, %cluster_id, "runnel controller started");
        Ok(ControllerNode {
            local_addr,
            cluster_id,
            quorum,
        })
    }

    async fn start_broker(config: BrokerConfig, plan: ClusterPlan) -> anyhow::Result<BrokerNode> {
        let is_client = |name: &str| {
            !plan
                .controller_listeners
                .iter()
                .any(|c| c.eq_ignore_ascii_case(name))
        };
        let listener_config = config
            .listeners()
            .into_iter()
            .find(|l| is_client(&l.name))
            .ok_or_else(|| {
                anyhow::anyhow!("listeners: at least one client listener is required")
            })?;
        let bind = format!("{}:{}", listener_config.host, listener_config.port);
        let listener = TcpListener::bind(&bind)
            .await
            .map_err(|e| anyhow::anyhow!("listeners: cannot bind {bind}: {e}"))?;
        let local_addr = listener.local_addr()?;
        let advertised = config
            .advertised_listeners()
            .into_iter()
            .filter(|l| is_client(&l.name))
            .find(|l| l.name.eq_ignore_ascii_case(&listener_config.name));
        let (host, port) = match advertised {
            Some(l) if l.port != 0 => (l.host, l.port as i32),
            Some(l) => (l.host, local_addr.port() as i32),
            None => (listener_config.host.clone(), local_addr.port() as i32),
        };
        let host = if host.is_empty() || host == "0.0.0.0" {
            "127.0.0.1".to_string()
        } else {
            host
        };
        let node_id = config.node_id().0;
        let cluster_id = cluster_id_of(config.log_dir(), node_id, plan.standalone).await?;
        let quorum = Arc::new(start_quorum(&plan, &config, &cluster_id, &host).await?);
        let quorum_address = quorum.advertised_address().to_string();
        let identity = Identity {
            cluster_id,
            advertised_host: host,
            advertised_port: port,
            listener_name: listener_config.name.to_ascii_uppercase(),
        };
        let request_memory = RequestMemory::new(config.queued_max_request_bytes());
        let retention_check_interval_ms = config.log_retention_check_interval_ms();
        let flush_check_interval_ms = config.log_flush_scheduler_interval_ms();
        let producer_id_expiration_ms = config.producer_id_expiration_ms();
        let cleaner_enable = config.log_cleaner_enable();
        let cleaner_backoff_ms = config.log_cleaner_backoff_ms();
        let cleaner_dedupe_buffer_bytes = config.log_cleaner_dedupe_buffer_size();
        let opened = {
            let quorum = quorum.clone();
            tokio::task::spawn_blocking(move || Broker::open(config, identity, quorum)).await?
        };
        let broker = match opened {
            Ok(broker) => Arc::new(broker),
            Err(e) => {
                quorum.shutdown().await;
                return Err(e);
            }
        };
        broker
            .logs
            .set_producer_id_expiration_ms(producer_id_expiration_ms);
        let background = broker
            .logs
            .start_background(runnel_storage::BackgroundOptions {
                flush_check_interval_ms: flush_check_interval_ms.clamp(10, 60_000) as u64,
                retention_check_interval_ms: retention_check_interval_ms.max(10) as u64,
                cleaner_enable,
                cleaner_backoff_ms: cleaner_backoff_ms.max(10) as u64,
                cleaner_dedupe_buffer_bytes: cleaner_dedupe_buffer_bytes.max(1 << 20) as u64,
            });
        let (stop, stop_rx) = watch::channel(false);
        let (stopping, stopping_rx) = watch::channel(false);
        let (registration_tx, mut registration) = watch::channel(Registration::default());
        let reconciler = tokio::spawn(run_reconciler(broker.clone(), stop_rx.clone()));
        let lifecycle = tokio::spawn(run_lifecycle(
            broker.clone(),
            quorum_address,
            stopping_rx,
            registration_tx,
        ));
        let joined = tokio::time::timeout(
            JOIN_TIMEOUT,
            registration.wait_for(|r| r.epoch.is_some() && !r.fenced),
        )
        .await
        .is_ok_and(|r| r.is_ok());
        if !joined {
            let _ = stop.send(true);
            lifecycle.abort();
            let _ = reconciler.await;
            drop(background);
            broker.quorum.shutdown().await;
            let leader = broker.quorum.leader();
            anyhow::bail!(
                "node {node_id} could not join the cluster within {JOIN_TIMEOUT:?} \
                 (active controller: {leader:?}); check controller.quorum.voters and that a \
                 majority of the voters is running"
            );
        }
        let group_timers = tokio::spawn(crate::groups::run_timers(broker.clone(), stop_rx.clone()));
        let isr_checks = tokio::spawn(crate::replication::run_isr_checks(
            broker.clone(),
            stop_rx.clone(),
        ));
        let checkpoints = tokio::spawn(crate::replication::checkpoint::run(
            broker.clone(),
            stop_rx.clone(),
        ));
        let accept_task = tokio::spawn(accept_loop(
            listener,
            broker.clone(),
            request_memory,
            stop_rx,
        ));
        tracing::info!(address = %local_addr, node_id = broker.node_id, cluster_id = %broker.cluster_id, data_dir = %broker.data_dir.display(), "runnel broker started");
        Ok(BrokerNode {
            local_addr,
            broker,
            stop,
            stopping,
            registration,
            accept_task,
            group_timers,
            isr_checks,
            checkpoints,
            reconciler,
            lifecycle,
            background,
        })
    }
}

impl RunningServer {
    /// The address the client listener is bound to (a controller-only
    /// node: its quorum listener).
    pub fn local_addr(&self) -> SocketAddr {
        match &self.node {
            Node::Broker(b) => b.local_addr,
            Node::Controller(c) => c.local_addr,
        }
    }

    /// The cluster id this node belongs to.
    pub fn cluster_id(&self) -> &str {
        match &self.node {
            Node::Broker(b) => &b.broker.cluster_id,
            Node::Controller(c) => &c.cluster_id,
        }
    }

    /// Stops the node: a broker asks the controller to move leadership
    /// away (controlled shutdown), stops accepting, closes connections,
    /// flushes every log, writes the clean-shutdown marker and leaves the
    /// quorum; a controller leaves the quorum.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        match self.node {
            Node::Broker(b) => b.shutdown().await,
            Node::Controller(c) => {
                c.quorum.shutdown().await;
                tracing::info!("runnel controller stopped");
                Ok(())
            }
        }
    }
}

impl BrokerNode {
    /// Asks the controller to move leadership away (controlled shutdown),
    /// then stops accepting, closes connections, flushes every log, writes
    /// the clean-shutdown marker and leaves the quorum.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        let _ = self.stopping.send(true);
        // Wait for the controller to move leadership away, unless there is
        // no active controller to do it (the rest of the quorum is gone).
        let started = tokio::time::Instant::now();
        let controlled = loop {
            let (shut_down, answered_at) = {
                let registration = self.registration.borrow();
                (registration.shut_down, registration.answered_at)
            };
            if shut_down {
                break true;
            }
            let now = tokio::time::Instant::now();
            let heard = answered_at.map_or(started, |at| at.max(started));
            if now - heard >= NO_CONTROLLER_GRACE || now - started >= CONTROLLED_SHUTDOWN_TIMEOUT {
                break false;
            }
            let _ =
                tokio::time::timeout(Duration::from_millis(100), self.registration.changed()).await;
        };
        if !controlled {
            tracing::warn!("the controlled shutdown did not complete; stopping anyway");
        }
        self.lifecycle.abort();
        let _ = self.stop.send(true);
        let _ = self.accept_task.await;
        let _ = self.group_timers.await;
        let _ = self.isr_checks.await;
        let _ = self.checkpoints.await;
        let _ = self.reconciler.await;
        self.broker.fetchers.shutdown();
        self.broker.groups.shutdown();
        let broker = self.broker;
        let background = self.background;
        let closing = broker.clone();
        let closed = tokio::task::spawn_blocking(move || {
            drop(background);
            closing.logs.shutdown()
        })
        .await?
        .map_err(|e| anyhow::anyhow!("shutdown: {e}"));
        broker.quorum.shutdown().await;
        closed?;
        tracing::info!("runnel broker stopped cleanly");
        Ok(())
    }
}

/// How long a stopping broker waits for the controller to move its
/// leaderships away.
const CONTROLLED_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a stopping broker waits for the controller to answer at all
/// (the rest of the quorum may be gone).
const NO_CONTROLLER_GRACE: Duration = Duration::from_secs(3);

async fn accept_loop(
    listener: TcpListener,
    broker: Arc<Broker>,
    request_memory: Option<RequestMemory>,
    mut stop: watch::Receiver<bool>,
) {
    let counts = Arc::new(ConnectionCounts::default());
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(pair) => pair,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let limits = ConnectionLimits::from_config(&broker.config.read());
                let slot = match counts.admit(peer.ip(), &limits) {
                    Ok(slot) => slot,
                    Err(reason) => {
                        tracing::warn!(%peer, %reason, "closing connection");
                        drop(stream);
                        continue;
                    }
                };
                let connection =
                    Connection::new(broker.clone(), stream, peer, request_memory.clone());
                let stop = stop.clone();
                connections.spawn(async move {
                    connection.run(stop).await;
                    drop(slot);
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    connections.shutdown().await;
}

/// The connection limits in force when a connection is accepted.
#[derive(Debug)]
struct ConnectionLimits {
    max_connections: usize,
    max_connections_per_ip: usize,
    /// `max.connections.per.ip.overrides`. Hosts are matched as IP
    /// literals; unlike Kafka, a host name is not resolved.
    per_ip_overrides: Vec<(String, usize)>,
}

impl ConnectionLimits {
    fn from_config(config: &BrokerConfig) -> ConnectionLimits {
        let count = |value: i32| usize::try_from(value).unwrap_or(0);
        ConnectionLimits {
            max_connections: count(config.max_connections()),
            max_connections_per_ip: count(config.max_connections_per_ip()),
            per_ip_overrides: config
                .max_connections_per_ip_overrides()
                .into_iter()
                .map(|(host, max)| (host, count(max)))
                .collect(),
        }
    }

    fn per_ip(&self, ip: IpAddr) -> usize {
        self.per_ip_overrides
            .iter()
            .find(|(host, _)| host.parse::<IpAddr>().map(|h| h.to_canonical()) == Ok(ip))
            .map_or(self.max_connections_per_ip, |(_, max)| *max)
    }
}

/// Open connections, in total and per client address.
#[derive(Debug, Default)]
struct ConnectionCounts {
    open: Mutex<OpenConnections>,
}

#[derive(Debug, Default)]
struct OpenConnections {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

impl ConnectionCounts {
    /// Takes a slot for a connection from `ip`, or says which limit it
    /// would exceed.
    fn admit(self: &Arc<Self>, ip: IpAddr, limits: &ConnectionLimits) -> Result<Slot, String> {
        let ip = ip.to_canonical();
        let mut open = self.open.lock();
        let from_ip = open.per_ip.get(&ip).copied().unwrap_or(0);
        let per_ip = limits.per_ip(ip);
        if from_ip >= per_ip {
            return Err(format!(
                "{from_ip} connections from {ip} already open (max.connections.per.ip = {per_ip})"
            ));
        }
        if open.total >= limits.max_connections {
            return Err(format!(
                "{} connections already open (max.connections = {})",
                open.total, limits.max_connections
            ));
        }
        open.total += 1;
        *open.per_ip.entry(ip).or_insert(0) += 1;
        Ok(Slot {
            counts: self.clone(),
            ip,
        })
    }
}

/// One open connection's place in [`ConnectionCounts`], given back on drop.
#[derive(Debug)]
struct Slot {
    counts: Arc<ConnectionCounts>,
    ip: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.counts.open.lock();
        debug_assert!(open.total > 0, "a slot outlived its count");
        open.total = open.total.saturating_sub(1);
        if let Some(count) = open.per_ip.get_mut(&self.ip) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.per_ip.remove(&self.ip);
            }
        }
    }
}
