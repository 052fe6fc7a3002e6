//! The producer: batches records per partition (`linger.ms`, `batch.size`),
//! compresses them, sends one request per broker with up to
//! `max.in.flight.requests.per.connection` in flight, retries retriable errors
//! and, idempotent by default, never writes a record twice.
//!
//! ```no_run
//! # async fn example() -> runnel_client::Result<()> {
//! use runnel_client::ClientConfig;
//! use runnel_client::producer::{Producer, ProducerConfig, ProducerRecord};
//!
//! let producer = Producer::new(ProducerConfig::new(ClientConfig::new("127.0.0.1:9092"))).await?;
//! let delivery = producer
//!     .send(ProducerRecord::new("orders").key("customer-7").value("hello"))
//!     .await?;
//! let written = delivery.await?;
//! println!("written at {}-{}@{}", written.topic, written.partition, written.offset);
//! producer.close().await?;
//! # Ok(())
//! # }
//! ```

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{InitProducerIdRequest, ProducerId};
use parking_lot::Mutex;
use tokio::sync::{oneshot, Notify, Semaphore};

use crate::cluster::{Cluster, Metadata};
use crate::error::{Error, Result};

mod accumulator;
mod config;
pub mod partitioner;
mod record;
mod sender;

pub use config::{parse_compression, Acks, ProducerConfig};
pub use record::{DeliveryFuture, ProducerRecord, RecordMetadata};
pub use runnel_protocol::compression::Compression;

use accumulator::{Accumulator, Append, BATCH_OVERHEAD};
use record::Completion;

/// State shared by the producer handle, the sender task and the request tasks.
#[derive(Debug)]
pub(crate) struct Shared {
    cluster: Arc<Cluster>,
    config: ProducerConfig,
    idempotent: bool,
    /// Producer id and epoch (-1, -1 when not idempotent).
    producer_id: (i64, i16),
    accumulator: Mutex<Accumulator>,
    /// `buffer.memory`, one permit per byte.
    memory: Arc<Semaphore>,
    /// `send` calls waiting for memory: lingering batches are sent at once.
    blocked: AtomicUsize,
    /// Wakes the sender.
    wake: Notify,
    /// Signalled whenever records complete.
    done: Notify,
    in_flight: Mutex<HashMap<i32, Arc<Semaphore>>>,
    refreshing: AtomicBool,
}

impl Shared {
    fn broker_permits(&self, broker: i32) -> Arc<Semaphore> {
        sender::permits_for(
            &mut self.in_flight.lock(),
            broker,
            self.config.max_in_flight,
        )
    }
}

/// An asynchronous, batching, idempotent producer. `send` only queues the
/// record; the returned [`DeliveryFuture`] resolves when the broker has it.
///
/// ```no_run
/// # async fn example() -> runnel_client::Result<()> {
/// use runnel_client::ClientConfig;
/// use runnel_client::producer::{Compression, Producer, ProducerConfig, ProducerRecord};
///
/// let config = ProducerConfig::new(ClientConfig::new("127.0.0.1:9092"))
///     .compression(Compression::Zstd);
/// let producer = Producer::new(config).await?;
/// let mut deliveries = Vec::new();
/// for i in 0..1000 {
///     let record = ProducerRecord::new("events").value(format!("event {i}"));
///     deliveries.push(producer.send(record).await?);
/// }
/// producer.flush().await;
/// for delivery in deliveries {
///     delivery.await?;
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Producer {
    shared: Arc<Shared>,
    closed: AtomicBool,
}

impl Producer {
    /// Connects to the cluster, obtains a producer id (if idempotent) and starts
    /// the sender.
    pub async fn new(config: ProducerConfig) -> Result<Producer> {
        config.validate()?;
        let cluster = Cluster::connect(config.client.clone()).await?;
        Producer::with_cluster(cluster, config).await
    }

    /// Like [`Producer::new`] over an existing cluster connection (its client
    /// settings are used instead of `config.client`'s).
    pub async fn with_cluster(cluster: Arc<Cluster>, config: ProducerConfig) -> Result<Producer> {
        config.validate()?;
        let mut idempotent = config.idempotence()?;
        let mut producer_id = (-1, -1);
        if idempotent {
            match init_producer_id(&cluster, &config).await {
                Ok(id) => producer_id = id,
                // The broker has no InitProducerId: only an explicit request for
                // idempotence makes that an error (the default quietly turns off).
                Err(Error::UnsupportedVersion { .. }) if config.enable_idempotence.is_none() => {
                    tracing::warn!(
                        "the broker does not support idempotent producers; continuing without"
                    );
                    idempotent = false;
                }
                Err(e) => return Err(e),
            }
        }
        let shared = Arc::new(Shared {
            memory: Arc::new(Semaphore::new(config.buffer_memory)),
            cluster,
            config,
            idempotent,
            producer_id,
            accumulator: Mutex::default(),
            blocked: AtomicUsize::new(0),
            wake: Notify::new(),
            done: Notify::new(),
            in_flight: Mutex::default(),
            refreshing: AtomicBool::new(false),
        });
        tokio::spawn(sender::run(shared.clone()));
        Ok(Producer {
            shared,
            closed: AtomicBool::new(false),
        })
    }

    /// Whether the producer is idempotent (asked for, and the broker supports it).
    pub fn is_idempotent(&self) -> bool {
        self.shared.idempotent
    }

    /// The producer id and epoch from InitProducerId (-1, -1 if not idempotent).
    pub fn producer_id(&self) -> (i64, i16) {
        self.shared.producer_id
    }

    /// Queues `record` and returns a future of its delivery. Waits (up to
    /// `max.block.ms`) for the topic's metadata and for room in `buffer.memory`.
    ///
    /// Fails at once with `MESSAGE_TOO_LARGE` for a record larger than
    /// `max.request.size` or `buffer.memory`, with [`Error::UnknownPartition`] for a
    /// partition the topic does not have, and with [`Error::Timeout`] when
    /// `max.block.ms` passes.
    pub async fn send(&self, record: ProducerRecord) -> Result<DeliveryFuture> {
        let (tx, rx) = oneshot::channel();
        self.enqueue(record, Completion::Future(tx)).await?;
        Ok(DeliveryFuture { rx })
    }

    /// Like [`Producer::send`], calling `callback` with the outcome instead (on the
    /// producer's task: keep it short).
    pub async fn send_with_callback(
        &self,
        record: ProducerRecord,
        callback: impl FnOnce(Result<RecordMetadata>) + Send + 'static,
    ) -> Result<()> {
        self.enqueue(record, Completion::Callback(Box::new(callback)))
            .await
    }

    /// Sends `record`, sends its batch at once and waits for the broker's answer.
    pub async fn send_and_wait(&self, record: ProducerRecord) -> Result<RecordMetadata> {
        let delivery = self.send(record).await?;
        let _flushing = Flushing::start(&self.shared);
        delivery.await
    }

    async fn enqueue(&self, record: ProducerRecord, completion: Completion) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        let config = &self.shared.config;
        let size = record.estimated_size();
        if size + BATCH_OVERHEAD > config.max_request_size || size > config.buffer_memory {
            return Err(Error::broker(
                ResponseError::MessageTooLarge.code(),
                Some(format!(
                    "the record is {} bytes serialized, more than max.request.size ({}) or buffer.memory ({})",
                    size + BATCH_OVERHEAD,
                    config.max_request_size,
                    config.buffer_memory
                )),
                format!("sending to {}", record.topic),
            ));
        }
        // The clock is read only if `send` has to wait.
        let mut deadline = BlockDeadline::new(config.max_block);
        // One lookup when the topic is known (every send but the first).
        let cached = self.shared.cluster.metadata();
        let fetched;
        let known = cached
            .topics
            .get(&record.topic)
            .filter(|t| !t.partitions.is_empty());
        let topic = match known {
            Some(topic) => topic,
            None => {
                fetched = self.topic(&record.topic, &mut deadline).await?;
                let Some(topic) = fetched.topics.get(&record.topic) else {
                    return Err(Error::UnknownTopic(record.topic));
                };
                topic
            }
        };
        if let Some(p) = record.partition {
            if p < 0 || p as usize >= topic.partitions.len() {
                return Err(Error::UnknownPartition {
                    topic: record.topic,
                    partition: p,
                });
            }
        }
        self.reserve(size, &mut deadline).await?;
        let append = Append {
            timestamp: record.timestamp.unwrap_or_else(now_ms),
            record,
            size,
            completion,
        };
        let appended = {
            let mut acc = self.shared.accumulator.lock();
            if acc.closing {
                drop(acc);
                self.shared.memory.add_permits(size);
                return Err(Error::Closed);
            }
            acc.append(
                append,
                topic,
                config.partitioner_ignore_keys,
                config.batch_size,
                Instant::now,
            )
        };
        let appended = match appended {
            Ok(appended) => appended,
            Err(e) => {
                self.shared.memory.add_permits(size);
                return Err(e);
            }
        };
        if appended.new_batch || appended.full || config.linger.is_zero() {
            self.shared.wake.notify_one();
        }
        Ok(())
    }

    /// Takes `size` bytes of `buffer.memory`, waiting until `deadline`.
    async fn reserve(&self, size: usize, deadline: &mut BlockDeadline) -> Result<()> {
        let memory = &self.shared.memory;
        // `size` <= buffer.memory <= u32::MAX (checked by validate and enqueue).
        let permits = size as u32;
        if let Ok(permit) = memory.try_acquire_many(permits) {
            permit.forget();
            return Ok(());
        }
        self.shared.blocked.fetch_add(1, Ordering::AcqRel);
        self.shared.wake.notify_one();
        let waited =
            tokio::time::timeout_at(deadline.at().into(), memory.acquire_many(permits)).await;
        self.shared.blocked.fetch_sub(1, Ordering::AcqRel);
        match waited {
            Ok(Ok(permit)) => {
                permit.forget();
                Ok(())
            }
            Ok(Err(_)) => Err(Error::Closed),
            Err(_) => Err(Error::Timeout(format!(
                "no room in buffer.memory ({} bytes) within max.block.ms ({:?})",
                self.shared.config.buffer_memory, self.shared.config.max_block
            ))),
        }
    }

    /// Metadata that has the topic's partitions, asking the broker (and letting
    /// it auto-create the topic if it does) until `deadline`, as the Java client
    /// waits `max.block.ms`. The snapshot is shared, not copied: this runs for
    /// every record.
    async fn topic(&self, name: &str, deadline: &mut BlockDeadline) -> Result<Arc<Metadata>> {
        let cluster = &self.shared.cluster;
        let has_partitions = |metadata: &Metadata| {
            metadata
                .topics
                .get(name)
                .is_some_and(|t| !t.partitions.is_empty())
        };
        let metadata = cluster.metadata();
        if has_partitions(&metadata) {
            return Ok(metadata);
        }
        if name.is_empty() {
            return Err(Error::InvalidArgument("the topic name is empty".into()));
        }
        loop {
            let errors = cluster.fetch_metadata(&[name.to_owned()], true).await?;
            let metadata = cluster.metadata();
            if has_partitions(&metadata) {
                return Ok(metadata);
            }
            let code = errors.iter().find(|(t, _)| t == name).map(|(_, c)| *c);
            let retriable = code
                .is_none_or(|c| ResponseError::try_from_code(c).is_some_and(|e| e.is_retriable()));
            let backoff = cluster.config().retry_backoff;
            if !retriable {
                return Err(Error::broker(
                    code.unwrap_or(0),
                    None,
                    format!("metadata for topic {name}"),
                ));
            }
            if Instant::now() + backoff >= deadline.at() {
                return Err(match code {
                    Some(3) => Error::UnknownTopic(name.to_owned()),
                    _ => Error::Timeout(format!(
                        "topic {name} not present in metadata after max.block.ms ({:?})",
                        self.shared.config.max_block
                    )),
                });
            }
            tokio::time::sleep(backoff).await;
        }
    }

    /// Sends every queued record now and waits until all records sent before
    /// (and, if other tasks keep sending, during) the call are completed.
    pub async fn flush(&self) {
        let _flushing = Flushing::start(&self.shared);
        self.wait_idle().await;
    }

    async fn wait_idle(&self) {
        loop {
            let done = self.shared.done.notified();
            tokio::pin!(done);
            done.as_mut().enable();
            if self.shared.accumulator.lock().is_idle() {
                return;
            }
            done.await;
        }
    }

    /// Refuses new records, delivers the queued ones (each until it succeeds or its
    /// `delivery.timeout.ms` passes) and stops the sender.
    pub async fn close(&self) -> Result<()> {
        self.closed.store(true, Ordering::Release);
        self.shared.accumulator.lock().closing = true;
        self.shared.wake.notify_one();
        self.wait_idle().await;
        Ok(())
    }

    /// Like [`Producer::close`], but stops waiting after `timeout` with
    /// [`Error::Timeout`]; the sender keeps delivering in the background.
    pub async fn close_timeout(&self, timeout: Duration) -> Result<()> {
        tokio::time::timeout(timeout, self.close())
            .await
            .map_err(|_| Error::Timeout(format!("records still in flight after {timeout:?}")))?
    }
}

impl Drop for Producer {
    /// A dropped producer still delivers what it queued, then its sender stops.
    fn drop(&mut self) {
        self.shared.accumulator.lock().closing = true;
        self.shared.wake.notify_one();
    }
}

/// Makes every batch ready while alive (also when the waiting call is cancelled).
struct Flushing<'a>(&'a Shared);

impl<'a> Flushing<'a> {
    fn start(shared: &'a Shared) -> Flushing<'a> {
        shared.accumulator.lock().flushing += 1;
        shared.wake.notify_one();
        Flushing(shared)
    }
}

impl Drop for Flushing<'_> {
    fn drop(&mut self) {
        self.0.accumulator.lock().flushing -= 1;
    }
}

/// When a `send` that has to wait gives up (`max.block.ms`), counted from the
/// first wait: most sends never wait and never read the clock for it.
struct BlockDeadline {
    max_block: Duration,
    at: Option<Instant>,
}

impl BlockDeadline {
    fn new(max_block: Duration) -> BlockDeadline {
        BlockDeadline {
            max_block,
            at: None,
        }
    }

    fn at(&mut self) -> Instant {
        *self
            .at
            .get_or_insert_with(|| Instant::now() + self.max_block)
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Obtains a producer id for an idempotent (non-transactional) producer,
/// retrying retriable errors such as COORDINATOR_NOT_AVAILABLE until `max.block.ms`.
async fn init_producer_id(cluster: &Cluster, config: &ProducerConfig) -> Result<(i64, i16)> {
    let deadline = Instant::now() + config.max_block;
    let request = InitProducerIdRequest::default()
        .with_transactional_id(None)
        .with_transaction_timeout_ms(i32::MAX)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    loop {
        let outcome = match cluster.send_any(&request).await {
            Ok(response) => Error::check(response.error_code, None, || "InitProducerId".into())
                .map(|()| (response.producer_id.0, response.producer_epoch)),
            Err(e) => Err(e),
        };
        match outcome {
            Ok(id) => return Ok(id),
            Err(e)
                if e.is_retriable()
                    && Instant::now() + cluster.config().retry_backoff < deadline =>
            {
                tracing::debug!(error = %e, "InitProducerId: retrying");
                tokio::time::sleep(cluster.config().retry_backoff).await;
            }
            Err(e) => return Err(e),
        }
    }
}
