use std::time::{Duration, Instant};

use bytes::Bytes;
use runnel_protocol::batch::BatchWriter;
use tokio::sync::oneshot;

use super::*;
use crate::cluster::{PartitionInfo, TopicInfo};

fn topic(partitions: i32) -> TopicInfo {
    TopicInfo {
        name: "t".into(),
        id: uuid::Uuid::nil(),
        internal: false,
        partitions: (0..partitions)
            .map(|p| PartitionInfo {
                partition: p,
                leader: 1,
                leader_epoch: 0,
                replicas: vec![1],
                isr: vec![1],
                offline: vec![],
                error_code: 0,
            })
            .collect(),
    }
}

/// A record for topic "t" with a value of `value_len` bytes.
fn record(partition: Option<i32>, key: Option<&'static str>, value_len: usize) -> Append {
    let (tx, _rx) = oneshot::channel();
    let mut record = ProducerRecord::new("t").value(vec![b'v'; value_len]);
    record.partition = partition;
    record.key = key.map(|k| Bytes::from_static(k.as_bytes()));
    Append {
        size: record.estimated_size(),
        record,
        timestamp: 1_000,
        completion: Completion::Future(tx),
    }
}

/// Bytes that `record(_, None, value_len)` adds to a batch (while offset
/// deltas take one byte).
fn encoded(value_len: usize) -> usize {
    BatchWriter::new().record_len(1_000, None, Some(&vec![b'v'; value_len]), [])
}

#[test]
fn records_fill_a_batch_up_to_batch_size_then_start_another() {
    let mut acc = Accumulator::default();
    let now = Instant::now();
    let t = topic(1);
    let batch_size = BATCH_OVERHEAD + 2 * encoded(100);
    let a = acc.append(record(Some(0), None, 100), &t, false, batch_size, || now);
    let a = a.unwrap();
    assert!(a.new_batch && !a.full);
    let b = acc.append(record(Some(0), None, 100), &t, false, batch_size, || now);
    let b = b.unwrap();
    assert!(!b.new_batch && b.full, "two records fill it exactly: {b:?}");
    let c = acc.append(record(Some(0), None, 100), &t, false, batch_size, || now);
    assert!(c.unwrap().new_batch);
    let tp = TopicPartition::new("t", 0);
    let first = acc.drain(&tp, false).unwrap();
    assert_eq!(first.count(), 2);
    assert_eq!(first.size, batch_size, "the size is the encoded size");
    let bytes = first.writer.unwrap().finish(&Default::default()).unwrap();
    assert_eq!(bytes.len(), batch_size);
    assert_eq!(acc.incomplete, 3);
}

#[test]
fn a_batch_is_ready_after_linger_or_when_forced() {
    let mut acc = Accumulator::default();
    let now = Instant::now();
    let linger = Duration::from_millis(5);
    acc.append(record(Some(0), None, 10), &topic(1), false, 16384, || now)
        .unwrap();
    let (ready, next) = acc.ready(now, linger, false);
    assert!(ready.is_empty());
    assert_eq!(next, Some(now + linger));
    assert_eq!(acc.ready(now + linger, linger, false).0.len(), 1);
    assert_eq!(acc.ready(now, linger, true).0.len(), 1);
    acc.flushing = 1;
    assert_eq!(acc.ready(now, linger, false).0.len(), 1);
}

#[test]
fn keyed_records_use_murmur2() {
    let mut acc = Accumulator::default();
    let a = acc.append(
        record(None, Some("foobar"), 10),
        &topic(7),
        false,
        16384,
        Instant::now,
    );
    assert_eq!(a.unwrap().partition, partition_for_key(b"foobar", 7));
}

#[test]
fn unkeyed_records_stick_to_a_partition_until_its_batch_is_full() {
    let mut acc = Accumulator::default();
    let now = Instant::now();
    let t = topic(4);
    let batch_size = BATCH_OVERHEAD + 2 * encoded(100);
    let first = acc
        .append(record(None, None, 100), &t, false, batch_size, || now)
        .unwrap();
    let second = acc
        .append(record(None, None, 100), &t, false, batch_size, || now)
        .unwrap();
    assert_eq!(first.partition, second.partition);
    assert!(second.full);
    let third = acc
        .append(record(None, None, 100), &t, false, batch_size, || now)
        .unwrap();
    assert_ne!(
        third.partition, first.partition,
        "a full batch moves the sticky partition"
    );
}

#[test]
fn sequences_are_assigned_at_drain_and_retries_keep_their_order() {
    let mut acc = Accumulator::default();
    let now = Instant::now();
    let t = topic(1);
    let tp = TopicPartition::new("t", 0);
    for _ in 0..3 {
        acc.append(record(Some(0), None, 200), &t, false, 261, || now)
            .unwrap();
    }
    let b0 = acc.drain(&tp, true).unwrap();
    let b1 = acc.drain(&tp, true).unwrap();
    assert_eq!((b0.sequence, b1.sequence), (Some(0), Some(1)));
    // Both fail retriably; the later one comes back first but is queued second.
    acc.requeue(b1, now);
    acc.requeue(b0, now);
    let again0 = acc.drain(&tp, true).unwrap();
    let again1 = acc.drain(&tp, true).unwrap();
    let fresh = acc.drain(&tp, true).unwrap();
    assert_eq!(again0.sequence, Some(0));
    assert_eq!(again1.sequence, Some(1));
    assert_eq!(fresh.sequence, Some(2));
    assert!(!acc.is_next_sequence(&tp, 1), "0 was not acknowledged yet");
    acc.acknowledged(&again0);
    assert!(acc.is_next_sequence(&tp, 1));
}

#[test]
fn an_unwritten_failure_moves_later_sequences_down() {
    let mut acc = Accumulator::default();
    let now = Instant::now();
    let t = topic(1);
    let tp = TopicPartition::new("t", 0);
    acc.append(record(Some(0), None, 200), &t, false, 200, || now)
        .unwrap();
    acc.append(record(Some(0), None, 100), &t, false, 200, || now)
        .unwrap();
    acc.append(record(Some(0), None, 100), &t, false, 200, || now)
        .unwrap();
    acc.append(record(Some(0), None, 200), &t, false, 200, || now)
        .unwrap();
    let big = acc.drain(&tp, true).unwrap();
    let in_flight = acc.drain(&tp, true).unwrap();
    assert_eq!((big.sequence, in_flight.sequence), (Some(0), Some(1)));
    acc.failed_unwritten(&big);
    // The in-flight batch gets OUT_OF_ORDER_SEQUENCE and is retried as 0.
    acc.requeue(in_flight, now);
    let retried = acc.drain(&tp, true).unwrap();
    assert_eq!(retried.sequence, Some(0));
    let last = acc.drain(&tp, true).unwrap();
    assert_eq!(last.sequence, Some(1));
}

#[test]
fn acknowledgements_settled_out_of_order_keep_the_highest_sequence() {
    let mut acc = Accumulator::default();
    let now = Instant::now();
    let t = topic(1);
    let tp = TopicPartition::new("t", 0);
    acc.append(record(Some(0), None, 200), &t, false, 261, || now)
        .unwrap();
    acc.append(record(Some(0), None, 200), &t, false, 261, || now)
        .unwrap();
    let first = acc.drain(&tp, true).unwrap();
    let second = acc.drain(&tp, true).unwrap();
    acc.acknowledged(&second);
    acc.acknowledged(&first);
    assert!(acc.is_next_sequence(&tp, 2));
}

#[test]
fn sequences_wrap_to_zero() {
    assert!(is_after(0, i32::MAX));
    assert!(!is_after(i32::MAX, 0));
    assert!(is_after(5, 3) && !is_after(3, 5) && !is_after(3, 3));
    assert_eq!(sequence_add(i32::MAX, 1), 0);
    assert_eq!(sequence_add(0, -1), i32::MAX);
    assert_eq!(sequence_add(-1, 1), 0);
}

#[test]
fn old_queued_batches_expire() {
    let mut acc = Accumulator::default();
    let now = Instant::now();
    acc.append(record(Some(0), None, 10), &topic(1), false, 16384, || now)
        .unwrap();
    assert!(acc.expire(now, Duration::from_secs(1)).is_empty());
    assert_eq!(
        acc.expire(now + Duration::from_secs(1), Duration::from_secs(1))
            .len(),
        1
    );
}
