//! The active controller: the raft leader runs
//! [`runnel_metadata::Controller`] on its image, one request at a time, and
//! commits the records each produces before answering.
//!
//! On becoming leader it first waits until every entry committed before
//! its term is applied (raft's linearizable read), so its decisions start
//! from the whole log. Broker sessions are kept in memory; a new active
//! controller gives every broker a full session from the moment it takes
//! over, as Kafka's does.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use openraft::error::{ClientWriteError, RaftError};
use openraft::BasicNode;
use runnel_metadata::{
    list_partition_reassignments, Controller, ControllerConfig, ControllerError, MetadataRecord,
    Millis,
};
use tokio::sync::{mpsc, oneshot, watch};
use uuid::Uuid;

use crate::rpc::{ControllerFailure, ControllerReply, ControllerRequest, ControllerResponse};
use crate::state_machine::Published;
use crate::{MetadataBatch, NodeId, Raft};

/// How often expired broker sessions, leaderless partitions and (when it
/// is due) the leader imbalance are looked at.
const TICK: Duration = Duration::from_millis(200);

/// What a request writes: its records, or none when it only validates.
fn written(validate_only: bool, records: Vec<MetadataRecord>) -> Vec<MetadataRecord> {
    if validate_only {
        Vec::new()
    } else {
        records
    }
}

/// A request waiting for the controller, and where its answer goes.
pub(crate) type Job = (ControllerRequest, oneshot::Sender<ControllerReply>);

fn now_ms() -> Millis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn refused(error: ControllerError) -> ControllerFailure {
    match error {
        ControllerError::BrokerIdNotRegistered(id) => {
            ControllerFailure::BrokerIdNotRegistered(id.0)
        }
        e @ ControllerError::StaleBrokerEpoch { .. } => {
            ControllerFailure::StaleBrokerEpoch(e.to_string())
        }
        e @ ControllerError::DuplicateBrokerRegistration(_) => {
            ControllerFailure::DuplicateBrokerRegistration(e.to_string())
        }
        e @ ControllerError::Internal(_) => ControllerFailure::Unavailable(e.to_string()),
    }
}

pub(crate) struct ActiveController {
    pub me: NodeId,
    pub raft: Raft,
    pub images: watch::Receiver<Published>,
    pub config: ControllerConfig,
    /// `Some` while this node is the active controller.
    pub state: Option<Controller>,
    /// The raft term `state` was made in: a new term, even with this node
    /// leading again, starts a fresh controller (fresh broker sessions).
    pub term: u64,
}

impl std::fmt::Debug for ActiveController {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActiveController")
            .field("me", &self.me)
            .field("active", &self.state.is_some())
            .finish()
    }
}

impl ActiveController {
    /// Serves requests until `jobs` closes or raft stops.
    pub async fn run(mut self, mut jobs: mpsc::Receiver<Job>) {
        let mut metrics = self.raft.metrics();
        let mut ticker = tokio::time::interval(TICK);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                job = jobs.recv() => match job {
                    Some((request, reply)) => {
                        let answer = self.handle(request).await;
                        let _ = reply.send(answer);
                    }
                    None => break,
                },
                _ = ticker.tick() => self.tick().await,
                changed = metrics.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    let (leader, term) = {
                        let m = metrics.borrow();
                        (m.current_leader, m.current_term)
                    };
                    if (leader != Some(self.me) || term != self.term) && self.state.take().is_some() {
                        tracing::info!(node = self.me, ?leader, term, "no longer the active controller");
                    }
                }
            }
        }
    }

    fn leader(&self) -> Option<NodeId> {
        self.raft.metrics().borrow().current_leader
    }

    /// Makes sure this node is the active controller with the whole log
    /// applied.
    async fn activate(&mut self) -> Result<(), ControllerFailure> {
        let (leader, term) = {
            let metrics = self.raft.metrics();
            let m = metrics.borrow();
            (m.current_leader, m.current_term)
        };
        if leader != Some(self.me) {
            self.state = None;
            return Err(ControllerFailure::NotController { leader });
        }
        if term != self.term {
            self.state = None;
        }
        if self.state.is_none() {
            if let Err(e) = self.raft.ensure_linearizable().await {
                return Err(match e {
                    RaftError::APIError(_) => ControllerFailure::NotController {
                        leader: self.leader(),
                    },
                    RaftError::Fatal(f) => ControllerFailure::Unavailable(f.to_string()),
                });
            }
            tracing::info!(node = self.me, term, "now the active controller");
            self.state = Some(Controller::new(self.config.clone()));
            self.term = term;
        }
        Ok(())
    }

    async fn tick(&mut self) {
        if self.leader() != Some(self.me) {
            self.state = None;
            return;
        }
        if self.activate().await.is_err() {
            return;
        }
        let image = self.images.borrow().image.clone();
        let Some(controller) = self.state.as_mut() else {
            return;
        };
        match controller.tick(now_ms(), &image) {
            Ok(records) if records.is_empty() => {}
            Ok(records) => {
                tracing::info!(
                    records = records.len(),
                    "fencing expired brokers, electing leaders, rebalancing leadership"
                );
                if let Err(e) = self.write(records).await {
                    tracing::warn!(error = %e, "could not commit the controller's tick");
                }
            }
            Err(e) => tracing::error!(error = %e, "the controller's tick failed"),
        }
    }

    async fn handle(&mut self, request: ControllerRequest) -> ControllerReply {
        self.activate().await?;
        let image = self.images.borrow().image.clone();
        let now = now_ms();
        let Some(controller) = self.state.as_mut() else {
            return Err(ControllerFailure::NotController {
                leader: self.leader(),
            });
        };
        let mut learner = None;
        let (records, response) = match request {
            ControllerRequest::RegisterBroker {
                request,
                quorum_address,
            } => {
                let id = request.broker_id;
                let effects = controller
                    .register_broker(now, &image, request)
                    .map_err(refused)?;
                learner = u64::try_from(id.0).ok().map(|id| (id, quorum_address));
                (
                    effects.records,
                    ControllerResponse::RegisterBroker(effects.response),
                )
            }
            ControllerRequest::Heartbeat(request) => {
                let effects = controller
                    .heartbeat(now, &image, request)
                    .map_err(refused)?;
                (
                    effects.records,
                    ControllerResponse::Heartbeat(effects.response),
                )
            }
            ControllerRequest::CreateTopics {
                topics,
                validate_only,
            } => {
                let effects = controller
                    .create_topics(&image, &topics, &mut Uuid::new_v4)
                    .map_err(refused)?;
                (
                    written(validate_only, effects.records),
                    ControllerResponse::CreateTopics(effects.response),
                )
            }
            ControllerRequest::CreatePartitions {
                topics,
                validate_only,
            } => {
                let effects = controller
                    .create_partitions_with(&image, &topics)
                    .map_err(refused)?;
                (
                    written(validate_only, effects.records),
                    ControllerResponse::CreatePartitions(effects.response),
                )
            }
            ControllerRequest::DeleteTopics(names) => {
                let effects = controller.delete_topics(&image, &names).map_err(refused)?;
                (
                    effects.records,
                    ControllerResponse::DeleteTopics(effects.response),
                )
            }
            ControllerRequest::AlterTopicConfigs {
                topic,
                changes,
                validate_only,
            } => {
                let effects = controller
                    .alter_topic_configs(&image, &topic, &changes)
                    .map_err(refused)?;
                (
                    written(validate_only, effects.records),
                    ControllerResponse::AlterTopicConfigs(effects.response),
                )
            }
            ControllerRequest::AllocateProducerIds {
                broker_id,
                broker_epoch,
            } => {
                let effects = controller
                    .allocate_producer_ids(&image, broker_id, broker_epoch)
                    .map_err(refused)?;
                let (first, count) = effects.response;
                (
                    effects.records,
                    ControllerResponse::ProducerIds { first, count },
                )
            }
            ControllerRequest::AlterPartition(request) => {
                let effects = controller
                    .alter_partition(&image, request)
                    .map_err(refused)?;
                (
                    effects.records,
                    ControllerResponse::AlterPartition(effects.response),
                )
            }
            ControllerRequest::ElectLeaders {
                election_type,
                partitions,
            } => {
                let effects = controller
                    .elect_leaders(&image, election_type, partitions.as_deref())
                    .map_err(refused)?;
                (
                    effects.records,
                    ControllerResponse::ElectLeaders(effects.response),
                )
            }
            ControllerRequest::AlterPartitionReassignments { reassignments } => {
                let effects = controller
                    .alter_partition_reassignments(&image, &reassignments)
                    .map_err(refused)?;
                (
                    effects.records,
                    ControllerResponse::AlterPartitionReassignments(effects.response),
                )
            }
            ControllerRequest::ListPartitionReassignments { partitions } => (
                Vec::new(),
                ControllerResponse::ListPartitionReassignments(list_partition_reassignments(
                    &image,
                    partitions.as_deref(),
                )),
            ),
        };
        let index = self.write(records).await?;
        if let Some((id, address)) = learner {
            self.add_learner(id, address).await;
        }
        Ok((response, index))
    }

    /// Adds a registered broker that is not a voter as a learner, so it
    /// receives the metadata log.
    async fn add_learner(&self, id: NodeId, address: String) {
        let metrics = self.raft.metrics();
        let known = metrics
            .borrow()
            .membership_config
            .nodes()
            .any(|(node, n)| *node == id && n.addr == address);
        if known {
            return;
        }
        tracing::info!(node = id, %address, "adding a broker to the quorum as a learner");
        if let Err(e) = self
            .raft
            .add_learner(id, BasicNode { addr: address }, false)
            .await
        {
            tracing::warn!(node = id, error = %e, "could not add a learner");
        }
    }

    /// Commits `records` as one entry; the index at which they (or, if
    /// there are none, everything so far) are applied.
    async fn write(&mut self, records: Vec<MetadataRecord>) -> Result<u64, ControllerFailure> {
        if records.is_empty() {
            return Ok(self.images.borrow().applied);
        }
        match self.raft.client_write(MetadataBatch { records }).await {
            Ok(response) => Ok(response.log_id.index),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(forward))) => {
                self.state = None;
                Err(ControllerFailure::NotController {
                    leader: forward.leader_id,
                })
            }
            Err(e) => {
                self.state = None;
                Err(ControllerFailure::Unavailable(e.to_string()))
            }
        }
    }
}
