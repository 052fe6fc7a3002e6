//! Domain newtypes and small value types shared by every Runnel crate.
//!
//! This crate owns the vocabulary (offsets, epochs, topic names, configs'
//! definitions) and must not know about sockets, files or the wire format.
#![deny(clippy::unwrap_used)]

pub mod config;
mod ids;
mod topic;

pub use ids::{BrokerId, LeaderEpoch, Offset, PartitionId, ProducerEpoch, ProducerId, Timestamp};
pub use topic::{TopicName, TopicNameError, TopicPartition};
