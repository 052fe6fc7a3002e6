//! The topics this node hosts: names, ids, partition counts and config
//! overrides, persisted in `topics.json` in the data directory.
//!
//! On a single node this file is the metadata of record. It is rewritten
//! atomically (temp file, fsync, rename, fsync of the directory) before a
//! change becomes visible, so a crash leaves either the old or the new
//! version. A partition directory found on disk with no entry here (the file
//! was lost or the crash came between the two steps) is adopted with default
//! configs rather than deleted: the data is worth more than the bookkeeping.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::RwLock;
use runnel_model::TopicName;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::partition::Partition;

/// One topic as handlers see it; replaced whole on every change.
#[derive(Debug)]
pub(crate) struct Topic {
    pub name: TopicName,
    pub id: Uuid,
    pub partitions: Vec<Arc<Partition>>,
    /// Topic-level config overrides (`retention.ms`, …), already validated.
    pub configs: BTreeMap<String, String>,
}

impl Topic {
    pub fn partition(&self, index: i32) -> Option<&Arc<Partition>> {
        usize::try_from(index)
            .ok()
            .and_then(|i| self.partitions.get(i))
    }
}

/// The persisted form of one topic.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct TopicRecord {
    pub name: String,
    pub id: Uuid,
    pub partitions: i32,
    #[serde(default)]
    pub configs: BTreeMap<String, String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct TopicsFile {
    topics: Vec<TopicRecord>,
}

/// The registry of topics.
#[derive(Debug)]
pub(crate) struct Topics {
    path: PathBuf,
    inner: RwLock<Inner>,
    /// Serialises changes so that the file and the map change together.
    write_lock: parking_lot::Mutex<()>,
}

#[derive(Debug, Default)]
struct Inner {
    by_name: HashMap<TopicName, Arc<Topic>>,
    by_id: HashMap<Uuid, Arc<Topic>>,
}

impl Topics {
    /// Reads the persisted records (none if the file does not exist).
    pub fn load_records(data_dir: &Path) -> anyhow::Result<Vec<TopicRecord>> {
        let path = data_dir.join("topics.json");
        match fs::read(&path) {
            Ok(bytes) => {
                let file: TopicsFile = serde_json::from_slice(&bytes).map_err(|e| {
                    anyhow::anyhow!("{} is not a valid topics file: {e}", path.display())
                })?;
                Ok(file.topics)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(anyhow::anyhow!("cannot read {}: {e}", path.display())),
        }
    }

    pub fn new(data_dir: &Path) -> Topics {
        Topics {
            path: data_dir.join("topics.json"),
            inner: RwLock::new(Inner::default()),
            write_lock: parking_lot::Mutex::new(()),
        }
    }

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

    /// Takes the lock that serialises registry changes; hold it across the
    /// check-then-change of a handler.
    pub fn lock_changes(&self) -> parking_lot::MutexGuard<'_, ()> {
        self.write_lock.lock()
    }

    /// Installs (or replaces) `topic` and persists the registry. Call with
    /// the change lock held.
    pub fn put(&self, topic: Topic) -> std::io::Result<Arc<Topic>> {
        let topic = Arc::new(topic);
        let mut records = self.records();
        records.retain(|r| r.name != topic.name.as_str());
        records.push(record_of(&topic));
        self.persist(records)?;
        let mut inner = self.inner.write();
        inner.by_name.insert(topic.name.clone(), topic.clone());
        inner.by_id.insert(topic.id, topic.clone());
        Ok(topic)
    }

    /// Removes a topic and persists the registry. Call with the change lock
    /// held.
    pub fn remove(&self, name: &TopicName) -> std::io::Result<Option<Arc<Topic>>> {
        let mut records = self.records();
        records.retain(|r| r.name != name.as_str());
        self.persist(records)?;
        let mut inner = self.inner.write();
        let removed = inner.by_name.remove(name);
        if let Some(topic) = &removed {
            inner.by_id.remove(&topic.id);
        }
        Ok(removed)
    }

    fn records(&self) -> Vec<TopicRecord> {
        self.inner
            .read()
            .by_name
            .values()
            .map(|t| record_of(t))
            .collect()
    }

    fn persist(&self, mut topics: Vec<TopicRecord>) -> std::io::Result<()> {
        topics.sort_by(|a, b| a.name.cmp(&b.name));
        let bytes = serde_json::to_vec_pretty(&TopicsFile { topics })
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        let tmp = self.path.with_extension("json.tmp");
        let mut file = fs::File::create(&tmp)?;
        file.write_all(&bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, &self.path)?;
        if let Some(dir) = self.path.parent() {
            fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    }
}

fn record_of(topic: &Topic) -> TopicRecord {
    TopicRecord {
        name: topic.name.to_string(),
        id: topic.id,
        partitions: topic.partitions.len() as i32,
        configs: topic.configs.clone(),
    }
}
