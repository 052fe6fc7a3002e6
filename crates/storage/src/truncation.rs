//! Removing the end of the log, as a follower does when it diverged from
//! the leader ([`Log::truncate_to`]), or all of it, when the leader's log
//! starts past the follower's end ([`Log::truncate_fully_and_start_at`]).
//!
//! A truncation cuts the data first and the bookkeeping after: segments
//! are deleted newest first and the segment holding the new end is cut and
//! fsynced, so a crash at any point leaves a prefix of the old log; then
//! the recovery point, the log start, the leader epochs, the cleaner
//! checkpoint and the producer state follow the new end. A failure while
//! the data is being cut takes the log offline (the next open repairs what
//! is left); the checkpoints after it are written best effort.

use std::io;
use std::sync::Arc;

use runnel_model::{Offset, Timestamp};

use crate::checkpoint::{self, LOG_START_OFFSET_FILE, RECOVERY_POINT_FILE};
use crate::log::Log;
use crate::producer_state::{list_snapshots, ProducerStateManager};
use crate::recovery::{restore_producer_state, RecoveryReport};
use crate::segment::Segment;
use crate::LogError;

impl Log {
    /// Removes every record at or after `offset`; does nothing if `offset`
    /// is at or past the log end offset.
    ///
    /// `offset` is meant to be a batch boundary (a follower truncates to
    /// an epoch's end offset or to its high watermark). If it falls inside
    /// a batch, that whole batch goes too, so the new log end offset is
    /// the batch's base offset, *below* `offset`. If `offset` is at or
    /// below the log start offset the log is emptied and starts at
    /// `offset` ([`Log::truncate_fully_and_start_at`]). A log start offset
    /// inside the removed batch moves down to the new log end.
    ///
    /// ```text
    /// segments [0..99] [100..249] [250..312), batches [250..259] [260..311]
    /// truncate_to(260) -> segments [0..99] [100..249] [250..259], log_end_offset 260
    /// truncate_to(120) -> segments [0..99] [100..119], log_end_offset 120
    ///                     (if a batch starts at 120; if [115..124] is one batch,
    ///                      log_end_offset 115)
    /// truncate_to(400) -> nothing changes
    /// ```
    ///
    /// Afterwards the leader epochs starting at or past the new end are
    /// forgotten, the recovery point is at most the new end, and the
    /// producer state is what it was at the new end (rebuilt from the
    /// newest snapshot at or below it, later snapshots deleted): a resend
    /// of a removed batch is appended again, not taken for a duplicate. A
    /// compaction pass in progress is abandoned at its swap. A
    /// [`crate::FlushTask`] taken before is stale: [`Log::mark_flushed`]
    /// ignores it. Reopening the log, after a clean close or not, finds the
    /// same state.
    pub fn truncate_to(&mut self, offset: Offset) -> Result<(), LogError> {
        self.check_online()?;
        if offset.0 < 0 {
            return Err(self.out_of_range(offset));
        }
        if offset >= self.log_end_offset() {
            return Ok(());
        }
        if offset.0 <= self.log_start_offset {
            return self.truncate_fully_and_start_at(offset);
        }
        // Counted before anything is cut: a flush task taken earlier must
        // not vouch for the log that replaces this one.
        self.truncations += 1;
        if let Err(err) = self.cut_segments(offset) {
            return Err(self.poison("truncation", err));
        }
        let log_end_offset = self.log_end_offset();
        tracing::info!(partition = %self.partition_name(), %offset, %log_end_offset, "truncated the log");
        if self.log_start_offset > log_end_offset.0 {
            self.log_start_offset = log_end_offset.0;
            self.write_checkpoint_best_effort(LOG_START_OFFSET_FILE, log_end_offset.0);
        }
        self.recovery_point = self.recovery_point.min(log_end_offset.0);
        self.write_checkpoint_best_effort(RECOVERY_POINT_FILE, self.recovery_point);
        self.cleaner.truncated(
            &*self.io,
            &self.dir,
            self.log_start_offset,
            log_end_offset.0,
        );
        if self.epochs.truncate_from_end(log_end_offset) {
            self.write_epochs_best_effort();
        }
        if let Err(err) = restore_producer_state(self, &mut RecoveryReport::default()) {
            // The state still holds the removed batches' sequences: serving
            // on would take a resend of them for a duplicate.
            self.mark_offline(format!(
                "rebuilding producer state after a truncation failed: {err}"
            ));
            return Err(err);
        }
        Ok(())
    }

    /// Deletes the segments at or past `offset`, newest first, and cuts the
    /// one holding it before the batch holding it; fsyncs what remains of
    /// that segment and the directory.
    fn cut_segments(&mut self, offset: Offset) -> io::Result<()> {
        // The first segment starts at or below the log start, which is
        // below `offset`: at least one segment stays.
        let keep = self
            .segments
            .partition_point(|s| s.base_offset() < offset.0)
            .max(1);
        while self.segments.len() > keep {
            if let Some(segment) = self.segments.pop() {
                segment.delete_files()?;
            }
        }
        let segment = self.active_mut();
        if let Some((position, _)) = segment.find_batch(offset.0)? {
            segment.truncate_to_position(position)?;
        }
        for file in self.active().files() {
            self.io.sync_data(&file)?;
        }
        self.io.sync_dir(&self.dir)
    }

    /// Deletes every segment and starts an empty log at `offset`: the log
    /// start and end offsets become `offset` (the log start persisted),
    /// the leader epochs and producer state are forgotten (snapshots
    /// deleted), the cleaner starts over and a [`crate::FlushTask`] taken
    /// before is stale. A follower does this when the leader's log starts
    /// past its end, or when the leader's log start falls inside the batch
    /// the follower needs next.
    ///
    /// ```text
    /// segments [0..99] [100..249], log_start_offset 0, log_end_offset 250
    /// truncate_fully_and_start_at(1000) -> one empty segment at 1000,
    ///     log_start_offset = log_end_offset = 1000
    /// ```
    ///
    /// If the new segment or the log start checkpoint cannot be written the
    /// log is left as it was; a failure while deleting the old segments
    /// takes it offline.
    pub fn truncate_fully_and_start_at(&mut self, offset: Offset) -> Result<(), LogError> {
        self.check_online()?;
        if offset.0 < 0 {
            return Err(self.out_of_range(offset));
        }
        // A segment already based at `offset` is emptied and kept (creating
        // one would truncate its files under it); otherwise the new segment
        // is created before anything is deleted.
        let reused = self
            .segments
            .iter()
            .position(|s| s.base_offset() == offset.0);
        let created = match reused {
            Some(_) => None,
            None => Some(
                Segment::create(
                    &self.dir,
                    offset.0,
                    Timestamp::now().0,
                    Arc::clone(&self.io),
                )
                .map_err(LogError::from_write)?,
            ),
        };
        let written =
            checkpoint::write_offset(&*self.io, &self.dir, LOG_START_OFFSET_FILE, offset.0, true);
        if let Err(err) = written {
            if let Some(segment) = created {
                let _ = segment.delete_files();
            }
            return Err(LogError::from_write(err));
        }
        self.truncations += 1;
        if let Err(err) = self.replace_all_segments(reused, created) {
            return Err(self.poison("truncation", err));
        }
        tracing::info!(partition = %self.partition_name(), %offset, "emptied the log");
        self.log_start_offset = offset.0;
        self.recovery_point = offset.0;
        self.write_checkpoint_best_effort(RECOVERY_POINT_FILE, offset.0);
        self.producers = ProducerStateManager::default();
        self.epochs.clear();
        self.write_epochs_best_effort();
        self.cleaner
            .truncated(&*self.io, &self.dir, offset.0, offset.0);
        Ok(())
    }

    /// Deletes every segment but the one at `reused` (emptied) and makes it,
    /// or `created`, the only segment; deletes every producer snapshot.
    fn replace_all_segments(
        &mut self,
        reused: Option<usize>,
        created: Option<Segment>,
    ) -> io::Result<()> {
        let mut old = std::mem::take(&mut self.segments);
        let mut survivor = match reused {
            Some(i) if i < old.len() => old.remove(i),
            _ => created.ok_or_else(|| io::Error::other("no segment to start the log with"))?,
        };
        let result = (|| {
            while let Some(segment) = old.pop() {
                segment.delete_files()?;
            }
            survivor.truncate_to_position(0)?;
            for file in survivor.files() {
                self.io.sync_data(&file)?;
            }
            for (_, path) in list_snapshots(&self.dir)? {
                self.io.remove_file(&path)?;
            }
            self.io.sync_dir(&self.dir)
        })();
        // Whatever happened, the log keeps one segment: an offline log is
        // still asked for its offsets.
        self.segments.push(survivor);
        result
    }

    /// Writes a one-offset checkpoint after a change already made. If it
    /// cannot be written the file is removed, so that no stale value
    /// survives (a missing recovery point makes the next unclean open
    /// validate everything; a missing log start is the first segment's
    /// base); if even that fails the log is taken offline.
    fn write_checkpoint_best_effort(&mut self, name: &str, offset: i64) {
        let Err(err) = checkpoint::write_offset(&*self.io, &self.dir, name, offset, true) else {
            return;
        };
        tracing::warn!(partition = %self.partition_name(), %err, "could not write {name}; removing it");
        if let Err(err) = self.io.remove_file(&self.dir.join(name)) {
            self.poison(&format!("removing a stale {name}"), err);
        }
    }
}
