//! One partition of `__consumer_offsets`: its groups and committed offsets.

/// The groups and offsets owned by one `__consumer_offsets` partition.
#[derive(Debug, Default)]
pub struct Shard {}
