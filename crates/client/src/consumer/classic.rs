//! The classic group protocol, as the Java consumer speaks it: FindCoordinator,
//! JoinGroup (protocol type `consumer`, one protocol named after the assignor),
//! SyncGroup (the leader runs the assignor), Heartbeat every
//! `heartbeat.interval.ms`, LeaveGroup on close.
//!
//! Eager assignors (range, roundrobin) revoke everything before rejoining.
//! `cooperative-sticky` (KIP-429) keeps its partitions through the rebalance,
//! revokes only those the new assignment takes away and then rejoins at once, so
//! the follow-up rebalance hands them to their new owners.
//!
//! Static members (KIP-345) send `group.instance.id` everywhere and do not send
//! LeaveGroup when they close: the coordinator keeps their partitions until
//! `session.timeout.ms` so a restart within it causes no rebalance (Java does
//! the same). Members are driven through [`super::member::spawn`].

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::error::ResponseError as E;
use kafka_protocol::messages::{
    join_group_request::JoinGroupRequestProtocol, leave_group_request::MemberIdentity,
    sync_group_request::SyncGroupRequestAssignment, GroupId, HeartbeatRequest, JoinGroupRequest,
    JoinGroupResponse, LeaveGroupRequest, SyncGroupRequest,
};
use kafka_protocol::protocol::{Request, StrBytes};

use super::assignor::{self, Subscription};
use super::member::{recovery, Generation, LeaveSignal, Link, MemberConfig, Recovery, SubscribeTo};
use super::pattern::TopicPattern;
use crate::cluster::{Cluster, CoordinatorKind};
use crate::error::{Error, Result};
use crate::types::TopicPartition;

const PROTOCOL_TYPE: &str = "consumer";

/// How much longer than the rebalance timeout a JoinGroup may take.
const JOIN_GROUP_GRACE: Duration = Duration::from_secs(5);

/// Runs a classic member until it leaves or fails.
pub(crate) async fn run(
    cluster: Arc<Cluster>,
    config: MemberConfig,
    subscription: SubscribeTo,
    link: Link,
    mut leave: LeaveSignal,
) {
    let (topics, pattern) = match subscription {
        SubscribeTo::Topics(topics) => (topics, None),
        SubscribeTo::Pattern(source) => match TopicPattern::new(&source) {
            Ok(pattern) => (Vec::new(), Some(pattern)),
            Err(error) => return link.fatal(error).await,
        },
    };
    let mut member = Member {
        cluster,
        config,
        topics,
        pattern,
        link,
        member_id: String::new(),
        generation_id: -1,
        owned: BTreeSet::new(),
        assigned_with: None,
    };
    let outcome = member.run(&mut leave).await;
    if let Err(error) = outcome {
        let lost = std::mem::take(&mut member.owned);
        member.link.revoke(lost.into_iter().collect(), true).await;
        member.link.set_generation(None);
        member.link.fatal(error).await;
    }
    member.link.set_generation(None);
}

/// What to do after a phase of the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    /// Join the group again.
    Rejoin,
    /// Leave the group and end.
    Leave,
    /// The application stopped polling (`max.poll.interval.ms`).
    PollExpired,
}

/// The group's topics and their partition counts (absent: no such topic).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Snapshot {
    topics: Vec<String>,
    counts: BTreeMap<String, usize>,
}

#[derive(Debug)]
struct Member {
    cluster: Arc<Cluster>,
    config: MemberConfig,
    /// The subscribed topics (with a pattern, those it matched last).
    topics: Vec<String>,
    pattern: Option<TopicPattern>,
    link: Link,
    /// Empty until the coordinator gives one.
    member_id: String,
    /// -1 outside a generation.
    generation_id: i32,
    owned: BTreeSet<TopicPartition>,
    /// The leader's view when it assigned; a change means a rebalance.
    assigned_with: Option<Snapshot>,
}

impl Member {
    async fn run(&mut self, leave: &mut LeaveSignal) -> Result<()> {
        loop {
            if leave.is_requested() {
                return self.leave().await;
            }
            // Eager assignors give everything up before rejoining, committing
            // with the generation that is ending: the coordinator accepts its
            // commits until the next generation starts (as Java's onJoinPrepare).
            if !self.config.strategy.is_cooperative() {
                let all = std::mem::take(&mut self.owned);
                self.link.revoke(all.into_iter().collect(), false).await;
            }
            self.link.set_generation(None);
            if self.pattern.is_some() {
                self.pattern_changed(true).await;
            }
            let assigned = tokio::select! {
                joined = self.join_and_sync() => joined?,
                _ = leave.requested() => return self.leave().await,
            };
            let Some(assigned) = assigned else {
                continue;
            };
            if self.apply(assigned).await {
                continue;
            }
            match self.heartbeat(leave).await? {
                Next::Rejoin => {}
                Next::Leave => return self.leave().await,
                Next::PollExpired => {
                    self.leave_for_poll_timeout().await;
                    tokio::select! {
                        _ = self.link.poll_resumed() => {}
                        _ = leave.requested() => return self.leave().await,
                    }
                }
            }
        }
    }

    fn group_id(&self) -> GroupId {
        GroupId(StrBytes::from_string(self.config.group_id.clone()))
    }

    fn instance_id(&self) -> Option<StrBytes> {
        self.config
            .group_instance_id
            .clone()
            .map(StrBytes::from_string)
    }

    /// Sends `request` to the coordinator at the best common version; forgets the
    /// coordinator when the call fails on the way.
    async fn call<R: Request>(&self, request: &R) -> Result<R::Response> {
        self.call_within(request, self.cluster.config().request_timeout)
            .await
    }

    /// [`Self::call`] waiting up to `timeout` for the answer.
    async fn call_within<R: Request>(&self, request: &R, timeout: Duration) -> Result<R::Response> {
        let (_, connection) = self
            .cluster
            .coordinator(CoordinatorKind::Group, &self.config.group_id)
            .await?;
        let result = connection.send_within(request, timeout).await;
        if let Err(e) = &result {
            if recovery(e) == Recovery::FindCoordinator {
                self.cluster
                    .forget_coordinator(CoordinatorKind::Group, &self.config.group_id);
            }
        }
        result
    }

    /// Waits `retry.backoff.ms`, after forgetting the coordinator if the error says
    /// it moved; a fatal error is returned.
    async fn recover(&self, error: Error) -> Result<()> {
        match recovery(&error) {
            Recovery::Fatal => Err(error),
            Recovery::FindCoordinator => {
                tracing::debug!(%error, "group coordinator lost; looking it up again");
                self.cluster
                    .forget_coordinator(CoordinatorKind::Group, &self.config.group_id);
                tokio::time::sleep(self.cluster.config().retry_backoff).await;
                Ok(())
            }
            Recovery::Backoff => {
                tracing::debug!(%error, "retrying a group call");
                tokio::time::sleep(self.cluster.config().retry_backoff).await;
                Ok(())
            }
        }
    }

    /// Partitions taken away without a revocation (session expired, fenced): the
    /// consumer must stop fetching them and not commit them.
    async fn lose_partitions(&mut self) {
        let lost = std::mem::take(&mut self.owned);
        self.link.revoke(lost.into_iter().collect(), true).await;
        self.generation_id = -1;
    }

    /// Joins and syncs once: `Some(assignment)` on success, `None` to try again.
    async fn join_and_sync(&mut self) -> Result<Option<Vec<TopicPartition>>> {
        self.assigned_with = None;
        let Some(joined) = self.join().await? else {
            return Ok(None);
        };
        let assignments = if joined.leader == joined.member_id && !joined.skip_assignment {
            let (assignments, snapshot) = self.lead(&joined).await?;
            self.assigned_with = Some(snapshot);
            assignments
        } else {
            Vec::new()
        };
        self.sync(assignments).await
    }

    /// JoinGroup until the coordinator answers with a generation.
    async fn join(&mut self) -> Result<Option<JoinGroupResponse>> {
        let owned: Vec<TopicPartition> = self.owned.iter().cloned().collect();
        // The generation only settles contested claims of owned partitions
        // (cooperative, KIP-792); eager members own nothing when they join and
        // send -1, so a restarted static member's metadata is unchanged and
        // brokers that compare it (Runnel) need not rebalance.
        let generation_id = if self.config.strategy.is_cooperative() {
            self.generation_id
        } else {
            -1
        };
        let metadata = assignor::encode_subscription(&assignor::subscription(
            &self.topics,
            &owned,
            generation_id,
        ))?;
        let strategy = self.config.strategy.protocol_name();
        loop {
            let request = JoinGroupRequest::default()
                .with_group_id(self.group_id())
                .with_session_timeout_ms(millis(self.config.session_timeout))
                .with_rebalance_timeout_ms(millis(self.config.rebalance_timeout))
                .with_member_id(StrBytes::from_string(self.member_id.clone()))
                .with_group_instance_id(self.instance_id())
                .with_protocol_type(StrBytes::from_static_str(PROTOCOL_TYPE))
                .with_protocols(vec![JoinGroupRequestProtocol::default()
                    .with_name(StrBytes::from_static_str(strategy))
                    .with_metadata(metadata.clone())]);
            // The coordinator holds a JoinGroup until every member has
            // rejoined, up to the rebalance timeout: wait that long and 5 s
            // more, as the Java client does.
            let timeout = self
                .cluster
                .config()
                .request_timeout
                .max(self.config.rebalance_timeout + JOIN_GROUP_GRACE);
            let response = match self.call_within(&request, timeout).await {
                Ok(response) => response,
                Err(e) => {
                    self.recover(e).await?;
                    continue;
                }
            };
            let context = || format!("JoinGroup {}", self.config.group_id);
            match E::try_from_code(response.error_code) {
                None => {}
                // KIP-394: the coordinator hands out the member id, then we join with it.
                Some(E::MemberIdRequired) => {
                    self.member_id = response.member_id.to_string();
                    continue;
                }
                Some(E::UnknownMemberId) => {
                    self.lose_partitions().await;
                    self.member_id.clear();
                    return Ok(None);
                }
                Some(E::IllegalGeneration) => {
                    self.lose_partitions().await;
                    return Ok(None);
                }
                Some(E::RebalanceInProgress) => return Ok(None),
                Some(_) => {
                    self.recover(Error::broker(response.error_code, None, context()))
                        .await?;
                    continue;
                }
            }
            if let Some(name) = response.protocol_name.as_deref() {
                if name != strategy {
                    return Err(Error::Protocol(format!(
                        "the coordinator chose protocol {name}; this member only speaks {strategy}"
                    )));
                }
            }
            self.member_id = response.member_id.to_string();
            self.generation_id = response.generation_id;
            tracing::debug!(
                group = %self.config.group_id,
                member = %self.member_id,
                generation = self.generation_id,
                leader = %response.leader,
                "joined"
            );
            return Ok(Some(response));
        }
    }

    /// The leader's part: runs the assignor over every member's subscription;
    /// returns the assignments and the partition counts they were made with.
    async fn lead(
        &self,
        joined: &JoinGroupResponse,
    ) -> Result<(Vec<SyncGroupRequestAssignment>, Snapshot)> {
        let members = joined
            .members
            .iter()
            .map(|m| {
                assignor::decode_subscription(
                    &m.member_id,
                    m.group_instance_id.as_deref(),
                    &m.metadata,
                )
            })
            .collect::<Result<Vec<Subscription>>>()?;
        let topics: Vec<String> = members
            .iter()
            .flat_map(|m| m.topics.iter().cloned())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        self.cluster.refresh_metadata(&topics).await?;
        let counts = self.partition_counts(&topics);
        let plan = assignor::assign(
            self.config.strategy,
            &members,
            &counts.iter().map(|(t, &n)| (t.clone(), n as i32)).collect(),
        );
        tracing::debug!(group = %self.config.group_id, ?plan, "assigned as leader");
        let assignments = plan
            .iter()
            .map(|(member, partitions)| {
                Ok(SyncGroupRequestAssignment::default()
                    .with_member_id(StrBytes::from_string(member.clone()))
                    .with_assignment(assignor::encode_assignment(partitions)?))
            })
            .collect::<Result<_>>()?;
        Ok((assignments, Snapshot { topics, counts }))
    }

    /// Partition counts of `topics` in the cached metadata (absent: no such topic).
    fn partition_counts(&self, topics: &[String]) -> BTreeMap<String, usize> {
        let metadata = self.cluster.metadata();
        topics
            .iter()
            .filter_map(|t| Some((t.clone(), metadata.topics.get(t)?.partitions.len())))
            .collect()
    }

    /// The leader's watch on the metadata (as Java's `assignmentSnapshot`): when a
    /// topic of the group appears or gains partitions, the group must rebalance.
    async fn metadata_changed(&self) -> bool {
        let Some(before) = &self.assigned_with else {
            return false;
        };
        if self.cluster.metadata_is_stale() {
            if let Err(error) = self.cluster.refresh_metadata(&before.topics).await {
                tracing::debug!(%error, "metadata refresh failed");
                return false;
            }
        }
        let now = self.partition_counts(&before.topics);
        if now != before.counts {
            tracing::info!(before = ?before.counts, ?now, "the group's topics changed; rebalancing");
            return true;
        }
        false
    }

    /// With a pattern subscription: matches it against the metadata (fetched
    /// for every topic when `now` or when stale) and takes the matching topics
    /// as the subscription; true when they changed. A failed refresh keeps
    /// the topics as they are.
    async fn pattern_changed(&mut self, now: bool) -> bool {
        let Some(pattern) = &self.pattern else {
            return false;
        };
        if now || self.cluster.metadata_is_stale() {
            if let Err(error) = self.cluster.refresh_metadata(&[]).await {
                tracing::debug!(%error, "metadata refresh for the topic pattern failed");
                return false;
            }
        }
        let matching = pattern.matching(&self.cluster.metadata());
        if matching == self.topics {
            return false;
        }
        tracing::info!(
            pattern = pattern.source(),
            before = ?self.topics,
            now = ?matching,
            "the topics matching the subscription changed"
        );
        self.topics = matching;
        true
    }

    /// SyncGroup: `Some(assignment)`, or `None` to rejoin.
    async fn sync(
        &mut self,
        assignments: Vec<SyncGroupRequestAssignment>,
    ) -> Result<Option<Vec<TopicPartition>>> {
        let request = SyncGroupRequest::default()
            .with_group_id(self.group_id())
            .with_generation_id(self.generation_id)
            .with_member_id(StrBytes::from_string(self.member_id.clone()))
            .with_group_instance_id(self.instance_id())
            .with_protocol_type(Some(StrBytes::from_static_str(PROTOCOL_TYPE)))
            .with_protocol_name(Some(StrBytes::from_static_str(
                self.config.strategy.protocol_name(),
            )))
            .with_assignments(assignments);
        let response = match self.call(&request).await {
            Ok(response) => response,
            Err(e) => {
                self.recover(e).await?;
                return Ok(None);
            }
        };
        match E::try_from_code(response.error_code) {
            None => assignor::decode_assignment(&response.assignment).map(Some),
            Some(E::RebalanceInProgress) => Ok(None),
            Some(E::UnknownMemberId) => {
                self.lose_partitions().await;
                self.member_id.clear();
                Ok(None)
            }
            Some(E::IllegalGeneration) => {
                self.lose_partitions().await;
                Ok(None)
            }
            Some(_) => {
                let context = format!("SyncGroup {}", self.config.group_id);
                self.recover(Error::broker(response.error_code, None, context))
                    .await?;
                Ok(None)
            }
        }
    }

    /// Applies a new assignment; true when a cooperative member gave partitions up
    /// and must rejoin at once (the follow-up rebalance of KIP-429).
    async fn apply(&mut self, assigned: Vec<TopicPartition>) -> bool {
        let assigned: BTreeSet<TopicPartition> = assigned.into_iter().collect();
        let revoked: Vec<TopicPartition> = self.owned.difference(&assigned).cloned().collect();
        let added: Vec<TopicPartition> = assigned.difference(&self.owned).cloned().collect();
        self.link.revoke(revoked.clone(), false).await;
        self.link.assign(added).await;
        self.owned = assigned;
        self.link.set_generation(Some(Generation {
            member_id: self.member_id.clone(),
            generation_id: self.generation_id,
        }));
        if !revoked.is_empty() {
            tracing::debug!(?revoked, "revoked for a cooperative rebalance; rejoining");
        }
        !revoked.is_empty()
    }

    /// Heartbeats until the group rebalances (`Rejoin`) or the consumer leaves.
    async fn heartbeat(&mut self, leave: &mut LeaveSignal) -> Result<Next> {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(self.config.heartbeat_interval) => {}
                _ = leave.requested() => return Ok(Next::Leave),
            }
            if self.link.poll_expired() {
                return Ok(Next::PollExpired);
            }
            if self.pattern_changed(false).await || self.metadata_changed().await {
                return Ok(Next::Rejoin);
            }
            let request = HeartbeatRequest::default()
                .with_group_id(self.group_id())
                .with_generation_id(self.generation_id)
                .with_member_id(StrBytes::from_string(self.member_id.clone()))
                .with_group_instance_id(self.instance_id());
            let code = match self.call(&request).await {
                Ok(response) => response.error_code,
                Err(e) => {
                    // Keep the partitions: the coordinator decides when they are lost.
                    self.recover(e).await?;
                    continue;
                }
            };
            match E::try_from_code(code) {
                None => {}
                Some(E::RebalanceInProgress) => return Ok(Next::Rejoin),
                Some(E::UnknownMemberId) => {
                    self.lose_partitions().await;
                    self.member_id.clear();
                    return Ok(Next::Rejoin);
                }
                // The member id is still known: keep it, or the next rebalance
                // would wait for it to rejoin until its session expires.
                Some(E::IllegalGeneration) => {
                    self.lose_partitions().await;
                    return Ok(Next::Rejoin);
                }
                Some(_) => {
                    let context = format!("Heartbeat {}", self.config.group_id);
                    self.recover(Error::broker(code, None, context)).await?;
                }
            }
        }
    }

    /// The application went `max.poll.interval.ms` without polling: as the
    /// Java consumer, give the partitions up as lost (nothing is committed:
    /// the records handed out may not be processed) and leave, so the group
    /// moves them to members that are alive. A static member sends no
    /// LeaveGroup (KIP-345); its session timeout decides.
    async fn leave_for_poll_timeout(&mut self) {
        self.link.warn_poll_expired(&self.config.group_id);
        self.lose_partitions().await;
        self.link.set_generation(None);
        if self.config.group_instance_id.is_some() || self.member_id.is_empty() {
            return;
        }
        match self.leave_group("consumer poll timeout has expired").await {
            Ok(response) if response.error_code != 0 => {
                tracing::debug!(code = response.error_code, "LeaveGroup failed")
            }
            Ok(_) => {}
            Err(error) => tracing::debug!(%error, "LeaveGroup failed"),
        }
        self.member_id.clear();
    }

    /// Revokes everything and leaves: LeaveGroup for a dynamic member, nothing
    /// for a static one (KIP-345).
    async fn leave(&mut self) -> Result<()> {
        let owned = std::mem::take(&mut self.owned);
        self.link.revoke(owned.into_iter().collect(), false).await;
        self.link.set_generation(None);
        if self.config.group_instance_id.is_some() || self.member_id.is_empty() {
            return Ok(());
        }
        let result = self.leave_group("the consumer is closing").await;
        match result {
            Ok(response) if response.error_code != 0 => {
                tracing::debug!(code = response.error_code, "LeaveGroup failed")
            }
            Ok(_) => tracing::debug!(member = %self.member_id, "left the group"),
            Err(error) => tracing::debug!(%error, "LeaveGroup failed"),
        }
        Ok(())
    }
}

impl Member {
    /// LeaveGroup: v0-2 name the member at the top level, v3+ in `members`
    /// (with a reason from v5).
    async fn leave_group(
        &self,
        reason: &'static str,
    ) -> Result<kafka_protocol::messages::LeaveGroupResponse> {
        let (_, connection) = self
            .cluster
            .coordinator(CoordinatorKind::Group, &self.config.group_id)
            .await?;
        let version = connection.version_for::<LeaveGroupRequest>(None)?;
        let member_id = StrBytes::from_string(self.member_id.clone());
        let mut request = LeaveGroupRequest::default().with_group_id(self.group_id());
        if version >= 3 {
            let mut identity = MemberIdentity::default().with_member_id(member_id);
            if version >= 5 {
                identity.reason = Some(StrBytes::from_static_str(reason));
            }
            request.members = vec![identity];
        } else {
            request.member_id = member_id;
        }
        connection.send_version(&request, version).await
    }
}

/// A duration as Kafka's `i32` milliseconds, saturating.
pub(crate) fn millis(duration: std::time::Duration) -> i32 {
    i32::try_from(duration.as_millis()).unwrap_or(i32::MAX)
}
