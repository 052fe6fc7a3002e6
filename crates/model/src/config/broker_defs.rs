//! The table of broker configs Runnel understands: Kafka's names, types,
//! defaults, valid values and update modes, documented in Runnel's words.
//! Where Runnel's default differs from Kafka's, [`RUNNEL_DEFAULT_DIFFERENCES`]
//! says so and why.

use super::def::{ConfigDef, ConfigType, UpdateMode, Validator};
use super::topic_defs::{
    CLEANUP_POLICY, COMPRESSION_TYPES, GZIP_LEVEL, LZ4_LEVEL, TIMESTAMP_TYPES, ZSTD_LEVEL,
};

const LONG_MAX: &str = "9223372036854775807";
const INT_MAX: &str = "2147483647";

use ConfigType::{Boolean, Double, Int, List, Long, Password, Short, String as Str};
use UpdateMode::{ClusterWide, PerBroker};

const fn key(
    name: &'static str,
    config_type: ConfigType,
    default: Option<&'static str>,
    documentation: &'static str,
) -> ConfigDef {
    ConfigDef::new(name, config_type, default, documentation)
}

const fn at_least(min: i64) -> Validator {
    Validator::at_least(min)
}

const LISTENERS: Validator = Validator::Custom {
    valid_values: "NAME://host:port,...",
    check: super::listener::check_listeners,
};

const PROTOCOL_MAP: Validator = Validator::Custom {
    valid_values: "NAME:PROTOCOL,...",
    check: super::listener::check_protocol_map,
};

const CONNECTION_OVERRIDES: Validator = Validator::Custom {
    valid_values: "host:count,...",
    check: check_connection_overrides,
};

fn check_connection_overrides(text: &str) -> Result<(), String> {
    parse_connection_overrides(text).map(|_| ())
}

/// Parses `max.connections.per.ip.overrides`: `host:count` pairs.
pub(crate) fn parse_connection_overrides(text: &str) -> Result<Vec<(String, i32)>, String> {
    super::value::split_list(text)
        .into_iter()
        .map(|item| {
            let (host, count) = item
                .rsplit_once(':')
                .ok_or_else(|| format!("{item} is not of the form host:count"))?;
            let count: i32 = count
                .trim()
                .parse()
                .ok()
                .filter(|count| *count >= 0)
                .ok_or_else(|| format!("{item} has an invalid connection count"))?;
            if host.trim().is_empty() {
                return Err(format!("{item} has an empty host"));
            }
            Ok((host.trim().to_string(), count))
        })
        .collect()
}

/// Keys whose Runnel default differs from Kafka's, with Kafka's default
/// (`None` for null) and the reason.
pub const RUNNEL_DEFAULT_DIFFERENCES: &[(&str, Option<&str>, &str)] = &[
    (
        "listeners",
        Some("PLAINTEXT://:9092"),
        "zero-config local use: loopback only until configured",
    ),
    (
        "log.dir",
        Some("/tmp/kafka-logs"),
        "data in the working directory, not a temporary one",
    ),
    (
        "node.id",
        Some("-1"),
        "a single node works without configuration",
    ),
    (
        "process.roles",
        Some(""),
        "one process is a whole cluster (combined mode)",
    ),
    (
        "transaction.state.log.min.isr",
        Some("2"),
        "a single node can commit transactions",
    ),
    (
        "transaction.state.log.replication.factor",
        Some("3"),
        "a single node can create __transaction_state",
    ),
];

/// Every broker config Runnel accepts, sorted by name.
pub static BROKER_CONFIGS: &[ConfigDef] = &[
    key(
        "advertised.listeners",
        Str,
        None,
        "The listeners clients are told to connect to, when they differ from \
         listeners (behind NAT, in containers). Unset: the same as listeners.",
    )
    .with_validator(LISTENERS)
    .with_update_mode(PerBroker),
    key(
        "authorizer.class.name",
        Str,
        Some(""),
        "Accepted for compatibility; Runnel's authorizer is built in.",
    ),
    key(
        "auto.create.topics.enable",
        Boolean,
        Some("true"),
        "Whether a Metadata request for a missing topic creates it with \
         num.partitions and default.replication.factor.",
    ),
    key(
        "auto.leader.rebalance.enable",
        Boolean,
        Some("true"),
        "Whether leadership moves back to each partition's preferred replica when \
         the imbalance exceeds leader.imbalance.per.broker.percentage.",
    ),
    key(
        "background.threads",
        Int,
        Some("10"),
        "Threads for background work (segment deletion, checkpoints).",
    )
    .with_validator(at_least(1))
    .with_update_mode(ClusterWide),
    key(
        "broker.heartbeat.interval.ms",
        Int,
        Some("2000"),
        "How often a broker heartbeats to the controller.",
    ),
    key(
        "broker.id",
        Int,
        Some("-1"),
        "Kafka's older name for node.id; when set it must equal node.id.",
    ),
    key(
        "broker.rack",
        Str,
        None,
        "The rack (or zone) of this broker; replica placement spreads partitions \
         across racks.",
    ),
    key(
        "broker.session.timeout.ms",
        Int,
        Some("9000"),
        "How long the controller waits without a heartbeat before fencing a broker.",
    ),
    key(
        "compression.gzip.level",
        Int,
        Some("-1"),
        "Default gzip level for topics (compression.gzip.level).",
    )
    .with_validator(GZIP_LEVEL)
    .with_update_mode(ClusterWide),
    key(
        "compression.lz4.level",
        Int,
        Some("9"),
        "Default lz4 level for topics (compression.lz4.level).",
    )
    .with_validator(LZ4_LEVEL)
    .with_update_mode(ClusterWide),
    key(
        "compression.type",
        Str,
        Some("producer"),
        "Default codec topics store batches with (compression.type).",
    )
    .with_validator(Validator::OneOf(COMPRESSION_TYPES))
    .with_update_mode(ClusterWide),
    key(
        "compression.zstd.level",
        Int,
        Some("3"),
        "Default zstd level for topics (compression.zstd.level).",
    )
    .with_validator(ZSTD_LEVEL)
    .with_update_mode(ClusterWide),
    key(
        "connections.max.idle.ms",
        Long,
        Some("600000"),
        "Connections idle for longer than this are closed.",
    ),
    key(
        "connections.max.reauth.ms",
        Long,
        Some("0"),
        "The longest a SASL session lasts before the client must re-authenticate; \
         0 means sessions never expire.",
    ),
    key(
        "controller.listener.names",
        Str,
        None,
        "The listener names the controller quorum uses, comma-separated.",
    ),
    key(
        "controller.quorum.bootstrap.servers",
        List,
        Some(""),
        "host:port addresses of controllers to discover the quorum from.",
    ),
    key(
        "controller.quorum.voters",
        List,
        Some(""),
        "The static controller quorum, as id@host:port entries.",
    ),
    key(
        "default.replication.factor",
        Int,
        Some("1"),
        "Replication factor of automatically created topics and of CreateTopics \
         requests that leave it to the broker.",
    ),
    key(
        "delete.topic.enable",
        Boolean,
        Some("true"),
        "Whether DeleteTopics is allowed.",
    ),
    key(
        "early.start.listeners",
        Str,
        None,
        "Listener names started before the broker has caught up with metadata.",
    ),
    key(
        "fetch.max.bytes",
        Int,
        Some("57671680"),
        "The most bytes one Fetch response returns, whatever the request asks.",
    )
    .with_validator(at_least(1024)),
    key(
        "group.consumer.assignors",
        List,
        Some("uniform,range"),
        "Server-side assignors of consumer-protocol groups; the first is the default.",
    )
    .with_validator(Validator::ListOf {
        allowed: &["uniform", "range"],
        allow_empty: false,
    }),
    key(
        "group.consumer.heartbeat.interval.ms",
        Int,
        Some("5000"),
        "Heartbeat interval for consumer-protocol (KIP-848) group members.",
    )
    .with_validator(at_least(1)),
    key(
        "group.consumer.max.session.timeout.ms",
        Int,
        Some("60000"),
        "Largest session timeout a consumer-protocol group may use.",
    )
    .with_validator(at_least(1)),
    key(
        "group.consumer.max.size",
        Int,
        Some(INT_MAX),
        "Most members one consumer-protocol group may have.",
    )
    .with_validator(at_least(1)),
    key(
        "group.consumer.min.session.timeout.ms",
        Int,
        Some("45000"),
        "Smallest session timeout a consumer-protocol group may use.",
    )
    .with_validator(at_least(1)),
    key(
        "group.consumer.session.timeout.ms",
        Int,
        Some("45000"),
        "Session timeout of consumer-protocol group members.",
    )
    .with_validator(at_least(1)),
    key(
        "group.coordinator.rebalance.protocols",
        List,
        Some("classic,consumer"),
        "The group protocols the coordinator serves.",
    )
    .with_validator(Validator::ListOf {
        allowed: &["classic", "consumer", "share", "streams"],
        allow_empty: false,
    }),
    key(
        "group.initial.rebalance.delay.ms",
        Int,
        Some("3000"),
        "How long the first rebalance of a new classic group waits for more members \
         to join.",
    ),
    key(
        "group.max.session.timeout.ms",
        Int,
        Some("1800000"),
        "Largest session timeout a classic group member may ask for.",
    ),
    key(
        "group.max.size",
        Int,
        Some(INT_MAX),
        "Most members one classic group may have.",
    )
    .with_validator(at_least(1)),
    key(
        "group.min.session.timeout.ms",
        Int,
        Some("6000"),
        "Smallest session timeout a classic group member may ask for.",
    ),
    key(
        "inter.broker.listener.name",
        Str,
        None,
        "The listener brokers use to talk to each other; unset, the first listener.",
    ),
    key(
        "leader.imbalance.check.interval.seconds",
        Long,
        Some("300"),
        "How often preferred-leader balance is checked.",
    )
    .with_validator(at_least(1)),
    key(
        "leader.imbalance.per.broker.percentage",
        Int,
        Some("10"),
        "Share of a broker's partitions led elsewhere that triggers a rebalance.",
    ),
    key(
        "listener.security.protocol.map",
        Str,
        Some("SASL_SSL:SASL_SSL,PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT"),
        "The security protocol of each listener name, as NAME:PROTOCOL pairs.",
    )
    .with_validator(PROTOCOL_MAP)
    .with_update_mode(PerBroker),
    key(
        "listeners",
        Str,
        Some("PLAINTEXT://127.0.0.1:9092"),
        "Where the broker accepts connections, as NAME://host:port entries; an \
         empty host means every interface, port 0 any free port.",
    )
    .with_validator(LISTENERS)
    .with_update_mode(PerBroker),
    key(
        "log.cleaner.backoff.ms",
        Long,
        Some("15000"),
        "How long the cleaner sleeps when no log needs compacting.",
    )
    .with_validator(at_least(0))
    .with_update_mode(ClusterWide),
    key(
        "log.cleaner.dedupe.buffer.size",
        Long,
        Some("134217728"),
        "Memory for the cleaner's key map, across all cleaner threads.",
    )
    .with_update_mode(ClusterWide),
    key(
        "log.cleaner.delete.retention.ms",
        Long,
        Some("86400000"),
        "Default delete.retention.ms for topics.",
    )
    .with_validator(at_least(0))
    .with_update_mode(ClusterWide),
    key(
        "log.cleaner.enable",
        Boolean,
        Some("true"),
        "Whether the log cleaner (compaction) runs.",
    ),
    key(
        "log.cleaner.io.buffer.load.factor",
        Double,
        Some("0.9"),
        "How full the cleaner's key map may get.",
    )
    .with_update_mode(ClusterWide),
    key(
        "log.cleaner.io.buffer.size",
        Int,
        Some("524288"),
        "Memory for the cleaner's read and write buffers.",
    )
    .with_validator(at_least(0))
    .with_update_mode(ClusterWide),
    key(
        "log.cleaner.io.max.bytes.per.second",
        Double,
        Some("1.7976931348623157E308"),
        "Throttle on the cleaner's reads plus writes.",
    )
    .with_update_mode(ClusterWide),
    key(
        "log.cleaner.max.compaction.lag.ms",
        Long,
        Some(LONG_MAX),
        "Default max.compaction.lag.ms for topics.",
    )
    .with_validator(at_least(1))
    .with_update_mode(ClusterWide),
    key(
        "log.cleaner.min.cleanable.ratio",
        Double,
        Some("0.5"),
        "Default min.cleanable.dirty.ratio for topics.",
    )
    .with_validator(Validator::DoubleRange { min: 0.0, max: 1.0 })
    .with_update_mode(ClusterWide),
    key(
        "log.cleaner.min.compaction.lag.ms",
        Long,
        Some("0"),
        "Default min.compaction.lag.ms for topics.",
    )
    .with_validator(at_least(0))
    .with_update_mode(ClusterWide),
    key(
        "log.cleaner.threads",
        Int,
        Some("1"),
        "Threads compacting logs.",
    )
    .with_validator(at_least(0))
    .with_update_mode(ClusterWide),
    key(
        "log.cleanup.policy",
        List,
        Some("delete"),
        "Default cleanup.policy for topics.",
    )
    .with_validator(CLEANUP_POLICY)
    .with_update_mode(ClusterWide),
    key(
        "log.dir",
        Str,
        Some("./runnel-data"),
        "The data directory, used when log.dirs is not set.",
    ),
    key(
        "log.dirs",
        Str,
        None,
        "Data directories, comma-separated; unset means log.dir.",
    ),
    key(
        "log.flush.interval.messages",
        Long,
        Some(LONG_MAX),
        "Default flush.messages for topics.",
    )
    .with_validator(at_least(1))
    .with_update_mode(ClusterWide),
    key(
        "log.flush.interval.ms",
        Long,
        None,
        "Default flush.ms for topics; unset means log.flush.scheduler.interval.ms.",
    )
    .with_update_mode(ClusterWide),
    key(
        "log.flush.offset.checkpoint.interval.ms",
        Int,
        Some("60000"),
        "How often each data directory's recovery points are saved.",
    )
    .with_validator(at_least(0)),
    key(
        "log.flush.scheduler.interval.ms",
        Long,
        Some(LONG_MAX),
        "How often the flusher looks for logs due an fsync.",
    ),
    key(
        "log.flush.start.offset.checkpoint.interval.ms",
        Int,
        Some("60000"),
        "How often each data directory's log start offsets are saved.",
    )
    .with_validator(at_least(0)),
    key(
        "log.index.interval.bytes",
        Int,
        Some("4096"),
        "Default index.interval.bytes for topics.",
    )
    .with_validator(at_least(0))
    .with_update_mode(ClusterWide),
    key(
        "log.index.size.max.bytes",
        Int,
        Some("10485760"),
        "Default segment.index.bytes for topics.",
    )
    .with_validator(at_least(4))
    .with_update_mode(ClusterWide),
    key(
        "log.local.retention.bytes",
        Long,
        Some("-2"),
        "Default local.retention.bytes for topics.",
    )
    .with_validator(at_least(-2))
    .with_update_mode(ClusterWide),
    key(
        "log.local.retention.ms",
        Long,
        Some("-2"),
        "Default local.retention.ms for topics.",
    )
    .with_validator(at_least(-2))
    .with_update_mode(ClusterWide),
    key(
        "log.message.downconversion.enable",
        Boolean,
        Some("true"),
        "Accepted for older tools and ignored: there is nothing to down-convert.",
    )
    .with_update_mode(ClusterWide)
    .as_deprecated(),
    key(
        "log.message.timestamp.after.max.ms",
        Long,
        Some("3600000"),
        "Default message.timestamp.after.max.ms for topics.",
    )
    .with_validator(at_least(0))
    .with_update_mode(ClusterWide),
    key(
        "log.message.timestamp.before.max.ms",
        Long,
        Some(LONG_MAX),
        "Default message.timestamp.before.max.ms for topics.",
    )
    .with_validator(at_least(0))
    .with_update_mode(ClusterWide),
    key(
        "log.message.timestamp.difference.max.ms",
        Long,
        Some(LONG_MAX),
        "Deprecated, removed from Kafka 4: accepted for older configurations.",
    )
    .with_validator(at_least(0))
    .with_update_mode(ClusterWide)
    .as_deprecated(),
    key(
        "log.message.timestamp.type",
        Str,
        Some("CreateTime"),
        "Default message.timestamp.type for topics.",
    )
    .with_validator(Validator::OneOf(TIMESTAMP_TYPES))
    .with_update_mode(ClusterWide),
    key(
        "log.preallocate",
        Boolean,
        Some("false"),
        "Default preallocate for topics.",
    )
    .with_update_mode(ClusterWide),
    key(
        "log.retention.bytes",
        Long,
        Some("-1"),
        "Default retention.bytes for topics.",
    )
    .with_update_mode(ClusterWide),
    key(
        "log.retention.check.interval.ms",
        Long,
        Some("300000"),
        "How often logs are checked for segments past retention.",
    )
    .with_validator(at_least(1)),
    key(
        "log.retention.hours",
        Int,
        Some("168"),
        "Default topic retention in hours; log.retention.minutes and \
         log.retention.ms take precedence.",
    ),
    key(
        "log.retention.minutes",
        Int,
        None,
        "Default topic retention in minutes; log.retention.ms takes precedence.",
    ),
    key(
        "log.retention.ms",
        Long,
        None,
        "Default retention.ms for topics; takes precedence over the minutes and \
         hours forms. -1 means no time limit.",
    )
    .with_update_mode(ClusterWide),
    key(
        "log.roll.hours",
        Int,
        Some("168"),
        "Default segment age in hours; log.roll.ms takes precedence.",
    )
    .with_validator(at_least(1)),
    key(
        "log.roll.jitter.hours",
        Int,
        Some("0"),
        "Default segment jitter in hours; log.roll.jitter.ms takes precedence.",
    )
    .with_validator(at_least(0)),
    key(
        "log.roll.jitter.ms",
        Long,
        None,
        "Default segment.jitter.ms for topics.",
    )
    .with_update_mode(ClusterWide),
    key(
        "log.roll.ms",
        Long,
        None,
        "Default segment.ms for topics; takes precedence over log.roll.hours.",
    )
    .with_update_mode(ClusterWide),
    key(
        "log.segment.bytes",
        Int,
        Some("1073741824"),
        "Default segment.bytes for topics.",
    )
    .with_validator(at_least(1_048_576))
    .with_update_mode(ClusterWide),
    key(
        "log.segment.delete.delay.ms",
        Long,
        Some("60000"),
        "Default file.delete.delay.ms for topics.",
    )
    .with_validator(at_least(0))
    .with_update_mode(ClusterWide),
    key(
        "max.connection.creation.rate",
        Int,
        Some(INT_MAX),
        "Most new connections accepted per second on each listener.",
    )
    .with_validator(at_least(0))
    .with_update_mode(ClusterWide),
    key(
        "max.connections",
        Int,
        Some(INT_MAX),
        "Most connections the broker holds open at once; beyond it new connections \
         are closed.",
    )
    .with_validator(at_least(0))
    .with_update_mode(ClusterWide),
    key(
        "max.connections.per.ip",
        Int,
        Some(INT_MAX),
        "Most connections from one IP address.",
    )
    .with_validator(at_least(0))
    .with_update_mode(ClusterWide),
    key(
        "max.connections.per.ip.overrides",
        Str,
        Some(""),
        "Per-host exceptions to max.connections.per.ip, as host:count pairs.",
    )
    .with_validator(CONNECTION_OVERRIDES)
    .with_update_mode(ClusterWide),
    key(
        "max.incremental.fetch.session.cache.slots",
        Int,
        Some("1000"),
        "Most incremental fetch sessions the broker keeps.",
    )
    .with_validator(at_least(0)),
    key(
        "message.max.bytes",
        Int,
        Some("1048588"),
        "Default max.message.bytes for topics: the largest record batch accepted.",
    )
    .with_validator(at_least(0))
    .with_update_mode(ClusterWide),
    key(
        "metadata.log.dir",
        Str,
        None,
        "Where the metadata log lives; unset means the first data directory.",
    ),
    key(
        "metadata.log.max.record.bytes.between.snapshots",
        Long,
        Some("20971520"),
        "Metadata log bytes appended before a new snapshot is taken.",
    )
    .with_validator(at_least(1)),
    key(
        "metadata.log.segment.bytes",
        Int,
        Some("1073741824"),
        "Segment size of the metadata log.",
    )
    .with_validator(at_least(8_388_608)),
    key(
        "metadata.log.segment.ms",
        Long,
        Some("604800000"),
        "Segment age of the metadata log.",
    ),
    key(
        "metadata.max.idle.interval.ms",
        Int,
        Some("500"),
        "How often the active controller writes a no-op record when idle.",
    )
    .with_validator(at_least(0)),
    key(
        "metadata.max.retention.bytes",
        Long,
        Some("104857600"),
        "Metadata log bytes kept once covered by a snapshot.",
    ),
    key(
        "metadata.max.retention.ms",
        Long,
        Some("604800000"),
        "How long metadata log segments are kept once covered by a snapshot.",
    ),
    key(
        "min.insync.replicas",
        Int,
        Some("1"),
        "Default min.insync.replicas for topics.",
    )
    .with_validator(at_least(1))
    .with_update_mode(ClusterWide),
    key(
        "node.id",
        Int,
        Some("0"),
        "This node's id, unique in the cluster.",
    )
    .with_validator(at_least(0)),
    key(
        "num.io.threads",
        Int,
        Some("8"),
        "Accepted for compatibility; Runnel sizes its async runtime itself.",
    )
    .with_validator(at_least(1))
    .with_update_mode(ClusterWide),
    key(
        "num.network.threads",
        Int,
        Some("3"),
        "Accepted for compatibility; Runnel sizes its async runtime itself.",
    )
    .with_validator(at_least(1))
    .with_update_mode(ClusterWide),
    key(
        "num.partitions",
        Int,
        Some("1"),
        "Partition count of automatically created topics and of CreateTopics \
         requests that leave it to the broker.",
    )
    .with_validator(at_least(1)),
    key(
        "num.recovery.threads.per.data.dir",
        Int,
        Some("2"),
        "Threads per data directory recovering logs at startup.",
    )
    .with_validator(at_least(1))
    .with_update_mode(ClusterWide),
    key(
        "num.replica.fetchers",
        Int,
        Some("1"),
        "Fetcher tasks per source broker replicating partitions.",
    )
    .with_update_mode(ClusterWide),
    key(
        "offset.metadata.max.bytes",
        Int,
        Some("4096"),
        "Largest metadata string an offset commit may carry.",
    ),
    key(
        "offsets.commit.timeout.ms",
        Int,
        Some("5000"),
        "How long an offset commit waits for its write to be replicated.",
    )
    .with_validator(at_least(1)),
    key(
        "offsets.load.buffer.size",
        Int,
        Some("5242880"),
        "Read size when loading group state from __consumer_offsets.",
    )
    .with_validator(at_least(1)),
    key(
        "offsets.retention.check.interval.ms",
        Long,
        Some("600000"),
        "How often expired committed offsets are removed.",
    )
    .with_validator(at_least(1)),
    key(
        "offsets.retention.minutes",
        Int,
        Some("10080"),
        "How long committed offsets of an empty group are kept.",
    )
    .with_validator(at_least(1)),
    key(
        "offsets.topic.compression.codec",
        Int,
        Some("0"),
        "Codec of __consumer_offsets batches (0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd).",
    ),
    key(
        "offsets.topic.num.partitions",
        Int,
        Some("50"),
        "Partition count of __consumer_offsets; fixed once the topic exists.",
    )
    .with_validator(at_least(1)),
    key(
        "offsets.topic.replication.factor",
        Short,
        Some("3"),
        "Replication factor of __consumer_offsets; a cluster of fewer brokers gets one replica per broker.",
    )
    .with_validator(at_least(1)),
    key(
        "offsets.topic.segment.bytes",
        Int,
        Some("104857600"),
        "Segment size of __consumer_offsets.",
    )
    .with_validator(at_least(1)),
    key(
        "process.roles",
        List,
        Some("broker,controller"),
        "What this node runs: broker, controller, or both (combined mode).",
    )
    .with_validator(Validator::ListOf {
        allowed: &["broker", "controller"],
        allow_empty: false,
    }),
    key(
        "producer.id.expiration.check.interval.ms",
        Int,
        Some("600000"),
        "How often idle producer ids are expired.",
    )
    .with_validator(at_least(1)),
    key(
        "producer.id.expiration.ms",
        Int,
        Some("86400000"),
        "How long a producer id's state is kept after its last write.",
    )
    .with_validator(at_least(1))
    .with_update_mode(ClusterWide),
    key(
        "queued.max.request.bytes",
        Long,
        Some("-1"),
        "Most bytes of requests queued before reading stops; -1 means no bound.",
    ),
    key(
        "queued.max.requests",
        Int,
        Some("500"),
        "Most requests queued before the broker stops reading from connections.",
    )
    .with_validator(at_least(1)),
    key(
        "remote.log.storage.system.enable",
        Boolean,
        Some("false"),
        "Whether tiered storage is available to topics.",
    ),
    key(
        "replica.fetch.backoff.ms",
        Int,
        Some("1000"),
        "How long a follower waits after a fetch error.",
    )
    .with_validator(at_least(0)),
    key(
        "replica.fetch.max.bytes",
        Int,
        Some("1048576"),
        "Bytes a follower asks for per partition (at least one batch is always \
         returned).",
    )
    .with_validator(at_least(0)),
    key(
        "replica.fetch.min.bytes",
        Int,
        Some("1"),
        "Bytes a follower's fetch waits for.",
    ),
    key(
        "replica.fetch.response.max.bytes",
        Int,
        Some("10485760"),
        "Bytes a follower asks for per fetch.",
    )
    .with_validator(at_least(0)),
    key(
        "replica.fetch.wait.max.ms",
        Int,
        Some("500"),
        "How long a follower's fetch waits for replica.fetch.min.bytes.",
    ),
    key(
        "replica.high.watermark.checkpoint.interval.ms",
        Long,
        Some("5000"),
        "How often high watermarks are saved to disk.",
    ),
    key(
        "replica.lag.time.max.ms",
        Long,
        Some("30000"),
        "A follower that has not caught up for this long leaves the in-sync set.",
    ),
    key(
        "replica.socket.receive.buffer.bytes",
        Int,
        Some("65536"),
        "Socket receive buffer of follower fetch connections.",
    ),
    key(
        "replica.socket.timeout.ms",
        Int,
        Some("30000"),
        "Socket timeout of follower fetch connections.",
    ),
    key(
        "sasl.enabled.mechanisms",
        List,
        Some("GSSAPI"),
        "SASL mechanisms offered to clients.",
    )
    .with_update_mode(PerBroker),
    key(
        "sasl.mechanism.inter.broker.protocol",
        Str,
        Some("GSSAPI"),
        "SASL mechanism brokers use with each other.",
    )
    .with_update_mode(PerBroker),
    key(
        "security.inter.broker.protocol",
        Str,
        Some("PLAINTEXT"),
        "Security protocol between brokers when inter.broker.listener.name is unset.",
    )
    .with_validator(Validator::OneOf(&[
        "PLAINTEXT",
        "SSL",
        "SASL_PLAINTEXT",
        "SASL_SSL",
    ])),
    key(
        "socket.listen.backlog.size",
        Int,
        Some("50"),
        "Pending-connection queue length of each listening socket.",
    )
    .with_validator(at_least(1)),
    key(
        "socket.receive.buffer.bytes",
        Int,
        Some("102400"),
        "Socket receive buffer of client connections; -1 keeps the OS default.",
    ),
    key(
        "socket.request.max.bytes",
        Int,
        Some("104857600"),
        "Largest request frame accepted; a larger size prefix closes the connection.",
    )
    .with_validator(at_least(1)),
    key(
        "socket.request.read.timeout.ms",
        Long,
        Some("30000"),
        "Runnel only (Kafka has no such bound): the longest a request frame may take \
         to arrive once its first byte has, so a client trickling bytes (slow loris) \
         cannot hold a connection open. connections.max.idle.ms bounds the wait \
         between requests. The default matches clients' request.timeout.ms, after \
         which a client gives up on the request anyway.",
    )
    .with_validator(at_least(1)),
    key(
        "socket.send.buffer.bytes",
        Int,
        Some("102400"),
        "Socket send buffer of client connections; -1 keeps the OS default.",
    ),
    key(
        "ssl.client.auth",
        Str,
        Some("none"),
        "Whether TLS listeners ask for client certificates.",
    )
    .with_validator(Validator::OneOf(&["required", "requested", "none"]))
    .with_update_mode(PerBroker),
    key(
        "ssl.enabled.protocols",
        List,
        Some("TLSv1.2,TLSv1.3"),
        "TLS versions TLS listeners accept.",
    )
    .with_update_mode(PerBroker),
    key(
        "ssl.key.password",
        Password,
        None,
        "Password of the private key in the key store.",
    )
    .with_update_mode(PerBroker),
    key(
        "ssl.keystore.location",
        Str,
        None,
        "Path of the key store holding the broker's certificate.",
    )
    .with_update_mode(PerBroker),
    key(
        "ssl.keystore.password",
        Password,
        None,
        "Password of the key store.",
    )
    .with_update_mode(PerBroker),
    key(
        "ssl.keystore.type",
        Str,
        Some("JKS"),
        "Format of the key store (PEM, PKCS12, JKS).",
    )
    .with_update_mode(PerBroker),
    key(
        "ssl.truststore.location",
        Str,
        None,
        "Path of the trust store used to verify client certificates.",
    )
    .with_update_mode(PerBroker),
    key(
        "ssl.truststore.password",
        Password,
        None,
        "Password of the trust store.",
    )
    .with_update_mode(PerBroker),
    key(
        "ssl.truststore.type",
        Str,
        Some("JKS"),
        "Format of the trust store (PEM, PKCS12, JKS).",
    )
    .with_update_mode(PerBroker),
    key(
        "transaction.abort.timed.out.transaction.cleanup.interval.ms",
        Int,
        Some("10000"),
        "How often transactions past their timeout are aborted.",
    )
    .with_validator(at_least(1)),
    key(
        "transaction.max.timeout.ms",
        Int,
        Some("900000"),
        "Largest transaction timeout a producer may ask for.",
    )
    .with_validator(at_least(1)),
    key(
        "transaction.remove.expired.transaction.cleanup.interval.ms",
        Int,
        Some("3600000"),
        "How often expired transactional ids are removed.",
    )
    .with_validator(at_least(1)),
    key(
        "transaction.state.log.load.buffer.size",
        Int,
        Some("5242880"),
        "Read size when loading transaction state from __transaction_state.",
    )
    .with_validator(at_least(1)),
    key(
        "transaction.state.log.min.isr",
        Int,
        Some("1"),
        "min.insync.replicas of __transaction_state.",
    )
    .with_validator(at_least(1)),
    key(
        "transaction.state.log.num.partitions",
        Int,
        Some("50"),
        "Partition count of __transaction_state; fixed once the topic exists.",
    )
    .with_validator(at_least(1)),
    key(
        "transaction.state.log.replication.factor",
        Short,
        Some("1"),
        "Replication factor of __transaction_state.",
    )
    .with_validator(at_least(1)),
    key(
        "transaction.state.log.segment.bytes",
        Int,
        Some("104857600"),
        "Segment size of __transaction_state.",
    )
    .with_validator(at_least(1)),
    key(
        "transactional.id.expiration.ms",
        Int,
        Some("604800000"),
        "How long a transactional id with no transaction activity is remembered.",
    )
    .with_validator(at_least(1)),
    key(
        "unclean.leader.election.enable",
        Boolean,
        Some("false"),
        "Default unclean.leader.election.enable for topics.",
    )
    .with_update_mode(ClusterWide),
];

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_and_unique() {
        let names: Vec<&str> = BROKER_CONFIGS.iter().map(|d| d.name).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(names, sorted);
    }

    #[test]
    fn connection_overrides_parse() {
        assert_eq!(
            parse_connection_overrides("host1:5, 10.0.0.1:7").unwrap(),
            vec![("host1".to_string(), 5), ("10.0.0.1".to_string(), 7)]
        );
        assert!(parse_connection_overrides("host1").is_err());
        assert!(parse_connection_overrides("host1:-1").is_err());
        assert!(parse_connection_overrides("").unwrap().is_empty());
    }
}
