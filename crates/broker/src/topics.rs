//! The topics as this node sees them: every topic of the metadata image,
//! with the partition replicas this node hosts.
//!
//! The metadata of record is the metadata log (`runnel-quorum`); this
//! registry is derived from its image by [`crate::Broker::apply_image`] and
//! is never persisted itself. Handlers look topics up here so that the hot
//! path takes no more than a read lock.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use kafka_protocol::ResponseError;
use parking_lot::RwLock;
use runnel_model::TopicName;
use uuid::Uuid;

use crate::partition::Partition;

/// One topic as handlers see it; replaced whole on every change.
#[derive(Debug)]
pub(crate) struct Topic {
    pub name: TopicName,
    pub id: Uuid,
    /// Partitions `0..n`: `Some` where this node hosts a replica.
    pub partitions: Vec<Option<Arc<Partition>>>,
    /// Topic-level config overrides (`retention.ms`, …), already validated.
    pub configs: BTreeMap<String, String>,
}

impl Topic {
    /// The hosted replica of partition `index`, if any.
    pub fn partition(&self, index: i32) -> Option<&Arc<Partition>> {
        usize::try_from(index)
            .ok()
            .and_then(|i| self.partitions.get(i))
            .and_then(Option::as_ref)
    }

    /// The number of partitions (hosted here or not).
    pub fn partition_count(&self) -> i32 {
        i32::try_from(self.partitions.len()).unwrap_or(i32::MAX)
    }

    /// The hosted replicas, with their indexes.
    pub fn hosted(&self) -> impl Iterator<Item = (i32, &Arc<Partition>)> {
        (0..)
            .zip(self.partitions.iter())
            .filter_map(|(i, p)| p.as_ref().map(|p| (i, p)))
    }

    /// Partition `index` if this node leads it: UNKNOWN_TOPIC_OR_PARTITION
    /// for an index the topic does not have, NOT_LEADER_OR_FOLLOWER for one
    /// another node leads (so the client refreshes its metadata).
    pub fn led(&self, index: i32) -> Result<&Arc<Partition>, ResponseError> {
        if !(0..self.partition_count()).contains(&index) {
            return Err(ResponseError::UnknownTopicOrPartition);
        }
        match self.partition(index) {
            Some(p) if p.is_leader() => Ok(p),
            _ => Err(ResponseError::NotLeaderOrFollower),
        }
    }
}

/// The registry of topics.
#[derive(Debug, Default)]
pub(crate) struct Topics {
    inner: RwLock<Inner>,
    /// Serialises changes (applying an image).
    write_lock: parking_lot::Mutex<()>,
}

#[derive(Debug, Default)]
struct Inner {
    by_name: HashMap<TopicName, Arc<Topic>>,
    by_id: HashMap<Uuid, Arc<Topic>>,
}

impl Topics {
    pub fn get(&self, name: &str) -> Option<Arc<Topic>> {
        let name = TopicName::new(name).ok()?;
        self.inner.read().by_name.get(&name).cloned()
    }

    pub fn get_by_id(&self, id: &Uuid) -> Option<Arc<Topic>> {
        self.inner.read().by_id.get(id).cloned()
    }

    pub fn all(&self) -> Vec<Arc<Topic>> {
        let mut topics: Vec<_> = self.inner.read().by_name.values().cloned().collect();
        topics.sort_by(|a, b| a.name.cmp(&b.name));
        topics
    }

    /// Takes the lock that serialises registry changes.
    pub fn lock_changes(&self) -> parking_lot::MutexGuard<'_, ()> {
        self.write_lock.lock()
    }

    /// Installs (or replaces) `topic`. Call with the change lock held.
    pub fn put(&self, topic: Topic) -> Arc<Topic> {
        let topic = Arc::new(topic);
        let mut inner = self.inner.write();
        if let Some(old) = inner.by_name.insert(topic.name.clone(), topic.clone()) {
            if old.id != topic.id {
                inner.by_id.remove(&old.id);
            }
        }
        inner.by_id.insert(topic.id, topic.clone());
        topic
    }

    /// Removes a topic by id. Call with the change lock held.
    pub fn remove(&self, id: &Uuid) -> Option<Arc<Topic>> {
        let mut inner = self.inner.write();
        let removed = inner.by_id.remove(id)?;
        if inner
            .by_name
            .get(&removed.name)
            .is_some_and(|t| t.id == *id)
        {
            inner.by_name.remove(&removed.name);
        }
        Some(removed)
    }
}
