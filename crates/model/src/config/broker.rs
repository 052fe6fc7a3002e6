//! The broker's configuration under Kafka's names: loading it from its
//! sources, dynamic updates (IncrementalAlterConfigs on a broker resource),
//! and DescribeConfigs on the broker.
//!
//! Each key's value is the highest of: a per-broker dynamic value, a
//! cluster-wide dynamic default, the static value (file < environment <
//! command line), the built-in default. Typed getters live in
//! `broker_getters.rs`.

use std::collections::BTreeMap;

use super::def::UpdateMode;
use super::sources::{flatten_toml, parse_toml};
use super::topic_defs::TOPIC_CONFIGS;

pub use super::broker_defs::{BROKER_CONFIGS, RUNNEL_DEFAULT_DIFFERENCES};
pub use super::broker_getters::ProcessRoles;
pub use super::def::ConfigDef;
pub use super::describe::{ConfigSource, DescribedConfig, SynonymEntry};
pub use super::error::ConfigError;
pub use super::listener::{parse_listeners, Listener};
pub use super::sources::{env_var_key, ConfigSources, ENV_PREFIX, RESERVED_ENV_VARS};
pub use super::value::ConfigValue;

/// Every broker config Runnel accepts, sorted by name.
pub fn broker_config_defs() -> &'static [ConfigDef] {
    BROKER_CONFIGS
}

/// The definition of one broker config.
pub fn broker_config_def(name: &str) -> Option<&'static ConfigDef> {
    BROKER_CONFIGS
        .binary_search_by(|def| def.name.cmp(name))
        .ok()
        .and_then(|index| BROKER_CONFIGS.get(index))
}

type Values = BTreeMap<&'static str, ConfigValue>;

/// A broker's configuration: static values from startup plus dynamic values
/// set while running. `Default` is the configuration of a broker started
/// with no file, environment or overrides.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BrokerConfig {
    static_values: Values,
    dynamic_default: Values,
    dynamic_broker: Values,
}

impl BrokerConfig {
    /// Loads the static configuration: defaults, then the file, then
    /// `RUNNEL_*` environment variables, then command-line overrides, each
    /// overriding the one before; then checks the rules spanning several keys.
    /// Every error names the key (or variable) at fault.
    ///
    /// Among `log.retention.ms`, `.minutes` and `.hours` (and likewise
    /// `log.roll.ms`/`.hours`) the finer unit wins whatever source set it, as
    /// in Kafka.
    pub fn load(sources: ConfigSources) -> Result<BrokerConfig, ConfigError> {
        let mut config = BrokerConfig::default();
        if let Some(file) = &sources.file {
            for (key, value) in flatten_toml(file)? {
                config.set_static(&key, &value)?;
            }
        }
        for (variable, value) in &sources.env {
            let Some(key) = env_var_key(variable) else {
                continue;
            };
            if broker_config_def(&key).is_none() {
                return Err(ConfigError::UnknownEnvironmentVariable {
                    variable: variable.clone(),
                    key,
                });
            }
            config.set_static(&key, value)?;
        }
        for (key, value) in &sources.overrides {
            config.set_static(key, value)?;
        }
        config.check_combined()?;
        Ok(config)
    }

    /// Parses a configuration file's text, for [`ConfigSources::file`].
    pub fn from_toml_str(text: &str) -> Result<toml::Table, ConfigError> {
        parse_toml(text)
    }

    fn set_static(&mut self, key: &str, value: &str) -> Result<(), ConfigError> {
        let def = broker_config_def(key).ok_or_else(|| ConfigError::unknown(key))?;
        let parsed = ConfigValue::parse(def, value)?;
        self.static_values.insert(def.name, parsed);
        Ok(())
    }

    /// The current value of `name` as text, dynamic values included; `None`
    /// for an unknown key or a null value. Secrets are returned in clear: this
    /// is for the broker's own use, not for DescribeConfigs.
    pub fn get(&self, name: &str) -> Option<String> {
        self.value(name).map(|value| value.to_config_string())
    }

    /// The current typed value of `name`, dynamic values included.
    pub fn value(&self, name: &str) -> Option<ConfigValue> {
        self.layers(name).into_iter().next().map(|(_, value)| value)
    }

    /// Where the current value of `name` comes from; `None` for an unknown key
    /// or a null value.
    pub fn source(&self, name: &str) -> Option<ConfigSource> {
        self.layers(name)
            .into_iter()
            .next()
            .map(|(source, _)| source)
    }

    /// Every level at which `name` has a value, highest precedence first:
    /// per-broker dynamic, cluster-wide dynamic, static, default.
    pub fn layers(&self, name: &str) -> Vec<(ConfigSource, ConfigValue)> {
        let Some(def) = broker_config_def(name) else {
            return Vec::new();
        };
        let mut layers = Vec::new();
        for (source, values) in [
            (ConfigSource::DynamicBroker, &self.dynamic_broker),
            (ConfigSource::DynamicDefaultBroker, &self.dynamic_default),
            (ConfigSource::StaticBroker, &self.static_values),
        ] {
            if let Some(value) = values.get(def.name) {
                layers.push((source, value.clone()));
            }
        }
        if let Some(default) = def
            .default
            .and_then(|text| ConfigValue::parse(def, text).ok())
        {
            layers.push((ConfigSource::Default, default));
        }
        layers
    }

    /// Whether `name` was set explicitly at some level (not just defaulted).
    pub fn is_set(&self, name: &str) -> bool {
        self.layers(name)
            .first()
            .is_some_and(|(source, _)| *source != ConfigSource::Default)
    }

    /// Sets (`Some`) or deletes (`None`) a per-broker dynamic value, as
    /// IncrementalAlterConfigs on this broker's resource does. Only keys whose
    /// update mode is per-broker or cluster-wide may change; the result must
    /// pass the same checks as at startup, or nothing changes.
    pub fn set_dynamic(&mut self, name: &str, value: Option<&str>) -> Result<(), ConfigError> {
        let def = broker_config_def(name).ok_or_else(|| ConfigError::unknown(name))?;
        if !def.update_mode.is_dynamic() {
            return Err(ConfigError::ReadOnly {
                key: def.name.to_string(),
            });
        }
        self.apply_dynamic(def, value, false)
    }

    /// Sets or deletes the cluster-wide dynamic default of a key (the broker
    /// resource with the empty name). Only cluster-wide keys may.
    pub fn set_dynamic_cluster_default(
        &mut self,
        name: &str,
        value: Option<&str>,
    ) -> Result<(), ConfigError> {
        let def = broker_config_def(name).ok_or_else(|| ConfigError::unknown(name))?;
        match def.update_mode {
            UpdateMode::ClusterWide => self.apply_dynamic(def, value, true),
            UpdateMode::PerBroker => Err(ConfigError::PerBrokerOnly {
                key: def.name.to_string(),
            }),
            UpdateMode::ReadOnly | UpdateMode::PerTopic => Err(ConfigError::ReadOnly {
                key: def.name.to_string(),
            }),
        }
    }

    fn apply_dynamic(
        &mut self,
        def: &'static ConfigDef,
        value: Option<&str>,
        cluster_default: bool,
    ) -> Result<(), ConfigError> {
        let mut next = self.clone();
        let values = if cluster_default {
            &mut next.dynamic_default
        } else {
            &mut next.dynamic_broker
        };
        match value {
            Some(text) => {
                values.insert(def.name, ConfigValue::parse(def, text)?);
            }
            None => {
                values.remove(def.name);
            }
        }
        next.check_combined()?;
        *self = next;
        Ok(())
    }

    /// The per-broker dynamic values, as text (for persisting and replaying).
    pub fn dynamic_broker_configs(&self) -> BTreeMap<String, String> {
        text_map(&self.dynamic_broker)
    }

    /// The cluster-wide dynamic defaults, as text.
    pub fn dynamic_default_configs(&self) -> BTreeMap<String, String> {
        text_map(&self.dynamic_default)
    }

    /// The DescribeConfigs entries of this broker: every current broker key
    /// (deprecated ones only when set), sorted by name. Secrets have no value.
    pub fn describe(&self) -> Vec<DescribedConfig> {
        BROKER_CONFIGS
            .iter()
            .filter(|def| !def.deprecated || self.is_set(def.name))
            .map(|def| self.describe_key(def))
            .collect()
    }

    /// The DescribeConfigs entry of one broker key.
    pub fn describe_config(&self, name: &str) -> Option<DescribedConfig> {
        broker_config_def(name).map(|def| self.describe_key(def))
    }

    fn describe_key(&self, def: &'static ConfigDef) -> DescribedConfig {
        let shown = |value: &ConfigValue| (!def.sensitive).then(|| value.to_config_string());
        let synonyms: Vec<SynonymEntry> = synonym_group(def.name)
            .iter()
            .flat_map(|name| {
                self.layers(name)
                    .into_iter()
                    .map(move |(source, value)| (name.to_string(), shown(&value), source))
            })
            .collect();
        DescribedConfig {
            name: def.name.to_string(),
            value: self.value(def.name).as_ref().and_then(shown),
            source: synonyms
                .first()
                .map_or(ConfigSource::Default, |entry| entry.2),
            read_only: def.is_read_only(),
            sensitive: def.sensitive,
            config_type: def.config_type,
            documentation: def.documentation,
            synonyms,
        }
    }

    /// Checks the rules that span several keys.
    fn check_combined(&self) -> Result<(), ConfigError> {
        self.check_listeners()?;
        if self.is_set("broker.id") {
            let broker_id = self.long("broker.id");
            if broker_id != i64::from(self.node_id().0) {
                return Err(ConfigError::invalid(
                    "broker.id",
                    &broker_id.to_string(),
                    format!("must equal node.id ({})", self.node_id()),
                ));
            }
        }
        let (min_lag, max_lag) = (
            self.long("log.cleaner.min.compaction.lag.ms"),
            self.long("log.cleaner.max.compaction.lag.ms"),
        );
        if min_lag > max_lag {
            return Err(ConfigError::invalid(
                "log.cleaner.min.compaction.lag.ms",
                &min_lag.to_string(),
                format!("must not exceed log.cleaner.max.compaction.lag.ms ({max_lag})"),
            ));
        }
        if let Some(dirs) = self.get("log.dirs") {
            if super::value::split_list(&dirs).iter().all(|d| d.is_empty()) {
                return Err(ConfigError::invalid(
                    "log.dirs",
                    &dirs,
                    "must name at least one directory",
                ));
            }
        }
        Ok(())
    }

    fn check_listeners(&self) -> Result<(), ConfigError> {
        let listeners = self.listeners();
        let text = self.get("listeners").unwrap_or_default();
        if listeners.is_empty() {
            return Err(ConfigError::invalid(
                "listeners",
                &text,
                "at least one listener is required",
            ));
        }
        for listener in &listeners {
            if self.listener_security_protocol(&listener.name).is_none() {
                return Err(ConfigError::invalid(
                    "listeners",
                    &text,
                    format!(
                        "no security protocol defined for listener {} in listener.security.protocol.map",
                        listener.name
                    ),
                ));
            }
        }
        if let Some(advertised_text) = self.get("advertised.listeners") {
            for listener in self.advertised_listeners() {
                let reason = if !listeners.iter().any(|l| l.name == listener.name) {
                    Some(format!("listener {} is not in listeners", listener.name))
                } else if listener.host == "0.0.0.0" || listener.host == "::" {
                    Some("cannot advertise the non-routable meta-address".to_string())
                } else {
                    None
                };
                if let Some(reason) = reason {
                    return Err(ConfigError::invalid(
                        "advertised.listeners",
                        &advertised_text,
                        reason,
                    ));
                }
            }
        }
        if let Some(name) = self.inter_broker_listener_name() {
            if !listeners.iter().any(|l| l.name == name) {
                return Err(ConfigError::invalid(
                    "inter.broker.listener.name",
                    &name,
                    "must be the name of one of listeners",
                ));
            }
        }
        Ok(())
    }

    pub(crate) fn long(&self, name: &str) -> i64 {
        self.value(name)
            .and_then(|v| v.as_i64())
            .unwrap_or_default()
    }

    pub(crate) fn int(&self, name: &str) -> i32 {
        i32::try_from(self.long(name)).unwrap_or(i32::MAX)
    }

    pub(crate) fn short(&self, name: &str) -> i16 {
        i16::try_from(self.long(name)).unwrap_or(i16::MAX)
    }

    pub(crate) fn boolean(&self, name: &str) -> bool {
        self.value(name).and_then(|v| v.as_bool()).unwrap_or(false)
    }

    pub(crate) fn text(&self, name: &str) -> Option<String> {
        self.value(name)
            .and_then(|v| v.as_str().map(str::to_string))
    }

    pub(crate) fn list(&self, name: &str) -> Vec<String> {
        self.value(name)
            .and_then(|v| v.as_list().map(<[String]>::to_vec))
            .unwrap_or_default()
    }
}

fn text_map(values: &Values) -> BTreeMap<String, String> {
    values
        .iter()
        .map(|(name, value)| (name.to_string(), value.to_config_string()))
        .collect()
}

/// The broker keys reported as synonyms of `name`: itself, plus the coarser
/// units that stand in for it (`log.retention.ms` → minutes → hours), taken
/// from the topic table's synonym chains.
fn synonym_group(name: &'static str) -> Vec<&'static str> {
    TOPIC_CONFIGS
        .iter()
        .find(|def| def.synonyms.len() > 1 && def.synonyms.first().is_some_and(|s| s.name == name))
        .map(|def| def.synonyms.iter().map(|s| s.name).collect())
        .unwrap_or_else(|| vec![name])
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::config::def::ConfigType;

    fn load(overrides: &[(&str, &str)]) -> Result<BrokerConfig, ConfigError> {
        BrokerConfig::load(ConfigSources {
            overrides: overrides
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..ConfigSources::default()
        })
    }

    #[test]
    fn every_default_parses_and_passes_its_validator() {
        for def in broker_config_defs() {
            if let Some(default) = def.default {
                ConfigValue::parse(def, default).unwrap();
            }
        }
        BrokerConfig::load(ConfigSources::default()).unwrap();
    }

    #[test]
    fn defaults_equal_kafkas_except_where_documented() {
        let config = BrokerConfig::default();
        let kafka = [
            ("num.partitions", "1"),
            ("default.replication.factor", "1"),
            ("auto.create.topics.enable", "true"),
            ("delete.topic.enable", "true"),
            ("log.retention.hours", "168"),
            ("log.retention.bytes", "-1"),
            ("log.segment.bytes", "1073741824"),
            ("log.roll.hours", "168"),
            ("log.retention.check.interval.ms", "300000"),
            ("log.flush.interval.messages", "9223372036854775807"),
            ("log.flush.scheduler.interval.ms", "9223372036854775807"),
            ("log.index.interval.bytes", "4096"),
            ("log.index.size.max.bytes", "10485760"),
            ("log.message.timestamp.type", "CreateTime"),
            ("log.cleanup.policy", "delete"),
            ("compression.type", "producer"),
            ("message.max.bytes", "1048588"),
            ("socket.request.max.bytes", "104857600"),
            ("max.connections", "2147483647"),
            ("max.connections.per.ip", "2147483647"),
            ("queued.max.requests", "500"),
            ("num.io.threads", "8"),
            ("num.network.threads", "3"),
            ("producer.id.expiration.ms", "86400000"),
            ("transactional.id.expiration.ms", "604800000"),
            ("min.insync.replicas", "1"),
            ("offsets.topic.num.partitions", "50"),
            ("offsets.retention.minutes", "10080"),
            ("group.initial.rebalance.delay.ms", "3000"),
            ("connections.max.idle.ms", "600000"),
            ("unclean.leader.election.enable", "false"),
            ("replica.fetch.max.bytes", "1048576"),
            ("fetch.max.bytes", "57671680"),
            ("replica.lag.time.max.ms", "30000"),
            ("log.message.timestamp.after.max.ms", "3600000"),
        ];
        for (name, value) in kafka {
            assert_eq!(config.get(name).as_deref(), Some(value), "{name}");
        }
        for name in [
            "log.retention.ms",
            "log.retention.minutes",
            "log.flush.interval.ms",
            "broker.rack",
            "advertised.listeners",
        ] {
            assert_eq!(config.get(name), None, "{name}");
        }
        // Runnel's documented differences.
        assert_eq!(config.get("node.id").as_deref(), Some("0"));
        assert_eq!(
            config.get("process.roles").as_deref(),
            Some("broker,controller")
        );
        assert_eq!(
            config.get("listeners").as_deref(),
            Some("PLAINTEXT://127.0.0.1:9092")
        );
        assert_eq!(config.get("log.dir").as_deref(), Some("./runnel-data"));
        assert_eq!(
            config.get("offsets.topic.replication.factor").as_deref(),
            Some("1")
        );
        for (name, kafka_default, _) in RUNNEL_DEFAULT_DIFFERENCES {
            let def = broker_config_def(name).unwrap();
            assert_ne!(def.default, *kafka_default, "{name}");
        }
    }

    #[test]
    fn precedence_is_file_then_env_then_overrides() {
        let file = BrokerConfig::from_toml_str(
            "\"num.partitions\" = 2\n\"queued.max.requests\" = 10\n\"message.max.bytes\" = 100",
        )
        .unwrap();
        let config = BrokerConfig::load(ConfigSources {
            file: Some(file),
            env: vec![
                ("RUNNEL_NUM_PARTITIONS".into(), "3".into()),
                ("RUNNEL_QUEUED_MAX_REQUESTS".into(), "20".into()),
                ("RUNNEL_LOG".into(), "debug".into()),
                ("PATH".into(), "/bin".into()),
            ],
            overrides: vec![("num.partitions".into(), "4".into())],
        })
        .unwrap();
        assert_eq!(config.num_partitions(), 4);
        assert_eq!(config.queued_max_requests(), 20);
        assert_eq!(config.message_max_bytes(), 100);
        assert_eq!(
            config.source("num.partitions"),
            Some(ConfigSource::StaticBroker)
        );
        assert_eq!(config.source("num.io.threads"), Some(ConfigSource::Default));
    }

    #[test]
    fn unknown_keys_are_refused_by_name() {
        let err = load(&[("log.retention.msec", "1")]).unwrap_err();
        assert_eq!(
            err,
            ConfigError::Unknown {
                key: "log.retention.msec".into()
            }
        );
        let file = BrokerConfig::from_toml_str("[log]\nretention.msec = 1").unwrap();
        let err = BrokerConfig::load(ConfigSources {
            file: Some(file),
            ..ConfigSources::default()
        })
        .unwrap_err();
        assert_eq!(err.key(), Some("log.retention.msec"));
        let err = BrokerConfig::load(ConfigSources {
            env: vec![("RUNNEL_LOG_RETENTION_MSEC".into(), "1".into())],
            ..ConfigSources::default()
        })
        .unwrap_err();
        assert!(
            err.to_string().contains("RUNNEL_LOG_RETENTION_MSEC"),
            "{err}"
        );
    }

    #[test]
    fn invalid_values_are_refused_by_name() {
        for (key, value) in [
            ("num.partitions", "0"),
            ("num.partitions", "many"),
            ("auto.create.topics.enable", "yes"),
            ("log.segment.bytes", "1000"),
            ("log.message.timestamp.type", "Now"),
            ("listeners", "localhost:9092"),
            ("process.roles", ""),
            ("process.roles", "broker,gateway"),
            ("node.id", "-1"),
        ] {
            let err = load(&[(key, value)]).unwrap_err();
            assert_eq!(err.key(), Some(key), "{key}={value}: {err}");
        }
        let file = BrokerConfig::from_toml_str("\"num.partitions\" = true").unwrap();
        let err = BrokerConfig::load(ConfigSources {
            file: Some(file),
            ..ConfigSources::default()
        })
        .unwrap_err();
        assert_eq!(err.key(), Some("num.partitions"));
    }

    #[test]
    fn retention_ms_beats_minutes_beats_hours() {
        assert_eq!(BrokerConfig::default().log_retention_ms(), 604_800_000);
        let hours = load(&[("log.retention.hours", "1")]).unwrap();
        assert_eq!(hours.log_retention_ms(), 3_600_000);
        let minutes =
            load(&[("log.retention.hours", "1"), ("log.retention.minutes", "2")]).unwrap();
        assert_eq!(minutes.log_retention_ms(), 120_000);
        let ms = load(&[
            ("log.retention.ms", "5"),
            ("log.retention.hours", "1"),
            ("log.retention.minutes", "2"),
        ])
        .unwrap();
        assert_eq!(ms.log_retention_ms(), 5);
        let unlimited = load(&[("log.retention.ms", "-7")]).unwrap();
        assert_eq!(unlimited.log_retention_ms(), -1);
        let roll = load(&[("log.roll.hours", "2")]).unwrap();
        assert_eq!(roll.log_roll_ms(), 7_200_000);
    }

    #[test]
    fn nested_toml_reaches_dotted_keys() {
        let file = BrokerConfig::from_toml_str(
            "process.roles = [\"broker\"]\n\
             [log]\nretention.ms = 1000\ndirs = \"/a,/b\"\n\
             [log.segment]\nbytes = 2097152\n\
             [auto.create.topics]\nenable = false\n",
        )
        .unwrap();
        let config = BrokerConfig::load(ConfigSources {
            file: Some(file),
            ..ConfigSources::default()
        })
        .unwrap();
        assert_eq!(config.log_retention_ms(), 1000);
        assert_eq!(config.log_segment_bytes(), 2_097_152);
        assert!(!config.auto_create_topics_enable());
        assert_eq!(
            config.log_dirs(),
            vec![std::path::PathBuf::from("/a"), "/b".into()]
        );
        assert_eq!(config.log_dir(), std::path::PathBuf::from("/a"));
        let roles = config.process_roles();
        assert!(roles.broker && !roles.controller);
    }

    #[test]
    fn listeners_parse_and_are_checked() {
        let config = load(&[
            ("listeners", "PLAINTEXT://0.0.0.0:9092,INTERNAL://:9093"),
            (
                "listener.security.protocol.map",
                "PLAINTEXT:PLAINTEXT,INTERNAL:SSL",
            ),
            ("advertised.listeners", "PLAINTEXT://broker1:9092"),
        ])
        .unwrap();
        assert_eq!(config.listeners().len(), 2);
        assert_eq!(config.advertised_listeners()[0].host, "broker1");
        assert_eq!(
            config.listener_security_protocol("internal").as_deref(),
            Some("SSL")
        );
        let defaults = BrokerConfig::default();
        assert_eq!(defaults.advertised_listeners(), defaults.listeners());
        assert_eq!(defaults.listeners()[0].port, 9092);

        let err = load(&[("listeners", "CONTROLLER://:9093")]).unwrap_err();
        assert_eq!(err.key(), Some("listeners"));
        let err = load(&[("advertised.listeners", "OTHER://h:1")]).unwrap_err();
        assert_eq!(err.key(), Some("advertised.listeners"));
        let err = load(&[("advertised.listeners", "PLAINTEXT://0.0.0.0:9092")]).unwrap_err();
        assert_eq!(err.key(), Some("advertised.listeners"));
        let err = load(&[("inter.broker.listener.name", "NOPE")]).unwrap_err();
        assert_eq!(err.key(), Some("inter.broker.listener.name"));
    }

    #[test]
    fn set_dynamic_refuses_read_only_keys() {
        let mut config = BrokerConfig::default();
        assert_eq!(
            config.set_dynamic("num.partitions", Some("3")),
            Err(ConfigError::ReadOnly {
                key: "num.partitions".into()
            })
        );
        assert_eq!(
            config.set_dynamic("nope", Some("3")),
            Err(ConfigError::Unknown { key: "nope".into() })
        );
        assert_eq!(
            config.set_dynamic_cluster_default("listeners", Some("PLAINTEXT://:1")),
            Err(ConfigError::PerBrokerOnly {
                key: "listeners".into()
            })
        );
        assert_eq!(config, BrokerConfig::default());
    }

    #[test]
    fn set_dynamic_updates_and_deletes() {
        let mut config = load(&[("log.retention.ms", "1000")]).unwrap();
        config
            .set_dynamic("log.retention.ms", Some("2000"))
            .unwrap();
        assert_eq!(config.log_retention_ms(), 2000);
        assert_eq!(
            config.source("log.retention.ms"),
            Some(ConfigSource::DynamicBroker)
        );
        assert_eq!(
            config
                .dynamic_broker_configs()
                .get("log.retention.ms")
                .map(String::as_str),
            Some("2000")
        );
        config.set_dynamic("log.retention.ms", None).unwrap();
        assert_eq!(config.log_retention_ms(), 1000);
        assert!(config.set_dynamic("max.connections", Some("-1")).is_err());
        config.set_dynamic("max.connections", Some("10")).unwrap();
        assert_eq!(config.max_connections(), 10);
        // A dynamic change that breaks a cross-key rule changes nothing.
        let before = config.clone();
        assert!(config.set_dynamic("listeners", Some("OTHER://:1")).is_err());
        assert_eq!(config, before);
    }

    #[test]
    fn describe_reports_sources_synonyms_and_secrets() {
        let mut config = load(&[
            ("log.retention.minutes", "10"),
            ("ssl.keystore.password", "hunter2"),
        ])
        .unwrap();
        config.set_dynamic("log.retention.ms", Some("5")).unwrap();
        let described = config.describe();
        let names: Vec<&str> = described.iter().map(|d| d.name.as_str()).collect();
        assert!(!names.contains(&"log.message.timestamp.difference.max.ms"));
        let retention = described
            .iter()
            .find(|d| d.name == "log.retention.ms")
            .unwrap();
        assert_eq!(retention.value.as_deref(), Some("5"));
        assert_eq!(retention.source, ConfigSource::DynamicBroker);
        assert!(!retention.read_only);
        assert_eq!(
            retention.synonyms,
            vec![
                (
                    "log.retention.ms".to_string(),
                    Some("5".to_string()),
                    ConfigSource::DynamicBroker
                ),
                (
                    "log.retention.minutes".to_string(),
                    Some("10".to_string()),
                    ConfigSource::StaticBroker
                ),
                (
                    "log.retention.hours".to_string(),
                    Some("168".to_string()),
                    ConfigSource::Default
                ),
            ]
        );
        let password = config.describe_config("ssl.keystore.password").unwrap();
        assert_eq!(password.value, None);
        assert!(password.sensitive);
        assert_eq!(password.config_type, ConfigType::Password);
        assert_eq!(password.source, ConfigSource::StaticBroker);
        assert_eq!(
            config.get("ssl.keystore.password").as_deref(),
            Some("hunter2")
        );
        let partitions = config.describe_config("num.partitions").unwrap();
        assert!(partitions.read_only);
        assert_eq!(partitions.source, ConfigSource::Default);
    }

    #[test]
    fn broker_id_must_match_node_id() {
        assert!(load(&[("node.id", "3"), ("broker.id", "3")]).is_ok());
        let err = load(&[("node.id", "3"), ("broker.id", "4")]).unwrap_err();
        assert_eq!(err.key(), Some("broker.id"));
    }

    #[test]
    fn topic_synonym_defaults_match_topic_defaults() {
        // A broker at its defaults must hand topics exactly Kafka's topic defaults.
        let config = BrokerConfig::default();
        for topic in TOPIC_CONFIGS {
            for synonym in topic.synonyms {
                let def = broker_config_def(synonym.name).unwrap();
                assert_eq!(def.deprecated, topic.deprecated, "{}", def.name);
                if def.default.is_some() && synonym.unit == crate::config::def::SynonymUnit::Same {
                    let broker_value = config.value(synonym.name).unwrap().to_config_string();
                    let topic_value = ConfigValue::parse(topic, topic.default.unwrap())
                        .unwrap()
                        .to_config_string();
                    assert_eq!(broker_value, topic_value, "{}", synonym.name);
                }
            }
        }
    }
}
