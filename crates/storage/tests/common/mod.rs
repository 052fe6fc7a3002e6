//! Helpers shared by the fault and damage tests.
#![allow(clippy::unwrap_used, dead_code)]

use std::path::{Path, PathBuf};

use runnel_model::{Offset, Timestamp};
use runnel_protocol::batch::{split_batches, BatchBuilder};
use runnel_storage::{AppendOutcome, Log, LogConfig};

/// A batch of `records` records of `payload` bytes, timestamps from
/// `timestamp`.
pub fn batch(records: usize, timestamp: i64, payload: usize) -> Vec<u8> {
    let mut b = BatchBuilder::default();
    for i in 0..records {
        b = b.value(timestamp + i as i64, &vec![b'x'; payload]);
    }
    b.build().unwrap()
}

/// An idempotent producer's batch.
pub fn idempotent(pid: i64, epoch: i16, seq: i32, records: usize) -> Vec<u8> {
    let mut b = BatchBuilder::default().producer(pid, epoch, seq);
    for _ in 0..records {
        b = b.value(1000, b"v");
    }
    b.build().unwrap()
}

/// Appends and returns the batch as the log stored it (offsets assigned).
pub fn append(log: &mut Log, bytes: Vec<u8>) -> (i64, Vec<u8>) {
    let mut bytes = bytes;
    match log.append(&mut bytes, Timestamp(1)).unwrap() {
        AppendOutcome::Appended(info) => (info.base_offset.0, bytes),
        AppendOutcome::Duplicate(_) => panic!("unexpected duplicate"),
    }
}

/// Segments of about 1000 bytes, an index entry every 100 bytes.
pub fn small_segments() -> LogConfig {
    LogConfig {
        segment_bytes: 1000,
        index_interval_bytes: 100,
        ..LogConfig::default()
    }
}

/// Every batch from the log start, as (base offset, bytes), read one batch
/// at a time so every index lookup is exercised.
pub fn read_all(log: &Log) -> Vec<(i64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    while offset < log.log_end_offset() {
        let slice = log.read(offset, 1, true).unwrap();
        let bytes = slice.read_to_vec().unwrap();
        assert!(!bytes.is_empty(), "empty read at {offset:?}");
        for item in split_batches(&bytes) {
            let (at, header) = item.unwrap();
            assert!(header.last_offset() >= offset.0, "read went backwards");
            out.push((
                header.base_offset,
                bytes[at..at + header.total_len()].to_vec(),
            ));
            offset = Offset(header.last_offset() + 1);
        }
    }
    out
}

/// Files of `dir` with extension `ext`, sorted.
pub fn files_with_ext(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    files.sort();
    files
}

/// The base offset a segment file is named after.
pub fn base_of(path: &Path) -> i64 {
    path.file_stem().unwrap().to_str().unwrap().parse().unwrap()
}

/// `<dir>/<20-digit offset>.<ext>`.
pub fn segment_path(dir: &Path, base: i64, ext: &str) -> PathBuf {
    dir.join(format!("{base:020}.{ext}"))
}

pub fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().len()
}

/// Runs `f` and returns its result with the warnings and errors it logged
/// on this thread. A process-wide subscriber is installed once (a
/// thread-local one races with tests on other threads over tracing's
/// callsite cache); it writes each event into its own thread's buffer.
pub fn capture_logs<T>(f: impl FnOnce() -> T) -> (T, String) {
    use std::cell::RefCell;
    use std::sync::Once;

    thread_local! {
        static CAPTURED: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    }
    struct ThreadBuffer;
    impl std::io::Write for ThreadBuffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            CAPTURED.with(|c| c.borrow_mut().extend_from_slice(buf));
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let subscriber = tracing_subscriber::fmt()
            .with_writer(|| ThreadBuffer)
            .with_ansi(false)
            .with_max_level(tracing::Level::WARN)
            .finish();
        tracing::subscriber::set_global_default(subscriber).unwrap();
    });
    CAPTURED.with(|c| c.borrow_mut().clear());
    let result = f();
    let text =
        CAPTURED.with(|c| String::from_utf8_lossy(&c.borrow_mut().split_off(0)).into_owned());
    (result, text)
}
