//! What replication needs of the log: leader appends stamping epochs, the
//! leader-epoch cache and its checkpoint, follower appends copying the
//! leader's bytes, truncation, and reads bounded by the high watermark.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;

use common::*;
use proptest::prelude::*;
use runnel_model::{LeaderEpoch, Offset, Timestamp};
use runnel_protocol::batch::{split_batches, BatchBuilder, BatchHeader};
use runnel_storage::fault_injection::{Fault, FaultyIo};
use runnel_storage::producer_state::ProducerStateManager;
use runnel_storage::{AppendOutcome, Log, LogConfig, LogError};

const CHECKPOINT: &str = "leader-epoch-checkpoint";

/// A batch of `records` records of 20 bytes stamped with the current time
/// (so a follower's wall-clock `segment.ms` check does not roll).
fn fresh(records: usize) -> Vec<u8> {
    let now = Timestamp::now().0;
    let mut b = BatchBuilder::default();
    for i in 0..records {
        b = b.value(now + i as i64, &[b'r'; 20]);
    }
    b.build().unwrap()
}

fn fresh_idempotent(pid: i64, seq: i32, records: usize) -> Vec<u8> {
    let now = Timestamp::now().0;
    let mut b = BatchBuilder::default().producer(pid, 0, seq);
    for i in 0..records {
        b = b.value(now + i as i64, &[b'p'; 20]);
    }
    b.build().unwrap()
}

fn open(dir: &Path, config: LogConfig, clean: bool) -> Log {
    Log::open(dir, config, clean).unwrap().0
}

/// Appends as leader at `epoch`; returns (base offset, stored bytes).
fn lead(log: &mut Log, bytes: Vec<u8>, epoch: i32) -> (i64, Vec<u8>) {
    let mut bytes = bytes;
    match log
        .append_as_leader(&mut bytes, Timestamp::now(), LeaderEpoch(epoch))
        .unwrap()
    {
        AppendOutcome::Appended(info) => (info.base_offset.0, bytes),
        AppendOutcome::Duplicate(_) => panic!("unexpected duplicate"),
    }
}

/// Copies the leader's batches to the follower one batch per fetch, as
/// the leader appended them.
fn copy_all(leader: &Log, follower: &mut Log) {
    while follower.log_end_offset() < leader.log_end_offset() {
        let bytes = leader
            .read(follower.log_end_offset(), 1, true)
            .unwrap()
            .read_to_vec()
            .unwrap();
        follower.append_as_follower(&bytes).unwrap().unwrap();
    }
}

fn epochs(log: &Log) -> Vec<(i32, i64)> {
    log.epoch_entries()
        .into_iter()
        .map(|(e, o)| (e.0, o.0))
        .collect()
}

fn end_for(log: &Log, epoch: i32) -> Option<(i32, i64)> {
    log.end_offset_for_epoch(LeaderEpoch(epoch))
        .map(|(e, o)| (e.0, o.0))
}

fn headers(bytes: &[u8]) -> Vec<BatchHeader> {
    split_batches(bytes).map(|b| b.unwrap().1).collect()
}

/// Leader batches of 10 records at epochs 0, 2 and 5: (0,0) (2,10) (5,20).
fn kafka_example(dir: &Path) -> Log {
    let mut log = open(dir, LogConfig::default(), false);
    for epoch in [0, 2, 5] {
        lead(&mut log, fresh(10), epoch);
    }
    log
}

#[test]
fn end_offset_for_epoch_follows_kafkas_examples() {
    let dir = tempfile::tempdir().unwrap();
    let log = kafka_example(dir.path());
    assert_eq!(epochs(&log), vec![(0, 0), (2, 10), (5, 20)]);
    assert_eq!(log.latest_epoch(), Some(LeaderEpoch(5)));
    assert_eq!(end_for(&log, 5), Some((5, 30)));
    assert_eq!(end_for(&log, 3), Some((2, 20)));
    assert_eq!(end_for(&log, 2), Some((2, 20)));
    assert_eq!(end_for(&log, 1), Some((0, 10)));
    assert_eq!(end_for(&log, 6), None);
    assert_eq!(end_for(&log, -1), None);

    let empty_dir = tempfile::tempdir().unwrap();
    let empty = open(empty_dir.path(), LogConfig::default(), false);
    assert_eq!(empty.latest_epoch(), None);
    assert_eq!(end_for(&empty, 0), None);
}

#[test]
fn leader_append_stamps_the_epoch_and_plain_append_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), LogConfig::default(), false);
    let (_, stored) = lead(&mut log, fresh(2), 3);
    assert_eq!(headers(&stored)[0].partition_leader_epoch, 3);
    let (_, stored) = append(&mut log, fresh(1));
    assert_eq!(headers(&stored)[0].partition_leader_epoch, -1);
    // A stale leader's epoch is stamped but starts nothing.
    lead(&mut log, fresh(1), 1);
    assert_eq!(epochs(&log), vec![(3, 0)]);
    lead(&mut log, fresh(1), 4);
    assert_eq!(epochs(&log), vec![(3, 0), (4, 4)]);
}

#[test]
fn assign_epoch_only_moves_forward_and_an_empty_epoch_is_dropped_at_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = kafka_example(dir.path());
    log.assign_epoch(LeaderEpoch(4), Offset(30)).unwrap();
    log.assign_epoch(LeaderEpoch(7), Offset(15)).unwrap();
    assert_eq!(epochs(&log), vec![(0, 0), (2, 10), (5, 20)]);
    log.assign_epoch(LeaderEpoch(7), Offset(30)).unwrap();
    assert_eq!(epochs(&log), vec![(0, 0), (2, 10), (5, 20), (7, 30)]);
    assert_eq!(end_for(&log, 5), Some((5, 30)));
    assert_eq!(end_for(&log, 7), Some((7, 30)));
    drop(log);
    // Nothing was written in epoch 7: its entry starts at the log end.
    let log = open(dir.path(), LogConfig::default(), false);
    assert_eq!(epochs(&log), vec![(0, 0), (2, 10), (5, 20)]);
}

#[test]
fn checkpoint_is_kafkas_text_format() {
    let dir = tempfile::tempdir().unwrap();
    let log = kafka_example(dir.path());
    let text = std::fs::read_to_string(dir.path().join(CHECKPOINT)).unwrap();
    assert_eq!(text, "0\n3\n0 0\n2 10\n5 20\n");
    log.close().unwrap();
    let text = std::fs::read_to_string(dir.path().join(CHECKPOINT)).unwrap();
    assert_eq!(text, "0\n3\n0 0\n2 10\n5 20\n");
    let (log, report) = Log::open(dir.path(), LogConfig::default(), true).unwrap();
    assert!(!report.epoch_cache_rebuilt);
    assert_eq!(epochs(&log), vec![(0, 0), (2, 10), (5, 20)]);
}

#[test]
fn garbled_or_missing_checkpoint_is_rebuilt_from_batch_headers() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = kafka_example(dir.path());
    append(&mut log, fresh(1)); // epoch -1: ignored by the rebuild
    drop(log);
    for garbage in [
        &b"0\n3\n0 0\n2 10\n"[..],
        b"\xff\x00garbage",
        b"0\n1\n9 99\n",
    ] {
        std::fs::write(dir.path().join(CHECKPOINT), garbage).unwrap();
        let (log, report) = Log::open(dir.path(), LogConfig::default(), false).unwrap();
        let expected = if garbage == b"0\n1\n9 99\n" {
            // Well-formed: trusted, but its entry is past the log end.
            assert!(!report.epoch_cache_rebuilt);
            vec![]
        } else {
            assert!(report.epoch_cache_rebuilt, "{garbage:?}");
            vec![(0, 0), (2, 10), (5, 20)]
        };
        assert_eq!(epochs(&log), expected, "{garbage:?}");
        drop(log);
    }
    std::fs::remove_file(dir.path().join(CHECKPOINT)).unwrap();
    let (log, report) = Log::open(dir.path(), LogConfig::default(), false).unwrap();
    assert!(report.epoch_cache_rebuilt);
    assert_eq!(epochs(&log), vec![(0, 0), (2, 10), (5, 20)]);
    let text = std::fs::read_to_string(dir.path().join(CHECKPOINT)).unwrap();
    assert_eq!(text, "0\n3\n0 0\n2 10\n5 20\n", "the rebuild is persisted");
}

#[test]
fn follower_copy_has_the_leaders_bytes_offsets_epochs_and_producers() {
    let leader_dir = tempfile::tempdir().unwrap();
    let follower_dir = tempfile::tempdir().unwrap();
    let mut leader = open(leader_dir.path(), small_segments(), false);
    let mut follower = open(follower_dir.path(), small_segments(), false);
    for i in 0..30 {
        let epoch = i / 10;
        let bytes = if i % 3 == 0 {
            fresh_idempotent(7, i / 3, 1)
        } else {
            fresh(1 + i as usize % 3)
        };
        lead(&mut leader, bytes, epoch);
    }
    assert!(leader.segment_count() > 3);
    copy_all(&leader, &mut follower);

    assert_eq!(read_all(&follower), read_all(&leader));
    assert_eq!(follower.log_end_offset(), leader.log_end_offset());
    assert_eq!(follower.epoch_entries(), leader.epoch_entries());
    assert_eq!(follower.producer_state(), leader.producer_state());
    let leader_files = files_with_ext(leader_dir.path(), "log");
    let follower_files = files_with_ext(follower_dir.path(), "log");
    assert_eq!(leader_files.len(), follower_files.len());
    for (l, f) in leader_files.iter().zip(&follower_files) {
        assert_eq!(l.file_name(), f.file_name());
        assert_eq!(std::fs::read(l).unwrap(), std::fs::read(f).unwrap());
    }
}

#[test]
fn follower_append_of_a_large_fetch_spans_segments_and_skips_max_message_bytes() {
    let leader_dir = tempfile::tempdir().unwrap();
    let follower_dir = tempfile::tempdir().unwrap();
    let mut leader = open(leader_dir.path(), small_segments(), false);
    for _ in 0..20 {
        lead(&mut leader, fresh(2), 1);
    }
    let strict = LogConfig {
        max_message_bytes: 50,
        ..small_segments()
    };
    let mut follower = open(follower_dir.path(), strict, false);
    let mut fetched = Vec::new();
    let mut offset = Offset(0);
    while offset < leader.log_end_offset() {
        let bytes = leader
            .read(offset, 1_000_000, true)
            .unwrap()
            .read_to_vec()
            .unwrap();
        let last = headers(&bytes).last().unwrap().last_offset();
        fetched.extend_from_slice(&bytes);
        offset = Offset(last + 1);
    }
    assert!(fetched.len() > 2000);
    let info = follower.append_as_follower(&fetched).unwrap().unwrap();
    assert_eq!(
        (info.base_offset, info.last_offset),
        (Offset(0), Offset(39))
    );
    assert_eq!(read_all(&follower), read_all(&leader));
    assert!(follower.segment_count() >= 3);
    assert!(files_with_ext(follower_dir.path(), "log")
        .iter()
        .all(|f| file_len(f) <= 1000));

    // A batch larger than a segment is still refused.
    let mut huge = BatchBuilder::default().value(1, &[0u8; 2000]);
    huge.base_offset = 40;
    let huge = huge.build().unwrap();
    assert!(matches!(
        follower.append_as_follower(&huge),
        Err(LogError::RecordTooLarge { .. })
    ));
    assert_eq!(follower.log_end_offset(), Offset(40));
}

/// `bytes` (one batch) with its base offset set to `base`.
fn at(base: i64, bytes: &[u8]) -> Vec<u8> {
    let mut bytes = bytes.to_vec();
    runnel_protocol::batch::set_base_offset(&mut bytes, Offset(base)).unwrap();
    bytes
}

#[test]
fn non_contiguous_follower_append_is_refused_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut follower = open(dir.path(), LogConfig::default(), false);
    let three = fresh(3);
    follower
        .append_as_follower(&at(0, &three))
        .unwrap()
        .unwrap();
    let size = follower.size_bytes();

    let err = follower.append_as_follower(&at(1, &three)).unwrap_err();
    assert!(
        matches!(
            err,
            LogError::NonContiguousAppend {
                expected: Offset(3),
                found: Offset(1)
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.error_code(), -1);
    // The second batch overlaps the first: nothing of either is written.
    let mut both = at(3, &three);
    both.extend_from_slice(&at(5, &three));
    assert!(matches!(
        follower.append_as_follower(&both),
        Err(LogError::NonContiguousAppend {
            expected: Offset(6),
            found: Offset(5)
        })
    ));
    assert_eq!(follower.log_end_offset(), Offset(3));
    assert_eq!(follower.size_bytes(), size);

    // A gap forward, as the leader's cleaner leaves, is accepted.
    let info = follower
        .append_as_follower(&at(10, &three))
        .unwrap()
        .unwrap();
    assert_eq!(info.base_offset, Offset(10));
    assert_eq!(follower.log_end_offset(), Offset(13));
    drop(follower);
    let follower = open(dir.path(), LogConfig::default(), false);
    assert_eq!(follower.log_end_offset(), Offset(13));
    assert_eq!(read_all(&follower).len(), 2);
}

#[test]
fn follower_catching_up_on_old_records_rolls_by_their_timestamps() {
    let dir = tempfile::tempdir().unwrap();
    let mut follower = open(dir.path(), LogConfig::default(), false);
    // Records from 1970: by the wall clock every segment is past segment.ms.
    for i in 0..10 {
        let bytes = at(i * 2, &batch(2, 1000 + i, 10));
        follower.append_as_follower(&bytes).unwrap().unwrap();
    }
    assert_eq!(follower.segment_count(), 1);
    // A record segment.ms newer than the segment's first one does roll it.
    let week_later = 1000 + 8 * 24 * 3600 * 1000;
    let bytes = at(20, &batch(1, week_later, 10));
    follower.append_as_follower(&bytes).unwrap().unwrap();
    assert_eq!(follower.segment_count(), 2);
}

#[test]
fn partial_trailing_batch_is_ignored_and_corrupt_batches_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut follower = open(dir.path(), LogConfig::default(), false);
    assert_eq!(follower.append_as_follower(&[]).unwrap(), None);
    let first = at(0, &fresh(2));
    let second = at(2, &fresh(2));
    let mut fetched = first.clone();
    fetched.extend_from_slice(&second[..second.len() - 10]);
    let info = follower.append_as_follower(&fetched).unwrap().unwrap();
    assert_eq!((info.base_offset, info.last_offset), (Offset(0), Offset(1)));
    assert_eq!(read_all(&follower), vec![(0, first)]);
    assert_eq!(follower.append_as_follower(&second[..30]).unwrap(), None);
    assert_eq!(follower.append_as_follower(&second[..70]).unwrap(), None);

    let mut corrupt = second.clone();
    let last = corrupt.len() - 1;
    corrupt[last] ^= 1;
    assert!(matches!(
        follower.append_as_follower(&corrupt),
        Err(LogError::CorruptRecord(_))
    ));
    assert_eq!(follower.log_end_offset(), Offset(2));
    follower.append_as_follower(&second).unwrap().unwrap();
    assert_eq!(follower.log_end_offset(), Offset(4));
}

#[test]
fn failed_follower_write_rolls_back_offsets_epochs_and_producers() {
    let dir = tempfile::tempdir().unwrap();
    let io = FaultyIo::new();
    let (mut follower, _) =
        Log::open_with_io(dir.path(), LogConfig::default(), false, io.clone()).unwrap();
    let mut first = at(0, &fresh(2));
    runnel_protocol::batch::set_partition_leader_epoch(&mut first, LeaderEpoch(1)).unwrap();
    follower.append_as_follower(&first).unwrap().unwrap();
    let mut second = at(2, &fresh_idempotent(9, 0, 2));
    runnel_protocol::batch::set_partition_leader_epoch(&mut second, LeaderEpoch(4)).unwrap();

    io.inject(Fault::write().on(".log").short(20));
    assert!(matches!(
        follower.append_as_follower(&second),
        Err(LogError::Io(_))
    ));
    assert_eq!(io.injected(), 1);
    assert!(!follower.is_offline());
    assert_eq!(follower.log_end_offset(), Offset(2));
    assert_eq!(epochs(&follower), vec![(1, 0)]);
    assert!(follower.producer_state().is_empty());
    assert_eq!(read_all(&follower), vec![(0, first.clone())]);
    drop(follower);
    let mut follower = open(dir.path(), LogConfig::default(), false);
    assert_eq!(epochs(&follower), vec![(1, 0)]);
    assert_eq!(read_all(&follower), vec![(0, first)]);

    follower.append_as_follower(&second).unwrap().unwrap();
    assert_eq!(epochs(&follower), vec![(1, 0), (4, 2)]);
    assert_eq!(follower.producer_state().len(), 1);
}

/// Five leader batches of two records: [0..1] [2..3] [4..5] [6..7] [8..9].
fn five_batches(dir: &Path, config: LogConfig) -> (Log, Vec<(i64, Vec<u8>)>) {
    let mut log = open(dir, config, false);
    let stored = (0..5).map(|i| lead(&mut log, fresh(2), i)).collect();
    (log, stored)
}

#[test]
fn truncate_to_within_the_active_segment() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, stored) = five_batches(dir.path(), LogConfig::default());
    log.truncate_to(Offset(20)).unwrap();
    assert_eq!(log.log_end_offset(), Offset(10), "past the end: no-op");
    log.truncate_to(Offset(6)).unwrap();
    assert_eq!(log.log_end_offset(), Offset(6));
    assert_eq!(read_all(&log), stored[..3].to_vec());
    assert_eq!(epochs(&log), vec![(0, 0), (1, 2), (2, 4)]);
    assert_eq!(end_for(&log, 2), Some((2, 6)));
    assert!(matches!(
        log.read(Offset(7), 1000, true),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    let (base, _) = lead(&mut log, fresh(1), 6);
    assert_eq!(base, 6);
    assert_eq!(epochs(&log), vec![(0, 0), (1, 2), (2, 4), (6, 6)]);
}

#[test]
fn truncate_to_inside_a_batch_removes_the_whole_batch() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, stored) = five_batches(dir.path(), LogConfig::default());
    log.truncate_to(Offset(7)).unwrap();
    assert_eq!(log.log_end_offset(), Offset(6));
    assert_eq!(read_all(&log), stored[..3].to_vec());
    drop(log);
    let log = open(dir.path(), LogConfig::default(), false);
    assert_eq!(log.log_end_offset(), Offset(6));
}

#[test]
fn truncate_to_across_segments_deletes_their_files() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_segments(), false);
    let stored: Vec<_> = (0..40).map(|i| lead(&mut log, fresh(2), i / 8)).collect();
    let segments = log.segment_count();
    assert!(segments >= 5);
    // Offset 22 is batch 11's base, in the second or third segment.
    log.truncate_to(Offset(22)).unwrap();
    assert_eq!(log.log_end_offset(), Offset(22));
    assert!(log.segment_count() < segments);
    assert_eq!(files_with_ext(dir.path(), "log").len(), log.segment_count());
    assert_eq!(read_all(&log), stored[..11].to_vec());
    assert_eq!(epochs(&log), vec![(0, 0), (1, 16)]);
    let max = log.max_timestamp().unwrap();
    let by_time = log.offset_for_timestamp(Timestamp(0)).unwrap();

    // Appends go on, roll, and a recovering reopen agrees on everything.
    let mut expected = stored[..11].to_vec();
    for _ in 0..10 {
        expected.push(lead(&mut log, fresh(2), 9));
    }
    assert_eq!(read_all(&log), expected);
    drop(log);
    let (log, report) = Log::open(dir.path(), small_segments(), false).unwrap();
    assert_eq!(report.truncated_bytes, 0, "{report}");
    assert_eq!(read_all(&log), expected);
    assert_eq!(epochs(&log), vec![(0, 0), (1, 16), (9, 22)]);
    assert!(log.max_timestamp().unwrap().unwrap().1 >= max.unwrap().1);
    assert_eq!(log.offset_for_timestamp(Timestamp(0)).unwrap(), by_time);
}

#[test]
fn truncated_segment_indexes_match_a_rebuilt_one() {
    // Cut a segment in the middle, then compare what the log answers with
    // what it answers after rebuilding every index from scratch.
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        index_interval_bytes: 100,
        ..LogConfig::default()
    };
    let mut log = open(dir.path(), config.clone(), false);
    let base = Timestamp::now().0;
    for i in 0..30i64 {
        // Timestamps go up and down so the max is not the last batch's.
        let ts = base + (i * 7919) % 31;
        let mut bytes = BatchBuilder::default().value(ts, b"v").build().unwrap();
        log.append_as_leader(&mut bytes, Timestamp::now(), LeaderEpoch(0))
            .unwrap();
    }
    log.truncate_to(Offset(17)).unwrap();
    let answers = |log: &Log| {
        (
            log.max_timestamp().unwrap(),
            (0..35)
                .map(|t| log.offset_for_timestamp(Timestamp(base + t)).unwrap())
                .collect::<Vec<_>>(),
            read_all(log),
        )
    };
    let truncated = answers(&log);
    assert_eq!(truncated.2.len(), 17);
    log.close().unwrap();
    let clean = open(dir.path(), config.clone(), true);
    assert_eq!(answers(&clean), truncated);
    drop(clean);
    for ext in ["index", "timeindex"] {
        for f in files_with_ext(dir.path(), ext) {
            std::fs::remove_file(f).unwrap();
        }
    }
    let rebuilt = open(dir.path(), config, false);
    assert_eq!(answers(&rebuilt), truncated);
}

#[test]
fn truncate_to_the_log_start_empties_the_log_there() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = five_batches(dir.path(), small_segments());
    log.delete_records_before(Offset(4)).unwrap();
    log.truncate_to(Offset(4)).unwrap();
    assert_eq!(log.log_start_offset(), Offset(4));
    assert_eq!(log.log_end_offset(), Offset(4));
    assert_eq!(epochs(&log), vec![]);
    assert!(read_all(&log).is_empty());
    let (base, _) = lead(&mut log, fresh(1), 8);
    assert_eq!(base, 4);
    // Below the log start, the log restarts lower.
    log.truncate_to(Offset(2)).unwrap();
    assert_eq!(log.log_start_offset(), Offset(2));
    assert_eq!(log.log_end_offset(), Offset(2));
    drop(log);
    let log = open(dir.path(), small_segments(), false);
    assert_eq!(
        (log.log_start_offset(), log.log_end_offset()),
        (Offset(2), Offset(2))
    );
}

#[test]
fn truncate_fully_and_start_at_forgets_everything() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_segments(), false);
    for i in 0..20 {
        lead(&mut log, fresh_idempotent(3, i * 2, 2), 1);
    }
    assert!(log.segment_count() > 1);
    log.truncate_fully_and_start_at(Offset(1000)).unwrap();
    let check = |log: &Log| {
        assert_eq!(log.log_start_offset(), Offset(1000));
        assert_eq!(log.log_end_offset(), Offset(1000));
        assert_eq!(log.segment_count(), 1);
        assert!(log.epoch_entries().is_empty());
        assert!(log.producer_state().is_empty());
    };
    check(&log);
    assert_eq!(files_with_ext(dir.path(), "log").len(), 1);
    assert!(files_with_ext(dir.path(), "snapshot").is_empty());
    drop(log);
    let mut log = open(dir.path(), small_segments(), false);
    check(&log);
    // The producer is unknown now: any sequence is accepted.
    let (base, _) = lead(&mut log, fresh_idempotent(3, 2, 1), 2);
    assert_eq!(base, 1000);
    // Starting at an existing segment's base reuses that segment.
    log.truncate_fully_and_start_at(Offset(1000)).unwrap();
    log.close().unwrap();
    let log = open(dir.path(), small_segments(), true);
    check(&log);
}

fn recovery_point_checkpoint(dir: &Path) -> i64 {
    std::fs::read_to_string(dir.join("recovery-point-offset-checkpoint"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// A flush task taken before a truncation and reported after the log was
/// appended past its `up_to` again must not move the recovery point (nor
/// its checkpoint) over the new, never fsynced tail: an unclean reopen
/// still validates that tail and finds a torn batch in it.
#[test]
fn flush_task_taken_before_a_truncation_does_not_vouch_for_the_new_tail() {
    type Truncate = fn(&mut Log) -> Result<(), LogError>;
    let truncations: [(&str, Truncate); 2] = [
        ("truncate_to", |log| log.truncate_to(Offset(10))),
        ("truncate_fully_and_start_at", |log| {
            log.truncate_fully_and_start_at(Offset(10))
        }),
    ];
    for (what, truncate) in truncations {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open(dir.path(), small_segments(), false);
        for _ in 0..2 {
            lead(&mut log, fresh(2), 0);
        }
        log.flush().unwrap();
        for _ in 2..20 {
            lead(&mut log, fresh(2), 0);
        }
        let stale = log.flush_task().unwrap();
        assert_eq!(stale.up_to(), Offset(40), "{what}");

        truncate(&mut log).unwrap();
        let floor = log.log_end_offset().0 - log.unflushed_messages();
        assert!(floor <= 10, "{what}: recovery point {floor}");
        assert_eq!(recovery_point_checkpoint(dir.path()), floor, "{what}");
        while log.log_end_offset() < Offset(80) {
            lead(&mut log, fresh(2), 1);
        }
        stale.run().unwrap();
        log.mark_flushed(&stale);
        assert_eq!(
            log.log_end_offset().0 - log.unflushed_messages(),
            floor,
            "{what}: the stale task moved the recovery point"
        );
        assert_eq!(
            recovery_point_checkpoint(dir.path()),
            floor,
            "{what}: the stale task rewrote the checkpoint"
        );
        let expected = read_all(&log);
        drop(log);

        // Tear the last batch of a segment past the truncation point that
        // the stale `up_to` would have covered whole (so trusted).
        let bases: Vec<i64> = files_with_ext(dir.path(), "log")
            .iter()
            .map(|p| base_of(p))
            .collect();
        let torn = bases
            .windows(2)
            .find(|w| w[0] >= 10 && w[1] <= 40)
            .map(|w| w[0])
            .unwrap_or_else(|| panic!("{what}: no segment within [10, 40): {bases:?}"));
        let path = segment_path(dir.path(), torn, "log");
        let mut bytes = std::fs::read(&path).unwrap();
        let len = bytes.len();
        bytes[len - 1] ^= 0xFF;
        std::fs::write(&path, bytes).unwrap();

        let (log, report) = Log::open(dir.path(), small_segments(), false).unwrap();
        assert_eq!(report.dropped_batches, 1, "{what}: {report}");
        assert!(report.dropped_segments >= 1, "{what}: {report}");
        let end = log.log_end_offset().0;
        assert!(
            torn < end && end < 40,
            "{what}: end {end}, torn segment {torn}"
        );
        let kept: Vec<_> = expected.into_iter().filter(|(b, _)| *b < end).collect();
        assert_eq!(read_all(&log), kept, "{what}");
    }
}

#[test]
fn flush_task_taken_after_a_truncation_is_honoured_and_a_stale_one_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_segments(), false);
    for _ in 0..20 {
        lead(&mut log, fresh(2), 0);
    }
    let stale = log.flush_task().unwrap();
    log.truncate_to(Offset(30)).unwrap();
    lead(&mut log, fresh(2), 1);
    let fresh_task = log.flush_task().unwrap();
    assert_eq!(fresh_task.up_to(), Offset(32));
    lead(&mut log, fresh(2), 1);
    fresh_task.run().unwrap();
    stale.run().unwrap();
    log.mark_flushed(&fresh_task);
    assert_eq!(log.unflushed_messages(), 2);
    assert_eq!(recovery_point_checkpoint(dir.path()), 32);
    log.mark_flushed(&stale);
    assert_eq!(log.unflushed_messages(), 2);
    assert_eq!(recovery_point_checkpoint(dir.path()), 32);
    log.flush().unwrap();
    assert_eq!(log.unflushed_messages(), 0);
    assert_eq!(recovery_point_checkpoint(dir.path()), 34);
}

/// What a reopen must preserve.
#[derive(Debug, PartialEq)]
struct State {
    log_start_offset: Offset,
    log_end_offset: Offset,
    epochs: Vec<(i32, i64)>,
    producers: ProducerStateManager,
    batches: Vec<(i64, Vec<u8>)>,
}

fn snapshot_of(log: &Log) -> State {
    State {
        log_start_offset: log.log_start_offset(),
        log_end_offset: log.log_end_offset(),
        epochs: epochs(log),
        producers: log.producer_state().clone(),
        batches: read_all(log),
    }
}

#[test]
fn reopen_after_truncation_keeps_offsets_epochs_and_producers() {
    for clean in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open(dir.path(), small_segments(), false);
        for i in 0..30 {
            lead(&mut log, fresh_idempotent(5, i, 1), i / 4);
            lead(&mut log, fresh(2), i / 4);
        }
        // A close writes a snapshot at the end, beyond the truncation.
        log.close().unwrap();
        let mut log = open(dir.path(), small_segments(), true);
        log.truncate_to(Offset(40)).unwrap();
        let before = snapshot_of(&log);
        assert_eq!(before.log_end_offset, Offset(40));
        assert_eq!(
            before
                .producers
                .entry(5)
                .unwrap()
                .batches
                .back()
                .unwrap()
                .last_seq,
            13
        );
        if clean {
            log.close().unwrap();
        } else {
            drop(log);
        }
        let log = open(dir.path(), small_segments(), clean);
        assert_eq!(snapshot_of(&log), before, "clean shutdown: {clean}");
    }
}

#[test]
fn producer_resend_of_a_truncated_batch_is_appended_not_a_duplicate() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_segments(), false);
    for seq in 0..12 {
        lead(&mut log, fresh_idempotent(11, seq, 1), 0);
        lead(&mut log, fresh(3), 0);
    }
    log.close().unwrap();
    let mut log = open(dir.path(), small_segments(), true);
    // Before the truncation, sequence 10 is a duplicate.
    let mut early = fresh_idempotent(11, 10, 1);
    let outcome = log
        .append_as_leader(&mut early, Timestamp::now(), LeaderEpoch(0))
        .unwrap();
    assert!(
        matches!(outcome, AppendOutcome::Duplicate(_)),
        "{outcome:?}"
    );
    // Batches of producer 11 with sequences 0..=9 stay (offsets 0..=39).
    log.truncate_to(Offset(40)).unwrap();
    assert_eq!(
        log.producer_state()
            .entry(11)
            .unwrap()
            .batches
            .back()
            .unwrap()
            .last_seq,
        9
    );
    drop(log);
    let mut log = open(dir.path(), small_segments(), false);
    let mut resend = fresh_idempotent(11, 10, 1);
    let outcome = log
        .append_as_leader(&mut resend, Timestamp::now(), LeaderEpoch(1))
        .unwrap();
    assert!(
        matches!(outcome, AppendOutcome::Appended(info) if info.base_offset == Offset(40)),
        "{outcome:?}"
    );
    // And an older one is still the duplicate it is.
    let mut again = fresh_idempotent(11, 9, 1);
    let outcome = log
        .append_as_leader(&mut again, Timestamp::now(), LeaderEpoch(1))
        .unwrap();
    assert!(
        matches!(outcome, AppendOutcome::Duplicate(_)),
        "{outcome:?}"
    );
}

#[test]
fn read_below_returns_only_batches_under_the_bound() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), LogConfig::default(), false);
    // [0..4] [5..9] [10..14]
    let stored: Vec<_> = (0..3).map(|_| lead(&mut log, fresh(5), 0).1).collect();
    let read = |offset: i64, max: u32, upper: i64| {
        log.read_below(Offset(offset), max, true, Offset(upper))
            .unwrap()
            .read_to_vec()
            .unwrap()
    };
    assert_eq!(
        read(0, 1 << 20, 10),
        [stored[0].clone(), stored[1].clone()].concat()
    );
    assert_eq!(
        read(3, 1 << 20, 10),
        [stored[0].clone(), stored[1].clone()].concat()
    );
    assert_eq!(read(5, 1 << 20, 7), Vec::<u8>::new(), "[5..9] straddles 7");
    assert_eq!(read(0, 1 << 20, 7), stored[0]);
    assert_eq!(read(12, 1 << 20, 10), Vec::<u8>::new());
    assert_eq!(read(10, 1 << 20, 10), Vec::<u8>::new());
    assert_eq!(read(0, 1 << 20, 100), stored.concat(), "above the end");
    assert_eq!(read(0, 1, 15), stored[0], "min one batch");
    assert!(log
        .read_below(Offset(0), 1, false, Offset(15))
        .unwrap()
        .read_to_vec()
        .unwrap()
        .is_empty());
    assert!(matches!(
        log.read_below(Offset(16), 100, true, Offset(10)),
        Err(LogError::OffsetOutOfRange { .. })
    ));
}

#[test]
fn read_below_stops_at_the_bound_inside_a_later_segment() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_segments(), false);
    let stored: Vec<_> = (0..30).map(|_| lead(&mut log, fresh(2), 0)).collect();
    assert!(log.segment_count() > 3);
    for upper in [0, 2, 10, 24, 25, 40, 59, 60] {
        let mut got = Vec::new();
        let mut offset = Offset(0);
        loop {
            let bytes = log
                .read_below(offset, 250, true, Offset(upper))
                .unwrap()
                .read_to_vec()
                .unwrap();
            if bytes.is_empty() {
                break;
            }
            for item in split_batches(&bytes) {
                let (at, header) = item.unwrap();
                assert!(header.last_offset() < upper);
                got.push((
                    header.base_offset,
                    bytes[at..at + header.total_len()].to_vec(),
                ));
                offset = Offset(header.last_offset() + 1);
            }
        }
        let expected: Vec<_> = stored
            .iter()
            .filter(|(base, _)| base + 1 < upper)
            .cloned()
            .collect();
        assert_eq!(got, expected, "upper {upper}");
    }
}

// The model test: a leader and a follower under random appends, copies,
// truncations (the follower's, and the leader's followed by the
// follower's reconciliation through end_offset_for_epoch) and reopens;
// each log always holds exactly the model's batches, with the epochs and
// producer state they imply.

#[derive(Debug, Clone)]
enum Op {
    Lead {
        records: usize,
        bump: bool,
        idempotent: bool,
    },
    Copy {
        max_bytes: u32,
        cut: usize,
    },
    TruncateFollower {
        pick: usize,
        mid: bool,
    },
    TruncateLeader {
        pick: usize,
    },
    Reopen {
        leader: bool,
        clean: bool,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (1usize..4, prop::bool::weighted(0.2), any::<bool>())
            .prop_map(|(records, bump, idempotent)| Op::Lead { records, bump, idempotent }),
        3 => (1u32..600, 0usize..40).prop_map(|(max_bytes, cut)| Op::Copy { max_bytes, cut }),
        1 => (any::<usize>(), any::<bool>()).prop_map(|(pick, mid)| Op::TruncateFollower { pick, mid }),
        1 => any::<usize>().prop_map(|pick| Op::TruncateLeader { pick }),
        1 => (any::<bool>(), any::<bool>()).prop_map(|(leader, clean)| Op::Reopen { leader, clean }),
    ]
}

/// The batches a log should hold: (base offset, bytes).
type Model = Vec<(i64, Vec<u8>)>;

fn model_end(model: &Model) -> i64 {
    model
        .last()
        .map_or(0, |(_, b)| BatchHeader::parse(b).unwrap().last_offset() + 1)
}

fn model_epochs(model: &Model) -> Vec<(i32, i64)> {
    let mut out: Vec<(i32, i64)> = Vec::new();
    for (base, bytes) in model {
        let epoch = BatchHeader::parse(bytes).unwrap().partition_leader_epoch;
        if epoch >= 0 && out.last().is_none_or(|&(e, _)| epoch > e) {
            out.push((epoch, *base));
        }
    }
    out
}

fn model_producers(model: &Model) -> ProducerStateManager {
    let mut state = ProducerStateManager::default();
    for (_, bytes) in model {
        state.update(&BatchHeader::parse(bytes).unwrap());
    }
    state
}

fn check(log: &Log, model: &Model, who: &str) -> Result<(), TestCaseError> {
    prop_assert_eq!(&read_all(log), model, "{} batches", who);
    prop_assert_eq!(log.log_end_offset().0, model_end(model), "{} log end", who);
    prop_assert_eq!(epochs(log), model_epochs(model), "{} epochs", who);
    prop_assert_eq!(
        log.producer_state(),
        &model_producers(model),
        "{} producers",
        who
    );
    Ok(())
}

/// Truncates `model` to `offset` as the log does: every batch whose last
/// offset reaches it goes.
fn truncate_model(model: &mut Model, offset: i64) {
    model.retain(|(_, b)| BatchHeader::parse(b).unwrap().last_offset() < offset);
}

fn reopen(log: Log, dir: &Path, clean: bool) -> Log {
    if clean {
        log.close().unwrap();
    } else {
        drop(log);
    }
    open(dir, small_segments(), clean)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]
    #[test]
    fn leader_and_follower_logs_follow_the_model(ops in prop::collection::vec(op(), 1..30)) {
        let leader_dir = tempfile::tempdir().unwrap();
        let follower_dir = tempfile::tempdir().unwrap();
        let mut leader = open(leader_dir.path(), small_segments(), false);
        let mut follower = open(follower_dir.path(), small_segments(), false);
        let mut leader_model: Model = Vec::new();
        let mut follower_model: Model = Vec::new();
        let mut epoch = 0;
        for op in ops {
            match op {
                Op::Lead { records, bump, idempotent } => {
                    epoch += i32::from(bump);
                    let bytes = if idempotent {
                        let seq = leader
                            .producer_state()
                            .entry(1)
                            .and_then(|e| e.batches.back())
                            .map_or(0, |b| b.last_seq + 1);
                        fresh_idempotent(1, seq, records)
                    } else {
                        fresh(records)
                    };
                    leader_model.push(lead(&mut leader, bytes, epoch));
                }
                Op::Copy { max_bytes, cut } => {
                    // Reconcile first (KIP-279), then fetch at the end.
                    if let Some(latest) = follower.latest_epoch() {
                        let target = match leader.end_offset_for_epoch(latest) {
                            Some((e, end)) if e == latest => end.min(follower.log_end_offset()),
                            Some((e, end)) => {
                                let own = follower
                                    .end_offset_for_epoch(e)
                                    .map_or(Offset(0), |(_, o)| o);
                                end.min(own)
                            }
                            None => Offset(0),
                        };
                        follower.truncate_to(target).unwrap();
                        truncate_model(&mut follower_model, target.0);
                        if target.0 == 0 {
                            follower_model.clear();
                        }
                    }
                    prop_assert!(leader_model.starts_with(&follower_model), "diverged");
                    let offset = follower.log_end_offset();
                    if offset > leader.log_end_offset() {
                        continue;
                    }
                    let mut bytes = leader.read(offset, max_bytes, true).unwrap().read_to_vec().unwrap();
                    if cut < bytes.len() && cut > 0 {
                        bytes.truncate(bytes.len() - cut);
                    }
                    let info = follower.append_as_follower(&bytes).unwrap();
                    let whole: Vec<_> = split_batches(&bytes)
                        .map_while(Result::ok)
                        .map(|(at, h)| (h.base_offset, bytes[at..at + h.total_len()].to_vec()))
                        .collect();
                    prop_assert_eq!(info.is_some(), !whole.is_empty());
                    follower_model.extend(whole);
                }
                Op::TruncateFollower { pick, mid } => {
                    if follower_model.is_empty() {
                        continue;
                    }
                    let (base, _) = &follower_model[pick % follower_model.len()];
                    let offset = base + i64::from(mid);
                    follower.truncate_to(Offset(offset)).unwrap();
                    truncate_model(&mut follower_model, offset);
                }
                Op::TruncateLeader { pick } => {
                    if leader_model.is_empty() {
                        continue;
                    }
                    let (base, _) = &leader_model[pick % leader_model.len()];
                    let offset = *base;
                    leader.truncate_to(Offset(offset)).unwrap();
                    truncate_model(&mut leader_model, offset);
                    // A leader that lost records leads on in a new epoch.
                    epoch += 1;
                }
                Op::Reopen { leader: true, clean } => {
                    leader = reopen(leader, leader_dir.path(), clean);
                }
                Op::Reopen { leader: false, clean } => {
                    follower = reopen(follower, follower_dir.path(), clean);
                }
            }
            check(&leader, &leader_model, "leader")?;
            check(&follower, &follower_model, "follower")?;
        }
    }
}
