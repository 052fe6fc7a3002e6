//! Opening a log whose files were damaged: torn or garbage tails, missing
//! or corrupt indexes and checkpoints, unreadable producer snapshots, empty
//! and misnamed segments. In every case `Log::open` succeeds, keeps every
//! valid batch before the damage and says what it dropped.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::*;
use runnel_model::{Offset, Timestamp};
use runnel_protocol::batch::BatchHeader;
use runnel_storage::{AppendOutcome, Log, RecoveryReport};

/// Every file of a log directory, to restore into fresh directories.
type DirImage = BTreeMap<String, Vec<u8>>;

fn image(dir: &Path) -> DirImage {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().unwrap().is_file())
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

fn restore(image: &DirImage, dir: &Path) {
    for (name, bytes) in image {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}

fn open(dir: &Path, clean: bool) -> (Log, RecoveryReport) {
    Log::open(dir, small_segments(), clean).unwrap()
}

fn last_offset(bytes: &[u8]) -> i64 {
    BatchHeader::parse(bytes).unwrap().last_offset()
}

/// A log of three or four small segments with growing timestamps; returns
/// the batches appended.
fn build_log(dir: &Path) -> Vec<(i64, Vec<u8>)> {
    let (mut log, _) = open(dir, false);
    let batches = (0..24)
        .map(|i| append(&mut log, batch(1 + i % 3, 100 * i as i64, 40)))
        .collect();
    log.close().unwrap();
    batches
}

/// Checks that a read at every offset of `batches` starts with the batch
/// holding it, and that time lookups agree with a scan of `batches`.
fn assert_lookups_work(log: &Log, batches: &[(i64, Vec<u8>)]) {
    for (base, bytes) in batches {
        for offset in *base..=last_offset(bytes) {
            let slice = log.read(Offset(offset), 1, true).unwrap();
            let read = slice.read_to_vec().unwrap();
            assert_eq!(&read, bytes, "read at offset {offset}");
        }
    }
    for (_, bytes) in batches.iter().step_by(5) {
        let header = BatchHeader::parse(bytes).unwrap();
        let found = log
            .offset_for_timestamp(Timestamp(header.max_timestamp))
            .unwrap()
            .unwrap();
        assert_eq!(found.1 .0, header.max_timestamp);
    }
}

#[test]
fn recovery_from_cut_at_every_byte() {
    let template = tempfile::tempdir().unwrap();
    let (mut log, _) = open(template.path(), false);
    let mut acked = Vec::new();
    while log.segment_count() < 2 {
        acked.push(append(&mut log, batch(2, 1, 60)));
    }
    let active_base = acked.last().unwrap().0;
    for i in 0..3 {
        acked.push(append(&mut log, batch(1 + i, 1, 20)));
    }
    assert_eq!(log.segment_count(), 2);
    let crashed = image(template.path());
    log.close().unwrap();
    let closed = image(template.path());

    let active_name = format!("{active_base:020}.log");
    let active_len = crashed[&active_name].len();
    let in_active: Vec<_> = acked.iter().filter(|(b, _)| *b >= active_base).collect();
    let before_active = acked.len() - in_active.len();

    for (clean, files) in [(false, &crashed), (true, &closed)] {
        for cut in 0..=active_len {
            let boundary = in_active
                .iter()
                .scan(0, |end, (_, b)| {
                    *end += b.len();
                    Some(*end)
                })
                .any(|end| cut.abs_diff(end) <= 1);
            if clean && cut % 4 != 0 && !boundary && cut > 61 {
                // A cut after a clean shutdown is tampering rather than a
                // crash: a spread of cuts is enough there.
                continue;
            }
            let dir = tempfile::tempdir().unwrap();
            restore(files, dir.path());
            let path = dir.path().join(&active_name);
            std::fs::write(&path, &files[&active_name][..cut]).unwrap();

            let mut whole = 0;
            let mut valid_end = 0;
            for (_, bytes) in &in_active {
                if valid_end + bytes.len() > cut {
                    break;
                }
                valid_end += bytes.len();
                whole += 1;
            }
            let expected = acked[..before_active + whole].to_vec();
            let (mut log, report) = open(dir.path(), clean);
            let context = format!("clean {clean}, cut at {cut}: {report}");
            assert_eq!(read_all(&log), expected, "{context}");
            assert_eq!(
                report.truncated_bytes,
                (cut - valid_end) as u64,
                "{context}"
            );
            assert_eq!(
                report.dropped_batches,
                usize::from(cut > valid_end),
                "{context}"
            );
            let end = expected.last().map_or(0, |(_, b)| last_offset(b) + 1);
            assert_eq!(log.log_end_offset().0, end, "{context}");

            let mut next = batch(1, 1, 5);
            match log.append(&mut next, Timestamp(1)).unwrap() {
                AppendOutcome::Appended(info) => assert_eq!(info.base_offset.0, end),
                other => panic!("{other:?}"),
            }
            if cut % 7 != 0 && cut != valid_end {
                // Reopening after the append is slow on a busy disk; every
                // batch boundary and a spread of torn cuts is enough.
                continue;
            }
            drop(log);
            let (log, report) = open(dir.path(), false);
            assert_eq!(report.truncated_bytes, 0, "{context}");
            let mut with_next = expected.clone();
            with_next.push((end, next));
            assert_eq!(read_all(&log), with_next, "{context}");
        }
    }
}

#[test]
fn repairs_are_logged_as_warnings() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("payments-1");
    let acked = build_log(&dir);
    let last = files_with_ext(&dir, "log").pop().unwrap();
    let mut bytes = std::fs::read(&last).unwrap();
    bytes.extend_from_slice(&[0; 100]);
    std::fs::write(&last, bytes).unwrap();

    let ((log, report), logs) = capture_logs(|| open(&dir, false));
    assert_eq!(report.truncated_bytes, 100);
    assert!(logs.contains("WARN"), "{logs}");
    assert!(
        logs.contains("payments-1") && logs.contains("log recovered"),
        "{logs}"
    );
    assert!(logs.contains("truncated 100 bytes"), "{logs}");
    assert_eq!(read_all(&log), acked);
    log.close().unwrap();

    let ((_, report), logs) = capture_logs(|| open(&dir, true));
    assert!(!report.repaired_anything(), "{report}");
    assert!(logs.is_empty(), "a clean open logs nothing: {logs}");
}

#[test]
fn garbage_tails_are_truncated() {
    let template = tempfile::tempdir().unwrap();
    let acked = build_log(template.path());
    let closed = image(template.path());
    let last_log = files_with_ext(template.path(), "log").pop().unwrap();
    let name = last_log.file_name().unwrap().to_string_lossy().into_owned();
    let (_, last_batch) = acked.last().unwrap();

    let mut bad_crc = last_batch.clone();
    bad_crc[0..8].copy_from_slice(&(last_offset(last_batch) + 1).to_be_bytes());
    let at = bad_crc.len() - 1;
    bad_crc[at] ^= 0x55;
    let mut huge_length = last_batch[..61].to_vec();
    huge_length[8..12].copy_from_slice(&i32::MAX.to_be_bytes());
    let tails: [(&str, Vec<u8>); 5] = [
        ("zeros", vec![0; 4096]),
        ("garbage", vec![0xAB; 300]),
        ("a copy of the last batch", last_batch.clone()),
        ("a next batch with a bad CRC", bad_crc),
        ("a header claiming 2 GiB", huge_length),
    ];
    for clean in [false, true] {
        for (what, tail) in &tails {
            if clean && what.contains("CRC") {
                // After a clean shutdown only headers are walked, not CRCs
                // (as Kafka does): bit rot there is not a crash's damage.
                continue;
            }
            let dir = tempfile::tempdir().unwrap();
            restore(&closed, dir.path());
            let mut bytes = closed[&name].clone();
            bytes.extend_from_slice(tail);
            std::fs::write(dir.path().join(&name), bytes).unwrap();
            let (log, report) = open(dir.path(), clean);
            assert_eq!(report.truncated_bytes, tail.len() as u64, "{what}");
            assert_eq!(report.dropped_batches, 1, "{what}");
            assert_eq!(read_all(&log), acked, "{what}");
        }
    }
}

#[test]
fn missing_indexes_are_rebuilt() {
    let template = tempfile::tempdir().unwrap();
    let acked = build_log(template.path());
    let closed = image(template.path());
    let bases: Vec<i64> = files_with_ext(template.path(), "log")
        .iter()
        .map(|p| base_of(p))
        .collect();
    assert!(bases.len() >= 3);
    for ext in ["index", "timeindex"] {
        for clean in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            restore(&closed, dir.path());
            for base in &bases[..2] {
                std::fs::remove_file(segment_path(dir.path(), *base, ext)).unwrap();
            }
            let (log, report) = open(dir.path(), clean);
            assert!(report.rebuilt_indexes >= 2, "{ext}: {report}");
            assert_eq!(report.truncated_bytes, 0);
            assert_eq!(read_all(&log), acked);
            assert_lookups_work(&log, &acked);
            assert!(file_len(&segment_path(dir.path(), bases[0], ext)) > 0);
        }
    }
}

fn offset_entries(entries: &[(u32, u32)]) -> Vec<u8> {
    entries
        .iter()
        .flat_map(|(r, p)| [r.to_be_bytes(), p.to_be_bytes()].concat())
        .collect()
}

fn time_entries(entries: &[(i64, u32)]) -> Vec<u8> {
    entries
        .iter()
        .flat_map(|(t, r)| [t.to_be_bytes().to_vec(), r.to_be_bytes().to_vec()].concat())
        .collect()
}

#[test]
fn corrupt_indexes_are_rebuilt() {
    let template = tempfile::tempdir().unwrap();
    let acked = build_log(template.path());
    let closed = image(template.path());
    // The first segment's batches: (relative offset, position).
    let second = base_of(&files_with_ext(template.path(), "log")[1]);
    let mut first = Vec::new();
    let mut position = 0u32;
    for (base, bytes) in acked.iter().take_while(|(b, _)| *b < second) {
        first.push((*base as u32, position));
        position += bytes.len() as u32;
    }
    assert!(first.len() >= 3);
    let (r1, p1) = first[1];
    let (r2, p2) = first[2];
    let damage: Vec<(&str, &str, Vec<u8>)> = vec![
        (
            "index",
            "garbage",
            (0..64u8).map(|b| b.wrapping_mul(97)).collect(),
        ),
        ("index", "a partial entry", vec![0, 0, 0, 1, 0, 0, 0]),
        (
            "index",
            "entries out of order",
            offset_entries(&[(r2, p2), (r1, p1)]),
        ),
        (
            "index",
            "an entry pointing mid-batch",
            offset_entries(&[(r1, p1 + 7)]),
        ),
        (
            "index",
            "an entry naming the wrong offset",
            offset_entries(&[(r1, p2)]),
        ),
        (
            "index",
            "a position past the log",
            offset_entries(&[(r1, 1 << 30)]),
        ),
        ("timeindex", "a partial entry", vec![1; 13]),
        (
            "timeindex",
            "entries out of order",
            time_entries(&[(500, 2), (400, 1)]),
        ),
        (
            "timeindex",
            "an offset past the segment",
            time_entries(&[(500, 1 << 20)]),
        ),
    ];
    for (ext, what, bytes) in damage {
        let dir = tempfile::tempdir().unwrap();
        restore(&closed, dir.path());
        std::fs::write(segment_path(dir.path(), 0, ext), bytes).unwrap();
        let (log, report) = open(dir.path(), true);
        assert_eq!(report.rebuilt_indexes, 1, "{ext} with {what}: {report}");
        assert_eq!(report.truncated_bytes, 0, "{ext} with {what}");
        assert_eq!(read_all(&log), acked, "{ext} with {what}");
        assert_lookups_work(&log, &acked);
    }
}

#[test]
fn deleted_log_start_offset_checkpoint_falls_back_to_the_first_segment() {
    let dir = tempfile::tempdir().unwrap();
    let acked = build_log(dir.path());
    let (mut log, _) = open(dir.path(), true);
    log.delete_records_before(Offset(2)).unwrap();
    log.close().unwrap();
    std::fs::remove_file(dir.path().join("log-start-offset")).unwrap();
    for clean in [true, false] {
        let (log, _) = open(dir.path(), clean);
        // The start is lost, not the data: the first segment is whole.
        assert_eq!(log.log_start_offset(), Offset(0));
        assert_eq!(read_all(&log), acked);
        log.close().unwrap();
    }
}

#[test]
fn deleted_recovery_point_checkpoint_forces_full_validation() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = open(dir.path(), false);
    let acked: Vec<_> = (0..24).map(|i| append(&mut log, batch(1, i, 40))).collect();
    log.flush().unwrap();
    drop(log);
    assert!(dir.path().join("recovery-point-offset-checkpoint").exists());
    // Damage a flushed segment: trusted while the checkpoint covers it.
    let first = segment_path(dir.path(), 0, "log");
    let mut bytes = std::fs::read(&first).unwrap();
    let len = bytes.len();
    bytes[len - 1] ^= 0xFF;
    std::fs::write(&first, bytes).unwrap();
    let with_checkpoint = image(dir.path());

    let (log, report) = open(dir.path(), false);
    assert_eq!(report.truncated_bytes, 0, "{report}");
    assert_eq!(report.recovered_segments, 1, "only the active segment");
    drop(log);

    restore(&with_checkpoint, dir.path());
    std::fs::remove_file(dir.path().join("recovery-point-offset-checkpoint")).unwrap();
    let (log, report) = open(dir.path(), false);
    assert_eq!(report.dropped_batches, 1, "{report}");
    assert!(report.dropped_segments >= 1, "{report}");
    let end = log.log_end_offset().0;
    assert!(end < 24);
    assert_eq!(read_all(&log), acked[..end as usize].to_vec());
}

#[test]
fn corrupt_producer_snapshot_is_discarded_and_state_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = open(dir.path(), false);
    for seq in 0..12 {
        append(&mut log, idempotent(9, 0, seq * 2, 2));
    }
    log.close().unwrap();
    let snapshots = files_with_ext(dir.path(), "snapshot");
    let newest = snapshots.last().unwrap();
    assert_eq!(base_of(newest), 24);
    let mut bytes = std::fs::read(newest).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x01;
    std::fs::write(newest, bytes).unwrap();

    let (mut log, report) = open(dir.path(), true);
    assert_eq!(report.snapshots_discarded, 1, "{report}");
    assert!(report.producer_batches_replayed > 0, "{report}");
    assert!(!newest.exists());
    // The last batch resent is still recognised as a duplicate.
    let mut resent = idempotent(9, 0, 22, 2);
    match log.append(&mut resent, Timestamp(1)).unwrap() {
        AppendOutcome::Duplicate(info) => assert_eq!(info.base_offset, Offset(22)),
        other => panic!("{other:?}"),
    }
    let mut next = idempotent(9, 0, 24, 1);
    assert!(matches!(
        log.append(&mut next, Timestamp(1)).unwrap(),
        AppendOutcome::Appended(_)
    ));
}

#[test]
fn empty_segment_file_before_the_last_is_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let acked = build_log(dir.path());
    let logs = files_with_ext(dir.path(), "log");
    assert!(logs.len() >= 3);
    let emptied = base_of(&logs[1]);
    let next = base_of(&logs[2]);
    std::fs::write(&logs[1], b"").unwrap();

    let (log, report) = open(dir.path(), false);
    assert_eq!(report.empty_segments_deleted, 1, "{report}");
    assert!(!logs[1].exists());
    assert!(!segment_path(dir.path(), emptied, "index").exists());
    let kept: Vec<_> = acked
        .iter()
        .filter(|(base, _)| *base < emptied || *base >= next)
        .cloned()
        .collect();
    assert_eq!(read_all(&log), kept);
    assert_eq!(log.segment_count(), logs.len() - 1);
}

#[test]
fn empty_active_segment_after_a_roll_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let acked = build_log(dir.path());
    let end = last_offset(&acked.last().unwrap().1) + 1;
    std::fs::write(segment_path(dir.path(), end, "log"), b"").unwrap();
    let (mut log, report) = open(dir.path(), false);
    assert_eq!(report.empty_segments_deleted, 0, "{report}");
    assert_eq!(log.log_end_offset().0, end);
    assert_eq!(read_all(&log), acked);
    let (base, _) = append(&mut log, batch(1, 1, 1));
    assert_eq!(base, end);
    assert!(file_len(&segment_path(dir.path(), end, "log")) > 0);
}

#[test]
fn segment_named_above_its_first_batch_is_renamed() {
    let dir = tempfile::tempdir().unwrap();
    let acked = build_log(dir.path());
    let logs = files_with_ext(dir.path(), "log");
    let base = base_of(&logs[1]);
    let wrong = base + 2;
    assert!(wrong < base_of(&logs[2]));
    std::fs::rename(&logs[1], segment_path(dir.path(), wrong, "log")).unwrap();
    for ext in ["index", "timeindex"] {
        std::fs::remove_file(segment_path(dir.path(), base, ext)).unwrap();
    }

    let (mut log, report) = open(dir.path(), true);
    assert_eq!(report.renamed_segments, 1, "{report}");
    assert_eq!(report.truncated_bytes, 0, "{report}");
    assert!(logs[1].exists());
    assert!(!segment_path(dir.path(), wrong, "log").exists());
    assert_eq!(read_all(&log), acked);
    assert_lookups_work(&log, &acked);
    let end = log.log_end_offset().0;
    assert_eq!(append(&mut log, batch(1, 1, 1)).0, end);
}

#[test]
fn segment_named_below_the_previous_end_is_renamed() {
    let dir = tempfile::tempdir().unwrap();
    let acked = build_log(dir.path());
    let logs = files_with_ext(dir.path(), "log");
    let base = base_of(&logs[1]);
    assert!(base > 1);
    let wrong = base - 1;
    std::fs::rename(&logs[1], segment_path(dir.path(), wrong, "log")).unwrap();
    for ext in ["index", "timeindex"] {
        std::fs::rename(
            segment_path(dir.path(), base, ext),
            segment_path(dir.path(), wrong, ext),
        )
        .unwrap();
    }

    let (log, report) = open(dir.path(), false);
    assert_eq!(report.renamed_segments, 1, "{report}");
    assert_eq!(report.dropped_segments, 0, "{report}");
    assert!(logs[1].exists());
    assert_eq!(read_all(&log), acked);
    assert_lookups_work(&log, &acked);
}

#[test]
fn segment_overlapping_the_previous_one_is_dropped_with_those_after() {
    let dir = tempfile::tempdir().unwrap();
    let acked = build_log(dir.path());
    let logs = files_with_ext(dir.path(), "log");
    let base = base_of(&logs[1]);
    // A copy of the first segment under a later name overlaps it.
    std::fs::copy(&logs[0], segment_path(dir.path(), base - 1, "log")).unwrap();
    let (log, report) = open(dir.path(), false);
    assert_eq!(report.renamed_segments, 0, "{report}");
    assert_eq!(report.dropped_segments, logs.len(), "{report}");
    let kept: Vec<_> = acked.iter().filter(|(b, _)| *b < base).cloned().collect();
    assert_eq!(read_all(&log), kept);
}
