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

    /// The DescribeConfigs entries of the cluster-wide default resource (the
    /// broker resource with the empty name): only the keys with a dynamic
    /// default, each with source `DynamicDefaultBroker`.
    pub fn describe_dynamic_defaults(&self) -> Vec<DescribedConfig> {
        self.dynamic_default
            .iter()
            .filter_map(|(name, value)| {
                let def = broker_config_def(name)?;
                let shown = (!def.sensitive).then(|| value.to_config_string());
                Some(DescribedConfig {
                    name: def.name.to_string(),
                    value: shown.clone(),
                    source: ConfigSource::DynamicDefaultBroker,
                    read_only: def.is_read_only(),
                    sensitive: def.sensitive,
                    config_type: def.config_type,
                    documentation: def.documentation,
                    synonyms: vec![(
                        def.name.to_string(),
                        shown,
                        ConfigSource::DynamicDefaultBroker,
                    )],
                })
            })
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
mod tests;
