//! KIP-848 consumer groups driven through ConsumerGroupHeartbeat, with time
//! passed in and clients that use exactly what their last response gave;
//! and their persistence: the records a group writes, replayed into a
//! fresh group or shard, let every member carry on.

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::messages::consumer_group_heartbeat_request::TopicPartitions;
use kafka_protocol::messages::{
    ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use proptest::prelude::*;
use runnel_group::assignor::{Partitions, TopicPartition};
use runnel_group::consumer::{ConsumerConfig, ConsumerGroup, TopicMetadata};
use runnel_group::records::{ConsumerKey, ConsumerValue, RecordKey};
use uuid::Uuid;

const REBALANCE_TIMEOUT_MS: i32 = 30_000;

#[derive(Debug, Default)]
struct Topics {
    by_name: BTreeMap<String, (Uuid, i32)>,
    next_id: u128,
}

impl Topics {
    fn with(topics: &[(&str, i32)]) -> Topics {
        let mut all = Topics::default();
        for &(name, partitions) in topics {
            all.create(name, partitions);
        }
        all
    }

    fn create(&mut self, name: &str, partitions: i32) {
        self.next_id += 1;
        self.by_name
            .insert(name.to_owned(), (Uuid::from_u128(self.next_id), partitions));
    }

    fn resize(&mut self, name: &str, partitions: i32) {
        if let Some(topic) = self.by_name.get_mut(name) {
            topic.1 = partitions;
        }
    }

    fn id(&self, name: &str) -> Uuid {
        self.by_name[name].0
    }

    fn all_partitions(&self, names: &[&str]) -> Partitions {
        names
            .iter()
            .flat_map(|name| {
                let (id, count) = self.by_name[*name];
                (0..count).map(move |p| TopicPartition::new(id, p))
            })
            .collect()
    }
}

impl TopicMetadata for Topics {
    fn topic_by_name(&self, name: &str) -> Option<(Uuid, i32)> {
        self.by_name.get(name).copied()
    }

    fn topic_by_id(&self, id: Uuid) -> Option<(String, i32)> {
        self.by_name
            .iter()
            .find(|(_, (topic_id, _))| *topic_id == id)
            .map(|(name, (_, count))| (name.clone(), *count))
    }

    fn topic_names(&self) -> Vec<String> {
        self.by_name.keys().cloned().collect()
    }
}

/// A consumer that owns what its last response assigned it.
#[derive(Debug, Clone)]
struct Client {
    epoch: i32,
    owned: Partitions,
    version: i16,
}

#[derive(Debug)]
struct Harness {
    group: ConsumerGroup,
    cfg: ConsumerConfig,
    topics: Topics,
    now: i64,
    clients: BTreeMap<String, Client>,
    /// Every record the group asked to write, in order.
    log: Vec<(ConsumerKey, Option<ConsumerValue>)>,
}

fn names(topics: &[&str]) -> Vec<TopicName> {
    topics
        .iter()
        .map(|t| TopicName(StrBytes::from_string(t.to_string())))
        .collect()
}

fn owned_field(owned: &Partitions) -> Vec<TopicPartitions> {
    let mut by_topic: BTreeMap<Uuid, Vec<i32>> = BTreeMap::new();
    for tp in owned {
        by_topic.entry(tp.topic_id).or_default().push(tp.partition);
    }
    by_topic
        .into_iter()
        .map(|(topic_id, partitions)| {
            let mut topic = TopicPartitions::default();
            topic.topic_id = topic_id;
            topic.partitions = partitions;
            topic
        })
        .collect()
}

fn assignment_of(response: &ConsumerGroupHeartbeatResponse) -> Option<Partitions> {
    response.assignment.as_ref().map(|assignment| {
        assignment
            .topic_partitions
            .iter()
            .flat_map(|tp| {
                tp.partitions
                    .iter()
                    .map(|&p| TopicPartition::new(tp.topic_id, p))
            })
            .collect()
    })
}

fn join_request(member_id: &str, topics: &[&str]) -> ConsumerGroupHeartbeatRequest {
    let mut request = ConsumerGroupHeartbeatRequest::default();
    request.member_id = StrBytes::from_string(member_id.to_owned());
    request.member_epoch = 0;
    request.rebalance_timeout_ms = REBALANCE_TIMEOUT_MS;
    request.subscribed_topic_names = Some(names(topics));
    request.topic_partitions = Some(Vec::new());
    request
}

fn heartbeat_request(
    member_id: &str,
    epoch: i32,
    owned: Option<&Partitions>,
) -> ConsumerGroupHeartbeatRequest {
    let mut request = ConsumerGroupHeartbeatRequest::default();
    request.member_id = StrBytes::from_string(member_id.to_owned());
    request.member_epoch = epoch;
    request.topic_partitions = owned.map(owned_field);
    request
}

fn error(response: &ConsumerGroupHeartbeatResponse) -> i16 {
    response.error_code
}

impl Harness {
    fn new(topics: Topics) -> Harness {
        Harness {
            group: ConsumerGroup::new("g".into()),
            cfg: ConsumerConfig::default(),
            topics,
            now: 1_000,
            clients: BTreeMap::new(),
            log: Vec::new(),
        }
    }

    /// Writes what the group's log lacks, as the runtime does after each
    /// call.
    fn persist(&mut self) {
        let writes = self.group.unwritten();
        for (key, value) in &writes {
            self.group.mark_written(key, value.as_ref());
        }
        self.log.extend(writes);
    }

    /// Replaces the group by one replayed from the log's bytes at `now`,
    /// as a restarted coordinator would; it must hold the same state and
    /// have nothing left to write. (A group that never wrote does not
    /// exist for a coordinator: nothing happens then.)
    fn restart(&mut self) {
        if self.log.is_empty() {
            return;
        }
        let mut group = ConsumerGroup::new("g".into());
        for (key, value) in &self.log {
            let record = RecordKey::Consumer {
                group: "g".into(),
                key: key.clone(),
            };
            let RecordKey::Consumer { key, .. } = RecordKey::decode(&record.encode()).unwrap()
            else {
                panic!("{record:?} decoded as another kind");
            };
            let value = value
                .as_ref()
                .map(|v| ConsumerValue::decode(&key, &v.encode()).unwrap());
            group.replay(key, value, self.now, &self.cfg);
        }
        assert_eq!(group.records(), self.group.records());
        assert_eq!(group.unwritten(), Vec::new());
        assert_eq!(
            group.describe(&self.topics),
            self.group.describe(&self.topics)
        );
        self.group = group;
        self.check_invariants();
    }

    /// Sends a request as-is, checks the group's invariants, returns the
    /// response.
    fn send(
        &mut self,
        version: i16,
        request: &ConsumerGroupHeartbeatRequest,
    ) -> ConsumerGroupHeartbeatResponse {
        let fresh = format!("fresh-{}", self.now);
        let response =
            self.group
                .heartbeat(self.now, &self.cfg, &self.topics, version, request, &fresh);
        self.persist();
        self.check_invariants();
        response
    }

    /// Joins a member: v1 under `name`, v0 under the id the coordinator
    /// gives. Returns the member id.
    fn join(&mut self, name: &str, version: i16, topics: &[&str]) -> String {
        let request = join_request(if version >= 1 { name } else { "" }, topics);
        let response = self.send(version, &request);
        assert_eq!(error(&response), 0, "{response:?}");
        let member_id = response
            .member_id
            .as_ref()
            .map(|id| id.to_string())
            .unwrap_or_default();
        assert!(!member_id.is_empty());
        let client = Client {
            epoch: 0,
            owned: Partitions::new(),
            version,
        };
        self.clients.insert(member_id.clone(), client);
        self.apply(&member_id, &response);
        member_id
    }

    fn apply(&mut self, member_id: &str, response: &ConsumerGroupHeartbeatResponse) {
        let assignment = assignment_of(response);
        let Some(client) = self.clients.get_mut(member_id) else {
            return;
        };
        client.epoch = response.member_epoch;
        if let Some(assignment) = assignment {
            client.owned = assignment;
        }
        self.check_invariants();
    }

    /// A regular heartbeat reporting what the client owns.
    fn heartbeat(&mut self, member_id: &str) -> ConsumerGroupHeartbeatResponse {
        let client = self.clients[member_id].clone();
        let request = heartbeat_request(member_id, client.epoch, Some(&client.owned));
        let response = self.send(client.version, &request);
        assert_eq!(error(&response), 0, "{response:?}");
        self.apply(member_id, &response);
        response
    }

    /// Every client heartbeats in turn until the group is Stable.
    fn settle(&mut self) {
        for _ in 0..10 {
            let ids: Vec<String> = self.clients.keys().cloned().collect();
            for id in ids {
                self.heartbeat(&id);
            }
            if self.group.state_name() == "Stable" {
                return;
            }
        }
        panic!(
            "group did not settle: {:?}",
            self.group.describe(&self.topics)
        );
    }

    fn leave(&mut self, member_id: &str, epoch: i32) -> ConsumerGroupHeartbeatResponse {
        let client = self.clients.remove(member_id);
        let version = client.map_or(1, |c| c.version);
        let response = self.send(version, &heartbeat_request(member_id, epoch, None));
        assert_eq!(error(&response), 0, "{response:?}");
        response
    }

    fn tick(&mut self) {
        self.group.tick(self.now, &self.cfg, &self.topics);
        self.persist();
        self.check_invariants();
    }

    /// No partition is held by two members, in the group's books or in
    /// what the clients consume.
    fn check_invariants(&self) {
        let mut held = Partitions::new();
        for id in self.group.member_ids() {
            let assigned = self
                .group
                .member_assignment(&id)
                .cloned()
                .unwrap_or_default();
            let pending = self
                .group
                .member_pending_revocation(&id)
                .cloned()
                .unwrap_or_default();
            for tp in assigned.iter().chain(&pending) {
                assert!(held.insert(*tp), "{tp:?} held by two members");
            }
        }
        let mut consumed = Partitions::new();
        for client in self.clients.values() {
            for tp in &client.owned {
                assert!(consumed.insert(*tp), "{tp:?} consumed by two clients");
            }
        }
    }

    fn owned(&self, member_id: &str) -> &Partitions {
        &self.clients[member_id].owned
    }

    fn assert_complete(&self, topics: &[&str]) {
        let all: Partitions = self
            .clients
            .values()
            .flat_map(|c| c.owned.iter().copied())
            .collect();
        assert_eq!(all, self.topics.all_partitions(topics));
    }
}

#[test]
fn three_members_v0_and_v1_get_a_disjoint_complete_assignment() {
    let mut h = Harness::new(Topics::with(&[("t", 6)]));
    let a = h.join("a", 0, &["t"]);
    assert_eq!(a, "fresh-1000", "v0 members get the coordinator's id");
    let b = h.join("b", 1, &["t"]);
    let c = h.join("c", 1, &["t"]);
    assert_eq!(b, "b");
    h.settle();
    h.assert_complete(&["t"]);
    for id in [&a, &b, &c] {
        assert_eq!(h.owned(id).len(), 2);
        assert_eq!(h.group.member_epoch(id), Some(h.group.group_epoch()));
    }
    assert_eq!(h.group.group_epoch(), 3);
    assert_eq!(h.group.state_name(), "Stable");
}

#[test]
fn a_joining_member_waits_for_revocation_before_taking_partitions() {
    let mut h = Harness::new(Topics::with(&[("t", 6)]));
    for name in ["a", "b", "c"] {
        h.join(name, 1, &["t"]);
    }
    h.settle();
    let before: BTreeMap<String, Partitions> = ["a", "b", "c"]
        .iter()
        .map(|id| (id.to_string(), h.owned(id).clone()))
        .collect();

    let d = h.join("d", 1, &["t"]);
    // Everything d's target holds is still owned by someone: it gets nothing yet.
    assert!(h.owned(&d).is_empty());
    assert_eq!(h.group.state_name(), "Reconciling");
    let target = h.group.member_target(&d).cloned().unwrap_or_default();
    assert!(!target.is_empty());

    // The old owners learn what to revoke; their epoch stays until they do.
    let old_epoch = h.clients["a"].epoch;
    for id in ["a", "b", "c"] {
        let response = h.heartbeat(id);
        let pending = h
            .group
            .member_pending_revocation(id)
            .cloned()
            .unwrap_or_default();
        if !pending.is_empty() {
            assert_eq!(response.member_epoch, old_epoch);
            assert!(pending.is_subset(&before[id]));
        }
    }
    // d still has nothing: nobody has confirmed a revocation.
    h.heartbeat(&d);
    assert!(h.owned(&d).is_empty());
    h.settle();
    h.assert_complete(&["t"]);
    assert_eq!(h.owned(&d).len(), target.len());
    let counts: BTreeSet<usize> = h.clients.values().map(|c| c.owned.len()).collect();
    assert_eq!(counts, BTreeSet::from([1, 2]));
    // Sticky: the old members kept only partitions they had.
    for id in ["a", "b", "c"] {
        assert!(h.owned(id).is_subset(&before[id]));
    }
}

#[test]
fn a_leave_reassigns_the_partitions_and_echoes_epoch_minus_one() {
    let mut h = Harness::new(Topics::with(&[("t", 6)]));
    for name in ["a", "b", "c"] {
        h.join(name, 1, &["t"]);
    }
    h.settle();
    let epoch = h.group.group_epoch();
    let response = h.leave("b", -1);
    assert_eq!(response.member_epoch, -1);
    assert_eq!(response.member_id.as_deref(), Some("b"));
    assert_eq!(h.group.group_epoch(), epoch + 1);
    h.settle();
    h.assert_complete(&["t"]);
    assert_eq!(h.owned("a").len(), 3);
    assert_eq!(h.owned("c").len(), 3);
}

#[test]
fn session_expiry_removes_the_member_and_reassigns() {
    let mut h = Harness::new(Topics::with(&[("t", 4)]));
    h.join("a", 1, &["t"]);
    h.join("b", 1, &["t"]);
    h.settle();
    let session = i64::from(h.cfg.session_timeout_ms);
    // b goes silent; a keeps heartbeating.
    h.clients.remove("b");
    h.now += session / 2;
    h.heartbeat("a");
    assert_eq!(h.group.next_deadline(), Some(1_000 + session));
    h.now = 1_000 + session - 1;
    h.tick();
    assert_eq!(h.group.member_ids().len(), 2);
    h.now += 1;
    h.tick();
    assert_eq!(h.group.member_ids(), vec!["a".to_string()]);
    h.settle();
    h.assert_complete(&["t"]);
    let response = h.send(1, &heartbeat_request("b", 1, None));
    assert_eq!(error(&response), ResponseError::UnknownMemberId.code());
}

#[test]
fn a_member_that_does_not_revoke_in_time_is_fenced() {
    let mut h = Harness::new(Topics::with(&[("t", 4)]));
    h.join("a", 1, &["t"]);
    h.settle();
    h.join("b", 1, &["t"]);
    // a is told to revoke two partitions but never confirms.
    let response = h.send(1, &heartbeat_request("a", h.clients["a"].epoch, None));
    assert_eq!(error(&response), 0);
    let pending = h
        .group
        .member_pending_revocation("a")
        .cloned()
        .unwrap_or_default();
    assert_eq!(pending.len(), 2);
    let deadline = h.now + i64::from(REBALANCE_TIMEOUT_MS);
    assert_eq!(h.group.next_deadline(), Some(deadline));
    let epoch = h.group.group_epoch();
    h.now = deadline;
    h.tick();
    assert_eq!(h.group.member_ids(), vec!["b".to_string()]);
    assert_eq!(h.group.group_epoch(), epoch + 1);
    h.clients.remove("a");
    h.settle();
    h.assert_complete(&["t"]);
}

fn static_join(member_id: &str, instance: &str, topics: &[&str]) -> ConsumerGroupHeartbeatRequest {
    let mut request = join_request(member_id, topics);
    request.instance_id = Some(StrBytes::from_string(instance.to_owned()));
    request
}

#[test]
fn a_static_member_rejoins_with_its_partitions_and_epoch() {
    let mut h = Harness::new(Topics::with(&[("t", 6)]));
    let response = h.send(1, &static_join("s1", "instance-1", &["t"]));
    assert_eq!(error(&response), 0);
    h.clients.insert(
        "s1".into(),
        Client {
            epoch: 0,
            owned: Partitions::new(),
            version: 1,
        },
    );
    h.apply("s1", &response);
    h.join("b", 1, &["t"]);
    h.join("c", 1, &["t"]);
    h.settle();
    let partitions = h.owned("s1").clone();
    let epoch = h.group.group_epoch();
    let others: Vec<(i32, Partitions)> = ["b", "c"]
        .iter()
        .map(|id| (h.clients[*id].epoch, h.owned(id).clone()))
        .collect();

    let response = h.leave("s1", -2);
    assert_eq!(response.member_epoch, -2);
    let described = h.group.describe(&h.topics);
    let left = described
        .members
        .iter()
        .find(|m| m.member_id.as_str() == "s1");
    assert_eq!(left.map(|m| m.member_epoch), Some(-2));
    assert_eq!(
        h.group.group_epoch(),
        epoch,
        "a temporary leave moves nothing"
    );
    // The same instance id is still taken by nobody active: a rejoin with a
    // new member id takes over.
    let response = h.send(1, &static_join("s1-again", "instance-1", &["t"]));
    assert_eq!(error(&response), 0, "{response:?}");
    assert_eq!(response.member_epoch, epoch);
    assert_eq!(assignment_of(&response), Some(partitions));
    assert_eq!(h.group.group_epoch(), epoch);
    assert!(h.group.member_epoch("s1").is_none());
    for (id, (old_epoch, old_owned)) in ["b", "c"].iter().zip(others) {
        let response = h.heartbeat(id);
        assert_eq!(response.member_epoch, old_epoch);
        assert_eq!(h.owned(id), &old_owned);
    }
    assert_eq!(h.group.state_name(), "Stable");
}

#[test]
fn a_static_member_that_stays_away_expires_after_its_session() {
    let mut h = Harness::new(Topics::with(&[("t", 2)]));
    let response = h.send(1, &static_join("s1", "instance-1", &["t"]));
    assert_eq!(error(&response), 0);
    h.join("b", 1, &["t"]);
    let left_at = h.now;
    h.leave("s1", -2);
    h.now = left_at + i64::from(h.cfg.session_timeout_ms) - 1;
    h.heartbeat("b");
    h.tick();
    assert_eq!(h.group.member_ids().len(), 2);
    h.now += 1;
    h.tick();
    assert_eq!(h.group.member_ids(), vec!["b".to_string()]);
    h.settle();
    h.assert_complete(&["t"]);
}

#[test]
fn an_instance_id_held_by_an_active_member_is_unreleased() {
    let mut h = Harness::new(Topics::with(&[("t", 2)]));
    assert_eq!(error(&h.send(1, &static_join("s1", "i", &["t"]))), 0);
    let response = h.send(1, &static_join("s2", "i", &["t"]));
    assert_eq!(error(&response), ResponseError::UnreleasedInstanceId.code());
    // After a full leave the instance id is free.
    let response = h.send(1, &heartbeat_request("s1", -1, None));
    assert_eq!(error(&response), 0);
    assert_eq!(error(&h.send(1, &static_join("s2", "i", &["t"]))), 0);
}

#[test]
fn heartbeats_with_wrong_epochs_are_fenced() {
    let mut h = Harness::new(Topics::with(&[("t", 4)]));
    h.join("0", 1, &["t"]);
    h.join("a", 1, &["t"]);
    h.settle();
    let epoch = h.clients["a"].epoch;
    let owned = h.owned("a").clone();
    let higher = h.send(1, &heartbeat_request("a", epoch + 1, None));
    assert_eq!(error(&higher), ResponseError::FencedMemberEpoch.code());
    // Move a to a newer epoch.
    h.join("b", 1, &["t"]);
    h.settle();
    let new_epoch = h.clients["a"].epoch;
    assert!(new_epoch > epoch);
    // Its previous epoch with owned partitions inside its assignment is a
    // lost response, tolerated.
    let current = h.owned("a").clone();
    let ok = h.send(1, &heartbeat_request("a", epoch, Some(&current)));
    assert_eq!(error(&ok), 0, "{ok:?}");
    assert_eq!(ok.member_epoch, new_epoch);
    // But not if it claims partitions it no longer has.
    assert!(!owned.is_subset(&current));
    let stale = h.send(1, &heartbeat_request("a", epoch, Some(&owned)));
    assert_eq!(error(&stale), ResponseError::FencedMemberEpoch.code());
    // Nor an older epoch than the previous one.
    assert!(epoch - 1 > 0);
    let older = h.send(1, &heartbeat_request("a", epoch - 1, None));
    assert_eq!(error(&older), ResponseError::FencedMemberEpoch.code());
    let unknown = h.send(1, &heartbeat_request("nobody", 1, None));
    assert_eq!(error(&unknown), ResponseError::UnknownMemberId.code());
}

#[test]
fn a_fenced_member_rejoins_under_its_own_id_with_its_partitions() {
    let mut h = Harness::new(Topics::with(&[("t", 4)]));
    h.join("a", 1, &["t"]);
    h.join("b", 1, &["t"]);
    h.settle();
    let epoch = h.group.group_epoch();
    let partitions = h.owned("a").clone();
    let fenced = h.send(1, &heartbeat_request("a", epoch + 5, None));
    assert_eq!(error(&fenced), ResponseError::FencedMemberEpoch.code());
    // The client gives up everything and joins again with the same id.
    let response = h.send(1, &join_request("a", &["t"]));
    assert_eq!(error(&response), 0);
    assert_eq!(response.member_epoch, epoch);
    assert_eq!(assignment_of(&response), Some(partitions));
    assert_eq!(h.group.group_epoch(), epoch);
}

#[test]
fn more_partitions_in_a_subscribed_topic_bump_the_group_epoch() {
    let mut h = Harness::new(Topics::with(&[("t", 2), ("other", 3)]));
    h.join("a", 1, &["t"]);
    h.join("b", 1, &["t"]);
    h.settle();
    let epoch = h.group.group_epoch();
    h.topics.resize("other", 5);
    h.tick();
    assert_eq!(
        h.group.group_epoch(),
        epoch,
        "unsubscribed topics do not matter"
    );
    h.topics.resize("t", 4);
    h.heartbeat("a");
    assert_eq!(h.group.group_epoch(), epoch + 1);
    h.settle();
    h.assert_complete(&["t"]);
    // Found by tick as well.
    h.topics.resize("t", 6);
    h.tick();
    assert_eq!(h.group.group_epoch(), epoch + 2);
    h.settle();
    h.assert_complete(&["t"]);
    assert_eq!(h.owned("a").len(), 3);
}

#[test]
fn a_topic_created_later_is_assigned_when_subscribed_by_name() {
    let mut h = Harness::new(Topics::with(&[("t", 2)]));
    h.join("a", 1, &["t", "later"]);
    h.settle();
    h.topics.create("later", 2);
    h.tick();
    h.settle();
    h.assert_complete(&["t", "later"]);
}

fn regex_join(member_id: &str, regex: &str) -> ConsumerGroupHeartbeatRequest {
    let mut request = join_request(member_id, &[]);
    request.subscribed_topic_names = None;
    request.subscribed_topic_regex = Some(StrBytes::from_string(regex.to_owned()));
    request
}

#[test]
fn a_regex_subscription_fully_matches_topic_names() {
    let topics = Topics::with(&[
        ("orders-eu", 2),
        ("orders-us", 2),
        ("my-orders-x", 3),
        ("__consumer_offsets", 50),
    ]);
    let mut h = Harness::new(topics);
    let response = h.send(1, &regex_join("a", "orders-.*"));
    assert_eq!(error(&response), 0, "{response:?}");
    h.clients.insert(
        "a".into(),
        Client {
            epoch: 0,
            owned: Partitions::new(),
            version: 1,
        },
    );
    h.apply("a", &response);
    h.settle();
    h.assert_complete(&["orders-eu", "orders-us"]);
    assert_eq!(
        h.group.subscribed_topics(),
        BTreeSet::from(["orders-eu".to_string(), "orders-us".to_string()])
    );
    // A new matching topic is picked up.
    let epoch = h.group.group_epoch();
    h.topics.create("orders-jp", 1);
    h.tick();
    assert_eq!(h.group.group_epoch(), epoch + 1);
    h.settle();
    h.assert_complete(&["orders-eu", "orders-us", "orders-jp"]);
    let described = h.group.describe(&h.topics);
    assert_eq!(
        described.members[0].subscribed_topic_regex.as_deref(),
        Some("orders-.*")
    );
    // An internal topic never matches.
    let response = h.send(1, &regex_join("b", "__.*"));
    assert_eq!(error(&response), 0);
    assert!(!h.group.subscribed_topics().contains("__consumer_offsets"));
}

#[test]
fn an_invalid_regex_is_rejected() {
    let mut h = Harness::new(Topics::with(&[("t", 1)]));
    for invalid in ["orders-([", "a)|(b", "(?<=x)y"] {
        let response = h.send(1, &regex_join("a", invalid));
        let code = ResponseError::InvalidRegularExpression.code();
        assert_eq!(error(&response), code, "{invalid}");
    }
    assert!(h.group.is_empty());
}

#[test]
fn joins_without_the_required_fields_are_invalid() {
    let mut h = Harness::new(Topics::with(&[("t", 1)]));
    let invalid = ResponseError::InvalidRequest.code();
    assert_eq!(
        error(&h.send(1, &join_request("", &["t"]))),
        invalid,
        "v1 needs a client id"
    );
    let mut no_timeout = join_request("a", &["t"]);
    no_timeout.rebalance_timeout_ms = -1;
    assert_eq!(error(&h.send(1, &no_timeout)), invalid);
    let mut no_subscription = join_request("a", &["t"]);
    no_subscription.subscribed_topic_names = None;
    assert_eq!(error(&h.send(1, &no_subscription)), invalid);
    let mut owns = join_request("a", &["t"]);
    owns.topic_partitions = Some(owned_field(&h.topics.all_partitions(&["t"])));
    assert_eq!(error(&h.send(1, &owns)), invalid);
    let mut assignor = join_request("a", &["t"]);
    assignor.server_assignor = Some(StrBytes::from_static_str("sticky"));
    assert_eq!(
        error(&h.send(1, &assignor)),
        ResponseError::UnsupportedAssignor.code()
    );
    let response = h.send(1, &heartbeat_request("a", -3, None));
    assert_eq!(error(&response), invalid);
    assert!(h.group.is_empty());
    assert_eq!(h.group.group_epoch(), 0);
}

#[test]
fn a_full_group_refuses_new_members() {
    let mut h = Harness::new(Topics::with(&[("t", 2)]));
    h.cfg.max_size = 2;
    h.join("a", 1, &["t"]);
    h.join("b", 1, &["t"]);
    let response = h.send(1, &join_request("c", &["t"]));
    assert_eq!(error(&response), ResponseError::GroupMaxSizeReached.code());
    // A member already in the group may rejoin.
    assert_eq!(error(&h.send(1, &join_request("a", &["t"]))), 0);
}

#[test]
fn the_range_assignor_is_used_when_asked_for() {
    let mut h = Harness::new(Topics::with(&[("t", 5)]));
    let mut request = join_request("a", &["t"]);
    request.server_assignor = Some(StrBytes::from_static_str("range"));
    let response = h.send(1, &request);
    assert_eq!(error(&response), 0);
    h.clients.insert(
        "a".into(),
        Client {
            epoch: 0,
            owned: Partitions::new(),
            version: 1,
        },
    );
    h.apply("a", &response);
    h.join("b", 1, &["t"]);
    h.settle();
    let t = h.topics.id("t");
    let range =
        |r: std::ops::Range<i32>| r.map(|p| TopicPartition::new(t, p)).collect::<Partitions>();
    assert_eq!(h.owned("a"), &range(0..3));
    assert_eq!(h.owned("b"), &range(3..5));
    assert_eq!(h.group.describe(&h.topics).assignor_name.as_str(), "range");
}

#[test]
fn the_assignment_is_sent_only_when_it_changed() {
    let mut h = Harness::new(Topics::with(&[("t", 2)]));
    h.join("a", 1, &["t"]);
    h.settle();
    let epoch = h.clients["a"].epoch;
    let quiet = h.send(1, &heartbeat_request("a", epoch, None));
    assert_eq!(error(&quiet), 0);
    assert!(quiet.assignment.is_none());
    assert_eq!(quiet.heartbeat_interval_ms, h.cfg.heartbeat_interval_ms);
    // Owned partitions alone do not bring it back (Kafka's rule) ...
    let response = h.send(1, &heartbeat_request("a", epoch, Some(&Partitions::new())));
    assert!(response.assignment.is_none());
    // ... a full request, as a client sends after an error, does.
    let mut full = heartbeat_request("a", epoch, Some(&Partitions::new()));
    full.rebalance_timeout_ms = 5_000;
    full.subscribed_topic_names = Some(vec![TopicName(StrBytes::from_static_str("t"))]);
    let response = h.send(1, &full);
    assert_eq!(assignment_of(&response).map(|a| a.len()), Some(2));
}

#[test]
fn offset_commits_follow_the_member_epoch() {
    let mut h = Harness::new(Topics::with(&[("t", 2)]));
    assert_eq!(h.group.validate_offset_commit("", -1, 9), Ok(()));
    h.join("a", 1, &["t"]);
    h.settle();
    let epoch = h.clients["a"].epoch;
    assert_eq!(h.group.validate_offset_commit("a", epoch, 9), Ok(()));
    assert_eq!(
        h.group.validate_offset_commit("", -1, 9),
        Err(ResponseError::UnknownMemberId.code())
    );
    assert_eq!(
        h.group.validate_offset_commit("x", epoch, 9),
        Err(ResponseError::UnknownMemberId.code())
    );
    assert_eq!(
        h.group.validate_offset_commit("a", epoch, 8),
        Err(ResponseError::UnsupportedVersion.code())
    );
    assert_eq!(
        h.group.validate_offset_commit("a", epoch + 1, 9),
        Err(ResponseError::FencedMemberEpoch.code())
    );
    assert_eq!(
        h.group.validate_offset_commit("a", epoch - 1, 9),
        Err(ResponseError::StaleMemberEpoch.code())
    );
    assert_eq!(h.group.validate_offset_fetch("", -1), Ok(()));
    assert_eq!(h.group.validate_offset_fetch("a", epoch), Ok(()));
    assert_eq!(
        h.group.validate_offset_fetch("a", epoch - 1),
        Err(ResponseError::StaleMemberEpoch.code())
    );
    assert_eq!(
        h.group.validate_offset_fetch("x", epoch),
        Err(ResponseError::UnknownMemberId.code())
    );
}

#[test]
fn describe_shows_members_assignments_and_targets() {
    let mut h = Harness::new(Topics::with(&[("t", 3)]));
    let mut request = join_request("a", &["t"]);
    request.rack_id = Some(StrBytes::from_static_str("rack-1"));
    let response = h.send(1, &request);
    assert_eq!(error(&response), 0);
    h.group.set_client("a", "client-a", "/10.0.0.1");
    let described = h.group.describe(&h.topics);
    assert_eq!(described.group_id.as_str(), "g");
    assert_eq!(described.group_state.as_str(), "Stable");
    assert_eq!(described.group_epoch, 1);
    assert_eq!(described.assignment_epoch, 1);
    assert_eq!(described.assignor_name.as_str(), "uniform");
    let member = &described.members[0];
    assert_eq!(member.member_id.as_str(), "a");
    assert_eq!(member.rack_id.as_deref(), Some("rack-1"));
    assert_eq!(member.client_id.as_str(), "client-a");
    assert_eq!(member.client_host.as_str(), "/10.0.0.1");
    assert_eq!(member.member_epoch, 1);
    assert_eq!(member.member_type, 1);
    assert_eq!(member.subscribed_topic_names.len(), 1);
    assert_eq!(
        member.assignment.topic_partitions[0].topic_name.as_str(),
        "t"
    );
    assert_eq!(
        member.assignment.topic_partitions[0].partitions,
        vec![0, 1, 2]
    );
    assert_eq!(member.target_assignment, member.assignment);
    assert_eq!(h.group.describe_at(&h.topics, 0).members[0].member_type, -1);

    h.group.shut_down();
    assert_eq!(h.group.state_name(), "Dead");
    let response = h.send(1, &heartbeat_request("a", 1, None));
    assert_eq!(error(&response), ResponseError::NotCoordinator.code());
    assert_eq!(h.group.next_deadline(), None);
}

#[test]
fn an_empty_group_has_no_deadline_and_is_empty() {
    let mut h = Harness::new(Topics::with(&[("t", 1)]));
    assert!(h.group.is_empty());
    assert_eq!(h.group.state_name(), "Empty");
    assert_eq!(h.group.next_deadline(), None);
    h.join("a", 1, &["t"]);
    h.leave("a", -1);
    assert_eq!(h.group.state_name(), "Empty");
    assert_eq!(h.group.group_epoch(), 2);
}

#[derive(Debug, Clone)]
enum Step {
    Join(u8),
    Leave(u8),
    /// Epoch -2, for the static slots.
    LeaveStatic(u8),
    Heartbeat(u8),
    /// Heartbeat without reporting owned partitions.
    Quiet(u8),
    Advance(u16),
    GrowTopic,
    /// The coordinator restarts: the group is replayed from its records.
    Restart,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (0u8..6).prop_map(Step::Join),
        (0u8..6).prop_map(Step::Leave),
        (0u8..2).prop_map(Step::LeaveStatic),
        (0u8..6).prop_map(Step::Heartbeat),
        (0u8..6).prop_map(Step::Heartbeat),
        (0u8..6).prop_map(Step::Quiet),
        (0u16..20_000).prop_map(Step::Advance),
        Just(Step::GrowTopic),
        Just(Step::Restart),
    ]
}

/// Six client slots: 0 and 1 static (a restart is a new member id with
/// the same instance id), 2 speaks v0, the rest v1; even slots read both
/// topics, odd ones only "t".
#[derive(Debug, Default)]
struct Slots {
    member_ids: BTreeMap<u8, String>,
    restarts: u32,
}

impl Slots {
    fn join(&mut self, h: &mut Harness, slot: u8) {
        if self.member_ids.contains_key(&slot) {
            return;
        }
        self.restarts += 1;
        let topics: &[&str] = if slot.is_multiple_of(2) {
            &["t", "u"]
        } else {
            &["t"]
        };
        let version = if slot == 2 { 0 } else { 1 };
        let mut request = join_request(&format!("m{slot}-{}", self.restarts), topics);
        if version == 0 {
            request.member_id = StrBytes::default();
        }
        if slot < 2 {
            request.instance_id = Some(StrBytes::from_string(format!("i{slot}")));
        }
        let response = h.send(version, &request);
        if response.error_code != 0 {
            // The instance id is still held by a member whose client gave up.
            assert_eq!(
                response.error_code,
                ResponseError::UnreleasedInstanceId.code()
            );
            return;
        }
        let member_id = response
            .member_id
            .as_deref()
            .unwrap_or_default()
            .to_string();
        let client = Client {
            epoch: 0,
            owned: Partitions::new(),
            version,
        };
        h.clients.insert(member_id.clone(), client);
        h.apply(&member_id, &response);
        self.member_ids.insert(slot, member_id);
    }

    fn forget_gone(&mut self, h: &mut Harness) {
        let gone: Vec<String> = h
            .clients
            .keys()
            .filter(|id| h.group.member_epoch(id).is_none())
            .cloned()
            .collect();
        for id in gone {
            h.clients.remove(&id);
        }
        self.member_ids.retain(|_, id| h.clients.contains_key(id));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Restarts among the steps also prove that a replayed group equals
    /// the live one and that its members carry on.
    #[test]
    fn no_partition_ever_has_two_owners(steps in proptest::collection::vec(step(), 1..80)) {
        let mut h = Harness::new(Topics::with(&[("t", 7), ("u", 3)]));
        let mut slots = Slots::default();
        for step in steps {
            match step {
                Step::Join(slot) => slots.join(&mut h, slot),
                Step::Leave(slot) | Step::LeaveStatic(slot) => {
                    let Some(id) = slots.member_ids.remove(&slot) else { continue };
                    let epoch = if matches!(step, Step::Leave(_)) { -1 } else { -2 };
                    let version = h.clients.get(&id).map_or(1, |c| c.version);
                    h.clients.remove(&id);
                    let response = h.send(version, &heartbeat_request(&id, epoch, None));
                    prop_assert!(
                        response.error_code == 0
                            || response.error_code == ResponseError::UnknownMemberId.code()
                    );
                }
                Step::Heartbeat(slot) | Step::Quiet(slot) => {
                    let Some(id) = slots.member_ids.get(&slot).cloned() else { continue };
                    let Some(client) = h.clients.get(&id).cloned() else { continue };
                    let owned = matches!(step, Step::Heartbeat(_)).then_some(&client.owned);
                    let request = heartbeat_request(&id, client.epoch, owned);
                    let response = h.send(client.version, &request);
                    if response.error_code == 0 {
                        h.apply(&id, &response);
                    } else {
                        // Fenced or expired: the client drops everything.
                        h.clients.remove(&id);
                        slots.member_ids.remove(&slot);
                    }
                }
                Step::Advance(ms) => {
                    h.now += i64::from(ms);
                    h.tick();
                    slots.forget_gone(&mut h);
                }
                Step::GrowTopic => {
                    let count = h.topics.by_name["t"].1;
                    h.topics.resize("t", (count + 1).min(12));
                }
                Step::Restart => h.restart(),
            }
        }
        // Members whose clients gave up expire while the rest heartbeat.
        let half_session = i64::from(h.cfg.session_timeout_ms) / 2;
        for _ in 0..4 {
            let ids: Vec<String> = h.clients.keys().cloned().collect();
            for id in ids {
                h.heartbeat(&id);
            }
            h.now += half_session;
            h.tick();
            slots.forget_gone(&mut h);
        }
        if !h.clients.is_empty() {
            h.settle();
            let subscribed = h.group.subscribed_topics();
            let topics: Vec<&str> = subscribed.iter().map(String::as_str).collect();
            h.assert_complete(&topics);
        }
    }
}

// ---------------------------------------------------------------------
// Persistence through a shard: the records a shard asks the runtime to
// write, replayed into a fresh shard at a restart.
// ---------------------------------------------------------------------

use runnel_group::classic::JoinRequest;
use runnel_group::shard::{CommitPartition, CommitRequest, Group, Shard, ShardConfig, Write};

const SESSION_TIMEOUT_MS: i64 = 45_000;

/// A shard and its `__consumer_offsets` partition, driven as the runtime
/// drives them: every call's writes are appended, then applied.
#[derive(Debug)]
struct Coordinator {
    shard: Shard,
    log: Vec<Write>,
    topics: Topics,
    now: i64,
    clients: BTreeMap<String, Client>,
}

fn in_group(mut request: ConsumerGroupHeartbeatRequest) -> ConsumerGroupHeartbeatRequest {
    request.group_id = kafka_protocol::messages::GroupId(StrBytes::from_static_str("g"));
    request
}

fn consumer_writes(writes: &[Write]) -> Vec<(&ConsumerKey, bool)> {
    writes
        .iter()
        .filter_map(|w| match w {
            Write::Consumer { key, value, .. } => Some((key, value.is_some())),
            _ => None,
        })
        .collect()
}

impl Coordinator {
    fn new(topics: Topics) -> Coordinator {
        let mut cfg = ShardConfig::default();
        cfg.consumer.session_timeout_ms = SESSION_TIMEOUT_MS as i32;
        Coordinator {
            shard: Shard::new(0, cfg),
            log: Vec::new(),
            topics,
            now: 1_000,
            clients: BTreeMap::new(),
        }
    }

    fn write(&mut self, writes: &[Write]) {
        self.shard.apply(writes);
        self.log.extend_from_slice(writes);
    }

    fn send(
        &mut self,
        request: &ConsumerGroupHeartbeatRequest,
    ) -> (ConsumerGroupHeartbeatResponse, Vec<Write>) {
        let (response, writes) = self.shard.consumer_heartbeat(
            self.now,
            &self.topics,
            1,
            &in_group(request.clone()),
            "unused",
            ("client", "/10.0.0.1"),
        );
        self.write(&writes);
        (response, writes)
    }

    fn join(&mut self, member_id: &str, topics: &[&str]) {
        let (response, _) = self.send(&join_request(member_id, topics));
        assert_eq!(error(&response), 0, "{response:?}");
        self.clients.insert(
            member_id.into(),
            Client {
                epoch: response.member_epoch,
                owned: assignment_of(&response).unwrap_or_default(),
                version: 1,
            },
        );
    }

    /// A heartbeat with the client's epoch and partitions; the client
    /// takes what the response gives.
    fn heartbeat(&mut self, member_id: &str) -> (ConsumerGroupHeartbeatResponse, Vec<Write>) {
        let client = self.clients[member_id].clone();
        let request = heartbeat_request(member_id, client.epoch, Some(&client.owned));
        let (response, writes) = self.send(&request);
        if response.error_code == 0 {
            let client = self.clients.get_mut(member_id).unwrap();
            client.epoch = response.member_epoch;
            if let Some(assignment) = assignment_of(&response) {
                client.owned = assignment;
            }
        }
        (response, writes)
    }

    fn settle(&mut self) {
        for _ in 0..10 {
            let ids: Vec<String> = self.clients.keys().cloned().collect();
            for id in ids {
                let (response, _) = self.heartbeat(&id);
                assert_eq!(error(&response), 0, "{response:?}");
            }
            if self.group().state_name() == "Stable" {
                return;
            }
        }
        panic!("group did not settle");
    }

    fn tick(&mut self) -> Vec<Write> {
        let effects = self.shard.tick(self.now, &self.topics);
        self.write(&effects.writes);
        effects.writes
    }

    fn group(&self) -> &ConsumerGroup {
        match self.shard.group("g") {
            Some(Group::Consumer(group)) => group,
            other => panic!("not a consumer group: {other:?}"),
        }
    }

    fn describe(
        &self,
    ) -> kafka_protocol::messages::consumer_group_describe_response::DescribedGroup {
        self.shard.consumer_describe("g", &self.topics, 1).unwrap()
    }

    /// The broker restarts at `at`: a fresh shard replays the log.
    fn restart(&mut self, at: i64) {
        self.now = at;
        let mut cfg = ShardConfig::default();
        cfg.consumer.session_timeout_ms = SESSION_TIMEOUT_MS as i32;
        let mut shard = Shard::new(0, cfg);
        replay(&mut shard, &self.log, at);
        self.shard = shard;
    }
}

fn replay(shard: &mut Shard, log: &[Write], now: i64) {
    for write in log {
        shard
            .replay(&write.key(), write.value().as_deref(), now)
            .unwrap();
    }
}

/// Three members over a six-partition topic, Stable.
fn stable_three() -> Coordinator {
    let mut c = Coordinator::new(Topics::with(&[("t", 6)]));
    for id in ["a", "b", "c"] {
        c.join(id, &["t"]);
    }
    c.settle();
    c
}

#[test]
fn members_carry_on_after_a_restart_with_their_ids_epochs_and_assignments() {
    let mut c = stable_three();
    let before = c.describe();
    let clients = c.clients.clone();
    assert_eq!(
        clients
            .values()
            .flat_map(|c| c.owned.iter().copied())
            .collect::<Partitions>(),
        c.topics.all_partitions(&["t"])
    );
    let last_heartbeat = c.now;

    c.restart(last_heartbeat + 40_000);
    assert_eq!(c.describe(), before, "the same group, members and targets");
    // Sessions restart at the replay: past the old deadlines nobody goes.
    assert_eq!(
        c.shard.next_deadline(),
        Some(last_heartbeat + 40_000 + SESSION_TIMEOUT_MS)
    );
    c.now = last_heartbeat + 50_000;
    assert_eq!(c.tick(), Vec::new());

    for (id, client) in &clients {
        let (response, writes) = c.heartbeat(id);
        assert_eq!(error(&response), 0, "{id}: {response:?}");
        assert_eq!(response.member_epoch, client.epoch, "{id}'s epoch");
        assert_eq!(assignment_of(&response).as_ref(), Some(&client.owned));
        assert_eq!(writes, Vec::new(), "{id}'s heartbeat changed nothing");
    }
    assert_eq!(c.group().state_name(), "Stable");
    assert_eq!(c.describe(), before);
}

#[test]
fn heartbeats_that_change_nothing_write_nothing() {
    let mut c = stable_three();
    for _ in 0..3 {
        for id in ["a", "b", "c"] {
            let (response, writes) = c.heartbeat(id);
            assert_eq!(error(&response), 0);
            assert_eq!(writes, Vec::new(), "{id}");
        }
        // Nor does one that reports nothing it owns.
        let epoch = c.clients["a"].epoch;
        let (_, writes) = c.send(&heartbeat_request("a", epoch, None));
        assert_eq!(writes, Vec::new());
        c.now += 5_000;
        assert_eq!(c.tick(), Vec::new());
    }
    // A new subscription is persisted: the member, the group epoch, the
    // topics and the new target.
    c.topics.create("u", 2);
    let epoch = c.clients["a"].epoch;
    let mut request = heartbeat_request("a", epoch, Some(&c.clients["a"].owned.clone()));
    request.subscribed_topic_names = Some(names(&["t", "u"]));
    let (response, writes) = c.send(&request);
    assert_eq!(error(&response), 0);
    let keys = consumer_writes(&writes);
    for key in [
        ConsumerKey::GroupMetadata,
        ConsumerKey::PartitionMetadata,
        ConsumerKey::MemberMetadata { member: "a".into() },
        ConsumerKey::TargetAssignmentMetadata,
    ] {
        assert!(keys.contains(&(&key, true)), "{key:?} in {keys:?}");
    }
}

#[test]
fn a_member_that_left_or_expired_is_gone_after_a_restart() {
    let mut c = stable_three();
    let (response, writes) = c.send(&heartbeat_request("b", -1, None));
    assert_eq!(error(&response), 0);
    c.clients.remove("b");
    let removed = consumer_writes(&writes);
    for key in [
        ConsumerKey::MemberMetadata { member: "b".into() },
        ConsumerKey::TargetAssignmentMember { member: "b".into() },
        ConsumerKey::CurrentMemberAssignment { member: "b".into() },
    ] {
        assert!(removed.contains(&(&key, false)), "{key:?} tombstoned");
    }
    c.settle();
    // "c" stops heartbeating and expires.
    c.clients.remove("c");
    c.now += SESSION_TIMEOUT_MS / 2;
    c.heartbeat("a");
    c.now += SESSION_TIMEOUT_MS / 2 + 1;
    c.heartbeat("a");
    let expired = c.tick();
    assert!(consumer_writes(&expired)
        .contains(&(&ConsumerKey::MemberMetadata { member: "c".into() }, false)));
    c.settle();
    assert_eq!(c.clients["a"].owned, c.topics.all_partitions(&["t"]));

    c.restart(c.now + 1_000);
    assert_eq!(c.group().member_ids(), vec!["a".to_string()]);
    for gone in ["b", "c"] {
        let (response, _) = c.send(&heartbeat_request(gone, 1, None));
        assert_eq!(error(&response), ResponseError::UnknownMemberId.code());
    }
    let epoch = c.clients["a"].epoch;
    let (response, writes) = c.heartbeat("a");
    assert_eq!((error(&response), response.member_epoch), (0, epoch));
    assert_eq!(writes, Vec::new());
}

#[test]
fn a_deleted_group_stays_deleted_after_a_restart() {
    let mut c = Coordinator::new(Topics::with(&[("t", 6)]));
    c.join("a", &["t"]);
    c.settle();
    let commit = CommitRequest {
        group_id: "g".into(),
        api_version: 9,
        member_id: "a".into(),
        group_instance_id: None,
        generation_or_epoch: c.clients["a"].epoch,
        retention_time_ms: -1,
        partitions: vec![CommitPartition {
            topic: "t".into(),
            partition: 0,
            offset: 42,
            leader_epoch: -1,
            metadata: None,
        }],
    };
    let (_, writes) = c.shard.commit_offsets(c.now, &commit).unwrap();
    c.write(&writes);
    assert_eq!(
        c.shard.delete_group("g"),
        Err(ResponseError::NonEmptyGroup.code())
    );
    c.send(&heartbeat_request("a", -1, None));
    let deleted = c.shard.delete_group("g").unwrap();
    let tombstones = consumer_writes(&deleted);
    assert!(tombstones.iter().all(|(_, value)| !value));
    assert_eq!(
        tombstones.last(),
        Some(&(&ConsumerKey::GroupMetadata, false)),
        "the group goes last"
    );
    c.write(&deleted);
    c.restart(c.now + 1);
    assert!(c.shard.group("g").is_none());
    assert!(c.shard.list_groups().is_empty());
    assert!(c.shard.offsets().group("g").is_none());
}

#[test]
fn an_empty_consumer_group_without_offsets_expires_and_stays_gone() {
    let mut c = Coordinator::new(Topics::with(&[("t", 1)]));
    c.join("a", &["t"]);
    c.send(&heartbeat_request("a", -1, None));
    assert_eq!(c.group().state_name(), "Empty");
    let expired = c.shard.expire_offsets(c.now);
    assert!(consumer_writes(&expired).contains(&(&ConsumerKey::GroupMetadata, false)));
    c.write(&expired);
    assert!(c.shard.group("g").is_none());
    c.restart(c.now + 1);
    assert!(c.shard.group("g").is_none());
}

#[test]
fn consumer_group_records_win_over_offset_records_in_either_order() {
    let mut c = Coordinator::new(Topics::with(&[("t", 2)]));
    c.join("a", &["t"]);
    c.settle();
    let commit = CommitRequest {
        group_id: "g".into(),
        api_version: 9,
        member_id: "a".into(),
        group_instance_id: None,
        generation_or_epoch: c.clients["a"].epoch,
        retention_time_ms: -1,
        partitions: vec![CommitPartition {
            topic: "t".into(),
            partition: 1,
            offset: 7,
            leader_epoch: -1,
            metadata: None,
        }],
    };
    let (_, offsets) = c.shard.commit_offsets(c.now, &commit).unwrap();
    c.write(&offsets);
    let (offset_first, group_records): (Vec<Write>, Vec<Write>) = c
        .log
        .iter()
        .cloned()
        .partition(|w| matches!(w, Write::Offset { .. }));
    let offset_first: Vec<Write> = offset_first.into_iter().chain(group_records).collect();
    for log in [c.log.clone(), offset_first] {
        let mut shard = Shard::new(0, ShardConfig::default());
        replay(&mut shard, &log, c.now);
        let Some(Group::Consumer(group)) = shard.group("g") else {
            panic!("not a consumer group: {:?}", shard.group("g"));
        };
        assert_eq!(group.member_ids(), vec!["a".to_string()]);
        assert_eq!(shard.offsets().get("g", "t", 1).map(|o| o.offset), Some(7));
    }
}

#[test]
fn a_static_member_away_at_a_restart_rejoins_with_its_partitions_and_epoch() {
    let mut c = Coordinator::new(Topics::with(&[("t", 4)]));
    let (response, _) = c.send(&static_join("s1", "instance-1", &["t"]));
    assert_eq!(error(&response), 0);
    c.clients.insert(
        "s1".into(),
        Client {
            epoch: response.member_epoch,
            owned: assignment_of(&response).unwrap_or_default(),
            version: 1,
        },
    );
    c.join("b", &["t"]);
    c.settle();
    let (epoch, owned) = (c.clients["s1"].epoch, c.clients["s1"].owned.clone());
    let (response, writes) = c.send(&heartbeat_request("s1", -2, None));
    assert_eq!(response.member_epoch, -2);
    assert_eq!(consumer_writes(&writes).len(), 1, "only its assignment");

    c.restart(c.now + 1_000);
    let described = c.describe();
    let away = described
        .members
        .iter()
        .find(|m| m.member_id.as_str() == "s1");
    assert_eq!(away.map(|m| m.member_epoch), Some(-2));
    let (response, _) = c.send(&static_join("s1-again", "instance-1", &["t"]));
    assert_eq!(error(&response), 0, "{response:?}");
    assert_eq!(response.member_epoch, epoch);
    assert_eq!(assignment_of(&response), Some(owned));
}

#[test]
fn a_group_turned_classic_is_not_replayed_as_a_consumer_group() {
    let mut c = Coordinator::new(Topics::with(&[("t", 1)]));
    c.join("a", &["t"]);
    c.send(&heartbeat_request("a", -1, None));
    let join = JoinRequest {
        request: 1,
        version: 5,
        member_id: String::new(),
        group_instance_id: None,
        client_id: "c".into(),
        client_host: "/127.0.0.1".into(),
        session_timeout_ms: 10_000,
        rebalance_timeout_ms: 10_000,
        protocol_type: "consumer".into(),
        protocols: vec![("range".into(), bytes::Bytes::from_static(b"sub"))],
        reason: None,
        fresh_suffix: "x".into(),
    };
    let effects = c.shard.join(c.now, "g", join);
    let tombstones = consumer_writes(&effects.writes);
    assert!(tombstones.contains(&(&ConsumerKey::GroupMetadata, false)));
    assert!(tombstones.iter().all(|(_, value)| !value));
    c.write(&effects.writes);
    c.restart(c.now + 1);
    assert!(!matches!(c.shard.group("g"), Some(Group::Consumer(_))));
}

#[test]
fn a_refused_join_leaves_a_simple_group_as_it_was_and_writes_nothing() {
    let mut c = Coordinator::new(Topics::with(&[("t", 1)]));
    let commit = CommitRequest {
        group_id: "g".into(),
        api_version: 9,
        member_id: String::new(),
        group_instance_id: None,
        generation_or_epoch: -1,
        retention_time_ms: -1,
        partitions: Vec::new(),
    };
    c.shard.commit_offsets(c.now, &commit).unwrap();
    let mut request = join_request("a", &["t"]);
    request.rebalance_timeout_ms = -1;
    let (response, writes) = c.send(&request);
    assert_eq!(error(&response), ResponseError::InvalidRequest.code());
    assert_eq!(writes, Vec::new());
    assert!(matches!(c.shard.group("g"), Some(Group::Classic(_))));
    // An accepted join turns it into a consumer group, tombstoning the
    // classic group's record first.
    let (response, writes) = c.send(&join_request("a", &["t"]));
    assert_eq!(error(&response), 0);
    assert!(matches!(
        writes.first(),
        Some(Write::Group { value: None, .. })
    ));
    c.restart(c.now + 1);
    assert_eq!(c.group().member_ids(), vec!["a".to_string()]);
}
