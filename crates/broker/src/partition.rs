//! One partition replica hosted by this broker: its log, and the group
//! commit that makes appends durable before they are acknowledged when the
//! topic asks for it (`flush.messages`).

use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use runnel_model::{LeaderEpoch, Offset, TopicPartition};
use runnel_storage::Log;

/// A partition replica this node hosts. Whether it leads, and in which
/// leader epoch, follows the metadata image. Until replication exists a
/// partition has one replica, so its high watermark is the log end.
#[derive(Debug)]
pub(crate) struct Partition {
    pub tp: TopicPartition,
    pub log: Arc<Mutex<Log>>,
    /// Held while an fsync of this log runs. Appends that arrive meanwhile
    /// queue here and are covered together by the next fsync: one fsync per
    /// group of writers rather than one per batch.
    sync: tokio::sync::Mutex<()>,
    leader: AtomicBool,
    leader_epoch: AtomicI32,
}

impl Partition {
    pub fn new(tp: TopicPartition, log: Arc<Mutex<Log>>) -> Partition {
        Partition {
            tp,
            log,
            sync: tokio::sync::Mutex::new(()),
            leader: AtomicBool::new(false),
            leader_epoch: AtomicI32::new(0),
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

    /// Follows the metadata image: this node leads in `epoch`, or not.
    pub fn set_leadership(&self, leader: bool, epoch: LeaderEpoch) {
        self.leader_epoch.store(epoch.0, Ordering::Release);
        self.leader.store(leader, Ordering::Release);
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
        let outcome = tokio::task::spawn_blocking(move || task.run().map(|()| task.up_to())).await;
        let mut log = self.log.lock();
        match outcome {
            Ok(Ok(up_to)) => {
                log.mark_flushed(up_to);
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
