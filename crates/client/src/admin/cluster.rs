//! The cluster: DescribeCluster, or Metadata for brokers that lack it.

use kafka_protocol::messages::{ApiKey, DescribeClusterRequest};

use super::Admin;
use crate::cluster::BrokerInfo;
use crate::error::{Error, Result};

/// What [`Admin::describe_cluster`] answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterDescription {
    /// The cluster id, when the broker reports one.
    pub cluster_id: Option<String>,
    /// The active controller's node id (-1 if unknown). Over DescribeCluster a
    /// KRaft cluster names a random broker here, as Kafka does for clients.
    pub controller: i32,
    /// Brokers by node id, with host, port and rack.
    pub brokers: Vec<BrokerInfo>,
}

impl Admin {
    /// Describes the cluster: DescribeCluster when the broker serves it, else Metadata.
    pub async fn describe_cluster(&self) -> Result<ClusterDescription> {
        self.retrying(|| async {
            let connection = self.cluster.any_broker().await?;
            if connection
                .broker_versions(ApiKey::DescribeCluster)
                .is_none()
            {
                self.cluster.refresh_metadata(&[]).await?;
                let metadata = self.cluster.metadata();
                return Ok(ClusterDescription {
                    cluster_id: metadata.cluster_id.clone(),
                    controller: metadata.controller_id,
                    brokers: metadata.brokers.values().cloned().collect(),
                });
            }
            let response = connection.send(&DescribeClusterRequest::default()).await?;
            Error::check(
                response.error_code,
                response.error_message.as_deref(),
                || "DescribeCluster".to_owned(),
            )?;
            let mut brokers: Vec<BrokerInfo> = response
                .brokers
                .iter()
                .map(|b| BrokerInfo {
                    id: b.broker_id.0,
                    host: b.host.to_string(),
                    port: b.port,
                    rack: b.rack.as_ref().map(|r| r.to_string()),
                })
                .collect();
            brokers.sort_by_key(|b| b.id);
            Ok(ClusterDescription {
                cluster_id: Some(response.cluster_id.to_string()).filter(|c| !c.is_empty()),
                controller: response.controller_id.0,
                brokers,
            })
        })
        .await
    }
}
