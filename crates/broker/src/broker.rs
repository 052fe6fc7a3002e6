//! The broker's shared state: configuration, identity, the topic registry
//! and the logs behind it. Handlers reach everything through [`Broker`].

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use runnel_metadata::records::ConfigResourceType;
use runnel_metadata::{BrokerEpoch, MetadataImage};
use runnel_model::config::{BrokerConfig, TopicConfigOverrides, TopicSettings};
use runnel_model::{BrokerId, LeaderEpoch, PartitionId, TopicName, TopicPartition};
use runnel_quorum::{ControllerFailure, ControllerRequest, ControllerResponse, Quorum};
use runnel_storage::{LogConfig, LogManager, TimestampType};
use tokio::sync::watch;
use uuid::Uuid;

use crate::groups::GroupCoordinator;
use crate::partition::Partition;
use crate::producer_ids::ProducerIdAllocator;
use crate::replication::{self, fetcher::Fetchers};
use crate::topics::{Topic, Topics};

/// A broker clients may connect to.
#[derive(Debug, Clone)]
pub(crate) struct LiveBroker {
    pub id: i32,
    pub host: String,
    pub port: i32,
    pub rack: Option<String>,
}

/// Who this node is to clients and to the cluster.
#[derive(Debug, Clone)]
pub(crate) struct Identity {
    pub cluster_id: String,
    pub advertised_host: String,
    pub advertised_port: i32,
    pub listener_name: String,
}

/// Everything a request handler may touch.
#[derive(Debug)]
pub(crate) struct Broker {
    pub node_id: i32,
    pub cluster_id: String,
    /// Host and port clients are told to connect to.
    pub advertised_host: String,
    pub advertised_port: i32,
    /// The name of the listener clients use (`PLAINTEXT`, …): the endpoint
    /// of other brokers given to clients is the one of this name.
    pub listener_name: String,
    pub config: RwLock<BrokerConfig>,
    pub logs: LogManager,
    pub topics: Topics,
    pub producer_ids: ProducerIdAllocator,
    /// This incarnation's broker epoch once registered (-1 before).
    broker_epoch: AtomicI64,
    /// Consumer groups and committed offsets.
    pub groups: GroupCoordinator,
    /// This node's part in the metadata quorum.
    pub quorum: Arc<Quorum>,
    /// The metadata log index the topic registry reflects.
    reconciled: watch::Sender<u64>,
    /// Set when the controller has not answered for a whole broker
    /// session: the controller has fenced this broker by now, so it leads
    /// nothing until it is heard from again.
    self_fenced: AtomicBool,
    /// Bumped after every append; long-polling fetches wait on it.
    appended: watch::Sender<u64>,
    /// The follower fetchers, one per leader this node follows.
    pub fetchers: Fetchers,
    /// High watermarks from the last checkpoint, for partitions opened
    /// after a restart.
    checkpointed_high_watermarks: parking_lot::Mutex<HashMap<(String, i32), i64>>,
    pub data_dir: PathBuf,
}

/// How long a request waits for the active controller by default.
pub(crate) const CONTROLLER_TIMEOUT: Duration = Duration::from_secs(30);

impl Broker {
    /// Opens the data directory's logs. Topics appear as the metadata image
    /// is applied ([`Broker::apply_image`]).
    pub fn open(
        config: BrokerConfig,
        identity: Identity,
        quorum: Arc<Quorum>,
    ) -> anyhow::Result<Broker> {
        let data_dir = config.log_dir();
        let logs = LogManager::open(&data_dir)
            .map_err(|e| anyhow::anyhow!("cannot open data dir {}: {e}", data_dir.display()))?;
        let legacy = data_dir.join("topics.json");
        if legacy.exists() {
            tracing::warn!(
                path = %legacy.display(),
                "ignoring topics.json: topics now live in the metadata log"
            );
        }
        Ok(Broker {
            node_id: config.node_id().0,
            cluster_id: identity.cluster_id,
            advertised_host: identity.advertised_host,
            advertised_port: identity.advertised_port,
            listener_name: identity.listener_name,
            config: RwLock::new(config),
            topics: Topics::default(),
            logs,
            producer_ids: ProducerIdAllocator::default(),
            broker_epoch: AtomicI64::new(-1),
            groups: GroupCoordinator::default(),
            quorum,
            reconciled: watch::Sender::new(0),
            self_fenced: AtomicBool::new(false),
            appended: watch::Sender::new(0),
            fetchers: Fetchers::default(),
            checkpointed_high_watermarks: parking_lot::Mutex::new(replication::checkpoint::read(
                &data_dir,
            )),
            data_dir,
        })
    }

    /// The current metadata image.
    pub fn image(&self) -> Arc<MetadataImage> {
        self.quorum.image()
    }

    /// The unfenced brokers, by id, with the endpoint clients use.
    pub fn live_brokers(&self, image: &MetadataImage) -> Vec<LiveBroker> {
        image
            .unfenced_brokers()
            .filter_map(|b| {
                let (host, port) = self.endpoint_of(image, b.broker_id)?;
                Some(LiveBroker {
                    id: b.broker_id.0,
                    host,
                    port,
                    rack: b.rack.clone(),
                })
            })
            .collect()
    }

    /// Where clients reach broker `id`: its endpoint of this listener's
    /// name, else its first.
    pub fn endpoint_of(&self, image: &MetadataImage, id: BrokerId) -> Option<(String, i32)> {
        let registration = image.broker(id)?;
        let endpoint = registration
            .endpoints
            .iter()
            .find(|e| e.name.eq_ignore_ascii_case(&self.listener_name))
            .or_else(|| registration.endpoints.first())?;
        Some((endpoint.host.clone(), i32::from(endpoint.port)))
    }

    /// The controller id given to clients: the active controller when it
    /// is a live broker (combined roles), else this broker, which forwards
    /// what it is sent to the active controller.
    pub fn controller_id(&self, image: &MetadataImage) -> i32 {
        self.quorum
            .leader()
            .and_then(|id| i32::try_from(id).ok())
            .filter(|id| image.is_unfenced(BrokerId(*id)))
            .unwrap_or(self.node_id)
    }

    /// Makes the topic registry and the hosted logs match `image`: topics
    /// it no longer has are deleted with their data, new partitions hosted
    /// here get logs, config changes reach the logs, and each replica learns
    /// whether it leads. Blocking (it opens and deletes logs).
    pub fn apply_image(self: &Arc<Self>, image: &MetadataImage, applied: u64) {
        let me = BrokerId(self.node_id);
        let self_fenced = self.self_fenced.load(Ordering::Acquire);
        let _guard = self.topics.lock_changes();
        for topic in self.topics.all() {
            if image.topic_by_id(topic.id).is_none() {
                self.topics.remove(&topic.id);
                for (_, partition) in topic.hosted() {
                    self.fetchers.remove(partition);
                    partition.set_idle(LeaderEpoch(partition.leader_epoch()));
                    if let Err(e) = self.logs.delete(&partition.tp) {
                        tracing::error!(partition = %partition.tp, error = %e, "failed to delete partition data");
                    }
                }
                tracing::info!(topic = %topic.name, "deleted topic");
            }
        }
        for t in image.topics() {
            let configs = image
                .configs(ConfigResourceType::Topic, t.name.as_str())
                .cloned()
                .unwrap_or_default();
            let existing = self.topics.get_by_id(&t.id);
            let configs_changed = existing.as_ref().is_none_or(|e| e.configs != configs);
            let mut changed = existing.is_none() || configs_changed;
            let log_config = self.log_config(&configs);
            let mut partitions = Vec::with_capacity(t.partitions.len());
            for (index, state) in &t.partitions {
                let old = existing
                    .as_ref()
                    .and_then(|e| e.partition(index.0).cloned());
                let hosted = state.replicas.contains(&me);
                let partition = match (hosted, old) {
                    (true, Some(old)) => Some(old),
                    (true, None) => {
                        changed = true;
                        match self.open_partition(&t.name, t.id, index.0, log_config.clone()) {
                            Ok(p) => Some(p),
                            Err(e) => {
                                tracing::error!(topic = %t.name, partition = index.0, error = %e, "cannot open a hosted partition");
                                None
                            }
                        }
                    }
                    (false, Some(old)) => {
                        // Reassigned away: this node keeps no copy.
                        changed = true;
                        self.fetchers.remove(&old);
                        old.set_idle(state.leader_epoch);
                        if let Err(e) = self.logs.delete(&old.tp) {
                            tracing::error!(partition = %old.tp, error = %e, "failed to delete a replica moved away");
                        }
                        None
                    }
                    (false, None) => None,
                };
                if let Some(p) = &partition {
                    replication::apply_partition_state(self, p, state, self_fenced);
                }
                partitions.push(partition);
            }
            if existing
                .as_ref()
                .is_some_and(|e| e.partitions.len() != partitions.len())
            {
                changed = true;
            }
            if !changed {
                continue;
            }
            if configs_changed {
                for partition in partitions.iter().flatten() {
                    partition.log.lock().set_config(log_config.clone());
                }
            }
            if existing.is_none() {
                tracing::info!(topic = %t.name, partitions = partitions.len(), "created topic");
            }
            self.topics.put(Topic {
                name: t.name.clone(),
                id: t.id,
                partitions,
                configs,
            });
        }
        self.groups.follow_leadership(self);
        self.reconciled.send_replace(applied);
        // Long-polling fetches re-check leadership and topics.
        self.notify_appended();
    }

    /// This incarnation's broker epoch, once the controller registered it.
    pub fn broker_epoch(&self) -> Option<BrokerEpoch> {
        let epoch = self.broker_epoch.load(Ordering::Acquire);
        (epoch >= 0).then_some(BrokerEpoch(epoch))
    }

    /// Records the broker epoch the controller gave this incarnation.
    pub fn set_broker_epoch(&self, epoch: BrokerEpoch) {
        self.broker_epoch.store(epoch.0, Ordering::Release);
    }

    /// Whether this broker has fenced itself (see `self_fenced`).
    pub fn is_self_fenced(&self) -> bool {
        self.self_fenced.load(Ordering::Acquire)
    }

    /// Stops (or resumes) leading everything because the controller is
    /// (or is again) out of reach; see `self_fenced`. Blocking on resume
    /// (it re-applies the current image).
    pub fn set_self_fenced(self: &Arc<Self>, fenced: bool) {
        if self.self_fenced.swap(fenced, Ordering::AcqRel) == fenced {
            return;
        }
        if fenced {
            tracing::warn!(
                "no answer from the controller for a whole broker session: leading nothing until it answers"
            );
            let _guard = self.topics.lock_changes();
            for topic in self.topics.all() {
                for (_, partition) in topic.hosted() {
                    self.fetchers.remove(partition);
                    partition.set_idle(LeaderEpoch(partition.leader_epoch()));
                }
            }
            self.notify_appended();
        } else {
            tracing::info!("the controller answers again");
            let published = self.quorum.images().borrow().clone();
            self.apply_image(&published.image, published.applied);
        }
    }

    /// Sends `request` to the active controller and waits until this
    /// node's topics reflect its effects.
    pub async fn submit(
        &self,
        request: ControllerRequest,
        timeout: Duration,
    ) -> Result<ControllerResponse, ControllerFailure> {
        let (response, index) = self.quorum.submit(request, timeout).await?;
        if !self.wait_reconciled(index, timeout).await {
            tracing::warn!(
                index,
                "the local metadata did not catch up with the controller in time"
            );
        }
        Ok(response)
    }

    /// Waits until the registry reflects the metadata log up to `index`.
    pub async fn wait_reconciled(&self, index: u64, timeout: Duration) -> bool {
        let mut reconciled = self.reconciled.subscribe();
        let caught_up = tokio::time::timeout(timeout, reconciled.wait_for(|i| *i >= index)).await;
        matches!(caught_up, Ok(Ok(_)))
    }

    /// Opens (creating if needed) the log of a hosted partition of topic
    /// `topic_id`. A directory left by an earlier topic of the same name —
    /// deleted and created again while this node was away — is deleted
    /// first: its `partition.metadata` names another topic id.
    fn open_partition(
        &self,
        topic: &TopicName,
        topic_id: Uuid,
        index: i32,
        config: LogConfig,
    ) -> Result<Arc<Partition>, String> {
        let tp = TopicPartition::new(topic.clone(), PartitionId(index));
        let dir = self.data_dir.join(tp.dir_name());
        let failed = |e: std::io::Error| format!("{tp}: {e}");
        match partition_owner(&dir).map_err(failed)? {
            Some(owner) if owner != topic_id => {
                tracing::warn!(partition = %tp, %owner, %topic_id, "deleting the data of an earlier topic of the same name");
                self.logs.delete(&tp).map_err(|e| format!("{tp}: {e}"))?;
            }
            _ => {}
        }
        let log = self
            .logs
            .get_or_create(&tp, config)
            .map_err(|e| format!("{tp}: {e}"))?;
        if partition_owner(&dir).map_err(failed)?.is_none() {
            write_partition_owner(&dir, topic_id).map_err(failed)?;
        }
        let high_watermark = self
            .checkpointed_high_watermarks
            .lock()
            .remove(&(topic.to_string(), index));
        Ok(Arc::new(Partition::new(tp, topic_id, log, high_watermark)))
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

    /// Re-applies broker defaults to every log (after a dynamic broker
    /// config change).
    pub fn reapply_log_configs(&self) {
        for topic in self.topics.all() {
            let log_config = self.log_config(&topic.configs);
            for (_, partition) in topic.hosted() {
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

/// Reads the cluster id from `meta.properties`. A data directory written
/// by another node id is refused. A missing file is created with a new
/// cluster id when `may_create` (a single-node cluster formats itself);
/// otherwise the node must be formatted first with the cluster's id.
pub(crate) fn load_or_create_identity(
    data_dir: &Path,
    node_id: i32,
    may_create: bool,
) -> anyhow::Result<String> {
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
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !may_create => anyhow::bail!(
            "{} does not exist: a node of a multi-node cluster must be formatted with the \
             cluster's id first: runnel format --data-dir {} --node-id {node_id} --cluster-id <id>",
            path.display(),
            data_dir.display()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            fs::create_dir_all(data_dir)?;
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

/// The file naming the topic a partition directory belongs to, as Kafka
/// writes it.
const PARTITION_METADATA: &str = "partition.metadata";

/// The topic id in `dir`'s `partition.metadata`, if the file exists.
fn partition_owner(dir: &Path) -> std::io::Result<Option<Uuid>> {
    let text = match fs::read_to_string(dir.join(PARTITION_METADATA)) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let id = text
        .lines()
        .find_map(|line| line.strip_prefix("topic_id:"))
        .and_then(|id| base64_url_decode(id.trim()))
        .and_then(|bytes| Uuid::from_slice(&bytes).ok());
    match id {
        Some(id) => Ok(Some(id)),
        None => Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "{} names no topic id",
                dir.join(PARTITION_METADATA).display()
            ),
        )),
    }
}

/// Writes `dir`'s `partition.metadata` durably.
fn write_partition_owner(dir: &Path, topic_id: Uuid) -> std::io::Result<()> {
    let text = format!(
        "version: 0\ntopic_id: {}\n",
        base64_url(topic_id.as_bytes())
    );
    let path = dir.join(PARTITION_METADATA);
    let tmp = dir.join("partition.metadata.tmp");
    fs::write(&tmp, text)?;
    fs::File::open(&tmp)?.sync_all()?;
    fs::rename(&tmp, &path)?;
    fs::File::open(dir)?.sync_all()
}

/// The inverse of [`base64_url`]; `None` for anything else.
fn base64_url_decode(text: &str) -> Option<Vec<u8>> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => return None,
        } as u32)
    };
    let mut out = Vec::new();
    for chunk in text.as_bytes().chunks(4) {
        if chunk.len() < 2 {
            return None;
        }
        let mut n = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            n |= value(*c)? << (18 - 6 * i);
        }
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..chunk.len() - 1]);
    }
    Some(out)
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
    fn partition_metadata_names_its_topic() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(partition_owner(dir.path()).unwrap(), None);
        let id = Uuid::new_v4();
        write_partition_owner(dir.path(), id).unwrap();
        assert_eq!(partition_owner(dir.path()).unwrap(), Some(id));
        let text = fs::read_to_string(dir.path().join(PARTITION_METADATA)).unwrap();
        assert!(text.starts_with("version: 0\ntopic_id: "), "{text}");
        fs::write(dir.path().join(PARTITION_METADATA), "topic_id: ???\n").unwrap();
        assert!(partition_owner(dir.path()).is_err());
        for bytes in [&b""[..], b"a", b"ab", b"abc", &[0xff; 16]] {
            assert_eq!(base64_url_decode(&base64_url(bytes)).unwrap(), bytes);
        }
    }

    #[test]
    fn cluster_ids_look_like_kafkas() {
        let id = base64_url(&[0u8; 16]);
        assert_eq!(id.len(), 22);
        assert_eq!(base64_url(b"\xfb\xff"), "-_8");
    }
}
