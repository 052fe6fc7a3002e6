//! The classic protocol's client-side assignors (Kafka's `range`, `roundrobin` and
//! `cooperative-sticky`) and the consumer-protocol metadata members exchange through
//! JoinGroup and SyncGroup. Pure functions: no sockets, no clock.
//!
//! ```
//! use std::collections::BTreeMap;
//! use runnel_client::consumer::assignor::{assign, Subscription};
//! use runnel_client::consumer::member::AssignmentStrategy;
//!
//! let members = vec![Subscription::new("a", ["orders"]), Subscription::new("b", ["orders"])];
//! let partitions = BTreeMap::from([("orders".to_string(), 5)]);
//! let plan = assign(AssignmentStrategy::Range, &members, &partitions);
//! assert_eq!(plan["a"].len(), 3); // the first member gets the extra partition
//! assert_eq!(plan["b"].len(), 2);
//! ```

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    consumer_protocol_assignment, consumer_protocol_subscription, ConsumerProtocolAssignment,
    ConsumerProtocolSubscription, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

use super::member::AssignmentStrategy;
use crate::error::{Error, Result};
use crate::types::TopicPartition;

/// The highest ConsumerProtocolSubscription/Assignment version this client writes
/// (the Java client's too); newer versions are read as this one, since Kafka only
/// appends fields to them.
const CONSUMER_PROTOCOL_VERSION: i16 = 3;

impl AssignmentStrategy {
    /// The protocol name in JoinGroup, as every Kafka client spells it.
    pub fn protocol_name(self) -> &'static str {
        match self {
            AssignmentStrategy::Range => "range",
            AssignmentStrategy::RoundRobin => "roundrobin",
            AssignmentStrategy::CooperativeSticky => "cooperative-sticky",
        }
    }

    /// Whether members keep their partitions through a rebalance (KIP-429).
    pub fn is_cooperative(self) -> bool {
        matches!(self, AssignmentStrategy::CooperativeSticky)
    }
}

/// One member's subscription, as the group leader sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    /// The member id the coordinator gave it.
    pub member_id: String,
    /// `group.instance.id`, for static members.
    pub group_instance_id: Option<String>,
    /// Subscribed topics.
    pub topics: Vec<String>,
    /// Partitions it owns now (cooperative members report them).
    pub owned: Vec<TopicPartition>,
    /// The generation its `owned` partitions come from (-1 if unknown).
    pub generation_id: i32,
}

impl Subscription {
    /// A dynamic member owning nothing.
    pub fn new<S: Into<String>>(member_id: &str, topics: impl IntoIterator<Item = S>) -> Self {
        Subscription {
            member_id: member_id.to_owned(),
            group_instance_id: None,
            topics: topics.into_iter().map(Into::into).collect(),
            owned: Vec::new(),
            generation_id: -1,
        }
    }

    /// Java's `MemberInfo` order: static members first by instance id, then the
    /// others by member id.
    fn order(&self, other: &Subscription) -> Ordering {
        match (&self.group_instance_id, &other.group_instance_id) {
            (Some(a), Some(b)) => a.cmp(b),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => self.member_id.cmp(&other.member_id),
        }
    }
}

/// Partitions per member id; every member of the input is present.
pub type Assignment = BTreeMap<String, Vec<TopicPartition>>;

/// Runs `strategy` over `members`, with `partition_counts` giving each topic's
/// partition count (topics missing from it have no partitions yet).
pub fn assign(
    strategy: AssignmentStrategy,
    members: &[Subscription],
    partition_counts: &BTreeMap<String, i32>,
) -> Assignment {
    let mut sorted: Vec<&Subscription> = members.iter().collect();
    sorted.sort_by(|a, b| a.order(b));
    let plan = match strategy {
        AssignmentStrategy::Range => range(&sorted, partition_counts),
        AssignmentStrategy::RoundRobin => round_robin(&sorted, partition_counts),
        AssignmentStrategy::CooperativeSticky => cooperative_sticky(&sorted, partition_counts),
    };
    sorted
        .iter()
        .zip(plan)
        .map(|(member, mut partitions)| {
            partitions.sort();
            (member.member_id.clone(), partitions)
        })
        .collect()
}

fn topics_of(members: &[&Subscription]) -> BTreeSet<String> {
    members
        .iter()
        .flat_map(|m| m.topics.iter().cloned())
        .collect()
}

fn count(partition_counts: &BTreeMap<String, i32>, topic: &str) -> i32 {
    partition_counts.get(topic).copied().unwrap_or(0).max(0)
}

/// Kafka's RangeAssignor: per topic, the subscribers in order take consecutive
/// ranges; the first `partitions % members` take one more.
fn range(members: &[&Subscription], counts: &BTreeMap<String, i32>) -> Vec<Vec<TopicPartition>> {
    let mut plan = vec![Vec::new(); members.len()];
    for topic in topics_of(members) {
        let subscribers: Vec<usize> = (0..members.len())
            .filter(|&i| members[i].topics.contains(&topic))
            .collect();
        let n = count(counts, &topic) as usize;
        let (each, extra) = (n / subscribers.len(), n % subscribers.len());
        let mut next = 0;
        for (rank, &member) in subscribers.iter().enumerate() {
            let take = each + usize::from(rank < extra);
            plan[member].extend((next..next + take).map(|p| TopicPartition::new(&topic, p as i32)));
            next += take;
        }
    }
    plan
}

/// Kafka's RoundRobinAssignor: all partitions in (topic, partition) order dealt to
/// the members in order, skipping members not subscribed to the partition's topic.
fn round_robin(
    members: &[&Subscription],
    counts: &BTreeMap<String, i32>,
) -> Vec<Vec<TopicPartition>> {
    let mut plan = vec![Vec::new(); members.len()];
    let mut next = 0;
    for topic in topics_of(members) {
        for partition in 0..count(counts, &topic) {
            while !members[next % members.len()].topics.contains(&topic) {
                next += 1;
            }
            plan[next % members.len()].push(TopicPartition::new(&topic, partition));
            next += 1;
        }
    }
    plan
}

/// Kafka's cooperative-sticky: members keep what they own, the rest goes to the
/// least loaded subscribers, then partitions move from the most to the least
/// loaded until counts differ by at most one (where subscriptions allow). A
/// partition that changes owner is left out of this generation (KIP-429): its old
/// owner revokes it, rejoins, and the follow-up rebalance hands it over.
fn cooperative_sticky(
    members: &[&Subscription],
    counts: &BTreeMap<String, i32>,
) -> Vec<Vec<TopicPartition>> {
    let subscribed =
        |member: usize, tp: &TopicPartition| members[member].topics.contains(&tp.topic);
    let all: BTreeSet<TopicPartition> = topics_of(members)
        .into_iter()
        .flat_map(|t| (0..count(counts, &t)).map(move |p| TopicPartition::new(t.clone(), p)))
        .collect();

    // Valid claims: a partition claimed twice goes to the higher generation, or to
    // nobody on a tie (as in Java's AbstractStickyAssignor).
    let mut claims: BTreeMap<TopicPartition, (usize, i32, bool)> = BTreeMap::new();
    for (i, member) in members.iter().enumerate() {
        for tp in member
            .owned
            .iter()
            .filter(|tp| all.contains(tp) && subscribed(i, tp))
        {
            match claims.get_mut(tp) {
                None => {
                    claims.insert(tp.clone(), (i, member.generation_id, false));
                }
                Some(claim) if member.generation_id > claim.1 => {
                    *claim = (i, member.generation_id, false)
                }
                Some(claim) if member.generation_id == claim.1 => claim.2 = true,
                Some(_) => {}
            }
        }
    }
    let previous: BTreeMap<TopicPartition, usize> = claims
        .into_iter()
        .filter(|(_, (_, _, contested))| !contested)
        .map(|(tp, (owner, _, _))| (tp, owner))
        .collect();

    let mut plan: Vec<BTreeSet<TopicPartition>> = vec![BTreeSet::new(); members.len()];
    for (tp, &owner) in &previous {
        plan[owner].insert(tp.clone());
    }
    let least_loaded = |plan: &[BTreeSet<TopicPartition>], tp: &TopicPartition| {
        (0..members.len())
            .filter(|&i| subscribed(i, tp))
            .min_by_key(|&i| (plan[i].len(), i))
    };
    for tp in all.iter().filter(|tp| !previous.contains_key(*tp)) {
        if let Some(to) = least_loaded(&plan, tp) {
            plan[to].insert(tp.clone());
        }
    }

    // Each move lowers the sum of squared counts, so this ends.
    'balance: loop {
        let mut by_load: Vec<usize> = (0..members.len()).collect();
        by_load.sort_by_key(|&i| (std::cmp::Reverse(plan[i].len()), i));
        for &from in &by_load {
            // Give away partitions it did not own before first, so owners keep theirs.
            let mut candidates: Vec<&TopicPartition> = plan[from].iter().collect();
            candidates.sort_by_key(|tp| previous.get(*tp) == Some(&from));
            for tp in candidates {
                let Some(to) = least_loaded(&plan, tp) else {
                    continue;
                };
                if plan[to].len() + 1 < plan[from].len() {
                    let tp = tp.clone();
                    plan[from].remove(&tp);
                    plan[to].insert(tp);
                    continue 'balance;
                }
            }
        }
        break;
    }

    plan.into_iter()
        .enumerate()
        .map(|(i, partitions)| {
            partitions
                .into_iter()
                .filter(|tp| previous.get(tp).is_none_or(|&owner| owner == i))
                .collect()
        })
        .collect()
}

/// Encodes a subscription as JoinGroup metadata: the version, then the fields.
pub fn encode_subscription(subscription: &ConsumerProtocolSubscription) -> Result<Bytes> {
    let mut buf = BytesMut::new();
    buf.put_i16(CONSUMER_PROTOCOL_VERSION);
    subscription
        .encode(&mut buf, CONSUMER_PROTOCOL_VERSION)
        .map_err(|e| Error::Protocol(format!("encoding a consumer subscription: {e}")))?;
    Ok(buf.freeze())
}

/// Decodes a member's JoinGroup metadata into a [`Subscription`].
pub fn decode_subscription(
    member_id: &str,
    group_instance_id: Option<&str>,
    metadata: &Bytes,
) -> Result<Subscription> {
    let (version, mut buf) = versioned(metadata, "subscription")?;
    let decoded = ConsumerProtocolSubscription::decode(&mut buf, version)
        .map_err(|e| Error::Protocol(format!("member {member_id}'s subscription: {e}")))?;
    Ok(Subscription {
        member_id: member_id.to_owned(),
        group_instance_id: group_instance_id.map(str::to_owned),
        topics: decoded.topics.iter().map(|t| t.to_string()).collect(),
        owned: from_wire_subscription(&decoded.owned_partitions),
        generation_id: if version >= 2 {
            decoded.generation_id
        } else {
            -1
        },
    })
}

/// The subscription this member sends.
pub fn subscription(
    topics: &[String],
    owned: &[TopicPartition],
    generation_id: i32,
) -> ConsumerProtocolSubscription {
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for tp in owned {
        by_topic.entry(&tp.topic).or_default().push(tp.partition);
    }
    ConsumerProtocolSubscription::default()
        .with_topics(
            topics
                .iter()
                .map(|t| StrBytes::from_string(t.clone()))
                .collect(),
        )
        .with_owned_partitions(
            by_topic
                .into_iter()
                .map(|(topic, partitions)| {
                    consumer_protocol_subscription::TopicPartition::default()
                        .with_topic(topic_name(topic))
                        .with_partitions(partitions)
                })
                .collect(),
        )
        .with_generation_id(generation_id)
}

/// Encodes an assignment as SyncGroup bytes: the version, then the fields.
pub fn encode_assignment(partitions: &[TopicPartition]) -> Result<Bytes> {
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for tp in partitions {
        by_topic.entry(&tp.topic).or_default().push(tp.partition);
    }
    let assignment = ConsumerProtocolAssignment::default().with_assigned_partitions(
        by_topic
            .into_iter()
            .map(|(topic, partitions)| {
                consumer_protocol_assignment::TopicPartition::default()
                    .with_topic(topic_name(topic))
                    .with_partitions(partitions)
            })
            .collect(),
    );
    let mut buf = BytesMut::new();
    buf.put_i16(CONSUMER_PROTOCOL_VERSION);
    assignment
        .encode(&mut buf, CONSUMER_PROTOCOL_VERSION)
        .map_err(|e| Error::Protocol(format!("encoding a consumer assignment: {e}")))?;
    Ok(buf.freeze())
}

/// Decodes SyncGroup's assignment bytes; empty bytes are an empty assignment.
pub fn decode_assignment(bytes: &Bytes) -> Result<Vec<TopicPartition>> {
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    let (version, mut buf) = versioned(bytes, "assignment")?;
    let decoded = ConsumerProtocolAssignment::decode(&mut buf, version)
        .map_err(|e| Error::Protocol(format!("the group's assignment: {e}")))?;
    let mut partitions: Vec<TopicPartition> = decoded
        .assigned_partitions
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|&p| TopicPartition::new(t.topic.0.to_string(), p))
        })
        .collect();
    partitions.sort();
    partitions.dedup();
    Ok(partitions)
}

fn versioned(bytes: &Bytes, what: &str) -> Result<(i16, Bytes)> {
    let mut buf = bytes.clone();
    if buf.remaining() < 2 {
        return Err(Error::Protocol(format!(
            "a consumer {what} without a version"
        )));
    }
    let version = buf.get_i16();
    if version < 0 {
        return Err(Error::Protocol(format!(
            "a consumer {what} of version {version}"
        )));
    }
    Ok((version.min(CONSUMER_PROTOCOL_VERSION), buf))
}

fn from_wire_subscription(
    owned: &[consumer_protocol_subscription::TopicPartition],
) -> Vec<TopicPartition> {
    owned
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|&p| TopicPartition::new(t.topic.0.to_string(), p))
        })
        .collect()
}

fn topic_name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn tp(topic: &str, partition: i32) -> TopicPartition {
        TopicPartition::new(topic, partition)
    }

    fn members(n: usize, topics: &[&str]) -> Vec<Subscription> {
        (0..n)
            .map(|i| Subscription::new(&format!("m{i}"), topics.iter().copied()))
            .collect()
    }

    /// Every partition of `counts` is assigned exactly once.
    fn assert_exactly_once(plan: &Assignment, counts: &BTreeMap<String, i32>) {
        let mut seen = BTreeSet::new();
        for partitions in plan.values() {
            for p in partitions {
                assert!(seen.insert(p.clone()), "{p} assigned twice: {plan:?}");
            }
        }
        let expected: usize = counts.values().map(|&n| n as usize).sum();
        assert_eq!(seen.len(), expected, "{plan:?}");
    }

    fn spread(plan: &Assignment) -> usize {
        let max = plan.values().map(Vec::len).max().unwrap_or(0);
        let min = plan.values().map(Vec::len).min().unwrap_or(0);
        max - min
    }

    /// Feeds a plan back as the members' owned partitions of the next generation.
    fn owning(
        mut members: Vec<Subscription>,
        plan: &Assignment,
        generation: i32,
    ) -> Vec<Subscription> {
        for m in &mut members {
            m.owned = plan.get(&m.member_id).cloned().unwrap_or_default();
            m.generation_id = generation;
        }
        members
    }

    #[test]
    fn range_gives_the_extra_partitions_to_the_first_members() {
        let counts = BTreeMap::from([("t".to_string(), 7)]);
        let plan = assign(AssignmentStrategy::Range, &members(3, &["t"]), &counts);
        assert_eq!(plan["m0"], vec![tp("t", 0), tp("t", 1), tp("t", 2)]);
        assert_eq!(plan["m1"], vec![tp("t", 3), tp("t", 4)]);
        assert_eq!(plan["m2"], vec![tp("t", 5), tp("t", 6)]);
    }

    #[test]
    fn range_orders_static_members_by_instance_id_first() {
        let mut ms = members(2, &["t"]);
        ms[1].group_instance_id = Some("a".into());
        let counts = BTreeMap::from([("t".to_string(), 3)]);
        let plan = assign(AssignmentStrategy::Range, &ms, &counts);
        assert_eq!(plan["m1"], vec![tp("t", 0), tp("t", 1)]);
        assert_eq!(plan["m0"], vec![tp("t", 2)]);
    }

    #[test]
    fn round_robin_skips_members_not_subscribed() {
        let ms = vec![
            Subscription::new("a", ["x", "y"]),
            Subscription::new("b", ["y"]),
        ];
        let counts = BTreeMap::from([("x".to_string(), 2), ("y".to_string(), 2)]);
        let plan = assign(AssignmentStrategy::RoundRobin, &ms, &counts);
        // x-0 a, x-1 (b not subscribed) a, y-0 b, y-1 a.
        assert_eq!(plan["a"], vec![tp("x", 0), tp("x", 1), tp("y", 1)]);
        assert_eq!(plan["b"], vec![tp("y", 0)]);
    }

    #[test]
    fn cooperative_sticky_withholds_a_partition_that_changes_owner() {
        let counts = BTreeMap::from([("t".to_string(), 4)]);
        let mut ms = members(2, &["t"]);
        ms[0].owned = (0..4).map(|p| tp("t", p)).collect();
        ms[0].generation_id = 1;
        let first = assign(AssignmentStrategy::CooperativeSticky, &ms, &counts);
        assert_eq!(first["m0"].len(), 2, "{first:?}");
        assert!(
            first["m1"].is_empty(),
            "moved in the same rebalance: {first:?}"
        );
        let second = assign(
            AssignmentStrategy::CooperativeSticky,
            &owning(ms, &first, 2),
            &counts,
        );
        assert_eq!(second["m0"], first["m0"]);
        assert_eq!(second["m1"].len(), 2);
        assert_exactly_once(&second, &counts);
    }

    #[test]
    fn cooperative_sticky_drops_claims_contested_in_one_generation() {
        let counts = BTreeMap::from([("t".to_string(), 2)]);
        let mut ms = members(2, &["t"]);
        ms[0].owned = vec![tp("t", 0)];
        ms[1].owned = vec![tp("t", 0)];
        ms[0].generation_id = 3;
        ms[1].generation_id = 3;
        let plan = assign(AssignmentStrategy::CooperativeSticky, &ms, &counts);
        assert_exactly_once(&plan, &counts);
        // A newer generation wins the claim.
        ms[1].generation_id = 4;
        let plan = assign(AssignmentStrategy::CooperativeSticky, &ms, &counts);
        assert_eq!(plan["m1"], vec![tp("t", 0)]);
    }

    #[test]
    fn consumer_protocol_round_trips_with_its_version_prefix() {
        let owned = vec![tp("a", 1), tp("a", 2), tp("b", 0)];
        let bytes =
            encode_subscription(&subscription(&["a".into(), "b".into()], &owned, 7)).unwrap();
        assert_eq!(&bytes[..2], &[0, 3]);
        let decoded = decode_subscription("m", Some("i"), &bytes).unwrap();
        assert_eq!(decoded.topics, vec!["a", "b"]);
        assert_eq!(decoded.owned, owned);
        assert_eq!(decoded.generation_id, 7);
        assert_eq!(decoded.group_instance_id.as_deref(), Some("i"));
        let assignment = encode_assignment(&owned).unwrap();
        assert_eq!(decode_assignment(&assignment).unwrap(), owned);
        assert!(decode_assignment(&Bytes::new()).unwrap().is_empty());
    }

    #[test]
    fn consumer_protocol_reads_newer_and_older_versions() {
        // A v0 subscription (librdkafka's eager members): topics and user data only.
        let mut v0 = BytesMut::new();
        v0.put_i16(0);
        subscription(&["a".into()], &[], -1)
            .encode(&mut v0, 0)
            .unwrap();
        let decoded = decode_subscription("m", None, &v0.freeze()).unwrap();
        assert_eq!(decoded.topics, vec!["a"]);
        assert_eq!(decoded.generation_id, -1);
        // A future version with a field appended is read as v3.
        let mut v9 = BytesMut::new();
        v9.put_i16(9);
        subscription(&["a".into()], &[tp("a", 0)], 2)
            .encode(&mut v9, 3)
            .unwrap();
        v9.put_i32(42);
        let decoded = decode_subscription("m", None, &v9.freeze()).unwrap();
        assert_eq!(decoded.owned, vec![tp("a", 0)]);
        assert!(decode_subscription("m", None, &Bytes::from_static(&[0])).is_err());
        assert!(decode_assignment(&Bytes::from_static(&[0, 0, 0])).is_err());
    }

    fn topics_strategy() -> impl Strategy<Value = BTreeMap<String, i32>> {
        proptest::collection::btree_map("[a-d]", 0..12i32, 1..4)
    }

    proptest! {
        #[test]
        fn every_partition_is_assigned_exactly_once(
            counts in topics_strategy(),
            n in 1..7usize,
            strategy in prop_oneof![
                Just(AssignmentStrategy::Range),
                Just(AssignmentStrategy::RoundRobin),
                Just(AssignmentStrategy::CooperativeSticky),
            ],
        ) {
            let topics: Vec<&str> = counts.keys().map(String::as_str).collect();
            let plan = assign(strategy, &members(n, &topics), &counts);
            prop_assert_eq!(plan.len(), n);
            assert_exactly_once(&plan, &counts);
            if strategy != AssignmentStrategy::Range {
                prop_assert!(spread(&plan) <= 1, "{:?}", plan);
            }
        }

        #[test]
        fn cooperative_sticky_keeps_partitions_when_members_come_and_go(
            counts in topics_strategy(),
            before in 1..6usize,
            after in 1..6usize,
        ) {
            let topics: Vec<&str> = counts.keys().map(String::as_str).collect();
            let strategy = AssignmentStrategy::CooperativeSticky;
            let old = assign(strategy, &members(before, &topics), &counts);
            // Members m0..m{after} remain or join; the rest have left.
            let next = owning(members(after, &topics), &old, 1);
            let first = assign(strategy, &next, &counts);
            let total: usize = counts.values().map(|&c| c as usize).sum();
            for (member, partitions) in &first {
                let owned = old.get(member).cloned().unwrap_or_default();
                for p in partitions {
                    // KIP-429: nothing goes to a new owner while its old owner still holds it.
                    let holder = old.iter().find(|(_, ps)| ps.contains(p)).map(|(m, _)| m);
                    prop_assert!(
                        holder.is_none_or(|h| h == member || !next.iter().any(|m| &m.member_id == h)),
                        "{} given to {} while {:?} holds it", p, member, holder
                    );
                }
                // Stickiness: a surviving member keeps as much as balance allows.
                let kept = partitions.iter().filter(|p| owned.contains(p)).count();
                prop_assert!(kept >= owned.len().min(total / after), "{member}: {old:?} -> {first:?}");
            }
            // The follow-up rebalance completes the hand-over, balanced.
            let second = assign(strategy, &owning(next, &first, 2), &counts);
            assert_exactly_once(&second, &counts);
            prop_assert!(spread(&second) <= 1, "{:?}", second);
            for (member, partitions) in &first {
                prop_assert!(partitions.iter().all(|p| second[member].contains(p)), "second round took from {member}");
            }
        }
    }
}
