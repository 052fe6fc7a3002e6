//! Classic groups: the JoinGroup / SyncGroup / Heartbeat / LeaveGroup
//! protocol, with static membership (KIP-345) and the rounds that
//! cooperative rebalancing (KIP-429) runs.
//!
//! States, as Kafka names them: Empty -> PreparingRebalance ->
//! CompletingRebalance -> Stable, and Dead once deleted.
//!
//! The group never answers a JoinGroup or SyncGroup by return value: it
//! pushes [`Output`]s, because a join waits for the rest of the group.

use std::collections::BTreeSet;

use bytes::Bytes;

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

/// One classic group.
#[derive(Debug)]
pub struct ClassicGroup {
    group_id: String,
}

impl ClassicGroup {
    /// A new, empty group.
    pub fn new(group_id: String, now: Millis) -> ClassicGroup {
        let _ = now;
        ClassicGroup { group_id }
    }

    /// A group rebuilt from its last snapshot: Stable with its members if it
    /// had any (each given a full session from `now`), Empty otherwise.
    pub fn restore(group_id: String, snapshot: GroupSnapshot, now: Millis) -> ClassicGroup {
        let _ = (snapshot, now);
        ClassicGroup { group_id }
    }

    /// The state to persist.
    pub fn snapshot(&self, now: Millis) -> GroupSnapshot {
        let _ = now;
        todo!()
    }

    pub fn group_id(&self) -> &str {
        &self.group_id
    }

    pub fn state(&self) -> ClassicState {
        todo!()
    }

    /// The protocol type members joined with ("consumer" for consumers).
    pub fn protocol_type(&self) -> Option<&str> {
        todo!()
    }

    /// The protocol chosen for the current generation.
    pub fn protocol_name(&self) -> Option<&str> {
        todo!()
    }

    pub fn generation(&self) -> i32 {
        todo!()
    }

    /// True when the group has no members.
    pub fn is_empty(&self) -> bool {
        todo!()
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
        let _ = (now, cfg, req, out);
        todo!()
    }

    /// Handles a SyncGroup; the answer arrives as [`Output::Sync`].
    pub fn sync(
        &mut self,
        now: Millis,
        cfg: &ClassicConfig,
        req: SyncRequest,
        out: &mut Vec<Output>,
    ) {
        let _ = (now, cfg, req, out);
        todo!()
    }

    /// Handles a Heartbeat; returns its error code.
    pub fn heartbeat(
        &mut self,
        now: Millis,
        member_id: &str,
        group_instance_id: Option<&str>,
        generation_id: i32,
    ) -> i16 {
        let _ = (now, member_id, group_instance_id, generation_id);
        todo!()
    }

    /// Handles a LeaveGroup; one error code per member, in order.
    pub fn leave(
        &mut self,
        now: Millis,
        cfg: &ClassicConfig,
        members: &[LeaveMember],
        out: &mut Vec<Output>,
    ) -> Vec<i16> {
        let _ = (now, cfg, members, out);
        todo!()
    }

    /// Whether an OffsetCommit from this member at this generation may
    /// commit (Kafka's `ClassicGroup.validateOffsetCommit`).
    pub fn validate_offset_commit(
        &self,
        member_id: &str,
        group_instance_id: Option<&str>,
        generation_id: i32,
    ) -> Result<(), i16> {
        let _ = (member_id, group_instance_id, generation_id);
        todo!()
    }

    /// Expires members whose session ended, completes join phases whose
    /// time is up, and removes members that never synced.
    pub fn tick(&mut self, now: Millis, cfg: &ClassicConfig, out: &mut Vec<Output>) {
        let _ = (now, cfg, out);
        todo!()
    }

    /// The earliest time [`ClassicGroup::tick`] has something to do.
    pub fn next_deadline(&self) -> Option<Millis> {
        todo!()
    }

    /// The members for DescribeGroups.
    pub fn members(&self) -> Vec<MemberDescription> {
        todo!()
    }

    /// Topics the members subscribe to, decoded from their "consumer"
    /// protocol metadata; none when the protocol type is not "consumer".
    pub fn subscribed_topics(&self) -> Option<BTreeSet<String>> {
        todo!()
    }

    /// Marks the group Dead (DeleteGroups on an empty group, or the shard
    /// unloading) and answers every pending request with `error`
    /// (NOT_COORDINATOR on unload).
    pub fn shut_down(&mut self, error: i16, out: &mut Vec<Output>) {
        let _ = (error, out);
        todo!()
    }
}
