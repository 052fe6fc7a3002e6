//! Record-batch v2 view: header parsing, validation, in-place mutators used
//! at append, and a small encoder.
//!
//! Layout of the 61-byte header (all big-endian):
//!
//! ```text
//! @0  baseOffset i64          @27 baseTimestamp i64
//! @8  batchLength i32         @35 maxTimestamp i64
//! @12 partitionLeaderEpoch i32@43 producerId i64
//! @16 magic i8 (= 2)          @51 producerEpoch i16
//! @17 crc u32 (CRC-32C of @21..end)  @53 baseSequence i32
//! @21 attributes i16          @57 recordsCount i32
//! @23 lastOffsetDelta i32     @61 records
//! ```
//!
//! The base offset, batch length and leader epoch sit before the CRC'd
//! range, so a broker may rewrite them without recomputing the CRC.

use runnel_model::{LeaderEpoch, Offset, Timestamp};

pub use crate::compression::Compression;
use crate::compression::{self, CompressionError};

mod writer;
pub use writer::{set_producer_fields, BatchFields, BatchWriter};

/// Size of the v2 batch header, up to the first record.
pub const BATCH_HEADER_LEN: usize = 61;
/// Bytes before `batchLength` counts: baseOffset (8) + batchLength (4).
pub const LOG_OVERHEAD: usize = 12;
/// The smallest legal `batchLength`: the header after the length field.
pub const MIN_BATCH_LENGTH: i32 = (BATCH_HEADER_LEN - LOG_OVERHEAD) as i32;

const BASE_OFFSET_AT: usize = 0;
const BATCH_LENGTH_AT: usize = 8;
const LEADER_EPOCH_AT: usize = 12;
const MAGIC_AT: usize = 16;
const CRC_AT: usize = 17;
const ATTRIBUTES_AT: usize = 21;
const LAST_OFFSET_DELTA_AT: usize = 23;
const BASE_TIMESTAMP_AT: usize = 27;
const MAX_TIMESTAMP_AT: usize = 35;
const PRODUCER_ID_AT: usize = 43;
const PRODUCER_EPOCH_AT: usize = 51;
const BASE_SEQUENCE_AT: usize = 53;
const RECORDS_COUNT_AT: usize = 57;

const TIMESTAMP_TYPE_BIT: i16 = 0x08;
const TRANSACTIONAL_BIT: i16 = 0x10;
const CONTROL_BIT: i16 = 0x20;
const DELETE_HORIZON_BIT: i16 = 0x40;

/// Why a batch was refused. [`BatchError::error_code`] gives the Kafka error
/// code a produce response carries for it.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    /// Fewer bytes than the header or the declared length need.
    #[error("record batch truncated: need {needed} bytes, have {available}")]
    TooShort {
        /// Bytes the header or length field requires.
        needed: usize,
        /// Bytes present.
        available: usize,
    },
    /// A magic byte other than 2 (v0/v1 message sets are not supported).
    #[error("unsupported record batch magic {0}")]
    UnsupportedMagic(i8),
    /// The stored CRC does not match the bytes.
    #[error("record batch CRC mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    Crc {
        /// CRC in the header.
        stored: u32,
        /// CRC of the bytes.
        computed: u32,
    },
    /// The bytes are not a well-formed batch (lengths, framing).
    #[error("corrupt record batch: {0}")]
    CorruptRecord(String),
    /// The batch is well-formed but breaks a rule Kafka enforces on produce.
    #[error("invalid record batch: {0}")]
    InvalidRecord(String),
    /// The batch is larger than the allowed maximum.
    #[error("record batch of {size} bytes exceeds the maximum of {max}")]
    TooLarge {
        /// Size of the batch including the log overhead.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The records could not be decompressed.
    #[error("record batch decompression failed: {0}")]
    Compression(#[from] CompressionError),
}

impl BatchError {
    /// The Kafka error code for this failure: CORRUPT_MESSAGE (2),
    /// INVALID_RECORD (87), MESSAGE_TOO_LARGE (10) or
    /// UNSUPPORTED_FOR_MESSAGE_FORMAT (43).
    pub fn error_code(&self) -> i16 {
        match self {
            BatchError::TooShort { .. } | BatchError::Crc { .. } | BatchError::CorruptRecord(_) => {
                2
            }
            BatchError::UnsupportedMagic(_) => 43,
            BatchError::InvalidRecord(_) => 87,
            BatchError::TooLarge { .. } => 10,
            BatchError::Compression(CompressionError::TooLarge { .. }) => 10,
            BatchError::Compression(_) => 2,
        }
    }
}

/// Whether a batch's timestamps were set by the producer or by the broker.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum TimestampType {
    /// The producer's timestamps are kept (`message.timestamp.type=CreateTime`).
    #[default]
    CreateTime,
    /// The broker stamps its clock at append (`LogAppendTime`).
    LogAppendTime,
}

/// The decoded 61-byte header of a v2 record batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchHeader {
    /// Offset of the first record.
    pub base_offset: i64,
    /// Bytes after the `batchLength` field.
    pub batch_length: i32,
    /// Leader epoch of the leader that appended the batch.
    pub partition_leader_epoch: i32,
    /// Format version; 2.
    pub magic: i8,
    /// CRC-32C of the bytes from the attributes to the end.
    pub crc: u32,
    /// Compression, timestamp type, transactional and control bits.
    pub attributes: i16,
    /// Offset of the last record minus the base offset.
    pub last_offset_delta: i32,
    /// Timestamp of the first record.
    pub base_timestamp: i64,
    /// Largest timestamp in the batch (or the log append time).
    pub max_timestamp: i64,
    /// Idempotent producer id, -1 for none.
    pub producer_id: i64,
    /// Producer epoch, -1 for none.
    pub producer_epoch: i16,
    /// Sequence of the first record, -1 for none.
    pub base_sequence: i32,
    /// Number of records.
    pub records_count: i32,
}

fn be_i64(buf: &[u8], at: usize) -> i64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&buf[at..at + 8]);
    i64::from_be_bytes(b)
}

fn be_i32(buf: &[u8], at: usize) -> i32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&buf[at..at + 4]);
    i32::from_be_bytes(b)
}

fn be_i16(buf: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([buf[at], buf[at + 1]])
}

fn too_short(needed: usize, available: usize) -> BatchError {
    BatchError::TooShort { needed, available }
}

impl BatchHeader {
    /// Decodes the header at the start of `buf` (at least 61 bytes). Checks
    /// nothing but the length; see [`validate_batch`].
    pub fn parse(buf: &[u8]) -> Result<BatchHeader, BatchError> {
        if buf.len() < BATCH_HEADER_LEN {
            return Err(too_short(BATCH_HEADER_LEN, buf.len()));
        }
        Ok(BatchHeader {
            base_offset: be_i64(buf, BASE_OFFSET_AT),
            batch_length: be_i32(buf, BATCH_LENGTH_AT),
            partition_leader_epoch: be_i32(buf, LEADER_EPOCH_AT),
            magic: buf[MAGIC_AT] as i8,
            crc: be_i32(buf, CRC_AT) as u32,
            attributes: be_i16(buf, ATTRIBUTES_AT),
            last_offset_delta: be_i32(buf, LAST_OFFSET_DELTA_AT),
            base_timestamp: be_i64(buf, BASE_TIMESTAMP_AT),
            max_timestamp: be_i64(buf, MAX_TIMESTAMP_AT),
            producer_id: be_i64(buf, PRODUCER_ID_AT),
            producer_epoch: be_i16(buf, PRODUCER_EPOCH_AT),
            base_sequence: be_i32(buf, BASE_SEQUENCE_AT),
            records_count: be_i32(buf, RECORDS_COUNT_AT),
        })
    }

    /// Size of the whole batch including the 12-byte log overhead. A
    /// negative `batch_length` yields a value below [`LOG_OVERHEAD`].
    pub fn total_len(&self) -> usize {
        usize::try_from(self.batch_length)
            .unwrap_or(0)
            .saturating_add(LOG_OVERHEAD)
    }

    /// Offset of the last record (`base_offset + last_offset_delta`).
    pub fn last_offset(&self) -> i64 {
        self.base_offset
            .saturating_add(i64::from(self.last_offset_delta))
    }

    /// The codec named by attribute bits 0-2.
    pub fn compression(&self) -> Result<Compression, CompressionError> {
        Compression::from_attributes(self.attributes)
    }

    /// Attribute bit 3.
    pub fn timestamp_type(&self) -> TimestampType {
        if self.attributes & TIMESTAMP_TYPE_BIT != 0 {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        }
    }

    /// Attribute bit 4: part of a transaction.
    pub fn is_transactional(&self) -> bool {
        self.attributes & TRANSACTIONAL_BIT != 0
    }

    /// Attribute bit 5: a control batch (transaction markers).
    pub fn is_control(&self) -> bool {
        self.attributes & CONTROL_BIT != 0
    }

    /// Attribute bit 6 (KIP-534): the log cleaner has set a delete horizon
    /// in the base timestamp field. Records' timestamps stay correct: their
    /// deltas are relative to whatever the base timestamp holds.
    pub fn has_delete_horizon(&self) -> bool {
        self.attributes & DELETE_HORIZON_BIT != 0
    }

    /// The time after which the cleaner may remove this batch's tombstones
    /// (KIP-534): the base timestamp when attribute bit 6 is set.
    pub fn delete_horizon_ms(&self) -> Option<i64> {
        self.has_delete_horizon().then_some(self.base_timestamp)
    }

    /// Whether the batch carries an idempotent producer id.
    pub fn has_producer_id(&self) -> bool {
        self.producer_id >= 0
    }

    /// Sequence of the last record, wrapping past `i32::MAX` to 0 as Kafka
    /// does; -1 when the batch has no sequence.
    pub fn last_sequence(&self) -> i32 {
        if self.base_sequence < 0 {
            return -1;
        }
        let last = i64::from(self.base_sequence) + i64::from(self.last_offset_delta);
        if last > i64::from(i32::MAX) {
            (last - i64::from(i32::MAX) - 1) as i32
        } else {
            last as i32
        }
    }
}

/// CRC-32C of the bytes the header's CRC covers.
fn compute_crc(buf: &[u8]) -> u32 {
    crc32c::crc32c(&buf[ATTRIBUTES_AT..])
}

/// Validates ONE batch that exactly fills `buf`: magic 2, a consistent
/// length, the CRC, no more than `max_batch_bytes` bytes, and the record
/// count rules Kafka enforces on produce (at least one record, and
/// `last_offset_delta == records_count - 1`).
pub fn validate_batch(buf: &[u8], max_batch_bytes: usize) -> Result<BatchHeader, BatchError> {
    let header = BatchHeader::parse(buf)?;
    if header.magic != 2 {
        return Err(BatchError::UnsupportedMagic(header.magic));
    }
    if header.batch_length < MIN_BATCH_LENGTH {
        return Err(BatchError::CorruptRecord(format!(
            "batch length {} is below the minimum {MIN_BATCH_LENGTH}",
            header.batch_length
        )));
    }
    if header.total_len() != buf.len() {
        return Err(BatchError::CorruptRecord(format!(
            "batch length {} does not match the {} bytes received",
            header.total_len(),
            buf.len()
        )));
    }
    if buf.len() > max_batch_bytes {
        return Err(BatchError::TooLarge {
            size: buf.len(),
            max: max_batch_bytes,
        });
    }
    let computed = compute_crc(buf);
    if computed != header.crc {
        return Err(BatchError::Crc {
            stored: header.crc,
            computed,
        });
    }
    header.compression()?;
    if header.records_count <= 0 {
        return Err(BatchError::InvalidRecord(format!(
            "batch has {} records; a produced batch needs at least one",
            header.records_count
        )));
    }
    if header.last_offset_delta != header.records_count - 1 {
        return Err(BatchError::InvalidRecord(format!(
            "last offset delta {} does not match the record count {}",
            header.last_offset_delta, header.records_count
        )));
    }
    Ok(header)
}

/// Iterator over concatenated batches, from [`split_batches`].
#[derive(Debug, Clone)]
pub struct BatchIter<'a> {
    buf: &'a [u8],
    position: usize,
    failed: bool,
}

/// Iterates `(position_in_buf, header)` over the batches concatenated in
/// `buf`. Each item has checked that the whole batch is present and its
/// length is at least the header's; a malformed batch yields one error and
/// ends the iteration. CRCs are not checked.
pub fn split_batches(buf: &[u8]) -> BatchIter<'_> {
    BatchIter {
        buf,
        position: 0,
        failed: false,
    }
}

impl Iterator for BatchIter<'_> {
    type Item = Result<(usize, BatchHeader), BatchError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.position >= self.buf.len() {
            return None;
        }
        let rest = &self.buf[self.position..];
        let result = (|| {
            let header = BatchHeader::parse(rest)?;
            if header.batch_length < MIN_BATCH_LENGTH {
                return Err(BatchError::CorruptRecord(format!(
                    "batch length {} is below the minimum {MIN_BATCH_LENGTH}",
                    header.batch_length
                )));
            }
            if header.total_len() > rest.len() {
                return Err(too_short(header.total_len(), rest.len()));
            }
            Ok(header)
        })();
        match result {
            Ok(header) => {
                let at = self.position;
                self.position += header.total_len();
                Some(Ok((at, header)))
            }
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

fn check_header_len(buf: &[u8]) -> Result<(), BatchError> {
    if buf.len() < BATCH_HEADER_LEN {
        return Err(too_short(BATCH_HEADER_LEN, buf.len()));
    }
    Ok(())
}

/// Writes the base offset (outside the CRC: no recomputation).
pub fn set_base_offset(buf: &mut [u8], offset: Offset) -> Result<(), BatchError> {
    check_header_len(buf)?;
    buf[BASE_OFFSET_AT..BASE_OFFSET_AT + 8].copy_from_slice(&offset.0.to_be_bytes());
    Ok(())
}

/// Writes the partition leader epoch (outside the CRC).
pub fn set_partition_leader_epoch(buf: &mut [u8], epoch: LeaderEpoch) -> Result<(), BatchError> {
    check_header_len(buf)?;
    buf[LEADER_EPOCH_AT..LEADER_EPOCH_AT + 4].copy_from_slice(&epoch.0.to_be_bytes());
    Ok(())
}

/// Marks the batch `LogAppendTime` (attribute bit 3), sets its max timestamp
/// to `timestamp`, and recomputes the CRC, which covers both. `buf` must
/// hold exactly one batch.
pub fn set_log_append_time(buf: &mut [u8], timestamp: Timestamp) -> Result<(), BatchError> {
    check_header_len(buf)?;
    let attributes = be_i16(buf, ATTRIBUTES_AT) | TIMESTAMP_TYPE_BIT;
    buf[ATTRIBUTES_AT..ATTRIBUTES_AT + 2].copy_from_slice(&attributes.to_be_bytes());
    buf[MAX_TIMESTAMP_AT..MAX_TIMESTAMP_AT + 8].copy_from_slice(&timestamp.0.to_be_bytes());
    let crc = compute_crc(buf);
    buf[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
    Ok(())
}

/// One record's position and time, as decoded by [`record_infos`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordInfo {
    /// Absolute offset (base offset + offset delta).
    pub offset: i64,
    /// The record's timestamp; for `LogAppendTime` batches the batch's max
    /// timestamp, which is what consumers see.
    pub timestamp: i64,
}

fn read_varlong(buf: &[u8], pos: &mut usize) -> Result<i64, BatchError> {
    let mut value: u64 = 0;
    for shift in (0..70).step_by(7) {
        let Some(&byte) = buf.get(*pos) else {
            return Err(BatchError::CorruptRecord("truncated varint".into()));
        };
        *pos += 1;
        if shift >= 64 {
            return Err(BatchError::CorruptRecord("varint too long".into()));
        }
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(((value >> 1) as i64) ^ -((value & 1) as i64));
        }
    }
    Err(BatchError::CorruptRecord("varint too long".into()))
}

fn write_varlong(out: &mut Vec<u8>, value: i64) {
    let mut v = ((value << 1) ^ (value >> 63)) as u64;
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Decodes the offset and timestamp of every record of the batch filling
/// `buf`, decompressing if needed (output limited to `max_uncompressed`
/// bytes). Checks what Kafka checks when it walks records on produce: the
/// records exactly fill the section, their count matches the header and
/// offset deltas run 0, 1, 2, …
pub fn record_infos(buf: &[u8], max_uncompressed: usize) -> Result<Vec<RecordInfo>, BatchError> {
    record_infos_with(buf, max_uncompressed, DeltaRule::Contiguous)
}

/// [`record_infos`] for a batch read back from a log, which compaction may
/// have thinned: offset deltas only need to grow and stay within the
/// header's `last_offset_delta`, so a compacted batch's gaps are accepted.
pub fn stored_record_infos(
    buf: &[u8],
    max_uncompressed: usize,
) -> Result<Vec<RecordInfo>, BatchError> {
    record_infos_with(buf, max_uncompressed, DeltaRule::Increasing)
}

fn record_infos_with(
    buf: &[u8],
    max_uncompressed: usize,
    rule: DeltaRule,
) -> Result<Vec<RecordInfo>, BatchError> {
    let mut infos = Vec::new();
    walk_records(buf, max_uncompressed, rule, |info, _| {
        infos.push(info);
        Ok(())
    })?;
    Ok(infos)
}

/// Which record offset deltas a walk accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DeltaRule {
    /// 0, 1, 2, … as a producer must send them.
    Contiguous,
    /// Strictly growing and at most `last_offset_delta`, as a compacted
    /// batch holds them.
    Increasing,
}

/// One record decoded in full by [`decode_records`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Record {
    /// Absolute offset.
    pub offset: i64,
    /// Timestamp as consumers see it.
    pub timestamp: i64,
    /// Key, none for a null key.
    pub key: Option<Vec<u8>>,
    /// Value, none for a tombstone.
    pub value: Option<Vec<u8>>,
    /// Headers in order: name, value (none for null).
    pub headers: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

/// Decodes every record of the batch filling `buf` (keys, values and
/// headers), with the same checks as [`record_infos`].
pub fn decode_records(buf: &[u8], max_uncompressed: usize) -> Result<Vec<Record>, BatchError> {
    decode_records_with(buf, max_uncompressed, DeltaRule::Contiguous)
}

/// [`decode_records`] for a batch read back from a log: accepts the offset
/// gaps compaction leaves (see [`stored_record_infos`]). Use it to replay
/// a compacted topic such as `__consumer_offsets`.
pub fn decode_stored_records(
    buf: &[u8],
    max_uncompressed: usize,
) -> Result<Vec<Record>, BatchError> {
    decode_records_with(buf, max_uncompressed, DeltaRule::Increasing)
}

fn decode_records_with(
    buf: &[u8],
    max_uncompressed: usize,
    rule: DeltaRule,
) -> Result<Vec<Record>, BatchError> {
    let mut records = Vec::new();
    walk_records(buf, max_uncompressed, rule, |info, raw| {
        let rest = raw.rest;
        let mut p = 0;
        let key = read_bytes(rest, &mut p)?;
        let value = read_bytes(rest, &mut p)?;
        let count = read_varlong(rest, &mut p)?;
        let count = usize::try_from(count)
            .map_err(|_| BatchError::CorruptRecord("negative header count".into()))?;
        let mut headers = Vec::with_capacity(count.min(rest.len()));
        for _ in 0..count {
            let name = read_bytes(rest, &mut p)?
                .ok_or_else(|| BatchError::CorruptRecord("null header name".into()))?;
            headers.push((name, read_bytes(rest, &mut p)?));
        }
        if p != rest.len() {
            return Err(BatchError::CorruptRecord(
                "trailing bytes in a record".into(),
            ));
        }
        records.push(Record {
            offset: info.offset,
            timestamp: info.timestamp,
            key,
            value,
            headers,
        });
        Ok(())
    })?;
    Ok(records)
}

fn read_bytes(buf: &[u8], pos: &mut usize) -> Result<Option<Vec<u8>>, BatchError> {
    let length = read_varlong(buf, pos)?;
    if length < 0 {
        return Ok(None);
    }
    let end = usize::try_from(length)
        .ok()
        .and_then(|len| pos.checked_add(len))
        .filter(|&end| end <= buf.len())
        .ok_or_else(|| BatchError::CorruptRecord("field overruns the record".into()))?;
    let bytes = buf[*pos..end].to_vec();
    *pos = end;
    Ok(Some(bytes))
}

/// A record's encoded fields besides its offset and time.
struct RawRecord<'a> {
    /// The (unused) record attributes byte.
    attributes: u8,
    /// The timestamp delta as encoded, relative to the base timestamp.
    timestamp_delta: i64,
    /// The bytes after the offset delta: key, value, headers.
    rest: &'a [u8],
}

/// Walks the records of the batch filling `buf`, giving `visit` each
/// record's offset and time and its other encoded fields.
fn walk_records(
    buf: &[u8],
    max_uncompressed: usize,
    rule: DeltaRule,
    mut visit: impl FnMut(RecordInfo, RawRecord<'_>) -> Result<(), BatchError>,
) -> Result<(), BatchError> {
    let header = BatchHeader::parse(buf)?;
    if header.total_len() != buf.len() || header.batch_length < MIN_BATCH_LENGTH {
        return Err(BatchError::CorruptRecord("batch length mismatch".into()));
    }
    let section = &buf[BATCH_HEADER_LEN..];
    let owned;
    let records = match header.compression()? {
        Compression::None => section,
        codec => {
            owned = compression::decompress_with_limit(codec, section, max_uncompressed)?;
            &owned[..]
        }
    };
    let count = usize::try_from(header.records_count)
        .map_err(|_| BatchError::CorruptRecord("negative record count".into()))?;
    let mut seen = 0usize;
    let mut previous_delta = -1i64;
    let mut pos = 0;
    while pos < records.len() {
        let length = read_varlong(records, &mut pos)?;
        let length = usize::try_from(length)
            .map_err(|_| BatchError::CorruptRecord("negative record length".into()))?;
        let end = pos
            .checked_add(length)
            .filter(|&end| end <= records.len())
            .ok_or_else(|| BatchError::CorruptRecord("record overruns the batch".into()))?;
        let body = &records[pos..end];
        let mut p = 1; // attributes byte
        if body.is_empty() {
            return Err(BatchError::CorruptRecord("empty record".into()));
        }
        let timestamp_delta = read_varlong(body, &mut p)?;
        let offset_delta = read_varlong(body, &mut p)?;
        let in_order = match rule {
            DeltaRule::Contiguous => offset_delta == seen as i64,
            DeltaRule::Increasing => {
                offset_delta > previous_delta && offset_delta <= i64::from(header.last_offset_delta)
            }
        };
        if !in_order {
            return Err(BatchError::InvalidRecord(format!(
                "record {seen} has offset delta {offset_delta}"
            )));
        }
        previous_delta = offset_delta;
        let timestamp = match header.timestamp_type() {
            TimestampType::LogAppendTime => header.max_timestamp,
            TimestampType::CreateTime => header.base_timestamp.wrapping_add(timestamp_delta),
        };
        visit(
            RecordInfo {
                offset: header.base_offset.wrapping_add(offset_delta),
                timestamp,
            },
            RawRecord {
                attributes: body[0],
                timestamp_delta,
                rest: &body[p..],
            },
        )?;
        seen += 1;
        pos = end;
    }
    if seen != count {
        return Err(BatchError::InvalidRecord(format!(
            "header counts {count} records, the batch holds {seen}"
        )));
    }
    Ok(())
}

/// One record of a [`StoredBatch`], borrowed from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoredRecord<'a> {
    /// Absolute offset.
    pub offset: i64,
    /// Timestamp as consumers see it.
    pub timestamp: i64,
    /// Key, none for a null key.
    pub key: Option<&'a [u8]>,
    /// Value, none for a tombstone.
    pub value: Option<&'a [u8]>,
}

/// Where one record of a [`StoredBatch`] sits in its buffer.
#[derive(Clone, Copy, Debug)]
struct StoredRecordSpan {
    offset_delta: i64,
    /// The timestamp consumers see.
    timestamp: i64,
    /// Base timestamp plus the record's delta (differs from `timestamp`
    /// for `LogAppendTime`).
    create_timestamp: i64,
    attributes: u8,
    /// Key, value and headers, as encoded.
    rest: (usize, usize),
    key: Option<(usize, usize)>,
    value: Option<(usize, usize)>,
}

/// A batch read back from a log with its records decoded (decompressed
/// once), for the log cleaner to filter and re-encode with
/// [`StoredBatch::rebuild`]. Offset gaps left by an earlier compaction are
/// accepted (see [`stored_record_infos`]).
#[derive(Clone, Debug)]
pub struct StoredBatch {
    header: BatchHeader,
    /// Each record's bytes after its offset delta, concatenated.
    bytes: Vec<u8>,
    records: Vec<StoredRecordSpan>,
}

fn field_span(buf: &[u8], pos: &mut usize) -> Result<Option<(usize, usize)>, BatchError> {
    let length = read_varlong(buf, pos)?;
    if length < 0 {
        return Ok(None);
    }
    let start = *pos;
    let end = usize::try_from(length)
        .ok()
        .and_then(|len| start.checked_add(len))
        .filter(|&end| end <= buf.len())
        .ok_or_else(|| BatchError::CorruptRecord("field overruns the record".into()))?;
    *pos = end;
    Ok(Some((start, end)))
}

impl StoredBatch {
    /// Decodes the batch filling `buf` (decompressed output limited to
    /// `max_uncompressed` bytes). Fails on anything malformed; never panics.
    pub fn decode(buf: &[u8], max_uncompressed: usize) -> Result<StoredBatch, BatchError> {
        let header = BatchHeader::parse(buf)?;
        let mut bytes = Vec::new();
        let mut records =
            Vec::with_capacity(usize::try_from(header.records_count).unwrap_or(0).min(4096));
        walk_records(buf, max_uncompressed, DeltaRule::Increasing, |info, raw| {
            let rest = raw.rest;
            let at = bytes.len();
            bytes.extend_from_slice(rest);
            let mut p = 0;
            let key = field_span(rest, &mut p)?;
            let value = field_span(rest, &mut p)?;
            let shift = |span: Option<(usize, usize)>| span.map(|(s, e)| (at + s, at + e));
            records.push(StoredRecordSpan {
                offset_delta: info.offset.wrapping_sub(header.base_offset),
                timestamp: info.timestamp,
                create_timestamp: header.base_timestamp.wrapping_add(raw.timestamp_delta),
                attributes: raw.attributes,
                rest: (at, bytes.len()),
                key: shift(key),
                value: shift(value),
            });
            Ok(())
        })?;
        Ok(StoredBatch {
            header,
            bytes,
            records,
        })
    }

    /// The batch's header as stored.
    pub fn header(&self) -> &BatchHeader {
        &self.header
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether the batch holds no record (an empty batch a cleaner kept).
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The records in offset order.
    pub fn records(&self) -> impl Iterator<Item = StoredRecord<'_>> + '_ {
        self.records.iter().map(|span| {
            let slice = |s: Option<(usize, usize)>| s.map(|(a, b)| &self.bytes[a..b]);
            StoredRecord {
                offset: self.header.base_offset.wrapping_add(span.offset_delta),
                timestamp: span.timestamp,
                key: slice(span.key),
                value: slice(span.value),
            }
        })
    }

    /// Encodes the batch again with only the records whose `keep` entry is
    /// true (`keep` has one entry per record; missing entries count as
    /// false). Everything else is preserved: base offset, `last_offset_delta`
    /// (so the batch still ends where it ended, and the producer's last
    /// sequence is unchanged), leader epoch, producer id, epoch and base
    /// sequence, codec, timestamp type, transactional and control bits, and
    /// each kept record's offset, timestamp, key, value and headers.
    ///
    /// With `delete_horizon_ms`, attribute bit 6 is set and the base
    /// timestamp holds the horizon (KIP-534), the records' timestamp deltas
    /// re-encoded against it; without, the base timestamp (and any horizon
    /// already set) is kept. The max timestamp is recomputed over the kept
    /// records for `CreateTime` and kept for `LogAppendTime`. A batch with
    /// no record left is written as an empty batch (records count 0, no
    /// compression), as Kafka keeps one for a producer's last batch.
    ///
    /// ```text
    /// batch base 10, last_offset_delta 4, records at 10 11 12 13 14
    /// rebuild(keep 11 and 13) -> base 10, last_offset_delta 4, records at 11 13
    /// ```
    pub fn rebuild(
        &self,
        keep: &[bool],
        delete_horizon_ms: Option<i64>,
    ) -> Result<Vec<u8>, BatchError> {
        let header = &self.header;
        let kept: Vec<&StoredRecordSpan> = self
            .records
            .iter()
            .zip(keep)
            .filter_map(|(span, &k)| k.then_some(span))
            .collect();
        let mut attributes = header.attributes;
        let base_timestamp = match delete_horizon_ms {
            Some(horizon) => {
                attributes |= DELETE_HORIZON_BIT;
                horizon
            }
            None => header.base_timestamp,
        };
        let max_timestamp = match header.timestamp_type() {
            TimestampType::CreateTime => kept
                .iter()
                .map(|r| r.timestamp)
                .max()
                .unwrap_or(header.max_timestamp),
            TimestampType::LogAppendTime => header.max_timestamp,
        };
        let mut section = Vec::new();
        for span in &kept {
            let mut body = vec![span.attributes];
            write_varlong(
                &mut body,
                span.create_timestamp.wrapping_sub(base_timestamp),
            );
            write_varlong(&mut body, span.offset_delta);
            body.extend_from_slice(&self.bytes[span.rest.0..span.rest.1]);
            write_varlong(&mut section, body.len() as i64);
            section.extend_from_slice(&body);
        }
        let codec = if kept.is_empty() {
            attributes &= !0x07;
            Compression::None
        } else {
            header.compression()?
        };
        let section = compression::compress(codec, &section)?;
        let count = i32::try_from(kept.len())
            .map_err(|_| BatchError::InvalidRecord("too many records".into()))?;
        let batch_length =
            i32::try_from(BATCH_HEADER_LEN - LOG_OVERHEAD + section.len()).map_err(|_| {
                BatchError::TooLarge {
                    size: section.len(),
                    max: i32::MAX as usize,
                }
            })?;
        let mut out = Vec::with_capacity(BATCH_HEADER_LEN + section.len());
        out.extend_from_slice(&header.base_offset.to_be_bytes());
        out.extend_from_slice(&batch_length.to_be_bytes());
        out.extend_from_slice(&header.partition_leader_epoch.to_be_bytes());
        out.push(2);
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(&attributes.to_be_bytes());
        out.extend_from_slice(&header.last_offset_delta.to_be_bytes());
        out.extend_from_slice(&base_timestamp.to_be_bytes());
        out.extend_from_slice(&max_timestamp.to_be_bytes());
        out.extend_from_slice(&header.producer_id.to_be_bytes());
        out.extend_from_slice(&header.producer_epoch.to_be_bytes());
        out.extend_from_slice(&header.base_sequence.to_be_bytes());
        out.extend_from_slice(&count.to_be_bytes());
        out.extend_from_slice(&section);
        let crc = compute_crc(&out);
        out[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
        Ok(out)
    }
}

/// One record to encode with [`BatchBuilder`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecordSpec {
    /// Creation timestamp.
    pub timestamp: i64,
    /// Key, or none (null).
    pub key: Option<Vec<u8>>,
    /// Value, or none (a tombstone).
    pub value: Option<Vec<u8>>,
    /// Headers in order: name, value (none for null).
    pub headers: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

/// Encodes one v2 batch; used by tests, control records and the native
/// client.
#[derive(Clone, Debug)]
pub struct BatchBuilder {
    /// Base offset written in the header.
    pub base_offset: i64,
    /// Producer id, -1 for none.
    pub producer_id: i64,
    /// Producer epoch, -1 for none.
    pub producer_epoch: i16,
    /// Base sequence, -1 for none.
    pub base_sequence: i32,
    /// Codec for the records section.
    pub compression: Compression,
    /// Records in offset order.
    pub records: Vec<RecordSpec>,
    /// Attribute bit 4: part of a transaction.
    pub transactional: bool,
    /// Attribute bit 5: a control batch (transaction markers).
    pub control: bool,
}

impl Default for BatchBuilder {
    fn default() -> Self {
        BatchBuilder {
            base_offset: 0,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            compression: Compression::None,
            records: Vec::new(),
            transactional: false,
            control: false,
        }
    }
}

impl BatchBuilder {
    /// Adds a record with a value and no key.
    pub fn value(mut self, timestamp: i64, value: &[u8]) -> Self {
        self.records.push(RecordSpec {
            timestamp,
            key: None,
            value: Some(value.to_vec()),
            headers: Vec::new(),
        });
        self
    }

    /// Adds a record with a key and a value (none for a tombstone).
    pub fn keyed(mut self, timestamp: i64, key: &[u8], value: Option<&[u8]>) -> Self {
        self.records.push(RecordSpec {
            timestamp,
            key: Some(key.to_vec()),
            value: value.map(<[u8]>::to_vec),
            headers: Vec::new(),
        });
        self
    }

    /// Adds a record as specified (with headers, for instance).
    pub fn record(mut self, record: RecordSpec) -> Self {
        self.records.push(record);
        self
    }

    /// Sets the idempotent producer fields.
    pub fn producer(mut self, producer_id: i64, producer_epoch: i16, base_sequence: i32) -> Self {
        self.producer_id = producer_id;
        self.producer_epoch = producer_epoch;
        self.base_sequence = base_sequence;
        self
    }

    /// Encodes the batch with a correct CRC.
    pub fn build(&self) -> Result<Vec<u8>, BatchError> {
        let base_timestamp = self.records.first().map_or(-1, |r| r.timestamp);
        let max_timestamp = self.records.iter().map(|r| r.timestamp).max().unwrap_or(-1);
        let mut section = Vec::new();
        for (i, record) in self.records.iter().enumerate() {
            let mut body = vec![0u8];
            write_varlong(&mut body, record.timestamp.wrapping_sub(base_timestamp));
            write_varlong(&mut body, i as i64);
            for field in [&record.key, &record.value] {
                match field {
                    Some(bytes) => {
                        write_varlong(&mut body, bytes.len() as i64);
                        body.extend_from_slice(bytes);
                    }
                    None => write_varlong(&mut body, -1),
                }
            }
            write_varlong(&mut body, record.headers.len() as i64);
            for (name, value) in &record.headers {
                write_varlong(&mut body, name.len() as i64);
                body.extend_from_slice(name);
                match value {
                    Some(bytes) => {
                        write_varlong(&mut body, bytes.len() as i64);
                        body.extend_from_slice(bytes);
                    }
                    None => write_varlong(&mut body, -1),
                }
            }
            write_varlong(&mut section, body.len() as i64);
            section.extend_from_slice(&body);
        }
        let section = compression::compress(self.compression, &section)?;
        let count = i32::try_from(self.records.len())
            .map_err(|_| BatchError::InvalidRecord("too many records".into()))?;
        let batch_length =
            i32::try_from(BATCH_HEADER_LEN - LOG_OVERHEAD + section.len()).map_err(|_| {
                BatchError::TooLarge {
                    size: section.len(),
                    max: i32::MAX as usize,
                }
            })?;
        let mut out = Vec::with_capacity(BATCH_HEADER_LEN + section.len());
        out.extend_from_slice(&self.base_offset.to_be_bytes());
        out.extend_from_slice(&batch_length.to_be_bytes());
        out.extend_from_slice(&(-1i32).to_be_bytes());
        out.push(2);
        out.extend_from_slice(&[0; 4]);
        let mut attributes = self.compression.id();
        if self.transactional {
            attributes |= TRANSACTIONAL_BIT;
        }
        if self.control {
            attributes |= CONTROL_BIT;
        }
        out.extend_from_slice(&attributes.to_be_bytes());
        out.extend_from_slice(&(count - 1).to_be_bytes());
        out.extend_from_slice(&base_timestamp.to_be_bytes());
        out.extend_from_slice(&max_timestamp.to_be_bytes());
        out.extend_from_slice(&self.producer_id.to_be_bytes());
        out.extend_from_slice(&self.producer_epoch.to_be_bytes());
        out.extend_from_slice(&self.base_sequence.to_be_bytes());
        out.extend_from_slice(&count.to_be_bytes());
        out.extend_from_slice(&section);
        let crc = compute_crc(&out);
        out[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
        Ok(out)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use kafka_protocol::records::{
        Compression as KCompression, Record, RecordBatchDecoder, RecordBatchEncoder,
        RecordEncodeOptions, TimestampType as KTimestampType,
    };
    use proptest::prelude::*;

    fn kafka_batch(values: &[Vec<u8>], compression: KCompression, ts: i64) -> Vec<u8> {
        let records: Vec<Record> = values
            .iter()
            .enumerate()
            .map(|(i, v)| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: 0,
                producer_id: 7,
                producer_epoch: 1,
                timestamp_type: KTimestampType::Creation,
                offset: i as i64,
                sequence: i as i32,
                timestamp: ts + i as i64,
                key: None,
                value: Some(bytes::Bytes::from(v.clone())),
                headers: Default::default(),
            })
            .collect();
        let mut buf = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            records.iter(),
            &RecordEncodeOptions {
                version: 2,
                compression,
            },
        )
        .unwrap();
        buf.to_vec()
    }

    #[test]
    fn decodes_keys_values_and_headers_written_by_kafka_protocol() {
        let mut headers = kafka_protocol::indexmap::IndexMap::new();
        headers.insert("h1".into(), Some(bytes::Bytes::from_static(b"v1")));
        headers.insert("h2".into(), None);
        let records: Vec<Record> = (0..3)
            .map(|i| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: 0,
                producer_id: 7,
                producer_epoch: 1,
                timestamp_type: KTimestampType::Creation,
                offset: 40 + i,
                sequence: i as i32,
                timestamp: 1000 + i,
                key: Some(bytes::Bytes::from(format!("k{i}"))),
                value: (i != 1).then(|| bytes::Bytes::from(format!("v{i}"))),
                headers: headers.clone(),
            })
            .collect();
        let mut buf = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            records.iter(),
            &RecordEncodeOptions {
                version: 2,
                compression: KCompression::Lz4,
            },
        )
        .unwrap();
        let batches: Vec<_> = split_batches(&buf).map(Result::unwrap).collect();
        assert_eq!(batches.len(), 1, "one batch expected");
        let decoded = decode_records(&buf, 1 << 20).unwrap();
        assert_eq!(decoded.len(), 3);
        assert_eq!(decoded[1].offset, 41);
        assert_eq!(decoded[1].timestamp, 1001);
        assert_eq!(decoded[1].key.as_deref(), Some(&b"k1"[..]));
        assert_eq!(decoded[1].value, None);
        assert_eq!(decoded[2].value.as_deref(), Some(&b"v2"[..]));
        assert_eq!(
            decoded[0].headers,
            vec![
                (b"h1".to_vec(), Some(b"v1".to_vec())),
                (b"h2".to_vec(), None)
            ]
        );
        let infos = record_infos(&buf, 1 << 20).unwrap();
        assert_eq!(
            infos.iter().map(|i| i.offset).collect::<Vec<_>>(),
            [40, 41, 42]
        );
    }

    #[test]
    fn builder_keys_and_tombstones_round_trip() {
        let buf = BatchBuilder::default()
            .keyed(5, b"a", Some(b"1"))
            .keyed(6, b"b", None)
            .build()
            .unwrap();
        let decoded = decode_records(&buf, 1 << 20).unwrap();
        assert_eq!(decoded[0].key.as_deref(), Some(&b"a"[..]));
        assert_eq!(decoded[0].value.as_deref(), Some(&b"1"[..]));
        assert_eq!(decoded[1].value, None);
        assert!(decoded.iter().all(|r| r.headers.is_empty()));
    }

    #[test]
    fn parses_batches_from_kafka_protocol_encoder() {
        for (kc, c) in [
            (KCompression::None, Compression::None),
            (KCompression::Gzip, Compression::Gzip),
            (KCompression::Snappy, Compression::Snappy),
            (KCompression::Lz4, Compression::Lz4),
            (KCompression::Zstd, Compression::Zstd),
        ] {
            let values = vec![b"a".to_vec(), b"bb".to_vec(), b"ccc".to_vec()];
            let buf = kafka_batch(&values, kc, 1000);
            let header = validate_batch(&buf, 1 << 20).unwrap();
            assert_eq!(header.compression().unwrap(), c);
            assert_eq!(header.records_count, 3);
            assert_eq!(header.last_offset(), 2);
            assert_eq!(header.producer_id, 7);
            assert_eq!(header.max_timestamp, 1002);
            let infos = record_infos(&buf, 1 << 20).unwrap();
            assert_eq!(
                infos
                    .iter()
                    .map(|r| (r.offset, r.timestamp))
                    .collect::<Vec<_>>(),
                vec![(0, 1000), (1, 1001), (2, 1002)]
            );
        }
    }

    #[test]
    fn builder_output_decodes_with_kafka_protocol() {
        for c in [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let mut builder = BatchBuilder {
                compression: c,
                ..BatchBuilder::default()
            }
            .producer(3, 0, 5);
            builder = builder.value(10, b"x").value(12, b"yz");
            let buf = builder.build().unwrap();
            validate_batch(&buf, 1 << 20).unwrap();
            let mut bytes = bytes::Bytes::from(buf);
            let set = RecordBatchDecoder::decode(&mut bytes).unwrap();
            assert_eq!(set.records.len(), 2);
            assert_eq!(set.records[1].value.as_deref(), Some(&b"yz"[..]));
            assert_eq!(set.records[1].sequence, 6);
        }
    }

    #[test]
    fn log_append_time_recomputes_crc() {
        let mut buf = BatchBuilder::default().value(5, b"v").build().unwrap();
        set_log_append_time(&mut buf, Timestamp(99)).unwrap();
        let header = validate_batch(&buf, 1 << 20).unwrap();
        assert_eq!(header.timestamp_type(), TimestampType::LogAppendTime);
        assert_eq!(header.max_timestamp, 99);
        assert_eq!(record_infos(&buf, 1 << 20).unwrap()[0].timestamp, 99);
    }

    #[test]
    fn base_offset_and_epoch_do_not_touch_crc() {
        let mut buf = BatchBuilder::default().value(5, b"v").build().unwrap();
        set_base_offset(&mut buf, Offset(1234)).unwrap();
        set_partition_leader_epoch(&mut buf, LeaderEpoch(9)).unwrap();
        let header = validate_batch(&buf, 1 << 20).unwrap();
        assert_eq!(header.base_offset, 1234);
        assert_eq!(header.partition_leader_epoch, 9);
    }

    #[test]
    fn validation_errors_map_to_kafka_codes() {
        let good = BatchBuilder::default().value(5, b"v").build().unwrap();
        let mut magic = good.clone();
        magic[MAGIC_AT] = 1;
        assert_eq!(
            validate_batch(&magic, 1 << 20).unwrap_err().error_code(),
            43
        );
        assert_eq!(
            validate_batch(&good[..40], 1 << 20)
                .unwrap_err()
                .error_code(),
            2
        );
        assert_eq!(validate_batch(&good, 10).unwrap_err().error_code(), 10);
        let empty = BatchBuilder::default().build().unwrap();
        assert_eq!(
            validate_batch(&empty, 1 << 20).unwrap_err().error_code(),
            87
        );
        let mut extra = good.clone();
        extra.push(0);
        assert_eq!(validate_batch(&extra, 1 << 20).unwrap_err().error_code(), 2);
    }

    #[test]
    fn split_stops_at_a_torn_batch() {
        let a = BatchBuilder::default().value(1, b"a").build().unwrap();
        let b = BatchBuilder::default().value(2, b"bb").build().unwrap();
        let mut buf = a.clone();
        buf.extend_from_slice(&b);
        let all: Vec<_> = split_batches(&buf).map(|r| r.unwrap().0).collect();
        assert_eq!(all, vec![0, a.len()]);
        let torn = &buf[..buf.len() - 1];
        let items: Vec<_> = split_batches(torn).collect();
        assert_eq!(items.len(), 2);
        assert!(items[1].is_err());
    }

    #[test]
    fn last_sequence_wraps() {
        let mut header =
            BatchHeader::parse(&BatchBuilder::default().value(1, b"a").build().unwrap()).unwrap();
        header.base_sequence = i32::MAX;
        header.last_offset_delta = 2;
        assert_eq!(header.last_sequence(), 1);
    }

    fn headed(timestamp: i64, key: &[u8], value: Option<&[u8]>) -> RecordSpec {
        RecordSpec {
            timestamp,
            key: Some(key.to_vec()),
            value: value.map(<[u8]>::to_vec),
            headers: vec![(b"h".to_vec(), Some(key.to_vec())), (b"n".to_vec(), None)],
        }
    }

    #[test]
    fn rebuild_keeps_offsets_headers_codec_and_producer_fields() {
        for codec in [Compression::None, Compression::Gzip, Compression::Zstd] {
            let mut buf = BatchBuilder {
                compression: codec,
                ..BatchBuilder::default()
            }
            .producer(9, 2, 100)
            .record(headed(1000, b"a", Some(b"1")))
            .record(headed(1001, b"b", Some(b"2")))
            .record(headed(1002, b"c", None))
            .record(headed(999, b"d", Some(b"4")))
            .build()
            .unwrap();
            set_base_offset(&mut buf, Offset(50)).unwrap();
            set_partition_leader_epoch(&mut buf, LeaderEpoch(3)).unwrap();
            let stored = StoredBatch::decode(&buf, 1 << 20).unwrap();
            assert_eq!(stored.len(), 4);
            let rebuilt = stored.rebuild(&[false, true, true, false], None).unwrap();
            let header = BatchHeader::parse(&rebuilt).unwrap();
            assert_eq!(header.base_offset, 50);
            assert_eq!(header.last_offset(), 53, "the batch still ends at 53");
            assert_eq!(header.records_count, 2);
            assert_eq!(header.compression().unwrap(), codec);
            assert_eq!(header.partition_leader_epoch, 3);
            assert_eq!(
                (
                    header.producer_id,
                    header.producer_epoch,
                    header.base_sequence
                ),
                (9, 2, 100)
            );
            assert_eq!(header.last_sequence(), 103);
            assert_eq!(header.max_timestamp, 1002);
            assert!(!header.has_delete_horizon());
            // Gaps are refused by the produce-side decoders only.
            assert!(decode_records(&rebuilt, 1 << 20).is_err());
            let records = decode_stored_records(&rebuilt, 1 << 20).unwrap();
            assert_eq!(
                records.iter().map(|r| r.offset).collect::<Vec<_>>(),
                [51, 52]
            );
            assert_eq!(records[0].value.as_deref(), Some(&b"2"[..]));
            assert_eq!(records[1].value, None);
            assert_eq!(records[0].timestamp, 1001);
            assert_eq!(
                records[1].headers,
                vec![(b"h".to_vec(), Some(b"c".to_vec())), (b"n".to_vec(), None)]
            );
            // Real clients read it: kafka-protocol decodes the thinned batch.
            let mut bytes = bytes::Bytes::from(rebuilt);
            let set = RecordBatchDecoder::decode(&mut bytes).unwrap();
            assert_eq!(set.records.len(), 2);
            assert_eq!(set.records[1].offset, 52);
            assert_eq!(set.records[0].sequence, 101);
        }
    }

    #[test]
    fn delete_horizon_moves_the_base_timestamp_not_the_records() {
        let buf = BatchBuilder::default()
            .keyed(1000, b"a", None)
            .keyed(1500, b"b", Some(b"x"))
            .build()
            .unwrap();
        let stored = StoredBatch::decode(&buf, 1 << 20).unwrap();
        let rebuilt = stored.rebuild(&[true, true], Some(90_000)).unwrap();
        let header = validate_batch(&rebuilt, 1 << 20).unwrap();
        assert_eq!(header.delete_horizon_ms(), Some(90_000));
        assert_eq!(header.max_timestamp, 1500);
        let infos = stored_record_infos(&rebuilt, 1 << 20).unwrap();
        assert_eq!(
            infos.iter().map(|i| i.timestamp).collect::<Vec<_>>(),
            [1000, 1500]
        );
        let mut bytes = bytes::Bytes::from(rebuilt.clone());
        let set = RecordBatchDecoder::decode(&mut bytes).unwrap();
        assert!(set.records[0].delete_horizon);
        assert_eq!(set.records[0].timestamp, 1000);
        // Rebuilding again without a horizon keeps the one set.
        let again = StoredBatch::decode(&rebuilt, 1 << 20)
            .unwrap()
            .rebuild(&[false, true], None)
            .unwrap();
        let header = BatchHeader::parse(&again).unwrap();
        assert_eq!(header.delete_horizon_ms(), Some(90_000));
        assert_eq!(
            stored_record_infos(&again, 1 << 20).unwrap()[0].timestamp,
            1500
        );
    }

    #[test]
    fn rebuild_with_nothing_kept_is_an_empty_batch_ending_at_the_same_offset() {
        let mut buf = BatchBuilder {
            compression: Compression::Lz4,
            transactional: true,
            ..BatchBuilder::default()
        }
        .producer(4, 0, 7)
        .value(10, b"a")
        .value(11, b"b")
        .build()
        .unwrap();
        set_base_offset(&mut buf, Offset(20)).unwrap();
        let empty = StoredBatch::decode(&buf, 1 << 20)
            .unwrap()
            .rebuild(&[], None)
            .unwrap();
        let header = BatchHeader::parse(&empty).unwrap();
        assert_eq!(empty.len(), BATCH_HEADER_LEN);
        assert_eq!((header.base_offset, header.last_offset()), (20, 21));
        assert_eq!(header.records_count, 0);
        assert_eq!(header.compression().unwrap(), Compression::None);
        assert!(header.is_transactional());
        assert_eq!(header.last_sequence(), 8);
        assert!(stored_record_infos(&empty, 1 << 20).unwrap().is_empty());
        let decoded = StoredBatch::decode(&empty, 1 << 20).unwrap();
        assert!(decoded.is_empty());
    }

    #[test]
    fn builder_writes_headers_and_control_bits() {
        let buf = BatchBuilder {
            control: true,
            transactional: true,
            ..BatchBuilder::default()
        }
        .record(headed(5, b"k", Some(b"v")))
        .build()
        .unwrap();
        let header = validate_batch(&buf, 1 << 20).unwrap();
        assert!(header.is_control() && header.is_transactional());
        let decoded = decode_records(&buf, 1 << 20).unwrap();
        assert_eq!(decoded[0].headers.len(), 2);
        let stored = StoredBatch::decode(&buf, 1 << 20).unwrap();
        let record = stored.records().next().unwrap();
        assert_eq!(
            (record.key, record.value),
            (Some(&b"k"[..]), Some(&b"v"[..]))
        );
    }

    proptest! {
        #[test]
        fn built_batches_validate_and_round_trip(
            values in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 1..20),
            base in 0i64..1_000_000,
            ts in 0i64..1_000_000_000,
            codec in 0i16..5,
        ) {
            let mut builder = BatchBuilder { compression: Compression::from_attributes(codec).unwrap(), ..BatchBuilder::default() };
            for (i, v) in values.iter().enumerate() {
                builder = builder.value(ts + i as i64, v);
            }
            let mut buf = builder.build().unwrap();
            set_base_offset(&mut buf, Offset(base)).unwrap();
            let header = validate_batch(&buf, 1 << 20).unwrap();
            prop_assert_eq!(header.base_offset, base);
            prop_assert_eq!(header.records_count as usize, values.len());
            prop_assert_eq!(header.last_offset(), base + values.len() as i64 - 1);
            let infos = record_infos(&buf, 1 << 20).unwrap();
            prop_assert_eq!(infos.len(), values.len());
            prop_assert_eq!(infos.last().unwrap().offset, header.last_offset());
        }

        #[test]
        fn any_byte_flip_in_crc_range_is_detected(
            values in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..32), 1..5),
            at in any::<proptest::sample::Index>(),
            flip in 1u8..=255,
        ) {
            let mut builder = BatchBuilder::default();
            for v in &values {
                builder = builder.value(1, v);
            }
            let mut buf = builder.build().unwrap();
            let i = ATTRIBUTES_AT + at.index(buf.len() - ATTRIBUTES_AT);
            buf[i] ^= flip;
            prop_assert!(validate_batch(&buf, 1 << 20).is_err());
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = validate_batch(&bytes, 1 << 20);
            let _ = record_infos(&bytes, 1 << 20);
            let _ = decode_records(&bytes, 1 << 20);
            let _ = decode_stored_records(&bytes, 1 << 20);
            if let Ok(stored) = StoredBatch::decode(&bytes, 1 << 20) {
                let keep = vec![true; stored.len()];
                let _ = stored.rebuild(&keep, Some(1));
            }
            for item in split_batches(&bytes) {
                let _ = item;
            }
        }
    }
}
