//! Group membership as the consumer sees it: a background task per member that
//! joins the group (classic JoinGroup/SyncGroup/Heartbeat, or the KIP-848
//! ConsumerGroupHeartbeat protocol), and tells the consumer which partitions to
//! start and stop fetching. The consumer answers every revocation once it has
//! stopped fetching the partitions (and committed them, with auto-commit), so
//! the member can acknowledge it to the coordinator and no partition is ever
//! fetched by two members at once.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};

use crate::cluster::Cluster;
use crate::error::{Error, Result};
use crate::types::TopicPartition;

/// Which group protocol to speak (`group.protocol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GroupProtocol {
    /// JoinGroup/SyncGroup/Heartbeat with a client-side assignor.
    #[default]
    Classic,
    /// KIP-848: ConsumerGroupHeartbeat with the broker's assignor.
    Consumer,
}

/// Client-side assignors for the classic protocol (`partition.assignment.strategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AssignmentStrategy {
    /// Kafka's "range": per topic, consecutive partitions to members in order.
    #[default]
    Range,
    /// Kafka's "roundrobin" over all subscribed partitions.
    RoundRobin,
    /// Kafka's "cooperative-sticky" (KIP-429 incremental rebalancing).
    CooperativeSticky,
}

/// Settings of one group member.
#[derive(Debug, Clone)]
pub struct MemberConfig {
    /// `group.id`.
    pub group_id: String,
    /// `group.instance.id` (static membership, KIP-345).
    pub group_instance_id: Option<String>,
    /// `group.protocol`.
    pub protocol: GroupProtocol,
    /// `session.timeout.ms` (classic only; KIP-848 groups take the broker's).
    pub session_timeout: Duration,
    /// `heartbeat.interval.ms` (classic only; KIP-848 groups take the broker's).
    pub heartbeat_interval: Duration,
    /// `max.poll.interval.ms`: the rebalance timeout.
    pub rebalance_timeout: Duration,
    /// `partition.assignment.strategy` (classic only).
    pub strategy: AssignmentStrategy,
    /// `group.remote.assignor` (KIP-848 only): "uniform", "range" or none for the broker's default.
    pub remote_assignor: Option<String>,
}

/// The member's current identity, for commits that must carry it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generation {
    /// Member id given by the coordinator (classic) or chosen by the client (KIP-848 v1).
    pub member_id: String,
    /// Classic: the generation id. KIP-848: the member epoch.
    pub generation_id: i32,
}

/// What the member asks of the consumer.
#[derive(Debug)]
pub enum MemberEvent {
    /// Start fetching these partitions, in addition to those already assigned.
    Assign(Vec<TopicPartition>),
    /// Stop fetching these partitions; with `lost` they are already someone else's
    /// (the session expired or the member was fenced) and must not be committed.
    /// Send on `done` once fetching has stopped (and, unless lost, offsets are committed).
    Revoke {
        /// The partitions.
        partitions: Vec<TopicPartition>,
        /// Whether they were lost rather than given up.
        lost: bool,
        /// Answer when done.
        done: oneshot::Sender<()>,
    },
    /// The member cannot continue (e.g. an unknown group protocol, authorization).
    Fatal(Error),
}

/// The consumer's handle on its member task.
#[derive(Debug)]
pub struct MemberHandle {
    /// Events in order.
    pub events: mpsc::Receiver<MemberEvent>,
    /// The identity to commit with; `None` while not in a generation.
    pub generation: watch::Receiver<Option<Generation>>,
    /// Send `()` (or drop) to leave the group; the task revokes everything first
    /// (an `Revoke` event), sends LeaveGroup (or the KIP-848 leave heartbeat) and ends.
    pub leave: oneshot::Sender<()>,
    /// The task; it ends after leaving.
    pub task: tokio::task::JoinHandle<()>,
}

/// Starts a member of `config.group_id` subscribed to `topics`.
pub fn spawn(cluster: Arc<Cluster>, config: MemberConfig, topics: Vec<String>) -> MemberHandle {
    let _ = (cluster, topics);
    let (events_tx, events) = mpsc::channel(16);
    let (_generation_tx, generation) = watch::channel(None);
    let (leave, _leave_rx) = oneshot::channel();
    let task = tokio::spawn(async move {
        let _ = events_tx
            .send(MemberEvent::Fatal(Error::Config(format!(
                "group membership ({:?}) is not implemented yet",
                config.protocol
            ))))
            .await;
    });
    MemberHandle {
        events,
        generation,
        leave,
        task,
    }
}

/// Placeholder so `Result` is used until the member is written.
#[allow(dead_code)]
fn _unused() -> Result<()> {
    Ok(())
}
