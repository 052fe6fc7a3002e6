//! Group membership as the consumer sees it: a background task per member that
//! joins the group (classic JoinGroup/SyncGroup/Heartbeat, or the KIP-848
//! ConsumerGroupHeartbeat protocol), and tells the consumer which partitions to
//! start and stop fetching. The consumer answers every revocation once it has
//! stopped fetching the partitions (and committed them, with auto-commit), so
//! the member can acknowledge it to the coordinator and no partition is ever
//! fetched by two members at once.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot, watch};

use crate::cluster::Cluster;
use crate::error::Error;
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

/// What a member subscribes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubscribeTo {
    /// These topics.
    Topics(Vec<String>),
    /// Every topic whose whole name matches this regular expression (Java's
    /// `subscribe(Pattern)`); internal topics never match. A classic member
    /// matches it against the metadata itself, refreshed every
    /// `metadata.max.age.ms`, and rejoins when the matching topics change; a
    /// KIP-848 member hands it to the coordinator (`SubscribedTopicRegex`,
    /// RE2 syntax), which does the matching.
    Pattern(String),
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
    /// The identity to commit with; `None` while not in a generation. Classic:
    /// set once SyncGroup succeeds, cleared when a rebalance starts. KIP-848: the
    /// latest member epoch the coordinator answered (commits must carry it),
    /// cleared when fenced or leaving. Do not hold a borrow of it across an
    /// `.await`: the member cannot publish the next one meanwhile.
    pub generation: watch::Receiver<Option<Generation>>,
    /// Send `()` (or drop) to leave the group; the task revokes everything first
    /// (an `Revoke` event), sends LeaveGroup (or the KIP-848 leave heartbeat) and ends.
    pub leave: oneshot::Sender<()>,
    /// The task; it ends after leaving.
    pub task: tokio::task::JoinHandle<()>,
}

/// Starts a member of `config.group_id` subscribed to `topics`.
///
/// Give each member its own [`Cluster`] (as every consumer has its own
/// connections): a JoinGroup waits at the coordinator for the whole group, and
/// brokers answer one connection's requests in order.
///
/// ```no_run
/// # async fn example() -> runnel_client::Result<()> {
/// use std::time::Duration;
/// use runnel_client::consumer::member::{self, MemberConfig, MemberEvent};
/// use runnel_client::{ClientConfig, Cluster};
///
/// let cluster = Cluster::connect(ClientConfig::new("127.0.0.1:9092")).await?;
/// let mut member = member::spawn(cluster, MemberConfig::new("billing"), vec!["orders".into()]);
/// while let Some(event) = member.events.recv().await {
///     match event {
///         MemberEvent::Assign(partitions) => println!("fetch {partitions:?}"),
///         MemberEvent::Revoke { partitions, done, .. } => {
///             println!("stop fetching {partitions:?}");
///             let _ = done.send(());
///         }
///         MemberEvent::Fatal(error) => return Err(error),
///     }
/// }
/// # Ok(())
/// # }
/// ```
pub fn spawn(cluster: Arc<Cluster>, config: MemberConfig, topics: Vec<String>) -> MemberHandle {
    spawn_polled(cluster, config, SubscribeTo::Topics(topics), None)
}

/// [`spawn`] for any [`SubscribeTo`]. An invalid pattern ends the member
/// with a [`MemberEvent::Fatal`] event.
pub fn spawn_subscription(
    cluster: Arc<Cluster>,
    config: MemberConfig,
    subscription: SubscribeTo,
) -> MemberHandle {
    spawn_polled(cluster, config, subscription, None)
}

/// [`spawn`], with the application's polls watched: a member whose
/// application has not asked for records for `max.poll.interval.ms` (the
/// rebalance timeout) gives its partitions up as lost and leaves the group, as
/// the Java consumer does, and joins again at the next poll.
pub(crate) fn spawn_polled(
    cluster: Arc<Cluster>,
    config: MemberConfig,
    subscription: SubscribeTo,
    polls: Option<Arc<PollTimer>>,
) -> MemberHandle {
    let (events_tx, events) = mpsc::channel(16);
    let (generation_tx, generation) = watch::channel(None);
    let (leave, leave_rx) = oneshot::channel();
    let link = Link {
        events: events_tx.clone(),
        generation: generation_tx,
        callback_timeout: config.rebalance_timeout,
        polls,
    };
    let signal = LeaveSignal {
        requested: Some(leave_rx),
        events: events_tx,
    };
    let task = match config.protocol {
        GroupProtocol::Classic => tokio::spawn(super::classic::run(
            cluster,
            config,
            subscription,
            link,
            signal,
        )),
        GroupProtocol::Consumer => tokio::spawn(super::kip848::run(
            cluster,
            config,
            subscription,
            link,
            signal,
        )),
    };
    MemberHandle {
        events,
        generation,
        leave,
        task,
    }
}

impl MemberConfig {
    /// A member of `group_id` with the Java consumer's defaults: classic protocol,
    /// `session.timeout.ms` 45 s, `heartbeat.interval.ms` 3 s,
    /// `max.poll.interval.ms` 5 min, range assignor.
    ///
    /// ```
    /// use runnel_client::consumer::member::{GroupProtocol, MemberConfig};
    /// let config = MemberConfig::new("billing");
    /// assert_eq!(config.protocol, GroupProtocol::Classic);
    /// ```
    pub fn new(group_id: impl Into<String>) -> MemberConfig {
        MemberConfig {
            group_id: group_id.into(),
            group_instance_id: None,
            protocol: GroupProtocol::Classic,
            session_timeout: Duration::from_secs(45),
            heartbeat_interval: Duration::from_secs(3),
            rebalance_timeout: Duration::from_secs(300),
            strategy: AssignmentStrategy::Range,
            remote_assignor: None,
        }
    }
}

/// The member task's side of the handle: events out, generation published.
#[derive(Debug)]
pub(crate) struct Link {
    events: mpsc::Sender<MemberEvent>,
    generation: watch::Sender<Option<Generation>>,
    /// How long to wait for the consumer to answer a revocation before carrying
    /// on; by then the coordinator has given up on this member anyway.
    callback_timeout: Duration,
    /// The application's polls, when the member should watch them.
    polls: Option<Arc<PollTimer>>,
}

impl Link {
    /// Tells the consumer to start fetching `partitions` (nothing if empty).
    pub(crate) async fn assign(&self, partitions: Vec<TopicPartition>) {
        if !partitions.is_empty() {
            let _ = self.events.send(MemberEvent::Assign(partitions)).await;
        }
    }

    /// Tells the consumer to stop fetching `partitions` and waits until it has
    /// (or has gone away, or `max.poll.interval.ms` passed).
    pub(crate) async fn revoke(&self, partitions: Vec<TopicPartition>, lost: bool) {
        if partitions.is_empty() {
            return;
        }
        let done = self.revoke_started(partitions, lost).await;
        self.revoke_finished(done).await;
    }

    /// Sends the revocation without waiting for it; see [`Link::revoke_finished`].
    pub(crate) async fn revoke_started(
        &self,
        partitions: Vec<TopicPartition>,
        lost: bool,
    ) -> oneshot::Receiver<()> {
        let (done, answered) = oneshot::channel();
        let _ = self
            .events
            .send(MemberEvent::Revoke {
                partitions,
                lost,
                done,
            })
            .await;
        answered
    }

    /// Waits for the consumer's answer to a revocation (cancel-safe).
    pub(crate) async fn revoke_finished(&self, answered: oneshot::Receiver<()>) {
        if tokio::time::timeout(self.callback_timeout, answered)
            .await
            .is_err()
        {
            tracing::warn!(
                timeout = ?self.callback_timeout,
                "the consumer did not answer a revocation in time; carrying on"
            );
        }
    }

    /// How long a revocation may take (`max.poll.interval.ms`).
    pub(crate) fn callback_timeout(&self) -> Duration {
        self.callback_timeout
    }

    /// Whether the application has gone `max.poll.interval.ms` without asking
    /// for records (never when polls are not watched).
    pub(crate) fn poll_expired(&self) -> bool {
        self.polls
            .as_ref()
            .is_some_and(|polls| polls.expired(self.callback_timeout))
    }

    /// Logs that the member leaves `group` because the application stopped
    /// polling.
    pub(crate) fn warn_poll_expired(&self, group: &str) {
        tracing::warn!(
            group,
            timeout = ?self.callback_timeout,
            "no poll within max.poll.interval.ms; leaving the group until the next poll"
        );
    }

    /// After [`Link::poll_expired`]: waits until the application asks for
    /// records again.
    pub(crate) async fn poll_resumed(&self) {
        while self.poll_expired() {
            tokio::time::sleep(POLL_RESUME_CHECK).await;
        }
    }

    /// Reports an error the member cannot get past; the task ends after it.
    pub(crate) async fn fatal(&self, error: Error) {
        tracing::error!(%error, "group membership failed");
        let _ = self.events.send(MemberEvent::Fatal(error)).await;
    }

    /// Publishes the identity commits must carry (`None` while not in a generation).
    pub(crate) fn set_generation(&self, generation: Option<Generation>) {
        self.generation.send_if_modified(|current| {
            let changed = *current != generation;
            *current = generation;
            changed
        });
    }
}

/// How often a member that left for a poll timeout looks for the next poll.
const POLL_RESUME_CHECK: Duration = Duration::from_millis(50);

/// When the application last asked for records, for `max.poll.interval.ms`.
/// A call that is waiting for records counts as polling for as long as it
/// waits, so an idle topic never looks like a stuck application.
#[derive(Debug)]
pub(crate) struct PollTimer {
    origin: Instant,
    /// Milliseconds from `origin` to the last start or end of a poll.
    last: AtomicU64,
    /// Polls in progress.
    active: AtomicUsize,
}

impl PollTimer {
    pub(crate) fn new() -> PollTimer {
        PollTimer {
            origin: Instant::now(),
            last: AtomicU64::new(0),
            active: AtomicUsize::new(0),
        }
    }

    /// Counts as a poll now (a new subscription starts the clock).
    pub(crate) fn touch(&self) {
        let now = self.origin.elapsed().as_millis() as u64;
        self.last.fetch_max(now, Ordering::Relaxed);
    }

    /// Marks a poll in progress until the guard is dropped.
    pub(crate) fn polling(&self) -> PollGuard<'_> {
        self.active.fetch_add(1, Ordering::AcqRel);
        self.touch();
        PollGuard { timer: self }
    }

    /// No poll in progress, and none for longer than `limit`.
    pub(crate) fn expired(&self, limit: Duration) -> bool {
        if self.active.load(Ordering::Acquire) > 0 {
            return false;
        }
        let idle = (self.origin.elapsed().as_millis() as u64)
            .saturating_sub(self.last.load(Ordering::Relaxed));
        idle > limit.as_millis() as u64
    }
}

/// A poll in progress; see [`PollTimer::polling`].
#[derive(Debug)]
pub(crate) struct PollGuard<'a> {
    timer: &'a PollTimer,
}

impl Drop for PollGuard<'_> {
    fn drop(&mut self) {
        self.timer.touch();
        self.timer.active.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Resolves once the consumer asks to leave: `leave` sent or dropped, or the
/// events receiver dropped.
#[derive(Debug)]
pub(crate) struct LeaveSignal {
    requested: Option<oneshot::Receiver<()>>,
    events: mpsc::Sender<MemberEvent>,
}

impl LeaveSignal {
    /// Waits for the request (cancel-safe; returns at once after the first time).
    pub(crate) async fn requested(&mut self) {
        if let Some(rx) = self.requested.as_mut() {
            tokio::select! {
                _ = rx => {}
                _ = self.events.closed() => {}
            }
            self.requested = None;
        }
    }

    /// Whether leaving has been asked for, without waiting.
    pub(crate) fn is_requested(&mut self) -> bool {
        let asked = match self.requested.as_mut() {
            None => true,
            Some(rx) => {
                !matches!(rx.try_recv(), Err(oneshot::error::TryRecvError::Empty))
                    || self.events.is_closed()
            }
        };
        if asked {
            self.requested = None;
        }
        asked
    }
}

/// Maps an error of a coordinator call to what to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Recovery {
    /// The coordinator moved or its connection broke: look it up again, then retry.
    FindCoordinator,
    /// Wait `retry.backoff.ms` and retry.
    Backoff,
    /// Nothing will make this work.
    Fatal,
}

/// How to recover from `error` returned by a call to the group coordinator.
pub(crate) fn recovery(error: &Error) -> Recovery {
    use kafka_protocol::error::ResponseError as E;
    match error {
        Error::Connection { .. } | Error::Timeout(_) | Error::NoBrokerReachable { .. } => {
            Recovery::FindCoordinator
        }
        Error::Broker {
            error: E::NotCoordinator | E::CoordinatorNotAvailable,
            ..
        } => Recovery::FindCoordinator,
        e if e.is_retriable() => Recovery::Backoff,
        _ => Recovery::Fatal,
    }
}

#[cfg(test)]
mod poll_timer_tests {
    use super::*;

    #[test]
    fn a_poll_in_progress_never_expires_and_an_idle_one_does() {
        let timer = PollTimer::new();
        let limit = Duration::from_millis(20);
        assert!(!timer.expired(limit), "fresh");
        {
            let _polling = timer.polling();
            std::thread::sleep(Duration::from_millis(40));
            assert!(!timer.expired(limit), "waiting for records is polling");
        }
        assert!(!timer.expired(limit), "the poll just ended");
        std::thread::sleep(Duration::from_millis(40));
        assert!(timer.expired(limit));
        timer.touch();
        assert!(!timer.expired(limit));
    }
}
