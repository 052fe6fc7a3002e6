//! Bad and hostile input, spoken as raw bytes to the socket: broken frames,
//! unknown apis and versions, garbage record batches, slow and flooding
//! clients. Each case proves the broker answers with Kafka's error code or
//! closes the connection, logs a warning naming the peer and the reason
//! where the connection is refused, keeps serving other clients, stores
//! nothing it refused, and never panics.

mod common;

use std::time::Duration;

use bytes::{BufMut, BytesMut};
use common::{logs, RawClient, TestBroker};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use runnel_protocol::batch::BatchBuilder;
use tokio::time::Instant;

const TOPIC: &str = "hostile";

fn topic_name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

/// Starts a broker with `extra` settings and a one-partition topic holding
/// one good batch (so that "nothing changed" is visible as offset 1, not 0).
async fn broker_with_topic(extra: &[(&str, &str)]) -> TestBroker {
    logs::capture();
    let broker = TestBroker::start(extra).await;
    let mut client = broker.client().await;
    let created: CreateTopicsResponse = client
        .call(
            ApiKey::CreateTopics,
            7,
            &CreateTopicsRequest::default().with_topics(vec![
                create_topics_request::CreatableTopic::default()
                    .with_name(topic_name(TOPIC))
                    .with_num_partitions(1)
                    .with_replication_factor(1),
            ]),
        )
        .await;
    assert_eq!(created.topics[0].error_code, 0);
    let first = produce(&mut client, good_batch()).await;
    assert_eq!((first.error_code, first.base_offset), (0, 0));
    broker
}

fn good_batch() -> Vec<u8> {
    BatchBuilder::default()
        .value(runnel_model::Timestamp::now().0, b"good")
        .build()
        .unwrap()
}

async fn produce(
    client: &mut RawClient,
    batch: Vec<u8>,
) -> produce_response::PartitionProduceResponse {
    let request = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![produce_request::TopicProduceData::default()
            .with_name(topic_name(TOPIC))
            .with_partition_data(vec![
                produce_request::PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(batch.into())),
            ])]);
    let response: ProduceResponse = client.call(ApiKey::Produce, 9, &request).await;
    response.responses[0].partition_responses[0].clone()
}

async fn latest_offset(client: &mut RawClient) -> i64 {
    let response: ListOffsetsResponse = client
        .call(
            ApiKey::ListOffsets,
            7,
            &ListOffsetsRequest::default().with_topics(vec![
                list_offsets_request::ListOffsetsTopic::default()
                    .with_name(topic_name(TOPIC))
                    .with_partitions(vec![list_offsets_request::ListOffsetsPartition::default()
                        .with_partition_index(0)
                        .with_timestamp(-1)]),
            ]),
        )
        .await;
    let partition = &response.topics[0].partitions[0];
    assert_eq!(partition.error_code, 0);
    partition.offset
}

async fn fetch_all(client: &mut RawClient) -> bytes::Bytes {
    let fetch = FetchRequest::default()
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![fetch_request::FetchTopic::default()
            .with_topic(topic_name(TOPIC))
            .with_partitions(vec![fetch_request::FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(0)
                .with_partition_max_bytes(1 << 20)])]);
    let response: FetchResponse = client.call(ApiKey::Fetch, 12, &fetch).await;
    let partition = &response.responses[0].partitions[0];
    assert_eq!(partition.error_code, 0);
    partition.records.clone().unwrap_or_default()
}

/// The server is alive and serving: a fresh connection gets ApiVersions.
async fn assert_serving(broker: &TestBroker) {
    let mut client = broker.client().await;
    let response: ApiVersionsResponse = client
        .call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default())
        .await;
    assert_eq!(response.error_code, 0);
}

/// Sends `batch` on a connection of its own and checks: the partition's
/// error code is one of `codes`; the log end offset did not move; the
/// hostile connection itself is still served; a well-formed produce on
/// another connection lands right after the good batch; and the log holds
/// exactly the two good batches.
async fn refused_batch(extra: &[(&str, &str)], batch: Vec<u8>, codes: &[ResponseError]) {
    let broker = broker_with_topic(extra).await;
    let mut admin = broker.client().await;
    let before = fetch_all(&mut admin).await;

    let mut hostile = broker.client().await;
    let refused = produce(&mut hostile, batch).await;
    assert!(
        codes.iter().any(|c| c.code() == refused.error_code),
        "expected one of {codes:?}, got error code {} ({:?})",
        refused.error_code,
        refused.error_message
    );
    assert_eq!(refused.base_offset, -1);
    assert_eq!(latest_offset(&mut admin).await, 1, "nothing appended");
    assert_eq!(
        fetch_all(&mut admin).await,
        before,
        "stored bytes unchanged"
    );
    assert_eq!(latest_offset(&mut hostile).await, 1);

    let mut other = broker.client().await;
    let good = good_batch();
    let accepted = produce(&mut other, good.clone()).await;
    assert_eq!((accepted.error_code, accepted.base_offset), (0, 1));
    assert_eq!(latest_offset(&mut admin).await, 2);
    let stored = fetch_all(&mut admin).await;
    assert_eq!(stored.len(), before.len() + good.len());
    assert_eq!(&stored[..before.len()], &before[..]);
    logs::assert_no_panics();
    broker.stop().await;
}

fn be_i32_at(batch: &mut [u8], at: usize, value: i32) {
    batch[at..at + 4].copy_from_slice(&value.to_be_bytes());
}

/// Recomputes the CRC-32C over attributes..end, as a client that builds a
/// lying batch on purpose would.
fn fix_crc(batch: &mut [u8]) {
    let crc = crc32c::crc32c(&batch[21..]);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
}

const BATCH_LENGTH_AT: usize = 8;
const MAGIC_AT: usize = 16;
const LAST_OFFSET_DELTA_AT: usize = 23;
const RECORDS_COUNT_AT: usize = 57;
const FIRST_RECORD_AT: usize = 61;

// ---------------------------------------------------------------------------
// Record batches (Produce v9)
// ---------------------------------------------------------------------------

#[tokio::test]
async fn batch_with_a_bad_crc_is_corrupt_message() {
    let mut batch = good_batch();
    let last = batch.len() - 1;
    batch[last] ^= 0x5a;
    refused_batch(&[], batch, &[ResponseError::CorruptMessage]).await;
}

#[tokio::test]
async fn batch_with_the_wrong_magic_is_invalid_record() {
    // Kafka: produce v3+ "only allowed to contain record batches with magic
    // version 2" -> InvalidRecordException.
    let mut batch = good_batch();
    batch[MAGIC_AT] = 1;
    refused_batch(&[], batch, &[ResponseError::InvalidRecord]).await;
}

#[tokio::test]
async fn batch_length_beyond_the_bytes_sent_is_refused() {
    // Kafka finds no complete batch and answers INVALID_RECORD ("must have
    // at least one record batch"); Runnel names it CORRUPT_MESSAGE. Either
    // refuses it.
    let mut batch = good_batch();
    let length = (batch.len() - 12) as i32;
    be_i32_at(&mut batch, BATCH_LENGTH_AT, length + 10);
    refused_batch(
        &[],
        batch,
        &[ResponseError::CorruptMessage, ResponseError::InvalidRecord],
    )
    .await;
}

#[tokio::test]
async fn batch_length_short_of_the_bytes_sent_is_refused() {
    // Trailing bytes after the declared batch: not exactly one batch.
    let mut batch = good_batch();
    batch.extend_from_slice(&[0xab; 24]);
    refused_batch(
        &[],
        batch,
        &[ResponseError::CorruptMessage, ResponseError::InvalidRecord],
    )
    .await;
}

#[tokio::test]
async fn batch_claiming_more_records_than_it_holds_is_refused() {
    // A consistent header (count 3, last offset delta 2, valid CRC) over a
    // single record: only reading the records finds the lie.
    let mut batch = good_batch();
    be_i32_at(&mut batch, RECORDS_COUNT_AT, 3);
    be_i32_at(&mut batch, LAST_OFFSET_DELTA_AT, 2);
    fix_crc(&mut batch);
    refused_batch(
        &[],
        batch,
        &[ResponseError::CorruptMessage, ResponseError::InvalidRecord],
    )
    .await;
}

#[tokio::test]
async fn batch_with_a_negative_length_is_corrupt_message() {
    // Kafka: a size below the minimum batch overhead is a
    // CorruptRecordException.
    let mut batch = good_batch();
    be_i32_at(&mut batch, BATCH_LENGTH_AT, -1);
    refused_batch(&[], batch, &[ResponseError::CorruptMessage]).await;
}

#[tokio::test]
async fn batch_with_a_negative_record_count_is_refused() {
    let mut batch = good_batch();
    be_i32_at(&mut batch, RECORDS_COUNT_AT, -1);
    be_i32_at(&mut batch, LAST_OFFSET_DELTA_AT, -2);
    fix_crc(&mut batch);
    refused_batch(
        &[],
        batch,
        &[ResponseError::CorruptMessage, ResponseError::InvalidRecord],
    )
    .await;
}

#[tokio::test]
async fn record_with_a_negative_length_is_refused() {
    // The first record's length varint becomes -1 (zigzag 0x01), CRC
    // fixed so that only record parsing can notice.
    let mut batch = good_batch();
    assert!(batch[FIRST_RECORD_AT] > 1, "one-byte record length varint");
    batch[FIRST_RECORD_AT] = 0x01;
    fix_crc(&mut batch);
    refused_batch(
        &[],
        batch,
        &[ResponseError::CorruptMessage, ResponseError::InvalidRecord],
    )
    .await;
}

#[tokio::test]
async fn batch_of_random_bytes_is_refused() {
    let batch: Vec<u8> = (0..200u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    refused_batch(
        &[],
        batch,
        &[ResponseError::CorruptMessage, ResponseError::InvalidRecord],
    )
    .await;
}

#[tokio::test]
async fn batch_over_max_message_bytes_is_message_too_large() {
    let batch = BatchBuilder::default()
        .value(runnel_model::Timestamp::now().0, &[7u8; 2000])
        .build()
        .unwrap();
    refused_batch(
        &[("message.max.bytes", "1024")],
        batch,
        &[ResponseError::MessageTooLarge],
    )
    .await;
}

// ---------------------------------------------------------------------------
// Frames and request headers
// ---------------------------------------------------------------------------

/// Asserts the connection is closed promptly, the close was logged with the
/// peer and `reason`, and the broker still serves others.
async fn closed_and_logged(broker: &TestBroker, client: &mut RawClient, reason: &str) {
    let peer = client.local_addr();
    assert!(
        client.closed_within(Duration::from_secs(5)).await,
        "connection left open"
    );
    logs::expect_warning(peer, reason).await;
    assert_serving(broker).await;
    logs::assert_no_panics();
}

#[tokio::test]
async fn truncated_frame_then_eof_closes_the_connection() {
    let broker = broker_with_topic(&[]).await;
    let mut client = broker.client().await;
    client.send_raw(&100i32.to_be_bytes()).await;
    client.send_raw(&[0u8; 10]).await;
    client.shutdown_write().await;
    closed_and_logged(&broker, &mut client, "truncated frame").await;
    broker.stop().await;
}

#[tokio::test]
async fn truncated_size_prefix_then_eof_closes_the_connection() {
    let broker = broker_with_topic(&[]).await;
    let mut client = broker.client().await;
    client.send_raw(&[0, 0]).await;
    client.shutdown_write().await;
    closed_and_logged(&broker, &mut client, "truncated frame size prefix").await;
    broker.stop().await;
}

#[tokio::test]
async fn oversize_frame_closes_the_connection_before_it_is_read() {
    let broker = broker_with_topic(&[("socket.request.max.bytes", "1024")]).await;
    let mut client = broker.client().await;
    client.send_raw(&1025i32.to_be_bytes()).await;
    closed_and_logged(&broker, &mut client, "socket.request.max.bytes").await;
    // A frame of exactly the bound is still read and answered.
    let mut client = broker.client().await;
    let body = common::encode_request(
        ApiKey::ApiVersions,
        3,
        1,
        &"x".repeat(1024 - 14),
        &ApiVersionsRequest::default(),
    );
    assert_eq!(body.len(), 1024);
    client.send_frame(&body).await;
    assert!(client.read_frame().await.is_some());
    broker.stop().await;
}

#[tokio::test]
async fn negative_frame_length_closes_the_connection() {
    let broker = broker_with_topic(&[]).await;
    let mut client = broker.client().await;
    client.send_raw(&(-7i32).to_be_bytes()).await;
    closed_and_logged(&broker, &mut client, "frame length -7 is invalid").await;
    let mut client = broker.client().await;
    client.send_raw(&i32::MIN.to_be_bytes()).await;
    closed_and_logged(&broker, &mut client, "is invalid").await;
    broker.stop().await;
}

#[tokio::test]
async fn frame_too_short_for_a_request_header_closes_the_connection() {
    let broker = broker_with_topic(&[]).await;
    let mut client = broker.client().await;
    client.send_frame(&[0, 18, 0]).await;
    closed_and_logged(&broker, &mut client, "frame length 3 is invalid").await;
    broker.stop().await;
}

#[tokio::test]
async fn client_id_overrunning_the_frame_closes_the_connection() {
    let broker = broker_with_topic(&[]).await;
    let mut client = broker.client().await;
    let mut body = BytesMut::new();
    body.put_i16(ApiKey::Metadata as i16);
    body.put_i16(4);
    body.put_i32(1);
    body.put_i16(1000); // client id length, but only 3 bytes follow
    body.put_slice(b"abc");
    client.send_frame(&body).await;
    closed_and_logged(&broker, &mut client, "malformed request header").await;
    broker.stop().await;
}

#[tokio::test]
async fn frame_shorter_than_its_request_body_closes_the_connection() {
    // A Metadata request cut short by its own length prefix: the body does
    // not decode, and Metadata has no top-level error code to answer with.
    let broker = broker_with_topic(&[]).await;
    let mut client = broker.client().await;
    let request = MetadataRequest::default().with_topics(Some(vec![
        metadata_request::MetadataRequestTopic::default().with_name(Some(topic_name(TOPIC))),
    ]));
    let body = common::encode_request(ApiKey::Metadata, 12, 1, "runnel-test", &request);
    client.send_frame(&body[..body.len() - 6]).await;
    closed_and_logged(&broker, &mut client, "malformed Metadata v12 request body").await;
    broker.stop().await;
}

#[tokio::test]
async fn huge_array_length_in_a_request_closes_the_connection() {
    // Produce v9 whose topic array claims four billion entries: the decoder
    // must refuse it, not try to allocate it.
    let broker = broker_with_topic(&[]).await;
    let mut client = broker.client().await;
    let mut body = BytesMut::new();
    body.put_i16(ApiKey::Produce as i16);
    body.put_i16(9);
    body.put_i32(1);
    body.put_i16(-1); // null client id
    body.put_u8(0); // header tagged fields
    body.put_u8(0); // null transactional id
    body.put_i16(-1); // acks
    body.put_i32(1000); // timeout
    body.put_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]); // compact array length
    client.send_frame(&body).await;
    closed_and_logged(&broker, &mut client, "malformed Produce v9 request body").await;
    let mut admin = broker.client().await;
    assert_eq!(latest_offset(&mut admin).await, 1);
    broker.stop().await;
}

#[tokio::test]
async fn unknown_api_keys_close_the_connection() {
    let broker = broker_with_topic(&[]).await;
    for api_key in [9999i16, -1, i16::MAX, ApiKey::AddPartitionsToTxn as i16] {
        let mut client = broker.client().await;
        let mut body = BytesMut::new();
        body.put_i16(api_key);
        body.put_i16(0);
        body.put_i32(1);
        body.put_i16(-1);
        client.send_frame(&body).await;
        closed_and_logged(&broker, &mut client, &format!("unknown api key {api_key}")).await;
    }
    broker.stop().await;
}

#[tokio::test]
async fn versions_out_of_range_are_refused() {
    let broker = broker_with_topic(&[]).await;
    // Metadata and Produce responses carry no top-level error code: Kafka
    // closes the connection. Produce v2 is advertised (as Kafka does, for
    // librdkafka) but not served.
    for (api_key, version) in [
        (ApiKey::Metadata, 13),
        (ApiKey::Metadata, -1),
        (ApiKey::Metadata, i16::MAX),
        (ApiKey::Produce, 2),
        (ApiKey::Produce, i16::MIN),
    ] {
        let mut client = broker.client().await;
        let mut body = BytesMut::new();
        body.put_i16(api_key as i16);
        body.put_i16(version);
        body.put_i32(1);
        body.put_i16(-1);
        body.put_slice(&[0; 16]);
        client.send_frame(&body).await;
        closed_and_logged(&broker, &mut client, "not supported").await;
    }
    // Fetch has a top-level error code: UNSUPPORTED_VERSION where the
    // version's response can carry it, a closed connection otherwise.
    for version in [3i16, 17, 300] {
        let mut client = broker.client().await;
        let mut body = BytesMut::new();
        body.put_i16(ApiKey::Fetch as i16);
        body.put_i16(version);
        body.put_i32(1);
        body.put_i16(-1);
        body.put_slice(&[0; 16]);
        client.send_frame(&body).await;
        match client.read_frame().await {
            None => {}
            Some(mut frame) => {
                use kafka_protocol::protocol::Decodable;
                let header_version = ApiKey::Fetch.response_header_version(version);
                ResponseHeader::decode(&mut frame, header_version).unwrap();
                let response = FetchResponse::decode(&mut frame, version).unwrap();
                assert_eq!(
                    response.error_code,
                    ResponseError::UnsupportedVersion.code(),
                    "Fetch v{version}"
                );
            }
        }
        assert_serving(&broker).await;
    }
    logs::assert_no_panics();
    broker.stop().await;
}

// ---------------------------------------------------------------------------
// Slow clients
// ---------------------------------------------------------------------------

#[tokio::test]
async fn slow_loris_frame_is_cut_off_after_the_read_timeout() {
    let broker = broker_with_topic(&[("socket.request.read.timeout.ms", "300")]).await;
    let mut client = broker.client().await;
    let peer = client.local_addr();
    let started = Instant::now();
    client.send_raw(&100i32.to_be_bytes()).await;
    client.send_raw(&[0; 10]).await;
    // One byte every 50 ms: steady activity, never a whole frame.
    let mut closed = false;
    while started.elapsed() < Duration::from_secs(5) {
        client.send_raw(&[0]).await;
        if client.closed_within(Duration::from_millis(50)).await {
            closed = true;
            break;
        }
    }
    assert!(closed, "a trickling client held its connection");
    assert!(started.elapsed() >= Duration::from_millis(250));
    logs::expect_warning(peer, "socket.request.read.timeout.ms").await;
    assert_serving(&broker).await;
    logs::assert_no_panics();
    broker.stop().await;
}

#[tokio::test]
async fn partial_size_prefix_then_silence_is_cut_off() {
    let broker = broker_with_topic(&[("socket.request.read.timeout.ms", "300")]).await;
    let mut client = broker.client().await;
    client.send_raw(&[0, 0]).await;
    closed_and_logged(&broker, &mut client, "frame size prefix not received").await;
    broker.stop().await;
}

#[tokio::test]
async fn frame_arriving_in_pieces_within_the_read_timeout_is_served() {
    let broker = broker_with_topic(&[("socket.request.read.timeout.ms", "3000")]).await;
    let mut client = broker.client().await;
    let body = common::encode_request(
        ApiKey::ApiVersions,
        3,
        1,
        "runnel-test",
        &ApiVersionsRequest::default(),
    );
    let mut frame = (body.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&body);
    for piece in frame.chunks(frame.len() / 3 + 1) {
        client.send_raw(piece).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(client.read_frame().await.is_some());
    broker.stop().await;
}

#[tokio::test]
async fn idle_connection_is_closed_after_connections_max_idle_ms() {
    let broker = broker_with_topic(&[("connections.max.idle.ms", "300")]).await;
    let mut client = broker.client().await;
    let _: ApiVersionsResponse = client
        .call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default())
        .await;
    closed_and_logged(&broker, &mut client, "connections.max.idle.ms").await;
    broker.stop().await;
}

#[tokio::test]
async fn client_that_stops_reading_responses_is_disconnected() {
    // ~24 MiB of fetch response, more than loopback socket buffers hold,
    // to a client that never reads: the write cannot finish.
    let broker = broker_with_topic(&[("connections.max.idle.ms", "1000")]).await;
    let mut producer = broker.client().await;
    let value = vec![3u8; 1_000_000];
    for _ in 0..24 {
        let batch = BatchBuilder::default()
            .value(runnel_model::Timestamp::now().0, &value)
            .build()
            .unwrap();
        assert_eq!(produce(&mut producer, batch).await.error_code, 0);
    }
    let mut reader = broker.client().await;
    let peer = reader.local_addr();
    let fetch = FetchRequest::default()
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(64 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![fetch_request::FetchTopic::default()
            .with_topic(topic_name(TOPIC))
            .with_partitions(vec![fetch_request::FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(0)
                .with_partition_max_bytes(64 << 20)])]);
    let body = common::encode_request(ApiKey::Fetch, 12, 1, "runnel-test", &fetch);
    reader.send_frame(&body).await;
    logs::expect_warning(peer, "response not read by the client").await;
    assert_serving(&broker).await;
    logs::assert_no_panics();
    drop(reader);
    broker.stop().await;
}

// ---------------------------------------------------------------------------
// Connection floods and memory
// ---------------------------------------------------------------------------

async fn served_client(broker: &TestBroker) -> RawClient {
    let mut client = broker.client().await;
    let response: ApiVersionsResponse = client
        .call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default())
        .await;
    assert_eq!(response.error_code, 0);
    client
}

/// Connects until the broker serves a connection again (slots free up when
/// the broker notices a close), within 5 s.
async fn eventually_served(broker: &TestBroker) -> RawClient {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut client = broker.client().await;
        let answered: Option<ApiVersionsResponse> = client
            .try_call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default())
            .await;
        if answered.is_some() {
            return client;
        }
        assert!(Instant::now() < deadline, "no slot freed up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn connections_beyond_max_connections_are_closed() {
    let broker = broker_with_topic(&[("max.connections", "3")]).await;
    let mut open = Vec::new();
    for _ in 0..3 {
        open.push(served_client(&broker).await);
    }
    for _ in 0..10 {
        let mut excess = broker.client().await;
        let peer = excess.local_addr();
        assert!(excess.closed_within(Duration::from_secs(2)).await);
        logs::expect_warning(peer, "max.connections = 3").await;
    }
    for client in &mut open {
        let _: ApiVersionsResponse = client
            .call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default())
            .await;
    }
    open.pop();
    open.push(eventually_served(&broker).await);
    let mut excess = broker.client().await;
    assert!(excess.closed_within(Duration::from_secs(2)).await);
    logs::assert_no_panics();
    drop(open);
    broker.stop().await;
}

#[tokio::test]
async fn connections_beyond_max_connections_per_ip_are_closed() {
    let broker = broker_with_topic(&[("max.connections.per.ip", "2")]).await;
    let mut open = vec![served_client(&broker).await, served_client(&broker).await];
    let mut excess = broker.client().await;
    let peer = excess.local_addr();
    assert!(excess.closed_within(Duration::from_secs(2)).await);
    logs::expect_warning(peer, "max.connections.per.ip = 2").await;
    open.pop();
    open.push(eventually_served(&broker).await);
    drop(open);
    broker.stop().await;

    let broker = broker_with_topic(&[
        ("max.connections.per.ip", "1"),
        ("max.connections.per.ip.overrides", "127.0.0.1:3"),
    ])
    .await;
    let open = vec![
        served_client(&broker).await,
        served_client(&broker).await,
        served_client(&broker).await,
    ];
    let mut excess = broker.client().await;
    let peer = excess.local_addr();
    assert!(excess.closed_within(Duration::from_secs(2)).await);
    logs::expect_warning(peer, "max.connections.per.ip = 3").await;
    logs::assert_no_panics();
    drop(open);
    broker.stop().await;
}

#[tokio::test]
async fn queued_max_request_bytes_bounds_frames_in_flight() {
    let broker = broker_with_topic(&[("queued.max.request.bytes", "4096")]).await;
    // A holds 3000 of the 4096 bytes with a frame it never finishes.
    let mut hog = broker.client().await;
    hog.send_raw(&3000i32.to_be_bytes()).await;
    hog.send_raw(&[0; 10]).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    // A small request still fits.
    assert_serving(&broker).await;
    // A 2000-byte request does not: it waits, unanswered, until A goes.
    let mut waiting = broker.client().await;
    let body = common::encode_request(
        ApiKey::ApiVersions,
        3,
        7,
        &"w".repeat(2000 - 14),
        &ApiVersionsRequest::default(),
    );
    assert_eq!(body.len(), 2000);
    waiting.send_frame(&body).await;
    let early = tokio::time::timeout(Duration::from_millis(500), waiting.read_frame()).await;
    assert!(early.is_err(), "answered while the memory was taken");
    drop(hog);
    let answer = tokio::time::timeout(Duration::from_secs(5), waiting.read_frame())
        .await
        .expect("answered once the memory was freed");
    assert!(answer.is_some());
    logs::assert_no_panics();
    broker.stop().await;
}

#[tokio::test]
async fn frame_larger_than_the_request_memory_pool_is_still_served() {
    // queued.max.request.bytes below socket.request.max.bytes: a frame
    // larger than the pool takes all of it rather than waiting forever.
    let broker = broker_with_topic(&[("queued.max.request.bytes", "1000")]).await;
    let mut client = broker.client().await;
    let body = common::encode_request(
        ApiKey::ApiVersions,
        3,
        1,
        &"x".repeat(3000),
        &ApiVersionsRequest::default(),
    );
    client.send_frame(&body).await;
    assert!(client.read_frame().await.is_some());
    assert_serving(&broker).await;
    broker.stop().await;
}
