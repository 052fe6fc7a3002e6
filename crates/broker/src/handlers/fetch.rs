//! Fetch: gather byte ranges of the logs up to the request's limits, wait
//! for `min_bytes` up to `max_wait_ms`, and send the ranges with sendfile.
//!
//! The response is encoded here rather than by `kafka-protocol` because its
//! record sets are not in memory: they are (file, position, length) ranges
//! written to the socket straight from the page cache.

use std::time::{Duration, Instant};

use bytes::{BufMut, BytesMut};
use kafka_protocol::messages::{ApiKey, FetchRequest};
use kafka_protocol::protocol::VersionRange;
use kafka_protocol::ResponseError;
use runnel_model::{BrokerId, Offset};
use runnel_protocol::request::encode_response_header;
use uuid::Uuid;

use crate::connection::RequestContext;
use crate::partition::Partition;
use crate::response::{Chunk, Response};

/// v4 is the oldest Kafka 4 serves; v13 moved to topic ids (served), v17
/// adds replica directory ids for KIP-853 followers (not served).
pub(crate) const VERSIONS: VersionRange = VersionRange { min: 4, max: 16 };

/// Fetch sessions (KIP-227) are not kept: every fetch is a full fetch and
/// the response's session id 0 tells clients so.
const NO_SESSION: i32 = 0;

#[derive(Debug)]
pub(crate) struct PartitionResult {
    pub index: i32,
    pub error_code: i16,
    pub high_watermark: i64,
    pub log_start_offset: i64,
    pub records: Option<Chunk>,
}

#[derive(Debug)]
pub(crate) struct TopicResult {
    pub name: String,
    pub id: Uuid,
    pub partitions: Vec<PartitionResult>,
}

pub(crate) async fn handle(ctx: &RequestContext, request: FetchRequest) -> Response {
    let version = ctx.api_version;
    if version >= 7 && request.session_id != NO_SESSION {
        let chunks = encode_fetch_response(
            version,
            ctx.correlation_id,
            ResponseError::FetchSessionIdNotFound.code(),
            &[],
        );
        return Response::Chunks(chunks);
    }
    let max_wait = Duration::from_millis(request.max_wait_ms.max(0) as u64);
    let deadline = Instant::now() + max_wait;
    let min_bytes = request.min_bytes.max(0) as u64;
    let replica = replica_of(version, &request);
    if let Some(follower) = replica {
        record_follower_progress(ctx, &request, follower);
    }
    let mut appends = ctx.broker.subscribe_appends();
    loop {
        appends.borrow_and_update();
        let (topics, bytes, errors) = read_partitions(ctx, &request, replica);
        let now = Instant::now();
        if bytes >= min_bytes.max(1) || errors || now >= deadline {
            let chunks = encode_fetch_response(version, ctx.correlation_id, 0, &topics);
            return Response::Chunks(chunks);
        }
        drop(topics);
        if tokio::time::timeout(deadline - now, appends.changed())
            .await
            .is_err()
        {
            let (topics, _, _) = read_partitions(ctx, &request, replica);
            return Response::Chunks(encode_fetch_response(
                version,
                ctx.correlation_id,
                0,
                &topics,
            ));
        }
    }
}

/// The broker a fetch comes from, if it is a follower's (`replica_id`,
/// moved into `replica_state` in v15); consumers send -1.
fn replica_of(version: i16, request: &FetchRequest) -> Option<BrokerId> {
    let id = if version >= 15 {
        request.replica_state.replica_id.0
    } else {
        request.replica_id.0
    };
    (id >= 0).then_some(BrokerId(id))
}

/// A follower's fetch reports its log end for every partition it asks
/// for: the leader records it, which may move the high watermark (waking
/// `acks=all` producers and consumers) and let the follower into the ISR.
fn record_follower_progress(ctx: &RequestContext, request: &FetchRequest, follower: BrokerId) {
    let by_id = ctx.api_version >= 13;
    let now = crate::groups::now_ms();
    let mut advanced = false;
    for fetch_topic in &request.topics {
        let topic = if by_id {
            ctx.broker.topics.get_by_id(&fetch_topic.topic_id)
        } else {
            ctx.broker.topics.get(fetch_topic.topic.0.as_str())
        };
        let Some(topic) = topic else { continue };
        for fetch in &fetch_topic.partitions {
            let Ok(partition) = topic.led(fetch.partition) else {
                continue;
            };
            if partition
                .check_leader_epoch(fetch.current_leader_epoch)
                .is_err()
            {
                continue;
            }
            let (moved, change) = partition.on_follower_fetch(now, follower, fetch.fetch_offset);
            advanced |= moved;
            if let Some(change) = change {
                crate::replication::request_isr_change(&ctx.broker, partition, change);
            }
        }
    }
    if advanced {
        ctx.broker.notify_appended();
    }
}

/// Reads every requested partition within the limits; returns the results,
/// the bytes gathered and whether any partition failed. A follower reads
/// up to the log end, a consumer up to the high watermark.
fn read_partitions(
    ctx: &RequestContext,
    request: &FetchRequest,
    replica: Option<BrokerId>,
) -> (Vec<TopicResult>, u64, bool) {
    let broker = &ctx.broker;
    let by_id = ctx.api_version >= 13;
    // The broker's fetch.max.bytes caps whatever the request asks for.
    let broker_max = broker.config.read().fetch_max_bytes().max(0) as u64;
    let mut remaining = (request.max_bytes.max(0) as u64).min(broker_max);
    let mut gathered = 0u64;
    let mut errors = false;
    let mut topics = Vec::with_capacity(request.topics.len());
    for fetch_topic in &request.topics {
        let topic = if by_id {
            broker.topics.get_by_id(&fetch_topic.topic_id)
        } else {
            broker.topics.get(fetch_topic.topic.0.as_str())
        };
        let unknown = if by_id {
            ResponseError::UnknownTopicId
        } else {
            ResponseError::UnknownTopicOrPartition
        };
        let mut partitions = Vec::with_capacity(fetch_topic.partitions.len());
        for fetch in &fetch_topic.partitions {
            let failed = |error: ResponseError| PartitionResult {
                index: fetch.partition,
                error_code: error.code(),
                high_watermark: -1,
                log_start_offset: -1,
                records: None,
            };
            let led = topic.as_ref().map(|t| {
                t.led(fetch.partition)
                    .and_then(|p| p.check_leader_epoch(fetch.current_leader_epoch).map(|()| p))
            });
            let result = match led {
                None => failed(unknown),
                Some(Err(error)) => failed(error),
                Some(Ok(partition)) => {
                    let limit = (fetch.partition_max_bytes.max(0) as u64).min(remaining);
                    read_partition(
                        partition,
                        fetch.partition,
                        fetch.fetch_offset,
                        limit,
                        gathered == 0,
                        replica.is_some(),
                    )
                }
            };
            if result.error_code != 0 {
                errors = true;
            }
            let len = result.records.as_ref().map_or(0, Chunk::len);
            gathered += len;
            remaining = remaining.saturating_sub(len);
            partitions.push(result);
        }
        topics.push(TopicResult {
            name: fetch_topic.topic.0.to_string(),
            id: fetch_topic.topic_id,
            partitions,
        });
    }
    (topics, gathered, errors)
}

fn read_partition(
    partition: &Partition,
    index: i32,
    offset: i64,
    limit: u64,
    min_one_batch: bool,
    follower: bool,
) -> PartitionResult {
    let high_watermark = partition.high_watermark();
    let log = partition.log.lock();
    let log_end_offset = log.log_end_offset().0;
    let log_start_offset = log.log_start_offset().0;
    let upper = if follower {
        log_end_offset
    } else {
        high_watermark.min(log_end_offset)
    };
    let mut result = PartitionResult {
        index,
        error_code: 0,
        high_watermark,
        log_start_offset,
        records: None,
    };
    if offset < log_start_offset || offset > log_end_offset {
        result.error_code = ResponseError::OffsetOutOfRange.code();
        return result;
    }
    if (limit == 0 && !min_one_batch) || offset >= upper {
        return result;
    }
    let max_bytes = u32::try_from(limit).unwrap_or(u32::MAX);
    match log.read_below(Offset(offset), max_bytes, min_one_batch, Offset(upper)) {
        Ok(slice) if slice.len > 0 => result.records = Some(Chunk::File(slice)),
        Ok(_) => {}
        Err(e) => {
            let (error, _) = super::produce::storage_error(e);
            result.error_code = error.code();
        }
    }
    result
}

/// Encodes a Fetch response as chunks: the frame header and fields in
/// memory, each partition's records as its own chunk.
pub(crate) fn encode_fetch_response(
    version: i16,
    correlation_id: i32,
    error_code: i16,
    topics: &[TopicResult],
) -> Vec<Chunk> {
    let flexible = version >= 12;
    let mut body: Vec<Chunk> = Vec::new();
    let mut buf = BytesMut::with_capacity(256);
    buf.put_i32(0); // throttle_time_ms (v1+)
    if version >= 7 {
        buf.put_i16(error_code);
        buf.put_i32(NO_SESSION);
    }
    put_array_len(&mut buf, topics.len(), flexible);
    for topic in topics {
        if version >= 13 {
            buf.put_slice(topic.id.as_bytes());
        } else {
            put_string(&mut buf, &topic.name, flexible);
        }
        put_array_len(&mut buf, topic.partitions.len(), flexible);
        for p in &topic.partitions {
            buf.put_i32(p.index);
            buf.put_i16(p.error_code);
            buf.put_i64(p.high_watermark);
            buf.put_i64(p.high_watermark); // last_stable_offset: no transactions yet
            if version >= 5 {
                buf.put_i64(p.log_start_offset);
            }
            // aborted_transactions: null
            if flexible {
                put_unsigned_varint(&mut buf, 0);
            } else {
                buf.put_i32(-1);
            }
            if version >= 11 {
                buf.put_i32(-1); // preferred_read_replica
            }
            let len = p.records.as_ref().map_or(0, Chunk::len);
            // Empty records are an empty set, never null: librdkafka rejects
            // a null record set.
            if flexible {
                put_unsigned_varint(&mut buf, len + 1);
            } else {
                buf.put_i32(len as i32);
            }
            if let Some(records) = &p.records {
                body.push(Chunk::Bytes(buf.split().freeze()));
                body.push(clone_chunk(records));
            }
            if flexible {
                put_unsigned_varint(&mut buf, 0); // partition tagged fields
            }
        }
        if flexible {
            put_unsigned_varint(&mut buf, 0); // topic tagged fields
        }
    }
    if flexible {
        put_unsigned_varint(&mut buf, 0); // response tagged fields
    }
    body.push(Chunk::Bytes(buf.freeze()));

    let mut head = BytesMut::with_capacity(16);
    head.put_i32(0);
    // The header encoder cannot fail for a valid Fetch version.
    if let Err(e) = encode_response_header(&mut head, ApiKey::Fetch, version, correlation_id) {
        tracing::error!(error = %e, "fetch response header");
    }
    let total: u64 = (head.len() as u64 - 4) + body.iter().map(Chunk::len).sum::<u64>();
    head[..4].copy_from_slice(&(total as i32).to_be_bytes());
    let mut chunks = Vec::with_capacity(body.len() + 1);
    chunks.push(Chunk::Bytes(head.freeze()));
    chunks.extend(body);
    chunks
}

fn clone_chunk(chunk: &Chunk) -> Chunk {
    match chunk {
        Chunk::Bytes(b) => Chunk::Bytes(b.clone()),
        Chunk::File(slice) => Chunk::File(slice.clone()),
    }
}

fn put_unsigned_varint(buf: &mut BytesMut, mut value: u64) {
    while value >= 0x80 {
        buf.put_u8((value as u8) | 0x80);
        value >>= 7;
    }
    buf.put_u8(value as u8);
}

fn put_array_len(buf: &mut BytesMut, len: usize, flexible: bool) {
    if flexible {
        put_unsigned_varint(buf, len as u64 + 1);
    } else {
        buf.put_i32(len as i32);
    }
}

fn put_string(buf: &mut BytesMut, s: &str, flexible: bool) {
    if flexible {
        put_unsigned_varint(buf, s.len() as u64 + 1);
    } else {
        buf.put_i16(s.len() as i16);
    }
    buf.put_slice(s.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::{Buf, Bytes};
    use kafka_protocol::messages::{FetchResponse, ResponseHeader};
    use kafka_protocol::protocol::Decodable;

    fn materialise(chunks: Vec<Chunk>) -> Bytes {
        let mut out = BytesMut::new();
        for chunk in chunks {
            match chunk {
                Chunk::Bytes(b) => out.put_slice(&b),
                Chunk::File(slice) => out.put_slice(&slice.read_to_vec().unwrap()),
            }
        }
        out.freeze()
    }

    fn sample() -> Vec<TopicResult> {
        vec![TopicResult {
            name: "orders".into(),
            id: Uuid::from_u128(7),
            partitions: vec![
                PartitionResult {
                    index: 0,
                    error_code: 0,
                    high_watermark: 10,
                    log_start_offset: 2,
                    records: Some(Chunk::Bytes(Bytes::from_static(b"0123456789"))),
                },
                PartitionResult {
                    index: 1,
                    error_code: ResponseError::OffsetOutOfRange.code(),
                    high_watermark: 5,
                    log_start_offset: 0,
                    records: None,
                },
            ],
        }]
    }

    #[test]
    fn fetch_response_decodes_with_kafka_protocol_at_every_version() {
        for version in VERSIONS.min..=VERSIONS.max {
            let mut frame = materialise(encode_fetch_response(version, 42, 0, &sample()));
            let len = frame.get_i32() as usize;
            assert_eq!(len, frame.len(), "v{version} frame length");
            let header =
                ResponseHeader::decode(&mut frame, ApiKey::Fetch.response_header_version(version))
                    .unwrap();
            assert_eq!(header.correlation_id, 42);
            let response = FetchResponse::decode(&mut frame, version).unwrap();
            assert!(!frame.has_remaining(), "v{version} left bytes over");
            let topic = &response.responses[0];
            if version >= 13 {
                assert_eq!(topic.topic_id, Uuid::from_u128(7));
            } else {
                assert_eq!(topic.topic.0.as_str(), "orders");
            }
            let p0 = &topic.partitions[0];
            assert_eq!(p0.high_watermark, 10);
            assert_eq!(p0.records.as_deref(), Some(&b"0123456789"[..]));
            if version >= 5 {
                assert_eq!(p0.log_start_offset, 2);
            }
            let p1 = &topic.partitions[1];
            assert_eq!(p1.error_code, ResponseError::OffsetOutOfRange.code());
            assert_eq!(p1.records.as_deref(), Some(&b""[..]), "empty, not null");
        }
    }
}
