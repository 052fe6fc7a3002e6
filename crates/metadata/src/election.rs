//! Leader election and ISR changes as pure functions of an image: each
//! returns the [`PartitionChangeRecord`]s that bring the partitions to the
//! wanted state, and nothing for partitions already there.
//!
//! Kafka's rules: a leader is chosen from the ISR only, among unfenced
//! brokers, in the order of the replica list (so the preferred leader wins
//! when eligible). The ISR never becomes empty: when its last member goes,
//! that member stays in it and the partition has no leader until a member
//! returns — unless the topic allows unclean leader election
//! (`unclean.leader.election.enable`): then the first live replica leads,
//! with an ISR of itself alone, and what the ISR had and it lacks is lost.

use std::collections::BTreeMap;

use runnel_model::{BrokerId, LeaderEpoch, PartitionId};
use uuid::Uuid;

use crate::image::{MetadataImage, PartitionState};
use crate::records::PartitionChangeRecord;
use crate::PartitionEpoch;

/// A partition's wanted state, before its epochs are chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Proposal {
    pub(crate) replicas: Vec<BrokerId>,
    pub(crate) isr: Vec<BrokerId>,
    pub(crate) leader: Option<BrokerId>,
    pub(crate) adding: Vec<BrokerId>,
    pub(crate) removing: Vec<BrokerId>,
}

impl From<&PartitionState> for Proposal {
    fn from(state: &PartitionState) -> Proposal {
        Proposal {
            replicas: state.replicas.clone(),
            isr: state.isr.clone(),
            leader: state.leader,
            adding: state.adding_replicas.clone(),
            removing: state.removing_replicas.clone(),
        }
    }
}

/// What Kafka's `PartitionChangeBuilder` does after a change of ISR or
/// replicas: completes a reassignment whose adding replicas are all in the
/// ISR and which leaves an ISR member besides the removing ones (the
/// replicas become the target, the removing replicas leave the ISR), then
/// elects a leader if the current one is no longer in the ISR — from the
/// ISR in replica order, or, if none is eligible and `unclean` allows, the
/// first live replica with an ISR of itself.
pub(crate) fn settle(image: &MetadataImage, mut proposal: Proposal, unclean: bool) -> Proposal {
    if !proposal.adding.is_empty() || !proposal.removing.is_empty() {
        let removing = &proposal.removing;
        let isr: Vec<BrokerId> = proposal
            .isr
            .iter()
            .copied()
            .filter(|b| !removing.contains(b))
            .collect();
        if !isr.is_empty() && proposal.adding.iter().all(|b| proposal.isr.contains(b)) {
            proposal.replicas.retain(|b| !removing.contains(b));
            proposal.isr = isr;
            proposal.adding.clear();
            proposal.removing.clear();
        }
    }
    let eligible = |b: &BrokerId| proposal.isr.contains(b) && image.is_unfenced(*b);
    if !proposal.leader.as_ref().is_some_and(eligible) {
        proposal.leader = proposal.replicas.iter().copied().find(|b| eligible(b));
        if proposal.leader.is_none() && unclean {
            if let Some(live) = first_live(image, &proposal.replicas, None) {
                proposal.leader = Some(live);
                proposal.isr = vec![live];
            }
        }
    }
    proposal
}

/// The record moving `old` to `new`, with the epochs bumped as Kafka bumps
/// them: the partition epoch always, the leader epoch when the leader
/// changes. `None` if nothing changes.
pub(crate) fn change(
    topic_id: Uuid,
    partition: PartitionId,
    old: &PartitionState,
    new: Proposal,
) -> Option<PartitionChangeRecord> {
    if new == Proposal::from(old) {
        return None;
    }
    let leader_epoch = if new.leader == old.leader {
        old.leader_epoch
    } else {
        LeaderEpoch(old.leader_epoch.0.saturating_add(1))
    };
    Some(PartitionChangeRecord {
        topic_id,
        partition,
        leader: new.leader,
        isr: (new.isr != old.isr).then_some(new.isr),
        replicas: (new.replicas != old.replicas).then_some(new.replicas),
        leader_epoch,
        partition_epoch: PartitionEpoch(old.partition_epoch.0.saturating_add(1)),
        adding_replicas: (new.adding != old.adding_replicas).then_some(new.adding),
        removing_replicas: (new.removing != old.removing_replicas).then_some(new.removing),
    })
}

/// [`change`] of the leader and ISR only.
fn change_leader_isr(
    topic_id: Uuid,
    partition: PartitionId,
    old: &PartitionState,
    leader: Option<BrokerId>,
    isr: Vec<BrokerId>,
) -> Option<PartitionChangeRecord> {
    let new = Proposal {
        leader,
        isr,
        ..Proposal::from(old)
    };
    change(topic_id, partition, old, new)
}

/// The first replica, in replica order, that is in `isr`, unfenced in
/// `image` and not `excluded`.
fn first_eligible(
    image: &MetadataImage,
    state: &PartitionState,
    isr: &[BrokerId],
    excluded: Option<BrokerId>,
) -> Option<BrokerId> {
    state
        .replicas
        .iter()
        .copied()
        .find(|&b| isr.contains(&b) && image.is_unfenced(b) && Some(b) != excluded)
}

/// Whether a topic (by id) allows unclean leader election.
pub(crate) type UncleanPolicy<'a> = &'a dyn Fn(Uuid) -> bool;

/// The unclean choice: the first replica, in replica order, that is
/// unfenced and not `excluded`, in or out of the ISR.
fn first_live(
    image: &MetadataImage,
    replicas: &[BrokerId],
    excluded: Option<BrokerId>,
) -> Option<BrokerId> {
    replicas
        .iter()
        .copied()
        .find(|&b| image.is_unfenced(b) && Some(b) != excluded)
}

/// Takes `broker` out of every ISR it is in (unless it is the last member)
/// and moves every leadership it holds to another eligible ISR member, or
/// to none (or, where `unclean` allows, to a live replica outside it).
///
/// Called after the broker's fencing is in `image` (the broker is then not
/// eligible anyway), or before it for a controlled shutdown, with the
/// broker still unfenced but excluded.
pub(crate) fn move_away(
    image: &MetadataImage,
    broker: BrokerId,
    unclean: UncleanPolicy<'_>,
) -> Vec<PartitionChangeRecord> {
    let mut records = Vec::new();
    for (topic_id, partition, state) in image.partitions() {
        if !state.isr.contains(&broker) && state.leader != Some(broker) {
            continue;
        }
        let mut isr: Vec<BrokerId> = state.isr.iter().copied().filter(|&b| b != broker).collect();
        if isr.is_empty() {
            isr = state.isr.clone();
        }
        let mut leader = if state.leader == Some(broker) {
            first_eligible(image, state, &isr, Some(broker))
        } else {
            state.leader
        };
        if leader.is_none() && unclean(topic_id) {
            if let Some(live) = first_live(image, &state.replicas, Some(broker)) {
                leader = Some(live);
                isr = vec![live];
            }
        }
        records.extend(change_leader_isr(topic_id, partition, state, leader, isr));
    }
    records
}

/// Elects a leader for every partition without one that has an eligible
/// ISR member, or a live replica where `unclean` allows — what a broker
/// coming back (unfenced) triggers.
pub(crate) fn elect_leaderless(
    image: &MetadataImage,
    unclean: UncleanPolicy<'_>,
) -> Vec<PartitionChangeRecord> {
    image
        .partitions()
        .filter(|(_, _, state)| state.leader.is_none())
        .filter_map(|(topic_id, partition, state)| {
            if let Some(leader) = first_eligible(image, state, &state.isr, None) {
                return change_leader_isr(
                    topic_id,
                    partition,
                    state,
                    Some(leader),
                    state.isr.clone(),
                );
            }
            if !unclean(topic_id) {
                return None;
            }
            elect_unclean(image, topic_id, partition, state)
        })
        .collect()
}

/// Kafka's preferred election for one partition (`electPreferredLeader`):
/// the preferred leader if it is in the ISR and unfenced; otherwise the
/// current leader stays, and a partition without one gets any eligible ISR
/// member. `None` if the leader does not change.
pub(crate) fn elect_preferred(
    image: &MetadataImage,
    topic_id: Uuid,
    partition: PartitionId,
    state: &PartitionState,
) -> Option<PartitionChangeRecord> {
    let preferred = *state.replicas.first()?;
    let leader = if state.isr.contains(&preferred) && image.is_unfenced(preferred) {
        Some(preferred)
    } else if state.leader.is_some() {
        state.leader
    } else {
        first_eligible(image, state, &state.isr, None)
    };
    change_leader_isr(topic_id, partition, state, leader, state.isr.clone())
}

/// An election that may be unclean, for a partition without a leader: an
/// eligible ISR member if there is one, else the first live replica with
/// an ISR of itself. `None` if no replica is live (or it has a leader).
pub(crate) fn elect_unclean(
    image: &MetadataImage,
    topic_id: Uuid,
    partition: PartitionId,
    state: &PartitionState,
) -> Option<PartitionChangeRecord> {
    if state.leader.is_some() {
        return None;
    }
    if let Some(leader) = first_eligible(image, state, &state.isr, None) {
        return change_leader_isr(topic_id, partition, state, Some(leader), state.isr.clone());
    }
    let leader = first_live(image, &state.replicas, None)?;
    change_leader_isr(topic_id, partition, state, Some(leader), vec![leader])
}

/// Kafka's automatic leader rebalance: for each broker, the partitions
/// whose preferred leader (first replica) it is but which another broker
/// leads; where they are more than `percentage` % of its preferred
/// partitions, leadership moves back to it on those where it is eligible
/// (in the ISR and unfenced).
///
/// Example, `percentage` 10: broker 1 is preferred for 4 partitions and
/// leads 3 of them: 25 % > 10 %, so the fourth moves back to it if it may.
///
/// Partitions being reassigned are left alone, as Kafka's ZooKeeper-era
/// controller left them (KRaft's own rebalance has no percentage).
pub(crate) fn rebalance_leaders(
    image: &MetadataImage,
    percentage: i32,
) -> Vec<PartitionChangeRecord> {
    let mut by_preferred =
        BTreeMap::<BrokerId, (u64, Vec<(Uuid, PartitionId, &PartitionState)>)>::new();
    for (topic_id, partition, state) in image.partitions() {
        let Some(&preferred) = state.replicas.first() else {
            continue;
        };
        if state.is_reassigning() {
            continue;
        }
        let entry = by_preferred.entry(preferred).or_default();
        entry.0 += 1;
        if state.leader != Some(preferred) {
            entry.1.push((topic_id, partition, state));
        }
    }
    let percentage = u64::try_from(percentage.max(0)).unwrap_or(0);
    let mut records = Vec::new();
    for (broker, (total, elsewhere)) in by_preferred {
        let imbalanced =
            (elsewhere.len() as u64).saturating_mul(100) > total.saturating_mul(percentage);
        if !imbalanced || !image.is_unfenced(broker) {
            continue;
        }
        for (topic_id, partition, state) in elsewhere {
            if state.isr.contains(&broker) {
                records.extend(change_leader_isr(
                    topic_id,
                    partition,
                    state,
                    Some(broker),
                    state.isr.clone(),
                ));
            }
        }
    }
    records
}

/// Moves leadership back to the preferred leader (the first replica) of
/// every partition where it is eligible and not already leading; only the
/// partitions in `only`, if given.
pub fn elect_preferred_leaders(
    image: &MetadataImage,
    only: Option<&[(Uuid, PartitionId)]>,
) -> Vec<PartitionChangeRecord> {
    image
        .partitions()
        .filter(|(topic_id, partition, _)| {
            only.is_none_or(|wanted| wanted.contains(&(*topic_id, *partition)))
        })
        .filter_map(|(topic_id, partition, state)| {
            let preferred = *state.replicas.first()?;
            let eligible = state.isr.contains(&preferred) && image.is_unfenced(preferred);
            if !eligible || state.leader == Some(preferred) {
                return None;
            }
            change_leader_isr(
                topic_id,
                partition,
                state,
                Some(preferred),
                state.isr.clone(),
            )
        })
        .collect()
}
