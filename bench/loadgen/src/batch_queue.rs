//! Draining librdkafka's consumer queue many messages per call.
//!
//! `BaseConsumer::poll` hands back one message per call, and each call pays
//! for a queue lock, an event wrapper and the rdkafka crate's bookkeeping:
//! about a microsecond of CPU per message on the bench machine, which caps a
//! catch-up read near 1.2 M records/s whatever the broker does. librdkafka's
//! `rd_kafka_consume_batch_queue` takes up to N messages under one lock; the
//! rdkafka crate does not wrap it, so this module calls it through
//! `rdkafka::bindings`. It is the only module of the load generator that
//! holds unsafe code, and its safe surface is [`BatchQueue`].
#![allow(unsafe_code)]

use std::ffi::c_int;
use std::ptr::NonNull;
use std::time::Duration;

use rdkafka::bindings as rdsys;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::types::RDKafkaErrorCode;

/// A handle on a consumer's queue (where fetched messages land) that reads
/// it in batches. It borrows the consumer, so the consumer (and with it the
/// `rd_kafka_t` the queue belongs to) outlives the handle.
pub struct BatchQueue<'consumer> {
    _consumer: &'consumer BaseConsumer,
    queue: NonNull<rdsys::rd_kafka_queue_t>,
    /// Filled by librdkafka; only the first `n` slots returned by a call are
    /// valid, and only until they are destroyed at the end of that call.
    slots: Vec<*mut rdsys::rd_kafka_message_t>,
}

impl<'consumer> BatchQueue<'consumer> {
    /// A handle reading at most `batch_max` (at least 1) messages per call.
    pub fn new(consumer: &'consumer BaseConsumer, batch_max: usize) -> KafkaResult<Self> {
        // SAFETY: `native_ptr` is the live `rd_kafka_t` owned by `consumer`,
        // which the returned handle borrows, so it stays valid for as long as
        // the queue handle exists. `rd_kafka_queue_get_consumer` returns a new
        // reference (released in `Drop`) or null when the client has no
        // consumer group queue, which is turned into an error.
        let queue = unsafe { rdsys::rd_kafka_queue_get_consumer(consumer.client().native_ptr()) };
        let queue = NonNull::new(queue).ok_or_else(|| {
            KafkaError::ClientCreation("the consumer has no consumer queue (no group.id)".into())
        })?;
        Ok(BatchQueue {
            _consumer: consumer,
            queue,
            slots: vec![std::ptr::null_mut(); batch_max.max(1)],
        })
    }

    /// Calls `on_message` with the value of every message taken (empty for a
    /// null value) and returns how many were taken. Waits up to `timeout`
    /// for the first message only: what is already queued is taken without
    /// waiting, and once one message arrived the call returns with whatever
    /// else is queued by then, so a batch never holds a message back (which
    /// the latency mode would count). An error delivered in the queue (a
    /// message whose `err` is set) is returned after the good messages of the
    /// same batch have been handed to `on_message`.
    pub fn poll_batch(
        &mut self,
        timeout: Duration,
        mut on_message: impl FnMut(&[u8]),
    ) -> KafkaResult<usize> {
        let mut first_error = None;
        let mut taken = self.take(0, self.slots.len(), &mut on_message, &mut first_error)?;
        if taken == 0 {
            // librdkafka's batch call waits until the batch is full or the
            // timeout passes; asking for one message makes it return as soon
            // as anything arrives.
            taken = self.take(timeout_ms(timeout), 1, &mut on_message, &mut first_error)?;
            if taken > 0 {
                let size = self.slots.len() - 1;
                taken += self.take(0, size, &mut on_message, &mut first_error)?;
            }
        }
        match first_error {
            Some(error) => Err(error),
            None => Ok(taken),
        }
    }

    /// One `rd_kafka_consume_batch_queue` call for up to `size` messages.
    fn take(
        &mut self,
        timeout_ms: c_int,
        size: usize,
        on_message: &mut impl FnMut(&[u8]),
        first_error: &mut Option<KafkaError>,
    ) -> KafkaResult<usize> {
        let size = size.min(self.slots.len());
        if size == 0 {
            return Ok(0);
        }
        // SAFETY: `self.queue` is a live queue reference (see `new`), and
        // `self.slots` has room for `size` pointers, which is all librdkafka
        // writes. A negative return means nothing was written.
        let count = unsafe {
            rdsys::rd_kafka_consume_batch_queue(
                self.queue.as_ptr(),
                timeout_ms,
                self.slots.as_mut_ptr(),
                size,
            )
        };
        let Ok(count) = usize::try_from(count) else {
            // SAFETY: no preconditions; reads this thread's last error.
            let code = unsafe { rdsys::rd_kafka_last_error() };
            return Err(KafkaError::MessageConsumption(RDKafkaErrorCode::from(code)));
        };
        debug_assert!(count <= size, "librdkafka returned more than asked");
        for &message in &self.slots[..count.min(size)] {
            // SAFETY: librdkafka filled the first `count` slots with valid,
            // distinct messages that this handle now owns. Each is read only
            // here, its payload borrowed only for the callback, and destroyed
            // exactly once right after; the slot is not read again before the
            // next call overwrites it.
            unsafe {
                let view = &*message;
                if view.err != rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
                    first_error.get_or_insert(KafkaError::MessageConsumption(
                        RDKafkaErrorCode::from(view.err),
                    ));
                } else if view.payload.is_null() {
                    on_message(&[]);
                } else {
                    on_message(std::slice::from_raw_parts(
                        view.payload.cast::<u8>(),
                        view.len,
                    ));
                }
                rdsys::rd_kafka_message_destroy(message);
            }
        }
        Ok(count)
    }
}

impl std::fmt::Debug for BatchQueue<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchQueue")
            .field("batch_max", &self.slots.len())
            .finish_non_exhaustive()
    }
}

impl Drop for BatchQueue<'_> {
    fn drop(&mut self) {
        // SAFETY: releases the one reference taken in `new`; the consumer it
        // belongs to is still alive (it is borrowed), and the pointer is not
        // used after this.
        unsafe { rdsys::rd_kafka_queue_destroy(self.queue.as_ptr()) };
    }
}

/// A `Duration` as librdkafka's `timeout_ms`, saturating at `c_int::MAX`
/// (librdkafka reads a negative value as "wait forever").
fn timeout_ms(timeout: Duration) -> c_int {
    c_int::try_from(timeout.as_millis()).unwrap_or(c_int::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeout_ms_saturates_instead_of_going_negative() {
        assert_eq!(timeout_ms(Duration::ZERO), 0);
        assert_eq!(timeout_ms(Duration::from_micros(1500)), 1);
        assert_eq!(timeout_ms(Duration::from_millis(100)), 100);
        assert_eq!(timeout_ms(Duration::from_secs(u64::MAX)), c_int::MAX);
    }
}
