//! Compression codecs for record batches, framed the way Kafka clients frame
//! them:
//!
//! - gzip: a standard gzip stream (RFC 1952);
//! - snappy: the Java client's xerial framing (`\x82SNAPPY\0`, two version
//!   ints, then `[u32 length][raw snappy block]…`); a stream without that
//!   magic is read as one raw snappy block, as the Java broker does;
//! - lz4: the LZ4 *frame* format (magic `0x184D2204`);
//! - zstd: standard zstd frames.
//!
//! Decompression takes a limit on the output size so that a small hostile
//! batch cannot make the broker allocate gigabytes.

use std::io::{self, Read, Write};

/// The codec named by bits 0-2 of a batch's attributes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Compression {
    /// Records are stored as they are.
    #[default]
    None,
    /// gzip (attribute value 1).
    Gzip,
    /// snappy, xerial-framed (attribute value 2).
    Snappy,
    /// LZ4 frame format (attribute value 3).
    Lz4,
    /// zstd (attribute value 4).
    Zstd,
}

impl Compression {
    /// Every codec, in attribute order.
    pub const ALL: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];
}

/// Why a payload could not be compressed or decompressed.
#[derive(Debug, thiserror::Error)]
pub enum CompressionError {
    /// Attribute bits 0-2 name no codec Kafka defines (5, 6 or 7).
    #[error("unknown compression codec {0}")]
    UnknownCodec(i16),
    /// The compressed bytes are malformed.
    #[error("invalid {codec:?} data: {reason}")]
    Invalid {
        /// The codec that failed.
        codec: Compression,
        /// What the decoder reported.
        reason: String,
    },
    /// The decompressed payload would exceed the caller's limit.
    #[error("decompressed size exceeds the limit of {limit} bytes")]
    TooLarge {
        /// The limit that was exceeded.
        limit: usize,
    },
}

/// The xerial snappy stream header: magic, version 1, compatible version 1.
const SNAPPY_XERIAL_HEADER: &[u8; 16] = b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01";
/// The magic bytes that identify a xerial snappy stream.
const SNAPPY_XERIAL_MAGIC: &[u8; 8] = b"\x82SNAPPY\x00";
/// Block size the Java client uses when it writes xerial snappy.
const SNAPPY_BLOCK_SIZE: usize = 32 * 1024;

impl Compression {
    /// The codec named by a batch's attributes (bits 0-2).
    pub fn from_attributes(attributes: i16) -> Result<Compression, CompressionError> {
        match attributes & 0x07 {
            0 => Ok(Compression::None),
            1 => Ok(Compression::Gzip),
            2 => Ok(Compression::Snappy),
            3 => Ok(Compression::Lz4),
            4 => Ok(Compression::Zstd),
            other => Err(CompressionError::UnknownCodec(other)),
        }
    }

    /// The codec's value in attribute bits 0-2.
    pub fn id(self) -> i16 {
        match self {
            Compression::None => 0,
            Compression::Gzip => 1,
            Compression::Snappy => 2,
            Compression::Lz4 => 3,
            Compression::Zstd => 4,
        }
    }
}

fn invalid(codec: Compression, err: impl std::fmt::Display) -> CompressionError {
    CompressionError::Invalid {
        codec,
        reason: err.to_string(),
    }
}

/// Reads all of `reader` into a vector, failing once more than `limit` bytes
/// come out.
fn read_limited(
    codec: Compression,
    reader: impl Read,
    limit: usize,
) -> Result<Vec<u8>, CompressionError> {
    let mut out = Vec::new();
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    reader
        .take(cap)
        .read_to_end(&mut out)
        .map_err(|e| invalid(codec, e))?;
    if out.len() > limit {
        return Err(CompressionError::TooLarge { limit });
    }
    Ok(out)
}

fn snappy_raw_block(block: &[u8], out: &mut Vec<u8>, limit: usize) -> Result<(), CompressionError> {
    let len = snap::raw::decompress_len(block).map_err(|e| invalid(Compression::Snappy, e))?;
    if out.len().saturating_add(len) > limit {
        return Err(CompressionError::TooLarge { limit });
    }
    let start = out.len();
    out.resize(start + len, 0);
    let written = snap::raw::Decoder::new()
        .decompress(block, &mut out[start..])
        .map_err(|e| invalid(Compression::Snappy, e))?;
    out.truncate(start + written);
    Ok(())
}

fn snappy_decompress(data: &[u8], limit: usize) -> Result<Vec<u8>, CompressionError> {
    let mut out = Vec::new();
    if data.len() < SNAPPY_XERIAL_HEADER.len() || !data.starts_with(SNAPPY_XERIAL_MAGIC) {
        snappy_raw_block(data, &mut out, limit)?;
        return Ok(out);
    }
    let mut rest = &data[SNAPPY_XERIAL_HEADER.len()..];
    while !rest.is_empty() {
        let Some((len_bytes, tail)) = rest.split_first_chunk::<4>() else {
            return Err(invalid(Compression::Snappy, "truncated block length"));
        };
        let len = u32::from_be_bytes(*len_bytes) as usize;
        if tail.len() < len {
            return Err(invalid(Compression::Snappy, "truncated block"));
        }
        snappy_raw_block(&tail[..len], &mut out, limit)?;
        rest = &tail[len..];
    }
    Ok(out)
}

/// Decompresses a batch's records section (the bytes after the 61-byte
/// header), refusing output larger than `limit` bytes.
pub fn decompress_with_limit(
    codec: Compression,
    data: &[u8],
    limit: usize,
) -> Result<Vec<u8>, CompressionError> {
    match codec {
        Compression::None => {
            if data.len() > limit {
                return Err(CompressionError::TooLarge { limit });
            }
            Ok(data.to_vec())
        }
        Compression::Gzip => read_limited(codec, flate2::read::GzDecoder::new(data), limit),
        Compression::Snappy => snappy_decompress(data, limit),
        Compression::Lz4 => read_limited(codec, lz4_flex::frame::FrameDecoder::new(data), limit),
        Compression::Zstd => {
            let decoder = zstd::stream::read::Decoder::new(data).map_err(|e| invalid(codec, e))?;
            read_limited(codec, decoder, limit)
        }
    }
}

/// Default output limit of [`decompress`]: 256 MiB, far above any batch a
/// broker accepts, low enough to stop a decompression bomb.
pub const DEFAULT_DECOMPRESS_LIMIT: usize = 256 * 1024 * 1024;

/// Decompresses a batch's records section with [`DEFAULT_DECOMPRESS_LIMIT`].
pub fn decompress(codec: Compression, data: &[u8]) -> Result<Vec<u8>, CompressionError> {
    decompress_with_limit(codec, data, DEFAULT_DECOMPRESS_LIMIT)
}

/// Compresses a records section with `codec`, framed as the Java client
/// frames it.
pub fn compress(codec: Compression, data: &[u8]) -> Result<Vec<u8>, CompressionError> {
    match codec {
        Compression::None => Ok(data.to_vec()),
        Compression::Gzip => {
            let mut encoder =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            encoder.write_all(data).map_err(|e| invalid(codec, e))?;
            encoder.finish().map_err(|e| invalid(codec, e))
        }
        Compression::Snappy => {
            let mut out = SNAPPY_XERIAL_HEADER.to_vec();
            let mut encoder = snap::raw::Encoder::new();
            for block in data.chunks(SNAPPY_BLOCK_SIZE) {
                let compressed = encoder.compress_vec(block).map_err(|e| invalid(codec, e))?;
                let len = u32::try_from(compressed.len()).map_err(|e| invalid(codec, e))?;
                out.extend_from_slice(&len.to_be_bytes());
                out.extend_from_slice(&compressed);
            }
            Ok(out)
        }
        Compression::Lz4 => {
            let mut encoder = lz4_flex::frame::FrameEncoder::new(Vec::new());
            encoder.write_all(data).map_err(|e| invalid(codec, e))?;
            encoder.finish().map_err(|e| invalid(codec, e))
        }
        Compression::Zstd => {
            zstd::stream::encode_all(data, 3).map_err(|e: io::Error| invalid(codec, e))
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ALL: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    #[test]
    fn every_codec_round_trips() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        for codec in ALL {
            let packed = compress(codec, &data).unwrap();
            assert_eq!(decompress(codec, &packed).unwrap(), data, "{codec:?}");
        }
    }

    #[test]
    fn snappy_accepts_raw_blocks_without_xerial_framing() {
        let data = b"hello hello hello hello hello hello hello hello".repeat(10);
        let raw = snap::raw::Encoder::new().compress_vec(&data).unwrap();
        assert_eq!(decompress(Compression::Snappy, &raw).unwrap(), data);
    }

    #[test]
    fn snappy_reads_java_client_bytes() {
        // Bytes as the Java client frames a 13-byte payload.
        let java = b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01\x00\x00\x00\x0f\x0d\x30\x18\x00\x00\x00\x01\x0csdfdsf\x00";
        let out = decompress(Compression::Snappy, java).unwrap();
        assert_eq!(out.len(), 13);
        assert!(out.ends_with(b"sdfdsf\x00"));
    }

    #[test]
    fn decompression_stops_at_the_limit() {
        let data = vec![0u8; 1_000_000];
        for codec in ALL {
            let packed = compress(codec, &data).unwrap();
            assert!(
                matches!(
                    decompress_with_limit(codec, &packed, 1000),
                    Err(CompressionError::TooLarge { limit: 1000 })
                ),
                "{codec:?}"
            );
        }
    }

    #[test]
    fn unknown_codec_is_refused() {
        assert!(matches!(
            Compression::from_attributes(5),
            Err(CompressionError::UnknownCodec(5))
        ));
        assert_eq!(
            Compression::from_attributes(0x13).unwrap(),
            Compression::Lz4
        );
    }

    proptest! {
        #[test]
        fn garbage_never_panics(codec in 0i16..5, bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let codec = Compression::from_attributes(codec).unwrap();
            let _ = decompress_with_limit(codec, &bytes, 1 << 20);
        }
    }
}
