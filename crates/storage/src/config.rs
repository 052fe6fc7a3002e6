//! Topic-level log settings, named after Kafka's topic configs.

pub use runnel_protocol::batch::TimestampType;

/// Settings of one partition log. The broker fills them from the topic's
/// configs; [`LogConfig::default`] gives Kafka's defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogConfig {
    /// `segment.bytes`: roll the active segment before it would pass this size.
    pub segment_bytes: u64,
    /// `segment.ms`: roll a segment this long after its first record's time.
    pub segment_ms: i64,
    /// `segment.index.bytes`: roll when an index file would pass this size.
    pub segment_index_bytes: u32,
    /// `index.interval.bytes`: log bytes between two offset-index entries.
    pub index_interval_bytes: u32,
    /// `retention.ms`: delete segments whose newest record is older; -1 = keep.
    /// Applies only when `cleanup.policy` contains `delete`.
    pub retention_ms: i64,
    /// `retention.bytes`: delete oldest segments while the log is larger; -1 = keep.
    /// Applies only when `cleanup.policy` contains `delete`.
    pub retention_bytes: i64,
    /// `flush.messages`: fsync after this many unflushed records.
    pub flush_messages: i64,
    /// `flush.ms`: fsync when the last flush is this old.
    pub flush_ms: i64,
    /// `max.message.bytes`: the largest batch accepted, log overhead included.
    pub max_message_bytes: u32,
    /// `message.timestamp.type`: keep the producer's timestamps or stamp the
    /// broker's clock at append.
    pub timestamp_type: TimestampType,
    /// `cleanup.policy`: time/size retention (`delete`), compaction
    /// (`compact`), both, or neither.
    pub cleanup_policy: CleanupPolicy,
    /// `delete.retention.ms`: how long the cleaner keeps a tombstone (a
    /// record with a null value) after it first saw it, so consumers reading
    /// from the start see the delete.
    pub delete_retention_ms: i64,
    /// `min.cleanable.dirty.ratio`: clean a compacted log once the bytes
    /// not yet cleaned are at least this share of its cleanable bytes.
    pub min_cleanable_dirty_ratio: DirtyRatio,
    /// `min.compaction.lag.ms`: records newer than this stay uncompacted.
    pub min_compaction_lag_ms: i64,
    /// `max.compaction.lag.ms`: a record not yet compacted after this long
    /// makes the log due for cleaning whatever its dirty ratio; it also
    /// rolls the active segment of a compacted log, as `segment.ms` does.
    pub max_compaction_lag_ms: i64,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1_073_741_824,
            segment_ms: 604_800_000,
            segment_index_bytes: 10_485_760,
            index_interval_bytes: 4096,
            retention_ms: 604_800_000,
            retention_bytes: -1,
            flush_messages: i64::MAX,
            flush_ms: i64::MAX,
            max_message_bytes: 1_048_588,
            timestamp_type: TimestampType::CreateTime,
            cleanup_policy: CleanupPolicy::DELETE,
            delete_retention_ms: 86_400_000,
            min_cleanable_dirty_ratio: DirtyRatio::default(),
            min_compaction_lag_ms: 0,
            max_compaction_lag_ms: i64::MAX,
        }
    }
}

impl LogConfig {
    /// `segment.bytes` clamped to what a u32 file position can address.
    pub(crate) fn segment_bytes_max(&self) -> u64 {
        self.segment_bytes.clamp(1, i32::MAX as u64)
    }

    /// `segment.ms`, shortened to `max.compaction.lag.ms` for a compacted
    /// log so records in the active segment become cleanable in time
    /// (KIP-354).
    pub(crate) fn roll_ms(&self) -> i64 {
        if self.cleanup_policy.compact && self.max_compaction_lag_ms > 0 {
            self.segment_ms.min(self.max_compaction_lag_ms)
        } else {
            self.segment_ms
        }
    }
}

/// `cleanup.policy`: which of Kafka's two policies apply. Both may.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CleanupPolicy {
    /// `delete`: `retention.ms` and `retention.bytes` delete old segments.
    pub delete: bool,
    /// `compact`: the cleaner keeps the latest record of each key.
    pub compact: bool,
}

impl CleanupPolicy {
    /// `cleanup.policy=delete`, the default.
    pub const DELETE: CleanupPolicy = CleanupPolicy {
        delete: true,
        compact: false,
    };
    /// `cleanup.policy=compact`.
    pub const COMPACT: CleanupPolicy = CleanupPolicy {
        delete: false,
        compact: true,
    };
    /// `cleanup.policy=compact,delete`.
    pub const COMPACT_DELETE: CleanupPolicy = CleanupPolicy {
        delete: true,
        compact: true,
    };

    /// Parses the config's value, a comma-separated list of `delete` and
    /// `compact` (case-insensitive, spaces allowed; an empty list is
    /// neither). `None` for any other word.
    pub fn parse(value: &str) -> Option<CleanupPolicy> {
        let mut policy = CleanupPolicy {
            delete: false,
            compact: false,
        };
        for word in value.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            if word.eq_ignore_ascii_case("delete") {
                policy.delete = true;
            } else if word.eq_ignore_ascii_case("compact") {
                policy.compact = true;
            } else {
                return None;
            }
        }
        Some(policy)
    }
}

impl Default for CleanupPolicy {
    fn default() -> Self {
        CleanupPolicy::DELETE
    }
}

/// `min.cleanable.dirty.ratio`, a share between 0 and 1 (Kafka's default
/// 0.5). Compared by value, so [`LogConfig`] stays `Eq`.
#[derive(Clone, Copy, Debug)]
pub struct DirtyRatio(f64);

impl DirtyRatio {
    /// The ratio, clamped to [0, 1]; NaN becomes the default 0.5.
    pub fn new(ratio: f64) -> DirtyRatio {
        if ratio.is_nan() {
            DirtyRatio::default()
        } else {
            DirtyRatio(ratio.clamp(0.0, 1.0))
        }
    }

    /// The ratio as a number.
    pub fn get(self) -> f64 {
        self.0
    }
}

impl Default for DirtyRatio {
    fn default() -> Self {
        DirtyRatio(0.5)
    }
}

impl PartialEq for DirtyRatio {
    fn eq(&self, other: &Self) -> bool {
        self.0.to_bits() == other.0.to_bits()
    }
}

impl Eq for DirtyRatio {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleanup_policy_parses_kafka_values() {
        assert_eq!(CleanupPolicy::parse("delete"), Some(CleanupPolicy::DELETE));
        assert_eq!(
            CleanupPolicy::parse("compact"),
            Some(CleanupPolicy::COMPACT)
        );
        assert_eq!(
            CleanupPolicy::parse("compact, delete"),
            Some(CleanupPolicy::COMPACT_DELETE)
        );
        assert_eq!(
            CleanupPolicy::parse("Delete,compact"),
            Some(CleanupPolicy::COMPACT_DELETE)
        );
        assert_eq!(
            CleanupPolicy::parse(""),
            Some(CleanupPolicy {
                delete: false,
                compact: false
            })
        );
        assert_eq!(CleanupPolicy::parse("compact,shred"), None);
    }

    #[test]
    fn dirty_ratio_is_clamped() {
        assert_eq!(DirtyRatio::new(1.5).get(), 1.0);
        assert_eq!(DirtyRatio::new(-1.0).get(), 0.0);
        assert_eq!(DirtyRatio::new(f64::NAN), DirtyRatio::default());
    }
}
