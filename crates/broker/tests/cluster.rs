//! Three brokers in one process forming a cluster on loopback: requests
//! that reach a node which does not lead get NOT_LEADER_OR_FOLLOWER or
//! NOT_COORDINATOR, every node tells the same story, and a node that stops
//! hands its leaderships back and takes them again when it returns.

mod common;

use std::time::{Duration, Instant};

use common::cluster::*;
use kafka_protocol::messages::*;
use kafka_protocol::ResponseError;
use runnel_broker::Server;
use runnel_model::config::{BrokerConfig, ConfigSources};

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
    // Three brokers cannot hold four replicas: refused clearly.
    let replicated = CreateTopicsRequest::default().with_topics(vec![
        create_topics_request::CreatableTopic::default()
            .with_name(TopicName(s("replicated")))
            .with_num_partitions(1)
            .with_replication_factor(4),
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
