//! Replication on a three-node cluster in one process: `acks=all` waits
//! for the in-sync replicas, followers hold the leader's records byte for
//! byte, a new leader serves everything acknowledged, `min.insync.replicas`
//! refuses writes the ISR cannot hold, a stopped replica catches up and
//! rejoins the ISR, an idempotent producer's retry is still recognised
//! after the leader changed, and OffsetsForLeaderEpoch tells where each
//! epoch ends.

mod common;

use std::time::{Duration, Instant};

use common::cluster::*;
use common::RawClient;
use kafka_protocol::messages::*;
use kafka_protocol::ResponseError;
use runnel_protocol::batch::{decode_records, split_batches, BatchBuilder};

/// Fast failure detection and follower fetches for a test.
const SETTINGS: &[(&str, &str)] = &[
    ("replica.lag.time.max.ms", "2000"),
    ("replica.fetch.wait.max.ms", "100"),
    ("replica.fetch.backoff.ms", "100"),
];

async fn create_replicated(client: &mut RawClient, topic: &str, min_insync: &str) {
    let request = CreateTopicsRequest::default().with_topics(vec![
        create_topics_request::CreatableTopic::default()
            .with_name(TopicName(s(topic)))
            .with_num_partitions(1)
            .with_replication_factor(3)
            .with_configs(vec![create_topics_request::CreatableTopicConfig::default()
                .with_name(s("min.insync.replicas"))
                .with_value(Some(s(min_insync)))]),
    ]);
    let created: CreateTopicsResponse = client.call(ApiKey::CreateTopics, 7, &request).await;
    assert_eq!(created.topics[0].error_code, 0, "{created:?}");
}

/// The partition's (leader, ISR) as `client`'s node sees it.
async fn leader_and_isr(client: &mut RawClient, topic: &str) -> (i32, Vec<i32>) {
    let response = metadata(client, topic).await;
    let p = &response.topics[0].partitions[0];
    let mut isr: Vec<i32> = p.isr_nodes.iter().map(|b| b.0).collect();
    isr.sort();
    (p.leader_id.0, isr)
}

/// Waits until `accept` holds for the partition's (leader, ISR).
async fn wait_for(
    client: &mut RawClient,
    topic: &str,
    what: &str,
    accept: impl Fn(i32, &[i32]) -> bool,
) -> (i32, Vec<i32>) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (leader, isr) = leader_and_isr(client, topic).await;
        if accept(leader, &isr) {
            return (leader, isr);
        }
        assert!(
            Instant::now() < deadline,
            "{what}: leader {leader}, ISR {isr:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn batch(values: &[String], producer: Option<(i64, i32)>) -> Vec<u8> {
    let mut builder = BatchBuilder::default();
    for v in values {
        builder = builder.keyed(now_ms(), b"k", Some(v.as_bytes()));
    }
    if let Some((id, sequence)) = producer {
        builder = builder.producer(id, 0, sequence);
    }
    builder.build().unwrap()
}

/// Produces one batch; the partition's (error code, base offset).
async fn produce(client: &mut RawClient, topic: &str, acks: i16, records: Vec<u8>) -> (i16, i64) {
    let request = ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![produce_request::TopicProduceData::default()
            .with_name(TopicName(s(topic)))
            .with_partition_data(vec![
                produce_request::PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(records.into())),
            ])]);
    // A new topic or leader may not have reached the node yet: retry those
    // errors briefly, as clients do.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let response: ProduceResponse = client.call(ApiKey::Produce, 9, &request).await;
        let p = &response.responses[0].partition_responses[0];
        let retriable = [
            ResponseError::UnknownTopicOrPartition.code(),
            ResponseError::NotLeaderOrFollower.code(),
        ];
        if !retriable.contains(&p.error_code) || Instant::now() > deadline {
            return (p.error_code, p.base_offset);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Reads as a consumer from offset 0 up to the high watermark, one fetch
/// per segment: (error, high watermark, values, raw batches).
async fn fetch_all(client: &mut RawClient, topic: &str) -> (i16, i64, Vec<String>, Vec<u8>) {
    let mut offset = 0;
    let mut values = Vec::new();
    let mut all = Vec::new();
    loop {
        let request = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(0)
            .with_max_bytes(16 << 20)
            .with_topics(vec![fetch_request::FetchTopic::default()
                .with_topic(TopicName(s(topic)))
                .with_partitions(vec![fetch_request::FetchPartition::default()
                    .with_partition(0)
                    .with_fetch_offset(offset)
                    .with_partition_max_bytes(16 << 20)])]);
        let response: FetchResponse = client.call(ApiKey::Fetch, 12, &request).await;
        let p = &response.responses[0].partitions[0];
        let bytes = p.records.clone().unwrap_or_default().to_vec();
        if p.error_code != 0 || bytes.is_empty() {
            return (p.error_code, p.high_watermark, values, all);
        }
        for item in split_batches(&bytes) {
            let (at, header) = item.unwrap();
            for record in decode_records(&bytes[at..at + header.total_len()], 1 << 24).unwrap() {
                values.push(String::from_utf8(record.value.unwrap()).unwrap());
            }
            offset = header.last_offset() + 1;
        }
        all.extend_from_slice(&bytes);
    }
}

/// [`fetch_all`] once the high watermark has reached `high_watermark`.
async fn fetch_when(
    client: &mut RawClient,
    topic: &str,
    high_watermark: i64,
) -> (i16, i64, Vec<String>, Vec<u8>) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let fetched = fetch_all(client, topic).await;
        if fetched.1 >= high_watermark || Instant::now() > deadline {
            return fetched;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn values(range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("record-{i}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_records_survive_the_loss_of_their_leader() {
    let mut cluster = Cluster::start_configured(SETTINGS).await;
    let mut any = cluster.client(1).await;
    create_replicated(&mut any, "acked", "2").await;
    create_replicated(&mut any, "strict", "3").await;
    let (leader, isr) = wait_for(&mut any, "acked", "a leader", |l, _| l > 0).await;
    assert_eq!(isr, vec![1, 2, 3], "every replica starts in sync");

    // Ten batches of ten with acks=all: each acknowledged once all three
    // replicas have it, so the high watermark is its end straight away.
    let mut to_leader = cluster.client(leader).await;
    for b in 0..10 {
        let (code, base) = produce(
            &mut to_leader,
            "acked",
            -1,
            batch(&values(b * 10..b * 10 + 10), None),
        )
        .await;
        assert_eq!(code, 0, "batch {b}");
        assert_eq!(base, (b * 10) as i64);
        let (_, hw, _, _) = fetch_all(&mut to_leader, "acked").await;
        assert_eq!(
            hw,
            (b * 10 + 10) as i64,
            "acks=all answered before the ISR had it"
        );
    }
    let (_, _, on_leader, leader_bytes) = fetch_all(&mut to_leader, "acked").await;
    assert_eq!(on_leader, values(0..100));

    // The leader goes; another in-sync replica leads, with every record,
    // stored byte for byte as the old leader stored them.
    cluster.stop_node(leader).await;
    let survivor = if leader == 1 { 2 } else { 1 };
    let mut probe = cluster.client(survivor).await;
    let (second, isr) = wait_for(&mut probe, "acked", "a new leader", |l, isr| {
        l > 0 && l != leader && !isr.contains(&leader)
    })
    .await;
    assert_eq!(isr.len(), 2, "{isr:?}");
    let mut to_second = cluster.client(second).await;
    // A new leader learns the last watermark from its followers' next fetch.
    let (code, hw, on_second, second_bytes) = fetch_when(&mut to_second, "acked", 100).await;
    assert_eq!(code, 0);
    assert_eq!(hw, 100);
    assert_eq!(on_second, values(0..100));
    assert_eq!(
        strip_epochs(&second_bytes),
        strip_epochs(&leader_bytes),
        "a follower keeps the leader's batches verbatim"
    );

    // Two in sync satisfy min.insync.replicas=2.
    let (code, base) = produce(&mut to_second, "acked", -1, batch(&values(100..110), None)).await;
    assert_eq!((code, base), (0, 100));

    // Two in sync do not satisfy min.insync.replicas=3: acks=all is
    // refused before anything is written, acks=1 still works. (Two of the
    // three nodes are the metadata quorum's majority, so only one may go.)
    let (strict_leader, _) = wait_for(&mut to_second, "strict", "the ISR shrinks", |l, isr| {
        l > 0 && isr.len() == 2
    })
    .await;
    let mut to_strict = cluster.client(strict_leader).await;
    let (code, _) = produce(&mut to_strict, "strict", -1, batch(&values(0..1), None)).await;
    assert_eq!(code, ResponseError::NotEnoughReplicas.code());
    let (code, base) = produce(&mut to_strict, "strict", 1, batch(&values(0..10), None)).await;
    assert_eq!((code, base), (0, 0));

    // The stopped replica comes back, catches up and rejoins the ISR.
    cluster.restart_node(leader).await;
    for topic in ["acked", "strict"] {
        wait_for(&mut to_second, topic, "everyone back in sync", |_, isr| {
            isr == [1, 2, 3]
        })
        .await;
    }
    let (code, base) = produce(&mut to_second, "acked", -1, batch(&values(110..120), None)).await;
    assert_eq!((code, base), (0, 110));
    let (code, base) = produce(&mut to_strict, "strict", -1, batch(&values(10..20), None)).await;
    assert_eq!((code, base), (0, 10));
    // Every replica holds the same log, byte for byte.
    for topic in ["acked", "strict"] {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let logs: Vec<Vec<u8>> = cluster.nodes.iter().map(|n| log_bytes(n, topic)).collect();
            if logs.windows(2).all(|w| w[0] == w[1]) {
                assert!(!logs[0].is_empty());
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the replicas of {topic} differ: {:?}",
                logs.iter().map(Vec::len).collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    cluster.stop().await;
}

/// Every `.log` segment of `topic`-0 on `node`, concatenated in offset
/// order.
fn log_bytes(node: &Node, topic: &str) -> Vec<u8> {
    let dir = node.dir.path().join(format!("{topic}-0"));
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    names.sort();
    names
        .iter()
        .flat_map(|p| std::fs::read(p).unwrap())
        .collect()
}

/// The batches with their partition leader epochs zeroed (a follower
/// stores the leader's bytes, epochs included; this compares the data).
fn strip_epochs(bytes: &[u8]) -> Vec<u8> {
    let mut out = bytes.to_vec();
    let mut at = 0;
    while at + 61 <= out.len() {
        let len = i32::from_be_bytes(out[at + 8..at + 12].try_into().unwrap()) as usize;
        out[at + 12..at + 16].copy_from_slice(&[0; 4]);
        at += 12 + len;
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotent_retry_is_recognised_by_the_next_leader() {
    let mut cluster = Cluster::start_configured(SETTINGS).await;
    let mut any = cluster.client(1).await;
    create_replicated(&mut any, "idempotent", "2").await;
    let (leader, _) = wait_for(&mut any, "idempotent", "a leader", |l, _| l > 0).await;
    let mut to_leader = cluster.client(leader).await;
    let init: InitProducerIdResponse = to_leader
        .call(
            ApiKey::InitProducerId,
            4,
            &InitProducerIdRequest::default()
                .with_transactional_id(None)
                .with_transaction_timeout_ms(60_000),
        )
        .await;
    let pid = init.producer_id.0;
    let first = batch(&values(0..5), Some((pid, 0)));
    let second = batch(&values(5..10), Some((pid, 5)));
    assert_eq!(
        produce(&mut to_leader, "idempotent", -1, first).await,
        (0, 0)
    );
    assert_eq!(
        produce(&mut to_leader, "idempotent", -1, second.clone()).await,
        (0, 5)
    );

    cluster.stop_node(leader).await;
    let survivor = if leader == 1 { 2 } else { 1 };
    let mut probe = cluster.client(survivor).await;
    let (next, _) = wait_for(&mut probe, "idempotent", "a new leader", |l, _| {
        l > 0 && l != leader
    })
    .await;
    let mut to_next = cluster.client(next).await;
    // The retry of the last batch gets its original offsets, not new ones;
    // the next batch in sequence follows it; a gap is refused.
    assert_eq!(
        produce(&mut to_next, "idempotent", -1, second).await,
        (0, 5)
    );
    let third = batch(&values(10..12), Some((pid, 10)));
    assert_eq!(
        produce(&mut to_next, "idempotent", -1, third).await,
        (0, 10)
    );
    let gap = batch(&values(12..13), Some((pid, 20)));
    let (code, _) = produce(&mut to_next, "idempotent", -1, gap).await;
    assert_eq!(code, ResponseError::OutOfOrderSequenceNumber.code());
    let (_, hw, on_next, _) = fetch_when(&mut to_next, "idempotent", 12).await;
    assert_eq!(hw, 12);
    assert_eq!(on_next, values(0..12));
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_for_leader_epoch_tells_where_each_epoch_ends() {
    let mut cluster = Cluster::start_configured(SETTINGS).await;
    let mut any = cluster.client(1).await;
    create_replicated(&mut any, "epochs", "1").await;
    let (first, _) = wait_for(&mut any, "epochs", "a leader", |l, _| l > 0).await;
    let epoch_of = |response: &MetadataResponse| response.topics[0].partitions[0].leader_epoch;
    let first_epoch = epoch_of(&metadata(&mut any, "epochs").await);
    let mut to_first = cluster.client(first).await;
    assert_eq!(
        produce(&mut to_first, "epochs", -1, batch(&values(0..7), None)).await,
        (0, 0)
    );

    cluster.stop_node(first).await;
    let survivor = if first == 1 { 2 } else { 1 };
    let mut probe = cluster.client(survivor).await;
    let (second, _) = wait_for(&mut probe, "epochs", "a new leader", |l, isr| {
        l > 0 && l != first && isr.len() == 2
    })
    .await;
    let second_epoch = epoch_of(&metadata(&mut probe, "epochs").await);
    assert!(second_epoch > first_epoch);
    let mut to_second = cluster.client(second).await;
    assert_eq!(
        produce(&mut to_second, "epochs", -1, batch(&values(7..10), None)).await,
        (0, 7)
    );

    let ask = |epoch: i32, current: i32| {
        OffsetForLeaderEpochRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![
                offset_for_leader_epoch_request::OffsetForLeaderTopic::default()
                    .with_topic(TopicName(s("epochs")))
                    .with_partitions(vec![
                        offset_for_leader_epoch_request::OffsetForLeaderPartition::default()
                            .with_partition(0)
                            .with_current_leader_epoch(current)
                            .with_leader_epoch(epoch),
                    ]),
            ])
    };
    let answer = |response: OffsetForLeaderEpochResponse| {
        let p = &response.topics[0].partitions[0];
        (p.error_code, p.leader_epoch, p.end_offset)
    };
    let old: OffsetForLeaderEpochResponse = to_second
        .call(
            ApiKey::OffsetForLeaderEpoch,
            4,
            &ask(first_epoch, second_epoch),
        )
        .await;
    assert_eq!(
        answer(old),
        (0, first_epoch, 7),
        "the first epoch ends where the second starts"
    );
    let latest: OffsetForLeaderEpochResponse = to_second
        .call(
            ApiKey::OffsetForLeaderEpoch,
            4,
            &ask(second_epoch, second_epoch),
        )
        .await;
    assert_eq!(
        answer(latest),
        (0, second_epoch, 10),
        "the latest epoch ends at the log end"
    );
    let fenced: OffsetForLeaderEpochResponse = to_second
        .call(
            ApiKey::OffsetForLeaderEpoch,
            4,
            &ask(first_epoch, first_epoch),
        )
        .await;
    assert_eq!(answer(fenced).0, ResponseError::FencedLeaderEpoch.code());
    let mut follower = cluster
        .client((1..=3).find(|&n| n != first && n != second).unwrap())
        .await;
    let refused: OffsetForLeaderEpochResponse = follower
        .call(ApiKey::OffsetForLeaderEpoch, 4, &ask(second_epoch, -1))
        .await;
    assert_eq!(answer(refused).0, ResponseError::NotLeaderOrFollower.code());
    cluster.stop().await;
}
