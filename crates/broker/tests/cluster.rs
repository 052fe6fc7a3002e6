//! Three brokers in one process forming a cluster on loopback: requests
//! that reach a node which does not lead get NOT_LEADER_OR_FOLLOWER or
//! NOT_COORDINATOR, every node tells the same story, and a node that stops
//! hands its leaderships back and takes them again when it returns.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::RawClient;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use runnel_broker::{RunningServer, Server};
use runnel_model::config::{BrokerConfig, ConfigSources};
use runnel_protocol::batch::BatchBuilder;

fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_string())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

const CLUSTER_ID: &str = "AAAAAAAAAAAAAAAAAAAAAw";

struct Node {
    id: i32,
    dir: tempfile::TempDir,
    client_port: u16,
    server: Option<RunningServer>,
}

struct Cluster {
    nodes: Vec<Node>,
    voters: String,
    controller_ports: Vec<u16>,
    /// `process.roles` of each node.
    roles: Vec<&'static str>,
}

const COMBINED: &str = "broker,controller";

impl Cluster {
    async fn start() -> Cluster {
        Cluster::start_with([COMBINED; 3]).await
    }

    /// Three nodes with these roles; the controllers are the voters.
    async fn start_with(roles: [&'static str; 3]) -> Cluster {
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
        };
        // Each start waits for a quorum: start them together.
        let configs: Vec<BrokerConfig> = (0..3).map(|i| cluster.config(i)).collect();
        let started = futures_join(configs).await;
        for (node, server) in cluster.nodes.iter_mut().zip(started) {
            node.server = Some(server);
        }
        cluster
    }

    fn config(&self, index: usize) -> BrokerConfig {
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
        BrokerConfig::load(ConfigSources {
            file: None,
            env: Vec::new(),
            overrides: overrides
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
        })
        .unwrap()
    }

    fn addr(&self, id: i32) -> SocketAddr {
        let port = self.nodes[(id - 1) as usize].client_port;
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    async fn client(&self, id: i32) -> RawClient {
        RawClient::connect(self.addr(id)).await
    }

    async fn stop_node(&mut self, id: i32) {
        if let Some(server) = self.nodes[(id - 1) as usize].server.take() {
            server.shutdown().await.unwrap();
        }
    }

    async fn restart_node(&mut self, id: i32) {
        let config = self.config((id - 1) as usize);
        let server = Server::start(config).await.unwrap();
        self.nodes[(id - 1) as usize].server = Some(server);
    }

    async fn stop(mut self) {
        for id in 1..=3 {
            let t = Instant::now();
            self.stop_node(id).await;
            eprintln!("stopped node {id} in {:?}", t.elapsed());
        }
    }
}

async fn futures_join(configs: Vec<BrokerConfig>) -> Vec<RunningServer> {
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

async fn metadata(client: &mut RawClient, topic: &str) -> MetadataResponse {
    let request = MetadataRequest::default().with_topics(Some(vec![
        metadata_request::MetadataRequestTopic::default().with_name(Some(TopicName(s(topic)))),
    ]));
    client.call(ApiKey::Metadata, 12, &request).await
}

/// Partition index to leader id, as one node answers.
fn leaders(response: &MetadataResponse) -> Vec<(i32, i32)> {
    let mut out: Vec<(i32, i32)> = response.topics[0]
        .partitions
        .iter()
        .map(|p| (p.partition_index, p.leader_id.0))
        .collect();
    out.sort();
    out
}

fn produce_request(topic: &str, partition: i32) -> ProduceRequest {
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

async fn produce_code(client: &mut RawClient, topic: &str, partition: i32) -> i16 {
    let response: ProduceResponse = client
        .call(ApiKey::Produce, 9, &produce_request(topic, partition))
        .await;
    response.responses[0].partition_responses[0].error_code
}

async fn fetch_code(client: &mut RawClient, topic: &str, partition: i32) -> i16 {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_reach_the_leaders_and_every_node_agrees() {
    let t = Instant::now();
    let cluster = Cluster::start().await;
    eprintln!("started in {:?}", t.elapsed());
    let mut first = cluster.client(1).await;
    let request = CreateTopicsRequest::default().with_topics(vec![
        create_topics_request::CreatableTopic::default()
            .with_name(TopicName(s("spread")))
            .with_num_partitions(6)
            .with_replication_factor(1),
    ]);
    let created: CreateTopicsResponse = first.call(ApiKey::CreateTopics, 7, &request).await;
    assert_eq!(created.topics[0].error_code, 0, "{created:?}");
    // Three brokers, but partitions are not replicated yet: refused clearly.
    let replicated = CreateTopicsRequest::default().with_topics(vec![
        create_topics_request::CreatableTopic::default()
            .with_name(TopicName(s("replicated")))
            .with_num_partitions(1)
            .with_replication_factor(3),
    ]);
    let refused: CreateTopicsResponse = first.call(ApiKey::CreateTopics, 7, &replicated).await;
    assert_eq!(
        refused.topics[0].error_code,
        ResponseError::InvalidReplicationFactor.code(),
        "{refused:?}"
    );

    // Every node lists the three brokers and the same leaders.
    let mut answers = Vec::new();
    for id in 1..=3 {
        let mut client = cluster.client(id).await;
        let response = metadata(&mut client, "spread").await;
        let mut brokers: Vec<i32> = response.brokers.iter().map(|b| b.node_id.0).collect();
        brokers.sort();
        assert_eq!(brokers, vec![1, 2, 3], "node {id}");
        answers.push(leaders(&response));
    }
    assert!(answers.windows(2).all(|w| w[0] == w[1]), "{answers:?}");
    let leaders = answers.remove(0);
    let mut counts = [0; 3];
    for (_, leader) in &leaders {
        counts[(*leader - 1) as usize] += 1;
    }
    assert_eq!(counts, [2, 2, 2], "placement spreads leaders: {leaders:?}");

    for (partition, leader) in &leaders {
        let other = leader % 3 + 1;
        let mut wrong = cluster.client(other).await;
        let code = produce_code(&mut wrong, "spread", *partition).await;
        assert_eq!(
            code,
            ResponseError::NotLeaderOrFollower.code(),
            "produce to {other}"
        );
        let code = fetch_code(&mut wrong, "spread", *partition).await;
        assert_eq!(
            code,
            ResponseError::NotLeaderOrFollower.code(),
            "fetch from {other}"
        );
        let mut right = cluster.client(*leader).await;
        assert_eq!(produce_code(&mut right, "spread", *partition).await, 0);
        assert_eq!(fetch_code(&mut right, "spread", *partition).await, 0);
    }
    // A partition the topic does not have is unknown everywhere.
    let code = produce_code(&mut first, "spread", 6).await;
    assert_eq!(code, ResponseError::UnknownTopicOrPartition.code());

    // Every node names the same coordinator; only it takes the group's
    // commits, the others answer NOT_COORDINATOR.
    let find = FindCoordinatorRequest::default()
        .with_key_type(0)
        .with_coordinator_keys(vec![s("the-group")]);
    let mut coordinators = Vec::new();
    for id in 1..=3 {
        let mut client = cluster.client(id).await;
        let response: FindCoordinatorResponse =
            client.call(ApiKey::FindCoordinator, 4, &find).await;
        let found = &response.coordinators[0];
        assert_eq!(found.error_code, 0, "node {id}: {found:?}");
        assert_eq!(
            found.port,
            i32::from(cluster.addr(found.node_id.0).port()),
            "node {id} gives the coordinator's own address"
        );
        coordinators.push(found.node_id.0);
    }
    assert!(
        coordinators.windows(2).all(|w| w[0] == w[1]),
        "{coordinators:?}"
    );
    let coordinator = coordinators[0];
    let commit = |_: ()| {
        OffsetCommitRequest::default()
            .with_group_id(GroupId(s("the-group")))
            .with_generation_id_or_member_epoch(-1)
            .with_topics(vec![
                offset_commit_request::OffsetCommitRequestTopic::default()
                    .with_name(TopicName(s("spread")))
                    .with_partitions(vec![
                        offset_commit_request::OffsetCommitRequestPartition::default()
                            .with_partition_index(0)
                            .with_committed_offset(1),
                    ]),
            ])
    };
    for id in 1..=3 {
        let mut client = cluster.client(id).await;
        let response: OffsetCommitResponse =
            client.call(ApiKey::OffsetCommit, 8, &commit(())).await;
        let code = response.topics[0].partitions[0].error_code;
        if id == coordinator {
            assert_eq!(code, 0, "the coordinator takes the commit");
        } else {
            assert_eq!(code, ResponseError::NotCoordinator.code(), "node {id}");
        }
    }

    // Producer ids are unique across the cluster, whichever node hands them.
    let mut ids = std::collections::BTreeSet::new();
    for id in [1, 2, 3, 1, 2, 3] {
        let mut client = cluster.client(id).await;
        let response: InitProducerIdResponse = client
            .call(
                ApiKey::InitProducerId,
                4,
                &InitProducerIdRequest::default()
                    .with_transactional_id(None)
                    .with_transaction_timeout_ms(60_000),
            )
            .await;
        assert_eq!(response.error_code, 0, "node {id}");
        assert!(
            ids.insert(response.producer_id.0),
            "id {} given twice",
            response.producer_id.0
        );
    }
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_node_leads_nothing_and_leads_again_when_it_returns() {
    let mut cluster = Cluster::start().await;
    let mut first = cluster.client(1).await;
    let request = CreateTopicsRequest::default().with_topics(vec![
        create_topics_request::CreatableTopic::default()
            .with_name(TopicName(s("moves")))
            .with_num_partitions(3)
            .with_replication_factor(1),
    ]);
    let created: CreateTopicsResponse = first.call(ApiKey::CreateTopics, 7, &request).await;
    assert_eq!(created.topics[0].error_code, 0, "{created:?}");
    let before = metadata(&mut first, "moves").await;
    let on_three: Vec<i32> = before.topics[0]
        .partitions
        .iter()
        .filter(|p| p.leader_id.0 == 3)
        .map(|p| p.partition_index)
        .collect();
    assert!(!on_three.is_empty(), "node 3 leads something: {before:?}");

    cluster.stop_node(3).await;
    let after = metadata(&mut first, "moves").await;
    let brokers: Vec<i32> = after.brokers.iter().map(|b| b.node_id.0).collect();
    assert!(
        !brokers.contains(&3),
        "a stopped broker is not listed: {brokers:?}"
    );
    for p in &after.topics[0].partitions {
        if on_three.contains(&p.partition_index) {
            assert_eq!(p.leader_id.0, -1, "{p:?}");
            assert_eq!(p.error_code, ResponseError::LeaderNotAvailable.code());
            assert_eq!(
                p.offline_replicas.iter().map(|b| b.0).collect::<Vec<_>>(),
                vec![3]
            );
        }
    }

    cluster.restart_node(3).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let again = metadata(&mut first, "moves").await;
        let back = again.topics[0]
            .partitions
            .iter()
            .filter(|p| on_three.contains(&p.partition_index))
            .all(|p| p.leader_id.0 == 3);
        if back {
            for p in &again.topics[0].partitions {
                let old = &before.topics[0].partitions[p.partition_index as usize];
                if on_three.contains(&p.partition_index) {
                    assert!(
                        p.leader_epoch > old.leader_epoch,
                        "a new leader epoch: {p:?}"
                    );
                }
            }
            break;
        }
        assert!(
            Instant::now() < deadline,
            "node 3 never led again: {again:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut third = cluster.client(3).await;
    assert_eq!(produce_code(&mut third, "moves", on_three[0]).await, 0);
    cluster.stop().await;
}

#[tokio::test]
async fn a_node_of_a_multi_node_cluster_must_be_formatted_first() {
    let dir = tempfile::tempdir().unwrap();
    let config = BrokerConfig::load(ConfigSources {
        file: None,
        env: Vec::new(),
        overrides: [
            ("node.id", "1".to_string()),
            ("log.dirs", dir.path().display().to_string()),
            (
                "listeners",
                format!(
                    "PLAINTEXT://127.0.0.1:{},CONTROLLER://127.0.0.1:{}",
                    free_port(),
                    free_port()
                ),
            ),
            ("process.roles", "broker,controller".into()),
            ("controller.listener.names", "CONTROLLER".into()),
            (
                "listener.security.protocol.map",
                "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT".into(),
            ),
            (
                "controller.quorum.voters",
                "1@127.0.0.1:1,2@127.0.0.1:2".into(),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect(),
    })
    .unwrap();
    let error = Server::start(config).await.unwrap_err().to_string();
    assert!(error.contains("runnel format"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controller_only_and_broker_only_nodes_form_a_cluster() {
    // Node 1 only votes, node 2 only serves (it receives the metadata log as
    // a learner), node 3 does both.
    let cluster = Cluster::start_with(["controller", "broker", COMBINED]).await;
    let mut two = cluster.client(2).await;
    let request = CreateTopicsRequest::default().with_topics(vec![
        create_topics_request::CreatableTopic::default()
            .with_name(TopicName(s("roles")))
            .with_num_partitions(4)
            .with_replication_factor(1),
    ]);
    let created: CreateTopicsResponse = two.call(ApiKey::CreateTopics, 7, &request).await;
    assert_eq!(created.topics[0].error_code, 0, "{created:?}");
    for id in [2, 3] {
        let mut client = cluster.client(id).await;
        let response = metadata(&mut client, "roles").await;
        let mut brokers: Vec<i32> = response.brokers.iter().map(|b| b.node_id.0).collect();
        brokers.sort();
        assert_eq!(brokers, vec![2, 3], "only brokers are listed (node {id})");
        let mut leaders: Vec<i32> = leaders(&response).into_iter().map(|(_, l)| l).collect();
        leaders.sort();
        assert_eq!(leaders, vec![2, 2, 3, 3], "partitions go to brokers only");
        for (partition, leader) in self::leaders(&response) {
            let mut owner = cluster.client(leader).await;
            assert_eq!(produce_code(&mut owner, "roles", partition).await, 0);
        }
    }
    // The controller-only node is part of the same cluster.
    assert!(cluster.nodes[0].server.as_ref().unwrap().cluster_id() == CLUSTER_ID);
    cluster.stop().await;
}
