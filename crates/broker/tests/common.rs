//! Shared helpers for the broker's socket-level tests: a started server in
//! its own temp dir and a raw client that speaks frames.
#![allow(dead_code)]

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use runnel_broker::{RunningServer, Server};
use runnel_model::config::{BrokerConfig, ConfigSources};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

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
        self.correlation_id += 1;
        let correlation_id = self.correlation_id;
        let mut body = BytesMut::new();
        RequestHeader::default()
            .with_request_api_key(api_key as i16)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(StrBytes::from_static_str("runnel-test")))
            .encode(&mut body, api_key.request_header_version(version))
            .unwrap();
        request.encode(&mut body, version).unwrap();
        self.send_frame(&body).await;
        let mut frame = self.read_frame().await.expect("response frame");
        let header =
            ResponseHeader::decode(&mut frame, api_key.response_header_version(version)).unwrap();
        assert_eq!(header.correlation_id, correlation_id);
        let response = Resp::decode(&mut frame, version).unwrap();
        assert!(
            !frame.has_remaining(),
            "undecoded bytes left in the response"
        );
        response
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
