//! One TCP connection to one broker: pipelined requests, responses matched by
//! correlation id, API versions negotiated once at connect.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, RequestHeader, ResponseHeader,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

use crate::error::{Error, Result};

/// Largest response frame accepted (a Fetch may carry `fetch.max.bytes` plus overhead).
const MAX_RESPONSE_BYTES: usize = 512 * 1024 * 1024;

type Waiter = oneshot::Sender<Result<Bytes>>;

/// A connection to one broker. Cheap to share; requests from many tasks are
/// pipelined and each caller gets its own response.
#[derive(Debug)]
pub struct Connection {
    addr: String,
    client_id: String,
    request_timeout: Duration,
    writer: tokio::sync::Mutex<OwnedWriteHalf>,
    pending: Arc<Mutex<HashMap<i32, Waiter>>>,
    next_correlation: AtomicI32,
    closed: Arc<AtomicBool>,
    versions: HashMap<i16, (i16, i16)>,
    reader: tokio::task::JoinHandle<()>,
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl Connection {
    /// Opens a connection to `addr` and asks the broker which API versions it serves.
    pub async fn connect(
        addr: &str,
        client_id: &str,
        connect_timeout: Duration,
        request_timeout: Duration,
    ) -> Result<Connection> {
        let stream = tokio::time::timeout(connect_timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| Error::Connection {
                addr: addr.to_owned(),
                reason: format!("no connection within {connect_timeout:?}"),
            })?
            .map_err(|e| Error::Connection {
                addr: addr.to_owned(),
                reason: e.to_string(),
            })?;
        let _ = stream.set_nodelay(true);
        let (read, write) = stream.into_split();
        let pending: Arc<Mutex<HashMap<i32, Waiter>>> = Arc::default();
        let closed = Arc::new(AtomicBool::new(false));
        let reader = tokio::spawn(read_responses(
            read,
            addr.to_owned(),
            pending.clone(),
            closed.clone(),
        ));
        let mut connection = Connection {
            addr: addr.to_owned(),
            client_id: client_id.to_owned(),
            request_timeout,
            writer: tokio::sync::Mutex::new(write),
            pending,
            next_correlation: AtomicI32::new(1),
            closed,
            versions: HashMap::new(),
            reader,
        };
        connection.versions = connection.negotiate_versions().await?;
        Ok(connection)
    }

    /// `host:port` of the broker.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Whether the connection broke; a broken connection is replaced, never reused.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// The versions of `api` the broker serves, from its ApiVersions answer.
    pub fn broker_versions(&self, api: ApiKey) -> Option<(i16, i16)> {
        self.versions.get(&(api as i16)).copied()
    }

    /// The highest version of `R` both sides speak, capped at `at_most`.
    pub fn version_for<R: Request>(&self, at_most: Option<i16>) -> Result<i16> {
        let ours = R::VERSIONS;
        let unsupported = |broker: String| Error::UnsupportedVersion {
            api: api_name(R::KEY),
            broker,
        };
        let (min, max) = self
            .versions
            .get(&R::KEY)
            .copied()
            .ok_or_else(|| unsupported("none".into()))?;
        let top = ours.max.min(max).min(at_most.unwrap_or(i16::MAX));
        if top < ours.min.max(min) {
            return Err(unsupported(format!("v{min}-v{max}")));
        }
        Ok(top)
    }

    /// Sends `request` at the best common version and waits for its response.
    pub async fn send<R: Request>(&self, request: &R) -> Result<R::Response> {
        let version = self.version_for::<R>(None)?;
        self.send_version(request, version).await
    }

    /// Sends `request` at `version` and waits for its response.
    pub async fn send_version<R: Request>(&self, request: &R, version: i16) -> Result<R::Response> {
        self.send_version_within(request, version, self.request_timeout)
            .await
    }

    /// Sends `request` at the best common version and waits up to `timeout`
    /// for its response, for requests the broker may legitimately hold longer
    /// than `request.timeout.ms` (JoinGroup waits for the whole group).
    pub async fn send_within<R: Request>(
        &self,
        request: &R,
        timeout: Duration,
    ) -> Result<R::Response> {
        let version = self.version_for::<R>(None)?;
        self.send_version_within(request, version, timeout).await
    }

    async fn send_version_within<R: Request>(
        &self,
        request: &R,
        version: i16,
        timeout: Duration,
    ) -> Result<R::Response> {
        let (correlation, rx) = self.write_request(request, version, true).await?;
        let rx = rx.expect("a response is expected");
        let frame = match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(result)) => result?,
            Ok(Err(_)) => return Err(self.broken("the connection closed")),
            Err(_) => {
                self.pending.lock().remove(&correlation);
                return Err(Error::Timeout(format!(
                    "{} v{version} to {} after {:?}",
                    api_name(R::KEY),
                    self.addr,
                    timeout
                )));
            }
        };
        decode_response::<R>(frame, version)
    }

    /// Sends a request the broker does not answer (Produce with acks=0).
    pub async fn send_oneway<R: Request>(&self, request: &R, version: i16) -> Result<()> {
        self.write_request(request, version, false)
            .await
            .map(|_| ())
    }

    async fn write_request<R: Request>(
        &self,
        request: &R,
        version: i16,
        expect_response: bool,
    ) -> Result<(i32, Option<oneshot::Receiver<Result<Bytes>>>)> {
        if self.is_closed() {
            return Err(self.broken("the connection is closed"));
        }
        let correlation = self.next_correlation.fetch_add(1, Ordering::Relaxed);
        let frame = encode_request(request, version, correlation, &self.client_id)?;
        let rx = if expect_response {
            let (tx, rx) = oneshot::channel();
            self.pending.lock().insert(correlation, tx);
            Some(rx)
        } else {
            None
        };
        let mut writer = self.writer.lock().await;
        if let Err(e) = writer.write_all(&frame).await {
            self.pending.lock().remove(&correlation);
            self.closed.store(true, Ordering::Release);
            return Err(self.broken(&e.to_string()));
        }
        Ok((correlation, rx))
    }

    fn broken(&self, reason: &str) -> Error {
        Error::Connection {
            addr: self.addr.clone(),
            reason: reason.to_owned(),
        }
    }

    async fn negotiate_versions(&self) -> Result<HashMap<i16, (i16, i16)>> {
        let request = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("runnel-client"))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        let mut answer: ApiVersionsResponse = self.send_version(&request, 3).await?;
        // KIP-511: a broker that does not know v3 answers v0 with UNSUPPORTED_VERSION.
        if answer.error_code == 35 {
            answer = self.send_version(&ApiVersionsRequest::default(), 0).await?;
        }
        Error::check(answer.error_code, None, || {
            format!("ApiVersions to {}", self.addr)
        })?;
        Ok(answer
            .api_keys
            .iter()
            .map(|k| (k.api_key, (k.min_version, k.max_version)))
            .collect())
    }
}

/// The API's name for messages, e.g. "Fetch".
pub(crate) fn api_name(key: i16) -> String {
    ApiKey::try_from(key)
        .map(|k| format!("{k:?}").trim_end_matches("Key").to_owned())
        .unwrap_or_else(|_| format!("api {key}"))
}

fn encode_request<R: Request>(
    request: &R,
    version: i16,
    correlation: i32,
    client_id: &str,
) -> Result<BytesMut> {
    let header = RequestHeader::default()
        .with_request_api_key(R::KEY)
        .with_request_api_version(version)
        .with_correlation_id(correlation)
        .with_client_id(Some(StrBytes::from_string(client_id.to_owned())));
    let mut buf = BytesMut::with_capacity(128);
    buf.put_i32(0);
    let encode_error =
        |e: String| Error::Protocol(format!("encoding {} v{version}: {e}", api_name(R::KEY)));
    header
        .encode(&mut buf, R::header_version(version))
        .map_err(|e| encode_error(e.to_string()))?;
    request
        .encode(&mut buf, version)
        .map_err(|e| encode_error(e.to_string()))?;
    let len = (buf.len() - 4) as i32;
    buf[..4].copy_from_slice(&len.to_be_bytes());
    Ok(buf)
}

fn decode_response<R: Request>(mut frame: Bytes, version: i16) -> Result<R::Response> {
    let api = api_name(R::KEY);
    let header_version = <R::Response as HeaderVersion>::header_version(version);
    ResponseHeader::decode(&mut frame, header_version)
        .map_err(|e| Error::Protocol(format!("{api} v{version} response header: {e}")))?;
    let body = <R::Response as Decodable>::decode(&mut frame, version)
        .map_err(|e| Error::Protocol(format!("{api} v{version} response: {e}")))?;
    Ok(body)
}

async fn read_responses(
    mut read: OwnedReadHalf,
    addr: String,
    pending: Arc<Mutex<HashMap<i32, Waiter>>>,
    closed: Arc<AtomicBool>,
) {
    let reason = loop {
        let len = match read.read_i32().await {
            Ok(len) => len,
            Err(e) => break e.to_string(),
        };
        if len < 4 || len as usize > MAX_RESPONSE_BYTES {
            break format!("response frame of {len} bytes");
        }
        let mut frame = vec![0u8; len as usize];
        if let Err(e) = read.read_exact(&mut frame).await {
            break e.to_string();
        }
        let frame = Bytes::from(frame);
        let correlation = (&frame[..4]).get_i32();
        if let Some(waiter) = pending.lock().remove(&correlation) {
            let _ = waiter.send(Ok(frame));
        } else {
            tracing::debug!(%addr, correlation, "response nobody waits for");
        }
    };
    closed.store(true, Ordering::Release);
    tracing::debug!(%addr, %reason, "connection closed");
    for (_, waiter) in pending.lock().drain() {
        let _ = waiter.send(Err(Error::Connection {
            addr: addr.clone(),
            reason: reason.clone(),
        }));
    }
}
