//! The KIP-848 consumer group protocol (`group.protocol=consumer`), as Kafka's
//! own consumer speaks it: one ConsumerGroupHeartbeat call, every
//! `heartbeat_interval_ms` the coordinator asks for, carries the subscription and
//! the partitions the member owns; the coordinator runs the assignor and answers
//! with the member's target assignment.
//!
//! The member reconciles one step at a time: it revokes the partitions the target
//! no longer holds and waits until the consumer has stopped fetching them, then
//! acknowledges by heartbeating its owned partitions at once; partitions the
//! target adds are handed to the consumer as soon as nothing is left to revoke
//! (the coordinator only puts a partition in a member's assignment once its
//! previous owner has acknowledged giving it up).
//!
//! Heartbeats are full (every field) when joining and after an error; otherwise
//! they carry only what changed, as in Kafka's `HeartbeatState`. With v1 the
//! client picks its member id (a random UUID); with v0 the coordinator gives one
//! in the first answer. Members are driven through [`super::member::spawn`].

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::error::ResponseError as E;
use kafka_protocol::messages::{
    consumer_group_heartbeat_request::TopicPartitions, ConsumerGroupHeartbeatRequest,
    ConsumerGroupHeartbeatResponse, GroupId, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use tokio::sync::oneshot;
use tokio::time::Instant;
use uuid::Uuid;

use super::classic::millis;
use super::member::{recovery, Generation, LeaveSignal, Link, MemberConfig, Recovery, SubscribeTo};
use super::pattern::TopicPattern;
use crate::cluster::{Cluster, CoordinatorKind};
use crate::error::{Error, Result};
use crate::types::TopicPartition;

/// The epoch of a member leaving for good.
const LEAVE_EPOCH: i32 = -1;
/// The epoch of a static member leaving for now (its partitions wait for it).
const STATIC_LEAVE_EPOCH: i32 = -2;

/// Runs a KIP-848 member until it leaves or fails.
pub(crate) async fn run(
    cluster: Arc<Cluster>,
    config: MemberConfig,
    subscription: SubscribeTo,
    link: Link,
    mut leave: LeaveSignal,
) {
    // The coordinator matches a pattern; it is only checked here.
    let (topics, pattern) = match subscription {
        SubscribeTo::Topics(topics) => (topics, None),
        SubscribeTo::Pattern(source) => match TopicPattern::new(&source) {
            Ok(_) => (Vec::new(), Some(source)),
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
        epoch: 0,
        interval: None,
        owned: BTreeSet::new(),
        topic_ids: BTreeMap::new(),
        target: None,
        revoking: None,
        sent_owned: None,
        full: true,
        next_heartbeat: Instant::now(),
    };
    if let Err(error) = member.run(&mut leave).await {
        member.lose_partitions().await;
        member.link.fatal(error).await;
    }
    member.link.set_generation(None);
}

/// A revocation the consumer has not answered yet.
#[derive(Debug)]
struct Revoking {
    partitions: Vec<TopicPartition>,
    answered: oneshot::Receiver<()>,
    deadline: Instant,
}

#[derive(Debug)]
struct Member {
    cluster: Arc<Cluster>,
    config: MemberConfig,
    /// The subscribed topics; empty with a pattern (metadata is then
    /// fetched for every topic).
    topics: Vec<String>,
    /// A regex subscription, matched by the coordinator (v1 and later).
    pattern: Option<String>,
    link: Link,
    member_id: String,
    /// 0 while joining.
    epoch: i32,
    /// The coordinator's `heartbeat_interval_ms`, once it has said.
    interval: Option<Duration>,
    owned: BTreeSet<TopicPartition>,
    /// Topic ids learnt while resolving assignments, to report owned partitions.
    topic_ids: BTreeMap<String, Uuid>,
    /// The latest assignment the coordinator sent: topic id → partitions.
    target: Option<BTreeMap<Uuid, BTreeSet<i32>>>,
    revoking: Option<Revoking>,
    /// The owned partitions last reported, `None` if unknown to the coordinator.
    sent_owned: Option<BTreeSet<TopicPartition>>,
    /// Whether the next heartbeat must carry every field.
    full: bool,
    next_heartbeat: Instant,
}

impl Member {
    async fn run(&mut self, leave: &mut LeaveSignal) -> Result<()> {
        loop {
            let revoking = self.revoking.as_mut();
            tokio::select! {
                _ = leave.requested() => return self.leave().await,
                _ = answered(revoking) => {
                    self.finish_revocation();
                    self.reconcile().await?;
                }
                _ = tokio::time::sleep_until(self.next_heartbeat) => {
                    if self.link.poll_expired() {
                        self.leave_for_poll_timeout().await;
                        tokio::select! {
                            _ = self.link.poll_resumed() => {}
                            _ = leave.requested() => return self.leave().await,
                        }
                        self.next_heartbeat = Instant::now();
                        continue;
                    }
                    self.heartbeat().await?;
                    self.reconcile().await?;
                }
            }
        }
    }

    /// The application went `max.poll.interval.ms` without polling: the
    /// partitions are given up as lost (nothing committed) and the member
    /// leaves, to join again with epoch 0 at the next poll, as Kafka's
    /// consumer does.
    async fn leave_for_poll_timeout(&mut self) {
        self.link.warn_poll_expired(&self.config.group_id);
        self.lose_partitions().await;
        if self.epoch > 0 {
            let epoch = if self.config.group_instance_id.is_some() {
                STATIC_LEAVE_EPOCH
            } else {
                LEAVE_EPOCH
            };
            if let Err(error) = self.send(epoch).await {
                tracing::debug!(%error, "leave heartbeat failed");
            }
        }
        self.epoch = 0;
    }

    fn group_id(&self) -> GroupId {
        GroupId(StrBytes::from_string(self.config.group_id.clone()))
    }

    fn interval(&self) -> Duration {
        self.interval.unwrap_or(self.config.heartbeat_interval)
    }

    /// One heartbeat and what its answer implies; `Err` only for fatal errors.
    async fn heartbeat(&mut self) -> Result<()> {
        let backoff = self.cluster.config().retry_backoff;
        let response = match self.send(self.epoch).await {
            Ok(response) => response,
            Err(error) => {
                self.full = true;
                if recovery(&error) == Recovery::Fatal {
                    return Err(error);
                }
                if recovery(&error) == Recovery::FindCoordinator {
                    tracing::debug!(%error, "group coordinator lost; looking it up again");
                    self.forget_coordinator();
                }
                self.next_heartbeat = Instant::now() + backoff;
                return Ok(());
            }
        };
        let code = response.error_code;
        match E::try_from_code(code) {
            None => self.accept(response),
            Some(E::FencedMemberEpoch | E::UnknownMemberId) => {
                tracing::info!(code, member = %self.member_id, "fenced; rejoining with epoch 0");
                self.lose_partitions().await;
                self.epoch = 0;
                self.next_heartbeat = Instant::now();
            }
            Some(error) => {
                let error = Error::Broker {
                    error,
                    message: response.error_message.as_deref().map(str::to_owned),
                    context: format!("ConsumerGroupHeartbeat {}", self.config.group_id),
                };
                match recovery(&error) {
                    Recovery::Fatal => return Err(error),
                    Recovery::FindCoordinator => self.forget_coordinator(),
                    Recovery::Backoff => {}
                }
                self.full = true;
                self.next_heartbeat = Instant::now() + backoff;
            }
        }
        Ok(())
    }

    fn forget_coordinator(&self) {
        self.cluster
            .forget_coordinator(CoordinatorKind::Group, &self.config.group_id);
    }

    /// Sends a heartbeat at `epoch` (a leave epoch to leave).
    async fn send(&mut self, epoch: i32) -> Result<ConsumerGroupHeartbeatResponse> {
        let (_, connection) = self
            .cluster
            .coordinator(CoordinatorKind::Group, &self.config.group_id)
            .await?;
        let version = connection.version_for::<ConsumerGroupHeartbeatRequest>(None)?;
        if self.member_id.is_empty() && version >= 1 {
            self.member_id = Uuid::new_v4().simple().to_string();
        }
        let full = self.full || epoch == 0;
        let mut request = ConsumerGroupHeartbeatRequest::default()
            .with_group_id(self.group_id())
            .with_member_id(StrBytes::from_string(self.member_id.clone()))
            .with_member_epoch(epoch)
            .with_instance_id(
                self.config
                    .group_instance_id
                    .clone()
                    .map(StrBytes::from_string),
            );
        let owned_changed = self.sent_owned.as_ref() != Some(&self.owned);
        if full {
            request = request.with_rebalance_timeout_ms(millis(self.config.rebalance_timeout));
            request = match &self.pattern {
                Some(_) if version < 1 => {
                    return Err(Error::UnsupportedVersion {
                        api: "ConsumerGroupHeartbeat v1 (a pattern subscription)".into(),
                        broker: "v0".into(),
                    })
                }
                Some(pattern) => request
                    .with_subscribed_topic_regex(Some(StrBytes::from_string(pattern.clone()))),
                None => request.with_subscribed_topic_names(Some(
                    self.topics
                        .iter()
                        .map(|t| TopicName(StrBytes::from_string(t.clone())))
                        .collect(),
                )),
            };
            request = request.with_server_assignor(
                self.config
                    .remote_assignor
                    .clone()
                    .map(StrBytes::from_string),
            );
        }
        if (full || owned_changed) && epoch >= 0 {
            request = request.with_topic_partitions(Some(self.owned_by_topic_id()));
        }
        let result = connection.send_version(&request, version).await;
        if let Err(error) = &result {
            if recovery(error) == Recovery::FindCoordinator {
                self.forget_coordinator();
            }
        }
        let response = result?;
        if response.error_code == 0 {
            self.full = false;
            self.sent_owned = Some(self.owned.clone());
        } else {
            self.sent_owned = None;
        }
        Ok(response)
    }

    fn owned_by_topic_id(&self) -> Vec<TopicPartitions> {
        let mut by_id: BTreeMap<Uuid, Vec<i32>> = BTreeMap::new();
        for tp in &self.owned {
            if let Some(id) = self.topic_ids.get(&tp.topic) {
                by_id.entry(*id).or_default().push(tp.partition);
            }
        }
        by_id
            .into_iter()
            .map(|(topic_id, partitions)| {
                TopicPartitions::default()
                    .with_topic_id(topic_id)
                    .with_partitions(partitions)
            })
            .collect()
    }

    /// A successful answer: new id, epoch, interval and maybe a new target.
    fn accept(&mut self, response: ConsumerGroupHeartbeatResponse) {
        if let Some(id) = response.member_id.as_deref().filter(|id| !id.is_empty()) {
            self.member_id = id.to_owned();
        }
        if self.epoch != response.member_epoch {
            tracing::debug!(member = %self.member_id, epoch = response.member_epoch, "new member epoch");
        }
        self.epoch = response.member_epoch;
        if response.heartbeat_interval_ms > 0 {
            self.interval = Some(Duration::from_millis(response.heartbeat_interval_ms as u64));
        }
        if let Some(assignment) = response.assignment {
            let mut target: BTreeMap<Uuid, BTreeSet<i32>> = BTreeMap::new();
            for topic in assignment.topic_partitions {
                target
                    .entry(topic.topic_id)
                    .or_default()
                    .extend(topic.partitions);
            }
            self.target = Some(target);
        }
        self.next_heartbeat = Instant::now() + self.interval();
        if self.epoch > 0 {
            self.link.set_generation(Some(Generation {
                member_id: self.member_id.clone(),
                generation_id: self.epoch,
            }));
        }
    }

    /// Moves owned partitions one step towards the target: a revocation first,
    /// and only when none is needed, the additions.
    async fn reconcile(&mut self) -> Result<()> {
        if self.revoking.is_some() || self.epoch <= 0 {
            return Ok(());
        }
        let Some(target) = self.resolve_target().await? else {
            return Ok(());
        };
        let revoked: Vec<TopicPartition> = self.owned.difference(&target).cloned().collect();
        if !revoked.is_empty() {
            tracing::debug!(?revoked, "revoking");
            let answered = self.link.revoke_started(revoked.clone(), false).await;
            self.revoking = Some(Revoking {
                partitions: revoked,
                answered,
                deadline: Instant::now() + self.link.callback_timeout(),
            });
            return Ok(());
        }
        let added: Vec<TopicPartition> = target.difference(&self.owned).cloned().collect();
        if !added.is_empty() {
            tracing::debug!(?added, "assigned");
            self.owned.extend(added.iter().cloned());
            self.link.assign(added).await;
            // Acknowledge at once.
            self.next_heartbeat = Instant::now();
        }
        Ok(())
    }

    /// The consumer stopped fetching the revoked partitions: drop them and
    /// acknowledge with the next heartbeat, now.
    fn finish_revocation(&mut self) {
        if let Some(revoking) = self.revoking.take() {
            for tp in &revoking.partitions {
                self.owned.remove(tp);
            }
            self.next_heartbeat = Instant::now();
        }
    }

    /// The target by topic name; `None` while some topic id is unknown even after
    /// a metadata refresh (reconciliation waits for the metadata to catch up).
    async fn resolve_target(&mut self) -> Result<Option<BTreeSet<TopicPartition>>> {
        let Some(target) = self.target.clone() else {
            return Ok(None);
        };
        let names = |cluster: &Cluster| -> BTreeMap<Uuid, String> {
            cluster
                .metadata()
                .topics
                .values()
                .map(|t| (t.id, t.name.clone()))
                .collect()
        };
        let mut known = names(&self.cluster);
        if target.keys().any(|id| !known.contains_key(id)) {
            if let Err(error) = self.cluster.refresh_metadata(&self.topics).await {
                tracing::debug!(%error, "metadata refresh for the assignment failed");
                return Ok(None);
            }
            known = names(&self.cluster);
            if target.keys().any(|id| !known.contains_key(id)) {
                tracing::debug!("assigned topic ids not in the metadata yet");
                return Ok(None);
            }
        }
        let mut resolved = BTreeSet::new();
        for (id, partitions) in &target {
            let name = &known[id];
            self.topic_ids.insert(name.clone(), *id);
            resolved.extend(partitions.iter().map(|&p| TopicPartition::new(name, p)));
        }
        Ok(Some(resolved))
    }

    /// Fenced or failed: the partitions are someone else's already.
    async fn lose_partitions(&mut self) {
        if let Some(revoking) = self.revoking.take() {
            // The consumer is stopping these already; let it finish first.
            self.link.revoke_finished(revoking.answered).await;
            for tp in &revoking.partitions {
                self.owned.remove(tp);
            }
        }
        let lost = std::mem::take(&mut self.owned);
        self.link.revoke(lost.into_iter().collect(), true).await;
        self.link.set_generation(None);
        self.target = None;
        self.sent_owned = None;
        self.full = true;
    }

    /// Revokes everything, then the leave heartbeat (epoch -1, or -2 for a static
    /// member, whose partitions the coordinator keeps for it until its session
    /// times out).
    async fn leave(&mut self) -> Result<()> {
        if let Some(revoking) = self.revoking.take() {
            self.link.revoke_finished(revoking.answered).await;
            for tp in &revoking.partitions {
                self.owned.remove(tp);
            }
        }
        let owned = std::mem::take(&mut self.owned);
        self.link.revoke(owned.into_iter().collect(), false).await;
        self.link.set_generation(None);
        if self.member_id.is_empty() {
            return Ok(());
        }
        let epoch = if self.config.group_instance_id.is_some() {
            STATIC_LEAVE_EPOCH
        } else {
            LEAVE_EPOCH
        };
        match self.send(epoch).await {
            Ok(response) if response.error_code != 0 => {
                tracing::debug!(code = response.error_code, "leave heartbeat failed")
            }
            Ok(_) => tracing::debug!(member = %self.member_id, "left the group"),
            Err(error) => tracing::debug!(%error, "leave heartbeat failed"),
        }
        Ok(())
    }
}

/// Resolves when the pending revocation is answered or times out; never without one.
async fn answered(revoking: Option<&mut Revoking>) {
    match revoking {
        Some(r) => {
            let _ = tokio::time::timeout_at(r.deadline, &mut r.answered).await;
        }
        None => std::future::pending().await,
    }
}
