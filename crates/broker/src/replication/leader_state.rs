//! What the leader of a partition knows about its followers (DESIGN §5):
//! each follower's log end offset as its fetches report it, when it was
//! last caught up, the in-sync replica set and the high watermark.
//!
//! Sans-io: every event comes in with the time, and the ISR changes the
//! leader should ask the controller for come out as values. The caller
//! sends them (AlterPartition) and reports the committed result back
//! through [`LeaderState::update_assignment`] when the metadata image
//! carries it.
//!
//! Kafka's rules, kept here:
//! - the high watermark is the smallest log end offset over the ISR (the
//!   leader's own included); while an expansion is pending the joining
//!   follower counts too (Kafka's "maximal ISR"), so the watermark never has
//!   to go back when the change commits; it never decreases;
//! - a follower is caught up at a fetch from an offset at or past the
//!   leader's log end; if it fetches from at least the log end of its
//!   previous fetch, it was caught up at that previous fetch;
//! - an ISR member not caught up for `replica.lag.time.max.ms` is dropped;
//! - a follower joins the ISR once its log end reaches both the high
//!   watermark and the start of the leader's current epoch;
//! - one AlterPartition is in flight at a time.

use std::collections::BTreeMap;

use runnel_metadata::PartitionEpoch;
use runnel_model::BrokerId;

/// Milliseconds on the caller's clock.
pub(crate) type Millis = i64;

/// How long an AlterPartition may stay unanswered before it may be sent
/// again (the controller may have lost it in a failover).
const ALTER_PARTITION_RETRY_MS: Millis = 5_000;

/// A follower's progress as the leader sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Progress {
    /// The offset the follower last fetched from: its log end. `None`
    /// until its first fetch in this leadership.
    log_end_offset: Option<i64>,
    /// When the follower was last known to have every record.
    last_caught_up_ms: Millis,
    last_fetch_ms: Millis,
    /// The leader's log end at the follower's previous fetch.
    last_fetch_leader_log_end: i64,
}

/// An ISR change for the caller to send to the controller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IsrChange {
    pub new_isr: Vec<BrokerId>,
    /// The partition epoch the change is based on.
    pub partition_epoch: PartitionEpoch,
}

/// One leadership of one partition.
#[derive(Debug, Clone)]
pub(crate) struct LeaderState {
    me: BrokerId,
    replicas: Vec<BrokerId>,
    isr: Vec<BrokerId>,
    partition_epoch: PartitionEpoch,
    /// The ISR asked for and when, until the image answers.
    pending: Option<(Vec<BrokerId>, Millis)>,
    followers: BTreeMap<BrokerId, Progress>,
    high_watermark: i64,
    /// The first offset of this leadership's epoch.
    epoch_start_offset: i64,
    lag_time_max_ms: Millis,
}

impl LeaderState {
    /// A new leadership at `now`. Followers in the ISR are given a whole
    /// `lag_time_max_ms` to show up before they are dropped.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        me: BrokerId,
        replicas: Vec<BrokerId>,
        isr: Vec<BrokerId>,
        partition_epoch: PartitionEpoch,
        high_watermark: i64,
        epoch_start_offset: i64,
        lag_time_max_ms: Millis,
        now: Millis,
    ) -> LeaderState {
        let followers = replicas
            .iter()
            .filter(|&&r| r != me)
            .map(|&r| {
                (
                    r,
                    Progress {
                        log_end_offset: None,
                        last_caught_up_ms: now,
                        last_fetch_ms: now,
                        last_fetch_leader_log_end: -1,
                    },
                )
            })
            .collect();
        LeaderState {
            me,
            replicas,
            isr,
            partition_epoch,
            pending: None,
            followers,
            high_watermark,
            epoch_start_offset,
            lag_time_max_ms,
        }
    }

    /// The committed ISR.
    pub fn isr(&self) -> &[BrokerId] {
        &self.isr
    }

    /// The high watermark: offsets below it are on every in-sync replica.
    pub fn high_watermark(&self) -> i64 {
        self.high_watermark
    }

    /// The committed ISR plus any follower a pending change adds.
    fn maximal_isr(&self) -> Vec<BrokerId> {
        let mut isr = self.isr.clone();
        if let Some((pending, _)) = &self.pending {
            for b in pending {
                if !isr.contains(b) {
                    isr.push(*b);
                }
            }
        }
        isr
    }

    /// The metadata image's state of the partition (same leader epoch): a
    /// newer partition epoch ends a pending change, whatever it did.
    pub fn update_assignment(
        &mut self,
        replicas: Vec<BrokerId>,
        isr: Vec<BrokerId>,
        partition_epoch: PartitionEpoch,
        now: Millis,
    ) {
        if partition_epoch < self.partition_epoch {
            return;
        }
        if partition_epoch > self.partition_epoch {
            self.pending = None;
        }
        for &r in &replicas {
            if r != self.me {
                self.followers.entry(r).or_insert(Progress {
                    log_end_offset: None,
                    last_caught_up_ms: now,
                    last_fetch_ms: now,
                    last_fetch_leader_log_end: -1,
                });
            }
        }
        self.followers.retain(|r, _| replicas.contains(r));
        self.replicas = replicas;
        self.isr = isr;
        self.partition_epoch = partition_epoch;
    }

    /// The controller refused or lost the pending change: it may be asked
    /// again.
    pub fn abandon_pending(&mut self) {
        self.pending = None;
    }

    /// Recomputes the high watermark after the leader's log end moved or a
    /// follower reported progress; true if it advanced.
    pub fn advance_high_watermark(&mut self, leader_log_end: i64) -> bool {
        let mut candidate = leader_log_end;
        for member in self.maximal_isr() {
            if member == self.me {
                continue;
            }
            match self.followers.get(&member).and_then(|p| p.log_end_offset) {
                Some(end) => candidate = candidate.min(end),
                // A member not heard from in this leadership holds it back.
                None => return false,
            }
        }
        if candidate > self.high_watermark {
            self.high_watermark = candidate;
            true
        } else {
            false
        }
    }

    /// A fetch by `follower` from `fetch_offset` while the leader's log
    /// ends at `leader_log_end`. Returns whether the high watermark moved
    /// and the expansion to ask for, if the follower may join the ISR.
    pub fn on_follower_fetch(
        &mut self,
        now: Millis,
        follower: BrokerId,
        fetch_offset: i64,
        leader_log_end: i64,
    ) -> (bool, Option<IsrChange>) {
        // A fetch from outside the log (a confused or lying peer) is answered
        // OFFSET_OUT_OF_RANGE and says nothing about the follower, as in Kafka.
        if !(0..=leader_log_end).contains(&fetch_offset) {
            return (false, None);
        }
        let Some(progress) = self.followers.get_mut(&follower) else {
            return (false, None);
        };
        if fetch_offset >= leader_log_end {
            progress.last_caught_up_ms = now;
        } else if fetch_offset >= progress.last_fetch_leader_log_end
            && progress.last_fetch_leader_log_end >= 0
        {
            progress.last_caught_up_ms = progress.last_caught_up_ms.max(progress.last_fetch_ms);
        }
        progress.log_end_offset = Some(fetch_offset);
        progress.last_fetch_ms = now;
        progress.last_fetch_leader_log_end = leader_log_end;
        let advanced = self.advance_high_watermark(leader_log_end);
        let expand = !self.isr.contains(&follower)
            && fetch_offset >= self.high_watermark
            && fetch_offset >= self.epoch_start_offset;
        let change = if expand {
            let mut new_isr = self.isr.clone();
            new_isr.push(follower);
            self.propose(now, new_isr)
        } else {
            None
        };
        (advanced, change)
    }

    /// The shrink to ask for at `now`: ISR members other than the leader
    /// not caught up for `replica.lag.time.max.ms`.
    pub fn check_lagging(&mut self, now: Millis) -> Option<IsrChange> {
        let lagging: Vec<BrokerId> = self
            .isr
            .iter()
            .copied()
            .filter(|&r| r != self.me)
            .filter(|r| {
                self.followers
                    .get(r)
                    .is_none_or(|p| now - p.last_caught_up_ms > self.lag_time_max_ms)
            })
            .collect();
        if lagging.is_empty() {
            return None;
        }
        let new_isr = self
            .isr
            .iter()
            .copied()
            .filter(|r| !lagging.contains(r))
            .collect();
        self.propose(now, new_isr)
    }

    /// Records `new_isr` as pending unless another change is.
    fn propose(&mut self, now: Millis, new_isr: Vec<BrokerId>) -> Option<IsrChange> {
        if let Some((_, sent)) = &self.pending {
            if now - sent < ALTER_PARTITION_RETRY_MS {
                return None;
            }
        }
        self.pending = Some((new_isr.clone(), now));
        Some(IsrChange {
            new_isr,
            partition_epoch: self.partition_epoch,
        })
    }

    /// The follower's log end as last reported, for diagnostics.
    #[cfg(test)]
    fn follower_end(&self, follower: BrokerId) -> Option<i64> {
        self.followers.get(&follower).and_then(|p| p.log_end_offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAG: Millis = 10_000;

    fn b(ids: &[i32]) -> Vec<BrokerId> {
        ids.iter().map(|&i| BrokerId(i)).collect()
    }

    fn three_in_sync(now: Millis) -> LeaderState {
        LeaderState::new(
            BrokerId(1),
            b(&[1, 2, 3]),
            b(&[1, 2, 3]),
            PartitionEpoch(5),
            0,
            0,
            LAG,
            now,
        )
    }

    #[test]
    fn high_watermark_is_the_smallest_end_over_the_isr() {
        let mut state = three_in_sync(0);
        assert!(
            !state.advance_high_watermark(10),
            "followers not heard from"
        );
        assert!(!state.on_follower_fetch(1, BrokerId(2), 10, 10).0);
        assert_eq!(state.high_watermark(), 0, "follower 3 still unknown");
        let (advanced, change) = state.on_follower_fetch(2, BrokerId(3), 6, 10);
        assert!(advanced);
        assert_eq!(change, None, "already in the ISR");
        assert_eq!(state.high_watermark(), 6);
        assert_eq!(state.follower_end(BrokerId(3)), Some(6));
        // A follower reporting a lower offset (it truncated) never moves
        // the watermark back.
        state.on_follower_fetch(3, BrokerId(3), 4, 10);
        assert_eq!(state.high_watermark(), 6);
    }

    #[test]
    fn a_fetch_from_outside_the_log_counts_for_nothing() {
        let mut state = three_in_sync(0);
        state.on_follower_fetch(1, BrokerId(2), 10, 10);
        assert_eq!(
            state.on_follower_fetch(1, BrokerId(3), 1_000, 10),
            (false, None)
        );
        assert_eq!(
            state.on_follower_fetch(1, BrokerId(3), -5, 10),
            (false, None)
        );
        assert_eq!(state.follower_end(BrokerId(3)), None);
        assert_eq!(
            state.high_watermark(),
            0,
            "follower 3 has not really fetched"
        );
        assert_eq!(
            state.on_follower_fetch(2, BrokerId(9), 10, 10),
            (false, None),
            "not a replica"
        );
    }

    #[test]
    fn a_lone_leader_has_its_log_end_as_high_watermark() {
        let mut state = LeaderState::new(
            BrokerId(1),
            b(&[1]),
            b(&[1]),
            PartitionEpoch(0),
            0,
            0,
            LAG,
            0,
        );
        assert!(state.advance_high_watermark(42));
        assert_eq!(state.high_watermark(), 42);
    }

    #[test]
    fn a_follower_that_stops_catching_up_is_dropped_after_the_lag_time() {
        let mut state = three_in_sync(0);
        state.on_follower_fetch(100, BrokerId(2), 0, 0);
        state.on_follower_fetch(100, BrokerId(3), 0, 0);
        // Follower 3 keeps fetching but never reaches the leader's end.
        for t in (1..=12).map(|s| 100 + s * 1000) {
            state.on_follower_fetch(t, BrokerId(2), t, t);
            state.on_follower_fetch(t, BrokerId(3), 0, t);
            if t - 100 <= LAG {
                assert_eq!(state.check_lagging(t), None, "at {t}");
            }
        }
        let change = state.check_lagging(100 + 12_000).expect("a shrink");
        assert_eq!(change.new_isr, b(&[1, 2]));
        assert_eq!(change.partition_epoch, PartitionEpoch(5));
        // Only one change at a time.
        assert_eq!(state.check_lagging(100 + 12_001), None);
    }

    #[test]
    fn fetching_from_the_previous_log_end_counts_as_caught_up_then() {
        let mut state = three_in_sync(0);
        state.on_follower_fetch(1_000, BrokerId(2), 0, 50);
        // Next fetch starts at 50 = the leader's end at the previous fetch,
        // though the leader has moved on to 80.
        state.on_follower_fetch(20_000, BrokerId(2), 50, 80);
        state.on_follower_fetch(20_000, BrokerId(3), 80, 80);
        assert_eq!(state.check_lagging(1_000 + LAG), None);
        let change = state
            .check_lagging(1_000 + LAG + 1)
            .expect("2 lags since 1000");
        assert_eq!(change.new_isr, b(&[1, 3]));
    }

    #[test]
    fn a_follower_joins_once_it_reaches_the_watermark_and_the_epoch_start() {
        let mut state = LeaderState::new(
            BrokerId(1),
            b(&[1, 2, 3]),
            b(&[1, 2]),
            PartitionEpoch(7),
            20,
            25,
            LAG,
            0,
        );
        state.on_follower_fetch(1, BrokerId(2), 30, 30);
        assert_eq!(state.high_watermark(), 30);
        assert_eq!(state.on_follower_fetch(2, BrokerId(3), 10, 30).1, None);
        assert_eq!(state.on_follower_fetch(3, BrokerId(3), 29, 30).1, None);
        let (_, change) = state.on_follower_fetch(4, BrokerId(3), 30, 30);
        let change = change.expect("an expansion");
        assert_eq!(change.new_isr, b(&[1, 2, 3]));
        // While pending, the joining follower holds the watermark back.
        state.on_follower_fetch(5, BrokerId(2), 40, 40);
        assert_eq!(state.high_watermark(), 30);
        state.on_follower_fetch(6, BrokerId(3), 35, 40);
        assert_eq!(state.high_watermark(), 35);
        // The image commits the change.
        state.update_assignment(b(&[1, 2, 3]), b(&[1, 2, 3]), PartitionEpoch(8), 7);
        assert_eq!(state.isr(), b(&[1, 2, 3]).as_slice());
        assert_eq!(state.partition_epoch, PartitionEpoch(8));
    }

    #[test]
    fn an_unanswered_change_may_be_asked_again_later() {
        let mut state = three_in_sync(0);
        let first = state.check_lagging(LAG + 1).expect("both lag");
        assert_eq!(first.new_isr, b(&[1]));
        assert_eq!(state.check_lagging(LAG + 2), None);
        assert!(state
            .check_lagging(LAG + 1 + ALTER_PARTITION_RETRY_MS)
            .is_some());
        state.abandon_pending();
        assert!(state
            .check_lagging(LAG + 2 + ALTER_PARTITION_RETRY_MS)
            .is_some());
    }

    #[test]
    fn an_older_image_state_is_ignored() {
        let mut state = three_in_sync(0);
        state.update_assignment(b(&[1, 2, 3]), b(&[1]), PartitionEpoch(4), 1);
        assert_eq!(state.isr(), b(&[1, 2, 3]).as_slice());
    }
}
