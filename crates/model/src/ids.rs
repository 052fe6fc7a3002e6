//! Integer newtypes: each carries the meaning Kafka gives the bare integer.

use std::fmt;

macro_rules! newtype {
    ($(#[$doc:meta])* $name:ident($inner:ty)) => {
        $(#[$doc])*
        #[derive(
            Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default,
            serde::Serialize, serde::Deserialize,
        )]
        #[serde(transparent)]
        pub struct $name(pub $inner);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl From<$inner> for $name {
            fn from(value: $inner) -> Self {
                Self(value)
            }
        }
    };
}

newtype!(
    /// A position in a partition's log: the offset of one record.
    Offset(i64)
);
newtype!(
    /// The generation of a partition's leadership.
    LeaderEpoch(i32)
);
newtype!(
    /// A node's id (`node.id`).
    BrokerId(i32)
);
newtype!(
    /// A partition's index within its topic.
    PartitionId(i32)
);
newtype!(
    /// An idempotent or transactional producer's id; -1 means none.
    ProducerId(i64)
);
newtype!(
    /// A producer id's epoch; -1 means none.
    ProducerEpoch(i16)
);
newtype!(
    /// Milliseconds since the Unix epoch; -1 means none.
    Timestamp(i64)
);

impl Offset {
    /// The offset that follows this one.
    pub fn next(self) -> Offset {
        Offset(self.0 + 1)
    }
}

impl ProducerId {
    /// "No producer id": the value a non-idempotent producer sends.
    pub const NONE: ProducerId = ProducerId(-1);
}

impl Timestamp {
    /// "No timestamp".
    pub const NONE: Timestamp = Timestamp(-1);

    /// The current wall-clock time.
    pub fn now() -> Timestamp {
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        Timestamp(ms)
    }
}
