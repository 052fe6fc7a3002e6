//! The producer against Runnel and Tansu: offsets and order, the murmur2
//! partitioner, every codec, acks, flush, backpressure, size limits, and
//! idempotent retries across a broker restart (Runnel only: it needs a broker
//! that restarts on the same data, which the in-memory Tansu cannot do).

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{unique, Kind, TestBroker, ALL};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{CreateTopicsRequest, FetchRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use runnel_client::producer::partitioner::partition_for_key;
use runnel_client::producer::{
    Acks, Compression, Producer, ProducerConfig, ProducerRecord, RecordMetadata,
};
use runnel_client::{ClientConfig, Cluster, ResponseError};
use runnel_protocol::batch::{decode_records, split_batches, Record};

fn config(bootstrap: &str) -> ProducerConfig {
    ProducerConfig::new(ClientConfig::new(bootstrap).request_timeout(Duration::from_secs(5)))
        .delivery_timeout(Duration::from_secs(15))
        .max_block(Duration::from_secs(10))
}

/// Creates `topic` with `partitions` partitions through a raw CreateTopics.
async fn create_topic(cluster: &Cluster, topic: &str, partitions: i32) {
    let request = CreateTopicsRequest::default()
        .with_timeout_ms(5000)
        .with_topics(vec![CreatableTopic::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_owned())))
            .with_num_partitions(partitions)
            .with_replication_factor(1)]);
    let (_, connection) = match cluster.metadata().controller_id {
        id if id >= 0 => (id, cluster.broker(id).await.unwrap()),
        _ => (-1, cluster.any_broker().await.unwrap()),
    };
    let response = connection.send(&request).await.unwrap();
    let code = response.topics[0].error_code;
    assert!(
        code == 0 || code == 36,
        "CreateTopics {topic}: error {code}"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        cluster.refresh_metadata(&[topic.to_owned()]).await.unwrap();
        let ready = cluster.metadata().topics.get(topic).is_some_and(|t| {
            t.partitions.len() == partitions as usize && t.partitions.iter().all(|p| p.leader >= 0)
        });
        if ready {
            return;
        }
        assert!(Instant::now() < deadline, "{topic} has no leaders");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every record of `topic`-`partition` from offset 0, with each batch's codec.
async fn fetch_all(cluster: &Cluster, topic: &str, partition: i32) -> Vec<(Compression, Record)> {
    let (_, connection) = cluster.leader(topic, partition).await.unwrap();
    let version = connection.version_for::<FetchRequest>(Some(12)).unwrap();
    let mut out = Vec::new();
    let mut offset = 0;
    loop {
        let request = FetchRequest::default()
            .with_replica_id(kafka_protocol::messages::BrokerId(-1))
            .with_max_wait_ms(200)
            .with_min_bytes(1)
            .with_max_bytes(16 * 1024 * 1024)
            .with_session_epoch(-1)
            .with_topics(vec![FetchTopic::default()
                .with_topic(TopicName(StrBytes::from_string(topic.to_owned())))
                .with_partitions(vec![FetchPartition::default()
                    .with_partition(partition)
                    .with_fetch_offset(offset)
                    .with_partition_max_bytes(8 * 1024 * 1024)])]);
        let response = connection.send_version(&request, version).await.unwrap();
        let data = response
            .responses
            .first()
            .and_then(|t| t.partitions.first())
            .unwrap_or_else(|| panic!("fetch {topic}-{partition} v{version}: {response:?}"));
        assert_eq!(data.error_code, 0, "fetch {topic}-{partition}");
        let bytes = data.records.clone().unwrap_or_default();
        let before = out.len();
        for item in split_batches(&bytes) {
            let Ok((at, header)) = item else { break };
            let batch = &bytes[at..at + header.total_len()];
            let codec = header.compression().unwrap();
            for record in decode_records(batch, 64 << 20).unwrap() {
                if record.offset >= offset {
                    offset = record.offset + 1;
                    out.push((codec, record));
                }
            }
        }
        if out.len() == before || offset >= data.high_watermark {
            return out;
        }
    }
}

/// Waits until `topic`-`partition` holds `count` records (for acks=0, which
/// reports nothing back), failing after a deadline.
async fn fetch_until(cluster: &Cluster, topic: &str, partition: i32, count: usize) -> Vec<Record> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let records = fetch_all(cluster, topic, partition).await;
        if records.len() >= count || Instant::now() > deadline {
            return records.into_iter().map(|(_, r)| r).collect();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn setup(kind: Kind, partitions: i32) -> (TestBroker, Arc<Cluster>, String) {
    let broker = TestBroker::start(kind, &[]).await;
    let cluster = Cluster::connect(ClientConfig::new(broker.bootstrap()))
        .await
        .unwrap();
    let topic = unique("produce");
    create_topic(&cluster, &topic, partitions).await;
    (broker, cluster, topic)
}

#[tokio::test]
async fn offsets_are_consecutive_and_records_in_order_per_partition() {
    for kind in ALL {
        let (broker, cluster, topic) = setup(kind, 3).await;
        let producer = Producer::new(config(broker.bootstrap())).await.unwrap();
        let mut deliveries = Vec::new();
        for i in 0..300 {
            let record = ProducerRecord::new(&topic)
                .partition(i % 3)
                .value(format!("v{i}"));
            deliveries.push((i, producer.send(record).await.unwrap()));
        }
        for (i, delivery) in deliveries {
            let meta = delivery.await.unwrap();
            assert_eq!(meta.partition, i % 3, "{kind:?}");
            assert_eq!(meta.offset, i64::from(i / 3), "{kind:?} record {i}");
        }
        for p in 0..3 {
            let values: Vec<Vec<u8>> = fetch_all(&cluster, &topic, p)
                .await
                .into_iter()
                .map(|(_, r)| r.value.unwrap())
                .collect();
            let expected: Vec<Vec<u8>> = (0..100)
                .map(|j| format!("v{}", j * 3 + p).into_bytes())
                .collect();
            assert_eq!(values, expected, "{kind:?} partition {p}");
        }
        producer.close().await.unwrap();
        broker.stop().await;
    }
}

#[tokio::test]
async fn keyed_records_land_on_the_murmur2_partition() {
    for kind in ALL {
        let (broker, cluster, topic) = setup(kind, 6).await;
        let producer = Producer::new(config(broker.bootstrap())).await.unwrap();
        let mut expected: Vec<Vec<String>> = vec![Vec::new(); 6];
        for i in 0..60 {
            let key = format!("key-{i}");
            let p = partition_for_key(key.as_bytes(), 6);
            let meta = producer
                .send_and_wait(ProducerRecord::new(&topic).key(key.clone()).value("x"))
                .await
                .unwrap();
            assert_eq!(meta.partition, p, "{kind:?} {key}");
            expected[p as usize].push(key);
        }
        for p in 0..6 {
            let keys: Vec<String> = fetch_all(&cluster, &topic, p)
                .await
                .into_iter()
                .map(|(_, r)| String::from_utf8(r.key.unwrap()).unwrap())
                .collect();
            assert_eq!(keys, expected[p as usize], "{kind:?} partition {p}");
        }
        producer.close().await.unwrap();
        broker.stop().await;
    }
}

#[tokio::test]
async fn every_compression_codec_round_trips_with_headers() {
    for kind in ALL {
        let (broker, cluster, topic) = setup(kind, 5).await;
        let codecs = [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ];
        for (p, codec) in codecs.into_iter().enumerate() {
            let producer = Producer::new(config(broker.bootstrap()).compression(codec))
                .await
                .unwrap();
            let mut deliveries = Vec::new();
            for i in 0..50 {
                let record = ProducerRecord::new(&topic)
                    .partition(p as i32)
                    .key(format!("k{i}"))
                    .value(format!("value {i} {}", "abc".repeat(20)))
                    .header("n", format!("{i}"));
                deliveries.push(producer.send(record).await.unwrap());
            }
            producer.flush().await;
            for d in deliveries {
                d.await.unwrap();
            }
            let records = fetch_all(&cluster, &topic, p as i32).await;
            assert_eq!(records.len(), 50, "{kind:?} {codec:?}");
            for (i, (stored_codec, record)) in records.into_iter().enumerate() {
                assert_eq!(stored_codec, codec, "{kind:?}");
                assert_eq!(record.key.unwrap(), format!("k{i}").into_bytes());
                assert_eq!(
                    record.value.unwrap(),
                    format!("value {i} {}", "abc".repeat(20)).into_bytes()
                );
                assert_eq!(
                    record.headers,
                    vec![(b"n".to_vec(), Some(format!("{i}").into_bytes()))],
                    "{kind:?} {codec:?}"
                );
            }
            producer.close().await.unwrap();
        }
        broker.stop().await;
    }
}

#[tokio::test]
async fn acks_zero_one_and_all_deliver() {
    for kind in ALL {
        let (broker, cluster, topic) = setup(kind, 3).await;
        for (p, acks) in [Acks::None, Acks::Leader, Acks::All]
            .into_iter()
            .enumerate()
        {
            let producer = Producer::new(config(broker.bootstrap()).acks(acks))
                .await
                .unwrap();
            assert_eq!(producer.is_idempotent(), acks == Acks::All);
            let mut metas: Vec<RecordMetadata> = Vec::new();
            let mut deliveries = Vec::new();
            for i in 0..20 {
                let record = ProducerRecord::new(&topic)
                    .partition(p as i32)
                    .value(format!("{i}"));
                deliveries.push(producer.send(record).await.unwrap());
            }
            for d in deliveries {
                metas.push(d.await.unwrap());
            }
            let offsets: Vec<i64> = metas.iter().map(|m| m.offset).collect();
            if acks == Acks::None {
                assert!(offsets.iter().all(|o| *o == -1), "{kind:?}: {offsets:?}");
            } else {
                assert_eq!(offsets, (0..20).collect::<Vec<i64>>(), "{kind:?} {acks:?}");
            }
            let stored = fetch_until(&cluster, &topic, p as i32, 20).await;
            assert_eq!(stored.len(), 20, "{kind:?} {acks:?}");
            producer.close().await.unwrap();
        }
        broker.stop().await;
    }
}

#[tokio::test]
async fn flush_sends_lingering_records_at_once() {
    for kind in ALL {
        let (broker, _cluster, topic) = setup(kind, 1).await;
        let producer = Producer::new(config(broker.bootstrap()).linger(Duration::from_secs(60)))
            .await
            .unwrap();
        let mut deliveries = Vec::new();
        for i in 0..10 {
            let record = ProducerRecord::new(&topic).value(format!("{i}"));
            deliveries.push(producer.send(record).await.unwrap());
        }
        let started = Instant::now();
        producer.flush().await;
        assert!(started.elapsed() < Duration::from_secs(10), "{kind:?}");
        for d in deliveries {
            // Already completed: flush returned only after every record did.
            let meta = tokio::time::timeout(Duration::from_millis(1), d)
                .await
                .expect("completed by flush")
                .unwrap();
            assert!(meta.offset >= 0);
        }
        producer.close().await.unwrap();
        broker.stop().await;
    }
}

#[tokio::test]
async fn a_full_buffer_makes_send_wait_and_every_record_is_delivered() {
    for kind in ALL {
        let (broker, cluster, topic) = setup(kind, 1).await;
        // Room for about four 1000-byte records at a time.
        let producer = Producer::new(
            config(broker.bootstrap())
                .buffer_memory(4096)
                .batch_size(2048),
        )
        .await
        .unwrap();
        let value = Bytes::from(vec![b'x'; 1000]);
        let mut deliveries = Vec::new();
        for _ in 0..200 {
            let record = ProducerRecord::new(&topic).value(value.clone());
            deliveries.push(producer.send(record).await.unwrap());
        }
        for d in deliveries {
            d.await.unwrap();
        }
        assert_eq!(fetch_all(&cluster, &topic, 0).await.len(), 200, "{kind:?}");
        producer.close().await.unwrap();
        broker.stop().await;
    }
}

#[tokio::test]
async fn a_record_over_max_request_size_fails_alone() {
    for kind in ALL {
        let (broker, cluster, topic) = setup(kind, 1).await;
        let producer = Producer::new(config(broker.bootstrap()).max_request_size(10_000))
            .await
            .unwrap();
        let before = producer
            .send(ProducerRecord::new(&topic).value("small 1"))
            .await
            .unwrap();
        let err = producer
            .send(ProducerRecord::new(&topic).value(vec![0u8; 20_000]))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some(ResponseError::MessageTooLarge), "{err}");
        let after = producer
            .send(ProducerRecord::new(&topic).value("small 2"))
            .await
            .unwrap();
        assert_eq!(before.await.unwrap().offset, 0);
        assert_eq!(after.await.unwrap().offset, 1);
        assert_eq!(fetch_all(&cluster, &topic, 0).await.len(), 2, "{kind:?}");
        producer.close().await.unwrap();
        broker.stop().await;
    }
}

/// Runnel only: Tansu keeps its data in memory here, so it cannot be restarted
/// on the same log to show that retried batches are not written twice.
#[tokio::test]
async fn idempotent_retries_across_a_broker_restart_write_no_duplicates() {
    use runnel_broker::Server;
    use runnel_model::config::{BrokerConfig, ConfigSources};

    async fn start(dir: &std::path::Path, listener: &str) -> runnel_broker::RunningServer {
        let overrides = vec![
            ("log.dirs".to_string(), dir.display().to_string()),
            ("listeners".to_string(), format!("PLAINTEXT://{listener}")),
        ];
        let config = BrokerConfig::load(ConfigSources {
            file: None,
            env: Vec::new(),
            overrides,
        })
        .unwrap();
        Server::start(config).await.unwrap()
    }

    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), "127.0.0.1:0").await;
    let addr = server.local_addr().to_string();
    let cluster = Cluster::connect(ClientConfig::new(&addr)).await.unwrap();
    let topic = unique("idempotent");
    create_topic(&cluster, &topic, 1).await;
    let producer = Producer::new(config(&addr).linger(Duration::from_millis(1)))
        .await
        .unwrap();
    assert!(producer.is_idempotent());
    let mut deliveries = Vec::new();
    let acknowledged = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    for i in 0..=1000 {
        let record = ProducerRecord::new(&topic).value(format!("{i}"));
        let counter = acknowledged.clone();
        producer
            .send_with_callback(record, move |result| {
                if result.is_ok() {
                    counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
            })
            .await
            .unwrap();
    }
    // Stop the broker with records queued and in flight; they are retried against
    // the restarted broker.
    let before_shutdown = acknowledged.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        before_shutdown < 1001,
        "records were outstanding at shutdown"
    );
    server.shutdown().await.unwrap();
    let server = start(dir.path(), &addr).await;
    for i in 1001..2000 {
        let record = ProducerRecord::new(&topic).value(format!("{i}"));
        deliveries.push(producer.send(record).await.unwrap());
    }
    for d in deliveries {
        d.await.unwrap();
    }
    producer.flush().await;
    assert_eq!(acknowledged.load(std::sync::atomic::Ordering::SeqCst), 1001);
    let fresh = Cluster::connect(ClientConfig::new(&addr)).await.unwrap();
    let values: Vec<String> = fetch_all(&fresh, &topic, 0)
        .await
        .into_iter()
        .map(|(_, r)| String::from_utf8(r.value.unwrap()).unwrap())
        .collect();
    let expected: Vec<String> = (0..2000).map(|i| i.to_string()).collect();
    assert_eq!(values.len(), 2000, "duplicates or losses");
    assert_eq!(values, expected);
    producer.close().await.unwrap();
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_idempotent_batches_are_written_in_order() {
    for kind in ALL {
        let (broker, cluster, topic) = setup(kind, 1).await;
        // Small batches and no linger: many requests in flight at once.
        let producer = Producer::new(
            config(broker.bootstrap())
                .batch_size(1024)
                .linger(Duration::ZERO),
        )
        .await
        .unwrap();
        assert!(producer.is_idempotent(), "{kind:?}");
        let mut deliveries = Vec::new();
        for i in 0..20_000 {
            let record = ProducerRecord::new(&topic).value(format!("{i:08}"));
            deliveries.push(producer.send(record).await.unwrap());
        }
        for (i, d) in deliveries.into_iter().enumerate() {
            let meta = d
                .await
                .unwrap_or_else(|e| panic!("{kind:?} record {i}: {e}"));
            assert_eq!(meta.offset, i as i64, "{kind:?}");
        }
        let values = fetch_all(&cluster, &topic, 0).await;
        assert_eq!(values.len(), 20_000, "{kind:?}");
        producer.close().await.unwrap();
        broker.stop().await;
    }
}
