//! The rdkafka crate (librdkafka through Rust) against a runnel started from `RUNNEL_BIN`.
//!
//! Per codec: AdminClient creates a 3-partition topic; FutureProducer produces 10 000
//! keyed records with headers and explicit CreateTime timestamps; a BaseConsumer with
//! a manual assignment from offset 0 and no offset commits (runnel has no group
//! coordinator yet) reads them back; watermarks and offsets_for_times are checked. Then topic
//! configs are altered (AlterConfigs: the crate has no IncrementalAlterConfigs) and
//! described.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, ensure, Context};
use rdkafka::admin::{
    AdminClient, AdminOptions, AlterConfig, ConfigSource, NewTopic, ResourceSpecifier,
    TopicReplication,
};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, Timestamp, TopicPartitionList};
use runnel_compat_rdkafka::broker::Broker;
use runnel_compat_rdkafka::records::{
    generate, time_probes, verify_consumed, Record, PARTITIONS, RECORD_COUNT,
};

const TIMEOUT: Duration = Duration::from_secs(60);

/// Starts a broker, runs `body` against it, and shows the broker's log on failure.
async fn with_broker<F, Fut>(body: F) -> anyhow::Result<()>
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let mut broker = Broker::start(&[])?;
    let result = body(broker.bootstrap())
        .await
        .and_then(|()| broker.assert_alive());
    if let Err(error) = &result {
        eprintln!(
            "{error:#}\n--- runnel log tail ---\n{}",
            broker.log_tail(80)
        );
    }
    result
}

fn admin(bootstrap: &str) -> anyhow::Result<AdminClient<DefaultClientContext>> {
    Ok(ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()?)
}

async fn create_topic(bootstrap: &str, topic: &str) -> anyhow::Result<()> {
    let options = AdminOptions::new().operation_timeout(Some(TIMEOUT));
    let results = admin(bootstrap)?
        .create_topics(
            &[NewTopic::new(topic, PARTITIONS, TopicReplication::Fixed(1))],
            &options,
        )
        .await?;
    for result in results {
        if let Err((name, code)) = result {
            bail!("CreateTopics {name}: {code:?}");
        }
    }
    Ok(())
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

async fn produce(
    bootstrap: &str,
    topic: &str,
    codec: &str,
    records: &[Record],
) -> anyhow::Result<()> {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("compression.type", codec)
        .set("linger.ms", "5")
        .set("acks", "all")
        .create()?;
    let mut deliveries = Vec::with_capacity(records.len());
    for record in records {
        let mut headers = OwnedHeaders::new();
        for (key, value) in &record.headers {
            headers = headers.insert(Header {
                key: key.as_str(),
                value: Some(value.as_slice()),
            });
        }
        let mut pending = FutureRecord::to(topic)
            .partition(record.partition)
            .key(record.key.as_slice())
            .payload(record.value.as_slice())
            .timestamp(record.timestamp_ms)
            .headers(headers);
        loop {
            match producer.send_result(pending) {
                Ok(delivery) => {
                    deliveries.push(delivery);
                    break;
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned)) => {
                    pending = returned;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err((error, _)) => bail!("enqueue failed: {error}"),
            }
        }
    }
    for (record, delivery) in records.iter().zip(deliveries) {
        let delivered = tokio::time::timeout(TIMEOUT, delivery)
            .await
            .context("delivery timed out")?
            .context("delivery future canceled")?
            .map_err(|(error, _)| error)
            .with_context(|| format!("delivery of {}", String::from_utf8_lossy(&record.key)))?;
        ensure!(
            delivered.partition == record.partition,
            "delivered to partition {}",
            delivered.partition
        );
    }
    Ok(())
}

/// librdkafka's assign() needs a group.id (it fails with "Local: Unknown group"
/// otherwise), but with no commits and explicit start offsets it fetches without a
/// group coordinator.
fn consumer(bootstrap: &str) -> anyhow::Result<BaseConsumer> {
    Ok(ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "compat-unused-group")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "error")
        .create()?)
}

/// Reads every partition from offset 0 until `expected` records arrived (watermarks are
/// checked separately, so a wrong high watermark does not hide records).
fn consume_all(bootstrap: &str, topic: &str, expected: usize) -> anyhow::Result<Vec<Record>> {
    let consumer = consumer(bootstrap)?;
    let mut assignment = TopicPartitionList::new();
    for partition in 0..PARTITIONS {
        assignment.add_partition_offset(topic, partition, Offset::Offset(0))?;
    }
    consumer.assign(&assignment)?;
    let mut records = Vec::new();
    let deadline = Instant::now() + TIMEOUT;
    while records.len() < expected {
        ensure!(
            Instant::now() < deadline,
            "consumed {} of {expected} records",
            records.len()
        );
        let Some(message) = consumer.poll(Duration::from_millis(500)) else {
            continue;
        };
        let message = message?;
        let Timestamp::CreateTime(timestamp_ms) = message.timestamp() else {
            bail!(
                "p{}@{}: timestamp {:?}, expected CreateTime",
                message.partition(),
                message.offset(),
                message.timestamp()
            );
        };
        let headers = message
            .headers()
            .map(|headers| {
                headers
                    .iter()
                    .map(|h| (h.key.to_string(), h.value.unwrap_or_default().to_vec()))
                    .collect()
            })
            .unwrap_or_default();
        records.push(Record {
            key: message.key().unwrap_or_default().to_vec(),
            value: message.payload().unwrap_or_default().to_vec(),
            headers,
            timestamp_ms,
            partition: message.partition(),
            offset: message.offset(),
        });
    }
    Ok(records)
}

fn check_list_offsets(
    bootstrap: &str,
    topic: &str,
    per_partition: &BTreeMap<i32, Vec<Record>>,
) -> anyhow::Result<()> {
    let consumer = consumer(bootstrap)?;
    for (&partition, records) in per_partition {
        let watermarks = consumer.fetch_watermarks(topic, partition, TIMEOUT)?;
        ensure!(
            watermarks == (0, records.len() as i64),
            "watermarks of partition {partition}: {watermarks:?}"
        );
    }
    for (partition, target, expected) in time_probes(per_partition) {
        let mut query = TopicPartitionList::new();
        query.add_partition_offset(topic, partition, Offset::Offset(target))?;
        let answer = consumer.offsets_for_times(query, TIMEOUT)?;
        let element = answer
            .find_partition(topic, partition)
            .context("partition missing from offsets_for_times answer")?;
        element.error()?;
        let offset = match element.offset() {
            Offset::Offset(offset) => offset,
            Offset::End => -1,
            other => bail!("p{partition} ts {target}: unexpected {other:?}"),
        };
        ensure!(
            offset == expected,
            "offset for time {target} in partition {partition}: {offset}, expected {expected}"
        );
    }
    Ok(())
}

async fn round_trip(codec: &str) -> anyhow::Result<()> {
    with_broker(|bootstrap| async move {
        let topic = format!("compat-rdkafka-{codec}-{}", now_ms());
        create_topic(&bootstrap, &topic).await?;
        let produced = generate(&topic, RECORD_COUNT, now_ms() - 3_600_000);
        produce(&bootstrap, &topic, codec, &produced).await?;
        let consumed = consume_all(&bootstrap, &topic, produced.len())?;
        let per_partition = verify_consumed(&produced, consumed)?;
        check_list_offsets(&bootstrap, &topic, &per_partition)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_uncompressed() -> anyhow::Result<()> {
    round_trip("none").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_gzip() -> anyhow::Result<()> {
    round_trip("gzip").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_snappy() -> anyhow::Result<()> {
    round_trip("snappy").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_lz4() -> anyhow::Result<()> {
    round_trip("lz4").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_zstd() -> anyhow::Result<()> {
    round_trip("zstd").await
}

async fn describe_topic(
    bootstrap: &str,
    topic: &str,
) -> anyhow::Result<BTreeMap<String, (Option<String>, ConfigSource)>> {
    let results = admin(bootstrap)?
        .describe_configs(&[ResourceSpecifier::Topic(topic)], &AdminOptions::new())
        .await?;
    let mut configs = BTreeMap::new();
    for result in results {
        let resource =
            result.map_err(|code| anyhow::anyhow!("DescribeConfigs {topic}: {code:?}"))?;
        for entry in resource.entries {
            configs.insert(entry.name, (entry.value, entry.source));
        }
    }
    Ok(configs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alter_and_describe_topic_config() -> anyhow::Result<()> {
    with_broker(|bootstrap| async move {
        let topic = format!("compat-rdkafka-config-{}", now_ms());
        create_topic(&bootstrap, &topic).await?;
        let default = (Some("1073741824".to_string()), ConfigSource::Default);

        let before = describe_topic(&bootstrap, &topic).await?;
        ensure!(
            before.get("segment.bytes") == Some(&default),
            "segment.bytes: {:?}",
            before.get("segment.bytes")
        );

        let alter =
            AlterConfig::new(ResourceSpecifier::Topic(&topic)).set("retention.ms", "9000000");
        for result in admin(&bootstrap)?
            .alter_configs(&[alter], &AdminOptions::new())
            .await?
        {
            if let Err((resource, code)) = result {
                bail!("AlterConfigs {resource:?}: {code:?}");
            }
        }

        let after = describe_topic(&bootstrap, &topic).await?;
        let retention = after.get("retention.ms");
        ensure!(
            retention == Some(&(Some("9000000".to_string()), ConfigSource::DynamicTopic)),
            "retention.ms: {retention:?}"
        );
        ensure!(
            after.get("segment.bytes") == Some(&default),
            "segment.bytes: {:?}",
            after.get("segment.bytes")
        );
        Ok(())
    })
    .await
}
