//! Classic groups: the JoinGroup / SyncGroup / Heartbeat / LeaveGroup
//! protocol, with static membership (KIP-345) and the rounds that
//! cooperative rebalancing (KIP-429) runs.
//!
//! States, as Kafka names them: Empty -> PreparingRebalance ->
//! CompletingRebalance -> Stable, and Dead once deleted.
//!
//! The group never answers a JoinGroup or SyncGroup by return value: it
//! pushes [`Output`]s, because a join waits for the rest of the group.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::ResponseError;

use crate::{Millis, RequestId};

/// Broker settings that govern classic groups.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClassicConfig {
    /// `group.min.session.timeout.ms`
    pub min_session_timeout_ms: i32,
    /// `group.max.session.timeout.ms`
    pub max_session_timeout_ms: i32,
    /// `group.initial.rebalance.delay.ms`
    pub initial_rebalance_delay_ms: i32,
    /// `group.max.size`
    pub max_size: i32,
}

impl Default for ClassicConfig {
    fn default() -> Self {
        ClassicConfig {
            min_session_timeout_ms: 6_000,
            max_session_timeout_ms: 1_800_000,
            initial_rebalance_delay_ms: 3_000,
            max_size: i32::MAX,
        }
    }
}

/// A JoinGroup for one group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinRequest {
    /// The runtime's handle; the answer comes back as [`Output::Join`].
    pub request: RequestId,
    /// The JoinGroup version (v4+: a new dynamic member first gets
    /// MEMBER_ID_REQUIRED with its id, KIP-394).
    pub version: i16,
    /// Empty for a member joining for the first time.
    pub member_id: String,
    /// `group.instance.id` of a static member.
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    /// v0 has none; the runtime passes the session timeout then.
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    /// (name, metadata) in the member's order of preference.
    pub protocols: Vec<(String, Bytes)>,
    pub reason: Option<String>,
    /// A fresh UUID string from the runtime; a new member's id is
    /// `"{client_id or group_instance_id}-{fresh_suffix}"` as in Kafka.
    pub fresh_suffix: String,
}

/// A JoinGroup answer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JoinResponse {
    pub error: i16,
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: String,
    /// v9+: the leader of a static group that rejoined without a change
    /// is told it need not assign again.
    pub skip_assignment: bool,
    pub member_id: String,
    /// Only the leader gets the members with their metadata for the
    /// chosen protocol.
    pub members: Vec<JoinedMember>,
}

/// A member as the leader sees it in its JoinGroup answer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JoinedMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub metadata: Bytes,
}

/// A SyncGroup for one group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncRequest {
    pub request: RequestId,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub generation_id: i32,
    /// v5+; checked against the group's when present.
    pub protocol_type: Option<String>,
    /// v5+; checked against the group's when present.
    pub protocol_name: Option<String>,
    /// From the leader: (member id, assignment).
    pub assignments: Vec<(String, Bytes)>,
}

/// A SyncGroup answer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyncResponse {
    pub error: i16,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

/// What a group asks of the runtime.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Answer a pending JoinGroup.
    Join(RequestId, JoinResponse),
    /// Answer a pending SyncGroup.
    Sync(RequestId, SyncResponse),
    /// The group's persistent state changed: write [`ClassicGroup::snapshot`]
    /// to `__consumer_offsets` (before sending the outputs that follow it).
    Persist,
}

/// One member named in a LeaveGroup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaveMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub reason: Option<String>,
}

/// The group's state, named as Kafka's DescribeGroups and ListGroups show it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClassicState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

impl ClassicState {
    /// Kafka's name: "Empty", "PreparingRebalance", "CompletingRebalance",
    /// "Stable", "Dead".
    pub fn as_str(self) -> &'static str {
        match self {
            ClassicState::Empty => "Empty",
            ClassicState::PreparingRebalance => "PreparingRebalance",
            ClassicState::CompletingRebalance => "CompletingRebalance",
            ClassicState::Stable => "Stable",
            ClassicState::Dead => "Dead",
        }
    }
}

/// A member as DescribeGroups shows it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemberDescription {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    /// The member's metadata for the group's protocol (empty if none chosen).
    pub metadata: Bytes,
    pub assignment: Bytes,
}

/// The persistent part of a group, as Kafka's GroupMetadataValue holds it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GroupSnapshot {
    pub protocol_type: String,
    pub generation: i32,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    pub current_state_timestamp: Millis,
    pub members: Vec<MemberSnapshot>,
}

/// One member in a [`GroupSnapshot`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemberSnapshot {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    /// Metadata for the group's chosen protocol.
    pub subscription: Bytes,
    pub assignment: Bytes,
}

/// A member of a classic group, with the requests it is waiting on.
#[derive(Clone, Debug)]
struct Member {
    member_id: String,
    group_instance_id: Option<String>,
    client_id: String,
    client_host: String,
    rebalance_timeout_ms: i32,
    session_timeout_ms: i32,
    /// (name, metadata) in the member's order of preference.
    protocols: Vec<(String, Bytes)>,
    /// None until the member gets an assignment; always set when Stable.
    assignment: Option<Bytes>,
    /// A JoinGroup held until the join phase completes.
    held_join: Option<RequestId>,
    /// A SyncGroup held until the leader's assignment arrives.
    held_sync: Option<RequestId>,
    /// When the member is removed unless it shows signs of life.
    session_deadline: Millis,
}

impl Member {
    fn metadata(&self, protocol: Option<&str>) -> Bytes {
        protocol
            .and_then(|p| self.protocols.iter().find(|(name, _)| name == p))
            .map(|(_, metadata)| metadata.clone())
            .unwrap_or_default()
    }

    fn supports(&self, protocol: &str) -> bool {
        self.protocols.iter().any(|(name, _)| name == protocol)
    }

    fn refresh_session(&mut self, now: Millis) {
        self.session_deadline = now.saturating_add(Millis::from(self.session_timeout_ms.max(0)));
    }

    /// A member waiting on a held request is kept alive by it: the join
    /// and sync phases have their own deadlines.
    fn session_can_expire(&self) -> bool {
        self.held_join.is_none() && self.held_sync.is_none()
    }
}

/// The join phase of a rebalance (state PreparingRebalance).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum JoinPhase {
    /// A group that was Empty waits `group.initial.rebalance.delay.ms` for
    /// more members, extending by another delay while members keep coming,
    /// up to `limit` (Kafka's InitialDelayedJoin). It never ends early.
    Initial {
        deadline: Millis,
        limit: Millis,
        new_member_added: bool,
    },
    /// Ends when every member has rejoined, or at `deadline`.
    Rebalance { deadline: Millis },
}

impl JoinPhase {
    fn deadline(self) -> Millis {
        match self {
            JoinPhase::Initial { deadline, .. } | JoinPhase::Rebalance { deadline } => deadline,
        }
    }
}

/// A timer of the group that is due.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Due {
    PendingMember(String),
    JoinPhase,
    SyncPhase,
    Session(String),
}

fn code(error: ResponseError) -> i16 {
    error.code()
}

const NONE: i16 = 0;

fn join_error(member_id: &str, error: i16) -> JoinResponse {
    JoinResponse {
        error,
        generation_id: -1,
        member_id: member_id.to_string(),
        ..JoinResponse::default()
    }
}

fn sync_error(error: i16) -> SyncResponse {
    SyncResponse {
        error,
        ..SyncResponse::default()
    }
}

/// One classic group.
#[derive(Debug)]
pub struct ClassicGroup {
    group_id: String,
    state: ClassicState,
    /// When the group entered its state (GroupMetadataValue's
    /// `current_state_timestamp`).
    state_timestamp: Millis,
    generation: i32,
    protocol_type: Option<String>,
    protocol: Option<String>,
    leader: Option<String>,
    /// In the order members were added; the first is the leader of choice.
    members: IndexMap<String, Member>,
    /// group.instance.id -> current member id.
    static_members: BTreeMap<String, String>,
    /// Ids handed out with MEMBER_ID_REQUIRED, with their expiry.
    pending_members: BTreeMap<String, Millis>,
    /// Some exactly when PreparingRebalance.
    join_phase: Option<JoinPhase>,
    /// Members of the current generation that have not sent SyncGroup yet.
    pending_sync: BTreeSet<String>,
    /// When the members still in `pending_sync` are removed.
    sync_deadline: Option<Millis>,
}

impl ClassicGroup {
    /// A new, empty group.
    pub fn new(group_id: String, now: Millis) -> ClassicGroup {
        ClassicGroup {
            group_id,
            state: ClassicState::Empty,
            state_timestamp: now,
            generation: 0,
            protocol_type: None,
            protocol: None,
            leader: None,
            members: IndexMap::new(),
            static_members: BTreeMap::new(),
            pending_members: BTreeMap::new(),
            join_phase: None,
            pending_sync: BTreeSet::new(),
            sync_deadline: None,
        }
    }

    /// A group rebuilt from its last snapshot: Stable with its members if it
    /// had any (each given a full session from `now`), Empty otherwise.
    ///
    /// A snapshot this group wrote comes back unchanged from
    /// [`ClassicGroup::snapshot`]. An inconsistent one is repaired rather
    /// than trusted: a member repeating an earlier member id or instance id
    /// is dropped, and a leader that is not a member is replaced by the
    /// first member.
    pub fn restore(group_id: String, snapshot: GroupSnapshot, now: Millis) -> ClassicGroup {
        let mut group = ClassicGroup::new(group_id, snapshot.current_state_timestamp);
        group.generation = snapshot.generation;
        group.protocol_type = Some(snapshot.protocol_type).filter(|t| !t.is_empty());
        group.protocol = snapshot.protocol;
        for m in snapshot.members {
            let duplicate_instance = m
                .group_instance_id
                .as_ref()
                .is_some_and(|i| group.static_members.contains_key(i));
            if duplicate_instance || group.members.contains_key(&m.member_id) {
                tracing::warn!(group = %group.group_id, member = %m.member_id, "dropping a duplicate member from a group record");
                continue;
            }
            let protocols = match &group.protocol {
                Some(protocol) => vec![(protocol.clone(), m.subscription)],
                None => Vec::new(),
            };
            let mut member = Member {
                member_id: m.member_id,
                group_instance_id: m.group_instance_id,
                client_id: m.client_id,
                client_host: m.client_host,
                rebalance_timeout_ms: m.rebalance_timeout_ms,
                session_timeout_ms: m.session_timeout_ms,
                protocols,
                assignment: Some(m.assignment),
                held_join: None,
                held_sync: None,
                session_deadline: now,
            };
            member.refresh_session(now);
            if let Some(instance) = &member.group_instance_id {
                group
                    .static_members
                    .insert(instance.clone(), member.member_id.clone());
            }
            group.members.insert(member.member_id.clone(), member);
        }
        group.leader = match snapshot.leader {
            Some(leader) if group.members.contains_key(&leader) => Some(leader),
            _ => group.members.keys().next().cloned(),
        };
        if !group.members.is_empty() {
            group.state = ClassicState::Stable;
        }
        group.check_invariants();
        group
    }

    /// The state to persist. Members are listed in the order they joined;
    /// a member without an assignment yet is written with an empty one.
    pub fn snapshot(&self, now: Millis) -> GroupSnapshot {
        // The timestamp is that of the last state change, not `now`, so
        // that a restored group writes back what it read.
        let _ = now;
        let protocol = self.protocol.as_deref();
        GroupSnapshot {
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            generation: self.generation,
            protocol: self.protocol.clone(),
            leader: self.leader.clone(),
            current_state_timestamp: self.state_timestamp,
            members: self
                .members
                .values()
                .map(|m| MemberSnapshot {
                    member_id: m.member_id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    session_timeout_ms: m.session_timeout_ms,
                    subscription: m.metadata(protocol),
                    assignment: m.assignment.clone().unwrap_or_default(),
                })
                .collect(),
        }
    }

    pub fn group_id(&self) -> &str {
        &self.group_id
    }

    pub fn state(&self) -> ClassicState {
        self.state
    }

    /// The protocol type members joined with ("consumer" for consumers).
    pub fn protocol_type(&self) -> Option<&str> {
        self.protocol_type.as_deref()
    }

    /// The protocol chosen for the current generation.
    pub fn protocol_name(&self) -> Option<&str> {
        self.protocol.as_deref()
    }

    pub fn generation(&self) -> i32 {
        self.generation
    }

    /// True when the group has no members. Ids handed out with
    /// MEMBER_ID_REQUIRED that were not used yet do not count.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// The current leader's member id, if the group has members.
    pub fn leader(&self) -> Option<&str> {
        self.leader.as_deref()
    }

    /// Handles a JoinGroup; the answer arrives as [`Output::Join`] now or
    /// when the join phase completes.
    pub fn join(
        &mut self,
        now: Millis,
        cfg: &ClassicConfig,
        req: JoinRequest,
        out: &mut Vec<Output>,
    ) {
        let request = req.request;
        let error = if self.state == ClassicState::Dead {
            Some(ResponseError::CoordinatorNotAvailable)
        } else if req.protocol_type.is_empty() || req.protocols.is_empty() {
            Some(ResponseError::InconsistentGroupProtocol)
        } else if req.session_timeout_ms < cfg.min_session_timeout_ms
            || req.session_timeout_ms > cfg.max_session_timeout_ms
        {
            Some(ResponseError::InvalidSessionTimeout)
        } else if !self.supports_protocols(&req.protocol_type, &req.protocols) {
            Some(ResponseError::InconsistentGroupProtocol)
        } else {
            None
        };
        if let Some(error) = error {
            out.push(Output::Join(
                request,
                join_error(&req.member_id, code(error)),
            ));
            return;
        }
        if !self.accepts_joiner(cfg, &req) {
            // As in Kafka, an existing member that is turned away (the group
            // shrank its max size) leaves the group.
            self.pending_members.remove(&req.member_id);
            if self.remove_member(&req.member_id, out) {
                self.after_removal(now, cfg, out);
            } else {
                self.maybe_complete_join(now, out);
            }
            let error = code(ResponseError::GroupMaxSizeReached);
            out.push(Output::Join(request, join_error("", error)));
        } else if req.member_id.is_empty() {
            self.join_new_member(now, cfg, req, out);
        } else {
            self.join_known_member(now, cfg, req, out);
        }
        self.check_invariants();
    }

    /// Handles a SyncGroup; the answer arrives as [`Output::Sync`].
    pub fn sync(
        &mut self,
        now: Millis,
        cfg: &ClassicConfig,
        req: SyncRequest,
        out: &mut Vec<Output>,
    ) {
        let _ = cfg;
        let request = req.request;
        if let Err(error) = self.validate_sync(&req) {
            out.push(Output::Sync(request, sync_error(error)));
            return;
        }
        let is_leader = self.leader.as_deref() == Some(req.member_id.as_str());
        let Some(member) = self.members.get_mut(&req.member_id) else {
            let error = code(ResponseError::UnknownMemberId);
            out.push(Output::Sync(request, sync_error(error)));
            return;
        };
        member.refresh_session(now);
        match self.state {
            ClassicState::Empty | ClassicState::Dead => {
                let error = code(ResponseError::UnknownMemberId);
                out.push(Output::Sync(request, sync_error(error)));
            }
            ClassicState::PreparingRebalance => {
                let error = code(ResponseError::RebalanceInProgress);
                out.push(Output::Sync(request, sync_error(error)));
            }
            ClassicState::CompletingRebalance => {
                if let Some(stale) = member.held_sync.replace(request) {
                    let error = code(ResponseError::RebalanceInProgress);
                    out.push(Output::Sync(stale, sync_error(error)));
                }
                self.synced(&req.member_id);
                if is_leader {
                    self.complete_sync(now, req.assignments, out);
                }
            }
            ClassicState::Stable => {
                let assignment = member.assignment.clone().unwrap_or_default();
                self.synced(&req.member_id);
                out.push(Output::Sync(request, self.sync_answer(assignment)));
            }
        }
        self.check_invariants();
    }

    /// Handles a Heartbeat; returns its error code.
    pub fn heartbeat(
        &mut self,
        now: Millis,
        member_id: &str,
        group_instance_id: Option<&str>,
        generation_id: i32,
    ) -> i16 {
        if self.state == ClassicState::Dead {
            return code(ResponseError::CoordinatorNotAvailable);
        }
        if let Err(error) = self.validate_member(member_id, group_instance_id) {
            return error;
        }
        if generation_id != self.generation {
            return code(ResponseError::IllegalGeneration);
        }
        let state = self.state;
        let Some(member) = self.members.get_mut(member_id) else {
            return code(ResponseError::UnknownMemberId);
        };
        match state {
            ClassicState::Empty | ClassicState::Dead => code(ResponseError::UnknownMemberId),
            ClassicState::PreparingRebalance => {
                member.refresh_session(now);
                code(ResponseError::RebalanceInProgress)
            }
            ClassicState::CompletingRebalance | ClassicState::Stable => {
                member.refresh_session(now);
                NONE
            }
        }
    }

    /// Handles a LeaveGroup; one error code per member, in order. Every
    /// member is checked against the group as it was before the request,
    /// so a member named twice gets NONE twice. On a Dead group every
    /// member gets COORDINATOR_NOT_AVAILABLE.
    pub fn leave(
        &mut self,
        now: Millis,
        cfg: &ClassicConfig,
        members: &[LeaveMember],
        out: &mut Vec<Output>,
    ) -> Vec<i16> {
        if self.state == ClassicState::Dead {
            return vec![code(ResponseError::CoordinatorNotAvailable); members.len()];
        }
        let mut codes = Vec::with_capacity(members.len());
        let mut leaving = Vec::new();
        let mut leaving_pending = Vec::new();
        for m in members {
            let result = match &m.group_instance_id {
                None if self.pending_members.contains_key(&m.member_id) => {
                    leaving_pending.push(m.member_id.clone());
                    NONE
                }
                None if self.members.contains_key(&m.member_id) => {
                    leaving.push(m.member_id.clone());
                    NONE
                }
                None => code(ResponseError::UnknownMemberId),
                Some(instance) => match self.static_members.get(instance) {
                    None => code(ResponseError::UnknownMemberId),
                    Some(current) if !m.member_id.is_empty() && *current != m.member_id => {
                        code(ResponseError::FencedInstanceId)
                    }
                    Some(current) => {
                        leaving.push(current.clone());
                        NONE
                    }
                },
            };
            if result == NONE {
                tracing::info!(
                    group = %self.group_id,
                    member = %m.member_id,
                    instance = ?m.group_instance_id,
                    reason = ?m.reason,
                    "member leaves the group"
                );
            }
            codes.push(result);
        }
        for id in &leaving_pending {
            self.pending_members.remove(id);
        }
        let mut removed = false;
        for id in &leaving {
            removed |= self.remove_member(id, out);
        }
        if removed {
            self.after_removal(now, cfg, out);
        } else if !leaving_pending.is_empty() {
            self.maybe_complete_join(now, out);
        }
        self.check_invariants();
        codes
    }

    /// Whether an OffsetCommit from this member at this generation may
    /// commit (Kafka's `ClassicGroup.validateOffsetCommit`).
    ///
    /// Generation -1 with no member is an admin tool or a consumer that
    /// assigns partitions itself: it may commit only while the group is
    /// Empty. Anything else must be a current member at the current
    /// generation, and not while the group waits for its assignment.
    pub fn validate_offset_commit(
        &self,
        member_id: &str,
        group_instance_id: Option<&str>,
        generation_id: i32,
    ) -> Result<(), i16> {
        if self.state == ClassicState::Dead {
            return Err(code(ResponseError::CoordinatorNotAvailable));
        }
        if generation_id < 0 && self.state == ClassicState::Empty {
            return Ok(());
        }
        if generation_id >= 0 || !member_id.is_empty() || group_instance_id.is_some() {
            self.validate_member(member_id, group_instance_id)?;
            if generation_id != self.generation {
                return Err(code(ResponseError::IllegalGeneration));
            }
        } else if self.state != ClassicState::Empty {
            return Err(code(ResponseError::UnknownMemberId));
        }
        if self.state == ClassicState::CompletingRebalance {
            return Err(code(ResponseError::RebalanceInProgress));
        }
        Ok(())
    }

    /// [`ClassicGroup::validate_offset_commit`], and on success an
    /// OffsetCommit from a member counts as a sign of life: its session is
    /// refreshed as a heartbeat would.
    pub fn accept_offset_commit(
        &mut self,
        now: Millis,
        member_id: &str,
        group_instance_id: Option<&str>,
        generation_id: i32,
    ) -> Result<(), i16> {
        self.validate_offset_commit(member_id, group_instance_id, generation_id)?;
        if let Some(member) = self.members.get_mut(member_id) {
            member.refresh_session(now);
        }
        Ok(())
    }

    /// Expires members whose session ended, completes join phases whose
    /// time is up, and removes members that never synced.
    pub fn tick(&mut self, now: Millis, cfg: &ClassicConfig, out: &mut Vec<Output>) {
        // Each step removes a member or ends a phase; an initial delay is
        // extended at most once per member added. The bound only guards
        // against a bug turning into a hung runtime.
        let steps = 4 * (self.members.len() + self.pending_members.len()) + 16;
        for _ in 0..steps {
            let Some((deadline, due)) = self.earliest_timer() else {
                break;
            };
            if deadline > now {
                break;
            }
            self.fire(now, cfg, due, out);
            self.check_invariants();
        }
        debug_assert!(
            self.next_deadline().is_none_or(|d| d > now),
            "tick left a due timer behind"
        );
    }

    /// The earliest time [`ClassicGroup::tick`] has something to do.
    pub fn next_deadline(&self) -> Option<Millis> {
        self.earliest_timer().map(|(deadline, _)| deadline)
    }

    /// The members for DescribeGroups, in the order they joined, each with
    /// its metadata for the chosen protocol and its current assignment
    /// (empty if it has none yet).
    pub fn members(&self) -> Vec<MemberDescription> {
        let protocol = self.protocol.as_deref();
        self.members
            .values()
            .map(|m| MemberDescription {
                member_id: m.member_id.clone(),
                group_instance_id: m.group_instance_id.clone(),
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                metadata: m.metadata(protocol),
                assignment: m.assignment.clone().unwrap_or_default(),
            })
            .collect()
    }

    /// Topics the members subscribe to, decoded from their "consumer"
    /// protocol metadata; none when the protocol type is not "consumer".
    /// A member whose metadata does not decode adds no topics.
    pub fn subscribed_topics(&self) -> Option<BTreeSet<String>> {
        if self.protocol_type.as_deref() != Some("consumer") {
            return None;
        }
        let protocol = self.protocol.as_deref()?;
        let mut topics = BTreeSet::new();
        for member in self.members.values() {
            let metadata = member.metadata(Some(protocol));
            match consumer_subscription_topics(&metadata) {
                Some(subscribed) => topics.extend(subscribed),
                None => tracing::debug!(
                    group = %self.group_id,
                    member = %member.member_id,
                    "member metadata is not a consumer subscription"
                ),
            }
        }
        Some(topics)
    }

    /// Marks the group Dead (DeleteGroups on an empty group, or the shard
    /// unloading) and answers every pending request with `error`
    /// (NOT_COORDINATOR on unload).
    pub fn shut_down(&mut self, error: i16, out: &mut Vec<Output>) {
        for member in self.members.values_mut() {
            if let Some(request) = member.held_join.take() {
                out.push(Output::Join(request, join_error(&member.member_id, error)));
            }
            if let Some(request) = member.held_sync.take() {
                out.push(Output::Sync(request, sync_error(error)));
            }
        }
        self.members.clear();
        self.static_members.clear();
        self.pending_members.clear();
        self.pending_sync.clear();
        self.sync_deadline = None;
        self.join_phase = None;
        self.leader = None;
        self.state = ClassicState::Dead;
        self.check_invariants();
    }
}

/// Joining.
impl ClassicGroup {
    /// Kafka's `supportsProtocols`: any protocol type and protocols start
    /// an empty group; otherwise the type must match and one protocol must
    /// be supported by every current member.
    fn supports_protocols(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        if self.members.is_empty() {
            return true;
        }
        self.protocol_type.as_deref() == Some(protocol_type)
            && protocols
                .iter()
                .any(|(name, _)| self.members.values().all(|m| m.supports(name)))
    }

    /// Kafka's `acceptJoiningMember`: whether `group.max.size` lets this
    /// joiner in. While rebalancing, the members that have rejoined are
    /// counted, so that a lowered max size turns away the last to rejoin.
    fn accepts_joiner(&self, cfg: &ClassicConfig, req: &JoinRequest) -> bool {
        let max_size = usize::try_from(cfg.max_size).unwrap_or(0);
        let existing = if req.member_id.is_empty() {
            req.group_instance_id
                .as_ref()
                .and_then(|instance| self.static_members.get(instance))
                .and_then(|id| self.members.get(id))
        } else {
            self.members.get(&req.member_id)
        };
        match self.state {
            ClassicState::Empty | ClassicState::Dead => true,
            ClassicState::PreparingRebalance => {
                let awaiting = self
                    .members
                    .values()
                    .filter(|m| m.held_join.is_some())
                    .count();
                existing.is_some_and(|m| m.held_join.is_some()) || awaiting < max_size
            }
            ClassicState::CompletingRebalance | ClassicState::Stable => {
                existing.is_some() || self.members.len() < max_size
            }
        }
    }

    /// A member id nobody in the group has: `{base}-{suffix}`, with a
    /// counter appended should the runtime ever repeat a suffix.
    fn fresh_member_id(&self, base: &str, suffix: &str) -> String {
        let candidate = format!("{base}-{suffix}");
        let taken =
            |id: &str| self.members.contains_key(id) || self.pending_members.contains_key(id);
        if !taken(&candidate) {
            return candidate;
        }
        let mut n: u64 = 1;
        loop {
            let id = format!("{candidate}-{n}");
            if !taken(&id) {
                return id;
            }
            n += 1;
        }
    }

    fn join_new_member(
        &mut self,
        now: Millis,
        cfg: &ClassicConfig,
        req: JoinRequest,
        out: &mut Vec<Output>,
    ) {
        let base = req.group_instance_id.as_deref().unwrap_or(&req.client_id);
        let member_id = self.fresh_member_id(base, &req.fresh_suffix);
        let known = req
            .group_instance_id
            .as_ref()
            .and_then(|instance| self.static_members.get(instance))
            .cloned();
        if let Some(old_member_id) = known {
            self.replace_static_member(now, cfg, old_member_id, member_id, req, out);
        } else if req.group_instance_id.is_none() && req.version >= 4 {
            // KIP-394: the member must come back with this id, which proves
            // it received the answer before it counts as a member.
            let expiry = now.saturating_add(Millis::from(req.session_timeout_ms.max(0)));
            self.pending_members.insert(member_id.clone(), expiry);
            let error = code(ResponseError::MemberIdRequired);
            out.push(Output::Join(req.request, join_error(&member_id, error)));
        } else {
            self.add_member(now, cfg, member_id, req, out);
        }
    }

    fn join_known_member(
        &mut self,
        now: Millis,
        cfg: &ClassicConfig,
        req: JoinRequest,
        out: &mut Vec<Output>,
    ) {
        if req.group_instance_id.is_none() && self.pending_members.remove(&req.member_id).is_some()
        {
            let member_id = req.member_id.clone();
            self.add_member(now, cfg, member_id, req, out);
            return;
        }
        if let Err(error) = self.validate_member(&req.member_id, req.group_instance_id.as_deref()) {
            out.push(Output::Join(req.request, join_error(&req.member_id, error)));
            return;
        }
        let is_leader = self.is_leader(&req.member_id);
        let Some(member) = self.members.get_mut(&req.member_id) else {
            let error = code(ResponseError::UnknownMemberId);
            out.push(Output::Join(req.request, join_error(&req.member_id, error)));
            return;
        };
        let unchanged = member.protocols == req.protocols;
        match self.state {
            ClassicState::PreparingRebalance => {
                self.update_and_hold(now, &req, out);
                self.maybe_complete_join(now, out);
            }
            // The member lost its JoinGroup answer, or a follower has
            // nothing new: it gets the current generation again.
            ClassicState::CompletingRebalance | ClassicState::Stable
                if unchanged && !(self.state == ClassicState::Stable && is_leader) =>
            {
                member.refresh_session(now);
                let members = if is_leader {
                    self.joined_members()
                } else {
                    Vec::new()
                };
                let answer = self.join_answer(&req.member_id, members, false);
                out.push(Output::Join(req.request, answer));
            }
            // Changed metadata, or a leader that rejoins (it may have seen
            // a change the metadata does not show, such as new partitions).
            ClassicState::CompletingRebalance | ClassicState::Stable => {
                self.update_and_hold(now, &req, out);
                self.prepare_rebalance(now, cfg, "a member rejoined", out);
            }
            ClassicState::Empty | ClassicState::Dead => {
                let error = code(ResponseError::UnknownMemberId);
                out.push(Output::Join(req.request, join_error(&req.member_id, error)));
            }
        }
    }

    /// Records a rejoining member's new protocols and timeouts and holds its
    /// JoinGroup. A JoinGroup it had already held is answered
    /// REBALANCE_IN_PROGRESS: the client sent another, so it no longer
    /// waits on the first.
    fn update_and_hold(&mut self, now: Millis, req: &JoinRequest, out: &mut Vec<Output>) {
        let Some(member) = self.members.get_mut(&req.member_id) else {
            return;
        };
        member.protocols = req.protocols.clone();
        member.rebalance_timeout_ms = req.rebalance_timeout_ms;
        member.session_timeout_ms = req.session_timeout_ms;
        member.refresh_session(now);
        if let Some(stale) = member.held_join.replace(req.request) {
            let error = code(ResponseError::RebalanceInProgress);
            out.push(Output::Join(stale, join_error(&req.member_id, error)));
        }
    }

    /// Adds a member whose JoinGroup waits for the join phase, and starts
    /// a rebalance (or lets the running one complete).
    fn add_member(
        &mut self,
        now: Millis,
        cfg: &ClassicConfig,
        member_id: String,
        req: JoinRequest,
        out: &mut Vec<Output>,
    ) {
        if let Some(JoinPhase::Initial {
            new_member_added, ..
        }) = &mut self.join_phase
        {
            *new_member_added = true;
        }
        if self.members.is_empty() {
            self.protocol_type = Some(req.protocol_type.clone());
        }
        if self.leader.is_none() {
            self.leader = Some(member_id.clone());
        }
        if let Some(instance) = &req.group_instance_id {
            self.static_members
                .insert(instance.clone(), member_id.clone());
        }
        tracing::info!(
            group = %self.group_id,
            member = %member_id,
            instance = ?req.group_instance_id,
            reason = ?req.reason,
            "new member joins the group"
        );
        let mut member = Member {
            member_id: member_id.clone(),
            group_instance_id: req.group_instance_id,
            client_id: req.client_id,
            client_host: req.client_host,
            rebalance_timeout_ms: req.rebalance_timeout_ms,
            session_timeout_ms: req.session_timeout_ms,
            protocols: req.protocols,
            assignment: None,
            held_join: Some(req.request),
            held_sync: None,
            session_deadline: now,
        };
        member.refresh_session(now);
        self.members.insert(member_id, member);
        match self.state {
            ClassicState::PreparingRebalance => self.maybe_complete_join(now, out),
            _ => self.prepare_rebalance(now, cfg, "a new member joined", out),
        }
    }

    /// A static member restarted: it takes over the old member's place
    /// under a new member id, and whatever the old id was waiting on is
    /// answered FENCED_INSTANCE_ID. A Stable group whose member comes back
    /// without changing the group's selected protocol carries on without a
    /// rebalance.
    fn replace_static_member(
        &mut self,
        now: Millis,
        cfg: &ClassicConfig,
        old_member_id: String,
        member_id: String,
        req: JoinRequest,
        out: &mut Vec<Output>,
    ) {
        let Some(index) = self.members.get_index_of(&old_member_id) else {
            return self.add_member(now, cfg, member_id, req, out);
        };
        let Some((_, mut member)) = self.members.shift_remove_index(index) else {
            return self.add_member(now, cfg, member_id, req, out);
        };
        let fenced = code(ResponseError::FencedInstanceId);
        if let Some(request) = member.held_join.take() {
            out.push(Output::Join(request, join_error(&old_member_id, fenced)));
        }
        if let Some(request) = member.held_sync.take() {
            out.push(Output::Sync(request, sync_error(fenced)));
        }
        member.member_id = member_id.clone();
        member.client_id = req.client_id;
        member.client_host = req.client_host;
        member.protocols = req.protocols;
        member.rebalance_timeout_ms = req.rebalance_timeout_ms;
        member.session_timeout_ms = req.session_timeout_ms;
        member.refresh_session(now);
        if let Some(instance) = &member.group_instance_id {
            self.static_members
                .insert(instance.clone(), member_id.clone());
        }
        self.members.shift_insert(index, member_id.clone(), member);
        if self.is_leader(&old_member_id) {
            self.leader = Some(member_id.clone());
        }
        if self.pending_sync.remove(&old_member_id) {
            self.pending_sync.insert(member_id.clone());
        }
        // As in Kafka, only a change of the group's selected protocol forces
        // a rebalance. A restarted client's subscription bytes often differ
        // (a Java consumer no longer lists the partitions it owned) and must
        // not cost the group a rebalance; the leader, answered with
        // skip_assignment, sees the new metadata and rejoins itself if the
        // subscription really changed (KIP-345, KIP-814).
        let unchanged = self.select_protocol() == self.protocol;
        tracing::info!(
            group = %self.group_id,
            old_member = %old_member_id,
            member = %member_id,
            instance = ?req.group_instance_id,
            "static member rejoins under a new member id"
        );
        match self.state {
            ClassicState::Stable if unchanged => {
                // The member id changed: persist it before the member
                // learns it.
                out.push(Output::Persist);
                let is_leader = self.is_leader(&member_id);
                let members = if is_leader {
                    self.joined_members()
                } else {
                    Vec::new()
                };
                let skip_assignment = is_leader && req.version >= 9;
                let answer = self.join_answer(&member_id, members, skip_assignment);
                out.push(Output::Join(req.request, answer));
            }
            ClassicState::PreparingRebalance => {
                self.hold_join(&member_id, req.request);
                self.maybe_complete_join(now, out);
            }
            // In CompletingRebalance the leader may already be assigning
            // to the old id, so the round starts over.
            _ => {
                self.hold_join(&member_id, req.request);
                self.prepare_rebalance(now, cfg, "a static member rejoined", out);
            }
        }
    }

    fn hold_join(&mut self, member_id: &str, request: RequestId) {
        if let Some(member) = self.members.get_mut(member_id) {
            member.held_join = Some(request);
        }
    }

    /// The answer to a JoinGroup for the current generation.
    fn join_answer(
        &self,
        member_id: &str,
        members: Vec<JoinedMember>,
        skip_assignment: bool,
    ) -> JoinResponse {
        JoinResponse {
            error: NONE,
            generation_id: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol.clone(),
            leader: self.leader.clone().unwrap_or_default(),
            skip_assignment,
            member_id: member_id.to_string(),
            members,
        }
    }

    /// What the leader assigns from: every member with its metadata for
    /// the chosen protocol.
    fn joined_members(&self) -> Vec<JoinedMember> {
        let protocol = self.protocol.as_deref();
        self.members
            .values()
            .map(|m| JoinedMember {
                member_id: m.member_id.clone(),
                group_instance_id: m.group_instance_id.clone(),
                metadata: m.metadata(protocol),
            })
            .collect()
    }
}

/// Rebalance rounds.
impl ClassicGroup {
    fn set_state(&mut self, state: ClassicState, now: Millis) {
        self.state = state;
        self.state_timestamp = now;
    }

    fn is_leader(&self, member_id: &str) -> bool {
        self.leader.as_deref() == Some(member_id)
    }

    fn rebalance_timeout_ms(&self) -> Millis {
        self.members
            .values()
            .map(|m| Millis::from(m.rebalance_timeout_ms.max(0)))
            .max()
            .unwrap_or(0)
    }

    /// Starts a join phase (state PreparingRebalance). Syncs held for the
    /// round being abandoned are answered REBALANCE_IN_PROGRESS and its
    /// assignments dropped.
    fn prepare_rebalance(
        &mut self,
        now: Millis,
        cfg: &ClassicConfig,
        reason: &str,
        out: &mut Vec<Output>,
    ) {
        debug_assert!(matches!(
            self.state,
            ClassicState::Empty | ClassicState::CompletingRebalance | ClassicState::Stable
        ));
        tracing::info!(
            group = %self.group_id,
            generation = self.generation,
            reason,
            "preparing to rebalance"
        );
        if self.state == ClassicState::CompletingRebalance {
            let error = code(ResponseError::RebalanceInProgress);
            for member in self.members.values_mut() {
                member.assignment = None;
                if let Some(request) = member.held_sync.take() {
                    member.refresh_session(now);
                    out.push(Output::Sync(request, sync_error(error)));
                }
            }
        }
        self.pending_sync.clear();
        self.sync_deadline = None;
        let rebalance_timeout_ms = self.rebalance_timeout_ms();
        let initial = self.state == ClassicState::Empty && cfg.initial_rebalance_delay_ms > 0;
        self.set_state(ClassicState::PreparingRebalance, now);
        if initial {
            let delay_ms = Millis::from(cfg.initial_rebalance_delay_ms);
            self.join_phase = Some(JoinPhase::Initial {
                deadline: now.saturating_add(delay_ms),
                limit: now.saturating_add(rebalance_timeout_ms.max(delay_ms)),
                new_member_added: false,
            });
        } else {
            self.join_phase = Some(JoinPhase::Rebalance {
                deadline: now.saturating_add(rebalance_timeout_ms),
            });
            self.maybe_complete_join(now, out);
        }
    }

    /// Ends a join phase early when nobody else is expected: every member
    /// has rejoined and no MEMBER_ID_REQUIRED joiner is on its way back.
    /// The initial delay never ends early, unless the group emptied.
    fn maybe_complete_join(&mut self, now: Millis, out: &mut Vec<Output>) {
        if self.state != ClassicState::PreparingRebalance {
            return;
        }
        let everyone_joined =
            self.members.values().all(|m| m.held_join.is_some()) && self.pending_members.is_empty();
        let ready = match self.join_phase {
            Some(JoinPhase::Rebalance { .. }) => everyone_joined,
            Some(JoinPhase::Initial { .. }) | None => false,
        };
        if ready || self.members.is_empty() {
            self.complete_join(now, out);
        }
    }

    /// Ends the join phase: dynamic members that did not rejoin are
    /// removed, and the rest form the next generation. Static members stay,
    /// as in Kafka — a restarting static member keeps its place — and are
    /// removed later if they miss the sync deadline or their session ends.
    fn complete_join(&mut self, now: Millis, out: &mut Vec<Output>) {
        let absent: Vec<String> = self
            .members
            .values()
            .filter(|m| m.held_join.is_none() && m.group_instance_id.is_none())
            .map(|m| m.member_id.clone())
            .collect();
        for member_id in &absent {
            tracing::info!(group = %self.group_id, member = %member_id, "member did not rejoin in time");
            self.remove_member(member_id, out);
        }
        self.join_phase = None;
        self.generation = self.generation.saturating_add(1);
        if self.members.is_empty() {
            self.protocol = None;
            self.set_state(ClassicState::Empty, now);
            out.push(Output::Persist);
            return;
        }
        self.protocol = self.select_protocol();
        self.set_state(ClassicState::CompletingRebalance, now);
        tracing::info!(
            group = %self.group_id,
            generation = self.generation,
            protocol = ?self.protocol,
            members = self.members.len(),
            "join phase complete"
        );
        let mut answers = Vec::with_capacity(self.members.len());
        for member in self.members.values_mut() {
            member.refresh_session(now);
            if let Some(request) = member.held_join.take() {
                answers.push((request, member.member_id.clone()));
            }
            self.pending_sync.insert(member.member_id.clone());
        }
        for (request, member_id) in answers {
            let members = if self.is_leader(&member_id) {
                self.joined_members()
            } else {
                Vec::new()
            };
            out.push(Output::Join(
                request,
                self.join_answer(&member_id, members, false),
            ));
        }
        self.sync_deadline = Some(now.saturating_add(self.rebalance_timeout_ms()));
    }

    /// Kafka's `selectProtocol`: each member votes for the protocol it
    /// prefers among those every member supports; most votes wins. A tie
    /// goes to the protocol the earliest member prefers.
    fn select_protocol(&self) -> Option<String> {
        let first = self.members.values().next()?;
        let candidates: Vec<&str> = first
            .protocols
            .iter()
            .map(|(name, _)| name.as_str())
            .filter(|name| self.members.values().all(|m| m.supports(name)))
            .collect();
        let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
        for member in self.members.values() {
            let choice = member
                .protocols
                .iter()
                .map(|(name, _)| name.as_str())
                .find(|name| candidates.contains(name));
            if let Some(choice) = choice {
                *votes.entry(choice).or_default() += 1;
            }
        }
        let mut best: Option<(&str, usize)> = None;
        for name in candidates {
            let count = votes.get(name).copied().unwrap_or(0);
            if best.is_none_or(|(_, most)| count > most) {
                best = Some((name, count));
            }
        }
        best.map(|(name, _)| name.to_string())
    }

    /// Marks a member as having sent its SyncGroup for this generation.
    fn synced(&mut self, member_id: &str) {
        self.pending_sync.remove(member_id);
        if self.pending_sync.is_empty() {
            self.sync_deadline = None;
        }
    }

    /// The leader's assignment arrived: the group is Stable and every held
    /// SyncGroup gets its member's part.
    fn complete_sync(
        &mut self,
        now: Millis,
        assignments: Vec<(String, Bytes)>,
        out: &mut Vec<Output>,
    ) {
        let mut assigned: BTreeMap<String, Bytes> = BTreeMap::new();
        for (member_id, assignment) in assignments {
            if self.members.contains_key(&member_id) {
                assigned.insert(member_id, assignment);
            } else {
                tracing::debug!(group = %self.group_id, member = %member_id, "assignment for an unknown member ignored");
            }
        }
        for member in self.members.values_mut() {
            member.assignment = Some(assigned.remove(&member.member_id).unwrap_or_default());
        }
        out.push(Output::Persist);
        self.set_state(ClassicState::Stable, now);
        let mut answers = Vec::new();
        for member in self.members.values_mut() {
            if let Some(request) = member.held_sync.take() {
                member.refresh_session(now);
                answers.push((request, member.assignment.clone().unwrap_or_default()));
            }
        }
        for (request, assignment) in answers {
            out.push(Output::Sync(request, self.sync_answer(assignment)));
        }
    }

    fn sync_answer(&self, assignment: Bytes) -> SyncResponse {
        SyncResponse {
            error: NONE,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol.clone(),
            assignment,
        }
    }

    /// Removes a member, answering what it waits on with UNKNOWN_MEMBER_ID.
    /// The caller decides what the group does next ([`Self::after_removal`]).
    fn remove_member(&mut self, member_id: &str, out: &mut Vec<Output>) -> bool {
        let Some(member) = self.members.shift_remove(member_id) else {
            return false;
        };
        let error = code(ResponseError::UnknownMemberId);
        if let Some(request) = member.held_join {
            out.push(Output::Join(request, join_error("", error)));
        }
        if let Some(request) = member.held_sync {
            out.push(Output::Sync(request, sync_error(error)));
        }
        if let Some(instance) = &member.group_instance_id {
            if self.static_members.get(instance).map(String::as_str) == Some(member_id) {
                self.static_members.remove(instance);
            }
        }
        self.synced(member_id);
        if self.is_leader(member_id) {
            self.leader = self.members.keys().next().cloned();
        }
        true
    }

    /// What the group does once members are gone: a settled group
    /// rebalances (and empties at once if nobody is left); a join phase may
    /// now have everyone it waits for.
    fn after_removal(&mut self, now: Millis, cfg: &ClassicConfig, out: &mut Vec<Output>) {
        match self.state {
            ClassicState::Stable | ClassicState::CompletingRebalance => {
                self.prepare_rebalance(now, cfg, "members left the group", out);
            }
            ClassicState::PreparingRebalance => self.maybe_complete_join(now, out),
            ClassicState::Empty | ClassicState::Dead => {}
        }
    }
}

/// Validation and timers.
impl ClassicGroup {
    /// Kafka's `validateExistingMember`: a static member is checked by its
    /// instance id, so that a replaced member id is fenced.
    fn validate_member(&self, member_id: &str, group_instance_id: Option<&str>) -> Result<(), i16> {
        match group_instance_id {
            None if self.members.contains_key(member_id) => Ok(()),
            None => Err(code(ResponseError::UnknownMemberId)),
            Some(instance) => match self.static_members.get(instance) {
                None => Err(code(ResponseError::UnknownMemberId)),
                Some(current) if current != member_id => Err(code(ResponseError::FencedInstanceId)),
                Some(_) => Ok(()),
            },
        }
    }

    fn validate_sync(&self, req: &SyncRequest) -> Result<(), i16> {
        if self.state == ClassicState::Dead {
            return Err(code(ResponseError::CoordinatorNotAvailable));
        }
        self.validate_member(&req.member_id, req.group_instance_id.as_deref())?;
        if req.generation_id != self.generation {
            return Err(code(ResponseError::IllegalGeneration));
        }
        let inconsistent = |given: &Option<String>, ours: &Option<String>| matches!((given, ours), (Some(given), Some(ours)) if given != ours);
        if inconsistent(&req.protocol_type, &self.protocol_type)
            || inconsistent(&req.protocol_name, &self.protocol)
        {
            return Err(code(ResponseError::InconsistentGroupProtocol));
        }
        Ok(())
    }

    /// The earliest timer, ties broken by kind then member order.
    fn earliest_timer(&self) -> Option<(Millis, Due)> {
        if self.state == ClassicState::Dead {
            return None;
        }
        let mut best: Option<(Millis, Due)> = None;
        let mut consider = |deadline: Millis, due: &dyn Fn() -> Due| {
            if best
                .as_ref()
                .is_none_or(|(earliest, _)| deadline < *earliest)
            {
                best = Some((deadline, due()));
            }
        };
        for (member_id, expiry) in &self.pending_members {
            consider(*expiry, &|| Due::PendingMember(member_id.clone()));
        }
        if let Some(phase) = self.join_phase {
            consider(phase.deadline(), &|| Due::JoinPhase);
        }
        if let Some(deadline) = self.sync_deadline {
            consider(deadline, &|| Due::SyncPhase);
        }
        for member in self.members.values() {
            if member.session_can_expire() {
                consider(member.session_deadline, &|| {
                    Due::Session(member.member_id.clone())
                });
            }
        }
        best
    }

    fn fire(&mut self, now: Millis, cfg: &ClassicConfig, due: Due, out: &mut Vec<Output>) {
        match due {
            Due::PendingMember(member_id) => {
                tracing::info!(group = %self.group_id, member = %member_id, "pending member did not rejoin");
                self.pending_members.remove(&member_id);
                self.maybe_complete_join(now, out);
            }
            Due::JoinPhase => match self.join_phase {
                Some(JoinPhase::Initial {
                    deadline,
                    limit,
                    new_member_added: true,
                }) if deadline < limit => {
                    let delay_ms = Millis::from(cfg.initial_rebalance_delay_ms.max(0));
                    // From the deadline, not from `now`: a late tick must
                    // not change how long the group waits.
                    self.join_phase = Some(JoinPhase::Initial {
                        deadline: deadline.saturating_add(delay_ms).min(limit),
                        limit,
                        new_member_added: false,
                    });
                }
                Some(_) => self.complete_join(now, out),
                None => {}
            },
            Due::SyncPhase => {
                self.sync_deadline = None;
                let missing = std::mem::take(&mut self.pending_sync);
                if missing.is_empty() {
                    return;
                }
                for member_id in &missing {
                    tracing::info!(group = %self.group_id, member = %member_id, "member did not sync in time");
                    self.remove_member(member_id, out);
                }
                self.after_removal(now, cfg, out);
            }
            Due::Session(member_id) => {
                tracing::info!(group = %self.group_id, member = %member_id, "member session expired");
                if self.remove_member(&member_id, out) {
                    self.after_removal(now, cfg, out);
                }
            }
        }
    }

    /// States the invariants every public call must leave behind.
    fn check_invariants(&self) {
        if !cfg!(debug_assertions) {
            return;
        }
        let state = self.state;
        if state == ClassicState::Dead {
            debug_assert!(self.members.is_empty() && self.pending_members.is_empty());
            debug_assert!(self.join_phase.is_none() && self.sync_deadline.is_none());
            return;
        }
        debug_assert_eq!(self.members.is_empty(), state == ClassicState::Empty);
        debug_assert_eq!(
            self.join_phase.is_some(),
            state == ClassicState::PreparingRebalance
        );
        debug_assert_eq!(self.sync_deadline.is_some(), !self.pending_sync.is_empty());
        debug_assert!(
            self.pending_sync.is_empty()
                || matches!(
                    state,
                    ClassicState::CompletingRebalance | ClassicState::Stable
                )
        );
        debug_assert!(self
            .pending_sync
            .iter()
            .all(|id| self.members.contains_key(id)));
        match &self.leader {
            Some(leader) => debug_assert!(self.members.contains_key(leader)),
            None => debug_assert!(self.members.is_empty()),
        }
        for (id, member) in &self.members {
            debug_assert_eq!(id, &member.member_id);
            debug_assert!(!self.pending_members.contains_key(id));
            debug_assert!(member.held_join.is_none() || state == ClassicState::PreparingRebalance);
            debug_assert!(member.held_sync.is_none() || state == ClassicState::CompletingRebalance);
            debug_assert!(member.assignment.is_some() || state != ClassicState::Stable);
            if let Some(instance) = &member.group_instance_id {
                debug_assert_eq!(self.static_members.get(instance), Some(id));
            }
        }
        for (instance, id) in &self.static_members {
            let member = self.members.get(id);
            debug_assert_eq!(
                member.and_then(|m| m.group_instance_id.as_deref()),
                Some(instance.as_str())
            );
        }
    }
}

/// The topics of a "consumer" protocol member's metadata (Kafka's
/// ConsumerProtocolSubscription, any version: int16 version, then an array
/// of topic names; what follows is not needed). None if it does not decode.
fn consumer_subscription_topics(metadata: &[u8]) -> Option<Vec<String>> {
    let mut input = metadata;
    let mut take = |n: usize| -> Option<&[u8]> {
        let (head, rest) = input.split_at_checked(n)?;
        input = rest;
        Some(head)
    };
    let version = i16::from_be_bytes(take(2)?.try_into().ok()?);
    if version < 0 {
        return None;
    }
    // A null (-1) array is malformed: the field is not nullable.
    let count = i32::from_be_bytes(take(4)?.try_into().ok()?);
    let mut topics = Vec::new();
    for _ in 0..usize::try_from(count).ok()? {
        let len = i16::from_be_bytes(take(2)?.try_into().ok()?);
        let bytes = take(usize::try_from(len).ok()?)?;
        topics.push(String::from_utf8(bytes.to_vec()).ok()?);
    }
    Some(topics)
}
