//! Listeners and the server's lifetime: bind, accept within limits, shut
//! down gracefully.

use std::net::SocketAddr;
use std::sync::Arc;

use runnel_model::config::BrokerConfig;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

use crate::broker::Broker;
use crate::connection::Connection;

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
        let max_connections = usize::try_from(config.max_connections())
            .unwrap_or(usize::MAX)
            .min(Semaphore::MAX_PERMITS);
        let retention_check_interval_ms = config.log_retention_check_interval_ms();
        let flush_check_interval_ms = config.log_flush_scheduler_interval_ms();
        let producer_id_expiration_ms = config.producer_id_expiration_ms();
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
            });
        let (stop, stop_rx) = watch::channel(false);
        let accept_task = tokio::spawn(accept_loop(
            listener,
            broker.clone(),
            Arc::new(Semaphore::new(max_connections)),
            stop_rx,
        ));
        tracing::info!(address = %local_addr, node_id = broker.node_id, cluster_id = %broker.cluster_id, data_dir = %broker.data_dir.display(), "runnel broker started");
        Ok(RunningServer {
            local_addr,
            broker,
            stop,
            accept_task,
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
    permits: Arc<Semaphore>,
    mut stop: watch::Receiver<bool>,
) {
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
                let Ok(permit) = permits.clone().try_acquire_owned() else {
                    tracing::warn!(%peer, "closing connection: max.connections reached");
                    drop(stream);
                    continue;
                };
                let connection = Connection::new(broker.clone(), stream, peer);
                let stop = stop.clone();
                connections.spawn(async move {
                    connection.run(stop).await;
                    drop(permit);
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    connections.shutdown().await;
}
