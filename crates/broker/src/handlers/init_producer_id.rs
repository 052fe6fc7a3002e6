//! InitProducerId for idempotent producers (no transactional id).

use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};
use kafka_protocol::protocol::VersionRange;
use kafka_protocol::ResponseError;

use crate::connection::RequestContext;

/// v5 is what KIP-890-unaware clients send; v6 (KIP-939 two-phase commit)
/// concerns transactions only.
pub(crate) const VERSIONS: VersionRange = VersionRange { min: 0, max: 5 };

pub(crate) async fn handle(
    ctx: &RequestContext,
    request: InitProducerIdRequest,
) -> InitProducerIdResponse {
    let failed = |error: ResponseError| {
        InitProducerIdResponse::default()
            .with_error_code(error.code())
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1)
    };
    if request.transactional_id.is_some() {
        // Transactions need the transaction coordinator, which comes later;
        // refuse clearly rather than hand out an id transactions cannot use.
        return failed(ResponseError::InvalidRequest);
    }
    // Like Apache Kafka, an idempotent producer always gets a fresh id with
    // epoch 0, also when it re-initialises after an error (KIP-360).
    match ctx.broker.producer_ids.allocate(&ctx.broker).await {
        Ok(id) => InitProducerIdResponse::default()
            .with_producer_id(ProducerId(id))
            .with_producer_epoch(0),
        Err(error) => failed(error),
    }
}
