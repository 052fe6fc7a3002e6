//! One partition replica hosted by this broker: its log and the signal that
//! wakes fetches waiting for new data.

use std::sync::Arc;

use parking_lot::Mutex;
use runnel_model::TopicPartition;
use runnel_storage::Log;

/// A partition this node leads. On a single node it is always the leader and
/// its in-sync replica set is itself, so the high watermark is the log end.
#[derive(Debug)]
pub(crate) struct Partition {
    pub tp: TopicPartition,
    pub log: Arc<Mutex<Log>>,
}

impl Partition {
    pub fn new(tp: TopicPartition, log: Arc<Mutex<Log>>) -> Partition {
        Partition { tp, log }
    }
}
