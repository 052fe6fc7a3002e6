//! The group coordinator's runtime: it owns one [`Shard`] per partition of
//! `__consumer_offsets`, feeds requests and the clock to them, appends the
//! records they ask for, answers held JoinGroup/SyncGroup requests, runs
//! their timers and expires old offsets.
//!
//! The state machines live in `runnel-group`; this module is the I/O edge.
//! Each shard is behind its own lock; a call locks the shard, runs the
//! machine, appends its records and applies them before unlocking, so the
//! log and memory change in the same order. The fsync that
//! `flush.messages` may ask for runs after the lock is released, and the
//! answers are sent after it.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kafka_protocol::ResponseError;
use parking_lot::{Mutex, RwLock};
use runnel_group::classic::ClassicConfig;
use runnel_group::consumer::{ConsumerConfig, TopicMetadata};
use runnel_group::shard::{Effects, Reply, ShardConfig, Write};
use runnel_group::{Millis, RequestId, Shard};
use runnel_model::config::BrokerConfig;
use runnel_model::{LeaderEpoch, Offset, Timestamp, TopicName};
use runnel_protocol::batch::{decode_stored_records, BatchBuilder};
use runnel_storage::LogError;
use tokio::sync::oneshot;

use runnel_metadata::{CreateTopicRequest, TopicError as MetadataTopicError};
use runnel_quorum::{ControllerRequest, ControllerResponse};

use crate::broker::{Broker, CONTROLLER_TIMEOUT};
use crate::partition::{Partition, ReplicationWait};

/// The internal topic holding groups and committed offsets.
pub(crate) const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// The wall clock in milliseconds.
pub(crate) fn now_ms() -> Millis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as Millis)
}

/// The broker's group coordinator.
#[derive(Debug, Default)]
pub(crate) struct GroupCoordinator {
    shards: RwLock<HashMap<i32, Arc<Mutex<Shard>>>>,
    /// Serialises creating and loading `__consumer_offsets`.
    loading: Mutex<()>,
    pending: Mutex<HashMap<RequestId, oneshot::Sender<Reply>>>,
    next_request: AtomicU64,
}

/// The shard settings from the broker's configuration.
pub(crate) fn shard_config(config: &BrokerConfig) -> ShardConfig {
    ShardConfig {
        classic: ClassicConfig {
            min_session_timeout_ms: clamp_i32(config.group_min_session_timeout_ms()),
            max_session_timeout_ms: clamp_i32(config.group_max_session_timeout_ms()),
            initial_rebalance_delay_ms: clamp_i32(config.group_initial_rebalance_delay_ms()),
            max_size: config.group_max_size(),
        },
        consumer: ConsumerConfig {
            heartbeat_interval_ms: clamp_i32(config.group_consumer_heartbeat_interval_ms()),
            session_timeout_ms: clamp_i32(config.group_consumer_session_timeout_ms()),
            max_size: config.group_consumer_max_size(),
            assignors: config.group_consumer_assignors(),
        },
        offset_metadata_max_bytes: config.offset_metadata_max_bytes().max(0) as usize,
        offsets_retention_ms: config.offsets_retention_ms(),
    }
}

fn clamp_i32(v: i64) -> i32 {
    v.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32
}

/// The broker's topics as the consumer-group machines see them.
pub(crate) struct BrokerTopics<'a>(pub &'a Broker);

impl TopicMetadata for BrokerTopics<'_> {
    fn topic_by_name(&self, name: &str) -> Option<(uuid::Uuid, i32)> {
        let topic = self.0.topics.get(name)?;
        Some((topic.id, topic.partition_count()))
    }

    fn topic_by_id(&self, id: uuid::Uuid) -> Option<(String, i32)> {
        let topic = self.0.topics.get_by_id(&id)?;
        Some((topic.name.to_string(), topic.partition_count()))
    }

    fn topic_names(&self) -> Vec<String> {
        self.0
            .topics
            .all()
            .iter()
            .filter(|t| !t.name.is_internal())
            .map(|t| t.name.to_string())
            .collect()
    }
}

impl GroupCoordinator {
    /// Creates `__consumer_offsets` through the controller if it does not
    /// exist yet. Errors are Kafka codes.
    pub async fn ensure_offsets_topic(&self, broker: &Broker) -> Result<(), i16> {
        if broker.topics.get(OFFSETS_TOPIC).is_some() {
            return Ok(());
        }
        let (partitions, segment_bytes, replication_factor) = {
            let config = broker.config.read();
            (
                config.offsets_topic_num_partitions().max(1),
                // The topic config's own lower bound.
                config.offsets_topic_segment_bytes().max(1 << 20),
                config.offsets_topic_replication_factor().max(1),
            )
        };
        // Kafka refuses to create the topic until enough brokers are up, so
        // a single node needs offsets.topic.replication.factor=1 configured.
        // Runnel takes as many replicas as there are brokers, up to the
        // setting, so that a zero-configuration node and a small cluster
        // have working groups.
        let brokers = broker.image().brokers().count().max(1);
        let replication_factor = i16::try_from(
            usize::try_from(replication_factor)
                .unwrap_or(1)
                .min(brokers),
        )
        .unwrap_or(1);
        let configs = BTreeMap::from([
            ("cleanup.policy".to_string(), "compact".to_string()),
            ("compression.type".to_string(), "producer".to_string()),
            ("segment.bytes".to_string(), segment_bytes.to_string()),
        ]);
        let name = TopicName::new(OFFSETS_TOPIC.to_string())
            .map_err(|_| ResponseError::UnknownServerError.code())?;
        let request = ControllerRequest::CreateTopics {
            topics: vec![CreateTopicRequest {
                name,
                num_partitions: partitions,
                replication_factor,
                configs,
                assignments: vec![],
            }],
            validate_only: false,
        };
        match broker.submit(request, CONTROLLER_TIMEOUT).await {
            Ok(ControllerResponse::CreateTopics(results)) => match results.first() {
                Some((_, Ok(_))) | Some((_, Err(MetadataTopicError::TopicAlreadyExists(_)))) => {
                    Ok(())
                }
                other => {
                    tracing::warn!(result = ?other, "cannot create {OFFSETS_TOPIC}");
                    Err(ResponseError::CoordinatorNotAvailable.code())
                }
            },
            other => {
                tracing::warn!(answer = ?other, "cannot create {OFFSETS_TOPIC}");
                Err(ResponseError::CoordinatorNotAvailable.code())
            }
        }
    }

    /// The shard owning `group_id` if this node leads its partition of
    /// `__consumer_offsets`, loading it from the log the first time. Errors
    /// are Kafka codes: COORDINATOR_NOT_AVAILABLE before the topic exists,
    /// NOT_COORDINATOR when another node leads the partition.
    pub fn shard(&self, broker: &Broker, group_id: &str) -> Result<Arc<Mutex<Shard>>, i16> {
        let topic = broker
            .topics
            .get(OFFSETS_TOPIC)
            .ok_or(ResponseError::CoordinatorNotAvailable.code())?;
        let index = runnel_group::partition_for(group_id, topic.partition_count());
        if let Some(shard) = self.shards.read().get(&index) {
            return Ok(shard.clone());
        }
        let partition = topic
            .led(index)
            .map_err(|_| ResponseError::NotCoordinator.code())?
            .clone();
        let _guard = self.loading.lock();
        if let Some(shard) = self.shards.read().get(&index) {
            return Ok(shard.clone());
        }
        let mut shard = Shard::new(index, shard_config(&broker.config.read()));
        let replayed = replay(&mut shard, &partition, now_ms()).map_err(|e| {
            tracing::error!(partition = %partition.tp, error = %e, "cannot load group state");
            ResponseError::CoordinatorNotAvailable.code()
        })?;
        if replayed > 0 {
            tracing::info!(partition = %partition.tp, records = replayed, "loaded group state");
        }
        let shard = Arc::new(Mutex::new(shard));
        self.shards.write().insert(index, shard.clone());
        Ok(shard)
    }

    /// Drops the shards of partitions this node no longer leads; another
    /// node loads them from the log when it becomes their coordinator.
    pub fn follow_leadership(&self, broker: &Broker) {
        let topic = broker.topics.get(OFFSETS_TOPIC);
        self.shards.write().retain(|index, _| {
            let led = topic.as_ref().is_some_and(|t| t.led(*index).is_ok());
            if !led {
                tracing::info!(
                    partition = index,
                    "no longer coordinating the groups of this partition"
                );
            }
            led
        });
    }

    /// Every loaded shard.
    pub fn all_shards(&self) -> Vec<Arc<Mutex<Shard>>> {
        self.shards.read().values().cloned().collect()
    }

    /// A handle for a request that may be answered later, and where the
    /// answer will arrive.
    pub fn register(&self) -> (RequestId, oneshot::Receiver<Reply>) {
        let id = self.next_request.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.pending.lock().insert(id, tx);
        (id, rx)
    }

    /// Forgets a request whose handler gave up waiting.
    pub fn forget(&self, id: RequestId) {
        self.pending.lock().remove(&id);
    }

    fn dispatch(&self, replies: Vec<Reply>) {
        let mut pending = self.pending.lock();
        for reply in replies {
            let id = match &reply {
                Reply::Join(id, _) | Reply::Sync(id, _) => *id,
            };
            if let Some(tx) = pending.remove(&id) {
                // The handler may have gone with its connection.
                let _ = tx.send(reply);
            }
        }
    }

    /// Runs `call` on the shard owning `group_id`, then writes, applies and
    /// answers what it asked for. Returns the call's own result and whether
    /// the writes were stored (`Err` with a Kafka code if not).
    pub async fn run<T>(
        &self,
        broker: &Broker,
        group_id: &str,
        call: impl FnOnce(&mut Shard) -> (T, Effects),
    ) -> Result<(T, Result<(), i16>), i16> {
        self.ensure_offsets_topic(broker).await?;
        let shard = self.shard(broker, group_id)?;
        let (value, effects, written) = {
            let mut shard = shard.lock();
            let (value, effects) = call(&mut shard);
            let written = append_and_apply(broker, &mut shard, &effects.writes);
            (value, effects, written)
        };
        let written = match written {
            Ok(Some((partition, last, epoch))) => {
                make_durable(broker, &partition, last, epoch).await
            }
            Ok(None) => Ok(()),
            Err(code) => Err(code),
        };
        self.dispatch(effects.replies);
        Ok((value, written))
    }

    /// Runs timers and offset expiry on every shard. `expire` also removes
    /// offsets past their retention.
    pub async fn tick(&self, broker: &Broker, expire: bool) {
        let now = now_ms();
        let topics = BrokerTopics(broker);
        for shard in self.all_shards() {
            let (effects, written) = {
                let mut shard = shard.lock();
                let mut effects = if shard.next_deadline().is_some_and(|d| d <= now) {
                    shard.tick(now, &topics)
                } else {
                    Effects::default()
                };
                if expire {
                    effects.writes.extend(shard.expire_offsets(now));
                }
                let written = append_and_apply(broker, &mut shard, &effects.writes);
                (effects, written)
            };
            if let Ok(Some((partition, last, epoch))) = written {
                let _ = make_durable(broker, &partition, last, epoch).await;
            }
            self.dispatch(effects.replies);
        }
    }

    /// Pushes new settings to every shard.
    pub fn reconfigure(&self, broker: &Broker) {
        let cfg = shard_config(&broker.config.read());
        for shard in self.all_shards() {
            shard.lock().set_config(cfg.clone());
        }
    }

    /// Gives up every shard: held requests are answered NOT_COORDINATOR.
    pub fn shutdown(&self) {
        let shards: Vec<_> = self.shards.write().drain().map(|(_, s)| s).collect();
        for shard in shards {
            let effects = shard.lock().unload();
            self.dispatch(effects.replies);
        }
    }
}

/// Replays a partition's records into `shard`; returns how many.
fn replay(shard: &mut Shard, partition: &Partition, now: Millis) -> Result<usize, LogError> {
    let log = partition.log.lock();
    let end = log.log_end_offset();
    let mut offset = log.log_start_offset();
    let mut count = 0;
    while offset < end {
        let slice = log.read(offset, 1 << 20, true)?;
        let bytes = slice.read_to_vec()?;
        if bytes.is_empty() {
            break;
        }
        let mut next = offset;
        for item in runnel_protocol::batch::split_batches(&bytes) {
            let Ok((at, header)) = item else { break };
            next = Offset(header.last_offset() + 1);
            if header.is_control() {
                continue;
            }
            let batch = &bytes[at..at + header.total_len()];
            match decode_stored_records(batch, usize::MAX >> 1) {
                Ok(records) => {
                    for record in records {
                        let Some(key) = record.key else { continue };
                        if let Err(e) = shard.replay(&key, record.value.as_deref(), now) {
                            tracing::warn!(partition = %partition.tp, offset = record.offset, error = %e, "skipping a group record");
                        }
                        count += 1;
                    }
                }
                Err(e) => {
                    tracing::warn!(partition = %partition.tp, offset = header.base_offset, error = %e, "skipping a group batch");
                }
            }
        }
        if next <= offset {
            break;
        }
        offset = next;
    }
    Ok(count)
}

/// Appends `writes` to the shard's own partition as one batch and applies them
/// to the shard. Returns the partition, the last offset and the leader epoch
/// of the append, to make it durable, or the Kafka error code for a failed
/// append.
#[allow(clippy::type_complexity)]
fn append_and_apply(
    broker: &Broker,
    shard: &mut Shard,
    writes: &[Write],
) -> Result<Option<(Arc<Partition>, Offset, LeaderEpoch)>, i16> {
    if writes.is_empty() {
        return Ok(None);
    }
    let partition = shard.partition();
    let target = broker
        .topics
        .get(OFFSETS_TOPIC)
        .and_then(|t| t.led(partition).ok().cloned())
        .ok_or(ResponseError::NotCoordinator.code())?;
    let now = now_ms();
    let mut builder = BatchBuilder::default();
    for write in writes {
        builder = builder.keyed(now, &write.key(), write.value().as_deref());
    }
    let mut batch = builder.build().map_err(|e| {
        tracing::error!(error = %e, "cannot encode group records");
        ResponseError::UnknownServerError.code()
    })?;
    let epoch = LeaderEpoch(target.leader_epoch());
    let outcome = target.append_as_leader(&mut batch, Timestamp::now());
    match outcome {
        Ok(outcome) => {
            shard.apply(writes);
            broker.notify_appended();
            Ok(Some((target, Offset(outcome.info().last_offset.0), epoch)))
        }
        Err(e) => {
            tracing::error!(partition = %target.tp, error = %e, "cannot write group records");
            Err(match e {
                LogError::RecordTooLarge { .. } => ResponseError::InvalidCommitOffsetSize.code(),
                _ => ResponseError::CoordinatorNotAvailable.code(),
            })
        }
    }
}

/// Makes a coordinator write durable as Kafka does (acks=all on its own
/// partition): fsynced when `flush.messages` says so, then on every in-sync
/// replica within `offsets.commit.timeout.ms`.
async fn make_durable(
    broker: &Broker,
    partition: &Partition,
    last: Offset,
    epoch: LeaderEpoch,
) -> Result<(), i16> {
    if partition.flush_due() {
        partition.sync_through(last).await.map_err(|e| {
            tracing::error!(partition = %partition.tp, error = %e, "cannot sync group records");
            ResponseError::CoordinatorNotAvailable.code()
        })?;
    }
    let timeout = Duration::from_millis(
        u64::try_from(broker.config.read().offsets_commit_timeout_ms()).unwrap_or(5000),
    );
    match partition.wait_replicated(last, epoch, timeout).await {
        Ok(()) => Ok(()),
        Err(ReplicationWait::NotLeader) => Err(ResponseError::NotCoordinator.code()),
        Err(ReplicationWait::TimedOut) => {
            tracing::warn!(partition = %partition.tp, offset = last.0, "group records not replicated in time");
            Err(ResponseError::CoordinatorNotAvailable.code())
        }
    }
}

/// Runs the coordinator's timers until `stop` changes: group deadlines
/// every 50 ms, offset expiry every `offsets.retention.check.interval.ms`,
/// new settings every second.
pub(crate) async fn run_timers(broker: Arc<Broker>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut interval = tokio::time::interval(Duration::from_millis(50));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_expiry = now_ms();
    let mut last_config = now_ms();
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            _ = stop.changed() => return,
        }
        let now = now_ms();
        let check = broker.config.read().offsets_retention_check_interval_ms();
        let expire = now - last_expiry >= check.max(1);
        if expire {
            last_expiry = now;
        }
        if now - last_config >= 1000 {
            last_config = now;
            broker.groups.reconfigure(&broker);
        }
        broker.groups.tick(&broker, expire).await;
    }
}
