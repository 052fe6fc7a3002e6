//! Request decoding and response encoding on top of `kafka-protocol`.
//!
//! The broker hands a whole frame (without its length prefix) to
//! [`decode_request`] together with the versions it serves; the outcome is a
//! decoded request or a typed reason the broker turns into an error response
//! or a closed connection.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::{Decodable, Encodable, VersionRange};

use crate::frame::REQUEST_PREAMBLE_LEN;

/// The first eight bytes of every request, readable before anything else is
/// known about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Preamble {
    /// Raw api key.
    pub api_key: i16,
    /// Raw api version.
    pub api_version: i16,
    /// Correlation id echoed in the response.
    pub correlation_id: i32,
}

impl Preamble {
    /// Reads the preamble; `None` if the frame is shorter than eight bytes.
    pub fn parse(frame: &[u8]) -> Option<Preamble> {
        if frame.len() < REQUEST_PREAMBLE_LEN {
            return None;
        }
        let mut buf = &frame[..REQUEST_PREAMBLE_LEN];
        Some(Preamble {
            api_key: buf.get_i16(),
            api_version: buf.get_i16(),
            correlation_id: buf.get_i32(),
        })
    }
}

/// A request that decoded completely.
#[derive(Debug)]
pub struct DecodedRequest {
    /// The api the request belongs to.
    pub api_key: ApiKey,
    /// The request header (version, correlation id, client id).
    pub header: RequestHeader,
    /// The decoded body.
    pub body: RequestKind,
}

/// Why a frame did not decode into a request.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// Too short to hold a request preamble.
    #[error("frame of {0} bytes is too short for a request header")]
    TooShort(usize),
    /// An api key nobody serves: Kafka closes the connection.
    #[error("unknown api key {0}")]
    UnknownApiKey(i16),
    /// The header itself is malformed.
    #[error("malformed request header: {0}")]
    Header(String),
    /// A known api at a version this broker does not serve.
    #[error("{api_key:?} v{version} is not supported")]
    UnsupportedVersion {
        /// The api.
        api_key: ApiKey,
        /// The header of the request, decoded.
        header: RequestHeader,
        /// The version that was asked for.
        version: i16,
    },
    /// The body does not decode at the version given.
    #[error("malformed {api_key:?} v{version} request body: {reason}")]
    Body {
        /// The api.
        api_key: ApiKey,
        /// The header of the request, decoded.
        header: RequestHeader,
        /// Version the body was decoded as.
        version: i16,
        /// What the decoder said.
        reason: String,
    },
}

/// Decodes one request frame (without its length prefix). `supported` gives
/// the version range this broker serves for an api, or `None` if it serves
/// none of it.
pub fn decode_request(
    frame: Bytes,
    supported: impl Fn(ApiKey) -> Option<VersionRange>,
) -> Result<DecodedRequest, DecodeError> {
    let preamble = Preamble::parse(&frame).ok_or(DecodeError::TooShort(frame.len()))?;
    let api_key = ApiKey::try_from(preamble.api_key)
        .map_err(|_| DecodeError::UnknownApiKey(preamble.api_key))?;
    let range = supported(api_key).ok_or(DecodeError::UnknownApiKey(preamble.api_key))?;
    let version = preamble.api_version;
    let mut buf = frame;
    let header_version = api_key.request_header_version(version);
    let header = RequestHeader::decode(&mut buf, header_version)
        .map_err(|e| DecodeError::Header(e.to_string()))?;
    if version < range.min || version > range.max {
        return Err(DecodeError::UnsupportedVersion {
            api_key,
            header,
            version,
        });
    }
    let body = RequestKind::decode(api_key, &mut buf, version).map_err(|e| DecodeError::Body {
        api_key,
        header: header.clone(),
        version,
        reason: e.to_string(),
    })?;
    Ok(DecodedRequest {
        api_key,
        header,
        body,
    })
}

/// Why a response could not be encoded (a bug in the broker: it built a
/// response that does not fit the version).
#[derive(Debug, thiserror::Error)]
#[error("cannot encode {api_key:?} v{version} response: {reason}")]
pub struct EncodeError {
    /// The api.
    pub api_key: ApiKey,
    /// The version asked for.
    pub version: i16,
    /// What the encoder said.
    pub reason: String,
}

/// Encodes a whole response frame: length prefix, response header, body.
pub fn encode_response(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &ResponseKind,
) -> Result<BytesMut, EncodeError> {
    let mut buf = BytesMut::with_capacity(256);
    buf.put_i32(0);
    encode_response_header(&mut buf, api_key, version, correlation_id)?;
    body.encode(&mut buf, version).map_err(|e| EncodeError {
        api_key,
        version,
        reason: e.to_string(),
    })?;
    let len = (buf.len() - 4) as i32;
    buf[..4].copy_from_slice(&len.to_be_bytes());
    Ok(buf)
}

/// Writes the response header for `api_key` at `version` into `buf`.
pub fn encode_response_header(
    buf: &mut BytesMut,
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
) -> Result<(), EncodeError> {
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    header
        .encode(buf, api_key.response_header_version(version))
        .map_err(|e| EncodeError {
            api_key,
            version,
            reason: e.to_string(),
        })
}
