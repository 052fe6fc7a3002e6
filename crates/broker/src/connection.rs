//! One client connection: read a frame, dispatch it, write the response, in
//! order.
//!
//! Like Kafka's socket server, a connection handles one request at a time
//! (Kafka mutes the channel while a request is in flight): pipelined
//! requests wait in the socket buffer, responses leave in request order and
//! the memory a connection holds is bounded by one frame.
//!
//! Every wait on the client is bounded, so a hostile or broken client can
//! hold neither a connection nor memory for long:
//!
//! - between requests, `connections.max.idle.ms` (as in Kafka);
//! - once a frame's first byte has arrived, the whole frame must arrive
//!   within `socket.request.read.timeout.ms`. Kafka has no such bound (its
//!   idle timer restarts on every byte, so a client trickling one byte a
//!   minute holds a connection forever); the setting is Runnel's own and
//!   keeps the slow-loris case closed;
//! - a response must be written within `connections.max.idle.ms`, so a
//!   client that stops reading cannot pin a response in memory forever.
//!
//! Memory: a frame is refused before anything is allocated when its size
//! prefix exceeds `socket.request.max.bytes`; its buffer then grows with
//! the bytes that actually arrive, so announcing a large frame and sending
//! nothing costs next to nothing; and when `queued.max.request.bytes` is
//! set, the announced size is reserved from a pool shared by every
//! connection before the frame is read, and released once its request has
//! been handled. A connection waiting for that memory stops reading, as
//! Kafka mutes a channel when its memory pool is exhausted.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use runnel_protocol::frame::{request_frame_len, FRAME_PREFIX_LEN};
use runnel_protocol::request::{decode_request, DecodedRequest};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::broker::Broker;
use crate::handlers;
use crate::response::{write_chunks, Response};

/// Facts about the connection a handler may need.
#[derive(Debug, Clone)]
pub(crate) struct RequestContext {
    pub broker: Arc<Broker>,
    pub api_version: i16,
    pub correlation_id: i32,
    /// The request header's client id ("" when absent).
    pub client_id: String,
    /// The client's address.
    pub peer: SocketAddr,
}

/// The bytes of request frames all connections may hold at once
/// (`queued.max.request.bytes`). Shared by every connection of a server.
#[derive(Debug, Clone)]
pub(crate) struct RequestMemory {
    pool: Arc<Semaphore>,
    capacity: usize,
}

impl RequestMemory {
    /// A pool of `max_bytes`; `None` (no bound) when `max_bytes` is not
    /// positive, as Kafka treats `queued.max.request.bytes` = -1.
    pub fn new(max_bytes: i64) -> Option<RequestMemory> {
        let capacity = usize::try_from(max_bytes)
            .ok()
            .filter(|bytes| *bytes > 0)?
            .min(Semaphore::MAX_PERMITS);
        Some(RequestMemory {
            pool: Arc::new(Semaphore::new(capacity)),
            capacity,
        })
    }

    /// Waits until `len` bytes are free and takes them. A frame larger
    /// than the whole pool takes all of it rather than waiting forever
    /// (Kafka's pool likewise lets one oversized request through when it
    /// is otherwise empty).
    async fn reserve(&self, len: usize) -> Option<OwnedSemaphorePermit> {
        let bytes = u32::try_from(len.min(self.capacity)).unwrap_or(u32::MAX);
        self.pool.clone().acquire_many_owned(bytes).await.ok()
    }
}

pub(crate) struct Connection {
    broker: Arc<Broker>,
    stream: TcpStream,
    peer: SocketAddr,
    memory: Option<RequestMemory>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("peer", &self.peer)
            .finish()
    }
}

/// A request frame and the share of `queued.max.request.bytes` it holds
/// until its request has been handled.
struct Frame {
    bytes: Bytes,
    memory: Option<OwnedSemaphorePermit>,
}

enum ReadOutcome {
    Frame(Frame),
    /// The peer closed the connection between requests.
    Closed,
}

/// The first allocation for a frame's bytes; the buffer doubles from here
/// as bytes arrive, up to the announced size.
const INITIAL_FRAME_CAPACITY: usize = 64 * 1024;

/// The connection's bounds, read from the configuration before each frame
/// so that dynamic updates apply to the next request.
#[derive(Debug, Clone, Copy)]
struct Bounds {
    idle_ms: i64,
    read_timeout_ms: i64,
    max_frame_bytes: usize,
}

impl Bounds {
    fn idle(&self) -> Duration {
        Duration::from_millis(self.idle_ms.max(1) as u64)
    }

    fn read_timeout(&self) -> Duration {
        Duration::from_millis(self.read_timeout_ms.max(1) as u64)
    }
}

impl Connection {
    pub fn new(
        broker: Arc<Broker>,
        stream: TcpStream,
        peer: SocketAddr,
        memory: Option<RequestMemory>,
    ) -> Connection {
        let _ = stream.set_nodelay(true);
        Connection {
            broker,
            stream,
            peer,
            memory,
        }
    }

    /// Serves requests until the peer closes, an unrecoverable error, or
    /// `stop` turns true. Every close for a reason other than the peer's
    /// own clean close logs one warning naming the peer and the reason.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) {
        tracing::debug!(peer = %self.peer, "connection opened");
        loop {
            let bounds = self.bounds();
            let frame = tokio::select! {
                _ = stop.changed() => break,
                read = self.read_frame(bounds) => match read {
                    Ok(ReadOutcome::Frame(frame)) => frame,
                    Ok(ReadOutcome::Closed) => break,
                    Err(reason) => {
                        tracing::warn!(peer = %self.peer, %reason, "closing connection");
                        break;
                    }
                },
            };
            let response = self.dispatch(frame.bytes).await;
            drop(frame.memory);
            let write = async {
                match response {
                    Response::Nothing => Ok(Ok(())),
                    Response::Frame(bytes) => Ok(self.stream.write_all(&bytes).await),
                    Response::Chunks(chunks) => Ok(write_chunks(&mut self.stream, chunks).await),
                    Response::Close(reason) => Err(reason),
                }
            };
            match tokio::time::timeout(bounds.idle(), write).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(e))) => {
                    tracing::debug!(peer = %self.peer, error = %e, "write failed; closing connection");
                    break;
                }
                Ok(Err(reason)) => {
                    tracing::warn!(peer = %self.peer, %reason, "closing connection");
                    break;
                }
                Err(_) => {
                    tracing::warn!(
                        peer = %self.peer,
                        reason = %format!(
                            "response not read by the client within {} ms (connections.max.idle.ms)",
                            bounds.idle_ms
                        ),
                        "closing connection"
                    );
                    break;
                }
            }
        }
        tracing::debug!(peer = %self.peer, "connection closed");
    }

    fn bounds(&self) -> Bounds {
        let config = self.broker.config.read();
        Bounds {
            idle_ms: config.connections_max_idle_ms(),
            read_timeout_ms: config.socket_request_read_timeout_ms(),
            max_frame_bytes: usize::try_from(config.socket_request_max_bytes())
                .unwrap_or(usize::MAX),
        }
    }

    /// Reads one request frame. The wait for its first byte is bounded by
    /// `connections.max.idle.ms`; from then on the whole frame (size prefix
    /// included) by `socket.request.read.timeout.ms`, not counting time
    /// spent waiting for `queued.max.request.bytes` to free up.
    async fn read_frame(&mut self, bounds: Bounds) -> Result<ReadOutcome, String> {
        let mut prefix = [0u8; FRAME_PREFIX_LEN];
        let first = match tokio::time::timeout(bounds.idle(), self.stream.read(&mut prefix)).await {
            Err(_) => {
                return Err(format!(
                    "idle for more than {} ms (connections.max.idle.ms)",
                    bounds.idle_ms
                ))
            }
            Ok(Ok(0)) => return Ok(ReadOutcome::Closed),
            Ok(Ok(read)) => read,
            Ok(Err(e)) => return Err(format!("read failed: {e}")),
        };
        let started = Instant::now();
        let too_slow = |what: &str| {
            format!(
                "{what} not received within {} ms (socket.request.read.timeout.ms)",
                bounds.read_timeout_ms
            )
        };
        let deadline = started + bounds.read_timeout();
        match tokio::time::timeout_at(deadline, self.stream.read_exact(&mut prefix[first..])).await
        {
            Err(_) => return Err(too_slow("frame size prefix")),
            Ok(Err(e)) => return Err(format!("truncated frame size prefix: {e}")),
            Ok(Ok(_)) => {}
        }
        let len = request_frame_len(prefix, bounds.max_frame_bytes).map_err(|e| e.to_string())?;
        let waiting = Instant::now();
        let memory = match &self.memory {
            Some(pool) => Some(
                pool.reserve(len)
                    .await
                    .ok_or_else(|| "queued.max.request.bytes pool is closed".to_string())?,
            ),
            None => None,
        };
        let deadline = deadline + waiting.elapsed();
        let mut bytes = Vec::with_capacity(len.min(INITIAL_FRAME_CAPACITY));
        match tokio::time::timeout_at(deadline, read_body(&mut self.stream, &mut bytes, len)).await
        {
            Err(_) => Err(too_slow(&format!(
                "frame of {len} bytes ({} received)",
                bytes.len()
            ))),
            Ok(Err(e)) => Err(format!(
                "truncated frame: {} of {len} announced bytes received: {e}",
                bytes.len()
            )),
            Ok(Ok(())) => Ok(ReadOutcome::Frame(Frame {
                bytes: Bytes::from(bytes),
                memory,
            })),
        }
    }

    async fn dispatch(&mut self, frame: Bytes) -> Response {
        let decoded = decode_request(frame, handlers::served_versions);
        match decoded {
            Ok(DecodedRequest {
                api_key,
                header,
                body,
            }) => {
                let ctx = RequestContext {
                    broker: self.broker.clone(),
                    api_version: header.request_api_version,
                    correlation_id: header.correlation_id,
                    client_id: header
                        .client_id
                        .as_ref()
                        .map(|c| c.to_string())
                        .unwrap_or_default(),
                    peer: self.peer,
                };
                tracing::trace!(peer = %self.peer, ?api_key, version = ctx.api_version, "request");
                handlers::handle(&ctx, api_key, body).await
            }
            Err(error) => handlers::decode_failure(&self.broker, self.peer, error),
        }
    }
}

/// Reads exactly `len` bytes into `bytes`, growing it as they arrive:
/// doubling from its initial capacity, never past `len`, so the memory held
/// stays within twice what the client has actually sent.
async fn read_body(stream: &mut TcpStream, bytes: &mut Vec<u8>, len: usize) -> std::io::Result<()> {
    while bytes.len() < len {
        if bytes.len() == bytes.capacity() {
            let grow = bytes.capacity().max(INITIAL_FRAME_CAPACITY);
            bytes.reserve_exact(grow.min(len - bytes.len()));
        }
        let wanted = (len - bytes.len()).min(bytes.capacity() - bytes.len());
        let read = (&mut *stream).take(wanted as u64).read_buf(bytes).await?;
        if read == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
    }
    Ok(())
}
