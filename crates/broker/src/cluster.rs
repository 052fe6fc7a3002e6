//! The broker's place in the cluster (DESIGN §5): its roles and quorum
//! settings from the configuration, the metadata quorum it joins, the
//! reconciler that turns each metadata image into hosted logs, and the
//! lifecycle that registers the broker, heartbeats and shuts down under
//! the controller's control.
//!
//! With no `process.roles` and no `controller.quorum.voters` (the zero
//! configuration) the node is a whole cluster by itself: the single voter
//! of its own quorum and its only broker.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use runnel_metadata::records::Endpoint;
use runnel_metadata::{BrokerEpoch, BrokerRegistrationRequest, ControllerConfig, HeartbeatRequest};
use runnel_model::config::BrokerConfig;
use runnel_model::BrokerId;
use runnel_quorum::{
    ControllerFailure, ControllerRequest, ControllerResponse, NodeId, Quorum, QuorumConfig, Timing,
};
use tokio::net::TcpListener;
use tokio::sync::watch;
use uuid::Uuid;

use crate::broker::Broker;

/// The directory of the metadata log under `metadata.log.dir`.
pub(crate) const METADATA_DIR: &str = "__cluster_metadata";

/// How this node takes part in the cluster, from its configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ClusterPlan {
    pub node_id: NodeId,
    /// `controller.quorum.voters`, or this node alone.
    pub voters: BTreeMap<NodeId, String>,
    /// Whether this node is one of the voters.
    pub controller: bool,
    /// Whether this node is a broker (serves clients, hosts partitions).
    pub broker: bool,
    /// Where to bind the quorum listener.
    pub quorum_bind: String,
    /// The listener names that belong to the controller, not to clients.
    pub controller_listeners: Vec<String>,
    /// Whether this is a one-node cluster that may format itself.
    pub standalone: bool,
}

/// Parses `id@host:port` entries.
fn parse_voters(entries: &[String]) -> anyhow::Result<BTreeMap<NodeId, String>> {
    let mut voters = BTreeMap::new();
    for entry in entries {
        let (id, address) = entry.split_once('@').ok_or_else(|| {
            anyhow::anyhow!("controller.quorum.voters: {entry:?} is not id@host:port")
        })?;
        let id: NodeId = id.trim().parse().map_err(|_| {
            anyhow::anyhow!("controller.quorum.voters: {entry:?} has no valid node id")
        })?;
        let address = address.trim();
        if address
            .rsplit_once(':')
            .is_none_or(|(_, port)| port.parse::<u16>().is_err())
        {
            anyhow::bail!("controller.quorum.voters: {entry:?} has no host:port");
        }
        if voters.insert(id, address.to_string()).is_some() {
            anyhow::bail!("controller.quorum.voters: node {id} is listed twice");
        }
    }
    Ok(voters)
}

impl ClusterPlan {
    /// Reads the roles and the quorum from `config`.
    pub fn from_config(config: &BrokerConfig) -> anyhow::Result<ClusterPlan> {
        let node_id = NodeId::try_from(config.node_id().0)
            .map_err(|_| anyhow::anyhow!("node.id must be 0 or more, not {}", config.node_id()))?;
        let roles = config.process_roles();
        let voters = parse_voters(&config.controller_quorum_voters())?;
        let controller_listeners = config.controller_listener_names();
        if voters.is_empty() {
            // No quorum configured: a combined node is a cluster by itself.
            if !(roles.broker && roles.controller) {
                anyhow::bail!(
                    "controller.quorum.voters is required unless process.roles is broker,controller (a single-node cluster)"
                );
            }
            return Ok(ClusterPlan {
                node_id,
                voters: BTreeMap::from([(node_id, String::new())]),
                controller: true,
                broker: true,
                quorum_bind: "127.0.0.1:0".into(),
                controller_listeners,
                standalone: true,
            });
        }
        let is_voter = voters.contains_key(&node_id);
        if roles.controller != is_voter {
            anyhow::bail!(
                "node {node_id} {} in controller.quorum.voters but process.roles {} controller",
                if is_voter { "is" } else { "is not" },
                if roles.controller {
                    "includes"
                } else {
                    "does not include"
                }
            );
        }
        let quorum_bind = if roles.controller {
            let name = controller_listeners.first().ok_or_else(|| {
                anyhow::anyhow!("controller.listener.names is required for a controller")
            })?;
            let listener = config
                .listeners()
                .into_iter()
                .find(|l| l.name.eq_ignore_ascii_case(name))
                .ok_or_else(|| {
                    anyhow::anyhow!(
                        "listeners has no listener named {name} (controller.listener.names)"
                    )
                })?;
            let host = if listener.host.is_empty() {
                "0.0.0.0".to_string()
            } else {
                listener.host
            };
            format!("{host}:{}", listener.port)
        } else {
            // A broker-only node receives the metadata log as a learner, on
            // a port of its own next to its client listener.
            let host = config
                .listeners()
                .into_iter()
                .find(|l| {
                    !controller_listeners
                        .iter()
                        .any(|c| l.name.eq_ignore_ascii_case(c))
                })
                .map(|l| l.host)
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| "0.0.0.0".into());
            format!("{host}:0")
        };
        Ok(ClusterPlan {
            node_id,
            voters,
            controller: roles.controller,
            broker: roles.broker,
            quorum_bind,
            controller_listeners,
            standalone: false,
        })
    }
}

/// Starts this node's quorum member: binds its listener and opens the
/// metadata log in `metadata.log.dir`.
pub(crate) async fn start_quorum(
    plan: &ClusterPlan,
    config: &BrokerConfig,
    cluster_id: &str,
    advertised_host: &str,
) -> anyhow::Result<Quorum> {
    let listener = TcpListener::bind(&plan.quorum_bind).await.map_err(|e| {
        anyhow::anyhow!("cannot bind the quorum listener {}: {e}", plan.quorum_bind)
    })?;
    let local = listener.local_addr()?;
    let mut voters = plan.voters.clone();
    let advertised_address = match voters.get(&plan.node_id) {
        Some(address) if !address.is_empty() => address.clone(),
        _ => format!("{advertised_host}:{}", local.port()),
    };
    if plan.standalone {
        voters.insert(plan.node_id, advertised_address.clone());
    }
    let quorum_config = QuorumConfig {
        node_id: plan.node_id,
        cluster_id: cluster_id.to_string(),
        dir: config.metadata_log_dir().join(METADATA_DIR),
        voters,
        advertised_address,
        controller: ControllerConfig {
            broker_session_timeout_ms: config.broker_session_timeout_ms(),
            num_partitions: config.num_partitions(),
            default_replication_factor: i16::try_from(config.default_replication_factor())
                .unwrap_or(i16::MAX),
            unclean_leader_election_enable: config.unclean_leader_election_enable(),
            auto_leader_rebalance_enable: config.auto_leader_rebalance_enable(),
            leader_imbalance_check_interval_seconds: config
                .leader_imbalance_check_interval_seconds(),
            leader_imbalance_per_broker_percentage: config.leader_imbalance_per_broker_percentage(),
        },
        // A lone voter has nobody to disagree with: it may elect itself
        // soon after a restart rather than wait a multi-node timeout.
        timing: if plan.standalone {
            Timing {
                heartbeat_ms: 50,
                election_timeout_ms: (150, 300),
                ..Timing::default()
            }
        } else {
            Timing::default()
        },
    };
    Quorum::start(quorum_config, listener).await
}

/// Applies every metadata image to the broker's topics and logs, in order,
/// until `stop` changes.
pub(crate) async fn run_reconciler(broker: Arc<Broker>, mut stop: watch::Receiver<bool>) {
    let mut images = broker.quorum.images();
    loop {
        let published = images.borrow_and_update().clone();
        let target = broker.clone();
        let applied = tokio::task::spawn_blocking(move || {
            target.apply_image(&published.image, published.applied)
        })
        .await;
        if let Err(e) = applied {
            tracing::error!(error = %e, "applying the metadata image failed");
        }
        tokio::select! {
            changed = images.changed() => if changed.is_err() { return },
            _ = stop.changed() => return,
        }
    }
}

/// What the lifecycle knows of this broker's registration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Registration {
    pub epoch: Option<BrokerEpoch>,
    pub fenced: bool,
    /// The controller has completed this broker's controlled shutdown.
    pub shut_down: bool,
    /// When the controller last answered a heartbeat.
    pub answered_at: Option<tokio::time::Instant>,
}

/// Registers the broker, heartbeats every `broker.heartbeat.interval.ms`,
/// registers again if the controller forgot it, and runs the controlled
/// shutdown once `stopping` turns true.
pub(crate) async fn run_lifecycle(
    broker: Arc<Broker>,
    quorum_address: String,
    mut stopping: watch::Receiver<bool>,
    state: watch::Sender<Registration>,
) {
    let incarnation_id = Uuid::new_v4();
    let me = BrokerId(broker.node_id);
    let endpoints = vec![Endpoint {
        name: broker.listener_name.clone(),
        host: broker.advertised_host.clone(),
        port: u16::try_from(broker.advertised_port).unwrap_or(0),
        security_protocol: broker
            .config
            .read()
            .listener_security_protocol(&broker.listener_name)
            .unwrap_or_else(|| "PLAINTEXT".into()),
    }];
    let rack = broker.config.read().broker_rack();
    let retry = Duration::from_millis(200);
    'register: loop {
        if *stopping.borrow() {
            return;
        }
        let request = ControllerRequest::RegisterBroker {
            request: BrokerRegistrationRequest {
                broker_id: me,
                incarnation_id,
                endpoints: endpoints.clone(),
                rack: rack.clone(),
            },
            quorum_address: quorum_address.clone(),
        };
        let epoch = match broker.quorum.submit(request, Duration::from_secs(10)).await {
            Ok((ControllerResponse::RegisterBroker(epoch), _)) => epoch,
            Ok((other, _)) => {
                tracing::error!(
                    ?other,
                    "the controller answered a registration with something else"
                );
                tokio::time::sleep(retry).await;
                continue;
            }
            Err(e) => {
                tracing::info!(error = %e, "broker registration not accepted yet; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        tracing::info!(
            broker = broker.node_id,
            epoch = epoch.0,
            "registered with the controller"
        );
        broker.set_broker_epoch(epoch);
        state.send_replace(Registration {
            epoch: Some(epoch),
            fenced: true,
            shut_down: false,
            answered_at: Some(tokio::time::Instant::now()),
        });
        let mut next_beat = Instant::now();
        let mut last_answer = Instant::now();
        loop {
            let interval = Duration::from_millis(
                u64::try_from(broker.config.read().broker_heartbeat_interval_ms())
                    .unwrap_or(2000)
                    .max(10),
            );
            let want_shut_down = *stopping.borrow();
            if !want_shut_down {
                tokio::select! {
                    _ = tokio::time::sleep_until(next_beat.into()) => {}
                    _ = stopping.changed() => {}
                }
            }
            let want_shut_down = *stopping.borrow();
            next_beat = Instant::now() + interval;
            let request = ControllerRequest::Heartbeat(HeartbeatRequest {
                broker_id: me,
                broker_epoch: epoch,
                want_fence: false,
                want_shut_down,
            });
            match broker
                .quorum
                .submit(request, interval.max(Duration::from_secs(2)))
                .await
            {
                Ok((ControllerResponse::Heartbeat(answer), index)) => {
                    last_answer = Instant::now();
                    set_self_fenced(&broker, false).await;
                    if want_shut_down || !answer.is_fenced {
                        // Leads what the controller gave it once the
                        // registry has caught up.
                        broker.wait_reconciled(index, Duration::from_secs(5)).await;
                    }
                    state.send_replace(Registration {
                        epoch: Some(epoch),
                        fenced: answer.is_fenced,
                        shut_down: answer.should_shut_down,
                        answered_at: Some(tokio::time::Instant::now()),
                    });
                    if answer.should_shut_down {
                        tracing::info!("controlled shutdown complete");
                        return;
                    }
                }
                Ok((other, _)) => tracing::error!(?other, "unexpected answer to a heartbeat"),
                Err(ControllerFailure::BrokerIdNotRegistered(_))
                | Err(ControllerFailure::StaleBrokerEpoch(_)) => {
                    tracing::warn!(
                        "the controller no longer knows this registration; registering again"
                    );
                    continue 'register;
                }
                Err(e) => {
                    tracing::debug!(error = %e, "heartbeat failed");
                    let session = Duration::from_millis(
                        u64::try_from(broker.config.read().broker_session_timeout_ms())
                            .unwrap_or(9000),
                    );
                    if last_answer.elapsed() >= session {
                        set_self_fenced(&broker, true).await;
                    }
                    if want_shut_down {
                        tokio::time::sleep(retry).await;
                    }
                }
            }
        }
    }
}

/// Runs [`Broker::set_self_fenced`] off the async runtime.
async fn set_self_fenced(broker: &Arc<Broker>, fenced: bool) {
    if broker.is_self_fenced() == fenced {
        return;
    }
    let broker = broker.clone();
    if let Err(e) = tokio::task::spawn_blocking(move || broker.set_self_fenced(fenced)).await {
        tracing::error!(error = %e, "changing self-fencing failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn voters_parse_and_bad_ones_are_refused() {
        let voters = parse_voters(&["1@127.0.0.1:9093".into(), "2@host-b:9093".into()])
            .expect("valid voters");
        assert_eq!(voters[&1], "127.0.0.1:9093");
        assert_eq!(voters[&2], "host-b:9093");
        for bad in ["x@h:1", "1-h:1", "1@h", "1@h:port"] {
            assert!(parse_voters(&[bad.into()]).is_err(), "{bad} accepted");
        }
        assert!(parse_voters(&["1@h:1".into(), "1@g:2".into()]).is_err());
    }
}
