//! Quorums of real nodes on loopback, each with its own directory: leader
//! election, failover of the active controller, restarts, snapshots,
//! fencing, learners, refusing another cluster's nodes, and the
//! replication requests (AlterPartition, ElectLeaders, reassignments).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use runnel_metadata::{
    AlterPartitionError, AlterPartitionRequest, BrokerEpoch, BrokerRegistrationRequest,
    ControllerConfig, CreateTopicRequest, ElectLeadersError, ElectionType, HeartbeatRequest,
    MetadataImage, PartitionEpoch,
};
use runnel_model::{BrokerId, PartitionId, TopicName};
use runnel_quorum::{
    ControllerFailure, ControllerRequest, ControllerResponse, NodeId, Quorum, QuorumConfig, Timing,
};
use tokio::net::TcpListener;
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(20);

fn timing() -> Timing {
    Timing {
        heartbeat_ms: 50,
        election_timeout_ms: (300, 600),
        snapshot_every: 1000,
    }
}

/// A set of node slots: directories and addresses that survive restarts.
struct Cluster {
    _root: tempfile::TempDir,
    cluster_id: String,
    dirs: BTreeMap<NodeId, PathBuf>,
    addrs: BTreeMap<NodeId, String>,
    voters: BTreeMap<NodeId, String>,
    nodes: BTreeMap<NodeId, Quorum>,
    timing: Timing,
    controller: ControllerConfig,
}

impl Cluster {
    async fn new(voters: u64, others: u64) -> Cluster {
        let root = tempfile::tempdir().expect("tempdir");
        let mut dirs = BTreeMap::new();
        let mut addrs = BTreeMap::new();
        let mut listeners = BTreeMap::new();
        for id in 1..=voters + others {
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            addrs.insert(id, listener.local_addr().expect("addr").to_string());
            dirs.insert(id, root.path().join(format!("node-{id}")));
            listeners.insert(id, listener);
        }
        let voter_addrs = addrs
            .iter()
            .filter(|(id, _)| **id <= voters)
            .map(|(i, a)| (*i, a.clone()))
            .collect();
        let mut cluster = Cluster {
            _root: root,
            cluster_id: Uuid::new_v4().to_string(),
            dirs,
            addrs,
            voters: voter_addrs,
            nodes: BTreeMap::new(),
            timing: timing(),
            controller: ControllerConfig::default(),
        };
        for (id, listener) in listeners {
            cluster.start_on(id, listener).await;
        }
        cluster
    }

    fn config(&self, id: NodeId) -> QuorumConfig {
        QuorumConfig {
            node_id: id,
            cluster_id: self.cluster_id.clone(),
            dir: self.dirs[&id].clone(),
            voters: self.voters.clone(),
            advertised_address: self.addrs[&id].clone(),
            controller: self.controller.clone(),
            timing: self.timing,
        }
    }

    async fn start_on(&mut self, id: NodeId, listener: TcpListener) {
        let quorum = Quorum::start(self.config(id), listener)
            .await
            .expect("start");
        self.nodes.insert(id, quorum);
    }

    async fn start(&mut self, id: NodeId) {
        let listener = TcpListener::bind(&self.addrs[&id]).await.expect("rebind");
        self.start_on(id, listener).await;
    }

    async fn stop(&mut self, id: NodeId) {
        if let Some(node) = self.nodes.remove(&id) {
            node.shutdown().await;
        }
    }

    async fn stop_all(&mut self) {
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        for id in ids {
            self.stop(id).await;
        }
    }

    /// The leader every running node agrees on, waited for.
    async fn leader(&self) -> NodeId {
        let deadline = Instant::now() + WAIT;
        loop {
            let leaders: Vec<Option<NodeId>> = self
                .nodes
                .iter()
                .filter(|(id, _)| self.voters.contains_key(id))
                .map(|(_, n)| n.leader())
                .collect();
            if let Some(Some(leader)) = leaders.first() {
                if self.nodes.contains_key(leader) && leaders.iter().all(|l| l == &Some(*leader)) {
                    return *leader;
                }
            }
            assert!(Instant::now() < deadline, "no agreed leader: {leaders:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn submit(&self, via: NodeId, request: ControllerRequest) -> (ControllerResponse, u64) {
        self.nodes[&via]
            .submit(request, WAIT)
            .await
            .unwrap_or_else(|e| panic!("request via node {via} failed: {e}"))
    }

    async fn register(&self, id: NodeId) -> BrokerEpoch {
        let request = ControllerRequest::RegisterBroker {
            request: BrokerRegistrationRequest {
                broker_id: BrokerId(id as i32),
                incarnation_id: Uuid::new_v4(),
                endpoints: vec![],
                rack: None,
            },
            quorum_address: self.addrs[&id].clone(),
        };
        let epoch = match self.submit(id, request).await {
            (ControllerResponse::RegisterBroker(epoch), _) => epoch,
            other => panic!("unexpected answer {other:?}"),
        };
        // A new registration starts fenced; the first heartbeat unfences.
        assert!(!self.heartbeat(id, epoch).await, "broker {id} stays fenced");
        epoch
    }

    async fn heartbeat(&self, id: NodeId, epoch: BrokerEpoch) -> bool {
        let request = ControllerRequest::Heartbeat(HeartbeatRequest {
            broker_id: BrokerId(id as i32),
            broker_epoch: epoch,
            want_fence: false,
            want_shut_down: false,
        });
        match self.submit(id, request).await {
            (ControllerResponse::Heartbeat(r), _) => r.is_fenced,
            other => panic!("unexpected answer {other:?}"),
        }
    }

    async fn create_topic(&self, via: NodeId, name: &str, partitions: i32) -> u64 {
        let request = ControllerRequest::CreateTopics {
            topics: vec![CreateTopicRequest {
                name: TopicName::new(name).expect("name"),
                num_partitions: partitions,
                replication_factor: 1,
                configs: BTreeMap::new(),
                assignments: vec![],
            }],
            validate_only: false,
        };
        match self.submit(via, request).await {
            (ControllerResponse::CreateTopics(results), index) => {
                assert!(results[0].1.is_ok(), "create {name}: {results:?}");
                index
            }
            other => panic!("unexpected answer {other:?}"),
        }
    }

    /// Waits until every running node's image has applied `index`, and
    /// returns the images, which must all be equal.
    async fn converged(&self, index: u64) -> MetadataImage {
        let mut images = Vec::new();
        for (id, node) in &self.nodes {
            assert!(
                node.wait_applied(index, WAIT).await,
                "node {id} did not apply {index}"
            );
            images.push(node.image());
        }
        let first = (*images[0]).clone();
        for image in &images {
            assert_eq!(**image, first, "the nodes' images differ");
        }
        first
    }
}

fn topic_names(image: &MetadataImage) -> Vec<String> {
    let mut names: Vec<String> = image.topics().map(|t| t.name.to_string()).collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_voters_elect_a_controller_and_replicate_topics_to_every_node() {
    let mut cluster = Cluster::new(3, 0).await;
    let leader = cluster.leader().await;
    for id in 1..=3 {
        cluster.register(id).await;
    }
    // Requests reach the active controller from any node.
    let follower = (1..=3).find(|id| *id != leader).expect("a follower");
    let index = cluster.create_topic(follower, "spread", 6).await;
    let image = cluster.converged(index).await;
    let topic = image
        .topic_by_name(&TopicName::new("spread").expect("name"))
        .expect("the topic is in every image");
    let mut leaders: Vec<i32> = topic
        .partitions
        .values()
        .filter_map(|p| p.leader)
        .map(|b| b.0)
        .collect();
    leaders.sort();
    assert_eq!(
        leaders,
        vec![1, 1, 2, 2, 3, 3],
        "partitions spread evenly over the brokers"
    );
    cluster.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_controller_takes_over_without_losing_committed_metadata() {
    let mut cluster = Cluster::new(3, 0).await;
    cluster.leader().await;
    for id in 1..=3 {
        cluster.register(id).await;
    }
    let first = cluster.leader().await;
    let survivor = (1..=3).find(|id| *id != first).expect("a survivor");
    cluster.create_topic(survivor, "before", 3).await;

    let stopped = Instant::now();
    cluster.stop(first).await;
    let second = cluster.leader().await;
    let takeover = stopped.elapsed();
    assert_ne!(second, first);
    assert!(
        takeover < Duration::from_secs(10),
        "takeover took {takeover:?}"
    );
    println!("new active controller {second} after {takeover:?}");

    let index = cluster.create_topic(survivor, "after", 2).await;
    let image = cluster.converged(index).await;
    assert_eq!(topic_names(&image), vec!["after", "before"]);

    // The old controller comes back and catches up.
    cluster.start(first).await;
    let image = cluster.converged(index).await;
    assert_eq!(topic_names(&image), vec!["after", "before"]);
    cluster.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_cluster_keeps_its_metadata_and_snapshots_bound_the_log() {
    let mut cluster = Cluster::new(3, 0).await;
    cluster.timing.snapshot_every = 8;
    cluster.stop_all().await;
    for id in 1..=3 {
        cluster.start(id).await;
    }
    cluster.leader().await;
    cluster.register(1).await;
    let mut index = 0;
    for i in 0..40 {
        index = cluster
            .create_topic(1 + i % 3, &format!("t{i:02}"), 1)
            .await;
    }
    let before = cluster.converged(index).await;
    assert_eq!(before.topics().count(), 40);

    for id in 1..=3 {
        let dir = &cluster.dirs[&id];
        assert!(
            dir.join("snapshot.json").exists(),
            "node {id} took no snapshot"
        );
        let purged = cluster.nodes[&id].raft().metrics().borrow().purged;
        assert!(
            purged.is_some_and(|p| p.index + 16 >= index),
            "node {id} keeps its log up to {index}: purged only up to {purged:?}"
        );
    }

    cluster.stop_all().await;
    for id in 1..=3 {
        cluster.start(id).await;
    }
    cluster.leader().await;
    let after = cluster.converged(index).await;
    assert_eq!(after, before, "a restart changed the metadata");
    // And the quorum still takes writes.
    let index = cluster.create_topic(2, "after-restart", 1).await;
    assert_eq!(cluster.converged(index).await.topics().count(), 41);
    cluster.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_broker_is_fenced_and_leads_nothing_until_it_heartbeats() {
    let mut cluster = Cluster::new(1, 0).await;
    cluster.stop_all().await;
    cluster.controller.broker_session_timeout_ms = 600;
    cluster.start(1).await;
    cluster.leader().await;
    let epoch = cluster.register(1).await;
    let index = cluster.create_topic(1, "led", 2).await;
    let image = cluster.converged(index).await;
    let topic = image
        .topic_by_name(&TopicName::new("led").expect("name"))
        .expect("topic");
    assert!(topic
        .partitions
        .values()
        .all(|p| p.leader == Some(BrokerId(1))));

    // No heartbeats: fenced after the session timeout, and leaderless.
    let node = &cluster.nodes[&1];
    let deadline = Instant::now() + WAIT;
    loop {
        let image = node.image();
        if !image.is_unfenced(BrokerId(1)) {
            let topic = image
                .topic_by_name(&TopicName::new("led").expect("name"))
                .expect("topic");
            assert!(
                topic.partitions.values().all(|p| p.leader.is_none()),
                "a fenced broker leads"
            );
            break;
        }
        assert!(Instant::now() < deadline, "the broker was never fenced");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Heartbeating again unfences it and it leads again.
    assert!(!cluster.heartbeat(1, epoch).await);
    let image = node.image();
    let topic = image
        .topic_by_name(&TopicName::new("led").expect("name"))
        .expect("topic");
    assert!(topic
        .partitions
        .values()
        .all(|p| p.leader == Some(BrokerId(1))));
    cluster.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_only_node_receives_the_metadata_log_as_a_learner() {
    let mut cluster = Cluster::new(1, 1).await;
    cluster.leader().await;
    cluster.register(1).await;
    cluster.register(2).await;
    let index = cluster.create_topic(2, "seen-by-learner", 4).await;
    let image = cluster.converged(index).await;
    assert_eq!(topic_names(&image), vec!["seen-by-learner"]);
    assert!(cluster.nodes[&2]
        .raft()
        .metrics()
        .borrow()
        .membership_config
        .membership()
        .learner_ids()
        .any(|id| id == 2));
    cluster.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_of_another_cluster_is_refused() {
    let mut cluster = Cluster::new(1, 0).await;
    cluster.leader().await;
    cluster.register(1).await;

    // A stranger: same voters, another cluster id.
    let dir = tempfile::tempdir().expect("tempdir");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let mut config = cluster.config(1);
    config.node_id = 9;
    config.cluster_id = "another-cluster".into();
    config.dir = dir.path().to_path_buf();
    config.advertised_address = listener.local_addr().expect("addr").to_string();
    let stranger = Quorum::start(config, listener).await.expect("start");
    let answer = stranger
        .submit(
            ControllerRequest::DeleteTopics(vec![]),
            Duration::from_secs(2),
        )
        .await;
    match answer {
        Err(ControllerFailure::Unavailable(why)) => {
            assert!(why.contains("belongs to cluster another-cluster"), "{why}")
        }
        other => panic!("a stranger reached the controller: {other:?}"),
    }
    stranger.shutdown().await;
    cluster.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alter_partition_over_the_rpc_commits_the_new_isr_on_every_node() {
    let mut cluster = Cluster::new(3, 0).await;
    let controller = cluster.leader().await;
    let mut epochs = BTreeMap::new();
    for id in 1..=3 {
        epochs.insert(BrokerId(id as i32), cluster.register(id).await);
    }
    let request = ControllerRequest::CreateTopics {
        topics: vec![CreateTopicRequest {
            name: TopicName::new("replicated").expect("name"),
            num_partitions: 1,
            replication_factor: 3,
            configs: BTreeMap::new(),
            assignments: vec![],
        }],
        validate_only: false,
    };
    let (topic_id, index) = match cluster.submit(1, request).await {
        (ControllerResponse::CreateTopics(results), index) => {
            (results[0].1.clone().expect("created").topic_id, index)
        }
        other => panic!("unexpected answer {other:?}"),
    };
    let image = cluster.converged(index).await;
    let state = image
        .partition(topic_id, PartitionId(0))
        .expect("partition")
        .clone();
    let leader = state.leader.expect("a leader");
    assert_eq!(state.isr.len(), 3);

    // The leader shrinks the ISR to itself, through a node that is not
    // the active controller.
    let via = (1..=3).find(|id| *id != controller).expect("a follower");
    let alter = AlterPartitionRequest {
        broker_id: leader,
        broker_epoch: epochs[&leader],
        topic_id,
        partition: PartitionId(0),
        leader_epoch: state.leader_epoch,
        partition_epoch: state.partition_epoch,
        new_isr: vec![leader],
    };
    let (response, index) = cluster
        .submit(via, ControllerRequest::AlterPartition(alter.clone()))
        .await;
    let committed = match response {
        ControllerResponse::AlterPartition(Ok(committed)) => committed,
        other => panic!("unexpected answer {other:?}"),
    };
    assert_eq!(committed.isr, vec![leader]);
    assert_eq!(committed.leader_epoch, state.leader_epoch);
    assert_eq!(
        committed.partition_epoch,
        PartitionEpoch(state.partition_epoch.0 + 1)
    );
    let image = cluster.converged(index).await;
    assert_eq!(image.partition(topic_id, PartitionId(0)), Some(&committed));

    // The same request again is computed from a stale partition epoch.
    match cluster
        .submit(via, ControllerRequest::AlterPartition(alter))
        .await
    {
        (
            ControllerResponse::AlterPartition(Err(AlterPartitionError::InvalidUpdateVersion {
                ..
            })),
            _,
        ) => {}
        other => panic!("unexpected answer {other:?}"),
    }

    // A reassignment and an election travel the RPC too.
    let name = TopicName::new("replicated").expect("name");
    let reversed: Vec<BrokerId> = state.replicas.iter().rev().copied().collect();
    let request = ControllerRequest::AlterPartitionReassignments {
        reassignments: vec![(name.clone(), PartitionId(0), Some(reversed.clone()))],
    };
    match cluster.submit(via, request).await {
        (ControllerResponse::AlterPartitionReassignments(results), _) => {
            assert_eq!(results, vec![(name.clone(), PartitionId(0), Ok(()))])
        }
        other => panic!("unexpected answer {other:?}"),
    }
    let request = ControllerRequest::ListPartitionReassignments { partitions: None };
    match cluster.submit(via, request).await {
        (ControllerResponse::ListPartitionReassignments(ongoing), _) => {
            assert!(
                ongoing.is_empty(),
                "a reorder completes at once: {ongoing:?}"
            )
        }
        other => panic!("unexpected answer {other:?}"),
    }
    let request = ControllerRequest::ElectLeaders {
        election_type: ElectionType::Unclean,
        partitions: Some(vec![(name.clone(), PartitionId(0))]),
    };
    match cluster.submit(via, request).await {
        (ControllerResponse::ElectLeaders(results), index) => {
            assert_eq!(
                results,
                vec![(
                    name,
                    PartitionId(0),
                    Err(ElectLeadersError::ElectionNotNeeded)
                )]
            );
            let image = cluster.converged(index).await;
            let state = image
                .partition(topic_id, PartitionId(0))
                .expect("partition");
            assert_eq!(state.replicas, reversed);
            assert_eq!(state.leader, Some(leader));
        }
        other => panic!("unexpected answer {other:?}"),
    }
    cluster.stop_all().await;
}
