//! The table of topic-level configs: every Kafka 4.x topic config name, with
//! Kafka's type, default, valid values and broker synonyms ("Server Default
//! Property" and its fallbacks), documented in Runnel's words.

use super::def::{ConfigDef, ConfigType, Synonym, UpdateMode, Validator};

const LONG_MAX: &str = "9223372036854775807";

const fn topic(
    name: &'static str,
    config_type: ConfigType,
    default: &'static str,
    documentation: &'static str,
) -> ConfigDef {
    ConfigDef::new(name, config_type, Some(default), documentation)
        .with_update_mode(UpdateMode::PerTopic)
}

/// Allowed `compression.type` values (Kafka's BrokerCompressionType names).
pub const COMPRESSION_TYPES: &[&str] =
    &["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"];

/// Allowed `message.timestamp.type` values.
pub const TIMESTAMP_TYPES: &[&str] = &["CreateTime", "LogAppendTime"];

/// Allowed `cleanup.policy` elements.
pub const CLEANUP_POLICIES: &[&str] = &["compact", "delete"];

/// The gzip level rule: 1 to 9, or -1 for the codec's default.
pub const GZIP_LEVEL: Validator = Validator::RangeOr {
    min: 1,
    max: 9,
    or: -1,
};
/// The lz4 level rule.
pub const LZ4_LEVEL: Validator = Validator::between(1, 17);
/// The zstd level rule (zstd's negative "fast" levels included).
pub const ZSTD_LEVEL: Validator = Validator::between(-131_072, 22);
/// The cleanup-policy rule; the empty list keeps segments forever.
pub const CLEANUP_POLICY: Validator = Validator::ListOf {
    allowed: CLEANUP_POLICIES,
    allow_empty: true,
};

const THROTTLED_REPLICAS: Validator = Validator::Custom {
    valid_values: "[partitionId]:[brokerId],[partitionId]:[brokerId],...",
    check: check_throttled_replicas,
};

/// Throttled replica lists are `*` alone, or `partition:broker` pairs.
fn check_throttled_replicas(text: &str) -> Result<(), String> {
    let items = super::value::split_list(text);
    if items.len() == 1 && items[0] == "*" {
        return Ok(());
    }
    let is_pair = |item: &String| match item.split_once(':') {
        Some((partition, broker)) => {
            !partition.is_empty()
                && !broker.is_empty()
                && partition.bytes().all(|b| b.is_ascii_digit())
                && broker.bytes().all(|b| b.is_ascii_digit())
        }
        None => false,
    };
    if items.iter().all(is_pair) {
        Ok(())
    } else {
        Err("Must be the literal '*' or a list of replicas in the form \
             [partitionId]:[brokerId],[partitionId]:[brokerId],..."
            .into())
    }
}

/// Every topic config Runnel accepts, sorted by name.
pub static TOPIC_CONFIGS: &[ConfigDef] = &[
    topic(
        "cleanup.policy",
        ConfigType::List,
        "delete",
        "What happens to segments that fall out of retention: \"delete\" removes \
         them once retention.ms or retention.bytes is exceeded, \"compact\" rewrites \
         them keeping only the newest record of each key, and \"compact,delete\" does \
         both. An empty list keeps every segment forever.",
    )
    .with_validator(CLEANUP_POLICY)
    .with_synonyms(&[Synonym::same("log.cleanup.policy")]),
    topic(
        "compression.gzip.level",
        ConfigType::Int,
        "-1",
        "The gzip level used when compression.type is gzip; -1 lets the codec choose.",
    )
    .with_validator(GZIP_LEVEL)
    .with_synonyms(&[Synonym::same("compression.gzip.level")]),
    topic(
        "compression.lz4.level",
        ConfigType::Int,
        "9",
        "The lz4 level used when compression.type is lz4.",
    )
    .with_validator(LZ4_LEVEL)
    .with_synonyms(&[Synonym::same("compression.lz4.level")]),
    topic(
        "compression.type",
        ConfigType::String,
        "producer",
        "The codec batches are stored with. \"producer\" keeps whatever the producer \
         sent; \"uncompressed\" stores them uncompressed; gzip, snappy, lz4 or zstd \
         make the broker recompress batches that arrive with a different codec.",
    )
    .with_validator(Validator::OneOf(COMPRESSION_TYPES))
    .with_synonyms(&[Synonym::same("compression.type")]),
    topic(
        "compression.zstd.level",
        ConfigType::Int,
        "3",
        "The zstd level used when compression.type is zstd.",
    )
    .with_validator(ZSTD_LEVEL)
    .with_synonyms(&[Synonym::same("compression.zstd.level")]),
    topic(
        "delete.retention.ms",
        ConfigType::Long,
        "86400000",
        "On compacted topics, how long a tombstone (a record with a null value) is \
         kept after compaction reaches it. A consumer reading from the start must \
         finish within this time to be sure it sees every deletion.",
    )
    .with_validator(Validator::at_least(0))
    .with_synonyms(&[Synonym::same("log.cleaner.delete.retention.ms")]),
    topic(
        "file.delete.delay.ms",
        ConfigType::Long,
        "60000",
        "How long a segment removed from the log waits before its files are deleted \
         from disk, so reads already in progress can finish.",
    )
    .with_validator(Validator::at_least(0))
    .with_synonyms(&[Synonym::same("log.segment.delete.delay.ms")]),
    topic(
        "flush.messages",
        ConfigType::Long,
        LONG_MAX,
        "Force an fsync of the log after this many records have been appended since \
         the last one. The default leaves flushing to the operating system and relies \
         on replication for durability.",
    )
    .with_validator(Validator::at_least(1))
    .with_synonyms(&[Synonym::same("log.flush.interval.messages")]),
    topic(
        "flush.ms",
        ConfigType::Long,
        LONG_MAX,
        "Force an fsync of the log when the oldest unflushed record is this many \
         milliseconds old. The default leaves flushing to the operating system.",
    )
    .with_validator(Validator::at_least(0))
    .with_synonyms(&[
        Synonym::same("log.flush.interval.ms"),
        Synonym::same("log.flush.scheduler.interval.ms"),
    ]),
    topic(
        "follower.replication.throttled.replicas",
        ConfigType::List,
        "",
        "Replicas whose follower-side fetching is throttled, as \
         partition:broker pairs, or * for every replica of the topic.",
    )
    .with_validator(THROTTLED_REPLICAS),
    topic(
        "index.interval.bytes",
        ConfigType::Int,
        "4096",
        "How many bytes of batches are appended between two entries of the offset \
         index. Smaller values make lookups faster and indexes larger.",
    )
    .with_validator(Validator::at_least(0))
    .with_synonyms(&[Synonym::same("log.index.interval.bytes")]),
    topic(
        "leader.replication.throttled.replicas",
        ConfigType::List,
        "",
        "Replicas whose leader-side serving of follower fetches is throttled, as \
         partition:broker pairs, or * for every replica of the topic.",
    )
    .with_validator(THROTTLED_REPLICAS),
    topic(
        "local.retention.bytes",
        ConfigType::Long,
        "-2",
        "With tiered storage, the most bytes a partition keeps on local disk before \
         the oldest uploaded segments become eligible for local deletion. -2 means \
         use retention.bytes.",
    )
    .with_validator(Validator::at_least(-2))
    .with_synonyms(&[Synonym::same("log.local.retention.bytes")]),
    topic(
        "local.retention.ms",
        ConfigType::Long,
        "-2",
        "With tiered storage, how long uploaded segments stay on local disk. -2 \
         means use retention.ms.",
    )
    .with_validator(Validator::at_least(-2))
    .with_synonyms(&[Synonym::same("log.local.retention.ms")]),
    topic(
        "max.compaction.lag.ms",
        ConfigType::Long,
        LONG_MAX,
        "The longest a record can stay uncompacted: a segment holding records older \
         than this becomes eligible for compaction even if the log is not dirty \
         enough.",
    )
    .with_validator(Validator::at_least(1))
    .with_synonyms(&[Synonym::same("log.cleaner.max.compaction.lag.ms")]),
    topic(
        "max.message.bytes",
        ConfigType::Int,
        "1048588",
        "The largest record batch the topic accepts, in bytes after compression. \
         Consumers' fetch sizes must allow at least this much.",
    )
    .with_validator(Validator::at_least(0))
    .with_synonyms(&[Synonym::same("message.max.bytes")]),
    topic(
        "message.downconversion.enable",
        ConfigType::Boolean,
        "true",
        "Accepted for older tools and ignored: Kafka 4 and Runnel serve only the v2 \
         record format, so there is nothing to down-convert.",
    )
    .with_synonyms(&[Synonym::same("log.message.downconversion.enable")])
    .as_deprecated(),
    topic(
        "message.timestamp.after.max.ms",
        ConfigType::Long,
        "3600000",
        "With CreateTime timestamps, how far in the future (ahead of the broker's \
         clock) a record's timestamp may be before the batch is rejected. Ignored \
         with LogAppendTime.",
    )
    .with_validator(Validator::at_least(0))
    .with_synonyms(&[Synonym::same("log.message.timestamp.after.max.ms")]),
    topic(
        "message.timestamp.before.max.ms",
        ConfigType::Long,
        LONG_MAX,
        "With CreateTime timestamps, how far in the past (behind the broker's clock) \
         a record's timestamp may be before the batch is rejected. Ignored with \
         LogAppendTime.",
    )
    .with_validator(Validator::at_least(0))
    .with_synonyms(&[Synonym::same("log.message.timestamp.before.max.ms")]),
    topic(
        "message.timestamp.difference.max.ms",
        ConfigType::Long,
        LONG_MAX,
        "Deprecated, removed from Kafka 4: accepted for older tools. When set on a \
         topic that does not override message.timestamp.before.max.ms or \
         message.timestamp.after.max.ms, it bounds both.",
    )
    .with_validator(Validator::at_least(0))
    .with_synonyms(&[Synonym::same("log.message.timestamp.difference.max.ms")])
    .as_deprecated(),
    topic(
        "message.timestamp.type",
        ConfigType::String,
        "CreateTime",
        "Which timestamp records carry: CreateTime keeps the producer's, \
         LogAppendTime replaces it with the broker's clock at append.",
    )
    .with_validator(Validator::OneOf(TIMESTAMP_TYPES))
    .with_synonyms(&[Synonym::same("log.message.timestamp.type")]),
    topic(
        "min.cleanable.dirty.ratio",
        ConfigType::Double,
        "0.5",
        "How much of a compacted log must be uncompacted (dirty) before the cleaner \
         works on it, as a fraction of the log. Lower values compact more often and \
         waste less space.",
    )
    .with_validator(Validator::DoubleRange { min: 0.0, max: 1.0 })
    .with_synonyms(&[Synonym::same("log.cleaner.min.cleanable.ratio")]),
    topic(
        "min.compaction.lag.ms",
        ConfigType::Long,
        "0",
        "The least time a record stays uncompacted, so consumers can see every \
         update younger than this.",
    )
    .with_validator(Validator::at_least(0))
    .with_synonyms(&[Synonym::same("log.cleaner.min.compaction.lag.ms")]),
    topic(
        "min.insync.replicas",
        ConfigType::Int,
        "1",
        "How many in-sync replicas must hold a batch before a produce with acks=all \
         succeeds; below this the producer gets NOT_ENOUGH_REPLICAS.",
    )
    .with_validator(Validator::at_least(1))
    .with_synonyms(&[Synonym::same("min.insync.replicas")]),
    topic(
        "preallocate",
        ConfigType::Boolean,
        "false",
        "Whether a new segment's file is allocated at its full size up front.",
    )
    .with_synonyms(&[Synonym::same("log.preallocate")]),
    topic(
        "remote.log.copy.disable",
        ConfigType::Boolean,
        "false",
        "With tiered storage, stop uploading segments while still serving and \
         expiring those already uploaded.",
    ),
    topic(
        "remote.log.delete.on.disable",
        ConfigType::Boolean,
        "false",
        "With tiered storage, confirms that turning remote.storage.enable off may \
         delete the topic's remote data.",
    ),
    topic(
        "remote.storage.enable",
        ConfigType::Boolean,
        "false",
        "Whether the topic uses tiered storage (requires tiered storage to be enabled \
         on the brokers).",
    ),
    topic(
        "retention.bytes",
        ConfigType::Long,
        "-1",
        "With the delete policy, the most bytes a partition may hold before its \
         oldest segments are deleted. -1 means no size limit.",
    )
    .with_synonyms(&[Synonym::same("log.retention.bytes")]),
    topic(
        "retention.ms",
        ConfigType::Long,
        "604800000",
        "With the delete policy, how long a segment is kept after its newest record \
         was written before it is deleted. -1 means no time limit.",
    )
    .with_validator(Validator::at_least(-1))
    .with_synonyms(&[
        Synonym::same("log.retention.ms"),
        Synonym::minutes("log.retention.minutes"),
        Synonym::hours("log.retention.hours"),
    ]),
    topic(
        "segment.bytes",
        ConfigType::Int,
        "1073741824",
        "The size at which the active segment is closed and a new one started. \
         Retention and compaction work on whole segments.",
    )
    .with_validator(Validator::at_least(1_048_576))
    .with_synonyms(&[Synonym::same("log.segment.bytes")]),
    topic(
        "segment.index.bytes",
        ConfigType::Int,
        "10485760",
        "The size of the offset and time index files of a segment; a segment is also \
         rolled when its index is full.",
    )
    .with_validator(Validator::at_least(4))
    .with_synonyms(&[Synonym::same("log.index.size.max.bytes")]),
    topic(
        "segment.jitter.ms",
        ConfigType::Long,
        "0",
        "The most random time subtracted from segment.ms per segment, so that many \
         partitions do not all roll at once.",
    )
    .with_validator(Validator::at_least(0))
    .with_synonyms(&[
        Synonym::same("log.roll.jitter.ms"),
        Synonym::hours("log.roll.jitter.hours"),
    ]),
    topic(
        "segment.ms",
        ConfigType::Long,
        "604800000",
        "The age at which the active segment is closed even if not full, so that \
         retention and compaction can act on old data.",
    )
    .with_validator(Validator::at_least(1))
    .with_synonyms(&[
        Synonym::same("log.roll.ms"),
        Synonym::hours("log.roll.hours"),
    ]),
    topic(
        "unclean.leader.election.enable",
        ConfigType::Boolean,
        "false",
        "Whether a replica outside the in-sync set may become leader when no in-sync \
         replica is available, trading possible loss of acknowledged records for \
         availability.",
    )
    .with_synonyms(&[Synonym::same("unclean.leader.election.enable")]),
];

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn throttled_replica_lists() {
        assert!(check_throttled_replicas("").is_ok());
        assert!(check_throttled_replicas("*").is_ok());
        assert!(check_throttled_replicas("0:1, 1:2").is_ok());
        assert!(check_throttled_replicas("0:1,*").is_err());
        assert!(check_throttled_replicas("0-1").is_err());
        assert!(check_throttled_replicas("a:1").is_err());
    }

    #[test]
    fn table_is_sorted_and_unique() {
        let names: Vec<&str> = TOPIC_CONFIGS.iter().map(|d| d.name).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(names, sorted);
    }
}
