//! The records of the metadata log, modelled on Kafka KRaft's metadata
//! records (`TopicRecord`, `PartitionRecord`, `PartitionChangeRecord`,
//! `RegisterBrokerRecord`, `FenceBrokerRecord`, `UnfenceBrokerRecord`,
//! `RemoveTopicRecord`, `ConfigRecord`).
//!
//! Two departures from Kafka, both to make replay obvious:
//! - a [`PartitionChangeRecord`] carries the partition's leader and its new
//!   leader epoch and partition epoch explicitly, rather than letting replay
//!   derive the epochs (Kafka's `-2` "leader unchanged" does not exist);
//! - "no leader" is `None` rather than `-1`.
//!
//! Encoding: one format-version byte ([`FORMAT_VERSION`]), then the record
//! as JSON. The metadata log is small (one record per topic, partition,
//! broker or config change), so readability when debugging a log beats
//! compactness; the version byte lets a later format replace JSON.

use runnel_model::{BrokerId, LeaderEpoch, PartitionId, TopicName};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{BrokerEpoch, PartitionEpoch};

/// The first byte of every encoded record.
pub const FORMAT_VERSION: u8 = 1;

/// One entry of the metadata log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum MetadataRecord {
    Topic(TopicRecord),
    Partition(PartitionRecord),
    PartitionChange(PartitionChangeRecord),
    RegisterBroker(RegisterBrokerRecord),
    FenceBroker(FenceBrokerRecord),
    UnfenceBroker(UnfenceBrokerRecord),
    RemoveTopic(RemoveTopicRecord),
    Config(ConfigRecord),
    ProducerIds(ProducerIdsRecord),
}

/// A topic was created; its partitions follow as [`PartitionRecord`]s.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicRecord {
    pub name: TopicName,
    pub topic_id: Uuid,
}

/// A partition was created, with its whole initial state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionRecord {
    pub topic_id: Uuid,
    pub partition: PartitionId,
    /// The assigned replicas; the first is the preferred leader.
    pub replicas: Vec<BrokerId>,
    /// The in-sync replicas, a non-empty subset of `replicas`.
    pub isr: Vec<BrokerId>,
    /// A member of `isr`, or none.
    pub leader: Option<BrokerId>,
    pub leader_epoch: LeaderEpoch,
    pub partition_epoch: PartitionEpoch,
    /// Replicas a reassignment in progress is adding (KIP-455); absent in
    /// logs written before reassignments existed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub adding_replicas: Vec<BrokerId>,
    /// Replicas a reassignment in progress is removing.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removing_replicas: Vec<BrokerId>,
}

/// A partition's leader, ISR or replicas changed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionChangeRecord {
    pub topic_id: Uuid,
    pub partition: PartitionId,
    /// The leader after the change (the same as before if it did not move).
    pub leader: Option<BrokerId>,
    /// The new ISR, or `None` if it did not change.
    pub isr: Option<Vec<BrokerId>>,
    /// The new replicas, or `None` if they did not change.
    pub replicas: Option<Vec<BrokerId>>,
    /// Larger than before if the leader changed, equal otherwise.
    pub leader_epoch: LeaderEpoch,
    /// Always larger than before.
    pub partition_epoch: PartitionEpoch,
    /// The new replicas being added by a reassignment, or `None` if they
    /// did not change (absent in logs written before reassignments).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adding_replicas: Option<Vec<BrokerId>>,
    /// The new replicas being removed, or `None` if they did not change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub removing_replicas: Option<Vec<BrokerId>>,
}

/// A listener a broker accepts clients on.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Endpoint {
    /// The listener's name (`PLAINTEXT`, `INTERNAL`, …).
    pub name: String,
    pub host: String,
    pub port: u16,
    /// `PLAINTEXT`, `SSL`, `SASL_PLAINTEXT` or `SASL_SSL`.
    pub security_protocol: String,
}

/// A broker (re)registered. A new incarnation gets a new, larger epoch and
/// starts fenced.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterBrokerRecord {
    pub broker_id: BrokerId,
    /// Chosen by the broker process at start; a restart gets a new one.
    pub incarnation_id: Uuid,
    pub broker_epoch: BrokerEpoch,
    pub endpoints: Vec<Endpoint>,
    /// `broker.rack`, if set.
    pub rack: Option<String>,
    pub fenced: bool,
}

/// A broker was fenced: it may lead nothing until unfenced.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FenceBrokerRecord {
    pub broker_id: BrokerId,
    pub broker_epoch: BrokerEpoch,
}

/// A fenced broker heartbeats again and may lead partitions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnfenceBrokerRecord {
    pub broker_id: BrokerId,
    pub broker_epoch: BrokerEpoch,
}

/// A topic, its partitions and its configs were deleted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoveTopicRecord {
    pub topic_id: Uuid,
}

/// A block of producer ids was given to a broker: every id below
/// `next_producer_id` is taken, cluster-wide.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducerIdsRecord {
    /// The broker the block went to (-1 in a snapshot).
    pub broker_id: BrokerId,
    pub next_producer_id: i64,
}

/// What a config belongs to (Kafka's `ConfigResource.Type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ConfigResourceType {
    Topic,
    /// A broker by id, or the cluster-wide default (an empty name).
    Broker,
}

/// A config was set, or deleted (`value: None`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigRecord {
    pub resource_type: ConfigResourceType,
    /// The topic's name, or the broker's id as a string.
    pub resource_name: String,
    /// Kafka's config name (`retention.ms`, …).
    pub key: String,
    pub value: Option<String>,
}

/// Why bytes are not a record.
#[derive(Debug, thiserror::Error)]
pub enum RecordDecodeError {
    #[error("empty metadata record")]
    Empty,
    #[error("unknown metadata record format version {0}")]
    UnknownVersion(u8),
    #[error("malformed metadata record: {0}")]
    Malformed(#[from] serde_json::Error),
}

impl MetadataRecord {
    /// The record as bytes: [`FORMAT_VERSION`], then JSON.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![FORMAT_VERSION];
        // Serializing these types cannot fail: every map key is a string
        // and there are no non-finite floats.
        if let Err(e) = serde_json::to_writer(&mut out, self) {
            debug_assert!(false, "encoding a metadata record failed: {e}");
        }
        out
    }

    /// Reads a record written by [`MetadataRecord::encode`].
    pub fn decode(bytes: &[u8]) -> Result<MetadataRecord, RecordDecodeError> {
        let (&version, body) = bytes.split_first().ok_or(RecordDecodeError::Empty)?;
        if version != FORMAT_VERSION {
            return Err(RecordDecodeError::UnknownVersion(version));
        }
        Ok(serde_json::from_slice(body)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples() -> Vec<MetadataRecord> {
        let id = Uuid::from_u128(42);
        vec![
            MetadataRecord::Topic(TopicRecord {
                name: TopicName::new("orders").expect("valid"),
                topic_id: id,
            }),
            MetadataRecord::Partition(PartitionRecord {
                topic_id: id,
                partition: PartitionId(3),
                replicas: vec![BrokerId(1), BrokerId(2)],
                isr: vec![BrokerId(2)],
                leader: Some(BrokerId(2)),
                leader_epoch: LeaderEpoch(4),
                partition_epoch: PartitionEpoch(7),
                adding_replicas: vec![BrokerId(2)],
                removing_replicas: vec![BrokerId(1)],
            }),
            MetadataRecord::PartitionChange(PartitionChangeRecord {
                topic_id: id,
                partition: PartitionId(0),
                leader: None,
                isr: Some(vec![BrokerId(1)]),
                replicas: None,
                leader_epoch: LeaderEpoch(1),
                partition_epoch: PartitionEpoch(2),
                adding_replicas: Some(vec![]),
                removing_replicas: None,
            }),
            MetadataRecord::RegisterBroker(RegisterBrokerRecord {
                broker_id: BrokerId(1),
                incarnation_id: Uuid::from_u128(9),
                broker_epoch: BrokerEpoch(12),
                endpoints: vec![Endpoint {
                    name: "PLAINTEXT".into(),
                    host: "localhost".into(),
                    port: 9092,
                    security_protocol: "PLAINTEXT".into(),
                }],
                rack: Some("rack-a".into()),
                fenced: true,
            }),
            MetadataRecord::FenceBroker(FenceBrokerRecord {
                broker_id: BrokerId(1),
                broker_epoch: BrokerEpoch(12),
            }),
            MetadataRecord::UnfenceBroker(UnfenceBrokerRecord {
                broker_id: BrokerId(1),
                broker_epoch: BrokerEpoch(12),
            }),
            MetadataRecord::RemoveTopic(RemoveTopicRecord { topic_id: id }),
            MetadataRecord::Config(ConfigRecord {
                resource_type: ConfigResourceType::Topic,
                resource_name: "orders".into(),
                key: "retention.ms".into(),
                value: None,
            }),
        ]
    }

    #[test]
    fn every_record_survives_encode_and_decode() {
        for record in samples() {
            let bytes = record.encode();
            assert_eq!(bytes[0], FORMAT_VERSION);
            assert_eq!(MetadataRecord::decode(&bytes).expect("decodes"), record);
        }
    }

    #[test]
    fn decode_refuses_unknown_versions_and_garbage() {
        assert!(matches!(
            MetadataRecord::decode(&[]),
            Err(RecordDecodeError::Empty)
        ));
        let mut bytes = samples()[0].encode();
        bytes[0] = 2;
        assert!(matches!(
            MetadataRecord::decode(&bytes),
            Err(RecordDecodeError::UnknownVersion(2))
        ));
        assert!(matches!(
            MetadataRecord::decode(&[FORMAT_VERSION, b'{']),
            Err(RecordDecodeError::Malformed(_))
        ));
    }

    #[test]
    fn partition_records_written_before_reassignments_still_decode() {
        let id = "00000000-0000-0000-0000-00000000002a";
        let old = [
            format!(
                r#"{{"type":"Partition","topic_id":"{id}","partition":0,"replicas":[1],"isr":[1],"leader":1,"leader_epoch":0,"partition_epoch":0}}"#
            ),
            format!(
                r#"{{"type":"PartitionChange","topic_id":"{id}","partition":0,"leader":1,"isr":null,"replicas":null,"leader_epoch":0,"partition_epoch":1}}"#
            ),
        ];
        for body in old {
            let mut bytes = vec![FORMAT_VERSION];
            bytes.extend_from_slice(body.as_bytes());
            let record = MetadataRecord::decode(&bytes).expect("decodes");
            match &record {
                MetadataRecord::Partition(r) => {
                    assert!(r.adding_replicas.is_empty() && r.removing_replicas.is_empty())
                }
                MetadataRecord::PartitionChange(r) => {
                    assert!(r.adding_replicas.is_none() && r.removing_replicas.is_none())
                }
                other => panic!("{other:?}"),
            }
            // And they encode as before.
            assert_eq!(record.encode(), bytes);
        }
    }

    #[test]
    fn decode_refuses_an_invalid_topic_name() {
        let body = br#"{"type":"Topic","name":"bad name","topic_id":"00000000-0000-0000-0000-00000000002a"}"#;
        let mut bytes = vec![FORMAT_VERSION];
        bytes.extend_from_slice(body);
        assert!(MetadataRecord::decode(&bytes).is_err());
    }
}
