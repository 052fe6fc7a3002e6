//! Produce rules beyond framing: durability before acknowledgement,
//! `min.insync.replicas`, timestamp bounds and record-level validation.

mod common;

use common::{RawClient, TestBroker};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use runnel_protocol::batch::BatchBuilder;

fn topic_name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

async fn create(client: &mut RawClient, name: &str, configs: &[(&str, &str)]) {
    let request = CreateTopicsRequest::default().with_topics(vec![
        create_topics_request::CreatableTopic::default()
            .with_name(topic_name(name))
            .with_num_partitions(1)
            .with_replication_factor(1)
            .with_configs(
                configs
                    .iter()
                    .map(|(k, v)| {
                        create_topics_request::CreatableTopicConfig::default()
                            .with_name(StrBytes::from_string(k.to_string()))
                            .with_value(Some(StrBytes::from_string(v.to_string())))
                    })
                    .collect(),
            ),
    ]);
    let response: CreateTopicsResponse = client.call(ApiKey::CreateTopics, 7, &request).await;
    assert_eq!(
        response.topics[0].error_code, 0,
        "{:?}",
        response.topics[0].error_message
    );
}

async fn produce(
    client: &mut RawClient,
    topic: &str,
    acks: i16,
    batch: Vec<u8>,
) -> produce_response::PartitionProduceResponse {
    let request = ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(5000)
        .with_topic_data(vec![produce_request::TopicProduceData::default()
            .with_name(topic_name(topic))
            .with_partition_data(vec![
                produce_request::PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(batch.into())),
            ])]);
    let response: ProduceResponse = client.call(ApiKey::Produce, 9, &request).await;
    response.responses[0].partition_responses[0].clone()
}

fn batch_now(values: &[&[u8]]) -> Vec<u8> {
    let now = runnel_model::Timestamp::now().0;
    values
        .iter()
        .fold(BatchBuilder::default(), |b, v| b.value(now, v))
        .build()
        .unwrap()
}

#[tokio::test]
async fn flush_messages_one_fsyncs_before_the_acknowledgement() {
    let broker = TestBroker::start(&[]).await;
    let mut client = broker.client().await;
    create(&mut client, "synced", &[("flush.messages", "1")]).await;
    create(&mut client, "lazy", &[]).await;
    let checkpoint = |topic: &str| {
        std::fs::read_to_string(
            broker
                .dir
                .path()
                .join(format!("{topic}-0"))
                .join("recovery-point-offset-checkpoint"),
        )
        .ok()
        .and_then(|s| s.trim().parse::<i64>().ok())
        .unwrap_or(0)
    };
    for round in 1..=3i64 {
        let p = produce(&mut client, "synced", 1, batch_now(&[b"a", b"b"])).await;
        assert_eq!(p.error_code, 0);
        // The recovery point is written after the fsync that covers the
        // batch, and before the response.
        assert_eq!(checkpoint("synced"), round * 2, "fsynced through the batch");
        let p = produce(&mut client, "lazy", 1, batch_now(&[b"a", b"b"])).await;
        assert_eq!(p.error_code, 0);
    }
    assert_eq!(
        checkpoint("lazy"),
        0,
        "default policy leaves flushing to the background"
    );
    broker.stop().await;
}

#[tokio::test]
async fn acks_all_needs_min_insync_replicas() {
    let broker = TestBroker::start(&[]).await;
    let mut client = broker.client().await;
    create(&mut client, "strict", &[("min.insync.replicas", "2")]).await;
    let p = produce(&mut client, "strict", -1, batch_now(&[b"x"])).await;
    assert_eq!(p.error_code, ResponseError::NotEnoughReplicas.code());
    let p = produce(&mut client, "strict", 1, batch_now(&[b"x"])).await;
    assert_eq!(p.error_code, 0, "acks=1 does not wait for the ISR");
    broker.stop().await;
}

#[tokio::test]
async fn timestamps_outside_the_topic_bounds_are_refused() {
    let broker = TestBroker::start(&[]).await;
    let mut client = broker.client().await;
    create(
        &mut client,
        "clock",
        &[("message.timestamp.before.max.ms", "60000")],
    )
    .await;
    let now = runnel_model::Timestamp::now().0;
    let old = BatchBuilder::default()
        .value(now, b"fine")
        .value(now - 3_600_000, b"an hour old")
        .build()
        .unwrap();
    let p = produce(&mut client, "clock", 1, old).await;
    assert_eq!(p.error_code, ResponseError::InvalidTimestamp.code());
    assert_eq!(p.record_errors.len(), 1);
    assert_eq!(p.record_errors[0].batch_index, 1);
    // Kafka 4 defaults message.timestamp.after.max.ms to one hour.
    let future = BatchBuilder::default()
        .value(now + 2 * 3_600_000, b"later")
        .build()
        .unwrap();
    let p = produce(&mut client, "clock", 1, future).await;
    assert_eq!(p.error_code, ResponseError::InvalidTimestamp.code());
    let p = produce(&mut client, "clock", 1, batch_now(&[b"now"])).await;
    assert_eq!(
        (p.error_code, p.base_offset),
        (0, 0),
        "nothing was stored before"
    );
    broker.stop().await;
}

#[tokio::test]
async fn a_batch_claiming_more_records_than_it_holds_is_refused() {
    let broker = TestBroker::start(&[]).await;
    let mut client = broker.client().await;
    create(&mut client, "count", &[]).await;
    let mut batch = batch_now(&[b"one", b"two"]);
    // records_count at byte 57, covered by the CRC at 17..21: fix the CRC so
    // that only the record walk can notice.
    batch[57..61].copy_from_slice(&3i32.to_be_bytes());
    batch[23..27].copy_from_slice(&2i32.to_be_bytes()); // last offset delta
    let crc = crc32c::crc32c(&batch[21..]);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
    let p = produce(&mut client, "count", 1, batch).await;
    assert!(
        p.error_code == ResponseError::InvalidRecord.code()
            || p.error_code == ResponseError::CorruptMessage.code(),
        "got {}",
        p.error_code
    );
    let p = produce(&mut client, "count", 1, batch_now(&[b"ok"])).await;
    assert_eq!(
        (p.error_code, p.base_offset),
        (0, 0),
        "nothing was stored before"
    );
    broker.stop().await;
}

#[tokio::test]
async fn a_compacted_topic_refuses_records_without_a_key() {
    let broker = TestBroker::start(&[]).await;
    let mut client = broker.client().await;
    create(&mut client, "compacted", &[("cleanup.policy", "compact")]).await;
    let now = runnel_model::Timestamp::now().0;
    let mixed = BatchBuilder::default()
        .keyed(now, b"k", Some(b"v"))
        .value(now, b"no key")
        .build()
        .unwrap();
    let response = produce(&mut client, "compacted", 1, mixed).await;
    assert_eq!(response.error_code, ResponseError::InvalidRecord.code());
    let indexes: Vec<i32> = response
        .record_errors
        .iter()
        .map(|e| e.batch_index)
        .collect();
    assert_eq!(indexes, [1]);
    let keyed = BatchBuilder::default()
        .keyed(now, b"k", Some(b"v"))
        .keyed(now, b"k", None)
        .build()
        .unwrap();
    let response = produce(&mut client, "compacted", 1, keyed).await;
    assert_eq!(response.error_code, 0, "keys and tombstones are fine");
    assert_eq!(response.base_offset, 0);
    broker.stop().await;
}

fn idempotent(producer_id: i64, epoch: i16, sequence: i32, values: &[&[u8]]) -> Vec<u8> {
    let now = runnel_model::Timestamp::now().0;
    values
        .iter()
        .fold(BatchBuilder::default(), |b, v| b.value(now, v))
        .producer(producer_id, epoch, sequence)
        .build()
        .unwrap()
}

#[tokio::test]
async fn idempotent_retries_get_their_original_offsets_across_a_restart() {
    let broker = TestBroker::start(&[]).await;
    let mut client = broker.client().await;
    create(&mut client, "idem", &[]).await;
    let init: InitProducerIdResponse = client
        .call(
            ApiKey::InitProducerId,
            4,
            &InitProducerIdRequest::default()
                .with_transactional_id(None)
                .with_transaction_timeout_ms(60_000),
        )
        .await;
    let pid = init.producer_id.0;
    let first = idempotent(pid, 0, 0, &[b"a", b"b"]);
    let second = idempotent(pid, 0, 2, &[b"c"]);
    assert_eq!(
        produce(&mut client, "idem", -1, first.clone())
            .await
            .base_offset,
        0
    );
    assert_eq!(
        produce(&mut client, "idem", -1, second.clone())
            .await
            .base_offset,
        2
    );
    let retry = produce(&mut client, "idem", -1, first.clone()).await;
    assert_eq!(
        (retry.error_code, retry.base_offset),
        (0, 0),
        "duplicate answered with its offsets"
    );
    drop(client);
    let broker = TestBroker::start_in(broker.stop().await, &[]).await;
    let mut client = broker.client().await;
    let retry = produce(&mut client, "idem", -1, second).await;
    assert_eq!(
        (retry.error_code, retry.base_offset),
        (0, 2),
        "producer state survived the restart"
    );
    let gap = produce(&mut client, "idem", -1, idempotent(pid, 0, 7, &[b"d"])).await;
    assert_eq!(
        gap.error_code,
        ResponseError::OutOfOrderSequenceNumber.code()
    );
    let bumped = produce(&mut client, "idem", -1, idempotent(pid, 1, 0, &[b"e"])).await;
    assert_eq!(
        (bumped.error_code, bumped.base_offset),
        (0, 3),
        "a new epoch starts at sequence 0"
    );
    let fenced = produce(&mut client, "idem", -1, idempotent(pid, 0, 3, &[b"f"])).await;
    assert_eq!(
        fenced.error_code,
        ResponseError::InvalidProducerEpoch.code()
    );
    let end = produce(&mut client, "idem", -1, idempotent(pid, 1, 1, &[b"g"])).await;
    assert_eq!(
        (end.error_code, end.base_offset),
        (0, 4),
        "exactly one copy of each batch was stored"
    );
    broker.stop().await;
}
