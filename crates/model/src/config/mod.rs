//! Kafka-named configuration for Runnel.
//!
//! Two tables define every key Runnel understands, under Kafka's exact names
//! with Kafka's types, defaults and valid values: [`topic`] (the topic-level
//! configs, each with its broker synonyms) and [`broker`] (the server's
//! configs, each with its update mode). Values are text on the way in (a TOML
//! file, `RUNNEL_*` environment variables, command-line overrides,
//! CreateTopics and IncrementalAlterConfigs requests) and are parsed and
//! validated against the table, with errors that name the key.
//!
//! The broker calls [`BrokerConfig::load`] at startup,
//! [`BrokerConfig::set_dynamic`] for IncrementalAlterConfigs on a broker
//! resource, [`TopicConfigOverrides`] for a topic's overrides,
//! [`resolve_topic_config`] / [`describe_topic_configs`] /
//! [`BrokerConfig::describe`] for DescribeConfigs, and
//! [`TopicSettings::resolve`] to configure a partition's log.
//!
//! This module knows nothing of files, sockets or the wire format: the caller
//! reads the file and the environment and converts results to responses.

pub mod broker;
mod broker_defs;
mod broker_getters;
mod def;
mod describe;
mod error;
mod listener;
mod sources;
pub mod topic;
mod topic_defs;
mod topic_settings;
mod value;

pub use broker::{
    broker_config_def, broker_config_defs, BrokerConfig, ConfigSources, ProcessRoles,
};
pub use def::{ConfigDef, ConfigType, Synonym, SynonymUnit, UpdateMode, Validator};
pub use describe::{ConfigSource, DescribedConfig, ResolvedConfig, SynonymEntry};
pub use error::ConfigError;
pub use listener::{parse_listeners, Listener};
pub use sources::{env_var_key, ENV_PREFIX, RESERVED_ENV_VARS};
pub use topic::{
    describe_topic_configs, resolve_topic_config, resolve_topic_value, topic_config_def,
    topic_config_defs, validate_topic_config, validate_topic_overrides, TopicConfigOverrides,
};
pub use topic_settings::{CleanupPolicy, CompressionType, TimestampType, TopicSettings};
pub use value::ConfigValue;
