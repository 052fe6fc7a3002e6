//! Kafka framing: every request and response is a big-endian `i32` length
//! followed by that many bytes.

/// Bytes in the length prefix of a frame.
pub const FRAME_PREFIX_LEN: usize = 4;

/// Why a frame's length prefix was refused. The connection cannot be
/// resynchronised after either, so the caller closes it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The prefix is negative or too small to hold a request header.
    #[error("frame length {0} is invalid")]
    InvalidLength(i32),
    /// The prefix exceeds `socket.request.max.bytes`.
    #[error("frame of {size} bytes exceeds socket.request.max.bytes ({max})")]
    TooLarge {
        /// Length the client announced.
        size: usize,
        /// The configured bound.
        max: usize,
    },
}

/// Smallest request body: api key, api version and correlation id.
pub const REQUEST_PREAMBLE_LEN: usize = 8;

/// Parses a request frame's length prefix and checks it against `max`.
///
/// ```
/// use runnel_protocol::frame::{request_frame_len, FrameError};
/// assert_eq!(request_frame_len([0, 0, 0, 12], 100), Ok(12));
/// assert!(matches!(request_frame_len([0, 0, 1, 0], 100), Err(FrameError::TooLarge { .. })));
/// assert_eq!(request_frame_len([255, 255, 255, 255], 100), Err(FrameError::InvalidLength(-1)));
/// ```
pub fn request_frame_len(prefix: [u8; FRAME_PREFIX_LEN], max: usize) -> Result<usize, FrameError> {
    let len = i32::from_be_bytes(prefix);
    if len < REQUEST_PREAMBLE_LEN as i32 {
        return Err(FrameError::InvalidLength(len));
    }
    let size = len as usize;
    if size > max {
        return Err(FrameError::TooLarge { size, max });
    }
    Ok(size)
}
