//! The messages nodes exchange on their quorum listener, and their framing.
//!
//! A connection starts with [`Request::Hello`] naming the cluster; a node
//! of another cluster is refused, so nodes of two clusters never mix. Then
//! requests and responses alternate, one at a time. Each message is a
//! 4-byte big-endian length and that many bytes of JSON.
//!
//! Two families share the listener: raft's own RPCs (vote, append,
//! snapshot) between quorum members, and the controller API brokers use
//! (Kafka's BrokerRegistration, BrokerHeartbeat, AlterPartition and the
//! forwarded admin requests), answered by the active controller.

use std::io;

use openraft::error::{InstallSnapshotError, RaftError};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use runnel_metadata::{
    AlterPartitionError, AlterPartitionRequest, BrokerEpoch, BrokerRegistrationRequest,
    CreateTopicRequest, CreatedTopic, ElectLeadersError, ElectionType, HeartbeatRequest,
    HeartbeatResponse, NewPartitions, OngoingReassignment, PartitionResults, PartitionState,
    Reassignment, ReassignmentError, TopicError, TopicResults,
};
use runnel_model::{BrokerId, PartitionId, TopicName};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use uuid::Uuid;

use crate::{NodeId, TypeConfig};

/// The largest message accepted; a snapshot of a large cluster fits many
/// times over, a corrupt length does not allocate gigabytes.
pub const MAX_MESSAGE_BYTES: usize = 256 << 20;

/// What a node asks another.
#[derive(Debug, Serialize, Deserialize)]
#[allow(clippy::large_enum_variant)]
pub enum Request {
    /// The first message of a connection.
    Hello {
        cluster_id: String,
        from: NodeId,
    },
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    Vote(VoteRequest<NodeId>),
    InstallSnapshot(InstallSnapshotRequest<TypeConfig>),
    Controller(ControllerRequest),
}

/// The answer to a [`Request`].
#[derive(Debug, Serialize, Deserialize)]
pub enum Response {
    Welcome,
    /// The connection is closed after this.
    Refused(String),
    AppendEntries(Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>>),
    Vote(Result<VoteResponse<NodeId>, RaftError<NodeId>>),
    InstallSnapshot(
        Result<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>>,
    ),
    Controller(ControllerReply),
}

/// A request to the active controller.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ControllerRequest {
    /// A broker starting; `quorum_address` is where it receives the
    /// metadata log if it is not a voter.
    RegisterBroker {
        request: BrokerRegistrationRequest,
        quorum_address: String,
    },
    Heartbeat(HeartbeatRequest),
    CreateTopics {
        topics: Vec<CreateTopicRequest>,
        validate_only: bool,
    },
    CreatePartitions {
        topics: Vec<NewPartitions>,
        validate_only: bool,
    },
    DeleteTopics(Vec<TopicName>),
    AlterTopicConfigs {
        topic: TopicName,
        changes: Vec<(String, Option<String>)>,
        validate_only: bool,
    },
    /// A block of producer ids for a broker (Kafka's AllocateProducerIds).
    AllocateProducerIds {
        broker_id: BrokerId,
        broker_epoch: BrokerEpoch,
    },
    /// A partition leader's ISR change (Kafka's AlterPartition, one
    /// partition per request).
    AlterPartition(AlterPartitionRequest),
    /// Preferred or unclean elections (KIP-460); `None` for every
    /// partition.
    ElectLeaders {
        election_type: ElectionType,
        partitions: Option<Vec<(TopicName, PartitionId)>>,
    },
    /// Start (target replicas) or cancel (`None`) reassignments (KIP-455).
    AlterPartitionReassignments {
        reassignments: Vec<Reassignment>,
    },
    /// The reassignments in progress: of these partitions, or all.
    ListPartitionReassignments {
        partitions: Option<Vec<(TopicName, PartitionId)>>,
    },
}

/// The active controller's answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ControllerResponse {
    RegisterBroker(BrokerEpoch),
    Heartbeat(HeartbeatResponse),
    CreateTopics(TopicResults<CreatedTopic>),
    CreatePartitions(TopicResults<()>),
    DeleteTopics(TopicResults<Uuid>),
    AlterTopicConfigs(Result<(), TopicError>),
    /// Producer ids `first..first + count` are this broker's.
    ProducerIds {
        first: i64,
        count: i64,
    },
    /// The partition's committed state after the change, or why not. A
    /// `NewLeaderElected` error comes with a committed change too.
    AlterPartition(Result<PartitionState, AlterPartitionError>),
    ElectLeaders(PartitionResults<(), ElectLeadersError>),
    AlterPartitionReassignments(PartitionResults<(), ReassignmentError>),
    ListPartitionReassignments(Vec<(TopicName, PartitionId, OngoingReassignment)>),
}

/// The answer, and the index of the metadata log at which its effects are
/// committed: a broker whose image has reached it sees them.
pub type ControllerReply = Result<(ControllerResponse, u64), ControllerFailure>;

/// Why the controller did not do what was asked; the names are Kafka's
/// error codes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum ControllerFailure {
    /// This node is not the active controller; `leader` is, if known.
    #[error("this node is not the active controller (the active one is {leader:?})")]
    NotController { leader: Option<NodeId> },
    #[error("broker {0} is not registered")]
    BrokerIdNotRegistered(i32),
    #[error("stale broker epoch: {0}")]
    StaleBrokerEpoch(String),
    #[error("duplicate broker registration: {0}")]
    DuplicateBrokerRegistration(String),
    /// The request could not be completed (the quorum lost its leader,
    /// the node is stopping, an internal error); it may be retried.
    #[error("the controller could not complete the request: {0}")]
    Unavailable(String),
}

/// Writes one message.
pub async fn write_message<W, T>(w: &mut W, message: &T) -> io::Result<()>
where
    W: AsyncWrite + Unpin,
    T: Serialize,
{
    let body = serde_json::to_vec(message).map_err(io::Error::other)?;
    if body.len() > MAX_MESSAGE_BYTES {
        return Err(io::Error::other(format!(
            "message of {} bytes exceeds the limit of {MAX_MESSAGE_BYTES}",
            body.len()
        )));
    }
    let len = u32::try_from(body.len()).map_err(io::Error::other)?;
    let mut frame = Vec::with_capacity(4 + body.len());
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(&body);
    w.write_all(&frame).await?;
    w.flush().await
}

/// Reads one message; `Ok(None)` at a clean end of the stream.
pub async fn read_message<R, T>(r: &mut R) -> io::Result<Option<T>>
where
    R: AsyncRead + Unpin,
    T: DeserializeOwned,
{
    let mut len = [0u8; 4];
    match r.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_MESSAGE_BYTES {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("message of {len} bytes exceeds the limit of {MAX_MESSAGE_BYTES}"),
        ));
    }
    // Grown as the bytes arrive: a length a peer claims but never sends
    // costs nothing.
    let mut body = Vec::with_capacity(len.min(64 << 10));
    r.take(len as u64).read_to_end(&mut body).await?;
    if body.len() < len {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    serde_json::from_slice(&body)
        .map(Some)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn messages_round_trip_and_bad_frames_are_errors() {
        let mut buf = Vec::new();
        let hello = Request::Hello {
            cluster_id: "abc".into(),
            from: 3,
        };
        write_message(&mut buf, &hello).await.expect("write");
        let read: Request = read_message(&mut buf.as_slice())
            .await
            .expect("read")
            .expect("a message");
        assert!(matches!(read, Request::Hello { cluster_id, from: 3 } if cluster_id == "abc"));

        let empty: Option<Request> = read_message(&mut &[][..]).await.expect("clean end");
        assert!(empty.is_none());

        let huge = [0xffu8, 0xff, 0xff, 0xff];
        let err = read_message::<_, Request>(&mut &huge[..])
            .await
            .expect_err("too large");
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);

        let short = [0u8, 0x10, 0, 0, b'{'];
        let err = read_message::<_, Request>(&mut &short[..])
            .await
            .expect_err("a frame cut short");
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);

        let garbage = [0u8, 0, 0, 3, b'x', b'y', b'z'];
        let err = read_message::<_, Request>(&mut &garbage[..])
            .await
            .expect_err("not JSON");
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }

    proptest::proptest! {
        /// Whatever a peer sends, reading it is a message or an error.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
            runtime.block_on(async {
                let mut input = bytes.as_slice();
                while let Ok(Some(_)) = read_message::<_, Request>(&mut input).await {}
                let mut framed = (bytes.len() as u32).to_be_bytes().to_vec();
                framed.extend_from_slice(&bytes);
                let _ = read_message::<_, Response>(&mut framed.as_slice()).await;
            });
        }
    }
}
