//! Per-partition queues of record batches waiting to be sent, and the
//! idempotent producer's sequence bookkeeping. Sans-io: time is passed in.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;
use runnel_protocol::batch::BatchWriter;

use super::partitioner::{partition_for_key, StickyPartitions};
use super::record::{Completion, ProducerRecord};
use crate::cluster::TopicInfo;
use crate::error::{Error, Result};
use crate::types::TopicPartition;

/// Bytes of a v2 batch header.
pub(crate) const BATCH_OVERHEAD: usize = 61;

/// Records of a batch before the batch is encoded (`BatchWriter` caps it).
const MAX_BATCH_RECORDS: usize = i32::MAX as usize;

/// Buffer reserved for a new batch's records: `batch.size` up to this; larger
/// batches grow as records come (a lingering batch may stay small).
const INITIAL_BATCH_CAPACITY: usize = 64 * 1024;

/// A record waiting for its batch's answer: how to report it, and its
/// creation timestamp (for [`RecordMetadata`](super::RecordMetadata)).
#[derive(Debug)]
pub(crate) struct Pending {
    pub completion: Completion,
    pub timestamp: i64,
}

/// Records bound for one partition, sent together.
#[derive(Debug)]
pub(crate) struct Batch {
    /// Creation order across all partitions (retries are re-queued by it).
    pub id: u64,
    pub tp: TopicPartition,
    /// The records, encoded as they are appended; taken when the batch is
    /// first encoded for sending (then `encoded` holds it).
    pub writer: Option<BatchWriter>,
    /// One per record, in offset order.
    pub pending: Vec<Pending>,
    /// Encoded size, header plus records, uncompressed.
    pub size: usize,
    /// Bytes of `buffer.memory` held until the batch completes.
    pub reserved: usize,
    pub created: Instant,
    /// Times sent so far.
    pub attempts: u32,
    /// Not to be sent again before this (`retry.backoff.ms`).
    pub retry_at: Option<Instant>,
    /// No more records fit.
    pub full: bool,
    /// Base sequence (idempotent producer), assigned when first drained.
    pub sequence: Option<i32>,
    /// The encoded batch and the sequence it was encoded with.
    pub encoded: Option<(Option<i32>, Bytes)>,
}

impl Batch {
    /// Records in the batch.
    pub(crate) fn count(&self) -> i32 {
        self.pending.len() as i32
    }
}

/// Kafka's sequence arithmetic: sequences wrap from `i32::MAX` to 0.
pub(crate) fn sequence_add(sequence: i32, n: i32) -> i32 {
    ((i64::from(sequence) + i64::from(n)).rem_euclid(i64::from(i32::MAX) + 1)) as i32
}

/// Whether sequence `a` comes after `b` in the wrapping sequence space (less
/// than a quarter of the space ahead).
pub(crate) fn is_after(a: i32, b: i32) -> bool {
    let ahead = (i64::from(a) - i64::from(b)).rem_euclid(i64::from(i32::MAX) + 1);
    ahead > 0 && ahead < 1 << 29
}

#[derive(Debug)]
struct PartitionQueue {
    batches: VecDeque<Batch>,
    /// Next base sequence to assign.
    next_sequence: i32,
    /// Last sequence the broker acknowledged (-1: none).
    last_acked: i32,
    /// Base sequences of this partition's batches in flight, by batch id.
    in_flight: HashMap<u64, i32>,
}

impl Default for PartitionQueue {
    fn default() -> Self {
        PartitionQueue {
            batches: VecDeque::new(),
            next_sequence: 0,
            last_acked: -1,
            in_flight: HashMap::new(),
        }
    }
}

impl PartitionQueue {
    /// Whether `record` starts a new batch: the last one is closed, or the
    /// record's exact encoded size does not fit `batch_size` (a first record
    /// always fits).
    fn needs_new_batch(&self, record: &Append, batch_size: usize) -> bool {
        let Some(last) = self.batches.back() else {
            return true;
        };
        let Some(writer) = last.writer.as_ref() else {
            return true;
        };
        last.full
            || last.attempts > 0
            || last.sequence.is_some()
            || writer.count() >= MAX_BATCH_RECORDS
            // `record.size` bounds the exact size: computed only near the limit.
            || (last.size + record.size > batch_size
                && last.size + record.encoded_len(writer) > batch_size)
    }
}

/// A new record, placed by [`Accumulator::append`].
#[derive(Debug)]
pub(crate) struct Append {
    /// The record; its `timestamp` is ignored (see `timestamp`).
    pub record: ProducerRecord,
    /// The record's creation timestamp (its own, or the time of `send`).
    pub timestamp: i64,
    /// Bytes of `buffer.memory` taken for the record.
    pub size: usize,
    pub completion: Completion,
}

impl Append {
    /// The bytes the record adds to the batch `writer` is writing.
    fn encoded_len(&self, writer: &BatchWriter) -> usize {
        let r = &self.record;
        writer.record_len(
            self.timestamp,
            r.key.as_deref(),
            r.value.as_deref(),
            header_slices(r),
        )
    }

    /// Encodes the record at the end of `writer`; returns the bytes added.
    fn write(&self, writer: &mut BatchWriter) -> Result<usize> {
        let r = &self.record;
        writer
            .append(
                self.timestamp,
                r.key.as_deref(),
                r.value.as_deref(),
                header_slices(r),
            )
            .map_err(|e| Error::InvalidArgument(format!("cannot add a record to a batch: {e}")))
    }
}

/// A record's headers as the batch writer takes them.
fn header_slices(
    record: &ProducerRecord,
) -> impl Iterator<Item = (&[u8], Option<&[u8]>)> + Clone + '_ {
    record
        .headers
        .iter()
        .map(|h| (h.key.as_bytes(), h.value.as_deref()))
}

/// What an append changed, so the sender is woken only when it matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Appended {
    pub partition: i32,
    /// A batch was started (a new linger deadline).
    pub new_batch: bool,
    /// A batch is full (ready now).
    pub full: bool,
}

/// Every partition's queue.
#[derive(Debug, Default)]
pub(crate) struct Accumulator {
    queues: HashMap<TopicPartition, PartitionQueue>,
    sticky: StickyPartitions,
    next_id: u64,
    /// Records sent and not yet completed.
    pub incomplete: usize,
    /// Callers inside `flush`: every batch is ready.
    pub flushing: usize,
    /// `close` was called: every batch is ready, no new records.
    pub closing: bool,
}

impl Accumulator {
    /// Encodes a record into its partition's last batch, or a new batch
    /// (created at `now()`, which is called only then). Fails only if the
    /// record cannot be encoded; nothing changed then.
    pub(crate) fn append(
        &mut self,
        mut record: Append,
        topic: &TopicInfo,
        ignore_keys: bool,
        batch_size: usize,
        now: impl FnOnce() -> Instant,
    ) -> Result<Appended> {
        let partitions = topic.partitions.len() as i32;
        // The record's topic name becomes the key; looked up before it is
        // cloned, which only a new partition queue needs.
        let mut tp = TopicPartition::new(std::mem::take(&mut record.record.topic), 0);
        tp.partition = match (record.record.partition, &record.record.key) {
            (Some(p), _) => p,
            (None, Some(key)) if !ignore_keys => partition_for_key(key, partitions),
            _ => self.sticky_partition(&mut tp, topic, &record, batch_size),
        };
        let partition = tp.partition;
        // One hash lookup; the key is cloned only for a new queue or batch.
        let (queue, new_batch_tp) = match self.queues.entry(tp) {
            Entry::Occupied(entry) => {
                let tp = entry
                    .get()
                    .needs_new_batch(&record, batch_size)
                    .then(|| entry.key().clone());
                (entry.into_mut(), tp)
            }
            Entry::Vacant(entry) => {
                let tp = entry.key().clone();
                (entry.insert(PartitionQueue::default()), Some(tp))
            }
        };
        let new_batch = new_batch_tp.is_some();
        if let Some(tp) = new_batch_tp {
            let id = self.next_id;
            self.next_id += 1;
            let capacity = batch_size.min(INITIAL_BATCH_CAPACITY);
            queue.batches.push_back(Batch {
                id,
                tp,
                writer: Some(BatchWriter::with_capacity(capacity)),
                pending: Vec::new(),
                size: BATCH_OVERHEAD,
                reserved: 0,
                created: now(),
                attempts: 0,
                retry_at: None,
                full: false,
                sequence: None,
                encoded: None,
            });
        }
        let Some(batch) = queue.batches.back_mut() else {
            unreachable!("a batch was just ensured");
        };
        let Some(writer) = batch.writer.as_mut() else {
            unreachable!("the last batch is open (needs_new_batch)");
        };
        let written = record.write(writer);
        let written = match written {
            Ok(written) => written,
            Err(e) => {
                if batch.pending.is_empty() {
                    queue.batches.pop_back();
                }
                return Err(e);
            }
        };
        batch.pending.push(Pending {
            completion: record.completion,
            timestamp: record.timestamp,
        });
        batch.size += written;
        batch.reserved += record.size;
        batch.full = batch.size >= batch_size;
        self.incomplete += 1;
        Ok(Appended {
            partition,
            new_batch,
            full: batch.full,
        })
    }

    /// The sticky partition of `tp.topic` for `record`; `tp` is scratch space
    /// (its partition is overwritten).
    fn sticky_partition(
        &mut self,
        tp: &mut TopicPartition,
        topic: &TopicInfo,
        record: &Append,
        batch_size: usize,
    ) -> i32 {
        let partitions = topic.partitions.len() as i32;
        let available = || -> Vec<i32> {
            topic
                .partitions
                .iter()
                .filter(|p| p.leader >= 0)
                .map(|p| p.partition)
                .collect()
        };
        let (mut partition, used) = match self.sticky.known(&topic.name, partitions) {
            Some(known) => known,
            None => self.sticky.current(&topic.name, partitions, &available()),
        };
        tp.partition = partition;
        let needs_new = self
            .queues
            .get(tp)
            .is_none_or(|q| q.needs_new_batch(record, batch_size));
        if needs_new && used {
            partition = self
                .sticky
                .next(&topic.name, partition, partitions, &available());
        }
        if needs_new {
            self.sticky.mark_used(&topic.name);
        }
        partition
    }

    /// Partitions whose first batch may be sent now, and the earliest time another
    /// one will be (a linger or backoff deadline). `force` makes lingering batches
    /// ready (flush, close, or `send` waiting for memory).
    pub(crate) fn ready(
        &self,
        now: Instant,
        linger: Duration,
        force: bool,
    ) -> (Vec<TopicPartition>, Option<Instant>) {
        let force = force || self.flushing > 0 || self.closing;
        let mut ready = Vec::new();
        let mut next: Option<Instant> = None;
        for (tp, queue) in &self.queues {
            let Some(front) = queue.batches.front() else {
                continue;
            };
            let at = match front.retry_at {
                Some(at) if front.attempts > 0 => at,
                _ if front.full || queue.batches.len() > 1 || force => now,
                _ => front.created + linger,
            };
            if at <= now {
                ready.push(tp.clone());
            } else {
                next = Some(next.map_or(at, |n| n.min(at)));
            }
        }
        // Oldest batches first, so one busy partition does not starve the others.
        ready.sort_by_key(|tp| self.queues[tp].batches.front().map_or(0, |b| b.id));
        (ready, next)
    }

    /// The size of the first batch of `tp`.
    pub(crate) fn front_size(&self, tp: &TopicPartition) -> Option<usize> {
        self.queues.get(tp)?.batches.front().map(|b| b.size)
    }

    /// Takes the first batch of `tp` to send it, assigning its sequence if the
    /// producer is idempotent.
    pub(crate) fn drain(&mut self, tp: &TopicPartition, idempotent: bool) -> Option<Batch> {
        let queue = self.queues.get_mut(tp)?;
        let mut batch = queue.batches.pop_front()?;
        if idempotent {
            let count = batch.count();
            let sequence = *batch.sequence.get_or_insert_with(|| {
                let base = queue.next_sequence;
                queue.next_sequence = sequence_add(base, count);
                base
            });
            queue.in_flight.insert(batch.id, sequence);
        }
        batch.attempts += 1;
        Some(batch)
    }

    /// Puts a batch that failed with a retriable error back in front of its
    /// partition's queue, in creation order among the other retries.
    pub(crate) fn requeue(&mut self, mut batch: Batch, retry_at: Instant) {
        let queue = self.queues.entry(batch.tp.clone()).or_default();
        if let Some(sequence) = queue.in_flight.remove(&batch.id) {
            // The sequence may have moved down while the batch was in flight
            // (see `fail_unwritten`).
            batch.sequence = Some(sequence);
        }
        batch.retry_at = Some(retry_at);
        let at = queue
            .batches
            .iter()
            .position(|b| b.attempts == 0 || b.id > batch.id)
            .unwrap_or(queue.batches.len());
        queue.batches.insert(at, batch);
    }

    /// The broker acknowledged `batch`.
    pub(crate) fn acknowledged(&mut self, batch: &Batch) {
        if let Some(queue) = self.queues.get_mut(&batch.tp) {
            if let Some(sequence) = queue.in_flight.remove(&batch.id) {
                // Answers to pipelined requests may be settled out of order: keep the highest.
                let last = sequence_add(sequence, batch.count() - 1);
                if queue.last_acked < 0 || is_after(last, queue.last_acked) {
                    queue.last_acked = last;
                }
            }
        }
        self.incomplete -= batch.pending.len();
    }

    /// Whether `sequence` is the one the broker expects next on `tp`: an
    /// OUT_OF_ORDER_SEQUENCE for any other means an earlier batch is being retried.
    pub(crate) fn is_next_sequence(&self, tp: &TopicPartition, sequence: i32) -> bool {
        self.queues
            .get(tp)
            .is_some_and(|q| sequence_add(q.last_acked, 1) == sequence)
    }

    /// `batch` failed for good and may have been written (delivery timeout):
    /// its sequences are not reused.
    pub(crate) fn failed(&mut self, batch: &Batch) {
        if let Some(queue) = self.queues.get_mut(&batch.tp) {
            queue.in_flight.remove(&batch.id);
        }
        self.incomplete -= batch.pending.len();
    }

    /// `batch` failed for good and the broker did not write it (e.g.
    /// RECORD_TOO_LARGE): the later batches of its partition move down by its
    /// record count, so the broker sees no gap (what the Java client's
    /// `adjustSequencesDueToFailedBatch` does).
    pub(crate) fn failed_unwritten(&mut self, batch: &Batch) {
        self.failed(batch);
        let (Some(queue), Some(failed)) = (self.queues.get_mut(&batch.tp), batch.sequence) else {
            return;
        };
        let count = batch.count();
        let after = |s: i32| is_after(s, failed);
        queue.next_sequence = sequence_add(queue.next_sequence, -count);
        for sequence in queue.in_flight.values_mut() {
            if after(*sequence) {
                *sequence = sequence_add(*sequence, -count);
            }
        }
        for b in &mut queue.batches {
            if let Some(s) = b.sequence.filter(|s| after(*s)) {
                b.sequence = Some(sequence_add(s, -count));
            }
        }
    }

    /// Removes queued (not in-flight) batches older than `delivery.timeout.ms`.
    pub(crate) fn expire(&mut self, now: Instant, delivery_timeout: Duration) -> Vec<Batch> {
        let mut expired = Vec::new();
        for queue in self.queues.values_mut() {
            while queue
                .batches
                .front()
                .is_some_and(|b| now.duration_since(b.created) >= delivery_timeout)
            {
                if let Some(b) = queue.batches.pop_front() {
                    expired.push(b);
                }
            }
        }
        expired
    }

    /// Whether no batch is queued or in flight.
    pub(crate) fn is_idle(&self) -> bool {
        self.incomplete == 0
    }

    /// Topics with queued batches (for metadata refreshes).
    pub(crate) fn topics(&self) -> Vec<String> {
        let mut topics: Vec<String> = self
            .queues
            .iter()
            .filter(|(_, q)| !q.batches.is_empty() || !q.in_flight.is_empty())
            .map(|(tp, _)| tp.topic.clone())
            .collect();
        topics.sort();
        topics.dedup();
        topics
    }
}

#[cfg(test)]
#[path = "accumulator_tests.rs"]
mod tests;
