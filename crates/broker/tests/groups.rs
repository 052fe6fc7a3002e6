//! Consumer groups over the wire: coordinator lookup, the classic
//! join/sync/heartbeat/leave cycle, committed offsets and their survival
//! across a restart, and group administration.

mod common;

use bytes::Bytes;
use common::{RawClient, TestBroker};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_delete_request::{
    OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn group(v: &str) -> GroupId {
    GroupId(s(v))
}

async fn create_topic(client: &mut RawClient, name: &str, partitions: i32) {
    let request = CreateTopicsRequest::default()
        .with_topics(vec![CreatableTopic::default()
            .with_name(TopicName(s(name)))
            .with_num_partitions(partitions)
            .with_replication_factor(1)])
        .with_timeout_ms(5000);
    let response: CreateTopicsResponse = client.call(ApiKey::CreateTopics, 7, &request).await;
    assert_eq!(response.topics[0].error_code, 0);
}

fn commit_request(
    group_id: &str,
    generation: i32,
    member: &str,
    offsets: &[(&str, i32, i64, &str)],
) -> OffsetCommitRequest {
    let mut topics: Vec<OffsetCommitRequestTopic> = Vec::new();
    for (topic, partition, offset, metadata) in offsets {
        let p = OffsetCommitRequestPartition::default()
            .with_partition_index(*partition)
            .with_committed_offset(*offset)
            .with_committed_leader_epoch(-1)
            .with_committed_metadata(Some(s(metadata)));
        match topics.iter_mut().find(|t| t.name.as_str() == *topic) {
            Some(t) => t.partitions.push(p),
            None => topics.push(
                OffsetCommitRequestTopic::default()
                    .with_name(TopicName(s(topic)))
                    .with_partitions(vec![p]),
            ),
        }
    }
    OffsetCommitRequest::default()
        .with_group_id(group(group_id))
        .with_generation_id_or_member_epoch(generation)
        .with_member_id(s(member))
        .with_retention_time_ms(-1)
        .with_topics(topics)
}

/// Sends an OffsetCommit; the first partition's error code.
async fn commit_code(client: &mut RawClient, version: i16, request: OffsetCommitRequest) -> i16 {
    let response: OffsetCommitResponse = client.call(ApiKey::OffsetCommit, version, &request).await;
    response.topics[0].partitions[0].error_code
}

async fn fetch_offsets(
    client: &mut RawClient,
    group_id: &str,
    topic: &str,
    partitions: Vec<i32>,
) -> Vec<(i32, i64, String, i16)> {
    let request = OffsetFetchRequest::default()
        .with_group_id(group(group_id))
        .with_topics(Some(vec![OffsetFetchRequestTopic::default()
            .with_name(TopicName(s(topic)))
            .with_partition_indexes(partitions)]));
    let response: OffsetFetchResponse = client.call(ApiKey::OffsetFetch, 7, &request).await;
    assert_eq!(response.error_code, 0);
    response.topics[0]
        .partitions
        .iter()
        .map(|p| {
            (
                p.partition_index,
                p.committed_offset,
                p.metadata
                    .as_ref()
                    .map(|m| m.to_string())
                    .unwrap_or_default(),
                p.error_code,
            )
        })
        .collect()
}

#[tokio::test]
async fn find_coordinator_creates_the_offsets_topic_and_names_this_broker() {
    let broker = TestBroker::start(&[("offsets.topic.num.partitions", "5")]).await;
    let mut client = broker.client().await;
    let response: FindCoordinatorResponse = client
        .call(
            ApiKey::FindCoordinator,
            3,
            &FindCoordinatorRequest::default().with_key(s("g1")),
        )
        .await;
    assert_eq!(response.error_code, 0);
    assert_eq!(response.port, broker.addr().port() as i32);
    assert_eq!(response.host.as_str(), "127.0.0.1");
    let batched: FindCoordinatorResponse = client
        .call(
            ApiKey::FindCoordinator,
            4,
            &FindCoordinatorRequest::default().with_coordinator_keys(vec![s("a"), s(""), s("b")]),
        )
        .await;
    let codes: Vec<i16> = batched.coordinators.iter().map(|c| c.error_code).collect();
    assert_eq!(codes, [0, ResponseError::InvalidRequest.code(), 0]);
    assert_eq!(batched.coordinators[2].key.as_str(), "b");
    // The internal topic exists, compacted, with the configured partitions.
    let metadata: MetadataResponse = client
        .call(
            ApiKey::Metadata,
            12,
            &MetadataRequest::default()
                .with_topics(Some(vec![metadata_request::MetadataRequestTopic::default(
                )
                .with_name(Some(TopicName(s("__consumer_offsets"))))])),
        )
        .await;
    assert_eq!(metadata.topics[0].error_code, 0);
    assert!(metadata.topics[0].is_internal);
    assert_eq!(metadata.topics[0].partitions.len(), 5);
    broker.stop().await;
}

#[tokio::test]
async fn committed_offsets_round_trip_and_survive_a_restart() {
    let broker = TestBroker::start(&[("offsets.topic.num.partitions", "3")]).await;
    let mut client = broker.client().await;
    create_topic(&mut client, "orders", 3).await;
    let commit: OffsetCommitResponse = client
        .call(
            ApiKey::OffsetCommit,
            8,
            &commit_request(
                "simple",
                -1,
                "",
                &[
                    ("orders", 0, 10, "m0"),
                    ("orders", 2, 30, ""),
                    ("orders", 7, 1, ""),
                    ("nope", 0, 1, ""),
                ],
            ),
        )
        .await;
    let codes: Vec<Vec<i16>> = commit
        .topics
        .iter()
        .map(|t| t.partitions.iter().map(|p| p.error_code).collect())
        .collect();
    let unknown = ResponseError::UnknownTopicOrPartition.code();
    assert_eq!(codes, [vec![0, 0, unknown], vec![unknown]]);
    let expected = vec![
        (0, 10, "m0".to_string(), 0),
        (1, -1, String::new(), 0),
        (2, 30, String::new(), 0),
    ];
    assert_eq!(
        fetch_offsets(&mut client, "simple", "orders", vec![0, 1, 2]).await,
        expected
    );
    // A later commit replaces the earlier one.
    let _: OffsetCommitResponse = client
        .call(
            ApiKey::OffsetCommit,
            2,
            &commit_request("simple", -1, "", &[("orders", 0, 11, "again")]),
        )
        .await;
    let dir = broker.stop().await;
    let broker = TestBroker::start_in(dir, &[("offsets.topic.num.partitions", "3")]).await;
    let mut client = broker.client().await;
    let after = fetch_offsets(&mut client, "simple", "orders", vec![0, 1, 2]).await;
    assert_eq!(after[0], (0, 11, "again".to_string(), 0));
    assert_eq!(after[1..], expected[1..]);
    // v8: several groups at once; all partitions when topics is null.
    let multi: OffsetFetchResponse = client
        .call(
            ApiKey::OffsetFetch,
            8,
            &OffsetFetchRequest::default().with_groups(vec![
                OffsetFetchRequestGroup::default()
                    .with_group_id(group("simple"))
                    .with_topics(None),
                OffsetFetchRequestGroup::default()
                    .with_group_id(group("never"))
                    .with_topics(Some(vec![OffsetFetchRequestTopics::default()
                        .with_name(TopicName(s("orders")))
                        .with_partition_indexes(vec![1])])),
            ]),
        )
        .await;
    assert_eq!(multi.groups.len(), 2);
    let all: Vec<(i32, i64)> = multi.groups[0].topics[0]
        .partitions
        .iter()
        .map(|p| (p.partition_index, p.committed_offset))
        .collect();
    assert_eq!(all, [(0, 11), (2, 30)]);
    assert_eq!(multi.groups[1].error_code, 0);
    assert_eq!(multi.groups[1].topics[0].partitions[0].committed_offset, -1);
    broker.stop().await;
}

#[tokio::test]
async fn commit_errors_match_kafka() {
    let broker = TestBroker::start(&[
        ("offsets.topic.num.partitions", "1"),
        ("offset.metadata.max.bytes", "8"),
    ])
    .await;
    let mut client = broker.client().await;
    create_topic(&mut client, "t", 1).await;
    assert_eq!(
        commit_code(
            &mut client,
            8,
            commit_request("g", -1, "", &[("t", 0, 1, "123456789")])
        )
        .await,
        ResponseError::OffsetMetadataTooLarge.code()
    );
    // A generation for a group that does not exist.
    assert_eq!(
        commit_code(
            &mut client,
            8,
            commit_request("ghost", 3, "m", &[("t", 0, 1, "")])
        )
        .await,
        ResponseError::IllegalGeneration.code()
    );
    assert_eq!(
        commit_code(
            &mut client,
            9,
            commit_request("ghost", 3, "m", &[("t", 0, 1, "")])
        )
        .await,
        ResponseError::GroupIdNotFound.code()
    );
    assert_eq!(
        commit_code(
            &mut client,
            8,
            commit_request("", -1, "", &[("t", 0, 1, "")])
        )
        .await,
        ResponseError::InvalidGroupId.code()
    );
    broker.stop().await;
}

async fn join(
    client: &mut RawClient,
    group_id: &str,
    member_id: &str,
    instance: Option<&str>,
    metadata: &'static [u8],
) -> JoinGroupResponse {
    let request = JoinGroupRequest::default()
        .with_group_id(group(group_id))
        .with_session_timeout_ms(10_000)
        .with_rebalance_timeout_ms(5_000)
        .with_member_id(s(member_id))
        .with_group_instance_id(instance.map(s))
        .with_protocol_type(s("consumer"))
        .with_protocols(vec![JoinGroupRequestProtocol::default()
            .with_name(s("range"))
            .with_metadata(Bytes::from_static(metadata))]);
    client.call(ApiKey::JoinGroup, 7, &request).await
}

async fn sync(
    client: &mut RawClient,
    group_id: &str,
    member_id: &str,
    generation: i32,
    assignments: Vec<(String, &'static [u8])>,
) -> SyncGroupResponse {
    let request = SyncGroupRequest::default()
        .with_group_id(group(group_id))
        .with_generation_id(generation)
        .with_member_id(s(member_id))
        .with_protocol_type(Some(s("consumer")))
        .with_protocol_name(Some(s("range")))
        .with_assignments(
            assignments
                .into_iter()
                .map(|(m, a)| {
                    SyncGroupRequestAssignment::default()
                        .with_member_id(s(&m))
                        .with_assignment(Bytes::from_static(a))
                })
                .collect(),
        );
    client.call(ApiKey::SyncGroup, 5, &request).await
}

async fn heartbeat(
    client: &mut RawClient,
    group_id: &str,
    member_id: &str,
    generation: i32,
) -> i16 {
    let response: HeartbeatResponse = client
        .call(
            ApiKey::Heartbeat,
            4,
            &HeartbeatRequest::default()
                .with_group_id(group(group_id))
                .with_member_id(s(member_id))
                .with_generation_id(generation),
        )
        .await;
    response.error_code
}

#[tokio::test]
async fn two_members_join_sync_commit_and_leave() {
    let broker = TestBroker::start(&[
        ("offsets.topic.num.partitions", "2"),
        ("group.initial.rebalance.delay.ms", "0"),
    ])
    .await;
    let mut admin = broker.client().await;
    create_topic(&mut admin, "t", 2).await;
    let mut a = broker.client().await;
    let mut b = broker.client().await;
    // KIP-394: the first join only hands out a member id.
    let first = join(&mut a, "g", "", None, b"a").await;
    assert_eq!(first.error_code, ResponseError::MemberIdRequired.code());
    let a_id = first.member_id.to_string();
    assert!(!a_id.is_empty());
    let joined = join(&mut a, "g", &a_id, None, b"a").await;
    assert_eq!(joined.error_code, 0);
    assert_eq!(joined.leader.as_str(), a_id);
    assert_eq!(joined.members.len(), 1);
    let gen1 = joined.generation_id;
    let synced = sync(&mut a, "g", &a_id, gen1, vec![(a_id.clone(), b"a:all")]).await;
    assert_eq!(synced.error_code, 0);
    assert_eq!(&synced.assignment[..], b"a:all");
    assert_eq!(heartbeat(&mut a, "g", &a_id, gen1).await, 0);

    // B joins: A learns of the rebalance through its heartbeat and rejoins.
    let b_first = join(&mut b, "g", "", None, b"b").await;
    let b_id = b_first.member_id.to_string();
    let b_join = tokio::spawn(async move {
        let r = join(&mut b, "g", &b_id, None, b"b").await;
        (b, r)
    });
    let mut rebalancing = false;
    for _ in 0..100 {
        if heartbeat(&mut a, "g", &a_id, gen1).await == ResponseError::RebalanceInProgress.code() {
            rebalancing = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(rebalancing, "the leader never saw the rebalance");
    let rejoined = join(&mut a, "g", &a_id, None, b"a").await;
    let (mut b, b_joined) = b_join.await.unwrap();
    assert_eq!(rejoined.error_code, 0);
    assert_eq!(b_joined.error_code, 0);
    let gen2 = rejoined.generation_id;
    assert!(gen2 > gen1);
    assert_eq!(b_joined.generation_id, gen2);
    assert_eq!(rejoined.leader.as_str(), a_id, "the leader stays");
    assert_eq!(rejoined.members.len(), 2);
    assert!(
        b_joined.members.is_empty(),
        "only the leader sees the members"
    );
    let b_id = b_joined.member_id.to_string();
    // B's sync waits for the leader's.
    let b_sync = {
        let b_id = b_id.clone();
        tokio::spawn(async move { sync(&mut b, "g", &b_id, gen2, Vec::new()).await })
    };
    let a_sync = sync(
        &mut a,
        "g",
        &a_id,
        gen2,
        vec![(a_id.clone(), b"a:0"), (b_id.clone(), b"b:1")],
    )
    .await;
    assert_eq!(&a_sync.assignment[..], b"a:0");
    let b_synced = b_sync.await.unwrap();
    assert_eq!(b_synced.error_code, 0);
    assert_eq!(&b_synced.assignment[..], b"b:1");

    // Generation fencing on commits and heartbeats.
    let mut c = broker.client().await;
    assert_eq!(
        commit_code(
            &mut c,
            8,
            commit_request("g", gen1, &a_id, &[("t", 0, 5, "")])
        )
        .await,
        ResponseError::IllegalGeneration.code()
    );
    assert_eq!(
        commit_code(
            &mut c,
            8,
            commit_request("g", gen2, "who", &[("t", 0, 5, "")])
        )
        .await,
        ResponseError::UnknownMemberId.code()
    );
    assert_eq!(
        commit_code(
            &mut c,
            8,
            commit_request("g", gen2, &a_id, &[("t", 0, 5, "x")])
        )
        .await,
        0
    );
    assert_eq!(
        heartbeat(&mut c, "g", &a_id, gen1).await,
        ResponseError::IllegalGeneration.code()
    );
    assert_eq!(
        heartbeat(&mut c, "g", "who", gen2).await,
        ResponseError::UnknownMemberId.code()
    );

    // Describe shows a stable group with both members and assignments.
    let described: DescribeGroupsResponse = c
        .call(
            ApiKey::DescribeGroups,
            5,
            &DescribeGroupsRequest::default().with_groups(vec![group("g")]),
        )
        .await;
    let g = &described.groups[0];
    assert_eq!(g.group_state.as_str(), "Stable");
    assert_eq!(g.protocol_type.as_str(), "consumer");
    assert_eq!(g.protocol_data.as_str(), "range");
    let mut assignments: Vec<Vec<u8>> = g
        .members
        .iter()
        .map(|m| m.member_assignment.to_vec())
        .collect();
    assignments.sort();
    assert_eq!(assignments, [b"a:0".to_vec(), b"b:1".to_vec()]);
    // A group with members cannot be deleted.
    let deleted: DeleteGroupsResponse = c
        .call(
            ApiKey::DeleteGroups,
            2,
            &DeleteGroupsRequest::default().with_groups_names(vec![group("g")]),
        )
        .await;
    assert_eq!(
        deleted.results[0].error_code,
        ResponseError::NonEmptyGroup.code()
    );

    // Both leave in one batched LeaveGroup; the group is empty, its offsets stay.
    let left: LeaveGroupResponse = c
        .call(
            ApiKey::LeaveGroup,
            5,
            &LeaveGroupRequest::default()
                .with_group_id(group("g"))
                .with_members(vec![
                    MemberIdentity::default().with_member_id(s(&a_id)),
                    MemberIdentity::default().with_member_id(s(&b_id)),
                    MemberIdentity::default().with_member_id(s("ghost")),
                ]),
        )
        .await;
    let codes: Vec<i16> = left.members.iter().map(|m| m.error_code).collect();
    assert_eq!(codes, [0, 0, ResponseError::UnknownMemberId.code()]);
    let listed: ListGroupsResponse = c
        .call(
            ApiKey::ListGroups,
            5,
            &ListGroupsRequest::default().with_states_filter(vec![s("empty")]),
        )
        .await;
    assert_eq!(listed.groups.len(), 1);
    assert_eq!(listed.groups[0].group_id.as_str(), "g");
    assert_eq!(listed.groups[0].group_type.as_str(), "classic");
    assert_eq!(
        fetch_offsets(&mut c, "g", "t", vec![0]).await,
        [(0, 5, "x".to_string(), 0)]
    );

    // OffsetDelete then DeleteGroups.
    let od: OffsetDeleteResponse = c
        .call(
            ApiKey::OffsetDelete,
            0,
            &OffsetDeleteRequest::default()
                .with_group_id(group("g"))
                .with_topics(vec![OffsetDeleteRequestTopic::default()
                    .with_name(TopicName(s("t")))
                    .with_partitions(vec![
                        OffsetDeleteRequestPartition::default().with_partition_index(0)
                    ])]),
        )
        .await;
    assert_eq!(od.error_code, 0);
    assert_eq!(od.topics[0].partitions[0].error_code, 0);
    assert_eq!(fetch_offsets(&mut c, "g", "t", vec![0]).await[0].1, -1);
    let deleted: DeleteGroupsResponse = c
        .call(
            ApiKey::DeleteGroups,
            2,
            &DeleteGroupsRequest::default().with_groups_names(vec![group("g"), group("nope")]),
        )
        .await;
    let codes: Vec<i16> = deleted.results.iter().map(|r| r.error_code).collect();
    assert_eq!(codes, [0, ResponseError::GroupIdNotFound.code()]);
    let described: DescribeGroupsResponse = c
        .call(
            ApiKey::DescribeGroups,
            6,
            &DescribeGroupsRequest::default().with_groups(vec![group("g")]),
        )
        .await;
    assert_eq!(
        described.groups[0].error_code,
        ResponseError::GroupIdNotFound.code()
    );
    broker.stop().await;
}

#[tokio::test]
async fn a_silent_member_is_expired_and_a_deleted_group_stays_deleted_after_restart() {
    let settings = [
        ("offsets.topic.num.partitions", "1"),
        ("group.initial.rebalance.delay.ms", "0"),
        ("group.min.session.timeout.ms", "100"),
    ];
    let broker = TestBroker::start(&settings).await;
    let mut client = broker.client().await;
    create_topic(&mut client, "t", 1).await;
    let request = JoinGroupRequest::default()
        .with_group_id(group("short"))
        .with_session_timeout_ms(300)
        .with_rebalance_timeout_ms(300)
        .with_member_id(s(""))
        .with_protocol_type(s("consumer"))
        .with_protocols(vec![
            JoinGroupRequestProtocol::default().with_name(s("range"))
        ]);
    // v3: no member id round trip.
    let joined: JoinGroupResponse = client.call(ApiKey::JoinGroup, 3, &request).await;
    assert_eq!(joined.error_code, 0);
    let member = joined.member_id.to_string();
    let synced = sync(&mut client, "short", &member, joined.generation_id, vec![]).await;
    assert_eq!(synced.error_code, 0);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let described: DescribeGroupsResponse = client
            .call(
                ApiKey::DescribeGroups,
                5,
                &DescribeGroupsRequest::default().with_groups(vec![group("short")]),
            )
            .await;
        if described.groups[0].group_state.as_str() == "Empty" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the member was never expired"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let _: OffsetCommitResponse = client
        .call(
            ApiKey::OffsetCommit,
            8,
            &commit_request("keep", -1, "", &[("t", 0, 3, "")]),
        )
        .await;
    let _: OffsetCommitResponse = client
        .call(
            ApiKey::OffsetCommit,
            8,
            &commit_request("drop", -1, "", &[("t", 0, 4, "")]),
        )
        .await;
    let deleted: DeleteGroupsResponse = client
        .call(
            ApiKey::DeleteGroups,
            2,
            &DeleteGroupsRequest::default().with_groups_names(vec![group("drop")]),
        )
        .await;
    assert_eq!(deleted.results[0].error_code, 0);
    let dir = broker.stop().await;
    let broker = TestBroker::start_in(dir, &settings).await;
    let mut client = broker.client().await;
    assert_eq!(
        fetch_offsets(&mut client, "keep", "t", vec![0]).await[0].1,
        3
    );
    assert_eq!(
        fetch_offsets(&mut client, "drop", "t", vec![0]).await[0].1,
        -1
    );
    let listed: ListGroupsResponse = client
        .call(ApiKey::ListGroups, 5, &ListGroupsRequest::default())
        .await;
    let mut names: Vec<String> = listed
        .groups
        .iter()
        .map(|g| g.group_id.to_string())
        .collect();
    names.sort();
    assert_eq!(names, ["keep", "short"]);
    broker.stop().await;
}

async fn cg_heartbeat(
    client: &mut RawClient,
    version: i16,
    request: ConsumerGroupHeartbeatRequest,
) -> ConsumerGroupHeartbeatResponse {
    client
        .call(ApiKey::ConsumerGroupHeartbeat, version, &request)
        .await
}

fn owned(response: &ConsumerGroupHeartbeatResponse) -> Vec<i32> {
    let mut partitions: Vec<i32> = response
        .assignment
        .as_ref()
        .map(|a| {
            a.topic_partitions
                .iter()
                .flat_map(|t| t.partitions.clone())
                .collect()
        })
        .unwrap_or_default();
    partitions.sort();
    partitions
}

#[tokio::test]
async fn consumer_protocol_members_split_a_topic_and_describe_shows_them() {
    let broker = TestBroker::start(&[("offsets.topic.num.partitions", "1")]).await;
    let mut client = broker.client().await;
    create_topic(&mut client, "t", 4).await;
    let join_848 = |member: &str| {
        ConsumerGroupHeartbeatRequest::default()
            .with_group_id(group("kip848"))
            .with_member_id(s(member))
            .with_member_epoch(0)
            .with_rebalance_timeout_ms(5000)
            .with_subscribed_topic_names(Some(vec![TopicName(s("t"))]))
            .with_topic_partitions(Some(Vec::new()))
    };
    // v0: the coordinator names the member.
    let a = cg_heartbeat(&mut client, 0, join_848("")).await;
    assert_eq!(a.error_code, 0, "{:?}", a.error_message);
    let a_id = a.member_id.clone().unwrap().to_string();
    assert!(!a_id.is_empty());
    assert!(a.member_epoch > 0);
    assert_eq!(owned(&a), [0, 1, 2, 3]);
    assert!(a.heartbeat_interval_ms > 0);
    // v1: the client names itself; an empty id is refused.
    let refused = cg_heartbeat(&mut client, 1, join_848("")).await;
    assert_eq!(refused.error_code, ResponseError::InvalidRequest.code());
    let b = cg_heartbeat(&mut client, 1, join_848("member-b")).await;
    assert_eq!(b.error_code, 0);
    assert_eq!(b.member_id.as_ref().unwrap().as_str(), "member-b");
    // B gets nothing until A gives partitions up.
    assert!(owned(&b).is_empty());
    let topic_id = a.assignment.as_ref().unwrap().topic_partitions[0].topic_id;
    let partitions = |ps: Vec<i32>| {
        Some(vec![
            consumer_group_heartbeat_request::TopicPartitions::default()
                .with_topic_id(topic_id)
                .with_partitions(ps),
        ])
    };
    let a2 = cg_heartbeat(
        &mut client,
        0,
        ConsumerGroupHeartbeatRequest::default()
            .with_group_id(group("kip848"))
            .with_member_id(s(&a_id))
            .with_member_epoch(a.member_epoch)
            .with_topic_partitions(partitions(vec![0, 1, 2, 3])),
    )
    .await;
    assert_eq!(a2.error_code, 0);
    let kept = owned(&a2);
    assert_eq!(kept.len(), 2, "A must revoke half: {kept:?}");
    // A acknowledges the revocation; B then receives the other half.
    let a3 = cg_heartbeat(
        &mut client,
        0,
        ConsumerGroupHeartbeatRequest::default()
            .with_group_id(group("kip848"))
            .with_member_id(s(&a_id))
            .with_member_epoch(a2.member_epoch)
            .with_topic_partitions(partitions(kept.clone())),
    )
    .await;
    assert_eq!(a3.error_code, 0);
    let b2 = cg_heartbeat(
        &mut client,
        1,
        ConsumerGroupHeartbeatRequest::default()
            .with_group_id(group("kip848"))
            .with_member_id(s("member-b"))
            .with_member_epoch(b.member_epoch)
            .with_topic_partitions(partitions(Vec::new())),
    )
    .await;
    assert_eq!(b2.error_code, 0);
    let mut all = kept.clone();
    all.extend(owned(&b2));
    all.sort();
    assert_eq!(all, [0, 1, 2, 3], "the two halves cover the topic once");
    // A stale epoch is fenced.
    let fenced = cg_heartbeat(
        &mut client,
        1,
        ConsumerGroupHeartbeatRequest::default()
            .with_group_id(group("kip848"))
            .with_member_id(s("member-b"))
            .with_member_epoch(b2.member_epoch + 5),
    )
    .await;
    assert_eq!(fenced.error_code, ResponseError::FencedMemberEpoch.code());

    for version in [0, 1] {
        let described: ConsumerGroupDescribeResponse = client
            .call(
                ApiKey::ConsumerGroupDescribe,
                version,
                &ConsumerGroupDescribeRequest::default()
                    .with_group_ids(vec![group("kip848"), group("absent")]),
            )
            .await;
        let g = &described.groups[0];
        assert_eq!(g.error_code, 0);
        assert_eq!(g.members.len(), 2);
        assert_eq!(g.assignor_name.as_str(), "uniform");
        assert!(g
            .members
            .iter()
            .all(|m| m.client_host.starts_with("/127.0.0.1")));
        assert_eq!(
            described.groups[1].error_code,
            ResponseError::GroupIdNotFound.code()
        );
    }
    let listed: ListGroupsResponse = client
        .call(
            ApiKey::ListGroups,
            5,
            &ListGroupsRequest::default().with_types_filter(vec![s("consumer")]),
        )
        .await;
    assert_eq!(listed.groups.len(), 1);
    assert_eq!(listed.groups[0].protocol_type.as_str(), "consumer");
    // The classic APIs see a consumer group as not theirs.
    let joined = join(&mut client, "kip848", "", None, b"x").await;
    assert_eq!(
        joined.error_code,
        ResponseError::InconsistentGroupProtocol.code()
    );
    // Commits need v9 and the member's epoch.
    assert_eq!(
        commit_code(
            &mut client,
            8,
            commit_request("kip848", b2.member_epoch, "member-b", &[("t", 0, 1, "")])
        )
        .await,
        ResponseError::UnsupportedVersion.code()
    );
    assert_eq!(
        commit_code(
            &mut client,
            9,
            commit_request("kip848", b2.member_epoch, "member-b", &[("t", 0, 1, "")])
        )
        .await,
        0
    );
    // Both leave; the group can then be deleted.
    for (member, epoch, version) in [
        (a_id.as_str(), a3.member_epoch, 0),
        ("member-b", b2.member_epoch, 1),
    ] {
        let left = cg_heartbeat(
            &mut client,
            version,
            ConsumerGroupHeartbeatRequest::default()
                .with_group_id(group("kip848"))
                .with_member_id(s(member))
                .with_member_epoch(-1),
        )
        .await;
        assert_eq!(left.error_code, 0, "{member} at {epoch}");
        assert_eq!(left.member_epoch, -1);
    }
    let deleted: DeleteGroupsResponse = client
        .call(
            ApiKey::DeleteGroups,
            2,
            &DeleteGroupsRequest::default().with_groups_names(vec![group("kip848")]),
        )
        .await;
    assert_eq!(deleted.results[0].error_code, 0);
    broker.stop().await;
}

async fn offsets_topic_bytes(client: &mut RawClient) -> i64 {
    let r: DescribeLogDirsResponse = client
        .call(
            ApiKey::DescribeLogDirs,
            4,
            &DescribeLogDirsRequest::default().with_topics(None),
        )
        .await;
    r.results[0]
        .topics
        .iter()
        .filter(|t| t.name.as_str() == "__consumer_offsets")
        .flat_map(|t| t.partitions.iter().map(|p| p.partition_size))
        .sum()
}

#[tokio::test]
async fn the_offsets_topic_is_compacted_and_keeps_the_latest_commit() {
    let settings = [
        ("offsets.topic.num.partitions", "1"),
        ("log.cleaner.backoff.ms", "50"),
    ];
    let broker = TestBroker::start(&settings).await;
    let mut client = broker.client().await;
    create_topic(&mut client, "t", 2).await;
    let _: FindCoordinatorResponse = client
        .call(
            ApiKey::FindCoordinator,
            3,
            &FindCoordinatorRequest::default().with_key(s("busy")),
        )
        .await;
    // Segments of at least 1 MiB would hold everything; roll by time.
    let altered: IncrementalAlterConfigsResponse = client
        .call(
            ApiKey::IncrementalAlterConfigs,
            1,
            &IncrementalAlterConfigsRequest::default().with_resources(vec![
                incremental_alter_configs_request::AlterConfigsResource::default()
                    .with_resource_type(2)
                    .with_resource_name(s("__consumer_offsets"))
                    .with_configs(vec![
                        incremental_alter_configs_request::AlterableConfig::default()
                            .with_name(s("segment.ms"))
                            .with_config_operation(0)
                            .with_value(Some(s("100"))),
                    ]),
            ]),
        )
        .await;
    assert_eq!(altered.responses[0].error_code, 0);
    for i in 0..600 {
        if i % 100 == 99 {
            tokio::time::sleep(std::time::Duration::from_millis(120)).await;
        }
        assert_eq!(
            commit_code(
                &mut client,
                8,
                commit_request("busy", -1, "", &[("t", 0, i, "m"), ("t", 1, 2 * i, "")])
            )
            .await,
            0
        );
    }
    let written = 600 * 100;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut size = offsets_topic_bytes(&mut client).await;
    while size > 12 * 1024 {
        assert!(
            std::time::Instant::now() < deadline,
            "__consumer_offsets still holds {size} bytes"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        size = offsets_topic_bytes(&mut client).await;
    }
    assert!(size < written / 4, "{size} bytes left of about {written}");
    let dir = broker.stop().await;
    let broker = TestBroker::start_in(dir, &settings).await;
    let mut client = broker.client().await;
    let after = fetch_offsets(&mut client, "busy", "t", vec![0, 1]).await;
    assert_eq!(
        after,
        [(0, 599, "m".to_string(), 0), (1, 1198, String::new(), 0)]
    );
    broker.stop().await;
}

#[tokio::test]
async fn a_consumer_protocol_member_carries_on_after_a_restart() {
    let settings = [("offsets.topic.num.partitions", "2")];
    let broker = TestBroker::start(&settings).await;
    let mut client = broker.client().await;
    create_topic(&mut client, "t", 3).await;
    let joined = cg_heartbeat(
        &mut client,
        1,
        ConsumerGroupHeartbeatRequest::default()
            .with_group_id(group("durable"))
            .with_member_id(s("m1"))
            .with_member_epoch(0)
            .with_rebalance_timeout_ms(5000)
            .with_subscribed_topic_names(Some(vec![TopicName(s("t"))]))
            .with_topic_partitions(Some(Vec::new())),
    )
    .await;
    assert_eq!(joined.error_code, 0);
    assert_eq!(owned(&joined), [0, 1, 2]);
    let dir = broker.stop().await;
    let broker = TestBroker::start_in(dir, &settings).await;
    let mut client = broker.client().await;
    let topic_id = joined.assignment.as_ref().unwrap().topic_partitions[0].topic_id;
    let after = cg_heartbeat(
        &mut client,
        1,
        ConsumerGroupHeartbeatRequest::default()
            .with_group_id(group("durable"))
            .with_member_id(s("m1"))
            .with_member_epoch(joined.member_epoch)
            .with_topic_partitions(Some(vec![
                consumer_group_heartbeat_request::TopicPartitions::default()
                    .with_topic_id(topic_id)
                    .with_partitions(vec![0, 1, 2]),
            ])),
    )
    .await;
    assert_eq!(after.error_code, 0, "{:?}", after.error_message);
    assert_eq!(after.member_epoch, joined.member_epoch);
    let described: ConsumerGroupDescribeResponse = client
        .call(
            ApiKey::ConsumerGroupDescribe,
            1,
            &ConsumerGroupDescribeRequest::default().with_group_ids(vec![group("durable")]),
        )
        .await;
    let member = &described.groups[0].members[0];
    assert_eq!(member.member_id.as_str(), "m1");
    let mut partitions: Vec<i32> = member
        .assignment
        .topic_partitions
        .iter()
        .flat_map(|t| t.partitions.clone())
        .collect();
    partitions.sort();
    assert_eq!(partitions, [0, 1, 2]);
    broker.stop().await;
}

#[tokio::test]
async fn authorized_operations_are_given_when_asked_for() {
    let broker = TestBroker::start(&[("offsets.topic.num.partitions", "1")]).await;
    let mut client = broker.client().await;
    create_topic(&mut client, "t", 1).await;
    assert_eq!(
        commit_code(
            &mut client,
            8,
            commit_request("ops", -1, "", &[("t", 0, 1, "")])
        )
        .await,
        0
    );
    for (asked, expected) in [(true, (1 << 3) | (1 << 6) | (1 << 8)), (false, i32::MIN)] {
        let described: DescribeGroupsResponse = client
            .call(
                ApiKey::DescribeGroups,
                3,
                &DescribeGroupsRequest::default()
                    .with_groups(vec![group("ops")])
                    .with_include_authorized_operations(asked),
            )
            .await;
        assert_eq!(described.groups[0].authorized_operations, expected);
    }
    let cluster: DescribeClusterResponse = client
        .call(
            ApiKey::DescribeCluster,
            0,
            &DescribeClusterRequest::default().with_include_cluster_authorized_operations(true),
        )
        .await;
    assert!(cluster.cluster_authorized_operations > 0);
    assert_ne!(
        cluster.cluster_authorized_operations & (1 << 12),
        0,
        "IDEMPOTENT_WRITE"
    );
    broker.stop().await;
}
