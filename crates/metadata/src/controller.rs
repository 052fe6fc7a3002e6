//! The active controller as a state machine: broker membership (register,
//! heartbeat, fencing, controlled shutdown) here, topics in
//! [`crate::topic_control`].
//!
//! Every call takes the current time and the latest committed image and
//! returns [`Effects`]: the records to append, in order, and the response.
//! The caller appends the records through the quorum and, once they are
//! committed, replays them into the image it passes next; a response is
//! sent only then. The controller's own state is soft: heartbeat deadlines,
//! which a newly active controller rebuilds by giving every unfenced broker
//! a full session from its first [`Controller::tick`].

use std::collections::BTreeMap;

use runnel_model::BrokerId;
use uuid::Uuid;

use crate::election;
use crate::image::{ImageError, MetadataImage};
use crate::records::{
    ConfigResourceType, Endpoint, FenceBrokerRecord, MetadataRecord, PartitionChangeRecord,
    ProducerIdsRecord, RegisterBrokerRecord, UnfenceBrokerRecord,
};
use crate::{BrokerEpoch, Millis};

/// The config of unclean leader election, for topics and the cluster.
pub const UNCLEAN_LEADER_ELECTION_ENABLE: &str = "unclean.leader.election.enable";

/// How many producer ids a broker gets at a time (Kafka's block size).
pub const PRODUCER_ID_BLOCK: i64 = 1000;

/// The controller's settings, named after Kafka's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ControllerConfig {
    /// `broker.session.timeout.ms`: a broker without a heartbeat for this
    /// long is fenced.
    pub broker_session_timeout_ms: Millis,
    /// `num.partitions`: used when CreateTopics asks for -1.
    pub num_partitions: i32,
    /// `default.replication.factor`: used when CreateTopics asks for -1.
    pub default_replication_factor: i16,
    /// `unclean.leader.election.enable`: the default for topics that do
    /// not set it (nor the cluster-wide dynamic default).
    pub unclean_leader_election_enable: bool,
    /// `auto.leader.rebalance.enable`: leadership moves back to preferred
    /// replicas where a broker's imbalance is too large.
    pub auto_leader_rebalance_enable: bool,
    /// `leader.imbalance.check.interval.seconds`: how often the imbalance
    /// is checked.
    pub leader_imbalance_check_interval_seconds: i64,
    /// `leader.imbalance.per.broker.percentage`: the share of a broker's
    /// preferred partitions led elsewhere above which they move back.
    pub leader_imbalance_per_broker_percentage: i32,
}

impl Default for ControllerConfig {
    fn default() -> ControllerConfig {
        ControllerConfig {
            broker_session_timeout_ms: 9000,
            num_partitions: 1,
            default_replication_factor: 1,
            unclean_leader_election_enable: false,
            auto_leader_rebalance_enable: true,
            leader_imbalance_check_interval_seconds: 300,
            leader_imbalance_per_broker_percentage: 10,
        }
    }
}

/// What a call produces: records to append (in this order) and the answer
/// to give once they are committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Effects<T> {
    pub records: Vec<MetadataRecord>,
    pub response: T,
}

/// Why a broker's request was refused; the names are Kafka's error codes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControllerError {
    #[error("broker {0} is not registered")]
    BrokerIdNotRegistered(BrokerId),
    #[error("broker {broker_id} has epoch {current}, the request has {requested}")]
    StaleBrokerEpoch {
        broker_id: BrokerId,
        current: BrokerEpoch,
        requested: BrokerEpoch,
    },
    #[error("broker {0} is registered by another incarnation whose session is still alive")]
    DuplicateBrokerRegistration(BrokerId),
    /// The controller computed a record its image refuses: a bug, reported
    /// rather than appended.
    #[error("the controller produced an invalid record: {0}")]
    Internal(#[from] ImageError),
}

/// A BrokerRegistration request.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BrokerRegistrationRequest {
    pub broker_id: BrokerId,
    /// New at every start of the broker process.
    pub incarnation_id: Uuid,
    pub endpoints: Vec<Endpoint>,
    /// `broker.rack`.
    pub rack: Option<String>,
}

/// A BrokerHeartbeat request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HeartbeatRequest {
    pub broker_id: BrokerId,
    pub broker_epoch: BrokerEpoch,
    /// The broker is not ready to lead (it has not caught up yet).
    pub want_fence: bool,
    /// The broker is shutting down and asks for a controlled shutdown.
    pub want_shut_down: bool,
}

/// The answer to a heartbeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HeartbeatResponse {
    pub is_fenced: bool,
    /// The controlled shutdown is done: the broker leads nothing and may
    /// stop.
    pub should_shut_down: bool,
}

#[derive(Debug, Clone, Copy)]
struct Session {
    /// The broker is fenced at this time unless it heartbeats before.
    deadline: Millis,
    /// It finished a controlled shutdown; it stays fenced.
    shut_down: bool,
}

/// Records accumulated for one call, each checked by applying it to a
/// working image, so later records of the call see earlier ones.
#[derive(Debug)]
pub(crate) struct Batch {
    pub(crate) image: MetadataImage,
    pub(crate) records: Vec<MetadataRecord>,
}

impl Batch {
    pub(crate) fn new(image: &MetadataImage) -> Batch {
        Batch {
            image: image.clone(),
            records: Vec::new(),
        }
    }

    pub(crate) fn push(&mut self, record: MetadataRecord) -> Result<(), ImageError> {
        self.image.apply_in_place(&record)?;
        self.records.push(record);
        Ok(())
    }

    pub(crate) fn push_all(
        &mut self,
        records: impl IntoIterator<Item = impl Into<MetadataRecord>>,
    ) -> Result<(), ImageError> {
        records.into_iter().try_for_each(|r| self.push(r.into()))
    }

    pub(crate) fn finish<T>(self, response: T) -> Effects<T> {
        Effects {
            records: self.records,
            response,
        }
    }
}

impl From<crate::records::PartitionChangeRecord> for MetadataRecord {
    fn from(record: crate::records::PartitionChangeRecord) -> MetadataRecord {
        MetadataRecord::PartitionChange(record)
    }
}

/// The active controller.
#[derive(Debug, Clone)]
pub struct Controller {
    pub(crate) config: ControllerConfig,
    sessions: BTreeMap<BrokerId, Session>,
    /// When the next leader-imbalance check is due; set by the first tick.
    next_rebalance: Option<Millis>,
}

impl Controller {
    /// A controller that has just become active.
    pub fn new(config: ControllerConfig) -> Controller {
        Controller {
            config,
            sessions: BTreeMap::new(),
            next_rebalance: None,
        }
    }

    /// The settings.
    pub fn config(&self) -> &ControllerConfig {
        &self.config
    }

    /// Whether `unclean.leader.election.enable` holds for a topic: its
    /// own config, else the cluster-wide dynamic default, else
    /// [`ControllerConfig::unclean_leader_election_enable`].
    pub fn unclean_leader_election_enabled(&self, image: &MetadataImage, topic_id: Uuid) -> bool {
        let topic_config = image
            .topic_by_id(topic_id)
            .and_then(|t| image.configs(ConfigResourceType::Topic, &t.name.to_string()))
            .and_then(|c| c.get(UNCLEAN_LEADER_ELECTION_ENABLE));
        let cluster_default = image
            .configs(ConfigResourceType::Broker, "")
            .and_then(|c| c.get(UNCLEAN_LEADER_ELECTION_ENABLE));
        match topic_config.or(cluster_default) {
            Some(value) => value.trim().eq_ignore_ascii_case("true"),
            None => self.config.unclean_leader_election_enable,
        }
    }

    /// Elections for the partitions without a leader: from the ISR, or,
    /// where the topic allows it, from any live replica.
    pub(crate) fn elect_leaderless(&self, image: &MetadataImage) -> Vec<PartitionChangeRecord> {
        election::elect_leaderless(image, &|topic| {
            self.unclean_leader_election_enabled(image, topic)
        })
    }

    /// Takes `broker` out of ISRs and leaderships ([`election::move_away`]).
    pub(crate) fn move_away(
        &self,
        image: &MetadataImage,
        broker: BrokerId,
    ) -> Vec<PartitionChangeRecord> {
        election::move_away(image, broker, &|topic| {
            self.unclean_leader_election_enabled(image, topic)
        })
    }

    fn refresh(&mut self, broker_id: BrokerId, now: Millis) {
        let deadline = now.saturating_add(self.config.broker_session_timeout_ms.max(0));
        let session = self.sessions.entry(broker_id).or_insert(Session {
            deadline,
            shut_down: false,
        });
        session.deadline = deadline;
    }

    fn session_alive(&self, broker_id: BrokerId, now: Millis) -> bool {
        self.sessions
            .get(&broker_id)
            .is_some_and(|s| now < s.deadline)
    }

    /// Registers a broker. The same incarnation registering again (a retry)
    /// gets its current epoch and no record; a new incarnation gets a new,
    /// larger epoch and starts fenced — it is unfenced by its heartbeats.
    /// A new incarnation is refused while the old one's session is alive
    /// (two processes claiming one id); once it has expired the old one is
    /// fenced first, so the new one leads nothing it has not been elected to.
    pub fn register_broker(
        &mut self,
        now: Millis,
        image: &MetadataImage,
        request: BrokerRegistrationRequest,
    ) -> Result<Effects<BrokerEpoch>, ControllerError> {
        let id = request.broker_id;
        let mut batch = Batch::new(image);
        if let Some(existing) = image.broker(id) {
            if existing.incarnation_id == request.incarnation_id {
                self.refresh(id, now);
                return Ok(batch.finish(existing.broker_epoch));
            }
            if !existing.fenced {
                if self.session_alive(id, now) {
                    return Err(ControllerError::DuplicateBrokerRegistration(id));
                }
                self.fence(&mut batch, id, existing.broker_epoch)?;
            }
        }
        let broker_epoch = BrokerEpoch(batch.image.last_broker_epoch().0.saturating_add(1));
        batch.push(MetadataRecord::RegisterBroker(RegisterBrokerRecord {
            broker_id: id,
            incarnation_id: request.incarnation_id,
            broker_epoch,
            endpoints: request.endpoints,
            rack: request.rack,
            fenced: true,
        }))?;
        self.sessions.insert(
            id,
            Session {
                deadline: now.saturating_add(self.config.broker_session_timeout_ms.max(0)),
                shut_down: false,
            },
        );
        Ok(batch.finish(broker_epoch))
    }

    /// Handles a heartbeat: keeps the session alive, unfences a fenced
    /// broker that is ready (electing it where a partition waits for it),
    /// fences one that asks to be, and runs a controlled shutdown when asked.
    pub fn heartbeat(
        &mut self,
        now: Millis,
        image: &MetadataImage,
        request: HeartbeatRequest,
    ) -> Result<Effects<HeartbeatResponse>, ControllerError> {
        let id = request.broker_id;
        let broker = image
            .broker(id)
            .ok_or(ControllerError::BrokerIdNotRegistered(id))?;
        if broker.broker_epoch != request.broker_epoch {
            return Err(ControllerError::StaleBrokerEpoch {
                broker_id: id,
                current: broker.broker_epoch,
                requested: request.broker_epoch,
            });
        }
        self.refresh(id, now);
        if request.want_shut_down {
            return self.controlled_shutdown(image, id);
        }
        let shut_down = self.sessions.get(&id).is_some_and(|s| s.shut_down);
        let mut batch = Batch::new(image);
        let fenced = if broker.fenced && !request.want_fence && !shut_down {
            batch.push(MetadataRecord::UnfenceBroker(UnfenceBrokerRecord {
                broker_id: id,
                broker_epoch: broker.broker_epoch,
            }))?;
            let elections = self.elect_leaderless(&batch.image);
            batch.push_all(elections)?;
            false
        } else if !broker.fenced && request.want_fence {
            self.fence(&mut batch, id, broker.broker_epoch)?;
            true
        } else {
            broker.fenced
        };
        Ok(batch.finish(HeartbeatResponse {
            is_fenced: fenced,
            should_shut_down: false,
        }))
    }

    /// A controlled shutdown: every leadership of `broker_id` moves to
    /// another unfenced ISR member and it leaves the ISRs it is not the last
    /// member of — those records come first — then it is fenced. It stays
    /// fenced until a new incarnation registers.
    pub fn controlled_shutdown(
        &mut self,
        image: &MetadataImage,
        broker_id: BrokerId,
    ) -> Result<Effects<HeartbeatResponse>, ControllerError> {
        let broker = image
            .broker(broker_id)
            .ok_or(ControllerError::BrokerIdNotRegistered(broker_id))?;
        let mut batch = Batch::new(image);
        if !broker.fenced {
            let moves = self.move_away(&batch.image, broker_id);
            batch.push_all(moves)?;
            self.fence(&mut batch, broker_id, broker.broker_epoch)?;
        }
        if let Some(session) = self.sessions.get_mut(&broker_id) {
            session.shut_down = true;
        }
        Ok(batch.finish(HeartbeatResponse {
            is_fenced: true,
            should_shut_down: true,
        }))
    }

    /// Gives a registered broker the next block of `PRODUCER_ID_BLOCK`
    /// producer ids (Kafka's AllocateProducerIds): the first id and the
    /// count. Ids are never handed out twice in the cluster's life.
    pub fn allocate_producer_ids(
        &self,
        image: &MetadataImage,
        broker_id: BrokerId,
        broker_epoch: BrokerEpoch,
    ) -> Result<Effects<(i64, i64)>, ControllerError> {
        let broker = image
            .broker(broker_id)
            .ok_or(ControllerError::BrokerIdNotRegistered(broker_id))?;
        if broker.broker_epoch != broker_epoch {
            return Err(ControllerError::StaleBrokerEpoch {
                broker_id,
                current: broker.broker_epoch,
                requested: broker_epoch,
            });
        }
        let first = image.next_producer_id();
        let mut batch = Batch::new(image);
        batch.push(MetadataRecord::ProducerIds(ProducerIdsRecord {
            broker_id,
            next_producer_id: first.saturating_add(PRODUCER_ID_BLOCK),
        }))?;
        Ok(batch.finish((first, PRODUCER_ID_BLOCK)))
    }

    /// Fences every unfenced broker whose session expired by `now` and
    /// moves its leaderships away. A broker the controller has not heard
    /// from since it became active gets a full session from `now`. Then
    /// elects leaders where a partition has none and may get one — after
    /// `unclean.leader.election.enable` was switched on, say — and, once
    /// per `leader.imbalance.check.interval.seconds` (the first time one
    /// interval after the first tick), moves leaderships back to their
    /// preferred replicas where a broker's imbalance exceeds
    /// `leader.imbalance.per.broker.percentage`.
    pub fn tick(
        &mut self,
        now: Millis,
        image: &MetadataImage,
    ) -> Result<Vec<MetadataRecord>, ControllerError> {
        let mut batch = Batch::new(image);
        let unfenced: Vec<(BrokerId, BrokerEpoch)> = image
            .unfenced_brokers()
            .map(|b| (b.broker_id, b.broker_epoch))
            .collect();
        for (id, epoch) in unfenced {
            if !self.sessions.contains_key(&id) {
                self.refresh(id, now);
            }
            if !self.session_alive(id, now) {
                self.fence(&mut batch, id, epoch)?;
            }
        }
        let elections = self.elect_leaderless(&batch.image);
        batch.push_all(elections)?;
        if self.rebalance_due(now) {
            let percentage = self.config.leader_imbalance_per_broker_percentage;
            let moves = election::rebalance_leaders(&batch.image, percentage);
            batch.push_all(moves)?;
        }
        Ok(batch.records)
    }

    /// Whether the leader-imbalance check runs at `now`; schedules the
    /// next one if so.
    fn rebalance_due(&mut self, now: Millis) -> bool {
        if !self.config.auto_leader_rebalance_enable {
            return false;
        }
        let interval = self
            .config
            .leader_imbalance_check_interval_seconds
            .max(1)
            .saturating_mul(1000);
        let due = *self
            .next_rebalance
            .get_or_insert(now.saturating_add(interval));
        if now < due {
            return false;
        }
        self.next_rebalance = Some(now.saturating_add(interval));
        true
    }

    /// The earliest time at which [`Controller::tick`] may fence someone
    /// or check the leader imbalance, for the runtime's timer.
    pub fn next_deadline(&self, image: &MetadataImage) -> Option<Millis> {
        let rebalance = self
            .next_rebalance
            .filter(|_| self.config.auto_leader_rebalance_enable);
        image
            .unfenced_brokers()
            .filter_map(|b| self.sessions.get(&b.broker_id))
            .map(|s| s.deadline)
            .chain(rebalance)
            .min()
    }

    /// Fences `broker_id`, then moves its leaderships away and takes it out
    /// of the ISRs it is not the last member of.
    fn fence(
        &self,
        batch: &mut Batch,
        broker_id: BrokerId,
        epoch: BrokerEpoch,
    ) -> Result<(), ImageError> {
        batch.push(MetadataRecord::FenceBroker(FenceBrokerRecord {
            broker_id,
            broker_epoch: epoch,
        }))?;
        let moves = self.move_away(&batch.image, broker_id);
        batch.push_all(moves)
    }
}
