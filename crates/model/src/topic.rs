//! Topic names and topic-partitions, validated as Apache Kafka validates them.

use std::fmt;

use crate::PartitionId;

/// Longest topic name Kafka accepts (it leaves room for a partition suffix in
/// directory names).
pub const TOPIC_NAME_MAX_LEN: usize = 249;

/// A validated topic name: 1..=249 characters of `[a-zA-Z0-9._-]`, neither
/// `.` nor `..`.
///
/// Serialized as a plain string; deserializing validates it again, so a
/// stored name that breaks the rules is refused rather than adopted.
#[derive(
    Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "String", into = "String")]
pub struct TopicName(String);

/// Why a topic name was refused; the message is what clients see.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicNameError {
    #[error("topic name is empty")]
    Empty,
    #[error("topic name cannot be \".\" or \"..\"")]
    Dots,
    #[error("topic name is longer than {TOPIC_NAME_MAX_LEN} characters")]
    TooLong,
    #[error(
        "topic name {0:?} contains a character other than ASCII alphanumerics, '.', '_' and '-'"
    )]
    IllegalCharacter(String),
}

impl TopicName {
    /// Validates `name` by Kafka's rules.
    pub fn new(name: impl Into<String>) -> Result<TopicName, TopicNameError> {
        let name = name.into();
        if name.is_empty() {
            return Err(TopicNameError::Empty);
        }
        if name == "." || name == ".." {
            return Err(TopicNameError::Dots);
        }
        if name.len() > TOPIC_NAME_MAX_LEN {
            return Err(TopicNameError::TooLong);
        }
        if !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
        {
            return Err(TopicNameError::IllegalCharacter(name));
        }
        Ok(TopicName(name))
    }

    /// The name as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Internal topics (`__consumer_offsets`, `__transaction_state`) start
    /// with two underscores.
    pub fn is_internal(&self) -> bool {
        self.0 == "__consumer_offsets" || self.0 == "__transaction_state"
    }
}

impl TryFrom<String> for TopicName {
    type Error = TopicNameError;

    fn try_from(name: String) -> Result<TopicName, TopicNameError> {
        TopicName::new(name)
    }
}

impl From<TopicName> for String {
    fn from(name: TopicName) -> String {
        name.0
    }
}

impl fmt::Display for TopicName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One partition of one topic.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TopicPartition {
    pub topic: TopicName,
    pub partition: PartitionId,
}

impl TopicPartition {
    /// Builds a topic-partition.
    pub fn new(topic: TopicName, partition: PartitionId) -> TopicPartition {
        TopicPartition { topic, partition }
    }

    /// The directory name Kafka uses for this partition: `<topic>-<partition>`.
    pub fn dir_name(&self) -> String {
        format!("{}-{}", self.topic, self.partition.0)
    }
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_follow_kafka_rules() {
        assert!(TopicName::new("orders.v1_x-y").is_ok());
        assert_eq!(TopicName::new(""), Err(TopicNameError::Empty));
        assert_eq!(TopicName::new(".."), Err(TopicNameError::Dots));
        assert_eq!(
            TopicName::new("a".repeat(250)),
            Err(TopicNameError::TooLong)
        );
        assert!(TopicName::new("a".repeat(249)).is_ok());
        assert!(matches!(
            TopicName::new("bad name"),
            Err(TopicNameError::IllegalCharacter(_))
        ));
    }
}
