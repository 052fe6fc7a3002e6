//! Produce: validate each partition's record batch as Kafka does, append
//! it, make it durable when the topic asks for it, answer with the assigned
//! offsets.

use std::time::Duration;

use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{ApiKey, ProduceRequest, ProduceResponse, ResponseKind};
use kafka_protocol::protocol::VersionRange;
use kafka_protocol::ResponseError;
use runnel_model::config::{TimestampType, TopicSettings};
use runnel_model::{LeaderEpoch, Timestamp};
use runnel_protocol::batch::{
    decode_records, record_infos, validate_batch, BatchError, BatchHeader, BATCH_HEADER_LEN,
    MIN_BATCH_LENGTH,
};
use runnel_storage::{AppendInfo, AppendOutcome, LogError};

use super::{encode, str_bytes};
use crate::broker::Broker;
use crate::connection::RequestContext;
use crate::partition::{Partition, ReplicationWait};
use crate::response::Response;

/// v3 is the first version with v2 record batches, the only format Kafka 4
/// accepts; v12+ changes transactional behaviour and v13 addresses topics by
/// id, neither of which Runnel serves yet.
pub(crate) const VERSIONS: VersionRange = VersionRange { min: 3, max: 11 };

/// Bound on the decompressed size of one produced batch while its records
/// are walked for validation.
const MAX_UNCOMPRESSED_BATCH_BYTES: usize = 256 * 1024 * 1024;

/// Why a partition's produce failed: the error, its message, and the
/// records it names (Produce v8+ `record_errors`).
struct Failure {
    error: ResponseError,
    message: Option<String>,
    record_errors: Vec<(i32, String)>,
}

impl Failure {
    fn new(error: ResponseError, message: impl Into<String>) -> Failure {
        Failure {
            error,
            message: Some(message.into()),
            record_errors: Vec::new(),
        }
    }
}

pub(crate) async fn handle(ctx: &RequestContext, request: ProduceRequest) -> Response {
    let acks = request.acks;
    let timeout = std::time::Duration::from_millis(u64::try_from(request.timeout_ms).unwrap_or(0));
    let mut responses = Vec::with_capacity(request.topic_data.len());
    let mut any_error = false;
    for topic_data in request.topic_data {
        let name = topic_data.name.0.to_string();
        let topic = ctx.broker.topics.get(&name);
        let settings = topic
            .as_ref()
            .map(|t| ctx.broker.topic_settings(&t.configs));
        let mut partitions = Vec::with_capacity(topic_data.partition_data.len());
        for data in topic_data.partition_data {
            let target = topic.as_ref().map(|t| t.led(data.index));
            let outcome = match (target, &settings) {
                _ if !matches!(acks, -1..=1) => Err(Failure::new(
                    ResponseError::InvalidRequiredAcks,
                    format!("acks must be -1, 0 or 1, not {acks}"),
                )),
                (Some(Ok(partition)), Some(settings)) => {
                    let records = data.records.as_deref().unwrap_or(&[]);
                    produce_to(&ctx.broker, partition, settings, acks, records, timeout).await
                }
                (Some(Err(error)), _) => Err(Failure::new(
                    error,
                    format!("this node does not lead {name}-{}", data.index),
                )),
                _ => Err(Failure::new(
                    ResponseError::UnknownTopicOrPartition,
                    format!("{name}-{} does not exist", data.index),
                )),
            };
            let response = PartitionProduceResponse::default().with_index(data.index);
            partitions.push(match outcome {
                Ok(info) => {
                    response
                        .with_base_offset(info.base_offset.0)
                        .with_log_append_time_ms(info.log_append_time.0)
                        .with_log_start_offset(info.log_start_offset.0)
                }
                Err(failure) => {
                    any_error = true;
                    tracing::debug!(topic = %name, partition = data.index, error = ?failure.error, message = ?failure.message, "produce failed");
                    response
                        .with_error_code(failure.error.code())
                        .with_base_offset(-1)
                        .with_log_append_time_ms(-1)
                        .with_log_start_offset(-1)
                        .with_error_message(failure.message.map(str_bytes))
                        .with_record_errors(
                            failure
                                .record_errors
                                .into_iter()
                                .map(|(index, message)| {
                                    BatchIndexAndErrorMessage::default()
                                        .with_batch_index(index)
                                        .with_batch_index_error_message(Some(str_bytes(message)))
                                })
                                .collect(),
                        )
                }
            });
        }
        responses.push(
            TopicProduceResponse::default()
                .with_name(topic_data.name)
                .with_partition_responses(partitions),
        );
    }
    if acks == 0 {
        // The client reads no response; Kafka closes the connection so that
        // it notices a failed produce at all.
        return if any_error {
            Response::Close("acks=0 produce failed".to_string())
        } else {
            Response::Nothing
        };
    }
    encode(
        ctx,
        ApiKey::Produce,
        &ResponseKind::Produce(ProduceResponse::default().with_responses(responses)),
    )
}

/// Validates, appends and (when `flush.messages` is reached) fsyncs one
/// partition's batch; with `acks=all`, waits until every in-sync replica
/// has it.
async fn produce_to(
    broker: &Broker,
    partition: &Partition,
    settings: &TopicSettings,
    acks: i16,
    records: &[u8],
    timeout: Duration,
) -> Result<AppendInfo, Failure> {
    let min_insync = usize::try_from(settings.min_insync_replicas).unwrap_or(1);
    let in_sync = partition.in_sync_replicas();
    if acks == -1 && in_sync < min_insync {
        return Err(Failure::new(
            ResponseError::NotEnoughReplicas,
            format!(
                "The size of the current ISR ({in_sync}) is insufficient to satisfy the \
                 min.isr requirement of {min_insync} for partition {}",
                partition.tp
            ),
        ));
    }
    validate(settings, records)?;
    let epoch = LeaderEpoch(partition.leader_epoch());
    let mut owned = records.to_vec();
    let info = match partition.append_as_leader(&mut owned, Timestamp::now()) {
        Ok(AppendOutcome::Appended(info)) => info,
        // A retried batch already in the log: answer with its offsets once
        // it is as replicated as the original had to be.
        Ok(AppendOutcome::Duplicate(info)) => info,
        Err(e) => return Err(log_failure(e)),
    };
    // Followers long-polling for this partition fetch the batch now, not
    // when this request is answered: acks=all waits for them.
    broker.notify_appended();
    if partition.flush_due() {
        partition
            .sync_through(info.last_offset)
            .await
            .map_err(|reason| Failure::new(ResponseError::KafkaStorageError, reason))?;
    }
    if acks == -1 {
        match partition
            .wait_replicated(info.last_offset, epoch, timeout)
            .await
        {
            Ok(()) => {}
            Err(ReplicationWait::TimedOut) => {
                return Err(Failure::new(
                    ResponseError::RequestTimedOut,
                    format!(
                        "the in-sync replicas of {} did not reach offset {} within {} ms",
                        partition.tp,
                        info.last_offset,
                        timeout.as_millis()
                    ),
                ))
            }
            Err(ReplicationWait::NotLeader) => {
                return Err(Failure::new(
                    ResponseError::NotLeaderOrFollower,
                    format!(
                        "leadership of {} moved before the write was replicated",
                        partition.tp
                    ),
                ))
            }
        }
        let in_sync = partition.in_sync_replicas();
        if in_sync < min_insync {
            return Err(Failure::new(
                ResponseError::NotEnoughReplicasAfterAppend,
                format!(
                    "The size of the current ISR ({in_sync}) is insufficient to satisfy the \
                     min.isr requirement of {min_insync} for partition {}",
                    partition.tp
                ),
            ));
        }
    }
    Ok(info)
}

/// What Kafka checks before it appends a produced batch: exactly one v2
/// batch, intact (lengths, CRC), within `max.message.bytes`, whose records
/// (decompressed if need be) fill it, match its count and carry timestamps
/// within the topic's bounds.
fn validate(settings: &TopicSettings, records: &[u8]) -> Result<(), Failure> {
    if records.len() < BATCH_HEADER_LEN {
        return Err(Failure::new(
            ResponseError::CorruptMessage,
            format!(
                "record set of {} bytes holds no complete batch",
                records.len()
            ),
        ));
    }
    let header = BatchHeader::parse(records).map_err(batch_failure)?;
    if header.batch_length < MIN_BATCH_LENGTH {
        return Err(Failure::new(
            ResponseError::CorruptMessage,
            format!("batch length {} is below the minimum", header.batch_length),
        ));
    }
    if header.total_len() < records.len() {
        return Err(Failure::new(
            ResponseError::InvalidRecord,
            "a produce request must hold exactly one record batch per partition",
        ));
    }
    let max_message_bytes = usize::try_from(settings.max_message_bytes).unwrap_or(0);
    validate_batch(records, max_message_bytes).map_err(batch_failure)?;
    if header.is_transactional() || header.is_control() {
        return Err(Failure::new(
            ResponseError::InvalidRecord,
            "transactional and control batches are not supported yet",
        ));
    }
    let infos = record_infos(records, MAX_UNCOMPRESSED_BATCH_BYTES).map_err(batch_failure)?;
    if settings.cleanup_policy.compact {
        // The cleaner keeps one record per key; Kafka refuses keyless ones.
        let decoded =
            decode_records(records, MAX_UNCOMPRESSED_BATCH_BYTES).map_err(batch_failure)?;
        let record_errors: Vec<(i32, String)> = decoded
            .iter()
            .enumerate()
            .filter(|(_, r)| r.key.is_none())
            .map(|(i, _)| {
                (
                    i as i32,
                    "Compacted topic cannot accept message without key".to_string(),
                )
            })
            .collect();
        if !record_errors.is_empty() {
            return Err(Failure {
                error: ResponseError::InvalidRecord,
                message: Some("One or more records have been rejected".into()),
                record_errors,
            });
        }
    }
    if settings.message_timestamp_type == TimestampType::CreateTime {
        let now = Timestamp::now().0;
        let earliest = now.saturating_sub(settings.message_timestamp_before_max_ms);
        let latest = now.saturating_add(settings.message_timestamp_after_max_ms);
        let record_errors: Vec<(i32, String)> = infos
            .iter()
            .enumerate()
            .filter(|(_, r)| r.timestamp < earliest || r.timestamp > latest)
            .map(|(i, r)| {
                (
                    i as i32,
                    format!(
                        "Timestamp {} of message with offset {i} is out of range. The timestamp should be within [{earliest}, {latest}]",
                        r.timestamp
                    ),
                )
            })
            .collect();
        if !record_errors.is_empty() {
            return Err(Failure {
                error: ResponseError::InvalidTimestamp,
                message: Some(
                    "One or more records have been rejected due to invalid timestamp".into(),
                ),
                record_errors,
            });
        }
    }
    Ok(())
}

fn batch_failure(error: BatchError) -> Failure {
    let code = match &error {
        BatchError::TooLarge { .. } => ResponseError::MessageTooLarge,
        // Produce v3+ accepts magic 2 only; Kafka answers INVALID_RECORD.
        BatchError::UnsupportedMagic(_) | BatchError::InvalidRecord(_) => {
            ResponseError::InvalidRecord
        }
        _ => ResponseError::try_from_code(error.error_code())
            .unwrap_or(ResponseError::CorruptMessage),
    };
    Failure::new(code, error.to_string())
}

fn log_failure(error: LogError) -> Failure {
    let (code, message) = storage_error(error);
    Failure::new(code, message)
}

/// Maps a storage error to the Kafka error a client expects.
pub(crate) fn storage_error(error: LogError) -> (ResponseError, String) {
    let code = match &error {
        LogError::OffsetOutOfRange { .. } => ResponseError::OffsetOutOfRange,
        LogError::CorruptRecord(_) => ResponseError::CorruptMessage,
        LogError::RecordTooLarge { .. } => ResponseError::MessageTooLarge,
        LogError::OutOfOrderSequence { .. } => ResponseError::OutOfOrderSequenceNumber,
        LogError::InvalidProducerEpoch => ResponseError::InvalidProducerEpoch,
        _ => ResponseError::KafkaStorageError,
    };
    (code, error.to_string())
}
