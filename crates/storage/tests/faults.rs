//! What the log does when the disk misbehaves: failed and short writes, a
//! full disk, failed fsyncs, files that cannot be created. Every case ends
//! by checking that reads, further appends and a reopen see exactly the
//! acknowledged batches.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use proptest::prelude::*;
use runnel_model::{Offset, PartitionId, Timestamp, TopicName, TopicPartition};
use runnel_storage::fault_injection::{Fault, FaultyIo};
use runnel_storage::{BackgroundOptions, Log, LogConfig, LogError, LogManager};

fn open_faulty(dir: &Path, config: LogConfig, io: &Arc<FaultyIo>) -> Log {
    Log::open_with_io(dir, config, false, io.clone()).unwrap().0
}

/// Reopens after an unclean shutdown on a healthy disk and checks the log
/// holds exactly `acked`.
fn assert_reopens_with(dir: &Path, config: LogConfig, acked: &[(i64, Vec<u8>)]) {
    let (log, _) = Log::open(dir, config, false).unwrap();
    assert_eq!(read_all(&log), acked);
    assert_eq!(
        log.log_end_offset().0,
        acked.last().map_or(0, |(base, bytes)| {
            let header = runnel_protocol::batch::BatchHeader::parse(bytes).unwrap();
            base + i64::from(header.last_offset_delta) + 1
        })
    );
}

fn try_append(log: &mut Log, bytes: &[u8]) -> Result<(i64, Vec<u8>), LogError> {
    let mut bytes = bytes.to_vec();
    let info = log.append(&mut bytes, Timestamp(1))?;
    Ok((info.info().base_offset.0, bytes))
}

#[test]
fn failed_fsync_takes_log_offline() {
    let dir = tempfile::tempdir().unwrap();
    let io = FaultyIo::new();
    let mut log = open_faulty(dir.path(), LogConfig::default(), &io);
    let acked: Vec<_> = (0..3).map(|i| append(&mut log, batch(2, i, 10))).collect();
    io.inject(Fault::sync_data());

    let err = log.flush().unwrap_err();
    assert!(
        matches!(&err, LogError::Offline(reason) if reason.contains("fsync")),
        "{err}"
    );
    assert!(log.is_offline());
    assert!(log.offline_reason().unwrap().contains("fsync"));

    // The disk is healthy again, but the log never retries over the failure.
    io.clear();
    assert!(matches!(
        try_append(&mut log, &batch(1, 1, 1)),
        Err(LogError::Offline(_))
    ));
    assert!(matches!(
        log.read(Offset(0), 1000, true),
        Err(LogError::Offline(_))
    ));
    assert!(matches!(log.flush(), Err(LogError::Offline(_))));
    assert!(log.flush_task().is_none());
    assert_eq!(log.unflushed_messages(), 6, "nothing was marked flushed");
    drop(log);
    assert_reopens_with(dir.path(), LogConfig::default(), &acked);
}

#[test]
fn going_offline_is_logged_once_naming_the_partition() {
    let dir = tempfile::tempdir().unwrap();
    let partition_dir = dir.path().join("orders-3");
    let io = FaultyIo::new();
    let mut log = open_faulty(&partition_dir, LogConfig::default(), &io);
    append(&mut log, batch(1, 1, 1));
    io.inject(Fault::sync_data().persistent());
    let ((), logs) = capture_logs(|| {
        assert!(log.flush().is_err());
        assert!(log.flush().is_err());
        log.mark_offline("a second failure".into());
    });
    assert_eq!(logs.matches("taking log offline").count(), 1, "{logs}");
    assert!(
        logs.contains("ERROR") && logs.contains("orders-3"),
        "{logs}"
    );
    assert!(log.offline_reason().unwrap().contains("fsync"));
}

#[test]
fn flush_task_that_raced_a_failed_fsync_does_not_mark_the_log_flushed() {
    let dir = tempfile::tempdir().unwrap();
    let io = FaultyIo::new();
    let mut log = open_faulty(dir.path(), LogConfig::default(), &io);
    append(&mut log, batch(1, 1, 1));
    let task = log.flush_task().unwrap();
    io.inject(Fault::sync_data());
    assert!(log.flush().is_err());
    task.run().unwrap();
    log.mark_flushed(&task);
    assert_eq!(log.unflushed_messages(), 1);
    assert!(log.is_offline());
}

#[test]
fn background_flusher_takes_log_offline_when_fsync_fails() {
    let dir = tempfile::tempdir().unwrap();
    let io = FaultyIo::new();
    let manager = LogManager::open_with_io(dir.path(), io.clone()).unwrap();
    let tp = TopicPartition::new(TopicName::new("orders").unwrap(), PartitionId(0));
    let config = LogConfig {
        flush_messages: 1,
        ..LogConfig::default()
    };
    let log = manager.get_or_create(&tp, config).unwrap();
    io.inject(Fault::sync_data().persistent());
    append(&mut log.lock(), batch(1, 1, 1));
    let background = manager.start_background(BackgroundOptions {
        flush_check_interval_ms: 5,
        retention_check_interval_ms: 60_000,
        ..BackgroundOptions::default()
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while !log.lock().is_offline() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    background.stop();
    let log = log.lock();
    let reason = log
        .offline_reason()
        .expect("the flusher took the log offline");
    assert!(
        reason.contains("fsync") && reason.contains("orders-0"),
        "{reason}"
    );
    assert!(io.injected() >= 1);
}

#[test]
fn short_write_is_rolled_back() {
    let dir = tempfile::tempdir().unwrap();
    let io = FaultyIo::new();
    let mut log = open_faulty(dir.path(), LogConfig::default(), &io);
    let mut acked: Vec<_> = (0..3).map(|i| append(&mut log, batch(2, i, 10))).collect();
    let segment = segment_path(dir.path(), 0, "log");
    let size_before = file_len(&segment);

    io.inject(Fault::write().on(".log").short(20));
    let err = try_append(&mut log, &batch(3, 9, 10)).unwrap_err();
    assert!(matches!(err, LogError::Io(_)), "{err}");
    assert_eq!(io.injected(), 1);
    assert_eq!(
        file_len(&segment),
        size_before,
        "the torn 20 bytes are gone"
    );
    assert!(!log.is_offline());
    assert_eq!(log.log_end_offset(), Offset(6));
    assert_eq!(log.size_bytes(), size_before);
    assert_eq!(read_all(&log), acked);

    acked.push(append(&mut log, batch(1, 9, 10)));
    assert_eq!(
        acked.last().unwrap().0,
        6,
        "offsets continue where they were"
    );
    assert_eq!(read_all(&log), acked);
    drop(log);
    assert_reopens_with(dir.path(), LogConfig::default(), &acked);
}

#[test]
fn failed_index_write_rolls_back_the_batch_too() {
    let dir = tempfile::tempdir().unwrap();
    let io = FaultyIo::new();
    let config = LogConfig {
        index_interval_bytes: 1,
        ..LogConfig::default()
    };
    let mut log = open_faulty(dir.path(), config.clone(), &io);
    let mut acked: Vec<_> = (0..4).map(|i| append(&mut log, batch(1, i, 10))).collect();
    let segment = segment_path(dir.path(), 0, "log");
    let index = segment_path(dir.path(), 0, "index");
    let (log_size, index_size) = (file_len(&segment), file_len(&index));
    assert!(index_size > 0);

    io.inject(Fault::write().on(".index").short(3));
    assert!(matches!(
        try_append(&mut log, &batch(1, 9, 10)),
        Err(LogError::Io(_))
    ));
    assert_eq!(file_len(&segment), log_size);
    assert_eq!(file_len(&index), index_size);

    for i in 0..3 {
        acked.push(append(&mut log, batch(1, 10 + i, 10)));
    }
    assert_eq!(read_all(&log), acked);
    // The indexes written after the rollback are trusted by a clean open.
    log.close().unwrap();
    let (log, report) = Log::open(dir.path(), config, true).unwrap();
    assert_eq!(report.rebuilt_indexes, 0, "{report}");
    assert_eq!(read_all(&log), acked);
}

#[test]
fn enospc_keeps_log_online_and_writes_resume() {
    let dir = tempfile::tempdir().unwrap();
    let io = FaultyIo::new();
    let mut log = open_faulty(dir.path(), LogConfig::default(), &io);
    let mut acked: Vec<_> = (0..3).map(|i| append(&mut log, batch(2, i, 10))).collect();
    let segment = segment_path(dir.path(), 0, "log");
    let size_before = file_len(&segment);

    io.inject(Fault::write().on(".log").short(30).enospc().persistent());
    for _ in 0..3 {
        let err = try_append(&mut log, &batch(2, 5, 10)).unwrap_err();
        assert!(matches!(err, LogError::DiskFull(_)), "{err}");
        assert_eq!(err.error_code(), 56, "KAFKA_STORAGE_ERROR");
        assert!(!log.is_offline());
        assert_eq!(file_len(&segment), size_before);
    }
    assert_eq!(read_all(&log), acked, "reads keep working on a full disk");

    io.clear();
    acked.push(append(&mut log, batch(2, 5, 10)));
    assert_eq!(acked.last().unwrap().0, 6);
    log.flush().unwrap();
    assert_eq!(read_all(&log), acked);
    drop(log);
    assert_reopens_with(dir.path(), LogConfig::default(), &acked);
}

#[test]
fn enospc_does_not_advance_idempotent_producer_state() {
    let dir = tempfile::tempdir().unwrap();
    let io = FaultyIo::new();
    let mut log = open_faulty(dir.path(), LogConfig::default(), &io);
    append(&mut log, idempotent(7, 0, 0, 2));
    io.inject(Fault::write().on(".log").enospc());
    assert!(matches!(
        try_append(&mut log, &idempotent(7, 0, 2, 1)),
        Err(LogError::DiskFull(_))
    ));
    // The producer retries the same batch: it is new, not a duplicate.
    let mut retry = idempotent(7, 0, 2, 1);
    let outcome = log.append(&mut retry, Timestamp(1)).unwrap();
    assert!(
        matches!(outcome, runnel_storage::AppendOutcome::Appended(info) if info.base_offset == Offset(2)),
        "{outcome:?}"
    );
}

#[test]
fn enospc_during_roll_leaves_active_segment_intact() {
    for failing_file in [".log", ".index", ".timeindex"] {
        let dir = tempfile::tempdir().unwrap();
        let io = FaultyIo::new();
        let mut log = open_faulty(dir.path(), small_segments(), &io);
        let mut acked = vec![append(&mut log, batch(1, 1, 100))];
        let active_log = segment_path(dir.path(), 0, "log");

        // Append until the next append must roll, which then fails.
        io.inject(Fault::create().on(failing_file).enospc());
        let err = loop {
            let size = file_len(&active_log);
            match try_append(&mut log, &batch(1, 2, 100)) {
                Ok(stored) => acked.push(stored),
                Err(err) => {
                    assert_eq!(file_len(&active_log), size, "active segment changed");
                    break err;
                }
            }
            assert!(acked.len() < 20, "never rolled");
        };
        assert!(matches!(err, LogError::DiskFull(_)), "{err}");
        assert_eq!(io.injected(), 1);
        assert!(!log.is_offline());
        assert_eq!(log.segment_count(), 1);
        let end = log.log_end_offset().0;
        assert_eq!(end, acked.len() as i64);
        for ext in ["log", "index", "timeindex"] {
            assert!(
                !segment_path(dir.path(), end, ext).exists(),
                "half-created .{ext} left behind when {failing_file} failed"
            );
        }
        assert_eq!(read_all(&log), acked);

        // The next append retries the roll and succeeds.
        acked.push(append(&mut log, batch(1, 3, 100)));
        assert_eq!(acked.last().unwrap().0, end);
        assert_eq!(log.segment_count(), 2);
        assert!(segment_path(dir.path(), end, "log").exists());
        assert_eq!(read_all(&log), acked);
        drop(log);
        assert_reopens_with(dir.path(), small_segments(), &acked);
    }
}

#[test]
fn disk_full_writing_the_producer_snapshot_at_a_roll_does_not_fail_the_append() {
    let dir = tempfile::tempdir().unwrap();
    let io = FaultyIo::new();
    let mut log = open_faulty(dir.path(), small_segments(), &io);
    io.inject(Fault::write().on(".snapshot.tmp").short(5).enospc());
    let mut acked = Vec::new();
    for seq in 0..20 {
        acked.push(append(&mut log, idempotent(3, 0, seq, 1)));
    }
    assert!(log.segment_count() >= 2);
    assert_eq!(io.injected(), 1, "a roll wrote a snapshot");
    assert!(!log.is_offline());
    assert!(std::fs::read_dir(dir.path()).unwrap().all(|e| !e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .ends_with(".tmp")));
    assert_eq!(read_all(&log), acked);
    drop(log);
    assert_reopens_with(dir.path(), small_segments(), &acked);
}

#[test]
fn failed_rollback_takes_log_offline_and_recovery_drops_the_torn_batch() {
    let dir = tempfile::tempdir().unwrap();
    let io = FaultyIo::new();
    let mut log = open_faulty(dir.path(), LogConfig::default(), &io);
    let acked: Vec<_> = (0..3).map(|i| append(&mut log, batch(2, i, 10))).collect();
    let segment = segment_path(dir.path(), 0, "log");
    let size_before = file_len(&segment);

    io.inject(Fault::write().on(".log").short(25));
    io.inject(Fault::set_len().on(".log"));
    let err = try_append(&mut log, &batch(2, 5, 10)).unwrap_err();
    assert!(
        matches!(&err, LogError::Offline(reason) if reason.contains("rolling the write back failed")),
        "{err}"
    );
    assert!(log.is_offline());
    assert_eq!(
        file_len(&segment),
        size_before + 25,
        "the torn write is on disk"
    );
    drop(log);

    let (log, report) = Log::open(dir.path(), LogConfig::default(), false).unwrap();
    assert_eq!(report.truncated_bytes, 25, "{report}");
    assert_eq!(report.dropped_batches, 1);
    assert_eq!(read_all(&log), acked);
}

#[test]
fn disk_full_writing_the_log_start_checkpoint_leaves_the_start_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let io = FaultyIo::new();
    let mut log = open_faulty(dir.path(), LogConfig::default(), &io);
    let acked: Vec<_> = (0..3).map(|i| append(&mut log, batch(2, i, 10))).collect();
    io.inject(Fault::write().on("log-start-offset.tmp").enospc());
    assert!(matches!(
        log.delete_records_before(Offset(4)),
        Err(LogError::DiskFull(_))
    ));
    assert_eq!(log.log_start_offset(), Offset(0));
    assert!(!dir.path().join("log-start-offset.tmp").exists());
    assert_eq!(read_all(&log), acked);
    assert_eq!(log.delete_records_before(Offset(4)).unwrap(), Offset(4));
}

#[test]
fn unwritable_recovery_point_checkpoint_does_not_fail_the_flush() {
    let dir = tempfile::tempdir().unwrap();
    let io = FaultyIo::new();
    let mut log = open_faulty(dir.path(), LogConfig::default(), &io);
    append(&mut log, batch(2, 1, 10));
    io.inject(
        Fault::create()
            .on("recovery-point-offset-checkpoint.tmp")
            .enospc(),
    );
    log.flush().unwrap();
    assert_eq!(io.injected(), 1);
    assert!(!log.is_offline());
    assert_eq!(log.unflushed_messages(), 0);
}

#[test]
fn failed_directory_fsync_takes_log_offline() {
    let dir = tempfile::tempdir().unwrap();
    let io = FaultyIo::new();
    let mut log = open_faulty(dir.path(), LogConfig::default(), &io);
    append(&mut log, batch(2, 1, 10));
    io.inject(Fault::sync_dir());
    assert!(matches!(log.flush(), Err(LogError::Offline(_))));
    assert!(log.is_offline());
}

/// One step of the random fault test: append a batch of `records` records,
/// optionally with the log write failing after `torn` bytes.
#[derive(Debug, Clone)]
struct Step {
    records: usize,
    fault: Option<(usize, bool)>,
    reopen: bool,
}

fn step() -> impl Strategy<Value = Step> {
    (
        1usize..4,
        prop::option::weighted(0.3, (0usize..200, any::<bool>())),
        prop::bool::weighted(0.1),
    )
        .prop_map(|(records, fault, reopen)| Step {
            records,
            fault,
            reopen,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn random_write_failures_keep_exactly_the_acknowledged_batches(
        steps in proptest::collection::vec(step(), 1..40)
    ) {
        let dir = tempfile::tempdir().unwrap();
        let io = FaultyIo::new();
        let mut log = open_faulty(dir.path(), small_segments(), &io);
        let mut acked = Vec::new();
        for (i, step) in steps.iter().enumerate() {
            if let Some((torn, enospc)) = step.fault {
                let fault = Fault::write().on(".log").short(torn);
                io.inject(if enospc { fault.enospc() } else { fault });
            }
            let result = try_append(&mut log, &batch(step.records, i as i64, 30));
            io.clear();
            match (result, step.fault) {
                (Ok(stored), None) => acked.push(stored),
                (Err(LogError::DiskFull(_)), Some((_, true))) => {}
                (Err(LogError::Io(_)), Some((_, false))) => {}
                (other, fault) => prop_assert!(false, "{other:?} with fault {fault:?}"),
            }
            prop_assert!(!log.is_offline());
            prop_assert_eq!(read_all(&log), acked.clone());
            if step.reopen {
                drop(log);
                log = open_faulty(dir.path(), small_segments(), &io);
            }
        }
        drop(log);
        let (log, report) = Log::open(dir.path(), small_segments(), false).unwrap();
        prop_assert_eq!(report.truncated_bytes, 0);
        prop_assert_eq!(read_all(&log), acked);
    }
}
