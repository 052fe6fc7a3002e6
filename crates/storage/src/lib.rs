//! The partition log: segments of v2 record batches with their offset and
//! time indexes, recovery after a crash, retention, compaction
//! (`cleanup.policy=compact`, [`Log::compact`]), flushing and the
//! idempotent producers' state; and the [`LogManager`] owning every log of a
//! data directory, with its flusher, retention and cleaner threads.
//!
//! This crate knows batches, offsets and files. It never sees requests or
//! responses: the broker converts at its edge (see [`LogError::error_code`]).
//!
//! Every change to a file goes through [`StorageIo`], so tests can fail
//! writes, fsyncs and creations ([`fault_injection::FaultyIo`]): a failed
//! append is rolled back and the log stays online (a full disk is
//! [`LogError::DiskFull`]); a failed fsync takes the log offline for good.
#![deny(clippy::unwrap_used)]

mod append;
mod checkpoint;
mod cleaner;
mod config;
mod error;
pub mod fault_injection;
mod leader_epoch;
mod log;
mod log_manager;
mod offset_index;
pub mod producer_state;
mod recovery;
mod segment;
mod segment_swap;
mod storage_io;
mod time_index;
mod truncation;

pub use cleaner::{CleanableStatus, CompactionReport, DEFAULT_DEDUPE_BUFFER_BYTES};
pub use config::{CleanupPolicy, DirtyRatio, LogConfig, TimestampType};
pub use error::LogError;
pub use log::{AppendInfo, AppendOutcome, FlushTask, Log, ReadSlice, RecoveryReport};
pub use log_manager::{BackgroundHandle, BackgroundOptions, LogManager};
pub use storage_io::{StdIo, StorageIo};
