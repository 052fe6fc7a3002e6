//! [`BatchWriter`]: encodes records one at a time straight into the buffer
//! of a v2 batch, for a producer that appends each record as it is sent.
//!
//! [`BatchBuilder`](super::BatchBuilder) collects owned records and encodes
//! them all at the end (a copy of each key and value, a buffer per record,
//! and one more copy into the output). The writer copies each key and value
//! once, into the records section after a reserved 61-byte header, and
//! [`BatchWriter::finish`] fills the header in place: an uncompressed batch
//! is never copied again; a compressed one is compressed once.

use super::{
    compute_crc, BatchError, ATTRIBUTES_AT, BASE_OFFSET_AT, BASE_SEQUENCE_AT, BASE_TIMESTAMP_AT,
    BATCH_HEADER_LEN, BATCH_LENGTH_AT, CONTROL_BIT, CRC_AT, LAST_OFFSET_DELTA_AT, LEADER_EPOCH_AT,
    LOG_OVERHEAD, MAGIC_AT, MAX_TIMESTAMP_AT, PRODUCER_EPOCH_AT, PRODUCER_ID_AT, RECORDS_COUNT_AT,
    TRANSACTIONAL_BIT,
};
use crate::compression::{self, Compression};

/// The header fields [`BatchWriter::finish`] writes besides those it derives
/// from the records (count, timestamps, length, CRC).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchFields {
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
    /// Attribute bit 4: part of a transaction.
    pub transactional: bool,
    /// Attribute bit 5: a control batch (transaction markers).
    pub control: bool,
}

impl Default for BatchFields {
    fn default() -> Self {
        BatchFields {
            base_offset: 0,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            compression: Compression::None,
            transactional: false,
            control: false,
        }
    }
}

/// A v2 batch being written record by record.
///
/// ```
/// use runnel_protocol::batch::{decode_records, BatchFields, BatchWriter};
///
/// let mut writer = BatchWriter::new();
/// writer.append(1_000, Some(b"k"), Some(b"v1"), [(&b"h"[..], None)]).unwrap();
/// writer.append(1_002, None, None, []).unwrap();
/// let batch = writer.finish(&BatchFields::default()).unwrap();
/// let records = decode_records(&batch, 1 << 20).unwrap();
/// assert_eq!(records[1].timestamp, 1_002);
/// assert_eq!(records[1].value, None);
/// ```
#[derive(Clone, Debug)]
pub struct BatchWriter {
    /// The header (zeros until `finish`), then the records section.
    buf: Vec<u8>,
    count: i32,
    /// The first record's timestamp (-1 before it).
    base_timestamp: i64,
    /// The largest timestamp (-1 before the first record).
    max_timestamp: i64,
}

impl Default for BatchWriter {
    fn default() -> Self {
        BatchWriter::new()
    }
}

impl BatchWriter {
    /// An empty batch.
    pub fn new() -> BatchWriter {
        BatchWriter::with_capacity(0)
    }

    /// An empty batch whose buffer has room for `records_bytes` bytes of
    /// records without growing.
    pub fn with_capacity(records_bytes: usize) -> BatchWriter {
        let mut buf = Vec::with_capacity(BATCH_HEADER_LEN.saturating_add(records_bytes));
        buf.resize(BATCH_HEADER_LEN, 0);
        BatchWriter {
            buf,
            count: 0,
            base_timestamp: -1,
            max_timestamp: -1,
        }
    }

    /// Records appended so far.
    pub fn count(&self) -> usize {
        self.count as usize
    }

    /// Whether no record was appended.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The size of the batch uncompressed: header plus records so far.
    pub fn encoded_len(&self) -> usize {
        self.buf.len()
    }

    /// Appends a record (its offset delta is the number of records before it)
    /// and returns the bytes it added. `headers` are name, value (none for
    /// null) pairs; they are walked twice (size, then bytes), hence `Clone`.
    ///
    /// Fails only when the batch already holds `i32::MAX` records.
    pub fn append<'a, H>(
        &mut self,
        timestamp: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: H,
    ) -> Result<usize, BatchError>
    where
        H: IntoIterator<Item = (&'a [u8], Option<&'a [u8]>)>,
        H::IntoIter: Clone,
    {
        if self.count == i32::MAX {
            return Err(BatchError::InvalidRecord("too many records".into()));
        }
        if self.count == 0 {
            self.base_timestamp = timestamp;
            self.max_timestamp = timestamp;
        } else {
            self.max_timestamp = self.max_timestamp.max(timestamp);
        }
        let timestamp_delta = timestamp.wrapping_sub(self.base_timestamp);
        let offset_delta = i64::from(self.count);
        let headers = headers.into_iter();
        let (header_count, headers_len) = headers_size(headers.clone());
        let body_len = body_len(
            timestamp_delta,
            offset_delta,
            key,
            value,
            header_count,
            headers_len,
        );
        let added = varlong_len(body_len as i64) + body_len;
        let start = self.buf.len();
        self.buf.reserve(added);
        put_varlong(&mut self.buf, body_len as i64);
        self.buf.push(0);
        put_varlong(&mut self.buf, timestamp_delta);
        put_varlong(&mut self.buf, offset_delta);
        put_field(&mut self.buf, key);
        put_field(&mut self.buf, value);
        put_varlong(&mut self.buf, header_count);
        for (name, value) in headers {
            put_field(&mut self.buf, Some(name));
            put_field(&mut self.buf, value);
        }
        debug_assert_eq!(self.buf.len() - start, added, "record size miscomputed");
        self.count += 1;
        Ok(added)
    }

    /// The bytes [`BatchWriter::append`] would add for this record now (to
    /// decide whether it still fits a batch size limit).
    pub fn record_len<'a, H>(
        &self,
        timestamp: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: H,
    ) -> usize
    where
        H: IntoIterator<Item = (&'a [u8], Option<&'a [u8]>)>,
    {
        let timestamp_delta = if self.count == 0 {
            0
        } else {
            timestamp.wrapping_sub(self.base_timestamp)
        };
        let (header_count, headers_len) = headers_size(headers);
        let body_len = body_len(
            timestamp_delta,
            i64::from(self.count),
            key,
            value,
            header_count,
            headers_len,
        );
        varlong_len(body_len as i64) + body_len
    }

    /// Writes the header (compressing the records section first if `fields`
    /// ask for a codec) and returns the batch with a correct CRC. Encodes
    /// exactly what [`BatchBuilder::build`](super::BatchBuilder::build) does
    /// for the same records and fields.
    pub fn finish(mut self, fields: &BatchFields) -> Result<Vec<u8>, BatchError> {
        if fields.compression != Compression::None {
            let section = compression::compress(fields.compression, &self.buf[BATCH_HEADER_LEN..])?;
            self.buf.truncate(BATCH_HEADER_LEN);
            self.buf.extend_from_slice(&section);
        }
        let batch_length =
            i32::try_from(self.buf.len() - LOG_OVERHEAD).map_err(|_| BatchError::TooLarge {
                size: self.buf.len(),
                max: i32::MAX as usize,
            })?;
        let mut attributes = fields.compression.id();
        if fields.transactional {
            attributes |= TRANSACTIONAL_BIT;
        }
        if fields.control {
            attributes |= CONTROL_BIT;
        }
        let buf = &mut self.buf;
        put_at(buf, BASE_OFFSET_AT, &fields.base_offset.to_be_bytes());
        put_at(buf, BATCH_LENGTH_AT, &batch_length.to_be_bytes());
        put_at(buf, LEADER_EPOCH_AT, &(-1i32).to_be_bytes());
        buf[MAGIC_AT] = 2;
        put_at(buf, ATTRIBUTES_AT, &attributes.to_be_bytes());
        put_at(buf, LAST_OFFSET_DELTA_AT, &(self.count - 1).to_be_bytes());
        put_at(buf, BASE_TIMESTAMP_AT, &self.base_timestamp.to_be_bytes());
        put_at(buf, MAX_TIMESTAMP_AT, &self.max_timestamp.to_be_bytes());
        put_at(buf, PRODUCER_ID_AT, &fields.producer_id.to_be_bytes());
        put_at(buf, PRODUCER_EPOCH_AT, &fields.producer_epoch.to_be_bytes());
        put_at(buf, BASE_SEQUENCE_AT, &fields.base_sequence.to_be_bytes());
        put_at(buf, RECORDS_COUNT_AT, &self.count.to_be_bytes());
        let crc = compute_crc(buf);
        put_at(buf, CRC_AT, &crc.to_be_bytes());
        Ok(self.buf)
    }
}

/// Rewrites the producer id, epoch and base sequence of the batch filling
/// `buf` and recomputes the CRC, which covers them: how a producer re-sends a
/// batch whose sequence moved (an earlier batch failed unwritten) without
/// encoding its records again.
pub fn set_producer_fields(
    buf: &mut [u8],
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
) -> Result<(), BatchError> {
    super::check_header_len(buf)?;
    put_at(buf, PRODUCER_ID_AT, &producer_id.to_be_bytes());
    put_at(buf, PRODUCER_EPOCH_AT, &producer_epoch.to_be_bytes());
    put_at(buf, BASE_SEQUENCE_AT, &base_sequence.to_be_bytes());
    let crc = compute_crc(buf);
    put_at(buf, CRC_AT, &crc.to_be_bytes());
    Ok(())
}

/// The number of headers and their encoded size.
fn headers_size<'a>(
    headers: impl IntoIterator<Item = (&'a [u8], Option<&'a [u8]>)>,
) -> (i64, usize) {
    headers
        .into_iter()
        .fold((0, 0), |(count, len), (name, value)| {
            (count + 1, len + field_len(Some(name)) + field_len(value))
        })
}

/// The size of a record after its length prefix.
fn body_len(
    timestamp_delta: i64,
    offset_delta: i64,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    header_count: i64,
    headers_len: usize,
) -> usize {
    1 + varlong_len(timestamp_delta)
        + varlong_len(offset_delta)
        + field_len(key)
        + field_len(value)
        + varlong_len(header_count)
        + headers_len
}

fn put_at(buf: &mut [u8], at: usize, bytes: &[u8]) {
    buf[at..at + bytes.len()].copy_from_slice(bytes);
}

fn zigzag(value: i64) -> u64 {
    ((value << 1) ^ (value >> 63)) as u64
}

/// Bytes of `value` as a zigzag varint.
fn varlong_len(value: i64) -> usize {
    let bits = 64 - (zigzag(value) | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

/// Bytes of a length-prefixed field (-1 for none).
fn field_len(field: Option<&[u8]>) -> usize {
    match field {
        Some(bytes) => varlong_len(bytes.len() as i64) + bytes.len(),
        None => 1,
    }
}

fn put_varlong(out: &mut Vec<u8>, value: i64) {
    let mut v = zigzag(value);
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_field(out: &mut Vec<u8>, field: Option<&[u8]>) {
    match field {
        Some(bytes) => {
            put_varlong(out, bytes.len() as i64);
            out.extend_from_slice(bytes);
        }
        None => out.push(1),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::{decode_records, validate_batch, BatchBuilder, RecordSpec};
    use super::*;
    use proptest::prelude::*;

    fn write(records: &[RecordSpec], fields: &BatchFields) -> Vec<u8> {
        let mut writer = BatchWriter::new();
        for r in records {
            let headers = r.headers.iter().map(|(n, v)| (&n[..], v.as_deref()));
            writer
                .append(r.timestamp, r.key.as_deref(), r.value.as_deref(), headers)
                .unwrap();
        }
        assert_eq!(writer.count(), records.len());
        writer.finish(fields).unwrap()
    }

    fn build(records: &[RecordSpec], fields: &BatchFields) -> Vec<u8> {
        BatchBuilder {
            base_offset: fields.base_offset,
            producer_id: fields.producer_id,
            producer_epoch: fields.producer_epoch,
            base_sequence: fields.base_sequence,
            compression: fields.compression,
            records: records.to_vec(),
            transactional: fields.transactional,
            control: fields.control,
        }
        .build()
        .unwrap()
    }

    fn spec(timestamp: i64, key: Option<&[u8]>, value: Option<&[u8]>) -> RecordSpec {
        RecordSpec {
            timestamp,
            key: key.map(<[u8]>::to_vec),
            value: value.map(<[u8]>::to_vec),
            headers: Vec::new(),
        }
    }

    fn mixed_records() -> Vec<RecordSpec> {
        let mut headed = spec(1_700_000_000_005, Some(b"key"), Some(b"value"));
        headed.headers = vec![
            (b"trace".to_vec(), Some(b"abc".to_vec())),
            (b"null".to_vec(), None),
            (Vec::new(), Some(Vec::new())),
        ];
        vec![
            spec(1_700_000_000_000, None, Some(b"first")),
            headed,
            spec(1_699_999_999_990, Some(b"k"), None),
            spec(1_700_000_000_020, None, None),
            spec(1_700_000_000_001, Some(b""), Some(&[7u8; 300])),
        ]
    }

    #[test]
    fn writer_matches_builder_for_every_codec() {
        let records = mixed_records();
        for compression in Compression::ALL {
            let fields = BatchFields {
                compression,
                producer_id: 42,
                producer_epoch: 3,
                base_sequence: 17,
                ..BatchFields::default()
            };
            let written = write(&records, &fields);
            assert_eq!(written, build(&records, &fields), "{compression:?}");
            validate_batch(&written, 1 << 20).unwrap();
        }
    }

    #[test]
    fn writer_matches_builder_for_many_records_and_control_bits() {
        let records: Vec<RecordSpec> = (0..20_000i64)
            .map(|i| {
                let value = format!("value {i}").into_bytes();
                spec(
                    1_000 + i % 97,
                    (i % 3 == 0).then_some(&b"key"[..]),
                    Some(&value),
                )
            })
            .collect();
        for compression in [Compression::None, Compression::Lz4] {
            let fields = BatchFields {
                compression,
                base_offset: 1_234,
                transactional: true,
                ..BatchFields::default()
            };
            let written = write(&records, &fields);
            assert_eq!(written, build(&records, &fields));
            let decoded = decode_records(&written, 1 << 24).unwrap();
            assert_eq!(decoded.len(), records.len());
            assert_eq!(decoded[19_999].offset, 1_234 + 19_999);
            assert_eq!(decoded[19_999].value.as_deref(), Some(&b"value 19999"[..]));
        }
        let control = BatchFields {
            control: true,
            transactional: true,
            ..BatchFields::default()
        };
        let records = mixed_records();
        assert_eq!(write(&records, &control), build(&records, &control));
    }

    #[test]
    fn an_empty_writer_matches_an_empty_builder() {
        let fields = BatchFields::default();
        assert_eq!(write(&[], &fields), build(&[], &fields));
        assert!(BatchWriter::new().is_empty());
    }

    #[test]
    fn append_reports_the_bytes_it_added() {
        let mut writer = BatchWriter::with_capacity(1024);
        assert_eq!(writer.encoded_len(), BATCH_HEADER_LEN);
        assert_eq!(writer.record_len(5, None, Some(&[1u8; 100]), []), 109);
        let a = writer.append(5, None, Some(&[1u8; 100]), []).unwrap();
        assert_eq!(a, 109, "a 2-byte length, 7 bytes of fields, the value");
        let header = [(&b"h"[..], Some(&b"v"[..]))];
        let predicted = writer.record_len(5_000_000, Some(&[2u8; 200]), None, header);
        let b = writer
            .append(5_000_000, Some(&[2u8; 200]), None, header)
            .unwrap();
        assert_eq!(b, predicted);
        assert_eq!(writer.encoded_len(), BATCH_HEADER_LEN + a + b);
        let batch = writer.finish(&BatchFields::default()).unwrap();
        assert_eq!(batch.len(), BATCH_HEADER_LEN + a + b);
    }

    #[test]
    fn set_producer_fields_gives_the_batch_written_with_them() {
        let records = mixed_records();
        for compression in Compression::ALL {
            let first = BatchFields {
                compression,
                producer_id: 9,
                producer_epoch: 1,
                base_sequence: 100,
                ..BatchFields::default()
            };
            let moved = BatchFields {
                base_sequence: 95,
                ..first
            };
            let mut batch = write(&records, &first);
            set_producer_fields(&mut batch, 9, 1, 95).unwrap();
            assert_eq!(batch, build(&records, &moved), "{compression:?}");
            validate_batch(&batch, 1 << 20).unwrap();
        }
        assert!(set_producer_fields(&mut [0u8; 10], 1, 1, 1).is_err());
    }

    #[test]
    fn varlong_len_matches_the_encoding() {
        for v in [0, 1, -1, 63, 64, -64, -65, 8_191, 8_192, i64::MAX, i64::MIN] {
            let mut out = Vec::new();
            put_varlong(&mut out, v);
            assert_eq!(varlong_len(v), out.len(), "{v}");
        }
    }

    fn arb_field() -> impl Strategy<Value = Option<Vec<u8>>> {
        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..200))
    }

    fn arb_record() -> impl Strategy<Value = RecordSpec> {
        (
            -1i64..4_000_000_000_000,
            arb_field(),
            arb_field(),
            proptest::collection::vec(
                (proptest::collection::vec(any::<u8>(), 0..20), arb_field()),
                0..4,
            ),
        )
            .prop_map(|(timestamp, key, value, headers)| RecordSpec {
                timestamp,
                key,
                value,
                headers,
            })
    }

    proptest! {
        #[test]
        fn writer_round_trips_and_matches_builder(
            records in proptest::collection::vec(arb_record(), 1..40),
            codec in 0usize..5,
        ) {
            let fields = BatchFields { compression: Compression::ALL[codec], ..BatchFields::default() };
            let written = write(&records, &fields);
            prop_assert_eq!(&written, &build(&records, &fields));
            let decoded = decode_records(&written, 1 << 24).unwrap();
            prop_assert_eq!(decoded.len(), records.len());
            for (d, r) in decoded.iter().zip(&records) {
                prop_assert_eq!(d.timestamp, r.timestamp);
                prop_assert_eq!(&d.key, &r.key);
                prop_assert_eq!(&d.value, &r.value);
                prop_assert_eq!(&d.headers, &r.headers);
            }
        }
    }
}
