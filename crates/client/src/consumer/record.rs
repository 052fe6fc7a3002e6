//! What the consumer hands out: records, and rebalance notifications.

use std::sync::Arc;

use bytes::Bytes;

use crate::types::{Header, TopicPartition};

/// Who set a record's timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampType {
    /// The producer (`message.timestamp.type=CreateTime`).
    CreateTime,
    /// The broker, when it appended the record (`LogAppendTime`).
    LogAppendTime,
}

/// One record read from a partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerRecord {
    /// Topic name (shared between the records of a partition).
    pub topic: Arc<str>,
    /// Partition index.
    pub partition: i32,
    /// Offset in the partition.
    pub offset: i64,
    /// Milliseconds since the epoch.
    pub timestamp: i64,
    /// Who set `timestamp`.
    pub timestamp_type: TimestampType,
    /// Key; `None` for a null key.
    pub key: Option<Bytes>,
    /// Value; `None` for a tombstone.
    pub value: Option<Bytes>,
    /// Headers in order.
    pub headers: Vec<Header>,
    /// The leader epoch of the batch, when the broker set one.
    pub leader_epoch: Option<i32>,
}

impl ConsumerRecord {
    /// The record's topic and partition.
    pub fn topic_partition(&self) -> TopicPartition {
        TopicPartition::new(&*self.topic, self.partition)
    }
}

/// Told about partitions coming and going when the consumer is subscribed to a group.
///
/// The methods run on the consumer's rebalance task, in order, before the group
/// member acknowledges the change to the coordinator; keep them short (hand work to
/// another task if it is slow). With `enable.auto.commit`, the revoked partitions'
/// positions are committed before `on_revoked` runs.
///
/// ```
/// use runnel_client::consumer::RebalanceListener;
/// use runnel_client::TopicPartition;
///
/// #[derive(Debug)]
/// struct Log;
/// impl RebalanceListener for Log {
///     fn on_assigned(&self, partitions: &[TopicPartition]) {
///         println!("now reading {partitions:?}");
///     }
/// }
/// ```
pub trait RebalanceListener: Send + Sync + std::fmt::Debug {
    /// Partitions newly assigned to this consumer; fetching starts after this returns.
    fn on_assigned(&self, partitions: &[TopicPartition]) {
        let _ = partitions;
    }

    /// Partitions given up in a rebalance; fetching has stopped and their buffered
    /// records are dropped.
    fn on_revoked(&self, partitions: &[TopicPartition]) {
        let _ = partitions;
    }

    /// Partitions lost without a rebalance (session expiry, fencing): another member
    /// may own them already, so nothing was committed. Defaults to `on_revoked`.
    fn on_lost(&self, partitions: &[TopicPartition]) {
        self.on_revoked(partitions);
    }
}

/// The listener used when none is given.
#[derive(Debug)]
pub(crate) struct NoListener;

impl RebalanceListener for NoListener {}
