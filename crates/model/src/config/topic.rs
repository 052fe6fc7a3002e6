//! Topic-level configs: the table, validation of one override, a topic's set
//! of validated overrides, and resolution of a topic config's effective value
//! against the broker's configuration.
//!
//! Precedence, highest first (as in Kafka): the topic's override, then each
//! broker synonym in order (e.g. `log.retention.ms`, `log.retention.minutes`,
//! `log.retention.hours`) at its highest set level (per-broker dynamic,
//! cluster-wide dynamic default, static), then the built-in defaults.

use std::collections::BTreeMap;

use super::def::{Synonym, SynonymUnit};

pub use super::broker::BrokerConfig;
pub use super::def::{ConfigDef, ConfigType};
pub use super::describe::{ConfigSource, DescribedConfig, ResolvedConfig, SynonymEntry};
pub use super::error::ConfigError;
pub use super::topic_settings::{CleanupPolicy, CompressionType, TimestampType, TopicSettings};
pub use super::value::ConfigValue;

pub use super::topic_defs::{
    CLEANUP_POLICIES, CLEANUP_POLICY, COMPRESSION_TYPES, GZIP_LEVEL, LZ4_LEVEL, TIMESTAMP_TYPES,
    TOPIC_CONFIGS, ZSTD_LEVEL,
};

/// Every topic config Runnel accepts, sorted by name (deprecated ones
/// included; see [`ConfigDef::deprecated`]).
pub fn topic_config_defs() -> &'static [ConfigDef] {
    TOPIC_CONFIGS
}

/// The definition of one topic config.
pub fn topic_config_def(name: &str) -> Option<&'static ConfigDef> {
    TOPIC_CONFIGS
        .binary_search_by(|def| def.name.cmp(name))
        .ok()
        .and_then(|index| TOPIC_CONFIGS.get(index))
}

/// Validates one override. An unknown name is [`ConfigError::Unknown`]; a bad
/// value is [`ConfigError::Invalid`], whose message reads like Kafka's
/// INVALID_CONFIG ("Invalid value -5 for configuration retention.ms: Value
/// must be at least -1").
pub fn validate_topic_config(name: &str, value: &str) -> Result<(), ConfigError> {
    parse_topic_value(name, value).map(|_| ())
}

fn parse_topic_value(name: &str, value: &str) -> Result<ConfigValue, ConfigError> {
    let def = topic_config_def(name).ok_or_else(|| ConfigError::unknown(name))?;
    ConfigValue::parse(def, value)
}

/// A topic's config overrides, each validated on the way in and stored in
/// canonical form (trimmed, booleans lower-case, lists comma-joined).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TopicConfigOverrides(BTreeMap<String, String>);

impl TopicConfigOverrides {
    /// No overrides.
    pub fn new() -> TopicConfigOverrides {
        TopicConfigOverrides::default()
    }

    /// Overrides from name/value pairs (CreateTopics' configs, a metadata
    /// replay), refusing the first invalid one.
    pub fn from_pairs<K, V>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Result<TopicConfigOverrides, ConfigError>
    where
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let mut overrides = TopicConfigOverrides::new();
        for (name, value) in pairs {
            overrides.set(name.as_ref(), value.as_ref())?;
        }
        Ok(overrides)
    }

    /// Sets (or replaces) an override after validating it.
    pub fn set(&mut self, name: &str, value: &str) -> Result<(), ConfigError> {
        let parsed = parse_topic_value(name, value)?;
        self.0.insert(name.to_string(), parsed.to_config_string());
        Ok(())
    }

    /// Removes an override, returning its value; the topic falls back to the
    /// broker's value.
    pub fn remove(&mut self, name: &str) -> Option<String> {
        self.0.remove(name)
    }

    /// Adds `items` (comma-separated) to a list config, as
    /// IncrementalAlterConfigs' APPEND does: the base is the current override,
    /// else the config's default. Items already present are not repeated.
    pub fn append(&mut self, name: &str, items: &str) -> Result<(), ConfigError> {
        let mut list = self.list_base(name, items)?;
        for item in super::value::split_list(items) {
            if !list.contains(&item) {
                list.push(item);
            }
        }
        self.set(name, &list.join(","))
    }

    /// Removes `items` (comma-separated) from a list config, as
    /// IncrementalAlterConfigs' SUBTRACT does.
    pub fn subtract(&mut self, name: &str, items: &str) -> Result<(), ConfigError> {
        let removed = super::value::split_list(items);
        let list: Vec<String> = self
            .list_base(name, items)?
            .into_iter()
            .filter(|item| !removed.contains(item))
            .collect();
        self.set(name, &list.join(","))
    }

    fn list_base(&self, name: &str, items: &str) -> Result<Vec<String>, ConfigError> {
        let def = topic_config_def(name).ok_or_else(|| ConfigError::unknown(name))?;
        if def.config_type != ConfigType::List {
            return Err(ConfigError::invalid(
                name,
                items,
                "APPEND and SUBTRACT apply only to list configs",
            ));
        }
        let current = self.get(name).or(def.default).unwrap_or("");
        Ok(super::value::split_list(current))
    }

    /// The override of `name`, if the topic has one.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// Whether the topic overrides `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }

    /// The overrides, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// How many overrides there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The overrides as a plain map (for persisting them).
    pub fn as_map(&self) -> &BTreeMap<String, String> {
        &self.0
    }
}

impl<'a> IntoIterator for &'a TopicConfigOverrides {
    type Item = (&'a String, &'a String);
    type IntoIter = std::collections::btree_map::Iter<'a, String, String>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// Checks the rules that span several configs, on the values the topic would
/// end up with: `min.compaction.lag.ms` must not exceed
/// `max.compaction.lag.ms`, and tiered storage needs the brokers' support and
/// local retention within total retention. Call after a set of changes, before
/// committing them.
pub fn validate_topic_overrides(
    overrides: &TopicConfigOverrides,
    broker: &BrokerConfig,
) -> Result<(), ConfigError> {
    let long = |name: &str| {
        resolve_topic_value(name, overrides, broker)
            .and_then(|v| v.as_i64())
            .unwrap_or_default()
    };
    let (min_lag, max_lag) = (long("min.compaction.lag.ms"), long("max.compaction.lag.ms"));
    if min_lag > max_lag {
        return Err(ConfigError::invalid(
            "min.compaction.lag.ms",
            &min_lag.to_string(),
            format!(
                "conflicting topic config setting min.compaction.lag.ms ({min_lag}) > \
                 max.compaction.lag.ms ({max_lag})"
            ),
        ));
    }
    let remote = resolve_topic_value("remote.storage.enable", overrides, broker)
        .and_then(|v| v.as_bool())
        .unwrap_or(false);
    if remote {
        if !broker.remote_log_storage_system_enable() {
            return Err(ConfigError::invalid(
                "remote.storage.enable",
                "true",
                "Tiered storage is disabled on the brokers (remote.log.storage.system.enable=false)",
            ));
        }
        for (local, total) in [
            ("local.retention.ms", "retention.ms"),
            ("local.retention.bytes", "retention.bytes"),
        ] {
            let (local_value, total_value) = (long(local), long(total));
            if total_value >= 0
                && local_value != -2
                && (local_value == -1 || local_value > total_value)
            {
                return Err(ConfigError::invalid(
                    local,
                    &local_value.to_string(),
                    format!("Value must not be more than {total} ({total_value})"),
                ));
            }
        }
    }
    Ok(())
}

/// One place a value was found while resolving a topic config.
struct Found {
    name: String,
    source: ConfigSource,
    raw: ConfigValue,
    converted: Option<ConfigValue>,
}

fn chain(def: &ConfigDef, overrides: &TopicConfigOverrides, broker: &BrokerConfig) -> Vec<Found> {
    let mut found = Vec::new();
    if let Some(value) = overrides
        .get(def.name)
        .and_then(|text| ConfigValue::parse(def, text).ok())
    {
        found.push(Found {
            name: def.name.to_string(),
            source: ConfigSource::DynamicTopic,
            raw: value.clone(),
            converted: Some(value),
        });
    }
    for synonym in def.synonyms {
        for (source, value) in broker.layers(synonym.name) {
            let converted = convert(def, synonym, &value);
            found.push(Found {
                name: synonym.name.to_string(),
                source,
                raw: value,
                converted,
            });
        }
    }
    found
}

/// Converts a broker synonym's value into the topic config's type and unit.
fn convert(def: &ConfigDef, synonym: &Synonym, value: &ConfigValue) -> Option<ConfigValue> {
    let converted = match synonym.unit {
        SynonymUnit::Same => coerce(value, def.config_type)?,
        SynonymUnit::MinutesToMillis => ConfigValue::Long(value.as_i64()?.saturating_mul(60_000)),
        SynonymUnit::HoursToMillis => ConfigValue::Long(value.as_i64()?.saturating_mul(3_600_000)),
    };
    // A negative broker retention means "unlimited", whatever its unit.
    if def.name == "retention.ms" {
        if let Some(ms) = converted.as_i64() {
            if ms < 0 {
                return Some(ConfigValue::Long(-1));
            }
        }
    }
    Some(converted)
}

fn coerce(value: &ConfigValue, target: ConfigType) -> Option<ConfigValue> {
    Some(match target {
        ConfigType::Int => ConfigValue::Int(i32::try_from(value.as_i64()?).ok()?),
        ConfigType::Short => ConfigValue::Short(i16::try_from(value.as_i64()?).ok()?),
        ConfigType::Long => ConfigValue::Long(value.as_i64()?),
        ConfigType::Double => ConfigValue::Double(value.as_f64()?),
        ConfigType::Boolean => ConfigValue::Boolean(value.as_bool()?),
        ConfigType::List => ConfigValue::List(value.as_list()?.to_vec()),
        ConfigType::String => ConfigValue::String(value.as_str()?.to_string()),
        ConfigType::Password => ConfigValue::Password(value.as_str()?.to_string()),
        ConfigType::Class => ConfigValue::Class(value.as_str()?.to_string()),
    })
}

/// The effective typed value of a topic config (see the module docs for the
/// precedence); `None` for an unknown name.
pub fn resolve_topic_value(
    name: &str,
    overrides: &TopicConfigOverrides,
    broker: &BrokerConfig,
) -> Option<ConfigValue> {
    let def = topic_config_def(name)?;
    chain(def, overrides, broker)
        .into_iter()
        .find_map(|found| found.converted)
        .or_else(|| {
            def.default
                .and_then(|text| ConfigValue::parse(def, text).ok())
        })
}

/// The effective value of a topic config, where it came from, and the synonym
/// chain DescribeConfigs reports; `None` for an unknown name.
pub fn resolve_topic_config(
    name: &str,
    overrides: &TopicConfigOverrides,
    broker: &BrokerConfig,
) -> Option<ResolvedConfig> {
    let def = topic_config_def(name)?;
    let found = chain(def, overrides, broker);
    let shown = |value: &ConfigValue| (!def.sensitive).then(|| value.to_config_string());
    let (value, source) = match found.iter().find(|f| f.converted.is_some()) {
        Some(first) => (first.converted.as_ref().and_then(shown), first.source),
        None => (
            def.default.filter(|_| !def.sensitive).map(str::to_string),
            ConfigSource::Default,
        ),
    };
    let synonyms: Vec<SynonymEntry> = found
        .iter()
        .map(|f| (f.name.clone(), shown(&f.raw), f.source))
        .collect();
    Some(ResolvedConfig {
        value,
        source,
        synonyms,
    })
}

/// The DescribeConfigs entries of a topic: every Kafka 4.x topic config, plus
/// any deprecated one the topic overrides, sorted by name.
pub fn describe_topic_configs(
    overrides: &TopicConfigOverrides,
    broker: &BrokerConfig,
) -> Vec<DescribedConfig> {
    TOPIC_CONFIGS
        .iter()
        .filter(|def| !def.deprecated || overrides.contains(def.name))
        .filter_map(|def| {
            let resolved = resolve_topic_config(def.name, overrides, broker)?;
            Some(DescribedConfig {
                name: def.name.to_string(),
                value: resolved.value,
                source: resolved.source,
                read_only: false,
                sensitive: def.sensitive,
                config_type: def.config_type,
                documentation: def.documentation,
                synonyms: resolved.synonyms,
            })
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::config::broker::{broker_config_def, ConfigSources};

    #[test]
    fn lists_every_kafka_4_topic_config() {
        let listed: Vec<&str> = topic_config_defs()
            .iter()
            .filter(|d| !d.deprecated)
            .map(|d| d.name)
            .collect();
        let kafka = [
            "cleanup.policy",
            "compression.gzip.level",
            "compression.lz4.level",
            "compression.type",
            "compression.zstd.level",
            "delete.retention.ms",
            "file.delete.delay.ms",
            "flush.messages",
            "flush.ms",
            "follower.replication.throttled.replicas",
            "index.interval.bytes",
            "leader.replication.throttled.replicas",
            "local.retention.bytes",
            "local.retention.ms",
            "max.compaction.lag.ms",
            "max.message.bytes",
            "message.timestamp.after.max.ms",
            "message.timestamp.before.max.ms",
            "message.timestamp.type",
            "min.cleanable.dirty.ratio",
            "min.compaction.lag.ms",
            "min.insync.replicas",
            "preallocate",
            "remote.log.copy.disable",
            "remote.log.delete.on.disable",
            "remote.storage.enable",
            "retention.bytes",
            "retention.ms",
            "segment.bytes",
            "segment.index.bytes",
            "segment.jitter.ms",
            "segment.ms",
            "unclean.leader.election.enable",
        ];
        assert_eq!(listed, kafka);
    }

    #[test]
    fn topic_defaults_equal_kafkas() {
        let expected = [
            ("cleanup.policy", "delete"),
            ("compression.type", "producer"),
            ("delete.retention.ms", "86400000"),
            ("file.delete.delay.ms", "60000"),
            ("flush.messages", "9223372036854775807"),
            ("flush.ms", "9223372036854775807"),
            ("index.interval.bytes", "4096"),
            ("max.message.bytes", "1048588"),
            ("message.timestamp.after.max.ms", "3600000"),
            ("message.timestamp.before.max.ms", "9223372036854775807"),
            ("message.timestamp.type", "CreateTime"),
            ("min.cleanable.dirty.ratio", "0.5"),
            ("min.insync.replicas", "1"),
            ("retention.bytes", "-1"),
            ("retention.ms", "604800000"),
            ("segment.bytes", "1073741824"),
            ("segment.index.bytes", "10485760"),
            ("segment.ms", "604800000"),
            ("unclean.leader.election.enable", "false"),
        ];
        for (name, default) in expected {
            assert_eq!(
                topic_config_def(name).unwrap().default,
                Some(default),
                "{name}"
            );
        }
    }

    #[test]
    fn every_default_is_valid_and_every_synonym_is_a_broker_key() {
        let broker = BrokerConfig::default();
        for def in topic_config_defs() {
            let default = def.default.unwrap();
            ConfigValue::parse(def, default).unwrap();
            for synonym in def.synonyms {
                assert!(
                    broker_config_def(synonym.name).is_some(),
                    "{} -> {}",
                    def.name,
                    synonym.name
                );
            }
            // With the broker at its defaults, the topic sees Kafka's default.
            let resolved =
                resolve_topic_config(def.name, &TopicConfigOverrides::new(), &broker).unwrap();
            let expected = ConfigValue::parse(def, default).unwrap().to_config_string();
            assert_eq!(
                resolved.value.as_deref(),
                Some(expected.as_str()),
                "{}",
                def.name
            );
            assert_eq!(resolved.source, ConfigSource::Default, "{}", def.name);
        }
    }

    #[test]
    fn validation_names_the_key_and_why() {
        let err = validate_topic_config("retention.ms", "-5").unwrap_err();
        assert_eq!(
            err.to_string(),
            "Invalid value -5 for configuration retention.ms: Value must be at least -1"
        );
        assert!(matches!(
            validate_topic_config("retention.msx", "1"),
            Err(ConfigError::Unknown { key }) if key == "retention.msx"
        ));
        assert!(validate_topic_config("segment.bytes", "1000").is_err());
        assert!(validate_topic_config("segment.bytes", "1048576").is_ok());
        assert!(validate_topic_config("cleanup.policy", "compact,delete").is_ok());
        assert!(validate_topic_config("cleanup.policy", "").is_ok());
        assert!(validate_topic_config("cleanup.policy", "compact,forever").is_err());
        assert!(validate_topic_config("message.timestamp.type", "LogAppendTime").is_ok());
        assert!(validate_topic_config("message.timestamp.type", "Now").is_err());
        assert!(validate_topic_config("min.cleanable.dirty.ratio", "1.01").is_err());
        assert!(validate_topic_config("compression.type", "brotli").is_err());
        assert!(validate_topic_config("compression.zstd.level", "-131072").is_ok());
        assert!(validate_topic_config("compression.zstd.level", "23").is_err());
        assert!(validate_topic_config("max.message.bytes", "abc").is_err());
        assert!(validate_topic_config("preallocate", "True").is_ok());
        assert!(validate_topic_config("message.timestamp.difference.max.ms", "1000").is_ok());
        assert!(validate_topic_config("leader.replication.throttled.replicas", "0:1,1:2").is_ok());
    }

    #[test]
    fn overrides_are_validated_and_canonical() {
        let mut overrides = TopicConfigOverrides::new();
        overrides.set("preallocate", " TRUE ").unwrap();
        overrides.set("cleanup.policy", "compact , delete").unwrap();
        assert_eq!(overrides.get("preallocate"), Some("true"));
        assert_eq!(overrides.get("cleanup.policy"), Some("compact,delete"));
        assert!(overrides.set("retention.ms", "-2").is_err());
        assert!(!overrides.contains("retention.ms"));
        assert_eq!(overrides.len(), 2);
        let names: Vec<&str> = overrides.iter().map(|(k, _)| k).collect();
        assert_eq!(names, ["cleanup.policy", "preallocate"]);
        assert_eq!(overrides.remove("preallocate").as_deref(), Some("true"));
        assert!(TopicConfigOverrides::from_pairs([("nope", "1")]).is_err());
    }

    #[test]
    fn append_and_subtract_work_on_lists_only() {
        let mut overrides = TopicConfigOverrides::new();
        overrides.append("cleanup.policy", "compact").unwrap();
        assert_eq!(overrides.get("cleanup.policy"), Some("delete,compact"));
        overrides.subtract("cleanup.policy", "delete").unwrap();
        assert_eq!(overrides.get("cleanup.policy"), Some("compact"));
        assert!(overrides.append("retention.ms", "1").is_err());
    }

    #[test]
    fn resolve_prefers_the_topic_override() {
        let broker = BrokerConfig::default();
        let overrides = TopicConfigOverrides::from_pairs([("retention.ms", "1000")]).unwrap();
        let resolved = resolve_topic_config("retention.ms", &overrides, &broker).unwrap();
        assert_eq!(resolved.value.as_deref(), Some("1000"));
        assert_eq!(resolved.source, ConfigSource::DynamicTopic);
        assert_eq!(
            resolved.synonyms,
            vec![
                (
                    "retention.ms".to_string(),
                    Some("1000".to_string()),
                    ConfigSource::DynamicTopic
                ),
                (
                    "log.retention.hours".to_string(),
                    Some("168".to_string()),
                    ConfigSource::Default
                ),
            ]
        );
    }

    #[test]
    fn resolve_uses_static_broker_synonym_converted() {
        let broker = BrokerConfig::load(ConfigSources {
            overrides: vec![("log.retention.minutes".into(), "10".into())],
            ..ConfigSources::default()
        })
        .unwrap();
        let none = TopicConfigOverrides::new();
        let resolved = resolve_topic_config("retention.ms", &none, &broker).unwrap();
        assert_eq!(resolved.value.as_deref(), Some("600000"));
        assert_eq!(resolved.source, ConfigSource::StaticBroker);
        assert_eq!(
            resolved.synonyms[0],
            (
                "log.retention.minutes".to_string(),
                Some("10".to_string()),
                ConfigSource::StaticBroker
            )
        );
        let resolved = resolve_topic_config("segment.bytes", &none, &broker).unwrap();
        assert_eq!(resolved.source, ConfigSource::Default);
        assert_eq!(resolved.value.as_deref(), Some("1073741824"));
    }

    #[test]
    fn resolve_prefers_dynamic_broker_over_static() {
        let mut broker = BrokerConfig::load(ConfigSources {
            overrides: vec![("log.segment.bytes".into(), "2097152".into())],
            ..ConfigSources::default()
        })
        .unwrap();
        broker
            .set_dynamic_cluster_default("log.segment.bytes", Some("3145728"))
            .unwrap();
        broker
            .set_dynamic("log.segment.bytes", Some("4194304"))
            .unwrap();
        let none = TopicConfigOverrides::new();
        let resolved = resolve_topic_config("segment.bytes", &none, &broker).unwrap();
        assert_eq!(resolved.value.as_deref(), Some("4194304"));
        assert_eq!(resolved.source, ConfigSource::DynamicBroker);
        let sources: Vec<ConfigSource> = resolved.synonyms.iter().map(|s| s.2).collect();
        assert_eq!(
            sources,
            [
                ConfigSource::DynamicBroker,
                ConfigSource::DynamicDefaultBroker,
                ConfigSource::StaticBroker,
                ConfigSource::Default
            ]
        );
        broker.set_dynamic("log.segment.bytes", None).unwrap();
        let resolved = resolve_topic_config("segment.bytes", &none, &broker).unwrap();
        assert_eq!(resolved.source, ConfigSource::DynamicDefaultBroker);
        assert_eq!(resolved.value.as_deref(), Some("3145728"));
    }

    #[test]
    fn resolve_defaults_without_synonym() {
        let broker = BrokerConfig::default();
        let resolved = resolve_topic_config(
            "remote.storage.enable",
            &TopicConfigOverrides::new(),
            &broker,
        )
        .unwrap();
        assert_eq!(resolved.value.as_deref(), Some("false"));
        assert_eq!(resolved.source, ConfigSource::Default);
        assert!(resolved.synonyms.is_empty());
        assert!(resolve_topic_config("nope", &TopicConfigOverrides::new(), &broker).is_none());
    }

    #[test]
    fn negative_broker_retention_means_unlimited() {
        let broker = BrokerConfig::load(ConfigSources {
            overrides: vec![("log.retention.hours".into(), "-5".into())],
            ..ConfigSources::default()
        })
        .unwrap();
        let value = resolve_topic_value("retention.ms", &TopicConfigOverrides::new(), &broker);
        assert_eq!(value, Some(ConfigValue::Long(-1)));
    }

    #[test]
    fn describe_lists_every_current_config_once() {
        let broker = BrokerConfig::default();
        let described = describe_topic_configs(&TopicConfigOverrides::new(), &broker);
        assert_eq!(described.len(), 33);
        assert!(described.iter().all(|d| !d.read_only));
        let overrides =
            TopicConfigOverrides::from_pairs([("message.timestamp.difference.max.ms", "5")])
                .unwrap();
        assert_eq!(describe_topic_configs(&overrides, &broker).len(), 34);
    }

    #[test]
    fn cross_config_rules() {
        let broker = BrokerConfig::default();
        let overrides = TopicConfigOverrides::from_pairs([
            ("min.compaction.lag.ms", "10"),
            ("max.compaction.lag.ms", "5"),
        ])
        .unwrap();
        let err = validate_topic_overrides(&overrides, &broker).unwrap_err();
        assert_eq!(err.key(), Some("min.compaction.lag.ms"));
        let remote = TopicConfigOverrides::from_pairs([("remote.storage.enable", "true")]).unwrap();
        assert!(validate_topic_overrides(&remote, &broker).is_err());
        assert!(validate_topic_overrides(&TopicConfigOverrides::new(), &broker).is_ok());
    }
}
