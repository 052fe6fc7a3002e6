//! Group membership driven directly through `member::spawn`: members join, split
//! partitions without overlap, hand them over when one leaves, and publish their
//! generation. The classic protocol runs against Runnel and Tansu (except where a
//! test says why not); KIP-848 against Runnel only, since Tansu serves no
//! ConsumerGroupHeartbeat (checked in `tansu_serves_no_kip848_heartbeat`).

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use common::{unique, Kind, TestBroker, ALL};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::{ApiKey, CreateTopicsRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use parking_lot::Mutex;
use runnel_client::consumer::member::{
    self, AssignmentStrategy, GroupProtocol, MemberConfig, MemberEvent, MemberHandle,
};
use runnel_client::{ClientConfig, Cluster, TopicPartition};
use tokio::sync::{oneshot, watch};

const PARTITIONS: i32 = 6;
const DEADLINE: Duration = Duration::from_secs(15);
/// Runnel's KIP-848 heartbeat interval in these tests.
const KIP848: [(&str, &str); 1] = [("group.consumer.heartbeat.interval.ms", "300")];

/// What a member told the consumer, in the order the test saw it.
#[derive(Debug, Clone, PartialEq)]
enum Entry {
    Assigned(usize, Vec<TopicPartition>),
    /// Logged when the test answers `done`, i.e. once "fetching has stopped".
    Revoked(usize, Vec<TopicPartition>, bool),
    Fatal(usize, String),
}

/// A test group: every member's events go to one log, and revocations are
/// answered (after `hold`, to give a misbehaving member time to show itself).
struct Group {
    log: Arc<Mutex<Vec<Entry>>>,
    changed: Arc<watch::Sender<u64>>,
    seen: watch::Receiver<u64>,
    leave: Vec<Option<oneshot::Sender<()>>>,
    generations: Vec<watch::Receiver<Option<member::Generation>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    hold: Duration,
    kind: Kind,
}

impl Group {
    fn new(kind: Kind, hold: Duration) -> Group {
        let (changed, seen) = watch::channel(0);
        Group {
            log: Arc::default(),
            changed: Arc::new(changed),
            seen,
            leave: Vec::new(),
            generations: Vec::new(),
            tasks: Vec::new(),
            hold,
            kind,
        }
    }

    /// Spawns a member with its own cluster connection; returns its index.
    async fn join(&mut self, broker: &TestBroker, config: MemberConfig, topic: &str) -> usize {
        // Metadata ages fast so a leader notices new topics within the test.
        let mut client = ClientConfig::new(broker.bootstrap());
        client.metadata_max_age = Duration::from_millis(300);
        let cluster = Cluster::connect(client).await.unwrap();
        let MemberHandle {
            mut events,
            generation,
            leave,
            task,
        } = member::spawn(cluster, config, vec![topic.to_owned()]);
        let index = self.leave.len();
        self.leave.push(Some(leave));
        self.generations.push(generation);
        self.tasks.push(task);
        let (log, changed, hold) = (self.log.clone(), self.changed.clone(), self.hold);
        tokio::spawn(async move {
            while let Some(event) = events.recv().await {
                match event {
                    MemberEvent::Assign(partitions) => {
                        log.lock().push(Entry::Assigned(index, partitions))
                    }
                    MemberEvent::Revoke {
                        partitions,
                        lost,
                        done,
                    } => {
                        if !lost {
                            tokio::time::sleep(hold).await;
                        }
                        log.lock().push(Entry::Revoked(index, partitions, lost));
                        let _ = done.send(());
                    }
                    MemberEvent::Fatal(error) => {
                        log.lock().push(Entry::Fatal(index, error.to_string()))
                    }
                }
                changed.send_modify(|n| *n += 1);
            }
        });
        index
    }

    /// What each member owns now, from the log.
    fn owned(&self) -> Vec<BTreeSet<TopicPartition>> {
        let mut owned = vec![BTreeSet::new(); self.leave.len()];
        for entry in self.log.lock().iter() {
            match entry {
                Entry::Assigned(i, ps) => owned[*i].extend(ps.iter().cloned()),
                Entry::Revoked(i, ps, _) => ps.iter().for_each(|p| {
                    owned[*i].remove(p);
                }),
                Entry::Fatal(i, e) => panic!("member {i} failed: {e}"),
            }
        }
        owned
    }

    /// Waits until `done` holds for the owned sets, failing after [`DEADLINE`].
    async fn until(&mut self, what: &str, done: impl Fn(&[BTreeSet<TopicPartition>]) -> bool) {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            self.seen.borrow_and_update();
            let owned = self.owned();
            if done(&owned) {
                return;
            }
            let waited = tokio::time::timeout_at(deadline, self.seen.changed()).await;
            assert!(
                waited.is_ok(),
                "{:?}: timed out waiting for {what}: owned {owned:?}, log {:?}",
                self.kind,
                self.log.lock()
            );
        }
    }

    /// Asks member `i` to leave and waits for its task to end.
    async fn leave(&mut self, i: usize) {
        drop(self.leave[i].take());
        let task = std::mem::replace(&mut self.tasks[i], tokio::spawn(async {}));
        tokio::time::timeout(DEADLINE, task)
            .await
            .expect("the member left in time")
            .unwrap();
    }

    fn generation(&self, i: usize) -> Option<member::Generation> {
        self.generations[i].borrow().clone()
    }

    fn revoked_from(&self, member: usize) -> Vec<TopicPartition> {
        self.log
            .lock()
            .iter()
            .filter_map(|e| match e {
                Entry::Revoked(i, ps, _) if *i == member => Some(ps.clone()),
                _ => None,
            })
            .flatten()
            .collect()
    }
}

fn all_partitions(topic: &str) -> BTreeSet<TopicPartition> {
    (0..PARTITIONS)
        .map(|p| TopicPartition::new(topic, p))
        .collect()
}

/// Every partition owned by exactly one member, `per_member` each.
fn split(topic: &str, per_member: &[usize]) -> impl Fn(&[BTreeSet<TopicPartition>]) -> bool {
    let (topic, per_member) = (topic.to_owned(), per_member.to_vec());
    move |owned| {
        let sizes: Vec<usize> = owned.iter().map(BTreeSet::len).collect();
        let union: BTreeSet<_> = owned.iter().flatten().cloned().collect();
        let total: usize = sizes.iter().sum();
        sizes == per_member && total == union.len() && union == all_partitions(&topic)
    }
}

fn classic(group: &str, strategy: AssignmentStrategy) -> MemberConfig {
    let mut config = MemberConfig::new(group);
    config.strategy = strategy;
    config.session_timeout = Duration::from_secs(10);
    config.rebalance_timeout = Duration::from_secs(10);
    config.heartbeat_interval = Duration::from_millis(200);
    config
}

fn kip848(group: &str) -> MemberConfig {
    let mut config = MemberConfig::new(group);
    config.protocol = GroupProtocol::Consumer;
    config.rebalance_timeout = Duration::from_secs(10);
    config
}

async fn create_topic(broker: &TestBroker, topic: &str) {
    let cluster = Cluster::connect(ClientConfig::new(broker.bootstrap()))
        .await
        .unwrap();
    let request = CreateTopicsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![CreatableTopic::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_owned())))
            .with_num_partitions(PARTITIONS)
            .with_replication_factor(1)]);
    let response = cluster.send_any(&request).await.unwrap();
    assert_eq!(response.topics[0].error_code, 0, "{response:?}");
    let info = cluster.topic(topic).await.unwrap();
    assert_eq!(info.partitions.len(), PARTITIONS as usize);
}

#[tokio::test]
async fn a_single_member_gets_every_partition() {
    for kind in ALL {
        let broker = TestBroker::start(kind, &[]).await;
        let topic = unique("solo");
        create_topic(&broker, &topic).await;
        let mut group = Group::new(kind, Duration::ZERO);
        let config = classic(&unique("g"), AssignmentStrategy::Range);
        group.join(&broker, config, &topic).await;
        group.until("one owner of all", split(&topic, &[6])).await;
        let generation = group.generation(0).expect("in a generation");
        // Kafka's first generation is 1, Tansu's 0.
        assert!(generation.generation_id >= 0, "{kind:?}: {generation:?}");
        assert!(!generation.member_id.is_empty());
        group.leave(0).await;
        assert!(group.owned()[0].is_empty(), "{kind:?}: revoked on leave");
        assert_eq!(group.generation(0), None, "{kind:?}");
        broker.stop().await;
    }
}

#[tokio::test]
async fn a_topic_created_after_joining_is_assigned() {
    for kind in ALL {
        let broker = TestBroker::start(kind, &[]).await;
        let topic = unique("later");
        let mut group = Group::new(kind, Duration::ZERO);
        let strategy = AssignmentStrategy::CooperativeSticky;
        let a = group
            .join(&broker, classic(&unique("g"), strategy), &topic)
            .await;
        let mut generation = group.generations[a].clone();
        // (The guard `wait_for` returns is dropped at once: holding it would
        // block the member's next generation update.)
        let joined = tokio::time::timeout(DEADLINE, generation.wait_for(Option::is_some))
            .await
            .is_ok_and(|r| r.is_ok());
        assert!(joined, "{kind:?}: joined with nothing to assign");
        assert!(group.owned()[a].is_empty());
        // The leader sees the topic appear in the metadata and rebalances.
        create_topic(&broker, &topic).await;
        group
            .until("the new topic assigned", split(&topic, &[6]))
            .await;
        broker.stop().await;
    }
}

#[tokio::test]
async fn range_members_split_without_overlap_and_a_leaver_hands_over() {
    for kind in ALL {
        let broker = TestBroker::start(kind, &[]).await;
        let topic = unique("range");
        create_topic(&broker, &topic).await;
        let mut group = Group::new(kind, Duration::ZERO);
        let id = unique("g");
        let a = group
            .join(&broker, classic(&id, AssignmentStrategy::Range), &topic)
            .await;
        group.until("a owns all", split(&topic, &[6])).await;
        let first = group.generation(a).unwrap().generation_id;
        let b = group
            .join(&broker, classic(&id, AssignmentStrategy::Range), &topic)
            .await;
        group.until("a 3, b 3", split(&topic, &[3, 3])).await;
        // Range: the member with the smaller member id takes the first range.
        let (ga, gb) = (group.generation(a).unwrap(), group.generation(b).unwrap());
        assert_eq!(
            ga.generation_id, gb.generation_id,
            "{kind:?}: one generation"
        );
        assert!(ga.generation_id > first, "{kind:?}: a rebalance bumps it");
        let first_range: BTreeSet<_> = (0..3).map(|p| TopicPartition::new(&topic, p)).collect();
        let leader_of_range = if ga.member_id < gb.member_id { a } else { b };
        assert_eq!(group.owned()[leader_of_range], first_range, "{kind:?}");

        group.leave(b).await;
        group
            .until("a owns all again", split(&topic, &[6, 0]))
            .await;
        broker.stop().await;
    }
}

/// Runnel only: Tansu (checked with this test) answers the JoinGroup that
/// follows a cooperative revocation with a new generation at once, without
/// waiting for the other member, whose next JoinGroup then never completes.
#[tokio::test]
async fn cooperative_sticky_revokes_only_what_moves() {
    for kind in [Kind::Runnel] {
        let broker = TestBroker::start(kind, &[]).await;
        let topic = unique("coop");
        create_topic(&broker, &topic).await;
        let mut group = Group::new(kind, Duration::ZERO);
        let id = unique("g");
        let strategy = AssignmentStrategy::CooperativeSticky;
        let a = group.join(&broker, classic(&id, strategy), &topic).await;
        group.until("a owns all", split(&topic, &[6])).await;
        let b = group.join(&broker, classic(&id, strategy), &topic).await;
        group.until("a 3, b 3", split(&topic, &[3, 3])).await;
        let owned = group.owned();
        let revoked: BTreeSet<_> = group.revoked_from(a).into_iter().collect();
        assert_eq!(revoked, owned[b], "{kind:?}: a gave up exactly what b got");
        assert!(
            revoked.is_disjoint(&owned[a]),
            "{kind:?}: kept ones untouched"
        );

        group.leave(a).await;
        group.until("b owns all", split(&topic, &[0, 6])).await;
        assert!(
            group.revoked_from(b).is_empty(),
            "{kind:?}: b kept its partitions"
        );
        broker.stop().await;
    }
}

/// Kafka's static membership (KIP-345): a static member that closes sends no
/// LeaveGroup, so when it comes back with the same `group.instance.id` it gets its
/// partitions again without a rebalance; the other member (eager, so any
/// rebalance would revoke its partitions) sees nothing.
///
/// Runnel only: Tansu (checked with this test) starts a rebalance when a static
/// member comes back, and it does not complete (the generation stays 0 and the
/// leader's SyncGroup is answered REBALANCE_IN_PROGRESS).
#[tokio::test]
async fn a_static_member_returns_without_a_rebalance() {
    for kind in [Kind::Runnel] {
        let broker = TestBroker::start(kind, &[]).await;
        let topic = unique("static");
        create_topic(&broker, &topic).await;
        let mut group = Group::new(kind, Duration::ZERO);
        let id = unique("g");
        let config = |instance: &str| {
            let mut config = classic(&id, AssignmentStrategy::Range);
            config.group_instance_id = Some(instance.to_owned());
            config
        };
        let a = group.join(&broker, config("a"), &topic).await;
        let b = group.join(&broker, config("b"), &topic).await;
        group.until("a 3, b 3", split(&topic, &[3, 3])).await;
        let held_by_a = group.owned()[a].clone();
        let b_revocations = group.revoked_from(b).len();
        group.leave(a).await;
        let again = group.join(&broker, config("a"), &topic).await;
        group.until("a is back", split(&topic, &[0, 3, 3])).await;
        assert_eq!(group.owned()[again], held_by_a);
        assert_eq!(
            group.revoked_from(b).len(),
            b_revocations,
            "{kind:?}: b saw a rebalance"
        );
        broker.stop().await;
    }
}

#[tokio::test]
async fn kip848_members_split_and_revoke_before_the_other_gets_a_partition() {
    let broker = TestBroker::start(Kind::Runnel, &KIP848).await;
    let topic = unique("kip848");
    create_topic(&broker, &topic).await;
    // Each revocation is answered a second (three heartbeats) late: were the
    // member to acknowledge early, the other would get the partition meanwhile.
    let mut group = Group::new(Kind::Runnel, Duration::from_secs(1));
    let id = unique("g");
    let a = group.join(&broker, kip848(&id), &topic).await;
    group.until("a owns all", split(&topic, &[6])).await;
    let first = group.generation(a).unwrap();
    let b = group.join(&broker, kip848(&id), &topic).await;
    group.until("a 3, b 3", split(&topic, &[3, 3])).await;
    let log = group.log.lock().clone();
    for partition in &group.owned()[b] {
        let revoked_at = log.iter().position(
            |e| matches!(e, Entry::Revoked(i, ps, false) if *i == a && ps.contains(partition)),
        );
        let assigned_at = log
            .iter()
            .position(|e| matches!(e, Entry::Assigned(i, ps) if *i == b && ps.contains(partition)));
        assert!(
            revoked_at.is_some() && revoked_at < assigned_at,
            "{partition}: {log:?}"
        );
    }
    let (ga, gb) = (group.generation(a).unwrap(), group.generation(b).unwrap());
    assert!(
        ga.generation_id > first.generation_id,
        "{first:?} -> {ga:?}"
    );
    assert_eq!(ga.member_id, first.member_id);
    assert_ne!(ga.member_id, gb.member_id);

    group.leave(a).await;
    group.until("b owns all", split(&topic, &[0, 6])).await;
    assert_eq!(group.generation(a), None);
    broker.stop().await;
}

#[tokio::test]
async fn tansu_serves_no_kip848_heartbeat() {
    let broker = TestBroker::start(Kind::Tansu, &[]).await;
    let cluster = Cluster::connect(ClientConfig::new(broker.bootstrap()))
        .await
        .unwrap();
    let connection = cluster.any_broker().await.unwrap();
    assert!(connection.broker_versions(ApiKey::JoinGroup).is_some());
    assert_eq!(
        connection.broker_versions(ApiKey::ConsumerGroupHeartbeat),
        None
    );
    broker.stop().await;
}
