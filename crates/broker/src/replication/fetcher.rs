//! Followers fetching from their leaders: one task per leader broker,
//! fetching every partition this node follows there in one Fetch request
//! (with `replica_id` set, so the leader counts the fetch as the follower's
//! progress), long-polling `replica.fetch.wait.max.ms`.
//!
//! Before a partition's first fetch under a new leader or leader epoch the
//! follower cuts any suffix the leader does not have: it asks the leader
//! (OffsetsForLeaderEpoch) where its latest epoch ends in the leader's log
//! and truncates there, walking back epoch by epoch when the leader never
//! had that epoch (KIP-101, KIP-279). Only then does it fetch from its log
//! end, appending the leader's batches verbatim.
//!
//! A fetch result is applied only while the partition still follows in
//! the epoch the request was made for, checked under the log lock, so a
//! response that raced with a leadership change never lands.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::{
    FetchRequest, ListOffsetsRequest, OffsetForLeaderEpochRequest, TopicName as WireTopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use parking_lot::Mutex;
use runnel_client::Connection;
use runnel_model::{BrokerId, LeaderEpoch, Offset};
use tokio::sync::Notify;
use uuid::Uuid;

use crate::broker::Broker;
use crate::partition::Partition;

/// Fetch v12: replica id in the body, topic names, leader epochs.
const FETCH_VERSION: i16 = 12;
/// OffsetsForLeaderEpoch v4: replica id and current leader epoch.
const EPOCH_VERSION: i16 = 4;
/// ListOffsets v4: current leader epoch.
const LIST_OFFSETS_VERSION: i16 = 4;
/// Rounds of OffsetsForLeaderEpoch before falling back to the high
/// watermark (each round steps back one epoch).
const MAX_EPOCH_ROUNDS: usize = 16;

type Key = (Uuid, i32);

/// One followed partition in a fetcher.
#[derive(Debug, Clone)]
struct Entry {
    partition: Arc<Partition>,
    /// The leader epoch this fetcher follows the partition in.
    epoch: LeaderEpoch,
    /// A divergent suffix may need cutting before the next fetch.
    truncate: bool,
    /// Not fetched before this time (after an error).
    retry_at: Option<Instant>,
}

type Entries = Arc<Mutex<HashMap<Key, Entry>>>;

#[derive(Debug)]
struct Fetcher {
    partitions: Entries,
    wake: Arc<Notify>,
    task: tokio::task::JoinHandle<()>,
}

/// Every fetcher of this node, by leader.
#[derive(Debug, Default)]
pub(crate) struct Fetchers {
    by_leader: Mutex<HashMap<BrokerId, Fetcher>>,
}

fn key_of(partition: &Partition) -> Key {
    (partition.topic_id, partition.tp.partition.0)
}

impl Fetchers {
    /// Makes `leader`'s fetcher fetch `partition` in `epoch` (and no other
    /// fetcher fetch it); `changed` marks a new leadership, whose first
    /// fetch is preceded by the divergence check.
    pub fn assign(
        &self,
        broker: &Arc<Broker>,
        leader: BrokerId,
        partition: Arc<Partition>,
        epoch: LeaderEpoch,
        changed: bool,
    ) {
        let key = key_of(&partition);
        let mut by_leader = self.by_leader.lock();
        for (id, fetcher) in by_leader.iter() {
            if *id != leader {
                fetcher.partitions.lock().remove(&key);
            }
        }
        let fetcher = match by_leader.entry(leader) {
            std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
            std::collections::hash_map::Entry::Vacant(v) => {
                let Ok(runtime) = tokio::runtime::Handle::try_current() else {
                    tracing::error!(partition = %partition.tp, "no runtime to fetch on");
                    return;
                };
                let partitions: Entries = Arc::default();
                let wake = Arc::new(Notify::new());
                let task = runtime.spawn(run(
                    Arc::downgrade(broker),
                    leader,
                    partitions.clone(),
                    wake.clone(),
                ));
                v.insert(Fetcher {
                    partitions,
                    wake,
                    task,
                })
            }
        };
        let mut partitions = fetcher.partitions.lock();
        let keep = partitions
            .get(&key)
            .is_some_and(|e| !changed && e.epoch == epoch);
        if !keep {
            partitions.insert(
                key,
                Entry {
                    partition,
                    epoch,
                    truncate: true,
                    retry_at: None,
                },
            );
        }
        drop(partitions);
        fetcher.wake.notify_one();
    }

    /// Stops fetching `partition` (it leads, rests, or is gone).
    pub fn remove(&self, partition: &Partition) {
        let key = key_of(partition);
        for fetcher in self.by_leader.lock().values() {
            fetcher.partitions.lock().remove(&key);
        }
    }

    /// Stops every fetcher.
    pub fn shutdown(&self) {
        for (_, fetcher) in self.by_leader.lock().drain() {
            fetcher.task.abort();
        }
    }
}

/// Why a round of requests to the leader failed as a whole.
#[derive(Debug)]
struct Broken(String);

/// The fetcher of one leader.
async fn run(broker: Weak<Broker>, leader: BrokerId, partitions: Entries, wake: Arc<Notify>) {
    let mut connection: Option<Connection> = None;
    loop {
        let Some(node) = broker.upgrade() else { return };
        let backoff = Duration::from_millis(
            u64::try_from(node.config.read().replica_fetch_backoff_ms()).unwrap_or(1000),
        )
        .max(Duration::from_millis(10));
        let now = Instant::now();
        let due: Vec<(Key, Entry)> = partitions
            .lock()
            .iter()
            .filter(|(_, e)| e.retry_at.is_none_or(|t| t <= now))
            .map(|(k, e)| (*k, e.clone()))
            .collect();
        if due.is_empty() {
            drop(node);
            let next = partitions.lock().values().filter_map(|e| e.retry_at).min();
            match next {
                Some(at) => {
                    tokio::select! {
                        _ = tokio::time::sleep_until(at.into()) => {}
                        _ = wake.notified() => {}
                    }
                }
                None => wake.notified().await,
            }
            continue;
        }
        if connection.as_ref().is_none_or(Connection::is_closed) {
            match connect(&node, leader).await {
                Ok(c) => connection = Some(c),
                Err(Broken(reason)) => {
                    tracing::debug!(%leader, %reason, "cannot reach the leader");
                    drop(node);
                    tokio::time::sleep(backoff).await;
                    continue;
                }
            }
        }
        let Some(conn) = connection.as_ref() else {
            continue;
        };
        let (truncating, fetching): (Vec<_>, Vec<_>) =
            due.into_iter().partition(|(_, e)| e.truncate);
        let outcome = if !truncating.is_empty() {
            truncate_divergent(&node, conn, &partitions, truncating, backoff).await
        } else {
            fetch_once(&node, conn, &partitions, fetching, backoff).await
        };
        if let Err(Broken(reason)) = outcome {
            tracing::debug!(%leader, %reason, "fetching from the leader failed");
            connection = None;
            drop(node);
            tokio::time::sleep(backoff).await;
        }
    }
}

async fn connect(broker: &Broker, leader: BrokerId) -> Result<Connection, Broken> {
    let image = broker.image();
    let (host, port) = broker
        .endpoint_of(&image, leader)
        .ok_or_else(|| Broken(format!("broker {leader} has no endpoint")))?;
    let timeout = Duration::from_millis(
        u64::try_from(broker.config.read().replica_socket_timeout_ms()).unwrap_or(30_000),
    );
    Connection::connect(
        &format!("{host}:{port}"),
        &format!("runnel-replica-fetcher-{}", broker.node_id),
        timeout,
        timeout,
    )
    .await
    .map_err(|e| Broken(e.to_string()))
}

/// Changes `key`'s entry with `change` if it still follows in `epoch`: an
/// outcome of a request made for an older leadership is dropped.
fn update(partitions: &Entries, key: Key, epoch: LeaderEpoch, change: impl FnOnce(&mut Entry)) {
    if let Some(e) = partitions.lock().get_mut(&key) {
        if e.epoch == epoch {
            change(e);
        }
    }
}

/// Marks `key` for a retry after `backoff` (if it is still the same entry).
fn delay(partitions: &Entries, key: Key, epoch: LeaderEpoch, backoff: Duration) {
    update(partitions, key, epoch, |e| {
        e.retry_at = Some(Instant::now() + backoff)
    });
}

fn wire_name(partition: &Partition) -> WireTopicName {
    WireTopicName(StrBytes::from_string(partition.tp.topic.to_string()))
}

/// Runs the divergence check for every partition in `entries` and
/// truncates each where the leader's log ends for its latest epoch.
async fn truncate_divergent(
    broker: &Broker,
    conn: &Connection,
    partitions: &Entries,
    entries: Vec<(Key, Entry)>,
    backoff: Duration,
) -> Result<(), Broken> {
    for (key, entry) in entries {
        let p = &entry.partition;
        let target = match divergence_point(broker, conn, &entry).await? {
            Ok(target) => target,
            Err(error) => {
                tracing::debug!(partition = %p.tp, ?error, "divergence check refused");
                delay(partitions, key, entry.epoch, backoff);
                continue;
            }
        };
        {
            let mut log = p.log.lock();
            if p.is_leader() || p.leader_epoch() != entry.epoch.0 {
                continue;
            }
            if let Some(offset) = target {
                if offset < log.log_end_offset() {
                    let before = log.log_end_offset();
                    if let Err(e) = log.truncate_to(offset) {
                        tracing::error!(partition = %p.tp, error = %e, "cannot truncate a divergent suffix");
                        drop(log);
                        delay(partitions, key, entry.epoch, backoff);
                        continue;
                    }
                    tracing::info!(partition = %p.tp, from = before.0, to = log.log_end_offset().0, "truncated a suffix the leader does not have");
                }
            }
        }
        p.clamp_high_watermark();
        update(partitions, key, entry.epoch, |e| {
            e.truncate = false;
            e.retry_at = None;
        });
    }
    Ok(())
}

/// Where the follower's log must end so it holds nothing the leader lacks:
/// `Ok(None)` when no cut is needed, `Err` with the leader's error.
async fn divergence_point(
    broker: &Broker,
    conn: &Connection,
    entry: &Entry,
) -> Result<Result<Option<Offset>, ResponseError>, Broken> {
    let p = &entry.partition;
    let (mut asked, log_end, high_watermark) = {
        let log = p.log.lock();
        (log.latest_epoch(), log.log_end_offset(), p.high_watermark())
    };
    for _ in 0..MAX_EPOCH_ROUNDS {
        let Some(epoch) = asked else {
            // Nothing written under any epoch: nothing can diverge.
            return Ok(Ok(None));
        };
        let request = OffsetForLeaderEpochRequest::default()
            .with_replica_id(kafka_protocol::messages::BrokerId(broker.node_id))
            .with_topics(vec![OffsetForLeaderTopic::default()
                .with_topic(wire_name(p))
                .with_partitions(vec![OffsetForLeaderPartition::default()
                    .with_partition(p.tp.partition.0)
                    .with_current_leader_epoch(entry.epoch.0)
                    .with_leader_epoch(epoch.0)])]);
        let response = conn
            .send_version(&request, EPOCH_VERSION)
            .await
            .map_err(|e| Broken(e.to_string()))?;
        let Some(answer) = response
            .topics
            .first()
            .and_then(|t| t.partitions.first())
            .cloned()
        else {
            return Err(Broken("OffsetsForLeaderEpoch answered no partition".into()));
        };
        if let Some(error) = ResponseError::try_from_code(answer.error_code) {
            return Ok(Err(error));
        }
        if answer.leader_epoch < 0 || answer.end_offset < 0 {
            // The leader has no epoch this old: keep only what was known
            // committed.
            return Ok(Ok(Some(Offset(high_watermark))));
        }
        let leader_epoch = LeaderEpoch(answer.leader_epoch);
        let mine = p.log.lock().end_offset_for_epoch(leader_epoch);
        match mine {
            Some((my_epoch, my_end)) if my_epoch == leader_epoch => {
                let cut = Offset(answer.end_offset.min(my_end.0));
                return Ok(Ok((cut < log_end).then_some(cut)));
            }
            // This log never had the leader's epoch: step back to the
            // latest epoch it had before it and ask again.
            Some((my_epoch, _)) if my_epoch < leader_epoch => asked = Some(my_epoch),
            _ => return Ok(Ok(Some(Offset(answer.end_offset.min(high_watermark))))),
        }
    }
    Ok(Ok(Some(Offset(high_watermark))))
}

/// One Fetch for `entries`, applied.
async fn fetch_once(
    broker: &Broker,
    conn: &Connection,
    partitions: &Entries,
    entries: Vec<(Key, Entry)>,
    backoff: Duration,
) -> Result<(), Broken> {
    let (wait_ms, min_bytes, max_bytes, partition_max_bytes) = {
        let config = broker.config.read();
        (
            i32::try_from(config.replica_fetch_wait_max_ms()).unwrap_or(500),
            config.replica_fetch_min_bytes(),
            config.replica_fetch_response_max_bytes(),
            config.replica_fetch_max_bytes(),
        )
    };
    let mut topics: Vec<FetchTopic> = Vec::new();
    let mut sent: HashMap<(String, i32), (Key, Entry, Offset)> = HashMap::new();
    for (key, entry) in entries {
        let p = &entry.partition;
        let (fetch_offset, last_epoch, log_start) = {
            let log = p.log.lock();
            (
                log.log_end_offset(),
                log.latest_epoch().map_or(-1, |e| e.0),
                log.log_start_offset(),
            )
        };
        let name = p.tp.topic.to_string();
        let fetch = FetchPartition::default()
            .with_partition(p.tp.partition.0)
            .with_current_leader_epoch(entry.epoch.0)
            .with_fetch_offset(fetch_offset.0)
            .with_last_fetched_epoch(last_epoch)
            .with_log_start_offset(log_start.0)
            .with_partition_max_bytes(partition_max_bytes);
        match topics.iter_mut().find(|t| t.topic.0.as_str() == name) {
            Some(t) => t.partitions.push(fetch),
            None => topics.push(
                FetchTopic::default()
                    .with_topic(wire_name(p))
                    .with_partitions(vec![fetch]),
            ),
        }
        sent.insert((name, p.tp.partition.0), (key, entry, fetch_offset));
    }
    let request = FetchRequest::default()
        .with_replica_id(kafka_protocol::messages::BrokerId(broker.node_id))
        .with_max_wait_ms(wait_ms)
        .with_min_bytes(min_bytes)
        .with_max_bytes(max_bytes)
        .with_session_epoch(-1)
        .with_topics(topics);
    let response = conn
        .send_version(&request, FETCH_VERSION)
        .await
        .map_err(|e| Broken(e.to_string()))?;
    if let Some(error) = ResponseError::try_from_code(response.error_code) {
        return Err(Broken(format!("fetch failed: {error:?}")));
    }
    for topic in response.responses {
        for data in topic.partitions {
            let Some((key, entry, fetch_offset)) =
                sent.remove(&(topic.topic.0.to_string(), data.partition_index))
            else {
                continue;
            };
            match ResponseError::try_from_code(data.error_code) {
                None => apply_fetched(partitions, key, &entry, fetch_offset, &data, backoff),
                Some(ResponseError::OffsetOutOfRange) => {
                    out_of_range(broker, conn, partitions, key, &entry, fetch_offset, backoff)
                        .await?
                }
                Some(error) => {
                    tracing::debug!(partition = %entry.partition.tp, ?error, "fetch refused");
                    delay(partitions, key, entry.epoch, backoff);
                }
            }
        }
    }
    Ok(())
}

/// Appends a partition's fetched batches and takes the leader's high
/// watermark and log start offset.
fn apply_fetched(
    partitions: &Entries,
    key: Key,
    entry: &Entry,
    fetch_offset: Offset,
    data: &kafka_protocol::messages::fetch_response::PartitionData,
    backoff: Duration,
) {
    let p = &entry.partition;
    {
        let mut log = p.log.lock();
        if p.is_leader() || p.leader_epoch() != entry.epoch.0 {
            return;
        }
        if log.log_end_offset() != fetch_offset {
            // Truncated or appended meanwhile (a stale response).
            return;
        }
        let records = data.records.as_deref().unwrap_or(&[]);
        if !records.is_empty() {
            if let Err(e) = log.append_as_follower(records) {
                tracing::warn!(partition = %p.tp, error = %e, "cannot append fetched records");
                drop(log);
                update(partitions, key, entry.epoch, |e| {
                    e.truncate = true;
                    e.retry_at = Some(Instant::now() + backoff);
                });
                return;
            }
        }
        let leader_start = data.log_start_offset;
        if leader_start > log.log_start_offset().0 {
            let result = if leader_start > log.log_end_offset().0 {
                log.truncate_fully_and_start_at(Offset(leader_start))
            } else {
                log.delete_records_before(Offset(leader_start)).map(|_| ())
            };
            if let Err(e) = result {
                tracing::warn!(partition = %p.tp, error = %e, "cannot follow the leader's log start offset");
            }
        }
    }
    p.set_follower_high_watermark(data.high_watermark);
}

/// The leader has no offset `fetch_offset`: below its log start, the
/// follower starts over at the leader's log start; otherwise it checks for
/// divergence again.
async fn out_of_range(
    broker: &Broker,
    conn: &Connection,
    partitions: &Entries,
    key: Key,
    entry: &Entry,
    fetch_offset: Offset,
    backoff: Duration,
) -> Result<(), Broken> {
    let p = &entry.partition;
    let request = ListOffsetsRequest::default()
        .with_replica_id(kafka_protocol::messages::BrokerId(broker.node_id))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(wire_name(p))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(p.tp.partition.0)
                .with_current_leader_epoch(entry.epoch.0)
                .with_timestamp(-2)])]);
    let response = conn
        .send_version(&request, LIST_OFFSETS_VERSION)
        .await
        .map_err(|e| Broken(e.to_string()))?;
    let answer = response
        .topics
        .first()
        .and_then(|t| t.partitions.first())
        .filter(|a| a.error_code == 0)
        .map(|a| a.offset);
    let Some(leader_start) = answer else {
        delay(partitions, key, entry.epoch, backoff);
        return Ok(());
    };
    if fetch_offset.0 < leader_start {
        let mut log = p.log.lock();
        if p.is_leader() || p.leader_epoch() != entry.epoch.0 {
            return Ok(());
        }
        tracing::info!(partition = %p.tp, from = fetch_offset.0, to = leader_start, "behind the leader's log start: starting over there");
        if let Err(e) = log.truncate_fully_and_start_at(Offset(leader_start)) {
            tracing::error!(partition = %p.tp, error = %e, "cannot restart the log");
            drop(log);
            delay(partitions, key, entry.epoch, backoff);
        }
    } else {
        update(partitions, key, entry.epoch, |e| e.truncate = true);
    }
    Ok(())
}
