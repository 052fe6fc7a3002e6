//! KIP-848 consumer groups, driven by ConsumerGroupHeartbeat.
//!
//! The coordinator owns the assignment: each heartbeat may change the
//! member's subscription, which bumps the group epoch; the target
//! assignment is computed by a server-side [`crate::assignor`] for the new
//! epoch; each member then reconciles towards its target — partitions still
//! owned by another member are withheld until that member revokes them.
//!
//! State names as Kafka shows them: "Empty", "Assigning", "Reconciling",
//! "Stable", "Dead".
//!
//! Three epochs move the group:
//!
//! - the *group epoch* is bumped by anything that changes what the
//!   assignment should be: a join, a leave, an expiry, a fencing, a changed
//!   subscription or assignor, a subscribed topic created, deleted or grown;
//! - the *assignment epoch* is the group epoch the target assignment was
//!   computed for. The target is recomputed synchronously before any
//!   operation returns, so the group is "Assigning" only inside a call;
//! - each *member epoch* reaches the assignment epoch once the member has
//!   revoked every partition its target no longer holds.
//!
//! Safety, which every operation keeps: a partition is held (assigned or
//! pending revocation) by at most one member. A member is given a
//! partition of its target only once no other member holds it.
//!
//! The group's state is kept in `__consumer_offsets` as Kafka's KIP-848
//! records (the `persistence` module): after each operation the runtime writes
//! [`ConsumerGroup::unwritten`], and a restarted coordinator rebuilds the
//! group with [`ConsumerGroup::replay`], so members carry on with their
//! ids, epochs and assignments.

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::messages::consumer_group_describe_response::{
    self as describe_response, DescribedGroup,
};
use kafka_protocol::messages::consumer_group_heartbeat_response::{
    Assignment as HeartbeatAssignment, TopicPartitions as HeartbeatTopicPartitions,
};
use kafka_protocol::messages::{
    ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse, GroupId, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use regex::Regex;

use crate::assignor::{self, MemberSubscription, Partitions, TopicPartition};
use crate::records::{ConsumerKey, ConsumerValue};
use crate::Millis;

mod persistence;

/// Broker settings that govern consumer groups.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsumerConfig {
    /// `group.consumer.heartbeat.interval.ms`
    pub heartbeat_interval_ms: i32,
    /// `group.consumer.session.timeout.ms`
    pub session_timeout_ms: i32,
    /// `group.consumer.max.size`
    pub max_size: i32,
    /// `group.consumer.assignors`: the first is the default.
    pub assignors: Vec<String>,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        ConsumerConfig {
            heartbeat_interval_ms: 5_000,
            session_timeout_ms: 45_000,
            max_size: i32::MAX,
            assignors: vec!["uniform".into(), "range".into()],
        }
    }
}

/// The topics a group can subscribe to, as the broker's metadata has them.
pub trait TopicMetadata {
    /// The topic's id and partition count.
    fn topic_by_name(&self, name: &str) -> Option<(uuid::Uuid, i32)>;
    /// The topic's name and partition count.
    fn topic_by_id(&self, id: uuid::Uuid) -> Option<(String, i32)>;
    /// Every topic name (for regex subscriptions).
    fn topic_names(&self) -> Vec<String>;
}

/// The member epoch a heartbeat sends to join.
const JOIN_EPOCH: i32 = 0;
/// The member epoch a heartbeat sends to leave for good.
const LEAVE_EPOCH: i32 = -1;
/// The member epoch a static member sends to leave for a while, keeping
/// its partitions for a session timeout.
const LEAVE_STATIC_EPOCH: i32 = -2;

/// Topics a regex subscription never matches, as in Kafka.
const INTERNAL_TOPICS: [&str; 3] = [
    "__consumer_offsets",
    "__transaction_state",
    "__share_group_state",
];

/// Where a member is in reconciling towards its target (Kafka's
/// `MemberState`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum MemberState {
    /// At the assignment epoch with its whole target.
    Stable,
    /// Must stop owning `pending_revocation` before it moves on; its epoch
    /// stays the old one meanwhile.
    UnrevokedPartitions,
    /// At the assignment epoch, waiting for partitions other members still
    /// hold.
    UnreleasedPartitions,
}

/// A regex subscription: the client's text and its anchored compilation.
#[derive(Clone, Debug)]
struct TopicRegex {
    source: String,
    compiled: Regex,
}

impl TopicRegex {
    /// Java's RE2J `matches` is a full match; Rust's `is_match` searches,
    /// so the pattern is anchored. The source must be valid on its own
    /// first: `a)|(b` is not, though `^(?:a)|(b)$` would compile.
    fn compile(source: &str) -> Option<TopicRegex> {
        Regex::new(source).ok()?;
        let compiled = Regex::new(&format!("^(?:{source})$")).ok()?;
        Some(TopicRegex {
            source: source.to_owned(),
            compiled,
        })
    }

    fn matches(&self, topic: &str) -> bool {
        !INTERNAL_TOPICS.contains(&topic) && self.compiled.is_match(topic)
    }
}

#[derive(Clone, Debug)]
struct Member {
    member_id: String,
    instance_id: Option<String>,
    rack_id: Option<String>,
    client_id: String,
    client_host: String,
    rebalance_timeout_ms: i32,
    topic_names: BTreeSet<String>,
    topic_regex: Option<TopicRegex>,
    server_assignor: Option<String>,
    state: MemberState,
    member_epoch: i32,
    /// The epoch before the last move, tolerated once for a lost response.
    previous_member_epoch: i32,
    /// Partitions the member may use now.
    assigned: Partitions,
    /// Partitions the member was told to give up and has not yet.
    pending_revocation: Partitions,
    session_deadline: Millis,
    /// Set while partitions are pending revocation: past it the member is
    /// fenced.
    revocation_deadline: Option<Millis>,
    /// A static member that left with epoch -2: it keeps its partitions
    /// until its session ends or its instance rejoins.
    left_static: bool,
    /// The assignment the last response carried, to send only changes.
    last_sent: Option<Partitions>,
}

impl Member {
    fn new(member_id: String, rebalance_timeout_ms: i32) -> Member {
        Member {
            member_id,
            instance_id: None,
            rack_id: None,
            client_id: String::new(),
            client_host: String::new(),
            rebalance_timeout_ms,
            topic_names: BTreeSet::new(),
            topic_regex: None,
            server_assignor: None,
            state: MemberState::Stable,
            member_epoch: 0,
            previous_member_epoch: -1,
            assigned: Partitions::new(),
            pending_revocation: Partitions::new(),
            session_deadline: 0,
            revocation_deadline: None,
            left_static: false,
            last_sent: None,
        }
    }

    /// Partitions no other member may be given.
    fn held(&self) -> impl Iterator<Item = &TopicPartition> {
        self.assigned.iter().chain(&self.pending_revocation)
    }
}

/// An expected refusal of a heartbeat, answered with its error code.
#[derive(Debug)]
struct Rejection {
    error: ResponseError,
    message: String,
}

fn reject(error: ResponseError, message: impl Into<String>) -> Rejection {
    Rejection {
        error,
        message: message.into(),
    }
}

/// A heartbeat's fields, validated and in domain types.
#[derive(Debug)]
struct Heartbeat {
    member_id: String,
    member_epoch: i32,
    instance_id: Option<String>,
    rack_id: Option<String>,
    rebalance_timeout_ms: Option<i32>,
    topic_names: Option<BTreeSet<String>>,
    /// `Some(None)`: the regex was cleared (sent empty).
    topic_regex: Option<Option<TopicRegex>>,
    server_assignor: Option<String>,
    owned: Option<Partitions>,
}

impl Heartbeat {
    fn parse(
        version: i16,
        request: &ConsumerGroupHeartbeatRequest,
        cfg: &ConsumerConfig,
    ) -> Result<Heartbeat, Rejection> {
        let member_id = request.member_id.to_string();
        let member_epoch = request.member_epoch;
        if version >= 1 && member_id.is_empty() {
            return Err(reject(
                ResponseError::InvalidRequest,
                "MemberId can't be empty.",
            ));
        }
        if member_epoch != JOIN_EPOCH && member_id.is_empty() {
            return Err(reject(
                ResponseError::InvalidRequest,
                "MemberId can't be empty.",
            ));
        }
        if member_epoch < LEAVE_STATIC_EPOCH {
            return Err(reject(
                ResponseError::InvalidRequest,
                "MemberEpoch is invalid.",
            ));
        }
        let instance_id = request.instance_id.as_ref().map(|s| s.to_string());
        if instance_id.as_deref() == Some("") {
            return Err(reject(
                ResponseError::InvalidRequest,
                "InstanceId can't be empty.",
            ));
        }
        let rebalance_timeout_ms = match request.rebalance_timeout_ms {
            -1 => None,
            ms if ms < -1 => {
                return Err(reject(
                    ResponseError::InvalidRequest,
                    "RebalanceTimeoutMs is invalid.",
                ))
            }
            ms => Some(ms),
        };
        let mut heartbeat = Heartbeat {
            member_id,
            member_epoch,
            instance_id,
            rack_id: request.rack_id.as_ref().map(|s| s.to_string()),
            rebalance_timeout_ms,
            topic_names: None,
            topic_regex: None,
            server_assignor: None,
            owned: None,
        };
        if member_epoch < 0 {
            // A leave carries nothing else worth validating.
            return Ok(heartbeat);
        }
        heartbeat.parse_subscription(version, request, cfg)?;
        Ok(heartbeat)
    }

    fn parse_subscription(
        &mut self,
        version: i16,
        request: &ConsumerGroupHeartbeatRequest,
        cfg: &ConsumerConfig,
    ) -> Result<(), Rejection> {
        let regex = if version >= 1 {
            request.subscribed_topic_regex.as_ref()
        } else {
            None
        };
        if self.member_epoch == JOIN_EPOCH {
            if self.rebalance_timeout_ms.is_none() {
                return Err(reject(
                    ResponseError::InvalidRequest,
                    "RebalanceTimeoutMs must be provided in first request.",
                ));
            }
            if request.subscribed_topic_names.is_none() && regex.is_none() {
                return Err(reject(
                    ResponseError::InvalidRequest,
                    "SubscribedTopicNames or SubscribedTopicRegex must be set in first request.",
                ));
            }
            if request
                .topic_partitions
                .as_ref()
                .is_some_and(|tps| !tps.is_empty())
            {
                return Err(reject(
                    ResponseError::InvalidRequest,
                    "TopicPartitions must be empty when (re-)joining.",
                ));
            }
        }
        self.topic_names = request
            .subscribed_topic_names
            .as_ref()
            .map(|names| names.iter().map(|name| name.0.to_string()).collect());
        self.topic_regex = match regex {
            None => None,
            Some(source) if source.is_empty() => Some(None),
            Some(source) => match TopicRegex::compile(source) {
                Some(compiled) => Some(Some(compiled)),
                None => {
                    return Err(reject(
                        ResponseError::InvalidRegularExpression,
                        format!(
                            "SubscribedTopicRegex `{}` is not a valid regular expression.",
                            &**source
                        ),
                    ))
                }
            },
        };
        if let Some(name) = &request.server_assignor {
            if !cfg.assignors.iter().any(|known| known.as_str() == &**name) {
                return Err(reject(
                    ResponseError::UnsupportedAssignor,
                    format!("ServerAssignor {} is not supported.", &**name),
                ));
            }
            self.server_assignor = Some(name.to_string());
        }
        self.owned = request.topic_partitions.as_ref().map(|tps| {
            tps.iter()
                .flat_map(|tp| {
                    tp.partitions
                        .iter()
                        .map(|&partition| TopicPartition::new(tp.topic_id, partition))
                })
                .collect()
        });
        Ok(())
    }
}

/// One consumer group.
#[derive(Debug)]
pub struct ConsumerGroup {
    group_id: String,
    dead: bool,
    group_epoch: i32,
    /// The group epoch `target` was computed for.
    assignment_epoch: i32,
    /// The assignor that computed `target`.
    assignor_name: Option<String>,
    members: BTreeMap<String, Member>,
    /// Static instance id -> the member id holding it.
    instances: BTreeMap<String, String>,
    /// Each member's target partitions at `assignment_epoch`.
    target: BTreeMap<String, Partitions>,
    /// Id and partition count of every existing subscribed topic, as of the
    /// last heartbeat or tick; a change bumps the group epoch.
    metadata: BTreeMap<String, (uuid::Uuid, i32)>,
    /// Subscribed topic names, regexes resolved, existing or not.
    subscribed: BTreeSet<String>,
    /// Set by replay: `subscribed` is not computed yet (the next metadata
    /// refresh computes it).
    subscribed_stale: bool,
    /// The records the log holds for this group, as last written or
    /// replayed.
    written: BTreeMap<ConsumerKey, ConsumerValue>,
}

impl ConsumerGroup {
    pub fn new(group_id: String) -> ConsumerGroup {
        ConsumerGroup {
            group_id,
            dead: false,
            group_epoch: 0,
            assignment_epoch: 0,
            assignor_name: None,
            members: BTreeMap::new(),
            instances: BTreeMap::new(),
            target: BTreeMap::new(),
            metadata: BTreeMap::new(),
            subscribed: BTreeSet::new(),
            subscribed_stale: false,
            written: BTreeMap::new(),
        }
    }

    pub fn group_id(&self) -> &str {
        &self.group_id
    }

    /// Handles a ConsumerGroupHeartbeat at `version` (v0: the coordinator
    /// makes member ids; v1: the client does). `fresh_member_id` is a new
    /// UUID-based id the runtime offers for v0 joins.
    pub fn heartbeat(
        &mut self,
        now: Millis,
        cfg: &ConsumerConfig,
        topics: &dyn TopicMetadata,
        version: i16,
        request: &ConsumerGroupHeartbeatRequest,
        fresh_member_id: &str,
    ) -> ConsumerGroupHeartbeatResponse {
        let result = if self.dead {
            Err(reject(
                ResponseError::NotCoordinator,
                "The group is no longer loaded here.",
            ))
        } else {
            Heartbeat::parse(version, request, cfg)
                .and_then(|hb| self.handle(now, cfg, topics, hb, fresh_member_id))
        };
        result.unwrap_or_else(|rejection| {
            let mut response = ConsumerGroupHeartbeatResponse::default();
            response.error_code = rejection.error.code();
            response.error_message = Some(StrBytes::from_string(rejection.message));
            response
        })
    }

    fn handle(
        &mut self,
        now: Millis,
        cfg: &ConsumerConfig,
        topics: &dyn TopicMetadata,
        hb: Heartbeat,
        fresh_member_id: &str,
    ) -> Result<ConsumerGroupHeartbeatResponse, Rejection> {
        match hb.member_epoch {
            LEAVE_EPOCH => self.leave(cfg, topics, &hb),
            LEAVE_STATIC_EPOCH => self.leave_static(now, cfg, &hb),
            _ => {
                let (member_id, joined) = if hb.member_epoch == JOIN_EPOCH {
                    (self.join(cfg, &hb, fresh_member_id)?, true)
                } else {
                    self.check_member(&hb)?;
                    (hb.member_id.clone(), false)
                };
                Ok(self.update_and_reconcile(now, cfg, topics, &hb, member_id, joined))
            }
        }
    }

    /// Finds or makes the member a join (epoch 0) names, taking over a
    /// static member that left if the instance id is the same. Returns its
    /// id; new members bump the group epoch.
    fn join(
        &mut self,
        cfg: &ConsumerConfig,
        hb: &Heartbeat,
        fresh_member_id: &str,
    ) -> Result<String, Rejection> {
        let member_id = if hb.member_id.is_empty() {
            fresh_member_id.to_owned()
        } else {
            hb.member_id.clone()
        };
        if member_id.is_empty() {
            return Err(reject(
                ResponseError::UnknownServerError,
                "No member id to give.",
            ));
        }
        if let Some(instance_id) = &hb.instance_id {
            if let Some(holder) = self.instances.get(instance_id).cloned() {
                if holder != member_id {
                    let holder_left = self.members.get(&holder).is_some_and(|m| m.left_static);
                    if !holder_left {
                        return Err(reject(
                            ResponseError::UnreleasedInstanceId,
                            format!("Static member {instance_id} is still in use by {holder}."),
                        ));
                    }
                    if self.members.contains_key(&member_id) {
                        return Err(reject(
                            ResponseError::InvalidRequest,
                            format!("Member {member_id} cannot take over instance {instance_id}."),
                        ));
                    }
                    self.replace_static_member(&holder, &member_id);
                }
            }
        }
        match self.members.get_mut(&member_id) {
            Some(member) => {
                if hb.instance_id.is_some()
                    && member.instance_id.is_some()
                    && hb.instance_id != member.instance_id
                {
                    return Err(reject(
                        ResponseError::FencedInstanceId,
                        format!("Member {member_id} is registered with another instance id."),
                    ));
                }
                member.left_static = false;
                member.last_sent = None;
            }
            None => {
                if usize::try_from(cfg.max_size).is_ok_and(|max| self.members.len() >= max) {
                    return Err(reject(
                        ResponseError::GroupMaxSizeReached,
                        format!(
                            "The consumer group has reached its maximum capacity of {} members.",
                            cfg.max_size
                        ),
                    ));
                }
                let timeout = hb.rebalance_timeout_ms.unwrap_or(0);
                self.members
                    .insert(member_id.clone(), Member::new(member_id.clone(), timeout));
                self.bump_group_epoch();
            }
        }
        if let Some(instance_id) = &hb.instance_id {
            self.instances
                .insert(instance_id.clone(), member_id.clone());
            if let Some(member) = self.members.get_mut(&member_id) {
                member.instance_id = Some(instance_id.clone());
            }
        }
        Ok(member_id)
    }

    /// A static member's instance rejoined under `new_id`: it takes over
    /// the old member's epoch, partitions and target, so nobody else moves.
    fn replace_static_member(&mut self, old_id: &str, new_id: &str) {
        let Some(mut member) = self.members.remove(old_id) else {
            return;
        };
        member.member_id = new_id.to_owned();
        member.left_static = false;
        member.last_sent = None;
        if let Some(target) = self.target.remove(old_id) {
            self.target.insert(new_id.to_owned(), target);
        }
        self.members.insert(new_id.to_owned(), member);
    }

    /// The checks of a heartbeat from a member already in the group.
    fn check_member(&self, hb: &Heartbeat) -> Result<(), Rejection> {
        let Some(member) = self.members.get(&hb.member_id) else {
            return Err(reject(
                ResponseError::UnknownMemberId,
                format!(
                    "Member {} is not a member of group {}.",
                    hb.member_id, self.group_id
                ),
            ));
        };
        if member.left_static {
            return Err(reject(
                ResponseError::FencedMemberEpoch,
                "The static member left the group.",
            ));
        }
        if hb.instance_id.is_some() && hb.instance_id != member.instance_id {
            return Err(reject(
                ResponseError::FencedInstanceId,
                format!(
                    "Member {} is registered with another instance id.",
                    hb.member_id
                ),
            ));
        }
        let received = hb.member_epoch;
        let fenced = received > member.member_epoch
            || (received < member.member_epoch
                && (received != member.previous_member_epoch
                    || !hb
                        .owned
                        .as_ref()
                        .is_none_or(|owned| owned.is_subset(&member.assigned))));
        if fenced {
            return Err(reject(
                ResponseError::FencedMemberEpoch,
                format!(
                    "The member epoch {received} does not match the epoch {} the coordinator has.",
                    member.member_epoch
                ),
            ));
        }
        Ok(())
    }

    /// Applies a valid join or heartbeat to the member, brings the target
    /// up to date, moves the member towards it and builds the response.
    fn update_and_reconcile(
        &mut self,
        now: Millis,
        cfg: &ConsumerConfig,
        topics: &dyn TopicMetadata,
        hb: &Heartbeat,
        member_id: String,
        joined: bool,
    ) -> ConsumerGroupHeartbeatResponse {
        let session_deadline = now.saturating_add(i64::from(cfg.session_timeout_ms));
        let mut subscription_changed = false;
        if let Some(member) = self.members.get_mut(&member_id) {
            subscription_changed = apply_fields(member, hb);
            member.session_deadline = session_deadline;
        }
        if subscription_changed {
            self.bump_group_epoch();
        }
        self.refresh_metadata(topics);
        self.update_target(cfg);
        // A joining client owns nothing, whatever the coordinator remembers.
        let owned = if joined {
            Some(Partitions::new())
        } else {
            hb.owned.clone()
        };
        self.reconcile(&member_id, owned.as_ref(), now);

        let mut response = ConsumerGroupHeartbeatResponse::default();
        response.heartbeat_interval_ms = cfg.heartbeat_interval_ms;
        let Some(member) = self.members.get_mut(&member_id) else {
            return response;
        };
        response.member_id = Some(StrBytes::from_string(member_id));
        response.member_epoch = member.member_epoch;
        // Kafka's rule: the assignment goes with a join, with a full
        // request (rebalance timeout, subscription and owned partitions all
        // given, as a client sends after an error), or when it changed.
        // Sending an unchanged one at other times is legal but makes some
        // clients (librdkafka 2.x) restart fetches from stale positions.
        let full_request = hb.rebalance_timeout_ms.is_some()
            && (hb.topic_names.is_some() || hb.topic_regex.is_some())
            && hb.owned.is_some();
        let send = joined || full_request || member.last_sent.as_ref() != Some(&member.assigned);
        if send {
            response.assignment = Some(heartbeat_assignment(&member.assigned));
            member.last_sent = Some(member.assigned.clone());
        }
        response
    }

    /// Epoch -1: the member leaves for good, static or not.
    fn leave(
        &mut self,
        cfg: &ConsumerConfig,
        topics: &dyn TopicMetadata,
        hb: &Heartbeat,
    ) -> Result<ConsumerGroupHeartbeatResponse, Rejection> {
        if !self.members.contains_key(&hb.member_id) {
            return Err(reject(
                ResponseError::UnknownMemberId,
                format!(
                    "Member {} is not a member of group {}.",
                    hb.member_id, self.group_id
                ),
            ));
        }
        self.remove_member(&hb.member_id);
        self.refresh_metadata(topics);
        self.update_target(cfg);
        Ok(leave_response(cfg, &hb.member_id, LEAVE_EPOCH))
    }

    /// Epoch -2: a static member leaves for a while; its partitions wait
    /// for its instance to rejoin until its session ends.
    fn leave_static(
        &mut self,
        now: Millis,
        cfg: &ConsumerConfig,
        hb: &Heartbeat,
    ) -> Result<ConsumerGroupHeartbeatResponse, Rejection> {
        let Some(member) = self.members.get_mut(&hb.member_id) else {
            return Err(reject(
                ResponseError::UnknownMemberId,
                format!(
                    "Member {} is not a member of group {}.",
                    hb.member_id, self.group_id
                ),
            ));
        };
        if member.instance_id.is_none() {
            return Err(reject(
                ResponseError::InvalidRequest,
                "Only a static member (with an instance id) can leave with epoch -2.",
            ));
        }
        // The leaving client stops consuming: what it was revoking is free.
        member.pending_revocation.clear();
        member.revocation_deadline = None;
        if member.state == MemberState::UnrevokedPartitions {
            member.state = MemberState::Stable;
        }
        member.left_static = true;
        member.session_deadline = now.saturating_add(i64::from(cfg.session_timeout_ms));
        Ok(leave_response(cfg, &hb.member_id, LEAVE_STATIC_EPOCH))
    }

    fn remove_member(&mut self, member_id: &str) {
        if let Some(member) = self.members.remove(member_id) {
            if let Some(instance_id) = &member.instance_id {
                if self.instances.get(instance_id).map(String::as_str) == Some(member_id) {
                    self.instances.remove(instance_id);
                }
            }
        }
        self.target.remove(member_id);
        self.bump_group_epoch();
    }

    /// Marks the group epoch as needing a new target. Several changes in
    /// one operation bump it once.
    fn bump_group_epoch(&mut self) {
        if self.group_epoch <= self.assignment_epoch {
            self.group_epoch = self.group_epoch.saturating_add(1);
        }
    }

    /// Re-reads the subscribed topics (regexes resolved) and bumps the
    /// group epoch if any was created, deleted or resized.
    fn refresh_metadata(&mut self, topics: &dyn TopicMetadata) {
        let mut names: BTreeSet<String> = self
            .members
            .values()
            .flat_map(|m| m.topic_names.iter().cloned())
            .collect();
        let regexes: Vec<&TopicRegex> = self
            .members
            .values()
            .filter_map(|m| m.topic_regex.as_ref())
            .collect();
        if !regexes.is_empty() {
            for name in topics.topic_names() {
                if regexes.iter().any(|regex| regex.matches(&name)) {
                    names.insert(name);
                }
            }
        }
        let metadata: BTreeMap<String, (uuid::Uuid, i32)> = names
            .iter()
            .filter_map(|name| {
                topics
                    .topic_by_name(name)
                    .map(|topic| (name.clone(), topic))
            })
            .collect();
        self.subscribed = names;
        self.subscribed_stale = false;
        if metadata != self.metadata {
            self.metadata = metadata;
            self.bump_group_epoch();
        }
    }

    /// Recomputes the target assignment if the group epoch moved past it.
    fn update_target(&mut self, cfg: &ConsumerConfig) {
        if self.assignment_epoch >= self.group_epoch {
            return;
        }
        let name = self.choose_assignor(cfg);
        let inputs: BTreeMap<String, MemberSubscription> = self
            .members
            .iter()
            .map(|(id, member)| {
                let subscription = MemberSubscription {
                    topics: self.subscribed_topic_ids(member),
                    current: self.target.get(id).cloned().unwrap_or_default(),
                };
                (id.clone(), subscription)
            })
            .collect();
        let topics: BTreeMap<uuid::Uuid, i32> = self.metadata.values().copied().collect();
        self.target = assignor::assign(&name, &inputs, &topics);
        self.assignor_name = Some(name);
        self.assignment_epoch = self.group_epoch;
    }

    /// The assignor most members ask for (ties to the first name), else the
    /// one used last, else the broker's default.
    fn choose_assignor(&self, cfg: &ConsumerConfig) -> String {
        let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
        for name in self
            .members
            .values()
            .filter_map(|m| m.server_assignor.as_deref())
        {
            *votes.entry(name).or_default() += 1;
        }
        let mut best: Option<(&str, usize)> = None;
        for (name, count) in votes {
            if best.is_none_or(|(_, most)| count > most) {
                best = Some((name, count));
            }
        }
        best.map(|(name, _)| name.to_owned())
            .or_else(|| self.assignor_name.clone())
            .or_else(|| cfg.assignors.first().cloned())
            .unwrap_or_else(|| assignor::UNIFORM.to_owned())
    }

    fn subscribed_topic_ids(&self, member: &Member) -> BTreeSet<uuid::Uuid> {
        self.metadata
            .iter()
            .filter(|(name, _)| {
                member.topic_names.contains(*name)
                    || member
                        .topic_regex
                        .as_ref()
                        .is_some_and(|regex| regex.matches(name))
            })
            .map(|(_, &(id, _))| id)
            .collect()
    }

    /// Moves one member towards its target (Kafka's
    /// CurrentAssignmentBuilder). `owned` is what the member reported
    /// owning, if it reported.
    fn reconcile(&mut self, member_id: &str, owned: Option<&Partitions>, now: Millis) {
        let Some(member) = self.members.get_mut(member_id) else {
            return;
        };
        if member.left_static {
            return;
        }
        match member.state {
            MemberState::UnrevokedPartitions => {
                let revoked =
                    owned.is_some_and(|owned| owned.is_disjoint(&member.pending_revocation));
                if !revoked {
                    return;
                }
                member.pending_revocation.clear();
                member.revocation_deadline = None;
                member.state = MemberState::Stable;
            }
            MemberState::Stable if member.member_epoch == self.assignment_epoch => return,
            MemberState::Stable | MemberState::UnreleasedPartitions => {}
        }
        self.next_assignment(member_id, now);
    }

    /// Computes the member's next step: revoke what its target dropped
    /// (keeping its epoch), else move to the assignment epoch and take
    /// what of its target nobody else holds.
    fn next_assignment(&mut self, member_id: &str, now: Millis) {
        let empty = Partitions::new();
        let target = self.target.get(member_id).unwrap_or(&empty);
        let held_by_others: Partitions = self
            .members
            .iter()
            .filter(|(id, _)| id.as_str() != member_id)
            .flat_map(|(_, m)| m.held().copied())
            .collect();
        let Some(member) = self.members.get_mut(member_id) else {
            return;
        };
        let revoke: Partitions = member.assigned.difference(target).copied().collect();
        if !revoke.is_empty() {
            member.assigned.retain(|tp| target.contains(tp));
            member.pending_revocation = revoke;
            member.state = MemberState::UnrevokedPartitions;
            member.revocation_deadline =
                Some(now.saturating_add(i64::from(member.rebalance_timeout_ms.max(0))));
            return;
        }
        let mut unreleased = false;
        for tp in target.difference(&member.assigned.clone()) {
            if held_by_others.contains(tp) {
                unreleased = true;
            } else {
                member.assigned.insert(*tp);
            }
        }
        member.state = if unreleased {
            MemberState::UnreleasedPartitions
        } else {
            MemberState::Stable
        };
        if member.member_epoch != self.assignment_epoch {
            member.previous_member_epoch = member.member_epoch;
            member.member_epoch = self.assignment_epoch;
        }
    }

    /// Removes members whose session ended and fences members that did
    /// not revoke in time (rebalance timeout).
    pub fn tick(&mut self, now: Millis, cfg: &ConsumerConfig, topics: &dyn TopicMetadata) {
        if self.dead {
            return;
        }
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|m| {
                m.session_deadline <= now
                    || m.revocation_deadline
                        .is_some_and(|deadline| deadline <= now)
            })
            .map(|m| m.member_id.clone())
            .collect();
        for member_id in &expired {
            self.remove_member(member_id);
        }
        self.refresh_metadata(topics);
        self.update_target(cfg);
    }

    /// The earliest time [`ConsumerGroup::tick`] has something to do.
    pub fn next_deadline(&self) -> Option<Millis> {
        if self.dead {
            return None;
        }
        self.members
            .values()
            .flat_map(|m| std::iter::once(m.session_deadline).chain(m.revocation_deadline))
            .min()
    }

    /// Whether an OffsetCommit (at `api_version`) may commit (Kafka's
    /// `ConsumerGroup.validateOffsetCommit`): epoch -1 with no member id
    /// only while the group is empty; otherwise UNKNOWN_MEMBER_ID,
    /// STALE_MEMBER_EPOCH or FENCED_MEMBER_EPOCH, and UNSUPPORTED_VERSION
    /// below v9 for a KIP-848 member.
    ///
    /// An epoch below the member's is STALE_MEMBER_EPOCH (the client
    /// retries after its next heartbeat), above it FENCED_MEMBER_EPOCH, as
    /// Kafka 4.0-4.2 do. A TxnOffsetCommit, which Kafka does not hold to
    /// the version rule, should pass `i16::MAX` as `api_version`.
    pub fn validate_offset_commit(
        &self,
        member_id: &str,
        member_epoch: i32,
        api_version: i16,
    ) -> Result<(), i16> {
        if self.dead {
            return Err(ResponseError::NotCoordinator.code());
        }
        if member_epoch < 0 && self.members.is_empty() {
            return Ok(());
        }
        let Some(member) = self.members.get(member_id) else {
            return Err(ResponseError::UnknownMemberId.code());
        };
        if api_version < 9 {
            return Err(ResponseError::UnsupportedVersion.code());
        }
        match member_epoch.cmp(&member.member_epoch) {
            std::cmp::Ordering::Greater => Err(ResponseError::FencedMemberEpoch.code()),
            std::cmp::Ordering::Less => Err(ResponseError::StaleMemberEpoch.code()),
            std::cmp::Ordering::Equal => Ok(()),
        }
    }

    /// Whether an OffsetFetch v9+ naming a member may read.
    pub fn validate_offset_fetch(&self, member_id: &str, member_epoch: i32) -> Result<(), i16> {
        if self.dead {
            return Err(ResponseError::NotCoordinator.code());
        }
        if member_epoch < 0 && member_id.is_empty() {
            return Ok(());
        }
        let Some(member) = self.members.get(member_id) else {
            return Err(ResponseError::UnknownMemberId.code());
        };
        if member_epoch != member.member_epoch {
            return Err(ResponseError::StaleMemberEpoch.code());
        }
        Ok(())
    }

    /// The group for ConsumerGroupDescribe at its newest version (v1:
    /// `member_type` is 1). For v0 use [`ConsumerGroup::describe_at`],
    /// which leaves `member_type` at -1 as v0 cannot encode it.
    /// `authorized_operations` is left for the runtime to fill.
    pub fn describe(&self, topics: &dyn TopicMetadata) -> DescribedGroup {
        self.describe_at(topics, 1)
    }

    /// [`ConsumerGroup::describe`] for a given ConsumerGroupDescribe
    /// version.
    pub fn describe_at(&self, topics: &dyn TopicMetadata, version: i16) -> DescribedGroup {
        let mut group = DescribedGroup::default();
        group.group_id = GroupId(StrBytes::from_string(self.group_id.clone()));
        group.group_state = StrBytes::from_static_str(self.state_name());
        group.group_epoch = self.group_epoch;
        group.assignment_epoch = self.assignment_epoch;
        group.assignor_name = StrBytes::from_string(self.assignor_name.clone().unwrap_or_default());
        let empty = Partitions::new();
        group.members = self
            .members
            .values()
            .map(|member| {
                let mut described = describe_response::Member::default();
                described.member_id = StrBytes::from_string(member.member_id.clone());
                described.instance_id = member.instance_id.clone().map(StrBytes::from_string);
                described.rack_id = member.rack_id.clone().map(StrBytes::from_string);
                described.member_epoch = if member.left_static {
                    LEAVE_STATIC_EPOCH
                } else {
                    member.member_epoch
                };
                described.client_id = StrBytes::from_string(member.client_id.clone());
                described.client_host = StrBytes::from_string(member.client_host.clone());
                described.subscribed_topic_names = member
                    .topic_names
                    .iter()
                    .map(|name| TopicName(StrBytes::from_string(name.clone())))
                    .collect();
                described.subscribed_topic_regex = member
                    .topic_regex
                    .as_ref()
                    .map(|regex| StrBytes::from_string(regex.source.clone()));
                described.assignment = describe_assignment(topics, &member.assigned);
                let target = self.target.get(&member.member_id).unwrap_or(&empty);
                described.target_assignment = describe_assignment(topics, target);
                if version >= 1 {
                    described.member_type = 1;
                }
                described
            })
            .collect();
        group
    }

    /// "Empty", "Assigning", "Reconciling", "Stable" or "Dead".
    pub fn state_name(&self) -> &'static str {
        if self.dead {
            "Dead"
        } else if self.members.is_empty() {
            "Empty"
        } else if self.assignment_epoch < self.group_epoch {
            "Assigning"
        } else if self
            .members
            .values()
            .any(|m| m.member_epoch != self.assignment_epoch || m.state != MemberState::Stable)
        {
            "Reconciling"
        } else {
            "Stable"
        }
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    pub fn group_epoch(&self) -> i32 {
        self.group_epoch
    }

    /// The group epoch the target assignment was computed for.
    pub fn assignment_epoch(&self) -> i32 {
        self.assignment_epoch
    }

    /// Topics any member subscribes to (regexes resolved against the
    /// metadata of the last heartbeat or tick).
    pub fn subscribed_topics(&self) -> BTreeSet<String> {
        if self.subscribed_stale {
            return self.replayed_subscription();
        }
        self.subscribed.clone()
    }

    /// Marks the group Dead.
    pub fn shut_down(&mut self) {
        self.dead = true;
    }

    /// Records the client id and host of a member's connection, for
    /// ConsumerGroupDescribe; the runtime calls it after a heartbeat that
    /// returned the member id. Unknown members are ignored.
    pub fn set_client(&mut self, member_id: &str, client_id: &str, client_host: &str) {
        if let Some(member) = self.members.get_mut(member_id) {
            member.client_id = client_id.to_owned();
            member.client_host = client_host.to_owned();
        }
    }

    /// The ids of the members, in order.
    pub fn member_ids(&self) -> Vec<String> {
        self.members.keys().cloned().collect()
    }

    /// The member's epoch, if it is in the group.
    pub fn member_epoch(&self, member_id: &str) -> Option<i32> {
        self.members.get(member_id).map(|m| m.member_epoch)
    }

    /// The partitions the member may use now (not those pending
    /// revocation).
    pub fn member_assignment(&self, member_id: &str) -> Option<&Partitions> {
        self.members.get(member_id).map(|m| &m.assigned)
    }

    /// The partitions the member was told to revoke and has not yet.
    pub fn member_pending_revocation(&self, member_id: &str) -> Option<&Partitions> {
        self.members.get(member_id).map(|m| &m.pending_revocation)
    }

    /// The member's target partitions at the assignment epoch.
    pub fn member_target(&self, member_id: &str) -> Option<&Partitions> {
        self.target.get(member_id)
    }
}

/// Copies a heartbeat's changed fields into the member; true if its
/// subscription or assignor changed.
fn apply_fields(member: &mut Member, hb: &Heartbeat) -> bool {
    let mut changed = false;
    if let Some(rack_id) = &hb.rack_id {
        member.rack_id = Some(rack_id.clone());
    }
    if let Some(timeout) = hb.rebalance_timeout_ms {
        member.rebalance_timeout_ms = timeout;
    }
    if let Some(names) = &hb.topic_names {
        if *names != member.topic_names {
            member.topic_names = names.clone();
            changed = true;
        }
    }
    if let Some(regex) = &hb.topic_regex {
        let old = member.topic_regex.as_ref().map(|r| r.source.as_str());
        if regex.as_ref().map(|r| r.source.as_str()) != old {
            member.topic_regex = regex.clone();
            changed = true;
        }
    }
    if let Some(name) = &hb.server_assignor {
        if member.server_assignor.as_ref() != Some(name) {
            member.server_assignor = Some(name.clone());
            changed = true;
        }
    }
    changed
}

fn leave_response(
    cfg: &ConsumerConfig,
    member_id: &str,
    epoch: i32,
) -> ConsumerGroupHeartbeatResponse {
    let mut response = ConsumerGroupHeartbeatResponse::default();
    response.member_id = Some(StrBytes::from_string(member_id.to_owned()));
    response.member_epoch = epoch;
    response.heartbeat_interval_ms = cfg.heartbeat_interval_ms;
    response
}

/// Partitions grouped by topic id, both in order.
fn by_topic(partitions: &Partitions) -> BTreeMap<uuid::Uuid, Vec<i32>> {
    let mut topics: BTreeMap<uuid::Uuid, Vec<i32>> = BTreeMap::new();
    for tp in partitions {
        topics.entry(tp.topic_id).or_default().push(tp.partition);
    }
    topics
}

fn heartbeat_assignment(partitions: &Partitions) -> HeartbeatAssignment {
    let mut assignment = HeartbeatAssignment::default();
    assignment.topic_partitions = by_topic(partitions)
        .into_iter()
        .map(|(topic_id, partitions)| {
            let mut topic = HeartbeatTopicPartitions::default();
            topic.topic_id = topic_id;
            topic.partitions = partitions;
            topic
        })
        .collect();
    assignment
}

/// Partitions with topic names for ConsumerGroupDescribe; a topic deleted
/// since shows an empty name.
fn describe_assignment(
    topics: &dyn TopicMetadata,
    partitions: &Partitions,
) -> describe_response::Assignment {
    let mut assignment = describe_response::Assignment::default();
    assignment.topic_partitions = by_topic(partitions)
        .into_iter()
        .map(|(topic_id, partitions)| {
            let name = topics
                .topic_by_id(topic_id)
                .map(|(name, _)| name)
                .unwrap_or_default();
            let mut topic = describe_response::TopicPartitions::default();
            topic.topic_id = topic_id;
            topic.topic_name = TopicName(StrBytes::from_string(name));
            topic.partitions = partitions;
            topic
        })
        .collect();
    assignment
}
