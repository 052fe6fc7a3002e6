//! `consume`: catch-up read of a whole topic from the beginning.

use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use crate::report::Report;

const METADATA_TIMEOUT: Duration = Duration::from_secs(10);

/// `consume` options.
#[derive(Debug, Args)]
pub struct ConsumeOptions {
    #[arg(long)]
    topic: String,
    /// Give up after this many seconds, reporting what was read.
    #[arg(long, default_value_t = 20.0)]
    timeout_secs: f64,
}

/// A consumer with a manual assignment and no offset commits: the benchmark
/// must not depend on consumer groups, which not every broker has.
pub fn assigned_consumer(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    fetch_wait_max_ms: u64,
) -> anyhow::Result<BaseConsumer> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "runnel-bench-unused")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("fetch.wait.max.ms", fetch_wait_max_ms.to_string())
        .create()
        .context("creating the consumer")?;
    let mut assignment = TopicPartitionList::new();
    for partition in 0..partitions {
        assignment.add_partition_offset(topic, partition, Offset::Beginning)?;
    }
    consumer.assign(&assignment)?;
    Ok(consumer)
}

/// Number of partitions of `topic` and how many records they hold in all.
fn topic_extent(consumer: &BaseConsumer, topic: &str) -> anyhow::Result<(i32, u64)> {
    let metadata = consumer.fetch_metadata(Some(topic), METADATA_TIMEOUT)?;
    let partitions = metadata
        .topics()
        .first()
        .map(|topic| topic.partitions().len() as i32)
        .context("topic not in metadata")?;
    let mut total = 0u64;
    for partition in 0..partitions {
        let (low, high) = consumer.fetch_watermarks(topic, partition, METADATA_TIMEOUT)?;
        total += (high - low).max(0) as u64;
    }
    Ok((partitions, total))
}

pub fn run(bootstrap: &str, options: &ConsumeOptions) -> anyhow::Result<Report> {
    let probe: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()?;
    let (partitions, expected) = topic_extent(&probe, &options.topic)?;
    drop(probe);
    let consumer = assigned_consumer(bootstrap, &options.topic, partitions, 500)?;
    let timeout = Duration::from_secs_f64(options.timeout_secs);
    let start = Instant::now();
    let (mut records, mut bytes) = (0u64, 0u64);
    while records < expected && start.elapsed() < timeout {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(message)) => {
                records += 1;
                bytes += message.payload_len() as u64;
            }
            Some(Err(error)) => return Err(error).context("consuming"),
            None => {}
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    let mut report = Report::new("consume");
    report.set("topic", options.topic.clone());
    report.set("partitions", partitions);
    report.set("expected", expected);
    report.set_rates(records, bytes, seconds);
    Ok(report)
}
