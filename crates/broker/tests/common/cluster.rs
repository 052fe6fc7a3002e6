//! Three brokers in one process forming a cluster on loopback, each in its
//! own temp dir with free ports, and the requests the cluster tests share.

use std::net::SocketAddr;
use std::time::Instant;

use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use runnel_broker::{RunningServer, Server};
use runnel_model::config::{BrokerConfig, ConfigSources};
use runnel_protocol::batch::BatchBuilder;

use super::RawClient;

pub fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_string())
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub const CLUSTER_ID: &str = "AAAAAAAAAAAAAAAAAAAAAw";

#[derive(Debug)]
pub struct Node {
    pub id: i32,
    pub dir: tempfile::TempDir,
    pub client_port: u16,
    pub server: Option<RunningServer>,
}

#[derive(Debug)]
pub struct Cluster {
    pub nodes: Vec<Node>,
    voters: String,
    controller_ports: Vec<u16>,
    /// `process.roles` of each node.
    roles: Vec<&'static str>,
    /// Settings every node gets on top of the cluster's own.
    extra: Vec<(String, String)>,
}

pub const COMBINED: &str = "broker,controller";

impl Cluster {
    pub async fn start() -> Cluster {
        Cluster::start_with([COMBINED; 3]).await
    }

    /// Three combined nodes with these settings added.
    pub async fn start_configured(extra: &[(&str, &str)]) -> Cluster {
        Cluster::start_full([COMBINED; 3], extra).await
    }

    /// Three nodes with these roles; the controllers are the voters.
    pub async fn start_with(roles: [&'static str; 3]) -> Cluster {
        Cluster::start_full(roles, &[]).await
    }

    async fn start_full(roles: [&'static str; 3], extra: &[(&str, &str)]) -> Cluster {
        let controller_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let voters = controller_ports
            .iter()
            .enumerate()
            .filter(|(i, _)| roles[*i].contains("controller"))
            .map(|(i, port)| format!("{}@127.0.0.1:{port}", i + 1))
            .collect::<Vec<_>>()
            .join(",");
        let nodes = (1..=3)
            .map(|id| {
                let dir = tempfile::tempdir().unwrap();
                std::fs::write(
                    dir.path().join("meta.properties"),
                    format!("version=1\nnode.id={id}\ncluster.id={CLUSTER_ID}\n"),
                )
                .unwrap();
                Node {
                    id,
                    dir,
                    client_port: free_port(),
                    server: None,
                }
            })
            .collect();
        let mut cluster = Cluster {
            nodes,
            voters,
            controller_ports,
            roles: roles.to_vec(),
            extra: extra
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        // Each start waits for a quorum: start them together.
        let configs: Vec<BrokerConfig> = (0..3).map(|i| cluster.config(i)).collect();
        let started = futures_join(configs).await;
        for (node, server) in cluster.nodes.iter_mut().zip(started) {
            node.server = Some(server);
        }
        cluster
    }

    pub fn config(&self, index: usize) -> BrokerConfig {
        let node = &self.nodes[index];
        let roles = self.roles[index];
        let client = format!("PLAINTEXT://127.0.0.1:{}", node.client_port);
        let controller = format!("CONTROLLER://127.0.0.1:{}", self.controller_ports[index]);
        let listeners = match roles {
            "broker" => client,
            "controller" => controller,
            _ => format!("{client},{controller}"),
        };
        let overrides = [
            ("node.id", node.id.to_string()),
            ("log.dirs", node.dir.path().display().to_string()),
            ("listeners", listeners),
            ("process.roles", roles.into()),
            ("controller.listener.names", "CONTROLLER".into()),
            (
                "listener.security.protocol.map",
                "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT".into(),
            ),
            ("controller.quorum.voters", self.voters.clone()),
            ("broker.heartbeat.interval.ms", "200".into()),
        ];
        let overrides = overrides
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .chain(self.extra.iter().cloned());
        BrokerConfig::load(ConfigSources {
            file: None,
            env: Vec::new(),
            overrides: overrides.collect(),
        })
        .unwrap()
    }

    pub fn addr(&self, id: i32) -> SocketAddr {
        let port = self.nodes[(id - 1) as usize].client_port;
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    pub async fn client(&self, id: i32) -> RawClient {
        RawClient::connect(self.addr(id)).await
    }

    pub async fn stop_node(&mut self, id: i32) {
        if let Some(server) = self.nodes[(id - 1) as usize].server.take() {
            server.shutdown().await.unwrap();
        }
    }

    pub async fn restart_node(&mut self, id: i32) {
        let config = self.config((id - 1) as usize);
        let server = Server::start(config).await.unwrap();
        self.nodes[(id - 1) as usize].server = Some(server);
    }

    pub async fn stop(mut self) {
        for id in 1..=3 {
            let t = Instant::now();
            self.stop_node(id).await;
            eprintln!("stopped node {id} in {:?}", t.elapsed());
        }
    }
}

pub async fn futures_join(configs: Vec<BrokerConfig>) -> Vec<RunningServer> {
    let handles: Vec<_> = configs
        .into_iter()
        .map(|config| tokio::spawn(Server::start(config)))
        .collect();
    let mut servers = Vec::new();
    for handle in handles {
        servers.push(handle.await.unwrap().unwrap());
    }
    servers
}

pub async fn metadata(client: &mut RawClient, topic: &str) -> MetadataResponse {
    let request = MetadataRequest::default().with_topics(Some(vec![
        metadata_request::MetadataRequestTopic::default().with_name(Some(TopicName(s(topic)))),
    ]));
    client.call(ApiKey::Metadata, 12, &request).await
}

/// Partition index to leader id, as one node answers.
pub fn leaders(response: &MetadataResponse) -> Vec<(i32, i32)> {
    let mut out: Vec<(i32, i32)> = response.topics[0]
        .partitions
        .iter()
        .map(|p| (p.partition_index, p.leader_id.0))
        .collect();
    out.sort();
    out
}

pub fn produce_request(topic: &str, partition: i32) -> ProduceRequest {
    let batch = BatchBuilder::default()
        .keyed(0, b"k", Some(b"v"))
        .build()
        .unwrap();
    ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![produce_request::TopicProduceData::default()
            .with_name(TopicName(s(topic)))
            .with_partition_data(vec![
                produce_request::PartitionProduceData::default()
                    .with_index(partition)
                    .with_records(Some(batch.into())),
            ])])
}

pub async fn produce_code(client: &mut RawClient, topic: &str, partition: i32) -> i16 {
    let response: ProduceResponse = client
        .call(ApiKey::Produce, 9, &produce_request(topic, partition))
        .await;
    response.responses[0].partition_responses[0].error_code
}

pub async fn fetch_code(client: &mut RawClient, topic: &str, partition: i32) -> i16 {
    let request = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_max_bytes(1 << 20)
        .with_topics(vec![fetch_request::FetchTopic::default()
            .with_topic(TopicName(s(topic)))
            .with_partitions(vec![fetch_request::FetchPartition::default()
                .with_partition(partition)
                .with_fetch_offset(0)
                .with_partition_max_bytes(1 << 20)])]);
    let response: FetchResponse = client.call(ApiKey::Fetch, 12, &request).await;
    response.responses[0].partitions[0].error_code
}
