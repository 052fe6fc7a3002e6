//! The fetcher: a background task that resolves starting positions (committed
//! offsets, `auto.offset.reset`), keeps one Fetch in flight per leader broker covering
//! all its assigned, unpaused partitions whose prefetch buffer has room, and moves the
//! decoded records into the partitions' buffers. Full fetch requests (no KIP-227
//! session): simple, and correct with every broker.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{FetchRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use tokio::task::JoinSet;

use crate::consumer::config::OffsetReset;
use crate::consumer::decode::{self, Aborted, Decoded};
use crate::consumer::offsets::{self, EARLIEST, LATEST};
use crate::consumer::state::{Inner, Phase};
use crate::error::{Error, Result};
use crate::types::TopicPartition;

/// Fetch v13+ names topics by id only; v12 is the newest that names them, and every
/// broker since Kafka 2.7 speaks it.
const MAX_FETCH_VERSION: i16 = 12;

/// One partition of an in-flight Fetch.
#[derive(Debug, Clone)]
struct Requested {
    tp: TopicPartition,
    topic: Arc<str>,
    fetch_offset: i64,
    epoch: u64,
}

/// What one partition's answer came to.
#[derive(Debug)]
enum Outcome {
    Records(Decoded),
    Error(Error),
}

/// A finished Fetch.
#[derive(Debug)]
struct Finished {
    broker: i32,
    requested: Vec<Requested>,
    result: Result<Vec<(TopicPartition, Outcome)>>,
}

/// Runs until the consumer closes.
pub(crate) async fn run(inner: Arc<Inner>) {
    let mut in_flight: JoinSet<Finished> = JoinSet::new();
    let mut busy: HashSet<i32> = HashSet::new();
    let backoff = inner.config.client.retry_backoff;
    loop {
        let notified = inner.wake_fetcher.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if inner.state.lock().closed {
            break;
        }
        let mut retry_soon = resolve_positions(&inner).await;
        if std::mem::take(&mut inner.state.lock().metadata_stale) {
            let topics = assigned_topics(&inner);
            if let Err(e) = inner.cluster.refresh_metadata(&topics).await {
                tracing::debug!(error = %e, "metadata refresh failed");
                retry_soon = true;
            }
        }
        retry_soon |= start_fetches(&inner, &mut in_flight, &mut busy);
        tokio::select! {
            Some(joined) = in_flight.join_next(), if !in_flight.is_empty() => {
                match joined {
                    Ok(finished) => {
                        busy.remove(&finished.broker);
                        apply(&inner, finished);
                    }
                    Err(e) => tracing::warn!(error = %e, "a fetch task failed"),
                }
            }
            _ = &mut notified => {}
            _ = tokio::time::sleep(backoff), if retry_soon => {}
        }
    }
    in_flight.abort_all();
}

fn assigned_topics(inner: &Inner) -> Vec<String> {
    let state = inner.state.lock();
    let mut topics: Vec<String> = state.partitions.keys().map(|tp| tp.topic.clone()).collect();
    topics.dedup();
    topics
}

/// Looks up committed offsets and resets for partitions waiting on them. Returns
/// whether some are still waiting (and should be retried after a back-off).
async fn resolve_positions(inner: &Inner) -> bool {
    let (committed, resets) = {
        let state = inner.state.lock();
        let mut committed = Vec::new();
        let mut resets = Vec::new();
        for (tp, p) in &state.partitions {
            match p.phase {
                Phase::AwaitCommitted => committed.push((tp.clone(), p.epoch)),
                Phase::AwaitReset(reset) => resets.push((tp.clone(), p.epoch, reset)),
                _ => {}
            }
        }
        (committed, resets)
    };
    let mut waiting = false;
    if !committed.is_empty() {
        waiting |= resolve_committed(inner, committed).await;
    }
    if !resets.is_empty() {
        waiting |= resolve_resets(inner, resets).await;
    }
    waiting
}

async fn resolve_committed(inner: &Inner, partitions: Vec<(TopicPartition, u64)>) -> bool {
    let default_reset = inner.config.auto_offset_reset;
    let Some(group) = inner.config.group_id.as_deref() else {
        let mut state = inner.state.lock();
        for (tp, epoch) in partitions {
            if let Some(p) = state.partitions.get_mut(&tp).filter(|p| p.epoch == epoch) {
                p.restart(Phase::AwaitReset(default_reset));
            }
        }
        return true;
    };
    let tps: Vec<TopicPartition> = partitions.iter().map(|(tp, _)| tp.clone()).collect();
    match offsets::fetch_committed(&inner.cluster, group, &tps).await {
        Ok(found) => {
            let mut state = inner.state.lock();
            for (tp, epoch) in partitions {
                let Some(p) = state.partitions.get_mut(&tp).filter(|p| p.epoch == epoch) else {
                    continue;
                };
                match found.get(&tp).copied().flatten() {
                    Some((offset, leader_epoch)) => p.seek(offset, leader_epoch),
                    None => p.restart(Phase::AwaitReset(default_reset)),
                }
            }
            drop(state);
            inner.wake_fetcher.notify_one();
            inner.notify_data();
            false
        }
        Err(e) if e.is_retriable() => {
            tracing::debug!(error = %e, "committed offsets lookup failed; retrying");
            true
        }
        Err(e) => {
            fail(inner, &partitions, e);
            false
        }
    }
}

async fn resolve_resets(
    inner: &Inner,
    partitions: Vec<(TopicPartition, u64, OffsetReset)>,
) -> bool {
    let mut lookups = BTreeMap::new();
    let mut hopeless = Vec::new();
    for (tp, epoch, reset) in &partitions {
        match reset {
            OffsetReset::Earliest => {
                lookups.insert(tp.clone(), EARLIEST);
            }
            OffsetReset::Latest => {
                lookups.insert(tp.clone(), LATEST);
            }
            OffsetReset::None => hopeless.push((tp.clone(), *epoch)),
        }
    }
    for (tp, epoch) in hopeless {
        let error = Error::Config(format!(
            "no valid offset for {tp} and auto.offset.reset is none; seek to continue"
        ));
        fail(inner, &[(tp, epoch)], error);
    }
    if lookups.is_empty() {
        return false;
    }
    match offsets::list_offsets(&inner.cluster, &lookups, inner.config.isolation_level).await {
        Ok(found) => {
            let mut state = inner.state.lock();
            for (tp, epoch, _) in partitions {
                let Some(p) = state.partitions.get_mut(&tp).filter(|p| p.epoch == epoch) else {
                    continue;
                };
                if let Some(Some(listed)) = found.get(&tp) {
                    p.seek(listed.offset, None);
                }
            }
            drop(state);
            inner.wake_fetcher.notify_one();
            inner.notify_data();
            false
        }
        // A topic or partition not created yet is waited for, as the Java client does.
        Err(e) if e.is_retriable() || e.needs_metadata_refresh() || unknown(&e) => {
            tracing::debug!(error = %e, "offset lookup failed; retrying");
            true
        }
        Err(e) => {
            let tps: Vec<(TopicPartition, u64)> =
                partitions.into_iter().map(|(tp, e, _)| (tp, e)).collect();
            fail(inner, &tps, e);
            false
        }
    }
}

fn unknown(error: &Error) -> bool {
    matches!(
        error,
        Error::UnknownTopic(_) | Error::UnknownPartition { .. }
    )
}

/// Stops `partitions` and hands `error` to the user.
fn fail(inner: &Inner, partitions: &[(TopicPartition, u64)], error: Error) {
    let mut state = inner.state.lock();
    for (tp, epoch) in partitions {
        if let Some(p) = state.partitions.get_mut(tp).filter(|p| p.epoch == *epoch) {
            p.restart(Phase::Failed);
        }
    }
    state.errors.push_back(error);
    drop(state);
    inner.notify_data();
}

/// Sends a Fetch to every leader with fetchable partitions and none in flight.
/// Returns whether some partition has no known leader or is backing off after an
/// error (so the loop wakes again after `retry.backoff.ms`).
fn start_fetches(
    inner: &Arc<Inner>,
    in_flight: &mut JoinSet<Finished>,
    busy: &mut HashSet<i32>,
) -> bool {
    let metadata = inner.cluster.metadata();
    let per_partition = usize::try_from(inner.config.max_partition_fetch_bytes).unwrap_or(1 << 20);
    let total_cap = usize::try_from(inner.config.fetch_max_bytes)
        .unwrap_or(50 << 20)
        .max(per_partition);
    let mut by_leader: HashMap<i32, Vec<Requested>> = HashMap::new();
    let mut leaderless = false;
    let mut backing_off = false;
    {
        let mut state = inner.state.lock();
        let buffered: usize = state.partitions.values().map(|p| p.buffered_bytes).sum();
        if buffered >= total_cap {
            return false;
        }
        let now = Instant::now();
        for (tp, p) in state.partitions.iter_mut() {
            if p.phase != Phase::Fetching
                || p.paused
                || p.in_flight
                || p.buffered_bytes >= per_partition
            {
                continue;
            }
            if p.retry_at.is_some_and(|at| at > now) {
                backing_off = true;
                continue;
            }
            let Some(leader) = metadata.leader(&tp.topic, tp.partition) else {
                leaderless = true;
                continue;
            };
            if busy.contains(&leader) {
                continue;
            }
            p.in_flight = true;
            by_leader.entry(leader).or_default().push(Requested {
                tp: tp.clone(),
                topic: Arc::from(tp.topic.as_str()),
                fetch_offset: p.fetch_offset,
                epoch: p.epoch,
            });
        }
        if leaderless {
            state.metadata_stale = true;
        }
    }
    for (broker, requested) in by_leader {
        busy.insert(broker);
        let inner = inner.clone();
        in_flight.spawn(async move {
            let result = fetch(&inner, broker, &requested).await;
            Finished {
                broker,
                requested,
                result,
            }
        });
    }
    leaderless || backing_off
}

/// Sends one Fetch to `broker` and decodes the answer.
async fn fetch(
    inner: &Inner,
    broker: i32,
    requested: &[Requested],
) -> Result<Vec<(TopicPartition, Outcome)>> {
    let config = &inner.config;
    let connection = inner.cluster.broker(broker).await?;
    let version = connection.version_for::<FetchRequest>(Some(MAX_FETCH_VERSION))?;
    let mut topics: Vec<FetchTopic> = Vec::new();
    for r in requested {
        let partition = FetchPartition::default()
            .with_partition(r.tp.partition)
            .with_fetch_offset(r.fetch_offset)
            .with_partition_max_bytes(config.max_partition_fetch_bytes);
        match topics.last_mut() {
            Some(t) if t.topic.0.as_str() == r.tp.topic => t.partitions.push(partition),
            _ => topics.push(
                FetchTopic::default()
                    .with_topic(TopicName(StrBytes::from_string(r.tp.topic.clone())))
                    .with_partitions(vec![partition]),
            ),
        }
    }
    let request = FetchRequest::default()
        .with_max_wait_ms(i32::try_from(config.fetch_max_wait.as_millis()).unwrap_or(i32::MAX))
        .with_min_bytes(config.fetch_min_bytes)
        .with_max_bytes(config.fetch_max_bytes)
        .with_isolation_level(config.isolation_level.wire())
        .with_topics(topics);
    let response = connection.send_version(&request, version).await?;
    Error::check(response.error_code, None, || {
        format!("Fetch from broker {broker}")
    })?;
    let offsets: HashMap<(&str, i32), &Requested> = requested
        .iter()
        .map(|r| ((r.tp.topic.as_str(), r.tp.partition), r))
        .collect();
    let read_committed = config.isolation_level.wire() == 1;
    let mut outcomes = Vec::new();
    for topic in &response.responses {
        for p in &topic.partitions {
            let Some(r) = offsets.get(&(topic.topic.0.as_str(), p.partition_index)) else {
                continue;
            };
            let outcome = match Error::check(p.error_code, None, || format!("Fetch of {}", r.tp)) {
                Err(e) => Outcome::Error(e),
                Ok(()) => {
                    let aborted: Option<Vec<Aborted>> = read_committed.then(|| {
                        p.aborted_transactions
                            .iter()
                            .flatten()
                            .map(|a| Aborted {
                                producer_id: a.producer_id.0,
                                first_offset: a.first_offset,
                            })
                            .collect()
                    });
                    let empty = Bytes::new();
                    let records = p.records.as_ref().unwrap_or(&empty);
                    match decode::decode_partition(
                        &r.topic,
                        r.tp.partition,
                        records,
                        r.fetch_offset,
                        config.check_crcs,
                        aborted.as_deref(),
                    ) {
                        Ok(decoded) => Outcome::Records(decoded),
                        Err(e) => Outcome::Error(e),
                    }
                }
            };
            outcomes.push((r.tp.clone(), outcome));
        }
    }
    Ok(outcomes)
}

/// Moves a finished Fetch's records into the buffers of partitions still at the
/// offsets it asked for, and reacts to errors.
fn apply(inner: &Inner, finished: Finished) {
    let mut state = inner.state.lock();
    let retry_at = Instant::now() + inner.config.client.retry_backoff;
    let failed = finished.result.is_err();
    for r in &finished.requested {
        if let Some(p) = state.partitions.get_mut(&r.tp) {
            p.in_flight = false;
            if failed && p.epoch == r.epoch {
                p.retry_at = Some(retry_at);
            }
        }
    }
    let outcomes = match finished.result {
        Ok(outcomes) => outcomes,
        Err(e) => {
            tracing::debug!(broker = finished.broker, error = %e, "fetch failed");
            if e.is_retriable() || e.needs_metadata_refresh() {
                inner.cluster.forget_broker(finished.broker);
                state.metadata_stale = true;
            } else {
                state.errors.push_back(e);
            }
            drop(state);
            inner.notify_data();
            // Wake the loop so it refreshes metadata and retries (after its back-off).
            inner.wake_fetcher.notify_one();
            return;
        }
    };
    let epochs: HashMap<&TopicPartition, (u64, i64)> = finished
        .requested
        .iter()
        .map(|r| (&r.tp, (r.epoch, r.fetch_offset)))
        .collect();
    let mut delivered = false;
    let mut stale = false;
    for (tp, outcome) in outcomes {
        let Some(&(epoch, fetch_offset)) = epochs.get(&tp) else {
            continue;
        };
        let Some(p) = state.partitions.get_mut(&tp) else {
            continue;
        };
        if p.epoch != epoch || p.phase != Phase::Fetching || p.fetch_offset != fetch_offset {
            continue;
        }
        match outcome {
            Outcome::Records(decoded) => {
                if decoded.records.is_empty() {
                    if let Some(size) = decoded.truncated_batch {
                        if size > usize::try_from(inner.config.fetch_max_bytes).unwrap_or(0) {
                            p.restart(Phase::Failed);
                            state.errors.push_back(Error::InvalidArgument(format!(
                                "{tp}: a record batch of {size} bytes at offset {fetch_offset} \
                                 exceeds fetch.max.bytes"
                            )));
                            delivered = true;
                            continue;
                        }
                    }
                }
                p.fetch_offset = decoded.next_offset;
                p.buffered_bytes += decoded.bytes;
                delivered |= !decoded.records.is_empty();
                p.buffer.extend(decoded.records);
            }
            Outcome::Error(e) => match e.code() {
                Some(ResponseError::OffsetOutOfRange) => {
                    tracing::debug!(%tp, fetch_offset, "offset out of range");
                    match inner.config.auto_offset_reset {
                        OffsetReset::None => {
                            p.restart(Phase::Failed);
                            state.errors.push_back(e);
                            delivered = true;
                        }
                        reset => p.restart(Phase::AwaitReset(reset)),
                    }
                }
                _ if e.needs_metadata_refresh() || e.is_retriable() => {
                    tracing::debug!(%tp, error = %e, "retrying the partition's fetch");
                    p.retry_at = Some(retry_at);
                    stale = true;
                }
                _ => {
                    p.restart(Phase::Failed);
                    state.errors.push_back(e);
                    delivered = true;
                }
            },
        }
    }
    state.metadata_stale |= stale;
    drop(state);
    if delivered {
        inner.notify_data();
    }
}

/// How long `recv` callers wait between checks when nothing wakes them.
pub(crate) const IDLE_CHECK: Duration = Duration::from_millis(500);
