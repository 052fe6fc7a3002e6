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
    pub retention_ms: i64,
    /// `retention.bytes`: delete oldest segments while the log is larger; -1 = keep.
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
        }
    }
}

impl LogConfig {
    /// `segment.bytes` clamped to what a u32 file position can address.
    pub(crate) fn segment_bytes_max(&self) -> u64 {
        self.segment_bytes.clamp(1, i32::MAX as u64)
    }
}
