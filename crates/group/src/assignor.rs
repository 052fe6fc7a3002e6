//! Server-side assignors of KIP-848 groups: "uniform" (Kafka's default,
//! sticky and balanced) and "range".
//!
//! An assignor is a pure function from the members' subscriptions (topic
//! ids), their current target partitions and the partition counts of the
//! subscribed topics to each member's new target partitions. Everything is
//! ordered (`BTreeMap`/`BTreeSet`), so equal inputs give equal outputs on
//! every broker. Assignors know nothing of epochs or reconciliation: the
//! group decides when a partition may actually move.
//!
//! Racks are not considered yet (Kafka's assignors prefer rack-local
//! partitions when every member and partition has a rack).

use std::collections::{BTreeMap, BTreeSet};

use uuid::Uuid;

/// One partition of one topic, named by topic id as KIP-848 does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TopicPartition {
    pub topic_id: Uuid,
    pub partition: i32,
}

impl TopicPartition {
    pub fn new(topic_id: Uuid, partition: i32) -> TopicPartition {
        TopicPartition {
            topic_id,
            partition,
        }
    }
}

/// A set of partitions, ordered by topic id then partition.
pub type Partitions = BTreeSet<TopicPartition>;

/// What an assignor knows about one member.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemberSubscription {
    /// The topic ids the member subscribes to (regexes already resolved).
    pub topics: BTreeSet<Uuid>,
    /// The member's previous target, for stickiness.
    pub current: Partitions,
}

/// The name of the assignor used when none is asked for.
pub const UNIFORM: &str = "uniform";
/// Java's RangeAssignor, server-side.
pub const RANGE: &str = "range";

/// Whether [`assign`] knows an assignor by this name.
pub fn is_known(name: &str) -> bool {
    name == UNIFORM || name == RANGE
}

/// Runs the assignor called `name` (unknown names run "uniform", the
/// default, so a config listing an assignor Runnel lacks still works).
/// `topics` maps topic id to partition count; partitions of topics not in
/// it are never assigned. Every member of `members` is in the result.
pub fn assign(
    name: &str,
    members: &BTreeMap<String, MemberSubscription>,
    topics: &BTreeMap<Uuid, i32>,
) -> BTreeMap<String, Partitions> {
    if name == RANGE {
        range(members, topics)
    } else {
        uniform(members, topics)
    }
}

/// Java's RangeAssignor per topic: the topic's subscribers sorted by member
/// id each get a contiguous range; the first `partitions % subscribers`
/// get one partition more.
///
/// Topic t0 with 7 partitions, members a, b, c: a = 0..3, b = 3..5, c = 5..7.
pub fn range(
    members: &BTreeMap<String, MemberSubscription>,
    topics: &BTreeMap<Uuid, i32>,
) -> BTreeMap<String, Partitions> {
    let mut result: BTreeMap<String, Partitions> = members
        .keys()
        .map(|id| (id.clone(), Partitions::new()))
        .collect();
    for (&topic_id, &count) in topics {
        let count = count.max(0);
        let subscribers: Vec<&String> = members
            .iter()
            .filter(|(_, m)| m.topics.contains(&topic_id))
            .map(|(id, _)| id)
            .collect();
        let Ok(n) = i32::try_from(subscribers.len()) else {
            continue;
        };
        if n == 0 {
            continue;
        }
        let (each, extra) = (count / n, count % n);
        let mut start = 0;
        for (i, id) in (0..).zip(subscribers) {
            let len = each + i32::from(i < extra);
            if let Some(set) = result.get_mut(id) {
                set.extend((start..start + len).map(|p| TopicPartition::new(topic_id, p)));
            }
            start += len;
        }
    }
    result
}

/// Sticky and balanced: members keep their current partitions where
/// balance allows; the rest go to the least loaded subscriber; then
/// partitions move from the most loaded member to a subscriber holding at
/// least two fewer until no such move exists. With identical
/// subscriptions the counts differ by at most one; with different
/// subscriptions no member could take a partition from one holding two
/// more.
///
/// Members a = {t0-0..t0-5}, b = {} over t0 (6 partitions): a keeps
/// t0-0..t0-2, b gets t0-3..t0-5.
pub fn uniform(
    members: &BTreeMap<String, MemberSubscription>,
    topics: &BTreeMap<Uuid, i32>,
) -> BTreeMap<String, Partitions> {
    let mut result: BTreeMap<String, Partitions> = members
        .keys()
        .map(|id| (id.clone(), Partitions::new()))
        .collect();
    let exists = |tp: &TopicPartition| {
        topics
            .get(&tp.topic_id)
            .is_some_and(|&count| (0..count).contains(&tp.partition))
    };

    // Keep what each member had, as long as it still subscribes and no
    // member earlier in id order already claimed the partition.
    let mut owned = Partitions::new();
    for (id, member) in members {
        for tp in &member.current {
            if member.topics.contains(&tp.topic_id) && exists(tp) && owned.insert(*tp) {
                if let Some(set) = result.get_mut(id) {
                    set.insert(*tp);
                }
            }
        }
    }

    // Hand out the rest, most constrained topics (fewest subscribers) first.
    let mut by_subscribers: Vec<(usize, Uuid, i32)> = topics
        .iter()
        .map(|(&topic_id, &count)| {
            let subscribers = members
                .values()
                .filter(|m| m.topics.contains(&topic_id))
                .count();
            (subscribers, topic_id, count)
        })
        .filter(|&(subscribers, _, _)| subscribers > 0)
        .collect();
    by_subscribers.sort();
    for (_, topic_id, count) in by_subscribers {
        for partition in 0..count.max(0) {
            let tp = TopicPartition::new(topic_id, partition);
            if owned.contains(&tp) {
                continue;
            }
            let least = members
                .iter()
                .filter(|(_, m)| m.topics.contains(&topic_id))
                .map(|(id, _)| (result.get(id).map_or(0, BTreeSet::len), id))
                .min();
            if let Some((_, id)) = least {
                if let Some(set) = result.get_mut(id) {
                    set.insert(tp);
                    owned.insert(tp);
                }
            }
        }
    }

    balance(members, &mut result);
    result
}

/// Moves one partition at a time from a most loaded member to a least
/// loaded subscriber with at least two fewer. Each move lowers the sum of
/// squared counts, so the loop ends.
fn balance(
    members: &BTreeMap<String, MemberSubscription>,
    result: &mut BTreeMap<String, Partitions>,
) {
    loop {
        let mut order: Vec<(usize, &String)> = result.iter().map(|(id, s)| (s.len(), id)).collect();
        order.sort();
        let mut chosen: Option<(String, String, TopicPartition)> = None;
        'search: for &(heavy_count, heavy) in order.iter().rev() {
            for &(light_count, light) in &order {
                if light_count + 1 >= heavy_count {
                    break;
                }
                let Some(light_topics) = members.get(light).map(|m| &m.topics) else {
                    continue;
                };
                let movable = result.get(heavy).and_then(|set| {
                    set.iter()
                        .rev()
                        .find(|tp| light_topics.contains(&tp.topic_id))
                        .copied()
                });
                if let Some(tp) = movable {
                    chosen = Some((heavy.clone(), light.clone(), tp));
                    break 'search;
                }
            }
        }
        let Some((heavy, light, tp)) = chosen else {
            return;
        };
        if let Some(set) = result.get_mut(&heavy) {
            set.remove(&tp);
        }
        if let Some(set) = result.get_mut(&light) {
            set.insert(tp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    fn sub(topics: &[Uuid], current: &[(Uuid, i32)]) -> MemberSubscription {
        MemberSubscription {
            topics: topics.iter().copied().collect(),
            current: current
                .iter()
                .map(|&(t, p)| TopicPartition::new(t, p))
                .collect(),
        }
    }

    fn parts(t: Uuid, ps: impl IntoIterator<Item = i32>) -> Partitions {
        ps.into_iter().map(|p| TopicPartition::new(t, p)).collect()
    }

    fn assert_disjoint_and_complete(
        result: &BTreeMap<String, Partitions>,
        topics: &BTreeMap<Uuid, i32>,
    ) {
        let mut seen = Partitions::new();
        for set in result.values() {
            for tp in set {
                assert!(seen.insert(*tp), "{tp:?} assigned twice");
            }
        }
        let all: Partitions = topics
            .iter()
            .flat_map(|(&t, &n)| (0..n).map(move |p| TopicPartition::new(t, p)))
            .collect();
        assert_eq!(seen, all);
    }

    #[test]
    fn range_gives_first_members_the_extra_partitions() {
        let t0 = topic(1);
        let members: BTreeMap<String, MemberSubscription> = ["c", "a", "b"]
            .iter()
            .map(|id| (id.to_string(), sub(&[t0], &[])))
            .collect();
        let topics = BTreeMap::from([(t0, 7)]);
        let result = range(&members, &topics);
        assert_eq!(result["a"], parts(t0, 0..3));
        assert_eq!(result["b"], parts(t0, 3..5));
        assert_eq!(result["c"], parts(t0, 5..7));
    }

    #[test]
    fn range_assigns_each_topic_among_its_own_subscribers() {
        let (t0, t1) = (topic(1), topic(2));
        let members = BTreeMap::from([
            ("a".to_string(), sub(&[t0, t1], &[])),
            ("b".to_string(), sub(&[t1], &[])),
        ]);
        let topics = BTreeMap::from([(t0, 2), (t1, 3)]);
        let result = range(&members, &topics);
        let mut a = parts(t0, 0..2);
        a.extend(parts(t1, 0..2));
        assert_eq!(result["a"], a);
        assert_eq!(result["b"], parts(t1, 2..3));
        assert_disjoint_and_complete(&result, &topics);
    }

    #[test]
    fn range_with_more_members_than_partitions_leaves_the_last_empty() {
        let t0 = topic(1);
        let members: BTreeMap<String, MemberSubscription> = ["a", "b", "c"]
            .iter()
            .map(|id| (id.to_string(), sub(&[t0], &[])))
            .collect();
        let topics = BTreeMap::from([(t0, 2)]);
        let result = range(&members, &topics);
        assert_eq!(result["a"].len(), 1);
        assert_eq!(result["b"].len(), 1);
        assert!(result["c"].is_empty());
    }

    #[test]
    fn uniform_balances_identical_subscriptions() {
        let (t0, t1) = (topic(1), topic(2));
        let members: BTreeMap<String, MemberSubscription> = ["a", "b", "c", "d"]
            .iter()
            .map(|id| (id.to_string(), sub(&[t0, t1], &[])))
            .collect();
        let topics = BTreeMap::from([(t0, 7), (t1, 3)]);
        let result = uniform(&members, &topics);
        assert_disjoint_and_complete(&result, &topics);
        let counts: Vec<usize> = result.values().map(BTreeSet::len).collect();
        let (min, max) = (counts.iter().min(), counts.iter().max());
        assert!(max.zip(min).is_some_and(|(max, min)| max - min <= 1));
    }

    #[test]
    fn uniform_keeps_current_owners_when_a_member_joins() {
        let t0 = topic(1);
        let a_owns: Vec<(Uuid, i32)> = (0..6).map(|p| (t0, p)).collect();
        let members = BTreeMap::from([
            ("a".to_string(), sub(&[t0], &a_owns)),
            ("b".to_string(), sub(&[t0], &[])),
        ]);
        let topics = BTreeMap::from([(t0, 6)]);
        let result = uniform(&members, &topics);
        assert_eq!(result["a"].len(), 3);
        assert_eq!(result["b"].len(), 3);
        assert!(result["a"].is_subset(&parts(t0, 0..6)));
        assert_disjoint_and_complete(&result, &topics);
    }

    #[test]
    fn uniform_moves_only_what_balance_needs() {
        let t0 = topic(1);
        // 9 partitions over 3 members, then a 4th joins: 9 = 3+2+2+2, so d
        // takes exactly two partitions and no old member gains any.
        let owned = |r: std::ops::Range<i32>| r.map(|p| (t0, p)).collect::<Vec<_>>();
        let members = BTreeMap::from([
            ("a".to_string(), sub(&[t0], &owned(0..3))),
            ("b".to_string(), sub(&[t0], &owned(3..6))),
            ("c".to_string(), sub(&[t0], &owned(6..9))),
            ("d".to_string(), sub(&[t0], &[])),
        ]);
        let topics = BTreeMap::from([(t0, 9)]);
        let result = uniform(&members, &topics);
        assert_disjoint_and_complete(&result, &topics);
        assert_eq!(result["d"].len(), 2);
        for (id, range) in [("a", 0..3), ("b", 3..6), ("c", 6..9)] {
            assert!(
                result[id].is_subset(&parts(t0, range)),
                "{id} gained a partition"
            );
        }
    }

    #[test]
    fn uniform_is_stable_when_nothing_changes() {
        let (t0, t1) = (topic(1), topic(2));
        let members: BTreeMap<String, MemberSubscription> = ["a", "b", "c"]
            .iter()
            .map(|id| (id.to_string(), sub(&[t0, t1], &[])))
            .collect();
        let topics = BTreeMap::from([(t0, 5), (t1, 4)]);
        let first = uniform(&members, &topics);
        let again: BTreeMap<String, MemberSubscription> = members
            .iter()
            .map(|(id, m)| {
                let mut m = m.clone();
                m.current = first[id].clone();
                (id.clone(), m)
            })
            .collect();
        assert_eq!(uniform(&again, &topics), first);
    }

    #[test]
    fn uniform_drops_partitions_of_unsubscribed_and_vanished_topics() {
        let (t0, t1) = (topic(1), topic(2));
        let members = BTreeMap::from([
            ("a".to_string(), sub(&[t0], &[(t0, 0), (t0, 5), (t1, 0)])),
            ("b".to_string(), sub(&[t0], &[(t0, 0)])),
        ]);
        let topics = BTreeMap::from([(t0, 2), (t1, 1)]);
        let result = uniform(&members, &topics);
        assert_eq!(result["a"], parts(t0, [0]));
        assert_eq!(result["b"], parts(t0, [1]));
    }

    #[test]
    fn uniform_balances_different_subscriptions() {
        let (t0, t1) = (topic(1), topic(2));
        // a reads t0 only, b and c read both: t0's 4 and t1's 2 partitions
        // come out 2/2/2.
        let members = BTreeMap::from([
            ("a".to_string(), sub(&[t0], &[])),
            ("b".to_string(), sub(&[t0, t1], &[])),
            ("c".to_string(), sub(&[t0, t1], &[])),
        ]);
        let topics = BTreeMap::from([(t0, 4), (t1, 2)]);
        let result = uniform(&members, &topics);
        assert_disjoint_and_complete(&result, &topics);
        for set in result.values() {
            assert_eq!(set.len(), 2);
        }
        assert!(result["a"].iter().all(|tp| tp.topic_id == t0));
    }

    #[test]
    fn assign_runs_range_by_name_and_uniform_otherwise() {
        let t0 = topic(1);
        let members: BTreeMap<String, MemberSubscription> = ["a", "b"]
            .iter()
            .map(|id| (id.to_string(), sub(&[t0], &[])))
            .collect();
        let topics = BTreeMap::from([(t0, 3)]);
        assert_eq!(assign(RANGE, &members, &topics), range(&members, &topics));
        assert_eq!(
            assign("other", &members, &topics),
            uniform(&members, &topics)
        );
        assert!(is_known(UNIFORM) && is_known(RANGE) && !is_known("sticky"));
    }
}
