//! Typed getters of [`BrokerConfig`]: the values the broker's components
//! read, with Kafka's precedence rules between related keys already applied.
//! Each returns the current value (dynamic updates included). Durations are
//! `i64` milliseconds whatever Kafka's declared width; counts and sizes keep
//! Kafka's `int` (`i32`) or `short` (`i16`).

use std::path::PathBuf;

use super::broker::BrokerConfig;
use super::broker_defs::parse_connection_overrides;
use super::listener::{parse_listeners, parse_protocol_map, Listener};
use super::topic_settings::{CleanupPolicy, CompressionType, TimestampType};
use crate::BrokerId;

/// What a node runs (`process.roles`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ProcessRoles {
    /// Serves clients and hosts partitions.
    pub broker: bool,
    /// Takes part in the metadata quorum.
    pub controller: bool,
}

macro_rules! getters {
    ($($(#[$doc:meta])* $getter:ident: $kind:ident = $key:literal;)*) => {
        impl BrokerConfig {
            $(
                $(#[$doc])*
                #[doc = concat!("\n\nThe value of `", $key, "`.")]
                pub fn $getter(&self) -> getters!(@type $kind) {
                    getters!(@read self, $kind, $key)
                }
            )*
        }
    };
    (@type int) => { i32 };
    (@type short) => { i16 };
    (@type ms) => { i64 };
    (@type long) => { i64 };
    (@type bool) => { bool };
    (@read $self:ident, int, $key:literal) => { $self.int($key) };
    (@read $self:ident, short, $key:literal) => { $self.short($key) };
    (@read $self:ident, ms, $key:literal) => { $self.long($key) };
    (@read $self:ident, long, $key:literal) => { $self.long($key) };
    (@read $self:ident, bool, $key:literal) => { $self.boolean($key) };
}

getters! {
    /// Partitions of topics created without a partition count.
    num_partitions: int = "num.partitions";
    /// Replication factor of topics created without one.
    default_replication_factor: int = "default.replication.factor";
    /// Whether Metadata requests create missing topics.
    auto_create_topics_enable: bool = "auto.create.topics.enable";
    /// Whether DeleteTopics is allowed.
    delete_topic_enable: bool = "delete.topic.enable";
    /// Default `retention.bytes`.
    log_retention_bytes: long = "log.retention.bytes";
    /// Default `segment.bytes`.
    log_segment_bytes: int = "log.segment.bytes";
    /// How often retention is enforced.
    log_retention_check_interval_ms: ms = "log.retention.check.interval.ms";
    /// Default `flush.messages`.
    log_flush_interval_messages: long = "log.flush.interval.messages";
    /// How often the flusher runs.
    log_flush_scheduler_interval_ms: ms = "log.flush.scheduler.interval.ms";
    /// How often recovery points are checkpointed.
    log_flush_offset_checkpoint_interval_ms: ms = "log.flush.offset.checkpoint.interval.ms";
    /// How often log start offsets are checkpointed.
    log_flush_start_offset_checkpoint_interval_ms: ms = "log.flush.start.offset.checkpoint.interval.ms";
    /// Default `index.interval.bytes`.
    log_index_interval_bytes: int = "log.index.interval.bytes";
    /// Default `segment.index.bytes`.
    log_index_size_max_bytes: int = "log.index.size.max.bytes";
    /// Default `file.delete.delay.ms`.
    log_segment_delete_delay_ms: ms = "log.segment.delete.delay.ms";
    /// Default `preallocate`.
    log_preallocate: bool = "log.preallocate";
    /// Whether the compaction cleaner runs.
    log_cleaner_enable: bool = "log.cleaner.enable";
    /// Cleaner threads.
    log_cleaner_threads: int = "log.cleaner.threads";
    /// Cleaner idle sleep.
    log_cleaner_backoff_ms: ms = "log.cleaner.backoff.ms";
    /// Cleaner key-map memory.
    log_cleaner_dedupe_buffer_size: long = "log.cleaner.dedupe.buffer.size";
    /// Default `max.message.bytes`: the largest batch accepted.
    message_max_bytes: int = "message.max.bytes";
    /// Default `min.insync.replicas`.
    min_insync_replicas: int = "min.insync.replicas";
    /// Default `unclean.leader.election.enable`.
    unclean_leader_election_enable: bool = "unclean.leader.election.enable";
    /// Largest request frame accepted.
    socket_request_max_bytes: int = "socket.request.max.bytes";
    /// Longest a started request frame may take to arrive (Runnel only).
    socket_request_read_timeout_ms: ms = "socket.request.read.timeout.ms";
    /// Client socket send buffer (-1: OS default).
    socket_send_buffer_bytes: int = "socket.send.buffer.bytes";
    /// Client socket receive buffer (-1: OS default).
    socket_receive_buffer_bytes: int = "socket.receive.buffer.bytes";
    /// Listen backlog.
    socket_listen_backlog_size: int = "socket.listen.backlog.size";
    /// Most open connections.
    max_connections: int = "max.connections";
    /// Most open connections per IP address.
    max_connections_per_ip: int = "max.connections.per.ip";
    /// Most new connections per second per listener.
    max_connection_creation_rate: int = "max.connection.creation.rate";
    /// Idle connection timeout.
    connections_max_idle_ms: ms = "connections.max.idle.ms";
    /// SASL re-authentication bound (0: never).
    connections_max_reauth_ms: ms = "connections.max.reauth.ms";
    /// Most requests queued before reading stops.
    queued_max_requests: int = "queued.max.requests";
    /// Most request bytes queued (-1: unbounded).
    queued_max_request_bytes: long = "queued.max.request.bytes";
    /// Informational: Kafka's I/O thread count.
    num_io_threads: int = "num.io.threads";
    /// Informational: Kafka's network thread count.
    num_network_threads: int = "num.network.threads";
    /// Replica fetcher tasks per source broker.
    num_replica_fetchers: int = "num.replica.fetchers";
    /// Background threads.
    background_threads: int = "background.threads";
    /// Log recovery threads per data directory.
    num_recovery_threads_per_data_dir: int = "num.recovery.threads.per.data.dir";
    /// Bound on one Fetch response.
    fetch_max_bytes: int = "fetch.max.bytes";
    /// Incremental fetch session cache size.
    max_incremental_fetch_session_cache_slots: int = "max.incremental.fetch.session.cache.slots";
    /// Follower fetch bytes per partition.
    replica_fetch_max_bytes: int = "replica.fetch.max.bytes";
    /// Follower fetch bytes per request.
    replica_fetch_response_max_bytes: int = "replica.fetch.response.max.bytes";
    /// Follower fetch minimum bytes.
    replica_fetch_min_bytes: int = "replica.fetch.min.bytes";
    /// Follower fetch wait.
    replica_fetch_wait_max_ms: ms = "replica.fetch.wait.max.ms";
    /// Follower back-off after an error.
    replica_fetch_backoff_ms: ms = "replica.fetch.backoff.ms";
    /// How long a lagging follower stays in the ISR.
    replica_lag_time_max_ms: ms = "replica.lag.time.max.ms";
    /// Follower connection socket timeout.
    replica_socket_timeout_ms: ms = "replica.socket.timeout.ms";
    /// High watermark checkpoint interval.
    replica_high_watermark_checkpoint_interval_ms: ms = "replica.high.watermark.checkpoint.interval.ms";
    /// How long idle producer state is kept.
    producer_id_expiration_ms: ms = "producer.id.expiration.ms";
    /// How often idle producer state is expired.
    producer_id_expiration_check_interval_ms: ms = "producer.id.expiration.check.interval.ms";
    /// How long an idle transactional id is kept.
    transactional_id_expiration_ms: ms = "transactional.id.expiration.ms";
    /// Largest transaction timeout.
    transaction_max_timeout_ms: ms = "transaction.max.timeout.ms";
    /// How often timed-out transactions are aborted.
    transaction_abort_timed_out_transaction_cleanup_interval_ms: ms = "transaction.abort.timed.out.transaction.cleanup.interval.ms";
    /// How often expired transactional ids are removed.
    transaction_remove_expired_transaction_cleanup_interval_ms: ms = "transaction.remove.expired.transaction.cleanup.interval.ms";
    /// Partitions of `__transaction_state`.
    transaction_state_log_num_partitions: int = "transaction.state.log.num.partitions";
    /// Replication factor of `__transaction_state`.
    transaction_state_log_replication_factor: short = "transaction.state.log.replication.factor";
    /// `min.insync.replicas` of `__transaction_state`.
    transaction_state_log_min_isr: int = "transaction.state.log.min.isr";
    /// Segment size of `__transaction_state`.
    transaction_state_log_segment_bytes: int = "transaction.state.log.segment.bytes";
    /// Partitions of `__consumer_offsets`.
    offsets_topic_num_partitions: int = "offsets.topic.num.partitions";
    /// Replication factor of `__consumer_offsets`.
    offsets_topic_replication_factor: short = "offsets.topic.replication.factor";
    /// Segment size of `__consumer_offsets`.
    offsets_topic_segment_bytes: int = "offsets.topic.segment.bytes";
    /// Retention of an empty group's offsets, in minutes.
    offsets_retention_minutes: int = "offsets.retention.minutes";
    /// How often expired offsets are removed.
    offsets_retention_check_interval_ms: ms = "offsets.retention.check.interval.ms";
    /// Offset commit replication timeout.
    offsets_commit_timeout_ms: ms = "offsets.commit.timeout.ms";
    /// Largest offset commit metadata.
    offset_metadata_max_bytes: int = "offset.metadata.max.bytes";
    /// First-rebalance delay of new classic groups.
    group_initial_rebalance_delay_ms: ms = "group.initial.rebalance.delay.ms";
    /// Smallest classic session timeout.
    group_min_session_timeout_ms: ms = "group.min.session.timeout.ms";
    /// Largest classic session timeout.
    group_max_session_timeout_ms: ms = "group.max.session.timeout.ms";
    /// Largest classic group.
    group_max_size: int = "group.max.size";
    /// Consumer-protocol heartbeat interval.
    group_consumer_heartbeat_interval_ms: ms = "group.consumer.heartbeat.interval.ms";
    /// Consumer-protocol session timeout.
    group_consumer_session_timeout_ms: ms = "group.consumer.session.timeout.ms";
    /// Most members of one consumer-protocol group.
    group_consumer_max_size: int = "group.consumer.max.size";
    /// Smallest consumer-protocol session timeout.
    group_consumer_min_session_timeout_ms: ms = "group.consumer.min.session.timeout.ms";
    /// Largest consumer-protocol session timeout.
    group_consumer_max_session_timeout_ms: ms = "group.consumer.max.session.timeout.ms";
    /// Broker heartbeat interval.
    broker_heartbeat_interval_ms: ms = "broker.heartbeat.interval.ms";
    /// Broker session timeout (fencing).
    broker_session_timeout_ms: ms = "broker.session.timeout.ms";
    /// Whether preferred leaders are restored automatically.
    auto_leader_rebalance_enable: bool = "auto.leader.rebalance.enable";
    /// Preferred-leader check interval, in seconds.
    leader_imbalance_check_interval_seconds: long = "leader.imbalance.check.interval.seconds";
    /// Imbalance percentage that triggers leader rebalance.
    leader_imbalance_per_broker_percentage: int = "leader.imbalance.per.broker.percentage";
    /// Whether tiered storage is available.
    remote_log_storage_system_enable: bool = "remote.log.storage.system.enable";
    /// Metadata log snapshot interval in bytes.
    metadata_log_max_record_bytes_between_snapshots: long = "metadata.log.max.record.bytes.between.snapshots";
    /// Metadata log segment size.
    metadata_log_segment_bytes: int = "metadata.log.segment.bytes";
    /// Metadata log retention in bytes.
    metadata_max_retention_bytes: long = "metadata.max.retention.bytes";
    /// Metadata log retention.
    metadata_max_retention_ms: ms = "metadata.max.retention.ms";
}

impl BrokerConfig {
    /// This node's id (`node.id`).
    pub fn node_id(&self) -> BrokerId {
        BrokerId(self.int("node.id"))
    }

    /// What this node runs (`process.roles`).
    pub fn process_roles(&self) -> ProcessRoles {
        let roles = self.list("process.roles");
        ProcessRoles {
            broker: roles.iter().any(|r| r == "broker"),
            controller: roles.iter().any(|r| r == "controller"),
        }
    }

    /// Where the broker accepts connections (`listeners`).
    pub fn listeners(&self) -> Vec<Listener> {
        self.get("listeners")
            .and_then(|text| parse_listeners(&text).ok())
            .unwrap_or_default()
    }

    /// What clients are told to connect to (`advertised.listeners`, else
    /// `listeners`). A listener bound to every interface (empty host) is
    /// returned as is: the caller substitutes a routable host.
    pub fn advertised_listeners(&self) -> Vec<Listener> {
        match self.get("advertised.listeners") {
            Some(text) => parse_listeners(&text).unwrap_or_default(),
            None => self.listeners(),
        }
    }

    /// The security protocol of a listener name, from
    /// `listener.security.protocol.map` (names compare case-insensitively).
    pub fn listener_security_protocol(&self, listener_name: &str) -> Option<String> {
        let map = parse_protocol_map(&self.get("listener.security.protocol.map")?).ok()?;
        let wanted = listener_name.to_ascii_uppercase();
        map.into_iter()
            .find(|(name, _)| *name == wanted)
            .map(|(_, protocol)| protocol)
    }

    /// The listener brokers use between themselves (`inter.broker.listener.name`),
    /// upper-cased; `None` when unset.
    pub fn inter_broker_listener_name(&self) -> Option<String> {
        self.text("inter.broker.listener.name")
            .filter(|name| !name.is_empty())
            .map(|name| name.to_ascii_uppercase())
    }

    /// The controller quorum's listener names (`controller.listener.names`).
    pub fn controller_listener_names(&self) -> Vec<String> {
        self.text("controller.listener.names")
            .map(|text| {
                super::value::split_list(&text)
                    .into_iter()
                    .map(|name| name.to_ascii_uppercase())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The static quorum (`controller.quorum.voters`).
    pub fn controller_quorum_voters(&self) -> Vec<String> {
        self.list("controller.quorum.voters")
    }

    /// Controllers to bootstrap from (`controller.quorum.bootstrap.servers`).
    pub fn controller_quorum_bootstrap_servers(&self) -> Vec<String> {
        self.list("controller.quorum.bootstrap.servers")
    }

    /// The data directories: `log.dirs` if set, else `log.dir`.
    pub fn log_dirs(&self) -> Vec<PathBuf> {
        let text = self
            .text("log.dirs")
            .or_else(|| self.text("log.dir"))
            .unwrap_or_default();
        super::value::split_list(&text)
            .into_iter()
            .filter(|dir| !dir.is_empty())
            .map(PathBuf::from)
            .collect()
    }

    /// The first data directory (where a single-directory broker keeps
    /// everything).
    pub fn log_dir(&self) -> PathBuf {
        self.log_dirs()
            .into_iter()
            .next()
            .unwrap_or_else(|| PathBuf::from("./runnel-data"))
    }

    /// Where the metadata log lives: `metadata.log.dir`, else the first data
    /// directory.
    pub fn metadata_log_dir(&self) -> PathBuf {
        self.text("metadata.log.dir")
            .map(PathBuf::from)
            .unwrap_or_else(|| self.log_dir())
    }

    /// Default topic retention in milliseconds: `log.retention.ms`, else
    /// `log.retention.minutes`, else `log.retention.hours`; any negative value
    /// means unlimited and is returned as -1.
    pub fn log_retention_ms(&self) -> i64 {
        let ms = self.millis_of(&[
            ("log.retention.ms", 1),
            ("log.retention.minutes", 60_000),
            ("log.retention.hours", 3_600_000),
        ]);
        if ms < 0 {
            -1
        } else {
            ms
        }
    }

    /// Default segment age: `log.roll.ms`, else `log.roll.hours`.
    pub fn log_roll_ms(&self) -> i64 {
        self.millis_of(&[("log.roll.ms", 1), ("log.roll.hours", 3_600_000)])
    }

    /// Default segment jitter: `log.roll.jitter.ms`, else
    /// `log.roll.jitter.hours`.
    pub fn log_roll_jitter_ms(&self) -> i64 {
        self.millis_of(&[
            ("log.roll.jitter.ms", 1),
            ("log.roll.jitter.hours", 3_600_000),
        ])
    }

    /// Default `flush.ms`: `log.flush.interval.ms`, else
    /// `log.flush.scheduler.interval.ms`.
    pub fn log_flush_interval_ms(&self) -> i64 {
        self.millis_of(&[
            ("log.flush.interval.ms", 1),
            ("log.flush.scheduler.interval.ms", 1),
        ])
    }

    /// The first key of `keys` with a value at any level, times its unit; keys
    /// with null defaults are skipped until one with a default is reached.
    fn millis_of(&self, keys: &[(&str, i64)]) -> i64 {
        keys.iter()
            .find(|(key, _)| self.is_set(key))
            .or_else(|| keys.iter().find(|(key, _)| self.value(key).is_some()))
            .map(|(key, unit)| self.long(key).saturating_mul(*unit))
            .unwrap_or_default()
    }

    /// Default `message.timestamp.type`.
    pub fn log_message_timestamp_type(&self) -> TimestampType {
        self.text("log.message.timestamp.type")
            .and_then(|name| name.parse().ok())
            .unwrap_or_default()
    }

    /// Default `cleanup.policy`.
    pub fn log_cleanup_policy(&self) -> CleanupPolicy {
        CleanupPolicy::from_list(&self.list("log.cleanup.policy"))
    }

    /// Default `compression.type`.
    pub fn compression_type(&self) -> CompressionType {
        self.text("compression.type")
            .and_then(|name| name.parse().ok())
            .unwrap_or_default()
    }

    /// Per-host exceptions to `max.connections.per.ip`.
    pub fn max_connections_per_ip_overrides(&self) -> Vec<(String, i32)> {
        self.text("max.connections.per.ip.overrides")
            .and_then(|text| parse_connection_overrides(&text).ok())
            .unwrap_or_default()
    }

    /// Retention of an empty group's offsets in milliseconds.
    pub fn offsets_retention_ms(&self) -> i64 {
        i64::from(self.offsets_retention_minutes()).saturating_mul(60_000)
    }

    /// The group protocols served (`group.coordinator.rebalance.protocols`).
    pub fn group_coordinator_rebalance_protocols(&self) -> Vec<String> {
        self.list("group.coordinator.rebalance.protocols")
    }

    /// Server-side assignors of consumer-protocol groups
    /// (`group.consumer.assignors`); the first is the default.
    pub fn group_consumer_assignors(&self) -> Vec<String> {
        self.list("group.consumer.assignors")
    }

    /// This broker's rack, if set (`broker.rack`).
    pub fn broker_rack(&self) -> Option<String> {
        self.text("broker.rack")
    }

    /// SASL mechanisms offered to clients (`sasl.enabled.mechanisms`).
    pub fn sasl_enabled_mechanisms(&self) -> Vec<String> {
        self.list("sasl.enabled.mechanisms")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn getters_read_kafka_defaults() {
        let config = BrokerConfig::default();
        assert_eq!(config.node_id(), BrokerId(0));
        assert_eq!(
            config.process_roles(),
            ProcessRoles {
                broker: true,
                controller: true
            }
        );
        assert_eq!(config.log_dir(), PathBuf::from("./runnel-data"));
        assert_eq!(config.metadata_log_dir(), PathBuf::from("./runnel-data"));
        assert_eq!(config.num_partitions(), 1);
        assert!(config.auto_create_topics_enable());
        assert_eq!(config.log_retention_ms(), 604_800_000);
        assert_eq!(config.log_roll_ms(), 604_800_000);
        assert_eq!(config.log_roll_jitter_ms(), 0);
        assert_eq!(config.log_flush_interval_ms(), i64::MAX);
        assert_eq!(config.log_flush_interval_messages(), i64::MAX);
        assert_eq!(config.log_segment_bytes(), 1_073_741_824);
        assert_eq!(config.message_max_bytes(), 1_048_588);
        assert_eq!(config.socket_request_max_bytes(), 104_857_600);
        assert_eq!(config.max_connections(), i32::MAX);
        assert_eq!(config.queued_max_requests(), 500);
        assert_eq!(config.log_retention_check_interval_ms(), 300_000);
        assert_eq!(config.producer_id_expiration_ms(), 86_400_000);
        assert_eq!(config.transactional_id_expiration_ms(), 604_800_000);
        assert_eq!(config.offsets_topic_replication_factor(), 3);
        assert_eq!(config.offsets_retention_ms(), 10_080 * 60_000);
        assert_eq!(
            config.log_message_timestamp_type(),
            TimestampType::CreateTime
        );
        assert_eq!(config.log_cleanup_policy(), CleanupPolicy::default());
        assert_eq!(config.compression_type(), CompressionType::Producer);
        assert_eq!(config.broker_rack(), None);
        assert!(config.max_connections_per_ip_overrides().is_empty());
        assert_eq!(
            config.group_coordinator_rebalance_protocols(),
            vec!["classic".to_string(), "consumer".to_string()]
        );
        assert_eq!(
            config.listener_security_protocol("plaintext").as_deref(),
            Some("PLAINTEXT")
        );
        assert_eq!(config.inter_broker_listener_name(), None);
    }

    #[test]
    fn flush_interval_falls_back_to_the_scheduler() {
        let config = BrokerConfig::load(super::super::broker::ConfigSources {
            overrides: vec![("log.flush.scheduler.interval.ms".into(), "250".into())],
            ..Default::default()
        })
        .unwrap();
        assert_eq!(config.log_flush_interval_ms(), 250);
    }
}
