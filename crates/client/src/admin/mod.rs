//! The admin client: topics, configs, consumer groups, offsets and the cluster,
//! like Java's `Admin`.
//!
//! Every call retries retriable errors (a moved controller or coordinator, a
//! partition leader change, a broken connection) after refreshing metadata and
//! waiting `retry.backoff.ms`, until the admin's timeout (`default.api.timeout.ms`).
//! Calls about several items (topics, groups, partitions) answer per item, as
//! Kafka does: one topic that already exists does not fail the others.
//!
//! ```no_run
//! # async fn example() -> runnel_client::Result<()> {
//! use runnel_client::admin::{Admin, NewTopic};
//! use runnel_client::ClientConfig;
//!
//! let admin = Admin::connect(ClientConfig::new("127.0.0.1:9092")).await?;
//! let results = admin
//!     .create_topics(vec![NewTopic::new("orders", 3).config("retention.ms", "86400000")], false)
//!     .await?;
//! for (topic, result) in results {
//!     match result {
//!         Ok(()) => println!("created {topic}"),
//!         Err(e) => println!("{topic}: {e}"),
//!     }
//! }
//! # Ok(())
//! # }
//! ```

mod cluster;
mod configs;
mod groups;
mod offsets;
mod retry;
mod topics;

use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::TopicName;
use kafka_protocol::protocol::StrBytes;

use crate::cluster::Cluster;
use crate::config::ClientConfig;
use crate::connection::Connection;
use crate::error::Result;

pub use cluster::ClusterDescription;
pub use configs::{AlterConfigOp, ConfigEntry, ConfigResource, ConfigSource};
pub use groups::{GroupDescription, GroupListing, GroupMember, GroupType};
pub use offsets::{ListedOffset, OffsetSpec};
pub use topics::{NewTopic, TopicDescription, TopicListing};

/// An admin client over a shared [`Cluster`].
///
/// Cheap to clone; clones share connections and metadata.
///
/// ```no_run
/// # async fn example() -> runnel_client::Result<()> {
/// use runnel_client::admin::Admin;
/// use runnel_client::ClientConfig;
///
/// let admin = Admin::connect(ClientConfig::new("127.0.0.1:9092")).await?;
/// let cluster = admin.describe_cluster().await?;
/// println!("cluster {:?} has {} brokers", cluster.cluster_id, cluster.brokers.len());
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Admin {
    cluster: Arc<Cluster>,
    timeout: Duration,
}

impl Admin {
    /// Connects to the cluster named by `config`.
    pub async fn connect(config: ClientConfig) -> Result<Admin> {
        Ok(Admin::new(Cluster::connect(config).await?))
    }

    /// An admin client sharing `cluster` with other clients. Its timeout starts as
    /// the cluster's `request.timeout.ms`.
    pub fn new(cluster: Arc<Cluster>) -> Admin {
        let timeout = cluster.config().request_timeout;
        Admin { cluster, timeout }
    }

    /// Sets `default.api.timeout.ms`: how long one call may take, retries included.
    pub fn with_timeout(mut self, timeout: Duration) -> Admin {
        self.timeout = timeout;
        self
    }

    /// The call timeout (`default.api.timeout.ms`).
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The cluster this client talks to.
    pub fn cluster(&self) -> &Arc<Cluster> {
        &self.cluster
    }

    /// The timeout to hand to the broker for operations it waits on (topic creation,
    /// record deletion), in milliseconds.
    fn broker_timeout_ms(&self) -> i32 {
        i32::try_from(self.timeout.as_millis()).unwrap_or(i32::MAX)
    }

    /// The connection to the active controller (where topic and partition changes go;
    /// a KRaft broker forwards them itself), or any broker if the metadata names none.
    async fn controller(&self) -> Result<Arc<Connection>> {
        let id = self.cluster.metadata().controller_id;
        if id >= 0 && self.cluster.metadata().brokers.contains_key(&id) {
            return self.cluster.broker(id).await;
        }
        self.cluster.any_broker().await
    }
}

fn str_bytes(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_owned())
}

fn topic_name(s: &str) -> TopicName {
    TopicName(str_bytes(s))
}
