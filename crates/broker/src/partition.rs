//! One partition replica hosted by this broker: its log, its part in
//! replication (leader bookkeeping or follower), its high watermark, and
//! the group commit that makes appends durable before they are
//! acknowledged when the topic asks for it (`flush.messages`).

use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use runnel_metadata::PartitionEpoch;
use runnel_model::{BrokerId, LeaderEpoch, Offset, Timestamp, TopicPartition};
use runnel_storage::{AppendOutcome, Log, LogError};
use tokio::sync::watch;
use uuid::Uuid;

use crate::replication::leader_state::{IsrChange, LeaderState, Millis};

/// What this replica does in the partition's replication.
#[derive(Debug)]
enum Role {
    /// Neither leads nor follows (no leader, or not yet assigned).
    Idle,
    Leader(Box<LeaderState>),
    /// Fetches from `leader`.
    Follower {
        leader: BrokerId,
    },
}

/// How an `acks=all` wait ended badly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReplicationWait {
    /// The ISR did not reach the offset within the request's timeout.
    TimedOut,
    /// This node lost the leadership (or its epoch moved on) meanwhile: the
    /// append may be truncated by the next leader.
    NotLeader,
}

/// A partition replica this node hosts. Whether it leads, and in which
/// leader epoch, follows the metadata image.
#[derive(Debug)]
pub(crate) struct Partition {
    pub tp: TopicPartition,
    pub topic_id: Uuid,
    pub log: Arc<Mutex<Log>>,
    /// Held while an fsync of this log runs. Appends that arrive meanwhile
    /// queue here and are covered together by the next fsync: one fsync per
    /// group of writers rather than one per batch.
    sync: tokio::sync::Mutex<()>,
    leader: AtomicBool,
    leader_epoch: AtomicI32,
    role: Mutex<Role>,
    /// Offsets below it are on every in-sync replica: what consumers may
    /// read. On a follower, the leader's as last fetched (capped at the
    /// local log end).
    high_watermark: watch::Sender<i64>,
}

impl Partition {
    /// A replica whose high watermark starts at `high_watermark` (from the
    /// checkpoint), kept within the log's bounds, or at the log start.
    pub fn new(
        tp: TopicPartition,
        topic_id: Uuid,
        log: Arc<Mutex<Log>>,
        high_watermark: Option<i64>,
    ) -> Partition {
        let start = {
            let log = log.lock();
            let (first, end) = (log.log_start_offset().0, log.log_end_offset().0);
            high_watermark.unwrap_or(first).clamp(first, end)
        };
        Partition {
            tp,
            topic_id,
            log,
            sync: tokio::sync::Mutex::new(()),
            leader: AtomicBool::new(false),
            leader_epoch: AtomicI32::new(0),
            role: Mutex::new(Role::Idle),
            high_watermark: watch::Sender::new(start),
        }
    }

    /// Whether this node leads the partition: only a leader takes writes
    /// and serves reads.
    pub fn is_leader(&self) -> bool {
        self.leader.load(Ordering::Acquire)
    }

    /// The leader epoch the metadata gave the partition.
    pub fn leader_epoch(&self) -> i32 {
        self.leader_epoch.load(Ordering::Acquire)
    }

    /// The high watermark (see the field).
    pub fn high_watermark(&self) -> i64 {
        *self.high_watermark.borrow()
    }

    /// Checks the leader epoch a client believes current (-1: none):
    /// FENCED_LEADER_EPOCH if it is older than ours, UNKNOWN_LEADER_EPOCH if
    /// it is newer (our metadata is behind), as Kafka (KIP-320) does.
    pub fn check_leader_epoch(&self, requested: i32) -> Result<(), kafka_protocol::ResponseError> {
        let current = self.leader_epoch();
        match requested {
            e if e < 0 || e == current => Ok(()),
            e if e < current => Err(kafka_protocol::ResponseError::FencedLeaderEpoch),
            _ => Err(kafka_protocol::ResponseError::UnknownLeaderEpoch),
        }
    }

    /// Stops leading and following (the partition has no leader, the topic
    /// is going, or this broker fenced itself).
    pub fn set_idle(&self, epoch: LeaderEpoch) {
        let mut role = self.role.lock();
        {
            let _log = self.log.lock();
            self.leader_epoch.store(epoch.0, Ordering::Release);
            self.leader.store(false, Ordering::Release);
        }
        *role = Role::Idle;
        drop(role);
        self.wake_waiters();
    }

    /// Follows the metadata image: this node leads in `epoch` with these
    /// replicas and ISR. A new leadership records its epoch in the log's
    /// epoch cache at the log end and starts with no news of its followers;
    /// the same leadership only takes the new assignment. Returns true for a
    /// new leadership.
    #[allow(clippy::too_many_arguments)]
    pub fn become_leader(
        &self,
        me: BrokerId,
        epoch: LeaderEpoch,
        replicas: Vec<BrokerId>,
        isr: Vec<BrokerId>,
        partition_epoch: PartitionEpoch,
        lag_time_max_ms: Millis,
        now: Millis,
    ) -> bool {
        let mut role = self.role.lock();
        if let Role::Leader(state) = &mut *role {
            if self.leader_epoch() == epoch.0 && self.is_leader() {
                state.update_assignment(replicas, isr, partition_epoch, now);
                let end = self.log.lock().log_end_offset().0;
                if state.advance_high_watermark(end) {
                    self.high_watermark.send_replace(state.high_watermark());
                }
                return false;
            }
        }
        // The flags change under the log lock, so a follower fetch racing
        // with this sees either the old role (and appends first) or the new
        // one (and drops its result).
        let end = {
            let mut log = self.log.lock();
            let end = log.log_end_offset();
            if let Err(e) = log.assign_epoch(epoch, end) {
                tracing::error!(partition = %self.tp, error = %e, "cannot record the leader epoch");
            }
            self.leader_epoch.store(epoch.0, Ordering::Release);
            self.leader.store(true, Ordering::Release);
            log.log_end_offset().0
        };
        let start = self.high_watermark().min(end);
        let mut state = LeaderState::new(
            me,
            replicas,
            isr,
            partition_epoch,
            start,
            end,
            lag_time_max_ms,
            now,
        );
        state.advance_high_watermark(end);
        self.high_watermark.send_replace(state.high_watermark());
        *role = Role::Leader(Box::new(state));
        true
    }

    /// Follows the metadata image: `leader` leads in `epoch` and this
    /// replica fetches from it. Returns true if the leader or the epoch
    /// changed (the fetcher must then check for a divergent suffix).
    pub fn become_follower(&self, leader: BrokerId, epoch: LeaderEpoch) -> bool {
        let mut role = self.role.lock();
        let same = matches!(&*role, Role::Follower { leader: l } if *l == leader)
            && self.leader_epoch() == epoch.0;
        {
            let _log = self.log.lock();
            self.leader.store(false, Ordering::Release);
            self.leader_epoch.store(epoch.0, Ordering::Release);
        }
        *role = Role::Follower { leader };
        drop(role);
        if !same {
            self.wake_waiters();
        }
        !same
    }

    /// Wakes `acks=all` waiters so they see a leadership change.
    fn wake_waiters(&self) {
        self.high_watermark.send_modify(|_| {});
    }

    /// The number of in-sync replicas (1 when this replica does not lead:
    /// only the leader's count matters).
    pub fn in_sync_replicas(&self) -> usize {
        match &*self.role.lock() {
            Role::Leader(state) => state.isr().len(),
            _ => 1,
        }
    }

    /// Appends a produced (or coordinator-written) batch as the leader: its
    /// batches are stamped with the leader epoch, and the high watermark
    /// moves when the ISR is this replica alone.
    pub fn append_as_leader(
        &self,
        records: &mut [u8],
        now: Timestamp,
    ) -> Result<AppendOutcome, LogError> {
        let epoch = LeaderEpoch(self.leader_epoch());
        let (outcome, end) = {
            let mut log = self.log.lock();
            let outcome = log.append_as_leader(records, now, epoch)?;
            (outcome, log.log_end_offset().0)
        };
        self.leader_log_end_moved(end);
        Ok(outcome)
    }

    /// Recomputes the high watermark after the leader's log end moved.
    fn leader_log_end_moved(&self, end: i64) {
        if let Role::Leader(state) = &mut *self.role.lock() {
            if state.advance_high_watermark(end) {
                self.high_watermark.send_replace(state.high_watermark());
            }
        }
    }

    /// A follower fetched from `fetch_offset`: its progress is recorded,
    /// the high watermark may move (true if it did), and an ISR expansion
    /// may be due.
    pub fn on_follower_fetch(
        &self,
        now: Millis,
        follower: BrokerId,
        fetch_offset: i64,
    ) -> (bool, Option<IsrChange>) {
        let mut role = self.role.lock();
        let Role::Leader(state) = &mut *role else {
            return (false, None);
        };
        let end = self.log.lock().log_end_offset().0;
        let (advanced, change) = state.on_follower_fetch(now, follower, fetch_offset, end);
        if advanced {
            self.high_watermark.send_replace(state.high_watermark());
        }
        (advanced, change)
    }

    /// The ISR shrink due at `now`, if this replica leads and a follower
    /// lags.
    pub fn check_lagging(&self, now: Millis) -> Option<IsrChange> {
        match &mut *self.role.lock() {
            Role::Leader(state) => state.check_lagging(now),
            _ => None,
        }
    }

    /// The controller refused or lost an ISR change; it may be asked again.
    pub fn abandon_isr_change(&self) {
        if let Role::Leader(state) = &mut *self.role.lock() {
            state.abandon_pending();
        }
    }

    /// On a follower: the leader's high watermark as fetched.
    pub fn set_follower_high_watermark(&self, leader_high_watermark: i64) {
        let end = self.log.lock().log_end_offset().0;
        let hw = leader_high_watermark.min(end);
        if hw != self.high_watermark() {
            self.high_watermark.send_replace(hw);
        }
    }

    /// On a follower after a truncation: the watermark cannot be past the
    /// log end.
    pub fn clamp_high_watermark(&self) {
        let end = self.log.lock().log_end_offset().0;
        if self.high_watermark() > end {
            self.high_watermark.send_replace(end);
        }
    }

    /// Waits until the high watermark passes `offset` — every in-sync
    /// replica has it — while this node still leads in `epoch`.
    pub async fn wait_replicated(
        &self,
        offset: Offset,
        epoch: LeaderEpoch,
        timeout: Duration,
    ) -> Result<(), ReplicationWait> {
        let mut hw = self.high_watermark.subscribe();
        let wait =
            hw.wait_for(|&hw| hw > offset.0 || !self.is_leader() || self.leader_epoch() != epoch.0);
        let reached = match tokio::time::timeout(timeout, wait).await {
            Err(_) => return Err(ReplicationWait::TimedOut),
            Ok(reached) => reached.is_ok(),
        };
        if reached && self.is_leader() && self.leader_epoch() == epoch.0 {
            Ok(())
        } else {
            Err(ReplicationWait::NotLeader)
        }
    }

    /// Whether the log has reached its `flush.messages` bound and must be
    /// fsynced before the append that reached it is acknowledged.
    pub fn flush_due(&self) -> bool {
        let log = self.log.lock();
        log.unflushed_messages() >= log.config().flush_messages.max(1)
    }

    /// Makes the log durable at least through `offset`, fsyncing outside the
    /// log lock on a blocking thread. A failed fsync takes the log offline:
    /// data that may not be on disk is never reported as written.
    ///
    /// Example: writers A, B and C append offsets 10, 11 and 12 while an
    /// fsync covering offset 9 runs. When it ends A takes the sync lock and
    /// fsyncs through 12; B and C then find nothing left to flush and return
    /// at once.
    pub async fn sync_through(&self, offset: Offset) -> Result<(), String> {
        let _turn = self.sync.lock().await;
        let task = {
            let log = self.log.lock();
            if log.is_offline() {
                return Err(format!("{} is offline", self.tp));
            }
            match log.flush_task() {
                // Nothing unflushed: an earlier group's fsync covered us.
                None => return Ok(()),
                Some(task) => task,
            }
        };
        debug_assert!(
            task.up_to() > offset,
            "a flush task covers every append made"
        );
        let outcome = tokio::task::spawn_blocking(move || task.run().map(|()| task)).await;
        let mut log = self.log.lock();
        match outcome {
            Ok(Ok(task)) => {
                log.mark_flushed(&task);
                Ok(())
            }
            Ok(Err(e)) => {
                let reason = format!("fsync failed: {e}");
                tracing::error!(partition = %self.tp, %reason, "taking log offline");
                log.mark_offline(reason.clone());
                Err(reason)
            }
            Err(e) => Err(format!("fsync task failed: {e}")),
        }
    }
}
