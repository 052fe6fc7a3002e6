//! Shared pieces of Runnel's fuzz targets: the version table the request
//! target decodes against, and the byte layout the `segment_recovery`
//! target reads its input as (also written by `gen-corpus`, so the seeds and
//! the target cannot disagree about it).

use std::collections::HashMap;
use std::sync::OnceLock;

use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::VersionRange;

/// The broker binary's allocator, so that every target meets hostile input
/// with the defences production has (kafka-protocol reserves array
/// capacities read from the wire; see `runnel_broker::ReservingAllocator`).
#[global_allocator]
static ALLOCATOR: runnel_broker::ReservingAllocator = runnel_broker::ReservingAllocator;

/// The version ranges the broker advertises, by api key. Produce is
/// advertised from v0 although served from v3, so decoding against this
/// table covers every version a client can reach the decoder with.
pub fn supported(api_key: ApiKey) -> Option<VersionRange> {
    static TABLE: OnceLock<HashMap<ApiKey, VersionRange>> = OnceLock::new();
    TABLE
        .get_or_init(|| {
            runnel_broker::supported_versions()
                .into_iter()
                .filter_map(|(key, min, max)| {
                    let key = ApiKey::try_from(key).ok()?;
                    Some((key, VersionRange { min, max }))
                })
                .collect()
        })
        .get(&api_key)
        .copied()
}

/// Flag bit: open the log as after a clean shutdown (trust the indexes).
pub const FLAG_CLEAN_SHUTDOWN: u8 = 0x01;
/// Flag bit: rewrite the CRC of every well-framed batch before writing the
/// segment, so mutations behind the CRC reach the checks after it.
pub const FLAG_FIX_CRCS: u8 = 0x02;
/// Flag bit: split the log bytes into two segment files.
pub const FLAG_TWO_SEGMENTS: u8 = 0x04;

/// One fuzz input of `segment_recovery`, decoded.
///
/// Layout: `flags u8, index_len u8, time_index_len u8, split u16 BE`, then
/// `index_len` bytes of `.index`, `time_index_len` bytes of `.timeindex`,
/// and the rest is the `.log` file. With [`FLAG_TWO_SEGMENTS`] the log bytes
/// are cut at `split % len` into a first segment at offset 0 and a second
/// one named after the base offset of its first batch header.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SegmentInput {
    /// `FLAG_*` bits.
    pub flags: u8,
    /// Contents of `00000000000000000000.index`; not written when empty.
    pub index: Vec<u8>,
    /// Contents of `00000000000000000000.timeindex`; not written when empty.
    pub time_index: Vec<u8>,
    /// Where the log bytes are cut with [`FLAG_TWO_SEGMENTS`].
    pub split: u16,
    /// The segment bytes.
    pub log: Vec<u8>,
}

/// Bytes before the index parts.
const SEGMENT_INPUT_PREFIX: usize = 5;

impl SegmentInput {
    /// Reads an input; `None` if it is shorter than its own prefix says.
    pub fn parse(data: &[u8]) -> Option<SegmentInput> {
        let (prefix, rest) = data.split_first_chunk::<SEGMENT_INPUT_PREFIX>()?;
        let (index, rest) = rest.split_at_checked(usize::from(prefix[1]))?;
        let (time_index, log) = rest.split_at_checked(usize::from(prefix[2]))?;
        Some(SegmentInput {
            flags: prefix[0],
            index: index.to_vec(),
            time_index: time_index.to_vec(),
            split: u16::from_be_bytes([prefix[3], prefix[4]]),
            log: log.to_vec(),
        })
    }

    /// The inverse of [`SegmentInput::parse`]; index parts longer than 255
    /// bytes are cut.
    pub fn encode(&self) -> Vec<u8> {
        let index = &self.index[..self.index.len().min(255)];
        let time_index = &self.time_index[..self.time_index.len().min(255)];
        let mut out = vec![self.flags, index.len() as u8, time_index.len() as u8];
        out.extend_from_slice(&self.split.to_be_bytes());
        out.extend_from_slice(index);
        out.extend_from_slice(time_index);
        out.extend_from_slice(&self.log);
        out
    }
}
