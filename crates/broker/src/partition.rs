//! One partition replica hosted by this broker: its log, and the group
//! commit that makes appends durable before they are acknowledged when the
//! topic asks for it (`flush.messages`).

use std::sync::Arc;

use parking_lot::Mutex;
use runnel_model::{Offset, TopicPartition};
use runnel_storage::Log;

/// A partition this node leads. On a single node it is always the leader and
/// its in-sync replica set is itself, so the high watermark is the log end.
#[derive(Debug)]
pub(crate) struct Partition {
    pub tp: TopicPartition,
    pub log: Arc<Mutex<Log>>,
    /// Held while an fsync of this log runs. Appends that arrive meanwhile
    /// queue here and are covered together by the next fsync: one fsync per
    /// group of writers rather than one per batch.
    sync: tokio::sync::Mutex<()>,
}

impl Partition {
    pub fn new(tp: TopicPartition, log: Arc<Mutex<Log>>) -> Partition {
        Partition {
            tp,
            log,
            sync: tokio::sync::Mutex::new(()),
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
