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

use parking_lot::Mutex;
use runnel_model::config::BrokerConfig;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::broker::Broker;
use crate::connection::{Connection, RequestMemory};

/// Starts brokers.
#[derive(Debug)]
pub struct Server;

/// A started broker. Dropping it does not stop it; call
/// [`RunningServer::shutdown`].
#[derive(Debug)]
pub struct RunningServer {
    local_addr: SocketAddr,
    broker: Arc<Broker>,
    stop: watch::Sender<bool>,
    accept_task: tokio::task::JoinHandle<()>,
    group_timers: tokio::task::JoinHandle<()>,
    background: runnel_storage::BackgroundHandle,
}

impl Server {
    /// Opens the data directory, binds the first listener and starts
    /// accepting connections. A listener port of 0 binds a free port, which
    /// is then advertised.
    pub async fn start(config: BrokerConfig) -> anyhow::Result<RunningServer> {
        let listener_config = config
            .listeners()
            .into_iter()
            .next()
            .ok_or_else(|| anyhow::anyhow!("listeners: at least one listener is required"))?;
        let bind = format!("{}:{}", listener_config.host, listener_config.port);
        let listener = TcpListener::bind(&bind)
            .await
            .map_err(|e| anyhow::anyhow!("listeners: cannot bind {bind}: {e}"))?;
        let local_addr = listener.local_addr()?;
        let (host, port) = match config.advertised_listeners().into_iter().next() {
            Some(l) if l.port != 0 => (l.host, l.port as i32),
            Some(l) => (l.host, local_addr.port() as i32),
            None => (listener_config.host.clone(), local_addr.port() as i32),
        };
        let host = if host.is_empty() || host == "0.0.0.0" {
            "127.0.0.1".to_string()
        } else {
            host
        };
        let request_memory = RequestMemory::new(config.queued_max_request_bytes());
        let retention_check_interval_ms = config.log_retention_check_interval_ms();
        let flush_check_interval_ms = config.log_flush_scheduler_interval_ms();
        let producer_id_expiration_ms = config.producer_id_expiration_ms();
        let cleaner_enable = config.log_cleaner_enable();
        let cleaner_backoff_ms = config.log_cleaner_backoff_ms();
        let cleaner_dedupe_buffer_bytes = config.log_cleaner_dedupe_buffer_size();
        let broker =
            tokio::task::spawn_blocking(move || Broker::open(config, host, port)).await??;
        let broker = Arc::new(broker);
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
        let group_timers = tokio::spawn(crate::groups::run_timers(broker.clone(), stop_rx.clone()));
        let accept_task = tokio::spawn(accept_loop(
            listener,
            broker.clone(),
            request_memory,
            stop_rx,
        ));
        tracing::info!(address = %local_addr, node_id = broker.node_id, cluster_id = %broker.cluster_id, data_dir = %broker.data_dir.display(), "runnel broker started");
        Ok(RunningServer {
            local_addr,
            broker,
            stop,
            accept_task,
            group_timers,
            background,
        })
    }
}

impl RunningServer {
    /// The address the listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting, closes connections, flushes every log and writes
    /// the clean-shutdown marker.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        let _ = self.stop.send(true);
        let _ = self.accept_task.await;
        let _ = self.group_timers.await;
        self.broker.groups.shutdown();
        let broker = self.broker;
        let background = self.background;
        tokio::task::spawn_blocking(move || {
            drop(background);
            broker.logs.shutdown()
        })
        .await?
        .map_err(|e| anyhow::anyhow!("shutdown: {e}"))?;
        tracing::info!("runnel broker stopped cleanly");
        Ok(())
    }
}

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
