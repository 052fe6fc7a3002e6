//! `runnel consume` and `runnel perf consume` against a `runnel server`, with
//! records written by raw Produce requests (independent of `runnel produce`).

mod common;

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use common::{unique, Broker};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{CreateTopicsRequest, ProduceRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use runnel_client::{ClientConfig, Cluster};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Creates `topic` with `partitions` partitions and appends `records` (key, value) to
/// partition 0, each with timestamp 1_000 + its index.
fn setup(broker: &Broker, topic: &str, partitions: i32, records: &[(String, String)]) {
    runtime().block_on(async {
        let cluster = Cluster::connect(ClientConfig::new(&broker.bootstrap))
            .await
            .unwrap();
        let name = TopicName(StrBytes::from_string(topic.to_owned()));
        let create = CreateTopicsRequest::default()
            .with_timeout_ms(10_000)
            .with_topics(vec![CreatableTopic::default()
                .with_name(name.clone())
                .with_num_partitions(partitions)
                .with_replication_factor(1)]);
        let created = cluster.send_any(&create).await.unwrap();
        assert_eq!(created.topics[0].error_code, 0);
        if records.is_empty() {
            return;
        }
        let batch: Vec<Record> = records
            .iter()
            .enumerate()
            .map(|(i, (k, v))| Record {
                transactional: false,
                control: false,
                partition_leader_epoch: -1,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                // The encoder starts a new batch unless offset - sequence stays constant;
                // this keeps one batch with base sequence -1 (no producer id).
                sequence: i as i32 - 1,
                timestamp: 1_000 + i as i64,
                key: Some(Bytes::from(k.clone())),
                value: Some(Bytes::from(v.clone())),
                headers: Default::default(),
                delete_horizon: false,
            })
            .collect();
        let mut buf = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            &batch,
            &RecordEncodeOptions {
                version: 2,
                compression: Compression::None,
            },
        )
        .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let (_, connection) = loop {
            match cluster.leader(topic, 0).await {
                Ok(leader) => break leader,
                Err(e) if std::time::Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    let _ = cluster.refresh_metadata(&[topic.to_owned()]).await;
                }
                Err(e) => panic!("no leader for {topic}: {e}"),
            }
        };
        let produce = ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(5_000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(name)
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(buf.freeze()))])]);
        let version = connection.version_for::<ProduceRequest>(Some(12)).unwrap();
        let answer = connection.send_version(&produce, version).await.unwrap();
        let p = &answer.responses[0].partition_responses[0];
        assert_eq!(p.error_code, 0, "{:?}", p.error_message);
    });
}

fn records(n: usize) -> Vec<(String, String)> {
    (0..n).map(|i| (format!("k{i}"), format!("v{i}"))).collect()
}

#[test]
fn from_beginning_json_lines_are_every_record_in_order() {
    let broker = Broker::start(&[]);
    let topic = unique("cj");
    setup(&broker, &topic, 1, &records(25));
    let run = broker.run(&[
        "consume",
        &topic,
        "--from-beginning",
        "--count",
        "25",
        "-o",
        "json",
    ]);
    let lines: Vec<serde_json::Value> = run
        .ok()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(lines.len(), 25, "{}", run.stdout);
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(line["offset"], i as i64);
        assert_eq!(line["partition"], 0);
        assert_eq!(line["topic"], topic.as_str());
        assert_eq!(line["key"], format!("k{i}"));
        assert_eq!(line["value"], format!("v{i}"));
        assert_eq!(line["timestamp"], 1_000 + i as i64);
    }
}

#[test]
fn format_string_prints_partition_offset_key_and_value() {
    let broker = Broker::start(&[]);
    let topic = unique("cf");
    setup(&broker, &topic, 1, &records(3));
    let run = broker.run(&[
        "consume",
        &topic,
        "--from-beginning",
        "--count",
        "3",
        "--format",
        "%p:%o:%k=%v\\n",
    ]);
    assert_eq!(run.ok(), "0:0:k0=v0\n0:1:k1=v1\n0:2:k2=v2\n");
}

#[test]
fn default_format_is_one_value_per_line_and_offset_starts_there() {
    let broker = Broker::start(&[]);
    let topic = unique("co");
    setup(&broker, &topic, 1, &records(5));
    let run = broker.run(&["consume", &topic, "--offset", "3", "--count", "2"]);
    assert_eq!(run.ok(), "v3\nv4\n");
}

#[test]
fn from_timestamp_starts_at_the_first_record_at_or_after_it() {
    let broker = Broker::start(&[]);
    let topic = unique("ct");
    setup(&broker, &topic, 1, &records(5));
    let run = broker.run(&[
        "consume",
        &topic,
        "--from-timestamp",
        "1003",
        "--count",
        "2",
    ]);
    assert_eq!(run.ok(), "v3\nv4\n");
}

#[test]
fn idle_timeout_ends_a_run_without_count() {
    let broker = Broker::start(&[]);
    let topic = unique("ci");
    setup(&broker, &topic, 2, &records(4));
    let run = broker.run(&[
        "consume",
        &topic,
        "--from-beginning",
        "--idle-timeout-ms",
        "1500",
    ]);
    assert_eq!(run.ok(), "v0\nv1\nv2\nv3\n");
}

#[test]
fn unknown_topic_fails_with_a_message() {
    let broker = Broker::start(&["auto.create.topics.enable=false"]);
    let run = broker.run(&["consume", "no-such-topic", "--count", "1"]);
    let stderr = run.failed();
    assert!(stderr.contains("unknown topic no-such-topic"), "{stderr}");
}

#[test]
fn unreachable_broker_fails_with_a_message() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let bootstrap = format!("127.0.0.1:{port}");
    let run = common::run(&[
        "-b",
        &bootstrap,
        "--timeout-ms",
        "2000",
        "consume",
        "t",
        "--count",
        "1",
    ]);
    let stderr = run.failed();
    assert!(stderr.contains("cannot reach the cluster"), "{stderr}");
}

#[test]
fn perf_consume_reads_the_whole_topic_and_reports_it() {
    let broker = Broker::start(&[]);
    let topic = unique("pc");
    setup(&broker, &topic, 1, &records(200));
    let run = broker.run(&["perf", "consume", &topic, "-o", "json"]);
    let report = run.json();
    assert_eq!(report["mode"], "consume");
    assert_eq!(report["records"], 200, "{report}");
    assert!(
        report["records_per_sec"].as_f64().unwrap() > 0.0,
        "{report}"
    );
}

#[test]
fn include_reads_every_topic_the_pattern_matches() {
    let broker = Broker::start(&[]);
    let prefix = unique("ci");
    setup(&broker, &format!("{prefix}-a"), 1, &records(2));
    setup(&broker, &format!("{prefix}-b"), 1, &records(1));
    setup(&broker, &format!("x{prefix}-c"), 1, &records(1));
    let run = broker.run(&[
        "consume",
        "--include",
        &format!("{prefix}-.*"),
        "--from-beginning",
        "--count",
        "3",
        "--format",
        "%t %v\\n",
    ]);
    let mut lines: Vec<&str> = run.ok().lines().collect();
    lines.sort_unstable();
    let want = [
        format!("{prefix}-a v0"),
        format!("{prefix}-a v1"),
        format!("{prefix}-b v0"),
    ];
    assert_eq!(lines, want, "{run:?}");
}

#[test]
fn include_rejects_a_bad_pattern_and_a_topic_beside_it() {
    let broker = Broker::start(&[]);
    let run = broker.run(&["consume", "--include", "(", "--count", "1"]);
    let stderr = run.failed();
    assert!(stderr.contains("--include"), "{stderr}");
    assert!(stderr.contains("topic pattern"), "{stderr}");
    let run = broker.run(&["consume", "t", "--include", "t.*", "--count", "1"]);
    assert_eq!(run.code, Some(2), "{run:?}");
    let run = broker.run(&["consume", "--count", "1"]);
    assert_eq!(run.code, Some(2), "{run:?}");
}
