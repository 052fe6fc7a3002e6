//! Log compaction (`cleanup.policy=compact`): what the cleaner keeps, how
//! reads, restarts, producers, retention and scheduling behave around it.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use common::{files_with_ext, read_all};
use runnel_model::{Offset, PartitionId, Timestamp, TopicName, TopicPartition};
use runnel_protocol::batch::{
    decode_stored_records, BatchBuilder, BatchHeader, Compression, RecordSpec,
};
use runnel_storage::fault_injection::{Fault, FaultyIo};
use runnel_storage::{
    AppendOutcome, CleanupPolicy, DirtyRatio, Log, LogConfig, LogError, LogManager,
};

/// A compacted log with segments of about 400 bytes.
fn compacted() -> LogConfig {
    LogConfig {
        cleanup_policy: CleanupPolicy::COMPACT,
        segment_bytes: 250,
        index_interval_bytes: 100,
        ..LogConfig::default()
    }
}

fn open(dir: &Path, config: LogConfig) -> Log {
    Log::open(dir, config, false).unwrap().0
}

/// A batch of `(key, value)` records stamped `timestamp`.
fn keyed(timestamp: i64, records: &[(&str, Option<&str>)]) -> Vec<u8> {
    let mut b = BatchBuilder::default();
    for (key, value) in records {
        b = b.keyed(timestamp, key.as_bytes(), value.map(str::as_bytes));
    }
    b.build().unwrap()
}

fn append(log: &mut Log, mut bytes: Vec<u8>, now: i64) -> i64 {
    match log.append(&mut bytes, Timestamp(now)).unwrap() {
        AppendOutcome::Appended(info) => info.base_offset.0,
        AppendOutcome::Duplicate(_) => panic!("unexpected duplicate"),
    }
}

/// One visible record: offset, key, value.
type Row = (i64, Option<String>, Option<String>);

fn text(bytes: Option<Vec<u8>>) -> Option<String> {
    bytes.map(|b| String::from_utf8(b).unwrap())
}

/// Every record a consumer reading from the log start sees.
fn records(log: &Log) -> Vec<Row> {
    read_all(log)
        .into_iter()
        .flat_map(|(_, bytes)| decode_stored_records(&bytes, 1 << 20).unwrap())
        .map(|r| (r.offset, text(r.key), text(r.value)))
        .collect()
}

/// Appends 30 updates of keys k0..k4 (value = "v<offset>") at time 1000,
/// three records a batch, then one more batch so that the last of them
/// are in a closed segment. Returns the rows written.
fn fill(log: &mut Log) -> Vec<Row> {
    let mut rows = Vec::new();
    for batch in 0..10 {
        let mut records = Vec::new();
        for i in 0..3 {
            let offset = batch * 3 + i;
            records.push((format!("k{}", offset % 5), format!("v{offset}")));
        }
        let refs: Vec<(&str, Option<&str>)> = records
            .iter()
            .map(|(k, v)| (k.as_str(), Some(v.as_str())))
            .collect();
        let base = append(log, keyed(1000, &refs), 1000);
        for (i, (k, v)) in records.into_iter().enumerate() {
            rows.push((base + i as i64, Some(k), Some(v)));
        }
    }
    rows
}

/// What compaction of `rows` below `end` must leave: the latest record of
/// each key below `end`, and everything from `end` on.
fn expected(rows: &[Row], end: i64) -> Vec<Row> {
    let mut latest: BTreeMap<&Option<String>, i64> = BTreeMap::new();
    for (offset, key, _) in rows.iter().filter(|r| r.0 < end) {
        latest.insert(key, *offset);
    }
    rows.iter()
        .filter(|(offset, key, _)| *offset >= end || latest.get(key) == Some(offset))
        .cloned()
        .collect()
}

/// The active segment's base: the end of the cleanable range once every
/// lag has passed.
fn active_base(log: &Log) -> i64 {
    log.cleanable_status(Timestamp(i64::MAX))
        .unwrap()
        .first_uncleanable_offset
        .0
}

#[test]
fn compaction_keeps_the_latest_value_of_each_key_at_its_offset() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), compacted());
    let rows = fill(&mut log);
    assert!(log.segment_count() > 3);
    let end = active_base(&log);
    assert!(end > 20, "most records are in closed segments");
    let before = log.size_bytes();

    let report = log.compact(Timestamp(2000)).unwrap().unwrap();

    assert_eq!(records(&log), expected(&rows, end));
    assert_eq!(report.cleaned_up_to, Offset(end));
    assert!(report.records_removed > 0);
    assert!(log.size_bytes() < before);
    assert_eq!(log.log_end_offset(), Offset(30));
    assert_eq!(log.log_start_offset(), Offset(0));
    // Compacting again changes nothing.
    log.compact(Timestamp(2001)).unwrap();
    assert_eq!(records(&log), expected(&rows, end));
}

#[test]
fn small_cleaned_segments_are_merged() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), compacted());
    fill(&mut log);
    let before = log.segment_count();
    // The first pass shrinks the segments, the second merges them (groups
    // are formed by the segments' current sizes, as Kafka does).
    log.compact(Timestamp(2000)).unwrap().unwrap();
    log.compact(Timestamp(2000)).unwrap().unwrap();
    assert!(
        log.segment_count() < before,
        "{} segments before, {} after",
        before,
        log.segment_count()
    );
    assert_eq!(
        files_with_ext(dir.path(), "log").len(),
        log.segment_count(),
        "one file per segment, none left over"
    );
}

#[test]
fn reads_at_a_removed_offset_return_the_next_batch() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), compacted());
    let rows = fill(&mut log);
    let end = active_base(&log);
    log.compact(Timestamp(2000)).unwrap();
    let kept: Vec<i64> = expected(&rows, end).iter().map(|r| r.0).collect();
    for offset in 0..30 {
        let slice = log.read(Offset(offset), 1, true).unwrap();
        let bytes = slice.read_to_vec().unwrap();
        let first = decode_stored_records(
            &bytes[..BatchHeader::parse(&bytes).unwrap().total_len()],
            1 << 20,
        )
        .unwrap();
        let next_kept = kept.iter().find(|&&k| k >= offset).copied();
        let first_at_or_after = first.iter().map(|r| r.offset).find(|&o| o >= offset);
        // The batch returned may be empty (kept for its end offset); then
        // the next read from its end goes on.
        if let Some(found) = first_at_or_after {
            assert_eq!(Some(found), next_kept, "read at {offset}");
        }
    }
}

#[test]
fn tombstones_are_kept_for_delete_retention_ms_then_removed() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        delete_retention_ms: 10_000,
        ..compacted()
    };
    let mut log = open(dir.path(), config);
    append(
        &mut log,
        keyed(1000, &[("a", Some("1")), ("b", Some("1"))]),
        1000,
    );
    append(&mut log, keyed(1000, &[("a", None)]), 1000);
    // Push them out of the active segment.
    for i in 0..8 {
        append(
            &mut log,
            keyed(1000, &[("filler", Some(&"x".repeat(i + 40)))]),
            1000,
        );
    }
    let tombstone = |log: &Log| records(log).into_iter().any(|r| r.0 == 2);
    let first = log.compact(Timestamp(50_000)).unwrap().unwrap();
    assert!(tombstone(&log), "the tombstone is kept at first");
    assert!(!records(&log).iter().any(|r| r.0 == 0), "a=1 is superseded");
    assert_eq!(first.tombstones_removed, 0);
    let status = log.cleanable_status(Timestamp(59_999)).unwrap();
    assert!(!status.delete_horizon_passed);

    log.compact(Timestamp(59_999)).unwrap();
    assert!(tombstone(&log), "still within delete.retention.ms");

    let status = log.cleanable_status(Timestamp(60_000)).unwrap();
    assert!(status.delete_horizon_passed);
    assert!(status.is_due(DirtyRatio::new(1.0)));
    let last = log.compact(Timestamp(60_000)).unwrap().unwrap();
    assert!(!tombstone(&log), "removed once the horizon passed");
    assert_eq!(last.tombstones_removed, 1);
    assert!(records(&log).iter().any(|r| r.1.as_deref() == Some("b")));
    let status = log.cleanable_status(Timestamp(60_000)).unwrap();
    assert!(!status.delete_horizon_passed);
}

#[test]
fn compressed_batches_keep_their_codec_headers_and_timestamps() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), compacted());
    let codecs = [
        Compression::Gzip,
        Compression::Lz4,
        Compression::Zstd,
        Compression::Snappy,
    ];
    for (i, codec) in codecs.iter().enumerate() {
        let mut b = BatchBuilder {
            compression: *codec,
            ..BatchBuilder::default()
        };
        for j in 0..3 {
            b = b.record(RecordSpec {
                timestamp: 5000 + (i * 10 + j) as i64,
                key: Some(format!("k{j}").into_bytes()),
                value: Some(format!("{codec:?}-{j}").into_bytes()),
                headers: vec![(b"h".to_vec(), Some(format!("{i}{j}").into_bytes()))],
            });
        }
        append(&mut log, b.build().unwrap(), 1000);
    }
    for i in 0..6 {
        append(
            &mut log,
            keyed(9000, &[("filler", Some(&"x".repeat(100 + i)))]),
            1000,
        );
    }
    log.compact(Timestamp(20_000)).unwrap().unwrap();
    // Only the last compressed batch keeps records (k0..k2 superseded);
    // the others are gone.
    let batches = read_all(&log);
    let survivors: Vec<_> = batches
        .iter()
        .filter(|(base, bytes)| *base < 12 && BatchHeader::parse(bytes).unwrap().records_count > 0)
        .map(|(_, bytes)| bytes)
        .collect();
    assert_eq!(survivors.len(), 1);
    let header = BatchHeader::parse(survivors[0]).unwrap();
    assert_eq!(header.compression().unwrap(), Compression::Snappy);
    let decoded = decode_stored_records(survivors[0], 1 << 20).unwrap();
    assert_eq!(decoded.len(), 3);
    for (j, record) in decoded.iter().enumerate() {
        assert_eq!(record.offset, 9 + j as i64);
        assert_eq!(record.timestamp, 5030 + j as i64);
        assert_eq!(
            record.headers,
            vec![(b"h".to_vec(), Some(format!("3{j}").into_bytes()))]
        );
    }
}

#[test]
fn idempotent_producer_state_survives_compaction_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let producer = |seq: i32, key: &str| {
        BatchBuilder::default()
            .producer(77, 0, seq)
            .keyed(1000, key.as_bytes(), Some(b"p"))
            .build()
            .unwrap()
    };
    {
        let mut log = open(dir.path(), compacted());
        append(&mut log, producer(0, "a"), 1000);
        let last = append(&mut log, producer(1, "b"), 1000);
        assert_eq!(last, 1);
        // Both of the producer's records are superseded.
        append(
            &mut log,
            keyed(1000, &[("a", Some("x")), ("b", Some("x"))]),
            1000,
        );
        for i in 0..8 {
            append(
                &mut log,
                keyed(1000, &[("filler", Some(&"x".repeat(40 + i)))]),
                1000,
            );
        }
        log.compact(Timestamp(2000)).unwrap().unwrap();
        let rows = records(&log);
        assert!(
            !rows.iter().any(|r| r.0 <= 1),
            "the producer's records are gone"
        );
        // Its last batch stays, empty, so duplicates are still recognised.
        let kept = read_all(&log)
            .into_iter()
            .map(|(_, b)| BatchHeader::parse(&b).unwrap())
            .find(|h| h.producer_id == 77)
            .unwrap();
        assert_eq!((kept.base_offset, kept.records_count), (1, 0));
        match log.append(&mut producer(1, "b"), Timestamp(3000)).unwrap() {
            AppendOutcome::Duplicate(info) => assert_eq!(info.base_offset, Offset(1)),
            other => panic!("expected a duplicate, got {other:?}"),
        }
        // Crash: no close, so the restart replays producer state.
    }
    for file in files_with_ext(dir.path(), "snapshot") {
        std::fs::remove_file(file).unwrap();
    }
    let mut log = open(dir.path(), compacted());
    match log.append(&mut producer(1, "b"), Timestamp(3000)).unwrap() {
        AppendOutcome::Duplicate(info) => assert_eq!(info.base_offset, Offset(1)),
        other => panic!("expected a duplicate after restart, got {other:?}"),
    }
    assert!(matches!(
        log.append(&mut producer(3, "c"), Timestamp(3000)),
        Err(LogError::OutOfOrderSequence { expected: 2, .. })
    ));
    append(&mut log, producer(2, "c"), 3000);
}

#[test]
fn records_newer_than_min_compaction_lag_stay() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        min_compaction_lag_ms: 5_000,
        ..compacted()
    };
    let mut log = open(dir.path(), config);
    // Old updates at t=1000, then new ones at t=9000, then an active tail.
    let mut rows = Vec::new();
    for (time, round) in [
        (1000, 0),
        (1000, 1),
        (1000, 2),
        (9000, 3),
        (9000, 4),
        (9000, 5),
    ] {
        for key in ["a", "b"] {
            let value = format!("{key}{round}");
            let base = append(
                &mut log,
                keyed(time, &[(key, Some(&value)), ("pad", Some(&"x".repeat(60)))]),
                time,
            );
            rows.push((base, Some(key.to_owned()), Some(value)));
            rows.push((base + 1, Some("pad".to_owned()), Some("x".repeat(60))));
        }
    }
    let now = Timestamp(10_000);
    let status = log.cleanable_status(now).unwrap();
    let end = status.first_uncleanable_offset.0;
    assert!(
        end > 0 && end < active_base(&log),
        "the lag cuts the range short: {status:?} {}",
        active_base(&log)
    );
    log.compact(now).unwrap().unwrap();
    assert_eq!(records(&log), expected(&rows, end));
    // Once the lag has passed, everything closed is cleaned.
    let later = Timestamp(20_000);
    assert_eq!(
        log.cleanable_status(later)
            .unwrap()
            .first_uncleanable_offset
            .0,
        active_base(&log)
    );
    log.compact(later).unwrap().unwrap();
    assert_eq!(records(&log), expected(&rows, active_base(&log)));
}

#[test]
fn the_active_segment_is_never_compacted() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), compacted());
    for _ in 0..3 {
        append(&mut log, keyed(1000, &[("a", Some("1"))]), 1000);
    }
    assert_eq!(log.segment_count(), 1);
    assert_eq!(log.compact(Timestamp(2000)).unwrap(), None);
    assert_eq!(records(&log).len(), 3);
    let rows = fill(&mut log);
    let end = active_base(&log);
    log.compact(Timestamp(2000)).unwrap();
    let tail: Vec<Row> = rows.iter().filter(|r| r.0 >= end).cloned().collect();
    let seen = records(&log);
    assert_eq!(&seen[seen.len() - tail.len()..], &tail[..]);
}

#[test]
fn restart_after_compaction_keeps_indexes_and_time_lookups_valid() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), compacted());
    let mut rows = Vec::new();
    for i in 0..30i64 {
        let key = format!("k{}", i % 4);
        let value = format!("v{i}");
        let base = append(
            &mut log,
            keyed(10_000 + i * 10, &[(&key, Some(&value))]),
            1000,
        );
        rows.push((base, Some(key), Some(value)));
    }
    let end = active_base(&log);
    log.compact(Timestamp(100_000)).unwrap().unwrap();
    let want = expected(&rows, end);
    assert_eq!(records(&log), want);
    log.close().unwrap();

    for clean in [true, false] {
        let (log, report) = Log::open(dir.path(), compacted(), clean).unwrap();
        assert_eq!(report.truncated_bytes, 0, "{report}");
        assert_eq!(records(&log), want);
        for (offset, _, _) in &want {
            let time = 10_000 + offset * 10;
            assert_eq!(
                log.offset_for_timestamp(Timestamp(time)).unwrap(),
                Some((Offset(*offset), Timestamp(time))),
                "time {time}"
            );
        }
        // A removed record's time finds the next kept one.
        let removed = (0..end).find(|o| !want.iter().any(|r| r.0 == *o)).unwrap();
        let next = want.iter().find(|r| r.0 > removed).unwrap().0;
        assert_eq!(
            log.offset_for_timestamp(Timestamp(10_000 + removed * 10))
                .unwrap()
                .unwrap()
                .0,
            Offset(next)
        );
        // The cleaner checkpoint survived too.
        assert_eq!(
            log.cleanable_status(Timestamp(100_000))
                .unwrap()
                .first_dirty_offset,
            Offset(end)
        );
        if clean {
            log.close().unwrap();
        } else {
            drop(log);
        }
        std::fs::remove_file(dir.path().join("recovery-point-offset-checkpoint")).ok();
    }
}

#[test]
fn retention_applies_only_with_the_delete_policy() {
    for (policy, deletes) in [
        (CleanupPolicy::COMPACT, false),
        (CleanupPolicy::COMPACT_DELETE, true),
        (CleanupPolicy::DELETE, true),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig {
            cleanup_policy: policy,
            retention_ms: 1000,
            ..compacted()
        };
        let mut log = open(dir.path(), config);
        fill(&mut log);
        let segments = log.segment_count();
        let deleted = log.apply_retention(Timestamp(100_000)).unwrap();
        assert_eq!(deleted > 0, deletes, "{policy:?}");
        assert_eq!(log.segment_count() < segments, deletes);
        if policy.compact {
            // Compaction still works on what is left.
            log.compact(Timestamp(100_000)).unwrap();
        }
    }
}

#[test]
fn control_batches_and_keyless_records() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), compacted());
    let marker = BatchBuilder {
        control: true,
        transactional: true,
        ..BatchBuilder::default()
    }
    .producer(5, 0, -1)
    .keyed(1000, &[0, 0, 0, 1], Some(&[0, 0, 0, 0, 0, 0]))
    .build()
    .unwrap();
    append(&mut log, marker, 1000);
    append(
        &mut log,
        BatchBuilder::default()
            .value(1000, b"no key")
            .build()
            .unwrap(),
        1000,
    );
    for i in 0..8 {
        append(
            &mut log,
            keyed(1000, &[("k", Some(&"x".repeat(40 + i)))]),
            1000,
        );
    }
    log.compact(Timestamp(2000)).unwrap().unwrap();
    let batches = read_all(&log);
    let control = BatchHeader::parse(&batches[0].1).unwrap();
    assert!(control.is_control(), "the control batch is kept whole");
    assert_eq!(control.records_count, 1);
    assert!(
        !records(&log).iter().any(|r| r.1.is_none()),
        "records without a key are removed, as Kafka's cleaner does"
    );
}

#[test]
fn an_io_error_while_cleaning_leaves_the_log_intact_and_online() {
    let faults = [
        Fault::write().on(".log.cleaned").after(2),
        Fault::create().on(".timeindex.cleaned"),
        Fault::sync_data().on(".index.cleaned"),
        Fault::rename().on(".index.cleaned"),
        Fault::rename().on(".log.cleaned"),
    ];
    for fault in faults {
        let dir = tempfile::tempdir().unwrap();
        let io = FaultyIo::new();
        let (mut log, _) =
            Log::open_with_io(dir.path(), compacted(), false, Arc::clone(&io) as _).unwrap();
        let mut rows = fill(&mut log);
        io.inject(fault.clone());
        assert!(log.compact(Timestamp(2000)).is_err(), "{fault:?}");
        assert_eq!(io.injected(), 1);
        assert!(!log.is_offline(), "{fault:?}");
        assert_eq!(records(&log), rows, "{fault:?}");
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".cleaned") || n.ends_with(".swap"))
            .collect();
        assert!(leftovers.is_empty(), "{fault:?}: {leftovers:?}");
        // Appends go on, and the next pass succeeds.
        append(&mut log, keyed(1000, &[("z", Some("z"))]), 1000);
        rows.push((30, Some("z".into()), Some("z".into())));
        log.compact(Timestamp(2000)).unwrap().unwrap();
        assert_eq!(
            records(&log),
            expected(&rows, active_base(&log)),
            "{fault:?}"
        );
    }
}

#[test]
fn a_failure_after_the_swap_commits_is_completed_at_the_next_open() {
    let dir = tempfile::tempdir().unwrap();
    let io = FaultyIo::new();
    let rows;
    let end;
    {
        let (mut log, _) =
            Log::open_with_io(dir.path(), compacted(), false, Arc::clone(&io) as _).unwrap();
        rows = fill(&mut log);
        end = active_base(&log);
        io.inject(Fault::rename().on(".log.swap"));
        assert!(log.compact(Timestamp(2000)).is_err());
        assert!(log.is_offline(), "a half-done swap takes the log offline");
    }
    let (mut log, report) = Log::open(dir.path(), compacted(), false).unwrap();
    assert_eq!(report.swaps_completed, 1, "{report}");
    // The first group is swapped in, the others are as they were: nothing
    // that compaction keeps is lost, and the next pass finishes the job.
    let want = expected(&rows, end);
    let seen = records(&log);
    assert!(want.iter().all(|r| seen.contains(r)), "{seen:?}");
    assert!(seen.iter().all(|r| rows.contains(r)));
    assert!(seen.len() < rows.len());
    log.compact(Timestamp(2000)).unwrap().unwrap();
    assert_eq!(records(&log), want);
}

#[test]
fn corrupt_data_stops_cleaning_that_log_without_failing_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), compacted());
    let rows = fill(&mut log);
    log.close().unwrap();
    // Break the records of the first batch (its header stays sane, so a
    // trusted open does not notice).
    let path = files_with_ext(dir.path(), "log")[0].clone();
    let mut bytes = std::fs::read(&path).unwrap();
    for b in &mut bytes[61..70] {
        *b = 0xff;
    }
    std::fs::write(&path, &bytes).unwrap();
    let (mut log, _) = Log::open(dir.path(), compacted(), true).unwrap();
    assert!(matches!(
        log.compact(Timestamp(2000)),
        Err(LogError::CorruptRecord(_))
    ));
    assert!(!log.is_offline());
    assert!(log.uncleanable_reason().is_some());
    assert_eq!(log.compact(Timestamp(2000)).unwrap(), None);
    assert_eq!(read_all(&log).len(), 10);
    let _ = rows;
    append(&mut log, keyed(1000, &[("z", Some("z"))]), 1000);
}

fn manager_log(
    manager: &LogManager,
    name: &str,
    config: LogConfig,
) -> (TopicPartition, Arc<parking_lot::Mutex<Log>>) {
    let tp = TopicPartition::new(TopicName::new(name).unwrap(), PartitionId(0));
    let log = manager.get_or_create(&tp, config).unwrap();
    (tp, log)
}

#[test]
fn the_cleaner_picks_logs_by_dirty_ratio_lag_and_horizon() {
    let dir = tempfile::tempdir().unwrap();
    let manager = LogManager::open(dir.path()).unwrap();
    let strict = LogConfig {
        min_cleanable_dirty_ratio: DirtyRatio::new(0.9),
        ..compacted()
    };
    let (_, plain) = manager_log(&manager, "plain", LogConfig::default());
    let (dirty_tp, dirty) = manager_log(&manager, "dirty", compacted());
    let (_, strict_log) = manager_log(&manager, "strict", strict.clone());
    fill(&mut plain.lock());
    fill(&mut dirty.lock());
    fill(&mut strict_log.lock());
    let now = Timestamp(2000);
    // Never cleaned: everything is dirty, ratio 1 >= 0.5; the strict log's
    // 0.9 is reached too, and the delete-policy log is never considered.
    assert_eq!(
        dirty.lock().cleanable_status(now).unwrap().dirty_ratio(),
        1.0
    );
    assert!(plain.lock().cleanable_status(now).is_none());
    let cleaned = manager.clean_due_logs(now);
    assert_eq!(cleaned.len(), 2);
    // Nothing new: nothing due.
    assert!(manager.clean_due_logs(now).is_empty());

    // A little more data in both: a low ratio.
    for log in [&dirty, &strict_log] {
        let mut log = log.lock();
        for i in 0..4 {
            append(
                &mut log,
                keyed(1000, &[("k0", Some(&"y".repeat(60 + i)))]),
                1000,
            );
        }
    }
    let status = dirty.lock().cleanable_status(now).unwrap();
    assert!(status.dirty_bytes > 0);
    let ratio = status.dirty_ratio();
    assert!(ratio > 0.0 && ratio < 0.9, "{ratio}");
    dirty.lock().set_config(LogConfig {
        min_cleanable_dirty_ratio: DirtyRatio::new(ratio),
        ..compacted()
    });
    let cleaned = manager.clean_due_logs(now);
    assert_eq!(
        cleaned.iter().map(|c| &c.0).collect::<Vec<_>>(),
        [&dirty_tp]
    );

    // max.compaction.lag.ms makes the strict log due whatever its ratio.
    strict_log.lock().set_config(LogConfig {
        max_compaction_lag_ms: 500,
        ..strict
    });
    let status = strict_log.lock().cleanable_status(now).unwrap();
    assert!(status.max_lag_exceeded);
    assert_eq!(manager.clean_due_logs(now).len(), 1);
}

#[test]
fn the_background_cleaner_compacts_due_logs() {
    let dir = tempfile::tempdir().unwrap();
    let manager = LogManager::open(dir.path()).unwrap();
    let (_, log) = manager_log(&manager, "topic", compacted());
    let rows = fill(&mut log.lock());
    let end = active_base(&log.lock());
    let handle = manager.start_background(runnel_storage::BackgroundOptions {
        cleaner_backoff_ms: 5,
        ..runnel_storage::BackgroundOptions::default()
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while records(&log.lock()) != expected(&rows, end) {
        assert!(
            std::time::Instant::now() < deadline,
            "the cleaner did not run"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    handle.stop();
    manager.shutdown().unwrap();
}

#[test]
fn max_compaction_lag_rolls_the_active_segment_of_a_compacted_log() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes: 1 << 20,
        max_compaction_lag_ms: 1000,
        ..compacted()
    };
    let mut log = open(dir.path(), config.clone());
    append(&mut log, keyed(1000, &[("a", Some("1"))]), 1000);
    append(&mut log, keyed(1500, &[("a", Some("2"))]), 1500);
    assert_eq!(log.segment_count(), 1);
    append(&mut log, keyed(2500, &[("a", Some("3"))]), 2500);
    assert_eq!(log.segment_count(), 2, "rolled after max.compaction.lag.ms");
    let status = log.cleanable_status(Timestamp(2500)).unwrap();
    assert!(status.max_lag_exceeded);
    // A delete-policy log with the same settings rolls by segment.ms only.
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(
        dir.path(),
        LogConfig {
            cleanup_policy: CleanupPolicy::DELETE,
            ..config
        },
    );
    append(&mut log, keyed(1000, &[("a", Some("1"))]), 1000);
    append(&mut log, keyed(2500, &[("a", Some("3"))]), 2500);
    assert_eq!(log.segment_count(), 1);
}

#[test]
fn the_manager_compacts_a_partition_on_request() {
    let dir = tempfile::tempdir().unwrap();
    let manager = LogManager::open(dir.path()).unwrap();
    let (tp, log) = manager_log(&manager, "offsets", compacted());
    let rows = fill(&mut log.lock());
    let end = active_base(&log.lock());
    let report = manager.compact(&tp, Timestamp(2000)).unwrap().unwrap();
    assert!(report.records_removed > 0);
    assert_eq!(records(&log.lock()), expected(&rows, end));
    let missing = TopicPartition::new(TopicName::new("missing").unwrap(), PartitionId(0));
    assert_eq!(manager.compact(&missing, Timestamp(2000)).unwrap(), None);
    manager.shutdown().unwrap();
    drop((log, manager));
    // A clean restart keeps the result and the cleaner checkpoint.
    let manager = LogManager::open(dir.path()).unwrap();
    assert!(manager.was_clean_shutdown());
    let (_, log) = manager_log(&manager, "offsets", compacted());
    assert_eq!(records(&log.lock()), expected(&rows, end));
    assert!(manager.clean_due_logs(Timestamp(2000)).is_empty());
}

#[test]
fn a_swap_file_without_batches_is_discarded_not_swapped_in() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), compacted());
    let rows = fill(&mut log);
    log.close().unwrap();
    std::fs::write(
        dir.path().join("00000000000000000000.log.swap"),
        b"not a batch",
    )
    .unwrap();
    std::fs::write(dir.path().join("00000000000000000000.index.swap"), b"junk").unwrap();
    let (log, report) = Log::open(dir.path(), compacted(), false).unwrap();
    assert_eq!(report.swaps_completed, 0, "{report}");
    assert_eq!(report.stray_files_deleted, 2, "{report}");
    assert_eq!(records(&log), rows);
}
