//! The client's view of the cluster: brokers, topics, partition leaders and
//! group coordinators, with one pooled connection per broker.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;

use kafka_protocol::messages::{
    metadata_request::MetadataRequestTopic, BrokerId, FindCoordinatorRequest, MetadataRequest,
    MetadataResponse, TopicName,
};
use kafka_protocol::protocol::{Request, StrBytes};
use parking_lot::Mutex;

use crate::config::ClientConfig;
use crate::connection::Connection;
use crate::error::{Error, Result};

/// A broker as the metadata names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerInfo {
    /// `node.id`.
    pub id: i32,
    /// Advertised host.
    pub host: String,
    /// Advertised port.
    pub port: i32,
    /// `broker.rack`, if set.
    pub rack: Option<String>,
}

impl BrokerInfo {
    /// `host:port`.
    pub fn addr(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// One partition of a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionInfo {
    /// Partition index.
    pub partition: i32,
    /// Leader's node id, -1 if none.
    pub leader: i32,
    /// Leader epoch, -1 if the broker does not report it.
    pub leader_epoch: i32,
    /// Replica node ids.
    pub replicas: Vec<i32>,
    /// In-sync replica node ids.
    pub isr: Vec<i32>,
    /// Offline replica node ids.
    pub offline: Vec<i32>,
    /// The partition's error code in the metadata (0 if none).
    pub error_code: i16,
}

/// One topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicInfo {
    /// Name.
    pub name: String,
    /// Topic id (nil UUID if the broker has none).
    pub id: uuid::Uuid,
    /// Whether the topic is internal (e.g. `__consumer_offsets`).
    pub internal: bool,
    /// Partitions in index order.
    pub partitions: Vec<PartitionInfo>,
}

/// A point-in-time copy of the cluster metadata.
#[derive(Debug, Clone, Default)]
pub struct Metadata {
    /// Cluster id, when the broker reports one.
    pub cluster_id: Option<String>,
    /// Node id of the active controller, -1 if unknown.
    pub controller_id: i32,
    /// Brokers by node id.
    pub brokers: BTreeMap<i32, BrokerInfo>,
    /// Topics by name.
    pub topics: BTreeMap<String, TopicInfo>,
}

impl Metadata {
    /// Builds the view from a Metadata response; topics with an error are left out
    /// and their errors returned beside it.
    pub fn from_response(response: &MetadataResponse) -> (Metadata, Vec<(String, i16)>) {
        let mut errors = Vec::new();
        let brokers = response
            .brokers
            .iter()
            .map(|b| {
                let id = b.node_id.0;
                let info = BrokerInfo {
                    id,
                    host: b.host.to_string(),
                    port: b.port,
                    rack: b.rack.as_ref().map(|r| r.to_string()),
                };
                (id, info)
            })
            .collect();
        let mut topics = BTreeMap::new();
        for topic in &response.topics {
            let name = topic
                .name
                .as_ref()
                .map(|n| n.0.to_string())
                .unwrap_or_default();
            if topic.error_code != 0 {
                errors.push((name, topic.error_code));
                continue;
            }
            let mut partitions: Vec<PartitionInfo> = topic
                .partitions
                .iter()
                .map(|p| PartitionInfo {
                    partition: p.partition_index,
                    leader: p.leader_id.0,
                    leader_epoch: p.leader_epoch,
                    replicas: p.replica_nodes.iter().map(|b| b.0).collect(),
                    isr: p.isr_nodes.iter().map(|b| b.0).collect(),
                    offline: p.offline_replicas.iter().map(|b| b.0).collect(),
                    error_code: p.error_code,
                })
                .collect();
            partitions.sort_by_key(|p| p.partition);
            topics.insert(
                name.clone(),
                TopicInfo {
                    name,
                    id: topic.topic_id,
                    internal: topic.is_internal,
                    partitions,
                },
            );
        }
        let metadata = Metadata {
            cluster_id: response.cluster_id.as_ref().map(|c| c.to_string()),
            controller_id: response.controller_id.0,
            brokers,
            topics,
        };
        (metadata, errors)
    }

    /// The partition's leader node id, if it has one.
    pub fn leader(&self, topic: &str, partition: i32) -> Option<i32> {
        let p = self.topics.get(topic)?.partitions.get(partition as usize)?;
        (p.leader >= 0).then_some(p.leader)
    }
}

/// Which kind of coordinator to look up (FindCoordinator key type).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CoordinatorKind {
    /// A consumer group's coordinator.
    Group,
    /// A transactional id's coordinator.
    Transaction,
}

#[derive(Debug, Default)]
struct State {
    metadata: Arc<Metadata>,
    fetched_at: Option<Instant>,
    /// Pooled connections by node id.
    brokers: HashMap<i32, Arc<Connection>>,
    /// The bootstrap connection, used until broker ids are known.
    bootstrap: Option<Arc<Connection>>,
    coordinators: HashMap<(CoordinatorKind, String), i32>,
}

/// Shared by every producer, consumer and admin client built on it.
#[derive(Debug)]
pub struct Cluster {
    config: ClientConfig,
    state: Mutex<State>,
    /// Serializes connection setup so racing callers share one connection per broker.
    connecting: tokio::sync::Mutex<()>,
}

impl Cluster {
    /// Connects to the first reachable bootstrap server and reads the cluster's metadata.
    pub async fn connect(config: ClientConfig) -> Result<Arc<Cluster>> {
        config.validate()?;
        let cluster = Arc::new(Cluster {
            config,
            state: Mutex::default(),
            connecting: tokio::sync::Mutex::new(()),
        });
        cluster.refresh_metadata(&[]).await?;
        Ok(cluster)
    }

    /// The configuration this cluster was connected with.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// The metadata last fetched.
    pub fn metadata(&self) -> Arc<Metadata> {
        self.state.lock().metadata.clone()
    }

    /// Any live connection: a pooled one, else a bootstrap server.
    pub async fn any_broker(&self) -> Result<Arc<Connection>> {
        {
            let state = self.state.lock();
            if let Some(c) = state.brokers.values().find(|c| !c.is_closed()) {
                return Ok(c.clone());
            }
            if let Some(c) = state.bootstrap.as_ref().filter(|c| !c.is_closed()) {
                return Ok(c.clone());
            }
        }
        let known: Vec<i32> = self.state.lock().metadata.brokers.keys().copied().collect();
        for id in known {
            if let Ok(c) = self.broker(id).await {
                return Ok(c);
            }
        }
        self.bootstrap().await
    }

    async fn bootstrap(&self) -> Result<Arc<Connection>> {
        let _guard = self.connecting.lock().await;
        if let Some(c) = self
            .state
            .lock()
            .bootstrap
            .as_ref()
            .filter(|c| !c.is_closed())
        {
            return Ok(c.clone());
        }
        let mut last = String::new();
        for addr in &self.config.bootstrap_servers {
            match self.open(addr).await {
                Ok(c) => {
                    let c = Arc::new(c);
                    self.state.lock().bootstrap = Some(c.clone());
                    return Ok(c);
                }
                Err(e) => last = e.to_string(),
            }
        }
        Err(Error::NoBrokerReachable {
            tried: self.config.bootstrap_servers.join(","),
            last,
        })
    }

    async fn open(&self, addr: &str) -> Result<Connection> {
        Connection::connect(
            addr,
            &self.config.client_id,
            self.config.connect_timeout,
            self.config.request_timeout,
        )
        .await
    }

    /// The pooled connection to broker `id`, opened if needed.
    pub async fn broker(&self, id: i32) -> Result<Arc<Connection>> {
        if let Some(c) = self
            .state
            .lock()
            .brokers
            .get(&id)
            .filter(|c| !c.is_closed())
        {
            return Ok(c.clone());
        }
        let _guard = self.connecting.lock().await;
        let addr = {
            let state = self.state.lock();
            if let Some(c) = state.brokers.get(&id).filter(|c| !c.is_closed()) {
                return Ok(c.clone());
            }
            state.metadata.brokers.get(&id).map(BrokerInfo::addr)
        };
        let addr = addr.ok_or_else(|| Error::Connection {
            addr: format!("node {id}"),
            reason: "the metadata names no such broker".into(),
        })?;
        let connection = Arc::new(self.open(&addr).await?);
        self.state.lock().brokers.insert(id, connection.clone());
        Ok(connection)
    }

    /// Sends a request to any broker, trying another one if the connection breaks.
    pub async fn send_any<R: Request>(&self, request: &R) -> Result<R::Response> {
        let connection = self.any_broker().await?;
        match connection.send(request).await {
            Err(e @ Error::Connection { .. }) => {
                tracing::debug!(error = %e, "retrying on another broker");
                self.any_broker().await?.send(request).await
            }
            other => other,
        }
    }

    /// Fetches metadata for `topics` (every topic if empty) and merges it into the cache.
    /// Returns the per-topic errors (e.g. UNKNOWN_TOPIC_OR_PARTITION).
    pub async fn refresh_metadata(&self, topics: &[String]) -> Result<Vec<(String, i16)>> {
        self.fetch_metadata(topics, false).await
    }

    /// Like [`Cluster::refresh_metadata`], letting the broker auto-create missing topics
    /// if it is configured to.
    pub async fn fetch_metadata(
        &self,
        topics: &[String],
        auto_create: bool,
    ) -> Result<Vec<(String, i16)>> {
        let request = MetadataRequest::default()
            .with_topics(if topics.is_empty() {
                None
            } else {
                Some(
                    topics
                        .iter()
                        .map(|t| {
                            MetadataRequestTopic::default()
                                .with_name(Some(TopicName(StrBytes::from_string(t.clone()))))
                        })
                        .collect(),
                )
            })
            .with_allow_auto_topic_creation(auto_create);
        let response = self.send_any(&request).await?;
        let (fresh, errors) = Metadata::from_response(&response);
        let mut state = self.state.lock();
        let mut merged = if topics.is_empty() {
            fresh.clone()
        } else {
            let mut merged = (*state.metadata).clone();
            merged.cluster_id = fresh.cluster_id.clone();
            merged.controller_id = fresh.controller_id;
            merged.brokers = fresh.brokers.clone();
            for (name, _) in &errors {
                merged.topics.remove(name);
            }
            merged.topics.extend(fresh.topics.clone());
            merged
        };
        if merged.brokers.is_empty() {
            merged.brokers = state.metadata.brokers.clone();
        }
        // Connections to brokers that left the metadata, or moved, are dropped.
        let brokers = merged.brokers.clone();
        state
            .brokers
            .retain(|id, c| brokers.get(id).is_some_and(|b| b.addr() == c.addr()));
        state.metadata = Arc::new(merged);
        state.fetched_at = Some(Instant::now());
        Ok(errors)
    }

    /// Whether the cached metadata is older than `metadata.max.age.ms`.
    pub fn metadata_is_stale(&self) -> bool {
        self.state
            .lock()
            .fetched_at
            .is_none_or(|at| at.elapsed() >= self.config.metadata_max_age)
    }

    /// The topic's metadata, fetched if it is not cached.
    pub async fn topic(&self, name: &str) -> Result<TopicInfo> {
        if let Some(t) = self.metadata().topics.get(name) {
            return Ok(t.clone());
        }
        let errors = self.refresh_metadata(&[name.to_owned()]).await?;
        if let Some((_, code)) = errors.iter().find(|(t, _)| t == name) {
            if *code == 3 {
                return Err(Error::UnknownTopic(name.to_owned()));
            }
            return Err(Error::broker(
                *code,
                None,
                format!("metadata for topic {name}"),
            ));
        }
        self.metadata()
            .topics
            .get(name)
            .cloned()
            .ok_or_else(|| Error::UnknownTopic(name.to_owned()))
    }

    /// The connection to the leader of `topic`-`partition`, refreshing metadata once if
    /// the leader is unknown.
    pub async fn leader(&self, topic: &str, partition: i32) -> Result<(i32, Arc<Connection>)> {
        let info = self.topic(topic).await?;
        if partition < 0 || partition as usize >= info.partitions.len() {
            return Err(Error::UnknownPartition {
                topic: topic.to_owned(),
                partition,
            });
        }
        let leader = match self.metadata().leader(topic, partition) {
            Some(id) => id,
            None => {
                self.refresh_metadata(&[topic.to_owned()]).await?;
                self.metadata().leader(topic, partition).ok_or_else(|| {
                    Error::broker(5, None, format!("no leader for {topic}-{partition}"))
                })?
            }
        };
        Ok((leader, self.broker(leader).await?))
    }

    /// The coordinator for a group (or transactional id), looked up with FindCoordinator
    /// and cached until [`Cluster::forget_coordinator`].
    pub async fn coordinator(
        &self,
        kind: CoordinatorKind,
        key: &str,
    ) -> Result<(i32, Arc<Connection>)> {
        let cached = self
            .state
            .lock()
            .coordinators
            .get(&(kind, key.to_owned()))
            .copied();
        if let Some(id) = cached {
            if let Ok(c) = self.broker(id).await {
                return Ok((id, c));
            }
        }
        let connection = self.any_broker().await?;
        let key_type = match kind {
            CoordinatorKind::Group => 0,
            CoordinatorKind::Transaction => 1,
        };
        let version = connection.version_for::<FindCoordinatorRequest>(None)?;
        let mut request = FindCoordinatorRequest::default().with_key_type(key_type);
        if version >= 4 {
            request.coordinator_keys = vec![StrBytes::from_string(key.to_owned())];
        } else {
            request.key = StrBytes::from_string(key.to_owned());
        }
        let response = connection.send_version(&request, version).await?;
        let (node, host, port, code, message) = match response.coordinators.first() {
            Some(c) if version >= 4 => (
                c.node_id,
                c.host.clone(),
                c.port,
                c.error_code,
                c.error_message.clone(),
            ),
            _ => (
                response.node_id,
                response.host.clone(),
                response.port,
                response.error_code,
                response.error_message.clone(),
            ),
        };
        Error::check(code, message.as_deref(), || {
            format!("FindCoordinator for {key}")
        })?;
        let BrokerId(id) = node;
        let known = self.metadata().brokers.contains_key(&id);
        if !known {
            // A coordinator the metadata does not list yet: remember its address.
            let mut state = self.state.lock();
            let mut metadata = (*state.metadata).clone();
            metadata.brokers.insert(
                id,
                BrokerInfo {
                    id,
                    host: host.to_string(),
                    port,
                    rack: None,
                },
            );
            state.metadata = Arc::new(metadata);
        }
        self.state
            .lock()
            .coordinators
            .insert((kind, key.to_owned()), id);
        Ok((id, self.broker(id).await?))
    }

    /// Forgets a cached coordinator (after NOT_COORDINATOR or a broken connection).
    pub fn forget_coordinator(&self, kind: CoordinatorKind, key: &str) {
        self.state
            .lock()
            .coordinators
            .remove(&(kind, key.to_owned()));
    }

    /// Drops the pooled connection to broker `id` so the next call reconnects.
    pub fn forget_broker(&self, id: i32) {
        self.state.lock().brokers.remove(&id);
    }
}
