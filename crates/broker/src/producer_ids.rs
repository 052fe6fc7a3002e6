//! Producer id allocation for InitProducerId.
//!
//! Producer ids are unique across the cluster: the active controller hands
//! each broker blocks of them (Kafka's AllocateProducerIds), recorded in the
//! metadata log, so no id is ever given twice — not after a restart, not by
//! two brokers. A broker takes a new block when its current one runs out.

use kafka_protocol::ResponseError;
use runnel_model::BrokerId;
use runnel_quorum::{ControllerRequest, ControllerResponse};

use crate::broker::{Broker, CONTROLLER_TIMEOUT};

#[derive(Debug, Default)]
pub(crate) struct ProducerIdAllocator {
    block: tokio::sync::Mutex<Block>,
}

#[derive(Debug, Default)]
struct Block {
    next: i64,
    end: i64,
}

impl ProducerIdAllocator {
    /// A producer id no broker of the cluster has returned before. Errors
    /// are Kafka codes the client retries on.
    pub async fn allocate(&self, broker: &Broker) -> Result<i64, ResponseError> {
        let mut block = self.block.lock().await;
        if block.next >= block.end {
            let broker_epoch = broker
                .broker_epoch()
                .ok_or(ResponseError::CoordinatorLoadInProgress)?;
            let request = ControllerRequest::AllocateProducerIds {
                broker_id: BrokerId(broker.node_id),
                broker_epoch,
            };
            match broker.quorum.submit(request, CONTROLLER_TIMEOUT).await {
                Ok((ControllerResponse::ProducerIds { first, count }, _)) if count > 0 => {
                    *block = Block {
                        next: first,
                        end: first.saturating_add(count),
                    };
                }
                other => {
                    tracing::warn!(answer = ?other, "cannot get producer ids from the controller");
                    return Err(ResponseError::CoordinatorLoadInProgress);
                }
            }
        }
        let id = block.next;
        block.next += 1;
        Ok(id)
    }
}
