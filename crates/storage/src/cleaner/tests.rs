//! Cleaner tests that need its internals: crashes at every step of a swap,
//! the lock released during a pass, a dedupe buffer too small for the
//! dirty keys.
#![allow(clippy::unwrap_used)]

use std::cell::Cell;
use std::collections::BTreeMap;
use std::path::Path;

use parking_lot::Mutex;
use runnel_model::{Offset, Timestamp};
use runnel_protocol::batch::{decode_stored_records, split_batches, BatchBuilder};

use super::{compact_shared, CleanerOptions};
use crate::segment_swap::CRASH_AFTER;
use crate::{AppendOutcome, CleanupPolicy, Log, LogConfig};

type Row = (i64, String, String);

fn config() -> LogConfig {
    LogConfig {
        cleanup_policy: CleanupPolicy::COMPACT,
        segment_bytes: 250,
        index_interval_bytes: 60,
        ..LogConfig::default()
    }
}

fn open(dir: &Path) -> Log {
    Log::open(dir, config(), false).unwrap().0
}

/// Appends `count` one-record batches, key `k<n % keys>`, value
/// `v<offset>`, timestamp `10_000 + offset`.
fn fill(log: &mut Log, count: usize, keys: usize) -> Vec<Row> {
    let mut rows = Vec::new();
    for _ in 0..count {
        let offset = log.log_end_offset().0;
        let key = format!("k{}", offset as usize % keys);
        let value = format!("v{offset}");
        let mut batch = BatchBuilder::default()
            .keyed(10_000 + offset, key.as_bytes(), Some(value.as_bytes()))
            .build()
            .unwrap();
        match log.append(&mut batch, Timestamp(10_000)).unwrap() {
            AppendOutcome::Appended(info) => assert_eq!(info.base_offset.0, offset),
            AppendOutcome::Duplicate(_) => panic!("duplicate"),
        }
        rows.push((offset, key, value));
    }
    rows
}

/// Every record from the log start, reading one batch at a time (so every
/// lookup goes through the offset index).
fn records(log: &Log) -> Vec<Row> {
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    while offset < log.log_end_offset() {
        let bytes = log.read(offset, 1, true).unwrap().read_to_vec().unwrap();
        assert!(!bytes.is_empty(), "empty read at {offset:?}");
        for item in split_batches(&bytes) {
            let (at, header) = item.unwrap();
            let batch = &bytes[at..at + header.total_len()];
            for r in decode_stored_records(batch, 1 << 20).unwrap() {
                let text = |b: Option<Vec<u8>>| String::from_utf8(b.unwrap()).unwrap();
                out.push((r.offset, text(r.key), text(r.value)));
            }
            offset = Offset(header.last_offset() + 1);
        }
    }
    out
}

fn expected(rows: &[Row], end: i64) -> Vec<Row> {
    let mut latest: BTreeMap<&str, i64> = BTreeMap::new();
    for (offset, key, _) in rows.iter().filter(|r| r.0 < end) {
        latest.insert(key, *offset);
    }
    rows.iter()
        .filter(|(o, k, _)| *o >= end || latest.get(k.as_str()) == Some(o))
        .cloned()
        .collect()
}

fn end_of_range(log: &Log) -> i64 {
    log.cleanable_status(Timestamp(i64::MAX))
        .unwrap()
        .first_uncleanable_offset
        .0
}

/// Builds a log whose second pass merges cleaned segments (so the swap
/// deletes segments as well as renaming), and returns it with its rows.
fn log_before_a_merging_pass(dir: &Path) -> (Log, Vec<Row>) {
    let mut log = open(dir);
    let mut rows = fill(&mut log, 40, 6);
    log.compact(Timestamp(20_000)).unwrap().unwrap();
    rows.extend(fill(&mut log, 12, 6));
    (log, rows)
}

#[test]
fn a_crash_at_every_swap_step_recovers_the_old_or_the_new_content() {
    // The content a pass that does not crash produces.
    let reference = tempfile::tempdir().unwrap();
    let (mut log, rows) = log_before_a_merging_pass(reference.path());
    let end = end_of_range(&log);
    let report = log.compact(Timestamp(20_000)).unwrap().unwrap();
    assert!(
        report.segments_cleaned > report.segments_written,
        "the pass merges segments: {report:?}"
    );
    let new = records(&log);
    assert_eq!(new, expected(&rows, end));
    drop(log);

    let mut steps = 0;
    for crash_after in 1.. {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, rows) = log_before_a_merging_pass(dir.path());
        let old = records(&log);
        CRASH_AFTER.with(|c| c.set(Some(crash_after)));
        let result = log.compact(Timestamp(20_000));
        CRASH_AFTER.with(|c| c.set(None));
        let crashed = result.is_err();
        if crashed {
            assert!(log.is_offline(), "a crash point poisons the log");
        }
        drop(log);

        let (mut log, report) = Log::open(dir.path(), config(), false).unwrap();
        let seen = records(&log);
        assert!(
            expected(&rows, end).iter().all(|r| seen.contains(r)),
            "step {crash_after}: a record compaction keeps was lost: {seen:?} ({report})"
        );
        assert!(
            seen.iter().all(|r| old.contains(r)),
            "step {crash_after}: {seen:?}"
        );
        assert!(
            old.iter().all(|r| seen.contains(r) || !new.contains(r)),
            "step {crash_after}: only records the pass removes may be missing"
        );
        if crash_after <= 3 {
            assert_eq!(seen, old, "step {crash_after}: before the commit point");
        }
        for (offset, _, _) in &seen {
            assert_eq!(
                log.offset_for_timestamp(Timestamp(10_000 + offset))
                    .unwrap()
                    .unwrap()
                    .0,
                Offset(*offset),
                "step {crash_after}: the time index of a recovered segment"
            );
        }
        let leftovers = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".cleaned") || n.ends_with(".swap"))
            .count();
        assert_eq!(leftovers, 0, "step {crash_after}");
        // The next pass converges on the same content.
        log.compact(Timestamp(20_000)).unwrap();
        assert_eq!(records(&log), new, "step {crash_after}");
        if !crashed {
            break;
        }
        steps += 1;
    }
    // Three renames to the commit, the merged segments' files, three
    // renames into place.
    assert!(steps >= 9, "only {steps} crash points");
}

#[test]
fn appends_reads_and_retention_go_on_while_a_pass_runs() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path());
    let mut rows = fill(&mut log, 40, 6);
    let end = end_of_range(&log);
    let first_segment_end = log.segments[1].base_offset();
    let log = Mutex::new(log);
    let interrupted = Cell::new(false);
    let during_pass = || {
        if !interrupted.replace(true) {
            let mut log = log.try_lock().expect("the pass holds no lock");
            let mut batch = BatchBuilder::default()
                .keyed(99_999, b"during", Some(b"pass"))
                .build()
                .unwrap();
            log.append(&mut batch, Timestamp(10_000)).unwrap();
            assert!(!log
                .read(Offset(3), 1000, true)
                .unwrap()
                .read_to_vec()
                .unwrap()
                .is_empty());
            // DeleteRecords removes the first segment under the pass.
            log.delete_records_before(Offset(first_segment_end))
                .unwrap();
        }
        false
    };
    let report = compact_shared(
        &log,
        Timestamp(20_000),
        &CleanerOptions::default(),
        &during_pass,
    )
    .unwrap()
    .unwrap();
    assert!(interrupted.get());
    assert!(report.segments_cleaned > 0);
    let log = log.into_inner();
    rows.push((40, "during".into(), "pass".into()));
    let want: Vec<Row> = expected(&rows, end)
        .into_iter()
        .filter(|r| r.0 >= first_segment_end)
        .collect();
    assert_eq!(records(&log), want);
    assert_eq!(log.log_start_offset(), Offset(first_segment_end));
    assert!(
        !dir.path().join(format!("{:020}.log", 0)).exists(),
        "the deleted segment was not brought back"
    );
}

#[test]
fn a_small_dedupe_buffer_cleans_over_several_passes() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path());
    let rows = fill(&mut log, 60, 30);
    let end = end_of_range(&log);
    let options = CleanerOptions {
        dedupe_buffer_bytes: 10 * (3 + super::pass::MAP_ENTRY_OVERHEAD),
    };
    let log = Mutex::new(log);
    let mut passes = 0;
    loop {
        let report = compact_shared(&log, Timestamp(20_000), &options, &|| false)
            .unwrap()
            .unwrap();
        passes += 1;
        assert!(report.cleaned_up_to.0 <= end);
        // Never more than the map covered is treated as superseded.
        let seen = records(&log.lock());
        assert!(expected(&rows, end).iter().all(|r| seen.contains(r)));
        if report.cleaned_up_to.0 == end {
            break;
        }
        assert!(passes < 20, "no progress");
    }
    assert!(passes > 1, "the buffer should not hold every key");
    // Each pass removed what its map superseded from everything before
    // it, so the range now holds each key once, as one big map would.
    assert_eq!(records(&log.lock()), expected(&rows, end));
}

#[test]
fn a_truncation_during_a_pass_abandons_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path());
    let rows = fill(&mut log, 40, 6);
    // Cut inside the second segment, which the pass is about to clean.
    let cut = log.segments[1].base_offset() + 1;
    let log = Mutex::new(log);
    let interrupted = Cell::new(false);
    let refilled = std::cell::RefCell::new(Vec::new());
    let during_pass = || {
        if !interrupted.replace(true) {
            let mut log = log.try_lock().expect("the pass holds no lock");
            log.truncate_to(Offset(cut)).unwrap();
            // The cut segment is refilled and rolled: closed again, same file.
            *refilled.borrow_mut() = fill(&mut log, 40, 6);
        }
        false
    };
    let report = compact_shared(
        &log,
        Timestamp(20_000),
        &CleanerOptions::default(),
        &during_pass,
    )
    .unwrap();
    assert!(interrupted.get());
    assert!(report.is_none(), "{report:?}");
    let log = log.into_inner();
    let mut want: Vec<Row> = rows.into_iter().filter(|r| r.0 < cut).collect();
    want.extend(refilled.into_inner());
    assert_eq!(records(&log), want);
    let leftovers = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| {
            let name = e.as_ref().unwrap().file_name();
            let name = name.to_string_lossy();
            name.ends_with(".cleaned") || name.ends_with(".swap")
        })
        .count();
    assert_eq!(leftovers, 0);
}
