//! ListPartitionReassignments (KIP-455): the reassignments in progress,
//! for some partitions or all, as the controller's metadata has them.

use kafka_protocol::messages::list_partition_reassignments_response::{
    OngoingPartitionReassignment, OngoingTopicReassignment,
};
use kafka_protocol::messages::{
    ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse,
};
use kafka_protocol::protocol::VersionRange;
use runnel_model::{PartitionId, TopicName};
use runnel_quorum::{ControllerRequest, ControllerResponse};

use super::{forward, str_bytes};
use crate::connection::RequestContext;

pub(crate) const VERSIONS: VersionRange = VersionRange { min: 0, max: 0 };

fn ids(brokers: &[runnel_model::BrokerId]) -> Vec<kafka_protocol::messages::BrokerId> {
    brokers
        .iter()
        .map(|b| kafka_protocol::messages::BrokerId(b.0))
        .collect()
}

pub(crate) async fn handle(
    ctx: &RequestContext,
    request: ListPartitionReassignmentsRequest,
) -> ListPartitionReassignmentsResponse {
    let partitions = request.topics.map(|topics| {
        topics
            .into_iter()
            .filter_map(|t| {
                let name = TopicName::new(t.name.0.to_string()).ok()?;
                Some(
                    t.partition_indexes
                        .into_iter()
                        .map(move |p| (name.clone(), PartitionId(p))),
                )
            })
            .flatten()
            .collect::<Vec<_>>()
    });
    let outcome = forward::submit(
        &ctx.broker,
        ControllerRequest::ListPartitionReassignments { partitions },
        |r| match r {
            ControllerResponse::ListPartitionReassignments(ongoing) => Ok(ongoing),
            other => Err(other),
        },
    )
    .await;
    let ongoing = match outcome {
        Ok(ongoing) => ongoing,
        Err((code, message)) => {
            return ListPartitionReassignmentsResponse::default()
                .with_error_code(code.code())
                .with_error_message(Some(str_bytes(message)))
        }
    };
    let mut topics: Vec<OngoingTopicReassignment> = Vec::new();
    for (topic, partition, state) in ongoing {
        let entry = OngoingPartitionReassignment::default()
            .with_partition_index(partition.0)
            .with_replicas(ids(&state.replicas))
            .with_adding_replicas(ids(&state.adding_replicas))
            .with_removing_replicas(ids(&state.removing_replicas));
        match topics
            .iter_mut()
            .find(|t| t.name.0.as_str() == topic.as_str())
        {
            Some(t) => t.partitions.push(entry),
            None => topics.push(
                OngoingTopicReassignment::default()
                    .with_name(kafka_protocol::messages::TopicName(str_bytes(
                        topic.to_string(),
                    )))
                    .with_partitions(vec![entry]),
            ),
        }
    }
    ListPartitionReassignmentsResponse::default().with_topics(topics)
}
