//! Socket-level tests of the request path: version negotiation, bad frames,
//! produce and fetch round trips, topic administration.

mod common;

use bytes::{Buf, BufMut, BytesMut};
use common::TestBroker;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use runnel_protocol::batch::BatchBuilder;

fn topic_name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

async fn create_topic(
    client: &mut common::RawClient,
    name: &str,
    partitions: i32,
) -> CreateTopicsResponse {
    let request = CreateTopicsRequest::default().with_topics(vec![
        create_topics_request::CreatableTopic::default()
            .with_name(topic_name(name))
            .with_num_partitions(partitions)
            .with_replication_factor(1),
    ]);
    client.call(ApiKey::CreateTopics, 7, &request).await
}

fn produce_request(topic: &str, partition: i32, records: Vec<u8>) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![produce_request::TopicProduceData::default()
            .with_name(topic_name(topic))
            .with_partition_data(vec![
                produce_request::PartitionProduceData::default()
                    .with_index(partition)
                    .with_records(Some(records.into())),
            ])])
}

#[tokio::test]
async fn api_versions_lists_only_served_apis() {
    let broker = TestBroker::start(&[]).await;
    let mut client = broker.client().await;
    let response: ApiVersionsResponse = client
        .call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default())
        .await;
    assert_eq!(response.error_code, 0);
    let produce = response.api_keys.iter().find(|k| k.api_key == 0).unwrap();
    assert_eq!(produce.min_version, 0, "Produce advertises v0 like Kafka");
    assert!(response
        .api_keys
        .iter()
        .all(|k| k.api_key != ApiKey::AddPartitionsToTxn as i16));
    broker.stop().await;
}

#[tokio::test]
async fn api_versions_from_the_future_gets_a_v0_answer() {
    let broker = TestBroker::start(&[]).await;
    let mut client = broker.client().await;
    // ApiVersions v9 with a flexible header and a body we cannot know.
    let mut body = BytesMut::new();
    body.put_i16(ApiKey::ApiVersions as i16);
    body.put_i16(9);
    body.put_i32(77);
    body.put_i16(4);
    body.put_slice(b"test");
    body.put_u8(0); // header tagged fields
    body.put_slice(&[0xff, 0xff, 0xff]);
    client.send_frame(&body).await;
    let mut frame = client.read_frame().await.unwrap();
    assert_eq!(frame.get_i32(), 77, "correlation id, v0 response header");
    let response =
        <ApiVersionsResponse as kafka_protocol::protocol::Decodable>::decode(&mut frame, 0)
            .unwrap();
    assert_eq!(
        response.error_code,
        ResponseError::UnsupportedVersion.code()
    );
    assert!(!response.api_keys.is_empty());
    broker.stop().await;
}

#[tokio::test]
async fn unknown_api_key_closes_the_connection_and_spares_others() {
    let broker = TestBroker::start(&[]).await;
    let mut bad = broker.client().await;
    let mut good = broker.client().await;
    let mut body = BytesMut::new();
    body.put_i16(9999);
    body.put_i16(0);
    body.put_i32(1);
    bad.send_frame(&body).await;
    assert!(bad.is_closed().await);
    let response: ApiVersionsResponse = good
        .call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default())
        .await;
    assert_eq!(response.error_code, 0);
    broker.stop().await;
}

#[tokio::test]
async fn oversize_and_negative_frames_close_the_connection() {
    let broker = TestBroker::start(&[("socket.request.max.bytes", "1024")]).await;
    let mut client = broker.client().await;
    use tokio::io::AsyncWriteExt;
    client
        .stream
        .write_all(&(4096i32).to_be_bytes())
        .await
        .unwrap();
    assert!(client.is_closed().await);
    let mut client = broker.client().await;
    client
        .stream
        .write_all(&(-5i32).to_be_bytes())
        .await
        .unwrap();
    assert!(client.is_closed().await);
    broker.stop().await;
}

#[tokio::test]
async fn produce_then_fetch_returns_the_same_batch_bytes() {
    let broker = TestBroker::start(&[]).await;
    let mut client = broker.client().await;
    let created = create_topic(&mut client, "events", 2).await;
    assert_eq!(
        created.topics[0].error_code, 0,
        "{:?}",
        created.topics[0].error_message
    );
    // Current timestamps: an old one would roll a segment per batch
    // (segment.ms counts from the first batch's timestamp, as in Kafka), and
    // a fetch reads from one segment at a time.
    let now = runnel_model::Timestamp::now().0;
    let batch = BatchBuilder::default()
        .value(now, b"hello")
        .value(now + 1, b"world")
        .build()
        .unwrap();
    for expected_base in [0i64, 2] {
        let response: ProduceResponse = client
            .call(
                ApiKey::Produce,
                9,
                &produce_request("events", 1, batch.clone()),
            )
            .await;
        let p = &response.responses[0].partition_responses[0];
        assert_eq!(p.error_code, 0);
        assert_eq!(p.base_offset, expected_base);
    }
    let fetch = FetchRequest::default()
        .with_max_wait_ms(100)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![fetch_request::FetchTopic::default()
            .with_topic(topic_name("events"))
            .with_partitions(vec![fetch_request::FetchPartition::default()
                .with_partition(1)
                .with_fetch_offset(0)
                .with_partition_max_bytes(1 << 20)])]);
    let response: FetchResponse = client.call(ApiKey::Fetch, 12, &fetch).await;
    let p = &response.responses[0].partitions[0];
    assert_eq!(p.error_code, 0);
    assert_eq!(p.high_watermark, 4);
    let records = p.records.clone().unwrap();
    assert_eq!(records.len(), batch.len() * 2);
    // Offsets and the leader epoch were assigned in place; everything else
    // is what the producer sent.
    assert_eq!(&records[8..12], &batch[8..12]);
    assert_eq!(&records[16..batch.len()], &batch[16..]);
    let epoch = i32::from_be_bytes(records[12..16].try_into().unwrap());
    assert!(epoch >= 0, "the leader stamps its epoch: {epoch}");
    assert_eq!(
        i64::from_be_bytes(records[batch.len()..batch.len() + 8].try_into().unwrap()),
        2
    );
    broker.stop().await;
}

#[tokio::test]
async fn corrupt_batch_is_refused_and_nothing_is_stored() {
    let broker = TestBroker::start(&[]).await;
    let mut client = broker.client().await;
    create_topic(&mut client, "crc", 1).await;
    let mut batch = BatchBuilder::default()
        .value(1, b"payload")
        .build()
        .unwrap();
    let last = batch.len() - 1;
    batch[last] ^= 0xff;
    let response: ProduceResponse = client
        .call(ApiKey::Produce, 9, &produce_request("crc", 0, batch))
        .await;
    let p = &response.responses[0].partition_responses[0];
    assert_eq!(p.error_code, ResponseError::CorruptMessage.code());
    let offsets: ListOffsetsResponse = client
        .call(
            ApiKey::ListOffsets,
            7,
            &ListOffsetsRequest::default().with_topics(vec![
                list_offsets_request::ListOffsetsTopic::default()
                    .with_name(topic_name("crc"))
                    .with_partitions(vec![list_offsets_request::ListOffsetsPartition::default()
                        .with_partition_index(0)
                        .with_timestamp(-1)]),
            ]),
        )
        .await;
    assert_eq!(
        offsets.topics[0].partitions[0].offset, 0,
        "nothing appended"
    );
    broker.stop().await;
}

#[tokio::test]
async fn create_topic_errors_match_kafka() {
    let broker = TestBroker::start(&[]).await;
    let mut client = broker.client().await;
    assert_eq!(
        create_topic(&mut client, "dup", 1).await.topics[0].error_code,
        0
    );
    assert_eq!(
        create_topic(&mut client, "dup", 1).await.topics[0].error_code,
        ResponseError::TopicAlreadyExists.code()
    );
    assert_eq!(
        create_topic(&mut client, "bad name!", 1).await.topics[0].error_code,
        ResponseError::InvalidTopicException.code()
    );
    assert_eq!(
        create_topic(&mut client, "zero", 0).await.topics[0].error_code,
        ResponseError::InvalidPartitions.code()
    );
    broker.stop().await;
}

#[tokio::test]
async fn topics_and_data_survive_a_restart() {
    let broker = TestBroker::start(&[]).await;
    let mut client = broker.client().await;
    create_topic(&mut client, "durable", 3).await;
    let batch = BatchBuilder::default().value(5, b"kept").build().unwrap();
    let response: ProduceResponse = client
        .call(ApiKey::Produce, 9, &produce_request("durable", 2, batch))
        .await;
    assert_eq!(response.responses[0].partition_responses[0].error_code, 0);
    drop(client);
    let dir = broker.stop().await;
    let broker = TestBroker::start_in(dir, &[]).await;
    let mut client = broker.client().await;
    let metadata: MetadataResponse = client
        .call(
            ApiKey::Metadata,
            12,
            &MetadataRequest::default()
                .with_topics(Some(vec![metadata_request::MetadataRequestTopic::default(
                )
                .with_name(Some(topic_name("durable")))])),
        )
        .await;
    assert_eq!(metadata.topics[0].error_code, 0);
    assert_eq!(metadata.topics[0].partitions.len(), 3);
    let offsets: ListOffsetsResponse = client
        .call(
            ApiKey::ListOffsets,
            7,
            &ListOffsetsRequest::default().with_topics(vec![
                list_offsets_request::ListOffsetsTopic::default()
                    .with_name(topic_name("durable"))
                    .with_partitions(vec![list_offsets_request::ListOffsetsPartition::default()
                        .with_partition_index(2)
                        .with_timestamp(-1)]),
            ]),
        )
        .await;
    assert_eq!(offsets.topics[0].partitions[0].offset, 1);
    assert!(
        broker
            .dir
            .path()
            .join("durable-2/partition.metadata")
            .exists(),
        "each partition directory names its topic id"
    );

    // The directory of an earlier topic of the same name (its
    // partition.metadata names another id) is not adopted: it is deleted.
    drop(client);
    let dir = broker.stop().await;
    std::fs::write(
        dir.path().join("durable-2/partition.metadata"),
        "version: 0\ntopic_id: AAAAAAAAAAAAAAAAAAAAAQ\n",
    )
    .unwrap();
    let broker = TestBroker::start_in(dir, &[]).await;
    let mut client = broker.client().await;
    let offsets: ListOffsetsResponse = client
        .call(
            ApiKey::ListOffsets,
            7,
            &ListOffsetsRequest::default().with_topics(vec![
                list_offsets_request::ListOffsetsTopic::default()
                    .with_name(topic_name("durable"))
                    .with_partitions(vec![list_offsets_request::ListOffsetsPartition::default()
                        .with_partition_index(2)
                        .with_timestamp(-1)]),
            ]),
        )
        .await;
    assert_eq!(offsets.topics[0].partitions[0].error_code, 0);
    assert_eq!(
        offsets.topics[0].partitions[0].offset, 0,
        "the stale data is gone"
    );
    broker.stop().await;
}

#[tokio::test]
async fn list_offsets_refuses_a_partition_named_twice() {
    let broker = TestBroker::start(&[]).await;
    let mut client = broker.client().await;
    create_topic(&mut client, "twice", 2).await;
    let partition = |index: i32| {
        list_offsets_request::ListOffsetsPartition::default()
            .with_partition_index(index)
            .with_timestamp(-1)
    };
    let offsets: ListOffsetsResponse = client
        .call(
            ApiKey::ListOffsets,
            7,
            &ListOffsetsRequest::default().with_topics(vec![
                list_offsets_request::ListOffsetsTopic::default()
                    .with_name(topic_name("twice"))
                    .with_partitions(vec![partition(0), partition(0), partition(1)]),
            ]),
        )
        .await;
    let codes: Vec<i16> = offsets.topics[0]
        .partitions
        .iter()
        .map(|p| p.error_code)
        .collect();
    let invalid = ResponseError::InvalidRequest.code();
    assert_eq!(codes, vec![invalid, invalid, 0]);
    broker.stop().await;
}

#[tokio::test]
async fn broker_fetch_max_bytes_caps_the_response() {
    let broker = TestBroker::start(&[("fetch.max.bytes", "1024")]).await;
    let mut client = broker.client().await;
    create_topic(&mut client, "capped", 1).await;
    let now = runnel_model::Timestamp::now().0;
    let batch = BatchBuilder::default()
        .value(now, &[7u8; 600])
        .build()
        .unwrap();
    for _ in 0..4 {
        let response: ProduceResponse = client
            .call(
                ApiKey::Produce,
                9,
                &produce_request("capped", 0, batch.clone()),
            )
            .await;
        assert_eq!(response.responses[0].partition_responses[0].error_code, 0);
    }
    let fetch = FetchRequest::default()
        .with_max_wait_ms(0)
        .with_max_bytes(1 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![fetch_request::FetchTopic::default()
            .with_topic(topic_name("capped"))
            .with_partitions(vec![fetch_request::FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(0)
                .with_partition_max_bytes(1 << 20)])]);
    let response: FetchResponse = client.call(ApiKey::Fetch, 12, &fetch).await;
    let records = response.responses[0].partitions[0].records.clone().unwrap();
    assert_eq!(
        records.len(),
        batch.len(),
        "one ~650-byte batch fits under 1024 bytes, two do not"
    );
    broker.stop().await;
}
