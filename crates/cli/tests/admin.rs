//! `runnel topics`, `configs`, `groups` and `cluster` driven as a user would, against
//! a `runnel server` child process.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{unique, Broker};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ProduceRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use runnel_client::admin::Admin;
use runnel_client::{ClientConfig, TopicPartition};
use serde_json::Value;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Produces `count` records to partition 0 of `topic` (raw ProduceRequest at the
/// leader; the producer is not what these tests are about).
fn produce(broker: &Broker, topic: &str, count: usize) {
    runtime().block_on(async {
        let admin = Admin::connect(ClientConfig::new(&broker.bootstrap))
            .await
            .unwrap();
        let (_, connection) = admin.cluster().leader(topic, 0).await.unwrap();
        let records: Vec<Record> = (0..count)
            .map(|i| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: -1,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                // The encoder starts a new batch whenever offset - sequence changes; the
                // first record's -1 is the batch's "no sequence".
                sequence: i as i32 - 1,
                timestamp: 1_700_000_000_000 + i as i64,
                key: None,
                value: Some(bytes::Bytes::from(format!("record {i}"))),
                headers: Default::default(),
            })
            .collect();
        let mut buf = bytes::BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            &records,
            &RecordEncodeOptions {
                version: 2,
                compression: Compression::None,
            },
        )
        .unwrap();
        let request = ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(5_000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_string(topic.to_owned())))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(buf.freeze()))])]);
        let version = connection.version_for::<ProduceRequest>(Some(12)).unwrap();
        let response = connection.send_version(&request, version).await.unwrap();
        let answer = &response.responses[0].partition_responses[0];
        assert_eq!(answer.error_code, 0, "{answer:?}");
    });
}

/// Commits `offset` for `topic`-0 in `group` as an admin (the group stays empty).
fn commit(broker: &Broker, group: &str, topic: &str, offset: i64) {
    runtime().block_on(async {
        let admin = Admin::connect(ClientConfig::new(&broker.bootstrap))
            .await
            .unwrap();
        let results = admin
            .alter_group_offsets(
                group,
                &BTreeMap::from([(TopicPartition::new(topic, 0), offset)]),
            )
            .await
            .unwrap();
        assert!(results.values().all(Result::is_ok), "{results:?}");
    });
}

fn names(listed: &Value) -> Vec<String> {
    listed
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect()
}

fn config_value(configs: &Value, name: &str) -> Value {
    configs
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("{name} not in {configs}"))
        .clone()
}

#[test]
fn topics_are_created_listed_described_altered_and_deleted() {
    let broker = Broker::start(&[]);
    let topic = unique("cli-topic");
    let created = broker
        .run(&[
            "-o",
            "json",
            "topics",
            "create",
            &topic,
            "--partitions",
            "2",
            "--config",
            "retention.ms=100000",
        ])
        .json();
    assert_eq!(created[0]["status"], "created", "{created}");
    assert!(names(&broker.run(&["-o", "json", "topics", "list"]).json()).contains(&topic));

    let described = broker
        .run(&["-o", "json", "topics", "describe", &topic])
        .json();
    let only = &described[0];
    assert_eq!(only["name"], topic.as_str());
    let partitions = only["partitions"].as_array().unwrap();
    assert_eq!(partitions.len(), 2, "{described}");
    for (i, p) in partitions.iter().enumerate() {
        assert_eq!(p["partition"], i);
        let leader = p["leader"].as_i64().unwrap();
        assert!(leader >= 0, "{p}");
        assert_eq!(p["replicas"], serde_json::json!([leader]));
        assert_eq!(p["isr"], serde_json::json!([leader]));
    }
    assert_eq!(only["configs"]["retention.ms"], "100000", "{described}");
    // The table form names the same partitions.
    let table = broker.run(&["topics", "describe", &topic]).ok().to_owned();
    assert!(table.contains(&topic) && table.contains("ISR"), "{table}");

    broker
        .run(&[
            "topics",
            "alter",
            &topic,
            "--partitions",
            "3",
            "--delete-config",
            "retention.ms",
            "--config",
            "cleanup.policy=compact",
        ])
        .ok();
    let described = broker
        .run(&["-o", "json", "topics", "describe", &topic])
        .json();
    assert_eq!(described[0]["partitions"].as_array().unwrap().len(), 3);
    assert_eq!(described[0]["configs"]["cleanup.policy"], "compact");
    assert!(
        described[0]["configs"].get("retention.ms").is_none(),
        "{described}"
    );

    broker.run(&["topics", "delete", &topic]).ok();
    assert!(!names(&broker.run(&["-o", "json", "topics", "list"]).json()).contains(&topic));
    let again = broker.run(&["topics", "delete", &topic]);
    assert!(
        again.failed().contains("UNKNOWN_TOPIC_OR_PARTITION"),
        "{again:?}"
    );
    broker
        .run(&["topics", "delete", &topic, "--if-exists"])
        .ok();
}

#[test]
fn creating_an_existing_topic_fails_with_topic_already_exists() {
    let broker = Broker::start(&[]);
    let topic = unique("twice");
    broker.run(&["topics", "create", &topic]).ok();
    let second = broker.run(&["topics", "create", &topic]);
    let stderr = second.failed();
    assert!(stderr.contains("TOPIC_ALREADY_EXISTS"), "{stderr}");
    assert!(stderr.contains(&topic), "{stderr}");
    let tolerated = broker
        .run(&["-o", "json", "topics", "create", &topic, "--if-not-exists"])
        .json();
    assert_eq!(tolerated[0]["status"], "exists");
}

#[test]
fn describing_an_unknown_topic_fails() {
    let broker = Broker::start(&["auto.create.topics.enable=false"]);
    let run = broker.run(&["topics", "describe", "no-such-topic"]);
    let stderr = run.failed();
    assert!(stderr.contains("no-such-topic"), "{stderr}");
    assert!(run.stdout.is_empty(), "{}", run.stdout);
}

#[test]
fn an_altered_config_is_described_and_reverts_when_deleted() {
    let broker = Broker::start(&[]);
    let topic = unique("configured");
    broker.run(&["topics", "create", &topic]).ok();
    broker
        .run(&[
            "configs",
            "alter",
            "--topic",
            &topic,
            "--set",
            "retention.ms=5000",
        ])
        .ok();
    let configs = broker
        .run(&["-o", "json", "configs", "describe", "--topic", &topic])
        .json();
    let retention = config_value(&configs, "retention.ms");
    assert_eq!(retention["value"], "5000", "{retention}");
    assert_eq!(retention["source"], "DYNAMIC_TOPIC_CONFIG");
    assert_eq!(retention["default"], false);

    broker
        .run(&[
            "configs",
            "alter",
            "--topic",
            &topic,
            "--delete",
            "retention.ms",
        ])
        .ok();
    let configs = broker
        .run(&["-o", "json", "configs", "describe", "--topic", &topic])
        .json();
    let retention = config_value(&configs, "retention.ms");
    assert_eq!(retention["source"], "DEFAULT_CONFIG", "{retention}");
    assert_ne!(retention["value"], "5000");

    // Broker configs are described by node id.
    let cluster = broker.run(&["-o", "json", "cluster", "describe"]).json();
    let id = cluster["brokers"][0]["id"].to_string();
    let configs = broker
        .run(&["-o", "json", "configs", "describe", "--broker", &id])
        .json();
    assert!(!configs.as_array().unwrap().is_empty(), "{configs}");
    // Exactly one resource is required.
    broker.run(&["configs", "describe"]).failed();
}

#[test]
fn groups_describe_shows_committed_offsets_end_offsets_and_lag() {
    let broker = Broker::start(&[]);
    let topic = unique("lagging");
    let group = unique("lag-group");
    broker
        .run(&["topics", "create", &topic, "--partitions", "1"])
        .ok();
    produce(&broker, &topic, 5);
    commit(&broker, &group, &topic, 2);

    let listed = broker.run(&["-o", "json", "groups", "list"]).json();
    let listing = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["group"] == group.as_str())
        .unwrap_or_else(|| panic!("{group} not in {listed}"));
    assert_eq!(listing["state"], "Empty");
    let stable = broker
        .run(&["-o", "json", "groups", "list", "--state", "Stable"])
        .json();
    assert!(!stable.to_string().contains(&group), "{stable}");

    let described = broker
        .run(&["-o", "json", "groups", "describe", &group])
        .json();
    assert_eq!(described["state"], "Empty", "{described}");
    assert_eq!(described["members"], serde_json::json!([]));
    let row = &described["partitions"][0];
    assert_eq!(row["topic"], topic.as_str(), "{described}");
    assert_eq!(row["partition"], 0);
    assert_eq!(row["committed_offset"], 2);
    assert_eq!(row["end_offset"], 5);
    assert_eq!(row["lag"], 3);
    let table = broker.run(&["groups", "describe", &group]).ok().to_owned();
    assert!(table.contains("Lag") && table.contains("Empty"), "{table}");

    broker.run(&["groups", "delete", &group]).ok();
    let listed = broker.run(&["-o", "json", "groups", "list"]).json();
    assert!(!listed.to_string().contains(&group), "{listed}");
}

#[test]
fn reset_offsets_is_a_dry_run_until_executed() {
    let broker = Broker::start(&[]);
    let topic = unique("reset");
    let group = unique("reset-group");
    broker
        .run(&["topics", "create", &topic, "--partitions", "1"])
        .ok();
    produce(&broker, &topic, 5);
    commit(&broker, &group, &topic, 2);
    let committed = |broker: &Broker| {
        broker
            .run(&["-o", "json", "groups", "describe", &group])
            .json()["partitions"][0]["committed_offset"]
            .clone()
    };

    let plan = broker
        .run(&[
            "-o",
            "json",
            "groups",
            "reset-offsets",
            &group,
            "--topic",
            &topic,
            "--to-earliest",
        ])
        .json();
    assert_eq!(plan[0]["current_offset"], 2, "{plan}");
    assert_eq!(plan[0]["new_offset"], 0, "{plan}");
    assert_eq!(committed(&broker), 2, "a dry run commits nothing");

    let spec = format!("{topic}:0");
    let args = |to: &[&'static str]| {
        let mut args = vec![
            "-o",
            "json",
            "groups",
            "reset-offsets",
            group.as_str(),
            "--topic",
            spec.as_str(),
        ];
        args.extend_from_slice(to);
        args.push("--execute");
        broker.run(&args).json()
    };
    assert_eq!(args(&["--to-latest"])[0]["new_offset"], 5);
    assert_eq!(committed(&broker), 5);
    assert_eq!(args(&["--shift-by", "-2"])[0]["new_offset"], 3);
    assert_eq!(committed(&broker), 3);
    assert_eq!(
        args(&["--to-offset", "99"])[0]["new_offset"],
        5,
        "clamped to the end"
    );
    // Record i has timestamp 1_700_000_000_000 + i.
    assert_eq!(
        args(&["--to-timestamp", "1700000000001"])[0]["new_offset"],
        1
    );
    assert_eq!(
        args(&["--to-datetime", "2023-11-14T22:13:20.004Z"])[0]["new_offset"],
        4
    );
    assert_eq!(committed(&broker), 4);

    // Exactly one target is required.
    broker
        .run(&["groups", "reset-offsets", &group, "--topic", &topic])
        .failed();
}

#[test]
fn cluster_describe_names_the_broker() {
    let broker = Broker::start(&[]);
    let cluster = broker.run(&["-o", "json", "cluster", "describe"]).json();
    let brokers = cluster["brokers"].as_array().unwrap();
    assert_eq!(brokers.len(), 1, "{cluster}");
    let addr = format!(
        "{}:{}",
        brokers[0]["host"].as_str().unwrap(),
        brokers[0]["port"]
    );
    assert_eq!(addr, broker.bootstrap);
    assert_eq!(cluster["controller"], brokers[0]["id"]);
    assert!(
        cluster["cluster_id"]
            .as_str()
            .is_some_and(|c| !c.is_empty()),
        "{cluster}"
    );
    let table = broker.run(&["cluster", "describe"]).ok().to_owned();
    assert!(table.contains("Cluster id"), "{table}");
}

#[test]
fn an_unreachable_broker_fails_quickly_naming_the_address() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    for command in [
        &["topics", "list"][..],
        &["groups", "list"],
        &["configs", "describe", "--topic", "t"],
        &["cluster", "describe"],
    ] {
        let started = Instant::now();
        let mut args = vec!["-b", addr.as_str()];
        args.extend_from_slice(command);
        let run = common::run(&args);
        let stderr = run.failed();
        assert!(stderr.contains(&addr), "{command:?}: {stderr}");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{command:?} took {:?}",
            started.elapsed()
        );
    }
}

/// Makes `group` a Stable classic consumer group whose only member owns `topic`-0
/// (raw JoinGroup and SyncGroup); the member outlives this call by its 30 s session.
fn join_as_only_member(broker: &Broker, group: &str, topic: &str) -> String {
    use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
    use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
    use kafka_protocol::messages::{
        consumer_protocol_assignment, ConsumerProtocolAssignment, ConsumerProtocolSubscription,
        GroupId, JoinGroupRequest, SyncGroupRequest,
    };
    use kafka_protocol::protocol::Encodable;

    fn versioned(version: i16, write: impl FnOnce(&mut bytes::BytesMut)) -> bytes::Bytes {
        let mut buf = bytes::BytesMut::new();
        bytes::BufMut::put_i16(&mut buf, version);
        write(&mut buf);
        buf.freeze()
    }
    runtime().block_on(async {
        let admin = Admin::connect(ClientConfig::new(&broker.bootstrap))
            .await
            .unwrap();
        let (_, coordinator) = admin
            .cluster()
            .coordinator(runnel_client::CoordinatorKind::Group, group)
            .await
            .unwrap();
        let subscription = versioned(0, |buf| {
            ConsumerProtocolSubscription::default()
                .with_topics(vec![StrBytes::from_string(topic.to_owned())])
                .encode(buf, 0)
                .unwrap()
        });
        let mut join = JoinGroupRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(group.to_owned())))
            .with_session_timeout_ms(30_000)
            .with_rebalance_timeout_ms(30_000)
            .with_protocol_type(StrBytes::from_static_str("consumer"))
            .with_protocols(vec![JoinGroupRequestProtocol::default()
                .with_name(StrBytes::from_static_str("range"))
                .with_metadata(subscription)]);
        let mut joined = coordinator.send(&join).await.unwrap();
        if joined.error_code == runnel_client::ResponseError::MemberIdRequired.code() {
            join.member_id = joined.member_id.clone();
            joined = coordinator.send(&join).await.unwrap();
        }
        assert_eq!(joined.error_code, 0, "{joined:?}");
        let assignment = versioned(0, |buf| {
            ConsumerProtocolAssignment::default()
                .with_assigned_partitions(vec![
                    consumer_protocol_assignment::TopicPartition::default()
                        .with_topic(TopicName(StrBytes::from_string(topic.to_owned())))
                        .with_partitions(vec![0]),
                ])
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
    })
}

#[test]
fn a_group_with_a_member_shows_the_owner_and_refuses_a_reset() {
    let broker = Broker::start(&[]);
    let topic = unique("owned");
    let group = unique("busy-group");
    broker
        .run(&["topics", "create", &topic, "--partitions", "1"])
        .ok();
    produce(&broker, &topic, 3);
    let member = join_as_only_member(&broker, &group, &topic);

    let described = broker
        .run(&["-o", "json", "groups", "describe", &group])
        .json();
    assert_eq!(described["state"], "Stable", "{described}");
    assert_eq!(described["assignor"], "range");
    assert_eq!(described["members"][0]["member_id"], member.as_str());
    assert_eq!(
        described["members"][0]["assignment"],
        serde_json::json!([format!("{topic}-0")])
    );
    let row = &described["partitions"][0];
    assert_eq!(row["member_id"], member.as_str(), "{described}");
    assert_eq!(row["committed_offset"], Value::Null);
    assert_eq!(row["end_offset"], 3);
    assert_eq!(row["lag"], 3);

    // The plan is printed; executing it is the coordinator's call, and it refuses.
    broker
        .run(&[
            "groups",
            "reset-offsets",
            &group,
            "--topic",
            &topic,
            "--to-latest",
        ])
        .ok();
    let refused = broker.run(&[
        "groups",
        "reset-offsets",
        &group,
        "--topic",
        &topic,
        "--to-latest",
        "--execute",
    ]);
    let stderr = refused.failed();
    assert!(stderr.contains("UNKNOWN_MEMBER_ID"), "{stderr}");
    assert!(stderr.contains("is Stable with 1 member"), "{stderr}");
    let deleted = broker.run(&["groups", "delete", &group]);
    assert!(deleted.failed().contains("NON_EMPTY_GROUP"), "{deleted:?}");
}
