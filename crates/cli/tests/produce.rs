//! `runnel produce` and `runnel perf produce` against `runnel server`; what was
//! written is checked with a raw Fetch through the client's connection.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{unique, Broker};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{BrokerId, FetchRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{Record, RecordBatchDecoder};
use runnel_client::{ClientConfig, Cluster};

/// Every record of `topic`-`partition`, fetched from offset 0.
fn fetch(bootstrap: &str, topic: &str, partition: i32) -> Vec<Record> {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let cluster = Cluster::connect(ClientConfig::new(bootstrap))
            .await
            .unwrap();
        let (_, connection) = cluster.leader(topic, partition).await.unwrap();
        let version = connection.version_for::<FetchRequest>(Some(12)).unwrap();
        let request = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(200)
            .with_min_bytes(1)
            .with_max_bytes(8 << 20)
            .with_session_epoch(-1)
            .with_topics(vec![FetchTopic::default()
                .with_topic(TopicName(StrBytes::from_string(topic.to_owned())))
                .with_partitions(vec![FetchPartition::default()
                    .with_partition(partition)
                    .with_partition_max_bytes(8 << 20)])]);
        let response = connection.send_version(&request, version).await.unwrap();
        let data = &response.responses[0].partitions[0];
        assert_eq!(data.error_code, 0);
        let mut bytes: Bytes = data.records.clone().unwrap_or_default();
        RecordBatchDecoder::decode_all(&mut bytes)
            .unwrap()
            .into_iter()
            .flat_map(|set| set.records)
            .collect()
    })
}

fn text(bytes: &Option<Bytes>) -> String {
    String::from_utf8(bytes.clone().unwrap_or_default().to_vec()).unwrap()
}

#[test]
fn produce_sends_keys_values_and_headers_from_stdin() {
    let broker = Broker::start(&[]);
    let topic = unique("lines");
    let run = broker.run_with_stdin(
        &[
            "produce",
            &topic,
            "--key-separator",
            ":",
            "--header",
            "source=test",
            "--header",
            "kind=line",
            "--partition",
            "0",
            "-o",
            "json",
        ],
        "a:1\nb:2:with colon\nc:\n",
    );
    let summary = run.json();
    assert_eq!(summary["topic"], topic.as_str());
    assert_eq!(summary["records"], 3);
    assert_eq!(summary["partitions"]["0"], 2, "{summary}");
    let records = fetch(&broker.bootstrap, &topic, 0);
    let pairs: Vec<(String, String)> = records
        .iter()
        .map(|r| (text(&r.key), text(&r.value)))
        .collect();
    assert_eq!(
        pairs,
        vec![
            ("a".into(), "1".into()),
            ("b".into(), "2:with colon".into()),
            ("c".into(), "".into()),
        ]
    );
    for record in &records {
        let headers: Vec<(String, String)> = record
            .headers
            .iter()
            .map(|(k, v)| (k.to_string(), text(v)))
            .collect();
        assert_eq!(
            headers,
            vec![
                ("source".to_string(), "test".to_string()),
                ("kind".to_string(), "line".to_string())
            ]
        );
    }
}

#[test]
fn produce_reads_a_file_and_reports_on_stderr_in_table_mode() {
    let broker = Broker::start(&[]);
    let topic = unique("file");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lines.txt");
    std::fs::write(&path, "one\ntwo\nthree\nfour\n").unwrap();
    let run = broker.run(&["produce", &topic, "--file", path.to_str().unwrap()]);
    assert_eq!(run.ok(), "", "nothing on stdout");
    assert!(
        run.stderr
            .contains(&format!("produced 4 records to {topic}")),
        "{}",
        run.stderr
    );
    let values: Vec<String> = fetch(&broker.bootstrap, &topic, 0)
        .iter()
        .map(|r| text(&r.value))
        .collect();
    assert_eq!(values, ["one", "two", "three", "four"]);
}

#[test]
fn a_line_without_the_key_separator_fails_naming_the_line() {
    let broker = Broker::start(&[]);
    let topic = unique("badline");
    let run = broker.run_with_stdin(
        &["produce", &topic, "--key-separator", "\t"],
        "k\tv\nno separator here\n",
    );
    let stderr = run.failed();
    assert!(stderr.contains("line 2"), "{stderr}");
}

#[test]
fn an_unknown_topic_is_an_error_when_the_broker_does_not_create_it() {
    let broker = Broker::start(&["auto.create.topics.enable=false"]);
    let run = broker.run_with_stdin(&["produce", "no-such-topic"], "x\n");
    let stderr = run.failed();
    assert!(stderr.contains("no-such-topic"), "{stderr}");
    assert!(stderr.contains("does not exist"), "{stderr}");
}

#[test]
fn an_unreachable_broker_is_named_in_the_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let started = std::time::Instant::now();
    let run = common::run(&["-b", &addr, "--timeout-ms", "2000", "produce", "t"]);
    let stderr = run.failed();
    assert!(stderr.contains(&addr), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(15));
}

#[test]
fn perf_produce_reports_every_record_and_a_positive_throughput() {
    let broker = Broker::start(&[]);
    let topic = unique("perf");
    let run = broker.run(&[
        "perf",
        "produce",
        &topic,
        "--records",
        "20000",
        "--partitions",
        "2",
        "-o",
        "json",
    ]);
    let report = run.json();
    assert_eq!(report["mode"], "produce");
    assert_eq!(report["records"], 20000, "{report}");
    assert_eq!(report["errors"], 0, "{report}");
    assert_eq!(report["bytes"], 20000 * 100);
    assert!(
        report["records_per_sec"].as_f64().unwrap() > 0.0,
        "{report}"
    );
    assert!(
        report["latency_ms"]["p99"].as_f64().unwrap() > 0.0,
        "{report}"
    );
    let stored =
        fetch(&broker.bootstrap, &topic, 0).len() + fetch(&broker.bootstrap, &topic, 1).len();
    assert!(
        stored > 0,
        "the topic was created with two partitions and written"
    );
}

#[test]
fn perf_produce_needs_a_bound() {
    let run = common::run(&["perf", "produce", "t"]);
    assert_eq!(run.code, Some(2), "{run:?}");
}
