//! One client connection: read a frame, dispatch it, write the response, in
//! order.
//!
//! Like Kafka's socket server, a connection handles one request at a time
//! (Kafka mutes the channel while a request is in flight): pipelined
//! requests wait in the socket buffer, responses leave in request order and
//! the memory a connection holds is bounded by one frame.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use runnel_protocol::frame::{request_frame_len, FRAME_PREFIX_LEN};
use runnel_protocol::request::{decode_request, DecodedRequest};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::broker::Broker;
use crate::handlers;
use crate::response::{write_chunks, Response};

/// Facts about the connection a handler may need.
#[derive(Debug, Clone)]
pub(crate) struct RequestContext {
    pub broker: Arc<Broker>,
    pub api_version: i16,
    pub correlation_id: i32,
}

pub(crate) struct Connection {
    broker: Arc<Broker>,
    stream: TcpStream,
    peer: SocketAddr,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("peer", &self.peer)
            .finish()
    }
}

enum ReadOutcome {
    Frame(BytesMut),
    Closed,
}

impl Connection {
    pub fn new(broker: Arc<Broker>, stream: TcpStream, peer: SocketAddr) -> Connection {
        let _ = stream.set_nodelay(true);
        Connection {
            broker,
            stream,
            peer,
        }
    }

    /// Serves requests until the peer closes, an unrecoverable error, or
    /// `stop` turns true.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) {
        tracing::debug!(peer = %self.peer, "connection opened");
        loop {
            let frame = tokio::select! {
                _ = stop.changed() => break,
                read = self.read_frame() => match read {
                    Ok(ReadOutcome::Frame(frame)) => frame,
                    Ok(ReadOutcome::Closed) => break,
                    Err(reason) => {
                        tracing::warn!(peer = %self.peer, %reason, "closing connection");
                        break;
                    }
                },
            };
            let response = self.dispatch(frame).await;
            let written = match response {
                Response::Nothing => Ok(()),
                Response::Frame(bytes) => self.stream.write_all(&bytes).await,
                Response::Chunks(chunks) => write_chunks(&mut self.stream, chunks).await,
                Response::Close(reason) => {
                    tracing::warn!(peer = %self.peer, %reason, "closing connection");
                    break;
                }
            };
            if let Err(e) = written {
                tracing::debug!(peer = %self.peer, error = %e, "write failed; closing connection");
                break;
            }
        }
        tracing::debug!(peer = %self.peer, "connection closed");
    }

    async fn read_frame(&mut self) -> Result<ReadOutcome, String> {
        let (idle_ms, max_frame) = {
            let config = self.broker.config.read();
            (
                config.connections_max_idle_ms(),
                usize::try_from(config.socket_request_max_bytes()).unwrap_or(usize::MAX),
            )
        };
        let idle = Duration::from_millis(idle_ms.max(1) as u64);
        let mut prefix = [0u8; FRAME_PREFIX_LEN];
        match tokio::time::timeout(idle, self.stream.read_exact(&mut prefix)).await {
            Err(_) => return Err(format!("idle for more than {idle_ms} ms")),
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                return Ok(ReadOutcome::Closed)
            }
            Ok(Err(e)) => return Err(format!("read failed: {e}")),
            Ok(Ok(_)) => {}
        }
        let len = request_frame_len(prefix, max_frame).map_err(|e| e.to_string())?;
        let mut frame = BytesMut::zeroed(len);
        match tokio::time::timeout(idle, self.stream.read_exact(&mut frame)).await {
            Err(_) => Err(format!(
                "frame of {len} bytes not received within {idle_ms} ms"
            )),
            Ok(Err(e)) => Err(format!("truncated frame ({len} bytes announced): {e}")),
            Ok(Ok(_)) => Ok(ReadOutcome::Frame(frame)),
        }
    }

    async fn dispatch(&mut self, frame: BytesMut) -> Response {
        let decoded = decode_request(frame.freeze(), handlers::served_versions);
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
                };
                tracing::trace!(peer = %self.peer, ?api_key, version = ctx.api_version, "request");
                handlers::handle(&ctx, api_key, body).await
            }
            Err(error) => handlers::decode_failure(&self.broker, self.peer, error),
        }
    }
}
