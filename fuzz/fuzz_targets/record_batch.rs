//! Record batches as they arrive in a Produce request or sit in a segment:
//! the header view, the splitter, validation, the record walk and the
//! decompressors. Property: no input panics, and the functions agree with
//! each other about what they accept.
#![no_main]

use libfuzzer_sys::fuzz_target;
use runnel_protocol::batch::{
    record_infos, split_batches, validate_batch, BatchHeader, BATCH_HEADER_LEN,
};
use runnel_protocol::compression::{decompress_with_limit, CompressionError};

/// Output limit for decompression: small, so that a bomb costs little time.
const DECOMPRESS_LIMIT: usize = 1 << 20;

fuzz_target!(|data: &[u8]| {
    if let Ok(header) = BatchHeader::parse(data) {
        // The records section under the codec the header names, whatever the
        // lengths say: reaches every decompressor without a valid batch.
        if let Ok(codec) = header.compression() {
            match decompress_with_limit(codec, &data[BATCH_HEADER_LEN..], DECOMPRESS_LIMIT) {
                Ok(out) => assert!(out.len() <= DECOMPRESS_LIMIT),
                Err(CompressionError::TooLarge { limit }) => assert_eq!(limit, DECOMPRESS_LIMIT),
                Err(_) => {}
            }
        }
    }
    check_one(data);
    let mut end = 0;
    for item in split_batches(data) {
        let Ok((at, header)) = item else { break };
        assert_eq!(at, end, "batches are contiguous");
        let len = header.total_len();
        assert!(len >= BATCH_HEADER_LEN);
        assert!(at + len <= data.len());
        assert_eq!(BatchHeader::parse(&data[at..]).ok(), Some(header));
        end = at + len;
        check_one(&data[at..end]);
    }
    assert!(end <= data.len());
});

/// Validates `buf` as one batch and walks its records; where both succeed
/// they must describe the same offsets.
fn check_one(buf: &[u8]) {
    let validated = validate_batch(buf, usize::MAX);
    let infos = record_infos(buf, DECOMPRESS_LIMIT);
    if let Ok(header) = &validated {
        assert_eq!(header.total_len(), buf.len());
        assert!(header.records_count > 0);
        assert_eq!(header.last_offset_delta, header.records_count - 1);
    }
    if let (Ok(header), Ok(infos)) = (validated, infos) {
        assert_eq!(infos.len(), header.records_count as usize);
        for (delta, info) in infos.iter().enumerate() {
            if let Some(offset) = header.base_offset.checked_add(delta as i64) {
                assert_eq!(info.offset, offset);
            }
        }
    }
}
