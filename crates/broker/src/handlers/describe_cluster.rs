//! DescribeCluster (KIP-700), answered from the metadata image.

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};
use kafka_protocol::protocol::VersionRange;
use kafka_protocol::ResponseError;

use super::{authorized_operations, str_bytes, CLUSTER_OPERATIONS};
use crate::connection::RequestContext;

pub(crate) const VERSIONS: VersionRange = VersionRange { min: 0, max: 1 };

/// Endpoint type 1 asks for brokers; 2 (controllers, KIP-919) is not served.
const ENDPOINT_BROKERS: i8 = 1;

pub(crate) fn handle(
    ctx: &RequestContext,
    request: DescribeClusterRequest,
) -> DescribeClusterResponse {
    let broker = &ctx.broker;
    let image = broker.image();
    let response = DescribeClusterResponse::default()
        .with_cluster_id(str_bytes(broker.cluster_id.clone()))
        .with_controller_id(BrokerId(broker.controller_id(&image)))
        .with_endpoint_type(request.endpoint_type)
        .with_cluster_authorized_operations(authorized_operations(
            request.include_cluster_authorized_operations,
            CLUSTER_OPERATIONS,
        ));
    if ctx.api_version >= 1 && request.endpoint_type != ENDPOINT_BROKERS {
        return response
            .with_error_code(ResponseError::UnsupportedEndpointType.code())
            .with_error_message(Some(str_bytes("only broker endpoints are served")));
    }
    let brokers = broker
        .live_brokers(&image)
        .into_iter()
        .map(|b| {
            DescribeClusterBroker::default()
                .with_broker_id(BrokerId(b.id))
                .with_host(str_bytes(b.host))
                .with_port(b.port)
                .with_rack(b.rack.map(str_bytes))
        })
        .collect();
    response.with_brokers(brokers)
}
