//! Shared helpers for the broker's socket-level tests: a started server in
//! its own temp dir and a raw client that speaks frames.
#![allow(dead_code)]

#[path = "common/cluster.rs"]
pub mod cluster;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use runnel_broker::{RunningServer, Server};
use runnel_model::config::{BrokerConfig, ConfigSources};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The broker binary's allocator, so that hostile requests meet the same
/// defences here as in production.
#[global_allocator]
static ALLOCATOR: runnel_broker::ReservingAllocator = runnel_broker::ReservingAllocator;

#[derive(Debug)]
pub struct TestBroker {
    pub server: Option<RunningServer>,
    pub dir: tempfile::TempDir,
}

impl TestBroker {
    pub async fn start(extra: &[(&str, &str)]) -> TestBroker {
        let dir = tempfile::tempdir().unwrap();
        Self::start_in(dir, extra).await
    }

    pub async fn start_in(dir: tempfile::TempDir, extra: &[(&str, &str)]) -> TestBroker {
        let mut overrides = vec![
            ("log.dirs".to_string(), dir.path().display().to_string()),
            (
                "listeners".to_string(),
                "PLAINTEXT://127.0.0.1:0".to_string(),
            ),
        ];
        overrides.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let config = BrokerConfig::load(ConfigSources {
            file: None,
            env: Vec::new(),
            overrides,
        })
        .unwrap();
        let server = Server::start(config).await.unwrap();
        TestBroker {
            server: Some(server),
            dir,
        }
    }

    pub fn addr(&self) -> std::net::SocketAddr {
        self.server.as_ref().unwrap().local_addr()
    }

    pub async fn client(&self) -> RawClient {
        RawClient::connect(self.addr()).await
    }

    pub async fn stop(mut self) -> tempfile::TempDir {
        self.server.take().unwrap().shutdown().await.unwrap();
        self.dir
    }
}

/// Encodes a request header and body: a frame without its length prefix.
pub fn encode_request<Req: Encodable>(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    client_id: &str,
    request: &Req,
) -> BytesMut {
    let mut body = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(api_key as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_string(client_id.to_string())))
        .encode(&mut body, api_key.request_header_version(version))
        .unwrap();
    request.encode(&mut body, version).unwrap();
    body
}

#[derive(Debug)]
pub struct RawClient {
    pub stream: TcpStream,
    correlation_id: i32,
}

impl RawClient {
    pub async fn connect(addr: std::net::SocketAddr) -> RawClient {
        RawClient {
            stream: TcpStream::connect(addr).await.unwrap(),
            correlation_id: 0,
        }
    }

    /// Sends a request and decodes the response at the same version.
    pub async fn call<Req, Resp>(&mut self, api_key: ApiKey, version: i16, request: &Req) -> Resp
    where
        Req: Encodable,
        Resp: Decodable,
    {
        self.try_call(api_key, version, request)
            .await
            .expect("response frame")
    }

    /// Like [`RawClient::call`], but `None` when the broker closed the
    /// connection instead of answering.
    pub async fn try_call<Req, Resp>(
        &mut self,
        api_key: ApiKey,
        version: i16,
        request: &Req,
    ) -> Option<Resp>
    where
        Req: Encodable,
        Resp: Decodable,
    {
        self.correlation_id += 1;
        let correlation_id = self.correlation_id;
        let body = encode_request(api_key, version, correlation_id, "runnel-test", request);
        self.send_frame(&body).await;
        let mut frame = self.read_frame().await?;
        let header =
            ResponseHeader::decode(&mut frame, api_key.response_header_version(version)).unwrap();
        assert_eq!(header.correlation_id, correlation_id);
        let response = Resp::decode(&mut frame, version).unwrap();
        assert!(
            !frame.has_remaining(),
            "undecoded bytes left in the response"
        );
        Some(response)
    }

    /// The client's end of the connection: the peer address the broker
    /// logs.
    pub fn local_addr(&self) -> std::net::SocketAddr {
        self.stream.local_addr().unwrap()
    }

    /// Writes bytes as they are, no framing. Errors are ignored: a hostile
    /// client keeps writing after the broker has closed.
    pub async fn send_raw(&mut self, bytes: &[u8]) {
        let _ = self.stream.write_all(bytes).await;
    }

    /// Half-closes the connection: the broker reads EOF.
    pub async fn shutdown_write(&mut self) {
        let _ = self.stream.shutdown().await;
    }

    /// True if the broker closes the connection within `wait`, reading and
    /// discarding anything it sends first.
    pub async fn closed_within(&mut self, wait: std::time::Duration) -> bool {
        let deadline = tokio::time::Instant::now() + wait;
        let mut buf = [0u8; 4096];
        loop {
            match tokio::time::timeout_at(deadline, self.stream.read(&mut buf)).await {
                Err(_) => return false,
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(_)) => continue,
            }
        }
    }

    pub async fn send_frame(&mut self, body: &[u8]) {
        let mut frame = BytesMut::with_capacity(body.len() + 4);
        frame.put_i32(body.len() as i32);
        frame.put_slice(body);
        self.stream.write_all(&frame).await.unwrap();
    }

    /// Reads one response frame; `None` when the broker closed the
    /// connection.
    pub async fn read_frame(&mut self) -> Option<Bytes> {
        let mut prefix = [0u8; 4];
        let read = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            self.stream.read_exact(&mut prefix),
        )
        .await
        .expect("broker answered within 10 s");
        if read.is_err() {
            return None;
        }
        let len = i32::from_be_bytes(prefix) as usize;
        let mut frame = vec![0u8; len];
        self.stream.read_exact(&mut frame).await.ok()?;
        Some(Bytes::from(frame))
    }

    /// True if the broker closed the connection (EOF within 10 s).
    pub async fn is_closed(&mut self) -> bool {
        let mut byte = [0u8; 1];
        matches!(
            tokio::time::timeout(
                std::time::Duration::from_secs(10),
                self.stream.read(&mut byte)
            )
            .await,
            Ok(Ok(0)) | Ok(Err(_))
        )
    }
}

/// Warnings and errors the broker logged, and panics, captured for the
/// whole test process so that a test can check that a rejection was logged
/// with the peer and the reason, and that nothing panicked.
pub mod logs {
    use std::fmt::Write as _;
    use std::net::SocketAddr;
    use std::sync::{Mutex, OnceLock};

    use tracing::field::{Field, Visit};
    use tracing::{span, Event, Level, Metadata, Subscriber};

    /// One captured event: its level and its fields, message included.
    #[derive(Debug, Clone)]
    pub struct Line {
        pub level: Level,
        pub fields: Vec<(String, String)>,
    }

    impl Line {
        fn field(&self, name: &str) -> Option<&str> {
            self.fields
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        }
    }

    impl std::fmt::Display for Line {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "{}", self.level)?;
            for (name, value) in &self.fields {
                write!(f, " {name}={value}")?;
            }
            Ok(())
        }
    }

    static LINES: Mutex<Vec<Line>> = Mutex::new(Vec::new());
    static PANICS: Mutex<Vec<String>> = Mutex::new(Vec::new());
    static INSTALLED: OnceLock<()> = OnceLock::new();

    struct Capture;

    struct Fields(Vec<(String, String)>);

    impl Visit for Fields {
        fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
            let mut text = String::new();
            let _ = write!(text, "{value:?}");
            self.0.push((field.name().to_string(), text));
        }

        fn record_str(&mut self, field: &Field, value: &str) {
            self.0.push((field.name().to_string(), value.to_string()));
        }
    }

    impl Subscriber for Capture {
        fn enabled(&self, metadata: &Metadata<'_>) -> bool {
            *metadata.level() <= Level::WARN
        }

        fn new_span(&self, _: &span::Attributes<'_>) -> span::Id {
            span::Id::from_u64(1)
        }

        fn record(&self, _: &span::Id, _: &span::Record<'_>) {}

        fn record_follows_from(&self, _: &span::Id, _: &span::Id) {}

        fn event(&self, event: &Event<'_>) {
            let mut fields = Fields(Vec::new());
            event.record(&mut fields);
            let line = Line {
                level: *event.metadata().level(),
                fields: fields.0,
            };
            LINES.lock().unwrap_or_else(|e| e.into_inner()).push(line);
        }

        fn enter(&self, _: &span::Id) {}

        fn exit(&self, _: &span::Id) {}
    }

    /// Starts capturing (once per process).
    pub fn capture() {
        INSTALLED.get_or_init(|| {
            let _ = tracing::subscriber::set_global_default(Capture);
            let default_hook = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                let thread = std::thread::current().name().unwrap_or("?").to_string();
                PANICS
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(format!("{thread}: {info}"));
                default_hook(info);
            }));
        });
    }

    /// Waits (up to 5 s) for a warning naming `peer` whose fields mention
    /// `reason`, and returns it.
    pub async fn expect_warning(peer: SocketAddr, reason: &str) -> Line {
        let peer = peer.to_string();
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let found = LINES
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .find(|line| {
                    line.level == Level::WARN
                        && line.field("peer") == Some(peer.as_str())
                        && line.fields.iter().any(|(_, v)| v.contains(reason))
                })
                .cloned();
            if let Some(line) = found {
                return line;
            }
            if tokio::time::Instant::now() >= deadline {
                let lines = LINES.lock().unwrap_or_else(|e| e.into_inner()).clone();
                let lines: Vec<String> = lines.iter().map(ToString::to_string).collect();
                panic!(
                    "no warning for {peer} mentioning {reason:?}; captured:\n{}",
                    lines.join("\n")
                );
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// Fails if anything on this test's thread panicked (the broker's
    /// connection tasks run there: `#[tokio::test]` is single-threaded).
    pub fn assert_no_panics() {
        let thread = std::thread::current().name().unwrap_or("?").to_string();
        let panics = PANICS.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let ours: Vec<&String> = panics
            .iter()
            .filter(|p| p.starts_with(&format!("{thread}: ")))
            .collect();
        assert!(ours.is_empty(), "panics: {ours:?}");
    }
}
