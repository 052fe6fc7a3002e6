//! One segment of a partition log: the `.log` file of batches plus its
//! offset and time indexes, and the scan that validates and re-indexes it.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use runnel_protocol::batch::{BatchHeader, BATCH_HEADER_LEN, MIN_BATCH_LENGTH};

use crate::offset_index::{OffsetIndex, OFFSET_ENTRY_LEN};
use crate::storage_io::StorageIo;
use crate::time_index::{TimeIndex, TIME_ENTRY_LEN};
use crate::LogConfig;

/// Extension of segment data files.
pub(crate) const LOG_SUFFIX: &str = "log";
/// Extension of offset index files.
pub(crate) const INDEX_SUFFIX: &str = "index";
/// Extension of time index files.
pub(crate) const TIME_INDEX_SUFFIX: &str = "timeindex";

/// `<dir>/<20-digit offset>.<suffix>`.
pub(crate) fn offset_file(dir: &Path, offset: i64, suffix: &str) -> PathBuf {
    dir.join(format!("{offset:020}.{suffix}"))
}

/// How the scan of a segment ended.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct ScanOutcome {
    /// Bytes cut from the end of the file (torn tail or garbage).
    pub(crate) truncated_bytes: u64,
    /// Whether the indexes were rebuilt.
    pub(crate) rebuilt_index: bool,
}

/// How thoroughly to check a segment when opening it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OpenMode {
    /// Trust the indexes; walk only the batch headers after the last index
    /// entry (falling back to a full recovery if they do not parse).
    Trusted,
    /// Validate every batch (length, magic, CRC, offsets), truncate at the
    /// first bad byte and rebuild the indexes.
    Recover,
}

/// A segment's end and in-memory state at one moment ([`Segment::mark`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SegmentMark {
    size: u64,
    index_entries: usize,
    time_index_entries: usize,
    next_offset: i64,
    max_timestamp: i64,
    offset_of_max_timestamp: i64,
    bytes_since_last_index: u64,
    rolling_timestamp: Option<i64>,
}

#[derive(Debug)]
pub(crate) struct Segment {
    base_offset: i64,
    log_path: PathBuf,
    log: Arc<File>,
    io: Arc<dyn StorageIo>,
    size: u64,
    index: OffsetIndex,
    time_index: TimeIndex,
    next_offset: i64,
    max_timestamp: i64,
    offset_of_max_timestamp: i64,
    bytes_since_last_index: u64,
    rolling_timestamp: Option<i64>,
    created_ms: i64,
    /// The last batches written, contiguous and in order, so that reads at
    /// the tail — followers and consumers keeping up, the high-watermark
    /// bound — find their batch without reading headers from the file.
    /// Cleared when the segment is sealed.
    recent: VecDeque<(u64, BatchHeader)>,
}

/// How many of the last batches of the active segment [`Segment`] keeps.
const RECENT_BATCHES: usize = 128;

impl Segment {
    /// Creates an empty segment starting at `base_offset` (files
    /// truncated). If any of its three files cannot be created, those
    /// already created are removed again, so a failed roll leaves no half
    /// segment behind.
    pub(crate) fn create(
        dir: &Path,
        base_offset: i64,
        now_ms: i64,
        io: Arc<dyn StorageIo>,
    ) -> io::Result<Segment> {
        Segment::create_with_suffix(dir, base_offset, "", now_ms, io)
    }

    /// [`Segment::create`] with `temp_suffix` appended to the three file
    /// names (`.cleaned` for the cleaner's output).
    pub(crate) fn create_with_suffix(
        dir: &Path,
        base_offset: i64,
        temp_suffix: &str,
        now_ms: i64,
        io: Arc<dyn StorageIo>,
    ) -> io::Result<Segment> {
        let path = |suffix: &str| {
            let mut name = offset_file(dir, base_offset, suffix).into_os_string();
            name.push(temp_suffix);
            PathBuf::from(name)
        };
        let log_path = path(LOG_SUFFIX);
        let files = io.create(&log_path).and_then(|log| {
            let index = OffsetIndex::create(&path(INDEX_SUFFIX), Arc::clone(&io))?;
            let time_index = TimeIndex::create(&path(TIME_INDEX_SUFFIX), Arc::clone(&io))?;
            Ok((log, index, time_index))
        });
        let (log, index, time_index) = match files {
            Ok(files) => files,
            Err(err) => {
                for suffix in [LOG_SUFFIX, INDEX_SUFFIX, TIME_INDEX_SUFFIX] {
                    // Best effort: an empty leftover is harmless (the next
                    // roll truncates it; recovery keeps it as an empty
                    // active segment or deletes it).
                    let _ = std::fs::remove_file(path(suffix));
                }
                return Err(err);
            }
        };
        Ok(Segment {
            base_offset,
            log_path,
            log: Arc::new(log),
            io,
            size: 0,
            index,
            time_index,
            next_offset: base_offset,
            max_timestamp: -1,
            offset_of_max_timestamp: base_offset,
            bytes_since_last_index: 0,
            rolling_timestamp: None,
            created_ms: now_ms,
            recent: VecDeque::new(),
        })
    }

    /// Opens an existing segment. With [`OpenMode::Recover`], or when the
    /// indexes are missing or inconsistent, validates every batch, truncates
    /// at the first bad byte and rebuilds the indexes.
    pub(crate) fn open(
        dir: &Path,
        base_offset: i64,
        mode: OpenMode,
        config: &LogConfig,
        now_ms: i64,
        io: Arc<dyn StorageIo>,
    ) -> io::Result<(Segment, ScanOutcome)> {
        let log_path = offset_file(dir, base_offset, LOG_SUFFIX);
        let log = OpenOptions::new().read(true).write(true).open(&log_path)?;
        let size = log.metadata()?.len();
        let (index, index_sane) = OffsetIndex::open(
            &offset_file(dir, base_offset, INDEX_SUFFIX),
            size,
            Arc::clone(&io),
        )?;
        let (time_index, time_sane) = TimeIndex::open(
            &offset_file(dir, base_offset, TIME_INDEX_SUFFIX),
            u64::MAX,
            Arc::clone(&io),
        )?;
        let mut segment = Segment {
            base_offset,
            log_path,
            log: Arc::new(log),
            io,
            size,
            index,
            time_index,
            next_offset: base_offset,
            max_timestamp: -1,
            offset_of_max_timestamp: base_offset,
            bytes_since_last_index: 0,
            rolling_timestamp: None,
            created_ms: now_ms,
            recent: VecDeque::new(),
        };
        let trusted = mode == OpenMode::Trusted && index_sane && time_sane;
        if trusted && segment.load_trusted(config)? {
            return Ok((segment, ScanOutcome::default()));
        }
        let outcome = segment.recover(config)?;
        Ok((segment, outcome))
    }

    /// Restores the in-memory state from trusted indexes plus a header walk
    /// of the tail. Returns false if anything looked wrong.
    fn load_trusted(&mut self, config: &LogConfig) -> io::Result<bool> {
        self.recent.clear();
        let (start_relative, start_position) = self.index.last().unwrap_or((0, 0));
        if let Some((timestamp, relative)) = self.time_index.last() {
            self.max_timestamp = timestamp;
            self.offset_of_max_timestamp = self.base_offset + i64::from(relative);
        }
        self.next_offset = self.base_offset + i64::from(start_relative);
        if self.index.last().is_some() {
            // The last entry must point at the start of the batch it names;
            // the walk below checks everything after it.
            match self.check_batch_at(u64::from(start_position), false)? {
                Some(header) if header.base_offset == self.next_offset => {}
                _ => return Ok(false),
            }
        }
        let end = self.walk(u64::from(start_position), false, config, false)?;
        if end != self.size {
            return Ok(false);
        }
        let time_ok = self
            .time_index
            .last()
            .is_none_or(|(_, r)| self.base_offset + i64::from(r) < self.next_offset);
        if !time_ok {
            return Ok(false);
        }
        if self.size > 0 {
            let first = self.read_header(0)?;
            self.rolling_timestamp = Some(first.max_timestamp);
        }
        Ok(true)
    }

    /// Validates every batch from the start, truncates at the first bad one
    /// and rebuilds both indexes.
    pub(crate) fn recover(&mut self, config: &LogConfig) -> io::Result<ScanOutcome> {
        self.recent.clear();
        self.index.reset()?;
        self.time_index.reset()?;
        self.next_offset = self.base_offset;
        self.max_timestamp = -1;
        self.offset_of_max_timestamp = self.base_offset;
        self.bytes_since_last_index = 0;
        self.rolling_timestamp = None;
        let valid_end = self.walk(0, true, config, true)?;
        let truncated_bytes = self.size - valid_end;
        if truncated_bytes > 0 {
            self.io.set_len(&self.log, valid_end)?;
            self.size = valid_end;
        }
        Ok(ScanOutcome {
            truncated_bytes,
            rebuilt_index: true,
        })
    }

    /// Walks batches from `position` to the end of the file, registering
    /// each (and indexing when `write_index`). Returns the position of the
    /// first byte that is not part of a good batch (the file size if all
    /// are good).
    fn walk(
        &mut self,
        mut position: u64,
        check_crc: bool,
        config: &LogConfig,
        write_index: bool,
    ) -> io::Result<u64> {
        while position < self.size {
            let Some(header) = self.check_batch_at(position, check_crc)? else {
                break;
            };
            self.register_batch(position, &header, config, write_index)?;
            position += header.total_len() as u64;
        }
        Ok(position.min(self.size))
    }

    /// Reads and checks the batch at `position`: whole, magic 2, sane
    /// length, offsets after the previous batch and within u32 of the base,
    /// and (if asked) the CRC. `None` if it is not a good batch.
    fn check_batch_at(&self, position: u64, check_crc: bool) -> io::Result<Option<BatchHeader>> {
        if self.size.saturating_sub(position) < BATCH_HEADER_LEN as u64 {
            return Ok(None);
        }
        let header = self.read_header(position)?;
        let total = header.total_len() as u64;
        let sane = header.magic == 2
            && header.batch_length >= MIN_BATCH_LENGTH
            && total <= self.size - position
            && header.base_offset >= self.next_offset
            && header.last_offset_delta >= 0
            && header.last_offset() - self.base_offset <= i64::from(i32::MAX);
        if !sane {
            return Ok(None);
        }
        if check_crc {
            let mut crc = 0u32;
            let mut at = position + 21;
            let end = position + total;
            let mut chunk = vec![0u8; 64 * 1024];
            while at < end {
                let n = ((end - at) as usize).min(chunk.len());
                self.log.read_exact_at(&mut chunk[..n], at)?;
                crc = crc32c::crc32c_append(crc, &chunk[..n]);
                at += n as u64;
            }
            if crc != header.crc {
                return Ok(None);
            }
        }
        Ok(Some(header))
    }

    /// Updates the in-memory state for a batch written at `position`, and
    /// adds index entries every `index.interval.bytes`.
    fn register_batch(
        &mut self,
        position: u64,
        header: &BatchHeader,
        config: &LogConfig,
        write_index: bool,
    ) -> io::Result<()> {
        if self.rolling_timestamp.is_none() && position == 0 {
            self.rolling_timestamp = Some(header.max_timestamp);
        }
        if header.max_timestamp > self.max_timestamp {
            self.max_timestamp = header.max_timestamp;
            self.offset_of_max_timestamp = header.last_offset();
        }
        if write_index && self.bytes_since_last_index > u64::from(config.index_interval_bytes) {
            let relative = self.relative(header.base_offset);
            self.index.append(relative, position as u32)?;
            let max_relative = self.relative(self.offset_of_max_timestamp);
            self.time_index
                .maybe_append(self.max_timestamp, max_relative)?;
            self.bytes_since_last_index = 0;
        }
        self.bytes_since_last_index += header.total_len() as u64;
        self.next_offset = header.last_offset() + 1;
        let contiguous = self
            .recent
            .back()
            .is_none_or(|(at, last)| at + last.total_len() as u64 == position);
        if !contiguous {
            self.recent.clear();
        }
        self.recent.push_back((position, *header));
        if self.recent.len() > RECENT_BATCHES {
            self.recent.pop_front();
        }
        Ok(())
    }

    /// The first recent batch whose last offset is at least `offset`, if
    /// the recent batches cover it (every batch before the first recent one
    /// ends below it).
    fn recent_batch(&self, offset: i64) -> Option<(u64, BatchHeader)> {
        let (_, first) = self.recent.front()?;
        if offset < first.base_offset {
            return None;
        }
        let at = self
            .recent
            .partition_point(|(_, h)| h.last_offset() < offset);
        self.recent.get(at).copied()
    }

    fn relative(&self, offset: i64) -> u32 {
        debug_assert!(offset >= self.base_offset);
        u32::try_from(offset - self.base_offset).unwrap_or(u32::MAX)
    }

    /// Writes `buf` (whole batches whose headers are `batches`, with their
    /// offsets assigned) at the end of the segment and indexes them. On
    /// error part of it may be on disk and in memory: undo with
    /// [`Segment::roll_back`] to a [`Segment::mark`] taken before.
    pub(crate) fn append(
        &mut self,
        buf: &[u8],
        batches: &[(usize, BatchHeader)],
        config: &LogConfig,
    ) -> io::Result<()> {
        self.io.write_all_at(&self.log, buf, self.size)?;
        let start = self.size;
        self.size += buf.len() as u64;
        for (at, header) in batches {
            self.register_batch(start + *at as u64, header, config, true)?;
        }
        Ok(())
    }

    /// The segment's current end, to return to if a write fails.
    pub(crate) fn mark(&self) -> SegmentMark {
        SegmentMark {
            size: self.size,
            index_entries: self.index.entry_count(),
            time_index_entries: self.time_index.entry_count(),
            next_offset: self.next_offset,
            max_timestamp: self.max_timestamp,
            offset_of_max_timestamp: self.offset_of_max_timestamp,
            bytes_since_last_index: self.bytes_since_last_index,
            rolling_timestamp: self.rolling_timestamp,
        }
    }

    /// Cuts the `.log` file and both indexes back to `mark` and restores
    /// the in-memory state, removing whatever a failed write left (a torn
    /// batch, index entries for it). An error here means the files may
    /// still hold part of the write: the caller must take the log offline.
    pub(crate) fn roll_back(&mut self, mark: &SegmentMark) -> io::Result<()> {
        debug_assert!(mark.size <= self.size);
        self.recent.retain(|(at, _)| *at < mark.size);
        self.size = mark.size;
        self.next_offset = mark.next_offset;
        self.max_timestamp = mark.max_timestamp;
        self.offset_of_max_timestamp = mark.offset_of_max_timestamp;
        self.bytes_since_last_index = mark.bytes_since_last_index;
        self.rolling_timestamp = mark.rolling_timestamp;
        self.index.truncate_entries(mark.index_entries)?;
        self.time_index.truncate_entries(mark.time_index_entries)?;
        self.io.set_len(&self.log, mark.size)
    }

    /// Cuts the segment at `position`, the start of a batch (or the end of
    /// the last one kept): the `.log` file, the offset-index entries at or
    /// past it and the time-index entries for the offsets cut, then
    /// restores the in-memory state from the index entries left and a walk
    /// of the headers after them (the max timestamp is the last time-index
    /// entry's, raised by the batches after it). The files are not
    /// fsynced. An error may leave the files part cut: the caller must take
    /// the log offline.
    ///
    /// ```text
    /// batches at 0 [100..104], 80 [105..109], 160 [110..112]
    /// truncate_to_position(80) -> size 80, next_offset 105
    /// ```
    pub(crate) fn truncate_to_position(&mut self, position: u64) -> io::Result<()> {
        debug_assert!(position <= self.size);
        self.recent.retain(|(at, _)| *at < position);
        self.index
            .truncate_entries(self.index.entries_below_position(position))?;
        self.io.set_len(&self.log, position)?;
        self.size = position;
        let walk_from = self.index.last().map_or(0, |(_, p)| u64::from(p));
        let mut next_offset = self.base_offset;
        let mut at = walk_from;
        while at < position {
            let header = self.read_header(at)?;
            let end = at + header.total_len() as u64;
            if end < at + BATCH_HEADER_LEN as u64 || end > position {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("batch at position {at} does not end inside the cut segment of {position} bytes"),
                ));
            }
            next_offset = header.last_offset().saturating_add(1);
            at = end;
        }
        self.next_offset = next_offset;
        let cut_relative = u64::try_from(next_offset.saturating_sub(self.base_offset)).unwrap_or(0);
        self.time_index
            .truncate_entries(self.time_index.entries_below_relative(cut_relative))?;
        self.bytes_since_last_index = position - walk_from;
        if position == 0 {
            self.rolling_timestamp = None;
        }
        self.restore_max_timestamp()
    }

    /// Sets the max timestamp and its offset from the last time-index entry
    /// and the headers after the batch it names.
    fn restore_max_timestamp(&mut self) -> io::Result<()> {
        let mut position = 0;
        self.max_timestamp = -1;
        self.offset_of_max_timestamp = self.base_offset;
        if let Some((timestamp, relative)) = self.time_index.last() {
            self.max_timestamp = timestamp;
            self.offset_of_max_timestamp = self.base_offset + i64::from(relative);
            position = u64::from(self.index.lookup(relative));
        }
        while let Some((at, header)) = self.scan_from(position, |_| true)? {
            if header.max_timestamp > self.max_timestamp {
                self.max_timestamp = header.max_timestamp;
                self.offset_of_max_timestamp = header.last_offset();
            }
            position = at + header.total_len() as u64;
        }
        Ok(())
    }

    /// Reads the 61-byte header at `position`.
    pub(crate) fn read_header(&self, position: u64) -> io::Result<BatchHeader> {
        let mut buf = [0u8; BATCH_HEADER_LEN];
        self.log.read_exact_at(&mut buf, position)?;
        BatchHeader::parse(&buf).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }

    /// Reads the whole batch at `position`.
    pub(crate) fn read_batch(&self, position: u64, header: &BatchHeader) -> io::Result<Vec<u8>> {
        let mut buf = vec![0u8; header.total_len()];
        self.log.read_exact_at(&mut buf, position)?;
        Ok(buf)
    }

    /// The first batch whose last offset is at least `offset`, with its
    /// position; `None` if the segment holds no such batch.
    pub(crate) fn find_batch(&self, offset: i64) -> io::Result<Option<(u64, BatchHeader)>> {
        if offset >= self.next_offset {
            return Ok(None);
        }
        if let Some(hit) = self.recent_batch(offset) {
            return Ok(Some(hit));
        }
        let relative = self.relative(offset.max(self.base_offset));
        self.scan_from(u64::from(self.index.lookup(relative)), |h| {
            h.last_offset() >= offset
        })
    }

    /// End of the longest run of whole batches that starts with the batch
    /// at `position` (of `first_len` bytes) and spans at most `max_bytes`;
    /// the first batch is always included, whatever its size.
    ///
    /// The sparse index gives a batch start close to the limit, so only the
    /// few headers after it are read rather than every header in the range:
    /// with 16 KiB batches a 1 MiB fetch reads one or two headers, not 64.
    /// For example, batches of 100 bytes at 0, 100, 200, …, an index entry
    /// at 4_200, `position` 0 and `max_bytes` 4_450: the walk starts at
    /// 4_200 and stops after the batch at 4_300, giving 4_400.
    pub(crate) fn batches_end(
        &self,
        position: u64,
        first_len: u64,
        max_bytes: u64,
    ) -> io::Result<u64> {
        let mut end = position + first_len;
        let limit = position.saturating_add(max_bytes).min(self.size);
        let from = self.recent.partition_point(|(at, _)| *at < position);
        if self.recent.get(from).is_some_and(|(at, _)| *at == position) {
            // The batches from `position` on are recent: no header to read.
            for (at, header) in self.recent.iter().skip(from + 1) {
                let next_end = at + header.total_len() as u64;
                if *at != end || next_end > limit {
                    return Ok(end);
                }
                end = next_end;
            }
            if end >= limit {
                return Ok(end);
            }
        }
        if let Some(indexed) = self
            .index
            .floor_position(u32::try_from(limit).unwrap_or(u32::MAX))
        {
            end = end.max(u64::from(indexed));
        }
        while end < self.size {
            let next_end = end + self.read_header(end)?.total_len() as u64;
            if next_end > limit {
                break;
            }
            end = next_end;
        }
        if end <= position || end > self.size {
            // Only a segment whose trusted index or header lies (a clean
            // shutdown over damaged files) gets here.
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "batches from position {position} end at {end}, outside the segment's {} bytes",
                    self.size
                ),
            ));
        }
        Ok(end)
    }

    /// Walks batch headers from `position`, returning the first for which
    /// `found` holds.
    pub(crate) fn scan_from(
        &self,
        mut position: u64,
        mut found: impl FnMut(&BatchHeader) -> bool,
    ) -> io::Result<Option<(u64, BatchHeader)>> {
        while position + (BATCH_HEADER_LEN as u64) <= self.size {
            let header = self.read_header(position)?;
            if found(&header) {
                return Ok(Some((position, header)));
            }
            let total = header.total_len() as u64;
            if total < BATCH_HEADER_LEN as u64 {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "batch length below the header size in a validated segment",
                ));
            }
            position += total;
        }
        Ok(None)
    }

    /// Position to start a scan for the first record with a timestamp at
    /// least `timestamp`.
    pub(crate) fn time_lookup_position(&self, timestamp: i64) -> u64 {
        match self.time_index.last_older_than(timestamp) {
            Some(relative) => u64::from(self.index.lookup(relative)),
            None => 0,
        }
    }

    /// Whether appending `append_bytes` more bytes ending at `last_offset`
    /// at time `now_ms` should first roll to a new segment.
    pub(crate) fn should_roll(
        &self,
        config: &LogConfig,
        append_bytes: u64,
        last_offset: i64,
        now_ms: i64,
    ) -> bool {
        if self.size == 0 {
            return false;
        }
        let full_bytes = self.size + append_bytes > config.segment_bytes_max();
        let aged = now_ms.saturating_sub(self.rolling_timestamp.unwrap_or(self.created_ms))
            > config.roll_ms();
        let limit = config.segment_index_bytes as usize;
        let index_full = self.index.size_bytes() + OFFSET_ENTRY_LEN > limit
            || self.time_index.size_bytes() + TIME_ENTRY_LEN > limit;
        let offsets_overflow = last_offset - self.base_offset > i64::from(i32::MAX);
        full_bytes || aged || index_full || offsets_overflow
    }

    /// Records the segment's final max timestamp in the time index, so a
    /// trusted reopen knows it (called at roll and close).
    pub(crate) fn seal(&mut self) -> io::Result<()> {
        self.recent = VecDeque::new();
        if self.max_timestamp >= 0 && self.next_offset > self.base_offset {
            let relative = self.relative(self.offset_of_max_timestamp);
            self.time_index.maybe_append(self.max_timestamp, relative)?;
        }
        Ok(())
    }

    /// Removes the segment's files. Readers holding the `Arc<File>` keep
    /// reading the unlinked data.
    pub(crate) fn delete_files(&self) -> io::Result<()> {
        for path in [&self.log_path, self.index.path(), self.time_index.path()] {
            match std::fs::remove_file(path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        Ok(())
    }

    /// The files to fsync so the segment is durable.
    pub(crate) fn files(&self) -> [Arc<File>; 3] {
        [
            Arc::clone(&self.log),
            Arc::clone(self.index.file()),
            Arc::clone(self.time_index.file()),
        ]
    }

    pub(crate) fn base_offset(&self) -> i64 {
        self.base_offset
    }

    pub(crate) fn next_offset(&self) -> i64 {
        self.next_offset
    }

    pub(crate) fn size(&self) -> u64 {
        self.size
    }

    pub(crate) fn max_timestamp(&self) -> i64 {
        self.max_timestamp
    }

    pub(crate) fn offset_of_max_timestamp(&self) -> i64 {
        self.offset_of_max_timestamp
    }

    /// The `.log` file's modification time, for segments without
    /// timestamps.
    pub(crate) fn last_modified_ms(&self) -> io::Result<i64> {
        let modified = self.log.metadata()?.modified()?;
        Ok(modified
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64))
    }

    pub(crate) fn log_file(&self) -> &Arc<File> {
        &self.log
    }

    /// The max timestamp of the first batch (-1 for an empty segment).
    pub(crate) fn first_batch_timestamp(&self) -> i64 {
        self.rolling_timestamp.unwrap_or(-1)
    }

    /// Bytes of the offset index.
    pub(crate) fn index_size_bytes(&self) -> usize {
        self.index.size_bytes()
    }

    /// Bytes of the time index.
    pub(crate) fn time_index_size_bytes(&self) -> usize {
        self.time_index.size_bytes()
    }
}
