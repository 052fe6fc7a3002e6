//! The broker's shared state: configuration, identity, the topic registry
//! and the logs behind it. Handlers reach everything through [`Broker`].

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::RwLock;
use runnel_model::config::{BrokerConfig, TopicConfigOverrides, TopicSettings};
use runnel_model::{PartitionId, TopicName, TopicPartition};
use runnel_storage::{LogConfig, LogManager, TimestampType};
use tokio::sync::watch;
use uuid::Uuid;

use crate::groups::GroupCoordinator;
use crate::partition::Partition;
use crate::producer_ids::ProducerIdAllocator;
use crate::topics::{Topic, TopicRecord, Topics};

/// Why a topic operation failed; handlers map each to a Kafka error code.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TopicError {
    #[error("topic '{0}' already exists")]
    AlreadyExists(String),
    #[error("topic '{0}' does not exist")]
    Unknown(String),
    #[error("{0}")]
    InvalidPartitions(String),
    #[error("storage error: {0}")]
    Storage(String),
}

/// Everything a request handler may touch.
#[derive(Debug)]
pub(crate) struct Broker {
    pub node_id: i32,
    pub cluster_id: String,
    /// Host and port clients are told to connect to.
    pub advertised_host: String,
    pub advertised_port: i32,
    pub config: RwLock<BrokerConfig>,
    pub logs: LogManager,
    pub topics: Topics,
    pub producer_ids: ProducerIdAllocator,
    /// Consumer groups and committed offsets.
    pub groups: GroupCoordinator,
    /// Bumped after every append; long-polling fetches wait on it.
    appended: watch::Sender<u64>,
    pub data_dir: PathBuf,
}

impl Broker {
    /// Opens the data directory: identity, topics and every partition's log
    /// (recovering them if the last shutdown was not clean).
    pub fn open(
        config: BrokerConfig,
        advertised_host: String,
        advertised_port: i32,
    ) -> anyhow::Result<Broker> {
        let data_dir = config.log_dir();
        fs::create_dir_all(&data_dir)
            .map_err(|e| anyhow::anyhow!("cannot create data dir {}: {e}", data_dir.display()))?;
        let logs = LogManager::open(&data_dir)
            .map_err(|e| anyhow::anyhow!("cannot open data dir {}: {e}", data_dir.display()))?;
        let node_id = config.node_id().0;
        let cluster_id = load_or_create_identity(&data_dir, node_id)?;
        let producer_ids = ProducerIdAllocator::open(&data_dir)?;
        let broker = Broker {
            node_id,
            cluster_id,
            advertised_host,
            advertised_port,
            config: RwLock::new(config),
            topics: Topics::new(&data_dir),
            logs,
            producer_ids,
            groups: GroupCoordinator::default(),
            appended: watch::Sender::new(0),
            data_dir,
        };
        broker.load_topics()?;
        broker.groups.load_existing(&broker)?;
        Ok(broker)
    }

    fn load_topics(&self) -> anyhow::Result<()> {
        let mut records = Topics::load_records(&self.data_dir)?;
        // Adopt partition directories the registry does not know about.
        let mut found: BTreeMap<String, i32> = BTreeMap::new();
        for tp in self.logs.existing_partitions() {
            let count = found.entry(tp.topic.to_string()).or_insert(0);
            *count = (*count).max(tp.partition.0 + 1);
        }
        for (name, partitions) in found {
            match records.iter_mut().find(|r| r.name == name) {
                Some(record) => record.partitions = record.partitions.max(partitions),
                None => {
                    tracing::warn!(topic = %name, partitions, "adopting partition directories missing from topics.json");
                    records.push(TopicRecord {
                        name,
                        id: Uuid::new_v4(),
                        partitions,
                        configs: BTreeMap::new(),
                    });
                }
            }
        }
        let _guard = self.topics.lock_changes();
        for record in records {
            let name = TopicName::new(record.name.clone())
                .map_err(|e| anyhow::anyhow!("topics.json: {e}"))?;
            let configs = record.configs.clone();
            let log_config = self.log_config(&configs);
            let partitions = (0..record.partitions)
                .map(|p| self.open_partition(&name, p, log_config.clone()))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            self.topics.put(Topic {
                name,
                id: record.id,
                partitions,
                configs,
            })?;
        }
        Ok(())
    }

    fn open_partition(
        &self,
        topic: &TopicName,
        index: i32,
        config: LogConfig,
    ) -> Result<Arc<Partition>, TopicError> {
        let tp = TopicPartition::new(topic.clone(), PartitionId(index));
        let log = self
            .logs
            .get_or_create(&tp, config)
            .map_err(|e| TopicError::Storage(format!("{tp}: {e}")))?;
        Ok(Arc::new(Partition::new(tp, log)))
    }

    /// The storage settings of a topic with these overrides, resolved
    /// against the broker's defaults.
    pub fn log_config(&self, overrides: &BTreeMap<String, String>) -> LogConfig {
        let settings = self.topic_settings(overrides);
        LogConfig {
            segment_bytes: settings.segment_bytes.max(1) as u64,
            segment_ms: settings.segment_ms,
            segment_index_bytes: settings.segment_index_bytes.max(8) as u32,
            index_interval_bytes: settings.index_interval_bytes.max(0) as u32,
            retention_ms: settings.retention_ms,
            retention_bytes: settings.retention_bytes,
            flush_messages: settings.flush_messages,
            flush_ms: settings.flush_ms,
            max_message_bytes: settings.max_message_bytes.max(0) as u32,
            timestamp_type: if settings.message_timestamp_type
                == runnel_model::config::TimestampType::LogAppendTime
            {
                TimestampType::LogAppendTime
            } else {
                TimestampType::CreateTime
            },
            cleanup_policy: runnel_storage::CleanupPolicy {
                delete: settings.cleanup_policy.delete,
                compact: settings.cleanup_policy.compact,
            },
            delete_retention_ms: settings.delete_retention_ms,
            min_cleanable_dirty_ratio: runnel_storage::DirtyRatio::new(
                settings.min_cleanable_dirty_ratio,
            ),
            min_compaction_lag_ms: settings.min_compaction_lag_ms,
            max_compaction_lag_ms: settings.max_compaction_lag_ms,
        }
    }

    /// A topic's effective settings: its overrides resolved against the
    /// broker's defaults.
    pub fn topic_settings(&self, overrides: &BTreeMap<String, String>) -> TopicSettings {
        TopicSettings::resolve(&overrides_of(overrides), &self.config.read())
    }

    /// Creates a topic with `partitions` partitions and the given validated
    /// config overrides.
    pub fn create_topic(
        &self,
        name: TopicName,
        partitions: i32,
        configs: BTreeMap<String, String>,
    ) -> Result<Arc<Topic>, TopicError> {
        let _guard = self.topics.lock_changes();
        if self.topics.get(name.as_str()).is_some() {
            return Err(TopicError::AlreadyExists(name.to_string()));
        }
        let log_config = self.log_config(&configs);
        let partitions = (0..partitions)
            .map(|p| self.open_partition(&name, p, log_config.clone()))
            .collect::<Result<Vec<_>, _>>()?;
        let topic = self
            .topics
            .put(Topic {
                name,
                id: Uuid::new_v4(),
                partitions,
                configs,
            })
            .map_err(|e| TopicError::Storage(e.to_string()))?;
        tracing::info!(topic = %topic.name, partitions = topic.partitions.len(), "created topic");
        Ok(topic)
    }

    /// Deletes a topic and its data.
    pub fn delete_topic(&self, name: &TopicName) -> Result<Arc<Topic>, TopicError> {
        let _guard = self.topics.lock_changes();
        let topic = self
            .topics
            .remove(name)
            .map_err(|e| TopicError::Storage(e.to_string()))?
            .ok_or_else(|| TopicError::Unknown(name.to_string()))?;
        for partition in &topic.partitions {
            if let Err(e) = self.logs.delete(&partition.tp) {
                tracing::error!(partition = %partition.tp, error = %e, "failed to delete partition data");
            }
        }
        tracing::info!(topic = %name, "deleted topic");
        self.notify_appended();
        Ok(topic)
    }

    /// Grows a topic to `count` partitions.
    pub fn create_partitions(&self, name: &TopicName, count: i32) -> Result<(), TopicError> {
        let _guard = self.topics.lock_changes();
        let topic = self
            .topics
            .get(name.as_str())
            .ok_or_else(|| TopicError::Unknown(name.to_string()))?;
        let current = topic.partitions.len() as i32;
        if count <= current {
            return Err(TopicError::InvalidPartitions(format!(
                "Topic currently has {current} partitions, which is higher than the requested {count}."
            )));
        }
        let log_config = self.log_config(&topic.configs);
        let mut partitions = topic.partitions.clone();
        for p in current..count {
            partitions.push(self.open_partition(name, p, log_config.clone())?);
        }
        self.topics
            .put(Topic {
                name: topic.name.clone(),
                id: topic.id,
                partitions,
                configs: topic.configs.clone(),
            })
            .map_err(|e| TopicError::Storage(e.to_string()))?;
        Ok(())
    }

    /// Replaces a topic's config overrides and applies them to its logs.
    pub fn set_topic_configs(
        &self,
        name: &TopicName,
        configs: BTreeMap<String, String>,
    ) -> Result<(), TopicError> {
        let _guard = self.topics.lock_changes();
        let topic = self
            .topics
            .get(name.as_str())
            .ok_or_else(|| TopicError::Unknown(name.to_string()))?;
        let log_config = self.log_config(&configs);
        let topic = self
            .topics
            .put(Topic {
                name: topic.name.clone(),
                id: topic.id,
                partitions: topic.partitions.clone(),
                configs,
            })
            .map_err(|e| TopicError::Storage(e.to_string()))?;
        for partition in &topic.partitions {
            partition.log.lock().set_config(log_config.clone());
        }
        Ok(())
    }

    /// Re-applies broker defaults to every log (after a dynamic broker
    /// config change).
    pub fn reapply_log_configs(&self) {
        for topic in self.topics.all() {
            let log_config = self.log_config(&topic.configs);
            for partition in &topic.partitions {
                partition.log.lock().set_config(log_config.clone());
            }
        }
    }

    /// Wakes fetches waiting for data.
    pub fn notify_appended(&self) {
        self.appended.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// A receiver that changes after every append.
    pub fn subscribe_appends(&self) -> watch::Receiver<u64> {
        self.appended.subscribe()
    }
}

fn overrides_of(map: &BTreeMap<String, String>) -> TopicConfigOverrides {
    let mut overrides = TopicConfigOverrides::default();
    for (k, v) in map {
        // Stored overrides were validated when they were set; a value that
        // no longer validates (a downgrade) falls back to the default.
        if let Err(e) = overrides.set(k, v) {
            tracing::warn!(config = %k, error = %e, "ignoring stored topic config");
        }
    }
    overrides
}

/// Reads `meta.properties` (node id and cluster id), creating it on first
/// start. A data directory written by another node id is refused.
fn load_or_create_identity(data_dir: &Path, node_id: i32) -> anyhow::Result<String> {
    let path = data_dir.join("meta.properties");
    match fs::read_to_string(&path) {
        Ok(text) => {
            let mut cluster_id = None;
            let mut stored_node = None;
            for line in text.lines() {
                if let Some(v) = line.strip_prefix("cluster.id=") {
                    cluster_id = Some(v.trim().to_string());
                } else if let Some(v) = line.strip_prefix("node.id=") {
                    stored_node = v.trim().parse::<i32>().ok();
                }
            }
            if let Some(stored) = stored_node {
                if stored != node_id {
                    anyhow::bail!(
                        "{} belongs to node.id {stored}, but this node is configured as node.id {node_id}",
                        path.display()
                    );
                }
            }
            cluster_id.ok_or_else(|| anyhow::anyhow!("{} has no cluster.id", path.display()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let cluster_id = base64_url(Uuid::new_v4().as_bytes());
            let text = format!("version=1\nnode.id={node_id}\ncluster.id={cluster_id}\n");
            let tmp = path.with_extension("tmp");
            fs::write(&tmp, text)?;
            fs::File::open(&tmp)?.sync_all()?;
            fs::rename(&tmp, &path)?;
            Ok(cluster_id)
        }
        Err(e) => Err(anyhow::anyhow!("cannot read {}: {e}", path.display())),
    }
}

/// URL-safe base64 without padding, the form Kafka uses for cluster ids.
fn base64_url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let chars = chunk.len() + 1;
        for i in 0..chars {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_ids_look_like_kafkas() {
        let id = base64_url(&[0u8; 16]);
        assert_eq!(id.len(), 22);
        assert_eq!(base64_url(b"\xfb\xff"), "-_8");
    }
}
