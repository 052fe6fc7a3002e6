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

use std::collections::BTreeSet;

use kafka_protocol::messages::consumer_group_describe_response::DescribedGroup;
use kafka_protocol::messages::{ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse};

use crate::Millis;

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

/// One consumer group.
#[derive(Debug)]
pub struct ConsumerGroup {
    group_id: String,
}

impl ConsumerGroup {
    pub fn new(group_id: String) -> ConsumerGroup {
        ConsumerGroup { group_id }
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
        let _ = (now, cfg, topics, version, request, fresh_member_id);
        todo!()
    }

    /// Removes members whose session ended and fences members that did
    /// not revoke in time (rebalance timeout).
    pub fn tick(&mut self, now: Millis, cfg: &ConsumerConfig, topics: &dyn TopicMetadata) {
        let _ = (now, cfg, topics);
        todo!()
    }

    /// The earliest time [`ConsumerGroup::tick`] has something to do.
    pub fn next_deadline(&self) -> Option<Millis> {
        todo!()
    }

    /// Whether an OffsetCommit (at `api_version`) may commit (Kafka's
    /// `ConsumerGroup.validateOffsetCommit`): epoch -1 with no member id
    /// only while the group is empty; otherwise UNKNOWN_MEMBER_ID,
    /// STALE_MEMBER_EPOCH or FENCED_MEMBER_EPOCH, and UNSUPPORTED_VERSION
    /// below v9 for a KIP-848 member.
    pub fn validate_offset_commit(
        &self,
        member_id: &str,
        member_epoch: i32,
        api_version: i16,
    ) -> Result<(), i16> {
        let _ = (member_id, member_epoch, api_version);
        todo!()
    }

    /// Whether an OffsetFetch v9+ naming a member may read.
    pub fn validate_offset_fetch(&self, member_id: &str, member_epoch: i32) -> Result<(), i16> {
        let _ = (member_id, member_epoch);
        todo!()
    }

    /// The group for ConsumerGroupDescribe.
    pub fn describe(&self, topics: &dyn TopicMetadata) -> DescribedGroup {
        let _ = topics;
        todo!()
    }

    /// "Empty", "Assigning", "Reconciling", "Stable" or "Dead".
    pub fn state_name(&self) -> &'static str {
        todo!()
    }

    pub fn is_empty(&self) -> bool {
        todo!()
    }

    pub fn group_epoch(&self) -> i32 {
        todo!()
    }

    /// Topics any member subscribes to (regexes resolved).
    pub fn subscribed_topics(&self) -> BTreeSet<String> {
        todo!()
    }

    /// Marks the group Dead.
    pub fn shut_down(&mut self) {
        todo!()
    }
}
