//! Turning one partition's Fetch `records` bytes into [`ConsumerRecord`]s: whole
//! batches only (a response may end in a partial batch), control batches skipped,
//! records below the fetch position skipped (a batch may start before it), aborted
//! transactions skipped under `read_committed`.

use std::collections::HashSet;
use std::sync::Arc;

use bytes::Bytes;
use runnel_protocol::batch::{self, BatchError, BatchHeader};

use crate::consumer::record::{ConsumerRecord, TimestampType};
use crate::error::{Error, Result};
use crate::types::Header;

/// Cap on one batch's decompressed size, so a hostile batch cannot exhaust memory.
const MAX_UNCOMPRESSED: usize = 256 * 1024 * 1024;

/// What one partition's records decoded to.
#[derive(Debug, Default)]
pub(crate) struct Decoded {
    /// Records at or after the fetch offset, in offset order.
    pub records: Vec<ConsumerRecord>,
    /// Where the next fetch starts: after the last whole batch (which may hold no
    /// record for us: a control batch, or records below the fetch offset).
    pub next_offset: i64,
    /// Approximate bytes the records hold, for the prefetch bound.
    pub bytes: usize,
    /// Size of a trailing batch that did not fit, when no whole batch did.
    pub truncated_batch: Option<usize>,
}

/// A transaction the broker reports as aborted within the fetched range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Aborted {
    /// The transaction's producer id.
    pub producer_id: i64,
    /// Its first offset.
    pub first_offset: i64,
}

/// Decodes `buf`, the records of `topic`-`partition` fetched from `fetch_offset`.
/// `aborted` is `Some` under `read_committed`.
pub(crate) fn decode_partition(
    topic: &Arc<str>,
    partition: i32,
    buf: &Bytes,
    fetch_offset: i64,
    check_crcs: bool,
    aborted: Option<&[Aborted]>,
) -> Result<Decoded> {
    let mut out = Decoded {
        next_offset: fetch_offset,
        ..Decoded::default()
    };
    let mut pending_aborts: Vec<Aborted> = aborted.map(<[Aborted]>::to_vec).unwrap_or_default();
    pending_aborts.sort_by_key(|a| std::cmp::Reverse(a.first_offset));
    let mut aborted_producers: HashSet<i64> = HashSet::new();
    let corrupt = |e: BatchError| {
        Error::Protocol(format!(
            "corrupt record batch in {topic}-{partition} fetched at {fetch_offset}: {e}"
        ))
    };
    for (whole, item) in batch::split_batches(buf).enumerate() {
        let (at, header) = match item {
            Ok(item) => item,
            Err(BatchError::TooShort { needed, .. }) => {
                // The response was cut at a size limit inside a batch: fetch it next time.
                if whole == 0 {
                    out.truncated_batch = Some(needed);
                }
                break;
            }
            Err(e) => return Err(corrupt(e)),
        };
        let bytes = &buf[at..at + header.total_len()];
        if header.magic != 2 {
            return Err(corrupt(BatchError::UnsupportedMagic(header.magic)));
        }
        if check_crcs {
            if let Err(e @ BatchError::Crc { .. }) = batch::validate_batch(bytes, usize::MAX) {
                return Err(corrupt(e));
            }
        }
        let next = header.last_offset().saturating_add(1);
        if next <= fetch_offset {
            continue;
        }
        out.next_offset = out.next_offset.max(next);
        if aborted.is_some() && header.has_producer_id() {
            while pending_aborts
                .last()
                .is_some_and(|a| a.first_offset <= header.last_offset())
            {
                if let Some(a) = pending_aborts.pop() {
                    aborted_producers.insert(a.producer_id);
                }
            }
            if header.is_control() {
                if is_abort_marker(bytes)? {
                    aborted_producers.remove(&header.producer_id);
                }
                continue;
            }
            if header.is_transactional() && aborted_producers.contains(&header.producer_id) {
                continue;
            }
        }
        if header.is_control() {
            continue;
        }
        decode_batch(topic, partition, bytes, &header, fetch_offset, &mut out).map_err(corrupt)?;
    }
    Ok(out)
}

/// Whether a control batch holds an ABORT marker (control record key: version i16,
/// type i16 with 0 = abort, 1 = commit).
fn is_abort_marker(bytes: &[u8]) -> Result<bool> {
    let records = batch::decode_stored_records(bytes, MAX_UNCOMPRESSED)
        .map_err(|e| Error::Protocol(format!("corrupt control batch: {e}")))?;
    Ok(records.iter().any(|r| {
        r.key
            .as_deref()
            .is_some_and(|k| k.len() >= 4 && i16::from_be_bytes([k[2], k[3]]) == 0)
    }))
}

fn decode_batch(
    topic: &Arc<str>,
    partition: i32,
    bytes: &[u8],
    header: &BatchHeader,
    fetch_offset: i64,
    out: &mut Decoded,
) -> Result<(), BatchError> {
    let timestamp_type = match header.timestamp_type() {
        batch::TimestampType::CreateTime => TimestampType::CreateTime,
        batch::TimestampType::LogAppendTime => TimestampType::LogAppendTime,
    };
    let leader_epoch =
        (header.partition_leader_epoch >= 0).then_some(header.partition_leader_epoch);
    // Compacted batches have gaps in their offsets: decode as stored.
    for record in batch::decode_stored_records(bytes, MAX_UNCOMPRESSED)? {
        if record.offset < fetch_offset {
            continue;
        }
        let key = record.key.map(Bytes::from);
        let value = record.value.map(Bytes::from);
        out.bytes += 64 + key.as_ref().map_or(0, Bytes::len) + value.as_ref().map_or(0, Bytes::len);
        let headers = record
            .headers
            .into_iter()
            .map(|(name, value)| Header {
                key: String::from_utf8_lossy(&name).into_owned(),
                value: value.map(Bytes::from),
            })
            .collect();
        out.records.push(ConsumerRecord {
            topic: topic.clone(),
            partition,
            offset: record.offset,
            timestamp: record.timestamp,
            timestamp_type,
            key,
            value,
            headers,
            leader_epoch,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use runnel_protocol::batch::{BatchBuilder, Compression, RecordSpec};

    fn batch(base: i64, values: &[&str], compression: Compression) -> Vec<u8> {
        let mut builder = BatchBuilder {
            base_offset: base,
            compression,
            ..BatchBuilder::default()
        };
        for v in values {
            builder = builder.value(1_000, v.as_bytes());
        }
        builder.build().unwrap()
    }

    fn values(decoded: &Decoded) -> Vec<(i64, String)> {
        decoded
            .records
            .iter()
            .map(|r| {
                let v = r.value.as_deref().unwrap_or_default();
                (r.offset, String::from_utf8_lossy(v).into_owned())
            })
            .collect()
    }

    fn topic() -> Arc<str> {
        Arc::from("t")
    }

    #[test]
    fn every_codec_decodes_in_order() {
        for codec in [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let mut buf = batch(0, &["a", "b"], codec);
            buf.extend(batch(2, &["c"], codec));
            let d = decode_partition(&topic(), 0, &Bytes::from(buf), 0, true, None).unwrap();
            assert_eq!(
                values(&d),
                vec![(0, "a".into()), (1, "b".into()), (2, "c".into())],
                "{codec:?}"
            );
            assert_eq!(d.next_offset, 3);
        }
    }

    #[test]
    fn records_below_the_fetch_offset_are_skipped() {
        let buf = Bytes::from(batch(10, &["a", "b", "c"], Compression::None));
        let d = decode_partition(&topic(), 0, &buf, 11, true, None).unwrap();
        assert_eq!(values(&d), vec![(11, "b".into()), (12, "c".into())]);
        assert_eq!(d.next_offset, 13);
    }

    #[test]
    fn a_partial_trailing_batch_is_left_for_the_next_fetch() {
        let mut buf = batch(0, &["a"], Compression::None);
        let second = batch(1, &["b"], Compression::None);
        buf.extend_from_slice(&second[..second.len() - 5]);
        let d = decode_partition(&topic(), 0, &Bytes::from(buf), 0, true, None).unwrap();
        assert_eq!(values(&d), vec![(0, "a".into())]);
        assert_eq!(d.next_offset, 1);
        assert_eq!(d.truncated_batch, None);

        let only_partial = Bytes::from(second[..20].to_vec());
        let d = decode_partition(&topic(), 0, &only_partial, 1, true, None).unwrap();
        assert!(d.records.is_empty());
        assert_eq!(d.next_offset, 1);
        assert!(d.truncated_batch.is_some());
    }

    #[test]
    fn control_batches_advance_the_offset_without_records() {
        let control = BatchBuilder {
            base_offset: 1,
            control: true,
            transactional: true,
            ..BatchBuilder::default()
        }
        .producer(7, 0, -1)
        .record(RecordSpec {
            timestamp: 1,
            key: Some(vec![0, 0, 0, 1]),
            value: Some(vec![0, 0, 0, 0, 0, 0]),
            headers: Vec::new(),
        })
        .build()
        .unwrap();
        let mut buf = batch(0, &["a"], Compression::None);
        buf.extend(control);
        let d = decode_partition(&topic(), 0, &Bytes::from(buf), 0, true, None).unwrap();
        assert_eq!(values(&d), vec![(0, "a".into())]);
        assert_eq!(d.next_offset, 2);
    }

    #[test]
    fn read_committed_skips_aborted_transactions() {
        let txn = |base: i64, pid: i64, v: &str| {
            let mut b = BatchBuilder {
                base_offset: base,
                transactional: true,
                ..BatchBuilder::default()
            }
            .producer(pid, 0, 0)
            .value(1, v.as_bytes());
            b.compression = Compression::None;
            b.build().unwrap()
        };
        let marker = |base: i64, pid: i64, kind: u8| {
            BatchBuilder {
                base_offset: base,
                control: true,
                transactional: true,
                ..BatchBuilder::default()
            }
            .producer(pid, 0, -1)
            .record(RecordSpec {
                timestamp: 1,
                key: Some(vec![0, 0, 0, kind]),
                value: Some(vec![0, 0, 0, 0, 0, 0]),
                headers: Vec::new(),
            })
            .build()
            .unwrap()
        };
        let mut buf = txn(0, 1, "aborted");
        buf.extend(txn(1, 2, "committed"));
        buf.extend(marker(2, 1, 0));
        buf.extend(marker(3, 2, 1));
        let buf = Bytes::from(buf);
        let aborted = [Aborted {
            producer_id: 1,
            first_offset: 0,
        }];
        let d = decode_partition(&topic(), 0, &buf, 0, true, Some(&aborted)).unwrap();
        assert_eq!(values(&d), vec![(1, "committed".into())]);
        assert_eq!(d.next_offset, 4);
        let all = decode_partition(&topic(), 0, &buf, 0, true, None).unwrap();
        assert_eq!(all.records.len(), 2);
    }

    #[test]
    fn a_bad_crc_is_an_error_only_when_checked() {
        let mut buf = batch(0, &["hello"], Compression::None);
        // The value's last byte (the record ends with it and a zero header count).
        let at = buf.len() - 2;
        buf[at] ^= 0xff;
        let buf = Bytes::from(buf);
        let err = decode_partition(&topic(), 0, &buf, 0, true, None).unwrap_err();
        assert!(matches!(err, Error::Protocol(_)), "{err:?}");
        assert!(decode_partition(&topic(), 0, &buf, 0, false, None).is_ok());
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let mut buf = vec![0u8; 70];
        buf[11] = 58; // batch length
        buf[16] = 2; // magic
        let _ = decode_partition(&topic(), 0, &Bytes::from(buf), 0, false, None);
        let _ = decode_partition(&topic(), 0, &Bytes::from(vec![0xff; 100]), 0, false, None);
    }
}
