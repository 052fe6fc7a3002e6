//! The group coordinator as state machines with time passed in (DESIGN §6).
//!
//! Nothing here does I/O or reads a clock. The broker's runtime feeds
//! requests and the current time in, appends the records the machines ask
//! for to `__consumer_offsets`, replays those records into a fresh [`Shard`]
//! at start, and answers the requests the machines complete — possibly
//! later, as classic JoinGroup and SyncGroup wait for the rest of the group.
//!
//! - [`classic`]: JoinGroup/SyncGroup/Heartbeat/LeaveGroup groups, static
//!   membership (KIP-345), cooperative rebalancing (KIP-429 — the protocol
//!   is the client's; the coordinator runs the rounds).
//! - [`consumer`]: KIP-848 groups driven by ConsumerGroupHeartbeat, with
//!   server-side [`assignor`]s.
//! - [`offsets`]: committed offsets and their expiry.
//! - [`records`]: the key and value formats of `__consumer_offsets`.
//! - [`shard`]: one partition of `__consumer_offsets` and every group it
//!   owns; the runtime's entry point.
#![deny(clippy::unwrap_used)]

pub mod assignor;
pub mod classic;
pub mod consumer;
pub mod offsets;
pub mod records;
pub mod shard;

pub use shard::Shard;

/// Milliseconds since the Unix epoch, as the runtime's clock reads them.
pub type Millis = i64;

/// A handle the runtime attaches to a request that may be answered later.
pub type RequestId = u64;

/// The `__consumer_offsets` partition owning `group_id`: Java's
/// `String.hashCode` of the id, made non-negative as Kafka's `Utils.abs`
/// does, modulo the partition count. Clients never compute this, but tools
/// that read the topic do, so it matches Kafka.
pub fn partition_for(group_id: &str, partitions: i32) -> i32 {
    let mut hash: i32 = 0;
    for unit in group_id.encode_utf16() {
        hash = hash.wrapping_mul(31).wrapping_add(i32::from(unit));
    }
    let abs = if hash == i32::MIN { 0 } else { hash.abs() };
    abs % partitions.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_matches_java_string_hash_code() {
        // "my-group".hashCode() == -1906497762 in Java; 1906497762 % 50 == 12.
        assert_eq!(partition_for("my-group", 50), 12);
        assert_eq!(partition_for("", 50), 0);
        // Non-ASCII ids hash UTF-16 code units like Java.
        assert!((0..50).contains(&partition_for("gröup-☃", 50)));
    }
}
