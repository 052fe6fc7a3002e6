//! Behaviour of the LogManager: locking, clean-shutdown marker, partition
//! directories and the background flusher.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use runnel_model::{Offset, PartitionId, Timestamp, TopicName, TopicPartition};
use runnel_protocol::batch::BatchBuilder;
use runnel_storage::{BackgroundOptions, LogConfig, LogError, LogManager};

fn tp(topic: &str, partition: i32) -> TopicPartition {
    TopicPartition::new(TopicName::new(topic).unwrap(), PartitionId(partition))
}

fn batch() -> Vec<u8> {
    BatchBuilder::default().value(1, b"value").build().unwrap()
}

#[test]
fn second_manager_on_a_locked_dir_fails() {
    let dir = tempfile::tempdir().unwrap();
    let first = LogManager::open(dir.path()).unwrap();
    assert!(matches!(
        LogManager::open(dir.path()),
        Err(LogError::DirectoryLocked(_))
    ));
    drop(first);
    LogManager::open(dir.path()).unwrap();
}

#[test]
fn clean_shutdown_marker_is_written_and_consumed() {
    let dir = tempfile::tempdir().unwrap();
    let manager = LogManager::open(dir.path()).unwrap();
    assert!(!manager.was_clean_shutdown());
    let log = manager
        .get_or_create(&tp("orders", 0), LogConfig::default())
        .unwrap();
    log.lock().append(&mut batch(), Timestamp(1)).unwrap();
    manager.shutdown().unwrap();
    drop(manager);

    let manager = LogManager::open(dir.path()).unwrap();
    assert!(manager.was_clean_shutdown());
    assert_eq!(manager.existing_partitions(), vec![tp("orders", 0)]);
    let log = manager
        .get_or_create(&tp("orders", 0), LogConfig::default())
        .unwrap();
    assert_eq!(log.lock().log_end_offset(), Offset(1));
    drop(manager);

    // The marker was consumed: a crash now is an unclean shutdown.
    let manager = LogManager::open(dir.path()).unwrap();
    assert!(!manager.was_clean_shutdown());
}

#[test]
fn existing_partitions_skips_junk_and_removes_deleted_dirs() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["a-0", "my.topic-12", "junk", "bad-x", "gone-3.123-delete"] {
        std::fs::create_dir(dir.path().join(name)).unwrap();
    }
    std::fs::write(dir.path().join("file-1"), b"").unwrap();
    let manager = LogManager::open(dir.path()).unwrap();
    assert_eq!(
        manager.existing_partitions(),
        vec![tp("a", 0), tp("my.topic", 12)]
    );
    assert!(!dir.path().join("gone-3.123-delete").exists());
}

#[test]
fn delete_removes_the_partition_and_takes_its_log_offline() {
    let dir = tempfile::tempdir().unwrap();
    let manager = LogManager::open(dir.path()).unwrap();
    let log = manager
        .get_or_create(&tp("t", 1), LogConfig::default())
        .unwrap();
    log.lock().append(&mut batch(), Timestamp(1)).unwrap();
    manager.delete(&tp("t", 1)).unwrap();
    assert!(manager.get(&tp("t", 1)).is_none());
    assert!(manager.existing_partitions().is_empty());
    assert!(log.lock().is_offline());
    let fresh = manager
        .get_or_create(&tp("t", 1), LogConfig::default())
        .unwrap();
    assert_eq!(fresh.lock().log_end_offset(), Offset(0));
}

#[test]
fn background_thread_flushes_by_flush_messages() {
    let dir = tempfile::tempdir().unwrap();
    let manager = LogManager::open(dir.path()).unwrap();
    let config = LogConfig {
        flush_messages: 2,
        ..LogConfig::default()
    };
    let log = manager.get_or_create(&tp("t", 0), config).unwrap();
    let handle = manager.start_background(BackgroundOptions {
        flush_check_interval_ms: 5,
        retention_check_interval_ms: 60_000,
        ..BackgroundOptions::default()
    });
    log.lock().append(&mut batch(), Timestamp(1)).unwrap();
    log.lock().append(&mut batch(), Timestamp(1)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while log.lock().unflushed_messages() > 0 {
        assert!(Instant::now() < deadline, "background flush did not happen");
        std::thread::sleep(Duration::from_millis(5));
    }
    handle.stop();
    manager.shutdown().unwrap();
}

#[test]
fn background_thread_applies_retention() {
    let dir = tempfile::tempdir().unwrap();
    let manager = LogManager::open(dir.path()).unwrap();
    let config = LogConfig {
        retention_ms: 1,
        ..LogConfig::default()
    };
    let log = manager.get_or_create(&tp("t", 0), config).unwrap();
    log.lock().append(&mut batch(), Timestamp(1)).unwrap();
    let _handle = manager.start_background(BackgroundOptions {
        flush_check_interval_ms: 1000,
        retention_check_interval_ms: 5,
        ..BackgroundOptions::default()
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while log.lock().log_start_offset() < Offset(1) {
        assert!(Instant::now() < deadline, "retention did not happen");
        std::thread::sleep(Duration::from_millis(5));
    }
    manager.shutdown().unwrap();
}
