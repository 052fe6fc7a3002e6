//! `ProducerConfig`: the producer's settings under the Java client's names.

use std::time::Duration;

use runnel_protocol::compression::Compression;

use crate::config::ClientConfig;
use crate::error::{Error, Result};

/// `acks`: how many replicas must have the records before the broker answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acks {
    /// `acks=0`: the broker does not answer; offsets are unknown (-1).
    None,
    /// `acks=1`: the leader has written the records.
    Leader,
    /// `acks=all` (or `-1`): every in-sync replica has them.
    All,
}

impl Acks {
    /// The value sent in ProduceRequest.acks.
    pub fn wire(self) -> i16 {
        match self {
            Acks::None => 0,
            Acks::Leader => 1,
            Acks::All => -1,
        }
    }

    /// Parses `0`, `1`, `all` or `-1`.
    pub fn parse(value: &str) -> Result<Acks> {
        match value.trim().to_ascii_lowercase().as_str() {
            "0" => Ok(Acks::None),
            "1" => Ok(Acks::Leader),
            "all" | "-1" => Ok(Acks::All),
            other => Err(Error::Config(format!(
                "acks must be 0, 1, all or -1, not {other:?}"
            ))),
        }
    }
}

/// Parses a `compression.type` value: `none`, `gzip`, `snappy`, `lz4` or `zstd`.
pub fn parse_compression(value: &str) -> Result<Compression> {
    match value.trim().to_ascii_lowercase().as_str() {
        "none" => Ok(Compression::None),
        "gzip" => Ok(Compression::Gzip),
        "snappy" => Ok(Compression::Snappy),
        "lz4" => Ok(Compression::Lz4),
        "zstd" => Ok(Compression::Zstd),
        other => Err(Error::Config(format!(
            "compression.type must be none, gzip, snappy, lz4 or zstd, not {other:?}"
        ))),
    }
}

/// The producer's settings; defaults are the Java client's.
///
/// ```
/// use std::time::Duration;
/// use runnel_client::ClientConfig;
/// use runnel_client::producer::{Acks, ProducerConfig};
///
/// let config = ProducerConfig::new(ClientConfig::new("127.0.0.1:9092"))
///     .acks(Acks::Leader)
///     .linger(Duration::from_millis(20))
///     .set("compression.type", "zstd")
///     .unwrap();
/// // acks=1 turns the default idempotence off, as in the Java client...
/// assert!(!config.idempotence().unwrap());
/// // ...but asking for both is a contradiction.
/// assert!(config.enable_idempotence(true).idempotence().is_err());
/// ```
#[derive(Debug, Clone)]
pub struct ProducerConfig {
    /// Where the cluster is; `request.timeout.ms` is also the produce timeout.
    pub client: ClientConfig,
    /// `acks` (default `all`).
    pub acks: Acks,
    /// `linger.ms` (default 5 ms): how long a batch waits for more records.
    pub linger: Duration,
    /// `batch.size` (default 16384): bytes per partition batch before it is sent.
    pub batch_size: usize,
    /// `buffer.memory` (default 32 MiB): bytes of records waiting to be acknowledged.
    pub buffer_memory: usize,
    /// `compression.type` (default none).
    pub compression: Compression,
    /// `enable.idempotence`: `None` is the default (on unless acks, retries or
    /// in-flight settings contradict it, as in the Java client).
    pub enable_idempotence: Option<bool>,
    /// `max.in.flight.requests.per.connection` (default 5).
    pub max_in_flight: usize,
    /// `retries` (default `u32::MAX`; `delivery.timeout.ms` bounds them).
    pub retries: u32,
    /// `delivery.timeout.ms` (default 120 s): from `send` to success or failure.
    pub delivery_timeout: Duration,
    /// `max.request.size` (default 1 MiB): the largest record (and request) sent.
    pub max_request_size: usize,
    /// `max.block.ms` (default 60 s): how long `send` waits for metadata or buffer memory.
    pub max_block: Duration,
    /// `partitioner.ignore.keys` (default false): keyed records are sticky-partitioned too.
    pub partitioner_ignore_keys: bool,
}

impl ProducerConfig {
    /// Kafka's defaults over `client`.
    pub fn new(client: ClientConfig) -> ProducerConfig {
        ProducerConfig {
            client,
            acks: Acks::All,
            linger: Duration::from_millis(5),
            batch_size: 16 * 1024,
            buffer_memory: 32 * 1024 * 1024,
            compression: Compression::None,
            enable_idempotence: None,
            max_in_flight: 5,
            retries: u32::MAX,
            delivery_timeout: Duration::from_secs(120),
            max_request_size: 1024 * 1024,
            max_block: Duration::from_secs(60),
            partitioner_ignore_keys: false,
        }
    }

    /// Sets `acks`.
    pub fn acks(mut self, acks: Acks) -> Self {
        self.acks = acks;
        self
    }

    /// Sets `linger.ms`.
    pub fn linger(mut self, linger: Duration) -> Self {
        self.linger = linger;
        self
    }

    /// Sets `batch.size` in bytes.
    pub fn batch_size(mut self, bytes: usize) -> Self {
        self.batch_size = bytes;
        self
    }

    /// Sets `buffer.memory` in bytes.
    pub fn buffer_memory(mut self, bytes: usize) -> Self {
        self.buffer_memory = bytes;
        self
    }

    /// Sets `compression.type`.
    pub fn compression(mut self, compression: Compression) -> Self {
        self.compression = compression;
        self
    }

    /// Sets `enable.idempotence` explicitly.
    pub fn enable_idempotence(mut self, enable: bool) -> Self {
        self.enable_idempotence = Some(enable);
        self
    }

    /// Sets `max.in.flight.requests.per.connection`.
    pub fn max_in_flight(mut self, requests: usize) -> Self {
        self.max_in_flight = requests;
        self
    }

    /// Sets `delivery.timeout.ms`.
    pub fn delivery_timeout(mut self, timeout: Duration) -> Self {
        self.delivery_timeout = timeout;
        self
    }

    /// Sets `request.timeout.ms` (on the client settings).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.client.request_timeout = timeout;
        self
    }

    /// Sets `max.request.size` in bytes.
    pub fn max_request_size(mut self, bytes: usize) -> Self {
        self.max_request_size = bytes;
        self
    }

    /// Sets `max.block.ms`.
    pub fn max_block(mut self, timeout: Duration) -> Self {
        self.max_block = timeout;
        self
    }

    /// Sets one setting by its Java name (`acks`, `linger.ms`, `batch.size`,
    /// `buffer.memory`, `compression.type`, `enable.idempotence`,
    /// `max.in.flight.requests.per.connection`, `retries`, `delivery.timeout.ms`,
    /// `request.timeout.ms`, `max.request.size`, `max.block.ms`,
    /// `partitioner.ignore.keys`, `client.id`, `retry.backoff.ms`).
    pub fn set(mut self, key: &str, value: &str) -> Result<Self> {
        let number = |v: &str| -> Result<u64> {
            v.trim().parse::<u64>().map_err(|_| {
                Error::Config(format!("{key} must be a non-negative integer, not {v:?}"))
            })
        };
        let boolean = |v: &str| -> Result<bool> {
            match v.trim().to_ascii_lowercase().as_str() {
                "true" => Ok(true),
                "false" => Ok(false),
                _ => Err(Error::Config(format!(
                    "{key} must be true or false, not {v:?}"
                ))),
            }
        };
        let ms = |v: &str| number(v).map(Duration::from_millis);
        match key {
            "acks" => self.acks = Acks::parse(value)?,
            "linger.ms" => self.linger = ms(value)?,
            "batch.size" => self.batch_size = number(value)? as usize,
            "buffer.memory" => self.buffer_memory = number(value)? as usize,
            "compression.type" => self.compression = parse_compression(value)?,
            "enable.idempotence" => self.enable_idempotence = Some(boolean(value)?),
            "max.in.flight.requests.per.connection" => self.max_in_flight = number(value)? as usize,
            "retries" => self.retries = number(value)?.min(u32::MAX as u64) as u32,
            "delivery.timeout.ms" => self.delivery_timeout = ms(value)?,
            "request.timeout.ms" => self.client.request_timeout = ms(value)?,
            "max.request.size" => self.max_request_size = number(value)? as usize,
            "max.block.ms" => self.max_block = ms(value)?,
            "partitioner.ignore.keys" => self.partitioner_ignore_keys = boolean(value)?,
            "client.id" => self.client.client_id = value.to_owned(),
            "retry.backoff.ms" => self.client.retry_backoff = ms(value)?,
            other => return Err(Error::Config(format!("unknown producer setting {other}"))),
        }
        Ok(self)
    }

    /// Whether the producer is idempotent with these settings: an explicit
    /// `enable.idempotence=true` that contradicts `acks`, `retries` or
    /// `max.in.flight.requests.per.connection` is an error, as in the Java client.
    pub fn idempotence(&self) -> Result<bool> {
        let compatible = self.acks == Acks::All && self.retries > 0 && self.max_in_flight <= 5;
        match self.enable_idempotence {
            None => Ok(compatible),
            Some(false) => Ok(false),
            Some(true) if compatible => Ok(true),
            Some(true) => Err(Error::Config(format!(
                "enable.idempotence=true requires acks=all, retries > 0 and \
                 max.in.flight.requests.per.connection <= 5 (have acks={}, retries={}, max.in.flight={})",
                match self.acks {
                    Acks::None => "0",
                    Acks::Leader => "1",
                    Acks::All => "all",
                },
                self.retries,
                self.max_in_flight
            ))),
        }
    }

    pub(crate) fn validate(&self) -> Result<()> {
        self.client.validate()?;
        self.idempotence()?;
        if self.batch_size == 0 {
            return Err(Error::Config("batch.size must be positive".into()));
        }
        if self.max_in_flight == 0 {
            return Err(Error::Config(
                "max.in.flight.requests.per.connection must be positive".into(),
            ));
        }
        if self.buffer_memory == 0 || self.buffer_memory > u32::MAX as usize {
            return Err(Error::Config(format!(
                "buffer.memory must be between 1 and {} bytes",
                u32::MAX
            )));
        }
        if self.max_request_size == 0 {
            return Err(Error::Config("max.request.size must be positive".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> ProducerConfig {
        ProducerConfig::new(ClientConfig::new("127.0.0.1:9092"))
    }

    #[test]
    fn idempotence_is_on_by_default_and_off_when_acks_contradict() {
        assert!(config().idempotence().unwrap());
        assert!(!config().acks(Acks::None).idempotence().unwrap());
        assert!(!config().max_in_flight(6).idempotence().unwrap());
    }

    #[test]
    fn explicit_idempotence_with_acks_one_is_a_config_error() {
        let err = config()
            .acks(Acks::Leader)
            .enable_idempotence(true)
            .validate()
            .unwrap_err();
        assert!(
            matches!(err, Error::Config(ref m) if m.contains("acks=all")),
            "{err}"
        );
    }

    #[test]
    fn settings_by_java_name() {
        let c = config()
            .set("acks", "-1")
            .unwrap()
            .set("linger.ms", "50")
            .unwrap()
            .set("compression.type", "LZ4")
            .unwrap()
            .set("enable.idempotence", "false")
            .unwrap();
        assert_eq!(c.acks, Acks::All);
        assert_eq!(c.linger, Duration::from_millis(50));
        assert_eq!(c.compression, Compression::Lz4);
        assert_eq!(c.enable_idempotence, Some(false));
        assert!(config().set("acks", "2").is_err());
        assert!(config().set("no.such.thing", "1").is_err());
        assert!(config().set("batch.size", "-1").is_err());
    }
}
