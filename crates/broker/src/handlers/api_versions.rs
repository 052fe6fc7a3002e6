//! ApiVersions: which APIs and versions this broker serves.

use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse};
use kafka_protocol::protocol::VersionRange;

use crate::broker::Broker;
use crate::connection::RequestContext;

pub(crate) const VERSIONS: VersionRange = VersionRange { min: 0, max: 4 };

pub(crate) fn handle(ctx: &RequestContext, _request: ApiVersionsRequest) -> ApiVersionsResponse {
    response(&ctx.broker, 0)
}

/// The response listing every supported API, with `error_code`.
pub(crate) fn response(_broker: &Broker, error_code: i16) -> ApiVersionsResponse {
    let api_keys = super::SUPPORTED
        .iter()
        .map(|s| {
            ApiVersion::default()
                .with_api_key(s.api_key as i16)
                .with_min_version(s.advertised.min)
                .with_max_version(s.advertised.max)
        })
        .collect();
    ApiVersionsResponse::default()
        .with_error_code(error_code)
        .with_api_keys(api_keys)
}
