//! The metadata quorum (DESIGN §5): the metadata log replicated by raft
//! (`openraft`) among the controllers, durable on each node, bounded by
//! snapshots, and replayed into the [`MetadataImage`] every node serves.
//!
//! - [`log_store`] and [`state_machine`]: raft's storage on one node.
//! - [`rpc`] and [`network`]: what nodes say to each other on their quorum
//!   listener, and the clients that say it.
//! - [`controller`]: the active controller — the raft leader — running
//!   [`runnel_metadata::Controller`]: requests in, records committed
//!   through raft, answers out.
//! - [`node`]: one node's part in all of it ([`Quorum`]).
//!
//! Every node runs a raft member: the configured voters
//! (`controller.quorum.voters`) elect the active controller among
//! themselves; broker-only nodes are added as learners when they register,
//! so they receive the metadata log without voting.

pub mod controller;
pub mod durable;
pub mod log_store;
pub mod network;
pub mod node;
pub mod rpc;
pub mod state_machine;

use runnel_metadata::MetadataRecord;
use serde::{Deserialize, Serialize};

pub use node::{Quorum, QuorumConfig, Timing};
pub use rpc::{ControllerFailure, ControllerReply, ControllerRequest, ControllerResponse};
pub use state_machine::Published;

/// A node's id in the quorum: its `node.id`.
pub type NodeId = u64;

/// One entry's payload: the records one controller decision produced,
/// committed together or not at all.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetadataBatch {
    pub records: Vec<MetadataRecord>,
}

/// What applying an entry answers: where it landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    pub index: u64,
}

openraft::declare_raft_types!(
    /// Raft's types for the metadata log.
    pub TypeConfig:
        D = MetadataBatch,
        R = Applied,
        NodeId = NodeId,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = std::io::Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// An entry of the metadata log.
pub type Entry = openraft::Entry<TypeConfig>;

/// The raft instance of a node.
pub type Raft = openraft::Raft<TypeConfig>;
