//! ListOffsets: earliest, latest, by timestamp and max timestamp.

use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};
use kafka_protocol::protocol::VersionRange;
use kafka_protocol::ResponseError;
use runnel_model::Timestamp;

use crate::connection::RequestContext;
use crate::partition::Partition;

/// v7 adds MAX_TIMESTAMP (KIP-734), v8 EARLIEST_LOCAL (KIP-405); v9's
/// LATEST_TIERED needs tiered storage, which Runnel does not have.
pub(crate) const VERSIONS: VersionRange = VersionRange { min: 1, max: 8 };

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
const EARLIEST_LOCAL: i64 = -4;

pub(crate) fn handle(ctx: &RequestContext, request: ListOffsetsRequest) -> ListOffsetsResponse {
    let version = ctx.api_version;
    // A follower (replica_id >= 0) sees the whole log, a consumer only
    // what every in-sync replica has.
    let follower = request.replica_id.0 >= 0;
    let topics = request
        .topics
        .into_iter()
        .map(|t| {
            let topic = ctx.broker.topics.get(t.name.0.as_str());
            // Kafka refuses a partition named twice in one request.
            let mut seen = std::collections::HashMap::new();
            for p in &t.partitions {
                *seen.entry(p.partition_index).or_insert(0) += 1;
            }
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| {
                    let response = ListOffsetsPartitionResponse::default()
                        .with_partition_index(p.partition_index);
                    if seen.get(&p.partition_index).copied().unwrap_or(0) > 1 {
                        return response
                            .with_error_code(ResponseError::InvalidRequest.code())
                            .with_offset(-1)
                            .with_timestamp(-1);
                    }
                    let led = topic.as_ref().map(|t| {
                        t.led(p.partition_index).and_then(|partition| {
                            partition
                                .check_leader_epoch(p.current_leader_epoch)
                                .map(|()| partition)
                        })
                    });
                    match led {
                        None => response
                            .with_error_code(ResponseError::UnknownTopicOrPartition.code())
                            .with_offset(-1)
                            .with_timestamp(-1),
                        Some(Err(error)) => response
                            .with_error_code(error.code())
                            .with_offset(-1)
                            .with_timestamp(-1),
                        Some(Ok(partition)) => match lookup(partition, p.timestamp, follower) {
                            Ok((offset, timestamp)) => response
                                .with_offset(offset)
                                .with_timestamp(timestamp)
                                // leader_epoch exists from v4 on.
                                .with_leader_epoch(if version >= 4 {
                                    partition.leader_epoch()
                                } else {
                                    -1
                                }),
                            Err(error) => response
                                .with_error_code(error.code())
                                .with_offset(-1)
                                .with_timestamp(-1),
                        },
                    }
                })
                .collect();
            ListOffsetsTopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    ListOffsetsResponse::default().with_topics(topics)
}

/// Returns `(offset, timestamp)` for a ListOffsets target; -1 for "none".
/// A consumer's answers stay below the high watermark: "latest" is the
/// watermark, and a record above it is not found by time.
fn lookup(partition: &Partition, target: i64, follower: bool) -> Result<(i64, i64), ResponseError> {
    let high_watermark = partition.high_watermark();
    let log = partition.log.lock();
    let visible_end = if follower {
        log.log_end_offset().0
    } else {
        high_watermark.min(log.log_end_offset().0)
    };
    let visible = |(offset, ts): (i64, i64)| {
        if offset >= visible_end {
            (-1, -1)
        } else {
            (offset, ts)
        }
    };
    let storage_error = |e: runnel_storage::LogError| {
        tracing::warn!(partition = %partition.tp, error = %e, "list offsets failed");
        ResponseError::KafkaStorageError
    };
    Ok(match target {
        LATEST => (visible_end, -1),
        EARLIEST | EARLIEST_LOCAL => (log.log_start_offset().0, -1),
        MAX_TIMESTAMP => match log.max_timestamp().map_err(storage_error)? {
            Some((offset, ts)) => visible((offset.0, ts.0)),
            None => (-1, -1),
        },
        ts if ts >= 0 => match log
            .offset_for_timestamp(Timestamp(ts))
            .map_err(storage_error)?
        {
            Some((offset, ts)) => visible((offset.0, ts.0)),
            None => (-1, -1),
        },
        _ => return Err(ResponseError::InvalidRequest),
    })
}
