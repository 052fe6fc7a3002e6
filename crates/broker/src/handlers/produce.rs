//! Produce: validate each partition's record batch, append it, answer with
//! the assigned offsets.

use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ApiKey, ProduceRequest, ProduceResponse, ResponseKind};
use kafka_protocol::protocol::VersionRange;
use kafka_protocol::ResponseError;
use runnel_model::Timestamp;
use runnel_protocol::batch::{validate_batch, BatchError, BatchHeader, BATCH_HEADER_LEN};
use runnel_storage::{AppendOutcome, LogError};

use super::{encode, str_bytes};
use crate::connection::RequestContext;
use crate::response::Response;

/// v3 is the first version with v2 record batches, the only format Kafka 4
/// accepts; v12+ changes transactional behaviour and v13 addresses topics by
/// id, neither of which Runnel serves yet.
pub(crate) const VERSIONS: VersionRange = VersionRange { min: 3, max: 11 };

pub(crate) async fn handle(ctx: &RequestContext, request: ProduceRequest) -> Response {
    let acks = request.acks;
    let mut responses = Vec::with_capacity(request.topic_data.len());
    let mut any_error = false;
    let mut appended = false;
    for topic_data in request.topic_data {
        let name = topic_data.name.0.to_string();
        let topic = ctx.broker.topics.get(&name);
        let mut partitions = Vec::with_capacity(topic_data.partition_data.len());
        for data in topic_data.partition_data {
            let outcome = if !matches!(acks, -1..=1) {
                Err((ResponseError::InvalidRequiredAcks, None))
            } else {
                match topic.as_ref().and_then(|t| t.partition(data.index)) {
                    None => Err((ResponseError::UnknownTopicOrPartition, None)),
                    Some(partition) => {
                        let records = data.records.as_deref().unwrap_or(&[]);
                        append(ctx, &partition.log, records)
                    }
                }
            };
            let response = PartitionProduceResponse::default().with_index(data.index);
            partitions.push(match outcome {
                Ok(info) => {
                    appended = true;
                    response
                        .with_base_offset(info.base_offset.0)
                        .with_log_append_time_ms(info.log_append_time.0)
                        .with_log_start_offset(info.log_start_offset.0)
                }
                Err((error, message)) => {
                    any_error = true;
                    tracing::debug!(topic = %name, partition = data.index, ?error, ?message, "produce failed");
                    response
                        .with_error_code(error.code())
                        .with_base_offset(-1)
                        .with_log_append_time_ms(-1)
                        .with_log_start_offset(-1)
                        .with_error_message(message.map(str_bytes))
                }
            });
        }
        responses.push(
            TopicProduceResponse::default()
                .with_name(topic_data.name)
                .with_partition_responses(partitions),
        );
    }
    if appended {
        ctx.broker.notify_appended();
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

type Failure = (ResponseError, Option<String>);

fn append(
    ctx: &RequestContext,
    log: &parking_lot::Mutex<runnel_storage::Log>,
    records: &[u8],
) -> Result<runnel_storage::AppendInfo, Failure> {
    if records.len() < BATCH_HEADER_LEN {
        return Err((
            ResponseError::CorruptMessage,
            Some(format!(
                "record set of {} bytes holds no complete batch",
                records.len()
            )),
        ));
    }
    let header = BatchHeader::parse(records).map_err(batch_failure)?;
    let total = header.total_len();
    if total < records.len() {
        return Err((
            ResponseError::InvalidRecord,
            Some("a produce request must hold exactly one record batch per partition".into()),
        ));
    }
    let max_message_bytes = log.lock().config().max_message_bytes as usize;
    validate_batch(records, max_message_bytes).map_err(batch_failure)?;
    if header.is_transactional() || header.is_control() {
        return Err((
            ResponseError::InvalidRecord,
            Some("transactional and control batches are not supported yet".into()),
        ));
    }
    let mut owned = records.to_vec();
    let outcome = log.lock().append(&mut owned, Timestamp::now());
    let _ = ctx;
    match outcome {
        Ok(AppendOutcome::Appended(info)) | Ok(AppendOutcome::Duplicate(info)) => Ok(info),
        Err(e) => Err(log_failure(e)),
    }
}

fn batch_failure(error: BatchError) -> Failure {
    let code = match &error {
        BatchError::TooLarge { .. } => ResponseError::MessageTooLarge,
        BatchError::UnsupportedMagic(_) | BatchError::InvalidRecord(_) => {
            ResponseError::InvalidRecord
        }
        _ => ResponseError::CorruptMessage,
    };
    (code, Some(error.to_string()))
}

/// Maps a storage error to the Kafka error a producer expects.
pub(crate) fn log_failure(error: LogError) -> Failure {
    let code = match &error {
        LogError::OffsetOutOfRange { .. } => ResponseError::OffsetOutOfRange,
        LogError::CorruptRecord(_) => ResponseError::CorruptMessage,
        LogError::RecordTooLarge { .. } => ResponseError::MessageTooLarge,
        LogError::OutOfOrderSequence { .. } => ResponseError::OutOfOrderSequenceNumber,
        LogError::InvalidProducerEpoch => ResponseError::InvalidProducerEpoch,
        _ => ResponseError::KafkaStorageError,
    };
    (code, Some(error.to_string()))
}
