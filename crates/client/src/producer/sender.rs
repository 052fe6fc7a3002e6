//! The sender: one task that drains ready batches and groups them into one
//! ProduceRequest per leader, and one task per broker that encodes and writes
//! those requests in drain order, pipelining up to
//! `max.in.flight.requests.per.connection` of them; and the handling of each
//! partition's answer (success, retry, or failure).

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::produce_response::PartitionProduceResponse;
use kafka_protocol::messages::{ProduceRequest, ProduceResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use runnel_protocol::batch::{set_producer_fields, BatchFields};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};

use super::accumulator::Batch;
use super::config::Acks;
use super::record::RecordMetadata;
use super::Shared;
use crate::connection::Connection;
use crate::error::{Error, Result};

/// Produce v13 names topics by id only; v12 and below by name, which every
/// broker we talk to knows.
const PRODUCE_VERSION_MAX: i16 = 12;

/// Runs until the producer is closed (or dropped) and every record completed.
pub(crate) async fn run(shared: Arc<Shared>) {
    // Dropped when this returns, which ends the broker tasks.
    let mut brokers: HashMap<i32, mpsc::UnboundedSender<Work>> = HashMap::new();
    loop {
        let now = Instant::now();
        let (expired, work, next, missing_leader, idle) = {
            let mut acc = shared.accumulator.lock();
            let expired = acc.expire(now, shared.config.delivery_timeout);
            let force = shared.blocked.load(Ordering::Acquire) > 0;
            let (ready, next) = acc.ready(now, shared.config.linger, force);
            let metadata = shared.cluster.metadata();
            let mut by_leader: BTreeMap<i32, Vec<_>> = BTreeMap::new();
            let mut missing_leader = false;
            for tp in ready {
                match metadata.leader(&tp.topic, tp.partition) {
                    Some(leader) => by_leader.entry(leader).or_default().push(tp),
                    None => missing_leader = true,
                }
            }
            let mut work = Vec::new();
            for (leader, partitions) in by_leader {
                let Ok(permit) = shared.broker_permits(leader).try_acquire_owned() else {
                    continue;
                };
                let mut batches = Vec::new();
                let mut total = 0;
                for tp in partitions {
                    let size = acc.front_size(&tp).unwrap_or(0);
                    if total > 0 && total + size > shared.config.max_request_size {
                        break;
                    }
                    if let Some(batch) = acc.drain(&tp, shared.idempotent) {
                        total += size;
                        batches.push(batch);
                    }
                }
                work.push((leader, permit, batches));
            }
            (expired, work, next, missing_leader, acc.is_idle())
        };
        for batch in expired {
            let error = Error::Timeout(format!(
                "{} record(s) for {} expired after delivery.timeout.ms ({:?})",
                batch.count(),
                batch.tp,
                shared.config.delivery_timeout
            ));
            fail(&shared, batch, error, false);
        }
        if missing_leader || shared.cluster.metadata_is_stale() {
            refresh_metadata(&shared);
        }
        for (leader, permit, batches) in work {
            let tx = brokers
                .entry(leader)
                .or_insert_with(|| spawn_broker_task(shared.clone(), leader));
            if let Err(mpsc::error::SendError(work)) = tx.send((permit, batches)) {
                // The broker task ended (it panicked): start another one.
                let tx = spawn_broker_task(shared.clone(), leader);
                let _ = tx.send(work);
                brokers.insert(leader, tx);
            }
        }
        if idle && shared.accumulator.lock().closing {
            shared.done.notify_waiters();
            return;
        }
        let fallback = now
            + shared
                .cluster
                .config()
                .retry_backoff
                .max(Duration::from_millis(10));
        let wake_at = if missing_leader {
            fallback
        } else {
            next.unwrap_or(now + Duration::from_secs(1))
        };
        tokio::select! {
            _ = shared.wake.notified() => {}
            _ = tokio::time::sleep_until(wake_at.into()) => {}
        }
    }
}

/// Refreshes the metadata of the topics being produced to, at most once per
/// `retry.backoff.ms`, in the background.
pub(crate) fn refresh_metadata(shared: &Arc<Shared>) {
    if shared.refreshing.swap(true, Ordering::AcqRel) {
        return;
    }
    let shared = shared.clone();
    tokio::spawn(async move {
        let topics = shared.accumulator.lock().topics();
        if let Err(e) = shared.cluster.refresh_metadata(&topics).await {
            tracing::debug!(error = %e, "producer metadata refresh failed");
        }
        tokio::time::sleep(shared.cluster.config().retry_backoff).await;
        shared.refreshing.store(false, Ordering::Release);
        shared.wake.notify_one();
    });
}

/// One request's batches and its in-flight permit.
type Work = (OwnedSemaphorePermit, Vec<Batch>);

/// The task that writes the requests for broker `leader`, one after the other.
fn spawn_broker_task(shared: Arc<Shared>, leader: i32) -> mpsc::UnboundedSender<Work> {
    let (tx, mut rx) = mpsc::unbounded_channel::<Work>();
    tokio::spawn(async move {
        while let Some((permit, batches)) = rx.recv().await {
            send_request(&shared, leader, permit, batches).await;
        }
    });
    tx
}

/// Encodes and writes one request, then settles its batches when the answer
/// comes (in a task of its own, so that the next request is written meanwhile).
async fn send_request(
    shared: &Arc<Shared>,
    leader: i32,
    permit: OwnedSemaphorePermit,
    mut batches: Vec<Batch>,
) {
    let mut encoded = Vec::with_capacity(batches.len());
    let mut kept = Vec::with_capacity(batches.len());
    for mut batch in batches.drain(..) {
        match encode(shared, &mut batch) {
            Ok(bytes) => {
                encoded.push((batch.tp.clone(), bytes));
                kept.push(batch);
            }
            Err(e) => fail(shared, batch, e, true),
        }
    }
    if kept.is_empty() {
        drop(permit);
        shared.wake.notify_one();
        return;
    }
    let connection = match shared.cluster.broker(leader).await {
        Ok(connection) => connection,
        Err(e) => return complete_request(shared, leader, permit, kept, Err(e)),
    };
    // The first poll queues the request on the connection's writer (a FIFO
    // lock), so requests go out in the order their batches were drained: with
    // several in flight, a partition's batches must not overtake each other.
    // `unconstrained`: with its cooperative budget spent, tokio would answer that
    // poll with Pending before queueing, and a later request could go first.
    let mut exchange = Box::pin(tokio::task::unconstrained(exchange(
        shared.clone(),
        connection,
        encoded,
    )));
    let first = std::future::poll_fn(|cx| {
        std::task::Poll::Ready(match exchange.as_mut().poll(cx) {
            std::task::Poll::Ready(outcome) => Some(outcome),
            std::task::Poll::Pending => None,
        })
    })
    .await;
    match first {
        Some(outcome) => complete_request(shared, leader, permit, kept, outcome),
        None => {
            let shared = shared.clone();
            tokio::spawn(async move {
                let outcome = exchange.await;
                complete_request(&shared, leader, permit, kept, outcome);
            });
        }
    }
}

fn complete_request(
    shared: &Arc<Shared>,
    leader: i32,
    permit: OwnedSemaphorePermit,
    kept: Vec<Batch>,
    outcome: Result<Option<ProduceResponse>>,
) {
    drop(permit);
    match outcome {
        Err(e) => {
            tracing::debug!(leader, error = %e, "produce request failed");
            if e.needs_metadata_refresh() {
                refresh_metadata(shared);
            }
            for batch in kept {
                retry_or_fail(shared, batch, e.clone());
            }
        }
        Ok(None) => {
            for batch in kept {
                succeed(shared, batch, -1, -1);
            }
        }
        Ok(Some(response)) => settle(shared, kept, response),
    }
    shared.wake.notify_one();
}

/// The batch's bytes for its current sequence: finished from its writer the
/// first time; afterwards the cached bytes, or a copy of them with the
/// producer fields rewritten if the sequence moved (see `failed_unwritten`).
fn encode(shared: &Shared, batch: &mut Batch) -> Result<Bytes> {
    let (producer_id, producer_epoch, base_sequence) = match batch.sequence {
        Some(sequence) => (shared.producer_id.0, shared.producer_id.1, sequence),
        None => (-1, -1, -1),
    };
    let encoding_error = |e| Error::Protocol(format!("encoding a batch for {}: {e}", batch.tp));
    let bytes = match (&batch.encoded, batch.writer.take()) {
        (Some((sequence, bytes)), _) if *sequence == batch.sequence => return Ok(bytes.clone()),
        (Some((_, bytes)), _) => {
            let mut moved = bytes.to_vec();
            set_producer_fields(&mut moved, producer_id, producer_epoch, base_sequence)
                .map_err(encoding_error)?;
            Bytes::from(moved)
        }
        (None, Some(writer)) => {
            let fields = BatchFields {
                producer_id,
                producer_epoch,
                base_sequence,
                compression: shared.config.compression,
                ..BatchFields::default()
            };
            Bytes::from(writer.finish(&fields).map_err(encoding_error)?)
        }
        (None, None) => {
            return Err(Error::Protocol(format!(
                "a batch for {} has neither records nor bytes",
                batch.tp
            )))
        }
    };
    batch.encoded = Some((batch.sequence, bytes.clone()));
    Ok(bytes)
}

/// Sends one ProduceRequest; `None` for `acks=0`, which has no answer.
async fn exchange(
    shared: Arc<Shared>,
    connection: Arc<Connection>,
    batches: Vec<(crate::TopicPartition, Bytes)>,
) -> Result<Option<ProduceResponse>> {
    let version = connection.version_for::<ProduceRequest>(Some(PRODUCE_VERSION_MAX))?;
    let mut topics: BTreeMap<String, Vec<PartitionProduceData>> = BTreeMap::new();
    for (tp, records) in batches {
        topics.entry(tp.topic).or_default().push(
            PartitionProduceData::default()
                .with_index(tp.partition)
                .with_records(Some(records)),
        );
    }
    let timeout_ms =
        i32::try_from(shared.cluster.config().request_timeout.as_millis()).unwrap_or(i32::MAX);
    let request = ProduceRequest::default()
        .with_acks(shared.config.acks.wire())
        .with_timeout_ms(timeout_ms)
        .with_topic_data(
            topics
                .into_iter()
                .map(|(name, partitions)| {
                    TopicProduceData::default()
                        .with_name(TopicName(StrBytes::from_string(name)))
                        .with_partition_data(partitions)
                })
                .collect(),
        );
    if shared.config.acks == Acks::None {
        connection.send_oneway(&request, version).await?;
        return Ok(None);
    }
    connection.send_version(&request, version).await.map(Some)
}

/// Settles each batch with its partition's answer.
fn settle(shared: &Arc<Shared>, batches: Vec<Batch>, response: ProduceResponse) {
    let mut answers: HashMap<(String, i32), PartitionProduceResponse> = HashMap::new();
    for topic in response.responses {
        for partition in topic.partition_responses {
            answers.insert((topic.name.0.to_string(), partition.index), partition);
        }
    }
    for batch in batches {
        let Some(answer) = answers.remove(&(batch.tp.topic.clone(), batch.tp.partition)) else {
            let error = Error::Protocol(format!(
                "the produce response has no answer for {}",
                batch.tp
            ));
            fail(shared, batch, error, false);
            continue;
        };
        settle_one(shared, batch, answer);
    }
}

fn settle_one(shared: &Arc<Shared>, batch: Batch, answer: PartitionProduceResponse) {
    let code = answer.error_code;
    let context = format!("producing to {}", batch.tp);
    let message = answer
        .error_message
        .as_ref()
        .map(|m| m.to_string())
        .or_else(|| {
            answer.record_errors.first().map(|e| {
                format!(
                    "record {}: {}",
                    e.batch_index,
                    e.batch_index_error_message
                        .as_ref()
                        .map_or("", |m| m.as_str())
                )
            })
        });
    match ResponseError::try_from_code(code) {
        None | Some(ResponseError::DuplicateSequenceNumber) => {
            succeed(shared, batch, answer.base_offset, answer.log_append_time_ms);
        }
        Some(ResponseError::OutOfOrderSequenceNumber)
            if shared.idempotent
                && batch
                    .sequence
                    .is_some_and(|s| !shared.accumulator.lock().is_next_sequence(&batch.tp, s)) =>
        {
            // An earlier batch of the partition failed and is being retried: this
            // one goes again after it.
            retry_or_fail(shared, batch, Error::broker(code, message, context.clone()));
        }
        Some(ResponseError::UnknownProducerId) => {
            let error = Error::broker(
                code,
                Some(format!(
                    "the broker lost this producer's state (its records were deleted by retention); \
                     create a new producer{}",
                    message.map(|m| format!(": {m}")).unwrap_or_default()
                )),
                context.clone(),
            );
            fail(shared, batch, error, false);
        }
        Some(_) => {
            let error = Error::broker(code, message, context.clone());
            if error.needs_metadata_refresh() {
                refresh_metadata(shared);
            }
            if error.is_retriable() {
                retry_or_fail(shared, batch, error);
            } else {
                fail(shared, batch, error, true);
            }
        }
    }
}

/// Retries `batch` after `retry.backoff.ms` unless `retries` or
/// `delivery.timeout.ms` are used up.
fn retry_or_fail(shared: &Shared, batch: Batch, error: Error) {
    let now = Instant::now();
    let backoff = shared.cluster.config().retry_backoff;
    let within_deadline = now + backoff < batch.created + shared.config.delivery_timeout;
    if batch.attempts <= shared.config.retries && within_deadline {
        tracing::debug!(tp = %batch.tp, attempts = batch.attempts, %error, "retrying a batch");
        shared.accumulator.lock().requeue(batch, now + backoff);
        return;
    }
    fail(shared, batch, error, false);
}

fn succeed(shared: &Shared, batch: Batch, base_offset: i64, log_append_time: i64) {
    shared.accumulator.lock().acknowledged(&batch);
    release(shared, batch.reserved);
    for (i, pending) in batch.pending.into_iter().enumerate() {
        pending.completion.complete(Ok(RecordMetadata {
            topic: batch.tp.topic.clone(),
            partition: batch.tp.partition,
            offset: if base_offset >= 0 {
                base_offset + i as i64
            } else {
                -1
            },
            timestamp: if log_append_time >= 0 {
                log_append_time
            } else {
                pending.timestamp
            },
        }));
    }
    shared.done.notify_waiters();
}

/// Fails every record of `batch`; `unwritten` when the broker certainly did not
/// write it, so its sequence numbers are given to the next batches.
pub(crate) fn fail(shared: &Shared, batch: Batch, error: Error, unwritten: bool) {
    {
        let mut acc = shared.accumulator.lock();
        if unwritten {
            acc.failed_unwritten(&batch);
        } else {
            acc.failed(&batch);
        }
    }
    release(shared, batch.reserved);
    for pending in batch.pending {
        pending.completion.complete(Err(error.clone()));
    }
    shared.done.notify_waiters();
}

fn release(shared: &Shared, bytes: usize) {
    if bytes > 0 {
        shared.memory.add_permits(bytes);
    }
}

/// The semaphore bounding requests in flight to one broker.
pub(crate) fn permits_for(
    map: &mut HashMap<i32, Arc<Semaphore>>,
    broker: i32,
    max: usize,
) -> Arc<Semaphore> {
    map.entry(broker)
        .or_insert_with(|| Arc::new(Semaphore::new(max)))
        .clone()
}
