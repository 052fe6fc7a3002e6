//! The consumer's shared state: per assigned partition, where it stands (waiting for
//! a committed offset or a reset, fetching, failed), the position handed to the user,
//! the offset the next fetch starts at, and the records fetched but not yet returned.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::{watch, Notify};

use crate::cluster::Cluster;
use crate::consumer::config::{ConsumerConfig, OffsetReset};
use crate::consumer::member::{Generation, PollTimer};
use crate::consumer::record::ConsumerRecord;
use crate::error::Error;
use crate::types::TopicPartition;

/// How many records in a row one partition may serve before the next partition with
/// records gets its turn (Java's `max.poll.records` default).
const FAIRNESS_STREAK: usize = 500;

/// Epochs are unique across partitions and reassignments, so an answer to a request
/// made before a seek, a reset or a revoke-then-assign never matches.
static EPOCHS: AtomicU64 = AtomicU64::new(1);

fn next_epoch() -> u64 {
    EPOCHS.fetch_add(1, Ordering::Relaxed)
}

/// Where a partition's fetching stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Waiting for the group's committed offset (then `auto.offset.reset` if none).
    AwaitCommitted,
    /// Waiting for a ListOffsets lookup (earliest, latest, or fail for `none`).
    AwaitReset(OffsetReset),
    /// Fetching from `fetch_offset`.
    Fetching,
    /// Stopped after an error the user has been given; a seek restarts it.
    Failed,
}

/// One assigned partition.
#[derive(Debug)]
pub(crate) struct PartitionState {
    pub phase: Phase,
    /// The offset of the next record to hand to the user.
    pub position: i64,
    /// Leader epoch of the last record handed out, committed with the position.
    pub position_epoch: Option<i32>,
    /// The offset the next fetch asks for (position + buffered records).
    pub fetch_offset: i64,
    pub paused: bool,
    pub buffer: VecDeque<ConsumerRecord>,
    pub buffered_bytes: usize,
    /// Bumped on every seek or reset, so answers to older requests are dropped.
    pub epoch: u64,
    /// A Fetch covering this partition is in flight.
    pub in_flight: bool,
    /// After a retriable error: not fetched again before this (`retry.backoff.ms`).
    pub retry_at: Option<std::time::Instant>,
}

impl PartitionState {
    pub fn new(phase: Phase) -> PartitionState {
        PartitionState {
            phase,
            position: -1,
            position_epoch: None,
            fetch_offset: -1,
            paused: false,
            buffer: VecDeque::new(),
            buffered_bytes: 0,
            epoch: next_epoch(),
            in_flight: false,
            retry_at: None,
        }
    }

    /// Moves to `phase`, dropping anything buffered.
    pub fn restart(&mut self, phase: Phase) {
        self.phase = phase;
        self.buffer.clear();
        self.buffered_bytes = 0;
        self.epoch = next_epoch();
        self.retry_at = None;
    }

    /// Starts fetching at `offset`.
    pub fn seek(&mut self, offset: i64, epoch: Option<i32>) {
        self.restart(Phase::Fetching);
        self.position = offset;
        self.position_epoch = epoch;
        self.fetch_offset = offset;
    }

    /// The position if it is known (fetching or failed).
    pub fn known_position(&self) -> Option<i64> {
        matches!(self.phase, Phase::Fetching | Phase::Failed).then_some(self.position)
    }
}

/// Everything the consumer's tasks share.
#[derive(Debug, Default)]
pub(crate) struct State {
    pub partitions: BTreeMap<TopicPartition, PartitionState>,
    /// Errors to hand to the user on the next `recv`.
    pub errors: VecDeque<Error>,
    /// The partition served last, and how many records in a row it served.
    pub cursor: Option<(TopicPartition, usize)>,
    pub closed: bool,
    /// The fetcher should refresh metadata before its next round.
    pub metadata_stale: bool,
}

impl State {
    /// Pops the next record of an unpaused partition, serving partitions in turn.
    /// Returns the record and whether the fetcher should be woken (the partition's
    /// buffer fell below the prefetch bound).
    pub fn pop(&mut self, refill_below: usize) -> Option<(ConsumerRecord, bool)> {
        let start = match &self.cursor {
            Some((tp, streak)) if *streak < FAIRNESS_STREAK => Some(tp.clone()),
            Some((tp, _)) => self
                .partitions
                .range(tp.clone()..)
                .nth(1)
                .map(|(tp, _)| tp.clone()),
            None => None,
        };
        let candidates = match &start {
            Some(start) => self
                .partitions
                .range(start.clone()..)
                .chain(self.partitions.range(..start.clone()))
                .find(|(_, p)| !p.paused && !p.buffer.is_empty())
                .map(|(tp, _)| tp.clone()),
            None => self
                .partitions
                .iter()
                .find(|(_, p)| !p.paused && !p.buffer.is_empty())
                .map(|(tp, _)| tp.clone()),
        };
        let tp = candidates?;
        let partition = self.partitions.get_mut(&tp)?;
        let record = partition.buffer.pop_front()?;
        let before = partition.buffered_bytes;
        partition.buffered_bytes = before.saturating_sub(record_size(&record));
        partition.position = record.offset + 1;
        partition.position_epoch = record.leader_epoch.or(partition.position_epoch);
        let wake = before >= refill_below && partition.buffered_bytes < refill_below
            || partition.buffer.is_empty();
        let streak = match &self.cursor {
            Some((last, n)) if *last == tp => n + 1,
            _ => 1,
        };
        self.cursor = Some((tp, streak));
        Some((record, wake))
    }

    /// Positions of the partitions that have one, for commits.
    pub fn positions(&self) -> BTreeMap<TopicPartition, (i64, Option<i32>)> {
        self.partitions
            .iter()
            .filter_map(|(tp, p)| {
                p.known_position()
                    .map(|o| (tp.clone(), (o, p.position_epoch)))
            })
            .collect()
    }
}

/// The bytes a buffered record counts for against the prefetch bound.
pub(crate) fn record_size(record: &ConsumerRecord) -> usize {
    64 + record.key.as_ref().map_or(0, |k| k.len()) + record.value.as_ref().map_or(0, |v| v.len())
}

/// Shared by the consumer and its fetcher, rebalance and auto-commit tasks.
#[derive(Debug)]
pub(crate) struct Inner {
    pub cluster: Arc<Cluster>,
    pub config: ConsumerConfig,
    pub state: Mutex<State>,
    /// Wakes the fetcher: assignment, seek, resume, or a buffer drained.
    pub wake_fetcher: Notify,
    /// Wakes `recv`: records or an error arrived, or the consumer closed.
    pub data: Notify,
    /// The group member's identity, while subscribed.
    pub generation: Mutex<Option<watch::Receiver<Option<Generation>>>>,
    /// The application's calls for records (`max.poll.interval.ms`).
    pub polls: Arc<PollTimer>,
}

impl Inner {
    /// Wakes whoever waits in `recv`.
    pub fn notify_data(&self) {
        self.data.notify_waiters();
    }

    /// Hands an error to the user.
    pub fn push_error(&self, error: Error) {
        self.state.lock().errors.push_back(error);
        self.notify_data();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consumer::record::TimestampType;

    fn record(tp: &TopicPartition, offset: i64) -> ConsumerRecord {
        ConsumerRecord {
            topic: Arc::from(tp.topic.as_str()),
            partition: tp.partition,
            offset,
            timestamp: 0,
            timestamp_type: TimestampType::CreateTime,
            key: None,
            value: None,
            headers: Vec::new(),
            leader_epoch: Some(3),
        }
    }

    fn state_with(parts: &[(&TopicPartition, i64)]) -> State {
        let mut state = State::default();
        for (tp, n) in parts {
            let mut p = PartitionState::new(Phase::Fetching);
            p.seek(0, None);
            for o in 0..*n {
                let r = record(tp, o);
                p.buffered_bytes += record_size(&r);
                p.buffer.push_back(r);
            }
            state.partitions.insert((*tp).clone(), p);
        }
        state
    }

    #[test]
    fn pop_advances_the_position_and_skips_paused_partitions() {
        let a = TopicPartition::new("t", 0);
        let b = TopicPartition::new("t", 1);
        let mut state = state_with(&[(&a, 2), (&b, 1)]);
        state.partitions.get_mut(&a).unwrap().paused = true;
        let (r, _) = state.pop(1 << 20).unwrap();
        assert_eq!((r.partition, r.offset), (1, 0));
        assert_eq!(state.partitions[&b].position, 1);
        assert_eq!(state.partitions[&b].position_epoch, Some(3));
        assert!(state.pop(1 << 20).is_none(), "a is paused");
        state.partitions.get_mut(&a).unwrap().paused = false;
        assert_eq!(state.pop(1 << 20).unwrap().0.offset, 0);
        assert_eq!(state.positions()[&a], (1, Some(3)));
    }

    #[test]
    fn a_long_streak_yields_to_the_next_partition() {
        let a = TopicPartition::new("t", 0);
        let b = TopicPartition::new("t", 1);
        let mut state = state_with(&[(&a, FAIRNESS_STREAK as i64 + 5), (&b, 1)]);
        for _ in 0..FAIRNESS_STREAK {
            assert_eq!(state.pop(1 << 20).unwrap().0.partition, 0);
        }
        assert_eq!(state.pop(1 << 20).unwrap().0.partition, 1);
        assert_eq!(state.pop(1 << 20).unwrap().0.partition, 0);
    }
}
