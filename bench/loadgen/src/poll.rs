//! How a consumer takes messages from librdkafka: one per call (the rdkafka
//! crate's `BaseConsumer::poll`) or many per call ([`BatchQueue`]). Both are
//! kept so that a run can show what the client's own per-message cost is.

use std::time::Duration;

use clap::ValueEnum;
use rdkafka::consumer::BaseConsumer;
use rdkafka::error::KafkaResult;
use rdkafka::message::Message;

use crate::batch_queue::BatchQueue;

/// Most messages taken from librdkafka per call in [`PollMode::Batch`]:
/// enough that the per-call cost vanishes, few enough that a batch's
/// messages (each holding its fetch buffer) stay a small share of the queue.
const BATCH_MAX: usize = 1024;

/// `--poll`: how the consumer takes messages from librdkafka.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PollMode {
    /// `BaseConsumer::poll`, one message per call.
    Single,
    /// `rd_kafka_consume_batch_queue`, up to 1024 messages per call.
    Batch,
}

impl PollMode {
    /// The name written into the report (`poll` field).
    pub fn name(self) -> &'static str {
        match self {
            PollMode::Single => "single",
            PollMode::Batch => "batch",
        }
    }
}

/// A consumer read in the chosen [`PollMode`].
pub enum Poller<'consumer> {
    Single(&'consumer BaseConsumer),
    Batch(BatchQueue<'consumer>),
}

impl std::fmt::Debug for Poller<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Poller::Single(_) => f.write_str("Poller::Single"),
            Poller::Batch(queue) => f.debug_tuple("Poller::Batch").field(queue).finish(),
        }
    }
}

impl<'consumer> Poller<'consumer> {
    pub fn new(consumer: &'consumer BaseConsumer, mode: PollMode) -> KafkaResult<Self> {
        Ok(match mode {
            PollMode::Single => Poller::Single(consumer),
            PollMode::Batch => Poller::Batch(BatchQueue::new(consumer, BATCH_MAX)?),
        })
    }

    /// Hands the value of each message taken to `on_message` (empty for a
    /// null value) and returns how many were taken; waits up to `timeout`
    /// only while nothing is queued. An error is returned after the messages
    /// taken with it were handed over.
    pub fn poll(
        &mut self,
        timeout: Duration,
        mut on_message: impl FnMut(&[u8]),
    ) -> KafkaResult<usize> {
        match self {
            Poller::Single(consumer) => match consumer.poll(timeout) {
                Some(Ok(message)) => {
                    on_message(message.payload().unwrap_or_default());
                    Ok(1)
                }
                Some(Err(error)) => Err(error),
                None => Ok(0),
            },
            Poller::Batch(queue) => queue.poll_batch(timeout, on_message),
        }
    }
}
