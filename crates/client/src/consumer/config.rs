//! The consumer's settings, named after the Java client's (`fetch.max.bytes`,
//! `auto.offset.reset`, ...).

use std::time::Duration;

use crate::config::ClientConfig;
use crate::consumer::member::{AssignmentStrategy, GroupProtocol, MemberConfig};
use crate::error::{Error, Result};

/// Where to start a partition that has no committed offset, or whose position is
/// out of range (`auto.offset.reset`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OffsetReset {
    /// The log start offset.
    Earliest,
    /// The end of the log: only records produced from now on.
    #[default]
    Latest,
    /// Fail: [`crate::consumer::Consumer::recv`] returns the error and the partition
    /// waits for a `seek`.
    None,
}

/// Which records a fetch may return (`isolation.level`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IsolationLevel {
    /// Everything up to the high watermark, including records of open or aborted
    /// transactions.
    #[default]
    ReadUncommitted,
    /// Only up to the last stable offset; records of aborted transactions are skipped.
    ReadCommitted,
}

impl IsolationLevel {
    /// The Fetch and ListOffsets `isolation_level` field.
    pub(crate) fn wire(self) -> i8 {
        match self {
            IsolationLevel::ReadUncommitted => 0,
            IsolationLevel::ReadCommitted => 1,
        }
    }
}

/// Consumer settings over the shared [`ClientConfig`]. Defaults are the Java client's.
///
/// ```
/// use runnel_client::consumer::{ConsumerConfig, OffsetReset};
/// let config = ConsumerConfig::new("127.0.0.1:9092")
///     .group_id("billing")
///     .auto_offset_reset(OffsetReset::Earliest)
///     .set("fetch.max.wait.ms", "100")
///     .unwrap();
/// assert_eq!(config.fetch_max_wait.as_millis(), 100);
/// assert!(config.enable_auto_commit);
/// ```
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    /// Connection settings.
    pub client: ClientConfig,
    /// `group.id`; needed for `subscribe` and for commits.
    pub group_id: Option<String>,
    /// `group.instance.id` (static membership).
    pub group_instance_id: Option<String>,
    /// `group.protocol`: classic or consumer (KIP-848).
    pub group_protocol: GroupProtocol,
    /// `partition.assignment.strategy` (classic protocol).
    pub partition_assignment_strategy: AssignmentStrategy,
    /// `group.remote.assignor` (KIP-848 protocol).
    pub group_remote_assignor: Option<String>,
    /// `session.timeout.ms` (45 s).
    pub session_timeout: Duration,
    /// `heartbeat.interval.ms` (3 s).
    pub heartbeat_interval: Duration,
    /// `max.poll.interval.ms` (5 min), the rebalance timeout.
    pub max_poll_interval: Duration,
    /// `enable.auto.commit` (true when a group is set).
    pub enable_auto_commit: bool,
    /// `auto.commit.interval.ms` (5 s).
    pub auto_commit_interval: Duration,
    /// `auto.offset.reset` (latest).
    pub auto_offset_reset: OffsetReset,
    /// `fetch.min.bytes` (1).
    pub fetch_min_bytes: i32,
    /// `fetch.max.bytes` (50 MiB) per Fetch response.
    pub fetch_max_bytes: i32,
    /// `max.partition.fetch.bytes` (1 MiB) per partition per Fetch response.
    pub max_partition_fetch_bytes: i32,
    /// `fetch.max.wait.ms` (500 ms): how long the broker may hold a Fetch for
    /// `fetch.min.bytes`.
    pub fetch_max_wait: Duration,
    /// `isolation.level` (read_uncommitted).
    pub isolation_level: IsolationLevel,
    /// `check.crcs` (true): verify every batch's CRC-32C.
    pub check_crcs: bool,
}

impl ConsumerConfig {
    /// Defaults for the given comma-separated `bootstrap.servers`.
    pub fn new(bootstrap_servers: &str) -> ConsumerConfig {
        ConsumerConfig::from_client(ClientConfig::new(bootstrap_servers))
    }

    /// Defaults over existing connection settings.
    pub fn from_client(client: ClientConfig) -> ConsumerConfig {
        ConsumerConfig {
            client,
            group_id: None,
            group_instance_id: None,
            group_protocol: GroupProtocol::Classic,
            partition_assignment_strategy: AssignmentStrategy::Range,
            group_remote_assignor: None,
            session_timeout: Duration::from_secs(45),
            heartbeat_interval: Duration::from_secs(3),
            max_poll_interval: Duration::from_secs(300),
            enable_auto_commit: true,
            auto_commit_interval: Duration::from_secs(5),
            auto_offset_reset: OffsetReset::Latest,
            fetch_min_bytes: 1,
            fetch_max_bytes: 50 * 1024 * 1024,
            max_partition_fetch_bytes: 1024 * 1024,
            fetch_max_wait: Duration::from_millis(500),
            isolation_level: IsolationLevel::ReadUncommitted,
            check_crcs: true,
        }
    }

    /// Sets `group.id`.
    pub fn group_id(mut self, group_id: impl Into<String>) -> ConsumerConfig {
        self.group_id = Some(group_id.into());
        self
    }

    /// Sets `group.instance.id`.
    pub fn group_instance_id(mut self, id: impl Into<String>) -> ConsumerConfig {
        self.group_instance_id = Some(id.into());
        self
    }

    /// Sets `group.protocol`.
    pub fn group_protocol(mut self, protocol: GroupProtocol) -> ConsumerConfig {
        self.group_protocol = protocol;
        self
    }

    /// Sets `enable.auto.commit`.
    pub fn enable_auto_commit(mut self, enable: bool) -> ConsumerConfig {
        self.enable_auto_commit = enable;
        self
    }

    /// Sets `auto.offset.reset`.
    pub fn auto_offset_reset(mut self, reset: OffsetReset) -> ConsumerConfig {
        self.auto_offset_reset = reset;
        self
    }

    /// Sets `fetch.max.wait.ms`.
    pub fn fetch_max_wait(mut self, wait: Duration) -> ConsumerConfig {
        self.fetch_max_wait = wait;
        self
    }

    /// Sets `fetch.max.bytes`.
    pub fn fetch_max_bytes(mut self, bytes: i32) -> ConsumerConfig {
        self.fetch_max_bytes = bytes;
        self
    }

    /// Sets `isolation.level`.
    pub fn isolation_level(mut self, level: IsolationLevel) -> ConsumerConfig {
        self.isolation_level = level;
        self
    }

    /// Sets a setting by its Kafka name (`"auto.offset.reset"`, `"fetch.max.bytes"`,
    /// `"session.timeout.ms"`, `"client.id"`, ...). Unknown names and bad values are
    /// [`Error::Config`].
    pub fn set(mut self, key: &str, value: &str) -> Result<ConsumerConfig> {
        let bad = || Error::Config(format!("{key}: invalid value {value:?}"));
        let ms = || {
            value
                .parse::<u64>()
                .map(Duration::from_millis)
                .map_err(|_| bad())
        };
        let int = || value.parse::<i32>().map_err(|_| bad());
        let boolean = || value.parse::<bool>().map_err(|_| bad());
        match key {
            "client.id" => self.client.client_id = value.to_owned(),
            "request.timeout.ms" => self.client.request_timeout = ms()?,
            "retry.backoff.ms" => self.client.retry_backoff = ms()?,
            "metadata.max.age.ms" => self.client.metadata_max_age = ms()?,
            "group.id" => self.group_id = Some(value.to_owned()),
            "group.instance.id" => self.group_instance_id = Some(value.to_owned()),
            "group.protocol" => {
                self.group_protocol = match value.to_ascii_lowercase().as_str() {
                    "classic" => GroupProtocol::Classic,
                    "consumer" => GroupProtocol::Consumer,
                    _ => return Err(bad()),
                }
            }
            "group.remote.assignor" => self.group_remote_assignor = Some(value.to_owned()),
            "partition.assignment.strategy" => {
                self.partition_assignment_strategy = match value {
                    "range" => AssignmentStrategy::Range,
                    "roundrobin" => AssignmentStrategy::RoundRobin,
                    "cooperative-sticky" => AssignmentStrategy::CooperativeSticky,
                    _ => return Err(bad()),
                }
            }
            "session.timeout.ms" => self.session_timeout = ms()?,
            "heartbeat.interval.ms" => self.heartbeat_interval = ms()?,
            "max.poll.interval.ms" => self.max_poll_interval = ms()?,
            "enable.auto.commit" => self.enable_auto_commit = boolean()?,
            "auto.commit.interval.ms" => self.auto_commit_interval = ms()?,
            "auto.offset.reset" => {
                self.auto_offset_reset = match value {
                    "earliest" => OffsetReset::Earliest,
                    "latest" => OffsetReset::Latest,
                    "none" => OffsetReset::None,
                    _ => return Err(bad()),
                }
            }
            "fetch.min.bytes" => self.fetch_min_bytes = int()?,
            "fetch.max.bytes" => self.fetch_max_bytes = int()?,
            "max.partition.fetch.bytes" => self.max_partition_fetch_bytes = int()?,
            "fetch.max.wait.ms" => self.fetch_max_wait = ms()?,
            "isolation.level" => {
                self.isolation_level = match value {
                    "read_uncommitted" => IsolationLevel::ReadUncommitted,
                    "read_committed" => IsolationLevel::ReadCommitted,
                    _ => return Err(bad()),
                }
            }
            "check.crcs" => self.check_crcs = boolean()?,
            _ => return Err(Error::Config(format!("unknown consumer setting {key}"))),
        }
        Ok(self)
    }

    pub(crate) fn validate(&self) -> Result<()> {
        self.client.validate()?;
        if self.fetch_max_bytes <= 0 || self.max_partition_fetch_bytes <= 0 {
            return Err(Error::Config(
                "fetch.max.bytes and max.partition.fetch.bytes must be positive".into(),
            ));
        }
        if self.fetch_min_bytes < 0 {
            return Err(Error::Config("fetch.min.bytes must not be negative".into()));
        }
        if self.group_instance_id.is_some() && self.group_id.is_none() {
            return Err(Error::Config("group.instance.id needs a group.id".into()));
        }
        Ok(())
    }

    /// Auto-commit applies only with a group.
    pub(crate) fn auto_commit(&self) -> bool {
        self.enable_auto_commit && self.group_id.is_some()
    }

    pub(crate) fn member_config(&self, group_id: String) -> MemberConfig {
        MemberConfig {
            group_id,
            group_instance_id: self.group_instance_id.clone(),
            protocol: self.group_protocol,
            session_timeout: self.session_timeout,
            heartbeat_interval: self.heartbeat_interval,
            rebalance_timeout: self.max_poll_interval,
            strategy: self.partition_assignment_strategy,
            remote_assignor: self.group_remote_assignor.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_names_set_the_fields() {
        let config = ConsumerConfig::new("h:1")
            .set("auto.offset.reset", "earliest")
            .and_then(|c| c.set("isolation.level", "read_committed"))
            .and_then(|c| c.set("group.protocol", "consumer"))
            .and_then(|c| c.set("max.partition.fetch.bytes", "2048"))
            .unwrap();
        assert_eq!(config.auto_offset_reset, OffsetReset::Earliest);
        assert_eq!(config.isolation_level, IsolationLevel::ReadCommitted);
        assert_eq!(config.group_protocol, GroupProtocol::Consumer);
        assert_eq!(config.max_partition_fetch_bytes, 2048);
    }

    #[test]
    fn bad_names_and_values_are_config_errors() {
        let base = ConsumerConfig::new("h:1");
        assert!(matches!(
            base.clone().set("auto.offset.reset", "soon"),
            Err(Error::Config(_))
        ));
        assert!(matches!(
            base.set("no.such.key", "1"),
            Err(Error::Config(_))
        ));
    }

    #[test]
    fn auto_commit_needs_a_group() {
        let config = ConsumerConfig::new("h:1");
        assert!(config.enable_auto_commit && !config.auto_commit());
        assert!(config.group_id("g").auto_commit());
    }
}
