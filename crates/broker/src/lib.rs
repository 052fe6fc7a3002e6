//! The Runnel broker: listeners, connections, request handlers and the
//! partitions they serve.
//!
//! This crate owns sockets, the async runtime and the mapping between Kafka
//! requests and the storage layer's domain types. It must not know how bytes
//! are laid out on disk (that is `runnel-storage`) nor how messages are
//! encoded (that is `runnel-protocol` and `kafka-protocol`).
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod allocator;
mod broker;
mod cluster;
mod connection;
mod groups;
mod handlers;
mod partition;
mod producer_ids;
mod replication;
mod response;
mod server;
mod topics;

pub use allocator::{ReservingAllocator, HUGE_BYTES};
pub use handlers::supported_versions;
pub use server::{RunningServer, Server};
