//! Configs: DescribeConfigs and IncrementalAlterConfigs (AlterConfigs for brokers
//! that predate KIP-339).

use std::fmt;
use std::sync::Arc;

use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::{
    alter_configs_request, incremental_alter_configs_request, AlterConfigsRequest,
    DescribeConfigsRequest, IncrementalAlterConfigsRequest,
};

use super::{str_bytes, Admin};
use crate::connection::Connection;
use crate::error::{Error, Result};

/// Something that has configs.
///
/// ```
/// use runnel_client::admin::ConfigResource;
/// assert_eq!(ConfigResource::Topic("orders".into()).to_string(), "topic orders");
/// assert_eq!(ConfigResource::Broker(1).to_string(), "broker 1");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ConfigResource {
    /// A topic, by name.
    Topic(String),
    /// A broker, by node id.
    Broker(i32),
}

impl ConfigResource {
    /// The resource type on the wire (2 topic, 4 broker).
    fn resource_type(&self) -> i8 {
        match self {
            ConfigResource::Topic(_) => 2,
            ConfigResource::Broker(_) => 4,
        }
    }

    /// The resource name on the wire.
    fn name(&self) -> String {
        match self {
            ConfigResource::Topic(name) => name.clone(),
            ConfigResource::Broker(id) => id.to_string(),
        }
    }
}

impl fmt::Display for ConfigResource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigResource::Topic(name) => write!(f, "topic {name}"),
            ConfigResource::Broker(id) => write!(f, "broker {id}"),
        }
    }
}

/// Where a config's value comes from (Kafka's `ConfigEntry.ConfigSource`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigSource {
    /// Set on the topic.
    DynamicTopic,
    /// Set dynamically on this broker.
    DynamicBroker,
    /// Set dynamically as the default of every broker.
    DynamicDefaultBroker,
    /// From the broker's configuration file.
    StaticBroker,
    /// Kafka's default.
    Default,
    /// Set dynamically on a broker logger.
    DynamicBrokerLogger,
    /// Any other source, by its wire number.
    Other(i8),
}

impl ConfigSource {
    fn from_wire(source: i8) -> ConfigSource {
        match source {
            1 => ConfigSource::DynamicTopic,
            2 => ConfigSource::DynamicBroker,
            3 => ConfigSource::DynamicDefaultBroker,
            4 => ConfigSource::StaticBroker,
            5 => ConfigSource::Default,
            6 => ConfigSource::DynamicBrokerLogger,
            other => ConfigSource::Other(other),
        }
    }

    /// Kafka's name for the source, e.g. `DYNAMIC_TOPIC_CONFIG`.
    pub fn name(&self) -> String {
        match self {
            ConfigSource::DynamicTopic => "DYNAMIC_TOPIC_CONFIG".into(),
            ConfigSource::DynamicBroker => "DYNAMIC_BROKER_CONFIG".into(),
            ConfigSource::DynamicDefaultBroker => "DYNAMIC_DEFAULT_BROKER_CONFIG".into(),
            ConfigSource::StaticBroker => "STATIC_BROKER_CONFIG".into(),
            ConfigSource::Default => "DEFAULT_CONFIG".into(),
            ConfigSource::DynamicBrokerLogger => "DYNAMIC_BROKER_LOGGER_CONFIG".into(),
            ConfigSource::Other(n) => format!("SOURCE_{n}"),
        }
    }
}

/// One config of a resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigEntry {
    /// Config name, e.g. `retention.ms`.
    pub name: String,
    /// Its value; `None` when sensitive or unset.
    pub value: Option<String>,
    /// Where the value comes from.
    pub source: ConfigSource,
    /// Whether it cannot be altered.
    pub read_only: bool,
    /// Whether the value is Kafka's default.
    pub is_default: bool,
    /// Whether the value is hidden because it is secret.
    pub sensitive: bool,
}

/// One change to a config (IncrementalAlterConfigs' operations).
///
/// ```
/// use runnel_client::admin::AlterConfigOp;
/// let ops = vec![
///     AlterConfigOp::Set("retention.ms".into(), "60000".into()),
///     AlterConfigOp::Delete("cleanup.policy".into()),
/// ];
/// assert_eq!(ops[1].key(), "cleanup.policy");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlterConfigOp {
    /// Sets the config to the value.
    Set(String, String),
    /// Removes the override: the config reverts to its default.
    Delete(String),
    /// Adds the value to a list config.
    Append(String, String),
    /// Removes the value from a list config.
    Subtract(String, String),
}

impl AlterConfigOp {
    /// The config the operation changes.
    pub fn key(&self) -> &str {
        match self {
            AlterConfigOp::Set(k, _)
            | AlterConfigOp::Delete(k)
            | AlterConfigOp::Append(k, _)
            | AlterConfigOp::Subtract(k, _) => k,
        }
    }

    fn wire(&self) -> (i8, Option<&str>) {
        match self {
            AlterConfigOp::Set(_, v) => (0, Some(v)),
            AlterConfigOp::Delete(_) => (1, None),
            AlterConfigOp::Append(_, v) => (2, Some(v)),
            AlterConfigOp::Subtract(_, v) => (3, Some(v)),
        }
    }
}

impl Admin {
    /// Describes a topic's or a broker's configs (DescribeConfigs; broker configs are
    /// asked of that broker), without synonyms.
    pub async fn describe_configs(&self, resource: &ConfigResource) -> Result<Vec<ConfigEntry>> {
        self.retrying(|| async {
            let request = DescribeConfigsRequest::default().with_resources(vec![
                DescribeConfigsResource::default()
                    .with_resource_type(resource.resource_type())
                    .with_resource_name(str_bytes(&resource.name()))
                    .with_configuration_keys(None),
            ]);
            let response = self.config_broker(resource).await?.send(&request).await?;
            let result = response
                .results
                .iter()
                .find(|r| r.resource_name.as_str() == resource.name())
                .ok_or_else(|| {
                    Error::Protocol(format!("DescribeConfigs did not answer for {resource}"))
                })?;
            Error::check(result.error_code, result.error_message.as_deref(), || {
                format!("DescribeConfigs {resource}")
            })?;
            Ok(result
                .configs
                .iter()
                .map(|c| {
                    let source = ConfigSource::from_wire(c.config_source);
                    ConfigEntry {
                        name: c.name.to_string(),
                        value: c.value.as_ref().map(|v| v.to_string()),
                        source,
                        read_only: c.read_only,
                        is_default: source == ConfigSource::Default,
                        sensitive: c.is_sensitive,
                    }
                })
                .collect())
        })
        .await
    }

    /// Applies `ops` to a resource's configs (IncrementalAlterConfigs). A broker
    /// without that API gets AlterConfigs instead, which replaces every dynamic
    /// config: the current ones are read first and the operations applied to them.
    pub async fn incremental_alter_configs(
        &self,
        resource: &ConfigResource,
        ops: &[AlterConfigOp],
    ) -> Result<()> {
        self.retrying(|| async {
            let connection = self.config_broker(resource).await?;
            match connection.version_for::<IncrementalAlterConfigsRequest>(None) {
                Ok(version) => {
                    self.alter_incrementally(&connection, version, resource, ops)
                        .await
                }
                Err(Error::UnsupportedVersion { .. }) => {
                    self.alter_whole(&connection, resource, ops).await
                }
                Err(e) => Err(e),
            }
        })
        .await
    }

    async fn alter_incrementally(
        &self,
        connection: &Connection,
        version: i16,
        resource: &ConfigResource,
        ops: &[AlterConfigOp],
    ) -> Result<()> {
        use incremental_alter_configs_request::{AlterConfigsResource, AlterableConfig};
        let configs = ops
            .iter()
            .map(|op| {
                let (operation, value) = op.wire();
                AlterableConfig::default()
                    .with_name(str_bytes(op.key()))
                    .with_config_operation(operation)
                    .with_value(value.map(str_bytes))
            })
            .collect();
        let request = IncrementalAlterConfigsRequest::default().with_resources(vec![
            AlterConfigsResource::default()
                .with_resource_type(resource.resource_type())
                .with_resource_name(str_bytes(&resource.name()))
                .with_configs(configs),
        ]);
        let response = connection.send_version(&request, version).await?;
        let result = response.responses.first().ok_or_else(|| {
            Error::Protocol(format!(
                "IncrementalAlterConfigs did not answer for {resource}"
            ))
        })?;
        Error::check(result.error_code, result.error_message.as_deref(), || {
            format!("IncrementalAlterConfigs {resource}")
        })
    }

    async fn alter_whole(
        &self,
        connection: &Connection,
        resource: &ConfigResource,
        ops: &[AlterConfigOp],
    ) -> Result<()> {
        use alter_configs_request::{AlterConfigsResource, AlterableConfig};
        let dynamic = match resource {
            ConfigResource::Topic(_) => ConfigSource::DynamicTopic,
            ConfigResource::Broker(_) => ConfigSource::DynamicBroker,
        };
        let mut current: Vec<(String, String)> = self
            .describe_configs(resource)
            .await?
            .into_iter()
            .filter(|c| c.source == dynamic)
            .filter_map(|c| c.value.map(|v| (c.name, v)))
            .collect();
        apply_ops(&mut current, ops);
        let request =
            AlterConfigsRequest::default().with_resources(vec![AlterConfigsResource::default()
                .with_resource_type(resource.resource_type())
                .with_resource_name(str_bytes(&resource.name()))
                .with_configs(
                    current
                        .iter()
                        .map(|(k, v)| {
                            AlterableConfig::default()
                                .with_name(str_bytes(k))
                                .with_value(Some(str_bytes(v)))
                        })
                        .collect(),
                )]);
        let response = connection.send(&request).await?;
        let result = response.responses.first().ok_or_else(|| {
            Error::Protocol(format!("AlterConfigs did not answer for {resource}"))
        })?;
        Error::check(result.error_code, result.error_message.as_deref(), || {
            format!("AlterConfigs {resource}")
        })
    }

    /// Broker configs are answered by that broker; topic configs by any.
    async fn config_broker(&self, resource: &ConfigResource) -> Result<Arc<Connection>> {
        match resource {
            ConfigResource::Broker(id) => self.cluster.broker(*id).await,
            ConfigResource::Topic(_) => self.cluster.any_broker().await,
        }
    }
}

/// Applies incremental operations to a full list of overrides (for AlterConfigs);
/// list values are comma separated, as Kafka writes them.
fn apply_ops(configs: &mut Vec<(String, String)>, ops: &[AlterConfigOp]) {
    for op in ops {
        let at = configs.iter().position(|(k, _)| k == op.key());
        let items = |at: Option<usize>, configs: &Vec<(String, String)>| -> Vec<String> {
            at.map(|i| {
                configs[i]
                    .1
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
        };
        let value = match op {
            AlterConfigOp::Set(_, v) => Some(v.clone()),
            AlterConfigOp::Delete(_) => None,
            AlterConfigOp::Append(_, v) => {
                let mut list = items(at, configs);
                if !list.contains(v) {
                    list.push(v.clone());
                }
                Some(list.join(","))
            }
            AlterConfigOp::Subtract(_, v) => {
                let list: Vec<String> = items(at, configs).into_iter().filter(|i| i != v).collect();
                Some(list.join(","))
            }
        };
        match (at, value) {
            (Some(i), Some(v)) => configs[i].1 = v,
            (None, Some(v)) => configs.push((op.key().to_owned(), v)),
            (Some(i), None) => {
                configs.remove(i);
            }
            (None, None) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_config_replacement_applies_every_operation() {
        let mut configs = vec![
            ("retention.ms".to_owned(), "1000".to_owned()),
            ("cleanup.policy".to_owned(), "delete".to_owned()),
        ];
        apply_ops(
            &mut configs,
            &[
                AlterConfigOp::Set("retention.ms".into(), "2000".into()),
                AlterConfigOp::Append("cleanup.policy".into(), "compact".into()),
                AlterConfigOp::Append("cleanup.policy".into(), "compact".into()),
                AlterConfigOp::Subtract("cleanup.policy".into(), "delete".into()),
                AlterConfigOp::Set("segment.ms".into(), "5".into()),
                AlterConfigOp::Delete("missing".into()),
            ],
        );
        assert_eq!(
            configs,
            vec![
                ("retention.ms".to_owned(), "2000".to_owned()),
                ("cleanup.policy".to_owned(), "compact".to_owned()),
                ("segment.ms".to_owned(), "5".to_owned()),
            ]
        );
        apply_ops(&mut configs, &[AlterConfigOp::Delete("segment.ms".into())]);
        assert_eq!(configs.len(), 2);
    }
}
