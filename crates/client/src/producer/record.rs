//! What is sent (`ProducerRecord`), what comes back (`RecordMetadata`) and the
//! future that carries it (`DeliveryFuture`).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::sync::oneshot;

use crate::error::{Error, Result};
use crate::types::Header;

/// A record to send.
///
/// ```
/// use runnel_client::producer::ProducerRecord;
/// let record = ProducerRecord::new("orders")
///     .key("customer-7")
///     .value("{\"total\": 12}")
///     .header("source", "web");
/// assert_eq!(record.partition, None);
/// assert_eq!(record.headers.len(), 1);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerRecord {
    /// Topic name.
    pub topic: String,
    /// Partition; `None` lets the partitioner choose (murmur2 of the key, or sticky).
    pub partition: Option<i32>,
    /// Key; `None` is a null key.
    pub key: Option<Bytes>,
    /// Value; `None` is a tombstone.
    pub value: Option<Bytes>,
    /// Headers in order.
    pub headers: Vec<Header>,
    /// Creation timestamp in ms since the epoch; `None` is "now" at `send`.
    pub timestamp: Option<i64>,
}

impl ProducerRecord {
    /// A record for `topic` with no key, value or headers yet.
    pub fn new(topic: impl Into<String>) -> ProducerRecord {
        ProducerRecord {
            topic: topic.into(),
            partition: None,
            key: None,
            value: None,
            headers: Vec::new(),
            timestamp: None,
        }
    }

    /// Sets the partition.
    pub fn partition(mut self, partition: i32) -> Self {
        self.partition = Some(partition);
        self
    }

    /// Sets the key.
    pub fn key(mut self, key: impl Into<Bytes>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Sets the value.
    pub fn value(mut self, value: impl Into<Bytes>) -> Self {
        self.value = Some(value.into());
        self
    }

    /// Adds a header.
    pub fn header(mut self, key: impl Into<String>, value: impl Into<Bytes>) -> Self {
        self.headers.push(Header {
            key: key.into(),
            value: Some(value.into()),
        });
        self
    }

    /// Sets the creation timestamp (ms since the epoch).
    pub fn timestamp(mut self, timestamp_ms: i64) -> Self {
        self.timestamp = Some(timestamp_ms);
        self
    }

    /// Bytes this record takes in a v2 batch, at most (varints counted at their widest).
    pub(crate) fn estimated_size(&self) -> usize {
        const RECORD_OVERHEAD: usize = 1 + 10 + 5 + 5 + 5 + 5 + 5;
        let field = |b: &Option<Bytes>| b.as_ref().map_or(0, Bytes::len);
        let headers: usize = self
            .headers
            .iter()
            .map(|h| 10 + h.key.len() + field(&h.value))
            .sum();
        RECORD_OVERHEAD + field(&self.key) + field(&self.value) + headers
    }
}

/// Where a record was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordMetadata {
    /// Topic name.
    pub topic: String,
    /// Partition index.
    pub partition: i32,
    /// Offset; -1 when unknown (`acks=0`).
    pub offset: i64,
    /// The broker's log-append time if the topic uses it, else the record's creation time.
    pub timestamp: i64,
}

/// How a record's outcome is reported: to a future or to a callback.
pub(crate) enum Completion {
    Future(oneshot::Sender<Result<RecordMetadata>>),
    Callback(Box<dyn FnOnce(Result<RecordMetadata>) + Send>),
}

impl Completion {
    pub(crate) fn complete(self, result: Result<RecordMetadata>) {
        match self {
            Completion::Future(tx) => {
                let _ = tx.send(result);
            }
            Completion::Callback(callback) => callback(result),
        }
    }
}

impl fmt::Debug for Completion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Completion::Future(_) => "Completion::Future",
            Completion::Callback(_) => "Completion::Callback",
        })
    }
}

/// Resolves when the broker acknowledged the record (or it failed for good).
///
/// Dropping it does not cancel the send.
#[derive(Debug)]
pub struct DeliveryFuture {
    pub(crate) rx: oneshot::Receiver<Result<RecordMetadata>>,
}

impl Future for DeliveryFuture {
    type Output = Result<RecordMetadata>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.rx)
            .poll(cx)
            .map(|r| r.unwrap_or(Err(Error::Closed)))
    }
}
