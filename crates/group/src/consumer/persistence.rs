//! A consumer group as `__consumer_offsets` records: the records its state
//! maps to, which of them the log still lacks, and rebuilding the group
//! from them at start. The formats are in [`crate::records`].
//!
//! The group remembers what the log holds (`written`): the runtime marks a
//! record written once its append succeeded ([`ConsumerGroup::mark_written`]),
//! and replay marks what it reads. After any operation the runtime asks for
//! [`ConsumerGroup::unwritten`] — the records whose value differs from the
//! log's, and tombstones for keys the state no longer has — so an operation
//! that changed nothing persistent writes nothing, and a failed append is
//! written again after the next operation on the group.
//!
//! Not persisted, as in Kafka: session and revocation deadlines (they
//! restart from the replay time), the assignment last sent to each member
//! (a restored member's next heartbeat carries its assignment), the
//! assignor that computed the target (taken again from the members' and
//! broker's choice at replay).

use std::collections::{BTreeMap, BTreeSet};

use crate::records::{
    ConsumerKey, ConsumerValue, CurrentAssignmentValue, MemberMetadataValue, MEMBER_STATE_STABLE,
    MEMBER_STATE_UNRELEASED_PARTITIONS, MEMBER_STATE_UNREVOKED_PARTITIONS,
};
use crate::Millis;

use super::{ConsumerConfig, ConsumerGroup, Member, MemberState, TopicRegex, LEAVE_STATIC_EPOCH};

impl Member {
    fn metadata_value(&self) -> MemberMetadataValue {
        MemberMetadataValue {
            instance_id: self.instance_id.clone(),
            rack_id: self.rack_id.clone(),
            client_id: self.client_id.clone(),
            client_host: self.client_host.clone(),
            subscribed_topic_names: self.topic_names.clone(),
            subscribed_topic_regex: self.topic_regex.as_ref().map(|r| r.source.clone()),
            rebalance_timeout_ms: self.rebalance_timeout_ms,
            server_assignor: self.server_assignor.clone(),
        }
    }

    /// A static member away (epoch -2) keeps its own epoch in the
    /// previous-epoch field: its next heartbeat must be a join, which
    /// takes that epoch back, so the epoch it tolerated before is moot.
    fn assignment_value(&self) -> CurrentAssignmentValue {
        let (member_epoch, previous_member_epoch) = if self.left_static {
            (LEAVE_STATIC_EPOCH, self.member_epoch)
        } else {
            (self.member_epoch, self.previous_member_epoch)
        };
        CurrentAssignmentValue {
            member_epoch,
            previous_member_epoch,
            state: match self.state {
                MemberState::Stable => MEMBER_STATE_STABLE,
                MemberState::UnrevokedPartitions => MEMBER_STATE_UNREVOKED_PARTITIONS,
                MemberState::UnreleasedPartitions => MEMBER_STATE_UNRELEASED_PARTITIONS,
            },
            assigned: self.assigned.clone(),
            pending_revocation: self.pending_revocation.clone(),
        }
    }

    /// Restarts the member's timers at `now` (replay time).
    fn restart_timers(&mut self, now: Millis, cfg: &ConsumerConfig) {
        self.session_deadline = now.saturating_add(i64::from(cfg.session_timeout_ms));
        self.revocation_deadline = (!self.pending_revocation.is_empty())
            .then(|| now.saturating_add(i64::from(self.rebalance_timeout_ms.max(0))));
    }
}

impl ConsumerGroup {
    /// The group's persistent state, one record per key: the group epoch,
    /// the subscribed topics (when any exists), each member's metadata,
    /// target and current assignment, and the assignment epoch.
    pub fn records(&self) -> BTreeMap<ConsumerKey, ConsumerValue> {
        let mut records = BTreeMap::new();
        records.insert(
            ConsumerKey::GroupMetadata,
            ConsumerValue::GroupMetadata {
                epoch: self.group_epoch,
            },
        );
        if !self.metadata.is_empty() {
            records.insert(
                ConsumerKey::PartitionMetadata,
                ConsumerValue::PartitionMetadata {
                    topics: self.metadata.clone(),
                },
            );
        }
        for (id, member) in &self.members {
            records.insert(
                ConsumerKey::MemberMetadata { member: id.clone() },
                ConsumerValue::MemberMetadata(member.metadata_value()),
            );
            records.insert(
                ConsumerKey::CurrentMemberAssignment { member: id.clone() },
                ConsumerValue::CurrentMemberAssignment(member.assignment_value()),
            );
        }
        records.insert(
            ConsumerKey::TargetAssignmentMetadata,
            ConsumerValue::TargetAssignmentMetadata {
                assignment_epoch: self.assignment_epoch,
            },
        );
        for (id, partitions) in &self.target {
            records.insert(
                ConsumerKey::TargetAssignmentMember { member: id.clone() },
                ConsumerValue::TargetAssignmentMember {
                    partitions: partitions.clone(),
                },
            );
        }
        records
    }

    /// What the log lacks: every record whose value differs from the one
    /// last written (in key order), then a tombstone for every written key
    /// the state no longer has (a removed member's records, topic metadata
    /// no longer subscribed). Empty when nothing persistent changed. Never
    /// tombstones the group itself: see [`ConsumerGroup::tombstones`].
    pub fn unwritten(&self) -> Vec<(ConsumerKey, Option<ConsumerValue>)> {
        let current = self.records();
        let gone: Vec<ConsumerKey> = self
            .written
            .keys()
            .filter(|key| !current.contains_key(*key))
            .cloned()
            .collect();
        let mut out: Vec<(ConsumerKey, Option<ConsumerValue>)> = current
            .into_iter()
            .filter(|(key, value)| self.written.get(key) != Some(value))
            .map(|(key, value)| (key, Some(value)))
            .collect();
        out.extend(gone.into_iter().map(|key| (key, None)));
        out
    }

    /// Notes that the log now holds `value` (or, for none, no record) under
    /// `key`; the runtime calls it once the append succeeded.
    pub fn mark_written(&mut self, key: &ConsumerKey, value: Option<&ConsumerValue>) {
        match value {
            Some(value) => {
                self.written.insert(key.clone(), value.clone());
            }
            None => {
                self.written.remove(key);
            }
        }
    }

    /// Tombstones for every record of the group, written or about to be,
    /// for deleting it: members' records first, the group metadata last,
    /// as Kafka orders them.
    pub fn tombstones(&self) -> Vec<ConsumerKey> {
        let mut keys: BTreeSet<ConsumerKey> = self.written.keys().cloned().collect();
        keys.extend(self.records().into_keys());
        keys.into_iter().rev().collect()
    }

    /// Rebuilds one piece of the group from a record of the log, oldest
    /// first; members' timers start at `now`. A tombstone for the group
    /// metadata (the group's deletion) is the caller's to handle: it
    /// removes the whole group.
    ///
    /// Records of one group may come in any order (compaction keeps only
    /// the newest of each key): a member appears with its first record and
    /// goes with its metadata tombstone.
    pub fn replay(
        &mut self,
        key: ConsumerKey,
        value: Option<ConsumerValue>,
        now: Millis,
        cfg: &ConsumerConfig,
    ) {
        match &value {
            Some(value) if !value.fits(&key) => {
                tracing::warn!(group = %self.group_id, ?key, "skipping a consumer group record with a value of another kind");
                return;
            }
            _ => {}
        }
        self.mark_written(&key, value.as_ref());
        self.subscribed_stale = true;
        match (key, value) {
            (ConsumerKey::GroupMetadata, Some(ConsumerValue::GroupMetadata { epoch })) => {
                self.group_epoch = epoch;
            }
            (ConsumerKey::GroupMetadata, _) => {}
            (ConsumerKey::PartitionMetadata, value) => {
                self.metadata = match value {
                    Some(ConsumerValue::PartitionMetadata { topics }) => topics,
                    _ => BTreeMap::new(),
                };
            }
            (
                ConsumerKey::MemberMetadata { member },
                Some(ConsumerValue::MemberMetadata(value)),
            ) => {
                self.replay_member_metadata(member, value, now, cfg);
            }
            (ConsumerKey::MemberMetadata { member }, _) => self.forget_member(&member),
            (ConsumerKey::TargetAssignmentMetadata, value) => {
                self.assignment_epoch = match value {
                    Some(ConsumerValue::TargetAssignmentMetadata { assignment_epoch }) => {
                        assignment_epoch
                    }
                    _ => 0,
                };
                // A live group names its assignor once a target is computed.
                self.assignor_name = (self.assignment_epoch > 0).then(|| self.choose_assignor(cfg));
            }
            (
                ConsumerKey::TargetAssignmentMember { member },
                Some(ConsumerValue::TargetAssignmentMember { partitions }),
            ) => {
                self.target.insert(member, partitions);
            }
            (ConsumerKey::TargetAssignmentMember { member }, _) => {
                self.target.remove(&member);
            }
            (
                ConsumerKey::CurrentMemberAssignment { member },
                Some(ConsumerValue::CurrentMemberAssignment(value)),
            ) => {
                self.replay_current_assignment(member, value, now, cfg);
            }
            (ConsumerKey::CurrentMemberAssignment { member }, _) => {
                if let Some(member) = self.members.get_mut(&member) {
                    member.apply_assignment_value(CurrentAssignmentValue {
                        previous_member_epoch: -1,
                        ..CurrentAssignmentValue::default()
                    });
                    member.restart_timers(now, cfg);
                }
            }
        }
    }

    fn replay_member_metadata(
        &mut self,
        member_id: String,
        value: MemberMetadataValue,
        now: Millis,
        cfg: &ConsumerConfig,
    ) {
        let member = self
            .members
            .entry(member_id.clone())
            .or_insert_with(|| Member::new(member_id.clone(), value.rebalance_timeout_ms));
        if let Some(old) = member.instance_id.take() {
            if self.instances.get(&old) == Some(&member_id) {
                self.instances.remove(&old);
            }
        }
        if let Some(instance) = &value.instance_id {
            self.instances.insert(instance.clone(), member_id.clone());
        }
        member.instance_id = value.instance_id;
        member.rack_id = value.rack_id;
        member.client_id = value.client_id;
        member.client_host = value.client_host;
        member.topic_names = value.subscribed_topic_names;
        member.topic_regex = value.subscribed_topic_regex.and_then(|source| {
            let compiled = TopicRegex::compile(&source);
            if compiled.is_none() {
                tracing::warn!(group = %self.group_id, member = %member_id, regex = %source, "dropping a topic regex this broker cannot compile");
            }
            compiled
        });
        member.rebalance_timeout_ms = value.rebalance_timeout_ms;
        member.server_assignor = value.server_assignor;
        member.restart_timers(now, cfg);
    }

    fn replay_current_assignment(
        &mut self,
        member_id: String,
        value: CurrentAssignmentValue,
        now: Millis,
        cfg: &ConsumerConfig,
    ) {
        let member = self
            .members
            .entry(member_id.clone())
            .or_insert_with(|| Member::new(member_id, -1));
        member.apply_assignment_value(value);
        member.restart_timers(now, cfg);
    }

    /// Removes a member at replay: unlike a live removal this bumps no
    /// epoch (the log has the epochs) and leaves its target to its own
    /// record.
    fn forget_member(&mut self, member_id: &str) {
        if let Some(member) = self.members.remove(member_id) {
            if let Some(instance) = &member.instance_id {
                if self.instances.get(instance).map(String::as_str) == Some(member_id) {
                    self.instances.remove(instance);
                }
            }
        }
    }

    /// The subscribed topic names as replayed records give them: the
    /// members' names and the topics the metadata holds (regexes resolved
    /// when it was written).
    pub(super) fn replayed_subscription(&self) -> BTreeSet<String> {
        self.members
            .values()
            .flat_map(|m| m.topic_names.iter().cloned())
            .chain(self.metadata.keys().cloned())
            .collect()
    }
}

impl Member {
    /// Takes the epochs and partitions of a current-assignment record. The
    /// state follows the partitions where the byte disagrees or is a newer
    /// broker's: revoking while partitions are pending, else
    /// "unreleased", which makes the next heartbeat work out the member's
    /// next step afresh.
    fn apply_assignment_value(&mut self, value: CurrentAssignmentValue) {
        if value.member_epoch == LEAVE_STATIC_EPOCH {
            self.left_static = true;
            self.member_epoch = value.previous_member_epoch;
        } else {
            self.left_static = false;
            self.member_epoch = value.member_epoch;
        }
        self.previous_member_epoch = value.previous_member_epoch;
        self.state = if !value.pending_revocation.is_empty() {
            MemberState::UnrevokedPartitions
        } else if value.state == MEMBER_STATE_STABLE {
            MemberState::Stable
        } else {
            MemberState::UnreleasedPartitions
        };
        self.assigned = value.assigned;
        self.pending_revocation = value.pending_revocation;
        self.last_sent = None;
    }
}
