//! Behaviour of the partition log through its public API.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use proptest::prelude::*;
use runnel_model::{Offset, Timestamp};
use runnel_protocol::batch::{split_batches, BatchBuilder, BatchHeader};
use runnel_storage::{AppendOutcome, Log, LogConfig, LogError, TimestampType};

fn batch(records: usize, timestamp: i64, payload: usize) -> Vec<u8> {
    let mut b = BatchBuilder::default();
    for i in 0..records {
        b = b.value(timestamp + i as i64, &vec![b'x'; payload]);
    }
    b.build().unwrap()
}

fn idempotent(pid: i64, epoch: i16, seq: i32, records: usize) -> Vec<u8> {
    let mut b = BatchBuilder::default().producer(pid, epoch, seq);
    for _ in 0..records {
        b = b.value(1000, b"v");
    }
    b.build().unwrap()
}

fn open(dir: &Path, config: LogConfig, clean: bool) -> Log {
    Log::open(dir, config, clean).unwrap().0
}

fn append(log: &mut Log, mut bytes: Vec<u8>, now: i64) -> (i64, i64) {
    match log.append(&mut bytes, Timestamp(now)).unwrap() {
        AppendOutcome::Appended(info) => (info.base_offset.0, info.last_offset.0),
        AppendOutcome::Duplicate(_) => panic!("unexpected duplicate"),
    }
}

fn small_segments() -> LogConfig {
    LogConfig {
        segment_bytes: 1000,
        index_interval_bytes: 100,
        ..LogConfig::default()
    }
}

/// Reads every batch from the log start, returning (base offset, bytes).
fn read_all(log: &Log) -> Vec<(i64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    while offset < log.log_end_offset() {
        let slice = log.read(offset, 1 << 20, true).unwrap();
        let bytes = slice.read_to_vec().unwrap();
        assert!(!bytes.is_empty());
        for item in split_batches(&bytes) {
            let (at, header) = item.unwrap();
            out.push((
                header.base_offset,
                bytes[at..at + header.total_len()].to_vec(),
            ));
            offset = Offset(header.last_offset() + 1);
        }
    }
    out
}

fn segment_files(dir: &Path, ext: &str) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    files.sort();
    files
}

#[test]
fn append_assigns_offsets_and_reads_across_segments() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_segments(), false);
    let mut expected = Vec::new();
    for i in 0..40 {
        let (base, last) = append(&mut log, batch(3, 1000 + i, 20), 1000);
        assert_eq!((base, last), (i * 3, i * 3 + 2));
        expected.push(base);
    }
    assert_eq!(log.log_end_offset(), Offset(120));
    assert!(log.segment_count() > 3, "segments: {}", log.segment_count());
    let got: Vec<i64> = read_all(&log).into_iter().map(|(o, _)| o).collect();
    assert_eq!(got, expected);
    // A fetch from the middle of a batch returns that whole batch.
    let slice = log.read(Offset(61), 1, true).unwrap();
    let header = BatchHeader::parse(&slice.read_to_vec().unwrap()).unwrap();
    assert_eq!(header.base_offset, 60);
    assert_eq!(slice.len as usize, header.total_len());
}

#[test]
fn read_respects_max_bytes_and_min_one_batch() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), LogConfig::default(), false);
    let one = batch(1, 1, 100).len() as u32;
    for _ in 0..5 {
        append(&mut log, batch(1, 1, 100), 1);
    }
    assert_eq!(
        log.read(Offset(0), one * 2 + 5, false).unwrap().len,
        u64::from(one * 2)
    );
    assert_eq!(log.read(Offset(0), 10, false).unwrap().len, 0);
    assert_eq!(log.read(Offset(0), 10, true).unwrap().len, u64::from(one));
    assert_eq!(log.read(Offset(5), 1000, true).unwrap().len, 0);
    assert!(matches!(
        log.read(Offset(6), 1000, true),
        Err(LogError::OffsetOutOfRange { .. })
    ));
}

/// The range a read returns ends at the last whole batch within
/// `max_bytes`, for every start and limit, whether the end is found from
/// the sparse index or by walking headers (index entries every ~100 bytes,
/// batches of mixed sizes).
#[test]
fn read_ends_at_the_last_whole_batch_within_max_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        index_interval_bytes: 100,
        ..LogConfig::default()
    };
    let mut log = open(dir.path(), config, false);
    let mut batches = Vec::new(); // (base offset, position, length)
    let mut position = 0u64;
    for i in 0..60usize {
        let bytes = batch(1 + i % 3, 1, 10 + (i * 37) % 150);
        let len = bytes.len() as u64;
        let (base, _) = append(&mut log, bytes, 1);
        batches.push((base, position, len));
        position += len;
    }
    for (first, &(base, start, first_len)) in batches.iter().enumerate() {
        for max_bytes in (0..=position - start + 10).step_by(7) {
            let mut expected = first_len;
            for &(_, at, len) in &batches[first + 1..] {
                if at + len - start > max_bytes {
                    break;
                }
                expected = at + len - start;
            }
            let max = u32::try_from(max_bytes).unwrap();
            let slice = log.read(Offset(base), max, true).unwrap();
            assert_eq!(
                (slice.position, slice.len),
                (start, expected),
                "offset {base}, max {max}"
            );
            let without = log.read(Offset(base), max, false).unwrap().len;
            let expected_without = if first_len > max_bytes { 0 } else { expected };
            assert_eq!(
                without, expected_without,
                "offset {base}, max {max}, no min one batch"
            );
        }
    }
}

#[test]
fn rolls_by_time_and_by_full_index() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_ms: 100,
        ..LogConfig::default()
    };
    let mut log = open(dir.path(), config, false);
    append(&mut log, batch(1, 1000, 10), 1000);
    append(&mut log, batch(1, 1050, 10), 1050);
    assert_eq!(log.segment_count(), 1);
    append(&mut log, batch(1, 1200, 10), 1200);
    assert_eq!(log.segment_count(), 2);

    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_index_bytes: 16,
        index_interval_bytes: 1,
        ..LogConfig::default()
    };
    let mut log = open(dir.path(), config, false);
    for _ in 0..10 {
        append(&mut log, batch(1, 1, 10), 1);
    }
    assert!(
        log.segment_count() >= 3,
        "segments: {}",
        log.segment_count()
    );
    assert_eq!(read_all(&log).len(), 10);
}

#[test]
fn offset_for_timestamp_finds_the_first_record_at_or_after() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_segments(), false);
    for i in 0..30 {
        append(&mut log, batch(4, 10_000 + i * 100, 20), 1);
    }
    // Batch i holds timestamps 10000+100i .. +3, offsets 4i .. 4i+3.
    let at = |ts| log.offset_for_timestamp(Timestamp(ts)).unwrap();
    assert_eq!(at(0), Some((Offset(0), Timestamp(10_000))));
    assert_eq!(at(10_502), Some((Offset(22), Timestamp(10_502))));
    assert_eq!(at(10_504), Some((Offset(24), Timestamp(10_600))));
    assert_eq!(at(12_903), Some((Offset(119), Timestamp(12_903))));
    assert_eq!(at(12_904), None);
    assert_eq!(
        log.max_timestamp().unwrap(),
        Some((Offset(119), Timestamp(12_903)))
    );
}

#[test]
fn max_timestamp_points_at_the_record_inside_its_batch() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), LogConfig::default(), false);
    let mut b = BatchBuilder::default();
    for ts in [5, 50, 7] {
        b = b.value(ts, b"v");
    }
    append(&mut log, b.build().unwrap(), 1);
    append(&mut log, batch(1, 20, 1), 1);
    assert_eq!(
        log.max_timestamp().unwrap(),
        Some((Offset(1), Timestamp(50)))
    );
    let empty = tempfile::tempdir().unwrap();
    assert_eq!(
        open(empty.path(), LogConfig::default(), false)
            .max_timestamp()
            .unwrap(),
        None
    );
}

#[test]
fn log_append_time_stamps_batches() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        timestamp_type: TimestampType::LogAppendTime,
        ..LogConfig::default()
    };
    let mut log = open(dir.path(), config, false);
    let mut bytes = batch(2, 5, 1);
    let info = *log.append(&mut bytes, Timestamp(777)).unwrap().info();
    assert_eq!(info.log_append_time, Timestamp(777));
    let stored = log
        .read(Offset(0), 1000, true)
        .unwrap()
        .read_to_vec()
        .unwrap();
    let header = runnel_protocol::batch::validate_batch(&stored, 1 << 20).unwrap();
    assert_eq!(header.max_timestamp, 777);
    assert_eq!(header.timestamp_type(), TimestampType::LogAppendTime);
}

#[test]
fn oversized_and_corrupt_batches_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        max_message_bytes: 200,
        ..LogConfig::default()
    };
    let mut log = open(dir.path(), config, false);
    let mut big = batch(1, 1, 500);
    assert!(matches!(
        log.append(&mut big, Timestamp(1)),
        Err(LogError::RecordTooLarge { .. })
    ));
    let mut bad = batch(1, 1, 10);
    let last = bad.len() - 1;
    bad[last] ^= 1;
    let err = log.append(&mut bad, Timestamp(1)).unwrap_err();
    assert_eq!(err.error_code(), 2);
    assert_eq!(log.log_end_offset(), Offset(0));
}

#[test]
fn retention_by_time_rolls_and_deletes_expired_segments() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        retention_ms: 1000,
        ..small_segments()
    };
    let mut log = open(dir.path(), config, false);
    for i in 0..20 {
        append(&mut log, batch(2, 10_000 + i, 30), 10_000);
    }
    let segments = log.segment_count();
    assert!(segments > 2);
    assert_eq!(log.apply_retention(Timestamp(10_500)).unwrap(), 0);
    assert_eq!(log.apply_retention(Timestamp(20_000)).unwrap(), segments);
    assert_eq!(log.segment_count(), 1);
    assert_eq!(log.log_start_offset(), Offset(40));
    assert_eq!(log.log_end_offset(), Offset(40));
    assert_eq!(log.size_bytes(), 0);
    append(&mut log, batch(1, 30_000, 1), 30_000);
    assert_eq!(read_all(&log).len(), 1);
}

#[test]
fn retention_by_size_keeps_the_newest_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        retention_bytes: 1500,
        ..small_segments()
    };
    let mut log = open(dir.path(), config, false);
    for i in 0..40 {
        append(&mut log, batch(1, 10_000 + i, 50), 10_000);
    }
    let deleted = log.apply_retention(Timestamp(10_000)).unwrap();
    assert!(deleted > 0);
    assert!(log.size_bytes() >= 1500);
    assert!(log.size_bytes() < 1500 + 1000);
    assert_eq!(segment_files(dir.path(), "log").len(), log.segment_count());
    assert!(matches!(
        log.read(Offset(0), 100, true),
        Err(LogError::OffsetOutOfRange { .. })
    ));
}

#[test]
fn delete_records_raises_log_start_and_survives_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_segments(), false);
    for i in 0..30 {
        append(&mut log, batch(2, i, 30), 1);
    }
    assert!(matches!(
        log.delete_records_before(Offset(61)),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    let before = log.segment_count();
    assert_eq!(log.delete_records_before(Offset(31)).unwrap(), Offset(31));
    assert!(log.segment_count() < before);
    let slice = log
        .read(Offset(31), 1000, true)
        .unwrap()
        .read_to_vec()
        .unwrap();
    assert_eq!(BatchHeader::parse(&slice).unwrap().base_offset, 30);
    assert!(log.read(Offset(29), 1000, true).is_err());
    log.close().unwrap();
    let log = open(dir.path(), small_segments(), false);
    assert_eq!(log.log_start_offset(), Offset(31));
    assert_eq!(log.log_end_offset(), Offset(60));
}

#[test]
fn restart_after_clean_close_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_segments(), false);
    for i in 0..25 {
        append(&mut log, batch(3, 100 + i, 25), 1);
    }
    let before = read_all(&log);
    log.close().unwrap();
    let (log, report) = Log::open(dir.path(), small_segments(), true).unwrap();
    assert_eq!(report.truncated_bytes, 0);
    assert_eq!(report.rebuilt_indexes, 0);
    assert_eq!(read_all(&log), before);
    assert_eq!(log.log_end_offset(), Offset(75));
    assert_eq!(
        log.offset_for_timestamp(Timestamp(110)).unwrap().unwrap().0,
        Offset(26)
    );
}

#[test]
fn recovery_truncates_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), LogConfig::default(), false);
    for i in 0..10 {
        append(&mut log, batch(2, i, 40), 1);
    }
    let before = read_all(&log);
    drop(log);
    let file = segment_files(dir.path(), "log").pop().unwrap();
    let len = std::fs::metadata(&file).unwrap().len();
    let cut = len - 10;
    std::fs::OpenOptions::new()
        .write(true)
        .open(&file)
        .unwrap()
        .set_len(cut)
        .unwrap();
    let (mut log, report) = Log::open(dir.path(), LogConfig::default(), false).unwrap();
    assert_eq!(report.dropped_batches, 1);
    assert_eq!(
        report.truncated_bytes,
        cut - (len - before[9].1.len() as u64)
    );
    assert_eq!(log.log_end_offset(), Offset(18));
    assert_eq!(read_all(&log), before[..9].to_vec());
    assert_eq!(append(&mut log, batch(1, 1, 1), 1), (18, 18));
}

#[test]
fn recovery_drops_garbage_after_the_last_batch() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_segments(), false);
    for i in 0..20 {
        append(&mut log, batch(1, i, 40), 1);
    }
    let before = read_all(&log);
    drop(log);
    let file = segment_files(dir.path(), "log").pop().unwrap();
    let mut bytes = std::fs::read(&file).unwrap();
    bytes.extend_from_slice(&[0xAB; 300]);
    std::fs::write(&file, bytes).unwrap();
    let (log, report) = Log::open(dir.path(), small_segments(), false).unwrap();
    assert_eq!(report.truncated_bytes, 300);
    assert_eq!(read_all(&log), before);
}

#[test]
fn recovery_stops_at_a_corrupt_batch_and_drops_later_segments() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_segments(), false);
    for i in 0..30 {
        append(&mut log, batch(1, i, 40), 1);
    }
    drop(log);
    let files = segment_files(dir.path(), "log");
    assert!(files.len() >= 3);
    // Flip a payload byte of the first batch of the second segment.
    let mut bytes = std::fs::read(&files[1]).unwrap();
    bytes[70] ^= 0xFF;
    std::fs::write(&files[1], bytes).unwrap();
    let first_base: i64 = files[1]
        .file_stem()
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let (log, report) = Log::open(dir.path(), small_segments(), false).unwrap();
    assert_eq!(report.dropped_segments, files.len() - 2);
    assert_eq!(log.log_end_offset(), Offset(first_base));
    assert_eq!(segment_files(dir.path(), "log").len(), 2);
}

#[test]
fn recovery_rebuilds_deleted_or_corrupt_indexes() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_segments(), false);
    for i in 0..30 {
        append(&mut log, batch(1, 100 * i, 40), 1);
    }
    let before = read_all(&log);
    log.close().unwrap();
    let indexes = segment_files(dir.path(), "index");
    std::fs::remove_file(&indexes[0]).unwrap();
    std::fs::write(&indexes[1], [0xFF; 13]).unwrap();
    let times = segment_files(dir.path(), "timeindex");
    std::fs::write(&times[2], [0x01; 24]).unwrap();
    let (log, report) = Log::open(dir.path(), small_segments(), true).unwrap();
    assert!(report.rebuilt_indexes >= 3, "{report}");
    assert_eq!(report.truncated_bytes, 0);
    assert_eq!(read_all(&log), before);
    assert_eq!(
        log.offset_for_timestamp(Timestamp(1450))
            .unwrap()
            .unwrap()
            .0,
        Offset(15)
    );
    assert!(std::fs::metadata(&indexes[0]).unwrap().len() > 0);
}

#[test]
fn recovery_deletes_stray_files() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), LogConfig::default(), false);
    append(&mut log, batch(1, 1, 1), 1);
    log.close().unwrap();
    for name in [
        "00000000000000000000.log.cleaned",
        "00000000000000000000.log.swap",
        "00000000000000000007.log.deleted",
        "00000000000000000042.index",
    ] {
        std::fs::write(dir.path().join(name), b"junk").unwrap();
    }
    let (log, report) = Log::open(dir.path(), LogConfig::default(), false).unwrap();
    assert_eq!(report.stray_files_deleted, 4);
    assert_eq!(log.log_end_offset(), Offset(1));
}

#[test]
fn flush_task_covers_unflushed_data_and_marks_it_flushed() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_segments(), false);
    assert!(log.flush_task().is_none());
    for i in 0..10 {
        append(&mut log, batch(2, i, 40), 1);
    }
    assert_eq!(log.unflushed_messages(), 20);
    let task = log.flush_task().unwrap();
    assert_eq!(task.up_to(), Offset(20));
    append(&mut log, batch(1, 1, 1), 1);
    task.run().unwrap();
    log.mark_flushed(&task);
    assert_eq!(log.unflushed_messages(), 1);
    log.flush().unwrap();
    assert_eq!(log.unflushed_messages(), 0);
    assert!(log.flush_task().is_none());
}

#[test]
fn offline_log_refuses_appends_and_reads() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), LogConfig::default(), false);
    append(&mut log, batch(1, 1, 1), 1);
    log.mark_offline("fsync failed: EIO".into());
    assert!(log.is_offline());
    let mut bytes = batch(1, 1, 1);
    assert!(matches!(
        log.append(&mut bytes, Timestamp(1)),
        Err(LogError::Offline(_))
    ));
    assert!(matches!(
        log.read(Offset(0), 100, true),
        Err(LogError::Offline(_))
    ));
    assert!(log.flush_task().is_none());
}

#[test]
fn idempotent_duplicates_return_original_offsets_across_restarts() {
    for clean in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open(dir.path(), small_segments(), false);
        append(&mut log, batch(5, 1, 10), 1);
        assert_eq!(append(&mut log, idempotent(42, 0, 0, 3), 1), (5, 7));
        assert_eq!(append(&mut log, idempotent(42, 0, 3, 2), 1), (8, 9));
        for i in 0..20 {
            append(&mut log, batch(1, i, 60), 1);
        }
        if clean {
            log.close().unwrap();
        } else {
            drop(log);
        }
        let mut log = open(dir.path(), small_segments(), clean);
        let mut dup = idempotent(42, 0, 0, 3);
        match log.append(&mut dup, Timestamp(1)).unwrap() {
            AppendOutcome::Duplicate(info) => {
                assert_eq!((info.base_offset, info.last_offset), (Offset(5), Offset(7)))
            }
            other => panic!("expected duplicate, got {other:?}"),
        }
        assert_eq!(log.log_end_offset(), Offset(30));
        let mut gap = idempotent(42, 0, 9, 1);
        assert!(matches!(
            log.append(&mut gap, Timestamp(1)),
            Err(LogError::OutOfOrderSequence {
                expected: 5,
                received: 9,
                ..
            })
        ));
        assert_eq!(append(&mut log, idempotent(42, 0, 5, 1), 1), (30, 30));
        assert_eq!(append(&mut log, idempotent(42, 1, 0, 1), 1), (31, 31));
        let mut fenced = idempotent(42, 0, 6, 1);
        let err = log.append(&mut fenced, Timestamp(1)).unwrap_err();
        assert!(matches!(err, LogError::InvalidProducerEpoch));
        assert_eq!(err.error_code(), 47);
    }
}

#[test]
fn unknown_producer_may_start_at_any_sequence() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), LogConfig::default(), false);
    assert_eq!(append(&mut log, idempotent(7, 3, 1234, 2), 1), (0, 1));
    assert_eq!(append(&mut log, idempotent(7, 3, 1236, 1), 1), (2, 2));
    assert_eq!(
        log.expire_producers(Timestamp(1000 + 86_400_000), 86_400_000),
        1
    );
}

#[derive(Debug, Clone)]
enum Op {
    Append { records: usize, payload: usize },
    Reopen { clean: bool },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (1usize..5, 0usize..120).prop_map(|(records, payload)| Op::Append { records, payload }),
        1 => any::<bool>().prop_map(|clean| Op::Reopen { clean }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]
    #[test]
    fn random_appends_and_reopens_read_back_identically(ops in proptest::collection::vec(op(), 1..40)) {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig { segment_bytes: 700, index_interval_bytes: 150, ..LogConfig::default() };
        let mut log = Some(open(dir.path(), config.clone(), false));
        let mut expected: Vec<(i64, Vec<u8>)> = Vec::new();
        let mut next = 0i64;
        for (i, op) in ops.into_iter().enumerate() {
            match op {
                Op::Append { records, payload } => {
                    let log = log.as_mut().unwrap();
                    let mut bytes = batch(records, 1000 + i as i64, payload);
                    let info = *log.append(&mut bytes, Timestamp(1)).unwrap().info();
                    prop_assert_eq!(info.base_offset, Offset(next));
                    expected.push((next, bytes));
                    next += records as i64;
                }
                Op::Reopen { clean } => {
                    let current = log.take().unwrap();
                    if clean { current.close().unwrap() } else { drop(current) }
                    let (reopened, report) = Log::open(dir.path(), config.clone(), clean).unwrap();
                    prop_assert_eq!(report.truncated_bytes, 0);
                    log = Some(reopened);
                }
            }
            let log = log.as_ref().unwrap();
            prop_assert_eq!(log.log_end_offset(), Offset(next));
        }
        prop_assert_eq!(read_all(log.as_ref().unwrap()), expected);
    }
}

#[test]
fn offset_for_timestamp_decodes_compressed_batches_and_respects_log_start() {
    use runnel_protocol::batch::Compression;
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), LogConfig::default(), false);
    for codec in [
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ] {
        let mut b = BatchBuilder {
            compression: codec,
            ..BatchBuilder::default()
        };
        let base = log.log_end_offset().0;
        for i in 0..4 {
            b = b.value(base * 10 + i * 10, b"payload");
        }
        append(&mut log, b.build().unwrap(), 1);
    }
    // Batch k (k = 0..4) holds offsets 4k..4k+3 with timestamps 40k + 10i.
    assert_eq!(
        log.offset_for_timestamp(Timestamp(55)).unwrap(),
        Some((Offset(6), Timestamp(60)))
    );
    log.delete_records_before(Offset(7)).unwrap();
    assert_eq!(
        log.offset_for_timestamp(Timestamp(0)).unwrap(),
        Some((Offset(7), Timestamp(70)))
    );
}

/// Every read the log can answer, as (offset, max bytes, upper) -> bytes.
fn every_read(log: &Log) -> Vec<(i64, u32, i64, Vec<u8>)> {
    let end = log.log_end_offset().0;
    let mut out = Vec::new();
    for offset in log.log_start_offset().0..=end {
        for max_bytes in [1u32, 150, 700, 1 << 20] {
            for upper in [offset + 1, (offset + 7).min(end), end] {
                let slice = log
                    .read_below(Offset(offset), max_bytes, true, Offset(upper))
                    .unwrap();
                out.push((offset, max_bytes, upper, slice.read_to_vec().unwrap()));
            }
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Reads at the tail are answered from the batches the active segment
    /// remembers rather than from headers read back; they give exactly
    /// what a log reopened from its files (which remembers nothing
    /// appended) gives, after appends, failed-append rollbacks and
    /// truncations.
    #[test]
    fn tail_reads_match_reads_from_the_files(
        steps in proptest::collection::vec((1usize..4, 0usize..120, 0u8..10), 1..60)
    ) {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig {
            segment_bytes: 4000,
            index_interval_bytes: 300,
            ..LogConfig::default()
        };
        let (mut log, _) = Log::open(dir.path(), config.clone(), true).unwrap();
        for (records, payload, action) in steps {
            if action == 0 && log.log_end_offset().0 > 3 {
                let to = log.log_end_offset().0 - 3;
                log.truncate_to(Offset(to)).unwrap();
            } else {
                let mut bytes = batch(records, 1_000, payload);
                log.append(&mut bytes, Timestamp(1)).unwrap();
            }
        }
        let live = every_read(&log);
        log.close().unwrap();
        let (reopened, _) = Log::open(dir.path(), config, true).unwrap();
        let from_files = every_read(&reopened);
        prop_assert_eq!(live.len(), from_files.len());
        for (a, b) in live.iter().zip(&from_files) {
            prop_assert_eq!(a, b);
        }
    }
}
