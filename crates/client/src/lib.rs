//! The native async Rust client for Runnel and any other Kafka-compatible broker.
//!
//! - [`Cluster`]: connections, API version negotiation, metadata and coordinators,
//!   shared by everything below.
//! - `Producer`, `Consumer` and `Admin` build on it.
//!
//! ```no_run
//! # async fn example() -> runnel_client::Result<()> {
//! use runnel_client::{Cluster, ClientConfig};
//! let cluster = Cluster::connect(ClientConfig::new("127.0.0.1:9092")).await?;
//! for (id, broker) in &cluster.metadata().brokers {
//!     println!("broker {id} at {}", broker.addr());
//! }
//! # Ok(())
//! # }
//! ```

pub mod admin;
pub mod cluster;
pub mod config;
pub mod connection;
pub mod consumer;
pub mod error;
pub mod producer;
pub mod types;

pub use cluster::{BrokerInfo, Cluster, CoordinatorKind, Metadata, PartitionInfo, TopicInfo};
pub use config::ClientConfig;
pub use connection::Connection;
pub use error::{Error, Result};
pub use kafka_protocol::error::ResponseError;
pub use types::{Header, TopicPartition};
