//! Sans-io Kafka codec: frame reading, request header decoding and api-key
//! dispatch types, the record-batch v2 view and compression codecs.
//!
//! This crate knows bytes and Kafka's message types; it must not know about
//! sockets, tokio, files or the broker's state.
#![deny(clippy::unwrap_used)]

pub mod batch;
pub mod compression;
pub mod frame;
pub mod request;
