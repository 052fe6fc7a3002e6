//! What a handler gives back to the connection, and how it reaches the
//! socket: encoded frames by `write_all`, fetched log bytes by `sendfile`
//! straight from the page cache.

use std::io::IoSlice;
use std::os::fd::AsFd;

use bytes::{Bytes, BytesMut};
use runnel_storage::ReadSlice;
use tokio::io::{AsyncWriteExt, Interest};
use tokio::net::TcpStream;

/// One piece of a response frame.
#[derive(Debug)]
pub(crate) enum Chunk {
    Bytes(Bytes),
    /// A byte range of a segment file, sent without copying through user
    /// space.
    File(ReadSlice),
}

impl Chunk {
    pub fn len(&self) -> u64 {
        match self {
            Chunk::Bytes(b) => b.len() as u64,
            Chunk::File(slice) => slice.len,
        }
    }
}

/// A handler's outcome.
#[derive(Debug)]
pub(crate) enum Response {
    /// Nothing is sent (Produce with acks=0).
    Nothing,
    /// A whole encoded frame, length prefix included.
    Frame(BytesMut),
    /// A frame made of pieces whose lengths add up to the prefix in the
    /// first piece.
    Chunks(Vec<Chunk>),
    /// Close the connection without answering (what Kafka does for
    /// requests it cannot parse, and for failed acks=0 produces).
    Close(String),
}

/// Writes `chunks` to `stream`: the in-memory pieces between two file
/// ranges in one `writev`, the file ranges by sendfile.
///
/// A response holding file ranges is written corked (`TCP_CORK`): the
/// connection runs with `TCP_NODELAY`, so otherwise the frame header, each
/// partition's fields and the few trailing bytes would each leave as a
/// packet of their own, and the client would wake for each. Uncorking at
/// the end sends what is left at once, so no latency is added. If the
/// write fails or times out the connection is closed, corked or not.
pub(crate) async fn write_chunks(
    stream: &mut TcpStream,
    chunks: Vec<Chunk>,
) -> std::io::Result<()> {
    let cork = chunks.len() > 1 && chunks.iter().any(|c| matches!(c, Chunk::File(_)));
    if cork {
        rustix::net::sockopt::set_tcp_cork(&*stream, true)?;
    }
    let mut pending: Vec<Bytes> = Vec::new();
    for chunk in chunks {
        match chunk {
            Chunk::Bytes(bytes) => pending.push(bytes),
            Chunk::File(slice) => {
                write_all_vectored(stream, &pending).await?;
                pending.clear();
                send_file(stream, &slice).await?;
            }
        }
    }
    write_all_vectored(stream, &pending).await?;
    if cork {
        rustix::net::sockopt::set_tcp_cork(&*stream, false)?;
    }
    Ok(())
}

/// Writes every byte of `pieces`, in order, with as few `writev` calls as
/// the socket allows.
async fn write_all_vectored(stream: &mut TcpStream, pieces: &[Bytes]) -> std::io::Result<()> {
    if let [one] = pieces {
        return stream.write_all(one).await;
    }
    let mut slices: Vec<IoSlice<'_>> = pieces.iter().map(|piece| IoSlice::new(piece)).collect();
    let mut remaining = &mut slices[..];
    while !remaining.is_empty() {
        let written = stream.write_vectored(remaining).await?;
        if written == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut remaining, written);
    }
    Ok(())
}

async fn send_file(stream: &mut TcpStream, slice: &ReadSlice) -> std::io::Result<()> {
    let mut offset = slice.position;
    let end = slice.position + slice.len;
    while offset < end {
        let remaining = usize::try_from(end - offset).unwrap_or(usize::MAX);
        stream.writable().await?;
        let result = stream.try_io(Interest::WRITABLE, || {
            rustix::fs::sendfile(
                stream.as_fd(),
                slice.file.as_fd(),
                Some(&mut offset),
                remaining,
            )
            .map_err(std::io::Error::from)
        });
        match result {
            Ok(0) => {
                // The file is shorter than the range we promised in the frame
                // length: the stream cannot be repaired, so the caller closes.
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "segment file ended before the fetched range",
                ));
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
