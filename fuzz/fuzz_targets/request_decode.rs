//! Request frames as a client sends them: the length prefix check, then the
//! body through `decode_request` against the versions the broker
//! advertises. Property: no input panics (or aborts), and a request that
//! decodes reports the api, version and correlation id of its preamble.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use runnel_protocol::frame::{request_frame_len, FRAME_PREFIX_LEN, REQUEST_PREAMBLE_LEN};
use runnel_protocol::request::{decode_request, Preamble};

/// `socket.request.max.bytes`' default.
const MAX_REQUEST_BYTES: usize = 100 * 1024 * 1024;

fuzz_target!(|data: &[u8]| {
    if let Some((prefix, _)) = data.split_first_chunk::<FRAME_PREFIX_LEN>() {
        if let Ok(len) = request_frame_len(*prefix, MAX_REQUEST_BYTES) {
            assert!((REQUEST_PREAMBLE_LEN..=MAX_REQUEST_BYTES).contains(&len));
        }
    }
    let frame = Bytes::copy_from_slice(data);
    if let Ok(request) = decode_request(frame, runnel_fuzz::supported) {
        let preamble = Preamble::parse(data).expect("a decoded request has a preamble");
        assert_eq!(request.api_key as i16, preamble.api_key);
        assert_eq!(request.header.request_api_version, preamble.api_version);
        assert_eq!(request.header.correlation_id, preamble.correlation_id);
    }
});
