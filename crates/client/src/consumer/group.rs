//! The consumer's side of group membership: reacting to the member task's events
//! (start fetching assigned partitions, stop and commit revoked ones before the
//! member acknowledges), and committing positions every `auto.commit.interval.ms`.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::consumer::member::{self, MemberEvent, SubscribeTo};
use crate::consumer::offsets::{self, CommitIdentity, OffsetAndEpoch};
use crate::consumer::record::RebalanceListener;
use crate::consumer::state::{Inner, PartitionState, Phase};
use crate::error::{Error, Result};
use crate::types::TopicPartition;

/// A running subscription.
#[derive(Debug)]
pub(crate) struct Membership {
    leave: Option<oneshot::Sender<()>>,
    member: JoinHandle<()>,
    events: JoinHandle<()>,
}

impl Membership {
    /// Joins `group` subscribed to `topics`.
    pub fn start(
        inner: Arc<Inner>,
        group: String,
        subscription: SubscribeTo,
        listener: Arc<dyn RebalanceListener>,
    ) -> Membership {
        inner.polls.touch();
        let handle = member::spawn_polled(
            inner.cluster.clone(),
            inner.config.member_config(group),
            subscription,
            Some(inner.polls.clone()),
        );
        *inner.generation.lock() = Some(handle.generation.clone());
        let events = tokio::spawn(handle_events(inner, handle.events, listener));
        Membership {
            leave: Some(handle.leave),
            member: handle.task,
            events,
        }
    }

    /// Leaves the group: the member revokes everything (committed on the way out with
    /// auto-commit), says goodbye to the coordinator and ends.
    pub async fn leave(mut self, inner: &Inner) {
        if let Some(leave) = self.leave.take() {
            let _ = leave.send(());
        }
        let deadline = inner.config.client.request_timeout + inner.config.session_timeout;
        if tokio::time::timeout(deadline, &mut self.member)
            .await
            .is_err()
        {
            tracing::warn!("the group member did not leave in time");
            self.member.abort();
        }
        // The member's events end with it; let the last revocation finish.
        let _ = tokio::time::timeout(inner.config.client.request_timeout, &mut self.events).await;
        self.events.abort();
        *inner.generation.lock() = None;
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        self.events.abort();
    }
}

async fn handle_events(
    inner: Arc<Inner>,
    mut events: mpsc::Receiver<MemberEvent>,
    listener: Arc<dyn RebalanceListener>,
) {
    while let Some(event) = events.recv().await {
        match event {
            MemberEvent::Assign(partitions) => {
                {
                    let mut state = inner.state.lock();
                    for tp in &partitions {
                        state
                            .partitions
                            .entry(tp.clone())
                            .or_insert_with(|| PartitionState::new(Phase::AwaitCommitted));
                    }
                }
                listener.on_assigned(&partitions);
                inner.wake_fetcher.notify_one();
            }
            MemberEvent::Revoke {
                partitions,
                lost,
                done,
            } => {
                let positions: BTreeMap<TopicPartition, OffsetAndEpoch> = {
                    let mut state = inner.state.lock();
                    partitions
                        .iter()
                        .filter_map(|tp| {
                            let p = state.partitions.remove(tp)?;
                            p.known_position()
                                .map(|o| (tp.clone(), (o, p.position_epoch)))
                        })
                        .collect()
                };
                if !lost && inner.config.auto_commit() {
                    if let Err(e) = commit(&inner, &positions).await {
                        tracing::warn!(error = %e, "committing revoked partitions failed");
                    }
                }
                if lost {
                    listener.on_lost(&partitions);
                } else {
                    listener.on_revoked(&partitions);
                }
                let _ = done.send(());
                inner.notify_data();
            }
            MemberEvent::Fatal(error) => inner.push_error(error),
        }
    }
}

/// The identity commits carry: the member's generation when subscribed, none with a
/// manual assignment. Subscribed but between generations is REBALANCE_IN_PROGRESS.
pub(crate) fn identity(inner: &Inner) -> Result<CommitIdentity> {
    let generation = match &*inner.generation.lock() {
        Some(watch) => Some(watch.borrow().clone().ok_or_else(|| {
            Error::broker(
                27,
                None,
                "commit while the group is rebalancing (no generation yet)",
            )
        })?),
        None => None,
    };
    Ok(CommitIdentity {
        generation,
        group_instance_id: inner.config.group_instance_id.clone(),
    })
}

/// Commits `offsets` for the consumer's group.
pub(crate) async fn commit(
    inner: &Inner,
    offsets: &BTreeMap<TopicPartition, OffsetAndEpoch>,
) -> Result<()> {
    let group = inner
        .config
        .group_id
        .as_deref()
        .ok_or_else(|| Error::Config("committing offsets needs a group.id".into()))?;
    if offsets.is_empty() {
        return Ok(());
    }
    let identity = identity(inner)?;
    offsets::commit(&inner.cluster, group, &identity, offsets).await
}

/// Commits every position that moved since the last auto-commit, every
/// `auto.commit.interval.ms`.
pub(crate) fn spawn_auto_commit(inner: Arc<Inner>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut last: BTreeMap<TopicPartition, OffsetAndEpoch> = BTreeMap::new();
        let mut ticker = tokio::time::interval(inner.config.auto_commit_interval);
        ticker.tick().await;
        loop {
            ticker.tick().await;
            let positions = inner.state.lock().positions();
            let moved: BTreeMap<TopicPartition, OffsetAndEpoch> = positions
                .into_iter()
                .filter(|(tp, o)| last.get(tp) != Some(o))
                .collect();
            if moved.is_empty() {
                continue;
            }
            match commit(&inner, &moved).await {
                Ok(()) => last.extend(moved),
                Err(e) => tracing::debug!(error = %e, "auto-commit failed"),
            }
        }
    })
}
