//! Errors of the partition log.

use std::io;
use std::path::PathBuf;

use runnel_model::Offset;
use runnel_protocol::batch::BatchError;

/// What a log operation can fail with. [`LogError::error_code`] gives the
/// Kafka error code the broker should answer with.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// An I/O failure. A write that failed during an append was rolled
    /// back and the log stays online; a failed fsync, or a failed write
    /// that could not be rolled back, takes the log offline instead
    /// ([`LogError::Offline`]).
    #[error("log I/O error: {0}")]
    Io(#[from] io::Error),
    /// The disk (or quota) is full: the append was rolled back, nothing of
    /// it is in the log, and the log stays online so appends succeed again
    /// once space is freed. Kafka takes the whole log directory offline on
    /// ENOSPC; Runnel deliberately recovers, because a full disk is an
    /// operational condition (retention, an operator deleting files) rather
    /// than damage, and the rollback leaves the files exactly as they were
    /// acknowledged. The broker answers KAFKA_STORAGE_ERROR.
    #[error("disk full: {0}")]
    DiskFull(io::Error),
    /// The requested offset is outside `[log_start_offset, log_end_offset]`.
    #[error("offset {offset} is out of range [{log_start_offset}, {log_end_offset}]")]
    OffsetOutOfRange {
        /// The offset asked for.
        offset: Offset,
        /// The first offset still in the log.
        log_start_offset: Offset,
        /// The next offset the log will assign.
        log_end_offset: Offset,
    },
    /// An appended batch is malformed (the inner error has the precise code).
    #[error("corrupt or invalid batch: {0}")]
    CorruptRecord(#[from] BatchError),
    /// A batch or an append is larger than `max.message.bytes` or a segment.
    #[error("record batch of {size} bytes exceeds the limit of {max}")]
    RecordTooLarge {
        /// Size of the offending batch.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// An idempotent producer's sequence does not follow its last one.
    #[error("out of order sequence for producer {producer_id}: expected {expected}, received {received}")]
    OutOfOrderSequence {
        /// The producer.
        producer_id: i64,
        /// The sequence the log expected.
        expected: i32,
        /// The batch's base sequence.
        received: i32,
    },
    /// The producer's epoch is older than one already seen: it was fenced.
    #[error("producer epoch is older than the current one")]
    InvalidProducerEpoch,
    /// The log was taken offline after a failed fsync or an unrecoverable
    /// write; the reason says which. Every later operation fails with it.
    #[error("log is offline: {0}")]
    Offline(String),
    /// A follower's append does not continue the log: a batch starts below
    /// `expected` (the log end offset for the first batch, the end of the
    /// previous batch for the others). The replicas diverged, or the
    /// fetch was not made at the log end; nothing was written. The broker
    /// resolves it (truncating, or restarting an empty log at the batch's
    /// base offset when the leader's log start falls inside that batch) and
    /// never sends it to a client.
    #[error("append does not continue the log: expected a batch at or after offset {expected}, found one at {found}")]
    NonContiguousAppend {
        /// The lowest base offset the batch could have had.
        expected: Offset,
        /// The batch's base offset.
        found: Offset,
    },
    /// Another process holds the data directory's lock.
    #[error("data directory {0} is locked by another process")]
    DirectoryLocked(PathBuf),
}

impl LogError {
    /// A write failure as the caller should see it: [`LogError::DiskFull`]
    /// for ENOSPC / EDQUOT, [`LogError::Io`] otherwise.
    pub(crate) fn from_write(err: io::Error) -> LogError {
        if crate::storage_io::is_disk_full(&err) {
            LogError::DiskFull(err)
        } else {
            LogError::Io(err)
        }
    }

    /// The Kafka error code for this error: OFFSET_OUT_OF_RANGE (1),
    /// CORRUPT_MESSAGE (2) / INVALID_RECORD (87) / MESSAGE_TOO_LARGE (10) /
    /// UNSUPPORTED_FOR_MESSAGE_FORMAT (43) from the batch,
    /// MESSAGE_TOO_LARGE (10) for an oversized append,
    /// OUT_OF_ORDER_SEQUENCE_NUMBER (45), INVALID_PRODUCER_EPOCH (47),
    /// KAFKA_STORAGE_ERROR (56) for I/O, a full disk and offline logs,
    /// UNKNOWN_SERVER_ERROR (-1) for a follower's non-contiguous append (an
    /// internal condition of replication, as Kafka's
    /// `UnexpectedAppendOffsetException`).
    pub fn error_code(&self) -> i16 {
        match self {
            LogError::NonContiguousAppend { .. } => -1,
            LogError::OffsetOutOfRange { .. } => 1,
            LogError::CorruptRecord(e) => e.error_code(),
            LogError::RecordTooLarge { .. } => 10,
            LogError::OutOfOrderSequence { .. } => 45,
            LogError::InvalidProducerEpoch => 47,
            LogError::Io(_)
            | LogError::DiskFull(_)
            | LogError::Offline(_)
            | LogError::DirectoryLocked(_) => 56,
        }
    }
}
