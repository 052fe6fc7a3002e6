//! Topics: CreateTopics, DeleteTopics, CreatePartitions, and Metadata to list and
//! describe them.

use std::collections::{BTreeMap, HashMap};

use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::{CreatePartitionsRequest, CreateTopicsRequest, DeleteTopicsRequest};

use super::retry::Outcomes;
use super::{str_bytes, topic_name, Admin};
use crate::cluster::PartitionInfo;
use crate::error::{Error, Result};

/// A topic to create.
///
/// ```
/// use runnel_client::admin::NewTopic;
/// let topic = NewTopic::new("orders", 6)
///     .replication_factor(3)
///     .config("cleanup.policy", "compact");
/// assert_eq!(topic.partitions, 6);
/// assert_eq!(topic.configs, vec![("cleanup.policy".to_string(), "compact".to_string())]);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTopic {
    /// Topic name.
    pub name: String,
    /// Number of partitions; -1 for the broker's `num.partitions`.
    pub partitions: i32,
    /// Replication factor; -1 for the broker's `default.replication.factor`.
    pub replication_factor: i16,
    /// Topic configs (`retention.ms`, `cleanup.policy`, ...), in order.
    pub configs: Vec<(String, String)>,
}

impl NewTopic {
    /// A topic with `partitions` partitions and the broker's default replication factor.
    pub fn new(name: impl Into<String>, partitions: i32) -> NewTopic {
        NewTopic {
            name: name.into(),
            partitions,
            replication_factor: -1,
            configs: Vec::new(),
        }
    }

    /// Sets the replication factor.
    pub fn replication_factor(mut self, replication_factor: i16) -> NewTopic {
        self.replication_factor = replication_factor;
        self
    }

    /// Adds a topic config.
    pub fn config(mut self, key: impl Into<String>, value: impl Into<String>) -> NewTopic {
        self.configs.push((key.into(), value.into()));
        self
    }
}

/// A topic as [`Admin::list_topics`] names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicListing {
    /// Topic name.
    pub name: String,
    /// Topic id (nil if the broker has none).
    pub topic_id: uuid::Uuid,
    /// Whether the topic is internal (`__consumer_offsets`, ...).
    pub internal: bool,
}

/// A topic as [`Admin::describe_topics`] describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicDescription {
    /// Topic name.
    pub name: String,
    /// Topic id (nil if the broker has none).
    pub topic_id: uuid::Uuid,
    /// Whether the topic is internal.
    pub internal: bool,
    /// Partitions in index order: leader, replicas, in-sync replicas.
    pub partitions: Vec<PartitionInfo>,
}

impl Admin {
    /// Creates topics (CreateTopics, sent to the controller). With `validate_only`
    /// the broker only checks the request. Answers per topic, e.g.
    /// `TOPIC_ALREADY_EXISTS` for one that exists.
    pub async fn create_topics(
        &self,
        topics: Vec<NewTopic>,
        validate_only: bool,
    ) -> Result<BTreeMap<String, Result<()>>> {
        let names = topics.iter().map(|t| t.name.clone()).collect();
        let specs: HashMap<String, NewTopic> =
            topics.into_iter().map(|t| (t.name.clone(), t)).collect();
        let specs = &specs;
        self.per_item(names, |names: Vec<String>| async move {
            let request = CreateTopicsRequest::default()
                .with_topics(
                    names
                        .iter()
                        .filter_map(|n| specs.get(n))
                        .map(creatable_topic)
                        .collect(),
                )
                .with_timeout_ms(self.broker_timeout_ms())
                .with_validate_only(validate_only);
            let response = self.controller().await?.send(&request).await?;
            Ok(response
                .topics
                .iter()
                .map(|t| {
                    let name = t.name.0.to_string();
                    let result = Error::check(t.error_code, t.error_message.as_deref(), || {
                        format!("CreateTopics {name}")
                    });
                    (name, result)
                })
                .collect::<Outcomes<String, ()>>())
        })
        .await
    }

    /// Deletes topics by name (DeleteTopics, sent to the controller). Answers per
    /// topic, e.g. `UNKNOWN_TOPIC_OR_PARTITION` for one that does not exist.
    pub async fn delete_topics(&self, names: &[&str]) -> Result<BTreeMap<String, Result<()>>> {
        let names = names.iter().map(|n| (*n).to_owned()).collect();
        self.per_item(names, |names: Vec<String>| async move {
            let connection = self.controller().await?;
            let version = connection.version_for::<DeleteTopicsRequest>(None)?;
            let mut request =
                DeleteTopicsRequest::default().with_timeout_ms(self.broker_timeout_ms());
            if version >= 6 {
                request.topics = names
                    .iter()
                    .map(|n| DeleteTopicState::default().with_name(Some(topic_name(n))))
                    .collect();
            } else {
                request.topic_names = names.iter().map(|n| topic_name(n)).collect();
            }
            let response = connection.send_version(&request, version).await?;
            Ok(response
                .responses
                .iter()
                .map(|t| {
                    let name = t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default();
                    let result = Error::check(t.error_code, t.error_message.as_deref(), || {
                        format!("DeleteTopics {name}")
                    });
                    (name, result)
                })
                .collect::<Outcomes<String, ()>>())
        })
        .await
    }

    /// Lists topics (Metadata for every topic), internal ones only when asked, by name.
    pub async fn list_topics(&self, include_internal: bool) -> Result<Vec<TopicListing>> {
        self.retrying(|| async {
            self.cluster.refresh_metadata(&[]).await?;
            Ok(self
                .cluster
                .metadata()
                .topics
                .values()
                .filter(|t| include_internal || !t.internal)
                .map(|t| TopicListing {
                    name: t.name.clone(),
                    topic_id: t.id,
                    internal: t.internal,
                })
                .collect())
        })
        .await
    }

    /// Describes topics (Metadata for those topics): partitions with leader, replicas
    /// and ISR, topic id, internal flag. A topic that does not exist is answered with
    /// [`Error::UnknownTopic`].
    pub async fn describe_topics(
        &self,
        names: &[&str],
    ) -> Result<BTreeMap<String, Result<TopicDescription>>> {
        let names = names.iter().map(|n| (*n).to_owned()).collect();
        self.per_item(names, |names: Vec<String>| async move {
            let errors = self.cluster.refresh_metadata(&names).await?;
            let metadata = self.cluster.metadata();
            Ok(names
                .into_iter()
                .map(|name| {
                    let result = match errors.iter().find(|(t, _)| *t == name) {
                        Some((_, 3)) => Err(Error::UnknownTopic(name.clone())),
                        Some((_, code)) => Err(Error::broker(
                            *code,
                            None,
                            format!("Metadata for topic {name}"),
                        )),
                        None => metadata
                            .topics
                            .get(&name)
                            .map(|t| TopicDescription {
                                name: t.name.clone(),
                                topic_id: t.id,
                                internal: t.internal,
                                partitions: t.partitions.clone(),
                            })
                            .ok_or_else(|| Error::UnknownTopic(name.clone())),
                    };
                    (name, result)
                })
                .collect::<Outcomes<String, TopicDescription>>())
        })
        .await
    }

    /// Grows `topic` to `new_total` partitions (CreatePartitions, sent to the
    /// controller). Kafka cannot shrink a topic: a smaller count is `INVALID_PARTITIONS`.
    pub async fn create_partitions(&self, topic: &str, new_total: i32) -> Result<()> {
        self.retrying(|| async {
            let request = CreatePartitionsRequest::default()
                .with_topics(vec![CreatePartitionsTopic::default()
                    .with_name(topic_name(topic))
                    .with_count(new_total)])
                .with_timeout_ms(self.broker_timeout_ms());
            let response = self.controller().await?.send(&request).await?;
            let result = response
                .results
                .iter()
                .find(|r| r.name.0.as_str() == topic)
                .ok_or_else(|| {
                    Error::Protocol(format!("CreatePartitions did not answer for {topic}"))
                })?;
            Error::check(result.error_code, result.error_message.as_deref(), || {
                format!("CreatePartitions {topic}")
            })
        })
        .await?;
        // The cached partition count is now stale.
        let _ = self.cluster.refresh_metadata(&[topic.to_owned()]).await;
        Ok(())
    }
}

fn creatable_topic(topic: &NewTopic) -> CreatableTopic {
    CreatableTopic::default()
        .with_name(topic_name(&topic.name))
        .with_num_partitions(topic.partitions)
        .with_replication_factor(topic.replication_factor)
        .with_configs(
            topic
                .configs
                .iter()
                .map(|(k, v)| {
                    CreatableTopicConfig::default()
                        .with_name(str_bytes(k))
                        .with_value(Some(str_bytes(v)))
                })
                .collect(),
        )
}
