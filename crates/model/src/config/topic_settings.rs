//! A topic's effective configuration as typed fields: what the broker hands
//! the storage layer when it opens or reconfigures a partition's log.

use std::fmt;
use std::str::FromStr;

use super::broker::BrokerConfig;
use super::topic::{resolve_topic_value, TopicConfigOverrides};
use super::value::ConfigValue;

/// Which timestamp stored records carry (`message.timestamp.type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum TimestampType {
    /// The producer's timestamp, checked against
    /// `message.timestamp.before.max.ms` / `after.max.ms`.
    #[default]
    CreateTime,
    /// The leader's clock at append, overwriting the producer's.
    LogAppendTime,
}

impl TimestampType {
    /// Kafka's name: "CreateTime" or "LogAppendTime".
    pub const fn name(self) -> &'static str {
        match self {
            TimestampType::CreateTime => "CreateTime",
            TimestampType::LogAppendTime => "LogAppendTime",
        }
    }
}

impl fmt::Display for TimestampType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for TimestampType {
    type Err = String;

    fn from_str(text: &str) -> Result<TimestampType, String> {
        match text {
            "CreateTime" => Ok(TimestampType::CreateTime),
            "LogAppendTime" => Ok(TimestampType::LogAppendTime),
            other => Err(format!("unknown timestamp type {other}")),
        }
    }
}

/// The codec a topic stores batches with (`compression.type`), Kafka's
/// broker-side compression type: the codecs plus "producer" (keep what the
/// producer sent).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum CompressionType {
    /// Keep the producer's codec.
    #[default]
    Producer,
    /// Store uncompressed.
    Uncompressed,
    /// gzip.
    Gzip,
    /// snappy.
    Snappy,
    /// lz4.
    Lz4,
    /// zstd.
    Zstd,
}

impl CompressionType {
    /// Kafka's name ("producer", "uncompressed", "gzip", …).
    pub const fn name(self) -> &'static str {
        match self {
            CompressionType::Producer => "producer",
            CompressionType::Uncompressed => "uncompressed",
            CompressionType::Gzip => "gzip",
            CompressionType::Snappy => "snappy",
            CompressionType::Lz4 => "lz4",
            CompressionType::Zstd => "zstd",
        }
    }
}

impl fmt::Display for CompressionType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for CompressionType {
    type Err = String;

    fn from_str(text: &str) -> Result<CompressionType, String> {
        Ok(match text {
            "producer" => CompressionType::Producer,
            "uncompressed" => CompressionType::Uncompressed,
            "gzip" => CompressionType::Gzip,
            "snappy" => CompressionType::Snappy,
            "lz4" => CompressionType::Lz4,
            "zstd" => CompressionType::Zstd,
            other => return Err(format!("unknown compression type {other}")),
        })
    }
}

/// What happens to segments out of retention (`cleanup.policy`). Both false
/// (the empty list) keeps everything forever.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CleanupPolicy {
    /// Delete segments past `retention.ms` / `retention.bytes`.
    pub delete: bool,
    /// Compact: keep the newest record per key.
    pub compact: bool,
}

impl Default for CleanupPolicy {
    fn default() -> CleanupPolicy {
        CleanupPolicy {
            delete: true,
            compact: false,
        }
    }
}

impl CleanupPolicy {
    /// From the list's elements (already validated).
    pub fn from_list(items: &[String]) -> CleanupPolicy {
        CleanupPolicy {
            delete: items.iter().any(|item| item == "delete"),
            compact: items.iter().any(|item| item == "compact"),
        }
    }
}

/// A topic's effective settings, typed with Kafka's own integer widths
/// (`int` configs are `i32`, `long` configs `i64`).
#[derive(Clone, Debug, PartialEq)]
pub struct TopicSettings {
    /// `cleanup.policy`.
    pub cleanup_policy: CleanupPolicy,
    /// `compression.type`.
    pub compression_type: CompressionType,
    /// `compression.gzip.level` (-1: the codec's default).
    pub compression_gzip_level: i32,
    /// `compression.lz4.level`.
    pub compression_lz4_level: i32,
    /// `compression.zstd.level`.
    pub compression_zstd_level: i32,
    /// `delete.retention.ms`.
    pub delete_retention_ms: i64,
    /// `file.delete.delay.ms`.
    pub file_delete_delay_ms: i64,
    /// `flush.messages`.
    pub flush_messages: i64,
    /// `flush.ms`.
    pub flush_ms: i64,
    /// `index.interval.bytes`.
    pub index_interval_bytes: i32,
    /// `local.retention.bytes` as configured (-2: same as retention.bytes).
    pub local_retention_bytes: i64,
    /// `local.retention.ms` as configured (-2: same as retention.ms).
    pub local_retention_ms: i64,
    /// `max.compaction.lag.ms`.
    pub max_compaction_lag_ms: i64,
    /// `max.message.bytes`.
    pub max_message_bytes: i32,
    /// `message.timestamp.after.max.ms`.
    pub message_timestamp_after_max_ms: i64,
    /// `message.timestamp.before.max.ms`.
    pub message_timestamp_before_max_ms: i64,
    /// `message.timestamp.type`.
    pub message_timestamp_type: TimestampType,
    /// `min.cleanable.dirty.ratio`.
    pub min_cleanable_dirty_ratio: f64,
    /// `min.compaction.lag.ms`.
    pub min_compaction_lag_ms: i64,
    /// `min.insync.replicas`.
    pub min_insync_replicas: i32,
    /// `preallocate`.
    pub preallocate: bool,
    /// `remote.storage.enable`.
    pub remote_storage_enable: bool,
    /// `retention.bytes` (-1: no size limit).
    pub retention_bytes: i64,
    /// `retention.ms` (-1: no time limit).
    pub retention_ms: i64,
    /// `segment.bytes`.
    pub segment_bytes: i32,
    /// `segment.index.bytes`.
    pub segment_index_bytes: i32,
    /// `segment.jitter.ms`.
    pub segment_jitter_ms: i64,
    /// `segment.ms`.
    pub segment_ms: i64,
    /// `unclean.leader.election.enable`.
    pub unclean_leader_election_enable: bool,
}

impl Default for TopicSettings {
    /// Kafka's topic defaults (a broker with no configuration).
    fn default() -> TopicSettings {
        TopicSettings::resolve(&TopicConfigOverrides::new(), &BrokerConfig::default())
    }
}

impl TopicSettings {
    /// The topic's settings: each field is the topic's override, else the
    /// broker's synonym, else Kafka's default.
    ///
    /// The deprecated `message.timestamp.difference.max.ms`, when overridden,
    /// bounds both timestamp directions that the topic does not override
    /// itself (as Kafka 3.6–3.9 did).
    pub fn resolve(overrides: &TopicConfigOverrides, broker: &BrokerConfig) -> TopicSettings {
        let value = |name: &str| resolve_topic_value(name, overrides, broker);
        let long = |name: &str| {
            let resolved = value(name).and_then(|v| v.as_i64());
            debug_assert!(resolved.is_some(), "{name} resolves to an integer");
            resolved.unwrap_or_default()
        };
        let int = |name: &str| i32::try_from(long(name)).unwrap_or(i32::MAX);
        let boolean = |name: &str| value(name).and_then(|v| v.as_bool()).unwrap_or(false);
        let text = |name: &str| value(name).and_then(|v| v.as_str().map(str::to_string));

        let difference = overrides
            .get("message.timestamp.difference.max.ms")
            .and_then(|text| text.parse::<i64>().ok());
        let timestamp_bound = |name: &str| match difference {
            Some(difference) if !overrides.contains(name) => difference,
            _ => long(name),
        };

        TopicSettings {
            cleanup_policy: value("cleanup.policy")
                .as_ref()
                .and_then(ConfigValue::as_list)
                .map(CleanupPolicy::from_list)
                .unwrap_or_default(),
            compression_type: text("compression.type")
                .and_then(|name| name.parse().ok())
                .unwrap_or_default(),
            compression_gzip_level: int("compression.gzip.level"),
            compression_lz4_level: int("compression.lz4.level"),
            compression_zstd_level: int("compression.zstd.level"),
            delete_retention_ms: long("delete.retention.ms"),
            file_delete_delay_ms: long("file.delete.delay.ms"),
            flush_messages: long("flush.messages"),
            flush_ms: long("flush.ms"),
            index_interval_bytes: int("index.interval.bytes"),
            local_retention_bytes: long("local.retention.bytes"),
            local_retention_ms: long("local.retention.ms"),
            max_compaction_lag_ms: long("max.compaction.lag.ms"),
            max_message_bytes: int("max.message.bytes"),
            message_timestamp_after_max_ms: timestamp_bound("message.timestamp.after.max.ms"),
            message_timestamp_before_max_ms: timestamp_bound("message.timestamp.before.max.ms"),
            message_timestamp_type: text("message.timestamp.type")
                .and_then(|name| name.parse().ok())
                .unwrap_or_default(),
            min_cleanable_dirty_ratio: value("min.cleanable.dirty.ratio")
                .and_then(|v| v.as_f64())
                .unwrap_or(0.5),
            min_compaction_lag_ms: long("min.compaction.lag.ms"),
            min_insync_replicas: int("min.insync.replicas"),
            preallocate: boolean("preallocate"),
            remote_storage_enable: boolean("remote.storage.enable"),
            retention_bytes: long("retention.bytes"),
            retention_ms: long("retention.ms"),
            segment_bytes: int("segment.bytes"),
            segment_index_bytes: int("segment.index.bytes"),
            segment_jitter_ms: long("segment.jitter.ms"),
            segment_ms: long("segment.ms"),
            unclean_leader_election_enable: boolean("unclean.leader.election.enable"),
        }
    }

    /// Local retention in milliseconds with -2 replaced by `retention.ms`.
    pub fn effective_local_retention_ms(&self) -> i64 {
        if self.local_retention_ms == -2 {
            self.retention_ms
        } else {
            self.local_retention_ms
        }
    }

    /// Local retention in bytes with -2 replaced by `retention.bytes`.
    pub fn effective_local_retention_bytes(&self) -> i64 {
        if self.local_retention_bytes == -2 {
            self.retention_bytes
        } else {
            self.local_retention_bytes
        }
    }

    /// The age at which a segment rolls: `segment.ms`, shortened to
    /// `max.compaction.lag.ms` on compacted topics (so compaction can reach
    /// records within their bound).
    pub fn max_segment_ms(&self) -> i64 {
        if self.cleanup_policy.compact && self.max_compaction_lag_ms > 0 {
            self.segment_ms.min(self.max_compaction_lag_ms)
        } else {
            self.segment_ms
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::config::broker::ConfigSources;

    #[test]
    fn defaults_are_kafkas() {
        let settings = TopicSettings::default();
        assert_eq!(settings.segment_bytes, 1_073_741_824);
        assert_eq!(settings.segment_ms, 604_800_000);
        assert_eq!(settings.segment_index_bytes, 10_485_760);
        assert_eq!(settings.index_interval_bytes, 4096);
        assert_eq!(settings.retention_ms, 604_800_000);
        assert_eq!(settings.retention_bytes, -1);
        assert_eq!(settings.flush_messages, i64::MAX);
        assert_eq!(settings.flush_ms, i64::MAX);
        assert_eq!(settings.max_message_bytes, 1_048_588);
        assert_eq!(settings.message_timestamp_type, TimestampType::CreateTime);
        assert_eq!(settings.message_timestamp_after_max_ms, 3_600_000);
        assert_eq!(settings.message_timestamp_before_max_ms, i64::MAX);
        assert_eq!(settings.cleanup_policy, CleanupPolicy::default());
        assert_eq!(settings.compression_type, CompressionType::Producer);
        assert_eq!(settings.compression_gzip_level, -1);
        assert_eq!(settings.compression_lz4_level, 9);
        assert_eq!(settings.compression_zstd_level, 3);
        assert_eq!(settings.min_insync_replicas, 1);
        assert_eq!(settings.min_cleanable_dirty_ratio, 0.5);
        assert_eq!(settings.delete_retention_ms, 86_400_000);
        assert_eq!(settings.file_delete_delay_ms, 60_000);
        assert_eq!(settings.max_compaction_lag_ms, i64::MAX);
        assert!(!settings.unclean_leader_election_enable);
        assert_eq!(settings.effective_local_retention_ms(), 604_800_000);
    }

    #[test]
    fn overrides_and_broker_values_flow_into_fields() {
        let broker = BrokerConfig::load(ConfigSources {
            overrides: vec![
                ("log.roll.hours".into(), "2".into()),
                ("log.flush.scheduler.interval.ms".into(), "1000".into()),
                ("log.message.timestamp.type".into(), "LogAppendTime".into()),
            ],
            ..ConfigSources::default()
        })
        .unwrap();
        let overrides = TopicConfigOverrides::from_pairs([
            ("cleanup.policy", "compact"),
            ("compression.type", "zstd"),
            ("max.compaction.lag.ms", "60000"),
        ])
        .unwrap();
        let settings = TopicSettings::resolve(&overrides, &broker);
        assert_eq!(settings.segment_ms, 7_200_000);
        assert_eq!(settings.flush_ms, 1000);
        assert_eq!(
            settings.message_timestamp_type,
            TimestampType::LogAppendTime
        );
        assert!(settings.cleanup_policy.compact && !settings.cleanup_policy.delete);
        assert_eq!(settings.compression_type, CompressionType::Zstd);
        assert_eq!(settings.max_segment_ms(), 60_000);
    }

    #[test]
    fn deprecated_timestamp_difference_bounds_both_directions() {
        let overrides = TopicConfigOverrides::from_pairs([
            ("message.timestamp.difference.max.ms", "5000"),
            ("message.timestamp.after.max.ms", "10"),
        ])
        .unwrap();
        let settings = TopicSettings::resolve(&overrides, &BrokerConfig::default());
        assert_eq!(settings.message_timestamp_before_max_ms, 5000);
        assert_eq!(settings.message_timestamp_after_max_ms, 10);
    }

    #[test]
    fn names_round_trip() {
        for name in crate::config::topic::COMPRESSION_TYPES {
            let parsed: CompressionType = name.parse().unwrap();
            assert_eq!(parsed.name(), *name);
        }
        for name in crate::config::topic::TIMESTAMP_TYPES {
            let parsed: TimestampType = name.parse().unwrap();
            assert_eq!(parsed.to_string(), *name);
        }
    }
}
