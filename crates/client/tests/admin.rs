//! The admin client against Runnel and Tansu: topics, partitions, configs,
//! offsets, records, groups and the cluster.

mod common;

use std::collections::BTreeMap;

use common::{unique, Kind, TestBroker, ALL};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ProduceRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use runnel_client::admin::{
    Admin, AlterConfigOp, ConfigResource, ConfigSource, GroupType, NewTopic, OffsetSpec,
};
use runnel_client::{ClientConfig, Error, ResponseError, TopicPartition};
use runnel_protocol::batch::BatchBuilder;

async fn admin(broker: &TestBroker) -> Admin {
    Admin::connect(ClientConfig::new(broker.bootstrap()))
        .await
        .unwrap()
        .with_timeout(std::time::Duration::from_secs(10))
}

/// Produces `count` records to `topic`-`partition` with a raw ProduceRequest at the
/// leader (acks=-1); returns the base offset.
async fn produce(admin: &Admin, topic: &str, partition: i32, count: usize) -> i64 {
    let (_, connection) = admin.cluster().leader(topic, partition).await.unwrap();
    let mut batch = BatchBuilder::default();
    for i in 0..count {
        batch = batch.value(1_700_000_000_000 + i as i64, format!("v{i}").as_bytes());
    }
    let records = bytes::Bytes::from(batch.build().unwrap());
    let request = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(5_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_owned())))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(records))])]);
    // v13 names topics by id only; names are enough here.
    let version = connection.version_for::<ProduceRequest>(Some(12)).unwrap();
    let response = connection.send_version(&request, version).await.unwrap();
    let answer = &response.responses[0].partition_responses[0];
    assert_eq!(answer.error_code, 0, "produce to {topic}-{partition}");
    answer.base_offset
}

fn code(result: &Result<(), Error>) -> Option<ResponseError> {
    result.as_ref().err().and_then(Error::code)
}

#[tokio::test]
async fn topics_are_created_listed_described_and_deleted() {
    for kind in ALL {
        let broker = TestBroker::start(kind, &[]).await;
        let admin = admin(&broker).await;
        let name = unique("admin-topic");
        let created = admin
            .create_topics(vec![NewTopic::new(&name, 3)], false)
            .await
            .unwrap();
        assert!(created[&name].is_ok(), "{kind:?}: {created:?}");

        let listed = admin.list_topics(false).await.unwrap();
        assert!(
            listed.iter().any(|t| t.name == name),
            "{kind:?}: {listed:?}"
        );

        let described = admin.describe_topics(&[&name]).await.unwrap();
        let topic = described[&name].as_ref().unwrap();
        assert_eq!(topic.partitions.len(), 3, "{kind:?}");
        assert!(!topic.internal);
        for (i, p) in topic.partitions.iter().enumerate() {
            assert_eq!(p.partition, i as i32);
            assert!(p.leader >= 0, "{kind:?}: {p:?}");
            assert!(p.replicas.contains(&p.leader), "{kind:?}: {p:?}");
        }

        let deleted = admin.delete_topics(&[&name]).await.unwrap();
        assert!(deleted[&name].is_ok(), "{kind:?}: {deleted:?}");
        let listed = admin.list_topics(false).await.unwrap();
        assert!(
            !listed.iter().any(|t| t.name == name),
            "{kind:?}: {listed:?}"
        );
        broker.stop().await;
    }
}

#[tokio::test]
async fn creating_an_existing_topic_fails_only_that_topic() {
    for kind in ALL {
        let broker = TestBroker::start(kind, &[]).await;
        let admin = admin(&broker).await;
        let existing = unique("existing");
        let fresh = unique("fresh");
        let first = admin
            .create_topics(vec![NewTopic::new(&existing, 1)], false)
            .await
            .unwrap();
        assert!(first[&existing].is_ok(), "{kind:?}: {first:?}");
        let second = admin
            .create_topics(
                vec![NewTopic::new(&existing, 1), NewTopic::new(&fresh, 2)],
                false,
            )
            .await
            .unwrap();
        assert_eq!(
            code(&second[&existing]),
            Some(ResponseError::TopicAlreadyExists),
            "{kind:?}: {second:?}"
        );
        assert!(second[&fresh].is_ok(), "{kind:?}: {second:?}");
        broker.stop().await;
    }
}

#[tokio::test]
async fn describing_an_unknown_topic_answers_unknown_topic() {
    // Tansu creates topics on Metadata requests, so only Runnel can say "unknown".
    let broker = TestBroker::start(Kind::Runnel, &[("auto.create.topics.enable", "false")]).await;
    let admin = admin(&broker).await;
    let described = admin.describe_topics(&["no-such-topic"]).await.unwrap();
    assert!(
        matches!(described["no-such-topic"], Err(Error::UnknownTopic(ref t)) if t == "no-such-topic"),
        "{described:?}"
    );
    let deleted = admin.delete_topics(&["no-such-topic"]).await.unwrap();
    assert_eq!(
        code(&deleted["no-such-topic"]),
        Some(ResponseError::UnknownTopicOrPartition)
    );
    broker.stop().await;
}

/// Runnel only: Tansu does not advertise CreatePartitions in ApiVersions.
#[tokio::test]
async fn create_partitions_grows_a_topic_and_refuses_to_shrink_it() {
    let broker = TestBroker::start(Kind::Runnel, &[]).await;
    let admin = admin(&broker).await;
    let name = unique("grow");
    admin
        .create_topics(vec![NewTopic::new(&name, 1)], false)
        .await
        .unwrap()
        .remove(&name)
        .unwrap()
        .unwrap();
    admin.create_partitions(&name, 4).await.unwrap();
    let described = admin.describe_topics(&[&name]).await.unwrap();
    assert_eq!(described[&name].as_ref().unwrap().partitions.len(), 4);
    let err = admin.create_partitions(&name, 2).await.unwrap_err();
    assert_eq!(err.code(), Some(ResponseError::InvalidPartitions), "{err}");

    // A partition added by another client is found, not reported unknown from a
    // stale cache.
    let other = self::admin(&broker).await;
    other.create_partitions(&name, 5).await.unwrap();
    let newest = TopicPartition::new(&name, 4);
    let listed = admin
        .list_offsets(&BTreeMap::from([(newest.clone(), OffsetSpec::Latest)]))
        .await
        .unwrap();
    assert_eq!(listed[&newest].as_ref().unwrap().offset, 0);
    broker.stop().await;
}

#[tokio::test]
async fn a_deleted_topic_config_reverts_to_its_default() {
    for kind in ALL {
        let broker = TestBroker::start(kind, &[]).await;
        let admin = admin(&broker).await;
        let name = unique("configs");
        admin
            .create_topics(vec![NewTopic::new(&name, 1)], false)
            .await
            .unwrap();
        let resource = ConfigResource::Topic(name.clone());
        let retention = |entries: &[runnel_client::admin::ConfigEntry]| {
            entries
                .iter()
                .find(|e| e.name == "retention.ms")
                .cloned()
                .expect("retention.ms is described")
        };
        // Tansu describes only the configs set on the topic, and reports those as
        // DEFAULT_CONFIG: defaults and sources are checked against Runnel only.
        let before = match kind {
            Kind::Runnel => {
                let before = retention(&admin.describe_configs(&resource).await.unwrap());
                assert!(before.is_default, "{kind:?}: {before:?}");
                Some(before)
            }
            Kind::Tansu => None,
        };

        admin
            .incremental_alter_configs(
                &resource,
                &[AlterConfigOp::Set("retention.ms".into(), "123456".into())],
            )
            .await
            .unwrap();
        let set = retention(&admin.describe_configs(&resource).await.unwrap());
        assert_eq!(set.value.as_deref(), Some("123456"), "{kind:?}");
        let Some(before) = before else {
            broker.stop().await;
            continue;
        };
        assert!(!set.is_default);
        assert_eq!(set.source, ConfigSource::DynamicTopic);

        admin
            .incremental_alter_configs(&resource, &[AlterConfigOp::Delete("retention.ms".into())])
            .await
            .unwrap();
        let after = retention(&admin.describe_configs(&resource).await.unwrap());
        assert_eq!(after.value, before.value, "{kind:?}");
        assert!(after.is_default, "{kind:?}: {after:?}");
        broker.stop().await;
    }
}

#[tokio::test]
async fn offsets_move_with_produced_and_deleted_records() {
    for kind in ALL {
        let broker = TestBroker::start(kind, &[]).await;
        let admin = admin(&broker).await;
        let name = unique("offsets");
        admin
            .create_topics(vec![NewTopic::new(&name, 2)], false)
            .await
            .unwrap();
        // One record per batch: Tansu's in-memory engine answers Latest as the last
        // batch's base offset + 1, so a 5-record batch would read as offset 1 there.
        for _ in 0..5 {
            produce(&admin, &name, 0, 1).await;
        }
        let tp0 = TopicPartition::new(&name, 0);
        let tp1 = TopicPartition::new(&name, 1);
        let ask = |spec| BTreeMap::from([(tp0.clone(), spec), (tp1.clone(), spec)]);

        let latest = admin.list_offsets(&ask(OffsetSpec::Latest)).await.unwrap();
        assert_eq!(latest[&tp0].as_ref().unwrap().offset, 5, "{kind:?}");
        assert_eq!(latest[&tp1].as_ref().unwrap().offset, 0, "{kind:?}");
        let earliest = admin
            .list_offsets(&ask(OffsetSpec::Earliest))
            .await
            .unwrap();
        assert_eq!(earliest[&tp0].as_ref().unwrap().offset, 0, "{kind:?}");

        if kind == Kind::Runnel {
            // Tansu advertises DeleteRecords v0-2 but closes the connection on one.
            let deleted = admin
                .delete_records(&BTreeMap::from([(tp0.clone(), 3)]))
                .await
                .unwrap();
            assert_eq!(*deleted[&tp0].as_ref().unwrap(), 3, "{kind:?}");
            let earliest = admin
                .list_offsets(&ask(OffsetSpec::Earliest))
                .await
                .unwrap();
            assert_eq!(earliest[&tp0].as_ref().unwrap().offset, 3, "{kind:?}");
        }
        broker.stop().await;
    }
}

#[tokio::test]
async fn group_offsets_are_altered_listed_and_deleted() {
    for kind in ALL {
        let broker = TestBroker::start(kind, &[]).await;
        let admin = admin(&broker).await;
        let topic = unique("committed");
        let group = unique("group");
        admin
            .create_topics(vec![NewTopic::new(&topic, 2)], false)
            .await
            .unwrap();
        produce(&admin, &topic, 0, 3).await;
        let tp0 = TopicPartition::new(&topic, 0);
        let tp1 = TopicPartition::new(&topic, 1);
        let altered = admin
            .alter_group_offsets(
                &group,
                &BTreeMap::from([(tp0.clone(), 2), (tp1.clone(), 0)]),
            )
            .await
            .unwrap();
        assert!(altered.values().all(Result::is_ok), "{kind:?}: {altered:?}");

        let listed = admin.list_group_offsets(&group, None).await.unwrap();
        assert_eq!(
            listed,
            BTreeMap::from([(tp0.clone(), 2), (tp1.clone(), 0)]),
            "{kind:?}"
        );
        let only = admin
            .list_group_offsets(&group, Some(std::slice::from_ref(&tp0)))
            .await
            .unwrap();
        assert_eq!(only, BTreeMap::from([(tp0.clone(), 2)]), "{kind:?}");

        if kind == Kind::Tansu {
            // Tansu does not advertise OffsetDelete in ApiVersions.
            broker.stop().await;
            continue;
        }
        let deleted = admin
            .delete_group_offsets(&group, std::slice::from_ref(&tp0))
            .await
            .unwrap();
        assert!(deleted[&tp0].is_ok(), "{kind:?}: {deleted:?}");
        let listed = admin.list_group_offsets(&group, None).await.unwrap();
        assert_eq!(listed, BTreeMap::from([(tp1.clone(), 0)]), "{kind:?}");
        broker.stop().await;
    }
}

#[tokio::test]
async fn an_empty_group_is_listed_described_and_deleted() {
    for kind in ALL {
        let broker = TestBroker::start(kind, &[]).await;
        let admin = admin(&broker).await;
        let topic = unique("grouped");
        let group = unique("empty-group");
        admin
            .create_topics(vec![NewTopic::new(&topic, 1)], false)
            .await
            .unwrap();
        admin
            .alter_group_offsets(
                &group,
                &BTreeMap::from([(TopicPartition::new(&topic, 0), 0)]),
            )
            .await
            .unwrap();

        let listed = admin.list_groups(&[], &[]).await.unwrap();
        let listing = listed
            .iter()
            .find(|g| g.group_id == group)
            .unwrap_or_else(|| panic!("{kind:?}: {group} not in {listed:?}"));
        // Tansu lists such a group in state "Unknown" (its DescribeGroups says "Empty").
        if kind == Kind::Runnel {
            assert_eq!(listing.state.as_deref(), Some("Empty"));
        }
        let stable = admin.list_groups(&["Stable"], &[]).await.unwrap();
        assert!(!stable.iter().any(|g| g.group_id == group), "{kind:?}");

        let described = admin.describe_groups(&[&group]).await.unwrap();
        let description = described[&group].as_ref().unwrap();
        assert_eq!(description.state, "Empty", "{kind:?}");
        assert!(description.members.is_empty());

        let deleted = admin.delete_groups(&[&group]).await.unwrap();
        assert!(deleted[&group].is_ok(), "{kind:?}: {deleted:?}");
        let listed = admin.list_groups(&[], &[]).await.unwrap();
        assert!(!listed.iter().any(|g| g.group_id == group), "{kind:?}");
        broker.stop().await;
    }
}

#[tokio::test]
async fn describe_cluster_names_the_broker_and_controller() {
    for kind in ALL {
        let broker = TestBroker::start(kind, &[]).await;
        let admin = admin(&broker).await;
        let cluster = admin.describe_cluster().await.unwrap();
        assert_eq!(cluster.brokers.len(), 1, "{kind:?}: {cluster:?}");
        assert_eq!(cluster.brokers[0].addr(), broker.bootstrap(), "{kind:?}");
        assert_eq!(cluster.controller, cluster.brokers[0].id, "{kind:?}");
        assert!(cluster.cluster_id.is_some(), "{kind:?}");
        broker.stop().await;
    }
}

/// Joins `group` as the only member of a classic consumer group consuming
/// `topic`-0 (raw JoinGroup and SyncGroup); returns the member id.
async fn join_as_only_member(admin: &Admin, group: &str, topic: &str) -> String {
    use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
    use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
    use kafka_protocol::messages::{
        consumer_protocol_assignment, ConsumerProtocolAssignment, ConsumerProtocolSubscription,
        GroupId, JoinGroupRequest, SyncGroupRequest,
    };
    use kafka_protocol::protocol::Encodable;

    let encode = |version: i16, message: &dyn Fn(&mut bytes::BytesMut)| {
        let mut buf = bytes::BytesMut::new();
        bytes::BufMut::put_i16(&mut buf, version);
        message(&mut buf);
        buf.freeze()
    };
    let subscription = encode(0, &|buf| {
        ConsumerProtocolSubscription::default()
            .with_topics(vec![StrBytes::from_string(topic.to_owned())])
            .encode(buf, 0)
            .unwrap()
    });
    let (_, coordinator) = admin
        .cluster()
        .coordinator(runnel_client::CoordinatorKind::Group, group)
        .await
        .unwrap();
    let mut join = JoinGroupRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.to_owned())))
        .with_session_timeout_ms(30_000)
        .with_rebalance_timeout_ms(30_000)
        .with_protocol_type(StrBytes::from_static_str("consumer"))
        .with_protocols(vec![JoinGroupRequestProtocol::default()
            .with_name(StrBytes::from_static_str("range"))
            .with_metadata(subscription)]);
    let mut joined = coordinator.send(&join).await.unwrap();
    if joined.error_code == ResponseError::MemberIdRequired.code() {
        join.member_id = joined.member_id.clone();
        joined = coordinator.send(&join).await.unwrap();
    }
    assert_eq!(joined.error_code, 0, "{joined:?}");
    let assignment = encode(0, &|buf| {
        ConsumerProtocolAssignment::default()
            .with_assigned_partitions(vec![consumer_protocol_assignment::TopicPartition::default(
            )
            .with_topic(TopicName(StrBytes::from_string(topic.to_owned())))
            .with_partitions(vec![0])])
            .encode(buf, 0)
            .unwrap()
    });
    let sync = SyncGroupRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.to_owned())))
        .with_generation_id(joined.generation_id)
        .with_member_id(joined.member_id.clone())
        .with_protocol_type(Some(StrBytes::from_static_str("consumer")))
        .with_protocol_name(joined.protocol_name.clone())
        .with_assignments(vec![SyncGroupRequestAssignment::default()
            .with_member_id(joined.member_id.clone())
            .with_assignment(assignment)]);
    let synced = coordinator.send(&sync).await.unwrap();
    assert_eq!(synced.error_code, 0, "{synced:?}");
    joined.member_id.to_string()
}

/// Runnel only: Tansu holds the first JoinGroup for 15 s, and describes members
/// without the protocol, client id or assignment.
#[tokio::test]
async fn a_group_with_members_is_described_and_refuses_admin_changes() {
    let broker = TestBroker::start(Kind::Runnel, &[]).await;
    let admin = admin(&broker).await;
    let topic = unique("consumed");
    let group = unique("active-group");
    admin
        .create_topics(vec![NewTopic::new(&topic, 1)], false)
        .await
        .unwrap();
    let member = join_as_only_member(&admin, &group, &topic).await;
    let tp0 = TopicPartition::new(&topic, 0);

    let described = admin.describe_groups(&[&group]).await.unwrap();
    let description = described[&group].as_ref().unwrap();
    assert_eq!(description.state, "Stable", "{description:?}");
    assert_eq!(description.protocol_type, "consumer");
    assert_eq!(description.assignor, "range");
    assert_eq!(description.members.len(), 1);
    assert_eq!(description.members[0].member_id, member);
    assert_eq!(description.members[0].assignment, vec![tp0.clone()]);

    let altered = admin
        .alter_group_offsets(&group, &BTreeMap::from([(tp0.clone(), 0)]))
        .await
        .unwrap();
    // Java's alterConsumerGroupOffsets gets the same answer from Kafka.
    assert_eq!(
        code(&altered[&tp0]),
        Some(ResponseError::UnknownMemberId),
        "{altered:?}"
    );
    let deleted = admin.delete_groups(&[&group]).await.unwrap();
    assert_eq!(
        code(&deleted[&group]),
        Some(ResponseError::NonEmptyGroup),
        "{deleted:?}"
    );
    broker.stop().await;
}

/// Runnel only: Tansu does not advertise ConsumerGroupHeartbeat.
#[tokio::test]
async fn a_kip_848_group_is_described_with_consumer_group_describe() {
    use kafka_protocol::messages::{ConsumerGroupHeartbeatRequest, GroupId};
    let kind = Kind::Runnel;
    let broker = TestBroker::start(kind, &[]).await;
    let admin = admin(&broker).await;
    let topic = unique("kip848");
    let group = unique("consumer-group");
    admin
        .create_topics(vec![NewTopic::new(&topic, 2)], false)
        .await
        .unwrap();
    let (_, coordinator) = admin
        .cluster()
        .coordinator(runnel_client::CoordinatorKind::Group, &group)
        .await
        .unwrap();
    let member_id = uuid::Uuid::new_v4().to_string();
    let heartbeat = ConsumerGroupHeartbeatRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.clone())))
        .with_member_id(StrBytes::from_string(member_id.clone()))
        .with_member_epoch(0)
        .with_rebalance_timeout_ms(30_000)
        .with_subscribed_topic_names(Some(vec![TopicName(StrBytes::from_string(topic.clone()))]))
        .with_topic_partitions(Some(Vec::new()));
    let joined = coordinator.send(&heartbeat).await.unwrap();
    assert_eq!(joined.error_code, 0, "{kind:?}: {joined:?}");

    let described = admin.describe_groups(&[&group]).await.unwrap();
    let description = described[&group].as_ref().unwrap();
    assert_eq!(
        description.group_type,
        GroupType::Consumer,
        "{kind:?}: {description:?}"
    );
    assert_eq!(description.members.len(), 1, "{kind:?}: {description:?}");
    let member = &description.members[0];
    assert_eq!(
        member.member_id,
        joined.member_id.as_deref().unwrap_or(&member_id),
        "{kind:?}"
    );
    // The heartbeat's answer assigned both partitions, at epoch 1.
    assert_eq!(
        member.assignment,
        vec![
            TopicPartition::new(&topic, 0),
            TopicPartition::new(&topic, 1)
        ],
        "{kind:?}: {description:?}"
    );

    let consumer = admin.list_groups(&[], &["consumer"]).await.unwrap();
    assert!(
        consumer.iter().any(|g| g.group_id == group),
        "{kind:?}: {consumer:?}"
    );
    let classic = admin.list_groups(&[], &["classic"]).await.unwrap();
    assert!(
        !classic.iter().any(|g| g.group_id == group),
        "{kind:?}: {classic:?}"
    );
    broker.stop().await;
}
