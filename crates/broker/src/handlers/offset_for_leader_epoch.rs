//! OffsetsForLeaderEpoch (KIP-101, KIP-320): where an epoch ends in this
//! leader's log. Followers ask it before fetching from a new leader, to
//! cut a suffix the leader never had; consumers ask it to tell whether the
//! log they read was truncated under them.

use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};
use kafka_protocol::protocol::VersionRange;
use kafka_protocol::ResponseError;
use runnel_model::LeaderEpoch;

use crate::connection::RequestContext;

/// v3 adds the replica id, v4 is flexible; v0–v1 lack the current leader
/// epoch that fencing needs, and Kafka 4 serves v2 and up.
pub(crate) const VERSIONS: VersionRange = VersionRange { min: 2, max: 4 };

pub(crate) fn handle(
    ctx: &RequestContext,
    request: OffsetForLeaderEpochRequest,
) -> OffsetForLeaderEpochResponse {
    let topics = request
        .topics
        .into_iter()
        .map(|t| {
            let topic = ctx.broker.topics.get(t.topic.0.as_str());
            let partitions =
                t.partitions
                    .into_iter()
                    .map(|p| {
                        let answer = EpochEndOffset::default()
                            .with_partition(p.partition)
                            .with_leader_epoch(-1)
                            .with_end_offset(-1);
                        let led = topic.as_ref().map(|t| {
                            t.led(p.partition).and_then(|partition| {
                                partition
                                    .check_leader_epoch(p.current_leader_epoch)
                                    .map(|()| partition)
                            })
                        });
                        match led {
                            None => answer
                                .with_error_code(ResponseError::UnknownTopicOrPartition.code()),
                            Some(Err(error)) => answer.with_error_code(error.code()),
                            Some(Ok(partition)) => {
                                let log = partition.log.lock();
                                match log.end_offset_for_epoch(LeaderEpoch(p.leader_epoch)) {
                                    Some((epoch, end)) => {
                                        answer.with_leader_epoch(epoch.0).with_end_offset(end.0)
                                    }
                                    None => answer,
                                }
                            }
                        }
                    })
                    .collect();
            OffsetForLeaderTopicResult::default()
                .with_topic(t.topic)
                .with_partitions(partitions)
        })
        .collect();
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}
