//! The consumer against Runnel and Tansu: manual assignment, seek, pause/resume,
//! offset resets, commits, timestamp lookups, and group subscription.
//!
//! Records are written with raw Produce requests so these tests do not depend on
//! the Producer.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::{unique, Kind, TestBroker, ALL};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{CreateTopicsRequest, ProduceRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use runnel_client::consumer::{
    Consumer, ConsumerConfig, ConsumerRecord, GroupProtocol, OffsetReset, RebalanceListener,
};
use runnel_client::{ClientConfig, Cluster, Error, ResponseError, TopicPartition};
use runnel_protocol::batch::{BatchBuilder, Compression};

/// Every wait in these tests is bounded by this.
const WAIT: Duration = Duration::from_secs(10);

async fn cluster(broker: &TestBroker) -> Arc<Cluster> {
    Cluster::connect(ClientConfig::new(broker.bootstrap()))
        .await
        .unwrap()
}

/// Creates `topic` with `partitions` partitions and waits until each has a leader.
async fn create_topic(cluster: &Cluster, topic: &str, partitions: i32) {
    let request = CreateTopicsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![CreatableTopic::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_owned())))
            .with_num_partitions(partitions)
            .with_replication_factor(1)]);
    let response = cluster.send_any(&request).await.unwrap();
    for t in &response.topics {
        assert_eq!(t.error_code, 0, "create {topic}: {:?}", t.error_message);
    }
    tokio::time::timeout(WAIT, async {
        loop {
            let _ = cluster.refresh_metadata(&[topic.to_owned()]).await;
            let ready = cluster.metadata().topics.get(topic).is_some_and(|t| {
                t.partitions.len() == partitions as usize
                    && t.partitions.iter().all(|p| p.leader >= 0)
            });
            if ready {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("topic has leaders");
}

/// Appends `values` (keyed `k<i>`) to `topic`-`partition` with one raw Produce.
async fn produce(
    cluster: &Cluster,
    topic: &str,
    partition: i32,
    values: &[&str],
    codec: Compression,
) {
    let mut builder = BatchBuilder {
        compression: codec,
        ..BatchBuilder::default()
    };
    let now = 1_700_000_000_000;
    for (i, v) in values.iter().enumerate() {
        builder = builder.keyed(
            now + i as i64,
            format!("k{v}").as_bytes(),
            Some(v.as_bytes()),
        );
    }
    produce_batch(cluster, topic, partition, builder.build().unwrap()).await;
}

async fn produce_batch(cluster: &Cluster, topic: &str, partition: i32, batch: Vec<u8>) {
    let (_, connection) = cluster.leader(topic, partition).await.unwrap();
    let request = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(5_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_owned())))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(Bytes::from(batch)))])]);
    let version = connection.version_for::<ProduceRequest>(Some(12)).unwrap();
    let response = connection.send_version(&request, version).await.unwrap();
    for t in &response.responses {
        for p in &t.partition_responses {
            assert_eq!(p.error_code, 0, "produce to {topic}-{partition}");
        }
    }
}

fn value(record: &ConsumerRecord) -> String {
    String::from_utf8_lossy(record.value.as_deref().unwrap_or_default()).into_owned()
}

async fn recv(consumer: &Consumer) -> ConsumerRecord {
    tokio::time::timeout(WAIT, consumer.recv())
        .await
        .expect("a record within the wait")
        .unwrap()
}

async fn recv_n(consumer: &Consumer, n: usize) -> Vec<ConsumerRecord> {
    let mut out = Vec::new();
    while out.len() < n {
        out.push(recv(consumer).await);
    }
    out
}

fn config(broker: &TestBroker) -> ConsumerConfig {
    ConsumerConfig::new(broker.bootstrap()).fetch_max_wait(Duration::from_millis(100))
}

#[tokio::test]
async fn manual_assign_from_beginning_reads_everything_in_order() {
    for kind in ALL {
        eprintln!("against {kind:?}");
        let broker = TestBroker::start(kind, &[]).await;
        let cluster = cluster(&broker).await;
        let topic = unique("assign");
        create_topic(&cluster, &topic, 1).await;
        produce(&cluster, &topic, 0, &["a", "b", "c"], Compression::None).await;
        produce(&cluster, &topic, 0, &["d", "e"], Compression::Zstd).await;

        let consumer = Consumer::new(config(&broker).auto_offset_reset(OffsetReset::Earliest))
            .await
            .unwrap();
        consumer
            .assign(&[TopicPartition::new(&topic, 0)])
            .await
            .unwrap();
        let records = recv_n(&consumer, 5).await;
        let got: Vec<(i64, String)> = records.iter().map(|r| (r.offset, value(r))).collect();
        let want: Vec<(i64, String)> = ["a", "b", "c", "d", "e"]
            .iter()
            .enumerate()
            .map(|(i, v)| (i as i64, v.to_string()))
            .collect();
        assert_eq!(got, want, "{kind:?}");
        assert_eq!(records[1].key.as_deref(), Some(&b"kb"[..]), "{kind:?}");
        assert_eq!(&*records[0].topic, topic.as_str());
        assert_eq!(
            consumer
                .position(&TopicPartition::new(&topic, 0))
                .await
                .unwrap(),
            5
        );
        consumer.close().await.unwrap();
        assert!(matches!(consumer.recv().await, Err(Error::Closed)));
        broker.stop().await;
    }
}

#[tokio::test]
async fn seek_rewinds_and_skips_ahead() {
    for kind in ALL {
        eprintln!("against {kind:?}");
        let broker = TestBroker::start(kind, &[]).await;
        let cluster = cluster(&broker).await;
        let topic = unique("seek");
        create_topic(&cluster, &topic, 1).await;
        produce(
            &cluster,
            &topic,
            0,
            &["0", "1", "2", "3"],
            Compression::None,
        )
        .await;
        let tp = TopicPartition::new(&topic, 0);
        let consumer = Consumer::new(config(&broker).auto_offset_reset(OffsetReset::Earliest))
            .await
            .unwrap();
        consumer.assign(std::slice::from_ref(&tp)).await.unwrap();
        assert_eq!(recv_n(&consumer, 4).await.last().map(|r| r.offset), Some(3));
        consumer.seek(&tp, 1).unwrap();
        assert_eq!(consumer.position(&tp).await.unwrap(), 1);
        let again = recv_n(&consumer, 3).await;
        assert_eq!(
            again.iter().map(|r| r.offset).collect::<Vec<_>>(),
            vec![1, 2, 3],
            "{kind:?}"
        );
        // Seeking into the middle of a batch skips the records before the position.
        consumer.seek(&tp, 2).unwrap();
        assert_eq!(recv(&consumer).await.offset, 2, "{kind:?}");
        consumer
            .seek_to_beginning(std::slice::from_ref(&tp))
            .unwrap();
        assert_eq!(recv(&consumer).await.offset, 0, "{kind:?}");
        assert!(consumer.seek(&TopicPartition::new(&topic, 9), 0).is_err());
        broker.stop().await;
    }
}

#[tokio::test]
async fn pause_holds_back_a_partition_and_resume_releases_it() {
    for kind in ALL {
        eprintln!("against {kind:?}");
        let broker = TestBroker::start(kind, &[]).await;
        let cluster = cluster(&broker).await;
        let topic = unique("pause");
        create_topic(&cluster, &topic, 2).await;
        let (p0, p1) = (
            TopicPartition::new(&topic, 0),
            TopicPartition::new(&topic, 1),
        );
        produce(&cluster, &topic, 0, &["x0", "x1"], Compression::None).await;
        produce(&cluster, &topic, 1, &["y0", "y1"], Compression::None).await;
        let consumer = Consumer::new(config(&broker).auto_offset_reset(OffsetReset::Earliest))
            .await
            .unwrap();
        consumer.assign(&[p0.clone(), p1.clone()]).await.unwrap();
        consumer.pause(std::slice::from_ref(&p0)).unwrap();
        assert_eq!(consumer.paused(), vec![p0.clone()]);
        // Records written to p1 after p0's arrive, p0's do not.
        produce(&cluster, &topic, 1, &["marker"], Compression::None).await;
        let first = recv_n(&consumer, 3).await;
        assert!(
            first.iter().all(|r| r.partition == 1),
            "{kind:?}: {first:?}"
        );
        assert_eq!(value(&first[2]), "marker");
        consumer.resume(std::slice::from_ref(&p0)).unwrap();
        let rest = recv_n(&consumer, 2).await;
        assert_eq!(
            rest.iter().map(value).collect::<Vec<_>>(),
            vec!["x0", "x1"],
            "{kind:?}"
        );
        broker.stop().await;
    }
}

/// Runnel only: Tansu answers ListOffsets "latest" with the offset of the last batch's
/// first record plus one rather than the log end offset (verified: 3 records in one
/// batch give 1), so a "latest" consumer of Tansu would start inside the old batch.
#[tokio::test]
async fn auto_offset_reset_latest_skips_old_records_and_earliest_reads_them() {
    for kind in [Kind::Runnel] {
        eprintln!("against {kind:?}");
        let broker = TestBroker::start(kind, &[]).await;
        let cluster = cluster(&broker).await;
        let topic = unique("reset");
        create_topic(&cluster, &topic, 1).await;
        let tp = TopicPartition::new(&topic, 0);
        produce(&cluster, &topic, 0, &["old0", "old1"], Compression::None).await;

        let latest = Consumer::new(config(&broker)).await.unwrap();
        latest.assign(std::slice::from_ref(&tp)).await.unwrap();
        assert_eq!(latest.position(&tp).await.unwrap(), 2, "{kind:?}");
        produce(&cluster, &topic, 0, &["new"], Compression::None).await;
        let r = recv(&latest).await;
        assert_eq!((r.offset, value(&r)), (2, "new".to_string()), "{kind:?}");

        let earliest = Consumer::new(config(&broker).auto_offset_reset(OffsetReset::Earliest))
            .await
            .unwrap();
        earliest.assign(std::slice::from_ref(&tp)).await.unwrap();
        assert_eq!(value(&recv(&earliest).await), "old0", "{kind:?}");
        broker.stop().await;
    }
}

/// Runnel only: Tansu answers a Fetch beyond the log end with no error and no records
/// (verified), so there is no OFFSET_OUT_OF_RANGE to react to.
#[tokio::test]
async fn an_out_of_range_position_resets_or_fails_per_auto_offset_reset() {
    for kind in [Kind::Runnel] {
        eprintln!("against {kind:?}");
        let broker = TestBroker::start(kind, &[]).await;
        let cluster = cluster(&broker).await;
        let topic = unique("range");
        create_topic(&cluster, &topic, 1).await;
        let tp = TopicPartition::new(&topic, 0);
        produce(&cluster, &topic, 0, &["a", "b"], Compression::None).await;

        let resetting = Consumer::new(config(&broker).auto_offset_reset(OffsetReset::Earliest))
            .await
            .unwrap();
        resetting.assign(std::slice::from_ref(&tp)).await.unwrap();
        resetting.seek(&tp, 1_000).unwrap();
        assert_eq!(recv(&resetting).await.offset, 0, "{kind:?}");

        let strict = Consumer::new(config(&broker).auto_offset_reset(OffsetReset::None))
            .await
            .unwrap();
        strict.assign(std::slice::from_ref(&tp)).await.unwrap();
        // No group, no committed offset, reset none: the consumer reports it.
        let err = tokio::time::timeout(WAIT, strict.recv())
            .await
            .unwrap()
            .unwrap_err();
        assert!(matches!(err, Error::Config(_)), "{kind:?}: {err:?}");
        strict.seek(&tp, 1_000).unwrap();
        let err = tokio::time::timeout(WAIT, strict.recv())
            .await
            .unwrap()
            .unwrap_err();
        assert_eq!(
            err.code(),
            Some(ResponseError::OffsetOutOfRange),
            "{kind:?}: {err:?}"
        );
        strict.seek(&tp, 1).unwrap();
        assert_eq!(value(&recv(&strict).await), "b", "{kind:?}");
        broker.stop().await;
    }
}

/// Runnel only (Tansu creates topics on first use): a consumer assigned a topic that
/// does not exist yet keeps looking it up, and reads it once it is created.
#[tokio::test]
async fn an_assigned_topic_created_later_is_read_once_it_exists() {
    let broker = TestBroker::start(Kind::Runnel, &[("auto.create.topics.enable", "false")]).await;
    let cluster = cluster(&broker).await;
    let topic = unique("later");
    let consumer = Consumer::new(config(&broker).auto_offset_reset(OffsetReset::Earliest))
        .await
        .unwrap();
    consumer
        .assign(&[TopicPartition::new(&topic, 0)])
        .await
        .unwrap();
    let waiting = tokio::spawn(async move {
        let record = recv(&consumer).await;
        (record.offset, value(&record))
    });
    create_topic(&cluster, &topic, 1).await;
    produce(&cluster, &topic, 0, &["first"], Compression::None).await;
    let got = tokio::time::timeout(WAIT, waiting).await.unwrap().unwrap();
    assert_eq!(got, (0, "first".to_string()));
    broker.stop().await;
}

/// Runnel only: Tansu ignores the timestamp of a ListOffsets lookup and answers the
/// log start offset (verified), and its "latest" is not the log end offset.
#[tokio::test]
async fn offsets_for_times_finds_the_first_record_at_or_after() {
    for kind in [Kind::Runnel] {
        eprintln!("against {kind:?}");
        let broker = TestBroker::start(kind, &[]).await;
        let cluster = cluster(&broker).await;
        let topic = unique("times");
        create_topic(&cluster, &topic, 1).await;
        let tp = TopicPartition::new(&topic, 0);
        // Timestamps 1_700_000_000_000 + 0, 1, 2.
        produce(&cluster, &topic, 0, &["a", "b", "c"], Compression::None).await;
        let consumer = Consumer::new(config(&broker)).await.unwrap();
        let found = consumer
            .offsets_for_times(&BTreeMap::from([(tp.clone(), 1_700_000_000_001)]))
            .await
            .unwrap();
        let listed = found[&tp].expect("a record at or after");
        assert_eq!(listed.offset, 1, "{kind:?}");
        let none = consumer
            .offsets_for_times(&BTreeMap::from([(tp.clone(), 1_800_000_000_000)]))
            .await
            .unwrap();
        assert_eq!(none[&tp], None, "{kind:?}");
        assert_eq!(
            consumer
                .end_offsets(std::slice::from_ref(&tp))
                .await
                .unwrap()[&tp],
            3
        );
        assert_eq!(
            consumer
                .beginning_offsets(std::slice::from_ref(&tp))
                .await
                .unwrap()[&tp],
            0
        );
        broker.stop().await;
    }
}

/// Commits without group management (a manual assignment with a group.id): a second
/// consumer of the group starts where the first committed.
async fn manual_commit_round_trip(kind: Kind) {
    eprintln!("against {kind:?}");
    let broker = TestBroker::start(kind, &[]).await;
    let cluster = cluster(&broker).await;
    let topic = unique("commit");
    let group = unique("g");
    create_topic(&cluster, &topic, 1).await;
    let tp = TopicPartition::new(&topic, 0);
    produce(
        &cluster,
        &topic,
        0,
        &["a", "b", "c", "d"],
        Compression::None,
    )
    .await;
    let settings = || {
        config(&broker)
            .group_id(group.clone())
            .enable_auto_commit(false)
            .auto_offset_reset(OffsetReset::Earliest)
    };
    let first = Consumer::new(settings()).await.unwrap();
    first.assign(std::slice::from_ref(&tp)).await.unwrap();
    assert_eq!(
        first.committed(std::slice::from_ref(&tp)).await.unwrap()[&tp],
        None,
        "{kind:?}"
    );
    recv_n(&first, 2).await;
    first.commit().await.unwrap();
    assert_eq!(
        first.committed(std::slice::from_ref(&tp)).await.unwrap()[&tp],
        Some(2),
        "{kind:?}"
    );
    first
        .commit_offsets(&BTreeMap::from([(tp.clone(), 3)]))
        .await
        .unwrap();
    first.close().await.unwrap();

    let second = Consumer::new(settings()).await.unwrap();
    second.assign(std::slice::from_ref(&tp)).await.unwrap();
    let r = recv(&second).await;
    assert_eq!((r.offset, value(&r)), (3, "d".to_string()), "{kind:?}");
    broker.stop().await;
}

#[tokio::test]
async fn manual_commits_are_where_the_next_consumer_starts() {
    for kind in ALL {
        manual_commit_round_trip(kind).await;
    }
}

/// Subscribes with a group: the member is assigned every partition, reads them all,
/// commits on close; a second consumer of the group resumes after the commits.
async fn group_round_trip(kind: Kind, protocol: GroupProtocol) {
    eprintln!("against {kind:?}");
    let broker = TestBroker::start(kind, &[]).await;
    let cluster = cluster(&broker).await;
    let topic = unique("group");
    let group = unique("g");
    create_topic(&cluster, &topic, 3).await;
    for p in 0..3 {
        produce(
            &cluster,
            &topic,
            p,
            &[&format!("p{p}-a"), &format!("p{p}-b")],
            Compression::None,
        )
        .await;
    }
    // Short session and rebalance timeouts, as a test group needs (Tansu holds a
    // join for the rebalance timeout, 5 min by default).
    let settings = || {
        config(&broker)
            .group_id(group.clone())
            .auto_offset_reset(OffsetReset::Earliest)
            .set("session.timeout.ms", "10000")
            .and_then(|c| c.set("max.poll.interval.ms", "10000"))
            .and_then(|c| c.set("heartbeat.interval.ms", "200"))
            .unwrap()
            .group_protocol(protocol)
    };
    let first = Consumer::new(settings()).await.unwrap();
    let listener = Arc::new(Recorder::default());
    first
        .subscribe_with_listener(&[&topic], listener.clone())
        .await
        .unwrap();
    let records = recv_n(&first, 6).await;
    let mut partitions: Vec<i32> = records.iter().map(|r| r.partition).collect();
    partitions.sort_unstable();
    assert_eq!(partitions, vec![0, 0, 1, 1, 2, 2], "{kind:?}");
    assert_eq!(first.assignment().len(), 3, "{kind:?}");
    let mut told = listener.assigned.lock().unwrap().clone();
    told.sort();
    assert_eq!(
        told,
        first.assignment(),
        "{kind:?}: the listener heard of every partition"
    );
    first.commit().await.unwrap();
    let tps: Vec<TopicPartition> = (0..3).map(|p| TopicPartition::new(&topic, p)).collect();
    let committed = first.committed(&tps).await.unwrap();
    assert!(
        committed.values().all(|o| *o == Some(2)),
        "{kind:?}: {committed:?}"
    );
    first.close().await.unwrap();
    assert_eq!(
        listener.revoked.lock().unwrap().len(),
        3,
        "{kind:?}: revoked on close"
    );

    for p in 0..3 {
        produce(
            &cluster,
            &topic,
            p,
            &[&format!("p{p}-c")],
            Compression::None,
        )
        .await;
    }
    let second = Consumer::new(settings()).await.unwrap();
    second.subscribe(&[&topic]).await.unwrap();
    let mut next: Vec<(i32, i64, String)> = recv_n(&second, 3)
        .await
        .iter()
        .map(|r| (r.partition, r.offset, value(r)))
        .collect();
    next.sort();
    let want: Vec<(i32, i64, String)> = (0..3).map(|p| (p, 2, format!("p{p}-c"))).collect();
    assert_eq!(next, want, "{kind:?}");
    second.close().await.unwrap();
    broker.stop().await;
}

#[tokio::test]
async fn a_group_member_reads_all_partitions_and_the_next_resumes_from_its_commits() {
    for kind in ALL {
        group_round_trip(kind, GroupProtocol::Classic).await;
    }
}

/// Runnel only: Tansu serves no ConsumerGroupHeartbeat (KIP-848).
#[tokio::test]
async fn a_kip848_member_reads_all_partitions_and_the_next_resumes_from_its_commits() {
    group_round_trip(Kind::Runnel, GroupProtocol::Consumer).await;
}

/// Remembers what a rebalance listener was told.
#[derive(Debug, Default)]
struct Recorder {
    assigned: std::sync::Mutex<Vec<TopicPartition>>,
    revoked: std::sync::Mutex<Vec<TopicPartition>>,
}

impl RebalanceListener for Recorder {
    fn on_assigned(&self, partitions: &[TopicPartition]) {
        self.assigned.lock().unwrap().extend_from_slice(partitions);
    }

    fn on_revoked(&self, partitions: &[TopicPartition]) {
        self.revoked.lock().unwrap().extend_from_slice(partitions);
    }
}

async fn next_item<S: futures_core::Stream>(mut stream: std::pin::Pin<&mut S>) -> Option<S::Item> {
    std::future::poll_fn(|cx| stream.as_mut().poll_next(cx)).await
}

#[tokio::test]
async fn the_stream_yields_records_and_ends_after_close() {
    let broker = TestBroker::start(Kind::Runnel, &[]).await;
    let cluster = cluster(&broker).await;
    let topic = unique("stream");
    create_topic(&cluster, &topic, 1).await;
    produce(&cluster, &topic, 0, &["a", "b"], Compression::Gzip).await;
    let consumer = Consumer::new(config(&broker).auto_offset_reset(OffsetReset::Earliest))
        .await
        .unwrap();
    consumer
        .assign(&[TopicPartition::new(&topic, 0)])
        .await
        .unwrap();
    {
        let mut stream = std::pin::pin!(consumer.stream());
        let a = tokio::time::timeout(WAIT, next_item(stream.as_mut()))
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let b = tokio::time::timeout(WAIT, next_item(stream.as_mut()))
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!((value(&a), value(&b)), ("a".to_string(), "b".to_string()));
    }
    consumer.close().await.unwrap();
    let mut stream = std::pin::pin!(consumer.stream());
    assert!(matches!(
        next_item(stream.as_mut()).await,
        Some(Err(Error::Closed))
    ));
    assert!(next_item(stream.as_mut()).await.is_none());
    broker.stop().await;
}

#[tokio::test]
async fn auto_commit_commits_positions_periodically_and_on_close() {
    for kind in ALL {
        eprintln!("against {kind:?}");
        let broker = TestBroker::start(kind, &[]).await;
        let cluster = cluster(&broker).await;
        let topic = unique("autocommit");
        let group = unique("g");
        create_topic(&cluster, &topic, 1).await;
        let tp = TopicPartition::new(&topic, 0);
        produce(&cluster, &topic, 0, &["a", "b", "c"], Compression::None).await;
        let consumer = Consumer::new(
            config(&broker)
                .group_id(group.clone())
                .auto_offset_reset(OffsetReset::Earliest)
                .set("auto.commit.interval.ms", "100")
                .unwrap(),
        )
        .await
        .unwrap();
        consumer.assign(std::slice::from_ref(&tp)).await.unwrap();
        recv_n(&consumer, 2).await;
        // The periodic commit catches up with the position.
        tokio::time::timeout(WAIT, async {
            while consumer.committed(std::slice::from_ref(&tp)).await.unwrap()[&tp] != Some(2) {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await
        .expect("auto-committed within the wait");
        recv(&consumer).await;
        consumer.close().await.unwrap();

        let check = Consumer::new(config(&broker).group_id(group.clone()))
            .await
            .unwrap();
        let committed = check.committed(std::slice::from_ref(&tp)).await.unwrap();
        assert_eq!(committed[&tp], Some(3), "{kind:?}: committed on close");
        broker.stop().await;
    }
}

/// Remembers the partitions a listener was told were lost.
#[derive(Debug, Default)]
struct LostRecorder {
    lost: std::sync::Mutex<Vec<TopicPartition>>,
}

impl RebalanceListener for LostRecorder {
    fn on_assigned(&self, _: &[TopicPartition]) {}

    fn on_revoked(&self, _: &[TopicPartition]) {}

    fn on_lost(&self, partitions: &[TopicPartition]) {
        self.lost.lock().unwrap().extend_from_slice(partitions);
    }
}

/// `max.poll.interval.ms`: a member whose application stops asking for
/// records gives its partitions up as lost and leaves, so a member that keeps
/// polling reads them; at its next poll it joins again and reads once more.
async fn poll_timeout_round_trip(kind: Kind, protocol: GroupProtocol) {
    eprintln!("against {kind:?}, {protocol:?}");
    let overrides: &[(&str, &str)] = match protocol {
        // Runnel's KIP-848 heartbeat interval (5 s by default) paces every
        // reconciliation step.
        GroupProtocol::Consumer => &[("group.consumer.heartbeat.interval.ms", "300")],
        GroupProtocol::Classic => &[],
    };
    let broker = TestBroker::start(kind, overrides).await;
    let cluster = cluster(&broker).await;
    let topic = unique("stuck");
    let group = unique("g");
    create_topic(&cluster, &topic, 2).await;
    for p in 0..2 {
        produce(
            &cluster,
            &topic,
            p,
            &[&format!("p{p}-a")],
            Compression::None,
        )
        .await;
    }
    let settings = || {
        config(&broker)
            .group_id(group.clone())
            .auto_offset_reset(OffsetReset::Earliest)
            .set("session.timeout.ms", "10000")
            .and_then(|c| c.set("max.poll.interval.ms", "1500"))
            .and_then(|c| c.set("heartbeat.interval.ms", "200"))
            .unwrap()
            .group_protocol(protocol)
    };
    let stuck = Consumer::new(settings()).await.unwrap();
    let listener = Arc::new(LostRecorder::default());
    stuck
        .subscribe_with_listener(&[&topic], listener.clone())
        .await
        .unwrap();
    assert_eq!(recv_n(&stuck, 2).await.len(), 2);
    // From here `stuck` does not poll.

    let live = Arc::new(Consumer::new(settings()).await.unwrap());
    live.subscribe(&[&topic]).await.unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let reader = {
        let live = live.clone();
        tokio::spawn(async move {
            while let Ok(record) = live.recv().await {
                let _ = tx.send((record.partition, value(&record)));
            }
        })
    };
    for p in 0..2 {
        produce(
            &cluster,
            &topic,
            p,
            &[&format!("p{p}-b")],
            Compression::None,
        )
        .await;
    }
    // Both new records reach the live member: the stuck one gave its
    // partitions up. Bounded: the poll timeout plus a rebalance.
    let mut seen = BTreeSet::new();
    tokio::time::timeout(WAIT, async {
        while seen.len() < 2 {
            let (partition, value) = rx.recv().await.unwrap();
            if value.ends_with("-b") {
                seen.insert(partition);
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{kind:?} {protocol:?}: the live member read {seen:?}"));
    // What it owned when it stopped polling (one partition, or both if the
    // live member joined before the rebalance): lost, none committed.
    let lost = listener.lost.lock().unwrap().clone();
    assert!(!lost.is_empty(), "{kind:?} {protocol:?}");
    assert!(lost.iter().all(|tp| tp.topic == topic), "{lost:?}");
    assert!(stuck.assignment().is_empty());

    // Polling again, the stuck member rejoins and is given a partition.
    let back = tokio::time::timeout(WAIT, async {
        loop {
            for p in 0..2 {
                produce(
                    &cluster,
                    &topic,
                    p,
                    &[&format!("p{p}-c")],
                    Compression::None,
                )
                .await;
            }
            if let Ok(record) = tokio::time::timeout(Duration::from_secs(1), stuck.recv()).await {
                break record.unwrap();
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{kind:?} {protocol:?}: the member never came back"));
    assert!(value(&back).ends_with("-c"), "{}", value(&back));
    assert!(!stuck.assignment().is_empty());
    stuck.close().await.unwrap();
    live.close().await.unwrap();
    reader.await.unwrap();
    broker.stop().await;
}

/// Runnel only: against Tansu 0.6.0 the second member, once its JoinGroup
/// is answered, reads nothing within the wait, and no new generation follows
/// the first member's LeaveGroup (seen with this test's debug log).
#[tokio::test]
async fn a_member_that_stops_polling_leaves_and_comes_back() {
    poll_timeout_round_trip(Kind::Runnel, GroupProtocol::Classic).await;
}

/// Runnel only: Tansu serves no ConsumerGroupHeartbeat (KIP-848).
#[tokio::test]
async fn a_kip848_member_that_stops_polling_leaves_and_comes_back() {
    poll_timeout_round_trip(Kind::Runnel, GroupProtocol::Consumer).await;
}

/// A pattern subscription reads every matching topic, also one created after
/// joining, and never a topic that does not match.
async fn pattern_round_trip(kind: Kind, protocol: GroupProtocol) {
    eprintln!("against {kind:?}, {protocol:?}");
    let overrides: &[(&str, &str)] = match protocol {
        GroupProtocol::Consumer => &[("group.consumer.heartbeat.interval.ms", "300")],
        GroupProtocol::Classic => &[],
    };
    let broker = TestBroker::start(kind, overrides).await;
    let cluster = cluster(&broker).await;
    let prefix = unique("pat");
    let (first, later, other) = (
        format!("{prefix}-a"),
        format!("{prefix}-b"),
        format!("x{prefix}-c"),
    );
    create_topic(&cluster, &first, 1).await;
    create_topic(&cluster, &other, 1).await;
    produce(&cluster, &first, 0, &["a1"], Compression::None).await;
    produce(&cluster, &other, 0, &["c1"], Compression::None).await;
    let consumer = Consumer::new(
        config(&broker)
            .group_id(unique("g"))
            .auto_offset_reset(OffsetReset::Earliest)
            .set("metadata.max.age.ms", "300")
            .and_then(|c| c.set("heartbeat.interval.ms", "200"))
            .and_then(|c| c.set("session.timeout.ms", "10000"))
            .and_then(|c| c.set("max.poll.interval.ms", "10000"))
            .unwrap()
            .group_protocol(protocol),
    )
    .await
    .unwrap();
    let err = consumer.subscribe_pattern("(").await.unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err:?}");
    consumer
        .subscribe_pattern(&format!("{prefix}-.*"))
        .await
        .unwrap();
    let record = recv(&consumer).await;
    assert_eq!(
        (&*record.topic, value(&record).as_str()),
        (first.as_str(), "a1")
    );

    create_topic(&cluster, &later, 1).await;
    produce(&cluster, &later, 0, &["b1"], Compression::None).await;
    produce(&cluster, &other, 0, &["c2"], Compression::None).await;
    let record = recv(&consumer).await;
    assert_eq!(
        (&*record.topic, value(&record).as_str()),
        (later.as_str(), "b1"),
        "{kind:?} {protocol:?}"
    );
    let mut assigned = consumer.assignment();
    assigned.sort();
    assert_eq!(
        assigned,
        vec![
            TopicPartition::new(&first, 0),
            TopicPartition::new(&later, 0)
        ]
    );
    consumer.close().await.unwrap();
    broker.stop().await;
}

#[tokio::test]
async fn a_pattern_subscription_follows_matching_topics() {
    for kind in ALL {
        pattern_round_trip(kind, GroupProtocol::Classic).await;
    }
}

/// Runnel only: Tansu serves no ConsumerGroupHeartbeat (KIP-848).
#[tokio::test]
async fn a_kip848_pattern_subscription_is_matched_by_the_coordinator() {
    pattern_round_trip(Kind::Runnel, GroupProtocol::Consumer).await;
}
