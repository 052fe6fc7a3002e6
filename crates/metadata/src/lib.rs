//! The cluster's metadata (DESIGN §5), without I/O.
//!
//! - [`records`]: the typed records of the metadata log (`TopicRecord`,
//!   `PartitionRecord`, `RegisterBrokerRecord`, …), modelled on Kafka
//!   KRaft's, and their byte encoding.
//! - [`image`]: the immutable [`MetadataImage`] built by replaying records
//!   in log order; what brokers answer Metadata and DescribeCluster from.
//! - [`placement`]: where the replicas of new partitions go.
//! - [`controller`]: the active controller as a state machine: requests and
//!   the current time go in, records to append and responses come out.
//!   Broker membership lives there, topic operations in [`topic_control`],
//!   leader election and ISR changes in [`election`], the leaders' ISR
//!   requests in [`alter_partition`], administrators' elections in
//!   [`elect_leaders`], moving replicas in [`reassignment`].
//!
//! This crate owns the meaning of the metadata log. It must not know about
//! sockets, files, clocks or the consensus that replicates the log: the
//! runtime appends the records the controller returns, and only once they
//! are committed replays them into the image the next call sees.
#![deny(clippy::unwrap_used)]

pub mod alter_partition;
pub mod controller;
pub mod elect_leaders;
pub mod election;
pub mod image;
pub mod placement;
pub mod reassignment;
pub mod records;
pub mod topic_control;

pub use alter_partition::{AlterPartitionError, AlterPartitionRequest};
pub use controller::{
    BrokerRegistrationRequest, Controller, ControllerConfig, ControllerError, Effects,
    HeartbeatRequest, HeartbeatResponse, UNCLEAN_LEADER_ELECTION_ENABLE,
};
pub use elect_leaders::{ElectLeadersError, ElectionType, PartitionResults};
pub use election::elect_preferred_leaders;
pub use image::{BrokerRegistration, ImageError, MetadataImage, PartitionState, TopicImage};
pub use reassignment::{
    list_partition_reassignments, OngoingReassignment, Reassignment, ReassignmentError,
};
pub use records::{MetadataRecord, RecordDecodeError};
pub use topic_control::{
    CreateTopicRequest, CreatedTopic, NewPartitions, TopicError, TopicResults,
};

use std::fmt;

/// Milliseconds since the Unix epoch, as the runtime's clock reads them.
pub type Millis = i64;

macro_rules! epoch {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(
            Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default,
            serde::Serialize, serde::Deserialize,
        )]
        #[serde(transparent)]
        pub struct $name(pub i64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

epoch!(
    /// The epoch of one registration of a broker: a new incarnation (a
    /// restarted process) gets a larger one, so requests of the old process
    /// are told apart (`STALE_BROKER_EPOCH`).
    BrokerEpoch
);

/// Bumped on every change of a partition's state (leader, ISR, replicas),
/// so an AlterPartition computed from an older state is refused.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(transparent)]
pub struct PartitionEpoch(pub i32);

impl fmt::Display for PartitionEpoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}
