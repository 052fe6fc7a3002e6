//! DescribeConfigs, AlterConfigs and IncrementalAlterConfigs for topics and
//! this broker.

use std::collections::BTreeMap;

use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{
    alter_configs_response, incremental_alter_configs_response, AlterConfigsRequest,
    AlterConfigsResponse, DescribeConfigsRequest, DescribeConfigsResponse,
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
};
use kafka_protocol::protocol::VersionRange;
use kafka_protocol::ResponseError;
use runnel_model::config::{
    resolve_topic_config, topic_config_def, topic_config_defs, validate_topic_config, ConfigType,
    TopicConfigOverrides,
};
use runnel_model::TopicName;

use super::str_bytes;
use runnel_quorum::{ControllerRequest, ControllerResponse};

use super::forward;
use crate::broker::Broker;
use crate::connection::RequestContext;

pub(crate) const DESCRIBE_VERSIONS: VersionRange = VersionRange { min: 1, max: 4 };
pub(crate) const ALTER_VERSIONS: VersionRange = VersionRange { min: 0, max: 2 };
pub(crate) const INCREMENTAL_ALTER_VERSIONS: VersionRange = VersionRange { min: 0, max: 1 };

const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;

const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
const OP_APPEND: i8 = 2;
const OP_SUBTRACT: i8 = 3;

/// One described config, independent of the response version.
#[derive(Debug, Clone)]
pub(crate) struct ConfigEntry {
    pub name: String,
    pub value: Option<String>,
    pub source: i8,
    pub read_only: bool,
    pub sensitive: bool,
    pub config_type: i8,
    pub documentation: Option<String>,
    pub synonyms: Vec<(String, Option<String>, i8)>,
}

/// Every topic config with its effective value for these overrides.
pub(crate) fn topic_config_entries(
    broker: &Broker,
    overrides: &BTreeMap<String, String>,
) -> Vec<ConfigEntry> {
    let config = broker.config.read();
    let overrides = to_overrides(overrides);
    // Deprecated names are accepted when set but, as in Kafka, not listed.
    topic_config_defs()
        .iter()
        .filter(|def| !def.deprecated)
        .filter_map(|def| {
            let resolved = resolve_topic_config(def.name, &overrides, &config)?;
            Some(ConfigEntry {
                name: def.name.to_string(),
                value: if def.sensitive { None } else { resolved.value },
                source: resolved.source as i8,
                read_only: false,
                sensitive: def.sensitive,
                config_type: def.config_type.code(),
                documentation: Some(def.documentation.to_string()),
                synonyms: resolved
                    .synonyms
                    .into_iter()
                    .map(|(name, value, source)| (name, value, source as i8))
                    .collect(),
            })
        })
        .collect()
}

fn to_overrides(map: &BTreeMap<String, String>) -> TopicConfigOverrides {
    let mut overrides = TopicConfigOverrides::default();
    for (k, v) in map {
        let _ = overrides.set(k, v);
    }
    overrides
}

fn broker_config_entries(broker: &Broker) -> Vec<ConfigEntry> {
    broker
        .config
        .read()
        .describe()
        .into_iter()
        .map(|c| ConfigEntry {
            name: c.name.to_string(),
            value: if c.sensitive { None } else { c.value },
            source: c.source as i8,
            read_only: c.read_only,
            sensitive: c.sensitive,
            config_type: c.config_type.code(),
            documentation: Some(c.documentation.to_string()),
            synonyms: c
                .synonyms
                .into_iter()
                .map(|(name, value, source)| (name, value, source as i8))
                .collect(),
        })
        .collect()
}

pub(crate) fn describe(
    ctx: &RequestContext,
    request: DescribeConfigsRequest,
) -> DescribeConfigsResponse {
    let broker = &ctx.broker;
    let version = ctx.api_version;
    let results = request
        .resources
        .into_iter()
        .map(|resource| {
            let name = resource.resource_name.to_string();
            let result = DescribeConfigsResult::default()
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name.clone());
            let entries = match resource.resource_type {
                RESOURCE_TOPIC => match broker.topics.get(&name) {
                    Some(topic) => Ok(topic_config_entries(broker, &topic.configs)),
                    None => Err((
                        ResponseError::UnknownTopicOrPartition,
                        format!("Topic '{name}' does not exist."),
                    )),
                },
                RESOURCE_BROKER => {
                    check_broker_name(broker, &name).map(|()| broker_config_entries(broker))
                }
                other => Err((
                    ResponseError::InvalidRequest,
                    format!("Unsupported resource type {other}"),
                )),
            };
            let entries = match entries {
                Ok(entries) => entries,
                Err((error, message)) => {
                    return result
                        .with_error_code(error.code())
                        .with_error_message(Some(str_bytes(message)))
                }
            };
            // Null lists every config; so does an empty list, as in Kafka.
            let keys: Option<Vec<String>> = resource
                .configuration_keys
                .filter(|keys| !keys.is_empty())
                .map(|keys| keys.iter().map(|k| k.to_string()).collect());
            let configs = entries
                .into_iter()
                .filter(|e| keys.as_ref().is_none_or(|keys| keys.contains(&e.name)))
                .map(|e| {
                    let synonyms = if request.include_synonyms {
                        e.synonyms
                            .iter()
                            .map(|(name, value, source)| {
                                DescribeConfigsSynonym::default()
                                    .with_name(str_bytes(name.clone()))
                                    .with_value(value.clone().map(str_bytes))
                                    .with_source(*source)
                            })
                            .collect()
                    } else {
                        Vec::new()
                    };
                    let entry = DescribeConfigsResourceResult::default()
                        .with_name(str_bytes(e.name))
                        .with_value(e.value.map(str_bytes))
                        .with_read_only(e.read_only)
                        .with_config_source(e.source)
                        .with_is_sensitive(e.sensitive)
                        .with_synonyms(synonyms);
                    if version >= 3 {
                        entry.with_config_type(e.config_type).with_documentation(
                            if request.include_documentation {
                                e.documentation.map(str_bytes)
                            } else {
                                None
                            },
                        )
                    } else {
                        entry
                    }
                })
                .collect();
            result.with_configs(configs)
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

fn check_broker_name(broker: &Broker, name: &str) -> Result<(), (ResponseError, String)> {
    if name.is_empty() || name == broker.node_id.to_string() {
        Ok(())
    } else {
        Err((
            ResponseError::InvalidRequest,
            format!(
                "Unexpected broker id, expected {} or empty string, but received {name}",
                broker.node_id
            ),
        ))
    }
}

/// A requested change to one config.
enum Change {
    Set(String),
    Delete,
    Append(String),
    Subtract(String),
}

type Failure = (ResponseError, String);

async fn apply_topic_changes(
    broker: &Broker,
    name: &str,
    changes: Vec<(String, Change)>,
    replace: Replace,
    validate_only: bool,
) -> Result<(), Failure> {
    let topic = broker.topics.get(name).ok_or_else(|| {
        (
            ResponseError::UnknownTopicOrPartition,
            format!("Topic '{name}' does not exist."),
        )
    })?;
    let mut configs = if replace == Replace::All {
        BTreeMap::new()
    } else {
        topic.configs.clone()
    };
    for (key, change) in changes {
        let def = topic_config_def(&key).ok_or_else(|| {
            (
                ResponseError::InvalidConfig,
                format!("Unknown topic config name: {key}"),
            )
        })?;
        let value = match change {
            Change::Set(value) => Some(value),
            Change::Delete => None,
            Change::Append(value) | Change::Subtract(value)
                if def.config_type != ConfigType::List =>
            {
                let _ = value;
                return Err((
                    ResponseError::InvalidConfig,
                    format!("Config value append/subtract is not allowed for config key {key}: it is not a list"),
                ));
            }
            Change::Append(value) => {
                let mut list = current_list(broker, &configs, &key);
                for item in split_list(&value) {
                    if !list.contains(&item) {
                        list.push(item);
                    }
                }
                Some(list.join(","))
            }
            Change::Subtract(value) => {
                let remove = split_list(&value);
                let list: Vec<String> = current_list(broker, &configs, &key)
                    .into_iter()
                    .filter(|item| !remove.contains(item))
                    .collect();
                Some(list.join(","))
            }
        };
        match value {
            Some(value) => {
                validate_topic_config(&key, &value)
                    .map_err(|e| (ResponseError::InvalidConfig, e.to_string()))?;
                configs.insert(key, value);
            }
            None => {
                configs.remove(&key);
            }
        }
    }
    let name = TopicName::new(name.to_string())
        .map_err(|e| (ResponseError::InvalidTopicException, e.to_string()))?;
    // The changes as the controller records them: set or removed keys.
    let mut diff: Vec<(String, Option<String>)> = configs
        .iter()
        .filter(|(k, v)| topic.configs.get(*k) != Some(*v))
        .map(|(k, v)| (k.clone(), Some(v.clone())))
        .collect();
    diff.extend(
        topic
            .configs
            .keys()
            .filter(|k| !configs.contains_key(*k))
            .map(|k| (k.clone(), None)),
    );
    let request = ControllerRequest::AlterTopicConfigs {
        topic: name,
        changes: diff,
        validate_only,
    };
    let answer = forward::submit(broker, request, |r| match r {
        ControllerResponse::AlterTopicConfigs(answer) => Ok(answer),
        other => Err(other),
    })
    .await?;
    answer.map_err(|e| forward::topic_error(&e))
}

fn current_list(broker: &Broker, configs: &BTreeMap<String, String>, key: &str) -> Vec<String> {
    let config = broker.config.read();
    resolve_topic_config(key, &to_overrides(configs), &config)
        .and_then(|r| r.value)
        .map(|v| split_list(v.as_ref()))
        .unwrap_or_default()
}

fn split_list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

fn apply_broker_changes(
    broker: &Broker,
    name: &str,
    changes: Vec<(String, Change)>,
    validate_only: bool,
) -> Result<(), Failure> {
    check_broker_name(broker, name)?;
    let mut candidate = broker.config.read().clone();
    for (key, change) in changes {
        let value = match change {
            Change::Set(value) => Some(value),
            Change::Delete => None,
            Change::Append(_) | Change::Subtract(_) => {
                return Err((
                    ResponseError::InvalidConfig,
                    format!(
                        "Config value append/subtract is not supported for broker config {key}"
                    ),
                ))
            }
        };
        candidate
            .set_dynamic(&key, value.as_deref())
            .map_err(|e| (ResponseError::InvalidConfig, e.to_string()))?;
    }
    if !validate_only {
        *broker.config.write() = candidate;
        broker.reapply_log_configs();
    }
    Ok(())
}

/// Whether a change replaces every override of a topic (AlterConfigs) or
/// only the configs it names (IncrementalAlterConfigs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Replace {
    All,
    Named,
}

async fn apply_changes(
    broker: &Broker,
    resource_type: i8,
    name: &str,
    changes: Vec<(String, Change)>,
    replace: Replace,
    validate_only: bool,
) -> Result<(), Failure> {
    match resource_type {
        RESOURCE_TOPIC => apply_topic_changes(broker, name, changes, replace, validate_only).await,
        RESOURCE_BROKER => apply_broker_changes(broker, name, changes, validate_only),
        other => Err((
            ResponseError::InvalidRequest,
            format!("Unsupported resource type {other}"),
        )),
    }
}

pub(crate) async fn alter(
    ctx: &RequestContext,
    request: AlterConfigsRequest,
) -> AlterConfigsResponse {
    let broker = &ctx.broker;
    let mut responses = Vec::new();
    for resource in request.resources {
        responses.push({
            let name = resource.resource_name.to_string();
            let changes = resource
                .configs
                .into_iter()
                .map(|c| {
                    let change = match c.value {
                        Some(v) => Change::Set(v.to_string()),
                        None => Change::Delete,
                    };
                    (c.name.to_string(), change)
                })
                .collect();
            let outcome = apply_changes(
                broker,
                resource.resource_type,
                &name,
                changes,
                Replace::All,
                request.validate_only,
            )
            .await;
            let response = alter_configs_response::AlterConfigsResourceResponse::default()
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name);
            match outcome {
                Ok(()) => response,
                Err((error, message)) => response
                    .with_error_code(error.code())
                    .with_error_message(Some(str_bytes(message))),
            }
        });
    }
    AlterConfigsResponse::default().with_responses(responses)
}

pub(crate) async fn incremental_alter(
    ctx: &RequestContext,
    request: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let broker = &ctx.broker;
    let mut responses = Vec::new();
    for resource in request.resources {
        responses.push({
            let name = resource.resource_name.to_string();
            let mut changes = Vec::new();
            let mut invalid = None;
            for c in resource.configs {
                let value = c.value.map(|v| v.to_string());
                let change = match (c.config_operation, value) {
                    (OP_SET, Some(v)) => Change::Set(v),
                    (OP_DELETE, _) => Change::Delete,
                    (OP_APPEND, Some(v)) => Change::Append(v),
                    (OP_SUBTRACT, Some(v)) => Change::Subtract(v),
                    (OP_SET | OP_APPEND | OP_SUBTRACT, None) => {
                        invalid = Some((
                            ResponseError::InvalidRequest,
                            format!("Null value not supported for: {}", c.name),
                        ));
                        break;
                    }
                    (op, _) => {
                        invalid = Some((
                            ResponseError::InvalidRequest,
                            format!("Unknown config operation {op}"),
                        ));
                        break;
                    }
                };
                changes.push((c.name.to_string(), change));
            }
            let outcome = match invalid {
                Some(failure) => Err(failure),
                None => {
                    apply_changes(
                        broker,
                        resource.resource_type,
                        &name,
                        changes,
                        Replace::Named,
                        request.validate_only,
                    )
                    .await
                }
            };
            let response =
                incremental_alter_configs_response::AlterConfigsResourceResponse::default()
                    .with_resource_type(resource.resource_type)
                    .with_resource_name(resource.resource_name);
            match outcome {
                Ok(()) => response,
                Err((error, message)) => response
                    .with_error_code(error.code())
                    .with_error_message(Some(str_bytes(message))),
            }
        });
    }
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}
