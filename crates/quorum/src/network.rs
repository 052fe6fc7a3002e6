//! Connections to other nodes' quorum listeners: raft's RPCs and the
//! controller API, over one persistent TCP connection per peer.

use std::io;
use std::time::Duration;

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Timeout, Unreachable,
};
use openraft::network::{RPCOption, RPCTypes, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::BasicNode;
use tokio::net::TcpStream;

use crate::rpc::{read_message, write_message, Request, Response};
use crate::{NodeId, TypeConfig};

/// How long connecting to a peer may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Why a call to a peer failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The peer could not be reached (or refused our cluster).
    #[error("cannot connect to {addr}: {source}")]
    Connect { addr: String, source: io::Error },
    /// The connection broke or the peer sent something unreadable.
    #[error("connection to {addr} failed: {source}")]
    Io { addr: String, source: io::Error },
    #[error("no answer from {addr} within {timeout:?}")]
    Timeout { addr: String, timeout: Duration },
}

/// A client of one peer's quorum listener. The connection is made on the
/// first call and remade after any failure.
#[derive(Debug)]
pub struct PeerClient {
    addr: String,
    cluster_id: String,
    me: NodeId,
    conn: Option<TcpStream>,
}

impl PeerClient {
    pub fn new(addr: String, cluster_id: String, me: NodeId) -> PeerClient {
        PeerClient {
            addr,
            cluster_id,
            me,
            conn: None,
        }
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    async fn connect(&self) -> io::Result<TcpStream> {
        let mut stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&self.addr))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
        stream.set_nodelay(true)?;
        let hello = Request::Hello {
            cluster_id: self.cluster_id.clone(),
            from: self.me,
        };
        write_message(&mut stream, &hello).await?;
        match read_message::<_, Response>(&mut stream).await? {
            Some(Response::Welcome) => Ok(stream),
            Some(Response::Refused(why)) => {
                Err(io::Error::new(io::ErrorKind::PermissionDenied, why))
            }
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "the peer did not answer the greeting",
            )),
        }
    }

    /// Sends `request` and waits up to `timeout` for the answer.
    pub async fn call(
        &mut self,
        request: &Request,
        timeout: Duration,
    ) -> Result<Response, CallError> {
        let addr = self.addr.clone();
        let result = tokio::time::timeout(timeout, async {
            if self.conn.is_none() {
                let stream = self.connect().await.map_err(|source| CallError::Connect {
                    addr: addr.clone(),
                    source,
                })?;
                self.conn = Some(stream);
            }
            let io = |source| CallError::Io {
                addr: addr.clone(),
                source,
            };
            let stream = self
                .conn
                .as_mut()
                .ok_or_else(|| io(io::ErrorKind::NotConnected.into()))?;
            write_message(stream, request).await.map_err(io)?;
            read_message::<_, Response>(stream)
                .await
                .map_err(io)?
                .ok_or_else(|| io(io::ErrorKind::UnexpectedEof.into()))
        })
        .await;
        let result = result.unwrap_or_else(|_| {
            Err(CallError::Timeout {
                addr: addr.clone(),
                timeout,
            })
        });
        if result.is_err() {
            self.conn = None;
        }
        result
    }
}

/// Makes [`RaftPeer`]s for openraft.
#[derive(Debug, Clone)]
pub struct NetworkFactory {
    pub cluster_id: String,
    pub me: NodeId,
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = RaftPeer;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> RaftPeer {
        RaftPeer {
            target,
            client: PeerClient::new(node.addr.clone(), self.cluster_id.clone(), self.me),
        }
    }
}

/// Raft's RPCs to one peer.
#[derive(Debug)]
pub struct RaftPeer {
    target: NodeId,
    client: PeerClient,
}

type RpcResult<T, E = openraft::error::Infallible> =
    Result<T, RPCError<NodeId, BasicNode, RaftError<NodeId, E>>>;

impl RaftPeer {
    fn failed<E: std::error::Error>(
        &self,
        action: RPCTypes,
        error: CallError,
    ) -> RPCError<NodeId, BasicNode, RaftError<NodeId, E>> {
        match error {
            CallError::Connect { source, .. } => RPCError::Unreachable(Unreachable::new(&source)),
            CallError::Io { source, .. } => RPCError::Network(NetworkError::new(&source)),
            CallError::Timeout { timeout, .. } => RPCError::Timeout(Timeout {
                action,
                id: self.client.me,
                target: self.target,
                timeout,
            }),
        }
    }

    fn unexpected<E: std::error::Error>(
        &self,
    ) -> RPCError<NodeId, BasicNode, RaftError<NodeId, E>> {
        let e = io::Error::new(
            io::ErrorKind::InvalidData,
            "the peer answered another request",
        );
        RPCError::Network(NetworkError::new(&e))
    }

    fn remote<E: std::error::Error>(
        &self,
        e: RaftError<NodeId, E>,
    ) -> RPCError<NodeId, BasicNode, RaftError<NodeId, E>> {
        RPCError::RemoteError(RemoteError::new(self.target, e))
    }
}

impl RaftNetwork<TypeConfig> for RaftPeer {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<NodeId>> {
        match self
            .client
            .call(&Request::AppendEntries(rpc), option.hard_ttl())
            .await
        {
            Ok(Response::AppendEntries(Ok(r))) => Ok(r),
            Ok(Response::AppendEntries(Err(e))) => Err(self.remote(e)),
            Ok(_) => Err(self.unexpected()),
            Err(e) => Err(self.failed(RPCTypes::AppendEntries, e)),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<NodeId>, InstallSnapshotError> {
        match self
            .client
            .call(&Request::InstallSnapshot(rpc), option.hard_ttl())
            .await
        {
            Ok(Response::InstallSnapshot(Ok(r))) => Ok(r),
            Ok(Response::InstallSnapshot(Err(e))) => Err(self.remote(e)),
            Ok(_) => Err(self.unexpected()),
            Err(e) => Err(self.failed(RPCTypes::InstallSnapshot, e)),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> RpcResult<VoteResponse<NodeId>> {
        match self
            .client
            .call(&Request::Vote(rpc), option.hard_ttl())
            .await
        {
            Ok(Response::Vote(Ok(r))) => Ok(r),
            Ok(Response::Vote(Err(e))) => Err(self.remote(e)),
            Ok(_) => Err(self.unexpected()),
            Err(e) => Err(self.failed(RPCTypes::Vote, e)),
        }
    }
}
