//! The client's typed errors.

use kafka_protocol::error::ResponseError;

/// Everything a client call can fail with.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// No bootstrap server could be reached.
    #[error("no broker reachable (tried {tried}): {last}")]
    NoBrokerReachable {
        /// The addresses tried, comma separated.
        tried: String,
        /// The last connection error.
        last: String,
    },
    /// A TCP connection could not be opened or broke.
    #[error("connection to {addr} failed: {reason}")]
    Connection {
        /// `host:port` of the broker.
        addr: String,
        /// What the operating system or the peer said.
        reason: String,
    },
    /// The broker did not answer within `request.timeout.ms` (or the call's own deadline).
    #[error("timed out: {0}")]
    Timeout(String),
    /// The broker returned a Kafka error code.
    #[error("{context}: {error}{}", message.as_deref().map(|m| format!(" ({m})")).unwrap_or_default())]
    Broker {
        /// The error code, typed.
        error: ResponseError,
        /// The broker's error message, when it sent one.
        message: Option<String>,
        /// What was being done (the API, topic, partition or group).
        context: String,
    },
    /// The broker serves no version of an API this call needs.
    #[error("the broker does not support {api} (it serves {broker})")]
    UnsupportedVersion {
        /// The API.
        api: String,
        /// The versions the broker advertised, or "none".
        broker: String,
    },
    /// Bytes from the broker that do not decode, or a request that does not encode.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The topic does not exist (and was not created).
    #[error("unknown topic {0}")]
    UnknownTopic(String),
    /// The partition does not exist.
    #[error("unknown partition {topic}-{partition}")]
    UnknownPartition {
        /// Topic name.
        topic: String,
        /// Partition index.
        partition: i32,
    },
    /// A configuration value is missing or invalid.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A record or argument the client refuses before sending anything.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The producer, consumer or admin client was closed.
    #[error("the client is closed")]
    Closed,
}

impl Error {
    /// A broker error with context.
    pub fn broker(code: i16, message: Option<String>, context: impl Into<String>) -> Error {
        Error::Broker {
            error: ResponseError::try_from_code(code).unwrap_or(ResponseError::Unknown(code)),
            message,
            context: context.into(),
        }
    }

    /// `Ok(())` for error code 0, otherwise the broker error.
    pub fn check(code: i16, message: Option<&str>, context: impl FnOnce() -> String) -> Result<()> {
        match ResponseError::try_from_code(code) {
            None => Ok(()),
            Some(error) => Err(Error::Broker {
                error,
                message: message.map(str::to_owned),
                context: context(),
            }),
        }
    }

    /// The Kafka error code, when this is a broker error.
    pub fn code(&self) -> Option<ResponseError> {
        match self {
            Error::Broker { error, .. } => Some(*error),
            _ => None,
        }
    }

    /// Whether trying again (after refreshing metadata) may succeed.
    pub fn is_retriable(&self) -> bool {
        match self {
            Error::Broker { error, .. } => error.is_retriable(),
            Error::Connection { .. } | Error::Timeout(_) | Error::NoBrokerReachable { .. } => true,
            _ => false,
        }
    }

    /// Whether the error means the client's view of leaders or coordinators is stale.
    pub fn needs_metadata_refresh(&self) -> bool {
        matches!(
            self.code(),
            Some(
                ResponseError::NotLeaderOrFollower
                    | ResponseError::UnknownTopicOrPartition
                    | ResponseError::LeaderNotAvailable
                    | ResponseError::FencedLeaderEpoch
                    | ResponseError::UnknownLeaderEpoch
                    | ResponseError::NotCoordinator
                    | ResponseError::CoordinatorNotAvailable
                    | ResponseError::NotController
            )
        ) || matches!(self, Error::Connection { .. })
    }
}

/// The client's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
