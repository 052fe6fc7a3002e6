//! The consumer: reads records from partitions assigned by a consumer group
//! ([`Consumer::subscribe`], classic or KIP-848 protocol) or chosen by hand
//! ([`Consumer::assign`]), as a [`futures_core::Stream`] or one [`Consumer::recv`] at a
//! time. Positions are committed automatically (`enable.auto.commit`) or by hand;
//! partitions can be sought, paused and resumed.
//!
//! A background fetcher keeps one Fetch in flight per leader broker and buffers up to
//! `max.partition.fetch.bytes` per partition ahead of the application.
//!
//! Rebalances are reported to a [`RebalanceListener`] given to
//! [`Consumer::subscribe_with_listener`]; its methods run before the member
//! acknowledges the change to the group coordinator.
//!
//! ```no_run
//! # async fn example() -> runnel_client::Result<()> {
//! use runnel_client::consumer::{Consumer, ConsumerConfig, OffsetReset};
//!
//! let consumer = Consumer::new(
//!     ConsumerConfig::new("127.0.0.1:9092")
//!         .group_id("billing")
//!         .auto_offset_reset(OffsetReset::Earliest),
//! )
//! .await?;
//! consumer.subscribe(&["invoices"]).await?;
//! loop {
//!     let record = consumer.recv().await?;
//!     println!("{}-{}@{}: {:?}", record.topic, record.partition, record.offset, record.value);
//! }
//! # }
//! ```

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::cluster::Cluster;
use crate::error::{Error, Result};
use crate::types::TopicPartition;

pub mod assignor;
pub mod classic;
mod config;
mod decode;
mod fetcher;
mod group;
pub mod kip848;
pub mod member;
mod offsets;
mod pattern;
mod record;
mod state;

pub use config::{ConsumerConfig, IsolationLevel, OffsetReset};
pub use member::{AssignmentStrategy, GroupProtocol};
pub use offsets::{ListedOffset, OffsetAndEpoch};
pub use record::{ConsumerRecord, RebalanceListener, TimestampType};

use group::Membership;
use member::{PollTimer, SubscribeTo};
use record::NoListener;
use state::{Inner, PartitionState, Phase, State};

/// Reads records; see the [module docs](self).
#[derive(Debug)]
pub struct Consumer {
    inner: Arc<Inner>,
    fetcher: JoinHandle<()>,
    membership: tokio::sync::Mutex<Option<Membership>>,
    auto_commit: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Consumer {
    fn drop(&mut self) {
        self.fetcher.abort();
        if let Some(task) = self.auto_commit.lock().take() {
            task.abort();
        }
    }
}

impl Consumer {
    /// Connects to the cluster; nothing is read until `subscribe` or `assign`.
    pub async fn new(config: ConsumerConfig) -> Result<Consumer> {
        config.validate()?;
        let cluster = Cluster::connect(config.client.clone()).await?;
        Ok(Consumer::with_cluster(cluster, config))
    }

    /// A consumer sharing an existing cluster connection (its `ClientConfig` is used
    /// instead of `config.client`).
    pub fn with_cluster(cluster: Arc<Cluster>, mut config: ConsumerConfig) -> Consumer {
        config.client = cluster.config().clone();
        let auto_commit = config.auto_commit();
        let inner = Arc::new(Inner {
            cluster,
            config,
            state: Mutex::new(State::default()),
            wake_fetcher: Notify::new(),
            data: Notify::new(),
            generation: Mutex::new(None),
            polls: Arc::new(PollTimer::new()),
        });
        let fetcher = tokio::spawn(fetcher::run(inner.clone()));
        let auto_commit = auto_commit.then(|| group::spawn_auto_commit(inner.clone()));
        Consumer {
            inner,
            fetcher,
            membership: tokio::sync::Mutex::new(None),
            auto_commit: Mutex::new(auto_commit),
        }
    }

    /// The cluster this consumer reads from.
    pub fn cluster(&self) -> &Arc<Cluster> {
        &self.inner.cluster
    }

    /// Joins the group (`group.id`) subscribed to `topics`; the group assigns the
    /// partitions. Replaces an earlier subscription.
    pub async fn subscribe(&self, topics: &[&str]) -> Result<()> {
        self.subscribe_with_listener(topics, Arc::new(NoListener))
            .await
    }

    /// [`Consumer::subscribe`], telling `listener` about every rebalance.
    pub async fn subscribe_with_listener(
        &self,
        topics: &[&str],
        listener: Arc<dyn RebalanceListener>,
    ) -> Result<()> {
        if topics.is_empty() {
            return Err(Error::InvalidArgument("subscribe to no topic".into()));
        }
        let topics = topics.iter().map(|t| (*t).to_owned()).collect();
        self.start_membership(SubscribeTo::Topics(topics), listener)
            .await
    }

    /// Joins the group subscribed to every topic whose whole name matches the
    /// regular expression `pattern` (Java's `subscribe(Pattern)`), including
    /// topics created later; internal topics never match. With the classic
    /// protocol the consumer matches it against metadata refreshed every
    /// `metadata.max.age.ms`; with KIP-848 the coordinator does (RE2 syntax).
    ///
    /// ```no_run
    /// # async fn example(consumer: runnel_client::consumer::Consumer) -> runnel_client::Result<()> {
    /// consumer.subscribe_pattern("orders-.*").await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn subscribe_pattern(&self, pattern: &str) -> Result<()> {
        self.subscribe_pattern_with_listener(pattern, Arc::new(NoListener))
            .await
    }

    /// [`Consumer::subscribe_pattern`], telling `listener` about every rebalance.
    pub async fn subscribe_pattern_with_listener(
        &self,
        pattern: &str,
        listener: Arc<dyn RebalanceListener>,
    ) -> Result<()> {
        pattern::TopicPattern::new(pattern)?;
        self.start_membership(SubscribeTo::Pattern(pattern.to_owned()), listener)
            .await
    }

    async fn start_membership(
        &self,
        subscription: SubscribeTo,
        listener: Arc<dyn RebalanceListener>,
    ) -> Result<()> {
        let group =
            self.inner.config.group_id.clone().ok_or_else(|| {
                Error::Config("subscribe needs a group.id (or use assign)".into())
            })?;
        self.unsubscribe().await?;
        let membership = Membership::start(self.inner.clone(), group, subscription, listener);
        *self.membership.lock().await = Some(membership);
        Ok(())
    }

    /// Reads exactly `partitions`, without group management (commits still work with
    /// a `group.id`). Partitions kept from the previous assignment keep their
    /// positions; new ones start at the committed offset, else `auto.offset.reset`.
    pub async fn assign(&self, partitions: &[TopicPartition]) -> Result<()> {
        if self.membership.lock().await.is_some() {
            return Err(Error::InvalidArgument(
                "assign while subscribed; unsubscribe first".into(),
            ));
        }
        let start = if self.inner.config.group_id.is_some() {
            Phase::AwaitCommitted
        } else {
            Phase::AwaitReset(self.inner.config.auto_offset_reset)
        };
        let mut state = self.inner.state.lock();
        state.partitions.retain(|tp, _| partitions.contains(tp));
        for tp in partitions {
            state
                .partitions
                .entry(tp.clone())
                .or_insert_with(|| PartitionState::new(start));
        }
        drop(state);
        self.inner.wake_fetcher.notify_one();
        Ok(())
    }

    /// Leaves the group (committing first with auto-commit) or drops the manual
    /// assignment.
    pub async fn unsubscribe(&self) -> Result<()> {
        if let Some(membership) = self.membership.lock().await.take() {
            membership.leave(&self.inner).await;
        } else if self.inner.config.auto_commit() {
            let positions = self.inner.state.lock().positions();
            group::commit(&self.inner, &positions).await?;
        }
        self.inner.state.lock().partitions.clear();
        Ok(())
    }

    /// The partitions currently assigned.
    pub fn assignment(&self) -> Vec<TopicPartition> {
        self.inner.state.lock().partitions.keys().cloned().collect()
    }

    /// The next record. Waits until one is fetched; returns errors the fetcher or the
    /// group member met (e.g. OFFSET_OUT_OF_RANGE with `auto.offset.reset=none`).
    pub async fn recv(&self) -> Result<ConsumerRecord> {
        let mut records = self.recv_many(1).await?;
        records
            .pop()
            .ok_or_else(|| Error::Protocol("no record after a wake-up".into()))
    }

    /// Between one and `max` records, waiting for the first. Cheaper per record than
    /// [`Consumer::recv`] when reading fast.
    pub async fn recv_many(&self, max: usize) -> Result<Vec<ConsumerRecord>> {
        let _polling = self.inner.polls.polling();
        let refill_below =
            usize::try_from(self.inner.config.max_partition_fetch_bytes).unwrap_or(1 << 20);
        loop {
            let notified = self.inner.data.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut state = self.inner.state.lock();
                if let Some(error) = state.errors.pop_front() {
                    return Err(error);
                }
                if state.closed {
                    return Err(Error::Closed);
                }
                let mut out = Vec::new();
                let mut wake = false;
                while out.len() < max.max(1) {
                    let Some((record, refill)) = state.pop(refill_below) else {
                        break;
                    };
                    wake |= refill;
                    out.push(record);
                }
                drop(state);
                if wake {
                    self.inner.wake_fetcher.notify_one();
                }
                if !out.is_empty() {
                    return Ok(out);
                }
            }
            notified.await;
        }
    }

    /// The records as a stream; it ends only when the consumer is closed (then yields
    /// [`Error::Closed`] once).
    ///
    /// ```no_run
    /// # async fn example(consumer: runnel_client::consumer::Consumer) {
    /// use std::pin::pin;
    /// use std::future::poll_fn;
    /// use futures_core::Stream;
    /// let mut stream = pin!(consumer.stream());
    /// while let Some(record) = poll_fn(|cx| stream.as_mut().poll_next(cx)).await {
    ///     println!("{:?}", record.map(|r| r.offset));
    /// }
    /// # }
    /// ```
    pub fn stream(&self) -> RecordStream<'_> {
        RecordStream {
            consumer: self,
            pending: None,
            done: false,
        }
    }

    /// The offset of the next record `recv` returns for `tp`, waiting (up to
    /// `request.timeout.ms`) for the committed offset or reset lookup if needed.
    pub async fn position(&self, tp: &TopicPartition) -> Result<i64> {
        let deadline = Instant::now() + self.inner.config.client.request_timeout;
        loop {
            let notified = self.inner.data.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            match self.inner.state.lock().partitions.get(tp) {
                None => return Err(not_assigned(tp)),
                Some(p) => {
                    if let Some(position) = p.known_position() {
                        return Ok(position);
                    }
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Error::Timeout(format!("the position of {tp}")));
            }
            let _ = tokio::time::timeout(left.min(fetcher::IDLE_CHECK), notified).await;
        }
    }

    /// Moves `tp`'s position to `offset`; buffered records are dropped and fetching
    /// restarts there.
    pub fn seek(&self, tp: &TopicPartition, offset: i64) -> Result<()> {
        if offset < 0 {
            return Err(Error::InvalidArgument(format!(
                "seek {tp} to negative offset {offset}"
            )));
        }
        self.with_partitions(std::slice::from_ref(tp), |p| p.seek(offset, None))
    }

    /// Moves the partitions to their log start offsets (looked up lazily).
    pub fn seek_to_beginning(&self, partitions: &[TopicPartition]) -> Result<()> {
        self.with_partitions(partitions, |p| {
            p.restart(Phase::AwaitReset(OffsetReset::Earliest))
        })
    }

    /// Moves the partitions to their log end offsets (looked up lazily).
    pub fn seek_to_end(&self, partitions: &[TopicPartition]) -> Result<()> {
        self.with_partitions(partitions, |p| {
            p.restart(Phase::AwaitReset(OffsetReset::Latest))
        })
    }

    /// Stops fetching the partitions and holds back their buffered records.
    pub fn pause(&self, partitions: &[TopicPartition]) -> Result<()> {
        self.with_partitions(partitions, |p| p.paused = true)
    }

    /// Undoes [`Consumer::pause`].
    pub fn resume(&self, partitions: &[TopicPartition]) -> Result<()> {
        self.with_partitions(partitions, |p| p.paused = false)?;
        self.inner.notify_data();
        Ok(())
    }

    /// The paused partitions.
    pub fn paused(&self) -> Vec<TopicPartition> {
        let state = self.inner.state.lock();
        state
            .partitions
            .iter()
            .filter(|(_, p)| p.paused)
            .map(|(tp, _)| tp.clone())
            .collect()
    }

    fn with_partitions(
        &self,
        partitions: &[TopicPartition],
        mut change: impl FnMut(&mut PartitionState),
    ) -> Result<()> {
        let mut state = self.inner.state.lock();
        if let Some(tp) = partitions
            .iter()
            .find(|tp| !state.partitions.contains_key(tp))
        {
            return Err(not_assigned(tp));
        }
        for tp in partitions {
            if let Some(p) = state.partitions.get_mut(tp) {
                change(p);
            }
        }
        drop(state);
        self.inner.wake_fetcher.notify_one();
        Ok(())
    }

    /// Commits the positions of all assigned partitions and waits for the answer.
    pub async fn commit(&self) -> Result<()> {
        let positions = self.inner.state.lock().positions();
        group::commit(&self.inner, &positions).await
    }

    /// Commits the given offsets (the offset of the next record to read, as Kafka
    /// commits them).
    pub async fn commit_offsets(&self, offsets: &BTreeMap<TopicPartition, i64>) -> Result<()> {
        let offsets = offsets
            .iter()
            .map(|(tp, o)| (tp.clone(), (*o, None)))
            .collect();
        group::commit(&self.inner, &offsets).await
    }

    /// Commits the current positions in the background; await the handle for the
    /// result, or drop it.
    pub fn commit_async(&self) -> JoinHandle<Result<()>> {
        let inner = self.inner.clone();
        let positions = inner.state.lock().positions();
        tokio::spawn(async move { group::commit(&inner, &positions).await })
    }

    /// The group's committed offsets for `partitions` (`None` where none is).
    pub async fn committed(
        &self,
        partitions: &[TopicPartition],
    ) -> Result<BTreeMap<TopicPartition, Option<i64>>> {
        let group = self
            .inner
            .config
            .group_id
            .as_deref()
            .ok_or_else(|| Error::Config("committed offsets need a group.id".into()))?;
        let found = offsets::fetch_committed(&self.inner.cluster, group, partitions).await?;
        Ok(found
            .into_iter()
            .map(|(tp, o)| (tp, o.map(|(offset, _)| offset)))
            .collect())
    }

    /// For each partition, the first offset whose timestamp is at or after the given
    /// one (ListOffsets by timestamp); `None` if no such record exists.
    pub async fn offsets_for_times(
        &self,
        timestamps: &BTreeMap<TopicPartition, i64>,
    ) -> Result<BTreeMap<TopicPartition, Option<ListedOffset>>> {
        if let Some((tp, ts)) = timestamps.iter().find(|(_, ts)| **ts < 0) {
            return Err(Error::InvalidArgument(format!(
                "negative timestamp {ts} for {tp}"
            )));
        }
        let isolation = self.inner.config.isolation_level;
        offsets::list_offsets(&self.inner.cluster, timestamps, isolation).await
    }

    /// The log start offsets of `partitions`.
    pub async fn beginning_offsets(
        &self,
        partitions: &[TopicPartition],
    ) -> Result<BTreeMap<TopicPartition, i64>> {
        self.edge_offsets(partitions, offsets::EARLIEST).await
    }

    /// The log end offsets (high watermarks, or last stable offsets under
    /// `read_committed`) of `partitions`.
    pub async fn end_offsets(
        &self,
        partitions: &[TopicPartition],
    ) -> Result<BTreeMap<TopicPartition, i64>> {
        self.edge_offsets(partitions, offsets::LATEST).await
    }

    async fn edge_offsets(
        &self,
        partitions: &[TopicPartition],
        which: i64,
    ) -> Result<BTreeMap<TopicPartition, i64>> {
        let lookups = partitions.iter().map(|tp| (tp.clone(), which)).collect();
        let isolation = self.inner.config.isolation_level;
        let found = offsets::list_offsets(&self.inner.cluster, &lookups, isolation).await?;
        Ok(found
            .into_iter()
            .map(|(tp, o)| (tp, o.map_or(-1, |o| o.offset)))
            .collect())
    }

    /// Commits (with auto-commit), leaves the group and stops fetching. `recv`
    /// returns [`Error::Closed`] afterwards.
    pub async fn close(&self) -> Result<()> {
        if let Some(task) = self.auto_commit.lock().take() {
            task.abort();
        }
        let result = self.unsubscribe().await;
        self.inner.state.lock().closed = true;
        self.inner.notify_data();
        self.inner.wake_fetcher.notify_one();
        result
    }
}

fn not_assigned(tp: &TopicPartition) -> Error {
    Error::InvalidArgument(format!("{tp} is not assigned to this consumer"))
}

type RecvFuture<'a> = Pin<Box<dyn Future<Output = Result<ConsumerRecord>> + Send + 'a>>;

/// The records of a [`Consumer`], from [`Consumer::stream`].
pub struct RecordStream<'a> {
    consumer: &'a Consumer,
    pending: Option<RecvFuture<'a>>,
    done: bool,
}

impl std::fmt::Debug for RecordStream<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordStream")
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl futures_core::Stream for RecordStream<'_> {
    type Item = Result<ConsumerRecord>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        let consumer = self.consumer;
        let future = self
            .pending
            .get_or_insert_with(|| Box::pin(consumer.recv()));
        match future.as_mut().poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(result) => {
                self.pending = None;
                if matches!(result, Err(Error::Closed)) {
                    self.done = true;
                }
                Poll::Ready(Some(result))
            }
        }
    }
}
