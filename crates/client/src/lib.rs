//! The native async Rust client for Runnel and any other Kafka-compatible broker.
//!
//! - [`Producer`]: per-partition batching (`linger.ms`, `batch.size`), the Java
//!   client's murmur2 partitioner for keyed records and sticky partitioning for the
//!   rest, every compression codec, idempotence on by default, delivery futures,
//!   `buffer.memory` backpressure.
//! - [`Consumer`]: a consumer group over the classic protocol (range, roundrobin,
//!   cooperative-sticky) or KIP-848, or manual assignment; records as a `Stream`;
//!   auto and manual commits; seek, pause and resume; rebalance listeners.
//! - [`Admin`]: topics, partitions, configs, groups and their offsets, offsets by
//!   time, record deletion, the cluster.
//! - [`Cluster`]: connections, API version negotiation, metadata and coordinators,
//!   shared by all of the above. Errors are typed ([`Error`]); retriable ones are
//!   retried after a metadata refresh.
//!
//! Settings use the Java client's names and defaults.
//!
//! ```no_run
//! # async fn example() -> runnel_client::Result<()> {
//! use runnel_client::{
//!     ClientConfig, Consumer, ConsumerConfig, OffsetReset, Producer, ProducerConfig,
//!     ProducerRecord,
//! };
//!
//! let producer = Producer::new(ProducerConfig::new(ClientConfig::new("127.0.0.1:9092"))).await?;
//! let delivered = producer
//!     .send(ProducerRecord::new("orders").key("customer-7").value("42 widgets"))
//!     .await?
//!     .await?;
//! println!("stored at {}-{}@{}", delivered.topic, delivered.partition, delivered.offset);
//!
//! let consumer = Consumer::new(
//!     ConsumerConfig::new("127.0.0.1:9092")
//!         .group_id("billing")
//!         .auto_offset_reset(OffsetReset::Earliest),
//! )
//! .await?;
//! consumer.subscribe(&["orders"]).await?;
//! let record = consumer.recv().await?;
//! println!("{:?} => {:?}", record.key, record.value);
//! consumer.close().await?;
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

pub use admin::Admin;
pub use cluster::{BrokerInfo, Cluster, CoordinatorKind, Metadata, PartitionInfo, TopicInfo};
pub use config::ClientConfig;
pub use connection::Connection;
pub use consumer::{Consumer, ConsumerConfig, ConsumerRecord, OffsetReset};
pub use error::{Error, Result};
pub use kafka_protocol::error::ResponseError;
pub use producer::{Acks, Compression, Producer, ProducerConfig, ProducerRecord, RecordMetadata};
pub use types::{Header, TopicPartition};
