//! What DescribeConfigs reports about a value: where it came from, and the
//! chain of synonyms that could have supplied it.

use super::def::ConfigType;

/// Where a configuration value came from: DescribeConfigs' `config_source`.
///
/// Precedence, highest first: a topic's own override, the broker's per-broker
/// dynamic value, the cluster-wide dynamic default, the broker's static
/// configuration (file, environment, command line), the built-in default.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(i8)]
pub enum ConfigSource {
    /// Source unknown (code 0); never produced by Runnel.
    Unknown = 0,
    /// A topic's override (TOPIC_CONFIG).
    DynamicTopic = 1,
    /// Set on this broker with IncrementalAlterConfigs (DYNAMIC_BROKER_CONFIG).
    DynamicBroker = 2,
    /// Set as the cluster-wide broker default (DYNAMIC_DEFAULT_BROKER_CONFIG).
    DynamicDefaultBroker = 3,
    /// The broker's startup configuration (STATIC_BROKER_CONFIG).
    StaticBroker = 4,
    /// The built-in default (DEFAULT_CONFIG).
    Default = 5,
    /// A broker logger level (DYNAMIC_BROKER_LOGGER_CONFIG).
    DynamicBrokerLogger = 6,
    /// A client-metrics subscription (CLIENT_METRICS_CONFIG).
    ClientMetrics = 7,
    /// A group's override (GROUP_CONFIG).
    Group = 8,
}

impl ConfigSource {
    /// The code DescribeConfigs puts on the wire.
    pub const fn code(self) -> i8 {
        self as i8
    }
}

/// One link of a synonym chain: a key, its value there (`None` when null or
/// sensitive), and where that value came from.
pub type SynonymEntry = (String, Option<String>, ConfigSource);

/// The effective value of one topic config and how it was arrived at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvedConfig {
    /// The effective value in the topic config's own unit; `None` when null
    /// or sensitive.
    pub value: Option<String>,
    /// Where the effective value came from.
    pub source: ConfigSource,
    /// Every place a value was found, highest precedence first: the topic
    /// override, then each broker synonym at each level where it is set,
    /// including built-in broker defaults. Broker values are shown in their
    /// own unit (e.g. `log.retention.hours=168`), as Kafka shows them.
    pub synonyms: Vec<SynonymEntry>,
}

/// One entry of a DescribeConfigs response.
#[derive(Clone, Debug, PartialEq)]
pub struct DescribedConfig {
    /// The key.
    pub name: String,
    /// The current value; `None` when null or sensitive.
    pub value: Option<String>,
    /// Where the value came from.
    pub source: ConfigSource,
    /// Whether the key cannot be altered while running.
    pub read_only: bool,
    /// Whether the value is secret.
    pub sensitive: bool,
    /// The value's type.
    pub config_type: ConfigType,
    /// What the key does.
    pub documentation: &'static str,
    /// The synonym chain, highest precedence first (see
    /// [`ResolvedConfig::synonyms`]).
    pub synonyms: Vec<SynonymEntry>,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn source_codes_match_describe_configs() {
        assert_eq!(ConfigSource::DynamicTopic.code(), 1);
        assert_eq!(ConfigSource::DynamicBroker.code(), 2);
        assert_eq!(ConfigSource::DynamicDefaultBroker.code(), 3);
        assert_eq!(ConfigSource::StaticBroker.code(), 4);
        assert_eq!(ConfigSource::Default.code(), 5);
        assert_eq!(ConfigSource::DynamicBrokerLogger.code(), 6);
    }
}
